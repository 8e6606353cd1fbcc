"""Command lines: ``engine-run`` (fingerprint a library) and ``engine-query`` (read the store).

Exit codes of engine-run
------------------------
0    every track fingerprinted (or already in the store)
1    some tracks failed (each has a record: --jsonl, engine-query failures)
2    usage error (bad option, no PATH, ...)
3    the store failed (a full disk, a --db that is not a store, another writer): what was
     committed before stays intact and readable
4    the Dask backend failed (dask not installed, the scheduler unreachable or gone, workers
     that cannot see the files): what was committed before stays intact; run again
130  interrupted by SIGINT (Ctrl-C); completed tracks are committed
143  interrupted by SIGTERM; completed tracks are committed

Exit codes of engine-query
--------------------------
0    answered
2    usage error, or nothing to answer with: an unknown track or value name, a track without a
     fingerprint, an empty library, a file that cannot be written
3    the store cannot be read (no store at --db, another schema, LMDB refused it)
"""

from __future__ import annotations

import os

# One thread per process for every numeric library, set before numpy loads them: the engine's
# parallelism is its worker processes, and a thread pool per worker would fight over the cores
# (numba's own pool also does not survive fork). The kernels use none, this keeps it so.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402 - after the thread settings on purpose
import contextlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from kernels.errors import FingerprintError  # noqa: E402

from . import query as q  # noqa: E402
from . import store as st  # noqa: E402
from .errors import BackendError  # noqa: E402
from .query import DEFAULT_DUPLICATE_DISTANCE, DEFAULT_DUPLICATE_DURATION_S  # noqa: E402
from .scan import read_paths  # noqa: E402

if TYPE_CHECKING:
    from .supervisor import RunConfig, Supervisor

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_BACKEND = 0, 1, 2, 3, 4


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is not a positive integer")
    return v


def _size(text: str) -> int:
    """Bytes, with an optional K/M/G/T suffix (powers of 1024)."""
    units = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("B")
    mult = units.get(t[-1:], 1)
    if t[-1:] in units:
        t = t[:-1]
    try:
        v = int(float(t) * mult)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 500M or 2G") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return v


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
               "failure (disk full: committed work is intact), 4 Dask backend failure, "
               "130/143 interrupted by SIGINT/SIGTERM (completed work is kept).",
    )
    ap.add_argument("paths", nargs="*", metavar="PATH", help="files, folders, or - for stdin")
    ap.add_argument("-0", "--null", action="store_true",
                    help="paths on stdin are NUL-separated (as find -print0 writes)")
    ap.add_argument("--db", default="fingerprints.lmdb",
                    help="the LMDB store (a folder; created if missing) [%(default)s]")
    ap.add_argument("--cores", type=_positive, default=_usable_cores(),
                    help="worker processes [usable cores: %(default)s]")
    ap.add_argument("--queue-size", type=int, default=None,
                    help="jobs waiting in the bounded queue [2 x cores]; 0 = unbounded, fed "
                         "with put_nowait: the predecessor's failure mode, kept only for "
                         "bench/memory.py (memory then grows with the library)")
    ap.add_argument("--force", action="store_true",
                    help="recompute every track, even when the store has it")
    ap.add_argument("--retry-failed", action="store_true",
                    help="try again tracks that failed on an earlier run")
    ap.add_argument("--max-retries", type=int, default=None,
                    help="retries of a track whose worker died [2; 1 with the Dask backend, "
                         "where a worker restart costs more: docs/SCALING.md]")
    ap.add_argument("--max-entries", type=_positive, default=None,
                    help="keep at most this many fingerprints (least recently used go first)")
    ap.add_argument("--max-bytes", type=_size, default=None,
                    help="keep the stored fingerprints under this size, e.g. 500M")
    ap.add_argument("--block-frames", type=_positive, default=65536,
                    help="frames per decoded block [%(default)s]")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds a track may take before its length is known, plus its "
                         "length / --min-speed after; a worker past that is killed and the "
                         "track retried [%(default)s]")
    ap.add_argument("--min-speed", type=float, default=20.0,
                    help="slowest acceptable speed, x realtime, for the timeout [%(default)s]")
    ap.add_argument("--grace", type=float, default=5.0,
                    help="seconds in-flight tracks get after SIGINT/SIGTERM [%(default)s]")
    ap.add_argument("--jsonl", action="store_true",
                    help="one JSON record per track on stdout")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress, budget or summary")
    ap.add_argument("-v", "--verbose", action="count", default=0,
                    help="log queue depth every 100 jobs, worker deaths and failures")
    ap.add_argument("--no-follow-symlinks", action="store_true",
                    help="do not follow symbolic links met inside folders")
    dask = ap.add_argument_group("distributed (Dask) backend; docs/SCALING.md")
    dask.add_argument("--backend", choices=["local", "dask"], default="local",
                      help="local: forked workers on this machine; dask: Dask workers (a "
                           "LocalCluster of --cores processes, or --scheduler's) [%(default)s]")
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="a running Dask scheduler, e.g. tcp://HOST:8786 (implies "
                           "--backend dask)")
    dask.add_argument("--memory-limit", default="1GiB", type=_memory_limit,
                      help="memory per LocalCluster worker; the nanny restarts a worker past "
                           "95 %% of it [%(default)s]")
    dask.add_argument("--path-map", action="append", default=[], metavar="LOCAL=REMOTE",
                      help="the workers see files under LOCAL at REMOTE (repeatable)")
    dask.add_argument("--connect-timeout", type=float, default=30.0, metavar="S",
                      help="seconds to reach the scheduler and its first worker, or to get "
                           "back a dropped connection [%(default)s]")
    return ap


def _inputs(paths: Sequence[str], null: bool) -> Iterator[str]:
    for p in paths:
        if p == "-":
            yield from read_paths(sys.stdin.buffer, null_separated=null)
        else:
            yield p


def _dask_backend(args: argparse.Namespace) -> bool:
    return args.backend == "dask" or args.scheduler is not None


def _supervisor(args: argparse.Namespace, config: RunConfig) -> Supervisor:
    """The local engine, or the Dask one (--backend dask / --scheduler)."""
    from .supervisor import Supervisor  # the analyzer's imports: engine-run only

    if not _dask_backend(args):
        if args.path_map:
            raise BackendError("--path-map is for the Dask backend: add --backend dask or "
                               "--scheduler")
        return Supervisor(config)
    from .dask_backend import DaskConfig, DaskSupervisor, PathMap

    return DaskSupervisor(config, DaskConfig(
        scheduler=args.scheduler, memory_limit=args.memory_limit,
        path_map=PathMap.parse(args.path_map),
        window=args.queue_size if args.queue_size else None,
        connect_timeout_s=max(0.1, args.connect_timeout)))


def run_main(argv: Sequence[str] | None = None) -> int:
    """``engine-run``: see :func:`run_parser` and the exit codes in this module's docstring."""
    ap = run_parser()
    args = ap.parse_args(argv)
    if not args.paths:
        ap.print_usage(sys.stderr)
        print("engine-run: error: give at least one PATH, or - to read paths from stdin",
              file=sys.stderr)
        return EXIT_USAGE
    if args.queue_size is not None and args.queue_size < 0:
        print("engine-run: error: --queue-size must be >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.paths.count("-") > 1:
        print("engine-run: error: '-' (stdin) may be given once", file=sys.stderr)
        return EXIT_USAGE
    from .supervisor import RunConfig  # the analyzer's imports: engine-run only

    config = RunConfig(
        db=args.db, cores=args.cores,
        queue_size=args.queue_size if args.queue_size is not None else 2 * args.cores,
        force=args.force, retry_failed=args.retry_failed,
        max_retries=max(0, args.max_retries if args.max_retries is not None
                        else 1 if _dask_backend(args) else 2),
        block_frames=args.block_frames, grace_s=max(0.0, args.grace),
        max_entries=args.max_entries, max_bytes=args.max_bytes, jsonl=args.jsonl,
        quiet=args.quiet, progress=sys.stderr.isatty() and not args.quiet,
        verbose=args.verbose, follow_symlinks=not args.no_follow_symlinks,
        timeout_s=max(0.1, args.timeout), min_speed=max(0.01, args.min_speed),
    )
    try:
        supervisor = _supervisor(args, config)
    except BackendError as e:
        print(f"engine-run: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        stats = supervisor.run(_inputs(args.paths, args.null))
    except st.StoreError as e:
        print(f"engine-run: {e}", file=sys.stderr)
        return EXIT_STORE
    except BackendError as e:
        print(f"engine-run: {e}", file=sys.stderr)
        return EXIT_BACKEND
    except BrokenPipeError:  # e.g. | head: the reader left; what completed is committed
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")
        return EXIT_FAILED
    if stats.interrupted:
        return 128 + stats.interrupted
    return EXIT_FAILED if stats.failed else EXIT_OK


def query_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="engine-query",
        description="Read the fingerprint store: show, export, find similar tracks, make "
                    "playlists, find duplicates, chart. Never blocks a running engine-run.",
        epilog="TRACK is a path as engine-run saw it, a track id, or (similar, plot) any "
               "audio file, fingerprinted on the spot. Exit codes: 0 ok, 2 usage error or "
               "nothing to answer with (unknown track, empty library), 3 the store cannot be "
               "read. docs/QUERY.md explains the distance and its weights.",
    )
    ap.add_argument("--db", default="fingerprints.lmdb", help="the LMDB store [%(default)s]")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def weights(p: argparse.ArgumentParser) -> None:
        p.add_argument("--weight", action="append", default=[], metavar="NAME=W",
                       help="override the weight of one value in the distance (repeatable; "
                            "0 ignores it); defaults in docs/QUERY.md")
        p.add_argument("--no-cache", action="store_true",
                       help="do not use or write the library cache in DB/query-cache")

    p = sub.add_parser("show", help="the 25 values of one track, with names and units")
    p.add_argument("track", metavar="TRACK")
    p.add_argument("--json", action="store_true", help="one JSON record instead of a table")

    p = sub.add_parser("export", help="every current fingerprint as JSONL, CSV or NumPy")
    p.add_argument("--format", choices=["jsonl", "csv", "npy"], default="jsonl",
                   help="jsonl: engine-run --jsonl records; csv: one row a track; npy: an "
                        "n x 25 float64 matrix plus FILE.tracks.csv (row, track_id, path) "
                        "[%(default)s]")
    p.add_argument("-o", "--output", default="-", help="file, or - for stdout [-]")

    sub.add_parser("stats", help="counts, versions, store size, evictions (JSON)")

    p = sub.add_parser("failures", help="files that could not be fingerprinted, and why")
    p.add_argument("--kind", help="only failures of this kind (e.g. decode, timeout)")
    p.add_argument("--jsonl", action="store_true", help="one JSON record per failure")

    p = sub.add_parser("similar", help="the tracks that sound most like TRACK")
    p.add_argument("track", metavar="TRACK")
    p.add_argument("-k", type=_positive, default=10, help="how many [%(default)s]")
    p.add_argument("--jsonl", action="store_true", help="one JSON record per result")
    weights(p)

    p = sub.add_parser("playlist", help="a smooth playlist from SEED (to --to), as M3U")
    p.add_argument("seed", metavar="SEED")
    p.add_argument("-n", type=_positive, default=30,
                   help="tracks, seed (and target) included [%(default)s]")
    p.add_argument("--to", metavar="TARGET", help="end on this track, drifting towards it")
    p.add_argument("-o", "--output", default="-", help="file, or - for stdout [-]")
    p.add_argument("--jsonl", action="store_true", help="JSON records instead of M3U")
    p.add_argument("--allow-duplicates", action="store_true",
                   help="let the same music in another encoding (a near duplicate of a track "
                        "already chosen) come again")
    weights(p)

    p = sub.add_parser("duplicates", help="identical files, and the same music in other "
                                          "encodings")
    p.add_argument("--max-distance", type=float, default=DEFAULT_DUPLICATE_DISTANCE,
                   help="largest distance of a near pair [%(default)s]")
    p.add_argument("--duration-tolerance", type=float, default=DEFAULT_DUPLICATE_DURATION_S,
                   help="largest duration difference of a near pair, s [%(default)s]")
    p.add_argument("--jsonl", action="store_true", help="one JSON record per group or pair")
    weights(p)

    p = sub.add_parser("plot", help="one track against the library's distribution (image)")
    p.add_argument("track", metavar="TRACK")
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("map", help="a 2-D (PCA) map of the library, coloured by a value")
    p.add_argument("-o", "--output", required=True, help="image file (.png, .svg, .pdf)")
    p.add_argument("--color", default="tempo_bpm", help="value to colour by [%(default)s]")
    p.add_argument("--highlight", action="append", default=[], metavar="TRACK",
                   help="mark this track (repeatable)")
    weights(p)
    return ap


def _query(s: st.Store, args: argparse.Namespace) -> None:
    out = sys.stdout
    cache = not getattr(args, "no_cache", False)
    match args.command:
        case "show":
            q.cmd_show(s, args.track, out, as_json=args.json)
        case "export":
            q.cmd_export(s, args.format, args.output, out)
        case "stats":
            out.write(json.dumps(q.cmd_stats(s), indent=2, sort_keys=True) + "\n")
        case "failures":
            q.cmd_failures(s, out, as_jsonl=args.jsonl, kind=args.kind)
        case "similar":
            q.cmd_similar(s, args.track, out, k=args.k, weights=args.weight,
                          as_jsonl=args.jsonl, cache=cache)
        case "playlist":
            with (contextlib.nullcontext(out) if args.output == "-"
                  else q.atomic_output(args.output)) as f:
                q.cmd_playlist(s, args.seed, f, n=args.n, to=args.to, weights=args.weight,
                               as_jsonl=args.jsonl, allow_duplicates=args.allow_duplicates,
                               cache=cache)
        case "duplicates":
            q.cmd_duplicates(s, out, max_distance=args.max_distance,
                             duration_tolerance_s=args.duration_tolerance, weights=args.weight,
                             as_jsonl=args.jsonl, cache=cache)
        case "plot":
            r = q.cmd_plot(s, args.track, args.output, cache=cache)
            print(f"engine-query: wrote {args.output} ({r.label})", file=sys.stderr)
        case "map":
            n = q.cmd_map(s, args.output, color=args.color, highlight=args.highlight,
                          weights=args.weight, cache=cache)
            print(f"engine-query: wrote {args.output} ({n} tracks)", file=sys.stderr)


def query_main(argv: Sequence[str] | None = None) -> int:
    """``engine-query``: 0 on success, 2 on a usage error or an unanswerable question, 3 when
    the store cannot be read."""
    args = query_parser().parse_args(argv)
    # a path that is not valid UTF-8 goes out as its original bytes (CSV, M3U, tables)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    try:
        s = st.Store.open(st.StoreConfig(args.db), readonly=True)
    except FingerprintError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_STORE
    try:
        _query(s, args)
    except st.StoreError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_STORE
    except FingerprintError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")
            return EXIT_OK
        print(f"engine-query: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        s.close()
    return EXIT_OK
