"""Genotype VCFs of an LD reference population: ALT dosages per (record, ALT), sample lists.

:func:`read_genotypes` reads the GT field of a VCF/BCF (phased or not; plain, bgzip or plain gzip)
into :class:`Genotypes`: ``dosage`` ``(V, N)`` int8 for ``V`` variants and ``N`` samples, -1 for a
missing call, rows sorted by (chromosome, position). ``sed_ld.py`` computes LD from these
(:mod:`basenji_tk.analysis.ld` standardizes them and mean-imputes the missing calls).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.io import vcf as vcfio
from basenji_tk.io.genome import normalize_chrom

log = logging.getLogger("basenji_tk")


@dataclass
class Genotypes:
    """Alternative-allele dosages of a VCF, one row per (record, ALT), sorted by (chrom, pos).

    ``dosage`` is ``(V, N)`` int8: 0..ploidy ALT copies, -1 for a missing call. ``chrom`` holds
    names after :func:`normalize_chrom`; ``pos`` is 0-based.
    """

    samples: list
    chrom: np.ndarray
    pos: np.ndarray
    ids: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    dosage: np.ndarray
    counts: Counter = field(default_factory=Counter)

    def __len__(self):
        return len(self.pos)


def _gt_dosage(alleles, k):
    """ALT-``k`` copies in one call's allele indices; -1 when any allele is missing."""
    if not alleles or any(a is None for a in alleles):
        return -1
    return sum(1 for a in alleles if a == k)


def read_sample_list(path) -> list:
    """Sample ids, one per line (first whitespace-separated word; '#' lines skipped)."""
    try:
        with open(path) as fh:
            out = [line.split()[0] for line in fh if line.strip() and not line.startswith("#")]
    except OSError as err:
        raise InputError(f"{path}: cannot read the sample list ({err.strerror})") from None
    if not out:
        raise InputError(f"{path}: no sample ids (expected one id per line)")
    return out


def read_genotypes(path, samples=None, chroms=None, regions=None, progress: bool = False) -> Genotypes:
    """ALT dosages from the GT field of a VCF/BCF (phased or not; plain, bgzip or plain gzip).

    ``samples``: ids to keep (default all); ids the VCF lacks are counted in
    ``counts['samples_not_found']``. ``chroms``: normalized chromosome names to keep (default
    all). ``regions``: optional ``{normalized chrom: (start, end)}`` (0-based, half-open) to keep,
    fetched through the index when there is one. Multi-allelic records give one row per ALT
    (dosage of that ALT). A call with any allele missing is missing (-1) and counted in
    ``counts['missing_calls']``; callers mean-impute it (:func:`basenji_tk.analysis.ld.standardize`).
    """
    with vcfio.open_vcf(path, "VCF/BCF") as vcf:
        return _read_genotypes(vcf, path, samples, chroms, regions, progress)


def _read_genotypes(vcf, path, samples, chroms, regions, progress) -> Genotypes:
    counts = Counter()
    header_samples = list(vcf.header.samples)
    if not header_samples:
        raise InputError(f"{path}: no sample columns (expected genotypes in a GT field)")
    if samples is not None:
        present = set(header_samples)
        keep = [s for s in dict.fromkeys(samples) if s in present]
        counts["samples_not_found"] = len(set(samples)) - len(keep)
        if not keep:
            raise InputError(f"{path}: none of the {len(set(samples)):,} requested samples is in the VCF "
                             f"(it has {', '.join(header_samples[:3])} ...)")
        if counts["samples_not_found"]:
            log.warning(f"warning: {counts['samples_not_found']:,} requested samples are not in {path}")
        vcf.subset_samples(keep)
        header_samples = list(vcf.header.samples)  # in the VCF's order
    wanted = None if chroms is None else set(chroms)
    contigs = list(vcf.header.contigs)
    if regions is not None:
        wanted = set(regions) if wanted is None else wanted & set(regions)

    indexed = wanted is not None and bool(contigs) and vcf.index is not None

    def records():
        if indexed:  # only the wanted contigs
            for c in contigs:
                if normalize_chrom(c) in wanted:
                    span = regions.get(normalize_chrom(c)) if regions else None
                    try:
                        yield from (vcf.fetch(c, max(0, span[0]), span[1]) if span else vcf.fetch(c))
                    except ValueError:  # a header contig without records in the index
                        continue
            return
        yield from vcf

    rows, dos = [], []
    seen_chroms = Counter()
    it = records()
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="genotypes", unit=" records", leave=False)
    cache = {}
    line = 0
    try:
        for rec in it:
            line += 1
            counts["records"] += 1
            chrom = normalize_chrom(rec.chrom)
            seen_chroms[chrom] += 1
            if wanted is not None and chrom not in wanted:
                continue
            if regions is not None and not regions[chrom][0] <= rec.pos - 1 < regions[chrom][1]:
                continue
            if not rec.alts:
                counts["no_alt"] += 1
                continue
            if "GT" not in rec.format:
                counts["no_gt"] += 1
                continue
            calls = [s.allele_indices for s in rec.samples.values()]
            miss = sum(1 for a in calls if not a or None in a)
            counts["missing_calls"] += miss
            if len(rec.alts) > 1:
                counts["multiallelic_records"] += 1
            vid = rec.id if rec.id not in (None, ".") else None
            for k, alt in enumerate(rec.alts, start=1):
                d = []
                for a in calls:
                    key = (a, k)
                    v = cache.get(key)
                    if v is None:
                        v = cache[key] = _gt_dosage(a, k)
                    d.append(v)
                dos.append(np.array(d, dtype=np.int8))
                ref = (rec.ref or "").upper()
                rows.append((chrom, rec.pos - 1, vid or f"{rec.chrom}:{rec.pos}:{rec.ref}:{alt}", ref, alt.upper()))
    except (OSError, ValueError) as err:  # the line's number is known when read from the start
        raise InputError(vcfio.bad_record(path, None if indexed else line + 1, err)) from None
    counts["variants"] = len(rows)
    counts["chroms_seen"] = len(seen_chroms)
    n = len(header_samples)
    if rows:
        order = sorted(range(len(rows)), key=lambda i: (rows[i][0], rows[i][1]))
        rows = [rows[i] for i in order]
        dosage = np.stack([dos[i] for i in order])
    else:
        dosage = np.zeros((0, n), dtype=np.int8)
    geno = Genotypes(samples=header_samples, chrom=np.array([r[0] for r in rows], dtype=object),
                     pos=np.array([r[1] for r in rows], dtype=np.int64),
                     ids=np.array([r[2] for r in rows], dtype=object),
                     ref=np.array([r[3] for r in rows], dtype=object), alt=np.array([r[4] for r in rows], dtype=object),
                     dosage=dosage, counts=counts)
    geno.counts["vcf_chroms"] = sorted(set(seen_chroms) | {normalize_chrom(c) for c in contigs})  # type: ignore
    return geno
