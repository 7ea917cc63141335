"""bam_cov.py against the BAM-decoding floor (samtools view -c) and deepTools bamCoverage.

Input: the simulated ChIP-seq BAMs of benchmarks/make_bench_bam.py (SIMULATED reads on real chr20,
aligned with bowtie2 -k 10). Every command runs as a separate process on the same file in this
run; wall time and peak resident memory come from /usr/bin/time. bam_cov's numba kernels are
compiled (and cached) by a warm-up run first, as they are after a user's first run.

    python benchmarks/bench_bam_cov.py [--bamcoverage PATH] [--repeats 3]

Goals (issue 4): plain bam_cov faster than bamCoverage and within 3x of the samtools floor;
EM + GC at most 2x plain; peak memory under 2 GB and growing no faster than the read count.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import CHR20, OUT_DIR, machine, require, skip, table  # noqa: E402

BAM_DIR = os.path.join(OUT_DIR, "bam")


def measure(cmd, repeats=1):
    """(best wall seconds, peak RSS MiB of that run) of a command, via /usr/bin/time."""
    best = None
    for _ in range(repeats):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
            subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name, *cmd], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds, kb = t.read().split()[-2:]
        run = (float(seconds), int(kb) / 1024)
        best = run if best is None or run[0] < best[0] else best
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bamcoverage", default=None, help="deepTools bamCoverage (default: on PATH or .venv-bench)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2,
                    help="threads: samtools -@ N-1, bamCoverage -p N, bam_cov --threads N")
    args = ap.parse_args()
    bams = {label: os.path.join(BAM_DIR, f"bench_{label}.bam") for label in ("0.5M", "1M", "2M")}
    require(*bams.values(), hint="build them first: python benchmarks/make_bench_bam.py")
    fasta = os.path.join(CHR20, "chr20.fa.gz")
    require(fasta)
    if not os.path.exists("/usr/bin/time"):
        skip("/usr/bin/time not found (apt-get install time)")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bam_cov = [sys.executable, os.path.join(repo, "bin", "bam_cov.py"), "-q", "--threads", str(args.processes)]
    bamcoverage = args.bamcoverage or shutil.which("bamCoverage") or os.path.join(repo, ".venv-bench", "bin",
                                                                                   "bamCoverage")
    work = tempfile.mkdtemp(prefix="bench_bam_cov_")
    out = lambda name: os.path.join(work, name)
    big = bams["2M"]
    print(f"machine: {machine()}; input {big} ({os.path.getsize(big) / 2**20:.0f} MiB)")
    subprocess.run([*bam_cov, bams["0.5M"], out("warm.bw"), "--multi_em", "2", "--gc", fasta], check=True)

    rows, t = [], {}
    if shutil.which("samtools"):
        t["floor"] = measure(["samtools", "view", "-c", big], args.repeats)
        rows.append(["samtools view -c (floor)", *t["floor"]])
        t["floor_mt"] = measure(["samtools", "view", "-c", "-@", str(args.processes - 1), big], args.repeats)
        rows.append([f"samtools view -c -@ {args.processes - 1}", *t["floor_mt"]])
    if os.path.exists(bamcoverage):
        t["peer"] = measure([bamcoverage, "-b", big, "-o", out("deeptools.bw"), "--binSize", "1", "--Offset", "1",
                             "-p", str(args.processes)], 1)
        rows.append([f"bamCoverage --binSize 1 --Offset 1 -p {args.processes}", *t["peer"]])
    t["plain"] = measure([*bam_cov, big, out("plain.bw")], args.repeats)
    rows.append(["bam_cov plain", *t["plain"]])
    t["em"] = measure([*bam_cov, big, out("em.bw"), "--multi_em", "20"], args.repeats)
    rows.append(["bam_cov --multi_em 20", *t["em"]])
    t["emgc"] = measure([*bam_cov, big, out("emgc.bw"), "--multi_em", "20", "--gc", fasta], args.repeats)
    rows.append(["bam_cov --multi_em 20 --gc", *t["emgc"]])
    mem = {}
    for label, path in bams.items():
        mem[label] = measure([*bam_cov, path, out(f"m{label}.bw"), "--multi_em", "20", "--gc", fasta], 1)
        rows.append([f"bam_cov EM+GC, {label} reads", *mem[label]])
    table(["command", "seconds", "peak MiB"], [[r[0], f"{r[1]:.2f}", f"{r[2]:.0f}"] for r in rows])
    print()
    plain = t["plain"][0]
    if "floor" in t:
        print(f"plain / samtools floor: {plain / t['floor'][0]:.2f}x (goal <= 3) "
              f"[vs -@ {args.processes - 1}: {plain / t['floor_mt'][0]:.2f}x]")
    if "peer" in t:
        print(f"bamCoverage / plain: {t['peer'][0] / plain:.2f}x faster (goal > 1)")
    else:
        print(f"bamCoverage not found at {bamcoverage}: pip install deeptools (benchmarks/setup_env.sh does)")
    print(f"EM / plain: {t['em'][0] / plain:.2f}x; EM + GC / plain: {t['emgc'][0] / plain:.2f}x (goal <= 2)")
    print(f"peak memory EM+GC: {mem['0.5M'][1]:.0f} / {mem['1M'][1]:.0f} / {mem['2M'][1]:.0f} MiB at 0.5M / 1M / 2M reads "
          f"(goal < 2048); growth 1M->2M {mem['2M'][1] / mem['1M'][1]:.2f}x for 2x the reads")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
