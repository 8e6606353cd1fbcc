"""The content key: a cheap identity of a file's bytes, to recognise a moved or copied file.

Shared by the run side (the catalog hashes new paths) and the store (which indexes tracks by
it). It reads files, never the store.
"""

from __future__ import annotations

import hashlib
import os
import stat
from os import PathLike
from typing import Final

from .errors import StoreError

__all__ = ["CONTENT_KEY_CHUNK", "content_key"]

#: Bytes read from each end of a file by :func:`content_key`.
CONTENT_KEY_CHUNK: Final = 64 * 1024


def _pread_exact(fd: int, n: int, offset: int, path: str) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = os.pread(fd, n - got, offset + got)
        if not chunk:
            raise StoreError(
                f"{path}: expected {n} bytes at offset {offset} but the file ends after "
                f"{offset + got}: it changed while being hashed; stat it again and retry"
            )
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def content_key(path: str | PathLike[str] | bytes, size: int) -> bytes:
    """A 16-byte key identifying a file's content cheaply, to recognise moved files.

    BLAKE2b (``digest_size=16``) over ``size`` as 8 bytes little-endian, then the first and the
    last :data:`CONTENT_KEY_CHUNK` (64 KiB) bytes of the file; a file of at most 128 KiB is
    hashed whole, once. Reads use ``os.pread``; nothing touches LMDB.

    Parameters
    ----------
    path : str, bytes or os.PathLike
        The file.
    size : int
        Its size from ``os.stat`` (the caller already has it; it decides what is read).

    Returns
    -------
    bytes
        16 bytes.

    Raises
    ------
    OSError
        When the file cannot be opened or read.
    StoreError
        When ``size`` is negative or the file is shorter than ``size`` (it changed).
    """
    if size < 0:
        raise StoreError(f"content_key({path!r}, size={size}): size must be >= 0: pass st_size")
    shown = os.fsdecode(path)
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    # O_NONBLOCK: a FIFO put where the scan saw a file must not block the supervisor
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{shown}: no longer a regular file (it was replaced since the "
                             f"scan); run again")
        if size <= 2 * CONTENT_KEY_CHUNK:
            h.update(_pread_exact(fd, size, 0, shown))
        else:
            h.update(_pread_exact(fd, CONTENT_KEY_CHUNK, 0, shown))
            h.update(_pread_exact(fd, CONTENT_KEY_CHUNK, size - CONTENT_KEY_CHUNK, shown))
    finally:
        os.close(fd)
    return h.digest()
