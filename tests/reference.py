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
from scipy.ndimage import median_filter
from scipy.signal import get_window, lfilter

try:  # imported as ``tests.reference`` (from the repository root, a namespace package) ...
    from . import lra_reference as lra
except ImportError:  # ... or as a top-level module (pytest's rootdir/tests on sys.path)
    import lra_reference as lra  # type: ignore[no-redef]

__all__ = [
    "ACTIVE_RMS",
    "BANDS_HZ",
    "FINGERPRINT_NAMES",
    "active_duration",
    "active_second_slices",
    "band_bin_mask",
    "bin_frequencies",
    "chroma_filterbank",
    "decimate_for_pitch",
    "frame_count",
    "frames_power",
    "left_right",
    "library_references",
    "librosa_chroma_energy",
    "librosa_harmonic_ratio",
    "librosa_spectral",
    "n_fft_for_rate",
    "periodic_hann",
    "pyloudnorm_lufs",
    "ref_bands",
    "ref_bass_mid_ratio",
    "ref_beat_times",
    "ref_chroma_energy",
    "ref_crest_db",
    "ref_dynamic_range_variation",
    "ref_fingerprint",
    "ref_harmonic_ratio",
    "ref_loudness_range",
    "ref_lufs",
    "ref_onset_envelope",
    "ref_onsets",
    "ref_peak_consistency",
    "ref_phase_correlation",
    "ref_pitch_stability",
    "ref_pitch_track",
    "ref_rhythm",
    "ref_rhythm_stability",
    "ref_silence_ratio",
    "ref_spectral_means",
    "ref_stereo_width",
    "ref_tempo_bpm",
    "ref_tempo_lag_curve",
    "ref_transient_density",
    "third_octave_bands",
    "to_mono",
]

#: The 25 names in spec order (the same tuple as ``kernels.FINGERPRINT_NAMES``).
FINGERPRINT_NAMES: tuple[str, ...] = (
    "sub_bass_pct", "bass_pct", "low_mid_pct", "mid_pct", "upper_mid_pct", "presence_pct",
    "air_pct", "lufs", "crest_db", "bass_mid_ratio", "tempo_bpm", "rhythm_stability",
    "transient_density", "silence_ratio", "spectral_centroid", "spectral_rolloff",
    "spectral_flatness", "harmonic_ratio", "pitch_stability", "chroma_energy",
    "dynamic_range_variation", "loudness_range", "peak_consistency", "stereo_width",
    "phase_correlation",
)  # fmt: skip

#: An active frame / second has mono RMS >= this (-60 dBFS).
ACTIVE_RMS = 1e-3

#: The seven bands, Hz, half-open ``[lo, hi)``; the air band's top is ``min(20000, sr / 2)``.
BANDS_HZ: tuple[tuple[float, float], ...] = (
    (20.0, 60.0),
    (60.0, 250.0),
    (250.0, 500.0),
    (500.0, 2000.0),
    (2000.0, 4000.0),
    (4000.0, 6000.0),
    (6000.0, 20000.0),
)


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
# 1-7 bands, 10 bass/mid ratio
# ==============================================================================================


def band_bin_mask(sr: int, n_fft: int, lo: float, hi: float) -> np.ndarray:
    """Bins whose centre frequency lies in ``[lo, hi)``.

    Returns
    -------
    bool ndarray, shape (n_fft // 2 + 1,)
    """
    f = bin_frequencies(sr, n_fft)
    return (f >= lo) & (f < hi)


def _mean_spectrum(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    """``S[k]`` = sum over all frames of ``P[k, f]`` (float64, shape (n_bins,)), and n_fft."""
    power, _, n_fft = _power_of(x, sr)
    return power.sum(axis=1), n_fft


def ref_bands(x: np.ndarray, sr: int) -> np.ndarray:
    """Values 1-7: share of the summed power spectrum in each of the seven bands.

    Returns
    -------
    float64 ndarray, shape (7,), each in [0, 1]
        ``sub_bass .. air``; they sum to 1, or are all 0 when the seven-band sum is 0.
    """
    spectrum, n_fft = _mean_spectrum(x, sr)
    sums = np.zeros(7)
    for i, (lo, hi) in enumerate(BANDS_HZ):
        top = min(hi, sr / 2.0) if i == 6 else hi
        sums[i] = spectrum[band_bin_mask(sr, n_fft, lo, top)].sum()
    total = sums.sum()
    return sums / total if total > 0 else np.zeros(7)


def ref_bass_mid_ratio(x: np.ndarray, sr: int) -> float:
    """Value 10: ``10 log10(S[60, 250) / S[250, 2000))``, dB, clamped to [-60, 60].

    Returns
    -------
    float, dB
        0 when both sums are 0; -60 / +60 when only the bass / only the mid sum is 0.
    """
    spectrum, n_fft = _mean_spectrum(x, sr)
    bass = spectrum[band_bin_mask(sr, n_fft, 60.0, 250.0)].sum()
    mid = spectrum[band_bin_mask(sr, n_fft, 250.0, 2000.0)].sum()
    if bass == 0 and mid == 0:
        return 0.0
    if bass == 0:
        return -60.0
    if mid == 0:
        return 60.0
    return float(np.clip(10.0 * math.log10(bass / mid), -60.0, 60.0))


# ==============================================================================================
# 8 lufs, 22 loudness range (see lra_reference.py), 9 crest
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
# 14 silence ratio, 15-17 spectral means
# ==============================================================================================


def ref_silence_ratio(x: np.ndarray, sr: int) -> float:
    """Value 14: share of frames that are not active (mono frame RMS < 1e-3).

    Returns
    -------
    float in [0, 1]
    """
    _, active, _ = _power_of(x, sr)
    return float(1.0 - np.mean(active))


def ref_spectral_means(x: np.ndarray, sr: int) -> tuple[float, float, float]:
    """Values 15-17: centroid, 85 % rolloff and flatness, each a mean over active frames.

    Per frame, with ``M = sqrt(P)``:

    - centroid = ``sum_k f_k M[k] / sum_k M[k]`` (0 for a frame whose ``M`` is all zero);
    - rolloff = ``f_k`` of the lowest ``k`` with ``cumsum(M)[k] >= 0.85 sum(M)``;
    - flatness = ``gmean(max(P, 1e-10)) / amean(max(P, 1e-10))`` over all bins.

    Returns
    -------
    (centroid, rolloff, flatness) : (float Hz, float Hz, float in [0, 1])
        All 0 when no frame is active.
    """
    power, active, n_fft = _power_of(x, sr)
    if not active.any():
        return 0.0, 0.0, 0.0
    f = bin_frequencies(sr, n_fft)
    p = power[:, active]
    mag = np.sqrt(p)
    cum = np.cumsum(mag, axis=0)
    total = cum[-1]
    safe_total = np.where(total > 0, total, 1.0)
    centroid = np.where(total > 0, (f[:, None] * mag).sum(axis=0) / safe_total, 0.0)
    rolloff_bin = np.argmax(cum >= 0.85 * total[None, :], axis=0)  # first True
    rolloff = f[rolloff_bin]
    p_floor = np.maximum(p, 1e-10)
    flatness = np.exp(np.mean(np.log(p_floor), axis=0)) / np.mean(p_floor, axis=0)
    return float(centroid.mean()), float(rolloff.mean()), float(flatness.mean())


# ==============================================================================================
# 11-13 rhythm
# ==============================================================================================


def third_octave_bands(sr: int, n_fft: int) -> list[tuple[int, int]]:
    """Bin ranges of the onset envelope's third-octave bands.

    Edges are ``40 * 2^(i/3)`` Hz below the top ``min(16000, sr / 2)``, plus the top itself;
    a band holds the bins whose centre frequency lies in ``[edge_i, edge_j)``. Going up from
    40 Hz, a band is closed at the first edge that gives it at least 2 bins (narrow third
    octaves at low frequencies are merged upward); a remainder of fewer than 2 bins at the top
    joins the last band.

    Returns
    -------
    list of (k_lo, k_hi)
        Half-open bin index ranges, ascending and contiguous.
    """
    top = min(16000.0, sr / 2.0)
    edges = []
    i = 0
    while 40.0 * 2.0 ** (i / 3.0) < top:
        edges.append(40.0 * 2.0 ** (i / 3.0))
        i += 1
    edges.append(top)
    freqs = bin_frequencies(sr, n_fft)
    # first bin whose centre frequency is >= edge
    k_edges = [int(np.searchsorted(freqs, e, side="left")) for e in edges]
    bands: list[tuple[int, int]] = []
    start = k_edges[0]
    for k in k_edges[1:]:
        if k - start >= 2:
            bands.append((start, k))
            start = k
    if bands and start < k_edges[-1]:
        bands[-1] = (bands[-1][0], k_edges[-1])
    if not bands and k_edges[-1] > k_edges[0]:
        bands.append((k_edges[0], k_edges[-1]))
    return bands


def ref_onset_envelope(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Onset-strength envelope ``e[f]`` (dB) and its frame rate.

    Band power = sum of ``P`` over the band's bins / ``(sum of window)^2``, in dB with a
    floor of -100 dB; ``e[f]`` = mean over bands of ``max(0, dB[b, f] - max(dB[b-1..b+1,
    f - 1]))`` (SuperFlux: the loudest neighbouring band of the previous frame), the frame
    before frame 0 being the -100 dB floor; the zero-padded last frame (when there is one) has
    ``e = 0``.

    Returns
    -------
    e : float64 ndarray, shape (n_frames,), dB
    fps : float, frames per second (``sr / hop``)
    """
    power, _, n_fft = _power_of(x, sr)
    norm = periodic_hann(n_fft).sum() ** 2
    bands = third_octave_bands(sr, n_fft)
    n_frames = power.shape[1]
    if not bands:
        return np.zeros(n_frames), sr / (n_fft // 4)
    db = np.zeros((len(bands), n_frames))
    for b, (lo, hi) in enumerate(bands):
        band_power = power[lo:hi].sum(axis=0) / norm
        db[b] = 10.0 * np.log10(np.maximum(band_power, 1e-10))
    db = np.where(db > -100.0, db, -100.0)
    previous = np.concatenate([np.full((len(bands), 1), -100.0), db[:, :-1]], axis=1)
    widest = previous.copy()  # max over bands b-1, b, b+1 of the previous frame
    widest[1:] = np.maximum(widest[1:], previous[:-1])
    widest[:-1] = np.maximum(widest[:-1], previous[1:])
    e = np.mean(np.maximum(0.0, db - widest), axis=0)
    n = np.asarray(x).shape[0]
    if n < n_fft or (n - n_fft) % (n_fft // 4):
        e[-1] = 0.0  # the zero-padded last frame
    return e, sr / (n_fft // 4)


def _centred_mean(e: np.ndarray, half: int = 16) -> np.ndarray:
    """``mean(e[f - half .. f + half])`` for every f, frames outside the track counting as 0.

    Returns
    -------
    float64 ndarray, same shape as ``e``
    """
    padded = np.concatenate([np.zeros(half), e, np.zeros(half)])
    width = 2 * half + 1
    return np.array([padded[f : f + width].sum() / width for f in range(e.size)])


def ref_onsets(e: np.ndarray) -> np.ndarray:
    """Onset frames of an envelope.

    Frame ``f`` is an onset when ``e[f]`` is the maximum of ``e[f-3 .. f+3]`` and no earlier
    frame of that range equals it (first one on ties), and ``e[f] >= mean(e[f-16 .. f+16]) + 2``.
    Frames outside the track count as 0.

    Returns
    -------
    int64 ndarray, shape (n_onsets,), ascending frame indices
    """
    e = np.asarray(e, dtype=np.float64)
    local_mean = _centred_mean(e, 16)
    padded = np.concatenate([np.zeros(3), e, np.zeros(3)])
    onsets = []
    for f in range(e.size):
        window = padded[f : f + 7]  # e[f-3 .. f+3]
        is_first_max = e[f] >= window.max() and np.all(window[:3] < e[f])
        if is_first_max and e[f] >= local_mean[f] + 2.0:
            onsets.append(f)
    return np.asarray(onsets, dtype=np.int64)


def _analysis_window_frames(fps: float) -> int:
    """Frames per rhythm analysis window, ``round(8 fps)``."""
    return int(round(8.0 * fps))


def ref_beat_times(e: np.ndarray, fps: float) -> np.ndarray:
    """Beat positions in (fractional) frames.

    The envelope is cut into windows of ``round(8 fps)`` frames; an onset's strength is
    ``e[f-1] + e[f] + e[f+1]``; a window's beats are its onsets of strength ``>= 0.5 *`` its
    strongest onset's, each refined by a parabola through ``e[f-1 .. f+1]`` (outside frames 0).

    Returns
    -------
    float64 ndarray, shape (n_beats,), frames, ascending
    """
    e = np.asarray(e, dtype=np.float64)
    onsets = ref_onsets(e)
    length = _analysis_window_frames(fps)
    padded = np.concatenate([[0.0], e, [0.0]])
    strength = padded[:-2] + padded[1:-1] + padded[2:]  # e[f-1] + e[f] + e[f+1]
    beats = []
    for w0 in range(0, e.size, length):
        inside = onsets[(onsets >= w0) & (onsets < w0 + length)]
        if inside.size == 0:
            continue
        strongest = strength[inside].max()
        for f in inside:
            if strength[f] < 0.5 * strongest:
                continue
            before = e[f - 1] if f >= 1 else 0.0
            after = e[f + 1] if f + 1 < e.size else 0.0
            beats.append(f + _parabola_offset(before, e[f], after))
    return np.asarray(beats, dtype=np.float64)


def ref_tempo_lag_curve(e: np.ndarray, fps: float) -> np.ndarray:
    """The summed normalised autocorrelation ``G(l)``, lags ``0 .. ceil(4 fps)``.

    ``h[f] = e[f] - mean(e[f-16 .. f+16])``; for each analysis window ``w``,
    ``A_w(l) = sum_{f in w} h[f] h[f - l]`` (``h`` = 0 before the track);
    ``G = sum_w A_w / A_w(0)`` over windows with ``A_w(0) > 0``.

    Returns
    -------
    float64 ndarray, shape (ceil(4 fps) + 1,)
    """
    e = np.asarray(e, dtype=np.float64)
    h = e - _centred_mean(e, 16)
    max_lag = math.ceil(4.0 * fps)
    length = _analysis_window_frames(fps)
    h_padded = np.concatenate([np.zeros(max_lag), h])  # h_padded[max_lag + f] = h[f]
    g = np.zeros(max_lag + 1)
    for w0 in range(0, e.size, length):
        idx = np.arange(w0, min(w0 + length, e.size))
        a = np.array([np.sum(h[idx] * h_padded[max_lag + idx - lag]) for lag in range(max_lag + 1)])
        if a[0] > 0:
            g += a / a[0]
    return g


def _parabola_offset(before: float, centre: float, after: float) -> float:
    """Vertex offset, in samples / lags, of the parabola through three equally spaced points.

    0 when the middle point is not an extremum of the three (the vertex would lie more than
    half a step away) or the points are collinear.
    """
    den = before - 2.0 * centre + after
    if den == 0:
        return 0.0
    offset = 0.5 * (before - after) / den
    return offset if abs(offset) <= 0.5 else 0.0


def ref_tempo_bpm(x: np.ndarray, sr: int) -> float:
    """Value 11: tempo as a listener taps it, BPM in [40, 240] (120 without a pulse).

    1. Local maxima ``l`` of ``G`` (``G[l-1] < G[l] >= G[l+1]``, ``G[l] > 0``) among the lags
       whose tempo ``60 fps / l`` is within [40, 240] BPM; the start lag maximises
       ``G(l) exp(-0.5 log2(bpm(l) / 120)^2)``.
    2. Of ``l/4, l/3, l/2`` (shortest first), the first with tempo <= 210 BPM whose local peak
       -- the maximum of ``G`` over integer lags within 2 of ``l/m`` -- is ``>= 0.5 G(l)``
       replaces ``l`` (by that peak's lag).
    3. Refinement on multiples ``m`` = 1, 2, 4, ...: the maximum of ``G`` within 2 lags of
       ``m * period``, refined by a parabola and divided by ``m``, is the new period; stop once
       ``2 m period + 3`` passes ``max_lag - 1``. Tempo = ``60 fps / period``, clamped to
       [40, 240].
    """
    e, fps = ref_onset_envelope(x, sr)
    return _tempo_from_envelope(e, fps)


def _tempo_from_envelope(e: np.ndarray, fps: float) -> float:
    """Steps 1-3 of :func:`ref_tempo_bpm` on an envelope."""
    g = ref_tempo_lag_curve(e, fps)
    max_lag = g.size - 1
    lag_lo = max(1, math.ceil(60.0 * fps / 240.0))
    lag_hi = min(max_lag - 1, math.floor(60.0 * fps / 40.0))
    peaks = [
        lag
        for lag in range(lag_lo, lag_hi + 1)
        if g[lag] > g[lag - 1] and g[lag] >= g[lag + 1] and g[lag] > 0
    ]
    if not peaks:
        return 120.0

    def bpm(lag: float) -> float:
        return 60.0 * fps / lag

    scores = [g[lag] * math.exp(-0.5 * math.log2(bpm(lag) / 120.0) ** 2) for lag in peaks]
    lag = peaks[int(np.argmax(scores))]

    for m in (4, 3, 2):
        candidate = lag / m
        if bpm(candidate) > 210.0:
            continue
        c = math.floor(candidate + 0.5)
        lo, hi = max(1, c - 2), min(max_lag, c + 2)
        if hi < lo:
            continue
        j = lo + int(np.argmax(g[lo : hi + 1]))
        if g[j] >= 0.5 * g[lag] and g[j] > 0:
            lag = j
            break

    period = float(lag)
    m = 1
    while True:
        centre = m * period
        lo = max(1, math.floor(centre) - 2)
        hi = min(max_lag - 1, math.ceil(centre) + 2)
        j = lo + int(np.argmax(g[lo : hi + 1]))
        period = (j + _parabola_offset(g[j - 1], g[j], g[j + 1])) / m
        if 2 * m * period + 3 > max_lag - 1:
            break
        m *= 2
    return float(np.clip(bpm(period), 40.0, 240.0))


def ref_rhythm_stability(x: np.ndarray, sr: int) -> float:
    """Value 12: ``1 / (1 + CV)`` of the inter-beat intervals; 0 with fewer than 3 beats."""
    e, fps = ref_onset_envelope(x, sr)
    beats = ref_beat_times(e, fps)
    if beats.size < 3:
        return 0.0
    intervals = np.diff(beats)
    cv = np.std(intervals) / np.mean(intervals)
    return float(1.0 / (1.0 + cv))


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


def active_duration(x: np.ndarray, sr: int) -> float:
    """Active duration, seconds: active whole seconds, plus the trailing partial second's
    length when its mono RMS is >= 1e-3.

    Returns
    -------
    float, s
    """
    mono = to_mono(x)
    whole = len(active_second_slices(x, sr))
    tail = mono[(mono.size // sr) * sr :]
    extra = tail.size / sr if tail.size and _rms(tail) >= ACTIVE_RMS else 0.0
    return float(whole + extra)


def ref_transient_density(x: np.ndarray, sr: int) -> float:
    """Value 13: onsets per second of active duration; 0 when nothing is active."""
    e, _ = ref_onset_envelope(x, sr)
    duration = active_duration(x, sr)
    if duration == 0:
        return 0.0
    return float(ref_onsets(e).size / duration)


def ref_rhythm(x: np.ndarray, sr: int) -> tuple[float, float, float]:
    """Values 11-13 together: ``(tempo_bpm, rhythm_stability, transient_density)``."""
    return ref_tempo_bpm(x, sr), ref_rhythm_stability(x, sr), ref_transient_density(x, sr)


# ==============================================================================================
# 18 harmonic ratio
# ==============================================================================================


def _coarse_frames(power: np.ndarray, group: int = 4) -> np.ndarray:
    """Mean of each run of ``group`` consecutive frames (the last run may be shorter).

    Returns
    -------
    float64 ndarray, shape (n_bins, ceil(n_frames / group))
    """
    n = power.shape[1]
    return np.stack(
        [power[:, i : i + group].mean(axis=1) for i in range(0, n, group)], axis=1
    )


def _hpss_ratio(s: np.ndarray, harm_frames: int, perc_bins: int) -> float:
    """``sum H^2 / (sum H^2 + sum P^2)`` of median-filter HPSS with power-2 soft masks.

    ``Hm`` = median over ``harm_frames`` frames, ``Pm`` = median over ``perc_bins`` bins (both
    mirror-padded as ``scipy.ndimage.median_filter(mode='reflect')``), ``mH = Hm^2 / (Hm^2 +
    Pm^2)``, ``mP = 1 - mH`` (both 0 where ``Hm = Pm = 0``), ``H = s mH``, ``P = s mP``.
    """
    hm = median_filter(s, size=(1, harm_frames), mode="reflect")
    pm = median_filter(s, size=(perc_bins, 1), mode="reflect")
    den = hm**2 + pm**2
    safe = np.where(den > 0, den, 1.0)
    mask_h = np.where(den > 0, hm**2 / safe, 0.0)
    mask_p = np.where(den > 0, 1.0 - mask_h, 0.0)
    sum_h = float(np.sum((s * mask_h) ** 2))
    sum_p = float(np.sum((s * mask_p) ** 2))
    total = sum_h + sum_p
    return sum_h / total if total > 0 else 0.0


def ref_harmonic_ratio(x: np.ndarray, sr: int) -> float:
    """Value 18 as the doc computes it: HPSS on coarse frames (mean of 2 power frames) of the
    bins below 8 kHz.

    Harmonic median over 17 coarse frames, percussive median over 31 bins, soft masks with
    power 2; ratio of the harmonic part's energy of squares to the total. 0 for silence.

    Returns
    -------
    float in [0, 1]
    """
    power, _, n_fft = _power_of(x, sr)
    n_bins = power.shape[0]
    keep = min(n_bins, max(32, math.ceil(8000.0 * n_fft / sr)))  # bins below 8 kHz
    return _hpss_ratio(_coarse_frames(power[:keep], 2), harm_frames=17, perc_bins=31)


# ==============================================================================================
# 19 pitch stability
# ==============================================================================================

PITCH_FMIN_HZ = 65.0
PITCH_FMAX_HZ = 2093.0
YIN_THRESHOLD = 0.1
#: Low-pass before decimation: 39-tap Blackman windowed sinc, cutoff this fraction of the
#: decimated Nyquist (``sr_d / 2``).
DECIMATION_TAPS = 39
DECIMATION_CUTOFF = 0.75


def decimate_for_pitch(x_mono: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Low-pass and decimate mono by ``d = max(1, sr // 11025)`` (no filter when d = 1).

    The filter is a causal 39-tap windowed sinc (Blackman), unity gain at DC, cutoff
    ``0.75 * sr_d / 2`` Hz; the output keeps every d-th filtered sample from sample 0.

    Returns
    -------
    y : float64 ndarray, shape (ceil(N / d),)
    sr_d : float, Hz (``sr / d``)
    """
    mono = np.asarray(x_mono, dtype=np.float64).reshape(-1)
    d = max(1, sr // 11025)
    if d == 1:
        return mono, float(sr)
    sr_d = sr / d
    cutoff = DECIMATION_CUTOFF * sr_d / 2.0  # Hz
    n = np.arange(DECIMATION_TAPS) - (DECIMATION_TAPS - 1) / 2.0
    taps = 2.0 * cutoff / sr * np.sinc(2.0 * cutoff / sr * n) * np.blackman(DECIMATION_TAPS)
    taps /= taps.sum()
    return lfilter(taps, [1.0], mono)[::d], sr_d


def ref_pitch_track(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """YIN f0 every 100 ms of the decimated mono signal.

    Frame ``i`` starts at decimated sample ``i * round(sr_d / 10)`` and needs ``2 W`` samples
    (complete frames only), ``W`` = next power of two >= ``sr_d / 65``. Difference function
    ``d(tau) = sum_{j<W} (y[j] - y[j + tau])^2``, ``tau = 0 .. W``; cumulative-mean normalised
    ``d'(tau) = d(tau) tau / sum_{1..tau} d`` (``d'(0) = 1``, and 1 where the sum is 0). The
    first ``tau`` in ``[ceil(sr_d / 2093), floor(sr_d / 65)]`` with ``d' < 0.1`` is followed
    down (within that range) to its local minimum and refined by a parabola through ``d'``;
    ``f0 = sr_d / tau``.
    Voiced when such a lag exists and the RMS of the frame's first ``W`` samples is >= 1e-3.

    Returns
    -------
    f0 : float64 ndarray, shape (n_frames,), Hz; NaN for unvoiced frames
    fps : float, frames per second of the track (about 10)
    """
    y, sr_d = decimate_for_pitch(to_mono(x), sr)
    hop = int(round(sr_d / 10.0))
    w = 1
    while w < sr_d / PITCH_FMIN_HZ:
        w *= 2
    tau_min = math.ceil(sr_d / PITCH_FMAX_HZ)
    tau_max = min(w - 1, math.floor(sr_d / PITCH_FMIN_HZ))
    f0 = []
    start = 0
    while start + 2 * w <= y.size:
        seg = y[start : start + 2 * w]
        d = np.array([np.sum((seg[:w] - seg[tau : tau + w]) ** 2) for tau in range(w + 1)])
        cum = np.cumsum(d[1:])  # cum[tau - 1] = sum_{1..tau} d
        dn = np.ones(w + 1)
        taus = np.arange(1, w + 1)
        dn[1:] = np.where(cum > 0, d[1:] * taus / np.where(cum > 0, cum, 1.0), 1.0)
        value = np.nan
        if _rms(seg[:w]) >= ACTIVE_RMS:
            for tau in range(tau_min, tau_max + 1):
                if dn[tau] < YIN_THRESHOLD:
                    while tau + 1 <= tau_max and dn[tau + 1] < dn[tau]:
                        tau += 1
                    refined = tau + _parabola_offset(dn[tau - 1], dn[tau], dn[tau + 1])
                    value = sr_d / refined
                    break
        f0.append(value)
        start += hop
    return np.asarray(f0, dtype=np.float64), sr_d / hop


def ref_pitch_stability(x: np.ndarray, sr: int) -> float:
    """Value 19: ``1 / (1 + median |12 log2(f0[t] / f0[t-1])|)`` over consecutive voiced pairs.

    Returns
    -------
    float in [0, 1]; 0 when no two consecutive frames are voiced
    """
    f0, _ = ref_pitch_track(x, sr)
    both = ~np.isnan(f0[1:]) & ~np.isnan(f0[:-1])
    if not both.any():
        return 0.0
    steps = np.abs(12.0 * np.log2(f0[1:][both] / f0[:-1][both]))
    return float(1.0 / (1.0 + np.median(steps)))


# ==============================================================================================
# 20 chroma energy
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
# 21 dynamic range variation, 23 peak consistency
# ==============================================================================================


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
# 24 stereo width, 25 phase correlation
# ==============================================================================================


def ref_stereo_width(x: np.ndarray) -> float:
    """Value 24: ``sum S^2 / (sum M^2 + sum S^2)``, ``M = (L+R)/2``, ``S = (L-R)/2``.

    Returns
    -------
    float in [0, 1]; 0 when both sums are 0
    """
    left, right = left_right(x)
    m2 = float(np.sum(((left + right) / 2.0) ** 2))
    s2 = float(np.sum(((left - right) / 2.0) ** 2))
    return s2 / (m2 + s2) if m2 + s2 > 0 else 0.0


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
# all 25
# ==============================================================================================


def ref_fingerprint(x: np.ndarray, sr: int) -> dict[str, float]:
    """All 25 values, name -> value, in spec order.

    Parameters
    ----------
    x : float ndarray, shape (frames, channels), frames >= 1
    sr : int, Hz

    Returns
    -------
    dict[str, float]
    """
    bands = ref_bands(x, sr)
    centroid, rolloff, flatness = ref_spectral_means(x, sr)
    tempo, stability, density = ref_rhythm(x, sr)
    values = [
        *bands,
        ref_lufs(x, sr),
        ref_crest_db(x),
        ref_bass_mid_ratio(x, sr),
        tempo,
        stability,
        density,
        ref_silence_ratio(x, sr),
        centroid,
        rolloff,
        flatness,
        ref_harmonic_ratio(x, sr),
        ref_pitch_stability(x, sr),
        ref_chroma_energy(x, sr),
        ref_dynamic_range_variation(x, sr),
        ref_loudness_range(x, sr),
        ref_peak_consistency(x, sr),
        ref_stereo_width(x),
        ref_phase_correlation(x),
    ]
    return {name: float(v) for name, v in zip(FINGERPRINT_NAMES, values, strict=True)}


# ==============================================================================================
# the spec's library references (librosa, pyloudnorm), on the doc's frame grid
# ==============================================================================================


def _mean_over(values: np.ndarray, active: np.ndarray | None) -> float:
    """Mean of per-frame ``values`` over ``active`` frames (all when None); 0 if none."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if active is not None:
        v = v[np.asarray(active, dtype=bool)]
    return float(v.mean()) if v.size else 0.0


def librosa_spectral(
    S_mag: np.ndarray, sr: int, n_fft: int, active: np.ndarray | None = None
) -> tuple[float, float, float]:
    """librosa's centroid, 85 % rolloff and flatness of a magnitude STFT, averaged over frames.

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
    (centroid Hz, rolloff Hz, flatness) : tuple of float
        ``librosa.feature.spectral_centroid``, ``spectral_rolloff(roll_percent=0.85)`` and
        ``spectral_flatness(power=2, amin=1e-10)``, each a mean over the selected frames.
    """
    import librosa

    centroid = librosa.feature.spectral_centroid(S=S_mag, sr=sr, n_fft=n_fft)[0]
    rolloff = librosa.feature.spectral_rolloff(S=S_mag, sr=sr, n_fft=n_fft, roll_percent=0.85)[0]
    flatness = librosa.feature.spectral_flatness(S=S_mag, n_fft=n_fft, power=2.0, amin=1e-10)[0]
    return _mean_over(centroid, active), _mean_over(rolloff, active), _mean_over(flatness, active)


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


def librosa_harmonic_ratio(P: np.ndarray) -> float:
    """Harmonic ratio from ``librosa.decompose.hpss(P, kernel_size=31)`` on the full STFT.

    ``H, Pc`` are the soft-masked power spectrograms; ratio = ``sum H^2 / (sum H^2 +
    sum Pc^2)``, 0 when both are 0.

    Parameters
    ----------
    P : float ndarray, shape (n_bins, n_frames), power STFT
    """
    import librosa

    harm, perc = librosa.decompose.hpss(np.asarray(P, dtype=np.float64), kernel_size=31)
    sum_h = float(np.sum(harm**2))
    sum_p = float(np.sum(perc**2))
    return sum_h / (sum_h + sum_p) if sum_h + sum_p > 0 else 0.0


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
    dict with keys ``lufs``, ``spectral_centroid``, ``spectral_rolloff``, ``spectral_flatness``,
    ``harmonic_ratio``, ``chroma_energy`` (pyloudnorm / librosa values).
    """
    power, active, n_fft = _power_of(x, sr)
    centroid, rolloff, flatness = librosa_spectral(np.sqrt(power), sr, n_fft, active)
    return {
        "lufs": pyloudnorm_lufs(x, sr),
        "spectral_centroid": centroid,
        "spectral_rolloff": rolloff,
        "spectral_flatness": flatness,
        "harmonic_ratio": librosa_harmonic_ratio(power),
        "chroma_energy": librosa_chroma_energy(power, sr, n_fft, active),
    }
