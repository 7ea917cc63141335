"""BED and narrowPeak regions, each with the base a window centres on.

:func:`read_regions` reads BED (centre ``start + (end - start) // 2``) or narrowPeak (summit
``start + column 10`` when column 10 is ``>= 0``, else the centre); every bad line is one
:class:`InputError` naming ``PATH:LINE``. The regions datasets built on them:
:mod:`basenji_tk.data.regions`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.io import genome as gn
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

FORMATS = ("auto", "bed", "narrowpeak")


@dataclass
class Regions:
    """Regions of one file, in file order. ``chrom`` indexes ``chroms`` (the genome's names);
    ``centre`` is the 0-based base a window centres on; ``line`` is the file line of each row."""

    path: str
    chroms: list
    chrom: np.ndarray  # (n,) int64
    start: np.ndarray  # (n,) int64
    end: np.ndarray  # (n,) int64
    centre: np.ndarray  # (n,) int64
    name: list = field(default_factory=list)
    line: np.ndarray = None  # (n,) int64
    fmt: str = "bed"

    def __len__(self):
        return len(self.start)


def _format_of(path, fields, fmt):
    if fmt != "auto":
        return fmt
    low = os.path.basename(str(path)).lower()
    if ".narrowpeak" in low or len(fields) == 10:
        return "narrowpeak"
    return "bed"


def read_regions(path, sizes: dict, fmt: str = "auto", genome_label: str = "FASTA") -> Regions:
    """Read BED or narrowPeak regions; ``sizes`` maps the genome's chromosomes to lengths.

    ``fmt``: ``bed``, ``narrowpeak`` or ``auto`` (narrowPeak when the name says
    ``.narrowPeak`` or the first data line has exactly 10 columns). Chromosome names are
    matched to the genome's exactly, else after :func:`genome.normalize_chrom`. Raises
    :class:`InputError` ``PATH:LINE: ...`` for a line with too few columns, a non-integer
    coordinate, ``start >= end``, a region past its chromosome's end, a chromosome the genome
    lacks, or a narrowPeak summit outside its peak.
    """
    path = str(path)
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if not os.path.exists(path):
        raise InputError(f"{path}: regions file not found")
    chroms = list(sizes)
    index = {c: i for i, c in enumerate(chroms)}
    lookup = gn.chrom_lookup(chroms)
    rows, names, lines = [], [], []
    kind = None
    renamed = set()
    try:
        for lineno, fields in gn.table_lines(path):
            at = where(path, lineno)
            if kind is None:
                kind = _format_of(path, fields, fmt)
            need = 10 if kind == "narrowpeak" else 3
            if len(fields) < need:
                raise InputError(f"{at}: expected at least {need} tab-separated columns "
                                 f"({'narrowPeak' if need == 10 else 'BED'}), found {len(fields)}")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise InputError(f"{at}: expected integer start and end in columns 2-3, got "
                                 f"{fields[1]!r} {fields[2]!r}") from None
            if start < 0 or end <= start:
                raise InputError(f"{at}: expected 0 <= start < end, got {start} {end}")
            g = lookup(fields[0])
            if g is None:
                shown = ", ".join(chroms[:8]) + (" ..." if len(chroms) > 8 else "")
                raise InputError(f"{at}: chromosome {fields[0]!r} is not in the {genome_label} (it has: {shown})")
            if g != fields[0]:
                renamed.add(f"{fields[0]}->{g}")
            if end > sizes[g]:
                raise InputError(f"{at}: region {fields[0]}:{start}-{end} runs past the end of {g} "
                                 f"({sizes[g]:,} bp in the {genome_label}); another assembly?")
            centre = start + (end - start) // 2
            if kind == "narrowpeak":
                try:
                    peak = int(fields[9])
                except ValueError:
                    raise InputError(f"{at}: narrowPeak column 10 (summit offset) must be an integer, "
                                     f"got {fields[9]!r}") from None
                if peak >= 0:
                    if peak >= end - start:
                        raise InputError(f"{at}: narrowPeak summit offset {peak} lies outside its peak "
                                         f"{fields[0]}:{start}-{end} ({end - start} bp; expected 0 to "
                                         f"{end - start - 1}, or -1 for none)")
                    centre = start + peak
            name = fields[3] if len(fields) > 3 and fields[3] not in ("", ".") else f"line{lineno}"
            rows.append((index[g], start, end, centre))
            names.append(name)
            lines.append(lineno)
    except (UnicodeDecodeError, EOFError) as err:
        raise InputError(f"{path}: not a text BED file ({type(err).__name__})") from None
    if not rows:
        raise InputError(f"{path}: no regions (expected BED or narrowPeak lines)")
    if renamed:
        log.warning(f"warning: {path}: chromosome names normalised to the {genome_label}'s: "
                    f"{', '.join(sorted(renamed)[:5])}")
    arr = np.array(rows, dtype=np.int64)
    return Regions(path, chroms, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], names,
                   np.array(lines, dtype=np.int64), kind)
