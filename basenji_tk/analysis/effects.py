"""Variant effect statistics, one set per kind of model output (``sed.py``).

Every statistic compares a window's reference prediction ``r`` with the alternative allele's
``a`` and is signed alternative - reference. Per output kind (:data:`STATS`), per target:

* ``binned`` tracks ``(bins, targets)``, at a gene's TSS bins ``b`` (Basenji's SED):

  - ``SED``     = sum over the gene's TSSs of ``a[b] - r[b]``;
  - ``logSED``  = ``log2(sum a[b] + 1) - log2(sum r[b] + 1)`` over the same bins;
  - ``SAD``     = sum over all bins of ``a - r``;
  - ``maxlog2`` = max over bins of ``|log2(a + 1) - log2(r + 1)|``;

* ``profile`` ``(positions, targets)``:

  - ``profile_jsd`` = Jensen-Shannon divergence (base 2, in [0, 1]) between the ref and alt
    profiles, each normalised over positions: divided by its sum for probabilities or counts
    (a ``softmax_positions`` head already sums to 1), softmax-ed for a linear (logit) output;
  - a profile of counts (not a softmax, not logits) also gives ``total_diff`` and
    ``log_total_ratio`` (below) of its sum over positions;

* ``total`` ``(targets,)``, a count head: ``total_diff`` = ``a - r`` (in the head's own units: a
  head trained on log counts gives a log difference) and ``log_total_ratio`` =
  ``log2(a + 1) - log2(r + 1)``;
* ``value`` ``(targets,)``, e.g. MPRA activity: ``diff`` = ``a - r`` and ``log_ratio`` =
  ``log2((a + eps) / (r + eps))``;
* ``probability`` ``(targets,)``: ``diff``, ``log_ratio`` and ``logit_diff`` =
  ``logit(a) - logit(r)`` (the change of log-odds), probabilities clipped to ``[eps, 1 - eps]``.

Negative predictions count as 0 in logarithms; ``eps`` is :data:`EPS`. Everything is computed
in float64 from the model's float32 predictions.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6  # added to values and probabilities in log ratios; the clip of probabilities for logits
BINNED = ("SED", "logSED", "SAD", "maxlog2")
TOTALS = ("total_diff", "log_total_ratio")
STATS = {"binned": BINNED, "profile": ("profile_jsd",), "total": TOTALS, "value": ("diff", "log_ratio"),
         "probability": ("diff", "log_ratio", "logit_diff")}
_NORMALISED = ("softmax",)  # activations whose profile sums to 1 over positions
_LOGITS = (None, "linear")


def stat_names(kind: str, activation: str | None = None) -> tuple[str, ...]:
    """The statistics of an output of ``kind`` whose final activation is ``activation``."""
    if kind == "profile" and activation not in _NORMALISED and activation not in _LOGITS:
        return TOTALS + STATS["profile"]  # a profile of counts: its total changes too
    return STATS[kind]


def sed_stats(ref: np.ndarray, alt: np.ndarray, tss_bins: np.ndarray) -> np.ndarray:
    """Statistics of a window's pairs: ``ref`` ``(bins, targets)`` and ``alt`` ``(pairs, bins,
    targets)`` predictions -> ``(pairs, len(BINNED), targets)``, computed in float64."""
    ref, alt = ref.astype(np.float64), alt.astype(np.float64)
    r_tss, a_tss = ref[tss_bins].sum(axis=0), alt[:, tss_bins].sum(axis=1)
    log_r, log_a = np.log2(np.maximum(ref, 0) + 1), np.log2(np.maximum(alt, 0) + 1)
    return np.stack([a_tss - r_tss,
                     np.log2(np.maximum(a_tss, 0) + 1) - np.log2(np.maximum(r_tss, 0) + 1),
                     (alt - ref).sum(axis=1),
                     np.abs(log_a - log_r).max(axis=1)], axis=1)


def total_stats(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """``ref`` ``(targets,)``, ``alt`` ``(pairs, targets)`` -> ``(pairs, 2, targets)``: total_diff, log_total_ratio."""
    ref, alt = ref.astype(np.float64), alt.astype(np.float64)
    return np.stack([alt - ref, np.log2(np.maximum(alt, 0) + 1) - np.log2(np.maximum(ref, 0) + 1)], axis=1)


def value_stats(ref: np.ndarray, alt: np.ndarray, probability: bool = False) -> np.ndarray:
    """``ref`` ``(targets,)``, ``alt`` ``(pairs, targets)`` -> ``(pairs, S, targets)``: diff, log_ratio
    (and logit_diff for ``probability``)."""
    ref, alt = ref.astype(np.float64), alt.astype(np.float64)
    out = [alt - ref, np.log2((np.maximum(alt, 0) + EPS) / (np.maximum(ref, 0) + EPS))]
    if probability:
        r, a = np.clip(ref, EPS, 1 - EPS), np.clip(alt, EPS, 1 - EPS)
        out.append((np.log(a) - np.log1p(-a)) - (np.log(r) - np.log1p(-r)))
    return np.stack(out, axis=1)


def _distribution(x: np.ndarray, activation: str | None) -> np.ndarray:
    """``(..., positions, targets)`` -> the same normalised to sum 1 over positions."""
    if activation in _LOGITS:
        from scipy.special import softmax

        return softmax(x, axis=-2)
    x = np.maximum(x, 0)
    total = x.sum(axis=-2, keepdims=True)
    return np.divide(x, total, out=np.full_like(x, 1.0 / x.shape[-2]), where=total > 0)  # all zero: uniform


def profile_stats(ref: np.ndarray, alt: np.ndarray, activation: str | None = "softmax") -> np.ndarray:
    """``ref`` ``(positions, targets)``, ``alt`` ``(pairs, positions, targets)`` -> ``(pairs, S, targets)``
    with the statistics :func:`stat_names` gives a profile of ``activation``."""
    from scipy.spatial.distance import jensenshannon

    ref, alt = ref.astype(np.float64), alt.astype(np.float64)
    p, q = _distribution(ref, activation), _distribution(alt, activation)
    jsd = jensenshannon(np.broadcast_to(p, q.shape), q, base=2, axis=1) ** 2  # scipy gives the distance
    out = [jsd]
    if len(stat_names("profile", activation)) > 1:
        out = list(total_stats(ref.sum(axis=0), alt.sum(axis=1)).transpose(1, 0, 2)) + out
    return np.stack(out, axis=1)


def effect_stats(kind: str, activation: str | None, ref: np.ndarray, alt: np.ndarray, tss_bins=None) -> np.ndarray:
    """The statistics of one output for a window: ``ref`` (the output's shape) and ``alt`` ``(pairs,
    ...)`` -> ``(pairs, len(stat_names(kind, activation)), targets)``; ``tss_bins`` for binned outputs."""
    if kind == "binned":
        return sed_stats(ref, alt, tss_bins)
    if kind == "profile":
        return profile_stats(ref, alt, activation)
    if kind == "total":
        return total_stats(ref, alt)
    return value_stats(ref, alt, probability=kind == "probability")
