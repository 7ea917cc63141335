#!/usr/bin/env python
"""Motifs from attributions: bpAI-TAC seqlets, TF-MoDISco patterns and their TOMTOM names."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Turns per-base attributions (an attributions.h5 from attribute.py: one_hot, attributions,
hypothetical (N, L, 4)) into named motifs, in four steps:

  1. seqlets.tsv  the bpAI-TAC rule: a base is significant when |attribution of the
                  observed base| > --z (1.96) x the SD of all per-base attributions of all
                  sequences; a seqlet is a run of >= 4 significant bases of one sign with
                  single-base gaps (sequence, window position, genome position, sum, sign)
  2. modisco.h5   TF-MoDISco (modisco-lite) on one_hot and hypothetical: seqlets by its
                  own FDR rule, clustered into positive and negative patterns; report/
                  holds modisco-lite's motifs.html with logos and its top-3 TOMTOM matches
  3. motifs.meme  each pattern's probability matrix trimmed by modisco's rule (positions
                  from the first to the last whose summed |contribution| reaches
                  --trim_threshold of the largest)
  4. matches.tsv  each pattern's best TOMTOM match in --db (jaspar: JASPAR 2024 CORE
                  vertebrates; jaspar:COLLECTION:TAX; or a MEME file) with p, E and q
                  (Benjamini-Hochberg over the database), orientation and the pattern's
                  information (bits: a weak pattern can match at a small q); motifs.png
                  shows each pattern's contribution logo beside its best match

--window keeps only the central bp of each sequence (where the explained output looks).
Modisco's minimums (--min_metacluster_size 100, --final_min_cluster_size 20) suit
thousands of sequences; with fewer than 1000, those not given are scaled down in
proportion (a logged note). Prints one line per pattern with its best named match.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="motifs.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("attributions", help="attributions.h5 from attribute.py")
    p.add_argument("-o", "--out_dir", default="motifs_out", help="output folder")
    p.add_argument("--db", default="jaspar", help="motif database: jaspar[:COLLECTION[:TAX_GROUP]] or a MEME file")
    p.add_argument("--window", type=int, default=None, help="use only the central WINDOW bp of each sequence")
    p.add_argument("--seqlets_only", action="store_true", help="write seqlets.tsv only (no TF-MoDISco)")
    p.add_argument("--z", type=float, default=1.96, help="seqlet significance in SDs of all attributions")
    p.add_argument("--q", type=float, default=0.05, help="q-value a match must reach to be named")
    p.add_argument("--trim_threshold", type=float, default=0.3, help="trim patterns to positions with this "
                   "share of the largest summed |contribution|")
    g = p.add_argument_group("TF-MoDISco (modisco-lite's defaults)")
    g.add_argument("--sliding_window_size", type=int, default=21, help="seqlet core width")
    g.add_argument("--flank_size", type=int, default=10, help="bp added either side of a seqlet core")
    g.add_argument("--max_seqlets", type=int, default=20000, help="seqlets kept per metacluster")
    g.add_argument("--target_seqlet_fdr", type=float, default=0.2, help="FDR of modisco's seqlet calls")
    g.add_argument("--min_metacluster_size", type=int, default=None,
                   help="seqlets a sign needs to be clustered (default 100, scaled down below 1000 sequences)")
    g.add_argument("--final_min_cluster_size", type=int, default=None,
                   help="seqlets a pattern needs (default 20, scaled down below 1000 sequences)")
    g.add_argument("--n_leiden_runs", type=int, default=50, help="Leiden clusterings, the best kept")
    p.add_argument("--no_report", action="store_true", help="skip modisco-lite's HTML report")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.interpret.modisco import discover_motifs

    res = discover_motifs(args.attributions, args.out_dir, db=args.db, window=args.window,
                          seqlets_only=args.seqlets_only, z=args.z, trim_threshold=args.trim_threshold, q=args.q,
                          report=not args.no_report, force=args.force,
                          sliding_window_size=args.sliding_window_size, flank_size=args.flank_size,
                          max_seqlets_per_metacluster=args.max_seqlets, target_seqlet_fdr=args.target_seqlet_fdr,
                          min_metacluster_size=args.min_metacluster_size,
                          final_min_cluster_size=args.final_min_cluster_size, n_leiden_runs=args.n_leiden_runs)
    print(f"{args.out_dir}: {res['seqlets']} seqlets in {res['sequences']} sequences "
          f"(|attribution| > {res['threshold']:.4g})")
    if args.seqlets_only:
        return 0
    if not res["patterns"]:
        print(f"{args.out_dir}: TF-MoDISco found no pattern")
    for row in res["matches"].itertuples():
        nearest = f"nearest {row.match} {row.tf}, q {row.q_value:.2g}"
        named = (f"{row.match} {row.tf} (q {row.q_value:.2g}, {row.orientation})" if row.significant
                 else f"nearly flat, not named ({nearest})" if row.flat else f"no match with q < {args.q} ({nearest})")
        print(f"{row.pattern}: {row.n_seqlets} seqlets, {row.consensus} ({row.information:.1f} bits): {named}")
    return 0


if __name__ == "__main__":
    cli.run(main)
