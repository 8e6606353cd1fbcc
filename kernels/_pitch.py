"""Decimation and YIN f0 for the pitch stability value.

A. de Cheveigné and H. Kawahara, "YIN, a fundamental frequency estimator for speech and
music", J. Acoust. Soc. Am. 111(4), 2002: difference function (step 2), cumulative mean
normalisation (step 3), absolute threshold (step 4) and parabolic interpolation (step 5).
Cached ``@njit`` kernels (options from kernels/_config.py) on caller-allocated arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, REASSOC

# int64 state slots
P_PAIRS = 0  # consecutive voiced pairs counted
P_VOICED = 1  # voiced frames
N_P = 2
# float64 state slots
PF_LAST_F0 = 0  # f0 of the previous frame, 0 when unvoiced
N_PF = 1


@njit(cache=CACHE, fastmath=REASSOC)
def decimate(mono, first, count, step, fir, out):
    """Causal FIR low-pass and decimation.

    Parameters
    ----------
    mono : float32[m]
        Mono samples; ``mono[first + i * step]`` is the newest input of output ``i``, and the
        ``len(fir) - 1`` samples before it are its history.
    first, count, step : int
    fir : float32[taps]
        Symmetric (linear phase), so it is applied without reversal.
    out : float64[>= count]
        ``out[i] = sum_k fir[k] * mono[first + i * step - k]`` (accumulated in float32: the
        result feeds a pitch tracker, not a level measurement).
    """
    taps = fir.shape[0]
    for i in range(count):
        base = first + i * step - (taps - 1)
        acc = np.float32(0.0)
        for k in range(taps):
            acc += fir[k] * mono[base + k]
        out[i] = acc


@njit(cache=CACHE, error_model=ERROR_MODEL)
def yin_pick(frames, corr, n_frames, w, tau_min, tau_max, threshold, sr_dec, active_rms, cs,
             dprime, f0):
    """YIN on frames whose cross-correlation is given.

    Parameters
    ----------
    frames : float64[batch, 2 w]
        Decimated frames.
    corr : float64[batch, 2 w]
        ``corr[j, tau] = sum_{i < w} x[i] x[i + tau]`` for ``tau <= w`` (from FFTs).
    n_frames, w, tau_min, tau_max : int
        Lags searched: ``[tau_min, tau_max]``, ``tau_max < w``.
    threshold : float
        YIN absolute threshold on the normalised difference.
    sr_dec : float, Hz
    active_rms : float
        A frame quieter than this (RMS over its first ``w`` samples) is unvoiced.
    cs, dprime : float64 scratch, ``2 w + 1`` and ``w + 1``
    f0 : float64[batch]
        Receives f0 in Hz, or 0 for an unvoiced frame.
    """
    for j in range(n_frames):
        x = frames[j]
        cs[0] = 0.0
        for i in range(2 * w):
            cs[i + 1] = cs[i] + x[i] * x[i]
        e0 = cs[w]
        f0[j] = 0.0
        if math.sqrt(e0 / w) < active_rms:
            continue
        dprime[0] = 1.0
        run = 0.0
        top = min(tau_max + 1, w)
        for tau in range(1, top + 1):
            d = e0 + (cs[tau + w] - cs[tau]) - 2.0 * corr[j, tau]
            if d < 0.0:
                d = 0.0
            run += d
            dprime[tau] = d * tau / run if run > 0.0 else 1.0
        best = -1
        tau = tau_min
        while tau <= tau_max:
            if dprime[tau] < threshold:
                while tau + 1 <= tau_max and dprime[tau + 1] < dprime[tau]:
                    tau += 1
                best = tau
                break
            tau += 1
        if best < 0:
            continue
        a = dprime[best - 1]
        b = dprime[best]
        c = dprime[best + 1] if best + 1 <= top else b
        den = a - 2.0 * b + c
        off = 0.5 * (a - c) / den if den > 0.0 else 0.0
        off = min(0.5, max(-0.5, off))
        f0[j] = sr_dec / (best + off)


@njit(cache=CACHE, error_model=ERROR_MODEL)
def pitch_push(f0, n_frames, state, fstate, hist, step):
    """Histogram of |semitone change| between consecutive voiced frames.

    Parameters
    ----------
    f0 : float64[batch], Hz (0 = unvoiced)
    n_frames : int
    state, fstate : int64[N_P], float64[N_PF]
    hist : int64[nh]
        Bin ``i`` counts changes in ``[i * step, (i + 1) * step)`` semitones; the last bin
        also takes everything above.
    step : float, semitones
    """
    nh = hist.shape[0]
    for j in range(n_frames):
        f = f0[j]
        last = fstate[PF_LAST_F0]
        if f > 0.0:
            state[P_VOICED] += 1
            if last > 0.0:
                d = abs(12.0 * math.log2(f / last))
                b = int(d / step)
                if b >= nh:
                    b = nh - 1
                hist[b] += 1
                state[P_PAIRS] += 1
        fstate[PF_LAST_F0] = f


@njit(cache=CACHE)
def hist_median(hist, step):
    """Median of a histogram of non-negative values, taken at bin centres (0 when empty)."""
    n = 0
    for i in range(hist.shape[0]):
        n += hist[i]
    if n == 0:
        return 0.0
    # average of the two middle order statistics (n even) or the middle one (n odd)
    lo_rank = (n - 1) // 2
    hi_rank = n // 2
    seen = 0
    lo_v = -1.0
    for i in range(hist.shape[0]):
        seen += hist[i]
        if lo_v < 0.0 and seen > lo_rank:
            lo_v = (i + 0.5) * step
        if seen > hi_rank:
            return 0.5 * (lo_v + (i + 0.5) * step)
    return lo_v
