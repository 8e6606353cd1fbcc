"""Tonality and timbre kernels: the key's peak chroma and the mean log-mel spectrum.

Cached ``@njit`` kernels over caller-allocated arrays; no validation, no I/O (kernels/_config.py
holds the flags). Both run on the power spectra that ``_spectral.power_features`` leaves in
``power`` and accumulate over active frames only, in frame order, so the result depends on the
data alone, never on the caller's block sizes. docs/FINGERPRINT.md "Tonality" and "Timbre"
state the definitions; design.py ("Tonality and timbre") designs their tables.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, REASSOC

#: A spectral peak counts for the key when its power is within this ratio of the frame's
#: strongest bin in the peak range (-60 dB).
PEAK_FLOOR = 1e-6
#: Largest log-magnitude correction of a peak's parabola: the Hann window's scalloping loss
#: (1.42 dB, half a bin off centre) in natural-log magnitude units.
KEY_MAX_LOG_GAIN = 1.42 / 20.0 * math.log(10.0)
#: Log-mel values are floored this far below the frame's strongest band (-80 dB, librosa's
#: ``top_db``), and never below ``MEL_AMIN`` (librosa's ``amin``).
MEL_TOP_RATIO = 1e-8
MEL_AMIN = 1e-10


@njit(cache=CACHE, error_model=ERROR_MODEL)
def key_chroma(power, n_frames, active, first_frame, stride, k_lo, k_hi, bin_pitch, peak_min,
               chroma, frame_c):
    """Add the peak chroma of every ``stride``-th active frame, normalised to a maximum of 1,
    to ``chroma``.

    Parameters
    ----------
    power : float32[batch, n_bins]
        Power spectra ``|X|^2`` of the frames (``_spectral.power_features``).
    n_frames : int
        Valid rows of ``power``.
    active : bool[batch]
    first_frame : int
        Global index of row 0; row ``j`` counts when ``(first_frame + j) % stride == 0``.
    stride : int
        ``design.KEY_FRAME_STRIDE`` (4: frames ``n_fft`` apart, which tile the signal).
    k_lo, k_hi : int
        Peaks are looked for at bins ``k_lo <= k < k_hi`` (``2 <= k_lo``, ``k_hi < n_bins``;
        ``design.key_peak_bins``: 50 Hz .. 3500 Hz).
    bin_pitch : float64[n_bins]
        Pitch of each bin's centre frequency in semitones above C (A4 = 440 Hz), any octave
        (``design.key_bin_pitch``).
    peak_min : float
        Smallest power of a peak (``design.key_peak_min``: a -100 dBFS sine), so that rounding
        noise around DC or digital silence never makes a key.
    chroma : float64[12]
        ``+=`` each counted frame's chroma divided by its largest class (a frame without a
        peak adds nothing). Class 0 is C.
    frame_c : float64[12]
        Scratch.

    Notes
    -----
    A peak is a bin whose power exceeds its lower neighbour's, is at least its upper
    neighbour's, is within ``PEAK_FLOOR`` (-60 dB) of the largest power in the range and is at
    least ``peak_min``. A parabola through the log power ``a, b, c`` of the bin and its
    neighbours (Smith & Serra 1987) gives its offset ``d = (a - c) / (2 (a - 2b + c))`` bins
    (|d| <= 1/2) and its magnitude ``exp((b - (a - c) d / 4) / 2)`` (the correction factor,
    at most the 1.42 dB scalloping loss of the Hann window, clamped there and taken by its cubic
    series); its pitch is ``bin_pitch[k] + 12 log2(1 + d / k)`` (the log by its cubic series,
    |d / k| <= 1/4). (The
    closed-form Hann estimator of Grandke 1983 is cheaper but moved the key of 10 of 44 real
    tracks under a 48 kHz resample, against 3 for the parabola.) The peak adds its magnitude
    to the two pitch classes around its pitch, split as ``1 - s(u)`` and ``s(u)``, ``u`` the
    fraction of a semitone above the lower class and ``s(u) = 3u^2 - 2u^3`` (within 0.01 of
    the ``sin^2(pi u / 2)`` of Gomez's 2006 HPCP with a one-semitone cosine window, without a
    cosine; no harmonic weighting: the key profiles carry the harmonics instead).
    """
    floor32 = np.float32(PEAK_FLOOR)
    pmin32 = np.float32(peak_min)
    to_semi = 12.0 / math.log(2.0)
    for j in range(n_frames):
        if not active[j] or (first_frame + j) % stride != 0:
            continue
        row = power[j]
        pmax = np.float32(0.0)
        for k in range(k_lo - 1, k_hi + 1):
            pmax = max(pmax, row[k])
        thr = max(pmax * floor32, pmin32)
        for q in range(12):
            frame_c[q] = 0.0
        found = False
        for k in range(k_lo, k_hi):
            p = row[k]
            if p <= thr or p <= row[k - 1] or p < row[k + 1]:
                continue
            found = True
            pb = np.float64(p)
            u = math.log(max(np.float64(row[k - 1]), 1e-37) / pb)  # a - b < 0
            v = math.log(max(np.float64(row[k + 1]), 1e-37) / pb)  # c - b <= 0
            d = 0.5 * (u - v) / (u + v)
            # the Hann main lobe's correction is at most 1.42 dB (y <= 0.164); a larger one is
            # no sinusoid's: clamp, then exp by its cubic series
            y = min(-0.125 * (u - v) * d, KEY_MAX_LOG_GAIN)
            b = math.sqrt(pb) * (1.0 + y * (1.0 + y * (0.5 + y / 6.0)))
            x = d / k
            pitch = bin_pitch[k] + to_semi * (x - x * x * (0.5 - x / 3.0))
            lo = math.floor(pitch)
            t = pitch - lo
            w_hi = t * t * (3.0 - 2.0 * t)  # smoothstep, within 0.01 of sin^2(pi t / 2)
            q = int(lo) % 12
            frame_c[q] += b * (1.0 - w_hi)
            frame_c[(q + 1) % 12] += b * w_hi
        if not found:
            continue
        top = 0.0
        for q in range(12):
            top = max(top, frame_c[q])
        if top > 0.0:
            inv = 1.0 / top
            for q in range(12):
                chroma[q] += frame_c[q] * inv


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def log_mel_sum(power, n_frames, active, seg, rise, fall, group, log_sum, prod, state, mel):
    """Add the natural log of each active frame's mel band powers to ``log_sum``.

    Parameters
    ----------
    power : float32[batch, n_bins]
        Power spectra ``|X|^2``.
    n_frames : int
    active : bool[batch]
    seg : int64[n_mels + 2]
        Bin segments (``design.mel_segments``): bins ``seg[s] .. seg[s + 1] - 1`` rise into band
        ``s`` and fall out of band ``s - 1``.
    rise, fall : float32[seg[-1]]
        Their weights (Slaney-normalised triangles).
    group : int
        ``design.MEL_LOG_GROUP``: frames whose band values are multiplied before one log.
    log_sum : float64[n_mels]
        ``+=`` ``ln(max(m_b, max_b(m) * 1e-8, 1e-10))`` per active frame, in groups.
    prod : float64[n_mels]
        State: the running product of the current group (all 1 at the start of a track).
    state : int64[1]
        State: frames in the current group.
    mel : float64[n_mels]
        Scratch: the frame's band powers.

    Notes
    -----
    A triangular mel filter bank overlaps by half, so each bin feeds at most two bands: a
    frame costs two multiply-adds per bin instead of ``n_mels``. The floor is relative to the
    frame's strongest band (librosa's ``top_db`` of 80 dB, per frame), so a gain change shifts
    every log-mel value of a frame by the same amount and MFCCs 1.. do not move (Davis &
    Mermelstein 1980; Logan 2000). Products of ``group`` frames stay within float64 (each
    factor lies in 1e-10 .. ~1e10) and cut the logs ``group``-fold; :func:`log_mel_flush` adds
    a partial group at the end. The grouping follows the active frames in stream order only.
    """
    n_mels = log_sum.shape[0]
    for j in range(n_frames):
        if not active[j]:
            continue
        row = power[j]
        for b in range(n_mels):
            mel[b] = 0.0
        for s in range(n_mels + 1):
            up = np.float32(0.0)
            down = np.float32(0.0)
            for k in range(seg[s], seg[s + 1]):
                up += rise[k] * row[k]
                down += fall[k] * row[k]
            if s < n_mels:
                mel[s] += up
            if s >= 1:
                mel[s - 1] += down
        top = 0.0
        for b in range(n_mels):
            top = max(top, mel[b])
        floor = max(top * MEL_TOP_RATIO, MEL_AMIN)
        for b in range(n_mels):
            prod[b] *= max(mel[b], floor)
        state[0] += 1
        if state[0] == group:
            log_mel_flush(log_sum, prod, state)


@njit(cache=CACHE, error_model=ERROR_MODEL)
def log_mel_flush(log_sum, prod, state):
    """Add ``ln(prod)`` to ``log_sum`` and start a new group (``prod = 1``, ``state = 0``)."""
    if state[0] == 0:
        return
    for b in range(log_sum.shape[0]):
        log_sum[b] += math.log(prod[b])
        prod[b] = 1.0
    state[0] = 0
