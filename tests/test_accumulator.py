"""PerTargetAccumulator: streamed scores equal one-shot ones, on random (GENERATED) data."""

import numpy as np
import pytest
from conftest import paired
from scipy import stats

from basenji_tk import stats as bs
from basenji_tk.errors import InputError
from basenji_tk.model.accumulator import PerTargetAccumulator

SEEDS = (0, 1, 2, 3)


def stream(acc, y, p, cuts):
    for a, b in zip(cuts[:-1], cuts[1:]):
        acc.update(y[a:b], p[a:b])
    return acc


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_accumulator_equals_one_shot(seed):
    y, p = paired(seed, n_rows=1000, n_targets=3)
    p -= 2.0  # some negative predictions, clipped before log2
    acc = stream(PerTargetAccumulator(3, sample_size=5000, seed=seed), y, p, [0, 1, 8, 300, 301, 777, 1000])
    logy, logp = np.log2(np.maximum(y, 0) + 1), np.log2(np.maximum(p, 0) + 1)
    assert acc.count == 1000
    np.testing.assert_allclose(acc.pearson_r(), bs.pearson_r(y, p), rtol=1e-9)
    np.testing.assert_allclose(acc.r_squared(), bs.r_squared(y, p), rtol=1e-9)
    np.testing.assert_allclose(acc.pearson_r(log=True), bs.pearson_r(logy, logp), rtol=1e-9)
    np.testing.assert_allclose(acc.r_squared(log=True), bs.r_squared(logy, logp), rtol=1e-9)
    # sample larger than the data: it is all the data, in order (float32), and Spearman is exact
    ys, ps = acc.sample()
    np.testing.assert_array_equal(ys, y.astype(np.float32))
    np.testing.assert_array_equal(ps, p.astype(np.float32))
    np.testing.assert_allclose(acc.spearman_r(), bs.spearman_r(y, p), rtol=1e-6)


def test_accumulator_takes_3d_batches():
    rng = np.random.default_rng(7)
    y, p = rng.random((6, 10, 2)), rng.random((6, 10, 2))
    acc = stream(PerTargetAccumulator(2), y, p, [0, 2, 6])
    np.testing.assert_allclose(acc.pearson_r(), bs.pearson_r(y.reshape(-1, 2), p.reshape(-1, 2)), rtol=1e-9)
    with pytest.raises(InputError):
        acc.update(y[..., :1], p[..., :1])


def test_accumulator_is_stable_at_large_mean():
    """GENERATED: mean 1e4, spread 1e-2; naive sum-of-squares formulas would lose every digit."""
    rng = np.random.default_rng(11)
    y = 1e4 + rng.normal(0, 1e-2, (20_000, 2))
    p = y + rng.normal(0, 1e-2, y.shape)
    acc = stream(PerTargetAccumulator(2, sample_size=10), y, p, [0, 3, 5000, 5001, 12_345, 20_000])
    np.testing.assert_allclose(acc.pearson_r(), bs.pearson_r(y, p), rtol=1e-6)
    np.testing.assert_allclose(acc.r_squared(), bs.r_squared(y, p), rtol=1e-6)
    np.testing.assert_allclose(acc.pearson_r(log=True), bs.pearson_r(np.log2(y + 1), np.log2(p + 1)), rtol=1e-6)


def test_accumulator_sample_is_uniform_deterministic_and_batch_size_free():
    n_rows, size = 20_000, 2_000
    y = np.arange(n_rows, dtype=np.float64)[:, None]  # the row number, to identify rows
    one = stream(PerTargetAccumulator(1, sample_size=size, seed=3), y, y, [0, n_rows])
    many = stream(PerTargetAccumulator(1, sample_size=size, seed=3), y, y, [0, 1, 999, 1000, 7000, n_rows])
    other = stream(PerTargetAccumulator(1, sample_size=size, seed=4), y, y, [0, n_rows])
    rows = one.sample()[0][:, 0]
    assert rows.shape == (size,) and np.all(np.diff(rows) > 0)  # distinct rows in stream order
    np.testing.assert_array_equal(many.sample()[0], one.sample()[0])
    assert not np.array_equal(other.sample()[0], one.sample()[0])
    assert stats.kstest(rows / n_rows, "uniform").pvalue > 1e-3
    assert one.spearman_r()[0] == pytest.approx(1.0)


def test_accumulator_constant_target_is_nan():
    acc = PerTargetAccumulator(2)
    y = np.column_stack([np.full(10, 0.1), np.arange(10.0)])
    acc.update(y[:4], y[:4])
    acc.update(y[4:], y[4:])
    assert np.isnan(acc.pearson_r()[0]) and np.isnan(acc.r_squared(log=True)[0])
    assert acc.pearson_r()[1] == pytest.approx(1.0) and acc.r_squared()[1] == pytest.approx(1.0)
