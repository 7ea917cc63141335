"""How far a stage-2 head can get when it is handed each bin's accessibility over the training
contexts, on a ChromDragoNN benchmark folder (LABELLED SEMI-SYNTHETIC; the work folder of
``bench_chromdragonn.py``).

A small MLP (profile -> 64 units, beside the context's expression z-scored per TF on the training
contexts with dropout 0.3 -> 256 -> 64 -> sigmoid) is trained on 1:3 class-balanced (bin, context)
pairs of the training genome and the training contexts, then scores every bin in the fixed split's
held-out contexts. The profile is either the bin's true 0/1 labels in the training contexts (the
best a stage 1 could memorise; for a training pair it holds the pair's own label, as the mean
input does) or, with ``--stage1 MODEL``, a stage-1 model's logits over those contexts (what the
authors' stage-2 code feeds, ``task_blocks``). The gap between the two is what stage 1's
memorisation costs; the first is a ceiling for the ``task_blocks`` design on this benchmark. Prints
pooled AUPRC (all bins / training genome / held-out genome) beside the RNA-weighted baseline.

    python benchmarks/chromdragonn_ceiling.py benchmarks/out/chromdragonn [--stage1 runs/resnet_stage1/checkpoint.keras]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def stage1_logits(model_path, data, index):
    """A stage-1 model's logits (the input of its last activation) for the regions ``index`` of
    ``sequences.bed``: ``(n, training contexts)``."""
    import keras
    import pysam

    from basenji_tk.data import dna
    from basenji_tk.model import models

    model = models.load_model(model_path)
    logits = keras.Model(model.inputs, model.layers[-2].input)  # before the final sigmoid
    rows = [line.split("\t") for line in open(os.path.join(data, "sequences.bed"))]
    fasta = json.load(open(os.path.join(os.path.dirname(data), "contexts_SEMI-SYNTHETIC", "truth.json")))
    fa = pysam.FastaFile(fasta["design"]["sources"]["fasta"])
    chrom = next(c for c in (rows[0][0], "chr" + rows[0][0], rows[0][0].removeprefix("chr")) if c in fa.references)
    x = np.stack([dna.one_hot(fa.fetch(chrom, int(rows[i][1]), int(rows[i][2]))) for i in index]).astype(np.float32)
    return logits.predict(x, batch_size=256, verbose=0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work", help="bench_chromdragonn.py's work folder (holds pairs_fixed/)")
    p.add_argument("--stage1", default=None, help="a stage-1 model: use its logits instead of the true labels")
    p.add_argument("--pairs", type=int, default=120_000, help="balanced training pairs (1:3)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from sklearn.metrics import average_precision_score

    from basenji_tk.analysis import crosscontext as cc
    from basenji_tk.data import records
    from basenji_tk.data.pairs_views import context_table

    data = os.path.join(a.work, "pairs_fixed")
    spec = records.load_spec(data)
    query, train = cc.query_contexts(spec, 0, None), cc.training_index(spec, 0)
    scan = cc.scan_contexts(spec, [], context_table(spec)[query], train, "all", 256, False)
    labels, split = scan.labels.astype(np.float32), np.asarray(scan.region_split)
    table = context_table(spec)
    expr = (table - table[train].mean(0)) / (table[train].std(0) + 1e-3)
    profile = labels[:, train] if a.stage1 is None else stage1_logits(a.stage1, data, np.asarray(scan.index))
    if a.stage1:
        seen = split == "train"
        print(f"stage-1 logits: AUPRC against the labels on the training genome "
              f"{average_precision_score(labels[seen][:, train].ravel(), profile[seen].ravel()):.3f}")
    rng = np.random.default_rng(a.seed)
    bins = rng.choice(np.flatnonzero(split == "train"), 10 * a.pairs)
    ctx = rng.choice(train, len(bins))
    y = labels[bins, ctx]
    n_pos = a.pairs // 4
    pick = np.concatenate([rng.choice(np.flatnonzero(y == 1), n_pos), rng.choice(np.flatnonzero(y == 0), a.pairs - n_pos)])
    rng.shuffle(pick)
    keras.utils.set_random_seed(a.seed)
    p_in, e_in = keras.Input(profile.shape[1:]), keras.Input(expr.shape[1:])
    h = keras.layers.Concatenate()([keras.layers.Dense(64, activation="relu")(p_in), keras.layers.Dropout(0.3)(e_in)])
    h = keras.layers.Dropout(0.3)(keras.layers.Dense(256, activation="relu")(h))
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(64, activation="relu")(h))
    mlp = keras.Model([p_in, e_in], out)
    mlp.compile("adam", "binary_crossentropy")
    mlp.fit([profile[bins[pick]], expr[ctx[pick]]], y[pick], batch_size=256, epochs=a.epochs, verbose=0)
    n = len(labels)
    scores = np.stack([mlp.predict([profile, np.repeat(expr[c][None], n, 0)], batch_size=4096, verbose=0)[:, 0]
                       for c in query], 1)
    rna = cc.rna_weighted_baseline(labels, train, table, table[query], "centered")
    truth = labels[:, query]
    what = "true training-context labels" if a.stage1 is None else f"stage-1 logits ({a.stage1})"
    print(f"LABELLED SEMI-SYNTHETIC; MLP on {what} + expression, {len(query)} held-out contexts, pooled AUPRC:")
    for part in ("all", "train", "test"):
        keep = np.ones(n, bool) if part == "all" else split == part
        print(f"  {part:5s} genome: MLP {average_precision_score(truth[keep].ravel(), scores[keep].ravel()):.3f}"
              f"  rna_weighted {average_precision_score(truth[keep].ravel(), rna[keep].ravel()):.3f}")


if __name__ == "__main__":
    main()
