"""The one decode path: audio files to float32 PCM blocks, in a caller's buffer.

Every place that reads audio goes through here: the fork workers and the Dask tasks
(engine/run/task.py), ``engine-query similar FILE`` and the Python API
(:func:`fingerprint_file`). Decoding is I/O, so it lives beside the engine and not in
``kernels/``, which only ever sees arrays.

>>> from engine.decode import fingerprint_file
>>> fp = fingerprint_file("song.m4a")
>>> fp.as_dict()["tempo_bpm"]

Two decoders, one choice
------------------------
:func:`open_audio` opens the file once, reads its first bytes (engine/decode/probe.py: magic
numbers, never the name) and hands the descriptor to the decoder :data:`FORMAT_DECODERS`
names for that format, trying the next one if it refuses::

    path ──open(O_NONBLOCK)──> fd ──probe(first 64 bytes)──> format ──FORMAT_DECODERS──>
        libsndfile  (engine/decode/sndfile.py: soundfile)   WAV AIFF CAF AU ... and the
                                                            formats only it knows
        FFmpeg      (engine/decode/ffmpeg.py: PyAV)         MP4/M4A (AAC, ALAC), WMA, APE,
                                                            WavPack, Musepack, TTA, AC-3,
                                                            Matroska/WebM, video files

Where both read a format, the table names the faster one, measured per core by
bench/decoders.py (bench/README.md has the table). Lossless formats give the same floats from
both decoders: integers are scaled by ``2**-(bits-1)`` either way.

Memory does not grow with the track's length: :meth:`AudioSource.read_into` fills a buffer the
caller allocated once, block after block, and the analyzer streams.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal

import numpy as np
import numpy.typing as npt

import kernels
from kernels.errors import ParameterError

from ..errors import DecodeError
from ..text import display
from .probe import Probe, probe
from .sndfile import SndfileSource
from .source import AudioSource

if TYPE_CHECKING:  # the analyzer (Numba, FFTW) loads when a file is fingerprinted, not before
    from kernels import Analyzer, Fingerprint

__all__ = [
    "DECODERS",
    "DEFAULT_BLOCK_FRAMES",
    "FORMAT_DECODERS",
    "AudioSource",
    "Decoder",
    "fingerprint_file",
    "open_audio",
    "stream",
]

#: Default decode block: 65536 frames (512 KiB of stereo float32), reused for the whole file.
DEFAULT_BLOCK_FRAMES = 65536

Decoder = Literal["libsndfile", "ffmpeg"]


def _ffmpeg(path: str, fd: int, fmt: str) -> AudioSource:
    from .ffmpeg import FfmpegSource  # PyAV's import (0.04 s) once a file needs FFmpeg

    return FfmpegSource(path, fd, fmt)


#: The decoders, by the name :attr:`AudioSource.decoder` gives.
DECODERS: Final[dict[str, Callable[[str, int, str], AudioSource]]] = {
    "libsndfile": SndfileSource,
    "ffmpeg": _ffmpeg,
}
_SHOWN: Final = {"libsndfile": "libsndfile", "ffmpeg": "FFmpeg"}
_BOTH: Final = ("libsndfile", "ffmpeg")
_FFMPEG: Final = ("ffmpeg",)
#: Decoders to try for each probed format, the preferred one first. Where both read a format,
#: the order is the per-core speed bench/decoders.py measured (bench/README.md, "Decoders"):
#: libsndfile decodes WAV 2.0x, FLAC 1.28x, MP3 1.33x as fast as FFmpeg, which decodes Opus
#: 1.93x as fast; Vorbis (1.03x) and AU (1.04x) are ties.
#: ``"unknown"`` covers what the probe cannot name: libsndfile's rarer formats (VOC, IRCAM,
#: NIST, ...) and whatever FFmpeg's own probe recognises.
FORMAT_DECODERS: Final[dict[str, tuple[str, ...]]] = {
    "wav": _BOTH, "aiff": _BOTH, "w64": _BOTH, "caf": _BOTH, "au": _BOTH,
    "flac": _BOTH, "mp3": _BOTH,
    "ogg_vorbis": _BOTH,  # a tie: libsndfile stays, whose decode the v2 figures measured
    "ogg_opus": ("ffmpeg", "libsndfile"),
    "ogg_flac": _BOTH, "ogg_speex": _BOTH, "ogg": _BOTH,
    "mp4": _FFMPEG, "matroska": _FFMPEG, "asf": _FFMPEG, "ape": _FFMPEG, "wavpack": _FFMPEG,
    "musepack": _FFMPEG, "tta": _FFMPEG, "ac3": _FFMPEG, "dts": _FFMPEG, "adts": _FFMPEG,
    "amr": _FFMPEG, "avi": _FFMPEG,
    "unknown": _BOTH,
}  # fmt: skip


def open_audio(path: str | os.PathLike[str], *, decoder: Decoder | None = None) -> AudioSource:
    """Open an audio file for block-wise decoding, with the decoder its content calls for.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile or FFmpeg decodes (see :data:`FORMAT_DECODERS`). A name that is not
        valid UTF-8 (kept by Python as surrogates) opens too.
    decoder : {"libsndfile", "ffmpeg"} or None, keyword-only
        Use only this decoder (benchmarks, tests); None chooses by content.

    Returns
    -------
    AudioSource

    Raises
    ------
    DecodeError
        The file cannot be opened as audio; the message names the path and the reason, and
        :attr:`DecodeError.kind` classifies it.
    ParameterError
        ``decoder`` is not one of :data:`DECODERS`.
    """
    if decoder is not None and decoder not in DECODERS:
        raise ParameterError(f"decoder={decoder!r} is not one of {sorted(DECODERS)}; pass one "
                             f"of them, or None to choose by the file's content")
    p = os.fspath(path)
    try:
        # By descriptor: no decoder ever sees the name, so a name of any length (libsndfile's
        # own open refuses more than ~1 KiB) or encoding opens. O_NONBLOCK: a FIFO put where a
        # file was scanned must not block the open; it is refused below.
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise DecodeError(p, e.strerror or str(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise DecodeError(p, "not a regular file")
        if st.st_size == 0:
            raise DecodeError(p, "the file is empty (0 bytes)")
        os.set_blocking(fd, True)
        found = probe(fd, st.st_size)
        source = _open_with(p, fd, found, (decoder,) if decoder else
                            FORMAT_DECODERS.get(found.format, _BOTH))
    except OSError as e:
        os.close(fd)
        raise DecodeError(p, e.strerror or str(e)) from e
    except BaseException:
        os.close(fd)
        raise
    source.adopt(fd)
    return source


def _open_with(path: str, fd: int, found: Probe, order: tuple[str, ...]) -> AudioSource:
    """The first decoder of ``order`` that opens the file; the clearest refusal if none does."""
    if found.problem:
        raise DecodeError(path, found.problem)
    if found.encrypted:
        raise DecodeError(path, f"the audio is encrypted (DRM: {found.encrypted}): only an "
                                f"unprotected copy can be fingerprinted", kind="encrypted")
    refusals: list[tuple[str, DecodeError]] = []
    for name in order:
        os.lseek(fd, 0, os.SEEK_SET)  # from the start, wherever the last decoder left off
        try:
            return DECODERS[name](path, fd, found.format)
        except DecodeError as e:
            refusals.append((name, e))
    specific = [e for _, e in refusals if e.kind != "decode"]
    if specific:  # "no audio stream", "encrypted", ...: say that, not a generic refusal
        raise specific[0]
    if len(refusals) == 1:
        raise refusals[0][1]
    said = "; ".join(f"{_SHOWN[name]}: {e.reason}" for name, e in refusals)
    if found.format == "unknown":
        raise DecodeError(path, f"no decoder recognises the data as audio ({said})")
    raise DecodeError(path, f"{found.format} data that no decoder could open ({said})")


def stream(source: AudioSource, analyzer: Analyzer, pcm: npt.NDArray[np.float32], *,
           clock: Callable[[], float] = time.perf_counter) -> tuple[float, float]:
    """Decode ``source`` to its end through ``pcm`` into ``analyzer`` (not finished).

    Parameters
    ----------
    source : AudioSource
    analyzer : kernels.Analyzer
        Made for ``source.samplerate`` and ``source.channels``, fresh or reset.
    pcm : ndarray, shape (frames, source.channels), float32
        The block buffer, reused for every block.
    clock : callable, keyword-only
        Seconds, for the timings.

    Returns
    -------
    decode_s, analysis_s : float, s
        Time spent decoding and analysing.

    Raises
    ------
    DecodeError
        From :meth:`AudioSource.read_into`.
    BadAudioError
        From the analyzer (NaN / infinite samples).
    """
    decode_s = analysis_s = 0.0
    while True:
        t0 = clock()
        n = source.read_into(pcm)
        t1 = clock()
        decode_s += t1 - t0
        if n == 0:
            return decode_s, analysis_s
        analyzer.feed(pcm[:n])
        analysis_s += clock() - t1


def fingerprint_file(path: str | os.PathLike[str], *,
                     block_frames: int = DEFAULT_BLOCK_FRAMES) -> Fingerprint:
    """Decode ``path`` block by block and return its fingerprint.

    Parameters
    ----------
    path : str or PathLike
        Any file :func:`open_audio` reads.
    block_frames : int, keyword-only
        Frames per decoded block (memory is ``block_frames x channels x 4`` bytes, whatever
        the track's length).

    Returns
    -------
    kernels.Fingerprint

    Raises
    ------
    ParameterError
        ``block_frames`` is not a positive integer.
    DecodeError
        The file cannot be opened or decoded; the message names the path and the reason.
    BadAudioError
        It decodes to no samples, or to NaN / infinite samples (the message names the path).
    """
    if not isinstance(block_frames, int | np.integer) or block_frames < 1:
        raise ParameterError(f"block_frames={block_frames!r} must be a positive integer")
    from kernels.errors import BadAudioError

    with open_audio(path) as source:
        analyzer = kernels.Analyzer(source.samplerate, source.channels)
        pcm = np.empty((int(block_frames), source.channels), dtype=np.float32)
        try:
            stream(source, analyzer, pcm)
            return analyzer.finish()
        except BadAudioError as e:
            raise BadAudioError(f"{display(source.path)}: {e}") from e
