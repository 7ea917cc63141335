"""Tabular files: CSV/TSV with a header line (plain or gzip), or FASTA read as a table (one row
per record, ``KEY=VALUE`` header words as columns); rows keep their line numbers, so every bad
value is one :class:`InputError` naming ``FILE:LINE`` and the column. Table datasets are built
from them by :mod:`basenji_tk.data.tables`.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError, where

MISSING = frozenset({"", "na", "nan", "none", "null", "."})


# ----------------------------------------------------------------------------- reading
@dataclass
class Table:
    """A table's header and rows: ``rows[i]`` is ``(line number, fields)``; ``header_line`` is
    the header's line number (FASTA: 0, the columns come from the record headers)."""

    path: str
    header: list
    rows: list
    header_line: int = 1
    index: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {}
        for i, name in enumerate(self.header):
            if name in self.index:
                raise InputError(f"{where(self.path, self.header_line)}: column {name!r} appears twice in the header")
            self.index[name] = i

    def column(self, name: str, option: str) -> int:
        """Index of column ``name``, or an :class:`InputError` naming the option and the header."""
        if name not in self.index:
            shown = ", ".join(self.header[:12]) + (" ..." if len(self.header) > 12 else "")
            raise InputError(f"{where(self.path, self.header_line)}: no column {name!r} ({option}); "
                             f"the header has: {shown}")
        return self.index[name]

    def values(self, name: str, option: str) -> list:
        j = self.column(name, option)
        return [fields[j] for _, fields in self.rows]

    @property
    def lines(self) -> np.ndarray:
        return np.array([line for line, _ in self.rows], dtype=np.int64)


def _open_text(path):
    if not os.path.exists(path):
        raise InputError(f"{path}: table file not found")
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt", newline="") if magic == b"\x1f\x8b" else open(path, "rt", newline="")


def read_table(path, sep=None) -> Table:
    """A CSV/TSV file with a header line, or a FASTA file (first character ``>``).

    Blank lines, comment lines before the header (``# ...``, ``##...``) and lines starting with
    ``#`` after it are skipped; one ``#`` in front of the header (``#chrom``) is dropped. FASTA: each record is a row with columns ``name`` (the header's first
    word) and ``sequence``, plus one column per ``KEY=VALUE`` word on the header line."""
    path = str(path)
    with _open_text(path) as fh:
        try:
            text = fh.read()
        except (UnicodeDecodeError, OSError) as err:
            raise InputError(f"{path}: not a text table ({err})") from None
    if text.lstrip().startswith(">"):
        return _read_fasta(path, text)
    lines = text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.strip() and not line.startswith(("# ", "##"))), None)
    if first is None:
        raise InputError(f"{path}: the table is empty; expected a header line")
    head = lines[first].lstrip("#")
    delim = sep or ("\t" if "\t" in head else ",")
    header = [h.strip() for h in next(csv.reader([head], delimiter=delim))]
    if any(not h for h in header):
        raise InputError(f"{where(path, first + 1)}: the header has an empty column name")
    rows = []
    reader = csv.reader(io.StringIO("".join(lines[first + 1:])), delimiter=delim)
    for fields in reader:
        lineno = first + 1 + reader.line_num
        if not fields or (len(fields) == 1 and not fields[0].strip()) or fields[0].startswith("#"):
            continue
        if len(fields) != len(header):
            raise InputError(f"{where(path, lineno)}: {len(fields)} fields, the header has {len(header)} "
                             f"(separator {'tab' if delim == chr(9) else repr(delim)})")
        rows.append((lineno, [f.strip() for f in fields]))
    if not rows:
        raise InputError(f"{path}: the table has a header but no rows")
    return Table(path, header, rows, first + 1)


def _read_fasta(path, text) -> Table:
    records, keys = [], ["name", "sequence"]
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            words = line[1:].split()
            if not words:
                raise InputError(f"{where(path, lineno)}: a FASTA header without a name")
            extra = {}
            for w in words[1:]:
                k, eq, v = w.partition("=")
                if eq and k:
                    extra[k] = v
                    if k not in keys:
                        keys.append(k)
            records.append([lineno, {"name": words[0], **extra}, []])
        elif not records:
            raise InputError(f"{where(path, lineno)}: sequence before the first '>' header")
        else:
            records[-1][2].append(line)
    rows = []
    for lineno, cols, parts in records:
        cols["sequence"] = "".join(parts)
        rows.append((lineno, [cols.get(k, "") for k in keys]))
    return Table(path, keys, rows, header_line=0) if rows else Table(path, keys, [], 0)


# ----------------------------------------------------------------------------- columns
def parse_numbers(table: Table, name: str, option: str, allow_missing=False, nonnegative=False) -> np.ndarray:
    """Column ``name`` as float64 ``(rows,)``; a missing value (empty, NA, NaN, .) is NaN when
    ``allow_missing``, else an error; anything else that is not a finite number is an error."""
    j = table.column(name, option)
    out = np.empty(len(table.rows))
    for i, (lineno, fields) in enumerate(table.rows):
        text = fields[j]
        if text.lower() in MISSING:
            if not allow_missing:
                raise InputError(f"{where(table.path, lineno)}: column {name!r} ({option}) is missing "
                                 f"({text!r}); expected a number (or pass --drop_missing)")
            out[i] = math.nan
            continue
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or (nonnegative and v < 0):
            what = "a number >= 0" if nonnegative else "a finite number"
            raise InputError(f"{where(table.path, lineno)}: column {name!r} ({option}) is {text!r}; expected {what}")
        out[i] = v
    return out
