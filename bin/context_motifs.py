#!/usr/bin/env python
"""Per-context motifs of a pairs model, and motif activity against TF expression (ChromDragoNN Fig. 3A)."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
For each context (cell type) of a make_pairs.py dataset, as ChromDragoNN (section 2.6, 3.4):
up to --n_bins regions accessible there and in fewer than --max_fraction of all contexts
(drawn with --seed), the gradient x input of the pairs model's output logit with that
context's expression vector (and each region's own mean accessibility over the fold's
training contexts, for a model that takes it), then TF-MoDISco and TOMTOM as motifs.py.

Writes OUT/<context>/: regions.bed, attributions.h5 (+ .bw), the motifs.py outputs
(seqlets.tsv, modisco.h5, report/, motifs.meme, matches.tsv, motifs.png), tomtom.tsv (every
pattern-motif pair with q < --q_value) and done.json; and over the contexts:
  activity.tsv                motifs x contexts, 1 where TF-MoDISco found the motif there; a
                              motif is the TF name of a positive pattern's best significant
                              TOMTOM match (patterns without one are left out)
  motif_tf_correlation.tsv    Pearson r between a motif's activity and the expression (the
                              dataset's context table) of each TF that could bind it: the TFs
                              of every database motif its patterns match (A::B gives A and B)
  heatmap.png                 Fig. 3A for the --top rows: activity beside row z-scored expression
A context with no such region is skipped with a warning (an error when none is left).
--restart continues an interrupted run: finished contexts (done.json) are skipped.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="context_motifs.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="pairs model folder from train.py (sequence + expression)")
    p.add_argument("data_dir", help="the make_pairs.py dataset (labels, context table)")
    p.add_argument("-o", "--out_dir", default="context_motifs_out", help="output folder")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--contexts", default=None, help="comma-separated context names")
    which.add_argument("--split", default="train", choices=("train", "valid", "test", "all"),
                       help="explain the contexts of this split of the model's fold (the paper: its training cell "
                            "types)")
    p.add_argument("--max_fraction", type=float, default=0.3,
                   help="a region counts for a context when accessible in fewer than this share of all contexts")
    p.add_argument("--n_bins", type=int, default=20000, help="regions per context at most")
    p.add_argument("--motifs", default="jaspar", help="motif database: jaspar[:COLLECTION[:TAX_GROUP]] or a MEME file")
    p.add_argument("--q_value", type=float, default=0.05, help="TOMTOM q-value a match must be under to count")
    p.add_argument("--top", type=int, default=15, help="motif/TF rows of the heatmap")
    p.add_argument("--sign", choices=("positive", "both"), default="positive",
                   help="TF-MoDISco patterns that make a motif active: positive only, or negative ones as well")
    p.add_argument("--batch_size", type=int, default=64, help="regions per attribution batch")
    p.add_argument("--model", default=None, help="a .keras file to explain instead of MODEL_DIR/model_best.keras "
                   "(e.g. MODEL_DIR/checkpoint.keras, the last epoch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw of regions")
    p.add_argument("--label", default=None, help="text heading the tables and the figure title (default: "
                   "SEMI-SYNTHETIC when the dataset's path says so)")
    p.add_argument("--group", default=None, metavar="COLUMN",
                   help="order the heatmap's columns by this column of the dataset's contexts table (default: "
                        "clustered)")
    p.add_argument("-f", "--fasta", default=None, help="genome FASTA (default: the dataset's)")
    p.add_argument("--n_leiden_runs", type=int, default=50, help="TF-MoDISco's Leiden clusterings, the best kept")
    p.add_argument("--no_report", action="store_true", help="skip modisco-lite's HTML report per context")
    p.add_argument("--no_plots", action="store_true",
                   help="skip each context's motifs.png (heatmap.png is always drawn)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--restart", action="store_true", help="continue an interrupted run into the same folder")
    again.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.interpret.context_motifs import context_motifs

    res = context_motifs(args.model_dir, args.data_dir, args.out_dir, contexts=args.contexts, split=args.split,
                         max_fraction=args.max_fraction, n_bins=args.n_bins, db=args.motifs, q=args.q_value,
                         top=args.top, batch_size=args.batch_size, seed=args.seed, label=args.label,
                         fasta=args.fasta, sign=args.sign, report=not args.no_report, plots=not args.no_plots,
                         group=args.group, restart=args.restart, force=args.force, quiet=args.quiet,
                         n_leiden_runs=args.n_leiden_runs, model_file=args.model)
    act, corr = res["activity"], res["correlation"]
    head = f"{res['label']}: " if res["label"] else ""
    skipped = f" ({len(res['skipped'])} skipped: {', '.join(res['skipped'])})" if res["skipped"] else ""
    print(f"{head}{args.out_dir}: {act.shape[0]} motifs in {len(res['contexts'])} contexts{skipped}")
    for row in corr[corr["r"].notna()].head(args.top).itertuples():
        print(f"{row.motif} / {row.tf}: r {row.r:.3f} (p {row.p_value:.2g}), active in {row.active_contexts} of "
              f"{row.n_contexts}")
    return 0


if __name__ == "__main__":
    cli.run(main)
