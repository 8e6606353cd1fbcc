"""Frame kernels: framing + window, power spectrum and the per-frame spectral features.

Cached ``@njit`` kernels over caller-allocated arrays; no validation, no I/O. Frames are rows
(``frames x bins``), the layout FFTW writes; per-frame reductions over bins are allowed to
reassociate (``fastmath=REASSOC`` from kernels/_config.py: no NaN/inf assumptions), which lets
them vectorise. The result still depends only on the data, never on the caller's block sizes:
the analyzer always runs these on the same fixed batch shapes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._config import CACHE, ERROR_MODEL, REASSOC

# feature accumulator slots (float64)
A_CENTROID = 0
A_CHROMA = 1
A_ACTIVE = 2  # active frames
N_A = 3


@njit(cache=CACHE, fastmath=REASSOC)
def frame_batch(mono, first_offset, hop, n_frames, window, out, rms):
    """Copy ``n_frames`` windowed frames out of the mono buffer; rows past them are zeroed.

    Parameters
    ----------
    mono : float32[m]
        Mono samples; frame ``j`` starts at ``first_offset + j * hop``.
    first_offset, hop, n_frames : int
    window : float32[n_fft]
    out : float32[batch, n_fft]
        FFT input rows.
    rms : float64[batch]
        Receives each frame's RMS (unwindowed, over all ``n_fft`` samples).
    """
    n_fft = window.shape[0]
    for j in range(out.shape[0]):
        if j < n_frames:
            off = first_offset + j * hop
            # a slice, then indices from 0: read as mono[off + i], numba's wraparound of a
            # possibly negative index made every load a gather, and LLVM's overlap check
            # before that loop sent some placements of ``out`` to a scalar loop whose RMS
            # rounds differently (tests/test_kernel_parts.py)
            frame = mono[off : off + n_fft]
            acc = 0.0
            for i in range(n_fft):
                v = frame[i]
                acc += np.float64(v) * v
                out[j, i] = v * window[i]
            rms[j] = math.sqrt(acc / n_fft)
        else:
            for i in range(n_fft):
                out[j, i] = 0.0
            rms[j] = 0.0


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def power_features(spec, n_frames, rms, active_rms, freqs, power, mean_spec, acc, active):
    """Power spectra, the mean power spectrum and the spectral centroid sum.

    Parameters
    ----------
    spec : complex64[batch, n_bins]
        rFFT of the windowed frames.
    n_frames : int
        Valid rows of ``spec``.
    rms : float64[batch]
        Frame RMS (from :func:`frame_batch`).
    active_rms : float
        Threshold for an active frame (1e-3).
    freqs : float64[n_bins], Hz
    power : float32[batch, n_bins]
        Receives ``|X|^2``; rows past ``n_frames`` are zeroed.
    mean_spec : float64[n_bins]
        ``+=`` each frame's power (the sum over all frames; only ratios of it are used).
    acc : float64[N_A]
        ``+=`` the centroid (Hz) of each active frame, and the count of active frames.
    active : bool[batch]
        Receives whether each frame is active.

    Notes
    -----
    The centroid ``sum f M / sum M`` uses the magnitude ``M = |X|``, summed in float32 like
    librosa's own float32 spectra (``librosa.feature.spectral_centroid``).
    """
    n_bins = spec.shape[1]
    for j in range(power.shape[0]):
        if j >= n_frames:
            for k in range(n_bins):
                power[j, k] = 0.0
            active[j] = False
            continue
        row = power[j]
        for k in range(n_bins):
            z = spec[j, k]
            p = z.real * z.real + z.imag * z.imag
            row[k] = p
            mean_spec[k] += p
        is_active = rms[j] >= active_rms
        active[j] = is_active
        if not is_active:
            continue
        acc[A_ACTIVE] += 1.0
        tot = np.float32(0.0)
        num = np.float32(0.0)
        for k in range(n_bins):
            m = math.sqrt(row[k])
            tot += m
            num += np.float32(freqs[k]) * m
        if tot > 0.0:
            acc[A_CENTROID] += np.float64(num) / np.float64(tot)


@njit(cache=CACHE, fastmath=REASSOC, error_model=ERROR_MODEL)
def chroma_energy(power, n_frames, active, fb, acc):
    """Add ``sum(c^2)`` of the sum-normalised chroma of each active frame to ``acc[A_CHROMA]``.

    Parameters
    ----------
    power : float32[batch, n_bins]
    n_frames : int
    active : bool[batch]
    fb : float32[12, n_bins]
        Chroma filter bank (``design.chroma_filterbank``); ``c = fb @ power[j]``.
    acc : float64[N_A]

    Notes
    -----
    A frame whose chroma sums to 0 contributes 1/12 (a flat distribution). The products are
    written out here rather than left to BLAS, whose thread pool would compete with the
    engine's worker processes.
    """
    n_bins = power.shape[1]
    c = np.empty(12, dtype=np.float64)
    for j in range(n_frames):
        if not active[j]:
            continue
        row = power[j]
        s = 0.0
        for q in range(12):
            w = fb[q]
            acc32 = np.float32(0.0)
            for k in range(n_bins):
                acc32 += w[k] * row[k]
            c[q] = acc32
            s += float(acc32)
        if s > 0.0:
            e = 0.0
            for q in range(12):
                v = c[q] / s
                e += v * v
            acc[A_CHROMA] += e
        else:
            acc[A_CHROMA] += 1.0 / 12.0

