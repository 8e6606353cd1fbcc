"""Deterministic test signals for the fingerprint references and kernels.

Every generator returns PCM the way the analyzer receives it: a ``float32`` array shaped
``(frames, channels)`` with every sample in ``[-1, 1]``. Generators that draw random numbers
take a :class:`numpy.random.Generator` so that a test's seed fixes them; all others are pure
functions of their arguments. :func:`music_like` is defined in continuous time (no random
draws at render time), so the same music can be rendered at any sample rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "anti_phase",
    "chord",
    "click_track",
    "concat",
    "db_to_amp",
    "dc",
    "drum_loop",
    "glide",
    "independent_noise_stereo",
    "mono_to_stereo",
    "music_like",
    "pink_noise",
    "quantize_pcm16",
    "silence",
    "sine",
    "single_sample",
    "square",
    "white_noise",
    "write_audio",
]


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------


def _n_samples(seconds: float, sr: int) -> int:
    """Number of samples in ``seconds`` at ``sr`` (rounded to the nearest sample)."""
    n = int(round(seconds * sr))
    if n < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    return n


def _times(seconds: float, sr: int) -> np.ndarray:
    """Sample times in seconds.

    Returns
    -------
    t : float64 ndarray, shape (n,), seconds
    """
    return np.arange(_n_samples(seconds, sr), dtype=np.float64) / sr


def _as_pcm(x: np.ndarray, channels: int = 1) -> np.ndarray:
    """Shape a 1-D or 2-D float array as float32 ``(frames, channels)`` PCM, clipped to [-1, 1].

    A 1-D input is copied into every one of ``channels`` channels; a 2-D input is kept as is.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = np.repeat(x[:, None], channels, axis=1)
    if x.ndim != 2:
        raise ValueError(f"PCM must be 1-D or 2-D, got shape {x.shape}")
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def db_to_amp(db: float) -> float:
    """Linear amplitude of a level in dB relative to full scale (``10 ** (db / 20)``)."""
    return float(10.0 ** (db / 20.0))


def concat(*parts: np.ndarray) -> np.ndarray:
    """Join PCM arrays in time.

    Parameters
    ----------
    *parts : float32 ndarray, shape (frames_i, channels)
        All with the same channel count.

    Returns
    -------
    float32 ndarray, shape (sum frames_i, channels)
    """
    return np.concatenate(parts, axis=0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# elementary signals
# ----------------------------------------------------------------------------------------------


def sine(
    freq: float,
    seconds: float,
    sr: int,
    amp: float = 0.5,
    channels: int = 1,
    phase: float = 0.0,
) -> np.ndarray:
    """Sine ``amp * sin(2 pi freq t + phase)``, the same in every channel.

    Parameters
    ----------
    freq : float, Hz
    seconds : float, s
    sr : int, Hz
    amp : float, linear peak amplitude (1.0 = 0 dBFS)
    channels : int
    phase : float, radians at t = 0

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    t = _times(seconds, sr)
    return _as_pcm(amp * np.sin(2.0 * np.pi * freq * t + phase), channels)


def square(
    freq: float, seconds: float, sr: int, amp: float = 1.0, channels: int = 1
) -> np.ndarray:
    """Naive (not band-limited) square wave: every sample is exactly ``+amp`` or ``-amp``.

    The first half of each period is ``+amp``. With the default ``amp = 1.0`` it is full scale,
    so its crest factor is exactly 0 dB.

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    n = np.arange(_n_samples(seconds, sr), dtype=np.float64)
    cycle_pos = np.mod(n * freq / sr, 1.0)
    return _as_pcm(np.where(cycle_pos < 0.5, amp, -amp), channels)


def silence(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    """Digital silence (all zeros).

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    return np.zeros((_n_samples(seconds, sr), channels), dtype=np.float32)


def dc(level: float, seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    """Constant signal ``level`` (a DC offset).

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    return _as_pcm(np.full(_n_samples(seconds, sr), float(level)), channels)


def single_sample(value: float = 0.5, channels: int = 1) -> np.ndarray:
    """A track of exactly one sample.

    Returns
    -------
    float32 ndarray, shape (1, channels)
    """
    return _as_pcm(np.array([float(value)]), channels)


def white_noise(
    seconds: float, sr: int, rng: np.random.Generator, rms: float = 0.1, channels: int = 1
) -> np.ndarray:
    """Gaussian white noise, independent in each channel.

    Parameters
    ----------
    seconds : float, s
    sr : int, Hz
    rng : numpy.random.Generator
    rms : float, linear RMS per channel (before the [-1, 1] clip, which is negligible for
        ``rms <= 0.2``)
    channels : int

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    n = _n_samples(seconds, sr)
    return _as_pcm(rms * rng.standard_normal((n, channels)))


def pink_noise(
    seconds: float, sr: int, rng: np.random.Generator, rms: float = 0.1, channels: int = 1
) -> np.ndarray:
    """Pink (1/f power) noise in 20 Hz .. sr/2, made by shaping Gaussian white noise.

    Each channel: rFFT of white noise, every bin at ``f >= 20 Hz`` scaled by ``1 / sqrt(f)``
    (so the power falls as 1/f), bins below 20 Hz (DC included) set to 0, inverse rFFT, then
    scaled to exactly ``rms``. Without the 20 Hz limit half of a long track's energy would be
    inaudible rumble, and its K-weighted loudness at a given RMS would vary by realisation.

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    n = _n_samples(seconds, sr)
    out = np.zeros((n, channels), dtype=np.float64)
    if n < 2:
        return out.astype(np.float32)
    for c in range(channels):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.arange(spec.size, dtype=np.float64) * sr / n
        shape = np.zeros_like(f)
        audible = f >= 20.0
        shape[audible] = 1.0 / np.sqrt(f[audible])
        y = np.fft.irfft(spec * shape, n)
        out[:, c] = y * (rms / np.sqrt(np.mean(y**2)))
    return _as_pcm(out)


def glide(
    f_start: float,
    octaves_per_second: float,
    seconds: float,
    sr: int,
    amp: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """Exponential sine sweep, phase-continuous: ``f(t) = f_start * 2 ** (octaves_per_second t)``.

    The phase is the exact integral of ``2 pi f(t)``:
    ``phi(t) = 2 pi f_start (2 ** (r t) - 1) / (r ln 2)`` with ``r = octaves_per_second``
    (``2 pi f_start t`` when ``r = 0``).

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    t = _times(seconds, sr)
    r = float(octaves_per_second)
    if r == 0.0:
        phi = 2.0 * np.pi * f_start * t
    else:
        phi = 2.0 * np.pi * f_start * (np.exp2(r * t) - 1.0) / (r * np.log(2.0))
    return _as_pcm(amp * np.sin(phi), channels)


def chord(
    freqs: Sequence[float], seconds: float, sr: int, amp: float = 0.5, channels: int = 1
) -> np.ndarray:
    """Sum of equal-amplitude sines (phases ``0, 1, 2, ...`` rad), scaled so its peak is ``amp``.

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    t = _times(seconds, sr)
    y = np.zeros_like(t)
    for i, f in enumerate(freqs):
        y += np.sin(2.0 * np.pi * f * t + float(i))
    peak = np.max(np.abs(y)) if y.size else 0.0
    if peak > 0:
        y *= amp / peak
    return _as_pcm(y, channels)


# ----------------------------------------------------------------------------------------------
# rhythmic signals
# ----------------------------------------------------------------------------------------------

#: The click waveform's fixed seed: the click is a deterministic function of ``sr`` only.
_CLICK_SEED = 1234


def _click(sr: int, amp: float, burst_s: float = 0.005, tau_s: float = 0.001) -> np.ndarray:
    """One click: a ``burst_s`` long broadband burst decaying as ``exp(-t / tau_s)``.

    The burst is a fixed (seeded) Gaussian sequence normalised to peak 1, so the click is
    deterministic and its peak is ``amp``.

    Returns
    -------
    float64 ndarray, shape (round(burst_s * sr),)
    """
    n = max(1, _n_samples(burst_s, sr))
    noise = np.random.default_rng(_CLICK_SEED).standard_normal(n)
    noise[0] = abs(noise).max()  # start with the peak: the onset is at the first sample
    burst = noise * np.exp(-np.arange(n) / (tau_s * sr))
    return amp * burst / np.max(np.abs(burst))


def _fade_out(event: np.ndarray, sr: int, seconds: float = 0.03) -> np.ndarray:
    """Multiply the last ``seconds`` of ``event`` by a half-cosine ramp from 1 to 0.

    Events are cut to a finite length; without the fade the cut is a small step, which is a
    broadband transient that onset detectors rightly count as an extra onset.
    """
    n = min(event.size, max(1, _n_samples(seconds, sr)))
    out = event.copy()
    out[-n:] *= 0.5 * (1.0 + np.cos(np.pi * np.arange(1, n + 1) / n))
    return out


def _place(out: np.ndarray, start: int, event: np.ndarray) -> None:
    """Add ``event`` into ``out`` (1-D, float64) from sample ``start``, cut at the end."""
    if start >= out.size:
        return
    stop = min(out.size, start + event.size)
    out[start:stop] += event[: stop - start]


def click_track(
    bpm: float, seconds: float, sr: int, amp: float = 0.8, channels: int = 1
) -> np.ndarray:
    """Metronome: one short decaying broadband click per beat, the first at t = 0.

    Beat ``b`` starts at sample ``round(b * 60 * sr / bpm)``; each click is a 5 ms burst
    (decay constant 1 ms) with peak ``amp``; the rest is digital silence.

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    n = _n_samples(seconds, sr)
    out = np.zeros(n, dtype=np.float64)
    click = _click(sr, amp)
    period = 60.0 * sr / bpm
    b = 0
    while round(b * period) < n:
        _place(out, int(round(b * period)), click)
        b += 1
    return _as_pcm(out, channels)


def _kick(sr: int, amp: float, rng: np.random.Generator | None) -> np.ndarray:
    """A kick: 100 -> 55 Hz sine sweep decaying over 0.2 s plus a short beater attack.

    The attack is a 3 ms noise burst (from ``rng``; a fixed sequence when ``rng`` is None),
    which gives the kick a broadband onset comparable to the snare's. The last 30 ms fade out.

    Returns
    -------
    float64 ndarray, shape (round(0.2 * sr),)
    """
    n = _n_samples(0.2, sr)
    t = np.arange(n) / sr
    # f(t) = 55 + 45 exp(-t / 0.03): phase = integral of 2 pi f
    phi = 2.0 * np.pi * (55.0 * t + 45.0 * 0.03 * (1.0 - np.exp(-t / 0.03)))
    body = np.sin(phi) * np.exp(-t / 0.045)
    gen = rng if rng is not None else np.random.default_rng(_CLICK_SEED + 1)
    na = max(1, _n_samples(0.003, sr))
    attack = np.zeros(n)
    attack[:na] = 0.6 * gen.standard_normal(na) * np.exp(-np.arange(na) / (0.001 * sr))
    return _fade_out(amp * (body + attack), sr)


def _snare(sr: int, amp: float, rng: np.random.Generator) -> np.ndarray:
    """A snare: decaying noise burst plus a decaying 200 Hz tone, 0.15 s long (30 ms fade).

    Returns
    -------
    float64 ndarray, shape (round(0.15 * sr),)
    """
    n = _n_samples(0.15, sr)
    t = np.arange(n) / sr
    noise = 0.5 * rng.standard_normal(n) * np.exp(-t / 0.03)
    tone = 0.6 * np.sin(2.0 * np.pi * 200.0 * t) * np.exp(-t / 0.035)
    return _fade_out(amp * (noise + tone), sr)


def drum_loop(
    bpm: float,
    seconds: float,
    sr: int,
    rng: np.random.Generator,
    amp: float = 0.5,
    channels: int = 1,
) -> np.ndarray:
    """Kick on beats 1 and 3, snare on beats 2 and 4 of every bar; no off-beat hi-hats.

    Beat ``b`` (0-based; beats 0 and 2 of a bar are "1" and "3") starts at sample
    ``round(b * 60 * sr / bpm)``, the first at t = 0. Kick and snare have comparable broadband
    onsets, so the only pulse is the beat itself and the tapped tempo is ``bpm``. Hits are at
    most 0.2 s long (so up to 200 BPM every hit starts from digital silence) and a hit that
    would be cut by the end of the track is left out (a cut is a spurious onset).

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    n = _n_samples(seconds, sr)
    out = np.zeros(n, dtype=np.float64)
    period = 60.0 * sr / bpm
    b = 0
    while round(b * period) < n:
        start = int(round(b * period))
        hit = _kick(sr, 1.0, rng) if b % 2 == 0 else _snare(sr, 1.0, rng)
        if start + hit.size <= n:
            _place(out, start, hit)
        b += 1
    peak = np.max(np.abs(out)) if n else 0.0
    if peak > 0:
        out *= amp / peak
    return _as_pcm(out, channels)


# ----------------------------------------------------------------------------------------------
# stereo helpers
# ----------------------------------------------------------------------------------------------


def mono_to_stereo(x: np.ndarray) -> np.ndarray:
    """The same signal in L and R.

    Parameters
    ----------
    x : float ndarray, shape (frames,) or (frames, 1)

    Returns
    -------
    float32 ndarray, shape (frames, 2)
    """
    m = np.asarray(x, dtype=np.float32).reshape(-1)
    return np.stack([m, m], axis=1)


def anti_phase(x: np.ndarray) -> np.ndarray:
    """Stereo with ``L = x`` and ``R = -x`` (stereo width 1, correlation -1).

    Parameters
    ----------
    x : float ndarray, shape (frames,) or (frames, 1)

    Returns
    -------
    float32 ndarray, shape (frames, 2)
    """
    m = np.asarray(x, dtype=np.float32).reshape(-1)
    return np.stack([m, -m], axis=1)


def independent_noise_stereo(
    seconds: float, sr: int, rng: np.random.Generator, rms: float = 0.1
) -> np.ndarray:
    """Independent Gaussian white noise in L and R (correlation ~0, width ~0.5).

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), 2)
    """
    return white_noise(seconds, sr, rng, rms=rms, channels=2)


# ----------------------------------------------------------------------------------------------
# music-like signal, defined in continuous time
# ----------------------------------------------------------------------------------------------


def _midi_hz(note: float) -> float:
    """Equal-tempered frequency of a MIDI note number (A4 = 69 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _gate(u: np.ndarray, dur: float, fade: float = 0.03) -> np.ndarray:
    """Continuous-time gate: 0 before ``u = 0``, 1 until ``dur - fade``, a half-cosine down to 0
    at ``u = dur``, 0 after.

    Returns
    -------
    float64 ndarray, same shape as ``u``
    """
    g = np.where((u >= 0) & (u < dur), 1.0, 0.0)
    tail = (u >= dur - fade) & (u < dur)
    g[tail] = 0.5 * (1.0 + np.cos(np.pi * (u[tail] - (dur - fade)) / fade))
    return g


def music_like(
    seconds: float,
    sr: int,
    bpm: float = 120.0,
    seed: int = 7,
    gain: float = 0.3,
    channels: int = 2,
) -> np.ndarray:
    """A few seconds of "music": chord pad + bass line + drum loop, the same at any rate.

    Everything is a closed-form function of continuous time ``t`` with a fixed gain (no
    normalisation on the samples), so rendering at 44100 and 48000 Hz samples the same signal
    (all partials are below 10 kHz). ``seed`` only fixes the snare's "noise", a sum of 60 sines
    with frequencies in 300-9000 Hz and phases drawn once from ``seed``, independent of ``sr``.

    - pad: the chords Am, F, C, G (one per bar of 4 beats), three sines per chord at MIDI
      notes 55-65 (196-349 Hz), with 50 ms attack/release ramps;
    - bass: the chord root (MIDI 41-48, 87-131 Hz), a note per beat with 3 harmonics, decaying;
    - drums: kick (sine sweep 130 -> 70 Hz, 0.25 s) on beats 1 and 3, snare (200 Hz tone +
      noise, 0.2 s) on beats 2 and 4; every note and hit ends with a 30 ms half-cosine fade.

    Band shares of tones within about two FFT bins (~45 Hz) of a band edge depend on where the
    bin centres fall, i.e. on the rate (a 60 Hz sine: sub_bass 0.29 at 44.1 kHz, 0.45 at
    48 kHz). The kick therefore ends at 70 Hz, not at a more typical 50-60 Hz, so that the
    seven shares of this signal agree within ~0.006 between 44.1 and 48 kHz.
    - stereo (``channels >= 2``): the pad 60/40 left/right, bass and drums centred; further
      channels carry the mid signal.

    Parameters
    ----------
    seconds : float, s
    sr : int, Hz
    bpm : float
    seed : int
    gain : float
        Overall linear gain; the unscaled sum peaks below 3, so ``gain <= 0.33`` keeps it in
        [-1, 1] (the default peaks near -6 dBFS).
    channels : int

    Returns
    -------
    float32 ndarray, shape (round(seconds * sr), channels)
    """
    t = _times(seconds, sr)
    beat = 60.0 / bpm
    bar = 4 * beat
    chords = [(57, 60, 64), (57, 60, 65), (55, 60, 64), (55, 59, 62)]  # Am F C G
    roots = [45, 41, 48, 43]

    pad = np.zeros_like(t)
    bass = np.zeros_like(t)
    drums = np.zeros_like(t)

    gen = np.random.default_rng(seed)
    snare_f = np.exp(gen.uniform(np.log(300.0), np.log(9000.0), 60))
    snare_ph = gen.uniform(0.0, 2.0 * np.pi, 60)

    n_bars = int(np.ceil(seconds / bar)) if seconds > 0 else 0
    for i in range(n_bars):
        tau = t - i * bar
        ramp = np.clip(np.minimum(tau, bar - tau) / 0.05, 0.0, 1.0) * _gate(tau, bar, 0.05)
        for k, note in enumerate(chords[i % 4]):
            pad += ramp * 0.25 * np.sin(2.0 * np.pi * _midi_hz(note) * tau + k)
        for b in range(4):
            u = tau - b * beat
            uu = np.maximum(u, 0.0)
            f_bass = _midi_hz(roots[i % 4])
            env = _gate(u, beat) * np.exp(-uu / 0.3)
            for h in (1, 2, 3):
                bass += env * (0.4 / h) * np.sin(2.0 * np.pi * h * f_bass * uu)
            if b % 2 == 0:
                # f(u) = 70 + 60 exp(-u / 0.02): phase = integral of 2 pi f
                phi = 2.0 * np.pi * (70.0 * uu + 60.0 * 0.02 * (1.0 - np.exp(-uu / 0.02)))
                drums += 0.6 * _gate(u, 0.25) * np.sin(phi) * np.exp(-uu / 0.06)
            else:
                noise = np.zeros_like(uu)
                for f, ph in zip(snare_f, snare_ph, strict=True):
                    noise += np.sin(2.0 * np.pi * f * uu + ph)
                noise *= 1.0 / np.sqrt(len(snare_f) / 2.0)  # unit RMS
                drums += _gate(u, 0.2) * (
                    0.3 * noise * np.exp(-uu / 0.04)
                    + 0.5 * np.sin(2.0 * np.pi * 200.0 * uu) * np.exp(-uu / 0.05)
                )

    if channels == 1:
        out = (pad + bass + drums)[:, None]
    else:
        left = 0.6 * pad + bass + drums
        right = 0.4 * pad + bass + drums
        out = np.stack([left, right] + [0.5 * (left + right)] * (channels - 2), axis=1)
    return _as_pcm(gain * out)


# ----------------------------------------------------------------------------------------------
# files
# ----------------------------------------------------------------------------------------------

_FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


def write_audio(
    path: str | Path,
    x: np.ndarray,
    sr: int,
    fmt: str | None = None,
    float_wav: bool = False,
    subtype: str | None = None,
    compression_level: float | None = None,
) -> Path:
    """Write PCM to a WAV, FLAC, OGG (Vorbis) or MP3 (MPEG layer III) file with soundfile.

    Parameters
    ----------
    path : str or Path
        Output file.
    x : float ndarray, shape (frames, channels) or (frames,), values in [-1, 1]
    sr : int, Hz
    fmt : {"wav", "flac", "ogg", "mp3"}, optional
        Container; taken from the file suffix when omitted.
    float_wav : bool
        For WAV only: write 32-bit float samples instead of the default PCM_16 (which is
        quantised by :func:`quantize_pcm16`, so WAV and FLAC hold identical PCM).
    subtype : str, optional
        Explicit libsndfile subtype, overriding the defaults (PCM_16 for WAV/FLAC, VORBIS,
        MPEG_LAYER_III).
    compression_level : float in [0, 1], optional
        Passed to libsndfile for lossy formats (0 = best quality / highest bitrate).

    Returns
    -------
    Path
        The written file.
    """
    p = Path(path)
    key = (fmt or p.suffix.lstrip(".")).lower()
    if key not in _FORMATS:
        raise ValueError(f"unsupported format {key!r}; use one of {sorted(_FORMATS)}")
    container, default_subtype = _FORMATS[key]
    if float_wav:
        if key != "wav":
            raise ValueError("float_wav is only for WAV files")
        default_subtype = "FLOAT"
    data = np.asarray(x, dtype=np.float32)
    chosen = subtype or default_subtype
    if chosen == "PCM_16":
        # Quantise here, not in libsndfile: its float -> int16 conversion differs between the
        # WAV and FLAC writers, and the same PCM must land in both containers.
        data = quantize_pcm16(data)
    kwargs = {}
    if compression_level is not None:
        kwargs["compression_level"] = compression_level
    sf.write(p, data, sr, subtype=chosen, format=container, **kwargs)
    return p


def quantize_pcm16(x: np.ndarray) -> np.ndarray:
    """16-bit PCM of float samples: ``clip(round(x * 32768), -32768, 32767)``.

    Reading such a file back as float gives exactly ``quantize_pcm16(x) / 32768``.

    Returns
    -------
    int16 ndarray, same shape as ``x``
    """
    q = np.round(np.asarray(x, dtype=np.float64) * 32768.0)
    return np.clip(q, -32768, 32767).astype(np.int16)
