"""engine-run end to end: real processes, a real LMDB store, real files in mixed formats."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import helpers as h
import numpy as np
import psutil
import pytest
import signals as sig
import soundfile as sf

from engine import store as st
from engine.run.supervisor import RunConfig, Supervisor


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("lib")
    return root, h.make_library(root)


@pytest.fixture(scope="module")
def first_run(library, tmp_path_factory):
    root, _paths = library
    db = tmp_path_factory.mktemp("db") / "fp.lmdb"
    before = h.shm_entries()
    run = h.engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl")
    return db, run.rc, run.records, run.stderr, before


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
    proc = h.engine_query(db, "export", "--format", "jsonl", timeout=60)
    assert proc.returncode == 0, proc.stderr
    exported = {r["path"]: r for r in map(json.loads, proc.stdout.splitlines())}
    assert set(exported) == {r["path"] for r in recs}
    for r in recs:
        # how the file was read is the run's news, not the store's: export leaves it out
        run_only = {k: r.pop(k) for k in ("decoder", "note")}
        assert run_only["decoder"] in ("libsndfile", "ffmpeg") and run_only["note"] is None
        assert exported[r["path"]] == r


def test_nothing_left_in_dev_shm(first_run):
    *_, before = first_run
    assert h.shm_entries() <= before


def test_rerun_decodes_nothing(library, first_run):
    root, paths = library
    db = first_run[0]
    run = h.engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl")
    assert run.rc == 0, run.stderr
    assert [r["status"] for r in run.records] == ["cached"] * len(paths)
    assert "0 ok, 30 cached" in run.stderr
    first = {r["path"]: r["fingerprint"] for r in first_run[2]}
    assert all(r["fingerprint"] == first[r["path"]] for r in run.records)


def test_older_fingerprint_versions_are_recomputed_and_never_served(tmp_path):
    """A store written by an older engine: its fingerprints are invisible to every query and
    the next run recomputes them (docs/FINGERPRINT.md, "Versions")."""
    from kernels import FINGERPRINT_VERSION

    lib = tmp_path / "lib"
    paths = h.write_tracks(lib, ["a.wav", "b.wav", "c.wav"])
    db = tmp_path / "db"
    first = h.engine_run(str(lib), "--db", str(db), "--cores", "1", "--jsonl")
    assert first.rc == 0 and [r["status"] for r in first.records] == ["ok"] * 3, first.stderr
    with st.Store.open(st.StoreConfig(db)) as w:  # what version 1 of the engine left behind
        old = [(t, f) for t, f in w.iter_fingerprints()]
        w.commit([st.PutFingerprint(dataclasses.replace(f, version=FINGERPRINT_VERSION - 1))
                  for _, f in old])
    export = h.engine_query(db, "export", "--format", "jsonl", timeout=60)
    assert export.returncode == 0 and export.stdout == "", export.stderr
    stats = json.loads(h.engine_query(db, "stats").stdout)
    assert stats["current_fingerprints"] == 0
    assert stats["fingerprint_versions"] == {str(FINGERPRINT_VERSION - 1): 3}
    show = h.engine_query(db, "show", str(paths[0]))
    assert show.returncode == 2 and f"version {FINGERPRINT_VERSION - 1}" in show.stderr
    again = h.engine_run(str(lib), "--db", str(db), "--cores", "1", "--jsonl")
    assert again.rc == 0, again.stderr
    assert [r["status"] for r in again.records] == ["ok"] * 3  # recomputed, not "cached"
    export = h.engine_query(db, "export", "--format", "jsonl", timeout=60)
    assert len(export.stdout.splitlines()) == 3
    stats = json.loads(h.engine_query(db, "stats").stdout)
    assert stats["fingerprint_versions"] == {str(FINGERPRINT_VERSION): 3}


def test_changed_file_is_the_only_one_recomputed(library, tmp_path):
    root, paths = library
    lib = tmp_path / "lib"
    shutil.copytree(root, lib)
    db = tmp_path / "db"
    run = h.engine_run(str(lib), "--db", str(db), "--cores", "2", "-q")
    assert run.rc == 0, run.stderr
    target = lib / paths[4].relative_to(root)
    x, sr = sf.read(target, dtype="float32")
    sf.write(target, 0.5 * x, sr)  # new content, new mtime
    run = h.engine_run(str(lib), "--db", str(db), "--cores", "2", "--jsonl")
    assert run.rc == 0, run.stderr
    ok = [r["path"] for r in run.records if r["status"] == "ok"]
    assert ok == [str(target)]


def test_moved_file_takes_its_fingerprint_along(library, tmp_path):
    root, paths = library
    lib = tmp_path / "lib"
    shutil.copytree(root, lib)
    db = tmp_path / "db"
    assert h.engine_run(str(lib), "--db", str(db), "-q", "--cores", "1").rc == 0
    old = lib / paths[7].relative_to(root)
    new = lib / "renamed" / "moved.flac"
    new.parent.mkdir()
    old.rename(new)
    run = h.engine_run(str(lib), "--db", str(db), "--cores", "1", "--jsonl")
    assert run.rc == 0, run.stderr
    moved = [r for r in run.records if r["path"] == str(new)]
    assert moved and moved[0]["status"] == "cached"
    assert all(r["status"] == "cached" for r in run.records)  # nothing decoded
    stored = h.store_contents(db).fingerprints
    assert str(old) not in stored and str(new) in stored


def test_one_and_two_cores_give_bit_identical_fingerprints(library, first_run, tmp_path):
    root, _ = library
    db1 = tmp_path / "one"
    run = h.engine_run(str(root), "--db", str(db1), "--cores", "1", "--jsonl")
    assert run.rc == 0, run.stderr
    two = {r["path"]: r["fingerprint"] for r in first_run[2]}
    one = {r["path"]: r["fingerprint"] for r in run.records}
    assert one == two  # JSON round-trips float64 exactly: equal means bit for bit


def test_engine_run_loads_numba_without_its_unused_extras_even_from_a_cold_cache(
        library, first_run, tmp_path):
    """engine-run uses neither scipy nor cffi: numba loads as if they were not installed
    (about 0.12 s of every start-up where they are), they stay out of the process, and the
    kernels compile from an empty numba cache under that condition to the very fingerprint a
    warm run gives."""
    _root, paths = library
    code = ("import sys; from engine.run.cli import main; rc = main(sys.argv[1:]); "
            "print('modules:', *(m in sys.modules for m in ('numba', 'scipy', 'cffi', "
            "'pycparser', 'soundfile')), file=sys.stderr); sys.exit(rc)")
    cache = tmp_path / "numba-cache"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(paths[0]), "--db", str(tmp_path / "db"), "--cores",
         "1", "--jsonl"], env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "modules: True False False False True" in proc.stderr  # numba, soundfile only
    assert any(cache.rglob("*.nbi"))  # the cache was empty: the kernels compiled here
    (record,) = [json.loads(line) for line in proc.stdout.splitlines() if line]
    warm = {r["path"]: r["fingerprint"] for r in first_run[2]}
    assert record["status"] == "ok" and record["fingerprint"] == warm[str(paths[0])]


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
    run = h.engine_run(str(lib), str(tmp_path / "missing.wav"), "--db", str(tmp_path / "db"),
                       "--cores", "2", "--jsonl")
    assert run.rc == 1, run.stderr
    by = {Path(r["path"]).name: r for r in run.records}
    assert by["good.wav"]["status"] == "ok"
    for name, kind in (("broken.flac", "decode"), ("empty.wav", "decode"),
                       ("missing.wav", "missing")):
        assert by[name]["status"] == "failed"
        assert by[name]["error"]["kind"] == kind
        assert name in by[name]["error"]["message"]
    # a failed track is not retried on the next run (the file did not change) ...
    run = h.engine_run(str(lib), "--db", str(tmp_path / "db"), "--jsonl", "--cores", "1")
    by = {Path(r["path"]).name: r for r in run.records}
    assert run.rc == 1 and by["broken.flac"]["status"] == "failed"
    assert by["good.wav"]["status"] == "cached"
    # ... unless the file changed
    fixed = lib / "broken.flac"
    sig.write_audio(fixed, sig.sine(220.0, 1.0, 22050), 22050, fmt="flac")
    run = h.engine_run(str(lib), "--db", str(tmp_path / "db"), "--jsonl", "--cores", "1")
    assert {Path(r["path"]).name: r["status"] for r in run.records}["broken.flac"] == "ok"


def test_usage_errors_exit_2(tmp_path):
    assert h.engine_run().rc == 2
    assert h.engine_run("--cores", "0", str(tmp_path)).rc == 2
    assert h.engine_run("--bogus").rc == 2


def test_paths_from_stdin_nul_separated(library, tmp_path):
    _root, paths = library
    listing = b"".join(os.fsencode(p) + b"\0" for p in paths[:5])
    run = h.engine_run("-0", "-", "--db", str(tmp_path / "db"), "--cores", "2", "--jsonl",
                       stdin=listing)
    assert run.rc == 0, run.stderr
    assert len([r for r in run.records if r["status"] == "ok"]) == 5


def test_eviction_keeps_its_bound_and_recomputes(library, tmp_path):
    root, paths = library
    db = tmp_path / "db"
    n = len(paths)
    run = h.engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl",
                       "--max-entries", "5")
    assert run.rc == 0, run.stderr
    stats = h.store_contents(db).stats
    assert stats["fingerprints"] == 5 and stats["tracks"] == n
    assert stats["evictions"] == n - 5
    run = h.engine_run(str(root), "--db", str(db), "--cores", "2", "--jsonl",
                       "--max-entries", "5")
    statuses = [r["status"] for r in run.records]
    assert run.rc == 0 and len(statuses) == n
    assert statuses.count("ok") >= n - 5  # every evicted track was recomputed when asked for
    assert h.store_contents(db).stats["fingerprints"] == 5


def test_reader_sees_consistent_data_during_a_run(library, tmp_path):
    root, paths = library
    db = tmp_path / "db"
    proc = h.start_engine_run(str(root), "--db", str(db), "--cores", "2", "-q",
                              stdout=subprocess.DEVNULL)
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
    assert h.store_contents(db).stats["fingerprints"] == len(paths)


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
    proc = h.start_engine_run(str(tmp_path / "lib"), "--db", str(tmp_path / "db"), "--cores",
                              "2", "--jsonl", "-q")
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

