#!/usr/bin/env python
"""Calibrate ``engine-query duplicates`` on real music: the same audio in three encodings.

Takes ``--limit`` tracks of CORPUS_DIR (FLAC, OGG and MP3 files, searched recursively; spread
evenly over the sorted list), decodes each to float32 and writes it three ways into a work dir:

- FLAC, 16-bit (``to_pcm16``: rounded, clipped to int16);
- MP3, constant bit rate: libsndfile maps ``compression_level`` c to ``320 - 288 c`` kbit/s
  (MPEG-1, 32 kHz and up; ``160 - 152 c`` for MPEG-2, 16-24 kHz), so c = 0.444 gives 192 kbit/s
  (``bitrate_mode="CONSTANT"``); a source under 32 kHz gets MPEG-2's highest, 160 kbit/s (c = 0);
- OGG Vorbis q6 (``compression_level=0.4``: libsndfile's Vorbis quality is ``1 - c``).

All three are made from the same 16-bit samples, written in blocks of 65536 frames (libsndfile's
MP3 writer crashes when handed a long track in one call). Then ``engine-run --db WORK/store``
fingerprints them (a subprocess, the project's CLI), the library is loaded from the store and
the distance D of engine/query/similarity.py is computed for every pair, with ``DUPLICATE_WEIGHTS``
(what ``duplicates`` uses) and ``DEFAULT_WEIGHTS`` (``similar``, ``playlist``):

- same source (FLAC-MP3, FLAC-OGG, MP3-OGG): min, median, p95, max;
- different sources, all pairs and those whose durations are within
  ``DEFAULT_DUPLICATE_DURATION_S``: min, p1, p5, median;
- ``engine-query duplicates --jsonl`` at its defaults: recall (same-source pairs it reports)
  and false positives (different-source pairs it reports);
- the worst same-source pair: which values moved most, with both raw values.

Usage::

    .venv/bin/python bench/query_calibration.py /work/corpus-small --limit 12 \\
        -o bench/results/query-calibration.json

D is measured in the library's own interquartile ranges (the scaling is fitted on the store's
tracks, here the encoded ones): bench/README.md says what that means for the threshold.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

import kernels
from engine import store as st
from engine.query.commands import DEFAULT_DUPLICATE_DISTANCE, DEFAULT_DUPLICATE_DURATION_S
from engine.query.similarity import DEFAULT_WEIGHTS, DUPLICATE_WEIGHTS, Library, parse_weights
from kernels import FINGERPRINT_NAMES

#: Source files taken from the corpus.
SOURCE_EXTENSIONS = frozenset({".flac", ".ogg", ".oga", ".mp3"})
FORMATS = ("flac", "mp3", "ogg")
MP3_KBPS = 192
VORBIS_LEVEL = 0.4  # libsndfile: Vorbis quality = 1 - level = 0.6, i.e. oggenc -q 6
BLOCK_FRAMES = 65536
_NAME = re.compile(r"^src(\d+)\.(flac|mp3|ogg)$")


def encode_source(*, src: Path, index: int, audio: Path) -> dict[str, Any]:
    """Decode ``src`` and write it as ``srcNN.flac``, ``srcNN.mp3`` and ``srcNN.ogg``.

    The three encoders get the same 16-bit samples (the FLAC's), block by block.
    """
    stem = audio / f"src{index:02d}"
    clipped = frames = 0
    with sf.SoundFile(src) as f:
        sr, ch = f.samplerate, f.channels
        level, kbps = common.mp3_level(samplerate=sr, kbps=MP3_KBPS)
        outs = {
            "flac": sf.SoundFile(f"{stem}.flac", "w", samplerate=sr, channels=ch, format="FLAC",
                                 subtype="PCM_16"),
            "mp3": sf.SoundFile(f"{stem}.mp3", "w", samplerate=sr, channels=ch, format="MP3",
                                subtype="MPEG_LAYER_III", compression_level=level,
                                bitrate_mode="CONSTANT"),
            "ogg": sf.SoundFile(f"{stem}.ogg", "w", samplerate=sr, channels=ch, format="OGG",
                                subtype="VORBIS", compression_level=VORBIS_LEVEL),
        }
        try:
            buf = np.empty((BLOCK_FRAMES, ch), dtype=np.float32)
            while True:
                got = f.read(out=buf)
                if len(got):
                    clipped += int(np.count_nonzero((got >= 1.0) | (got < -1.0)))
                    pcm = common.to_pcm16(got)
                    outs["flac"].write(pcm)
                    as_float = pcm.astype(np.float32) * np.float32(1.0 / 32768.0)
                    outs["mp3"].write(as_float)
                    outs["ogg"].write(as_float)
                    frames += len(got)
                if len(got) < BLOCK_FRAMES:
                    break
        finally:
            for out in outs.values():
                out.close()
    seconds = frames / sr
    sizes = {fmt: Path(f"{stem}.{fmt}").stat().st_size for fmt in FORMATS}
    return {
        "index": index, "source": str(src), "samplerate": sr, "channels": ch,
        "seconds": seconds, "clipped_samples": clipped,
        "mp3_compression_level": level, "mp3_nominal_kbps": kbps,
        "kbps": {fmt: sizes[fmt] * 8 / seconds / 1000 if seconds else None for fmt in FORMATS},
    }


def _stats(values: list[float], points: dict[str, float]) -> dict[str, Any]:
    """Named percentiles (``points``: name -> percent) of a list; None for an empty one."""
    if not values:
        return {"count": 0, **{k: None for k in points}}
    arr = np.asarray(values)
    return {"count": len(values),
            **{k: float(np.percentile(arr, p)) for k, p in points.items()}}


SAME_POINTS = {"min": 0.0, "median": 50.0, "p95": 95.0, "max": 100.0}
DIFF_POINTS = {"min": 0.0, "p1": 1.0, "p5": 5.0, "median": 50.0}


def _moved(*, lib: Library, a: int, b: int, w: np.ndarray, top: int) -> list[dict[str, Any]]:
    """The values of rows ``a`` and ``b`` sorted by their weighted share of ``D^2``, then by
    scaled difference (so weight-0 values that moved are listed too)."""
    dz = lib.z[a] - lib.z[b]
    contrib = w * dz * dz
    total = float(contrib.sum())
    order = np.lexsort((-np.abs(dz), -contrib))[:top]
    return [{"name": FINGERPRINT_NAMES[k], "weight": float(w[k]),
             "a": float(lib.values[a, k]), "b": float(lib.values[b, k]),
             "scaled_difference": float(dz[k]),
             "share_of_d2": float(contrib[k] / total) if total > 0 else 0.0}
            for k in order]


def _largest_moves(*, lib: Library, a: int, b: int, top: int) -> list[dict[str, Any]]:
    dz = np.abs(lib.z[a] - lib.z[b])
    order = np.argsort(-dz, kind="stable")[:top]
    return [{"name": FINGERPRINT_NAMES[k], "a": float(lib.values[a, k]),
             "b": float(lib.values[b, k]), "scaled_difference": float(dz[k]),
             "duplicate_weight": float(DUPLICATE_WEIGHTS[FINGERPRINT_NAMES[k]])}
            for k in order]


def analyse(*, store_path: Path, sources: list[dict[str, Any]], cli_records: list[dict[str, Any]],
            ) -> dict[str, Any]:
    """Distances of every pair of the store's library, and what ``duplicates`` reported."""
    with st.Store.open(st.StoreConfig(store_path), readonly=True) as s:
        lib = Library.load(s, cache=False)
        where: dict[int, tuple[int, str]] = {}
        for row, tid in enumerate(lib.track_ids.tolist()):
            track = s.get_track(tid)
            m = _NAME.match(os.path.basename(track.path)) if track else None
            if m:
                where[row] = (int(m.group(1)), m.group(2))
    weights = {"duplicate": parse_weights(base=DUPLICATE_WEIGHTS),
               "default": parse_weights(base=DEFAULT_WEIGHTS)}
    row_of = {v: k for k, v in where.items()}
    reported: dict[tuple[int, int], float] = {}
    for rec in cli_records:
        ids = [t["track_id"] for t in rec["tracks"]]
        for x, y in itertools.combinations(ids, 2):
            reported[(min(x, y), max(x, y))] = float(rec["distance"])

    def pair_record(a: int, b: int) -> dict[str, Any]:
        ta, tb = int(lib.track_ids[a]), int(lib.track_ids[b])
        dd = abs(float(lib.duration_s[a] - lib.duration_s[b]))
        return {
            "a": f"src{where[a][0]:02d}.{where[a][1]}", "b": f"src{where[b][0]:02d}.{where[b][1]}",
            "track_ids": [ta, tb],
            "d_duplicate": lib.distance(a, b, weights["duplicate"]),
            "d_default": lib.distance(a, b, weights["default"]),
            "duration_difference_s": dd,
            "reported": (min(ta, tb), max(ta, tb)) in reported,
        }

    same: list[dict[str, Any]] = []
    for src in sources:
        i = src["index"]
        for fa, fb in itertools.combinations(FORMATS, 2):
            if (i, fa) in row_of and (i, fb) in row_of:
                same.append({"kind": f"{fa}-{fb}", **pair_record(row_of[(i, fa)],
                                                                 row_of[(i, fb)])})
    different = [pair_record(a, b) for a, b in itertools.combinations(sorted(where), 2)
                 if where[a][0] != where[b][0]]
    close = [p for p in different if p["duration_difference_s"] <= DEFAULT_DUPLICATE_DURATION_S]

    def distribution(key: str) -> dict[str, Any]:
        out = {"same_source": _stats([p[key] for p in same], SAME_POINTS),
               "same_source_by_kind": {
                   f"{fa}-{fb}": _stats([p[key] for p in same if p["kind"] == f"{fa}-{fb}"],
                                        SAME_POINTS)
                   for fa, fb in itertools.combinations(FORMATS, 2)},
               "different_source": _stats([p[key] for p in different], DIFF_POINTS),
               "different_source_close_duration": _stats([p[key] for p in close],
                                                         DIFF_POINTS)}
        return out

    found_same = sum(p["reported"] for p in same)
    false_pos = [p for p in different if p["reported"]]
    # what the threshold would give on the pairs above, by the library's own distances
    predicted = sum(p["d_duplicate"] <= DEFAULT_DUPLICATE_DISTANCE
                    and p["duration_difference_s"] <= DEFAULT_DUPLICATE_DURATION_S for p in same)
    worst = max(same, key=lambda p: p["d_duplicate"]) if same else None
    worst_detail = None
    if worst is not None:
        a, b = (lib.row(t) for t in worst["track_ids"])
        assert a is not None and b is not None
        worst_detail = {**worst,
                        "moved_most": _moved(lib=lib, a=a, b=b, w=weights["duplicate"], top=6),
                        "largest_scaled_moves": _largest_moves(lib=lib, a=a, b=b, top=6)}
    moves = []
    if same:
        pairs = [(lib.row(p["track_ids"][0]), lib.row(p["track_ids"][1])) for p in same]
        dz = np.abs(np.array([lib.z[a] - lib.z[b] for a, b in pairs]))
        draw = np.abs(np.array([lib.values[a] - lib.values[b] for a, b in pairs]))
        for k in np.argsort(-np.median(dz, axis=0), kind="stable"):
            name = FINGERPRINT_NAMES[k]
            moves.append({"name": name, "duplicate_weight": float(DUPLICATE_WEIGHTS[name]),
                          "median_scaled": float(np.median(dz[:, k])),
                          "max_scaled": float(dz[:, k].max()),
                          "median_raw": float(np.median(draw[:, k])),
                          "max_raw": float(draw[:, k].max()),
                          "library_scale": float(lib.scaling.scale[k])})
    return {
        "tracks_in_library": len(lib),
        "distance": {"duplicate_weights": distribution("d_duplicate"),
                     "default_weights": distribution("d_default")},
        "same_source_max_duration_difference_s":
            max((p["duration_difference_s"] for p in same), default=None),
        "at_default_threshold": {
            "max_distance": DEFAULT_DUPLICATE_DISTANCE,
            "duration_tolerance_s": DEFAULT_DUPLICATE_DURATION_S,
            "same_source_pairs": len(same),
            "same_source_reported": int(found_same),
            "recall": found_same / len(same) if same else None,
            "same_source_within_by_library_distance": int(predicted),
            "different_source_pairs": len(different),
            "false_positives": len(false_pos),
            "different_source_within_distance_any_duration": sum(
                p["d_duplicate"] <= DEFAULT_DUPLICATE_DISTANCE for p in different),
            "false_positive_pairs": false_pos,
            "cli_records": len(cli_records),
        },
        "worst_same_source_pair": worst_detail,
        "moves_per_value": moves,
        "closest_different_source_pairs": sorted(different, key=lambda p: p["d_duplicate"])[:10],
        "same_source_pairs": same,
        "scaling": {"center": dict(zip(FINGERPRINT_NAMES, lib.scaling.center.tolist(),
                                       strict=True)),
                    "scale": dict(zip(FINGERPRINT_NAMES, lib.scaling.scale.tolist(),
                                      strict=True))},
    }


def human_summary(*, report: dict[str, Any]) -> str:
    """A few lines of a report, for stderr."""
    r = report["results"]
    t = r["at_default_threshold"]
    lines = [f"duplicates calibration: {len(report['sources'])} sources x {len(FORMATS)} "
             f"encodings ({', '.join(report['settings']['encodings'].values())}), "
             f"{r['tracks_in_library']} tracks in the library; engine-run "
             f"{report['engine_run']['wall_s']:.1f} s"]

    def fmt(d: dict[str, Any], keys: list[str]) -> str:
        return " ".join(f"{k} {d[k]:.3f}" if d[k] is not None else f"{k} -" for k in keys)

    for name, key in (("DUPLICATE_WEIGHTS", "duplicate_weights"),
                      ("DEFAULT_WEIGHTS", "default_weights")):
        d = r["distance"][key]
        lines.append(f"D with {name}:")
        lines.append(f"  same source ({d['same_source']['count']} pairs): "
                     + fmt(d["same_source"], list(SAME_POINTS)))
        for kind, s in d["same_source_by_kind"].items():
            lines.append(f"    {kind:9s}: " + fmt(s, list(SAME_POINTS)))
        lines.append(f"  different sources ({d['different_source']['count']} pairs): "
                     + fmt(d["different_source"], list(DIFF_POINTS)))
        c = d["different_source_close_duration"]
        lines.append(f"  different, durations within {DEFAULT_DUPLICATE_DURATION_S:g} s "
                     f"({c['count']} pairs): " + fmt(c, list(DIFF_POINTS)))
    lines.append(f"engine-query duplicates (D <= {t['max_distance']:g}, durations within "
                 f"{t['duration_tolerance_s']:g} s): recall {t['same_source_reported']}/"
                 f"{t['same_source_pairs']}, false positives {t['false_positives']}/"
                 f"{t['different_source_pairs']}")
    w = r["worst_same_source_pair"]
    if w:
        moved = ", ".join(f"{m['name']} {m['a']:.4g}->{m['b']:.4g} ({m['share_of_d2']:.0%})"
                          for m in w["moved_most"][:4] if m["share_of_d2"] > 0)
        lines.append(f"worst same-source pair {w['a']} / {w['b']}: D {w['d_duplicate']:.3f} "
                     f"(default weights {w['d_default']:.3f}); moved most: {moved}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = common.parser(
        script=__file__, quiet=True, output=Path("bench/results/query-calibration.json"),
        description="Calibrate engine-query duplicates: the same tracks as FLAC, MP3 192k and "
                    "OGG q6 against different tracks.")
    p.add_argument("corpus", type=Path, help="folder of FLAC/OGG/MP3 files (recursive)")
    p.add_argument("--limit", type=int, default=12,
                   help="source tracks, spread evenly over the sorted list (default 12; 0: all)")
    p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)),
                   help="engine-run --cores (default: usable cores)")
    p.add_argument("--work", type=Path,
                   help="work folder (must not exist or be empty; default: a temporary one, "
                        "removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Run the calibration from the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        parser.error(f"{args.corpus} is not a folder")
    files = common.find_audio(root=args.corpus.resolve(), extensions=SOURCE_EXTENSIONS)
    picked = common.pick_spread(files=files, limit=args.limit)
    if not picked:
        parser.error(f"no FLAC, OGG or MP3 files under {args.corpus}")
    log = not args.quiet
    started = time.perf_counter()
    cpu_start = common.cpu_snapshot()
    if args.work is not None:
        if args.work.exists() and any(args.work.iterdir()):
            parser.error(f"--work {args.work} is not empty")
        args.work.mkdir(parents=True, exist_ok=True)
        work, remove = args.work, False
    else:
        work, remove = Path(tempfile.mkdtemp(prefix="query-calibration-")), not args.keep
    try:
        audio = work / "audio"
        audio.mkdir()
        sources = []
        t0 = time.perf_counter()
        for i, src in enumerate(picked):
            sources.append(encode_source(src=src, index=i, audio=audio))
            sources[-1]["source"] = str(src.relative_to(args.corpus.resolve()))
            if log:
                s = sources[-1]
                print(f"# src{i:02d} {s['source']}: {s['seconds']:.1f} s, {s['samplerate']} Hz;"
                      f" MP3 {s['kbps']['mp3']:.0f} kbit/s, OGG {s['kbps']['ogg']:.0f} kbit/s",
                      file=sys.stderr)
        encode_s = time.perf_counter() - t0
        store_path = work / "store"
        t0 = time.perf_counter()
        run = subprocess.run([str(common.engine_script("engine-run")), "--db", str(store_path),
                              "--cores", str(args.cores), "-q", str(audio)], check=False)
        run_s = time.perf_counter() - t0
        if run.returncode != 0:
            raise SystemExit(f"engine-run exited with {run.returncode} on {audio}")
        if log:
            print(f"# engine-run --cores {args.cores}: {run_s:.1f} s", file=sys.stderr)
        dup = subprocess.run([str(common.engine_script("engine-query")), "--db", str(store_path),
                              "duplicates", "--jsonl"], capture_output=True, text=True,
                             check=False)
        if dup.returncode != 0:
            raise SystemExit(f"engine-query duplicates exited with {dup.returncode}: "
                             f"{dup.stderr.strip()}")
        cli_records = [json.loads(line) for line in dup.stdout.splitlines() if line.strip()]
        results = analyse(store_path=store_path, sources=sources, cli_records=cli_records)
    finally:
        if remove:
            shutil.rmtree(work, ignore_errors=True)
        elif log:
            print(f"# work folder kept: {work}", file=sys.stderr)
    levels = sorted({(s["samplerate"] >= 32000, s["mp3_compression_level"],
                      s["mp3_nominal_kbps"]) for s in sources})
    report = common.jsonable({
        **common.report_head(schema="fingerprint-engine/bench-query-calibration/1",
                             kernels=kernels),
        "settings": {
            "corpus": str(args.corpus.resolve()), "corpus_files": len(files),
            "limit": args.limit, "selection": "spread evenly over the sorted list",
            "cores": args.cores,
            "encodings": {"flac": "FLAC PCM_16",
                          "mp3": f"MP3 CBR {MP3_KBPS} kbit/s (LAME via libsndfile)",
                          "ogg": "Ogg Vorbis q6"},
            "mp3_levels": [{"samplerate_32k_and_up": hi, "compression_level": lvl,
                            "nominal_kbps": kbps} for hi, lvl, kbps in levels],
            "vorbis_compression_level": VORBIS_LEVEL,
            "block_frames": BLOCK_FRAMES,
            "duplicate_weights": dict(DUPLICATE_WEIGHTS),
        },
        "sources": sources,
        "encode_s": encode_s,
        "engine_run": {"wall_s": run_s, "cores": args.cores},
        "results": results,
        "bench_wall_s": time.perf_counter() - started,
        "interference": common.other_cpu(start=cpu_start, end=common.cpu_snapshot(),
                                         wall_s=time.perf_counter() - started),
    })
    common.write_report(report=report, output=args.output, summary=human_summary(report=report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
