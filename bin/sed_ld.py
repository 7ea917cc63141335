#!/usr/bin/env python
"""SED-LD: regress eQTL chi^2 on LD scores and the signed LD profile of the model's SED."""

import argparse
import math

from basenji_tk import cli
from basenji_tk.analysis.ld import DEFAULT_LD_WINDOW, DEFAULT_PRUNE_R2
from basenji_tk.analysis.sedld import DEFAULT_MIN_MAF, SE_TYPES, SED_SCALES
from basenji_tk.analysis.sedld_inputs import DEFAULT_SIG_P, SED_STATS

DESCRIPTION = """\
Do the model's variant effect predictions explain eQTL statistics beyond LD (Kelley et al.
2018, Figure 5)? Inputs:

  SED_H5  sed.py output: one row per SNP-gene pair (snp, chrom, pos, ref, alt, gene,
          tss_dist, SED/logSED/SAD/maxlog2 per target)
  VCF     genotypes of an LD reference population (GT, phased or not; plain or bgzip);
          --samples FILE keeps those sample ids. Dosage = ALT copies; missing calls are
          mean-imputed and counted. Variants are paired with sed.h5 by chromosome ('chr'
          prefix ignored), position and alleles (either order; swapped alleles flip the sign).
  EQTL    tab-separated table with a header ('#' lines skipped): a variant id (snp or
          variant_id: sed.h5's id or chrom:pos:ref:alt) or chrom + pos (1-based; optional
          ref, alt); gene; one statistic, the first present of chi2, z, beta + se, p (two-
          sided, -> 1-df chi2); optional significant (1/0, true/false) and tissue.

Per variant j, from dosage correlations r within --ld_window: LD score l_j = sum r_ij^2
over all genotyped variants; for each gene g, over g's scored variants i: the gene-window
LD score l_jg = sum r_ij^2 and the signed LD profile SED-LD_jg = sum r_ij SED_ig, where
--sed_scale gene (default) first divides g's SED by its root mean square over g's variants;
TSS-distance LD scores sum r_ij^2 1[i in bin] for distance bins <500, 500-2k, 2k-8k,
8k-32k bp (to the nearest TSS of a sed.h5 gene, or with --tss_annot gene to the pair's own
gene).

Rows: eQTL (variant, gene) pairs found in sed.h5 with genotypes and MAF >= --min_maf, on
variants kept by greedy LD pruning in position order (a variant is dropped when its r^2
with an already kept one exceeds --prune_r2). Per tissue (or one table-wide 'all') and
target, statsmodels OLS of chi2 on: ld + ld_gene; the same + sed_ld (= |SED-LD|); + 4 TSS
terms; + TSS + sed_ld. --se gene (default) clusters standard errors by gene, since a gene's
rows share its phenotype and LD; --se ols gives classical ones (p_ols is always reported).
Why the scaling and ld_gene: on SIMULATED eQTLs with SED permuted within genes (no
information), |SED-LD| without them still tracked how many of the gene's variants a variant
tags and how large a gene's SED runs, and came out 'significant' (benchmarks/sim_sed_ld.py,
RESULTS.md). --sed_scale none --no_gene_ld gives the paper's regressions.
Targets: --target (indices or ids; every tissue is regressed on each), or --tissue_target
FILE (tissue<TAB>target lines; unmapped tissues are skipped and counted).

Enrichment: rows ranked by the gain in predicted chi2 from adding |SED-LD| (ld+sed minus
ld; and ld+tss+sed minus ld+tss), cut into --quantiles groups; the share of significant
eQTLs in each, relative to the mean of the lowest three (significant: the table's flag, else
p < --sig_p).

Writes into OUT_DIR: regression.tsv (tissue, target, model, n, genes, term, coef, se, t, p,
se_type, p_ols, r2), enrichment.tsv, enrichment.png, sed_ld.json (inputs, options, counts:
pairs, matches, ids not found in each input, missing genotypes imputed, pruned size; the
|SED-LD| results). Files are written under temporary names and renamed at the end.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="sed_ld.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("sed", metavar="SED_H5", help="sed.h5 from sed.py")
    p.add_argument("vcf", metavar="VCF", help="genotype VCF/BCF of the LD reference population")
    p.add_argument("eqtl", metavar="EQTL", help="eQTL summary statistics (TSV)")
    p.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    g = p.add_argument_group("LD")
    g.add_argument("--samples", default=None, metavar="FILE", help="sample ids to use, one per line (default: all)")
    g.add_argument("--ld_window", type=int, default=DEFAULT_LD_WINDOW, help="largest distance between correlated "
                   "variants (bp)")
    g.add_argument("--prune_r2", type=float, default=DEFAULT_PRUNE_R2, help="LD pruning threshold")
    g.add_argument("--min_maf", type=float, default=DEFAULT_MIN_MAF, help="regress only variants with this minor "
                   "allele frequency in the LD samples")
    g.add_argument("--r2_adjust", action="store_true", help="LD scores from the unbiased r^2 - (1 - r^2)/(N - 2)")
    g.add_argument("--tss_annot", choices=("nearest", "gene"), default="nearest", help="TSS-distance bins by the "
                   "nearest TSS of any sed.h5 gene, or by the pair's own gene (over the gene's variants)")
    g = p.add_argument_group("model")
    g.add_argument("--stat", choices=SED_STATS, default="SED", help="sed.h5 statistic to profile")
    g.add_argument("--target", default="0", help="sed.h5 target(s): comma-separated indices or ids")
    g.add_argument("--tissue_target", default=None, metavar="FILE", help="tissue<TAB>target map (replaces --target)")
    g.add_argument("--se", choices=tuple(SE_TYPES), default="gene", help="standard errors: clustered by gene, "
                   "classical OLS, or heteroscedasticity-robust (HC1)")
    g.add_argument("--sed_scale", choices=SED_SCALES, default="gene", help="gene: divide each gene's SED by its "
                   "root mean square over the gene's variants before the LD profile; none: raw SED (the paper)")
    g.add_argument("--no_gene_ld", action="store_true", help="leave the gene-window LD score out of the models "
                   "(with --sed_scale none: the paper's regressions)")
    g.add_argument("--sig_p", type=float, default=DEFAULT_SIG_P, help="an eQTL is significant at p below this when "
                   "the table has no 'significant' column")
    g.add_argument("--quantiles", type=int, default=5, help="groups of the enrichment")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.errors import InputError
    from basenji_tk.analysis.sedld import Options, run_sed_ld

    if args.ld_window <= 0 or not 0 < args.prune_r2 <= 1 or not 0 <= args.min_maf < 0.5 or args.quantiles < 4:
        raise InputError("options: expected --ld_window > 0, 0 < --prune_r2 <= 1, 0 <= --min_maf < 0.5, "
                         "--quantiles >= 4")
    options = Options(ld_window=args.ld_window, prune_r2=args.prune_r2, sig_p=args.sig_p, min_maf=args.min_maf,
                      stat=args.stat, target=args.target, tissue_target=args.tissue_target, samples=args.samples,
                      tss_annot=args.tss_annot, r2_adjust=args.r2_adjust, se=args.se, sed_scale=args.sed_scale,
                      gene_ld=not args.no_gene_ld, n_bins=args.quantiles, progress=cli.show_progress(args.quiet),
                      force=args.force)
    summary = run_sed_ld(args.sed, args.vcf, args.eqtl, args.out, options)
    c = summary["counts"]
    for r in summary["regressions"]:
        a, top = r["sed_ld_ld+sed"], r["top_bin_relative"]["ld+sed vs ld"]
        top = f"{top:.2f}x" if math.isfinite(top) else "n/a (no significant eQTL in the lowest quantiles)"
        print(f"{r['tissue']} / {r['target']}: n = {r['n']:,} pairs ({r['genes']} genes), |SED-LD| t = {a['t']:.2f}, "
              f"p = {a['p']:.3g} ({args.se} se); top quantile {top}")
    print(f"wrote {args.out}: {c['matched_pairs']:,} of {c['eqtl_rows']:,} eQTL rows matched to sed.h5, "
          f"{c['pruned_variants']:,} variants after pruning, {c['missing_genotypes_imputed']:,} genotypes imputed")
    return 0


if __name__ == "__main__":
    cli.run(main)
