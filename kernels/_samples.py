"""Per-sample kernels: mono mix-down, sample statistics, K-weighting and loudness blocks.

Every function here is a cached ``@njit`` kernel (options from kernels/_config.py) over
caller-allocated arrays, single-threaded, with no validation and no I/O (the analyzer
validates). State lives in small float64 / int64 arrays whose slots are named by the module
constants below, so that a chunk of any length continues exactly where the previous one
stopped.

The K-weighting is two biquads per channel, 40 scalar operations per stereo sample, but a
dependency chain only four operations deep (add -> multiply -> subtract -> add). The kernels
run it in SIMD lanes (``F64X2`` / ``F64X4`` from kernels/_lanes.py, LLVM vectors of float64):
the two channels of a pair side by side, and the second biquad one sample behind the first, so
that both biquads of both channels are one 4-lane operation and the loop runs at the speed of
that chain. Each lane
performs exactly the scalar operation (same IEEE rounding, never a fused multiply-add), so the
filtered values are those of the plain scalar recursion, bit for bit. The stereo statistics
ride in the same loop, in the issue slots the chain leaves idle.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, INLINE, REASSOC
from ._lanes import cat, high, lane, low, madd, prefetch, v2, v4, vmax_abs

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

#: The stereo loop prefetches the chunk this many rows (2 KB) ahead of its reads, which hides
#: most of the memory latency of a chunk that is not in the cache yet.
_PREFETCH_ROWS = 256


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


@njit(cache=CACHE, inline=INLINE)
def _biquad(u, s0, s1, k):
    """One step of the transposed direct-form II biquad ``k = (b0, b1, b2, a1, a2)`` with states
    ``s0, s1`` on the input ``u``; returns the output and the new states. Floats or lanes alike."""
    y = k[0] * u + s0
    return y, k[1] * u - k[3] * y + s1, k[2] * u - k[4] * y


@njit(cache=CACHE, inline=INLINE)
def _k_lanes(kw):
    """The K-weighting biquads as 4-lane coefficients ``<first, first, second, second>``, and
    their 2-lane halves ``<first, first>``, ``<second, second>``."""
    k = (v4(kw[0, 0], kw[0, 0], kw[1, 0], kw[1, 0]), v4(kw[0, 1], kw[0, 1], kw[1, 1], kw[1, 1]),
         v4(kw[0, 2], kw[0, 2], kw[1, 2], kw[1, 2]), v4(kw[0, 3], kw[0, 3], kw[1, 3], kw[1, 3]),
         v4(kw[0, 4], kw[0, 4], kw[1, 4], kw[1, 4]))
    k1 = (low(k[0]), low(k[1]), low(k[2]), low(k[3]), low(k[4]))
    k2 = (high(k[0]), high(k[1]), high(k[2]), high(k[3]), high(k[4]))
    return k, k1, k2


@njit(cache=CACHE, inline=INLINE)
def _stereo_sample(x, i, mono_out, o, acc):
    """Sample ``i`` of a stereo chunk: writes its mono value and adds it to the sums
    ``acc = (sumsq, sec_mono, <sum dl^2, sum dr^2>, <sum dl, sum dr>, sum dl dr, <peaks>)``
    (``dl = L - L0``, ``dr = R - R0``, ``o = <L0, R0>``); returns ``<L, R>`` and the new sums.

    The operations and their order are those LLVM compiled from the REASSOC loop this replaces
    (sumsq as ``(sumsq + L^2) + R^2``, every multiply-add contracted): the sums are bit for bit
    the same."""
    sumsq, sec_mono, sq, sd, slr, pk = acc
    lv = np.float64(x[i, 0])
    rv = np.float64(x[i, 1])
    v = v2(lv, rv)
    m = (lv + rv) * 0.5
    mono_out[i] = m
    d = v - o
    return v, (madd(rv, rv, madd(lv, lv, sumsq)), madd(m, m, sec_mono), madd(d, d, sq),
               sd + d, madd(lane(d, 1), lane(d, 0), slr), vmax_abs(pk, v))


@njit(cache=CACHE, inline=INLINE)
def _pair_begin(kstate, c, v, k1):
    """The filter states of channels ``c, c+1`` as lanes ``<first biquad of c, c+1, second
    biquad of c, c+1>``, with the first biquad run on the segment's first sample ``v``: returns
    the lanes the loop of :func:`_segment_stereo` / :func:`_k_pair` starts from (``out, s0,
    s1``)."""
    s0 = v4(kstate[c, 0], kstate[c + 1, 0], kstate[c, 2], kstate[c + 1, 2])
    s1 = v4(kstate[c, 1], kstate[c + 1, 1], kstate[c, 3], kstate[c + 1, 3])
    y, p0, p1 = _biquad(v, low(s0), low(s1), k1)
    return cat(y, y), cat(p0, high(s0)), cat(p1, high(s1))


@njit(cache=CACHE, inline=INLINE)
def _pair_end(kstate, c, out, s0, s1, e, k2):
    """The second biquad run on the segment's last sample, the states stored back into
    ``kstate``; returns the two channels' K-weighted energies (lanes 2, 3 of ``e`` and the last
    sample's)."""
    z, q0, q1 = _biquad(low(out), high(s0), high(s1), k2)
    e2 = high(e) + z * z
    kstate[c, 0], kstate[c, 1] = lane(s0, 0), lane(s1, 0)
    kstate[c + 1, 0], kstate[c + 1, 1] = lane(s0, 1), lane(s1, 1)
    kstate[c, 2], kstate[c, 3] = lane(q0, 0), lane(q1, 0)
    kstate[c + 1, 2], kstate[c + 1, 3] = lane(q0, 1), lane(q1, 1)
    return lane(e2, 0), lane(e2, 1)


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def _stereo_nonfinite(x, a, b):
    """Count of NaN / inf samples and peak of a stereo segment, as the pre-fusion loop counted
    them (NaN's effect on the peak included); the rare path of :func:`_segment_stereo`."""
    peak = np.float32(0.0)
    nonfinite = 0
    for i in range(a, b):
        lf = x[i, 0]
        rf = x[i, 1]
        nonfinite += (lf - lf != 0.0) + (rf - rf != 0.0)
        peak = max(peak, max(abs(lf), abs(rf)))
    return nonfinite, np.float64(peak)


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _channels_differ(x, a, b):
    """Whether ``L != R`` (NaN included) at some sample ``a .. b-1``; stops at the first."""
    for i in range(a, b):
        if x[i, 0] != x[i, 1]:
            return True
    return False


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _segment_stereo(x, a, b, mono_out, fs, is_, kw, gains, kstate):
    """:func:`_segment_stats` and :func:`_k_energy` of a stereo segment in one loop.

    The loop is bound by the latency of the K-weighting recursion, which runs in 4 lanes: both
    biquads of both channels, the second biquad one sample behind the first (``<first biquad of
    sample i, second biquad of sample i-1>``). The statistics fill the idle issue slots. The
    non-finite count comes from the sums: finite sums mean finite samples (no count, and the
    peak is the larger lane peak); otherwise the segment is counted again as before. L != R is
    looked for only until it is found once.

    Returns
    -------
    float : the weighted K-filtered energy, as :func:`_k_energy` returns it.
    """
    zero = v2(0.0, 0.0)
    acc = (0.0, 0.0, zero, zero, 0.0, zero)
    o = v2(fs[F_L0], fs[F_R0])
    ep = 0.0
    eq = 0.0
    if b > a:
        k, k1, k2 = _k_lanes(kw)
        v, acc = _stereo_sample(x, a, mono_out, o, acc)
        out, s0, s1 = _pair_begin(kstate, 0, v, k1)  # sample a: the first biquad only
        e = v4(0.0, 0.0, 0.0, 0.0)
        last = np.uint64(b - 1)
        for i in range(np.uint64(a + 1), np.uint64(b)):  # unsigned: no negative-index wrap
            prefetch(x, min(i + np.uint64(_PREFETCH_ROWS), last))
            v, acc = _stereo_sample(x, i, mono_out, o, acc)
            out, s0, s1 = _biquad(cat(v, low(out)), s0, s1, k)
            e = e + out * out  # lanes 2, 3: the second biquad's energy, in sample order
        ep, eq = _pair_end(kstate, 0, out, s0, s1, e, k2)  # sample b-1: the second biquad only
    sumsq, sec_mono, sq, sd, slr, pk = acc
    sl = lane(sd, 0)
    sr_ = lane(sd, 1)
    if math.isfinite(sl) and math.isfinite(sr_):  # a NaN / inf sample leaves its sum non-finite
        nonfinite = 0
        peak = max(lane(pk, 0), lane(pk, 1))
    else:
        nonfinite, peak = _stereo_nonfinite(x, a, b)
    differ = is_[I_DIFFER] != 1 and _channels_differ(x, a, b)
    _add_segment(fs, is_, sumsq, peak, sec_mono, lane(sq, 0), lane(sq, 1), slr, sl, sr_,
                 differ, nonfinite)
    total = 0.0  # summed from 0.0 as _k_energy sums its channel pairs: a -0.0 reads +0.0 alike
    total += gains[0] * ep + gains[1] * eq
    return total


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def _segment_stats(x, a, b, mono_out, fs, is_, inv_ch):
    """Statistics of samples ``a .. b-1`` of the chunk (no boundary inside): mono, sums of
    squares, peaks, the shifted stereo sums and the L != R / non-finite counts. Stereo goes to
    :func:`_segment_stereo` instead."""
    ch = x.shape[1]
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
def _k_pair(x, a, b, c, kw, kstate):
    """K-weighted energies of channels ``c, c+1``, samples ``a .. b-1``: the filter of
    :func:`_segment_stereo` without the statistics."""
    ep = 0.0
    eq = 0.0
    if b > a:
        k, k1, k2 = _k_lanes(kw)
        out, s0, s1 = _pair_begin(kstate, c, v2(np.float64(x[a, c]), np.float64(x[a, c + 1])),
                                  k1)
        e = v4(0.0, 0.0, 0.0, 0.0)
        for i in range(np.uint64(a + 1), np.uint64(b)):
            v = v2(np.float64(x[i, c]), np.float64(x[i, c + 1]))
            out, s0, s1 = _biquad(cat(v, low(out)), s0, s1, k)
            e = e + out * out
        ep, eq = _pair_end(kstate, c, out, s0, s1, e, k2)
    return ep, eq


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _k_single(x, a, b, c, kw, kstate):
    """K-weighted energy of channel ``c``, samples ``a .. b-1``, in 2 lanes: ``<first biquad of
    sample i, second biquad of sample i-1>``."""
    k1 = (kw[0, 0], kw[0, 1], kw[0, 2], kw[0, 3], kw[0, 4])
    k2 = (kw[1, 0], kw[1, 1], kw[1, 2], kw[1, 3], kw[1, 4])
    ep = 0.0
    if b > a:
        k = (v2(k1[0], k2[0]), v2(k1[1], k2[1]), v2(k1[2], k2[2]), v2(k1[3], k2[3]),
             v2(k1[4], k2[4]))
        y, p0, p1 = _biquad(np.float64(x[a, c]), kstate[c, 0], kstate[c, 1], k1)
        s0 = v2(p0, kstate[c, 2])
        s1 = v2(p1, kstate[c, 3])
        e = v2(0.0, 0.0)
        for i in range(np.uint64(a + 1), np.uint64(b)):
            out, s0, s1 = _biquad(v2(np.float64(x[i, c]), y), s0, s1, k)
            y = lane(out, 0)
            e = e + out * out
        z, p2, p3 = _biquad(y, lane(s0, 1), lane(s1, 1), k2)
        ep = lane(e, 1) + z * z
        kstate[c, 0], kstate[c, 1] = lane(s0, 0), lane(s1, 0)
        kstate[c, 2], kstate[c, 3] = p2, p3
    return ep


@njit(cache=CACHE, error_model=ERROR_MODEL)
def _k_energy(x, a, b, kw, gains, kstate):
    """Weighted energy of the K-weighted samples ``a .. b-1``, all channels; filter states carry
    over. Channels run two at a time (:func:`_k_pair`), an odd last one alone."""
    ch = x.shape[1]
    total = 0.0
    c = np.int64(0)  # not the literal 0, for which numba would compile the callees once more
    while c < ch:
        if c + 1 < ch:
            ep, eq = _k_pair(x, a, b, c, kw, kstate)
            total += gains[c] * ep + gains[c + 1] * eq
            c += 2
        else:
            total += gains[c] * _k_single(x, a, b, c, kw, kstate)
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
    statistics are plain sums in sample order and the K-weighting a tight recursion (for stereo
    both in one loop, :func:`_segment_stereo`).

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
    i = np.int64(0)  # not the literal 0, for which numba would compile the callees once more
    while i < n:
        g = is_[I_N]
        to_sub = is_[I_SUB_END] - g
        to_sec = sample_rate - is_[I_SEC_FILL]
        stop = min(n, i + min(to_sub, to_sec))
        if ch == 2:
            energy = _segment_stereo(x, i, stop, mono_out, fs, is_, kw, gains, kstate)
        else:
            _segment_stats(x, i, stop, mono_out, fs, is_, inv_ch)
            energy = _k_energy(x, i, stop, kw, gains, kstate)
        cur = is_[I_SUBS_DONE] % ring
        sub_sums[cur] += energy
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
