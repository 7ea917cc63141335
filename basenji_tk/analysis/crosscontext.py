"""Accessibility in held-out contexts (ChromDragoNN; Nair et al. 2019, sections 2.4-3.2, Fig. 1D-E).

A pairs model (:mod:`basenji_tk.data.pairs`) predicts whether a region is accessible in a context
from the region's sequence, the context's vector (e.g. log TPM of TFs) and, when it takes one,
the region's mean accessibility over the fold's TRAINING contexts. Here:

- :class:`ContextPredictor` and :func:`context_predictions`: the model's probability for every
  region of some genome split(s) x every requested context (by default the fold's test
  contexts), from the dataset's region records (one pass over them for any number of models).
  When the model's sequence part can be cut off (:func:`cut_at_context`: every layer that
  depends on the sequence alone, up to where a context input joins), it runs once per region and
  only the rest runs per (region, context) pair; otherwise the pairs are tiled through the whole
  model. Both give the same numbers (tested to 1e-5);
- the two baselines: :func:`mean_baseline` (fraction of training contexts where the region is
  accessible) and :func:`rna_weighted_baseline` (that mean weighted by the similarity of the query
  context's expression to each training context's; :func:`context_similarity` says which);
- scores (from :mod:`basenji_tk.analysis.crosscontext_scores`, importable from here):
  :func:`score_contexts` (AUPRC, the primary metric, and AUROC per context and pooled, by genome
  part), :func:`binned_auprc` (Fig. 1E) and :func:`fold_comparison` (Fig. 1D).

The report of ``test_contexts.py`` is :mod:`basenji_tk.analysis.crosscontext_report`, its plots
:mod:`basenji_tk.analysis.crosscontext_plots`.
"""

import json
import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from basenji_tk.analysis.crosscontext_scores import (DEFAULT_EDGES, GENOME_PARTS, auprc_auroc,  # noqa: F401
                                                     binned_auprc, fold_comparison, genome_parts, score_contexts)
from basenji_tk.data.contexts import SPLITS
from basenji_tk.data.pairs_views import context_table, fold_splits, mean_accessibility, pairs_info
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

CONTEXT_INPUT = "expression"  # the context vector of a pairs dataset's examples
MEAN_INPUT = "mean_accessibility"
SIMILARITIES = ("pearson", "centered")
BASELINES = ("mean", "rna_weighted")
SEMI_SYNTHETIC = "SEMI-SYNTHETIC"


# ----------------------------------------------------------------------------- the model, cut in two
def _history(tensor):
    op, node_index, _ = tensor._keras_history
    return op, op._inbound_nodes[node_index].input_tensors


def cut_at_context(model, sequence: str = "sequence"):
    """``(trunk, head, names)`` of a one-output Keras model with a dict input, or None when there is no cut.

    ``trunk``: ``sequence (B, L, 4) -> [features ...]``, every layer that depends on the sequence
    input alone, up to the tensors where another input (the context vector, the mean) joins;
    ``head``: ``[features ..., other inputs ...] -> output``, the rest, on the same layers (and
    weights), taking a list: the features, then the other inputs it uses, whose names are
    ``names``. None when the sequence itself meets another input (nothing to cut off)."""
    import keras

    if not isinstance(model.input, dict) or sequence not in model.input:
        return None
    named = {id(t): n for n, t in model.input.items()}
    deps = {}

    def depends(t):  # the model inputs tensor t derives from (iterative: deep ResNets)
        stack = [t]
        while stack:
            x = stack[-1]
            if id(x) in deps:
                stack.pop()
                continue
            if id(x) in named:
                deps[id(x)] = frozenset([named[id(x)]])
                stack.pop()
                continue
            _, parents = _history(x)
            todo = [p for p in parents if id(p) not in deps]
            if todo:
                stack.extend(todo)
                continue
            deps[id(x)] = frozenset().union(*(deps[id(p)] for p in parents)) if parents else frozenset()
            stack.pop()
        return deps[id(t)]

    out = model.output
    if isinstance(out, dict):
        if len(out) != 1:
            return None
        out = next(iter(out.values()))
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            return None
        out = out[0]
    alone = frozenset([sequence])
    frontier, seen, stack = {}, set(), [out]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        d = depends(t)
        if d == alone:
            frontier[id(t)] = t
        elif sequence in d:
            stack.extend(_history(t)[1])
    if not frontier or any(id(t) == id(model.input[sequence]) for t in frontier.values()):
        return None
    features = list(frontier.values())
    others = [n for n in model.input if n != sequence and n in depends(out)]
    trunk = keras.Model(model.input[sequence], features, name=f"{model.name}_trunk")
    head = keras.Model(features + [model.input[n] for n in others], out, name=f"{model.name}_head")
    return trunk, head, others


# ----------------------------------------------------------------------------- checks
def model_fold(tm) -> int:
    """The context fold a pairs model was trained on (params ``train.fold``; 0 when unset)."""
    return int(((tm.params or {}).get("train") or {}).get("fold") or 0)


def model_contexts(tm, split: str = "train") -> list | None:
    """The contexts of ``split`` in the fold a model was trained on (its training statistics), or None."""
    info = (tm.stats or {}).get("pairs")
    if not info:
        return None
    folds = info.get("folds") or []
    fold = model_fold(tm)
    return list(folds[fold].get(split, [])) if fold < len(folds) else None


def check_pairs_model(tm, spec, where: str | None = None):
    """That ``tm`` is a pairs model fit for the pairs dataset ``spec``; returns its output's name.

    One :class:`InputError` for: no context input (not a pairs model), inputs besides the
    sequence, the context vector and the mean, a context vector of another length or other
    feature names than the dataset's (a model trained on another dataset's contexts), an output
    that is not one probability."""
    where = where or tm.model_dir
    info = pairs_info(spec)
    ctx = tm.inputs.get(CONTEXT_INPUT)
    if ctx is None or ctx.kind != "vector":
        raise InputError(f"{where}: not a pairs model (it has no context input '{CONTEXT_INPUT}'; its inputs: "
                         f"{', '.join(tm.inputs)}); train one on a make_pairs.py dataset")
    other = [n for n, i in tm.inputs.items() if n not in (CONTEXT_INPUT, MEAN_INPUT) and i.kind != "sequence"]
    if other or tm.sequence is None:
        raise InputError(f"{where}: takes {', '.join(tm.inputs)}; a pairs model takes a sequence, "
                         f"'{CONTEXT_INPUT}' and optionally '{MEAN_INPUT}'")
    features = list(info["context_features"])
    if tuple(ctx.shape) != (len(features),):
        raise InputError(f"{where}: the model takes {ctx.shape[0]} context features, {spec.path} has {len(features)} "
                         f"(a model trained on another dataset's contexts)")
    if ctx.names and list(ctx.names) != features:
        k = next(i for i, (a, b) in enumerate(zip(ctx.names, features)) if a != b)
        raise InputError(f"{where}: context feature {k + 1} is {ctx.names[k]!r} for the model and {features[k]!r} in "
                         f"{spec.path} (a model trained on another dataset's contexts)")
    if tm.seq_length != info["seq_length"]:
        raise InputError(f"{where}: the model takes {tm.seq_length} bp, {spec.path} holds {info['seq_length']} bp "
                         "windows")
    out = tm.output()
    if out.kind != "probability" or out.num_targets != 1:
        raise InputError(f"{where}: its output {out.describe()} is not one accessibility probability")
    return out.name


def query_contexts(spec, fold: int = 0, contexts=None, option: str = "--contexts") -> list:
    """Indices into ``pairs.contexts`` of ``contexts`` (names; default: the fold's test contexts)."""
    names = list(pairs_info(spec)["contexts"])
    splits = fold_splits(spec, fold)
    if contexts is None:
        chosen = [n for n in names if splits[n] == "test"]
        if not chosen:
            raise InputError(f"{spec.path}: fold {fold} has no test contexts; name some with {option}")
        return [names.index(n) for n in chosen]
    missing = [n for n in contexts if n not in names]
    if missing:
        raise InputError(f"{option}: {missing[0]!r} is not a context of {spec.path} (contexts: "
                         f"{', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")
    return [names.index(n) for n in contexts]


def training_index(spec, fold: int = 0) -> np.ndarray:
    """Indices (int) of the fold's training contexts in ``pairs.contexts``."""
    splits = fold_splits(spec, fold)
    return np.array([i for i, n in enumerate(pairs_info(spec)["contexts"]) if splits[n] == "train"], np.int64)


def region_splits(spec, split="all") -> list:
    """The genome splits to read: ``all`` (every split with regions), a name, or a list of names."""
    wanted = SPLITS if split in (None, "all") else ([split] if isinstance(split, str) else list(split))
    bad = [s for s in wanted if s not in SPLITS]
    if bad:
        raise InputError(f"--split: {bad[0]!r}; expected all, {', '.join(SPLITS)}")
    have = [s for s in wanted if spec.counts.get(s, 0)]
    if not have:
        raise InputError(f"{spec.path}: no regions in the {' or '.join(wanted)} split (it has: "
                         + ", ".join(f"{s} {spec.counts.get(s, 0)}" for s in SPLITS) + ")")
    return have


def dataset_label(spec, label: str | None = None) -> str:
    """``label``, or SEMI-SYNTHETIC when the dataset says it is (its statistics or its path)."""
    if label:
        return label
    text = (json.dumps(spec.stats) + spec.path).lower()
    return SEMI_SYNTHETIC if "semi-synthetic" in text or "semi_synthetic" in text else ""


# ----------------------------------------------------------------------------- predicting
class ContextPredictor:
    """A pairs model's Keras graph ready to score (region, context) pairs; for a trained model
    folder checked against a dataset use :meth:`for_trained`.

    ``model``: a one-output Keras model with a dict input holding ``sequence`` (the DNA),
    ``expression`` and optionally ``mean_accessibility``. ``method``: ``auto`` (cut when
    :func:`cut_at_context` finds a cut, else tiled), ``cut`` or ``tiled``; :attr:`method` says
    which is used. :meth:`predict` takes ``batch_size`` pairs per model call (and the trunk
    ``batch_size`` regions); ``seconds`` adds up the time spent predicting."""

    def __init__(self, model, sequence: str = "sequence", method: str = "auto", batch_size: int = 256,
                 where: str = "the model"):
        if method not in ("auto", "cut", "tiled"):
            raise InputError(f"method: expected auto, cut or tiled, got {method!r}")
        self.model, self.sequence = model, sequence
        self.takes_mean = MEAN_INPUT in model.input
        self.batch_size = max(1, int(batch_size))
        self.cut = cut_at_context(model, sequence) if method != "tiled" else None
        if method == "cut" and self.cut is None:
            raise InputError(f"{where}: no layers depend on the sequence alone before a context input joins; "
                             "use the tiled method")
        self.method = "cut" if self.cut is not None else "tiled"
        self.seconds = 0.0

    @classmethod
    def for_trained(cls, tm, spec, method: str = "auto", batch_size: int = 256, where: str | None = None):
        """The output of the trained model ``tm`` (:class:`~basenji_tk.analysis.trained.TrainedModel`),
        checked against the pairs dataset ``spec`` (:func:`check_pairs_model`)."""
        output = check_pairs_model(tm, spec, where)
        out = cls(tm.output_model(output), tm.sequence.name, method, batch_size, where or tm.model_dir)
        out.tm = tm
        return out

    def _rows(self, per_region: list, expression, mean, n_pairs, n_query):
        """Model inputs of pairs ``[k, k + batch)``: region ``k // Q``, context ``k % Q``."""
        for k in range(0, n_pairs, self.batch_size):
            idx = np.arange(k, min(n_pairs, k + self.batch_size))
            r, q = idx // n_query, idx % n_query
            rows = [x[r] for x in per_region] + [expression[q]]
            if self.takes_mean:
                rows.append(mean[r][:, None])
            yield rows

    def predict(self, sequence, expression, mean) -> np.ndarray:
        """``sequence (B, L, 4)``, ``expression (Q, F)``, ``mean (B,)`` -> probabilities ``(B, Q)`` float32."""
        start = time.perf_counter()
        b, q = len(sequence), len(expression)
        expression = np.asarray(expression, np.float32)
        mean = np.asarray(mean, np.float32)
        out = []
        if self.cut is not None:
            trunk, head, others = self.cut
            feats = _padded(trunk, np.asarray(sequence, np.float32), self.batch_size)
            feats = [np.asarray(f) for f in (feats if isinstance(feats, (list, tuple)) else [feats])]
            given = [CONTEXT_INPUT] + ([MEAN_INPUT] if self.takes_mean else [])
            for rows in self._rows(feats, expression, mean, b * q, q):
                named = dict(zip(given, rows[len(feats):]))
                out.append(_only(_padded(head, rows[:len(feats)] + [named[n] for n in others], self.batch_size))
                           .reshape(-1))
        else:
            names = [self.sequence, CONTEXT_INPUT] + ([MEAN_INPUT] if self.takes_mean else [])
            for rows in self._rows([np.asarray(sequence, np.float32)], expression, mean, b * q, q):
                out.append(_only(_padded(self.model, dict(zip(names, rows)), self.batch_size)).reshape(-1))
        self.seconds += time.perf_counter() - start
        return np.concatenate(out).astype(np.float32).reshape(b, q) if out else np.zeros((b, q), np.float32)


def _padded(model, x, size: int):
    """``model.predict_on_batch(x)`` with a batch shorter than ``size`` padded to it (its last row
    repeated) and the outputs cut back: one batch shape, so the prediction function is traced once.
    ``x``: an array, or a list or dict of arrays of one batch length; returns an array, a list or a
    dict of them."""
    first = next(iter(x.values())) if isinstance(x, dict) else x if isinstance(x, np.ndarray) else x[0]
    n = len(first)
    if 0 < n < size:
        pad = lambda a: np.concatenate([a, np.repeat(a[-1:], size - n, axis=0)])  # noqa: E731
        x = ({k: pad(v) for k, v in x.items()} if isinstance(x, dict) else pad(x) if isinstance(x, np.ndarray)
             else [pad(v) for v in x])
    y = model.predict_on_batch(x)
    if isinstance(y, dict):
        return {k: np.asarray(v)[:n] for k, v in y.items()}
    if isinstance(y, (list, tuple)):
        return [np.asarray(v)[:n] for v in y]
    return np.asarray(y)[:n]


def _only(y) -> np.ndarray:
    """The one output of a prediction (a dict or list of one, or an array)."""
    if isinstance(y, dict):
        y = list(y.values())
    if isinstance(y, (list, tuple)):
        if len(y) != 1:
            raise InputError(f"expected a model of one output, got {len(y)}")
        y = y[0]
    return np.asarray(y, np.float32)


@dataclass
class ContextScan:
    """What :func:`scan_contexts` read and predicted: ``probs`` ``[(regions, Q) float32]`` one per
    predictor, ``labels`` ``(regions, C)`` uint8 in every context, ``index`` ``(regions,)`` (rows of
    ``sequences.bed``), ``region_split`` ``(regions,)`` (their genome split), ``train_index`` (the
    training contexts whose labels make the mean), ``seconds`` (of the whole scan)."""

    probs: list
    labels: np.ndarray
    index: np.ndarray
    region_split: np.ndarray
    train_index: np.ndarray
    seconds: float


def scan_contexts(spec, predictors, expression, train_index, split="all", batch_size: int = 256,
                  progress: bool = False) -> ContextScan:
    """One pass over the region records of ``split`` (:func:`region_splits`): each predictor's
    probabilities for every region x every row of ``expression`` ``(Q, F)``; the mean input is the
    fraction of ``train_index`` contexts where the region is accessible."""
    from tqdm import tqdm

    from basenji_tk.data import records

    splits = region_splits(spec, split)
    train_index = np.asarray(train_index, np.int64)
    if not len(train_index):
        raise InputError(f"{spec.path}: no training contexts, so no mean accessibility")
    start = time.perf_counter()
    probs = [[] for _ in predictors]
    labels, index, region_split = [], [], []
    bar = tqdm(total=sum(spec.counts[s] for s in splits), desc="regions", unit="region", disable=not progress)
    for s in splits:
        ds = records.raw_dataset(spec, s, with_index=True).batch(batch_size)
        for batch in ds.as_numpy_iterator():
            lab = np.asarray(batch["labels"]).astype(np.uint8)
            mean = mean_accessibility(lab, train_index)
            for k, p in enumerate(predictors):
                probs[k].append(p.predict(batch["sequence"], expression, mean))
            labels.append(lab)
            index.append(np.asarray(batch["index"], np.int64))
            region_split += [s] * len(lab)
            bar.update(len(lab))
    bar.close()
    n_q = len(expression)
    return ContextScan([np.concatenate(p) if p else np.zeros((0, n_q), np.float32) for p in probs],
                       np.concatenate(labels), np.concatenate(index), np.array(region_split),
                       train_index, time.perf_counter() - start)


def context_predictions(tm, data_dir, contexts=None, split="all", fold: int = 0, batch_size: int = 256,
                        method: str = "auto", progress: bool = False):
    """A pairs model's probabilities in ``contexts`` (names; default: the fold's test contexts).

    Returns ``(probs (regions, Cq) float32, labels (regions, Cq) uint8, region_index (regions,),
    region_split (regions,))`` over the regions of ``split`` (``all``, a genome split or a list);
    the mean input is over fold ``fold``'s training contexts. ``method``: see :class:`ContextPredictor`."""
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import records

    spec = records.load_spec(data_dir)
    tm = TrainedModel.load(tm) if isinstance(tm, (str, os.PathLike)) else tm
    query = query_contexts(spec, fold, contexts)
    predictor = ContextPredictor.for_trained(tm, spec, method, batch_size)
    scan = scan_contexts(spec, [predictor], context_table(spec)[query], training_index(spec, fold), split,
                         batch_size, progress)
    return scan.probs[0], scan.labels[:, query], scan.index, scan.region_split


# ----------------------------------------------------------------------------- baselines
def mean_baseline(labels, train_index) -> np.ndarray:
    """Fraction of the training contexts ``train_index`` where each region is accessible:
    ``labels (regions, C)`` -> ``(regions,)`` float32 (ChromDragoNN's mean baseline)."""
    train_index = np.asarray(train_index, np.int64)
    if not len(train_index):
        raise InputError("mean_baseline: no training contexts")
    return mean_accessibility(labels, train_index)


def context_similarity(train_expression, query_expression, similarity: str = "pearson") -> np.ndarray:
    """Similarity of each query context to each training context: ``(K, F), (Q, F) -> (Q, K)``.

    ``pearson``: Pearson r of the two expression vectors over the features (the context table
    as stored: log TPM when the dataset was built with ``--log``). ``centered``: the same after
    subtracting each feature's mean over the training contexts from both, so that TFs high in
    every context do not make every pair of contexts look alike. A constant vector gives 0."""
    if similarity not in SIMILARITIES:
        raise InputError(f"--similarity: expected {' or '.join(SIMILARITIES)}, got {similarity!r}")
    x = np.asarray(train_expression, np.float64)
    q = np.asarray(query_expression, np.float64)
    if x.ndim != 2 or q.ndim != 2 or x.shape[1] != q.shape[1]:
        raise InputError(f"context_similarity: expected (K, F) and (Q, F), got {x.shape} and {q.shape}")
    if similarity == "centered":
        centre = x.mean(axis=0)
        x, q = x - centre, q - centre
    x = x - x.mean(axis=1, keepdims=True)
    q = q - q.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(x, axis=1)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (q @ x.T) / norms
    return np.where(norms > 0, r, 0.0)


def rna_weighted_baseline(labels, train_index, expression, query_expression, similarity: str = "pearson",
                          query_names=None) -> np.ndarray:
    """ChromDragoNN's RNA-weighted baseline: ``(regions, Cq)`` float32.

    For query context q, the mean of the training contexts' labels weighted by
    ``max(0, similarity(q, k))`` (:func:`context_similarity`; the paper: "weight proportional to
    the similarity", metric unspecified). ``labels (regions, C)``; ``expression (C, F)`` the
    context table (rows ``train_index`` are used); ``query_expression (Cq, F)``. A query with no
    training context of positive similarity gets equal weights (the mean baseline), with a
    warning naming it."""
    train_index = np.asarray(train_index, np.int64)
    if not len(train_index):
        raise InputError("rna_weighted_baseline: no training contexts")
    w = np.clip(context_similarity(np.asarray(expression)[train_index], query_expression, similarity), 0, None)
    total = w.sum(axis=1)
    for k in np.flatnonzero(total <= 0):
        name = query_names[k] if query_names is not None else f"query {k}"
        log.warning(f"warning: rna_weighted baseline: context {name} has no training context of positive "
                    f"{similarity} similarity; it gets equal weights (the mean baseline)")
        w[k], total[k] = 1.0, w.shape[1]
    w = w / total[:, None]
    return (np.asarray(labels, np.float32)[:, train_index] @ w.T.astype(np.float32)).astype(np.float32)
