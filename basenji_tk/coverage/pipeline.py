"""BAM → coverage, the whole run of ``bam_cov.py``: :func:`bam_cov`, its :class:`Options` and :class:`Summary`.

The steps of :func:`bam_cov`, each a function of its own:

1. :func:`~basenji_tk.coverage.events.read_alignments` decodes the BAM once
   (:mod:`basenji_tk.io.bgzf` inflates batches of blocks in threads, :mod:`basenji_tk.io.bamio`
   parses the records) and keeps per alignment record only what later steps need (5' end,
   strand, chromosome, a hash of the read name, aligned blocks with ``--full``): memory grows
   with the number of reads, never with the genome.
2. :func:`~basenji_tk.coverage.events.group_reads` tells unique from multi-mapping reads (NH tag,
   BWA's XA tag, or secondary alignments grouped by read name) and drops reads with more than
   ``max_maps`` locations.
3. :func:`~basenji_tk.coverage.events.learn_shift` finds the fragment shift (strand
   cross-correlation for single-end reads, half the mean template length for proper pairs).
4. :func:`~basenji_tk.coverage.em.multi_em` shares each multi-mapping read between its locations
   in proportion to the Gaussian-smoothed coverage there; a read's weights always sum to 1.
5. :func:`~basenji_tk.coverage.gc.fit_gc` fits log2 coverage on local GC (a cubic polynomial);
   the writers divide the coverage by the fitted GC effect relative to its genome-wide mean.
6. :class:`~basenji_tk.coverage.tracks.TrackWriter` writes BigWig (:mod:`basenji_tk.io.bigwig`)
   or HDF5, one chromosome chunk at a time, to a temporary name that is renamed when everything
   is complete.

With ``--gc`` the GC codes of the genome are computed in a background thread from step 4 on,
and a child process draws the GC plot (matplotlib's import alone takes half a second); the
compiled loops live in :mod:`basenji_tk.coverage.kernels`, the checks of the user's inputs in
:mod:`basenji_tk.coverage.checks`.

Coordinates: 0-based. Between steps, positions on all chromosomes live in one "global"
coordinate, ``offset[chrom] + position``, with gaps between chromosomes wider than any smoothing
window, so the EM and cross-correlation code never needs to look at chromosome names.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from basenji_tk import files
from basenji_tk.coverage import checks as covchecks
from basenji_tk.coverage.em import multi_em
from basenji_tk.coverage.events import global_offsets, group_reads, learn_shift, read_alignments
from basenji_tk.coverage.gc import ChildPlot, GenomeGC, _CodeTotals, fit_gc, write_gc_report
from basenji_tk.coverage.tracks import CHUNK, TrackWriter, _events_by_track, _temp_name, _write_track
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")


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
    bam = covchecks.open_bam(bam_path)
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
