"""``test_contexts.py``: pairs models and the two baselines scored in held-out contexts.

For each fold (one, or every fold of the dataset with model paths holding ``{fold}``), every
model and the baselines (:mod:`basenji_tk.analysis.crosscontext`) score every region of the
chosen genome split(s) x every held-out context, and :func:`test_contexts` writes:

- ``metrics.tsv``: model, fold, context, genome, regions, positives, auprc, auroc (per context,
  per genome part: ``all``, and ``train`` = the training genome, the paper's setting, ``valid``,
  ``test`` = the held-out genome, when the regions come from several splits);
- ``pooled.tsv``: the same pooled over the contexts (with several folds also ``fold = all``:
  every fold's held-out pairs together, each context held out once);
- ``binned_auprc.tsv`` + ``.png``: Fig. 1E (:func:`~basenji_tk.analysis.crosscontext.binned_auprc`);
- ``pr_curves.png``: pooled ROC and precision-recall curves per model;
- with several folds ``folds.tsv`` (per-fold pooled AUPRC and AUROC of each model) and
  ``folds_wilcoxon.tsv`` (the one-tailed Wilcoxon signed-rank test of each model against each
  other over the folds, Fig. 1D; ``compare`` restricts it to one pair);
- ``test_contexts.json``: what was run (folds, contexts, methods, seconds).
"""

import logging
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from basenji_tk import files
from basenji_tk.analysis import crosscontext as cc
from basenji_tk.analysis import crosscontext_plots as ccp
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

OUTPUTS = ("metrics.tsv", "pooled.tsv", "binned_auprc.tsv", "binned_auprc.png", "pr_curves.png", "folds.tsv",
           "folds_wilcoxon.tsv", "test_contexts.json")
FOLD = "{fold}"


@dataclass
class Options:
    """What ``test_contexts.py`` takes besides DATA, the models and OUT (see its ``--help``)."""

    names: tuple = ()
    fold: int | None = None  # None: the first model's training fold
    all_folds: bool = False
    split: str = "all"
    contexts: tuple | None = None
    baselines: bool = True
    similarity: str = "centered"
    compare: tuple | None = None
    batch_size: int = 256
    method: str = "auto"
    label: str | None = None
    force: bool = False
    progress: bool = False
    weights: str = "best"  # best: model_best.keras; last: checkpoint.keras (the last finished epoch)


def model_names(models, names=()) -> list:
    """``names``, or each model folder's name (``{fold}`` and the separators around it dropped)."""
    if names:
        names = list(names)
        if len(names) != len(models):
            raise InputError(f"--names: {len(names)} name(s) for {len(models)} model(s)")
    else:
        names = [re.sub(r"[_\-.]*(fold)?\{fold\}", "", os.path.basename(os.path.normpath(str(m)))) or "model"
                 for m in models]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"--names: model name {dup[0]!r} given twice; name the models apart with --names")
    taken = [n for n in names if n in cc.BASELINES]
    if taken:
        raise InputError(f"--names: {taken[0]!r} is the name of a baseline; call the model something else")
    return names


def _check_compare(compare, names):
    if compare is None:
        return None
    compare = list(compare)
    if len(compare) != 2 or compare[0] == compare[1]:
        raise InputError(f"--compare: expected two different names A,B, got {','.join(compare)}")
    missing = [n for n in compare if n not in names]
    if missing:
        raise InputError(f"--compare: {missing[0]!r} is not a model or baseline here ({', '.join(names)})")
    return compare


def _folds(spec, models, o: Options) -> list:
    n = len(cc.pairs_info(spec)["folds"])
    if o.all_folds:
        if n > 1:
            plain = [m for m in models if FOLD not in str(m)]
            if plain:
                raise InputError(f"--folds all: model path {plain[0]} holds no {FOLD}; each fold needs its own model "
                                 f"(e.g. runs/resnet_fold{FOLD})")
        return list(range(n))
    if o.fold is not None and not 0 <= o.fold < n:
        raise InputError(f"--fold {o.fold}: {spec.path} has {n} fold(s) (0 to {n - 1})")
    return [o.fold]


def _model_path(model, fold) -> str:
    path = str(model).replace(FOLD, str(fold))
    if not os.path.exists(path):
        raise InputError(f"{path}: model folder not found" + (f" (from {model}, fold {fold})" if FOLD in str(model)
                                                                else ""))
    return path


WEIGHTS = {"best": None, "last": "checkpoint.keras"}  # None: the folder's own file (model_best.keras)


def _weights_file(path, weights) -> str | None:
    """The Keras file of model folder ``path`` that ``--weights`` names (None: its model_best.keras).
    ``last`` is train.py's checkpoint of the last finished epoch: where the validation split is a
    different genome from the one scored, the best validation epoch need not be the best model."""
    if weights not in WEIGHTS:
        raise InputError(f"--weights: expected {' or '.join(WEIGHTS)}, got {weights!r}")
    if WEIGHTS[weights] is None:
        return None
    file = os.path.join(path, WEIGHTS[weights])
    if not os.path.isfile(file):
        raise InputError(f"{file}: not found (--weights {weights} reads train.py's checkpoint of the last epoch)")
    return file


def _check_fold(tm, spec, fold, query, path):
    """A model trained on this dataset's contexts must be evaluated in its own fold; a query
    context it trained on is a warning (its baselines see it too)."""
    trained_on = (tm.stats or {}).get("pairs", {}).get("contexts")
    names = cc.pairs_info(spec)["contexts"]
    if trained_on is not None and list(trained_on) == list(names) and cc.model_fold(tm) != fold:
        raise InputError(f"{path}: trained on fold {cc.model_fold(tm)} of these contexts (train.fold); scoring it on "
                         f"fold {fold} would score contexts it was trained on; give its own fold with --fold")
    seen = set(cc.model_contexts(tm, "train") or []) & {names[q] for q in query}
    if seen:
        log.warning(f"warning: {path} was trained on context(s) {', '.join(sorted(seen))}: not held out")


def _fold_scores(spec, o: Options, models, names, fold, table):
    """Predictions and baselines of one fold: ``(labels (R, Q), {name: scores}, fraction (R,), region_split,
    query names, run record)``."""
    from basenji_tk.analysis.trained import TrainedModel

    contexts = cc.pairs_info(spec)["contexts"]
    query = cc.query_contexts(spec, fold, list(o.contexts) if o.contexts else None)
    train_index = cc.training_index(spec, fold)
    train_names = {contexts[i] for i in train_index}
    leaked = [contexts[q] for q in query if contexts[q] in train_names]
    if leaked and o.baselines:
        log.warning(f"warning: fold {fold}: {', '.join(leaked)} are training contexts; the baselines average "
                    "their own labels")
    predictors, record = [], {"fold": fold, "contexts": [contexts[q] for q in query], "models": {}}
    for model, name in zip(models, names):
        path = _model_path(model, fold)
        tm = TrainedModel.load(path, _weights_file(path, o.weights))
        predictors.append(cc.ContextPredictor.for_trained(tm, spec, o.method, o.batch_size, path))
        _check_fold(tm, spec, fold, query, path)
    log.info(f"fold {fold}: {len(query)} context(s) ({', '.join(record['contexts'])}) x the regions of "
             f"{', '.join(cc.region_splits(spec, o.split))}")
    scan = cc.scan_contexts(spec, predictors, table[query], train_index, o.split, o.batch_size, o.progress)
    scores = {n: p for n, p in zip(names, scan.probs)}
    for name, path, p in zip(names, models, predictors):
        record["models"][name] = {"path": _model_path(path, fold), "weights": o.weights, "method": p.method,
                                  "seconds": round(p.seconds, 3)}
    fraction = cc.mean_baseline(scan.labels, train_index)
    if o.baselines:
        scores["mean"] = fraction
        scores["rna_weighted"] = cc.rna_weighted_baseline(scan.labels, train_index, table, table[query],
                                                          o.similarity, record["contexts"])
    record |= {"regions": int(len(scan.labels)), "seconds": round(scan.seconds, 3)}
    return scan.labels[:, query], scores, fraction, scan.region_split, record["contexts"], record


def _pairs(y, scores, fraction, keep):
    """Flattened (region, context) pairs of the contexts ``keep``: ``(y, {name: p}, fraction)``."""
    yy = y[:, keep]
    flat = {n: (np.broadcast_to(s[:, None], y.shape) if s.ndim == 1 else s)[:, keep].reshape(-1)
            for n, s in scores.items()}
    return yy.reshape(-1), flat, np.broadcast_to(fraction[:, None], y.shape)[:, keep].reshape(-1)


def _binned(y, flat, fraction, fold):
    return pd.concat([cc.binned_auprc(y, p, fraction).assign(model=n, fold=fold) for n, p in flat.items()],
                     ignore_index=True)[["model", "fold", "bin_lo", "bin_hi", "regions", "share", "positive_class",
                                         "positives", "auprc"]]


def _fold_tables(pooled, names, compare):
    """``folds.tsv`` (wide: fold, then AUPRC and AUROC of each model) and the Wilcoxon table."""
    part = pooled[(pooled["genome"] == "all") & (pooled["fold"] != "all")]
    wide = part.pivot(index="fold", columns="model", values="auprc").reindex(columns=names)
    wide_roc = part.pivot(index="fold", columns="model", values="auroc").reindex(columns=names)
    folds = pd.concat([wide.add_suffix(":auprc"), wide_roc.add_suffix(":auroc")], axis=1).reset_index()
    pairs = [tuple(compare)] if compare else [(a, b) for a in names for b in names if a != b]
    rows = []
    for a, b in pairs:
        both = wide[[a, b]].dropna()
        if len(both) < len(wide):
            log.info(f"{a} vs {b}: {len(wide) - len(both)} fold(s) without a pooled AUPRC left out")
        res = cc.fold_comparison(both[a], both[b]) if len(both) else {"n": 0, "mean_difference": np.nan,
                                                                      "statistic": np.nan, "p": np.nan}
        rows.append({"a": a, "b": b, "alternative": "a > b (one-tailed)", "metric": "pooled auprc", **res})
    cols = ["a", "b", "alternative", "metric", "n", "mean_difference", "statistic", "p"]
    return folds, pd.DataFrame(rows, columns=cols)


def test_contexts(data_dir, models, out_dir, options: Options | None = None) -> dict:
    """Score ``models`` (model folders; ``{fold}`` in a path is the fold) and the baselines in the
    held-out contexts of ``data_dir``; write the tables and figures of the module docstring into
    ``out_dir``. Returns ``{"metrics", "pooled", "binned", "folds", "wilcoxon": DataFrame or None}``."""
    from basenji_tk.analysis.evaluate import write_table
    from basenji_tk.data import records

    o = options or Options()
    if int(o.batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {o.batch_size}")
    if o.similarity not in cc.SIMILARITIES:
        raise InputError(f"--similarity: expected {' or '.join(cc.SIMILARITIES)}, got {o.similarity!r}")
    if not models:
        raise InputError("give at least one model folder")
    data_dir, out_dir = str(data_dir), str(out_dir)
    spec = records.load_spec(data_dir)
    cc.pairs_info(spec)
    names = model_names(models, o.names)
    compare = _check_compare(o.compare, names + (list(cc.BASELINES) if o.baselines else []))
    folds = _folds(spec, models, o)
    cc.region_splits(spec, o.split)
    if folds == [None]:
        from basenji_tk.analysis.trained import TrainedModel

        fold = cc.model_fold(TrainedModel.load(_model_path(models[0], 0)))
        folds = [fold if fold < len(cc.pairs_info(spec)["folds"]) else 0]
    for f in folds:
        cc.query_contexts(spec, f, list(o.contexts) if o.contexts else None)
        for m in models:
            _weights_file(_model_path(m, f), o.weights)
    table = cc.context_table(spec)
    label = cc.dataset_label(spec, o.label)
    with files.claim(out_dir):
        files.refuse_overwrite(out_dir, OUTPUTS, o.force)
        metrics, pooled, binned, runs = [], [], [], []
        every = {"y": [], "fraction": [], "scores": {}}
        for f in folds:
            y, scores, fraction, region_split, query, record = _fold_scores(spec, o, models, names, f, table)
            per, pool, skipped = cc.score_contexts(y, scores, query, region_split, f)
            record["skipped"] = [f"{c} ({g})" for c, g in skipped]
            metrics.append(per)
            pooled.append(pool)
            keep = [j for j, c in enumerate(query) if (c, "all") not in skipped]
            yy, flat, frac = _pairs(y, scores, fraction, keep)
            binned.append(_binned(yy, flat, frac, f))
            every["y"].append(yy)
            every["fraction"].append(frac)
            for n, p in flat.items():
                every["scores"].setdefault(n, []).append(p)
            runs.append(record)
        y_all = np.concatenate(every["y"])
        flat_all = {n: np.concatenate(v) for n, v in every["scores"].items()}
        frac_all = np.concatenate(every["fraction"])
        if len(folds) > 1:
            rows = []
            for n, p in flat_all.items():
                auprc, auroc = cc.auprc_auroc(y_all.astype(bool), p) if 0 < y_all.sum() < len(y_all) else (np.nan,) * 2
                rows.append(dict(model=n, fold="all", genome="all", contexts=sum(len(r["contexts"]) for r in runs),
                                 regions=np.nan, pairs=len(y_all), positives=int(y_all.sum()), auprc=auprc,
                                 auroc=auroc))
            pooled.append(pd.DataFrame(rows))
            binned.append(_binned(y_all, flat_all, frac_all, "all"))
        out = {"metrics": pd.concat(metrics, ignore_index=True), "pooled": pd.concat(pooled, ignore_index=True),
               "binned": pd.concat(binned, ignore_index=True), "folds": None, "wilcoxon": None}
        names_all = list(flat_all)
        if len(folds) > 1:
            out["folds"], out["wilcoxon"] = _fold_tables(out["pooled"], names_all, compare)
        path = lambda name: os.path.join(out_dir, name)  # noqa: E731
        for key, name in (("metrics", "metrics.tsv"), ("pooled", "pooled.tsv"), ("binned", "binned_auprc.tsv"),
                          ("folds", "folds.tsv"), ("wilcoxon", "folds_wilcoxon.tsv")):
            if out[key] is not None:
                write_table(out[key], path(name))
        shown = "all" if len(folds) > 1 else folds[0]
        ccp.binned_auprc_figure(out["binned"][out["binned"]["fold"] == shown], path("binned_auprc.png"), label)
        ccp.pr_curves(y_all, flat_all, path("pr_curves.png"), label)
        summary = {"data": os.path.abspath(data_dir), "label": label, "split": o.split, "similarity": o.similarity,
                   "baselines": list(cc.BASELINES) if o.baselines else [], "folds": runs}
        files.write_json(path("test_contexts.json"), summary)
        log.info(f"wrote {out_dir}: {len(out['metrics'])} context rows, {len(folds)} fold(s)")
        return out


def format_pooled(pooled: pd.DataFrame) -> str:
    """The pooled rows over all regions, one line per model and fold, for the terminal."""
    part = pooled[pooled["genome"] == "all"]
    width = max([5] + [len(str(m)) for m in part["model"]])
    lines = [f"{'model':<{width}}  {'fold':>4}  {'pairs':>8}  {'AUPRC':>6}  {'AUROC':>6}"]
    for _, r in part.iterrows():
        lines.append(f"{r['model']:<{width}}  {str(r['fold']):>4}  {int(r['pairs']):>8}  {r['auprc']:>6.3f}  "
                     f"{r['auroc']:>6.3f}")
    return "\n".join(lines)
