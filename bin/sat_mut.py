#!/usr/bin/env python
"""In-silico saturation mutagenesis: how each base of a region moves the model's prediction."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Each BED region (or each SNP of --vcf, once with its reference and once with its
alternative allele) is centred in a window of the model's input length. Every base
of the central --mut_len bp is changed to each of the other three; a mutant's
score per target is its prediction minus the reference prediction, summed over
output bins chosen by --stat:

  sum     all output bins
  center  the bins overlapping the mutated region
  tss     the bin holding the region's midpoint (a 1-bp TSS), +- --tss_flank bins

That is for binned and profile outputs; an output of one number per target (a total,
a value, a probability) is scored by the number itself. A model with several outputs
needs --output NAME. A profile that is a softmax over its positions sums to 1, so a
--stat covering all its positions is refused (score fewer, or its counts output).
A model's other inputs are held fixed while the sequence is mutated, so the scores
say what the sequence needs in that context: a context's vector (--context NAME, from
the training dataset or --context_tsv), signal tracks (read from the tracks the
dataset named), or fixed values (--input NAME=VALUE|FILE.npy).

Predictions use the fast ISM path (reference activations reused outside each
mutation's band; the same numbers) where the model allows, else every mutant is
predicted in full (--method naive forces that). With center or tss, mutations
outside the scored bins' receptive field score 0 without being predicted.

Writes OUT_DIR/scores.h5: seqs (N, mut_len, 4) reference one-hot; scores
(N, mut_len, 4, T) float16 (0 at reference bases); importance (N, mut_len, T) the
change with the largest |score| per base, signed; ref_score (N, T); chrom, start,
end (mutated region), window_start, site_start/site_end, name, strand, allele,
ref, alt; target_ids, target_labels; counts and options as attributes. With
--plots, OUT_DIR/plots/ holds a PNG per sequence and target: a logo of the loss
when each reference base is mutated, a logo of gains, and a 4 x L heatmap.

Sites whose central bp run off a chromosome end are skipped and counted; windows
that only reach past an end are padded with N (counted).
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="sat_mut.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py")
    p.add_argument("regions", nargs="?", default=None, help="BED of regions (name in column 4, strand in 6)")
    p.add_argument("--vcf", default=None, help="mutate around the SNPs of this VCF instead of BED regions")
    p.add_argument("-f", "--fasta", default=None, help="genome FASTA (None: the one the model was trained on)")
    p.add_argument("-o", "--out_dir", default="sat_mut_out", help="output folder")
    p.add_argument("--mut_len", type=int, default=200, help="bp mutated at the centre of each window")
    p.add_argument("--stat", choices=("sum", "center", "tss"), default="sum", help="output bins a score sums over")
    p.add_argument("--tss_flank", type=int, default=0, help="with --stat tss, also this many bins either side")
    cli.add_score_at_option(p)
    p.add_argument("--targets", default=None, help="comma-separated target indices or ids; all when not given")
    p.add_argument("--output", default=None, help="the model output to score (when it has several)")
    cli.add_input_options(p)
    cli.add_prediction_options(p)
    p.set_defaults(batch_size=32)
    p.add_argument("--method", choices=("auto", "fast", "naive"), default="auto", help="prediction path")
    p.add_argument("--float32", action="store_true", help="store scores as float32 instead of float16")
    p.add_argument("--plots", action="store_true", help="logos and heatmap per sequence and target")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.evaluate import parse_shifts
    from basenji_tk.analysis.inputs import options_from_args
    from basenji_tk.interpret.satmut import sat_mut

    counts = sat_mut(args.model_dir, args.out_dir, bed=args.regions, vcf=args.vcf, fasta=args.fasta,
                     mut_len=args.mut_len, stat=args.stat, targets=args.targets, rc=args.rc,
                     shifts=parse_shifts(args.shifts), batch_size=args.batch_size, method=args.method,
                     tss_flank=args.tss_flank, float32=args.float32, plots=args.plots, model_file=args.model,
                     output=args.output, inputs=options_from_args(args), score_at=args.score_at, quiet=args.quiet,
                     force=args.force)
    print(f"{args.out_dir}/scores.h5: {counts['sites'] - counts['sites_off_chromosome_end_skipped']:,} sequences, "
          f"{counts['mutants_predicted']:,} mutants at {counts['mutants_per_second'] or 0:,.0f}/s")
    return 0


if __name__ == "__main__":
    cli.run(main)
