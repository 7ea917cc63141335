#!/usr/bin/env python
"""Saliency maps: gradient x input per base and Basenji's per-bin saliency, or per feature of another input."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
For a window centred on each BED region and one target of one output (--output NAME
when the model has several), the prediction explained is the target's output summed
over bins chosen by --stat (center: the bins over the central --center_len bp; tss:
the bin of the region's midpoint +- --tss_flank; sum: all bins); an output of one
number per target (a total, a value, a probability) is that number. --logit explains
an output that ends in a sigmoid or softmax before it (ChromDragoNN scores the logit:
its gradient does not vanish where the model is sure).

With respect to the DNA sequence (the default):
  grad_x_input  gradient of the output with respect to the one-hot input, times the
                input: one signed value per base
  bin_saliency  Basenji's map: per bin of the representation after the convolution
                tower (the output of the model's last pooling layer, or --layer),
                the dot product of the activations with their gradient; positive
                bins mark activating elements, negative ones repressive elements
Writes OUT_DIR/saliency.h5 (gradients (N, L, 4) float16, grad_x_input (N, L),
bin_saliency (N, R), chrom, start, end, name, strand), grad_x_input.bw and
bin_saliency.bw over the windows (means where windows overlap), and one track
plot per region. A model without pooling gets grad_x_input only.

With respect to another input (--wrt NAME; the default for a model without a
sequence input): a context's vector (which TFs' expression a prediction leans on)
or a signal track. Writes saliency.h5 (input, gradients, grad_x_input of the
input's shape per region, feature_grad_x_input (N, F) summed over positions for a
signal, feature_names), features.tsv (features by mean |grad x input| over the
regions) and top_features.png (the --top features, signed means).

The model's other inputs come from --context NAME (a context of the training
dataset, or a row of --context_tsv), the signal tracks the dataset named, or
--input NAME=VALUE|FILE.npy.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="saliency.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py or import_model.py")
    p.add_argument("regions", help="BED of regions (name in column 4)")
    p.add_argument("-f", "--fasta", default=None, help="genome FASTA (None: the one the model was trained on)")
    p.add_argument("-o", "--out_dir", default="saliency_out", help="output folder")
    p.add_argument("--output", default=None, help="the model output to explain (when it has several)")
    p.add_argument("--target", default="0", help="target index or id")
    p.add_argument("--logit", action="store_true", help="explain the output before its final sigmoid/softmax")
    p.add_argument("--stat", choices=("sum", "center", "tss"), default="center", help="output bins to explain")
    p.add_argument("--center_len", type=int, default=200, help="with --stat center, bp at the window centre")
    p.add_argument("--tss_flank", type=int, default=0, help="with --stat tss, also this many bins either side")
    cli.add_score_at_option(p)
    p.add_argument("--wrt", default=None, metavar="INPUT", help="the input to attribute to (default: the sequence)")
    p.add_argument("--top", type=int, default=20, help="features shown in top_features.png (with --wrt)")
    p.add_argument("--layer", default=None, help="layer whose output is the bin representation (default: the "
                   "last pooling layer)")
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
    from basenji_tk.interpret.saliency import saliency_maps

    res = saliency_maps(args.model_dir, args.regions, args.out_dir, fasta=args.fasta, target=args.target,
                        stat=args.stat, tss_flank=args.tss_flank, center_len=args.center_len, layer=args.layer,
                        plots=not args.no_plots, model_file=args.model, output=args.output, logit=args.logit,
                        wrt=args.wrt, top=args.top, inputs=options_from_args(args), score_at=args.score_at,
                        quiet=args.quiet, force=args.force)
    if "layer" in res:
        print(f"{args.out_dir}: {res['regions']} regions; bin saliency from layer {res['layer']} "
              f"({res['bins']} bins of {res['bin_width']} bp)")
    elif "features" in res:
        top = ", ".join(f"{name} ({value:+.3g})" for name, value in res["top"])
        print(f"{args.out_dir}: {res['regions']} regions; gradient x input of {res['features']} features of "
              f"'{res['input']}'; largest: {top}")
    else:
        print(f"{args.out_dir}: {res['regions']} regions; gradient x input per base (no pooling layer, "
              "so no bin saliency)")
    return 0


if __name__ == "__main__":
    cli.run(main)
