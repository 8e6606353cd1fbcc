"""The store's read side: export and stats (engine-query). Never blocks a running engine-run.

Readers open the LMDB environment read-only, take one read transaction per listing (a
consistent snapshot even while the supervisor commits), and never write: reading does not touch
the LRU access times (a later issue decides how reads feed the LRU).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TextIO

from kernels import FINGERPRINT_NAMES

from . import store as st
from .supervisor import jsonl_line


def export_records(s: st.Store) -> Iterator[dict[str, Any]]:
    """Every stored fingerprint as the record ``engine-run --jsonl`` writes (status "ok")."""
    for track, fp in s.iter_fingerprints():
        yield {
            "path": track.path,
            "track_id": track.track_id,
            "status": "ok",
            "fingerprint": dict(zip(FINGERPRINT_NAMES, fp.values, strict=True)),
            "duration_s": fp.duration_s,
            "sample_rate": fp.sample_rate,
            "channels": fp.channels,
            "error": None,
        }


def export_jsonl(s: st.Store, out: TextIO) -> int:
    """Write every fingerprint as JSONL; returns how many."""
    n = 0
    for rec in export_records(s):
        out.write(jsonl_line(rec))
        n += 1
    return n
