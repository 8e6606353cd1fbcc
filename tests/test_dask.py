"""The Dask backend on a real LocalCluster (2 worker processes, 1 thread each): the same
fingerprints as the local engine, worker deaths survived, bad files recorded, --path-map."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import threading
import time
from pathlib import Path

import helpers as h
import psutil
import pytest
import signals as sig
from engine_faults import hook

from engine.errors import BackendError
from engine.run.backends.dask import DaskBackend, DaskConfig, PathMap
from engine.run.supervisor import RunConfig, Supervisor


def marked_library(lib: Path, n: int = 16) -> None:
    """``n`` one-second tracks named ``mark*``: the fault hook makes each take 0.5 s and
    creates ``lib/started`` when the first one runs."""
    h.write_tracks(lib, [f"mark{i:02d}.wav" for i in range(n)])


def when_started(lib: Path, delay: float, action) -> None:
    """Run ``action`` in a thread ``delay`` s after the first marked track started."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (lib / "started").exists():
            time.sleep(0.05)
        time.sleep(delay)
        action()

    threading.Thread(target=wait_then_act, daemon=True).start()


def run_dask(db: Path, inputs: list[str], *, cores: int = 2, **kw) -> object:
    dask_kw = {k: kw.pop(k) for k in ("path_map", "window") if k in kw}
    cfg = RunConfig(db=str(db), cores=cores, queue_size=2 * cores, quiet=True, **kw)
    backend = DaskBackend(DaskConfig(workers=cores, **dask_kw), cfg.task_settings)
    return Supervisor(cfg, backend=backend, err=io.StringIO()).run(inputs)


def test_fingerprints_are_bit_identical_to_the_local_engine(tmp_path):
    h.make_library(tmp_path / "lib", n=5)
    local = Supervisor(RunConfig(db=str(tmp_path / "local"), cores=2, queue_size=4, quiet=True))
    assert local.run([str(tmp_path / "lib")]).ok == 5
    stats = run_dask(tmp_path / "dask", [str(tmp_path / "lib")])
    assert stats.ok == 5 and stats.failed == 0
    a, b = h.store_contents(tmp_path / "local").bits(), h.store_contents(tmp_path / "dask").bits()
    assert len(a) == 5 and a == b


def test_bad_and_poison_files_become_failure_records(tmp_path):
    lib = tmp_path / "lib"
    h.make_library(lib, n=5)
    (lib / "broken.flac").write_bytes(b"fLaC" + os.urandom(2048))
    sig.write_audio(lib / "segv_poison.wav", sig.sine(440.0, 1.0, 22050), 22050)
    sig.write_audio(lib / "raise_bug.wav", sig.sine(440.0, 1.0, 22050), 22050)
    stats = run_dask(tmp_path / "db", [str(lib)], worker_hook=hook, max_retries=1)
    assert stats.ok == 5 and stats.failed == 3
    contents = h.store_contents(tmp_path / "db")
    f = contents.failures_by_name()
    assert set(f) == {"broken.flac", "segv_poison.wav", "raise_bug.wav"}
    assert f["broken.flac"].kind == "decode" and "cannot decode" in f["broken.flac"].message
    assert f["raise_bug.wav"].kind == "exception" and "injected failure" in f[
        "raise_bug.wav"].message
    poison = f["segv_poison.wav"]
    assert poison.kind == "worker_died" and "attempt 2 of 2" in poison.message
    # the poison alone killed workers: twice (its first try, its retry), never a third time
    # through a track it took down with it
    assert stats.worker_deaths == 2, stats.deaths
    assert "died with it" in poison.message and "segv_poison.wav" in poison.message
    assert len(contents.fingerprints) == 5  # the healthy tracks are all stored


def _spawned_workers() -> list[psutil.Process]:
    """The LocalCluster's worker processes (the nannies spawn them from this process)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in cmd:
            out.append(p)
    return out


def test_a_worker_killed_mid_run_and_the_run_still_completes(tmp_path):
    lib = tmp_path / "lib"
    marked_library(lib)  # 16 x 0.5 s: 4 s on 2 workers
    killed: list[int] = []

    def kill_one() -> None:  # both workers busy: one task running, one queued, on each
        workers = _spawned_workers()
        if workers:
            workers[0].kill()
            killed.append(workers[0].pid)

    when_started(lib, 0.3, kill_one)
    stats = run_dask(tmp_path / "db", [str(lib)], worker_hook=hook)
    assert killed, "the test never found a worker to kill"
    assert stats.ok == 16 and stats.failed == 0
    assert stats.worker_deaths >= 1 and stats.retried >= 1, stats.deaths
    assert len(h.store_contents(tmp_path / "db").fingerprints) == 16


def test_path_map_sends_workers_to_their_own_mount(tmp_path):
    """The client scans client/; the workers are told to read mount/, which holds other audio
    under the same names: what gets stored is mount/'s audio under client/'s paths."""
    client, mount = tmp_path / "client", tmp_path / "mount"
    client.mkdir()
    mount.mkdir()
    sig.write_audio(client / "x.flac", sig.sine(220.0, 2.0, 22050), 22050)
    sig.write_audio(mount / "x.flac", sig.click_track(100, 2.0, 22050), 22050)
    run_dask(tmp_path / "db", [str(client)], path_map=PathMap.parse([f"{client}={mount}"]))
    local = Supervisor(RunConfig(db=str(tmp_path / "ref"), cores=1, queue_size=2, quiet=True))
    local.run([str(mount)])
    got, want = h.store_contents(tmp_path / "db").bits(), h.store_contents(tmp_path / "ref").bits()
    assert list(got) == [str(client / "x.flac")]
    assert got[str(client / "x.flac")] == want[str(mount / "x.flac")]
    # a map to where the workers see nothing stops the run before any track fails
    with pytest.raises(BackendError, match=r"2 of 2 workers .* cannot see"):
        run_dask(tmp_path / "db2", [str(client)],
                 path_map=PathMap.parse([f"{client}={tmp_path / 'nowhere'}"]))
    assert not h.store_contents(tmp_path / "db2").failures


def test_path_map_rules():
    pm = PathMap.parse(["/music=/mnt/music", "/music/live=/mnt/live/", "/data/=/srv"])
    assert pm.to_remote("/music/a.flac") == "/mnt/music/a.flac"
    assert pm.to_remote("/music/live/b.flac") == "/mnt/live/b.flac"  # the longest prefix wins
    assert pm.to_remote("/musicals/c.flac") == "/musicals/c.flac"  # on a folder boundary only
    assert pm.to_remote("/data/d.flac") == "/srv/d.flac"
    assert PathMap.parse(["/=/nfs/host"]).to_remote("/e/f.flac") == "/nfs/host/e/f.flac"
    for bad in ("/music", "=/x", "music=/x", "/x=y"):
        with pytest.raises(BackendError, match="--path-map"):
            PathMap.parse([bad])


def test_cli_dask_backend_and_a_cached_rerun_without_a_cluster(tmp_path):
    h.make_library(tmp_path / "lib", n=5)
    db = tmp_path / "db"
    run = [str(tmp_path / "lib"), "--db", str(db), "--backend", "dask", "--cores", "2",
           "--jsonl"]
    first = h.engine_run(*run, timeout=300)
    assert first.rc == 0, first.stderr
    assert "dask: LocalCluster of 2 worker processes" in first.stderr
    assert sorted(r["status"] for r in first.records) == ["ok"] * 5
    again = h.engine_run(*run, timeout=300)
    assert again.rc == 0, again.stderr
    assert "LocalCluster" not in again.stderr  # nothing to compute: no cluster started
    assert [r["status"] for r in again.records] == ["cached"] * 5
    bad = h.engine_run(str(tmp_path / "lib"), "--db", str(db), "--path-map", "/a=/b",
                       timeout=60)
    assert bad.rc == 2 and "--path-map is for the Dask backend" in bad.stderr
    unreachable = h.engine_run(*run[:-3], "--scheduler", "tcp://127.0.0.1:9", "--force",
                               "--connect-timeout", "2", timeout=120)
    assert unreachable.rc == 4, unreachable.stderr
    assert "cannot start or reach the cluster" in unreachable.stderr


# --------------------------------------------------------------------------------------------
# a cluster of its own: `dask scheduler` and `dask worker` processes, as on many machines


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    import signal

    for sig_ in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig_)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler (allowed-failures 0, as docs/SCALING.md says) and 2 single-threaded
    workers, each in a process group of its own; the tests' folder is importable there (the
    fault hooks)."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0",
           "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    log = open(tmp_path / "cluster.log", "w")
    scheduler = subprocess.Popen(
        [str(h.BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
         address.rsplit(":", 1)[1], "--no-dashboard"],
        env=env, stdout=log, stderr=log, start_new_session=True)
    workers = subprocess.Popen(
        [str(h.BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
         "--memory-limit", "1GiB", "--no-dashboard"],
        env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        yield address, scheduler, workers
    finally:
        _stop(workers)
        _stop(scheduler)
        log.close()


def test_scheduler_address_gives_the_local_engines_fingerprints(cluster, tmp_path):
    address, _, _ = cluster
    h.make_library(tmp_path / "lib", n=5)
    local = Supervisor(RunConfig(db=str(tmp_path / "local"), cores=2, queue_size=4, quiet=True))
    local.run([str(tmp_path / "lib")])
    run = h.engine_run(str(tmp_path / "lib"), "--db", str(tmp_path / "db"), "--scheduler",
                       address, timeout=300)
    assert run.rc == 0, run.stderr
    assert f"dask: scheduler {address}, 2 worker threads" in run.stderr
    assert h.store_contents(tmp_path / "db").bits() == h.store_contents(tmp_path / "local").bits()


def test_a_lost_scheduler_ends_the_run_with_what_completed_committed(cluster, tmp_path):
    address, scheduler, _ = cluster
    lib = tmp_path / "lib"
    marked_library(lib)
    when_started(lib, 1.2, scheduler.kill)  # a couple of tracks done on each worker
    cfg = RunConfig(db=str(tmp_path / "db"), cores=2, queue_size=4, quiet=True,
                    worker_hook=hook)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="lost the connection to tcp://"):
        backend = DaskBackend(DaskConfig(scheduler=address), cfg.task_settings)
        Supervisor(cfg, backend=backend, err=io.StringIO()).run([str(lib)])
    assert time.monotonic() - t0 < 60
    done = h.store_contents(tmp_path / "db").fingerprints
    assert 1 <= len(done) < 16  # what completed before the loss was committed


def test_a_cluster_left_without_workers_ends_the_run(cluster, tmp_path):
    import signal

    address, _, workers = cluster
    lib = tmp_path / "lib"
    marked_library(lib)
    # nannies and workers: nobody restarts them
    when_started(lib, 0.8, lambda: os.killpg(workers.pid, signal.SIGKILL))
    cfg = RunConfig(db=str(tmp_path / "db"), cores=2, queue_size=4, quiet=True,
                    worker_hook=hook)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="has had no worker for"):
        backend = DaskBackend(DaskConfig(scheduler=address, connect_timeout_s=3.0),
                              cfg.task_settings)
        Supervisor(cfg, backend=backend, err=io.StringIO()).run([str(lib)])
    assert time.monotonic() - t0 < 60
    assert not h.store_contents(tmp_path / "db").failures  # the lost tracks are not blamed


def test_a_hung_track_is_killed_by_the_watchdog_and_recorded_as_timeout(tmp_path):
    lib = tmp_path / "lib"
    h.make_library(lib, n=5)
    sig.write_audio(lib / "hang_forever.wav", sig.sine(440.0, 1.0, 22050), 22050)
    t0 = time.monotonic()
    stats = run_dask(tmp_path / "db", [str(lib)], worker_hook=hook, timeout_s=2.0,
                     max_retries=1)
    assert time.monotonic() - t0 < 90
    f = h.store_contents(tmp_path / "db").failures_by_name()
    assert list(f) == ["hang_forever.wav"] and f["hang_forever.wav"].kind == "timeout"
    assert stats.ok == 5 and stats.worker_deaths == 2  # one kill per attempt, nothing more
