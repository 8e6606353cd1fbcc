"""The building blocks of the kernels against plainly correct references.

Each jitted helper (sorted-window insert and slide, mirror padding, the streaming HPSS,
histogram statistics) and each design (STFT sizes, K-weighting, chroma filter bank, band tables)
is checked on its own, so that a failure in the end-to-end tests points at one place.
"""

import librosa
import numpy as np
import pyloudnorm
import pytest
import scipy.ndimage
import scipy.signal
from numba import njit

from kernels import _hpss, _lanes, _samples, _spectral
from kernels import design as D


def _random_with_ties(rng, shape):
    """float32 values, half of them on six levels (0, 0.25, ... 1.25: exact ties and zeros)."""
    levels = rng.integers(0, 6, size=shape).astype(np.float32) * np.float32(0.25)
    return np.where(rng.random(shape) < 0.5, levels, rng.random(shape).astype(np.float32))


@pytest.mark.parametrize("lanes", [3, 8, 45])  # lanes in eights, lanes left over, both
@pytest.mark.parametrize("rows", [1, 2, 17, 31])
def test_insert_builds_each_lane_sorted(rng, rows, lanes):
    values = _random_with_ties(rng, (rows, lanes))
    win = np.empty((rows, lanes), dtype=np.float32)
    _hpss.fill_inf(win)
    for i in range(rows):
        _hpss.insert(win, values[i])
        # after i + 1 values: those sorted, then the +inf still to be filled
        np.testing.assert_array_equal(win[: i + 1], np.sort(values[: i + 1], axis=0))
        assert np.all(np.isposinf(win[i + 1 :]))


@pytest.mark.parametrize("lanes", [5, 40, 43])  # lanes in eights, lanes left over, both
@pytest.mark.parametrize("width", [1, 3, 17, 31])
def test_slide_keeps_the_window_sorted_and_its_middle_is_the_running_median(rng, width, lanes):
    """Slid along a sequence, the window is at every step exactly the sorted values under it,
    ties included, and its middle row is scipy's median filter bit for bit."""
    n = 120
    seq = _random_with_ties(rng, (n, lanes))
    win = np.empty((width, lanes), dtype=np.float32)
    _hpss.fill_inf(win)
    for i in range(width):
        _hpss.insert(win, seq[i])
    half = width // 2
    medians = [win[half].copy()]
    for s in range(1, n - width + 1):
        _hpss.slide(win, seq[s - 1], seq[s - 1 + width])
        np.testing.assert_array_equal(win, np.sort(seq[s : s + width], axis=0))
        medians.append(win[half].copy())
    want = scipy.ndimage.median_filter(seq, size=(width, 1))[half : n - half]
    np.testing.assert_array_equal(np.array(medians), want)


@njit(cache=False)
def _lanes_vs_scalars(a, b, out8, out1):
    """Rows of ``out8``: vmax8, vmin8, where_lt8 on eight lanes at a time; of ``out1``: numba's
    scalar max, min and ternary on the same pairs."""
    for k in range(0, a.shape[0], 8):
        x, y = _lanes.load8(a, k), _lanes.load8(b, k)
        _lanes.store8(out8[0], k, _lanes.vmax8(x, y))
        _lanes.store8(out8[1], k, _lanes.vmin8(x, y))
        _lanes.store8(out8[2], k, _lanes.where_lt8(x, y, x, y))
    for k in range(a.shape[0]):
        out1[0, k] = max(a[k], b[k])
        out1[1, k] = min(a[k], b[k])
        out1[2, k] = a[k] if a[k] < b[k] else b[k]


def test_float32_lanes_select_exactly_as_numba_scalars():
    """Every ordered pair of special and ordinary values, NaN and both zeros included: the
    8-lane selections return the very bits numba's scalar min, max and ternary return."""
    special = np.array([np.nan, -np.inf, -1.5, -0.0, 0.0, 1e-45, 0.25, 0.25, 3.0, np.inf],
                       dtype=np.float32)
    a, b = (g.ravel().copy() for g in np.meshgrid(special, special))
    n = -(-a.size // 8) * 8
    a, b = np.resize(a, n), np.resize(b, n)
    out8, out1 = np.empty((3, n), np.float32), np.empty((3, n), np.float32)
    _lanes_vs_scalars(a, b, out8, out1)
    np.testing.assert_array_equal(out8.view(np.uint32), out1.view(np.uint32))


def test_hpss_state_refuses_even_medians_and_a_ring_too_short():
    with pytest.raises(ValueError, match="must be odd"):
        _hpss.new_state(40, time_kernel=16, freq_kernel=31)
    with pytest.raises(ValueError, match="raise RING"):
        _hpss.new_state(40, time_kernel=2 * (_hpss.RING - _hpss.LANES) + 1, freq_kernel=31)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 40])
def test_mirror_matches_scipy_reflect(n):
    x = np.arange(n, dtype=np.float64)
    padded = np.pad(x, 3 * n + 5, mode="symmetric")  # numpy 'symmetric' == scipy 'reflect'
    for i in range(-3 * n - 5, 4 * n + 5):
        assert x[_hpss.mirror(i, n)] == padded[i + 3 * n + 5]


def _hpss_state(n_bins):
    return _hpss.new_state(n_bins, time_kernel=D.HPSS_TIME_KERNEL,
                           freq_kernel=D.HPSS_FREQ_KERNEL)


def test_hpss_streaming_equals_scipy_median_filters(rng):
    """hpss_push + hpss_finish over a stream == scipy's 2-D median filters (mode 'reflect') and
    librosa-style soft masks on the magnitude, computed on the whole array at once."""
    # streams long enough for several percussive batches and ring wraps: tests/test_hpss.py
    for n_bins, n_frames, avg in ((40, 2 * 30 + 1, 2), (33, 7, 2), (50, 4 * 11 + 3, 4)):
        power = (rng.random((n_frames, n_bins)) ** 4).astype(np.float32)
        depth = D.HPSS_TIME_KERNEL
        st = _hpss_state(n_bins)
        for a in range(0, n_frames, 5):  # odd batch sizes
            chunk = power[a : a + 5]
            _hpss.hpss_push(chunk, chunk.shape[0], avg, *st)
        _hpss.hpss_finish(avg, *st)
        sums = st[-1]
        coarse = np.stack([power[i : i + avg].astype(np.float64).mean(axis=0)
                           for i in range(0, n_frames, avg)]).astype(np.float32)
        hm = scipy.ndimage.median_filter(coarse, size=(depth, 1), mode="reflect")
        pm = scipy.ndimage.median_filter(coarse, size=(1, 31), mode="reflect")
        # medians of power are the squared medians of magnitude: with magnitude masks
        # mH = Hm^2 / (Hm^2 + Pm^2) = hm / (hm + pm), H^2 = |X|^2 mH^2 = coarse power * mH^2
        hm, pm = hm.astype(np.float64), pm.astype(np.float64)
        mh = hm / (hm + pm)
        mp = pm / (hm + pm)
        h2 = np.sum(coarse * mh**2)
        p2 = np.sum(coarse * mp**2)
        np.testing.assert_allclose(sums, [h2, p2], rtol=1e-5)


@pytest.mark.parametrize("q", [0.0, 10.0, 50.0, 95.0, 100.0])
def test_hist_percentile_matches_numpy_on_binned_values(rng, q):
    lo, step = -70.0, 0.01
    values = rng.uniform(-40, -10, size=333)
    bins = np.floor((values - lo) / step).astype(int)
    counts = np.bincount(bins, minlength=10000).astype(np.int64)
    centres = lo + (bins + 0.5) * step
    got = _samples.hist_percentile(counts, lo, step, q)
    assert got == pytest.approx(np.percentile(centres, q), abs=1e-9)


def test_frame_batch_is_the_same_wherever_its_buffers_lie(rng):
    """The frames and their RMS (a reassociated, vectorised sum) come out the same bits
    wherever the output rows lie against the mono buffer, and the RMS is the plain one within
    rounding. (Read as ``mono[off + i]``, numba's wraparound of a possibly negative index made
    the loads gathers, and the overlap check LLVM put before that loop sent output rows lying
    a few thousand samples after the mono buffer to the scalar loop, whose sum rounds
    differently.)"""
    n_fft, hop, batch = 2048, 512, 32
    m = n_fft + 40 * hop
    samples = (0.3 * rng.standard_normal(m)).astype(np.float32)
    window = D.periodic_hann(n_fft).astype(np.float32)
    arena = np.zeros(m + 20_000 + batch * n_fft, dtype=np.float32)
    mono = arena[:m]
    mono[:] = samples
    results = []
    for gap in (0, 100, 397, 1000, 5000, 17_000, None):  # None: a buffer of its own
        out = (np.zeros((batch, n_fft), dtype=np.float32) if gap is None
               else arena[m + gap : m + gap + batch * n_fft].reshape(batch, n_fft))
        rms = np.zeros(batch)
        _spectral.frame_batch(mono, 100, hop, batch, window, out, rms)
        results.append((out.copy(), rms))
    for out, rms in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(rms.view(np.int64), results[0][1].view(np.int64))
    frames = np.stack([samples[100 + j * hop : 100 + j * hop + n_fft] for j in range(batch)])
    np.testing.assert_array_equal(results[0][0], frames * window)
    np.testing.assert_allclose(results[0][1], np.sqrt(np.mean(frames.astype(np.float64) ** 2,
                                                              axis=1)), rtol=1e-13)


@pytest.mark.parametrize(
    ("sr", "n_fft"),
    [(8000, 512), (11025, 512), (16000, 1024), (22050, 1024), (32000, 2048), (44100, 2048),
     (48000, 2048), (64000, 4096), (96000, 4096), (128000, 8192), (192000, 8192)],
)
def test_stft_size_table(sr, n_fft):
    assert D.stft_size(sr) == (n_fft, n_fft // 4)


def test_periodic_hann_matches_scipy():
    np.testing.assert_allclose(D.periodic_hann(2048), scipy.signal.get_window("hann", 2048),
                               atol=1e-7)


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
def test_k_weighting_matches_pyloudnorm_filters(sr):
    meter = pyloudnorm.Meter(sr)
    ours = D.k_weighting(sr)
    for row, name in zip(ours, ("high_shelf", "high_pass"), strict=True):
        f = meter._filters[name]
        np.testing.assert_allclose(row[:3], f.b, rtol=1e-12)
        np.testing.assert_allclose(row[3:], f.a[1:], rtol=1e-12)


def test_k_weighting_gain_at_1khz_is_bs1770_calibration():
    # BS.1770: K-weighting is normalised so that a 997 Hz tone reads about +0.69 dB
    sr = 48000
    b1, a1 = np.r_[D.k_weighting(sr)[0, :3]], np.r_[1.0, D.k_weighting(sr)[0, 3:]]
    b2, a2 = np.r_[D.k_weighting(sr)[1, :3]], np.r_[1.0, D.k_weighting(sr)[1, 3:]]
    _, h1 = scipy.signal.freqz(b1, a1, worN=[997.0], fs=sr)
    _, h2 = scipy.signal.freqz(b2, a2, worN=[997.0], fs=sr)
    assert 20 * np.log10(abs(h1[0] * h2[0])) == pytest.approx(0.69, abs=0.05)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000, 96000])
def test_chroma_filterbank_matches_librosa(sr):
    n_fft, _ = D.stft_size(sr)
    ours = D.chroma_filterbank(sr, n_fft)
    ref = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("sr", "n_fft"), [(44100, 2048), (48000, 2048), (8000, 512),
                                           (96000, 4096)])
def test_band_weights_share_each_bin_by_overlap(sr, n_fft):
    """Each bin's interval [f - df/2, f + df/2) is split between the bands it overlaps."""
    w = D.band_weights(sr, n_fft)
    df = sr / n_fft
    f = np.arange(n_fft // 2 + 1) * df
    edges = [min(e, sr / 2) for e in D.BAND_EDGES_HZ]
    for b in range(7):
        lo, hi = edges[b], max(edges[b], edges[b + 1])
        # the band's width in Hz is what its weights add up to (nothing lost, nothing doubled)
        assert w[b].sum() * df == pytest.approx(hi - lo, abs=1e-9), b
        want = np.clip(np.minimum(f + df / 2, hi) - np.maximum(f - df / 2, lo), 0, None) / df
        np.testing.assert_allclose(w[b], want, atol=1e-12)
    assert np.all(w.sum(axis=0) <= 1.0 + 1e-12)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 96000, 192000])
def test_onset_bands_tile_24_per_octave_from_30_hz(sr):
    n_fft, _ = D.stft_size(sr)
    edges = D.onset_bands(sr, n_fft)
    widths = np.diff(edges)
    assert np.all(widths >= 1)  # contiguous, disjoint, at least one bin each
    df = sr / n_fft
    f = np.arange(n_fft // 2 + 1) * df
    assert f[edges[0]] >= 30.0 and f[edges[-1] - 1] < min(16000.0, sr / 2)
    # every edge is the first bin at or above one of 30 * 2^(i/24) Hz
    grid = 30.0 * 2.0 ** (np.arange(400) / 24.0)
    want = np.unique(np.ceil(grid / df - 1e-9).astype(int))
    assert set(edges[:-1].tolist()) <= set(want.tolist())


def test_channel_weights_follow_bs1770_4():
    """ITU-R BS.1770-4 table 3 on the default layouts: LFE excluded, surrounds 1.41."""
    assert D.channel_weights(1).tolist() == [1.0]
    assert D.channel_weights(2).tolist() == [1.0, 1.0]
    assert D.channel_weights(6).tolist() == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    assert D.channel_weights(8).tolist() == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41, 1.41]
    assert D.channel_weights(12).tolist() == [1.0] * 12  # no standard order: all 1.0
