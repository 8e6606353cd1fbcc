"""Memory of engine-run against library size: the bounded queue (default) vs ``--queue-size 0``.

Usage::

    python bench/memory.py [-o bench/results/memory.json] [--png bench/results/memory.png]
    python bench/memory.py --workers 1 2 4 8 --all-unbounded        # the full matrix

The predecessor fingerprinted 54K tracks with an UNBOUNDED job queue: every job was taken at
once and the process grew to 49 GB. This bench reproduces its validation table on our engine.
It builds, once per ``--sizes`` entry, a library of tiny tracks (one 20 ms 44.1 kHz stereo WAV,
hard-linked ``N`` times with ``os.link``, 1000 per folder; a second copy of the file
when the file system's link limit is reached), then for each size x ``--workers``
count x mode runs::

    .venv/bin/engine-run LIB --db FRESH --cores N -q [--queue-size 0]

in a subprocess (never through a shell) and samples it with psutil every ``--interval`` s
(50 ms; ``common.sample_engine_memory``): the supervisor's RSS and its private resident memory
(RSS - shared, i.e. its anonymous RSS, psutil's ``rss`` and ``shared``), each worker's USS (the
supervisor's children except the multiprocessing resource tracker; forked workers share the
supervisor's pages, USS is what each adds), and the total = supervisor RSS + the sum of the
workers' USS.

Modes: ``bounded`` is the engine's default (a queue of 2 x cores and at most queue + cores
unanswered jobs); ``unbounded`` is ``--queue-size 0``, the predecessor's failure mode (an
unbounded queue fed with ``put_nowait``, no cap). By default the unbounded mode runs only at
the largest worker count (it is there to show a failure, not to be tuned); ``--all-unbounded``
runs it at every count.

Out: a table on stderr (rows = size x workers x mode, columns = peaks in MB), the flatness
figure the issue targets ("supervisor's anonymous RSS flat within 5 % from 1K to 100K", i.e.
``private_peak(largest) / private_peak(smallest) - 1`` per mode and worker count), JSON with
per-run peaks and time series (``-o``; stdout without it) and a PNG (``--png``; needs
matplotlib, imported only then).
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import contextlib
import errno
import json
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf

#: Length of the one synthesised track every library entry links to.
TRACK_SECONDS = 0.02
SAMPLE_RATE = 44100
#: Tracks per folder of a library.
PER_FOLDER = 1000
#: Most points kept per time series in the JSON.
MAX_POINTS = 400
#: The issue's target for the supervisor's anonymous RSS from the smallest to the largest size.
FLAT_TARGET_PCT = 5.0
#: Rough rates measured on the project's machine (2 cores, tiny tracks), for the estimate only.
EST_RATE_BOUNDED = 1300.0  # tracks/s (1450 on a quiet machine, ~1000 beside another bench)
EST_RATE_UNBOUNDED = 2000.0  # 2800 quiet, ~900 beside another bench
EST_START_S = 1.5  # engine start-up, store check and clean-up per run
EST_LINK_S = 25e-6  # one os.link


def write_track(path: Path) -> None:
    """Write the single 20 ms stereo 16-bit WAV every library entry is a hard link of.

    Parameters
    ----------
    path : Path
        Where to write it.
    """
    n = int(round(TRACK_SECONDS * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    x = 0.1 * np.sin(2 * np.pi * 440.0 * t)
    sf.write(path, np.stack([x, 0.8 * x], axis=1).astype(np.float32), SAMPLE_RATE,
             subtype="PCM_16")


class Linker:
    """Hard links of one synthesised track; a new copy of it when a file system's link limit
    is reached (ext4 allows 65 000 links per file; 100K tracks need two copies).

    Parameters
    ----------
    folder : Path
        Where the source copies are written.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sources: list[Path] = []
        self._new_source()

    def _new_source(self) -> None:
        path = self.folder / f"track-{len(self.sources)}.wav"
        write_track(path)
        self.sources.append(path)

    def link(self, dest: Path) -> None:
        """Make ``dest`` a hard link of the current source (no shell, no copy of the data).

        Parameters
        ----------
        dest : Path
        """
        try:
            os.link(self.sources[-1], dest)
        except OSError as e:
            if e.errno != errno.EMLINK:
                raise
            self._new_source()
            os.link(self.sources[-1], dest)


def build_library(root: Path, n: int, linker: Linker) -> float:
    """Create ``n`` hard-linked tracks under ``root``, ``PER_FOLDER`` per folder.

    A library already complete from an earlier run in the same ``--workdir`` (its marker file
    says so) is kept as it is.

    Parameters
    ----------
    root : Path
        The library folder (created; removed first when incomplete).
    n : int
        Number of tracks.
    linker : Linker
        Makes the links.

    Returns
    -------
    float
        Seconds spent building (0 when reused).
    """
    marker = root.with_name(root.name + ".complete")
    if marker.exists() and marker.read_text().strip() == str(n):
        return 0.0
    t0 = time.monotonic()
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    folder = root
    for i in range(n):
        if i % PER_FOLDER == 0:
            folder = root / f"d{i // PER_FOLDER:04d}"
            folder.mkdir()
        linker.link(folder / f"t{i:07d}.wav")
    marker.write_text(f"{n}\n")
    return time.monotonic() - t0


def downsample(series: dict[str, list[float]], max_points: int = MAX_POINTS
               ) -> dict[str, list[float]]:
    """At most ``max_points`` points per series: consecutive samples are grouped in equal
    buckets; ``t_s`` keeps each bucket's first time, every other series its maximum (so the
    peaks survive).

    Parameters
    ----------
    series : dict of str to list of float
        Equal-length series, ``t_s`` among them.
    max_points : int
        The most points kept.

    Returns
    -------
    dict of str to list of float
        The same keys, values rounded to 0.01.
    """
    n = len(series["t_s"])
    if n <= max_points:
        return {k: [round(x, 2) for x in v] for k, v in series.items()}
    edges = np.linspace(0, n, max_points + 1).astype(int)
    out: dict[str, list[float]] = {}
    for key, values in series.items():
        arr = np.asarray(values, dtype=np.float64)
        if key == "t_s":
            picked = arr[edges[:-1]]
        else:
            picked = np.maximum.reduceat(arr, edges[:-1])
        out[key] = [round(float(x), 2) for x in picked]
    return out


def store_stats(engine_query: Path, db: Path) -> dict[str, Any] | None:
    """``engine-query --db DB stats`` as a dict (None if it fails): were all tracks stored?"""
    try:
        res = subprocess.run([str(engine_query), "--db", str(db), "stats"], capture_output=True,
                             text=True, timeout=120, check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def plan(sizes: list[int], workers: list[int], all_unbounded: bool
         ) -> list[tuple[int, int, str]]:
    """The (size, workers, mode) runs, smallest size first.

    Parameters
    ----------
    sizes, workers : list of int
    all_unbounded : bool
        Run the unbounded mode at every worker count, not only the largest.

    Returns
    -------
    list of (int, int, str)
    """
    unb = sorted(workers) if all_unbounded else [max(workers)]
    runs = []
    for n in sorted(sizes):
        for w in sorted(workers):
            runs.append((n, w, "bounded"))
        for w in unb:
            runs.append((n, w, "unbounded"))
    return runs


def estimate_s(runs: list[tuple[int, int, str]], sizes: list[int]) -> float:
    """A rough wall-time estimate in seconds (rates measured here on 2 cores)."""
    t = sum(EST_LINK_S * n for n in sizes)
    for n, _w, mode in runs:
        rate = EST_RATE_UNBOUNDED if mode == "unbounded" else EST_RATE_BOUNDED
        t += EST_START_S + n / rate
    return t


def flatness(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Growth of the supervisor's peak private memory from the smallest to the largest size.

    Parameters
    ----------
    runs : list of dict
        The run records (``size``, ``workers``, ``mode``, ``peaks``).

    Returns
    -------
    list of dict
        Per mode and worker count measured at two sizes or more: ``growth_pct`` =
        100 * (private_peak(largest) / private_peak(smallest) - 1), ``growth_mb``, and
        ``within_target`` (<= 5 %).
    """
    out = []
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in runs:
        if r["exit_code"] == 0:
            groups.setdefault((r["mode"], r["workers"]), []).append(r)
    for (mode, w), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["size"])
        if len(rs) < 2:
            continue
        lo = rs[0]["peaks"]["sup_private_mb"]
        hi = rs[-1]["peaks"]["sup_private_mb"]
        pct = 100.0 * (hi / lo - 1.0)
        out.append({"mode": mode, "workers": w, "from_size": rs[0]["size"],
                    "to_size": rs[-1]["size"], "private_peak_from_mb": round(lo, 1),
                    "private_peak_to_mb": round(hi, 1), "growth_mb": round(hi - lo, 1),
                    "growth_pct": round(pct, 2), "target_pct": FLAT_TARGET_PCT,
                    "within_target": pct <= FLAT_TARGET_PCT})
    return out


def table(runs: list[dict[str, Any]]) -> str:
    """The validation table: one row per size x workers x mode, peaks in MB."""
    head = (f"{'tracks':>7} {'wrk':>3} {'mode':<9} {'wall s':>6} {'trk/s':>6} {'sup RSS':>7} "
            f"{'sup priv':>8} {'wrk USS':>7} {'total':>6}  exit")
    lines = [head, "-" * len(head)]
    for r in runs:
        p = r["peaks"]
        lines.append(f"{r['size']:>7} {r['workers']:>3} {r['mode']:<9} {r['wall_s']:>6.1f} "
                     f"{r['tracks_per_s']:>6.0f} {p['sup_rss_mb']:>7.1f} "
                     f"{p['sup_private_mb']:>8.1f} {p['worker_uss_mb']:>7.1f} "
                     f"{p['total_mb']:>6.1f}  {r['exit_code']}")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Two panels: supervisor RSS over time for every run of the largest size, and the peak
    supervisor private memory against library size (log x) per mode and worker count.

    Parameters
    ----------
    result : dict
        The JSON result.
    path : Path
        The PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [r for r in result["runs"] if r["series"]["t_s"]]
    largest = max((r["size"] for r in runs), default=0)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys = sorted({(r["mode"], r["workers"]) for r in runs})
    color = {k: colors[i % len(colors)] for i, k in enumerate(keys)}

    def label(mode: str, w: int) -> str:
        if mode == "unbounded":
            return f"UNBOUNDED (--queue-size 0), {w} worker{'s' * (w > 1)}"
        return f"bounded (default), {w} worker{'s' * (w > 1)}"

    for r in runs:
        if r["size"] != largest:
            continue
        s = r["series"]
        k = (r["mode"], r["workers"])
        style = "--" if r["mode"] == "unbounded" else "-"
        ax1.plot(s["t_s"], s["sup_rss_mb"], style, color=color[k], lw=1.8,
                 label=f"{label(*k)}: supervisor RSS")
        ax1.plot(s["t_s"], s["sup_private_mb"], style, color=color[k], lw=0.9, alpha=0.6,
                 label=f"{label(*k)}: supervisor private")
    ax1.set_xlabel("seconds since launch")
    ax1.set_ylabel("MB")
    top = max((max(r["series"]["sup_rss_mb"]) for r in runs if r["size"] == largest), default=1)
    ax1.set_ylim(0, 1.25 * top)  # room for the note above the lines
    ax1.set_title(f"Supervisor memory over time, {largest:,} tracks")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7.5, loc="lower right")
    ax1.text(0.01, 0.99, "thick: RSS; thin: private (RSS - shared = anonymous).\nThe gap is "
             "shared file pages: libraries and the LMDB store's\nmapped file, which grows with "
             "the store.", transform=ax1.transAxes, va="top", fontsize=7.5, color="0.3")

    flat = {(f["mode"], f["workers"]): f for f in result["flatness"]}
    for k in keys:
        rs = sorted((r for r in runs if (r["mode"], r["workers"]) == k and r["exit_code"] == 0),
                    key=lambda r: r["size"])
        if not rs:
            continue
        style = "--" if k[0] == "unbounded" else "-"
        xs = [r["size"] for r in rs]
        ys = [r["peaks"]["sup_private_mb"] for r in rs]
        lab = label(*k)
        if k in flat:
            lab += f": {flat[k]['growth_pct']:+.1f} %"
        # lines that coincide stay visible: earlier ones get bigger markers, drawn below
        i = keys.index(k)
        ax2.plot(xs, ys, style, marker="os^Dv<>p"[i % 8], markersize=max(4.0, 10.0 - 1.5 * i),
                 color=color[k], lw=1.8, label=lab, zorder=2 + i)
    ax2.set_xscale("log")
    ax2.set_xlabel("library size (tracks)")
    ax2.set_ylabel("peak supervisor private (anonymous) RSS, MB")
    ax2.set_ylim(bottom=0)
    ax2.set_title(f"Peak supervisor private memory vs library size (target: flat within "
                  f"{FLAT_TARGET_PCT:.0f} %)")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"engine-run memory, tiny {TRACK_SECONDS * 1000:.0f} ms tracks, "
                 f"{result['machine']['cores']} cores ({result['date']})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def dumps(obj: Any) -> str:
    """JSON with indentation, but each list of numbers on one line (the series stay short)."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*(-?[\d.eE+-]+(?:,\s*-?[\d.eE+-]+)*)\s*\]",
                  lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]",
                  text)


def main(argv: list[str] | None = None) -> int:
    """Command line: build the libraries, run the matrix, print the table, write JSON / PNG.

    Returns
    -------
    int
        0 when every run exited 0 and stored every track, else 1.
    """
    ap = common.parser(script=__file__, description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000],
                    help="library sizes in tracks (default: 1000 10000 100000)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                    help="--cores values (default: 1 2; the full matrix: 1 2 4 8)")
    ap.add_argument("--all-unbounded", action="store_true",
                    help="run --queue-size 0 at every worker count, not only the largest")
    ap.add_argument("--no-unbounded", action="store_true", help="skip --queue-size 0")
    ap.add_argument("--interval", type=float, default=0.05, help="sampling period, s")
    ap.add_argument("--workdir", type=Path,
                    help="where libraries and stores go (kept; libraries reused); default: a "
                         "temporary folder, removed at the end")
    ap.add_argument("--engine", type=Path, default=common.engine_script("engine-run"),
                    help="the engine-run executable (default: next to this Python)")
    ap.add_argument("--png", type=Path, help="write the plot here (needs matplotlib)")
    args = ap.parse_args(argv)
    if min(args.sizes) < 1 or min(args.workers) < 1:
        ap.error("--sizes and --workers take positive integers")
    engine = args.engine
    engine_query = engine.with_name("engine-query")
    if not engine.exists():
        ap.error(f"{engine} not found (run make demo first, or pass --engine)")
    runs_plan = plan(args.sizes, args.workers, args.all_unbounded)
    if args.no_unbounded:
        runs_plan = [r for r in runs_plan if r[2] == "bounded"]
    est = estimate_s(runs_plan, args.sizes)
    print(f"memory bench: {len(runs_plan)} runs (sizes {sorted(args.sizes)}, workers "
          f"{sorted(args.workers)}), estimated {est / 60:.1f} min", file=sys.stderr)
    t_start = time.monotonic()
    tmp_ctx = (tempfile.TemporaryDirectory(prefix="bench-memory-") if args.workdir is None
               else contextlib.nullcontext(str(args.workdir)))
    runs: list[dict[str, Any]] = []
    build_s: dict[str, float] = {}
    n_sources = 0
    with tmp_ctx as tmp_name:
        work = Path(tmp_name)
        work.mkdir(parents=True, exist_ok=True)
        linker = Linker(work)
        libs: dict[int, Path] = {}
        for n in sorted(set(args.sizes)):
            libs[n] = work / f"lib-{n}"
            build_s[str(n)] = round(build_library(libs[n], n, linker), 2)
            print(f"  library {n:>7} tracks: built in {build_s[str(n)]:.1f} s", file=sys.stderr)
        n_sources = len(linker.sources)
        for n, w, mode in runs_plan:
            db = work / f"db-{n}-{w}-{mode}"
            if db.exists():
                shutil.rmtree(db)
            cmd = [str(engine), str(libs[n]), "--db", str(db), "--cores", str(w), "-q"]
            if mode == "unbounded":
                cmd += ["--queue-size", "0"]
            res = common.sample_engine_memory(cmd, args.interval, work / "engine-stderr.txt")
            stats = store_stats(engine_query, db)
            shutil.rmtree(db, ignore_errors=True)
            s = res["series"]
            peaks = {
                "sup_rss_mb": max(s["sup_rss_mb"], default=0.0),
                "sup_private_mb": max(s["sup_private_mb"], default=0.0),
                "worker_uss_mb": max(s["worker_max_uss_mb"], default=0.0),
                "workers_uss_sum_mb": max(s["workers_uss_mb"], default=0.0),
                "total_mb": max(s["total_mb"], default=0.0),
            }
            stored = stats.get("fingerprints") if stats else None
            run = {
                "size": n, "workers": w, "mode": mode,
                "queue_size": 0 if mode == "unbounded" else 2 * w,
                "cmd": cmd, "exit_code": res["exit_code"],
                "wall_s": round(res["wall_s"], 3),
                "tracks_per_s": round(n / res["wall_s"], 1),
                "fingerprints_stored": stored,
                "peaks": {k: round(v, 2) for k, v in peaks.items()},
                "sup_vm_hwm_mb": res["sup_vm_hwm_mb"],
                "worker_peak_uss_mb": res["worker_peak_uss_mb"],
                "sampler": res["sampler"],
                "stderr_tail": res["stderr_tail"],
                "series_points_full": len(s["t_s"]),
                "series": downsample(s),
            }
            runs.append(run)
            print(f"  {n:>7} tracks, {w} worker(s), {mode:<9}: {res['wall_s']:6.1f} s, exit "
                  f"{res['exit_code']}, stored {stored}, supervisor private peak "
                  f"{peaks['sup_private_mb']:.1f} MB", file=sys.stderr)
    total_wall = time.monotonic() - t_start
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": common.cpu_model(), "cores": os.cpu_count(),
                    "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "python": platform.python_version(), "psutil": psutil.__version__},
        "git_commit": common.git_commit(),
        "config": {"sizes": sorted(args.sizes), "workers": sorted(args.workers),
                   "all_unbounded": args.all_unbounded, "interval_s": args.interval,
                   "track": {"seconds": TRACK_SECONDS, "sample_rate": SAMPLE_RATE,
                             "channels": 2, "format": "WAV PCM_16",
                             "hard_links_of_one_file": True,
                             "file_copies": n_sources, "per_folder": PER_FOLDER}},
        "definitions": {
            "sup_rss_mb": "supervisor RSS (psutil memory_info().rss, = memory_full_info().rss)",
            "sup_private_mb": "supervisor private resident memory: rss - shared "
                              "(statm: shared = RssFile + RssShmem, so this is RssAnon)",
            "worker_uss_mb": "peak USS of any one worker (children except resource_tracker)",
            "total_mb": "supervisor RSS + sum of the workers' USS, peak over samples",
            "series": f"downsampled to <= {MAX_POINTS} points: bucket maximum, t_s = bucket "
                      "start",
            "flatness": "growth_pct = 100 * (private peak at the largest size / at the "
                        "smallest - 1)",
        },
        "estimated_s": round(est, 1),
        "total_wall_s": round(total_wall, 1),
        "library_build_s": build_s,
        "runs": runs,
        "flatness": flatness(runs),
    }
    print(table(runs), file=sys.stderr)
    for f in result["flatness"]:
        verdict = ("within" if f["within_target"] else "OVER") + f" the {FLAT_TARGET_PCT:.0f} %"
        print(f"flatness {f['mode']:<9} {f['workers']} worker(s): supervisor private peak "
              f"{f['private_peak_from_mb']:.1f} MB at {f['from_size']} -> "
              f"{f['private_peak_to_mb']:.1f} MB at {f['to_size']}: {f['growth_pct']:+.2f} % "
              f"({f['growth_mb']:+.1f} MB), {verdict} target", file=sys.stderr)
    print(f"total {total_wall:.0f} s (estimated {est:.0f} s)", file=sys.stderr)
    common.write_report(report=result, output=args.output, encode=dumps)
    if args.png:
        plot(result, args.png)
        print(f"plot: {args.png}", file=sys.stderr)
    ok = all(r["exit_code"] == 0 and r["fingerprints_stored"] == r["size"] for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
