"""Targets: the targets table, coverage tracks, binning, sequence tiling and splits.

A targets table is a tab-separated file with a header. Required columns:
``identifier`` and ``file`` (BigWig, or BED; relative paths are read from the
table's folder). Optional columns and their defaults:

============ ========= ===========================================================
column       default   meaning
============ ========= ===========================================================
sum_stat     sum       how bases are summarised per bin: sum, mean or max
clip         inf       hard upper limit after scaling and soft clipping
clip_soft    inf       values above t become t + sqrt(x - t)
scale        1         multiply the binned values by this
description  (id)      free text
score_column (none)    BED only: 1-based column whose number each base gets;
                       without it a BED base inside any interval is 1, else 0
index        (row)     ignored; accepted for Basenji-style tables
============ ========= ===========================================================
"""

import abc
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.io import genome as gn
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

SUM_STATS = ("sum", "mean", "max")
REQUIRED_COLUMNS = ("identifier", "file")
OPTIONAL_COLUMNS = ("sum_stat", "clip", "clip_soft", "scale", "description", "score_column", "index")
BIGWIG_MAGIC = (0x888FFC26).to_bytes(4, "little")


@dataclass
class Target:
    """One row of the targets table."""

    identifier: str
    file: str
    sum_stat: str = "sum"
    clip: float = math.inf
    clip_soft: float = math.inf
    scale: float = 1.0
    description: str = ""
    score_column: int | None = None
    row: str = field(default="", repr=False)  # "targets.txt:3" for messages


# ----------------------------------------------------------------------------- table
def _number(text, name, at, positive=True):
    if text.strip().lower() in ("", "inf", "none", "-"):
        return math.inf
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{at}: column '{name}' expected a number or 'inf', got {text!r}") from None
    if positive and not value > 0:
        raise InputError(f"{at}: column '{name}' must be > 0, got {text!r}")
    return value


def read_targets(path) -> list[Target]:
    """Parse and check a targets table; every problem names ``path:line``."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: targets table not found")
    base = os.path.dirname(os.path.abspath(path))
    with open(path, "rt") as fh:
        lines = [(n, line.rstrip("\n\r")) for n, line in enumerate(fh, 1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputError(f"{path}: empty targets table; expected a header with {', '.join(REQUIRED_COLUMNS)}")
    header_line, header = lines[0][0], lines[0][1].split("\t")
    header = [h.strip() for h in header]
    if header and header[0] == "":
        header[0] = "index"  # Basenji tables start with an unnamed index column
    for col in REQUIRED_COLUMNS:
        if col not in header:
            raise InputError(
                f"{where(path, header_line)}: header lacks column '{col}'; expected tab-separated "
                f"{', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS[:-1])}"
            )
    unknown = [h for h in header if h not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise InputError(
            f"{where(path, header_line)}: unknown column(s) {', '.join(unknown)}; allowed: "
            f"{', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}"
        )
    targets, seen = [], {}
    for lineno, line in lines[1:]:
        fields = line.split("\t")
        at = where(path, lineno)
        name_guess = fields[header.index("identifier")] if len(fields) > header.index("identifier") else fields[0]
        if len(fields) != len(header):
            raise InputError(
                f"{at} (row '{name_guess}'): {len(fields)} tab-separated columns but the header has "
                f"{len(header)} ({', '.join(header)})"
            )
        row = dict(zip(header, (f.strip() for f in fields)))
        ident = row["identifier"]
        at = f"{at} (row '{ident}')"
        if not ident:
            raise InputError(f"{at}: empty identifier")
        if ident in seen:
            raise InputError(f"{at}: identifier '{ident}' repeats line {seen[ident]}")
        seen[ident] = lineno
        file = row["file"]
        if not file:
            raise InputError(f"{at}: empty 'file'")
        file = file if os.path.isabs(file) else os.path.join(base, file)
        if not os.path.exists(file):
            raise InputError(f"{at}: file not found: {file}")
        if not os.path.isfile(file):
            raise InputError(f"{at}: {file} is a folder, not a BigWig or BED file")
        sum_stat = row.get("sum_stat", "sum") or "sum"
        if sum_stat not in SUM_STATS:
            raise InputError(f"{at}: sum_stat must be one of {', '.join(SUM_STATS)}, got {sum_stat!r}")
        score_column = row.get("score_column", "")
        if score_column in ("", "-"):
            score_column = None
        else:
            if not score_column.isdigit() or int(score_column) < 4:
                raise InputError(f"{at}: score_column must be a BED column number >= 4, got {score_column!r}")
            score_column = int(score_column)
        scale = _number(row.get("scale", "1") or "1", "scale", at)
        if math.isinf(scale):
            raise InputError(f"{at}: column 'scale' must be finite")
        targets.append(Target(
            identifier=ident, file=file, sum_stat=sum_stat,
            clip=_number(row.get("clip", ""), "clip", at),
            clip_soft=_number(row.get("clip_soft", ""), "clip_soft", at),
            scale=scale, description=row.get("description", "") or ident,
            score_column=score_column, row=at,
        ))
    if not targets:
        raise InputError(f"{path}: no target rows under the header")
    return targets


# ----------------------------------------------------------------------------- tracks
class Track(abc.ABC):
    """Per-base values of one target over genome intervals; NaN, inf and bases without data are
    counted apart (``nan_count``, ``inf_count``, ``no_data_count``, in bases) and read as 0."""

    def __init__(self, target: Target):
        self.target = target
        self.nan_count = 0  # bases whose stored value is NaN
        self.inf_count = 0
        self.no_data_count = 0  # BigWig bases that no entry covers (pyBigWig reads them as NaN)

    def _clean(self, values: np.ndarray) -> np.ndarray:
        """Zero NaN (a BigWig base without data reads as NaN) and inf, counting both.

        inf is rare, so it is looked for only when the binned sums show it
        (see :func:`target_matrix`); NaN is common and handled here.
        """
        nan = np.isnan(values)
        n_nan = int(np.count_nonzero(nan))
        if n_nan:
            np.copyto(values, 0, where=nan)
            self.nan_count += n_nan
        return values

    def _clean_inf(self, values: np.ndarray) -> np.ndarray:
        inf = np.isinf(values)
        self.inf_count += int(np.count_nonzero(inf))
        np.copyto(values, 0, where=inf)
        return values

    def close(self):
        """Release the file; BED tracks hold none."""

    @abc.abstractmethod
    def values(self, chrom: str, start: int, end: int) -> np.ndarray:
        """float32 ``(end - start,)`` for a genome chromosome name."""


class BigWigTrack(Track):
    def __init__(self, target, genome_chroms, needed):
        super().__init__(target)
        import pyBigWig

        self.bw = pyBigWig.open(target.file)
        if self.bw is None or not self.bw.isBigWig():
            raise InputError(f"{target.row}: cannot read {target.file} as BigWig")
        self.names = gn.match_chroms(self.bw.chroms(), genome_chroms, target.file, needed=needed)
        self.sizes = self.bw.chroms()
        # Peaks and other sparse tracks are faster to read as their few intervals than as
        # per-base values that are mostly NaN (no data); a window with many intervals
        # switches the track to values for good. (bw.header() could tell the density,
        # but it crashes pyBigWig 0.3.29 on files holding inf.)
        self.sparse = True

    def values(self, chrom, start, end):
        name = self.names[chrom]
        hi = min(end, self.sizes[name])
        if self.sparse:
            found = self.bw.intervals(name, start, hi) if hi > start else None
            if found is None or len(found) * 64 < end - start:
                return self._from_intervals(found, start, end, hi)
            self.sparse = False
        if hi == end:
            out = self.bw.values(name, start, end, numpy=True)
        else:  # the track's chromosome is shorter than the FASTA's: no data past its end
            out = np.zeros(end - start, dtype=np.float32)
            if hi > start:
                out[: hi - start] = self.bw.values(name, start, hi, numpy=True)
            self.no_data_count += end - max(hi, start)
        out = out.astype(np.float32, copy=False)
        nan = np.isnan(out)
        n_nan = int(np.count_nonzero(nan))
        if n_nan:  # stored NaN or no data? Only the entries over the NaN stretch can tell
            where = np.flatnonzero(nan)
            lo, up = start + int(where[0]), start + int(where[-1]) + 1
            stored = sum(min(e, up) - max(s, lo) for s, e, v in (self.bw.intervals(name, lo, up) or ()) if v != v)
            self.nan_count += stored
            self.no_data_count += n_nan - stored
            np.copyto(out, 0, where=nan)
        return out

    def _from_intervals(self, found, start, end, hi):
        out = np.zeros(end - start, dtype=np.float32)
        covered = 0
        for s, e, v in found or ():
            s, e = max(s, start), min(e, hi)
            covered += e - s
            if v != v:  # a stored NaN
                self.nan_count += e - s
            elif v in (math.inf, -math.inf):
                self.inf_count += e - s
            else:
                out[s - start:e - start] = v
        self.no_data_count += (end - start) - covered  # no entry there (values() reads it as NaN)
        return out

    def close(self):
        self.bw.close()


class BedTrack(Track):
    def __init__(self, target, genome_chroms, needed):
        super().__init__(target)
        try:
            bed = gn.read_bed(target.file, score_column=target.score_column)
        except (UnicodeDecodeError, EOFError, OSError) as err:  # binary, or damaged gzip
            raise InputError(f"{target.row}: {target.file} is neither a BigWig nor a text BED file "
                             f"({type(err).__name__})") from None
        if not bed:
            raise InputError(f"{target.row}: no intervals in {target.file}")
        self.names = gn.match_chroms(bed, genome_chroms, target.file)
        self.by_chrom = {}
        for g, name in self.names.items():
            s, e, v = bed[name]
            if target.score_column is None:
                s, e = gn.merge_intervals(s, e)  # a base covered twice is still 1
                v = np.ones(len(s))
            else:
                order = np.argsort(s, kind="stable")
                s, e, v = s[order], e[order], v[order]
            longest = int((e - s).max()) if len(s) else 0
            self.by_chrom[g] = (s, e, v, longest)

    def values(self, chrom, start, end):
        out = np.zeros(end - start + 1, dtype=np.float64)
        if chrom in self.by_chrom:
            s, e, v, longest = self.by_chrom[chrom]
            lo = np.searchsorted(s, start - longest, side="left")
            hi = np.searchsorted(s, end, side="left")
            s, e, v = s[lo:hi], e[lo:hi], v[lo:hi]
            keep = e > start
            s, e, v = np.maximum(s[keep], start) - start, np.minimum(e[keep], end) - start, v[keep]
            np.add.at(out, s, v)
            np.add.at(out, e, -v)
        return self._clean(np.cumsum(out[:-1]).astype(np.float32))



def open_track(target: Target, genome_chroms, needed) -> Track:
    """BigWig or BED, told apart by the file's first bytes."""
    with open(target.file, "rb") as fh:
        magic = fh.read(4)
    cls = BigWigTrack if magic == BIGWIG_MAGIC else BedTrack
    return cls(target, genome_chroms, needed)


# ----------------------------------------------------------------------------- binning
def bin_values(values: np.ndarray, pool_width: int, sum_stat: str = "sum") -> np.ndarray:
    """Per-base ``(L,)`` -> per-bin ``(L // pool_width,)`` by sum, mean or max."""
    bins = values.reshape(-1, pool_width)  # float32 sums are pairwise: exact enough for a bin
    if sum_stat == "sum":
        return bins.sum(axis=1)
    if sum_stat == "mean":
        return bins.mean(axis=1)
    if sum_stat == "max":
        return bins.max(axis=1)
    raise ValueError(f"unknown sum_stat {sum_stat!r}")


def transform(binned: np.ndarray, scale=1.0, clip_soft=math.inf, clip=math.inf) -> np.ndarray:
    """Scale, then soft clip (``t + sqrt(x - t)`` above ``t``), then hard clip."""
    x = binned * np.float32(scale)
    if np.isfinite(clip_soft):
        over = x > clip_soft
        x[over] = clip_soft + np.sqrt(x[over] - clip_soft)
    if np.isfinite(clip):
        np.minimum(x, clip, out=x)
    return x


def target_matrix(tracks, chrom, start, end, pool_width) -> np.ndarray:
    """Targets of one sequence: ``(seq_length // pool_width, n_targets)`` float32."""
    cols = []
    for track in tracks:
        t = track.target
        values = track.values(chrom, start, end)
        binned = bin_values(values, pool_width, t.sum_stat)
        if not np.isfinite(binned).all():  # an inf among the bases
            binned = bin_values(track._clean_inf(values), pool_width, t.sum_stat)
        cols.append(transform(binned, t.scale, t.clip_soft, t.clip))
    return np.stack(cols, axis=1)


# ----------------------------------------------------------------------------- tiling, splits
SPLITS = ("train", "valid", "test")


def parse_split(text, option):
    """``--valid``/``--test``: a fraction in [0, 1) or a comma-separated chromosome list."""
    if text is None or text == "":
        return 0.0
    try:
        frac = float(text)
    except ValueError:
        names = [c.strip() for c in str(text).split(",") if c.strip()]
        if not names:
            raise InputError(f"{option}: expected a fraction or chromosome names, got {text!r}") from None
        return names
    if not 0 <= frac < 1:
        raise InputError(f"{option}: a fraction must be in [0, 1), got {text}")
    return frac


def tile(interval, seq_length, stride):
    """Starts of windows of ``seq_length`` every ``stride`` inside ``interval``, centred."""
    span = len(interval) - seq_length
    if span < 0:
        return []
    offset = (span % stride) // 2
    return [interval.start + offset + k * stride for k in range(span // stride + 1)]


def chunk_contigs(contigs, seq_length, chunk_size):
    """Cut contigs into near-equal pieces of about ``chunk_size`` (never below seq_length)."""
    chunk_size = max(chunk_size, seq_length)
    out = []
    for c in contigs:
        if len(c) < seq_length:
            continue
        n = max(1, len(c) // chunk_size)
        edges = np.linspace(c.start, c.end, n + 1).round().astype(np.int64)
        out.extend(gn.Interval(c.chrom, int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]))
    return out


def assign_splits(contigs, valid, test, seq_length, chunk_size, seed):
    """Put whole chunks of contigs into train/valid/test, so no sequence spans two splits.

    ``valid`` and ``test`` are fractions of the tiled length or chromosome lists.
    Chunks are shuffled with ``seed`` and handed to the held-out split furthest
    below its target; each held-out fraction above 0 gets at least one chunk.
    Returns ``{split: [Interval]}`` in genome order.
    """
    out = {s: [] for s in SPLITS}
    listed = {}
    for split, spec in (("valid", valid), ("test", test)):
        if isinstance(spec, list):
            for chrom in spec:
                if chrom in listed:
                    raise InputError(f"--{split}: chromosome {chrom} is also in --{listed[chrom]}")
                listed[chrom] = split
    norm = {gn.normalize_chrom(k): v for k, v in listed.items()}
    rest = []
    for c in contigs:
        split = listed.get(c.chrom) or norm.get(gn.normalize_chrom(c.chrom))
        (out[split] if split else rest).append(c)

    chunks = chunk_contigs(rest, seq_length, chunk_size)
    fractions = {s: spec for s, spec in (("valid", valid), ("test", test)) if not isinstance(spec, list) and spec > 0}
    if fractions:
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(chunks))
        total = sum(len(c) for c in chunks)
        goal = {s: f * total for s, f in fractions.items()}
        got = {s: 0 for s in fractions}
        for i in order:
            c = chunks[i]
            split = max(fractions, key=lambda s: goal[s] - got[s])
            need = goal[split] - got[split]
            if need >= len(c) / 2 or (got[split] == 0 and need > 0):
                out[split].append(c)
                got[split] += len(c)
            else:
                out["train"].append(c)
    else:
        out["train"].extend(chunks)
    rank = {}
    for c in contigs:
        rank.setdefault(c.chrom, len(rank))
    for s in SPLITS:
        out[s].sort(key=lambda c: (rank[c.chrom], c.start))
    return out
