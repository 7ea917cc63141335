"""GC-matched negative windows of a regions dataset (:mod:`basenji_tk.data.regions_plan`), as
pure functions on arrays.

Composition: runs of N, G+C and N counts of windows from whole-chromosome codes, the GC
fraction over A/C/G/T bases and its bin. Negatives: the starts a window may take (inside the
split chunks, sharing no base with a forbidden interval), one candidate start drawn uniformly in
every ``NEG_STEP`` bp of them, and per GC bin the candidates picked to match the positives'
histogram (``ratio`` negatives per positive, seeded).
"""

from __future__ import annotations

import numpy as np

from basenji_tk.data import dna
from basenji_tk.io import genome as gn

NEG_STEP = 50  # one negative candidate start drawn in every NEG_STEP bp of allowed starts


# ----------------------------------------------------------------------------- composition
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


def gc_bin(gc, n_bins: int) -> np.ndarray:
    """Bin index ``(n,)`` of GC fractions in ``n_bins`` equal bins of [0, 1] (1.0 in the last)."""
    gc = np.asarray(gc, dtype=np.float64)
    return np.clip(np.floor(gc * n_bins), 0, n_bins - 1).astype(np.int64)


# ----------------------------------------------------------------------------- negatives
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
