"""Fingerprint a file: decode with soundfile in blocks straight into the streaming analyzer."""

from __future__ import annotations

import os

import numpy as np
import soundfile as sf

from .analyzer import Analyzer
from .errors import BadAudioError, DecodeError, ParameterError
from .fingerprint import Fingerprint

#: Default decode block: 65536 frames (512 KiB of stereo float32), reused for the whole file.
DEFAULT_BLOCK_FRAMES = 65536


def fingerprint_file(path: str | os.PathLike[str], *,
                     block_frames: int = DEFAULT_BLOCK_FRAMES) -> Fingerprint:
    """Decode ``path`` block by block and return its fingerprint.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile decodes (WAV, FLAC, OGG Vorbis/Opus, MP3, AIFF, ...).
    block_frames : int, keyword-only
        Frames per decoded block (memory is ``block_frames x channels x 4`` bytes, whatever
        the track's length).

    Returns
    -------
    Fingerprint

    Raises
    ------
    DecodeError
        The file cannot be opened or decoded; the message names the path and libsndfile's
        reason.
    BadAudioError
        It decodes to no samples, or to NaN / infinite samples (the message names the path).
    """
    if not isinstance(block_frames, int | np.integer) or block_frames < 1:
        raise ParameterError(f"block_frames={block_frames!r} must be a positive integer")
    try:
        f = sf.SoundFile(os.fspath(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        raise DecodeError(path, _reason(e)) from e
    with f:
        analyzer = Analyzer(f.samplerate, f.channels)
        buf = np.empty((block_frames, f.channels), dtype=np.float32)
        try:
            while True:
                n = _read(f, buf)
                if n == 0:
                    break
                analyzer.feed(buf[:n])
            return analyzer.finish()
        except BadAudioError as e:
            raise BadAudioError(f"{os.fspath(path)}: {e}") from e
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DecodeError(path, _reason(e)) from e


def _read(f: sf.SoundFile, buf: np.ndarray) -> int:
    """Decode up to ``len(buf)`` frames into ``buf`` (no allocation); frames read."""
    out = f.read(frames=buf.shape[0], dtype="float32", always_2d=True, out=buf)
    return int(out.shape[0])


def _reason(e: BaseException) -> str:
    msg = str(e).strip()
    return msg or type(e).__name__
