"""Reading a region x context pairs dataset (:mod:`basenji_tk.data.pairs`): its two views.

- (region, context) examples, the tf.data pipeline that turns one record per region into
  pairs (:func:`expand`; ChromDragoNN's stage 2), class-balanced (:func:`balance`) and counted
  (:func:`count`) by the split rule of :mod:`basenji_tk.data.contexts`;
- the regions view (:func:`regions_view`; stage 1): each region with its labels in the fold's
  training contexts only.

Pairs are drawn here, in the input pipeline, never written out C times.
"""

import os

import numpy as np

from basenji_tk.data.contexts import RANK, SPLITS, pair_contexts
from basenji_tk.errors import InputError

LABEL = "labels"  # the records' (C,) uint8 label of each region in every context


# ----------------------------------------------------------------------------- pipeline
def pairs_info(spec) -> dict:
    """The ``pairs`` section of a dataset's statistics (an InputError when it has none)."""
    info = spec.stats.get("pairs")
    if info is None:
        raise InputError(f"{spec.path}: not a pairs dataset (statistics.json has no 'pairs' section)")
    return info


def context_table(spec) -> np.ndarray:
    """The dataset's ``(C, F)`` float32 context table, rows in ``pairs.contexts`` order."""
    info = pairs_info(spec)
    path = os.path.join(spec.path, info["context_table"])
    if not os.path.exists(path):
        raise InputError(f"{path}: the context table of this pairs dataset is missing")
    table = np.load(path).astype(np.float32)
    if table.shape[0] != len(info["contexts"]):
        raise InputError(f"{path}: {table.shape[0]} rows for {len(info['contexts'])} contexts in statistics.json")
    return table


def fold_splits(spec, fold=0) -> dict:
    """``{context: split}`` of fold ``fold``."""
    folds = pairs_info(spec)["folds"]
    if not 0 <= fold < len(folds):
        raise InputError(f"fold {fold}: the dataset has {len(folds)} fold(s) (0 to {len(folds) - 1})")
    return {n: s for s, names in folds[fold].items() for n in names}


def example_features(spec, mean=True) -> list:
    """The features of one (region, context) example, as :class:`records.Feature` s: what a
    model's ``model.inputs`` and heads bind to."""
    from basenji_tk.data import records

    info = pairs_info(spec)
    n_features = len(info["context_features"])
    out = [records.Feature("sequence", "sequence", (info["seq_length"], 4), "uint8", resolution=1),
           records.Feature("expression", "vector", (n_features,), "float32", names=tuple(info["context_features"]),
                           meta={"log": info["expression"]["log"], "pseudocount": info["expression"]["pseudocount"]})]
    if mean:
        out.append(records.Feature("mean_accessibility", "vector", (1,), "float32",
                                   meta={"definition": info["mean_accessibility"]}))
    out.append(records.Feature("accessible", "label", (1,), "float32", label_type="binary",
                               meta={"threshold": info["threshold"], "bin_length": info["bin_length"]}))
    return out


def region_splits(split) -> tuple:
    """The region splits whose records :func:`expand` needs for pairs of ``split`` (those not later)."""
    return SPLITS[:RANK[split] + 1]


def mean_accessibility(labels, train_index):
    """Fraction of the training contexts where each region is accessible: ``(n, C)`` -> ``(n,)``."""
    return np.asarray(labels, np.float32)[:, train_index].mean(axis=1)


def _codes(sequence):
    """uint8 codes ``(L,)`` from codes or a one-hot ``(L, 4)`` (all-zero rows -> 4, N)."""
    import tensorflow as tf

    if sequence.shape.rank == 1:
        return tf.cast(sequence, tf.uint8)
    hot = tf.cast(sequence, tf.float32)
    code = tf.cast(tf.argmax(hot, axis=-1), tf.uint8)
    return tf.where(tf.reduce_sum(hot, axis=-1) > 0, code, tf.constant(4, tf.uint8))


def _pairify(ds, allowed, train_index, shuffle, seed, region_buffer, keep=None):
    """Region records -> unbatched pairs ``{codes, context, accessible, mean}`` with each region
    paired with the contexts ``allowed`` (int32 indices); ``keep`` 1 or 0: only its positive or
    only its negative pairs."""
    import tensorflow as tf

    allowed_t = tf.constant(allowed, tf.int32)
    train_t = tf.constant(train_index, tf.int32)
    k = len(allowed)
    if shuffle:
        ds = ds.shuffle(region_buffer, seed=seed, reshuffle_each_iteration=True)

    def pair(rec):
        codes = _codes(rec["sequence"])
        labels = tf.cast(rec[LABEL], tf.float32)
        mean = tf.reduce_mean(tf.gather(labels, train_t))
        out = {"codes": tf.tile(codes[None], [k, 1]), "context": allowed_t,
               "accessible": tf.gather(labels, allowed_t), "mean": tf.fill([k], mean)}
        if "index" in rec:
            out["index"] = tf.fill([k], tf.cast(rec["index"], tf.int64))
        if keep is not None:
            chosen = tf.equal(out["accessible"] > 0.5, bool(keep))
            out = {key: tf.boolean_mask(v, chosen) for key, v in out.items()}
        return out

    return ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE).unbatch()


def _finish(table, mean, with_context, rc=False, seed=0):
    """Pairs (batched or not) -> model examples; sequence one-hot float32 (N all zero).
    ``rc``: reverse complement each example with probability 1/2 (batched input only; from
    ``(seed, batch number)``)."""
    import tensorflow as tf

    table_t = tf.constant(table)
    complement = tf.constant([3, 2, 1, 0, 4], tf.int32)

    def finish(i, p):
        codes = tf.cast(p["codes"], tf.int32)
        if rc:
            flip = tf.random.stateless_uniform(tf.shape(codes)[:1], seed=tf.stack([tf.cast(seed, tf.int64), i])) < 0.5
            codes = tf.where(flip[:, None], tf.reverse(tf.gather(complement, codes), axis=[1]), codes)
        out = {"sequence": tf.one_hot(codes, 4, dtype=tf.float32), "expression": tf.gather(table_t, p["context"])}
        if mean:
            out["mean_accessibility"] = p["mean"][..., None]
        out["accessible"] = p["accessible"][..., None]
        if with_context:
            out["context"] = p["context"]
            if "index" in p:
                out["index"] = p["index"]
        return out

    return finish


def balance(ds, positive_fraction=0.25, label="accessible", seed=0, repeat_negatives=False):
    """Class-balanced stream: unbatched examples reordered so that every run of ``b`` examples
    holds exactly ``a`` positives (``label`` > 0.5), ``a / b = positive_fraction`` (as a fraction
    with ``b <= 64``: 0.25 is 1 in 4), so any batch of a multiple of ``b`` examples is exactly
    balanced (ChromDragoNN: 1 positive to 3 negatives). Positives are drawn again and again
    (upsampled); negatives once each, and the stream ends when they run out (unless
    ``repeat_negatives``). ``seed`` places the positives inside each run."""
    from fractions import Fraction

    import tensorflow as tf

    frac = Fraction(positive_fraction).limit_denominator(64)
    a, b = frac.numerator, frac.denominator
    if not 0 < a < b:
        raise InputError(f"positive_fraction must be in (0, 1), got {positive_fraction}")
    slots = np.ones(b, np.int64)  # 1: a negative
    slots[np.random.default_rng(seed).choice(b, a, replace=False)] = 0  # 0: a positive

    def positive(x):
        return tf.reshape(x[label], [-1])[0] > 0.5

    pos = ds.filter(positive).repeat()
    neg = ds.filter(lambda x: tf.logical_not(positive(x)))
    if repeat_negatives:
        neg = neg.repeat()
    choice = tf.data.Dataset.from_tensor_slices(tf.constant(slots)).repeat()
    return tf.data.Dataset.choose_from_datasets([pos, neg], choice, stop_on_empty_dataset=True)


def _region_records(spec, split, repeat=False):
    """Region records of one split as ``{sequence: (L,) uint8 codes, labels: (C,), index}``, or None
    when the split has no records."""
    import tensorflow as tf

    from basenji_tk.data import records

    files = records.split_files(spec.path, split)
    if not files:
        return None
    n = len(pairs_info(spec)["contexts"])
    keys = {"sequence": tf.io.FixedLenFeature([], tf.string), LABEL: tf.io.FixedLenFeature([], tf.string),
            "index": tf.io.FixedLenFeature([], tf.int64)}

    def parse(raw):
        ex = tf.io.parse_single_example(raw, keys)
        return {"sequence": tf.io.decode_raw(ex["sequence"], tf.uint8),
                LABEL: tf.ensure_shape(tf.io.decode_raw(ex[LABEL], tf.uint8), [n]), "index": ex["index"]}

    ds = tf.data.TFRecordDataset(files, compression_type=records.COMPRESSION)
    if repeat:
        ds = ds.repeat()
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)


def expand(spec, split, shuffle=False, shuffle_buffer=1024, seed=0, repeat=False, with_index=False, fold=None,
           mean=True, positive_fraction=None, pair_buffer=None, region_ds=None, batch_size=None, rc=False):
    """Unbatched (region, context) examples of ``split`` from a pairs dataset's region records.

    A pair's split is the later of its region's and its context's in fold ``fold`` (default 0),
    so the regions of every split not later than ``split`` are read (:func:`region_splits`).
    Yields dicts: ``sequence`` (L, 4) float32 one-hot (N all zero), ``expression`` (F,) (the
    context's row of the context table), ``mean_accessibility`` (1,) (with ``mean``: the fraction
    of the fold's TRAINING contexts where the region is accessible; leak-free), ``accessible``
    (1,) and, ``with_index``, ``index`` (the region's row in ``sequences.bed``) and ``context``
    (its index into ``pairs.contexts``). ``shuffle``: regions (buffer ``shuffle_buffer``) and then
    pairs (``pair_buffer``, default 8 x that) shuffled with ``seed``; the same seed gives the same
    order. ``repeat``: endless. ``positive_fraction``: class-balanced (:func:`balance`; 0.25 is
    ChromDragoNN's 1:3), for batches of a multiple of 4. ``region_ds``: ``{region split:
    tf.data.Dataset}`` to use instead of reading ``spec.path`` (records with ``sequence`` as
    codes or one-hot and ``labels``).

    ``batch_size`` (the fast path, about 10x the examples/s of batching the unbatched stream):
    batches are made from uint8 codes and one-hot encoded and gathered whole; with
    ``positive_fraction`` each batch holds exactly ``round(positive_fraction * batch_size)``
    positives (kept apart from the start, so no per-example filtering); ``rc`` reverse
    complements each example with probability 1/2 (seeded).
    """
    import tensorflow as tf

    if split not in RANK:
        raise InputError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    fold = 0 if fold is None else int(fold)
    info = pairs_info(spec)
    names = info["contexts"]
    splits = fold_splits(spec, fold)
    train_index = np.array([i for i, n in enumerate(names) if splits[n] == "train"], np.int32)
    table = context_table(spec)
    counts = getattr(spec, "counts", {}) or {}
    if rc and not batch_size:
        raise InputError("pairs.expand: rc needs batch_size (records.augment reverse complements unbatched examples)")

    def stream(keep=None, buffer=None):
        parts, weights = [], []
        for r_split in region_splits(split):
            allowed = pair_contexts(r_split, splits, split, names)
            if not len(allowed):
                continue
            ds = region_ds.get(r_split) if region_ds is not None else _region_records(spec, r_split, repeat)
            if ds is None:
                continue
            parts.append(_pairify(ds, allowed, train_index, shuffle, seed + RANK[r_split], shuffle_buffer, keep))
            weights.append(max(1, counts.get(r_split, 1)) * len(allowed))
        if not parts:
            raise InputError(f"{spec.path}: no {split} pairs in fold {fold} (no {split} regions or contexts)")
        if shuffle and len(parts) > 1:
            ds = tf.data.Dataset.sample_from_datasets(parts, [w / sum(weights) for w in weights], seed=seed)
        else:
            ds = parts[0]
            for p in parts[1:]:
                ds = ds.concatenate(p)
        if shuffle:
            ds = ds.shuffle(buffer or pair_buffer or 8 * shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return ds

    finish = _finish(table, mean, with_index, rc, seed)
    if not batch_size:
        ds = stream()
        if positive_fraction:
            ds = balance(ds, positive_fraction, "accessible", seed, repeat_negatives=repeat)
        return ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE)
    if positive_fraction:
        n_pos = int(round(positive_fraction * batch_size))
        if not 0 < n_pos < batch_size:
            raise InputError(f"positive_fraction {positive_fraction} of batch_size {batch_size} leaves {n_pos} "
                             f"positives; expected between 1 and {batch_size - 1}")
        buffer = pair_buffer or 8 * shuffle_buffer
        pos = stream(1, max(256, int(buffer * positive_fraction))).repeat()
        neg = stream(0, buffer)
        both = tf.data.Dataset.zip(pos.batch(n_pos, drop_remainder=True),
                                   neg.batch(batch_size - n_pos, drop_remainder=True))

        def join(i, pn):
            order = tf.random.experimental.stateless_shuffle(tf.range(batch_size),
                                                             seed=tf.stack([tf.cast(seed, tf.int64), i]))
            return tf.nest.map_structure(lambda a, b: tf.gather(tf.concat([a, b], 0), order), *pn)

        ds = both.enumerate().map(join, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = stream().batch(batch_size)
    return ds.enumerate().map(finish, num_parallel_calls=tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- the regions view (stage 1)
REGION_LABELS = "training_contexts"


def region_features(spec, fold=None) -> list:
    """The features of the regions view of a pairs dataset: ``sequence`` and ``training_contexts``,
    the region's 0/1 labels in the fold's TRAINING contexts only (``(C_train,)``), for ChromDragoNN's
    stage 1 (a multitask sequence model over the training contexts, with no test context in sight)."""
    from basenji_tk.data import records

    info = pairs_info(spec)
    splits = fold_splits(spec, 0 if fold is None else int(fold))
    names = tuple(n for n in info["contexts"] if splits[n] == "train")
    return [records.Feature("sequence", "sequence", (info["seq_length"], 4), "uint8", resolution=1),
            records.Feature(REGION_LABELS, "label", (len(names),), "float32", names=names, label_type="binary",
                            meta={"threshold": info["threshold"], "bin_length": info["bin_length"]})]


def regions_view(spec, split, shuffle=False, shuffle_buffer=1024, seed=0, repeat=False, with_index=False,
                 fold=None):
    """Unbatched region examples of the genome split ``split``: ``{sequence (L, 4) one-hot,
    training_contexts (C_train,)}`` (:func:`region_features`)."""
    import tensorflow as tf

    info = pairs_info(spec)
    splits = fold_splits(spec, 0 if fold is None else int(fold))
    keep = tf.constant([i for i, n in enumerate(info["contexts"]) if splits[n] == "train"], tf.int32)
    ds = _region_records(spec, split, repeat=False)
    if ds is None:
        raise InputError(f"{spec.path}: no region records in the {split} split")
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    def one(rec):
        out = {"sequence": tf.one_hot(tf.cast(rec["sequence"], tf.int32), 4, dtype=tf.float32),
               REGION_LABELS: tf.cast(tf.gather(rec[LABEL], keep), tf.float32)}
        if with_index:
            out["index"] = rec["index"]
        return out

    return ds.map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def count(spec, split, fold=None, positives=False) -> int:
    """How many (region, context) pairs ``split`` holds in fold ``fold`` (the split rule of
    :func:`expand`); with ``positives``, how many of them are accessible."""
    info = pairs_info(spec)
    names = info["contexts"]
    splits = fold_splits(spec, 0 if fold is None else int(fold))
    total = 0
    for r in region_splits(split):
        allowed = pair_contexts(r, splits, split, names)
        total += (sum(info["positives"][names[c]][r] for c in allowed) if positives
                  else spec.counts.get(r, 0) * len(allowed))
    return total
