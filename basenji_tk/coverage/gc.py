"""The GC-bias model: GC around every base, the fit of coverage on GC, its report and plot.

:class:`GenomeGC` computes the Gaussian-weighted GC of the genome a chunk at a time (with
``--gc``, in a background thread from the EM on); :func:`fit_gc` fits log2 coverage on local GC
(a cubic polynomial); the track writers divide the coverage by the fitted GC effect relative to
its genome-wide mean, rescaled per track (:class:`_CodeTotals`) to keep the track's total.
:func:`write_gc_report` writes the table, and :class:`ChildPlot` draws it in a child process
(matplotlib's import alone takes half a second).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from basenji_tk.coverage.tracks import CHUNK, _BlockCoverage, _temp_name
from basenji_tk.errors import InputError


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
        # the folder holding basenji_tk/, so the child imports this very package (also from a checkout)
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
