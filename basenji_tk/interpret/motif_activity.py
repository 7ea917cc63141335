"""Motif activity across contexts against the expression of the TFs that could bind each motif
(ChromDragoNN §3.4, Fig. 3A): pure functions on tables, and the heatmap.

**One motif across contexts.** TF-MoDISco runs once per context (:mod:`.context_motifs`), so the
"same" motif is a different pattern in each. A pattern becomes a motif by the TF name of its best
significant TOMTOM match (``matches.tsv``'s ``significant``: q below the threshold and not nearly
flat; :mod:`basenji_tk.interpret.modisco`), compared without regard to case: the CTCF-like
patterns of two contexts are one motif ``CTCF`` even when their best matrices differ
(MA0139.2, MA1929.2). A motif is therefore a JASPAR TF name, a dimer name (``Pou5f1::Sox2``)
included. Patterns with no significant match stay in their context's ``matches.tsv`` but are
not in the activity matrix: without a name there is nothing to join them across contexts by.

**Activity** (:func:`motif_activity`) is the paper's binary vector: 1 where TF-MoDISco found the
motif in the context, 0 elsewhere; ``(motifs, contexts)``. By default only positive patterns
count (those that raise the accessibility logit: the paper's "predictive" motifs); ``sign='both'``
counts the negative metacluster too.

**Candidate TFs** of a motif (:func:`motif_candidates`): the TF names of every database motif
that any of its named patterns matches at q below the threshold (not only the best match: the
paper's "all the TFs (often from the same family) that could potentially bind the motif"). A
dimer name ``A::B`` gives A and B; JASPAR's ``(var.2)`` suffixes are dropped.

**Correlation** (:func:`motif_expression_correlation`): per motif and candidate TF present among
the expression columns (case-insensitive), Pearson r and its p-value between the activity vector
and the TF's expression over the contexts. A constant vector (a motif found everywhere, as the
paper's CTCF; a TF expressed equally everywhere) has no correlation: r is NaN and the row sorts
last. Rows are sorted by r, largest first; the first 15 are the rows of Fig. 3A.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from basenji_tk.errors import InputError

_VARIANT = re.compile(r"\(var\.\d+\)$", re.IGNORECASE)
CORRELATION_COLUMNS = ["motif", "tf", "jaspar_names", "r", "p_value", "q_value", "n_contexts", "active_contexts"]


def tf_names(name: str) -> list[str]:
    """The TFs a database motif's name stands for: ``A::B`` -> [A, B]; ``NR2F1(var.2)`` -> [NR2F1]."""
    out = []
    for part in str(name).split("::"):
        part = _VARIANT.sub("", part.strip()).strip()
        if part and part.upper() not in (p.upper() for p in out):
            out.append(part)
    return out


def _matches_of(result):
    """A context's ``matches.tsv`` table from a result dict (``{"matches": df, ...}``) or the table itself."""
    return result["matches"] if isinstance(result, dict) else result


SIGNS = ("positive", "both")


def _named(matches, sign: str = "positive") -> pd.DataFrame:
    """The named patterns of one context's matches table: significant, with a TF name, and with
    ``sign`` 'positive' only TF-MoDISco's positive patterns (``pos_patterns.*``)."""
    if sign not in SIGNS:
        raise InputError(f"sign: '{sign}' (expected one of {', '.join(SIGNS)})")
    if matches is None or not len(matches):
        return pd.DataFrame(columns=["pattern", "tf", "match"])
    keep = matches["significant"].astype(str).str.lower().isin(["true", "1"])
    keep &= matches["tf"].notna() & (matches["tf"].astype(str) != "")
    if sign == "positive":
        keep &= matches["pattern"].astype(str).str.startswith("pos_")
    return matches[keep]


def motif_activity(per_context_results: dict, sign: str = "positive") -> pd.DataFrame:
    """``(motifs, contexts)`` int 0/1: whether TF-MoDISco found each motif in each context.

    ``per_context_results``: ``{context: matches table}`` (or ``{context: {"matches": table}}``),
    the ``matches.tsv`` of :func:`basenji_tk.interpret.modisco.discover_motifs`, contexts in
    column order. A motif is the TF name of a pattern's best significant match (module text);
    the name kept is its first spelling in context order. A context where nothing was named is an
    all-zero column. ``sign``: 'positive' counts the patterns that raise the accessibility logit
    (TF-MoDISco's positive metacluster; the default), 'both' the negative ones as well."""
    contexts = list(per_context_results)
    spelled, found = {}, {}
    for c in contexts:
        for name in _named(_matches_of(per_context_results[c]), sign)["tf"].astype(str):
            key = name.upper()
            spelled.setdefault(key, name)
            found.setdefault(key, set()).add(c)
    keys = sorted(spelled, key=lambda k: (-len(found[k]), k))
    table = np.array([[int(c in found[k]) for c in contexts] for k in keys], dtype=np.int64).reshape(len(keys),
                                                                                                    len(contexts))
    return pd.DataFrame(table, index=pd.Index([spelled[k] for k in keys], name="motif"), columns=contexts)


def motif_candidates(per_context_results: dict, q: float = 0.05, sign: str = "positive") -> dict:
    """``{motif: [database TF names]}``: for each motif of :func:`motif_activity`, the TF names of
    every database motif its named patterns match at q < ``q`` (in any context; the best match
    first). Each result needs ``matches`` and ``tomtom`` (TOMTOM's table of pattern x target
    pairs: ``query``, ``target_alt``, ``q_value``); without ``tomtom`` only the best match counts."""
    out = {}
    for c, result in per_context_results.items():
        named = _named(_matches_of(result), sign)
        hits = result.get("tomtom") if isinstance(result, dict) else None
        for row in named.itertuples():
            motif = str(row.tf)
            key = next((k for k in out if k.upper() == motif.upper()), motif)
            names = out.setdefault(key, [])
            extra = []
            if hits is not None and len(hits):
                mine = hits[(hits["query"] == row.pattern) & (hits["q_value"] < q)]
                extra = list(mine.sort_values("p_value", kind="stable")["target_alt"].astype(str))
            for name in [motif] + extra:
                if name.upper() not in (n.upper() for n in names):
                    names.append(name)
    return out


def _candidate_map(matches) -> dict:
    if isinstance(matches, pd.DataFrame):
        if not {"motif", "tf"} <= set(matches.columns):
            raise ValueError("matches: a table needs 'motif' and 'tf' columns")
        out = {}
        for m, t in zip(matches["motif"].astype(str), matches["tf"].astype(str)):
            out.setdefault(m, []).append(t)
        return out
    return {str(k): [v] if isinstance(v, str) else list(v) for k, v in dict(matches).items()}


def motif_expression_correlation(activity: pd.DataFrame, expression: pd.DataFrame, matches) -> pd.DataFrame:
    """Pearson r of each motif's activity with the expression of each TF that could bind it.

    ``activity``: ``(motifs, contexts)`` 0/1 (:func:`motif_activity`); ``expression``:
    ``(contexts, TFs)`` (rows named by context, e.g. log TPM); ``matches``: ``{motif: [database
    TF names]}`` (:func:`motif_candidates`) or a table with ``motif`` and ``tf`` columns. Each
    database name gives its TFs (:func:`tf_names`), looked up among the expression columns without
    regard to case. One row per (motif, expression column): ``motif``, ``tf`` (the column),
    ``jaspar_names`` (the database names that led to it), ``r``, ``p_value`` (two-sided),
    ``q_value`` (Benjamini-Hochberg over the rows with a p-value), ``n_contexts``,
    ``active_contexts``; sorted by r, largest first, NaN (a constant vector) last."""
    from scipy import stats as st

    contexts = [c for c in activity.columns]
    missing = [c for c in contexts if c not in expression.index]
    if missing:
        raise InputError(f"expression: no row for context(s) {', '.join(map(str, missing[:5]))} of the activity table")
    expr = expression.loc[contexts]
    columns = {str(c).upper(): c for c in expr.columns}
    cand = _candidate_map(matches)
    rows = []
    for motif in activity.index:
        a = activity.loc[motif].to_numpy(dtype=np.float64)
        via = {}
        for db_name in cand.get(str(motif), [str(motif)]):
            for tf in tf_names(db_name):
                col = columns.get(tf.upper())
                if col is not None:
                    via.setdefault(col, []).append(db_name)
        for col, names in via.items():
            e = expr[col].to_numpy(dtype=np.float64)
            ok = np.isfinite(e)
            r = p = np.nan
            if ok.sum() >= 3 and np.ptp(a[ok]) > 0 and np.ptp(e[ok]) > 0:
                r, p = st.pearsonr(a[ok], e[ok])
            rows.append({"motif": motif, "tf": col, "jaspar_names": ",".join(dict.fromkeys(names)), "r": float(r),
                         "p_value": float(p), "q_value": np.nan, "n_contexts": int(ok.sum()),
                         "active_contexts": int(a.sum())})
    table = pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
    if len(table):
        has = table["p_value"].notna().to_numpy()
        if has.any():
            table.loc[has, "q_value"] = st.false_discovery_control(table.loc[has, "p_value"].to_numpy(), method="bh")
        table = table.sort_values("r", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return table


def planted_recall(correlation: pd.DataFrame, planted, top: int = 15) -> float:
    """The share of ``planted`` TF names (a semi-synthetic truth) among the ``tf`` of the first
    ``top`` rows of a correlation table with a finite r (case-insensitive); NaN without planted TFs."""
    planted = {str(t).upper() for t in planted}
    if not planted:
        return float("nan")
    shown = correlation[correlation["r"].notna()].head(int(top))
    return len(planted & set(shown["tf"].astype(str).str.upper())) / len(planted)


def zscore_rows(values) -> np.ndarray:
    """Each row minus its mean over its SD (population); a constant row is all zeros."""
    x = np.asarray(values, dtype=np.float64)
    sd = x.std(axis=1, keepdims=True)
    return np.where(sd > 0, (x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0), 0.0)


def column_order(activity_rows, expression_rows, contexts) -> list:
    """Contexts ordered by average-linkage clustering (Euclidean, optimal leaf order) of their
    columns of the stacked activity and z-scored expression rows; the given order for < 3."""
    contexts = list(contexts)
    if len(contexts) < 3:
        return contexts
    from scipy.cluster.hierarchy import leaves_list, linkage

    stacked = np.vstack([np.asarray(activity_rows, np.float64), np.asarray(expression_rows, np.float64)]).T
    return [contexts[i] for i in leaves_list(linkage(stacked, "average", optimal_ordering=True))]


def heatmap(correlation: pd.DataFrame, activity: pd.DataFrame, expression: pd.DataFrame, path, top: int = 15,
            order=None, title: str = "", expression_label: str = "expression, z-score per row",
            column_labels: dict | None = None) -> str:
    """Fig. 3A: for the first ``top`` rows of ``correlation`` with a finite r, the motif's activity
    across contexts (left) beside the row-normalised (z-scored) expression of its TF (right), both
    in one column order (``order``: a list of contexts; default :func:`column_order`), columns
    named by ``column_labels`` (``{context: text}``, default the names). One PNG."""
    from basenji_tk import plots
    import matplotlib.pyplot as plt

    rows = correlation[correlation["r"].notna()].head(int(top))
    contexts = list(activity.columns)
    act = np.array([activity.loc[m, contexts].to_numpy(np.float64) for m in rows["motif"]]).reshape(len(rows),
                                                                                                    len(contexts))
    z = zscore_rows(np.array([expression.loc[contexts, t].to_numpy(np.float64) for t in rows["tf"]])
                    .reshape(len(rows), len(contexts)))
    if order is not None:
        unknown = [c for c in order if c not in contexts]
        if unknown or len(order) != len(contexts):
            raise InputError(f"heatmap order: expected each of the {len(contexts)} contexts once "
                             f"({', '.join(map(str, unknown[:3]))} unknown)" if unknown else
                             f"heatmap order: expected each of the {len(contexts)} contexts once")
        ordered = list(order)
    else:
        ordered = column_order(act, z, contexts) if len(rows) else contexts
    idx = [contexts.index(c) for c in ordered]
    act, z = act[:, idx], z[:, idx]
    h = max(2.5, 0.32 * max(1, len(rows)) + 1.8)
    w = min(20.0, max(7.0, 0.3 * len(ordered) * 2 + 4))
    fig, (left, right) = plt.subplots(1, 2, figsize=(w, h), sharey=True)
    labels = [f"{m} / {t} (r {r:.2f})" for m, t, r in zip(rows["motif"], rows["tf"], rows["r"])]
    if len(rows):
        left.imshow(act, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        lim = max(1.0, float(np.abs(z).max()))
        im = right.imshow(z, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
        fig.colorbar(im, ax=right, fraction=0.04, pad=0.02, label="row z-score")
        left.set_yticks(range(len(rows)))
        left.set_yticklabels(labels, fontsize=7)
    else:
        for ax in (left, right):
            ax.text(0.5, 0.5, "no motif with a correlation", ha="center", va="center", transform=ax.transAxes)
    for ax, name in ((left, "motif found by TF-MoDISco (black)"), (right, f"TF {expression_label}")):
        ax.set_xticks(range(len(ordered)))
        ax.set_xticklabels([(column_labels or {}).get(c, c) for c in ordered], rotation=90, fontsize=6)
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return plots._save(fig, path, 150)
