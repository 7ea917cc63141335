"""sed.py: shared reference windows against two forward passes per variant, and memory vs VCF size.

Model: the demo model (``make demo`` writes demo_out/model). Variants: the real 1000 Genomes
records of data/variants_1kg.vcf.gz against every GENCODE TSS of data/tss.bed.

1. Speed, in one process: :func:`basenji_tk.analysis.variants.score_variants` as sed.py runs it (one
   reference prediction per gene window, shared by its variants) and with ``naive=True`` (the
   reference predicted again next to every variant), same batches; ratio of variants/s.
2. Memory: peak RSS (``/usr/bin/time``) of sed.py on the first 10,000 records and on 100,000
   records: the real 24,990 plus copies moved by 3.2, 6.4 and 9.6 Mb (CONSTRUCTED: each copy's
   REF is set to the genome base at the new position and its ALT to another base, so they pass
   the REF check), cut to 100,000.

    python benchmarks/bench_sed.py [--model demo_out/model] [--skip_memory]

Goals (issue 5): shared windows >= 1.8x the naive variants/s; peak memory for 100k variants less
than 20% above 10k.
"""

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO_ROOT, machine, require, skip, table  # noqa: E402

DATA = os.path.join(REPO_ROOT, "data")
VCF, TSS, FASTA = (os.path.join(DATA, name) for name in ("variants_1kg.vcf.gz", "tss.bed", "hg19_chr20_20Mb.fa.gz"))


def constructed_vcf(path, n, fasta):
    """The real records, then moved copies with REF/ALT reset to the genome (CONSTRUCTED), n lines."""
    import pysam

    genome = pysam.FastaFile(fasta)
    with gzip.open(VCF, "rt") as fh:
        lines = fh.read().splitlines()
    header = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")]
    out = list(body[:n])
    shift = 0
    while len(out) < n:
        shift += 3_200_000
        for line in body:
            cols = line.split("\t")
            pos = int(cols[1]) + shift
            ref = genome.fetch("20", pos - 1, pos).upper()
            if ref not in "ACGT":
                continue
            cols[1], cols[2], cols[3], cols[4] = str(pos), f"moved{shift // 100_000}_{cols[2]}", ref, "ACGT"[("ACGT".index(ref) + 1) % 4]
            out.append("\t".join(cols))
            if len(out) == n:
                break
    with open(path, "w") as fh:
        fh.write("\n".join(header + out) + "\n")
    return path


def peak_rss(cmd):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        started = time.time()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, *cmd], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return int(t.read().split()[-1]) / 1024, time.time() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO_ROOT, "demo_out", "model"))
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--skip_memory", action="store_true")
    args = ap.parse_args()
    require(os.path.join(args.model, "model_best.keras"), hint="run 'make demo' first (it trains demo_out/model)")
    require(VCF, TSS, FASTA)
    from basenji_tk.analysis.variants import score_variants

    print(f"machine: {machine()}; model {args.model}")
    work = tempfile.mkdtemp(prefix="bench_sed_")
    rates, rows = {}, []
    for naive in (False, True):
        counts = score_variants(args.model, VCF, TSS, os.path.join(work, f"naive{naive}"), fasta=FASTA,
                                batch_size=args.batch_size, naive=naive, quiet=True)
        rates[naive] = counts["variants_per_second"]
        rows.append(["two passes per variant (naive)" if naive else "shared reference window (sed.py)",
                     f"{counts['pairs']:,}", f"{counts['seconds']:.1f}", f"{counts['variants_per_second']:.1f}"])
    table(["scoring", "variant-gene pairs", "seconds", "variants/s"], rows)
    print(f"\nshared / naive: {rates[False] / rates[True]:.2f}x variants/s (goal >= 1.8)")
    if args.skip_memory:
        return
    if not os.path.exists("/usr/bin/time"):
        skip("/usr/bin/time not found (apt-get install time)")
    sed = [sys.executable, os.path.join(REPO_ROOT, "bin", "sed.py"), "-q", args.model]
    mem = {}
    for n in (10_000, 100_000):
        vcf = constructed_vcf(os.path.join(work, f"v{n}.vcf"), n, FASTA)
        mem[n] = peak_rss([*sed, vcf, TSS, "-f", FASTA, "-o", os.path.join(work, f"m{n}")])
        import h5py

        with h5py.File(os.path.join(work, f"m{n}", "sed.h5")) as h5:
            pairs = int(h5.attrs["count_pairs"])
        print(f"{n:,} variants: {pairs:,} pairs, peak {mem[n][0]:.0f} MiB, {mem[n][1]:.0f} s")
    print(f"peak memory 100k / 10k: {mem[100_000][0] / mem[10_000][0]:.3f}x (goal < 1.2)")


if __name__ == "__main__":
    main()
