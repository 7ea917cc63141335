"""LD statistics from genotype dosages: correlations, LD scores, signed LD profiles, pruning.

The LD quantities of the SED-LD analysis (:mod:`basenji_tk.analysis.sedld`, ``sed_ld.py``)::

    LD score          l_j        = sum_i r_ij^2                (i within --ld_window of j)
    signed LD profile SED-LD_jg  = sum_i r_ij * SED_ig         (i over gene g's scored variants)
    annotation LD     l_j(A)     = sum_i r_ij^2 * 1[i in A]    (A: a TSS-distance bin)

Building blocks are small functions on arrays. Shapes: ``V`` variants, ``N`` samples, ``P``
SNP-gene pairs, ``T`` targets, ``G`` variants of one gene. A *standardized dosage matrix* ``X``
is ``(V, N)`` with each row centred and scaled to unit (population) variance, so that
``r_ij = X_i . X_j / N`` is the Pearson correlation; missing genotypes are mean-imputed (0 after
standardizing) and monomorphic rows are all 0. Functions taking ``X`` accept an ndarray or a
:class:`Standardized` view (anything where ``X[a:b]`` and ``X[index_array]`` give float rows and
``X.shape`` is ``(V, N)``), so a chromosome's LD never needs a ``(V, V)`` matrix: r is computed
in blocks of rows against the rows within the window. LD functions take one chromosome at a
time, with ``pos`` sorted ascending. Dosages come from :func:`basenji_tk.io.genotypes.read_genotypes`.
"""

from __future__ import annotations

import numpy as np

DEFAULT_LD_WINDOW = 1_000_000
DEFAULT_PRUNE_R2 = 0.5


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
