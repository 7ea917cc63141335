"""Predictions of a trained model for the regions of a BED file, to HDF5 and BigWig.

Each region gets one window of the model's input length L centred on the
region's midpoint, ``[mid - L//2, mid - L//2 + L)`` with ``mid = (start + end) // 2``;
positions beyond a chromosome's ends read as N. The model's T output bins of
``pool_width`` bp lie in the middle of the window: bin k spans
``window_start + offset + k * pool_width`` onwards, with
``offset = (L - T * pool_width) // 2`` (0 unless the model crops).

:func:`predict_bed` writes, through a temporary name renamed when complete, an
HDF5 file with

* ``preds`` ``(N, T, n)`` float16: one row per region;
* ``chrom`` ``(N,)`` bytes (the FASTA's names), ``start``/``end`` ``(N,)`` int64:
  the windows; ``region_start``/``region_end``: the regions as given;
* ``target_ids`` ``(n,)`` bytes; attributes ``pool_width``, ``seq_length``,
  ``bin_offset``, ``target_ids``, ``model`` and ``genome``.

Regions come in the order :func:`basenji_tk.io.genome.read_bed` gives: grouped by
chromosome (in order of first appearance), in file order within one.
With a BigWig folder it also writes ``<identifier>.bw`` per target: the bins at
their genome positions, the mean where windows overlap, clipped to the
chromosome. Predictions are written batch by batch, so memory stays flat in the
number of regions (BigWigs read one chromosome's rows back at a time).
"""

import json
import logging
import os
import re

import numpy as np

import contextlib

from basenji_tk import cli, files
from basenji_tk.data import dna
from basenji_tk.errors import InputError
from basenji_tk.analysis.evaluate import MODEL_FILE, ensemble_model, file_label, predict_batch, sequence_input
from basenji_tk.io.genome import Genome, match_chroms, read_bed

# Keras loads only once the inputs are checked (basenji_tk.model.models inside the functions).

log = logging.getLogger("basenji_tk")

DATA_STATS = "data_statistics.json"  # the training dataset's statistics.json, kept by train.py


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
def training_statistics(model_dir) -> tuple[dict | None, str]:
    """``(statistics, path)`` of ``model_dir/data_statistics.json``; ``None`` when train.py left none."""
    path = os.path.join(str(model_dir), DATA_STATS)
    if not os.path.exists(path):
        return None, path
    try:
        with open(path) as fh:
            return json.load(fh), path
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def open_genome(fasta, stats: dict | None, stats_path: str) -> Genome:
    """``fasta``, or else the genome the training dataset was made from."""
    if fasta:
        return Genome(fasta)
    if stats is None:
        raise InputError(f"{stats_path} not found, so the genome is unknown; pass the FASTA with --fasta")
    path = (stats.get("genome") or {}).get("path")
    if not path:
        raise InputError(f"{stats_path} names no genome; pass the FASTA with --fasta")
    if not os.path.exists(path):
        raise InputError(f"{path}: FASTA named in {stats_path} not found; pass it with --fasta")
    return Genome(path)


def model_details(model, model_path, stats: dict | None, stats_path: str) -> dict:
    """``seq_length``, ``num_bins``, ``num_targets``, ``pool_width`` and ``target_ids`` of the model.

    Bin width and target ids come from the training statistics; without them
    the bin width is the model's output step and targets are named t0, t1, ..."""
    from basenji_tk.model.models import receptive_field

    seq_length, _ = sequence_input(model)
    out = model.output_shape
    if isinstance(out, list) or len(out) != 3:
        raise InputError(f"{model_path}: expected one output of shape (batch, bins, targets), got {out}")
    num_bins, num_targets = int(out[1]), int(out[2])
    details = dict(seq_length=seq_length, num_bins=num_bins, num_targets=num_targets)
    if stats is not None:
        if (int(stats["target_length"]), int(stats["num_targets"])) != (num_bins, num_targets):
            raise InputError(f"{model_path}: the model outputs {num_bins} bins x {num_targets} targets but "
                             f"{stats_path} describes {stats['target_length']} x {stats['num_targets']}")
        return dict(details, pool_width=int(stats["pool_width"]), target_ids=[str(t) for t in stats["target_ids"]])
    log.warning(f"warning: {stats_path} not found; bins are the model's output step, targets t0..t{num_targets - 1}")
    field = receptive_field(model)
    pool_width = field.step if field is not None and not field.whole else seq_length // num_bins
    return dict(details, pool_width=int(pool_width), target_ids=[f"t{k}" for k in range(num_targets)])


def select_targets(spec, target_ids: list[str], labels: list[str], option: str = "--targets"
                   ) -> list[tuple[int, str, str]]:
    """``option`` (``--targets``): comma-separated indices or identifiers (None: all) -> [(index, id, label)]."""
    if spec is None or str(spec).strip() == "":
        return [(i, t, labels[i]) for i, t in enumerate(target_ids)]
    chosen = []
    for part in str(spec).split(","):
        part = part.strip()
        if part in target_ids:
            i = target_ids.index(part)
        elif re.fullmatch(r"\d+", part) and int(part) < len(target_ids):
            i = int(part)
        else:
            raise InputError(f"{option}: {part!r} is neither a target id nor an index below {len(target_ids)} "
                             f"(targets: {', '.join(target_ids[:8])}{' ...' if len(target_ids) > 8 else ''})")
        chosen.append((i, target_ids[i], labels[i]))
    return chosen


def load_trained(model_dir, model_file, stats: dict | None, stats_path: str, targets=None, option: str = "--targets"):
    """A trained model and what the scripts need of it: ``(model, model_path, details, chosen)``.

    ``model_file`` (or ``model_dir/model_best.keras``) is loaded; ``details`` as
    :func:`model_details`; ``chosen``: ``[(index, id, label)]`` of ``targets`` (see
    :func:`select_targets`; labels are the training statistics' descriptions)."""
    from basenji_tk.model.models import load_model

    model_path = str(model_file) if model_file else os.path.join(str(model_dir), MODEL_FILE)
    model = load_model(model_path)
    details = model_details(model, model_path, stats, stats_path)
    labels = [str(x) for x in (stats or {}).get("target_descriptions", details["target_ids"])]
    return model, model_path, details, select_targets(targets, details["target_ids"], labels, option)


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


def write_bigwigs(h5_path, bigwig_dir, chrom_sizes: dict) -> list[str]:
    """One BigWig per target of an HDF5 from :func:`predict_bed`, ``<identifier>.bw`` in ``bigwig_dir``.

    ``chrom_sizes`` (``{name: bp}``, in the genome's order) makes the header.
    Bins are placed at their genome positions, clipped to the chromosome, and
    averaged where windows overlap (:func:`average_bins`)."""
    import h5py

    os.makedirs(bigwig_dir, exist_ok=True)
    with h5py.File(h5_path, "r") as h5:
        ids = [t.decode() for t in h5["target_ids"][:]]
        paths = [os.path.join(str(bigwig_dir), f"{file_label(t)}.bw") for t in ids]
        if len(set(paths)) < len(paths):
            raise InputError(f"{h5_path}: target identifiers clash as file names in {bigwig_dir}")
        chroms = np.array([c.decode() for c in h5["chrom"][:]])
        # one read of the span per chromosome (contiguous when read_regions grouped the rows)
        read = lambda rows: h5["preds"][rows[0]:rows[-1] + 1][rows - rows[0]]  # noqa: E731
        return write_window_bigwigs(paths, chrom_sizes, chroms, h5["start"][:] + int(h5.attrs["bin_offset"]),
                                    int(h5.attrs["pool_width"]), read)


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


def predict_bed(model_dir, bed_path, out_path, fasta=None, rc: bool = False, shifts=(0,), bigwig_dir=None,
                batch_size: int = 8, model_file=None, quiet: bool = False, force: bool = False) -> str:
    """Predict a window centred on each region of ``bed_path``; write the HDF5 ``out_path``.

    The model is ``model_dir/model_best.keras`` or ``model_file``, averaged over
    reverse complements (``rc``) and ``shifts`` when asked; the genome is
    ``fasta`` or the one named in ``model_dir/data_statistics.json``. With
    ``bigwig_dir``, one BigWig per target too. The genome and the regions are
    checked before the model loads. Returns ``out_path``."""
    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    stats, stats_path = training_statistics(model_dir)
    genome = open_genome(fasta, stats, stats_path)
    chroms, region_starts, region_ends = read_regions(bed_path, genome)

    import h5py
    from tqdm import tqdm

    from basenji_tk.model.models import load_model

    bigwig_claim = files.claim(bigwig_dir) if bigwig_dir else contextlib.nullcontext()
    with files.claim(out_path, folder=False), bigwig_claim:
        model_path = str(model_file) if model_file else os.path.join(str(model_dir), MODEL_FILE)
        model = load_model(model_path)
        details = model_details(model, model_path, stats, stats_path)
        files.refuse_overwrite(out_path, force=force)
        seq_length, num_bins, num_targets = details["seq_length"], details["num_bins"], details["num_targets"]
        model = ensemble_model(model, rc, shifts, seq_length)
        window_starts, window_ends = windows(region_starts, region_ends, seq_length)
        num = len(chroms)

        out_path = str(out_path)
        tmp = _tmp_name(out_path)
        log.info(f"predicting {num:,} windows of {seq_length:,} bp from {bed_path}")
        try:
            with h5py.File(tmp, "w") as h5:
                preds = h5.create_dataset("preds", (num, num_bins, num_targets), dtype="float16")
                for i in tqdm(range(0, num, batch_size), desc="batches", unit="batch",
                              disable=not cli.show_progress(quiet)):
                    stop = min(num, i + batch_size)
                    x = np.stack([dna.one_hot(genome.fetch(chroms[j], int(window_starts[j]), int(window_ends[j])),
                                              dtype=np.float32) for j in range(i, stop)])
                    preds[i:stop] = predict_batch(model, x).astype(np.float16)
                h5.create_dataset("chrom", data=np.array(chroms, dtype="S"))
                h5.create_dataset("start", data=window_starts)
                h5.create_dataset("end", data=window_ends)
                h5.create_dataset("region_start", data=region_starts)
                h5.create_dataset("region_end", data=region_ends)
                h5.create_dataset("target_ids", data=np.array(details["target_ids"], dtype="S"))
                h5.attrs.update(pool_width=details["pool_width"], seq_length=seq_length,
                                bin_offset=bin_offset(seq_length, num_bins, details["pool_width"]),
                                target_ids=np.array(details["target_ids"], dtype="S"),
                                model=os.path.abspath(model_path), genome=os.path.abspath(genome.path))
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log.info(f"wrote {out_path} ({num:,} x {num_bins} bins x {num_targets} targets)")
        if bigwig_dir:
            paths = write_bigwigs(out_path, bigwig_dir, genome.sizes)
            log.info(f"wrote {len(paths)} BigWig(s) to {bigwig_dir}")
    return out_path
