"""engine-run in shell pipelines: a reader that leaves early, and the memory figure it shows."""

from __future__ import annotations

import json
import multiprocessing as mp

import helpers as h
import numpy as np
import psutil

from engine.run.report import memory_mb


def test_a_reader_that_leaves_stops_the_run_quietly_with_exit_141(tmp_path):
    """``engine-run --jsonl LIB | head -1``: records go out once a second, after their commit;
    40 tracks that take 0.5 s each (the ``slow`` fault hook, engine-run's own main) keep the
    run going when the reader leaves after its first line. The run must stop feeding, commit
    what completed, say nothing and exit 141 (it exited 1, "some tracks failed", without a
    word); a rerun completes the rest."""
    lib, db = tmp_path / "lib", tmp_path / "db"
    h.write_tracks(lib, [f"slow{i:02d}.wav" for i in range(40)], seconds=0.5)
    proc = h.start_fault_runner(db, lib, "--cores", "2")
    assert proc.stdout is not None and proc.stderr is not None
    first = json.loads(proc.stdout.readline())
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode(errors="replace")
    code = proc.wait(timeout=120)
    if code != 141:
        raise AssertionError(f"exit {code}, stderr:\n{err}")
    assert err == ""  # no "Broken pipe", no traceback
    stored = set(h.store_contents(db).fingerprints)
    assert first["path"] in stored  # what was printed is in the store
    assert len(stored) < 40  # it stopped early
    again = h.engine_run("--db", str(db), "--cores", "2", "-q", "--jsonl", str(lib))
    assert again.rc == 0
    statuses = [rec["status"] for rec in again.records]
    assert len(statuses) == 40
    assert statuses.count("cached") == len(stored)


def _sleep_then_exit(conn) -> None:
    conn.recv()


def test_memory_counts_pages_shared_with_forked_workers_once():
    """The progress bar's figure is a sum of PSS: a forked child that shares this process's
    pages adds far less than its RSS (which counts every shared page again)."""
    ballast = np.ones(64 * 2**20 // 8)  # 64 MB of pages the child shares, untouched
    parent_end, child_end = mp.get_context("fork").Pipe()
    child = mp.get_context("fork").Process(target=_sleep_then_exit, args=(child_end,))
    child.start()
    try:
        alone = memory_mb([])
        both = memory_mb([child.pid])
        rss_sum = (psutil.Process().memory_info().rss
                   + psutil.Process(child.pid).memory_info().rss) / 2**20
        # the child's RSS includes the 64 MB ballast; its PSS share of it is half at most
        assert both - alone < psutil.Process(child.pid).memory_info().rss / 2**20 - 20
        assert both < rss_sum - 20
        assert both >= alone
    finally:
        parent_end.send(None)
        child.join(timeout=10)
    del ballast  # alive until here: its pages are what the child shares
