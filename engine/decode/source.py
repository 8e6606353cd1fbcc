"""What every decoder gives the engine: :class:`AudioSource`, read block by block."""

from __future__ import annotations

import os
from types import TracebackType

import numpy as np
import numpy.typing as npt

__all__ = ["AudioSource"]


class AudioSource:
    """An open audio file, read block by block into caller-allocated buffers.

    Made by :func:`engine.decode.open_audio`; a context manager (closing releases the decoder
    and the file). Subclasses are the decoders (engine/decode/sndfile.py, ffmpeg.py).

    Attributes
    ----------
    path : str
        As given to :func:`~engine.decode.open_audio`.
    samplerate : int, Hz
    channels : int
    frames : int
        Frames the header announces; -1 when it does not say. A header may lie: it is used
        only to widen a time budget, never to size a buffer.
    decoder : str
        ``"libsndfile"`` or ``"ffmpeg"``.
    format : str
        The container the content probe named (engine/decode/probe.py), e.g. ``"mp4"``.
    codec : str
        What the decoder calls the stream's coding, e.g. ``"aac"``, ``"FLAC"``.
    note : str
        What the user should know about how the file was read ("" when nothing): e.g. which
        of several audio streams was used.
    """

    __slots__ = ("_fd",)

    path: str
    samplerate: int
    channels: int
    frames: int
    decoder: str
    format: str
    codec: str
    note: str

    @property
    def duration_s(self) -> float:
        """The header's duration in seconds, or -1.0 when it does not say."""
        if self.frames < 0 or self.samplerate <= 0:
            return -1.0
        return self.frames / self.samplerate

    def read_into(self, out: npt.NDArray[np.float32]) -> int:
        """Decode up to ``len(out)`` frames into ``out``; nothing grows with the track.

        Parameters
        ----------
        out : ndarray, shape (frames, channels), float32
            Written from row 0; C-contiguous, ``channels`` columns. Integer samples are scaled
            by ``2**-(bits-1)`` (16-bit -32768 is -1.0), exactly as libsndfile does, so that
            both decoders give the same floats for the same lossless samples.

        Returns
        -------
        int
            Frames decoded, 0 at the end of the stream.

        Raises
        ------
        DecodeError
            The data cannot be decoded from here on (the message names the path).
        """
        raise NotImplementedError

    def adopt(self, fd: int) -> None:
        """Take ownership of the descriptor the decoder reads: :meth:`close` closes it."""
        self._fd = fd

    def close(self) -> None:
        """Release the decoder, then the file if this source owns it (idempotent)."""
        try:
            self._release()
        finally:
            fd, self._fd = getattr(self, "_fd", -1), -1
            if fd >= 0:
                os.close(fd)

    def _release(self) -> None:
        """Release the decoder (idempotent); the descriptor is :meth:`close`'s."""
        raise NotImplementedError

    def __enter__(self) -> AudioSource:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
