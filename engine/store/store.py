"""The :class:`Store`: one LMDB environment, opened per process, for the writer or a reader.

Opening (the writer lock, the environment, the databases), the guard that keeps a store in the
process that opened it, read transactions that follow the writer's map growth, :meth:`commit`
(a :class:`~engine.store.batch._Batch` in one write transaction, the map doubled and the batch
retried when it is full), and the reads: single lookups, iterators over one snapshot, the
:class:`~engine.store.FingerprintTable` and :meth:`stats`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import shutil
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Final, TypeVar

import lmdb
import numpy as np

from kernels.fingerprint import FINGERPRINT_VERSION

from ..errors import StoreError
from .batch import _Batch
from .codec import (
    _FP_DTYPE,
    _ID,
    _META_EVICTIONS,
    _META_FP_BYTES,
    _META_FP_VERSION,
    _META_GENERATION,
    _META_NEXT_ID,
    _META_SCHEMA,
    _META_STORE_ID,
    _TRACK_HEAD,
    _decode_failure,
    _decode_fingerprint,
    _decode_track,
    _u64,
)
from .dbs import _MAX_DBS, _Dbs, _inspect_existing, _open_dbs
from .fs import (
    _DATA_NAME,
    _LOCK_NAME,
    _check_identity,
    _errno_name,
    _from_lmdb,
    _from_oserror,
    _identity,
    _lmdb_errno,
    _os_failure,
    _refuse_links,
)
from .lock import _acquire_writer_lock, _release_lock
from .reads_log import _append_reads, _pending_reads, _take_reads
from .records import (
    _N_VALUES,
    CommitResult,
    FailureRecord,
    FingerprintRecord,
    FingerprintTable,
    Operation,
    StoreConfig,
    StoreStats,
    Touch,
    TrackRecord,
)
from .snapshot import Snapshot

# the package's one logger, named as before the package was split
log = logging.getLogger("engine.store")

_T = TypeVar("_T")

_MAX_READERS: Final = 256
#: The map is never grown past this (64-bit address space is plentiful; a disk is not).
_MAX_MAP_SIZE: Final = 1 << 40
_PAGE: Final = 4096
_TABLE_CHUNK: Final = 65536


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    chunk: list[_T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
        #: (st_dev, st_ino) of the directory and data.mdb at open (the writer's only).
        self._identity: tuple[int, int, int, int] | None = None

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
            When the store was written with another schema, is an LMDB environment of another
            program or not LMDB at all (refused before anything in it is written), another
            process holds it for writing, a reader finds no store, one of its files is a
            symbolic link, the OS refuses (a read-only mount, no permission: the message names
            the errno and the fix), or LMDB refuses to open it.

        Notes
        -----
        The writer also drops every fingerprint that has a failure beside it (a store written
        before the rule "a fingerprint or a failure, never both", package docstring).
        """
        path = os.fspath(config.path)
        map_size = max(_PAGE, math.ceil(config.map_size / _PAGE) * _PAGE)
        access = "read" if readonly else "write"
        lock_fd: int | None = None
        if readonly:
            _refuse_links(path, (_DATA_NAME, _LOCK_NAME))
            if not os.path.isfile(os.path.join(path, _DATA_NAME)):
                raise StoreError(
                    f"no store at {path} (no data.mdb): run engine-run on the library first or "
                    f"pass the --db it used"
                )
        else:
            try:
                os.makedirs(path, exist_ok=True)
            except OSError as exc:
                raise _from_oserror(path, "creating the store directory", exc) from exc
            _refuse_links(path, (_DATA_NAME, _LOCK_NAME))
            lock_fd = _acquire_writer_lock(path, lambda: _inspect_existing(path))
        try:
            _refuse_links(path, (_DATA_NAME, _LOCK_NAME))  # again, just before LMDB opens them
            env = lmdb.open(path, map_size=map_size, subdir=True, readonly=readonly, lock=True,
                            max_dbs=_MAX_DBS, max_readers=_MAX_READERS, create=not readonly)
        except (lmdb.Error, StoreError) as exc:
            if lock_fd is not None:
                _release_lock(lock_fd, os.getpid())
            if isinstance(exc, StoreError):
                raise
            if "already open in this process" in str(exc):
                raise StoreError(
                    f"the store at {path} is already open in this process: use that Store "
                    f"object (LMDB allows one open environment per store and process)"
                ) from exc
            code = _lmdb_errno(exc)
            if readonly and code in (errno.EACCES, errno.EPERM):
                raise StoreError(
                    f"the store at {path} cannot be read by this user (uid {os.geteuid()}) "
                    f"({_errno_name(code)}): LMDB readers write their slot in lock.mdb, which "
                    f"this user may not open for writing ({exc}); give this user write access "
                    f"to {os.path.join(path, _LOCK_NAME)} and read access to data.mdb (chmod / "
                    f"chown, or a group both users share), or read a copy of the store"
                ) from exc
            worded = _from_lmdb(path, "opening it with LMDB", exc, access=access)
            if worded is not None:
                raise worded from exc
            raise StoreError(
                f"LMDB cannot open the store at {path}: {exc}; check that it is an engine store "
                f"you may {access}, or pass another --db"
            ) from exc
        try:
            dbs = _open_dbs(env, path, readonly=readonly)
            identity = None if readonly else _identity(path)
        except BaseException as exc:
            env.close()
            if lock_fd is not None:
                _release_lock(lock_fd, os.getpid())
            if isinstance(exc, OSError):
                raise _from_oserror(path, "opening it", exc, access=access) from exc
            if isinstance(exc, lmdb.Error):
                worded = _from_lmdb(path, "opening its databases", exc, access=access)
                if worded is not None:
                    raise worded from exc
                raise StoreError(
                    f"LMDB cannot open the databases of the store at {path}: {exc}; it is not an "
                    f"engine store (or is damaged): pass another --db"
                ) from exc
            raise
        store = cls(env, dbs, config, readonly=readonly, lock_fd=lock_fd)
        if not readonly:
            store._identity = identity
            try:
                with store._begin_read() as txn:
                    store._next_id = _u64(txn.get(_META_NEXT_ID, db=dbs.meta), 1)
                store.clear_stale_readers()
                store._write(lambda work: work.drop_fingerprints_beside_failures(),
                             "drop fingerprints that have a failure beside them")
            except BaseException as exc:
                store.close()
                if isinstance(exc, lmdb.Error):
                    raise store._lmdb_failure("open it for writing", exc) from exc
                raise
        return store

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
            When an operation breaks a catalog rule (nothing of the batch is committed), the
            store was deleted or replaced since it was opened (checked before anything is
            written), the map cannot grow, or LMDB fails (the disk is full, ...).
        """
        env = self._writer_env("commit")
        self._check_identity()
        ops = tuple(batch)
        reads = _take_reads(self._path)
        if reads:
            ops = (Touch(reads), *ops)
        if not ops:
            return CommitResult((), int(env.info()["map_size"]))

        def apply(work: _Batch) -> list[int]:
            for op in ops:
                work.apply(op)
            evicted = work.enforce(self._config.max_entries, self._config.max_bytes)
            work.save()
            return evicted

        work, evicted = self._write(apply, "commit a batch",
                                    where=f"commit to the store at {self._path}")
        with self._id_lock:
            self._next_id = max(self._next_id, work.next_id)
        return CommitResult(tuple(evicted), int(env.info()["map_size"]))

    def _check_identity(self) -> None:
        """Raise :class:`StoreError` when the store was deleted or replaced since it was
        opened (:func:`engine.store.fs._check_identity`): a commit must not go to an unlinked
        ``data.mdb`` and be reported as done."""
        if self._identity is not None:
            _check_identity(self._path, self._identity)

    def _write(self, apply: Callable[[_Batch], _T], what: str, *,
               where: str | None = None) -> tuple[_Batch, _T]:
        """Run ``apply`` in one write transaction, growing the map and starting again while it
        is full; ``apply`` calls :meth:`_Batch.save` when it changed anything."""
        env = self._writer_env(what)
        where = where or f"{what} in the store at {self._path}"
        while True:
            try:
                with env.begin(write=True) as txn:
                    work = _Batch(txn, self._dbs, where)
                    result = apply(work)
                return work, result
            except lmdb.MapFullError:
                self._grow(env)
            except lmdb.Error as exc:
                raise self._lmdb_failure(what, exc) from exc

    def record_reads(self, track_ids: Iterable[int]) -> bool:
        """Note that fingerprints were used, so that the writer keeps them longest (LRU).

        Any process may call it, a reader included: the ids go to ``reads.log`` (package
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
        return _append_reads(self._path, track_ids)

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
        code = _lmdb_errno(exc)
        if code is not None and code != errno.ENOSPC:
            return _os_failure(self._path, what, code, str(exc))
        if code == errno.ENOSPC or isinstance(exc, lmdb.DiskError):
            return StoreError(
                f"cannot {what} in the store at {self._path}: the disk is full ({exc}; "
                f"{free} bytes free): free space or pass another --db"
            )
        return StoreError(
            f"cannot {what} in the store at {self._path}: LMDB failed ({exc}); the disk has "
            f"{free} bytes free; check the disk, or pass another --db"
        )

    # -- reads (writer and readers)

    @contextlib.contextmanager
    def snapshot(self) -> Generator[Snapshot, None, None]:
        """One read transaction for several reads that must agree (a catalog decision).

        Yields
        ------
        Snapshot
            Valid inside the ``with`` block only.
        """
        with self._begin_read() as txn:
            yield Snapshot(txn, self._dbs)

    def lookup(
        self, path: str
    ) -> tuple[TrackRecord | None, FingerprintRecord | None, FailureRecord | None]:
        """Everything the store knows about a path, from one snapshot (:meth:`Snapshot.lookup`)."""
        with self.snapshot() as snap:
            return snap.lookup(path)

    def find_by_content_key(self, key: bytes) -> TrackRecord | None:
        """The track last stored with this content key (:meth:`Snapshot.find_by_content_key`)."""
        with self.snapshot() as snap:
            return snap.find_by_content_key(key)

    def get_track(self, track_id: int) -> TrackRecord | None:
        """The track record of an id, or ``None``."""
        with self.snapshot() as snap:
            return snap.get_track(track_id)

    def get_fingerprint(self, track_id: int) -> FingerprintRecord | None:
        """The fingerprint of an id, or ``None`` (:meth:`Snapshot.get_fingerprint`)."""
        with self.snapshot() as snap:
            return snap.get_fingerprint(track_id)

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
        """The store's ``generation`` (package docstring): changes with every library change."""
        with self._begin_read() as txn:
            return _u64(txn.get(_META_GENERATION, db=self._dbs.meta))

    def identity(self) -> tuple[str, int]:
        """``(store_id as hex, generation)`` from one snapshot: what a cache of the library is
        keyed by (package docstring). ``store_id`` is "" in a store no writer of this version
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
        pending = _pending_reads(self._path)
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
