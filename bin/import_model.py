#!/usr/bin/env python
"""A Keras model file from elsewhere (.keras or Keras 2 .h5) -> a basenji_tk model folder."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
Load MODEL_FILE (a .keras archive in safe mode, or a Keras 2 .h5 file) and write MODEL_DIR:

  model.keras        the model (its input length fixed to --seq_length when the file leaves it open)
  model_card.json    what the file cannot say: the window, each output's kind, bp per position
                     and offset, target names, the genome

Then test.py, predict.py, sat_mut.py, saliency.py and sed.py run on MODEL_DIR as on a folder
from train.py. Options that concern outputs take VALUE (every output) or OUTPUT=VALUE:

  --kind        binned (positions x targets), profile (per-base probabilities), total, value
                (one number per target) or probability (sigmoid/softmax); default: binned for
                (positions, targets) outputs, probability after a sigmoid or softmax, else value
  --resolution  bp per output position (default: the model's receptive-field step); it must
                divide the input length
  --offset      bp from the window start to the first position (default: the positions centred,
                (length - positions x resolution) / 2, as a model that crops both ends)
  --targets     target names: a,b,c, a targets table (identifier, description columns) or a
                file of one name per line (default t0, t1, ...)
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="import_model.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_file", help="Keras model file (.keras or .h5)")
    p.add_argument("-o", "--out", required=True, help="model folder to write")
    p.add_argument("-l", "--seq_length", type=int, default=None, help="input length (bp) when the file leaves it open")
    p.add_argument("--kind", action="append", default=None, metavar="[OUTPUT=]KIND", help="output kind (see above)")
    p.add_argument("--resolution", action="append", default=None, metavar="[OUTPUT=]BP", help="bp per output position")
    p.add_argument("--offset", action="append", default=None, metavar="[OUTPUT=]BP", help="bp before the first position")
    p.add_argument("--targets", action="append", default=None, metavar="[OUTPUT=]NAMES", help="target names or table")
    p.add_argument("--fasta", default=None, help="genome FASTA the model predicts (else scripts need --fasta)")
    p.add_argument("--force", action="store_true", help="replace a model already in MODEL_DIR")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.cards import import_model

    import_model(args.model_file, args.out, seq_length=args.seq_length, resolution=args.resolution or (),
                 offset=args.offset or (), targets=args.targets or (), kinds=args.kind or (), fasta=args.fasta,
                 force=args.force)
    return 0


if __name__ == "__main__":
    cli.run(main)
