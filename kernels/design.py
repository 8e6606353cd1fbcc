"""Analysis parameters and filter designs, computed once per (sample rate, channels).

Plain numpy, run at analyzer construction; nothing here is on the per-sample hot path.
docs/FINGERPRINT.md states every constant in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

#: Frames per internal chunk: the analyzer cuts the stream into chunks of ``CHUNK_FRAMES * hop``
#: samples, whatever block sizes it is fed, so results do not depend on the caller's blocks.
CHUNK_FRAMES = 128

#: Band edges (Hz) of values 1-7; the last edge is capped at min(20000, sr / 2).
BAND_EDGES_HZ = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0)

ACTIVE_RMS = 1e-3  # -60 dBFS
FLATNESS_AMIN = 1e-10
ROLLOFF_PERCENT = 0.85

# Rhythm (docs/FINGERPRINT.md "Rhythm")
ONSET_FMIN_HZ = 40.0
ONSET_FMAX_HZ = 16000.0
ONSET_DB_FLOOR = -100.0
ONSET_PEAK_HALF = 3  # local maximum over f-3 .. f+3
ONSET_MEAN_HALF = 16  # local mean over f-16 .. f+16
ONSET_DELTA_DB = 2.0
RHYTHM_WINDOW_S = 8.0
TEMPO_MAX_LAG_S = 4.0
TEMPO_MIN_BPM = 40.0
TEMPO_MAX_BPM = 240.0
TEMPO_PRIOR_BPM = 120.0
TEMPO_TAP_MAX_BPM = 210.0
TEMPO_OCTAVE_RATIO = 0.5
BEAT_STRENGTH_RATIO = 0.5

# Harmonic / percussive separation (docs/FINGERPRINT.md "Harmonic ratio")
HPSS_TIME_AVG = 2  # power frames averaged into one coarse frame
HPSS_TIME_KERNEL = 17  # coarse frames in the harmonic (time) median (~ librosa's 31 frames)
HPSS_FREQ_KERNEL = 31  # bins in the percussive (frequency) median
HPSS_FMAX_HZ = 8000.0  # separation on bins below this (they carry nearly all of sum S^2)

# Pitch (docs/FINGERPRINT.md "Pitch")
YIN_FMIN_HZ = 65.0
YIN_FMAX_HZ = 2093.0
YIN_THRESHOLD = 0.1
YIN_HOP_S = 0.1
DECIM_TARGET_HZ = 11025
DECIM_TAPS = 39
PITCH_HIST_STEP = 0.001  # semitones
PITCH_HIST_MAX = 64.0  # semitones

# Loudness histograms (docs/FINGERPRINT.md "Loudness histograms")
LOUD_HIST_MIN = -70.0
LOUD_HIST_MAX = 30.0
LOUD_HIST_STEP = 0.01


def stft_size(sample_rate: int) -> tuple[int, int]:
    """FFT size and hop for a sample rate: ~46 ms frames at any common rate.

    Parameters
    ----------
    sample_rate : int, Hz

    Returns
    -------
    (n_fft, hop) : (int, int), samples
        ``n_fft`` = 2048 for 32 kHz <= sr < 64 kHz, halved per octave below and doubled per
        octave above (never below 256); ``hop = n_fft // 4``.
    """
    n_fft = 2048
    lo, hi = 32000, 64000
    while sample_rate < lo and n_fft > 256:
        n_fft //= 2
        lo //= 2
    while sample_rate >= hi:
        n_fft *= 2
        hi *= 2
    return n_fft, n_fft // 4


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window, float32[n]: ``0.5 - 0.5 cos(2 pi i / n)``."""
    i = np.arange(n, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * i / n)).astype(np.float32)


def rbj_biquad(kind: str, fc: float, q: float, gain_db: float, sample_rate: int) -> np.ndarray:
    """Biquad coefficients from R. Bristow-Johnson's *Audio EQ Cookbook*.

    Parameters
    ----------
    kind : {"high_shelf", "high_pass"}
    fc : float, Hz
    q : float
    gain_db : float, dB (shelf gain; ignored by the high-pass)
    sample_rate : int, Hz

    Returns
    -------
    float64[5] : ``b0, b1, b2, a1, a2`` normalised by ``a0``.
    """
    w0 = 2.0 * math.pi * fc / sample_rate
    cw, sw = math.cos(w0), math.sin(w0)
    alpha = sw / (2.0 * q)
    if kind == "high_shelf":
        a = 10.0 ** (gain_db / 40.0)
        sq = 2.0 * math.sqrt(a) * alpha
        b0 = a * ((a + 1) + (a - 1) * cw + sq)
        b1 = -2.0 * a * ((a - 1) + (a + 1) * cw)
        b2 = a * ((a + 1) + (a - 1) * cw - sq)
        a0 = (a + 1) - (a - 1) * cw + sq
        a1 = 2.0 * ((a - 1) - (a + 1) * cw)
        a2 = (a + 1) - (a - 1) * cw - sq
    elif kind == "high_pass":
        b0 = (1.0 + cw) / 2.0
        b1 = -(1.0 + cw)
        b2 = (1.0 + cw) / 2.0
        a0 = 1.0 + alpha
        a1 = -2.0 * cw
        a2 = 1.0 - alpha
    else:  # pragma: no cover - internal
        raise ParameterError(f"unknown biquad kind {kind!r}; use 'high_shelf' or 'high_pass'")
    return np.array([b0, b1, b2, a1, a2], dtype=np.float64) / a0


def k_weighting(sample_rate: int) -> np.ndarray:
    """BS.1770 K-weighting as two cascaded biquads designed at the native rate.

    Returns
    -------
    float64[2, 5] : stage 1 (+4 dB high shelf at 1500 Hz, Q 1/sqrt 2), stage 2 (high-pass at
        38 Hz, Q 0.5); rows are ``b0, b1, b2, a1, a2``.
    """
    return np.stack([
        rbj_biquad("high_shelf", 1500.0, 1.0 / math.sqrt(2.0), 4.0, sample_rate),
        rbj_biquad("high_pass", 38.0, 0.5, 0.0, sample_rate),
    ])


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770 channel weights, float64[channels]: 1.0, and 1.41 for channels 4 and 5 (1-based)."""
    g = np.ones(channels, dtype=np.float64)
    g[3:5] = 1.41
    return g


def band_bins(sample_rate: int, n_fft: int) -> np.ndarray:
    """Bin ranges of the seven bands, int64[7, 2] as ``[start, stop)``, by bin centre frequency."""
    n_bins = n_fft // 2 + 1
    freqs = np.arange(n_bins) * (sample_rate / n_fft)
    edges = list(BAND_EDGES_HZ)
    edges[-1] = min(edges[-1], sample_rate / 2.0)
    out = np.zeros((7, 2), dtype=np.int64)
    for b in range(7):
        lo, hi = edges[b], edges[b + 1]
        start = int(np.searchsorted(freqs, lo, side="left"))
        stop = int(np.searchsorted(freqs, hi, side="left")) if hi > lo else start
        out[b] = (start, max(start, stop))
    return out


def onset_bands(sample_rate: int, n_fft: int) -> np.ndarray:
    """Third-octave onset bands as bin edges, int64[n_bands + 1]: band ``b`` is bins
    ``edges[b] .. edges[b+1]-1``.

    Edges at ``40 * 2^(i/3)`` Hz up to ``min(16 kHz, Nyquist)``; a band narrower than two bins is
    merged into the next one (the last into the one before).
    """
    n_bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    fmax = min(ONSET_FMAX_HZ, sample_rate / 2.0)
    k_lo = math.ceil(ONSET_FMIN_HZ / df - 1e-9)
    k_hi = min(n_bins, math.ceil(fmax / df - 1e-9))  # bins with centre < fmax
    bands: list[list[int]] = []
    i = 0
    start = k_lo
    while start < k_hi:
        i += 1
        edge_k = math.ceil(ONSET_FMIN_HZ * 2.0 ** (i / 3.0) / df - 1e-9)
        if edge_k - start < 2:
            continue
        stop = min(edge_k, k_hi)
        bands.append([start, stop])
        start = stop
    if len(bands) > 1 and bands[-1][1] - bands[-1][0] < 2:
        bands[-2][1] = bands.pop()[1]
    if not bands:  # absurdly low rates: one band over whatever exists
        bands = [[min(k_lo, n_bins - 1), max(k_hi, min(k_lo, n_bins - 1) + 1)]]
    return np.array([bands[0][0]] + [b for _, b in bands], dtype=np.int64)


def chroma_filterbank(sample_rate: int, n_fft: int) -> np.ndarray:
    """12-bin chroma filter bank after D. Ellis' ``fft2chromamx`` (Ellis 2007).

    Each FFT bin's frequency is placed on a pitch-class axis (A4 = 440 Hz, no tuning); its
    weight for pitch class ``c`` is a Gaussian of the wrapped distance between the bin's
    (fractional) pitch class and ``c``, with a width of the bin spacing in semitones (at least
    one). Each bin's weights are L2-normalised over the 12 classes, then scaled by a Gaussian
    octave weighting centred 5 octaves above A0 / 16 * 16 = 27.5 Hz (880 Hz), width 2 octaves.
    Rows start at C.

    Returns
    -------
    float32[12, n_fft // 2 + 1]
    """
    n_chroma = 12
    n_bins = n_fft // 2 + 1
    k = np.arange(1, n_bins + 1, dtype=np.float64)  # one bin past the last, for its width
    freqs = k * (sample_rate / n_fft)
    # Position in semitone units counted from A0 / 16 * 16 = 27.5 Hz (A440 / 16).
    semis = n_chroma * np.log2(freqs / (440.0 / 16.0))
    semis = np.concatenate(([semis[0] - 1.5 * n_chroma], semis))  # DC: bin 1 minus 1.5 octaves
    width = np.maximum(np.diff(semis), 1.0)[:n_bins]
    pos = semis[:n_bins]
    classes = np.arange(n_chroma, dtype=np.float64)[:, None]
    half = n_chroma // 2
    dist = np.remainder(pos[None, :] - classes + half + 10 * n_chroma, n_chroma) - half
    w = np.exp(-0.5 * (2.0 * dist / width[None, :]) ** 2)
    w /= np.sqrt(np.sum(w * w, axis=0, keepdims=True))
    w *= np.exp(-0.5 * ((pos / n_chroma - 5.0) / 2.0) ** 2)[None, :]
    w = np.roll(w, -3, axis=0)  # rows from A to rows from C
    return np.ascontiguousarray(w, dtype=np.float32)


def _batcher_pairs(m: int) -> list[tuple[int, int]]:
    """Comparators of Batcher's odd-even merge sort for ``m`` (a power of two) inputs."""
    pairs: list[tuple[int, int]] = []
    p = 1
    while p < m:
        k = p
        while k >= 1:
            for j in range(k % p, m - k, 2 * k):
                for i in range(min(k, m - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def median_network(n: int) -> tuple[np.ndarray, int]:
    """A comparator network that leaves the median of ``n`` (odd) inputs in one known row.

    Batcher's odd-even merge sort for the next power of two, with the missing inputs taken as
    +inf (comparators against them are resolved here, not run), then pruned backwards to the
    comparators the median depends on.

    Returns
    -------
    ops : int64[n_ops, 2]
        ``(a, b)``: row ``a`` takes the min, row ``b`` the max, in order.
    out : int
        The row that holds the median afterwards.
    """
    if n < 1 or n % 2 == 0:
        raise ParameterError(f"median_network(n={n}): n must be odd and positive")
    m = 1
    while m < n:
        m *= 2
    inf = -1
    slot = list(range(n)) + [inf] * (m - n)  # which row each network position holds
    ops: list[tuple[int, int]] = []
    for i, j in _batcher_pairs(m):
        a, b = slot[i], slot[j]
        if b == inf:
            continue  # min(x, inf) = x: nothing moves
        if a == inf:
            slot[i], slot[j] = b, inf  # the finite value moves down: a renaming, not a compare
            continue
        ops.append((a, b))
    out = slot[n // 2]
    live = {out}
    kept: list[tuple[int, int]] = []
    for a, b in reversed(ops):
        if a in live or b in live:
            kept.append((a, b))
            live |= {a, b}
    kept.reverse()
    return np.array(kept, dtype=np.int64).reshape(-1, 2), out


def lowpass_fir(taps: int, cutoff: float) -> np.ndarray:
    """Blackman-windowed sinc low-pass, unit DC gain.

    Parameters
    ----------
    taps : int, odd
    cutoff : float, cycles per sample (0 .. 0.5)

    Returns
    -------
    float32[taps]
    """
    n = np.arange(taps, dtype=np.float64) - (taps - 1) / 2.0
    h = 2.0 * cutoff * np.sinc(2.0 * cutoff * n) * np.blackman(taps)
    return (h / h.sum()).astype(np.float32)


@dataclass(frozen=True)
class Params:
    """Everything derived from (sample_rate, channels), shared by the kernels of one analyzer."""

    sample_rate: int
    channels: int
    n_fft: int
    hop: int
    n_bins: int
    hpss_bins: int  # bins with centre frequency below HPSS_FMAX_HZ
    chunk: int  # samples per internal chunk = CHUNK_FRAMES * hop
    fps: float  # STFT frames per second
    # rhythm
    rhythm_window: int  # frames per analysis window
    max_lag: int  # frames, tempo autocorrelation
    # pitch
    decim: int
    sr_dec: float
    yin_w: int  # integration window (decimated samples); YIN frames are 2 * yin_w long
    yin_hop: int  # decimated samples
    yin_tau_min: int
    yin_tau_max: int


def make_params(sample_rate: int, channels: int) -> Params:
    """Validate and derive the analysis parameters (see :class:`Params`)."""
    if not isinstance(sample_rate, int | np.integer) or not 1000 <= int(sample_rate) <= 768000:
        raise ParameterError(
            f"sample_rate={sample_rate!r} is outside 1000..768000 Hz; pass the file's own "
            "integer sample rate"
        )
    if not isinstance(channels, int | np.integer) or not 1 <= int(channels) <= 64:
        raise ParameterError(
            f"channels={channels!r} is outside 1..64; pass the file's channel count"
        )
    sr = int(sample_rate)
    n_fft, hop = stft_size(sr)
    fps = sr / hop
    decim = max(1, sr // DECIM_TARGET_HZ)
    sr_dec = sr / decim
    tau_max = int(math.floor(sr_dec / YIN_FMIN_HZ))
    yin_w = 1 << max(4, math.ceil(math.log2(sr_dec / YIN_FMIN_HZ)))
    return Params(
        sample_rate=sr,
        channels=int(channels),
        n_fft=n_fft,
        hop=hop,
        n_bins=n_fft // 2 + 1,
        hpss_bins=min(n_fft // 2 + 1, max(2 * 15 + 2, math.ceil(HPSS_FMAX_HZ * n_fft / sr))),
        chunk=CHUNK_FRAMES * hop,
        fps=fps,
        rhythm_window=max(1, round(RHYTHM_WINDOW_S * fps)),
        max_lag=int(math.ceil(TEMPO_MAX_LAG_S * fps)),
        decim=decim,
        sr_dec=sr_dec,
        yin_w=yin_w,
        yin_hop=max(1, round(sr_dec * YIN_HOP_S)),
        yin_tau_min=max(2, int(math.ceil(sr_dec / YIN_FMAX_HZ))),
        yin_tau_max=min(tau_max, yin_w - 1),
    )
