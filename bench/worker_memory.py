"""Private memory (USS) of engine-run's workers and supervisor while they fingerprint long tracks.

Usage::

    python bench/worker_memory.py [--hours 2] [--cores 2] [-o out.json]

Writes a ``--hours`` long FLAC (a quiet tone with clicks, written block by block, never held
whole) and a 3-minute one into a temporary folder, runs ``engine-run --cores N`` over them in a
subprocess, and samples every 50 ms, with psutil, the USS of each worker (forked workers share
the supervisor's pages: USS is what each adds) and the supervisor's private resident memory
(RSS - shared). Reports the peak of each in MB, JSON out. The issue's target: each worker
<= 150 MB whatever the track length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf


def write_long(path: Path, seconds: float, sr: int = 44100) -> None:
    block = sr * 10
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
        done = 0
        total = int(seconds * sr)
        while done < total:
            n = min(block, total - done)
            t = (done + np.arange(n)) / sr
            x = 0.1 * np.sin(2 * np.pi * 220.0 * t)
            x[(np.arange(n) + done) % (sr // 2) == 0] += 0.5  # clicks
            f.write(np.stack([x, 0.8 * x], axis=1).astype(np.float32))
            done += n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        lib.mkdir()
        write_long(lib / "long.flac", args.hours * 3600)
        write_long(lib / "short.flac", 180)
        exe = Path(sys.executable).parent / "engine-run"
        proc = subprocess.Popen([str(exe), "--cores", str(args.cores), "--db",
                                 str(Path(tmp) / "db"), "-q", str(lib)])
        sup = psutil.Process(proc.pid)
        peak_worker: dict[int, float] = {}
        peak_sup = 0.0
        t0 = time.monotonic()
        while proc.poll() is None:
            try:
                info = sup.memory_full_info()
                peak_sup = max(peak_sup, (info.rss - info.shared) / 2**20)
                for child in sup.children():
                    if "resource_tracker" in " ".join(child.cmdline()):
                        continue
                    uss = child.memory_full_info().uss / 2**20
                    peak_worker[child.pid] = max(peak_worker.get(child.pid, 0.0), uss)
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.monotonic() - t0
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "hours": args.hours,
        "cores": args.cores,
        "wall_s": wall,
        "exit_code": proc.returncode,
        "peak_worker_uss_mb": sorted(peak_worker.values(), reverse=True),
        "peak_supervisor_private_mb": peak_sup,
    }
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    print(text)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
