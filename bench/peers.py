#!/usr/bin/env python
"""Compare the fingerprint kernels with what a user would write by hand, and with Essentia.

For the same tracks, interleaved track by track in one run, on ONE thread, this measures:

- **ours**: ``fingerprint_file(path)`` after ``kernels.warmup()`` (median of
  ``--repeats``), and the decode-only time (``soundfile`` into one reused float32 buffer) for
  context;
- **librosa**: a plain librosa + pyloudnorm pipeline computing the 25 values of fingerprint
  version 2 where librosa has a counterpart, written the way a competent user writes it from
  docs/FINGERPRINT.md: the whole track loaded at once (``librosa.load(sr=None, mono=False)``),
  one ``librosa.stft`` on the doc's frame grid, band levels relative to the mid band from the
  summed power spectrum (each bin split over the bands by the share of its interval inside
  them), ``pyloudnorm`` integrated loudness and loudness range, ``librosa.beat.beat_track`` /
  ``onset_detect`` on a mel onset envelope, ``librosa.feature`` centroid / chroma / RMS,
  ``librosa.decompose.hpss(abs(stft), kernel_size=31)`` and MFCCs 1-4 of the mean log-mel
  spectrum (``librosa.filters.mel``, ``power_to_db``, ``scipy.fft.dct``); it does not use any of
  the project's kernels or test references. ``pulse_clarity`` and the key
  (``key_fifths_x``, ``key_fifths_y``, ``key_mode``) have no librosa counterpart: those rows
  show ours only;
- **Essentia** (when ``essentia`` imports): ``essentia.standard.MusicExtractor()`` with its
  default profile, timed on the same tracks. It computes a different (larger) set of
  descriptors, so its time is context, not a like-for-like peer; a few of its descriptors that
  name the same quantity are kept next to ours. Untimed, ``KeyExtractor()`` (profile bgate, on
  ``MonoLoader(sampleRate=44100)``) gives a key per track, compared with the key our
  fingerprint states (``kernels.key.key_of``): agreement, and the fifth / relative / parallel
  relations of the disagreements.

It reports total seconds, x-realtime and the speed ratios ours / librosa and ours / Essentia
(goal: ours >= 40x the librosa pipeline), and a value-by-value table of our 25 values against the
librosa pipeline's: medians across tracks, absolute and relative differences (median and max),
the tolerance where one applies and a verdict, with a note for the values whose definitions
differ by design.

Usage::

    .venv/bin/python bench/peers.py /work/corpus-small --limit 8 \\
        -o bench/results/peers-corpus-small.json
    .venv/bin/python bench/peers.py --synthetic 2 --seconds 60

``--limit N`` takes N tracks spread evenly over the sorted file list (``--first``: the first N).
A markdown summary always goes to stderr; the JSON goes to ``-o FILE`` (default: stdout).
"""

from __future__ import annotations

import os
import sys

# bench/common.py first: importing it sets one thread per numeric library, which must happen
# before numpy, numba, scipy or librosa load.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: I001

import argparse
import gc
import math
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from engine.decode import DEFAULT_BLOCK_FRAMES, fingerprint_file
from kernels.key import key_of  # the key our fingerprint states, for its LABEL only

#: Band edges in Hz of the spectral balance (each capped at sr / 2): bands [20, 60), [60, 250),
#: [250, 500), [500, 2000) (the mid band, the reference), [2000, 4000), [4000, 6000),
#: [6000, 20000).
BAND_EDGES_HZ = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0)
#: The six band levels: name -> band index (3, the mid band, is the reference).
BAND_LEVELS: tuple[tuple[str, int], ...] = (
    ("sub_bass_db", 0), ("bass_db", 1), ("low_mid_db", 2),
    ("upper_mid_db", 4), ("presence_db", 5), ("air_db", 6),
)
MID_BAND = 3
#: Band levels are clamped to +-this (dB).
BAND_DB_LIMIT = 80.0

#: -60 dBFS: a frame or second whose mono RMS reaches this is "active".
ACTIVE_RMS = 1e-3

#: MFCCs: 40 Slaney mel bands from 0 Hz to min(8 kHz, sr / 2), log floored 80 dB below each
#: frame's loudest band and at 1e-10 (librosa's top_db and amin), coefficients 1..4.
MEL_BANDS = 40
MEL_FMAX_HZ = 8000.0
MEL_TOP_DB = 80.0
MEL_AMIN = 1e-10
N_MFCC = 4

_BANDS_NOTE = ("same definition, same frames (summed power spectrum of the doc's STFT grid, "
               "bins split over bands by the share of their interval)")
_MFCC_NOTE = ("same definition: librosa.filters.mel(40, 0 Hz..min(8 kHz, sr/2), Slaney) on the "
              "same |X|^2, 10 log10(max(mel, 1e-10)) floored 80 dB below each frame's top "
              "band, mean over active frames, scipy dct(type 2, ortho)")
_KEY_NOTE = ("no librosa counterpart (librosa has no key estimator); ours vs Essentia "
             "KeyExtractor in the key table")

#: Per value: (kind, tolerance, note). ``kind`` is "abs" (absolute difference), "rel" (relative
#: difference), "tempo" (same / related / other), None (no tolerance applies: the definitions
#: differ by design) or "absent" (librosa has no counterpart: ours only).
COMPARISON: dict[str, tuple[str | None, float | None, str]] = {
    "sub_bass_db": ("abs", 0.01, _BANDS_NOTE),
    "bass_db": ("abs", 0.01, _BANDS_NOTE),
    "low_mid_db": ("abs", 0.01, _BANDS_NOTE),
    "upper_mid_db": ("abs", 0.01, _BANDS_NOTE),
    "presence_db": ("abs", 0.01, _BANDS_NOTE),
    "air_db": ("abs", 0.01, _BANDS_NOTE),
    "lufs": ("abs", 0.1, "pyloudnorm Meter(sr).integrated_loudness: the spec's own reference "
                         "(pyloudnorm weights channels 4 and 5 by 1.41, BS.1770-4 gives a 5.1 "
                         "LFE 0; no matter for stereo)"),
    "crest_db": ("abs", 0.01, "same definition"),
    "loudness_range": ("abs", 1.0,
                       "pyloudnorm loudness_range: 3 s windows every 90 ms and 1.5 s of silence "
                       "appended, vs ours every 100 ms; the spec allows 1 LU"),
    "dynamic_range_variation": ("abs", 0.05, "same definition"),
    "peak_consistency": ("abs", 0.01, "same definition"),
    "tempo_bpm": ("tempo", 0.04,
                  "differs by design: librosa beat_track (mel flux, 120 BPM prior, lag "
                  "resolution ~2-4 %) vs our SuperFlux autocorrelation with its metrical-level "
                  "rule; metrically related answers (2x, 3x, 3:2, 4:3) are expected"),
    "pulse_clarity": ("absent", None, "no librosa counterpart: ours only"),
    "transient_density": (None, None,
                          "differs by design: librosa onset_detect (mel flux, its peak picking, "
                          "30 ms wait) vs our 24-band-per-octave SuperFlux onsets"),
    "spectral_centroid": ("rel", 0.01, "same definition, librosa spectral_centroid"),
    "harmonic_ratio": ("abs", 0.03,
                       "ours on a coarser grid (2-frame power means, 17 x 31 medians, bins "
                       "< 9 kHz); librosa hpss(abs(stft), kernel_size=31) on the full STFT"),
    "chroma_energy": ("abs", 0.02, "same definition, librosa chroma_stft(tuning=0, norm=None)"),
    "key_fifths_x": ("absent", None, _KEY_NOTE),
    "key_fifths_y": ("absent", None, _KEY_NOTE),
    "key_mode": ("absent", None, _KEY_NOTE),
    "mfcc_1": ("abs", 0.05, _MFCC_NOTE),
    "mfcc_2": ("abs", 0.05, _MFCC_NOTE),
    "mfcc_3": ("abs", 0.05, _MFCC_NOTE),
    "mfcc_4": ("abs", 0.05, _MFCC_NOTE),
    "phase_correlation": ("abs", 1e-4, "same definition (np.corrcoef)"),
}

#: Essentia MusicExtractor descriptors that name the same quantity as one of ours (context only:
#: Essentia resamples to 44.1 kHz and frames, gates and averages in its own way). Its spectral
#: descriptors are left out: they are computed on an equal-loudness-filtered signal, not in our
#: terms; its MFCCs use another mel bank, log and DCT scaling.
ESSENTIA_SAME_QUANTITY: dict[str, str] = {
    "lufs": "lowlevel.loudness_ebu128.integrated",
    "loudness_range": "lowlevel.loudness_ebu128.loudness_range",
    "tempo_bpm": "rhythm.bpm",
    "transient_density": "rhythm.onset_rate",
}

#: Tempo ratios taken as "related": the metrical levels tempo estimators confuse (octaves, the
#: bar of a triple meter, and the 3:2 and 4:3 of dotted and triplet pulses).
TEMPO_RELATED_RATIOS = (2.0, 0.5, 3.0, 1.0 / 3.0, 4.0, 0.25, 1.5, 2.0 / 3.0, 4.0 / 3.0, 0.75)

#: Pitch classes of key names, enharmonics included (Essentia spells "C#", "Eb", "F#", "Ab",
#: "Bb"; ours the same).
PITCH_CLASS: dict[str, int] = {
    "C": 0, "B#": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "Fb": 4, "F": 5,
    "E#": 5, "F#": 6, "Gb": 6, "G": 7, "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11,
    "Cb": 11,
}


# --------------------------------------------------------------------------------------------
# The peer: what a user writes by hand with librosa + pyloudnorm
# --------------------------------------------------------------------------------------------


def n_fft_for_rate(sr: int) -> int:
    """STFT size of docs/FINGERPRINT.md: 2048 for 32 <= sr/kHz < 64, halved / doubled per octave.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.

    Returns
    -------
    int
        n_fft (256 at the lowest).
    """
    n_fft = 2048
    lo = 32000
    while sr < lo and n_fft > 256:
        n_fft //= 2
        lo //= 2
    hi = 64000
    while sr >= hi:
        n_fft *= 2
        hi *= 2
    return n_fft


def band_weights(sr: int, n_fft: int) -> np.ndarray:
    """Share of each bin in each of the 7 bands, float64[7, n_fft // 2 + 1].

    Bin ``k`` stands for ``[(k - 1/2) df, (k + 1/2) df)``, ``df = sr / n_fft``; band ``b`` takes
    the fraction of that interval inside ``[lo_b, hi_b)``, both edges capped at ``sr / 2``.
    """
    df = sr / n_fft
    centre = np.arange(n_fft // 2 + 1) * df
    lo_k, hi_k = centre - df / 2, centre + df / 2
    edges = [min(e, sr / 2) for e in BAND_EDGES_HZ]
    w = np.zeros((7, centre.size))
    for b in range(7):
        overlap = np.minimum(hi_k, edges[b + 1]) - np.maximum(lo_k, edges[b])
        w[b] = np.clip(overlap, 0.0, None) / df
    return w


def _mean_over(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values[mask]`` in float64; 0 when the mask is empty."""
    return float(np.mean(values[mask], dtype=np.float64)) if mask.any() else 0.0


def _cv(values: np.ndarray) -> float:
    """Population coefficient of variation; 0 for a zero mean."""
    mean = float(np.mean(values))
    return float(np.std(values)) / mean if mean != 0.0 else 0.0


def librosa_fingerprint(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """The version-2 values by a plain librosa + pyloudnorm pipeline, whole track in memory.

    Parameters
    ----------
    path : Path
        Audio file (anything ``librosa.load`` reads).

    Returns
    -------
    values : dict
        name -> value for the names of ``kernels.FINGERPRINT_NAMES`` librosa has a counterpart
        for (all but ``pulse_clarity`` and the three key values).
    stages : dict
        Wall seconds per stage (load, stft, spectral, mfcc, hpss, rhythm, samples, loudness).
    """
    import librosa
    import pyloudnorm
    import scipy.fft

    stages: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        stages[name] = stages.get(name, 0.0) + now - t
        t = now

    y, sr_f = librosa.load(path, sr=None, mono=False)
    sr = int(sr_f)
    x = np.atleast_2d(y)  # (channels, samples), float32
    mono = x.mean(axis=0)
    n = mono.shape[0]
    lap("load")

    # STFT on the doc's grid: frames start at 0, the last partial frame is zero-padded.
    n_fft = n_fft_for_rate(sr)
    hop = n_fft // 4
    frames = 1 + math.ceil(max(n - n_fft, 0) / hop)
    mono_p = np.pad(mono, (0, (frames - 1) * hop + n_fft - n))
    mag = np.abs(librosa.stft(mono_p, n_fft=n_fft, hop_length=hop, window="hann", center=False))
    power = mag**2
    lap("stft")

    values: dict[str, float] = {}
    # Spectral balance: each band's power relative to the mid band's, in dB.
    spectrum = power.sum(axis=1, dtype=np.float64)
    band = band_weights(sr, n_fft) @ spectrum
    mid = band[MID_BAND]
    for name, b in BAND_LEVELS:
        if band[b] > 0 and mid > 0:
            values[name] = float(np.clip(10 * math.log10(band[b] / mid), -BAND_DB_LIMIT,
                                         BAND_DB_LIMIT))
        else:
            values[name] = (0.0 if band[b] == mid
                            else BAND_DB_LIMIT if band[b] > 0 else -BAND_DB_LIMIT)

    rms = librosa.feature.rms(y=mono_p, frame_length=n_fft, hop_length=hop, center=False)[0]
    active = rms >= ACTIVE_RMS
    centroid = librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=n_fft)[0]
    values["spectral_centroid"] = _mean_over(centroid, active)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=0.0, norm=None)
    chroma_sum = chroma.sum(axis=0, dtype=np.float64)
    safe = np.where(chroma_sum > 0, chroma_sum, 1.0)
    energy = np.where(chroma_sum > 0, ((chroma / safe) ** 2).sum(axis=0), 1.0 / 12.0)
    values["chroma_energy"] = _mean_over(energy, active)
    lap("spectral")

    # MFCCs 1..4 of the mean log-mel spectrum over active frames.
    mel_fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=MEL_BANDS, fmin=0.0,
                                 fmax=min(MEL_FMAX_HZ, sr / 2), htk=False, norm="slaney")
    mel = mel_fb @ power
    log_mel = librosa.power_to_db(mel, ref=1.0, amin=MEL_AMIN, top_db=None)
    log_mel = np.maximum(log_mel, log_mel.max(axis=0, keepdims=True) - MEL_TOP_DB)
    mfcc = np.zeros(N_MFCC)
    if active.any():
        mean_log_mel = log_mel[:, active].mean(axis=1, dtype=np.float64)
        mfcc = scipy.fft.dct(mean_log_mel, type=2, norm="ortho")[1:N_MFCC + 1]
    for i in range(N_MFCC):
        values[f"mfcc_{i + 1}"] = float(mfcc[i])
    del mel, log_mel
    lap("mfcc")

    harmonic, percussive = librosa.decompose.hpss(mag, kernel_size=31)
    h2 = float(np.sum(np.square(harmonic, dtype=np.float64)))
    p2 = float(np.sum(np.square(percussive, dtype=np.float64)))
    values["harmonic_ratio"] = h2 / (h2 + p2) if h2 + p2 > 0 else 0.0
    del harmonic, percussive
    lap("hpss")

    # Onset envelope from the same power STFT (mel, dB), as librosa's own default computes it.
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))
    envelope = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop)
    tempo, _beats = librosa.beat.beat_track(onset_envelope=envelope, sr=sr, hop_length=hop)
    bpm = float(np.atleast_1d(tempo)[0])
    values["tempo_bpm"] = float(np.clip(bpm, 40.0, 240.0)) if bpm > 0 else 120.0
    onsets = librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop)
    lap("rhythm")

    # Per whole second (all channels), and the active duration for the onset density.
    seconds = n // sr
    block = x[:, : seconds * sr].reshape(x.shape[0], seconds, sr).astype(np.float64)
    sec_rms_mono = np.sqrt(np.mean(block.mean(axis=0) ** 2, axis=1))
    sec_active = sec_rms_mono >= ACTIVE_RMS
    sec_peak = np.abs(block).max(axis=(0, 2))
    sec_rms = np.sqrt(np.mean(block**2, axis=(0, 2)))
    tail = mono[seconds * sr:].astype(np.float64)
    tail_active = tail.size > 0 and math.sqrt(float(np.mean(tail**2))) >= ACTIVE_RMS
    active_s = float(sec_active.sum()) + (tail.size / sr if tail_active else 0.0)
    values["transient_density"] = len(onsets) / active_s if active_s > 0 else 0.0
    crest_s = 20 * np.log10(sec_peak[sec_active] / sec_rms[sec_active])
    values["dynamic_range_variation"] = float(np.std(crest_s)) if crest_s.size else 0.0
    peaks = sec_peak[sec_active]
    values["peak_consistency"] = 1.0 / (1.0 + _cv(peaks)) if peaks.size else 0.0
    del block
    peak = float(np.abs(x).max())
    rms_all = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
    values["crest_db"] = 20 * math.log10(peak / rms_all) if rms_all > 0 else 0.0
    left = x[0].astype(np.float64)
    right = x[1].astype(np.float64) if x.shape[0] > 1 else left
    if np.array_equal(left, right):
        values["phase_correlation"] = 1.0
    elif left.std() == 0 or right.std() == 0:
        values["phase_correlation"] = 0.0
    else:
        values["phase_correlation"] = float(np.corrcoef(left, right)[0, 1])
    del left, right
    lap("samples")

    data = x.T if x.shape[0] > 1 else x[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyloudnorm warns about clipping of lossy decodes
        lufs = pyloudnorm.Meter(sr).integrated_loudness(data)
        lra = pyloudnorm.Meter(sr).loudness_range(data)
    values["lufs"] = float(lufs) if math.isfinite(lufs) and lufs > -70 else -70.0
    values["loudness_range"] = float(lra) if math.isfinite(lra) else 0.0
    lap("loudness")
    return values, stages


# --------------------------------------------------------------------------------------------
# Essentia
# --------------------------------------------------------------------------------------------


def load_essentia() -> tuple[Any, str]:
    """Import ``essentia.standard`` if it is installed.

    Returns
    -------
    module or None
        ``essentia.standard``, or None.
    str
        "available, essentia <version>" or "not available: <reason>".
    """
    try:
        import essentia
        import essentia.standard as es
    except Exception as e:  # ImportError, or a broken wheel (missing shared library, ABI)
        return None, f"not available: {type(e).__name__}: {e}"
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    missing = [name for name in ("MusicExtractor", "KeyExtractor", "MonoLoader")
               if not hasattr(es, name)]
    if missing:
        return None, f"not available: essentia {essentia.__version__} lacks {missing}"
    return es, f"available, essentia {essentia.__version__}"


def essentia_extract(extractor: Any, path: Path) -> dict[str, float]:
    """Run a MusicExtractor on one file.

    Parameters
    ----------
    extractor : essentia.standard.MusicExtractor
        A configured extractor, reused across files.
    path : Path
        Audio file.

    Returns
    -------
    dict
        Our name -> Essentia's descriptor of the same quantity (``ESSENTIA_SAME_QUANTITY``).
    """
    pool, _frames = extractor(str(path))
    names = set(pool.descriptorNames())
    return {ours: float(pool[theirs]) for ours, theirs in ESSENTIA_SAME_QUANTITY.items()
            if theirs in names}


def essentia_key(es: Any, path: Path) -> dict[str, Any]:
    """Essentia's key of one file: ``KeyExtractor()`` (profile bgate) on 44.1 kHz mono.

    Parameters
    ----------
    es : module
        ``essentia.standard``.
    path : Path
        Audio file.

    Returns
    -------
    dict
        ``label`` ("A minor", or None when Essentia names no key), ``strength``, ``s`` (wall
        seconds, loading included; not part of any speed figure).
    """
    t0 = time.perf_counter()
    audio = es.MonoLoader(filename=str(path), sampleRate=44100)()
    key, scale, strength = es.KeyExtractor()(audio)  # a fresh instance per file
    return {"label": f"{key} {scale}" if key else None, "strength": float(strength),
            "s": time.perf_counter() - t0}


def key_relation(ours: str | None, theirs: str | None) -> str:
    """How two key labels ("A minor") relate: "same", "fifth" (same mode, tonics a fifth
    apart either way), "relative", "parallel", "other", or "no key" when either is None."""
    if ours is None or theirs is None:
        return "no key"
    (t1, m1), (t2, m2) = ours.split(), theirs.split()
    p1, p2 = PITCH_CLASS[t1], PITCH_CLASS[t2]
    if m1 == m2:
        if p1 == p2:
            return "same"
        return "fifth" if (p1 - p2) % 12 in (5, 7) else "other"
    if p1 == p2:
        return "parallel"
    major, minor = (p1, p2) if m1 == "major" else (p2, p1)
    return "relative" if (major + 9) % 12 == minor else "other"


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


def _write_warmup_file(directory: Path, sr: int, channels: int) -> Path:
    """A 6 s noisy chord at ``sr`` / ``channels`` as FLAC, for untimed warm-up runs."""
    rng = np.random.default_rng(0)
    t = np.arange(6 * sr) / sr
    tone = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    clicks = (np.arange(t.size) % (sr // 2) < sr // 200) * rng.uniform(-0.3, 0.3, t.size)
    mono = (tone + clicks + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    data = np.repeat(mono[:, None], channels, axis=1) * np.linspace(0.8, 1.0, channels)[None, :]
    path = directory / f"warmup-{sr}-{channels}.flac"
    sf.write(path, np.clip(data, -1, 1), sr, subtype="PCM_16")
    return path


def measure(
    *, tracks: list[Path], root: Path | None, kernels: Any, essentia: Any, repeats: int,
    librosa_repeats: int, log: bool,
) -> dict[str, Any]:
    """Time and fingerprint every track with each method, interleaved track by track.

    Parameters
    ----------
    tracks : list of Path
        Audio files.
    root : Path or None
        Folder the names are reported relative to.
    kernels : module
        The imported ``kernels`` package (warmed up).
    essentia : module or None
        ``essentia.standard``, or None to skip it (MusicExtractor timed, KeyExtractor not).
    repeats : int
        Runs of ours (and of decode-only) per track; the median is kept.
    librosa_repeats : int
        Runs of the librosa pipeline (and of Essentia) per track; the median is kept.
    log : bool
        Print one line per track to stderr.

    Returns
    -------
    dict
        ``tracks`` (per-track values and times) and ``warmup_s``.
    """
    names = list(kernels.FINGERPRINT_NAMES)
    configs = set()
    for path in tracks:
        info = sf.info(str(path))
        configs.add((int(info.samplerate), int(info.channels)))
        path.read_bytes()  # page cache: nobody pays for the first read from disk
    extractor = essentia.MusicExtractor() if essentia is not None else None
    warm: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="peers-warmup-") as tmp:
        for sr, ch in sorted(configs):
            w = _write_warmup_file(Path(tmp), sr, ch)
            for key, fn in (("ours", lambda w=w: fingerprint_file(w)),
                            ("librosa", lambda w=w: librosa_fingerprint(w)),
                            ("essentia", lambda w=w: essentia_extract(extractor, w))):
                if key == "essentia" and extractor is None:
                    continue
                warm[key] = warm.get(key, 0.0) + common.timed(fn, collect=True)[0]

    rows = []
    for i, path in enumerate(tracks):
        info = sf.info(str(path))
        duration = info.frames / info.samplerate
        buffer = np.empty((DEFAULT_BLOCK_FRAMES, info.channels), dtype=np.float32)
        row: dict[str, Any] = {
            "file": str(path.relative_to(root)) if root else path.name,
            "format": path.suffix.lower().lstrip("."),
            "sample_rate": int(info.samplerate), "channels": int(info.channels),
            "duration_s": duration,
        }
        ours_t: list[float] = []
        decode_t: list[float] = []
        lib_t: list[float] = []
        ess_t: list[float] = []
        ours_vals: list[np.ndarray] = []
        lib_vals: dict[str, float] = {}
        lib_stages: list[dict[str, float]] = []
        ess_vals: dict[str, float] = {}
        ess_key: dict[str, Any] = {}

        def run_ours(k: int, path: Path = path, buffer: np.ndarray = buffer,
                     ours_t: list[float] = ours_t, decode_t: list[float] = decode_t,
                     ours_vals: list[np.ndarray] = ours_vals) -> None:
            for r in range(repeats):
                parts = ("decode", "e2e") if (r + k) % 2 == 0 else ("e2e", "decode")
                for part in parts:
                    if part == "decode":
                        gc.collect()
                        decode_t.append(common.decode_only(path=path, buffer=buffer)[0])
                    else:
                        s, fp = common.timed(lambda: fingerprint_file(path), collect=True)
                        ours_t.append(s)
                        ours_vals.append(np.asarray(fp.as_array(), dtype=np.float64))

        def run_librosa(path: Path = path, lib_t: list[float] = lib_t,
                        lib_vals: dict[str, float] = lib_vals,
                        lib_stages: list[dict[str, float]] = lib_stages) -> None:
            for _ in range(librosa_repeats):
                s, (vals, stages) = common.timed(lambda: librosa_fingerprint(path), collect=True)
                lib_t.append(s)
                lib_vals.update(vals)
                lib_stages.append(stages)

        def run_essentia(path: Path = path, ess_t: list[float] = ess_t,
                         ess_vals: dict[str, float] = ess_vals,
                         ess_key: dict[str, Any] = ess_key) -> None:
            if extractor is None:
                return
            for _ in range(librosa_repeats):
                s, vals = common.timed(lambda: essentia_extract(extractor, path), collect=True)
                ess_t.append(s)
                ess_vals.update(vals)
            ess_key.update(essentia_key(essentia, path))  # untimed: context for the key

        runners = [("ours", lambda i=i: run_ours(i)), ("librosa", run_librosa),
                   ("essentia", run_essentia)]
        order = runners[i % 3:] + runners[: i % 3]  # nobody always goes first
        for _, fn in order:
            fn()
        identical = all(np.array_equal(ours_vals[0], v) for v in ours_vals[1:])
        row.update({
            "order": [name for name, _ in order if name != "essentia" or extractor is not None],
            "ours_s": common.median(ours_t), "ours_runs_s": ours_t,
            "decode_s": common.median(decode_t), "decode_runs_s": decode_t,
            "librosa_s": common.median(lib_t), "librosa_runs_s": lib_t,
            "librosa_stages_s": common.median_by_key(lib_stages),
            "essentia_s": common.median(ess_t) if ess_t else None,
            "essentia_runs_s": ess_t,
            "ours_identical_across_runs": identical,
            "ours": dict(zip(names, (float(v) for v in ours_vals[0]), strict=True)),
            "librosa": {name: lib_vals.get(name) for name in names},
            "essentia": ess_vals or None,
            "essentia_key": ess_key or None,
        })
        ours_key = key_of(row["ours"])
        row["ours_key"] = None if ours_key is None else {
            "label": ours_key.label, "camelot": ours_key.camelot, "strength": ours_key.strength}
        row["speed_ratio_vs_librosa"] = row["librosa_s"] / row["ours_s"]
        if row["essentia_s"] is not None:
            row["speed_ratio_vs_essentia"] = row["essentia_s"] / row["ours_s"]
        rows.append(row)
        if log:
            ess = (f", essentia {row['essentia_s']:.2f} s" if row["essentia_s"] is not None
                   else "")
            print(f"[{i + 1}/{len(tracks)}] {row['file']} ({duration:.0f} s): ours "
                  f"{row['ours_s']:.3f} s, decode {row['decode_s']:.3f} s, librosa "
                  f"{row['librosa_s']:.2f} s ({row['speed_ratio_vs_librosa']:.0f}x){ess}",
                  file=sys.stderr, flush=True)
    return {"tracks": rows, "warmup_s": warm}


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def _tempo_relation(ours: float, theirs: float, tol: float) -> str:
    """"same", "related" (a metrical-level ratio: 2x, 3x, 4x, 3:2, 4:3) or "other", within tol."""
    ratio = ours / theirs if theirs > 0 else math.inf
    if abs(ratio - 1.0) <= tol:
        return "same"
    if any(abs(ratio / r - 1.0) <= tol for r in TEMPO_RELATED_RATIOS):
        return "related"
    return "other"


def speed_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals, x-realtime and speed ratios of one run.

    Parameters
    ----------
    rows : list of dict
        ``measure()["tracks"]``.

    Returns
    -------
    dict
        ``audio_s``; per method ``total_s`` and ``xrt``; ``ours_vs_librosa`` (total ratio and the
        median / min / max of the per-track ratios), the same vs Essentia when measured, and the
        librosa pipeline's seconds per stage.
    """
    audio = sum(r["duration_s"] for r in rows)
    out: dict[str, Any] = {"tracks": len(rows), "audio_s": audio}
    for key in ("ours", "decode", "librosa", "essentia"):
        times = [r[f"{key}_s"] for r in rows if r.get(f"{key}_s") is not None]
        if len(times) == len(rows) and rows:
            total = sum(times)
            out[key] = {"total_s": total, "xrt": audio / total}
    for peer in ("librosa", "essentia"):
        if peer in out:
            per = [r[f"{peer}_s"] / r["ours_s"] for r in rows]
            out[f"ours_vs_{peer}"] = {
                "speed_ratio": out[peer]["total_s"] / out["ours"]["total_s"],
                **{f"per_track_{k}": v for k, v in common.spread(per).items()},
            }
    stages: dict[str, float] = {}
    for r in rows:
        for k, v in r["librosa_stages_s"].items():
            stages[k] = stages.get(k, 0.0) + v
    out["librosa_stages_s"] = stages
    out["goal_ours_vs_librosa"] = 40.0
    if "ours_vs_librosa" in out:
        out["goal_met"] = out["ours_vs_librosa"]["speed_ratio"] >= 40.0
    return out


def comparison_table(rows: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Value-by-value comparison of ours against the librosa pipeline across tracks.

    Parameters
    ----------
    rows : list of dict
        ``measure()["tracks"]``.
    names : list of str
        The 25 names, in order.

    Returns
    -------
    list of dict
        One row per value: medians of ours and of librosa's, median / max absolute and relative
        differences, the tolerance, the verdict and the note. Where librosa has no counterpart
        (kind "absent") only ours' median is given, the rest is None.
    """
    table = []
    for k, name in enumerate(names):
        ours = np.array([r["ours"][name] for r in rows])
        kind, tol, note = COMPARISON[name]
        if kind == "absent":
            table.append({
                "index": k + 1, "name": name, "ours_median": float(np.median(ours)),
                "ours_min": float(ours.min()), "ours_max": float(ours.max()),
                "librosa_median": None, "abs_diff_median": None, "abs_diff_max": None,
                "rel_diff_median": None, "rel_diff_max": None, "tolerance": None,
                "note": note, "verdict": "n/a (no librosa counterpart)"})
            continue
        lib = np.array([r["librosa"][name] for r in rows], dtype=np.float64)
        diff = np.abs(ours - lib)
        rel = diff / np.maximum(np.abs(lib), 1e-12)
        entry: dict[str, Any] = {
            "index": k + 1, "name": name,
            "ours_median": float(np.median(ours)), "librosa_median": float(np.median(lib)),
            "abs_diff_median": float(np.median(diff)), "abs_diff_max": float(diff.max()),
            "rel_diff_median": float(np.median(rel)), "rel_diff_max": float(rel.max()),
            "tolerance": None if kind is None else f"{kind} {tol:g}", "note": note,
        }
        if kind in ("abs", "rel"):
            bad = int(np.sum((diff if kind == "abs" else rel) > tol))
            entry["tracks_beyond_tolerance"] = bad
            entry["verdict"] = "ok" if bad == 0 else f"BEYOND on {bad}/{len(rows)}"
        elif kind == "tempo":
            rel_kinds = [_tempo_relation(a, b, tol or 0.04) for a, b in zip(ours, lib,
                                                                            strict=True)]
            counts = {c: rel_kinds.count(c) for c in ("same", "related", "other")}
            entry["tempo_relations"] = rel_kinds
            entry["verdict"] = (f"same {counts['same']}/{len(rows)}, related (2x, 3x, 3:2, "
                                f"4:3) {counts['related']}, other {counts['other']}")
        else:
            entry["verdict"] = "n/a (definitions differ)"
        table.append(entry)
    return table


def essentia_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians of ours, librosa's and Essentia's value for the quantities Essentia also names.

    Parameters
    ----------
    rows : list of dict
        ``measure()["tracks"]``.

    Returns
    -------
    list of dict
        Empty when Essentia did not run.
    """
    if not rows or not rows[0].get("essentia"):
        return []
    out = []
    for name, descriptor in ESSENTIA_SAME_QUANTITY.items():
        ess = [r["essentia"].get(name) for r in rows]
        if any(v is None for v in ess):
            continue
        ours = np.array([r["ours"][name] for r in rows])
        e = np.array(ess, dtype=np.float64)
        extra: dict[str, Any] = {}
        if name == "tempo_bpm":
            extra["ours_vs_essentia_relations"] = [
                _tempo_relation(a, b, COMPARISON[name][1] or 0.04) for a, b in zip(ours, e,
                                                                                  strict=True)]
            extra["librosa_vs_essentia_relations"] = [
                _tempo_relation(r["librosa"][name], b, COMPARISON[name][1] or 0.04)
                for r, b in zip(rows, e, strict=True)]
        out.append({
            **extra, "name": name, "essentia_descriptor": descriptor,
            "ours_median": float(np.median(ours)),
            "librosa_median": float(np.median([r["librosa"][name] for r in rows])),
            "essentia_median": float(np.median(e)),
            "abs_diff_ours_essentia_median": float(np.median(np.abs(ours - e))),
        })
    return out


def key_table(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Our key (``kernels.key.key_of`` of the fingerprint) against Essentia's KeyExtractor.

    Parameters
    ----------
    rows : list of dict
        ``measure()["tracks"]``.

    Returns
    -------
    dict or None
        None when Essentia did not run; else ``tracks``, ``agreement`` (share of tracks with
        the same key), ``relations`` (count per :func:`key_relation` answer) and per track the
        file, both labels and the relation.
    """
    if not rows or not rows[0].get("essentia_key"):
        return None
    per = []
    for r in rows:
        ours = r["ours_key"]["label"] if r["ours_key"] else None
        theirs = r["essentia_key"]["label"]
        per.append({"file": r["file"], "ours": ours, "essentia": theirs,
                    "ours_strength": r["ours_key"]["strength"] if r["ours_key"] else 0.0,
                    "essentia_strength": r["essentia_key"]["strength"],
                    "relation": key_relation(ours, theirs)})
    kinds = ("same", "fifth", "relative", "parallel", "other", "no key")
    counts = {c: sum(1 for e in per if e["relation"] == c) for c in kinds}
    return {"essentia": "KeyExtractor() (profile bgate) on MonoLoader(sampleRate=44100)",
            "tracks": len(per), "agreement": counts["same"] / len(per), "relations": counts,
            "per_track": per}


def _g(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0:
        return "0"
    return f"{v:.4g}" if 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


def markdown(report: dict[str, Any]) -> str:
    """The human summary: speed, the 25-row comparison and Essentia's context table.

    Parameters
    ----------
    report : dict
        The full report.

    Returns
    -------
    str
        Markdown text.
    """
    sp = report["speed"]
    lines = [
        f"## peers: {report['corpus']['source']} ({sp['tracks']} tracks, "
        f"{sp['audio_s'] / 60:.1f} min), one thread",
        "",
        "| method | total s | x realtime | ours is N x faster |",
        "|---|---|---|---|",
    ]
    labels = {"decode": "decode only (soundfile)", "ours": "ours (engine.decode.fingerprint_file)",
              "librosa": "librosa + pyloudnorm pipeline", "essentia": "Essentia MusicExtractor"}
    for key in ("decode", "ours", "librosa", "essentia"):
        if key not in sp:
            continue
        ratio = sp.get(f"ours_vs_{key}", {}).get("speed_ratio")
        lines.append(f"| {labels[key]} | {sp[key]['total_s']:.2f} | {sp[key]['xrt']:.0f} | "
                     f"{'-' if ratio is None else f'{ratio:.1f}'} |")
    if "ours_vs_librosa" in sp:
        v = sp["ours_vs_librosa"]
        lines += ["", f"ours / librosa: **{v['speed_ratio']:.1f}x** (goal >= 40x: "
                      f"{'met' if sp['goal_met'] else 'NOT met'}); per track median "
                      f"{v['per_track_median']:.1f}x, min {v['per_track_min']:.1f}x, max "
                      f"{v['per_track_max']:.1f}x"]
    lines += ["", f"Essentia: {report['essentia_status']}", "",
              "librosa pipeline, seconds per stage: " + ", ".join(
                  f"{k} {v:.1f}" for k, v in sorted(sp["librosa_stages_s"].items(),
                                                    key=lambda kv: -kv[1])),
              "", "| # | value | ours (median) | librosa (median) | abs diff med | abs diff max "
              "| rel diff med | rel diff max | tolerance | verdict | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in report["comparison"]:
        lines.append(
            f"| {e['index']} | {e['name']} | {_g(e['ours_median'])} | {_g(e['librosa_median'])} "
            f"| {_g(e['abs_diff_median'])} | {_g(e['abs_diff_max'])} "
            f"| {_g(e['rel_diff_median'])} | {_g(e['rel_diff_max'])} "
            f"| {e['tolerance'] or '-'} | {e['verdict']} | {e['note']} |")
    keys = report.get("key_comparison")
    if keys:
        c = keys["relations"]
        lines += ["", f"Key, ours vs Essentia {keys['essentia']}: same on "
                      f"{c['same']}/{keys['tracks']} ({100 * keys['agreement']:.0f} %); fifth "
                      f"{c['fifth']}, relative {c['relative']}, parallel {c['parallel']}, other "
                      f"{c['other']}, no key {c['no key']}"]
    else:
        lines += ["", "Key: Essentia did not run; librosa has no key estimator, so ours stands "
                      "alone"]
    if report["essentia_comparison"]:
        lines += ["", "Essentia descriptors of the same quantity (context, no tolerance):", "",
                  "| value | Essentia descriptor | ours | librosa | Essentia |",
                  "|---|---|---|---|---|"]
        for e in report["essentia_comparison"]:
            lines.append(f"| {e['name']} | {e['essentia_descriptor']} | {_g(e['ours_median'])} "
                         f"| {_g(e['librosa_median'])} | {_g(e['essentia_median'])} |")
    inter = report["interference"]
    lines += ["", f"other processes used {inter['other_cpu_s']:.0f} CPU s during the "
                  f"{inter['wall_s']:.0f} s run ({100 * inter['other_cpu_share_of_wall']:.0f} % "
                  "of one core); every ratio above is measured track by track, interleaved."]
    return "\n".join(lines) + "\n"


def _versions(status: str) -> dict[str, Any]:
    import librosa
    import pyloudnorm
    import scipy

    out: dict[str, Any] = {"librosa": librosa.__version__, "scipy": scipy.__version__}
    try:
        from importlib.metadata import version

        out["pyloudnorm"] = version("pyloudnorm")
        out["essentia"] = version("essentia") if status.startswith("available") else None
    except Exception:
        out["pyloudnorm"] = getattr(pyloudnorm, "__version__", None)
    return out


def _parser() -> argparse.ArgumentParser:
    p = common.parser(
        script=__file__, quiet=True,
        description="Time our kernels against a plain librosa + pyloudnorm pipeline computing "
                    "the 25 values of fingerprint version 2 (and Essentia's MusicExtractor where "
                    "it installs), and compare the values.")
    p.add_argument("corpus", nargs="?", type=Path, help="folder of audio files (recursive)")
    p.add_argument("--synthetic", type=int, metavar="N",
                   help="instead of a folder: N synthetic music-like FLAC tracks")
    p.add_argument("--seconds", type=float, default=120.0, help="synthetic track length (120)")
    p.add_argument("--sample-rate", type=int, default=44100, help="synthetic rate (44100)")
    p.add_argument("--limit", type=int, default=8,
                   help="tracks to use, spread evenly over the sorted list (8; 0 = all)")
    p.add_argument("--first", action="store_true", help="take the first --limit tracks instead")
    p.add_argument("--repeats", type=int, default=3, help="runs of ours per track, median (3)")
    p.add_argument("--librosa-repeats", type=int, default=1,
                   help="runs of the librosa pipeline and of Essentia per track, median (1)")
    p.add_argument("--no-essentia", action="store_true", help="skip Essentia even if installed")
    return p


def main(*, argv: list[str] | None = None) -> int:
    """Run the comparison; write the JSON report and a markdown summary to stderr.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0, or 2 on a usage error.
    """
    args = _parser().parse_args(argv)
    if (args.corpus is None) == (args.synthetic is None):
        print("give a corpus folder or --synthetic N", file=sys.stderr)
        return 2
    if args.repeats < 1 or args.librosa_repeats < 1:
        print("--repeats and --librosa-repeats must be >= 1", file=sys.stderr)
        return 2
    import kernels

    t_warm = time.perf_counter()
    kernels.warmup()
    kernels_warmup_s = time.perf_counter() - t_warm
    if args.no_essentia:
        essentia, status = None, "not run: --no-essentia"
    else:
        essentia, status = load_essentia()
    with tempfile.TemporaryDirectory(prefix="peers-synthetic-") as tmp:
        if args.synthetic is not None:
            root = Path(tmp)
            tracks = common.write_synthetic_corpus(
                directory=root, count=args.synthetic, seconds=args.seconds,
                sample_rate=args.sample_rate, block_frames=DEFAULT_BLOCK_FRAMES)
            corpus = {"source": f"synthetic {args.synthetic} x {args.seconds:g} s at "
                                f"{args.sample_rate} Hz"}
        else:
            root = args.corpus.resolve()
            files = common.find_audio(root=root)
            if not files:
                print(f"no audio files under {root}", file=sys.stderr)
                return 2
            tracks = common.pick_spread(files=files, limit=args.limit, first=args.first)
            corpus = {"source": str(root), "files_in_folder": len(files),
                      "selection": "first" if args.first else "spread evenly over sorted list"}
        t0 = time.perf_counter()
        cpu0 = common.cpu_snapshot()
        measured = measure(tracks=tracks, root=root, kernels=kernels, essentia=essentia,
                           repeats=args.repeats, librosa_repeats=args.librosa_repeats,
                           log=not args.quiet)
        interference = common.other_cpu(start=cpu0, end=common.cpu_snapshot(),
                                        wall_s=time.perf_counter() - t0)
    rows = measured["tracks"]
    names = list(kernels.FINGERPRINT_NAMES)
    report: dict[str, Any] = {
        **common.report_head(schema="peers/2", kernels=kernels, **_versions(status)),
        "threads": dict(common.SINGLE_THREAD_ENV),
        "settings": {"repeats_ours": args.repeats, "repeats_librosa": args.librosa_repeats,
                     "limit": args.limit, "first": args.first},
        "corpus": {**corpus, "tracks": [r["file"] for r in rows]},
        "essentia_status": status,
        "warmup_s": {"kernels_warmup": kernels_warmup_s, **measured["warmup_s"]},
        "speed": speed_summary(rows),
        "comparison": comparison_table(rows, names),
        "essentia_comparison": essentia_table(rows),
        "key_comparison": key_table(rows),
        "tracks": rows,
        "interference": interference,
        "ours_identical_across_runs": all(r["ours_identical_across_runs"] for r in rows),
    }
    report = common.jsonable(report)
    common.write_report(report=report, output=args.output, summary=markdown(report).rstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
