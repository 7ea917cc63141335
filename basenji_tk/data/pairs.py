"""Region x context pairs (ChromDragoNN): building the dataset, a label matrix from one peak
BED per context, with the context table (contexts x features, e.g. log TPM of TFs) and the
contexts' splits (:mod:`basenji_tk.data.contexts`).

A pairs dataset stores one record per REGION (a ``bin_length`` bp bin every ``stride`` bp):

- ``sequence``: the ``seq_length`` bp centred on the bin (uint8 codes);
- ``labels``: ``(C,)`` uint8, 1 where more than ``threshold`` of the bin overlaps a peak of
  context ``c`` (strictly more: ChromDragoNN's "> 50 %");

and beside them ``contexts.npy`` (the ``(C, F)`` float32 context table, rows in the order of
``statistics.json``'s ``pairs.contexts``) and a ``pairs`` section in ``statistics.json``.
Pairs are drawn in the input pipeline (:func:`basenji_tk.data.pairs_views.expand`), never
written out C times; the split rule is :mod:`basenji_tk.data.contexts`'.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np

from basenji_tk.data import dna
from basenji_tk.files import file_sha256
from basenji_tk.io import genome as gn
from basenji_tk.data import targets as tg
from basenji_tk.data.contexts import (SPLITS, context_folds, match_table, parse_context_split, read_context_table,
                                      read_contexts, read_feature_list, select_features, split_contexts)
from basenji_tk.errors import InputError

# Reading a pairs dataset (its two views) lives in pairs_views; its entry points are also
# importable from here, where release 0.1 had them.
from basenji_tk.data.pairs_views import (LABEL, REGION_LABELS, balance, context_table, count,  # noqa: F401
                                         example_features, expand, fold_splits, pairs_info, region_features,
                                         regions_view)

log = logging.getLogger("basenji_tk")

TABLE_FILE = "contexts.npy"
PAIR_FEATURES = ("sequence", "expression", "mean_accessibility", "accessible")


# ----------------------------------------------------------------------------- labels
def covered_bases(starts, ends, qstart, qend) -> np.ndarray:
    """Bases of each query ``[qstart, qend)`` inside the merged, sorted intervals ``(starts, ends)``.

    ``qstart``, ``qend``: ``(n,)`` int; returns ``(n,)`` int64."""
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    cum = np.concatenate([[0], np.cumsum(ends - starts)])

    def below(x):  # covered bases in [0, x)
        k = np.searchsorted(starts, x, side="right") - 1
        kk = np.maximum(k, 0)
        part = np.clip(x - starts[kk], 0, (ends - starts)[kk]) if len(starts) else np.zeros_like(x)
        return np.where(k >= 0, cum[kk] + part, 0)

    qstart, qend = np.asarray(qstart, np.int64), np.asarray(qend, np.int64)
    if not len(starts):
        return np.zeros(len(qstart), dtype=np.int64)
    return below(qend) - below(qstart)


def label_matrix(peaks, bin_starts, bin_length, threshold=0.5):
    """Binary labels ``(n, C)`` uint8 of bins ``[s, s + bin_length)`` against ``C`` peak sets.

    ``peaks``: a list of ``(starts, ends)`` per context on this chromosome (merged here);
    a label is 1 where the covered fraction is strictly above ``threshold``."""
    bin_starts = np.asarray(bin_starts, np.int64)
    out = np.zeros((len(bin_starts), len(peaks)), dtype=np.uint8)
    for j, (s, e) in enumerate(peaks):
        s, e = gn.merge_intervals(s, e)
        frac = covered_bases(s, e, bin_starts, bin_starts + bin_length) / bin_length
        out[:, j] = frac > threshold
    return out


# ----------------------------------------------------------------------------- building
@dataclass
class Options:
    """What ``make_pairs.py`` takes besides the paths (see its ``--help``)."""

    seq_length: int = 1000
    bin_length: int = 200
    stride: int = 50
    threshold: float = 0.5
    max_n: float = 0.1
    gap_min: int = 1000
    blacklist: tuple = ()
    regions: str | None = None
    valid: str = "0"
    test: str = "0"
    chunk_size: int = 1_048_576
    chroms: tuple = ()
    valid_contexts: str = "0.1"
    test_contexts: str = "0.1"
    folds: int = 0
    empty_fraction: float = 1.0
    pseudocount: float = 1.0
    log: str = "none"
    transpose: bool = False
    features: str | None = None
    seed: int = 0
    records_per_file: int = 256
    force: bool = False
    progress: bool = False


def _check_options(o: Options):
    for name in ("seq_length", "bin_length", "stride", "chunk_size", "records_per_file"):
        if getattr(o, name) <= 0:
            raise InputError(f"--{name} must be a positive integer, got {getattr(o, name)}")
    if o.bin_length > o.seq_length or (o.seq_length - o.bin_length) % 2:
        raise InputError(f"--bin_length {o.bin_length} must be at most --seq_length {o.seq_length} and leave "
                         "equal flanks (an even difference)")
    for name in ("threshold", "max_n", "empty_fraction"):
        if not 0 <= getattr(o, name) <= 1:
            raise InputError(f"--{name} must be in [0, 1], got {getattr(o, name)}")
    if o.folds < 0:
        raise InputError(f"--folds must be 0 (one split) or at least 3, got {o.folds}")


def plan_bins(genome, o: Options):
    """Bins and their genome splits: ``{split: [(chrom, bin_starts (n,) int64)]}``.

    The genome's contigs (between runs of >= ``gap_min`` N and ``blacklist`` regions) are split
    as ``make_targets.py`` splits them (:func:`targets.assign_splits`). Without ``regions`` each
    split piece is tiled with windows of ``seq_length`` every ``stride``, the bin being the
    window's centre; with ``regions`` (a BED) each region is tiled with bins of ``bin_length``
    every ``stride`` (a region of ``bin_length`` is one bin). Either way a bin is kept only when
    its whole window lies inside one split piece and at most ``max_n`` of it is N.
    """
    chroms = list(o.chroms) or genome.chroms
    missing = [c for c in chroms if c not in genome.sizes]
    if missing:
        raise InputError(f"--chroms: not in {genome.path}: {', '.join(missing)}")
    blacklist = gn.read_bed_sets(o.blacklist, chroms)
    contigs, masked = gn.find_contigs(genome, o.gap_min, None, blacklist, chroms)
    valid, test = tg.parse_split(o.valid, "--valid"), tg.parse_split(o.test, "--test")
    by_split = tg.assign_splits(contigs, valid, test, o.seq_length, o.chunk_size, o.seed)
    flank = (o.seq_length - o.bin_length) // 2
    candidates = None
    if o.regions:
        bed = gn.read_bed(o.regions)
        candidates = {}
        for g, name in gn.match_chroms(bed, chroms, o.regions).items():
            s, e, _ = bed[name]
            starts = [b for a, z in zip(s, e) for b in tg.tile(gn.Interval(g, int(a), int(z)), o.bin_length, o.stride)]
            candidates[g] = np.unique(np.asarray(starts, np.int64))
    out = {s: [] for s in SPLITS}
    dropped = 0
    for split in SPLITS:
        for piece in by_split[split]:
            if candidates is None:
                starts = np.asarray(tg.tile(piece, o.seq_length, o.stride), np.int64) + flank
            else:
                c = candidates.get(piece.chrom, np.zeros(0, np.int64))
                starts = c[(c - flank >= piece.start) & (c - flank + o.seq_length <= piece.end)]
            if not len(starts):
                continue
            mask = masked[piece.chrom]
            n_bases = covered_bases(mask.starts, mask.ends, starts - flank, starts - flank + o.seq_length)
            keep = n_bases <= o.max_n * o.seq_length
            dropped += int((~keep).sum())
            if keep.any():
                out[split].append((piece.chrom, starts[keep]))
    total = sum(len(s) for parts in out.values() for _, s in parts)
    if not total:
        raise InputError(f"no bins of {o.bin_length} bp with a {o.seq_length} bp window fit in "
                         f"{o.regions or genome.path}")
    log.info(f"{total:,} bins of {o.bin_length} bp every {o.stride} bp; {dropped:,} dropped for > {o.max_n:g} N")
    return out


def read_peaks(contexts, genome_chroms):
    """``[{genome chrom: (starts, ends)}]`` per context (a bad BED line is an InputError)."""
    out = []
    for c in contexts:
        bed = gn.read_bed(c.peaks)
        if not bed:
            log.warning(f"warning: {c.row}: {c.peaks} holds no intervals; context {c.name} has no positives")
            out.append({})
            continue
        mapping = gn.match_chroms(bed, genome_chroms, c.peaks)
        out.append({g: bed[name][:2] for g, name in mapping.items()})
    return out


def make_pairs(fasta, contexts_file, table_file, out_dir, options: Options | None = None) -> dict:
    """Build the pairs dataset folder ``out_dir``; returns its statistics."""
    o = options or Options()
    _check_options(o)
    out_dir = os.path.abspath(str(out_dir))
    contexts = read_contexts(contexts_file)
    t_names, features, t_values = read_context_table(table_file, o.pseudocount, o.log, o.transpose)
    feature_list = None
    if o.features:
        features, t_values, feature_list = select_features(features, t_values, read_feature_list(o.features),
                                                           table_file, o.features)
    table = match_table(contexts, t_names, t_values, contexts_file, table_file)
    names = [c.name for c in contexts]
    if o.folds:
        folds = context_folds(names, o.folds, o.seed, contexts_file)
    else:
        folds = [split_contexts(names, parse_context_split(o.valid_contexts, "--valid_contexts"),
                                parse_context_split(o.test_contexts, "--test_contexts"), o.seed, contexts_file)]
    genome = gn.Genome(fasta)
    try:
        peaks = read_peaks(contexts, genome.chroms)
        from basenji_tk import files

        with files.claim(out_dir, folder=False):
            if os.path.isdir(out_dir) and os.listdir(out_dir):
                files.refuse_overwrite(out_dir, os.listdir(out_dir), o.force)
            paths = {"contexts": contexts_file, "table": table_file, "fasta": fasta}
            if o.features:
                paths["features"] = o.features
            return _make(genome, contexts, peaks, features, table, folds, out_dir, o, paths, feature_list)
    finally:
        genome.close()


def _rows(genome, peaks, o: Options):
    """``(split, chrom, bin_starts, labels (n, C))`` per piece, after sampling the empty bins."""
    rng = np.random.default_rng([o.seed, 1])
    kept_empty = dropped_empty = 0
    out = []
    for split, parts in plan_bins(genome, o).items():
        for chrom, starts in parts:
            labels = label_matrix([p.get(chrom, (np.zeros(0), np.zeros(0))) for p in peaks], starts,
                                  o.bin_length, o.threshold)
            empty = labels.sum(axis=1) == 0
            keep = ~empty | (rng.random(len(starts)) < o.empty_fraction)
            kept_empty += int((empty & keep).sum())
            dropped_empty += int((empty & ~keep).sum())
            if keep.any():
                out.append((split, chrom, starts[keep], labels[keep]))
    return out, {"kept": kept_empty, "dropped": dropped_empty, "keep_fraction": o.empty_fraction}


def _make(genome, contexts, peaks, features, table, folds, out_dir, o, paths, feature_list=None) -> dict:
    from tqdm import tqdm

    from basenji_tk.data import records

    pieces, empty = _rows(genome, peaks, o)
    names = [c.name for c in contexts]
    order = {s: [(k, i) for k, p in enumerate(pieces) if p[0] == s for i in range(len(p[2]))] for s in SPLITS}
    shuffle = np.random.default_rng(o.seed).permutation(len(order["train"]))
    order["train"] = [order["train"][i] for i in shuffle]  # a shuffle buffer then mixes the genome
    flank = (o.seq_length - o.bin_length) // 2
    feats = [records.Feature("sequence", "sequence", (o.seq_length, 4), "uint8", resolution=1),
             records.Feature(LABEL, "label", (len(names),), "uint8", label_type="binary", names=tuple(names),
                             meta={"bin_length": o.bin_length, "threshold": o.threshold,
                                   "rule": f"1 when more than {o.threshold:g} of the central {o.bin_length} bp "
                                           "overlaps a peak of the context"})]
    positives = {n: {s: 0 for s in SPLITS} for n in names}
    total = sum(len(v) for v in order.values())
    with records.DatasetWriter(out_dir, feats, kind="pairs", records_per_file=o.records_per_file) as w:
        bar = tqdm(total=total, desc="regions", unit="region", disable=not o.progress)
        for split in SPLITS:
            for k, i in order[split]:
                _, chrom, starts, labels = pieces[k]
                b = int(starts[i])
                codes = dna.encode(genome.fetch(chrom, b - flank, b - flank + o.seq_length))
                w.add(split, {"sequence": codes, LABEL: labels[i]}, (chrom, b - flank, b - flank + o.seq_length))
                bar.update()
            for _, _, _, labels in (p for p in pieces if p[0] == split):
                for j, n in enumerate(names):
                    positives[n][split] += int(labels[:, j].sum())
        bar.close()
        np.save(w.path(TABLE_FILE), table)
        info = {
            "pairs": {
                "contexts": names,
                "context_table": TABLE_FILE,
                "context_features": list(features),
                "expression": {"source": os.path.abspath(paths["table"]), "log": o.log,
                               "pseudocount": o.pseudocount if o.log != "none" else 0.0,
                               "transposed": o.transpose, "shape": list(table.shape),
                               "features": feature_list or "every column of the table"},
                "label": LABEL, "bin_length": o.bin_length, "seq_length": o.seq_length,
                "threshold": o.threshold,
                "folds": [{s: [n for n in names if fold[n] == s] for s in SPLITS} for fold in folds],
                "split_rule": "a pair's split is the later of its region's and its context's (train < valid < test)",
                "pair_features": list(PAIR_FEATURES),
                "mean_accessibility": "fraction of the fold's training contexts where the region is accessible",
                "positives": positives,
                "empty_bins": empty,
            },
            "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(o).items()
                         if k not in ("force", "progress")},
            "files": {k: {"path": os.path.abspath(v), "sha256": file_sha256(v)} for k, v in paths.items()}
                     | {f"peaks:{c.name}": {"path": os.path.abspath(c.peaks), "sha256": file_sha256(c.peaks)}
                        for c in contexts},
        }
        stats = w.finish(info)
    log.info(f"wrote {out_dir}: {total:,} regions x {len(names)} contexts")
    return stats
