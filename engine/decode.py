"""The one decode path: audio files to float32 PCM blocks, in a caller's buffer.

Every place that reads audio goes through here: the fork workers and the Dask tasks
(engine/run/task.py), ``engine-query similar FILE`` and the Python API
(:func:`fingerprint_file`). Decoding is I/O, so it lives beside the engine and not in
``kernels/``, which only ever sees arrays.

>>> from engine.decode import fingerprint_file
>>> fp = fingerprint_file("song.flac")
>>> fp.as_dict()["tempo_bpm"]

Memory does not grow with the track's length: :meth:`AudioSource.read_into` fills a buffer the
caller allocated once, block after block, and the analyzer streams.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from types import TracebackType

import numpy as np
import numpy.typing as npt
import soundfile as sf

from kernels import Analyzer, Fingerprint
from kernels.errors import ParameterError

from .errors import DecodeError
from .text import display

__all__ = ["DEFAULT_BLOCK_FRAMES", "AudioSource", "fingerprint_file", "open_audio", "stream"]

#: Default decode block: 65536 frames (512 KiB of stereo float32), reused for the whole file.
DEFAULT_BLOCK_FRAMES = 65536


def _reason(path: str, exc: BaseException) -> str:
    """libsndfile's own words (without soundfile's "Error opening 3: " prefix, which names the
    descriptor; libsndfile never sees the name), corrected where they mislead: for data it does
    not recognise it may say the file "does not exist or is not a regular file" when it is
    one."""
    reason = (getattr(exc, "error_string", None) or str(exc)).strip() or type(exc).__name__
    if "does not exist or is not a regular file" in reason and os.path.isfile(path):
        # its MPEG reader's words for "no format recognised": the file is there
        return "no audio format libsndfile reads was recognised in the data"
    return reason


class AudioSource:
    """An open audio file, read block by block into caller-allocated buffers.

    Made by :func:`open_audio`; a context manager (closing releases the decoder).

    Attributes
    ----------
    path : str
        As given to :func:`open_audio`.
    samplerate : int, Hz
    channels : int
    frames : int
        Frames the header announces; -1 when it does not say. A header may lie: it is used
        only to widen a time budget, never to size a buffer.
    """

    __slots__ = ("_fd", "_file", "channels", "frames", "path", "samplerate")

    def __init__(self, path: str, handle: sf.SoundFile, fd: int) -> None:
        self.path = path
        self._file = handle
        self._fd = fd
        self.samplerate = int(handle.samplerate)
        self.channels = int(handle.channels)
        self.frames = int(handle.frames) if handle.frames > 0 else -1

    @property
    def duration_s(self) -> float:
        """The header's duration in seconds, or -1.0 when it does not say."""
        if self.frames < 0 or self.samplerate <= 0:
            return -1.0
        return self.frames / self.samplerate

    def read_into(self, out: npt.NDArray[np.float32]) -> int:
        """Decode up to ``len(out)`` frames into ``out``; nothing is allocated.

        Parameters
        ----------
        out : ndarray, shape (frames, channels), float32
            Written from row 0; C-contiguous, ``channels`` columns.

        Returns
        -------
        int
            Frames decoded, 0 at the end of the file.

        Raises
        ------
        DecodeError
            The data cannot be decoded from here on (the message names the path).
        """
        try:
            got = self._file.read(frames=out.shape[0], dtype="float32", always_2d=True, out=out)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DecodeError(self.path, _reason(self.path, e)) from e
        return int(got.shape[0])

    def close(self) -> None:
        """Release the decoder and the file (idempotent)."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                self._file.close()
            finally:
                os.close(fd)

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def open_audio(path: str | os.PathLike[str]) -> AudioSource:
    """Open an audio file for block-wise decoding.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile decodes (WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, W64, CAF, ...). A
        name that is not valid UTF-8 (kept by Python as surrogates) opens too.

    Returns
    -------
    AudioSource

    Raises
    ------
    DecodeError
        The file cannot be opened as audio; the message names the path and the reason.
    """
    p = os.fspath(path)
    try:
        # By descriptor: libsndfile then never sees the name, so a name of any length (its own
        # open refuses more than ~1 KiB) or encoding opens. O_NONBLOCK: a FIFO put where a
        # file was scanned must not block the open; it is refused below.
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise DecodeError(p, e.strerror or str(e)) from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DecodeError(p, "not a regular file")
        os.set_blocking(fd, True)
        handle = sf.SoundFile(fd, closefd=False)  # the descriptor is ours to close
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        os.close(fd)
        raise DecodeError(p, _reason(p, e)) from e
    except BaseException:
        os.close(fd)
        raise
    return AudioSource(p, handle, fd)


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
        analyzer = Analyzer(source.samplerate, source.channels)
        pcm = np.empty((int(block_frames), source.channels), dtype=np.float32)
        try:
            stream(source, analyzer, pcm)
            return analyzer.finish()
        except BadAudioError as e:
            raise BadAudioError(f"{display(source.path)}: {e}") from e
