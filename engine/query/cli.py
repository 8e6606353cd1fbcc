"""``engine-query``: read the store (show, export, similar, playlist, duplicates, plots).

Exit codes
----------
0    answered (also when stdout's reader leaves early: ``engine-query export | head``)
2    usage error, or nothing to answer with: an unknown track or value name, a track id out of
     range, a track without a fingerprint (and no file to fingerprint now), an empty library,
     a weight outside 0 to 1000, an ``-o`` that may not or cannot be written (a folder, a
     block device, a socket, a missing or read-only folder, a full disk, a path inside the
     store: engine/query/output.py), a stdout that is closed, full, or of an encoding that
     cannot write a path (``PYTHONIOENCODING=ascii``)
3    the store cannot be read (no store at --db, another schema, LMDB refused it)
130  interrupted by SIGINT (Ctrl-C): nothing printed but a line saying so; an ``-o`` file is
     left as it was

``-o FILE`` never clobbers: a regular file is replaced only when the command succeeds (and
keeps its mode), a symbolic link is written through, a character device, a FIFO or an open
descriptor (``/dev/stdout``) is written to directly, anything else is refused before the
command runs (engine/query/output.py).
"""

from __future__ import annotations

from ..threads import one_thread_per_process

one_thread_per_process()  # before numpy loads: engine/threads.py

import argparse  # noqa: E402 - after the thread settings on purpose
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from kernels.errors import FingerprintError  # noqa: E402

from .. import store as st  # noqa: E402
from ..errors import QueryError  # noqa: E402
from ..text import display  # noqa: E402
from . import commands as q  # noqa: E402
from .commands import DEFAULT_DUPLICATE_DISTANCE, DEFAULT_DUPLICATE_DURATION_S  # noqa: E402

EXIT_OK, EXIT_USAGE, EXIT_STORE, EXIT_INTERRUPTED = 0, 2, 3, 130


_OUTPUT_RULES = ("a file is replaced only when the command succeeds (keeping its mode), a "
                 "link is written through, a device or FIFO written to directly; folders, "
                 "block devices and sockets are refused")
_OUTPUT_HELP = "file, or - for stdout [-]; " + _OUTPUT_RULES
_IMAGE_HELP = "image file (.png, .svg, .pdf); " + _OUTPUT_RULES


def _positive(text: str) -> int:
    """A count (-k, -n): a whole number >= 1; one past any library's size means "all" (so a
    number of thousands of digits is not an error, nor a trip over int()'s digit limit)."""
    digits = text.strip().lstrip("+")
    if digits.isascii() and digits.isdigit():
        significant = digits.lstrip("0")
        v = sys.maxsize if len(significant) > 18 else int(digits)
        if v >= 1:
            return v
    shown = text if len(text) <= 40 else f"{text[:20]}...{text[-10:]} ({len(text)} characters)"
    raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number >= 1")


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
    p.add_argument("-o", "--output", default="-", help=_OUTPUT_HELP)

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
    p.add_argument("-o", "--output", default="-", help=_OUTPUT_HELP)
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
    p.add_argument("-o", "--output", required=True, help=_IMAGE_HELP)
    p.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("map", help="a 2-D (PCA) map of the library, coloured by a value")
    p.add_argument("-o", "--output", required=True, help=_IMAGE_HELP)
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
                  else q.atomic_output(args.output, store=args.db)) as f:
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


def _check_outputs(args: argparse.Namespace) -> None:
    """Refuse an ``-o`` that may not be written before any work (module docstring)."""
    output = getattr(args, "output", "-")
    if output == "-":
        return
    q.check_output(output, store=args.db)
    if args.command == "export" and args.format == "npy":
        q.check_output(q.sidecar_path(output), store=args.db)


def _writes_stdout(args: argparse.Namespace) -> bool:
    """Whether the command's answer goes to stdout (plot and map only report on stderr)."""
    return args.command not in ("plot", "map") and getattr(args, "output", "-") == "-"


def main(argv: Sequence[str] | None = None) -> int:
    """``engine-query``: 0 on success, 2 on a usage error or an unanswerable question, 3 when
    the store cannot be read, 130 on SIGINT."""
    args = query_parser().parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("engine-query: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(args: argparse.Namespace) -> int:
    # a path that is not valid UTF-8 goes out as its original bytes (CSV, M3U, tables)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[union-attr]
    try:
        _check_outputs(args)
        if sys.stdout is None and _writes_stdout(args):
            raise QueryError(f"{args.command} writes to stdout, which is closed: leave it open "
                             f"(or > /dev/null)" + (", or give -o FILE" if hasattr(args, "output")
                                                    else ""))
    except FingerprintError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        s = st.Store.open(st.StoreConfig(args.db), readonly=True)
    except FingerprintError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_STORE
    try:
        _query(s, args)
        if sys.stdout is not None:
            sys.stdout.flush()  # a full disk is reported here, not ignored at exit
    except st.StoreError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_STORE
    except FingerprintError as e:
        print(f"engine-query: {e}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeEncodeError as e:  # PYTHONIOENCODING=ascii and a path with an é in it
        print(f"engine-query: stdout's encoding {e.encoding} cannot write "
              f"{e.object[e.start:e.end]!r}: set PYTHONIOENCODING=utf-8, or give -o FILE "
              f"(always UTF-8)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")
            return EXIT_OK
        where = display(os.fsdecode(e.filename)) if e.filename else "writing stdout"
        print(f"engine-query: {where}: {e.strerror or e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        s.close()
    return EXIT_OK
