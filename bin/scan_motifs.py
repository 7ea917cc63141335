#!/usr/bin/env python
"""Find motif instances in BED regions with FIMO (memelite): p and q values per hit."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Scans both strands of each BED region's bases (from --fasta) with each motif of
MOTIFS (a MEME file, or jaspar[:COLLECTION[:TAX_GROUP[:RELEASE]]]), FIMO's way:
log2-odds scores against a uniform background, exact p-values of the score, hits
with p <= --threshold, and q-values by Benjamini-Hochberg over every window of
every region scanned with that motif on both strands (as FIMO).

Writes OUT/hits.tsv (chrom, start, end in genome coordinates, region, motif,
motif_alt, strand, score, p_value, q_value, the matched bases read on the hit's
strand) and OUT/hits.bed (BED6; score -10 log10 p, at most 1000). A region
shorter than a motif is an error.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="scan_motifs.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("motifs", help="MEME file (or jaspar[...]) of the motifs to scan")
    p.add_argument("regions", help="BED of the regions to scan (name in column 4)")
    p.add_argument("-f", "--fasta", required=True, help="genome FASTA")
    p.add_argument("--names", default=None, help="comma-separated motif names (or alt names) to scan; default all")
    p.add_argument("--threshold", type=float, default=1e-4, help="p-value a hit must reach")
    p.add_argument("-o", "--out_dir", default="scan_out", help="output folder")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.interpret.motifruns import scan_files

    names = [n for n in args.names.split(",") if n] if args.names else None
    res = scan_files(args.motifs, args.regions, args.fasta, args.out_dir, names=names, threshold=args.threshold,
                     force=args.force)
    print(f"{args.out_dir}: {res['motifs']} motifs over {res['regions']} regions ({res['bp']:,} bp) in "
          f"{res['seconds']:.2f} s; {res['hits']} hits with p <= {args.threshold:g}, {res['significant']} with "
          "q <= 0.05")
    return 0


if __name__ == "__main__":
    cli.run(main)
