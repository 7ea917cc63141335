#!/usr/bin/env python
"""Predict with a trained model (any kind) for the regions of a BED file."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
For each region of REGIONS.bed, predict a window of the model's input length
centred on the region's midpoint (bases past a chromosome's ends read as N) with
MODEL_DIR's model (from train.py or import_model.py; or --model), and write the HDF5 --out:

  outputs/<name>/preds       per output, float16: (regions, positions, targets) for
                             binned and profile outputs, (regions, targets) for one value
                             per region (totals, values, probabilities)
  outputs/<name>/target_ids  its target identifiers; attributes kind, resolution (bp
                             per position) and offset (bp from window start to position 0)
  preds, target_ids          the same, for a model of one output; then also attributes
                             pool_width and bin_offset when it has positions
  chrom, start, end          the windows (0-based, half-open; FASTA names)
  region_start, region_end   the regions as given

Regions are grouped by chromosome, in file order within one. The genome is
--fasta or the FASTA the model was trained on (MODEL_DIR's data_statistics.json or
model card). A model that takes more than DNA gets it from --context (a context of
its training pairs dataset, or a row of --context_tsv), from the signal tracks its
dataset was built from (read again for each window), or from --input NAME=VALUE.
--bigwig DIR also writes DIR/<target>.bw for outputs with positions: the values at
their genome positions, averaged where windows overlap (<output>.<target>.bw when the
model has several outputs). --rc and --shifts average over reverse complements and
shifted copies (write negative shifts as --shifts=-1,0,1).
"""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="predict.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("model_dir", help="model folder from train.py or import_model.py")
    p.add_argument("regions", help="BED file of regions (chrom, start, end)")
    p.add_argument("-o", "--out", default="preds.h5", help="HDF5 file to write")
    p.add_argument("--fasta", default=None, help="genome FASTA (None: the one in MODEL_DIR/data_statistics.json)")
    cli.add_prediction_options(p)
    cli.add_input_options(p)
    p.add_argument("--bigwig", default=None, metavar="DIR", help="also write one BigWig per target here")
    p.add_argument("--force", action="store_true", help="replace a finished run's outputs")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.analysis.evaluate import parse_shifts
    from basenji_tk.analysis.inputs import options_from_args
    from basenji_tk.analysis.predict import predict_bed

    predict_bed(args.model_dir, args.regions, args.out, fasta=args.fasta, rc=args.rc,
                shifts=parse_shifts(args.shifts), bigwig_dir=args.bigwig, batch_size=args.batch_size,
                model_file=args.model, quiet=args.quiet, force=args.force, inputs=options_from_args(args))
    return 0


if __name__ == "__main__":
    cli.run(main)
