#!/usr/bin/env python
"""In-silico motif insertion: the prediction change when a motif is written into N backgrounds."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Insert the motif --motif NAME (a motif name or TF name of --motifs: a MEME file, or
'jaspar' / 'jaspar:CORE:vertebrates' for JASPAR 2024) into N backgrounds at the window
centre (or centred on --position) on strand + , - or both, and score one output
(--output) with and without it: the chosen --targets summed (a lineage may be a sum of
targets) over the bins --stat picks around the motif for a positional output (center:
the bins it overlaps), the number itself otherwise.

Backgrounds (bpAI-TAC used 1,000):
  --regions BED      --n GENERATED dinucleotide shuffles of the windows centred on the
                     regions (exact dinucleotide counts), cycled over the regions
  --gc_matched N     N genome windows matching the GC of --gc, or of the --regions'
                     windows (which are then excluded)
--instance consensus writes the consensus; sample draws one instance from the PWM per
background (seeded by --seed).

Comparisons on the same backgrounds: --model_b DIR (a second model), or --context A
--context_b B (two contexts of one model). --test signed_rank (default) is the paired
Wilcoxon signed-rank test of the two arms' deltas: both arms see the same backgrounds,
so pairing removes the background-to-background spread; rank_sum (bpAI-TAC's choice) is
the Mann-Whitney test treating the deltas as independent samples.

Writes OUT/insertions.tsv (background, source, background_kind, strand, without, with,
delta [, without_b, with_b, delta_b]), summary.tsv (per arm and strand: n, median_delta,
q25, q75, iqr, fraction_positive, the Wilcoxon signed-rank statistic and p of with vs
without; then the comparison row) and insertion_box.png. --footprint (a profile output)
adds footprint.tsv and footprint.png: the profile around the motif, median and 25-75 %
band over backgrounds with and without it, a bias input held at zero.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="insert_motif.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py or import_model.py")
    p.add_argument("--regions", default=None, metavar="BED", help="regions whose windows are shuffled")
    p.add_argument("--gc_matched", type=int, default=None, metavar="N", help="N GC-matched genome windows instead")
    p.add_argument("--gc", type=float, default=None, help="with --gc_matched and no --regions, the GC to match")
    p.add_argument("--motif", required=True, help="motif name (or TF name) in --motifs")
    p.add_argument("--motifs", required=True, help="MEME file, or jaspar[:COLLECTION:TAX_GROUP]")
    p.add_argument("-f", "--fasta", default=None, help="genome FASTA (None: the one the model was trained on)")
    p.add_argument("-o", "--out_dir", default="insert_motif_out", help="output folder")
    p.add_argument("--instance", choices=("consensus", "sample"), default="consensus", help="what is inserted")
    p.add_argument("--n", type=int, default=1000, help="backgrounds (with --regions)")
    p.add_argument("--position", type=int, default=None, help="window bp the motif is centred on (default: centre)")
    p.add_argument("--strand", choices=("+", "-", "both"), default="+", help="strand of the inserted motif")
    p.add_argument("--output", default=None, help="the model output to score (when it has several)")
    p.add_argument("--targets", default=None, help="comma-separated target indices or ids, summed; all by default")
    p.add_argument("--stat", choices=("center", "sum", "tss"), default="center", help="output bins scored")
    p.add_argument("--tss_flank", type=int, default=0, help="with --stat tss, also this many bins either side")
    p.add_argument("--model_b", default=None, metavar="DIR", help="a second model to compare")
    p.add_argument("--context_b", default=None, metavar="NAME", help="a second context (of --context's model)")
    p.add_argument("--test", choices=("signed_rank", "rank_sum"), default="signed_rank", help="comparison test")
    p.add_argument("--footprint", action="store_true", help="footprint of the motif on a profile output")
    p.add_argument("--flank", type=int, default=None, help="footprint bp either side of the motif (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of shuffles, GC sampling and PWM instances")
    cli.add_input_options(p)
    cli.add_prediction_options(p)
    p.set_defaults(batch_size=32)
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.evaluate import parse_shifts
    from basenji_tk.analysis.inputs import options_from_args
    from basenji_tk.interpret.insertion import insert_motif

    res = insert_motif(args.model_dir, args.out_dir, args.motif, args.motifs, regions=args.regions,
                       gc_matched=args.gc_matched, gc=args.gc, fasta=args.fasta, instance=args.instance, n=args.n,
                       output=args.output, targets=args.targets, stat=args.stat, tss_flank=args.tss_flank,
                       position=args.position, strand=args.strand, model_b=args.model_b, context_b=args.context_b,
                       inputs=options_from_args(args), test=args.test, footprint_plot=args.footprint,
                       flank=args.flank, rc=args.rc, shifts=parse_shifts(args.shifts), batch_size=args.batch_size,
                       seed=args.seed, model_file=args.model, force=args.force)
    print(f"{args.out_dir}: {res['motif']} ({res['width']} bp) into {res['backgrounds']:,} backgrounds: median delta "
          f"{res['median_delta']:+.4g}, {res['fraction_positive']:.0%} > 0, Wilcoxon p {res['p_value']:.3g}")
    return 0


if __name__ == "__main__":
    cli.run(main)
