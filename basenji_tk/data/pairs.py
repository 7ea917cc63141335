"""Region x context pairs (ChromDragoNN): a label matrix from one peak BED per context, a
context table (contexts x features, e.g. log TPM of TFs), splits on both axes, and the
tf.data pipeline that turns one record per region into (region, context) examples.

A pairs dataset stores one record per REGION (a ``bin_length`` bp bin every ``stride`` bp):

- ``sequence``: the ``seq_length`` bp centred on the bin (uint8 codes);
- ``labels``: ``(C,)`` uint8, 1 where more than ``threshold`` of the bin overlaps a peak of
  context ``c`` (strictly more: ChromDragoNN's "> 50 %");

and beside them ``contexts.npy`` (the ``(C, F)`` float32 context table, rows in the order of
``statistics.json``'s ``pairs.contexts``) and a ``pairs`` section in ``statistics.json``.
Pairs are drawn in the input pipeline (:func:`expand`), never written out C times.

Split rule: every region has a genome split (whole chunks or listed chromosomes, as
``make_targets.py``) and every context a context split (per fold). A pair's split is the LATER
of the two, in the order train < valid < test, so nothing in valid or test is seen in
training on either axis: train pairs are train regions x train contexts; valid pairs are
valid regions x (train + valid) contexts and train regions x valid contexts; test pairs are
everything with a test region or a test context.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np

from basenji_tk.data import dna
from basenji_tk.files import file_sha256
from basenji_tk.io import genome as gn
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

SPLITS = tg.SPLITS
RANK = {s: i for i, s in enumerate(SPLITS)}
TABLE_FILE = "contexts.npy"
LABEL = "labels"
PAIR_FEATURES = ("sequence", "expression", "mean_accessibility", "accessible")
LOGS = {"none": None, "ln": np.log, "log2": np.log2, "log10": np.log10}


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Context:
    """One row of the contexts table: a name and its peak BED."""

    name: str
    peaks: str
    row: str = ""  # "contexts.tsv:3" for messages


def read_contexts(path) -> list[Context]:
    """The contexts table: TSV with a header holding ``context`` and ``peaks`` (a BED path,
    relative to the table's folder); other columns (e.g. ``description``) are ignored."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: contexts table not found")
    lines = list(gn.table_lines(path))
    if not lines:
        raise InputError(f"{path}: empty contexts table; expected a header with columns context, peaks")
    _, header = lines[0]
    cols = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in ("context", "peaks") if c not in cols]
    if missing:
        raise InputError(f"{where(path, lines[0][0])}: the header lacks column(s) {', '.join(missing)} "
                         f"(has: {', '.join(cols)}); expected context, peaks")
    folder = os.path.dirname(os.path.abspath(path))
    out, seen = [], {}
    for lineno, fields in lines[1:]:
        at = where(path, lineno)
        if len(fields) < len(header):
            raise InputError(f"{at}: expected {len(header)} tab-separated columns, found {len(fields)}")
        name, peaks = fields[cols["context"]].strip(), fields[cols["peaks"]].strip()
        if not name or not peaks:
            raise InputError(f"{at}: empty context name or peaks path")
        if name in seen:
            raise InputError(f"{at}: context {name!r} is also on line {seen[name]}")
        seen[name] = lineno
        peaks = peaks if os.path.isabs(peaks) else os.path.join(folder, peaks)
        if not os.path.exists(peaks):
            raise InputError(f"{at}: peak BED {peaks} not found")
        out.append(Context(name, peaks, at))
    if not out:
        raise InputError(f"{path}: no contexts below the header")
    return out


def read_context_table(path, pseudocount=1.0, log_base="none", transpose=False):
    """A TSV matrix of contexts x features -> ``(contexts, features, values (C, F) float32)``.

    The first row is a header (its first cell is ignored, the others name the features); each
    further row is a context name and its values. ``transpose``: the file is features x
    contexts (rows are features, the header names contexts). ``log_base`` (none, ln, log2,
    log10) is applied to ``value + pseudocount``; without a log the pseudocount is not added.
    """
    path = str(path)
    if log_base not in LOGS:
        raise InputError(f"--log: expected one of {', '.join(LOGS)}, got {log_base!r}")
    if not os.path.exists(path):
        raise InputError(f"{path}: context table not found")
    lines = list(gn.table_lines(path))
    if len(lines) < 2:
        raise InputError(f"{path}: expected a header and at least one row")
    header = [h.strip() for h in lines[0][1][1:]]
    rows, values = [], []
    for lineno, fields in lines[1:]:
        if len(fields) != len(header) + 1:
            raise InputError(f"{where(path, lineno)}: expected {len(header) + 1} tab-separated columns "
                             f"(a name and {len(header)} values), found {len(fields)}")
        try:
            values.append([float(v) for v in fields[1:]])
        except ValueError:
            bad = next(v for v in fields[1:] if not _is_number(v))
            raise InputError(f"{where(path, lineno)}: expected numbers, got {bad!r}") from None
        rows.append(fields[0].strip())
    matrix = np.asarray(values, dtype=np.float64)
    if not np.isfinite(matrix).all():
        lineno = lines[1 + int(np.flatnonzero(~np.isfinite(matrix).all(axis=1))[0])][0]
        raise InputError(f"{where(path, lineno)}: a value is NaN or infinite; expected finite numbers")
    contexts, features = (header, rows) if transpose else (rows, header)
    if transpose:
        matrix = matrix.T
    for kind, names in (("context", contexts), ("feature", features)):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"{path}: {kind} name(s) given twice: {', '.join(dup[:5])}")
    fn = LOGS[log_base]
    if fn is not None:
        shifted = matrix + pseudocount
        if (shifted <= 0).any():
            raise InputError(f"{path}: a value + pseudocount {pseudocount:g} is <= 0 (minimum "
                             f"{matrix.min():g}); the log needs positive values")
        matrix = fn(shifted)
    return contexts, features, matrix.astype(np.float32)


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def match_table(contexts, table_contexts, table_values, contexts_path, table_path):
    """Rows of the context table in the order of ``contexts`` (names); a context absent from the
    table is one :class:`InputError` naming both files and the context."""
    index = {name: i for i, name in enumerate(table_contexts)}
    for c in contexts:
        if c.name not in index:
            shown = ", ".join(table_contexts[:6]) + (" ..." if len(table_contexts) > 6 else "")
            raise InputError(f"{c.row or contexts_path}: context {c.name!r} of {contexts_path} is not in the "
                             f"context table {table_path} (it has: {shown})")
    extra = [n for n in table_contexts if n not in {c.name for c in contexts}]
    if extra:
        log.info(f"{table_path}: {len(extra)} context(s) without peaks are not used: {', '.join(extra[:5])}")
    return table_values[[index[c.name] for c in contexts]]


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


# ----------------------------------------------------------------------------- splits
def parse_context_split(text, option):
    """``--valid_contexts``/``--test_contexts``: a fraction in [0, 1) or comma-separated names."""
    return tg.parse_split(text, option)


def split_contexts(names, valid=0.1, test=0.1, seed=0, path="contexts table") -> dict:
    """``{name: split}``. Listed names go to their split; the held-out fractions (of all contexts,
    at least one context each when above 0) are drawn from the rest with ``seed``."""
    out, listed = {}, {}
    for split, spec in (("valid", valid), ("test", test)):
        if isinstance(spec, list):
            unknown = [n for n in spec if n not in names]
            if unknown:
                raise InputError(f"--{split}_contexts: context(s) {', '.join(unknown)} not in {path} "
                                 f"(it has: {', '.join(list(names)[:6])}{' ...' if len(names) > 6 else ''})")
            for n in spec:
                if n in listed:
                    raise InputError(f"--{split}_contexts: context {n} is also in --{listed[n]}_contexts")
                listed[n] = split
    rest = [n for n in names if n not in listed]
    order = [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))]
    for split, spec in (("test", test), ("valid", valid)):
        if not isinstance(spec, list) and spec > 0:
            k = max(1, int(round(spec * len(names))))
            for n in order[:k]:
                listed[n] = split
            order = order[k:]
    out = {n: listed.get(n, "train") for n in names}
    _check_folds([out], path)
    return out


def context_folds(names, k, seed=0, path="contexts table") -> list[dict]:
    """``k`` folds, each ``{name: split}``: contexts shuffled with ``seed`` and dealt into ``k``
    groups; fold ``f`` tests group ``f``, validates on group ``f + 1`` (mod k), trains on the rest."""
    if k < 3:
        raise InputError(f"--folds: needs at least 3 (a test, a valid and a train group), got {k}")
    if k > len(names):
        raise InputError(f"--folds {k}: only {len(names)} contexts in {path}")
    groups = np.array_split(np.random.default_rng(seed).permutation(len(names)), k)
    folds = []
    for f in range(k):
        split = {names[i]: "train" for i in range(len(names))}
        split.update({names[i]: "test" for i in groups[f]})
        split.update({names[i]: "valid" for i in groups[(f + 1) % k]})
        folds.append(split)
    _check_folds(folds, path)
    return folds


def _check_folds(folds, path):
    for f, split in enumerate(folds):
        if "train" not in split.values():
            raise InputError(f"{path}: no training context left (fold {f}); hold out fewer contexts")


def pair_rank(region_rank, context_rank):
    """The split rank of pairs: the later of the region's and the context's (train 0 < valid 1 < test 2)."""
    return np.maximum(region_rank, context_rank)


def pair_contexts(region_split, fold_split, split, names):
    """Indices of the contexts whose pairs with a region of ``region_split`` are in ``split``."""
    ranks = np.array([RANK[fold_split[n]] for n in names])
    return np.flatnonzero(pair_rank(RANK[region_split], ranks) == RANK[split]).astype(np.int32)


def mean_accessibility(labels, train_index):
    """Fraction of the training contexts where each region is accessible: ``(n, C)`` -> ``(n,)``."""
    return np.asarray(labels, np.float32)[:, train_index].mean(axis=1)


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
            return _make(genome, contexts, peaks, features, table, folds, out_dir, o,
                         {"contexts": contexts_file, "table": table_file, "fasta": fasta})
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


def _make(genome, contexts, peaks, features, table, folds, out_dir, o, paths) -> dict:
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
                               "transposed": o.transpose, "shape": list(table.shape)},
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


# ----------------------------------------------------------------------------- pipeline
def pairs_info(spec) -> dict:
    """The ``pairs`` section of a dataset's statistics (an InputError when it has none)."""
    info = spec.stats.get("pairs")
    if info is None:
        raise InputError(f"{spec.path}: not a pairs dataset (statistics.json has no 'pairs' section)")
    return info


def context_table(spec) -> np.ndarray:
    """The dataset's ``(C, F)`` float32 context table, rows in ``pairs.contexts`` order."""
    info = pairs_info(spec)
    path = os.path.join(spec.path, info["context_table"])
    if not os.path.exists(path):
        raise InputError(f"{path}: the context table of this pairs dataset is missing")
    table = np.load(path).astype(np.float32)
    if table.shape[0] != len(info["contexts"]):
        raise InputError(f"{path}: {table.shape[0]} rows for {len(info['contexts'])} contexts in statistics.json")
    return table


def fold_splits(spec, fold=0) -> dict:
    """``{context: split}`` of fold ``fold``."""
    folds = pairs_info(spec)["folds"]
    if not 0 <= fold < len(folds):
        raise InputError(f"fold {fold}: the dataset has {len(folds)} fold(s) (0 to {len(folds) - 1})")
    return {n: s for s, names in folds[fold].items() for n in names}


def example_features(spec, mean=True) -> list:
    """The features of one (region, context) example, as :class:`records.Feature` s: what a
    model's ``model.inputs`` and heads bind to."""
    from basenji_tk.data import records

    info = pairs_info(spec)
    n_features = len(info["context_features"])
    out = [records.Feature("sequence", "sequence", (info["seq_length"], 4), "uint8", resolution=1),
           records.Feature("expression", "vector", (n_features,), "float32", names=tuple(info["context_features"]),
                           meta={"log": info["expression"]["log"], "pseudocount": info["expression"]["pseudocount"]})]
    if mean:
        out.append(records.Feature("mean_accessibility", "vector", (1,), "float32",
                                   meta={"definition": info["mean_accessibility"]}))
    out.append(records.Feature("accessible", "label", (1,), "float32", label_type="binary",
                               meta={"threshold": info["threshold"], "bin_length": info["bin_length"]}))
    return out


def region_splits(split) -> tuple:
    """The region splits whose records :func:`expand` needs for pairs of ``split`` (those not later)."""
    return SPLITS[:RANK[split] + 1]


def _codes(sequence):
    """uint8 codes ``(L,)`` from codes or a one-hot ``(L, 4)`` (all-zero rows -> 4, N)."""
    import tensorflow as tf

    if sequence.shape.rank == 1:
        return tf.cast(sequence, tf.uint8)
    hot = tf.cast(sequence, tf.float32)
    code = tf.cast(tf.argmax(hot, axis=-1), tf.uint8)
    return tf.where(tf.reduce_sum(hot, axis=-1) > 0, code, tf.constant(4, tf.uint8))


def _pairify(ds, allowed, train_index, shuffle, seed, region_buffer, keep=None):
    """Region records -> unbatched pairs ``{codes, context, accessible, mean}`` with each region
    paired with the contexts ``allowed`` (int32 indices); ``keep`` 1 or 0: only its positive or
    only its negative pairs."""
    import tensorflow as tf

    allowed_t = tf.constant(allowed, tf.int32)
    train_t = tf.constant(train_index, tf.int32)
    k = len(allowed)
    if shuffle:
        ds = ds.shuffle(region_buffer, seed=seed, reshuffle_each_iteration=True)

    def pair(rec):
        codes = _codes(rec["sequence"])
        labels = tf.cast(rec[LABEL], tf.float32)
        mean = tf.reduce_mean(tf.gather(labels, train_t))
        out = {"codes": tf.tile(codes[None], [k, 1]), "context": allowed_t,
               "accessible": tf.gather(labels, allowed_t), "mean": tf.fill([k], mean)}
        if "index" in rec:
            out["index"] = tf.fill([k], tf.cast(rec["index"], tf.int64))
        if keep is not None:
            chosen = tf.equal(out["accessible"] > 0.5, bool(keep))
            out = {key: tf.boolean_mask(v, chosen) for key, v in out.items()}
        return out

    return ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def _finish(table, mean, with_context, rc=False, seed=0):
    """Pairs (batched or not) -> model examples; sequence one-hot float32 (N all zero).
    ``rc``: reverse complement each example with probability 1/2 (batched input only; from
    ``(seed, batch number)``)."""
    import tensorflow as tf

    table_t = tf.constant(table)
    complement = tf.constant([3, 2, 1, 0, 4], tf.int32)

    def finish(i, p):
        codes = tf.cast(p["codes"], tf.int32)
        if rc:
            flip = tf.random.stateless_uniform(tf.shape(codes)[:1], seed=tf.stack([tf.cast(seed, tf.int64), i])) < 0.5
            codes = tf.where(flip[:, None], tf.reverse(tf.gather(complement, codes), axis=[1]), codes)
        out = {"sequence": tf.one_hot(codes, 4, dtype=tf.float32), "expression": tf.gather(table_t, p["context"])}
        if mean:
            out["mean_accessibility"] = p["mean"][..., None]
        out["accessible"] = p["accessible"][..., None]
        if with_context:
            out["context"] = p["context"]
            if "index" in p:
                out["index"] = p["index"]
        return out

    return finish


def balance(ds, positive_fraction=0.25, label="accessible", seed=0, repeat_negatives=False):
    """Class-balanced stream: unbatched examples reordered so that every run of ``b`` examples
    holds exactly ``a`` positives (``label`` > 0.5), ``a / b = positive_fraction`` (as a fraction
    with ``b <= 64``: 0.25 is 1 in 4), so any batch of a multiple of ``b`` examples is exactly
    balanced (ChromDragoNN: 1 positive to 3 negatives). Positives are drawn again and again
    (upsampled); negatives once each, and the stream ends when they run out (unless
    ``repeat_negatives``). ``seed`` places the positives inside each run."""
    from fractions import Fraction

    import tensorflow as tf

    frac = Fraction(positive_fraction).limit_denominator(64)
    a, b = frac.numerator, frac.denominator
    if not 0 < a < b:
        raise InputError(f"positive_fraction must be in (0, 1), got {positive_fraction}")
    slots = np.ones(b, np.int64)  # 1: a negative
    slots[np.random.default_rng(seed).choice(b, a, replace=False)] = 0  # 0: a positive

    def positive(x):
        return tf.reshape(x[label], [-1])[0] > 0.5

    pos = ds.filter(positive).repeat()
    neg = ds.filter(lambda x: tf.logical_not(positive(x)))
    if repeat_negatives:
        neg = neg.repeat()
    choice = tf.data.Dataset.from_tensor_slices(tf.constant(slots)).repeat()
    return tf.data.Dataset.choose_from_datasets([pos, neg], choice, stop_on_empty_dataset=True)


def _region_records(spec, split, repeat=False):
    """Region records of one split as ``{sequence: (L,) uint8 codes, labels: (C,), index}``, or None
    when the split has no records."""
    import tensorflow as tf

    from basenji_tk.data import records

    files = records.split_files(spec.path, split)
    if not files:
        return None
    n = len(pairs_info(spec)["contexts"])
    keys = {"sequence": tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.string),
            "index": tf.io.FixedLenFeature([], tf.int64)}

    def parse(raw):
        ex = tf.io.parse_single_example(raw, keys)
        return {"sequence": tf.io.decode_raw(ex["sequence"], tf.uint8),
                LABEL: tf.ensure_shape(tf.io.decode_raw(ex[LABEL], tf.uint8), [n]), "index": ex["index"]}

    ds = tf.data.TFRecordDataset(files, compression_type=records.COMPRESSION)
    if repeat:
        ds = ds.repeat()
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def expand(spec, split, shuffle=False, shuffle_buffer=1024, seed=0, repeat=False, with_index=False, fold=None,
           mean=True, positive_fraction=None, pair_buffer=None, region_ds=None, batch_size=None, rc=False):
    """Unbatched (region, context) examples of ``split`` from a pairs dataset's region records.

    A pair's split is the later of its region's and its context's in fold ``fold`` (default 0),
    so the regions of every split not later than ``split`` are read (:func:`region_splits`).
    Yields dicts: ``sequence`` (L, 4) float32 one-hot (N all zero), ``expression`` (F,) (the
    context's row of the context table), ``mean_accessibility`` (1,) (with ``mean``: the fraction
    of the fold's TRAINING contexts where the region is accessible; leak-free), ``accessible``
    (1,) and, ``with_index``, ``index`` (the region's row in ``sequences.bed``) and ``context``
    (its index into ``pairs.contexts``). ``shuffle``: regions (buffer ``shuffle_buffer``) and then
    pairs (``pair_buffer``, default 8 x that) shuffled with ``seed``; the same seed gives the same
    order. ``repeat``: endless. ``positive_fraction``: class-balanced (:func:`balance`; 0.25 is
    ChromDragoNN's 1:3), for batches of a multiple of 4. ``region_ds``: ``{region split:
    tf.data.Dataset}`` to use instead of reading ``spec.path`` (records with ``sequence`` as
    codes or one-hot and ``labels``).

    ``batch_size`` (the fast path, about 10x the examples/s of batching the unbatched stream):
    batches are made from uint8 codes and one-hot encoded and gathered whole; with
    ``positive_fraction`` each batch holds exactly ``round(positive_fraction * batch_size)``
    positives (kept apart from the start, so no per-example filtering); ``rc`` reverse
    complements each example with probability 1/2 (seeded).
    """
    import tensorflow as tf

    if split not in RANK:
        raise InputError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    fold = 0 if fold is None else int(fold)
    info = pairs_info(spec)
    names = info["contexts"]
    splits = fold_splits(spec, fold)
    train_index = np.array([i for i, n in enumerate(names) if splits[n] == "train"], np.int32)
    table = context_table(spec)
    counts = getattr(spec, "counts", {}) or {}
    if rc and not batch_size:
        raise InputError("pairs.expand: rc needs batch_size (records.augment reverse complements unbatched examples)")

    def stream(keep=None, buffer=None):
        parts, weights = [], []
        for r_split in region_splits(split):
            allowed = pair_contexts(r_split, splits, split, names)
            if not len(allowed):
                continue
            ds = region_ds.get(r_split) if region_ds is not None else _region_records(spec, r_split, repeat)
            if ds is None:
                continue
            parts.append(_pairify(ds, allowed, train_index, shuffle, seed + RANK[r_split], shuffle_buffer, keep))
            weights.append(max(1, counts.get(r_split, 1)) * len(allowed))
        if not parts:
            raise InputError(f"{spec.path}: no {split} pairs in fold {fold} (no {split} regions or contexts)")
        if shuffle and len(parts) > 1:
            ds = tf.data.Dataset.sample_from_datasets(parts, [w / sum(weights) for w in weights], seed=seed)
        else:
            ds = parts[0]
            for p in parts[1:]:
                ds = ds.concatenate(p)
        if shuffle:
            ds = ds.shuffle(buffer or pair_buffer or 8 * shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return ds

    finish = _finish(table, mean, with_index, rc, seed)
    if not batch_size:
        ds = stream()
        if positive_fraction:
            ds = balance(ds, positive_fraction, "accessible", seed, repeat_negatives=repeat)
        return ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    if positive_fraction:
        n_pos = int(round(positive_fraction * batch_size))
        if not 0 < n_pos < batch_size:
            raise InputError(f"positive_fraction {positive_fraction} of batch_size {batch_size} leaves {n_pos} "
                             f"positives; expected between 1 and {batch_size - 1}")
        buffer = pair_buffer or 8 * shuffle_buffer
        pos = stream(1, max(256, int(buffer * positive_fraction))).repeat()
        neg = stream(0, buffer)
        both = tf.data.Dataset.zip(pos.batch(n_pos, drop_remainder=True),
                                   neg.batch(batch_size - n_pos, drop_remainder=True))

        def join(i, pn):
            order = tf.random.experimental.stateless_shuffle(tf.range(batch_size),
                                                             seed=tf.stack([tf.cast(seed, tf.int64), i]))
            return tf.nest.map_structure(lambda a, b: tf.gather(tf.concat([a, b], 0), order), *pn)

        ds = both.enumerate().map(join, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = stream().batch(batch_size)
    return ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- the regions view (stage 1)
REGION_LABELS = "training_contexts"


def region_features(spec, fold=None) -> list:
    """The features of the regions view of a pairs dataset: ``sequence`` and ``training_contexts``,
    the region's 0/1 labels in the fold's TRAINING contexts only (``(C_train,)``), for ChromDragoNN's
    stage 1 (a multitask sequence model over the training contexts, with no test context in sight)."""
    from basenji_tk.data import records

    info = pairs_info(spec)
    splits = fold_splits(spec, 0 if fold is None else int(fold))
    names = tuple(n for n in info["contexts"] if splits[n] == "train")
    return [records.Feature("sequence", "sequence", (info["seq_length"], 4), "uint8", resolution=1),
            records.Feature(REGION_LABELS, "label", (len(names),), "float32", names=names, label_type="binary",
                            meta={"threshold": info["threshold"], "bin_length": info["bin_length"]})]


def regions_view(spec, split, shuffle=False, shuffle_buffer=1024, seed=0, repeat=False, with_index=False,
                 fold=None):
    """Unbatched region examples of the genome split ``split``: ``{sequence (L, 4) one-hot,
    training_contexts (C_train,)}`` (:func:`region_features`)."""
    import tensorflow as tf

    info = pairs_info(spec)
    splits = fold_splits(spec, 0 if fold is None else int(fold))
    keep = tf.constant([i for i, n in enumerate(info["contexts"]) if splits[n] == "train"], tf.int32)
    ds = _region_records(spec, split, repeat=False)
    if ds is None:
        raise InputError(f"{spec.path}: no region records in the {split} split")
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def one(rec):
        out = {"sequence": tf.one_hot(tf.cast(rec["sequence"], tf.int32), 4, dtype=tf.float32),
               REGION_LABELS: tf.cast(tf.gather(rec[LABEL], keep), tf.float32)}
        if with_index:
            out["index"] = rec["index"]
        return out

    return ds.map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def count(spec, split, fold=None, positives=False) -> int:
    """How many (region, context) pairs ``split`` holds in fold ``fold`` (the split rule of
    :func:`expand`); with ``positives``, how many of them are accessible."""
    info = pairs_info(spec)
    names = info["contexts"]
    splits = fold_splits(spec, 0 if fold is None else int(fold))
    total = 0
    for r in region_splits(split):
        allowed = pair_contexts(r, splits, split, names)
        total += (sum(info["positives"][names[c]][r] for c in allowed) if positives
                  else spec.counts.get(r, 0) * len(allowed))
    return total
