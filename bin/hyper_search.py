#!/usr/bin/env python
"""Bayesian hyperparameter search (GPyOpt) over params.json, training each trial with train.py's code."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
DOMAIN (a JSON object) names what to tune by its path in PARAMS, e.g.

  {"model.trunk[0].filters": {"type": "discrete", "values": [64, 128, 256], "log": true},
   "train.learning_rate":    {"type": "continuous", "range": [1e-4, 1e-2], "log": true},
   "model.trunk[2].dropout": {"type": "continuous", "range": [0.0, 0.5]},
   "train.optimizer":        {"type": "categorical", "values": ["adam", "sgd"]}}

Paths: train.<key>, model.<key>, model.trunk[i].<arg>, model.head[i].<arg> (any
argument of block i, set in PARAMS or not). Every value is checked before anything
runs. Each trial trains SEARCH_DIR/trial_NNN/params.json on DATA_DIR for the budget
(--epochs, --steps per epoch, early stopping) and scores the best epoch on the
valid split (--objective: valid_loss is minimised, valid_pearsonr and valid_auprc,
mean peak AUPRC, maximised). The first --init trials are random (--seed); then a
Gaussian process with expected improvement proposes each point (log dimensions in
log space; --parallel K: K trials at once, batches by local penalization).

A failed trial (NaN loss, out of memory, any error) is kept as failed, given the
worst objective so far plus half the spread, and the search goes on.

SEARCH_DIR holds trials.tsv (a row per finished trial, appended as it ends),
best/ (model_best.keras, params.json, history.tsv of the best trial), trial_NNN/
(params.json, history.tsv, trial.log; models only with --keep_models),
convergence.png, params.png, search.json and inputs.json. A killed search continues
with --restart (finished trials are not rerun); it refuses a params or domain file
whose content changed, other options or data dirs, and a dataset file changed since
the search started (size, mtime, SHA-256 of a sample).
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="hyper_search.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("params", help="params.json to start from")
    p.add_argument("domain", help="domain.json: {path: {type, values|range, log}}")
    p.add_argument("data_dirs", nargs="+", metavar="data_dir", help="dataset folders from make_targets.py")
    p.add_argument("-o", "--out", default="search_out", help="search folder")
    p.add_argument("-n", "--trials", type=int, default=20, help="trials in all (including --init)")
    p.add_argument("--init", type=int, default=5, help="random trials before the Gaussian process")
    p.add_argument("--seed", type=int, default=0, help="seed of the random trials and of GPyOpt")
    p.add_argument("--objective", default="valid_pearsonr", choices=["valid_loss", "valid_pearsonr", "valid_auprc"],
                   help="what each trial is scored on, over the valid split: valid_loss (minimised), "
                   "valid_pearsonr (mean Pearson r over targets, best epoch) or valid_auprc (mean peak AUPRC "
                   "of model_best.keras), both maximised")
    p.add_argument("--epochs", type=int, default=None, help="train.epochs of every trial")
    p.add_argument("--steps", type=int, default=None, help="train.steps_per_epoch of every trial")
    p.add_argument("--parallel", type=int, default=1, help="trials at once (separate processes)")
    p.add_argument("--random", action="store_true", help="random search instead of GPyOpt (a baseline)")
    p.add_argument("--keep_models", action="store_true", help="keep every trial's model files, not only the best")
    p.add_argument("--restart", action="store_true", help="continue the search in --out")
    p.add_argument("--force", action="store_true", help="replace a search already in --out")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.hyper.options import Options
    from basenji_tk.hyper.search import hyper_search

    summary = hyper_search(args.params, args.domain, args.data_dirs, args.out, Options(
        n_trials=args.trials, init=args.init, seed=args.seed, parallel=args.parallel, objective=args.objective,
        epochs=args.epochs, steps=args.steps, method="random" if args.random else "gp",
        keep_models=args.keep_models, restart=args.restart, force=args.force, quiet=args.quiet))
    best = summary["best"]
    print(f"trials: {summary['trials']}, failed: {summary['failed']}, best: "
          + ("none" if best is None else f"trial {best['trial']} {args.objective} {best['objective']:.4g}"))
    return 0


if __name__ == "__main__":
    cli.run(main)
