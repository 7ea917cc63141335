"""Compiled loops of the coverage stage: the EM's per-round passes and Gaussian window sums
(:mod:`basenji_tk.coverage.em`), the GC model's passes over chunks (:mod:`basenji_tk.coverage.gc`)
and the GC division of each written chunk (:mod:`basenji_tk.coverage.tracks`).

Each replaces a chain of NumPy calls (bincount, gather, where, ...) that would walk the same
millions of entries several times; here one loop does the work of the chain. Kept apart from
those modules so that importing them does not start numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def gaussian_window_sums(query, points, weights, sigma):
    """``out[i] = sum_j weights[j] exp(-(points[j] - query[i])^2 / (2 sigma^2))`` over
    ``|points[j] - query[i]| <= 4 sigma``; ``query`` and ``points`` sorted (a sliding window)."""
    radius = math.ceil(4 * sigma)
    out = np.zeros(len(query))
    lo = 0
    for i in range(len(query)):
        q = query[i]
        while lo < len(points) and points[lo] < q - radius:
            lo += 1
        total = 0.0
        j = lo
        while j < len(points) and points[j] <= q + radius:
            d = (points[j] - q) / sigma
            total += weights[j] * math.exp(-0.5 * d * d)
            j += 1
        out[i] = total
    return out


@numba.njit(cache=True, nogil=True)
def em_mass(w, left, right, f_right, grid_len):
    """Each location's weight shared linearly between its two nearest grid cells."""
    mass = np.zeros(grid_len)
    for i in range(len(w)):
        mass[left[i]] += w[i] * (1.0 - f_right[i])
        mass[right[i]] += w[i] * f_right[i]
    return mass


@numba.njit(cache=True, nogil=True)
def em_reweigh(w, smooth, left, right, f_right, base, kernel_sum, group, n_groups):
    """New weights, proportional within each read to the coverage at its locations, and the
    mean over reads of sum |change|. A read whose locations all have zero coverage keeps its weights."""
    n = len(w)
    c = np.empty(n)
    total = np.zeros(n_groups)
    for i in range(n):
        c[i] = base[i] + kernel_sum * (smooth[left[i]] * (1.0 - f_right[i]) + smooth[right[i]] * f_right[i])
        total[group[i]] += c[i]
    new = np.empty(n)
    change = 0.0
    for i in range(n):
        t = total[group[i]]
        new[i] = c[i] / t if t > 0 else w[i]
        change += abs(new[i] - w[i])
    return new, change / max(n_groups, 1)


@numba.njit(cache=True, nogil=True)
def gc_bin_sums(codes, start, pos, w, lo, hi, max_gap, levels, undefined, n_pos, cov_sum):
    """Add the bases of a chunk to ``n_pos`` and their coverage to ``cov_sum``, per GC bin.

    ``codes``: GC codes of [start, start + len(codes)); ``pos[lo:hi]``, ``w[lo:hi]``: the sorted
    events within ``max_gap`` of the chunk. Skipped: bases with an undefined code, and bases
    strictly inside a read-free gap, i.e. between consecutive events more than ``max_gap`` apart
    (counted and returned). A base's bin is round(code x (bins - 1) / levels).
    """
    bins = len(n_pos)
    end = start + len(codes)
    j, prev, excluded = lo, start - max_gap - 1, 0
    for x in range(start, end):
        while j < hi and pos[j] < x:
            prev = pos[j]
            j += 1
        code = codes[x - start]
        if code == undefined:
            continue
        nxt = pos[j] if j < hi else end + max_gap + 1
        if nxt != x and nxt - prev > max_gap:
            excluded += 1
            continue
        cov = 0.0
        k = j
        while k < hi and pos[k] == x:
            cov += w[k]
            k += 1
        b = (np.int64(code) * (bins - 1) + levels // 2) // levels
        n_pos[b] += 1
        cov_sum[b] += cov
    return excluded


@numba.njit(cache=True, nogil=True)
def divide_by_code(values, codes, factors):
    """``values /= factors[codes]`` in place where values are nonzero."""
    for i in range(len(values)):
        if values[i] != 0:
            values[i] /= factors[codes[i]]


@numba.njit(cache=True, nogil=True)
def base_cell_counts(seq, cell):
    """(G or C, A C G or T) counts per cell of ``cell`` bases of ASCII sequence (either case)."""
    n_cells = -(-len(seq) // cell)
    gc = np.zeros(n_cells, np.float32)
    acgt = np.zeros(n_cells, np.float32)
    for c in range(n_cells):
        n_gc = n_at = 0
        for i in range(c * cell, min((c + 1) * cell, len(seq))):
            b = seq[i] | 32  # lower case
            n_gc += (b == 99) | (b == 103)  # c g
            n_at += (b == 97) | (b == 116)  # a t
        gc[c] = n_gc
        acgt[c] = n_gc + n_at
    return gc, acgt


@numba.njit(cache=True, nogil=True)
def gc_codes(num, den, min_den, levels, undefined, cell, first, out):
    """``out[k] = round(levels x num/den)`` of the cell holding base ``first + k`` (cells of ``cell``
    bases), clipped to [0, levels]; ``undefined`` where ``den <= min_den``."""
    k = 0
    c = first // cell
    while k < len(out):
        if den[c] > min_den:
            code = np.uint8(min(max(round(levels * num[c] / den[c]), 0), levels))
        else:
            code = np.uint8(undefined)
        stop = min(len(out), (c + 1) * cell - first)
        out[k:stop] = code
        k = stop
        c += 1
