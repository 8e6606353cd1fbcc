"""Slow, plainly correct references for the 25 fingerprint values of docs/FINGERPRINT.md.

Each ``ref_*`` function takes a whole track at once -- ``x``, float ``(frames, channels)`` PCM,
and ``sr``, its rate in Hz -- and recomputes one value (or one group) in float64 exactly as
docs/FINGERPRINT.md words it, with no streaming, no histograms and no coarse shortcuts the doc
does not itself prescribe. They are written to be read next to the doc, not to be fast.

The ``librosa_*`` and :func:`pyloudnorm_lufs` functions are the spec's *library* references,
thin wrappers that call librosa / pyloudnorm on the doc's own frame grid (see
:func:`frames_power`), so that a difference can only come from the value's definition.

Conventions: ``mono`` = mean of all channels; ``L``, ``R`` = channels 1 and 2 (a mono track:
``L = R`` = its channel); an "active" frame or second has mono RMS >= 1e-3 (-60 dBFS).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import get_window

try:  # imported as ``tests.reference`` (from the repository root, a namespace package) ...
    from . import lra_reference as lra
except ImportError:  # ... or as a top-level module (pytest's rootdir/tests on sys.path)
    import lra_reference as lra  # type: ignore[no-redef]

__all__ = [
    "ACTIVE_RMS",
    "BAND_DB_LIMIT",
    "BAND_LEVELS",
    "FINGERPRINT_NAMES",
    "MID_BAND_HZ",
    "PLAIN_VALUES",
    "active_second_slices",
    "band_bin_weights",
    "bin_frequencies",
    "chroma_filterbank",
    "frame_count",
    "frames_power",
    "left_right",
    "library_references",
    "librosa_centroid",
    "librosa_chroma_energy",
    "n_fft_for_rate",
    "periodic_hann",
    "pyloudnorm_lufs",
    "ref_band_levels",
    "ref_chroma_energy",
    "ref_crest_db",
    "ref_dynamic_range_variation",
    "ref_loudness_range",
    "ref_lufs",
    "ref_peak_consistency",
    "ref_phase_correlation",
    "ref_spectral_centroid",
    "ref_values",
    "to_mono",
]

#: The 25 names in docs/FINGERPRINT.md order (the same tuple as ``kernels.FINGERPRINT_NAMES``).
FINGERPRINT_NAMES: tuple[str, ...] = (
    "sub_bass_db", "bass_db", "low_mid_db", "upper_mid_db", "presence_db", "air_db",
    "lufs", "crest_db", "loudness_range", "dynamic_range_variation", "peak_consistency",
    "tempo_bpm", "pulse_clarity", "transient_density",
    "spectral_centroid", "harmonic_ratio", "chroma_energy",
    "key_fifths_x", "key_fifths_y", "key_mode", "mfcc_1", "mfcc_2", "mfcc_3", "mfcc_4",
    "phase_correlation",
)  # fmt: skip

#: The band levels: name, the band, Hz, half-open ``[lo, hi)`` (the air band's top is
#: ``min(20000, sr / 2)``); each is a level relative to the mid band ``[500, 2000)``.
BAND_LEVELS: tuple[tuple[str, float, float], ...] = (
    ("sub_bass_db", 20.0, 60.0),
    ("bass_db", 60.0, 250.0),
    ("low_mid_db", 250.0, 500.0),
    ("upper_mid_db", 2000.0, 4000.0),
    ("presence_db", 4000.0, 6000.0),
    ("air_db", 6000.0, 20000.0),
)
MID_BAND_HZ = (500.0, 2000.0)
#: Band levels are clamped to +-this, dB.
BAND_DB_LIMIT = 80.0

#: An active frame / second has mono RMS >= this (-60 dBFS).
ACTIVE_RMS = 1e-3

# ==============================================================================================
# PCM helpers
# ==============================================================================================


def _pcm(x: np.ndarray) -> np.ndarray:
    """Validate PCM and return it as float64 ``(frames, channels)``.

    Raises
    ------
    ValueError
        For a shape other than ``(frames, channels)``, 0 frames, or non-finite samples.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] < 1:
        raise ValueError(f"PCM must be (frames, channels), got shape {np.shape(x)}")
    if a.shape[0] == 0:
        raise ValueError("PCM has 0 frames: there is no audio to describe")
    if not np.all(np.isfinite(a)):
        raise ValueError("PCM has NaN or infinite samples")
    return a


def to_mono(x: np.ndarray) -> np.ndarray:
    """Mean of all channels.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels)

    Returns
    -------
    float64 ndarray, shape (frames,)
    """
    return np.mean(_pcm(x), axis=1)


def left_right(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Channels 1 and 2; for a mono track both are its only channel.

    Returns
    -------
    L, R : float64 ndarray, shape (frames,)
    """
    a = _pcm(x)
    if a.shape[1] == 1:
        return a[:, 0], a[:, 0]
    return a[:, 0], a[:, 1]


def _rms(v: np.ndarray) -> float:
    """Root mean square of all elements (float64)."""
    return float(np.sqrt(np.mean(np.asarray(v, dtype=np.float64) ** 2)))


def _crest_db(v: np.ndarray) -> float:
    """``20 log10(max|v| / rms(v))`` over all elements; 0 when ``v`` is all zeros."""
    peak = float(np.max(np.abs(v)))
    if peak == 0.0:
        return 0.0
    return 20.0 * math.log10(peak / _rms(v))


# ==============================================================================================
# the analysis frame
# ==============================================================================================


def n_fft_for_rate(sr: int) -> int:
    """FFT size for a sample rate: 2048 for 32 kHz <= sr < 64 kHz, halved per octave below
    (1024 from 16 kHz, 512 from 8 kHz, 256 below), doubled per octave above (4096 from 64 kHz,
    8192 from 128 kHz, and so on).

    Returns
    -------
    int, samples (a power of two >= 256)
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be > 0, got {sr}")
    n, lo = 2048, 32000
    while sr < lo and n > 256:
        n, lo = n // 2, lo // 2
    hi = 64000
    while sr >= hi:
        n, hi = n * 2, hi * 2
    return n


def frame_count(n_samples: int, n_fft: int) -> int:
    """Number of STFT frames: ``1 + ceil(max(N - n_fft, 0) / hop)``, ``hop = n_fft / 4``.

    Returns
    -------
    int (>= 1 for N >= 1)
    """
    hop = n_fft // 4
    return 1 + math.ceil(max(n_samples - n_fft, 0) / hop)


def periodic_hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window ``0.5 - 0.5 cos(2 pi n / n_fft)``, ``n = 0 .. n_fft - 1``.

    Returns
    -------
    float64 ndarray, shape (n_fft,)
    """
    return get_window("hann", n_fft, fftbins=True).astype(np.float64)


def bin_frequencies(sr: int, n_fft: int) -> np.ndarray:
    """Centre frequency of every rFFT bin, ``f_k = k sr / n_fft``.

    Returns
    -------
    float64 ndarray, shape (n_fft // 2 + 1,), Hz
    """
    return np.arange(n_fft // 2 + 1, dtype=np.float64) * sr / n_fft


def _frame_matrix(x_mono: np.ndarray, n_fft: int) -> np.ndarray:
    """Frame ``f`` = samples ``[f hop, f hop + n_fft)``, zeros past the end.

    Returns
    -------
    float64 ndarray, shape (n_frames, n_fft)
    """
    hop = n_fft // 4
    n = x_mono.shape[0]
    n_frames = frame_count(n, n_fft)
    padded = np.zeros((n_frames - 1) * hop + n_fft)
    padded[:n] = x_mono
    return np.stack([padded[f * hop : f * hop + n_fft] for f in range(n_frames)])


def frames_power(x_mono: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Power STFT on the doc's frame grid, and which frames are active.

    Parameters
    ----------
    x_mono : float ndarray, shape (frames,)
        Mono PCM (at least one sample).
    sr : int, Hz

    Returns
    -------
    P : float64 ndarray, shape (n_fft // 2 + 1, n_frames)
        ``|rfft(w * frame)|^2``, ``w`` the periodic Hann window, no normalisation.
    active : bool ndarray, shape (n_frames,)
        RMS of the frame's ``n_fft`` raw samples (padding zeros included) >= 1e-3.
    """
    mono = np.asarray(x_mono, dtype=np.float64).reshape(-1)
    if mono.size == 0:
        raise ValueError("PCM has 0 frames: there is no audio to describe")
    n_fft = n_fft_for_rate(sr)
    frames = _frame_matrix(mono, n_fft)  # (n_frames, n_fft)
    spec = np.fft.rfft(frames * periodic_hann(n_fft)[None, :], axis=1)
    power = (spec.real**2 + spec.imag**2).T  # (n_bins, n_frames)
    active = np.sqrt(np.mean(frames**2, axis=1)) >= ACTIVE_RMS
    return power, active


def _power_of(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``frames_power`` of the mono mix of ``x``, plus ``n_fft``."""
    power, active = frames_power(to_mono(x), sr)
    return power, active, n_fft_for_rate(sr)


# ==============================================================================================
# band levels
# ==============================================================================================


def band_bin_weights(sr: int, n_fft: int, lo: float, hi: float) -> np.ndarray:
    """How much of each bin lies in ``[lo, hi)``: bin ``k`` spans ``[(k - 1/2) df, (k + 1/2) df)``.

    Returns
    -------
    float64 ndarray, shape (n_fft // 2 + 1,), each in [0, 1]
    """
    df = sr / n_fft
    weights = np.zeros(n_fft // 2 + 1)
    for k in range(weights.size):
        a, b = (k - 0.5) * df, (k + 0.5) * df
        weights[k] = max(0.0, min(b, hi) - max(a, lo)) / df
    return weights


def _mean_spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """``S[k]`` = sum over all frames of ``P[k, f]`` (float64, shape (n_bins,)), and n_fft."""
    power, _, n_fft = _power_of(x, sr)
    return power.sum(axis=1), n_fft


def _band_power(spectrum: np.ndarray, sr: int, n_fft: int, lo: float, hi: float) -> float:
    return float(spectrum @ band_bin_weights(sr, n_fft, lo, hi))


def ref_band_levels(x: np.ndarray, sr: int) -> dict[str, float]:
    """The six band levels: ``10 log10(S_band / S_mid)``, dB, clamped to +-80.

    ``S_band`` is the summed power spectrum weighted by :func:`band_bin_weights`; every edge is
    capped at ``sr / 2`` (a band wholly above it is empty).

    Returns
    -------
    dict name -> dB
        -80 for an empty band beside a non-empty mid band, +80 for a non-empty band beside an
        empty mid band, 0 when both are empty.
    """
    spectrum, n_fft = _mean_spectrum(x, sr)
    mid = _band_power(spectrum, sr, n_fft, *(min(e, sr / 2.0) for e in MID_BAND_HZ))
    out = {}
    for name, lo, hi in BAND_LEVELS:
        lo, top = min(lo, sr / 2.0), min(hi, sr / 2.0)
        band = _band_power(spectrum, sr, n_fft, lo, top) if top > lo else 0.0
        if band > 0 and mid > 0:
            level = float(np.clip(10.0 * math.log10(band / mid), -BAND_DB_LIMIT, BAND_DB_LIMIT))
        elif mid > 0:
            level = -BAND_DB_LIMIT
        elif band > 0:
            level = BAND_DB_LIMIT
        else:
            level = 0.0
        out[name] = level
    return out


# ==============================================================================================
# lufs, loudness range (see lra_reference.py), crest
# ==============================================================================================


def ref_lufs(x: np.ndarray, sr: int) -> float:
    """Value 8: BS.1770-4 integrated loudness, LUFS (-70.0 when every block is gated out)."""
    return lra.integrated_loudness(_pcm(x), sr)


def ref_loudness_range(x: np.ndarray, sr: int) -> float:
    """Value 22: EBU Tech 3342 loudness range, LU (0.0 with fewer than 2 gated windows)."""
    return lra.loudness_range(_pcm(x), sr)


def ref_crest_db(x: np.ndarray) -> float:
    """Value 9: ``20 log10(max|x| / rms)`` over all samples of all channels, dB.

    Returns
    -------
    float, dB >= 0; 0 for digital silence
    """
    return _crest_db(_pcm(x))


# ==============================================================================================
# spectral centroid
# ==============================================================================================


def ref_spectral_centroid(x: np.ndarray, sr: int) -> float:
    """Mean over active frames of ``sum_k f_k M[k] / sum_k M[k]``, ``M = sqrt(P)``, Hz.

    Returns
    -------
    float, Hz
        A frame whose ``M`` is all zero counts 0; 0 when no frame is active.
    """
    power, active, n_fft = _power_of(x, sr)
    if not active.any():
        return 0.0
    f = bin_frequencies(sr, n_fft)
    mag = np.sqrt(power[:, active])
    total = mag.sum(axis=0)
    safe_total = np.where(total > 0, total, 1.0)
    centroid = np.where(total > 0, (f[:, None] * mag).sum(axis=0) / safe_total, 0.0)
    return float(centroid.mean())


# ==============================================================================================
# chroma energy
# ==============================================================================================


def chroma_filterbank(sr: int, n_fft: int) -> np.ndarray:
    """12-bin chroma filter bank after Ellis' ``fft2chromamx`` (A440, no tuning), C first.

    For FFT bin ``k >= 1`` the pitch in semitones above A0 is ``p_k = 12 log2(f_k / 27.5)``;
    bin 0 (DC) takes ``p_1 - 18`` (1.5 octaves below bin 1). The width of bin ``k`` is
    ``max(p_{k+1} - p_k, 1)`` (1 for the last of the ``n_fft`` bins). Row ``c`` (pitch class
    ``c`` semitones above A) weights bin ``k`` by ``exp(-0.5 (2 D / width_k)^2)`` with ``D``
    the pitch-class distance ``p_k - c`` wrapped into ``[-6, 6)``; each column is then scaled
    to unit L2 norm over the 12 rows and multiplied by the octave weight
    ``exp(-0.5 ((p_k / 12 - 5) / 2)^2)`` (centre 5 octaves above A0 = 880 Hz, width 2
    octaves). Finally the rows are rotated so that row 0 is C, and bins above Nyquist dropped.

    Returns
    -------
    float64 ndarray, shape (12, n_fft // 2 + 1)
    """
    k = np.arange(1, n_fft, dtype=np.float64)
    pitch = 12.0 * np.log2(k * sr / n_fft / 27.5)
    pitch = np.concatenate([[pitch[0] - 18.0], pitch])  # (n_fft,)
    width = np.concatenate([np.maximum(np.diff(pitch), 1.0), [1.0]])
    classes = np.arange(12, dtype=np.float64)[:, None]
    dist = np.mod(pitch[None, :] - classes + 6.0 + 120.0, 12.0) - 6.0
    weights = np.exp(-0.5 * (2.0 * dist / width[None, :]) ** 2)
    weights /= np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    weights *= np.exp(-0.5 * ((pitch / 12.0 - 5.0) / 2.0) ** 2)[None, :]
    weights = np.roll(weights, -3, axis=0)  # row 0 = C (3 semitones above A)
    return weights[:, : n_fft // 2 + 1]


def _chroma_energy_of(chroma: np.ndarray, active: np.ndarray) -> float:
    """Mean over active frames of ``sum(c^2)``, ``c`` = the frame's chroma normalised to sum 1
    (1/12 for a frame whose chroma sums to 0); 0 with no active frame."""
    if not active.any():
        return 0.0
    c = chroma[:, active]
    sums = c.sum(axis=0)
    safe = np.where(sums > 0, sums, 1.0)
    energy = np.where(sums > 0, np.sum((c / safe) ** 2, axis=0), 1.0 / 12.0)
    return float(energy.mean())


def ref_chroma_energy(x: np.ndarray, sr: int) -> float:
    """Value 20: chroma concentration, in [1/12, 1] (0 with no active frame)."""
    power, active, n_fft = _power_of(x, sr)
    return _chroma_energy_of(chroma_filterbank(sr, n_fft) @ power, active)


# ==============================================================================================
# dynamic range variation, peak consistency
# ==============================================================================================


def active_second_slices(x: np.ndarray, sr: int) -> list[slice]:
    """Whole seconds ``[k sr, (k+1) sr)`` whose mono RMS is >= 1e-3.

    Returns
    -------
    list of slice, in time order (the trailing partial second never included)
    """
    mono = to_mono(x)
    out = []
    for k in range(mono.size // sr):
        s = slice(k * sr, (k + 1) * sr)
        if _rms(mono[s]) >= ACTIVE_RMS:
            out.append(s)
    return out


def ref_dynamic_range_variation(x: np.ndarray, sr: int) -> float:
    """Value 21: population std of the per-second crest factor (all channels), dB.

    Over active whole seconds; 0 when there is none.
    """
    a = _pcm(x)
    crest = [_crest_db(a[s]) for s in active_second_slices(a, sr)]
    return float(np.std(crest)) if crest else 0.0


def ref_peak_consistency(x: np.ndarray, sr: int) -> float:
    """Value 23: ``1 / (1 + CV)`` of the per-second sample peak (all channels).

    Over active whole seconds; 0 when there is none.
    """
    a = _pcm(x)
    peaks = np.array([np.max(np.abs(a[s])) for s in active_second_slices(a, sr)])
    if peaks.size == 0:
        return 0.0
    cv = np.std(peaks) / np.mean(peaks)
    return float(1.0 / (1.0 + cv))


# ==============================================================================================
# phase correlation
# ==============================================================================================


def ref_phase_correlation(x: np.ndarray) -> float:
    """Value 25: Pearson correlation of L and R.

    Returns
    -------
    float in [-1, 1]
        Exactly 1.0 when L and R are identical sample for sample; 0.0 when a channel is
        constant (and the two differ).
    """
    left, right = left_right(x)
    if np.array_equal(left, right):
        return 1.0
    if np.all(left == left[0]) or np.all(right == right[0]):
        return 0.0
    dl = left - left.mean()
    dr = right - right.mean()
    r = np.sum(dl * dr) / np.sqrt(np.sum(dl**2) * np.sum(dr**2))
    return float(np.clip(r, -1.0, 1.0))


# ==============================================================================================
# every value with a plain reference here
# ==============================================================================================


#: The values :func:`ref_values` recomputes. The rhythm values are checked against ground
#: truth (tests/test_rhythm.py), the harmonic ratio, key and MFCC values against their plain
#: and library references beside their own tests (tests/test_hpss.py, tests/test_tonal.py).
PLAIN_VALUES: tuple[str, ...] = (
    *(name for name, _, _ in BAND_LEVELS), "lufs", "crest_db", "loudness_range",
    "dynamic_range_variation", "peak_consistency", "spectral_centroid", "chroma_energy",
    "phase_correlation",
)


def ref_values(x: np.ndarray, sr: int) -> dict[str, float]:
    """The :data:`PLAIN_VALUES`, name -> value.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels), frames >= 1
    sr : int, Hz

    Returns
    -------
    dict[str, float]
    """
    _pcm(x)  # the same errors as every reference: no frames, NaN, wrong shape
    out = ref_band_levels(x, sr)
    out.update({
        "lufs": ref_lufs(x, sr),
        "crest_db": ref_crest_db(x),
        "loudness_range": ref_loudness_range(x, sr),
        "dynamic_range_variation": ref_dynamic_range_variation(x, sr),
        "peak_consistency": ref_peak_consistency(x, sr),
        "spectral_centroid": ref_spectral_centroid(x, sr),
        "chroma_energy": ref_chroma_energy(x, sr),
        "phase_correlation": ref_phase_correlation(x),
    })
    return {name: float(out[name]) for name in PLAIN_VALUES}


# ==============================================================================================
# the spec's library references (librosa, pyloudnorm), on the doc's frame grid
# ==============================================================================================


def _mean_over(values: np.ndarray, active: np.ndarray | None) -> float:
    """Mean of per-frame ``values`` over ``active`` frames (all when None); 0 if none."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if active is not None:
        v = v[np.asarray(active, dtype=bool)]
    return float(v.mean()) if v.size else 0.0


def librosa_centroid(S_mag: np.ndarray, sr: int, n_fft: int,
                     active: np.ndarray | None = None) -> float:
    """``librosa.feature.spectral_centroid`` of a magnitude STFT, averaged over frames.

    Parameters
    ----------
    S_mag : float ndarray, shape (n_fft // 2 + 1, n_frames)
        Magnitude ``sqrt(P)`` on the doc's frame grid (:func:`frames_power`).
    sr : int, Hz
    n_fft : int
    active : bool ndarray, shape (n_frames,), optional
        Frames to average over (all when omitted).

    Returns
    -------
    float, Hz
    """
    import librosa

    centroid = librosa.feature.spectral_centroid(S=S_mag, sr=sr, n_fft=n_fft)[0]
    return _mean_over(centroid, active)


def librosa_chroma_energy(
    P: np.ndarray, sr: int, n_fft: int, active: np.ndarray | None = None
) -> float:
    """Chroma energy from ``librosa.feature.chroma_stft(S=P, tuning=0, norm=None)``.

    Each frame's chroma is normalised to sum 1 (1/12 for a zero frame), ``sum(c^2)`` taken and
    averaged over ``active`` frames (all when omitted); 0 with no frame selected.

    Parameters
    ----------
    P : float ndarray, shape (n_fft // 2 + 1, n_frames), power STFT
    """
    import librosa

    chroma = librosa.feature.chroma_stft(S=P, sr=sr, n_fft=n_fft, tuning=0.0, norm=None)
    mask = np.ones(P.shape[1], dtype=bool) if active is None else np.asarray(active, dtype=bool)
    return _chroma_energy_of(np.asarray(chroma, dtype=np.float64), mask)


def pyloudnorm_lufs(x: np.ndarray, sr: int) -> float:
    """``pyloudnorm.Meter(sr).integrated_loudness(x)`` in float64; -70.0 for -inf / NaN or an
    input shorter than one 400 ms block."""
    import warnings

    import pyloudnorm

    data = _pcm(x)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = pyloudnorm.Meter(sr).integrated_loudness(data)
    except ValueError:  # "Audio must have length greater than the block size."
        return lra.ABSOLUTE_GATE_LUFS
    return float(value) if np.isfinite(value) else lra.ABSOLUTE_GATE_LUFS


def library_references(x: np.ndarray, sr: int) -> dict[str, float]:
    """The spec's library-checked values of ``x`` on the doc's frame grid.

    Returns
    -------
    dict with keys ``lufs``, ``spectral_centroid``, ``chroma_energy`` (pyloudnorm / librosa
    values).
    """
    power, active, n_fft = _power_of(x, sr)
    return {
        "lufs": pyloudnorm_lufs(x, sr),
        "spectral_centroid": librosa_centroid(np.sqrt(power), sr, n_fft, active),
        "chroma_energy": librosa_chroma_energy(power, sr, n_fft, active),
    }
