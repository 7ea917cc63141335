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
    import json
    import os

    import numpy as np

    from basenji_tk import files
    from basenji_tk.errors import InputError
    from basenji_tk.analysis.gwas import classify_cv, read_id_list, variant_features
    from basenji_tk.analysis.sedld_outputs import _jsonable

    if args.components < 1 or args.folds < 2:
        raise InputError("options: expected --components >= 1 and --folds >= 2")
    ids, feats, targets = variant_features(args.sed, args.stat)
    row = {v: i for i, v in enumerate(ids)}
    pos, neg = read_id_list(args.positives), read_id_list(args.negatives)
    both = set(pos) & set(neg)
    if both:
        raise InputError(f"{args.negatives}: {len(both):,} ids are also in {args.positives} "
                         f"(e.g. {sorted(both)[0]})")
    counts = {"sed_variants": len(ids), "targets": len(targets), "positives_listed": len(pos),
              "negatives_listed": len(neg), "positives_not_in_sed": sum(v not in row for v in pos),
              "negatives_not_in_sed": sum(v not in row for v in neg)}
    pos_i = [row[v] for v in pos if v in row]
    neg_i = [row[v] for v in neg if v in row]
    counts.update(positives=len(pos_i), negatives=len(neg_i))
    for name, n, path in (("positives", len(pos_i), args.positives), ("negatives", len(neg_i), args.negatives)):
        if n < args.folds:
            raise InputError(f"{path}: {n} {name} found in {args.sed} (of {counts[name + '_listed']}); need "
                             f"at least --folds = {args.folds}")
    files.refuse_overwrite(args.out, ["auroc.tsv", "gwas_classify.json"], args.force)
    with files.claim(args.out):
        X = feats[pos_i + neg_i]
        y = np.r_[np.ones(len(pos_i)), np.zeros(len(neg_i))]
        res = classify_cv(X, y, args.components, args.folds, args.seed)
        tsv, js = os.path.join(args.out, "auroc.tsv"), os.path.join(args.out, "gwas_classify.json")
        tmp = [os.path.join(args.out, f".{os.path.basename(p)}.{os.getpid()}.tmp") for p in (tsv, js)]
        with open(tmp[0], "w") as fh:
            fh.write("fold\tn_train\tn_test\tn_test_positive\tcomponents\tauroc\n")
            for f in res["folds"]:
                fh.write(f"{f['fold']}\t{f['n_train']}\t{f['n_test']}\t{f['n_test_positive']}\t{f['components']}\t"
                         f"{f['auroc']:.6f}\n")
            fh.write(f"mean\t\t\t\t\t{res['mean']:.6f}\nsd\t\t\t\t\t{res['sd']:.6f}\n")
        with open(tmp[1], "w") as fh:
            json.dump(_jsonable({"sed": args.sed, "stat": args.stat, "components": args.components,
                                 "folds": args.folds, "seed": args.seed, "counts": counts, **res}), fh, indent=1)
        for t, f in zip(tmp, (tsv, js)):
            os.replace(t, f)
    print(f"AUROC {res['mean']:.3f} +- {res['sd']:.3f} over {args.folds} folds ({len(pos_i):,} positives, "
          f"{len(neg_i):,} negatives; {counts['positives_not_in_sed'] + counts['negatives_not_in_sed']:,} ids not in "
          f"sed.h5); wrote {tsv}")
    return 0


if __name__ == "__main__":
    cli.run(main)
