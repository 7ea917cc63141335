"""Per-target scores of the outputs that are not binned tracks, by output kind.

:mod:`basenji_tk.analysis.evaluate` streams binned tracks through an accumulator; the outputs
here have few numbers per record (one value, class probabilities, a short profile), so a split's
``y`` (the dataset label) and ``p`` (the prediction) are kept whole and scored at the end. Each
function takes ``y`` and ``p`` of one shape, ``(N, n)`` (N records, n targets) or ``(N, L, n)``
for profiles, and returns ``{column: (n,) array}``, NaN where a score is undefined:

* ``value`` / ``total`` (regression): ``pearsonr``, ``spearmanr``, ``r2`` (``1 - SS_res/SS_tot``),
  ``rmse``, and ``count``;
* ``probability`` (binary labels): ``auroc``, ``auprc``, ``positives`` and ``count``;
* ``profile``: ``jsd`` (Jensen-Shannon divergence, base 2, of the observed profile normalised over
  positions and the predicted one) and ``profile_pearsonr`` (Pearson r across positions), each the
  mean over records with reads, plus ``count_pearsonr`` (Pearson r of the observed totals with the
  predicted totals; NaN for a softmax profile, whose totals are all 1) and ``count``.

The numbers come from :mod:`basenji_tk.model.metrics` (the same definitions training logs) and
scikit-learn.
"""

import numpy as np

from basenji_tk.errors import InputError


def _flat(y, p):
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise InputError(f"scores: labels {y.shape} and predictions {p.shape} differ in shape")
    if y.ndim == 1:
        y, p = y[:, None], p[:, None]
    return y.reshape(len(y), -1), p.reshape(len(p), -1)


def value_columns(y, p) -> dict:
    """Regression scores of one value per record and target."""
    from sklearn.metrics import mean_squared_error

    from basenji_tk import stats

    y, p = _flat(y, p)
    rmse = np.sqrt(mean_squared_error(y, p, multioutput="raw_values")) if len(y) else np.full(y.shape[1], np.nan)
    return {"pearsonr": stats.pearson_r(y, p), "spearmanr": stats.spearman_r(y, p),
            "r2": stats.r_squared(y, p), "rmse": rmse, "count": np.full(y.shape[1], len(y))}


def probability_columns(y, p) -> dict:
    """Classifier scores of probabilities against 0/1 labels (values above 0.5 count as 1)."""
    from basenji_tk import stats

    y, p = _flat(y, p)
    labels = y > 0.5
    return {"auroc": stats.auroc(labels, p), "auprc": stats.auprc(labels, p),
            "positives": labels.sum(axis=0), "count": np.full(y.shape[1], len(y))}


def profile_columns(y, p) -> dict:
    """Profile scores per channel of ``(N, L, n)`` observed counts and predicted profiles."""
    from basenji_tk import stats
    from basenji_tk.model import metrics

    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if y.shape != p.shape or y.ndim != 3:
        raise InputError(f"scores: profiles must be (records, positions, channels), got {y.shape} and {p.shape}")
    n = y.shape[2]
    jsd, pearson = np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        for out, make in ((jsd, metrics.ProfileJSD), (pearson, metrics.ProfilePearsonR)):
            m = make()
            m.update_state(y[:, :, k:k + 1], p[:, :, k:k + 1])
            out[k] = float(m.result()) if float(m.count.numpy()) > 0 else np.nan
    totals_y, totals_p = y.sum(axis=1), p.sum(axis=1)
    spread = totals_p.std(axis=0) > 1e-4 * np.abs(totals_p.mean(axis=0))
    counts = np.where(spread, stats.pearson_r(totals_y, totals_p), np.nan)
    return {"jsd": jsd, "profile_pearsonr": pearson, "count_pearsonr": counts, "count": np.full(n, len(y))}


COLUMNS = {"value": value_columns, "total": value_columns, "probability": probability_columns,
           "profile": profile_columns}


def columns(kind: str, y, p) -> dict:
    """The score columns of an output of ``kind`` (not ``binned``: see :mod:`basenji_tk.analysis.evaluate`)."""
    if kind not in COLUMNS:
        raise ValueError(f"no per-record scores for outputs of kind {kind!r}")
    return COLUMNS[kind](y, p)
