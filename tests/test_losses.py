"""Losses against numpy on random data, and their serialization."""

import keras
import numpy as np
import pytest

from basenji_tk.errors import InputError
from basenji_tk.losses import MaskedMSE, get_loss

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
