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


# --- logo, heatmap, ism_figure, saliency_track ----------------------------------------------------

import matplotlib.pyplot as plt  # noqa: E402


def png_size(path):
    """(width, height) in pixels from the PNG's IHDR chunk."""
    with open(path, "rb") as fh:
        head = fh.read(24)
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def letter_boxes(ax):
    """gid ("<letter>:<x>") -> (x0, x1, y0, y1) of each letter patch, in data coordinates."""
    boxes = {}
    for patch in ax.patches:
        box = patch.get_path().get_extents()
        boxes[patch.get_gid()] = (box.x0, box.x1, box.y0, box.y1)
    return boxes


def test_logo_letters_fill_their_boxes():
    # position 10: A 0.5, C 0.2, G 0 (not drawn), T 1.0 -> upward from 0: C, A, T
    # position 11: A -0.3, C 0.4, G -0.1, T 0 -> C up; downward from 0: G, then A
    # position 12: all 0 -> nothing
    heights = np.array([[0.5, 0.2, 0.0, 1.0], [-0.3, 0.4, -0.1, 0.0], [0.0, 0.0, 0.0, 0.0]])
    fig, ax = plt.subplots()
    try:
        assert plots.logo(ax, heights, start=10) is ax
        boxes = letter_boxes(ax)
        expected = {
            "C:10": (9.5, 10.5, 0.0, 0.2), "A:10": (9.5, 10.5, 0.2, 0.7), "T:10": (9.5, 10.5, 0.7, 1.7),
            "C:11": (10.5, 11.5, 0.0, 0.4), "G:11": (10.5, 11.5, -0.1, 0.0), "A:11": (10.5, 11.5, -0.4, -0.1),
        }
        assert len(ax.patches) == 6 and set(boxes) == set(expected)
        for gid, box in expected.items():
            np.testing.assert_allclose(boxes[gid], box, atol=1e-6, err_msg=gid)
        colors = {p.get_gid()[0]: p.get_facecolor()[:3] for p in ax.patches}
        for letter, hex_color in plots.BASE_COLORS.items():
            np.testing.assert_allclose(colors[letter], plt.matplotlib.colors.to_rgb(hex_color))
        assert ax.get_xlim() == (9.5, 12.5)
        y0, y1 = ax.get_ylim()
        assert y0 <= -0.4 and y1 >= 1.7
    finally:
        plt.close(fig)


def test_heatmap_image_and_symmetric_limits():
    rng = np.random.default_rng(2)
    scores = rng.normal(0, 1, (30, 4))  # GENERATED
    reference = np.eye(4)[rng.integers(0, 4, 30)]
    fig, ax = plt.subplots()
    try:
        assert plots.heatmap(ax, scores, reference, start=5) is ax
        image = ax.images[0]
        np.testing.assert_array_equal(image.get_array(), scores.T)
        vmin, vmax = image.get_clim()
        assert vmin == -vmax and vmax == pytest.approx(np.percentile(np.abs(scores), 99))
        dots = ax.collections[0].get_offsets()  # one dot per reference base, at (x, row)
        np.testing.assert_array_equal(np.sort(dots[:, 0]), 5 + np.arange(30))
        assert [t.get_text() for t in ax.get_yticklabels()] == list("ACGT")
    finally:
        plt.close(fig)
    fig, ax = plt.subplots()
    try:
        plots.heatmap(ax, np.zeros((3, 4)), vmax=None)  # all zero: limits still symmetric and finite
        assert ax.images[0].get_clim() == (-1.0, 1.0)
        plots.heatmap(ax, np.eye(4)[[0, 1] * 60] * -2.0)  # 99th percentile 2, not 0
        assert ax.images[-1].get_clim() == (-2.0, 2.0)
    finally:
        plt.close(fig)


@pytest.mark.parametrize("call", [
    lambda ax, tmp: plots.logo(ax, np.zeros((5, 3))),
    lambda ax, tmp: plots.logo(ax, np.zeros(4)),
    lambda ax, tmp: plots.heatmap(ax, np.zeros((4, 5))),
    lambda ax, tmp: plots.heatmap(ax, np.zeros((5, 4)), reference=np.zeros((6, 4))),
    lambda ax, tmp: plots.ism_figure(np.zeros((5, 4, 1)), np.zeros((5, 4)), tmp / "x.png"),
    lambda ax, tmp: plots.ism_figure(np.zeros((5, 4)), np.zeros((5, 5)), tmp / "x.png"),
    lambda ax, tmp: plots.saliency_track(np.zeros((5, 2)), tmp / "x.png"),
])
def test_bad_shapes_raise(tmp_path, call):
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ValueError, match=r"of shape \((L, 4|N,|\d+, 4)\)"):
            call(ax, tmp_path)
    finally:
        plt.close(fig)
    assert not (tmp_path / "x.png").exists()


def test_bad_shape_is_also_input_error():
    with pytest.raises(InputError):
        plots.logo(None, np.zeros((2, 2)))


def test_ism_figure_writes_png(tmp_path):
    rng = np.random.default_rng(3)
    length = 200
    reference = np.eye(4)[rng.integers(0, 4, length)]
    scores = rng.normal(0, 0.1, (length, 4)) * (1 - reference)  # SIMULATED ISM: reference entries 0
    scores[90:100] -= 0.5 * (1 - reference[90:100])  # a SIMULATED motif the mutations break
    path = plots.ism_figure(scores, reference, tmp_path / "ism" / "seq0_t0.png", title="SIMULATED", start=1000)
    assert path == str(tmp_path / "ism" / "seq0_t0.png") and is_png(path)
    width, height = png_size(path)
    assert width == 8 * 300 and 1000 < height < 3000  # max(8, 200 / 25) inches at 300 dpi
    assert [p.name for p in (tmp_path / "ism").iterdir()] == ["seq0_t0.png"]  # no temporary left
    # cropped to the central 50 positions; N rows (all-zero reference) are allowed
    reference[:5] = 0
    assert is_png(plots.ism_figure(scores, reference, tmp_path / "crop.png", max_len=50))
    with pytest.raises(InputError, match="one-hot"):
        plots.ism_figure(scores, reference * 2, tmp_path / "bad.png")


def test_saliency_track_writes_png(tmp_path):
    rng = np.random.default_rng(4)
    values = rng.normal(0, 1, 500)  # GENERATED
    path = plots.saliency_track(values, tmp_path / "sal.png", start=1_234_000, bin_width=32, title="x", chrom="chr1")
    assert is_png(path)
    width, height = png_size(path)
    assert width == 8 * 300 and height == int(2.5 * 300)
    assert is_png(plots.saliency_track(np.array([]), tmp_path / "empty.png"))
    assert is_png(plots.saliency_track(np.zeros(3), tmp_path / "flat.png"))


def test_feature_bars_writes_png(tmp_path):
    values = np.random.default_rng(5).normal(0, 1, 30)  # GENERATED
    names = [f"TF{k}" for k in range(30)]
    path = plots.feature_bars(names, values, tmp_path / "top.png", top=10, title="x")
    assert is_png(path)
    width, height = png_size(path)
    assert width == 6 * 300 and height == int((0.25 * 10 + 1.0) * 300)  # 10 bars
    assert is_png(plots.feature_bars([], np.array([]), tmp_path / "empty.png"))
    with pytest.raises(InputError, match="one per name"):
        plots.feature_bars(names[:3], values, tmp_path / "bad.png")
