"""Plots of motif insertions (:mod:`basenji_tk.interpret.insertion`): effect box plots and footprints."""

from __future__ import annotations

import numpy as np

WITH_COLOR, WITHOUT_COLOR = "#c8553d", "#1f5fa8"


def box(table, labels, path, title: str = "", ylabel: str = "delta", summary=None) -> str:
    """Box plots of the per-background deltas: one box per arm (``labels``: ``delta``, ``delta_b``)
    and insertion strand, with a line at 0; each labelled with its Wilcoxon p from ``summary``."""
    import textwrap

    from basenji_tk import plots

    plt = plots.plt
    strands = list(dict.fromkeys(table["strand"]))
    p_of = {} if summary is None else {(r.group, r.strand): r.p_value for r in summary.itertuples()}
    data, names = [], []
    for k, label in enumerate(labels):
        col = "delta" if k == 0 else "delta_b"
        for s in strands:
            data.append(table.loc[table["strand"] == s, col].to_numpy(dtype=float))
            p = p_of.get((label, s))
            names.append(f"{label}" + (f"\nstrand {s}" if len(strands) > 1 else "")
                         + (f"\np = {p:.2g}" if p is not None else ""))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.2 + 1.4 * len(data)), 4.2))
    title = "\n".join(textwrap.wrap(title, 55))
    ax.boxplot(data, showfliers=True, flierprops={"markersize": 2, "alpha": 0.4})
    ax.set_xticks(np.arange(1, len(data) + 1), names, fontsize=8)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel(ylabel)
    return plots._finish_figure(fig, ax, path, title)


def footprint(fp, path, title: str = "") -> str:
    """Median (line) and 25-75 % band of a profile with and without the motif: one panel per
    target (columns) and insertion strand (rows)."""
    from basenji_tk import plots

    plt = plots.plt
    strands, targets = list(dict.fromkeys(fp["strand"])), list(dict.fromkeys(fp["target"]))
    fig, axes = plt.subplots(len(strands), len(targets), figsize=(3.6 * len(targets), 2.6 * len(strands)),
                             squeeze=False, sharex=True)
    for i, s in enumerate(strands):
        for j, t in enumerate(targets):
            ax, part = axes[i][j], fp[(fp["strand"] == s) & (fp["target"] == t)]
            x = part["position"].to_numpy(dtype=float)
            for what, color in (("without", WITHOUT_COLOR), ("with", WITH_COLOR)):
                ax.fill_between(x, part[f"{what}_q25"], part[f"{what}_q75"], color=color, alpha=0.25, lw=0)
                ax.plot(x, part[f"{what}_median"], color=color, lw=1, label=f"{what} motif")
            ax.axvline(0, color="grey", lw=0.6, ls=":")
            ax.set_title(f"{t}, motif on {s}", fontsize=9)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
            if i == len(strands) - 1:
                ax.set_xlabel("bp from the motif centre")
    axes[0][0].legend(fontsize=7, frameon=False)
    axes[0][0].set_ylabel("predicted profile")
    if title:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(title, 40 * len(targets))), fontsize=10)
    fig.tight_layout()
    return plots._save(fig, path, plots.FIGURE_DPI)
