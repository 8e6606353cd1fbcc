"""Similar tracks, playlists and duplicates from the stored fingerprints.

How two fingerprints are compared (docs/QUERY.md has the reasoning and the defaults)
-----------------------------------------------------------------------------------
1. **Transform.** Values that act on a ratio scale are taken as logarithms: ``tempo_bpm`` and
   ``spectral_centroid`` as log2 (so 60 -> 120 BPM is as far as 120 -> 240, and an octave of
   centroid is one unit), ``transient_density`` as log2(1 + x). The dB values already are.
2. **Robust scaling fitted on the library.** Each transformed value is centred on the library's
   median and divided by its interquartile range (IQR), floored at :data:`MIN_SCALE` (a
   difference below the floor is inaudible or within the value's measurement tolerance; the
   floor also keeps a value that is constant in this library, e.g. ``phase_correlation`` of
   an all-mono library, from turning noise into distance). Scaled values are clipped to
   +-:data:`Z_CLIP` so that one wild value cannot outweigh the other 24. The tempo's scaled
   value is then multiplied by its confidence, ``min(1, pulse_clarity /
   TEMPO_FULL_CLARITY)``: music without a pulse has a tempo nobody could tap, which a lossy
   encode can move to another metrical level, and it should not set a distance.
3. **Weighted distance.** ``D(a, b) = sqrt(sum_k w_k (z_ak - z_bk)^2 / sum_k w_k)``: the
   weighted root-mean-square difference, in IQRs. :data:`DEFAULT_WEIGHTS` down-weights values
   that describe one thing together (six band levels, four MFCCs, the key's three values) and
   loudness (``lufs`` is mastering gain, not music); ``--weight NAME=W`` overrides,
   with W from 0 to :data:`MAX_WEIGHT`. D depends only on the ratios of the weights; it is
   computed with the weights divided by the largest (:func:`unit_weights`; the defaults are
   unchanged, their largest is 1), so that for any weights :func:`parse_weights` accepts, the
   sums stay far from overflow and their inverse finite: D is finite for every pair of finite
   fingerprints.

The scaled matrix is derived from a :class:`Library`, the store's current fingerprints plus the
fitted scaling, cached next to the store (``<db>/query-cache/``) under the store's
``generation``: a query after any change to the library refits, an unchanged library loads in
a fraction of a second. Search is exact brute force (``kernels.neighbours``).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from kernels import FINGERPRINT_NAMES, FINGERPRINT_VERSION

from .. import store as st
from ..errors import QueryError

# kernels.neighbours (Numba) is imported where a distance is computed: commands that only read
# records (show, export, failures) do not pay numba's import (bench/startup.py, query_show).

__all__ = [
    "DEFAULT_WEIGHTS",
    "DUPLICATE_WEIGHTS",
    "MAX_WEIGHT",
    "MIN_SCALE",
    "TEMPO_FULL_CLARITY",
    "Z_CLIP",
    "DuplicateReport",
    "Library",
    "Neighbour",
    "Scaling",
    "duplicates",
    "nearest",
    "parse_weights",
    "playlist",
    "transform",
    "unit_weights",
]

log = logging.getLogger(__name__)

_N: Final = len(FINGERPRINT_NAMES)
_F8 = npt.NDArray[np.float64]

#: Default weight of each value in the distance (see the module docstring).
DEFAULT_WEIGHTS: Final[Mapping[str, float]] = {
    "sub_bass_db": 0.5, "bass_db": 0.5, "low_mid_db": 0.5, "upper_mid_db": 0.5,
    "presence_db": 0.5, "air_db": 0.5,
    "lufs": 0.25, "crest_db": 1.0, "loudness_range": 0.5, "dynamic_range_variation": 0.5,
    "peak_consistency": 0.5,
    "tempo_bpm": 1.0, "pulse_clarity": 1.0, "transient_density": 1.0,
    "spectral_centroid": 1.0, "harmonic_ratio": 1.0, "chroma_energy": 0.5,
    "key_fifths_x": 0.5, "key_fifths_y": 0.5, "key_mode": 0.5,
    "mfcc_1": 0.75, "mfcc_2": 0.75, "mfcc_3": 0.75, "mfcc_4": 0.75,
    "phase_correlation": 0.5,
}

#: Weights of ``duplicates``: the defaults less the values a lossy encode moves. A codec's
#: peak overshoot (and clipping when it is written back to 16 bits) changes crest_db, the
#: per-second peaks and their spread by 1-2 dB (bench/query_calibration.py measures it), so
#: they do not decide whether two files are one song.
DUPLICATE_WEIGHTS: Final[Mapping[str, float]] = {
    **DEFAULT_WEIGHTS,
    "crest_db": 0.0, "peak_consistency": 0.0, "dynamic_range_variation": 0.0,
}

#: Largest weight ``--weight NAME=W`` accepts. Only the ratios of the weights matter, and at
#: 1000 one value already outweighs the other 24 at their defaults (16 in all) 60 times over:
#: a larger W changes nothing a user could want that setting the others to 0 would not do
#: better, and the bound keeps every sum of weights x squared differences (at most 25 x 1000 x
#: (2 x Z_CLIP)^2 = 6.4e6) far from overflow (docs/QUERY.md).
MAX_WEIGHT: Final = 1000.0

#: Smallest scale of each (transformed) value: differences under it count as noise. About the
#: spec's tolerance for the value, or its invariance bound for a lossy encode.
MIN_SCALE: Final[Mapping[str, float]] = {
    "sub_bass_db": 0.5, "bass_db": 0.5, "low_mid_db": 0.5, "upper_mid_db": 0.5,
    "presence_db": 0.5, "air_db": 0.5,
    "lufs": 0.5, "crest_db": 0.2, "loudness_range": 1.0, "dynamic_range_variation": 0.1,
    "peak_consistency": 0.01,
    "tempo_bpm": 0.03, "pulse_clarity": 0.02, "transient_density": 0.05,
    "spectral_centroid": 0.03, "harmonic_ratio": 0.03, "chroma_energy": 0.02,
    "key_fifths_x": 0.05, "key_fifths_y": 0.05, "key_mode": 0.02,
    "mfcc_1": 0.5, "mfcc_2": 0.5, "mfcc_3": 0.5, "mfcc_4": 0.5,
    "phase_correlation": 0.01,
}

#: Scaled values are clipped to +-Z_CLIP IQRs.
Z_CLIP: Final = 8.0

#: A tempo counts fully from this pulse clarity up; below it, its scaled value shrinks in
#: proportion (step 2b of the module docstring). About the corpus's 25th percentile: music
#: without a pulse to tap (pulse clarity 0.04-0.06) reads a tempo that a lossy encode can move
#: to another metrical level (59 -> 171 BPM), and that tempo says nothing.
TEMPO_FULL_CLARITY: Final = 0.3
_TEMPO: Final = FINGERPRINT_NAMES.index("tempo_bpm")
_PULSE: Final = FINGERPRINT_NAMES.index("pulse_clarity")

_LOG2: Final = frozenset({"tempo_bpm", "spectral_centroid"})
_LOG2_1P: Final = frozenset({"transient_density"})
_LOG2_COLS: Final = np.array([n in _LOG2 for n in FINGERPRINT_NAMES])
_LOG2_FLOOR: Final = np.array([1.0 for n in FINGERPRINT_NAMES if n in _LOG2])
_LOG2_1P_COLS: Final = np.array([n in _LOG2_1P for n in FINGERPRINT_NAMES])
_MIN_SCALE: Final = np.array([MIN_SCALE[n] for n in FINGERPRINT_NAMES])
_CACHE_DIR: Final = "query-cache"
#: What a cached library depends on besides the store: the fingerprint definition and the
#: scaling's constants (a change to either must not be served from an old cache).
_SCALING_DIGEST: Final = hashlib.blake2b(repr((
    FINGERPRINT_VERSION, sorted(MIN_SCALE.items()), sorted(_LOG2), sorted(_LOG2_1P),
    _LOG2_FLOOR.tolist(), Z_CLIP, TEMPO_FULL_CLARITY, 1,  # the last: the cache file's layout
)).encode(), digest_size=4).hexdigest()


def _real_dir(path: str) -> bool:
    """A folder itself, not a symbolic link to one (the cache lives inside --db, where a link
    could send writes and deletions elsewhere)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _cache_name(store_id: str, generation: int) -> str:
    return f"library-{store_id}-g{generation}-{_SCALING_DIGEST}.npz"


def transform(values: npt.ArrayLike) -> _F8:
    """Step 1 of the comparison: logarithms of the ratio-scale values.

    Parameters
    ----------
    values : array_like, shape (n, 25) or (25,), float64
        Fingerprints in ``FINGERPRINT_NAMES`` order.

    Returns
    -------
    np.ndarray, same shape, float64
        ``log2(max(x, 1))`` for tempo and centroid (Hz and BPM are >= 1 for any real track;
        the clamp keeps silence finite), ``log2(1 + x)`` for transient density, the value
        itself for the others.
    """
    x = np.array(values, dtype=np.float64, copy=True)
    x[..., _LOG2_COLS] = np.log2(np.maximum(x[..., _LOG2_COLS], _LOG2_FLOOR))
    x[..., _LOG2_1P_COLS] = np.log2(1.0 + np.maximum(x[..., _LOG2_1P_COLS], 0.0))
    return x


@dataclass(frozen=True, eq=False)
class Scaling:
    """Step 2 of the comparison: the robust scaling fitted on a library.

    Attributes
    ----------
    center : np.ndarray, shape (25,), float64
        Median of each transformed value.
    scale : np.ndarray, shape (25,), float64
        ``max(IQR, MIN_SCALE)`` of each transformed value (> 0).
    """

    center: _F8
    scale: _F8

    @classmethod
    def fit(cls, values: npt.ArrayLike) -> Scaling:
        """Fit on raw fingerprints, shape (n, 25); an empty library gives center 0, floors."""
        t = transform(np.asarray(values, dtype=np.float64).reshape(-1, _N))
        if t.shape[0] == 0:
            return cls(np.zeros(_N), _MIN_SCALE.copy())
        q25, q50, q75 = np.percentile(t, [25.0, 50.0, 75.0], axis=0)
        return cls(q50, np.maximum(q75 - q25, _MIN_SCALE))

    def apply(self, values: npt.ArrayLike) -> _F8:
        """Scaled values ``clip((transform(x) - center) / scale, -Z_CLIP, Z_CLIP)``, C order,
        the tempo's times its confidence ``min(1, pulse_clarity / TEMPO_FULL_CLARITY)``."""
        x = np.asarray(values, dtype=np.float64)
        z = np.clip((transform(x) - self.center) / self.scale, -Z_CLIP, Z_CLIP)
        z[..., _TEMPO] *= np.clip(x[..., _PULSE] / TEMPO_FULL_CLARITY, 0.0, 1.0)
        return np.ascontiguousarray(z)


def parse_weights(overrides: Sequence[str] = (), *,
                  base: Mapping[str, float] = DEFAULT_WEIGHTS) -> _F8:
    """The weight vector: ``base`` with ``NAME=W`` overrides applied.

    Parameters
    ----------
    overrides : sequence of str
        Items like ``"tempo_bpm=2"`` or ``"lufs=0"``; later ones win.
    base : mapping of str to float, keyword-only
        The weights before overrides: :data:`DEFAULT_WEIGHTS` (default) or
        :data:`DUPLICATE_WEIGHTS`.

    Returns
    -------
    np.ndarray, shape (25,), float64
        Weights in ``FINGERPRINT_NAMES`` order.

    Raises
    ------
    QueryError
        For an unknown name, a W that is not a number from 0 to :data:`MAX_WEIGHT`, or all
        weights 0.
    """
    weights = dict(base)
    for item in overrides:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in weights:
            raise QueryError(f"--weight {item!r}: expected NAME=W with NAME one of "
                             f"{', '.join(FINGERPRINT_NAMES)}")
        try:
            w = float(text)
        except ValueError:
            w = float("nan")
        if not (math.isfinite(w) and 0.0 <= w <= MAX_WEIGHT):
            raise QueryError(f"--weight {item!r}: W = {text.strip()!r} must be a number from 0 "
                             f"to {MAX_WEIGHT:g} (0 ignores the value; only the ratios between "
                             f"weights matter, docs/QUERY.md)")
        weights[name] = w
    vec = np.array([weights[n] for n in FINGERPRINT_NAMES])
    if not vec.max() > 0:
        raise QueryError("--weight: every weight is 0; at least one value must count")
    return vec


def unit_weights(weights: npt.ArrayLike) -> _F8:
    """Weights divided by the largest: the same D (only ratios count), with every sum finite.

    Parameters
    ----------
    weights : array_like, shape (25,)
        Finite, >= 0, at least one > 0 (what :func:`parse_weights` returns).

    Returns
    -------
    np.ndarray, shape (25,), float64, C order
        In [0, 1], the largest exactly 1: their sum is in [1, 25], so its inverse is finite
        (a lone weight of 1e-320 would make it infinite), and ``sum w (z_a - z_b)^2`` is at
        most 25 x (2 x Z_CLIP)^2.

    Raises
    ------
    ValueError
        For weights that are not finite and >= 0, or all 0.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"weights must be finite numbers >= 0, got {w!r}")
    top = float(w.max())
    if not top > 0:
        raise ValueError("weights are all 0: at least one value must count")
    return np.ascontiguousarray(w / top)


@dataclass(frozen=True, eq=False)
class Library:
    """The store's current fingerprints (this code's ``FINGERPRINT_VERSION``), scaled.

    Attributes
    ----------
    generation : int
        The store generation it was read at.
    track_ids : np.ndarray, shape (n,), int64
        Sorted ascending.
    values : np.ndarray, shape (n, 25), float64
        Raw values.
    duration_s : np.ndarray, shape (n,), float64
    content_keys : np.ndarray, shape (n, 16), uint8
    scaling : Scaling
        Fitted on ``values``.
    z : np.ndarray, shape (n, 25), float64
        ``scaling.apply(values)``.
    """

    generation: int
    track_ids: npt.NDArray[np.int64]
    values: _F8
    duration_s: _F8
    content_keys: npt.NDArray[np.uint8]
    scaling: Scaling
    z: _F8

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def row(self, track_id: int) -> int | None:
        """The row of a track id, or ``None`` when it has no current fingerprint."""
        i = int(np.searchsorted(self.track_ids, track_id))
        return i if i < len(self) and int(self.track_ids[i]) == track_id else None

    @classmethod
    def from_arrays(cls, generation: int, track_ids: npt.ArrayLike, values: npt.ArrayLike,
                    duration_s: npt.ArrayLike, content_keys: npt.ArrayLike,
                    scaling: Scaling | None = None) -> Library:
        """Assemble (and fit, when ``scaling`` is None) from arrays in track id order.

        Rows with a non-finite value are left out with a warning naming their ids (the
        analyzer never writes one, but the store accepts any float, and one NaN would turn
        the whole scaling into NaN). Raises ``ValueError`` when the arrays disagree in length.
        """
        vals = np.ascontiguousarray(values, dtype=np.float64).reshape(-1, _N)
        ids = np.asarray(track_ids, np.int64)
        dur = np.asarray(duration_s, np.float64)
        keys = np.asarray(content_keys, np.uint8).reshape(-1, 16)
        n = vals.shape[0]
        if ids.shape != (n,) or dur.shape != (n,) or keys.shape[0] != n:
            raise ValueError(f"library arrays disagree: {n} fingerprints, {ids.shape} ids, "
                             f"{dur.shape} durations, {keys.shape} content keys")
        finite = np.isfinite(vals).all(axis=1) & np.isfinite(dur)
        if not finite.all():
            bad = ids[~finite]
            log.warning("%d fingerprint(s) with non-finite values left out of the library: "
                        "track ids %s", bad.size, ", ".join(map(str, bad[:10].tolist())))
            vals, ids, dur, keys = (np.ascontiguousarray(vals[finite]), ids[finite],
                                    dur[finite], keys[finite])
        fitted = Scaling.fit(vals) if scaling is None else scaling
        return cls(int(generation), ids, vals, dur, keys, fitted, fitted.apply(vals))

    @classmethod
    def load(cls, store: st.Store, *, cache: bool = True) -> Library:
        """The library of a store: from the cache when the store is unchanged, else rebuilt.

        Parameters
        ----------
        store : Store
            Open for reading (or writing).
        cache : bool, keyword-only
            Use and refresh ``<db>/query-cache/`` (default). A store directory the caller may
            not write to just means no cache.

        Returns
        -------
        Library
        """
        store_id, generation = store.identity()
        cache = cache and bool(store_id)
        folder = os.path.join(store.path, _CACHE_DIR)
        name = os.path.join(folder, _cache_name(store_id, generation))
        if cache and _real_dir(folder) and os.path.isfile(name):
            try:
                # O_NOFOLLOW: a link planted in the store's folder is never read through
                with (os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC),
                                "rb") as raw, np.load(raw, allow_pickle=False) as f):
                    return cls.from_arrays(generation, f["track_ids"], f["values"],
                                           f["duration_s"], f["content_keys"],
                                           Scaling(f["center"], f["scale"]))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("query cache %s unreadable (%s): rebuilding it", name, exc)
        table = store.fingerprint_table()
        keep = table.versions == FINGERPRINT_VERSION
        lib = cls.from_arrays(table.generation, table.track_ids[keep], table.values[keep],
                              table.duration_s[keep], table.content_keys[keep])
        if cache:
            lib._save(folder, _cache_name(store_id, table.generation))
        return lib

    def _save(self, folder: str, base: str) -> None:
        name = os.path.join(folder, base)
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            if not _real_dir(folder):  # a planted link: write nothing through it
                log.info("query cache not written: %s is not a plain folder", folder)
                return
            with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as f:
                tmp = f.name
                np.savez(f, track_ids=self.track_ids, values=self.values,
                         duration_s=self.duration_s, content_keys=self.content_keys,
                         center=self.scaling.center, scale=self.scaling.scale)
            os.replace(tmp, name)
            tmp = None
            for old in glob.glob(os.path.join(folder, "library-*.npz")):
                if old != name:
                    with contextlib.suppress(OSError):
                        os.unlink(old)
        except OSError as exc:
            log.info("query cache not written to %s: %s", folder, exc)
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def distances(self, q: npt.ArrayLike, weights: _F8, *,
                  out: _F8 | None = None) -> _F8:
        """``D`` (module docstring) from the scaled row ``q`` to every row.

        Parameters
        ----------
        q : np.ndarray, shape (25,), float64
            A scaled fingerprint (``self.z[i]`` or ``self.scaling.apply(values)``).
        weights : np.ndarray, shape (25,), float64
            From :func:`parse_weights`.
        out : np.ndarray, shape (n,), float64, optional, keyword-only
            Reused output.

        Returns
        -------
        np.ndarray, shape (n,), float64
        """
        w = unit_weights(weights)
        from kernels.neighbours import weighted_distances

        d = weighted_distances(self.z, q, w, out=out)
        d *= 1.0 / float(np.sum(w))
        np.sqrt(d, out=d)
        return d

    def distance(self, a: int, b: int, weights: _F8) -> float:
        """``D`` (module docstring) between rows ``a`` and ``b``."""
        w = unit_weights(weights)
        diff = self.z[a] - self.z[b]
        return math.sqrt(float(np.dot(w, diff * diff)) / float(np.sum(w)))

    def differences(self, a: npt.ArrayLike, b: npt.ArrayLike, weights: _F8,
                    top: int = 3) -> list[str]:
        """The names of the values that contribute most to ``D(a, b)`` (scaled rows)."""
        contrib = weights * (np.asarray(a) - np.asarray(b)) ** 2
        order = np.argsort(-contrib, kind="stable")[:top]
        return [FINGERPRINT_NAMES[i] for i in order if contrib[i] > 0]


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One result of :func:`nearest`: a row of the library and its distance."""

    row: int
    track_id: int
    distance: float


def nearest(lib: Library, q: _F8, weights: _F8, k: int, *,
            exclude: Sequence[int] = ()) -> list[Neighbour]:
    """The ``k`` rows nearest to the scaled row ``q``, nearest first (ties by track id).

    Parameters
    ----------
    lib : Library
    q : np.ndarray, shape (25,), float64
        Scaled query.
    weights : np.ndarray, shape (25,), float64
    k : int
        How many (fewer when the library is smaller).
    exclude : sequence of int, keyword-only
        Rows never returned (the query's own row).

    Returns
    -------
    list of Neighbour
    """
    d = lib.distances(q, weights)
    if exclude:
        d[np.asarray(exclude, np.int64)] = np.inf
    k = min(k, len(lib) - len(set(exclude)))
    if k <= 0:
        return []
    if k < len(d):
        # every row as near as the k-th, so that ties at the boundary go by track id too
        kth = d[np.argpartition(d, k - 1)[k - 1]]
        part = np.flatnonzero(d <= kth)
    else:
        part = np.arange(len(d))
    order = part[np.lexsort((lib.track_ids[part], d[part]))][:k]
    return [Neighbour(int(i), int(lib.track_ids[i]), float(d[i])) for i in order]


def playlist(lib: Library, seed: int, n: int, weights: _F8, *,
             target: int | None = None, distinct: float = 0.0,
             distinct_weights: _F8 | None = None,
             duration_tolerance_s: float = 0.0) -> list[int]:
    """A smooth sequence of library rows from ``seed``, no row twice.

    Without a target, each next track is the unused one nearest to the previous track (a walk
    through the library). With ``target``, the playlist runs from seed to target in ``n``
    steps: step i is the unused track nearest to the point ``i / (n - 1)`` of the way along
    the straight line between the two in scaled space, so it drifts evenly from one sound to
    the other.

    Parameters
    ----------
    lib : Library
    seed : int
        Row of the first track.
    n : int
        Tracks in the playlist, seed (and target) included; at most the library's size.
    weights : np.ndarray, shape (25,), float64
    target : int or None, keyword-only
        Row of the last track.
    distinct : float, keyword-only
        Also skip every track within this ``D`` of a chosen one whose duration is within
        ``duration_tolerance_s`` (the same music in another encoding is a repeat). Default 0:
        only the chosen rows themselves.
    distinct_weights : np.ndarray, shape (25,), float64, optional, keyword-only
        Weights of the ``distinct`` test (e.g. :data:`DUPLICATE_WEIGHTS`); ``weights`` when
        None.
    duration_tolerance_s : float, keyword-only
        See ``distinct``.

    Raises
    ------
    QueryError
        When ``target`` is ``seed``.

    Returns
    -------
    list of int
        Rows, ``min(n, len(lib))`` of them (2 at least with a target), each once.
    """
    if target is not None and target == seed:
        raise QueryError("the playlist's target is its seed: leave --to out for a walk from "
                         "the seed, or name another track")
    n = min(n, len(lib))
    used = np.zeros(len(lib), dtype=bool)
    buf = np.empty(len(lib), np.float64)

    def take(row: int) -> None:
        used[row] = True
        if distinct > 0:
            d = lib.distances(lib.z[row], weights if distinct_weights is None
                              else distinct_weights, out=buf)
            used[(d <= distinct)
                 & (np.abs(lib.duration_s - lib.duration_s[row]) <= duration_tolerance_s)] = True

    take(seed)
    rows = [seed]
    if target is not None:
        take(target)
        n = max(n, 2)
    inner = n - (2 if target is not None else 1)
    for i in range(1, inner + 1):
        if target is not None:
            t = i / (inner + 1)
            q = (1.0 - t) * lib.z[seed] + t * lib.z[target]
        else:
            q = lib.z[rows[-1]]
        d = lib.distances(q, weights, out=buf)
        d[used] = np.inf
        nxt = int(np.argmin(d))
        if not np.isfinite(d[nxt]):
            break
        take(nxt)
        rows.append(nxt)
    if target is not None:
        rows.append(target)
    return rows


@dataclass(frozen=True, slots=True)
class DuplicateReport:
    """What :func:`duplicates` found.

    Attributes
    ----------
    exact : list of list of int
        Groups of rows with the same content key (the same file content), each sorted.
    near : list of tuple of (int, int, float)
        Pairs of rows (i, j, D) with different content keys whose durations and fingerprints
        are both close, nearest first.
    """

    exact: list[list[int]]
    near: list[tuple[int, int, float]]


def duplicates(lib: Library, weights: _F8, *, max_distance: float,
               duration_tolerance_s: float) -> DuplicateReport:
    """Exact duplicates by content key and near ones by fingerprint distance.

    Parameters
    ----------
    lib : Library
    weights : np.ndarray, shape (25,), float64
    max_distance : float, keyword-only
        Largest ``D`` of a near pair (module docstring).
    duration_tolerance_s : float, keyword-only
        Largest duration difference of a near pair, seconds.

    Returns
    -------
    DuplicateReport
    """
    exact: list[list[int]] = []
    if len(lib):
        keys = np.ascontiguousarray(lib.content_keys).view(np.dtype("V16")).ravel()
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(counts)[:-1]
        for group in np.split(order, bounds):
            if len(group) > 1:
                exact.append(sorted(group.tolist()))
        exact.sort()
    weights = unit_weights(weights)
    wsum = float(np.sum(weights))
    # D never exceeds 2 x Z_CLIP (no scaled difference does): a larger limit is that one, and
    # its square stays finite (1e200 ** 2 overflowed)
    max_distance = min(max_distance, 2.0 * Z_CLIP)
    # The kernel stops summing a pair once it passes the limit: give it the values that
    # separate tracks most first (weight x spread), and none of weight 0.
    spread = weights * (lib.z.var(axis=0) if len(lib) else np.ones(len(weights)))
    cols = np.array([k for k in np.argsort(-spread, kind="stable") if weights[k] > 0])
    from kernels.neighbours import near_pairs

    i, j, sq = near_pairs(np.ascontiguousarray(lib.z[:, cols]), lib.duration_s, weights[cols],
                          max_sq_distance=max_distance**2 * wsum,
                          duration_tolerance_s=duration_tolerance_s)
    same = np.all(lib.content_keys[i] == lib.content_keys[j], axis=1)
    dist = np.sqrt(sq / wsum)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    order = np.lexsort((hi, lo, dist))
    near = [(int(lo[o]), int(hi[o]), float(dist[o])) for o in order if not same[o]]
    return DuplicateReport(exact, near)
