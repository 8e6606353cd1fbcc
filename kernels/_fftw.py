"""FFTW through pyfftw's compiled core alone, without the rest of the pyfftw package.

``import pyfftw`` runs the package's ``__init__``, which imports ``pyfftw.interfaces``; that
imports scipy.fftpack and, where dask is installed, ``dask.array``: 0.26 s of a 1-file
``engine-run`` here (bench/startup.py's importtime of the revision before this module), for
the two names the analyzer uses. The
compiled module ``pyfftw.pyfftw`` needs none of it (it imports numpy only), so it is loaded
from the package's folder under its own name. A later ``import pyfftw`` (librosa in the tests)
finds it in ``sys.modules`` and reuses it: there is one FFTW, one wisdom, one planner lock.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["FFTW", "empty_aligned"]

_NAME = "pyfftw.pyfftw"


def _core() -> ModuleType:
    loaded = sys.modules.get(_NAME)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec("pyfftw")  # locates the package; runs none of it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "pyfftw" + suffix)
            if not os.path.isfile(path):
                continue
            ext = importlib.util.spec_from_file_location(_NAME, path)
            if ext is None or ext.loader is None:
                continue
            module = importlib.util.module_from_spec(ext)
            sys.modules[_NAME] = module
            try:
                ext.loader.exec_module(module)
            except BaseException:
                del sys.modules[_NAME]
                raise
            return module
    import pyfftw  # an unusual layout: the whole package, slower to import

    return pyfftw


_fftw = _core()
FFTW = _fftw.FFTW
empty_aligned = _fftw.empty_aligned
