"""Sequences per second from the tf.data reader, for comparison with a training step.

Measured: ``basenji_tk.tfrecords.dataset(data_dir, "train", batch_size, shuffle=True,
rc=True, shift=3, repeat=True)`` as training would use it, after a warm-up (which
fills the shuffle buffer), on (1) a dataset made from the bundled demo data
(data/: GRCh37 chr20 [0, 20 Mb), 16,384 bp sequences every 8,192 bp, 128 bp bins)
and (2) when ../shared/data is present, 131,072 bp sequences of the whole of chr20
(the dataset of bench_make_targets.py).

The baseline is meant to be the training-step rate of the demo model on the same
machine (goal: reader >= 10x the training rate, so input never limits training). The
model does not exist yet (issue 3), so this prints the reader rate alone; add a
``training_rate(...)`` next to ``reader_rate(...)`` when it does.
"""

import argparse
import os
import sys
import tempfile
import time

import common

GOAL = 10.0  # reader rate / training-step rate, in sequences per second
DEMO = os.path.join(common.REPO_ROOT, "data")


def make_demo_dataset(out):
    from basenji_tk.dataset import Options, make_targets

    make_targets(os.path.join(DEMO, "hg19_chr20_20Mb.fa.gz"), os.path.join(DEMO, "targets.txt"), out,
                 Options(seq_length=16384, pool_width=128, stride=8192))
    return out


def make_chr20_dataset(work):
    import bench_make_targets as bmt

    fasta = os.path.join(common.CHR20, "chr20.fa.gz")
    out = os.path.join(work, "chr20")
    bmt.run_make_targets(fasta, bmt.write_bigwigs(work, fasta), out)
    return out


def reader_rate(data_dir, batch_size, batches=200, warmup=20, repeats=3, seed=0):
    """Sequences per second of the training reader: best of ``repeats`` windows of ``batches``
    batches, after ``warmup`` batches (the stream runs on across windows, as in training)."""
    from basenji_tk import tfrecords

    ds = tfrecords.dataset(data_dir, "train", batch_size=batch_size, shuffle=True, rc=True,
                           shift=3, seed=seed, repeat=True)
    it = iter(ds)
    for _ in range(warmup):
        next(it)
    best = 0.0
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        for _ in range(batches):
            x, y = next(it)
            n += int(x.shape[0])
        best = max(best, n / (time.perf_counter() - t0))
    return best


def training_rate(data_dir, batch_size):
    """Training steps of the demo model, in sequences per second: not available until issue 3."""
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch_size", type=int, default=8, help="sequences per batch (default 8)")
    ap.add_argument("--batches", type=int, default=200, help="timed batches after the warm-up (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed batches first (default 20)")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows of --batches; best is kept (default 3)")
    ap.add_argument("--no_chr20", action="store_true", help="skip the 131,072 bp chr20 dataset")
    args = ap.parse_args(argv)

    common.require(os.path.join(DEMO, "hg19_chr20_20Mb.fa.gz"), os.path.join(DEMO, "targets.txt"),
                   hint="the demo data in data/; rebuild it with data/make_data.py")
    import basenji_tk.tfrecords  # noqa: F401
    from basenji_tk.tfrecords import load_statistics

    work = tempfile.mkdtemp(prefix="bench_reader-")
    datasets = {"demo data/, 16,384 bp": make_demo_dataset(os.path.join(work, "demo"))}
    if args.no_chr20:
        print("chr20 dataset: skipped (--no_chr20)")
    elif not os.path.exists(os.path.join(common.CHR20, "chr20.fa.gz")):
        print(f"chr20 dataset: skipped: {common.CHR20} not found")
    else:
        datasets["GRCh37 chr20, 131,072 bp"] = make_chr20_dataset(work)

    rows, goal_lines = [], []
    for name, data_dir in datasets.items():
        stats = load_statistics(data_dir)
        rate = reader_rate(data_dir, args.batch_size, args.batches, args.warmup, args.repeats)
        train = training_rate(data_dir, args.batch_size)
        rows.append([name, stats["train_seqs"], stats["num_targets"], f"{rate:.1f}",
                     f"{rate * stats['seq_length'] / 1e6:.1f}", "n/a" if train is None else f"{train:.1f}"])
        if train is None:
            goal_lines.append(f"{name}: reader {rate:.1f} seq/s; ratio reader/training: not measurable yet "
                              f"(goal >= {GOAL:g}): the demo model comes with issue 3")
        else:
            ratio = rate / train
            goal_lines.append(f"{name}: ratio reader/training = {ratio:.1f} (goal >= {GOAL:g}): "
                              f"{'met' if ratio >= GOAL else 'NOT met'}")

    print(f"tf.data reader (train split, shuffle, rc, shift=3, repeat), batch {args.batch_size}, "
          f"best of {args.repeats} windows of {args.batches} batches after {args.warmup} warm-up")
    print(f"machine: {common.machine()}\n")
    common.table(["dataset", "train seqs", "targets", "reader seq/s", "reader Mb/s", "training seq/s"], rows)
    print()
    for line in goal_lines:
        print(line)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
