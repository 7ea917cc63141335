"""basenji_tk.stats against scipy / sklearn on random (GENERATED) data."""

import numpy as np
import pytest
from conftest import classes, paired
from scipy import stats
from sklearn import metrics as skm

from basenji_tk import stats as bs
from basenji_tk.errors import InputError

SEEDS = (0, 1, 2, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_metrics_match_scipy_and_sklearn(seed):
    y, p = paired(seed)
    p[:, 0] = np.round(p[:, 0])  # ties for Spearman
    for k in range(y.shape[1]):
        assert bs.pearson_r(y, p)[k] == pytest.approx(stats.pearsonr(y[:, k], p[:, k])[0], rel=1e-10)
        assert bs.spearman_r(y, p)[k] == pytest.approx(stats.spearmanr(y[:, k], p[:, k])[0], rel=1e-10)
        assert bs.r_squared(y, p)[k] == pytest.approx(skm.r2_score(y[:, k], p[:, k]), rel=1e-10)
    assert bs.pearson_r(y, p).shape == (y.shape[1],)


def test_r_squared_is_not_squared_correlation():
    y = np.arange(10.0)[:, None]
    assert bs.pearson_r(y, 2 * y)[0] == pytest.approx(1.0)
    assert bs.r_squared(y, 2 * y)[0] < 0.0  # scaled prediction: perfect r, poor R²
    assert bs.r_squared(y, np.full_like(y, y.mean()))[0] == pytest.approx(0.0)


def test_constant_targets_give_nan_without_warnings(recwarn):
    y, p = paired(0, n_targets=3)
    y[:, 0] = 0.1  # constant experiment (0.1 * N is not exact in floating point)
    p[:, 1] = 7.0  # constant prediction
    r, rho, r2 = bs.pearson_r(y, p), bs.spearman_r(y, p), bs.r_squared(y, p)
    assert np.isnan(r[:2]).all() and np.isnan(rho[:2]).all() and np.isfinite(r[2]) and np.isfinite(rho[2])
    assert np.isnan(r2[0]) and np.isfinite(r2[1:]).all()  # a constant prediction has a defined R²
    assert len(recwarn) == 0


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="shape"):
        bs.pearson_r(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(InputError, match="labels"):
        bs.auroc(np.full((4, 1), 2), np.zeros((4, 1)))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("decimals", [0, 1, 3])
def test_auroc_auprc_match_sklearn_with_ties(seed, decimals):
    labels, scores = classes(seed, decimals=decimals)
    auc, ap = bs.auroc(labels, scores), bs.auprc(labels, scores)
    for k in range(labels.shape[1]):
        assert auc[k] == pytest.approx(skm.roc_auc_score(labels[:, k], scores[:, k]), abs=1e-12)
        assert ap[k] == pytest.approx(skm.average_precision_score(labels[:, k], scores[:, k]), abs=1e-12)


def test_auprc_all_tied_and_perfect():
    labels = np.array([[1], [0], [1], [0]], dtype=bool)
    assert bs.auprc(labels, np.zeros((4, 1)))[0] == pytest.approx(0.5)  # one threshold: prevalence
    assert bs.auprc(labels, labels * 1.0)[0] == pytest.approx(1.0)
    assert bs.auroc(labels, np.zeros((4, 1)))[0] == pytest.approx(0.5)


def test_one_class_targets_give_nan(recwarn):
    labels, scores = classes(5)
    labels[:, 0], labels[:, 1] = False, True
    for values in (bs.auroc(labels, scores), bs.auprc(labels, scores)):
        assert np.isnan(values[:2]).all() and np.isfinite(values[2])
    assert len(recwarn) == 0
