"""engine-run under hostile conditions: absurd options, a full stdout, too few file descriptors,
paths libsndfile cannot take by name, input that is not what -0 says. Each test reproduces a
defect that once ended in a traceback, a silent clamp, a lost record or a swamped machine."""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess
import time
from pathlib import Path

import helpers as h
import numpy as np
import psutil
import pytest
import soundfile as sf

from engine.decode import fingerprint_file


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    """engine-run with options of Popen that helpers.engine_run does not take (preexec_fn)."""
    return subprocess.run([str(h.BIN / "engine-run"), *args], capture_output=True,
                          timeout=240, check=False, **kw)


def _tracks(root: Path, n: int) -> list[Path]:
    return h.write_tracks(root, [f"t{i:02d}.wav" for i in range(n)], seconds=0.5)


@pytest.mark.parametrize("option", [
    "--block-frames=99999999999", "--max-bytes=inf", "--max-bytes=1", "--timeout=0",
    "--timeout=-1", "--min-speed=0", "--min-speed=nan", "--grace=nan", "--max-retries=-5",
    "--cores=0", "--queue-size=-1", "--max-entries=0", "--connect-timeout=inf",
    "--block-frames=1e3",
])
def test_every_numeric_option_is_bounded_at_parse_time(tmp_path, option):
    """Once: --block-frames 99999999999 took 23 GB; --max-bytes inf was an OverflowError
    traceback; --timeout 0 or --max-retries -5 were clamped without a word."""
    (tmp_path / "lib").mkdir()
    r = h.engine_run("--db", str(tmp_path / "db"), option, str(tmp_path / "lib"))
    err = r.stderr
    assert r.rc == 2, err
    name, _, value = option.partition("=")
    assert f"argument {name}: " in err and value in err
    assert "out of range" in err or "is not" in err
    assert "Traceback" not in err
    assert not (tmp_path / "db").exists()  # nothing was started


def test_stdout_that_cannot_be_written_stops_the_run_with_exit_5(tmp_path):
    """`engine-run --jsonl ... > /dev/full` once exited 0 with every record lost."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    _tracks(lib, 12)
    with open("/dev/full", "w") as full:
        r = subprocess.run([str(h.BIN / "engine-run"), "--db", str(db), "--jsonl", "--cores",
                            "1", str(lib)], stdout=full, stderr=subprocess.PIPE, timeout=240,
                           check=False)
    err = r.stderr.decode()
    assert r.returncode == 5, err
    assert "cannot write to stdout: No space left on device" in err
    assert "Traceback" not in err
    assert len(h.store_contents(db).fingerprints) >= 1  # what completed is committed
    again = h.engine_run("--db", str(db), "-q", "--jsonl", str(lib))
    assert again.rc == 0 and len(again.records) == 12


def _limit_files(n: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def test_too_few_file_descriptors_is_a_clear_error_leaving_nothing(tmp_path):
    """`ulimit -n 12` once gave a traceback from multiprocessing's resource tracker and left a
    shared-memory segment in /dev/shm on every run."""
    lib = tmp_path / "lib"
    _tracks(lib, 2)
    before = h.shm_entries()
    for _ in range(3):
        r = _run("--db", str(tmp_path / "db"), "--cores", "2", str(lib),
                 preexec_fn=_limit_files(12))
        err = r.stderr.decode()
        assert r.returncode == 4, err
        assert "open-file limit is 12" in err and "ulimit -n" in err
        assert "Traceback" not in err
    new = h.shm_entries() - before
    if new:  # another process's entry may come and go meanwhile: ours would stay
        time.sleep(1.0)
        new &= h.shm_entries()
    assert new == set()  # no segment, no semaphore left behind


def test_nul_separated_stdin_without_dash_0_is_a_usage_error(tmp_path):
    """Over 1 MiB of NUL-separated paths without -0 once raised a ValueError traceback."""
    lib = tmp_path / "lib"
    paths = _tracks(lib, 1)
    data = b"\0".join(bytes(paths[0]) for _ in range(20000))
    r = h.engine_run("--db", str(tmp_path / "db"), "-", stdin=data)
    err = r.stderr
    assert r.rc == 2, err
    assert "without a separator" in err and "-0" in err
    assert "Traceback" not in err


def test_a_path_longer_than_libsndfile_takes_is_fingerprinted(tmp_path, rng):
    """A valid file whose path is over ~1024 bytes once failed: "Supplied filename too long"."""
    deep = tmp_path.joinpath(*["d" * 200] * 6)
    deep.mkdir(parents=True)
    x = (0.1 * rng.standard_normal((22050, 2))).astype(np.float32)
    path = deep / ("x" * 200 + ".flac")
    with open(path, "wb") as f:  # soundfile's own writer refuses the long name too
        sf.write(f, x, 22050, format="FLAC")
    assert len(str(path)) > 1024
    assert fingerprint_file(path).as_array().shape == (25,)
    r = h.engine_run("--db", str(tmp_path / "db"), "--jsonl", "-q", str(path))
    assert r.rc == 0, r.stderr
    [rec] = r.records
    assert rec["status"] == "ok" and rec["duration_s"] == pytest.approx(1.0)


def _failures(db: Path) -> dict[str, tuple[str, str]]:
    """What `engine-query failures` lists, by path."""
    r = h.engine_query(db, "failures", "--jsonl")
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    return {rec["path"]: (rec["kind"], rec["message"]) for rec in recs}


def test_failures_found_by_the_scan_are_stored_and_listed(tmp_path, rng):
    """A missing file or a named file that is not audio once exited 1 but left no record:
    `engine-query failures` said "no failures", and with -q nothing said anything."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    good = _tracks(lib, 1)[0]
    notes = lib / "notes.txt"
    notes.write_text("not audio")
    missing = lib / "missing.flac"
    r = h.engine_run("--db", str(db), "-q", str(good), str(missing), str(notes))
    assert r.rc == 1 and r.stderr == ""
    failed = _failures(db)
    assert set(failed) == {str(missing), str(notes)}
    assert failed[str(missing)][0] == "missing" and "missing.flac" in failed[str(missing)][1]
    assert failed[str(notes)][0] == "not_audio"
    # the file appears: fingerprinted, and its failure is gone
    sf.write(missing, (0.1 * rng.standard_normal((11025, 2))).astype(np.float32), 22050,
             format="FLAC")
    r = h.engine_run("--db", str(db), "-q", str(good), str(missing))
    assert r.rc == 0, r.stderr
    assert set(_failures(db)) == {str(notes)}
    assert len(h.store_contents(db).fingerprints) == 2


def test_a_file_copied_then_deleted_keeps_its_fingerprint(tmp_path):
    """A move by copy and delete changes the mtime: the store's rule against stale values
    drops a fingerprint whose track changes, so the catalog puts the moved one back; the next
    run must still answer from the store, not decode again."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    [old] = _tracks(lib, 1)
    assert h.engine_run("--db", str(db), "-q", str(lib)).rc == 0
    before = h.store_contents(db).bits()[str(old)]
    new = lib / "moved" / "renamed.wav"
    new.parent.mkdir()
    new.write_bytes(old.read_bytes())  # a copy: a new mtime
    old.unlink()
    for _ in range(2):
        r = h.engine_run("--db", str(db), "--jsonl", "-q", str(lib))
        assert r.rc == 0, r.stderr
        assert [rec["status"] for rec in r.records] == ["cached"]
    assert h.store_contents(db).bits() == {str(new): before}


def test_idle_workers_killed_while_waiting_for_jobs_do_not_hang_the_run(tmp_path):
    """A worker waiting in the queue's get() holds the queue's read lock; once SIGKILLed there
    it never released it and no worker could take a job again: the run hung for ever.

    And while stdin stays open: the scan's thread blocks reading it while workers are forked
    (the first job starts them; a dead one is replaced). A forked child closes sys.stdin
    (multiprocessing does): had the thread held sys.stdin's lock at the fork, every new worker
    hung there for ever; and the job that goes again after the workers died must not wait for
    the next line of stdin."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    paths = _tracks(lib, 3)
    proc = h.start_engine_run("--db", str(db), "--cores", "2", "--jsonl", "-q", "-",
                              stdin=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        for path in paths[:2]:  # the second after both workers were killed, stdin still open
            proc.stdin.write(f"{path}\n".encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 30)
            assert ready, f"no record for {path} within 30 s while stdin stays open"
            assert json.loads(proc.stdout.readline())["status"] == "ok"
            workers = psutil.Process(proc.pid).children()
            assert len(workers) == 2
            time.sleep(0.3)  # both idle, one inside get() holding the lock
            for w in workers:
                w.kill()
            time.sleep(0.5)
        out, err = proc.communicate(f"{paths[2]}\n".encode(), timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    assert [json.loads(line)["status"] for line in out.decode().splitlines()] == ["ok"]
    assert set(h.store_contents(db).fingerprints) == {str(p) for p in paths}


def test_a_signal_stops_a_run_waiting_on_an_idle_stdin(tmp_path):
    """SIGTERM while the scan waited for more paths on stdin was ignored until EOF, then the
    run exited 0 as if nothing had happened."""
    proc = h.start_engine_run("--db", str(tmp_path / "db"), "--cores", "1", "-q", "-",
                              stdin=subprocess.PIPE)
    try:
        time.sleep(3.0)  # started, waiting on stdin
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err.decode()
    assert b"Traceback" not in err


def test_moved_files_share_nothing_and_a_missing_old_path_breaks_nothing(tmp_path):
    """Two identical files moved together once got one track id between them (the store kept
    one at a deleted path); a moved file named together with its (now missing) old path made
    every run fail with exit 3. The content key finds one track per key, so the second copy is
    computed again: slower, never wrong."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    [x] = _tracks(lib / "d1", 1)
    y = lib / "d1" / "y.wav"
    y.write_bytes(x.read_bytes())
    assert h.engine_run("--db", str(db), "-q", str(lib)).rc == 0
    (lib / "d2").mkdir()
    for f in (x, y):
        (lib / "d2" / f.name).write_bytes(f.read_bytes())
        f.unlink()
    r = h.engine_run("--db", str(db), "--jsonl", str(lib / "d2"), str(x))
    assert r.rc == 1, r.stderr  # x itself is missing now
    by_path = {rec["path"]: rec for rec in r.records}
    moved = [by_path[str(lib / "d2" / f.name)] for f in (x, y)]
    assert moved[0]["status"] == "cached" and moved[1]["status"] in ("cached", "ok")
    assert moved[0]["track_id"] != moved[1]["track_id"]
    assert by_path[str(x)]["status"] == "failed"
    assert "moved)" in r.stderr
    for _ in range(2):  # and again: nothing stuck
        again = h.engine_run("--db", str(db), "--jsonl", "-q", str(lib / "d2"), str(x))
        assert again.rc == 1, again.stderr
        assert sorted(rec["status"] for rec in again.records) == ["cached", "cached", "failed"]
    assert set(h.store_contents(db).fingerprints) == {str(lib / "d2" / f.name) for f in (x, y)}


@pytest.mark.parametrize("stderr", ["closed", "full"])
def test_a_closed_or_full_stderr_does_not_stop_the_run(tmp_path, stderr):
    """`engine-run ... 2>&-` was an AttributeError and `2>/dev/full` an OSError before any
    work: messages are best effort, the run is not."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    _tracks(lib, 3)
    cmd = [str(h.BIN / "engine-run"), "--db", str(db), str(lib)]
    if stderr == "closed":
        r = subprocess.run(cmd, stderr=subprocess.DEVNULL, timeout=120, check=False,
                           preexec_fn=lambda: os.close(2))
    else:
        with open("/dev/full", "w") as full:
            r = subprocess.run(cmd, stderr=full, timeout=120, check=False)
    assert r.returncode == 0
    assert len(h.store_contents(db).fingerprints) == 3


def test_content_key_refuses_a_fifo_without_blocking(tmp_path):
    """A FIFO put where the scan saw a file once blocked the supervisor in open()."""
    from engine.content_key import content_key
    from engine.errors import StoreError

    fifo = tmp_path / "was-a-file.wav"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="no longer a regular file"):
        content_key(fifo, 1000)
