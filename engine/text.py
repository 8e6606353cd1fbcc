"""Text helpers shared by the run and query sides: paths in messages, JSON lines, the
fingerprint as a record.

Paths are ``str`` as :func:`os.fsdecode` gives them: a name that is not valid UTF-8 carries
lone surrogates (``surrogateescape``). Messages show such a name readably, records keep it
losslessly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kernels.fingerprint import FINGERPRINT_NAMES
from kernels.key import key_of

__all__ = ["display", "fingerprint_fields", "jsonl_line"]


def display(path: str) -> str:
    """Printable form of a path for messages: surrogates as ``\\xNN``, controls escaped."""
    if path.isprintable():
        return path
    out = []
    for ch in path:
        if ch.isprintable():
            out.append(ch)
        elif "\udc80" <= ch <= "\udcff":  # an undecodable byte kept by surrogateescape
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def jsonl_line(rec: dict[str, Any]) -> str:
    """One JSON record and a newline. Non-ASCII stays readable; a path that is not valid UTF-8
    (kept by Python as lone surrogates) is written with ASCII escapes instead, losslessly."""
    line = json.dumps(rec, ensure_ascii=False, allow_nan=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(rec, ensure_ascii=True, allow_nan=False)
    return line + "\n"


def fingerprint_fields(values: Sequence[float]) -> dict[str, Any]:
    """The ``fingerprint`` and ``key`` fields of a record (``engine-run --jsonl``, ``export``,
    ``show --json``): the 25 values by name, and the key they state (docs/FINGERPRINT.md,
    "Tonality") as ``{"label": "A minor", "camelot": "8A", "strength": 0.71}``, or None for a
    track without one."""
    named = dict(zip(FINGERPRINT_NAMES, map(float, values), strict=True))
    key = key_of(named)
    return {"fingerprint": named,
            "key": None if key is None else {"label": key.label, "camelot": key.camelot,
                                             "strength": key.strength}}
