"""Backgrounds for in-silico experiments: dinucleotide shuffles of regions' windows, GC-matched genome windows.

Both keep the genome window each background stands for, so a model's non-sequence inputs (a
signal track) can be read there. Shuffles are GENERATED sequence and say so in ``kind``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError

GENERATED = "GENERATED dinucleotide shuffle"


@dataclass
class Backgrounds:
    """``one_hot`` ``(N, L, 4)`` float32; ``windows`` the genome window each stands for (its
    non-sequence inputs are read there); ``source`` (a region name or window); ``kind``."""

    one_hot: np.ndarray
    windows: list
    source: list
    kind: str

    def __len__(self) -> int:
        return len(self.one_hot)


def site_windows(sites, length: int, sizes: dict) -> list:
    """The ``length``-bp window centred on each site, as ``(chrom, start, end)``; sites whose window
    runs off a chromosome end are left out."""
    out = []
    for s in sites:
        w0 = (s.start + s.end) // 2 - length // 2
        if w0 >= 0 and w0 + length <= sizes[s.chrom]:
            out.append((s, (s.chrom, w0, w0 + length)))
    return out


def shuffled_backgrounds(genome, sites, length: int, n: int, rng) -> Backgrounds:
    """``n`` dinucleotide shuffles (:func:`basenji_tk.interpret.shuffle.dinuc_shuffle`) of the windows
    centred on ``sites``: background ``i`` is shuffle ``i // R`` of window ``i % R`` (R windows)."""
    from basenji_tk.data import dna
    from basenji_tk.interpret.shuffle import dinuc_shuffle

    todo = site_windows(sites, length, genome.sizes)
    if not todo:
        raise InputError(f"no region's {length:,} bp window lies inside its chromosome")
    per = -(-int(n) // len(todo))
    one_hot = np.stack([dna.one_hot(genome.fetch(*w), dtype=np.float32) for _, w in todo])
    shuffled = np.asarray(dinuc_shuffle(one_hot, per, rng), dtype=np.float32)  # (R, per, L, 4)
    order = [(i % len(todo), i // len(todo)) for i in range(int(n))]
    return Backgrounds(np.stack([shuffled[r, k] for r, k in order]), [todo[r][1] for r, _ in order],
                       [todo[r][0].name for r, _ in order], GENERATED)


def window_gc(genome, windows) -> np.ndarray:
    """GC fraction of the called (A/C/G/T) bases of each window."""
    from basenji_tk.data import dna

    out = []
    for w in windows:
        x = dna.one_hot(genome.fetch(*w), dtype=np.float32)
        called = x.sum()
        out.append(float(x[:, 1:3].sum() / called) if called else np.nan)
    return np.array(out)


def gc_backgrounds(genome, length: int, n: int, rng, gc, exclude=None) -> Backgrounds:
    """``n`` genome windows of ``length`` bp with GC ``gc`` (one fraction, or fractions cycled over the
    ``n``; :func:`basenji_tk.interpret.shuffle.gc_matched_windows`), outside ``exclude``."""
    from basenji_tk.data import dna
    from basenji_tk.interpret.shuffle import gc_matched_windows

    windows = [tuple(w) for w in gc_matched_windows(genome, length, gc, int(n), rng, exclude=exclude)]
    if not windows:
        raise InputError(f"no {length:,} bp genome window matches GC {gc}")
    one_hot = np.stack([dna.one_hot(genome.fetch(c, a, b), dtype=np.float32) for c, a, b in windows])
    return Backgrounds(one_hot, windows, [f"{c}:{a}-{b}" for c, a, b in windows], "genome GC-matched")
