#!/usr/bin/env python
"""Benchmark the streaming fingerprint kernels against the cost of decoding alone.

For every audio file of a folder (recursive), or of a synthetic corpus, this measures on ONE core:

- decode-only: ``soundfile.SoundFile(path).read(out=block)`` into one preallocated float32 buffer
  of ``--block-frames`` frames, nothing else;
- end to end: ``fingerprint_file(path, block_frames=...)``;
- per stage: ``kernels.Analyzer(sr, channels, profile=True)`` fed the decoded blocks, then
  ``finish()`` and ``analyzer.stage_seconds``;

and reports medians over ``--repeats``, per track, per format (file extension) and overall: the
ratio of end-to-end to decode-only throughput (``decode_s / e2e_s``, the project's goal is
>= 0.45), and the x-realtime of both. In fresh subprocesses it also measures the start-up cost
(interpreter start to the first fingerprint of a 10 s file, with the JIT cache present and, with
``--cold``, empty) and the memory the analyzer adds while it fingerprints a long synthetic track
generated block by block.

With ``--baseline REV`` it instead compares two versions of the code: ``fingerprint_file`` of
this working tree against that of git revision REV (checked out in a temporary detached
worktree, removed at the end), each served by its own long-lived, warmed-up interpreter that
imports its tree's ``kernels`` and ``engine``; file by file, both trees in turn (the first one
alternating between repeats), it reports per tree and format the total analysis seconds and
x-realtime, and the ratio current/baseline per repeat. Start-up (the baseline compiles its
Numba cache) is reported apart and excluded.

Usage::

    .venv/bin/python bench/kernel_speed.py --synthetic 3 --seconds 240 -o bench/results/x.json
    .venv/bin/python bench/kernel_speed.py /work/corpus-small --repeats 3 -o out.json
    .venv/bin/python bench/kernel_speed.py /work/corpus-small --to-flac /work/corpus-small-flac
    .venv/bin/python bench/kernel_speed.py /work/corpus-small --baseline HEAD --limit 12 \
        --repeats 3 --no-start --no-memory -o ab.json

bench/README.md explains each figure.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import gc
import json
import resource
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf

from engine.decode import DEFAULT_BLOCK_FRAMES, fingerprint_file

#: The times of the profiled pass, in seconds (:func:`profiled`).
PROFILE_KEYS = ("wall_s", "decode_s", "setup_s", "feed_s", "finish_s")


# --------------------------------------------------------------------------------------------
# Corpus helpers
# --------------------------------------------------------------------------------------------


def convert_to_flac(*, source: Path, dest: Path, block_frames: int, log: bool) -> dict[str, Any]:
    """Decode every audio file under ``source`` and write it as 16-bit FLAC under ``dest``.

    Relative names are kept, with the extension replaced by ``.flac``. Samples are quantised by
    :func:`common.to_pcm16` (decoded lossy audio may exceed full scale: those samples are clipped
    and counted). ``dest/manifest.tsv`` gets the columns of the shared corpus script's manifest plus
    ``source`` and ``clipped``.

    Parameters
    ----------
    source : Path
        Corpus folder (e.g. built by ``shared/corpus/make_corpus.sh``).
    dest : Path
        Output folder; created if missing. Existing files of the same name are overwritten.
    block_frames : int
        Frames decoded and written at a time.
    log : bool
        Print one line per file on stderr.

    Returns
    -------
    dict
        Totals: files, seconds, bytes, clipped samples.
    """
    files = common.find_audio(root=source)
    if not files:
        raise SystemExit(f"--to-flac: no audio files under {source}")
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    seen: dict[Path, Path] = {}
    for src in files:
        rel = src.relative_to(source).with_suffix(".flac")
        if rel in seen:
            raise SystemExit(f"--to-flac: {src} and {seen[rel]} would both be written as {rel}")
        seen[rel] = src
        out_path = dest / rel
        out_path.parent.mkdir(parents=True, exist_ok=True)
        clipped = 0
        frames = 0
        with sf.SoundFile(src) as f:
            buf = np.empty((block_frames, f.channels), dtype=np.float32)
            with sf.SoundFile(out_path, "w", samplerate=f.samplerate, channels=f.channels,
                              format="FLAC", subtype="PCM_16") as out:
                while True:
                    got = f.read(out=buf)
                    if len(got):
                        clipped += int(np.count_nonzero((got >= 1.0) | (got < -1.0)))
                        out.write(common.to_pcm16(got))
                        frames += len(got)
                    if len(got) < block_frames:
                        break
            sr, ch = f.samplerate, f.channels
        size = out_path.stat().st_size
        rows.append((rel.as_posix(), "flac", sr, ch, frames / sr, size,
                     rel.parts[0] if len(rel.parts) > 1 else "", src.relative_to(source).as_posix(),
                     clipped))
        if log:
            print(f"  {rel}  {frames / sr:7.1f} s  {size / 1e6:6.1f} MB  clipped {clipped}",
                  file=sys.stderr)
    with open(dest / "manifest.tsv", "w") as m:
        m.write("file\tformat\tsamplerate\tchannels\tseconds\tbytes\tpackage\tsource\tclipped\n")
        for r in rows:
            m.write("{}\t{}\t{}\t{}\t{:.3f}\t{}\t{}\t{}\t{}\n".format(*r))
    totals = {"files": len(rows), "seconds": sum(r[4] for r in rows),
              "bytes": sum(r[5] for r in rows), "clipped_samples": sum(r[8] for r in rows)}
    print(f"# wrote {totals['files']} FLAC files, {totals['seconds'] / 60:.1f} min, "
          f"{totals['bytes'] / 1e6:.1f} MB, {totals['clipped_samples']} clipped samples "
          f"to {dest}", file=sys.stderr)
    return totals


# --------------------------------------------------------------------------------------------
# The three measurements of one file
# --------------------------------------------------------------------------------------------


def end_to_end(*, path: Path, block_frames: int) -> tuple[float, np.ndarray]:
    """Time ``engine.decode.fingerprint_file`` on one file.

    Parameters
    ----------
    path : Path
        Audio file.
    block_frames : int
        Passed to ``fingerprint_file``.

    Returns
    -------
    seconds : float
        Wall time.
    values : ndarray
        The fingerprint as float64[25].
    """
    t0 = time.perf_counter()
    fp = fingerprint_file(path, block_frames=block_frames)
    seconds = time.perf_counter() - t0
    return seconds, np.asarray(fp.as_array(), dtype=np.float64)


def profiled(*, kernels: Any, path: Path, buffer: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Decode one file and feed a profiling ``kernels.Analyzer``; split the time.

    Parameters
    ----------
    kernels : module
        The imported ``kernels`` package.
    path : Path
        Audio file.
    buffer : ndarray
        float32 (block_frames, channels) decode buffer.

    Returns
    -------
    times : dict
        ``wall_s`` (all of it), ``decode_s`` (inside ``read``), ``setup_s`` (constructing the
        analyzer), ``feed_s`` (inside ``feed``), ``finish_s`` (inside ``finish``) and ``stages``
        (a copy of ``analyzer.stage_seconds``).
    values : ndarray
        The fingerprint as float64[25].
    """
    block = len(buffer)
    decode = feed = 0.0
    t_start = time.perf_counter()
    with sf.SoundFile(path) as f:
        t0 = time.perf_counter()
        analyzer = kernels.Analyzer(f.samplerate, f.channels, profile=True)
        setup = time.perf_counter() - t0
        while True:
            t0 = time.perf_counter()
            got = f.read(out=buffer)
            t1 = time.perf_counter()
            decode += t1 - t0
            if len(got):
                analyzer.feed(got)
                feed += time.perf_counter() - t1
            if len(got) < block:
                break
    t0 = time.perf_counter()
    fp = analyzer.finish()
    t1 = time.perf_counter()
    times = {
        "wall_s": t1 - t_start,
        "decode_s": decode,
        "setup_s": setup,
        "feed_s": feed,
        "finish_s": t1 - t0,
        "stages": {str(k): float(v) for k, v in dict(analyzer.stage_seconds).items()},
    }
    return times, np.asarray(fp.as_array(), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Corpus measurement
# --------------------------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "?"


def _prime(*, kernels: Any, configs: set[tuple[int, int]], block_frames: int) -> float:
    """Untimed: one short analysis per (rate, channels), so FFT plans exist before timing."""
    t0 = time.perf_counter()
    for sr, ch in sorted(configs):
        analyzer = kernels.Analyzer(sr, ch)
        if ch in (1, 2):
            for block in common.music_blocks(seconds=3.0, sample_rate=sr, channels=ch,
                                             block_frames=block_frames):
                analyzer.feed(block)
        else:
            rng = np.random.default_rng(0)
            analyzer.feed((0.1 * rng.standard_normal((3 * sr, ch))).astype(np.float32))
        analyzer.finish()
    return time.perf_counter() - t0


def measure_corpus(
    *, kernels: Any, files: list[Path], root: Path, repeats: int, block_frames: int, log: bool,
) -> dict[str, Any]:
    """Measure decode-only, end-to-end and per-stage time of every file, ``repeats`` times.

    Within a repeat each file is measured three ways back to back (decode-only and end-to-end
    swap order on odd repeats, so neither always runs with the other's data in the caches), then
    the profiled pass. Files are read once beforehand so the page cache holds them.

    Parameters
    ----------
    kernels : module
        The imported ``kernels`` package (``warmup()`` already called).
    files : list of Path
        Audio files.
    root : Path
        Folder the reported names are relative to.
    repeats : int
        Number of repeats; medians are reported.
    block_frames : int
        Frames per decoded block.
    log : bool
        Print progress on stderr.

    Returns
    -------
    dict
        ``tracks`` (per-file rows), ``formats`` and ``overall`` aggregates, ``stages`` and
        ``priming_s``.
    """
    infos: list[dict[str, Any]] = []
    for path in files:
        row: dict[str, Any] = {"file": path.relative_to(root).as_posix(),
                               "format": _format_of(path), "bytes": path.stat().st_size}
        try:
            info = sf.info(str(path))
            row.update(samplerate=info.samplerate, channels=info.channels, subtype=info.subtype,
                       container=info.format)
            path.read_bytes()  # warm the page cache
        except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / OSError
            row["error"] = f"{type(exc).__name__}: {exc}"
        infos.append(row)
    ok = [(p, r) for p, r in zip(files, infos, strict=True) if "error" not in r]
    buffers = {ch: np.empty((block_frames, ch), dtype=np.float32)
               for ch in {r["channels"] for _, r in ok}}
    priming_s = _prime(kernels=kernels, configs={(r["samplerate"], r["channels"]) for _, r in ok},
                       block_frames=block_frames)

    runs: dict[str, dict[str, list[Any]]] = {
        r["file"]: {"decode": [], "e2e": [], "profile": [], "fp": []} for _, r in ok
    }
    block = block_frames
    repeat_load = []
    for rep in range(repeats):
        t_rep = time.perf_counter()
        cpu0 = common.cpu_snapshot()
        for path, row in ok:
            if "error" in row:
                continue
            run = runs[row["file"]]
            buf = buffers[row["channels"]]
            try:
                if rep % 2 == 0:
                    dec_s, frames = common.decode_only(path=path, buffer=buf)
                    e2e_s, values = end_to_end(path=path, block_frames=block)
                else:
                    e2e_s, values = end_to_end(path=path, block_frames=block)
                    dec_s, frames = common.decode_only(path=path, buffer=buf)
                prof, prof_values = profiled(kernels=kernels, path=path, buffer=buf)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"  ERROR {row['file']}: {row['error']}", file=sys.stderr)
                continue
            row["frames"] = frames
            run["decode"].append(dec_s)
            run["e2e"].append(e2e_s)
            run["profile"].append(prof)
            run["fp"].append((values, prof_values))
        common.round_load(repeat_load, label=f"repeat {rep + 1}/{repeats}", cpu_start=cpu0,
                          t_start=t_rep, log=log)

    tracks: list[dict[str, Any]] = []
    for row in infos:
        run = runs.get(row["file"])
        if "error" in row or run is None or not run["decode"]:
            tracks.append(row)
            continue
        seconds = row["frames"] / row["samplerate"]
        dec = common.median(run["decode"])
        e2e = common.median(run["e2e"])
        profs = run["profile"]
        stage_names = sorted({k for p in profs for k in p["stages"]})
        first = run["fp"][0][0]
        same_every_run = all(np.array_equal(a, first) and np.array_equal(b, first)
                             for a, b in run["fp"])
        row.update(
            seconds=seconds,
            decode_s=dec,
            e2e_s=e2e,
            ratio=dec / e2e if e2e > 0 else None,
            decode_xrt=seconds / dec if dec > 0 else None,
            e2e_xrt=seconds / e2e if e2e > 0 else None,
            decode_runs_s=run["decode"],
            e2e_runs_s=run["e2e"],
            profile={
                **common.median_by_key([{k: p[k] for k in PROFILE_KEYS} for p in profs]),
                "stages": {k: common.median([p["stages"].get(k, 0.0) for p in profs])
                           for k in stage_names},
            },
            fingerprint=[float(v) for v in first],
            fingerprint_finite=bool(np.all(np.isfinite(first))),
            fingerprint_identical_across_runs=same_every_run,
        )
        tracks.append(row)
        if log:
            print(f"  {row['file'][:60]:60s} {seconds:7.1f} s  decode {dec:6.3f}  e2e {e2e:6.3f}"
                  f"  ratio {row['ratio']:.3f}", file=sys.stderr)

    measured = [t for t in tracks if "e2e_s" in t]
    formats = {fmt: _aggregate(rows=[t for t in measured if t["format"] == fmt], runs=runs)
               for fmt in sorted({t["format"] for t in measured})}
    return {
        "tracks": tracks,
        "formats": formats,
        "overall": _aggregate(rows=measured, runs=runs),
        "priming_s": priming_s,
        "repeats_interference": repeat_load,
        "errors": [{"file": t["file"], "error": t["error"]} for t in tracks if "error" in t],
    }


def _aggregate(
    *, rows: list[dict[str, Any]], runs: dict[str, dict[str, list[Any]]]
) -> dict[str, Any]:
    """Sum per-track medians of a group of tracks into throughput figures and a stage table."""
    if not rows:
        return {"files": 0}
    audio = sum(t["seconds"] for t in rows)
    dec = sum(t["decode_s"] for t in rows)
    e2e = sum(t["e2e_s"] for t in rows)
    n_rep = min(len(runs[t["file"]]["decode"]) for t in rows)
    per_repeat = [
        {"decode_s": sum(runs[t["file"]]["decode"][i] for t in rows),
         "e2e_s": sum(runs[t["file"]]["e2e"][i] for t in rows)}
        for i in range(n_rep)
    ]
    for r in per_repeat:
        r["ratio"] = r["decode_s"] / r["e2e_s"] if r["e2e_s"] > 0 else None
    ratios = [t["ratio"] for t in rows if t["ratio"] is not None]
    prof = {k: sum(t["profile"][k] for t in rows) for k in PROFILE_KEYS}
    stage_names = sorted({k for t in rows for k in t["profile"]["stages"]})
    stage_sum = {k: sum(t["profile"]["stages"].get(k, 0.0) for t in rows) for k in stage_names}
    stage_total = sum(stage_sum.values())
    analysis = prof["setup_s"] + prof["feed_s"] + prof["finish_s"]
    return {
        "files": len(rows),
        "audio_s": audio,
        "bytes": sum(t["bytes"] for t in rows),
        "decode_s": dec,
        "e2e_s": e2e,
        "ratio": dec / e2e if e2e > 0 else None,
        "decode_xrt": audio / dec if dec > 0 else None,
        "e2e_xrt": audio / e2e if e2e > 0 else None,
        "analysis_added_s": e2e - dec,
        "track_ratio": common.spread(ratios),
        "per_repeat": per_repeat,
        "profile": {
            **prof,
            "analysis_s": analysis,
            "stage_sum_s": stage_total,
            "unattributed_s": analysis - stage_total,
            "stages": {k: {"s": v, "share_of_analysis": v / analysis if analysis > 0 else None,
                           "per_audio_hour_s": v / audio * 3600.0 if audio > 0 else None}
                       for k, v in sorted(stage_sum.items(), key=lambda kv: -kv[1])},
        },
    }


# --------------------------------------------------------------------------------------------
# Start-up time and memory, in fresh subprocesses
# --------------------------------------------------------------------------------------------

#: Code of the start-up child: wall-clock stamps after interpreter start, import, warmup, the
#: first fingerprint and a second one (the steady-state cost of the same 10 s file).
START_CODE = """\
import time
t0 = time.time()
import json, sys
import numpy as np
import kernels
from engine.decode import fingerprint_file
t1 = time.time()
kernels.warmup()
t2 = time.time()
v = fingerprint_file(sys.argv[1]).as_array()
t3 = time.time()
fingerprint_file(sys.argv[1])
t4 = time.time()
print(json.dumps({"t0": t0, "t1": t1, "t2": t2, "t3": t3, "t4": t4,
                  "finite": bool(np.all(np.isfinite(v)))}))
"""


def _child_env(*, kernels: Any, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child: ours, single-threaded, with the measured kernels package first."""
    return common.tree_env(Path(kernels.__file__).resolve().parent.parent, extra=extra)


def _run_child(*, argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, dict[str, Any]]:
    launch = time.time()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {argv[1:3]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return launch, json.loads(proc.stdout.strip().splitlines()[-1])


def start_time(*, kernels: Any, repeats: int, cold: bool, workdir: Path) -> dict[str, Any]:
    """Time a fresh interpreter from launch to its first fingerprint of a 10 s file.

    Warm: a priming run fills the JIT cache first, then ``repeats`` timed runs. Cold (when
    asked): every run gets an empty ``NUMBA_CACHE_DIR`` and ``XDG_CACHE_HOME`` (fresh temp
    dirs), so all JIT kernels compile and any cache kept under the user cache dir is missing.

    Parameters
    ----------
    kernels : module
        The imported ``kernels`` package (children import the same one).
    repeats : int
        Timed runs per mode; medians are reported.
    cold : bool
        Also measure with empty caches.
    workdir : Path
        Scratch folder for the 10 s file and the empty caches.

    Returns
    -------
    dict
        ``warm`` and (with ``cold``) ``cold``: medians and every run of ``interpreter_s``
        (launch to the first line of the child), ``import_s``, ``warmup_s``,
        ``import_warmup_s``, ``first_fingerprint_s``, ``second_fingerprint_s`` and
        ``launch_to_first_fingerprint_s``.
    """
    sample = workdir / "start-10s.flac"
    with sf.SoundFile(sample, "w", samplerate=44100, channels=2, format="FLAC",
                      subtype="PCM_16") as out:
        for block in common.music_blocks(seconds=10.0, sample_rate=44100, channels=2, seed=7):
            out.write(common.to_pcm16(block))
    argv = [sys.executable, "-c", START_CODE, str(sample)]

    def one(env: dict[str, str]) -> dict[str, float]:
        launch, s = _run_child(argv=argv, env=env, cwd=str(workdir))
        if not s["finite"]:
            print("  WARNING: start-up child produced a non-finite fingerprint", file=sys.stderr)
        return {
            "interpreter_s": s["t0"] - launch,
            "import_s": s["t1"] - s["t0"],
            "warmup_s": s["t2"] - s["t1"],
            "import_warmup_s": s["t2"] - s["t0"],
            "first_fingerprint_s": s["t3"] - s["t2"],
            "second_fingerprint_s": s["t4"] - s["t3"],
            "launch_to_first_fingerprint_s": s["t3"] - launch,
        }

    def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
        return {**common.median_by_key(runs), "runs": runs}

    result: dict[str, Any] = {"file_seconds": 10.0}
    env = _child_env(kernels=kernels)
    priming = one(env)
    result["warm"] = {**summary([one(env) for _ in range(repeats)]), "priming_run": priming}
    if cold:
        runs = []
        for i in range(repeats):
            cache = workdir / f"cold-{i}"
            (cache / "numba").mkdir(parents=True)
            (cache / "xdg").mkdir()
            runs.append(one(_child_env(kernels=kernels, extra={
                "NUMBA_CACHE_DIR": str(cache / "numba"), "XDG_CACHE_HOME": str(cache / "xdg")})))
        result["cold"] = {**summary(runs), "emptied": ["NUMBA_CACHE_DIR", "XDG_CACHE_HOME"]}
    return result


def memory_child(*, seconds: float, block_frames: int) -> dict[str, Any]:
    """Run in a fresh process: RSS after import+warmup vs the peak while fingerprinting.

    A synthetic 44.1 kHz stereo track of ``seconds`` is generated block by block and fed to
    ``kernels.Analyzer`` (no decoding); RSS is sampled after every ``feed`` and by a thread
    every 5 ms, and ``ru_maxrss`` is read before and after.

    Parameters
    ----------
    seconds : float
        Length of the synthetic track.
    block_frames : int
        Frames per fed block.

    Returns
    -------
    dict
        MB figures (``baseline_rss_mb``, ``peak_rss_mb``, ``added_mb``, ...), RSS at each tenth
        of the track (``checkpoints``), and the analysis-only x-realtime of the run.
    """
    proc = psutil.Process()
    t0 = time.perf_counter()
    import kernels

    kernels.warmup()
    import_warmup_s = time.perf_counter() - t0
    rss_after_warmup = proc.memory_info().rss
    sr, ch = 44100, 2
    blocks = common.music_blocks(seconds=seconds, sample_rate=sr, channels=ch,
                                 block_frames=block_frames, seed=11)
    first = next(blocks)  # the generator's own buffers now exist: they are not the analyzer's
    gc.collect()
    # Hand the heap the generator's rendering freed back to the OS: otherwise the analyzer's
    # allocations would reuse those pages unseen and its footprint would read too low.
    trimmed = _malloc_trim()
    base = proc.memory_info().rss
    ru_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    total = max(1, round(seconds * sr))
    marks = [total * k // 10 for k in range(1, 11)]
    checkpoints = []
    fed = 0
    t0 = time.perf_counter()
    analyzer = kernels.Analyzer(sr, ch)
    rss_constructed = proc.memory_info().rss
    for block in _chain(first, blocks):
        analyzer.feed(block)
        fed += len(block)
        rss = proc.memory_info().rss
        peak[0] = max(peak[0], rss)
        while marks and fed >= marks[0]:
            checkpoints.append({"audio_s": marks.pop(0) / sr, "rss_mb": rss / common.MB})
    values = analyzer.finish().as_array()
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    rss_end = proc.memory_info().rss
    peak[0] = max(peak[0], rss_end)
    ru_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if ru_after > ru_before:  # the process-lifetime peak rose during the run: that is its peak
        peak[0] = max(peak[0], ru_after)
    del analyzer
    gc.collect()
    return {
        "track_s": total / sr,
        "sample_rate": sr,
        "channels": ch,
        "block_frames": block_frames,
        "import_warmup_s": import_warmup_s,
        "rss_after_import_warmup_mb": rss_after_warmup / common.MB,
        "baseline_rss_mb": base / common.MB,
        "peak_rss_mb": peak[0] / common.MB,
        "added_mb": (peak[0] - base) / common.MB,
        "constructed_mb": (rss_constructed - base) / common.MB,
        "malloc_trim": trimmed,
        "rss_after_finish_mb": rss_end / common.MB,
        "rss_after_release_mb": proc.memory_info().rss / common.MB,
        "ru_maxrss_before_mb": ru_before / common.MB,
        "ru_maxrss_after_mb": ru_after / common.MB,
        "growth_first_to_last_tenth_mb": (checkpoints[-1]["rss_mb"] - checkpoints[0]["rss_mb"]
                                          if checkpoints else None),
        "checkpoints": checkpoints,
        "analysis_only_s": elapsed,
        "analysis_only_xrt": (total / sr) / elapsed if elapsed > 0 else None,
        "fingerprint_finite": bool(np.all(np.isfinite(values))),
    }


def _malloc_trim() -> bool:
    """Ask glibc to return freed heap pages to the OS (``malloc_trim(0)``); False if unavailable."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def memory(*, kernels: Any, seconds: float, block_frames: int, workdir: Path) -> dict[str, Any]:
    """Run :func:`memory_child` in a fresh interpreter (this script with ``--memory-child``).

    Parameters
    ----------
    kernels : module
        The imported ``kernels`` package (the child imports the same one).
    seconds : float
        Length of the synthetic track.
    block_frames : int
        Frames per fed block.
    workdir : Path
        The child's working directory.

    Returns
    -------
    dict
        What :func:`memory_child` returned.
    """
    argv = [sys.executable, str(Path(__file__).resolve()), "--memory-child",
            "--memory-seconds", str(seconds), "--block-frames", str(block_frames)]
    return _run_child(argv=argv, env=_child_env(kernels=kernels), cwd=str(workdir))[1]


# --------------------------------------------------------------------------------------------
# The current tree against a baseline revision (--baseline REV), interleaved in one run
# --------------------------------------------------------------------------------------------

#: Code of a long-lived child that serves one tree (its cwd and first PYTHONPATH entry): it
#: imports that tree's ``kernels`` and ``engine``, calls ``warmup()``, says so on one line of
#: JSON, then answers one JSON line per request line on stdin until EOF. ``sys.argv[1]`` is
#: this bench/ folder (``common.py``: one thread per library, the priming music); it is appended
#: to ``sys.path`` so that nothing in it can shadow the tree's packages.
SERVE_CODE = """\
import time
t0 = time.time()
import json, os, sys
sys.path.append(sys.argv[1])
import common
import numpy as np
import kernels
import engine.decode
from engine.decode import fingerprint_file
t1 = time.time()
kernels.warmup()
t2 = time.time()
reply = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)  # a stray print of the tree's code goes to stderr, never into the replies
reply.write(json.dumps({
    "t0": t0, "t1": t1, "t2": t2, "pid": os.getpid(),
    "kernels_file": os.path.realpath(kernels.__file__),
    "engine_file": os.path.realpath(engine.decode.__file__),
    "fingerprint_version": getattr(kernels, "FINGERPRINT_VERSION", None),
    "fingerprint_names": list(getattr(kernels, "FINGERPRINT_NAMES", ())),
    "threads_env": {k: os.environ.get(k) for k in common.SINGLE_THREAD_ENV},
}) + "\\n")
for line in sys.stdin:
    req = json.loads(line)
    try:
        if req["op"] == "prime":
            c0 = time.perf_counter()
            for sr, ch in req["configs"]:
                a = kernels.Analyzer(sr, ch)
                if ch in (1, 2):
                    for block in common.music_blocks(seconds=3.0, sample_rate=sr, channels=ch,
                                                     block_frames=req["block_frames"]):
                        a.feed(block)
                else:
                    rng = np.random.default_rng(0)
                    a.feed((0.1 * rng.standard_normal((3 * sr, ch))).astype(np.float32))
                a.finish()
            out = {"wall_s": time.perf_counter() - c0}
        else:
            c0 = time.process_time()
            w0 = time.perf_counter()
            fp = fingerprint_file(req["path"], block_frames=req["block_frames"])
            w1 = time.perf_counter()
            c1 = time.process_time()
            out = {"wall_s": w1 - w0, "cpu_s": c1 - c0,
                   "values": [float(v) for v in np.asarray(fp.as_array(), dtype=np.float64)]}
    except Exception as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    reply.write(json.dumps(out) + "\\n")
"""

#: The two trees of a comparison, in the order of the report.
TREES = ("current", "baseline")


class TreeChild:
    """A long-lived interpreter that fingerprints files with one tree's code, on request.

    It runs :data:`SERVE_CODE` with ``cwd=tree`` and ``PYTHONPATH=tree`` (ahead of anything
    already there), one thread per numeric library (:data:`common.SINGLE_THREAD_ENV`), stderr
    to a file. The constructor waits until the child has called ``kernels.warmup()`` and checks
    that the ``kernels`` and ``engine`` it imported lie inside ``tree`` (the editable install of
    the project must not win over PYTHONPATH).

    Parameters
    ----------
    name : str
        ``current`` or ``baseline``.
    tree : Path
        The source tree whose packages the child imports.
    stderr_path : Path
        The child's stderr (its tail is quoted when the child fails).
    """

    def __init__(self, *, name: str, tree: Path, stderr_path: Path) -> None:
        self.name = name
        self.tree = tree.resolve()
        self.stderr_path = stderr_path
        cache = self.tree / "kernels" / "__pycache__"
        self.numba_index_at_start = cache.is_dir() and any(cache.glob("*.nbi"))
        env = common.tree_env(self.tree)
        self._err = open(stderr_path, "wb")  # closed in close()
        spawn = time.time()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE_CODE, str(Path(__file__).resolve().parent)],
            cwd=self.tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._err, text=True, bufsize=1)
        try:
            ready = self._read()
        except BaseException:  # an error, Ctrl-C or SIGTERM while it starts: leave no orphan
            self.proc.kill()
            self.close()
            raise
        warm = time.perf_counter() - t0
        self.ready = ready
        kernels_file = Path(ready["kernels_file"])
        engine_file = Path(ready["engine_file"])
        inside = [f.is_relative_to(self.tree) for f in (kernels_file, engine_file)]
        self.start = {
            "spawn_to_warm_s": warm,
            "interpreter_s": ready["t0"] - spawn,
            "import_s": ready["t1"] - ready["t0"],
            "warmup_s": ready["t2"] - ready["t1"],
            "numba_index_files_at_start": self.numba_index_at_start,
        }
        if not all(inside):
            self.close()
            raise RuntimeError(f"the {name} child imported {kernels_file} and {engine_file}, "
                               f"not the packages of {self.tree}: PYTHONPATH did not win")

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            self._err.flush()
            tail = self.stderr_path.read_bytes()[-3000:].decode("utf-8", "replace")
            raise RuntimeError(f"the {self.name} child ({self.tree}) exited "
                               f"({self.proc.returncode}):\n{tail}")
        return dict(json.loads(line))

    def request(self, **req: Any) -> dict[str, Any]:
        """Send one request, wait for its answer.

        Parameters
        ----------
        **req
            ``op="fingerprint", path=..., block_frames=...`` or ``op="prime", configs=[(sr,
            channels), ...], block_frames=...``.

        Returns
        -------
        dict
            ``wall_s``, ``cpu_s`` (process CPU seconds) and ``values`` for a fingerprint;
            ``wall_s`` for priming; ``error`` when the tree's code raised.
        """
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass  # the child is gone: _read says why
        return self._read()

    def cpu_s(self) -> float:
        """CPU seconds the child used so far (0.0 once it is gone).

        Returns
        -------
        float
        """
        try:
            t = psutil.Process(self.proc.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(t.user + t.system)

    def close(self) -> None:
        """End the child: EOF on its stdin, then terminate / kill if it lingers."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


def _snapshot_with(children: list[TreeChild]) -> dict[str, float]:
    """:func:`common.cpu_snapshot` with the live children's CPU counted as ours."""
    snap = common.cpu_snapshot()
    snap["own"] += sum(c.cpu_s() for c in children)
    return snap


def compare_with_baseline(
    *, rev: str, commit: str, repo: Path, files: list[Path], root: Path, repeats: int,
    block_frames: int, workdir: Path, log: bool,
) -> dict[str, Any]:
    """Time ``fingerprint_file`` of the current tree against revision ``rev``'s, interleaved.

    A detached worktree of ``commit`` is made under ``workdir`` and two :class:`TreeChild`
    processes are started one after the other: the current tree (``repo``) and the baseline
    (the worktree). A fresh worktree has no Numba cache, so the baseline child compiles every
    kernel on its start; start-up (spawn to warm) is reported apart and is in no other figure.
    Each file is decoded once here first (exact frame count, page cache), each child runs one
    untimed short analysis per (rate, channels) present (FFT plans), then for each repeat, for
    each file, both children fingerprint it in turn, the current tree first on even repeats and
    the baseline first on odd ones. Children and worktree are removed on leaving, on errors
    and on Ctrl-C too.

    Parameters
    ----------
    rev : str
        The revision as given.
    commit : str
        Its hash.
    repo : Path
        The repository: the current tree.
    files : list of Path
        Audio files.
    root : Path
        Folder the reported names are relative to.
    repeats : int
        Interleaved repeats.
    block_frames : int
        Passed to ``fingerprint_file``.
    workdir : Path
        Scratch folder (worktree, children's stderr).
    log : bool
        Progress on stderr.

    Returns
    -------
    dict
        ``rev``, ``commit``, ``trees`` (per tree: path, kernels and engine files, fingerprint
        version, kernels source digest, start-up), ``tracks`` (per file and tree every repeat's
        wall and CPU seconds), ``formats`` and ``overall`` (:func:`_ab_group`), ``order`` (which
        tree went first in each repeat), ``repeats_interference``, ``errors``.
    """
    infos: list[dict[str, Any]] = []
    for path in files:
        row: dict[str, Any] = {"file": path.relative_to(root).as_posix(),
                               "format": _format_of(path), "bytes": path.stat().st_size}
        try:
            info = sf.info(str(path))
            row.update(samplerate=info.samplerate, channels=info.channels, subtype=info.subtype,
                       container=info.format)
            _, row["frames"] = common.decode_only(
                path=path, buffer=np.empty((block_frames, info.channels), dtype=np.float32))
            row["seconds"] = row["frames"] / info.samplerate
        except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / OSError
            row["error"] = f"{type(exc).__name__}: {exc}"
        infos.append(row)
    ok = [(p, r) for p, r in zip(files, infos, strict=True) if "error" not in r]
    configs = sorted({(r["samplerate"], r["channels"]) for _, r in ok})

    trees_out: dict[str, Any] = {}
    children: dict[str, TreeChild] = {}
    previous_term = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks below

    signal.signal(signal.SIGTERM, on_term)
    try:
        with common.RevisionWorktree(commit=commit, path=workdir / "baseline-tree", repo=repo,
                                     log=log, what="baseline worktree") as tree:
            for name, path in (("current", repo), ("baseline", tree)):
                if log:
                    print(f"# starting the {name} child ({path})"
                          + (": a fresh worktree has no Numba cache, every kernel compiles now"
                             " (excluded from every figure)" if name == "baseline" else ""),
                          file=sys.stderr)
                child = TreeChild(name=name, tree=path, stderr_path=workdir / f"{name}.stderr")
                children[name] = child
                kdir = Path(child.ready["kernels_file"]).parent
                trees_out[name] = {
                    "path": str(child.tree),
                    "kernels_path": str(kdir),
                    "engine_decode_path": child.ready["engine_file"],
                    "kernels_source_sha256": common.source_digest(directory=kdir),
                    "fingerprint_version": child.ready["fingerprint_version"],
                    "fingerprint_names": child.ready["fingerprint_names"],
                    "threads_env": child.ready["threads_env"],
                    "pid": child.ready["pid"],
                    "start": child.start,
                }
                if log:
                    s = child.start
                    print(f"  {name}: spawn to warm {s['spawn_to_warm_s']:.2f} s (import "
                          f"{s['import_s']:.2f}, warmup {s['warmup_s']:.2f}); kernels from "
                          f"{kdir}", file=sys.stderr)
            for name, child in children.items():
                trees_out[name]["priming_s"] = child.request(
                    op="prime", configs=configs, block_frames=block_frames).get("wall_s")

            runs: dict[str, dict[str, list[dict[str, Any]]]] = {
                name: {r["file"]: [] for _, r in ok} for name in TREES}
            order: list[list[str]] = []
            repeat_load = []
            live = list(children.values())
            for rep in range(repeats):
                first_second = list(TREES) if rep % 2 == 0 else list(reversed(TREES))
                order.append(first_second)
                t_rep = time.perf_counter()
                cpu0 = _snapshot_with(live)
                for path, row in ok:
                    if "error" in row:
                        continue
                    for name in first_second:
                        res = children[name].request(op="fingerprint", path=str(path),
                                                     block_frames=block_frames)
                        if "error" in res:
                            row["error"] = f"{name}: {res['error']}"
                            print(f"  ERROR {row['file']}: {row['error']}", file=sys.stderr)
                            break
                        runs[name][row["file"]].append(res)
                common.round_load(repeat_load, end=_snapshot_with(live),
                                  label=f"repeat {rep + 1}/{repeats} ({first_second[0]} first)",
                                  cpu_start=cpu0, t_start=t_rep, log=log)
    finally:
        for child in children.values():
            child.close()
        signal.signal(signal.SIGTERM, previous_term)

    tracks: list[dict[str, Any]] = []
    for row in infos:
        if "error" in row or not runs["current"].get(row["file"]):
            tracks.append(dict(row))
            continue
        per_tree = {}
        for name in TREES:
            rs = runs[name][row["file"]]
            first = rs[0]["values"]
            wall = common.median([r["wall_s"] for r in rs])
            per_tree[name] = {
                "wall_s": wall,
                "xrt": row["seconds"] / wall if wall > 0 else None,
                "runs_wall_s": [r["wall_s"] for r in rs],
                "runs_cpu_s": [r["cpu_s"] for r in rs],
                "fingerprint": first,
                "fingerprint_finite": bool(np.all(np.isfinite(first))),
                "fingerprint_identical_across_runs": all(r["values"] == first for r in rs),
            }
        cur, base = per_tree["current"]["wall_s"], per_tree["baseline"]["wall_s"]
        row.update(per_tree, ratio_current_over_baseline=cur / base if base > 0 else None)
        tracks.append(row)
        if log:
            ratio = _fmt(row["ratio_current_over_baseline"], ".3f")
            print(f"  {row['file'][:56]:56s} {row['seconds']:7.1f} s  baseline {base:6.3f}  "
                  f"current {cur:6.3f}  current/baseline {ratio}", file=sys.stderr)

    measured = [t for t in tracks if "current" in t]
    differing = []
    for t in measured:
        cur = np.asarray(t["current"]["fingerprint"], dtype=np.float64)
        base = np.asarray(t["baseline"]["fingerprint"], dtype=np.float64)
        if cur.tobytes() != base.tobytes():
            differing.append({"file": t["file"], "max_abs_diff": float(np.max(np.abs(cur - base))),
                              "values": [int(i) for i in np.flatnonzero(cur != base)]})
    return {
        "rev": rev,
        "commit": commit,
        # bit for bit: the same float64 bytes for all 25 values
        "fingerprints_identical_to_baseline": {"files": len(measured) - len(differing),
                                               "of": len(measured), "differing": differing},
        "trees": trees_out,
        "kernels_sources_identical": (trees_out["current"]["kernels_source_sha256"]
                                      == trees_out["baseline"]["kernels_source_sha256"]),
        "order": order,
        "tracks": tracks,
        "formats": {fmt: _ab_group([t for t in measured if t["format"] == fmt])
                    for fmt in sorted({t["format"] for t in measured})},
        "overall": _ab_group(measured),
        "repeats_interference": repeat_load,
        "errors": [{"file": t["file"], "error": t["error"]} for t in tracks if "error" in t],
    }


def _ab_group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per tree the per-repeat totals of a group of tracks, and current/baseline per repeat."""
    if not rows:
        return {"files": 0}
    audio = sum(t["seconds"] for t in rows)
    n_rep = min(len(t[name]["runs_wall_s"]) for t in rows for name in TREES)
    out: dict[str, Any] = {"files": len(rows), "audio_s": audio}
    totals: dict[str, list[float]] = {}
    for name in TREES:
        wall = [sum(t[name]["runs_wall_s"][i] for t in rows) for i in range(n_rep)]
        cpu = [sum(t[name]["runs_cpu_s"][i] for t in rows) for i in range(n_rep)]
        totals[name] = wall
        med = common.median(wall)
        out[name] = {
            "analysis_s": common.spread(wall),
            "xrt": audio / med if med > 0 else None,
            "xrt_range": [audio / max(wall), audio / min(wall)] if min(wall) > 0 else None,
            "cpu_s": common.spread(cpu),
            "per_repeat_s": wall,
            "per_repeat_cpu_s": cpu,
        }
    ratios = [c / b for c, b in zip(totals["current"], totals["baseline"], strict=True) if b > 0]
    out["ratio_current_over_baseline"] = {**common.spread(ratios), "per_repeat": ratios}
    return out


def baseline_summary(*, comparison: dict[str, Any], block_frames: int) -> str:
    """The markdown digest of :func:`compare_with_baseline`, for stderr.

    Parameters
    ----------
    comparison : dict
        What :func:`compare_with_baseline` returned.
    block_frames : int
        The block size used.

    Returns
    -------
    str
        A heading line, a table per format and overall, start-up lines.
    """
    c = comparison
    trees = c["trees"]
    o = c["overall"]
    n_rep = len(c["order"])
    lines = [
        f"### kernels: current tree vs baseline `{c['rev']}` ({c['commit'][:12]})",
        "",
        f"{o.get('files', 0)} files, {o.get('audio_s', 0.0) / 60:.1f} min of audio, {n_rep} "
        f"repeats interleaved (file by file, both trees in turn, first tree alternating), blocks "
        f"of {block_frames} frames, 1 thread per child. Fingerprint version: current "
        f"{trees['current']['fingerprint_version']}, baseline "
        f"{trees['baseline']['fingerprint_version']}. Analysis s = wall seconds of "
        "`fingerprint_file` (decode included): median (min-max) of the per-repeat totals; "
        "current/baseline per repeat, < 1 means the current tree is faster.",
        "",
        "| format | files | audio min | baseline s | baseline xRT | current s | current xRT "
        "| current/baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, g in [*c["formats"].items(), ("**all**", o)]:
        if not g.get("files"):
            continue
        cells = []
        for tree in ("baseline", "current"):
            a = g[tree]["analysis_s"]
            cells.append(f"{a['median']:.2f} ({a['min']:.2f}-{a['max']:.2f})")
            cells.append(_fmt(g[tree]["xrt"], ".1f"))
        r = g["ratio_current_over_baseline"]
        lines.append(f"| {name} | {g['files']} | {g['audio_s'] / 60:.1f} | " + " | ".join(cells)
                     + f" | {_fmt(r['median'], '.3f')} ({_fmt(r['min'], '.3f')}-"
                       f"{_fmt(r['max'], '.3f')}) |")
    lines.append("")
    for tree in TREES:
        s = trees[tree]["start"]
        note = ("" if s["numba_index_files_at_start"] else
                ", no Numba cache at start: the kernels compiled")
        lines.append(f"- start-up of the {tree} child (excluded from the figures above): spawn to "
                     f"warm {s['spawn_to_warm_s']:.2f} s (import {s['import_s']:.2f}, warmup "
                     f"{s['warmup_s']:.2f}{note}); kernels `{trees[tree]['kernels_path']}`")
    same = c["fingerprints_identical_to_baseline"]
    lines.append(f"- fingerprints bit-identical to the baseline's: {same['files']} of "
                 f"{same['of']} files" + "".join(
                     f"; DIFFERS: {d['file']} (values {d['values']}, max |diff| "
                     f"{d['max_abs_diff']:.3g})" for d in same["differing"]))
    if c["kernels_sources_identical"]:
        lines.append("- WARNING: both trees have the same kernels sources: this compares the "
                     "code with itself")
    bad = [t["file"] for t in c["tracks"] if "current" in t and not all(
        t[k]["fingerprint_identical_across_runs"] and t[k]["fingerprint_finite"] for k in TREES)]
    if bad:
        lines.append(f"- WARNING: {len(bad)} files gave a non-finite or varying fingerprint")
    if c["errors"]:
        lines.append(f"- ERRORS: {len(c['errors'])} files failed (see `baseline.errors`)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def human_summary(*, report: dict[str, Any]) -> str:
    """A short plain-text digest of a report, for stderr.

    Parameters
    ----------
    report : dict
        What :func:`main` builds.

    Returns
    -------
    str
        Several lines of text.
    """
    lines = []
    c = report["corpus"]
    s = report["settings"]
    lines.append(f"kernels bench: {c['files']} files, {c['audio_s'] / 60:.1f} min of audio, "
                 f"{s['repeats']} repeats (medians), blocks of {s['block_frames']} frames, "
                 "1 thread")
    res = report.get("results")
    if res and res["overall"].get("files"):
        lines.append(f"{'format':8s} {'files':>5s} {'min':>7s} {'decode s':>9s} {'e2e s':>8s} "
                     f"{'ratio':>6s} {'decode xRT':>10s} {'e2e xRT':>8s}")
        groups = [*res["formats"].items(), ("all", res["overall"])]
        for name, g in groups:
            lines.append(f"{name:8s} {g['files']:5d} {g['audio_s'] / 60:7.1f} {g['decode_s']:9.3f} "
                         f"{g['e2e_s']:8.3f} {_fmt(g['ratio'], '6.3f')} "
                         f"{_fmt(g['decode_xrt'], '10.1f')} {_fmt(g['e2e_xrt'], '8.1f')}")
        prof = res["overall"]["profile"]
        parts = [f"{k} {v['s']:.2f}" for k, v in prof["stages"].items()]
        lines.append(f"analysis (profiled pass) {prof['analysis_s']:.2f} s = stages "
                     f"{prof['stage_sum_s']:.2f} + unattributed {prof['unattributed_s']:.2f}; "
                     f"decode inside it {prof['decode_s']:.2f} s")
        if parts:
            lines.append("stages (s): " + ", ".join(parts))
        if res["errors"]:
            lines.append(f"ERRORS: {len(res['errors'])} files failed (see 'errors')")
    if report.get("baseline"):
        lines.append(baseline_summary(comparison=report["baseline"],
                                      block_frames=s["block_frames"]))
    st = report.get("start")
    if st:
        w = st["warm"]
        lines.append(f"start, warm: import+warmup {w['import_warmup_s']:.2f} s, first "
                     f"fingerprint of 10 s {w['first_fingerprint_s']:.3f} s (then "
                     f"{w['second_fingerprint_s']:.3f}), launch to first fingerprint "
                     f"{w['launch_to_first_fingerprint_s']:.2f} s")
        if "cold" in st:
            k = st["cold"]
            lines.append(f"start, cold: import+warmup {k['import_warmup_s']:.2f} s, "
                         f"launch to first fingerprint {k['launch_to_first_fingerprint_s']:.2f} s")
    inter = report.get("interference") or {}
    parts = [(f"repeat {i + 1}", r) for i, r in enumerate(inter.get("repeats", []))]
    parts += [(k, inter[k]) for k in ("start", "memory") if k in inter]
    warning = common.interference_warning(parts)
    if warning:
        lines.append(warning)
    if report.get("kernels_source_changed_during_run"):
        lines.append("WARNING: the kernels sources changed during the run: mixed code measured")
    m = report.get("memory")
    if m:
        lines.append(f"memory: +{m['added_mb']:.1f} MB over {m['baseline_rss_mb']:.1f} MB after "
                     f"import+warmup, for a {m['track_s'] / 3600:.2f} h track; growth from the "
                     f"first to the last tenth "
                     f"{_fmt(m['growth_first_to_last_tenth_mb'], '.1f')} MB; "
                     f"analysis only {_fmt(m['analysis_only_xrt'], '.0f')} x realtime")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = common.parser(
        script=__file__, quiet=True,
        description="Benchmark the fingerprint kernels against decode-only time, on one core.")
    p.add_argument("corpus", nargs="?", type=Path,
                   help="folder of audio files (searched recursively)")
    p.add_argument("--synthetic", type=int, metavar="N",
                   help="instead of a folder, synthesise N music-like FLAC tracks in a temp dir")
    p.add_argument("--seconds", type=float, default=240.0,
                   help="length of each synthetic track (default 240)")
    p.add_argument("--sample-rate", type=int, default=44100,
                   help="sample rate of synthetic tracks (default 44100)")
    p.add_argument("--repeats", type=int, default=3, help="repeats; medians reported (default 3)")
    p.add_argument("--block-frames", type=int, default=DEFAULT_BLOCK_FRAMES,
                   help=f"frames per decoded block (default {DEFAULT_BLOCK_FRAMES}, engine-run's)")
    p.add_argument("--limit", type=int, metavar="N", help="measure only the first N files")
    p.add_argument("--cold", action="store_true",
                   help="also time start-up with an empty Numba cache (each run compiles)")
    p.add_argument("--no-start", action="store_true", help="skip the start-up measurement")
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--memory-seconds", type=float, default=7200.0,
                   help="length of the synthetic track of the memory measurement (default 7200)")
    p.add_argument("--to-flac", type=Path, metavar="DIR",
                   help="only convert CORPUS to 16-bit FLAC under DIR (same relative names) and "
                        "write DIR/manifest.tsv; no measurement")
    p.add_argument("--baseline", metavar="REV",
                   help="instead of the decode-only comparison, time fingerprint_file of this "
                        "working tree against git revision REV's (a temporary worktree), "
                        "interleaved in one run, each in its own long-lived process")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if args.block_frames < 1 or args.repeats < 1:
        parser.error("--block-frames and --repeats must be >= 1")
    if args.memory_child:
        print(json.dumps(common.jsonable(memory_child(seconds=args.memory_seconds,
                                             block_frames=args.block_frames))))
        return 0
    if args.to_flac is not None:
        if args.corpus is None:
            parser.error("--to-flac needs the CORPUS folder to convert")
        convert_to_flac(source=args.corpus, dest=args.to_flac, block_frames=args.block_frames,
                        log=not args.quiet)
        return 0
    if (args.corpus is None) == (args.synthetic is None):
        parser.error("give either a CORPUS folder or --synthetic N")
    if args.corpus is not None and not args.corpus.is_dir():
        parser.error(f"{args.corpus} is not a folder")
    log = not args.quiet
    commit = None
    if args.baseline is not None:
        try:
            commit = common.resolve_revision(rev=args.baseline, repo=common.REPO)
        except ValueError as exc:
            parser.error(f"--baseline: {exc}")

    import kernels

    started = time.perf_counter()
    load_start = os.getloadavg()
    cpu_start = common.cpu_snapshot()
    source_start = common.source_digest(directory=Path(kernels.__file__).resolve().parent)
    with tempfile.TemporaryDirectory(prefix="kernels-bench-") as tmp:
        workdir = Path(tmp)
        if args.synthetic is not None:
            root = workdir / "synthetic"
            root.mkdir()
            if log:
                print(f"# writing {args.synthetic} synthetic tracks of {args.seconds:g} s",
                      file=sys.stderr)
            files = common.write_synthetic_corpus(
                directory=root, count=args.synthetic, seconds=args.seconds,
                sample_rate=args.sample_rate, block_frames=args.block_frames)
            corpus_path = None
        else:
            root = args.corpus.resolve()
            files = common.find_audio(root=root)
            corpus_path = str(root)
        if args.limit is not None:
            files = files[: args.limit]
        if not files:
            parser.error(f"no audio files under {root}")

        results = comparison = warmup_s = None
        if args.baseline is not None:
            assert commit is not None
            if log:
                print(f"# current tree against {args.baseline} ({commit[:12]}): "
                      f"{len(files)} files", file=sys.stderr)
            comparison = compare_with_baseline(
                rev=args.baseline, commit=commit, repo=common.REPO, files=files, root=root,
                repeats=args.repeats, block_frames=args.block_frames, workdir=workdir, log=log)
            repeats_load = comparison["repeats_interference"]
            errors = comparison["errors"]
        else:
            t0 = time.perf_counter()
            kernels.warmup()
            warmup_s = time.perf_counter() - t0
            if log:
                print(f"# kernels.warmup() {warmup_s:.2f} s; measuring {len(files)} files",
                      file=sys.stderr)
            results = measure_corpus(kernels=kernels, files=files, root=root,
                                     repeats=args.repeats, block_frames=args.block_frames,
                                     log=log)
            repeats_load = results["repeats_interference"]
            errors = results["errors"]
        phases: dict[str, Any] = {}
        start = None
        if not args.no_start:
            t_phase, cpu0 = time.perf_counter(), common.cpu_snapshot()
            if log:
                print("# start-up time (fresh interpreters)", file=sys.stderr)
            start = start_time(kernels=kernels, repeats=args.repeats, cold=args.cold,
                               workdir=workdir)
            phases["start"] = common.other_cpu(start=cpu0, end=common.cpu_snapshot(),
                                               wall_s=time.perf_counter() - t_phase)
        mem = None
        if not args.no_memory:
            t_phase, cpu0 = time.perf_counter(), common.cpu_snapshot()
            if log:
                print(f"# memory ({args.memory_seconds:g} s synthetic track, fresh interpreter)",
                      file=sys.stderr)
            mem = memory(kernels=kernels, seconds=args.memory_seconds,
                         block_frames=args.block_frames, workdir=workdir)
            phases["memory"] = common.other_cpu(start=cpu0, end=common.cpu_snapshot(),
                                                wall_s=time.perf_counter() - t_phase)

    tracks = (comparison or results or {})["tracks"]
    measured = [t for t in tracks if ("current" if comparison else "seconds") in t]
    formats_count: dict[str, int] = {}
    for t in tracks:
        formats_count[t["format"]] = formats_count.get(t["format"], 0) + 1
    schema = ("fingerprint-engine/bench-kernels-vs-baseline/1" if comparison
              else "fingerprint-engine/bench-kernels/1")
    report = {
        **common.report_head(schema=schema, kernels=kernels),
        "settings": {
            "repeats": args.repeats,
            "block_frames": args.block_frames,
            "threads_env": common.SINGLE_THREAD_ENV,
            "cold": args.cold,
            "memory_seconds": None if args.no_memory else args.memory_seconds,
            "statistic": "median over repeats per track; groups sum the per-track medians",
            **({"baseline": args.baseline, "statistic":
                "per tree and group: median, min and max over repeats of the group's total; "
                "current/baseline per repeat"} if comparison else {}),
        },
        "corpus": {
            "path": corpus_path,
            "synthetic": None if args.synthetic is None else {
                "tracks": args.synthetic, "seconds": args.seconds,
                "sample_rate": args.sample_rate, "format": "FLAC PCM_16 stereo"},
            "files": len(files),
            "measured": len(measured),
            "audio_s": sum(t["seconds"] for t in measured),
            "bytes": sum(t["bytes"] for t in tracks),
            "formats": formats_count,
        },
        "in_process_warmup_s": warmup_s,
        "results": results,
        **({"baseline": comparison} if comparison else {}),
        "start": start,
        "memory": mem,
        "bench_wall_s": time.perf_counter() - started,
        "interference": common.run_interference(
            cpu_start=cpu_start, started=started, load_start=load_start,
            repeats=repeats_load, **phases),
        "kernels_source_changed_during_run":
            source_start != common.source_digest(directory=Path(kernels.__file__).resolve().parent),
    }
    report = common.jsonable(report)
    common.write_report(report=report, output=args.output, summary=human_summary(report=report))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
