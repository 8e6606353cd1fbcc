"""Every value of the fingerprint: the spec's reference check and a known answer.

Two kinds of reference (tests/reference.py): a plain whole-array recomputation of the
definition in docs/FINGERPRINT.md (tolerances of the spec's "own recompute" column), and the
libraries the spec names (librosa, pyloudnorm) on the same frames. Known-answer signals pin the
values whose meaning a recomputation cannot check (tempo octave, stability, density, pitch).
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
        out[name] = (h.analyse(x, sr).as_dict(), ref.ref_fingerprint(x, sr),
                     ref.library_references(x, sr))
    return out


# spec, "own recompute" column: absolute tolerances
RECOMPUTE_TOL = {
    **{k: 0.005 for k in NAMES[:7]},
    "crest_db": 0.01,
    "bass_mid_ratio": 0.1,
    "silence_ratio": 0.01,
    "dynamic_range_variation": 0.05,
    "peak_consistency": 0.01,
    "stereo_width": 1e-4,
    "phase_correlation": 1e-4,
    "loudness_range": 1.0,
    "lufs": 0.1,
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_recomputed_values_match_the_plain_reference(computed, name):
    ours, plain, _ = computed[name]
    bad = {k: (ours[k], plain[k]) for k, tol in RECOMPUTE_TOL.items()
           if not abs(ours[k] - plain[k]) <= tol}
    assert not bad, bad


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_values_match_the_libraries(computed, name):
    ours, _, lib = computed[name]
    assert ours["lufs"] == pytest.approx(lib["lufs"], abs=0.1)
    if lib["spectral_centroid"] > 0:
        assert ours["spectral_centroid"] == pytest.approx(lib["spectral_centroid"], rel=0.01)
        assert ours["spectral_rolloff"] == pytest.approx(lib["spectral_rolloff"], rel=0.02)
    assert ours["spectral_flatness"] == pytest.approx(lib["spectral_flatness"], abs=0.005)
    assert ours["chroma_energy"] == pytest.approx(lib["chroma_energy"], abs=0.02)
    assert ours["harmonic_ratio"] == pytest.approx(lib["harmonic_ratio"], abs=0.03)


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_the_rest_matches_the_plain_reference(computed, name):
    """Values whose spec check is a known answer still follow their definition exactly."""
    ours, plain, _ = computed[name]
    for k in ("transient_density", "rhythm_stability", "pitch_stability", "harmonic_ratio",
              "spectral_centroid", "spectral_rolloff", "spectral_flatness", "chroma_energy"):
        assert ours[k] == pytest.approx(plain[k], rel=1e-3, abs=1e-3), k
    assert ours["tempo_bpm"] == pytest.approx(plain["tempo_bpm"], rel=0.01)


def test_loudness_range_matches_the_plain_ebu_reference():
    x, sr = SIGNALS["music_level_steps"]
    ours = h.analyse(x, sr).loudness_range
    assert ours == pytest.approx(lra.loudness_range(x, sr), abs=1.0)
    assert ours > 5.0  # the steps are 10-20 dB apart


# --- known answers ---------------------------------------------------------------------------


def test_bands_of_sines():
    for freq, band in ((40.0, "sub_bass_pct"), (150.0, "bass_pct"), (350.0, "low_mid_pct"),
                       (1000.0, "mid_pct"), (3000.0, "upper_mid_pct"),
                       (5000.0, "presence_pct"), (10000.0, "air_pct")):
        d = h.analyse(sig.sine(freq, 2.0, 44100), 44100).as_dict()
        # the Hann main lobe spans +-2 bins (+-43 Hz): the 20-60 Hz band cannot hold all of it
        assert d[band] > (0.8 if band == "sub_bass_pct" else 0.99), (freq, band, d[band])
        assert sum(d[k] for k in NAMES[:7]) == pytest.approx(1.0, abs=1e-12)


def test_lufs_of_a_997hz_tone_in_one_channel_is_minus_3():
    tone = sig.sine(997.0, 5.0, 48000, amp=1.0)
    x = np.concatenate([tone, np.zeros_like(tone)], axis=1)
    assert h.analyse(x, 48000).lufs == pytest.approx(-3.01, abs=0.1)


def test_crest_factor_known_answers():
    assert h.analyse(sig.sine(440.0, 2.0, 44100), 44100).crest_db == pytest.approx(
        3.0103, abs=0.01)
    assert h.analyse(sig.square(100.0, 2.0, 44100), 44100).crest_db == pytest.approx(
        0.0, abs=0.01)


def test_silence_ratio_of_half_silent_track():
    x = sig.concat(sig.white_noise(5.0, 44100, np.random.default_rng(1)),
                   sig.silence(5.0, 44100))
    assert h.analyse(x, 44100).silence_ratio == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
@pytest.mark.parametrize("bpm", [60, 75, 90, 100, 120, 135, 150, 174, 200])
def test_click_track_tempo_and_stability(bpm, sr):
    d = h.analyse(sig.click_track(bpm, 20.0, sr), sr).as_dict()
    assert d["tempo_bpm"] == pytest.approx(bpm, rel=0.01)  # and so the right octave
    assert d["rhythm_stability"] >= 0.95


@pytest.mark.parametrize("bpm", [60, 85, 110, 128, 146, 170, 200])
def test_drum_loop_tempo(bpm, rng):
    d = h.analyse(sig.drum_loop(bpm, 24.0, 44100, rng, channels=2), 44100).as_dict()
    assert d["tempo_bpm"] == pytest.approx(bpm, rel=0.01)


def test_transient_density_of_a_120_bpm_click_is_2_per_second():
    d = h.analyse(sig.click_track(120.0, 30.0, 44100), 44100).as_dict()
    assert d["transient_density"] == pytest.approx(2.0, abs=0.1)


def test_white_noise_has_low_rhythm_stability(rng):
    d = h.analyse(sig.white_noise(20.0, 44100, rng, channels=2), 44100).as_dict()
    assert d["rhythm_stability"] < 0.5
    assert d["pitch_stability"] == 0.0  # noise has no voiced frame


def test_pitch_stability_known_answers():
    steady = h.analyse(sig.sine(220.0, 5.0, 44100), 44100).pitch_stability
    assert steady >= 0.95
    glide = h.analyse(sig.glide(110.0, 1.0, 4.0, 44100), 44100).pitch_stability
    assert glide < 0.5


def test_spectral_known_answers(rng):
    white = h.analyse(sig.white_noise(5.0, 44100, rng), 44100).as_dict()
    assert white["spectral_flatness"] == pytest.approx(np.exp(-np.euler_gamma), abs=0.02)
    assert white["spectral_centroid"] == pytest.approx(44100 / 4, rel=0.02)
    sine = h.analyse(sig.sine(1000.0, 2.0, 44100), 44100).as_dict()
    assert sine["spectral_flatness"] < 1e-3
    assert sine["spectral_centroid"] == pytest.approx(1000.0, rel=0.02)
    pink = h.analyse(sig.pink_noise(5.0, 44100, rng), 44100).as_dict()
    assert pink["spectral_centroid"] < 0.8 * white["spectral_centroid"]


def test_harmonic_ratio_orders_tones_and_clicks():
    chord = h.analyse(sig.chord([261.6, 329.6, 392.0], 4.0, 44100), 44100).as_dict()
    clicks = h.analyse(sig.click_track(120.0, 8.0, 44100), 44100).as_dict()
    assert chord["harmonic_ratio"] > 0.9 and clicks["harmonic_ratio"] < 0.3


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


def test_stereo_known_answers(rng):
    mono = sig.mono_to_stereo(sig.white_noise(2.0, 44100, rng))
    d = h.analyse(mono, 44100).as_dict()
    assert d["stereo_width"] == 0.0 and d["phase_correlation"] == 1.0
    d = h.analyse(sig.anti_phase(sig.white_noise(2.0, 44100, rng)), 44100).as_dict()
    assert d["stereo_width"] == pytest.approx(1.0, abs=1e-9)
    assert d["phase_correlation"] == pytest.approx(-1.0, abs=1e-9)
    d = h.analyse(sig.independent_noise_stereo(4.0, 44100, rng), 44100).as_dict()
    assert d["stereo_width"] == pytest.approx(0.5, abs=0.01)
    assert abs(d["phase_correlation"]) < 0.01
