"""Brute-force neighbour search over fingerprints: weighted distances and near pairs.

The query side (``engine-query similar``, ``playlist``, ``duplicates``) works on a matrix of
scaled fingerprints, one row per track. Brute force is exact and, at 25 values a row, fast
enough up to millions of rows (``bench/query_speed.py``): one pass over the matrix per query,
no index to build or keep in step with the store.

The ``_``-prefixed functions are the kernels: cached ``@njit``, caller-allocated outputs,
no validation. :func:`weighted_distances` and :func:`near_pairs` validate and allocate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

from ._config import CACHE, NOGIL
from .errors import ParameterError

__all__ = ["near_pairs", "weighted_distances"]

_F8 = npt.NDArray[np.float64]


@njit(cache=CACHE, nogil=NOGIL)
def _weighted_sq_distances(z: _F8, q: _F8, w: _F8, out: _F8) -> None:  # pragma: no cover
    n, d = z.shape
    for i in range(n):
        acc = 0.0
        for k in range(d):
            diff = z[i, k] - q[k]
            acc += w[k] * diff * diff
        out[i] = acc


@njit(cache=CACHE, nogil=NOGIL)
def _near_pairs(z: _F8, duration: _F8, w: _F8, tolerance: float, limit: float,
                out_i: npt.NDArray[np.int64], out_j: npt.NDArray[np.int64],
                out_d: _F8) -> int:  # pragma: no cover
    # Rows are sorted by duration: the pairs within `tolerance` seconds are a sliding window.
    # The weighted sum stops as soon as it passes `limit` (most pairs stop after a few values).
    n, d = z.shape
    cap = out_i.shape[0]
    count = 0
    for i in range(n):
        j = i + 1
        while j < n and duration[j] - duration[i] <= tolerance:
            acc = 0.0
            k = 0
            while k < d and acc <= limit:
                diff = z[i, k] - z[j, k]
                acc += w[k] * diff * diff
                k += 1
            if acc <= limit:
                if count < cap:
                    out_i[count] = i
                    out_j[count] = j
                    out_d[count] = acc
                count += 1
            j += 1
    return count


def _matrix(z: npt.ArrayLike, what: str) -> _F8:
    arr = np.asarray(z)
    if arr.ndim != 2 or arr.dtype != np.float64 or not arr.flags.c_contiguous:
        raise ParameterError(
            f"{what} must be a C-contiguous float64 matrix (n x d); got shape {arr.shape}, "
            f"dtype {arr.dtype}: pass np.ascontiguousarray(z, dtype=np.float64)"
        )
    return arr


def _weights(w: npt.ArrayLike, d: int) -> _F8:
    arr = np.ascontiguousarray(w, dtype=np.float64)
    if arr.shape != (d,) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ParameterError(
            f"weights must be {d} finite numbers >= 0 (one per column); got {arr!r}"
        )
    return arr


def weighted_distances(z: npt.ArrayLike, q: npt.ArrayLike, w: npt.ArrayLike, *,
                       out: _F8 | None = None) -> _F8:
    """Weighted squared Euclidean distance from one row to every row of a matrix.

    .. math:: D_i = \\sum_k w_k (Z_{ik} - q_k)^2

    Parameters
    ----------
    z : np.ndarray, shape (n, d), dtype float64, C-contiguous
        The rows (scaled fingerprints).
    q : np.ndarray, shape (d,), dtype float64
        The query row.
    w : np.ndarray, shape (d,), dtype float64
        Weights, finite and >= 0.
    out : np.ndarray, shape (n,), dtype float64, optional, keyword-only
        Where to write the distances (reused across queries); allocated when ``None``.

    Returns
    -------
    np.ndarray, shape (n,), dtype float64
        Squared distances (``out`` when given).

    Raises
    ------
    ParameterError
        On a shape, dtype or weight that does not fit.
    """
    zz = _matrix(z, "z")
    n, d = zz.shape
    qq = np.ascontiguousarray(q, dtype=np.float64)
    if qq.shape != (d,):
        raise ParameterError(f"q has shape {qq.shape}; it must be ({d},), one value per column")
    ww = _weights(w, d)
    if out is None:
        out = np.empty(n, np.float64)
    elif out.shape != (n,) or out.dtype != np.float64:
        raise ParameterError(f"out has shape {out.shape}, dtype {out.dtype}; it must be ({n},) "
                             f"float64")
    _weighted_sq_distances(zz, qq, ww, out)
    return out


def near_pairs(z: npt.ArrayLike, duration_s: npt.ArrayLike, w: npt.ArrayLike, *,
               max_sq_distance: float, duration_tolerance_s: float,
               max_pairs: int = 10_000_000,
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], _F8]:
    """Every pair of rows whose durations and weighted distance are both close.

    A pair (i, j), i < j, is reported when ``|duration_i - duration_j| <= duration_tolerance_s``
    and :math:`\\sum_k w_k (Z_{ik} - Z_{jk})^2 \\le` ``max_sq_distance``. Sorting by duration
    makes the search a sliding window: about n x (tracks per tolerance window) comparisons,
    most of which stop after a few values, instead of n^2 / 2.

    Parameters
    ----------
    z : np.ndarray, shape (n, d), dtype float64, C-contiguous
        The rows (scaled fingerprints).
    duration_s : np.ndarray, shape (n,), dtype float64
        Each row's duration in seconds.
    w : np.ndarray, shape (d,), dtype float64
        Weights, finite and >= 0.
    max_sq_distance : float, keyword-only
        Largest weighted squared distance of a reported pair.
    duration_tolerance_s : float, keyword-only
        Largest duration difference of a reported pair, seconds.
    max_pairs : int, keyword-only
        Most pairs returned (24 bytes each): a library of many identical rows (silences of one
        length) would otherwise hold n^2 / 2 of them. Default 10 million.

    Returns
    -------
    i, j : np.ndarray, shape (m,), dtype int64
        Row indices into ``z`` of each pair, ``i != j``.
    sq_distance : np.ndarray, shape (m,), dtype float64
        The pairs' weighted squared distances.

    Raises
    ------
    ParameterError
        On a shape, dtype, weight or limit that does not fit, or more than ``max_pairs``
        pairs.
    """
    zz = _matrix(z, "z")
    n, d = zz.shape
    dur = np.ascontiguousarray(duration_s, dtype=np.float64)
    if dur.shape != (n,) or not np.all(np.isfinite(dur)):
        raise ParameterError(f"duration_s must be {n} finite numbers; got shape {dur.shape}")
    ww = _weights(w, d)
    for name, v in (("max_sq_distance", max_sq_distance),
                    ("duration_tolerance_s", duration_tolerance_s)):
        if not np.isfinite(v) or v < 0:
            raise ParameterError(f"{name}={v!r} must be a finite number >= 0")
    order = np.argsort(dur, kind="stable")
    zs = np.ascontiguousarray(zz[order])
    ds = np.ascontiguousarray(dur[order])
    cap = min(max(1024, n), max_pairs)
    while True:
        out_i = np.empty(cap, np.int64)
        out_j = np.empty(cap, np.int64)
        out_d = np.empty(cap, np.float64)
        count = _near_pairs(zs, ds, ww, float(duration_tolerance_s), float(max_sq_distance),
                            out_i, out_j, out_d)
        if count <= cap:
            break
        if count > max_pairs:
            raise ParameterError(
                f"{count} pairs are within the limits, more than max_pairs={max_pairs}: "
                f"lower the distance or the duration tolerance")
        cap = count
    return order[out_i[:count]], order[out_j[:count]], out_d[:count].copy()
