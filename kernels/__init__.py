"""Numeric core: the streaming 25-value fingerprint analyzer (Numba + FFTW kernels).

>>> import kernels
>>> kernels.warmup()                      # load (or compile) every JIT kernel once per process
>>> fp = kernels.fingerprint_file("track.flac")
>>> fp.as_dict()["tempo_bpm"]
"""

from .analyzer import Analyzer
from .design import stft_size
from .errors import BadAudioError, DecodeError, FingerprintError, ParameterError
from .fingerprint import FINGERPRINT_NAMES, FINGERPRINT_UNITS, FINGERPRINT_VERSION, Fingerprint
from .io import DEFAULT_BLOCK_FRAMES, fingerprint_file
from .warmup import warmup

__all__ = [
    "DEFAULT_BLOCK_FRAMES",
    "FINGERPRINT_NAMES",
    "FINGERPRINT_UNITS",
    "FINGERPRINT_VERSION",
    "Analyzer",
    "BadAudioError",
    "DecodeError",
    "Fingerprint",
    "FingerprintError",
    "ParameterError",
    "fingerprint_file",
    "stft_size",
    "warmup",
]
