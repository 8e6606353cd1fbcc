"""Streaming median-filter harmonic/percussive separation (Fitzgerald 2010) for the harmonic ratio.

The separation is of the magnitude spectrogram ``S = |X|`` (librosa's ``hpss(abs(stft))``), run
on power: coarse frames (mean of ``HPSS_TIME_AVG`` power frames, ``S^2`` of the coarse grid)
enter a ring of ``HPSS_TIME_KERNEL`` frames; a coarse frame is finished once the frames it
needs after it have arrived (or at the end of the track, with mirror padding). A median
commutes with the monotone square root, so the medians of power are the magnitude medians
squared, ``Hm^2`` and ``Pm^2``, exactly what the power-2 soft masks need: no square root is
taken. Both medians run as comparator networks across bins (every bin is a lane, so the
min/max pairs vectorise and nothing branches on the data): the harmonic one over the ring's
rows, the percussive one over 31 shifted copies of the frame. Cached ``@njit`` kernels
(options from kernels/_config.py) on caller-allocated state.

D. FitzGerald, "Harmonic/percussive separation using median filtering", DAFx 2010.
K. E. Batcher, "Sorting networks and their applications", AFIPS 1968 (the networks, pruned to
the median by ``design.median_network``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, REASSOC

# int64 state slots
H_GROUP_N = 0  # power frames summed into the current coarse frame
H_PUSHED = 1  # coarse frames pushed into the ring
H_EMITTED = 2  # coarse frames finished
N_H = 3

# float64 accumulator slots
S_H2 = 0
S_P2 = 1
N_S = 2

FREQ_HALF = 15  # (HPSS_FREQ_KERNEL - 1) // 2


@njit(cache=CACHE, fastmath=REASSOC)
def network_median(rows, ops):
    """Run a comparator network down the rows, lane by lane: afterwards each column is
    partially sorted so that the network's output row holds that column's median.

    Parameters
    ----------
    rows : float32[n, lanes]
        One candidate value per row and lane; overwritten.
    ops : int64[n_ops, 2]
        Comparators ``(a, b)``: row a takes the min, row b the max.
    """
    lanes = rows.shape[1]
    for q in range(ops.shape[0]):
        a = rows[ops[q, 0]]
        b = rows[ops[q, 1]]
        for k in range(lanes):
            x = a[k]
            y = b[k]
            a[k] = min(x, y)
            b[k] = max(x, y)


@njit(cache=CACHE)
def mirror(i, n):
    """Index ``i`` folded into ``[0, n)`` by repeated mirroring (scipy.ndimage 'reflect')."""
    period = 2 * n
    m = i % period
    if m < 0:
        m += period
    if m >= n:
        m = period - 1 - m
    return m


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def _masked_energies(s2, harm2, perc2):
    """Energies ``sum H^2``, ``sum P^2`` of one coarse frame's magnitude HPSS, from power.

    ``s2 = S^2`` (coarse power), ``harm2 = Hm^2`` and ``perc2 = Pm^2`` (the medians of power:
    the magnitude medians squared). Soft masks of power 2, ``mH = Hm^2 / (Hm^2 + Pm^2)``,
    ``mP = Pm^2 / (Hm^2 + Pm^2)``; ``H = S mH``, so ``H^2 = s2 mH^2``. Both masks are 0 where
    both medians are 0: librosa's ``softmask`` zeroes them where ``max(Hm, Pm)`` is below
    float32's ``tiny`` (1.2e-38), i.e. where the power medians are below 1.4e-76, which in
    float32 power means exactly 0.
    """
    h2s = 0.0
    p2s = 0.0
    for k in range(s2.shape[0]):
        hh = np.float64(harm2[k])
        pp = np.float64(perc2[k])
        den = hh + pp
        if den > 0.0:
            q = 1.0 / den
            a = hh * q
            b = pp * q
            s = np.float64(s2[k])
            h2s += s * (a * a)
            p2s += s * (b * b)
    return h2s, p2s


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _emit(t, total, ring, time_ops, time_out, freq_ops, freq_out, scratch_t, scratch_f, sums):
    """Finish coarse frame ``t``: harmonic (time) and percussive (frequency) medians of power,
    soft masks with power 2, and the masked magnitudes' energies into ``sums``.
    ``total`` = number of coarse frames, or -1 while the track is still streaming (only the
    start then needs mirroring)."""
    depth = ring.shape[0]
    n_bins = ring.shape[1]
    half = depth // 2
    for j in range(depth):
        i = t - half + j
        if total > 0:
            i = mirror(i, total)
        elif i < 0:
            i = -i - 1
        src = ring[i % depth]
        dst = scratch_t[j]
        for k in range(n_bins):
            dst[k] = src[k]
    network_median(scratch_t, time_ops)
    cur = ring[t % depth]
    width = scratch_f.shape[0]
    fh = width // 2
    # the frame with mirrored edges, then row r = the frame shifted by r - fh
    ext = np.empty(n_bins + 2 * fh, dtype=np.float32)
    for k in range(n_bins):
        ext[fh + k] = cur[k]
    for k in range(fh):
        ext[k] = cur[mirror(k - fh, n_bins)]
        ext[fh + n_bins + k] = cur[mirror(n_bins + k, n_bins)]
    for r in range(width):
        dst = scratch_f[r]
        for k in range(n_bins):
            dst[k] = ext[k + r]
    network_median(scratch_f, freq_ops)
    h2s, p2s = _masked_energies(cur, scratch_t[time_out], scratch_f[freq_out])
    sums[S_H2] += h2s
    sums[S_P2] += p2s


@njit(cache=CACHE, error_model=ERROR_MODEL)
def hpss_push(power, n_frames, avg, group, ring, state, time_ops, time_out, freq_ops, freq_out,
              scratch_t, scratch_f, sums):
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
    ring : float32[depth, n_bins]
        The last ``depth`` (odd: the time kernel) coarse frames, frame ``i`` in row
        ``i % depth``; ``n_bins`` = the bins below ``design.HPSS_FMAX_HZ``.
    state : int64[N_H]
    time_ops, freq_ops : int64[n_ops, 2]
        Median networks for ``depth`` and ``2 * FREQ_HALF + 1`` values
        (``design.median_network``), with their output rows ``time_out``, ``freq_out``.
    scratch_t, scratch_f : float32[depth, n_bins], float32[2 * FREQ_HALF + 1, n_bins]
    sums : float64[N_S]
        Energies ``sum H^2``, ``sum P^2`` of the masked magnitudes (in coarse-power units).
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
            if state[H_PUSHED] > depth // 2:
                _emit(state[H_EMITTED], -1, ring, time_ops, time_out, freq_ops, freq_out,
                      scratch_t, scratch_f, sums)
                state[H_EMITTED] += 1


@njit(cache=CACHE, error_model=ERROR_MODEL)
def hpss_finish(avg, group, ring, state, time_ops, time_out, freq_ops, freq_out, scratch_t,
                scratch_f, sums):
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
        _emit(t, total, ring, time_ops, time_out, freq_ops, freq_out, scratch_t, scratch_f,
              sums)
    state[H_EMITTED] = total
