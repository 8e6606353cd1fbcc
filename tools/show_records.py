"""Pretty-print engine JSONL records from stdin: path, status and a few of the 25 values."""

from __future__ import annotations

import json
import sys

SHOW = ("lufs", "tempo_bpm", "spectral_centroid", "harmonic_ratio", "phase_correlation")


def main() -> int:
    for line in sys.stdin:
        rec = json.loads(line)
        fp = rec.get("fingerprint") or {}
        values = "  ".join(f"{k}={fp[k]:.3g}" for k in SHOW if k in fp)
        print(f"{rec['status']:6s} {rec['path']}\n       {values}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
