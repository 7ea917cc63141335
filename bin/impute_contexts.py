#!/usr/bin/env python
"""Accessibility in contexts that have expression but no peaks, from a pairs model; t-SNE of them."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Predict, with MODEL (a pairs model from train.py), every region of DATA (its make_pairs.py
dataset) in each context of EXPRESSION.tsv: contexts x features (TPM of TFs; as make_pairs.py's
TABLE), transformed as DATA's table was (its --log and --pseudocount, its feature columns in its
order; --transpose: features x contexts). The mean-accessibility input is over the model's
training contexts. ChromDragoNN Fig. 3B (Nair et al. 2019). Written to OUT:
  imputed.h5          probabilities (regions, contexts) float16; chrom, start, end of each
                      region's labelled bin (0-based); split; index (row of sequences.bed); contexts
  tsne.tsv, tsne.png  t-SNE of the contexts by imputed accessibility beside a t-SNE by TF
                      expression (PCA to <= 50 dimensions first; at least 3 contexts)
  knn_agreement.tsv   with --groups: the mean share of each context's k nearest neighbours
                      (--neighbours) in its group, in both original spaces and both embeddings,
                      and the share expected by chance
  truth.tsv           with --truth (a TSV: context, peaks; as make_pairs.py's CONTEXTS):
                      AUPRC/AUROC of each imputed profile against labels made by DATA's bin rule,
                      beside the mean baseline's
  impute_contexts.json  what was run
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="impute_contexts.py", description=DESCRIPTION,
                                formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="pairs model folder from train.py")
    p.add_argument("data_dir", help="its pairs dataset folder (make_pairs.py): regions and the table's transform")
    p.add_argument("expression", help="TSV of contexts x features to impute")
    p.add_argument("-o", "--out", required=True, help="folder for imputed.h5, the t-SNE and the tables")
    p.add_argument("--contexts", default="", help="comma-separated rows of EXPRESSION to impute (default: the rows that "
                   "are not contexts of DATA, or all rows when every row is)")
    p.add_argument("--transpose", action="store_true", help="EXPRESSION is features x contexts")
    p.add_argument("--groups", default=None, metavar="TSV", help="TSV with columns context and --group_column")
    p.add_argument("--group_column", default="group", help="the column of --groups to colour and score by")
    p.add_argument("--neighbours", type=int, default=5, help="k of the k-nearest-neighbour group agreement")
    p.add_argument("--truth", default=None, metavar="TSV", help="TSV with columns context, peaks (BED) to score "
                   "the imputed profiles against")
    p.add_argument("--split", default="all", choices=["all", "test"], help="the regions: every split, or the "
                   "held-out genome")
    p.add_argument("--batch_size", type=int, default=256, help="regions per sequence batch and pairs per model call")
    p.add_argument("--model", default=None, help="a .keras file to use instead of MODEL_DIR/model_best.keras "
                   "(e.g. MODEL_DIR/checkpoint.keras, the last epoch)")
    p.add_argument("--seed", type=int, default=0, help="seed of the PCA and t-SNE")
    p.add_argument("--label", default=None, help="a label for the figure title (default: SEMI-SYNTHETIC when the "
                   "dataset says so)")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.impute import Options, impute_contexts

    contexts = tuple(c.strip() for c in args.contexts.split(",") if c.strip()) or None
    options = Options(contexts=contexts, groups=args.groups, group_column=args.group_column, truth=args.truth,
                      split=args.split, transpose=args.transpose, neighbours=args.neighbours, seed=args.seed,
                      batch_size=args.batch_size, label=args.label, force=args.force, model_file=args.model,
                      progress=cli.show_progress(args.quiet))
    out = impute_contexts(args.model_dir, args.data_dir, args.expression, args.out, options)
    for name, frame in (("kNN group agreement", out["knn"]), ("against --truth", out["truth"])):
        if frame is not None:
            print(f"{name}:\n{frame.to_string(index=False, float_format=lambda x: f'{x:.3f}')}")
    return 0


if __name__ == "__main__":
    cli.run(main)
