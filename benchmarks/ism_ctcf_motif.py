#!/usr/bin/env python
"""Does ISM of the demo model recover the CTCF motif from held-out CTCF peaks?

Real data throughout: the demo model (``make demo``: demo_out/model, trained on data/ with the
CTCF-peak track ``ctcf`` among its targets), its dataset's split (demo_out/data/sequences.bed),
the CTCF ChIP-seq peaks of data/ctcf_peaks.bed, and the JASPAR 2024 archetype motifs of
../shared/data/motifs/jaspar_2024_consensus.meme (the CTCF archetype ``C055:CTCF``, whose
cluster holds MA0139; 12 bp wide).

1. Held-out peaks: CTCF peaks inside a test-split sequence and overlapping no training or
   validation sequence (the split's sequences overlap by half). Control: as many random
   regions of the same width from the same held-out stretches, overlapping no peak (seed 0).
2. ``sat_mut`` (the library code of bin/sat_mut.py) on each: the central ``--mut_len`` bp,
   statistic ``center``, target ``ctcf``. Per base, the loss when it is mutated is minus the
   mean of its three mutation scores.
3. Per region, the ``W``-bp window (W = the motif's width) with the largest summed loss; the
   windows' reference bases are oriented against each other (each flipped to the strand that
   agrees better with the others' current frequency matrix, a few rounds; JASPAR is not used)
   and averaged into a frequency matrix.
4. Pearson r between that matrix and JASPAR's over the W x 4 entries, at the best offset
   (overlap >= W - 2) and strand. Printed for the peaks and the control; the claim is
   r >= 0.5 for the peaks.

    python benchmarks/ism_ctcf_motif.py [--model_dir demo_out/model] [--data_dir demo_out/data]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def motif_matrix(path, name):
    """The letter-probability matrix ``(W, 4)`` of the first motif whose name starts with ``name``."""
    from basenji_tk.io.meme import read_meme

    found = [m for m in read_meme(path) if m.name.startswith(name)]
    if not found:
        raise SystemExit(f"{path}: no motif {name}")
    return found[0].pwm


def held_out(data_dir, peaks_bed, seed=0):
    """(held-out peaks, control regions) as lists of (chrom, start, end)."""
    seqs = [line.split("\t") for line in open(os.path.join(data_dir, "sequences.bed"))]
    test = [(c, int(s), int(e)) for c, s, e, split in ((x[0], x[1], x[2], x[3].strip()) for x in seqs)
            if split == "test"]
    seen = [(c, int(s), int(e)) for c, s, e, split in ((x[0], x[1], x[2], x[3].strip()) for x in seqs)
            if split != "test"]
    peaks = [(x.split("\t")[0], int(x.split("\t")[1]), int(x.split("\t")[2])) for x in open(peaks_bed)]

    def inside(r, regions):
        return any(c == r[0] and s <= r[1] and r[2] <= e for c, s, e in regions)

    def overlaps(r, regions):
        return any(c == r[0] and s < r[2] and r[1] < e for c, s, e in regions)

    chosen = [p for p in peaks if inside(p, test) and not overlaps(p, seen)]
    rng = np.random.default_rng(seed)
    width = int(np.median([e - s for _, s, e in chosen])) if chosen else 300
    control, tries = [], 0
    while len(control) < len(chosen) and tries < 100_000:
        tries += 1
        c, s, e = test[rng.integers(len(test))]
        a = int(rng.integers(s, e - width))
        r = (c, a, a + width)
        if not overlaps(r, seen) and not overlaps(r, peaks):
            control.append(r)
    return chosen, control


def best_windows(loss, seqs, width):
    """Per region the reference one-hot ``(W, 4)`` of the window with the largest summed loss."""
    out = []
    for lo, s in zip(loss, seqs):
        sums = np.convolve(lo, np.ones(width), mode="valid")
        k = int(np.argmax(sums))
        out.append(s[k:k + width].astype(np.float64))
    return np.stack(out)


def orient(windows, rounds=5):
    """Flip windows to the strand agreeing better with the others (no external motif)."""
    rc = windows[:, ::-1, ::-1]
    flip = np.zeros(len(windows), dtype=bool)
    for _ in range(rounds):
        pfm = np.where(flip[:, None, None], rc, windows).mean(axis=0)
        new = (rc * pfm).sum(axis=(1, 2)) > (windows * pfm).sum(axis=(1, 2))
        if (new == flip).all():
            break
        flip = new
    return np.where(flip[:, None, None], rc, windows).mean(axis=0)


def compare(pfm, motif, min_overlap=None):
    """Best Pearson r of the overlapping rows over offsets and both strands: ``(r, offset, strand)``."""
    W = len(motif)
    min_overlap = min_overlap or max(4, W - 2)
    best = (-1.0, 0, "+")
    for strand, m in (("+", pfm), ("-", pfm[::-1, ::-1])):
        for off in range(-(len(m) - min_overlap), W - min_overlap + 1):
            a0, b0 = max(0, off), max(0, -off)
            n = min(W - a0, len(m) - b0)
            if n < min_overlap:
                continue
            r = np.corrcoef(motif[a0:a0 + n].ravel(), m[b0:b0 + n].ravel())[0, 1]
            if r > best[0]:
                best = (float(r), off, strand)
    return best


def run_set(label, regions, args, out_dir):
    from basenji_tk.interpret.satmut import sat_mut

    bed = os.path.join(out_dir, f"{label}.bed")
    with open(bed, "w") as fh:
        fh.writelines(f"{c}\t{s}\t{e}\t{label}{i}\n" for i, (c, s, e) in enumerate(regions))
    t0 = time.time()
    counts = sat_mut(args.model_dir, os.path.join(out_dir, label), bed=bed, fasta=args.fasta,
                     mut_len=args.mut_len, stat="center", targets="ctcf", batch_size=args.batch_size,
                     method=args.method, quiet=True)
    import h5py

    with h5py.File(os.path.join(out_dir, label, "scores.h5")) as h5:
        scores, seqs = h5["scores"][:, :, :, 0].astype(np.float64), h5["seqs"][:]
    loss = -scores.sum(axis=2) / 3.0  # (N, mut_len): mean drop when the reference base is mutated
    return loss, seqs, counts, time.time() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_dir", default=os.path.join(REPO, "demo_out", "model"))
    p.add_argument("--data_dir", default=os.path.join(REPO, "demo_out", "data"))
    p.add_argument("--peaks", default=os.path.join(REPO, "data", "ctcf_peaks.bed"))
    p.add_argument("--fasta", default=os.path.join(REPO, "data", "hg19_chr20_20Mb.fa.gz"))
    p.add_argument("--meme", default=os.path.join(REPO, "..", "shared", "data", "motifs",
                                                  "jaspar_2024_consensus.meme"))
    p.add_argument("--motif", default="C055:CTCF")
    p.add_argument("--mut_len", type=int, default=200)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--method", default="auto")
    p.add_argument("--max_regions", type=int, default=0, help="use at most this many peaks (0: all)")
    p.add_argument("-o", "--out", default="ism_ctcf_out")
    args = p.parse_args(argv)
    for path in (args.model_dir, args.data_dir, args.meme):
        if not os.path.exists(path):
            print(f"skipped: {path} not found (run make demo; ../shared/data for the motif)")
            return 0
    os.makedirs(args.out, exist_ok=True)
    motif = motif_matrix(args.meme, args.motif)
    peaks, control = held_out(args.data_dir, args.peaks)
    if args.max_regions:
        peaks, control = peaks[:args.max_regions], control[:args.max_regions]
    print(f"{len(peaks)} held-out CTCF peaks (in test sequences, no train/valid overlap); "
          f"{len(control)} random control regions; motif {args.motif} ({len(motif)} bp)")
    result = {"peaks": len(peaks), "control": len(control), "motif": args.motif, "mut_len": args.mut_len}
    for label, regions in (("peaks", peaks), ("control", control)):
        loss, seqs, counts, secs = run_set(label, regions, args, args.out)
        pfm = orient(best_windows(loss, seqs, len(motif)))
        r, off, strand = compare(pfm, motif)
        result[label] = {"r": r, "offset": off, "strand": strand, "seconds": round(secs, 1),
                         "mutants_per_second": counts["mutants_per_second"], "mean_max_loss": float(loss.max(1).mean()),
                         "pfm": pfm.round(3).tolist()}
        print(f"{label:8s}: Pearson r with {args.motif} = {r:.3f} (offset {off}, strand {strand}); "
              f"mean max loss {loss.max(1).mean():.4f}; {secs:.0f} s at {counts['mutants_per_second']:,.0f} mutants/s")
    ok = result["peaks"]["r"] >= 0.5
    print(f"claim: r >= 0.5 on held-out peaks: {'PASS' if ok else 'FAIL'} ({result['peaks']['r']:.3f} on "
          f"{len(peaks)} peaks; control {result['control']['r']:.3f})")
    with open(os.path.join(args.out, "ism_ctcf_motif.json"), "w") as fh:
        json.dump(result, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
