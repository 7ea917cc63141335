"""SED-LD: do a model's variant effect predictions explain eQTL statistics beyond LD?

The analysis of Kelley et al. 2018 (Genome Research, Figure 5): an eQTL's chi-squared
statistic grows with the LD score of its variant (the more variants it tags, the more likely it
tags a causal one). If the model's SNP expression differences (SED, from ``sed.py``) point at the
causal variants, the *signed LD profile* of SED adds to that::

    LD score          l_j        = sum_i r_ij^2                (i within --ld_window of j)
    signed LD profile SED-LD_jg  = sum_i r_ij * SED_ig         (i over gene g's scored variants)
    annotation LD     l_j(A)     = sum_i r_ij^2 * 1[i in A]    (A: a TSS-distance bin)

and chi2_jg ~ 1 + l_j + |SED-LD_jg| (+ TSS-distance LD scores) is fitted by OLS over an
LD-pruned set of (variant, gene) pairs, one regression per tissue/target.

Building blocks are small functions on arrays. Shapes: ``V`` variants, ``N`` samples, ``P``
SNP-gene pairs, ``T`` targets, ``G`` variants of one gene. A *standardized dosage matrix* ``X``
is ``(V, N)`` with each row centred and scaled to unit (population) variance, so that
``r_ij = X_i . X_j / N`` is the Pearson correlation; missing genotypes are mean-imputed (0 after
standardizing) and monomorphic rows are all 0. Functions taking ``X`` accept an ndarray or a
:class:`Standardized` view (anything where ``X[a:b]`` and ``X[index_array]`` give float rows and
``X.shape`` is ``(V, N)``), so a chromosome's LD never needs a ``(V, V)`` matrix: r is computed
in blocks of rows against the rows within the window. LD functions take one chromosome at a
time, with ``pos`` sorted ascending.

Also here: reading ``sed.h5`` (:func:`read_sed_h5`), genotype VCFs (:func:`read_genotypes`) and
eQTL tables (:func:`read_eqtl`), the pipeline of ``sed_ld.py`` (:func:`prepare`,
:func:`analyze`, :func:`write_outputs`, :func:`run_sed_ld`) and the cross-validated classifier of
``gwas_classify.py`` (:func:`variant_features`, :func:`classify_cv`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from basenji_tk import files
from basenji_tk.io import vcf as vcfio
from basenji_tk.errors import InputError
from basenji_tk.io.genome import normalize_chrom

log = logging.getLogger("basenji_tk")

DEFAULT_LD_WINDOW = 1_000_000
DEFAULT_PRUNE_R2 = 0.5
# Without a significance column an eQTL counts as significant at p < 1e-5: a common per-variant
# cis-eQTL threshold for a few hundred samples (about 1e-3 after testing ~100 cis variants per gene).
DEFAULT_SIG_P = 1e-5
DEFAULT_MIN_MAF = 0.01
MIN_P = 1e-300  # p-values of 0 are read as this (chi2 about 1,366)
TSS_BINS = ((0, 500), (500, 2_000), (2_000, 8_000), (8_000, 32_000))
TSS_TERMS = ("tss_0_500", "tss_500_2k", "tss_2k_8k", "tss_8k_32k")


def regression_models(options) -> dict:
    """``{model name: regressors besides the intercept}``; ``ld_gene`` joins the baseline with ``options.gene_ld``."""
    base = ("ld", "ld_gene") if options.gene_ld else ("ld",)
    return {"ld": base, "ld+sed": (*base, "sed_ld"), "ld+tss": (*base, *TSS_TERMS),
            "ld+tss+sed": (*base, *TSS_TERMS, "sed_ld")}


COMPARISONS = (("ld+sed", "ld"), ("ld+tss+sed", "ld+tss"))  # (with |SED-LD|, without)
# Standard errors: rows of one gene share its expression phenotype and LD, so they are not
# independent; "gene" (the default) clusters them by gene. "ols" treats rows as independent.
SE_TYPES = {"gene": "cluster", "ols": "ols", "hc1": "hc1"}
# --sed_scale: "gene" divides each gene's SED by its root mean square over the gene's variants, so
# |SED-LD| says where in a gene the predicted effect lies, not how large the gene's predictions run;
# "none" keeps the raw statistic (the paper's definition).
SED_SCALES = ("gene", "none")
SED_STATS = ("SED", "logSED", "SAD", "maxlog2")
MISSING_VALUES = {"", "na", "nan", "none", "null", "."}


# ============================================================================ genotypes
@dataclass
class Genotypes:
    """Alternative-allele dosages of a VCF, one row per (record, ALT), sorted by (chrom, pos).

    ``dosage`` is ``(V, N)`` int8: 0..ploidy ALT copies, -1 for a missing call. ``chrom`` holds
    names after :func:`normalize_chrom`; ``pos`` is 0-based.
    """

    samples: list
    chrom: np.ndarray
    pos: np.ndarray
    ids: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    dosage: np.ndarray
    counts: Counter = field(default_factory=Counter)

    def __len__(self):
        return len(self.pos)


def _gt_dosage(alleles, k):
    """ALT-``k`` copies in one call's allele indices; -1 when any allele is missing."""
    if not alleles or any(a is None for a in alleles):
        return -1
    return sum(1 for a in alleles if a == k)


def read_sample_list(path) -> list:
    """Sample ids, one per line (first whitespace-separated word; '#' lines skipped)."""
    try:
        with open(path) as fh:
            out = [line.split()[0] for line in fh if line.strip() and not line.startswith("#")]
    except OSError as err:
        raise InputError(f"{path}: cannot read the sample list ({err.strerror})") from None
    if not out:
        raise InputError(f"{path}: no sample ids (expected one id per line)")
    return out


def read_genotypes(path, samples=None, chroms=None, regions=None, progress: bool = False) -> Genotypes:
    """ALT dosages from the GT field of a VCF/BCF (phased or not; plain, bgzip or plain gzip).

    ``samples``: ids to keep (default all); ids the VCF lacks are counted in
    ``counts['samples_not_found']``. ``chroms``: normalized chromosome names to keep (default
    all). ``regions``: optional ``{normalized chrom: (start, end)}`` (0-based, half-open) to keep,
    fetched through the index when there is one. Multi-allelic records give one row per ALT
    (dosage of that ALT). A call with any allele missing is missing (-1) and counted in
    ``counts['missing_calls']``; callers mean-impute it (:func:`standardize`).
    """
    with vcfio.open_vcf(path, "VCF/BCF") as vcf:
        return _read_genotypes(vcf, path, samples, chroms, regions, progress)


def _read_genotypes(vcf, path, samples, chroms, regions, progress) -> Genotypes:
    counts = Counter()
    header_samples = list(vcf.header.samples)
    if not header_samples:
        raise InputError(f"{path}: no sample columns (expected genotypes in a GT field)")
    if samples is not None:
        present = set(header_samples)
        keep = [s for s in dict.fromkeys(samples) if s in present]
        counts["samples_not_found"] = len(set(samples)) - len(keep)
        if not keep:
            raise InputError(f"{path}: none of the {len(set(samples)):,} requested samples is in the VCF "
                             f"(it has {', '.join(header_samples[:3])} ...)")
        if counts["samples_not_found"]:
            log.warning(f"warning: {counts['samples_not_found']:,} requested samples are not in {path}")
        vcf.subset_samples(keep)
        header_samples = list(vcf.header.samples)  # in the VCF's order
    wanted = None if chroms is None else set(chroms)
    contigs = list(vcf.header.contigs)
    if regions is not None:
        wanted = set(regions) if wanted is None else wanted & set(regions)

    indexed = wanted is not None and bool(contigs) and vcf.index is not None

    def records():
        if indexed:  # only the wanted contigs
            for c in contigs:
                if normalize_chrom(c) in wanted:
                    span = regions.get(normalize_chrom(c)) if regions else None
                    try:
                        yield from (vcf.fetch(c, max(0, span[0]), span[1]) if span else vcf.fetch(c))
                    except ValueError:  # a header contig without records in the index
                        continue
            return
        yield from vcf

    rows, dos = [], []
    seen_chroms = Counter()
    it = records()
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="genotypes", unit=" records", leave=False)
    cache = {}
    line = 0
    try:
        for rec in it:
            line += 1
            counts["records"] += 1
            chrom = normalize_chrom(rec.chrom)
            seen_chroms[chrom] += 1
            if wanted is not None and chrom not in wanted:
                continue
            if regions is not None and not regions[chrom][0] <= rec.pos - 1 < regions[chrom][1]:
                continue
            if not rec.alts:
                counts["no_alt"] += 1
                continue
            if "GT" not in rec.format:
                counts["no_gt"] += 1
                continue
            calls = [s.allele_indices for s in rec.samples.values()]
            miss = sum(1 for a in calls if not a or None in a)
            counts["missing_calls"] += miss
            if len(rec.alts) > 1:
                counts["multiallelic_records"] += 1
            vid = rec.id if rec.id not in (None, ".") else None
            for k, alt in enumerate(rec.alts, start=1):
                d = []
                for a in calls:
                    key = (a, k)
                    v = cache.get(key)
                    if v is None:
                        v = cache[key] = _gt_dosage(a, k)
                    d.append(v)
                dos.append(np.array(d, dtype=np.int8))
                ref = (rec.ref or "").upper()
                rows.append((chrom, rec.pos - 1, vid or f"{rec.chrom}:{rec.pos}:{rec.ref}:{alt}", ref, alt.upper()))
    except (OSError, ValueError) as err:  # the line's number is known when read from the start
        raise InputError(vcfio.bad_record(path, None if indexed else line + 1, err)) from None
    counts["variants"] = len(rows)
    counts["chroms_seen"] = len(seen_chroms)
    n = len(header_samples)
    if rows:
        order = sorted(range(len(rows)), key=lambda i: (rows[i][0], rows[i][1]))
        rows = [rows[i] for i in order]
        dosage = np.stack([dos[i] for i in order])
    else:
        dosage = np.zeros((0, n), dtype=np.int8)
    geno = Genotypes(samples=header_samples, chrom=np.array([r[0] for r in rows], dtype=object),
                     pos=np.array([r[1] for r in rows], dtype=np.int64),
                     ids=np.array([r[2] for r in rows], dtype=object),
                     ref=np.array([r[3] for r in rows], dtype=object), alt=np.array([r[4] for r in rows], dtype=object),
                     dosage=dosage, counts=counts)
    geno.counts["vcf_chroms"] = sorted(set(seen_chroms) | {normalize_chrom(c) for c in contigs})  # type: ignore
    return geno


def dosage_stats(dosage):
    """Mean and population standard deviation of each row of mean-imputed dosages.

    ``dosage``: ``(V, N)`` with -1 (int) or NaN (float) for missing. Returns ``(mean, sd)``, each
    ``(V,)`` float64; a row with no call has mean 0 and sd 0.
    """
    d = np.asarray(dosage)
    miss = np.isnan(d) if d.dtype.kind == "f" else d < 0
    x = np.where(miss, 0.0, d.astype(np.float64))
    n_obs = (~miss).sum(axis=1)
    mean = np.divide(x.sum(axis=1), n_obs, out=np.zeros(len(d)), where=n_obs > 0)
    dev = np.where(miss, 0.0, x - mean[:, None])
    sd = np.sqrt((dev * dev).sum(axis=1) / max(d.shape[1], 1))
    return mean, sd


def standardize(dosage, mean=None, sd=None) -> np.ndarray:
    """``(V, N)`` dosages -> float32 rows with mean 0 and variance 1 (missing -> 0, i.e. the mean).

    Rows with sd 0 (monomorphic, or no calls) come back all 0. ``mean``/``sd`` from
    :func:`dosage_stats` may be passed to skip recomputing them.
    """
    d = np.asarray(dosage)
    if mean is None or sd is None:
        mean, sd = dosage_stats(d)
    miss = np.isnan(d) if d.dtype.kind == "f" else d < 0
    inv = np.divide(1.0, sd, out=np.zeros_like(sd, dtype=np.float64), where=sd > 0)
    x = (d.astype(np.float32) - mean[:, None].astype(np.float32)) * inv[:, None].astype(np.float32)
    x[miss] = 0.0
    x[sd == 0] = 0.0
    return x


class Standardized:
    """A lazily standardized view of int8 dosages: ``X[idx]`` gives float32 rows (see :func:`standardize`)."""

    def __init__(self, dosage, mean=None, sd=None):
        self.dosage = dosage
        if mean is None or sd is None:
            mean, sd = dosage_stats(dosage)
        self.mean, self.sd = mean, sd
        self.shape = dosage.shape

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, idx):
        return standardize(self.dosage[idx], self.mean[idx], self.sd[idx])


def _n(X) -> int:
    return int(X.shape[1])


def ld_r(Xa, Xb, n: int | None = None) -> np.ndarray:
    """Correlations ``(A, B)`` float32 between standardized rows ``Xa`` ``(A, N)`` and ``Xb`` ``(B, N)``."""
    n = n or Xa.shape[1]
    r = np.asarray(Xa, dtype=np.float32) @ np.asarray(Xb, dtype=np.float32).T
    r *= np.float32(1.0 / n)
    return r


def _band(pos_rows, pos_cols, window):
    """``(A, B)`` bool: ``|pos_rows[a] - pos_cols[b]| <= window``; ``pos_cols`` sorted."""
    lo = np.searchsorted(pos_cols, pos_rows - window, side="left")
    hi = np.searchsorted(pos_cols, pos_rows + window, side="right")
    cols = np.arange(len(pos_cols))
    return (cols >= lo[:, None]) & (cols < hi[:, None])


def _single_thread():
    """BLAS on one thread: small products are slower with threads on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1, user_api="blas")
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()


def adjust_r2(r2, n: int):
    """Unbiased r^2 (as in LD score regression): ``r^2 - (1 - r^2) / (N - 2)``."""
    return r2 - (1.0 - r2) / (n - 2)


def ld_scores(X, pos, window: int = DEFAULT_LD_WINDOW, annot=None, block: int = 512, r2_adjust: bool = False,
              rows=None, progress: bool = False):
    """LD scores ``l_j = sum_i r_ij^2`` over ``|pos_i - pos_j| <= window`` (i = j included).

    ``X``: ``(V, N)`` standardized dosages of one chromosome, ``pos``: ``(V,)`` sorted.
    ``annot``: optional ``(V, K)`` 0/1 annotations; annotation LD scores ``sum_i r_ij^2 a_ik``.
    ``rows``: optional sorted indices j to score (default all; the sums still run over all V).
    Rows are processed ``block`` at a time against the variants within the window, so memory is
    ``block x (variants in 2 windows)``. ``r2_adjust`` uses :func:`adjust_r2` per pair.
    Returns ``(l, l_annot)``: ``(V,)`` and ``(V, K)`` (None without ``annot``); rows not scored are NaN.
    """
    pos = np.asarray(pos)
    V, n = len(pos), _n(X)
    rows = np.arange(V) if rows is None else np.asarray(rows, dtype=np.int64)
    ell = np.full(V, np.nan)
    annot = None if annot is None else np.asarray(annot, dtype=np.float64).reshape(V, -1)
    ell_a = None if annot is None else np.full((V, annot.shape[1]), np.nan)
    starts = range(0, len(rows), block)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="LD scores", unit=" blocks", leave=False)
    for a in starts:
        j = rows[a:a + block]
        contiguous = j[-1] - j[0] + 1 == len(j)
        lo = int(np.searchsorted(pos, pos[j[0]] - window, side="left"))
        hi = int(np.searchsorted(pos, pos[j[-1]] + window, side="right"))
        r2 = ld_r(X[j[0]:j[-1] + 1] if contiguous else X[j], X[lo:hi], n)
        r2 *= r2
        if r2_adjust:
            r2 = adjust_r2(r2, n).astype(np.float32)
        r2 *= _band(pos[j], pos[lo:hi], window)
        ell[j] = r2.sum(axis=1, dtype=np.float64)
        if annot is not None:
            ell_a[j] = r2.astype(np.float64) @ annot[lo:hi]
    return ell, ell_a


def gene_ld_terms(X, pos, values, annot=None, window: int = DEFAULT_LD_WINDOW):
    """LD terms of one gene's variants, with sums over ``|pos_i - pos_j| <= window`` (i = j included).

    ``X``: ``(G, N)`` standardized dosages of the gene's variants, ``pos``: ``(G,)``,
    ``values``: ``(G,)`` or ``(G, T)`` signed effects of the ALT alleles counted in ``X``,
    ``annot``: optional ``(G, K)`` annotations. Returns ``(sed_ld, ld_gene, annot_ld)``:
    the signed LD profile ``sum_i r_ij * values_i`` (shape of ``values``), the gene-window LD
    score ``sum_i r_ij^2`` ``(G,)`` and ``sum_i r_ij^2 * annot_ik`` ``(G, K)`` (None without ``annot``).
    """
    r = _masked_r(X, pos, window)
    r2 = r * r
    annot_ld = None if annot is None else r2 @ np.asarray(annot, dtype=np.float64)
    return r @ np.asarray(values, dtype=np.float64), r2.sum(axis=1), annot_ld


def scale_by_rms(values) -> np.ndarray:
    """``values`` ``(G, T)`` divided column-wise by their root mean square (columns of zeros kept)."""
    values = np.asarray(values, dtype=np.float64)
    rms = np.sqrt(np.mean(values * values, axis=0))
    return values / np.where(rms > 0, rms, 1.0)


def _masked_r(X, pos, window):
    pos = np.asarray(pos)
    x = np.asarray(X[np.arange(len(pos))] if not isinstance(X, np.ndarray) else X)
    r = ld_r(x, x).astype(np.float64)
    order = np.argsort(pos, kind="stable")
    mask = np.empty((len(pos), len(pos)), dtype=bool)
    mask[np.ix_(order, order)] = _band(pos[order], pos[order], window)
    r[~mask] = 0.0
    return r


def prune(X, pos, r2_max: float = DEFAULT_PRUNE_R2, window: int = DEFAULT_LD_WINDOW, block: int = 256) -> np.ndarray:
    """Greedy LD pruning in position order: keep a variant unless its r^2 with an already kept
    variant within ``window`` exceeds ``r2_max``.

    ``X``: ``(V, N)`` standardized dosages of one chromosome's candidates, ``pos``: ``(V,)``
    sorted (ties keep their input order). The first variant is always kept, so the result is
    deterministic. Monomorphic rows (r = 0 with everything) are kept. Returns sorted indices.
    """
    pos = np.asarray(pos)
    V, n = len(pos), _n(X)
    kept: list = []
    for a in range(0, V, block):
        b = min(a + block, V)
        xb = np.asarray(X[a:b])
        alive = np.ones(b - a, dtype=bool)
        if kept:
            k = np.asarray(kept)
            k = k[pos[k] >= pos[a] - window]
            if len(k):
                r2 = ld_r(xb, X[k], n) ** 2
                alive &= ~((r2 > r2_max) & _band(pos[a:b], pos[k], window)).any(axis=1)
        r2b = ld_r(xb, xb, n) ** 2
        clash = (r2b > r2_max) & _band(pos[a:b], pos[a:b], window)
        for i in range(b - a):
            if alive[i]:
                kept.append(a + i)
                alive[i + 1:] &= ~clash[i, i + 1:]
    return np.asarray(kept, dtype=np.int64)


# ============================================================================ statistics
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


# ============================================================================ inputs
def _strings(values) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind in "SO":
        out = [x.decode() if isinstance(x, bytes) else str(x) for x in a.ravel()]
        return np.array(out, dtype=object).reshape(a.shape)
    return a.astype(str).astype(object)


@dataclass
class SedTable:
    """``sed.h5`` rows (P SNP-gene pairs) with one statistic for the chosen targets.

    ``pos`` is 0-based; ``values`` is ``(P, T)`` float64 for ``target_index`` ``(T,)``.
    """

    path: str
    snp: np.ndarray
    chrom: np.ndarray  # as in the file
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    gene: np.ndarray
    tss_dist: np.ndarray
    values: np.ndarray
    stat: str
    target_index: np.ndarray
    target_ids: np.ndarray
    target_labels: np.ndarray
    attrs: dict

    def __len__(self):
        return len(self.pos)


SED_REQUIRED = ("snp", "chrom", "pos", "ref", "alt", "gene", "tss_dist", "target_ids")


def sed_targets(path):
    """``(target_ids, target_labels)`` of a sed.h5 file."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            ids = _strings(h5["target_ids"][()]) if "target_ids" in h5 else None
            labels = _strings(h5["target_labels"][()]) if "target_labels" in h5 else ids
    except OSError as err:
        raise InputError(f"{path}: cannot read as HDF5 ({err})") from None
    if ids is None:
        raise InputError(f"{path}: dataset 'target_ids' missing (expected sed.py's sed.h5)")
    return ids, labels


def resolve_targets(spec, target_ids, where: str = "--target") -> list:
    """Target indices from ``'0,ctcf'``-style text: each item an id of ``target_ids`` or an index."""
    ids = list(target_ids)
    out = []
    for item in [s.strip() for s in str(spec).split(",") if s.strip()]:
        if item in ids:
            out.append(ids.index(item))
        elif re.fullmatch(r"-?\d+", item) and -len(ids) <= int(item) < len(ids):
            out.append(int(item) % len(ids))
        else:
            raise InputError(f"{where}: '{item}' is neither a target id nor an index below {len(ids)} "
                             f"(targets: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''})")
    if not out:
        raise InputError(f"{where}: no target given (expected indices or ids, comma-separated)")
    return list(dict.fromkeys(out))


def read_sed_h5(path, stat: str = "SED", targets=(0,)) -> SedTable:
    """Read the sed.py format: pair columns and ``stat`` for target indices ``targets``."""
    import h5py

    if stat not in SED_STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(SED_STATS)})")
    try:
        h5 = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: cannot read as HDF5 ({err})") from None
    with h5:
        for key in (*SED_REQUIRED, stat):
            if key not in h5:
                raise InputError(f"{path}: dataset '{key}' missing (expected sed.py's sed.h5 with "
                                 f"{', '.join(SED_REQUIRED)}, {stat})")
        P = h5["pos"].shape[0]
        for key in SED_REQUIRED[:-1]:
            if h5[key].shape[:1] != (P,):
                raise InputError(f"{path}: dataset '{key}' has {h5[key].shape[0]} rows, 'pos' has {P}")
        ids = _strings(h5["target_ids"][()])
        labels = _strings(h5["target_labels"][()]) if "target_labels" in h5 else ids
        if h5[stat].shape != (P, len(ids)):
            raise InputError(f"{path}: dataset '{stat}' has shape {h5[stat].shape}, expected ({P}, {len(ids)})")
        t = np.asarray(targets, dtype=np.int64)
        if len(t) and (t.min() < 0 or t.max() >= len(ids)):
            raise InputError(f"{path}: target index {int(t.max())} is out of range (it has {len(ids)} targets)")
        values = h5[stat][()][:, t].astype(np.float64) if P else np.zeros((0, len(t)))
        return SedTable(path=str(path), snp=_strings(h5["snp"][()]), chrom=_strings(h5["chrom"][()]),
                        pos=h5["pos"][()].astype(np.int64) - 1, ref=_strings(h5["ref"][()]),
                        alt=_strings(h5["alt"][()]), gene=_strings(h5["gene"][()]),
                        tss_dist=h5["tss_dist"][()].astype(np.int64), values=values, stat=stat, target_index=t,
                        target_ids=ids, target_labels=labels,
                        attrs={k: (v.decode() if isinstance(v, bytes) else v) for k, v in h5.attrs.items()})


@dataclass
class EqtlTable:
    """An eQTL table's usable rows: variant key, gene, chi^2, significance, tissue (``(R,)`` each).

    ``snp`` holds the id column (None without one); ``chrom``/``pos`` (1-based as written) and
    ``ref``/``alt`` are None unless the table has them. ``line`` is each row's line number.
    """

    path: str
    snp: np.ndarray | None
    chrom: np.ndarray | None
    pos: np.ndarray | None
    ref: np.ndarray | None
    alt: np.ndarray | None
    gene: np.ndarray
    chi2: np.ndarray
    significant: np.ndarray
    tissue: np.ndarray
    line: np.ndarray
    stat_column: str
    counts: Counter

    def __len__(self):
        return len(self.gene)


ID_COLUMNS = ("snp", "variant_id")
P_COLUMNS = ("p", "pval", "pvalue", "p_value")
TRUE_WORDS, FALSE_WORDS = {"1", "true", "t", "yes", "y"}, {"0", "false", "f", "no", "n"}


def _float_column(values, lines, path, name):
    out = np.empty(len(values))
    missing = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        s = v.strip()
        if s.lower() in MISSING_VALUES:
            out[i], missing[i] = np.nan, True
            continue
        try:
            out[i] = float(s)
        except ValueError:
            raise InputError(f"{path}: line {lines[i]}: column '{name}' is '{v}' (expected a number or NA)") from None
    return out, missing


def read_eqtl(path, sig_p: float = DEFAULT_SIG_P) -> EqtlTable:
    """Read an eQTL summary table (tab-separated, header line, '#' comment lines skipped).

    Columns: a variant id (``snp`` or ``variant_id``) or ``chrom`` + ``pos`` (1-based; optional
    ``ref``/``alt``); ``gene``; one statistic, first found of ``chi2``, ``z``, ``beta`` + ``se``,
    ``p`` (two-sided; also ``pval``, ``pvalue``, ``p_value``); optional ``significant`` (1/0,
    true/false, yes/no) and ``tissue``. Rows with a missing statistic (empty, NA, nan) are
    skipped and counted; p must lie in [0, 1]. Significance is the flag where given, else
    ``p < sig_p`` (p from the table's p column when it has one, else from chi^2).
    """
    try:
        fh = open(path, newline="")
    except OSError as err:
        raise InputError(f"{path}: cannot read the eQTL table ({err.strerror})") from None
    with fh:
        header, header_line, rows, lines = None, 0, [], []
        for ln, raw in enumerate(fh, start=1):
            s = raw.rstrip("\r\n")
            if not s.strip() or s.startswith("#"):
                continue
            cells = s.split("\t")
            if header is None:
                header, header_line = [c.strip().lower() for c in cells], ln
                continue
            if len(cells) != len(header):
                raise InputError(f"{path}: line {ln}: {len(cells)} tab-separated fields, the header has {len(header)}")
            rows.append(cells)
            lines.append(ln)
    if header is None:
        raise InputError(f"{path}: empty (expected a header line with gene, a variant id and a statistic)")
    col = {c: i for i, c in enumerate(header)}
    has_id = next((c for c in ID_COLUMNS if c in col), None)
    has_pos = "chrom" in col and "pos" in col
    stat_col = next((c for c in ("chi2", "z") if c in col), None)
    if stat_col is None and "beta" in col and "se" in col:
        stat_col = "beta+se"
    if stat_col is None:
        stat_col = next((c for c in P_COLUMNS if c in col), None)
    needs = []
    if not (has_id or has_pos):
        needs.append("a variant id (snp or variant_id) or chrom and pos")
    if "gene" not in col:
        needs.append("gene")
    if stat_col is None:
        needs.append("one of chi2, z, beta and se, p")
    if needs:
        raise InputError(f"{path}: line {header_line}: header lacks {'; '.join(needs)} "
                         f"(columns: {', '.join(header)})")
    counts = Counter(rows=len(rows))
    lines = np.asarray(lines, dtype=np.int64)
    get = lambda name: [r[col[name]] for r in rows]
    if stat_col == "chi2":
        chi2, missing = _float_column(get("chi2"), lines, path, "chi2")
    elif stat_col == "z":
        z, missing = _float_column(get("z"), lines, path, "z")
        chi2 = chi2_from_z(z)
    elif stat_col == "beta+se":
        beta, m1 = _float_column(get("beta"), lines, path, "beta")
        se, m2 = _float_column(get("se"), lines, path, "se")
        missing = m1 | m2 | (se == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            chi2 = chi2_from_beta_se(beta, se)
    else:
        chi2 = None
    p_col = next((c for c in P_COLUMNS if c in col), None)
    p = None
    if p_col is not None:
        p, p_missing = _float_column(get(p_col), lines, path, p_col)
        bad = ~p_missing & ((p < 0) | (p > 1))
        if bad.any():
            i = int(np.argmax(bad))
            raise InputError(f"{path}: line {lines[i]}: column '{p_col}' is {p[i]:g} (expected a p-value in [0, 1])")
        if chi2 is None:
            missing = p_missing
            chi2 = np.where(p_missing, np.nan, chi2_from_p(np.where(p_missing, 1.0, p)))
    if stat_col == "chi2" and np.any(chi2[~missing] < 0):
        i = int(np.argmax(~missing & (chi2 < 0)))
        raise InputError(f"{path}: line {lines[i]}: chi2 is {chi2[i]:g} (expected >= 0)")
    if "significant" in col:
        flags = np.zeros(len(rows), dtype=bool)
        for i, v in enumerate(get("significant")):
            w = v.strip().lower()
            if w in TRUE_WORDS:
                flags[i] = True
            elif w not in FALSE_WORDS:
                raise InputError(f"{path}: line {lines[i]}: column 'significant' is '{v}' (expected 1/0, true/false)")
        significant = flags
        counts["significance_from"] = "column 'significant'"  # type: ignore[assignment]
    else:
        with np.errstate(invalid="ignore"):
            pv = p_from_chi2(chi2) if p is None else np.where(np.isnan(p), p_from_chi2(chi2), p)
            significant = np.nan_to_num(pv, nan=1.0) < sig_p
        counts["significance_from"] = f"p < {sig_p:g}"  # type: ignore[assignment]
    keep = ~missing & np.isfinite(chi2)
    counts["stat_missing"] = int((~keep).sum())
    counts["used"] = int(keep.sum())
    sel = lambda name: (np.array(get(name), dtype=object)[keep] if name in col else None)
    strip = lambda a: None if a is None else np.array([x.strip() for x in a], dtype=object)
    pos = None
    if has_pos:
        pos_text = strip(sel("pos"))
        try:
            pos = np.array([int(x) for x in pos_text], dtype=np.int64)
        except ValueError:
            bad = next(i for i, x in enumerate(pos_text) if not re.fullmatch(r"\d+", x))
            raise InputError(f"{path}: line {lines[keep][bad]}: pos is '{pos_text[bad]}' "
                             f"(expected a 1-based integer)") from None
    tissue = strip(sel("tissue")) if "tissue" in col else np.full(int(keep.sum()), "all", dtype=object)
    return EqtlTable(path=str(path), snp=strip(sel(has_id)) if has_id else None,
                     chrom=strip(sel("chrom")) if has_pos else None, pos=pos,
                     ref=strip(sel("ref")) if "ref" in col and "alt" in col else None,
                     alt=strip(sel("alt")) if "ref" in col and "alt" in col else None,
                     gene=strip(sel("gene")), chi2=chi2[keep], significant=significant[keep], tissue=tissue,
                     line=lines[keep], stat_column=stat_col, counts=counts)


def read_tissue_targets(path, target_ids) -> dict:
    """``{tissue: target index}`` from a two-column TSV (tissue, target id or index; '#' lines skipped)."""
    out = {}
    try:
        with open(path) as fh:
            for ln, raw in enumerate(fh, start=1):
                s = raw.strip()
                if not s or s.startswith("#"):
                    continue
                cells = s.split("\t")
                if len(cells) != 2:
                    raise InputError(f"{path}: line {ln}: {len(cells)} fields (expected tissue<TAB>target)")
                out[cells[0].strip()] = resolve_targets(cells[1].strip(), target_ids, where=f"{path}: line {ln}")[0]
    except OSError as err:
        raise InputError(f"{path}: cannot read the tissue-target map ({err.strerror})") from None
    if not out:
        raise InputError(f"{path}: no tissue-target lines (expected tissue<TAB>target)")
    return out


# ============================================================================ the SED-LD pipeline
@dataclass
class Options:
    """Settings of :func:`run_sed_ld` (the ``sed_ld.py`` options)."""

    ld_window: int = DEFAULT_LD_WINDOW
    prune_r2: float = DEFAULT_PRUNE_R2
    sig_p: float = DEFAULT_SIG_P
    min_maf: float = DEFAULT_MIN_MAF
    stat: str = "SED"
    target: str = "0"
    tissue_target: str | None = None
    samples: str | None = None
    tss_annot: str = "nearest"  # or "gene"
    sed_scale: str = "gene"  # see SED_SCALES
    gene_ld: bool = True  # the gene-window LD score joins every model
    r2_adjust: bool = False
    se: str = "gene"  # see SE_TYPES
    n_bins: int = 5
    progress: bool = False
    force: bool = False  # replace a finished run's outputs


@dataclass
class Prepared:
    """Everything that does not depend on the eQTL statistics: matched pairs, LD scores.

    ``geno_index`` ``(P,)``: each sed.h5 row's genotype row (-1 when unmatched); ``sign``
    ``(P,)``: +1, or -1 when the genotype VCF counts the other allele; ``ld`` ``(V,)`` LD scores;
    ``tss_ld`` ``(V, 4)`` TSS-distance LD scores (``tss_annot='nearest'``) or None; both NaN for
    genotype rows that are not sed.h5 variants (their scores are not needed).
    """

    sed: SedTable
    geno: Genotypes
    X: Standardized
    maf: np.ndarray
    geno_index: np.ndarray
    sign: np.ndarray
    ld: np.ndarray
    tss_ld: np.ndarray | None
    chrom_slices: dict
    options: Options
    counts: dict
    _prune_cache: dict = field(default_factory=dict)


def _chrom_slices(chrom):
    out = {}
    for i, c in enumerate(chrom):
        out.setdefault(c, [i, i])[1] = i + 1
    return {c: slice(a, b) for c, (a, b) in out.items()}


def match_sed_to_genotypes(sed: SedTable, geno: Genotypes):
    """Pair sed.h5 rows with genotype rows by (chromosome, position, alleles).

    Alleles may be swapped (sed.py's ``flipped``, or another REF/ALT convention): the sign
    is then -1, as the genotype dosage counts the other allele. Returns ``(geno_index (P,),
    sign (P,), counts)``; -1 marks a sed.h5 variant absent from the VCF.
    """
    key = {}
    for i in range(len(geno)):
        key.setdefault((geno.chrom[i], int(geno.pos[i]), geno.ref[i], geno.alt[i]), i)
    P = len(sed)
    idx = np.full(P, -1, dtype=np.int64)
    sign = np.ones(P)
    positions = set(zip(geno.chrom.tolist(), geno.pos.tolist()))
    counts = Counter()
    cache = {}
    for j in range(P):
        k = (normalize_chrom(sed.chrom[j]), int(sed.pos[j]), sed.ref[j].upper(), sed.alt[j].upper())
        if k in cache:
            idx[j], sign[j] = cache[k]
            continue
        hit, s = key.get(k), 1.0
        if hit is None:
            hit, s = key.get((k[0], k[1], k[3], k[2])), -1.0
        if hit is None:
            hit, s = -1, 1.0
            counts["allele_mismatch" if (k[0], k[1]) in positions else "not_in_vcf"] += 1
        elif s < 0:
            counts["swapped_alleles"] += 1
        cache[k] = (hit, s)
        idx[j], sign[j] = hit, s
    return idx, sign, counts


def prepare(sed: SedTable, geno: Genotypes, options: Options) -> Prepared:
    """Match sed.h5 to the genotypes, standardize dosages, compute LD scores (and TSS LD scores)."""
    if options.sed_scale not in SED_SCALES:
        raise InputError(f"--sed_scale: '{options.sed_scale}' (expected one of {', '.join(SED_SCALES)})")
    if options.se not in SE_TYPES:
        raise InputError(f"--se: '{options.se}' (expected one of {', '.join(SE_TYPES)})")
    sed_chroms = sorted({normalize_chrom(c) for c in sed.chrom})
    vcf_chroms = set(geno.chrom.tolist())
    if not vcf_chroms & set(sed_chroms):
        seen = geno.counts.get("vcf_chroms") or []
        raise InputError(f"no chromosome of {sed.path} ({', '.join(sed_chroms[:5])}) has genotypes in the VCF "
                         f"(VCF chromosomes: {', '.join(list(seen)[:5]) or 'none'})")
    mean, sd = dosage_stats(geno.dosage)
    X = Standardized(geno.dosage, mean, sd)
    ploidy = max(int(geno.dosage.max()) if geno.dosage.size else 2, 2)
    freq = mean / ploidy
    maf = np.minimum(freq, 1 - freq)
    geno_index, sign, mcounts = match_sed_to_genotypes(sed, geno)
    slices = _chrom_slices(geno.chrom)
    ld = np.full(len(geno), np.nan)
    tss_ld = None
    annot = None
    if options.tss_annot == "nearest":
        tss_ld = np.full((len(geno), len(TSS_BINS)), np.nan)
    elif options.tss_annot != "gene":
        raise InputError(f"--tss_annot: '{options.tss_annot}' (expected nearest or gene)")
    sed_norm = np.array([normalize_chrom(c) for c in sed.chrom], dtype=object)
    for c, sl in slices.items():
        if c not in set(sed_chroms):
            continue
        pos = geno.pos[sl]
        if tss_ld is not None:
            on = sed_norm == c
            tss = np.unique(sed.pos[on] - sed.tss_dist[on])
            annot = tss_indicators(nearest_distance(pos, tss))
        used = np.unique(geno_index[(geno_index >= sl.start) & (geno_index < sl.stop)]) - sl.start
        if not len(used):
            continue
        Xc = _Offset(X, sl.start, sl.stop)
        ell, ell_a = ld_scores(Xc, pos, options.ld_window, annot, r2_adjust=options.r2_adjust, rows=used,
                               progress=options.progress)
        ld[sl] = ell
        if tss_ld is not None:
            tss_ld[sl] = ell_a
    pair_genes = {(normalize_chrom(c), g) for c, g in zip(sed.chrom, sed.gene)}
    counts = {
        "sed_pairs": len(sed),
        "sed_variants": len(set(zip(sed_norm.tolist(), sed.pos.tolist(), sed.ref.tolist(), sed.alt.tolist()))),
        "sed_genes": len(pair_genes),
        "sed_pairs_with_genotypes": int((geno_index >= 0).sum()),
        "sed_variants_not_in_vcf": int(mcounts["not_in_vcf"]),
        "sed_variants_allele_mismatch": int(mcounts["allele_mismatch"]),
        "sed_variants_alleles_swapped": int(mcounts["swapped_alleles"]),
        "vcf_records": int(geno.counts["records"]),
        "vcf_variants_used": len(geno),
        "samples": len(geno.samples),
        "samples_not_found": int(geno.counts["samples_not_found"]),
        "missing_genotypes_imputed": int(geno.counts["missing_calls"]),
        "monomorphic_variants": int((sd == 0).sum()),
    }
    if counts["missing_genotypes_imputed"]:
        log.info(f"{counts['missing_genotypes_imputed']:,} missing genotype calls mean-imputed")
    if not counts["sed_pairs_with_genotypes"]:
        raise InputError(f"no variant of {sed.path} is in the VCF (compared by chromosome, position and alleles; "
                         f"{counts['sed_variants_not_in_vcf']:,} absent, {counts['sed_variants_allele_mismatch']:,} "
                         f"with other alleles)")
    return Prepared(sed=sed, geno=geno, X=X, maf=maf, geno_index=geno_index, sign=sign, ld=ld, tss_ld=tss_ld,
                    chrom_slices=slices, options=options, counts=counts)


class _Offset:
    """Rows ``start:stop`` of a (lazy) matrix, indexed from 0."""

    def __init__(self, X, start, stop):
        self.X, self.start = X, start
        self.shape = (stop - start, X.shape[1])

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            a, b, _ = idx.indices(self.shape[0])
            return self.X[self.start + a:self.start + b]
        return self.X[np.asarray(idx) + self.start]


def gene_groups(sed: SedTable) -> dict:
    """``{(normalized chrom, gene): row indices}`` of sed.h5, in file order."""
    groups = defaultdict(list)
    for j, (c, g) in enumerate(zip(sed.chrom, sed.gene)):
        groups[(normalize_chrom(c), g)].append(j)
    return {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def sed_ld_profiles(prep: Prepared, values=None, rows=None):
    """|SED-LD| inputs for sed.h5 rows: ``(sed_ld (P, T), ld_gene (P,), gene_tss_ld (P, 4) or None)``.

    For every gene with a row in ``rows`` (bool ``(P,)``, default all), over the gene's rows with
    genotypes (one per genotype variant): ``sed_ld_jg = sum_i r_ij * sign_i * values_ig`` with
    ``values`` ``(P, T)`` (default the sed.h5 statistic; with ``sed_scale='gene'`` each gene's
    signed values are first divided by their root mean square over the gene), and the gene-window
    LD score ``ld_gene_j = sum_i r_ij^2`` over the same variants. With ``tss_annot='gene'`` also the
    TSS-distance LD scores with distances to this gene's TSS. NaN where not computed.
    """
    sed, opt = prep.sed, prep.options
    values = sed.values if values is None else np.asarray(values, dtype=np.float64).reshape(len(sed), -1)
    out = np.full(values.shape, np.nan)
    ld_gene = np.full(len(sed), np.nan)
    gene_tss = np.full((len(sed), len(TSS_BINS)), np.nan) if opt.tss_annot == "gene" else None
    need = np.ones(len(sed), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
    groups = gene_groups(sed).items()
    if opt.progress:
        from tqdm import tqdm

        groups = tqdm(groups, desc="SED-LD", unit=" genes", leave=False)
    with _single_thread():
        for _, members in groups:
            _gene_profile(prep, members, need, values, out, ld_gene, gene_tss)
    return out, ld_gene, gene_tss


def _gene_profile(prep, members, need, values, out, ld_gene, gene_tss):
    """Fill ``out``, ``ld_gene`` (and ``gene_tss``) for one gene's sed.h5 rows ``members``."""
    if not need[members].any():
        return
    members = members[prep.geno_index[members] >= 0]
    if not len(members):
        return
    gi, first = np.unique(prep.geno_index[members], return_index=True)  # by genotype row = by position
    members = members[first]
    signed = values[members] * prep.sign[members, None]
    if prep.options.sed_scale == "gene":
        signed = scale_by_rms(signed)
    annot = tss_indicators(prep.sed.tss_dist[members]) if gene_tss is not None else None
    out[members], ld_gene[members], annot_ld = gene_ld_terms(prep.X[gi], prep.geno.pos[gi], signed, annot,
                                                              prep.options.ld_window)
    if gene_tss is not None:
        gene_tss[members] = annot_ld


def match_eqtl(prep: Prepared, eqtl: EqtlTable):
    """sed.h5 row of each eQTL row (-1 when absent) and counts of what did not match.

    By id when the table has an id column: against sed.h5's ``snp`` and its
    ``chrom:pos:ref:alt`` (either allele order; ``chr`` prefix, ``_`` separators and a ``_b37``
    suffix accepted). Otherwise by ``chrom`` + ``pos``. With ``ref``/``alt`` columns the alleles
    must match too (either order). A row that still fits several sed.h5 variants of its gene
    (a multi-allelic site without alleles) is ambiguous and skipped. Counts: ``gene_not_in_sed``,
    ``variant_not_in_sed`` (gene known), ``pair_not_in_sed`` (both known, not together), ``ambiguous``.
    """
    sed = prep.sed
    index, genes_of_variant = defaultdict(list), defaultdict(set)
    for j in range(len(sed)):
        c, p1, g = normalize_chrom(sed.chrom[j]), int(sed.pos[j]) + 1, sed.gene[j]
        keys = {sed.snp[j], f"{c}:{p1}:{sed.ref[j]}:{sed.alt[j]}", f"{c}:{p1}:{sed.alt[j]}:{sed.ref[j]}", (c, p1)}
        for key in keys:
            index[(key, g)].append(j)
            genes_of_variant[key].add(g)
    sed_genes = set(sed.gene.tolist())
    id_re = re.compile(r"(?:chr)?([^:_]+)[:_](\d+)[:_]([A-Za-z]+)[:_]([A-Za-z]+)(?:_b3[78])?")
    R = len(eqtl)
    out = np.full(R, -1, dtype=np.int64)
    counts = Counter()
    for r in range(R):
        g = eqtl.gene[r]
        if eqtl.snp is not None:
            vid = eqtl.snp[r]
            keys = [vid]
            m = id_re.fullmatch(vid)
            if m:
                keys.append(f"{normalize_chrom(m.group(1))}:{m.group(2)}:{m.group(3).upper()}:{m.group(4).upper()}")
        else:
            keys = [(normalize_chrom(eqtl.chrom[r]), int(eqtl.pos[r]))]
        cand = next((index[(k, g)] for k in keys if (k, g) in index), [])
        if cand and eqtl.ref is not None:
            alleles = {eqtl.ref[r].upper(), eqtl.alt[r].upper()}
            cand = [j for j in cand if {sed.ref[j].upper(), sed.alt[j].upper()} == alleles]
        if len(cand) == 1:
            out[r] = cand[0]
        elif len(set(cand)) > 1:
            counts["ambiguous"] += 1
        elif g not in sed_genes:
            counts["gene_not_in_sed"] += 1
        elif any(k in genes_of_variant for k in keys):
            counts["pair_not_in_sed"] += 1
        else:
            counts["variant_not_in_sed"] += 1
    return out, counts


def _prune_chrom_sets(prep: Prepared, geno_rows: np.ndarray) -> np.ndarray:
    """Pruned subset (genotype rows) of ``geno_rows``, per chromosome, cached."""
    cand = np.unique(geno_rows)
    key = (cand.tobytes(), prep.options.prune_r2, prep.options.ld_window)
    if key in prep._prune_cache:
        return prep._prune_cache[key]
    kept = []
    for c, sl in prep.chrom_slices.items():
        rows = cand[(cand >= sl.start) & (cand < sl.stop)]
        if len(rows):
            k = prune(prep.X[rows] if len(rows) < 20_000 else _Rows(prep.X, rows), prep.geno.pos[rows],
                      prep.options.prune_r2, prep.options.ld_window)
            kept.append(rows[k])
    out = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    prep._prune_cache[key] = out
    return out


class _Rows:
    """Chosen rows of a (lazy) matrix, indexed from 0."""

    def __init__(self, X, rows):
        self.X, self.rows = X, np.asarray(rows)
        self.shape = (len(rows), X.shape[1])

    def __getitem__(self, idx):
        return self.X[self.rows[idx]]


@dataclass
class Results:
    """What :func:`analyze` found: ``regression`` and ``enrichment`` rows (dicts), ``summary``."""

    regression: list
    enrichment: list
    summary: dict


def _tissue_target_pairs(prep: Prepared, eqtl: EqtlTable, target_map):
    tissues = list(dict.fromkeys(eqtl.tissue.tolist()))
    pairs, unmapped = [], []
    for tissue in tissues:
        if target_map is None:
            pairs += [(tissue, k) for k in range(len(prep.sed.target_index))]
        elif tissue in target_map:
            col = np.flatnonzero(prep.sed.target_index == target_map[tissue])
            pairs.append((tissue, int(col[0])))
        else:
            unmapped.append(tissue)
    return pairs, unmapped


def analyze(prep: Prepared, eqtl: EqtlTable, values=None, target_map=None, eqtl_rows=None) -> Results:
    """Regressions and enrichment for each (tissue, target).

    ``values``: ``(P, T)`` replacement statistic (e.g. permuted SED; default sed.h5's).
    ``target_map``: ``{tissue: sed.h5 target index}`` (each must be among the targets read);
    default every tissue with every target read. ``eqtl_rows``: precomputed
    :func:`match_eqtl` output. Rows: eQTL rows matched to a sed.h5 pair with genotypes, MAF >=
    ``min_maf``, in the LD-pruned set (greedy by position, r^2 <= ``prune_r2``); a repeated
    (tissue, variant, gene) keeps its first row.
    """
    opt, sed = prep.options, prep.sed
    counts = dict(prep.counts)
    if eqtl_rows is None:
        eqtl_rows, ecounts = match_eqtl(prep, eqtl)
    else:
        eqtl_rows, ecounts = eqtl_rows
    counts.update({"eqtl_rows": int(eqtl.counts["rows"]), "eqtl_rows_stat_missing": int(eqtl.counts["stat_missing"]),
                   "eqtl_variant_not_in_sed": int(ecounts["variant_not_in_sed"]),
                   "eqtl_gene_not_in_sed": int(ecounts["gene_not_in_sed"]),
                   "eqtl_pair_not_in_sed": int(ecounts["pair_not_in_sed"]),
                   "eqtl_ambiguous": int(ecounts["ambiguous"]),
                   "eqtl_significance": eqtl.counts["significance_from"]})
    matched = eqtl_rows >= 0
    counts["matched_pairs"] = int(matched.sum())
    gidx = np.where(matched, prep.geno_index[np.maximum(eqtl_rows, 0)], -1)
    counts["matched_without_genotypes"] = int((matched & (gidx < 0)).sum())
    ok = gidx >= 0
    poly = ok & (prep.X.sd[np.maximum(gidx, 0)] > 0)
    counts["matched_monomorphic"] = int((ok & ~poly).sum())
    common = poly & (prep.maf[np.maximum(gidx, 0)] >= opt.min_maf)
    counts["matched_below_min_maf"] = int((poly & ~common).sum())
    key = list(zip(eqtl.tissue.tolist(), eqtl_rows.tolist()))
    first = np.zeros(len(key), dtype=bool)
    seen = set()
    for r in np.flatnonzero(common):
        if key[r] not in seen:
            seen.add(key[r])
            first[r] = True
    counts["eqtl_duplicates"] = int((common & ~first).sum())
    usable = common & first
    if not usable.any():
        raise InputError(f"no (variant, gene) pair of {eqtl.path} is in {sed.path} with genotypes in the VCF "
                         f"(matched to sed.h5: {counts['matched_pairs']:,} of {len(eqtl):,} rows; with genotypes: "
                         f"{int(ok.sum()):,}; polymorphic with MAF >= {opt.min_maf:g}: {int(common.sum()):,})")
    kept = _prune_chrom_sets(prep, gidx[usable])
    counts["candidate_variants"] = int(len(np.unique(gidx[usable])))
    counts["pruned_variants"] = int(len(kept))
    in_kept = np.zeros(len(prep.geno), dtype=bool)
    in_kept[kept] = True
    rows_mask = usable & in_kept[np.maximum(gidx, 0)]
    need = np.zeros(len(sed), dtype=bool)
    need[eqtl_rows[rows_mask]] = True
    sed_ld, ld_gene, gene_tss = sed_ld_profiles(prep, values, need)
    models = regression_models(opt)
    pairs, unmapped = _tissue_target_pairs(prep, eqtl, target_map)
    counts["tissues_without_target"] = len(unmapped)
    if unmapped:
        log.warning(f"warning: {len(unmapped)} tissues have no target in --tissue_target and are skipped: "
                    f"{', '.join(unmapped[:5])}{' ...' if len(unmapped) > 5 else ''}")
    regression, enrich, per = [], [], []
    for tissue, k in pairs:
        r = np.flatnonzero(rows_mask & (eqtl.tissue == tissue))
        if len(r) < len(models["ld+tss+sed"]) + 3:
            log.warning(f"warning: tissue {tissue}: only {len(r)} rows after pruning; skipped")
            continue
        j, g = eqtl_rows[r], gidx[r]
        tss = gene_tss[j] if gene_tss is not None else prep.tss_ld[g]
        cov = {"ld": prep.ld[g], "ld_gene": ld_gene[j], "sed_ld": np.abs(sed_ld[j, k]),
               **{name: tss[:, b] for b, name in enumerate(TSS_TERMS)}}
        groups = np.array([f"{normalize_chrom(sed.chrom[x])}:{sed.gene[x]}" for x in j], dtype=object)
        se = SE_TYPES[opt.se]
        fits = {m: ols(eqtl.chi2[r], {t: cov[t] for t in terms}, se, groups) for m, terms in models.items()}
        classical = fits if se == "ols" else {m: ols(eqtl.chi2[r], {t: cov[t] for t in terms})
                                              for m, terms in models.items()}
        tid = str(sed.target_ids[sed.target_index[k]])
        n_genes = len(set(groups.tolist()))
        for m, f in fits.items():
            for i, term in enumerate(f.terms):
                regression.append({"tissue": tissue, "target": tid, "model": m, "n": f.n, "genes": n_genes,
                                   "term": term, "coef": f.coef[i], "se": f.se[i], "t": f.t[i], "p": f.p[i],
                                   "se_type": opt.se, "p_ols": classical[m].p[i], "r2": f.r2})
        for with_m, without_m in COMPARISONS:
            e = enrichment(fits[with_m].fitted - fits[without_m].fitted, eqtl.significant[r], opt.n_bins)
            for b in range(opt.n_bins):
                enrich.append({"tissue": tissue, "target": tid, "comparison": f"{with_m} vs {without_m}",
                               "bin": int(e["bin"][b]), "n": int(e["n"][b]),
                               "n_significant": int(e["n_significant"][b]),
                               "proportion": float(e["proportion"][b]), "relative": float(e["relative"][b])})
        sl = {m: fits[m].terms.index("sed_ld") for m in ("ld+sed", "ld+tss+sed")}
        top = [e for e in enrich[-2 * opt.n_bins:] if e["bin"] == opt.n_bins]
        per.append({"tissue": tissue, "target": tid, "n": int(len(r)), "n_significant": int(eqtl.significant[r].sum()),
                    "genes": n_genes, "se_type": opt.se,
                    **{f"sed_ld_{m}": {"coef": float(fits[m].coef[i]), "se": float(fits[m].se[i]),
                                       "t": float(fits[m].t[i]), "p": float(fits[m].p[i]),
                                       "p_ols": float(classical[m].p[i])} for m, i in sl.items()},
                    "top_bin_relative": {e["comparison"]: e["relative"] for e in top}})
    if not per:
        raise InputError(f"too few rows to regress in any tissue of {eqtl.path} (need {len(models['ld+tss+sed']) + 3})")
    summary = {"inputs": {"sed": sed.path, "eqtl": eqtl.path, "stat": sed.stat,
                          "targets": [str(sed.target_ids[t]) for t in sed.target_index]},
               "options": {k: v for k, v in vars(opt).items() if k != "progress"},
               "counts": counts, "regressions": per}
    return Results(regression=regression, enrichment=enrich, summary=summary)


def _fmt(v):
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else f"{v:.6g}"
    return str(v)


def _write_tsv(path, rows, columns):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r[c]) for c in columns])


def plot_enrichment(rows, path, max_panels: int = 12) -> str:
    """Bar chart of ``relative`` by bin, one panel per (tissue, target), one bar group per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["tissue"], r["target"]) for r in rows))[:max_panels]
    comps = list(dict.fromkeys(r["comparison"] for r in rows))
    ncol = min(3, max(len(panels), 1))
    nrow = max(1, math.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    width = 0.8 / max(len(comps), 1)
    colors = ["#1f5fa8", "#c8553d", "#5a9e4b", "#8e6bb0"]
    for ax, (tissue, target) in zip(axes.ravel(), panels):
        for c, comp in enumerate(comps):
            sel = [r for r in rows if (r["tissue"], r["target"], r["comparison"]) == (tissue, target, comp)]
            x = np.array([r["bin"] for r in sel], dtype=float) + (c - (len(comps) - 1) / 2) * width
            ax.bar(x, [r["relative"] for r in sel], width=width, color=colors[c % len(colors)], label=comp)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("quantile of prediction gain from |SED-LD|")
        ax.set_ylabel("significant eQTLs\n(relative to quantiles 1-3)")
        ax.set_title(f"{tissue} / {target}", fontsize=10)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=110)
    finally:
        plt.close(fig)
    return str(path)


REGRESSION_COLUMNS = ("tissue", "target", "model", "n", "genes", "term", "coef", "se", "t", "p", "se_type", "p_ols",
                      "r2")
ENRICHMENT_COLUMNS = ("tissue", "target", "comparison", "bin", "n", "n_significant", "proportion", "relative")
OUTPUT_NAMES = ("regression.tsv", "enrichment.tsv", "enrichment.png", "sed_ld.json")


def write_outputs(results: Results, out_dir) -> list:
    """Write regression.tsv, enrichment.tsv, enrichment.png and sed_ld.json into ``out_dir``.

    Each is written under a temporary name in ``out_dir`` and renamed once all are complete.
    """
    os.makedirs(out_dir, exist_ok=True)
    final = [os.path.join(out_dir, n) for n in OUTPUT_NAMES]
    tmp = [os.path.join(out_dir, f".{n}.{os.getpid()}.tmp") for n in OUTPUT_NAMES]
    try:
        _write_tsv(tmp[0], results.regression, REGRESSION_COLUMNS)
        _write_tsv(tmp[1], results.enrichment, ENRICHMENT_COLUMNS)
        plot_enrichment(results.enrichment, tmp[2])
        with open(tmp[3], "w") as fh:
            json.dump(_jsonable(results.summary), fh, indent=1)
            fh.write("\n")
        for t, f in zip(tmp, final):
            os.replace(t, f)
    finally:
        for t in tmp:
            if os.path.exists(t):
                os.remove(t)
    return final


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def load(sed_path, vcf_path, options: Options):
    """Read sed.h5 (the targets of ``--target`` and ``--tissue_target``) and the genotypes; prepare."""
    ids, _ = sed_targets(sed_path)
    targets = resolve_targets(options.target, ids)
    target_map = None
    if options.tissue_target:
        target_map = read_tissue_targets(options.tissue_target, ids)
        targets = list(dict.fromkeys(list(target_map.values())))
    sed = read_sed_h5(sed_path, options.stat, targets)
    if not len(sed):
        raise InputError(f"{sed_path}: no SNP-gene pairs")
    samples = read_sample_list(options.samples) if options.samples else None
    chroms = np.array([normalize_chrom(c) for c in sed.chrom], dtype=object)
    regions = {}  # the genotypes LD needs: sed.h5 variants +- the window
    for c in set(chroms.tolist()):
        p = sed.pos[chroms == c]
        regions[c] = (int(p.min()) - options.ld_window, int(p.max()) + options.ld_window + 1)
    geno = read_genotypes(vcf_path, samples, regions=regions, progress=options.progress)
    if not len(geno):
        seen = geno.counts.get("vcf_chroms") or []
        raise InputError(f"{vcf_path}: no genotyped variant on the chromosomes of {sed_path} "
                         f"({', '.join(sorted(regions)[:5])}; the VCF has {', '.join(list(seen)[:5]) or 'none'})")
    return prepare(sed, geno, options), target_map


def run_sed_ld(sed_path, vcf_path, eqtl_path, out_dir, options: Options | None = None) -> dict:
    """The whole of ``sed_ld.py``: read, prepare, regress, write; returns the summary."""
    options = options or Options()
    eqtl = read_eqtl(eqtl_path, options.sig_p)
    if not len(eqtl):
        raise InputError(f"{eqtl_path}: no row with a usable statistic ({eqtl.counts['stat_missing']:,} missing)")
    with files.claim(out_dir):
        prep, target_map = load(sed_path, vcf_path, options)
        files.refuse_overwrite(out_dir, OUTPUT_NAMES, options.force)
        results = analyze(prep, eqtl, target_map=target_map)
        results.summary["inputs"]["vcf"] = str(vcf_path)
        write_outputs(results, out_dir)
    return results.summary


# ============================================================================ gwas_classify
def read_id_list(path) -> list:
    """Variant ids, one per line (first tab/space-separated word; '#' lines and blanks skipped)."""
    try:
        with open(path) as fh:
            return list(dict.fromkeys(line.split()[0] for line in fh if line.strip() and not line.startswith("#")))
    except OSError as err:
        raise InputError(f"{path}: cannot read the id list ({err.strerror})") from None


def variant_features(sed_path, stat: str = "maxlog2"):
    """Per-variant features from sed.h5: ``max |stat|`` over the variant's genes, for every target.

    Returns ``(ids (V,), features (V, T), target_ids (T,))``; variants in first-seen order.
    """
    ids, _ = sed_targets(sed_path)
    sed = read_sed_h5(sed_path, stat, np.arange(len(ids)))
    uniq, inverse = np.unique(sed.snp.astype(str), return_inverse=True)
    feats = np.zeros((len(uniq), len(ids)))
    np.maximum.at(feats, inverse, np.abs(np.nan_to_num(sed.values)))
    order = np.argsort(np.unique(inverse, return_index=True)[1], kind="stable")
    return uniq[order].astype(object), feats[order], ids


def classify_cv(features, labels, components: int = 10, folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated AUROC of standardize -> PCA -> logistic regression.

    ``features``: ``(n, T)``; ``labels``: ``(n,)`` 0/1. Stratified ``folds``-fold split shuffled
    with ``seed``; scaler, PCA (``min(components, T, n_train - 1)`` components) and classifier are
    fitted on each training part only. Returns ``{'auroc': [per fold], 'mean', 'sd', 'folds': [...]}``.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs, rows = [], []
    for k, (tr, te) in enumerate(skf.split(X, y), start=1):
        nc = max(1, min(components, X.shape[1], len(tr) - 1))
        model = make_pipeline(StandardScaler(), PCA(n_components=nc, random_state=seed),
                              LogisticRegression(max_iter=1000))
        model.fit(X[tr], y[tr])
        auc = float(roc_auc_score(y[te], model.predict_proba(X[te])[:, 1]))
        aucs.append(auc)
        rows.append({"fold": k, "n_train": int(len(tr)), "n_test": int(len(te)), "n_test_positive": int(y[te].sum()),
                     "components": nc, "auroc": auc})
    return {"auroc": aucs, "mean": float(np.mean(aucs)), "sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            "folds": rows}
