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


def parse_score_at(spec: str, genome) -> tuple[str, int]:
    """``--score_at CHROM:POS`` (POS 1-based, as a genome browser shows it; commas allowed) ->
    ``(chrom as the FASTA names it, 0-based position)``."""
    from basenji_tk.io.genome import chrom_lookup

    chrom, sep, pos = str(spec).rpartition(":")
    try:
        p = int(pos.replace(",", "")) - 1
    except ValueError:
        p = -1
    g = chrom_lookup(genome.chroms)(chrom) if sep else None
    if not sep or p < 0:
        raise InputError(f"--score_at: expected CHROM:POS (1-based), got {spec!r}")
    if g is None:
        raise InputError(f"--score_at: chromosome {chrom} is not in the FASTA {genome.path}")
    if p >= genome.sizes[g]:
        raise InputError(f"--score_at: {spec} lies past the end of {chrom} ({genome.sizes[g]:,} bp)")
    return g, p


def distal_window(site: Site, at: tuple, window: int, span: tuple, length: int, spec: str = "") -> tuple[int, int]:
    """The window that holds both the central ``length`` bp of ``site`` and the scored position
    ``at`` (``(chrom, pos)``): centred between them. ``span``: ``(first, end)`` window bp the
    output covers. Returns ``(window start, start of the site's bases in the window)``; an error
    naming the distance when one window cannot hold both."""
    chrom, pos = at
    if site.chrom != chrom:
        raise InputError(f"--score_at {spec}: region {site.name} is on {site.chrom}, not {chrom}")
    mid = (site.start + site.end) // 2
    w0 = (mid + pos) // 2 - window // 2
    m0 = mid - length // 2 - w0
    if m0 < 0 or m0 + length > window or not span[0] <= pos - w0 < span[1]:
        raise InputError(f"--score_at {spec}: region {site.name} ({site.chrom}:{mid + 1:,}) is {abs(pos - mid):,} bp "
                         f"from it; one {window:,} bp window (output over bp {span[0]:,}-{span[1]:,} of it) cannot "
                         f"hold both its central {length} bp and the scored position")
    return w0, m0
