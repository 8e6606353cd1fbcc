"""Rhythm values against ground truth: tempo_bpm, pulse_clarity, transient_density and the
onsets behind the density (docs/FINGERPRINT.md "Rhythm").

A numpy-synthesised subset of bench/accuracy.py's rendered set (no FluidSynth needed): drum
patterns (kick, snare, hi-hat) with 8th and 16th hats, half-time, 3/4 and a tempo ramp, and
piano-like decaying tones, at known tempi from 60 to 180 BPM; every onset is known. The scores
follow mir_eval's definitions (tempo Acc1 / Acc2 within 4 %, onset F-measure at +-50 ms with
one-to-one matching), computed by the small plain functions below.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf

from kernels import Analyzer

SR = 22050
SECONDS = 16.0
TEMPO_TOL = 0.04
ONSET_WINDOW = 0.05
MERGE_S = 0.03  # onsets closer than this are one (a hat under a kick)


# --------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------


def _decay(n: int, tau_s: float) -> np.ndarray:
    return np.exp(-np.arange(n) / (tau_s * SR))


def _kick(rng: np.random.Generator) -> np.ndarray:
    n = int(0.25 * SR)
    t = np.arange(n) / SR
    f = 50.0 + 70.0 * np.exp(-t / 0.03)  # pitch sweep 120 -> 50 Hz
    phase = 2 * np.pi * np.cumsum(f) / SR
    return 0.8 * np.sin(phase) * _decay(n, 0.12)


def _snare(rng: np.random.Generator) -> np.ndarray:
    n = int(0.2 * SR)
    t = np.arange(n) / SR
    body = 0.3 * np.sin(2 * np.pi * 190.0 * t) * _decay(n, 0.05)
    return 0.45 * (body + rng.standard_normal(n) * _decay(n, 0.07))


def _hat(rng: np.random.Generator, amp: float) -> np.ndarray:
    n = int(0.06 * SR)
    x = np.diff(rng.standard_normal(n + 1))  # high-passed noise
    return amp * 0.25 * x * _decay(n, 0.015)


def _piano(f0: float, amp: float) -> np.ndarray:
    n = int(0.9 * SR)
    t = np.arange(n) / SR
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 7) if k * f0 < SR / 2)
    attack = np.minimum(1.0, t / 0.002)
    return amp * 0.35 * tone * attack * _decay(n, 0.45)


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # float32, mono
    tempo: float  # BPM of the notated beat
    onsets: np.ndarray  # s
    metrical_only: bool = False  # the truth is notated, the felt tempo may be half (Acc2 only)


def _render(events: list[tuple[float, np.ndarray]]) -> np.ndarray:
    out = np.zeros(int((SECONDS + 1.0) * SR))
    for t, ev in events:
        i = int(round(t * SR))
        if i >= len(out):
            continue
        k = min(len(ev), int(0.03 * SR))  # a 30 ms fade-out: a cut would be a click
        ev = ev.copy()
        ev[-k:] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, k))
        m = min(len(ev), len(out) - i)
        out[i : i + m] += ev[:m]
    peak = np.max(np.abs(out))
    return (out * (0.9 / peak if peak > 0 else 1.0)).astype(np.float32)


def _truth(times: list[float]) -> np.ndarray:
    merged: list[float] = []
    for t in sorted(times):
        if not merged or t - merged[-1] >= MERGE_S:
            merged.append(t)
    return np.array(merged)


def _beat_grid(bpm: float, bpm_end: float | None = None, start: float = 0.3) -> np.ndarray:
    """Beat times over SECONDS, the tempo moving linearly in time to ``bpm_end``."""
    end = bpm if bpm_end is None else bpm_end
    times = [start]
    while times[-1] < SECONDS:
        frac = times[-1] / SECONDS
        times.append(times[-1] + 60.0 / (bpm + (end - bpm) * frac))
    return np.array(times[:-1])


def drums(rng: np.random.Generator, name: str, bpm: float, *, style: str = "rock8",
          bpm_end: float | None = None) -> Clip:
    """Kick / snare / hat patterns: ``rock8`` (kick 1 & 3, snare 2 & 4, hats on 8ths),
    ``rock16`` (hats on 16ths, accented on the beat), ``halftime`` (kick 1, snare 3, 8th hats),
    ``waltz`` (3/4: kick 1, snare 2 & 3, a hat on every beat)."""
    beats = _beat_grid(bpm, bpm_end)
    bar = 3 if style == "waltz" else 4
    events: list[tuple[float, np.ndarray]] = []
    for i, t in enumerate(beats):
        nxt = beats[i + 1] if i + 1 < len(beats) else t + 60.0 / bpm
        pos = i % bar
        jitter = float(rng.normal(0.0, 0.003))
        t = t + jitter
        if style == "waltz":
            events.append((t, _kick(rng) if pos == 0 else _snare(rng) * 0.7))
            events.append((t, _hat(rng, 0.8)))
            continue
        if style == "halftime":
            if pos == 0:
                events.append((t, _kick(rng)))
            elif pos == 2:
                events.append((t, _snare(rng)))
        elif pos in (0, 2):
            events.append((t, _kick(rng)))
        else:
            events.append((t, _snare(rng)))
        subdiv = 4 if style == "rock16" else 2
        for k in range(subdiv):
            amp = 1.0 if k == 0 else (0.6 if subdiv == 2 or k == 2 else 0.4)
            events.append((t + k * (nxt - t) / subdiv, _hat(rng, amp)))
    times = [t for t, _ in events if t < SECONDS]
    return Clip(name, _render([(t, e) for t, e in events if t < SECONDS]),
                float(np.median(60.0 / np.diff(beats))), _truth(times),
                metrical_only=style == "halftime")


def piano(rng: np.random.Generator, name: str, bpm: float, *, style: str = "stride") -> Clip:
    """Piano-like decaying tones: ``stride`` (bass note on 1 & 3, a chord on 2 & 4) or
    ``broken`` (an arpeggio in 8ths, louder on the beat), a melody note on most beats."""
    beats = _beat_grid(bpm)
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    events: list[tuple[float, np.ndarray]] = []
    for i, t in enumerate(beats):
        nxt = beats[i + 1] if i + 1 < len(beats) else t + 60.0 / bpm
        t = t + float(rng.normal(0.0, 0.004))
        if style == "stride":
            if i % 2 == 0:
                events.append((t, _piano(root / 2, 1.0)))
            else:
                for r in (1.0, 1.26, 1.5):
                    events.append((t, _piano(root * r, 0.45)))
        else:
            for k, r in enumerate((0.5, 1.5)):
                events.append((t + k * (nxt - t) / 2, _piano(root * r, 0.9 if k == 0 else 0.6)))
        if rng.random() < 0.8:
            events.append((t, _piano(root * 2 * 2 ** (int(rng.integers(0, 8)) / 12), 0.7)))
    times = [t for t, _ in events if t < SECONDS]
    return Clip(name, _render([(t, e) for t, e in events if t < SECONDS]), bpm, _truth(times))


def add_pink(rng: np.random.Generator, x: np.ndarray, snr_db: float) -> np.ndarray:
    """``x`` plus pink noise ``snr_db`` below its RMS."""
    n = len(x)
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[1:] /= np.sqrt(np.arange(1, len(spec)))
    spec[0] = 0.0
    pink = np.fft.irfft(spec, n)
    rms_x = math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
    pink *= rms_x / math.sqrt(float(np.mean(pink**2))) * 10 ** (-snr_db / 20)
    y = x + pink
    return (y * min(1.0, 0.95 / np.max(np.abs(y)))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Scores (mir_eval's definitions)
# --------------------------------------------------------------------------------------------


def acc1(est: float, ref: float) -> bool:
    return abs(est - ref) <= TEMPO_TOL * ref


def acc2(est: float, ref: float) -> bool:
    return any(abs(est - ref * f) <= TEMPO_TOL * ref * f for f in (1, 2, 0.5, 3, 1 / 3))


def onset_f(ref: np.ndarray, est: np.ndarray, window: float = ONSET_WINDOW) -> float:
    """F-measure of a one-to-one matching within ``window`` (greedy on sorted lists, which is
    the maximum matching when every window is shorter than half the smallest spacing of
    ``ref``, as here)."""
    if len(ref) == 0 or len(est) == 0:
        return 0.0
    used = np.zeros(len(est), dtype=bool)
    hits = 0
    for r in ref:
        cand = np.flatnonzero(~used & (np.abs(est - r) <= window))
        if cand.size:
            used[cand[np.argmin(np.abs(est[cand] - r))]] = True
            hits += 1
    p, rec = hits / len(est), hits / len(ref)
    return 0.0 if hits == 0 else 2 * p * rec / (p + rec)


def analyse(x: np.ndarray, sr: int = SR, *, block: int | None = None) -> tuple[dict, list]:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    a = Analyzer(sr, x.shape[1], onset_times=True)
    step = block or len(x)
    for i in range(0, len(x), step):
        a.feed(x[i : i + step])
    return a.finish().as_dict(), list(a.onset_times)


# --------------------------------------------------------------------------------------------
# The set
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips() -> list[Clip]:
    rng = np.random.default_rng(20261201)
    out = [drums(rng, f"rock8-{b}", b) for b in (60.0, 84.0, 112.0, 150.0, 180.0)]
    out += [drums(rng, f"rock16-{b}", b, style="rock16") for b in (76.0, 104.0)]
    out += [drums(rng, f"waltz-{b}", b, style="waltz") for b in (96.0, 156.0)]
    out += [drums(rng, "ramp-100-110", 100.0, bpm_end=110.0)]
    out += [drums(rng, f"halftime-{b}", b, style="halftime") for b in (92.0, 140.0)]
    out += [piano(rng, f"stride-{b}", b) for b in (72.0, 132.0)]
    out += [piano(rng, f"broken-{b}", b, style="broken") for b in (66.0, 100.0)]
    return out


@pytest.fixture(scope="module")
def measured(clips: list[Clip]) -> dict[str, tuple[dict, list]]:
    return {c.name: analyse(c.audio) for c in clips}


def test_tempo_acc1_and_acc2(clips: list[Clip], measured: dict) -> None:
    strict = [c for c in clips if not c.metrical_only]
    got1 = [acc1(measured[c.name][0]["tempo_bpm"], c.tempo) for c in strict]
    got2 = [acc2(measured[c.name][0]["tempo_bpm"], c.tempo) for c in clips]
    report = {c.name: round(measured[c.name][0]["tempo_bpm"], 1) for c in clips}
    # every straight clip at its notated tempo, allowing one metrical-level miss in 14
    assert sum(got1) >= len(strict) - 1, report
    assert all(got2), report


def test_tempo_of_a_ramp_is_its_median(clips: list[Clip], measured: dict) -> None:
    ramp = next(c for c in clips if c.name.startswith("ramp"))
    assert acc1(measured[ramp.name][0]["tempo_bpm"], ramp.tempo)


def test_onsets_f_measure_and_density(clips: list[Clip], measured: dict) -> None:
    for c in clips:
        values, onsets = measured[c.name]
        f = onset_f(c.onsets, np.asarray(onsets))
        assert f >= 0.9, (c.name, f)
        true_rate = len(c.onsets) / (c.onsets[-1] - c.onsets[0] + 60.0 / c.tempo)
        # the density counts the same onsets, per active second (the clip is active from its
        # first sample to the tails' end)
        assert values["transient_density"] == pytest.approx(
            len(onsets) / _active_seconds(c.audio), rel=0.05)
        assert len(onsets) / len(c.onsets) == pytest.approx(1.0, abs=0.15), c.name
        assert true_rate > 0


def _active_seconds(x: np.ndarray) -> float:
    """Seconds whose RMS reaches -60 dBFS (the analyzer's activity rule, the partial last
    second counted by its length)."""
    n = len(x)
    act = 0.0
    for i in range(0, n, SR):
        seg = x[i : i + SR].astype(np.float64)
        if math.sqrt(float(np.mean(seg**2))) >= 1e-3:
            act += len(seg) / SR
    return act


def test_onsets_under_a_pink_noise_bed(clips: list[Clip]) -> None:
    rng = np.random.default_rng(7)
    for c in clips:
        if not c.name.startswith(("rock8", "stride", "broken")):
            continue
        _, onsets = analyse(add_pink(rng, c.audio, 10.0))
        f = onset_f(c.onsets, np.asarray(onsets))
        assert f >= 0.85, (c.name, f)
        assert len(onsets) / len(c.onsets) == pytest.approx(1.0, abs=0.15), c.name


def test_pulse_clarity_orders_click_music_noise(rng: np.random.Generator, clips: list[Clip],
                                               measured: dict) -> None:
    n = int(SECONDS * SR)
    click = np.zeros(n, dtype=np.float32)
    click[(np.arange(0.25, SECONDS, 0.5) * SR).astype(int)] = 0.9
    white = (0.1 * rng.standard_normal(n)).astype(np.float32)
    pink = add_pink(rng, np.zeros(n, dtype=np.float32) + 1e-3, -40.0)
    t = np.arange(n) / SR
    pad = (0.2 * np.sin(2 * np.pi * np.outer(t, [220.0, 277.2, 329.6])).sum(axis=1)).astype(
        np.float32)
    pc = {name: analyse(x)[0]["pulse_clarity"]
          for name, x in (("click", click), ("white", white), ("pink", pink), ("pad", pad))}
    music = [measured[c.name][0]["pulse_clarity"] for c in clips]
    assert pc["click"] >= 0.9
    assert max(pc["white"], pc["pink"], pc["pad"]) <= 0.2, pc
    assert min(music) > max(pc["white"], pc["pink"], pc["pad"]), (pc, music)
    assert max(music) < pc["click"], (pc, music)
    assert np.std(music) > 0.05  # it tells clips apart
    for v in [*pc.values(), *music]:
        assert 0.0 <= v <= 1.0


def test_noise_has_few_onsets(rng: np.random.Generator) -> None:
    n = int(SECONDS * SR)
    white = (0.1 * rng.standard_normal(n)).astype(np.float32)
    values, _ = analyse(white)
    assert values["transient_density"] < 1.5  # a relative threshold gives 5-12 per second


def _mp3_roundtrip(x: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="MP3", subtype="MPEG_LAYER_III")
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    return y


def test_mp3_keeps_tempo_and_pulse_clarity(clips: list[Clip], measured: dict) -> None:
    if "MP3" not in sf.available_formats():
        pytest.skip("libsndfile without MP3")
    for c in clips[::3]:
        v, _ = analyse(_mp3_roundtrip(c.audio))
        ref = measured[c.name][0]
        assert v["tempo_bpm"] == pytest.approx(ref["tempo_bpm"], rel=0.01), c.name
        assert v["pulse_clarity"] == pytest.approx(ref["pulse_clarity"], abs=0.03), c.name
        assert v["transient_density"] == pytest.approx(ref["transient_density"], rel=0.1)


def test_onset_times_are_opt_in_and_block_independent(clips: list[Clip]) -> None:
    c = clips[0]
    a = Analyzer(SR, 1)
    a.feed(c.audio[:, None])
    plain = a.finish().as_dict()
    assert a.onset_times == []
    v1, on1 = analyse(c.audio)
    v2, on2 = analyse(c.audio, block=777)
    assert on1 == on2 and len(on1) > 0
    assert v1 == v2 == plain


@pytest.mark.parametrize("sr", [8000, 44100, 96000])
def test_click_tempo_at_other_rates(sr: int) -> None:
    n = int(12 * sr)
    x = np.zeros(n, dtype=np.float32)
    x[(np.arange(0.1, 12, 60 / 96) * sr).astype(int)] = 0.8
    v, onsets = analyse(x, sr)
    assert acc1(v["tempo_bpm"], 96.0)
    assert v["pulse_clarity"] >= 0.85
    assert len(onsets) == pytest.approx(len(np.arange(0.1, 12, 60 / 96)), abs=1)
