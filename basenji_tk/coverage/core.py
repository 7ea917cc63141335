"""BAM → coverage: read events, multi-mapping EM, GC-bias model, BigWig/HDF5 writing.

The steps of :func:`bam_cov`, each a function of its own:

1. :func:`read_alignments` decodes the BAM once (:mod:`basenji_tk.io.bgzf` inflates batches of
   blocks in threads, :mod:`basenji_tk.io.bamio` parses the records) and keeps per
   alignment record only what later steps need (5' end, strand, chromosome, a hash of the read
   name, aligned blocks with ``--full``): memory grows with the number of reads, never with the
   genome.
2. :func:`group_reads` tells unique from multi-mapping reads (NH tag, BWA's XA tag, or secondary
   alignments grouped by read name) and drops reads with more than ``max_maps`` locations.
3. :func:`learn_shift` finds the fragment shift (strand cross-correlation for single-end reads,
   half the mean template length for proper pairs).
4. :func:`multi_em` shares each multi-mapping read between its locations in proportion to the
   Gaussian-smoothed coverage there; a read's weights always sum to 1.
5. :func:`fit_gc` fits log2 coverage on local GC (a cubic polynomial); the writers divide the
   coverage by the fitted GC effect relative to its genome-wide mean.
6. :class:`TrackWriter` writes BigWig (:mod:`basenji_tk.io.bigwig`) or HDF5, one chromosome chunk
   at a time, to a temporary name that is renamed when everything is complete.

With ``--gc`` the GC codes of the genome are computed in a background thread from step 4 on,
and a child process draws the GC plot (matplotlib's import alone takes half a second); the
compiled loops live in :mod:`basenji_tk.coverage.kernels`.

Coordinates: 0-based. Between steps, positions on all chromosomes live in one "global"
coordinate, ``offset[chrom] + position``, with gaps between chromosomes wider than any smoothing
window, so the EM and cross-correlation code never needs to look at chromosome names.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from basenji_tk.coverage import checks as covchecks
from basenji_tk import files
from basenji_tk.coverage.checks import TRACK_EXTS, open_bam  # noqa: F401 - part of this module's interface
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

# SAM flags
PAIRED, PROPER, UNMAPPED, REVERSE, READ1, READ2 = 0x1, 0x2, 0x4, 0x10, 0x40, 0x80
SECONDARY, QC_FAIL, DUPLICATE, SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800

CHUNK = 4_000_000  # bases per output chunk: bounds the dense arrays, whatever the chromosome
DROP_REASONS = ("unmapped", "qc_fail", "duplicate", "supplementary", "low_mapq", "too_many_maps")


@dataclass
class Options:
    """Everything ``bam_cov.py`` can set; the defaults are the script's defaults."""

    shift: int | None = None  # None: learn it from the data
    full: bool = False  # count every aligned base instead of one event per read
    strand: bool = False  # + and - tracks
    remove_duplicates: bool = False
    min_mapq: int = 0
    max_maps: int = 10
    multi_em: int = 0  # EM rounds; 0: equal weights over each read's locations
    em_sigma: float = 32.0
    em_tol: float = 0.01
    gc: str | None = None  # FASTA for the GC model
    gc_sigma: float | None = None  # None: 0.35 x fragment length (2 x shift, or 200 bp)
    bin: int = 1
    max_lag: int = 500
    threads: int = 2  # threads inflating BAM blocks
    progress: bool = False
    force: bool = False  # replace a finished output
    gc_length_mismatch: bool = False  # accept FASTA chromosome lengths other than the BAM header's


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


@dataclass
class Summary:
    bam: str
    outputs: list
    records_seen: int = 0
    reads_used: int = 0
    unique: int = 0
    multi: int = 0
    multi_locations: int = 0
    dropped: dict = field(default_factory=dict)
    multi_scheme: str = ""
    paired: bool = False
    shift: int | None = 0  # None: not used (--full without --gc)
    shift_source: str = ""
    strand_asymmetry: float | None = None  # see covchecks.strand_asymmetry; single-end, learned shift only
    em_rounds: int = 0
    em_final_change: float | None = None
    em_history: list = field(default_factory=list)
    gc: dict | None = None
    total_coverage: float = 0.0
    options: dict = field(default_factory=dict)


# ---------------------------------------------------------------- inputs and checks


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


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each value among them); a stable sort, fast on
    nearly sorted input such as positions in file order."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


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


# ---------------------------------------------------------------- 4. multi-mapping EM


def multi_em(aln: Alignments, reads: Reads, event: np.ndarray, rounds: int, sigma: float, tol: float,
             progress: bool = False) -> tuple[np.ndarray, list[float]]:
    """Re-share multi-mapping reads by smoothed coverage; returns (weights per multi record, changes).

    Each round: coverage = unique events + current multi weights, smoothed with a Gaussian of
    standard deviation ``sigma`` (truncated at 4 sigma); each read's weight at a location becomes
    the smoothed coverage there over the sum at all its locations. The unique part is exact and
    computed once. The multi-read part is smoothed each round on a grid of sigma/4-bp cells
    (mass and coverage interpolated linearly between the two nearest cells) from which read-free
    stretches are squeezed, so a round is one short Gaussian filter and memory grows with the
    number of multi-read locations, not the genome. Stops when the mean over reads of
    sum |change in weight| is below ``tol``.
    """
    from scipy.ndimage import gaussian_filter1d
    from tqdm import tqdm

    from basenji_tk.coverage.kernels import em_mass, em_reweigh, gaussian_window_sums

    w = reads.weight[reads.multi_rec].copy()
    if rounds <= 0 or reads.n_multi == 0:
        return w, []
    offsets = global_offsets(aln.lengths, int(math.ceil(8 * sigma)) + 1)
    g_event = offsets[aln.chrom] + event
    multi_g = g_event[reads.multi_rec]
    positions, pidx = _sorted_unique(multi_g)
    unique_mask = reads.keep.copy()
    unique_mask[reads.multi_rec] = False
    u_pos, u_n = _counts(np.sort(g_event[unique_mask], kind="stable"))
    base = gaussian_window_sums(positions, u_pos, u_n.astype(np.float64), sigma)
    # Each round smooths the multi-read mass on a grid of sigma/4-bp cells, each location's mass
    # shared linearly between its two nearest cells and read back the same way; read-free
    # stretches longer than the kernel are squeezed out, so memory follows the multi-reads.
    cell = max(1, int(sigma // 4))
    width = int(math.ceil(4 * sigma / cell))
    x = positions / cell
    left = np.floor(x).astype(np.int64)
    frac = x - left
    cells, inverse = _sorted_unique(np.concatenate([left, left + 1]))
    step = np.minimum(np.diff(cells), width + 1)
    squeezed = np.concatenate([[0], np.cumsum(step)])[inverse]
    g_left, g_right = squeezed[: len(left)][pidx], squeezed[len(left):][pidx]
    f_right = frac[pidx]
    grid_len = int(squeezed.max()) + 1 if len(squeezed) else 1
    kernel_sum = float(np.exp(-0.5 * ((np.arange(-width, width + 1) * cell) / sigma) ** 2).sum())
    base_at = base[pidx]
    group, n_groups = reads.group, reads.n_multi
    changes = []
    for _ in tqdm(range(rounds), desc="EM", unit="round", disable=not progress, leave=False):
        mass = em_mass(w, g_left, g_right, f_right, grid_len)
        smooth = gaussian_filter1d(mass, sigma / cell, truncate=4.0, mode="constant")
        w, change = em_reweigh(w, smooth, g_left, g_right, f_right, base_at, kernel_sum, group, n_groups)
        changes.append(change)
        if change < tol:
            break
    return w, changes


# ---------------------------------------------------------------- 5. GC model


class GenomeGC:
    """Gaussian-weighted GC fraction around every base, computed a chunk at a time.

    ``gc(x) = sum_k K(k) [G or C at x+k] / sum_k K(k) [A,C,G,T at x+k]`` with a Gaussian ``K`` of
    standard deviation ``sigma`` truncated at 4 sigma (N bases count in neither sum), stored as
    a code ``round(250 gc)``. Positions whose window is less than half unambiguous bases get the
    code 255 (undefined).
    """

    def __init__(self, fasta: str, contigs: list[str], used: list[str], sigma: float):
        import pysam

        if not os.path.exists(fasta):
            raise InputError(f"{fasta}: no such FASTA file (--gc)")
        try:
            self.fasta = pysam.FastaFile(fasta)
        except (OSError, ValueError) as err:
            raise InputError(f"{fasta}: cannot read the FASTA (--gc): {err}") from None
        from basenji_tk.io.genome import match_chroms

        self.names = match_chroms(self.fasta.references, used, fasta, needed=used, genome_label="BAM")
        self.sigma = sigma
        # bases are counted in cells of sigma/16 bp and the Gaussian applied to the cells: a
        # position takes its cell's GC, at most sigma/16 off centre
        self.cell = max(1, int(sigma // 16))
        self.radius = int(math.ceil(4 * sigma)) + self.cell
        half = int(math.ceil(4 * sigma / self.cell))
        self.kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * self.cell / sigma) ** 2).astype(np.float32)
        self.cache, self.cached_bases = {}, 0
        self.lock = threading.Lock()  # one FASTA handle, shared with the background thread
        self.pool, self.futures = None, {}

    def precompute(self, spans: list[tuple[str, int, int]]) -> None:
        """Start computing the codes of ``spans`` (contig, start, end) in a background thread.

        Only when they all fit in the cache. The work is NumPy, FFTs and FASTA reading, which
        mostly run without the GIL, so it overlaps the EM and the fit's own passes.
        """
        if sum(end - start for _, start, end in spans) + self.cached_bases > CACHE_BASES:
            return
        self.pool = ThreadPoolExecutor(1)
        self.futures = {span: self.pool.submit(self._compute, *span) for span in spans}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        self.fasta.close()

    def chunk(self, contig: str, start: int, end: int) -> np.ndarray:
        """GC codes (uint8: round(250 x GC fraction), 255 where undefined) for [start, end).

        Codes are kept after the first call when the genome is small (up to ``CACHE_BASES``), so
        the fit and the writing pass compute each chunk once; larger genomes recompute.
        """
        key = (contig, start, end)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        future = self.futures.pop(key, None)
        out = future.result() if future is not None else self._compute(contig, start, end)
        if self.cached_bases + len(out) <= CACHE_BASES:
            self.cache[key] = out
            self.cached_bases += len(out)
        return out

    def _compute(self, contig: str, start: int, end: int) -> np.ndarray:
        from basenji_tk.coverage.kernels import base_cell_counts, gc_codes

        name = self.names[contig]
        length = self.fasta.get_reference_length(name)
        cell = self.cell
        lo = max((start - self.radius) // cell * cell, 0)
        hi = min(end + self.radius, length)
        out = np.full(end - start, GC_UNDEFINED, dtype=np.uint8)
        if lo < hi:
            with self.lock:
                bases = self.fasta.fetch(name, lo, hi)
            gc, acgt = base_cell_counts(np.frombuffer(bases.encode(), dtype=np.uint8), cell)
            num, den = _convolve_same((gc, acgt), self.kernel)
            a, b = start - lo, min(end, hi) - lo
            gc_codes(num, den, 0.5 * cell * self.kernel.sum(), GC_LEVELS, GC_UNDEFINED, cell, a, out[: b - a])
        return out


def _convolve_same(signals, kernel: np.ndarray) -> list:
    """Each signal convolved with the odd-length ``kernel`` (zeros outside), same length.

    Overlap-add: the signal is cut into blocks that are transformed together with scipy.fft
    (short transforms stay in cache; scipy.signal.oaconvolve does the same but its module alone
    takes over half a second to import).
    """
    from scipy import fft

    k = len(kernel)
    size = fft.next_fast_len(max(4096, 8 * k), real=True)
    step = size - k + 1
    kf = fft.rfft(kernel, size)
    out = []
    for signal in signals:
        n = len(signal)
        blocks = np.zeros((-(-n // step), step), dtype=signal.dtype)
        blocks.ravel()[:n] = signal
        conv = fft.irfft(fft.rfft(blocks, size, axis=1) * kf, size, axis=1)
        full = np.zeros((len(blocks) + 1) * step, dtype=conv.dtype)
        full[:-step] = conv[:, :step].ravel()
        tails = np.zeros_like(blocks, dtype=conv.dtype)
        tails[:, :k - 1] = conv[:, step:]
        full[step:] += tails.ravel()
        out.append(full[k // 2:k // 2 + n])
    return out


GC_BINS = 101  # GC fraction in steps of 1% for the fit
GC_LEVELS, GC_UNDEFINED = 250, 255  # GC codes: round(250 x fraction); 255 where undefined
CACHE_BASES = 300_000_000  # GC codes kept in memory (1 byte a base) up to this genome size


@dataclass
class GCModel:
    coefficients: list  # log2 coverage = polyval(coefficients, gc), highest power first
    gc_range: tuple  # fitted range; GC outside is clipped to it
    mean_effect: float  # genome-wide mean of 2**poly over the fitted positions
    table: list  # per GC bin: gc, positions, coverage, log2 mean, fitted, correction
    positions: int
    excluded_gaps: int

    def factors(self) -> np.ndarray:
        """Factor to divide coverage by, 2**poly(gc) / mean, for each of the 256 GC codes (1 where
        GC is undefined)."""
        table = np.ones(256)
        x = np.clip(np.arange(GC_LEVELS + 1) / GC_LEVELS, *self.gc_range)
        table[: GC_LEVELS + 1] = np.exp2(np.polyval(self.coefficients, x)) / self.mean_effect
        return table


def fit_gc(gc_source: GenomeGC, contigs: list[str], lengths: list[int], events: dict, progress: bool = False,
           degree: int = 3, chunk: int = CHUNK, on_chunk=None) -> GCModel:
    """Fit log2 mean coverage per 1% GC bin on GC, a cubic weighted by the positions per bin.

    Every base whose GC is defined (window at least half unambiguous, so N is avoided) and that
    does not lie in a long read-free gap is counted in its GC bin, with its coverage. A gap longer
    than ``max(2 kb, 20 x the mean distance between events)`` is taken as unmappable rather than
    GC-depleted and left out. The polynomial is fitted to log2(coverage sum / positions) of bins
    with at least 0.01% of the positions, weighted by sqrt(positions) per bin. ``on_chunk(contig,
    start, end, codes)`` is called with the GC codes of every chunk, in order.
    """
    from tqdm import tqdm

    from basenji_tk.coverage.kernels import gc_bin_sums

    n_pos = np.zeros(GC_BINS, dtype=np.int64)
    cov_sum = np.zeros(GC_BINS)
    total_events = sum(float(w.sum()) for _, w in events.values())
    genome = sum(lengths[contigs.index(c)] for c in events)
    max_gap = max(2000, int(20 * genome / max(total_events, 1)))
    excluded = 0
    for contig in tqdm(list(events), desc="GC model", unit="chrom", disable=not progress, leave=False):
        length = lengths[contigs.index(contig)]
        pos, w = events[contig]
        for start in range(0, length, chunk):
            end = min(start + chunk, length)
            codes = gc_source.chunk(contig, start, end)
            if on_chunk is not None:
                on_chunk(contig, start, end, codes)
            lo, hi = np.searchsorted(pos, start - max_gap, "left"), np.searchsorted(pos, end + max_gap, "right")
            excluded += gc_bin_sums(codes, start, pos, w, lo, hi, max_gap, GC_LEVELS, GC_UNDEFINED, n_pos, cov_sum)
    x = np.arange(GC_BINS) / (GC_BINS - 1)
    use = n_pos >= max(1e-4 * n_pos.sum(), 1)
    if use.sum() <= degree:
        raise InputError(f"GC model: only {int(use.sum())} GC bins hold enough positions to fit a degree-{degree} "
                         f"polynomial; too few reads or too little sequence for --gc")
    y = np.log2((cov_sum + 0.5) / np.maximum(n_pos, 1))
    coef = np.polyfit(x[use], y[use], degree, w=np.sqrt(n_pos[use]))
    lo, hi = float(x[use].min()), float(x[use].max())
    effect = np.exp2(np.polyval(coef, np.clip(x, lo, hi)))
    mean_effect = float((effect * n_pos).sum() / n_pos.sum())
    table = [dict(gc=float(x[i]), positions=int(n_pos[i]), coverage=float(cov_sum[i]),
                  log2_mean=float(y[i]) if n_pos[i] else None, fitted=float(np.log2(effect[i])),
                  correction=float(effect[i] / mean_effect), used=bool(use[i])) for i in range(GC_BINS)]
    return GCModel(coefficients=[float(c) for c in coef], gc_range=(lo, hi), mean_effect=mean_effect, table=table,
                   positions=int(n_pos.sum()), excluded_gaps=excluded)


def write_gc_report(model: GCModel, stem: str, plot: ChildPlot) -> list[tuple[str, str]]:
    """``stem.gc_model.tsv`` and ``stem.gc_model.png`` (drawn by ``plot``; wait for it before renaming)
    to temporary names: [(temp, final)]."""
    tsv, png = stem + ".gc_model.tsv", stem + ".gc_model.png"
    tmp_tsv, tmp_png = _temp_name(tsv), _temp_name(png)
    with open(tmp_tsv, "w") as f:
        f.write("gc\tpositions\tcoverage\tlog2_mean_coverage\tfitted_log2\tcorrection\tused_in_fit\n")
        for row in model.table:
            log2_mean = "nan" if row["log2_mean"] is None else f"{row['log2_mean']:.5f}"
            f.write(f"{row['gc']:.2f}\t{row['positions']}\t{row['coverage']:.3f}\t{log2_mean}\t"
                    f"{row['fitted']:.5f}\t{row['correction']:.5f}\t{int(row['used'])}\n")
    plot.draw(tmp_tsv, tmp_png, model.coefficients)
    return [(tmp_tsv, tsv), (tmp_png, png)]


class ChildPlot:
    """The GC model plot, drawn by a child Python while this run goes on.

    Importing matplotlib and drawing take about 0.7 s, a sixth of a GC-corrected run on the
    benchmark. The child is started early, imports matplotlib on another core while the EM runs
    (a thread would hold the GIL for the import), then waits for :meth:`draw`. ``wait`` raises if
    the child failed; ``kill`` stops it.
    """

    _CODE = ("import json, sys\n"
             "from basenji_tk.plots import gc_model_table\n"
             "job = sys.stdin.readline()\n"
             "if job:\n"
             "    gc_model_table(*json.loads(job))\n")

    def __init__(self):
        package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
        self.png = None
        self.proc = subprocess.Popen([sys.executable, "-c", self._CODE], env=dict(os.environ, PYTHONPATH=path),
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)

    def draw(self, tsv: str, png: str, coefficients: list) -> None:
        self.png = png
        try:
            self.proc.stdin.write(json.dumps([tsv, png, json.dumps(coefficients)]) + "\n")
            self.proc.stdin.close()
        except BrokenPipeError:  # the child has died; wait() reports why
            pass

    def wait(self) -> None:
        err = self.proc.stderr.read()
        self.proc.stderr.close()
        if self.proc.wait():
            lines = err.strip().splitlines() or ["no message"]
            raise RuntimeError(f"drawing {self.png} failed: {lines[-1]}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stderr):
            stream.close()


# ---------------------------------------------------------------- 6. writing


def _temp_name(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def _chunk_coverage(pos: np.ndarray, w: np.ndarray, start: int, end: int) -> np.ndarray:
    """Dense per-base sum of weights of sorted event positions in [start, end)."""
    a, b = np.searchsorted(pos, [start, end])
    return np.bincount(pos[a:b] - start, weights=w[a:b], minlength=end - start)


class _BlockCoverage:
    """Per-base depth from weighted [start, end) blocks, one chunk after the other (--full)."""

    def __init__(self, starts, ends, w):
        self.starts_order = np.argsort(starts, kind="stable")
        self.starts, self.ws = starts[self.starts_order], w[self.starts_order]
        order = np.argsort(ends, kind="stable")
        self.ends, self.we = ends[order], w[order]
        self.carry = 0.0

    def chunk(self, start: int, end: int) -> np.ndarray:
        diff = _chunk_coverage(self.starts, self.ws, start, end) - _chunk_coverage(self.ends, self.we, start, end)
        depth = np.cumsum(diff) + self.carry
        self.carry = depth[-1] if len(depth) else self.carry
        depth[np.abs(depth) < 1e-9] = 0.0
        return depth


def _bin_means(values: np.ndarray, size: int) -> np.ndarray:
    """Mean per base of each ``size``-bp bin of ``values``; the last bin may be shorter."""
    if size == 1:
        return values
    n = -(-len(values) // size)
    padded = np.zeros(n * size)
    padded[: len(values)] = values
    counts = np.full(n, size, dtype=np.float64)
    counts[-1] = len(values) - (n - 1) * size
    return padded.reshape(n, size).sum(axis=1) / counts


def _h5_name(contig: str) -> str:
    """HDF5 dataset name of a contig: '/' (a group separator) and '%' written as %2F and %25."""
    name = contig.replace("%", "%25").replace("/", "%2F")
    return "%2E" if name == "." else name


class TrackWriter:
    """One BigWig or HDF5 file, written chunk by chunk to a temporary name.

    :meth:`add` takes per-base values; what a bin of ``bin_size`` bp holds:

    - BigWig: the bin's mean per base, on every base of the bin (one entry per run of equal bins),
      so a per-base sum over any whole bins gives the events (or aligned bases) in them;
    - HDF5: one float32 per bin, the sum of its events, or with ``full`` its mean depth.
    """

    def __init__(self, path: str, fmt: str, contigs: list[str], lengths: list[int], bin_size: int,
                 full: bool = False):
        self.path, self.fmt, self.bin, self.full = path, fmt, bin_size, full
        self.tmp = _temp_name(path)
        self.lengths = dict(zip(contigs, lengths))
        if fmt == "bigwig":
            from basenji_tk.io.bigwig import BigWigWriter

            self.tid = {c: i for i, c in enumerate(contigs)}
            self.bw = BigWigWriter(self.tmp, list(zip(contigs, lengths)), first_reduction=256 * bin_size)
        else:
            import h5py

            self.h5 = h5py.File(self.tmp, "w")
            self.h5.attrs["bin_size"] = bin_size
            self.h5.attrs["bin_value"] = "mean depth per base" if full else "sum of events"
            self.datasets = {}

    def add(self, contig: str, start: int, values: np.ndarray) -> None:
        """Per-base ``values`` (float64) from ``start`` (a multiple of the bin size)."""
        if self.fmt == "bigwig":
            from basenji_tk.io.bigwig import nonzero_runs

            first, end, value = nonzero_runs(_bin_means(values, self.bin))
            if len(first):
                ends = np.minimum(start + end * self.bin, self.lengths[contig])
                self.bw.add(self.tid[contig], start + first * self.bin, ends, value)
        else:
            binned = _bin_means(values, self.bin)
            if not self.full and self.bin > 1:  # back to sums: bin means times the bin's bases
                binned *= np.minimum(self.bin, len(values) - self.bin * np.arange(len(binned)))
            ds = self.datasets.get(contig)
            if ds is None:
                n = -(-int(self.lengths[contig]) // self.bin)
                ds = self.h5.create_dataset(_h5_name(contig), shape=(n,), dtype="float32", compression="gzip",
                                            compression_opts=4, chunks=(min(n, 1 << 16),), fillvalue=0.0)
                ds.attrs["chrom"] = contig
                self.datasets[contig] = ds
            i = start // self.bin
            ds[i:i + len(binned)] = binned.astype(np.float32)

    def close(self) -> None:
        if self.fmt == "bigwig":
            self.bw.close()
        else:
            self.h5.close()

    def discard(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away anyway
            pass
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


# ---------------------------------------------------------------- the whole run


def _check_options(opts: Options) -> None:
    if opts.bin < 1:
        raise InputError(f"--bin must be at least 1 (got {opts.bin})")
    if opts.max_maps < 1:
        raise InputError(f"--max_maps must be at least 1 (got {opts.max_maps})")
    if opts.em_sigma <= 0 or (opts.gc_sigma is not None and opts.gc_sigma <= 0):
        raise InputError("--em_sigma and --gc_sigma must be positive")
    if opts.max_lag < 1:
        raise InputError(f"--max_lag must be at least 1 (got {opts.max_lag})")
    if opts.gc and not os.path.isfile(opts.gc):
        raise InputError(f"{opts.gc}: no such FASTA file (--gc)")


def bam_cov(bam_path: str, out: str, opts: Options) -> Summary:
    """BAM → coverage track(s), ``stem.json`` summary and (with ``--gc``) the GC model report.

    Cheap checks first (options, a finished output without ``force``, the BAM header, FASTA
    lengths), then the output is claimed (:func:`basenji_tk.files.claim`: writable, locked against
    a second run) around all the work.
    """
    from basenji_tk.io.bigwig import MAX_CHROMS

    fmt, tracks, stem, written = covchecks.output_plan(out, opts.strand, bool(opts.gc))
    _check_options(opts)
    folder = os.path.dirname(os.path.abspath(out))
    files.refuse_overwrite(folder, [os.path.basename(p) for p in written], opts.force)
    bam = open_bam(bam_path)
    try:
        if fmt == "bigwig" and bam.nreferences > MAX_CHROMS:
            raise InputError(f"{bam_path}: {bam.nreferences:,} reference sequences; BigWig output handles at most "
                             f"{MAX_CHROMS:,}: write HDF5 (.h5) instead")
        mismatches = []
        if opts.gc:
            mismatches = covchecks.fasta_length_mismatches(opts.gc, list(bam.references), list(bam.lengths))
            if mismatches and not opts.gc_length_mismatch:
                raise covchecks.length_mismatch_error(opts.gc, bam_path, mismatches)
        with files.claim(out, folder=False):
            return _bam_cov(bam, bam_path, opts, fmt, tracks, stem, mismatches)
    finally:
        bam.close()


def _bam_cov(bam, bam_path: str, opts: Options, fmt: str, tracks: list, stem: str, mismatches: list) -> Summary:
    summary = Summary(bam=bam_path, outputs=tracks, options=asdict(opts))
    aln = read_alignments(bam, opts, bam_path)
    reads = group_reads(aln, opts.max_maps)
    counts = dict(aln.counts)
    counts["too_many_maps"] = reads.dropped_too_many
    summary.records_seen = counts.pop("records_seen")
    summary.dropped = counts
    summary.unique, summary.multi = reads.n_unique, reads.n_multi
    summary.multi_locations = int(len(reads.multi_rec))
    summary.reads_used = reads.n_unique + reads.n_multi
    summary.multi_scheme, summary.paired = aln.scheme, aln.paired
    if summary.reads_used == 0:
        why = ", ".join(f"{k} {v:,}" for k, v in counts.items() if v) or "the file holds no alignments"
        raise InputError(f"{bam_path}: no usable reads ({summary.records_seen:,} records seen; dropped: {why})")
    log.info("%s: %s records, %s reads used (%s unique, %s multi-mapping at %s locations; %s)",
             bam_path, f"{summary.records_seen:,}", f"{summary.reads_used:,}", f"{reads.n_unique:,}",
             f"{reads.n_multi:,}", f"{summary.multi_locations:,}", aln.scheme)

    if opts.full and not opts.gc:
        summary.shift, summary.shift_source = None, "not used: --full counts every aligned base"
    elif opts.shift is None:
        summary.shift, summary.shift_source = learn_shift(aln, reads, opts.max_lag)
        if not aln.paired:
            unique = reads.keep.copy()
            unique[reads.multi_rec] = False
            g = global_offsets(aln.lengths, covchecks.ASYM_WINDOW)[aln.chrom[unique]] + aln.pos[unique]
            summary.strand_asymmetry, windows = covchecks.strand_asymmetry(g, aln.reverse[unique])
            if summary.shift > 0:
                covchecks.warn_if_stranded(summary.strand_asymmetry, windows, summary.shift)
    else:
        summary.shift, summary.shift_source = int(opts.shift), "given (--shift)"
    if opts.full and opts.gc:
        summary.shift_source += "; used only for the GC model (--full counts every aligned base)"
    if summary.shift is None:
        log.info("shift: %s", summary.shift_source)
    else:
        log.info("shift %d bp (%s)", summary.shift, summary.shift_source)
    shift = summary.shift or 0
    lengths = np.asarray(aln.lengths, dtype=np.int64)
    event = np.where(aln.reverse, aln.pos - shift, aln.pos + shift)
    event = np.clip(event, 0, lengths[aln.chrom] - 1)

    chunk = max(CHUNK // opts.bin, 1) * opts.bin  # the writers' chunks; the GC fit uses the same
    gc_source = plot = None
    if opts.gc:
        fragment = 2 * shift if shift > 0 else 200
        gc_sigma = opts.gc_sigma or round(0.35 * fragment, 1)
        used = [aln.contigs[t] for t in np.unique(aln.chrom[reads.keep])]
        gc_source = GenomeGC(opts.gc, aln.contigs, used, gc_sigma)
        if mismatches:
            past = {}
            for contig, _, fa_len in mismatches:
                tid = aln.contigs.index(contig)
                past[contig] = float(reads.weight[(aln.chrom == tid) & (event >= fa_len)].sum())
            covchecks.warn_length_mismatch(opts.gc, mismatches, set(used), past)
        gc_source.precompute([(c, a, min(a + chunk, aln.lengths[aln.contigs.index(c)]))
                              for c in used for a in range(0, aln.lengths[aln.contigs.index(c)], chunk)])
        plot = ChildPlot()
    try:
        return _weigh_and_write(aln, reads, event, opts, summary, tracks, fmt, stem, chunk, gc_source, plot)
    except BaseException:
        if plot is not None:
            plot.kill()
        raise
    finally:
        if gc_source is not None:
            gc_source.close()


class _CodeTotals:
    """Per track, the coverage summed per GC code (256), accumulated chunk by chunk during the GC fit.

    With these, the GC-corrected total of a track is known before it is written, so the correction
    can be rescaled to keep the track's total (reads, or aligned bases with ``--full``).
    """

    def __init__(self, per_track: list, full: bool):
        self.per_track, self.full = per_track, full
        self.totals = [np.zeros(256) for _ in per_track]
        self.blocks = [{} for _ in per_track]

    def add(self, contig: str, start: int, end: int, codes: np.ndarray) -> None:
        for k, events in enumerate(self.per_track):
            data = events.get(contig)
            if data is None:
                continue
            if self.full:
                if start == 0:
                    self.blocks[k][contig] = _BlockCoverage(*data)
                cov = self.blocks[k][contig].chunk(start, end)
                self.totals[k] += np.bincount(codes, weights=cov, minlength=256)
            else:
                pos, w = data
                a, b = np.searchsorted(pos, [start, end])
                self.totals[k] += np.bincount(codes[pos[a:b] - start], weights=w[a:b], minlength=256)

    def rescale(self, factors: np.ndarray) -> list[float]:
        """Per track, the factor that brings its corrected total back to its raw total."""
        out = []
        for totals in self.totals:
            corrected = float((totals / factors).sum())
            out.append(float(totals.sum()) / corrected if corrected > 0 else 1.0)
        return out


def _weigh_and_write(aln, reads, event, opts, summary, tracks, fmt, stem, chunk, gc_source, plot) -> Summary:
    """EM (optional), GC fit (optional) and writing of every output, renamed into place at the end."""
    weight = reads.weight.copy()
    if opts.multi_em > 0 and reads.n_multi:
        w, changes = multi_em(aln, reads, event, opts.multi_em, opts.em_sigma, opts.em_tol, opts.progress)
        weight[reads.multi_rec] = w
        summary.em_rounds, summary.em_history = len(changes), [round(c, 6) for c in changes]
        summary.em_final_change = changes[-1] if changes else None
        log.info("EM: %d rounds, final mean change per read %.4g", len(changes), changes[-1] if changes else 0.0)

    written, writers = [], []
    try:
        per_track = _events_by_track(aln, event, weight, opts)
        gc_model = rescale = None
        if gc_source is not None:
            # the fit uses the events of both strands: the track's own when it is one event track
            one_track = not (opts.full or opts.strand)
            both = per_track[0] if one_track else _events_by_track(aln, event, weight, Options())[0]
            code_totals = _CodeTotals(per_track, opts.full)
            gc_model = fit_gc(gc_source, aln.contigs, aln.lengths, both, opts.progress, chunk=chunk,
                              on_chunk=code_totals.add)
            rescale = code_totals.rescale(gc_model.factors())
            log.info("GC model: log2 coverage = %s (GC %.2f-%.2f, %s positions); corrected coverage rescaled by %s "
                     "to keep the total", " ".join(f"{c:+.3f}" for c in gc_model.coefficients), *gc_model.gc_range,
                     f"{gc_model.positions:,}", ", ".join(f"{r:.4f}" for r in rescale))
            written += write_gc_report(gc_model, stem, plot)
        raw_total = corrected_total = 0.0
        for k, (path, events) in enumerate(zip(tracks, per_track)):
            writer = TrackWriter(path, fmt, aln.contigs, aln.lengths, opts.bin, opts.full)
            writers.append(writer)
            factors = gc_model.factors() / rescale[k] if gc_model is not None else None
            raw, corrected = _write_track(writer, events, aln, opts, chunk, gc_source, factors)
            raw_total += raw
            corrected_total += corrected
            writer.close()
            written.append((writer.tmp, path))
        summary.total_coverage = corrected_total
        if gc_model is not None:
            summary.gc = dict(coefficients=gc_model.coefficients, log_base=2, sigma=gc_source.sigma,
                              gc_range=list(gc_model.gc_range), mean_effect=gc_model.mean_effect,
                              positions=gc_model.positions, excluded_read_free_gaps=gc_model.excluded_gaps,
                              rescaled_by=rescale, total_before=raw_total, total_after=corrected_total)
        summary_path = stem + ".json"
        tmp_json = _temp_name(summary_path)
        with open(tmp_json, "w") as f:
            json.dump(asdict(summary), f, indent=1)
        written.append((tmp_json, summary_path))
        if plot is not None:
            plot.wait()
    except BaseException:
        for tmp, _ in written:
            if os.path.exists(tmp):
                os.remove(tmp)
        for writer in writers:
            writer.discard()
        raise
    for tmp, final in written:
        os.replace(tmp, final)
    return summary


def _events_by_track(aln: Alignments, event: np.ndarray, weight: np.ndarray, opts: Options) -> list[dict]:
    """Per output track: {contig: (sorted positions, weights)} of events, or of block starts/ends
    (as ``(starts, ends, weights)``) with ``--full``."""
    used = weight > 0
    masks = [used & ~aln.reverse, used & aln.reverse] if opts.strand else [used]
    out = []
    for mask in masks:
        per = {}
        if opts.full:
            bmask = mask[aln.block_rec]
            rec = aln.block_rec[bmask]
            for tid in np.unique(aln.chrom[rec]):
                sel = aln.chrom[rec] == tid
                per[aln.contigs[tid]] = (aln.block_start[bmask][sel], aln.block_end[bmask][sel], weight[rec[sel]])
        else:
            # file order is nearly position order: a stable (merge) sort of the global position is fast
            offsets = global_offsets(aln.lengths, 0)
            g = offsets[aln.chrom[mask]] + event[mask]
            order = np.argsort(g, kind="stable")
            g, w = g[order], weight[mask][order]
            bounds = np.searchsorted(g, np.append(offsets, offsets[-1] + aln.lengths[-1]))
            for tid in range(len(aln.contigs)):
                a, b = bounds[tid], bounds[tid + 1]
                if b > a:
                    per[aln.contigs[tid]] = (g[a:b] - offsets[tid], w[a:b])
        out.append(per)
    return out


def _write_track(writer: TrackWriter, events: dict, aln: Alignments, opts: Options, chunk: int, gc_source,
                 factors):
    """Write every chromosome chunk of one track, per-base coverage divided by ``factors`` (per GC
    code; None: no GC correction); returns (total before, after GC correction)."""
    from tqdm import tqdm

    from basenji_tk.coverage.kernels import divide_by_code

    raw_total = corrected_total = 0.0
    for contig in tqdm([c for c in aln.contigs if c in events], desc=os.path.basename(writer.path), unit="chrom",
                       disable=not opts.progress, leave=False):
        length = aln.lengths[aln.contigs.index(contig)]
        data = events[contig]
        blocks = _BlockCoverage(*data) if opts.full else None
        for start in range(0, length, chunk):
            end = min(start + chunk, length)
            cov = blocks.chunk(start, end) if blocks else _chunk_coverage(data[0], data[1], start, end)
            raw_total += float(cov.sum())
            if factors is not None:
                divide_by_code(cov, gc_source.chunk(contig, start, end), factors)
            corrected_total += float(cov.sum())
            writer.add(contig, start, cov)
    return raw_total, corrected_total
