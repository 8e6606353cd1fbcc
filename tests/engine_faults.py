"""Fault-injection hooks for the engine's crash matrix, and a runner for them in a subprocess.

A hook is called by a worker with each job before the work (engine/worker.py, WorkerSpec.hook);
it picks its victims by file name, so one library can hold healthy and poisoned tracks:

- ``segv``  : the worker segfaults (faulthandler._sigsegv) -> SIGSEGV(-11)
- ``exit``  : os._exit(3) -> exit code 3
- ``raise`` : an exception inside the worker -> a failure record with its traceback
- ``hang``  : sleeps for an hour -> killed by the per-track timeout
- ``pickle``: answers with something that cannot be pickled
- ``once``  : segfaults on the first attempt only (a transient crash: the retry succeeds)
- ``slow``  : sleeps 0.5 s
- ``mark``  : creates the file ``started`` beside the track, then sleeps 0.5 s

Usage as a runner (the signal tests need a process of their own)::

    python tests/engine_faults.py DB LIBRARY [--grace S] [--timeout S]

It runs the supervisor over LIBRARY with :func:`hook` and exits as engine-run does.
"""

from __future__ import annotations

import faulthandler
import os
import sys
import threading
import time
from pathlib import Path

from engine.messages import Job


def hook(job: Job) -> object:
    name = Path(job.path).name
    if name.startswith("segv"):
        faulthandler._sigsegv()
    if name.startswith("exit"):
        os._exit(3)
    if name.startswith("raise"):
        raise RuntimeError(f"injected failure for {name}")
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("pickle"):
        return threading.Lock()  # not picklable
    if name.startswith("once") and job.attempt == 0:
        faulthandler._sigsegv()
    if name.startswith("slow"):
        time.sleep(0.5)
    if name.startswith("mark"):  # announces that it runs (a file beside it), then is slow
        Path(job.path).with_name("started").touch()
        time.sleep(0.5)
    return None


def main(argv: list[str]) -> int:
    import argparse

    from engine.supervisor import RunConfig, Supervisor

    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("library")
    ap.add_argument("--grace", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    cfg = RunConfig(db=args.db, cores=args.cores, queue_size=2 * args.cores, jsonl=True,
                    quiet=True, grace_s=args.grace, timeout_s=args.timeout, worker_hook=hook)
    stats = Supervisor(cfg).run([args.library])
    if stats.interrupted:
        return 128 + stats.interrupted
    return 1 if stats.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
