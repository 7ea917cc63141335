#!/usr/bin/env python
"""FASTA + coverage tracks -> a training dataset (TFRecords) for basenji_tk."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Tile a genome into sequences of --seq_length bp, compute each track's coverage in
--pool_width bp bins, split the sequences into train/valid/test and write

  OUT/sequences.bed       chrom, start, end, split (one row per record, in record order)
  OUT/targets.txt         the resolved targets table
  OUT/statistics.json     lengths, target ids, counts per split, input hashes
  OUT/tfrecords/{train,valid,test}-N.tfr   ZLIB TFRecords of (sequence, targets)

targets.txt is tab-separated with a header; columns identifier and file (BigWig or
BED, relative to the table's folder) are required; sum_stat (sum|mean|max, default
sum), clip, clip_soft, scale, description and score_column (BED column to use as
the value; otherwise a BED base covered by an interval is 1) are optional.

Sequences lie wholly inside contigs: the pieces between runs of >= --gap_min N or
--unmap bases and --blacklist regions. A sequence with more than --max_n of N or
unmappable bases is dropped. --valid/--test take a fraction (whole chunks of about
--chunk_size bp go to one split, so no sequence crosses splits) or a comma-separated
list of chromosomes. The output is built under a temporary name and renamed when
complete; an existing folder with a different dataset is kept unless --force.

--features PLAN.json (instead of TARGETS) writes named features (basenji_tk.dataset/2):
the plan's optional sequence, signal inputs and labels (crop, smoothing, binarising, log,
totals, quantile normalisation; see basenji_tk.data.features). A plan without a sequence needs no
FASTA: chromosome sizes come from --sizes or the first BigWig's header, and contigs are whole
chromosomes (no N masking). --regions BED tiles only inside the given intervals.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="make_targets.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("fasta", nargs="?", help="genome FASTA, plain or bgzip (indexed on first use)")
    p.add_argument("targets", nargs="?", help="targets table (TSV with a header); not with --features")
    p.add_argument("--features", metavar="PLAN", help="feature plan JSON (instead of TARGETS)")
    p.add_argument("--sizes", help="chromosome sizes (chrom<TAB>size) for a plan without sequence or FASTA")
    p.add_argument("--regions", action="append", default=[], metavar="BED",
                   help="tile only inside these intervals (repeatable)")
    p.add_argument("-o", "--out", required=True, help="dataset folder to write")
    p.add_argument("-l", "--seq_length", type=int, default=131072, help="sequence length (bp)")
    p.add_argument("-w", "--pool_width", type=int, default=128, help="target bin width (bp)")
    p.add_argument("--stride", type=int, default=None, help="distance between sequence starts (default: seq_length)")
    p.add_argument("--max_n", type=float, default=0.1, help="largest fraction of N/unmappable bases in a sequence")
    p.add_argument("--gap_min", type=int, default=1000, help="shortest run of N/unmappable bases that splits contigs")
    p.add_argument("--unmap", action="append", default=[], metavar="BED", help="unmappable regions (repeatable)")
    p.add_argument("--blacklist", action="append", default=[], metavar="BED",
                   help="regions no sequence may overlap (repeatable)")
    cli.add_genome_split_options(p)
    p.add_argument("--chroms", default="", help="only these chromosomes, comma-separated (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for the split and the order of training records")
    p.add_argument("--seqs_per_tfr", type=int, default=256, help="records per TFRecord file")
    p.add_argument("--target_dtype", default="float16", choices=["float16", "float32"], help="stored target type")
    p.add_argument("--force", action="store_true", help="replace an output folder that holds something else")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.data.dataset import Options, build

    options = Options(
        seq_length=args.seq_length, pool_width=args.pool_width, stride=args.stride, max_n=args.max_n,
        gap_min=args.gap_min, unmap=tuple(args.unmap), blacklist=tuple(args.blacklist), valid=args.valid,
        test=args.test, chunk_size=args.chunk_size, seed=args.seed, seqs_per_tfr=args.seqs_per_tfr,
        chroms=tuple(c for c in args.chroms.split(",") if c), target_dtype=args.target_dtype,
        force=args.force, progress=cli.show_progress(args.quiet), sizes=args.sizes, regions=tuple(args.regions),
    )
    build(args.fasta, args.targets, args.features, args.out, options)


if __name__ == "__main__":
    cli.run(main)
