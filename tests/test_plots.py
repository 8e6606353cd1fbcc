"""engine.query.plots: track and map figures (files written and read back) and the PCA
projection."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import matplotlib.image as mpimg

from engine.errors import QueryError
from engine.query import plots
from engine.query.similarity import DEFAULT_WEIGHTS, Library
from kernels import FINGERPRINT_NAMES

WEIGHTS = np.array([DEFAULT_WEIGHTS[n] for n in FINGERPRINT_NAMES])

# Plausible range (lo, hi) of each value, FINGERPRINT_NAMES order.
RANGES = {
    **{n: (-40.0, 20.0) for n in FINGERPRINT_NAMES[:6]},
    "lufs": (-30.0, -5.0), "crest_db": (3.0, 20.0), "loudness_range": (0.0, 20.0),
    "dynamic_range_variation": (0.0, 10.0), "tempo_bpm": (60.0, 180.0),
    "transient_density": (0.0, 12.0), "spectral_centroid": (300.0, 6000.0),
    "chroma_energy": (1.0 / 12.0, 1.0), "key_fifths_x": (-1.0, 1.0),
    "key_fifths_y": (-1.0, 1.0), "key_mode": (-1.0, 1.0),
    **{f"mfcc_{i}": (-30.0, 30.0) for i in range(1, 5)}, "phase_correlation": (-1.0, 1.0),
}


def make_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """n synthetic fingerprints, shape (n, 25), each value uniform in its range."""
    vals = np.empty((n, len(FINGERPRINT_NAMES)))
    for k, name in enumerate(FINGERPRINT_NAMES):
        lo, hi = RANGES.get(name, (0.0, 1.0))
        vals[:, k] = rng.uniform(lo, hi, size=n)
    return vals


def make_library(rng: np.random.Generator, n: int, values: np.ndarray | None = None) -> Library:
    vals = make_values(rng, n) if values is None else values
    keys = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    return Library.from_arrays(1, np.arange(n), vals, rng.uniform(30, 400, size=n), keys)


def read_png(path) -> np.ndarray:
    assert path.stat().st_size > 0
    return mpimg.imread(str(path))


def track_pixels() -> tuple[int, int]:
    w, h = plots._TRACK_SIZE
    return round(h * plots._DPI), round(w * plots._DPI)


def map_pixels() -> tuple[int, int]:
    w, h = plots._MAP_SIZE
    return round(h * plots._DPI), round(w * plots._DPI)


# --- plot_track ---------------------------------------------------------------------------------

def test_plot_track_writes_png(rng, tmp_path):
    lib = make_library(rng, 500)
    out = tmp_path / "track.png"
    plots.plot_track(lib, lib.values[3], title="/music/a.flac", output=str(out), row=3)
    img = read_png(out)
    assert img.shape[:2] == track_pixels()
    assert img.std() > 0  # something was drawn


def test_plot_track_outside_file_one_track_library(rng, tmp_path):
    lib = make_library(rng, 1)
    out = tmp_path / "one.png"
    plots.plot_track(lib, make_values(rng, 1)[0], title="x" * 300, output=str(out))
    assert read_png(out).shape[:2] == track_pixels()


def test_plot_track_constant_column_and_value_outside_range(rng, tmp_path):
    vals = make_values(rng, 50)
    vals[:, FINGERPRINT_NAMES.index("phase_correlation")] = 1.0  # an all-mono library
    vals[:, FINGERPRINT_NAMES.index("lufs")] = -14.0
    lib = make_library(rng, 50, vals)
    track = vals[0].copy()
    track[FINGERPRINT_NAMES.index("tempo_bpm")] = 400.0  # far outside the histogram
    out = tmp_path / "const.png"
    plots.plot_track(lib, track, title="t", output=str(out), row=0)
    assert read_png(out).shape[:2] == track_pixels()


@pytest.mark.parametrize("ext", ["svg", "pdf"])
def test_plot_track_other_formats(rng, tmp_path, ext):
    lib = make_library(rng, 100)
    out = tmp_path / f"track.{ext}"
    plots.plot_track(lib, lib.values[0], title="t", output=str(out), row=0)
    head = out.read_bytes()[:200]
    assert (b"<svg" in head or b"<?xml" in head) if ext == "svg" else head.startswith(b"%PDF")


def test_plot_track_rejects_bad_shape(rng, tmp_path):
    lib = make_library(rng, 10)
    with pytest.raises(ValueError, match="shape"):
        plots.plot_track(lib, np.zeros(24), title="t", output=str(tmp_path / "x.png"))


def test_short_title_and_subtitle():
    assert plots._short_title("short") == "short"
    long = "/very/long/" + "d" * 200 + "/track.flac"
    cut = plots._short_title(long)
    assert len(cut) == 90 and "…" in cut
    assert cut.startswith("/very/long/") and cut.endswith("/track.flac")
    assert "(in library)" in plots._subtitle(5, 2) and "library: 5 tracks" in plots._subtitle(5, 2)
    assert "(not in library)" in plots._subtitle(5, None)


def test_percentile():
    col = np.arange(1.0, 101.0)
    assert plots._percentile(col, 50.0) == 50
    assert plots._percentile(col, 0.0) == 0
    assert plots._percentile(col, 1000.0) == 100


# --- plot_map -----------------------------------------------------------------------------------

def test_plot_map_writes_png(rng, tmp_path):
    lib = make_library(rng, 2000)
    out = tmp_path / "map.png"
    plots.plot_map(lib, color="tempo_bpm", output=str(out), weights=WEIGHTS, highlight=[0, 7])
    img = read_png(out)
    assert img.shape[:2] == map_pixels()
    assert img.std() > 0


def test_plot_map_two_tracks_and_rank_deficient(rng, tmp_path):
    lib = make_library(rng, 2)
    plots.plot_map(lib, color="lufs", output=str(tmp_path / "two.png"), weights=WEIGHTS)
    same = make_library(rng, 20, np.tile(make_values(rng, 1), (20, 1)))  # zero variance
    plots.plot_map(same, color="lufs", output=str(tmp_path / "same.png"), weights=WEIGHTS,
                   highlight=[1])
    assert read_png(tmp_path / "same.png").shape[:2] == map_pixels()


def test_plot_map_hexbin(rng, tmp_path):
    n = plots._HEXBIN_ABOVE + 1
    lib = make_library(rng, n)
    out = tmp_path / "hex.png"
    plots.plot_map(lib, color="spectral_centroid", output=str(out), weights=WEIGHTS,
                   highlight=[0, n - 1])
    assert read_png(out).shape[:2] == map_pixels()


def test_plot_map_unknown_color(rng, tmp_path):
    lib = make_library(rng, 10)
    with pytest.raises(QueryError, match="tempo_bmp") as info:
        plots.plot_map(lib, color="tempo_bmp", output=str(tmp_path / "x.png"), weights=WEIGHTS)
    assert "tempo_bpm" in str(info.value)  # lists the valid names
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("n", [0, 1])
def test_plot_map_needs_two_tracks(rng, tmp_path, n):
    lib = make_library(rng, n)
    with pytest.raises(QueryError, match="at least 2 tracks"):
        plots.plot_map(lib, color="lufs", output=str(tmp_path / "x.png"), weights=WEIGHTS)


def test_require_matplotlib_passes_when_installed_and_names_the_fix_when_not(
        rng, tmp_path, monkeypatch):
    assert plots.require_matplotlib() is None  # installed (the importorskip above)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    with pytest.raises(QueryError, match=r"pip install -e \.\[plot\]"):
        plots.require_matplotlib()
    # a plot asked for without it is that error, before anything is written
    lib = make_library(rng, 10)
    with pytest.raises(QueryError, match="plotting needs matplotlib"):
        plots.plot_track(lib, lib.values[0], title="t", output=str(tmp_path / "t.png"), row=0)
    assert not (tmp_path / "t.png").exists()


# --- pca_2d -------------------------------------------------------------------------------------

def test_pca_line_dominates(rng):
    n, d = 1000, 25
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    t = rng.uniform(-3.0, 3.0, size=n)
    x = 5.0 + t[:, None] * direction + 0.01 * rng.normal(size=(n, d))
    coords, explained = plots.pca_2d(x)
    assert coords.shape == (n, 2) and explained.shape == (2,)
    assert explained[0] > 0.95
    assert abs(np.corrcoef(coords[:, 0], t)[0, 1]) > 0.99
    assert explained.sum() <= 1.0 + 1e-12


def test_pca_matches_svd(rng):
    n, d = 800, 25
    scales = 2.0 ** -np.arange(d)  # distinct variances: well-defined components
    x = rng.normal(size=(n, d)) * scales @ np.linalg.qr(rng.normal(size=(d, d)))[0]
    coords, explained = plots.pca_2d(x)
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    ref = u[:, :2] * s[:2]
    for j in range(2):
        sign = np.sign(coords[:, j] @ ref[:, j])
        np.testing.assert_allclose(coords[:, j], sign * ref[:, j], rtol=0, atol=1e-8)
    np.testing.assert_allclose(explained, s[:2] ** 2 / np.sum(s**2), rtol=0, atol=1e-10)


def test_pca_sign_is_deterministic(rng):
    x = rng.normal(size=(200, 25))
    c1, _ = plots.pca_2d(x)
    c2, _ = plots.pca_2d(x[::-1].copy())
    np.testing.assert_allclose(c1[::-1], c2, atol=1e-9)
    # the largest-magnitude loading of each component is positive: recover loadings
    loadings = np.linalg.lstsq(x - x.mean(axis=0), c1, rcond=None)[0]
    top = np.argmax(np.abs(loadings), axis=0)
    assert (loadings[top, [0, 1]] > 0).all()


def test_pca_zero_variance_and_bad_input():
    coords, explained = plots.pca_2d(np.ones((5, 25)))
    np.testing.assert_array_equal(explained, [0.0, 0.0])
    np.testing.assert_allclose(coords, 0.0, atol=1e-12)
    two = np.vstack([np.zeros(25), np.ones(25)])
    coords, explained = plots.pca_2d(two)
    assert explained[0] == pytest.approx(1.0) and explained[1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError):
        plots.pca_2d(np.ones((1, 25)))
    with pytest.raises(ValueError):
        plots.pca_2d(np.array([[0.0, np.nan], [1.0, 2.0]]))
