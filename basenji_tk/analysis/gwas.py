"""``gwas_classify.py``: can sed.h5 features tell a set of variants from a matched negative set?

:func:`variant_features` gives each variant of sed.h5 its largest ``|statistic|`` over the
genes it was scored for, per target; :func:`classify_cv` cross-validates standardize -> PCA ->
logistic regression on them (AUROC per fold); :func:`read_id_list` reads the variant id lists.
"""

from __future__ import annotations

import numpy as np

from basenji_tk.analysis.sedld_inputs import read_sed_h5, sed_targets
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
