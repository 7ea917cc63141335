"""Per-target accuracy of predictions held in memory: correlations, R², AUROC and AUPRC.

Conventions. ``y`` is the experiment and ``p`` the prediction. The numpy
functions take float arrays of shape ``(N, n)``: N values (bins pooled across
sequences) for each of n targets, and return one number per target, shape
``(n,)``. A 1-D array is read as a single target, ``(N,) -> (N, 1)``.

:func:`pearson_r`, :func:`r_squared`, :func:`spearman_r`, :func:`auroc` and
:func:`auprc` score a test split held in memory. ``r_squared`` is the
coefficient of determination of the prediction itself, ``1 - SS_res/SS_tot``;
it is *not* the squared correlation and it is negative for a prediction worse
than the experiment's mean. A split too large to hold streams through
:class:`basenji_tk.model.accumulator.PerTargetAccumulator`; the Keras metrics of
:mod:`basenji_tk.model.metrics` log the same numbers during training.

Undefined values are NaN and never warn: Pearson and Spearman r of a target
whose ``y`` or ``p`` is constant, R² of a target whose ``y`` is constant (a
constant prediction is fine: it scores 0 at the mean, less elsewhere), and
AUROC/AUPRC of a target whose labels are all one class.

Shared by every stage (plots, evaluation): numpy and scipy only, no Keras.
"""

import numpy as np
from scipy import stats

from basenji_tk.errors import InputError

__all__ = ["pearson_r", "r_squared", "spearman_r", "auroc", "auprc", "log2p1"]


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
