"""Accessibility imputed in contexts that have expression but no peaks (ChromDragoNN Fig. 3B).

:func:`impute_contexts` reads an expression table of new contexts, transforms it as the pairs
dataset's context table was built (the same log and pseudocount, the dataset's feature columns
in its order), predicts every region of a genome split in every new context with a trained
pairs model (:class:`~basenji_tk.analysis.crosscontext.ContextPredictor`; the mean input over
the model's training contexts) and writes:

- ``imputed.h5``: ``probabilities`` ``(regions, contexts)`` float16, ``chrom``/``start``/``end``
  (the labelled bin of each region, 0-based half-open), ``split``, ``index`` (row of the dataset's
  ``sequences.bed``), ``contexts``;
- ``tsne.tsv`` + ``tsne.png``: a t-SNE (scikit-learn, after PCA to at most 50 dimensions) of the
  contexts by their imputed accessibility profiles beside one by their TF expression;
- with groups (a TSV: context, group), ``knn_agreement.tsv``: the mean share of each context's k
  nearest neighbours that share its group, in the two original spaces and the two embeddings,
  with the share expected by chance;
- with a truth table (context, peaks; as ``make_pairs.py``'s CONTEXTS), ``truth.tsv``: AUPRC and
  AUROC of each imputed profile against labels made with the dataset's own bin rule
  (:func:`basenji_tk.data.pairs.label_matrix`), beside the mean baseline's;
- ``impute_contexts.json``: what was run.
"""

import logging
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from basenji_tk import files
from basenji_tk.analysis import crosscontext as cc
from basenji_tk.errors import InputError, where

log = logging.getLogger("basenji_tk")

OUTPUTS = ("imputed.h5", "tsne.tsv", "tsne.png", "knn_agreement.tsv", "truth.tsv", "impute_contexts.json")


@dataclass
class Options:
    """What ``impute_contexts.py`` takes besides MODEL, DATA, EXPRESSION and OUT (see its ``--help``)."""

    contexts: tuple | None = None
    groups: str | None = None
    group_column: str = "group"
    truth: str | None = None
    split: str = "all"
    transpose: bool = False
    neighbours: int = 5
    seed: int = 0
    batch_size: int = 256
    label: str | None = None
    force: bool = False
    progress: bool = False
    model_file: str | None = None  # a Keras file instead of the folder's model_best.keras


def read_expression(path, spec, contexts=None, transpose: bool = False):
    """``(names, values (Q, F) float32)``: the rows of the expression TSV ``path`` (contexts x
    features, as make_pairs.py's TABLE), transformed as the pairs dataset ``spec``'s table was
    (its log and pseudocount) and reordered to its feature columns; ``contexts`` picks rows
    (default: the rows that are not contexts of the dataset, when there are such rows). An
    error names the first dataset feature the file lacks, or a context it lacks."""
    from basenji_tk.data.contexts import read_context_table

    info = cc.pairs_info(spec)
    ex = info["expression"]
    pseudo = float(ex.get("pseudocount") or 0.0) if ex.get("log", "none") != "none" else 0.0
    names, columns, values = read_context_table(path, pseudo, ex.get("log", "none"), transpose)
    features = list(info["context_features"])
    have = {c: i for i, c in enumerate(columns)}
    missing = [f for f in features if f not in have]
    if missing:
        raise InputError(f"{path}: no column {missing[0]!r} (feature {features.index(missing[0]) + 1} of the "
                         f"{len(features)} of {spec.path}){f' and {len(missing) - 1} more' if len(missing) > 1 else ''}"
                         f"; expected the dataset's features as columns" + ("" if transpose else
                                                                            " (--transpose: features as rows)"))
    values = values[:, [have[f] for f in features]]
    if contexts:
        lost = [c for c in contexts if c not in names]
        if lost:
            raise InputError(f"--contexts: {lost[0]!r} is not a row of {path} (it has: {', '.join(names[:8])}"
                             f"{' ...' if len(names) > 8 else ''})")
        values = values[[names.index(c) for c in contexts]]
        names = list(contexts)
    else:
        new = [i for i, n in enumerate(names) if n not in info["contexts"]]
        if new and len(new) < len(names):
            log.info(f"{path}: {len(names) - len(new)} row(s) are contexts of {spec.path} (with peaks) and are left "
                     "out; name them with --contexts to impute them too")
            values, names = values[new], [names[i] for i in new]
    known = [n for n in names if n in info["contexts"]]
    if known:
        log.info(f"{', '.join(known[:5])}: also context(s) of {spec.path} (with peaks); imputed all the same")
    return list(names), values.astype(np.float32)


def read_groups(path, column, contexts) -> list:
    """The group of each of ``contexts`` from a TSV with a header holding ``context`` and ``column``."""
    from basenji_tk.io.genome import table_lines

    if not os.path.exists(str(path)):
        raise InputError(f"{path}: groups table not found")
    lines = list(table_lines(str(path)))
    if not lines:
        raise InputError(f"{path}: empty groups table; expected a header with columns context, {column}")
    cols = {c.strip(): i for i, c in enumerate(lines[0][1])}
    for need in ("context", column):
        if need not in cols:
            raise InputError(f"{where(path, lines[0][0])}: no column {need!r} (has: {', '.join(cols)}); "
                             f"--group_column names the group column")
    found = {}
    for lineno, fields in lines[1:]:
        if len(fields) <= max(cols["context"], cols[column]):
            raise InputError(f"{where(path, lineno)}: expected {len(cols)} tab-separated columns, found {len(fields)}")
        found[fields[cols["context"]].strip()] = fields[cols[column]].strip()
    lost = [c for c in contexts if c not in found]
    if lost:
        raise InputError(f"{path}: no group for context {lost[0]!r}" + (f" and {len(lost) - 1} more" if len(lost) > 1
                                                                         else ""))
    return [found[c] for c in contexts]


# ----------------------------------------------------------------------------- embeddings
def tsne(x, seed: int = 0) -> np.ndarray:
    """``(n, d) -> (n, 2)``: t-SNE (scikit-learn, PCA initialisation) after PCA to at most 50
    dimensions; perplexity ``min(30, (n - 1) / 3)``; the exact gradient up to 1,000 contexts
    (faster there than Barnes-Hut, which is used beyond). Needs n >= 3."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, np.float64)
    n = len(x)
    if n < 3:
        raise InputError(f"t-SNE needs at least 3 contexts, got {n}")
    k = min(50, n - 1, x.shape[1])
    if x.shape[1] > k:
        x = PCA(n_components=k, random_state=seed).fit_transform(x)
    return TSNE(2, perplexity=min(30.0, max(1.0, (n - 1) / 3)), init="pca", random_state=seed,
                method="exact" if n <= 1000 else "barnes_hut").fit_transform(x)


def knn_agreement(x, groups, k: int = 5) -> tuple[float, float]:
    """``(agreement, chance)``: the mean over points of the share of their ``k`` nearest neighbours
    (Euclidean, the point itself left out) in the same group, and its expectation when the groups
    are shuffled: ``sum_g n_g (n_g - 1) / (n (n - 1))``. ``x (n, d)``, ``groups (n,)``."""
    from sklearn.neighbors import NearestNeighbors

    groups = np.asarray(groups, str)
    n = len(groups)
    k = min(int(k), n - 1)
    if k < 1:
        raise InputError(f"kNN agreement needs at least 2 contexts, got {n}")
    nn = NearestNeighbors(n_neighbors=k).fit(np.asarray(x, np.float64))
    idx = nn.kneighbors(return_distance=False)  # without X: each point's neighbours, itself left out
    agreement = float((groups[idx] == groups[:, None]).mean())
    _, counts = np.unique(groups, return_counts=True)
    return agreement, float((counts * (counts - 1)).sum() / (n * (n - 1)))


# ----------------------------------------------------------------------------- truth
def region_bins(spec, index):
    """``(chrom (R,) str, start (R,), end (R,))`` of the labelled bins of the regions ``index``
    (rows of ``sequences.bed``: the bin is the centre ``bin_length`` bp of each window)."""
    info = cc.pairs_info(spec)
    bed = pd.read_csv(os.path.join(spec.path, "sequences.bed"), sep="\t", header=None, dtype={0: str},
                      usecols=[0, 1, 2])
    rows = bed.iloc[np.asarray(index, np.int64)]
    flank = (int(info["seq_length"]) - int(info["bin_length"])) // 2
    start = rows[1].to_numpy(np.int64) + flank
    return rows[0].to_numpy(str), start, start + int(info["bin_length"])


def truth_labels(spec, truth_path, names, chrom, start) -> tuple[list, np.ndarray]:
    """``(truth contexts, labels (R, T) uint8)``: the bins ``(chrom, start)`` labelled against each
    truth context's peaks by the dataset's rule (more than ``threshold`` of ``bin_length``
    covered). Every truth context must be one of the imputed ``names``."""
    from basenji_tk.data.contexts import read_contexts
    from basenji_tk.data.pairs import label_matrix, read_peaks

    info = cc.pairs_info(spec)
    truth = read_contexts(truth_path)
    lost = [c for c in truth if c.name not in names]
    if lost:
        raise InputError(f"{lost[0].row}: context {lost[0].name!r} of --truth is not imputed (imputed: "
                         f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''})")
    chroms = sorted(set(chrom.tolist()))
    peaks = read_peaks(truth, chroms)
    labels = np.zeros((len(chrom), len(truth)), np.uint8)
    for c in chroms:
        m = chrom == c
        labels[m] = label_matrix([p.get(c, (np.zeros(0), np.zeros(0))) for p in peaks], start[m],
                                 int(info["bin_length"]), float(info["threshold"]))
    return [c.name for c in truth], labels


# ----------------------------------------------------------------------------- the run
def _write_h5(path, probs, names, chrom, start, end, scan, attrs):
    import h5py

    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("probabilities", data=probs.astype(np.float16), compression="gzip")
            h5["contexts"] = np.array(names, dtype="S")
            h5["chrom"] = np.array(chrom, dtype="S")
            h5["start"], h5["end"] = start, end
            h5["split"] = np.array(scan.region_split, dtype="S")
            h5["index"] = scan.index
            h5.attrs.update(attrs)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def impute_contexts(model_dir, data_dir, expression_path, out_dir, options: Options | None = None) -> dict:
    """Impute the contexts of ``expression_path`` over ``data_dir``'s regions with the pairs model
    ``model_dir``; write the outputs of the module docstring to ``out_dir``. Returns
    ``{"names", "probabilities" (regions, contexts) float32, "tsne" DataFrame, "knn" DataFrame or
    None, "truth" DataFrame or None}``."""
    from basenji_tk.analysis.crosscontext_plots import tsne_figure
    from basenji_tk.analysis.evaluate import write_table
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import records

    o = options or Options()
    if o.split not in ("all", "test"):
        raise InputError(f"--split: expected all or test, got {o.split!r}")
    spec = records.load_spec(str(data_dir))
    cc.region_splits(spec, o.split)
    names, expression = read_expression(expression_path, spec, o.contexts, o.transpose)
    groups = read_groups(o.groups, o.group_column, names) if o.groups else None
    tm = TrainedModel.load(model_dir, o.model_file)
    predictor = cc.ContextPredictor.for_trained(tm, spec, "auto", o.batch_size, str(model_dir))
    n_folds = len(cc.pairs_info(spec)["folds"])
    fold = cc.model_fold(tm) if cc.model_fold(tm) < n_folds else 0
    label = cc.dataset_label(spec, o.label)
    out_dir = str(out_dir)
    with files.claim(out_dir):
        files.refuse_overwrite(out_dir, OUTPUTS, o.force)
        train_index = cc.training_index(spec, fold)
        log.info(f"imputing {len(names)} context(s) over the {o.split} regions of {spec.path} ({predictor.method})")
        scan = cc.scan_contexts(spec, [predictor], expression, train_index, o.split, o.batch_size, o.progress)
        probs = scan.probs[0]
        chrom, start, end = region_bins(spec, scan.index)
        path = lambda name: os.path.join(out_dir, name)  # noqa: E731
        _write_h5(path("imputed.h5"), probs, names, chrom, start, end, scan,
                  {"model": os.path.abspath(str(model_dir)), "data": os.path.abspath(str(data_dir)),
                   "expression": os.path.abspath(str(expression_path)), "fold": fold, "label": label})
        out = {"names": names, "probabilities": probs, "tsne": None, "knn": None, "truth": None}
        spaces = {"imputed accessibility": probs.T, "TF expression": expression}
        if len(names) >= 3:
            emb = {k: tsne(x, o.seed) for k, x in spaces.items()}
            out["tsne"] = pd.DataFrame({"context": names, "group": groups or [""] * len(names),
                                        "accessibility_x": emb["imputed accessibility"][:, 0],
                                        "accessibility_y": emb["imputed accessibility"][:, 1],
                                        "expression_x": emb["TF expression"][:, 0],
                                        "expression_y": emb["TF expression"][:, 1]})
            write_table(out["tsne"], path("tsne.tsv"))
            tsne_figure({f"by imputed accessibility ({len(probs):,} regions)": emb["imputed accessibility"],
                         f"by TF expression ({expression.shape[1]:,} features)": emb["TF expression"]},
                        groups, path("tsne.png"), label)
            if groups is not None:
                rows = []
                for space, x in list(spaces.items()) + [(f"t-SNE of {k}", e) for k, e in emb.items()]:
                    agree, chance = knn_agreement(x, groups, o.neighbours)
                    rows.append({"space": space, "k": min(o.neighbours, len(names) - 1), "agreement": agree,
                                 "chance": chance})
                out["knn"] = pd.DataFrame(rows)
                write_table(out["knn"], path("knn_agreement.tsv"))
        else:
            log.warning(f"warning: {len(names)} context(s): no t-SNE (it needs at least 3)")
        if o.truth:
            t_names, t_labels = truth_labels(spec, o.truth, names, chrom, start)
            mean = cc.mean_baseline(scan.labels, train_index)
            rows = []
            for j, n in enumerate(t_names):
                y, p = t_labels[:, j].astype(bool), probs[:, names.index(n)]
                ok = 0 < y.sum() < len(y)
                a, r = cc.auprc_auroc(y, p) if ok else (np.nan, np.nan)
                ma, mr = cc.auprc_auroc(y, mean) if ok else (np.nan, np.nan)
                if not ok:
                    log.info(f"--truth {n}: {int(y.sum())} positives of {len(y)} regions; no AUPRC")
                rows.append({"context": n, "regions": len(y), "positives": int(y.sum()), "auprc": a, "auroc": r,
                             "mean_baseline_auprc": ma, "mean_baseline_auroc": mr})
            out["truth"] = pd.DataFrame(rows)
            write_table(out["truth"], path("truth.tsv"))
        summary = {"model": os.path.abspath(str(model_dir)), "data": os.path.abspath(str(data_dir)),
                   "expression": os.path.abspath(str(expression_path)), "contexts": names, "split": o.split,
                   "fold": fold, "regions": int(len(probs)), "method": predictor.method, "label": label,
                   "seconds": round(scan.seconds, 3)}
        files.write_json(path("impute_contexts.json"), summary)
        log.info(f"wrote {out_dir}: {len(probs):,} regions x {len(names)} imputed context(s)")
        return out
