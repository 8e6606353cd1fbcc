"""The Dask backend's costs: per-task scheduler overhead and per-worker throughput; JSON out.

Usage::

    python bench/dask_scaling.py CORPUS_DIR [--workers 2] [--repeats 3] [-o out.json]

Measured in one run, medians of the repeats:

- **Per-task overhead.** ``--tasks`` (2000) trivial tasks (return the argument) through the
  engine's submission pattern: a bounded window of 2 x worker threads refilled from
  ``as_completed``, on a LocalCluster of ``--workers`` single-threaded processes. Reported as
  ms per task and tasks/s: the most the scheduler and the client can turn over, with no work
  in the tasks.
- **Start-up.** LocalCluster + client start, then the warm-up plugin (numba cache warm).
- **Throughput.** ``engine-run --backend dask --cores W`` and ``engine-run --cores W`` (the
  local engine) over CORPUS_DIR, each into a fresh store, wall time around the subprocess
  (start-up included). Reported: tracks/s, x realtime, x realtime per worker, and the ratio of
  the Dask run to the local one.
- **Estimate** for 10^6 tracks of the corpus's mean length on N workers: the larger of the
  workers' time (tracks x mean track seconds / (N x per-worker x realtime)) and the
  scheduler's (tracks x per-task cost at ``--wide-window``, where the scheduler's and the
  client's CPU, not the round trip, sets the rate); docs/SCALING.md explains it.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import logging
import tempfile
import time
from pathlib import Path

import soundfile as sf


def _identity(x: int) -> int:
    return x


def overhead(workers: int, tasks: int, window: int) -> dict[str, float]:
    """Trivial tasks through a bounded as_completed window on a fresh LocalCluster.

    Parameters
    ----------
    workers : int
        Single-threaded worker processes.
    tasks : int
        Tasks submitted in all.
    window : int
        Tasks in flight at once (the engine uses 2 x worker threads).

    Returns
    -------
    dict
        Seconds of ``start_s`` (cluster and client), ``warmup_plugin_s``, ``close_s``;
        ``ms_per_task``, ``tasks_per_s`` and the ``window``.
    """
    import dask
    from distributed import Client, LocalCluster, as_completed

    from engine.run.backends.dask import DASK_SETTINGS, worker_plugin_class

    with dask.config.set(DASK_SETTINGS):
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1",
                               silence_logs=logging.CRITICAL,
                               scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
        client = Client(cluster)
        t1 = time.perf_counter()
        client.register_plugin(worker_plugin_class()())
        t2 = time.perf_counter()
        ac = as_completed(with_results=True, raise_errors=False)
        it = iter(range(tasks))
        for i in range(window):
            ac.add(client.submit(_identity, next(it), key=f"id-{i}", pure=False))
        t3 = time.perf_counter()
        done = 0
        for future, _ in ac:
            future.release()
            done += 1
            nxt = next(it, None)
            if nxt is not None:
                ac.add(client.submit(_identity, nxt, key=f"id-{nxt}", pure=False))
        t4 = time.perf_counter()
        client.close()
        cluster.close()
        t5 = time.perf_counter()
    assert done == tasks
    return {"start_s": t1 - t0, "warmup_plugin_s": t2 - t1, "close_s": t5 - t4,
            "ms_per_task": (t4 - t3) / tasks * 1e3, "tasks_per_s": tasks / (t4 - t3),
            "window": window}


def engine_wall(corpus: Path, workers: int, backend: str, workdir: Path) -> float:
    """Wall time of ``engine-run [--backend dask] --cores W -q CORPUS`` into a fresh store."""
    extra = ["--backend", "dask"] if backend == "dask" else []
    return common.time_engine_run(corpus=corpus, cores=workers, db=workdir / f"db-{backend}",
                                  extra=extra)


def main(argv: list[str] | None = None) -> int:
    """Run the Dask bench from the command line; returns the exit status (2: no audio)."""
    ap = common.parser(script=__file__, description=__doc__.splitlines()[0])
    ap.add_argument("corpus", type=Path)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--wide-window", type=int, default=64,
                    help="a second window, wide enough that the scheduler's and the client's "
                         "CPU, not the round trip, limits the rate [%(default)s]")
    args = ap.parse_args(argv)
    files = common.find_audio(root=args.corpus)
    if not files:
        print(f"no audio files under {args.corpus}", file=sys.stderr)
        return 2
    audio = sum(sf.info(str(p)).duration for p in files)
    import kernels

    kernels.warmup()
    over: list[dict[str, float]] = []
    wide: list[dict[str, float]] = []
    walls: dict[str, list[float]] = {"local": [], "dask": []}
    with tempfile.TemporaryDirectory() as tmp:
        engine_wall(args.corpus, args.workers, "local", Path(tmp))  # page cache, kernel cache
        for r in range(args.repeats):
            over.append(overhead(args.workers, args.tasks, 2 * args.workers))
            wide.append(overhead(args.workers, args.tasks, args.wide_window))
            for backend in ("local", "dask"):
                walls[backend].append(engine_wall(args.corpus, args.workers, backend, Path(tmp)))
            print(f"repeat {r + 1}: {over[-1]['ms_per_task']:.2f} ms/task, local "
                  f"{walls['local'][-1]:.1f} s, dask {walls['dask'][-1]:.1f} s", file=sys.stderr)
    med = common.median_by_key(over)
    med_wide = common.median_by_key(wide)
    rows = {}
    for backend, w in walls.items():
        wall = common.median(w)
        rows[backend] = {"wall_s": wall, "walls_s": w, "tracks_per_s": len(files) / wall,
                         "x_realtime": audio / wall,
                         "x_realtime_per_worker": audio / wall / args.workers}
    per_worker = rows["dask"]["x_realtime_per_worker"]
    mean_track_s = audio / len(files)
    estimate = []
    for n in (8, 64, 256, 1024):
        work_h = 1e6 * mean_track_s / (n * per_worker) / 3600
        sched_h = 1e6 * med_wide["ms_per_task"] / 1e3 / 3600
        estimate.append({"workers": n, "worker_bound_h": work_h, "scheduler_bound_h": sched_h,
                         "estimate_h": max(work_h, sched_h)})
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": common.machine_info(kernels=kernels),
        "corpus": {"path": str(args.corpus), "files": len(files), "audio_s": audio,
                   "mean_track_s": mean_track_s},
        "workers": args.workers,
        "repeats": args.repeats,
        "overhead": {"median": med, "runs": over, "tasks": args.tasks},
        "overhead_wide_window": {"median": med_wide, "runs": wide},
        "engine": rows,
        "dask_over_local": rows["dask"]["x_realtime"] / rows["local"]["x_realtime"],
        "estimate_1e6_tracks": estimate,
    }
    summary = (f"per task {med['ms_per_task']:.2f} ms ({med['tasks_per_s']:.0f}/s, window "
               f"{med['window']:.0f}), {med_wide['ms_per_task']:.2f} ms at window "
               f"{med_wide['window']:.0f}; cluster start {med['start_s']:.2f} s, warm-up "
               f"{med['warmup_plugin_s']:.2f} s; dask {rows['dask']['x_realtime']:.0f}x "
               f"realtime ({per_worker:.0f}x per worker) = {result['dask_over_local']:.2f} of "
               f"local {rows['local']['x_realtime']:.0f}x")
    common.write_report(report=result, output=args.output, summary=summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
