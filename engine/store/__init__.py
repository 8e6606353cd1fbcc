"""The engine's LMDB store: the catalog of tracks, their fingerprints and their failures.

One process writes (the supervisor, through :meth:`Store.commit`); any number of processes read
(``engine-query``, through ``Store.open(config, readonly=True)``) without ever blocking it. LMDB
is multi-version: a read transaction sees the last commit made before it began, whole, however
many commits follow while it lives. Forked workers never touch the store: an LMDB environment
belongs to the process that opened it, and every public method checks that (see
:meth:`Store.open`).

Modules
-------
``records``
    What the store holds and what a commit is made of: :class:`TrackRecord`,
    :class:`FingerprintRecord`, :class:`FailureRecord`, the operations (:class:`PutTrack` ...
    :class:`DeleteTrack`, the :data:`Operation` alias), :class:`CommitResult`,
    :class:`StoreStats`, :class:`FingerprintTable`, :func:`is_current`, :class:`StoreConfig`.
``codec``
    The bytes of the layout below: struct layouts, ``meta`` names, key and record encodings,
    :data:`SCHEMA_VERSION`, :data:`PATH_KEY_MAX`, :data:`FINGERPRINT_ENTRY_BYTES`,
    :func:`is_storable_path`.
``dbs``
    The eight named databases: their handles, opening them, creating ``meta`` and checking the
    schema; refusing a foreign environment before anything is written.
``fs``
    The store directory as the engine touches it: files opened with ``O_NOFOLLOW``, LMDB's
    files refused when they are links, OS errors worded (errno name and fix), the identity of
    the store checked at every commit.
``lock``
    ``writer.lock``: the one writer's ``flock``, dropped by forked children.
``batch``
    One write transaction: applying operations under the catalog rules, LRU eviction.
``snapshot``
    :class:`Snapshot`: several reads from one read transaction.
``reads_log``
    ``reads.log``: readers' used fingerprints, folded into the writer's LRU;
    :data:`READS_LOG_MAX`.
``store``
    :class:`Store`: the environment opened per process (guarded by pid), read transactions,
    commit and map growth, the reads.

Everything public is imported here: use ``from engine.store import Store``, not the modules.
Names with a leading underscore are private to the package (its modules import them from each
other).

On-disk layout
--------------
A store is a directory holding LMDB's ``data.mdb`` and ``lock.mdb`` plus ``writer.lock``, an
advisory ``flock`` that the one writer holds while it has the store open (it contains that
writer's pid), and ``reads.log`` (below). Inside ``data.mdb`` there are eight named databases.
Every integer used as a key is 8 bytes **big-endian** unsigned, so that LMDB's byte order is
numeric order. Values are little-endian structs (no JSON: fixed layouts, no float round-off,
half the size); the struct formats below are Python :mod:`struct` notation (``codec`` holds
them and the encoders).

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
    content key (engine.content_key, 16 bytes) -> track id of the track last put with that
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

What the engine trusts in the store directory
---------------------------------------------
What is in the directory is checked before it is used (``fs``, ``dbs``): no file there is ever
written through a symbolic link (``writer.lock`` and ``reads.log`` are opened with
``O_NOFOLLOW`` and must be regular files; ``data.mdb`` and ``lock.mdb`` must not be links);
an existing ``data.mdb`` is read, with nothing written, before the writer takes its lock, and
an LMDB environment of another program, a file that is not LMDB, or a store of another
``schema_version`` is refused and left byte for byte as it was (an empty or missing directory
becomes a new store). Every OS error on open, lock or commit is a :class:`StoreError` naming
the store, the errno and the fix (a read-only mount: ``EROFS``). The writer remembers the
``(st_dev, st_ino)`` of the directory and of ``data.mdb`` and refuses to commit once either is
gone or another (the store was deleted or replaced under it).

Catalog rules (enforced by :meth:`Store.commit`)
------------------------------------------------
* A track id owns one path: its :class:`TrackRecord`'s, or, for an id that has only a
  :class:`FailureRecord` (a file that failed before it could be catalogued), the failure's.
  Putting or moving an id onto a path that another id owns drops that other id entirely (its
  file was replaced).
* A fingerprint needs a :class:`TrackRecord` for its id (in the same or an earlier batch).
* A failure for an id that has a :class:`TrackRecord` must name that track's path.
* A fingerprint describes the content it was computed from: :class:`PutTrack` that changes an
  existing track's size, mtime_ns or content key drops the track's fingerprint in the same
  transaction (a path-only change keeps it), so the track is recomputed when next asked for.
* A track has a current fingerprint or a current failure, never both: :class:`PutFailure`
  drops the track's fingerprint, :class:`PutFingerprint` drops the track's failure
  (:class:`ClearFailure` stays valid, and is then a no-op). A writer opening a store written
  before this rule drops every fingerprint that has a failure beside it (the failure is
  always the newer outcome there). Dropped fingerprints leave ``fingerprint_bytes``, ``atime``
  and ``lru`` exact and are not evictions.
* A failure may have no :class:`TrackRecord` (a file that failed before it could be
  catalogued, or a problem the scan found: a missing file); :meth:`Store.iter_failures` lists
  it like any other. Its id owns the failure's path until a :class:`PutTrack` of another id
  claims that path (the file came back) or it is cleared.
* Eviction deletes a fingerprint and its ``atime``/``lru`` entries only; the
  :class:`TrackRecord` stays, so :meth:`Store.lookup` answers "known, no fingerprint" and the
  supervisor recomputes the track when it is next asked for.

Reads feed the LRU through ``reads.log``
----------------------------------------
Readers never write to LMDB (a write transaction would wait for the writer's). A reader that
*used* fingerprints (``engine-query show``, ``similar``, ``playlist``, ``plot``) appends their
track ids to ``reads.log`` in the store directory (8-byte big-endian ids, one ``write`` with
``O_APPEND``; never through a link, never into a FIFO) through :meth:`Store.record_reads`.
The writer folds the log into its next commit as a :class:`Touch`, so those fingerprints
become the most recently used; until a writer opens the store, the log waits. It is bounded
(:data:`READS_LOG_MAX` bytes: past that, reads are not recorded) and best effort: a read is
lost when the store directory is not writable for the reader, when something other than a
regular file stands at ``reads.log``, or when the reader appends in the microseconds between
the writer renaming the log and reading it. Bulk reads (export, stats, duplicates, map) do not
touch: they would make every fingerprint recent and the LRU meaningless.

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

from ..errors import StoreError as StoreError  # engine.store.StoreError, as before the split
from .codec import FINGERPRINT_ENTRY_BYTES, PATH_KEY_MAX, SCHEMA_VERSION, is_storable_path
from .reads_log import READS_LOG_MAX
from .records import (
    ClearFailure,
    CommitResult,
    DeleteTrack,
    FailureRecord,
    FingerprintRecord,
    FingerprintTable,
    MovePath,
    Operation,
    PutFailure,
    PutFingerprint,
    PutTrack,
    StoreConfig,
    StoreStats,
    Touch,
    TrackRecord,
    is_current,
)
from .snapshot import Snapshot
from .store import Store

__all__ = [
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
    "Snapshot",
    "Store",
    "StoreConfig",
    "StoreStats",
    "Touch",
    "TrackRecord",
    "is_current",
    "is_storable_path",
]
