"""Gene TSSs for ``sed.py``: a TSS BED or a GTF, grouped into genes on the FASTA's chromosomes.

:func:`read_genes` returns one :class:`Gene` per name and locus: its TSSs (0-based, sorted) and
strand. A name whose TSSs lie more than :data:`LOCUS_GAP` apart is one gene per locus.
"""

from __future__ import annotations

import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.io.genome import Genome, chrom_lookup, table_lines

LOCUS_GAP = 200_000  # bp: TSSs of one gene name farther apart than this are separate genes (loci)


@dataclass
class Gene:
    name: str
    chrom: str  # FASTA name
    tss: np.ndarray  # int64, 0-based TSS positions, sorted
    strand: str
    locus: int = 0  # 1, 2, ... for a name found at loci more than LOCUS_GAP apart (0: one locus)


def read_genes(path, genome: Genome) -> tuple[list[Gene], Counter]:
    """Genes from a TSS BED (chrom, start, end, name, and a +/- strand in column 5 or 6) or a GTF
    (the TSS of every ``transcript``, grouped by ``gene_name`` or ``gene_id``).

    Plain or gzip; ``#``/``track``/``browser`` lines, and a first BED line of column names, are
    skipped; Windows line endings are accepted. A name whose TSSs lie more than ``LOCUS_GAP`` bp
    apart (e.g. ``Y_RNA``, which GENCODE gives to many small genes) is one gene per locus
    (``locus`` 1, 2, ... in genome order), each with its own window."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such genes file")
    gtf = re.search(r"\.gtf(\.gz)?$", path) is not None
    to_fasta = chrom_lookup(genome.chroms)
    tss, strands, counts = defaultdict(list), {}, Counter()
    for k, (number, cols) in enumerate(table_lines(path)):
        if k == 0 and not gtf and len(cols) >= 3 and not (_is_int(cols[1]) or _is_int(cols[2])):
            continue  # a column-name header ("chrom start end name ...")
        try:
            name, chrom, position, strand = (_gtf_tss if gtf else _bed_tss)(cols)
        except (ValueError, IndexError) as err:
            kind = "GTF" if gtf else "BED"
            raise InputError(f"{path}: line {number}: expected a {kind} gene line ({err})") from None
        if name is None:
            continue
        fasta_chrom = to_fasta(chrom)
        if fasta_chrom is None:
            counts["chrom_not_in_fasta"] += 1
            continue
        if not 0 <= position < genome.sizes[fasta_chrom]:
            counts["tss_outside_chromosome"] += 1
            continue
        tss[(name, fasta_chrom)].append(position)
        strands[(name, fasta_chrom, position)] = strand
    genes = []
    for (name, chrom), p in tss.items():
        p = np.unique(np.array(p, dtype=np.int64))
        loci = np.split(p, np.flatnonzero(np.diff(p) > LOCUS_GAP) + 1)
        if len(loci) > 1:
            counts["names_at_several_loci"] += 1
        for k, where in enumerate(loci):
            genes.append(Gene(name, chrom, where, strands[(name, chrom, int(where[0]))], k + 1 if len(loci) > 1 else 0))
    order = {c: i for i, c in enumerate(genome.chroms)}
    genes.sort(key=lambda g: (order[g.chrom], int(g.tss[0]), g.name))
    if not genes:
        raise InputError(f"{path}: no gene TSS on the FASTA's chromosomes ({', '.join(genome.chroms[:5])})")
    return genes, counts


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _bed_tss(cols):
    if len(cols) < 4:
        raise ValueError(f"{len(cols)} tab-separated columns, expected 4 or more: chrom, start, end, name")
    start, end = int(cols[1]), int(cols[2])
    strand = next((cols[k] for k in (5, 4) if len(cols) > k and cols[k] in ("+", "-")), "+")
    if end <= start:
        raise ValueError(f"end {end} not after start {start}")
    return cols[3], cols[0], start if strand == "+" else end - 1, strand


def _gtf_tss(cols):
    if len(cols) < 9:
        raise ValueError(f"{len(cols)} columns, GTF has 9")
    if cols[2] != "transcript":
        return None, None, None, None
    attrs = dict(re.findall(r'(\w+) "([^"]*)"', cols[8]))
    name = attrs.get("gene_name") or attrs.get("gene_id")
    if not name:
        raise ValueError("no gene_name or gene_id attribute")
    start, end = int(cols[3]) - 1, int(cols[4])  # GTF: 1-based, inclusive
    return name, cols[0], start if cols[6] == "+" else end - 1, cols[6]
