"""``gwas_classify.py``: can sed.h5 features tell a set of variants from a matched negative set?

:func:`variant_features` gives each variant of sed.h5 its largest ``|statistic|`` over the
genes it was scored for, per target; :func:`classify_cv` cross-validates standardize -> PCA ->
logistic regression on them (AUROC per fold); :func:`read_id_list` reads the variant id lists;
:func:`run_gwas_classify` is the whole script.
"""

from __future__ import annotations

import json
import os

import numpy as np

from basenji_tk import files
from basenji_tk.analysis.sedld_inputs import read_sed_h5, sed_targets
from basenji_tk.analysis.sedld_outputs import _jsonable
from basenji_tk.errors import InputError


def read_id_list(path) -> list:
    """Variant ids, one per line (first tab/space-separated word; '#' lines and blanks skipped)."""
    try:
        with open(path) as fh:
            return list(dict.fromkeys(line.split()[0] for line in fh if line.strip() and not line.startswith("#")))
    except OSError as err:
        raise InputError(f"{path}: cannot read the id list ({err.strerror})") from None


def variant_features(sed_path, stat: str = "maxlog2"):
    """Per-variant features from sed.h5: ``max |stat|`` over the variant's genes, for every target.

    Returns ``(ids (V,), features (V, T), target_ids (T,))``; variants in first-seen order.
    """
    ids, _ = sed_targets(sed_path)
    sed = read_sed_h5(sed_path, stat, np.arange(len(ids)))
    uniq, inverse = np.unique(sed.snp.astype(str), return_inverse=True)
    feats = np.zeros((len(uniq), len(ids)))
    np.maximum.at(feats, inverse, np.abs(np.nan_to_num(sed.values)))
    order = np.argsort(np.unique(inverse, return_index=True)[1], kind="stable")
    return uniq[order].astype(object), feats[order], ids


def classify_cv(features, labels, components: int = 10, folds: int = 5, seed: int = 0) -> dict:
    """Cross-validated AUROC of standardize -> PCA -> logistic regression.

    ``features``: ``(n, T)``; ``labels``: ``(n,)`` 0/1. Stratified ``folds``-fold split shuffled
    with ``seed``; scaler, PCA (``min(components, T, n_train - 1)`` components) and classifier are
    fitted on each training part only. Returns ``{'auroc': [per fold], 'mean', 'sd', 'folds': [...]}``.
    """
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs, rows = [], []
    for k, (tr, te) in enumerate(skf.split(X, y), start=1):
        nc = max(1, min(components, X.shape[1], len(tr) - 1))
        model = make_pipeline(StandardScaler(), PCA(n_components=nc, random_state=seed),
                              LogisticRegression(max_iter=1000))
        model.fit(X[tr], y[tr])
        auc = float(roc_auc_score(y[te], model.predict_proba(X[te])[:, 1]))
        aucs.append(auc)
        rows.append({"fold": k, "n_train": int(len(tr)), "n_test": int(len(te)), "n_test_positive": int(y[te].sum()),
                     "components": nc, "auroc": auc})
    return {"auroc": aucs, "mean": float(np.mean(aucs)), "sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
            "folds": rows}


def run_gwas_classify(sed_path, positives_path, negatives_path, out_dir, stat: str = "maxlog2", components: int = 10,
                      folds: int = 5, seed: int = 0, force: bool = False) -> dict:
    """The whole of ``gwas_classify.py``: features of the listed variants, :func:`classify_cv`, then
    ``out_dir/auroc.tsv`` and ``out_dir/gwas_classify.json`` (written under temporary names, renamed
    at the end). Returns what gwas_classify.json holds: the :func:`classify_cv` result with the
    inputs, options and ``counts`` (ids listed, found, not in sed.h5)."""
    ids, feats, targets = variant_features(sed_path, stat)
    row = {v: i for i, v in enumerate(ids)}
    pos, neg = read_id_list(positives_path), read_id_list(negatives_path)
    both = set(pos) & set(neg)
    if both:
        raise InputError(f"{negatives_path}: {len(both):,} ids are also in {positives_path} "
                         f"(e.g. {sorted(both)[0]})")
    counts = {"sed_variants": len(ids), "targets": len(targets), "positives_listed": len(pos),
              "negatives_listed": len(neg), "positives_not_in_sed": sum(v not in row for v in pos),
              "negatives_not_in_sed": sum(v not in row for v in neg)}
    pos_i = [row[v] for v in pos if v in row]
    neg_i = [row[v] for v in neg if v in row]
    counts.update(positives=len(pos_i), negatives=len(neg_i))
    for name, n, path in (("positives", len(pos_i), positives_path), ("negatives", len(neg_i), negatives_path)):
        if n < folds:
            raise InputError(f"{path}: {n} {name} found in {sed_path} (of {counts[name + '_listed']}); need "
                             f"at least --folds = {folds}")
    files.refuse_overwrite(out_dir, ["auroc.tsv", "gwas_classify.json"], force)
    with files.claim(out_dir):
        X = feats[pos_i + neg_i]
        y = np.r_[np.ones(len(pos_i)), np.zeros(len(neg_i))]
        res = classify_cv(X, y, components, folds, seed)
        tsv, js = os.path.join(out_dir, "auroc.tsv"), os.path.join(out_dir, "gwas_classify.json")
        tmp = [os.path.join(out_dir, f".{os.path.basename(p)}.{os.getpid()}.tmp") for p in (tsv, js)]
        with open(tmp[0], "w") as fh:
            fh.write("fold\tn_train\tn_test\tn_test_positive\tcomponents\tauroc\n")
            for f in res["folds"]:
                fh.write(f"{f['fold']}\t{f['n_train']}\t{f['n_test']}\t{f['n_test_positive']}\t{f['components']}\t"
                         f"{f['auroc']:.6f}\n")
            fh.write(f"mean\t\t\t\t\t{res['mean']:.6f}\nsd\t\t\t\t\t{res['sd']:.6f}\n")
        summary = {"sed": str(sed_path), "stat": stat, "components": components, "folds": folds, "seed": seed,
                   "counts": counts, **res}
        with open(tmp[1], "w") as fh:
            json.dump(_jsonable(summary), fh, indent=1)
        for t, f in zip(tmp, (tsv, js)):
            os.replace(t, f)
    return summary
