#!/usr/bin/env python
"""Score a trained model (any kind) on a split of a dataset: per-target accuracy tables and plots."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Predict every example of --split (default test) of DATA_DIR (a dataset of any builder:
tiling, regions, table, pairs) with MODEL_DIR's model (from train.py or import_model.py;
or --model), each output against the label it was trained on, and write to --out. For
a model of binned tracks:

  acc.tsv                     one row per target: index, identifier, description,
                              pearsonr, r2 (1 - SS_res/SS_tot), log_pearsonr and log_r2
                              (on log2(x+1)), spearmanr; auroc/auprc for 0/1 targets;
                              with --peaks: peak_fraction, peak_auprc, peak_enrichment;
                              with --baseline: baseline_pearsonr, baseline_r2 (and
                              baseline_peak_auprc)
  scatter_<target>.png        log2 prediction against experiment, per target
  tracks_<chrom>_<start>.png  experiment and prediction along the 3 sequences with the
                              most experiment signal

Other outputs, by kind: probabilities (binary labels) get auroc, auprc, positives,
count and curves_<output>.png (ROC and PR); one value per record and totals get
pearsonr, spearmanr, r2, rmse, count and scatter_<target>.png; profiles get jsd,
profile_pearsonr (across positions, mean over records) and count_pearsonr, and the
profiles of the 3 records with most reads. A model of several outputs writes
acc_<output>.tsv per output, its plots prefixed with the output's name. Inputs the
dataset lacks come from --input NAME=VALUE or --context.

Prints a short table. --rc and --shifts average the predictions over reverse
complements and shifted copies of each sequence (write negative shifts as
--shifts=-1,0,1). --peaks calls peaks in the experiment (Poisson, FDR 0.01) and
scores the predictions as a peak classifier; the enrichment is AUPRC over the
fraction of bins that are peaks (1 for a random predictor). --baseline fits,
per target, a linear model on each bin's GC fraction and CpG count on the train
split: the number to beat for a model that learnt more than base composition.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="test.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py or import_model.py")
    p.add_argument("data_dir", help="dataset folder (make_targets.py, make_regions.py, make_table.py, make_pairs.py)")
    p.add_argument("-o", "--out", default="test_out", help="folder for acc.tsv and plots")
    p.add_argument("--split", default="test", help="split to score (train, valid or test)")
    cli.add_prediction_options(p)
    cli.add_input_options(p)
    p.add_argument("--peaks", action="store_true", help="also score predictions of called peaks")
    p.add_argument("--baseline", action="store_true", help="also score a GC/CpG linear baseline")
    p.add_argument("--no_plots", action="store_true", help="write acc.tsv only")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.evaluate import evaluate, format_table, parse_shifts
    from basenji_tk.analysis.inputs import options_from_args

    shifts = parse_shifts(args.shifts)
    df = evaluate(args.model_dir, args.data_dir, args.out, split=args.split, rc=args.rc, shifts=shifts,
                  peaks=args.peaks, baseline=args.baseline, batch_size=args.batch_size,
                  plots=not args.no_plots, model_file=args.model, quiet=args.quiet, force=args.force,
                  inputs=options_from_args(args))
    print(format_table(df))
    return 0


if __name__ == "__main__":
    cli.run(main)
