"""engine-query against hostile input: nothing stale, nothing clobbered, no traceback.

Every test runs the real command line (``engine-query`` processes) on a real store that a real
``engine-run`` made from short WAV files synthesised here: output files that are device nodes,
FIFOs, sockets, symbolic links, folders, or in folders that are missing or read-only; paths with
CR, LF, commas and quotes; track ids past any id; absurd weights; tracks whose fingerprints
were evicted; and the odd values of the numeric options.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers as h
import numpy as np
import pytest
import soundfile as sf

from engine import store as st
from engine.errors import QueryError
from engine.query import similarity
from engine.query.similarity import Library, parse_weights
from kernels import FINGERPRINT_NAMES

SR = 22050
SECONDS = 1.5
#: A file name no CSV or M3U line can hold unquoted: CR, LF, a comma and a double quote.
HOSTILE_NAME = 'cr\rlf\n,comma "quote".wav'
#: A bare CR and nothing else a CSV writer quotes by default.
BARE_CR_NAME = "bare\rcr.wav"
#: More digits than any track id (ids are below 2**64 = 18446744073709551616).
HUGE_ID = "99999999999999999999999999"
#: The largest weight --weight accepts (docs/QUERY.md says why).
MAX_WEIGHT = 1000.0


# --------------------------------------------------------------------------------------------
# tiny helpers


def _write_wavs(folder: Path, names: list[str]) -> list[Path]:
    """One short mono WAV per name, each a different tone and tremolo (distinct fingerprints)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(SECONDS * SR)) / SR
    paths = []
    for i, name in enumerate(names):
        x = 0.3 * np.sin(2 * np.pi * 110.0 * (i + 1) * t) * (1.0 + 0.5 * np.sin(2 * np.pi * (i + 1)
                                                                                  * t))
        if i % 2:
            x += 0.05 * np.random.default_rng(i).standard_normal(t.size)
        p = folder / name
        sf.write(p, x.astype(np.float32), SR, subtype="PCM_16", format="WAV")
        paths.append(p)
    return paths


def _ids(db: Path, paths: list[Path]) -> dict[Path, int]:
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        found = {p: s.lookup(os.path.abspath(p))[0] for p in paths}
    assert all(t is not None for t in found.values()), found
    return {p: t.track_id for p, t in found.items() if t is not None}


def _query(db: Path, *args: str, umask: int | None = None,
           prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """engine-query as a process, optionally under a umask or a command prefix (setpriv)."""
    cmd = [*(prefix or []), str(h.BIN / "engine-query"), "--db", str(db), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False,
                          preexec_fn=None if umask is None else (lambda: os.umask(umask)))


def _clean_failure(proc: subprocess.CompletedProcess[str], rc: int = 2) -> None:
    """The process failed the way a user should see: the exit code, a one-line reason."""
    assert proc.returncode == rc, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("engine-query: ") or "usage:" in proc.stderr, proc.stderr


def _no_temporaries(folder: Path) -> None:
    left = [n for n in os.listdir(folder) if n.startswith(".engine-query-") or n.startswith("tmp")]
    assert left == [], f"temporary files left in {folder}: {left}"


def _mknod(path: Path, kind: int, major: int, minor: int) -> None:
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except (OSError, AttributeError) as exc:
        pytest.skip(f"cannot make a device node here ({exc}): needs root and mknod")


@contextlib.contextmanager
def _fifo_reader(path: Path) -> Iterator[list[bytes]]:
    """A thread reading the FIFO at ``path`` to its end; yields the list it appends to. If
    nobody ever opens the FIFO for writing, the thread is released on the way out."""
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as f:
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    try:
        yield got
    finally:
        t.join(timeout=30)
        if t.is_alive():  # still waiting in open(): give it a writer that writes nothing
            with contextlib.suppress(OSError):
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            t.join(timeout=10)


def _umask_default(umask: int) -> int:
    return 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# stores


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> dict[str, Any]:
    """Seven tracks, two with :data:`BARE_CR_NAME` and :data:`HOSTILE_NAME`, in a store made
    by engine-run."""
    root = tmp_path_factory.mktemp("hostile")
    paths = _write_wavs(root / "lib", [f"t{i}.wav" for i in range(4)]
                        + ["café.wav", BARE_CR_NAME, HOSTILE_NAME])
    db = root / "db"
    run = h.engine_run(str(root / "lib"), "--db", str(db), "--cores", "2", "-q", timeout=300)
    assert run.rc == 0, run.stderr
    ids = _ids(db, paths)
    return {"root": root, "db": db, "paths": paths, "ids": ids,
            "hostile": paths[-1], "bare_cr": paths[-2]}


@pytest.fixture(scope="module")
def evicted(tmp_path_factory) -> dict[str, Any]:
    """Five tracks in a store bounded to 2 fingerprints: three were evicted."""
    root = tmp_path_factory.mktemp("evicted")
    paths = _write_wavs(root / "lib", [f"e{i}.wav" for i in range(5)])
    db = root / "db"
    run = h.engine_run(str(root / "lib"), "--db", str(db), "--cores", "2", "-q",
                       "--max-entries", "2", timeout=300)
    assert run.rc == 0, run.stderr
    ids = _ids(db, paths)
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        gone = [p for p, tid in ids.items() if s.get_fingerprint(tid) is None]
    assert len(gone) == 3, gone
    return {"root": root, "db": db, "ids": ids, "gone": gone}


def _out(tmp_path: Path) -> Path:
    """A folder for outputs (not the store's)."""
    d = tmp_path / "out"
    d.mkdir(exist_ok=True)
    return d


# --------------------------------------------------------------------------------------------
# 1. -o FILE: nothing clobbered

#: Every command with -o: its arguments before -o, and the file name extension it wants.
OUTPUTS = {
    "export-jsonl": (["export"], ".jsonl"),
    "export-csv": (["export", "--format", "csv"], ".csv"),
    "export-npy": (["export", "--format", "npy"], ".npy"),
    "playlist": (["playlist", "1", "-n", "3"], ".m3u"),
    "plot": (["plot", "1"], ".png"),
    "map": (["map"], ".png"),
}


def _needs(command: str) -> None:
    if command in ("plot", "map"):
        pytest.importorskip("matplotlib")


@pytest.mark.parametrize("command", list(OUTPUTS))
def test_every_output_writes_through_links_and_keeps_modes(lib, tmp_path, command):
    _needs(command)
    args, ext = OUTPUTS[command]
    out = _out(tmp_path)
    # a link to a regular file: the file gets the output and keeps its mode, the link stays
    target = out / f"real{ext}"
    target.write_bytes(b"old")
    target.chmod(0o640)
    link = out / f"link{ext}"
    link.symlink_to(target.name)
    proc = _query(lib["db"], *args, "-o", str(link))
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == target.name
    assert target.read_bytes() not in (b"old", b"")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    # a new file gets 0666 & ~umask, as open() would give it
    for umask in (0o027, 0o002):
        new = out / f"new{umask:o}{ext}"
        proc = _query(lib["db"], *args, "-o", str(new), umask=umask)
        assert proc.returncode == 0, proc.stderr
        assert stat.S_IMODE(new.stat().st_mode) == _umask_default(umask), oct(new.stat().st_mode)
        if command == "export-npy":
            side = out / f"new{umask:o}.tracks.csv"
            assert stat.S_IMODE(side.stat().st_mode) == _umask_default(umask)
    # a replaced regular file keeps its mode
    keep = out / f"keep{ext}"
    keep.write_bytes(b"old")
    keep.chmod(0o604)
    assert _query(lib["db"], *args, "-o", str(keep)).returncode == 0
    assert stat.S_IMODE(keep.stat().st_mode) == 0o604 and keep.read_bytes() != b"old"
    # a link to a path that does not exist yet, in an existing folder: created there
    later = out / "sub"
    later.mkdir()
    dangling = out / f"dangling{ext}"
    dangling.symlink_to(later / f"made{ext}")
    assert _query(lib["db"], *args, "-o", str(dangling)).returncode == 0
    assert dangling.is_symlink() and (later / f"made{ext}").stat().st_size > 0
    _no_temporaries(out)
    _no_temporaries(later)


@pytest.mark.parametrize("command", list(OUTPUTS))
def test_every_output_onto_a_device_node_keeps_the_node(lib, tmp_path, command):
    """A character device is written to (like a shell's > /dev/null), never replaced."""
    _needs(command)
    args, ext = OUTPUTS[command]
    out = _out(tmp_path)
    node = out / f"null{ext}"
    _mknod(node, stat.S_IFCHR, 1, 3)  # what /dev/null is
    before = node.lstat()
    proc = _query(lib["db"], *args, "-o", str(node))
    assert proc.returncode == 0, proc.stderr
    after = node.lstat()
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    _no_temporaries(out)


def test_a_full_device_is_an_error_naming_it_and_stays(lib, tmp_path):
    out = _out(tmp_path)
    full = out / "full"
    _mknod(full, stat.S_IFCHR, 1, 7)  # what /dev/full is: every write fails with ENOSPC
    proc = _query(lib["db"], "export", "-o", str(full))
    _clean_failure(proc)
    assert str(full) in proc.stderr and "No space left on device" in proc.stderr
    assert stat.S_ISCHR(full.lstat().st_mode) and full.lstat().st_rdev == os.makedev(1, 7)


def test_a_fifo_gets_the_output_and_stays_a_fifo(lib, tmp_path):
    out = _out(tmp_path)
    fifo = out / "pipe"
    os.mkfifo(fifo)
    with _fifo_reader(fifo) as got:
        proc = _query(lib["db"], "export", "-o", str(fifo))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    recs = [json.loads(line) for line in got[0].decode().splitlines()]
    assert {r["track_id"] for r in recs} == set(lib["ids"].values())
    _no_temporaries(out)


def test_an_open_descriptor_is_written_to_and_appended_to(lib, tmp_path):
    """-o /proc/self/fd/N (what /dev/stdout links to) writes to the descriptor the caller
    gave, appending: ``-o /dev/stdout >> log`` keeps the log's lines, and its inode."""
    out = _out(tmp_path)
    log = out / "log.jsonl"
    log.write_text("first\n")
    inode = log.stat().st_ino
    with open(log, "a") as f:
        proc = subprocess.run([str(h.BIN / "engine-query"), "--db", str(lib["db"]), "export",
                               "-o", f"/proc/self/fd/{f.fileno()}"], pass_fds=(f.fileno(),),
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "first" and len(lines) == 1 + len(lib["paths"])
    assert log.stat().st_ino == inode
    _no_temporaries(out)


def test_folders_sockets_and_block_devices_are_refused(lib, tmp_path):
    out = _out(tmp_path)
    folder = out / "folder"
    folder.mkdir()
    (folder / "inside").write_text("keep")
    sock_path = out / "sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))
        cases = {folder: "folder", sock_path: "socket"}
        block = out / "block"
        registered = Path("/proc/devices").read_text().split("Block devices:")[-1].split()
        free = next((m for m in range(240, 255) if str(m) not in registered), None)
        if free is not None:
            with contextlib.suppress(OSError):
                os.mknod(block, stat.S_IFBLK | 0o600, os.makedev(free, 0))
                cases[block] = "block device"
        for path, why in cases.items():
            for args in (["export"], ["export", "--format", "csv"], ["playlist", "1"]):
                before = path.lstat()
                proc = _query(lib["db"], *args, "-o", str(path))
                _clean_failure(proc)
                assert str(path) in proc.stderr and why in proc.stderr, proc.stderr
                after = path.lstat()
                assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
        proc = _query(lib["db"], "export", "--format", "npy", "-o", str(folder))
        _clean_failure(proc)
        assert "folder" in proc.stderr
    assert (folder / "inside").read_text() == "keep" and os.listdir(folder) == ["inside"]
    _no_temporaries(out)


def test_missing_folders_loops_and_empty_names_are_usage_errors(lib, tmp_path):
    out = _out(tmp_path)
    loop = out / "loop"
    loop.symlink_to("loop")
    far = out / "far"
    far.symlink_to(out / "no" / "such" / "x.csv")
    (out / "same.tracks.csv").symlink_to("same.npy")  # the sidecar would be the matrix
    cases = [
        (["export", "-o", str(out / "missing" / "x.jsonl")], str(out / "missing")),
        (["export", "--format", "npy", "-o", str(out / "missing" / "x.npy")],
         str(out / "missing")),
        (["playlist", "1", "-o", str(out / "missing" / "x.m3u")], str(out / "missing")),
        (["export", "-o", str(loop)], str(loop)),
        (["export", "-o", str(far)], str(out / "no" / "such")),
        (["export", "-o", ""], "-o ''"),
        (["export", "-o", str(out / "newfolder") + "/"], "folder"),
        (["export", "-o", str(lib["db"] / "data.mdb")], "store"),
        (["export", "--format", "npy", "-o", str(out / "same.npy")], "its own sidecar"),
    ]
    # a path through a regular file ("Not a directory")
    cases.append((["export", "-o", str(lib["paths"][0]) + "/x.csv"], str(lib["paths"][0])))
    if importable("matplotlib"):
        cases += [(["plot", "1", "-o", str(out / "missing" / "x.png")], str(out / "missing")),
                  (["map", "-o", str(out / "missing" / "x.png")], str(out / "missing"))]
    for args, named in cases:
        proc = _query(lib["db"], *args)
        _clean_failure(proc)
        assert named in proc.stderr, (args, proc.stderr)
        # the message names what the user gave, not a temporary file of ours
        assert ".engine-query-" not in proc.stderr, proc.stderr
        assert not re.search(r"/tmp[a-z0-9_]{8}\b", proc.stderr), proc.stderr
    assert loop.is_symlink() and far.is_symlink() and not (out / "newfolder").exists()
    assert (lib["db"] / "data.mdb").stat().st_size > 0
    assert _query(lib["db"], "stats").returncode == 0  # the store is intact
    _no_temporaries(out)


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _unprivileged() -> list[str]:
    """``setpriv`` dropping root's power to write anywhere, or skip."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to see a read-only folder as root cannot")
    caps = "-dac_override,-dac_read_search"
    prefix = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr[:200]!r}")
    return prefix


def test_a_read_only_folder_is_a_usage_error_and_keeps_its_file(lib, tmp_path):
    prefix = _unprivileged()
    out = _out(tmp_path)
    kept = out / "kept.csv"
    kept.write_text("precious")
    kept.chmod(0o666)
    out.chmod(0o555)
    try:
        for args in (["export", "--format", "csv", "-o", str(kept)],
                     ["export", "--format", "npy", "-o", str(out / "m.npy")],
                     ["playlist", "1", "-o", str(out / "p.m3u")]):
            proc = _query(lib["db"], *args, prefix=prefix)
            _clean_failure(proc)
            assert str(out) in proc.stderr and "Permission denied" in proc.stderr, proc.stderr
        assert kept.read_text() == "precious" and sorted(os.listdir(out)) == ["kept.csv"]
    finally:
        out.chmod(0o755)


def test_sigint_while_waiting_on_a_fifo_exits_130_without_traceback(lib, tmp_path):
    out = _out(tmp_path)
    fifo = out / "nobody-reads"
    os.mkfifo(fifo)
    proc = subprocess.Popen([str(h.BIN / "engine-query"), "--db", str(lib["db"]), "export",
                             "-o", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        wchan = Path(f"/proc/{proc.pid}/wchan")
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError):
                if "fifo" in wchan.read_text():
                    break
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _out_text, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and stat.S_ISFIFO(fifo.lstat().st_mode)
    _no_temporaries(out)


# --------------------------------------------------------------------------------------------
# 2. CR, LF, commas and quotes in a path


def test_csv_exports_quote_cr_and_lf_and_read_back_exactly(lib, tmp_path):
    hostile = str(lib["hostile"])
    assert "\r" in hostile and "\n" in hostile and "," in hostile and '"' in hostile
    out = _out(tmp_path)
    proc = _query(lib["db"], "export", "--format", "csv", "-o", str(out / "x.csv"))
    assert proc.returncode == 0, proc.stderr
    with open(out / "x.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["track_id", "path"]
    assert all(len(r) == len(rows[0]) for r in rows), [len(r) for r in rows]
    assert {r[1] for r in rows[1:]} == {str(p) for p in lib["paths"]}
    by_id = {int(r[0]): r[1] for r in rows[1:]}
    assert by_id[lib["ids"][lib["hostile"]]] == hostile
    assert by_id[lib["ids"][lib["bare_cr"]]] == str(lib["bare_cr"])
    # the same on stdout
    proc = subprocess.run([str(h.BIN / "engine-query"), "--db", str(lib["db"]), "export",
                           "--format", "csv"], capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout.decode("utf-8"), newline="")))
    assert {r[1] for r in rows[1:]} == {str(p) for p in lib["paths"]}
    assert all(len(r) == len(rows[0]) for r in rows)
    # and the sidecar of the npy export
    proc = _query(lib["db"], "export", "--format", "npy", "-o", str(out / "m.npy"))
    assert proc.returncode == 0, proc.stderr
    with open(out / "m.tracks.csv", newline="", encoding="utf-8") as f:
        side = list(csv.reader(f))
    assert side[0] == ["row", "track_id", "path"] and all(len(r) == 3 for r in side)
    m = np.load(out / "m.npy")
    assert m.shape == (len(lib["paths"]), len(FINGERPRINT_NAMES))
    assert {r[2] for r in side[1:]} == {str(p) for p in lib["paths"]}
    assert [int(r[0]) for r in side[1:]] == list(range(len(side) - 1))


# --------------------------------------------------------------------------------------------
# 3. track ids out of range


def test_track_ids_out_of_range_are_usage_errors_without_store_internals(lib, tmp_path):
    out = _out(tmp_path)
    top = max(lib["ids"].values())
    plots = importable("matplotlib")
    for bad in (HUGE_ID, "18446744073709551616", str(top + 1), "0", "0" * 5000 + "1" * 30):
        cases = [["show", bad], ["similar", bad], ["playlist", bad],
                 ["playlist", "1", "--to", bad]]
        if plots:
            cases += [["plot", bad, "-o", str(out / "p.png")],
                      ["map", "-o", str(out / "m.png"), "--highlight", bad]]
        for args in cases:
            proc = _query(lib["db"], *args)
            _clean_failure(proc)
            assert "no track with id" in proc.stderr, (args, proc.stderr)
            assert f"1 to {top}" in proc.stderr, (args, proc.stderr)
            assert "Store." not in proc.stderr and "new_track_id" not in proc.stderr
            assert len(proc.stderr) < 1000, proc.stderr[:300]
    assert not (out / "p.png").exists() and not (out / "m.png").exists()


def test_digits_that_are_not_ascii_are_not_track_ids(lib):
    for weird in ("²", "١", "½", "1 ", " 1"):
        proc = _query(lib["db"], "show", weird)
        _clean_failure(proc)
        assert "no track at" in proc.stderr, proc.stderr
    # leading zeros are still the id
    first = min(lib["ids"].values())
    proc = _query(lib["db"], "show", f"000{first}", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["track_id"] == first


# --------------------------------------------------------------------------------------------
# 4. weights


def test_absurd_weights_are_usage_errors_naming_value_and_range(lib):
    assert getattr(similarity, "MAX_WEIGHT", None) == MAX_WEIGHT
    huge = [x for n in FINGERPRINT_NAMES for x in ("--weight", f"{n}=1e308")]
    proc = _query(lib["db"], "similar", "1", *huge)
    _clean_failure(proc)
    assert "1e308" in proc.stderr and f"0 to {MAX_WEIGHT:g}" in proc.stderr, proc.stderr
    for bad in ("inf", "-inf", "nan", "-1", "1001", "1e400", "0x10", ""):
        for command in (["similar", "1"], ["playlist", "1"], ["duplicates"]):
            proc = _query(lib["db"], *command, "--weight", f"lufs={bad}")
            _clean_failure(proc)
            assert f"lufs={bad}" in proc.stderr and f"0 to {MAX_WEIGHT:g}" in proc.stderr, (
                bad, proc.stderr)
    zeros = [x for n in FINGERPRINT_NAMES for x in ("--weight", f"{n}=0")]
    proc = _query(lib["db"], "similar", "1", *zeros)
    _clean_failure(proc)
    assert "every weight is 0" in proc.stderr


def test_weights_at_the_maximum_give_finite_distances(lib):
    at_max = [x for n in FINGERPRINT_NAMES for x in ("--weight", f"{n}={MAX_WEIGHT:g}")]
    ones = [x for n in FINGERPRINT_NAMES for x in ("--weight", f"{n}=1")]
    got = {}
    for name, w in (("max", at_max), ("ones", ones)):
        proc = _query(lib["db"], "similar", "1", "--jsonl", *w)
        assert proc.returncode == 0, proc.stderr
        got[name] = [json.loads(line) for line in proc.stdout.splitlines()]
        assert len(got[name]) == len(lib["paths"]) - 1
        assert all(np.isfinite(r["distance"]) and r["distance"] > 0 for r in got[name])
    # only the ratios of the weights count
    assert [r["distance"] for r in got["max"]] == [r["distance"] for r in got["ones"]]
    table = _query(lib["db"], "similar", "1", *at_max)
    assert table.returncode == 0 and "(no other track)" not in table.stdout
    assert "nan" not in table.stdout and "inf" not in table.stdout
    for command in (["playlist", "1", "--jsonl"], ["duplicates", "--jsonl",
                                                   "--max-distance", "1e300"]):
        proc = _query(lib["db"], *command, *at_max)
        assert proc.returncode == 0, proc.stderr
        for line in proc.stdout.splitlines():
            rec = json.loads(line)
            assert all(np.isfinite(rec[k]) for k in ("distance", "step_distance") if k in rec)


def test_distances_stay_finite_for_any_weights_parse_weights_allows(lib):
    with st.Store.open(st.StoreConfig(lib["db"]), readonly=True) as s:
        library = Library.load(s, cache=False)
    z = library.z
    extremes = [parse_weights([f"{n}={MAX_WEIGHT:g}" for n in FINGERPRINT_NAMES]),
                parse_weights([f"{n}=0" for n in FINGERPRINT_NAMES[1:]]
                              + [f"{FINGERPRINT_NAMES[0]}=1e-320"]),
                parse_weights([f"{n}=1e-300" for n in FINGERPRINT_NAMES[1:]]
                              + [f"{FINGERPRINT_NAMES[0]}={MAX_WEIGHT:g}"])]
    far = np.full(25, 8.0)  # as far from every row as the clipping allows
    for w in extremes:
        for q in (z[0], -far, far):
            d = library.distances(np.ascontiguousarray(q), w)
            assert np.isfinite(d).all(), (w, d)
        assert np.isfinite(library.distance(0, 1, w))
    with pytest.raises(QueryError, match="0 to 1000"):
        parse_weights(["lufs=1e308"])


def test_duplicates_with_huge_thresholds_answer(lib):
    for args in (["--max-distance", "1e200"], ["--max-distance", "1e308"],
                 ["--duration-tolerance", "1e300"]):
        proc = _query(lib["db"], "duplicates", *args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    for args in (["--max-distance", "inf"], ["--max-distance", "-0.1"],
                 ["--duration-tolerance", "nan"]):
        _clean_failure(_query(lib["db"], "duplicates", *args))


# --------------------------------------------------------------------------------------------
# 5. an evicted or stale track, by id or by path


def test_an_evicted_track_by_id_is_fingerprinted_like_its_path(evicted):
    db = evicted["db"]
    for path in evicted["gone"]:
        tid = evicted["ids"][path]
        by_id = _query(db, "similar", str(tid), "--jsonl")
        by_path = _query(db, "similar", str(path), "--jsonl")
        assert by_id.returncode == 0, by_id.stderr
        assert by_path.returncode == 0, by_path.stderr
        assert by_id.stdout == by_path.stdout and by_id.stdout.count("\n") == 2
        table_id = _query(db, "similar", str(tid))
        table_path = _query(db, "similar", str(path))
        assert table_id.returncode == 0 and "fingerprinted now" in table_id.stdout
        untimed = [re.sub(r"in \d+\.\d s", "", p.stdout) for p in (table_id, table_path)]
        assert untimed[0] == untimed[1]
        assert "evicted" in table_id.stdout.splitlines()[0]
    if importable("matplotlib"):
        png = evicted["root"] / "e.png"
        proc = _query(db, "plot", str(evicted["ids"][evicted["gone"][0]]), "-o", str(png))
        assert proc.returncode == 0 and png.stat().st_size > 0, proc.stderr
    # show has no values to show for it, by id or by path: the same usage error
    tid = evicted["ids"][evicted["gone"][0]]
    for ref in (str(tid), str(evicted["gone"][0])):
        proc = _query(db, "show", ref)
        _clean_failure(proc)
        assert "no fingerprint" in proc.stderr


def test_an_evicted_track_whose_file_is_gone_is_a_usage_error(tmp_path):
    paths = _write_wavs(tmp_path / "lib", ["a.wav", "b.wav", "c.wav"])
    db = tmp_path / "db"
    run = h.engine_run(str(tmp_path / "lib"), "--db", str(db), "-q", "--max-entries", "1",
                       timeout=300)
    assert run.rc == 0, run.stderr
    ids = _ids(db, paths)
    with st.Store.open(st.StoreConfig(db), readonly=True) as s:
        gone = [p for p in paths if s.get_fingerprint(ids[p]) is None]
    assert len(gone) == 2
    gone[0].unlink()
    for ref in (str(ids[gone[0]]), str(gone[0])):
        proc = _query(db, "similar", ref)
        _clean_failure(proc)
        assert str(gone[0]) in proc.stderr and "file is gone" in proc.stderr, proc.stderr
    proc = _query(db, "similar", str(ids[gone[1]]))
    assert proc.returncode == 0 and "fingerprinted now" in proc.stdout, proc.stderr


def test_a_stale_track_by_id_is_fingerprinted_now(tmp_path):
    paths = _write_wavs(tmp_path / "lib", ["s0.wav", "s1.wav", "s2.wav"])
    db = tmp_path / "db"
    run = h.engine_run(str(tmp_path / "lib"), "--db", str(db), "-q", timeout=300)
    assert run.rc == 0, run.stderr
    ids = _ids(db, paths)
    with st.Store.open(st.StoreConfig(db)) as w:  # make s0's fingerprint an older version
        fp = w.get_fingerprint(ids[paths[0]])
        assert fp is not None
        w.commit([st.PutFingerprint(st.FingerprintRecord(
            fp.track_id, 0, fp.values, fp.duration_s, fp.sample_rate, fp.channels,
            fp.decode_s, fp.analysis_s))])
    for ref in (str(ids[paths[0]]), str(paths[0])):
        proc = _query(db, "similar", ref)
        assert proc.returncode == 0, proc.stderr
        assert "fingerprinted now" in proc.stdout and "version 0" in proc.stdout


# --------------------------------------------------------------------------------------------
# 6. odd values of the other options


def test_odd_numbers_and_names_have_clean_errors(lib):
    cases = [
        ["similar", "1", "-k", "0"], ["similar", "1", "-k", "-3"], ["similar", "1", "-k", "x"],
        ["similar", "1", "-k", "1e3"], ["similar", "1", "-k", "-" + "9" * 5000],
        ["playlist", "1", "-n", "0"], ["playlist", "1", "-n", "²"],
        ["duplicates", "--max-distance", "x"],
        ["map", "-o", str(lib["root"] / "x.png"), "--color", ""],
        ["show", ""], ["similar", str(lib["root"] / "lib")], ["similar", "/dev/null"],
        ["export", "--format", "npy"],
    ]
    for args in cases:
        proc = _query(lib["db"], *args)
        _clean_failure(proc)
        assert len(proc.stderr) < 3000, (args, proc.stderr[:300])
    proc = _query(lib["db"], "similar", str(lib["root"] / "lib"))
    assert "folder" in proc.stderr, proc.stderr
    proc = _query(lib["db"], "similar", "/dev/null")
    assert "not a regular file" in proc.stderr, proc.stderr
    # huge counts are not errors: there are only so many tracks
    for k in (HUGE_ID, "9" * 5000):
        proc = _query(lib["db"], "similar", "1", "-k", k, "--jsonl")
        assert proc.returncode == 0 and len(proc.stdout.splitlines()) == len(lib["paths"]) - 1
    proc = _query(lib["db"], "playlist", "1", "-n", HUGE_ID, "--jsonl", "--allow-duplicates")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == len(lib["paths"])


def test_stdout_closed_full_or_of_another_encoding_is_a_clean_error(lib, tmp_path):
    cmd = [str(h.BIN / "engine-query"), "--db", str(lib["db"])]
    closed = subprocess.run([*cmd, "export"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, timeout=120, check=False,
                            preexec_fn=lambda: os.close(1))
    _clean_failure(closed)
    assert "stdout" in closed.stderr and "closed" in closed.stderr, closed.stderr
    full = tmp_path / "full"
    _mknod(full, stat.S_IFCHR, 1, 7)
    for args in (["stats"], ["show", "1"], ["export", "--format", "csv"]):
        with open(full, "w") as sink:
            proc = subprocess.run([*cmd, *args], stdout=sink, stderr=subprocess.PIPE, text=True,
                                  timeout=120, check=False)
        _clean_failure(proc)
        assert "No space left on device" in proc.stderr, proc.stderr
    accented = next(p for p in lib["paths"] if not p.name.isascii())
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    for args in (["show", str(accented)], ["export", "--format", "csv"], ["export"]):
        proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120,
                              check=False, env=env)
        _clean_failure(proc)
        assert "PYTHONIOENCODING=utf-8" in proc.stderr, proc.stderr


def test_an_image_format_matplotlib_cannot_write_here_is_a_usage_error(lib, tmp_path):
    pytest.importorskip("matplotlib")
    if shutil.which("xelatex") is not None:
        pytest.skip("xelatex is installed: matplotlib can write .pgf here")
    out = _out(tmp_path)
    keep = out / "x.pgf"
    keep.write_text("old")
    proc = _query(lib["db"], "plot", "1", "-o", str(keep))
    _clean_failure(proc)
    assert "xelatex" in proc.stderr and keep.read_text() == "old"
    _no_temporaries(out)


if __name__ == "__main__":  # pragma: no cover - run this file alone
    sys.exit(pytest.main([__file__, "-q"]))


def test_a_planted_query_cache_link_is_never_written_or_read_through(tmp_path):
    """DB/query-cache as a symbolic link to another folder once made engine-query write its
    cache there and delete every library-*.npz it found in it."""
    root = tmp_path
    paths = _write_wavs(root / "lib", [f"c{i}.wav" for i in range(3)])
    db = root / "db"
    assert h.engine_run(str(root / "lib"), "--db", str(db), "-q").rc == 0
    victim = root / "victim"
    victim.mkdir()
    (victim / "library-precious.npz").write_bytes(b"not ours")
    (db / "query-cache").symlink_to(victim)
    proc = _query(db, "similar", str(paths[0]), "-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(victim)) == ["library-precious.npz"]
    assert (victim / "library-precious.npz").read_bytes() == b"not ours"
    assert (db / "query-cache").is_symlink()
