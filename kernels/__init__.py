"""Numeric core: the streaming 25-value fingerprint analyzer (Numba + FFTW kernels).

>>> import kernels
>>> kernels.warmup()                      # load (or compile) every JIT kernel once per process
>>> fp = kernels.fingerprint_file("track.flac")
>>> fp.as_dict()["tempo_bpm"]

The analyzer and what needs FFTW load on first use (PEP 562): a process that only reads
fingerprints (``engine-query``) does not pay for pyfftw's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import BadAudioError, DecodeError, FingerprintError, ParameterError
from .fingerprint import FINGERPRINT_NAMES, FINGERPRINT_UNITS, FINGERPRINT_VERSION, Fingerprint

if TYPE_CHECKING:
    from ._warmup import warmup
    from .analyzer import Analyzer
    from .design import stft_size
    from .io import DEFAULT_BLOCK_FRAMES, fingerprint_file

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

_LAZY = {
    "Analyzer": ".analyzer",
    "stft_size": ".design",
    "DEFAULT_BLOCK_FRAMES": ".io",
    "fingerprint_file": ".io",
    "warmup": "._warmup",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
