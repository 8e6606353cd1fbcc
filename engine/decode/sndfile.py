"""The libsndfile decoder (through soundfile): WAV, AIFF, FLAC, Ogg, MP3 and the rest of
libsndfile's formats."""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt
import soundfile as sf

from ..errors import DecodeError
from .source import AudioSource

__all__ = ["SndfileSource"]


def reason(path: str, exc: BaseException) -> str:
    """libsndfile's own words (without soundfile's "Error opening 3: " prefix, which names the
    descriptor; libsndfile never sees the name), corrected where they mislead: for data it does
    not recognise it may say the file "does not exist or is not a regular file" when it is
    one."""
    text = (getattr(exc, "error_string", None) or str(exc)).strip() or type(exc).__name__
    if "does not exist or is not a regular file" in text and os.path.isfile(path):
        # its MPEG reader's words for "no format recognised": the file is there
        return "no audio format libsndfile reads was recognised in the data"
    return text


class SndfileSource(AudioSource):
    """A file libsndfile reads, opened on the caller's descriptor (which stays the caller's
    to close: see engine.decode.open_audio)."""

    __slots__ = ("_file", "channels", "codec", "decoder", "format", "frames", "note", "path",
                 "samplerate")

    def __init__(self, path: str, fd: int, fmt: str) -> None:
        try:
            handle = sf.SoundFile(fd, closefd=False)
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            raise DecodeError(path, reason(path, e)) from e
        self.path = path
        self._file: sf.SoundFile | None = handle
        self.samplerate = int(handle.samplerate)
        self.channels = int(handle.channels)
        self.frames = int(handle.frames) if handle.frames > 0 else -1
        self.decoder = "libsndfile"
        self.format = fmt
        self.codec = str(handle.subtype)
        self.note = ""

    def read_into(self, out: npt.NDArray[np.float32]) -> int:
        if self._file is None:
            raise DecodeError(self.path, "read after close")
        try:
            got = self._file.read(frames=out.shape[0], dtype="float32", always_2d=True, out=out)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DecodeError(self.path, reason(self.path, e)) from e
        return int(got.shape[0])

    def _release(self) -> None:
        if self._file is not None:
            handle, self._file = self._file, None
            handle.close()
