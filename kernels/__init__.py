"""Numeric core: the streaming 25-value fingerprint analyzer (Numba + FFTW kernels).

>>> import kernels
>>> kernels.warmup()                      # load (or compile) every JIT kernel once per process
>>> a = kernels.Analyzer(44100, 2)        # float32 blocks of shape (frames, 2), any block size
>>> a.feed(block)
>>> a.finish().as_dict()["tempo_bpm"]

Only arrays come in: decoding files is I/O and lives in engine/decode/
(``engine.decode.fingerprint_file``).

The analyzer and what needs FFTW load on first use (PEP 562): a process that only reads
fingerprints (``engine-query``) does not pay for pyfftw's imports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import BadAudioError, FingerprintError, ParameterError
from .fingerprint import FINGERPRINT_NAMES, FINGERPRINT_UNITS, FINGERPRINT_VERSION, Fingerprint

if TYPE_CHECKING:
    from ._warmup import warmup
    from .analyzer import Analyzer
    from .design import stft_size

__all__ = [
    "FINGERPRINT_NAMES",
    "FINGERPRINT_UNITS",
    "FINGERPRINT_VERSION",
    "Analyzer",
    "BadAudioError",
    "Fingerprint",
    "FingerprintError",
    "ParameterError",
    "stft_size",
    "warmup",
]

_LAZY = {
    "Analyzer": ".analyzer",
    "stft_size": ".design",
    "warmup": "._warmup",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kernels' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
