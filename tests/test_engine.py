"""engine-run end to end: real processes, a real LMDB store, real files in mixed formats."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import signals as sig
import soundfile as sf

from engine import store as st
from engine.supervisor import RunConfig, Supervisor

BIN = Path(sys.executable).parent
FORMATS = [("wav", 44100), ("flac", 48000), ("ogg", 44100), ("mp3", 44100), ("flac", 22050)]


def make_library(root: Path, n: int = 30, seconds: float = 3.0) -> list[Path]:
    """``n`` short tracks of different content in mixed formats and rates."""
    paths = []
    rng = np.random.default_rng(5)
    for i in range(n):
        ext, sr = FORMATS[i % len(FORMATS)]
        kind = i % 4
        if kind == 0:
            x = sig.click_track(60 + 7 * i, seconds, sr, channels=2)
        elif kind == 1:
            x = sig.chord([110.0 * (1 + i % 5), 165.0, 220.0 + i], seconds, sr, channels=2)
        elif kind == 2:
            x = sig.white_noise(seconds, sr, rng, rms=0.05 + 0.01 * (i % 7), channels=2)
        else:
            x = sig.music_like(seconds, sr, seed=i, channels=2)
        p = root / f"album{i % 3}" / f"track{i:02d}.{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        sig.write_audio(p, x, sr)
        paths.append(p)
    return paths


def engine_run(*args: str, stdin: bytes | None = None, timeout: float = 240
               ) -> tuple[int, list[dict], str]:
    proc = subprocess.run([str(BIN / "engine-run"), *args], input=stdin, capture_output=True,
                          timeout=timeout, check=False)
    records = [json.loads(line) for line in proc.stdout.decode().splitlines() if line]
    return proc.returncode, records, proc.stderr.decode(errors="replace")


def export(db: Path) -> dict[str, dict]:
    out = subprocess.run([str(BIN / "engine-query"), "--db", str(db), "export", "--format",
                          "jsonl"], capture_output=True, check=True, timeout=60)
    recs = [json.loads(line) for line in out.stdout.decode().splitlines()]
    return {r["path"]: r for r in recs}


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("lib")
    return root, make_library(root)


@pytest.fixture(scope="module")
def first_run(library, tmp_path_factory):
    root, _paths = library
    db = tmp_path_factory.mktemp("db") / "fp.lmdb"
    before = shm_entries()
    rc, recs, err = engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl")
    return db, rc, recs, err, before


def test_library_fingerprinted_with_two_workers(library, first_run):
    _root, paths = library
    _db, rc, recs, err, _ = first_run
    assert rc == 0, err
    assert len(recs) == len(paths)
    assert {r["status"] for r in recs} == {"ok"}
    assert {r["path"] for r in recs} == {str(p) for p in paths}
    for r in recs:
        assert len(r["fingerprint"]) == 25 and r["error"] is None
        assert all(np.isfinite(list(r["fingerprint"].values())))
        assert r["duration_s"] == pytest.approx(3.0, abs=0.06)  # mp3 adds a little padding
    assert "memory budget" in err and "30 tracks: 30 ok" in err


def test_export_returns_what_the_run_wrote(first_run):
    db, _, recs, _, _ = first_run
    exported = export(db)
    assert set(exported) == {r["path"] for r in recs}
    for r in recs:
        assert exported[r["path"]] == r


def test_nothing_left_in_dev_shm(first_run):
    *_, before = first_run
    assert shm_entries() <= before


def test_rerun_decodes_nothing(library, first_run):
    root, paths = library
    db = first_run[0]
    rc, recs, err = engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl")
    assert rc == 0, err
    assert [r["status"] for r in recs] == ["cached"] * len(paths)
    assert "0 ok, 30 cached" in err
    first = {r["path"]: r["fingerprint"] for r in first_run[2]}
    assert all(r["fingerprint"] == first[r["path"]] for r in recs)


def test_changed_file_is_the_only_one_recomputed(library, tmp_path):
    root, paths = library
    lib = tmp_path / "lib"
    shutil.copytree(root, lib)
    db = tmp_path / "db"
    rc, _, err = engine_run(str(lib), "--db", str(db), "--cores", "2", "-q")
    assert rc == 0, err
    target = lib / paths[4].relative_to(root)
    x, sr = sf.read(target, dtype="float32")
    sf.write(target, 0.5 * x, sr)  # new content, new mtime
    rc, recs, err = engine_run(str(lib), "--db", str(db), "--cores", "2", "--jsonl")
    assert rc == 0, err
    ok = [r["path"] for r in recs if r["status"] == "ok"]
    assert ok == [str(target)]


def test_moved_file_takes_its_fingerprint_along(library, tmp_path):
    root, paths = library
    lib = tmp_path / "lib"
    shutil.copytree(root, lib)
    db = tmp_path / "db"
    assert engine_run(str(lib), "--db", str(db), "-q", "--cores", "1")[0] == 0
    old = lib / paths[7].relative_to(root)
    new = lib / "renamed" / "moved.flac"
    new.parent.mkdir()
    old.rename(new)
    rc, recs, err = engine_run(str(lib), "--db", str(db), "--cores", "1", "--jsonl")
    assert rc == 0, err
    moved = [r for r in recs if r["path"] == str(new)]
    assert moved and moved[0]["status"] == "cached"
    assert all(r["status"] == "cached" for r in recs)  # nothing decoded
    assert str(old) not in export(db)


def test_one_and_two_cores_give_bit_identical_fingerprints(library, first_run, tmp_path):
    root, _ = library
    db1 = tmp_path / "one"
    rc, recs, err = engine_run(str(root), "--db", str(db1), "--cores", "1", "--jsonl")
    assert rc == 0, err
    two = {r["path"]: r["fingerprint"] for r in first_run[2]}
    one = {r["path"]: r["fingerprint"] for r in recs}
    assert one == two  # JSON round-trips float64 exactly: equal means bit for bit


def test_queue_never_holds_more_than_its_size(library, tmp_path):
    """Instrumented: the supervisor records the queue depth after every put and how many jobs
    it holds; neither may exceed the bound, whatever the library size."""
    root, paths = library
    cfg = RunConfig(db=str(tmp_path / "db"), cores=2, queue_size=3, quiet=True)
    stats = Supervisor(cfg).run([str(root)])
    assert stats.ok == len(paths)
    assert stats.enqueued == len(paths)
    assert 1 <= stats.max_queue_depth <= 3
    assert stats.max_pending <= cfg.queue_size + cfg.cores


def test_bad_input_is_a_failure_record_and_exit_code_1(tmp_path, rng):
    lib = tmp_path / "lib"
    lib.mkdir()
    sig.write_audio(lib / "good.wav", sig.sine(440.0, 1.0, 22050), 22050)
    (lib / "broken.flac").write_bytes(rng.bytes(3000))
    (lib / "empty.wav").write_bytes(b"")
    rc, recs, err = engine_run(str(lib), str(tmp_path / "missing.wav"), "--db",
                               str(tmp_path / "db"), "--cores", "2", "--jsonl")
    assert rc == 1, err
    by = {Path(r["path"]).name: r for r in recs}
    assert by["good.wav"]["status"] == "ok"
    for name, kind in (("broken.flac", "decode"), ("empty.wav", "decode"),
                       ("missing.wav", "missing")):
        assert by[name]["status"] == "failed"
        assert by[name]["error"]["kind"] == kind
        assert name in by[name]["error"]["message"]
    # a failed track is not retried on the next run (the file did not change) ...
    rc, recs, _ = engine_run(str(lib), "--db", str(tmp_path / "db"), "--jsonl", "--cores", "1")
    by = {Path(r["path"]).name: r for r in recs}
    assert rc == 1 and by["broken.flac"]["status"] == "failed" and by["good.wav"]["status"] == (
        "cached")
    # ... unless asked to
    fixed = lib / "broken.flac"
    sig.write_audio(fixed, sig.sine(220.0, 1.0, 22050), 22050, fmt="flac")
    rc, recs, _ = engine_run(str(lib), "--db", str(tmp_path / "db"), "--jsonl", "--cores", "1")
    assert {Path(r["path"]).name: r["status"] for r in recs}["broken.flac"] == "ok"


def test_usage_errors_exit_2(tmp_path):
    assert engine_run()[0] == 2
    assert engine_run("--cores", "0", str(tmp_path))[0] == 2
    assert engine_run("--bogus")[0] == 2


def test_paths_from_stdin_nul_separated(library, tmp_path):
    _root, paths = library
    listing = b"".join(os.fsencode(p) + b"\0" for p in paths[:5])
    rc, recs, err = engine_run("-0", "-", "--db", str(tmp_path / "db"), "--cores", "2",
                               "--jsonl", stdin=listing)
    assert rc == 0, err
    assert len([r for r in recs if r["status"] == "ok"]) == 5


def test_eviction_keeps_its_bound_and_recomputes(library, tmp_path):
    root, paths = library
    db = tmp_path / "db"
    n = len(paths)
    rc, recs, err = engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl",
                               "--max-entries", "5")
    assert rc == 0, err
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        stats = s.stats()
    assert stats["fingerprints"] == 5 and stats["tracks"] == n
    assert stats["evictions"] == n - 5
    rc, recs, err = engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl",
                               "--max-entries", "5")
    statuses = [r["status"] for r in recs]
    assert rc == 0 and len(statuses) == n
    assert statuses.count("ok") >= n - 5  # every evicted track was recomputed when asked for
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        assert s.stats()["fingerprints"] == 5


def test_reader_sees_consistent_data_during_a_run(library, tmp_path):
    root, paths = library
    db = tmp_path / "db"
    proc = subprocess.Popen([str(BIN / "engine-run"), str(root), "--db", str(db), "--cores",
                             "2", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if not (db / "data.mdb").exists():
                time.sleep(0.05)
                continue
            try:
                s = st.Store.open(st.StoreConfig(db), readonly=True)
            except st.StoreError:  # created but not initialised yet
                time.sleep(0.05)
                continue
            with s:
                pairs = list(s.iter_fingerprints())
            for track, fp in pairs:
                assert len(fp.values) == 25 and np.all(np.isfinite(fp.values))
                assert fp.track_id == track.track_id
            seen.append(len(pairs))
            time.sleep(0.02)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert seen == sorted(seen)  # commits only ever add
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        assert s.stats()["fingerprints"] == len(paths)


def test_supervisor_memory_is_flat_over_many_tracks(tmp_path):
    """20 000 input paths (hard links of one 20 ms file): the supervisor's RSS after 2 000
    tracks and after 20 000 differ by less than 5 % (nothing grows with library size)."""
    src = tmp_path / "one.wav"
    sf.write(src, np.zeros((441, 1), np.float32) + 0.1, 22050)
    n_dirs, per_dir = 20, 1000
    for d in range(n_dirs):
        folder = tmp_path / "lib" / f"d{d:02d}"
        folder.mkdir(parents=True)
        for i in range(per_dir):
            os.link(src, folder / f"t{i:04d}.wav")
    total = n_dirs * per_dir
    proc = subprocess.Popen([str(BIN / "engine-run"), str(tmp_path / "lib"), "--db",
                             str(tmp_path / "db"), "--cores", "2", "--jsonl", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rss: dict[int, float] = {}
    sup = psutil.Process(proc.pid)
    assert proc.stdout is not None
    lines = 0

    def sample() -> float:
        info = sup.memory_full_info()
        return float(info.rss - info.shared)  # anonymous (private) resident memory

    for _ in proc.stdout:
        lines += 1
        if lines in (2000, total - 500):
            rss[lines] = sample()
    proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert lines == total
    growth = rss[total - 500] / rss[2000] - 1.0
    assert growth < 0.05, rss


def test_interrupt_commits_completed_work_and_exits_130(library, tmp_path):
    root, _paths = library
    db = tmp_path / "db"
    before = shm_entries()
    proc = subprocess.Popen([str(BIN / "engine-run"), str(root), "--db", str(db), "--cores",
                             "2", "--jsonl", "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # at least one track done
    assert first
    proc.send_signal(2)  # SIGINT
    # not communicate(): it reads the raw pipe, and a line readline() already buffered would
    # be lost (the count below came out one short when two lines had arrived together)
    out = proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130, err.decode()
    done = 1 + sum(1 for line in out.decode().splitlines() if line)
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        assert s.stats()["fingerprints"] == done
    assert shm_entries() <= before
    children = [p for p in psutil.process_iter(["cmdline"])
                if p.info["cmdline"] and "engine-run" in " ".join(p.info["cmdline"])
                and str(db) in " ".join(p.info["cmdline"])]
    assert not children
