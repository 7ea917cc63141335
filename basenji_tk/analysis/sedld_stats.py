"""Statistics of the SED-LD regressions: chi^2 and p, TSS-distance bins, OLS, enrichment.

eQTL statistics become 1-df chi^2 (:func:`chi2_from_p`, :func:`chi2_from_z`,
:func:`chi2_from_beta_se`); variants get 0/1 TSS-distance bins (:func:`tss_indicators`, with
:func:`nearest_distance` to the nearest TSS); :func:`ols` fits ``chi2 ~ 1 + covariates`` with
classical, robust or gene-clustered standard errors; :func:`enrichment` gives the share of
significant eQTLs per quantile of a score. Used by :mod:`basenji_tk.analysis.sedld`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError

MIN_P = 1e-300  # p-values of 0 are read as this (chi2 about 1,366)
TSS_BINS = ((0, 500), (500, 2_000), (2_000, 8_000), (8_000, 32_000))
TSS_TERMS = ("tss_0_500", "tss_500_2k", "tss_2k_8k", "tss_8k_32k")


def chi2_from_p(p):
    """Two-sided p-values -> 1-df chi^2 (``scipy.stats.chi2.isf(p, 1)``); p = 0 is read as 1e-300."""
    from scipy import stats

    return stats.chi2.isf(np.clip(np.asarray(p, dtype=np.float64), MIN_P, 1.0), 1)


def chi2_from_z(z):
    """z-scores -> chi^2 = z^2."""
    return np.asarray(z, dtype=np.float64) ** 2


def chi2_from_beta_se(beta, se):
    """Effect and standard error -> chi^2 = (beta / se)^2."""
    return (np.asarray(beta, dtype=np.float64) / np.asarray(se, dtype=np.float64)) ** 2


def p_from_chi2(chi2):
    """1-df chi^2 -> two-sided p."""
    from scipy import stats

    return stats.chi2.sf(np.asarray(chi2, dtype=np.float64), 1)


def nearest_distance(pos, sites):
    """``|pos_j - nearest site|`` for each of ``pos`` ``(V,)`` given ``sites`` (any order); inf without sites."""
    pos = np.asarray(pos, dtype=np.int64)
    sites = np.unique(np.asarray(sites, dtype=np.int64))
    if not len(sites):
        return np.full(len(pos), np.inf)
    i = np.searchsorted(sites, pos)
    left = np.abs(pos - sites[np.clip(i - 1, 0, len(sites) - 1)])
    right = np.abs(sites[np.clip(i, 0, len(sites) - 1)] - pos)
    return np.minimum(left, right).astype(np.float64)


def tss_indicators(dist, bins=TSS_BINS) -> np.ndarray:
    """``(V, len(bins))`` 0/1: ``lo <= |dist| < hi`` for each TSS-distance bin ``(lo, hi)`` in bp."""
    d = np.abs(np.asarray(dist, dtype=np.float64))
    return np.stack([(d >= lo) & (d < hi) for lo, hi in bins], axis=1).astype(np.float64)


@dataclass
class OlsFit:
    """One OLS fit: per term (``'const'`` first) coefficient, se, t, p; fitted values ``(n,)``."""

    terms: list
    coef: np.ndarray
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    fitted: np.ndarray
    n: int
    r2: float
    dropped: list


def ols(y, covariates: dict, cov_type: str = "ols", groups=None) -> OlsFit:
    """Fit ``y ~ 1 + covariates`` with statsmodels OLS.

    ``y``: ``(n,)``; ``covariates``: ``{name: (n,)}`` in order. Covariates with no variation, or
    that are linear combinations of earlier ones (e.g. TSS-bin LD scores that sum to the LD score
    when every variant lies near a TSS), are dropped (reported in ``dropped``, their coefficients
    NaN). ``cov_type``: ``'ols'`` (classical standard errors), ``'hc1'`` (heteroscedasticity-robust)
    or ``'cluster'`` (clustered by ``groups``, ``(n,)`` labels).
    """
    import statsmodels.api as sm

    y = np.asarray(y, dtype=np.float64)
    names, cols, dropped = [], [], []
    for name, x in covariates.items():
        x = np.asarray(x, dtype=np.float64)
        if len(x) and np.ptp(x) > 0 and _adds_rank(cols, x):
            names.append(name)
            cols.append(x)
        else:
            dropped.append(name)
    design = np.column_stack([np.ones(len(y)), *cols]) if len(y) else np.zeros((0, 1 + len(cols)))
    model = sm.OLS(y, design)
    if cov_type == "ols":
        res = model.fit()
    elif cov_type == "hc1":
        res = model.fit(cov_type="HC1")
    elif cov_type == "cluster":
        codes = np.unique(np.asarray(groups), return_inverse=True)[1]
        res = model.fit(cov_type="cluster", cov_kwds={"groups": codes})
    else:
        raise InputError(f"ols: cov_type '{cov_type}' (expected ols, hc1 or cluster)")
    fit = {"const": 0, **{nm: i + 1 for i, nm in enumerate(names)}}
    terms = ["const", *covariates.keys()]
    pick = lambda arr: np.array([arr[fit[t]] if t in fit else np.nan for t in terms], dtype=np.float64)
    return OlsFit(terms=terms, coef=pick(res.params), se=pick(res.bse), t=pick(res.tvalues), p=pick(res.pvalues),
                  fitted=np.asarray(res.fittedvalues), n=len(y), r2=float(res.rsquared), dropped=dropped)


def _adds_rank(cols, x, tol: float = 1e-8) -> bool:
    """Whether ``x`` is not (numerically) in the span of a constant and ``cols``."""
    basis = np.column_stack([np.ones(len(x)), *cols])
    q, _ = np.linalg.qr(basis)
    resid = x - q @ (q.T @ x)
    return bool(np.linalg.norm(resid) > tol * max(np.linalg.norm(x - x.mean()), 1e-300))


def enrichment(score, significant, n_bins: int = 5, n_reference: int = 3) -> dict:
    """Proportion of significant rows per quantile of ``score`` relative to the lowest quantiles.

    ``score``, ``significant``: ``(n,)``. Rows are ranked by ``score`` (ties in input order) and cut
    into ``n_bins`` groups of (nearly) equal size, bin 1 the lowest. Returns arrays ``(n_bins,)``:
    ``bin``, ``n``, ``n_significant``, ``proportion``, ``relative`` (proportion divided by the
    mean proportion of bins 1..``n_reference``; NaN when that mean is 0).
    """
    score = np.asarray(score, dtype=np.float64)
    sig = np.asarray(significant, dtype=bool)
    n = len(score)
    order = np.argsort(score, kind="stable")
    bins = np.empty(n, dtype=np.int64)
    bins[order] = np.arange(n) * n_bins // max(n, 1)
    count = np.bincount(bins, minlength=n_bins)
    nsig = np.bincount(bins, weights=sig.astype(np.float64), minlength=n_bins)
    prop = np.divide(nsig, count, out=np.full(n_bins, np.nan), where=count > 0)
    ref = np.nanmean(prop[:n_reference]) if np.isfinite(prop[:n_reference]).any() else np.nan
    rel = prop / ref if ref and np.isfinite(ref) and ref > 0 else np.full(n_bins, np.nan)
    return {"bin": np.arange(1, n_bins + 1), "n": count, "n_significant": nsig.astype(np.int64),
            "proportion": prop, "relative": rel}
