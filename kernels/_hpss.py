"""Streaming median-filter harmonic/percussive separation (Fitzgerald 2010) for the harmonic ratio.

The separation is of the magnitude spectrogram ``S = |X|`` (librosa's ``hpss(abs(stft))``), run
on power: coarse frames (mean of ``HPSS_TIME_AVG`` power frames, ``S^2`` of the coarse grid)
enter a ring; a coarse frame is finished once the frames its harmonic median needs after it have
arrived (or at the end of the track, with mirror padding). A median commutes with the monotone
square root, so the medians of power are the magnitude medians squared, ``Hm^2`` and ``Pm^2``,
exactly what the power-2 soft masks need: no square root is taken.

Both medians are running medians: a window kept sorted, lane by lane, from which each step
removes the value that leaves and into which it inserts the value that enters
(:func:`slide`, branch-free, so that every lane runs the same instructions and the lanes
vectorise). A median is a selection, not arithmetic: the sorted window's middle row is the very
value any exact method (a sort, a comparator network, ``scipy.ndimage.median_filter``) returns,
bit for bit.

- The harmonic median runs along time with one lane per bin: the window holds the
  ``HPSS_TIME_KERNEL`` coarse frames around the frame being finished; each finished frame
  slides it by one frame.
- The percussive median runs along frequency with one lane per coarse frame: ``LANES`` frames
  at a time, transposed so that a bin of all of them is one contiguous row, slide the window of
  ``HPSS_FREQ_KERNEL`` bins up the spectrum. Its results wait in a second ring until their
  frames' harmonic medians are ready.

A slide costs four operations per window row and lane (a comparison and a select, a max, a
min). Eight lanes take each operation together, and walk the window's rows with the values they
carry from row to row in registers (kernels/_lanes.py), so that every row is read and written
once per slide.

Cached ``@njit`` kernels (options from kernels/_config.py) on caller-allocated state
(:func:`new_state` allocates it).

D. FitzGerald, "Harmonic/percussive separation using median filtering", DAFx 2010.
T. S. Huang, G. J. Yang, G. Y. Tang, "A fast two-dimensional median filtering algorithm",
IEEE Trans. ASSP 27(1), 1979 (a running median updates its window instead of sorting it anew).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, REASSOC
from ._lanes import load8, splat8, store8, vmax8, vmin8, where_lt8
from .errors import ParameterError

# int64 state slots
H_GROUP_N = 0  # power frames summed into the current coarse frame
H_PUSHED = 1  # coarse frames pushed into the ring
H_EMITTED = 2  # coarse frames finished
H_PERC = 3  # coarse frames whose percussive median is done
N_H = 4

# float64 accumulator slots
S_H2 = 0
S_P2 = 1
N_S = 2

#: Coarse frames per percussive batch: the lanes of the frequency median, a multiple of the
#: eight lanes a slide takes at once. A slide's rows are this long: much shorter ones pay a
#: loop's overhead on every row, longer ones only enlarge the rings (``RING`` grows with it).
LANES = 32
#: Rows of the two rings (coarse power, percussive medians): a power of two of at least
#: ``LANES + HPSS_TIME_KERNEL // 2 + 1`` (41 for the 17-frame kernel). At most ``LANES - 1``
#: frames wait for their percussive batch, and the harmonic window of the oldest unfinished frame
#: reaches ``HPSS_TIME_KERNEL // 2 + 1`` frames back (the one it drops): all of them and the
#: frame being pushed must fit.
RING = 64
#: Bins per tile of the percussive batch's transpositions (frames to columns and back): 16
#: float32 are one 64-byte cache line of a frame's row.
TILE = 16


def new_state(n_bins: int, *, time_kernel: int, freq_kernel: int) -> tuple[np.ndarray, ...]:
    """Zeroed state for :func:`hpss_push` / :func:`hpss_finish` on the lowest ``n_bins`` bins.

    Parameters
    ----------
    n_bins : int
        Bins the separation runs on (``design.Params.hpss_bins``).
    time_kernel, freq_kernel : int, keyword-only
        Odd median lengths in coarse frames and bins (``design.HPSS_TIME_KERNEL``,
        ``design.HPSS_FREQ_KERNEL``); ``LANES + time_kernel // 2`` must be below ``RING``.

    Returns
    -------
    tuple of arrays
        ``(group, ring, perc, win_t, ext, win_f, med, state, sums)``, in the order the
        kernels take them after their own leading arguments.
    """
    if time_kernel % 2 != 1 or freq_kernel % 2 != 1:
        raise ParameterError(f"time_kernel={time_kernel}, freq_kernel={freq_kernel}: median "
                             "lengths must be odd (a median of an even count is no selection)")
    if LANES + time_kernel // 2 >= RING:
        raise ParameterError(f"time_kernel={time_kernel} needs more than RING={RING} coarse "
                             f"frames of history; raise RING to a power of two above "
                             f"{LANES + time_kernel // 2}")
    f32 = np.float32
    return (
        np.zeros(n_bins, dtype=np.float64),  # group
        np.zeros((RING, n_bins), dtype=f32),  # ring: coarse power
        np.zeros((RING, n_bins), dtype=f32),  # perc: Pm^2
        np.zeros((time_kernel, n_bins), dtype=f32),  # win_t
        np.zeros((n_bins + freq_kernel - 1, LANES), dtype=f32),  # ext
        np.zeros((freq_kernel, LANES), dtype=f32),  # win_f
        np.zeros((n_bins, LANES), dtype=f32),  # med: the percussive batch's medians
        np.zeros(N_H, dtype=np.int64),  # state
        np.zeros(N_S, dtype=np.float64),  # sums
    )


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


@njit(cache=CACHE)
def fill_inf(win):
    """An empty sorted window: every row +inf (:func:`insert` fills it from the bottom)."""
    inf = np.float32(np.inf)
    for i in range(win.shape[0]):
        for k in range(win.shape[1]):
            win[i, k] = inf


@njit(cache=CACHE)
def insert(win, new):
    """Insert ``new[k]`` into each lane's ascending column ``win[:, k]``; the largest value
    (+inf in a window still being filled) falls off the top.

    Parameters
    ----------
    win : float32[rows, lanes], C-contiguous
        Sorted ascending down each column; updated.
    new : float32[lanes], contiguous

    Notes
    -----
    Row ``i`` becomes ``min(max(w[i-1], new), w[i])`` (``w[-1] = -inf``): the old row below it
    if that is at least ``new``, ``new`` if it falls between, else the old row. Eight lanes at
    a time walk the rows with the row below in registers (kernels/_lanes.py); the lanes left
    over walk them one by one.
    """
    rows = win.shape[0]
    lanes = win.shape[1]
    bottom = np.float32(-np.inf)
    in_eights = lanes - lanes % 8
    for k in range(0, in_eights, 8):
        n = load8(new, k)
        below = splat8(bottom)
        for i in range(rows):
            cur = load8(win[i], k)
            store8(win[i], k, vmin8(vmax8(below, n), cur))
            below = cur
    for k in range(in_eights, lanes):  # scalars: other names than the 8-lane values above
        below1 = bottom
        for i in range(rows):
            cur1 = win[i, k]
            win[i, k] = min(max(below1, new[k]), cur1)
            below1 = cur1


@njit(cache=CACHE)
def slide(win, old, new):
    """Remove ``old[k]`` (present in the lane) from and insert ``new[k]`` into each lane's
    ascending column ``win[:, k]``: the window moves on by one value.

    Parameters
    ----------
    win : float32[rows, lanes], C-contiguous
        Sorted ascending down each column; updated.
    old, new : float32[lanes], contiguous
        The value that leaves each lane's window and the one that enters it.

    Notes
    -----
    With ``t[i] = w[i]`` where ``w[i] < old``, else ``w[i+1]`` (``w[rows] = +inf``: the column
    without the first copy of ``old``), row ``i`` becomes ``min(max(t[i-1], new), t[i])``
    (``t[-1] = -inf``), as in :func:`insert`. Comparisons and selections only: every value is
    one of the window's, unchanged. Eight lanes at a time walk the rows with ``t[i-1]`` and
    ``w[i+1]`` in registers, so each row is read and written once; the lanes left over walk
    them one by one.
    """
    rows = win.shape[0]
    lanes = win.shape[1]
    bottom = np.float32(-np.inf)
    in_eights = lanes - lanes % 8
    for k in range(0, in_eights, 8):
        o = load8(old, k)
        n = load8(new, k)
        below = splat8(bottom)
        cur = load8(win[0], k)
        for i in range(rows - 1):
            up = load8(win[i + 1], k)
            t = where_lt8(cur, o, cur, up)
            store8(win[i], k, vmin8(vmax8(below, n), t))
            below = t
            cur = up
        store8(win[rows - 1], k, vmax8(below, n))
    for k in range(in_eights, lanes):  # scalars: other names than the 8-lane values above
        below1 = bottom
        for i in range(rows - 1):
            cur1 = win[i, k]
            t1 = cur1 if cur1 < old[k] else win[i + 1, k]
            win[i, k] = min(max(below1, new[k]), t1)
            below1 = t1
        win[rows - 1, k] = max(below1, new[k])  # t[rows - 1] = +inf


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


@njit(cache=CACHE)
def _source(i, total):
    """The coarse frame at (possibly mirrored) position ``i``: ``total`` frames in all, or -1
    while the track is still streaming (then only the start is mirrored)."""
    if total > 0:
        return mirror(i, total)
    return -i - 1 if i < 0 else i


@njit(cache=CACHE)
def _percussive(ring, perc, first, count, ext, win, med):
    """Percussive medians (along frequency, mirrored at both ends) of coarse frames
    ``first .. first + count - 1`` (``count <= LANES``) into their rows of ``perc``.

    The frames go into the columns of ``ext`` and their medians come back out of ``med``'s
    in tiles of ``TILE`` bins, so that the rows each tile touches stay in the L1 cache (one
    frame at a time down all its bins, every value of a column lands on a cache line of its
    own)."""
    n_ring = ring.shape[0]
    n_bins = ring.shape[1]
    width = win.shape[0]
    fh = width // 2
    lanes = ext.shape[1]
    for k0 in range(0, n_bins, TILE):
        k1 = min(k0 + TILE, n_bins)
        for lane in range(lanes):
            if lane < count:
                src = ring[(first + lane) % n_ring]
                for k in range(k0, k1):
                    ext[fh + k, lane] = src[k]
            else:  # unused lanes: any finite values will do
                for k in range(k0, k1):
                    ext[fh + k, lane] = 0.0
    for k in range(fh):  # the mirrored ends, from the rows just written
        ext[k] = ext[fh + mirror(k - fh, n_bins)]
        ext[fh + n_bins + k] = ext[fh + mirror(n_bins + k, n_bins)]
    fill_inf(win)
    for e in range(width):
        insert(win, ext[e])
    for k in range(n_bins):
        med[k] = win[fh]
        if k + 1 < n_bins:
            slide(win, ext[k], ext[k + width])
    for k0 in range(0, n_bins, TILE):
        k1 = min(k0 + TILE, n_bins)
        for lane in range(count):
            dst = perc[(first + lane) % n_ring]
            for k in range(k0, k1):
                dst[k] = med[k, lane]


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _emit(t, total, ring, perc, win, sums):
    """Finish coarse frame ``t``: its harmonic median (the time window slid on from frame
    ``t - 1``'s, or filled for ``t = 0``), the soft masks with its percussive median, and the
    masked magnitudes' energies into ``sums``. ``total``: as in :func:`_source`."""
    n_ring = ring.shape[0]
    depth = win.shape[0]
    half = depth // 2
    if t == 0:
        fill_inf(win)
        for j in range(depth):
            insert(win, ring[_source(j - half, total) % n_ring])
    else:
        slide(win, ring[_source(t - 1 - half, total) % n_ring],
              ring[_source(t + half, total) % n_ring])
    h2s, p2s = _masked_energies(ring[t % n_ring], win[half], perc[t % n_ring])
    sums[S_H2] += h2s
    sums[S_P2] += p2s


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _push_coarse(group, ring, state, count):
    """The coarse frame being summed is complete: the mean of its ``count`` power frames enters
    the ring, and the sum starts again."""
    row = ring[state[H_PUSHED] % ring.shape[0]]
    inv = 1.0 / count
    for k in range(ring.shape[1]):
        row[k] = group[k] * inv
        group[k] = 0.0
    state[H_GROUP_N] = 0
    state[H_PUSHED] += 1


@njit(cache=CACHE, error_model=ERROR_MODEL)
def hpss_push(power, n_frames, avg, group, ring, perc, win_t, ext, win_f, med, state,
              sums):
    """Feed power frames; finish every coarse frame whose medians can be known.

    Parameters
    ----------
    power : float32[batch, >= n_bins]
        Power spectra; rows ``[0, n_frames)`` are valid; bins from ``n_bins`` up are ignored.
    n_frames : int
    avg : int
        Power frames per coarse frame.
    group : float64[n_bins]
        Running sum of the current coarse frame.
    ring : float32[RING, n_bins]
        Coarse frames, frame ``i`` in row ``i % RING``; ``n_bins`` = the bins below
        ``design.HPSS_FMAX_HZ``.
    perc : float32[RING, n_bins]
        Percussive medians ``Pm^2``, frame ``i`` in row ``i % RING``.
    win_t : float32[time_kernel, n_bins]
        The sorted harmonic window of the last finished frame.
    ext, win_f, med : float32[n_bins + freq_kernel - 1, LANES], float32[freq_kernel, LANES],
        float32[n_bins, LANES]
        The percussive batch: transposed mirrored frames, its sorted window, its medians.
    state : int64[N_H]
    sums : float64[N_S]
        Energies ``sum H^2``, ``sum P^2`` of the masked magnitudes (in coarse-power units).
    """
    n_bins = ring.shape[1]  # the separation runs on the lowest ``n_bins`` bins only
    half = win_t.shape[0] // 2
    lanes = ext.shape[1]
    for j in range(n_frames):
        for k in range(n_bins):
            group[k] += power[j, k]
        state[H_GROUP_N] += 1
        if state[H_GROUP_N] != avg:
            continue
        _push_coarse(group, ring, state, avg)
        if state[H_PUSHED] - state[H_PERC] == lanes:
            _percussive(ring, perc, state[H_PERC], lanes, ext, win_f, med)
            state[H_PERC] += lanes
        while state[H_EMITTED] < state[H_PERC] and state[H_EMITTED] + half < state[H_PUSHED]:
            _emit(state[H_EMITTED], -1, ring, perc, win_t, sums)
            state[H_EMITTED] += 1


@njit(cache=CACHE, error_model=ERROR_MODEL)
def hpss_finish(avg, group, ring, perc, win_t, ext, win_f, med, state, sums):
    """End of track: push the partial coarse frame (mean of what it has) and finish the rest."""
    lanes = ext.shape[1]
    if state[H_GROUP_N] > 0:
        _push_coarse(group, ring, state, state[H_GROUP_N])
    total = state[H_PUSHED]
    while state[H_PERC] < total:
        count = min(lanes, total - state[H_PERC])
        _percussive(ring, perc, state[H_PERC], count, ext, win_f, med)
        state[H_PERC] += count
    for t in range(state[H_EMITTED], total):
        _emit(t, total, ring, perc, win_t, sums)
    state[H_EMITTED] = total
