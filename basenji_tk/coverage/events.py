"""Read events from a BAM: the records kept, unique and multi-mapping reads, the fragment shift.

1. :func:`read_alignments` decodes the BAM once (:mod:`basenji_tk.io.bgzf` inflates batches of
   blocks in threads, :mod:`basenji_tk.io.bamio` parses the records) and keeps per
   alignment record only what later steps need (5' end, strand, chromosome, a hash of the read
   name, aligned blocks with ``--full``): memory grows with the number of reads, never with the
   genome.
2. :func:`group_reads` tells unique from multi-mapping reads (NH tag, BWA's XA tag, or secondary
   alignments grouped by read name) and drops reads with more than ``max_maps`` locations.
3. :func:`learn_shift` finds the fragment shift (strand cross-correlation for single-end reads,
   half the mean template length for proper pairs).

Coordinates: 0-based. Between steps, positions on all chromosomes live in one "global"
coordinate, ``offset[chrom] + position`` (:func:`global_offsets`), with gaps between chromosomes
wider than any smoothing window, so the EM and cross-correlation code never needs to look at
chromosome names.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from basenji_tk.coverage import checks as covchecks
from basenji_tk.errors import InputError

if TYPE_CHECKING:
    from basenji_tk.coverage.pipeline import Options

log = logging.getLogger("basenji_tk")


# SAM flags
PAIRED, PROPER, UNMAPPED, REVERSE, READ1, READ2 = 0x1, 0x2, 0x4, 0x10, 0x40, 0x80
SECONDARY, QC_FAIL, DUPLICATE, SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800

DROP_REASONS = ("unmapped", "qc_fail", "duplicate", "supplementary", "low_mapq", "too_many_maps")


@dataclass
class Alignments:
    """Per-record columns kept from the BAM (see :func:`read_alignments`)."""

    contigs: list  # BAM header order
    lengths: list
    chrom: np.ndarray  # int32 index into contigs
    pos: np.ndarray  # int64 5' end (unshifted)
    reverse: np.ndarray  # bool
    key: np.ndarray  # int64 read-name hash (0 where not needed)
    nh: np.ndarray  # int32 NH tag (0: none)
    secondary: np.ndarray  # bool: secondary record or an XA alternative
    block_rec: np.ndarray  # int64 record index of each aligned block (--full)
    block_start: np.ndarray
    block_end: np.ndarray
    counts: dict  # records seen and dropped by reason
    paired: bool = False
    template_length: float = 0.0  # mean |TLEN| of proper pairs (read 1)
    read_length: int = 0  # median aligned length of the first records
    scheme: str = ""


@dataclass
class Reads:
    """The alignments as reads: which records count, with what weight, in which group."""

    keep: np.ndarray  # bool per record: used
    weight: np.ndarray  # float64 per record (1 for unique reads)
    multi_rec: np.ndarray  # indices of multi-mapping records used
    group: np.ndarray  # read index (0..n_multi-1) of each multi record
    n_unique: int
    n_multi: int
    dropped_too_many: int


# ---------------------------------------------------------------- 1. reading

_CIGAR = re.compile(r"(\d+)([MIDNSHP=X])")


def _xa_alignments(xa: str, tid_of) -> list[tuple[int, int, bool, list]]:
    """BWA's XA:Z tag -> [(tid, 5' end, reverse, blocks)], contigs missing from the header skipped."""
    out = []
    for hit in xa.rstrip(";").split(";"):
        parts = hit.split(",")
        if len(parts) < 3:
            continue
        tid = tid_of(parts[0])
        if tid < 0:
            continue
        reverse = parts[1].startswith("-")
        start = abs(int(parts[1])) - 1
        blocks, ref = [], start
        for length, op in _CIGAR.findall(parts[2]):
            length = int(length)
            if op in "M=X":
                blocks.append((ref, ref + length))
            if op in "MDN=X":
                ref += length
        out.append((tid, ref - 1 if reverse else start, reverse, blocks))
    return out


def read_alignments(bam, opts: Options, path: str) -> Alignments:
    """Decode the BAM once (:mod:`basenji_tk.io.bamio`); keep the columns of every usable record.

    Dropped here, and counted by reason: unmapped, QC-fail, supplementary (a chimeric part of a
    read, counted at its primary record), duplicates (with ``remove_duplicates``) and records
    under ``min_mapq``. Secondary records stay: with Bowtie2 ``-k`` they are the other locations
    of multi-mapping reads. BWA's XA alternatives become secondary records of their read.
    """
    from tqdm import tqdm

    from basenji_tk.io.bgzf import BatchReader

    contigs, lengths = list(bam.references), list(bam.lengths)
    skip = QC_FAIL | SUPPLEMENTARY | (DUPLICATE if opts.remove_duplicates else 0)
    with tqdm(total=os.path.getsize(path), desc="reading", unit="B", unit_scale=True, leave=False,
              disable=not opts.progress, mininterval=0.5) as bar:

        def progress(offset, tid):
            bar.update(max(offset - bar.n, 0))
            if 0 <= tid < len(contigs):
                bar.set_description(contigs[tid], refresh=False)

        batches = BatchReader(path, bam.tell(), opts.threads)
        from basenji_tk.io import bamio  # numba starts up while the first batches inflate

        try:
            with batches:
                cols = bamio.read_columns(batches, skip, opts.min_mapq, opts.full, progress)
        except bamio.UnsortedError as err:
            tid, pos, last_tid, last_pos = err.args
            raise InputError(covchecks.unsorted_message(path, contigs, covchecks.header_sort_order(bam), (tid, pos),
                                                        (last_tid, last_pos))) from None
        except (ValueError, OSError) as err:
            raise InputError(f"{path}: damaged BAM ({err})") from None
    st = cols.stats
    counts = {"records_seen": int(st[bamio.SEEN]), "unmapped": int(st[bamio.UNMAPPED]),
              "qc_fail": int(st[bamio.QC_FAIL]), "duplicate": int(st[bamio.DUPLICATE]),
              "supplementary": int(st[bamio.SUPPLEMENTARY]), "low_mapq": int(st[bamio.LOW_MAPQ]), "too_many_maps": 0}
    tid, pos, flag, key, nh = cols.tid, cols.pos, cols.flag, cols.key, cols.nh
    blk = (cols.blk_rec, cols.blk_start, cols.blk_end)
    if cols.xa:
        tid, pos, flag, key, nh, blk = _add_xa(cols, bam.get_tid, opts.full)
    programs = " ".join(p.get("ID", "") + " " + p.get("PN", "") for p in bam.header.to_dict().get("PG", []))
    has_nh = bool(st[bamio.NH_SEEN])
    scheme = "NH tag" if has_nh else "secondary alignments grouped by read name"
    if cols.xa or "bwa" in programs.lower():
        scheme += " + BWA XA tag"
    tlen_n = int(st[bamio.TLEN_N])
    return Alignments(
        contigs=contigs, lengths=lengths, chrom=tid, pos=pos, reverse=(flag & REVERSE) > 0, key=key, nh=nh,
        secondary=(flag & SECONDARY) > 0, block_rec=blk[0], block_start=blk[1], block_end=blk[2], counts=counts,
        paired=bool(st[bamio.PAIRED]), template_length=float(st[bamio.TLEN_SUM]) / tlen_n if tlen_n else 0.0,
        read_length=int(np.median(cols.rlen[:10_000])) if len(cols.rlen) else 0, scheme=scheme)


def _add_xa(cols, tid_of, full: bool):
    """The columns with BWA's XA alternatives appended as secondary records of the same read."""
    tid, pos, flag, key, nh = ([x] for x in (cols.tid, cols.pos, cols.flag, cols.key, cols.nh))
    brec, bstart, bend = [cols.blk_rec], [cols.blk_start], [cols.blk_end]
    n = len(cols.pos)
    for rec, xa in cols.xa:
        for t, five, reverse, blocks in _xa_alignments(xa, tid_of):
            tid.append([t])
            pos.append([five])
            flag.append([SECONDARY | (REVERSE if reverse else 0)])
            key.append([cols.key[rec]])
            nh.append([0])
            if full:
                brec.append([n] * len(blocks))
                bstart.append([b[0] for b in blocks])
                bend.append([b[1] for b in blocks])
            n += 1

    def cat(parts, dtype):
        return np.concatenate([np.asarray(p, dtype=dtype) for p in parts])

    return (cat(tid, np.int32), cat(pos, np.int64), cat(flag, np.uint16), cat(key, np.int64), cat(nh, np.int32),
            (cat(brec, np.int64), cat(bstart, np.int64), cat(bend, np.int64)))


# ---------------------------------------------------------------- 2. unique and multi-mapping reads


def group_reads(aln: Alignments, max_maps: int) -> Reads:
    """Unique reads weigh 1; each multi-mapping read is a group of records of total weight 1.

    A record is multi-mapping when its NH tag is above 1, when it is secondary (or an XA
    alternative), or when it shares its read name (and mate) with a secondary record. A read's
    number of locations is the larger of its NH tag and its records present in the file (a BAM cut
    to one chromosome keeps only some of them); reads with more than ``max_maps`` are dropped.
    The weight starts equal over the records present.
    """
    from basenji_tk.io.bamio import group_by_key

    n = len(aln.pos)
    # without secondary records only NH > 1 records can be multi-mapping; with them, any record can
    if aln.secondary.any():
        gid, _, any_secondary, max_nh = group_by_key(aln.key, aln.secondary, aln.nh)
        is_multi = (aln.nh > 1) | any_secondary[gid]
        multi_rec = np.flatnonzero(is_multi)
    else:
        candidates = np.flatnonzero(aln.nh > 1)
        gid, _, any_secondary, max_nh = group_by_key(aln.key[candidates], aln.secondary[candidates],
                                                     aln.nh[candidates])
        is_multi = np.ones(len(candidates), dtype=bool)
        multi_rec = candidates
    group = gid[is_multi]
    present = np.bincount(group, minlength=len(max_nh))
    locations = np.maximum(present, max_nh)
    too_many = (present > 0) & (locations > max_maps)
    kept_groups = (present > 0) & ~too_many
    keep = np.ones(n, dtype=bool)
    keep[multi_rec[too_many[group]]] = False
    renumber = np.cumsum(kept_groups) - 1
    sel = kept_groups[group]
    multi_rec, group = multi_rec[sel], renumber[group[sel]]
    weight = np.ones(n, dtype=np.float64)
    weight[multi_rec] = 1.0 / present[kept_groups][group]
    weight[~keep] = 0.0
    n_multi_records = int(is_multi.sum())
    return Reads(keep=keep, weight=weight, multi_rec=multi_rec, group=group, n_unique=n - n_multi_records,
                 n_multi=int(kept_groups.sum()), dropped_too_many=int(too_many.sum()))


# ---------------------------------------------------------------- 3. fragment shift


def global_offsets(lengths, pad: int) -> np.ndarray:
    """Start of each chromosome in the global coordinate (chromosomes separated by ``pad``)."""
    return np.concatenate([[0], np.cumsum(np.asarray(lengths, dtype=np.int64) + pad)[:-1]])


def strand_cross_correlation(plus: np.ndarray, minus: np.ndarray, max_lag: int,
                             max_positions: int = 200_000) -> np.ndarray:
    """``cc[d] = sum_x n+(x) * n-(x + d)`` for d = 0..max_lag from sorted global 5' positions.

    At most ``max_positions`` distinct + positions are used (evenly spaced through the sorted
    list), which keeps the pair count bounded on deep data without biasing the lag.
    """
    cc = np.zeros(max_lag + 1)
    p_pos, p_n = _counts(plus)
    m_pos, m_n = _counts(minus)
    if len(p_pos) == 0 or len(m_pos) == 0:
        return cc
    if len(p_pos) > max_positions:
        pick = np.linspace(0, len(p_pos) - 1, max_positions).astype(np.int64)
        p_pos, p_n = p_pos[pick], p_n[pick]
    for rows, cols in _window_pairs(p_pos, m_pos, 0, max_lag):
        lag = m_pos[cols] - p_pos[rows]
        cc += np.bincount(lag, weights=p_n[rows] * m_n[cols], minlength=max_lag + 1)
    return cc


def _counts(sorted_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct positions, multiplicity) of a sorted array."""
    if len(sorted_positions) == 0:
        return sorted_positions, np.zeros(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, sorted_positions[1:] != sorted_positions[:-1]])
    return sorted_positions[first], np.diff(np.r_[first, len(sorted_positions)])


def _window_pairs(query: np.ndarray, points: np.ndarray, lo: int, hi: int, max_pairs: int = 4_000_000):
    """Yield (row, col) index arrays of every ``points[col] - query[row]`` in [lo, hi], in chunks.

    Both arrays are sorted. Each chunk holds about ``max_pairs`` pairs, so memory stays bounded
    however dense the data.
    """
    first = np.searchsorted(points, query + lo, side="left")
    last = np.searchsorted(points, query + hi, side="right")
    n = last - first
    ends = np.cumsum(n)
    start = 0
    while start < len(query):
        stop = int(np.searchsorted(ends, (ends[start - 1] if start else 0) + max_pairs, side="right"))
        stop = max(stop, start + 1)
        counts = n[start:stop]
        rows = np.repeat(np.arange(start, stop), counts)
        base = np.repeat(ends[start:stop] - counts - first[start:stop], counts)
        cols = np.arange(len(rows)) + (ends[start - 1] if start else 0) - base
        yield rows, cols
        start = stop


def learn_shift(aln: Alignments, reads: Reads, max_lag: int) -> tuple[int, str]:
    """(shift, how it was found). Paired: half the mean template length of proper pairs;
    single-end: half the lag maximising the + / - strand cross-correlation of unique reads.

    The "phantom" peak at the read length (a mappability artefact) is masked: lags within 10 bp
    of the median aligned length are not considered. A flat cross-correlation (peak less than
    5% above the median) gives 0 with a warning.
    """
    if aln.paired:
        if aln.template_length > 0:
            how = f"paired-end: half the mean template length ({aln.template_length:.1f} bp)"
            return int(round(aln.template_length / 2)), how
        return 0, "paired-end without proper pairs: 0"
    unique = reads.keep.copy()
    unique[reads.multi_rec] = False
    offsets = global_offsets(aln.lengths, max_lag + 1)
    g = offsets[aln.chrom[unique]] + aln.pos[unique]
    rev = aln.reverse[unique]
    # file order is nearly position order, so a stable (merge) sort is fast
    cc = strand_cross_correlation(np.sort(g[~rev], kind="stable"), np.sort(g[rev], kind="stable"), max_lag)
    smooth = np.convolve(cc, np.ones(5) / 5, mode="same")
    masked = smooth.copy()
    if aln.read_length:
        masked[max(aln.read_length - 10, 0):aln.read_length + 11] = -np.inf
    lag = int(np.argmax(masked))
    typical = np.median(smooth[smooth > 0]) if (smooth > 0).any() else 0.0
    if not np.isfinite(masked[lag]) or masked[lag] <= 1.05 * typical:
        log.warning("warning: no strand cross-correlation peak up to %d bp; shift 0 (set --shift)", max_lag)
        return 0, "learned: no cross-correlation peak, 0"
    how = f"learned: strand cross-correlation peak at lag {lag} bp (phantom peak at {aln.read_length} bp masked)"
    return lag // 2, how
