"""Backgrounds for attributions and in-silico experiments: dinucleotide shuffles and GC-matched
windows of the genome.

:func:`dinuc_shuffle` draws sequences uniformly from all those with exactly the input's
dinucleotide counts (and so its first and last base and its base counts), by the
Altschul-Erickson / Kandel et al. (1996) construction: a sequence is an Eulerian walk over the
multigraph whose edges are its dinucleotides, and a uniform walk is a uniform random
arborescence of last-exit edges into the final base (Wilson's algorithm) with every vertex's
other exit edges in random order. The deeplift/tangermeme shuffle keeps each vertex's original
last exit instead, which also keeps the counts but can reach only part of the sequences; this
one reaches all of them. The walk is a per-base loop, compiled with numba: 20 shuffles of a
16-kb window, the DeepSHAP default, take milliseconds rather than the second a Python loop takes.

:func:`gc_matched_windows` samples genome windows whose GC fraction matches given ones, with
the GC bins and per-bin draws of the regions builder (:mod:`basenji_tk.data.negatives`).
"""

from __future__ import annotations

import numpy as np

from basenji_tk.data import dna
from basenji_tk.data import negatives as neg
from basenji_tk.errors import InputError
from basenji_tk.io.genome import merge_intervals

_SYMBOLS = 5  # A C G T, and one code for any other row (N: all zeros or 0.25s)


def _kernels():
    import numba

    @numba.njit(cache=True)
    def seed(value):
        np.random.seed(value)

    @numba.njit(cache=True)
    def shuffle_codes(codes, n, k):
        """``n`` dinucleotide shuffles ``(n, L)`` of ``codes`` ``(L,)`` in ``[0, k)``."""
        length = codes.shape[0]
        out = np.empty((n, length), dtype=codes.dtype)
        if length < 3:
            for r in range(n):
                out[r] = codes
            return out
        # edges i -> the dinucleotide (codes[i], codes[i + 1]), grouped by their first base
        order = np.argsort(codes[:-1], kind="mergesort")
        first = np.zeros(k + 1, dtype=np.int64)
        for i in range(length - 1):
            first[codes[i] + 1] += 1
        for v in range(k):
            first[v + 1] += first[v]
        succ = np.empty(length - 1, dtype=np.int64)
        for j in range(length - 1):
            succ[j] = codes[order[j] + 1]
        last = codes[length - 1]
        slots = np.empty(length - 1, dtype=np.int64)
        nxt = np.empty(k, dtype=np.int64)
        in_tree = np.empty(k, dtype=np.bool_)
        ptr = np.empty(k, dtype=np.int64)
        for r in range(n):
            # Wilson's algorithm: a uniform arborescence of exit edges rooted at the last base
            in_tree[:] = False
            in_tree[last] = True
            for v in range(k):
                if first[v + 1] == first[v] or in_tree[v]:
                    continue
                u = v
                while not in_tree[u]:
                    nxt[u] = first[u] + np.random.randint(first[u + 1] - first[u])
                    u = succ[nxt[u]]
                u = v
                while not in_tree[u]:
                    in_tree[u] = True
                    u = succ[nxt[u]]
            # each vertex's other exits in random order, its tree edge last
            for v in range(k):
                a, b = first[v], first[v + 1]
                if a == b:
                    continue
                for j in range(a, b):
                    slots[j] = j
                end = b
                if v != last:
                    t = nxt[v]
                    slots[t], slots[b - 1] = slots[b - 1], slots[t]
                    end = b - 1
                for j in range(end - 1, a, -1):  # Fisher-Yates on [a, end)
                    m = a + np.random.randint(j - a + 1)
                    slots[j], slots[m] = slots[m], slots[j]
            ptr[:] = first[:k]
            cur = codes[0]
            out[r, 0] = cur
            for i in range(1, length):
                e = slots[ptr[cur]]
                ptr[cur] += 1
                cur = succ[e]
                out[r, i] = cur
        return out

    return seed, shuffle_codes


_KERNELS = None


def _compiled():
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _kernels()
    return _KERNELS


def _codes(one_hot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(L,)`` of a one-hot ``(L, 4)`` (4 for a row that is not one-hot) and the row a code
    stands for ``(5, 4)`` (code 4: the sequence's first such row, zeros when none)."""
    x = np.asarray(one_hot)
    is_base = (x.max(axis=1) == 1) & (x.sum(axis=1) == 1)
    codes = np.where(is_base, x.argmax(axis=1), dna.N_CODE).astype(np.int64)
    rows = np.zeros((_SYMBOLS, 4), dtype=x.dtype)
    rows[:4] = np.eye(4, dtype=x.dtype)
    if (~is_base).any():
        rows[dna.N_CODE] = x[np.argmax(~is_base)]
    return codes, rows


def dinuc_shuffle(one_hot: np.ndarray, n: int = 20, rng=None) -> np.ndarray:
    """``n`` dinucleotide shuffles of a one-hot sequence ``(L, 4)`` -> ``(n, L, 4)``, or of each
    of ``(N, L, 4)`` -> ``(N, n, L, 4)``, in the input's dtype.

    Each shuffle has exactly the input's dinucleotide counts (N rows count as a fifth letter and
    come back as they were), drawn uniformly among all such sequences. ``rng``: a numpy
    Generator or seed (None: fresh entropy)."""
    x = np.asarray(one_hot)
    if x.ndim == 3:
        gen = np.random.default_rng(rng)
        return np.stack([dinuc_shuffle(s, n, gen) for s in x]) if len(x) else \
            np.zeros((0, int(n), *x.shape[1:]), dtype=x.dtype)
    if x.ndim != 2 or x.shape[-1] != 4:
        raise InputError(f"dinucleotide shuffle: expected a one-hot sequence (L, 4) or (N, L, 4), got shape {x.shape}")
    if int(n) < 1:
        raise InputError(f"dinucleotide shuffle: expected n >= 1 shuffles, got {n}")
    gen = np.random.default_rng(rng)
    seed, kernel = _compiled()
    seed(int(gen.integers(2**31 - 1)))
    codes, rows = _codes(x)
    return rows[kernel(codes, int(n), _SYMBOLS)]


def dinuc_shuffle_str(seq: str, n: int = 1, rng=None) -> list[str]:
    """``n`` dinucleotide shuffles of a DNA string (letters other than ACGT count as N)."""
    codes = dna.encode(seq).astype(np.int64)
    gen = np.random.default_rng(rng)
    seed, kernel = _compiled()
    seed(int(gen.integers(2**31 - 1)))
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    return [letters[row].tobytes().decode() for row in kernel(codes, int(n), _SYMBOLS)]


def dinuc_counts(one_hot: np.ndarray) -> np.ndarray:
    """Dinucleotide counts ``(5, 5)`` of a one-hot sequence (index 4: any row that is not one-hot)."""
    codes, _ = _codes(one_hot)
    out = np.zeros((_SYMBOLS, _SYMBOLS), dtype=np.int64)
    np.add.at(out, (codes[:-1], codes[1:]), 1)
    return out


# ----------------------------------------------------------------------------- GC-matched windows
def _overlaps_any(chrom, starts, length, exclude) -> np.ndarray:
    """``(m,)`` bool: the window ``[s, s + length)`` shares a base with an excluded interval of ``chrom``."""
    hit = np.zeros(len(starts), dtype=bool)
    if not exclude or chrom not in exclude:
        return hit
    lo, hi = exclude[chrom]
    lo, hi = merge_intervals(np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64))
    k = np.searchsorted(lo, starts + length, side="left") - 1  # the last interval starting before the end
    ok = k >= 0
    hit[ok] = hi[k[ok]] > starts[ok]
    return hit


def _exclude_table(exclude) -> dict:
    """``{chrom: (starts, ends)}`` from a dict of that form or a list of ``(chrom, start, end)``."""
    if exclude is None or isinstance(exclude, dict):
        return exclude or {}
    table: dict = {}
    for c, s, e in exclude:
        table.setdefault(c, ([], []))
        table[c][0].append(int(s))
        table[c][1].append(int(e))
    return table


def gc_matched_windows(genome, length: int, gc, n: int | None = None, rng=None, exclude=None,
                       max_n_frac: float = 0.01, n_bins: int = 20, oversample: int = 20) -> list[tuple]:
    """Genome windows ``[(chrom, start, end)]`` of ``length`` bp whose GC fractions match ``gc``.

    ``gc``: the fractions to match, one per wanted window (``n`` None), or one value for ``n``
    windows. Candidates are drawn uniformly over the genome (``oversample`` x as many as wanted),
    those with over ``max_n_frac`` N or touching an ``exclude`` interval (``{chrom: (starts,
    ends)}`` or ``[(chrom, start, end)]``, e.g. the regions themselves) dropped, and as many drawn
    from each of ``n_bins`` GC bins as the targets hold. A bin with too few candidates takes the
    nearest bins' (a warning says how many). Sorted by chromosome order and start."""
    import logging

    gen = np.random.default_rng(rng)
    targets = np.atleast_1d(np.asarray(gc, dtype=np.float64))
    if n is not None:
        targets = np.resize(targets, int(n))
    if length < 1 or not len(targets) or np.isnan(targets).any() or (targets < 0).any() or (targets > 1).any():
        raise InputError(f"GC-matched windows: expected length >= 1 and GC fractions in [0, 1], got length {length} "
                         f"and {len(targets)} fraction(s)")
    sizes = {c: s for c, s in genome.sizes.items() if s >= length}
    if not sizes:
        raise InputError(f"{genome.path}: no chromosome is {length:,} bp or longer, so no window to sample")
    chroms = list(sizes)
    weights = np.array([sizes[c] - length + 1 for c in chroms], dtype=np.float64)
    excluded = _exclude_table(exclude)
    want = oversample * len(targets)
    picks = gen.choice(len(chroms), size=want, p=weights / weights.sum())
    cand = []
    for ci in np.unique(picks):
        chrom = chroms[ci]
        starts = np.sort(gen.integers(0, sizes[chrom] - length + 1, size=int((picks == ci).sum())))
        starts = starts[~_overlaps_any(chrom, starts, length, excluded)]
        codes = dna.encode(genome.fetch(chrom, 0, sizes[chrom]))  # one read per chromosome
        gc_count, n_count = neg.window_counts(codes, starts, length)
        keep = n_count <= max_n_frac * length
        frac = neg.gc_fraction(gc_count[keep], n_count[keep], length)
        cand += [(chrom, int(s), float(f)) for s, f in zip(starts[keep], frac)]
    if not cand:
        raise InputError(f"{genome.path}: no {length:,}-bp window with at most {max_n_frac:.0%} N outside the "
                         "excluded regions")
    cand_gc = np.array([c[2] for c in cand])
    cand_bins, target_bins = neg.gc_bin(cand_gc, n_bins), neg.gc_bin(targets, n_bins)
    quotas = np.bincount(target_bins, minlength=n_bins)
    chosen, short = neg.match_gc(cand_bins, quotas, gen)
    taken = np.zeros(len(cand), dtype=bool)
    taken[chosen] = True
    missing = int(short.sum())
    if missing:  # the nearest GC among the candidates left, for each target a bin could not serve
        for b in np.flatnonzero(short):
            for _ in range(int(short[b])):
                free = np.flatnonzero(~taken)
                if not len(free):
                    break
                centre = (b + 0.5) / n_bins
                taken[free[np.argmin(np.abs(cand_gc[free] - centre))]] = True
        logging.getLogger("basenji_tk").warning(
            f"warning: GC-matched windows: {missing} of {len(targets)} targets had too few candidates in their GC bin; "
            "they took the nearest GC instead")
    rank = {c: i for i, c in enumerate(genome.chroms)}
    out = [(cand[i][0], cand[i][1], cand[i][1] + length) for i in np.flatnonzero(taken)]
    return sorted(out, key=lambda w: (rank[w[0]], w[1]))
