"""SED-LD: do a model's variant effect predictions explain eQTL statistics beyond LD?

The analysis of Kelley et al. 2018 (Genome Research, Figure 5): an eQTL's chi-squared
statistic grows with the LD score of its variant (the more variants it tags, the more likely it
tags a causal one). If the model's SNP expression differences (SED, from ``sed.py``) point at the
causal variants, the *signed LD profile* of SED adds to that (the LD score ``l_j``, the signed LD
profile ``SED-LD_jg`` and the annotation LD scores are defined in :mod:`basenji_tk.analysis.ld`),
and chi2_jg ~ 1 + l_j + |SED-LD_jg| (+ TSS-distance LD scores) is fitted by OLS over an
LD-pruned set of (variant, gene) pairs, one regression per tissue/target.

The pipeline of ``sed_ld.py``: :func:`load` reads sed.h5 and the genotypes and :func:`prepare`
matches them and computes LD scores (what does not depend on the eQTL statistics);
:func:`analyze` matches the eQTL table, prunes, computes |SED-LD| and regresses;
:func:`run_sed_ld` does it all and writes the outputs (:mod:`basenji_tk.analysis.sedld_outputs`).
Shapes: ``V`` genotype variants, ``N`` samples, ``P`` sed.h5 SNP-gene pairs, ``T`` targets. The
inputs are read by :mod:`basenji_tk.analysis.sedld_inputs` and :mod:`basenji_tk.io.genotypes`,
the statistics are in :mod:`basenji_tk.analysis.sedld_stats`.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from basenji_tk import files
from basenji_tk.analysis.ld import (DEFAULT_LD_WINDOW, DEFAULT_PRUNE_R2, Standardized, _single_thread, dosage_stats,
                                    gene_ld_terms, ld_scores, prune, scale_by_rms)
from basenji_tk.analysis.sedld_inputs import (DEFAULT_SIG_P, EqtlTable, SedTable, read_eqtl, read_sed_h5,
                                              read_tissue_targets, resolve_targets, sed_targets)
from basenji_tk.analysis.sedld_outputs import OUTPUT_NAMES, write_outputs
from basenji_tk.analysis.sedld_stats import TSS_BINS, TSS_TERMS, enrichment, nearest_distance, ols, tss_indicators
from basenji_tk.errors import InputError
from basenji_tk.io.genome import normalize_chrom
from basenji_tk.io.genotypes import Genotypes, read_genotypes, read_sample_list

log = logging.getLogger("basenji_tk")

DEFAULT_MIN_MAF = 0.01


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
