#!/usr/bin/env python
"""A table of sequences (CSV/TSV or FASTA) -> a training dataset (kind 'table') for basenji_tk."""

import argparse

from basenji_tk import cli

DESCRIPTION = """\
One record per table row: the sequence (a sequence column, or chrom/start/end columns read
from --fasta), an 'activity' label with one channel per task, and optionally a 'weight'.
TABLE is CSV or TSV with a header (tab-separated when the header line holds a tab), plain or
gzip; or FASTA, one record per entry, with columns name (the first header word), sequence and
one per KEY=VALUE word on the header line (">tile1 act=0.3 pos=10").

Tasks, in the order given (each one channel of the label):
  --activity A,B          one task per column
  --replicates T=A1,A2    one task: the mean of replicate columns (the MPRA label)
  --counts T=R1:D1,R2:D2  one task from RNA:DNA count columns, one pair per replicate; each
                          replicate's activity is log2(((RNA+1)/sum(RNA+1)) / ((DNA+1)/sum(DNA+1)))
                          with the sums over all rows kept; the label is the replicate mean
Weights: --weight_column, or --replicate_weight: d = sqrt(sum over replicated tasks of the mean
over replicate pairs of (r_a - r_b)^2) (2 replicates: the Euclidean distance between the
replicate vectors), weight = (max d - d) / (max d - min d) over all rows, in [0, 1].

Placement: --frame F --offset_column POS puts each sequence at 0-based offset POS inside an
F bp frame padded with N (all-zero one-hot), e.g. 145 bp MPRA tiles in a 295 bp frame.
Otherwise every sequence must be --length (default: the first row's) bp, or --pad
center|left|right pads it (to the longest when no --length/--frame). Longer is refused.
Splits: --split_column (train/valid/test), or --valid/--test fractions at random by --seed,
per row or per --group_column value (tiles of one region never straddle splits).

Writes OUT/statistics.json, OUT/sequences.bed (table rows: name 0 length split; genome rows:
chrom start end split name) and OUT/tfrecords/{train,valid,test}-K.tfr. A bad row is one
error naming FILE:LINE and the column. Semi-synthetic tables should say so in --description.
"""


class _Tasks(argparse.Action):
    """--activity/--replicates/--counts append to one ordered list."""

    def __call__(self, parser, ns, value, option=None):
        ns.tasks = [*(ns.tasks or []), (self.const, option, value)]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="make_table.py", description=DESCRIPTION, formatter_class=cli.HelpFormatter)
    p.add_argument("table", help="CSV/TSV with a header, or FASTA")
    p.add_argument("-o", "--out", required=True, help="dataset folder to write")
    p.add_argument("--fasta", help="genome FASTA for chrom/start/end rows")
    for opt, kind, meta in (("--activity", "activity", "COLS"), ("--replicates", "replicates", "TASK=COLS"),
                            ("--counts", "counts", "TASK=RNA:DNA,...")):
        p.add_argument(opt, action=_Tasks, const=kind, dest="tasks", metavar=meta, help="see above (repeatable)")
    p.add_argument("--sequence_column", help="sequence column (default: 'sequence' or 'seq')")
    p.add_argument("--coords", help="chrom,start,end column names (default chrom,start,end; needs --fasta)")
    p.add_argument("--name_column", help="row name column (default: 'name' if present, else row<LINE>)")
    p.add_argument("--weight_column", help="per-row sample weight column (numbers >= 0)")
    p.add_argument("--replicate_weight", action="store_true", help="weight from replicate agreement, in [0, 1]")
    p.add_argument("--frame", type=int, help="length of the zero-padded frame (bp)")
    p.add_argument("--offset_column", help="0-based offset of each sequence in the frame")
    p.add_argument("--length", type=int, help="record length without a frame (bp)")
    p.add_argument("--pad", default="refuse", choices=["refuse", "center", "left", "right"],
                   help="what to do with a sequence shorter than the record")
    p.add_argument("--valid", type=float, default=0.1, help="validation fraction of the rows")
    p.add_argument("--test", type=float, default=0.1, help="test fraction of the rows")
    p.add_argument("--group_column", help="rows sharing a value share a split")
    p.add_argument("--split_column", help="column naming each row's split (train, valid, test)")
    p.add_argument("--seed", type=int, default=0, help="seed for the splits and the order of training records")
    p.add_argument("--drop_missing", action="store_true",
                   help="drop rows with a missing activity or weight (the SHARPR filter) instead of failing")
    p.add_argument("--sep", help="column separator (default: tab if the header has one, else comma)")
    p.add_argument("--description", default="", help="free text kept in statistics.json")
    p.add_argument("--seqs_per_tfr", type=int, default=256, help="records per TFRecord file")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    cli.add_logging_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cli.setup_logging(args.quiet, args.verbose)
    from basenji_tk.data import table_tasks, tables

    tasks = []
    for kind, option, value in args.tasks or []:
        if kind == "replicates" and "=" not in value:
            value = f"{value.split(',')[0]}={value}"
        tasks += table_tasks.parse_task(value, "counts" if kind == "counts" else "activity", option)
    coords = tuple(c.strip() for c in args.coords.split(",")) if args.coords else None
    if coords is not None and len(coords) != 3:
        from basenji_tk.errors import InputError
        raise InputError(f"--coords {args.coords!r}: expected three column names, chrom,start,end")
    options = tables.TableOptions(
        tasks=tuple(tasks), sequence_column=args.sequence_column, coords=coords, name_column=args.name_column,
        weight_column=args.weight_column, replicate_weight=args.replicate_weight, frame=args.frame,
        offset_column=args.offset_column, length=args.length, pad=args.pad, valid=args.valid, test=args.test,
        seed=args.seed, group_column=args.group_column, split_column=args.split_column,
        drop_missing=args.drop_missing, sep=args.sep, description=args.description,
        records_per_file=args.seqs_per_tfr, force=args.force, progress=cli.show_progress(args.quiet))
    tables.build_table_dataset(args.table, args.out, options, fasta=args.fasta)


if __name__ == "__main__":
    cli.run(main)
