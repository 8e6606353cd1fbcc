#!/usr/bin/env python
"""How much each fingerprint value moves under codecs, resampling and gain, against its spread.

The baseline that fingerprint version 2 has to beat (items 5 and 6 of its issue): a value is
useful for similarity only when the same music, re-encoded, stays put while different music
spreads it out. For every track of CORPUS_DIR (``--limit N``: N of them, spread evenly over the
sorted list) this makes, in a work folder that is kept between runs:

- ``source.flac``: the corpus file decoded and stored as 16-bit FLAC (``common.to_pcm16``:
  rounded, clipped; decoded lossy audio may exceed full scale, the clipped samples are counted).
  It is the reference: every variant below is made from these same samples, so a difference
  comes from the variant's own transformation only;
- ``mp3_128k.mp3``, ``mp3_320k.mp3``: MP3, constant bit rate, libsndfile's LAME encoder
  (``compression_level`` c gives ``320 - 288 c`` kbit/s at 32 kHz and up; MPEG-2 at 16-24 kHz
  tops out at 160 kbit/s and MPEG-2.5 under 16 kHz at 64, so a source at those rates gets the
  highest its format has: ``nominal_kbps`` per track says what it got);
- ``ogg_q3.ogg``: OGG Vorbis quality 3 (libsndfile's quality is ``1 - compression_level``, and
  0.3 is ``oggenc -q 3``, ~112 kbit/s nominal);
- ``resample.wav``: resampled to 48 kHz (a 48 kHz source to 44.1 kHz instead, so every track
  is resampled) with libsoxr's HQ quality (``soxr.ResampleStream``, the resampler ffmpeg and
  librosa use), stored as 32-bit float: no requantisation, and no clipping of the overshoot
  resampling adds to clipped sources;
- ``gain_-6dB.flac``: the samples times 0.5 (-6.02 dB), 24-bit FLAC, which stores that
  exactly.

Each is fingerprinted with ``engine.decode.fingerprint_file`` (the engine's own decode path and
kernels, after ``kernels.warmup()``), by ``--jobs`` forked worker processes, one track at a
time each; so is the corpus file itself (``corpus_file``: what the 16-bit source costs, for
information, not a target). Fingerprints are cached per track in ``WORK/fingerprints/``, keyed
by the SHA-256 of the kernels' sources: a rerun only computes what changed.

Then, with S the sources' fingerprints over the corpus:

- **IQR** of each value: the 75th minus the 25th percentile of S (the library's spread);
- **codec noise** of value v under variant x: the median over tracks of
  ``|v(source) - v(x)|`` divided by v's IQR. Target: <= 0.10 for every value and variant.
  The level values (:data:`LEVEL_VALUES`: ``lufs``, which must follow the gain) are exempt from
  the gain variant only; for them the report gives how far the change is from -6.02 LU instead;
- **IQR / noise**: the IQR divided by the largest median ``|v(source) - v(x)|`` over the
  variants (exempt pairs left out), i.e. 1 / the worst codec noise. Target: >= 5;
- **redundancy**: every pair of values with ``|Spearman rho| >= 0.95`` over S
  (``scipy.stats.spearmanr``).

Usage::

    bash ../shared/corpus/make_corpus.sh ~/.cache/fingerprint-engine/corpus-full full
    .venv/bin/python bench/robustness.py ~/.cache/fingerprint-engine/corpus-full \\
        --work ~/.cache/fingerprint-engine/robustness-full -o bench/results/robustness-v1.json
    .venv/bin/python bench/robustness.py ~/.cache/fingerprint-engine/corpus-small --limit 6 -o -

The JSON report holds the value x variant table of codec noise (median, 90th percentile and
maximum), IQRs, the ratios, the Spearman pairs, pass / fail per target and every track's
fingerprints per variant; a readable table goes to stderr. Exit status 1 when a track failed
(listed under ``errors``). bench/README.md gives the version 1 figures.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import json
import math
import multiprocessing
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

import kernels
from engine.decode import fingerprint_file
from kernels import FINGERPRINT_NAMES, FINGERPRINT_VERSION

#: The variants every target applies to, in report order.
VARIANTS = ("mp3_128k", "mp3_320k", "ogg_q3", "resample", "gain_-6dB")
#: Compared with the source too, for information only: the corpus file as it was decoded.
INFO_VARIANTS = ("corpus_file",)
#: Values that must follow the level: exempt from the gain variant (and only from it).
LEVEL_VALUES = ("lufs",)
#: The gain variant's factor (-6.02 dB; a 16-bit sample times 0.5 is exact in 24 bits).
GAIN = 0.5
GAIN_DB = 20.0 * math.log10(GAIN)
#: Targets of the fingerprint version 2 issue.
MAX_CODEC_NOISE = 0.10
MIN_IQR_NOISE_RATIO = 5.0
MAX_ABS_SPEARMAN = 0.95
#: libsndfile's Vorbis quality is 1 - compression_level: 0.7 gives quality 0.3, oggenc -q 3.
VORBIS_Q3_LEVEL = 0.7
#: libsoxr quality of the resample variant.
SOXR_QUALITY = "HQ"
BLOCK_FRAMES = 65536
#: Where the variants and fingerprints are kept when ``--work`` is not given.
DEFAULT_WORK = Path.home() / ".cache" / "fingerprint-engine" / "robustness-work"
#: Files of a track's folder in the work folder, by variant (``source`` is the reference).
FILE_NAMES = {
    "source": "source.flac",
    "mp3_128k": "mp3_128k.mp3",
    "mp3_320k": "mp3_320k.mp3",
    "ogg_q3": "ogg_q3.ogg",
    "resample": "resample.wav",
    "gain_-6dB": "gain_-6dB.flac",
}
SOURCE_EXTENSIONS = frozenset({".flac", ".ogg", ".oga", ".opus", ".mp3", ".wav"})


# --------------------------------------------------------------------------------------------
# Making the variants
# --------------------------------------------------------------------------------------------


def resample_rate(samplerate: int) -> int:
    """The rate of the resample variant: 48 kHz, or 44.1 kHz for a source already at 48 kHz.

    Parameters
    ----------
    samplerate : int, Hz

    Returns
    -------
    int, Hz
    """
    return 44100 if samplerate == 48000 else 48000


def make_variants(*, src: Path, folder: Path) -> dict[str, Any]:
    """Decode ``src`` once and write the source and every variant into ``folder``.

    Everything is written block by block (libsndfile's MP3 writer crashes on a long track given
    in one call) under a ``.part`` name and renamed when complete, so an interrupted run leaves
    no file that looks finished.

    Parameters
    ----------
    src : Path
        The corpus file.
    folder : Path
        The track's work folder (created).

    Returns
    -------
    dict
        ``samplerate``, ``channels``, ``frames``, ``seconds``, ``clipped_samples`` (decoded
        samples outside [-1, 1) that 16 bits clip), ``resample_to_hz``, ``resample_peak``
        (the largest resampled sample: above 1 where resampling overshoots a clipped source),
        ``nominal_kbps`` and ``kbps`` (from the file sizes) per MP3 / OGG variant, ``encode_s``.
    """
    import soxr

    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    part = {name: folder / (file + ".part") for name, file in FILE_NAMES.items()}
    clipped = frames = 0
    peak = 0.0
    with sf.SoundFile(src) as f:
        sr, ch = int(f.samplerate), int(f.channels)
        to_hz = resample_rate(sr)
        nominal: dict[str, int] = {}
        outs: dict[str, sf.SoundFile] = {}
        try:
            outs["source"] = sf.SoundFile(part["source"], "w", samplerate=sr, channels=ch,
                                          format="FLAC", subtype="PCM_16")
            for name, kbps in (("mp3_128k", 128), ("mp3_320k", 320)):
                level, nominal[name] = common.mp3_level(samplerate=sr, kbps=kbps)
                outs[name] = sf.SoundFile(part[name], "w", samplerate=sr, channels=ch,
                                          format="MP3", subtype="MPEG_LAYER_III",
                                          compression_level=level, bitrate_mode="CONSTANT")
            outs["ogg_q3"] = sf.SoundFile(part["ogg_q3"], "w", samplerate=sr, channels=ch,
                                          format="OGG", subtype="VORBIS",
                                          compression_level=VORBIS_Q3_LEVEL)
            outs["resample"] = sf.SoundFile(part["resample"], "w", samplerate=to_hz,
                                            channels=ch, format="WAV", subtype="FLOAT")
            outs["gain_-6dB"] = sf.SoundFile(part["gain_-6dB"], "w", samplerate=sr,
                                             channels=ch, format="FLAC", subtype="PCM_24")
            resampler = soxr.ResampleStream(sr, to_hz, ch, dtype="float32",
                                            quality=SOXR_QUALITY)
            buf = np.empty((BLOCK_FRAMES, ch), dtype=np.float32)
            while True:
                got = f.read(out=buf)
                last = len(got) < BLOCK_FRAMES
                if len(got):
                    clipped += int(np.count_nonzero((got >= 1.0) | (got < -1.0)))
                    pcm = common.to_pcm16(got)
                    x = pcm.astype(np.float32) * np.float32(1.0 / 32768.0)
                    outs["source"].write(pcm)
                    outs["mp3_128k"].write(x)
                    outs["mp3_320k"].write(x)
                    outs["ogg_q3"].write(x)
                    outs["gain_-6dB"].write(x * np.float32(GAIN))
                    frames += len(got)
                else:
                    x = np.zeros((0, ch), dtype=np.float32)
                y = resampler.resample_chunk(np.ascontiguousarray(x), last=last)
                if len(y):
                    peak = max(peak, float(np.max(np.abs(y))))
                    outs["resample"].write(y)
                if last:
                    break
        finally:
            for out in outs.values():
                out.close()
    for name, file in FILE_NAMES.items():
        part[name].replace(folder / file)
    seconds = frames / sr
    kbps = {name: (folder / FILE_NAMES[name]).stat().st_size * 8 / seconds / 1000
            if seconds else None for name in ("mp3_128k", "mp3_320k", "ogg_q3")}
    return {
        "samplerate": sr, "channels": ch, "frames": frames, "seconds": seconds,
        "clipped_samples": clipped, "resample_to_hz": to_hz, "resample_peak": peak,
        "nominal_kbps": nominal, "kbps": kbps, "encode_s": time.perf_counter() - t0,
    }


# --------------------------------------------------------------------------------------------
# One track: variants (cached), fingerprints (cached)
# --------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a ``.part`` file renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(common.jsonable(obj)))
    tmp.replace(path)


def process_track(job: tuple[str, str, str, str, bool]) -> dict[str, Any]:
    """Fingerprint one track's source, variants and corpus file, from the cache when it can.

    Runs in a worker process. The fingerprints are reused when the cache file was made by
    kernels with the same source digest; the variants' audio is reused when its folder holds
    every file and ``meta.json``.

    Parameters
    ----------
    job : tuple
        ``(rel, src, work, kernels_sha256, drop_audio)``: the track's path relative to the
        corpus, its absolute path, the work folder, the kernels' digest, and whether to delete
        the variants' audio once fingerprinted.

    Returns
    -------
    dict
        ``file`` (= rel), the metadata of :func:`make_variants`, ``values`` (variant -> the 25
        values, ``source`` and ``corpus_file`` included), ``fingerprint_s``, ``cached`` (what
        came from the cache: ``fingerprints``, ``audio`` or nothing); or ``file`` and ``error``.
    """
    rel, src, work, digest, drop_audio = job
    folder = Path(work) / "audio" / rel
    cache = Path(work) / "fingerprints" / (rel + ".json")
    try:
        if cache.is_file():
            saved = json.loads(cache.read_text())
            if saved.get("kernels_sha256") == digest:
                return {**saved["track"], "cached": "fingerprints", "fingerprint_s": 0.0,
                        "encode_s": 0.0}
        meta_path = folder / "meta.json"
        if meta_path.is_file() and all((folder / f).is_file() for f in FILE_NAMES.values()):
            meta = {**json.loads(meta_path.read_text()), "encode_s": 0.0}
            cached = "audio"
        else:
            meta = make_variants(src=Path(src), folder=folder)
            _write_json(meta_path, meta)
            cached = ""
        t0 = time.perf_counter()
        values = {"corpus_file": fingerprint_file(src).as_array().tolist()}
        for name, file in FILE_NAMES.items():
            values[name] = fingerprint_file(folder / file).as_array().tolist()
        track = {"file": rel, **meta, "values": values}
        track["fingerprint_s"] = time.perf_counter() - t0
        _write_json(cache, {"kernels_sha256": digest, "fingerprint_version": FINGERPRINT_VERSION,
                            "track": {k: v for k, v in track.items()
                                      if k not in ("encode_s", "fingerprint_s")}})
        if drop_audio:
            shutil.rmtree(folder, ignore_errors=True)
        return {**track, "cached": cached}
    except Exception as e:  # a broken track is reported, not fatal
        return {"file": rel, "error": f"{type(e).__name__}: {e}"}


# --------------------------------------------------------------------------------------------
# The figures
# --------------------------------------------------------------------------------------------


def _exempt(value: str, variant: str) -> bool:
    """Whether ``value`` is exempt from the codec-noise target under ``variant``."""
    return variant == "gain_-6dB" and value in LEVEL_VALUES


def analyse(tracks: list[dict[str, Any]]) -> dict[str, Any]:
    """IQRs, codec noise, IQR / noise ratios, Spearman pairs and the verdicts.

    Parameters
    ----------
    tracks : list of dict
        :func:`process_track` results without errors (at least 4).

    Returns
    -------
    dict
        The report's ``iqr``, ``codec_noise``, ``corpus_file_noise``, ``level_under_gain``,
        ``iqr_noise_ratio``, ``spearman`` and ``targets`` fields.
    """
    from scipy.stats import spearmanr

    names = list(FINGERPRINT_NAMES)
    src = np.array([t["values"]["source"] for t in tracks], dtype=np.float64)
    q10, q25, q50, q75, q90 = np.percentile(src, [10, 25, 50, 75, 90], axis=0)
    iqr = q75 - q25
    iqr_table = {n: {"iqr": iqr[i], "p25": q25[i], "p75": q75[i], "median": q50[i],
                     "p10": q10[i], "p90": q90[i], "min": src[:, i].min(),
                     "max": src[:, i].max()} for i, n in enumerate(names)}

    def noise_of(variant: str) -> tuple[dict[str, dict[str, Any]], np.ndarray]:
        var = np.array([t["values"][variant] for t in tracks], dtype=np.float64)
        d = np.abs(var - src)
        med = np.median(d, axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = d / iqr
        table = {}
        for i, n in enumerate(names):
            col = scaled[:, i] if iqr[i] > 0 else np.full(len(d), math.inf)
            table[n] = {"median": float(np.median(col)),
                        "p90": float(np.percentile(col, 90)), "max": float(np.max(col)),
                        "median_abs": float(med[i]),
                        "tracks_over_target": int(np.count_nonzero(col > MAX_CODEC_NOISE))}
        return table, med

    codec: dict[str, dict[str, Any]] = {n: {} for n in names}
    med_abs: dict[str, np.ndarray] = {}
    for variant in VARIANTS:
        table, med_abs[variant] = noise_of(variant)
        for n in names:
            codec[n][variant] = {**table[n], "exempt": _exempt(n, variant)}
    info_table, _ = noise_of("corpus_file")

    fails_noise = [{"value": n, "variant": v, "noise": codec[n][v]["median"]}
                   for n in names for v in VARIANTS
                   if not _exempt(n, v) and not codec[n][v]["median"] <= MAX_CODEC_NOISE]

    ratios: dict[str, Any] = {}
    fails_ratio = []
    for i, n in enumerate(names):
        counted = {v: float(med_abs[v][i]) for v in VARIANTS if not _exempt(n, v)}
        worst = max(counted, key=lambda v: counted[v])
        per = {v: (iqr[i] / a if a > 0 else math.inf) if iqr[i] > 0 else 0.0
               for v, a in counted.items()}
        ratio = per[worst]
        ratios[n] = {"ratio": ratio, "worst_variant": worst, "per_variant": per,
                     "pass": ratio >= MIN_IQR_NOISE_RATIO}
        if not ratio >= MIN_IQR_NOISE_RATIO:
            fails_ratio.append({"value": n, "ratio": ratio, "worst_variant": worst})

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column gives NaN, reported as such
        rho = np.atleast_2d(spearmanr(src).statistic)
    pairs = sorted(({"a": names[i], "b": names[j], "rho": float(rho[i, j])}
                    for i in range(len(names)) for j in range(i + 1, len(names))
                    if abs(rho[i, j]) >= MAX_ABS_SPEARMAN), key=lambda p: -abs(p["rho"]))
    constant = [n for i, n in enumerate(names) if np.all(src[:, i] == src[0, i])]

    level = {}
    gain = np.array([t["values"]["gain_-6dB"] for t in tracks], dtype=np.float64)
    for n in LEVEL_VALUES:
        i = names.index(n)
        err = np.abs((gain[:, i] - src[:, i]) - GAIN_DB)
        level[n] = {"expected_change": GAIN_DB, "median_abs_error": float(np.median(err)),
                    "max_abs_error": float(np.max(err))}

    redundant = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs}, key=names.index)
    return {
        "iqr": iqr_table,
        "codec_noise": codec,
        "corpus_file_noise": info_table,
        "level_under_gain": level,
        "iqr_noise_ratio": ratios,
        "spearman": {"threshold": MAX_ABS_SPEARMAN, "pairs": pairs, "constant_values": constant,
                     "matrix": [[float(x) for x in row] for row in rho]},
        "targets": {
            "codec_noise": {
                "target": f"median |v(source) - v(variant)| / IQR <= {MAX_CODEC_NOISE} for "
                          f"every value and variant ({', '.join(LEVEL_VALUES)} exempt from "
                          "gain_-6dB)",
                "pass": not fails_noise, "failures": fails_noise,
                "failing_values": sorted({f["value"] for f in fails_noise}, key=names.index)},
            "iqr_noise_ratio": {
                "target": f"IQR / max over variants of median |v(source) - v(variant)| >= "
                          f"{MIN_IQR_NOISE_RATIO:g}",
                "pass": not fails_ratio, "failures": fails_ratio,
                "failing_values": [f["value"] for f in fails_ratio]},
            "redundancy": {
                "target": f"no pair of values with |Spearman rho| >= {MAX_ABS_SPEARMAN} over the "
                          "sources",
                "pass": not pairs, "pairs": pairs, "values_in_pairs": redundant},
        },
    }


def summary_table(result: dict[str, Any], *, n_tracks: int, minutes: float) -> str:
    """The value x variant table and the verdicts, as text for stderr.

    Parameters
    ----------
    result : dict
        :func:`analyse`'s output.
    n_tracks : int
    minutes : float
        Audio analysed per variant.

    Returns
    -------
    str
    """
    short = {"mp3_128k": "mp3 128", "mp3_320k": "mp3 320", "ogg_q3": "ogg q3",
             "resample": "resample", "gain_-6dB": "-6 dB"}
    pairs = result["spearman"]["pairs"]
    lines = [f"# codec noise = median over {n_tracks} tracks ({minutes:.0f} min) of "
             f"|v(source) - v(variant)| / IQR; ! above {MAX_CODEC_NOISE}, - exempt",
             f"{'value':<24}{'IQR':>11}" + "".join(f"{short[v]:>9}" for v in VARIANTS)
             + f"{'IQR/noise':>11}  |rho|>={MAX_ABS_SPEARMAN}"]
    for n in FINGERPRINT_NAMES:
        cells = []
        for v in VARIANTS:
            c = result["codec_noise"][n][v]
            if c["exempt"]:
                cells.append(f"{'-':>9}")
            else:
                flag = "!" if not c["median"] <= MAX_CODEC_NOISE else " "
                cells.append(f"{c['median']:>8.3f}{flag}")
        r = result["iqr_noise_ratio"][n]
        ratio = f"{r['ratio']:>9.1f}{'!' if not r['pass'] else ' '}"
        partners = [p["b"] if p["a"] == n else p["a"] for p in pairs if n in (p["a"], p["b"])]
        lines.append(f"{n:<24}{result['iqr'][n]['iqr']:>11.4g}" + "".join(cells)
                     + f"{ratio:>11}  {', '.join(partners)}")
    t = result["targets"]
    fails: dict[str, list[str]] = {}
    for f in t["codec_noise"]["failures"]:
        fails.setdefault(f["value"], []).append(f"{short[f['variant']]} {f['noise']:.2f}")
    lines.append(f"# codec noise <= {MAX_CODEC_NOISE}: "
                 + ("pass" if t["codec_noise"]["pass"] else
                    "FAIL: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in fails.items())))
    lines.append(f"# IQR/noise >= {MIN_IQR_NOISE_RATIO:g}: "
                 + ("pass" if t["iqr_noise_ratio"]["pass"] else
                    "FAIL: " + ", ".join(f"{f['value']} {f['ratio']:.1f} ({f['worst_variant']})"
                                         for f in t["iqr_noise_ratio"]["failures"])))
    lines.append(f"# |Spearman rho| >= {MAX_ABS_SPEARMAN}: "
                 + ("none" if not pairs else
                    "; ".join(f"{p['a']} ~ {p['b']} {p['rho']:+.3f}" for p in pairs)))
    info = [f"{n} {c['median']:.2f}" for n, c in result["corpus_file_noise"].items()
            if not c["median"] <= MAX_CODEC_NOISE]
    lines.append("# corpus file vs its 16-bit source (clipping; information): "
                 + (", ".join(info) if info else f"all <= {MAX_CODEC_NOISE}"))
    for n, lv in result["level_under_gain"].items():
        lines.append(f"# {n} under -6.02 dB gain: median |change - ({GAIN_DB:.2f})| "
                     f"{lv['median_abs_error']:.4f}, max {lv['max_abs_error']:.4f}")
    return "\n".join(lines)


def encode_report(obj: Any, indent: int = 0) -> str:
    """JSON with one item per line, except lists of plain numbers, which stay on one line.

    Parameters
    ----------
    obj : object
        Already :func:`common.jsonable`.
    indent : int
        Current depth.

    Returns
    -------
    str
    """
    pad = " " * (indent + 1)
    if isinstance(obj, dict) and obj:
        items = [f"{pad}{json.dumps(k)}: {encode_report(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(obj, list) and any(isinstance(v, dict | list) for v in obj):
        items = [pad + encode_report(v, indent + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    return json.dumps(obj, allow_nan=False)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = common.parser(
        script=__file__, quiet=True, output=Path("bench/results/robustness-v1.json"),
        description="Codec noise (MP3 128k / 320k, OGG q3, resample, -6 dB) of each fingerprint "
                    "value against its IQR over the corpus, and redundant pairs.")
    p.add_argument("corpus", type=Path, help="folder of audio files (recursive)")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK,
                   help=f"where variants and fingerprints are kept between runs "
                        f"(default {DEFAULT_WORK})")
    p.add_argument("--limit", type=int, default=0,
                   help="tracks, spread evenly over the sorted list (default 0: all)")
    p.add_argument("--first", action="store_true", help="with --limit: the first N tracks")
    p.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                   help="worker processes (default: the usable cores)")
    p.add_argument("--drop-audio", action="store_true",
                   help="delete each track's variant audio once fingerprinted (the fingerprints "
                        "stay cached)")
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Run the measurement from the command line.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0, or 1 when a track failed.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        parser.error(f"{args.corpus} is not a folder")
    if args.jobs < 1 or args.limit < 0:
        parser.error("--jobs must be >= 1 and --limit >= 0")
    corpus = args.corpus.resolve()
    files = common.pick_spread(files=common.find_audio(root=corpus, extensions=SOURCE_EXTENSIONS),
                               limit=args.limit, first=args.first)
    if len(files) < 4:
        parser.error(f"{len(files)} audio files under {corpus}: at least 4 are needed")
    log = not args.quiet
    work = args.work.expanduser().resolve()
    work.mkdir(parents=True, exist_ok=True)
    kernels_dir = Path(kernels.__file__).resolve().parent
    digest = common.source_digest(directory=kernels_dir)
    started = time.perf_counter()
    cpu_start = common.cpu_snapshot()
    kernels.warmup()

    def length(path: Path) -> float:
        try:
            return float(sf.info(str(path)).duration)
        except RuntimeError:  # soundfile's errors derive from it
            return 0.0

    # longest first, so no worker is left with a long track at the end
    jobs = sorted(((str(p.relative_to(corpus)), str(p), str(work), digest, args.drop_audio)
                   for p in files), key=lambda j: -length(Path(j[1])))
    results: list[dict[str, Any]] = []
    with multiprocessing.get_context("fork").Pool(min(args.jobs, len(jobs))) as pool:
        for k, res in enumerate(pool.imap_unordered(process_track, jobs, chunksize=1), 1):
            results.append(res)
            if log:
                what = (f"ERROR {res['error']}" if "error" in res else
                        f"{res['seconds']:.0f} s audio, "
                        + (f"cached {res['cached']}, " if res["cached"] else "")
                        + f"encode {res['encode_s']:.1f} s, fingerprints "
                          f"{res['fingerprint_s']:.1f} s")
                print(f"# [{k}/{len(jobs)}] {res['file']}: {what}", file=sys.stderr)
    wall = time.perf_counter() - started
    interference = common.other_cpu(start=cpu_start, end=common.cpu_snapshot(), wall_s=wall)
    digest_after = common.source_digest(directory=kernels_dir)

    order = {j[0]: i for i, j in enumerate(sorted(jobs))}
    results.sort(key=lambda r: order[r["file"]])
    errors = [r for r in results if "error" in r]
    tracks = [r for r in results if "error" not in r]
    if len(tracks) < 4:
        raise SystemExit(f"only {len(tracks)} tracks fingerprinted: {errors}")
    result = analyse(tracks)
    minutes = sum(t["seconds"] for t in tracks) / 60.0

    import soxr

    rates: dict[str, int] = {}
    for t in tracks:
        rates[str(t["samplerate"])] = rates.get(str(t["samplerate"]), 0) + 1
    report = {
        **common.report_head(schema="fingerprint-engine/bench-robustness/1", kernels=kernels,
                             soxr=soxr.__version__, scipy=__import__("scipy").__version__),
        "config": {
            "corpus": str(corpus), "work": str(work), "limit": args.limit, "jobs": args.jobs,
            "values": list(FINGERPRINT_NAMES),
            "variants": {
                "source": "the corpus file decoded, 16-bit FLAC (rounded, clipped): the "
                          "reference every variant is made from",
                "mp3_128k": "MP3 CBR 128 kbit/s (libsndfile + LAME; MPEG-2.5 sources under "
                            "16 kHz: 64)",
                "mp3_320k": "MP3 CBR 320 kbit/s (libsndfile + LAME; MPEG-2 sources at "
                            "16-24 kHz: 160, under 16 kHz: 64)",
                "ogg_q3": f"OGG Vorbis quality 3 (libsndfile compression_level "
                          f"{VORBIS_Q3_LEVEL})",
                "resample": f"libsoxr {SOXR_QUALITY} (python-soxr ResampleStream) to 48 kHz, "
                            "48 kHz sources to 44.1 kHz; 32-bit float WAV",
                "gain_-6dB": f"samples x {GAIN} ({GAIN_DB:.2f} dB), 24-bit FLAC (exact)",
                "corpus_file": "the corpus file itself (information only, not a target)",
            },
            "level_values": list(LEVEL_VALUES),
            "level_values_note": "exempt from the gain_-6dB variant only: they must follow "
                                 "the level",
            "targets": {"max_codec_noise": MAX_CODEC_NOISE,
                        "min_iqr_noise_ratio": MIN_IQR_NOISE_RATIO,
                        "max_abs_spearman": MAX_ABS_SPEARMAN},
        },
        "corpus": {"tracks": len(tracks), "minutes": minutes, "sample_rates": rates,
                   "clipped_tracks": sum(1 for t in tracks if t["clipped_samples"]),
                   "kbps_median": {v: common.median([t["kbps"][v] for t in tracks])
                                   for v in ("mp3_128k", "mp3_320k", "ogg_q3")}},
        **result,
        "runtime": {"wall_s": wall, "encode_s_sum": sum(t["encode_s"] for t in tracks),
                    "fingerprint_s_sum": sum(t["fingerprint_s"] for t in tracks),
                    "tracks_from_cache": sum(1 for t in tracks if t["cached"] == "fingerprints"),
                    "interference": interference},
        "kernels_source_changed_during_run": digest != digest_after,
        "errors": errors,
        "tracks": [{k: v for k, v in t.items() if k not in ("cached",)} for t in tracks],
    }
    summary = summary_table(result, n_tracks=len(tracks), minutes=minutes)
    summary += f"\n# wall {wall:.0f} s with {args.jobs} jobs"
    if digest != digest_after:
        summary += "\n# WARNING: kernels/ changed during the run: the figures mix two versions"
    if errors:
        summary += f"\n# {len(errors)} tracks failed: see errors"
    common.write_report(report=report, output=args.output, summary=summary,
                        encode=encode_report)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
