"""Onset envelope, onsets, beats and the tempo autocorrelation, streamed frame by frame.

A frame ``c`` is finished ``ONSET_MEAN_HALF`` frames after it arrives (its local mean and peak
test need frames on both sides); at the end of the track the missing frames count as 0.
docs/FINGERPRINT.md ("Rhythm") states the definitions.
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
R_WIN_ONSETS = 3  # onsets in the current analysis window
R_BEATS = 4  # beats so far
R_IBIS = 5  # inter-beat intervals so far
R_TOTAL = 6  # number of frames once known (finish), else -1
N_RI = 7

# float64 state slots
RF_LAST_BEAT = 0  # frame time of the last beat
RF_IBI_MEAN = 1  # Welford over inter-beat intervals (frames)
RF_IBI_M2 = 2
N_RF = 3


@njit(cache=CACHE, error_model=ERROR_MODEL)
def onset_envelope(band_power, n_frames, scale, floor_db, prev_db, env):
    """Spectral-flux onset strength of each frame (mean positive dB rise over bands).

    The rise of band ``b`` is taken against the maximum of bands ``b-1 .. b+1`` of the previous
    frame (S. Böck and G. Widmer, "Maximum filter vibrato suppression for onset detection",
    DAFx 2013).

    Parameters
    ----------
    band_power : float32[batch, n_bands]
        Power per third-octave band (``power @ bands``).
    n_frames : int
    scale : float
        Multiplies band power before the dB conversion (``1 / (sum of window)^2``).
    floor_db : float, dB
    prev_db : float64[n_bands]
        The previous frame's band levels (the floor before the first frame); updated.
    env : float64[batch]
        Receives the envelope value of each valid frame, in dB.
    """
    nb = band_power.shape[1]
    floor_lin = 10.0 ** (floor_db / 10.0)
    cur = np.empty(nb, dtype=np.float64)
    for j in range(n_frames):
        for b in range(nb):
            p = band_power[j, b] * scale
            cur[b] = 10.0 * math.log10(p) if p > floor_lin else floor_db
        acc = 0.0
        for b in range(nb):
            # SuperFlux: compare with the loudest neighbouring band of the previous frame, so
            # that a tone gliding into the next band is not an onset
            ref = prev_db[b]
            if b > 0 and prev_db[b - 1] > ref:
                ref = prev_db[b - 1]
            if b + 1 < nb and prev_db[b + 1] > ref:
                ref = prev_db[b + 1]
            rise = cur[b] - ref
            if rise > 0.0:
                acc += rise
        for b in range(nb):
            prev_db[b] = cur[b]
        env[j] = acc / nb


@njit(cache=CACHE, inline=INLINE)
def _at(ring, i, total):
    """Envelope value of frame ``i``; 0 outside the track."""
    if i < 0 or (total >= 0 and i >= total):
        return 0.0
    return ring[i & (ring.shape[0] - 1)]


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _finish_frame(c, e_ring, h_ring, ri, rf, ac_win, ac_tot, on_t, on_s, window, mean_half,
                  peak_half, delta_db, beat_ratio):
    total = ri[R_TOTAL]
    mask = e_ring.shape[0] - 1
    s = 0.0
    for j in range(-mean_half, mean_half + 1):
        s += _at(e_ring, c + j, total)
    mean = s / (2 * mean_half + 1)
    ec = _at(e_ring, c, total)
    h = ec - mean
    h_ring[c & mask] = h
    max_lag = ac_win.shape[0] - 1
    lim = min(max_lag, c)
    for lag in range(lim + 1):
        ac_win[lag] += h * h_ring[(c - lag) & mask]
    # onset: strict maximum over the frames before, >= those after, above the local mean
    is_peak = ec >= mean + delta_db
    if is_peak:
        for j in range(1, peak_half + 1):
            if _at(e_ring, c - j, total) >= ec or _at(e_ring, c + j, total) > ec:
                is_peak = False
                break
    if is_peak:
        ri[R_ONSETS] += 1
        a = _at(e_ring, c - 1, total)
        b = _at(e_ring, c + 1, total)
        den = a - 2.0 * ec + b
        off = 0.5 * (a - b) / den if den < 0.0 else 0.0
        off = min(0.5, max(-0.5, off))
        n = ri[R_WIN_ONSETS]
        on_t[n] = c + off
        # strength = the rise over the peak frame and its neighbours: a hit that straddles two
        # frames splits its rise between them, and the sum does not depend on where it falls
        on_s[n] = a + ec + b
        ri[R_WIN_ONSETS] = n + 1
    if (c + 1) % window == 0:
        _close_window(ri, rf, ac_win, ac_tot, on_t, on_s, beat_ratio)


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _close_window(ri, rf, ac_win, ac_tot, on_t, on_s, beat_ratio):
    if ac_win[0] > 0.0:
        inv = 1.0 / ac_win[0]
        for lag in range(ac_win.shape[0]):
            ac_tot[lag] += ac_win[lag] * inv
    for lag in range(ac_win.shape[0]):
        ac_win[lag] = 0.0
    n = ri[R_WIN_ONSETS]
    strongest = 0.0
    for i in range(n):
        strongest = max(strongest, on_s[i])
    thr = beat_ratio * strongest
    for i in range(n):
        if on_s[i] < thr:
            continue
        t = on_t[i]
        if ri[R_BEATS] > 0:
            ibi = t - rf[RF_LAST_BEAT]
            k = ri[R_IBIS] + 1
            ri[R_IBIS] = k
            d = ibi - rf[RF_IBI_MEAN]
            rf[RF_IBI_MEAN] += d / k
            rf[RF_IBI_M2] += d * (ibi - rf[RF_IBI_MEAN])
        rf[RF_LAST_BEAT] = t
        ri[R_BEATS] += 1
    ri[R_WIN_ONSETS] = 0


@njit(cache=CACHE, error_model=ERROR_MODEL)
def rhythm_push(env, n_frames, e_ring, h_ring, ri, rf, ac_win, ac_tot, on_t, on_s, window,
                mean_half, peak_half, delta_db, beat_ratio):
    """Append envelope values; finish every frame whose neighbourhood is now complete.

    Parameters
    ----------
    env : float64[batch]
        Envelope values (dB) of the next ``n_frames`` frames.
    e_ring, h_ring : float64[R], R a power of two > max lag + 2 * mean_half
        The envelope and its local-mean-removed version, frame ``i`` at ``i & (R - 1)``.
    ri, rf : int64[N_RI], float64[N_RF]
        State slots ``R_*`` / ``RF_*``.
    ac_win, ac_tot : float64[max_lag + 1]
        Autocorrelation of the current analysis window, and the sum of finished windows'
        autocorrelations each normalised by its lag-0 value.
    on_t, on_s : float64[cap]
        Onset times (frames) and strengths of the current window.
    window : int
        Frames per analysis window.
    mean_half, peak_half : int
        Half-widths of the local mean and of the peak test.
    delta_db : float
        Margin above the local mean for an onset.
    beat_ratio : float
        A window's beats are its onsets of at least this share of its strongest one.
    """
    mask = e_ring.shape[0] - 1
    for j in range(n_frames):
        t = ri[R_IN]
        e_ring[t & mask] = env[j]
        ri[R_IN] = t + 1
        c = t - mean_half
        if c >= 0:
            _finish_frame(c, e_ring, h_ring, ri, rf, ac_win, ac_tot, on_t, on_s, window,
                          mean_half, peak_half, delta_db, beat_ratio)
            ri[R_DONE] = c + 1


@njit(cache=CACHE, error_model=ERROR_MODEL)
def rhythm_finish(e_ring, h_ring, ri, rf, ac_win, ac_tot, on_t, on_s, window, mean_half,
                  peak_half, delta_db, beat_ratio):
    """End of track: finish the last frames (frames past the end count as 0) and close the
    partial analysis window."""
    ri[R_TOTAL] = ri[R_IN]
    for c in range(ri[R_DONE], ri[R_IN]):
        _finish_frame(c, e_ring, h_ring, ri, rf, ac_win, ac_tot, on_t, on_s, window,
                      mean_half, peak_half, delta_db, beat_ratio)
    ri[R_DONE] = ri[R_IN]
    if ri[R_IN] % window != 0:
        _close_window(ri, rf, ac_win, ac_tot, on_t, on_s, beat_ratio)


def _local_peak(g: np.ndarray, centre: float, radius: int) -> int:
    """Index of the largest value of ``g`` within ``radius`` of ``centre``."""
    lo = max(1, int(math.floor(centre)) - radius)
    hi = min(len(g) - 2, int(math.ceil(centre)) + radius)
    if hi < lo:
        return min(max(int(round(centre)), 0), len(g) - 1)
    return lo + int(np.argmax(g[lo : hi + 1]))


def select_tempo(g: np.ndarray, fps: float, *, min_bpm: float, max_bpm: float,
                 prior_bpm: float, tap_max_bpm: float, octave_ratio: float) -> float:
    """Tempo from the summed, window-normalised onset autocorrelation.

    Parameters
    ----------
    g : float64[max_lag + 1]
        ``G(l)``, see docs/FINGERPRINT.md ("Tempo").
    fps : float, frames per second
    min_bpm, max_bpm, prior_bpm, tap_max_bpm : float, BPM
    octave_ratio : float
        A faster octave replaces the start lag when its peak reaches this share of it.

    Returns
    -------
    float : BPM in ``[min_bpm, max_bpm]``; ``prior_bpm`` when ``G`` has no positive peak.
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
        score = v * math.exp(-0.5 * math.log2(bpm / prior_bpm) ** 2)
        if score > best_score:
            best, best_score = lag, score
    if best < 0:
        return float(prior_bpm)
    est = float(best)
    for k in (4, 3, 2):  # shortest faster octave first
        cand = best / k
        if 60.0 * fps / cand > tap_max_bpm or cand < 2:
            continue
        p = _local_peak(g, cand, 2)
        if g[p] >= octave_ratio * g[best] and g[p] > 0.0:
            est = float(p)
            break
    # refine on multiples 2, 4, 8 ... of the period while they fit in the autocorrelation:
    # a peak at m periods gives the period m times more precisely
    m = 1
    while True:
        p = _local_peak(g, m * est, 2)
        ga, gb, gc = float(g[p - 1]), float(g[p]), float(g[p + 1])
        den = ga - 2.0 * gb + gc
        off = 0.5 * (ga - gc) / den if den < 0.0 else 0.0
        est = (p + min(0.5, max(-0.5, off))) / m
        if 2 * m * est + 3 > n - 2:
            break
        m *= 2
    refined = est
    bpm = 60.0 * fps / refined
    return float(min(max_bpm, max(min_bpm, bpm)))
