"""Onset envelopes, onsets and the tempo lag function, streamed frame by frame; the tempo at
finish.

Per STFT frame, :func:`band_flux` turns the power spectrum into two SuperFlux envelopes over a
fine log-frequency filter bank: one of log-compressed magnitudes (onset detection, level-free),
one of linear magnitudes (tempo: loud events weigh more than quiet ones). :func:`rhythm_push`
delays each frame by ``mean_half`` frames (the peak test and the local mean need frames on
both sides; at the end of the track the missing frames count as 0), picks onsets, and adds the
frame to the windowed autocorrelation of the tempo envelope. :func:`select_tempo` reads the
summed autocorrelation at finish. docs/FINGERPRINT.md ("Rhythm") states the definitions.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, INLINE

# int64 state slots
R_IN = 0  # envelope frames received
R_DONE = 1  # frames finished
R_ONSETS = 2  # onsets so far
R_TOTAL = 3  # number of frames once known (finish), else -1
R_WINDOWS = 4  # analysis windows with a non-zero lag-0 autocorrelation
R_NEW = 5  # onsets found by the last push / finish (their frames in ``on_new``)
N_RI = 6

# float64 state slots
RF_LEVEL = 0  # current window: sum over frames of (mean band magnitude)^2
RF_WEIGHT = 1  # sum of the finished windows' weights (frames / window)
N_RF = 2


@njit(cache=CACHE, error_model=ERROR_MODEL)
def band_flux(power, n_frames, edges, scale, log_gain, prev_log, prev_lin, env_on, env_tp,
              env_lv):
    """SuperFlux envelopes of a batch of frames (Böck & Widmer 2013).

    For band ``b`` (bins ``edges[b] .. edges[b+1]-1``) of frame ``t`` the magnitude is
    ``m = sqrt(scale * sum(power))`` (the RMS magnitude of the band, 0.5 for a full-scale sine
    alone in it) and its log-compressed form ``L = ln(1 + log_gain * m)`` (single precision).
    Each envelope is the mean over bands of the positive rise against the loudest of bands
    ``b-1 .. b+1`` of the previous frame::

        env_on[t] = mean_b max(0, L[t, b] - max(L[t-1, b-1 : b+2]))
        env_tp[t] = mean_b max(0, m[t, b] - max(m[t-1, b-1 : b+2]))

    The maximum over neighbouring bands keeps vibrato and glides from reading as onsets
    (S. Böck and G. Widmer, "Maximum filter vibrato suppression for onset detection",
    DAFx 2013). ``env_on`` compares levels (a quiet hi-hat rises like a kick); ``env_tp`` is
    linear in the magnitude, so the tempo follows the loud events. ``env_lv[t] = mean_b m``
    is the frame's level, against which the tempo envelope is judged (:func:`rhythm_push`).

    Parameters
    ----------
    power : float32[batch, n_bins]
        ``|X|^2`` of each frame.
    n_frames : int
        Valid rows of ``power``.
    edges : int64[n_bands + 1]
        Band edges in bins (:func:`kernels.design.onset_bands`).
    scale : float
        ``1 / (sum of the window)^2``: makes ``m`` independent of the FFT size.
    log_gain : float
        ``lambda`` of the log compression (``ONSET_LOG_GAIN``).
    prev_log, prev_lin : float64[n_bands]
        ``L`` and ``m`` of the previous frame (0 before the first frame); updated.
    env_on, env_tp, env_lv : float64[batch]
        Receive the envelopes and the level of the valid frames (nepers per band, magnitude
        per band, magnitude per band).
    """
    nb = edges.shape[0] - 1
    inv_nb = 1.0 / nb
    cur_log = np.empty(nb, dtype=np.float64)
    cur_lin = np.empty(nb, dtype=np.float64)
    arg = np.empty(nb, dtype=np.float32)
    gain = np.float32(log_gain)
    one = np.float32(1.0)
    for j in range(n_frames):
        lv = 0.0
        for b in range(nb):
            t = 0.0
            for k in range(edges[b], edges[b + 1]):
                t += power[j, k]
            m = math.sqrt(max(t, 0.0) * scale)
            cur_lin[b] = m
            lv += m
            arg[b] = one + gain * np.float32(m)
        for b in range(nb):
            # single precision: the logarithm is most of this kernel's cost, and the envelope
            # needs far less than float32's resolution
            cur_log[b] = math.log(arg[b])
        acc_on = 0.0
        acc_tp = 0.0
        for b in range(nb):
            ref_l = prev_log[b]
            ref_m = prev_lin[b]
            if b > 0:
                ref_l = max(ref_l, prev_log[b - 1])
                ref_m = max(ref_m, prev_lin[b - 1])
            if b + 1 < nb:
                ref_l = max(ref_l, prev_log[b + 1])
                ref_m = max(ref_m, prev_lin[b + 1])
            acc_on += max(0.0, cur_log[b] - ref_l)
            acc_tp += max(0.0, cur_lin[b] - ref_m)
        for b in range(nb):
            prev_log[b] = cur_log[b]
            prev_lin[b] = cur_lin[b]
        env_on[j] = acc_on * inv_nb
        env_tp[j] = acc_tp * inv_nb
        env_lv[j] = lv * inv_nb


@njit(cache=CACHE, inline=INLINE)
def _at(ring, i, total):
    """Envelope value of frame ``i``; 0 outside the track."""
    if i < 0 or (total >= 0 and i >= total):
        return 0.0
    return ring[i & (ring.shape[0] - 1)]


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _finish_frame(c, o_ring, t_ring, l_ring, h_ring, e_ring, ri, rf, ac_win, ac_tot, on_new,
                  window, mean_half, pre_max, post_max, pre_avg, post_avg, delta, floor):
    total = ri[R_TOTAL]
    mask = t_ring.shape[0] - 1
    lv = _at(l_ring, c, total)
    rf[RF_LEVEL] += lv * lv
    # tempo: the envelope minus its local mean, into the window's autocorrelation
    s = 0.0
    for j in range(-mean_half, mean_half + 1):
        s += _at(t_ring, c + j, total)
    h = _at(t_ring, c, total) - s / (2 * mean_half + 1)
    h_ring[c & mask] = h
    prev = e_ring[(c - 1) & mask] if c > 0 else 0.0
    e_ring[c & mask] = prev + h * h  # running sum of h^2 (the lagged energies)
    lim = min(ac_win.shape[0] - 1, c)
    for lag in range(lim + 1):
        ac_win[lag] += h * h_ring[(c - lag) & mask]
    # onset: the maximum of frames c-pre_max .. c+post_max (strictly above the earlier ones),
    # at least delta above the mean of frames c-pre_avg .. c+post_avg
    ec = _at(o_ring, c, total)
    is_peak = ec > 0.0
    if is_peak:
        for j in range(1, pre_max + 1):
            if _at(o_ring, c - j, total) >= ec:
                is_peak = False
                break
    if is_peak:
        for j in range(1, post_max + 1):
            if _at(o_ring, c + j, total) > ec:
                is_peak = False
                break
    if is_peak:
        s = 0.0
        for j in range(-pre_avg, post_avg + 1):
            s += _at(o_ring, c + j, total)
        if ec - s / (pre_avg + post_avg + 1) >= delta:
            ri[R_ONSETS] += 1
            n = ri[R_NEW]
            if n < on_new.shape[0]:
                on_new[n] = c
                ri[R_NEW] = n + 1
    if (c + 1) % window == 0:
        _close_window(c, window, e_ring, ri, rf, ac_win, ac_tot, window, floor)


@njit(cache=CACHE, inline=INLINE)
def _cum(e_ring, i):
    """Sum of h^2 over frames 0 .. i (0 for i < 0)."""
    return e_ring[i & (e_ring.shape[0] - 1)] if i >= 0 else 0.0


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _close_window(last, n, e_ring, ri, rf, ac_win, ac_tot, window, floor):
    """Add the window of frames ``last - n + 1 .. last`` to ``ac_tot``: each lag's sum
    divided by the geometric mean of the energies of its two factors (at most 1 in size),
    weighted by the window's share of a full window."""
    first = last - n + 1
    e0 = _cum(e_ring, last) - _cum(e_ring, first - 1)
    # a steady sound's flux is a ripple far below its level: the floor keeps such a window's
    # (perfectly periodic) ripple from counting as a clear pulse
    lo = floor * rf[RF_LEVEL]
    if e0 > 0.0:
        w = n / window
        a = max(e0, lo)
        for lag in range(ac_win.shape[0]):
            el = _cum(e_ring, last - lag) - _cum(e_ring, first - 1 - lag)
            den = math.sqrt(a * max(el, lo))
            if den > 0.0:
                ac_tot[lag] += w * ac_win[lag] / den
        ri[R_WINDOWS] += 1
        rf[RF_WEIGHT] += w
    for lag in range(ac_win.shape[0]):
        ac_win[lag] = 0.0
    rf[RF_LEVEL] = 0.0


@njit(cache=CACHE, error_model=ERROR_MODEL)
def rhythm_push(env_on, env_tp, env_lv, n_frames, o_ring, t_ring, l_ring, h_ring, e_ring, ri, rf,
                ac_win, ac_tot, on_new, window, mean_half, pre_max, post_max, pre_avg, post_avg,
                delta, floor):
    """Append envelope values; finish every frame whose neighbourhood is now complete.

    Frame ``c`` is finished when frame ``c + mean_half`` arrives:

    - tempo: ``h[c] = env_tp[c] - mean(env_tp[c-mean_half .. c+mean_half])`` and
      ``ac_win[l] += h[c] h[c-l]`` for ``l = 0 .. max_lag``; every ``window`` frames the
      window's autocorrelation is added to ``ac_tot`` normalised like a correlation
      coefficient, ``ac_win[l] / sqrt(E_0 E_l)`` with ``E_l = sum_c h[c-l]^2`` over the
      window's frames, each energy at least ``floor * sum_c env_lv[c]^2`` (each window weighs
      the same whatever its loudness; a window whose flux is tiny against its level, a
      sustained sound, weighs little; a partial window weighs its share of a full one);
    - onsets (peak picking after S. Dixon, "Onset detection revisited", DAFx 2006, with the
      parameters of SuperFlux): ``c`` is an onset when ``env_on[c]`` is above
      ``env_on[c-pre_max .. c-1]``, at least ``env_on[c+1 .. c+post_max]``, and at least
      ``delta`` above the mean of ``env_on[c-pre_avg .. c+post_avg]``.

    Parameters
    ----------
    env_on, env_tp, env_lv : float64[batch]
        Onset and tempo envelopes and level of the next ``n_frames`` frames
        (:func:`band_flux`).
    n_frames : int
    o_ring, t_ring, l_ring, h_ring, e_ring : float64[R], R a power of two > window + max lag + 2
        ``env_on``, ``env_tp``, ``env_lv``, ``h`` and the running sum of ``h^2``, frame ``i``
        at ``i & (R - 1)``.
    ri, rf : int64[N_RI], float64[N_RF]
        State slots ``R_*`` (``R_NEW`` is reset to 0 on entry) and ``RF_*``.
    ac_win, ac_tot : float64[max_lag + 1]
        Autocorrelation of the current window, and the sum of the finished windows'
        normalised autocorrelations (``G``).
    on_new : int64[cap], cap >= batch
        Receives the frame index of each onset found by this call (``ri[R_NEW]`` of them).
    window : int
        Frames per analysis window.
    mean_half, pre_max, post_max, pre_avg, post_avg : int, frames
        ``mean_half`` >= ``post_max`` and ``post_avg``.
    delta : float, nepers per band
    floor : float
        ``RHYTHM_FLUX_FLOOR``.
    """
    ri[R_NEW] = 0
    mask = o_ring.shape[0] - 1
    for j in range(n_frames):
        t = ri[R_IN]
        o_ring[t & mask] = env_on[j]
        t_ring[t & mask] = env_tp[j]
        l_ring[t & mask] = env_lv[j]
        ri[R_IN] = t + 1
        c = t - mean_half
        if c >= 0:
            _finish_frame(c, o_ring, t_ring, l_ring, h_ring, e_ring, ri, rf, ac_win, ac_tot,
                          on_new, window, mean_half, pre_max, post_max, pre_avg, post_avg, delta,
                          floor)
            ri[R_DONE] = c + 1


@njit(cache=CACHE, error_model=ERROR_MODEL)
def rhythm_finish(o_ring, t_ring, l_ring, h_ring, e_ring, ri, rf, ac_win, ac_tot, on_new, window,
                  mean_half, pre_max, post_max, pre_avg, post_avg, delta, floor):
    """End of track: finish the last frames (frames past the end count as 0) and close the
    partial analysis window. Parameters as :func:`rhythm_push`."""
    ri[R_NEW] = 0
    ri[R_TOTAL] = ri[R_IN]
    for c in range(ri[R_DONE], ri[R_IN]):
        _finish_frame(c, o_ring, t_ring, l_ring, h_ring, e_ring, ri, rf, ac_win, ac_tot,
                      on_new, window, mean_half, pre_max, post_max, pre_avg, post_avg, delta,
                      floor)
    ri[R_DONE] = ri[R_IN]
    if ri[R_IN] % window != 0:
        _close_window(ri[R_IN] - 1, ri[R_IN] % window, e_ring, ri, rf, ac_win, ac_tot, window,
                      floor)


# --------------------------------------------------------------------------------------------
# At finish: plain numpy on the lag function (max_lag + 1 values)
# --------------------------------------------------------------------------------------------


def _strength(g: np.ndarray, x: float, span: float) -> float:
    """Periodicity at the (fractional) lag ``x``: the sum of the positive part of ``g`` over
    the lags within ``x * (1 +- span)``. A peak's area, not its height: a drifting tempo
    spreads the peak at ``2 x`` over twice as many lags as the one at ``x``, at half the
    height."""
    lo = max(1, int(math.floor(x * (1.0 - span))))
    hi = min(len(g) - 1, int(math.ceil(x * (1.0 + span))))
    if hi < lo:
        return 0.0
    return float(np.sum(np.maximum(g[lo : hi + 1], 0.0)))


def _centroid(g: np.ndarray, period: float, span: float, level: float) -> float:
    """Centre of the peak of ``g`` near ``period``: the ``g``-weighted mean lag of the lags
    within ``period * (1 +- span)`` where ``g`` exceeds ``level`` times their maximum."""
    lo = max(1, int(math.floor(period * (1.0 - span))))
    hi = min(len(g) - 1, int(math.ceil(period * (1.0 + span))))
    if hi <= lo:
        return period
    seg = g[lo : hi + 1]
    top = float(np.max(seg))
    if top <= 0.0:
        return period
    w = np.maximum(seg - level * top, 0.0)
    tot = float(np.sum(w))
    if tot <= 0.0:
        return period
    return float(np.dot(np.arange(lo, hi + 1, dtype=np.float64), w) / tot)


def select_tempo(g: np.ndarray, fps: float, *, min_bpm: float, max_bpm: float,
                 prior_bpm: float, prior_octaves: float, level_octaves: float,
                 peak_span: float, faster_ratio: float, halftime_bpm: float,
                 halftime_ratio: float, refine_span: float, refine_level: float) -> float:
    """Tempo from the summed, window-normalised autocorrelation ``G`` of the tempo envelope.

    1. Start: the peak lag ``l`` of ``G`` (a local maximum, ``G > 0``, tempo within
       ``[min_bpm, max_bpm]``) that maximises ``G(l) * W(l)``, ``W`` a log-Gaussian prior
       around ``prior_bpm`` of ``prior_octaves`` standard deviation (D. Ellis, "Beat tracking
       by dynamic programming", JNMR 2007).
    2. Metrical level: move to ``l / 2`` or ``l / 3`` (the duple or triple subdivision, Ellis'
       TPS2 / TPS3 choice) while the weighted periodicity there reaches ``faster_ratio`` of the
       one at ``l`` and the tempo stays at most ``max_bpm``: a pulse whose subdivision is
       nearly as periodic as itself is a bar or half-bar, not the beat. Periodicity ``S(x)``
       is the area of the positive part of ``G`` within ``x * (1 +- peak_span)``, weighted by
       a flatter log-Gaussian around ``prior_bpm`` (``level_octaves``): a move towards the
       prior needs a little less, a move away from it a little more.
    3. Half-time: a start slower than ``halftime_bpm`` whose quarter-period ``l / 4`` reaches
       ``halftime_ratio`` of ``S(l)`` is a half-time feel (a backbeat once a bar over a busy
       subdivision); the beat is ``l / 2``.
    4. Precision: the centroid of ``G`` above ``refine_level`` of the peak within
       ``l * (1 +- refine_span)`` (a drifting tempo gives a broad peak; its centre is the
       median tempo).

    Parameters
    ----------
    g : float64[max_lag + 1]
        ``G(l)``, see docs/FINGERPRINT.md ("Tempo").
    fps : float, frames per second
    min_bpm, max_bpm, prior_bpm, halftime_bpm : float, BPM
    prior_octaves, level_octaves, peak_span, faster_ratio, halftime_ratio : float
    refine_span, refine_level : float

    Returns
    -------
    float
        Tempo in BPM within ``[min_bpm, max_bpm]``; ``prior_bpm`` when ``G`` has no positive
        peak there.
    """
    n = len(g)
    lag_lo = max(2, int(math.floor(60.0 * fps / max_bpm)))
    lag_hi = min(n - 2, int(math.ceil(60.0 * fps / min_bpm)))
    best = -1
    best_score = 0.0
    for lag in range(lag_lo, lag_hi + 1):
        v = float(g[lag])
        if v <= 0.0 or v < g[lag - 1] or v < g[lag + 1]:
            continue
        bpm = 60.0 * fps / lag
        score = v * math.exp(-0.5 * (math.log2(bpm / prior_bpm) / prior_octaves) ** 2)
        if score > best_score:
            best, best_score = lag, score
    if best < 0:
        return float(prior_bpm)
    period = float(best)

    def level(x: float) -> float:
        w = math.log2(60.0 * fps / x / prior_bpm) / level_octaves
        return _strength(g, x, peak_span) * math.exp(-0.5 * w * w)

    for _ in range(3):
        moved = False
        for k in (2, 3):
            q = period / k
            if q >= 2.0 and 60.0 * fps / q <= max_bpm and level(q) >= faster_ratio * level(period):
                period, moved = q, True
                break
        if not moved:
            break
    if (60.0 * fps / period < halftime_bpm and period / 4.0 >= 2.0
            and 60.0 * fps / (period / 2.0) <= max_bpm
            and _strength(g, period / 4.0, peak_span)
            >= halftime_ratio * _strength(g, period, peak_span)):
        period /= 2.0
    period = _centroid(g, period, refine_span, refine_level)
    bpm = 60.0 * fps / period
    return float(min(max_bpm, max(min_bpm, bpm)))


def pulse_clarity(g: np.ndarray, fps: float, weight: float, *, min_bpm: float,
                  max_bpm: float) -> float:
    """How periodic the tempo envelope is: the largest value of its mean normalised
    autocorrelation over the lags of tempi ``min_bpm .. max_bpm``, in ``[0, 1]``.

    ``G / weight`` is the (length-weighted) mean over analysis windows of each window's
    autocorrelation normalised as a correlation coefficient: 1 at a lag where every window
    repeats exactly (a click track), near 0 for noise. The maximum of the autocorrelation is
    the "pulse clarity" of O. Lartillot, T. Eerola, P. Toiviainen and J. Fornari,
    "Multi-feature modeling of pulse clarity: design, validation and optimization", ISMIR
    2008. It does not depend on which metrical level :func:`select_tempo` picks.

    Parameters
    ----------
    g : float64[max_lag + 1]
        ``G(l)``.
    fps : float, frames per second
    weight : float
        Sum of the weights of the windows summed into ``G`` (``RF_WEIGHT``; 0: no signal,
        clarity 0).
    min_bpm, max_bpm : float, BPM

    Returns
    -------
    float
    """
    if not weight > 0.0:
        return 0.0
    lag_lo = max(1, int(math.floor(60.0 * fps / max_bpm)))
    lag_hi = min(len(g) - 1, int(math.ceil(60.0 * fps / min_bpm)))
    if lag_hi < lag_lo:
        return 0.0
    top = float(np.max(g[lag_lo : lag_hi + 1])) / weight
    return min(1.0, max(0.0, top))
