"""What several test files need, defined once: the command-line tools run as processes, small
libraries of synthesised tracks, a store read back whole, what a run may leave behind
(processes, /dev/shm entries), and the analyzer run on an array.

Plain functions (the tests' folder is on ``sys.path``, as for :mod:`signals`): ``import helpers
as h``. The signals themselves are :mod:`signals`; the fault-injection hooks and their runner
are :mod:`engine_faults`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
import signals as sig

from engine import store as st
from kernels import Analyzer, Fingerprint

#: The virtual environment's scripts: engine-run, engine-query, dask.
BIN = Path(sys.executable).parent
#: This folder (engine_faults.py is run from here as a script).
TESTS = Path(__file__).resolve().parent
#: Seconds a process of an engine-run's session may outlive it before it counts as left behind
#: (multiprocessing's resource tracker sees its last user go and exits a few ms later).
LINGER_S = 3.0

# --------------------------------------------------------------------------------------------
# engine-run and engine-query as processes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One finished engine-run: exit code, --jsonl records, stderr, wall time, and the
    processes of its session still alive :data:`LINGER_S` after it exited (killed by then)."""

    rc: int
    records: list[dict[str, Any]]
    stderr: str
    seconds: float
    leftovers: list[str]


def _session_members(sid: int) -> list[str]:
    out = []
    for pid in psutil.pids():
        try:
            if os.getsid(pid) == sid:
                out.append(f"{pid} {psutil.Process(pid).name()}")
        except (OSError, psutil.Error):
            continue
    return out


def engine_run(*args: str, stdin: bytes | None = None, timeout: float = 240.0,
               preexec: list[str] | None = None) -> Run:
    """Run engine-run in a session of its own; fail the test if it hangs.

    Parameters
    ----------
    *args : str
        Arguments after ``engine-run``.
    stdin : bytes or None
        What to feed on stdin (None: /dev/null).
    timeout : float, s
        Wall-time limit; past it the whole session is killed and the test fails.
    preexec : list of str or None
        A command prefix, e.g. ``setpriv ...``.

    Returns
    -------
    Run
        ``records`` holds stdout's JSON lines (``--jsonl``; empty without it).
    """
    cmd = [*(preexec or []), str(BIN / "engine-run"), *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        pytest.fail(f"engine-run {' '.join(args)} did not finish within {timeout:g} s (hung)")
    seconds = time.monotonic() - t0
    deadline = time.monotonic() + LINGER_S
    while (leftovers := _session_members(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if leftovers:
        os.killpg(proc.pid, signal.SIGKILL)
    records = [json.loads(line) for line in out.decode("utf-8").split("\n") if line]
    return Run(proc.returncode, records, err.decode("utf-8", "replace"), seconds, leftovers)


def start_engine_run(*args: str, stdout: int = subprocess.PIPE, stderr: int = subprocess.PIPE,
                     stdin: int | None = None) -> subprocess.Popen[bytes]:
    """engine-run started and left running (to signal it, kill it, feed or read it as it
    goes)."""
    return subprocess.Popen([str(BIN / "engine-run"), *args], stdin=stdin, stdout=stdout,
                            stderr=stderr)


def start_fault_runner(db: Path, library: Path, *extra: str, stdout: int = subprocess.PIPE,
                       stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """engine-run with the fault hooks of :mod:`engine_faults` in its workers, in a process
    of its own (``extra``: ``--grace S``, ``--timeout S``, ``--cores N``)."""
    return subprocess.Popen([sys.executable, str(TESTS / "engine_faults.py"), str(db),
                             str(library), *extra], stdout=stdout, stderr=stderr)


def engine_query(db: Path, *args: str, timeout: float = 120, text: bool = True,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[Any]:
    """``engine-query --db DB ARGS...``, run to its end (its exit code is not checked)."""
    return subprocess.run([str(BIN / "engine-query"), "--db", str(db), *args],
                          capture_output=True, timeout=timeout, check=False, text=text, env=env)


# --------------------------------------------------------------------------------------------
# libraries of synthesised tracks
# --------------------------------------------------------------------------------------------

#: (extension, sample rate) of :func:`make_library`'s tracks, in turn.
FORMATS = [("wav", 44100), ("flac", 48000), ("ogg", 44100), ("mp3", 44100), ("flac", 22050)]


def make_library(root: Path, n: int = 30, seconds: float = 3.0) -> list[Path]:
    """``n`` stereo tracks of different content (clicks, chords, noise, music-like) in mixed
    formats and rates, in three album folders under ``root``; the same files every time."""
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


def write_tracks(root: Path, names: list[str], seconds: float = 1.0,
                 sr: int = 22050) -> list[Path]:
    """One mono sine WAV per name in ``root`` (the names pick the fault hooks: ``slow*``,
    ``mark*``, ``segv*`` ..., see :mod:`engine_faults`)."""
    root.mkdir(parents=True, exist_ok=True)
    return [sig.write_audio(root / name, sig.sine(110.0 * (1 + i % 7), seconds, sr), sr)
            for i, name in enumerate(names)]


# --------------------------------------------------------------------------------------------
# a store read back
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreContents:
    """Everything a store holds, by path."""

    fingerprints: dict[str, tuple[float, ...]]  # path -> the 25 values
    failures: dict[str, st.FailureRecord]  # path -> its failure record
    stats: dict[str, Any]  # Store.stats()

    def failures_by_name(self) -> dict[str, st.FailureRecord]:
        """File name (no folder) -> failure record."""
        return {Path(p).name: f for p, f in self.failures.items()}

    def bits(self) -> dict[str, bytes]:
        """Path -> the values' float64 bytes (equal means bit for bit, -0.0 != 0.0 too)."""
        return {p: np.asarray(v, dtype=np.float64).tobytes()
                for p, v in self.fingerprints.items()}


def store_contents(db: Path) -> StoreContents:
    """Read a store whole, asserting that it is coherent: one id per path, every fingerprint
    belongs to a catalogued track and holds 25 finite values, and no path has both a
    fingerprint and a failure."""
    fps: dict[str, tuple[float, ...]] = {}
    fails: dict[str, st.FailureRecord] = {}
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        tracks = {t.track_id: t for t in s.iter_tracks()}
        assert len({t.path for t in tracks.values()}) == len(tracks)  # one id per path
        for t, fp in s.iter_fingerprints():
            assert tracks[t.track_id] == t
            assert len(fp.values) == 25 and np.all(np.isfinite(fp.values))
            fps[t.path] = tuple(fp.values)
        for f in s.iter_failures():
            fails[f.path] = f
        stats = dict(s.stats())
    assert not set(fps) & set(fails)  # never both
    return StoreContents(fps, fails, stats)


# --------------------------------------------------------------------------------------------
# what a run may leave behind
# --------------------------------------------------------------------------------------------


def shm_entries() -> set[str]:
    """The names in /dev/shm (shared memory, named semaphores): compare before and after."""
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def engine_processes(marker: str) -> list[psutil.Process]:
    """Processes other than this one whose command line holds ``marker`` (a run's --db)."""
    out = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if marker in cmd and p.pid != os.getpid():
            out.append(p)
    return out


def wait_for_no_engine_processes(marker: str, timeout: float = 10.0) -> list[psutil.Process]:
    """:func:`engine_processes` once they had ``timeout`` seconds to leave ([] if they did)."""
    deadline = time.monotonic() + timeout
    while (left := engine_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


# --------------------------------------------------------------------------------------------
# the analyzer on an array
# --------------------------------------------------------------------------------------------


def analyse(x: np.ndarray, sr: int, blocks: Iterable[int] | None = None) -> Fingerprint:
    """The fingerprint of ``x`` (frames x channels), fed whole, or in ``blocks`` of these
    sizes followed by the rest."""
    a = Analyzer(sr, x.shape[1])
    if blocks is None:
        a.feed(x)
    else:
        i = 0
        for n in blocks:
            a.feed(x[i : i + n])
            i += n
        a.feed(x[i:])
    return a.finish()
