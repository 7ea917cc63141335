"""LD statistics (basenji_tk.analysis.ld): correlations, LD scores, gene LD terms, pruning.

Dosages are GENERATED (:func:`test_genotypes.gen_haplotypes`) or the real 1000 Genomes genotypes
of data/variants_1kg.vcf.gz.
"""

import numpy as np
import pytest

from basenji_tk.analysis import ld, sedld_stats
from basenji_tk.io import genotypes
from conftest import DATA
from test_genotypes import gen_haplotypes

VCF_1KG = DATA / "variants_1kg.vcf.gz"


# ----------------------------------------------------------------------------- LD arithmetic
def test_r_and_ld_scores_match_corrcoef():
    rng = np.random.default_rng(1)
    d = gen_haplotypes(60, 50, rng).reshape(60, 50, 2).sum(axis=2).astype(float)
    d[3, 7] = np.nan  # a missing call: mean-imputed
    X = ld.standardize(d)
    filled = np.where(np.isnan(d), np.nanmean(d, axis=1, keepdims=True), d)
    r_ref = np.corrcoef(filled)
    np.testing.assert_allclose(ld.ld_r(X, X), r_ref, atol=2e-5)
    pos = np.sort(rng.choice(10_000, 60, replace=False))
    window = 1_500
    annot = (rng.random((60, 2)) < 0.3).astype(float)
    mask = np.abs(pos[:, None] - pos[None, :]) <= window
    for block in (7, 512):
        ell, ell_a = ld.ld_scores(X, pos, window, annot, block=block)
        np.testing.assert_allclose(ell, (r_ref ** 2 * mask).sum(axis=1), rtol=1e-4)
        np.testing.assert_allclose(ell_a, (r_ref ** 2 * mask) @ annot, rtol=1e-4, atol=1e-6)
    adj, _ = ld.ld_scores(X, pos, window, r2_adjust=True, block=9)
    np.testing.assert_allclose(adj, (ld.adjust_r2(r_ref ** 2, 50) * mask).sum(axis=1), rtol=1e-4)
    rows = np.array([2, 3, 30, 59])
    part, _ = ld.ld_scores(X, pos, window, rows=rows, block=3)
    np.testing.assert_allclose(part[rows], ell[rows], rtol=1e-5)
    assert np.isnan(part[0])
    # the lazy int8 view gives the same rows
    d8 = np.where(np.isnan(d), -1, d).astype(np.int8)
    lazy = ld.Standardized(d8)
    np.testing.assert_allclose(lazy[np.array([3, 10])], X[[3, 10]], atol=1e-6)
    np.testing.assert_allclose(ld.ld_scores(lazy, pos, window, block=16)[0], ell, rtol=1e-5)


def test_monomorphic_rows_are_zero():
    d = np.array([[1, 1, 1, 1], [0, 1, 2, -1]], dtype=np.int8)
    X = ld.standardize(d)
    assert not X[0].any()
    mean, sd = ld.dosage_stats(d)
    assert mean[1] == pytest.approx(1.0) and X[1, 3] == 0


def test_gene_ld_terms_against_brute_force():
    rng = np.random.default_rng(2)
    d = gen_haplotypes(40, 30, rng).reshape(40, 30, 2).sum(axis=2)
    X = ld.standardize(d)
    pos = np.sort(rng.choice(5_000, 40, replace=False))
    sed = rng.normal(size=(40, 3))
    annot = sedld_stats.tss_indicators(rng.integers(-40_000, 40_000, 40))
    r = np.corrcoef(d)
    for window in (10_000, 700):
        near = [[i for i in range(40) if abs(pos[i] - pos[j]) <= window] for j in range(40)]
        sed_ld, ld_gene, annot_ld = ld.gene_ld_terms(X, pos, sed, annot, window)
        np.testing.assert_allclose(sed_ld, [[sum(r[i, j] * sed[i, t] for i in near[j]) for t in range(3)]
                                            for j in range(40)], atol=1e-4)
        np.testing.assert_allclose(ld_gene, [sum(r[i, j] ** 2 for i in near[j]) for j in range(40)], atol=1e-4)
        np.testing.assert_allclose(annot_ld, [[sum(r[i, j] ** 2 * annot[i, k] for i in near[j]) for k in range(4)]
                                              for j in range(40)], atol=1e-4)
    scaled = ld.scale_by_rms(np.column_stack([sed[:, 0] * 7, np.zeros(40)]))
    assert np.sqrt(np.mean(scaled[:, 0] ** 2)) == pytest.approx(1.0) and not scaled[:, 1].any()


def test_pruning_on_real_genotypes():
    geno = genotypes.read_genotypes(VCF_1KG, regions={"20": (1_000_000, 1_150_000)})
    keep = ld.dosage_stats(geno.dosage)[1] > 0
    X = ld.standardize(geno.dosage[keep])
    pos = geno.pos[keep]
    kept = ld.prune(X, pos, 0.5, window=50_000, block=64)
    assert np.array_equal(kept, ld.prune(X, pos, 0.5, window=50_000, block=1000))  # blocking changes nothing
    r2 = ld.ld_r(X[kept], X[kept]) ** 2
    near = np.abs(pos[kept][:, None] - pos[kept][None, :]) <= 50_000
    np.fill_diagonal(r2, 0)
    assert not (r2 * near > 0.5 + 1e-6).any()
    dropped = np.setdiff1d(np.arange(len(pos)), kept)
    assert 0 < len(kept) < len(pos)
    # greedy in position order: each dropped variant clashes with a kept variant before it
    rd = ld.ld_r(X[dropped], X[kept]) ** 2
    earlier = (pos[kept][None, :] <= pos[dropped][:, None]) & (kept[None, :] < dropped[:, None])
    close = np.abs(pos[dropped][:, None] - pos[kept][None, :]) <= 50_000
    assert ((rd > 0.5) & earlier & close).any(axis=1).all()
