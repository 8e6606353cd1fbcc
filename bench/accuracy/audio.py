"""Rendering and encoding the clips of bench/accuracy.py, and audio measures they share.

- :func:`render_clip` writes a clip's MIDI, renders it with FluidSynth and the General MIDI
  soundfont (44.1 kHz stereo, the synthesiser's default reverb and chorus), fits it to the
  clip's length, normalises it to -1 dBFS peak and writes the source (16-bit FLAC), its MP3
  and OGG Vorbis encodings (libsndfile, :data:`ENCODINGS`), the truth as JSON beside them and,
  for drum and piano clips, a copy over a pink-noise bed (:func:`pink_noise`, 10 dB SNR);
- a clip whose files and truth exist with the same generator version and settings is not
  rendered again (the cache of ``--work DIR``);
- :func:`active_seconds` is docs/FINGERPRINT.md's active duration, the denominator of
  ``transient_density``: the true onset rate of a file divides by the same duration.

FluidSynth renders in 64-frame blocks, so a note starts up to 1.5 ms after its MIDI time; a
libsndfile MP3 or OGG decodes sample-aligned with its source (gapless: checked, lag 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: The General MIDI soundfont of Debian's fluid-soundfont-gm.
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 44100
#: Peak level of every rendered clip (-1 dBFS).
PEAK = 0.891
#: Seconds faded out at the end of the file (after the music's tails).
FADE_S = 0.5
#: -60 dBFS: the activity threshold of docs/FINGERPRINT.md.
ACTIVE_RMS = 1e-3
#: The noisy condition: pink noise this many dB below the clip's active power.
NOISE_SNR_DB = 10.0
NOISE_FAMILIES = ("drums", "piano")

#: Encodings of every clip: suffix -> soundfile.write keyword arguments. MP3: libsndfile sets
#: LAME to 320 - 288 x level kbit/s, so 0.6667 is 128 kbit/s CBR; OGG Vorbis: quality
#: 1 - level, so 0.6 is q4 (about 128 kbit/s). The usual quality of a library's lossy files.
ENCODINGS: dict[str, dict[str, Any]] = {
    "flac": {"format": "FLAC", "subtype": "PCM_16"},
    "mp3": {"format": "MP3", "subtype": "MPEG_LAYER_III", "compression_level": 0.6667,
            "bitrate_mode": "CONSTANT"},
    "ogg": {"format": "OGG", "subtype": "VORBIS", "compression_level": 0.6},
}

_WRITE_BLOCK = 65536  # libsndfile's MP3 writer is given blocks, never a whole file


def fluidsynth_version() -> str | None:
    """FluidSynth's version line, or None when it is not installed.

    Returns
    -------
    str or None
    """
    exe = shutil.which("fluidsynth")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else "unknown"


def soundfont_id() -> dict[str, Any] | None:
    """The soundfont's path, size and the SHA-256 of its first MiB (a cheap identity).

    Returns
    -------
    dict or None
        None when the soundfont is missing.
    """
    if not SOUNDFONT.is_file():
        return None
    with open(SOUNDFONT, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()
    return {"path": str(SOUNDFONT.resolve()), "bytes": SOUNDFONT.stat().st_size,
            "sha256_first_mib": head}


def active_seconds(mono: np.ndarray, sr: int) -> float:
    """Active duration as docs/FINGERPRINT.md defines it for ``transient_density``.

    Whole seconds whose mono RMS is >= 1e-3, plus the trailing partial second when its RMS is.

    Parameters
    ----------
    mono : ndarray
        Mono samples (mean of the channels).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    float
        Seconds.
    """
    x = np.asarray(mono, dtype=np.float64)
    whole = len(x) // sr
    sec = x[: whole * sr].reshape(whole, sr) if whole else np.zeros((0, sr))
    active = float(np.count_nonzero(np.sqrt(np.mean(sec**2, axis=1)) >= ACTIVE_RMS))
    tail = x[whole * sr:]
    if tail.size and np.sqrt(np.mean(tail**2)) >= ACTIVE_RMS:
        active += tail.size / sr
    return active


def pink_noise(*, frames: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Pink (1/f power) noise, independent per channel, unit RMS, 20 Hz high-passed.

    Parameters
    ----------
    frames, channels : int
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        float64 (frames, channels).
    """
    spec = np.fft.rfft(rng.standard_normal((frames, channels)), axis=0)
    f = np.fft.rfftfreq(frames, 1.0 / SAMPLE_RATE)
    gain = np.where(f >= 20.0, 1.0 / np.sqrt(np.maximum(f, 1.0)), 0.0)
    noise = np.fft.irfft(spec * gain[:, None], n=frames, axis=0)
    return noise / np.sqrt(np.mean(noise**2))


def add_noise(audio: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Mix pink noise under ``audio`` at ``snr_db`` below its power over active seconds.

    The signal's power is its mean square over the active whole seconds (so the silent tail
    does not lower it); the sum is scaled down only if it would clip.

    Parameters
    ----------
    audio : ndarray
        (frames, channels) float.
    snr_db : float
    rng : numpy.random.Generator

    Returns
    -------
    ndarray
        float32 (frames, channels).
    """
    x = np.asarray(audio, dtype=np.float64)
    mono = x.mean(axis=1)
    whole = len(mono) // SAMPLE_RATE
    sec = x[: whole * SAMPLE_RATE].reshape(whole, SAMPLE_RATE, x.shape[1])
    rms_sec = np.sqrt(np.mean(mono[: whole * SAMPLE_RATE].reshape(whole, SAMPLE_RATE) ** 2,
                              axis=1))
    act = sec[rms_sec >= ACTIVE_RMS]
    power = float(np.mean(act**2)) if act.size else float(np.mean(x**2))
    noise = pink_noise(frames=len(x), channels=x.shape[1], rng=rng)
    y = x + noise * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    peak = float(np.max(np.abs(y)))
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)


def _write(path: Path, audio: np.ndarray, encoding: str) -> None:
    import soundfile as sf

    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(tmp, "w", samplerate=SAMPLE_RATE, channels=audio.shape[1],
                      **ENCODINGS[encoding]) as out:
        for i in range(0, len(audio), _WRITE_BLOCK):
            out.write(audio[i:i + _WRITE_BLOCK])
    os.replace(tmp, path)


def clip_files(*, work: Path, truth_id: str, family: str) -> dict[str, Path]:
    """The files of one clip in the work folder.

    Parameters
    ----------
    work : Path
        The ``--work`` folder.
    truth_id : str
        The clip's id (``family-NNN``).
    family : str

    Returns
    -------
    dict
        ``json``, ``mid``, one entry per encoding and, for :data:`NOISE_FAMILIES`, ``pink``.
    """
    stem = work / "clips" / family / truth_id
    out = {"json": stem.with_suffix(".json"), "mid": stem.with_suffix(".mid")}
    for enc in ENCODINGS:
        out[enc] = stem.with_suffix("." + enc)
    if family in NOISE_FAMILIES:
        out["pink"] = stem.parent / f"{truth_id}-pink{NOISE_SNR_DB:g}.flac"
    return out


def render_settings(*, music_s: float, clip_s: float) -> dict[str, Any]:
    """What a cached clip must have been made with to be reused.

    Parameters
    ----------
    music_s, clip_s : float
        Seconds of music and of the file.

    Returns
    -------
    dict
    """
    from . import clips

    return {"generator_version": clips.GENERATOR_VERSION, "music_s": music_s, "clip_s": clip_s,
            "sample_rate": SAMPLE_RATE, "peak": PEAK, "encodings": ENCODINGS,
            "noise_snr_db": NOISE_SNR_DB, "soundfont_bytes":
                SOUNDFONT.stat().st_size if SOUNDFONT.is_file() else None}


def render_clip(spec: dict[str, Any]) -> dict[str, Any]:
    """Generate, render and encode one clip unless the work folder already has it.

    Parameters
    ----------
    spec : dict
        ``family``, ``index``, ``seed``, ``music_s``, ``clip_s``, ``work`` (str).

    Returns
    -------
    dict
        ``id``, ``family``, ``files`` (name -> path str), ``cached`` (bool), ``render_s``.
    """
    import time

    import soundfile as sf

    from . import clips

    t0 = time.perf_counter()
    family, index, seed = spec["family"], spec["index"], spec["seed"]
    work = Path(spec["work"])
    truth_id = f"{family}-{index:03d}"
    files = clip_files(work=work, truth_id=truth_id, family=family)
    settings = render_settings(music_s=spec["music_s"], clip_s=spec["clip_s"])
    result = {"id": truth_id, "family": family,
              "files": {k: str(v) for k, v in files.items()}}
    if all(p.is_file() for p in files.values()):
        try:
            old = json.loads(files["json"].read_text())
            if old.get("render") == json.loads(json.dumps(settings)) and old.get("seed") == seed:
                return {**result, "cached": True, "render_s": time.perf_counter() - t0}
        except (OSError, ValueError):
            pass
    files["json"].parent.mkdir(parents=True, exist_ok=True)
    clip = clips.make_clip(family=family, index=index, seed=seed, music_s=spec["music_s"])
    clips.write_midi(clip, str(files["mid"]))
    with tempfile.TemporaryDirectory(prefix="accuracy-render-") as tmp:
        wav = Path(tmp) / "out.wav"
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE),
                        "-F", str(wav), str(SOUNDFONT), str(files["mid"])],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=600)
        audio, sr = sf.read(wav, dtype="float64", always_2d=True)
    if sr != SAMPLE_RATE:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz, asked for {SAMPLE_RATE}")
    n = round(spec["clip_s"] * SAMPLE_RATE)
    audio = audio[:n] if len(audio) >= n else np.pad(audio, ((0, n - len(audio)), (0, 0)))
    fade = round(FADE_S * SAMPLE_RATE)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    peak = float(np.max(np.abs(audio)))
    if peak <= 0:
        raise RuntimeError(f"{truth_id}: fluidsynth rendered silence")
    audio = (audio * (PEAK / peak)).astype(np.float32)
    for enc in ENCODINGS:
        _write(files[enc], audio, enc)
    if "pink" in files:
        rng = np.random.default_rng([seed, index, 1009, sum(map(ord, family))])
        _write(files["pink"], add_noise(audio, snr_db=NOISE_SNR_DB, rng=rng), "flac")
    truth = {**clip.truth, "render": settings,
             "files": {k: v.name for k, v in files.items() if k != "json"}}
    tmp_json = files["json"].with_name(files["json"].name + ".part")
    tmp_json.write_text(json.dumps(truth, indent=1) + "\n")
    os.replace(tmp_json, files["json"])  # written last: its presence marks a whole clip
    return {**result, "cached": False, "render_s": time.perf_counter() - t0}
