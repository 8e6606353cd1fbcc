"""The engine's LMDB store: the catalog of tracks, their fingerprints and their failures.

One process writes (the supervisor, through :meth:`Store.commit`); any number of processes read
(``engine-query``, through ``Store.open(config, readonly=True)``) without ever blocking it. LMDB
is multi-version: a read transaction sees the last commit made before it began, whole, however
many commits follow while it lives. Forked workers never touch the store: an LMDB environment
belongs to the process that opened it, and every public method checks that (see
:meth:`Store.open`).

On-disk layout
--------------
A store is a directory holding LMDB's ``data.mdb`` and ``lock.mdb`` plus ``writer.lock``, an
advisory ``flock`` that the one writer holds while it has the store open (it contains that
writer's pid). Inside ``data.mdb`` there are eight named databases. Every integer used as a key
is 8 bytes **big-endian** unsigned, so that LMDB's byte order is numeric order. Values are
little-endian structs (no JSON: fixed layouts, no float round-off, half the size); the struct
formats below are Python :mod:`struct` notation.

``meta``
    ASCII name -> 8-byte big-endian unsigned integer. Names: ``schema_version``
    (:data:`SCHEMA_VERSION`, written at creation, checked at every open),
    ``fingerprint_version`` (the ``kernels.FINGERPRINT_VERSION`` of the last writer to open the
    store; each fingerprint record carries its own version, which is the one that counts),
    ``next_id`` (lowest track id never committed), ``tick`` (the access clock: last tick given
    out), ``evictions`` (fingerprints evicted by the bounds, ever) and ``fingerprint_bytes``
    (key + value bytes of all entries of ``fingerprints``, what ``max_bytes`` bounds),
    ``generation`` (commits that changed the library: every commit but one of :class:`Touch`
    operations only; a reader's cache built from the store is valid while it is unchanged;
    absent in stores written before it existed, which reads as 0) and ``store_id`` (8 random
    bytes, not a counter: written by the first writer that opens the store, so that a store
    deleted and made again, or restored from a backup of another, is told apart from the old
    one by caches that carry ``store_id`` and ``generation``).
``tracks``
    track id -> ``<qqB`` size, mtime_ns, n; then the n-byte content key; then the path bytes
    (the rest of the value). Path bytes are the path's UTF-8 encoding with ``surrogateescape``,
    so a file name that is not UTF-8 comes back as the same ``str`` ``os.fsdecode`` gives.
``paths``
    path key -> track id. The path key is the path bytes as above; a path longer than
    :data:`PATH_KEY_MAX` bytes (LMDB keys are limited to 511) is keyed by ``b"\\0"`` + its
    32-byte BLAKE2b digest instead (no real path starts with a NUL byte). Each path belongs to
    at most one track.
``keys``
    content key (:func:`content_key`, 16 bytes) -> track id of the track last put with that
    key (duplicate files share a content key; the latest wins).
``fingerprints``
    track id -> ``<HHIddd`` version, channels, sample_rate, duration_s, decode_s, analysis_s
    (32 bytes), then the 25 values as ``<25d`` (200 bytes), in ``kernels.FINGERPRINT_NAMES``
    order: 232 bytes, 240 with the key (:data:`FINGERPRINT_ENTRY_BYTES`).
``failures``
    track id -> ``<qqIHI`` size, mtime_ns, attempts, len(kind), len(message); then kind and
    message (UTF-8, ``surrogatepass``); then the path bytes (the rest).
``atime``
    track id -> 8-byte big-endian access tick of its fingerprint.
``lru``
    16 bytes: big-endian tick then track id -> ``b""``. The eviction index: its first key is
    the least recently used fingerprint. ``atime`` and ``lru`` hold exactly the track ids that
    have a fingerprint.

Catalog rules (enforced by :meth:`Store.commit`)
------------------------------------------------
* A track id owns one path: its :class:`TrackRecord`'s, or, for an id that has only a
  :class:`FailureRecord` (a file that failed before it could be catalogued), the failure's.
  Putting or moving an id onto a path that another id owns drops that other id entirely (its
  file was replaced).
* A fingerprint needs a :class:`TrackRecord` for its id (in the same or an earlier batch).
* A failure for an id that has a :class:`TrackRecord` must name that track's path.
* Eviction deletes a fingerprint and its ``atime``/``lru`` entries only; the
  :class:`TrackRecord` stays, so :meth:`Store.lookup` answers "known, no fingerprint" and the
  supervisor recomputes the track when it is next asked for.

Reads feed the LRU through ``reads.log``
----------------------------------------
Readers never write to LMDB (a write transaction would wait for the writer's). A reader that
*used* fingerprints (``engine-query show``, ``similar``, ``playlist``, ``plot``) appends their
track ids to ``reads.log`` in the store directory (8-byte big-endian ids, one ``write`` with
``O_APPEND``) through :meth:`Store.record_reads`. The writer folds the log into its next
commit as a :class:`Touch`, so those fingerprints become the most recently used; until a writer
opens the store, the log waits. It is bounded (:data:`READS_LOG_MAX` bytes: past that, reads
are not recorded) and best effort: a read is lost when the store directory is not writable for
the reader, or when the reader appends in the microseconds between the writer renaming the log
and reading it. Bulk reads (export, stats, duplicates, map) do not touch: they would make every
fingerprint recent and the LRU meaningless.

Readers and the map size
------------------------
The writer grows the map (``x2``) when a batch does not fit. A reader whose map is smaller than
the data then gets ``lmdb.MapResizedError`` when it begins a transaction; the store adopts the
new size (``set_mapsize(0)``) and begins again. Readers hold a read transaction only for one
call, except the iterators, which hold one for the whole iteration (one consistent snapshot):
exhaust or ``close()`` them promptly, since LMDB cannot reuse pages a live snapshot still sees,
and do not call other methods of the same store while iterating if they might resize the map
(a commit in the writer; any call in a reader when the writer has grown the map).
"""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import logging
import math
import os
import shutil
import struct
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypedDict, TypeVar

import lmdb
import numpy as np
import numpy.typing as npt

from kernels.fingerprint import FINGERPRINT_NAMES, FINGERPRINT_VERSION

from .errors import StoreError

if TYPE_CHECKING:
    from os import PathLike

__all__ = [
    "CONTENT_KEY_CHUNK",
    "FINGERPRINT_ENTRY_BYTES",
    "PATH_KEY_MAX",
    "READS_LOG_MAX",
    "SCHEMA_VERSION",
    "ClearFailure",
    "CommitResult",
    "DeleteTrack",
    "FailureRecord",
    "FingerprintRecord",
    "FingerprintTable",
    "MovePath",
    "Operation",
    "PutFailure",
    "PutFingerprint",
    "PutTrack",
    "Store",
    "StoreConfig",
    "StoreStats",
    "Touch",
    "TrackRecord",
    "content_key",
    "is_current",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: On-disk layout version (the module docstring). A store written with another one is refused.
SCHEMA_VERSION: Final = 1

#: Bytes read from each end of a file by :func:`content_key`.
CONTENT_KEY_CHUNK: Final = 64 * 1024

#: Paths whose encoding is longer than this are keyed by their digest in ``paths``.
PATH_KEY_MAX: Final = 480

#: ``reads.log`` is not appended to past this size (64 Ki reads); the writer empties it.
READS_LOG_MAX: Final = 512 * 1024

_N_VALUES: Final = len(FINGERPRINT_NAMES)
_MiB: Final = 1024 * 1024
_MAX_DBS: Final = 16
_MAX_READERS: Final = 256
#: The map is never grown past this (64-bit address space is plentiful; a disk is not).
_MAX_MAP_SIZE: Final = 1 << 40
_PAGE: Final = 4096
_DB_NAMES: Final = ("meta", "tracks", "paths", "keys", "fingerprints", "failures", "atime", "lru")
_WRITER_LOCK_NAME: Final = "writer.lock"
_READS_LOG_NAME: Final = "reads.log"

_ID = struct.Struct(">Q")
_LRU_KEY = struct.Struct(">QQ")
_TRACK_HEAD = struct.Struct("<qqB")
_FAILURE_HEAD = struct.Struct("<qqIHI")
_FP = struct.Struct(f"<HHIddd{_N_VALUES}d")

#: The ``fingerprints`` value layout as a numpy record (the same bytes as ``_FP``).
_FP_DTYPE: Final = np.dtype([
    ("version", "<u2"), ("channels", "<u2"), ("sample_rate", "<u4"), ("duration_s", "<f8"),
    ("decode_s", "<f8"), ("analysis_s", "<f8"), ("values", "<f8", (_N_VALUES,)),
])
assert _FP_DTYPE.itemsize == _FP.size
_TABLE_CHUNK: Final = 65536

#: Bytes one fingerprint occupies in ``fingerprints`` (key + value): the unit of ``max_bytes``.
FINGERPRINT_ENTRY_BYTES: Final = _ID.size + _FP.size

_META_SCHEMA = b"schema_version"
_META_FP_VERSION = b"fingerprint_version"
_META_NEXT_ID = b"next_id"
_META_TICK = b"tick"
_META_EVICTIONS = b"evictions"
_META_FP_BYTES = b"fingerprint_bytes"
_META_GENERATION = b"generation"
_META_STORE_ID = b"store_id"

_U64_MAX: Final = (1 << 64) - 1
_I64_MIN: Final = -(1 << 63)
_I64_MAX: Final = (1 << 63) - 1


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """A catalogued file: where it is, what it looked like, and what its content hashes to.

    Attributes
    ----------
    track_id : int
        The store's id for the track (from :meth:`Store.new_track_id`).
    path : str
        The file's path as ``os.fsdecode`` gives it (non-UTF-8 bytes as surrogates).
    size : int
        File size in bytes when catalogued.
    mtime_ns : int
        Modification time (``st_mtime_ns``) when catalogued.
    content_key : bytes
        :func:`content_key` of the file (1 to 255 bytes; 16 from :func:`content_key`).
    """

    track_id: int
    path: str
    size: int
    mtime_ns: int
    content_key: bytes


@dataclass(frozen=True, slots=True)
class FingerprintRecord:
    """A track's 25 values with what it took to compute them.

    Attributes
    ----------
    track_id : int
        The track the values describe.
    version : int
        ``kernels.FINGERPRINT_VERSION`` of the code that computed them (see :func:`is_current`).
    values : tuple of float
        The 25 values in ``kernels.FINGERPRINT_NAMES`` order. Any sequence of 25 numbers (a
        float64 array included) is accepted and stored as a tuple of ``float``.
    duration_s : float
        Length of the decoded audio in seconds.
    sample_rate : int
        The file's sample rate in Hz.
    channels : int
        The file's channel count.
    decode_s : float
        Seconds spent decoding.
    analysis_s : float
        Seconds spent in the analyzer.

    Raises
    ------
    StoreError
        When ``values`` does not hold exactly 25 numbers.
    """

    track_id: int
    version: int
    values: tuple[float, ...]
    duration_s: float
    sample_rate: int
    channels: int
    decode_s: float
    analysis_s: float

    def __post_init__(self) -> None:
        try:
            values = tuple(float(v) for v in self.values)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"FingerprintRecord for track {self.track_id}: values must be {_N_VALUES} "
                f"numbers ({exc}); pass Fingerprint.as_array() or a tuple of floats"
            ) from exc
        if len(values) != _N_VALUES:
            raise StoreError(
                f"FingerprintRecord for track {self.track_id} has {len(values)} values; a "
                f"fingerprint has {_N_VALUES} (kernels.FINGERPRINT_NAMES): pass "
                f"Fingerprint.as_array()"
            )
        object.__setattr__(self, "values", values)


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """A file the engine could not fingerprint, kept so that it is not retried blindly.

    Attributes
    ----------
    track_id : int
        The id the file was given (it may have no :class:`TrackRecord`).
    path : str
        The file's path (as in :class:`TrackRecord`).
    kind : str
        Short machine-readable reason, e.g. the exception class name.
    message : str
        The error message.
    attempts : int
        How many times the file has failed.
    size : int
        File size when it last failed (a changed file deserves a new attempt).
    mtime_ns : int
        Modification time when it last failed.
    """

    track_id: int
    path: str
    kind: str
    message: str
    attempts: int
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where a store lives and how large it may grow.

    Attributes
    ----------
    path : str or os.PathLike
        The store's directory (created by the writer).
    map_size : int
        Initial LMDB map size in bytes (rounded up to 4 KiB); the writer doubles it whenever a
        batch does not fit, so this only needs to be a reasonable start. Default 64 MiB.
    max_entries : int or None
        Keep at most this many fingerprints (least recently used evicted first); ``None``: no
        bound. Only the writer applies it.
    max_bytes : int or None
        Keep the fingerprints' stored bytes (:data:`FINGERPRINT_ENTRY_BYTES` each) at or under
        this; ``None``: no bound. Only the writer applies it.

    Raises
    ------
    StoreError
        For a map size under 1 or a negative bound.
    """

    path: str | PathLike[str]
    map_size: int = 64 * _MiB
    max_entries: int | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.map_size < 1:
            raise StoreError(
                f"StoreConfig.map_size = {self.map_size} bytes; it must be positive: pass at "
                f"least 65536 (the map grows by itself)"
            )
        for name in ("max_entries", "max_bytes"):
            bound = getattr(self, name)
            if bound is not None and bound < 0:
                raise StoreError(
                    f"StoreConfig.{name} = {bound}; a bound must be >= 0: pass a positive "
                    f"number or None for no bound"
                )


# --------------------------------------------------------------------------------------------
# Batch operations


@dataclass(frozen=True, slots=True)
class PutTrack:
    """Insert or replace a track (a changed or moved file keeps its id)."""

    record: TrackRecord


@dataclass(frozen=True, slots=True)
class PutFingerprint:
    """Insert or replace a fingerprint; it becomes the most recently used one."""

    record: FingerprintRecord


@dataclass(frozen=True, slots=True)
class PutFailure:
    """Insert or replace a failure record."""

    record: FailureRecord


@dataclass(frozen=True, slots=True)
class ClearFailure:
    """Forget a track's failure (no-op when it has none)."""

    track_id: int


@dataclass(frozen=True, slots=True)
class MovePath:
    """Move a track (its record, failure and path index) to a new path; the fingerprint stays."""

    track_id: int
    new_path: str


@dataclass(frozen=True, slots=True)
class Touch:
    """Mark fingerprints as just used (ids without a fingerprint are ignored)."""

    track_ids: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_ids", tuple(int(t) for t in self.track_ids))


@dataclass(frozen=True, slots=True)
class DeleteTrack:
    """Forget a track entirely: record, path, content key, fingerprint and failure."""

    track_id: int


#: One operation of a batch given to :meth:`Store.commit`.
Operation = PutTrack | PutFingerprint | PutFailure | ClearFailure | MovePath | Touch | DeleteTrack


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What a commit did beyond the batch itself.

    Attributes
    ----------
    evicted : tuple of int
        Track ids whose fingerprints the bounds evicted, least recently used first.
    map_size : int
        The map size after the commit (larger than before when the batch needed growth).
    """

    evicted: tuple[int, ...]
    map_size: int


class StoreStats(TypedDict):
    """What :meth:`Store.stats` reports (counts from one snapshot)."""

    path: str
    schema_version: int
    fingerprint_version: int
    tracks: int
    fingerprints: int
    fingerprint_versions: dict[str, int]
    current_fingerprints: int
    failures: int
    evictions: int
    generation: int
    pending_reads: int
    fingerprint_bytes: int
    next_id: int
    map_size: int
    used_bytes: int


@dataclass(frozen=True, eq=False)
class FingerprintTable:
    """Every fingerprint of one snapshot as arrays: what the query side computes on.

    Rows are in track id order. Built by :meth:`Store.fingerprint_table`.

    Attributes
    ----------
    generation : int
        The store's ``generation`` at the snapshot (module docstring): the table is still the
        store's content while the generation is unchanged.
    track_ids : np.ndarray, shape (n,), dtype int64
    versions : np.ndarray, shape (n,), dtype uint16
        Fingerprint version of each row.
    values : np.ndarray, shape (n, 25), dtype float64
        The 25 values, columns in ``kernels.FINGERPRINT_NAMES`` order.
    duration_s : np.ndarray, shape (n,), dtype float64
        Decoded length of each track, seconds.
    content_keys : np.ndarray, shape (n, 16), dtype uint8
        Each track's content key (:func:`content_key`; a key of another length is replaced by
        its 16-byte BLAKE2b digest). Equal keys: the same file content.
    """

    generation: int
    track_ids: npt.NDArray[np.int64]
    versions: npt.NDArray[np.uint16]
    values: npt.NDArray[np.float64]
    duration_s: npt.NDArray[np.float64]
    content_keys: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])


# --------------------------------------------------------------------------------------------
# Plain functions


def is_current(record: FingerprintRecord) -> bool:
    """Whether a stored fingerprint was computed by this code's fingerprint definition.

    Parameters
    ----------
    record : FingerprintRecord
        A record from the store.

    Returns
    -------
    bool
        ``record.version == kernels.FINGERPRINT_VERSION``; ``False`` means recompute.
    """
    return record.version == FINGERPRINT_VERSION


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if size <= 2 * CONTENT_KEY_CHUNK:
            h.update(_pread_exact(fd, size, 0, shown))
        else:
            h.update(_pread_exact(fd, CONTENT_KEY_CHUNK, 0, shown))
            h.update(_pread_exact(fd, CONTENT_KEY_CHUNK, size - CONTENT_KEY_CHUNK, shown))
    finally:
        os.close(fd)
    return h.digest()


# --------------------------------------------------------------------------------------------
# Encoding


def _id_bytes(track_id: int) -> bytes:
    if not isinstance(track_id, int) or not 0 <= track_id <= _U64_MAX:
        raise StoreError(
            f"track id {track_id!r} is not an integer in [0, 2**64): use Store.new_track_id()"
        )
    return _ID.pack(track_id)


def _encode_path(path: str) -> bytes:
    if not isinstance(path, str) or not path or "\x00" in path:
        raise StoreError(
            f"path {path!r} cannot be stored: a path is a non-empty str without NUL characters "
            f"(use os.fsdecode on bytes paths)"
        )
    try:
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise StoreError(
            f"path {path!r} cannot be encoded ({exc.reason}): it holds a surrogate that "
            f"os.fsdecode never produces; pass the path as os.fsdecode gives it"
        ) from exc


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _path_key(path: str) -> bytes:
    raw = _encode_path(path)
    if len(raw) <= PATH_KEY_MAX:
        return raw
    return b"\x00" + hashlib.blake2b(raw, digest_size=32).digest()


def _check_int(what: str, value: int, lo: int, hi: int, fix: str) -> None:
    if not isinstance(value, int) or not lo <= value <= hi:
        raise StoreError(f"{what} = {value!r} does not fit the store: it must lie in [{lo}, {hi}]"
                         f"; {fix}")


def _encode_track(rec: TrackRecord) -> bytes:
    who = f"TrackRecord for track {rec.track_id}"
    _check_int(f"{who}: size", rec.size, 0, _I64_MAX, "pass st_size")
    _check_int(f"{who}: mtime_ns", rec.mtime_ns, _I64_MIN, _I64_MAX, "pass st_mtime_ns")
    key = bytes(rec.content_key)
    if not 1 <= len(key) <= 255:
        raise StoreError(
            f"{who}: content_key is {len(key)} bytes; it must be 1 to 255 bytes: pass "
            f"content_key(path, size)"
        )
    return _TRACK_HEAD.pack(rec.size, rec.mtime_ns, len(key)) + key + _encode_path(rec.path)


def _decode_track(track_id: int, raw: bytes) -> TrackRecord:
    size, mtime_ns, n = _TRACK_HEAD.unpack_from(raw)
    start = _TRACK_HEAD.size
    key = raw[start : start + n]
    return TrackRecord(track_id, _decode_path(raw[start + n :]), size, mtime_ns, key)


def _encode_failure(rec: FailureRecord) -> bytes:
    who = f"FailureRecord for track {rec.track_id}"
    _check_int(f"{who}: size", rec.size, 0, _I64_MAX, "pass st_size")
    _check_int(f"{who}: mtime_ns", rec.mtime_ns, _I64_MIN, _I64_MAX, "pass st_mtime_ns")
    _check_int(f"{who}: attempts", rec.attempts, 0, 2**32 - 1, "count attempts from 1")
    kind = rec.kind.encode("utf-8", "surrogatepass")
    message = rec.message.encode("utf-8", "surrogatepass")
    _check_int(f"{who}: len(kind)", len(kind), 0, 2**16 - 1, "use a short kind such as "
               "the exception's class name")
    _check_int(f"{who}: len(message)", len(message), 0, 2**32 - 1, "shorten the message")
    head = _FAILURE_HEAD.pack(rec.size, rec.mtime_ns, rec.attempts, len(kind), len(message))
    return head + kind + message + _encode_path(rec.path)


def _decode_failure(track_id: int, raw: bytes) -> FailureRecord:
    size, mtime_ns, attempts, nk, nm = _FAILURE_HEAD.unpack_from(raw)
    at = _FAILURE_HEAD.size
    kind = raw[at : at + nk].decode("utf-8", "surrogatepass")
    message = raw[at + nk : at + nk + nm].decode("utf-8", "surrogatepass")
    path = _decode_path(raw[at + nk + nm :])
    return FailureRecord(track_id, path, kind, message, attempts, size, mtime_ns)


def _encode_fingerprint(rec: FingerprintRecord) -> bytes:
    who = f"FingerprintRecord for track {rec.track_id}"
    _check_int(f"{who}: version", rec.version, 0, 2**16 - 1, "pass kernels.FINGERPRINT_VERSION")
    _check_int(f"{who}: channels", rec.channels, 0, 2**16 - 1, "pass the file's channel count")
    _check_int(f"{who}: sample_rate", rec.sample_rate, 0, 2**32 - 1, "pass the rate in Hz")
    return _FP.pack(rec.version, rec.channels, rec.sample_rate, float(rec.duration_s),
                    float(rec.decode_s), float(rec.analysis_s), *rec.values)


def _decode_fingerprint(track_id: int, raw: bytes) -> FingerprintRecord:
    version, channels, sample_rate, duration_s, decode_s, analysis_s, *values = _FP.unpack(raw)
    return FingerprintRecord(track_id, version, tuple(values), duration_s, sample_rate,
                             channels, decode_s, analysis_s)


def _u64(raw: bytes | None, default: int = 0) -> int:
    return default if raw is None else int(_ID.unpack(raw)[0])


# --------------------------------------------------------------------------------------------
# The writer lock (one writer per store; forked children drop their copy of the lock)

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


def _acquire_writer_lock(path: str) -> int:
    lock_path = os.path.join(path, _WRITER_LOCK_NAME)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    _LOCK_FDS.add(fd)
    return fd


# --------------------------------------------------------------------------------------------
# The store


@dataclass(slots=True)
class _Dbs:
    meta: lmdb._Database
    tracks: lmdb._Database
    paths: lmdb._Database
    keys: lmdb._Database
    fingerprints: lmdb._Database
    failures: lmdb._Database
    atime: lmdb._Database
    lru: lmdb._Database


class _Batch:
    """One write transaction's view: applies operations, keeps the counters of ``meta``."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: _Dbs, where: str) -> None:
        self.txn = txn
        self.dbs = dbs
        self.where = where
        get = txn.get
        self.next_id = _u64(get(_META_NEXT_ID, db=dbs.meta), 1)
        self.tick = _u64(get(_META_TICK, db=dbs.meta))
        self.evictions = _u64(get(_META_EVICTIONS, db=dbs.meta))
        self.fp_bytes = _u64(get(_META_FP_BYTES, db=dbs.meta))
        self.generation = _u64(get(_META_GENERATION, db=dbs.meta))
        self.changed = False

    def save(self) -> None:
        put, meta = self.txn.put, self.dbs.meta
        if self.changed:
            self.generation += 1
            put(_META_GENERATION, _ID.pack(self.generation), db=meta)
        put(_META_NEXT_ID, _ID.pack(self.next_id), db=meta)
        put(_META_TICK, _ID.pack(self.tick), db=meta)
        put(_META_EVICTIONS, _ID.pack(self.evictions), db=meta)
        put(_META_FP_BYTES, _ID.pack(self.fp_bytes), db=meta)

    # -- reads within the transaction

    def track(self, idb: bytes) -> TrackRecord | None:
        raw = self.txn.get(idb, db=self.dbs.tracks)
        return None if raw is None else _decode_track(_ID.unpack(idb)[0], raw)

    def failure(self, idb: bytes) -> FailureRecord | None:
        raw = self.txn.get(idb, db=self.dbs.failures)
        return None if raw is None else _decode_failure(_ID.unpack(idb)[0], raw)

    def path_of(self, idb: bytes) -> str | None:
        track = self.track(idb)
        if track is not None:
            return track.path
        failure = self.failure(idb)
        return None if failure is None else failure.path

    # -- index maintenance

    def release_path(self, idb: bytes, path: str) -> None:
        key = _path_key(path)
        if self.txn.get(key, db=self.dbs.paths) == idb:
            self.txn.delete(key, db=self.dbs.paths)

    def claim_path(self, idb: bytes, path: str) -> None:
        key = _path_key(path)
        other = self.txn.get(key, db=self.dbs.paths)
        if other is not None and other != idb:
            self.drop(other)
        self.txn.put(key, idb, db=self.dbs.paths)

    def untrack(self, idb: bytes) -> None:
        old = self.txn.pop(idb, db=self.dbs.atime)
        if old is not None:
            self.txn.delete(old + idb, db=self.dbs.lru)

    def set_tick(self, idb: bytes) -> None:
        self.untrack(idb)
        self.tick += 1
        tick = _ID.pack(self.tick)
        self.txn.put(idb, tick, db=self.dbs.atime)
        self.txn.put(tick + idb, b"", db=self.dbs.lru)

    def drop_fingerprint(self, idb: bytes) -> bool:
        old = self.txn.pop(idb, db=self.dbs.fingerprints)
        self.untrack(idb)
        if old is None:
            return False
        self.fp_bytes -= len(idb) + len(old)
        return True

    def drop(self, idb: bytes) -> None:
        track = self.track(idb)
        if track is not None:
            self.txn.delete(idb, db=self.dbs.tracks)
            if self.txn.get(track.content_key, db=self.dbs.keys) == idb:
                self.txn.delete(track.content_key, db=self.dbs.keys)
            self.release_path(idb, track.path)
        failure = self.failure(idb)
        if failure is not None:
            self.txn.delete(idb, db=self.dbs.failures)
            self.release_path(idb, failure.path)
        self.drop_fingerprint(idb)

    def bump_next_id(self, track_id: int) -> None:
        self.next_id = max(self.next_id, track_id + 1)

    # -- operations

    def apply(self, op: Operation) -> None:
        self.changed = self.changed or not isinstance(op, Touch)
        match op:
            case PutTrack(record=rec):
                self.put_track(rec)
            case PutFingerprint(record=rec):
                self.put_fingerprint(rec)
            case PutFailure(record=rec):
                self.put_failure(rec)
            case ClearFailure(track_id=tid):
                self.clear_failure(tid)
            case MovePath(track_id=tid, new_path=new_path):
                self.move_path(tid, new_path)
            case Touch(track_ids=tids):
                for tid in tids:
                    idb = _id_bytes(tid)
                    if self.txn.get(idb, db=self.dbs.fingerprints) is not None:
                        self.set_tick(idb)
            case DeleteTrack(track_id=tid):
                self.drop(_id_bytes(tid))
            case _:
                raise StoreError(
                    f"commit got {op!r}: a batch holds PutTrack, PutFingerprint, PutFailure, "
                    f"ClearFailure, MovePath, Touch or DeleteTrack operations"
                )

    def put_track(self, rec: TrackRecord) -> None:
        idb = _id_bytes(rec.track_id)
        value = _encode_track(rec)
        old = self.track(idb)
        failure = self.failure(idb)
        previous = old.path if old is not None else (failure.path if failure else None)
        if previous is not None and previous != rec.path:
            self.release_path(idb, previous)
        self.claim_path(idb, rec.path)
        if old is not None and old.content_key != rec.content_key:
            if self.txn.get(old.content_key, db=self.dbs.keys) == idb:
                self.txn.delete(old.content_key, db=self.dbs.keys)
        self.txn.put(rec.content_key, idb, db=self.dbs.keys)
        self.txn.put(idb, value, db=self.dbs.tracks)
        if failure is not None and failure.path != rec.path:
            moved = FailureRecord(failure.track_id, rec.path, failure.kind, failure.message,
                                  failure.attempts, failure.size, failure.mtime_ns)
            self.txn.put(idb, _encode_failure(moved), db=self.dbs.failures)
        self.bump_next_id(rec.track_id)

    def put_fingerprint(self, rec: FingerprintRecord) -> None:
        idb = _id_bytes(rec.track_id)
        value = _encode_fingerprint(rec)
        if self.txn.get(idb, db=self.dbs.tracks) is None:
            raise StoreError(
                f"{self.where}: fingerprint for track {rec.track_id}, which has no TrackRecord: "
                f"put the track first (PutTrack earlier in the same batch or an earlier one)"
            )
        old = self.txn.replace(idb, value, db=self.dbs.fingerprints)
        self.fp_bytes += len(idb) + len(value) - (0 if old is None else len(idb) + len(old))
        self.set_tick(idb)

    def put_failure(self, rec: FailureRecord) -> None:
        idb = _id_bytes(rec.track_id)
        value = _encode_failure(rec)
        track = self.track(idb)
        if track is not None:
            if track.path != rec.path:
                raise StoreError(
                    f"{self.where}: failure for track {rec.track_id} names path {rec.path!r} "
                    f"but the track is at {track.path!r}: MovePath the track first or give the "
                    f"failure the track's path"
                )
        else:
            old = self.failure(idb)
            if old is not None and old.path != rec.path:
                self.release_path(idb, old.path)
            self.claim_path(idb, rec.path)
        self.txn.put(idb, value, db=self.dbs.failures)
        self.bump_next_id(rec.track_id)

    def clear_failure(self, track_id: int) -> None:
        idb = _id_bytes(track_id)
        old = self.txn.pop(idb, db=self.dbs.failures)
        if old is not None and self.txn.get(idb, db=self.dbs.tracks) is None:
            self.release_path(idb, _decode_failure(track_id, old).path)

    def move_path(self, track_id: int, new_path: str) -> None:
        idb = _id_bytes(track_id)
        _encode_path(new_path)
        track = self.track(idb)
        failure = self.failure(idb)
        if track is None and failure is None:
            raise StoreError(
                f"{self.where}: MovePath({track_id}, {new_path!r}) for a track the store does not "
                f"hold: PutTrack it instead"
            )
        previous = self.path_of(idb)
        if previous == new_path:
            return
        if previous is not None:
            self.release_path(idb, previous)
        self.claim_path(idb, new_path)
        if track is not None:
            moved = TrackRecord(track_id, new_path, track.size, track.mtime_ns, track.content_key)
            self.txn.put(idb, _encode_track(moved), db=self.dbs.tracks)
        if failure is not None:
            moved_f = FailureRecord(track_id, new_path, failure.kind, failure.message,
                                    failure.attempts, failure.size, failure.mtime_ns)
            self.txn.put(idb, _encode_failure(moved_f), db=self.dbs.failures)

    # -- bounds

    def enforce(self, max_entries: int | None, max_bytes: int | None) -> list[int]:
        if max_entries is None and max_bytes is None:
            return []
        count = self.txn.stat(self.dbs.fingerprints)["entries"]
        evicted: list[int] = []

        def over() -> bool:
            return (max_entries is not None and count > max_entries) or (
                max_bytes is not None and self.fp_bytes > max_bytes
            )

        cursor = self.txn.cursor(db=self.dbs.lru)
        while over() and cursor.first():
            key = cursor.key()
            _, track_id = _LRU_KEY.unpack(key)
            idb = key[8:]
            cursor.delete()
            self.txn.delete(idb, db=self.dbs.atime)
            old = self.txn.pop(idb, db=self.dbs.fingerprints)
            if old is not None:
                count -= 1
                self.fp_bytes -= len(idb) + len(old)
                self.evictions += 1
                evicted.append(track_id)
        self.changed = self.changed or bool(evicted)
        return evicted


class Store:
    """The catalog of tracks, fingerprints and failures in one LMDB environment.

    Open with :meth:`Store.open`; use as a context manager or call :meth:`close`. A store is
    bound to the process that opened it: every public method raises :class:`StoreError` when
    called in another process (a forked child), as LMDB environments must not cross ``fork``.
    One process may open a store for writing at a time (``writer.lock``); readers open it with
    ``readonly=True`` and never block the writer. Not for concurrent use by several threads
    (one thread at a time may use a store object).
    """

    def __init__(self, env: lmdb.Environment, dbs: _Dbs, config: StoreConfig, *,
                 readonly: bool, lock_fd: int | None) -> None:
        # Private: use Store.open.
        self._env: lmdb.Environment | None = env
        self._dbs = dbs
        self._config = config
        self._path = os.fspath(config.path)
        self._readonly = readonly
        self._pid = os.getpid()
        self._lock_fd = lock_fd
        self._id_lock = threading.Lock()
        self._next_id = 1
        self._lock_finalizer = (
            None if lock_fd is None else weakref.finalize(self, _release_lock, lock_fd, self._pid)
        )

    # -- opening and closing

    @classmethod
    def open(cls, config: StoreConfig, *, readonly: bool = False) -> Store:
        """Open (the writer: create if absent) the store at ``config.path``.

        Parameters
        ----------
        config : StoreConfig
            Path, initial map size and the writer's bounds.
        readonly : bool, optional
            Open as a reader: no writes, no writer lock, the store must exist. Default
            ``False`` (the writer, one per store, clears stale reader slots when it opens).

        Returns
        -------
        Store
            Bound to the calling process: open it after ``fork``, in the process that uses it.

        Raises
        ------
        StoreError
            When the store was written with another schema, another process holds it for
            writing, a reader finds no store, or LMDB refuses to open it.
        """
        path = os.fspath(config.path)
        map_size = max(_PAGE, math.ceil(config.map_size / _PAGE) * _PAGE)
        lock_fd: int | None = None
        if readonly:
            if not os.path.isfile(os.path.join(path, "data.mdb")):
                raise StoreError(
                    f"no store at {path} (no data.mdb): run engine-run on the library first or "
                    f"pass the --db it used"
                )
        else:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store directory {path}: {exc.strerror}; pass a writable "
                    f"--db"
                ) from exc
            lock_fd = _acquire_writer_lock(path)
        try:
            env = lmdb.open(path, map_size=map_size, subdir=True, readonly=readonly, lock=True,
                            max_dbs=_MAX_DBS, max_readers=_MAX_READERS, create=not readonly)
        except lmdb.Error as exc:
            if lock_fd is not None:
                _release_lock(lock_fd, os.getpid())
            if "already open in this process" in str(exc):
                raise StoreError(
                    f"the store at {path} is already open in this process: use that Store "
                    f"object (LMDB allows one open environment per store and process)"
                ) from exc
            raise StoreError(
                f"LMDB cannot open the store at {path}: {exc}; check that it is an engine store "
                f"you may {'read' if readonly else 'write'}, or pass another --db"
            ) from exc
        try:
            dbs = cls._open_dbs(env, path, readonly=readonly)
        except BaseException as exc:
            env.close()
            if lock_fd is not None:
                _release_lock(lock_fd, os.getpid())
            if isinstance(exc, lmdb.Error):
                raise StoreError(
                    f"LMDB cannot open the databases of the store at {path}: {exc}; it is not an "
                    f"engine store (or is damaged): pass another --db"
                ) from exc
            raise
        store = cls(env, dbs, config, readonly=readonly, lock_fd=lock_fd)
        if not readonly:
            with store._begin_read() as txn:
                store._next_id = _u64(txn.get(_META_NEXT_ID, db=dbs.meta), 1)
            store.clear_stale_readers()
        return store

    @staticmethod
    def _open_dbs(env: lmdb.Environment, path: str, *, readonly: bool) -> _Dbs:
        def check_schema(found: int | None) -> None:
            if found != SCHEMA_VERSION:
                raise StoreError(
                    f"the store at {path} was written with schema {found}; this engine reads "
                    f"schema {SCHEMA_VERSION}: upgrade the engine, or pass another --db"
                    if found is not None
                    else f"the store at {path} has no schema_version: it is not an engine store "
                    f"(or its creation was interrupted); pass another --db"
                )

        if readonly:
            for _ in range(8):
                try:
                    handles = [env.open_db(name.encode("ascii"), create=False)
                               for name in _DB_NAMES]
                    break
                except lmdb.MapResizedError:
                    env.set_mapsize(0)
                except lmdb.NotFoundError as exc:
                    raise StoreError(
                        f"the store at {path} lacks the engine's databases "
                        f"({', '.join(_DB_NAMES)}): it is not an engine store, or no writer has "
                        f"opened it yet; pass another --db"
                    ) from exc
            else:
                raise StoreError(f"the store at {path} keeps being resized by its writer; retry")
            dbs = _Dbs(*handles)
            while True:
                try:
                    with env.begin() as txn:
                        raw = txn.get(_META_SCHEMA, db=dbs.meta)
                    break
                except lmdb.MapResizedError:
                    env.set_mapsize(0)
            check_schema(None if raw is None else _u64(raw))
            return dbs

        for _ in range(64):
            try:
                with env.begin(write=True) as txn:
                    handles = [env.open_db(name.encode("ascii"), txn=txn) for name in _DB_NAMES]
                    dbs = _Dbs(*handles)
                    raw = txn.get(_META_SCHEMA, db=dbs.meta)
                    if raw is None:
                        if txn.stat(dbs.tracks)["entries"]:
                            check_schema(None)
                        txn.put(_META_SCHEMA, _ID.pack(SCHEMA_VERSION), db=dbs.meta)
                        txn.put(_META_NEXT_ID, _ID.pack(1), db=dbs.meta)
                        for name in (_META_TICK, _META_EVICTIONS, _META_FP_BYTES):
                            txn.put(name, _ID.pack(0), db=dbs.meta)
                    else:
                        check_schema(_u64(raw))
                    if txn.get(_META_STORE_ID, db=dbs.meta) is None:
                        txn.put(_META_STORE_ID, os.urandom(8), db=dbs.meta)
                    txn.put(_META_FP_VERSION, _ID.pack(FINGERPRINT_VERSION), db=dbs.meta)
                return dbs
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
        raise StoreError(f"the store at {path} could not be initialised: its map keeps filling; "
                         f"pass a larger map_size")

    def close(self) -> None:
        """Close the environment and release the writer lock; a second call does nothing.

        Raises
        ------
        StoreError
            When called in a process other than the one that opened the store.
        """
        self._check_pid()
        env, self._env = self._env, None
        if env is not None:
            env.close()
        if self._lock_finalizer is not None:
            self._lock_finalizer()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._env is None else ("readonly" if self._readonly else "writer")
        return f"Store({self._path!r}, {state}, pid={self._pid})"

    # -- guards and transactions

    def _check_pid(self) -> None:
        pid = os.getpid()
        if pid != self._pid:
            raise StoreError(
                f"store at {self._path} opened in pid {self._pid} used in pid {pid}: open it "
                f"after fork, in the process that uses it (forked workers never touch the store)"
            )

    def _open_env(self) -> lmdb.Environment:
        self._check_pid()
        if self._env is None:
            raise StoreError(f"store at {self._path} is closed: open it again with Store.open")
        return self._env

    def _writer_env(self, what: str) -> lmdb.Environment:
        env = self._open_env()
        if self._readonly:
            raise StoreError(
                f"{what} on the store at {self._path}, opened readonly=True: only the writer "
                f"(the supervisor) changes the store; open it with readonly=False"
            )
        return env

    def _begin_read(self) -> lmdb.Transaction[bytes]:
        env = self._open_env()
        for _ in range(8):
            try:
                return env.begin(write=False)
            except lmdb.MapResizedError:
                # The writer grew the map past ours: adopt its size and begin again.
                env.set_mapsize(0)
        raise StoreError(f"the store at {self._path} keeps being resized by its writer; retry")

    # -- properties

    @property
    def path(self) -> str:
        """The store's directory."""
        return self._path

    @property
    def readonly(self) -> bool:
        """Whether this is a reader."""
        return self._readonly

    @property
    def config(self) -> StoreConfig:
        """The configuration it was opened with."""
        return self._config

    @property
    def map_size(self) -> int:
        """The current LMDB map size in bytes."""
        return int(self._open_env().info()["map_size"])

    def clear_stale_readers(self) -> int:
        """Free reader slots left by dead processes (``mdb_reader_check``).

        Returns
        -------
        int
            How many stale slots were cleared. The writer calls this when it opens.
        """
        return int(self._open_env().reader_check())

    # -- writer API

    def new_track_id(self) -> int:
        """Allocate a track id for a new track.

        The id is persisted (``meta.next_id``) by the commit that first writes a record for it,
        in the same transaction, so the stored ``next_id`` is always above every committed id.
        After a crash the writer restarts from the stored value: ids handed out but never
        committed may be handed out again, committed ids never.

        Returns
        -------
        int
            A positive id not used by any committed record.

        Raises
        ------
        StoreError
            On a readonly store.
        """
        self._writer_env("new_track_id")
        with self._id_lock:
            track_id = self._next_id
            self._next_id += 1
        return track_id

    def commit(self, batch: Iterable[Operation]) -> CommitResult:
        """Apply a batch of operations in one write transaction, then enforce the bounds.

        Operations apply in order; either all of them and the evictions they cause are
        committed, or none. When the map is full the transaction is aborted, the map doubled
        and the same batch applied again.

        Parameters
        ----------
        batch : iterable of Operation
            :class:`PutTrack`, :class:`PutFingerprint`, :class:`PutFailure`,
            :class:`ClearFailure`, :class:`MovePath`, :class:`Touch`, :class:`DeleteTrack`.

        Returns
        -------
        CommitResult
            Evicted track ids and the map size after the commit.

        Raises
        ------
        StoreError
            When an operation breaks a catalog rule (nothing of the batch is committed), the map
            cannot grow, or LMDB fails (the disk is full, ...).
        """
        env = self._writer_env("commit")
        ops = tuple(batch)
        reads = self._take_reads()
        if reads:
            ops = (Touch(reads), *ops)
        if not ops:
            return CommitResult((), int(env.info()["map_size"]))
        where = f"commit to the store at {self._path}"
        while True:
            try:
                with env.begin(write=True) as txn:
                    work = _Batch(txn, self._dbs, where)
                    for op in ops:
                        work.apply(op)
                    evicted = work.enforce(self._config.max_entries, self._config.max_bytes)
                    work.save()
                break
            except lmdb.MapFullError:
                self._grow(env)
            except lmdb.Error as exc:
                raise self._lmdb_failure("commit a batch", exc) from exc
        with self._id_lock:
            self._next_id = max(self._next_id, work.next_id)
        return CommitResult(tuple(evicted), int(env.info()["map_size"]))

    def _take_reads(self) -> tuple[int, ...]:
        """Empty ``reads.log`` (module docstring) and return its ids, oldest first."""
        log_path = os.path.join(self._path, _READS_LOG_NAME)
        taken = f"{log_path}.{os.getpid()}"
        try:
            os.replace(log_path, taken)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.debug("store %s: reads.log not taken: %s", self._path, exc)
        ids: list[int] = []
        # ours, and any a writer that crashed between rename and unlink left (one writer at a
        # time: every other reads.log.* is such a leftover)
        for name in glob.glob(glob.escape(log_path) + ".*"):
            try:
                with open(name, "rb") as f:
                    raw = f.read(READS_LOG_MAX + 4096)
                os.unlink(name)
            except OSError as exc:
                log.debug("store %s: %s not taken: %s", self._path, name, exc)
                continue
            n = len(raw) // _ID.size
            ids.extend(struct.unpack(f">{n}Q", raw[: n * _ID.size]))
        return tuple(ids)

    def record_reads(self, track_ids: Iterable[int]) -> bool:
        """Note that fingerprints were used, so that the writer keeps them longest (LRU).

        Any process may call it, a reader included: the ids go to ``reads.log`` (module
        docstring) and the writer's next commit touches them. Best effort: nothing is raised.

        Parameters
        ----------
        track_ids : iterable of int
            Tracks whose fingerprints were read.

        Returns
        -------
        bool
            Whether the reads were recorded (``False``: the log is full or not writable).
        """
        self._open_env()
        ids = [int(t) for t in track_ids if 0 < int(t) <= _U64_MAX]
        if not ids:
            return True
        log_path = os.path.join(self._path, _READS_LOG_NAME)
        data = struct.pack(f">{len(ids)}Q", *ids)
        try:
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            log.debug("store %s: reads not recorded: %s", self._path, exc)
            return False
        try:
            if os.fstat(fd).st_size + len(data) > READS_LOG_MAX:
                return False
            return os.write(fd, data) == len(data)
        except OSError as exc:
            log.debug("store %s: reads not recorded: %s", self._path, exc)
            return False
        finally:
            os.close(fd)

    def _free_bytes(self) -> int:
        try:
            return shutil.disk_usage(self._path).free
        except OSError:
            return -1

    def _grow(self, env: lmdb.Environment) -> None:
        old = int(env.info()["map_size"])
        new = old * 2
        free = self._free_bytes()
        if new > _MAX_MAP_SIZE:
            raise StoreError(
                f"the store at {self._path} is full at map_size {old} bytes and may not grow past "
                f"{_MAX_MAP_SIZE} bytes (the disk has {free} bytes free): bound it with "
                f"max_entries / max_bytes, or pass another --db"
            )
        try:
            env.set_mapsize(new)
        except lmdb.Error as exc:
            raise StoreError(
                f"the store at {self._path} is full at map_size {old} bytes and growing it to "
                f"{new} bytes failed ({exc}); the disk holding it has {free} bytes free: free "
                f"space, bound the store with max_entries / max_bytes, or pass another --db"
            ) from exc
        log.info("store %s: map grown from %d to %d bytes", self._path, old, new)

    def _lmdb_failure(self, what: str, exc: lmdb.Error) -> StoreError:
        free = self._free_bytes()
        if getattr(exc, "code", None) == errno.ENOSPC or isinstance(exc, lmdb.DiskError):
            return StoreError(
                f"cannot {what} in the store at {self._path}: the disk is full ({exc}; "
                f"{free} bytes free): free space or pass another --db"
            )
        return StoreError(
            f"cannot {what} in the store at {self._path}: LMDB failed ({exc}); the disk has "
            f"{free} bytes free; check the disk, or pass another --db"
        )

    # -- reads (writer and readers)

    def lookup(
        self, path: str
    ) -> tuple[TrackRecord | None, FingerprintRecord | None, FailureRecord | None]:
        """Everything the store knows about a path, from one snapshot.

        Parameters
        ----------
        path : str
            The file's path as ``os.fsdecode`` gives it.

        Returns
        -------
        tuple
            ``(track, fingerprint, failure)``, each ``None`` when absent. A track without a
            fingerprint is new, evicted or failed; a failure may come without a track.
        """
        key = _path_key(path)
        dbs = self._dbs
        with self._begin_read() as txn:
            idb = txn.get(key, db=dbs.paths)
            if idb is None:
                return None, None, None
            track_id = _ID.unpack(idb)[0]
            t = txn.get(idb, db=dbs.tracks)
            f = txn.get(idb, db=dbs.fingerprints)
            e = txn.get(idb, db=dbs.failures)
        return (
            None if t is None else _decode_track(track_id, t),
            None if f is None else _decode_fingerprint(track_id, f),
            None if e is None else _decode_failure(track_id, e),
        )

    def find_by_content_key(self, key: bytes) -> TrackRecord | None:
        """The track last stored with this content key (a moved or copied file), if any.

        Parameters
        ----------
        key : bytes
            From :func:`content_key`.

        Returns
        -------
        TrackRecord or None
        """
        if not 1 <= len(key) <= 255:
            return None
        with self._begin_read() as txn:
            idb = txn.get(bytes(key), db=self._dbs.keys)
            raw = None if idb is None else txn.get(idb, db=self._dbs.tracks)
        if idb is None or raw is None:
            return None
        return _decode_track(_ID.unpack(idb)[0], raw)

    def get_track(self, track_id: int) -> TrackRecord | None:
        """The track record of an id, or ``None``."""
        idb = _id_bytes(track_id)
        with self._begin_read() as txn:
            raw = txn.get(idb, db=self._dbs.tracks)
        return None if raw is None else _decode_track(track_id, raw)

    def get_fingerprint(self, track_id: int) -> FingerprintRecord | None:
        """The fingerprint of an id, or ``None`` (never computed, evicted or failed).

        Parameters
        ----------
        track_id : int

        Returns
        -------
        FingerprintRecord or None
            Check :func:`is_current` before trusting its values.
        """
        idb = _id_bytes(track_id)
        with self._begin_read() as txn:
            raw = txn.get(idb, db=self._dbs.fingerprints)
        return None if raw is None else _decode_fingerprint(track_id, raw)

    def iter_fingerprints(self) -> Iterator[tuple[TrackRecord, FingerprintRecord]]:
        """Every fingerprint with its track, in track id order, from one snapshot.

        The iterator holds one read transaction until it is exhausted or closed: the writer is
        never blocked, and what it yields is one commit's state, whole.

        Yields
        ------
        tuple of (TrackRecord, FingerprintRecord)
        """
        return self._iterate(self._dbs.fingerprints, self._pair)

    def iter_tracks(self) -> Iterator[TrackRecord]:
        """Every track record, in id order, from one snapshot (held as for iter_fingerprints).

        Yields
        ------
        TrackRecord
        """
        return self._iterate(self._dbs.tracks, lambda _txn, tid, raw: _decode_track(tid, raw))

    def iter_failures(self) -> Iterator[FailureRecord]:
        """Every failure record, in id order, from one snapshot (held as for iter_fingerprints).

        Yields
        ------
        FailureRecord
        """
        return self._iterate(self._dbs.failures, lambda _txn, tid, raw: _decode_failure(tid, raw))

    def _pair(self, txn: lmdb.Transaction[bytes], track_id: int,
              raw: bytes) -> tuple[TrackRecord, FingerprintRecord] | None:
        t = txn.get(_ID.pack(track_id), db=self._dbs.tracks)
        if t is None:
            return None
        return _decode_track(track_id, t), _decode_fingerprint(track_id, raw)

    def _iterate(self, db: lmdb._Database,
                    decode: Callable[[lmdb.Transaction[bytes], int, bytes], _T | None]
                    ) -> Generator[_T, None, None]:
        txn = self._begin_read()
        return self._generate(txn, db, decode)

    @staticmethod
    def _generate(txn: lmdb.Transaction[bytes], db: lmdb._Database,
                     decode: Callable[[lmdb.Transaction[bytes], int, bytes], _T | None]
                     ) -> Generator[_T, None, None]:
        with txn:
            for key, raw in txn.cursor(db=db):
                item = decode(txn, _ID.unpack(key)[0], raw)
                if item is not None:
                    yield item

    def generation(self) -> int:
        """The store's ``generation`` (module docstring): changes with every library change."""
        with self._begin_read() as txn:
            return _u64(txn.get(_META_GENERATION, db=self._dbs.meta))

    def identity(self) -> tuple[str, int]:
        """``(store_id as hex, generation)`` from one snapshot: what a cache of the library is
        keyed by (module docstring). ``store_id`` is "" in a store no writer of this version
        has opened yet."""
        with self._begin_read() as txn:
            raw = txn.get(_META_STORE_ID, db=self._dbs.meta)
            return ("" if raw is None else bytes(raw).hex(),
                    _u64(txn.get(_META_GENERATION, db=self._dbs.meta)))

    def fingerprint_table(self) -> FingerprintTable:
        """Every fingerprint, from one snapshot, as arrays (all versions: filter on
        ``versions``).

        Reads the records in chunks straight into preallocated arrays: memory is the table's
        own (about 260 bytes a track) plus one chunk, and a million tracks take about a second.

        Returns
        -------
        FingerprintTable
        """
        dbs = self._dbs
        with self._begin_read() as txn:
            generation = _u64(txn.get(_META_GENERATION, db=dbs.meta))
            n = int(txn.stat(dbs.fingerprints)["entries"])
            ids = np.empty(n, np.int64)
            versions = np.empty(n, np.uint16)
            values = np.empty((n, _N_VALUES), np.float64)
            duration = np.empty(n, np.float64)
            keys = np.zeros((n, 16), np.uint8)
            cursor = txn.cursor(db=dbs.fingerprints)
            i = 0
            for chunk in _chunks(cursor.iternext(keys=True, values=True), _TABLE_CHUNK):
                m = len(chunk)
                ids[i : i + m] = np.frombuffer(b"".join(k for k, _ in chunk), ">u8")
                rec = np.frombuffer(b"".join(v for _, v in chunk), _FP_DTYPE)
                versions[i : i + m] = rec["version"]
                values[i : i + m] = rec["values"]
                duration[i : i + m] = rec["duration_s"]
                i += m
            get, tracks = txn.get, dbs.tracks
            for row, track_id in enumerate(ids.tolist()):
                raw = get(_ID.pack(track_id), db=tracks)
                if raw is None:  # a catalog rule makes this impossible; stay total anyway
                    continue
                size = raw[_TRACK_HEAD.size - 1]
                key = raw[_TRACK_HEAD.size : _TRACK_HEAD.size + size]
                if size != 16:
                    key = hashlib.blake2b(key, digest_size=16).digest()
                keys[row] = np.frombuffer(key, np.uint8)
        return FingerprintTable(generation=generation, track_ids=ids, versions=versions,
                                values=values, duration_s=duration, content_keys=keys)

    def stats(self) -> StoreStats:
        """Counts and sizes of the store, from one snapshot.

        Returns
        -------
        StoreStats
            A dict: ``path``, ``schema_version``, ``fingerprint_version`` (of the last writer),
            ``tracks``, ``fingerprints``, ``fingerprint_versions`` (version -> count, keys as
            strings for JSON), ``current_fingerprints`` (of this code's version),
            ``failures``, ``evictions`` (ever), ``generation``, ``pending_reads`` (ids in
            ``reads.log`` waiting for the writer), ``fingerprint_bytes``, ``next_id``,
            ``map_size`` and ``used_bytes`` (pages in use times page size).
        """
        dbs = self._dbs
        with self._begin_read() as txn:
            meta = {name: _u64(txn.get(name, db=dbs.meta)) for name in (
                _META_SCHEMA, _META_FP_VERSION, _META_NEXT_ID, _META_EVICTIONS, _META_FP_BYTES)}
            meta[_META_GENERATION] = _u64(txn.get(_META_GENERATION, db=dbs.meta))
            tracks = txn.stat(dbs.tracks)["entries"]
            fingerprints = txn.stat(dbs.fingerprints)["entries"]
            failures = txn.stat(dbs.failures)["entries"]
            versions: dict[int, int] = {}
            cursor = txn.cursor(db=dbs.fingerprints)
            for chunk in _chunks(cursor.iternext(keys=False, values=True), _TABLE_CHUNK):
                found, counts = np.unique(
                    np.frombuffer(b"".join(v[:2] for v in chunk), "<u2"), return_counts=True)
                for v, c in zip(found.tolist(), counts.tolist(), strict=True):
                    versions[v] = versions.get(v, 0) + c
        try:
            pending = os.path.getsize(os.path.join(self._path, _READS_LOG_NAME)) // _ID.size
        except OSError:
            pending = 0
        env = self._open_env()
        info, psize = env.info(), env.stat()["psize"]
        return StoreStats(
            path=self._path,
            schema_version=meta[_META_SCHEMA],
            fingerprint_version=meta[_META_FP_VERSION],
            tracks=tracks,
            fingerprints=fingerprints,
            failures=failures,
            fingerprint_versions={str(v): c for v, c in sorted(versions.items())},
            current_fingerprints=versions.get(FINGERPRINT_VERSION, 0),
            evictions=meta[_META_EVICTIONS],
            generation=meta[_META_GENERATION],
            pending_reads=pending,
            fingerprint_bytes=meta[_META_FP_BYTES],
            next_id=meta[_META_NEXT_ID],
            map_size=int(info["map_size"]),
            used_bytes=(int(info["last_pgno"]) + 1) * int(psize),
        )
