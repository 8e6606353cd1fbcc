"""``_samples.sample_pass`` against the formulation it replaced, bit for bit.

The stereo statistics and the K-weighting run fused in one loop, the filter in SIMD lanes and
the statistics' multiply-adds written out (kernels/_samples.py). The reference below is the
code from before that change, compiled with the same numba options: the statistics in a
REASSOC loop whose multiply-adds LLVM contracts, the K-weighting a scalar recursion. Every
output (mono, state slots, filter states, sub-block ring, histograms) must match it in every
bit, after every chunk, for stereo, mono and more channels, any chunking and sample rate.
"""

import numpy as np
import pytest
from numba import njit

from kernels import _samples as S
from kernels import design as D
from kernels._config import ERROR_MODEL, REASSOC

# --- the reference: kernels/_samples.py before the fusion ---------------------------------------


@njit(fastmath=REASSOC, error_model=ERROR_MODEL)
def _ref_segment_stats_stereo(x, a, b, mono_out, fs, is_):
    l0 = fs[S.F_L0]
    r0 = fs[S.F_R0]
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
    # _add_segment itself: the change left it as it was
    S._add_segment(fs, is_, sumsq, np.float64(peak), sec_mono, sll, srr, slr, sl, sr_, differ,
                   nonfinite)


@njit
def _ref_segment_stats(x, a, b, mono_out, fs, is_, inv_ch):
    """Stereo: the old loop above. Other channel counts: ``_segment_stats`` itself, which the
    change left as it was (only its stereo branch moved to ``_segment_stereo``)."""
    if x.shape[1] == 2:
        _ref_segment_stats_stereo(x, a, b, mono_out, fs, is_)
    else:
        S._segment_stats(x, a, b, mono_out, fs, is_, inv_ch)


@njit(error_model=ERROR_MODEL)
def _ref_k_energy(x, a, b, kw, gains, kstate):
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


@njit(error_model=ERROR_MODEL)
def _ref_sample_pass(x, mono_out, kw, gains, kstate, sub_sums, sub_lens, fs, is_, sample_rate,
                     loud_counts, loud_energy, st_counts, st_energy, hist_lo, hist_step):
    n = x.shape[0]
    ch = x.shape[1]
    inv_ch = 1.0 / ch
    if is_[S.I_N] == 0 and n > 0:
        fs[S.F_L0] = x[0, 0]
        fs[S.F_R0] = x[0, 1 if ch > 1 else 0]
    ring = sub_sums.shape[0]
    i = 0
    while i < n:
        g = is_[S.I_N]
        to_sub = is_[S.I_SUB_END] - g
        to_sec = sample_rate - is_[S.I_SEC_FILL]
        stop = min(n, i + min(to_sub, to_sec))
        _ref_segment_stats(x, i, stop, mono_out, fs, is_, inv_ch)
        cur = is_[S.I_SUBS_DONE] % ring
        sub_sums[cur] += _ref_k_energy(x, i, stop, kw, gains, kstate)
        sub_lens[cur] += stop - i
        m = stop - i
        is_[S.I_N] = g + m
        is_[S.I_SEC_FILL] += m
        if is_[S.I_N] == is_[S.I_SUB_END]:
            S._close_sub_block(sub_sums, sub_lens, fs, is_, sample_rate, loud_counts,
                               loud_energy, st_counts, st_energy, hist_lo, hist_step)
        if is_[S.I_SEC_FILL] == sample_rate:
            S._close_second(fs, is_, sample_rate, ch)
        i = stop


# --- the comparison --------------------------------------------------------------------------

_NAMES = ("mono", "kstate", "sub_sums", "sub_lens", "fs", "is_", "loud_counts", "loud_energy",
          "st_counts", "st_energy")
_NH = int(round((D.LOUD_HIST_MAX - D.LOUD_HIST_MIN) / D.LOUD_HIST_STEP))


def _state(n, ch, sr):
    """Fresh analyzer state, as ``Analyzer.reset`` leaves it."""
    st = {"mono": np.zeros(n, np.float32), "kstate": np.zeros((ch, 4)),
          "sub_sums": np.zeros(S.SUB_RING), "sub_lens": np.zeros(S.SUB_RING, np.int64),
          "fs": np.zeros(S.N_F), "is_": np.zeros(S.N_I, np.int64),
          "loud_counts": np.zeros(_NH, np.int64), "loud_energy": np.zeros(_NH),
          "st_counts": np.zeros(_NH, np.int64), "st_energy": np.zeros(_NH)}
    st["is_"][S.I_SUB_END] = sr // 10
    return st


def _bits(a):
    """The array's bit patterns: equal bits, not merely equal values (0.0 vs -0.0, NaNs)."""
    a = np.ascontiguousarray(a)
    return a.view(f"u{a.dtype.itemsize}")


def _chunking(rng, n, sr):
    """Random chunk lengths summing to ``n``: many shorter than a 100 ms sub-block, some
    crossing several sub-blocks and seconds, and a few single samples."""
    out = []
    while sum(out) < n:
        kind = rng.integers(4)
        if kind == 0:
            c = int(rng.integers(1, 4))
        elif kind == 1:
            c = int(rng.integers(1, sr // 10))
        elif kind == 2:
            c = int(rng.integers(sr // 10, sr))
        else:
            c = int(rng.integers(sr, 5 * sr // 2))
        out.append(min(c, n - sum(out)))
    return out


def _signal(rng, kind, n, ch):
    x = rng.standard_normal((n, ch))
    if kind == "noise":
        x *= 0.3
    elif kind == "loud":  # clipped full scale, a few samples far beyond it
        x = np.clip(3.0 * x, -1.0, 1.0)
        x[rng.integers(0, n, 20)] *= 1000.0
    elif kind == "quiet":  # -120 dBFS, with subnormal float32 samples here and there
        x *= 1e-6
        x[rng.integers(0, n, 200)] = 1e-40
    elif kind == "silent":
        x[:] = 0.0
    elif kind == "identical":  # dual mono: L == R everywhere (stereo: -0.0 against 0.0 too)
        x = np.repeat(0.3 * x[:, :1], ch, axis=1)
        zeros = rng.integers(0, n, 50)
        x[zeros] = 0.0
        if ch == 2:
            x[zeros, 0] = -0.0
    elif kind == "gaps":  # a tone with a DC offset, silent stretches, one silent channel
        t = np.arange(n)[:, None]
        x = 0.4 * np.sin(2 * np.pi * 997.0 / 44100.0 * t * (1 + np.arange(ch))) + 0.01 + 0.01 * x
        x[n // 5 : n // 3] = 0.0
        x[:, -1] *= 0.0 if ch > 1 else 1.0
    return x.astype(np.float32)


def _compare(x, sr, chunks, strict_nan=True):
    n, ch = x.shape
    want = _state(n, ch, sr)
    got = _state(n, ch, sr)
    kw = D.k_weighting(sr)
    gains = D.channel_weights(ch)
    i = 0
    for c in chunks:
        for fn, st in ((_ref_sample_pass, want), (S.sample_pass, got)):
            fn(x[i : i + c], st["mono"][i : i + c], kw, gains, st["kstate"], st["sub_sums"],
               st["sub_lens"], st["fs"], st["is_"], sr, st["loud_counts"], st["loud_energy"],
               st["st_counts"], st["st_energy"], D.LOUD_HIST_MIN, D.LOUD_HIST_STEP)
        i += c
        for name in _NAMES:
            w, g = want[name], got[name]
            if strict_nan:
                np.testing.assert_array_equal(_bits(g), _bits(w), err_msg=f"{name}, {i} samples")
            else:  # NaN where the reference has NaN, every other value bit for bit
                nan = np.isnan(w) if w.dtype.kind == "f" else np.zeros(w.shape, bool)
                np.testing.assert_array_equal(np.isnan(g) if g.dtype.kind == "f" else nan, nan,
                                              err_msg=f"{name} NaNs, {i} samples")
                np.testing.assert_array_equal(_bits(g)[~nan], _bits(w)[~nan],
                                              err_msg=f"{name}, {i} samples")
    assert i == n
    return got


_RATES = (44100, 48000, 22050)


@pytest.mark.parametrize("sr", _RATES)
@pytest.mark.parametrize("kind", ["noise", "loud", "quiet", "silent", "identical", "gaps"])
def test_stereo_is_bit_exact(sr, kind):
    rng = np.random.default_rng(sr + len(kind))
    n = int(rng.integers(sr // 2, 7 * sr // 2))
    x = _signal(rng, kind, n, 2)
    got = _compare(x, sr, _chunking(rng, n, sr))
    assert got["is_"][S.I_N] == n
    assert got["is_"][S.I_DIFFER] == (kind not in ("identical", "silent"))


@pytest.mark.parametrize("sr", _RATES)
@pytest.mark.parametrize("ch", [1, 3, 6])
@pytest.mark.parametrize("kind", ["noise", "gaps", "identical"])
def test_other_channel_counts_are_bit_exact(sr, ch, kind):
    """No -0.0 samples here: the mono mix of other channel counts starts from ``0.0 + x`` in a
    REASSOC (nsz) loop, which LLVM folds to ``x`` in some compilations and not in others (a
    fresh compile of sample_pass and the same code loaded from numba's cache differ, before this
    change as after), so the sign of a zero mono sample is not a property of the code."""
    rng = np.random.default_rng(7 * sr + ch + len(kind))
    n = int(rng.integers(sr // 3, 2 * sr))
    _compare(_signal(rng, kind, n, ch), sr, _chunking(rng, n, sr))


def test_chunks_on_and_next_to_the_boundaries():
    """Chunks ending exactly on, one before and one after sub-block and second boundaries, and
    a stream of single samples through a sub-block boundary."""
    sr = 44100
    rng = np.random.default_rng(11)
    chunks = [sr // 10, sr // 10 - 1, 2, sr - sr // 5 - 1, 1, 1, sr // 10 + 1, sr - 1,
              *([1] * 300), 3 * sr + 17]
    x = _signal(rng, "noise", sum(chunks), 2)
    _compare(x, sr, chunks)


def test_a_strided_chunk_is_bit_exact():
    """A chunk that is not C-contiguous (the kernels are compiled for any layout)."""
    sr = 48000
    rng = np.random.default_rng(12)
    x = _signal(rng, "noise", 2 * 70000, 2)[::2]
    assert not x.flags.c_contiguous
    _compare(x, sr, _chunking(rng, x.shape[0], sr))


@pytest.mark.parametrize("ch", [2, 1, 3])
def test_non_finite_samples(ch):
    """NaN and inf samples: counts, peaks and every finite value bit for bit, NaN where the
    reference has NaN. A NaN result may carry another NaN's payload or sign (LLVM leaves which
    operand's NaN propagates open; the analyzer rejects such audio after the chunk anyway)."""
    sr = 44100
    rng = np.random.default_rng(13 + ch)
    n = 3 * sr
    x = _signal(rng, "noise", n, ch)
    x[rng.integers(0, n, 5), 0] = np.nan
    x[rng.integers(n // 2, n, 5), -1] = np.inf
    x[rng.integers(n // 2, n, 5), 0] = -np.inf
    got = _compare(x, sr, _chunking(rng, n, sr), strict_nan=False)
    assert got["is_"][S.I_NONFINITE] > 0
    # a clean stream after one bad first sample: only the L0/R0 shift is non-finite
    y = _signal(rng, "noise", sr, ch)
    y[0, 0] = np.inf
    _compare(y, sr, _chunking(rng, sr, sr), strict_nan=False)
