"""The numba compilation options of every kernel, named once.

Every ``@njit`` in kernels/ takes its options from here, so that one kernel cannot drift from
the others by a typo. Which function gets which option is part of the fingerprint: a flag added
to or taken from a kernel may change the last bits of its results (``FINGERPRINT_VERSION``
would have to change with it).
"""

from __future__ import annotations

from typing import Final

#: Keep compiled machine code in numba's on-disk cache: a new process loads it instead of
#: compiling again (kernels/_warmup.py).
CACHE: Final = True

#: fastmath flags that let per-frame reductions reassociate (and so vectorise) but keep the
#: NaN/inf semantics (no "nnan", "ninf", "afn"). A plain set: numba accepts no other collection.
REASSOC: Final[set[str]] = {"reassoc", "contract", "nsz", "arcp"}

#: Division by zero gives inf/NaN as in numpy instead of raising, so the inner loops carry no
#: zero checks (the analyzer validates its inputs; the kernels never see a bad one).
ERROR_MODEL: Final = "numpy"

#: Small helpers are inlined into their callers at numba-IR level, so the caller's loop stays
#: one loop that LLVM can vectorise.
INLINE: Final = "always"

#: The query-side kernels release the GIL while they run: a brute-force pass over millions of
#: rows does not stall the caller's other threads.
NOGIL: Final = True
