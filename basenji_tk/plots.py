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


def _finish_figure(fig, ax, path, title: str = "") -> str:
    """Open axes (no top/right spines), an optional title, tight layout; saved at FIGURE_DPI."""
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, FIGURE_DPI)


def _save(fig, path, dpi: int = 120) -> str:
    """Write ``fig`` as a PNG at ``dpi`` through a temporary name in the same folder (a reader
    never sees half a file), close the figure and return the path."""
    import secrets

    path = str(path)
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        try:
            fig.savefig(tmp, format="png", dpi=dpi)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
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
    from basenji_tk.stats import log2p1, pearson_r  # imports scipy.stats: only where it is needed

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


def classifier_curves(labels, scores, path, target_ids, title: str = "") -> str:
    """ROC (left) and precision-recall (right) curves of a binary classifier, one line per target.

    ``labels`` (0/1) and ``scores`` have shape ``(N, n)`` (``(N,)`` is one target); a target whose
    labels are all one class is left out of the plot (its AUCs are undefined). The legend gives each
    target's AUROC and AUPRC (scikit-learn's ``roc_auc_score`` and ``average_precision_score``)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y, s = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    y, s = (y[:, None], s[:, None]) if y.ndim == 1 else (y, s)
    if y.shape != s.shape or y.ndim != 2:
        raise InputError(f"classifier_curves: expected labels and scores of one shape (N, n), got {y.shape} "
                         f"and {s.shape}")
    target_ids = [str(t) for t in target_ids]
    fig, (roc, pr) = plt.subplots(1, 2, figsize=(9, 4.2))
    roc.plot([0, 1], [0, 1], color="0.8", linewidth=1)
    drawn = 0
    for k, target in enumerate(target_ids):
        truth = y[:, k] > 0.5
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, s[:, k])
        precision, recall, _ = precision_recall_curve(truth, s[:, k])
        roc.plot(fpr, tpr, linewidth=1.2, label=f"{target} ({roc_auc_score(truth, s[:, k]):.3f})")
        pr.step(recall, precision, where="post", linewidth=1.2,
                label=f"{target} ({average_precision_score(truth, s[:, k]):.3f})")
        drawn += 1
    if not drawn:
        for ax in (roc, pr):
            ax.text(0.5, 0.5, "labels of one class only", ha="center", va="center", transform=ax.transAxes)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (AUROC)", xlim=(0, 1), ylim=(0, 1))
    pr.set(xlabel="recall", ylabel="precision", title="precision-recall (AUPRC)", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (roc, pr):
        if drawn:
            ax.legend(fontsize=7, loc="lower right" if ax is roc else "lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def history_curves(curves, path, xlabel: str = "step", ylabel: str = "val_loss", title: str = "") -> str:
    """One line per training run: ``curves`` is a list of ``(label, x (n,), y (n,))``, e.g. the
    validation loss against optimizer steps of stage 2 with and without stage-1 initialisation
    (ChromDragoNN Fig. 1B). NaN values leave gaps. Returns ``path``. 300 dpi."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, x, y in curves:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape or x.ndim != 1:
            raise ShapeError(f"history_curves: '{label}' has {x.size} x values and {y.size} y values")
        ax.plot(x, y, marker="o" if x.size < 30 else None, markersize=3, linewidth=1.3, label=str(label))
    if not curves:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    return _finish_figure(fig, ax, path, title)


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
    :func:`basenji_tk.coverage.gc.fit_gc` makes it. Bins used in the fit are filled, the others open;
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


# --- Sequence logos, ISM heatmaps and saliency tracks --------------------------------------------
#
# Plain matplotlib: each letter is its glyph outline (DejaVu Sans Bold, shipped with matplotlib)
# stretched by an affine map to fill its box [x - 0.5, x + 0.5] x [bottom, top] exactly, and drawn
# as one PathPatch. The four normalised glyphs are made once and cached.

BASE_COLORS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
SALIENCY_POSITIVE, SALIENCY_NEGATIVE = "#c8553d", "#1f5fa8"
FIGURE_DPI = 300
MAX_FIGURE_WIDTH = 40.0  # inches; L / 25 reaches it at L = 1,000


class ShapeError(InputError, ValueError):
    """An array of the wrong shape: an :class:`InputError` (the scripts report it as bad input)
    that is also a ``ValueError``, as numpy-style callers expect."""


def _matrix(values, name: str, func: str, width: int = 4) -> np.ndarray:
    """``values`` as a float64 array of shape ``(L, width)``, else :class:`ShapeError`."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] != width:
        raise ShapeError(f"{func}: expected {name} of shape (L, {width}), got {values.shape}")
    return values


_GLYPHS: dict = {}


def _glyph(letter: str):
    """The outline of ``letter`` in bold sans, its bounding box mapped onto the unit square.

    Returns ``(vertices, codes)``: vertices ``(V, 2)`` float64 (the box spans exactly [0, 1] in
    both directions, curve extremes included), codes ``(V,)`` as in :class:`matplotlib.path.Path`.
    """
    if letter not in _GLYPHS:
        from matplotlib.font_manager import FontProperties
        from matplotlib.textpath import TextPath

        path = TextPath((0, 0), letter, size=1, prop=FontProperties(family="DejaVu Sans", weight="bold"))
        box = path.get_extents()
        vertices = (np.array(path.vertices, dtype=np.float64) - [box.x0, box.y0]) / [box.width, box.height]
        _GLYPHS[letter] = (vertices, np.array(path.codes))
    return _GLYPHS[letter]


def _letter_patch(letter: str, x: float, bottom: float, top: float, color, gid: str):
    """A PathPatch of ``letter`` filling ``[x - 0.5, x + 0.5] x [bottom, top]`` (data coordinates)."""
    from matplotlib.patches import PathPatch
    from matplotlib.path import Path

    vertices, codes = _glyph(letter)
    vertices = vertices * [1.0, top - bottom] + [x - 0.5, bottom]
    return PathPatch(Path(vertices, codes), facecolor=color, edgecolor="none", linewidth=0, gid=gid)


def logo(ax, heights, start: int = 0, alphabet: str = "ACGT", colors=None, ylabel: str | None = None):
    """Draw a sequence logo of ``heights`` ``(L, 4)`` on ``ax``; return ``ax``.

    Column ``j`` of ``heights`` is letter ``alphabet[j]``; position ``i`` is drawn at
    ``x = start + i``, each letter filling ``[x - 0.5, x + 0.5]`` horizontally. Heights are signed:
    at each position the positive letters are stacked upward from 0 and the negative ones downward,
    each letter as tall as ``|height|``, the larger ones farther from 0 (ties in alphabet order).
    Zero heights draw nothing. ``colors`` is a dict letter -> colour or a sequence of 4 colours
    (default A green, C blue, G orange, T red). Each letter is one PathPatch whose ``gid`` is
    ``"<letter>:<x>"``. Sets the axis limits (x from ``start - 0.5`` to ``start + L - 0.5``).
    """
    heights = _matrix(heights, "heights", "logo")
    if len(alphabet) != 4:
        raise ShapeError(f"logo: expected an alphabet of 4 letters for heights of shape (L, 4), got {alphabet!r}")
    if not np.isfinite(heights).all():
        raise InputError("logo: heights must be finite (found NaN or infinity)")
    if colors is None:
        colors = [BASE_COLORS.get(letter.upper(), "black") for letter in alphabet]
    elif isinstance(colors, dict):
        colors = [colors[letter] for letter in alphabet]
    elif len(colors) != 4:
        raise ShapeError(f"logo: expected 4 colours, one per letter of {alphabet!r}, got {len(colors)}")

    length = heights.shape[0]
    order = np.argsort(np.abs(heights), axis=1, kind="stable")  # smallest first: nearest to 0
    low = high = 0.0
    for i in range(length):
        x = start + i
        up = down = 0.0
        for j in order[i]:
            h = heights[i, j]
            if h > 0:
                bottom, top, up = up, up + h, up + h
            elif h < 0:
                bottom, top, down = down + h, down, down + h
            else:
                continue
            # add_artist, not add_patch: the limits are set once below, not updated per glyph
            ax.add_artist(_letter_patch(alphabet[j], x, bottom, top, colors[j], f"{alphabet[j]}:{x}"))
        high, low = max(high, up), min(low, down)

    ax.set_xlim(start - 0.5, start + length - 0.5)
    if high == low == 0.0:
        ax.set_ylim(-1.0, 1.0)
    else:
        pad = 0.05 * (high - low)
        ax.set_ylim(low - pad if low < 0 else 0.0, high + pad if high > 0 else 0.0)
    if low < 0:
        ax.axhline(0.0, color="0.4", linewidth=0.5, zorder=0)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax


def _symmetric_limit(scores: np.ndarray) -> float:
    """99th percentile of ``|scores|`` (NaN ignored); the maximum if that is 0, 1 if all are 0."""
    magnitude = np.abs(scores[np.isfinite(scores)])
    if magnitude.size == 0:
        return 1.0
    vmax = float(np.percentile(magnitude, 99))
    if not vmax > 0:
        vmax = float(magnitude.max())
    return vmax if vmax > 0 else 1.0


def heatmap(ax, scores, reference=None, start: int = 0, cmap: str = "RdBu_r", vmax: float | None = None,
            label: str = "Δ prediction"):
    """Draw ``scores`` ``(L, 4)`` as a 4 x L heatmap (rows A, C, G, T) on ``ax``; return ``ax``.

    Colours are centred at 0 with limits ``[-vmax, vmax]``; ``vmax`` defaults to the 99th
    percentile of ``|scores|`` (the maximum when that is 0). NaN cells are left blank. With
    ``reference`` ``(L, 4)`` one-hot, the reference base of each column gets a small black dot.
    Column ``i`` is centred at ``x = start + i``. The colorbar (labelled ``label``) sits in an
    inset just right of ``ax``, so ``ax`` keeps its width and lines up with panels above it.
    """
    scores = _matrix(scores, "scores", "heatmap")
    length = scores.shape[0]
    if reference is not None:
        reference = _matrix(reference, "reference", "heatmap")
        if reference.shape[0] != length:
            raise ShapeError(f"heatmap: expected reference of shape ({length}, 4) like scores, got {reference.shape}")
    vmax = _symmetric_limit(scores) if vmax is None else float(vmax)
    if not vmax > 0:
        raise InputError(f"heatmap: vmax must be positive, got {vmax}")

    extent = (start - 0.5, start + length - 0.5, 3.5, -0.5)
    image = ax.imshow(scores.T, aspect="auto", cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest",
                      extent=extent if length else (start - 0.5, start + 0.5, 3.5, -0.5))
    if reference is not None and length:
        rows, cols = np.nonzero(reference.T > 0.5)
        size = float(np.clip(3000.0 / length, 0.3, 12.0))  # points^2: small enough for L = 1,000
        ax.scatter(start + cols, rows, s=size, color="black", linewidths=0, zorder=3)
    ax.set_yticks(range(4), list("ACGT"))
    ax.tick_params(axis="y", length=0)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))

    axes_inches = max(ax.get_position().width * ax.figure.get_figwidth(), 1e-3)
    cax = ax.inset_axes([1.0 + 0.08 / axes_inches, 0.0, 0.12 / axes_inches, 1.0])  # 0.08" gap, 0.12" wide
    colorbar = ax.figure.colorbar(image, cax=cax)
    colorbar.set_label(label, fontsize=8)
    colorbar.ax.tick_params(labelsize=7)
    return ax


def ism_figure(scores, reference, path, title: str = "", start: int = 0, max_len: int | None = None) -> str:
    """One PNG of in-silico mutagenesis for one sequence and one target; return ``path``.

    ``scores`` ``(L, 4)`` holds mutant minus reference prediction for each base (the reference
    base's own entry is 0) and ``reference`` ``(L, 4)`` the one-hot sequence (an all-zero row,
    such as an N, has no reference letter). Three panels share the x axis (``start + i``):

    * loss: the reference letter, height ``-mean`` of its 3 mutation scores (how far the
      prediction drops when the base is mutated; positive: the base supports the prediction);
    * gain: the 3 other letters, height ``max(score, 0)`` (mutations that raise it);
    * the heatmap of all scores (:func:`heatmap`), reference bases dotted.

    With ``max_len`` and ``L > max_len`` only the central ``max_len`` positions are drawn (``start``
    moves with them). 300 dpi, ``max(8, L / 25)`` inches wide up to 40.
    """
    scores = _matrix(scores, "scores", "ism_figure")
    reference = _matrix(reference, "reference", "ism_figure")
    if reference.shape[0] != scores.shape[0]:
        raise ShapeError(f"ism_figure: expected reference of shape ({scores.shape[0]}, 4) like scores, "
                         f"got {reference.shape}")
    if not (np.isin(reference, (0.0, 1.0)).all() and (reference.sum(axis=1) <= 1).all()):
        raise InputError("ism_figure: reference must be one-hot (0/1 with at most one 1 per row)")
    if max_len is not None and scores.shape[0] > max_len:
        offset = (scores.shape[0] - int(max_len)) // 2
        scores, reference = scores[offset:offset + int(max_len)], reference[offset:offset + int(max_len)]
        start += offset
    length = scores.shape[0]

    finite = np.where(np.isfinite(scores), scores, 0.0)
    is_ref = reference > 0.5
    mutation_mean = np.where(is_ref, 0.0, finite).sum(axis=1) / 3.0
    loss = np.where(is_ref, -mutation_mean[:, None], 0.0)
    gain = np.where(is_ref, 0.0, np.maximum(finite, 0.0))  # all 4 letters where there is no reference

    width = float(np.clip(length / 25.0, 8.0, MAX_FIGURE_WIDTH))
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(width, 5.5),
                             gridspec_kw={"height_ratios": [2.0, 2.0, 1.3]})
    logo(axes[0], loss, start=start, ylabel="loss\n−mean Δ")
    logo(axes[1], gain, start=start, ylabel="gain\nmax(Δ, 0)")
    heatmap(axes[2], scores, reference, start=start)
    axes[2].xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    axes[2].set_xlabel("position", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.yaxis.label.set_size(8)
    axes[2].set_xlim(start - 0.5, start + max(length, 1) - 0.5)
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, FIGURE_DPI)


def saliency_track(values, path, start: int = 0, bin_width: int = 1, title: str = "", chrom: str = "",
                   ylabel: str = "saliency") -> str:
    """A signed per-position (or per-bin) track ``values`` ``(N,)`` along the genome; return ``path``.

    Value ``k`` covers ``[start + k * bin_width, start + (k + 1) * bin_width)``; positive values are
    filled red above 0, negative ones blue below. The x axis is in genome coordinates (labelled
    with ``chrom`` when given). 300 dpi.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ShapeError(f"saliency_track: expected values of shape (N,), got {values.shape}")
    if bin_width <= 0:
        raise InputError(f"saliency_track: bin_width must be positive, got {bin_width}")
    finite = np.where(np.isfinite(values), values, 0.0)
    edges = start + np.arange(values.size + 1) * bin_width

    fig, ax = plt.subplots(figsize=(float(np.clip(values.size / 125.0, 8.0, 24.0)), 2.5))
    if values.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    else:
        for part, color in ((np.maximum(finite, 0.0), SALIENCY_POSITIVE), (np.minimum(finite, 0.0), SALIENCY_NEGATIVE)):
            ax.fill_between(edges, np.append(part, part[-1:]), 0.0, step="post", color=color, linewidth=0)
        ax.set_xlim(edges[0], edges[-1])
        ax.axhline(0.0, color="0.4", linewidth=0.5)
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_xlabel(f"{chrom} position (bp)" if chrom else "position (bp)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    return _finish_figure(fig, ax, path, title)


def feature_bars(names, values, path, top: int = 20, title: str = "", xlabel: str = "gradient x input") -> str:
    """Horizontal bars of the ``top`` features with the largest ``|values|`` (signed: red above 0,
    blue below), largest at the top; ``names`` and ``values`` ``(F,)``. Returns ``path``. 300 dpi.

    Which of a model's non-sequence features (e.g. the expression of transcription factors) a
    prediction leans on, and in which direction."""
    values = np.asarray(values, dtype=np.float64)
    names = [str(n) for n in names]
    if values.ndim != 1 or len(names) != values.size:
        raise ShapeError(f"feature_bars: expected {len(names)} values, one per name, got shape {values.shape}")
    if top < 1:
        raise InputError(f"feature_bars: top must be at least 1, got {top}")
    finite = np.where(np.isfinite(values), values, 0.0)
    order = np.argsort(-np.abs(finite), kind="stable")[:top][::-1]  # barh draws bottom-up
    fig, ax = plt.subplots(figsize=(6.0, float(np.clip(0.25 * len(order) + 1.0, 2.0, 12.0))))
    if not len(order):
        ax.text(0.5, 0.5, "no features", ha="center", va="center", transform=ax.transAxes)
    else:
        shown = finite[order]
        ax.barh(np.arange(len(order)), shown, color=np.where(shown >= 0, SALIENCY_POSITIVE, SALIENCY_NEGATIVE))
        ax.set_yticks(np.arange(len(order)), [names[k] for k in order], fontsize=7)
        ax.axvline(0.0, color="0.4", linewidth=0.5)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    return _finish_figure(fig, ax, path, title)
