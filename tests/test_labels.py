"""Label transforms against plain-loop recomputations."""

import math

import numpy as np
import pytest

from basenji_tk.data import labels


def test_crop_center_keeps_the_middle_and_drops_an_odd_extra_on_the_right():
    x = np.arange(10 * 3).reshape(10, 3)
    got = labels.crop_center(x, 200, 50)  # 4 of 10 bins
    assert got.shape == (4, 3)
    np.testing.assert_array_equal(got, x[3:7])
    y = np.arange(201)
    assert labels.crop_center(y, 50, 50).tolist() == [100]  # the centre bin of 201
    z = np.arange(7)
    assert labels.crop_center(z, 2).tolist() == [2, 3]  # 5 left over: 2 left, 3 right
    with pytest.raises(ValueError):
        labels.crop_center(y, 75, 50)
    with pytest.raises(ValueError):
        labels.crop_center(y, 50 * 202, 50)


def test_binarize_is_strictly_greater():
    x = np.array([[0.0, 0.5], [0.51, 1.0]])
    np.testing.assert_array_equal(labels.binarize(x, 0.5), [[0, 0], [1, 1]])
    assert labels.binarize(x, 0.5).dtype == np.float32


def smooth_by_hand(x, sigma, truncate=4.0):
    r = int(truncate * sigma + 0.5)
    w = [math.exp(-k * k / (2 * sigma * sigma)) for k in range(-r, r + 1)]
    s = sum(w)
    out = np.zeros(x.shape)
    for i in range(x.shape[0]):
        for k in range(-r, r + 1):
            if 0 <= i + k < x.shape[0]:
                out[i] += x[i + k] * w[k + r] / s
    return out


def test_gaussian_smooth_matches_a_truncated_kernel_with_zeros_beyond_the_ends():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.3, size=(120, 2)).astype(np.float32)
    got = labels.gaussian_smooth(x, 10)
    assert got.shape == x.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, smooth_by_hand(x, 10), rtol=1e-5, atol=1e-6)
    assert labels.smooth_radius(10) == 40
    # the centre of a padded window equals smoothing the whole signal
    whole = labels.gaussian_smooth(x, 3)
    r = labels.smooth_radius(3)
    part = labels.gaussian_smooth(x[50 - r:70 + r], 3)[r:-r]
    np.testing.assert_allclose(part, whole[50:70], rtol=1e-6)
    np.testing.assert_array_equal(labels.gaussian_smooth(x, 0), x)


def test_log_transform_and_total():
    x = np.array([[0.0, 3.0], [1.0, 7.0], [2.0, 0.0]])
    np.testing.assert_allclose(labels.log_transform(x), np.log(x + 1), rtol=1e-6)
    np.testing.assert_allclose(labels.log_transform(x, 0.5), np.log(x + 0.5), rtol=1e-6)
    assert labels.total(x).tolist() == [3.0, 10.0]
    assert labels.total(x, 1).tolist() == [1.0, 7.0]
    assert labels.total(np.ones((10, 1)), 100, 50).tolist() == [2.0]


def qn_by_hand(m):
    n, t = m.shape
    ref = [sum(sorted(m[:, j])[k] for j in range(t)) / t for k in range(n)]
    out = np.zeros((n, t))
    for j in range(t):
        col = sorted(m[:, j])
        for i in range(n):
            ranks = [k for k in range(n) if col[k] == m[i, j]]
            out[i, j] = sum(ref[k] for k in ranks) / len(ranks)
    return out


def test_quantile_normalize_with_ties():
    rng = np.random.default_rng(1)
    m = rng.poisson(2, size=(40, 4)).astype(float)  # many ties
    m[:, 2] *= 10
    got = labels.quantile_normalize(m)
    np.testing.assert_allclose(got, qn_by_hand(m), rtol=1e-5)
    # without ties every column holds exactly the reference values
    u = rng.normal(size=(30, 3))
    q = labels.quantile_normalize(u)
    ref = np.sort(u, axis=0).mean(axis=1)
    for j in range(3):
        np.testing.assert_allclose(np.sort(q[:, j]), ref, rtol=1e-5)
        assert (np.argsort(q[:, j]) == np.argsort(u[:, j])).all()
    p = rng.poisson(1, size=(5, 6, 3)).astype(float)
    np.testing.assert_allclose(labels.quantile_normalize_positions(p),
                               qn_by_hand(p.reshape(-1, 3)).reshape(p.shape), rtol=1e-5)
