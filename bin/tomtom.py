#!/usr/bin/env python
"""Match motifs against a motif database with TOMTOM (memelite): p, E and q values, and logos."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Compares every motif of QUERY (a MEME file: from TF-MoDISco, MEME, STREME or
JASPAR) with every motif of --db by TOMTOM (memelite's implementation of the
"complete score" version; both strands), as MEME's tomtom does:
  p_value      of the best alignment of the pair
  e_value      p times the number of database motifs
  q_value      Benjamini-Hochberg over the query's database motifs
  offset       the database motif's column under the query's first column (of its
               reverse complement when orientation is '-'); overlap: columns aligned
--db is a MEME file or jaspar[:COLLECTION[:TAX_GROUP[:RELEASE]]] (pyjaspar's
offline copy; "jaspar" is JASPAR 2024 CORE vertebrates, 879 matrices, counts plus
a pseudocount of 1 per column). p-values need at least 25 database motifs.

Writes OUT/tomtom.tsv (per query, ranked by p: the --top best pairs, and only those
with p <= --max_p when given) and OUT/matches.png (each query's logo above its best
match with q <= --q_value, aligned by the offset).
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="tomtom.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("query", help="MEME file of the motifs to name")
    p.add_argument("--db", default="jaspar", help="MEME file or jaspar[:COLLECTION[:TAX_GROUP[:RELEASE]]]")
    p.add_argument("--q_value", type=float, default=0.05, help="q-value a best match must reach")
    p.add_argument("--max_p", type=float, default=None, help="write only pairs with p at most this")
    p.add_argument("--top", type=int, default=10, help="write at most this many pairs per query")
    p.add_argument("--trim", type=float, default=0.0, metavar="BITS",
                   help="trim query flanks of less information than this (0: no trimming)")
    p.add_argument("-o", "--out_dir", default="tomtom_out", help="output folder")
    p.add_argument("--no_plots", action="store_true", help="skip matches.png")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.interpret.motifruns import tomtom_files

    res = tomtom_files(args.query, args.db, args.out_dir, q=args.q_value, max_p=args.max_p, top=args.top,
                       trim=args.trim, plots=not args.no_plots, force=args.force)
    print(f"{args.out_dir}: {res['queries']} queries against {res['targets']} motifs in {res['seconds']:.2f} s; "
          f"{res['matched']} with a match at q <= {args.q_value:g}; {res['pairs']} pairs in tomtom.tsv")
    for name, target, q in res["best"][:20]:
        print(f"  {name}: {target} (q = {q:.2g})" if target else f"  {name}: no match")
    return 0


if __name__ == "__main__":
    cli.run(main)
