#!/usr/bin/env python
"""The query side's speed against library size: load, similar, playlist, duplicates; JSON out.

For each size of ``--sizes`` (default 10 000, 100 000 and 1 000 000 tracks) a store of synthetic
fingerprints is built once through :meth:`engine.store.Store.commit` and kept in ``--work``
(default ``/tmp/query-bench``); later runs reuse it. Then, in this one process, each figure the
median of ``--repeats`` runs:

- ``Store.fingerprint_table()``, the snapshot the query side computes on;
- ``Library.load(cache=False)``, the cold path (table, then fit and scale);
- ``Library.load(cache=True)`` with the cache file present (the warm path every query takes
  while the store is unchanged);
- ``nearest(k=10)`` from a random row (``--queries`` of them, one timing each);
- ``playlist(n=30)`` from a random seed, without and with a target, with the near-duplicate
  exclusion ``engine-query playlist`` applies;
- ``duplicates()`` with the defaults of ``engine-query duplicates`` (fewer repeats from 10^6 on);
- ``cmd_similar`` in this process (load from the cache, resolve, search, paths, reads.log);
- ``engine-query --db DB similar ID -k 10`` in a subprocess, wall time and peak RSS (cache warm;
  interpreter start-up and imports included), and once per repeat with ``--no-cache``;

plus the store's size on disk and the cache file's. bench/README.md explains every figure.

Usage::

    .venv/bin/python bench/query_speed.py                      # 10^4, 10^5, 10^6 tracks
    .venv/bin/python bench/query_speed.py --sizes 10000 --repeats 3 -o /tmp/q.json
    .venv/bin/python bench/query_speed.py --from-db fingerprints.lmdb   # resample a real store
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import datetime
import gc
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import kernels
from engine import store as st
from engine.query.commands import (
    DEFAULT_DUPLICATE_DISTANCE,
    DEFAULT_DUPLICATE_DURATION_S,
    cmd_similar,
)
from engine.query.similarity import (
    DUPLICATE_WEIGHTS,
    Library,
    duplicates,
    nearest,
    parse_weights,
    playlist,
)
from kernels import FINGERPRINT_NAMES, FINGERPRINT_VERSION
from kernels.neighbours import near_pairs, weighted_distances

_COL = {name: i for i, name in enumerate(FINGERPRINT_NAMES)}
#: The six band levels, dB relative to the mid band (500-2000 Hz), clamped to +-80.
_BANDS = [_COL[n] for n in ("sub_bass_db", "bass_db", "low_mid_db", "upper_mid_db",
                            "presence_db", "air_db")]
#: Values bounded to [lo, hi] by their definition (docs/FINGERPRINT.md), for the resampler.
_BOUNDED = {"pulse_clarity": (0.0, 1.0), "harmonic_ratio": (0.0, 1.0),
            "peak_consistency": (0.0, 1.0), "chroma_energy": (1.0 / 12.0, 1.0),
            "key_mode": (-1.0, 1.0), "phase_correlation": (-1.0, 1.0),
            **{FINGERPRINT_NAMES[k]: (-80.0, 80.0) for k in _BANDS}}
#: Values that are never negative.
_NON_NEGATIVE = ("crest_db", "loudness_range", "dynamic_range_variation", "tempo_bpm",
                 "transient_density", "spectral_centroid")
#: Share of the tracks that are an exact copy (same content key) of another, and share that are
#: the same music in another encoding (another content key, values within a few thousandths).
EXACT_SHARE = 0.001
NEAR_SHARE = 0.001
MARKER = "bench-complete.json"
#: Version of :func:`synthetic_values` (and of the resampler): a kept store built by another
#: one is rebuilt, not reused. 2: the version-2 fingerprint's values.
GENERATOR = 2


# --------------------------------------------------------------------------------------------
# Synthetic libraries
# --------------------------------------------------------------------------------------------


def synthetic_values(*, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` plausible version-2 fingerprints, with the correlations real mixes have.

    Four hidden factors per track, each N(0, 1), tie the values together as in real music:
    *brightness* ``t`` (the spectral tilt: the upper bands, the centroid up, the first MFCC
    down), *bass weight* ``b`` (sub-bass, bass), *loudness* ``e`` (LUFS up, crest and loudness
    range down: a loud master is a compressed one) and, through ``pulse_clarity``, the beat
    (more onsets, a little less harmonic energy). Medians and spreads are about those of the
    shared corpus:

    - band levels (dB relative to 500-2000 Hz): sub-bass about -2 (-35..+15), bass +5.5
      (-8..+16), low mid +1 (-8..+8), upper mid -8.5 (-28..0), presence -15.5 (-42..-2), air
      -16 (-45..-2); each with its own noise besides ``t`` and ``b``;
    - LUFS -14.5 +- 3 (-35..-5); crest 16.5 dB; LRA log-normal around 7.5 LU; the per-second
      peak spread log-normal around 1.6 dB; peak consistency about 0.75;
    - tempo log-normal around 125 BPM (50-250); pulse clarity beta(1.6, 2.4); onsets
      log-normal around 3 /s (0.05-15); centroid log-normal around 1450 Hz (300-9000 Hz);
      harmonic ratio about 0.88 (1 - beta(1.8, 14)); chroma energy 1/12 + beta(1.5, 25) x 11/12;
    - key: a random relative-major position on the circle of fifths (12 angles, 30 degrees
      apart), strength uniform 0.3-0.9, 5 % without a key (strength 0); ``key_mode``
      +-(0.02-0.3), major for 45 %;
    - MFCC means: ``mfcc_1`` 73 - 15 t (+- 6), ``mfcc_2`` N(3, 10), ``mfcc_3`` N(15, 5),
      ``mfcc_4`` N(3, 3.5);
    - phase correlation 1 - 2 beta(2, 9) (median about 0.67), 5 % mono (1.0).

    Durations: log-normal around 230 s, clipped to 60-600 s.

    Parameters
    ----------
    rng : np.random.Generator
        The source of randomness (a seed gives the same library).
    n : int
        Tracks.

    Returns
    -------
    values : np.ndarray, shape (n, 25), float64
        In ``kernels.FINGERPRINT_NAMES`` order.
    duration_s : np.ndarray, shape (n,), float64
    """
    v = np.empty((n, len(FINGERPRINT_NAMES)))
    c = _COL

    def put(name: str, x: np.ndarray, lo: float, hi: float) -> None:
        v[:, c[name]] = np.clip(x, lo, hi)

    def noise(sd: float) -> np.ndarray:
        return rng.normal(0.0, sd, n)

    t, b, e = (rng.standard_normal(n) for _ in range(3))
    put("sub_bass_db", -2.0 + 4.5 * b - 1.5 * t + noise(4.0), -35.0, 15.0)
    put("bass_db", 5.5 + 3.0 * b - 1.5 * t + noise(2.0), -8.0, 16.0)
    put("low_mid_db", 1.2 + 0.8 * b - 0.8 * t + noise(2.0), -8.0, 8.0)
    put("upper_mid_db", -8.5 + 3.0 * t + noise(2.5), -28.0, 0.0)
    put("presence_db", -15.5 + 5.0 * t + noise(3.0), -42.0, -2.0)
    put("air_db", -16.0 + 7.0 * t + noise(3.5), -45.0, -2.0)
    put("lufs", -14.5 + 3.0 * e, -35.0, -5.0)
    put("crest_db", 16.5 - 2.0 * e + noise(1.3), 6.0, 30.0)
    put("loudness_range", np.exp(np.log(7.5) - 0.35 * e + noise(0.4)), 0.5, 30.0)
    put("dynamic_range_variation", np.exp(np.log(1.6) + noise(0.22)), 0.3, 6.0)
    put("peak_consistency", 0.75 + 0.05 * e + noise(0.05), 0.3, 1.0)
    put("tempo_bpm", np.exp(np.log(125.0) + noise(0.25)), 50.0, 250.0)
    clarity = rng.beta(1.6, 2.4, n)
    put("pulse_clarity", clarity, 0.0, 1.0)
    put("transient_density", np.exp(np.log(3.0) + 1.2 * (clarity - 0.4) + noise(0.7)),
        0.05, 15.0)
    put("spectral_centroid", np.exp(np.log(1450.0) + 0.4 * t + noise(0.15)), 300.0, 9000.0)
    put("harmonic_ratio", 1.0 - rng.beta(1.8, 14.0, n) - 0.1 * (clarity - 0.4), 0.3, 1.0)
    put("chroma_energy", 1.0 / 12.0 + rng.beta(1.5, 25.0, n) * (11.0 / 12.0), 1.0 / 12.0, 1.0)
    angle = rng.integers(0, 12, n) * (np.pi / 6.0)
    strength = rng.uniform(0.3, 0.9, n) * (rng.random(n) >= 0.05)
    v[:, c["key_fifths_x"]] = strength * np.cos(angle)
    v[:, c["key_fifths_y"]] = strength * np.sin(angle)
    v[:, c["key_mode"]] = np.where(rng.random(n) < 0.45, 1.0, -1.0) * rng.uniform(0.02, 0.3, n)
    put("mfcc_1", 73.0 - 15.0 * t + noise(6.0), -100.0, 250.0)
    put("mfcc_2", 3.0 + noise(10.0), -100.0, 100.0)
    put("mfcc_3", 15.0 + noise(5.0), -100.0, 100.0)
    put("mfcc_4", 3.0 + noise(3.5), -100.0, 100.0)
    mono = rng.random(n) < 0.05
    v[:, c["phase_correlation"]] = np.where(mono, 1.0, 1.0 - 2.0 * rng.beta(2.0, 9.0, n))
    duration = np.clip(rng.lognormal(np.log(230.0), 0.35, n), 60.0, 600.0)
    return v, duration


def _clip_to_ranges(v: np.ndarray) -> None:
    """Put (resampled, noisy) values back into their defined ranges, in place."""
    for name, (lo, hi) in _BOUNDED.items():
        v[:, _COL[name]] = np.clip(v[:, _COL[name]], lo, hi)
    for name in _NON_NEGATIVE:
        v[:, _COL[name]] = np.maximum(v[:, _COL[name]], 0.0)
    # the key's (x, y) is strength x (cos, sin): strength at most 1
    xy = v[:, [_COL["key_fifths_x"], _COL["key_fifths_y"]]]
    norm = np.maximum(np.hypot(xy[:, 0], xy[:, 1]), 1.0)
    v[:, _COL["key_fifths_x"]] = xy[:, 0] / norm
    v[:, _COL["key_fifths_y"]] = xy[:, 1] / norm


def resampled_values(*, rng: np.random.Generator, n: int, table: st.FingerprintTable,
                     noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` rows of a real store's current fingerprints, each with multiplicative noise.

    Every value and the duration is multiplied by ``1 + noise * N(0, 1)``; the bounded values
    are then clipped to their ranges (the key's strength to at most 1).

    Parameters
    ----------
    rng : np.random.Generator
    n : int
        Rows to draw (with replacement).
    table : FingerprintTable
        From the source store's :meth:`Store.fingerprint_table`.
    noise : float
        Relative standard deviation of the noise.

    Returns
    -------
    values : np.ndarray, shape (n, 25), float64
    duration_s : np.ndarray, shape (n,), float64
    """
    keep = table.versions == FINGERPRINT_VERSION
    src, dur = table.values[keep], table.duration_s[keep]
    if len(src) == 0:
        raise SystemExit(f"--from-db: the store holds no fingerprint of version "
                         f"{FINGERPRINT_VERSION}; run engine-run on it first")
    pick = rng.integers(0, len(src), n)
    v = src[pick] * (1.0 + noise * rng.standard_normal((n, src.shape[1])))
    _clip_to_ranges(v)
    duration = np.maximum(dur[pick] * (1.0 + noise * rng.standard_normal(n)), 1.0)
    return v, duration


def _library_rows(*, args: argparse.Namespace, n: int,
                  source: st.FingerprintTable | None) -> dict[str, Any]:
    """Values, durations and content keys of a library of ``n`` tracks, duplicates included.

    The last ``EXACT_SHARE`` of the rows copy an earlier row whole (its content key too: the
    same file at another path); the ``NEAR_SHARE`` before them copy an earlier row with a new
    content key, values moved by a few thousandths and the duration by up to 0.05 s (the same
    music in another encoding). Content keys are BLAKE2b-16 of the row counter (spread like
    real keys over the key space).
    """
    rng = np.random.default_rng([args.seed, n])
    if source is None:
        values, duration = synthetic_values(rng=rng, n=n)
    else:
        values, duration = resampled_values(rng=rng, n=n, table=source, noise=args.noise)
    keys = [hashlib.blake2b(i.to_bytes(8, "little"), digest_size=16).digest() for i in range(n)]
    n_exact = int(round(n * EXACT_SHARE))
    n_near = int(round(n * NEAR_SHARE))
    first_copy = n - n_exact - n_near
    if first_copy > 0:
        originals = rng.integers(0, first_copy, n_exact + n_near)
        for k, row in enumerate(range(first_copy, n)):
            orig = int(originals[k])
            values[row] = values[orig]
            duration[row] = duration[orig]
            if k >= n_near:
                keys[row] = keys[orig]
            else:
                values[row] *= 1.0 + 0.002 * rng.standard_normal(values.shape[1])
                _clip_to_ranges(values[row:row + 1])
                duration[row] += rng.uniform(-0.05, 0.05)
    return {"values": values, "duration": duration, "keys": keys,
            "exact_copies": n_exact if first_copy > 0 else 0,
            "near_copies": n_near if first_copy > 0 else 0}


def build_store(*, path: Path, n: int, args: argparse.Namespace,
                source: st.FingerprintTable | None, log: bool) -> dict[str, Any]:
    """Write a library of ``n`` tracks into a new store at ``path`` through ``Store.commit``.

    Batches of about ``--batch`` operations (a ``PutTrack`` and a ``PutFingerprint`` per
    track), paths ``/synthetic/000123.flac``, fake size and mtime, version
    ``kernels.FINGERPRINT_VERSION``. A marker file written last says the store is whole.

    Returns
    -------
    dict
        What the marker holds: size, seed, source, duplicates planted, build time.
    """
    shutil.rmtree(path, ignore_errors=True)
    t0 = time.perf_counter()
    rows = _library_rows(args=args, n=n, source=source)
    values, duration, keys = rows["values"], rows["duration"], rows["keys"]
    width = max(6, len(str(n - 1)))
    per_batch = max(1, args.batch // 2)
    config = st.StoreConfig(path, map_size=max(64 * 1024 * 1024, n * 1536))
    with st.Store.open(config) as s:
        batch: list[st.Operation] = []
        for row in range(n):
            tid = s.new_track_id()
            dur = float(duration[row])
            batch.append(st.PutTrack(st.TrackRecord(
                tid, f"/synthetic/{row:0{width}d}.flac", int(dur * 100_000) + 4096,
                1_700_000_000_000_000_000 + row, keys[row])))
            batch.append(st.PutFingerprint(st.FingerprintRecord(
                tid, FINGERPRINT_VERSION, values[row].tolist(), dur, 44100, 2,
                dur / 1700.0, dur / 960.0)))
            if len(batch) >= 2 * per_batch:
                s.commit(batch)
                batch = []
                if log and (row + 1) % max(per_batch, n // 10) < per_batch:
                    print(f"#   {row + 1}/{n} tracks, {time.perf_counter() - t0:.0f} s",
                          file=sys.stderr)
        if batch:
            s.commit(batch)
        stats = dict(s.stats())
    marker = {
        "tracks": n, "seed": args.seed, "source": args.from_db_label,
        "noise": args.noise if source is not None else None,
        "fingerprint_version": FINGERPRINT_VERSION, "generator": GENERATOR,
        "exact_copies": rows["exact_copies"], "near_copies": rows["near_copies"],
        "ops_per_commit": 2 * per_batch, "build_s": time.perf_counter() - t0,
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "fingerprints": stats["fingerprints"],
    }
    (path / MARKER).write_text(json.dumps(marker, indent=1) + "\n")
    return marker


def ensure_store(*, work: Path, n: int, args: argparse.Namespace,
                 source: st.FingerprintTable | None, log: bool) -> tuple[Path, dict[str, Any],
                                                                          bool]:
    """The store for size ``n`` in ``work``: reused when whole and built alike, else built.

    Returns
    -------
    path : Path
    marker : dict
        See :func:`build_store`.
    built_now : bool
    """
    tag = "synthetic" if source is None else "fromdb-" + hashlib.blake2b(
        args.from_db_label.encode(), digest_size=4).hexdigest()
    path = work / f"{tag}-{n}-seed{args.seed}-v{FINGERPRINT_VERSION}"
    marker_path = path / MARKER
    if not args.rebuild and marker_path.is_file():
        try:
            marker = json.loads(marker_path.read_text())
            if (marker.get("tracks") == n and marker.get("fingerprints") == n
                    and marker.get("generator") == GENERATOR):
                return path, marker, False
        except (OSError, ValueError):
            pass
    if log:
        print(f"# building a store of {n} tracks in {path}", file=sys.stderr)
    marker = build_store(path=path, n=n, args=args, source=source, log=log)
    if log:
        print(f"#   built in {marker['build_s']:.1f} s", file=sys.stderr)
    return path, marker, True


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def _summary(times: list[float]) -> dict[str, Any]:
    """Median (the figure) with min, max and every run."""
    return {**common.spread(times, suffix="_s"), "runs": len(times), "all_s": times}


def _disk(path: Path) -> dict[str, Any]:
    files = [p for p in path.rglob("*") if p.is_file()]
    data = path / "data.mdb"
    return {
        "data_mdb_bytes": data.stat().st_size if data.is_file() else None,
        "data_mdb_allocated_bytes": data.stat().st_blocks * 512 if data.is_file() else None,
        "directory_allocated_bytes": sum(p.stat().st_blocks * 512 for p in files),
    }


def _cache_file(path: Path) -> Path | None:
    found = sorted((path / "query-cache").glob("library-*.npz"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


#: Runs one command and reports its wall time, exit status and peak RSS as JSON. A fresh, small
#: interpreter in between matters: Linux starts a child's ``ru_maxrss`` at the high-water mark of
#: the memory it was forked (or vforked) from, so measured straight from this process the CLI
#: would inherit the bench's own peak (a gigabyte after building 10^6 rows).
_RUN_WRAPPER = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t0 = time.perf_counter()
    code = subprocess.call(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "exit": code, "peak_rss_mb": ru.ru_maxrss / 1024.0,
                  "cpu_s": ru.ru_utime + ru.ru_stime}))
"""


def run_cli(*, argv: list[str], out_path: Path) -> dict[str, Any]:
    """Run a command in a fresh child; its wall time, exit status, CPU time and peak RSS.

    A small wrapper interpreter (``python -I -S``) starts the command, times it from spawn to
    exit (the command's own interpreter start-up and imports included, the wrapper's not) and
    reads ``getrusage(RUSAGE_CHILDREN)``: the peak resident set of that one command, in MB.
    """
    done = subprocess.run([sys.executable, "-I", "-S", "-c", _RUN_WRAPPER, str(out_path),
                           *argv], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _query_figures(*, lib: Library, n: int, args: argparse.Namespace,
                   rng: np.random.Generator, dup_repeats: int, res: dict[str, Any],
                   say: Callable[[str], None]) -> list[int]:
    """nearest, playlist and duplicates on a loaded library, into ``res``; returns
    ``--repeats`` + 1 random track ids for the similar runs."""
    w = parse_weights()
    wd = parse_weights(base=DUPLICATE_WEIGHTS)
    limit = DEFAULT_DUPLICATE_DISTANCE**2 * float(np.sum(wd))
    assert len(lib) == n, f"library of {len(lib)} rows in a store of {n}"
    res["library_bytes"] = sum(a.nbytes for a in (lib.track_ids, lib.values, lib.duration_s,
                                                  lib.content_keys, lib.z))
    rows = rng.choice(n, size=min(args.queries, n), replace=False)
    near_s = []
    for row in rows.tolist():
        t, found = common.timed(lambda r=row: nearest(lib, lib.z[r], w, 10, exclude=(r,)))
        assert len(found) == min(10, n - 1)
        near_s.append(t)
    res["nearest_k10"] = _summary(near_s)

    kw = {"distinct": DEFAULT_DUPLICATE_DISTANCE, "distinct_weights": wd,
          "duration_tolerance_s": DEFAULT_DUPLICATE_DURATION_S}
    pl_s, pl_to_s = [], []
    for _ in range(args.repeats):
        seed, target = (int(x) for x in rng.choice(n, size=2, replace=False))
        t, out = common.timed(lambda a=seed: playlist(lib, a, 30, w, **kw))
        assert len(out) == min(30, n)
        pl_s.append(t)
        t, out = common.timed(lambda a=seed, b=target: playlist(lib, a, 30, w, target=b, **kw))
        pl_to_s.append(t)
    res["playlist_n30"] = _summary(pl_s)
    res["playlist_n30_target"] = _summary(pl_to_s)
    say(f"nearest {common.median(near_s) * 1e3:.1f} ms, playlist "
        f"{common.median(pl_s):.3f} s, with target {common.median(pl_to_s):.3f} s")

    dup_s, pairs_s = [], []
    report = None
    for _ in range(dup_repeats):
        t, report = common.timed(lambda: duplicates(
            lib, wd, max_distance=DEFAULT_DUPLICATE_DISTANCE,
            duration_tolerance_s=DEFAULT_DUPLICATE_DURATION_S))
        dup_s.append(t)
        t, _ = common.timed(lambda: near_pairs(
            lib.z, lib.duration_s, wd, max_sq_distance=limit,
            duration_tolerance_s=DEFAULT_DUPLICATE_DURATION_S))
        pairs_s.append(t)
    assert report is not None
    res["duplicates"] = {**_summary(dup_s), "near_pairs_kernel": _summary(pairs_s),
                         "exact_groups": len(report.exact), "near_pairs": len(report.near),
                         "max_distance": DEFAULT_DUPLICATE_DISTANCE,
                         "duration_tolerance_s": DEFAULT_DUPLICATE_DURATION_S}
    say(f"duplicates {common.median(dup_s):.3f} s ({len(report.exact)} exact groups, "
        f"{len(report.near)} near pairs)")
    return lib.track_ids[rng.choice(n, size=args.repeats + 1, replace=False)].tolist()


def measure_size(*, path: Path, n: int, args: argparse.Namespace, workdir: Path,
                 log: bool) -> dict[str, Any]:
    """Every figure of one library size (module docstring), in one process."""
    repeats = args.repeats
    dup_repeats = (args.duplicates_repeats if args.duplicates_repeats is not None
                   else (repeats if n < 1_000_000 else min(3, repeats)))
    rng = np.random.default_rng([args.seed, n, 1])
    w = parse_weights()
    wd = parse_weights(base=DUPLICATE_WEIGHTS)
    res: dict[str, Any] = {"tracks": n}
    cpu0 = common.cpu_snapshot()
    t_size = time.perf_counter()

    def say(text: str) -> None:
        if log:
            print(f"#   {n}: {text}", file=sys.stderr)

    with st.Store.open(st.StoreConfig(path), readonly=True) as s:
        # untimed: the page cache, the JIT cache of the neighbour kernels, the cache file
        s.fingerprint_table()
        cache_build_s, lib = common.timed(lambda: Library.load(s, cache=True))
        weighted_distances(lib.z, lib.z[0], w)
        near_pairs(lib.z[:10], lib.duration_s[:10], wd, max_sq_distance=0.0,
                   duration_tolerance_s=0.0)
        del lib
        gc.collect()
        cache = _cache_file(path)
        res["cache_write_load_s"] = cache_build_s
        res["cache_file_bytes"] = cache.stat().st_size if cache else None
        res["store"] = {**_disk(path), "used_bytes": s.stats()["used_bytes"],
                        "generation": s.generation()}

        table_s: list[float] = []
        cold_s: list[float] = []
        warm_s: list[float] = []
        for _ in range(repeats):  # interleaved: each sees the same page-cache state
            t, table = common.timed(s.fingerprint_table)
            table_s.append(t)
            del table
            gc.collect()
            t, lib = common.timed(lambda: Library.load(s, cache=False))
            cold_s.append(t)
            del lib
            gc.collect()
            t, lib = common.timed(lambda: Library.load(s, cache=True))
            warm_s.append(t)
            del lib
            gc.collect()
        res["fingerprint_table"] = _summary(table_s)
        res["load_cold"] = _summary(cold_s)
        res["load_warm"] = _summary(warm_s)
        say(f"table {common.median(table_s):.3f} s, load cold "
            f"{common.median(cold_s):.3f} s, warm {common.median(warm_s):.3f} s")

        ids = _query_figures(lib=Library.load(s, cache=True), n=n, args=args, rng=rng,
                             dup_repeats=dup_repeats, res=res, say=say)
        gc.collect()

        sim_s = []
        for tid in ids[1:]:
            t, found = common.timed(lambda t=tid: cmd_similar(s, str(t), io.StringIO(), k=10))
            assert len(found) == min(10, n - 1)
            sim_s.append(t)
        res["similar_in_process"] = _summary(sim_s)

    exe = str(Path(sys.executable).parent / "engine-query")
    out_path = workdir / "cli-out.txt"
    base = [exe, "--db", str(path), "similar"]
    first = run_cli(argv=[*base, str(ids[0]), "-k", "10"], out_path=out_path)  # warm-up
    if first["exit"] != 0:
        raise SystemExit(f"engine-query similar failed (exit {first['exit']}) on {path}")
    warm_runs, cold_runs = [], []
    for tid in ids[1:]:
        r = run_cli(argv=[*base, str(tid), "-k", "10"], out_path=out_path)
        lines = out_path.read_text(errors="replace").splitlines()
        if r["exit"] != 0 or len(lines) != 2 + min(10, n - 1):
            raise SystemExit(f"engine-query similar {tid} gave exit {r['exit']} and "
                             f"{len(lines)} lines: {lines[:3]}")
        warm_runs.append(r)
        r = run_cli(argv=[*base, str(tid), "-k", "10", "--no-cache"], out_path=out_path)
        if r["exit"] != 0:
            raise SystemExit(f"engine-query similar --no-cache {tid} gave exit {r['exit']}")
        cold_runs.append(r)
    for key, runs in (("cli_similar", warm_runs), ("cli_similar_no_cache", cold_runs)):
        res[key] = {**_summary([r["wall_s"] for r in runs]),
                    "peak_rss_mb": common.median([r["peak_rss_mb"] for r in runs]),
                    "peak_rss_mb_max": max(r["peak_rss_mb"] for r in runs),
                    "cpu_s": common.median([r["cpu_s"] for r in runs])}
    say(f"CLI similar {res['cli_similar']['median_s']:.3f} s, peak RSS "
        f"{res['cli_similar']['peak_rss_mb']:.0f} MB; --no-cache "
        f"{res['cli_similar_no_cache']['median_s']:.3f} s")

    med = {k: res[k]["median_s"] for k in ("load_cold", "load_warm", "similar_in_process",
                                           "cli_similar")}
    res["ratios"] = {
        "load_cold_over_warm": med["load_cold"] / med["load_warm"],
        "cli_minus_in_process_s": med["cli_similar"] - med["similar_in_process"],
        "similar_in_process_minus_load_warm_s": med["similar_in_process"] - med["load_warm"],
    }
    res["interference"] = common.other_cpu(
        start=cpu0, end=common.cpu_snapshot(), wall_s=time.perf_counter() - t_size)
    res["settings"] = {"repeats": repeats, "duplicates_repeats": dup_repeats,
                       "queries": res["nearest_k10"]["runs"]}
    return res


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def human_summary(*, report: dict[str, Any]) -> str:
    """A short table of a report, for stderr."""
    lines = [f"query bench: {report['settings']['source']}, medians of "
             f"{report['settings']['repeats']} repeats (times in s; nearest in ms)"]
    head = (f"{'tracks':>9} {'table':>6} {'cold':>6} {'warm':>6} {'nearest':>7} {'playlst':>7} "
            f"{'pl->to':>6} {'dupes':>6} {'in-proc':>7} {'CLI':>6} {'CLI RSS':>7} "
            f"{'noCache':>7} {'store MB':>8} {'cache MB':>8}")
    lines.append(head)
    for r in report["sizes"]:
        lines.append(
            f"{r['tracks']:>9} {r['fingerprint_table']['median_s']:6.3f} "
            f"{r['load_cold']['median_s']:6.3f} {r['load_warm']['median_s']:6.3f} "
            f"{r['nearest_k10']['median_s'] * 1e3:7.2f} {r['playlist_n30']['median_s']:7.3f} "
            f"{r['playlist_n30_target']['median_s']:6.3f} {r['duplicates']['median_s']:6.3f} "
            f"{r['similar_in_process']['median_s']:7.3f} {r['cli_similar']['median_s']:6.3f} "
            f"{r['cli_similar']['peak_rss_mb']:7.0f} "
            f"{r['cli_similar_no_cache']['median_s']:7.3f} "
            f"{r['store']['data_mdb_allocated_bytes'] / common.MB:8.1f} "
            f"{(r['cache_file_bytes'] or 0) / common.MB:8.1f}")
    warning = common.interference_warning(
        [(f"{r['tracks']} tracks", r["interference"]) for r in report["sizes"]])
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = common.parser(
        script=__file__, quiet=True, output=Path("bench/results/query-speed.json"),
        description="Time the query side (load, similar, playlist, duplicates, the CLI) "
                    "against library size.")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000],
                   help="library sizes, tracks (default 10000 100000 1000000)")
    p.add_argument("--work", type=Path, default=Path("/tmp/query-bench"),
                   help="where the stores are built once and kept (default /tmp/query-bench)")
    p.add_argument("--from-db", type=Path, metavar="DB",
                   help="resample the current fingerprints of this store (with --noise) "
                        "instead of drawing synthetic ones")
    p.add_argument("--noise", type=float, default=0.02,
                   help="relative noise on resampled values, with --from-db (default 0.02)")
    p.add_argument("--repeats", type=int, default=5, help="repeats; medians (default 5)")
    p.add_argument("--queries", type=int, default=20,
                   help="random rows timed for nearest, one timing each (default 20)")
    p.add_argument("--duplicates-repeats", type=int,
                   help="repeats of duplicates (default --repeats, at most 3 from 10^6 tracks)")
    p.add_argument("--batch", type=int, default=10_000,
                   help="operations per Store.commit while building (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the library and the picks")
    p.add_argument("--rebuild", action="store_true", help="rebuild the stores even when kept")
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.queries < 1 or args.batch < 2 or min(args.sizes) < 2:
        parser.error("--repeats and --queries must be >= 1, --batch >= 2, sizes >= 2")
    log = not args.quiet
    started = time.perf_counter()
    cpu_start = common.cpu_snapshot()
    load_start = os.getloadavg()
    source = None
    args.from_db_label = "synthetic"
    if args.from_db is not None:
        with st.Store.open(st.StoreConfig(args.from_db), readonly=True) as src:
            source = src.fingerprint_table()
            args.from_db_label = f"{args.from_db.resolve()}@g{source.generation}"
    args.work.mkdir(parents=True, exist_ok=True)
    stores = []
    for n in args.sizes:
        path, marker, built = ensure_store(work=args.work, n=n, args=args, source=source,
                                           log=log)
        stores.append((n, path, marker, built))
    source = None
    kernels.warmup()
    sizes = []
    with tempfile.TemporaryDirectory(prefix="query-bench-") as tmp:
        for n, path, marker, built in stores:
            if log:
                print(f"# measuring {n} tracks ({path})", file=sys.stderr)
            res = measure_size(path=path, n=n, args=args, workdir=Path(tmp), log=log)
            res["build"] = {**marker, "built_this_run": built, "path": str(path)}
            sizes.append(res)
            gc.collect()
    report = common.jsonable({
        **common.report_head(schema="fingerprint-engine/bench-query-speed/1", kernels=kernels),
        "settings": {
            "sizes": args.sizes, "repeats": args.repeats, "queries": args.queries,
            "duplicates_repeats": args.duplicates_repeats, "seed": args.seed,
            "source": args.from_db_label, "noise": args.noise if args.from_db else None,
            "work": str(args.work), "ops_per_commit": args.batch,
            "k": 10, "playlist_n": 30,
            "duplicate_max_distance": DEFAULT_DUPLICATE_DISTANCE,
            "duplicate_duration_tolerance_s": DEFAULT_DUPLICATE_DURATION_S,
            "exact_copy_share": EXACT_SHARE, "near_copy_share": NEAR_SHARE,
            "generator": GENERATOR,
            "threads_env": common.SINGLE_THREAD_ENV,
            "statistic": "median over repeats; nearest: median over --queries random rows",
        },
        "sizes": sizes,
        "bench_wall_s": time.perf_counter() - started,
        "interference": common.run_interference(cpu_start=cpu_start, started=started,
                                                load_start=load_start),
    })
    common.write_report(report=report, output=args.output, summary=human_summary(report=report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
