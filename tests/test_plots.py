"""Plots write PNG files, on random (GENERATED) data and on degenerate input."""

import numpy as np
import pytest

from basenji_tk import plots
from basenji_tk.errors import InputError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head == PNG_MAGIC


@pytest.mark.parametrize("n_points, log", [(300, True), (20_000, True), (300, False)])
def test_scatter_writes_png(tmp_path, n_points, log):
    rng = np.random.default_rng(0)
    y = rng.gamma(1.0, 5.0, n_points)
    p = y + rng.normal(0, 2, n_points)
    path = plots.scatter(y, p, tmp_path / "sub" / "scatter.png", title="ctcf", log=log, max_points=10_000)
    assert path == str(tmp_path / "sub" / "scatter.png") and is_png(path)


@pytest.mark.parametrize("y, p", [
    (np.zeros(50), np.zeros(50)),  # constant: r is NaN, hexbin/scatter on a point
    (np.full(9000, 2.0), np.arange(9000.0)),  # constant experiment, hexbin path
    (np.array([]), np.array([])),  # empty
])
def test_scatter_degenerate_input(tmp_path, y, p):
    assert is_png(plots.scatter(y, p, tmp_path / "s.png"))


def test_scatter_length_mismatch(tmp_path):
    with pytest.raises(InputError):
        plots.scatter(np.zeros(3), np.zeros(4), tmp_path / "s.png")


@pytest.mark.parametrize("bin_width", [None, 128])
def test_tracks_writes_png(tmp_path, bin_width):
    rng = np.random.default_rng(1)
    y = rng.poisson(3.0, (128, 3)).astype(float)
    p = y + rng.normal(0, 1, y.shape)
    path = plots.tracks(y, p, tmp_path / "t.png", ["a", "b", "c"], region_label="chr20:0-16384", bin_width=bin_width)
    assert is_png(path)


def test_tracks_degenerate_input(tmp_path):
    assert is_png(plots.tracks(np.zeros(32), np.zeros(32), tmp_path / "one.png", "x"))  # 1-D, flat
    assert is_png(plots.tracks(np.zeros((1, 2)), -np.ones((1, 2)), tmp_path / "bin.png", ["a", "b"]))
    assert is_png(plots.tracks(np.zeros((0, 1)), np.zeros((0, 1)), tmp_path / "none.png", ["a"]))
    with pytest.raises(InputError, match="target ids"):
        plots.tracks(np.zeros((8, 2)), np.zeros((8, 2)), tmp_path / "bad.png", ["a"])
