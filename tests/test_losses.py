"""Losses against numpy on random data, and their serialization."""

import keras
import numpy as np
import pytest

from basenji_tk.errors import InputError
from basenji_tk.model.losses import MaskedMSE, get_loss

rng = np.random.default_rng(4)
Y = rng.poisson(3.0, size=(5, 7, 2)).astype("float32")  # GENERATED counts
P = rng.gamma(2.0, 1.5, size=(5, 7, 2)).astype("float32")


def test_poisson_matches_numpy():
    want = np.mean(P - Y * np.log(P + keras.config.epsilon()))
    assert float(get_loss("poisson")(Y, P)) == pytest.approx(want, rel=1e-5)


def test_mse_and_bce_match_numpy():
    assert float(get_loss("mse")(Y, P)) == pytest.approx(np.mean((Y - P) ** 2), rel=1e-5)
    labels = (Y > 2).astype("float32")
    prob = 1 / (1 + np.exp(-(P - 3)))
    want = -np.mean(labels * np.log(prob) + (1 - labels) * np.log(1 - prob))
    assert float(get_loss("bce")(labels, prob)) == pytest.approx(want, rel=1e-4)


@pytest.mark.parametrize("mask_zero", [False, True])
def test_masked_mse_ignores_missing_bins(mask_zero):
    y = Y.copy()
    y[0, :3, 0] = np.nan
    present = ~np.isnan(y) & ((y != 0) if mask_zero else True)
    per_example = [np.sum(((P[i] - y[i]) ** 2)[present[i]]) / max(present[i].sum(), 1) for i in range(len(y))]
    got = float(MaskedMSE(mask_zero=mask_zero)(y, P))
    assert np.isfinite(got)
    assert got == pytest.approx(np.mean(per_example), rel=1e-5)


def test_masked_mse_with_no_present_bin_is_zero():
    y = np.full((2, 3, 1), np.nan, "float32")
    assert float(MaskedMSE()(y, P[:2, :3, :1])) == 0.0


def test_masked_mse_serializes():
    loss = MaskedMSE(mask_zero=True)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, MaskedMSE) and again.mask_zero


def test_unknown_loss():
    with pytest.raises(InputError, match="unknown loss 'poison'; allowed: poisson"):
        get_loss("poison")


# ----------------------------------------------------------------------------- new losses
def np_profiles(y, p):
    """Independent numpy: counts, totals (batch, C) and the prediction normalised over positions."""
    y, p = y.astype(np.float64), p.astype(np.float64)
    return y, y.sum(axis=1), p / p.sum(axis=1, keepdims=True)


def profile_counts(seed=0, batch=4, length=50, channels=3):
    """GENERATED multinomial counts with one empty channel, and softmax predictions."""
    r = np.random.default_rng(seed)
    y = np.stack([r.multinomial(r.integers(5, 200), r.dirichlet(np.ones(length)), size=channels).T
                  for _ in range(batch)]).astype("float32")
    y[1, :, 2] = 0  # no reads: contributes 0
    logits = r.normal(0, 1, (batch, length, channels))
    p = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype("float32")
    return y, p


def test_rmse_is_the_root_of_the_batch_mse():
    assert float(get_loss("rmse")(Y, P)) == pytest.approx(np.sqrt(np.mean((Y - P) ** 2)), rel=1e-5)
    y1, p1 = Y[:, 0, :1], P[:, 0, :1]  # one output per example: not the mean absolute error
    assert float(get_loss("rmse")(y1, p1)) == pytest.approx(np.sqrt(np.mean((y1 - p1) ** 2)), rel=1e-5)
    assert float(get_loss("rmse")(y1, p1)) != pytest.approx(np.mean(np.abs(y1 - p1)), rel=1e-3)
    w = np.array([1, 0, 2, 0.5, 1], "float32")
    want = np.sqrt(np.sum(w * np.mean((Y - P) ** 2, axis=(1, 2))) / len(w))
    assert float(get_loss("rmse")(Y, P, sample_weight=w)) == pytest.approx(want, rel=1e-5)


def test_multinomial_nll_and_profile_ce_match_numpy():
    y, p = profile_counts()
    yy, n, pp = np_profiles(y, p)
    nll = -np.sum(yy * np.log(pp), axis=1)  # (batch, C)
    assert float(get_loss("multinomial_nll")(y, p)) == pytest.approx(np.mean(nll), rel=1e-5)
    ce = np.where(n > 0, nll / np.maximum(n, 1), 0.0)
    assert float(get_loss("profile_ce")(y, p)) == pytest.approx(np.mean(ce), rel=1e-5)
    # the same shape of profile at 10x the depth: MNLL grows 10x, CE stays
    assert float(get_loss("profile_ce")(10 * y, p)) == pytest.approx(float(get_loss("profile_ce")(y, p)), rel=1e-5)
    assert float(get_loss("multinomial_nll")(10 * y, p)) == pytest.approx(10 * np.mean(nll), rel=1e-5)


def test_profile_losses_renormalise_count_predictions():
    y, p = profile_counts(1)
    for name in ("multinomial_nll", "profile_ce", "jsd"):
        assert float(get_loss(name)(y, 37.0 * p)) == pytest.approx(float(get_loss(name)(y, p)), rel=1e-5)


def test_jsd_matches_scipy():
    from scipy.spatial.distance import jensenshannon

    y, p = profile_counts(2)
    _, n, pp = np_profiles(y, p)
    want = np.array([[jensenshannon(y[b, :, c] / n[b, c], pp[b, :, c], base=2) ** 2 if n[b, c] > 0 else 0.0
                      for c in range(y.shape[2])] for b in range(y.shape[0])])
    assert float(get_loss("jsd")(y, p)) == pytest.approx(want.mean(), rel=1e-4)
    q = y / np.maximum(y.sum(axis=1, keepdims=True), 1)
    q[1, :, 2] = 1 / y.shape[1]
    assert float(get_loss("jsd")(y, q.astype("float32"))) == pytest.approx(0.0, abs=1e-6)  # perfect prediction


@pytest.mark.parametrize("name", ["multinomial_nll", "profile_ce", "jsd"])
def test_profile_losses_take_sample_weights(name):
    y, p = profile_counts(3)
    loss = get_loss(name)
    per_example = np.array([float(loss(y[i:i + 1], p[i:i + 1])) for i in range(len(y))])
    w = np.array([0.0, 1.0, 2.0, 0.5], "float32")
    assert float(loss(y, p, sample_weight=w)) == pytest.approx(np.sum(w * per_example) / len(w), rel=1e-5)


def test_profile_losses_refuse_vectors():
    with pytest.raises(InputError, match="positions, channels"):
        get_loss("profile_ce")(Y[:, 0], P[:, 0])


@pytest.mark.parametrize("name", ["rmse", "multinomial_nll", "profile_ce", "jsd", "masked_mse"])
def test_compiled_model_with_each_loss_reloads(name, tmp_path):
    from basenji_tk.model import models

    inp = keras.Input((50, 3))
    model = keras.Model(inp, keras.layers.Softmax(axis=1)(keras.layers.Dense(3)(inp)))
    model.compile(optimizer="adam", loss=get_loss(name))
    y, _ = profile_counts(4)
    x = np.random.default_rng(0).normal(size=(4, 50, 3)).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    again = models.load_model(models.save_model(model, tmp_path / "m.keras"), compile=True)
    assert type(again.loss) is type(model.loss)
    assert again.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)
