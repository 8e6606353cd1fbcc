"""Compile (or load from numba's on-disk cache) every kernel before any real work.

The engine calls this in the supervisor before forking, so that workers inherit compiled code
and never compile; a process that fingerprints directly calls it once, or pays the same cost on
its first track.
"""

from __future__ import annotations

import numpy as np

from .analyzer import Analyzer

_done = False


def warmup() -> None:
    """Run every kernel once on a short synthetic stereo signal (idempotent, ~0.05 s warm)."""
    global _done
    if _done:
        return
    sr = 22050
    t = np.arange(int(sr * 4.5)) / sr  # > 3 s: the loudness range's short-term windows run too
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * t) * np.where(t < 2.0, 1.0, 0.2)
    tone[:: sr // 2] += 0.5  # clicks, so onsets and beats run too
    x = np.stack([tone, 0.5 * tone], axis=1).astype(np.float32)
    a = Analyzer(sr, 2)
    a.feed(x)
    a.finish()
    _done = True
