"""Nothing stops a run and nothing is lost: the crash matrix, timeouts, signals, SIGKILL.

Every run's results are counted: each track ends as exactly one fingerprint or one failure
record, never both, never none.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import helpers as h
import numpy as np
import psutil
import pytest
import signals as sig
from engine_faults import hook

from engine.run.supervisor import RunConfig, Supervisor

# --- the crash matrix (in-process supervisor, forked workers with a fault hook) ---------------


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    lib = root / "lib"
    healthy = [f"ok{i:02d}.wav" for i in range(8)]
    poisoned = ["segv.wav", "exit.wav", "raise.wav", "hang.wav", "pickle.wav", "once.wav"]
    h.write_tracks(lib, healthy + poisoned)
    before = h.shm_entries()
    cfg = RunConfig(db=str(root / "db"), cores=2, queue_size=3, quiet=True, timeout_s=2.0,
                    max_retries=2, worker_hook=hook)
    stats = Supervisor(cfg).run([str(lib)])
    return root, stats, healthy, poisoned, before


def test_crash_matrix_every_track_answered_once(matrix_run):
    root, stats, healthy, poisoned, _ = matrix_run
    contents = h.store_contents(root / "db")
    names_ok = {Path(p).name for p in contents.fingerprints}
    names_failed = {name: f.kind for name, f in contents.failures_by_name().items()}
    assert names_ok == set(healthy) | {"once.wav"}  # the transient crash was retried and passed
    assert names_failed == {"segv.wav": "worker_died", "exit.wav": "worker_died",
                            "raise.wav": "exception", "hang.wav": "timeout",
                            "pickle.wav": "exception"}
    assert stats.ok == len(healthy) + 1 and stats.failed == 5
    assert stats.tracks == len(healthy) + len(poisoned)


def test_crash_matrix_messages_name_pid_track_and_signal(matrix_run):
    root, stats, *_ = matrix_run
    fails = h.store_contents(root / "db").failures_by_name()
    segv = fails["segv.wav"]
    assert "SIGSEGV(-11)" in segv.message and "segv.wav" in segv.message
    assert "pid" in segv.message and "attempt 3 of 3" in segv.message
    assert segv.attempts == 3  # tried, retried twice, then recorded
    assert "exit code 3" in fails["exit.wav"].message
    assert "injected failure" in fails["raise.wav"].message
    assert fails["raise.wav"].attempts == 1  # an exception is data, not a reason to retry
    assert "time limit" in fails["hang.wav"].message and "SIGKILL(-9)" in fails["hang.wav"].message
    assert "could not be sent" in fails["pickle.wav"].message
    # a segfault kills the worker: it was replaced, and the deaths were all named
    assert stats.worker_deaths >= 3 * 2 + 1 + 3  # segv x3, exit x3, once x1, hang x3
    assert all("pid" in d for d in stats.deaths)


def test_crash_matrix_leaves_no_process_and_no_shared_memory(matrix_run):
    *_, before = matrix_run
    assert h.shm_entries() <= before
    # the only child left may be multiprocessing's resource tracker (it lives with its parent)
    left = [p for p in psutil.Process().children(recursive=True)
            if "resource_tracker" not in " ".join(p.cmdline())
            and p.status() != psutil.STATUS_ZOMBIE]
    assert not left


def test_failed_tracks_are_not_retried_unless_asked(matrix_run):
    root, *_ = matrix_run
    cfg = RunConfig(db=str(root / "db"), cores=2, quiet=True, timeout_s=2.0,
                    worker_hook=hook)
    stats = Supervisor(cfg).run([str(root / "lib")])
    assert stats.ok == 0 and stats.cached == 9 and stats.failed == 5
    assert stats.worker_deaths == 0  # nothing was even tried
    cfg = RunConfig(db=str(root / "db"), cores=2, quiet=True, timeout_s=2.0, retry_failed=True,
                    max_retries=0, worker_hook=hook)
    stats = Supervisor(cfg).run([str(root / "lib")])
    assert stats.failed == 5 and stats.worker_deaths >= 3  # tried again, once each


# --- signals (engine-run with the fault hooks, in a process of its own) ----------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_lets_in_flight_tracks_finish_and_commits(tmp_path, signum, code):
    """SIGINT -> 130, SIGTERM -> 143: feeding stops, the tracks in flight finish, and every
    completed track is committed; nothing is left behind (no process, no /dev/shm entry)."""
    lib = tmp_path / "lib"
    h.write_tracks(lib, [f"slow{i:02d}.wav" for i in range(20)])
    before = h.shm_entries()
    proc = h.start_fault_runner(tmp_path / "db", lib, "--grace", "10")
    assert proc.stdout is not None
    assert proc.stdout.readline()  # a first track is done: others are in flight
    proc.send_signal(signum)
    # not communicate(): it reads the raw pipe, and a line readline() already buffered would
    # be lost (the count below came out one short when two lines had arrived together)
    out = proc.stdout.read()
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == code, err.decode()
    emitted = 1 + sum(1 for line in out.decode().splitlines() if line)
    contents = h.store_contents(tmp_path / "db")
    assert len(contents.fingerprints) == emitted  # every completed track, in-flight ones too
    assert contents.stats["fingerprints"] == emitted
    assert 2 <= emitted < 20
    assert h.shm_entries() <= before
    assert not h.engine_processes(str(tmp_path / "db"))


def test_second_sigint_abandons_in_flight_work_at_once(tmp_path):
    lib = tmp_path / "lib"
    h.write_tracks(lib, ["a_ok.wav", "hang1.wav", "hang2.wav", "hang3.wav"])  # sorted order
    before = h.shm_entries()
    proc = h.start_fault_runner(tmp_path / "db", lib, "--grace", "60", "--timeout", "600",
                                "--cores", "2")
    assert proc.stdout is not None
    time.sleep(3.0)  # the workers are stuck in "hang" tracks
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 15  # not the 60 s grace
    assert proc.returncode == 130, err.decode()
    fps = h.store_contents(tmp_path / "db").fingerprints
    assert {Path(p).name for p in fps} == {"a_ok.wav"}
    assert h.shm_entries() <= before
    assert not h.wait_for_no_engine_processes(str(tmp_path / "db"))


# --- crash consistency: SIGKILL of the supervisor at random moments ------------------------


def test_sigkill_of_the_supervisor_never_corrupts_the_store(tmp_path):
    lib = tmp_path / "lib"
    n = 60
    rng = np.random.default_rng(3)
    lib.mkdir()
    for i in range(n):  # 10 s tracks in two formats: a run takes a second or two
        x = sig.white_noise(10.0, 22050, rng, rms=0.02 + 0.002 * i)
        sig.write_audio(lib / f"t{i:02d}.{'flac' if i % 2 else 'wav'}", x, 22050)
    db = tmp_path / "db"
    before = h.shm_entries()
    pick = random.Random(7)
    kills = 0
    for _ in range(20):
        # --force: every run redoes (and recommits) the whole library, so kills land mid-work
        proc = h.start_engine_run(str(lib), "--db", str(db), "--cores", "2", "-q", "--force",
                                  stdout=subprocess.DEVNULL)
        time.sleep(pick.uniform(0.5, 1.6))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait(timeout=30)
        if (db / "data.mdb").exists():
            h.store_contents(db)  # opens, and is coherent, after every kill
    assert kills >= 10  # most runs really were killed mid-way
    # orphaned workers notice their supervisor is gone and leave
    assert not h.wait_for_no_engine_processes(str(db))
    assert h.shm_entries() <= before
    run = h.engine_run(str(lib), "--db", str(db), "--cores", "2", "--jsonl", "-q", timeout=300)
    assert run.rc == 0, run.stderr
    assert sorted(r["path"] for r in run.records) == sorted(str(p) for p in lib.iterdir())
    contents = h.store_contents(db)
    assert len(contents.fingerprints) == n and not contents.failures  # every track exactly once
    assert contents.stats["tracks"] == n


# --- storage faults -------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs (root only); skipped where mounting is not allowed."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_a_clear_error_and_committed_data_stays_intact(tmp_path, tiny_disk):
    src = tmp_path / "one.wav"
    sig.write_audio(src, sig.sine(440.0, 0.02, 22050), 22050)
    lib = tmp_path / "lib"
    for d in range(6):
        (lib / f"d{d}").mkdir(parents=True)
        for i in range(1000):
            os.link(src, lib / f"d{d}" / f"t{i:04d}.wav")
    db = tiny_disk / "db"
    before = h.shm_entries()
    run = h.engine_run(str(lib), "--db", str(db), "--cores", "2", "-q", timeout=300)
    err = run.stderr
    assert run.rc == 3, err
    assert str(db) in err and ("space" in err.lower() or "full" in err.lower()), err
    fps = h.store_contents(db).fingerprints  # opens, coherent, and holds what was committed
    assert 0 < len(fps) < 6000
    assert h.shm_entries() <= before
    assert not h.engine_processes(str(db))


def _delete_then_continue(job):
    if Path(job.path).name.startswith("vanish"):
        os.unlink(job.path)
    return None


def test_file_deleted_after_the_scan_is_a_failure_naming_it(tmp_path):
    lib = tmp_path / "lib"
    h.write_tracks(lib, ["a.wav", "vanish.wav", "z.wav"])
    cfg = RunConfig(db=str(tmp_path / "db"), cores=2, quiet=True,
                    worker_hook=_delete_then_continue)
    stats = Supervisor(cfg).run([str(lib)])
    assert stats.ok == 2 and stats.failed == 1
    (f,) = h.store_contents(tmp_path / "db").failures.values()
    assert f.kind == "decode" and "vanish.wav" in f.message


def _rewrite_then_continue(job):
    if Path(job.path).name.startswith("rewritten"):
        time.sleep(0.01)  # a new mtime, whatever the file system's resolution
        sig.write_audio(Path(job.path), sig.sine(880.0, 0.5, 22050), 22050)
    return None


def test_file_rewritten_while_decoded_is_recomputed_on_the_next_run(tmp_path):
    """The worker decodes whatever the file holds then; the catalog keeps the scan's size and
    mtime, so the next run sees the change and recomputes exactly that track."""
    lib = tmp_path / "lib"
    h.write_tracks(lib, ["a.wav", "rewritten.wav", "z.wav"])
    cfg = RunConfig(db=str(tmp_path / "db"), cores=2, quiet=True,
                    worker_hook=_rewrite_then_continue)
    assert Supervisor(cfg).run([str(lib)]).ok == 3
    again = Supervisor(RunConfig(db=str(tmp_path / "db"), cores=2, quiet=True)).run([str(lib)])
    assert again.ok == 1 and again.cached == 2
    assert len(h.store_contents(tmp_path / "db").fingerprints) == 3
