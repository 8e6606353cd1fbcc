"""Input scanner: turn the paths given to ``engine-run`` into a stream of audio files.

``engine-run [PATH ...]`` accepts files and folders; ``-`` reads further paths from stdin, one per
line or NUL-separated with ``-0/--null`` (as ``find -print0`` writes them). :func:`read_paths`
splits such a stream and :func:`scan` turns any iterable of paths into a stream of
:class:`Candidate` (an audio file to fingerprint) and :class:`ScanProblem` (something the user
should hear about, never fatal).

Streaming and memory
--------------------
The list of the library's files is never built. :func:`scan` is a generator that walks folders
depth-first with an explicit stack (no recursion, so a tree deeper than the interpreter's
recursion limit is fine). Each stack frame holds the not yet visited entries of ONE directory,
read with :func:`os.scandir`, filtered (non-audio regular files are dropped while listing) and
sorted by name; entries are popped off as they are visited and the directory handle is closed
before the first entry is visited, so no file descriptor stays open per level. The memory of
the walk is therefore bounded by

* the depth of the tree times the pending entries of each level (at most the largest single
  directory, about 220 bytes per kept entry: 1.1 MB for a folder of 5 000 tracks), plus
* the two "already seen" sets below.

Duplicates
----------
A directory reached twice (given twice, nested in an earlier input, or reached again through a
symbolic link) is walked once: the ``(st_dev, st_ino)`` of EVERY directory listed is kept, about
150 bytes per directory (0.75 MB for a library of 5 000 album folders). A directory that leads
back to one of its own ancestors is reported once as ``"symlink_loop"``; any other repeat is
skipped silently.

A file reached twice (same ``(st_dev, st_ino)``) is yielded once, but to keep memory bounded only
files reached THROUGH A SYMBOLIC LINK or NAMED EXPLICITLY as an input are remembered (about 150
bytes each: 7.5 MB for 50 000 paths fed through stdin); every file met in a walk is looked up in
that set, so such a file is never yielded again afterwards. Plain files met inside a walk are not
remembered. The first path that reaches a file is the one yielded (a link sorted before the
real name wins). Not remembering plain files has two documented consequences:

* hard links met in plain walks are separate files (each of them is yielded), and
* a file yielded by a plain walk and LATER reached through a symbolic link from elsewhere is
  yielded again under the link's path.

One more rule keeps ``find LIB -print0 | engine-run -0 -`` from yielding everything twice (and
from reporting every ``cover.jpg`` as "not_audio"): an explicitly named file whose parent
directory was already walked has already been yielded, reported or skipped by that walk, and
is skipped silently; this costs one extra ``stat`` per distinct parent directory, and only once
some directory has been walked. Files listed BEFORE their folder (``find -depth``, ``find -type
f``) are handled as explicit files: audio ones are remembered, others reported "not_audio".

Symbolic links and names
------------------------
Paths are stored as the user gave them: made absolute and normalised with
:func:`os.path.abspath` (purely lexical), NEVER resolved through symbolic links. Symbolic links
met in a walk are followed when ``follow_symlinks`` is true; explicitly named inputs are always
followed (like ``find -H``). Paths are ``str``; a name that is not valid UTF-8 is kept with the
``surrogateescape`` error handler (as :func:`os.fsdecode` and :func:`os.scandir` produce it), so
``os.fsencode(path)`` gives back the exact bytes. Nothing here ever passes a path to a shell.
"""

from __future__ import annotations

import errno
import os
import queue
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import BinaryIO, Final, Literal

from ..errors import InputError
from ..text import display

__all__ = [
    "AUDIO_EXTENSIONS",
    "Candidate",
    "ProblemKind",
    "ScanProblem",
    "is_audio_name",
    "read_paths",
    "scan",
]

#: Every file-name extension libsndfile decodes, lowercase and without the dot. Matching is
#: case-insensitive (``X.FLAC`` and ``x.Flac`` count): see :func:`is_audio_name`.
AUDIO_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        "wav", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "aifc", "w64", "caf", "au",
        "snd", "rf64", "wve", "sd2", "voc", "ircam", "htk", "sf", "nist", "mat4", "mat5", "pvf",
        "xi", "paf", "svx", "mpc",
    }
)  # fmt: skip

ProblemKind = Literal[
    "missing",
    "broken_symlink",
    "symlink_loop",
    "permission",
    "not_audio",
    "not_a_file",
    "os_error",
]

#: Bytes asked of the input stream per read by :func:`read_paths`.
READ_CHUNK_BYTES: Final[int] = 64 * 1024
#: Longest single entry :func:`read_paths` accepts, in bytes. Linux refuses paths longer than
#: PATH_MAX (4 096 bytes); anything far longer is a stream in the wrong format (typically
#: ``find -print0`` output read without ``-0``), and the cap keeps memory bounded on it.
MAX_ENTRY_BYTES: Final[int] = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Candidate:
    """An audio file to fingerprint.

    Parameters
    ----------
    path : str
        Absolute path as the user reached it (``os.path.abspath``, not resolved through
        symbolic links); non-UTF-8 bytes are kept as surrogates (``surrogateescape``).
    size : int
        Size of the file in bytes (of the link's target for a symbolic link).
    mtime_ns : int
        Last modification time in nanoseconds since the Unix epoch.
    dev : int
        ``st_dev`` of the file: the device it lives on.
    ino : int
        ``st_ino`` of the file; ``(dev, ino)`` identifies it across links.
    """

    path: str
    size: int
    mtime_ns: int
    dev: int
    ino: int


@dataclass(frozen=True, slots=True)
class ScanProblem:
    """An input or directory entry that yields no audio file; reported, never fatal.

    Parameters
    ----------
    path : str
        Absolute path of the offending input or entry (as in :class:`Candidate`).
    kind : {"missing", "broken_symlink", "symlink_loop", "permission", "not_audio", \
"not_a_file", "os_error"}
        Machine-readable reason.
    message : str
        Human-readable sentence naming the path and the reason. Unlike ``path`` it is always
        printable: undecodable bytes appear as ``\\xNN`` and control characters (a newline in a
        name) are escaped, so it can be written to a UTF-8 terminal or a line-based log.
    """

    path: str
    kind: ProblemKind
    message: str


def is_audio_name(name: str) -> bool:
    """Tell whether a file name has an audio extension (case-insensitive).

    Parameters
    ----------
    name : str
        A file name or path; only the part after its last dot counts. A name whose only dot
        is its first character (``.flac``) has no extension.

    Returns
    -------
    bool
        True when the extension is in :data:`AUDIO_EXTENSIONS`.
    """
    dot = name.rfind(".")
    if dot <= 0 or name[dot - 1] == "/":
        return False
    return name[dot + 1 :].lower() in AUDIO_EXTENSIONS


def read_paths(stream: BinaryIO, *, null_separated: bool) -> Iterator[str]:
    """Split a binary stream of paths (stdin of ``engine-run -``) lazily into path strings.

    The stream is read in chunks of at most :data:`READ_CHUNK_BYTES` bytes (with ``read1`` when
    the stream has it, so paths are yielded while a producer such as ``find`` is still
    writing); the whole input is never held at once.

    Parameters
    ----------
    stream : BinaryIO
        Binary stream, e.g. ``sys.stdin.buffer``.
    null_separated : bool
        True: entries end with ``b"\\0"`` (``find -print0``; names may contain newlines).
        False: entries end with ``b"\\n"`` and one trailing ``b"\\r"`` is removed (CRLF input);
        a name that really ends with a carriage return needs NUL-separated input.

    Yields
    ------
    str
        Each non-empty entry decoded with :func:`os.fsdecode` (``surrogateescape``: bytes that
        are not valid UTF-8 survive the round trip through ``os.fsencode``).

    Raises
    ------
    InputError
        If one entry grows beyond :data:`MAX_ENTRY_BYTES` bytes without a separator (a
        ValueError too).
    """
    sep = b"\0" if null_separated else b"\n"
    read = getattr(stream, "read1", None) or stream.read
    pending = b""
    while True:
        chunk = read(READ_CHUNK_BYTES)
        if not chunk:
            break
        if sep not in chunk:
            pending += chunk
            if len(pending) > MAX_ENTRY_BYTES:
                raise InputError(_too_long_message(null_separated))
            continue
        parts = chunk.split(sep)
        if pending:
            parts[0] = pending + parts[0]
        pending = parts.pop()
        for part in parts:
            if not null_separated and part.endswith(b"\r"):
                part = part[:-1]
            if part:
                if len(part) > MAX_ENTRY_BYTES:
                    raise InputError(_too_long_message(null_separated))
                yield os.fsdecode(part)
    if not null_separated and pending.endswith(b"\r"):
        pending = pending[:-1]
    if pending:
        yield os.fsdecode(pending)


def scan(
    inputs: Iterable[str], *, follow_symlinks: bool = True
) -> Iterator[Candidate | ScanProblem]:
    """Stream the audio files found in files and folders, in a deterministic order.

    Inputs are handled one after the other, lazily (``inputs`` may itself be a generator such as
    :func:`read_paths`):

    * a regular file with an audio extension gives a :class:`Candidate`; a file named
      explicitly with another extension gives ``ScanProblem(kind="not_audio")``, anything that
      is not a regular file (FIFO, device, socket) ``"not_a_file"``;
    * a directory (even one named like ``x.flac``) is walked recursively, depth-first, the
      entries of each directory in sorted name order; audio files inside give candidates, other
      files are skipped silently, sub-folders named like ``x.flac`` are just folders;
    * a missing path, a broken symbolic link, a symbolic-link loop, an unreadable directory or
      any other OS error gives a :class:`ScanProblem` and the scan goes on.

    See the module docstring for the memory bound and the duplicate rules.

    Parameters
    ----------
    inputs : Iterable[str]
        Paths as given by the user, relative to the current directory or absolute.
    follow_symlinks : bool, default True
        Follow symbolic links met inside walked folders (loops are detected). When false they
        are skipped silently. Inputs named explicitly are followed either way.

    Yields
    ------
    Candidate or ScanProblem
        One item per audio file found (each ``(dev, ino)`` reached through a link or named
        explicitly at most once) or per problem.
    """
    return _Scanner(follow_symlinks).run(inputs)


# --------------------------------------------------------------------------------------------
# Implementation
# --------------------------------------------------------------------------------------------

_FileKey = tuple[int, int]  # (st_dev, st_ino)
# One level of the walk: the entries still to visit (sorted DEScending, popped from the end),
# the directory's (st_dev, st_ino) for loop detection, and its path for messages.
_Frame = tuple[list[os.DirEntry[str]], _FileKey, str]

_entry_name = attrgetter("name")


class _Scanner:
    """State of one :func:`scan`: the seen sets and the cache of the explicit-file rule."""

    __slots__ = ("_parent_cache", "dirs", "files", "follow")

    def __init__(self, follow_symlinks: bool) -> None:
        self.follow = follow_symlinks
        self.dirs: set[_FileKey] = set()  # every directory visited
        self.files: set[_FileKey] = set()  # files reached through a link or named explicitly
        # (parent path, len(self.dirs) when checked, parent was walked)
        self._parent_cache: tuple[str, int, bool] = ("", -1, False)

    def run(self, inputs: Iterable[str]) -> Iterator[Candidate | ScanProblem]:
        for raw in inputs:
            yield from self._one_input(raw)

    def _one_input(self, raw: str) -> Iterator[Candidate | ScanProblem]:
        if not raw:
            yield ScanProblem("", "missing", "an empty path names no file")
            return
        path = os.path.abspath(raw)
        if "\0" in raw:
            yield ScanProblem(
                path,
                "os_error",
                f"{display(path)} contains a NUL byte, which no file name can contain "
                "(NUL-separated input needs -0/--null)",
            )
            return
        try:
            st = os.stat(path)
        except OSError as exc:
            yield _problem_from_error(path, exc, "cannot read")
            return
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            yield from self._walk(path, st)
            return
        if self.dirs and self._parent_was_walked(path):
            return  # that walk yielded it, reported it or skipped it as non-audio
        if not stat.S_ISREG(mode):
            yield _not_a_file(path, mode)
            return
        name = os.path.basename(path)
        if not is_audio_name(name):
            dot = name.rfind(".")
            ext = f'".{name[dot + 1 :]}"' if dot > 0 else "no extension"
            yield ScanProblem(
                path,
                "not_audio",
                f"{display(path)} is not an audio file: {display(ext)} is not an extension "
                "libsndfile decodes",
            )
            return
        key = (st.st_dev, st.st_ino)
        if key in self.files:
            return
        self.files.add(key)
        yield Candidate(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)

    def _parent_was_walked(self, path: str) -> bool:
        """Tell whether a walk already met the explicitly named non-directory ``path``."""
        parent = os.path.dirname(path)
        cached_parent, cached_ndirs, walked = self._parent_cache
        if cached_parent != parent or cached_ndirs != len(self.dirs):
            try:
                pst = os.stat(parent)
            except OSError:
                walked = False
            else:
                walked = (pst.st_dev, pst.st_ino) in self.dirs
            self._parent_cache = (parent, len(self.dirs), walked)
        # A walk that does not follow links skipped a link named explicitly.
        return walked and (self.follow or not os.path.islink(path))

    def _walk(self, root: str, root_st: os.stat_result) -> Iterator[Candidate | ScanProblem]:
        dirs = self.dirs
        files = self.files
        follow = self.follow
        root_key = (root_st.st_dev, root_st.st_ino)
        if root_key in dirs:
            return  # walked already: given twice, or inside an earlier input
        listing = _list_dir(root)
        if isinstance(listing, ScanProblem):
            # Not remembered: a file named explicitly in a folder that cannot be listed (mode
            # -wx) is still scanned, and a second path to it reports it again.
            yield listing
            return
        dirs.add(root_key)
        stack: list[_Frame] = [(listing, root_key, root)]
        while stack:
            entries = stack[-1][0]
            if not entries:
                stack.pop()
                continue
            entry = entries.pop()
            path = entry.path
            try:
                if entry.is_symlink():
                    if not follow:
                        continue
                    st = os.stat(path)
                    via_link = True
                else:
                    st = entry.stat(follow_symlinks=False)
                    via_link = False
            except OSError as exc:
                yield _problem_from_error(path, exc, "cannot read")
                continue
            mode = st.st_mode
            if stat.S_ISREG(mode):
                if not is_audio_name(entry.name):
                    continue  # a link to a non-audio file
                key = (st.st_dev, st.st_ino)
                if files and key in files:
                    continue
                if via_link:
                    files.add(key)
                yield Candidate(path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
            elif stat.S_ISDIR(mode):
                key = (st.st_dev, st.st_ino)
                if key in dirs:
                    for _, frame_key, frame_path in stack:
                        if frame_key == key:
                            yield ScanProblem(
                                path,
                                "symlink_loop",
                                f"{display(path)} leads back to {display(frame_path)}, a directory "
                                "that contains it (symlink loop); not walked again",
                            )
                            break
                    continue  # a loop, or a directory already walked through another path
                sub = _list_dir(path)
                if isinstance(sub, ScanProblem):
                    yield sub
                    continue
                dirs.add(key)
                stack.append((sub, key, path))
            elif is_audio_name(entry.name):
                yield _not_a_file(path, mode)


def _list_dir(path: str) -> list[os.DirEntry[str]] | ScanProblem:
    """Read one directory: entries that may matter, sorted by name, DEScending (pop order).

    Regular files without an audio extension are dropped here (``DirEntry`` type checks use
    the ``d_type`` that comes with the listing: no system call), and the directory is closed
    before returning.
    """
    try:
        with os.scandir(path) as it:
            entries = [
                e
                for e in it
                if is_audio_name(e.name) or e.is_dir(follow_symlinks=False) or e.is_symlink()
            ]
    except OSError as exc:
        return _problem_from_error(path, exc, "cannot list directory")
    entries.sort(key=_entry_name, reverse=True)
    return entries


def _problem_from_error(path: str, exc: OSError, action: str) -> ScanProblem:
    """Translate an ``OSError`` met on ``path`` into a :class:`ScanProblem`."""
    shown = display(path)
    code = exc.errno
    if code == errno.ENOENT:
        if os.path.islink(path):
            try:
                target = display(os.readlink(path))
            except OSError:  # pragma: no cover - removed meanwhile
                target = "?"
            return ScanProblem(
                path, "broken_symlink", f"{shown} is a broken symbolic link (to {target})"
            )
        return ScanProblem(path, "missing", f"{shown} does not exist")
    if code == errno.ENOTDIR:
        return ScanProblem(
            path, "missing", f"{shown} does not exist (a parent of it is not a directory)"
        )
    if code == errno.ELOOP:
        return ScanProblem(
            path, "symlink_loop", f"{shown}: too many levels of symbolic links (symlink loop)"
        )
    if code in (errno.EACCES, errno.EPERM):
        return ScanProblem(path, "permission", f"{shown}: {action}: permission denied")
    name = errno.errorcode.get(code, "?") if code is not None else "?"
    return ScanProblem(path, "os_error", f"{shown}: {action}: {exc.strerror or exc} ({name})")


def _not_a_file(path: str, mode: int) -> ScanProblem:
    if stat.S_ISFIFO(mode):
        what = "a named pipe (FIFO)"
    elif stat.S_ISSOCK(mode):
        what = "a socket"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        what = "a device"
    else:
        what = "a special file"
    return ScanProblem(path, "not_a_file", f"{display(path)} is {what}, not a regular file")


def _too_long_message(null_separated: bool) -> str:
    hint = (
        ""
        if null_separated
        else " (NUL-separated input such as `find -print0` output needs -0/--null)"
    )
    return f"an input path is longer than {MAX_ENTRY_BYTES} bytes without a separator{hint}"


class Prefetch:
    """The scan in a thread of its own, handed over through a bounded queue.

    The supervisor must keep collecting results, committing and answering signals while the
    scan waits: on a producer that writes paths slowly (``inotifywait ... | engine-run -``), on
    an idle stdin, on a slow network folder. A read blocked in the main thread would hold all
    of that up (a signal handler that returns restarts the read). The queue holds at most
    ``maxsize`` items, so the scan still cannot run ahead of the work.

    Parameters
    ----------
    items : iterable
        Typically :func:`scan`'s generator; consumed in the thread only.
    maxsize : int
        Items scanned ahead at most.
    """

    #: :meth:`get` found nothing within its timeout.
    EMPTY: Final = object()
    #: :meth:`get`: the scan is over.
    END: Final = object()

    def __init__(self, items: Iterable[Candidate | ScanProblem], maxsize: int = 64) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=maxsize)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(items,), name="engine-scan",
                                        daemon=True)  # may sit in a read of stdin at exit
        self._thread.start()

    def _run(self, items: Iterable[Candidate | ScanProblem]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as e:  # handed to the supervisor, raised there (InputError ...)
            self._put(_Raised(e))
            return
        self._put(self.END)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def get(self, timeout: float) -> object:
        """The next scanned item, :data:`EMPTY` after ``timeout`` seconds, or :data:`END`;
        an exception of the scan is raised here."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return self.EMPTY
        if isinstance(item, _Raised):
            raise item.error
        return item

    def close(self) -> None:
        """Let the thread end at its next item (it is a daemon: a read that never returns
        does not keep the process alive)."""
        self._stop.set()


@dataclass(frozen=True, slots=True)
class _Raised:
    error: BaseException
