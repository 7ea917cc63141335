"""Sequences per second from the tf.data reader, against the training steps it feeds.

Measured: ``basenji_tk.data.tfrecords.dataset(data_dir, "train", batch_size, shuffle=True,
rc=True, shift=3, repeat=True)`` as training would use it, after a warm-up (which
fills the shuffle buffer), on (1) a dataset made from the bundled demo data
(data/: GRCh37 chr20 [0, 20 Mb), 16,384 bp sequences every 8,192 bp, 128 bp bins)
and (2) when ../shared/data is present, 131,072 bp sequences of the whole of chr20
(the dataset of bench_make_targets.py).

Baseline, in the same run: the training rate on the same dataset, in sequences per
second, as ``train.py`` trains: the model of a params file built by
``models.build_model``, compiled by ``wiring.compile_model``, fed by
``feeds.train_dataset`` (the same reader, at the params' batch size, rc and shift)
repeated, through ``model.fit``; the best of ``--train_repeats`` epochs of
``--train_steps`` steps after one untimed epoch (which traces the step). The model is
params/demo.json (16,384 bp) for the demo data and params/basenji2018.json (131,072
bp, batch 4) for chr20, whose steps take seconds on a CPU, so that dataset gets
fewer of them (``--chr20_steps``). Goal: reader >= 10x the training rate, so input
never limits training.
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import common  # noqa: E402

GOAL = 10.0  # reader rate / training-step rate, in sequences per second
DEMO = os.path.join(common.REPO_ROOT, "data")


def make_demo_dataset(out):
    from basenji_tk.data.dataset import Options, make_targets

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
    from basenji_tk.data import tfrecords

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


def training_rate(data_dir, params_path, steps, repeats, seed=0):
    """``(sequences per second, batch size)`` of training steps of ``params_path``'s model on
    ``data_dir``, as ``train.py`` runs them (see the module docstring)."""
    import keras

    import bench_train
    from basenji_tk.model import feeds, models, wiring
    from basenji_tk.model.params import load_params
    from basenji_tk.data.tfrecords import load_statistics

    params = load_params(params_path)
    tp, mp = params["train"], params["model"]
    tp["seed"] = seed
    stats = load_statistics(data_dir)
    spec = feeds.check_datasets([data_dir])
    wired = wiring.wire(mp, tp, spec, params_path)
    keras.utils.set_random_seed(seed)
    model = models.build_model(mp, stats["num_targets"], where=params_path)
    wiring.check_model_fits(model, wired, spec, params_path)
    wiring.compile_model(model, tp, stats["num_targets"], wired)
    ds = feeds.train_dataset([data_dir], tp, epoch=0, wiring=wired).repeat()
    step_s, _ = bench_train.fit_step_seconds(model, ds, steps, repeats)
    return tp["batch_size"] / step_s, tp["batch_size"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch_size", type=int, default=8, help="sequences per reader batch (default 8)")
    ap.add_argument("--batches", type=int, default=200, help="timed batches after the warm-up (default 200)")
    ap.add_argument("--warmup", type=int, default=20, help="untimed batches first (default 20)")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows of --batches; best is kept (default 3)")
    ap.add_argument("--train_steps", type=int, default=20,
                    help="training steps per timed epoch on the demo data (default 20)")
    ap.add_argument("--chr20_steps", type=int, default=2,
                    help="training steps per timed epoch on chr20, basenji2018 model (default 2)")
    ap.add_argument("--train_repeats", type=int, default=2, help="timed training epochs; best is kept (default 2)")
    ap.add_argument("--no_chr20", action="store_true", help="skip the 131,072 bp chr20 dataset")
    args = ap.parse_args(argv)

    common.require(os.path.join(DEMO, "hg19_chr20_20Mb.fa.gz"), os.path.join(DEMO, "targets.txt"),
                   hint="the demo data in data/; rebuild it with data/make_data.py")
    import basenji_tk.data.tfrecords  # noqa: F401
    from basenji_tk.data.tfrecords import load_statistics

    load_start = os.getloadavg()[0]
    params_dir = os.path.join(common.REPO_ROOT, "params")
    work = tempfile.mkdtemp(prefix="bench_reader-")
    # name: (dataset folder, params of the model trained on it, timed steps per epoch)
    datasets = {"demo data/, 16,384 bp": (make_demo_dataset(os.path.join(work, "demo")),
                                          os.path.join(params_dir, "demo.json"), args.train_steps)}
    if args.no_chr20:
        print("chr20 dataset: skipped (--no_chr20)")
    elif not os.path.exists(os.path.join(common.CHR20, "chr20.fa.gz")):
        print(f"chr20 dataset: skipped: {common.CHR20} not found")
    else:
        datasets["GRCh37 chr20, 131,072 bp"] = (make_chr20_dataset(work),
                                                os.path.join(params_dir, "basenji2018.json"), args.chr20_steps)

    rows, goal_lines, notes = [], [], []
    for name, (data_dir, params_path, steps) in datasets.items():
        stats = load_statistics(data_dir)
        rate = reader_rate(data_dir, args.batch_size, args.batches, args.warmup, args.repeats)
        train_rate, train_batch = training_rate(data_dir, params_path, steps, args.train_repeats)
        model = os.path.basename(params_path)
        rows.append([name, stats["train_seqs"], stats["num_targets"], f"{rate:.1f}",
                     f"{rate * stats['seq_length'] / 1e6:.1f}", model, f"{train_rate:.2f}"])
        notes.append(f"{name}: training {model}, batch {train_batch}, best of {args.train_repeats} epochs of "
                     f"{steps} steps after 1 untimed epoch")
        ratio = rate / train_rate
        goal_lines.append(f"{name}: ratio reader/training = {ratio:,.0f} (goal >= {GOAL:g}): "
                          f"{'met' if ratio >= GOAL else 'NOT met'}")

    print(f"tf.data reader (train split, shuffle, rc, shift=3, repeat), batch {args.batch_size}, "
          f"best of {args.repeats} windows of {args.batches} batches after {args.warmup} warm-up; "
          f"training: model.fit on feeds.train_dataset (the same reader) as train.py")
    for line in notes:
        print(line)
    print(f"machine: {common.machine()}; load average (1 min) at start {load_start:.1f}, "
          f"at end {os.getloadavg()[0]:.1f}\n")
    common.table(["dataset", "train seqs", "targets", "reader seq/s", "reader Mb/s", "training model",
                  "training seq/s"], rows)
    print()
    for line in goal_lines:
        print(line)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
