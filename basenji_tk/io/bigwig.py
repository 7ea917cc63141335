"""A streaming BigWig writer: NumPy packing, libdeflate in threads, zoom levels from per-bin summaries.

pyBigWig (libBigWig) spends about 1.3 microseconds per entry in ``addEntries`` and as much again
per entry when it builds the zoom levels at ``close``, which made writing a per-base track take
longer than decoding the BAM. This writer packs whole blocks of entries with NumPy, deflates them
with libdeflate (:mod:`basenji_tk.io.libdeflate`; zlib streams that any reader inflates) in worker
threads while the caller prepares the next chunk, and builds the zoom levels from per-bin
summaries computed in one compiled pass; :func:`nonzero_runs` turns a dense chunk into entries.

File layout (the UCSC BBI format, version 4, as documented with the Kent source and libBigWig):
fixed 64-byte header, zoom headers, total summary, chromosome B+ tree (one leaf), data block
count, data blocks (bedGraph items, 1024 per block), an R-tree over the blocks, then for every
zoom level its summary records in blocks and their R-tree. Reading is left to pyBigWig.
"""

from __future__ import annotations

import struct
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from basenji_tk.io.libdeflate import zlib_compress

BIGWIG_MAGIC, CHROM_TREE_MAGIC, RTREE_MAGIC = 0x888FFC26, 0x78CA8C91, 0x2468ACE0
ITEMS_PER_SLOT = 1024  # entries per data block
RTREE_BLOCK = 256  # children per R-tree node
MAX_CHROMS = 0x7FFF  # one leaf of the chromosome tree

_ITEM = np.dtype([("start", "<u4"), ("end", "<u4"), ("value", "<f4")])
_ZOOM = np.dtype([("chrom", "<u4"), ("start", "<u4"), ("end", "<u4"), ("count", "<u4"),
                  ("min", "<f4"), ("max", "<f4"), ("sum", "<f4"), ("sumsq", "<f4")])


class BigWigWriter:
    """Write ``[start, end) -> value`` entries chromosome by chromosome, in order; ``close`` to finish.

    ``chroms``: (name, length) pairs; chromosome ids follow this order, and ``add`` must be called
    with non-decreasing chromosome ids and, within one, sorted non-overlapping entries.
    Up to ``zoom_levels`` summaries are written with reductions ``first_reduction * 4**k`` (bp):
    only reductions that fit the format's 32-bit field, and none past the first that spans the
    longest chromosome (a coarser level would hold the same one record per chromosome).
    """

    def __init__(self, path: str, chroms, zoom_levels: int = 10, first_reduction: int = 256, threads: int = 2):
        if len(chroms) > MAX_CHROMS:
            raise ValueError(f"{len(chroms)} chromosomes: this writer handles at most {MAX_CHROMS}")
        self.f = open(path, "wb")
        self.chroms = [(str(name), int(length)) for name, length in chroms]
        self.zoom_levels, self.first_reduction = zoom_levels, first_reduction
        self.index = []  # (chrom, start, chrom, end, offset, size) of each data block
        self.zoom_parts = []  # level-1 summary records per add()
        self.covered = 0
        self.minimum, self.maximum, self.sum, self.sumsq = np.inf, -np.inf, 0.0, 0.0
        self.max_block = 0
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads)
        self.pending = None  # blocks of the last add(), being compressed
        self.f.write(b"\0" * (64 + 24 * zoom_levels + 40))
        self.chrom_tree_offset = self.f.tell()
        self._write_chrom_tree()
        self.data_offset = self.f.tell()
        self.f.write(b"\0" * 8)  # number of data blocks, filled in by close()

    def _write_chrom_tree(self) -> None:
        key_size = max([len(name.encode()) for name, _ in self.chroms] + [1])
        n = len(self.chroms)
        out = [struct.pack("<IIIIQQ", CHROM_TREE_MAGIC, max(n, 1), key_size, 8, n, 0), struct.pack("<BBH", 1, 0, n)]
        for cid, (name, length) in sorted(enumerate(self.chroms), key=lambda x: x[1][0].encode()):
            out.append(name.encode().ljust(key_size, b"\0") + struct.pack("<II", cid, length))
        self.f.write(b"".join(out))

    def add(self, chrom: int, starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> None:
        n = len(starts)
        if n == 0:
            return
        items = np.empty(n, dtype=_ITEM)
        items["start"], items["end"], items["value"] = starts, ends, values
        span = (items["end"] - items["start"]).astype(np.float64)
        v = items["value"].astype(np.float64)
        self.covered += int(span.sum())
        self.minimum, self.maximum = min(self.minimum, float(v.min())), max(self.maximum, float(v.max()))
        self.sum += float((v * span).sum())
        self.sumsq += float((v * v * span).sum())
        raws, entries = [], []
        for a in range(0, n, ITEMS_PER_SLOT):
            block = items[a:a + ITEMS_PER_SLOT]
            first, last = int(block["start"][0]), int(block["end"][-1])
            raws.append(struct.pack("<IIIIIBBH", chrom, first, last, 0, 0, 1, 0, len(block)) + block.tobytes())
            entries.append((chrom, first, chrom, last))
        self._flush()
        self.pending = (self._compress(raws), raws, entries, self.index)
        if self.zoom_levels:
            self.zoom_parts.append(_level_one(chrom, items, self.first_reduction))

    def _compress(self, raws: list) -> list:
        """Futures of the compressed blocks, in ``threads`` contiguous groups."""
        step = -(-len(raws) // self.threads)
        return [self.pool.submit(zlib_compress, raws[a:a + step]) for a in range(0, len(raws), step)]

    def _flush(self) -> None:
        """Write the blocks compressed in the background, in order, and index them."""
        if self.pending is None:
            return
        futures, raws, entries, index = self.pending
        self.pending = None
        datas = [d for fut in futures for d in fut.result()]
        for raw, data, entry in zip(raws, datas, entries):
            index.append((*entry, self.f.tell(), len(data)))
            self.f.write(data)
            self.max_block = max(self.max_block, len(raw))

    def close(self) -> None:
        self._flush()
        n_blocks = len(self.index)
        index_offset = self.f.tell()
        self._write_rtree(self.index, index_offset)
        zoom_headers = []
        if self.zoom_levels and self.zoom_parts:
            records = _merge_bins(np.concatenate(self.zoom_parts), self.first_reduction)
            for level, reduction in enumerate(zoom_reductions(self.first_reduction, self.zoom_levels,
                                                              max(length for _, length in self.chroms))):
                if level:
                    records = _merge_bins(records, reduction)
                data_offset = self.f.tell()
                self.f.write(struct.pack("<I", len(records)))
                index, raws, entries = [], [], []
                for a in range(0, len(records), ITEMS_PER_SLOT):
                    block = records[a:a + ITEMS_PER_SLOT]
                    # one R-tree entry per block; blocks may span chromosomes
                    raws.append(block.tobytes())
                    entries.append((int(block["chrom"][0]), int(block["start"][0]), int(block["chrom"][-1]),
                                    int(block["end"][-1])))
                self.pending = (self._compress(raws), raws, entries, index)
                self._flush()
                zoom_index = self.f.tell()
                self._write_rtree(index, zoom_index)
                zoom_headers.append((reduction, data_offset, zoom_index))
        # header, zoom headers, summary, block count
        self.f.seek(0)
        summary_offset = 64 + 24 * self.zoom_levels
        self.f.write(struct.pack("<IHHQQQHHQQIQ", BIGWIG_MAGIC, 4, len(zoom_headers), self.chrom_tree_offset,
                                 self.data_offset, index_offset, 0, 0, 0, summary_offset, max(self.max_block, 1), 0))
        for reduction, data_offset, zoom_index in zoom_headers:
            self.f.write(struct.pack("<IIQQ", reduction, 0, data_offset, zoom_index))
        self.f.seek(summary_offset)
        if self.covered:
            self.f.write(struct.pack("<Qdddd", self.covered, self.minimum, self.maximum, self.sum, self.sumsq))
        else:
            self.f.write(struct.pack("<Qdddd", 0, 0.0, 0.0, 0.0, 0.0))
        self.f.seek(self.data_offset)
        self.f.write(struct.pack("<Q", n_blocks))
        self.f.close()
        self.pool.shutdown()

    def _write_rtree(self, items: list, offset: int) -> None:
        """An R-tree over (chrom0, start, chrom1, end, offset, size) entries, root first, leaves last."""
        n = len(items)
        levels = [[items[i:i + RTREE_BLOCK] for i in range(0, max(n, 1), RTREE_BLOCK)]]  # leaves
        while len(levels[-1]) > 1:
            nodes = levels[-1]
            levels.append([nodes[i:i + RTREE_BLOCK] for i in range(0, len(nodes), RTREE_BLOCK)])
        levels.reverse()  # root level first
        # byte offset of every node, level by level
        position = offset + 48
        node_offsets = []
        for depth, nodes in enumerate(levels):
            leaf = depth == len(levels) - 1
            offs = []
            for node in nodes:
                offs.append(position)
                position += 4 + len(node) * (32 if leaf else 24)
            node_offsets.append(offs)
        lo = (items[0][0], items[0][1]) if items else (0, 0)
        hi = (items[-1][2], items[-1][3]) if items else (0, 0)
        out = [struct.pack("<IIQIIIIQII", RTREE_MAGIC, RTREE_BLOCK, n, lo[0], lo[1], hi[0], hi[1], offset,
                           ITEMS_PER_SLOT, 0)]
        for depth, nodes in enumerate(levels):
            leaf = depth == len(levels) - 1
            child = 0
            for node in nodes:
                out.append(struct.pack("<BBH", 1 if leaf else 0, 0, len(node)))
                for entry in node:
                    if leaf:
                        out.append(struct.pack("<IIIIQQ", *entry))
                    else:
                        first, last = _first(entry), _last(entry)
                        out.append(struct.pack("<IIIIQ", first[0], first[1], last[2], last[3],
                                               node_offsets[depth + 1][child]))
                        child += 1
        self.f.write(b"".join(out))


def zoom_reductions(first: int, levels: int, longest: int) -> list[int]:
    """Zoom reductions (bp) ``first * 4**k``, at most ``levels`` of them: each below 2**32 (the
    header stores it in 32 bits) and none after the first that reaches ``longest`` bp."""
    out = []
    reduction = first
    while len(out) < levels and reduction < 1 << 32:
        out.append(reduction)
        if reduction >= longest:
            break
        reduction *= 4
    return out


@numba.njit(cache=True, nogil=True)
def nonzero_runs(values):
    """Runs of equal nonzero values, compared as float32: (first index, index after the last, value).

    One pass counts the runs and a second fills them, so a dense per-base chunk becomes bedGraph
    entries without temporary arrays as long as the chunk.
    """
    n = len(values)
    runs = 0
    prev = np.float32(0.0)
    for i in range(n):
        v = np.float32(values[i])
        if v != 0 and v != prev:
            runs += 1
        prev = v
    first = np.empty(runs, np.int64)
    end = np.empty(runs, np.int64)
    value = np.empty(runs, np.float32)
    k = -1
    prev = np.float32(0.0)
    for i in range(n):
        v = np.float32(values[i])
        if v != prev:
            if k >= 0 and end[k] < 0:
                end[k] = i
            if v != 0:
                k += 1
                first[k], end[k], value[k] = i, -1, v
        prev = v
    if k >= 0 and end[k] < 0:
        end[k] = n
    return first, end, value


def _first(node):
    while isinstance(node, list):
        node = node[0]
    return node


def _last(node):
    while isinstance(node, list):
        node = node[-1]
    return node


def _level_one(chrom: int, items: np.ndarray, reduction: int) -> np.ndarray:
    """Summary records per ``reduction``-bp bin of sorted entries (entries split at bin edges)."""
    cols = _bin_summaries(items["start"].astype(np.int64), items["end"].astype(np.int64),
                          items["value"].astype(np.float64), reduction)
    out = np.empty(len(cols[0]), dtype=_ZOOM)
    out["chrom"] = chrom
    for name, col in zip(("start", "end", "count", "min", "max", "sum", "sumsq"), cols):
        out[name] = col
    return out


@numba.njit(cache=True, nogil=True)
def _bin_summaries(starts, ends, values, reduction):
    """(start, end, bases, min, max, sum, sum of squares) per bin holding entries, in one pass."""
    n_bins, last = 0, -1
    for i in range(len(starts)):
        b1 = (ends[i] - 1) // reduction
        if b1 > last:
            n_bins += b1 - max(starts[i] // reduction, last + 1) + 1
            last = b1
    start, end, count = np.empty(n_bins, np.int64), np.empty(n_bins, np.int64), np.zeros(n_bins, np.int64)
    lo, hi = np.empty(n_bins), np.empty(n_bins)
    total, total_sq = np.zeros(n_bins), np.zeros(n_bins)
    k, current = -1, -1
    for i in range(len(starts)):
        v = values[i]
        for b in range(starts[i] // reduction, (ends[i] - 1) // reduction + 1):
            s, e = max(starts[i], b * reduction), min(ends[i], (b + 1) * reduction)
            if b != current:
                k += 1
                current = b
                start[k], lo[k], hi[k] = s, v, v
            end[k] = e
            count[k] += e - s
            lo[k], hi[k] = min(lo[k], v), max(hi[k], v)
            total[k] += v * (e - s)
            total_sq[k] += v * v * (e - s)
    return start, end, count, lo, hi, total, total_sq


def _merge_bins(records: np.ndarray, reduction: int) -> np.ndarray:
    """Combine summary records that fall into the same (chromosome, ``reduction``-bp bin)."""
    if len(records) == 0:
        return records
    key = records["chrom"].astype(np.int64) << 32 | (records["start"].astype(np.int64) // reduction)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    out = np.empty(len(starts), dtype=_ZOOM)
    out["chrom"] = records["chrom"][starts]
    out["start"] = records["start"][starts]
    out["end"] = np.maximum.reduceat(records["end"], starts)
    for name, fn in (("count", np.add), ("min", np.minimum), ("max", np.maximum), ("sum", np.add), ("sumsq", np.add)):
        out[name] = fn.reduceat(records[name].astype(np.float64), starts)
    return out
