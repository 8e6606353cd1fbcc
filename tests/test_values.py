"""The fingerprint's values with a plain reference: the reference check and known answers.

Two kinds of reference (tests/reference.py): a plain whole-array recomputation of the
definition in docs/FINGERPRINT.md (the tolerances of its "check" column), and the libraries it
names (librosa, pyloudnorm) on the same frames. The rhythm values (tests/test_rhythm.py), the
harmonic ratio (tests/test_hpss.py), and the key and MFCC values (tests/test_tonal.py) have
their own files, with ground truth and references of their own.
"""

import helpers as h
import lra_reference as lra
import numpy as np
import pytest
import reference as ref
import signals as sig

from kernels import FINGERPRINT_NAMES

NAMES = list(FINGERPRINT_NAMES)


def _signals() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(20261128)
    out = {
        "music_44k1": (sig.music_like(10.0, 44100, seed=1), 44100),
        "music_48k_mono": (sig.music_like(8.0, 48000, seed=2, channels=1), 48000),
        "music_22k": (sig.music_like(8.0, 22050, seed=3), 22050),
        "pink_stereo": (sig.pink_noise(6.0, 44100, rng, channels=2), 44100),
        "white_96k": (sig.white_noise(3.0, 96000, rng, channels=2), 96000),
        "chord_with_silence": (sig.concat(sig.chord([220.0, 277.2, 329.6], 3.0, 44100),
                                          sig.silence(2.0, 44100),
                                          sig.chord([196.0, 246.9], 2.0, 44100)), 44100),
        "drums_110": (sig.drum_loop(110.0, 8.0, 44100, rng, channels=2), 44100),
        "clicks_90_16k": (sig.click_track(90.0, 8.0, 16000), 16000),
        "glide": (sig.glide(110.0, 0.5, 6.0, 44100), 44100),
        "indep_stereo": (sig.independent_noise_stereo(4.0, 44100, rng), 44100),
    }
    x = sig.music_like(8.0, 44100, seed=5)
    steps = np.repeat([1.0, 0.1, 0.5, 0.03], x.shape[0] // 4 + 1)[: x.shape[0], None]
    out["music_level_steps"] = ((x * steps).astype(np.float32), 44100)
    return out


SIGNALS = _signals()


@pytest.fixture(scope="module")
def computed():
    """Kernel, plain reference and library values of every signal, computed once."""
    out = {}
    for name, (x, sr) in SIGNALS.items():
        out[name] = (h.analyse(x, sr).as_dict(), ref.ref_values(x, sr),
                     ref.library_references(x, sr))
    return out


# docs/FINGERPRINT.md, "check" column: absolute tolerances against the plain recompute
RECOMPUTE_TOL = {
    **{name: 0.01 for name, _, _ in ref.BAND_LEVELS},
    "lufs": 0.1,
    "crest_db": 0.01,
    "loudness_range": 1.0,
    "dynamic_range_variation": 0.05,
    "peak_consistency": 0.01,
    "chroma_energy": 1e-3,
    "phase_correlation": 1e-4,
}


def test_the_reference_names_are_the_kernels_names():
    assert ref.FINGERPRINT_NAMES == FINGERPRINT_NAMES
    assert set(RECOMPUTE_TOL) | {"spectral_centroid"} == set(ref.PLAIN_VALUES)


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_recomputed_values_match_the_plain_reference(computed, name):
    ours, plain, _ = computed[name]
    bad = {k: (ours[k], plain[k]) for k, tol in RECOMPUTE_TOL.items()
           if not abs(ours[k] - plain[k]) <= tol}
    assert not bad, bad
    assert ours["spectral_centroid"] == pytest.approx(plain["spectral_centroid"], rel=1e-3,
                                                      abs=1e-3)


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_values_match_the_libraries(computed, name):
    ours, _, lib = computed[name]
    assert ours["lufs"] == pytest.approx(lib["lufs"], abs=0.1)
    if lib["spectral_centroid"] > 0:
        assert ours["spectral_centroid"] == pytest.approx(lib["spectral_centroid"], rel=0.01)
    assert ours["chroma_energy"] == pytest.approx(lib["chroma_energy"], abs=0.02)


def test_loudness_range_matches_the_plain_ebu_reference():
    x, sr = SIGNALS["music_level_steps"]
    ours = h.analyse(x, sr).loudness_range
    assert ours == pytest.approx(lra.loudness_range(x, sr), abs=1.0)
    assert ours > 5.0  # the steps are 10-20 dB apart


# --- known answers ---------------------------------------------------------------------------


def test_band_levels_of_sines():
    """A sine lifts its own band far above the mid band; a mid-band sine leaves the others
    at the window's sidelobe floor."""
    for freq, band in ((40.0, "sub_bass_db"), (150.0, "bass_db"), (350.0, "low_mid_db"),
                       (3000.0, "upper_mid_db"), (5000.0, "presence_db"), (10000.0, "air_db")):
        d = h.analyse(sig.sine(freq, 2.0, 44100), 44100).as_dict()
        assert d[band] > 40.0, (freq, band, d[band])
    d = h.analyse(sig.sine(1000.0, 2.0, 44100), 44100).as_dict()
    assert all(d[name] < -40.0 for name, _, _ in ref.BAND_LEVELS), d


def test_band_levels_of_white_noise_follow_the_bandwidths(rng):
    """Flat power per Hz: each band's level is 10 log10 of its width over the mid band's."""
    d = h.analyse(sig.white_noise(10.0, 48000, rng), 48000).as_dict()
    for name, lo, hi in ref.BAND_LEVELS:
        assert d[name] == pytest.approx(10 * np.log10((hi - lo) / 1500.0), abs=0.3), name


def _semitone_comb(sr: int, seconds: float = 10.0) -> np.ndarray:
    """Sines every semitone from 25 Hz to 18 kHz, amplitude 1 / sqrt(f) (a pink-like slope),
    fixed phases: the same continuous signal at any sample rate."""
    t = np.arange(int(sr * seconds)) / sr
    freqs = 25.0 * 2.0 ** (np.arange(117) / 12.0)
    phases = np.random.default_rng(0).uniform(0.0, 2.0 * np.pi, freqs.size)
    x = sum(np.sin(2 * np.pi * f * t + p) / np.sqrt(f) for f, p in zip(freqs, phases, strict=True))
    return (0.1 * x / np.abs(x).max()).astype(np.float32)[:, None]


def test_band_levels_do_not_depend_on_the_sample_rate():
    """Bins are shared between bands by overlap, so a band edge between two bins' centres
    moves nothing: the same signal at 44.1 and 48 kHz reads the same levels (bins counted whole
    by their centre, as in version 1, move the bass level by 0.5 dB here)."""
    a = h.analyse(_semitone_comb(44100), 44100).as_dict()
    b = h.analyse(_semitone_comb(48000), 48000).as_dict()
    for name, _, _ in ref.BAND_LEVELS:
        assert a[name] == pytest.approx(b[name], abs=0.15), name


def test_band_levels_of_silence_and_of_a_band_beyond_nyquist():
    silent = h.analyse(sig.silence(2.0, 44100), 44100).as_dict()
    assert all(silent[name] == 0.0 for name, _, _ in ref.BAND_LEVELS)
    narrow = h.analyse(sig.sine(1000.0, 2.0, 8000), 8000).as_dict()  # Nyquist 4 kHz < 6 kHz
    assert narrow["air_db"] == -80.0 and narrow["presence_db"] == -80.0


def _stereo_tone(levels_dbfs: tuple[float, ...], seconds: float, sr: int = 48000) -> np.ndarray:
    """EBU Tech 3341/3342 test signals: a 1 kHz stereo sine, ``seconds`` at each level."""
    parts = [sig.sine(1000.0, seconds, sr, amp=10 ** (lv / 20.0)) for lv in levels_dbfs]
    mono = sig.concat(*parts)
    return np.concatenate([mono, mono], axis=1)


@pytest.mark.parametrize(("level", "lufs"), [(-23.0, -23.0), (-33.0, -33.0)])
def test_ebu_tech_3341_cases_1_and_2(level, lufs):
    """Tech 3341, test cases 1 and 2: a 1 kHz stereo sine at -23 / -33 dBFS (its peak, in each
    channel) reads -23 / -33 LUFS +-0.1."""
    assert h.analyse(_stereo_tone((level,), 20.0), 48000).lufs == pytest.approx(lufs, abs=0.1)


@pytest.mark.parametrize(("levels", "seconds", "lra"), [
    ((-20.0, -30.0), 20.0, 10.0),
    ((-20.0, -15.0), 20.0, 5.0),
    ((-40.0, -20.0), 20.0, 20.0),
    ((-50.0, -35.0, -20.0, -35.0, -50.0), 20.0, 15.0),
])
def test_ebu_tech_3342_cases_1_to_4(levels, seconds, lra):
    """Tech 3342, test cases 1-4: stepped 1 kHz stereo sines and their loudness range, +-1 LU."""
    x = _stereo_tone(levels, seconds)
    assert h.analyse(x, 48000).loudness_range == pytest.approx(lra, abs=1.0)


def test_lufs_of_a_997hz_tone_in_one_channel_is_minus_3():
    tone = sig.sine(997.0, 5.0, 48000, amp=1.0)
    x = np.concatenate([tone, np.zeros_like(tone)], axis=1)
    assert h.analyse(x, 48000).lufs == pytest.approx(-3.01, abs=0.1)


@pytest.mark.parametrize(("channels", "weights"), [
    (6, (1.0, 1.0, 1.0, 0.0, 1.41, 1.41)),  # 5.1: L R C LFE Ls Rs
    (8, (1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41, 1.41)),  # 7.1: L R C LFE Lb Rb Ls Rs
])
def test_surround_loudness_follows_bs1770_4_channel_weights(channels, weights):
    """The same tone in one channel at a time: the LFE adds nothing, a surround +1.5 dB."""
    tone = sig.sine(997.0, 4.0, 48000, amp=0.25)[:, 0]
    base = None
    for c, g in enumerate(weights):
        x = np.zeros((tone.size, channels), dtype=np.float32)
        x[:, c] = tone
        lufs = h.analyse(x, 48000).lufs
        assert lufs == pytest.approx(ref.ref_lufs(x, 48000), abs=0.01), c
        if c == 0:
            base = lufs
        elif g == 0.0:
            assert lufs == -70.0, c  # only the LFE: every block is gated out
        else:
            assert lufs - base == pytest.approx(10 * np.log10(g), abs=0.01), c


def test_crest_factor_known_answers():
    assert h.analyse(sig.sine(440.0, 2.0, 44100), 44100).crest_db == pytest.approx(
        3.0103, abs=0.01)
    assert h.analyse(sig.square(100.0, 2.0, 44100), 44100).crest_db == pytest.approx(
        0.0, abs=0.01)


def test_spectral_centroid_known_answers(rng):
    white = h.analyse(sig.white_noise(5.0, 44100, rng), 44100).as_dict()
    assert white["spectral_centroid"] == pytest.approx(44100 / 4, rel=0.02)
    sine = h.analyse(sig.sine(1000.0, 2.0, 44100), 44100).as_dict()
    assert sine["spectral_centroid"] == pytest.approx(1000.0, rel=0.02)
    pink = h.analyse(sig.pink_noise(5.0, 44100, rng), 44100).as_dict()
    assert pink["spectral_centroid"] < 0.8 * white["spectral_centroid"]


def test_chroma_energy_of_a_tone_and_of_noise(rng):
    tone = h.analyse(sig.sine(440.0, 3.0, 44100), 44100).chroma_energy
    noise = h.analyse(sig.white_noise(3.0, 44100, rng), 44100).chroma_energy
    assert tone > 0.3 and noise == pytest.approx(1 / 12, abs=0.01)


def test_per_second_values_known_answers():
    steady = h.analyse(sig.sine(440.0, 6.0, 44100), 44100).as_dict()
    assert steady["dynamic_range_variation"] == pytest.approx(0.0, abs=1e-3)
    assert steady["peak_consistency"] == pytest.approx(1.0, abs=1e-3)
    # peaks alternate 0.8 / 0.2 second by second: CV = 0.6, consistency 1 / 1.6
    x = sig.concat(*[sig.sine(440.0, 1.0, 44100, amp=a) for a in (0.8, 0.2) * 3])
    assert h.analyse(x, 44100).peak_consistency == pytest.approx(1 / 1.6, abs=0.01)


def test_phase_correlation_known_answers(rng):
    mono = sig.mono_to_stereo(sig.white_noise(2.0, 44100, rng))
    assert h.analyse(mono, 44100).phase_correlation == 1.0
    anti = h.analyse(sig.anti_phase(sig.white_noise(2.0, 44100, rng)), 44100)
    assert anti.phase_correlation == pytest.approx(-1.0, abs=1e-9)
    indep = h.analyse(sig.independent_noise_stereo(4.0, 44100, rng), 44100)
    assert abs(indep.phase_correlation) < 0.01
