"""Text helpers shared by the run and query sides: paths in messages, JSON lines.

Paths are ``str`` as :func:`os.fsdecode` gives them: a name that is not valid UTF-8 carries
lone surrogates (``surrogateescape``). Messages show such a name readably, records keep it
losslessly.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["display", "jsonl_line"]


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
