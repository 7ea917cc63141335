"""Seqlets by the bpAI-TAC rule: runs of bases whose attribution is beyond 1.96 SD.

bpAI-TAC (Methods, "Motif extraction") keeps the bases where "the attribution of the base
that is present in the sequence was above 1.96 (equivalent to p-value < 0.05, two-tailed
T-test) of the standard deviation of attributions across all sequences", and a seqlet
"consisted of at least four significant bases with single base-pair gaps between
significant positions". How we read it:

- the per-base attribution is the contribution of the observed base (the sum over the four
  channels of ``attributions``, which are zero off the observed base);
- two-tailed: a base is significant when ``|a| > 1.96 * SD``, so repressive (negative)
  seqlets are found too; each seqlet carries its sign;
- SD is the ordinary standard deviation (about the mean) of every per-base attribution of
  every sequence given, pooled; the comparison is of the value itself against zero (the
  test's null is "no contribution"), not of its distance from the mean;
- a seqlet is a run of significant bases of one sign in which consecutive significant
  bases are at most ``max_gap + 1`` apart (one non-significant base between them at most);
  a significant base of the other sign ends the run; the run needs ``min_bases``
  significant bases (4) and spans from its first to its last significant base.

The paper then clusters the seqlets; here TF-MoDISco does that (:mod:`.modisco`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError

Z_SIGNIFICANT = 1.96
MIN_BASES = 4
MAX_GAP = 1
COLUMNS = ["sequence", "start", "end", "strand", "n_significant", "attribution", "sign"]


@dataclass
class Seqlets:
    """The seqlets found by :func:`find_seqlets`.

    ``table`` has one row per seqlet: ``sequence`` (index into the input), ``start``, ``end``
    (half-open, positions in the sequence), ``strand`` ('.': the rule does not orient them),
    ``n_significant`` (significant bases in the run), ``attribution`` (sum over
    ``start:end``) and ``sign`` ('+' or '-'). ``one_hot`` and ``contributions`` hold each
    seqlet's slices ((end - start, 4) arrays, in table order) when the inputs had them.
    """

    table: "object"  # pandas.DataFrame
    threshold: float
    sd: float
    one_hot: list = field(default_factory=list)
    contributions: list = field(default_factory=list)


def per_base(attributions) -> np.ndarray:
    """(N, L) per-base attribution: the sum over the base channels of (N, L, 4), or (N, L) as is."""
    a = np.asarray(attributions)
    if a.ndim == 3:
        return a.sum(axis=2, dtype=np.float64)
    if a.ndim == 2:
        return a.astype(np.float64)
    raise InputError(f"attributions: expected (N, L, 4) or (N, L) values, got shape {a.shape}")


def significance_threshold(values, z: float = Z_SIGNIFICANT) -> tuple[float, float]:
    """(threshold, SD): ``z`` times the standard deviation of all per-base values pooled."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise InputError("attributions: no values to take a standard deviation of")
    sd = float(np.std(v))
    return z * sd, sd


def _runs(sig: np.ndarray, other: np.ndarray, min_bases: int, max_gap: int):
    """Runs in one flat (N * L) stream: (first, last) positions of the significant bases in
    ``sig`` grouped by the gap rule, with at least ``min_bases`` of them. ``other`` marks the
    significant bases of the opposite sign (a run does not cross one); sequence ends are
    marked in ``other`` by the caller's padding."""
    idx = np.flatnonzero(sig)
    if idx.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    blocked = np.concatenate([[0], np.cumsum(other)])  # blocked[i] = others before position i
    step = np.diff(idx)
    crosses = blocked[idx[1:]] - blocked[idx[:-1] + 1] > 0
    breaks = np.flatnonzero((step > max_gap + 1) | crosses)
    first = np.concatenate([[0], breaks + 1])
    last = np.concatenate([breaks, [idx.size - 1]])
    count = last - first + 1
    keep = count >= min_bases
    return idx[first[keep]], idx[last[keep]], count[keep]


def find_seqlets(attributions, one_hot=None, z: float = Z_SIGNIFICANT, min_bases: int = MIN_BASES,
                 max_gap: int = MAX_GAP, threshold: float | None = None) -> Seqlets:
    """Seqlets of ``attributions`` ((N, L, 4) contributions of the observed base, or (N, L)
    per-base values) by the bpAI-TAC rule (see the module text).

    ``threshold`` replaces ``z`` x SD (e.g. an SD taken over a larger set); ``one_hot``
    ((N, L, 4)) adds each seqlet's sequence slice; (N, L, 4) attributions add the slices of
    the contributions.
    """
    import pandas as pd

    if int(min_bases) < 1 or int(max_gap) < 0:
        raise InputError(f"expected min_bases >= 1 and max_gap >= 0, got {min_bases} and {max_gap}")
    a = per_base(attributions)
    n, length = a.shape
    if threshold is None:
        threshold, sd = significance_threshold(a, z)
    else:
        sd = float(np.std(a)) if a.size else 0.0
    # One flat stream with a blocking column after each sequence, so no run joins two sequences.
    padded = np.zeros((n, length + 1))
    padded[:, :length] = a
    flat = padded.ravel()
    edge = np.zeros((n, length + 1), bool)
    edge[:, length] = True
    edge = edge.ravel()
    pos, neg = flat > threshold, flat < -threshold
    rows = []
    for sign, sig, other in (("+", pos, neg | edge), ("-", neg, pos | edge)):
        first, last, count = _runs(sig & ~edge, other, int(min_bases), int(max_gap))
        seq, start = np.divmod(first, length + 1)
        end = last - seq * (length + 1) + 1
        for i, s, e, c in zip(seq, start, end, count):
            rows.append((int(i), int(s), int(e), ".", int(c), float(a[i, s:e].sum()), sign))
    rows.sort(key=lambda r: (r[0], r[1]))
    table = pd.DataFrame(rows, columns=COLUMNS)
    out = Seqlets(table=table, threshold=float(threshold), sd=sd)
    contrib = np.asarray(attributions) if np.ndim(attributions) == 3 else None
    for i, s, e in zip(table["sequence"], table["start"], table["end"]):
        if one_hot is not None:
            out.one_hot.append(np.asarray(one_hot[i, s:e]))
        if contrib is not None:
            out.contributions.append(contrib[i, s:e])
    return out


def interval_recovery(found, truth, min_overlap: float = 0.5) -> tuple[float, float]:
    """(precision, recall) of seqlet intervals against true intervals, both iterables of
    (sequence, start, end): a seqlet is right when at least ``min_overlap`` of it lies in
    one true interval of its sequence; a true interval is recovered when a right seqlet
    lies in it."""
    by_seq: dict = {}
    for k, (i, s, e) in enumerate(truth):
        by_seq.setdefault(int(i), []).append((int(s), int(e), k))
    found = list(found)
    hit_truth = set()
    right = 0
    for i, s, e in found:
        for ts, te, k in by_seq.get(int(i), []):
            if min(e, te) - max(s, ts) >= min_overlap * (e - s):
                right += 1
                hit_truth.add(k)
                break
    n_truth = sum(len(v) for v in by_seq.values())
    precision = right / len(found) if found else 0.0
    recall = len(hit_truth) / n_truth if n_truth else 0.0
    return precision, recall
