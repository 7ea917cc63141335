"""Multi-mapping reads shared between their locations by an EM on smoothed coverage.

:func:`multi_em` shares each multi-mapping read between its locations in proportion to the
Gaussian-smoothed coverage there; a read's weights always sum to 1. The per-round passes are
compiled (:mod:`basenji_tk.coverage.kernels`).
"""

from __future__ import annotations

import math

import numpy as np

from basenji_tk.coverage.events import Alignments, Reads, _counts, global_offsets


def _sorted_unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each value among them); a stable sort, fast on
    nearly sorted input such as positions in file order."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]] if len(ordered) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def multi_em(aln: Alignments, reads: Reads, event: np.ndarray, rounds: int, sigma: float, tol: float,
             progress: bool = False) -> tuple[np.ndarray, list[float]]:
    """Re-share multi-mapping reads by smoothed coverage; returns (weights per multi record, changes).

    Each round: coverage = unique events + current multi weights, smoothed with a Gaussian of
    standard deviation ``sigma`` (truncated at 4 sigma); each read's weight at a location becomes
    the smoothed coverage there over the sum at all its locations. The unique part is exact and
    computed once. The multi-read part is smoothed each round on a grid of sigma/4-bp cells
    (mass and coverage interpolated linearly between the two nearest cells) from which read-free
    stretches are squeezed, so a round is one short Gaussian filter and memory grows with the
    number of multi-read locations, not the genome. Stops when the mean over reads of
    sum |change in weight| is below ``tol``.
    """
    from scipy.ndimage import gaussian_filter1d
    from tqdm import tqdm

    from basenji_tk.coverage.kernels import em_mass, em_reweigh, gaussian_window_sums

    w = reads.weight[reads.multi_rec].copy()
    if rounds <= 0 or reads.n_multi == 0:
        return w, []
    offsets = global_offsets(aln.lengths, int(math.ceil(8 * sigma)) + 1)
    g_event = offsets[aln.chrom] + event
    multi_g = g_event[reads.multi_rec]
    positions, pidx = _sorted_unique(multi_g)
    unique_mask = reads.keep.copy()
    unique_mask[reads.multi_rec] = False
    u_pos, u_n = _counts(np.sort(g_event[unique_mask], kind="stable"))
    base = gaussian_window_sums(positions, u_pos, u_n.astype(np.float64), sigma)
    # Each round smooths the multi-read mass on a grid of sigma/4-bp cells, each location's mass
    # shared linearly between its two nearest cells and read back the same way; read-free
    # stretches longer than the kernel are squeezed out, so memory follows the multi-reads.
    cell = max(1, int(sigma // 4))
    width = int(math.ceil(4 * sigma / cell))
    x = positions / cell
    left = np.floor(x).astype(np.int64)
    frac = x - left
    cells, inverse = _sorted_unique(np.concatenate([left, left + 1]))
    step = np.minimum(np.diff(cells), width + 1)
    squeezed = np.concatenate([[0], np.cumsum(step)])[inverse]
    g_left, g_right = squeezed[: len(left)][pidx], squeezed[len(left):][pidx]
    f_right = frac[pidx]
    grid_len = int(squeezed.max()) + 1 if len(squeezed) else 1
    kernel_sum = float(np.exp(-0.5 * ((np.arange(-width, width + 1) * cell) / sigma) ** 2).sum())
    base_at = base[pidx]
    group, n_groups = reads.group, reads.n_multi
    changes = []
    for _ in tqdm(range(rounds), desc="EM", unit="round", disable=not progress, leave=False):
        mass = em_mass(w, g_left, g_right, f_right, grid_len)
        smooth = gaussian_filter1d(mass, sigma / cell, truncate=4.0, mode="constant")
        w, change = em_reweigh(w, smooth, g_left, g_right, f_right, base_at, kernel_sum, group, n_groups)
        changes.append(change)
        if change < tol:
            break
    return w, changes
