"""Metrics: per-target accuracy of predicted coverage, peak calls, and Keras metrics.

Conventions. ``y`` is the experiment and ``p`` the prediction. The numpy
functions take float arrays of shape ``(N, n)``: N values (bins pooled across
sequences) for each of n targets, and return one number per target, shape
``(n,)``. A 1-D array is read as a single target, ``(N,) -> (N, 1)``.

Why each piece exists:

* :func:`pearson_r`, :func:`r_squared`, :func:`spearman_r`, :func:`auroc` and
  :func:`auprc` score a test split held in memory. ``r_squared`` is the
  coefficient of determination of the prediction itself, ``1 - SS_res/SS_tot``;
  it is *not* the squared correlation and it is negative for a prediction worse
  than the experiment's mean.
* :class:`PerTargetAccumulator` gives the same Pearson r and R² for a test set
  too large to hold: it streams batches through exact float64 moments and keeps
  a fixed-size uniform random sample for Spearman r and scatter plots.
* :func:`call_peaks` turns binned coverage into binary peak labels (a Poisson
  test against a MACS-style background), so that a coverage model can also be
  scored as a peak classifier with :func:`auroc` / :func:`auprc`.
* :class:`PearsonR` and :class:`RSquared` are Keras metrics that accumulate
  sums over a whole epoch or validation pass instead of averaging per-batch
  values, so that the number logged during training is the number the test
  split would give.
* :func:`for_label` gives the streaming Keras metrics of a head by its label type:
  binary :class:`AUPRC`, :class:`AUROC`; regression and count :class:`PearsonR`,
  :class:`RSquared`, ``rmse``, :class:`SpearmanR` (on a bounded, evenly spread sample);
  profile :class:`ProfileJSD`, :class:`ProfilePearsonR` (across positions, mean over
  examples and channels), :class:`CountPearsonR` (of per-example totals).
  :func:`lower_is_better` says which way a logged name (``val_total_rmse``) improves.

Undefined values are NaN and never warn: Pearson and Spearman r of a target
whose ``y`` or ``p`` is constant, R² of a target whose ``y`` is constant (a
constant prediction is fine: it scores 0 at the mean, less elsewhere), and
AUROC/AUPRC of a target whose labels are all one class.
"""

import keras
import numpy as np
from keras import ops
from scipy import stats

from basenji_tk.errors import InputError

__all__ = [
    "pearson_r", "r_squared", "spearman_r", "auroc", "auprc",
    "PerTargetAccumulator", "benjamini_hochberg", "call_peaks",
    "PearsonR", "RSquared", "AUPRC", "AUROC", "SpearmanR", "ProfileJSD", "ProfilePearsonR", "CountPearsonR",
    "for_label", "get_metric", "lower_is_better", "LOWER_IS_BETTER", "LABEL_METRICS", "METRIC_NAMES",
]


# ----------------------------------------------------------------------------- helpers
def _columns(x, name: str) -> np.ndarray:
    """``x`` as a float64 array of shape ``(N, n)``; a 1-D ``(N,)`` becomes ``(N, 1)``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise InputError(f"{name}: expected shape (N, n) or (N,), got {x.shape}")
    return x


def _pair(y, p, names=("y", "p")) -> tuple[np.ndarray, np.ndarray]:
    y, p = _columns(y, names[0]), _columns(p, names[1])
    if y.shape != p.shape:
        raise InputError(f"{names[0]} has shape {y.shape} but {names[1]} has shape {p.shape}")
    return y, p


def _constant(x: np.ndarray) -> np.ndarray:
    """``(N, n) -> (n,)`` bool: the column holds a single value (or no values)."""
    if x.shape[0] == 0:
        return np.ones(x.shape[1], dtype=bool)
    return x.max(axis=0) == x.min(axis=0)


def log2p1(x) -> np.ndarray:
    """``log2(max(x, 0) + 1)``, elementwise. Negative values (rare after
    scaling or in predictions) are clipped to 0 so that the log is defined."""
    return np.log2(np.maximum(np.asarray(x, dtype=np.float64), 0.0) + 1.0)


# ----------------------------------------------------------------------------- regression
def pearson_r(y, p) -> np.ndarray:
    """Pearson correlation per target: ``(N, n), (N, n) -> (n,)``; NaN where ``y`` or ``p`` is constant."""
    y, p = _pair(y, p)
    dy, dp = y - y.mean(axis=0), p - p.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (dy * dp).sum(axis=0) / np.sqrt((dy * dy).sum(axis=0) * (dp * dp).sum(axis=0))
    r = np.clip(r, -1.0, 1.0)
    r[_constant(y) | _constant(p)] = np.nan
    return r


def r_squared(y, p) -> np.ndarray:
    """Coefficient of determination per target, ``1 - SS_res / SS_tot``: ``(N, n), (N, n) -> (n,)``.

    NaN where ``y`` is constant (SS_tot is 0)."""
    y, p = _pair(y, p)
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - ss_res / ss_tot
    r2[_constant(y)] = np.nan
    return r2


def spearman_r(y, p) -> np.ndarray:
    """Spearman rank correlation per target (ties get average ranks): ``(N, n), (N, n) -> (n,)``."""
    y, p = _pair(y, p)
    if y.shape[0] == 0:
        return np.full(y.shape[1], np.nan)
    return pearson_r(stats.rankdata(y, axis=0), stats.rankdata(p, axis=0))


# ----------------------------------------------------------------------------- classification
def _labels_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    if labels.dtype != bool and not np.isin(labels, (0, 1)).all():
        raise InputError("labels: expected bool or 0/1 values")
    return _pair(labels.astype(np.float64), scores, names=("labels", "scores"))


def _one_class(labels: np.ndarray) -> np.ndarray:
    """``(N, n) -> (n,)`` bool: the target has no positives or no negatives."""
    positives = labels.sum(axis=0)
    return (positives == 0) | (positives == labels.shape[0])


def auroc(labels, scores) -> np.ndarray:
    """Area under the ROC curve per target: ``(N, n) bool, (N, n) -> (n,)``.

    Computed as the Mann–Whitney statistic on average ranks, which equals the
    trapezoidal area when scores tie. NaN where a target has only one class."""
    labels, scores = _labels_scores(labels, scores)
    n_pos = labels.sum(axis=0)
    n_neg = labels.shape[0] - n_pos
    ranks = stats.rankdata(scores, axis=0) if labels.shape[0] else scores
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * labels).sum(axis=0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[_one_class(labels)] = np.nan
    return auc


def auprc(labels, scores) -> np.ndarray:
    """Average precision per target: ``(N, n) bool, (N, n) -> (n,)``.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over thresholds k at the distinct score
    values, highest first (the step-wise area, not the trapezoidal one). Rows
    with tied scores enter together: every positive of a tie group is credited
    with the precision at the end of its group. NaN where a target has only one
    class."""
    labels, scores = _labels_scores(labels, scores)
    num = labels.shape[0]
    if num == 0:
        return np.full(labels.shape[1], np.nan)
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    lab = np.take_along_axis(labels, order, axis=0)
    rows = np.arange(num)[:, None]
    precision = np.cumsum(lab, axis=0) / (rows + 1)  # precision if the cut is after this row
    # Index of the last row of each row's tie group: a row closes its group
    # when the next score differs; fill every row with the next closing index.
    closes = np.ones_like(s, dtype=bool)
    closes[:-1] = s[:-1] != s[1:]
    end = np.where(closes, rows, num)
    end = np.minimum.accumulate(end[::-1], axis=0)[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (lab * np.take_along_axis(precision, end, axis=0)).sum(axis=0) / lab.sum(axis=0)
    ap[_one_class(labels)] = np.nan
    return ap


# ----------------------------------------------------------------------------- streaming
class _Moments:
    """Exact streamed moments of paired columns ``(N, n)``, float64.

    Batches are merged with Chan et al.'s parallel update: each batch's means,
    centred sums of squares and co-moment are computed around the batch's own
    mean and then combined, so nothing like ``sum(x**2) - sum(x)**2 / N`` ever
    cancels catastrophically (data with mean 1e4 and unit variance is fine)."""

    def __init__(self, num_targets: int):
        zeros = lambda: np.zeros(num_targets)  # noqa: E731
        self.count = 0
        self.mean_y, self.mean_p = zeros(), zeros()
        self.m2_y, self.m2_p, self.co = zeros(), zeros(), zeros()
        self.ss_res = zeros()  # sum of (y - p)**2: non-negative terms, summed directly
        self.min_y, self.max_y = np.full(num_targets, np.inf), np.full(num_targets, -np.inf)
        self.min_p, self.max_p = self.min_y.copy(), self.max_y.copy()

    def update(self, y: np.ndarray, p: np.ndarray) -> None:
        nb = y.shape[0]
        if nb == 0:
            return
        mb_y, mb_p = y.mean(axis=0), p.mean(axis=0)
        dy, dp = y - mb_y, p - mb_p
        na, n = self.count, self.count + nb
        delta_y, delta_p = mb_y - self.mean_y, mb_p - self.mean_p
        w = na * nb / n
        self.m2_y += (dy * dy).sum(axis=0) + delta_y * delta_y * w
        self.m2_p += (dp * dp).sum(axis=0) + delta_p * delta_p * w
        self.co += (dy * dp).sum(axis=0) + delta_y * delta_p * w
        self.mean_y += delta_y * nb / n
        self.mean_p += delta_p * nb / n
        self.ss_res += ((y - p) ** 2).sum(axis=0)
        self.min_y, self.max_y = np.minimum(self.min_y, y.min(axis=0)), np.maximum(self.max_y, y.max(axis=0))
        self.min_p, self.max_p = np.minimum(self.min_p, p.min(axis=0)), np.maximum(self.max_p, p.max(axis=0))
        self.count = n

    def pearson_r(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.clip(self.co / np.sqrt(self.m2_y * self.m2_p), -1.0, 1.0)
        r[(self.min_y >= self.max_y) | (self.min_p >= self.max_p)] = np.nan
        return r

    def r_squared(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - self.ss_res / self.m2_y
        r2[self.min_y >= self.max_y] = np.nan
        return r2


class PerTargetAccumulator:
    """Per-target Pearson r, R² and Spearman r over a stream of batches.

    ``update(y, p)`` takes ``(B, T, n)`` or ``(N, n)`` arrays (any leading
    shape; rows are ``reshape(-1, n)``). Pearson r and R² are exact: float64
    moments merged batch by batch (see :class:`_Moments`), both on raw values
    and on ``log2(max(x, 0) + 1)`` (negatives clipped to 0 before the log).
    They agree with :func:`pearson_r` / :func:`r_squared` on the concatenated
    data to rounding error.

    Spearman r needs ranks, which do not stream, so it is computed on a uniform
    random sample of at most ``sample_size`` rows, also returned by
    :meth:`sample` for scatter plots. Each row gets a random key from one
    ``numpy`` generator seeded with ``seed``, drawn in row order; the sample is
    the rows with the smallest keys, returned in stream order. Because the
    generator yields the same numbers however the draws are split, the sample
    depends only on the seed and the rows, not on the batch sizes. It holds
    ``2 * sample_size * n`` float32 values: lower ``sample_size`` for
    thousands of targets.
    """

    def __init__(self, num_targets: int, sample_size: int = 200_000, seed: int = 0):
        if num_targets < 1:
            raise InputError(f"num_targets must be >= 1, got {num_targets}")
        if sample_size < 0:
            raise InputError(f"sample_size must be >= 0, got {sample_size}")
        self.num_targets, self.sample_size = int(num_targets), int(sample_size)
        self._raw, self._log = _Moments(self.num_targets), _Moments(self.num_targets)
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._rows = np.empty(0, dtype=np.int64)
        self._y = np.empty((0, self.num_targets), dtype=np.float32)
        self._p = np.empty((0, self.num_targets), dtype=np.float32)

    @property
    def count(self) -> int:
        """Rows seen so far."""
        return self._raw.count

    def update(self, y, p) -> None:
        """Add a batch: ``y`` and ``p`` of the same shape ``(..., n)``."""
        y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
        if y.shape != p.shape or y.shape[-1:] != (self.num_targets,):
            raise InputError(f"expected y and p of one shape (..., {self.num_targets}), "
                             f"got {y.shape} and {p.shape}")
        y, p = y.reshape(-1, self.num_targets), p.reshape(-1, self.num_targets)
        first = self.count
        self._raw.update(y, p)
        self._log.update(log2p1(y), log2p1(p))
        self._keep(y, p, first)

    def _keep(self, y: np.ndarray, p: np.ndarray, first: int) -> None:
        keys = self._rng.random(y.shape[0])
        if self.sample_size == 0:
            return
        if self._keys.size >= self.sample_size:  # full: only keys below the largest kept can enter
            take = np.flatnonzero(keys < self._keys.max())
            if take.size == 0:
                return
            keys, y, p = keys[take], y[take], p[take]
            rows = first + take
        else:
            rows = first + np.arange(y.shape[0])
        keys = np.concatenate([self._keys, keys])
        rows = np.concatenate([self._rows, rows])
        ys = np.concatenate([self._y, y.astype(np.float32)])
        ps = np.concatenate([self._p, p.astype(np.float32)])
        if keys.size > self.sample_size:
            keep = np.sort(np.argpartition(keys, self.sample_size - 1)[:self.sample_size])
            keys, rows, ys, ps = keys[keep], rows[keep], ys[keep], ps[keep]
        self._keys, self._rows, self._y, self._p = keys, rows, ys, ps

    def pearson_r(self, log: bool = False) -> np.ndarray:
        """``(n,)`` exact Pearson r over all rows; on ``log2(x+1)`` values if ``log``."""
        return (self._log if log else self._raw).pearson_r()

    def r_squared(self, log: bool = False) -> np.ndarray:
        """``(n,)`` exact R² over all rows; on ``log2(x+1)`` values if ``log``."""
        return (self._log if log else self._raw).r_squared()

    def spearman_r(self) -> np.ndarray:
        """``(n,)`` Spearman r on the sample (exact while ``count <= sample_size``)."""
        return spearman_r(*self.sample())

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The sampled rows ``(y, p)``, each ``(min(count, sample_size), n)`` float32, in stream order."""
        order = np.argsort(self._rows, kind="stable")
        return self._y[order], self._p[order]


# ----------------------------------------------------------------------------- peaks
def _bh_columns(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values down each column of ``(m, n)`` p-values."""
    m = p.shape[0]
    if m == 0:
        return p.copy()
    order = np.argsort(p, axis=0, kind="stable")
    ranked = np.take_along_axis(p, order, axis=0) * m / np.arange(1, m + 1)[:, None]
    ranked = np.minimum.accumulate(ranked[::-1], axis=0)[::-1]  # enforce monotone q
    q = np.empty_like(ranked)
    np.put_along_axis(q, order, np.minimum(ranked, 1.0), axis=0)
    return q


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values): ``(m,) -> (m,)``.

    ``q_(i) = min_{j >= i} p_(j) m / j`` over p-values sorted ascending, capped
    at 1; q is monotone in p."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"pvalues: expected a 1-D array, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise InputError("pvalues: expected values in [0, 1]")
    return _bh_columns(p[:, None])[:, 0]


def _window_mean(x: np.ndarray, half: int) -> np.ndarray:
    """Mean of ``x[:, t-half : t+half+1]`` along axis 1 of ``(S, T, n)``, clipped at the ends."""
    num = x.shape[1]
    csum = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)
    lo = np.clip(np.arange(num) - half, 0, num)
    hi = np.clip(np.arange(num) + half + 1, 0, num)
    return (csum[:, hi] - csum[:, lo]) / (hi - lo)[None, :, None]


def call_peaks(counts, fdr: float = 0.01, local_window: int = 5, min_lambda: float | None = None) -> np.ndarray:
    """Call enriched bins: ``(S, T, n)`` coverage -> ``(S, T, n)`` bool.

    ``counts`` holds binned coverage for S sequences of T bins and n targets;
    values are rounded to non-negative integers for a Poisson test. For each
    target, in the manner of MACS:

    * ``lambda_global`` is the mean count over all bins of all sequences;
    * ``lambda_local`` is the mean count of the ``2 * local_window + 1`` bins
      centred on the bin, within its sequence (fewer at the ends);
      ``local_window=0`` turns it off (a window of the bin alone would make
      every bin its own background);
    * ``lambda = max(lambda_global, lambda_local, min_lambda, 1e-6)``;
    * ``p = P(X >= x | lambda)`` for ``X ~ Poisson(lambda)``;
    * p-values are Benjamini–Hochberg adjusted across all the target's bins,
      and a bin is a peak where ``q <= fdr`` and ``x > 0``.

    The local window includes the bin itself (MACS's local windows also span
    the candidate). A lone strong bin therefore raises its own background only
    by ``x / (2 * local_window + 1)`` and stays detectable, while a bin sitting
    on a locally raised background is judged against that background. The
    global mean is the floor, so quiet regions do not turn small counts into
    peaks. A broad domain much wider than the window raises its own local
    background and may be called only at its edges, or not at all.
    """
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim != 3:
        raise InputError(f"counts: expected shape (S, T, n), got {x.shape}")
    if local_window < 0:
        raise InputError(f"local_window must be >= 0, got {local_window}")
    if not 0 <= fdr <= 1:
        raise InputError(f"fdr must be in [0, 1], got {fdr}")
    x = np.maximum(np.rint(x), 0.0)
    if x.size == 0:
        return np.zeros(x.shape, dtype=bool)
    lam = np.broadcast_to(x.mean(axis=(0, 1)), x.shape)
    if local_window > 0:
        lam = np.maximum(lam, _window_mean(x, int(local_window)))
    lam = np.maximum(lam, max(1e-6, min_lambda or 0.0))
    pvalues = stats.poisson.sf(x - 1, lam)
    q = _bh_columns(pvalues.reshape(-1, x.shape[2])).reshape(x.shape)
    return (q <= fdr) & (x > 0)


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
    :func:`auprc` / :func:`auroc` on the same data."""

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
