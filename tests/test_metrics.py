"""Keras metrics against numpy / scipy on random (GENERATED) data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from conftest import classes, paired  # noqa: E402
from scipy import stats  # noqa: E402

from basenji_tk.model import metrics as bm  # noqa: E402
from basenji_tk import stats as bs  # noqa: E402
from basenji_tk.errors import InputError  # noqa: E402


# ----------------------------------------------------------------------------- keras
@pytest.mark.parametrize("cls, reference", [(bm.PearsonR, bs.pearson_r), (bm.RSquared, bs.r_squared)])
def test_keras_metrics_stream_like_numpy(cls, reference):
    rng = np.random.default_rng(1)
    y = rng.gamma(2.0, 2.0, size=(9, 16, 3)).astype(np.float32)
    p = (y + rng.normal(0, 2, y.shape)).astype(np.float32)
    expected = reference(y.reshape(-1, 3), p.reshape(-1, 3))
    vector, mean = cls(3, summarize=False), cls(3)
    for a in range(0, 9, 4):
        vector.update_state(y[a:a + 4], p[a:a + 4])
        mean.update_state(y[a:a + 4], p[a:a + 4])
    np.testing.assert_allclose(np.asarray(vector.result()), expected, rtol=1e-5)
    assert float(mean.result()) == pytest.approx(expected.mean(), rel=1e-5)
    # weights of 0 / 1 per sequence equal dropping the sequences
    w = (np.arange(9) % 2).astype(np.float32)
    weighted = cls(3, summarize=False)
    weighted.update_state(y, p, sample_weight=w)
    np.testing.assert_allclose(np.asarray(weighted.result()),
                               reference(y[1::2].reshape(-1, 3), p[1::2].reshape(-1, 3)), rtol=1e-5)
    vector.reset_state()
    vector.update_state(y[:2], p[:2])
    np.testing.assert_allclose(np.asarray(vector.result()), reference(y[:2].reshape(-1, 3), p[:2].reshape(-1, 3)),
                               rtol=1e-5)


@pytest.mark.parametrize("cls", [bm.PearsonR, bm.RSquared])
def test_keras_metrics_serialize(cls):
    metric = cls(5, summarize=False, name="custom")
    again = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(again) is cls
    assert (again.num_targets, again.summarize, again.name) == (5, False, "custom")
    again = cls.from_config(metric.get_config())
    assert (again.num_targets, again.summarize, again.name) == (5, False, "custom")


def test_keras_metric_constant_target_stays_finite():
    metric = bm.PearsonR(2)
    y = np.stack([np.full(8, 3.0), np.arange(8.0)], axis=1)
    metric.update_state(y, y)
    assert float(metric.result()) == pytest.approx(0.5, abs=1e-6)  # r = 0 for the constant target


def test_keras_metric_in_model_evaluate():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8)).astype(np.float32)
    y = (x[:, :3] + rng.normal(0, 1, (100, 3))).astype(np.float32)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile(loss="mse", metrics=[bm.PearsonR(3), bm.RSquared(3)])
    loss, r, r2 = model.evaluate(x, y, batch_size=16, verbose=0)  # 7 batches, the last one short
    pred = model.predict(x, batch_size=16, verbose=0)
    assert r == pytest.approx(bs.pearson_r(y, pred).mean(), rel=1e-5)
    assert r2 == pytest.approx(bs.r_squared(y, pred).mean(), rel=1e-5, abs=1e-6)


# ----------------------------------------------------------------------------- keras: label metrics
def feed(metric, y, p, batch=4, w=None):
    for a in range(0, len(y), batch):
        metric.update_state(y[a:a + batch], p[a:a + batch], None if w is None else w[a:a + batch])
    return np.asarray(metric.result())


def test_auprc_auroc_stream_close_to_exact():
    labels, scores = classes(5, n_rows=600, n_targets=3, decimals=3)
    prob = (1 / (1 + np.exp(-scores))).astype(np.float32)
    y3, p3 = labels.reshape(60, 10, 3).astype(np.float32), prob.reshape(60, 10, 3)  # positional labels too
    assert float(feed(bm.AUROC(3), y3, p3, 7)) == pytest.approx(bs.auroc(labels, prob).mean(), abs=2e-3)
    assert float(feed(bm.AUPRC(3), y3, p3, 7)) == pytest.approx(bs.auprc(labels, prob).mean(), abs=0.02)
    one = bm.AUROC(1)  # a single target (ChromDragoNN stage 2)
    assert float(feed(one, labels[:, :1], prob[:, :1], 50)) == pytest.approx(bs.auroc(labels, prob)[0], abs=2e-3)
    w = (np.arange(60) % 3 != 0).astype(np.float32)  # weight 0 drops the example
    keep = w.astype(bool)
    want = bs.auroc(labels.reshape(60, 10, 3)[keep].reshape(-1, 3), p3[keep].reshape(-1, 3)).mean()
    assert float(feed(bm.AUROC(3), y3, p3, 7, w)) == pytest.approx(want, abs=2e-3)


@pytest.mark.parametrize("rows", [90, 5000])
def test_spearman_matches_scipy_while_the_sample_holds_everything(rows):
    y, p = paired(6, n_rows=rows, n_targets=3)
    y[:, 0], p[:, 1] = np.round(y[:, 0]), np.round(p[:, 1])  # ties
    metric = bm.SpearmanR(3, sample_size=rows, summarize=False)
    got = feed(metric, y.reshape(-1, 1, 3), p.reshape(-1, 1, 3), 37)
    want = [stats.spearmanr(y[:, k], p[:, k])[0] for k in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_spearman_sample_is_bounded_deterministic_and_spread():
    y, p = paired(7, n_rows=4000, n_targets=2)
    order = np.argsort(y[:, 0])  # a sorted stream: a prefix sample would see only low values
    y, p = y[order], p[order]
    a, b = bm.SpearmanR(2, sample_size=400), bm.SpearmanR(2, sample_size=400)
    ra, rb = feed(a, y, p, 64), feed(b, y, p, 333)
    assert float(ra) == pytest.approx(float(rb), rel=1e-12)  # batch sizes do not matter
    assert float(ra) == pytest.approx(np.mean([stats.spearmanr(y[:, k], p[:, k])[0] for k in range(2)]), abs=0.05)
    kept = np.sort(np.asarray(a.y)[:, 0])
    assert kept.size == 400 and kept[0] < np.quantile(y[:, 0], 0.01) and kept[-1] > np.quantile(y[:, 0], 0.99)
    w = np.zeros(4000, np.float32)
    w[::2] = 1
    c = bm.SpearmanR(2, sample_size=4000, summarize=False)
    np.testing.assert_allclose(feed(c, y, p, 100, w), [stats.spearmanr(y[::2, k], p[::2, k])[0] for k in range(2)],
                               rtol=1e-6)
    a.reset_state()
    assert float(a.result()) == 0.0


def profiles(seed=8, batch=12, length=40, channels=2):
    """GENERATED profile counts and positive predictions; one empty and one constant channel."""
    r = np.random.default_rng(seed)
    shape = r.dirichlet(np.ones(length), size=(batch, channels)).transpose(0, 2, 1)
    y = np.stack([[r.multinomial(r.integers(20, 300), shape[b, :, c]) for c in range(channels)]
                  for b in range(batch)]).transpose(0, 2, 1).astype(np.float32)
    y[2, :, 1] = 0
    p = (shape * r.uniform(0.5, 1.5, shape.shape)).astype(np.float32)
    p[3, :, 0] = 1.0
    return y, p


def test_profile_jsd_and_pearson_match_numpy():
    from scipy.spatial.distance import jensenshannon

    y, p = profiles()
    w = np.linspace(0.0, 2.0, len(y)).astype(np.float32)
    jsd, rs, ws_j, ws_r = [], [], [], []
    for b in range(len(y)):
        for c in range(y.shape[2]):
            if y[b, :, c].sum() > 0:
                jsd.append(jensenshannon(y[b, :, c], p[b, :, c], base=2) ** 2)  # scipy normalises both
                ws_j.append(w[b])
            if np.ptp(y[b, :, c]) > 0 and np.ptp(p[b, :, c]) > 0:
                rs.append(stats.pearsonr(y[b, :, c], p[b, :, c])[0])
                ws_r.append(w[b])
    assert len(jsd) == 23 and len(rs) == 22
    assert float(feed(bm.ProfileJSD(), y, p, 5)) == pytest.approx(np.mean(jsd), rel=1e-6)
    assert float(feed(bm.ProfilePearsonR(), y, p, 5)) == pytest.approx(np.mean(rs), rel=1e-6)
    assert float(feed(bm.ProfileJSD(), y, p, 5, w)) == pytest.approx(np.average(jsd, weights=ws_j), rel=1e-6)
    assert float(feed(bm.ProfilePearsonR(), y, p, 5, w)) == pytest.approx(np.average(rs, weights=ws_r), rel=1e-6)


def test_count_pearson_is_pearson_of_totals():
    y, p = profiles()
    p = p * np.arange(1, len(p) + 1)[:, None, None]  # predicted counts with varying depth
    want = bs.pearson_r(y.sum(axis=1), p.sum(axis=1))
    np.testing.assert_allclose(feed(bm.CountPearsonR(2, summarize=False), y, p, 5), want, rtol=1e-6)
    softmax = p / p.sum(axis=1, keepdims=True)  # totals 1 up to float32 rounding: no correlation to report
    assert np.ptp(softmax.sum(axis=1)) > 0
    np.testing.assert_array_equal(feed(bm.CountPearsonR(2, summarize=False), y, softmax, 5), [0.0, 0.0])


@pytest.mark.parametrize("label_type, names", [
    ("binary", ["auprc", "auroc"]), ("regression", ["pearsonr", "r2", "rmse", "spearmanr"]),
    ("count", ["pearsonr", "r2", "rmse", "spearmanr"]), ("profile", ["jsd", "profile_pearsonr", "count_pearsonr"])])
def test_for_label_names_and_serialisation(label_type, names, tmp_path):
    from basenji_tk.model import models

    made = bm.for_label(label_type, 3)
    assert [m.name for m in made] == names
    for m in made:
        again = keras.metrics.deserialize(keras.metrics.serialize(m))
        assert type(again) is type(m) and again.name == m.name
    inp = keras.Input((10, 3))
    model = keras.Model(inp, keras.layers.Softmax(axis=1)(keras.layers.Dense(3)(inp)))
    model.compile(loss="mse", metrics=made)
    x = np.random.default_rng(0).random((8, 10, 3)).astype(np.float32)
    y = (x > 0.5).astype(np.float32)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(names) <= set(logs) and all(np.isfinite(v) for v in logs.values())
    again = models.load_model(models.save_model(model, tmp_path / "m.keras"), compile=True)
    assert again.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx(logs, rel=1e-5)
    with pytest.raises(InputError, match="unknown label_type 'counts'"):
        bm.for_label("counts", 3)


def test_lower_is_better():
    assert all(bm.lower_is_better(m) for m in ("val_loss", "val_rmse", "val_profile_jsd", "val_total_loss"))
    assert not any(bm.lower_is_better(m) for m in ("val_pearsonr", "val_auprc", "val_profile_count_pearsonr",
                                                     "val_r2", "val_spearmanr"))


def test_get_metric_by_name():
    assert [bm.get_metric(n, 2).name for n in bm.METRIC_NAMES] == list(bm.METRIC_NAMES)
    with pytest.raises(InputError, match="unknown metric 'auc'; allowed: auprc, auroc"):
        bm.get_metric("auc", 2)
