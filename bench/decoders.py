#!/usr/bin/env python
"""Both decoders on every format, per core: which one engine/decode should try first.

Issue 14 put a second decoder (FFmpeg through PyAV) beside libsndfile behind
``engine.decode.open_audio``; where both read a format (WAV, AIFF, FLAC, Ogg Vorbis and Opus,
MP3) ``engine.decode.FORMAT_DECODERS`` must name the faster one first. This measures it, on real
music, on ONE core (the process pins itself with ``os.sched_setaffinity``; one thread per numeric
library as every bench):

1. **The audio.** ``--tracks N`` (4) 44.1 kHz files of CORPUS, spread evenly over its sorted list
   (``common.pick_spread``), are decoded once to float (soundfile) and written in every format
   of :data:`FORMATS`: WAV / AIFF / W64 / CAF / AU / FLAC 16-bit and Ogg Vorbis q5 by soundfile, the
   rest by FFmpeg's encoders through tools/encode.py (MP3 is libmp3lame 256k CBR, AAC 256k,
   Opus 160k at 48 kHz after a libsoxr HQ resample, ...). The files are cached under
   ``--cache`` (``~/.cache/fingerprint-engine/decoders/KEY``, KEY a digest of the chosen corpus
   files' names, sizes and times and of :data:`ENCODING_VERSION`) and reused when present.
2. **Who opens what.** Every format is opened with each decoder forced
   (``open_audio(path, decoder=...)``); a refusal is recorded with its reason, and the other
   decoder alone is timed. A decoder that opens a format's first file but fails on another is
   an error (exit status 1), not a refusal.
3. **Decode-only**, per format and decoder: for each file ``open_audio`` + ``read_into`` into one
   float32 buffer of ``--block-frames`` (65536, the engine's) frames until the end + ``close``;
   x-realtime = seconds of audio (the source's length) / wall seconds, start-up included.
   ``open_audio`` alone is timed apart (``open_ms``, per file: the probe, the decoder's set-up,
   and for FFmpeg the first decoded frame), and ``xrt_after_open`` leaves it out.
4. **End to end**, per format and decoder: ``open_audio`` + ``kernels.Analyzer(sr, channels)`` +
   ``engine.decode.stream`` + ``finish()``, what a worker does for a track.
5. **Rounds.** ``--rounds`` (5) times; within a round each format in turn, and within a format
   decoder A decode-only, B decode-only, A end to end, B end to end, A and B swapping every
   round. Before the first round: ``kernels.warmup()``, one untimed analysis per (rate,
   channels), every file read once (page cache) and each (format, decoder) decoded once
   (untimed). The figures are the median over rounds with the min and max.
6. **Recommendation** per format both decoders read: the faster by median decode-only x-realtime,
   the ratio of the medians, and whether the two [min, max] ranges overlap (overlapping: the
   order is not settled by this machine's noise), with the end-to-end ratio beside it.
7. **Agreement** per shared format: the 25 values of each track from each decoder (the first
   round's end-to-end run), the largest |difference| per value over the tracks, and the same in
   IQRs of the library (bench/results/robustness-v2.json's ``iqr``; the codec noise target of
   docs/FINGERPRINT.md is 0.10 IQR); plus the PCM itself: frames each decoder gives, and the
   largest |sample difference| over the common length (0 for the lossless formats, whose
   integers both scale by 2**-15).

Usage::

    .venv/bin/python bench/decoders.py ~/.cache/fingerprint-engine/corpus-small --rounds 5 \\
        -o bench/results/decoders.json

A markdown table goes to stderr (the one in bench/README.md, "Decoders"); the JSON holds every
round. Exit status 1 when a decoder failed on a file of a format it opened.
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, before numpy loads.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import gc
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engine.decode import DEFAULT_BLOCK_FRAMES, open_audio, stream
from engine.errors import DecodeError

# tools/encode.py: FFmpeg's encoders through PyAV (tools/ is not a package)
sys.path.insert(0, str(common.REPO / "tools"))
import encode

#: The two decoders, in the order of engine.decode.DECODERS.
DECODER_NAMES = ("libsndfile", "ffmpeg")
#: Bumped whenever a format's encoding changes: part of the cache key.
ENCODING_VERSION = 1
#: The default corpus and cache.
DEFAULT_CORPUS = Path.home() / ".cache" / "fingerprint-engine" / "corpus-small"
DEFAULT_CACHE = Path.home() / ".cache" / "fingerprint-engine" / "decoders"
#: IQRs of the 25 values over the full corpus (bench/robustness.py), and the codec noise target.
ROBUSTNESS_JSON = common.REPO / "bench" / "results" / "robustness-v2.json"
CODEC_NOISE_TARGET_IQR = 0.10


@dataclass(frozen=True)
class FormatSpec:
    """How one format of the bench is written.

    Attributes
    ----------
    name : str
        The bench's name of the format (a row of the table).
    probe : str
        What engine/decode/probe.py is expected to name it (the key of ``FORMAT_DECODERS`` it
        falls under); the report groups by what the probe really said.
    ext : str
        File name extension.
    writer : str
        ``"soundfile"`` (libsndfile) or ``"ffmpeg"`` (tools/encode.py).
    what : str
        Codec and settings, for the table.
    sf_format, sf_subtype : str
        soundfile's ``format`` / ``subtype`` (soundfile writer).
    sf_level : float or None
        soundfile's ``compression_level`` (Vorbis: quality = 1 - level).
    kind : str
        A key of tools/encode.py's ``FORMATS`` (ffmpeg writer).
    """

    name: str
    probe: str
    ext: str
    writer: str
    what: str
    sf_format: str = ""
    sf_subtype: str = ""
    sf_level: float | None = None
    kind: str = ""

    @property
    def rate(self) -> int | None:
        """The sample rate the format forces (Opus: 48 kHz), None to keep the source's."""
        return encode.FORMATS[self.kind].rate if self.kind else None


#: Every format measured, in table order: those both decoders read first.
FORMATS: tuple[FormatSpec, ...] = (
    FormatSpec("wav", "wav", "wav", "soundfile", "PCM 16-bit", "WAV", "PCM_16"),
    FormatSpec("aiff", "aiff", "aiff", "soundfile", "PCM 16-bit", "AIFF", "PCM_16"),
    FormatSpec("flac", "flac", "flac", "soundfile", "FLAC 16-bit (libsndfile's level 5)",
               "FLAC", "PCM_16"),
    FormatSpec("ogg_vorbis", "ogg_vorbis", "ogg", "soundfile", "Vorbis q5 (libvorbis)", "OGG",
               "VORBIS", sf_level=0.5),
    FormatSpec("ogg_opus", "ogg_opus", "opus", "ffmpeg", "Opus 160k, 48 kHz (libopus)",
               kind="opus_ogg"),
    FormatSpec("mp3", "mp3", "mp3", "ffmpeg", "MP3 256k CBR (libmp3lame)", kind="mp3"),
    FormatSpec("w64", "w64", "w64", "soundfile", "PCM 16-bit", "W64", "PCM_16"),
    FormatSpec("caf", "caf", "caf", "soundfile", "PCM 16-bit", "CAF", "PCM_16"),
    FormatSpec("au", "au", "au", "soundfile", "PCM 16-bit", "AU", "PCM_16"),
    FormatSpec("m4a_aac", "mp4", "m4a", "ffmpeg", "AAC-LC 256k (FFmpeg aac)", kind="m4a_aac"),
    FormatSpec("m4a_alac", "mp4", "m4a", "ffmpeg", "ALAC 16-bit", kind="m4a_alac"),
    FormatSpec("wavpack", "wavpack", "wv", "ffmpeg", "WavPack 16-bit lossless",
               kind="wavpack"),
    FormatSpec("tta", "tta", "tta", "ffmpeg", "TTA 16-bit", kind="tta"),
    FormatSpec("wma", "asf", "wma", "ffmpeg", "WMA v2 192k", kind="wma"),
    FormatSpec("ac3", "ac3", "ac3", "ffmpeg", "AC-3 448k", kind="ac3"),
    FormatSpec("opus_webm", "matroska", "webm", "ffmpeg", "Opus 160k, 48 kHz, WebM",
               kind="opus_webm"),
    FormatSpec("vorbis_mka", "matroska", "mka", "ffmpeg", "Vorbis 192k (FFmpeg's), Matroska",
               kind="vorbis_mka"),
    FormatSpec("mp4_video", "mp4", "mp4", "ffmpeg", "AAC 192k + MPEG-4 video", kind="mp4_video"),
)
FORMAT_BY_NAME = {f.name: f for f in FORMATS}


# --------------------------------------------------------------------------------------------
# The audio: a fixed pick of the corpus, written once in every format (cached)
# --------------------------------------------------------------------------------------------


def pick_tracks(*, corpus: Path, count: int) -> list[Path]:
    """``count`` 44.1 kHz files of the corpus, spread evenly over its sorted list.

    44.1 kHz only: the small corpus's three 22.05 kHz MP3s cannot be written as 256k MP3
    (MPEG-2 tops out at 160k), and one rate keeps every format's figures comparable.
    """
    files = [p for p in common.find_audio(root=corpus) if sf.info(str(p)).samplerate == 44100]
    if not files:
        raise SystemExit(f"no 44.1 kHz audio files under {corpus}")
    return common.pick_spread(files=files, limit=count)


def cache_key(*, corpus: Path, tracks: list[Path]) -> str:
    """A digest of the chosen files (relative name, size, mtime) and the encoding version."""
    h = hashlib.sha256(f"encoding {ENCODING_VERSION}\n".encode())
    for p in tracks:
        st = p.stat()
        h.update(f"{p.relative_to(corpus).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _resample(x: np.ndarray, sr: int, rate: int) -> np.ndarray:
    """``x`` at ``rate`` Hz: libsoxr HQ when installed, else scipy's polyphase filter."""
    try:
        import soxr

        return np.asarray(soxr.resample(x, sr, rate, quality="HQ"), dtype=np.float32)
    except ImportError:
        from math import gcd

        from scipy.signal import resample_poly

        g = gcd(sr, rate)
        return resample_poly(x, rate // g, sr // g, axis=0).astype(np.float32)


def _blocks(x: np.ndarray, block: int = 65536) -> list[np.ndarray]:
    return [x[i:i + block] for i in range(0, len(x), block)]


def write_format(*, spec: FormatSpec, x: np.ndarray, sr: int, path: Path) -> None:
    """Write ``x`` (float32 frames x channels at ``sr``) as ``spec`` to ``path`` (atomically)."""
    tmp = path.with_name(path.name + ".part")
    rate = spec.rate or sr
    y = _resample(x, sr, rate) if rate != sr else x
    if spec.writer == "soundfile":
        kwargs: dict[str, Any] = {}
        if spec.sf_level is not None:
            kwargs["compression_level"] = spec.sf_level
        # integers: the same 16-bit samples in every lossless file libsndfile writes
        data = common.to_pcm16(y) if spec.sf_subtype.startswith("PCM") else y
        with sf.SoundFile(tmp, "w", samplerate=rate, channels=y.shape[1], format=spec.sf_format,
                          subtype=spec.sf_subtype, **kwargs) as out:
            for block in _blocks(data):  # one write of a whole track crashes libvorbis's
                out.write(block)           # encoder in libsndfile 1.2.2 (a segfault)
    else:
        encode.write(str(tmp), _blocks(y), rate, y.shape[1], spec.kind, seconds=len(y) / rate)
    os.replace(tmp, path)


def build_files(*, corpus: Path, tracks: list[Path], cache: Path, specs: list[FormatSpec],
                log: bool) -> dict[str, Any]:
    """Decode each track once and write it in every format that is not in the cache yet.

    Returns
    -------
    dict
        ``dir``, ``key``, ``tracks`` (name, seconds, rate, channels, clipped samples of the
        16-bit writes), ``files`` (format -> list of paths) and ``encode_s`` (0 when every file
        was cached).
    """
    key = cache_key(corpus=corpus, tracks=tracks)
    root = cache / key
    root.mkdir(parents=True, exist_ok=True)
    manifest_path = root / "manifest.json"
    manifest: dict[str, Any] = (json.loads(manifest_path.read_text())
                                if manifest_path.exists() else {})
    names = [f"{i:02d}-{p.stem}" for i, p in enumerate(tracks)]
    files = {s.name: [root / s.name / f"{n}.{s.ext}" for n in names] for s in specs}
    missing = {s.name for s in specs if not all(p.exists() for p in files[s.name])}
    t0 = time.perf_counter()
    info_rows: list[dict[str, Any]] = manifest.get("tracks", [])
    if missing or len(info_rows) != len(tracks):
        if log:
            print(f"# writing {len(tracks)} tracks as {', '.join(sorted(missing)) or 'nothing'} "
                  f"under {root}", file=sys.stderr)
        info_rows = []
        for src, name in zip(tracks, names, strict=True):
            x, sr = sf.read(str(src), dtype="float32", always_2d=True)
            info_rows.append({
                "file": src.relative_to(corpus).as_posix(), "name": name, "samplerate": sr,
                "channels": int(x.shape[1]), "seconds": len(x) / sr,
                "clipped_samples_16bit": int(np.count_nonzero((x >= 1.0) | (x < -1.0))),
            })
            for s in specs:
                if s.name in missing:
                    files[s.name][0].parent.mkdir(parents=True, exist_ok=True)
                    write_format(spec=s, x=x, sr=sr, path=root / s.name / f"{name}.{s.ext}")
            if log:
                print(f"  {name}: {len(x) / sr:6.1f} s", file=sys.stderr)
        done = dict(manifest.get("formats", {}))
        done.update({s.name: asdict(s) for s in specs})
        manifest = {"key": key, "encoding_version": ENCODING_VERSION, "corpus": str(corpus),
                    "tracks": info_rows, "formats": done}
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    encode_s = time.perf_counter() - t0 if missing else 0.0
    return {"dir": str(root), "key": key, "tracks": info_rows, "files": files,
            "encode_s": encode_s, "encoded_now": sorted(missing)}


# --------------------------------------------------------------------------------------------
# The measurements
# --------------------------------------------------------------------------------------------


def decode_only(*, path: Path, decoder: str,
                buffer: np.ndarray) -> tuple[float, float, float, int]:
    """open_audio + read_into until the end + close; (wall s, CPU s, open_audio wall s, frames)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    src = open_audio(path, decoder=decoder)  # type: ignore[arg-type]
    t1 = time.perf_counter()
    frames = 0
    try:
        while True:
            n = src.read_into(buffer)
            if n == 0:
                break
            frames += n
    finally:
        src.close()
    return time.perf_counter() - t0, time.process_time() - c0, t1 - t0, frames


def end_to_end(*, kernels: Any, path: Path, decoder: str,
               buffer: np.ndarray) -> tuple[float, float, np.ndarray]:
    """open_audio + Analyzer + engine.decode.stream + finish + close; (wall s, CPU s, values)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    with open_audio(path, decoder=decoder) as src:  # type: ignore[arg-type]
        analyzer = kernels.Analyzer(src.samplerate, src.channels)
        stream(src, analyzer, buffer)
        fp = analyzer.finish()
    return (time.perf_counter() - t0, time.process_time() - c0,
            np.asarray(fp.as_array(), dtype=np.float64))


def wait_quiet(*, max_s: float, threshold: float) -> dict[str, Any]:
    """Wait until other processes use less than ``threshold`` of a core over 0.5 s (at most
    ``max_s`` seconds): on a shared machine, measure in its quieter moments."""
    t0 = time.perf_counter()
    share = None
    while True:
        a = common.cpu_snapshot()
        time.sleep(0.5)
        share = common.other_cpu(start=a, end=common.cpu_snapshot(),
                                 wall_s=0.5)["other_cpu_share_of_wall"]
        waited = time.perf_counter() - t0
        if share < threshold or waited >= max_s:
            return {"waited_s": waited, "quiet": share < threshold, "last_share": share}


def who_opens(*, files: list[Path]) -> dict[str, dict[str, Any]]:
    """Each decoder forced on the format's first file: ok (codec, rate) or refused (reason)."""
    out: dict[str, dict[str, Any]] = {}
    for d in DECODER_NAMES:
        try:
            with open_audio(files[0], decoder=d) as src:  # type: ignore[arg-type]
                out[d] = {"status": "ok", "codec": src.codec, "probed_format": src.format,
                          "samplerate": src.samplerate, "channels": src.channels}
        except DecodeError as e:
            out[d] = {"status": "refused", "kind": e.kind, "reason": e.reason}
    return out


def _prime(*, kernels: Any, configs: set[tuple[int, int]], block_frames: int) -> None:
    """Untimed: one short analysis per (rate, channels), so FFT plans exist before timing."""
    for sr, ch in sorted(configs):
        analyzer = kernels.Analyzer(sr, ch)
        for block in common.music_blocks(seconds=3.0, sample_rate=sr, channels=ch,
                                         block_frames=block_frames):
            analyzer.feed(block)
        analyzer.finish()


def pcm_agreement(*, files: list[Path], block_frames: int) -> dict[str, Any]:
    """Decode each file with both decoders (untimed) and compare the samples."""
    rows: list[dict[str, Any]] = []
    for p in files:
        got = {}
        for d in DECODER_NAMES:
            with open_audio(p, decoder=d) as src:  # type: ignore[arg-type]
                buf = np.empty((block_frames, src.channels), dtype=np.float32)
                parts = []
                while (n := src.read_into(buf)) > 0:
                    parts.append(buf[:n].copy())
                got[d] = np.concatenate(parts) if parts else np.empty((0, src.channels))
        a, b = got["libsndfile"], got["ffmpeg"]
        n = min(len(a), len(b))
        diff = float(np.max(np.abs(a[:n] - b[:n]))) if n else None
        rows.append({"file": p.name, "frames_libsndfile": len(a), "frames_ffmpeg": len(b),
                     "max_abs_sample_diff": diff,
                     "identical": bool(len(a) == len(b) and diff == 0.0)})
    diffs = [r["max_abs_sample_diff"] for r in rows if r["max_abs_sample_diff"] is not None]
    return {"identical_all": all(r["identical"] for r in rows),
            "max_abs_sample_diff": max(diffs) if diffs else None,
            "frame_count_differences": sorted({r["frames_ffmpeg"] - r["frames_libsndfile"]
                                               for r in rows}),
            "tracks": rows}


def load_iqr() -> dict[str, float] | None:
    """The library's IQR of each value (bench/robustness.py's report), None when absent."""
    try:
        rows = json.loads(ROBUSTNESS_JSON.read_text())["iqr"]
        return {k: float(v["iqr"]) for k, v in rows.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def fp_agreement(*, names: tuple[str, ...], a: list[np.ndarray], b: list[np.ndarray],
                 iqr: dict[str, float] | None) -> dict[str, Any]:
    """Largest |libsndfile - FFmpeg| of each value over the tracks, raw and in IQRs."""
    d = np.abs(np.stack(a) - np.stack(b))  # tracks x 25
    worst = d.max(axis=0)
    out: dict[str, Any] = {
        "max_abs_diff": {n: float(v) for n, v in zip(names, worst, strict=True)},
        "identical": bool(np.all(d == 0)),
        "max_abs_diff_any_value": float(worst.max()),
    }
    if iqr:
        rel = {n: float(v) / iqr[n] for n, v in zip(names, worst, strict=True)
               if iqr.get(n)}
        top = max(rel, key=lambda k: rel[k])
        out.update(max_abs_diff_iqr=rel, worst_value=top, worst_iqr=rel[top],
                   within_codec_noise_target=rel[top] <= CODEC_NOISE_TARGET_IQR)
    return out


def measure(*, kernels: Any, specs: list[FormatSpec], files: dict[str, list[Path]],
            audio_s: dict[str, float], opens: dict[str, dict[str, dict[str, Any]]],
            rounds: int, block_frames: int, quiet_wait_s: float, quiet_threshold: float,
            log: bool) -> dict[str, Any]:
    """The interleaved rounds; see the module docstring. Returns the raw runs and errors."""
    buffers: dict[int, np.ndarray] = {}

    def buf(ch: int) -> np.ndarray:
        return buffers.setdefault(ch, np.empty((block_frames, ch), dtype=np.float32))

    pairs = [(s.name, d) for s in specs for d in DECODER_NAMES
             if opens[s.name][d]["status"] == "ok"]
    channels = {(s.name, d): opens[s.name][d]["channels"] for s, d in
                ((FORMAT_BY_NAME[n], d) for n, d in pairs)}
    runs: dict[tuple[str, str], dict[str, list[Any]]] = {
        p: {"decode_s": [], "decode_cpu_s": [], "open_s": [], "open_ms_files": [], "e2e_s": [],
            "e2e_cpu_s": [], "fps": [], "frames": [], "decode_other_cpu": [],
            "e2e_other_cpu": []} for p in pairs}
    errors: list[dict[str, Any]] = []
    broken: set[tuple[str, str]] = set()

    # untimed: page cache, FFT plans, each decoder's code and tables
    for ps in files.values():
        for p in ps:
            p.read_bytes()
    _prime(kernels=kernels, block_frames=block_frames,
           configs={(o["samplerate"], o["channels"]) for per in opens.values()
                    for o in per.values() if o["status"] == "ok"})
    for name, d in pairs:
        try:
            decode_only(path=files[name][0], decoder=d, buffer=buf(channels[(name, d)]))
        except DecodeError as e:
            broken.add((name, d))
            errors.append({"format": name, "decoder": d, "file": str(files[name][0]),
                           "phase": "warm-up", "kind": e.kind, "error": str(e)})

    interference = []
    waits: list[dict[str, Any]] = []
    for r in range(rounds):
        t_round = time.perf_counter()
        cpu0 = common.cpu_snapshot()
        for s in specs:
            order = [d for d in (DECODER_NAMES if r % 2 == 0 else DECODER_NAMES[::-1])
                     if (s.name, d) in runs and (s.name, d) not in broken]
            if quiet_wait_s > 0 and order:
                waits.append({"round": r + 1, "format": s.name,
                              **wait_quiet(max_s=quiet_wait_s, threshold=quiet_threshold)})
            for phase in ("decode", "e2e"):
                for d in order:
                    if (s.name, d) in broken:
                        continue
                    run = runs[(s.name, d)]
                    b = buf(channels[(s.name, d)])
                    gc.collect()
                    cpu_block = common.cpu_snapshot()
                    t_block = time.perf_counter()
                    total = opened = cpu = 0.0
                    opens_ms: list[float] = []
                    frames: list[int] = []
                    fps: list[np.ndarray] = []
                    try:
                        for p in files[s.name]:
                            if phase == "decode":
                                wall, c, op, n = decode_only(path=p, decoder=d, buffer=b)
                                total += wall
                                cpu += c
                                opened += op
                                opens_ms.append(1000 * op)
                                frames.append(n)
                            else:
                                wall, c, values = end_to_end(kernels=kernels, path=p,
                                                             decoder=d, buffer=b)
                                total += wall
                                cpu += c
                                fps.append(values)
                    except Exception as e:  # DecodeError, BadAudioError: a decoder's bug
                        broken.add((s.name, d))
                        errors.append({"format": s.name, "decoder": d, "file": str(p),
                                       "phase": phase, "round": r + 1,
                                       "kind": getattr(e, "kind", type(e).__name__),
                                       "error": f"{type(e).__name__}: {e}"})
                        print(f"  ERROR {s.name} / {d}: {e}", file=sys.stderr)
                        continue
                    other = common.other_cpu(start=cpu_block, end=common.cpu_snapshot(),
                                             wall_s=time.perf_counter() - t_block)
                    run[f"{phase}_other_cpu"].append(other["other_cpu_share_of_wall"])
                    run[f"{phase}_cpu_s"].append(cpu)
                    if phase == "decode":
                        run["decode_s"].append(total)
                        run["open_s"].append(opened)
                        run["open_ms_files"].extend(opens_ms)
                        run["frames"] = frames
                    else:
                        run["e2e_s"].append(total)
                        run["fps"].append(fps)
        common.round_load(interference, label=f"round {r + 1}/{rounds}", cpu_start=cpu0,
                          t_start=t_round, log=log)
    return {"runs": runs, "errors": errors, "broken": broken, "interference": interference,
            "quiet_waits": waits, "audio_s": audio_s}


# --------------------------------------------------------------------------------------------
# Figures, recommendation, report
# --------------------------------------------------------------------------------------------


def _xrt(audio: float, walls: list[float]) -> dict[str, float | None]:
    return common.spread([audio / w for w in walls if w > 0])


def summarise(*, specs: list[FormatSpec], opens: dict[str, dict[str, dict[str, Any]]],
              measured: dict[str, Any], files: dict[str, list[Path]], block_frames: int,
              iqr: dict[str, float] | None, names: tuple[str, ...]) -> dict[str, Any]:
    """Per format and decoder the figures; per shared format the verdict and the agreement."""
    runs = measured["runs"]
    formats: dict[str, Any] = {}
    recommend: dict[str, Any] = {}
    for s in specs:
        audio = measured["audio_s"][s.name]
        per: dict[str, Any] = {}
        for d in DECODER_NAMES:
            o = opens[s.name][d]
            if o["status"] != "ok":
                per[d] = {"status": "refused", "kind": o["kind"], "reason": o["reason"]}
                continue
            run = runs[(s.name, d)]
            failed = (s.name, d) in measured["broken"]
            fps = run["fps"]
            per[d] = {
                "status": "failed" if failed else "ok",
                "codec": o["codec"], "samplerate": o["samplerate"], "channels": o["channels"],
                "decode_only_xrt": _xrt(audio, run["decode_s"]),
                "decode_only_xrt_cpu": _xrt(audio, run["decode_cpu_s"]),
                "decode_only_xrt_after_open": _xrt(
                    audio, [w - op for w, op in zip(run["decode_s"], run["open_s"], strict=True)]),
                "open_ms_per_file": common.spread(run["open_ms_files"]),
                "end_to_end_xrt": _xrt(audio, run["e2e_s"]),
                "end_to_end_xrt_cpu": _xrt(audio, run["e2e_cpu_s"]),
                "decode_s_rounds": run["decode_s"], "decode_cpu_s_rounds": run["decode_cpu_s"],
                "open_s_rounds": run["open_s"],
                "e2e_s_rounds": run["e2e_s"], "e2e_cpu_s_rounds": run["e2e_cpu_s"],
                "other_cpu_share_rounds": {"decode": run["decode_other_cpu"],
                                           "e2e": run["e2e_other_cpu"]},
                "frames": run["frames"],
                "fingerprint_identical_across_rounds": bool(fps) and all(
                    all(np.array_equal(a, b) for a, b in zip(f, fps[0], strict=True))
                    for f in fps),
                "fingerprints": [[float(v) for v in fp] for fp in fps[0]] if fps else None,
            }
        # what engine/decode/probe.py named the files in this run (the key of FORMAT_DECODERS)
        probe = next((o["probed_format"] for o in opens[s.name].values()
                      if o["status"] == "ok"), s.probe)
        formats[s.name] = {"spec": asdict(s), "probe": probe, "audio_s": audio,
                           "files": len(files[s.name]),
                           "bytes": sum(p.stat().st_size for p in files[s.name]),
                           "kbps": 8 * sum(p.stat().st_size for p in files[s.name])
                           / audio / 1000, "decoders": per}
        both = [d for d in DECODER_NAMES if per[d]["status"] == "ok"]
        if len(both) != 2:
            continue
        a, b = (per[d]["decode_only_xrt"] for d in DECODER_NAMES)
        ea, eb = (per[d]["end_to_end_xrt"] for d in DECODER_NAMES)
        fast, slow = ("libsndfile", "ffmpeg") if a["median"] >= b["median"] \
            else ("ffmpeg", "libsndfile")
        f, sl = per[fast]["decode_only_xrt"], per[slow]["decode_only_xrt"]
        overlap = f["min"] <= sl["max"] and sl["min"] <= f["max"]
        e_f, e_s = per[fast]["end_to_end_xrt"], per[slow]["end_to_end_xrt"]
        cf, cs = per[fast]["decode_only_xrt_cpu"], per[slow]["decode_only_xrt_cpu"]
        recommend[s.name] = {
            "probe": probe,
            "faster_decode_only": fast,
            "order": [fast, slow],
            "decode_only_ratio": f["median"] / sl["median"],
            "ranges_overlap": overlap,
            "decode_only_ratio_cpu": cf["median"] / cs["median"],
            "cpu_ranges_overlap": cf["min"] <= cs["max"] and cs["min"] <= cf["max"],
            "cpu_time_agrees": cf["median"] >= cs["median"],
            "end_to_end_ratio_same_order": e_f["median"] / e_s["median"],
            "end_to_end_ranges_overlap": e_f["min"] <= e_s["max"] and e_s["min"] <= e_f["max"],
            "end_to_end_ratio_same_order_cpu": per[fast]["end_to_end_xrt_cpu"]["median"]
            / per[slow]["end_to_end_xrt_cpu"]["median"],
            "open_ms": {d: per[d]["open_ms_per_file"]["median"] for d in DECODER_NAMES},
            "libsndfile_over_ffmpeg": {"decode_only": a["median"] / b["median"],
                                       "end_to_end": ea["median"] / eb["median"]},
        }
        fa, fb = (runs[(s.name, d)]["fps"] for d in DECODER_NAMES)
        if fa and fb:
            recommend[s.name]["fingerprint_agreement"] = fp_agreement(
                names=names, a=fa[0], b=fb[0], iqr=iqr)
        recommend[s.name]["pcm_agreement"] = pcm_agreement(files=files[s.name],
                                                           block_frames=block_frames)
    by_probe: dict[str, Any] = {}
    for name, rec in recommend.items():
        by_probe.setdefault(rec["probe"], []).append((name, rec))
    table: dict[str, Any] = {}
    for probe, recs in by_probe.items():
        # settled: the faster decoder's [min, max] clears the slower one's
        settled = {r["faster_decode_only"] for _, r in recs if not r["ranges_overlap"]}
        ties = [n for n, r in recs if r["ranges_overlap"]]
        if len(settled) == 1:
            first = settled.pop()
            order: list[str] | None = [first, *(d for d in DECODER_NAMES if d != first)]
            note = (f"{', '.join(ties)}: a tie (ranges overlap); the order follows the rest"
                    if ties else "")
        elif not settled:
            order = None
            note = "a tie (ranges overlap): either order; the measurement does not decide"
        else:
            order = None
            note = ("the codecs inside this container disagree: the probe would have to tell "
                    "them apart")
        table[probe] = {
            "order": order,
            "measured_as": {n: {"faster": r["faster_decode_only"],
                                "ratio": r["decode_only_ratio"],
                                "ranges_overlap": r["ranges_overlap"],
                                "ratio_cpu": r["decode_only_ratio_cpu"]} for n, r in recs},
            "note": note,
        }
    return {"formats": formats, "recommendation": recommend, "format_decoders": table}


def _median(x: dict[str, float | None], spec: str) -> str:
    """A spread's median as text; "-" for a pair that broke before its first measure."""
    return "-" if x.get("median") is None else format(x["median"], spec)


def markdown(*, summary: dict[str, Any]) -> str:
    """The table for bench/README.md, then the recommendation lines."""
    lines = ["| format | written as | decoder | decode-only x-realtime: wall, median [min-max] | "
             "CPU | open_audio ms/file | end-to-end: wall, median [min-max] | CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for name, f in summary["formats"].items():
        for d in DECODER_NAMES:
            r = f["decoders"][d]
            if r["status"] == "refused":
                lines.append(f"| {name} | {f['spec']['what']} | {d} | refused: {r['reason']} "
                             f"| | | | |")
                continue
            bad = " FAILED" if r["status"] == "failed" else ""
            lines.append(f"| {name} | {f['spec']['what']} | {d}{bad} | "
                         f"{common.fmt_spread(r['decode_only_xrt'], '.0f')} | "
                         f"{_median(r['decode_only_xrt_cpu'], '.0f')} | "
                         f"{_median(r['open_ms_per_file'], '.2f')} | "
                         f"{common.fmt_spread(r['end_to_end_xrt'], '.0f')} | "
                         f"{_median(r['end_to_end_xrt_cpu'], '.0f')} |")
    lines.append("")
    lines.append("| format | faster (decode-only) | ratio of medians: wall | ranges overlap | "
                 "CPU | end to end: wall | CPU | fingerprints: largest diff (IQR) | "
                 "PCM identical |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, r in summary["recommendation"].items():
        agree = r.get("fingerprint_agreement", {})
        if agree.get("identical"):
            fp = "0 (identical)"
        elif "worst_iqr" in agree:
            fp = (f"{agree['worst_iqr']:.4f} (`{agree['worst_value']}`, abs "
                  f"{agree['max_abs_diff'][agree['worst_value']]:.3g})")
        else:
            fp = f"{agree.get('max_abs_diff_any_value', float('nan')):.3g} (abs)"
        pcm = r["pcm_agreement"]
        frames = pcm["frame_count_differences"]
        pcm_s = "yes" if pcm["identical_all"] else (
            f"no: max {pcm['max_abs_sample_diff']:.2g}, " + (
                "same frame counts" if frames == [0] else
                "frame counts differ by " + "/".join(str(x) for x in frames)))
        lines.append(f"| {name} | {r['faster_decode_only']} | {r['decode_only_ratio']:.2f} | "
                     f"{'yes' if r['ranges_overlap'] else 'no'} | "
                     f"{r['decode_only_ratio_cpu']:.2f} | "
                     f"{r['end_to_end_ratio_same_order']:.3f} | "
                     f"{r['end_to_end_ratio_same_order_cpu']:.3f} | {fp} | {pcm_s} |")
    lines.append("")
    for probe, t in summary["format_decoders"].items():
        order = " -> ".join(t["order"]) if t["order"] else "undecided"
        lines.append(f"FORMAT_DECODERS[{probe!r}]: {order}"
                     + (f"  ({t['note']})" if t["note"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the decoder bench from the command line; returns the exit status."""
    ap = common.parser(script=__file__, description=__doc__.splitlines()[0], quiet=True)
    ap.add_argument("corpus", type=Path, nargs="?", default=DEFAULT_CORPUS,
                    help=f"the real-music corpus (default {DEFAULT_CORPUS})")
    ap.add_argument("--tracks", type=int, default=4, help="44.1 kHz tracks taken (4)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (5)")
    ap.add_argument("--block-frames", type=int, default=DEFAULT_BLOCK_FRAMES)
    ap.add_argument("--formats", nargs="+", choices=[f.name for f in FORMATS],
                    help="only these formats (default: all)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                    help=f"where the transcodes are kept (default {DEFAULT_CACHE})")
    ap.add_argument("--cpu", type=int, help="the core to pin to (default: the last usable)")
    ap.add_argument("--quiet-wait", type=float, default=5.0, metavar="S",
                    help="before each format of a round, wait up to S seconds for the other "
                         "processes to use less than --quiet-threshold of a core (5; 0: never)")
    ap.add_argument("--quiet-threshold", type=float, default=0.25, metavar="CORES",
                    help="what counts as quiet (0.25 of a core, over 0.5 s)")
    args = ap.parse_args(argv)
    if args.tracks < 1 or args.rounds < 1 or args.block_frames < 1:
        ap.error("--tracks, --rounds and --block-frames must be >= 1")
    if not args.corpus.is_dir():
        ap.error(f"{args.corpus} is not a folder (bench/README.md: how to build the corpus)")
    log = not args.quiet
    usable = sorted(os.sched_getaffinity(0))
    cpu = usable[-1] if args.cpu is None else args.cpu
    if cpu not in usable:
        ap.error(f"--cpu {cpu} is not one of the usable cores {usable}")
    specs = [f for f in FORMATS if args.formats is None or f.name in args.formats]

    import av

    import kernels

    started = time.perf_counter()
    decode_dir = common.REPO / "engine" / "decode"
    decode_digest = common.source_digest(directory=decode_dir)
    load_start = os.getloadavg()
    cpu_start = common.cpu_snapshot()
    corpus = args.corpus.resolve()
    tracks = pick_tracks(corpus=corpus, count=args.tracks)
    built = build_files(corpus=corpus, tracks=tracks, cache=args.cache.expanduser(),
                        specs=specs, log=log)
    files: dict[str, list[Path]] = built["files"]
    source_s = sum(t["seconds"] for t in built["tracks"])
    os.sched_setaffinity(0, {cpu})
    t0 = time.perf_counter()
    kernels.warmup()
    warmup_s = time.perf_counter() - t0
    opens = {s.name: who_opens(files=files[s.name]) for s in specs}
    if log:
        print(f"# pinned to core {cpu}; kernels.warmup() {warmup_s:.2f} s; {len(tracks)} tracks, "
              f"{source_s / 60:.1f} min, {len(specs)} formats, {args.rounds} rounds",
              file=sys.stderr)
    t_measure, cpu_measure = time.perf_counter(), common.cpu_snapshot()
    measured = measure(kernels=kernels, specs=specs, files=files,
                       audio_s={s.name: source_s for s in specs}, opens=opens,
                       rounds=args.rounds, block_frames=args.block_frames,
                       quiet_wait_s=args.quiet_wait, quiet_threshold=args.quiet_threshold,
                       log=log)
    measure_load = common.other_cpu(start=cpu_measure, end=common.cpu_snapshot(),
                                    wall_s=time.perf_counter() - t_measure)
    summary = summarise(specs=specs, opens=opens, measured=measured, files=files,
                        block_frames=args.block_frames, iqr=load_iqr(),
                        names=tuple(kernels.FINGERPRINT_NAMES))
    try:  # optional: _resample falls back to scipy without it
        import soxr

        soxr_version = soxr.__version__
    except ImportError:
        soxr_version = None
    report = {
        **common.report_head(
            schema="fingerprint-engine/bench-decoders/1", kernels=kernels,
            av=av.__version__, ffmpeg=getattr(av, "ffmpeg_version_info", None),
            ffmpeg_libraries={k: ".".join(map(str, v)) for k, v in av.library_versions.items()},
            soxr=soxr_version, pinned_cpu=cpu,
            engine_decode_source_sha256=decode_digest),
        "settings": {
            "rounds": args.rounds, "block_frames": args.block_frames,
            "threads_env": common.SINGLE_THREAD_ENV, "pinned_cpu": cpu,
            "audio_s": "the source tracks' length (Opus: the same seconds at 48 kHz), for every "
                       "format and decoder alike",
            "statistic": "per format and decoder: x-realtime = audio_s / the round's wall "
                         "seconds summed over the tracks; median, min and max over rounds. "
                         "*_cpu: the same with this process's CPU seconds (time.process_time) "
                         "instead of wall seconds: what a busy machine's time-slicing does not "
                         "inflate",
            "quiet_wait_s": args.quiet_wait, "quiet_threshold_cores": args.quiet_threshold,
            "order": "per round, per format: A decode-only, B decode-only, A end to end, "
                     "B end to end; A/B = libsndfile/ffmpeg on even rounds, swapped on odd",
            "codec_noise_target_iqr": CODEC_NOISE_TARGET_IQR,
            "iqr_from": str(ROBUSTNESS_JSON.relative_to(common.REPO)),
        },
        "corpus": {"path": str(corpus), "tracks": built["tracks"], "audio_s": source_s,
                   "cache_dir": built["dir"], "cache_key": built["key"],
                   "encoded_now": built["encoded_now"], "encode_s": built["encode_s"]},
        "in_process_warmup_s": warmup_s,
        **summary,
        "errors": measured["errors"],
        "engine_decode_source_changed_during_run":
            decode_digest != common.source_digest(directory=decode_dir),
        "bench_wall_s": time.perf_counter() - started,
        "interference": common.run_interference(
            cpu_start=cpu_start, started=started, load_start=load_start, measuring=measure_load,
            rounds=measured["interference"], quiet_waits=measured["quiet_waits"]),
    }
    text = markdown(summary=summary)
    warn = common.interference_warning([(f"round {i + 1}", r) for i, r in
                                        enumerate(measured["interference"])])
    waits = measured["quiet_waits"]
    tail = [f"# {len(tracks)} tracks, {source_s / 60:.1f} min of audio; core {cpu}; "
            f"{args.rounds} rounds; bench {report['bench_wall_s']:.0f} s "
            f"(encoding {built['encode_s']:.0f} s, waiting for quiet "
            f"{sum(w['waited_s'] for w in waits):.0f} s, "
            f"{sum(not w['quiet'] for w in waits)} of {len(waits)} waits ran out)"]
    if warn:
        tail.append(warn)
    for e in measured["errors"]:
        tail.append(f"ERROR {e['format']} / {e['decoder']} ({e['phase']}): {e['error']}")
    common.write_report(report=report, output=args.output,
                        summary=text + "\n" + "\n".join(tail))
    return 1 if measured["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
