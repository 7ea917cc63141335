"""Regions: windows centred on BED regions or narrowPeak summits, with GC-matched negatives.

The plan of a regions dataset, as pure functions on arrays where possible:

1. :func:`read_regions` reads BED (centre ``start + (end - start) // 2``) or narrowPeak
   (summit ``start + column 10`` when column 10 is ``>= 0``, else the centre); every bad line
   is one :class:`InputError` naming ``PATH:LINE``.
2. :func:`centre_windows` puts a window of ``length`` bp on each centre, the centre base at
   index ``length // 2`` (so ``start = centre - length // 2``).
3. Windows are dropped and counted (:func:`filter_windows`): a repeat of an earlier region's
   window (``duplicate``, merged into it: names joined with ``,``), past a chromosome end
   (``off_end``), overlapping the blacklist (``blacklist``), with more than ``max_n`` N
   (``max_n``), or crossing a split boundary (``straddles_splits``: the window would share
   bases with a chunk of another split) or lying outside every chunk (``outside_contigs``).
4. Splits as in ``make_targets``: the genome's contigs go to train/valid/test in chunks by
   :func:`basenji_tk.data.targets.assign_splits` (fractions) or by chromosome lists; a window takes
   the split of the chunk holding its centre base (:func:`window_splits`).
5. Negatives (:func:`sample_negatives`): windows drawn uniformly from the genome's chromosomes
   that hold regions, never overlapping an input region, a positive window widened by
   ``margin`` bp each side, or the blacklist; matched to the positives' GC distribution in
   ``gc_bins`` equal bins of GC fraction (GC over A/C/G/T bases), ``ratio`` negatives per
   positive, seeded.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.data import dna
from basenji_tk.io import genome as gn
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

FORMATS = ("auto", "bed", "narrowpeak")
DROP_REASONS = ("duplicate", "off_end", "blacklist", "max_n", "outside_contigs", "straddles_splits")
NEGATIVE_NAME = "negative"
NEG_STEP = 50  # one negative candidate start drawn in every NEG_STEP bp of allowed starts


# ----------------------------------------------------------------------------- reading
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


# ----------------------------------------------------------------------------- windows
def centre_windows(centre: np.ndarray, length: int) -> np.ndarray:
    """Window starts ``(n,)`` for centres ``(n,)``: the centre base sits at index ``length // 2``."""
    return np.asarray(centre, dtype=np.int64) - length // 2


def first_of_duplicates(chrom: np.ndarray, start: np.ndarray) -> np.ndarray:
    """``(n,)`` int64: for each window, the index of the first window with the same (chrom, start)."""
    key = np.stack([chrom, start], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


def blacklist_hits(chrom, start, end, chroms, blacklist: dict) -> np.ndarray:
    """``(n,)`` bool: the window shares a base with the blacklist ``{chrom: IntervalSet}``."""
    out = np.zeros(len(start), dtype=bool)
    for c, name in enumerate(chroms):
        if name not in blacklist:
            continue
        sel = np.flatnonzero(chrom == c)
        bl = blacklist[name]
        i = np.searchsorted(bl.ends, start[sel], side="right")  # first interval ending after start
        j = np.searchsorted(bl.starts, end[sel], side="left")  # intervals starting before end
        out[sel] = j > i
    return out


def gc_bin(gc, n_bins: int) -> np.ndarray:
    """Bin index ``(n,)`` of GC fractions in ``n_bins`` equal bins of [0, 1] (1.0 in the last)."""
    gc = np.asarray(gc, dtype=np.float64)
    return np.clip(np.floor(gc * n_bins), 0, n_bins - 1).astype(np.int64)


def negative_quotas(pos_bins: np.ndarray, n_bins: int, ratio: float) -> np.ndarray:
    """Negatives wanted per GC bin ``(n_bins,)``: ``ratio`` x the positives' histogram, rounded by
    largest remainder so the total is ``round(ratio * n_positives)``."""
    hist = np.bincount(pos_bins, minlength=n_bins).astype(np.float64) * ratio
    total = int(round(ratio * len(pos_bins)))
    out = np.floor(hist).astype(np.int64)
    rest = total - int(out.sum())
    if rest > 0:
        order = np.argsort(-(hist - out), kind="stable")
        out[order[:rest]] += 1
    return out


def intersect_intervals(a_lo, a_hi, b_lo, b_hi):
    """Intersection of two sorted lists of disjoint half-open intervals: ``(lo, hi)`` arrays."""
    out_lo, out_hi = [], []
    i = j = 0
    a_lo, a_hi, b_lo, b_hi = (np.asarray(x, dtype=np.int64).tolist() for x in (a_lo, a_hi, b_lo, b_hi))
    while i < len(a_lo) and j < len(b_lo):
        lo, hi = max(a_lo[i], b_lo[j]), min(a_hi[i], b_hi[j])
        if lo < hi:
            out_lo.append(lo)
            out_hi.append(hi)
        if a_hi[i] < b_hi[j]:
            i += 1
        else:
            j += 1
    return np.array(out_lo, dtype=np.int64), np.array(out_hi, dtype=np.int64)


def allowed_starts(size: int, forbid_starts, forbid_ends, length: int, within=None):
    """Starts ``s`` whose window ``[s, s + length)`` lies inside ``[0, size)`` (or inside one of the
    ``within = (starts, ends)`` intervals, e.g. split chunks) and shares no base with a forbidden
    interval: ``(lo, hi)`` arrays of sorted, disjoint, half-open start ranges."""
    w_lo, w_hi = within if within is not None else (np.array([0]), np.array([size]))
    w_lo = np.asarray(w_lo, dtype=np.int64)
    w_hi = np.minimum(np.asarray(w_hi, dtype=np.int64), size) - length + 1
    keep = w_hi > w_lo
    w_lo, w_hi = w_lo[keep], w_hi[keep]
    order = np.argsort(w_lo, kind="stable")
    fs = np.asarray(forbid_starts, dtype=np.int64) - (length - 1)  # a window starting here reaches fs
    fe = np.asarray(forbid_ends, dtype=np.int64)
    g_lo, g_hi = gn.complement(np.maximum(fs, 0), np.maximum(fe, 0), size)
    return intersect_intervals(w_lo[order], w_hi[order], g_lo, g_hi)


def window_splits(chrom, start, end, chroms, by_split: dict) -> tuple[np.ndarray, np.ndarray]:
    """The split of each window: that of the chunk holding its centre base.

    ``by_split`` is :func:`targets.assign_splits`'s ``{split: [Interval]}``. Returns ``(split, why)``:
    ``split`` ``(n,)`` int (index into ``targets.SPLITS``, -1 when dropped) and ``why`` ``(n,)``
    object (``""``, ``"outside_contigs"`` or ``"straddles_splits"``).
    """
    chunks = {}
    for k, split in enumerate(tg.SPLITS):
        for iv in by_split[split]:
            chunks.setdefault(iv.chrom, []).append((iv.start, iv.end, k))
    table = {}
    for name, items in chunks.items():
        items.sort()
        a = np.array(items, dtype=np.int64)
        table[name] = (a[:, 0], a[:, 1], a[:, 2])
    n = len(start)
    split = np.full(n, -1, dtype=np.int64)
    why = np.full(n, "", dtype=object)
    centre = start + (end - start) // 2
    for c, name in enumerate(chroms):
        sel = np.flatnonzero(chrom == c)
        if not len(sel):
            continue
        if name not in table:
            why[sel] = "outside_contigs"
            continue
        cs, ce, ck = table[name]
        at = np.searchsorted(cs, centre[sel], side="right") - 1
        inside = (at >= 0) & (ce[np.maximum(at, 0)] > centre[sel])
        first = np.searchsorted(ce, start[sel], side="right")
        last = np.searchsorted(cs, end[sel], side="left")  # chunks first..last-1 overlap the window
        for k, i in enumerate(sel):
            if not inside[k]:
                why[i] = "outside_contigs"
                continue
            s = ck[at[k]]
            if np.any(ck[first[k]:last[k]] != s):
                why[i] = "straddles_splits"
                continue
            split[i] = s
    return split, why


# ----------------------------------------------------------------------------- composition, negatives
def n_runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of N (code 4) in codes ``(S,)``: ``(starts, ends)`` int64, sorted, half-open."""
    flag = np.zeros(len(codes) + 2, dtype=np.int8)
    flag[1:-1] = codes == dna.N_CODE
    edges = np.flatnonzero(np.diff(flag))
    return edges[0::2].astype(np.int64), edges[1::2].astype(np.int64)


def count_masks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """G-or-C and N flags of codes ``(S,)`` as uint8 ``(S + 1,)`` (a trailing 0), for :func:`window_counts`."""
    out = []
    for mask in ((codes == 1) | (codes == 2), codes == dna.N_CODE):
        padded = np.zeros(len(codes) + 1, dtype=np.uint8)
        padded[:-1] = mask
        out.append(padded)
    return out[0], out[1]


def window_counts(codes: np.ndarray, starts: np.ndarray, length: int, masks=None) -> tuple[np.ndarray, np.ndarray]:
    """G+C and N counts ``(n,)`` int32 of the windows ``[s, s + length)`` of codes ``(S,)``
    (every window inside the array); ``masks`` is :func:`count_masks` of ``codes`` when already made."""
    starts = np.asarray(starts, dtype=np.int64)
    if not len(starts):
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    idx = np.empty(2 * len(starts), dtype=np.int64)
    idx[0::2], idx[1::2] = starts, starts + length
    gc, n = masks if masks is not None else count_masks(codes)
    return np.add.reduceat(gc, idx, dtype=np.int32)[0::2], np.add.reduceat(n, idx, dtype=np.int32)[0::2]


def gc_fraction(gc_count, n_count, length: int) -> np.ndarray:
    """GC fraction of the A/C/G/T bases ``(n,)`` (nan where a window is all N)."""
    acgt = length - np.asarray(n_count, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(acgt > 0, np.asarray(gc_count, dtype=np.float64) / acgt, np.nan)


def candidate_starts(lo: np.ndarray, hi: np.ndarray, step: int, rng) -> np.ndarray:
    """One start drawn uniformly in each ``step``-bp cell of each allowed start range ``[lo, hi)``
    (a last, shorter cell too): ``(m,)`` int64, sorted."""
    out = []
    for a, b in zip(np.asarray(lo).tolist(), np.asarray(hi).tolist()):
        cells = np.arange(a, b, step, dtype=np.int64)
        width = np.minimum(cells + step, b) - cells
        out.append(cells + (rng.random(len(cells)) * width).astype(np.int64))
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def inside_chunks(start: np.ndarray, length: int, chunk_starts: np.ndarray, chunk_ends: np.ndarray) -> np.ndarray:
    """``(n,)`` bool: the window ``[s, s + length)`` lies inside one chunk (sorted, disjoint chunks)."""
    k = np.searchsorted(chunk_starts, start, side="right") - 1
    ok = k >= 0
    kk = np.maximum(k, 0)
    return ok & (start + length <= chunk_ends[kk]) if len(chunk_starts) else np.zeros(len(start), bool)


def match_gc(cand_bins: np.ndarray, quotas: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``quotas[b]`` candidates of each GC bin ``b`` uniformly without replacement.

    ``cand_bins`` ``(m,)`` bin of each candidate. Returns ``(chosen, shortfall)``: sorted indices
    into the candidates and ``(n_bins,)`` how many a bin lacked (all its candidates are taken then).
    """
    chosen, short = [], np.zeros(len(quotas), dtype=np.int64)
    for b, q in enumerate(np.asarray(quotas).tolist()):
        if q <= 0:
            continue
        pool = np.flatnonzero(cand_bins == b)
        if len(pool) <= q:
            short[b] = q - len(pool)
            chosen.append(pool)
        else:
            chosen.append(rng.choice(pool, size=q, replace=False))
    idx = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)
    return idx, short


# ----------------------------------------------------------------------------- the plan
@dataclass
class Options:
    """What ``make_regions.py`` takes besides its paths (see its ``--help``)."""

    seq_length: int = 1000
    pool_width: int = 1  # targets-table mode: bp per label bin
    max_n: float = 0.1
    blacklist: tuple = ()
    valid: str = "0.1"
    test: str = "0.1"
    chunk_size: int = 1_048_576
    gap_min: int = 1000
    chroms: tuple = ()
    fmt: str = "auto"
    negatives: float = 0.0
    margin: int = 0
    gc_bins: int = 20
    label: str = ""  # name of a binary feature marking positives (1) vs negatives (0); "" for none
    seed: int = 0
    records_per_file: int = 256
    target_dtype: str = "float16"
    cache_mb: int = 1024  # keep planned windows' codes in memory up to this size, else read them again
    force: bool = False
    progress: bool = False


def check_options(o: Options) -> None:
    for name in ("seq_length", "pool_width", "gap_min", "chunk_size", "records_per_file", "gc_bins"):
        if getattr(o, name) <= 0:
            raise InputError(f"--{name} must be a positive integer, got {getattr(o, name)}")
    if not 0 <= o.max_n <= 1:
        raise InputError(f"--max_n must be a fraction in [0, 1], got {o.max_n}")
    if not (o.negatives >= 0 and math.isfinite(o.negatives)):
        raise InputError(f"--negatives must be a ratio >= 0 (1.0: as many as positives), got {o.negatives}")
    if o.margin < 0:
        raise InputError(f"--margin must be >= 0 bp, got {o.margin}")
    if o.fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, got {o.fmt!r}")
    if o.target_dtype not in ("float16", "float32"):
        raise InputError(f"--target_dtype must be float16 or float32, got {o.target_dtype}")


@dataclass
class Plan:
    """The records of a regions dataset in write order (train shuffled, valid and test in genome
    order). ``chrom`` indexes ``chroms``; ``label`` is 1 for positives, 0 for negatives; ``codes``
    holds each record's sequence codes when they were kept in memory (else None)."""

    chroms: list
    chrom: np.ndarray
    start: np.ndarray
    split: np.ndarray  # index into targets.SPLITS
    label: np.ndarray
    name: list
    codes: list | None
    counts: dict
    info: dict


def _split_specs(o: Options, sizes: dict):
    valid, test = tg.parse_split(o.valid, "--valid"), tg.parse_split(o.test, "--test")
    norm = {gn.normalize_chrom(g) for g in sizes}
    for opt, spec in (("--valid", valid), ("--test", test)):
        if isinstance(spec, list):
            absent = [c for c in spec if c not in sizes and gn.normalize_chrom(c) not in norm]
            if absent:
                raise InputError(f"{opt}: chromosome(s) not in the FASTA: {', '.join(absent)}")
    return valid, test


def _contigs(name, size, n_starts, n_ends, gap_min, blacklist):
    """Contigs of one chromosome as :func:`genome.find_contigs` makes them: the pieces between
    runs of >= ``gap_min`` N and blacklisted intervals."""
    long_ = (n_ends - n_starts) >= gap_min
    bs, be = n_starts[long_], n_ends[long_]
    if name in blacklist:
        bs = np.concatenate([bs, blacklist[name].starts])
        be = np.concatenate([be, blacklist[name].ends])
    return [gn.Interval(name, int(a), int(b)) for a, b in zip(*gn.complement(bs, be, size))]


def plan_regions(genome, regions: Regions, o: Options) -> Plan:
    """Windows, drops, splits and negatives of a regions dataset (see the module's docstring).

    Each chromosome holding regions is read once, whole (memory: a few bytes per base of the
    largest one): its N runs give the contigs for the splits, and the G+C and N counts of the
    positive windows and of the negative candidates (one start drawn uniformly in every
    ``NEG_STEP`` bp of allowed starts) come from it. Negatives are then picked per GC bin.
    """
    L = o.seq_length
    chroms = regions.chroms
    sizes = np.array([genome.sizes[c] for c in chroms], dtype=np.int64)
    valid, test = _split_specs(o, genome.sizes)
    n = len(regions)
    dropped = {r: 0 for r in DROP_REASONS}
    on = np.ones(n, dtype=bool)
    if o.chroms:
        lookup = gn.chrom_lookup(chroms)
        bad = [c for c in o.chroms if lookup(c) is None]
        if bad:
            raise InputError(f"--chroms: not in {genome.path}: {', '.join(bad)}")
        on = np.isin(regions.chrom, [chroms.index(lookup(c)) for c in o.chroms])
        dropped["other_chroms"] = int((~on).sum())
    used = sorted({int(c) for c in regions.chrom[on]})

    chrom, start = regions.chrom, centre_windows(regions.centre, L)
    end = start + L
    names = list(regions.name)
    keep = on.copy()
    first = first_of_duplicates(chrom, start)
    dup = (first != np.arange(n)) & on
    for i in np.flatnonzero(dup):
        names[first[i]] += "," + names[i]
    dropped["duplicate"] = int(dup.sum())
    keep &= ~dup
    off = keep & ((start < 0) | (end > sizes[chrom]))
    dropped["off_end"] = int(off.sum())
    keep &= ~off
    blacklist = gn.read_bed_sets(o.blacklist, chroms)
    hit = keep & blacklist_hits(chrom, start, end, chroms, blacklist)
    dropped["blacklist"] = int(hit.sum())
    keep &= ~hit

    cache = o.cache_mb * (1 << 20) >= L * n * (1 + o.negatives)
    rng = np.random.default_rng([o.seed, 1])
    gc_count, n_count = np.zeros(n, np.int64), np.zeros(n, np.int64)
    codes, contigs, cands = {}, [], {}
    from tqdm import tqdm

    for c in tqdm(used, desc="chromosomes", unit="chrom", disable=not o.progress):
        name, size = chroms[c], int(sizes[c])
        seq = dna.encode(genome.fetch(name, 0, size))
        ns, ne = n_runs(seq)
        contigs += _contigs(name, size, ns, ne, o.gap_min, blacklist)
        masks = count_masks(seq)
        mine = np.flatnonzero(keep & (chrom == c))
        gc_count[mine], n_count[mine] = window_counts(seq, start[mine], L, masks)
        if cache:
            for i in mine:
                codes[i] = seq[start[i]:start[i] + L].copy()
        if o.negatives > 0:
            every = np.flatnonzero(regions.chrom == c)  # every input region, kept or not
            fs = np.minimum(regions.start[every], start[every]) - o.margin
            fe = np.maximum(regions.end[every], end[every]) + o.margin
            if name in blacklist:
                fs = np.concatenate([fs, blacklist[name].starts])
                fe = np.concatenate([fe, blacklist[name].ends])
            lo, hi = allowed_starts(size, fs, fe, L)
            cs = candidate_starts(lo, hi, NEG_STEP, rng)
            cg, cn = window_counts(seq, cs, L, masks)
            ok = cn <= o.max_n * L
            cands[c] = (cs[ok], cg[ok], cn[ok])
        del seq, masks

    by_split = tg.assign_splits(contigs, valid, test, L, o.chunk_size, o.seed)
    idx = np.flatnonzero(keep)
    split = np.full(n, -1, dtype=np.int64)
    split[idx], why = window_splits(chrom[idx], start[idx], end[idx], chroms, by_split)
    for reason in ("outside_contigs", "straddles_splits"):
        dropped[reason] = int((why == reason).sum())
    keep[idx[why != ""]] = False
    many_n = keep & (n_count > o.max_n * L)
    dropped["max_n"] = int(many_n.sum())
    keep &= ~many_n
    pos = np.flatnonzero(keep)
    gc = gc_fraction(gc_count, n_count, L)
    info = {"input": n, "positives": len(pos), "dropped": dropped, "format": regions.fmt,
            "centre": "narrowPeak summit (start + column 10; the centre when -1)" if regions.fmt == "narrowpeak"
            else "start + (end - start) // 2", "window": f"[centre - {L // 2}, centre + {L - L // 2})"}
    log.info(f"{regions.path}: {n} regions, {len(pos)} windows of {L} bp kept; dropped: "
             + (", ".join(f"{v} {k}" for k, v in dropped.items() if v) or "none"))

    pos_bins = gc_bin(gc[pos], o.gc_bins)
    neg_chrom, neg_start, nsplit = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    if o.negatives > 0:
        chunks = {}
        for s in tg.SPLITS:
            for iv in by_split[s]:
                chunks.setdefault(iv.chrom, []).append((iv.start, iv.end))
        all_c, all_s, all_gc = [], [], []
        for c in used:
            cs, cg, cn = cands[c]
            ch = np.array(sorted(chunks.get(chroms[c], [])), dtype=np.int64).reshape(-1, 2)
            ok = inside_chunks(cs, L, ch[:, 0], ch[:, 1])
            all_c.append(np.full(int(ok.sum()), c, dtype=np.int64))
            all_s.append(cs[ok])
            all_gc.append(gc_fraction(cg[ok], cn[ok], L))
        all_c, all_s, all_gc = (np.concatenate(x) if x else np.zeros(0) for x in (all_c, all_s, all_gc))
        quotas = negative_quotas(pos_bins, o.gc_bins, o.negatives)
        chosen, short = match_gc(gc_bin(all_gc, o.gc_bins), quotas, np.random.default_rng([o.seed, 2]))
        neg_chrom, neg_start = all_c[chosen].astype(np.int64), all_s[chosen].astype(np.int64)
        if short.sum():
            log.warning(f"warning: {int(short.sum())} of {int(quotas.sum())} GC-matched negatives not found "
                        f"(GC bins {', '.join(str(b) for b in np.flatnonzero(short))} of {o.gc_bins} have too "
                        f"few candidate windows)")
        info["negatives"] = {
            "ratio": o.negatives, "requested": int(quotas.sum()), "found": len(chosen), "candidates": len(all_s),
            "candidate_step_bp": NEG_STEP, "margin_bp": o.margin, "gc_bins": o.gc_bins,
            "gc": "fraction of G+C among the A/C/G/T bases of the window, in gc_bins equal bins of [0, 1]",
            "gc_histogram_positives": np.bincount(pos_bins, minlength=o.gc_bins).tolist(),
            "gc_histogram_negatives": np.bincount(gc_bin(all_gc[chosen], o.gc_bins), minlength=o.gc_bins).tolist(),
            "shortfall_by_bin": short.tolist(),
        }
        nsplit, nwhy = window_splits(neg_chrom, neg_start, neg_start + L, chroms, by_split)
        assert not np.any(nwhy != ""), "negatives are drawn inside split chunks"
        if cache:
            neg_codes = [dna.encode(genome.fetch(chroms[c], int(s), int(s) + L)) for c, s in zip(neg_chrom, neg_start)]

    r_chrom = np.concatenate([chrom[pos], neg_chrom])
    r_start = np.concatenate([start[pos], neg_start])
    r_split = np.concatenate([split[pos], nsplit])
    r_label = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg_start), np.int64)])
    r_name = [names[i] for i in pos] + [NEGATIVE_NAME] * len(neg_start)
    r_codes = ([codes[i] for i in pos] + (neg_codes if o.negatives > 0 else [])) if cache else None

    counts = {s: int((r_split == k).sum()) for k, s in enumerate(tg.SPLITS)}
    wanted = {"train": True, "valid": valid != 0.0, "test": test != 0.0}
    for s in tg.SPLITS:
        if wanted[s] and counts[s] == 0:
            raise InputError(f"the {s} split is empty ({sum(counts.values())} windows in all): give it a larger "
                             f"share, other chromosomes or a smaller --chunk_size ({o.chunk_size})")
    train = np.flatnonzero(r_split == 0)
    train = train[np.random.default_rng(o.seed).permutation(len(train))]
    held = np.flatnonzero(r_split != 0)
    held = held[np.lexsort((r_start[held], r_chrom[held], r_split[held]))]
    order = np.concatenate([train, held]).astype(np.int64)
    info["counts_by_label"] = {s: {"positive": int(((r_split == k) & (r_label == 1)).sum()),
                                   "negative": int(((r_split == k) & (r_label == 0)).sum())}
                               for k, s in enumerate(tg.SPLITS)}
    return Plan(chroms, r_chrom[order], r_start[order], r_split[order], r_label[order],
                [r_name[i] for i in order], [r_codes[i] for i in order] if cache else None, counts, info)


# ----------------------------------------------------------------------------- the builder
def _sequences(genome_path, chroms, plan: Plan, L: int):
    """Each record's codes, from the plan's memory or a FASTA handle of its own."""
    if plan.codes is not None:
        yield from plan.codes
        return
    g = gn.Genome(genome_path)
    try:
        for c, s in zip(plan.chrom.tolist(), plan.start.tolist()):
            yield dna.encode(g.fetch(chroms[c], s, s + L))
    finally:
        g.close()


def make_regions(fasta, regions_path, out_dir, options: Options | None = None, targets=None,
                 plan_path=None) -> dict:
    """Build a regions dataset folder ``out_dir`` (kind ``regions``) and return its statistics.

    Features: ``sequence`` (codes of the window), then either the label ``target`` of the targets
    table ``targets`` binned at ``options.pool_width`` (as ``make_targets``) or the features of
    the plan ``plan_path`` (:mod:`basenji_tk.data.features`), and with ``options.label`` a binary label
    ``(1,)`` that is 1 for positives and 0 for negatives. Inputs are checked first; then
    ``out_dir`` is claimed (:func:`files.claim`) before any work."""
    from basenji_tk.data import features as ft
    from basenji_tk import files

    from basenji_tk.data import records
    o = options or Options()
    check_options(o)
    if targets is not None and plan_path is not None:
        raise InputError("give a targets table (TARGETS) or --features PLAN.json, not both")
    if targets is None and plan_path is None and not o.label:
        raise InputError("nothing to label: give a targets table (TARGETS), --features PLAN.json or --label NAME")
    out_dir = os.path.abspath(str(out_dir))
    if targets is not None:
        if o.seq_length % o.pool_width:
            raise InputError(f"-l {o.seq_length} is not a multiple of -w {o.pool_width}")
        fplan = ft.old_plan(targets, o.pool_width, o.target_dtype)
    elif plan_path is not None:
        fplan = ft.load_plan(plan_path)
    else:  # the sequence and the --label of peaks versus negatives (a Basset-style set)
        fplan = ft.FeaturePlan("(--label only)", True, [])
    fplan.check_window(o.seq_length)
    if o.label and o.label in {g.name for g in fplan.groups} | {"sequence", "index", "weight"}:
        raise InputError(f"--label {o.label}: the name is taken by another feature; choose another")
    genome = gn.Genome(fasta)
    try:
        regions = read_regions(regions_path, genome.sizes, o.fmt)
        with files.claim(out_dir, folder=False):
            if os.path.isdir(out_dir) and os.listdir(out_dir) and not o.force:
                what = "a finished dataset" if os.path.exists(os.path.join(out_dir, records.STATISTICS)) else \
                    "other files"
                raise InputError(f"{out_dir}: holds {what}; use --force to replace it, or choose another -o")
            if os.path.exists(out_dir) and not os.path.isdir(out_dir):
                raise InputError(f"{out_dir}: exists and is not a folder")
            return _make(genome, regions, fplan, out_dir, o, targets, plan_path)
    finally:
        genome.close()
        fplan.close()


def _make(genome, regions, fplan, out_dir, o: Options, targets, plan_path) -> dict:
    from tqdm import tqdm

    from basenji_tk.data import records
    from basenji_tk.files import file_sha256

    L = o.seq_length
    plan = plan_regions(genome, regions, o)
    chroms = plan.chroms
    needed = sorted({chroms[c] for c in set(plan.chrom.tolist())}, key=chroms.index)
    fplan.open(genome.sizes, needed)
    features = fplan.features()
    if not fplan.sequence:  # a regions dataset always holds its windows' sequence
        features.insert(0, records.Feature("sequence", "sequence", (L, 4), "uint8", 1))
    if o.label:
        features.append(records.Feature(o.label, "label", (1,), "float32", label_type="binary",
                                        meta={"positive": "window centred on a region", "negative": "sampled"}))
    windows = [(chroms[c], s, s + L) for c, s in zip(plan.chrom.tolist(), plan.start.tolist())]
    in_order = np.lexsort((plan.start, plan.chrom))  # genome order: each track block is read once
    normalised = fplan.quantile_pass([windows[i] for i in in_order], progress=o.progress)
    back = np.empty_like(in_order)
    back[in_order] = np.arange(len(in_order))
    normalised = {name: x[back] for name, x in normalised.items()}  # (ranks do not depend on the order)
    rest = [g.name for g in fplan.groups if g.name not in normalised]
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(o).items()
                if k not in ("force", "progress", "cache_mb")}
    inputs = {"genome": genome.path, "regions": regions.path}
    inputs.update({t.identifier if targets else f"{g.name}/{t.identifier}": t.file
                   for g in fplan.groups for t in g.targets})
    info = {
        "settings": settings,
        "regions": plan.info,
        "genome": {"path": os.path.abspath(genome.path), "chrom_sizes": {c: genome.sizes[c] for c in needed}},
        "files": {k: {"path": os.path.abspath(p), "sha256": file_sha256(p)} for k, p in inputs.items()},
    }
    if plan_path is not None:
        with open(plan_path) as fh:
            info["plan"] = {"path": os.path.abspath(plan_path), "text": fh.read()}
    with records.DatasetWriter(out_dir, features, kind="regions", records_per_file=o.records_per_file) as w:
        from basenji_tk.data.dataset import background

        seqs = background(_sequences(genome.path, chroms, plan, L))
        one = np.ones(1, np.float32)
        zero = np.zeros(1, np.float32)
        per_record = sum(4 * int(np.prod(f.shape)) for f in features if f.name in rest)
        ahead = per_record * len(windows) <= o.cache_mb * (1 << 20)
        if ahead:  # tracks read in genome order (random reads of a BigWig cost a block each), kept for writing
            early = [None] * len(windows)
            for k in tqdm(in_order, desc="labels", unit="rec", disable=not o.progress):
                early[k] = fplan.values(*windows[k], rest)
        for k, (chrom, start, end) in enumerate(tqdm(windows, desc="records", unit="rec", disable=not o.progress)):
            values = early[k] if ahead else fplan.values(chrom, start, end, rest)
            if ahead:
                early[k] = None
            for name, stacked in normalised.items():
                values[name] = stacked[k]
            values["sequence"] = next(seqs)
            if o.label:
                values[o.label] = one if plan.label[k] else zero
            w.add(tg.SPLITS[plan.split[k]], values, (chrom, start, end, plan.name[k]))
        info["nonfinite_values"] = fplan.track_counts()
        return w.finish(info)
