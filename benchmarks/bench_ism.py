"""Fast ISM (basenji_tk.interpret.fastism.FastISM) against naive ISM (every full mutant through the model).

Both paths run in this process with the same batch size on the same mutants (3 per position:
each other base), timed best of 3 (taken in turn) after one warm-up call each (which traces
the functions and computes the cached reference activations). Weights are UNTRAINED random initialisations
(speed does not depend on them); reference sequences are GENERATED uniform random DNA.

Models:

1. ``resnet``: the model section of params/chromdragonn_resnet.json (1,000 bp, residual tower,
   expression fusion); its ``expression`` and ``mean_accessibility`` inputs are GENERATED random
   vectors.
2. ``basset``: a Basset-like model (Kelley et al. 2016), 600 bp: conv 300x19, 200x11, 200x7, each
   with batch norm, relu and max pooling by 3, 4, 4; flatten; two dense 1000 + dropout 0.3;
   164 sigmoid outputs; built from conv_block, dense_block and final.
3. ``basenji``: the model section of params/basenji2018.json (131,072 bp, 1,024 bins, dilated
   dense stack; 1 target, as the file leaves the count to the data); only a few mutants near the
   centre (the naive path costs a full 131 kb forward pass per mutant) and a batch of at most 16
   (memory of the naive path).

    python benchmarks/bench_ism.py [--batch_size 64] [--positions N] [--quick] [--models resnet,basset]

Goal: fast/naive >= 5x on models 1 and 2 (CPU, equal batch size).
For orientation only (different hardware and models): the fastISM paper reports ~21k naive and
~221k fast mutants/s on a GPU for its Basset-like model.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO_ROOT, machine, table  # noqa: E402

GOAL = 5.0
GOAL_MODELS = ("resnet", "basset")
PAPER = "fastISM paper (GPU, Basset-like model; different hardware, orientation only): 21k naive, 221k fast mutants/s"

BASSET = {
    "name": "basset_like",
    "seq_length": 600,
    "trunk": [
        {"name": "conv_block", "filters": 300, "kernel_size": 19, "pool_size": 3},
        {"name": "conv_block", "filters": 200, "kernel_size": 11, "pool_size": 4},
        {"name": "conv_block", "filters": 200, "kernel_size": 7, "pool_size": 4},
    ],
    "head": [
        {"name": "dense_block", "units": 1000, "flatten": True, "dropout": 0.3},
        {"name": "dense_block", "units": 1000, "dropout": 0.3},
        {"name": "final", "units": 164, "activation": "sigmoid"},
    ],
}


def model_params(name):
    """The resolved ``params["model"]`` section of one benchmark model."""
    from basenji_tk.model.params import check_params, load_params

    if name == "basset":
        return check_params({"model": BASSET})["model"]
    file = {"resnet": "chromdragonn_resnet.json", "basenji": "basenji2018.json"}[name]
    return load_params(os.path.join(REPO_ROOT, "params", file))["model"]


def mutants(reference, positions):
    """All 3 alternative bases at each of ``positions``: ``(positions, bases)`` arrays."""
    import numpy as np

    pos = np.repeat(np.asarray(positions), 3)
    bases = (reference.argmax(axis=1)[pos] + np.tile([1, 2, 3], len(positions))) % 4
    return pos, bases


def best_of(n, *fns):
    """Smallest wall time of ``n`` calls of each of ``fns``, called in turn (so a slow spell of
    the machine hits both); returns ``[(seconds, last result)]`` per function."""
    best = [(float("inf"), None)] * len(fns)
    for _ in range(n):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            result = fn()
            best[i] = (min(best[i][0], time.perf_counter() - t0), result)
    return best


def bench_model(name, batch_size=64, n_positions=None, quick=False, repeats=3, seed=0):
    """Time both paths on one model; returns a dict of the figures (seconds, mutants/s, ratio)."""
    import numpy as np

    from basenji_tk.interpret import fastism
    from basenji_tk.interpret.mutagenesis import naive_predict_mutants

    from basenji_tk.model import models
    mp = model_params(name)
    model = models.build_model(mp, mp.get("num_targets") or 1)
    rng = np.random.default_rng(seed)
    length = mp["seq_length"]
    reference = np.eye(4, dtype="float32")[rng.integers(0, 4, length)]
    other = {k: rng.random(n, dtype="float32") for k, n in mp["inputs"].items()} or None
    if name == "basenji":
        batch_size = min(batch_size, 16)
        n = n_positions or (8 if quick else 16)
        positions = np.arange(length // 2 - n // 2, length // 2 - n // 2 + n)
    else:
        n = min(n_positions or (64 if quick else 200), length)
        positions = np.sort(rng.choice(length, n, replace=False))
    pos, bases = mutants(reference, positions)

    t0 = time.perf_counter()
    engine = fastism.FastISM(model)
    fast = lambda: engine.predict_mutants(reference, pos, bases, other, batch_size)
    naive = lambda: naive_predict_mutants(model, reference, pos, bases, other, batch_size)
    a, b = fast(), naive()  # warm-up: traces, reference activations
    setup = time.perf_counter() - t0
    repeats = 1 if quick and name == "basenji" else repeats
    (t_fast, a), (t_naive, b) = best_of(repeats, fast, naive)
    err = float(np.max(np.abs(a - b)))
    return {"model": name, "mutants": len(pos), "batch": batch_size, "naive_s": t_naive, "fast_s": t_fast,
            "naive_per_s": len(pos) / t_naive, "fast_per_s": len(pos) / t_fast, "ratio": t_naive / t_fast,
            "max_abs_diff": err, "setup_s": setup, "params": model.count_params(),
            "output": "x".join(str(n) for n in model.output_shape[1:])}


def run(models=("resnet", "basset", "basenji"), batch_size=64, n_positions=None, quick=False, echo=True):
    """Benchmark ``models``; prints the table and the goal verdict when ``echo``; returns the rows."""
    rows = []
    for name in models:
        rows.append(bench_model(name, batch_size, n_positions, quick))
        if echo:
            r = rows[-1]
            print(f"  {name}: {r['mutants']} mutants, naive {r['naive_s']:.2f} s, fast {r['fast_s']:.2f} s, "
                  f"{r['ratio']:.1f}x", flush=True)
    if echo:
        report(rows)
    return rows


def report(rows):
    print()
    table(["model", "params", "output", "mutants", "batch", "naive s", "fast s", "naive mut/s", "fast mut/s",
           "fast/naive", "max |diff|"],
          [[r["model"], f"{r['params']:,}", r["output"], r["mutants"], r["batch"], f"{r['naive_s']:.2f}", f"{r['fast_s']:.2f}",
            f"{r['naive_per_s']:,.0f}", f"{r['fast_per_s']:,.0f}", f"{r['ratio']:.1f}x", f"{r['max_abs_diff']:.1e}"]
           for r in rows])
    print("\nweights: untrained random; sequences and expression vectors: generated random")
    for r in rows:
        if r["model"] in GOAL_MODELS:
            verdict = "PASS" if r["ratio"] >= GOAL else "FAIL"
            print(f"goal fast/naive >= {GOAL:.0f}x on {r['model']}: {r['ratio']:.1f}x {verdict}")
    print(PAPER)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--positions", type=int, default=None,
                    help="positions mutated per model (default 200; basenji: 16 around the centre)")
    ap.add_argument("--quick", action="store_true", help="fewer positions, one timing for basenji")
    ap.add_argument("--models", default="resnet,basset,basenji")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"machine: {machine()}")
    rows = run(args.models.split(","), args.batch_size, args.positions, args.quick)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
