#!/usr/bin/env python
"""Train a model described by params.json on datasets made by make_targets.py."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Build the model in params.json (section 'model': named blocks, see --blocks), fit it
to the train split of each DATA_DIR (they must share sequence length, bins and
targets) and keep, in --out:

  model_best.keras   the model at the best validation train.monitor (default val_pearsonr)
  checkpoint.keras   model and optimizer after the last finished epoch (for --restart)
  history.tsv        loss, Pearson r and R² per epoch, train and validation
  history_steps.tsv  with train.validate_every N: step, epoch, train_loss, val_loss every N
                     steps on the first train.validation_steps valid batches (plot_history.py)
  params.json        the params with every default filled in; logs/ for TensorBoard
  inputs.json        fingerprints of the params file and of every dataset file

--set KEY=VALUE (repeatable) changes the params file's KEY before anything is checked:
a dotted key into the sections, list entries by number (model.heads.accessible.blocks.0.units),
the value parsed as JSON, else taken as a string: --set train.freeze=true --set
train.init_from=runs/s1 --set train.fold=2. params.json in --out holds the merged params.

Training stops after train.epochs, or train.patience epochs without improvement, or
at a NaN loss (the last good checkpoint is kept). An interrupted run (even kill -9)
continues with --restart from its last finished epoch, optimizer state included.
Each epoch's shuffling, augmentation (train.rc/shift, model.augment_rc/shift) and
dropout masks are seeded from (train.seed, epoch) alone, so with --seed a resumed
run ends with exactly the weights of an uninterrupted one. --restart refuses other
params, file and --set together (except epochs, patience, learning_rate, clip_norm),
other data dirs, and a dataset file changed since the run started (size, mtime,
SHA-256 of a sample).
A run that fails before its first epoch ends leaves nothing behind; --force removes
the old model only once the new one is built and fits the data. A distribution
strategy is chosen automatically: MultiWorkerMirrored when TF_CONFIG is set,
Mirrored with several GPUs, otherwise the default device.
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("params", nargs="?", help="params.json (sections train and model)")
    p.add_argument("data_dirs", nargs="*", metavar="data_dir", help="dataset folders from make_targets.py")
    p.add_argument("-o", "--out", default="train_out", help="model folder")
    p.add_argument("--restart", action="store_true", help="resume the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace a model already in --out")
    p.add_argument("--seed", type=int, default=None,
                   help="override train.seed and make CPU runs repeatable (deterministic ops)")
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                   help="change one params key (dotted, VALUE as JSON or a string); repeatable")
    p.add_argument("--mixed_precision", action="store_true", help="float16 compute, float32 weights (GPUs)")
    p.add_argument("--blocks", action="store_true", help="list the model blocks and their arguments, then exit")
    cli.add_logging_options(p)
    args = p.parse_args(argv)
    if not args.blocks and (not args.params or not args.data_dirs):
        p.error("params.json and at least one data_dir are required")
    return args


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    if args.blocks:
        from basenji_tk.model import blocks

        print(blocks.describe())
        return 0
    from basenji_tk.model.train import Options, train

    train(args.params, args.data_dirs, args.out, Options(restart=args.restart, force=args.force, seed=args.seed,
                                                          mixed_precision=args.mixed_precision,
                                                          epochs=args.epochs, quiet=args.quiet,
                                                          sets=tuple(args.sets)))
    return 0


if __name__ == "__main__":
    cli.run(main)
