"""Per-sample kernels: mono mix-down, sample statistics, K-weighting and loudness blocks.

Every function here is a cached ``@njit`` kernel (options from kernels/_config.py) over
caller-allocated arrays, single-threaded, with no validation and no I/O (the analyzer
validates). State lives in small float64 / int64 arrays whose slots are named by the module
constants below, so that a chunk of any length continues exactly where the previous one
stopped.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, INLINE, REASSOC

# --- float64 state slots (``fs``) -------------------------------------------------------------
F_SUMSQ = 0  # sum of x^2, all samples, all channels
F_PEAK = 1  # max |x|, all samples, all channels
F_LL = 2  # sum (L - L0)^2   (shifted sums for the Pearson correlation)
F_RR = 3  # sum (R - R0)^2
F_LR = 4  # sum (L - L0)(R - R0)
F_L = 5  # sum (L - L0)
F_R = 6  # sum (R - R0)
F_L0 = 7
F_R0 = 8
F_SEC_MONO = 9  # current second: sum mono^2
F_SEC_ALL = 10  # current second: sum x^2 over channels
F_SEC_PEAK = 11  # current second: max |x| over channels
F_CREST_MEAN = 12  # Welford over active seconds: crest factor (dB)
F_CREST_M2 = 13
F_PEAK_MEAN = 14  # Welford over active seconds: sample peak
F_PEAK_M2 = 15
F_LOUD_SUM = 16  # sum of block energies passing the absolute gate
F_ST_SUM = 17  # sum of short-term energies passing the absolute gate
N_F = 18

# --- int64 state slots (``is_``) --------------------------------------------------------------
I_N = 0  # samples seen
I_NONFINITE = 1  # NaN / inf samples seen
I_DIFFER = 2  # 1 once L != R somewhere
I_SEC_INDEX = 3  # index of the current second
I_SEC_FILL = 4  # samples in the current second so far
I_ACTIVE_SECONDS = 5
I_SUB_INDEX = 6  # index of the current 100 ms sub-block
I_SUB_END = 7  # global sample index where it ends
I_SUBS_DONE = 8  # completed sub-blocks
I_LOUD_N = 9  # blocks passing the absolute gate
I_ST_N = 10  # short-term windows passing the absolute gate
N_I = 11

SUB_RING = 32  # >= 30 sub-blocks of a 3 s short-term window


@njit(cache=CACHE)
def _hist_add(counts, energies, value_lufs, energy, lo, step):
    n = counts.shape[0]
    b = int((value_lufs - lo) / step)
    if b >= n:
        b = n - 1
    counts[b] += 1
    energies[b] += energy


@njit(cache=CACHE, inline=INLINE)
def _add_segment(fs, is_, sumsq, peak, sec_mono, sll, srr, slr, sl, sr_, differ, nonfinite):
    """Fold one segment's sums into the running state."""
    fs[F_SUMSQ] += sumsq
    fs[F_SEC_ALL] += sumsq
    fs[F_PEAK] = max(fs[F_PEAK], peak)
    fs[F_SEC_PEAK] = max(fs[F_SEC_PEAK], peak)
    fs[F_SEC_MONO] += sec_mono
    fs[F_LL] += sll
    fs[F_RR] += srr
    fs[F_LR] += slr
    fs[F_L] += sl
    fs[F_R] += sr_
    if differ:
        is_[I_DIFFER] = 1
    is_[I_NONFINITE] += nonfinite


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def _segment_stats_stereo(x, a, b, mono_out, fs, is_):
    """:func:`_segment_stats` for two channels, written out so that it vectorises."""
    l0 = fs[F_L0]
    r0 = fs[F_R0]
    sumsq = 0.0
    peak = np.float32(0.0)
    sec_mono = 0.0
    sll = 0.0
    srr = 0.0
    slr = 0.0
    sl = 0.0
    sr_ = 0.0
    differ = 0
    nonfinite = 0
    for i in range(a, b):
        lf = x[i, 0]
        rf = x[i, 1]
        nonfinite += (lf - lf != 0.0) + (rf - rf != 0.0)
        peak = max(peak, max(abs(lf), abs(rf)))
        differ += lf != rf
        lv = np.float64(lf)
        rv = np.float64(rf)
        sumsq += lv * lv + rv * rv
        m = (lv + rv) * 0.5
        mono_out[i] = m
        sec_mono += m * m
        dl = lv - l0
        dr = rv - r0
        sll += dl * dl
        srr += dr * dr
        slr += dl * dr
        sl += dl
        sr_ += dr
    _add_segment(fs, is_, sumsq, np.float64(peak), sec_mono, sll, srr, slr, sl, sr_, differ,
                 nonfinite)


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def _segment_stats(x, a, b, mono_out, fs, is_, inv_ch):
    """Statistics of samples ``a .. b-1`` of the chunk (no boundary inside): mono, sums of
    squares, peaks, the shifted stereo sums and the L != R / non-finite counts."""
    ch = x.shape[1]
    if ch == 2:
        _segment_stats_stereo(x, a, b, mono_out, fs, is_)
        return
    r_idx = 1 if ch > 1 else 0
    l0 = fs[F_L0]
    r0 = fs[F_R0]
    sumsq = 0.0
    peak = 0.0
    sec_mono = 0.0
    sll = 0.0
    srr = 0.0
    slr = 0.0
    sl = 0.0
    sr_ = 0.0
    differ = 0
    nonfinite = 0
    for i in range(a, b):
        acc = 0.0
        for c in range(ch):
            v = np.float64(x[i, c])
            nonfinite += v - v != 0.0
            acc += v
            sumsq += v * v
            peak = max(peak, abs(v))
        m = acc * inv_ch
        mono_out[i] = m
        sec_mono += m * m
        lv = np.float64(x[i, 0])
        rv = np.float64(x[i, r_idx])
        differ += lv != rv
        dl = lv - l0
        dr = rv - r0
        sll += dl * dl
        srr += dr * dr
        slr += dl * dr
        sl += dl
        sr_ += dr
    _add_segment(fs, is_, sumsq, peak, sec_mono, sll, srr, slr, sl, sr_, differ, nonfinite)


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _k_energy(x, a, b, kw, gains, kstate):
    """Weighted energy of the K-weighted samples ``a .. b-1``, all channels; filter states carry
    over. Channels run two at a time so that the two recursions overlap in the CPU."""
    ch = x.shape[1]
    b10, b11, b12, a11, a12 = kw[0, 0], kw[0, 1], kw[0, 2], kw[0, 3], kw[0, 4]
    b20, b21, b22, a21, a22 = kw[1, 0], kw[1, 1], kw[1, 2], kw[1, 3], kw[1, 4]
    total = 0.0
    c = 0
    while c < ch:
        if c + 1 < ch:
            p0, p1, p2, p3 = kstate[c, 0], kstate[c, 1], kstate[c, 2], kstate[c, 3]
            q0, q1, q2, q3 = kstate[c + 1, 0], kstate[c + 1, 1], kstate[c + 1, 2], kstate[c + 1, 3]
            ep = 0.0
            eq = 0.0
            for i in range(a, b):
                v = np.float64(x[i, c])
                w = np.float64(x[i, c + 1])
                y = b10 * v + p0
                p0 = b11 * v - a11 * y + p1
                p1 = b12 * v - a12 * y
                z = b20 * y + p2
                p2 = b21 * y - a21 * z + p3
                p3 = b22 * y - a22 * z
                ep += z * z
                y = b10 * w + q0
                q0 = b11 * w - a11 * y + q1
                q1 = b12 * w - a12 * y
                z = b20 * y + q2
                q2 = b21 * y - a21 * z + q3
                q3 = b22 * y - a22 * z
                eq += z * z
            kstate[c, 0], kstate[c, 1], kstate[c, 2], kstate[c, 3] = p0, p1, p2, p3
            kstate[c + 1, 0], kstate[c + 1, 1] = q0, q1
            kstate[c + 1, 2], kstate[c + 1, 3] = q2, q3
            total += gains[c] * ep + gains[c + 1] * eq
            c += 2
        else:
            p0, p1, p2, p3 = kstate[c, 0], kstate[c, 1], kstate[c, 2], kstate[c, 3]
            ep = 0.0
            for i in range(a, b):
                v = np.float64(x[i, c])
                y = b10 * v + p0
                p0 = b11 * v - a11 * y + p1
                p1 = b12 * v - a12 * y
                z = b20 * y + p2
                p2 = b21 * y - a21 * z + p3
                p3 = b22 * y - a22 * z
                ep += z * z
            kstate[c, 0], kstate[c, 1], kstate[c, 2], kstate[c, 3] = p0, p1, p2, p3
            total += gains[c] * ep
            c += 1
    return total


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _close_sub_block(sub_sums, sub_lens, fs, is_, sample_rate, loud_counts, loud_energy,
                     st_counts, st_energy, hist_lo, hist_step):
    """A 100 ms sub-block is complete: emit the 400 ms block and the 3 s window ending here."""
    ring = sub_sums.shape[0]
    done = is_[I_SUBS_DONE] + 1
    is_[I_SUBS_DONE] = done
    for width, counts, energies, n_slot, sum_slot in ((4, loud_counts, loud_energy, I_LOUD_N,
                                                       F_LOUD_SUM),
                                                      (30, st_counts, st_energy, I_ST_N,
                                                       F_ST_SUM)):
        if done >= width:
            tot = 0.0
            ln = 0
            for j in range(width):
                k = (done - 1 - j) % ring
                tot += sub_sums[k]
                ln += sub_lens[k]
            z = tot / ln
            if z > 0.0:
                lufs = -0.691 + 10.0 * math.log10(z)
                if lufs >= hist_lo:
                    _hist_add(counts, energies, lufs, z, hist_lo, hist_step)
                    is_[n_slot] += 1
                    fs[sum_slot] += z
    cur = done % ring
    sub_sums[cur] = 0.0
    sub_lens[cur] = 0
    is_[I_SUB_INDEX] += 1
    is_[I_SUB_END] = ((is_[I_SUB_INDEX] + 1) * sample_rate) // 10


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _close_second(fs, is_, sample_rate, channels):
    """A whole second is complete: if active, its crest factor and peak enter the statistics."""
    rms_mono = math.sqrt(fs[F_SEC_MONO] / sample_rate)
    if rms_mono >= 1e-3:
        is_[I_ACTIVE_SECONDS] += 1
        k = is_[I_ACTIVE_SECONDS]
        peak = fs[F_SEC_PEAK]
        rms_all = math.sqrt(fs[F_SEC_ALL] / (sample_rate * channels))
        crest = 20.0 * math.log10(peak / rms_all)
        d = crest - fs[F_CREST_MEAN]
        fs[F_CREST_MEAN] += d / k
        fs[F_CREST_M2] += d * (crest - fs[F_CREST_MEAN])
        d = peak - fs[F_PEAK_MEAN]
        fs[F_PEAK_MEAN] += d / k
        fs[F_PEAK_M2] += d * (peak - fs[F_PEAK_MEAN])
    is_[I_SEC_INDEX] += 1
    is_[I_SEC_FILL] = 0
    fs[F_SEC_MONO] = 0.0
    fs[F_SEC_ALL] = 0.0
    fs[F_SEC_PEAK] = 0.0


@njit(cache=CACHE, error_model=ERROR_MODEL)
def sample_pass(x, mono_out, kw, gains, kstate, sub_sums, sub_lens, fs, is_, sample_rate,
                loud_counts, loud_energy, st_counts, st_energy, hist_lo, hist_step):
    """Consume one chunk of PCM: statistics, mono mix-down, K-weighted loudness blocks.

    The chunk is cut at every 100 ms sub-block and whole-second boundary; between two cuts the
    statistics are plain (vectorised) sums and the K-weighting a tight recursion.

    Parameters
    ----------
    x : float32[n, channels]
        The chunk, in stream order.
    mono_out : float32[n]
        Receives the channel mean of each sample.
    kw : float64[2, 5]
        K-weighting biquads (``b0 b1 b2 a1 a2`` each), see ``design.k_weighting``.
    gains : float64[channels]
        BS.1770 channel weights.
    kstate : float64[channels, 4]
        Transposed direct-form II states of the two biquads, per channel.
    sub_sums, sub_lens : float64[SUB_RING], int64[SUB_RING]
        Ring of weighted K-filtered energies and lengths of 100 ms sub-blocks; slot
        ``completed % SUB_RING`` is the one being filled.
    fs, is_ : float64[N_F], int64[N_I]
        Running state, slots named ``F_*`` and ``I_*``.
    sample_rate : int
    loud_counts, loud_energy, st_counts, st_energy : int64[nh], float64[nh]
        Histograms of 400 ms block and 3 s short-term loudness (``hist_lo + i * hist_step``
        LUFS): count and summed energy per bin.
    """
    n = x.shape[0]
    ch = x.shape[1]
    inv_ch = 1.0 / ch
    if is_[I_N] == 0 and n > 0:
        fs[F_L0] = x[0, 0]
        fs[F_R0] = x[0, 1 if ch > 1 else 0]
    ring = sub_sums.shape[0]
    i = 0
    while i < n:
        g = is_[I_N]
        to_sub = is_[I_SUB_END] - g
        to_sec = sample_rate - is_[I_SEC_FILL]
        stop = min(n, i + min(to_sub, to_sec))
        _segment_stats(x, i, stop, mono_out, fs, is_, inv_ch)
        cur = is_[I_SUBS_DONE] % ring
        sub_sums[cur] += _k_energy(x, i, stop, kw, gains, kstate)
        sub_lens[cur] += stop - i
        m = stop - i
        is_[I_N] = g + m
        is_[I_SEC_FILL] += m
        if is_[I_N] == is_[I_SUB_END]:
            _close_sub_block(sub_sums, sub_lens, fs, is_, sample_rate, loud_counts,
                             loud_energy, st_counts, st_energy, hist_lo, hist_step)
        if is_[I_SEC_FILL] == sample_rate:
            _close_second(fs, is_, sample_rate, ch)
        i = stop


@njit(cache=CACHE)
def _rank_value(counts, lo, step, rank):
    seen = 0
    for i in range(counts.shape[0]):
        seen += counts[i]
        if seen > rank:
            return lo + (i + 0.5) * step
    return lo + (counts.shape[0] - 0.5) * step


@njit(cache=CACHE)
def hist_percentile(counts, lo, step, q):
    """Percentile ``q`` (0..100) of a histogram, linear between order statistics.

    Parameters
    ----------
    counts : int64[nh]
        Samples per bin; bin ``i`` stands for the value ``lo + (i + 0.5) * step``.
    lo, step : float, LUFS
    q : float, percent

    Returns
    -------
    float : the value at rank ``q / 100 * (n - 1)`` among the ``n`` binned samples, linear
        between the two neighbouring ranks (numpy's default); 0 for an empty histogram.
    """
    n = 0
    for i in range(counts.shape[0]):
        n += counts[i]
    if n == 0:
        return 0.0
    r = q / 100.0 * (n - 1)
    r0 = int(math.floor(r))
    r1 = min(r0 + 1, n - 1)
    v0 = _rank_value(counts, lo, step, r0)
    v1 = _rank_value(counts, lo, step, r1)
    return v0 + (r - r0) * (v1 - v0)


@njit(cache=CACHE)
def hist_gate(counts, energies, lo, step, gate_lufs, out_counts):
    """Copy of ``counts`` keeping only bins whose centre lies above ``gate_lufs``.

    Returns
    -------
    (float, int) : summed energy and count of the kept bins.
    """
    tot = 0.0
    n = 0
    for i in range(counts.shape[0]):
        centre = lo + (i + 0.5) * step
        if centre > gate_lufs:
            out_counts[i] = counts[i]
            tot += energies[i]
            n += counts[i]
        else:
            out_counts[i] = 0
    return tot, n
