"""Keras metrics that stream over a whole epoch, and the metrics of each label type.

* :class:`PearsonR` and :class:`RSquared` are Keras metrics that accumulate
  sums over a whole epoch or validation pass instead of averaging per-batch
  values, so that the number logged during training is the number the test
  split would give (:func:`basenji_tk.stats.pearson_r`, :func:`basenji_tk.stats.r_squared`).
* :func:`for_label` gives the streaming Keras metrics of a head by its label type:
  binary :class:`AUPRC`, :class:`AUROC`; regression and count :class:`PearsonR`,
  :class:`RSquared`, ``rmse``, :class:`SpearmanR` (on a bounded, evenly spread sample);
  profile :class:`ProfileJSD`, :class:`ProfilePearsonR` (across positions, mean over
  examples and channels), :class:`CountPearsonR` (of per-example totals).
  :func:`lower_is_better` says which way a logged name (``val_total_rmse``) improves.

Every class here is registered with Keras (package ``basenji_tk``), so saved models that use
them load (``import basenji_tk`` imports this module when Keras loads).
"""

import keras
from keras import ops

from basenji_tk.errors import InputError

__all__ = [
    "PearsonR", "RSquared", "AUPRC", "AUROC", "SpearmanR", "ProfileJSD", "ProfilePearsonR", "CountPearsonR",
    "for_label", "get_metric", "lower_is_better", "LOWER_IS_BETTER", "LABEL_METRICS", "METRIC_NAMES",
]


# ----------------------------------------------------------------------------- keras
class _SumsMetric(keras.metrics.Metric):
    """Per-target running sums over a whole epoch, in float64.

    Subclasses name their sums in ``SUMS`` and define ``_terms(y, p)``: each row's
    contribution ``{sum name: (rows, n)}`` for ``y`` and ``p`` of shape ``(rows, n)``. Sums are float64 variables and inputs are cast to float64, so
    the one-pass formula ``sum(y**2) - sum(y)**2 / count`` keeps about 9 more
    digits than float32 would; data whose mean is many orders of magnitude
    above its spread (beyond ~1e6 : 1) still loses digits. On the JAX backend
    float64 needs ``jax_enable_x64``. ``sample_weight`` (shape ``(B,)``,
    ``(B, T)`` or that of ``y``) weights every sum, and ``count`` becomes the
    sum of weights.
    """

    SUMS: tuple[str, ...] = ()

    def __init__(self, num_targets: int, summarize: bool = True, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_targets, self.summarize = int(num_targets), bool(summarize)
        self.sums = {key: self.add_variable(shape=(self.num_targets,), initializer="zeros",
                                            dtype="float64", name=key)
                     for key in ("count",) + self.SUMS}

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = self.num_targets
        y = ops.reshape(ops.cast(y_true, "float64"), (-1, n))
        p = ops.reshape(ops.cast(y_pred, "float64"), (-1, n))
        if sample_weight is None:
            w = ops.ones_like(y)
        else:
            w = ops.cast(sample_weight, "float64")
            while len(w.shape) < len(y_pred.shape):
                w = ops.expand_dims(w, -1)
            w = ops.reshape(ops.broadcast_to(w, ops.shape(y_pred)), (-1, n))
        terms = {"count": w, **{key: w * value for key, value in self._terms(y, p).items()}}
        for key, variable in self.sums.items():
            variable.assign_add(ops.sum(terms[key], axis=0))

    def _centred(self, total, total_sq):
        """Centred sum of squares per target, ``(n,)``, never below 0."""
        return ops.maximum(total_sq - total * total / ops.maximum(self.sums["count"], 1.0), 0.0)

    def _finish(self, per_target):
        value = ops.mean(per_target) if self.summarize else per_target
        return ops.cast(value, self.dtype)

    def get_config(self):
        return {**super().get_config(), "num_targets": self.num_targets, "summarize": self.summarize}


@keras.saving.register_keras_serializable(package="basenji_tk")
class PearsonR(_SumsMetric):
    """Pearson r per target over all values seen since the last reset.

    Inputs ``(B, T, n)`` or ``(B, n)``; sums of y, p, y², p² and yp per target.
    ``result()`` is the mean over targets (``summarize=True``) or the ``(n,)``
    vector. The denominator is floored at ``keras.config.epsilon()``, so a
    constant target gives r of about 0, not NaN, and the mean stays finite.
    """

    SUMS = ("sum_y", "sum_p", "sum_yy", "sum_pp", "sum_yp")

    def __init__(self, num_targets: int, summarize: bool = True, name: str = "pearsonr", **kwargs):
        super().__init__(num_targets, summarize=summarize, name=name, **kwargs)

    def _terms(self, y, p):
        return {"sum_y": y, "sum_p": p, "sum_yy": y * y, "sum_pp": p * p, "sum_yp": y * p}

    def result(self):
        s = self.sums
        cov = s["sum_yp"] - s["sum_y"] * s["sum_p"] / ops.maximum(s["count"], 1.0)
        scale = ops.sqrt(self._centred(s["sum_y"], s["sum_yy"]) * self._centred(s["sum_p"], s["sum_pp"]))
        return self._finish(ops.clip(cov / ops.maximum(scale, keras.config.epsilon()), -1.0, 1.0))


@keras.saving.register_keras_serializable(package="basenji_tk")
class RSquared(_SumsMetric):
    """Coefficient of determination ``1 - SS_res / SS_tot`` per target over all values since the last reset.

    Inputs ``(B, T, n)`` or ``(B, n)``; sums of y, y² and (y - p)² per target.
    ``SS_tot`` is floored at ``keras.config.epsilon()``, so a constant target
    gives a large negative value (or 1 if predicted exactly), not NaN.
    """

    SUMS = ("sum_y", "sum_yy", "sum_res")

    def __init__(self, num_targets: int, summarize: bool = True, name: str = "r2", **kwargs):
        super().__init__(num_targets, summarize=summarize, name=name, **kwargs)

    def _terms(self, y, p):
        return {"sum_y": y, "sum_yy": y * y, "sum_res": (y - p) * (y - p)}

    def result(self):
        s = self.sums
        ss_tot = ops.maximum(self._centred(s["sum_y"], s["sum_yy"]), keras.config.epsilon())
        return self._finish(1.0 - s["sum_res"] / ss_tot)


def _rows(x, n, dtype="float64"):
    """``(B, ..., n)`` -> ``(rows, n)``."""
    return ops.reshape(ops.cast(x, dtype), (-1, n))


def _row_weights(sample_weight, y_pred, n):
    """Sample weights broadcast to ``y_pred`` and laid out as its ``(rows, n)``."""
    w = ops.cast(sample_weight, "float64")
    while len(w.shape) < len(y_pred.shape):
        w = ops.expand_dims(w, -1)
    return _rows(ops.broadcast_to(w, ops.shape(y_pred)), n)


class _TargetAUC(keras.metrics.AUC):
    """``keras.metrics.AUC`` over ``(B, ..., n)`` labels, the mean of the n targets' areas.

    Predictions are probabilities (a sigmoid ``final``). Areas come from ``num_thresholds``
    thresholds (Keras's interpolated PR curve for ``auprc``): close to, not equal to,
    :func:`basenji_tk.stats.auprc` / :func:`basenji_tk.stats.auroc` on the same data."""

    CURVE = "PR"

    def __init__(self, num_targets: int = 1, num_thresholds: int = 500, name: str | None = None, **kwargs):
        for key in ("curve", "multi_label", "num_labels", "label_weights", "from_logits", "thresholds"):
            kwargs.pop(key, None)
        self.num_targets = int(num_targets)
        super().__init__(num_thresholds=num_thresholds, curve=self.CURVE, name=name, multi_label=self.num_targets > 1,
                         num_labels=self.num_targets if self.num_targets > 1 else None, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = self.num_targets
        if sample_weight is not None:
            sample_weight = _row_weights(sample_weight, y_pred, n)
        super().update_state(_rows(y_true, n, "float32"), _rows(y_pred, n, "float32"), sample_weight)

    def get_config(self):
        return {**super().get_config(), "num_targets": self.num_targets}


@keras.saving.register_keras_serializable(package="basenji_tk")
class AUPRC(_TargetAUC):
    """Area under the precision-recall curve, streamed (mean over targets)."""

    def __init__(self, num_targets: int = 1, name: str = "auprc", **kwargs):
        super().__init__(num_targets, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="basenji_tk")
class AUROC(_TargetAUC):
    """Area under the ROC curve, streamed (mean over targets)."""

    CURVE = "ROC"

    def __init__(self, num_targets: int = 1, name: str = "auroc", **kwargs):
        super().__init__(num_targets, name=name, **kwargs)


GOLDEN = 0.6180339887498949


@keras.saving.register_keras_serializable(package="basenji_tk")
class SpearmanR(keras.metrics.Metric):
    """Spearman r per target (mean over targets) on a bounded, evenly spread sample of rows.

    Ranks do not stream, so the metric keeps at most ``sample_size`` rows (``(rows, n)``
    after flattening ``(B, ..., n)``). Row ``i`` of the stream (counted since the last
    reset) gets the key ``frac(i * 0.618...)`` (a Weyl sequence) and the rows with the
    smallest keys are kept: a deterministic sample, independent of batch sizes, whose
    rows are spread evenly over the whole stream (about every ``N / sample_size``-th row,
    at irregular steps). While the stream is shorter than ``sample_size`` the value is
    exact (ties get average ranks). Rows with zero ``sample_weight`` are left out; other
    weights are not used. Fewer than 2 rows, or a constant column, give 0."""

    def __init__(self, num_targets: int, sample_size: int = 10_000, summarize: bool = True, name: str = "spearmanr",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_targets, self.sample_size, self.summarize = int(num_targets), int(sample_size), bool(summarize)
        shape = (self.sample_size, self.num_targets)
        self.keys = self.add_variable(shape=(self.sample_size,), initializer=keras.initializers.Constant(3.0),
                                      dtype="float64", name="keys")
        self.y = self.add_variable(shape=shape, initializer="zeros", dtype="float64", name="y")
        self.p = self.add_variable(shape=shape, initializer="zeros", dtype="float64", name="p")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="count")

    def reset_state(self):
        self.keys.assign(ops.full((self.sample_size,), 3.0, "float64"))
        for v in (self.y, self.p, self.count):
            v.assign(ops.zeros(v.shape, "float64"))

    def update_state(self, y_true, y_pred, sample_weight=None):
        n = self.num_targets
        y, p = _rows(y_true, n), _rows(y_pred, n)
        rows = ops.shape(y)[0]
        index = self.count + ops.cast(ops.arange(rows), "float64")
        keys = index * GOLDEN - ops.floor(index * GOLDEN)
        if sample_weight is not None:
            w = ops.max(_row_weights(sample_weight, y_pred, n), axis=1)
            keys = ops.where(w > 0, keys, 2.0)
        all_keys = ops.concatenate([self.keys, keys])
        _, take = ops.top_k(-all_keys, k=self.sample_size, sorted=False)
        self.keys.assign(ops.take(all_keys, take))
        self.y.assign(ops.take(ops.concatenate([self.y, y]), take, axis=0))
        self.p.assign(ops.take(ops.concatenate([self.p, p]), take, axis=0))
        self.count.assign_add(ops.cast(rows, "float64"))

    def _ranks(self, x, valid):
        """Average ranks (ties share the mean of their positions) down each column of ``(K, n)``."""
        k, n = self.sample_size, self.num_targets
        x = ops.where(valid[:, None], x, 1e300)  # unused slots sort last
        order = ops.argsort(x, axis=0)
        s = ops.take_along_axis(x, order, axis=0)
        new = ops.concatenate([ops.ones((1, n), "float64"), ops.cast(s[1:] != s[:-1], "float64")], axis=0)
        group = ops.cast(ops.cumsum(new, axis=0) - 1, "int32") + ops.arange(n, dtype="int32")[None, :] * k
        position = ops.broadcast_to(ops.cast(ops.arange(k), "float64")[:, None], (k, n))
        flat = ops.reshape(group, (-1,))
        sums = ops.segment_sum(ops.reshape(position, (-1,)), flat, num_segments=k * n)
        sizes = ops.segment_sum(ops.ones((k * n,), "float64"), flat, num_segments=k * n)
        mean = ops.reshape(ops.take(sums / ops.maximum(sizes, 1.0), flat), (k, n))
        return ops.take_along_axis(mean, ops.argsort(order, axis=0), axis=0)

    def result(self):
        valid = self.keys < 1.5
        m = ops.cast(valid, "float64")[:, None]
        ry, rp = self._ranks(self.y, valid), self._ranks(self.p, valid)
        total = ops.maximum(ops.sum(m), 1.0)
        dy = (ry - ops.sum(ry * m, axis=0) / total) * m
        dp = (rp - ops.sum(rp * m, axis=0) / total) * m
        scale = ops.sqrt(ops.sum(dy * dy, axis=0) * ops.sum(dp * dp, axis=0))
        r = ops.where(scale > 0, ops.sum(dy * dp, axis=0) / ops.maximum(scale, 1e-300), 0.0)
        value = ops.mean(r) if self.summarize else r
        return ops.cast(value, self.dtype)

    def get_config(self):
        return {**super().get_config(), "num_targets": self.num_targets, "sample_size": self.sample_size,
                "summarize": self.summarize}


class _ProfileMean(keras.metrics.Metric):
    """Mean of a per-(example, channel) value over profiles ``(batch, positions, channels)``.

    Subclasses define ``_values(y, p) -> (values, usable)``, both ``(batch, channels)``; the
    mean is over usable pairs, each weighted by its example's ``sample_weight``."""

    def __init__(self, name: str | None = None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", dtype="float64", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y, p = ops.cast(y_true, "float64"), ops.cast(y_pred, "float64")
        values, usable = self._values(y, p)
        w = ops.cast(usable, "float64")
        if sample_weight is not None:
            w = w * ops.reshape(ops.cast(sample_weight, "float64"), (-1, 1))
        self.total.assign_add(ops.sum(ops.where(usable, values, 0.0) * w))
        self.count.assign_add(ops.sum(w))

    def result(self):
        return ops.cast(self.total / ops.maximum(self.count, 1e-12), self.dtype)


@keras.saving.register_keras_serializable(package="basenji_tk")
class ProfileJSD(_ProfileMean):
    """Jensen-Shannon divergence (base 2) between observed ``y / sum(y)`` and predicted profiles
    (normalised over positions), mean over examples and channels with reads."""

    def __init__(self, name: str = "jsd", **kwargs):
        super().__init__(name=name, **kwargs)

    def _values(self, y, p):
        from basenji_tk.model.losses import jensen_shannon

        p = ops.maximum(p, 0.0)
        p = p / ops.maximum(ops.sum(p, axis=1, keepdims=True), 1e-300)
        n = ops.sum(y, axis=1)
        return jensen_shannon(y, n, p), n > 0


@keras.saving.register_keras_serializable(package="basenji_tk")
class ProfilePearsonR(_ProfileMean):
    """Pearson r across positions between observed and predicted profiles, mean over examples and
    channels (pairs where either profile is constant are left out)."""

    def __init__(self, name: str = "profile_pearsonr", **kwargs):
        super().__init__(name=name, **kwargs)

    def _values(self, y, p):
        dy = y - ops.mean(y, axis=1, keepdims=True)
        dp = p - ops.mean(p, axis=1, keepdims=True)
        vy, vp = ops.sum(dy * dy, axis=1), ops.sum(dp * dp, axis=1)
        usable = ops.logical_and(vy > 0, vp > 0)
        r = ops.sum(dy * dp, axis=1) / ops.sqrt(ops.maximum(vy * vp, 1e-300))
        return ops.clip(r, -1.0, 1.0), usable


@keras.saving.register_keras_serializable(package="basenji_tk")
class CountPearsonR(PearsonR):
    """Pearson r of per-example totals over positions, ``(batch, L, n) -> (batch, n)``, per channel
    across examples (mean over channels). Meaningful for heads that predict counts: where
    the predicted totals do not vary (relative spread below 1e-4, e.g. a softmax head whose
    totals are all 1 up to rounding) a channel reads 0, not a correlation with rounding noise."""

    def __init__(self, num_targets: int, summarize: bool = True, name: str = "count_pearsonr", **kwargs):
        super().__init__(num_targets, summarize=summarize, name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_pred.shape) == 3:
            y_true, y_pred = ops.sum(y_true, axis=1), ops.sum(y_pred, axis=1)
        super().update_state(y_true, y_pred, sample_weight)

    def result(self):
        s = self.sums
        count = ops.maximum(s["count"], 1.0)
        mean_p = s["sum_p"] / count
        spread = self._centred(s["sum_p"], s["sum_pp"]) / count  # variance of the predicted totals
        cov = s["sum_yp"] - s["sum_y"] * s["sum_p"] / count
        scale = ops.sqrt(self._centred(s["sum_y"], s["sum_yy"]) * self._centred(s["sum_p"], s["sum_pp"]))
        r = ops.clip(cov / ops.maximum(scale, keras.config.epsilon()), -1.0, 1.0)
        return self._finish(ops.where(spread > 1e-8 * mean_p * mean_p, r, 0.0))


# ----------------------------------------------------------------------------- by label type
LABEL_METRICS = {
    "binary": ("auprc", "auroc"),
    "regression": ("pearsonr", "r2", "rmse", "spearmanr"),
    "count": ("pearsonr", "r2", "rmse", "spearmanr"),
    "profile": ("jsd", "profile_pearsonr", "count_pearsonr"),
}
LOWER_IS_BETTER = frozenset({"loss", "rmse", "jsd", "mse", "masked_mse", "poisson", "bce", "multinomial_nll",
                             "profile_ce"})


def lower_is_better(monitor: str) -> bool:
    """Whether a logged name (``val_loss``, ``val_total_rmse``, ``val_profile_jsd``) improves downwards."""
    return any(monitor == m or monitor.endswith("_" + m) for m in LOWER_IS_BETTER)


METRIC_NAMES = ("auprc", "auroc", "pearsonr", "r2", "rmse", "spearmanr", "jsd", "profile_pearsonr", "count_pearsonr")


def get_metric(name: str, num_targets: int) -> keras.metrics.Metric:
    """A fresh streaming Keras metric called ``name`` (one of :data:`METRIC_NAMES`) for
    labels with ``num_targets`` channels (the last axis)."""
    n = int(num_targets)
    make = {"auprc": lambda: AUPRC(n), "auroc": lambda: AUROC(n), "pearsonr": lambda: PearsonR(n),
            "r2": lambda: RSquared(n), "rmse": lambda: keras.metrics.RootMeanSquaredError(name="rmse"),
            "spearmanr": lambda: SpearmanR(n), "jsd": ProfileJSD, "profile_pearsonr": ProfilePearsonR,
            "count_pearsonr": lambda: CountPearsonR(n)}
    if name not in make:
        raise InputError(f"unknown metric '{name}'; allowed: {', '.join(METRIC_NAMES)}")
    return make[name]()


def for_label(label_type: str, num_targets: int) -> list:
    """Fresh streaming Keras metrics for a head predicting a label of ``label_type`` with
    ``num_targets`` channels (the label's last axis); names as in :data:`LABEL_METRICS`."""
    if label_type not in LABEL_METRICS:
        raise InputError(f"unknown label_type '{label_type}'; allowed: {', '.join(LABEL_METRICS)}")
    return [get_metric(name, num_targets) for name in LABEL_METRICS[label_type]]
