"""``engine-run``: fingerprint a library into the store (NOTE [engine protocol]).

Exit codes
----------
0    every track fingerprinted (or already in the store)
1    some tracks failed (each has a record: --jsonl, engine-query failures)
2    usage error (bad option, no PATH, ...)
3    the store failed (a full disk, a --db that is not a store, another writer): what was
     committed before stays intact and readable
4    the execution backend failed: the workers could not start (too few file descriptors or
     processes), or the Dask backend (dask not installed, the scheduler unreachable or gone,
     workers that cannot see the files): what was committed before stays intact; run again
130  interrupted by SIGINT (Ctrl-C); completed tracks are committed
5    stdout could not be written (a full disk, an I/O error): feeding stopped, completed
     tracks are committed (their records may be lost with stdout); the reason on stderr
141  stdout was closed by its reader (``engine-run --jsonl ... | head -1``): feeding stopped,
     completed tracks are committed, nothing is printed (128 + SIGPIPE, as a shell reports a
     command killed by SIGPIPE)
143  interrupted by SIGTERM; completed tracks are committed
"""

from __future__ import annotations

from ..threads import one_thread_per_process

one_thread_per_process()  # before numpy loads: engine/threads.py

import argparse  # noqa: E402 - after the thread settings on purpose
import contextlib  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from ..errors import BackendError, InputError, StoreError  # noqa: E402
from .scan import read_paths  # noqa: E402

if TYPE_CHECKING:
    from .messages import Job
    from .supervisor import RunConfig, Supervisor

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_BACKEND, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5
EXIT_PIPE = 141


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


#: The range of every numeric option, checked at parse time (a usage error, exit 2, names the
#: value and the range). The upper bounds keep a typo from taking the machine: 2^20 frames x 8
#: channels x 4 bytes is a 32 MiB PCM buffer per worker.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "--cores": (1, 1024, ""),
    "--queue-size": (0, 1_000_000, " jobs"),
    "--max-retries": (0, 100, ""),
    "--max-entries": (1, 2**48, " fingerprints"),
    "--max-bytes": (64 * 2**10, 2**44, " bytes (64K to 16T)"),
    "--block-frames": (1024, 2**20, " frames"),
    "--timeout": (0.1, 86400.0, " s"),
    "--min-speed": (0.01, 1e6, " x realtime"),
    "--grace": (0.0, 3600.0, " s"),
    "--connect-timeout": (0.1, 3600.0, " s"),
}


def _bounded(option: str, kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse type: ``kind`` within ``BOUNDS[option]``, finite."""
    lo, hi, unit = BOUNDS[option]

    def parse(text: str) -> float:
        try:
            v = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(v) and lo <= v <= hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range: from {lo:.10g} to "
                                             f"{hi:.10g}{unit}")
        return v

    return parse


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G/T suffix (powers of 1024), within BOUNDS["--max-bytes"]."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    mult = units.get(t[-1:], 1)
    if t[-1:] in units:
        t = t[:-1]
    try:
        v = float(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 500M or 2G") from None
    lo, hi, _ = BOUNDS["--max-bytes"]
    if not (math.isfinite(v) and lo <= v <= hi):
        raise argparse.ArgumentTypeError(f"{text} is out of range: from 64K to 16T")
    return int(v)


#: --memory-limit's default: 1 GiB per LocalCluster worker.
DEFAULT_MEMORY_LIMIT = 2**30


def _memory_limit(text: str) -> str | int:
    """A Dask memory limit: "auto", bytes, or a size like 1GiB / 800MB (dask's parse_bytes)."""
    if text == "auto":
        return text
    try:
        from dask.utils import parse_bytes
    except ImportError:  # no dask: the backend says so when it starts
        return text
    try:
        value = int(parse_bytes(text))
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1GiB or 800MB") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def run_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="engine-run",
        description="Fingerprint audio files (25 values each, whole tracks) into an LMDB "
                    "store, with every core, incrementally.",
        epilog="PATH may be a file or a folder (searched recursively); '-' reads paths from "
               "stdin, one per line, or NUL-separated with -0 (find ... -print0 | engine-run "
               "-0 -). Exit codes: 0 all ok, 1 some tracks failed, 2 usage error, 3 store "
               "failure (disk full: committed work is intact), 4 backend failure (workers "
               "cannot start, Dask), 5 stdout cannot be written, 130/143 interrupted by "
               "SIGINT/SIGTERM, 141 stdout's reader left (completed work is kept).",
    )
    ap.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, or - for stdin")
    ap.add_argument("-0", "--null", action="store_true",
                    help="paths on stdin are NUL-separated (as find -print0 writes)")
    ap.add_argument("--db", default="fingerprints.lmdb",
                    help="the LMDB store (a folder; created if missing) [%(default)s]")
    ap.add_argument("--cores", type=_bounded("--cores", int), default=_usable_cores(),
                    help="worker processes [usable cores: %(default)s]")
    ap.add_argument("--queue-size", type=_bounded("--queue-size", int), default=None,
                    help="jobs waiting in the bounded queue [2 x cores]; 0 = unbounded, fed "
                         "with put_nowait: the predecessor's failure mode, kept only for "
                         "bench/memory.py (memory then grows with the library)")
    ap.add_argument("--force", action="store_true",
                    help="recompute every track, even when the store has it")
    ap.add_argument("--retry-failed", action="store_true",
                    help="try again tracks that failed on an earlier run")
    ap.add_argument("--max-retries", type=_bounded("--max-retries", int), default=None,
                    help="retries of a track whose worker died [2; 1 with the Dask backend, "
                         "where a worker restart costs more: docs/SCALING.md]")
    ap.add_argument("--max-entries", type=_bounded("--max-entries", int), default=None,
                    help="keep at most this many fingerprints (least recently used go first)")
    ap.add_argument("--max-bytes", type=_size, default=None,
                    help="keep the stored fingerprints under this size, e.g. 500M")
    ap.add_argument("--block-frames", type=_bounded("--block-frames", int), default=65536,
                    help="frames per decoded block [%(default)s]")
    ap.add_argument("--timeout", type=_bounded("--timeout", float), default=30.0,
                    help="seconds a track may take before its length is known, plus its "
                         "length / --min-speed after; a worker past that is killed and the "
                         "track retried [%(default)s]")
    ap.add_argument("--min-speed", type=_bounded("--min-speed", float), default=20.0,
                    help="slowest acceptable speed, x realtime, for the timeout [%(default)s]")
    ap.add_argument("--grace", type=_bounded("--grace", float), default=5.0,
                    help="seconds in-flight tracks get after SIGINT/SIGTERM [%(default)s]")
    ap.add_argument("--jsonl", action="store_true",
                    help="one JSON record per track on stdout")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress, budget or summary")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="log queue depth every 100 jobs, worker deaths, failures and each "
                         "file skipped as not audio")
    ap.add_argument("--no-follow-symlinks", action="store_true",
                    help="do not follow symbolic links met inside folders")
    dask = ap.add_argument_group("distributed (Dask) backend; docs/SCALING.md")
    dask.add_argument("--backend", choices=["local", "dask"], default="local",
                      help="local: forked workers on this machine; dask: Dask workers (a "
                           "LocalCluster of --cores processes, or --scheduler's) [%(default)s]")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="a running Dask scheduler, e.g. tcp://HOST:8786 (implies "
                           "--backend dask)")
    # the default is not a string: argparse would pass it through _memory_limit, whose dask
    # import (dask 0.1 s in bench/startup.py's importtime before) every engine-run would pay
    dask.add_argument("--memory-limit", default=DEFAULT_MEMORY_LIMIT, type=_memory_limit,
                      help="memory per LocalCluster worker, e.g. 800MB; the nanny restarts a "
                           "worker past 95 %% of it [1GiB]")
    dask.add_argument("--path-map", action="append", default=[], metavar="LOCAL=REMOTE",
                      help="the workers see files under LOCAL at REMOTE (repeatable)")
    dask.add_argument("--connect-timeout", type=_bounded("--connect-timeout", float),
                      default=30.0, metavar="S",
                      help="seconds to reach the scheduler and its first worker, or to get "
                           "back a dropped connection [%(default)s]")
    return ap


def _inputs(paths: Sequence[str], null: bool) -> Iterator[str]:
    for p in paths:
        if p == "-":
            # Read through a raw, unbuffered duplicate of the descriptor, never through
            # sys.stdin: the scan's thread blocks in this read, and a worker forked meanwhile
            # (the first job, a respawn) closes sys.stdin as multiprocessing does in every
            # child; had the thread held sys.stdin.buffer's lock at the fork, that close would
            # wait for ever in the child.
            try:
                fd = os.dup(sys.stdin.fileno())
            except (OSError, AttributeError, ValueError) as e:  # closed: <&-
                raise InputError(f"cannot read paths from stdin ('-'): it is closed ({e})") \
                    from None
            with io.FileIO(fd, "rb") as raw:
                yield from read_paths(raw, null_separated=null)
        else:
            yield p


def _is_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _say(msg: str) -> None:
    """A line on stderr, best effort: a closed or full stderr must not turn an exit code into
    a traceback."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(msg, file=sys.stderr)


def _dask_backend(args: argparse.Namespace) -> bool:
    return args.backend == "dask" or args.scheduler is not None


def _supervisor(args: argparse.Namespace, config: RunConfig) -> Supervisor:
    """The supervisor with its backend: forked workers, or Dask (--backend dask /
    --scheduler)."""
    from .supervisor import Supervisor  # the analyzer's imports: only once the options hold

    if not _dask_backend(args):
        if args.path_map:
            raise BackendError("--path-map is for the Dask backend: add --backend dask or "
                               "--scheduler")
        return Supervisor(config)
    from .backends.dask import DaskBackend, DaskConfig, PathMap

    backend = DaskBackend(DaskConfig(
        scheduler=args.scheduler, workers=config.cores, memory_limit=args.memory_limit,
        path_map=PathMap.parse(args.path_map),
        window=args.queue_size if args.queue_size else None,
        connect_timeout_s=args.connect_timeout, verbose=bool(args.verbose)),
        config.task_settings)
    return Supervisor(config, backend=backend)


def main(argv: Sequence[str] | None = None, *,
         worker_hook: Callable[[Job], object] | None = None) -> int:
    """``engine-run``: see :func:`run_parser` and the exit codes in this module's docstring.

    ``worker_hook`` is the tests' fault-injection seam (``RunConfig.worker_hook``); the console
    script never passes it.
    """
    if sys.stderr is None:  # started with 2>&-: messages go nowhere, the run still runs
        sys.stderr = open(os.devnull, "w")
    ap = run_parser()
    args = ap.parse_args(argv)
    if not args.paths:
        ap.print_usage(sys.stderr)
        _say("engine-run: error: give at least one PATH, or - to read paths from stdin")
        return EXIT_USAGE
    if args.paths.count("-") > 1:
        _say("engine-run: error: '-' (stdin) may be given once")
        return EXIT_USAGE
    from .supervisor import RunConfig  # the analyzer's imports: only once the options hold

    config = RunConfig(
        db=args.db, cores=args.cores,
        queue_size=args.queue_size if args.queue_size is not None else 2 * args.cores,
        force=args.force, retry_failed=args.retry_failed,
        max_retries=(args.max_retries if args.max_retries is not None
                     else 1 if _dask_backend(args) else 2),
        block_frames=args.block_frames, grace_s=args.grace,
        max_entries=args.max_entries, max_bytes=args.max_bytes, jsonl=args.jsonl,
        quiet=args.quiet, progress=_is_terminal(sys.stderr) and not args.quiet,
        verbose=args.verbose, follow_symlinks=not args.no_follow_symlinks,
        timeout_s=args.timeout, min_speed=args.min_speed, worker_hook=worker_hook,
    )
    try:
        supervisor = _supervisor(args, config)
    except BackendError as e:
        _say(f"engine-run: error: {e}")
        return EXIT_USAGE
    try:
        stats = supervisor.run(_inputs(args.paths, args.null))
    except StoreError as e:
        _say(f"engine-run: {e}")
        return EXIT_STORE
    except BackendError as e:
        _say(f"engine-run: {e}")
        return EXIT_BACKEND
    except InputError as e:
        _say(f"engine-run: error: {e}; what completed is committed")
        return EXIT_USAGE
    if stats.output_error:
        _say(f"engine-run: cannot write to stdout: {stats.output_error}; stopped feeding, "
              f"the completed tracks are committed: run again to do the rest")
        return EXIT_OUTPUT
    if stats.output_closed:
        return EXIT_PIPE
    if stats.interrupted:
        return 128 + stats.interrupted
    return EXIT_FAILED if stats.failed else EXIT_OK
