"""What the store holds and what a commit is made of: records, operations, results, config.

Plain frozen dataclasses, no LMDB. The catalog's records (:class:`TrackRecord`,
:class:`FingerprintRecord`, :class:`FailureRecord`), the operations of a batch given to
:meth:`Store.commit <engine.store.Store.commit>` (:class:`PutTrack` ... :class:`DeleteTrack`,
together the :data:`Operation` alias), what a commit and :meth:`Store.stats` report
(:class:`CommitResult`, :class:`StoreStats`), the :class:`FingerprintTable` the query side
computes on, and the :class:`StoreConfig` a store is opened with. How records become bytes is
:mod:`engine.store.codec`; how operations change the databases is :mod:`engine.store.batch`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, TypedDict

import numpy as np
import numpy.typing as npt

from kernels.fingerprint import FINGERPRINT_NAMES, FINGERPRINT_VERSION

from ..errors import StoreError

if TYPE_CHECKING:
    from os import PathLike

#: Values in a fingerprint (``kernels.FINGERPRINT_NAMES``).
_N_VALUES: Final = len(FINGERPRINT_NAMES)
_MiB: Final = 1024 * 1024


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
        engine.content_key of the file (1 to 255 bytes; 16 from engine.content_key).
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
    """Insert or replace a track (a changed or moved file keeps its id).

    Replacing a track with another size, mtime_ns or content key drops its fingerprint in the
    same transaction: a fingerprint is only kept for the content it was computed from (a
    path-only change keeps it; put the new fingerprint after this operation).
    """

    record: TrackRecord


@dataclass(frozen=True, slots=True)
class PutFingerprint:
    """Insert or replace a fingerprint; it becomes the most recently used one, and the track's
    failure, if any, is dropped (a track has a fingerprint or a failure, never both)."""

    record: FingerprintRecord


@dataclass(frozen=True, slots=True)
class PutFailure:
    """Insert or replace a failure record; the track's fingerprint, if any, is dropped.

    The id needs no :class:`TrackRecord`: a failure alone (a file that failed before it could
    be catalogued, a problem the scan found) owns its path and is listed by
    :meth:`Store.iter_failures`.
    """

    record: FailureRecord


@dataclass(frozen=True, slots=True)
class ClearFailure:
    """Forget a track's failure (no-op when it has none); an id with only a failure is then
    gone, its path free."""

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
        The store's ``generation`` at the snapshot (package docstring): the table is still the
        store's content while the generation is unchanged.
    track_ids : np.ndarray, shape (n,), dtype int64
    versions : np.ndarray, shape (n,), dtype uint16
        Fingerprint version of each row.
    values : np.ndarray, shape (n, 25), dtype float64
        The 25 values, columns in ``kernels.FINGERPRINT_NAMES`` order.
    duration_s : np.ndarray, shape (n,), dtype float64
        Decoded length of each track, seconds.
    content_keys : np.ndarray, shape (n, 16), dtype uint8
        Each track's content key (engine.content_key; a key of another length is replaced by
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
