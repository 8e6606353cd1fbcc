"""``reads.log``: how readers feed the writer's LRU without writing to LMDB.

The protocol is the package docstring's "Reads feed the LRU through reads.log": any process
appends the ids of fingerprints it used (:func:`_append_reads`, behind
:meth:`Store.record_reads <engine.store.Store.record_reads>`); the writer empties the log at
each commit (:func:`_take_reads`) and touches those ids. Best effort throughout: a failure is
logged at debug level, never raised. The log is only ever opened with ``O_NOFOLLOW`` and as a
regular file (:func:`engine.store.fs._open_regular`): a symbolic link or a FIFO planted in its
place is not written through, not read, and blocks nobody; the reads are then not recorded.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import logging
import os
import stat
import struct
from collections.abc import Iterable
from typing import Final

from .codec import _ID, _U64_MAX
from .fs import _open_regular

# the package's one logger, named as before the package was split
log = logging.getLogger("engine.store")

#: ``reads.log`` is not appended to past this size (64 Ki reads); the writer empties it.
READS_LOG_MAX: Final = 512 * 1024
_READS_LOG_NAME: Final = "reads.log"


def _take_reads(path: str) -> tuple[int, ...]:
    """Empty ``reads.log`` of the store at ``path`` and return its ids, oldest first."""
    log_path = os.path.join(path, _READS_LOG_NAME)
    taken = f"{log_path}.{os.getpid()}"
    try:
        os.replace(log_path, taken)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("store %s: reads.log not taken: %s", path, exc)
    ids: list[int] = []
    # ours, and any a writer that crashed between rename and unlink left (one writer at a
    # time: every other reads.log.* is such a leftover). Never read through a link or from a
    # FIFO planted there: such an entry is removed unread (unlink removes the link itself).
    for name in glob.glob(glob.escape(log_path) + ".*"):
        try:
            fd = _open_regular(name, os.O_RDONLY)
        except OSError as exc:
            log.debug("store %s: %s not taken: %s", path, name, exc)
            if exc.errno in (errno.ELOOP, errno.EINVAL):  # a link or a FIFO: not a log
                with contextlib.suppress(OSError):
                    os.unlink(name)
            continue
        try:
            with os.fdopen(fd, "rb") as f:
                raw = f.read(READS_LOG_MAX + 4096)
            os.unlink(name)
        except OSError as exc:
            log.debug("store %s: %s not taken: %s", path, name, exc)
            continue
        n = len(raw) // _ID.size
        ids.extend(struct.unpack(f">{n}Q", raw[: n * _ID.size]))
    return tuple(ids)


def _append_reads(path: str, track_ids: Iterable[int]) -> bool:
    """Append ids to ``reads.log`` of the store at ``path`` (:meth:`Store.record_reads`).

    Returns
    -------
    bool
        Whether the reads were recorded (``False``: the log is full or not writable).
    """
    ids = [int(t) for t in track_ids if 0 < int(t) <= _U64_MAX]
    if not ids:
        return True
    log_path = os.path.join(path, _READS_LOG_NAME)
    data = struct.pack(f">{len(ids)}Q", *ids)
    try:
        # never through a link planted there, never blocked by a FIFO (fs._open_regular)
        fd = _open_regular(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        log.debug("store %s: reads not recorded: %s", path, exc)
        return False
    try:
        if os.fstat(fd).st_size + len(data) > READS_LOG_MAX:
            return False
        return os.write(fd, data) == len(data)
    except OSError as exc:
        log.debug("store %s: reads not recorded: %s", path, exc)
        return False
    finally:
        os.close(fd)


def _pending_reads(path: str) -> int:
    """How many ids ``reads.log`` of the store at ``path`` holds for the writer (0 if none)."""
    try:
        st = os.lstat(os.path.join(path, _READS_LOG_NAME))
    except OSError:
        return 0
    return st.st_size // _ID.size if stat.S_ISREG(st.st_mode) else 0
