"""Step profile of memory, in MB: what import, warmup and each extraction cost, in the supervisor
and in a forked worker.

Usage::

    python bench/profile_memory.py [-o bench/results/profile-memory.json] [--seconds 180]

Steps, in this process (the supervisor's side, RSS and USS via psutil):

1. ``baseline``: the interpreter with numpy imported (and psutil, argparse, json and
   bench/common.py, which defers whatever else it needs to its functions), nothing else;
2. ``after_init``: ``import kernels`` + ``kernels.warmup()`` (numba, llvmlite, pyfftw,
   soundfile, every kernel loaded or compiled);
3. ``first_extraction``: one ``--seconds`` long (3 min) synthesised 44.1 kHz stereo track fed
   to a fresh ``kernels.Analyzer`` in ``--block-frames`` blocks generated one by one into
   preallocated buffers (never held whole), then ``finish()``; ``peak_rss_mb`` is the highest
   RSS seen after any ``feed``;
4. ``after_gc``: the analyzer dropped, ``gc.collect()``;
5. ``second_extraction``: the same track again with another fresh analyzer.

The worker's side: right after step 2, a child is forked (``multiprocessing`` ``fork``
context, after ``gc.freeze()``, as engine-run forks its workers after warmup), does steps 3-5
itself while this process waits, and sends its RSS and USS at each step back through a ``Pipe``
(``after_fork`` is its first figure: forked pages are shared until written, so USS is what the
worker adds). The
supervisor's steps 3-5 run after the child has exited. Both fingerprints of each process must be
bit-identical (``fingerprints_identical``).

Thread pools are limited to one thread before numpy loads (bench/common.py), as in engine-run.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import gc
import multiprocessing as mp
import platform
import time
from typing import Any

import numpy as np
import psutil

SAMPLE_RATE = 44100
CHANNELS = 2


def measure(proc: psutil.Process) -> dict[str, float]:
    """RSS and USS of ``proc`` in MB.

    Parameters
    ----------
    proc : psutil.Process

    Returns
    -------
    dict
        ``rss_mb`` and ``uss_mb``.
    """
    info = proc.memory_full_info()
    return {"rss_mb": round(info.rss / common.MB, 2), "uss_mb": round(info.uss / common.MB, 2)}


class Track:
    """A synthesised stereo track produced block by block into preallocated buffers.

    A 220 Hz tone over quiet noise with a click every 0.5 s (120 BPM), the right channel at 0.8
    of the left; the same seed always gives the same samples.

    Parameters
    ----------
    seconds : float
        Length of the track.
    block_frames : int
        Frames per block.
    """

    def __init__(self, seconds: float, block_frames: int) -> None:
        self.total = int(round(seconds * SAMPLE_RATE))
        self.block_frames = block_frames
        self._idx = np.arange(block_frames, dtype=np.float64)
        self._t = np.empty(block_frames, dtype=np.float64)
        self._noise = np.empty(block_frames, dtype=np.float64)
        self._out = np.empty((block_frames, CHANNELS), dtype=np.float32)

    def blocks(self, seed: int = 0) -> Any:
        """Yield float32 ``(frames, 2)`` views of one reused buffer, start to end.

        Parameters
        ----------
        seed : int
            Seed of the noise.

        Yields
        ------
        numpy.ndarray
            The next block (valid until the next one is asked for).
        """
        rng = np.random.default_rng(seed)
        step = SAMPLE_RATE // 2
        start = 0
        while start < self.total:
            n = min(self.block_frames, self.total - start)
            t, noise = self._t[:n], self._noise[:n]
            np.add(self._idx[:n], start, out=t)
            t *= 2 * np.pi * 220.0 / SAMPLE_RATE
            np.sin(t, out=t)
            t *= 0.2
            rng.standard_normal(out=noise)
            noise *= 0.02
            t += noise
            t[(-start) % step :: step] += 0.5
            out = self._out[:n]
            out[:, 0] = t
            np.multiply(t, 0.8, out=out[:, 1], casting="same_kind")
            yield out
            start += n


def extract(track: Track, proc: psutil.Process) -> tuple[np.ndarray, float]:
    """Fingerprint ``track`` with a fresh ``kernels.Analyzer`` fed block by block.

    Parameters
    ----------
    track : Track
    proc : psutil.Process
        This process, for the RSS after each ``feed``.

    Returns
    -------
    values : numpy.ndarray
        The 25 values.
    peak_rss_mb : float
        The highest RSS seen after any ``feed`` and after ``finish``.
    """
    import kernels

    analyzer = kernels.Analyzer(SAMPLE_RATE, CHANNELS)
    peak = 0
    for block in track.blocks():
        analyzer.feed(block)
        peak = max(peak, proc.memory_info().rss)
    values = analyzer.finish().as_array()
    peak = max(peak, proc.memory_info().rss)
    return values, round(peak / common.MB, 2)


def extraction_steps(track: Track) -> tuple[dict[str, dict[str, float]], bool]:
    """Steps 3-5 in the calling process: first extraction, gc, second extraction.

    Parameters
    ----------
    track : Track

    Returns
    -------
    steps : dict
        Step name -> ``rss_mb``, ``uss_mb`` (and ``peak_rss_mb`` for the extractions).
    identical : bool
        Whether both fingerprints are bit-identical.
    """
    proc = psutil.Process()
    steps: dict[str, dict[str, float]] = {}
    first, peak = extract(track, proc)
    steps["first_extraction"] = {**measure(proc), "peak_rss_mb": peak}
    gc.collect()
    steps["after_gc"] = measure(proc)
    second, peak = extract(track, proc)
    steps["second_extraction"] = {**measure(proc), "peak_rss_mb": peak}
    identical = bool(np.array_equal(first, second, equal_nan=True))
    return steps, identical


def _child(conn: Any, track: Track) -> None:
    """The forked worker: its first figure, then steps 3-5, all sent through ``conn``."""
    try:
        steps = {"after_fork": measure(psutil.Process())}
        more, identical = extraction_steps(track)
        steps.update(more)
        conn.send({"steps": steps, "fingerprints_identical": identical})
    except Exception as e:  # reported, not lost
        conn.send({"error": f"{type(e).__name__}: {e}"})
    finally:
        conn.close()


def run_worker(track: Track, timeout_s: float) -> dict[str, Any]:
    """Fork a child, let it run steps 3-5, and return what it reported.

    Parameters
    ----------
    track : Track
    timeout_s : float
        The longest wait for its report.

    Returns
    -------
    dict
        ``steps`` and ``fingerprints_identical``, or ``error``.
    """
    ctx = mp.get_context("fork")
    reader, writer = ctx.Pipe(duplex=False)
    gc.freeze()  # as engine-run does before forking: a full GC then copies no inherited page
    p = ctx.Process(target=_child, args=(writer, track), name="profile-worker")
    p.start()
    writer.close()
    try:
        report: dict[str, Any] = (reader.recv() if reader.poll(timeout_s)
                                  else {"error": f"no report within {timeout_s} s"})
    except EOFError:
        report = {"error": "the worker died before reporting"}
    p.join(timeout=10)
    if p.is_alive():
        p.kill()
        p.join(timeout=10)
    report["pid"] = p.pid
    report["exit_code"] = p.exitcode
    return report


STEPS = ("baseline", "after_init", "after_fork", "first_extraction", "after_gc",
         "second_extraction")


def table(result: dict[str, Any]) -> str:
    """The step table: supervisor RSS / USS and worker RSS / USS per step, in MB."""
    sup = result["supervisor"]["steps"]
    wrk = result["worker"].get("steps", {})

    def cell(d: dict[str, dict[str, float]], step: str, key: str) -> str:
        return f"{d[step][key]:.1f}" if step in d and key in d[step] else "-"

    head = (f"{'step':<18} {'sup RSS':>8} {'sup USS':>8} {'sup peak':>8} {'wrk RSS':>8} "
            f"{'wrk USS':>8} {'wrk peak':>8}")
    lines = [head, "-" * len(head)]
    for s in STEPS:
        lines.append(f"{s:<18} {cell(sup, s, 'rss_mb'):>8} {cell(sup, s, 'uss_mb'):>8} "
                     f"{cell(sup, s, 'peak_rss_mb'):>8} {cell(wrk, s, 'rss_mb'):>8} "
                     f"{cell(wrk, s, 'uss_mb'):>8} {cell(wrk, s, 'peak_rss_mb'):>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run the steps, print the table to stderr, write JSON.

    Returns
    -------
    int
        0 when both sides completed with identical fingerprints, else 1.
    """
    ap = common.parser(script=__file__, description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="track length (default 180)")
    ap.add_argument("--block-frames", type=int, default=65536,
                    help="frames per fed block (default 65536, engine-run's)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    proc = psutil.Process()
    gc.collect()
    sup: dict[str, dict[str, float]] = {"baseline": measure(proc)}
    t_init = time.monotonic()
    import kernels

    kernels.warmup()
    init_s = time.monotonic() - t_init
    gc.collect()
    sup["after_init"] = measure(proc)
    track = Track(args.seconds, args.block_frames)
    worker = run_worker(track, timeout_s=120.0)
    more, identical = extraction_steps(track)
    sup.update(more)
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "psutil": psutil.__version__},
        "track": {"seconds": args.seconds, "sample_rate": SAMPLE_RATE, "channels": CHANNELS,
                  "block_frames": args.block_frames,
                  "source": "synthesised block by block (tone + noise + clicks)"},
        "definitions": {
            "rss_mb": "resident set size (psutil memory_full_info().rss)",
            "uss_mb": "unique set size: pages mapped by this process only",
            "peak_rss_mb": "highest RSS after any feed() or finish() of that extraction",
            "baseline": "interpreter + numpy (+ psutil, argparse, json)",
            "after_init": "import kernels + kernels.warmup()",
            "after_fork": "the worker right after fork (after the supervisor's warmup)",
        },
        "init_s": round(init_s, 3),
        "supervisor": {"steps": sup, "fingerprints_identical": identical},
        "worker": worker,
        "deltas_mb": {
            "supervisor_init_rss": round(sup["after_init"]["rss_mb"]
                                         - sup["baseline"]["rss_mb"], 2),
            "supervisor_first_extraction_rss": round(sup["first_extraction"]["rss_mb"]
                                                     - sup["after_init"]["rss_mb"], 2),
            "supervisor_second_minus_first_rss": round(sup["second_extraction"]["rss_mb"]
                                                       - sup["first_extraction"]["rss_mb"], 2),
        },
        "elapsed_s": 0.0,
    }
    ws = worker.get("steps", {})
    if "after_fork" in ws and "second_extraction" in ws:
        result["deltas_mb"]["worker_first_extraction_uss"] = round(
            ws["first_extraction"]["uss_mb"] - ws["after_fork"]["uss_mb"], 2)
        result["deltas_mb"]["worker_second_minus_first_uss"] = round(
            ws["second_extraction"]["uss_mb"] - ws["first_extraction"]["uss_mb"], 2)
    result["elapsed_s"] = round(time.monotonic() - t0, 2)
    ok = identical and "error" not in worker and bool(worker.get("fingerprints_identical"))
    lines = [table(result)]
    if "error" in worker:
        lines.append(f"worker: {worker['error']}")
    lines.append(f"fingerprints identical: supervisor {identical}, worker "
                 f"{worker.get('fingerprints_identical')}; {result['elapsed_s']:.1f} s")
    common.write_report(report=result, output=args.output, summary="\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
