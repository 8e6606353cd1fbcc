"""Key and timbre values (docs/FINGERPRINT.md "Tonality", "Timbre"): the key of synthesised
chord progressions, the key_of round trip and Camelot codes, no key for noise and drums, MFCC
means against librosa, gain invariance, an MP3 encode, odd inputs."""

from __future__ import annotations

import math

import helpers as h
import librosa
import numpy as np
import pytest
import reference as ref
import signals as sig
import soundfile as sf

from kernels import design as D
from kernels.key import PITCH_NAMES, Key, key_fields, key_of, key_values

MFCC = ("mfcc_1", "mfcc_2", "mfcc_3", "mfcc_4")
#: Interquartile ranges (dB) of the MFCC means over the shared corpus-small (49 tracks).
MFCC_CORPUS_IQR = {"mfcc_1": 29.0, "mfcc_2": 15.1, "mfcc_3": 9.2, "mfcc_4": 5.0}
KEY = ("key_fifths_x", "key_fifths_y", "key_mode")

#: The Camelot wheel as DJs print it (tonic, mode) -> code.
CAMELOT = {
    ("C", "major"): "8B", ("A", "minor"): "8A", ("G", "major"): "9B", ("E", "minor"): "9A",
    ("D", "major"): "10B", ("B", "minor"): "10A", ("A", "major"): "11B",
    ("F#", "minor"): "11A", ("E", "major"): "12B", ("C#", "minor"): "12A",
    ("B", "major"): "1B", ("Ab", "minor"): "1A", ("F#", "major"): "2B", ("Eb", "minor"): "2A",
    ("C#", "major"): "3B", ("Bb", "minor"): "3A", ("Ab", "major"): "4B", ("F", "minor"): "4A",
    ("Eb", "major"): "5B", ("C", "minor"): "5A", ("Bb", "major"): "6B", ("G", "minor"): "6A",
    ("F", "major"): "7B", ("D", "minor"): "7A",
}


def _tone(midi: float, t: np.ndarray, dur: float, n_harm: int = 6) -> np.ndarray:
    """A harmonic tone (partials 1/h) with a 20 ms attack and an exponential decay."""
    f0 = 440.0 * 2.0 ** ((midi - 69) / 12.0)
    env = np.minimum(1.0, t / 0.02) * np.exp(-1.5 * t / dur)
    y = np.zeros_like(t)
    for hh in range(1, n_harm + 1):
        if f0 * hh < 0.45 * 48000:
            y += np.sin(2 * np.pi * f0 * hh * t + hh) / hh
    return env * y


def progression(tonic: str, mode: str, sr: int, chord_s: float = 1.0, reps: int = 2) -> np.ndarray:
    """I-IV-V-I (minor: i-iv-V-i, the harmonic minor's major dominant), each chord a bass note
    an octave below its root plus a close-position triad in octave 4, harmonic tones."""
    root = 48 + PITCH_NAMES.index(tonic)  # C3..B3
    third = 3 if mode == "minor" else 4
    chords = [(0, third), (5, third), (7, 4), (0, third)]
    n = int(chord_s * sr)
    t = np.arange(n) / sr
    out = []
    for _ in range(reps):
        for r, th in chords:
            y = 0.6 * _tone(root + r - 12, t, chord_s)
            for iv in (0, th, 7):
                y += 0.4 * _tone(root + 12 + r + iv, t, chord_s)
            out.append(y)
    x = np.concatenate(out)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)[:, None]


def _values(x: np.ndarray, sr: int, blocks=None) -> dict[str, float]:
    return h.analyse(x, sr, blocks).as_dict()


# ------------------------------------------------------------------------------------------
# key
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tonic", "mode", "sr"), [
    ("C", "major", 44100), ("G", "major", 48000), ("Eb", "major", 44100),
    ("A", "minor", 44100), ("F#", "minor", 22050), ("D", "minor", 48000),
])
def test_progression_key(tonic: str, mode: str, sr: int) -> None:
    v = _values(progression(tonic, mode, sr), sr)
    k = key_of(v)
    assert k is not None
    assert (k.tonic, k.mode) == (tonic, mode)
    assert k.camelot == CAMELOT[(tonic, mode)]
    assert k.label == f"{tonic} {mode}"
    assert k.strength > 0.3
    assert (v["key_mode"] > 0) == (mode == "major")


@pytest.mark.parametrize("pc", range(12))
@pytest.mark.parametrize("mode", ["major", "minor"])
def test_key_of_round_trip(pc: int, mode: str) -> None:
    for strength in (0.01, 0.5, 1.0):
        for mv in (0.0, 0.3, -0.7):
            v = key_values(pc, mode, strength, mv)
            k = key_of(v)
            assert k == Key(PITCH_NAMES[pc], mode, pytest.approx(strength, abs=1e-12),
                            k.fifths)
            assert k.camelot == CAMELOT[(PITCH_NAMES[pc], mode)]
            assert math.hypot(v["key_fifths_x"], v["key_fifths_y"]) == pytest.approx(strength)
    # relative keys sit at the same angle, Camelot neighbours 30 degrees apart
    a = key_values(pc, mode, 1.0, 0.1)
    rel = key_values((pc + (9 if mode == "major" else 3)) % 12,
                     "minor" if mode == "major" else "major", 1.0, 0.1)
    assert a["key_fifths_x"] == pytest.approx(rel["key_fifths_x"], abs=1e-12)
    assert a["key_fifths_y"] == pytest.approx(rel["key_fifths_y"], abs=1e-12)
    up = key_values((pc + 7) % 12, mode, 1.0, 0.1)
    cos = a["key_fifths_x"] * up["key_fifths_x"] + a["key_fifths_y"] * up["key_fifths_y"]
    assert cos == pytest.approx(math.cos(math.pi / 6))


def test_no_key() -> None:
    assert key_of({"key_fifths_x": 0.0, "key_fifths_y": 0.0, "key_mode": 0.3}) is None
    assert key_of({"key_fifths_x": float("nan"), "key_fifths_y": 0.0, "key_mode": 0.0}) is None
    flat = key_fields(np.ones(12), D.key_profiles())
    assert flat == {"key_fifths_x": 0.0, "key_fifths_y": 0.0, "key_mode": 0.0}
    assert key_fields(np.zeros(12), D.key_profiles())["key_fifths_x"] == 0.0


def test_noise_and_drums_have_no_key(rng: np.random.Generator) -> None:
    sr = 22050
    for x in (sig.white_noise(8.0, sr, rng), sig.pink_noise(8.0, sr, rng),
              sig.drum_loop(100.0, 8.0, sr, rng)):
        v = _values(x, sr)
        k = key_of(v)
        assert k is None or k.strength < 0.25, k
        if k is None:  # no key, no mode: keyless tracks are all alike in the key's values
            assert (v["key_fifths_x"], v["key_fifths_y"], v["key_mode"]) == (0.0, 0.0, 0.0)


def test_key_profiles_are_correlations() -> None:
    z = D.key_profiles()
    assert z.shape == (24, 12)
    np.testing.assert_allclose(z.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0)
    # a chroma equal to a profile correlates 1 with it: strength 1, that key
    v = key_fields(z[12 + 9] + 5.0, z)  # A minor
    k = key_of(v)
    assert k.label == "A minor" and k.strength == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------
# timbre
# ------------------------------------------------------------------------------------------


def _librosa_mfcc_means(x: np.ndarray, sr: int) -> np.ndarray:
    """Mean over active frames of librosa's MFCCs 1..4 with our parameters: power STFT on the
    doc's frame grid, ``filters.mel(n_mels=40, fmin=0, fmax=min(8000, sr/2), htk=False,
    norm="slaney")``, dB floored 80 dB below each frame's loudest band, DCT-II ortho."""
    power, active = ref.frames_power(ref.to_mono(x), sr)
    n_fft = ref.n_fft_for_rate(sr)
    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=40, fmin=0.0, fmax=min(8000.0, sr / 2),
                             htk=False, norm="slaney", dtype=np.float64)
    mel = fb @ power[:, active]
    mel = np.maximum(mel, np.maximum(mel.max(axis=0, keepdims=True) * 1e-8, 1e-10))
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    m = librosa.feature.mfcc(S=db, n_mfcc=5, dct_type=2, norm="ortho")
    return m[1:5].mean(axis=1)


@pytest.mark.parametrize("sr", [44100, 48000, 22050])
def test_mfcc_against_librosa(sr: int, rng: np.random.Generator) -> None:
    x = sig.music_like(6.0, sr) + 0.5 * sig.pink_noise(6.0, sr, rng, rms=0.02, channels=2)
    v = _values(x, sr)
    want = _librosa_mfcc_means(x, sr)
    got = np.array([v[n] for n in MFCC])
    # float32 spectra and weights against float64: a few 1e-4 dB
    np.testing.assert_allclose(got, want, atol=2e-3, rtol=0)


def test_mel_segments_are_the_dense_bank() -> None:
    for sr, n_fft in ((44100, 2048), (8000, 512), (192000, 8192), (1000, 256)):
        dense = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=40, fmin=0.0,
                                    fmax=min(8000.0, sr / 2), htk=False, norm="slaney",
                                    dtype=np.float64)
        seg, rise, fall = D.mel_segments(sr, n_fft)
        rebuilt = np.zeros((42, n_fft // 2 + 1))
        for s in range(41):
            ks = np.arange(seg[s], seg[s + 1])
            rebuilt[s + 1, ks] += rise[ks]
            rebuilt[s, ks] += fall[ks]
        assert not rebuilt[0].any() and not rebuilt[41].any()
        np.testing.assert_allclose(rebuilt[1:41], dense, rtol=1e-6, atol=1e-9 * dense.max())
        assert (np.count_nonzero(dense, axis=0) <= 2).all()


def test_gain_invariance(rng: np.random.Generator) -> None:
    sr = 44100
    x = sig.music_like(6.0, sr) + sig.pink_noise(6.0, sr, rng, rms=0.01, channels=2)
    a = _values(x, sr)
    b = _values((x * np.float32(0.3)).astype(np.float32), sr)
    for n in MFCC:
        assert b[n] == pytest.approx(a[n], abs=1e-4), n
    for n in KEY:
        assert b[n] == pytest.approx(a[n], abs=1e-6), n


def test_mp3_encode(tmp_path, rng: np.random.Generator) -> None:
    sr = 44100
    x = np.concatenate([progression("E", "minor", sr), progression("E", "minor", sr)])
    x = np.repeat(x, 2, axis=1) + sig.pink_noise(x.shape[0] / sr, sr, rng, rms=0.02,
                                                 channels=2)
    path = tmp_path / "x.mp3"
    sf.write(path, x, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.667,
             bitrate_mode="CONSTANT")
    y, sr2 = sf.read(path, dtype="float32", always_2d=True)
    a, b = _values(x, sr), _values(y, sr2)
    assert key_of(a).label == key_of(b).label == "E minor"
    for n in KEY:
        assert b[n] == pytest.approx(a[n], abs=0.05), n
    for n in MFCC:  # within 5 % of the value's IQR over the shared corpus-small
        assert b[n] == pytest.approx(a[n], abs=0.05 * MFCC_CORPUS_IQR[n]), n


def test_block_sizes_bit_identical() -> None:
    sr = 22050
    x = progression("Bb", "major", sr, reps=1)
    a = _values(x, sr)
    b = _values(x, sr, blocks=[1, 7, 1000, 4095, 33333])
    for n in (*KEY, *MFCC):
        assert a[n] == b[n], n


@pytest.mark.parametrize(("sr", "channels", "kind"), [
    (44100, 2, "silence"), (44100, 1, "dc"), (8000, 1, "music"), (192000, 2, "music"),
    (48000, 6, "music"), (1000, 1, "music"),
])
def test_odd_inputs_finite(sr: int, channels: int, kind: str) -> None:
    if kind == "silence":
        x = sig.silence(3.0, sr, channels)
    elif kind == "dc":
        x = sig.dc(0.5, 3.0, sr, channels)
    else:
        x = sig.music_like(1.5 if sr > 96000 else 3.0, sr, channels=channels)
    v = _values(x, sr)
    for n in (*KEY, *MFCC, "chroma_energy"):
        assert math.isfinite(v[n]), (n, v[n])
    assert -1.0 <= v["key_mode"] <= 1.0
    assert math.hypot(v["key_fifths_x"], v["key_fifths_y"]) <= 1.0 + 1e-12
    if kind in ("silence", "dc"):
        assert key_of(v) is None
    if kind == "silence":
        assert all(v[n] == 0.0 for n in MFCC)
