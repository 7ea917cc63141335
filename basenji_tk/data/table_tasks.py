"""The tasks of a table dataset (:mod:`basenji_tk.data.tables`): each task is one channel of
the ``activity`` label, from one column, the mean of replicate columns (MPRA M5), or the mean
over replicates of ``log2(((RNA+1)/sum(RNA+1)) / ((DNA+1)/sum(DNA+1)))`` from count columns
(M3); and the replicates' agreement as a row weight (M11: ``d = sqrt(sum over replicated tasks
of the mean over replicate pairs of (r_a - r_b)^2)``, the Euclidean distance of the replicate
vectors for 2 replicates, and ``w = (max d - d) / (max d - min d)`` over all rows kept, so -d
rescaled to [0, 1]) and their Pearson r (M6).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError

COUNTS_FORMULA = "log2(((RNA+1)/sum(RNA+1)) / ((DNA+1)/sum(DNA+1)))"
DISTANCE = ("sqrt(sum over replicated tasks of the mean over replicate pairs of (r_a - r_b)^2); "
            "weight = (max d - d) / (max d - min d) over all rows kept")


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Task:
    """One channel of the label. ``columns``: column names (source ``activity``) or
    ``(rna, dna)`` name pairs (source ``counts``), one entry per replicate."""

    name: str
    columns: tuple
    source: str = "activity"

    @property
    def replicates(self) -> int:
        return len(self.columns)

    def column_names(self) -> list:
        return [c for col in self.columns for c in ((col,) if self.source == "activity" else col)]

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source,
                "columns": [list(c) if self.source == "counts" else c for c in self.columns]}


def parse_task(text: str, source: str, option: str) -> list:
    """Tasks from one command-line value.

    ``activity``: ``COL[,COL...]`` (one task per column) or ``NAME=COL1,COL2[,...]`` (one task,
    the mean of replicate columns). ``counts``: ``NAME=RNA1:DNA1[,RNA2:DNA2...]`` or
    ``RNA:DNA`` (the task named after the RNA column)."""
    name, sep, rest = text.partition("=")
    if not sep:
        name, rest = "", text
    name = name.strip()
    parts = [p.strip() for p in rest.split(",")]
    if not rest.strip() or any(not p for p in parts) or (sep and not name):
        raise InputError(f"{option} {text!r}: expected {'NAME=COL1,COL2 or COL,COL' if source == 'activity' else 'NAME=RNA1:DNA1,RNA2:DNA2'}")
    if source == "activity":
        return [Task(name, tuple(parts))] if name else [Task(p, (p,)) for p in parts]
    pairs = []
    for p in parts:
        rna, colon, dna_col = p.partition(":")
        if not colon or not rna.strip() or not dna_col.strip():
            raise InputError(f"{option} {text!r}: each replicate is RNA_COLUMN:DNA_COLUMN, got {p!r}")
        pairs.append((rna.strip(), dna_col.strip()))
    return [Task(name or pairs[0][0], tuple(pairs), "counts")]


# ----------------------------------------------------------------------------- activity, replicates, weights
def counts_activity(rna: np.ndarray, dna_counts: np.ndarray) -> np.ndarray:
    """MPRA activity ``(n,)`` from RNA and DNA counts ``(n,)`` (CHECKLIST M3):
    ``log2(((RNA+1)/sum(RNA+1)) / ((DNA+1)/sum(DNA+1)))``."""
    r = np.asarray(rna, dtype=np.float64) + 1.0
    d = np.asarray(dna_counts, dtype=np.float64) + 1.0
    return np.log2((r / r.sum()) / (d / d.sum()))


def replicate_mean(reps: np.ndarray) -> np.ndarray:
    """``(n, R)`` replicate values -> ``(n,)`` their mean."""
    return np.asarray(reps, dtype=np.float64).mean(axis=1)


def replicate_distance(tasks: list) -> np.ndarray:
    """Distance between replicates ``(n,)`` from a list of ``(n, R_t)`` arrays (one per task;
    tasks with one replicate add nothing): ``sqrt(sum_t mean over pairs a<b of (r_a - r_b)^2)``."""
    n = len(tasks[0])
    total = np.zeros(n)
    for reps in tasks:
        reps = np.asarray(reps, dtype=np.float64)
        r = reps.shape[1]
        if r < 2:
            continue
        sq = [(reps[:, a] - reps[:, b]) ** 2 for a in range(r) for b in range(a + 1, r)]
        total += np.mean(sq, axis=0)
    return np.sqrt(total)


def agreement_weight(distance: np.ndarray) -> np.ndarray:
    """``(n,)`` distances -> weights in [0, 1]: ``-d`` rescaled by its range (CHECKLIST M11);
    all 1 when every distance is the same."""
    d = np.asarray(distance, dtype=np.float64)
    span = d.max() - d.min() if len(d) else 0.0
    if span <= 0:
        return np.ones(len(d))
    return (d.max() - d) / span


def replicate_pearson(reps: np.ndarray) -> float | None:
    """Mean Pearson r over replicate pairs of ``(n, R)`` values (CHECKLIST M6); None if undefined."""
    reps = np.asarray(reps, dtype=np.float64)
    rs = []
    for a in range(reps.shape[1]):
        for b in range(a + 1, reps.shape[1]):
            x, y = reps[:, a], reps[:, b]
            if x.std() > 0 and y.std() > 0:
                rs.append(float(np.corrcoef(x, y)[0, 1]))
    return float(np.mean(rs)) if rs else None
