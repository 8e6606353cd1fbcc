"""Hostile stores: nothing stale, nothing clobbered, no traceback.

A file overwritten after it was fingerprinted, a store deleted under a running engine-run, a
store on a read-only mount or in a directory the user cannot write, a foreign LMDB environment
or a store of a newer schema given as --db, symbolic links and FIFOs planted in the store
directory, and failures of files that never had a track. Real stores in tmp_path, real
engine-run / engine-query processes, real audio files; every wait is bounded.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
import pytest
import soundfile as sf

from engine.errors import StoreError
from engine.store import (
    FINGERPRINT_ENTRY_BYTES,
    SCHEMA_VERSION,
    ClearFailure,
    FailureRecord,
    FingerprintRecord,
    MovePath,
    PutFailure,
    PutFingerprint,
    PutTrack,
    Store,
    StoreConfig,
    TrackRecord,
    is_storable_path,
)
from engine.store.codec import _ID, _encode_failure
from kernels import FINGERPRINT_NAMES, FINGERPRINT_VERSION

BIN = Path(sys.executable).parent
FORK = mp.get_context("fork")
RUN_TIMEOUT_S = 240.0
QUERY_TIMEOUT_S = 120.0
VICTIM_BYTES = b"precious bytes the engine must never touch\n" * 50


# --------------------------------------------------------------------------------------------
# tiny helpers (this file's own)


@dataclass(frozen=True)
class Ran:
    rc: int
    out: str
    err: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {Path(r["path"]).name: r for r in self.records}


def _wait(proc: subprocess.Popen[str], timeout: float, what: str) -> Ran:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        pytest.fail(f"{what} did not finish within {timeout:g} s (hung)")
    return Ran(proc.returncode, out or "", err or "")


def engine_run(*args: str | Path, timeout: float = RUN_TIMEOUT_S) -> Ran:
    cmd = [str(BIN / "engine-run"), *map(str, args)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    return _wait(proc, timeout, " ".join(cmd))


def engine_query(db: Path, *args: str | Path, timeout: float = QUERY_TIMEOUT_S) -> Ran:
    cmd = [str(BIN / "engine-query"), "--db", str(db), *map(str, args)]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    return _wait(proc, timeout, " ".join(cmd))


def write_tone(path: Path, freq: float, seconds: float = 1.0, sr: int = 22050) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3.1 * freq * t)
    sf.write(path, x.astype(np.float32), sr)
    return path


def clean(err: str) -> None:
    assert "Traceback" not in err, err


def files_of(folder: Path) -> dict[str, tuple[str, bytes, int]]:
    """Every entry of a folder: kind, bytes (or link target) and mtime, never following a
    link."""
    got = {}
    for entry in sorted(folder.iterdir()):
        st_ = entry.lstat()
        if stat.S_ISLNK(st_.st_mode):
            got[entry.name] = ("link", os.fsencode(os.readlink(entry)), st_.st_mtime_ns)
        elif stat.S_ISREG(st_.st_mode):
            got[entry.name] = ("file", entry.read_bytes(), st_.st_mtime_ns)
        else:
            got[entry.name] = ("other", b"", st_.st_mtime_ns)
    return got


@dataclass(frozen=True)
class Raw:
    """Entry counts and counters read straight from LMDB (the store must be closed)."""

    fingerprints: int
    failures: int
    atime: int
    lru: int
    fingerprint_bytes: int
    evictions: int
    generation: int


def raw_counts(db: Path) -> Raw:
    env = lmdb.open(str(db), readonly=True, lock=False, max_dbs=16, map_size=0)
    try:
        names = ("meta", "fingerprints", "failures", "atime", "lru")
        handles = {n: env.open_db(n.encode(), create=False) for n in names}
        with env.begin() as txn:
            def u64(name: bytes) -> int:
                raw = txn.get(name, db=handles["meta"])
                return 0 if raw is None else int.from_bytes(raw, "big")

            return Raw(*(int(txn.stat(handles[n])["entries"]) for n in names[1:]),
                       u64(b"fingerprint_bytes"), u64(b"evictions"), u64(b"generation"))
    finally:
        env.close()


def exact_accounting(db: Path, fingerprints: int) -> Raw:
    raw = raw_counts(db)
    assert raw.fingerprints == fingerprints
    assert raw.fingerprint_bytes == fingerprints * FINGERPRINT_ENTRY_BYTES
    assert raw.atime == raw.lru == fingerprints
    return raw


def a_track(tid: int, path: str | None = None) -> TrackRecord:
    key = tid.to_bytes(2, "big") * 8
    return TrackRecord(tid, path or f"/music/{tid:04d}.flac", 4000 + tid, 1_700_000_000 + tid,
                       key)


def a_fingerprint(tid: int, base: float = 0.0) -> FingerprintRecord:
    values = tuple(base + tid + i / 8 for i in range(len(FINGERPRINT_NAMES)))
    return FingerprintRecord(tid, FINGERPRINT_VERSION, values, 60.0, 22050, 1, 0.1, 0.2)


def put_with_fingerprints(store: Store, tracks: list[TrackRecord]) -> None:
    store.commit([op for t in tracks
                  for op in (PutTrack(t), PutFingerprint(a_fingerprint(t.track_id)))])


def a_failure(track: TrackRecord, kind: str = "decode") -> FailureRecord:
    return FailureRecord(track.track_id, track.path, kind, f"{track.path}: {kind}", 1,
                         track.size, track.mtime_ns)


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim.txt"
    v.write_bytes(VICTIM_BYTES)
    return v


@pytest.fixture
def one_track_store(tmp_path: Path) -> tuple[Path, Path]:
    lib = tmp_path / "lib"
    a = write_tone(lib / "a.wav", 440.0)
    db = tmp_path / "db"
    run = engine_run(lib, "--db", db, "--cores", "1", "-q")
    assert run.rc == 0, run.err
    return db, a


# --------------------------------------------------------------------------------------------
# 1. a fingerprint is never served for content it was not computed from


@pytest.mark.parametrize("damage", ["random_bytes", "zero_bytes"])
def test_overwritten_file_never_serves_its_old_fingerprint(tmp_path: Path, damage: str) -> None:
    lib = tmp_path / "lib"
    a = write_tone(lib / "a.wav", 440.0)
    write_tone(lib / "b.wav", 660.0)
    db = tmp_path / "db"
    first = engine_run(lib, "--db", db, "--cores", "1", "--jsonl")
    assert first.rc == 0, first.err
    old = first.by_name()["a.wav"]["fingerprint"]

    a.write_bytes(np.random.default_rng(7).bytes(5000) if damage == "random_bytes" else b"")
    second = engine_run(lib, "--db", db, "--cores", "1", "--jsonl")
    assert second.rc == 1, second.err
    assert second.by_name()["a.wav"]["status"] == "failed"
    assert second.by_name()["a.wav"]["error"]["kind"] == "decode"

    third = engine_run(lib, "--db", db, "--cores", "1", "--jsonl")
    clean(third.err)
    assert third.rc == 1, third.err
    rec = third.by_name()["a.wav"]
    assert rec["status"] == "failed" and not rec["fingerprint"], rec
    assert third.by_name()["b.wav"]["status"] == "cached"

    export = engine_query(db, "export", "--format", "jsonl")
    assert export.rc == 0, export.err
    assert [Path(r["path"]).name for r in export.records] == ["b.wav"]
    failures = engine_query(db, "failures", "--jsonl")
    assert failures.rc == 0, failures.err
    assert [Path(r["path"]).name for r in failures.records] == ["a.wav"]
    show = engine_query(db, "show", a)
    assert show.rc == 2, show.out
    assert f"{old['tempo_bpm']:>12.6g}".strip() not in show.out and "no fingerprint" in show.err
    stats = json.loads(engine_query(db, "stats").out)
    assert (stats["fingerprints"], stats["failures"]) == (1, 1)
    assert stats["fingerprint_bytes"] == FINGERPRINT_ENTRY_BYTES
    exact_accounting(db, 1)

    write_tone(a, 220.0)  # fixed: computed again, and the failure goes
    fourth = engine_run(lib, "--db", db, "--cores", "1", "--jsonl")
    assert fourth.rc == 0, fourth.err
    assert fourth.by_name()["a.wav"]["status"] == "ok"
    assert fourth.by_name()["a.wav"]["fingerprint"] != old
    assert engine_query(db, "failures", "--jsonl").records == []
    exact_accounting(db, 2)


def test_put_track_drops_the_fingerprint_of_changed_content(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with Store.open(StoreConfig(db)) as s:
        ids = [s.new_track_id() for _ in range(6)]
        tracks = {t: a_track(t) for t in ids}
        put_with_fingerprints(s, list(tracks.values()))
        same, moved, size, mtime, key, batch = ids
        s.commit([
            PutTrack(tracks[same]),                                              # unchanged
            PutTrack(replace(tracks[moved], path="/music/moved/x.flac")),       # path only
            PutTrack(replace(tracks[size], size=tracks[size].size + 1)),
            PutTrack(replace(tracks[mtime], mtime_ns=tracks[mtime].mtime_ns + 1)),
            PutTrack(replace(tracks[key], content_key=b"\x01" * 16)),
            # changed and recomputed in one batch: the new fingerprint stays
            PutTrack(replace(tracks[batch], size=1)),
            PutFingerprint(a_fingerprint(batch, base=100.0)),
        ])
        for t in (same, moved):
            assert s.get_fingerprint(t) == a_fingerprint(t)
        for t in (size, mtime, key):
            assert s.get_fingerprint(t) is None, t
            assert s.get_track(t) is not None          # the track stays: recomputed when asked
        assert s.get_fingerprint(batch) == a_fingerprint(batch, base=100.0)
        # a fingerprint put BEFORE the track changes in a batch is of the old content
        s.commit([PutFingerprint(a_fingerprint(same, base=5.0)),
                  PutTrack(replace(tracks[same], mtime_ns=1))])
        assert s.get_fingerprint(same) is None
        stats = s.stats()
        assert stats["evictions"] == 0 and stats["fingerprints"] == 2
    exact_accounting(db, 2)


def test_failure_and_fingerprint_exclude_each_other(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with Store.open(StoreConfig(db)) as s:
        t1, t2, t3 = (a_track(s.new_track_id()) for _ in range(3))
        put_with_fingerprints(s, [t1, t2, t3])
        s.commit([PutFailure(a_failure(t1))])
        assert s.lookup(t1.path) == (t1, None, a_failure(t1))
        s.commit([PutFingerprint(a_fingerprint(t1.track_id, base=1.0))])
        assert s.lookup(t1.path) == (t1, a_fingerprint(t1.track_id, base=1.0), None)
        assert list(s.iter_failures()) == []
        # the supervisor's own sequence (PutFingerprint then ClearFailure) still works
        s.commit([PutFailure(a_failure(t2))])
        s.commit([PutFingerprint(a_fingerprint(t2.track_id)), ClearFailure(t2.track_id)])
        assert s.lookup(t2.path) == (t2, a_fingerprint(t2.track_id), None)
        # ClearFailure of a track's failure keeps the track; of a failure-only id frees the path
        s.commit([PutFailure(a_failure(t3)), ClearFailure(t3.track_id)])
        assert s.lookup(t3.path) == (t3, None, None)
        lone = FailureRecord(s.new_track_id(), "/music/lone.flac", "decode", "x", 1, 5, 6)
        s.commit([PutFailure(lone)])
        assert s.lookup(lone.path) == (None, None, lone)
        s.commit([ClearFailure(lone.track_id)])
        assert s.lookup(lone.path) == (None, None, None)
        assert s.stats()["evictions"] == 0
    exact_accounting(db, 2)


def test_dropped_fingerprints_free_their_room_in_a_bounded_store(tmp_path: Path) -> None:
    db = tmp_path / "db"
    with Store.open(StoreConfig(db, max_entries=3)) as s:
        ts = [a_track(s.new_track_id()) for _ in range(3)]
        put_with_fingerprints(s, ts)
        dropped = s.commit([PutTrack(replace(ts[0], size=1)), PutFailure(a_failure(ts[1]))])
        assert dropped.evicted == ()
        t4, t5 = a_track(s.new_track_id()), a_track(s.new_track_id())
        # two slots are free: two new fingerprints evict nothing ...
        r = s.commit([PutTrack(t4), PutFingerprint(a_fingerprint(t4.track_id)),
                      PutTrack(t5), PutFingerprint(a_fingerprint(t5.track_id))])
        assert r.evicted == ()
        # ... a third evicts the least recently used one, counted once
        t6 = a_track(s.new_track_id())
        r = s.commit([PutTrack(t6), PutFingerprint(a_fingerprint(t6.track_id))])
        assert r.evicted == (ts[2].track_id,)
    raw = exact_accounting(db, 3)
    assert raw.evictions == 1 and raw.failures == 1


def test_writer_open_repairs_a_store_that_holds_both(tmp_path: Path) -> None:
    """A store written before the rule may hold a fingerprint beside a newer failure (the
    failure is always the newer: a success cleared the failure); the writer drops such
    fingerprints when it opens the store."""
    db = tmp_path / "db"
    with Store.open(StoreConfig(db)) as s:
        t1, t2 = a_track(s.new_track_id()), a_track(s.new_track_id())
        put_with_fingerprints(s, [t1, t2])
    env = lmdb.open(str(db), max_dbs=16)
    failures = env.open_db(b"failures")
    with env.begin(write=True) as txn:  # what the old code left: both records for t1
        txn.put(_ID.pack(t1.track_id), _encode_failure(a_failure(t1)), db=failures)
    env.close()
    before = raw_counts(db)
    assert (before.fingerprints, before.failures) == (2, 1)
    with Store.open(StoreConfig(db), readonly=True) as reader:  # readers change nothing
        assert reader.lookup(t1.path)[1] is not None
    with Store.open(StoreConfig(db)) as s:
        assert s.lookup(t1.path) == (t1, None, a_failure(t1))
        assert s.lookup(t2.path) == (t2, a_fingerprint(t2.track_id), None)
    after = exact_accounting(db, 1)
    assert after.evictions == 0 and after.generation == before.generation + 1


# --------------------------------------------------------------------------------------------
# 2. the store deleted or replaced under its writer


def test_store_deleted_during_a_run_is_exit_3(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    for i in range(40):
        write_tone(lib / f"t{i:02d}.wav", 110.0 * (1 + i % 9) + i, seconds=6.0)
    db = tmp_path / "db"
    cmd = [str(BIN / "engine-run"), str(lib), "--db", str(db), "--cores", "1", "-q"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (db / "data.mdb").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the store never appeared (exit {proc.poll()}): {proc.communicate()}")
        time.sleep(0.002)
    time.sleep(0.1)  # past Store.open: the tracks are being fingerprinted
    for _ in range(200):  # LMDB may be adding its files while rmtree walks: try again
        try:
            shutil.rmtree(db)
            break
        except FileNotFoundError:
            break
        except OSError:
            time.sleep(0.01)
    assert not db.exists()
    ran = _wait(proc, RUN_TIMEOUT_S, " ".join(cmd))
    clean(ran.err)
    assert ran.rc == 3, ran.err
    assert f"the store at {db} was deleted or replaced while the run was writing it" in ran.err
    assert "40 ok" not in ran.err


@pytest.mark.parametrize("how", ["deleted", "replaced", "data_file_replaced"])
def test_commit_to_a_deleted_or_replaced_store_is_refused(tmp_path: Path, how: str) -> None:
    db = tmp_path / "db"
    with Store.open(StoreConfig(db)) as s:
        t1, t2 = a_track(s.new_track_id()), a_track(s.new_track_id())
        s.commit([PutTrack(t1)])
        if how == "deleted":
            shutil.rmtree(db)
        elif how == "replaced":
            db.rename(tmp_path / "elsewhere")
            db.mkdir()
        else:
            shutil.copyfile(db / "data.mdb", db / "copy.mdb")
            (db / "copy.mdb").replace(db / "data.mdb")
        with pytest.raises(StoreError, match="was deleted or replaced while the run was "
                                             "writing it") as info:
            s.commit([PutTrack(t2)])
        assert str(db) in str(info.value) and "--db" in str(info.value)


# --------------------------------------------------------------------------------------------
# 3. read-only stores


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a read-only file system for this test")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                          capture_output=True, text=True, timeout=30, check=False)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs at {mnt} (needs root with CAP_SYS_ADMIN): "
                    f"{made.stderr.strip()}")

    def remount_ro() -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True, timeout=30)

    try:
        yield mnt, remount_ro
    finally:
        done = subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30,
                              check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30,
                           check=False)


def test_store_on_a_read_only_mount(tmp_path: Path,
                                    tmpfs: tuple[Path, Callable[[], None]]) -> None:
    mnt, remount_ro = tmpfs
    lib = tmp_path / "lib"
    a = write_tone(lib / "a.wav", 440.0)
    write_tone(lib / "b.wav", 550.0)
    db = mnt / "db"
    assert engine_run(lib, "--db", db, "--cores", "1", "-q").rc == 0
    remount_ro()

    ran = engine_run(lib, "--db", db, "--cores", "1", "-q")
    clean(ran.err)
    assert ran.rc == 3, ran.err
    assert f"the store at {db} is read-only (EROFS)" in ran.err
    assert "remount it read-write" in ran.err and "--db" in ran.err

    stats = engine_query(db, "stats")
    assert stats.rc == 0, stats.err
    assert json.loads(stats.out)["fingerprints"] == 2
    show = engine_query(db, "show", a)
    assert show.rc == 0, show.err
    with pytest.raises(StoreError, match=r"read-only \(EROFS\)"):
        Store.open(StoreConfig(db))
    with pytest.raises(StoreError, match=r"read-only \(EROFS\)"):  # a new store there, too
        Store.open(StoreConfig(mnt / "new"))


def _open_as_nobody(path: str, readonly: bool, conn: Connection) -> None:
    try:
        nobody = pwd.getpwnam("nobody")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
        Store.open(StoreConfig(path), readonly=readonly).close()
        conn.send("opened")
    except StoreError as exc:
        conn.send(f"StoreError: {exc}")
    except BaseException as exc:
        conn.send(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def test_store_in_a_directory_the_user_cannot_write(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("runs as root and opens the store as user nobody (setuid in a fork)")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody to open the store as")
    base = Path(tempfile.mkdtemp(prefix="engine-555-"))  # /tmp: nobody may reach it
    try:
        os.chmod(base, 0o755)
        db = base / "db"
        with Store.open(StoreConfig(db)) as s:
            t = a_track(s.new_track_id())
            s.commit([PutTrack(t), PutFingerprint(a_fingerprint(t.track_id))])
        os.chmod(db, 0o555)
        got = {}
        for readonly in (False, True):
            here, there = FORK.Pipe(duplex=False)
            child = FORK.Process(target=_open_as_nobody, args=(str(db), readonly, there))
            child.start()
            there.close()
            assert here.poll(60), "the child did not answer within 60 s"
            got[readonly] = here.recv()
            child.join(30)
            assert child.exitcode == 0
        assert got[False].startswith(f"StoreError: the store at {db} is not writable by this "
                                     f"user"), got
        assert "EACCES" in got[False] and "--db" in got[False]
        # a reader needs no write access to the directory, but LMDB's readers write their slot
        # in lock.mdb: the message says so
        assert got[True].startswith(f"StoreError: the store at {db} cannot be read by this "
                                    f"user"), got
        assert "EACCES" in got[True] and "lock.mdb" in got[True]
    finally:
        for root, dirs, _files in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# 4. what is not this engine's store is refused and left alone


def _foreign_env(folder: Path, *, named: bool) -> None:
    env = lmdb.open(str(folder), max_dbs=4, map_size=1 << 22)
    if named:
        users, orders = env.open_db(b"users"), env.open_db(b"orders")
        with env.begin(write=True) as txn:
            txn.put(b"alice", b"1", db=users)
            txn.put(b"0001", b"alice: 3 apples", db=orders)
    else:
        with env.begin(write=True) as txn:
            txn.put(b"some key", b"some value")
    env.close()


@pytest.mark.parametrize("named", [True, False], ids=["named_dbs", "main_db_only"])
def test_foreign_lmdb_environment_is_refused_untouched(tmp_path: Path, named: bool) -> None:
    lib = tmp_path / "lib"
    write_tone(lib / "a.wav", 440.0)
    foreign = tmp_path / "foreign"
    _foreign_env(foreign, named=named)
    before = files_of(foreign)
    ran = engine_run(lib, "--db", foreign, "--cores", "1", "-q")
    clean(ran.err)
    assert ran.rc == 3, ran.err
    assert f"the store at {foreign} is not an engine store" in ran.err
    assert ("users" in ran.err) if named else ("some key" in ran.err)
    assert "pass another --db" in ran.err
    assert files_of(foreign) == before
    with pytest.raises(StoreError, match="not an engine store"):
        Store.open(StoreConfig(foreign))
    assert files_of(foreign) == before


def test_newer_schema_is_refused_untouched(tmp_path: Path,
                                          one_track_store: tuple[Path, Path]) -> None:
    db, a = one_track_store
    env = lmdb.open(str(db), max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", (SCHEMA_VERSION + 1).to_bytes(8, "big"), db=meta)
    env.close()
    before = files_of(db)
    ran = engine_run(a.parent, "--db", db, "--cores", "1", "-q")
    clean(ran.err)
    assert ran.rc == 3, ran.err
    assert (f"was written with schema {SCHEMA_VERSION + 1}; this engine reads schema "
            f"{SCHEMA_VERSION}") in ran.err
    assert "upgrade the engine" in ran.err
    assert files_of(db) == before
    query = engine_query(db, "stats")
    assert query.rc == 3 and "upgrade the engine" in query.err


def test_older_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "db"
    Store.open(StoreConfig(db)).close()
    env = lmdb.open(str(db), max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", (SCHEMA_VERSION - 1).to_bytes(8, "big"), db=meta)
    env.close()
    before = files_of(db)
    with pytest.raises(StoreError, match=f"written with schema {SCHEMA_VERSION - 1}; this "
                                         f"engine reads schema {SCHEMA_VERSION}: the store is "
                                         f"older than this engine") as info:
        Store.open(StoreConfig(db))
    assert "new --db" in str(info.value)
    assert files_of(db) == before


def test_empty_missing_and_unfinished_stores_are_created(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    unfinished = tmp_path / "unfinished"   # LMDB made its files, the engine never wrote
    lmdb.open(str(unfinished), max_dbs=16).close()
    zero = tmp_path / "zero"               # data.mdb created, not one byte written
    zero.mkdir()
    (zero / "data.mdb").write_bytes(b"")
    for db in (empty, tmp_path / "missing" / "deep" / "db", unfinished, zero):
        with Store.open(StoreConfig(db)) as s:
            t = a_track(s.new_track_id())
            s.commit([PutTrack(t), PutFingerprint(a_fingerprint(t.track_id))])
        with Store.open(StoreConfig(db), readonly=True) as r:
            assert r.stats()["schema_version"] == SCHEMA_VERSION
            assert r.stats()["fingerprints"] == 1


def test_a_data_file_that_is_not_lmdb_is_refused_untouched(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    (db / "data.mdb").write_bytes(b"not an LMDB file at all " * 400)
    before = files_of(db)
    with pytest.raises(StoreError, match="not an LMDB") as info:
        Store.open(StoreConfig(db))
    assert "pass another --db" in str(info.value)
    assert files_of(db) == before


# --------------------------------------------------------------------------------------------
# 5. nothing planted in the store directory is followed


def test_symlinked_writer_lock_is_refused(tmp_path: Path, victim: Path) -> None:
    lib = tmp_path / "lib"
    write_tone(lib / "a.wav", 440.0)
    for existing in (False, True):
        db = tmp_path / f"db{int(existing)}"
        if existing:
            assert engine_run(lib, "--db", db, "--cores", "1", "-q").rc == 0
            (db / "writer.lock").unlink()
        else:
            db.mkdir()
        (db / "writer.lock").symlink_to(victim)
        ran = engine_run(lib, "--db", db, "--cores", "1", "-q")
        clean(ran.err)
        assert ran.rc == 3, ran.err
        assert f"{db / 'writer.lock'} is a symbolic link" in ran.err
        assert victim.read_bytes() == VICTIM_BYTES
        assert (db / "writer.lock").is_symlink()


@pytest.mark.parametrize("name", ["data.mdb", "lock.mdb"])
def test_symlinked_lmdb_files_are_refused(tmp_path: Path, victim: Path, name: str) -> None:
    lib = tmp_path / "lib"
    write_tone(lib / "a.wav", 440.0)
    new = tmp_path / "new"
    new.mkdir()
    (new / name).symlink_to(victim)
    ran = engine_run(lib, "--db", new, "--cores", "1", "-q")
    clean(ran.err)
    assert ran.rc == 3, ran.err
    assert f"{new / name} is a symbolic link" in ran.err
    assert victim.read_bytes() == VICTIM_BYTES
    # a dangling link: LMDB would create its target
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / name).symlink_to(tmp_path / "nowhere")
    ran = engine_run(lib, "--db", dangling, "--cores", "1", "-q")
    assert ran.rc == 3, ran.err
    assert not (tmp_path / "nowhere").exists()

    # an existing store whose file was swapped for a link: the reader refuses it too
    db = tmp_path / "db"
    assert engine_run(lib, "--db", db, "--cores", "1", "-q").rc == 0
    (db / name).unlink()
    (db / name).symlink_to(victim)
    for ran in (engine_query(db, "stats"), engine_run(lib, "--db", db, "--cores", "1", "-q")):
        clean(ran.err)
        assert ran.rc == 3, ran.err
        assert f"{db / name} is a symbolic link" in ran.err
        assert victim.read_bytes() == VICTIM_BYTES


def test_symlinked_reads_log_is_never_written_through(
        tmp_path: Path, victim: Path, one_track_store: tuple[Path, Path]) -> None:
    db, a = one_track_store
    (db / "reads.log").symlink_to(victim)
    (db / "reads.log.4242").symlink_to(victim)   # as if a writer died holding a taken log
    show = engine_query(db, "show", a)
    assert show.rc == 0, show.err
    assert victim.read_bytes() == VICTIM_BYTES
    assert json.loads(engine_query(db, "stats").out)["pending_reads"] == 0
    ran = engine_run(a.parent, "--db", db, "--cores", "1", "-q")
    clean(ran.err)
    assert ran.rc == 0, ran.err
    assert victim.read_bytes() == VICTIM_BYTES
    assert not (db / "reads.log.4242").exists() and not (db / "reads.log.4242").is_symlink()
    # and the log works again afterwards
    assert engine_query(db, "show", a).rc == 0
    assert json.loads(engine_query(db, "stats").out)["pending_reads"] == 1


def test_fifo_as_reads_log_blocks_nobody(tmp_path: Path,
                                         one_track_store: tuple[Path, Path]) -> None:
    db, a = one_track_store
    os.mkfifo(db / "reads.log")
    show = engine_query(db, "show", a, timeout=60)
    assert show.rc == 0, show.err
    ran = engine_run(a.parent, "--db", db, "--cores", "1", "-q", timeout=60)
    clean(ran.err)
    assert ran.rc == 0, ran.err


# --------------------------------------------------------------------------------------------
# 6. failures of files that never had a track (the scan's problems)


def test_scan_problem_is_a_failure_without_a_track(tmp_path: Path) -> None:
    db = tmp_path / "db"
    gone = "/music/gone/track .flac "      # missing, with a trailing space
    with Store.open(StoreConfig(db)) as s:
        # the supervisor's operations for a scan problem on a path the store does not know
        assert s.lookup(gone) == (None, None, None)
        tid = s.new_track_id()
        first = FailureRecord(tid, gone, "missing", f"{gone!r} does not exist", 1, 0, 0)
        s.commit([PutFailure(first)])
        assert s.lookup(gone) == (None, None, first)
        assert list(s.iter_failures()) == [first]
        assert (s.stats()["tracks"], s.stats()["failures"]) == (0, 1)
        # the next run: the same problem, the same id (from the lookup), one more attempt
        known = s.lookup(gone)[2]
        assert known is not None
        again = replace(known, attempts=known.attempts + 1)
        s.commit([PutFailure(again)])
        assert list(s.iter_failures()) == [again]
        # a problem on a path that has a track and a fingerprint: the track's id
        t = a_track(s.new_track_id(), "/music/now unreadable.flac")
        s.commit([PutTrack(t), PutFingerprint(a_fingerprint(t.track_id))])
        unreadable = FailureRecord(t.track_id, t.path, "permission", "permission denied", 1, 0, 0)
        s.commit([PutFailure(unreadable)])
        assert s.lookup(t.path) == (t, None, unreadable)
        # the missing file comes back: the catalog's job puts a new track on the path, which
        # drops the failure-only id
        back = a_track(s.new_track_id(), gone)
        s.commit([PutTrack(back), PutFingerprint(a_fingerprint(back.track_id)),
                  ClearFailure(back.track_id)])
        assert s.lookup(gone) == (back, a_fingerprint(back.track_id), None)
        assert [f.path for f in s.iter_failures()] == [t.path]
        # MovePath still moves a failure-only id
        lone = FailureRecord(s.new_track_id(), "/music/a .flac", "not_audio", "x", 1, 0, 0)
        s.commit([PutFailure(lone), MovePath(lone.track_id, "/music/b .flac")])
        assert s.lookup("/music/b .flac")[2] == replace(lone, path="/music/b .flac")
        # paths no store can hold (the scan reports them too): the supervisor skips them
        assert not is_storable_path("") and not is_storable_path("/music/a\0b.flac")
        assert is_storable_path(gone) and is_storable_path("/music/caf\udce9.flac")
        with pytest.raises(StoreError, match="cannot be stored"):
            s.commit([PutFailure(replace(first, track_id=s.new_track_id(), path=""))])
    failures = engine_query(db, "failures", "--jsonl")
    assert failures.rc == 0, failures.err
    assert sorted(r["path"] for r in failures.records) == sorted(
        [t.path, "/music/b .flac"])
