#!/usr/bin/env python
"""FASTA + regions (BED or narrowPeak) -> a regions dataset: windows centred on the regions."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Centre a window of -l bp on each region (BED: the middle base, start + (end - start) // 2;
narrowPeak: the summit, start + column 10, or the middle when column 10 is -1), add
GC-matched negative windows (--negatives RATIO), split into train/valid/test and write
a dataset folder (kind "regions"): statistics.json, sequences.bed (chrom, start, end,
split, name; negatives are named "negative", merged duplicates "a,b") and
tfrecords/{train,valid,test}-N.tfr.

Values come from a targets table (TARGETS: the label 'target', each track binned at
-w bp over the whole window, as make_targets.py) or from a feature plan
(--features PLAN.json: labels and signal inputs with crop, smoothing, binarising, log,
totals, quantile normalisation). --label NAME adds a binary label, 1 on the regions'
windows and 0 on the negatives.

Windows past a chromosome end, overlapping --blacklist, with more than --max_n N, or
repeating an earlier region's window (merged into it) are dropped and counted in
statistics.json ("regions"). --valid/--test take a fraction (whole chunks of about
--chunk_size bp go to one split; a window takes its centre's chunk and is dropped when
it reaches into a chunk of another split) or chromosomes, e.g. --valid chr12,chr15.

Negatives are windows from the chromosomes holding regions that overlap no region, no
region's window widened by --margin bp, and no blacklisted base, with at most --max_n
N; candidates are one uniform start in every 50 bp, and --gc_bins equal bins of GC
fraction (of the A/C/G/T bases) are filled to RATIO x the positives' count in each bin.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="make_regions.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("fasta", help="genome FASTA, plain or bgzip (indexed on first use)")
    p.add_argument("regions", help="regions: BED (3+ columns) or narrowPeak (10 columns), plain or gzip")
    p.add_argument("targets", nargs="?", default=None, help="targets table (TSV); or give --features")
    p.add_argument("-o", "--out", required=True, help="dataset folder to write")
    p.add_argument("--features", default=None, metavar="PLAN.json", help="feature plan instead of TARGETS")
    p.add_argument("-l", "--seq_length", type=int, default=1000, help="window length (bp)")
    p.add_argument("-w", "--pool_width", type=int, default=1, help="bin width of the TARGETS label (bp)")
    p.add_argument("--format", dest="fmt", default="auto", choices=["auto", "bed", "narrowpeak"],
                   help="regions format; auto: narrowPeak when named so or 10 columns")
    p.add_argument("--max_n", type=float, default=0.1, help="largest fraction of N bases in a window")
    p.add_argument("--blacklist", action="append", default=[], metavar="BED",
                   help="regions no window may overlap (repeatable)")
    p.add_argument("--negatives", type=float, default=0.0, help="GC-matched negatives per positive (0: none)")
    p.add_argument("--margin", type=int, default=0, help="bp kept free around each positive window")
    p.add_argument("--gc_bins", type=int, default=20, help="equal GC-fraction bins for matching negatives")
    p.add_argument("--label", default="", metavar="NAME", help="add a binary label NAME: 1 positive, 0 negative")
    cli.add_genome_split_options(p)
    p.add_argument("--gap_min", type=int, default=1000, help="shortest run of N that splits contigs")
    p.add_argument("--chroms", default="", help="only regions on these chromosomes, comma-separated")
    p.add_argument("--seed", type=int, default=0, help="seed for splits, negatives and training order")
    p.add_argument("--seqs_per_tfr", type=int, default=256, help="records per TFRecord file")
    p.add_argument("--target_dtype", default="float16", choices=["float16", "float32"], help="TARGETS label type")
    p.add_argument("--force", action="store_true", help="replace a finished output folder")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.data.regions import Options, make_regions

    options = Options(
        seq_length=args.seq_length, pool_width=args.pool_width, max_n=args.max_n, blacklist=tuple(args.blacklist),
        valid=args.valid, test=args.test, chunk_size=args.chunk_size, gap_min=args.gap_min,
        chroms=tuple(c for c in args.chroms.split(",") if c), fmt=args.fmt, negatives=args.negatives,
        margin=args.margin, gc_bins=args.gc_bins, label=args.label, seed=args.seed,
        records_per_file=args.seqs_per_tfr, target_dtype=args.target_dtype, force=args.force,
        progress=cli.show_progress(args.quiet))
    make_regions(args.fasta, args.regions, args.out, options, targets=args.targets, plan_path=args.features)


if __name__ == "__main__":
    cli.run(main)
