"""Coverage tracks: events per output track, per-base coverage chunk by chunk, BigWig/HDF5 writing.

:class:`TrackWriter` writes BigWig (:mod:`basenji_tk.io.bigwig`) or HDF5, one chromosome chunk
(:data:`CHUNK` bases) at a time, to a temporary name that is renamed when everything is complete.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from basenji_tk.coverage.events import Alignments, global_offsets

if TYPE_CHECKING:
    from basenji_tk.coverage.pipeline import Options

CHUNK = 4_000_000  # bases per output chunk: bounds the dense arrays, whatever the chromosome


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
