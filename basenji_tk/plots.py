"""Plots: what a test run writes next to its numbers.

Two pictures answer the questions a table of correlations cannot: is the
relation between prediction and experiment the same over the whole range
(:func:`scatter`), and do predicted peaks sit where the experiment's do
(:func:`tracks`). Both draw with matplotlib's Agg backend (no display needed),
write a PNG, close the figure and return the path.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from basenji_tk.errors import InputError  # noqa: E402

HEXBIN_ABOVE = 5_000  # points; beyond this a scatter is an ink blot, so bin it
EXPERIMENT_COLOR, PREDICTION_COLOR = "#1f5fa8", "#c8553d"


def _save(fig, path) -> str:
    path = str(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    try:
        fig.savefig(path, format="png", dpi=120)
    finally:
        plt.close(fig)
    return path


def scatter(y, p, path, title: str = "", log: bool = True, max_points: int = 100_000, seed: int = 0) -> str:
    """Prediction (vertical) against experiment (horizontal) for one target.

    ``y`` and ``p`` are 1-D of shape ``(N,)``. With ``log`` both are shown as
    ``log2(max(x, 0) + 1)``. Pearson r on the plotted values (all N, before any
    thinning) goes in the title. More than ``max_points`` points are thinned to
    a random ``max_points`` (fixed ``seed``); more than a few thousand are drawn
    as a hexbin with log-scaled counts. No diagonal: the two axes need not share
    a scale.
    """
    from basenji_tk.metrics import log2p1, pearson_r  # imports Keras: only where it is needed

    y, p = np.asarray(y, dtype=np.float64).ravel(), np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise InputError(f"scatter: y has {y.size} values but p has {p.size}")
    if log:
        y, p = log2p1(y), log2p1(p)
    r = pearson_r(y, p)[0] if y.size else np.nan
    if y.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(y.size, max_points, replace=False))
        y, p = y[keep], p[keep]

    fig, ax = plt.subplots(figsize=(5, 5))
    if y.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    elif y.size > HEXBIN_ABOVE:
        ax.hexbin(y, p, gridsize=60, bins="log", cmap="viridis", mincnt=1)
    else:
        ax.scatter(y, p, s=6, alpha=0.4, color=EXPERIMENT_COLOR, linewidths=0)
    ax.set_xlabel("experiment")
    ax.set_ylabel("prediction")
    scale = "log2(x+1), " if log else ""
    subtitle = f"{scale}Pearson r = {r:.3f}, n = {y.size:,}"
    ax.set_title(f"{title}\n{subtitle}" if title else subtitle, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def tracks(y, p, path, target_ids, region_label: str = "", bin_width: int | None = None) -> str:
    """Experiment over prediction along one sequence, one pair of panels per target.

    ``y`` and ``p`` have shape ``(T, n)`` (T bins, n targets; ``(T,)`` is one
    target) and ``target_ids`` names the n targets. For each target the
    experiment is drawn filled on top and the prediction filled below it, each
    panel on its own vertical scale. The horizontal axis counts bins, or base
    pairs from the sequence start if ``bin_width`` is given.
    """
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    if y.ndim == 1 and p.ndim == 1:
        y, p = y[:, None], p[:, None]
    if y.ndim != 2 or y.shape != p.shape:
        raise InputError(f"tracks: expected y and p of one shape (T, n), got {y.shape} and {p.shape}")
    target_ids = [str(t) for t in ([target_ids] if isinstance(target_ids, str) else target_ids)]
    if len(target_ids) != y.shape[1]:
        raise InputError(f"tracks: {len(target_ids)} target ids for {y.shape[1]} targets")
    num_bins, num_targets = y.shape
    edges = np.arange(num_bins + 1) * (bin_width or 1)  # bin k spans edges[k]..edges[k+1]

    fig, axes = plt.subplots(2 * num_targets, 1, sharex=True, squeeze=False,
                             figsize=(10, 1.1 * 2 * num_targets + 0.8))
    for k, target in enumerate(target_ids):
        for ax, values, kind, color in ((axes[2 * k, 0], y[:, k], "experiment", EXPERIMENT_COLOR),
                                        (axes[2 * k + 1, 0], p[:, k], "prediction", PREDICTION_COLOR)):
            ax.fill_between(edges, np.append(values, values[-1:]), step="post", color=color, linewidth=0)
            ax.set_ylabel(f"{target}\n{kind}", rotation=0, ha="right", va="center", fontsize=8)
            ax.tick_params(labelsize=7)
            for side in ("top", "right"):
                ax.spines[side].set_visible(False)
    if num_bins:
        axes[-1, 0].set_xlim(edges[0], edges[-1])
    axes[-1, 0].set_xlabel("position (bp)" if bin_width else "bin")
    if region_label:
        fig.suptitle(region_label, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def gc_model_table(tsv: str, path: str, coefficients: str) -> str:
    """:func:`gc_model` from the table ``bam_cov.py`` writes (``stem.gc_model.tsv``) and the
    coefficients as a JSON list; used by bam_cov's child process."""
    import json

    table = []
    with open(tsv) as f:
        next(f)
        for line in f:
            gc, positions, _, log2_mean, _, _, used = line.rstrip("\n").split("\t")
            table.append(dict(gc=float(gc), positions=int(positions), used=used == "1",
                              log2_mean=None if log2_mean == "nan" else float(log2_mean)))
    return gc_model(table, json.loads(coefficients), path)


def gc_model(table, coefficients, path, title: str = "") -> str:
    """The GC model of ``bam_cov.py``: log2 mean coverage per 1% GC bin and the fitted cubic.

    ``table`` holds one dict per GC bin (``gc``, ``positions``, ``log2_mean``, ``used``), as
    :func:`basenji_tk.coverage.fit_gc` makes it. Bins used in the fit are filled, the others open;
    the grey bars below show how many positions each bin holds.
    """
    gc = np.array([row["gc"] for row in table])
    n = np.array([row["positions"] for row in table], dtype=np.float64)
    y = np.array([np.nan if row["log2_mean"] is None else row["log2_mean"] for row in table])
    used = np.array([row["used"] for row in table], dtype=bool)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.scatter(gc[used], y[used], s=12, color=EXPERIMENT_COLOR, label="bins in the fit")
    top.scatter(gc[~used], y[~used], s=12, facecolors="none", edgecolors="grey", label="too few positions")
    if used.any():
        xs = np.linspace(gc[used].min(), gc[used].max(), 200)
        top.plot(xs, np.polyval(coefficients, xs), color=PREDICTION_COLOR, label="cubic fit")
    top.set_ylabel("log2 mean coverage per base")
    top.legend(frameon=False, fontsize=8)
    top.set_title(title or "GC model: " + " ".join(f"{c:+.2f}" for c in coefficients) + " (gc^3 .. 1)", fontsize=9)
    bottom.bar(gc, n, width=0.009, color="grey")
    bottom.set_xlabel("GC fraction (Gaussian-weighted window)")
    bottom.set_ylabel("positions")
    fig.tight_layout()
    return _save(fig, path)
