"""What one write transaction does: apply a batch's operations, then evict to the bounds.

:class:`_Batch` is the writer's view of one LMDB write transaction (made by
:meth:`Store.commit <engine.store.Store.commit>`, which retries it whole after growing a full
map). It applies each :data:`~engine.store.Operation` under the catalog rules of the package
docstring, keeping the indexes (``paths``, ``keys``, ``atime``, ``lru``) and the counters of
``meta`` in step; :meth:`_Batch.enforce` then evicts least recently used fingerprints until the
bounds hold, and :meth:`_Batch.save` writes the counters back.
"""

from __future__ import annotations

import lmdb

from ..errors import StoreError
from .codec import (
    _ID,
    _LRU_KEY,
    _META_EVICTIONS,
    _META_FP_BYTES,
    _META_GENERATION,
    _META_NEXT_ID,
    _META_TICK,
    _decode_failure,
    _decode_track,
    _encode_failure,
    _encode_fingerprint,
    _encode_path,
    _encode_track,
    _id_bytes,
    _path_key,
    _u64,
)
from .dbs import _Dbs
from .records import (
    ClearFailure,
    DeleteTrack,
    FailureRecord,
    FingerprintRecord,
    MovePath,
    Operation,
    PutFailure,
    PutFingerprint,
    PutTrack,
    Touch,
    TrackRecord,
)


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

    def drop_fingerprints_beside_failures(self) -> int:
        """Drop every fingerprint whose track also has a failure; returns how many.

        Stores written before the rule "a fingerprint or a failure, never both" may hold both
        for a track whose file changed and then failed (a success always cleared the failure,
        so the failure is the newer outcome). The writer calls this when it opens a store;
        the counters are saved only when something was dropped.
        """
        fingerprints = self.dbs.fingerprints
        both = [bytes(idb) for idb in self.txn.cursor(db=self.dbs.failures).iternext(
                    keys=True, values=False)
                if self.txn.get(idb, db=fingerprints) is not None]
        for idb in both:
            self.drop_fingerprint(idb)
        if both:
            self.changed = True
            self.save()
        return len(both)

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
        """Insert or replace a track. A fingerprint is of the content it was computed from: when
        the size, mtime or content key changes, the track's fingerprint is dropped (the track
        is recomputed when next asked for); a path-only change keeps it."""
        idb = _id_bytes(rec.track_id)
        value = _encode_track(rec)
        old = self.track(idb)
        if old is not None and (old.size, old.mtime_ns, old.content_key) != (
                rec.size, rec.mtime_ns, bytes(rec.content_key)):
            self.drop_fingerprint(idb)
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
        # a fingerprint or a failure, never both: the new fingerprint is the current outcome
        # (the failure names the track's own path, which stays the track's)
        self.txn.delete(idb, db=self.dbs.failures)

    def put_failure(self, rec: FailureRecord) -> None:
        """Insert or replace a failure; the track's fingerprint, if any, is dropped (the
        failure is the current outcome). An id without a :class:`TrackRecord` (a file that
        failed before it could be catalogued) owns the failure's path."""
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
            self.drop_fingerprint(idb)
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
