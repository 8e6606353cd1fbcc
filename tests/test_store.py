"""The LMDB store: records, catalog rules, map growth, eviction, pid guard, reader snapshots.

Real LMDB in tmp_path, real processes (fork), no mocks. Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from multiprocessing.connection import Connection
from pathlib import Path

import lmdb
import pytest

from engine.content_key import content_key
from engine.errors import StoreError
from engine.store import (
    FINGERPRINT_ENTRY_BYTES,
    SCHEMA_VERSION,
    ClearFailure,
    DeleteTrack,
    FailureRecord,
    FingerprintRecord,
    MovePath,
    PutFailure,
    PutFingerprint,
    PutTrack,
    Store,
    StoreConfig,
    Touch,
    TrackRecord,
    is_current,
)
from kernels import FINGERPRINT_NAMES, FINGERPRINT_VERSION
from kernels.errors import FingerprintError

FORK = mp.get_context("fork")
JOIN_S = 20.0


def track(tid: int, path: str | None = None, *, size: int = 1000) -> TrackRecord:
    key = hashlib.blake2b(f"content {tid}".encode(), digest_size=16).digest()
    return TrackRecord(tid, path or f"/music/artist/{tid:05d}.flac", size, 1_700_000_000 + tid,
                       key)


def fingerprint(tid: int, *, version: int = FINGERPRINT_VERSION) -> FingerprintRecord:
    values = tuple(tid + i / 7.0 for i in range(len(FINGERPRINT_NAMES)))
    return FingerprintRecord(tid, version, values, 180.5 + tid, 44100, 2, 0.25, 1.5)


def add_tracks(store: Store, n: int) -> list[int]:
    ids = [store.new_track_id() for _ in range(n)]
    store.commit([op for t in ids for op in (PutTrack(track(t)), PutFingerprint(fingerprint(t)))])
    return ids


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store"


# --------------------------------------------------------------------------------------------


def test_package_exports_its_public_names() -> None:
    # engine.store is a package of modules; its users import from the package alone
    import engine.store as st

    missing = [name for name in st.__all__ if not hasattr(st, name)]
    assert missing == []
    assert st.StoreError is StoreError   # ``st.StoreError`` as engine.query and engine.run use it


def test_content_key_small_and_large_files(tmp_path: Path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc" * 1000)
    expect = hashlib.blake2b((3000).to_bytes(8, "little") + b"abc" * 1000, digest_size=16)
    assert content_key(small, 3000) == expect.digest()

    data = bytearray(os.urandom(300 * 1024))
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    chunk = 64 * 1024
    expect = hashlib.blake2b(len(data).to_bytes(8, "little") + data[:chunk] + data[-chunk:],
                             digest_size=16)
    key = content_key(str(big), len(data))
    assert key == expect.digest() and len(key) == 16
    data[150 * 1024] ^= 0xFF                 # the middle is not read: same key
    big.write_bytes(data)
    assert content_key(big, len(data)) == key
    data[-1] ^= 0xFF                         # the tail is
    big.write_bytes(data)
    assert content_key(big, len(data)) != key
    with pytest.raises(StoreError, match="changed while being hashed"):
        content_key(small, 5000)


def test_round_trip_of_every_record(db: Path) -> None:
    with Store.open(StoreConfig(db)) as store:
        a, b, c = store.new_track_id(), store.new_track_id(), store.new_track_id()
        assert (a, b, c) == (1, 2, 3)
        ta, tb = track(a), track(b)
        fa = fingerprint(a)
        fail_b = FailureRecord(b, tb.path, "DecodeError", "cannot decode: bad header \udce9", 2,
                               tb.size, tb.mtime_ns)
        fail_c = FailureRecord(c, "/music/unreadable.mp3", "PermissionError", "denied", 1, 10, 5)
        store.commit([PutTrack(ta), PutFingerprint(fa), PutTrack(tb), PutFailure(fail_b),
                      PutFailure(fail_c)])

        assert store.lookup(ta.path) == (ta, fa, None)
        assert store.lookup(tb.path) == (tb, None, fail_b)
        assert store.lookup(fail_c.path) == (None, None, fail_c)
        assert store.lookup("/music/never-seen.flac") == (None, None, None)
        assert store.get_fingerprint(a) == fa and store.get_fingerprint(b) is None
        assert store.get_track(b) == tb
        assert store.find_by_content_key(ta.content_key) == ta
        assert store.find_by_content_key(b"\x00" * 16) is None
        assert list(store.iter_fingerprints()) == [(ta, fa)]
        assert list(store.iter_tracks()) == [ta, tb]
        assert list(store.iter_failures()) == [fail_b, fail_c]
        assert fa.values == fingerprint(a).values and isinstance(fa.values, tuple)
        assert is_current(fa) and not is_current(fingerprint(a, version=FINGERPRINT_VERSION + 1))

        stats = store.stats()
        assert (stats["tracks"], stats["fingerprints"], stats["failures"]) == (2, 1, 2)
        assert stats["schema_version"] == SCHEMA_VERSION
        assert stats["fingerprint_version"] == FINGERPRINT_VERSION
        assert stats["fingerprint_bytes"] == FINGERPRINT_ENTRY_BYTES
        assert stats["next_id"] == 4 and stats["path"] == str(db)
        assert 0 < stats["used_bytes"] <= stats["map_size"]

        store.commit([ClearFailure(b), ClearFailure(c)])
        assert store.lookup(tb.path) == (tb, None, None)
        assert store.lookup(fail_c.path) == (None, None, None)   # it had no track: path freed
        store.commit([DeleteTrack(a)])
        assert store.lookup(ta.path) == (None, None, None)
        assert store.find_by_content_key(ta.content_key) is None
        assert store.stats()["fingerprint_bytes"] == 0


def test_fingerprint_values_from_an_array_and_wrong_length() -> None:
    np = pytest.importorskip("numpy")
    rec = FingerprintRecord(1, 1, np.arange(25, dtype=np.float64), 1.0, 8000, 1, 0.0, 0.0)
    assert rec.values == tuple(float(i) for i in range(25))
    with pytest.raises(StoreError, match="has 24 values; a fingerprint has 25"):
        FingerprintRecord(1, 1, tuple(range(24)), 1.0, 8000, 1, 0.0, 0.0)
    assert issubclass(StoreError, FingerprintError)


def test_non_utf8_and_long_paths(db: Path) -> None:
    odd = os.fsdecode(b"/music/caf\xe9/\xff\xfe track.flac")     # not UTF-8: surrogates
    long = "/music/" + "very long folder name/" * 40 + "track.flac"
    assert len(long.encode()) > 480
    with Store.open(StoreConfig(db)) as store:
        t1, t2 = track(store.new_track_id(), odd), track(store.new_track_id(), long)
        store.commit([PutTrack(t1), PutFingerprint(fingerprint(t1.track_id)), PutTrack(t2)])
    with Store.open(StoreConfig(db), readonly=True) as reader:
        got, fp, _ = reader.lookup(odd)
        assert got == t1 and os.fsencode(got.path) == b"/music/caf\xe9/\xff\xfe track.flac"
        assert fp == fingerprint(t1.track_id)
        assert reader.lookup(long)[0] == t2
        assert [t.path for t in reader.iter_tracks()] == [odd, long]


def test_moved_file_keeps_its_fingerprint(db: Path) -> None:
    with Store.open(StoreConfig(db)) as store:
        a, b = add_tracks(store, 2)
        old = store.get_track(a)
        assert old is not None
        new_path = "/music/moved/" + os.path.basename(old.path)
        store.commit([MovePath(a, new_path)])
        assert store.lookup(old.path) == (None, None, None)
        moved, fp, _ = store.lookup(new_path)
        assert moved == TrackRecord(a, new_path, old.size, old.mtime_ns, old.content_key)
        assert fp == fingerprint(a)
        assert store.find_by_content_key(old.content_key) == moved

        # `mv a b`: moving onto the path of another track replaces (drops) that track
        tb = store.get_track(b)
        assert tb is not None
        result = store.commit([MovePath(a, tb.path)])
        assert result.evicted == ()
        assert store.lookup(tb.path)[0] == TrackRecord(a, tb.path, old.size, old.mtime_ns,
                                                       old.content_key)
        assert store.get_track(b) is None and store.get_fingerprint(b) is None
        assert store.lookup(new_path) == (None, None, None)
        assert store.stats()["tracks"] == 1 and store.stats()["fingerprints"] == 1

        with pytest.raises(StoreError, match="does not hold"):
            store.commit([MovePath(999, "/music/x.flac")])


def test_batch_is_all_or_nothing(db: Path) -> None:
    with Store.open(StoreConfig(db)) as store:
        tid = store.new_track_id()
        with pytest.raises(StoreError, match="no TrackRecord: put the track first"):
            store.commit([PutTrack(track(tid)), PutFingerprint(fingerprint(tid + 100))])
        assert store.stats()["tracks"] == 0 and store.lookup(track(tid).path)[0] is None
        t = track(tid)
        store.commit([PutTrack(t)])
        with pytest.raises(StoreError, match="MovePath the track first"):
            store.commit([PutFailure(FailureRecord(tid, "/elsewhere.flac", "X", "y", 1, 0, 0))])


def test_map_grows_geometrically_and_keeps_everything(db: Path) -> None:
    start = 64 * 1024
    config = StoreConfig(db, map_size=start)
    with Store.open(config) as store:
        sizes = {store.map_size}
        for _ in range(20):
            add_tracks(store, 100)
            sizes.add(store.map_size)
        final = store.map_size
    assert final >= 8 * start                        # several doublings
    assert all(s % start == 0 and (s // start) & (s // start - 1) == 0 for s in sizes)
    with Store.open(config, readonly=True) as reader:
        pairs = list(reader.iter_fingerprints())
        assert [t.track_id for t, _ in pairs] == list(range(1, 2001))
        assert all(t == track(t.track_id) and f == fingerprint(t.track_id) for t, f in pairs)


def test_eviction_keeps_max_entries_least_recently_touched_first(db: Path) -> None:
    with Store.open(StoreConfig(db, max_entries=5)) as store:
        ids = add_tracks(store, 5)                     # ticks in id order: 1 is the oldest
        assert store.commit([Touch((ids[0], ids[1]))]).evicted == ()   # now 3, 4, 5, 1, 2
        new = [store.new_track_id(), store.new_track_id()]
        result = store.commit([op for t in new
                               for op in (PutTrack(track(t)), PutFingerprint(fingerprint(t)))])
        assert result.evicted == (ids[2], ids[3])
        stats = store.stats()
        assert stats["fingerprints"] == 5 and stats["tracks"] == 7 and stats["evictions"] == 2
        for evicted in (ids[2], ids[3]):
            rec, fp, fail = store.lookup(track(evicted).path)
            assert rec == track(evicted) and fp is None and fail is None
        kept = sorted(t.track_id for t, _ in store.iter_fingerprints())
        assert kept == sorted([ids[0], ids[1], ids[4], *new])

        # a recomputed fingerprint comes back as the most recent; Touch of a missing one is a no-op
        result = store.commit([Touch((ids[2],)), PutFingerprint(fingerprint(ids[2]))])
        assert result.evicted == (ids[4],)
    with Store.open(StoreConfig(db), readonly=True) as reader:
        assert reader.stats()["evictions"] == 3


def test_max_bytes_bound(db: Path) -> None:
    limit = int(3.5 * FINGERPRINT_ENTRY_BYTES)
    with Store.open(StoreConfig(db, max_bytes=limit)) as store:
        ids = add_tracks(store, 6)
        stats = store.stats()
        assert stats["fingerprints"] == 3 and stats["fingerprint_bytes"] <= limit
        assert stats["evictions"] == 3
        assert [t.track_id for t, _ in store.iter_fingerprints()] == ids[3:]


def test_ids_survive_reopen_and_uncommitted_ones_are_not_persisted(db: Path) -> None:
    config = StoreConfig(db)
    with Store.open(config) as store:
        ids = add_tracks(store, 3)
        lost = [store.new_track_id(), store.new_track_id()]   # allocated, never committed
        assert lost == [4, 5]
    with Store.open(config) as store:                          # as after a crash
        assert store.new_track_id() == 4                        # no committed id is reused
        assert [t.track_id for t, _ in store.iter_fingerprints()] == ids
        assert store.stats()["fingerprints"] == 3


def test_schema_mismatch_is_refused(db: Path) -> None:
    Store.open(StoreConfig(db)).close()
    env = lmdb.open(str(db), max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", (3).to_bytes(8, "big"), db=meta)
    env.close()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=r"written with schema 3; this engine reads schema 1"):
            Store.open(StoreConfig(db), readonly=readonly)


def test_single_writer_readonly_and_missing_store(db: Path, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store.open(StoreConfig(tmp_path / "absent"), readonly=True)
    with Store.open(StoreConfig(db)) as store:
        with pytest.raises(StoreError, match=f"already open for writing by pid {os.getpid()}"):
            Store.open(StoreConfig(db))
        add_tracks(store, 1)
        with pytest.raises(StoreError, match="already open in this process: use that Store"):
            Store.open(StoreConfig(db), readonly=True)
    with Store.open(StoreConfig(db), readonly=True) as reader:
        with pytest.raises(StoreError, match="readonly=True"):
            reader.commit([ClearFailure(1)])
        with pytest.raises(StoreError, match="readonly=True"):
            reader.new_track_id()
        assert reader.stats()["tracks"] == 1
    store.close()                                            # a second close is a no-op
    with pytest.raises(StoreError, match="is closed"):
        store.stats()
    Store.open(StoreConfig(db)).close()                      # the lock was released


def _use_inherited(store: Store, conn: Connection, release: mp.synchronize.Event) -> None:
    try:
        store.stats()
        conn.send("no error")
        code = 1
    except StoreError as exc:
        conn.send(str(exc))
        code = 0
    release.wait(JOIN_S)          # stay alive while the parent closes and reopens the store
    os._exit(code)


def test_store_used_after_fork_raises(db: Path) -> None:
    store = Store.open(StoreConfig(db))
    add_tracks(store, 2)
    parent_end, child_end = FORK.Pipe(duplex=False)
    release = FORK.Event()
    child = FORK.Process(target=_use_inherited, args=(store, child_end, release))
    child.start()
    try:
        assert parent_end.poll(JOIN_S)
        message = parent_end.recv()
        assert f"opened in pid {os.getpid()} used in pid {child.pid}" in message
        assert "open it after fork" in message
        assert store.stats()["tracks"] == 2                  # the parent's store is intact
        store.close()
        # the live child does not keep the writer lock it inherited
        with Store.open(StoreConfig(db)) as again:
            assert again.stats()["tracks"] == 2
    finally:
        release.set()
        child.join(timeout=JOIN_S)
        if child.is_alive():
            child.kill()
            child.join(timeout=5)
    assert child.exitcode == 0


BATCH = 10
BATCHES = 40


def _writer(path: str, start: mp.synchronize.Event, conn: Connection) -> None:
    try:
        with Store.open(StoreConfig(path, map_size=64 * 1024)) as store:   # grows while read
            start.wait(JOIN_S)
            for _ in range(BATCHES):
                add_tracks(store, BATCH)
                time.sleep(0.003)
            conn.send(("done", store.map_size))
    except BaseException as exc:
        conn.send(("error", repr(exc)))
        os._exit(1)
    os._exit(0)


def test_reader_sees_only_complete_batches_while_a_writer_commits(db: Path) -> None:
    Store.open(StoreConfig(db, map_size=64 * 1024)).close()
    start = FORK.Event()
    parent_end, child_end = FORK.Pipe(duplex=False)
    writer = FORK.Process(target=_writer, args=(str(db), start, child_end))
    writer.start()
    seen: set[int] = set()
    try:
        with Store.open(StoreConfig(db, map_size=64 * 1024), readonly=True) as reader:
            start.set()
            deadline = time.monotonic() + JOIN_S
            while time.monotonic() < deadline:
                alive = writer.is_alive()
                pairs = list(reader.iter_fingerprints())
                n = len(pairs)
                assert n % BATCH == 0, f"snapshot of {n} fingerprints: a partial batch"
                assert [t.track_id for t, _ in pairs] == list(range(1, n + 1))
                assert all(f == fingerprint(t.track_id) for t, f in pairs)
                stats = reader.stats()
                assert stats["tracks"] == stats["fingerprints"]
                assert stats["tracks"] % BATCH == 0
                seen.add(n)
                if not alive:
                    break
            final = reader.stats()
    finally:
        writer.join(timeout=JOIN_S)
        if writer.is_alive():
            writer.kill()
            writer.join(timeout=5)
    assert parent_end.poll(1.0)
    status, info = parent_end.recv()
    assert status == "done", info
    assert writer.exitcode == 0
    assert final["tracks"] == final["fingerprints"] == BATCH * BATCHES
    assert int(info) > 64 * 1024                               # the map grew under the reader
    assert len(seen) >= 3, f"the reader saw only {sorted(seen)}: no overlap with the writer"
