"""One thread per process for every numeric library, set before numpy loads them.

The engine's parallelism is its worker processes: a thread pool per worker would fight over the
cores (and numba's own pool does not survive fork). The kernels use none; this keeps it so.
Both command lines call :func:`one_thread_per_process` before their first numeric import; a
value the user set in the environment wins.
"""

from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "one_thread_per_process"]

#: The environment variables that size numeric thread pools.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


def one_thread_per_process() -> None:
    """Default every numeric thread pool of this process (and its children) to one thread."""
    for var in THREAD_VARIABLES:
        os.environ.setdefault(var, "1")
