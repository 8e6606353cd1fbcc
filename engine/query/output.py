"""Where ``engine-query -o FILE`` writes, checked before the command runs: nothing is clobbered.

What ``FILE`` may be, and what happens (docs/QUERY.md, "Output files"):

- **a regular file, or a name that does not exist yet in an existing folder**: the output goes
  to a temporary file beside it and is renamed onto it only when the command succeeds, so a
  failed command leaves an existing file as it was. A new file gets mode ``0666 & ~umask``, as
  ``open()`` would give it; a replaced file keeps its mode (and owner, where that is allowed).
- **a symbolic link** (or a chain of them) to one of the above: the link is followed and stays;
  the temporary file is made beside the link's final target and renamed onto that target.
- **a character device or a FIFO** (``/dev/null``, a terminal, a named pipe): written to
  directly, as a shell's ``>`` would. There is no temporary file, so a command that fails
  half-way may have written part of its output there (what a pipe's reader sees anyway).
- **an open descriptor** (a link through ``/proc/PID/fd/N`` or ``/dev/fd/N``: ``/dev/stdout``,
  a shell's ``>(...)``): written to directly and appended to, whatever it leads to, so that
  ``-o /dev/stdout >> log`` appends as the shell asked rather than replacing ``log``.
- **anything else is a usage error naming the path and why**: a folder, a block device, a
  socket, a link that loops, a path whose folder does not exist, an empty name, and any path
  inside the store's own directory (renaming onto ``data.mdb`` would destroy the store).

Every failure is a :class:`~engine.errors.QueryError` (``engine-query`` exit code 2) whose
message names the ``-o`` path as the user gave it, never a temporary name of ours.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

from ..errors import QueryError
from ..text import display

__all__ = ["OutputTarget", "atomic_output", "check_output"]

#: Mode bits of a new output file before the umask, as ``open()`` uses.
_NEW_FILE_MODE: Final = 0o666
#: Temporary files beside an output: a dot name, so that a listing or a glob skips them.
_TMP_PREFIX: Final = ".engine-query-"
_TMP_TRIES: Final = 100
#: A name of an open file descriptor: /proc/self/fd/1, /proc/123/fd/4, /dev/fd/63.
_FD_LINK: Final = re.compile(r"/proc/[^/]+/fd/\d+|/dev/fd/\d+")
#: Links followed looking for one (the kernel's own limit is 40).
_MAX_HOPS: Final = 40


@dataclass(frozen=True, slots=True)
class OutputTarget:
    """Where an ``-o`` argument leads.

    Attributes
    ----------
    arg : str
        The path as given (what messages name).
    path : str
        What is written: ``arg`` itself, or a symbolic link's final target.
    stream : bool
        ``True`` for a character device, a FIFO or an open descriptor, written to directly;
        ``False`` for a regular file (existing or new), written under a temporary name and
        renamed.
    existing : os.stat_result or None
        The regular file being replaced (its mode and owner are kept), ``None`` for a new
        file or a stream.
    append : bool
        Open a stream with ``O_APPEND`` (an open descriptor, which may be a file the shell
        opened for appending).
    """

    arg: str
    path: str
    stream: bool
    existing: os.stat_result | None
    append: bool = False


def _through_descriptor(arg: str) -> bool:
    """Whether ``arg`` is, or links (in any number of hops) to, an open descriptor's name."""
    p = os.path.abspath(arg)
    for _ in range(_MAX_HOPS):
        if _FD_LINK.fullmatch(p):
            return True
        try:
            target = os.readlink(p)
        except OSError:
            return False
        p = os.path.normpath(os.path.join(os.path.dirname(p), target))
    return False


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(arg: str, why: str) -> QueryError:
    return QueryError(f"-o {display(arg)}: {why}")


def check_output(arg: str, *, store: str | os.PathLike[str] | None = None) -> OutputTarget:
    """Check that ``-o arg`` can be written without clobbering anything; see the module
    docstring for the rules.

    Parameters
    ----------
    arg : str
        The ``-o`` argument (not ``-``, which is stdout and never reaches here).
    store : str or os.PathLike, optional, keyword-only
        The store's directory: an output inside it is refused.

    Returns
    -------
    OutputTarget

    Raises
    ------
    QueryError
        For an empty name, a folder, a block device, a socket, a link that cannot be followed,
        a folder that does not exist, or a path inside the store; the message names ``arg``,
        what it is and what to do.
    """
    if not arg:
        raise QueryError("-o '': the file name is empty; give a file name, or - for stdout")
    try:
        first = os.lstat(arg)
    except FileNotFoundError:
        first = None
    except OSError as exc:  # a component that is a file, a name too long, no search right
        raise _refuse(arg, f"{exc.strerror}; give a path to a file in an existing folder"
                      ) from exc
    path, final = arg, first
    if first is not None and stat.S_ISLNK(first.st_mode):
        try:
            final = os.stat(arg)
        except FileNotFoundError:
            final = None
        except OSError as exc:
            raise _refuse(arg, f"a symbolic link that cannot be followed ({exc.strerror}); "
                               f"fix the link or give another path") from exc
        if (final is not None and not stat.S_ISDIR(final.st_mode)
                and _through_descriptor(arg)):
            return OutputTarget(arg, arg, True, None, append=True)
        path = os.path.realpath(arg)
        if final is not None and stat.S_ISREG(final.st_mode):
            # /proc/self/fd/N links name a deleted or unnamed file: nothing to rename onto
            try:
                same = os.path.samestat(os.stat(path), final)
            except OSError:
                same = False
            if not same:
                raise _refuse(arg, f"links to a file that has no name on disk ({display(path)}"
                                   f"); give the file's own path, or - for stdout")
    if final is not None and (stat.S_ISCHR(final.st_mode) or stat.S_ISFIFO(final.st_mode)):
        return OutputTarget(arg, arg, True, None)
    if final is not None and not stat.S_ISREG(final.st_mode):
        raise _refuse(arg, f"is {_kind(final.st_mode)}; -o takes a file (new or to be "
                           f"replaced), a character device or a FIFO")
    if arg.endswith(os.sep) and final is None:
        raise _refuse(arg, "ends in '/', so it names a folder; -o takes a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if final is None and not os.path.isdir(folder):
        via = "" if path == arg else f" (where the link leads: {display(path)})"
        raise _refuse(arg, f"the folder {display(folder)}{via} does not exist; create it "
                           f"first (mkdir -p) or write elsewhere")
    if store is not None:
        home = os.path.realpath(store)
        real = os.path.realpath(path)
        if os.path.commonpath([home, real]) == home:
            raise _refuse(arg, f"is inside the store {display(os.fspath(store))}, whose files "
                               f"it would replace; write it elsewhere")
    return OutputTarget(arg, path, False, final)


def _wrap(fd: int, mode: str) -> IO[Any]:
    if "b" in mode:
        return os.fdopen(fd, mode)
    return os.fdopen(fd, mode, encoding="utf-8", errors="surrogateescape", newline="")


def _temporary(target: OutputTarget) -> tuple[int, str]:
    """A new file beside ``target.path``, created as ``open()`` would (0666 & ~umask)."""
    folder = os.path.dirname(os.path.abspath(target.path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    for _ in range(_TMP_TRIES):
        tmp = os.path.join(folder, f"{_TMP_PREFIX}{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, _NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _refuse(target.arg, f"cannot create a file in the folder {display(folder)} "
                                      f"({exc.strerror}); the output is written there under a "
                                      f"temporary name and renamed: write elsewhere, or make "
                                      f"the folder writable") from exc
    raise _refuse(target.arg, f"no free temporary name in {display(folder)} after "
                              f"{_TMP_TRIES} tries; remove its {_TMP_PREFIX}* files")


def _keep_mode(fd: int, old: os.stat_result) -> None:
    """Give the new file the replaced one's owner (where allowed) and mode."""
    if (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):
            os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _write_failed(target: OutputTarget, exc: OSError) -> QueryError:
    return _refuse(target.arg, f"writing it failed ({exc.strerror or exc}); "
                               f"free space or write elsewhere")


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w", *,
                  store: str | os.PathLike[str] | None = None) -> Iterator[IO[Any]]:
    """An output file for ``-o path`` that never clobbers anything (module docstring).

    A regular file is written under a temporary name beside it (or beside a link's target) and
    renamed onto it only when the block succeeds; a failed block leaves it as it was. A
    character device or FIFO is written to directly. Text mode writes UTF-8, and paths that are
    not valid UTF-8 as their original bytes.

    Parameters
    ----------
    path : str
        The ``-o`` argument.
    mode : str
        ``"w"`` (text) or ``"wb"``.
    store : str or os.PathLike, optional, keyword-only
        The store's directory: an output inside it is refused.

    Yields
    ------
    file object

    Raises
    ------
    QueryError
        When ``path`` cannot be written (:func:`check_output`), its folder takes no new file,
        or a write fails (a full disk); the message names ``path``.
    """
    target = check_output(path, store=store)
    if target.stream:
        try:  # a FIFO blocks here until a reader opens it, as a shell's > does
            fd = os.open(target.path, os.O_WRONLY | os.O_CLOEXEC
                         | (os.O_APPEND if target.append else 0))
        except OSError as exc:
            raise _refuse(path, f"cannot open it for writing ({exc.strerror})") from exc
        try:
            with _wrap(fd, mode) as f:
                yield f
        except OSError as exc:
            if exc.filename is None and not isinstance(exc, BrokenPipeError):
                raise _write_failed(target, exc) from exc
            raise
        return
    fd, tmp = _temporary(target)
    try:
        try:
            with _wrap(fd, mode) as f:
                yield f
                f.flush()
                if target.existing is not None:
                    _keep_mode(f.fileno(), target.existing)
        except OSError as exc:
            if exc.filename is None and exc.errno != errno.EPIPE:
                raise _write_failed(target, exc) from exc
            raise
        try:
            os.replace(tmp, target.path)
        except OSError as exc:
            raise _refuse(path, f"cannot rename the finished output onto it ({exc.strerror})"
                          ) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
