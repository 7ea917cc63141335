"""Predictions of a trained model for the regions of a BED file, to HDF5 and BigWig.

Each region gets one window of the model's ``window`` bp (a sequence model: its input length
L) centred on the region's midpoint, ``[mid - L//2, mid - L//2 + L)`` with
``mid = (start + end) // 2``; positions beyond a chromosome's ends read as N (signal inputs as 0).
Every model works (:class:`~basenji_tk.analysis.trained.TrainedModel`): inputs besides the DNA
come from :mod:`basenji_tk.analysis.inputs` (a context, tracks, fixed values). A positional
output's T positions of ``r`` bp lie in the middle of the window: position k spans
``window_start + offset + k * r`` onwards, with ``offset = (L - T * r) // 2`` unless the model
card says otherwise (0 unless the model crops).

:func:`predict_bed` writes, through a temporary name renamed when complete, an HDF5 file with

* ``outputs/<name>/preds`` ``(N, ...)`` float16 per output: ``(N, T, n)`` for positions x targets
  (binned, profile), ``(N, n)`` for one value per region (total, value, probability);
  ``outputs/<name>/target_ids`` ``(n,)`` bytes; attributes ``kind``, ``resolution`` and ``offset``
  (positional outputs);
* for a model of one output, ``preds`` and ``target_ids`` at the top too (links to those), and
  attributes ``pool_width`` and ``bin_offset`` when its output has positions;
* ``chrom`` ``(N,)`` bytes (the FASTA's names), ``start``/``end`` ``(N,)`` int64: the windows;
  ``region_start``/``region_end``: the regions as given; attributes ``seq_length`` (the window),
  ``outputs``, ``model``, ``genome`` and ``inputs`` (how the extra inputs were filled).

Regions come in the order :func:`basenji_tk.io.genome.read_bed` gives: grouped by
chromosome (in order of first appearance), in file order within one.
With a BigWig folder it also writes, for every output with positions, ``<identifier>.bw`` per
target (``<output>.<identifier>.bw`` for a model of several outputs): the positions at their
genome coordinates, the mean where windows overlap, clipped to the chromosome. Predictions are
written batch by batch, so memory stays flat in the number of regions (BigWigs read one
chromosome's rows back at a time).
"""

import contextlib
import json
import logging
import os

import numpy as np

from basenji_tk import cli, files
from basenji_tk.data import dna
from basenji_tk.errors import InputError
from basenji_tk.analysis.evaluate import file_label
from basenji_tk.io.genome import Genome, match_chroms, read_bed

# Keras loads only once the inputs are checked (TrainedModel.load inside the functions).

log = logging.getLogger("basenji_tk")


# ----------------------------------------------------------------------------- pure pieces
def windows(starts, ends, seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows of ``seq_length`` bp centred on regions: ``(N,), (N,) -> (N,), (N,)`` int64 starts and ends."""
    mid = (np.asarray(starts, dtype=np.int64) + np.asarray(ends, dtype=np.int64)) // 2
    window_starts = mid - seq_length // 2
    return window_starts, window_starts + seq_length


def bin_offset(seq_length: int, num_bins: int, pool_width: int) -> int:
    """bp between a window's start and its first output bin (half of what the model crops)."""
    return (seq_length - num_bins * pool_width) // 2


def average_bins(starts, ends, values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge possibly overlapping intervals on one chromosome into disjoint, sorted pieces.

    ``starts``, ``ends`` ``(M,)`` and ``values`` ``(M,)`` or ``(M, n)``. Returns
    ``(piece_starts (K,), piece_ends (K,), means (K,) or (K, n))``: the cut points
    are every interval edge, and each piece carries the mean value of the
    intervals covering it. Pieces no interval covers are left out."""
    starts, ends = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    one = values.ndim == 1
    values = values[:, None] if one else values
    edges = np.unique(np.concatenate([starts, ends]))
    lo, hi = np.searchsorted(edges, starts), np.searchsorted(edges, ends)  # pieces lo..hi-1 of each interval
    spans = hi - lo
    first = np.repeat(np.cumsum(spans) - spans, spans)  # where each interval's run of pieces begins
    piece = np.repeat(lo, spans) + np.arange(spans.sum()) - first
    sums = np.zeros((max(len(edges) - 1, 0), values.shape[1]))
    np.add.at(sums, piece, np.repeat(values, spans, axis=0))  # plain sums: a piece of one interval is exact
    counts = np.bincount(piece, minlength=len(sums))
    keep = counts > 0
    means = sums[keep] / counts[keep, None]
    return edges[:-1][keep], edges[1:][keep], means[:, 0] if one else means


# ----------------------------------------------------------------------------- inputs
def read_regions(bed_path, genome: Genome) -> tuple[list, np.ndarray, np.ndarray]:
    """The BED's regions as ``(chroms (N,) list of FASTA names, starts (N,), ends (N,))``.

    Chromosome names are matched to the FASTA's (``chr20`` and ``20`` are one);
    a chromosome the FASTA lacks, a region wholly past a chromosome's end or an
    empty file is an :class:`InputError`."""
    bed = read_bed(str(bed_path))
    if not bed:
        raise InputError(f"{bed_path}: no regions (the BED file is empty)")
    to_genome = {name: g for g, name in match_chroms(bed, genome.chroms, bed_path).items()}
    missing = [c for c in bed if c not in to_genome]
    if missing:
        have = ", ".join(genome.chroms[:8]) + (" ..." if len(genome.chroms) > 8 else "")
        raise InputError(f"{bed_path}: chromosome(s) {', '.join(missing[:10])} not in the FASTA {genome.path} "
                         f"(it has {have})")
    chroms, starts, ends = [], [], []
    for name, (s, e, _) in bed.items():
        g = to_genome[name]
        past = np.flatnonzero(s >= genome.sizes[g])
        if past.size:
            i = past[0]
            raise InputError(f"{bed_path}: region {name}:{s[i]}-{e[i]} starts past the end of {name} "
                             f"({genome.sizes[g]:,} bp in {genome.path})")
        chroms += [g] * len(s)
        starts.append(s)
        ends.append(e)
    return chroms, np.concatenate(starts), np.concatenate(ends)


# ----------------------------------------------------------------------------- outputs
def _tmp_name(path) -> str:
    folder, base = os.path.split(os.path.abspath(str(path)))
    return os.path.join(folder, f".{base}.tmp{os.getpid()}")


def write_window_bigwigs(paths, chrom_sizes: dict, chroms, starts, width: int, read) -> list[str]:
    """BigWigs (one per track) of binned values over windows, written through temporary names.

    ``chroms``, ``starts`` ``(N,)``: each window's chromosome and first bin's start (bp);
    ``width``: bp per bin; ``read(rows)`` returns the values of those window rows, ``(m, bins,
    len(paths))``. Bins are clipped to the chromosome and averaged where windows overlap."""
    import pyBigWig

    chroms, starts = np.asarray(chroms), np.asarray(starts, dtype=np.int64)
    files = [pyBigWig.open(_tmp_name(p), "w") for p in paths]
    complete = False
    try:
        for bw in files:
            bw.addHeader([(c, int(s)) for c, s in chrom_sizes.items()])
        for chrom, size in chrom_sizes.items():
            rows = np.flatnonzero(chroms == chrom)
            if rows.size == 0:
                continue
            values = np.asarray(read(rows), dtype=np.float64)  # (m, bins, K)
            bin_starts = (starts[rows, None] + width * np.arange(values.shape[1])).ravel()
            lo, hi = np.clip(bin_starts, 0, size), np.clip(bin_starts + width, 0, size)
            inside = hi > lo
            s, e, means = average_bins(lo[inside], hi[inside], values.reshape(-1, len(paths))[inside])
            for k, bw in enumerate(files):
                bw.addEntries([chrom] * len(s), s.tolist(), ends=e.tolist(), values=means[:, k].tolist())
        complete = True
    finally:
        for bw in files:
            bw.close()
        for path in paths:
            if complete:
                os.replace(_tmp_name(path), path)
            elif os.path.exists(_tmp_name(path)):
                os.remove(_tmp_name(path))
    return list(paths)




def bigwig_paths(tm, bigwig_dir, names) -> dict:
    """``{output: [path per target]}`` for the outputs ``names``: ``<id>.bw``, or ``<output>.<id>.bw``
    for a model of several outputs; an error when two targets would share a file."""
    paths = {}
    for name in names:
        prefix = "" if len(tm.outputs) == 1 else f"{file_label(name)}."
        paths[name] = [os.path.join(str(bigwig_dir), f"{prefix}{file_label(t)}.bw") for t in tm.outputs[name].targets]
    flat = [p for ps in paths.values() for p in ps]
    if len(set(flat)) < len(flat):
        raise InputError(f"--bigwig: target identifiers of {tm.model_path} clash as file names in {bigwig_dir}")
    return paths


def write_bigwigs(h5_path, bigwig_dir, chrom_sizes: dict, paths: dict) -> list[str]:
    """BigWigs of the positional outputs of an HDF5 from :func:`predict_bed`: ``paths`` is
    ``{output: [path per target]}`` (:func:`bigwig_paths`). ``chrom_sizes`` (``{name: bp}``, in the
    genome's order) makes the header. Positions are placed at their genome coordinates, clipped to
    the chromosome, and averaged where windows overlap (:func:`average_bins`)."""
    import h5py

    os.makedirs(bigwig_dir, exist_ok=True)
    written = []
    with h5py.File(h5_path, "r") as h5:
        chroms = np.array([c.decode() for c in h5["chrom"][:]])
        for name, out_paths in paths.items():
            group = h5["outputs"][name]
            preds = group["preds"]
            # one read of the span per chromosome (contiguous when read_regions grouped the rows)
            read = lambda rows, d=preds: d[rows[0]:rows[-1] + 1][rows - rows[0]]  # noqa: E731
            written += write_window_bigwigs(out_paths, chrom_sizes, chroms, h5["start"][:] + int(group.attrs["offset"]),
                                            int(group.attrs["resolution"]), read)
    return written


def predict_bed(model_dir, bed_path, out_path, fasta=None, rc: bool = False, shifts=(0,), bigwig_dir=None,
                batch_size: int = 8, model_file=None, quiet: bool = False, force: bool = False,
                inputs=None) -> str:
    """Predict a window centred on each region of ``bed_path``; write the HDF5 ``out_path``.

    The model is ``model_dir``'s (or ``model_file``), averaged over reverse complements (``rc``)
    and ``shifts`` when asked; the genome is ``fasta`` or the one the model was trained on;
    ``inputs`` (:class:`~basenji_tk.analysis.inputs.InputOptions`) fills the inputs besides the DNA.
    With ``bigwig_dir``, one BigWig per target of every output with positions. The genome and the
    regions are checked before the model loads. Returns ``out_path``."""
    from basenji_tk.analysis.inputs import resolve_inputs
    from basenji_tk.analysis.trained import TrainedModel, folder_genome

    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    genome = folder_genome(model_dir, fasta)
    chroms, region_starts, region_ends = read_regions(bed_path, genome)

    import h5py
    from tqdm import tqdm

    bigwig_claim = files.claim(bigwig_dir) if bigwig_dir else contextlib.nullcontext()
    with files.claim(out_path, folder=False), bigwig_claim:
        tm = TrainedModel.load(model_dir, model_file)
        files.refuse_overwrite(out_path, force=force)
        positional = [n for n, o in tm.outputs.items() if o.positional]
        if bigwig_dir and not positional:
            raise InputError(f"--bigwig: the outputs of {tm.model_path} have no positions ("
                             + "; ".join(o.describe() for o in tm.outputs.values())
                             + "); their values per region are in the HDF5 file")
        paths = bigwig_paths(tm, bigwig_dir, positional) if bigwig_dir else {}
        predictor = tm.predictor(rc, shifts)  # checks the shifts
        seq_length = tm.window
        window_starts, window_ends = windows(region_starts, region_ends, seq_length)
        num = len(chroms)
        seq = tm.sequence
        out_path = str(out_path)
        tmp = _tmp_name(out_path)
        log.info(f"predicting {num:,} windows of {seq_length:,} bp from {bed_path}")
        try:
            with resolve_inputs(tm, inputs, genome.sizes) as fill, h5py.File(tmp, "w") as h5:
                group = h5.create_group("outputs")
                data = {}
                for name, o in tm.outputs.items():
                    g = group.create_group(name)
                    data[name] = g.create_dataset("preds", (num,) + tuple(o.shape), dtype="float16")
                    g.create_dataset("target_ids", data=np.array(o.targets, dtype="S"))
                    g.attrs.update(kind=o.kind, **({"resolution": o.resolution, "offset": o.offset}
                                                    if o.positional else {}))
                for i in tqdm(range(0, num, batch_size), desc="batches", unit="batch",
                              disable=not cli.show_progress(quiet)):
                    stop = min(num, i + batch_size)
                    rows = [(chroms[j], int(window_starts[j]), int(window_ends[j])) for j in range(i, stop)]
                    x = fill(rows)
                    if seq is not None:
                        x[seq.name] = np.stack([dna.one_hot(genome.fetch(*r), dtype=np.float32) for r in rows])
                    out = predictor.predict_on_batch(tm.model_inputs(x))
                    for name in tm.outputs:
                        data[name][i:stop] = np.asarray(out[name], dtype=np.float32).astype(np.float16)
                if len(tm.outputs) == 1:
                    (name, o), = tm.outputs.items()
                    h5["preds"] = h5py.SoftLink(f"/outputs/{name}/preds")
                    h5["target_ids"] = h5py.SoftLink(f"/outputs/{name}/target_ids")
                    h5.attrs["target_ids"] = np.array(o.targets, dtype="S")
                    if o.positional:
                        h5.attrs.update(pool_width=o.resolution, bin_offset=o.offset)
                h5.create_dataset("chrom", data=np.array(chroms, dtype="S"))
                h5.create_dataset("start", data=window_starts)
                h5.create_dataset("end", data=window_ends)
                h5.create_dataset("region_start", data=region_starts)
                h5.create_dataset("region_end", data=region_ends)
                h5.attrs.update(seq_length=seq_length, outputs=np.array(list(tm.outputs), dtype="S"),
                                model=os.path.abspath(tm.model_path), genome=os.path.abspath(genome.path),
                                inputs=json.dumps(_inputs_record(tm, inputs)))
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log.info(f"wrote {out_path} ({num:,} windows; " + "; ".join(o.describe() for o in tm.outputs.values()) + ")")
        if bigwig_dir:
            written = write_bigwigs(out_path, bigwig_dir, genome.sizes, paths)
            log.info(f"wrote {len(written)} BigWig(s) to {bigwig_dir}")
    return out_path


def _inputs_record(tm, options) -> dict:
    """How each non-sequence input was filled, for the HDF5's ``inputs`` attribute."""
    if not tm.extra_inputs:
        return {}
    return {"context": getattr(options, "context", None), "context_tsv": getattr(options, "context_tsv", None),
            "values": list(getattr(options, "values", ()) or ()),
            "tracks": {i.name: i.feature.meta.get("tracks") for i in tm.extra_inputs
                       if i.feature is not None and i.feature.meta.get("tracks")}}
