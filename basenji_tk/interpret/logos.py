"""Sequence logos with logomaker: a motif, a contribution matrix, and a motif beside its match.

:func:`draw_logo` draws a ``(W, 4)`` matrix (A, C, G, T) on an axis: a probability matrix as
an information-content logo (each letter as tall as its probability times the position's
bits against a uniform background, so 0-2 bits), or raw heights (a contribution or
hypothetical-contribution matrix, signed). :func:`match_figure` draws, for each query, its
logo above its best database match, the match reverse complemented when TOMTOM matched the
other strand and shifted by TOMTOM's offset so that aligned columns stand one above the
other; the match's title gives its q-value (rows come from
:func:`basenji_tk.interpret.motifmatch.match_rows`).
"""

from __future__ import annotations

import numpy as np

from basenji_tk.plots import _save

COLORS = {"A": "#109648", "C": "#255c99", "G": "#f7b32b", "T": "#d62839"}


def information_heights(pwm) -> np.ndarray:
    """``(W, 4)`` letter heights of an information-content logo of probabilities ``pwm``."""
    p = np.asarray(pwm, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        bits = 2.0 + np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    return p * bits[:, None]


def draw_logo(ax, matrix, information: bool = True, title: str = "", start: int = 0, ylabel: str | None = None):
    """Draw ``matrix`` ``(W, 4)`` on ``ax`` with positions ``start .. start + W - 1``; returns ``ax``.

    ``information``: ``matrix`` holds probabilities (rows renormalised) drawn in bits; otherwise
    its values are the letters' heights (negative ones below the axis)."""
    import logomaker
    import pandas as pd

    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 4:
        raise ValueError(f"draw_logo: expected a (W, 4) matrix, not {m.shape}")
    heights = information_heights(m) if information else m
    df = pd.DataFrame(heights, columns=list("ACGT"), index=np.arange(start, start + len(m)))
    logomaker.Logo(df, ax=ax, color_scheme=COLORS, show_spines=False, baseline_width=0.5 if not information else 0)
    if information:
        ax.set_ylim(0, 2)
        ax.set_yticks([0, 1, 2])
    ax.set_ylabel(ylabel if ylabel is not None else ("bits" if information else "contribution"), fontsize=8)
    ax.spines["left"].set_visible(True)
    ax.spines["bottom"].set_visible(True)
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    return ax


def aligned_starts(query_width: int, target_width: int, offset: int) -> tuple[int, int, int, int]:
    """x of the query's and the (oriented) target's first columns, and the x range covering both,
    for a TOMTOM ``offset`` (the target column under the query's first column)."""
    q0, t0 = 0, -int(offset)
    lo, hi = min(q0, t0), max(q0 + query_width, t0 + target_width)
    return q0, t0, lo, hi


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2g}"


def match_figure(rows, path, title: str = "", q: float = 0.05) -> str:
    """One panel pair per row: the query's logo and, below it on the same positions, its match.

    Each row is a dict with ``query`` (a :class:`basenji_tk.io.meme.Motif`), ``target`` (a Motif
    or None for no match passing ``q``), ``offset``, ``orientation`` ('+' or '-') and ``q_value``;
    optional ``contribution`` (a ``(W, 4)`` matrix drawn with raw heights instead of the query's
    information logo) and ``label`` (the query's title). Writes a PNG; returns ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(rows)
    if not rows:
        raise ValueError("match_figure: no rows")
    spans = []
    for r in rows:
        qm, tm = r["query"], r.get("target")
        tw = tm.width if tm is not None else qm.width
        spans.append(aligned_starts(qm.width, tw, r.get("offset", 0) if tm is not None else 0))
    width = max(hi - lo for _, _, lo, hi in spans)
    fig, axes = plt.subplots(2 * len(rows), 1, figsize=(max(4.0, 0.3 * width + 1.5), 1.5 * 2 * len(rows)),
                             squeeze=False)
    for k, (r, (q0, t0, lo, hi)) in enumerate(zip(rows, spans)):
        ax_q, ax_t = axes[2 * k, 0], axes[2 * k + 1, 0]
        qm, tm = r["query"], r.get("target")
        label = r.get("label") or f"query {qm.label}"
        if r.get("contribution") is not None:
            draw_logo(ax_q, r["contribution"], information=False, title=label, start=q0)
        else:
            draw_logo(ax_q, qm.pwm, information=True, title=label, start=q0)
        if tm is None:
            ax_t.text(0.5, 0.5, f"no match with q <= {q:g}", ha="center", va="center", transform=ax_t.transAxes,
                      fontsize=9)
            ax_t.set_axis_off()
        else:
            minus = r.get("orientation", "+") == "-"
            shown = tm.reverse_complement() if minus else tm
            strand = " (reverse complement)" if minus else ""
            draw_logo(ax_t, shown.pwm, information=True, start=t0,
                      title=f"best match {tm.label}{strand}: q = {_fmt(r.get('q_value'))}, offset {r.get('offset')}")
        for ax in (ax_q, ax_t):
            ax.set_xlim(lo - 0.5, lo + width - 0.5)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
