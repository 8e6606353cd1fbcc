"""Input scanner: turn the paths given to ``engine-run`` into a stream of audio files.

``engine-run [PATH ...]`` accepts files and folders; ``-`` reads further paths from stdin, one per
line or NUL-separated with ``-0/--null`` (as ``find -print0`` writes them). :func:`read_paths`
splits such a stream and :func:`scan` turns any iterable of paths into a stream of
:class:`Candidate` (an audio file to fingerprint) and :class:`ScanProblem` (something the user
should hear about, never fatal).

Which files are audio
---------------------
A file is a candidate when its name has one of :data:`AUDIO_EXTENSIONS` (case-insensitive): every
extension libsndfile or FFmpeg (engine/decode) decodes. The extension only selects candidates;
the decoder is chosen later by probing the content (engine/decode/probe.py), so a FLAC named
``.ogg`` or an M4A named ``.mp4`` is read all the same.

Skipped files
-------------
A regular file met inside a walked folder whose name has no audio extension (``cover.jpg``,
``album.cue``, ``README``) is skipped, and told: :func:`scan` calls its ``on_skip`` with the
path and the lowercase extension. :class:`SkipCounter` is the usual listener: it counts the
skipped files by extension in bounded memory (at most :data:`MAX_SKIP_EXTENSIONS` distinct
extensions are told apart, files of any further one count as "other": a hostile tree may hold
millions of distinct extensions), and ``engine-run`` prints its reading in the closing summary
(``skipped 1,204: .jpg 1,100, .cue 80, .m3u 24``) and, with ``-v``, each skipped path. Telling
costs no system call: the file type comes with the listing (``DirEntry.is_file`` uses
``d_type``, which every common file system fills in). A followed symbolic link to such a file is
told too; like hard links, each name counts (non-audio files are not remembered). Not told are
what the other rules below skip (a folder reached twice is walked, and told, once; an explicitly
named file whose folder was already walked was told by that walk), symbolic links when links
are not followed, and FIFOs, sockets and devices without an audio name. A file NAMED
EXPLICITLY as an input that is not audio is no skip but a ``ScanProblem(kind="not_audio")``: a
failed record with its reason.

Streaming and memory
--------------------
The list of the library's files is never built. :func:`scan` is a generator that walks folders
depth-first with an explicit stack (no recursion, so a tree deeper than the interpreter's
recursion limit is fine). Each stack frame holds the not yet visited entries of ONE directory,
read with :func:`os.scandir`, filtered (non-audio regular files are dropped while listing, and
told to ``on_skip``) and sorted by name; entries are popped off as they are visited and the
directory handle is closed before the first entry is visited, so no file descriptor stays open
per level. The memory of the walk is therefore bounded by

* the depth of the tree times the pending entries of each level (at most the largest single
  directory, about 220 bytes per kept entry: 1.1 MB for a folder of 5 000 tracks), plus
* the two "already seen" sets below, plus
* a :class:`SkipCounter`'s at most :data:`MAX_SKIP_EXTENSIONS` extensions (a few KB).

Duplicates
----------
A directory reached twice (given twice, nested in an earlier input, or reached again through a
symbolic link) is walked once: the ``(st_dev, st_ino)`` of EVERY directory listed is kept, about
150 bytes per directory (0.75 MB for a library of 5 000 album folders). A directory that leads
back to one of its own ancestors is reported once as ``"symlink_loop"``; any other repeat is
skipped silently (its files were already yielded or told as skipped).

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
directory was already walked has already been yielded, reported or told as skipped by that
walk, and is skipped silently (not told again); this costs one extra ``stat`` per distinct
parent directory, and only once some directory has been walked. Files listed BEFORE their
folder (``find -depth``, ``find -type f``) are handled as explicit files: audio ones are
remembered, others reported "not_audio".

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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from operator import attrgetter
from typing import BinaryIO, Final, Literal

from ..errors import InputError
from ..text import display

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_SKIP_EXTENSIONS",
    "Candidate",
    "ProblemKind",
    "ScanProblem",
    "SkipCounter",
    "SkipCounts",
    "is_audio_name",
    "read_paths",
    "scan",
]

#: Every file-name extension libsndfile or FFmpeg (engine/decode) decodes, lowercase and without
#: the dot. Matching is case-insensitive (``X.FLAC`` and ``x.Flac`` count): see
#: :func:`is_audio_name`. The extension only selects candidates in walks; which decoder reads a
#: file is decided by probing its content (engine/decode/probe.py). The first group is
#: libsndfile's, the rest FFmpeg's: MP4 / M4A (AAC, ALAC) and its relatives, raw AAC, WMA / ASF,
#: Monkey's Audio, WavPack, TTA, (E-)AC-3, DTS, Matroska / WebM, AVI, MPEG-1 layer II, Musepack
#: and AMR; video containers count for their audio track.
AUDIO_EXTENSIONS: Final[frozenset[str]] = frozenset(
    {
        "wav", "flac", "ogg", "oga", "opus", "mp3", "aiff", "aif", "aifc", "w64", "caf", "au",
        "snd", "rf64", "wve", "sd2", "voc", "ircam", "htk", "sf", "nist", "mat4", "mat5", "pvf",
        "xi", "paf", "svx", "mpc",
        "m4a", "m4b", "m4p", "mp4", "m4v", "mov", "3gp", "aac", "adts", "wma", "asf", "ape",
        "wv", "tta", "ac3", "ec3", "eac3", "dts", "mka", "mkv", "webm", "weba", "avi", "mp2",
        "mpga", "mpp", "mp+", "amr",
    }
)  # fmt: skip

#: Distinct extensions a :class:`SkipCounter` tells apart by default; skipped files of any
#: further extension are counted together as "other".
MAX_SKIP_EXTENSIONS: Final[int] = 64

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


@dataclass(frozen=True, slots=True)
class SkipCounts:
    """How many files a scan skipped as not audio, by extension: a :class:`SkipCounter`'s
    reading.

    Parameters
    ----------
    total : int
        Files skipped; always ``sum(n for _, n in by_extension) + other``.
    by_extension : tuple of (str, int)
        ``(extension, files)`` for each extension told apart: lowercase, without the dot,
        ``""`` for a name without one (``README``, ``.DS_Store``); by descending count, ties in
        the order of the extension. May contain any character a file name can (``display`` it).
    other : int
        Files whose extension was met only once the counter already told apart its
        ``max_extensions``; they are not told apart.
    """

    total: int = 0
    by_extension: tuple[tuple[str, int], ...] = ()
    other: int = 0


class SkipCounter:
    """Counts the files a scan skips as not audio, by extension, in bounded memory.

    Give its :meth:`add` to :func:`scan` as ``on_skip``; read it with :meth:`counts`. At most
    ``max_extensions`` distinct extensions are kept (the first ones met); files of any further
    extension are counted under :attr:`SkipCounts.other`, so a tree of millions of distinct
    extensions costs no more than one of ``max_extensions``.

    Thread-safe: :func:`scan` may run in a thread of its own (``Prefetch``) while another
    thread reads or closes the counter.

    Parameters
    ----------
    max_extensions : int, default MAX_SKIP_EXTENSIONS
        Distinct extensions told apart (at least 0).
    """

    __slots__ = ("_by_ext", "_closed", "_lock", "_max", "_other", "_total")

    def __init__(self, *, max_extensions: int = MAX_SKIP_EXTENSIONS) -> None:
        if max_extensions < 0:
            raise ValueError(f"max_extensions must be >= 0, not {max_extensions}")
        self._max = max_extensions
        self._by_ext: dict[str, int] = {}
        self._other = 0
        self._total = 0
        self._closed = False
        self._lock = threading.Lock()

    def add(self, path: str, extension: str) -> bool:
        """Count one skipped file (the signature of :func:`scan`'s ``on_skip``).

        Parameters
        ----------
        path : str
            The skipped file (not kept: only its extension counts).
        extension : str
            Its extension, as :func:`scan` gives it: lowercase, without the dot, ``""`` for
            none. It is lowercased again here (``.JPG`` counts as ``.jpg``) for other callers.

        Returns
        -------
        bool
            True when counted; False once :meth:`close` was called (nothing is counted then:
            a listener can tell that the run has said its last word).
        """
        with self._lock:
            if self._closed:
                return False
            self._total += 1
            by_ext = self._by_ext
            n = by_ext.get(extension)
            if n is None:
                extension = extension.lower()
                n = by_ext.get(extension)
            if n is not None:
                by_ext[extension] = n + 1
            elif len(by_ext) < self._max:
                by_ext[extension] = 1
            else:
                self._other += 1
            return True

    @property
    def total(self) -> int:
        """Files counted so far."""
        return self._total

    def counts(self) -> SkipCounts:
        """The counts so far, as a :class:`SkipCounts` (the extensions in their order)."""
        with self._lock:
            items = list(self._by_ext.items())
            total, other = self._total, self._other
        items.sort(key=lambda item: (-item[1], item[0]))
        return SkipCounts(total, tuple(items), other)

    def close(self) -> SkipCounts:
        """Stop counting (:meth:`add` returns False from now on); the final counts."""
        with self._lock:
            self._closed = True
        return self.counts()


def _extension(name: str) -> str:
    """The extension of a file name, lowercase and without the dot; ``""`` when it has none
    (a name whose only dot is its first character, ``.flac``, has none)."""
    dot = name.rfind(".")
    if dot <= 0 or name[dot - 1] == "/":
        return ""
    return name[dot + 1 :].lower()


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
    return _extension(name) in AUDIO_EXTENSIONS


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
    inputs: Iterable[str],
    *,
    follow_symlinks: bool = True,
    on_skip: Callable[[str, str], object] | None = None,
) -> Iterator[Candidate | ScanProblem]:
    """Stream the audio files found in files and folders, in a deterministic order.

    Inputs are handled one after the other, lazily (``inputs`` may itself be a generator such as
    :func:`read_paths`):

    * a regular file with an audio extension gives a :class:`Candidate`; a file named
      explicitly with another extension gives ``ScanProblem(kind="not_audio")``, anything that
      is not a regular file (FIFO, device, socket) ``"not_a_file"``;
    * a directory (even one named like ``x.flac``) is walked recursively, depth-first, the
      entries of each directory in sorted name order; audio files inside give candidates, other
      regular files are skipped and told to ``on_skip``, sub-folders named like ``x.flac`` are
      just folders;
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
    on_skip : callable ``(path, extension)``, optional
        Called for each regular file met inside a walked folder whose name has no audio
        extension (and each followed symbolic link to one), with its path (as in
        :class:`Candidate`) and its extension (lowercase, without the dot, ``""`` for none).
        A folder's files are told as it is listed, in the directory's own order, before any
        of its entries is yielded or walked; links to such files as they are visited.
        Typically :meth:`SkipCounter.add`. Called in the thread that iterates the scan; it
        must not raise. Not called for anything else the scan skips (see the module
        docstring) nor for explicitly named files (``"not_audio"``).

    Yields
    ------
    Candidate or ScanProblem
        One item per audio file found (each ``(dev, ino)`` reached through a link or named
        explicitly at most once) or per problem.
    """
    return _Scanner(follow_symlinks, on_skip).run(inputs)


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

    __slots__ = ("_parent_cache", "dirs", "files", "follow", "on_skip")

    def __init__(
        self, follow_symlinks: bool, on_skip: Callable[[str, str], object] | None
    ) -> None:
        self.follow = follow_symlinks
        self.on_skip = on_skip
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
                "libsndfile or FFmpeg decodes",
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
        on_skip = self.on_skip
        root_key = (root_st.st_dev, root_st.st_ino)
        if root_key in dirs:
            return  # walked already: given twice, or inside an earlier input
        listing = _list_dir(root, on_skip)
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
                    # a link to a non-audio file (or a folder replaced by one since listing)
                    if on_skip is not None:
                        on_skip(path, _extension(entry.name))
                    continue
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
                sub = _list_dir(path, on_skip)
                if isinstance(sub, ScanProblem):
                    yield sub
                    continue
                dirs.add(key)
                stack.append((sub, key, path))
            elif is_audio_name(entry.name):
                yield _not_a_file(path, mode)


def _list_dir(
    path: str, on_skip: Callable[[str, str], object] | None
) -> list[os.DirEntry[str]] | ScanProblem:
    """Read one directory: entries that may matter, sorted by name, DEScending (pop order).

    Regular files without an audio extension are dropped here and told to ``on_skip`` as they
    are listed; other entries without an audio name that are neither folders nor symbolic
    links (FIFOs, sockets, devices) are dropped silently. ``DirEntry`` type checks use the
    ``d_type`` that comes with the listing: no system call. The directory is closed before
    returning.
    """
    try:
        with os.scandir(path) as it:
            if on_skip is None:
                entries = [
                    e
                    for e in it
                    if is_audio_name(e.name) or e.is_dir(follow_symlinks=False) or e.is_symlink()
                ]
            else:
                entries = []
                keep = entries.append
                for e in it:
                    ext = _extension(e.name)
                    if ext in AUDIO_EXTENSIONS or e.is_dir(follow_symlinks=False) or e.is_symlink():
                        keep(e)
                    elif e.is_file(follow_symlinks=False):
                        on_skip(e.path, ext)
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
