"""The figures of ``test_contexts.py`` and ``impute_contexts.py`` (:mod:`basenji_tk.analysis.crosscontext`,
:mod:`basenji_tk.analysis.impute`): AUPRC binned by the fraction of training contexts where a
region is accessible (ChromDragoNN Fig. 1E), pooled precision-recall curves per model, and the
two t-SNE panels of imputed contexts (Fig. 3B). Each writes one PNG (matplotlib, Agg) through
a temporary name and returns its path; a dataset labelled SEMI-SYNTHETIC says so in the title."""

import numpy as np


def _title(text: str, label: str = "") -> str:
    return f"{text} ({label})" if label else text


def binned_auprc_figure(table, path, label: str = "") -> str:
    """Grouped bars: per bin (x), one bar per model (its AUPRC), the bin's share of regions as gray
    bars behind. ``table``: :func:`~basenji_tk.analysis.crosscontext.binned_auprc` rows with a
    ``model`` column (one fold)."""
    from basenji_tk import plots

    plt = plots.plt
    models = list(dict.fromkeys(table["model"]))
    first = table[table["model"] == models[0]].reset_index(drop=True)
    n_bins = len(first)
    x = np.arange(n_bins)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * n_bins + 2), 4.2))
    ax.bar(x, first["share"], width=0.92, color="0.85", label="share of regions", zorder=1)
    width = 0.8 / max(1, len(models))
    for k, m in enumerate(models):
        rows = table[table["model"] == m].reset_index(drop=True)
        ax.bar(x - 0.4 + width * (k + 0.5), np.nan_to_num(rows["auprc"].to_numpy(float)), width=width * 0.95,
               label=m, zorder=2)
    labels = [f"{lo:.1f}-{hi:.1f}" + ("*" if cls == "closed" else "")
              for lo, hi, cls in zip(first["bin_lo"], first["bin_hi"], first["positive_class"])]
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set(xlabel="fraction of training contexts where the region is accessible (* AUPRC of the closed state)",
           ylabel="AUPRC / share of regions", ylim=(0, 1.05))
    ax.xaxis.label.set_size(8)
    ax.legend(fontsize=7, ncol=2, loc="upper center")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(_title("AUPRC in held-out contexts by accessibility across training contexts", label), fontsize=9)
    fig.tight_layout()
    return plots._save(fig, path, plots.FIGURE_DPI)


def pr_curves(labels, scores: dict, path, label: str = "") -> str:
    """Pooled ROC and precision-recall curves, one line per model: ``labels (N,)`` 0/1 and
    ``scores`` ``{model: (N,)}`` over the same (region, context) pairs."""
    from basenji_tk import plots

    names = list(scores)
    y = np.repeat(np.asarray(labels, np.float64).reshape(-1, 1), len(names), axis=1)
    s = np.stack([np.asarray(scores[n], np.float64).reshape(-1) for n in names], axis=1)
    return plots.classifier_curves(y, s, path, names, _title("held-out contexts, pooled", label))


def tsne_figure(points: dict, groups, path, label: str = "") -> str:
    """Side-by-side scatter panels: ``points`` ``{panel title: (n, 2)}`` of the same n contexts,
    coloured by ``groups`` (n labels, or None: one colour)."""
    from basenji_tk import plots

    plt = plots.plt
    fig, axes = plt.subplots(1, len(points), figsize=(4.6 * len(points), 4.4), squeeze=False)
    groups = np.asarray(groups if groups is not None else ["contexts"] * len(next(iter(points.values()))), str)
    kinds = list(dict.fromkeys(groups))
    colors = plt.get_cmap("tab20" if len(kinds) > 10 else "tab10")
    for ax, (title, xy) in zip(axes[0], points.items()):
        for k, g in enumerate(kinds):
            m = groups == g
            ax.scatter(xy[m, 0], xy[m, 1], s=18, color=colors(k % colors.N), label=g)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(kinds) > 1:
        axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(_title("t-SNE of contexts", label), fontsize=10)
    fig.tight_layout()
    return plots._save(fig, path, plots.FIGURE_DPI)
