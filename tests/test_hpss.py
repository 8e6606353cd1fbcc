"""Harmonic ratio (value 18, docs/FINGERPRINT.md "Harmonic ratio"): the streaming HPSS kernel
against a plain scipy reference on the same coarse grid, against librosa's full-resolution
``hpss(abs(stft), kernel_size=31)``, known answers, and block-size independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import signals as sig
from helpers import analyse
from reference import frames_power, to_mono
from scipy.ndimage import median_filter

from kernels import _hpss
from kernels import design as D

SR = 44100


# ----------------------------------------------------------------------------------------------
# a plain reference: whole arrays, scipy medians, the doc's formula
# ----------------------------------------------------------------------------------------------


def coarse_power(power: np.ndarray, avg: int) -> np.ndarray:
    """(n_bins, n_frames) power -> (n_bins, ceil(n_frames / avg)): means of ``avg`` frames
    (the last: of what is left)."""
    n = power.shape[1]
    return np.stack([power[:, i : i + avg].mean(axis=1) for i in range(0, n, avg)], axis=1)


def hpss_energies(power: np.ndarray, harm_frames: int, perc_bins: int) -> tuple[float, float]:
    """``sum H^2``, ``sum P^2`` of the median-filter HPSS of the magnitude ``S = sqrt(power)``:
    ``Hm``, ``Pm`` medians of ``S`` over ``harm_frames`` frames / ``perc_bins`` bins (mode
    'reflect'), power-2 soft masks, ``H = S mH``, ``P = S mP`` (both 0 where ``Hm = Pm = 0``).
    Computed on magnitudes, as librosa does, not with the kernel's power shortcut."""
    s = np.sqrt(np.asarray(power, dtype=np.float64))
    hm = median_filter(s, size=(1, harm_frames), mode="reflect")
    pm = median_filter(s, size=(perc_bins, 1), mode="reflect")
    den = hm**2 + pm**2
    safe = np.where(den > 0, den, 1.0)
    mh = np.where(den > 0, hm**2 / safe, 0.0)
    mp = np.where(den > 0, pm**2 / safe, 0.0)
    return float(np.sum((s * mh) ** 2)), float(np.sum((s * mp) ** 2))


def ratio(h2: float, p2: float) -> float:
    return h2 / (h2 + p2) if h2 + p2 > 0 else 0.0


def ref_harmonic_ratio(x: np.ndarray, sr: int) -> float:
    """The doc's value on its coarse grid, from a float64 numpy STFT."""
    power, _ = frames_power(to_mono(x), sr)
    n_fft, _ = D.stft_size(sr)
    keep = D.make_params(sr, 1).hpss_bins
    assert keep == min(power.shape[0], max(32, math.ceil(D.HPSS_FMAX_HZ * n_fft / sr)))
    c = coarse_power(power[:keep], D.HPSS_TIME_AVG)
    return ratio(*hpss_energies(c, D.HPSS_TIME_KERNEL, D.HPSS_FREQ_KERNEL))


def librosa_harmonic_ratio(x: np.ndarray, sr: int) -> float:
    """librosa's full-resolution ``hpss(abs(stft), kernel_size=31)`` energy share, on the
    analyzer's frames (periodic Hann, hop n_fft / 4, from sample 0, zero-padded end)."""
    librosa = pytest.importorskip("librosa")
    mono = to_mono(x)
    n_fft, hop = D.stft_size(sr)
    n_frames = 1 + math.ceil(max(mono.size - n_fft, 0) / hop)
    y = np.zeros((n_frames - 1) * hop + n_fft)
    y[: mono.size] = mono
    spec = librosa.stft(y, n_fft=n_fft, hop_length=hop, center=False, window="hann")
    harm, perc = librosa.decompose.hpss(np.abs(spec), kernel_size=31)
    return ratio(float(np.sum(harm**2)), float(np.sum(perc**2)))


def harmonic_ratio(x: np.ndarray, sr: int = SR, blocks=None) -> float:
    return analyse(x, sr, blocks).as_dict()["harmonic_ratio"]


# ----------------------------------------------------------------------------------------------
# the kernel against the plain reference
# ----------------------------------------------------------------------------------------------


def _run_kernel(power: np.ndarray, avg: int, batch: int) -> np.ndarray:
    """hpss_push in batches of ``batch`` frames, then hpss_finish; returns the two sums."""
    n_frames, n_bins = power.shape
    st = _hpss.new_state(n_bins, time_kernel=D.HPSS_TIME_KERNEL,
                         freq_kernel=D.HPSS_FREQ_KERNEL)
    for a in range(0, n_frames, batch):
        chunk = np.ascontiguousarray(power[a : a + batch])
        _hpss.hpss_push(chunk, chunk.shape[0], avg, *st)
    _hpss.hpss_finish(avg, *st)
    return st[-1]


@pytest.mark.parametrize(("n_bins", "n_frames", "avg"), [
    (40, 2 * 30 + 1, 2),  # odd frame count: a partial last coarse frame
    (33, 7, 2),  # fewer coarse frames than the time kernel: mirrored more than once
    (50, 3 * 23 + 2, 3),
    (64, 4 * 40, 4),
    (45, 2 * 200 + 1, 2),  # 201 coarse frames: several percussive batches, the rings wrap
])
def test_kernel_equals_scipy_magnitude_hpss_on_the_coarse_grid(rng, n_bins, n_frames, avg):
    power = (rng.random((n_frames, n_bins)) ** 4).astype(np.float32)
    power[:, 5] = 0.0  # a dead bin
    power[3] = 0.0  # a silent frame
    sums = _run_kernel(power, avg, batch=5)
    # the kernel keeps coarse frames in float32, as the reference does here
    coarse = coarse_power(power.T.astype(np.float64), avg).astype(np.float32)
    h2, p2 = hpss_energies(coarse, D.HPSS_TIME_KERNEL, D.HPSS_FREQ_KERNEL)
    # medians are exact selections; only the float64 sums' order differs (and sqrt rounding)
    np.testing.assert_allclose(sums, [h2, p2], rtol=1e-6)


def test_kernel_is_bit_identical_whatever_the_batch_size(rng):
    power = (rng.random((203, 45)) ** 3).astype(np.float32)
    ref = _run_kernel(power, 2, batch=128)
    for batch in (1, 2, 7, 64, 203):
        assert _run_kernel(power, 2, batch).tobytes() == ref.tobytes()


def test_analyzer_equals_the_plain_reference():
    for sr in (44100, 48000):
        x = sig.music_like(6.0, sr)
        assert harmonic_ratio(x, sr) == pytest.approx(ref_harmonic_ratio(x, sr), abs=1e-5)


def test_silence_all_zero_medians_read_zero():
    assert harmonic_ratio(sig.silence(2.0, SR)) == 0.0
    assert _run_kernel(np.zeros((40, 40), np.float32), 2, 8).tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------------------------------
# the definition is librosa's
# ----------------------------------------------------------------------------------------------


def test_plain_reference_at_full_resolution_is_librosa(rng):
    # avg 1, 31 frames, every bin: the doc's formula is librosa's hpss(|X|) energy share
    x = 0.5 * sig.drum_loop(100.0, 4.0, SR, rng) + 0.5 * sig.chord([220.0, 277.2], 4.0, SR)
    power, _ = frames_power(to_mono(x), SR)
    own = ratio(*hpss_energies(power, 31, 31))
    assert own == pytest.approx(librosa_harmonic_ratio(x, SR), abs=1e-7)


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_coarse_grid_within_003_of_librosa(rng, sr):
    clips = {
        "music": sig.music_like(8.0, sr),
        "mix": 0.5 * sig.drum_loop(100.0, 6.0, sr, rng)
        + 0.5 * sig.chord([261.63, 329.63, 392.0], 6.0, sr),
        "pink": sig.pink_noise(6.0, sr, rng),
    }
    for name, x in clips.items():
        assert harmonic_ratio(x, sr) == pytest.approx(librosa_harmonic_ratio(x, sr),
                                                      abs=0.03), name


# ----------------------------------------------------------------------------------------------
# known answers
# ----------------------------------------------------------------------------------------------


def test_steady_tones_read_harmonic():
    assert harmonic_ratio(sig.chord([261.63, 329.63, 392.0], 6.0, SR)) > 0.99
    assert harmonic_ratio(sig.sine(440.0, 4.0, SR)) > 0.99


def test_clicks_read_percussive():
    # isolated broadband clicks over digital silence: the time median is 0 nearly everywhere
    assert harmonic_ratio(sig.click_track(120.0, 6.0, SR)) < 0.05


def test_noise_reads_middling(rng):
    # white noise has no preferred direction: the two medians agree, half the energy each
    # (0.50 here, librosa 0.50); pink noise leans harmonic (0.61, librosa 0.60)
    assert 0.4 < harmonic_ratio(sig.white_noise(6.0, SR, rng)) < 0.6
    assert 0.45 < harmonic_ratio(sig.pink_noise(6.0, SR, rng)) < 0.75


def test_drums_read_low_and_adding_a_chord_raises_it(rng):
    drums = sig.drum_loop(100.0, 6.0, SR, rng)
    chord = sig.chord([261.63, 329.63, 392.0], 6.0, SR)
    d = harmonic_ratio(drums)
    assert d < 0.4  # 0.25 (librosa 0.27): the kick's tail is tonal
    assert harmonic_ratio(0.5 * drums + 0.5 * chord) > d + 0.4


def test_level_does_not_matter():
    x = sig.music_like(4.0, SR)
    assert harmonic_ratio(0.1 * x) == pytest.approx(harmonic_ratio(x), abs=1e-6)


# ----------------------------------------------------------------------------------------------
# streaming
# ----------------------------------------------------------------------------------------------


def test_bit_identical_across_feed_block_sizes(rng):
    x = 0.5 * sig.drum_loop(100.0, 5.0, SR, rng) + 0.5 * sig.chord([220.0, 330.0], 5.0, SR)
    whole = harmonic_ratio(x)
    for blocks in ([1, 511, 512, 513], [4096] * 40, [12345] * 10, [77777]):
        assert harmonic_ratio(x, blocks=blocks) == whole
