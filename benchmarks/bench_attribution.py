"""Attributions per second: DeepSHAP (20 dinucleotide-shuffled references) against gradient x input.

Both methods (and integrated gradients, 50 steps from the all-zero reference, for orientation)
run in this process through basenji_tk.interpret.attribution.Attributor on the same sequences,
timed best of ``--repeats`` after one warm-up call each (which traces the passes). An
attribution is one sequence's (L, 4) map. Sequences are GENERATED uniform random DNA; the
DeepSHAP time includes drawing the shuffles.

Models:

1. ``demo``: the demo model (``--demo``, default ``demo_out/model`` of the repo: 16,384-bp windows,
   128-bp bins, 4 targets; trained by the demo), the targets summed over the central 200 bp;
   skipped when it is not there.
2. ``small``: a small convolutional model, 1,000 bp (conv 64x15 relu, max pool 4, conv 64x7 relu,
   max pool 4, dense 64 relu, 1 linear output), UNTRAINED random weights (speed does not depend
   on them).

    python benchmarks/bench_attribution.py [--demo DIR] [--repeats 2] [--demo_batch 4] [--small_batch 64]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO_ROOT, machine, table, timed  # noqa: E402

METHODS = (("grad_x_input", {}), ("deepshap", {"n_references": 20}), ("integrated_gradients", {"steps": 50}))


def small_model(folder):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((1000, 4), name="sequence")
    x = keras.layers.Conv1D(64, 15, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling1D(4)(x)
    x = keras.layers.Conv1D(64, 7, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling1D(4)(x)
    x = keras.layers.Dense(64, activation="relu")(keras.layers.Flatten()(x))
    keras.Model(inp, keras.layers.Dense(1)(x)).save(os.path.join(folder, "model_best.keras"))
    return folder


def bench(label, model_dir, batch, repeats):
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret.attribution import Attributor, choose
    from basenji_tk.interpret.scoring import scored_bins

    tm = TrainedModel.load(model_dir)
    scored = choose(tm)
    c = tm.window // 2
    bins = [scored_bins(scored, "center", c - 100, c + 100)] * batch
    x = {tm.sequence.name: np.eye(4, dtype=np.float32)[np.random.default_rng(0).integers(0, 4, (batch, tm.seq_length))]}
    rates, rows = {}, []
    for method, kw in METHODS:
        with Attributor(tm, scored, method, **kw) as a:
            a(x, bins)  # warm-up: traces the pass
            best, res = min((timed(a, x, bins) for _ in range(repeats)), key=lambda r: r[0])
        rates[method] = batch / best
        gap = "" if method == "grad_x_input" else f"{np.nanmax(res.gap):.1e}"
        rows.append([label, f"{tm.seq_length:,}", method, batch, f"{best:.2f}", f"{rates[method]:.2f}", gap])
    return rates, rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", default=os.path.join(REPO_ROOT, "demo_out", "model"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--demo_batch", type=int, default=4)
    ap.add_argument("--small_batch", type=int, default=64)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("small (UNTRAINED)", small_model(tmp), args.small_batch)]
        if os.path.exists(os.path.join(args.demo, "model_best.keras")):
            runs.insert(0, ("demo", args.demo, args.demo_batch))
        else:
            print(f"demo model skipped: {args.demo} not found (run the demo first)")
        for label, folder, batch in runs:
            rates, part = bench(label, folder, batch, args.repeats)
            rows += part
            ratios.append((label, rates["grad_x_input"] / rates["deepshap"]))
    table(["model (GENERATED sequences)", "bp", "method", "batch", "best s", "attributions/s", "max gap"], rows)
    for label, ratio in ratios:
        print(f"{label}: grad_x_input is {ratio:.1f}x as fast as deepshap (20 references)")


if __name__ == "__main__":
    main()
