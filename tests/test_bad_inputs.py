"""engine-run on broken and odd inputs (tools/make_bad_inputs.py), end to end.

One module fixture writes the whole set into a temporary folder (the long file shortened to
:data:`LONG_SECONDS`), then runs the real ``engine-run --cores 2 --jsonl`` three times, each in
its own session with a bounded timeout:

1. over the folder, into a fresh store;
2. the same again (a rerun: ok tracks are cached, failed ones answered from the catalog);
3. the names a line-based stdin cannot carry (newlines, bytes that are not UTF-8) fed through
   ``-0 -`` into another fresh store.

The tests then hold each record to the expectation the generator wrote for its path. An
expectation with ``xfail_reason`` describes an engine bug: its kind's test is an expected
failure while the bug is there, and fails (asking to drop the reason) once the engine gets it
right.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import helpers as h
import numpy as np
import pytest
import soundfile as sf

from kernels import FINGERPRINT_NAMES

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "make_bad_inputs.py"
#: Length of the long file here; tools/make_bad_inputs.py writes 2 hours by default.
LONG_SECONDS = 60.0
#: Seconds any one engine-run may take before it counts as hung (a run takes ~2 s).
RUN_TIMEOUT_S = 120.0
#: Seconds the generator may take.
GENERATE_TIMEOUT_S = 120.0
#: Claims a failure message must not make about a regular file that is there.
FALSE_REASONS = ("does not exist", "not a regular file")


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bad_inputs", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def relative(root: Path, path: str) -> str:
    prefix = str(root) + os.sep
    assert path.startswith(prefix), f"{path!r} is outside {root}"
    return path[len(prefix) :]


def by_path(root: Path, records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(relative(root, r["path"]), []).append(r)
    return out


# --------------------------------------------------------------------------------------------
# Checks of one record against its expectation
# --------------------------------------------------------------------------------------------


def message_problems(root: Path, rel: str, message: str) -> list[str]:
    """What is wrong with a failure message: it must name the file (its basename as the
    scanner shows names), give a reason, be one printable line and not say that a regular
    file that is there does not exist."""
    probs = []
    name = tool.shown(os.path.basename(rel))
    if name not in message:
        probs.append(f"message does not name {name!r}")
    if not message.isprintable():
        probs.append("message is not one printable line")
    rest = message
    full = os.path.join(str(root), rel)
    for p in (full, tool.shown(full), name):
        rest = rest.replace(p, "")
    if not re.search(r"[A-Za-z]{4,}", rest):
        probs.append("message gives no reason")
    if os.path.isfile(os.fsencode(full)) and not os.path.islink(os.fsencode(full)):
        probs += [f"message says {claim!r} of a regular file" for claim in FALSE_REASONS
                  if claim in message]
    return probs


def record_problems(root: Path, rel: str, exp: dict[str, Any], recs: list[dict[str, Any]], *,
                    ok_statuses: tuple[str, ...] = ("ok",)) -> list[str]:
    """Everything in which the records of ``rel`` differ from its expectation ([] if none)."""
    if len(recs) != 1:
        return [f"{len(recs)} records instead of one"]
    r = recs[0]
    status, error, fp = r["status"], r["error"], r["fingerprint"]
    expect = exp["expect"]
    if status in ok_statuses:
        if expect == "failed":
            return [f"{status}, expected a failure of kind {exp['kinds']}"]
        probs = []
        if error is not None:
            probs.append(f"ok record carries an error {error}")
        if not isinstance(fp, dict) or list(fp) != list(FINGERPRINT_NAMES):
            return [*probs, "no fingerprint of the 25 values"]
        if not all(isinstance(v, float | int) and math.isfinite(v) for v in fp.values()):
            probs.append("fingerprint holds NaN or inf")
        d = r["duration_s"]
        if "duration_s" in exp and abs(d - exp["duration_s"]) > exp["duration_tol"]:
            probs.append(f"duration_s {d} is not {exp['duration_s']} +- {exp['duration_tol']}")
        if "duration_max_s" in exp and d > exp["duration_max_s"]:
            probs.append(f"duration_s {d} is longer than the file {exp['duration_max_s']}")
        for key in ("sample_rate", "channels"):
            if key in exp and r[key] != exp[key]:
                probs.append(f"{key} {r[key]} is not {exp[key]}")
        if "note_contains" in exp and exp["note_contains"] not in (r.get("note") or ""):
            probs.append(f"note {r.get('note')!r} does not say {exp['note_contains']!r}")
        return probs
    if status != "failed":
        return [f"status {status!r}"]
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return [f"failure without an error kind and message: {error}"]
    head = f"failed with {error['kind']}: {error['message']!r}"
    if expect == "ok":
        return [f"{head}; expected a fingerprint"]
    if fp is not None:
        return [f"{head}, yet carries a fingerprint"]
    probs = [] if error["kind"] in exp["kinds"] else [f"{head}; kind not in {exp['kinds']}"]
    return probs + [f"{p} ({error['message']!r})" for p in message_problems(root, rel,
                                                                             error["message"])]


def judge(problems: dict[str, list[str]], expectations: dict[str, dict[str, Any]]) -> None:
    """Fail for problems of paths without ``xfail_reason``; xfail while the known engine bugs
    are there; fail when one is fixed (its ``xfail_reason`` must go)."""
    strict = {p: v for p, v in problems.items() if v and "xfail_reason" not in expectations[p]}
    assert not strict, json.dumps(strict, indent=1, ensure_ascii=True)
    known = [p for p in problems if "xfail_reason" in expectations[p]]
    fixed = [p for p in known if not problems[p]]
    if fixed:
        pytest.fail(f"{fixed}: the engine now does the right thing; remove their xfail_reason "
                    "in tools/make_bad_inputs.py")
    if known:
        pytest.xfail("; ".join(f"{p!r}: {problems[p]} -- engine bug: "
                               f"{expectations[p]['xfail_reason']}" for p in known))


# --------------------------------------------------------------------------------------------
# The runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Runs:
    root: Path
    expectations: dict[str, dict[str, Any]]
    first: h.Run
    rerun: h.Run
    null_fed: list[str]
    stdin: h.Run
    shm_before: set[str]
    shm_after: set[str]
    swapped: str


def _swap_keeping_size_and_mtime(path: Path) -> None:
    """Replace a broken file with valid audio of the same size and mtime: the catalog cannot
    tell, so a rerun that still reports the failure did not try the file again."""
    st = path.stat()
    frames = (st.st_size - 44) // 2
    x = 0.1 * np.sin(2 * np.pi * 440.0 * np.arange(frames) / 44100.0)
    sf.write(path, x, 44100, format="WAV", subtype="PCM_16")
    assert path.stat().st_size == st.st_size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    base = tmp_path_factory.mktemp("bad_inputs")
    root = base / "inputs"
    shm_before = h.shm_entries()
    subprocess.run([sys.executable, str(TOOL), str(root), "--long-seconds", str(LONG_SECONDS)],
                   check=True, timeout=GENERATE_TIMEOUT_S, capture_output=True)
    expectations = tool.load_expectations(root)
    common = ("--cores", "2", "--jsonl")
    first = h.engine_run(str(root), "--db", str(base / "db"), *common, timeout=RUN_TIMEOUT_S)
    swapped = "random_bytes.wav"
    _swap_keeping_size_and_mtime(root / swapped)
    rerun = h.engine_run(str(root), "--db", str(base / "db"), *common, timeout=RUN_TIMEOUT_S)
    # the names only NUL-separated stdin carries, and those that are not UTF-8
    null_fed = sorted(rel for rel, e in expectations.items()
                      if e.get("needs_null") or not rel.isascii())
    feed = b"".join(os.fsencode(os.path.join(str(root), rel)) + b"\0" for rel in null_fed)
    stdin = h.engine_run("-0", "-", "--db", str(base / "db_stdin"), *common, stdin=feed,
                         timeout=RUN_TIMEOUT_S)
    return Runs(root, expectations, first, rerun, null_fed, stdin, shm_before,
                h.shm_entries(), swapped)


def test_generator_writes_at_least_30_kinds(runs: Runs) -> None:
    exps = runs.expectations
    assert len(tool.KINDS) >= 30
    assert {e["kind"] for e in exps.values()} == set(tool.KINDS)
    for rel, e in exps.items():
        assert os.path.lexists(os.fsencode(os.path.join(str(runs.root), rel))), rel
        assert e["expect"] in ("ok", "failed", "ok_or_failed"), rel
        if e["expect"] != "ok":
            assert e["kinds"], rel
        if e["expect"] == "ok_or_failed":
            assert e["why"], rel
    assert sum(e["expect"] == "ok_or_failed" for e in exps.values()) <= len(exps) // 4
    assert any(e.get("needs_null") for e in exps.values())


def test_every_run_finishes_with_exit_code_1(runs: Runs) -> None:
    for run in (runs.first, runs.rerun, runs.stdin):
        assert run.rc == 1, run.stderr[-3000:]
    assert runs.first.seconds < RUN_TIMEOUT_S


def test_every_path_has_exactly_one_record(runs: Runs) -> None:
    for run in (runs.first, runs.rerun):
        counts = Counter(relative(runs.root, r["path"]) for r in run.records)
        assert set(counts) == set(runs.expectations), (
            f"lost: {sorted(set(runs.expectations) - set(counts))}, "
            f"unexpected: {sorted(set(counts) - set(runs.expectations))}")
        assert {p: n for p, n in counts.items() if n != 1} == {}


@pytest.mark.parametrize("kind", list(tool.KINDS))
def test_kind(runs: Runs, kind: str) -> None:
    exps = {p: e for p, e in runs.expectations.items() if e["kind"] == kind}
    assert exps, f"kind {kind} produced nothing"
    recs = by_path(runs.root, runs.first.records)
    judge({p: record_problems(runs.root, p, e, recs.get(p, [])) for p, e in exps.items()},
          runs.expectations)


def test_no_fingerprint_holds_nan_or_inf(runs: Runs) -> None:
    for run in (runs.first, runs.rerun, runs.stdin):
        assert run.records, run.stderr[-2000:]
        for r in run.records:
            if r["fingerprint"] is not None:
                assert all(math.isfinite(v) for v in r["fingerprint"].values()), r["path"]
                assert math.isfinite(r["duration_s"]) and r["duration_s"] > 0, r["path"]
            else:
                assert r["status"] == "failed" and r["error"]["kind"], r["path"]


def test_rerun_caches_ok_and_does_not_retry_failed(runs: Runs) -> None:
    first = {relative(runs.root, r["path"]): r for r in runs.first.records}
    again = {relative(runs.root, r["path"]): r for r in runs.rerun.records}
    assert set(again) == set(first)
    for p, r in first.items():
        a = again[p]
        if r["status"] == "ok":
            assert a["status"] == "cached", p
            assert a["fingerprint"] == r["fingerprint"] and a["track_id"] == r["track_id"], p
        else:
            assert a["status"] == "failed", p
            assert a["error"] == r["error"], p
    # the swapped file now holds valid audio of the same size and mtime: still failed means
    # the catalog answered and nothing decoded it again
    assert first[runs.swapped]["status"] == again[runs.swapped]["status"] == "failed"
    assert re.search(r"\b0 ok, \d+ cached", runs.rerun.stderr), runs.rerun.stderr[-2000:]


def test_names_fed_null_separated_on_stdin(runs: Runs) -> None:
    assert any(runs.expectations[p].get("needs_null") for p in runs.null_fed)
    counts = Counter(relative(runs.root, r["path"]) for r in runs.stdin.records)
    assert counts == Counter(runs.null_fed)
    recs = by_path(runs.root, runs.stdin.records)
    first = by_path(runs.root, runs.first.records)
    for p in runs.null_fed:  # the same answer as when the folder was walked
        r, f = recs[p][0], first[p][0]
        assert (r["status"], r["error"], r["fingerprint"]) == (
            f["status"], f["error"], f["fingerprint"]), p
    exps = {p: runs.expectations[p] for p in runs.null_fed}
    judge({p: record_problems(runs.root, p, e, recs[p]) for p, e in exps.items()},
          runs.expectations)


def test_nothing_left_behind(runs: Runs) -> None:
    for run in (runs.first, runs.rerun, runs.stdin):
        assert run.leftovers == [], f"engine processes alive after exit: {run.leftovers}"
    new = runs.shm_after - runs.shm_before  # the engine names nothing there (anonymous mmaps)
    if new:  # another process's segment may come and go meanwhile: ours would stay
        time.sleep(1.0)
        new &= h.shm_entries()
    assert new == set(), f"left in /dev/shm: {sorted(new)}"


def _unprivileged_prefix() -> list[str]:
    """``setpriv`` dropping root's power to read any file, or skip the test."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (a non-root run covers this in test_kind)")
    caps = "-dac_override,-dac_read_search"
    prefix = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}"]
    probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"setpriv cannot drop capabilities here: {probe.stderr.decode()[:200]}")
    return prefix


def test_mode_000_without_root_privileges(tmp_path: Path) -> None:
    """As root the mode-000 kinds are readable; without CAP_DAC_OVERRIDE they must fail with
    kind "permission" (file: one record for it; folder: one record for the folder)."""
    prefix = _unprivileged_prefix()
    root = tmp_path / "inputs"
    subprocess.run([*prefix, sys.executable, str(TOOL), str(root), "--only", "permission_000",
                    "permission_000_dir"], check=True, timeout=GENERATE_TIMEOUT_S,
                   capture_output=True)
    exps = tool.load_expectations(root)
    if any(e["expect"] == "ok" for e in exps.values()):
        pytest.skip("still allowed to read mode 000 after dropping the capabilities")
    run = h.engine_run(str(root), "--db", str(tmp_path / "db"), "--cores", "2", "--jsonl",
                       timeout=RUN_TIMEOUT_S, preexec=prefix)
    try:
        assert run.rc == 1, run.stderr[-2000:]
        assert run.leftovers == []
        recs = by_path(root, run.records)
        assert set(recs) == set(exps)
        judge({p: record_problems(root, p, e, recs.get(p, [])) for p, e in exps.items()}, exps)
    finally:
        for p in (root / "permission_000_dir", root / "permission_000.wav"):
            os.chmod(p, 0o755)
