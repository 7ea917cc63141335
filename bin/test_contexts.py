#!/usr/bin/env python
"""Pairs models and the two baselines in held-out contexts: AUPRC/AUROC per context, pooled, binned, by fold."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Score pairs models (train.py on a make_pairs.py dataset: sequence + a context's expression
[+ the mean accessibility] -> accessible) in the held-out (test) contexts of DATA's fold,
genome-wide over the regions of --split, beside two baselines (ChromDragoNN, Nair et al. 2019):
  mean          fraction of the fold's training contexts where the region is accessible
  rna_weighted  that mean weighted by max(0, similarity) of the held-out context's expression
                to each training context's: --similarity centered (default: Pearson r after
                subtracting each TF's mean over the training contexts, so TFs high everywhere do
                not make every context look alike) or pearson (Pearson r of the context table's
                rows as make_pairs.py stored them, e.g. log TPM; near-uniform weights when most
                TFs vary little, which is about what the paper saw: 0.587 against the mean's 0.579)

A model path holding {fold} (e.g. runs/resnet_fold{fold}) is one model per fold; --folds all
scores every fold of DATA (each context is held out once) and compares the models over the
folds with a one-tailed Wilcoxon signed-rank test (exact; with 5 folds the smallest p is
1/32 = 0.031). Each model runs its sequence layers once per region and only the layers after
the context joins once per (region, context) pair, when its graph allows (else every pair
runs the whole model; same numbers). Written to OUT:
  metrics.tsv          model, fold, context, genome, regions, positives, auprc, auroc; genome is
                       all, and with regions from several splits train (the training genome:
                       the paper's setting), valid, test (the held-out genome)
  pooled.tsv           the same pooled over the contexts (with --folds all also fold 'all')
  binned_auprc.tsv/.png  AUPRC by the fraction of training contexts where the region is
                       accessible (Fig. 1E); in bins from 0.5 up, the AUPRC of the CLOSED state
  pr_curves.png        pooled ROC and precision-recall curves per model
  folds.tsv, folds_wilcoxon.tsv  (several folds) per-fold pooled AUPRC/AUROC; the tests
  test_contexts.json   folds, contexts, methods and seconds
A context with no positives in a genome part is left out there (logged). Titles say
SEMI-SYNTHETIC when the dataset does (or --label).
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="test_contexts.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("data_dir", help="pairs dataset folder (make_pairs.py)")
    p.add_argument("models", nargs="+", help="model folders from train.py; {fold} in a path stands for the fold")
    p.add_argument("-o", "--out", required=True, help="folder for the tables and figures")
    p.add_argument("--names", default="", help="comma-separated model names (default: the folders' names)")
    folds = p.add_mutually_exclusive_group()
    folds.add_argument("--fold", type=int, default=None, help="the context fold (default: the first model's)")
    folds.add_argument("--folds", choices=["all"], default=None, help="'all': every fold of DATA")
    p.add_argument("--split", default="all", help="genome split(s) of the regions: all, train, valid, test, or a "
                   "comma-separated list")
    p.add_argument("--contexts", default="", help="comma-separated contexts to score (default: the fold's test "
                   "contexts)")
    p.add_argument("--no_baselines", action="store_true", help="leave out the mean and RNA-weighted baselines")
    p.add_argument("--similarity", default="centered", choices=["pearson", "centered"],
                   help="similarity of expression vectors for the rna_weighted baseline")
    p.add_argument("--compare", default="", metavar="A,B", help="test only A > B over the folds")
    p.add_argument("--weights", choices=["best", "last"], default="best",
                   help="each model folder's model_best.keras (best validation epoch) or checkpoint.keras (its last "
                        "epoch: when the validation genome says little about the scored contexts)")
    p.add_argument("--batch_size", type=int, default=256, help="regions per sequence batch and pairs per model call")
    p.add_argument("--label", default=None, help="a label for the figure titles (default: SEMI-SYNTHETIC when the "
                   "dataset says so)")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def _list(text):
    return tuple(x.strip() for x in text.split(",") if x.strip())


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.crosscontext_report import Options, format_pooled, test_contexts

    split = args.split if args.split == "all" or "," not in args.split else list(_list(args.split))
    options = Options(names=_list(args.names), fold=args.fold, all_folds=args.folds == "all", split=split,
                      contexts=_list(args.contexts) or None, baselines=not args.no_baselines,
                      similarity=args.similarity, compare=_list(args.compare) or None, batch_size=args.batch_size,
                      label=args.label, weights=args.weights, force=args.force, progress=cli.show_progress(args.quiet))
    out = test_contexts(args.data_dir, args.models, args.out, options)
    print(format_pooled(out["pooled"]))
    if out["wilcoxon"] is not None:
        for _, r in out["wilcoxon"].iterrows():
            print(f"{r['a']} > {r['b']}: n {r['n']}, mean difference {r['mean_difference']:+.4f}, p {r['p']:.4f}")
    return 0


if __name__ == "__main__":
    cli.run(main)
