"""One-hot encoding of 50 Mb of GRCh37 chr20: basenji_tk.data.dna.one_hot against tangermeme.

Compared: ``basenji_tk.data.dna.one_hot(seq)`` (uint8, shape (L, 4)) and tangermeme's
``one_hot_encode(seq)`` (torch int8, shape (4, L), its defaults: one thread, N ignored)
on the same string, bases [0, 50,000,000) of chr20, upper case. tangermeme is the
baseline because it is the PyTorch-side reference for this step (numba-compiled) and
what a user would otherwise reach for. Both run in the same process, interleaved,
best of 3 each, so the ratio ours/tangermeme (in Mb/s) is independent of the
machine's speed that day. Goal: ratio >= 1. The two encodings are also compared
base by base (ours.T against theirs), split by letter A, C, G, T, N.

Needs torch 2.13.0 and tangermeme, which live only in .venv-bench (benchmarks/setup_env.sh).
"""

import argparse
import sys

import numpy as np

import common

GOAL = 1.0


def encoders(n_jobs_all=False):
    """``{name: fn(seq)}``; warms numba up on short and long input so no compile is timed."""
    from tangermeme.utils import one_hot_encode

    from basenji_tk.data import dna

    fns = {"basenji_tk dna.one_hot": dna.one_hot, "tangermeme one_hot_encode": one_hot_encode}
    if n_jobs_all:
        fns["tangermeme n_jobs=-1 (info)"] = lambda s: one_hot_encode(s, n_jobs=-1)
    for fn in fns.values():
        fn("ACGTN" * 10)
        fn("ACGTN" * 200_000)
    return fns


def compare(ours, theirs, seq):
    """Rows per letter: ``(letter, count, rows that differ)``; ours (L, 4), theirs (4, L)."""
    from basenji_tk.data import dna

    theirs = theirs.numpy().T.view(np.uint8)  # (L, 4) view of tangermeme's int8 (4, L)
    differ = (ours != theirs).any(axis=1)
    codes = dna.encode(seq)
    counts = np.bincount(codes, minlength=5)
    bad = np.bincount(codes, weights=differ, minlength=5).astype(np.int64)
    n_rows_zero = bool((theirs[codes == dna.N_CODE] == 0).all())
    return [(b, counts[i], bad[i]) for i, b in enumerate("ACGTN")], n_rows_zero


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=50, help="megabases of chr20 to encode (default 50)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each, interleaved; best is kept")
    ap.add_argument("--threads", action="store_true", help="also time tangermeme with n_jobs=-1 (not in the ratio)")
    args = ap.parse_args(argv)

    fasta = f"{common.CHR20}/chr20.fa.gz"
    common.require(fasta)
    try:
        import tangermeme  # noqa: F401
        import torch
    except ImportError as err:
        common.skip(f"{err.name} is not installed here; run with .venv-bench/bin/python "
                    "(build it with benchmarks/setup_env.sh)")
    import pysam

    length = int(args.mb * 1_000_000)
    seq = pysam.FastaFile(fasta).fetch("20", 0, length).upper()
    fns = encoders(args.threads)
    best = {name: float("inf") for name in fns}
    for _ in range(args.repeats):
        for name, fn in fns.items():
            t, out = common.timed(fn, seq)
            best[name] = min(best[name], t)
            del out

    from tangermeme.utils import one_hot_encode

    from basenji_tk.data import dna

    ours, theirs = dna.one_hot(seq), one_hot_encode(seq)
    assert ours.shape == (length, 4) and ours.dtype == np.uint8
    assert tuple(theirs.shape) == (4, length) and theirs.dtype == torch.int8
    rows, n_zero = compare(ours, theirs, seq)

    print(f"one-hot of GRCh37 chr20 [0, {length:,}), upper case; best of {args.repeats}, interleaved")
    print(f"machine: {common.machine()}; torch {torch.__version__}, tangermeme {tangermeme_version()}\n")
    common.table(["encoder", "seconds", "Mb/s"],
                 [[n, f"{t:.3f}", f"{length / t / 1e6:.0f}"] for n, t in best.items()])
    print()
    common.table(["base", "count", "rows differing"], rows)
    print(f"N rows: both all-zero: {n_zero} (tangermeme's default ignore=['N']; other letters would raise there, "
          "and lower case too, while ours maps acgt like ACGT and anything else to zeros)")
    same = all(bad == 0 for _, _, bad in rows)
    ratio = best["tangermeme one_hot_encode"] / best["basenji_tk dna.one_hot"]
    met = ratio >= GOAL and same
    print(f"\nencodings identical: {same}")
    print(f"ratio ours/tangermeme = {ratio:.2f} in Mb/s (goal >= {GOAL:g}): {'met' if met else 'NOT met'}")
    return 0


def tangermeme_version():
    from importlib.metadata import version

    return version("tangermeme")


if __name__ == "__main__":
    sys.exit(main())
