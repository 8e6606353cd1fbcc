"""Streaming median-filter harmonic/percussive separation (Fitzgerald 2010) for the harmonic ratio.

Coarse frames (mean of ``HPSS_TIME_AVG`` power frames) enter a ring of ``HPSS_TIME_KERNEL``
frames; a coarse frame is finished once the frames it needs after it have arrived (or at the
end of the track, with mirror padding). ``@njit(cache=True)`` kernels on caller-allocated state.

D. FitzGerald, "Harmonic/percussive separation using median filtering", DAFx 2010.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# int64 state slots
H_GROUP_N = 0  # power frames summed into the current coarse frame
H_PUSHED = 1  # coarse frames pushed into the ring
H_EMITTED = 2  # coarse frames finished
N_H = 3

# float64 accumulator slots
S_H2 = 0
S_P2 = 1
N_S = 2

TIME_HALF = 4  # (HPSS_TIME_KERNEL - 1) // 2
FREQ_HALF = 15  # (HPSS_FREQ_KERNEL - 1) // 2


@njit(cache=True, inline="always")
def _sort2(a, b):
    return min(a, b), max(a, b)


@njit(cache=True)
def median9(p0, p1, p2, p3, p4, p5, p6, p7, p8):
    """Exact median of nine values: a 19-exchange network (sort rows of three, then the median
    of max-of-mins, median-of-medians and min-of-maxes)."""
    p1, p2 = _sort2(p1, p2)
    p4, p5 = _sort2(p4, p5)
    p7, p8 = _sort2(p7, p8)
    p0, p1 = _sort2(p0, p1)
    p3, p4 = _sort2(p3, p4)
    p6, p7 = _sort2(p6, p7)
    p1, p2 = _sort2(p1, p2)
    p4, p5 = _sort2(p4, p5)
    p7, p8 = _sort2(p7, p8)
    p0, p3 = _sort2(p0, p3)
    p5, p8 = _sort2(p5, p8)
    p4, p7 = _sort2(p4, p7)
    p3, p6 = _sort2(p3, p6)
    p1, p4 = _sort2(p1, p4)
    p2, p5 = _sort2(p2, p5)
    p4, p7 = _sort2(p4, p7)
    p4, p2 = _sort2(p4, p2)
    p6, p4 = _sort2(p6, p4)
    p4, p2 = _sort2(p4, p2)
    return p4


@njit(cache=True)
def _median9_rows(a0, a1, a2, a3, a4, a5, a6, a7, a8, out):
    """Element-wise median of nine rows (one row per argument keeps the loads contiguous, so
    the loop vectorises)."""
    for k in range(out.shape[0]):
        out[k] = median9(a0[k], a1[k], a2[k], a3[k], a4[k], a5[k], a6[k], a7[k], a8[k])


@njit(cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"}, error_model="numpy")
def _masked_energies(s, harm, perc):
    """Sums of ``(s mH)^2`` and ``(s mP)^2`` with soft masks of power 2,
    ``mH = Hm^2 / (Hm^2 + Pm^2)``; both masks are 0 where both medians are below the float32
    ``tiny`` (as librosa's ``softmask``)."""
    tiny = 1.1754943508222875e-38
    h2s = 0.0
    p2s = 0.0
    for k in range(s.shape[0]):
        h = np.float64(harm[k])
        p = np.float64(perc[k])
        hh = h * h
        pp = p * p
        den = hh + pp
        if max(h, p) >= tiny and den > 0.0:
            q = np.float64(s[k]) / den
            a = q * hh
            b = q * pp
            h2s += a * a
            p2s += b * b
    return h2s, p2s


@njit(cache=True)
def mirror(i, n):
    """Index ``i`` folded into ``[0, n)`` by repeated mirroring (scipy.ndimage 'reflect')."""
    period = 2 * n
    m = i % period
    if m < 0:
        m += period
    if m >= n:
        m = period - 1 - m
    return m


@njit(cache=True)
def _sliding_median(ext, n_out, width, win, out):
    """Running median of ``width`` (odd) values over ``ext``: ``out[k] = median(ext[k:k+width])``.

    A sorted window is kept; each step removes the leaving value and inserts the entering one
    with one shift of the elements between them.
    """
    for i in range(width):  # insertion sort of the first window
        v = ext[i]
        j = i
        while j > 0 and win[j - 1] > v:
            win[j] = win[j - 1]
            j -= 1
        win[j] = v
    half = width // 2
    out[0] = win[half]
    for k in range(1, n_out):
        old = ext[k - 1]
        new = ext[k - 1 + width]
        if new != old:
            # position of ``old`` (binary search; any equal copy will do)
            lo = 0
            hi = width - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if win[mid] < old:
                    lo = mid + 1
                else:
                    hi = mid
            p = lo
            if new > old:
                while p + 1 < width and win[p + 1] < new:
                    win[p] = win[p + 1]
                    p += 1
            else:
                while p > 0 and win[p - 1] > new:
                    win[p] = win[p - 1]
                    p -= 1
            win[p] = new
        out[k] = win[half]


@njit(cache=True, error_model="numpy")
def _emit(t, total, ring, ext, win, harm, perc, sums):
    """Finish coarse frame ``t``: harmonic (time) and percussive (frequency) medians, soft masks
    with power 2, and the masked energies into ``sums``. ``total`` = number of coarse frames, or
    -1 while the track is still streaming (only the start then needs mirroring)."""
    depth = ring.shape[0]
    n_bins = ring.shape[1]
    r = np.empty(9, dtype=np.int64)
    for j in range(9):
        i = t - TIME_HALF + j
        if total > 0:
            i = mirror(i, total)
        elif i < 0:
            i = -i - 1
        r[j] = i % depth
    _median9_rows(ring[r[0]], ring[r[1]], ring[r[2]], ring[r[3]], ring[r[4]], ring[r[5]],
                  ring[r[6]], ring[r[7]], ring[r[8]], harm)
    cur = ring[t % depth]
    width = 2 * FREQ_HALF + 1
    for i in range(n_bins):
        ext[FREQ_HALF + i] = cur[i]
    for i in range(FREQ_HALF):
        ext[i] = cur[mirror(i - FREQ_HALF, n_bins)]
        ext[FREQ_HALF + n_bins + i] = cur[mirror(n_bins + i, n_bins)]
    _sliding_median(ext, n_bins, width, win, perc)
    h2s, p2s = _masked_energies(cur, harm, perc)
    sums[S_H2] += h2s
    sums[S_P2] += p2s


@njit(cache=True, error_model="numpy")
def hpss_push(power, n_frames, avg, group, ring, state, ext, win, harm, perc, sums):
    """Feed power frames; finish every coarse frame whose time neighbourhood is complete.

    Parameters
    ----------
    power : float32[batch, >= n_bins]
        Power spectra; rows ``[0, n_frames)`` are valid; bins from ``n_bins`` up are ignored.
    n_frames : int
    avg : int
        Power frames per coarse frame.
    group : float64[n_bins]
        Running sum of the current coarse frame.
    ring : float32[9, n_bins]
        The last coarse frames, frame ``i`` in row ``i % 9``; ``n_bins`` = bins below 8 kHz.
    state : int64[N_H]
    ext, win, harm, perc : float32 scratch, ``n_bins + 30``, ``31``, ``n_bins``, ``n_bins``
    sums : float64[N_S]
        Sums of squared harmonic and percussive (masked) power.
    """
    n_bins = ring.shape[1]  # the separation runs on the lowest ``n_bins`` bins only
    depth = ring.shape[0]
    for j in range(n_frames):
        for k in range(n_bins):
            group[k] += power[j, k]
        state[H_GROUP_N] += 1
        if state[H_GROUP_N] == avg:
            row = ring[state[H_PUSHED] % depth]
            inv = 1.0 / avg
            for k in range(n_bins):
                row[k] = group[k] * inv
                group[k] = 0.0
            state[H_GROUP_N] = 0
            state[H_PUSHED] += 1
            if state[H_PUSHED] > TIME_HALF:
                _emit(state[H_EMITTED], -1, ring, ext, win, harm, perc, sums)
                state[H_EMITTED] += 1


@njit(cache=True, error_model="numpy")
def hpss_finish(avg, group, ring, state, ext, win, harm, perc, sums):
    """End of track: push the partial coarse frame (mean of what it has) and finish the rest."""
    n_bins = ring.shape[1]
    depth = ring.shape[0]
    g = state[H_GROUP_N]
    if g > 0:
        row = ring[state[H_PUSHED] % depth]
        inv = 1.0 / g
        for k in range(n_bins):
            row[k] = group[k] * inv
            group[k] = 0.0
        state[H_GROUP_N] = 0
        state[H_PUSHED] += 1
    total = state[H_PUSHED]
    for t in range(state[H_EMITTED], total):
        _emit(t, total, ring, ext, win, harm, perc, sums)
    state[H_EMITTED] = total
