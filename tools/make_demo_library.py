"""Build a small synthesised demo library: a dozen short tracks in mixed formats and rates.

Usage: python tools/make_demo_library.py DIR [--seconds S]

Every track is generated here (no download): click tracks and drum loops at several tempi,
chords, noise, a glide and music-like mixes, written as WAV, FLAC, OGG Vorbis and MP3
(soundfile) and as M4A with ALAC and with AAC (FFmpeg's encoders, tools/encode.py) at 22.05,
44.1 and 48 kHz; one mix is there three times, as FLAC, MP3 and AAC (near duplicates).
Re-running overwrites the same files with the same content.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import encode  # tools/encode.py: M4A through FFmpeg's encoders

#: The demo's M4A files and their codec (tools/encode.py FORMATS); soundfile writes the rest.
M4A_KINDS = {"drums/loop_128bpm.m4a": "m4a_alac", "mixes/copies/song_100bpm.m4a": "m4a_aac"}


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(round(seconds * sr))) / sr


def _clicks(bpm: float, seconds: float, sr: int) -> np.ndarray:
    x = np.zeros(int(round(seconds * sr)))
    burst = np.exp(-np.arange(int(0.005 * sr)) / (0.001 * sr))
    rng = np.random.default_rng(int(bpm))
    for b in range(int(seconds * bpm / 60.0) + 1):
        i = int(round(b * 60.0 * sr / bpm))
        n = min(len(burst), len(x) - i)
        if n > 0:
            x[i : i + n] += 0.8 * burst[:n] * rng.standard_normal(n)
    return x


def _drums(bpm: float, seconds: float, sr: int) -> np.ndarray:
    x = np.zeros(int(round(seconds * sr)))
    rng = np.random.default_rng(int(bpm) + 1)
    t = _t(0.2, sr)
    kick = np.sin(2 * np.pi * (55 * t + 45 * 0.03 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.08)
    snare = (0.5 * rng.standard_normal(len(t)) + 0.6 * np.sin(2 * np.pi * 200 * t)) * np.exp(
        -t / 0.03)
    for b in range(int(seconds * bpm / 60.0) + 1):
        i = int(round(b * 60.0 * sr / bpm))
        hit = kick if b % 2 == 0 else snare
        n = min(len(hit), len(x) - i)
        if n > 0:
            x[i : i + n] += 0.5 * hit[:n]
    return x


def _chord(freqs: list[float], seconds: float, sr: int) -> np.ndarray:
    t = _t(seconds, sr)
    return sum(np.sin(2 * np.pi * f * t) for f in freqs) * (0.5 / len(freqs))


def tracks(seconds: float) -> list[tuple[str, int, np.ndarray]]:
    """(relative path, sample rate, float PCM frames x channels) of every demo track.

    Each piece has its own length (``seconds`` plus a second per piece, as real tracks differ
    in length; ``engine-query duplicates`` pairs only tracks of nearly the same duration), and
    the two songs differ in tempo, key and bass; the real duplicates are the MP3 and AAC copies
    of the 100 BPM song.
    """
    out: list[tuple[str, int, np.ndarray]] = []
    rng = np.random.default_rng(7)
    lengths = (seconds + i for i in itertools.count())
    for bpm, ext, sr in ((72, "flac", 44100), (120, "wav", 44100), (174, "ogg", 48000)):
        x = _clicks(bpm, next(lengths), sr)
        out.append((f"clicks/click_{bpm}bpm.{ext}", sr, np.stack([x, x], axis=1)))
    for bpm, ext, sr in ((90, "mp3", 44100), (128, "m4a", 48000)):
        x = _drums(bpm, next(lengths), sr)
        out.append((f"drums/loop_{bpm}bpm.{ext}", sr, np.stack([x, 0.8 * x], axis=1)))
    for name, freqs, ext, sr in (("c_major", [261.6, 329.6, 392.0], "flac", 44100),
                                 ("a_minor", [220.0, 261.6, 329.6], "ogg", 22050)):
        x = _chord(freqs, next(lengths), sr)
        out.append((f"pads/{name}.{ext}", sr, np.stack([x, x], axis=1)))
    sr = 44100
    n = next(lengths)
    noise = 0.1 * rng.standard_normal((int(n * sr), 2))
    out.append(("noise/white_stereo.flac", sr, noise))
    n = next(lengths)
    t = _t(n, sr)
    f0 = 110.0 * 2.0 ** (t * 4.0 / n)
    glide = 0.4 * np.sin(2 * np.pi * np.cumsum(f0) / sr)
    out.append(("tones/glide.wav", sr, glide[:, None]))
    for bpm, ext, chord, root in ((100, "flac", [196.0, 246.9, 293.7], 98.0),  # G major
                                  (140, "mp3", [220.0, 261.6, 329.6], 110.0)):  # A minor
        n = next(lengths)
        t = _t(n, sr)
        mix = 0.6 * _drums(bpm, n, sr) + 0.5 * _chord(chord, n, sr)
        bass = 0.3 * np.sin(2 * np.pi * root * t) * (0.5 + 0.5 * np.cos(2 * np.pi * t * bpm / 60))
        left, right = mix + bass, 0.9 * mix + bass
        out.append((f"mixes/song_{bpm}bpm.{ext}", sr, np.stack([left, right], axis=1)))
        if bpm == 100:  # the same song as MP3 and AAC too: what `engine-query duplicates` finds
            out.append(("mixes/copies/song_100bpm.mp3", sr, np.stack([left, right], axis=1)))
            out.append(("mixes/copies/song_100bpm.m4a", sr, np.stack([left, right], axis=1)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="length of the shortest track (s); each further piece is 1 s longer")
    args = ap.parse_args(argv)
    total = 0.0
    for rel, sr, x in tracks(args.seconds):
        total += x.shape[0] / sr
        path = args.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        peak = float(np.max(np.abs(x))) or 1.0
        pcm = (x * min(1.0, 0.89 / peak)).astype(np.float32)
        if rel in M4A_KINDS:
            path.write_bytes(encode.encode(pcm, sr, M4A_KINDS[rel]))
        else:
            sf.write(path, pcm, sr)
    n = len(tracks(0.1))
    print(f"demo library: {n} tracks of {args.seconds:g} s and longer in {args.dir}/ "
          f"({math.ceil(total / 60)} min of audio)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
