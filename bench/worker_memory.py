"""Private memory (USS) of engine-run's workers and supervisor while they fingerprint long tracks.

Usage::

    python bench/worker_memory.py [--hours 2] [--cores 2] [--format flac|m4a] [-o out.json]

Writes a ``--hours`` long track (a quiet tone with clicks, written block by block, never held
whole) and a 3-minute one into a temporary folder, as FLAC (libsndfile decodes it) or as M4A
with AAC at 256 kbit/s (FFmpeg decodes it; tools/encode.py writes it), runs ``engine-run
--cores N`` over them in a subprocess, and samples every 50 ms, with psutil
(``common.sample_engine_memory``, as bench/memory.py does), the USS of each worker (forked
workers share the supervisor's pages: USS is what each adds) and the supervisor's private
resident memory (RSS - shared). Reports the peak of each in MB, JSON out. The issue's target:
each worker <= 150 MB whatever the track length.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import encode  # tools/encode.py: FFmpeg's encoders

#: Sampling period of the engine's memory, s.
INTERVAL_S = 0.05


def _blocks(seconds: float, sr: int) -> Iterator[np.ndarray]:
    """A 220 Hz tone at -20 dBFS with a click every 0.5 s, stereo, 10 s at a time."""
    block = sr * 10
    done = 0
    total = int(seconds * sr)
    while done < total:
        n = min(block, total - done)
        t = (done + np.arange(n)) / sr
        x = 0.1 * np.sin(2 * np.pi * 220.0 * t)
        x[(np.arange(n) + done) % (sr // 2) == 0] += 0.5  # clicks
        yield np.stack([x, 0.8 * x], axis=1).astype(np.float32)
        done += n


def write_long(path: Path, seconds: float, sr: int = 44100) -> None:
    """Write a stereo track of :func:`_blocks`, never held whole.

    Parameters
    ----------
    path : Path
        The file; its extension picks the format: ``.flac`` (16-bit, soundfile) or ``.m4a``
        (AAC 256 kbit/s with FFmpeg's fast coder, tools/encode.py).
    seconds : float
        Length.
    sr : int
        Sample rate in Hz.
    """
    if path.suffix == ".m4a":
        encode.write(path, _blocks(seconds, sr), sr, 2, "m4a_aac_fast")
        return
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
        for x in _blocks(seconds, sr):
            f.write(x)


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; the exit status is 0 when engine-run exited 0, else 1."""
    ap = common.parser(script=__file__, description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0, help="length of the long track (2)")
    ap.add_argument("--cores", type=int, default=2, help="engine-run --cores (2)")
    ap.add_argument("--format", choices=("flac", "m4a"), default="flac",
                    help="the tracks' format: flac (libsndfile) or m4a (AAC, FFmpeg) (flac)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        t0 = time.perf_counter()
        write_long(lib / f"long.{args.format}", args.hours * 3600)
        write_long(lib / f"short.{args.format}", 180)
        write_s = time.perf_counter() - t0
        cmd = [str(common.engine_script("engine-run")), "--cores", str(args.cores), "--db",
               str(Path(tmp) / "db"), "-q", str(lib)]
        res = common.sample_engine_memory(cmd, INTERVAL_S, Path(tmp) / "engine-stderr.txt")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "hours": args.hours,
        "cores": args.cores,
        "format": args.format,
        "write_s": round(write_s, 1),
        "wall_s": res["wall_s"],
        "exit_code": res["exit_code"],
        "peak_worker_uss_mb": sorted(res["worker_peak_uss_mb"].values(), reverse=True),
        "peak_supervisor_private_mb": max(res["series"]["sup_private_mb"], default=0.0),
        "sampler": res["sampler"],
    }
    if res["exit_code"] != 0:
        result["stderr_tail"] = res["stderr_tail"]
    workers = ", ".join(f"{v:.1f}" for v in result["peak_worker_uss_mb"]) or "-"
    summary = (f"engine-run --cores {args.cores} on a {args.hours:g} h and a 3 min "
               f"{args.format} track: exit "
               f"{res['exit_code']}, {res['wall_s']:.1f} s; peak worker USS {workers} MB, "
               f"supervisor private {result['peak_supervisor_private_mb']:.1f} MB")
    common.write_report(report=result, output=args.output, summary=summary)
    return 0 if res["exit_code"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
