"""Per-sample kernels: mono mix-down, sample statistics, K-weighting and loudness blocks.

Every function here is ``@njit(cache=True)`` over caller-allocated arrays, single-threaded, with
no validation and no I/O (the analyzer validates). State lives in small float64 / int64 arrays
whose slots are named by the module constants below, so that a chunk of any length continues
exactly where the previous one stopped.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# --- float64 state slots (``fs``) -------------------------------------------------------------
F_SUMSQ = 0  # sum of x^2, all samples, all channels
F_PEAK = 1  # max |x|, all samples, all channels
F_LL = 2  # sum (L - L0)^2   (shifted sums for the Pearson correlation)
F_RR = 3  # sum (R - R0)^2
F_LR = 4  # sum (L - L0)(R - R0)
F_L = 5  # sum (L - L0)
F_R = 6  # sum (R - R0)
F_SS = 7  # sum ((L - R) / 2)^2
F_MM = 8  # sum ((L + R) / 2)^2
F_L0 = 9
F_R0 = 10
F_SEC_MONO = 11  # current second: sum mono^2
F_SEC_ALL = 12  # current second: sum x^2 over channels
F_SEC_PEAK = 13  # current second: max |x| over channels
F_CREST_MEAN = 14  # Welford over active seconds: crest factor (dB)
F_CREST_M2 = 15
F_PEAK_MEAN = 16  # Welford over active seconds: sample peak
F_PEAK_M2 = 17
F_LOUD_SUM = 18  # sum of block energies passing the absolute gate
F_ST_SUM = 19  # sum of short-term energies passing the absolute gate
N_F = 20

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


@njit(cache=True)
def _hist_add(counts, energies, value_lufs, energy, lo, step):
    n = counts.shape[0]
    b = int((value_lufs - lo) / step)
    if b >= n:
        b = n - 1
    counts[b] += 1
    energies[b] += energy


@njit(cache=True, error_model="numpy")
def sample_pass(x, mono_out, kw, gains, kstate, sub_sums, sub_lens, fs, is_, sample_rate,
                loud_counts, loud_energy, st_counts, st_energy, hist_lo, hist_step):
    """Consume one chunk of PCM: statistics, mono mix-down, K-weighted loudness blocks.

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
        Ring of weighted K-filtered energies and lengths of completed 100 ms sub-blocks; slot
        ``SUB_RING`` (index = count % SUB_RING) holds the one being filled.
    fs, is_ : float64[N_F], int64[N_I]
        Running state, slots named ``F_*`` and ``I_*``.
    sample_rate : int
    loud_counts, loud_energy, st_counts, st_energy : int64[nh], float64[nh]
        Histograms of 400 ms block and 3 s short-term loudness (``hist_lo`` + i * ``hist_step``
        LUFS), count and summed energy per bin.
    """
    n = x.shape[0]
    ch = x.shape[1]
    inv_ch = 1.0 / ch
    b10, b11, b12, a11, a12 = kw[0, 0], kw[0, 1], kw[0, 2], kw[0, 3], kw[0, 4]
    b20, b21, b22, a21, a22 = kw[1, 0], kw[1, 1], kw[1, 2], kw[1, 3], kw[1, 4]
    r_idx = 1 if ch > 1 else 0
    g_n = is_[I_N]
    if g_n == 0 and n > 0:
        fs[F_L0] = x[0, 0]
        fs[F_R0] = x[0, r_idx]
    l0 = fs[F_L0]
    r0 = fs[F_R0]
    sumsq = fs[F_SUMSQ]
    peak = fs[F_PEAK]
    sll = fs[F_LL]
    srr = fs[F_RR]
    slr = fs[F_LR]
    sl = fs[F_L]
    sr_ = fs[F_R]
    sss = fs[F_SS]
    smm = fs[F_MM]
    sec_mono = fs[F_SEC_MONO]
    sec_all = fs[F_SEC_ALL]
    sec_peak = fs[F_SEC_PEAK]
    nonfinite = is_[I_NONFINITE]
    differ = is_[I_DIFFER]
    sec_fill = is_[I_SEC_FILL]
    sub_end = is_[I_SUB_END]
    ring = sub_sums.shape[0]
    cur = is_[I_SUBS_DONE] % ring
    sub_acc = sub_sums[cur]
    sub_len = sub_lens[cur]
    for i in range(n):
        acc = 0.0
        e = 0.0
        for c in range(ch):
            v = np.float64(x[i, c])
            if v - v != 0.0:  # NaN or inf
                nonfinite += 1
                v = 0.0
            acc += v
            a = abs(v)
            sq = v * v
            sumsq += sq
            sec_all += sq
            if a > peak:
                peak = a
            if a > sec_peak:
                sec_peak = a
            # K-weighting: two biquads, transposed direct form II
            s = kstate[c]
            y1 = b10 * v + s[0]
            s[0] = b11 * v - a11 * y1 + s[1]
            s[1] = b12 * v - a12 * y1
            y2 = b20 * y1 + s[2]
            s[2] = b21 * y1 - a21 * y2 + s[3]
            s[3] = b22 * y1 - a22 * y2
            e += gains[c] * y2 * y2
        m = acc * inv_ch
        mono_out[i] = m
        sec_mono += m * m
        lv = np.float64(x[i, 0])
        rv = np.float64(x[i, r_idx])
        if lv - lv != 0.0:
            lv = 0.0
        if rv - rv != 0.0:
            rv = 0.0
        if lv != rv:
            differ = 1
        dl = lv - l0
        dr = rv - r0
        sll += dl * dl
        srr += dr * dr
        slr += dl * dr
        sl += dl
        sr_ += dr
        d = lv - rv
        s_ = lv + rv
        sss += 0.25 * d * d
        smm += 0.25 * s_ * s_
        # 100 ms sub-blocks -> 400 ms blocks and 3 s short-term windows
        sub_acc += e
        sub_len += 1
        g_n += 1
        if g_n == sub_end:
            sub_sums[cur] = sub_acc
            sub_lens[cur] = sub_len
            done = is_[I_SUBS_DONE] + 1
            is_[I_SUBS_DONE] = done
            if done >= 4:
                tot = 0.0
                ln = 0
                for j in range(4):
                    k = (done - 1 - j) % ring
                    tot += sub_sums[k]
                    ln += sub_lens[k]
                z = tot / ln
                if z > 0.0:
                    lufs = -0.691 + 10.0 * math.log10(z)
                    if lufs >= hist_lo:
                        _hist_add(loud_counts, loud_energy, lufs, z, hist_lo, hist_step)
                        is_[I_LOUD_N] += 1
                        fs[F_LOUD_SUM] += z
            if done >= 30:
                tot = 0.0
                ln = 0
                for j in range(30):
                    k = (done - 1 - j) % ring
                    tot += sub_sums[k]
                    ln += sub_lens[k]
                z = tot / ln
                if z > 0.0:
                    lufs = -0.691 + 10.0 * math.log10(z)
                    if lufs >= hist_lo:
                        _hist_add(st_counts, st_energy, lufs, z, hist_lo, hist_step)
                        is_[I_ST_N] += 1
                        fs[F_ST_SUM] += z
            is_[I_SUB_INDEX] += 1
            sub_end = ((is_[I_SUB_INDEX] + 1) * sample_rate) // 10
            cur = done % ring
            sub_acc = 0.0
            sub_len = 0
        # whole seconds
        sec_fill += 1
        if sec_fill == sample_rate:
            rms_mono = math.sqrt(sec_mono / sample_rate)
            if rms_mono >= 1e-3:
                is_[I_ACTIVE_SECONDS] += 1
                k = is_[I_ACTIVE_SECONDS]
                rms_all = math.sqrt(sec_all / (sample_rate * ch))
                crest = 20.0 * math.log10(sec_peak / rms_all)
                dlt = crest - fs[F_CREST_MEAN]
                fs[F_CREST_MEAN] += dlt / k
                fs[F_CREST_M2] += dlt * (crest - fs[F_CREST_MEAN])
                dlt = sec_peak - fs[F_PEAK_MEAN]
                fs[F_PEAK_MEAN] += dlt / k
                fs[F_PEAK_M2] += dlt * (sec_peak - fs[F_PEAK_MEAN])
            is_[I_SEC_INDEX] += 1
            sec_fill = 0
            sec_mono = 0.0
            sec_all = 0.0
            sec_peak = 0.0
    sub_sums[cur] = sub_acc
    sub_lens[cur] = sub_len
    fs[F_SUMSQ] = sumsq
    fs[F_PEAK] = peak
    fs[F_LL] = sll
    fs[F_RR] = srr
    fs[F_LR] = slr
    fs[F_L] = sl
    fs[F_R] = sr_
    fs[F_SS] = sss
    fs[F_MM] = smm
    fs[F_SEC_MONO] = sec_mono
    fs[F_SEC_ALL] = sec_all
    fs[F_SEC_PEAK] = sec_peak
    is_[I_N] = g_n
    is_[I_NONFINITE] = nonfinite
    is_[I_DIFFER] = differ
    is_[I_SEC_FILL] = sec_fill
    is_[I_SUB_END] = sub_end


@njit(cache=True)
def _rank_value(counts, lo, step, rank):
    seen = 0
    for i in range(counts.shape[0]):
        seen += counts[i]
        if seen > rank:
            return lo + (i + 0.5) * step
    return lo + (counts.shape[0] - 0.5) * step


@njit(cache=True)
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


@njit(cache=True)
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
