"""The contexts of a region x context pairs dataset (ChromDragoNN): the contexts table (one
peak BED per context), the context table (contexts x features, e.g. log TPM of TFs), and the
contexts' splits and folds, with the rule that gives each (region, context) pair its split.

Split rule: every region has a genome split (whole chunks or listed chromosomes, as
``make_targets.py``) and every context a context split (per fold). A pair's split is the LATER
of the two, in the order train < valid < test, so nothing in valid or test is seen in
training on either axis: train pairs are train regions x train contexts; valid pairs are
valid regions x (train + valid) contexts and train regions x valid contexts; test pairs are
everything with a test region or a test context.

The pairs dataset itself is built by :mod:`basenji_tk.data.pairs` and read by
:mod:`basenji_tk.data.pairs_views`.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np

from basenji_tk.io import genome as gn
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

SPLITS = tg.SPLITS
RANK = {s: i for i, s in enumerate(SPLITS)}
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


FEATURE_HEADERS = ("tf", "feature", "gene")


def read_feature_list(path) -> list[str]:
    """A list of feature names (e.g. the paper's 1,630 TFs): one per line, or the first column of a
    TSV whose header's first cell is ``tf``, ``feature`` or ``gene`` (any case). Blank lines and
    ``#`` lines are skipped; a name given twice is kept once (with a warning)."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"--features {path}: feature list not found")
    names, seen, twice = [], set(), []
    for k, (_, fields) in enumerate(gn.table_lines(path)):
        name = fields[0].strip()
        if k == 0 and name.lower() in FEATURE_HEADERS:
            continue
        if not name:
            continue
        if name in seen:
            twice.append(name)
            continue
        seen.add(name)
        names.append(name)
    if not names:
        raise InputError(f"--features {path}: no feature names in the file")
    if twice:
        log.warning(f"warning: --features {path}: {len(twice)} name(s) given twice, kept once: {', '.join(twice[:5])}")
    return names


def select_features(features, values, wanted, table_path, list_path):
    """Keep the columns of ``values`` ``(C, F)`` named in ``wanted``, in ``wanted``'s order ->
    ``(features, values (C, F') float32, record)``.

    A name matches a column exactly, else case-insensitively when that is unambiguous (``JUND``
    finds ``JunD``). No match at all is one :class:`InputError` naming both files; some missing
    is a warning saying how many and which. ``record`` (for statistics.json): the list's path,
    how many names it asks for, how many were kept, and the missing ones."""
    exact = {f: j for j, f in enumerate(features)}
    folded = {}
    for j, f in enumerate(features):
        folded.setdefault(f.lower(), []).append(j)
    cols, missing, by_case = [], [], 0
    for name in wanted:
        if name in exact:
            cols.append(exact[name])
        elif len(folded.get(name.lower(), [])) == 1:
            cols.append(folded[name.lower()][0])
            by_case += 1
        else:
            missing.append(name)
    if not cols:
        some = ", ".join(list(wanted)[:5]) + (" ..." if len(wanted) > 5 else "")
        have = ", ".join(list(features)[:5]) + (" ..." if len(features) > 5 else "")
        raise InputError(f"--features {list_path}: none of its {len(wanted)} names is a column of the context "
                         f"table {table_path} (the list has: {some}; the table has: {have})")
    if len(set(cols)) < len(cols):
        dup = sorted({features[j] for j in cols if cols.count(j) > 1})
        raise InputError(f"--features {list_path}: names {', '.join(dup[:5])} match the same column of {table_path} "
                         "(they differ only in case)")
    if missing:
        log.warning(f"warning: --features {list_path}: {len(missing)} of {len(wanted)} names are not columns of "
                    f"{table_path} and are left out: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if by_case:
        log.info(f"--features {list_path}: {by_case} name(s) matched a column only when case is ignored")
    record = {"source": os.path.abspath(str(list_path)), "requested": len(wanted), "kept": len(cols),
              "matched_ignoring_case": by_case, "missing": missing}
    return [features[j] for j in cols], np.ascontiguousarray(values[:, cols], dtype=np.float32), record


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
