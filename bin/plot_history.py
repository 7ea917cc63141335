#!/usr/bin/env python
"""Overlay training runs: a validation figure against steps or epochs (ChromDragoNN Fig. 1B)."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Draws one line per model folder RUN (from train.py): --metric against optimizer steps
with --steps (RUN/history_steps.tsv, written when the run had train.validate_every;
columns step, epoch, train_loss, val_loss and the run's monitor), otherwise against
epochs (RUN/history.tsv; columns such as loss, val_loss, val_auprc). E.g. stage 2 with
and without stage-1 initialisation:

  plot_history.py runs/tune runs/random --labels "stage-1 init,random init" --steps -o fig1b.png
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="plot_history.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("runs", nargs="+", metavar="RUN", help="model folders from train.py")
    p.add_argument("--labels", default=None, help="one label per run, comma-separated (default: folder names)")
    p.add_argument("--steps", action="store_true", help="per step from history_steps.tsv (default: per epoch)")
    p.add_argument("--metric", default="val_loss", help="the column to draw")
    p.add_argument("--title", default="", help="figure title (say SEMI-SYNTHETIC where it is)")
    p.add_argument("-o", "--out", default="history.png", help="PNG to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.model.steps import plot_history

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    out = plot_history(args.runs, args.out, labels=labels, steps=args.steps, metric=args.metric, title=args.title,
                       force=args.force)
    if not args.quiet:
        print(f"{out}: {args.metric} of {len(args.runs)} runs per {'step' if args.steps else 'epoch'}")
    return 0


if __name__ == "__main__":
    cli.run(main)
