#!/usr/bin/env python
"""Start-up of engine-run and engine-query: whole-process wall time, warm caches; JSON out.

What a shell pipeline calling ``engine-run`` per file, or a nightly run that finds two new
tracks, waits for: launch to exit of the whole process, measured around a subprocess. Cases:

- ``run_fresh``: ``engine-run --cores 1 -q --db FRESH probe.flac``, a fresh store every time,
  so the probe FLAC (1 s unless ``--file-seconds`` says otherwise) is fingerprinted
  (interpreter, imports, kernel cache load, store, fork, one track, commit, exit);
- ``run_fresh_no_scipy``: the same with scipy made unimportable in the child (a finder on
  ``sys.meta_path``), as in an install of the engine's own dependencies, which do not include
  scipy: where scipy is importable, numba imports ``scipy.linalg`` as it loads its registries
  (engine-run hides scipy from numba itself since f09d09d: the two cases should agree);
- ``run_cached``: the same into a store that already holds the file (nothing to compute);
- ``query_show``: ``engine-query --db DB show file.flac``;
- ``kernels_warmup``: ``python -c "import kernels; kernels.warmup()"``, the analysis' own load;
- floors: ``python -c pass``, ``python -c "import numpy"`` and numba's cost of loading any cached
  kernel at all (``import numba`` and its CPU target's registries,
  ``cpu_target.target_context.refresh()``), with scipy importable and without.

The engine's commands run as ``python -c "import sys; from engine.run.cli import main;
sys.exit(main())" ARGS`` (``engine.query.cli`` for engine-query; what the console scripts do) with
``cwd`` and ``PYTHONPATH`` set to the tree measured, so that ``--baseline REV`` runs the same
commands from a temporary detached git worktree of REV (same interpreter and packages), interleaved
with the current tree's (this working tree, its uncommitted edits listed in the report; or with
``--current REV`` a worktree of REV too). Caches are warm: one untimed round of every command first
(for a fresh worktree it compiles its Numba cache), and the children keep their bytecode
(``PYTHONPYCACHEPREFIX`` in the run's scratch folder, ``PYTHONDONTWRITEBYTECODE`` dropped:
:func:`common.use_bytecode_cache`), as an installed package has its ``.pyc`` files. Then
``--repeats`` rounds; each runs every command once, in an order rotated every two rounds and
reversed on odd ones (:func:`common.round_order`).
Reported: per command the median [min-max] of wall seconds (and CPU seconds), and current over
baseline as the ratio of the medians and the median [min-max] of the per-round ratios. Also a
``python -X importtime`` profile of ``run_fresh`` and ``query_show`` per tree and of the numba
floor (median of ``--importtime-runs`` runs): the top imports by cumulative and by self time,
per package, and which import pulls in which package.

Usage::

    .venv/bin/python bench/startup.py --repeats 15 --baseline a7126ae -o bench/results/startup.json

bench/README.md ("Start-up: startup.py") explains each figure.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ``python -c`` code of the two command lines (their console scripts' entry points).
RUN_CODE = "import sys; from engine.run.cli import main; sys.exit(main())"
QUERY_CODE = "import sys; from engine.query.cli import main; sys.exit(main())"
WARMUP_CODE = "import kernels; kernels.warmup()"

#: Prefix that makes scipy unimportable in the child: an install of the engine's own
#: dependencies (pyproject's ``dependencies``), which do not include scipy. Where scipy is
#: importable (this venv has the test extras), numba imports ``scipy.linalg`` while it loads its
#: registries (``numba.np.arraymath`` checks for BLAS at import), whatever the command uses
#: (engine-run hides it from numba itself since f09d09d; ``kernels.warmup()`` alone does not).
HIDE_SCIPY = (
    "import sys\n"
    "class _HideScipy:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name == 'scipy' or name.startswith('scipy.'):\n"
    "            raise ModuleNotFoundError(f'No module named {name!r} (hidden)', name=name)\n"
    "sys.meta_path.insert(0, _HideScipy())\n"
)

#: The floors: tree-independent ``python -c`` code.
FLOORS = {
    "python_pass": ("python -c pass", "pass"),
    "import_numpy": ("python -c 'import numpy'", "import numpy"),
    "import_numba": ("python -c 'import numba'", "import numba"),
    "numba_registry": ("import numba + cpu_target.target_context.refresh()",
                       "import numba; from numba.core.registry import cpu_target; "
                       "cpu_target.target_context.refresh()"),
    "numba_registry_no_scipy": ("the same, scipy not importable",
                                HIDE_SCIPY + "import numba; from numba.core.registry import "
                                "cpu_target; cpu_target.target_context.refresh()"),
}

#: Per tree: case key -> label, in the report's order.
TREE_CASES = {
    "run_fresh": "engine-run --cores N, fresh store (fingerprints the probe file)",
    "run_fresh_no_scipy": "the same, scipy not importable (the engine's own dependencies)",
    "run_cached": "engine-run --cores N, store holds the file (cached)",
    "query_show": "engine-query show",
    "kernels_warmup": "python -c 'import kernels; kernels.warmup()'",
}

#: The issue's goals (issue 15), seconds of whole-process wall time.
GOALS_S = {"run_fresh": 0.6, "run_fresh_no_scipy": 0.6, "query_show": 0.3}

#: The importtime variant of a code: the variable is dropped at once, so that children the
#: command starts (multiprocessing's resource tracker) do not print their own imports too.
IMPORTTIME_PREFIX = "import os; os.environ.pop('PYTHONPROFILEIMPORTTIME', None); "


@dataclass
class Case:
    """One command of a round."""

    key: str  # "current/run_fresh", "floor/python_pass", ...
    label: str
    tree: str | None  # "current", "baseline" or None (a floor)
    code: str
    args: list[str] = field(default_factory=list)
    fresh_db: bool = False
    runs: list[dict[str, Any]] = field(default_factory=list)


def check_records(*, env: dict[str, str], cwd: Path, db: Path, audio: Path, cores: int,
                  expect: str) -> dict[str, Any]:
    """engine-run --jsonl once (untimed): the file's record must say ``expect`` (ok / cached)."""
    import json

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN_CODE, "--cores", str(cores), "-q", "--db",
                           str(db), "--jsonl", str(audio)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - t0
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    status = [r.get("status") for r in records]
    if proc.returncode != 0 or status != [expect]:
        raise RuntimeError(f"engine-run --jsonl in {cwd}: exit {proc.returncode}, records "
                           f"{status} (expected [{expect!r}]):\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "status": status[0]}


def sources_digest(tree: Path) -> str:
    """SHA-256 of a tree's ``engine/`` and ``kernels/`` sources (:func:`common.source_digest`)."""
    return common.source_digest(directory=tree / "engine") + common.source_digest(
        directory=tree / "kernels")


def run_case(case: Case, *, trees: dict[str, Path], workdir: Path, n: int) -> dict[str, Any]:
    """Time one command once (a fresh store made empty before and removed after, untimed)."""
    tree = trees.get(case.tree) if case.tree else None
    env = common.tree_env(tree) if tree else dict(os.environ)
    cwd = tree or workdir
    args = list(case.args)
    db = None
    if case.fresh_db:
        db = workdir / f"fresh-{case.tree}-{n}"
        shutil.rmtree(db, ignore_errors=True)
        args = [a if a != "{FRESH_DB}" else str(db) for a in args]
    try:
        return common.time_process([sys.executable, "-c", case.code, *args], env=env, cwd=cwd)
    finally:
        if db is not None:
            shutil.rmtree(db, ignore_errors=True)


def importtime(case: Case, *, trees: dict[str, Path], workdir: Path, runs: int,
               top: int) -> dict[str, Any]:
    """``-X importtime`` (through PYTHONPROFILEIMPORTTIME) of one case: medians over ``runs``.

    Returns
    -------
    dict
        ``runs``, ``wall_s`` (of the profiled processes, which trace every import: a little
        slower than the timed ones), ``total_import_ms`` (sum of self times), ``top_cumulative``
        and ``top_self`` (``top`` modules each: name, self and cumulative ms, depth, parent),
        ``by_package`` (self ms summed per top-level package, largest first).
    """
    tree = trees[case.tree] if case.tree else None
    env = (common.tree_env(tree, extra={"PYTHONPROFILEIMPORTTIME": "1"}) if tree
           else {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    per_run: list[list[dict[str, Any]]] = []
    walls = []
    for i in range(runs):
        args = list(case.args)
        db = workdir / f"importtime-{case.tree}-{i}"
        shutil.rmtree(db, ignore_errors=True)
        args = [a if a != "{FRESH_DB}" else str(db) for a in args]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", IMPORTTIME_PREFIX + case.code, *args],
                              env=env, cwd=tree or workdir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=600, check=False)
        walls.append(time.perf_counter() - t0)
        shutil.rmtree(db, ignore_errors=True)
        if proc.returncode != 0:
            raise RuntimeError(f"importtime of {case.key} exited {proc.returncode}")
        per_run.append(common.parse_importtime(proc.stderr))
    first = {r["name"]: r for r in per_run[0]}
    merged = []
    for name, row in first.items():
        found = [next((r for r in rows if r["name"] == name), None) for rows in per_run]
        got = [r for r in found if r is not None]
        merged.append({**row,
                       "self_ms": common.median([r["self_ms"] for r in got]),
                       "cumulative_ms": common.median([r["cumulative_ms"] for r in got])})
    packages: dict[str, float] = {}
    for row in merged:
        pkg = row["name"].split(".")[0]
        packages[pkg] = packages.get(pkg, 0.0) + row["self_ms"]

    def pick(key: str) -> list[dict[str, Any]]:
        rows = sorted(merged, key=lambda r: -r[key])[:top]
        return [{k: r[k] for k in ("name", "cumulative_ms", "self_ms", "depth", "parent")}
                for r in rows]

    return {
        "runs": runs,
        "wall_s": common.spread(walls),
        "modules": len(merged),
        "total_import_ms": sum(r["self_ms"] for r in merged),
        "top_cumulative": pick("cumulative_ms"),
        "top_self": pick("self_ms"),
        "by_package": [{"package": k, "self_ms": v} for k, v in
                       sorted(packages.items(), key=lambda kv: -kv[1])[:top]],
        "top_package_entries": [
            {k: r[k] for k in ("name", "cumulative_ms", "parent")}
            for r in sorted(merged, key=lambda r: -r["cumulative_ms"])
            if r["name"].split(".")[0] != (r["parent"] or "__main__").split(".")[0]][:top],
    }


def summarise(case: Case) -> dict[str, Any]:
    """Median [min-max] of a case's wall and CPU seconds, and every run."""
    walls = [r["wall_s"] for r in case.runs]
    cpus = [r["cpu_s"] for r in case.runs]
    return {"label": case.label, "tree": case.tree,
            "command": ["python", "-c", case.code, *case.args],
            **common.spread(walls, suffix="_s"),
            "cpu": common.spread(cpus, suffix="_s"),
            "runs_wall_s": walls, "runs_cpu_s": cpus}


def compare(cases: dict[str, Case], key: str) -> dict[str, Any]:
    """Current over baseline for one case: ratio of medians, and per round (paired)."""
    cur, base = cases[f"current/{key}"], cases[f"baseline/{key}"]
    cw = [r["wall_s"] for r in cur.runs]
    bw = [r["wall_s"] for r in base.runs]
    per_round = [c / b for c, b in zip(cw, bw, strict=True) if b > 0]
    return {
        "baseline": common.spread(bw, suffix="_s"),
        "current": common.spread(cw, suffix="_s"),
        "ratio_of_medians": common.median(cw) / common.median(bw),
        "ratio_per_round": {**common.spread(per_round), "runs": per_round},
        "saved_s": common.median(bw) - common.median(cw),
    }


def human_summary(report: dict[str, Any]) -> str:
    """The tables on stderr: before/after per case, the floors, the top imports."""
    res = report["results"]
    base = report["settings"]["baseline"]
    cur = report["trees"]["current"]
    cur_name = (cur["rev"] if cur["rev"] != "working tree"
                else (cur["commit"] or "")[:7] + (" + uncommitted edits" if cur["uncommitted"]
                                                  else " (working tree, clean)"))
    lines = [f"start-up, whole process, warm caches; {report['settings']['repeats']} interleaved "
             f"rounds; seconds, median [min-max]"]
    if base:
        lines.append(f"| case | {base['rev']} | {cur_name} | current / baseline: ratio of "
                     f"medians; per round | goal |")
        lines.append("|---|---|---|---|---|")
        for key, label in TREE_CASES.items():
            c = report["comparison"][key]
            goal = GOALS_S.get(key)
            ok = "" if goal is None else (f"<= {goal} " + ("met" if c["current"]["median_s"]
                                                           <= goal else "**not met**"))
            lines.append(f"| {label} | {common.fmt_spread(c['baseline'], '.3f')} | "
                         f"{common.fmt_spread(c['current'], '.3f')} | "
                         f"{c['ratio_of_medians']:.2f}; {common.fmt_spread(c['ratio_per_round'])} "
                         f"| {ok} |")
    else:
        lines.append(f"| case | {cur_name} | goal |")
        lines.append("|---|---|---|")
        for key, label in TREE_CASES.items():
            c = res[f"current/{key}"]
            goal = GOALS_S.get(key)
            ok = "" if goal is None else (f"<= {goal} " + ("met" if c["median_s"] <= goal
                                                           else "**not met**"))
            lines.append(f"| {label} | {common.fmt_spread(c, '.3f')} | {ok} |")
    lines.append("floors: " + "; ".join(
        f"{label} {common.fmt_spread(res[f'floor/{k}'], '.3f')}"
        for k, (label, _) in FLOORS.items()))
    floor = report.get("importtime", {}).get("floor", {}).get("numba_registry")
    if floor:
        lines.append(f"imports of the numba registry floor: {floor['total_import_ms']:.0f} ms in "
                     f"{floor['modules']} modules; packages entered (cumulative ms): " + ", ".join(
                         f"{r['name']} {r['cumulative_ms']:.0f} <- {r['parent'] or 'main'}"
                         for r in floor["top_package_entries"]))
    for tree, per_case in report.get("importtime", {}).items():
        prof = per_case.get("run_fresh")
        if not prof:
            continue
        lines.append(f"imports of engine-run ({tree}, -X importtime, median of {prof['runs']}): "
                     f"{prof['total_import_ms']:.0f} ms in {prof['modules']} modules; top by "
                     f"cumulative ms:")
        for r in prof["top_cumulative"]:
            lines.append(f"  {r['cumulative_ms']:7.1f} (self {r['self_ms']:5.1f})  "
                         f"{'  ' * r['depth']}{r['name']}"
                         + (f"  <- {r['parent']}" if r["parent"] else ""))
        lines.append("  self ms by package: " + ", ".join(
            f"{p['package']} {p['self_ms']:.0f}" for p in prof["by_package"]))
        lines.append("  packages entered (cumulative ms): " + ", ".join(
            f"{r['name']} {r['cumulative_ms']:.0f} <- {r['parent'] or 'main'}"
            for r in prof["top_package_entries"]))
    warning = common.interference_warning(
        [(f"round {i + 1}", r) for i, r in enumerate(report["interference"]["rounds"])])
    share = report["interference"]["other_cpu_share_of_wall"]
    for tree, info in report["trees"].items():
        if info.get("uncommitted"):
            lines.append(f"{tree} tree: uncommitted edits measured: "
                         + ", ".join(x.strip() for x in info["uncommitted"]))
        if info.get("sources_changed_during_run"):
            lines.append(f"WARNING: the {tree} tree's engine/kernels sources changed during the "
                         f"run: mixed code measured")
    lines.append(f"other processes used {share:.0%} of a core over the run"
                 + (f"; {warning}" if warning else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the start-up bench from the command line; returns the exit status."""
    ap = common.parser(script=__file__, quiet=True,
                       description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15,
                    help="interleaved rounds, each running every command once (default 15)")
    ap.add_argument("--baseline", metavar="REV",
                    help="also run the same commands from a temporary worktree of git revision "
                         "REV, interleaved, and report current / baseline")
    ap.add_argument("--current", metavar="REV",
                    help="measure a temporary worktree of git revision REV as the current tree "
                         "instead of this working tree (whose uncommitted edits are otherwise "
                         "measured, and listed in the report)")
    ap.add_argument("--cores", type=int, default=1, help="engine-run's --cores (default 1)")
    ap.add_argument("--file-seconds", type=float, default=1.0,
                    help="length of the FLAC fingerprinted (default 1)")
    ap.add_argument("--importtime-runs", type=int, default=3,
                    help="-X importtime runs per profiled case, medians (default 3; 0: none)")
    ap.add_argument("--top", type=int, default=10, help="imports listed (default 10)")
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.cores < 1 or args.file_seconds <= 0:
        ap.error("--repeats and --cores must be >= 1, --file-seconds > 0")
    log = not args.quiet
    commit = current_commit = None
    try:
        if args.baseline:
            commit = common.resolve_revision(rev=args.baseline)
        if args.current:
            current_commit = common.resolve_revision(rev=args.current)
    except ValueError as exc:
        ap.error(f"--baseline / --current: {exc}")

    import kernels

    started = time.perf_counter()
    load_start = os.getloadavg()
    cpu_start = common.cpu_snapshot()
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the worktree's removal

    signal.signal(signal.SIGTERM, on_term)
    importtime_load = None
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="startup-bench-")))
        stack.callback(signal.signal, signal.SIGTERM, previous_term)
        bytecode = common.use_bytecode_cache(directory=workdir / "pycache")
        audio = workdir / "probe.flac"
        file_info = common.write_music_flac(audio, args.file_seconds)
        trees: dict[str, Path] = {"current": common.REPO}
        if current_commit:
            trees["current"] = stack.enter_context(common.RevisionWorktree(
                commit=current_commit, path=workdir / "current-tree", log=log))
        if commit:
            trees["baseline"] = stack.enter_context(common.RevisionWorktree(
                commit=commit, path=workdir / "baseline-tree", log=log))
        tree_info: dict[str, Any] = {}
        cases: dict[str, Case] = {}
        for tree in trees:  # current, baseline
            cached_db = workdir / f"cached-{tree}"
            for key, label in TREE_CASES.items():
                if key.startswith("run_"):
                    fresh = key.startswith("run_fresh")
                    db = "{FRESH_DB}" if fresh else str(cached_db)
                    case = Case(f"{tree}/{key}", label, tree,
                                (HIDE_SCIPY if key.endswith("no_scipy") else "") + RUN_CODE,
                                ["--cores", str(args.cores), "-q", "--db", db, str(audio)],
                                fresh_db=fresh)
                elif key == "query_show":
                    case = Case(f"{tree}/{key}", label, tree, QUERY_CODE,
                                ["--db", str(cached_db), "show", str(audio)])
                else:
                    case = Case(f"{tree}/{key}", label, tree, WARMUP_CODE)
                cases[case.key] = case
        for key, (label, code) in FLOORS.items():
            cases[f"floor/{key}"] = Case(f"floor/{key}", label, None, code)

        # untimed: where each tree's packages come from, a first run (a fresh worktree
        # compiles its Numba cache here), the cached store, and one round of everything
        for tree, path in trees.items():
            files = common.tree_imports(path, modules=("engine", "engine.run.cli",
                                                       "engine.query.cli", "kernels"))
            env = common.tree_env(path)
            first = check_records(env=env, cwd=path, db=workdir / f"cached-{tree}",
                                  audio=audio, cores=args.cores, expect="ok")
            again = check_records(env=env, cwd=path, db=workdir / f"cached-{tree}",
                                  audio=audio, cores=args.cores, expect="cached")
            kdir = Path(files["kernels"]).parent
            rev, rev_commit = ((args.baseline, commit) if tree == "baseline"
                               else (args.current, current_commit))
            tree_info[tree] = {
                "path": str(path), "imports": files,
                "rev": rev or "working tree",
                "commit": rev_commit or common.git_commit(),
                "uncommitted": None if rev else common.git_uncommitted(repo=path),
                "sources_sha256": sources_digest(path),
                "kernels_source_sha256": common.source_digest(directory=kdir),
                "first_run_s": first["wall_s"], "first_cached_run_s": again["wall_s"],
            }
            if log:
                print(f"# {tree}: {path}; first engine-run {first['wall_s']:.2f} s "
                      f"(record ok), again {again['wall_s']:.2f} s (cached)",
                      file=sys.stderr)
        for n, case in enumerate(cases.values()):
            run_case(case, trees=trees, workdir=workdir, n=-1 - n)
        if log:
            print(f"# warm; {args.repeats} rounds of {len(cases)} commands",
                  file=sys.stderr)

        order: list[list[str]] = []
        rounds_load = []
        for r in range(args.repeats):
            t_round, cpu0 = time.perf_counter(), common.cpu_snapshot()
            seq = common.round_order(list(cases.values()), r)
            order.append([c.key for c in seq])
            for case in seq:
                case.runs.append(run_case(case, trees=trees, workdir=workdir, n=r))
            common.round_load(rounds_load, label=f"round {r + 1}/{args.repeats}",
                              cpu_start=cpu0, t_start=t_round, log=log, tail="; " + ", ".join(
                                  f"{k.replace('current/', '')} {c.runs[-1]['wall_s']:.3f}"
                                  for k, c in cases.items() if not k.startswith("baseline/")))

        profiles: dict[str, Any] = {}
        if args.importtime_runs > 0:
            t_phase, cpu0 = time.perf_counter(), common.cpu_snapshot()
            for tree in trees:
                profiles[tree] = {
                    key: importtime(cases[f"{tree}/{key}"], trees=trees, workdir=workdir,
                                    runs=args.importtime_runs, top=args.top)
                    for key in ("run_fresh", "query_show")}
            profiles["floor"] = {"numba_registry": importtime(
                cases["floor/numba_registry"], trees=trees, workdir=workdir,
                runs=args.importtime_runs, top=args.top)}
            importtime_load = common.other_cpu(start=cpu0, end=common.cpu_snapshot(),
                                               wall_s=time.perf_counter() - t_phase)
        for tree, path in trees.items():
            tree_info[tree]["sources_changed_during_run"] = (
                sources_digest(path) != tree_info[tree]["sources_sha256"])

    report: dict[str, Any] = {
        **common.report_head(schema="fingerprint-engine/bench-startup/1", kernels=kernels),
        "settings": {
            "repeats": args.repeats, "cores": args.cores,
            "importtime_runs": args.importtime_runs,
            "baseline": {"rev": args.baseline, "commit": commit} if commit else None,
            "current": {"rev": args.current or "working tree",
                        "commit": current_commit or common.git_commit()},
            "threads_env": common.SINGLE_THREAD_ENV,
            "bytecode": bytecode,
            "statistic": "per command: median, min and max over the rounds of whole-process "
                         "wall seconds (launch to exit); ratios current/baseline per round",
            "order": "each round runs every command once: rotated every 2 rounds, reversed on "
                     "odd rounds (common.round_order)",
            "goals_s": GOALS_S,
        },
        "file": file_info,
        "trees": tree_info,
        "results": {k: summarise(c) for k, c in cases.items()},
        "comparison": ({key: compare(cases, key) for key in TREE_CASES}
                       if commit else None),
        "importtime": profiles,
        "order": order,
        "bench_wall_s": time.perf_counter() - started,
        "interference": common.run_interference(
            cpu_start=cpu_start, started=started, load_start=load_start, rounds=rounds_load,
            **({"importtime": importtime_load} if importtime_load else {})),
    }
    common.write_report(report=report, output=args.output, summary=human_summary(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
