"""Motif matching and scanning speed (basenji_tk.interpret.motifmatch, memelite underneath).

TOMTOM: N query motifs against a MEME database, timed after a warm-up call (numba compiles
once per machine, cached after): 20 JASPAR 2024 CORE vertebrate matrices (seed 0) and the
182 JASPAR 2024 archetypes of ../shared/data/motifs/jaspar_2024_consensus.meme, against the
archetypes and against JASPAR 2024 CORE vertebrates (879, pyjaspar). Printed: seconds,
queries/s, and how many of the 20 JASPAR queries get themselves as best match (a check).

Scanning: FIMO (memelite) of 1 and 20 JASPAR motifs over the first --scan_mb Mb of the bundled
chr20 (data/hg19_chr20_20Mb.fa.gz) cut into 10 kb windows, in bp/s (bases x motifs / s counts
each motif's pass). And, on real data, the share of the CTCF ChIP-seq peaks of
data/ctcf_peaks.bed with a CTCF (MA0139.2) hit at q < 0.05 against as many random chr20
regions of the same widths outside every peak (seed 0).

    python benchmarks/bench_motifs.py [--scan_mb 2]
"""

import argparse
import os
import sys

import numpy as np

import common

ARCHETYPES = os.path.join(common.SHARED_DATA, "motifs", "jaspar_2024_consensus.meme")
FASTA = os.path.join(common.REPO_ROOT, "data", "hg19_chr20_20Mb.fa.gz")
PEAKS = os.path.join(common.REPO_ROOT, "data", "ctcf_peaks.bed")


def best_of(n, fn, *args, **kwargs):
    runs = [common.timed(fn, *args, **kwargs) for _ in range(n)]
    return min(r[0] for r in runs), runs[0][1]


def tomtom_rows(jaspar, archetypes, repeats):
    from basenji_tk.interpret.motifmatch import tomtom

    rng = np.random.default_rng(0)
    twenty = [jaspar[i] for i in sorted(rng.choice(len(jaspar), 20, replace=False))]
    tomtom(twenty[:2], jaspar[:30])  # warm-up: numba compilation is not timed
    sets = [("20 JASPAR", twenty, "JASPAR CORE vert.", jaspar)]
    if archetypes:
        sets = [("20 JASPAR", twenty, "182 archetypes", archetypes), *sets,
                ("182 archetypes", archetypes, "JASPAR CORE vert.", jaspar)]
    rows = []
    for qname, queries, dname, db in sets:
        secs, table = best_of(repeats, tomtom, queries, db)
        note = ""
        if db is jaspar and queries is twenty:
            top = table[table["rank"] == 1]
            note = f"{int((top['query'] == top['target']).sum())}/20 best = itself"
        rows.append([qname, f"{dname} ({len(db)})", f"{secs:.2f}", f"{len(queries) / secs:.1f}", note])
    return rows


def windows(genome, mb, width=10_000):
    from basenji_tk.data.dna import one_hot

    chrom = genome.chroms[0]
    seq = genome.fetch(chrom, 0, int(mb * 1e6))
    return np.stack([one_hot(seq[i:i + width]) for i in range(0, len(seq) - width + 1, width)])


def scan_rows(jaspar, genome, mb, repeats):
    from basenji_tk.interpret.motifmatch import scan
    from basenji_tk.io.meme import select

    x = windows(genome, mb)
    scan(select(jaspar, ["MA0139.2"], "jaspar"), x[:2])  # warm-up
    rng = np.random.default_rng(0)
    rows = []
    for label, motifs in (("1 (MA0139.2 CTCF)", select(jaspar, ["MA0139.2"], "jaspar")),
                          ("20 JASPAR", [jaspar[i] for i in sorted(rng.choice(len(jaspar), 20, replace=False))])):
        secs, hits = best_of(repeats, scan, motifs, x)
        bp = x.shape[0] * x.shape[1]
        rows.append([label, f"{bp / 1e6:.1f} Mb", f"{secs:.2f}", f"{bp / secs / 1e6:.1f}",
                     f"{bp * len(motifs) / secs / 1e6:.1f}", str(len(hits))])
    return rows


def peak_enrichment(jaspar, genome):
    """(peaks with a CTCF hit at q < 0.05, peaks, control regions with one, controls)."""
    from basenji_tk.data.dna import one_hot
    from basenji_tk.interpret.motifmatch import scan
    from basenji_tk.io.meme import select

    chrom = genome.chroms[0]
    peaks = [(int(f[1]), int(f[2])) for f in (line.split("\t") for line in open(PEAKS))]
    rng = np.random.default_rng(0)
    size = genome.sizes[chrom]
    control = []
    while len(control) < len(peaks):
        s, e = peaks[len(control)]
        a = int(rng.integers(0, size - (e - s)))
        if not any(a < pe and ps < a + e - s for ps, pe in peaks):
            seq = genome.fetch(chrom, a, a + e - s)
            if seq.upper().count("N") == 0:
                control.append((a, a + e - s))
    ctcf = select(jaspar, ["MA0139.2"], "jaspar")
    out = []
    for regions in (peaks, control):
        width = max(e - s for s, e in regions)
        x = np.zeros((len(regions), width, 4), dtype=np.uint8)
        for k, (s, e) in enumerate(regions):
            x[k, :e - s] = one_hot(genome.fetch(chrom, s, e))
        hits = scan(ctcf, x, lengths=[e - s for s, e in regions])
        out.append(int(hits.loc[hits["q_value"] < 0.05, "sequence"].nunique()))
        out.append(len(regions))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scan_mb", type=float, default=2.0, help="Mb of chr20 to scan")
    p.add_argument("--repeats", type=int, default=2, help="best of this many timed runs")
    args = p.parse_args(argv)
    from basenji_tk.io.genome import Genome
    from basenji_tk.io.meme import jaspar_motifs, read_meme

    archetypes = read_meme(ARCHETYPES) if os.path.exists(ARCHETYPES) else None
    if archetypes is None:
        print(f"note: {ARCHETYPES} not found; the archetype rows are skipped")
    jaspar = jaspar_motifs()
    print(f"machine: {common.machine()}; numba threads: all cores")
    print("\nTOMTOM (memelite), after a warm-up call")
    common.table(["queries", "database", "seconds", "queries/s", "check"], tomtom_rows(jaspar, archetypes,
                                                                                      args.repeats))
    genome = Genome(FASTA)
    print(f"\nFIMO scan (memelite) of {args.scan_mb:g} Mb of chr20 in 10 kb windows, both strands, p <= 1e-4")
    common.table(["motifs", "sequence", "seconds", "Mb/s", "Mb x motifs / s", "hits"],
                 scan_rows(jaspar, genome, args.scan_mb, args.repeats))
    hp, n_p, hc, n_c = peak_enrichment(jaspar, genome)
    print(f"\nreal data: CTCF (MA0139.2) hit at q < 0.05 in {hp}/{n_p} CTCF peaks ({hp / n_p:.1%}) against "
          f"{hc}/{n_c} random regions of the same widths ({hc / n_c:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
