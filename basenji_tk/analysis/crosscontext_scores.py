"""Scores of predictions in held-out contexts (:mod:`basenji_tk.analysis.crosscontext`, which
re-exports these): AUPRC (ChromDragoNN's primary metric) and AUROC per context and pooled, by
genome part (:func:`score_contexts`); AUPRC binned by the fraction of training contexts where a
region is accessible (:func:`binned_auprc`, Fig. 1E); the one-tailed Wilcoxon signed-rank test
over folds (:func:`fold_comparison`, Fig. 1D)."""

import logging

import numpy as np
import pandas as pd

from basenji_tk import stats
from basenji_tk.data.contexts import SPLITS
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

GENOME_PARTS = {"all": "all regions", "train": "training genome", "valid": "validation genome",
                "test": "held-out genome"}


def auprc_auroc(y, p) -> tuple[float, float]:
    """``(AUPRC, AUROC)`` of scores ``p (N,)`` against 0/1 labels ``y (N,)`` (:mod:`basenji_tk.stats`)."""
    return float(stats.auprc(y[:, None], p[:, None])[0]), float(stats.auroc(y[:, None], p[:, None])[0])


def genome_parts(region_split) -> list:
    """``all``, then each genome split present when there are several."""
    present = [s for s in SPLITS if (np.asarray(region_split) == s).any()]
    return ["all"] + (present if len(present) > 1 else [])


def score_contexts(labels, scores: dict, contexts, region_split, fold=0):
    """AUPRC and AUROC of each model per context and pooled over contexts, by genome part.

    ``labels (regions, Cq)`` 0/1; ``scores`` ``{model: (regions, Cq) or (regions,)}`` (a vector is the
    same score in every context, e.g. the mean baseline); ``contexts`` the Cq names;
    ``region_split (regions,)``. A (context, genome part) with no positives (or no negatives) is
    left out, of its pooled row too, with a log line. Returns ``(per_context, pooled, skipped)``
    DataFrames (columns model, fold, context, genome, regions, positives, auprc, auroc; pooled has
    ``contexts`` and ``pairs`` instead of ``context``) and the skipped ``(context, genome)``."""
    y = np.asarray(labels).astype(bool)
    region_split = np.asarray(region_split)
    rows, pooled, skipped = [], [], []
    for part in genome_parts(region_split):
        keep = np.ones(len(y), bool) if part == "all" else region_split == part
        yy = y[keep]
        ok = [j for j in range(y.shape[1]) if 0 < yy[:, j].sum() < len(yy)]
        for j in sorted(set(range(y.shape[1])) - set(ok)):
            skipped.append((contexts[j], part))
            log.info(f"context {contexts[j]} ({GENOME_PARTS[part]}): {int(yy[:, j].sum())} positives of {len(yy)} "
                     "regions; no AUPRC, left out")
        for model, s in scores.items():
            s = np.asarray(s, np.float32)
            s = np.broadcast_to(s[:, None], y.shape) if s.ndim == 1 else s
            ss = s[keep]
            for j in ok:
                auprc, auroc = auprc_auroc(yy[:, j], ss[:, j])
                rows.append(dict(model=model, fold=fold, context=contexts[j], genome=part, regions=len(yy),
                                 positives=int(yy[:, j].sum()), auprc=auprc, auroc=auroc))
            if ok:
                auprc, auroc = auprc_auroc(yy[:, ok].reshape(-1), ss[:, ok].reshape(-1))
                pooled.append(dict(model=model, fold=fold, genome=part, contexts=len(ok), regions=len(yy),
                                   pairs=yy[:, ok].size, positives=int(yy[:, ok].sum()), auprc=auprc, auroc=auroc))
    cols = ["model", "fold", "context", "genome", "regions", "positives", "auprc", "auroc"]
    pcols = ["model", "fold", "genome", "contexts", "regions", "pairs", "positives", "auprc", "auroc"]
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(pooled, columns=pcols), skipped


DEFAULT_EDGES = tuple(np.round(np.linspace(0, 1, 11), 10))


def binned_auprc(y, p, fraction, edges=DEFAULT_EDGES) -> pd.DataFrame:
    """AUPRC by the fraction of training contexts where the region is accessible (Fig. 1E).

    ``y (N,)`` 0/1 labels, ``p (N,)`` scores, ``fraction (N,)`` in [0, 1], one per (region,
    context) pair. Bins ``[edges[k], edges[k+1])`` (the last one closed). In a bin whose lower
    edge is at least 0.5 the AUPRC is computed with the CLOSED state as the positive class and
    ``1 - p`` as its score (the paper: "for bins > 0.5, AUPRC is computed on non-accessible
    regions"): there the rare, hard class is the closed one. Columns: bin_lo, bin_hi, regions
    (pairs in the bin), share (of all pairs: the gray bars), positive_class (accessible / closed),
    positives (of that class), auprc (NaN with one class only)."""
    y = np.asarray(y).astype(bool).reshape(-1)
    p = np.asarray(p, np.float64).reshape(-1)
    f = np.asarray(fraction, np.float64).reshape(-1)
    if not (len(y) == len(p) == len(f)):
        raise InputError(f"binned_auprc: y, p and fraction differ in length ({len(y)}, {len(p)}, {len(f)})")
    edges = np.asarray(edges, np.float64)
    if edges.ndim != 1 or len(edges) < 2 or (np.diff(edges) <= 0).any():
        raise InputError(f"binned_auprc: edges must be increasing, got {list(edges)}")
    k = np.clip(np.searchsorted(edges, f, side="right") - 1, 0, len(edges) - 2)
    inside = (f >= edges[0]) & (f <= edges[-1])
    rows = []
    for b in range(len(edges) - 1):
        m = inside & (k == b)
        closed = edges[b] >= 0.5
        yy, pp = (~y[m], 1 - p[m]) if closed else (y[m], p[m])
        ap = float(stats.auprc(yy[:, None], pp[:, None])[0]) if m.any() else float("nan")
        rows.append(dict(bin_lo=edges[b], bin_hi=edges[b + 1], regions=int(m.sum()),
                         share=float(m.sum() / max(1, len(y))), positive_class="closed" if closed else "accessible",
                         positives=int(yy.sum()), auprc=ap))
    return pd.DataFrame(rows)


def fold_comparison(a, b) -> dict:
    """One-tailed Wilcoxon signed-rank test that ``a`` is greater than ``b`` (Fig. 1D).

    ``a``, ``b``: ``(n_folds,)`` paired scores (e.g. pooled AUPRC per fold of two models). The exact
    distribution (scipy, ``alternative="greater"``); zero differences are dropped (Wilcoxon's
    rule). With n = 5 folds the smallest exact one-tailed p is 1/32 = 0.031, reached only when
    ``a`` beats ``b`` in every fold. Returns ``statistic`` (W+), ``p``, ``n`` and
    ``mean_difference`` (mean of a - b); p is NaN when every difference is zero."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    if len(a) != len(b) or not len(a):
        raise InputError(f"fold_comparison: expected two equal, non-empty lists of per-fold scores, got {len(a)} "
                         f"and {len(b)}")
    if np.isnan(a).any() or np.isnan(b).any():
        raise InputError("fold_comparison: a per-fold score is NaN")
    diff = a - b
    out = {"n": len(a), "mean_difference": float(diff.mean())}
    if not np.any(diff != 0):
        return out | {"statistic": float("nan"), "p": float("nan")}
    res = wilcoxon(a, b, alternative="greater", method="exact")
    return out | {"statistic": float(res.statistic), "p": float(res.pvalue)}
