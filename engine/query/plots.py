"""Figures of the library (``engine-query plot`` and ``map``); needs the optional extra ``plot``.

* :func:`plot_track` draws one fingerprint against the library: 25 small histograms, one per
  value, each with a line at the track's value and its percentile in the library.
* :func:`plot_map` draws the whole library on its first two principal components
  (:func:`pca_2d` of the weighted scaled values, the space the similarity distance works in),
  coloured by one raw value; a large library becomes a hexbin of the per-cell mean.

Both only draw aggregates or one marker per track, so they handle hundreds of thousands of
tracks. matplotlib is imported lazily with the non-interactive ``Agg`` backend (no display is
needed); the output format follows the file extension (.png, .svg, .pdf), and the file is
written as :mod:`engine.query.output` says (never clobbering a device node, a link or a file
that a failed command would leave half written).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from kernels import FINGERPRINT_NAMES, FINGERPRINT_UNITS

from ..errors import QueryError
from .output import atomic_output, check_output

if TYPE_CHECKING:
    from .similarity import Library

__all__ = ["pca_2d", "plot_map", "plot_track", "require_matplotlib"]

_N: Final = len(FINGERPRINT_NAMES)
_F8 = npt.NDArray[np.float64]

#: Resolution of every saved figure, dots per inch.
_DPI: Final = 120
#: Figure sizes in inches (width, height): pixel size is size x dpi.
_TRACK_SIZE: Final = (15.0, 12.0)
_MAP_SIZE: Final = (9.0, 7.5)
#: Histogram bins per panel of :func:`plot_track`.
_BINS: Final = 40
#: Longest figure title of :func:`plot_track`, in characters.
_TITLE_MAX: Final = 90
#: Above this many tracks :func:`plot_map` draws a hexbin instead of one marker per track.
_HEXBIN_ABOVE: Final = 200_000
_HEXBIN_GRIDSIZE: Final = 200
_CMAP: Final = "viridis"


def require_matplotlib() -> None:
    """Check that the optional extra ``plot`` (matplotlib) is installed.

    Raises
    ------
    QueryError
        When matplotlib cannot be imported; the message names the fix.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise QueryError(
            f"plotting needs matplotlib, which is not importable ({exc}); install the optional "
            "extra with `pip install -e .[plot]` (or `make install`, which includes it)"
        ) from exc


def _pyplot(output: str) -> tuple[Any, str]:
    """matplotlib.pyplot on the ``Agg`` backend and ``output``'s image format, once that is
    known to be one it writes and ``output`` one that may be written
    (:func:`engine.query.output.check_output`); raises :class:`QueryError` otherwise, or when
    matplotlib is missing."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backend_bases import FigureCanvasBase

    ext = os.path.splitext(output)[1].lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext not in formats:
        raise QueryError(f"-o {output!r}: the image format comes from the extension, and "
                         f"{ext or 'none'!r} is not one matplotlib writes; use one of "
                         f"{', '.join(sorted(formats))}")
    check_output(output)
    return plt, ext


def _save(fig: Any, output: str, fmt: str) -> None:
    """Write ``fig`` to ``output`` without clobbering anything (:func:`atomic_output`).

    Raises :class:`QueryError` when matplotlib cannot write the format here (``pgf`` needs a
    TeX installation, for one); the output is then left as it was.
    """
    with atomic_output(output, "wb") as f:
        try:
            fig.savefig(f, dpi=_DPI, format=fmt)
        except (RuntimeError, ValueError) as exc:
            raise QueryError(f"-o {output!r}: matplotlib cannot write {fmt!r} here ({exc}); "
                             f"use another format, e.g. .png, .svg or .pdf") from exc


def _label(k: int) -> str:
    """``"name (unit)"`` of value ``k``."""
    return f"{FINGERPRINT_NAMES[k]} ({FINGERPRINT_UNITS[k]})"


def _short_title(title: str, limit: int = _TITLE_MAX) -> str:
    """``title`` cut to at most ``limit`` characters with an ellipsis in the middle."""
    if len(title) <= limit:
        return title
    keep = limit - 1
    head = (keep + 1) // 2
    tail = keep - head
    return title[:head] + "…" + title[len(title) - tail:]


def _subtitle(n: int, row: int | None) -> str:
    """The second title line of :func:`plot_track`."""
    where = "(in library)" if row is not None else "(not in library)"
    return f"library: {n:,} tracks, this track {where}"


def _percentile(column: _F8, value: float) -> int:
    """Share of ``column`` (finite values) that is <= ``value``, in percent, rounded."""
    return round(100.0 * np.count_nonzero(column <= value) / column.size)


def _histogram(column: _F8) -> tuple[_F8, _F8]:
    """Counts and bin edges of the finite values: ~40 bins, one bar for a constant column.

    Parameters
    ----------
    column : np.ndarray, shape (m,), float64
        Finite values, m >= 1.

    Returns
    -------
    counts : np.ndarray, shape (b,), float64
    edges : np.ndarray, shape (b + 1,), float64
    """
    lo, hi = float(column.min()), float(column.max())
    if lo == hi:
        half = max(abs(lo) * 0.05, 1e-3)
        return np.array([float(column.size)]), np.array([lo - half, hi + half])
    counts, edges = np.histogram(column, bins=_BINS, range=(lo, hi))
    return counts.astype(np.float64), edges.astype(np.float64)


def plot_track(lib: Library, values: np.ndarray, *, title: str, output: str,
               row: int | None = None) -> None:
    """One fingerprint against the library's distribution of each value.

    A 5 x 5 grid of panels in ``FINGERPRINT_NAMES`` order. Each shows the histogram of the
    library's raw values for that column, a vertical line at the track's value and the text
    ``x = <value>, p<percentile>`` (the share of the library <= the value, in percent).

    Parameters
    ----------
    lib : Library
        The library to compare with (any size, also 0 or 1 tracks).
    values : np.ndarray, shape (25,), float64
        The track's raw fingerprint, in ``FINGERPRINT_NAMES`` order (units of
        ``FINGERPRINT_UNITS``).
    title : str, keyword-only
        Figure title, e.g. the track's path; cut to ~90 characters with an ellipsis in the middle.
    output : str, keyword-only
        File to write; the format follows the extension (.png, .svg, .pdf). Saved at 120 dpi,
        as :func:`engine.query.output.atomic_output` writes (a regular file is replaced only
        when the figure is complete; a link is written through; a device or FIFO streamed).
    row : int or None, keyword-only
        The track's row in ``lib`` when it is in the library, ``None`` for an outside file;
        only the subtitle uses it.

    Raises
    ------
    QueryError
        When matplotlib is not installed, or ``output`` cannot be written (a folder, a missing
        folder, a full disk: :mod:`engine.query.output`).
    ValueError
        For ``values`` that is not 25 numbers or a ``row`` outside the library.
    """
    vals = np.asarray(values, dtype=np.float64)
    if vals.shape != (_N,):
        raise ValueError(f"values must have shape ({_N},), got {vals.shape}")
    n = len(lib)
    if row is not None and not 0 <= row < n:
        raise ValueError(f"row {row} is outside the library of {n} tracks")
    plt, fmt = _pyplot(output)

    fig, axes = plt.subplots(5, 5, figsize=_TRACK_SIZE, layout="constrained")
    try:
        for k, ax in enumerate(axes.flat):
            col = lib.values[:, k]
            finite = col[np.isfinite(col)]
            x = float(vals[k])
            if finite.size:
                counts, edges = _histogram(finite)
                ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.6)
                ax.set_ylim(0.0, 1.3 * float(counts.max()))  # headroom for the text
                if counts.size == 1:  # constant column: no crowded ticks around one bar
                    ticks = {float(finite[0])} | ({x} if np.isfinite(x) else set())
                    ax.set_xticks(sorted(ticks))
            else:
                ax.text(0.5, 0.5, "no library values", transform=ax.transAxes,
                        ha="center", va="center", fontsize=7, color="grey")
            text = f"x = {x:.3g}"
            if np.isfinite(x):
                ax.axvline(x, color="tab:red", linewidth=1.5)
                if finite.size:
                    text += f", p{_percentile(finite, x)}"
            ax.text(0.98, 0.96, text, transform=ax.transAxes, ha="right", va="top", fontsize=7,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8,
                          "linewidth": 0})
            ax.set_title(_label(k), fontsize=8)
            ax.tick_params(labelsize=6)
            ax.locator_params(axis="x", nbins=5)
            ax.set_yticks([])
        fig.suptitle(f"{_short_title(title)}\n{_subtitle(n, row)}", fontsize=11)
        _save(fig, output, fmt)
    finally:
        plt.close(fig)


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projection onto the first two principal components.

    The rows are centred on the column means; the components are the eigenvectors of the
    covariance matrix (``np.linalg.eigh``) with the two largest eigenvalues, each signed so
    that its largest-magnitude loading is positive (deterministic output).

    Parameters
    ----------
    x : np.ndarray, shape (n, d), float64
        Data, n >= 2 rows, d >= 2 columns.

    Returns
    -------
    coords : np.ndarray, shape (n, 2), float64
        The centred rows projected on PC1 and PC2 (units of ``x``).
    explained : np.ndarray, shape (2,), float64
        Share of the total variance each component explains, in 0..1 (0 when the data has no
        variance).

    Raises
    ------
    ValueError
        For a shape other than (n >= 2, d >= 2) or non-finite values.
    """
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 2 or a.shape[1] < 2:
        raise ValueError(f"pca_2d needs shape (n >= 2, d >= 2), got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("pca_2d needs finite values")
    centred = a - a.mean(axis=0)
    cov = centred.T @ centred / (a.shape[0] - 1)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval, kind="stable")[::-1][:2]
    comps = eigvec[:, order]
    top = np.argmax(np.abs(comps), axis=0)
    comps = comps * np.where(comps[top, [0, 1]] < 0, -1.0, 1.0)
    total = float(np.trace(cov))
    explained = (np.clip(eigval[order], 0.0, None) / total) if total > 0 else np.zeros(2)
    return centred @ comps, np.minimum(explained, 1.0)


def plot_map(lib: Library, *, color: str, output: str, weights: np.ndarray,
             highlight: Sequence[int] = ()) -> None:
    """A 2-D map of the library: its first two principal components, coloured by one value.

    The projected data is ``lib.z * sqrt(weights)``, the space in which the similarity distance
    is a (scaled) Euclidean distance, so nearby points are similar tracks. Up to 200,000 tracks
    are drawn one small marker each; a larger library as a hexbin of the mean value per cell.

    Parameters
    ----------
    lib : Library
        At least 2 tracks.
    color : str, keyword-only
        A name in ``FINGERPRINT_NAMES``; points are coloured by its raw value.
    output : str, keyword-only
        File to write; the format follows the extension (.png, .svg, .pdf). Saved at 120 dpi,
        as :func:`engine.query.output.atomic_output` writes (a regular file is replaced only
        when the figure is complete; a link is written through; a device or FIFO streamed).
    weights : np.ndarray, shape (25,), float64, keyword-only
        Weight of each value (>= 0), e.g. from ``similarity.parse_weights``.
    highlight : sequence of int, keyword-only
        Rows of ``lib`` drawn on top as larger red-edged markers.

    Raises
    ------
    QueryError
        For an unknown ``color``, a library with fewer than 2 tracks, matplotlib missing, or an
        ``output`` that cannot be written (:mod:`engine.query.output`).
    ValueError
        For ``weights`` that are not 25 finite numbers >= 0, or a highlight row outside the
        library.
    """
    if color not in FINGERPRINT_NAMES:
        raise QueryError(
            f"--color {color!r}: unknown value name; expected one of {', '.join(FINGERPRINT_NAMES)}"
        )
    n = len(lib)
    if n < 2:
        raise QueryError(f"map needs at least 2 tracks, the library has {n}; scan more files")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (_N,) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be {_N} finite numbers >= 0, got shape {w.shape}")
    rows = np.asarray(highlight, dtype=np.int64).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ValueError(f"highlight rows must be in 0..{n - 1}, got {rows.tolist()}")
    plt, fmt = _pyplot(output)

    k = FINGERPRINT_NAMES.index(color)
    coords, explained = pca_2d(lib.z * np.sqrt(w))
    c = lib.values[:, k]

    fig, ax = plt.subplots(figsize=_MAP_SIZE, layout="constrained")
    try:
        mappable: Any
        if n > _HEXBIN_ABOVE:
            ok = np.isfinite(c)
            mappable = ax.hexbin(coords[ok, 0], coords[ok, 1], C=c[ok],
                                 reduce_C_function=np.mean, gridsize=_HEXBIN_GRIDSIZE,
                                 cmap=_CMAP, linewidths=0, rasterized=True)
        else:
            size = float(np.clip(200.0 / np.sqrt(n), 0.3, 16.0))
            alpha = 0.8 if n <= 1000 else max(0.25, 0.8 * (1000.0 / n) ** 0.25)
            mappable = ax.scatter(coords[:, 0], coords[:, 1], c=c, s=size, alpha=alpha,
                                  cmap=_CMAP, linewidths=0, rasterized=True)
        if rows.size:
            ax.scatter(coords[rows, 0], coords[rows, 1], c=c[rows], cmap=mappable.cmap,
                       norm=mappable.norm, s=70, edgecolors="red", linewidths=1.5, zorder=3)
        fig.colorbar(mappable, ax=ax, label=_label(k))
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_xlabel(f"PC1 ({100.0 * explained[0]:.1f} % of variance)")
        ax.set_ylabel(f"PC2 ({100.0 * explained[1]:.1f} % of variance)")
        ax.set_title(f"{n:,} tracks, coloured by {color}")
        _save(fig, output, fmt)
    finally:
        plt.close(fig)
