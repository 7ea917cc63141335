#!/usr/bin/env python
"""GPyOpt search (basenji_tk.hyper.optimizer.optimize) against random search on a synthetic objective.

The objective (:func:`objective`) stands in for training: 4 mixed dimensions, as a
real search would tune them, with a known minimum of 0::

    lr       continuous, log, [1e-4, 1e-1]   (log10(lr) + 2.5)^2           best 10^-2.5
    dropout  continuous, [0, 0.5]            8 (dropout - 0.2)^2           best 0.2
    filters  discrete, log, 16..256          0.5 (log2(filters) - 6)^2     best 64
    opt      categorical adam/sgd/rmsprop    0 / 0.8 / 0.4                 best adam

Its range over the domain is [0, 5.77]. **Gap** = (best value found - 0) / 5.77;
"within 5% of the optimum" means gap <= 0.05. Each method runs 20 evaluations
(GPyOpt: 5 random, then 15 proposals) for seeds 0..9; the script prints the median
best-so-far gap after each evaluation, and PASS/FAIL for: (1) GPyOpt's median gap
after 20 evaluations <= 0.05; (2) it is below random search's median. It saves
the curves (median and interquartile range) to benchmarks/out/hyper_curves.png.

Usage: python benchmarks/bench_hyper.py [--seeds 10] [--evals 20] [--workers 2]
"""

import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SPEC = {"lr": {"type": "continuous", "range": [1e-4, 1e-1], "log": True},
        "dropout": {"type": "continuous", "range": [0.0, 0.5]},
        "filters": {"type": "discrete", "values": [16, 32, 64, 128, 256], "log": True},
        "opt": {"type": "categorical", "values": ["adam", "sgd", "rmsprop"]}}
OFFSET = {"adam": 0.0, "sgd": 0.8, "rmsprop": 0.4}
F_MIN = 0.0
F_MAX = 2.25 + 8 * 0.3 ** 2 + 0.5 * 2 ** 2 + 0.8  # 5.77, at a corner of the domain
WITHIN = 0.05
INIT = 5


def objective(number, values) -> float:
    """The synthetic objective of a point ``{lr, dropout, filters, opt}`` (``number`` is unused)."""
    return ((math.log10(values["lr"]) + 2.5) ** 2 + 8 * (values["dropout"] - 0.2) ** 2
            + 0.5 * (math.log2(values["filters"]) - 6) ** 2 + OFFSET[values["opt"]])


def gap_curve(method: str, seed: int, evals: int = 20) -> np.ndarray:
    """``(evals,)`` best-so-far gap ((best - F_MIN) / (F_MAX - F_MIN)) after each evaluation."""
    from basenji_tk.hyper.domain import parse_domain
    from basenji_tk.hyper.optimizer import best_so_far, optimize

    domain = parse_domain(SPEC)
    trials = optimize(domain, objective, evals, init=INIT, seed=seed, method=method, exact=True)
    return (best_so_far(trials) - F_MIN) / (F_MAX - F_MIN)


def _run(job):
    method, seed, evals = job
    t0 = time.perf_counter()
    curve = gap_curve(method, seed, evals)
    return method, seed, curve, time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out"))
    args = p.parse_args()
    import logging

    logging.getLogger("basenji_tk").setLevel(logging.ERROR)
    jobs = [(m, s, args.evals) for s in range(args.seeds) for m in ("gp", "random")]
    t0 = time.perf_counter()
    if args.workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(args.workers) as pool:
            results = pool.map(_run, jobs)
    else:
        results = [_run(j) for j in jobs]
    wall = time.perf_counter() - t0
    curves = {m: np.array([c for mm, _, c, _ in results if mm == m]) for m in ("gp", "random")}
    secs = {m: np.median([t for mm, _, _, t in results if mm == m]) for m in ("gp", "random")}
    med = {m: np.median(c, axis=0) for m, c in curves.items()}

    print(f"synthetic objective: 4 dims (log continuous, continuous, log discrete, categorical), "
          f"min {F_MIN}, range {F_MAX:.2f}; gap = (best - min) / range; {args.seeds} seeds, "
          f"{args.evals} evaluations, GPyOpt after {INIT} random")
    print("evaluation  GPyOpt median gap  random median gap")
    for i in range(args.evals):
        print(f"{i + 1:10d}  {med['gp'][i]:17.4f}  {med['random'][i]:17.4f}")
    final = {m: curves[m][:, -1] for m in curves}
    reached = {m: int((final[m] <= WITHIN).sum()) for m in curves}
    first = [int(np.argmax(c <= WITHIN)) + 1 if (c <= WITHIN).any() else None for c in curves["gp"]]
    print(f"final gap per seed, GPyOpt: {' '.join(f'{g:.3f}' for g in final['gp'])}")
    print(f"final gap per seed, random: {' '.join(f'{g:.3f}' for g in final['random'])}")
    print(f"seeds within {WITHIN:.0%} after {args.evals}: GPyOpt {reached['gp']}/{args.seeds}, "
          f"random {reached['random']}/{args.seeds}; GPyOpt's first evaluation within: {first}")
    print(f"median seconds per run: GPyOpt {secs['gp']:.1f}, random {secs['random']:.2f}; wall {wall:.0f}s")
    ok1 = med["gp"][-1] <= WITHIN
    ok2 = med["gp"][-1] < med["random"][-1]
    print(f"{'PASS' if ok1 else 'FAIL'}: GPyOpt median gap after {args.evals} evaluations "
          f"{med['gp'][-1]:.4f} <= {WITHIN}")
    print(f"{'PASS' if ok2 else 'FAIL'}: GPyOpt median gap {med['gp'][-1]:.4f} < random search's "
          f"{med['random'][-1]:.4f} (ratio {med['random'][-1] / max(med['gp'][-1], 1e-12):.1f}x)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(args.out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = np.arange(1, args.evals + 1)
    for m, label, color in (("gp", "GPyOpt (EI)", "C0"), ("random", "random search", "C1")):
        q1, q3 = np.percentile(curves[m], [25, 75], axis=0)
        ax.fill_between(x, q1, q3, color=color, alpha=0.2)
        ax.plot(x, med[m], color=color, label=f"{label}, median of {args.seeds}")
    ax.axhline(WITHIN, color="grey", ls="--", lw=0.8, label="5% of range")
    ax.axvline(INIT + 0.5, color="grey", ls=":", lw=0.8)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xlabel("evaluation")
    ax.set_ylabel("best-so-far gap")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "hyper_curves.png")
    fig.savefig(path + ".tmp.png")
    os.replace(path + ".tmp.png", path)
    print(f"wrote {path}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    sys.exit(main())
