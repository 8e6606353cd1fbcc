"""Fault-injection hooks for the engine's crash matrix, and a runner for them in a subprocess.

A hook is called by a worker with each job before the work (engine/run/task.py, TaskSettings.hook);
it picks its victims by file name, so one library can hold healthy and poisoned tracks:

- ``segv``  : the worker segfaults (:func:`segfault`, no stack dump) -> SIGSEGV(-11)
- ``exit``  : os._exit(3) -> exit code 3
- ``raise`` : an exception inside the worker -> a failure record with its traceback
- ``hang``  : sleeps for an hour -> killed by the per-track timeout
- ``pickle``: answers with something that cannot be pickled
- ``once``  : segfaults on the first attempt only (a transient crash: the retry succeeds)
- ``slow``  : sleeps 0.5 s
- ``mark``  : creates the file ``started`` beside the track, then sleeps 0.5 s

Usage as a runner (the signal tests need a process of their own)::

    python tests/engine_faults.py DB LIBRARY [--grace S] [--timeout S] [--cores N]

It runs engine-run's own ``main`` over LIBRARY (with ``--jsonl -q``), :func:`hook` in every
worker, and exits as engine-run does.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from pathlib import Path

from engine.run.messages import Job


def segfault() -> None:
    """Die of SIGSEGV, quietly: faulthandler (which pytest enables, and a forked worker
    inherits) would print every thread's stack into the test output first. The signal is the
    same, so the engine still has a SIGSEGV(-11) to report."""
    faulthandler.disable()
    faulthandler._sigsegv()


def hook(job: Job) -> object:
    name = Path(job.path).name
    if name.startswith("segv"):
        segfault()
    if name.startswith("exit"):
        os._exit(3)
    if name.startswith("raise"):
        raise RuntimeError(f"injected failure for {name}")
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("pickle"):
        return threading.Lock()  # not picklable
    if name.startswith("once") and job.attempt == 0:
        segfault()
    if name.startswith("slow"):
        time.sleep(0.5)
    if name.startswith("mark"):  # announces that it runs (a file beside it), then is slow
        Path(job.path).with_name("started").touch()
        time.sleep(0.5)
    return None


def main(argv: list[str]) -> int:
    """engine-run's own ``main`` (options, signal handling, exit codes) over LIBRARY, with
    :func:`hook` in every worker (its ``worker_hook`` seam, which the console script never
    sets)."""
    import argparse

    from engine.run import cli

    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("library")
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    return cli.main([args.library, "--db", args.db, "--cores", str(args.cores),
                     "--queue-size", str(2 * args.cores), "--jsonl", "-q",
                     "--grace", str(args.grace), "--timeout", str(args.timeout)],
                    worker_hook=hook)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
