#!/usr/bin/env python
"""Attributions per base (gradient x input, integrated gradients, DeepSHAP) for TF-MoDISco and tracks."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
For a window centred on each BED region, how much each base contributes to one
scalar of the model: the --targets of one --output summed (one target, or a
lineage as a,b,c; all by default), over the bins --stat picks for a positional
output (center: the central --center_len bp; tss: the region's midpoint bin +-
--tss_flank; sum: all bins); an output of one number per target is that number.
An output that ends in a sigmoid or softmax is explained by its logit (the input of
that activation), as ChromDragoNN and chrombpnet do; --probability explains the
probability itself, --logit insists on a logit (an error without one). A profile
output (a softmax over positions) is explained as chrombpnet explains its profile
head: softmax(logits), held constant, times the mean-centred logits, summed over
positions (--stat sum by default); its counts are another output (--output).

Methods:
  grad_x_input          the gradient at the sequence times the sequence; quick,
                        local (one pass), does not sum to anything
  integrated_gradients  gradients averaged along the straight path from a reference
                        (--reference zero, or shuffle) to the sequence, --steps steps
  deepshap              DeepLIFT's rescale rule against --n_references dinucleotide
                        shuffles of each sequence, averaged; sums to f(x) - mean f(ref)

Writes OUT_DIR/attributions.h5 (one_hot, attributions: the observed base's
contribution, hypothetical: every base's, for TF-MoDISco; chrom, start, end, name,
strand; f_x, f_ref, gap per region), attributions.bw (summed over bases; means where
windows overlap) and a plot per region (a logo of the centre for short windows).
The completeness gap (|sum - (f(x) - mean f(ref))|, relative to max(1, |f|)) of
every batch is checked; a warning above 1e-3 names the layers with no DeepLIFT rule.
--crop BP keeps only the central BP of each window in the files.

The model's other inputs come from --context NAME (a context of the training
dataset, or a row of --context_tsv), the signal tracks the dataset named, or
--input NAME=VALUE|FILE.npy; they are the same for a sequence and its references.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="attribute.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py or import_model.py")
    p.add_argument("regions", help="BED of regions (name in column 4)")
    p.add_argument("-f", "--fasta", default=None, help="genome FASTA (None: the one the model was trained on)")
    p.add_argument("-o", "--out_dir", default="attribute_out", help="output folder")
    p.add_argument("--method", choices=("grad_x_input", "integrated_gradients", "deepshap"), default="deepshap",
                   help="attribution method")
    p.add_argument("--output", default=None, help="the model output to explain (when it has several)")
    p.add_argument("--targets", default=None, help="comma-separated target indices or ids, summed (default: all)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--logit", dest="logit", action="store_true", default=None,
                       help="explain the output before its final sigmoid/softmax (the default for such an output)")
    which.add_argument("--probability", dest="logit", action="store_false",
                       help="explain a sigmoid/softmax output after the activation")
    p.add_argument("--stat", choices=("sum", "center", "tss"), default=None,
                   help="output bins to explain (default: center; sum for a profile)")
    p.add_argument("--center_len", type=int, default=200, help="with --stat center, bp at the window centre")
    p.add_argument("--tss_flank", type=int, default=0, help="with --stat tss, also this many bins either side")
    p.add_argument("--n_references", type=int, default=20, help="dinucleotide-shuffled references per sequence")
    p.add_argument("--steps", type=int, default=50, help="integrated gradients: trapezoid steps along the path")
    p.add_argument("--reference", choices=("zero", "shuffle"), default=None,
                   help="integrated gradients' reference (default: zero); deepshap always shuffles")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles")
    p.add_argument("--batch_size", type=int, default=4, help="regions per batch")
    p.add_argument("--crop", type=int, default=None, metavar="BP",
                   help="keep only the central BP of each window in the files (default: the whole window)")
    cli.add_input_options(p)
    p.add_argument("--model", default=None, help="a .keras file to use instead of the folder's model")
    p.add_argument("--no_plots", action="store_true", help="skip the plots")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.inputs import options_from_args
    from basenji_tk.interpret.attribution_run import attribute_regions

    res = attribute_regions(args.model_dir, args.regions, args.out_dir, fasta=args.fasta, method=args.method,
                            output=args.output, targets=args.targets, logit=args.logit, stat=args.stat,
                            center_len=args.center_len, tss_flank=args.tss_flank, n_references=args.n_references,
                            steps=args.steps, reference=args.reference, seed=args.seed, batch_size=args.batch_size,
                            crop=args.crop, plots=not args.no_plots, model_file=args.model,
                            inputs=options_from_args(args), quiet=args.quiet, force=args.force)
    gap = "" if res["method"] == "grad_x_input" else f"; largest completeness gap {res['max_gap']:.2g}"
    print(f"{args.out_dir}: {res['method']} attributions of {res['regions']} regions x {res['length']:,} bp{gap}")
    return 0


if __name__ == "__main__":
    cli.run(main)
