"""The store directory as the engine touches it: no link followed, every OS error worded.

Everything the engine creates or writes in a store directory is opened here or checked here
first: ``writer.lock`` and ``reads.log`` (and the taken ``reads.log.<pid>``) are opened with
``O_NOFOLLOW | O_CLOEXEC`` (and ``O_NONBLOCK``, so that a FIFO planted in their place blocks
nobody) and must be regular files; LMDB's own ``data.mdb`` and ``lock.mdb``, which LMDB opens
itself, are refused when they are symbolic links (:func:`_refuse_links`, before LMDB opens
them). A link planted in the store directory can therefore never make the engine write to the
file it points at.

An ``OSError`` (or an LMDB error carrying one) met while opening, locking or committing becomes
a :class:`StoreError` naming the store, what failed, the errno's name and the fix
(:func:`_os_failure`): ``the store at X is read-only (EROFS): remount it read-write (mount -o
remount,rw), or pass another --db``.

The writer also keeps the identity (``st_dev``, ``st_ino``) of the store directory and of
``data.mdb`` from its open (:func:`_identity`): a store deleted or replaced under a running
writer is noticed at the next commit instead of being written to an unlinked file.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Final

import lmdb

from ..errors import StoreError

_DATA_NAME: Final = "data.mdb"
_LOCK_NAME: Final = "lock.mdb"

#: Flags every file the engine opens in a store directory gets.
_SAFE_FLAGS: Final = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

#: errno -> (what it means for the store, the fix). ``{access}`` is "write" or "read",
#: ``{able}`` "writable" or "readable".
_REASONS: Final[dict[int, tuple[str, str]]] = {
    errno.EROFS: ("is read-only", "remount it read-write (mount -o remount,rw), or pass another "
                                  "--db"),
    errno.EACCES: ("is not {able} by this user (uid {uid})",
                   "give this user {access} access to the directory and the files in it "
                   "(chown / chmod), or pass another --db"),
    errno.EPERM: ("is not {able} by this user (uid {uid})",
                  "give this user {access} access to the directory and the files in it "
                  "(chown / chmod / chattr -i), or pass another --db"),
    errno.ENOSPC: ("is on a full disk", "free space on it, or pass another --db"),
    errno.EDQUOT: ("is on a disk whose quota is exhausted",
                   "free space or raise the quota, or pass another --db"),
    errno.ENOENT: ("does not exist (or a part of its path is missing)",
                   "check the path, or pass another --db"),
    errno.EEXIST: ("is a file or another non-directory, not a store directory",
                   "pass a directory (or a path that does not exist yet) as --db"),
    errno.ENOTDIR: ("has a path with a part that is not a directory",
                    "check the path, or pass another --db"),
    errno.EISDIR: ("holds a directory where the engine expects a file",
                   "remove it, or pass another --db"),
    errno.ELOOP: ("holds a symbolic link where the engine expects a file (the engine never "
                  "follows links in a store directory)", "remove the link, or pass another --db"),
    errno.EIO: ("is on a disk that reports I/O errors", "check the disk (dmesg), or pass "
                                                        "another --db"),
    errno.ENAMETOOLONG: ("has a path that is too long", "pass a shorter --db"),
}


def _errno_name(code: int | None) -> str:
    return errno.errorcode.get(code, f"errno {code}") if code is not None else "no errno"


def _lmdb_errno(exc: lmdb.Error) -> int | None:
    """The errno an LMDB error carries, if it is an OS error.

    py-lmdb words an OS error as ``"PATH: strerror"`` without the number; the strerror of the
    errnos that matter here is matched at the end of the message.
    """
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code in errno.errorcode:
        return code
    text = str(exc)
    for candidate in _REASONS:
        if text.endswith(os.strerror(candidate)):
            return candidate
    return None


def _os_failure(path: str, what: str, code: int | None, detail: str, *,
                access: str = "write") -> StoreError:
    """A :class:`StoreError` for an OS error met while doing ``what`` with the store at ``path``.

    Parameters
    ----------
    path : str
        The store's directory.
    what : str
        What failed, e.g. ``"taking the writer lock (writer.lock)"``.
    code : int or None
        The errno.
    detail : str
        The OS's or LMDB's own words.
    access : {"write", "read"}, keyword-only
        What the caller needed (worded into a permission error).
    """
    name = _errno_name(code)
    if code in _REASONS:
        reason, fix = _REASONS[code]
        able = "writable" if access == "write" else "readable"
        reason = reason.format(able=able, uid=os.geteuid())
        fix = fix.format(access=access)
        return StoreError(f"the store at {path} {reason} ({name}): {what} failed ({detail}); "
                          f"{fix}")
    return StoreError(f"the store at {path}: {what} failed ({detail}; {name}): check the disk "
                      f"and the path, or pass another --db")


def _from_oserror(path: str, what: str, exc: OSError, *, access: str = "write") -> StoreError:
    detail = exc.strerror or str(exc)
    if exc.filename is not None:
        detail = f"{os.fsdecode(exc.filename)}: {detail}"
    return _os_failure(path, what, exc.errno, detail, access=access)


def _from_lmdb(path: str, what: str, exc: lmdb.Error, *, access: str = "write"
               ) -> StoreError | None:
    """The worded error for an LMDB error that carries an OS errno; ``None`` for others."""
    code = _lmdb_errno(exc)
    return None if code is None else _os_failure(path, what, code, str(exc), access=access)


def _refuse_links(path: str, names: tuple[str, ...]) -> None:
    """Refuse a store whose ``names`` are symbolic links (or, when present, not regular files).

    LMDB opens ``data.mdb`` and ``lock.mdb`` itself, following links: a link planted there
    would have it write to (or create) whatever the link points at. Checked just before
    LMDB opens them (a link swapped in between is the one case left).

    Raises
    ------
    StoreError
        For a link, a non-regular file, or an OS error other than "absent".
    """
    for name in names:
        full = os.path.join(path, name)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            continue
        except NotADirectoryError:
            return  # the store directory itself is missing or not one: found by the caller
        except OSError as exc:
            raise _from_oserror(path, f"checking {name}", exc, access="read") from exc
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(full)
            except OSError:
                target = "?"
            raise StoreError(
                f"{full} is a symbolic link (to {target}): the engine never writes through links "
                f"in a store directory (the link may have been planted to make it overwrite "
                f"another file); remove the link (rm {full}) if the store is yours, or pass "
                f"another --db"
            )
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(
                f"{full} is not a regular file (mode {stat.filemode(st.st_mode)}): it is not an "
                f"engine store, or something replaced the file; pass another --db"
            )


def _open_regular(full: str, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of a file inside a store directory: never through a link, never a FIFO.

    Parameters
    ----------
    full : str
        The file's path.
    flags : int
        ``os.O_*`` flags; :data:`_SAFE_FLAGS` are added.
    mode : int
        For a file this call creates.

    Returns
    -------
    int
        The descriptor of a regular file, ``O_NONBLOCK`` cleared.

    Raises
    ------
    OSError
        ``ELOOP`` for a symbolic link, ``EINVAL`` (``"not a regular file"``) for anything but
        a regular file, and whatever ``open`` raises.
    """
    fd = os.open(full, flags | _SAFE_FLAGS, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file (mode {stat.filemode(st.st_mode)})",
                          full)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _identity(path: str) -> tuple[int, int, int, int]:
    """``(st_dev, st_ino)`` of the store directory and of its ``data.mdb``.

    Raises
    ------
    StoreError
        When either is missing (deleted meanwhile) or cannot be reached (the message of
        :func:`_check_identity`).
    """
    try:
        d = os.stat(path)
        f = os.stat(os.path.join(path, _DATA_NAME))
    except FileNotFoundError as exc:
        gone = path if exc.filename is None else os.fsdecode(exc.filename)
        raise _vanished(path, f"{gone} no longer exists") from exc
    except OSError as exc:
        raise _vanished(path, f"it cannot be reached any more ({exc.strerror or exc}, "
                              f"{_errno_name(exc.errno)})") from exc
    return d.st_dev, d.st_ino, f.st_dev, f.st_ino


def _vanished(path: str, reason: str) -> StoreError:
    return StoreError(
        f"the store at {path} was deleted or replaced while the run was writing it: {reason}; "
        f"nothing more is written to it: find out what removed it, then run engine-run again "
        f"with --db {path} (a missing store is created anew)"
    )


def _check_identity(path: str, expected: tuple[int, int, int, int]) -> None:
    """Raise when the store at ``path`` is not the one opened (:func:`_identity` differs).

    Raises
    ------
    StoreError
        Naming the path and what changed: the directory or ``data.mdb`` is gone, or another
        one stands in its place.
    """
    found = _identity(path)
    if found == expected:
        return
    if found[:2] != expected[:2]:
        reason = (f"the directory is another one than the one opened (inode {found[1]} instead "
                  f"of {expected[1]})")
    else:
        reason = (f"{_DATA_NAME} is another file than the one opened (inode {found[3]} instead "
                  f"of {expected[3]})")
    raise _vanished(path, reason)
