"""Motif matching (TOMTOM) and motif scanning (FIMO), through memelite.

:func:`tomtom` compares each query motif with every database motif by memelite's TOMTOM
(the "complete score" version: Pearson-like column scores, a background built from the
query's columns against all target columns, both strands). memelite gives the p-value of
the best alignment of each pair; here ``e_value`` is p times the number of targets (as
MEME's tomtom) and ``q_value`` is Benjamini-Hochberg over each query's targets.

The alignment is reported as memelite does: ``orientation`` '+' when the target matches as
given, '-' when its reverse complement does; ``offset`` is the column of the target (of its
reverse complement for '-') under the query's first column, negative when the query starts
before the target; ``overlap`` is the number of aligned columns.

:func:`scan` finds motif instances in one-hot sequences with memelite's FIMO (log-odds
against a uniform background, exact p-values by dynamic programming), adding q-values.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from basenji_tk.errors import InputError
from basenji_tk.io.meme import Motif, motif_database

log = logging.getLogger("basenji_tk")

MIN_TARGETS = 25  # memelite's p-values are unstable with fewer targets (its docstring)
TOMTOM_COLUMNS = ["query", "target", "target_alt", "p_value", "e_value", "q_value", "offset", "overlap",
                  "orientation", "score", "rank"]
SCAN_COLUMNS = ["sequence", "motif", "motif_alt", "start", "end", "strand", "score", "p_value", "q_value"]


def _motifs(motifs, what: str) -> list[Motif]:
    if isinstance(motifs, (str, bytes)) or hasattr(motifs, "__fspath__"):
        motifs = motif_database(motifs)
    motifs = list(motifs)
    if not motifs:
        raise InputError(f"no {what} motifs")
    return motifs


def _bh_rows(p: np.ndarray) -> np.ndarray:
    from scipy.stats import false_discovery_control

    return np.vstack([false_discovery_control(row, method="bh") for row in p])


def tomtom(queries, database, top: int | None = None, max_p: float | None = None,
           reverse_complement: bool = True, n_jobs: int = -1, **options) -> pd.DataFrame:
    """Match each query motif against ``database`` (lists of :class:`Motif`, or a MEME path /
    ``jaspar`` spec); one row per pair kept, ranked by p-value within each query (queries in
    their given order). ``top`` keeps the best ``top`` targets per query, ``max_p`` the pairs
    with p <= max_p; q-values are computed over all targets before either cut. ``options`` go
    to ``memelite.tomtom`` (n_score_bins, n_median_bins, n_target_bins, n_cache)."""
    from memelite import tomtom as memelite_tomtom

    queries, database = _motifs(queries, "query"), _motifs(database, "database")
    if len(database) < MIN_TARGETS:
        log.warning(f"TOMTOM against {len(database)} targets: p-values need at least {MIN_TARGETS} targets to be "
                    "stable (they depend on the targets' columns)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # memelite's own few-targets warning, said above once
        p, score, offset, overlap, strand = memelite_tomtom(
            [m.pwm.T.copy() for m in queries], [m.pwm.T.copy() for m in database],
            reverse_complement=reverse_complement, n_jobs=n_jobs, **options)[:5]
    p = np.clip(np.nan_to_num(np.asarray(p, dtype=np.float64), nan=1.0), 0.0, 1.0)
    q = _bh_rows(p)
    nq, nt = p.shape
    order = np.lexsort((-np.nan_to_num(np.asarray(score, dtype=np.float64)), p), axis=-1)  # p, then score
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(1, nt + 1)[None, :].repeat(nq, 0), axis=1)
    qi, ti = np.divmod(np.arange(nq * nt), nt)
    table = pd.DataFrame({
        "query": np.array([m.name for m in queries], dtype=object)[qi],
        "target": np.array([m.name for m in database], dtype=object)[ti],
        "target_alt": np.array([m.alt for m in database], dtype=object)[ti],
        "p_value": p.ravel(), "e_value": p.ravel() * nt, "q_value": q.ravel(),
        "offset": np.asarray(offset).ravel().astype(int), "overlap": np.asarray(overlap).ravel().astype(int),
        "orientation": np.where(np.asarray(strand).ravel() == 0, "+", "-"),
        "score": np.asarray(score, dtype=np.float64).ravel(), "rank": rank.ravel(),
        "_q": qi,
    })
    keep = np.ones(len(table), dtype=bool)
    if top is not None:
        keep &= table["rank"].to_numpy() <= top
    if max_p is not None:
        keep &= table["p_value"].to_numpy() <= max_p
    table = table[keep].sort_values(["_q", "rank"], kind="stable").drop(columns="_q")
    return table.reset_index(drop=True)[TOMTOM_COLUMNS]


def best_matches(table: pd.DataFrame, q: float = 0.05) -> pd.DataFrame:
    """The best-ranked target of each query whose q-value is at most ``q`` (queries with none are left out)."""
    passing = table[table["q_value"] <= q]
    return passing.sort_values(["rank"], kind="stable").groupby("query", sort=False).head(1).set_index(
        "query", drop=False).reindex([x for x in table["query"].unique() if x in set(passing["query"])]).reset_index(
        drop=True)


def match_rows(table: pd.DataFrame, queries, database, q: float = 0.05) -> list[dict]:
    """For :func:`basenji_tk.interpret.logos.match_figure`: per query (in order) its best match
    passing ``q`` (``target`` None when there is none)."""
    best = best_matches(table, q).set_index("query")
    by_name = {m.name: m for m in database}
    rows = []
    for m in queries:
        if m.name in best.index:
            b = best.loc[m.name]
            rows.append({"query": m, "target": by_name[b["target"]], "offset": int(b["offset"]),
                         "orientation": b["orientation"], "q_value": float(b["q_value"]),
                         "p_value": float(b["p_value"])})
        else:
            rows.append({"query": m, "target": None, "offset": 0, "orientation": "+", "q_value": None,
                         "p_value": None})
    return rows


def _bh_of_smallest(p: np.ndarray, m: int) -> np.ndarray:
    """Benjamini-Hochberg q-values of the ``len(p)`` smallest of ``m`` p-values.

    FIMO reports only the windows under the threshold, and every unreported window has a larger
    p-value, so the reported ones hold ranks 1..k of all m tests and their q-values are exact
    from them alone (scipy's false_discovery_control needs all m values, which memelite never
    computes: 2 x 10^7 values for 20 motifs on 0.5 Mb)."""
    if len(p) == 0:
        return np.zeros(0)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, len(p) + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.minimum(q, 1.0)
    return out


def scan(motifs, one_hot, threshold: float = 1e-4, lengths=None, reverse_complement: bool = True) -> pd.DataFrame:
    """FIMO hits of ``motifs`` (list of :class:`Motif`) in ``one_hot`` ``(N, L, 4)`` (all-zero rows are N).

    ``lengths`` (N,) gives each sequence's own length when shorter sequences were padded to L;
    hits reaching into the padding are dropped. One row per hit with p <= ``threshold``:
    ``sequence`` (index into one_hot), 0-based ``start`` and exclusive ``end``, ``strand``,
    ``score`` (log2-odds), ``p_value`` and ``q_value`` (Benjamini-Hochberg per motif over all
    windows scanned on both strands, as FIMO). Sorted by sequence, start, motif."""
    from memelite import fimo

    motifs = _motifs(motifs, "scan")
    x = np.asarray(one_hot)
    if x.ndim != 3 or x.shape[2] != 4:
        raise ValueError(f"one_hot must be (N, L, 4), not {x.shape}")
    n, length = x.shape[:2]
    lengths = np.full(n, length, dtype=np.int64) if lengths is None else np.asarray(lengths, dtype=np.int64)
    widest = max(motifs, key=lambda m: m.width)
    if n and widest.width > lengths.max():
        raise InputError(f"motif {widest.name} is {widest.width} bp, longer than every sequence scanned "
                         f"(at most {lengths.max()} bp)")
    if len({m.name for m in motifs}) != len(motifs):
        raise InputError("motif names must be unique to scan")
    frames = fimo({m.name: m.pwm.T.copy() for m in motifs}, np.ascontiguousarray(x.transpose(0, 2, 1)),
                  threshold=threshold, reverse_complement=reverse_complement) if n else []
    strands = 2 if reverse_complement else 1
    out = []
    for m, hits in zip(motifs, frames):
        if hits is None or len(hits) == 0:
            continue
        seq = hits["sequence_name"].to_numpy().astype(np.int64)
        start, end = hits["start"].to_numpy().astype(np.int64), hits["end"].to_numpy().astype(np.int64)
        ok = end <= lengths[seq]
        tested = strands * int(np.clip(lengths - m.width + 1, 0, None).sum())
        p = hits["p-value"].to_numpy(dtype=np.float64)[ok]
        out.append(pd.DataFrame({"sequence": seq[ok], "motif": m.name, "motif_alt": m.alt, "start": start[ok],
                                 "end": end[ok], "strand": hits["strand"].to_numpy()[ok],
                                 "score": hits["score"].to_numpy(dtype=np.float64)[ok], "p_value": p,
                                 "q_value": _bh_of_smallest(p, tested)}))
    if not out:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(SCAN_COLUMNS, (
            "int64", object, object, "int64", "int64", object, "float64", "float64", "float64"))})
    table = pd.concat(out, ignore_index=True)
    return table.sort_values(["sequence", "start", "motif", "strand"], kind="stable").reset_index(drop=True)
