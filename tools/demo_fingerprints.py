"""Fingerprint every audio file under a folder with the kernels and print a table.

Usage: python tools/demo_fingerprints.py DIR

One process, one track at a time: this shows the analyzer on its own. The engine (engine-run)
is the tool for a real library: all cores, a store, incremental runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import soundfile as sf

import kernels

SHOW = ("lufs", "tempo_bpm", "rhythm_stability", "spectral_centroid", "harmonic_ratio",
        "pitch_stability", "stereo_width")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(args[0])
    files = sorted(p for p in root.rglob("*") if p.is_file())
    t0 = time.perf_counter()
    kernels.warmup()
    print(f"kernels ready in {time.perf_counter() - t0:.2f} s")
    print(f"{'track':34s}" + "".join(f"{k[:12]:>13s}" for k in SHOW))
    audio_s = 0.0
    t0 = time.perf_counter()
    failed = 0
    for p in files:
        try:
            fp = kernels.fingerprint_file(p).as_dict()
            audio_s += sf.info(str(p)).duration
        except kernels.FingerprintError as e:
            print(f"{p.relative_to(root)!s:34s} FAILED: {e}")
            failed += 1
            continue
        print(f"{p.relative_to(root)!s:34s}" + "".join(f"{fp[k]:13.3f}" for k in SHOW))
    wall = time.perf_counter() - t0
    print(f"{len(files)} tracks, {audio_s:.0f} s of audio in {wall:.2f} s "
          f"({audio_s / wall:.0f}x realtime, one core), {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
