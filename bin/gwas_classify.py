#!/usr/bin/env python
"""Classify variants from their sed.h5 features: PCA + logistic regression, cross-validated AUROC."""

import argparse

from basenji_tk import cli
from basenji_tk.analysis.sedld_inputs import SED_STATS

DESCRIPTION = """\
Can the model's predicted effects tell a set of variants (e.g. GWAS hits) from a matched
negative set? Features: for each variant of SED_H5 (by its snp id), the chosen statistic
(--stat) for every target, as the largest |value| over the genes it was scored for.
POSITIVES and NEGATIVES list variant ids, one per line (first word; '#' lines skipped); the
user chooses the negatives (matched for allele frequency, distance to genes, ...). Ids not
in sed.h5 are counted and left out; an id in both lists is an error.

Stratified --folds-fold cross-validation (shuffled with --seed): on each training part the
features are standardized, reduced by PCA to --components components and fitted by logistic
regression; the held-out part gives an AUROC.

Writes OUT_DIR/auroc.tsv (fold, n_train, n_test, n_test_positive, components, auroc; then
'mean' and 'sd' rows) and OUT_DIR/gwas_classify.json (the same plus counts), under
temporary names renamed at the end.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="gwas_classify.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("sed", metavar="SED_H5", help="sed.h5 from sed.py")
    p.add_argument("positives", help="positive variant ids, one per line")
    p.add_argument("negatives", help="negative variant ids, one per line")
    p.add_argument("-o", "--out", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--stat", choices=SED_STATS, default="maxlog2", help="sed.h5 statistic used as features")
    p.add_argument("--components", type=int, default=10, help="PCA components (at most the number of targets)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold split")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    import os

    from basenji_tk.analysis.gwas import run_gwas_classify
    from basenji_tk.errors import InputError

    if args.components < 1 or args.folds < 2:
        raise InputError("options: expected --components >= 1 and --folds >= 2")
    res = run_gwas_classify(args.sed, args.positives, args.negatives, args.out, args.stat, args.components,
                            args.folds, args.seed, args.force)
    c = res["counts"]
    print(f"AUROC {res['mean']:.3f} +- {res['sd']:.3f} over {args.folds} folds ({c['positives']:,} positives, "
          f"{c['negatives']:,} negatives; {c['positives_not_in_sed'] + c['negatives_not_in_sed']:,} ids not in "
          f"sed.h5); wrote {os.path.join(args.out, 'auroc.tsv')}")
    return 0


if __name__ == "__main__":
    cli.run(main)
