"""Tables -> datasets: sequences given one per row (MPRA-style oligo tables).

A table is CSV/TSV with a header, or FASTA (one record per entry, ``KEY=VALUE`` header words as
columns; read by :mod:`basenji_tk.io.tabular`). A row gives one sequence (a sequence column, or
chrom/start/end read from a genome), tasks (each one channel of the ``activity`` label: one
column, the mean of replicate columns (MPRA M5), or the mean over replicates of an activity from
RNA/DNA count columns (M3)) and optionally a ``weight`` (a column, or replicate agreement, M11);
the tasks, their formulas and the weight are :mod:`basenji_tk.data.table_tasks`'.

A sequence goes into a record of fixed length (``frame``, ``length``, or the longest/first
sequence): at its offset in a frame (an offset column: the MPRA paper's 145 bp tiles in a 295 bp
frame, M7), or padded left/right/centre (the odd base on the right), or refused; padding is the N
code 4, an all-zero one-hot row. Splits: a split column, or fractions dealt by ``seed`` per row or
per group (the tiles of one region share a split). Every bad input is one :class:`InputError`
naming ``FILE:LINE`` and the column. The functions take and return numpy arrays;
:func:`build_table_dataset` writes the folder through :class:`basenji_tk.data.records.DatasetWriter`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

import numpy as np

from basenji_tk.data import dna
from basenji_tk import files
from basenji_tk.io.tabular import Table, parse_numbers, read_table
from basenji_tk.data.table_tasks import (COUNTS_FORMULA, DISTANCE, agreement_weight, counts_activity,
                                         replicate_distance, replicate_mean, replicate_pearson)
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

KIND = "table"
PAD_MODES = ("refuse", "center", "left", "right")
SPLITS = ("train", "valid", "test")
_BAD_BASE = re.compile(r"[^ACGTNacgtn]")


# ----------------------------------------------------------------------------- settings
@dataclass
class TableOptions:
    """What ``make_table.py`` takes besides the paths (see its ``--help``)."""

    tasks: tuple = ()  # Task
    sequence_column: str | None = None  # default: 'sequence' or 'seq' when the header has it
    coords: tuple | None = None  # (chrom, start, end) column names; default when no sequence column
    name_column: str | None = None  # default: 'name' when the header has it, else row<LINE>
    weight_column: str | None = None
    replicate_weight: bool = False
    frame: int | None = None
    offset_column: str | None = None
    length: int | None = None
    pad: str = "refuse"
    valid: float = 0.1
    test: float = 0.1
    seed: int = 0
    group_column: str | None = None
    split_column: str | None = None
    drop_missing: bool = False
    sep: str | None = None  # None: tab when the header line holds a tab, else comma
    description: str = ""
    records_per_file: int = 256
    force: bool = False
    progress: bool = False


def check_options(o: TableOptions) -> None:
    if not o.tasks:
        raise InputError("no tasks: give --activity, --replicates or --counts columns")
    names = [t.name for t in o.tasks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"task name {dup[0]!r} is given twice; name each task once")
    if o.pad not in PAD_MODES:
        raise InputError(f"--pad must be one of {', '.join(PAD_MODES)}, got {o.pad!r}")
    for opt in ("frame", "length", "records_per_file"):
        v = getattr(o, opt)
        if v is not None and v <= 0:
            raise InputError(f"--{opt} must be a positive integer, got {v}")
    if o.frame and o.length and o.frame != o.length:
        raise InputError(f"--length {o.length} and --frame {o.frame} disagree; give one")
    if o.offset_column and not o.frame:
        raise InputError(f"--offset_column {o.offset_column}: needs --frame (the length of the padded frame)")
    if o.weight_column and o.replicate_weight:
        raise InputError("give --weight_column or --replicate_weight, not both")
    if o.replicate_weight and not any(t.replicates > 1 for t in o.tasks):
        raise InputError("--replicate_weight: no task has 2 or more replicates")
    if o.split_column and o.group_column:
        raise InputError("give --split_column or --group_column, not both")
    for opt in ("valid", "test"):
        if not 0 <= getattr(o, opt) < 1:
            raise InputError(f"--{opt} must be a fraction in [0, 1), got {getattr(o, opt)}")
    if o.valid + o.test >= 1:
        raise InputError(f"--valid {o.valid} + --test {o.test} leave no training rows")


# ----------------------------------------------------------------------------- frames, splits
def pad_offset(n: int, length: int, pad: str) -> int | None:
    """Where a sequence of ``n`` bp starts in a record of ``length``: None when refused."""
    if n == length:
        return 0
    if n > length or pad == "refuse":
        return None
    return {"left": 0, "right": length - n, "center": (length - n) // 2}[pad]


def place(codes: np.ndarray, length: int, offset: int) -> np.ndarray:
    """Integer codes ``(n,)`` -> ``(length,)`` uint8 with the codes at ``[offset, offset+n)`` and
    N (4, an all-zero one-hot row) elsewhere. The caller checks ``0 <= offset <= length - n``."""
    out = np.full(length, dna.N_CODE, dtype=np.uint8)
    out[offset:offset + len(codes)] = codes
    return out


def assign_splits(groups, valid: float, test: float, seed: int) -> np.ndarray:
    """Split names ``(n,)`` for rows with group keys ``groups`` ``(n,)``: whole groups, shuffled
    by ``seed``, go to the held-out split furthest below its share of the rows (valid, test)
    while that split still needs at least half the group; each held-out share above 0 gets one
    group at least; the rest is train."""
    groups = list(groups)
    keys = list(dict.fromkeys(groups))
    size = {}
    for g in groups:
        size[g] = size.get(g, 0) + 1
    split_of = {k: "train" for k in keys}
    shares = {s: f for s, f in (("valid", valid), ("test", test)) if f > 0}
    if shares:
        goal = {s: f * len(groups) for s, f in shares.items()}
        got = {s: 0 for s in shares}
        for i in np.random.default_rng(seed).permutation(len(keys)):
            k = keys[i]
            s = max(shares, key=lambda s: goal[s] - got[s])
            need = goal[s] - got[s]
            if need >= size[k] / 2 or (got[s] == 0 and need > 0):
                split_of[k] = s
                got[s] += size[k]
    return np.array([split_of[g] for g in groups], dtype=object)


# ----------------------------------------------------------------------------- the table -> arrays
@dataclass
class TableRecords:
    """Everything a table dataset holds, as arrays (rows in table order)."""

    codes: np.ndarray  # (n, L) uint8
    activity: np.ndarray  # (n, T) float64: the replicate means
    replicates: list  # per task (n, R_t) float64
    weight: np.ndarray | None  # (n,) or None
    split: np.ndarray  # (n,) object: train/valid/test
    bed: list  # per row (chrom, start, end, name)
    lines: np.ndarray  # (n,) line numbers in the table
    offsets: np.ndarray  # (n,) where each sequence starts in its record
    lengths: np.ndarray  # (n,) each sequence's own length
    dropped: list  # line numbers dropped for missing values (--drop_missing)
    from_genome: bool


def _opt_column(table, given, defaults):
    if given:
        return given
    return next((d for d in defaults if d in table.index), None)


def _sequences(table: Table, o: TableOptions, genome):
    """``(sequences, bed rows, from_genome)``; a bed row is (chrom, start, end, name) for genome
    rows, (name, 0, length) for sequences given in the table."""
    seq_col = _opt_column(table, o.sequence_column, ("sequence", "seq"))
    name_col = _opt_column(table, o.name_column, ("name",))
    names = table.values(name_col, "--name_column") if name_col else [f"row{line}" for line in table.lines]
    for (lineno, _), name in zip(table.rows, names):
        if not name or any(c.isspace() for c in name):
            raise InputError(f"{where(table.path, lineno)}: column {name_col!r} (--name_column) is {name!r}; "
                             "expected a name without spaces")
    if seq_col and not o.coords:
        seqs = table.values(seq_col, "--sequence_column")
        for (lineno, _), s in zip(table.rows, seqs):
            bad = _BAD_BASE.search(s)
            if bad or not s:
                what = f"bad base {bad.group()!r} at position {bad.start() + 1}" if bad else "an empty sequence"
                raise InputError(f"{where(table.path, lineno)}: column {seq_col!r} has {what}; expected A, C, G, T or N")
        return seqs, [(n, 0, len(s)) for s, n in zip(seqs, names)], False
    coords = o.coords or ("chrom", "start", "end")
    if genome is None:
        raise InputError(f"{table.path}: no sequence column (--sequence_column) and no --fasta to read "
                         f"{'/'.join(coords)} from")
    cols = [table.column(c, "--coords") for c in coords]
    from basenji_tk.io import genome as gn

    lookup = gn.chrom_lookup(genome.chroms)
    seqs, bed, renamed = [], [], {}
    for (lineno, fields), name in zip(table.rows, names):
        chrom_text, s_text, e_text = (fields[j] for j in cols)
        chrom = lookup(chrom_text)
        if chrom is not None and chrom != chrom_text:
            renamed.setdefault(f"{chrom_text}->{chrom}", lineno)
        if chrom is None:
            raise InputError(f"{where(table.path, lineno)}: column {coords[0]!r}: chromosome {chrom_text!r} is not "
                             f"in {genome.path} ({', '.join(genome.chroms[:5])})")
        try:
            start, end = int(s_text), int(e_text)
        except ValueError:
            raise InputError(f"{where(table.path, lineno)}: columns {coords[1]!r}/{coords[2]!r}: expected integers, "
                             f"got {s_text!r} {e_text!r}") from None
        if not 0 <= start < end <= genome.sizes[chrom]:
            raise InputError(f"{where(table.path, lineno)}: columns {coords[1]!r}/{coords[2]!r}: [{start}, {end}) is "
                             f"not inside {chrom} (0-{genome.sizes[chrom]}); expected 0 <= start < end <= size")
        seqs.append(genome.fetch(chrom, start, end))
        bed.append((chrom, start, end, name))
    if renamed:
        log.warning(f"warning: {table.path}: chromosome names normalised to the FASTA's: {', '.join(renamed)}")
    return seqs, bed, True


def _task_values(table: Table, o: TableOptions):
    """Per task ``(n, R)`` raw values (counts: (n, R, 2) RNA/DNA) with NaN for missing."""
    out = []
    for t in o.tasks:
        opt = "--counts" if t.source == "counts" else "--activity/--replicates"
        if t.source == "counts":
            vals = [[parse_numbers(table, c, f"{opt} {t.name}", o.drop_missing, nonnegative=True) for c in pair]
                    for pair in t.columns]
            out.append(np.stack([np.stack(p, axis=-1) for p in vals], axis=1))
        else:
            out.append(np.stack([parse_numbers(table, c, f"{opt} {t.name}", o.drop_missing) for c in t.columns],
                                axis=1))
    return out


def _keep(table: Table, raw: list, extra: list) -> np.ndarray:
    ok = np.ones(len(table.rows), dtype=bool)
    for a in raw + extra:
        ok &= ~np.isnan(a.reshape(len(ok), -1)).any(axis=1)
    return ok


def table_records(table: Table, o: TableOptions, genome=None) -> TableRecords:
    """Check and compute a table's records (no files written). ``genome``: a
    :class:`basenji_tk.io.genome.Genome` for chrom/start/end rows."""
    check_options(o)
    # every named column first, so an unknown column is reported before any row
    for t in o.tasks:
        for c in t.column_names():
            table.column(c, f"--{'counts' if t.source == 'counts' else 'activity/--replicates'} {t.name}")
    for opt in ("sequence_column", "name_column", "weight_column", "offset_column", "group_column", "split_column"):
        if getattr(o, opt):
            table.column(getattr(o, opt), f"--{opt}")
    for c in o.coords or ():
        table.column(c, "--coords")

    raw = _task_values(table, o)
    weight_col = (parse_numbers(table, o.weight_column, "--weight_column", o.drop_missing, nonnegative=True)
                  if o.weight_column else None)
    ok = _keep(table, raw, [weight_col] if weight_col is not None else [])
    dropped = [int(x) for x in table.lines[~ok]]
    if dropped:
        log.info(f"{table.path}: dropped {len(dropped)} row(s) with missing values (first: line {dropped[0]})")
        table = Table(table.path, table.header, [r for r, k in zip(table.rows, ok) if k], table.header_line)
        raw = [a[ok] for a in raw]
        weight_col = weight_col[ok] if weight_col is not None else None
        if not table.rows:
            raise InputError(f"{table.path}: every row has a missing value")

    replicates = []
    for t, a in zip(o.tasks, raw):
        if t.source == "counts":
            a = np.stack([counts_activity(a[:, r, 0], a[:, r, 1]) for r in range(a.shape[1])], axis=1)
        replicates.append(a)
    activity = np.stack([replicate_mean(a) for a in replicates], axis=1)
    weight = weight_col
    if o.replicate_weight:
        weight = agreement_weight(replicate_distance(replicates))

    seqs, bed, from_genome = _sequences(table, o, genome)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    length = o.frame or o.length or (int(lengths.max()) if o.pad != "refuse" else int(lengths[0]))
    what = "the frame (--frame)" if o.frame else "the record length (--length)" if o.length else \
        "the longest sequence" if o.pad != "refuse" else f"the first sequence's length (line {table.rows[0][0]})"
    seq_col = "sequence" if not from_genome else "/".join(o.coords or ("chrom", "start", "end"))
    offsets = np.zeros(len(seqs), dtype=np.int64)
    if o.offset_column:
        offset_text = table.values(o.offset_column, "--offset_column")
    for i, (lineno, _) in enumerate(table.rows):
        n = lengths[i]
        if n > length:
            raise InputError(f"{where(table.path, lineno)}: column {seq_col!r}: the sequence is {n} bp, longer than "
                             f"{what} of {length} bp")
        if o.offset_column:
            text = offset_text[i]
            try:
                off = int(text)
            except ValueError:
                raise InputError(f"{where(table.path, lineno)}: column {o.offset_column!r} (--offset_column) is "
                                 f"{text!r}; expected an integer offset") from None
            if not 0 <= off <= length - n:
                raise InputError(f"{where(table.path, lineno)}: column {o.offset_column!r} (--offset_column): offset "
                                 f"{off} puts the {n} bp sequence outside the {length} bp frame; expected 0 to {length - n}")
        else:
            off = pad_offset(int(n), length, o.pad)
            if off is None:
                raise InputError(f"{where(table.path, lineno)}: column {seq_col!r}: the sequence is {n} bp, not "
                                 f"{what} of {length} bp; pass --pad center|left|right to pad it")
        offsets[i] = off
    codes = np.stack([place(dna.encode(s), length, int(off)) for s, off in zip(seqs, offsets)])

    if o.split_column:
        split = np.array(table.values(o.split_column, "--split_column"), dtype=object)
        for (lineno, _), s in zip(table.rows, split):
            if s not in SPLITS:
                raise InputError(f"{where(table.path, lineno)}: column {o.split_column!r} (--split_column) is {s!r}; "
                                 "expected train, valid or test")
    else:
        groups = table.values(o.group_column, "--group_column") if o.group_column else list(range(len(table.rows)))
        split = assign_splits(groups, o.valid, o.test, o.seed)
    return TableRecords(codes, activity, replicates, weight, split, bed, table.lines, offsets, lengths, dropped,
                        from_genome)


# ----------------------------------------------------------------------------- the dataset folder
def features(o: TableOptions, length: int, weighted: bool) -> list:
    """The dataset's features: ``sequence`` (length, 4), ``activity`` (T,) and maybe ``weight``."""
    from basenji_tk.data import records

    label_meta = {"label": "mean of the replicates of each task", "tasks": [t.to_json() for t in o.tasks]}
    if any(t.source == "counts" for t in o.tasks):
        label_meta["counts_formula"] = COUNTS_FORMULA + " per replicate, sums over all rows kept"
    out = [records.Feature("sequence", "sequence", (length, 4), dtype="uint8", resolution=1,
                           meta={"padding": "N (all-zero one-hot)", "frame": o.frame,
                                 "offset_column": o.offset_column, "pad": o.pad}),
           records.Feature("activity", "label", (len(o.tasks),), dtype="float32", label_type="regression",
                           names=tuple(t.name for t in o.tasks), meta=label_meta)]
    if weighted:
        meta = ({"source": "replicate agreement", "distance": DISTANCE} if o.replicate_weight
                else {"source": f"column {o.weight_column}"})
        out.append(records.Feature("weight", "weight", (), dtype="float32", meta=meta))
    return out


def build_table_dataset(table_path, out_dir, options: TableOptions, fasta=None) -> dict:
    """Read ``table_path`` (and ``fasta`` for chrom/start/end rows), write the dataset folder
    ``out_dir`` (kind ``table``); returns its statistics. Training rows are written in an order
    shuffled by ``seed`` (neighbouring tiles are near copies); valid and test in table order."""
    from basenji_tk.files import file_sha256

    o = options
    check_options(o)
    out_dir = os.path.abspath(str(out_dir))
    table = read_table(table_path, o.sep)
    from basenji_tk.io import genome as gn

    genome = gn.Genome(fasta) if fasta else None
    try:
        with files.claim(out_dir, folder=False):
            if os.path.exists(out_dir) and os.listdir(out_dir) and not o.force:
                raise InputError(f"{out_dir}: already exists; choose another -o or pass --force to replace it")
            rec = table_records(table, o, genome)
            from basenji_tk.data import records  # TensorFlow only once the table looks right
            settings = {k: v for k, v in vars(o).items() if k not in ("force", "progress", "tasks")}
            settings["tasks"] = [t.to_json() for t in o.tasks]
            settings["length"] = int(rec.codes.shape[1])
            order = np.arange(len(rec.split))
            train = order[rec.split == "train"]
            train = train[np.random.default_rng(o.seed).permutation(len(train))]
            order = np.concatenate([train, order[rec.split == "valid"], order[rec.split == "test"]])
            feats = features(o, rec.codes.shape[1], rec.weight is not None)
            from tqdm import tqdm

            with records.DatasetWriter(out_dir, feats, kind=KIND, records_per_file=o.records_per_file) as w:
                for i in tqdm(order, desc="records", unit="rec", disable=not o.progress):
                    values = {"sequence": rec.codes[i], "activity": rec.activity[i].astype(np.float32)}
                    if rec.weight is not None:
                        values["weight"] = np.float32(rec.weight[i])
                    w.add(str(rec.split[i]), values, rec.bed[i])
                info = {
                    "description": o.description,
                    "semi_synthetic": "SEMI-SYNTHETIC" in f"{os.path.basename(str(table_path))} {o.description}".upper(),
                    "settings": settings,
                    "files": {"table": {"path": os.path.abspath(str(table_path)),
                                        "sha256": file_sha256(table_path)}},
                    "table": {"rows": len(rec.split) + len(rec.dropped), "dropped_missing": len(rec.dropped),
                              "dropped_lines": rec.dropped[:100], "from_genome": rec.from_genome,
                              "bed_rows": "(name, 0, length) for sequences from the table, (chrom, start, end, name) from the "
                                          "genome; name: the name column, else row<LINE>"},
                    "replicate_pearson": {t.name: replicate_pearson(r) for t, r in zip(o.tasks, rec.replicates)
                                          if t.replicates > 1},
                }
                if genome is not None:
                    info["files"]["genome"] = {"path": os.path.abspath(genome.path)}
                stats = w.finish(info)
    finally:
        if genome is not None:
            genome.close()
    log.info(f"wrote {out_dir}: {len(rec.split)} records ({', '.join(f'{s} {int((rec.split == s).sum())}' for s in SPLITS)})")
    return stats
