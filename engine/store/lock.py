"""The writer lock: one process writes a store, and forked children drop their copy of it.

``writer.lock`` in the store directory is an advisory ``flock`` that the writer takes when it
opens the store (:meth:`Store.open <engine.store.Store.open>`) and holds until it closes it;
the file holds the writer's pid, which the error a second writer gets names. A forked child
closes its inherited copy of the lock's fd at once, so a worker that outlives the supervisor
does not keep the store locked. The file is opened with ``O_NOFOLLOW`` and must be a regular
file (:func:`engine.store.fs._open_regular`): a link planted in its place is refused, never
written through. Nothing is written to the store directory before the caller's inspection of
the store has passed (:func:`_acquire_writer_lock`).
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable
from typing import Final

from ..errors import StoreError
from .fs import _from_oserror, _open_regular, _os_failure

_WRITER_LOCK_NAME: Final = "writer.lock"

#: The writer-lock fds this process holds (a forked child closes its copies).
_LOCK_FDS: set[int] = set()


def _drop_inherited_locks() -> None:
    # flock belongs to the open file description, which fork shares: a forked worker that kept
    # the fd would keep the store locked after the supervisor exits. Closing the child's copy
    # leaves the parent's lock in place.
    for fd in _LOCK_FDS:
        try:
            os.close(fd)
        except OSError:
            pass
    _LOCK_FDS.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def _release_lock(fd: int, pid: int) -> None:
    if os.getpid() == pid and fd in _LOCK_FDS:
        _LOCK_FDS.discard(fd)
        os.close(fd)


def _open_lock_file(path: str, lock_path: str, *, create: bool) -> int:
    flags = os.O_RDWR | (os.O_CREAT if create else 0)
    try:
        return _open_regular(lock_path, flags, 0o644)
    except FileNotFoundError:
        if create:
            raise _os_failure(path, f"creating {_WRITER_LOCK_NAME}", errno.ENOENT,
                              f"{lock_path}: no such file or directory") from None
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(
                f"{lock_path} is a symbolic link: the engine never writes through links in a "
                f"store directory (the link may have been planted to make it overwrite another "
                f"file); remove the link (rm {lock_path}) if the store is yours, or pass another "
                f"--db"
            ) from None
        raise _from_oserror(path, f"opening the writer lock ({_WRITER_LOCK_NAME})", exc) from exc


def _acquire_writer_lock(path: str, inspect: Callable[[], None]) -> int:
    """Take ``writer.lock`` of the store at ``path``, calling ``inspect`` before anything is
    written to the store directory.

    An existing ``writer.lock`` (an engine store) is locked first, so that ``inspect`` reads a
    store no writer changes meanwhile; a directory without one (a new store, or a foreign
    one) is inspected before ``writer.lock`` is created, so that a refused directory is left
    exactly as it was. The writer's pid goes into the file only once ``inspect`` has passed.

    Parameters
    ----------
    path : str
        The store's directory (it exists).
    inspect : callable
        Raises :class:`StoreError` to refuse the store; must not write to it.

    Returns
    -------
    int
        The locked descriptor (release it with :func:`_release_lock`).

    Raises
    ------
    StoreError
        Another writer holds the lock, ``inspect`` refused the store, ``writer.lock`` is a
        symbolic link or not a regular file, or an OS error (worded with its errno and fix).
    """
    lock_path = os.path.join(path, _WRITER_LOCK_NAME)
    try:
        fd = _open_lock_file(path, lock_path, create=False)
        inspected = False
    except FileNotFoundError:
        inspect()
        fd = _open_lock_file(path, lock_path, create=True)
        inspected = True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        raise StoreError(
            f"the store at {path} is already open for writing by pid {holder}: one process "
            f"writes a store; stop that engine-run, open this one with readonly=True, or pass "
            f"another --db"
        ) from None
    except OSError as exc:
        os.close(fd)
        raise _from_oserror(path, f"locking {_WRITER_LOCK_NAME}", exc) from exc
    except BaseException:
        os.close(fd)
        raise
    try:
        if not inspected:
            inspect()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError as exc:
        os.close(fd)
        raise _from_oserror(path, f"writing the writer's pid to {_WRITER_LOCK_NAME}",
                            exc) from exc
    except BaseException:
        os.close(fd)
        raise
    _LOCK_FDS.add(fd)
    return fd
