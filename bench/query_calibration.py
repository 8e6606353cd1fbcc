#!/usr/bin/env python
"""Does ``engine-query`` recognise the same song after a lossy encode? Issue 13, item 9.

Takes ``--limit`` tracks of CORPUS_DIR (FLAC, OGG Vorbis and Opus, MP3 and WAV files, searched
recursively; spread evenly over the sorted list; 0 takes all), decodes each to float32 and
writes it three ways into a work dir:

- FLAC, 16-bit (``to_pcm16``: rounded, clipped to int16): the *source*;
- MP3, constant bit rate ``--mp3-kbps`` (default 128): libsndfile maps ``compression_level`` c
  to ``320 - 288 c`` kbit/s (MPEG-1, 32 kHz and up), so 128 kbit/s is c = 0.667;
  ``160 - 152 c`` for MPEG-2 (16-24 kHz), ``64 - 56 c`` below, clamped to the highest rate
  the format has (``common.mp3_level``; ``bitrate_mode="CONSTANT"``);
- OGG Vorbis quality ``--ogg-quality`` (default 3, as ``oggenc -q 3``): libsndfile's Vorbis
  quality is ``1 - compression_level``, so q3 is ``compression_level`` 0.7.

All three are made from the same 16-bit samples, written in blocks of 65536 frames (libsndfile's
MP3 writer crashes when handed a long track in one call), ``--cores`` sources at a time. Then
``engine-run --db WORK/store`` fingerprints them (a subprocess, the project's CLI) and the store
is queried as a user would:

- **nearest neighbour** of every MP3 and OGG copy, as ``engine-query similar COPY -k 1`` finds
  it: ``cmd_similar`` of engine/query/commands.py, in process (``DEFAULT_WEIGHTS``, the copy
  itself excluded, the library's own scaling); ``--cli-checks`` copies are also asked through
  the ``engine-query`` executable and must give the same answer. Reported: the share of copies
  whose nearest neighbour is their own FLAC source (the figure of item 9, which asks 100 %),
  the share whose nearest neighbour is any file of the same song (the source or the other
  codec's copy), and the share whose FLAC source is nearer than every file of every other song
  (the same as: the nearest neighbour is the FLAC source once the other codec's copy is left
  out; two lossy copies of one source can be nearer each other than either is to the FLAC);
  for each copy the distance to its source, the source's rank and the nearest other song; each
  failure with the values that moved most from the source (``Library.load`` and ``nearest``
  give the full ranking);
- ``engine-query duplicates --jsonl`` at its defaults: recall (same-source pairs it reports:
  FLAC-MP3, FLAC-OGG, MP3-OGG) and false positives (pairs of different songs it reports; item
  9 asks every pair and 0 false positives);
- the distance D of engine/query/similarity.py for every pair, with ``DUPLICATE_WEIGHTS`` (what
  ``duplicates`` uses) and ``DEFAULT_WEIGHTS`` (``similar``, ``playlist``): same source min,
  median, p95, max (also per pair kind); different sources, all pairs and those whose
  durations are within ``DEFAULT_DUPLICATE_DURATION_S``: min, p1, p5, median; the worst
  same-source pair and, per value, how far the encodes moved it.

Usage::

    .venv/bin/python bench/query_calibration.py ~/.cache/fingerprint-engine/corpus-full \\
        --limit 0 -o bench/results/query-calibration.json
    .venv/bin/python bench/query_calibration.py ~/.cache/fingerprint-engine/corpus-full \\
        --limit 0 --reuse ~/.cache/fingerprint-engine/robustness-full \\
        --work ~/.cache/fingerprint-engine/query-calibration-full \\
        -o bench/results/query-calibration-full.json   # the robustness bench's encodes

D is measured in the library's own interquartile ranges (the scaling is fitted on the store's
tracks, here the source FLACs and their copies): bench/README.md says what that means for the
threshold.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import concurrent.futures
import io
import itertools
import json
import multiprocessing
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
from engine.query.commands import (
    DEFAULT_DUPLICATE_DISTANCE,
    DEFAULT_DUPLICATE_DURATION_S,
    cmd_similar,
)
from engine.query.similarity import (
    DEFAULT_WEIGHTS,
    DUPLICATE_WEIGHTS,
    Library,
    nearest,
    parse_weights,
)
from kernels import FINGERPRINT_NAMES

#: Source files taken from the corpus.
SOURCE_EXTENSIONS = frozenset({".flac", ".ogg", ".oga", ".opus", ".mp3", ".wav"})
FORMATS = ("flac", "mp3", "ogg")
#: The lossy copies; the FLAC is their source.
COPIES = ("mp3", "ogg")
DEFAULT_MP3_KBPS = 128
DEFAULT_OGG_QUALITY = 3.0  # libsndfile: Vorbis quality = 1 - compression_level (0.7 here)
BLOCK_FRAMES = 65536
_NAME = re.compile(r"^src(\d+)\.(flac|mp3|ogg)$")


def vorbis_level(quality: float) -> float:
    """libsndfile's ``compression_level`` for Vorbis quality ``quality`` (oggenc's -q, 0-10):
    libsndfile sets the encoder's quality to ``1 - compression_level`` (0..1)."""
    return round(1.0 - quality / 10.0, 6)


def _label(index: int, fmt: str) -> str:
    return f"src{index:03d}.{fmt}"


def encode_source(*, src: Path, index: int, audio: Path, mp3_kbps: int,
                  ogg_level: float) -> dict[str, Any]:
    """Decode ``src`` and write it as ``srcNNN.flac``, ``srcNNN.mp3`` and ``srcNNN.ogg``.

    The three encoders get the same 16-bit samples (the FLAC's), block by block. The MP3 is
    CBR at ``mp3_kbps`` (or the highest rate the source's sample rate allows), the OGG Vorbis
    at ``compression_level`` ``ogg_level``.
    """
    stem = audio / f"src{index:03d}"
    clipped = frames = 0
    with sf.SoundFile(src) as f:
        sr, ch = f.samplerate, f.channels
        level, kbps = common.mp3_level(samplerate=sr, kbps=mp3_kbps)
        outs = {
            "flac": sf.SoundFile(f"{stem}.flac", "w", samplerate=sr, channels=ch, format="FLAC",
                                 subtype="PCM_16"),
            "mp3": sf.SoundFile(f"{stem}.mp3", "w", samplerate=sr, channels=ch, format="MP3",
                                subtype="MPEG_LAYER_III", compression_level=level,
                                bitrate_mode="CONSTANT"),
            "ogg": sf.SoundFile(f"{stem}.ogg", "w", samplerate=sr, channels=ch, format="OGG",
                                subtype="VORBIS", compression_level=ogg_level),
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


def reuse_source(*, src: Path, rel: Path, index: int, audio: Path, reuse: Path) -> dict[str, Any]:
    """Link ``bench/robustness.py``'s encodes of ``src`` as ``srcNNN.flac|mp3|ogg``.

    Its ``source.flac``, ``mp3_128k.mp3`` and ``ogg_q3.ogg`` (in ``REUSE/audio/<rel>/``) are
    made exactly as :func:`encode_source` makes them at the defaults (the same 16-bit samples,
    ``common.mp3_level`` for 128 kbit/s, Vorbis ``compression_level`` 0.7), so linking them
    saves re-encoding the corpus. Hard links when ``audio`` is on the same file system, copies
    otherwise.
    """
    folder = reuse / "audio" / rel
    meta = json.loads((folder / "meta.json").read_text())
    stem = audio / f"src{index:03d}"
    for fmt, name in (("flac", "source.flac"), ("mp3", "mp3_128k.mp3"), ("ogg", "ogg_q3.ogg")):
        target = Path(f"{stem}.{fmt}")
        try:
            os.link(folder / name, target)
        except OSError:
            shutil.copyfile(folder / name, target)
    seconds = float(meta["seconds"])
    sizes = {fmt: Path(f"{stem}.{fmt}").stat().st_size for fmt in FORMATS}
    level, kbps = common.mp3_level(samplerate=int(meta["samplerate"]), kbps=DEFAULT_MP3_KBPS)
    return {
        "index": index, "source": str(src), "samplerate": int(meta["samplerate"]),
        "channels": int(meta["channels"]), "seconds": seconds,
        "clipped_samples": int(meta["clipped_samples"]),
        "mp3_compression_level": level, "mp3_nominal_kbps": kbps,
        "kbps": {fmt: sizes[fmt] * 8 / seconds / 1000 if seconds else None for fmt in FORMATS},
        "reused_from": str(folder),
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


NN_POINTS = {"min": 0.0, "p5": 5.0, "median": 50.0, "max": 100.0}


def _share(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    hits = sum(bool(r[key]) for r in records)
    return {"count": hits, "of": len(records), "share": hits / len(records) if records else None}


def nearest_neighbours(*, s: st.Store, lib: Library, where: dict[int, tuple[int, str]],
                       path_of: dict[int, str], store_path: Path,
                       cli_checks: int) -> dict[str, Any]:
    """Each MP3 and OGG copy's nearest neighbour as ``engine-query similar COPY -k 1`` gives it.

    ``cmd_similar`` (the command's own code: ``DEFAULT_WEIGHTS``, the copy excluded) names the
    neighbour; ``nearest`` over the whole library gives the ranking behind it (the rank of the
    FLAC source, the nearest file of another song). The first ``cli_checks`` copies are also
    asked through the ``engine-query`` executable.
    """
    w = parse_weights(base=DEFAULT_WEIGHTS)
    row_of = {v: k for k, v in where.items()}

    def label(row: int) -> str:
        return _label(*where[row]) if row in where else path_of.get(row, f"row {row}")

    copies: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    mismatches = 0
    missing_source = 0
    for (index, fmt), row in sorted(row_of.items()):
        if fmt not in COPIES:
            continue
        src_row = row_of.get((index, "flac"))
        if src_row is None:
            missing_source += 1
            continue
        found = cmd_similar(s, path_of[row], io.StringIO(), k=1)
        if not found:
            continue
        nb_row = lib.row(int(found[0]["track_id"]))
        assert nb_row is not None
        ranking = nearest(lib, lib.z[row], w, len(lib) - 1, exclude=(row,))
        if ranking[0].row != nb_row:
            mismatches += 1
        rank_of = {nb.row: k for k, nb in enumerate(ranking, 1)}
        other_song = next((nb for nb in ranking if where.get(nb.row, (None,))[0] != index),
                          None)
        sibling = row_of.get((index, COPIES[1 - COPIES.index(fmt)]))
        d_src = lib.distance(row, src_row, w)
        rec: dict[str, Any] = {
            "copy": label(row), "codec": fmt, "source": label(src_row),
            "track_id": int(lib.track_ids[row]),
            "nearest": label(nb_row), "nearest_distance": float(found[0]["distance"]),
            "nearest_is_flac_source": nb_row == src_row,
            "nearest_is_same_song": where.get(nb_row, (None,))[0] == index,
            "d_flac_source": d_src, "flac_source_rank": rank_of[src_row],
            "d_other_codec_copy": None if sibling is None else lib.distance(row, sibling, w),
            "nearest_other_song": None if other_song is None else label(other_song.row),
            "d_nearest_other_song": None if other_song is None else other_song.distance,
            "flac_source_nearer_than_other_songs":
                other_song is None or d_src < other_song.distance,
            "margin": (other_song.distance / d_src if other_song is not None and d_src > 0
                       else None),
        }
        copies.append(rec)
        if not rec["nearest_is_flac_source"]:
            failures.append({**rec,
                             "moved_from_source": _moved(lib=lib, a=src_row, b=row, w=w, top=6),
                             "differs_from_nearest": found[0]["differs_most"]})
    checks = []
    exe = str(common.engine_script("engine-query"))
    step = max(1, len(copies) // max(1, cli_checks))
    for rec in copies[::step][:cli_checks]:
        q_row = lib.row(rec["track_id"])
        assert q_row is not None
        done = subprocess.run([exe, "--db", str(store_path), "similar", path_of[q_row], "-k", "1",
                               "--jsonl"], capture_output=True, text=True, check=False)
        lines = [json.loads(x) for x in done.stdout.splitlines() if x.strip()]
        cli_row = lib.row(int(lines[0]["track_id"])) if done.returncode == 0 and lines else None
        checks.append({"copy": rec["copy"], "exit": done.returncode,
                       "cli_nearest": None if cli_row is None else label(cli_row),
                       "agrees": cli_row is not None and label(cli_row) == rec["nearest"]})
    margins = [r["margin"] for r in copies if r["margin"] is not None]
    return {
        "weights": "DEFAULT_WEIGHTS (engine-query similar's default)",
        "copies": len(copies),
        "copies_without_flac_source": missing_source,
        "nearest_is_flac_source": _share(copies, "nearest_is_flac_source"),
        "nearest_is_same_song": _share(copies, "nearest_is_same_song"),
        "flac_source_nearer_than_other_songs": _share(copies,
                                                      "flac_source_nearer_than_other_songs"),
        "by_codec": {fmt: {key: _share([r for r in copies if r["codec"] == fmt], key)
                           for key in ("nearest_is_flac_source", "nearest_is_same_song",
                                       "flac_source_nearer_than_other_songs")}
                     for fmt in COPIES},
        "flac_source_rank_max": max((r["flac_source_rank"] for r in copies), default=None),
        "d_flac_source": _stats([r["d_flac_source"] for r in copies], SAME_POINTS),
        "d_nearest_other_song": _stats([r["d_nearest_other_song"] for r in copies
                                        if r["d_nearest_other_song"] is not None], NN_POINTS),
        "margin_other_song_over_source": _stats(margins, NN_POINTS),
        "similar_vs_ranking_mismatches": mismatches,
        "cli_checks": checks,
        "failures": failures,
        "per_copy": copies,
    }


def analyse(*, store_path: Path, sources: list[dict[str, Any]], cli_records: list[dict[str, Any]],
            cli_checks: int) -> dict[str, Any]:
    """Each copy's nearest neighbour, distances of every pair of the store's library, and what
    ``duplicates`` reported."""
    with st.Store.open(st.StoreConfig(store_path), readonly=True) as s:
        lib = Library.load(s, cache=False)
        where: dict[int, tuple[int, str]] = {}
        path_of: dict[int, str] = {}
        for row, tid in enumerate(lib.track_ids.tolist()):
            track = s.get_track(tid)
            if track is None:
                continue
            path_of[row] = track.path
            m = _NAME.match(os.path.basename(track.path))
            if m:
                where[row] = (int(m.group(1)), m.group(2))
        neighbours = nearest_neighbours(s=s, lib=lib, where=where, path_of=path_of,
                                        store_path=store_path, cli_checks=cli_checks)
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
            "a": _label(*where[a]), "b": _label(*where[b]),
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
        "nearest_neighbour": neighbours,
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
    lines = [f"query calibration: {len(report['sources'])} sources x {len(FORMATS)} "
             f"encodings ({', '.join(report['settings']['encodings'].values())}), "
             f"{r['tracks_in_library']} tracks in the library; engine-run "
             f"{report['engine_run']['wall_s']:.1f} s"]

    def fmt(d: dict[str, Any], keys: list[str]) -> str:
        return " ".join(f"{k} {d[k]:.3f}" if d[k] is not None else f"{k} -" for k in keys)

    nn = r["nearest_neighbour"]

    def share(d: dict[str, Any]) -> str:
        return f"{d['count']}/{d['of']}" + (f" ({d['share']:.1%})" if d["of"] else "")

    lines.append(f"nearest neighbour of each copy (engine-query similar -k 1, DEFAULT_WEIGHTS), "
                 f"{nn['copies']} copies:")
    for key, what in (("nearest_is_flac_source", "is its FLAC source"),
                      ("nearest_is_same_song", "is the same song (any encoding)"),
                      ("flac_source_nearer_than_other_songs",
                       "FLAC source nearer than every other song (= nearest without "
                       "the other copy)")):
        lines.append(f"  {what}: {share(nn[key])}; "
                     + ", ".join(f"{fmt} {share(nn['by_codec'][fmt][key])}" for fmt in COPIES))
    m = nn["margin_other_song_over_source"]
    if m["count"]:
        lines.append(f"  D(nearest other song) / D(FLAC source): min {m['min']:.2f}, p5 "
                     f"{m['p5']:.2f}, median {m['median']:.2f}; FLAC source's worst rank "
                     f"{nn['flac_source_rank_max']}")
    if nn["similar_vs_ranking_mismatches"]:
        lines.append(f"  WARNING: cmd_similar and nearest() disagreed on "
                     f"{nn['similar_vs_ranking_mismatches']} copies")
    bad = [c for c in nn["cli_checks"] if not c["agrees"]]
    if nn["cli_checks"]:
        lines.append(f"  engine-query similar executable: {len(nn['cli_checks']) - len(bad)}/"
                     f"{len(nn['cli_checks'])} agree" + (f" (disagree: "
                     f"{', '.join(c['copy'] for c in bad)})" if bad else ""))
    for f in nn["failures"][:10]:  # moved: source -> copy
        moved = ", ".join(f"{x['name']} {x['a']:.4g}->{x['b']:.4g} ({x['share_of_d2']:.0%})"
                          for x in f["moved_from_source"][:3] if x["share_of_d2"] > 0)
        lines.append(f"  FAIL {f['copy']} -> {f['nearest']} D {f['nearest_distance']:.3f}; "
                     f"source D {f['d_flac_source']:.3f}, rank {f['flac_source_rank']}; "
                     f"moved from source: {moved}")
    if len(nn["failures"]) > 10:
        lines.append(f"  ... {len(nn['failures']) - 10} more failures in the JSON")
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
        description="Does engine-query recognise a song after a lossy encode? Each track as "
                    "FLAC, MP3 (128k) and OGG Vorbis (q3): each copy's nearest neighbour "
                    "(similar) and what duplicates reports (issue 13, item 9).")
    p.add_argument("corpus", type=Path,
                   help="folder of FLAC/OGG/Opus/MP3/WAV files (recursive)")
    p.add_argument("--limit", type=int, default=12,
                   help="source tracks, spread evenly over the sorted list (default 12; 0: all)")
    p.add_argument("--mp3-kbps", type=int, default=DEFAULT_MP3_KBPS,
                   help=f"MP3 CBR bit rate, kbit/s (default {DEFAULT_MP3_KBPS}; a source under "
                        f"32 kHz gets at most MPEG-2's 160, under 16 kHz MPEG-2.5's 64)")
    p.add_argument("--ogg-quality", type=float, default=DEFAULT_OGG_QUALITY,
                   help=f"OGG Vorbis quality, 0-10 as oggenc -q (default "
                        f"{DEFAULT_OGG_QUALITY:g}: libsndfile compression_level "
                        f"{vorbis_level(DEFAULT_OGG_QUALITY):g})")
    p.add_argument("--cli-checks", type=int, default=3,
                   help="copies whose nearest neighbour is also asked of the engine-query "
                        "executable, spread over the list (default 3; 0: none)")
    p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)),
                   help="engine-run --cores, and sources encoded at once (default: usable "
                        "cores)")
    p.add_argument("--work", type=Path,
                   help="work folder (must not exist or be empty; default: a temporary one, "
                        "removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    p.add_argument("--reuse", type=Path, metavar="ROBUSTNESS_WORK",
                   help="link bench/robustness.py's encodes from its --work folder instead of "
                        "encoding again (they are the same files at the default --mp3-kbps and "
                        "--ogg-quality; give --work on the same file system for hard links)")
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Run the calibration from the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        parser.error(f"{args.corpus} is not a folder")
    if not 8 <= args.mp3_kbps <= 320:
        parser.error(f"--mp3-kbps {args.mp3_kbps}: must be 8-320")
    if not 0.0 <= args.ogg_quality <= 10.0:
        parser.error(f"--ogg-quality {args.ogg_quality:g}: must be 0-10")
    if args.cli_checks < 0:
        parser.error("--cli-checks must be >= 0")
    ogg_level = vorbis_level(args.ogg_quality)
    if args.reuse is not None and (args.mp3_kbps != DEFAULT_MP3_KBPS
                                   or args.ogg_quality != DEFAULT_OGG_QUALITY):
        parser.error("--reuse takes the robustness bench's MP3 128k and OGG q3: leave "
                     "--mp3-kbps and --ogg-quality at their defaults")
    if args.reuse is not None and not (args.reuse / "audio").is_dir():
        parser.error(f"--reuse {args.reuse}: no audio/ folder (a bench/robustness.py --work)")
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
        t0 = time.perf_counter()
        # one source per process, --cores at a time (LAME and libvorbis are single-threaded)
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=max(1, min(args.cores, len(picked))),
                mp_context=multiprocessing.get_context("fork")) as pool:
            root = args.corpus.resolve()
            jobs = [pool.submit(encode_source, src=src, index=i, audio=audio,
                                mp3_kbps=args.mp3_kbps, ogg_level=ogg_level)
                    if args.reuse is None else
                    pool.submit(reuse_source, src=src, rel=src.relative_to(root), index=i,
                                audio=audio, reuse=args.reuse)
                    for i, src in enumerate(picked)]
            for job in concurrent.futures.as_completed(jobs):
                s = job.result()
                s["source"] = str(picked[s["index"]].relative_to(args.corpus.resolve()))
                if log:
                    print(f"# src{s['index']:03d} {s['source']}: {s['seconds']:.1f} s, "
                          f"{s['samplerate']} Hz; MP3 {s['kbps']['mp3']:.0f} kbit/s, "
                          f"OGG {s['kbps']['ogg']:.0f} kbit/s", file=sys.stderr)
        sources = [job.result() for job in jobs]
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
        results = analyse(store_path=store_path, sources=sources, cli_records=cli_records,
                          cli_checks=args.cli_checks)
    finally:
        if remove:
            shutil.rmtree(work, ignore_errors=True)
        elif log:
            print(f"# work folder kept: {work}", file=sys.stderr)
    levels = sorted({(s["samplerate"] >= 32000, s["mp3_compression_level"],
                      s["mp3_nominal_kbps"]) for s in sources})
    report = common.jsonable({
        **common.report_head(schema="fingerprint-engine/bench-query-calibration/2",
                             kernels=kernels),
        "settings": {
            "corpus": str(args.corpus.resolve()), "corpus_files": len(files),
            "limit": args.limit, "selection": "spread evenly over the sorted list",
            "cores": args.cores,
            "encodings": {"flac": "FLAC PCM_16",
                          "mp3": f"MP3 CBR {args.mp3_kbps} kbit/s (LAME via libsndfile)",
                          "ogg": f"Ogg Vorbis q{args.ogg_quality:g}"},
            "mp3_kbps": args.mp3_kbps, "ogg_quality": args.ogg_quality,
            "mp3_levels": [{"samplerate_32k_and_up": hi, "compression_level": lvl,
                            "nominal_kbps": kbps} for hi, lvl, kbps in levels],
            "vorbis_compression_level": ogg_level,
            "cli_checks": args.cli_checks,
            "default_weights": dict(DEFAULT_WEIGHTS),
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
