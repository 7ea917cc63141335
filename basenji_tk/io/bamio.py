"""Column-wise BAM reading: records of inflated BGZF batches parsed by a numba kernel.

A per-record Python loop over pysam costs 2-3 microseconds a record, which is 10-15x the time
``samtools view -c`` needs to decode the file. ``bam_cov.py`` only needs a handful of fields per
record (reference, position, flag, MAPQ, CIGAR reference length, NH and XA tags, a hash of the read
name), so :func:`read_columns` decodes the BAM itself: :mod:`basenji_tk.io.bgzf` inflates batches of
blocks in worker threads, and a compiled kernel walks the records of each batch and writes those
fields into NumPy arrays while the next batches inflate.

Layout references: the SAM/BAM specification (samtools.github.io/hts-specs, SAMv1 sections 4.1
and 4.2). pysam still opens the file, reads the header and finds where the first record starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

# stats slots written by the kernel
SEEN, UNMAPPED, QC_FAIL, SUPPLEMENTARY, DUPLICATE, LOW_MAPQ = range(6)
LAST_TID, LAST_POS, UNSORTED_TID, UNSORTED_POS, TLEN_SUM, TLEN_N, PAIRED, NH_SEEN, XA_SEEN = range(6, 15)
N_STATS = 15

_REF_OPS = (1 << 0) | (1 << 2) | (1 << 3) | (1 << 7) | (1 << 8)  # M D N = X consume the reference
_BLOCK_OPS = (1 << 0) | (1 << 7) | (1 << 8)  # M = X are aligned bases


@numba.njit(inline="always")
def _u16(b, i):
    return np.int64(b[i]) | (np.int64(b[i + 1]) << 8)


@numba.njit(inline="always")
def _i32(b, i):
    v = np.int64(b[i]) | (np.int64(b[i + 1]) << 8) | (np.int64(b[i + 2]) << 16) | (np.int64(b[i + 3]) << 24)
    return v - (np.int64(1) << 32) if v >= (np.int64(1) << 31) else v


@numba.njit(inline="always")
def _u64(b, i):
    return (np.uint64(b[i]) | np.uint64(b[i + 1]) << np.uint64(8) | np.uint64(b[i + 2]) << np.uint64(16)
            | np.uint64(b[i + 3]) << np.uint64(24) | np.uint64(b[i + 4]) << np.uint64(32)
            | np.uint64(b[i + 5]) << np.uint64(40) | np.uint64(b[i + 6]) << np.uint64(48)
            | np.uint64(b[i + 7]) << np.uint64(56))


@numba.njit(inline="always")
def _name_hash(b, start, end):
    """64-bit hash of ``b[start:end]``, eight bytes at a time (multiply and xor-shift mixing)."""
    m = np.uint64(0xFF51AFD7ED558CCD)
    h = np.uint64(0x9E3779B97F4A7C15) ^ np.uint64(end - start)
    k = start
    while k + 8 <= end:
        h = (h ^ _u64(b, k)) * m
        h ^= h >> np.uint64(29)
        k += 8
    w = np.uint64(0)
    for j in range(end - k):
        w |= np.uint64(b[k + j]) << np.uint64(8 * j)
    h = (h ^ w) * m
    return h ^ (h >> np.uint64(32))


@numba.njit(nogil=True, cache=True)
def _parse(buf, off, end, skip, min_mapq, full, tid, pos, rlen, flag, key, nh, xa_off, xa_len, n,
           blk_rec, blk_start, blk_end, nblk, rec_base, stats):
    """Parse records from ``buf[off:end]`` until the buffer or an output array is exhausted.

    Returns (next offset, records written, blocks written). A record that does not fit
    entirely is left for the next call. Stops early with ``stats[UNSORTED_TID] >= 0`` when a
    mapped record comes before its predecessor.
    """
    cap, bcap = len(tid), len(blk_rec)
    while off + 4 <= end:
        size = _i32(buf, off)
        if off + 4 + size > end or n >= cap:
            break
        r = off + 4
        ref = _i32(buf, r)
        p = _i32(buf, r + 4)
        lname = np.int64(buf[r + 8])
        mapq = np.int64(buf[r + 9])
        ncig = _u16(buf, r + 12)
        f = _u16(buf, r + 14)
        lseq = _i32(buf, r + 16)
        if full and nblk + ncig > bcap:
            break
        stats[SEEN] += 1
        if ref >= 0:
            if ref < stats[LAST_TID] or (ref == stats[LAST_TID] and p < stats[LAST_POS]):
                stats[UNSORTED_TID] = ref
                stats[UNSORTED_POS] = p
                return off, n, nblk
            stats[LAST_TID] = ref
            stats[LAST_POS] = p
        off = r + size
        if ref < 0 or f & 0x4:
            stats[UNMAPPED] += 1
            continue
        if f & skip:
            if f & 0x200:
                stats[QC_FAIL] += 1
            elif f & 0x800:
                stats[SUPPLEMENTARY] += 1
            else:
                stats[DUPLICATE] += 1
            continue
        if mapq < min_mapq:
            stats[LOW_MAPQ] += 1
            continue
        c = r + 32 + lname
        reflen = np.int64(0)
        for k in range(ncig):
            v = _i32(buf, c + 4 * k) & 0xFFFFFFFF
            if (_REF_OPS >> (v & 0xF)) & 1:
                reflen += v >> 4
        key[n] = np.int64(_name_hash(buf, r + 32, r + 31 + lname) ^ np.uint64(f & 0x80))
        tid[n] = ref
        pos[n] = p + reflen - 1 if f & 0x10 else p
        rlen[n] = reflen
        flag[n] = f
        nh[n] = 0
        xa_off[n] = -1
        xa_len[n] = 0
        if f & 0x1:
            stats[PAIRED] = 1
            tl = _i32(buf, r + 28)
            if f & 0x2 and f & 0x40 and not f & 0x100 and tl != 0:
                stats[TLEN_SUM] += abs(tl)
                stats[TLEN_N] += 1
        # optional fields
        t = c + 4 * ncig + (lseq + 1) // 2 + lseq
        while t + 3 <= off:
            t0, t1, ty = buf[t], buf[t + 1], buf[t + 2]
            t += 3
            if ty == 65 or ty == 99 or ty == 67:  # A c C
                width = 1
            elif ty == 115 or ty == 83:  # s S
                width = 2
            elif ty == 105 or ty == 73 or ty == 102:  # i I f
                width = 4
            elif ty == 90 or ty == 72:  # Z H: NUL-terminated
                e = t
                while e < off and buf[e] != 0:
                    e += 1
                if t0 == 88 and t1 == 65 and ty == 90:  # XA:Z
                    xa_off[n] = t
                    xa_len[n] = e - t
                    stats[XA_SEEN] += 1
                t = e + 1
                continue
            elif ty == 66:  # B: subtype, int32 count, values
                sub = buf[t]
                count = _i32(buf, t + 1)
                w = 1 if sub in (99, 67) else 2 if sub in (115, 83) else 4
                t += 5 + w * count
                continue
            else:  # unknown type: stop reading this record's tags
                break
            if t0 == 78 and t1 == 72:  # NH
                if ty == 99:
                    v = np.int64(buf[t])
                    nh[n] = v - 256 if v >= 128 else v
                elif ty == 67:
                    nh[n] = buf[t]
                elif ty == 115:
                    v = _u16(buf, t)
                    nh[n] = v - 65536 if v >= 32768 else v
                elif ty == 83:
                    nh[n] = _u16(buf, t)
                elif ty == 105 or ty == 73:
                    nh[n] = _i32(buf, t)
                stats[NH_SEEN] += 1
            t += width
        if full:
            ref_at = p
            for k in range(ncig):
                v = _i32(buf, c + 4 * k) & 0xFFFFFFFF
                op, length = v & 0xF, v >> 4
                if (_BLOCK_OPS >> op) & 1:
                    blk_rec[nblk] = rec_base + n
                    blk_start[nblk] = ref_at
                    blk_end[nblk] = ref_at + length
                    nblk += 1
                if (_REF_OPS >> op) & 1:
                    ref_at += length
        n += 1
    return off, n, nblk


@dataclass
class Columns:
    """Fields of every usable record, in file order, and what was dropped."""

    tid: np.ndarray  # int32
    pos: np.ndarray  # int64 5' end (end - 1 for reverse-strand records)
    rlen: np.ndarray  # int32 reference length of the alignment
    flag: np.ndarray  # uint16
    key: np.ndarray  # int64 hash of the read name, xor the read-2 bit
    nh: np.ndarray  # int32 NH tag (0: none)
    xa: list  # (record index, XA:Z string) for records with BWA alternative hits
    blk_rec: np.ndarray  # --full: record index of each aligned block
    blk_start: np.ndarray
    blk_end: np.ndarray
    stats: np.ndarray  # int64, slots named at the top of this module


class UnsortedError(Exception):
    """A mapped record precedes its predecessor: ``args`` are (tid, pos) of the offending record and
    (tid, pos) of the mapped record before it (0-based)."""


def read_columns(batches, skip: int, min_mapq: int, full: bool, progress=None) -> Columns:
    """Decode every record of ``batches``, a :class:`basenji_tk.io.bgzf.BatchReader` started at the first record.

    ``skip``: records with any of these flag bits are dropped and counted; ``min_mapq``: records
    below it are dropped and counted. ``progress(compressed_offset, last_tid)`` is called after
    each batch. Raises :class:`UnsortedError` on a record out of coordinate order.
    """
    stats = np.zeros(N_STATS, dtype=np.int64)
    stats[LAST_TID] = -1
    stats[UNSORTED_TID] = -1
    xa = []
    rest = np.empty(0, np.uint8)  # the start of a record continued in the next batch
    out = _Growing(1 << 20, full)  # resized after the first batch
    n = nblk = 0

    def parse(buf: np.ndarray, off: int) -> int:
        nonlocal n, nblk
        while True:
            n0 = n
            off, n, nblk = _parse(buf, off, len(buf), skip, min_mapq, full, *out.cols, n, *out.blocks, nblk, 0, stats)
            for i in (n0 + np.flatnonzero(out.cols[6][n0:n] >= 0)).tolist():
                xa.append((i, buf[out.cols[6][i]:out.cols[6][i] + out.cols[7][i]].tobytes().decode()))
            if stats[UNSORTED_TID] >= 0:
                raise UnsortedError(int(stats[UNSORTED_TID]), int(stats[UNSORTED_POS]), int(stats[LAST_TID]),
                                    int(stats[LAST_POS]))
            if len(buf) - off < 4 or _record_incomplete(buf, off):
                return off
            out.grow(n, nblk)  # the kernel stopped because an output was full

    first = True
    for buf, start, end_offset in batches:
        if len(rest) <= start:  # the cut record goes into the headroom before the batch
            buf[start - len(rest):start] = rest
            start -= len(rest)
        else:  # a record longer than the headroom
            buf, start = np.concatenate((rest, buf[start:])), 0
        off = parse(buf, start)
        rest = buf[off:].copy()
        if first:  # size the outputs for the whole file from the records per compressed byte so far
            out.reserve(int(n * (batches.size - batches.start) / max(end_offset - batches.start, 1) * 1.1) + 1024,
                        n, nblk)
            first = False
        if progress:
            progress(end_offset, int(stats[LAST_TID]))
    if len(rest):
        raise ValueError(f"the last record is truncated ({len(rest)} bytes left over)")
    cat = [c[:n] for c in out.cols[:6]]  # views: the unused tail was never written, so holds no memory
    bcat = [b[:nblk] for b in out.blocks]
    return Columns(tid=cat[0], pos=cat[1], rlen=cat[2], flag=cat[3], key=cat[4], nh=cat[5], xa=xa,
                   blk_rec=bcat[0], blk_start=bcat[1], blk_end=bcat[2], stats=stats)


class _Growing:
    """The kernel's output columns (8 per record, 3 per aligned block with ``full``), resizable."""

    DTYPES = (np.int32, np.int64, np.int32, np.uint16, np.int64, np.int32, np.int64, np.int32)

    def __init__(self, cap: int, full: bool):
        self.full = full
        self.cols = [np.empty(cap, d) for d in self.DTYPES]
        self.blocks = [np.empty(cap * 2 if full else 0, np.int64) for _ in range(3)]

    def reserve(self, cap: int, n: int, nblk: int) -> None:
        """Room for ``cap`` records and ``2 cap`` blocks (at least ``2 nblk``), keeping the first
        ``n`` records and ``nblk`` blocks."""
        self.cols = [_resized(old, max(cap, n), n) for old in self.cols]
        if self.full:
            self.blocks = [_resized(old, max(2 * cap, 2 * nblk + 1024), nblk) for old in self.blocks]

    def grow(self, n: int, nblk: int) -> None:
        self.reserve(len(self.cols[0]) * 3 // 2 + 1024, n, nblk)


def _resized(old: np.ndarray, size: int, keep: int) -> np.ndarray:
    new = np.empty(size, old.dtype)
    new[:keep] = old[:keep]
    return new


def _record_incomplete(buf: np.ndarray, off: int) -> bool:
    size = int.from_bytes(buf[off:off + 4].tobytes(), "little", signed=True)
    return off + 4 + size > len(buf)



@numba.njit(cache=True)
def group_by_key(keys, secondary, nh):
    """Records with equal keys form a group.

    Returns (group id per record, records per group, whether a group holds a secondary record,
    largest NH tag in each group). The keys are first spread over partitions by the top bits of
    their mixed value (a counting sort), and each partition is then grouped with an
    open-addressing hash table small enough to stay in cache; groups are numbered partition by
    partition, in order of first appearance within each.
    """
    n = len(keys)
    mix = np.uint64(0x9E3779B97F4A7C15)
    pbits = 0
    while (n >> pbits) > 32768:
        pbits += 1
    parts = 1 << pbits
    mixed = np.empty(n, np.uint64)
    start = np.zeros(parts + 1, np.int64)
    for i in range(n):
        mixed[i] = np.uint64(keys[i]) * mix
        start[np.int64((mixed[i] >> np.uint64(63 - pbits)) >> np.uint64(1)) + 1] += 1
    for p in range(parts):
        start[p + 1] += start[p]
    # scatter into partition order, remembering where each record went
    fill = start[:parts].copy()
    where = np.empty(n, np.int64)
    p_key = np.empty(n, np.int64)
    p_sec = np.empty(n, np.bool_)
    p_nh = np.empty(n, np.int64)
    for i in range(n):
        p = np.int64((mixed[i] >> np.uint64(63 - pbits)) >> np.uint64(1))
        j = fill[p]
        fill[p] += 1
        where[i], p_key[j], p_sec[j], p_nh[j] = j, keys[i], secondary[i], nh[i]
    largest = np.int64(1)
    for p in range(parts):
        largest = max(largest, start[p + 1] - start[p])
    bits = 1
    while (1 << bits) < 2 * largest:
        bits += 1
    table = np.empty((1 << bits, 2), np.int64)  # (key, group) side by side
    p_gid = np.empty(n, np.int64)
    count = np.zeros(n, np.int64)
    any_secondary = np.zeros(n, np.bool_)
    max_nh = np.zeros(n, np.int64)
    groups = 0
    for p in range(parts):
        a, b = start[p], start[p + 1]
        sbits = 1
        while (1 << sbits) < 2 * (b - a):
            sbits += 1
        mask = (1 << sbits) - 1
        table[:mask + 1, 1] = -1
        for j in range(a, b):
            k = p_key[j]
            s = np.int64(np.uint64(k) * np.uint64(0xFF51AFD7ED558CCD) >> np.uint64(64 - sbits)) & mask
            while table[s, 1] >= 0 and table[s, 0] != k:
                s = (s + 1) & mask
            if table[s, 1] < 0:
                table[s, 0] = k
                table[s, 1] = groups
                groups += 1
            g = table[s, 1]
            p_gid[j] = g
            count[g] += 1
            any_secondary[g] |= p_sec[j]
            if p_nh[j] > max_nh[g]:
                max_nh[g] = p_nh[j]
    gid = np.empty(n, np.int64)
    for i in range(n):
        gid[i] = p_gid[where[i]]
    return gid, count[:groups], any_secondary[:groups], max_nh[:groups]
