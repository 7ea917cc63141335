#!/usr/bin/env python
"""BAM -> coverage track (BigWig or HDF5), multi-mapping reads shared by EM, GC bias removed."""

import argparse
import gc
import os

from basenji_tk import cli

DESCRIPTION = """\
Turn a coordinate-sorted BAM into the coverage a model should learn from.

Events: one per read at its 5' end moved --shift bp toward the fragment centre (+ strand
reads forward, - strand reads back). Without --shift the shift is learned: half the mean
template length of proper pairs (paired-end), or half the lag that maximises the cross-
correlation of + and - strand 5' ends (single-end; the phantom peak at the read length is
masked). --full counts every aligned base instead (deletions and introns excluded; no shift).
Strand-specific RNA (GRO-seq, PRO-seq, 3' RNA such as Drop-seq) has no fragments read from
both ends: a learned shift means nothing there, and a warning says so when single-end reads
look stranded (strand asymmetry >= 0.5 over 1-kb windows); use --shift 0 --strand for read
5' ends as they are, per strand.

Multi-mapping reads are recognised from the NH tag, BWA's XA tag, or secondary alignments
grouped by read name (Bowtie2 -k). Each read weighs 1 in total, shared equally between its
locations; with --multi_em N the weights are re-estimated up to N rounds in proportion to
the Gaussian-smoothed coverage (--em_sigma) at each location. Reads with more than
--max_maps locations are dropped.

--gc FASTA removes GC bias: a cubic of log2 mean coverage on local GC (Gaussian window of
--gc_sigma bp, fragment-scale by default) is fitted genome-wide, the coverage divided by the
fitted effect, and each track rescaled so that its total is unchanged. The FASTA's chromosome
lengths must equal the BAM header's (--gc_length_mismatch: warn, and leave bases past a shorter
FASTA chromosome uncorrected). OUT.gc_model.png and OUT.gc_model.tsv show the fit.

Writes OUT (.bw/.bigwig: BigWig with the BAM header's chromosome sizes, zero-coverage bases
left empty; .h5/.hdf5: one float32 dataset per chromosome, bin_size attribute), or
OUT.plus/OUT.minus with --strand, and OUT.json (reads seen, used, unique, multi, dropped by
reason, shift, EM rounds, GC fit). Total coverage equals the reads used (aligned bases with
--full), with or without --gc. --bin N writes N-bp bins: in BigWig each base of a bin holds the
bin's mean per base (events / N, or mean depth with --full), so per-base sums still count each
read once; in HDF5 each bin holds the sum of its events (mean depth with --full).
Everything is written under temporary names and renamed when complete; finished outputs are
kept unless --force, and a second run into the same OUT is refused while the first runs.
No BAM index is needed, and none is made.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bam_cov.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("bam", help="coordinate-sorted BAM")
    p.add_argument("out", help="output track: .bw/.bigwig or .h5/.hdf5")
    g = p.add_argument_group("events")
    g.add_argument("--shift", type=int, default=None, help="fixed shift of 5' ends toward the fragment centre (bp); "
                   "default: learned")
    g.add_argument("--max_lag", type=int, default=500, help="largest cross-correlation lag tried when learning the shift")
    g.add_argument("--full", action="store_true", help="count every aligned base instead of one event per read")
    g.add_argument("--strand", action="store_true", help="write + and - strand tracks (OUT.plus, OUT.minus)")
    g = p.add_argument_group("filters")
    g.add_argument("--remove_duplicates", action="store_true", help="drop reads flagged as duplicates (0x400)")
    g.add_argument("--min_mapq", type=int, default=0, help="drop alignments below this MAPQ (off: multi-mappers have "
                   "low MAPQ)")
    g.add_argument("--max_maps", type=int, default=10, help="drop reads with more locations than this")
    g = p.add_argument_group("multi-mapping EM")
    g.add_argument("--multi_em", type=int, default=0, metavar="ITER", help="EM rounds (0: equal weights)")
    g.add_argument("--em_sigma", type=float, default=32.0, help="standard deviation of the coverage smoothing (bp)")
    g.add_argument("--em_tol", type=float, default=0.01, help="stop when the mean |weight change| per read is below")
    g = p.add_argument_group("GC bias")
    g.add_argument("--gc", metavar="FASTA", default=None, help="genome FASTA (indexed; plain or bgzip): fit and "
                   "remove the GC effect")
    g.add_argument("--gc_length_mismatch", action="store_true", help="accept FASTA chromosomes whose length differs "
                   "from the BAM header's (refused otherwise): warn, and leave bases past the FASTA's end uncorrected")
    g.add_argument("--gc_sigma", type=float, default=None, help="standard deviation of the GC window (bp); default "
                   "0.35 x the fragment length (2 x shift, or 200 bp when the shift is 0)")
    g = p.add_argument_group("output")
    g.add_argument("--bin", type=int, default=1, help="bin size of the written track (bp)")
    g.add_argument("--force", action="store_true", help="replace the outputs of a finished run (refused otherwise)")
    g.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="threads inflating BAM blocks "
                   "(default: the number of CPUs, at most 4)")
    cli.add_logging_options(g)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.coverage.pipeline import Options, bam_cov

    options = Options(
        shift=args.shift, max_lag=args.max_lag, full=args.full, strand=args.strand,
        remove_duplicates=args.remove_duplicates, min_mapq=args.min_mapq, max_maps=args.max_maps,
        multi_em=args.multi_em, em_sigma=args.em_sigma, em_tol=args.em_tol, gc=args.gc, gc_sigma=args.gc_sigma,
        bin=args.bin, threads=args.threads, progress=cli.show_progress(args.quiet), force=args.force,
        gc_length_mismatch=args.gc_length_mismatch,
    )
    summary = bam_cov(args.bam, args.out, options)
    counted = "every aligned base (--full)" if args.full else f"5' ends shifted {summary.shift} bp"
    print(f"wrote {', '.join(summary.outputs)}: {summary.reads_used:,} reads ({summary.unique:,} unique, "
          f"{summary.multi:,} multi-mapping), {counted}, total coverage {summary.total_coverage:,.1f}")
    # Every output is closed. Frozen objects are skipped by the interpreter's final garbage
    # collections, which otherwise walk numba's type objects for about 0.3 s on the way out.
    gc.freeze()


if __name__ == "__main__":
    cli.run(main)
