"""Held-out-context predictions: the model cut at the context input against tiling every pair.

``test_contexts.py`` scores every region x every held-out context. Tiled, each (region,
context) pair runs the whole model; cut (:func:`basenji_tk.analysis.crosscontext.cut_at_context`),
the layers that depend on the sequence alone run once per region and only the fusion head runs
per pair. Model: ``params/chromdragonn_resnet_stage2.json`` through ``models.build_model``
(random weights; 1,000 bp, 1,630 expression features, the mean input), inference mode. Inputs:
``--regions`` random one-hot sequences x ``--contexts`` random expression rows, from memory.
Measured: seconds of :meth:`ContextPredictor.predict` each way over the same inputs (after one
warm-up batch each; wall clock and this process's CPU time, steadier on a shared machine), the ratio, and the largest difference between the two (must be < 1e-5).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO_ROOT, machine, table  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--regions", type=int, default=64)
    p.add_argument("--contexts", type=int, default=10, help="held-out contexts (the paper's test split: 10)")
    p.add_argument("--batch", type=int, default=64, help="regions per trunk call and pairs per model call")
    args = p.parse_args(argv)

    from basenji_tk.analysis.crosscontext import ContextPredictor
    from basenji_tk.model import models

    path = os.path.join(REPO_ROOT, "params", "chromdragonn_resnet_stage2.json")
    model = models.build_model(json.load(open(path))["model"])
    rng = np.random.default_rng(0)
    n_feat = int(model.input["expression"].shape[-1])
    seq = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (args.regions, int(model.input["sequence"].shape[1])))]
    expr = rng.normal(size=(args.contexts, n_feat)).astype(np.float32)
    mean = rng.random(args.regions).astype(np.float32)
    out, secs, cpu = {}, {}, {}
    for method in ("cut", "tiled"):
        pred = ContextPredictor(model, method=method, batch_size=args.batch)
        pred.predict(seq[:args.batch], expr[:1], mean[:args.batch])  # warm-up: trace the functions
        t0, c0 = time.perf_counter(), time.process_time()
        out[method] = np.concatenate([pred.predict(seq[k:k + args.batch], expr, mean[k:k + args.batch])
                                      for k in range(0, args.regions, args.batch)])
        secs[method], cpu[method] = time.perf_counter() - t0, time.process_time() - c0
    diff = float(np.abs(out["cut"] - out["tiled"]).max())
    pairs = args.regions * args.contexts
    print(machine())
    table(["method", "seconds", "CPU seconds", "pairs/s"],
          [[m, f"{secs[m]:.2f}", f"{cpu[m]:.2f}", f"{pairs / secs[m]:,.0f}"] for m in ("cut", "tiled")])
    print(f"{os.path.relpath(path, REPO_ROOT)}: {model.count_params():,} parameters; {args.regions} regions x "
          f"{args.contexts} contexts; cut is {secs['tiled'] / secs['cut']:.1f}x faster ({cpu['tiled'] / cpu['cut']:.1f}x "
          f"in CPU time); largest difference {diff:.2e}")
    assert diff < 1e-5, diff


if __name__ == "__main__":
    main()
