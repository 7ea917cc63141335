"""What ``sed_ld.py`` writes: regression.tsv, enrichment.tsv, enrichment.png and sed_ld.json.

:func:`write_outputs` writes the :class:`~basenji_tk.analysis.sedld.Results` of
:func:`~basenji_tk.analysis.sedld.analyze` under temporary names and renames them once all are
complete; :func:`plot_enrichment` draws the enrichment; :func:`_jsonable` turns numpy values
(and NaN, as null) into what :mod:`json` writes.
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # only for the annotation: sedld imports this module
    from basenji_tk.analysis.sedld import Results


def _fmt(v):
    if isinstance(v, float):
        return "nan" if not np.isfinite(v) else f"{v:.6g}"
    return str(v)


def _write_tsv(path, rows, columns):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_fmt(r[c]) for c in columns])


def plot_enrichment(rows, path, max_panels: int = 12) -> str:
    """Bar chart of ``relative`` by bin, one panel per (tissue, target), one bar group per comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["tissue"], r["target"]) for r in rows))[:max_panels]
    comps = list(dict.fromkeys(r["comparison"] for r in rows))
    ncol = min(3, max(len(panels), 1))
    nrow = max(1, math.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    width = 0.8 / max(len(comps), 1)
    colors = ["#1f5fa8", "#c8553d", "#5a9e4b", "#8e6bb0"]
    for ax, (tissue, target) in zip(axes.ravel(), panels):
        for c, comp in enumerate(comps):
            sel = [r for r in rows if (r["tissue"], r["target"], r["comparison"]) == (tissue, target, comp)]
            x = np.array([r["bin"] for r in sel], dtype=float) + (c - (len(comps) - 1) / 2) * width
            ax.bar(x, [r["relative"] for r in sel], width=width, color=colors[c % len(colors)], label=comp)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("quantile of prediction gain from |SED-LD|")
        ax.set_ylabel("significant eQTLs\n(relative to quantiles 1-3)")
        ax.set_title(f"{tissue} / {target}", fontsize=10)
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=110)
    finally:
        plt.close(fig)
    return str(path)


REGRESSION_COLUMNS = ("tissue", "target", "model", "n", "genes", "term", "coef", "se", "t", "p", "se_type", "p_ols",
                      "r2")
ENRICHMENT_COLUMNS = ("tissue", "target", "comparison", "bin", "n", "n_significant", "proportion", "relative")
OUTPUT_NAMES = ("regression.tsv", "enrichment.tsv", "enrichment.png", "sed_ld.json")


def write_outputs(results: Results, out_dir) -> list:
    """Write regression.tsv, enrichment.tsv, enrichment.png and sed_ld.json into ``out_dir``.

    Each is written under a temporary name in ``out_dir`` and renamed once all are complete.
    """
    os.makedirs(out_dir, exist_ok=True)
    final = [os.path.join(out_dir, n) for n in OUTPUT_NAMES]
    tmp = [os.path.join(out_dir, f".{n}.{os.getpid()}.tmp") for n in OUTPUT_NAMES]
    try:
        _write_tsv(tmp[0], results.regression, REGRESSION_COLUMNS)
        _write_tsv(tmp[1], results.enrichment, ENRICHMENT_COLUMNS)
        plot_enrichment(results.enrichment, tmp[2])
        with open(tmp[3], "w") as fh:
            json.dump(_jsonable(results.summary), fh, indent=1)
            fh.write("\n")
        for t, f in zip(tmp, final):
            os.replace(t, f)
    finally:
        for t in tmp:
            if os.path.exists(t):
                os.remove(t)
    return final


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj
