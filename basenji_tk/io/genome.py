"""Genome access and interval arithmetic.

FASTA through pysam (plain or bgzip, indexed on first use), chromosome sizes,
assembly gaps found as runs of N, BED reading, and contigs: the pieces of each
chromosome between gaps and blacklisted regions. Coordinates are 0-based,
half-open, as in BED.
"""

import gzip
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

_N_FLAGS = bytes(b"A"[0] if chr(i) in "ACGTacgt" else b"N"[0] for i in range(256))


# ----------------------------------------------------------------------------- names
def normalize_chrom(name: str) -> str:
    """Name used to compare chromosomes across files: ``chr20`` and ``20`` are the same."""
    return name[3:] if name.lower().startswith("chr") else name


def match_chroms(file_chroms, genome_chroms, path, needed=None, genome_label="FASTA") -> dict:
    """Map genome chromosome names to the names a track file uses.

    Exact names win; otherwise names equal after :func:`normalize_chrom` are
    paired and a warning says so. With ``needed`` (genome names the dataset uses),
    a needed chromosome the file lacks is an error listing the absent names.
    ``genome_label`` names where the genome names come from in messages (the
    FASTA for tracks; the BAM when bam_cov matches a FASTA to it).
    Returns ``{genome_name: file_name}``.
    """
    file_chroms = list(file_chroms)
    by_norm = {}
    for name in file_chroms:
        by_norm.setdefault(normalize_chrom(name), name)
    exact = set(file_chroms)
    mapping, renamed = {}, []
    for g in genome_chroms:
        if g in exact:
            mapping[g] = g
        elif normalize_chrom(g) in by_norm:
            mapping[g] = by_norm[normalize_chrom(g)]
            renamed.append(f"{mapping[g]}->{g}")
    if renamed:
        shown = ", ".join(renamed[:5]) + (" ..." if len(renamed) > 5 else "")
        log.warning(f"warning: {path}: chromosome names normalised to the {genome_label}'s: {shown}")
    absent = [g for g in (needed if needed is not None else []) if g not in mapping]
    if needed is not None and absent:
        have = ", ".join(sorted(file_chroms)[:8]) + (" ..." if len(file_chroms) > 8 else "")
        raise InputError(
            f"{path}: no data for {genome_label} chromosome(s) {', '.join(absent[:10])}"
            f"{' ...' if len(absent) > 10 else ''}; the file has: {have or 'none'}"
        )
    if not mapping and file_chroms:
        raise InputError(
            f"{path}: none of its chromosomes ({', '.join(sorted(file_chroms)[:8])}) "
            f"is in the FASTA ({', '.join(list(genome_chroms)[:8])})"
        )
    return mapping


# ----------------------------------------------------------------------------- intervals
class IntervalSet:
    """Disjoint, sorted intervals on one chromosome, with fast overlap queries."""

    def __init__(self, starts, ends):
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        self.starts, self.ends = merge_intervals(starts, ends)
        self._cum = np.concatenate([[0], np.cumsum(self.ends - self.starts)])

    def __len__(self):
        return len(self.starts)

    def covered(self, start: int, end: int) -> int:
        """Number of bases of ``[start, end)`` inside the set."""
        # intervals i..j-1 may overlap: ends > start and starts < end
        i = np.searchsorted(self.ends, start, side="right")
        j = np.searchsorted(self.starts, end, side="left")
        if j <= i:
            return 0
        total = self._cum[j] - self._cum[i]
        total -= max(0, start - self.starts[i])
        total -= max(0, self.ends[j - 1] - end)
        return int(total)

    def mask(self, start: int, end: int) -> np.ndarray:
        """Boolean ``(end - start,)``: True where a base is inside the set."""
        out = np.zeros(end - start, dtype=bool)
        i = np.searchsorted(self.ends, start, side="right")
        j = np.searchsorted(self.starts, end, side="left")
        for s, e in zip(self.starts[i:j], self.ends[i:j]):
            out[max(s, start) - start:min(e, end) - start] = True
        return out


def merge_intervals(starts, ends):
    """Sort and merge overlapping or touching intervals; returns ``(starts, ends)``."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if len(starts) == 0:
        return starts, ends
    order = np.lexsort((ends, starts))
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    new = np.ones(len(starts), dtype=bool)
    new[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(starts)) - 1
    return starts[first], reach[last]


def complement(starts, ends, size: int):
    """The parts of ``[0, size)`` not covered by the (merged) intervals."""
    starts, ends = merge_intervals(starts, ends)
    lo = np.concatenate([[0], ends])
    hi = np.concatenate([starts, [size]])
    keep = hi > lo
    return lo[keep], hi[keep]


# ----------------------------------------------------------------------------- BED
def _open_text(path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path, "rt")


def table_lines(path):
    """``(line number, tab-separated fields)`` of a text file (plain or gzip), skipping blank
    lines and header lines (``#``, ``track``, ``browser``)."""
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip() and not line.startswith(("#", "track", "browser")):
                yield lineno, line.rstrip("\n\r").split("\t")


def chrom_lookup(genome_chroms):
    """A function from a file's chromosome name to the genome's (exact, else after
    :func:`normalize_chrom`; None when absent)."""
    table = {}
    for name in genome_chroms:
        table[name] = name
        table.setdefault(normalize_chrom(name), name)
    return lambda c: table.get(c) or table.get(normalize_chrom(c))


def read_bed(path, score_column=None):
    """Read a BED file into ``{chrom: (starts, ends, values)}`` numpy arrays.

    ``values`` is 1 for every interval, or the number in 1-based ``score_column``.
    Header lines (``#``, ``track``, ``browser``) and blank lines are skipped; any
    other malformed line is an :class:`InputError` naming ``path:line``.
    """
    if not os.path.exists(path):
        raise InputError(f"{path}: BED file not found")
    rows = {}
    need = max(3, score_column or 0)
    for lineno, fields in table_lines(path):
        if len(fields) < need:
            raise InputError(f"{where(path, lineno)}: expected {need} tab-separated columns, found {len(fields)}")
        try:
            start, end = int(fields[1]), int(fields[2])
            value = float(fields[score_column - 1]) if score_column else 1.0
        except ValueError:
            col = f"columns 2-3{f' and {score_column}' if score_column else ''}"
            shown = "\t".join(fields)[:80]
            raise InputError(f"{where(path, lineno)}: expected numbers in {col}: {shown!r}") from None
        if start < 0 or end < start:
            raise InputError(f"{where(path, lineno)}: expected 0 <= start <= end, got {start} {end}")
        rows.setdefault(fields[0], []).append((start, end, value))
    out = {}
    for chrom, items in rows.items():
        arr = np.array(items, dtype=np.float64)
        out[chrom] = (arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2])
    return out


def read_bed_sets(paths, genome_chroms) -> dict:
    """Union of the intervals in several BED files as ``{genome chrom: IntervalSet}``."""
    parts = {}
    for path in paths:
        bed = read_bed(path)
        if not bed:
            continue
        for g, name in match_chroms(bed, genome_chroms, path).items():
            s, e, _ = bed[name]
            parts.setdefault(g, []).append((s, e))
    return {
        g: IntervalSet(np.concatenate([s for s, _ in p]), np.concatenate([e for _, e in p]))
        for g, p in parts.items()
    }


# ----------------------------------------------------------------------------- FASTA
class Genome:
    """A FASTA file (plain or bgzip) read through pysam.

    The ``.fai`` (and ``.gzi``) index is built next to the file on first use;
    a FASTA that cannot be indexed is an :class:`InputError` saying why.
    """

    def __init__(self, path):
        import pysam

        self.path = str(path)
        if not os.path.exists(self.path):
            raise InputError(f"{self.path}: FASTA file not found")
        try:
            self._fasta = pysam.FastaFile(self.path)
        except (OSError, ValueError) as err:
            raise InputError(f"{self.path}: cannot open or index the FASTA ({_index_hint(self.path, err)})") from None
        self.sizes = dict(zip(self._fasta.references, self._fasta.lengths))
        if not self.sizes:
            raise InputError(f"{self.path}: the FASTA holds no sequences")

    @property
    def chroms(self):
        return list(self.sizes)

    def fetch(self, chrom: str, start: int, end: int) -> str:
        """Bases of ``[start, end)``; positions outside the chromosome read as ``N``."""
        size = self.sizes[chrom]
        lo, hi = max(0, start), min(size, end)
        seq = self._fasta.fetch(chrom, lo, hi) if hi > lo else ""
        return "N" * (lo - start) + seq + "N" * (end - hi)

    def n_runs(self, chrom: str, chunk: int = 10_000_000, threads: int = 2):
        """Runs of N (or any non-ACGT base) as merged ``(starts, ends)``.

        Chunks are read in ``threads`` threads (pysam decompresses without the GIL).
        """
        size = self.sizes[chrom]
        spans = [(lo, min(size, lo + chunk)) for lo in range(0, size, chunk)]
        with ThreadPoolExecutor(max(1, min(threads, len(spans)))) as pool:
            found = list(pool.map(lambda span: self._n_runs_in(chrom, *span), spans))
        starts = np.array([s for runs in found for s, _ in runs], dtype=np.int64)
        ends = np.array([e for runs in found for _, e in runs], dtype=np.int64)
        return merge_intervals(starts, ends)  # joins runs cut at chunk edges

    def _n_runs_in(self, chrom, lo, hi):
        import pysam

        with pysam.FastaFile(self.path) as fasta:  # a handle per thread
            seq = fasta.fetch(chrom, lo, hi).encode("ascii", "replace")
        # every base becomes b"A" (ACGT) or b"N" (anything else); bytes.find then skips
        # from run to run at memchr speed
        flags = seq.translate(_N_FLAGS)
        runs = []
        pos = flags.find(b"N")
        while pos != -1:
            stop = flags.find(b"A", pos)
            stop = len(flags) if stop == -1 else stop
            runs.append((lo + pos, lo + stop))
            pos = flags.find(b"N", stop)
        return runs

    def close(self):
        self._fasta.close()


def _index_hint(path, err) -> str:
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] == b"\x1f\x8b":
        # bgzip files are gzip with an extra field (flag 4) holding 'BC'
        if not (len(head) > 3 and head[3] & 4):
            return "gzip but not bgzip: recompress with 'bgzip' or decompress it"
    if not os.access(os.path.dirname(os.path.abspath(path)), os.W_OK) and not os.path.exists(path + ".fai"):
        return "no .fai index and its folder is not writable: run 'samtools faidx' where you can write"
    return str(err).strip() or "not a FASTA file"


@dataclass(frozen=True)
class Interval:
    chrom: str
    start: int
    end: int

    def __len__(self):
        return self.end - self.start


def find_contigs(genome: Genome, gap_min: int = 1000, unmap=None, blacklist=None, chroms=None):
    """Contigs: pieces of each chromosome between gaps.

    A gap is a run of N or unmappable bases (``unmap``: ``{chrom: IntervalSet}``)
    of at least ``gap_min`` bp, or any blacklisted interval. Returns
    ``(contigs, masked)`` where ``masked`` is ``{chrom: IntervalSet}`` of every
    N or unmappable base, used to count masked bases inside sequences.
    """
    unmap, blacklist = unmap or {}, blacklist or {}
    contigs, masked = [], {}
    for chrom in chroms or genome.chroms:
        ns, ne = genome.n_runs(chrom)
        if chrom in unmap:
            ns = np.concatenate([ns, unmap[chrom].starts])
            ne = np.concatenate([ne, unmap[chrom].ends])
        mask = IntervalSet(ns, ne)
        masked[chrom] = mask
        long_ = (mask.ends - mask.starts) >= gap_min
        bs, be = mask.starts[long_], mask.ends[long_]
        if chrom in blacklist:
            bs = np.concatenate([bs, blacklist[chrom].starts])
            be = np.concatenate([be, blacklist[chrom].ends])
        for s, e in zip(*complement(bs, be, genome.sizes[chrom])):
            contigs.append(Interval(chrom, int(s), int(e)))
    return contigs, masked
