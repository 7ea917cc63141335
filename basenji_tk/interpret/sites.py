"""The sites ``sat_mut.py`` and ``saliency.py`` centre their windows on: BED regions and VCF SNPs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")


@dataclass
class Site:
    """One sequence to mutate: a BED region or a variant allele (``allele`` 'ref'/'alt', '' for BED)."""

    chrom: str
    start: int  # region (0-based, half-open) or the variant's position (1 bp)
    end: int
    name: str
    strand: str = "+"
    allele: str = ""
    ref: str = ""
    alt: str = ""


def read_sites(bed_path, genome) -> list[Site]:
    """The regions of a BED file in file order (name from column 4, strand from column 6)."""
    import os

    from basenji_tk.io.genome import chrom_lookup, table_lines

    path = str(bed_path)
    if not os.path.exists(path):
        raise InputError(f"{path}: BED file not found")
    to_genome = chrom_lookup(genome.chroms)
    sites, renamed = [], set()
    for lineno, f in table_lines(path):
        try:
            start, end = int(f[1]), int(f[2])
        except (ValueError, IndexError):
            shown = "\t".join(f)[:80]
            raise InputError(f"{path}:{lineno}: expected chrom, start, end (tab-separated integers): {shown!r}") \
                from None
        if start < 0 or end < start:
            raise InputError(f"{path}:{lineno}: expected 0 <= start <= end, got {start} {end}")
        g = to_genome(f[0])
        if g is None:
            raise InputError(f"{path}:{lineno}: chromosome {f[0]} is not in the FASTA {genome.path}")
        if g != f[0]:
            renamed.add(f"{f[0]}->{g}")
        if start >= genome.sizes[g]:
            raise InputError(f"{path}:{lineno}: region {f[0]}:{start}-{end} starts past the end of {f[0]} "
                             f"({genome.sizes[g]:,} bp)")
        name = f[3] if len(f) > 3 and f[3] else f"{f[0]}:{start}-{end}"
        strand = f[5] if len(f) > 5 and f[5] in ("+", "-") else "+"
        sites.append(Site(g, start, end, name, strand))
    if not sites:
        raise InputError(f"{path}: no regions (the BED file is empty)")
    if renamed:
        log.warning(f"warning: {path}: chromosome names normalised to the FASTA's: {', '.join(sorted(renamed)[:5])}")
    return sites


def variant_sites(vcf_path, genome) -> tuple[list[Site], dict]:
    """Two sites (reference and alternative allele) per SNP of a VCF; other alleles are counted."""
    from basenji_tk.io.vcf import read_vcf

    v = read_vcf(vcf_path, genome, max_indel=0)
    sites, skipped = [], 0
    for i in range(len(v)):
        if len(v.ref[i]) != 1 or len(v.alt[i]) != 1:
            skipped += 1
            continue
        p = int(v.pos[i])
        for allele in ("ref", "alt"):
            sites.append(Site(v.chrom[i], p, p + 1, v.ids[i], "+", allele, v.ref[i], v.alt[i]))
    counts = {f"vcf_{k}": int(n) for k, n in v.counts.items()}
    counts["vcf_not_snp_skipped"] = skipped
    if not sites:
        raise InputError(f"{vcf_path}: no SNP to mutate ({len(v)} scorable variants, {skipped} not SNPs)")
    return sites, counts
