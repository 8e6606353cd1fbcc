"""Known-answer tests of the test-side references and signals themselves.

The kernels are checked against tests/reference.py, tests/lra_reference.py and the librosa /
pyloudnorm wrappers; these tests make sure those references (and the synthetic signals in
tests/signals.py) are right first: closed-form answers, published constants, and agreement
with the libraries on the same frames.
"""

import itertools
import math

import librosa
import lra_reference as lra
import numpy as np
import pytest
import reference as ref
import signals as sig
import soundfile as sf
from scipy.signal import freqz

SR = 44100


def stereo_one_channel(x: np.ndarray) -> np.ndarray:
    """Stereo PCM with ``x`` (mono) in L and silence in R."""
    out = np.zeros((x.shape[0], 2), dtype=np.float32)
    out[:, 0] = x[:, 0]
    return out


def alternating_pink(rng: np.random.Generator, seconds_each: float, sr: int) -> np.ndarray:
    """One stereo pink noise, 10 dB louder in segments 1 and 3 than in 2 and 4 (-20 / -30 dBFS
    RMS), so that the loudness steps are exactly 10 LU."""
    noise = sig.pink_noise(4 * seconds_each, sr, rng, rms=sig.db_to_amp(-20), channels=2)
    n = int(round(seconds_each * sr))
    gain = np.ones(noise.shape[0], dtype=np.float32)
    gain[n : 2 * n] = sig.db_to_amp(-10)
    gain[3 * n :] = sig.db_to_amp(-10)
    return noise * gain[:, None]


# ==============================================================================================
# signals
# ==============================================================================================


def test_signals_have_the_analyzer_layout(rng):
    cases = [
        sig.sine(440.0, 0.5, SR, channels=2),
        sig.square(100.0, 0.5, SR),
        sig.silence(0.5, SR, 3),
        sig.dc(0.25, 0.5, SR),
        sig.single_sample(0.5, 2),
        sig.white_noise(0.5, SR, rng, channels=2),
        sig.pink_noise(0.5, SR, rng),
        sig.glide(110.0, 1.0, 0.5, SR),
        sig.chord([220.0, 277.2, 329.6], 0.5, SR),
        sig.click_track(120.0, 0.5, SR),
        sig.drum_loop(120.0, 0.5, SR, rng),
        sig.music_like(0.5, SR),
        sig.mono_to_stereo(sig.sine(440.0, 0.5, SR)),
        sig.anti_phase(sig.sine(440.0, 0.5, SR)),
        sig.independent_noise_stereo(0.5, SR, rng),
    ]
    for x in cases:
        assert x.dtype == np.float32 and x.ndim == 2
        assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0
    assert cases[0].shape == (22050, 2)
    assert cases[4].shape == (1, 2)


def test_random_signals_follow_the_generator():
    a = sig.drum_loop(100.0, 2.0, SR, np.random.default_rng(5))
    b = sig.drum_loop(100.0, 2.0, SR, np.random.default_rng(5))
    c = sig.drum_loop(100.0, 2.0, SR, np.random.default_rng(6))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.array_equal(sig.click_track(90.0, 2.0, SR), sig.click_track(90.0, 2.0, SR))
    assert np.array_equal(sig.music_like(1.0, SR), sig.music_like(1.0, SR))


def test_click_track_puts_one_click_per_beat_from_t0():
    x = sig.click_track(120.0, 3.0, SR)[:, 0]
    assert x[0] != 0.0
    starts = np.flatnonzero((x != 0) & (np.concatenate([[0.0], x[:-1]]) == 0))
    assert list(starts) == [0, 22050, 44100, 66150, 88200, 110250]
    assert np.max(np.abs(x)) == pytest.approx(0.8, abs=1e-6)


def test_square_is_full_scale_and_levels_are_exact(rng):
    assert np.all(np.abs(sig.square(441.0, 0.1, SR)) == 1.0)
    assert ref._rms(sig.white_noise(2.0, SR, rng, rms=0.1)) == pytest.approx(0.1, rel=0.01)
    assert ref._rms(sig.pink_noise(2.0, SR, rng, rms=0.05)) == pytest.approx(0.05, rel=1e-4)
    assert sig.db_to_amp(-20.0) == pytest.approx(0.1)


def test_pink_noise_has_equal_power_per_octave(rng):
    x = sig.pink_noise(20.0, SR, rng)[:, 0].astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1.0 / SR)
    octaves = [power[(f >= lo) & (f < 2 * lo)].sum() for lo in (125.0, 500.0, 2000.0, 8000.0)]
    assert np.max(octaves) / np.min(octaves) < 1.1
    assert power[f < 19.9].sum() == pytest.approx(0.0, abs=1e-9 * power.sum())


def test_glide_follows_its_exponential_frequency():
    x = sig.glide(110.0, 1.0, 3.0, SR)[:, 0].astype(np.float64)
    # instantaneous frequency from the analytic signal's phase, away from the ends
    from scipy.signal import hilbert

    phase = np.unwrap(np.angle(hilbert(x)))
    inst = np.diff(phase) * SR / (2 * np.pi)
    t = (np.arange(inst.size) + 0.5) / SR
    mid = slice(SR // 10, inst.size - SR // 10)
    assert np.allclose(inst[mid], 110.0 * 2.0 ** t[mid], rtol=0.01)


def test_write_audio_round_trips(tmp_path):
    x = sig.music_like(1.0, SR)
    wav = sig.write_audio(tmp_path / "a.wav", x, SR)
    flac = sig.write_audio(tmp_path / "a.flac", x, SR)
    fwav = sig.write_audio(tmp_path / "f.wav", x, SR, float_wav=True)
    ogg = sig.write_audio(tmp_path / "a.ogg", x, SR)
    mp3 = sig.write_audio(tmp_path / "a.mp3", x, SR)
    a, sra = sf.read(wav, dtype="float32")
    b, srb = sf.read(flac, dtype="float32")
    c, _ = sf.read(fwav, dtype="float32")
    assert sra == srb == SR
    assert sf.info(wav).subtype == "PCM_16" and sf.info(fwav).subtype == "FLOAT"
    assert np.array_equal(a, b)  # same PCM_16 in both containers
    assert np.array_equal(a, sig.quantize_pcm16(x) / np.float32(32768))
    assert np.max(np.abs(a - x)) <= 0.5 / 32768 + 1e-7
    assert np.array_equal(c, x)
    for lossy in (ogg, mp3):
        y, sry = sf.read(lossy, dtype="float32")
        assert sry == SR and y.shape[1] == 2
        assert abs(y.shape[0] - x.shape[0]) < 0.1 * SR
    with pytest.raises(ValueError):
        sig.write_audio(tmp_path / "a.xyz", x, SR)


# ==============================================================================================
# the analysis frame
# ==============================================================================================


@pytest.mark.parametrize(
    ("sr", "n_fft"),
    [
        (4000, 256), (7999, 256), (8000, 512), (11025, 512), (16000, 1024), (22050, 1024),
        (32000, 2048), (44100, 2048), (48000, 2048), (63999, 2048), (64000, 4096),
        (96000, 4096), (128000, 8192), (192000, 8192),
    ],
)  # fmt: skip
def test_n_fft_for_rate(sr, n_fft):
    assert ref.n_fft_for_rate(sr) == n_fft


@pytest.mark.parametrize("sr", [22050, 44100, 96000])
def test_frame_grid_count(sr):
    n_fft = ref.n_fft_for_rate(sr)
    hop = n_fft // 4
    expected = {1: 1, n_fft - 1: 1, n_fft: 1, n_fft + 1: 2, hop + n_fft: 2, 10 * hop + n_fft: 11}
    for n, frames in expected.items():
        assert ref.frame_count(n, n_fft) == frames
        power, active = ref.frames_power(np.full(n, 0.5), sr)
        assert power.shape == (n_fft // 2 + 1, frames)
        assert active.shape == (frames,)
    with pytest.raises(ValueError):
        ref.frames_power(np.zeros(0), sr)


def test_periodic_hann():
    w = ref.periodic_hann(2048)
    n = np.arange(2048)
    assert np.allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * n / 2048), atol=1e-15)
    assert w[0] == 0.0 and w[1024] == pytest.approx(1.0)
    assert w.sum() == pytest.approx(1024.0)


def test_frames_power_is_the_plain_stft(rng):
    n_fft, hop = 2048, 512
    x = rng.standard_normal(10 * hop + n_fft + 100)
    power, _ = ref.frames_power(x, SR)
    assert power.shape[1] == 1 + math.ceil((x.size - n_fft) / hop)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    assert np.allclose(power[:, 3], np.abs(np.fft.rfft(w * x[3 * hop : 3 * hop + n_fft])) ** 2)
    last = power.shape[1] - 1
    tail = np.zeros(n_fft)
    tail[: x.size - last * hop] = x[last * hop :]
    assert np.allclose(power[:, last], np.abs(np.fft.rfft(w * tail)) ** 2)


def test_active_frames_use_the_raw_frame_rms():
    # frame RMS includes the padding zeros: a constant 1e-3 is active except the padded end
    _, active = ref.frames_power(np.full(4096, 1e-3), SR)
    assert active.tolist() == [True] * 5
    _, active = ref.frames_power(np.full(4096 + 256, 1e-3), SR)
    assert active.tolist() == [True] * 5 + [False]
    _, active = ref.frames_power(np.full(4096, 0.99e-3), SR)
    assert not active.any()


# ==============================================================================================
# band levels
# ==============================================================================================


@pytest.mark.parametrize(
    ("freq", "band"),
    [(30.0, "sub_bass_db"), (120.0, "bass_db"), (350.0, "low_mid_db"), (3000.0, "upper_mid_db"),
     (5000.0, "presence_db"), (10000.0, "air_db")],
)  # fmt: skip
def test_a_sine_lifts_its_own_band(freq, band):
    levels = ref.ref_band_levels(sig.sine(freq, 2.0, SR), SR)
    assert levels[band] > 40.0
    # a 1 kHz sine in the mid band leaves every other band near the window's sidelobes
    assert max(ref.ref_band_levels(sig.sine(1000.0, 2.0, SR), SR).values()) < -40.0


def test_band_levels_of_known_mixtures():
    both = sig.sine(100.0, 2.0, SR, amp=0.3) + sig.sine(1000.0, 2.0, SR, amp=0.3)
    assert ref.ref_band_levels(both, SR)["bass_db"] == pytest.approx(0.0, abs=0.05)
    louder_bass = sig.sine(100.0, 2.0, SR, amp=0.6) + sig.sine(1000.0, 2.0, SR, amp=0.06)
    assert ref.ref_band_levels(louder_bass, SR)["bass_db"] == pytest.approx(20.0, abs=0.05)


def test_band_levels_of_silence_and_of_low_rates():
    assert set(ref.ref_band_levels(sig.silence(1.0, SR), SR).values()) == {0.0}
    # at 11025 Hz the air band [6000, 5512.5) is empty
    noise = sig.white_noise(1.0, 11025, np.random.default_rng(1))
    assert ref.ref_band_levels(noise, 11025)["air_db"] == -80.0


def test_band_bin_weights_share_each_bin_by_overlap():
    df = 44100 / 2048
    w = ref.band_bin_weights(44100, 2048, 20.0, 60.0)
    # bin 1 spans [10.8, 32.3) Hz: half of it from 20 Hz; bin 2 [32.3, 53.8) whole; bin 3
    # [53.8, 75.4) up to 60 Hz
    assert w[:5] == pytest.approx([0.0, (1.5 * df - 20.0) / df, 1.0, (60.0 - 2.5 * df) / df, 0.0])
    # the bands tile the spectrum: the weights of adjacent bands add up to 1 per bin
    edges = (20.0, 60.0, 250.0, 500.0, 2000.0, 4000.0, 6000.0, 20000.0)
    total = sum(ref.band_bin_weights(44100, 2048, lo, hi) for lo, hi in itertools.pairwise(edges))
    f = ref.bin_frequencies(44100, 2048)
    inner = (f > 20.0 + df) & (f < 20000.0 - df)
    assert np.allclose(total[inner], 1.0)


# ==============================================================================================
# lufs, loudness range
# ==============================================================================================


def test_k_weighting_matches_the_bs1770_table_at_48k():
    # ITU-R BS.1770-4, tables 1 and 2 (48 kHz)
    shelf = ([1.53512485958697, -2.69169618940638, 1.19839281085285],
             [1.0, -1.69065929318241, 0.73248077421585])  # fmt: skip
    high_pass = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])
    f = np.geomspace(20.0, 20000.0, 400)
    table = np.ones(f.size, dtype=complex)
    own = np.ones(f.size, dtype=complex)
    for b, a in (shelf, high_pass):
        table *= freqz(b, a, worN=f, fs=48000)[1]
    for b, a in lra.k_weighting_filters(48000):
        own *= freqz(b, a, worN=f, fs=48000)[1]
    assert np.max(np.abs(20 * np.log10(np.abs(own) / np.abs(table)))) < 0.06


def test_997hz_full_scale_in_one_channel_is_minus_3_lufs():
    x = stereo_one_channel(sig.sine(997.0, 10.0, 48000, amp=1.0))
    assert ref.ref_lufs(x, 48000) == pytest.approx(-3.01, abs=0.1)
    assert ref.pyloudnorm_lufs(x, 48000) == pytest.approx(-3.01, abs=0.1)


def test_integrated_loudness_agrees_with_pyloudnorm(rng):
    cases = [
        (sig.music_like(6.0, SR), SR),
        (sig.music_like(6.0, 48000, channels=1), 48000),
        (sig.pink_noise(5.0, 22050, rng, channels=2), 22050),
        (alternating_pink(rng, 3.0, SR), SR),
        (sig.white_noise(4.0, SR, rng, rms=0.05, channels=5), SR),  # surround weights 1.41
        (sig.concat(sig.sine(440.0, 3.0, SR), sig.silence(3.0, SR)), SR),
    ]
    for x, sr in cases:
        assert ref.ref_lufs(x, sr) == pytest.approx(ref.pyloudnorm_lufs(x, sr), abs=0.1)


def test_bs1770_4_channel_weights():
    """ITU-R BS.1770-4, table 3: L R C 1.0, LFE excluded, surrounds 1.41 (5.1 and 7.1)."""
    assert lra.channel_weights(2).tolist() == [1.0, 1.0]
    assert lra.channel_weights(5).tolist() == [1.0, 1.0, 1.0, 1.41, 1.41]
    assert lra.channel_weights(6).tolist() == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41]
    assert lra.channel_weights(8).tolist() == [1.0, 1.0, 1.0, 0.0, 1.41, 1.41, 1.41, 1.41]
    tone = sig.sine(997.0, 4.0, 48000, amp=0.5)[:, 0]
    front = np.zeros((tone.size, 6), dtype=np.float32)
    front[:, 0] = tone
    rear = np.zeros_like(front)
    rear[:, 4] = tone
    diff = ref.ref_lufs(rear, 48000) - ref.ref_lufs(front, 48000)
    assert diff == pytest.approx(10 * math.log10(1.41), abs=1e-6)


def test_loudness_gates_and_degenerate_input():
    tone = sig.sine(997.0, 6.0, SR, amp=0.5)
    quiet = sig.sine(997.0, 6.0, SR, amp=0.5 * sig.db_to_amp(-40))
    # blocks 40 LU below the rest fall under the -10 LU relative gate: of the 117 blocks, the
    # 57 tone blocks and the 3 that hold 3/4, 2/4 and 1/4 of tone remain: mean 58.5 / 60
    both = ref.ref_lufs(sig.concat(tone, quiet), SR)
    assert both == pytest.approx(ref.ref_lufs(tone, SR) + 10 * math.log10(58.5 / 60), abs=0.01)
    assert ref.ref_lufs(sig.silence(3.0, SR), SR) == -70.0
    assert ref.ref_lufs(sig.sine(997.0, 0.35, SR), SR) == -70.0  # no complete 400 ms block
    assert ref.ref_lufs(sig.sine(997.0, 3.0, SR, amp=1e-4), SR) == -70.0  # ~ -83 LUFS
    assert ref.pyloudnorm_lufs(sig.silence(3.0, SR), SR) == -70.0
    assert ref.pyloudnorm_lufs(sig.silence(0.1, SR), SR) == -70.0


def test_subblocks_follow_the_floor_rule():
    assert lra.subblock_bounds(44100, 44100).tolist() == [i * 4410 for i in range(11)]
    # 11025 / 10 = 1102.5: sub-blocks alternate 1102 and 1103 samples
    bounds = lra.subblock_bounds(4000, 11025)
    assert bounds.tolist() == [0, 1102, 2205, 3307]
    assert lra.block_energies(sig.sine(997.0, 0.39, SR), SR, 4).size == 0
    assert lra.block_energies(sig.sine(997.0, 0.4, SR), SR, 4).size == 1
    assert lra.block_energies(sig.sine(997.0, 3.0, SR), SR, 30).size == 1


def test_loudness_range_of_a_10_lu_step(rng):
    x = alternating_pink(rng, 10.0, SR)
    assert ref.ref_loudness_range(x, SR) == pytest.approx(10.0, abs=1.0)
    assert ref.ref_loudness_range(x, SR) == pytest.approx(10.0, abs=0.2)  # tighter, it is exact


def test_loudness_range_of_steady_noise_and_degenerate_input(rng):
    assert ref.ref_loudness_range(sig.pink_noise(20.0, SR, rng, channels=2), SR) < 1.0
    assert ref.ref_loudness_range(sig.silence(5.0, SR), SR) == 0.0
    assert ref.ref_loudness_range(sig.pink_noise(2.9, SR, rng), SR) == 0.0  # no 3 s window
    assert ref.ref_loudness_range(sig.pink_noise(3.0, SR, rng), SR) == 0.0  # one window only


def test_loudness_range_relative_gate(rng):
    # 20 s of noise, then 20 s 30 dB quieter: the quiet windows fall under the -20 LU gate
    loud = sig.pink_noise(20.0, SR, rng, rms=0.1)
    x = sig.concat(loud, loud * np.float32(sig.db_to_amp(-30)))
    st = lra.short_term_loudness(x, SR)
    assert st.size == 371
    assert ref.ref_loudness_range(x, SR) < 3.0


# ==============================================================================================
# crest, spectral centroid
# ==============================================================================================


def test_crest_factor():
    assert ref.ref_crest_db(sig.sine(1000.0, 2.0, SR)) == pytest.approx(3.0103, abs=0.01)
    assert ref.ref_crest_db(sig.square(100.0, 1.0, SR)) == pytest.approx(0.0, abs=1e-12)
    assert ref.ref_crest_db(sig.silence(1.0, SR)) == 0.0
    assert ref.ref_crest_db(sig.single_sample(0.5)) == pytest.approx(0.0, abs=1e-12)
    # all channels together: a sine in L and silence in R has rms / sqrt(2)
    one = stereo_one_channel(sig.sine(1000.0, 2.0, SR))
    assert ref.ref_crest_db(one) == pytest.approx(3.0103 + 3.0103, abs=0.01)


def test_white_and_pink_noise_centroid(rng):
    centroid = ref.ref_spectral_centroid(sig.white_noise(5.0, SR, rng), SR)
    assert centroid == pytest.approx(SR / 4, rel=0.02)
    assert ref.ref_spectral_centroid(sig.pink_noise(5.0, SR, rng), SR) < 0.8 * centroid


def test_centroid_of_a_sine_and_of_silence():
    df = SR / 2048
    assert ref.ref_spectral_centroid(sig.sine(1000.0, 2.0, SR), SR) == pytest.approx(
        1000.0, abs=df / 4)
    assert ref.ref_spectral_centroid(sig.silence(1.0, SR), SR) == 0.0


def test_centroid_only_counts_active_frames():
    tone = sig.sine(1000.0, 2.0, SR)
    padded = sig.concat(sig.silence(3.0, SR), tone, sig.silence(3.0, SR))
    # only the frames overlapping the tone's edges differ
    assert ref.ref_spectral_centroid(padded, SR) == pytest.approx(
        ref.ref_spectral_centroid(tone, SR), rel=0.05)


def test_centroid_agrees_with_librosa(rng):
    for x, sr in [
        (sig.music_like(4.0, SR), SR),
        (sig.concat(sig.white_noise(2.0, 48000, rng), sig.silence(1.0, 48000)), 48000),
        (sig.chord([220.0, 554.4, 1318.5], 2.0, 22050), 22050),
    ]:
        power, active = ref.frames_power(ref.to_mono(x), sr)
        n_fft = ref.n_fft_for_rate(sr)
        own = ref.ref_spectral_centroid(x, sr)
        assert own == pytest.approx(ref.librosa_centroid(np.sqrt(power), sr, n_fft, active),
                                    rel=1e-6)


# ==============================================================================================
# chroma energy
# ==============================================================================================


@pytest.mark.parametrize("sr", [22050, 44100, 48000, 96000])
def test_chroma_filterbank_matches_librosa(sr):
    n_fft = ref.n_fft_for_rate(sr)
    own = ref.chroma_filterbank(sr, n_fft)
    lib = librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=0.0)
    assert own.shape == lib.shape == (12, n_fft // 2 + 1)
    assert np.max(np.abs(own - lib)) < 1e-6


def test_chroma_energy_known_answers(rng):
    a440 = sig.sine(440.0, 2.0, SR)
    power, _ = ref.frames_power(ref.to_mono(a440), SR)
    chroma = ref.chroma_filterbank(SR, 2048) @ power
    assert np.all(np.argmax(chroma, axis=0) == 9)  # C, C#, ..., A: row 9
    assert ref.ref_chroma_energy(a440, SR) > 0.3
    noise = ref.ref_chroma_energy(sig.white_noise(2.0, SR, rng), SR)
    assert 1.0 / 12.0 <= noise < 0.1
    assert ref.ref_chroma_energy(sig.silence(1.0, SR), SR) == 0.0


def test_chroma_energy_agrees_with_librosa(rng):
    for x, sr in [
        (sig.music_like(4.0, SR), SR),
        (sig.chord([261.63, 329.63, 392.0], 2.0, 48000), 48000),
        (sig.concat(sig.pink_noise(1.0, 22050, rng), sig.silence(1.0, 22050)), 22050),
    ]:
        power, active = ref.frames_power(ref.to_mono(x), sr)
        lib = ref.librosa_chroma_energy(power, sr, ref.n_fft_for_rate(sr), active)
        assert ref.ref_chroma_energy(x, sr) == pytest.approx(lib, abs=1e-5)


# ==============================================================================================
# dynamic range variation, peak consistency
# ==============================================================================================


def test_per_second_values():
    sine = sig.sine(441.0, 1.0, SR, amp=0.5)
    square = sig.square(441.0, 1.0, SR, amp=1.0)
    x = sig.concat(sine, square, sine, square, sig.silence(1.0, SR), sig.sine(441.0, 0.5, SR))
    # active seconds: 3.0103, 0, 3.0103, 0 dB crest; peaks 0.5, 1, 0.5, 1
    assert ref.ref_dynamic_range_variation(x, SR) == pytest.approx(3.0103 / 2, abs=0.01)
    assert ref.ref_peak_consistency(x, SR) == pytest.approx(1.0 / (1.0 + 1.0 / 3.0), abs=1e-3)
    steady = sig.sine(441.0, 5.0, SR)
    assert ref.ref_dynamic_range_variation(steady, SR) == pytest.approx(0.0, abs=1e-3)
    assert ref.ref_peak_consistency(steady, SR) == pytest.approx(1.0, abs=1e-3)
    for quiet in (sig.silence(3.0, SR), sig.sine(441.0, 0.9, SR)):
        assert ref.ref_dynamic_range_variation(quiet, SR) == 0.0
        assert ref.ref_peak_consistency(quiet, SR) == 0.0


# ==============================================================================================
# phase correlation
# ==============================================================================================


def test_phase_correlation(rng):
    tone = sig.sine(440.0, 1.0, SR)
    anti = sig.anti_phase(tone)
    assert ref.ref_phase_correlation(anti) == pytest.approx(-1.0, abs=1e-4)
    for same in (tone, sig.mono_to_stereo(tone), sig.silence(1.0, SR, 2)):
        assert ref.ref_phase_correlation(same) == 1.0
    noise = sig.independent_noise_stereo(5.0, SR, rng)
    assert ref.ref_phase_correlation(noise) == pytest.approx(0.0, abs=0.01)
    one = stereo_one_channel(tone)
    assert ref.ref_phase_correlation(one) == 0.0  # R is constant
    three = np.concatenate([anti, tone], axis=1)  # channel 3 is ignored
    assert ref.ref_phase_correlation(three) == pytest.approx(-1.0, abs=1e-4)
    shifted = np.stack([tone[:, 0], 0.5 * tone[:, 0] + 0.1], axis=1)  # affine: r = 1
    assert ref.ref_phase_correlation(shifted) == pytest.approx(1.0, abs=1e-4)


# ==============================================================================================
# the plain values together, degenerate input, rate invariance
# ==============================================================================================


def test_plain_values_names_and_finiteness(rng):
    v = ref.ref_values(sig.music_like(4.0, SR), SR)
    assert tuple(v) == ref.PLAIN_VALUES
    assert set(ref.PLAIN_VALUES) <= set(ref.FINGERPRINT_NAMES)
    assert all(math.isfinite(x) for x in v.values())
    with pytest.raises(ValueError):
        ref.ref_values(np.zeros((0, 2), dtype=np.float32), SR)
    bad = sig.sine(440.0, 0.1, SR)
    bad[5, 0] = np.nan
    with pytest.raises(ValueError):
        ref.ref_crest_db(bad)


def test_digital_silence_matches_the_doc_table():
    v = ref.ref_values(sig.silence(3.0, SR, 2), SR)
    expected = dict.fromkeys(ref.PLAIN_VALUES, 0.0)
    expected.update(lufs=-70.0, phase_correlation=1.0)
    assert v == expected


def test_single_sample():
    v = ref.ref_values(sig.single_sample(0.5), SR)
    assert v["lufs"] == -70.0 and v["loudness_range"] == 0.0
    assert v["dynamic_range_variation"] == 0.0 and v["peak_consistency"] == 0.0
    assert v["crest_db"] == pytest.approx(0.0, abs=1e-12)
    assert all(math.isfinite(x) for x in v.values())


def test_music_like_is_rate_invariant_under_the_references():
    a = sig.music_like(8.0, 44100)
    b = sig.music_like(8.0, 48000)
    la, lb = ref.ref_band_levels(a, 44100), ref.ref_band_levels(b, 48000)
    # the 20-60 Hz band is two to three bins wide, and the bass notes of music_like leak into
    # it through the window's main lobe (+-2 bins: 43 Hz at 44.1 kHz, 47 Hz at 48 kHz)
    assert la["sub_bass_db"] == pytest.approx(lb["sub_bass_db"], abs=1.0)
    assert all(la[k] == pytest.approx(lb[k], abs=0.1) for k in la if k != "sub_bass_db")
    assert ref.ref_lufs(a, 44100) == pytest.approx(ref.ref_lufs(b, 48000), abs=0.2)
    assert ref.ref_spectral_centroid(a, 44100) == pytest.approx(
        ref.ref_spectral_centroid(b, 48000), rel=0.02)
