"""Analysis parameters and filter designs, computed once per (sample rate, channels).

Plain numpy, run at analyzer construction; nothing here is on the per-sample hot path.
docs/FINGERPRINT.md states every constant in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import ParameterError

#: Frames per internal chunk: the analyzer cuts the stream into chunks of ``CHUNK_FRAMES * hop``
#: samples, whatever block sizes it is fed, so results do not depend on the caller's blocks.
CHUNK_FRAMES = 128

#: STFT frames analysed together (framing, one batched FFTW call, the per-frame kernels),
#: fewer than a chunk's: the batch's frames, spectra and powers take 0.6 MB instead of 2.5 MB
#: at 128 (2048-point frames), with no measurable change in speed (bench/kernel_speed.py
#: --baseline, one against the other). A speed and memory setting only: FFTW's plan computes
#: each row the same way at any batch size from 2 up (a plan for a single transform is another
#: algorithm, which rounds differently) and every accumulation runs in frame order
#: (tests/test_invariances.py checks the fingerprint bit for bit at other sizes).
FRAME_BATCH = 32

#: Band edges (Hz) of the spectral balance; the last edge is capped at min(20000, sr / 2).
BAND_EDGES_HZ = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0)
#: Band levels relative to the mid band are clamped to +-this (dB).
BAND_DB_LIMIT = 80.0

ACTIVE_RMS = 1e-3  # -60 dBFS

# Rhythm (docs/FINGERPRINT.md "Rhythm")
ONSET_FMIN_HZ = 30.0  # onset filter bank: 24 bands per octave from 30 Hz ...
ONSET_FMAX_HZ = 16000.0  # ... to min(16 kHz, Nyquist), at least one bin each
ONSET_BANDS_PER_OCTAVE = 24
ONSET_LOG_GAIN = 1000.0  # L = ln(1 + 1000 m): log above m = 1e-3 (-54 dB re a full-scale sine)
ONSET_MEAN_HALF = 16  # frames: delay of the rhythm stage; tempo envelope's local mean f-16..f+16
ONSET_MAX_S = 0.03  # peak picking: maximum over +-30 ms ...
ONSET_AVG_PRE_S = 0.12  # ... at least ONSET_DELTA above the mean from 120 ms before ...
ONSET_AVG_POST_S = 0.07  # ... to 70 ms after
ONSET_DELTA = 0.03  # nepers per band (mean log rise); level-free, so also under a noise bed
RHYTHM_WINDOW_S = 8.0
RHYTHM_FLUX_FLOOR = 10.0 ** -3.5  # a window's sum h^2 counts at least this x sum level^2
TEMPO_MAX_LAG_S = 4.0
TEMPO_MIN_BPM = 40.0
TEMPO_MAX_BPM = 240.0
TEMPO_PRIOR_BPM = 120.0  # log-Gaussian prior (Ellis 2007) ...
TEMPO_PRIOR_OCTAVES = 1.8  # ... of this standard deviation
TEMPO_PEAK_SPAN = 0.06  # periodicity S(x) = area of G+ within x (1 +- 6 %) ...
TEMPO_LEVEL_OCTAVES = 3.0  # ... weighted by a log-Gaussian of this width around the prior
TEMPO_FASTER_RATIO = 0.78  # go to l/2 or l/3 while weighted S there reaches this share
TEMPO_HALFTIME_BPM = 70.0  # a start slower than this ...
TEMPO_HALFTIME_RATIO = 0.2  # ... with S(l/4) >= this share of S(l) is half-time: beat l/2
TEMPO_REFINE_SPAN = 0.1  # period = centroid of G within +-10 % of the chosen lag ...
TEMPO_REFINE_LEVEL = 0.5  # ... over the part above half its maximum

# Harmonic / percussive separation (docs/FINGERPRINT.md "Harmonic ratio")
HPSS_TIME_AVG = 2  # power frames averaged into one coarse frame
HPSS_TIME_KERNEL = 17  # coarse frames in the harmonic (time) median (~ librosa's 31 frames)
HPSS_FREQ_KERNEL = 31  # bins in the percussive (frequency) median
HPSS_FMAX_HZ = 9000.0  # separation on bins below this (8 kHz: up to 0.036 off librosa)

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


#: BS.1770-4 channel weights by channel count, in the WAVE/FLAC default channel order
#: (Microsoft WAVEFORMATEXTENSIBLE masks; FLAC and Vorbis use the same orders for these
#: counts): 1.0 for the front channels (L, R, C), 0 for the LFE (BS.1770-4 excludes it),
#: 1.41 (+1.5 dB) for the surround and back channels.
_LAYOUT_WEIGHTS: dict[int, tuple[float, ...]] = {
    4: (1.0, 1.0, 1.41, 1.41),  # quad: FL FR BL BR
    5: (1.0, 1.0, 1.0, 1.41, 1.41),  # 5.0: FL FR FC BL BR
    6: (1.0, 1.0, 1.0, 0.0, 1.41, 1.41),  # 5.1: FL FR FC LFE BL BR
    7: (1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41),  # 6.1: FL FR FC LFE BC SL SR
    8: (1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41, 1.41),  # 7.1: FL FR FC LFE BL BR SL SR
}


def channel_weights(channels: int) -> np.ndarray:
    """BS.1770-4 channel weights ``G_i``, float64[channels].

    Mono, stereo and L R C are 1.0 each; 4 to 8 channels follow the default layouts of
    :data:`_LAYOUT_WEIGHTS` (5.1: L R C 1.0, LFE 0, Ls Rs 1.41; 7.1: the four surrounds 1.41);
    more than 8 channels have no standard order, and every channel weighs 1.0.

    ITU-R BS.1770-4 (2015), table 3.
    """
    layout = _LAYOUT_WEIGHTS.get(channels)
    if layout is None:
        return np.ones(channels, dtype=np.float64)
    return np.array(layout, dtype=np.float64)


def band_weights(sample_rate: int, n_fft: int) -> np.ndarray:
    """Share of each bin's power that each band of the spectral balance takes, float64[7, n_bins].

    Bin ``k`` stands for the frequencies ``[(k - 1/2) df, (k + 1/2) df)``, ``df = sr / n_fft``;
    band ``b`` (edges :data:`BAND_EDGES_HZ`, each capped at ``sr / 2``) takes the fraction of
    that interval inside ``[lo, hi)``. So a band's power does not jump
    when an edge crosses a bin centre, and the same music at 44.1 and 48 kHz (bins 21.5 and
    23.4 Hz apart) gives the same band levels: in v1, bins counted whole by their centre moved
    bass_pct by 0.1 IQR between the two rates.
    """
    n_bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    lo_k = (np.arange(n_bins) - 0.5) * df
    hi_k = lo_k + df
    edges = [min(e, sample_rate / 2.0) for e in BAND_EDGES_HZ]
    w = np.zeros((7, n_bins), dtype=np.float64)
    for b in range(7):
        lo, hi = edges[b], max(edges[b], edges[b + 1])
        w[b] = np.clip(np.minimum(hi_k, hi) - np.maximum(lo_k, lo), 0.0, None) / df
    return w


def onset_bands(sample_rate: int, n_fft: int) -> np.ndarray:
    """Onset filter bank as bin edges, int64[n_bands + 1]: band ``b`` is bins
    ``edges[b] .. edges[b+1]-1``.

    Edges at ``30 * 2^(i/24)`` Hz (24 bands per octave, as SuperFlux: S. Böck and G. Widmer,
    DAFx 2013) up to ``min(16 kHz, Nyquist)``, each rounded up to a bin; an edge that falls on
    the previous one is skipped, so every band has at least one bin (below ~730 Hz at a 46 ms
    frame the bands are single bins). 140 bands at 44.1 kHz.
    """
    n_bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    fmax = min(ONSET_FMAX_HZ, sample_rate / 2.0)
    k_lo = math.ceil(ONSET_FMIN_HZ / df - 1e-9)
    k_hi = min(n_bins, math.ceil(fmax / df - 1e-9))  # bins with centre < fmax
    if k_hi <= k_lo:  # absurdly low rates: one band over whatever exists
        k_lo = min(k_lo, n_bins - 1)
        return np.array([k_lo, max(k_hi, k_lo + 1)], dtype=np.int64)
    edges = [k_lo]
    i = 0
    while edges[-1] < k_hi:
        i += 1
        edge_k = math.ceil(ONSET_FMIN_HZ * 2.0 ** (i / ONSET_BANDS_PER_OCTAVE) / df - 1e-9)
        if edge_k > edges[-1]:
            edges.append(min(edge_k, k_hi))
    return np.array(edges, dtype=np.int64)


def peak_pick_frames(fps: float) -> tuple[int, int, int, int]:
    """Peak-picking neighbourhoods in frames: ``(pre_max, post_max, pre_avg, post_avg)``.

    ``ONSET_MAX_S``, ``ONSET_AVG_PRE_S`` and ``ONSET_AVG_POST_S`` rounded to frames, at least
    one, and never more than ``ONSET_MEAN_HALF`` after the frame (the rhythm stage's delay).
    At 44.1 kHz (86.1 frames/s): 3, 3, 10, 6.
    """
    pre_max = max(1, round(ONSET_MAX_S * fps))
    post_max = min(ONSET_MEAN_HALF, pre_max)
    pre_avg = max(1, round(ONSET_AVG_PRE_S * fps))
    post_avg = min(ONSET_MEAN_HALF, max(1, round(ONSET_AVG_POST_S * fps)))
    return pre_max, post_max, pre_avg, post_avg


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
    )


# Tonality and timbre (docs/FINGERPRINT.md "Tonality", "Timbre")

#: Spectral peaks between these frequencies make the key's chroma (Hz).
KEY_FMIN_HZ = 50.0
KEY_FMAX_HZ = 3500.0
#: A best key-profile correlation at or below this gives strength 0 (no key); strength
#: ``(r - KEY_R0) / (1 - KEY_R0)`` above it.
KEY_R0 = 0.5
#: Spectral peaks weaker than a sine of this amplitude (-100 dBFS) do not count.
KEY_PEAK_MIN_AMP = 1e-5
#: The key reads every 4th STFT frame (frames n_fft apart: they tile the signal).
KEY_FRAME_STRIDE = 4
#: Key profiles: Temperley (1999), expanded to chords and harmonics as in Gomez (2006) /
#: Essentia's ``Key`` (tonic, subdominant and dominant triads; 4 harmonics, slope 0.6).
KEY_MAJOR_PROFILE = (5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0)
KEY_MINOR_PROFILE = (5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0)
KEY_HARMONICS = 4
KEY_HARMONIC_SLOPE = 0.6
#: Mel filter bank of the MFCCs: Slaney's (librosa's default, ``htk=False, norm="slaney"``).
MEL_BANDS = 40
MEL_FMIN_HZ = 0.0
MEL_FMAX_HZ = 8000.0  # below every common codec's low-pass (MP3 128k: ~16 kHz)
N_MFCC = 4  # coefficients 1..4 (c0, the level, is left out)
#: Log-mel values of this many consecutive active frames are multiplied before one log.
MEL_LOG_GROUP = 8


def key_peak_bins(sample_rate: int, n_fft: int) -> tuple[int, int]:
    """Bin range of the key's spectral peaks.

    Returns
    -------
    k_lo, k_hi : int
        Peaks are bins ``k_lo <= k < k_hi``: centre at or above ``KEY_FMIN_HZ`` (and >= 2, so
        that an offset of up to half a bin is at most a quarter of the frequency), at most one
        past ``KEY_FMAX_HZ``, and below the last bin (a peak needs both neighbours).
    """
    n_bins = n_fft // 2 + 1
    df = sample_rate / n_fft
    k_lo = max(2, math.ceil(KEY_FMIN_HZ / df - 1e-9))
    k_hi = min(n_bins - 1, math.floor(KEY_FMAX_HZ / df) + 1)
    return k_lo, max(k_lo, k_hi)


def key_bin_pitch(sample_rate: int, n_fft: int) -> np.ndarray:
    """Pitch of each bin's centre frequency, float64[n_fft // 2 + 1], in semitones above C
    (A4 = 440 Hz): ``12 log2(k sr / (n_fft 440)) + 9``; bin 0 gets 0 (never a peak)."""
    k = np.arange(n_fft // 2 + 1, dtype=np.float64)
    out = np.zeros_like(k)
    out[1:] = 12.0 * np.log2(k[1:] * (sample_rate / n_fft) / 440.0) + 9.0
    return out


def key_peak_min(n_fft: int) -> float:
    """Smallest power of a key peak: that of a sine of amplitude ``KEY_PEAK_MIN_AMP`` (-100
    dBFS) under the periodic Hann window, ``(A n_fft / 4)^2`` (the window sums to n_fft / 2)."""
    return (KEY_PEAK_MIN_AMP * n_fft / 4.0) ** 2


def _key_profile(base: tuple[float, ...], minor: bool) -> np.ndarray:
    """One polyphonic key profile for tonic C (Gomez 2006): the I, IV and V triads (minor: i,
    iv, V) weighted by ``base`` at their roots, each note adding ``slope^(h-1)`` at the pitch
    class of its harmonics ``h = 1..KEY_HARMONICS``."""
    out = np.zeros(12, dtype=np.float64)
    chords = ((0, minor), (5, minor), (7, False))
    for root, is_minor in chords:
        for interval in (0, 3, 7) if is_minor else (0, 4, 7):
            note = (root + interval) % 12
            for h in range(1, KEY_HARMONICS + 1):
                pc = (note + round(12.0 * math.log2(h))) % 12
                out[pc] += base[root] * KEY_HARMONIC_SLOPE ** (h - 1)
    return out


def key_profiles() -> np.ndarray:
    """The 24 key profiles, centred and scaled to unit norm, so that a dot product with a
    centred unit chroma is Pearson's correlation.

    Returns
    -------
    float64[24, 12] : rows 0..11 the major keys C, C#, ..., B; rows 12..23 the minor keys.
    """
    major = _key_profile(KEY_MAJOR_PROFILE, False)
    minor = _key_profile(KEY_MINOR_PROFILE, True)
    z = np.array([np.roll(major, t) for t in range(12)] + [np.roll(minor, t) for t in range(12)])
    z -= z.mean(axis=1, keepdims=True)
    z /= np.sqrt(np.sum(z * z, axis=1, keepdims=True))
    return z


def hz_to_mel_slaney(f: npt.ArrayLike) -> np.ndarray:
    """Slaney's mel scale (Auditory Toolbox; librosa ``htk=False``): linear ``3 f / 200`` below
    1 kHz, ``15 + 27 ln(f / 1000) / ln 6.4`` above."""
    f = np.asarray(f, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-9) / 1000.0) / logstep,
                    f * 3.0 / 200.0)


def mel_to_hz_slaney(m: npt.ArrayLike) -> np.ndarray:
    """Inverse of :func:`hz_to_mel_slaney`."""
    m = np.asarray(m, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * 200.0 / 3.0)


def mel_edges(sample_rate: int) -> np.ndarray:
    """The ``MEL_BANDS + 2`` edge frequencies (Hz), equally spaced in Slaney mel from
    ``MEL_FMIN_HZ`` to ``min(MEL_FMAX_HZ, sr / 2)``: band ``b`` rises from ``edges[b]`` to
    ``edges[b + 1]`` and falls to ``edges[b + 2]``."""
    fmax = min(MEL_FMAX_HZ, sample_rate / 2.0)
    m = np.linspace(hz_to_mel_slaney(MEL_FMIN_HZ), hz_to_mel_slaney(fmax), MEL_BANDS + 2)
    return mel_to_hz_slaney(m)


def mel_filterbank(sample_rate: int, n_fft: int) -> np.ndarray:
    """Dense Slaney mel filter bank (the reference for :func:`mel_segments`; librosa's
    ``filters.mel(sr, n_fft, n_mels=40, fmin=0, fmax=8000, htk=False, norm="slaney")``).

    Returns
    -------
    float64[MEL_BANDS, n_fft // 2 + 1] : triangles of peak ``2 / (edges[b + 2] - edges[b])``.
    """
    freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)
    e = mel_edges(sample_rate)
    w = np.zeros((MEL_BANDS, freqs.shape[0]), dtype=np.float64)
    for b in range(MEL_BANDS):
        rise = (freqs - e[b]) / (e[b + 1] - e[b])
        fall = (e[b + 2] - freqs) / (e[b + 2] - e[b + 1])
        w[b] = np.maximum(0.0, np.minimum(rise, fall)) * (2.0 / (e[b + 2] - e[b]))
    return w


def mel_segments(sample_rate: int, n_fft: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`mel_filterbank` by segments: each bin lies on at most two triangles.

    Returns
    -------
    seg : int64[MEL_BANDS + 2]
        Segment ``s`` = bins ``seg[s] <= k < seg[s + 1]``, those with
        ``edges[s] <= f_k < edges[s + 1]``: the rising edge of band ``s`` and the falling edge of
        band ``s - 1``. Bins from ``seg[-1]`` on touch no band.
    rise, fall : float32[seg[-1]]
        Each bin's weight in the band it rises into and in the band it falls out of (0 where
        that band does not exist), equal to the dense bank's entries.
    """
    dense = mel_filterbank(sample_rate, n_fft)
    freqs = np.arange(n_fft // 2 + 1, dtype=np.float64) * (sample_rate / n_fft)
    seg = np.searchsorted(freqs, mel_edges(sample_rate), side="left").astype(np.int64)
    rise = np.zeros(seg[-1], dtype=np.float32)
    fall = np.zeros(seg[-1], dtype=np.float32)
    for s in range(MEL_BANDS + 1):
        ks = np.arange(seg[s], seg[s + 1])
        if s < MEL_BANDS:
            rise[ks] = dense[s, ks]
        if s >= 1:
            fall[ks] = dense[s - 1, ks]
    return seg, rise, fall


def mfcc_dct() -> np.ndarray:
    """Rows 1..N_MFCC of the orthonormal DCT-II of length ``MEL_BANDS`` (scipy's
    ``dct(type=2, norm="ortho")``, as librosa's ``feature.mfcc``).

    Returns
    -------
    float64[N_MFCC, MEL_BANDS] : ``sqrt(2 / N) cos(pi n (b + 1/2) / N)``, ``n = 1..N_MFCC``.
    """
    n = np.arange(1, N_MFCC + 1, dtype=np.float64)[:, None]
    b = np.arange(MEL_BANDS, dtype=np.float64)[None, :]
    return math.sqrt(2.0 / MEL_BANDS) * np.cos(np.pi * n * (b + 0.5) / MEL_BANDS)
