#!/usr/bin/env python
"""FASTA + one peak BED per context + a context table -> a region x context pairs dataset."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Bin the genome (or --regions) into --bin_length bp bins every --stride bp, label each bin in
each context (1 when MORE than --threshold of the bin overlaps one of the context's peaks),
and write one record per bin: the --seq_length bp centred on it and its row of C labels.

CONTEXTS is a TSV with a header holding the columns 'context' (a name) and 'peaks' (a BED
path, relative to the table's folder); other columns are ignored.
TABLE is a TSV matrix, contexts x features (e.g. TPM of TFs): a header row whose first cell
is ignored and whose other cells name the features, then one row per context (its name, then
its values). --transpose reads features x contexts. --log ln|log2|log10 takes the log of
value + --pseudocount. Every context of CONTEXTS must be in TABLE. --features FILE keeps only
the columns FILE names (one per line, or the first column of a TSV with a header 'tf', 'feature'
or 'gene'; e.g. the paper's 1,630 TFs), in FILE's order; names the table lacks are left out
with a warning, and a list matching no column is an error.

Splits: regions get a genome split (--valid/--test: fractions of whole chunks, or chromosome
lists, as make_targets.py; default none, as ChromDragoNN); contexts get a context split
(--valid_contexts/--test_contexts: fractions or names) or --folds K (fold f tests the f-th
group of contexts, validates on the next, trains on the rest). A pair's split is the LATER of
its region's and its context's (train < valid < test): nothing in valid or test is seen in
training on either axis. Bins accessible in no context are kept with probability
--empty_fraction (default 1: the whole genome, as ChromDragoNN); the rest are dropped.

A bin is kept when its whole window lies inside one contig piece of one split (contigs end at
runs of >= --gap_min N and at --blacklist regions) with at most --max_n N. Written:
  OUT/statistics.json   features, counts, and a 'pairs' section (contexts, folds, features)
  OUT/contexts.npy      the (C, F) float32 context table, rows in the order of 'pairs.contexts'
  OUT/sequences.bed     the window of each record: chrom, start, end, split
  OUT/tfrecords/        one record per region: sequence and labels
Pairs are drawn when training (basenji_tk.data.pairs_views.expand), never written out C times.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="make_pairs.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("fasta", help="genome FASTA, plain or bgzip (indexed on first use)")
    p.add_argument("contexts", help="contexts table: TSV with columns context, peaks")
    p.add_argument("table", help="context table: TSV matrix, contexts x features")
    p.add_argument("-o", "--out", required=True, help="dataset folder to write")
    p.add_argument("-l", "--seq_length", type=int, default=1000, help="sequence length around each bin (bp)")
    p.add_argument("-w", "--bin_length", type=int, default=200, help="labelled bin (bp)")
    p.add_argument("--stride", type=int, default=50, help="distance between bin starts (bp)")
    p.add_argument("--threshold", type=float, default=0.5, help="a bin is accessible above this overlap fraction")
    p.add_argument("--regions", default=None, metavar="BED", help="bin only these regions (default: the genome)")
    p.add_argument("--empty_fraction", type=float, default=1.0, help="share of bins accessible nowhere to keep")
    p.add_argument("--max_n", type=float, default=0.1, help="largest fraction of N in a window")
    p.add_argument("--gap_min", type=int, default=1000, help="shortest run of N that splits contigs")
    p.add_argument("--blacklist", action="append", default=[], metavar="BED", help="regions to leave out")
    p.add_argument("--chroms", default="", help="only these chromosomes, comma-separated (default: all)")
    cli.add_genome_split_options(p, "0", what="genome ")
    p.add_argument("--valid_contexts", default="0.1", help="validation contexts: a fraction or names")
    p.add_argument("--test_contexts", default="0.1", help="test contexts: a fraction or names")
    p.add_argument("--folds", type=int, default=0, help="K context folds instead of one split (K >= 3)")
    p.add_argument("--log", default="none", choices=["none", "ln", "log2", "log10"], help="log of the table")
    p.add_argument("--pseudocount", type=float, default=1.0, help="added before the log")
    p.add_argument("--transpose", action="store_true", help="TABLE is features x contexts")
    p.add_argument("--features", default=None, metavar="FILE", help="keep only these columns of TABLE (e.g. TFs)")
    p.add_argument("--seed", type=int, default=0, help="seed for the splits, sampling and record order")
    p.add_argument("--records_per_file", type=int, default=256, help="records per TFRecord file")
    p.add_argument("--force", action="store_true", help="replace an output folder that holds something else")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.data.pairs import Options, make_pairs

    options = Options(
        seq_length=args.seq_length, bin_length=args.bin_length, stride=args.stride, threshold=args.threshold,
        max_n=args.max_n, gap_min=args.gap_min, blacklist=tuple(args.blacklist), regions=args.regions,
        valid=args.valid, test=args.test, chunk_size=args.chunk_size, chroms=tuple(c for c in args.chroms.split(",")
                                                                                   if c),
        valid_contexts=args.valid_contexts, test_contexts=args.test_contexts, folds=args.folds,
        empty_fraction=args.empty_fraction, pseudocount=args.pseudocount, log=args.log, transpose=args.transpose,
        features=args.features,
        seed=args.seed, records_per_file=args.records_per_file, force=args.force,
        progress=cli.show_progress(args.quiet),
    )
    make_pairs(args.fasta, args.contexts, args.table, args.out, options)


if __name__ == "__main__":
    cli.run(main)
