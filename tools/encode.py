"""Encode synthesised audio with FFmpeg's encoders (PyAV), for test fixtures, bench/ and the demo.

soundfile writes WAV, FLAC, OGG and MP3; everything else a library holds (M4A with AAC or ALAC,
WavPack, WMA, AC-3, TTA, Opus in WebM, the audio of an MP4 video) is written here, block by
block, so a 2-hour file never sits in memory whole::

    from encode import FORMATS, encode, write
    data = encode(x, 44100, "m4a_aac")                  # bytes
    write("long.m4a", blocks, 44100, 2, "m4a_aac")      # blocks: iterable of (n, 2) arrays

``x`` is float in [-1, 1], shape (frames, channels). Integer sample formats are rounded from
``x * 32767`` (16-bit), so a lossless encoding decodes to exactly ``round(x * 32767) / 32768``
(what soundfile's PCM_16 writes too): the same samples in every lossless container.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

__all__ = ["FORMATS", "Format", "encode", "write"]


@dataclass(frozen=True)
class Format:
    """How one kind of file is written.

    Attributes
    ----------
    container : str
        FFmpeg's muxer (``"ipod"`` is M4A).
    codec : str
        FFmpeg's encoder.
    ext : str
        The file name's extension, without the dot.
    sample_fmt : str or None
        The encoder's input sample format (None: its first).
    bit_rate : int or None, bit/s
    rate : int or None, Hz
        Forces the sample rate (Opus encodes 48 kHz only); None keeps the caller's.
    video : bool
        Also writes a small video stream (an MP4 "music video"); with no audio codec
        (``codec=""``) only the video.
    options : tuple of (str, str)
        The encoder's options.
    """

    container: str
    codec: str
    ext: str
    sample_fmt: str | None = None
    bit_rate: int | None = None
    rate: int | None = None
    video: bool = False
    options: tuple[tuple[str, str], ...] = ()


#: The kinds of file tests and benches write, by name.
FORMATS: dict[str, Format] = {
    "m4a_aac": Format("ipod", "aac", "m4a", bit_rate=256_000),
    "m4a_aac128": Format("ipod", "aac", "m4a", bit_rate=128_000),
    # FFmpeg's fast AAC coder: several times quicker to write, for long files (bench/)
    "m4a_aac_fast": Format("ipod", "aac", "m4a", bit_rate=256_000,
                           options=(("aac_coder", "fast"),)),
    "m4a_alac": Format("ipod", "alac", "m4a", sample_fmt="s16p"),
    "m4a_alac24": Format("ipod", "alac", "m4a", sample_fmt="s32p"),
    "wavpack": Format("wv", "wavpack", "wv", sample_fmt="s16p"),
    "flac": Format("flac", "flac", "flac", sample_fmt="s16"),
    "wav": Format("wav", "pcm_s16le", "wav", sample_fmt="s16"),
    "tta": Format("tta", "tta", "tta", sample_fmt="s16"),
    "wma": Format("asf", "wmav2", "wma", bit_rate=192_000),
    "ac3": Format("ac3", "ac3", "ac3", bit_rate=448_000),
    "mp3": Format("mp3", "libmp3lame", "mp3", bit_rate=256_000),
    "opus_webm": Format("webm", "libopus", "webm", bit_rate=160_000, rate=48000),
    "opus_ogg": Format("ogg", "libopus", "opus", bit_rate=160_000, rate=48000),
    "vorbis_mka": Format("matroska", "vorbis", "mka", bit_rate=192_000),
    "mp4_video": Format("mp4", "aac", "mp4", bit_rate=192_000, video=True),
    "mp4_video_no_audio": Format("mp4", "", "mp4", video=True),
}


def _samples(block: np.ndarray, sample_fmt: str) -> np.ndarray:
    """``block`` (frames, channels) float as the encoder's sample format and layout."""
    planar = sample_fmt.endswith("p")
    base = sample_fmt[:-1] if planar else sample_fmt
    x = np.clip(block, -1.0, 32767 / 32768)
    if base == "flt":
        a = x.astype(np.float32)
    elif base == "s16":
        a = np.round(x * 32767).astype(np.int16)
    elif base == "s32":  # 16-bit samples, left-aligned: the same values as s16
        a = np.round(x * 32767).astype(np.int32) << 16
    else:
        raise ValueError(f"sample format {sample_fmt!r} is not written here")
    return np.ascontiguousarray(a.T) if planar else np.ascontiguousarray(a.reshape(1, -1))


def _video_frames(stream: Any, seconds: float) -> Iterator[Any]:
    """A few grey frames a second, for the length of the audio."""
    img = np.full((stream.height, stream.width, 3), 96, dtype=np.uint8)
    for i in range(max(1, int(seconds * 5))):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        yield frame


def write(target: str | os.PathLike[str] | io.BytesIO, blocks: Iterable[np.ndarray], sr: int,
          channels: int, kind: str | Format, *, seconds: float | None = None,
          extra_audio: int = 0, default_stream: int | None = None) -> None:
    """Encode ``blocks`` into ``target`` as ``FORMATS[kind]``.

    Parameters
    ----------
    target : path or BytesIO
    blocks : iterable of ndarray, shape (frames, channels), float
    sr : int, Hz
    channels : int
    kind : str or Format
        A key of :data:`FORMATS`, or a :class:`Format` of the caller's.
    seconds : float or None, keyword-only
        The audio's length, needed only for a video stream (how many frames to write).
    extra_audio : int, keyword-only
        Further audio streams carrying the same blocks at half the level.
    default_stream : int or None, keyword-only
        Index among the audio streams of the one flagged default (Matroska); None flags none.
    """
    f = FORMATS[kind] if isinstance(kind, str) else kind
    rate = f.rate or sr
    if f.rate and f.rate != sr:
        raise ValueError(f"{kind} encodes {f.rate} Hz only; synthesise at that rate")
    with av.open(target, "w", format=f.container) as out:
        vstream = None
        if f.video:
            vstream = out.add_stream("mpeg4", rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astreams = []
        if f.codec:
            for i in range(1 + extra_audio):
                options = dict(f.options)
                if f.codec == "vorbis":
                    options["strict"] = "experimental"
                s = out.add_stream(f.codec, rate=rate, options=options)
                s.layout = {1: "mono", 2: "stereo", 6: "5.1"}[channels]
                s.format = f.sample_fmt or s.codec_context.codec.audio_formats[0].name
                if f.bit_rate:
                    s.bit_rate = f.bit_rate
                if default_stream is not None:
                    s.disposition = (av.stream.Disposition.default if i == default_stream
                                     else av.stream.Disposition(0))
                astreams.append(s)
        if vstream is not None:
            for frame in _video_frames(vstream, seconds or 1.0):
                out.mux(vstream.encode(frame))
            out.mux(vstream.encode(None))
        if astreams:
            _encode_audio(out, astreams, blocks, rate)


def _encode_audio(out: Any, streams: list[Any], blocks: Iterable[np.ndarray], sr: int) -> None:
    s0 = streams[0]
    size = s0.codec_context.frame_size or 4096
    fmt = s0.format.name
    layout = s0.layout.name
    pending = np.empty((0, s0.layout.nb_channels))
    pts = 0

    def emit(chunk: np.ndarray) -> None:
        nonlocal pts
        for i, s in enumerate(streams):
            frame = av.AudioFrame.from_ndarray(_samples(chunk * (0.5 if i else 1.0), fmt),
                                               format=fmt, layout=layout)
            frame.sample_rate = sr
            frame.pts = pts
            frame.time_base = Fraction(1, sr)
            out.mux(s.encode(frame))
        pts += len(chunk)

    for block in blocks:
        pending = np.concatenate([pending, np.asarray(block, dtype=np.float64)])
        while len(pending) >= size:
            emit(pending[:size])
            pending = pending[size:]
    if len(pending):
        emit(pending)
    for s in streams:
        out.mux(s.encode(None))


def encode(x: np.ndarray, sr: int, kind: str | Format, **options: Any) -> bytes:
    """``x`` (frames, channels) encoded as ``FORMATS[kind]``: the file's bytes."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    buf = io.BytesIO()
    write(buf, [x], sr, x.shape[1], kind, seconds=len(x) / sr, **options)
    return buf.getvalue()
