"""The plan of a regions dataset: windows centred on BED regions or narrowPeak summits, the
windows dropped, their splits, and GC-matched negatives; as pure functions on arrays where
possible (the folder is written by :mod:`basenji_tk.data.regions`):

1. :func:`basenji_tk.io.peaks.read_regions` reads BED (centre ``start + (end - start) // 2``)
   or narrowPeak (summit ``start + column 10`` when column 10 is ``>= 0``, else the centre);
   every bad line is one :class:`InputError` naming ``PATH:LINE``.
2. :func:`centre_windows` puts a window of ``length`` bp on each centre, the centre base at
   index ``length // 2`` (so ``start = centre - length // 2``).
3. Windows are dropped and counted (:func:`plan_regions`): a repeat of an earlier region's
   window (``duplicate``, merged into it: names joined with ``,``), past a chromosome end
   (``off_end``), overlapping the blacklist (``blacklist``), with more than ``max_n`` N
   (``max_n``), or crossing a split boundary (``straddles_splits``: the window would share
   bases with a chunk of another split) or lying outside every chunk (``outside_contigs``).
4. Splits as in ``make_targets``: the genome's contigs go to train/valid/test in chunks by
   :func:`basenji_tk.data.targets.assign_splits` (fractions) or by chromosome lists; a window takes
   the split of the chunk holding its centre base (:func:`window_splits`).
5. Negatives (:mod:`basenji_tk.data.negatives`): windows drawn uniformly from the genome's
   chromosomes that hold regions, never overlapping an input region, a positive window widened
   by ``margin`` bp each side, or the blacklist; matched to the positives' GC distribution in
   ``gc_bins`` equal bins of GC fraction (GC over A/C/G/T bases), ``ratio`` negatives per
   positive, seeded.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from basenji_tk.data import dna
from basenji_tk.io import genome as gn
from basenji_tk.io.peaks import FORMATS, Regions
from basenji_tk.data import targets as tg
from basenji_tk.data.negatives import (NEG_STEP, allowed_starts, candidate_starts, count_masks, gc_bin, gc_fraction,
                                       inside_chunks, match_gc, n_runs, negative_quotas, window_counts)
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

DROP_REASONS = ("duplicate", "off_end", "blacklist", "max_n", "outside_contigs", "straddles_splits")
NEGATIVE_NAME = "negative"


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
