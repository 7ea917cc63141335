"""The datasets a model trains on, read as ``model.fit`` takes them.

:func:`check_datasets` checks that datasets trained together match. :func:`train_dataset` and
:func:`valid_dataset` read their splits as ``(x, y[, sample_weight])`` batches
(:func:`keras_examples`, after :func:`basenji_tk.model.wiring.wire`). ``train.balance`` makes batches with
a fixed share of positives (:func:`balance`); a pairs dataset is read in whole batches from
:func:`basenji_tk.data.pairs.expand`. Each epoch's shuffling and augmentation are seeded from
``(train.seed, epoch, dataset)`` (:func:`basenji_tk.model.seeds.epoch_seed`).
"""

from basenji_tk.errors import InputError
from basenji_tk.model.seeds import MIX_STREAM, epoch_seed
from basenji_tk.model.wiring import Wiring

LAYOUT_KEYS = ("seq_length", "target_length", "num_targets", "target_ids")


def check_datasets(data_dirs):
    """Load each dataset's contract (:func:`basenji_tk.data.records.load_spec`); all must yield the same
    features, and every split statistics.json counts must have its record files. Returns the first's."""
    from basenji_tk.data.records import load_spec, split_files

    specs = [load_spec(d) for d in data_dirs]
    first = specs[0]
    for d, spec in zip(data_dirs[1:], specs[1:]):
        for key in LAYOUT_KEYS:
            if spec.stats.get(key) != first.stats.get(key):
                raise InputError(f"{d}: {key} {spec.stats.get(key)} differs from {data_dirs[0]}'s "
                                 f"{first.stats.get(key)}; datasets trained together must match")
        mine, theirs = spec.example_features, first.example_features
        for name in sorted(set(mine) | set(theirs)):
            if mine.get(name) != theirs.get(name):
                got = mine[name].describe() if name in mine else "none"
                want = theirs[name].describe() if name in theirs else "none"
                raise InputError(f"{d}: feature '{name}' is {got} but {data_dirs[0]}'s is {want}; datasets "
                                 "trained together must match")
    for d, spec in zip(data_dirs, specs):
        for split in ("train", "valid"):
            if spec.counts[split] and not split_files(d, split):
                raise InputError(f"{d}: statistics.json counts {spec.counts[split]} {split} sequences but "
                                 f"there is no tfrecords/{split}-*.tfr file; make the dataset again")
    if not sum(s.counts["train"] for s in specs):
        raise InputError(f"{data_dirs[0]}: no training sequences (statistics.json train_seqs is 0 or missing)")
    if not sum(s.counts["valid"] for s in specs) and not any(s.kind == "pairs" for s in specs):
        raise InputError(f"{data_dirs[0]}: no validation sequences; early stopping needs some "
                         "(make_targets.py --valid)")
    return first


def keras_examples(wiring: Wiring | None, batched: bool = False):
    """A map from example dicts (or batches of them) to what ``model.fit`` takes: ``(x, y)`` or
    ``(x, y, sample_weight)``, bare tensors for a one-input/one-output model, dicts by input and
    head name otherwise."""
    if wiring is None:  # a sequence-only one-output model on a tiling dataset
        return lambda ex: (ex["sequence"], ex["target"])
    lead = [-1] if batched else []

    def split(ex):
        x = ex[wiring.inputs[0]] if wiring.single_input else {n: ex[n] for n in wiring.inputs}
        import tensorflow as tf

        ys = {h: (tf.reshape(ex[label], lead + list(wiring.reshape[h])) if h in wiring.reshape else ex[label])
              for h, label in wiring.heads.items()}
        y = ys["target"] if wiring.single_output else ys
        if wiring.weight is None:
            return x, y
        # a loss reduces the last axis: each example's loss has the label's shape less that axis
        w = {h: tf.reshape(ex[wiring.weight], lead + [1] * (len(wiring.reshape.get(h, f.shape)) - 1))
             for h, f in wiring.labels.items()}
        return x, y, (w["target"] if wiring.single_output else w)

    return split


def balance(ds, label: str, positive_fraction: float, batch_size: int):
    """Batches with exactly ``round(positive_fraction * batch_size)`` positives of the binary
    ``label`` (ChromDragoNN: 1 positive to 3 negatives), drawn from the stream ``ds`` of
    example dicts (repeated; an epoch is then ``train.steps_per_epoch`` batches)."""
    import tensorflow as tf

    positives = round(positive_fraction * batch_size)
    if not 0 < positives < batch_size:
        raise InputError(f"train.balance: {positive_fraction} of a batch of {batch_size} is {positives} positives; "
                         "need at least one positive and one negative per batch")
    is_pos = lambda ex: tf.reduce_max(ex[label]) > 0.5  # noqa: E731
    streams = [ds.filter(is_pos).repeat(), ds.filter(lambda ex: tf.logical_not(is_pos(ex))).repeat()]
    pattern = tf.data.Dataset.from_tensor_slices(
        tf.constant([0] * positives + [1] * (batch_size - positives), tf.int64)).repeat()
    return tf.data.Dataset.choose_from_datasets(streams, pattern)


def train_dataset(data_dirs, tp: dict, epoch: int, wiring: Wiring | None = None):
    """The training batches of one epoch: every dataset's train split, shuffled and augmented with
    seeds from ``(train.seed, epoch, dataset)`` (:func:`~basenji_tk.model.seeds.epoch_seed`), balanced when
    ``train.balance`` asks, as ``model.fit`` takes them (:func:`keras_examples`)."""
    import tensorflow as tf

    from basenji_tk.data import records

    if (fast := _pairs_batches(data_dirs, tp, "train", epoch_seed(tp["seed"], epoch, 0), wiring)) is not None:
        ds = fast
        if tp["steps_per_epoch"]:
            ds = ds.take(tp["steps_per_epoch"])
        return ds.prefetch(tf.data.AUTOTUNE)
    view = wiring.view if wiring else "pairs"
    parts = [records.dataset(d, "train", shuffle=True, shuffle_buffer=tp["shuffle_buffer"], rc=tp["rc"],
                             shift=tp["shift"], seed=epoch_seed(tp["seed"], epoch, k), fold=tp.get("fold"), view=view)
             for k, d in enumerate(data_dirs)]
    ds = parts[0] if len(parts) == 1 else tf.data.Dataset.sample_from_datasets(
        parts, seed=epoch_seed(tp["seed"], epoch, MIX_STREAM))
    if tp.get("balance"):
        ds = balance(ds, tp["balance"]["label"], tp["balance"]["positive_fraction"], tp["batch_size"])
    ds = ds.map(keras_examples(wiring), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(tp["batch_size"])
    if tp["steps_per_epoch"]:
        ds = ds.repeat().take(tp["steps_per_epoch"])
    else:  # a known length gives Keras a progress bar with a total and no end-of-data warning
        ds = ds.apply(tf.data.experimental.assert_cardinality(
            _batches(data_dirs, "train", tp["batch_size"], view, tp.get("fold"))))
    return ds.prefetch(tf.data.AUTOTUNE)


def _pairs_batches(data_dirs, tp: dict, split: str, seed: int, wiring: Wiring):
    """Batches of one pairs dataset made whole by :func:`basenji_tk.data.pairs.expand` (about 7x the
    examples/s of batching single pairs; exact 1:3 balance of its ``accessible`` label), or None
    where that path does not apply (several datasets, shift, another balance label)."""
    from basenji_tk.data import pairs, records

    if len(data_dirs) != 1 or (split == "train" and tp["shift"]):
        return None
    spec = records.load_spec(data_dirs[0])
    balance = tp.get("balance") if split == "train" else None
    if spec.kind != "pairs" or wiring.view != "pairs" or (balance and balance["label"] != "accessible"):
        return None
    train = split == "train"
    ds = pairs.expand(spec, split, shuffle=train, shuffle_buffer=tp["shuffle_buffer"], seed=seed,
                      repeat=train and bool(tp["steps_per_epoch"]), fold=tp.get("fold"),
                      positive_fraction=balance["positive_fraction"] if balance else None,
                      batch_size=tp["batch_size"], rc=train and tp["rc"])
    ds = ds.map(keras_examples(wiring, batched=True))
    if not train or not tp["steps_per_epoch"]:  # a known length: a progress bar with a total, no end-of-data warning
        import tensorflow as tf

        n = pairs.count(spec, split, tp.get("fold"))
        if balance:  # an epoch uses every negative once (whole batches only); positives are drawn again
            negatives = tp["batch_size"] - round(balance["positive_fraction"] * tp["batch_size"])
            batches = (n - pairs.count(spec, split, tp.get("fold"), positives=True)) // negatives
        else:
            batches = -(-n // tp["batch_size"])
        ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds


def _batches(data_dirs, split: str, batch_size: int, view: str = "pairs", fold=None) -> int:
    """Batches in ``split`` of all ``data_dirs`` (of a pairs dataset: its pairs, or its regions)."""
    from basenji_tk.data import pairs
    from basenji_tk.data.records import load_spec

    specs = [load_spec(d) for d in data_dirs]
    return -(-sum(pairs.count(s, split, fold) if s.kind == "pairs" and view == "pairs" else s.counts[split]
                  for s in specs) // batch_size)


VALID_SAMPLE_SEED = 20191  # the seed of the fixed validation sample (train.valid_batches)


def valid_dataset(data_dirs, batch_size: int, wiring: Wiring | None = None, fold=None, batches=None):
    """The validation batches: the whole valid split, or with ``batches`` (``train.valid_batches``)
    a fixed sample of that many, the same every epoch (a pairs dataset's pairs shuffled with a
    fixed seed; other datasets' first batches, their records being in no particular order)."""
    import tensorflow as tf

    from basenji_tk.data import records

    if batches and wiring is not None and (sample := _valid_sample(data_dirs, batch_size, wiring, fold,
                                                                   batches)) is not None:
        return sample
    if wiring is not None and (fast := _pairs_batches(data_dirs, {"batch_size": batch_size, "fold": fold,
                                                                  "shuffle_buffer": 1, "shift": 0, "rc": False,
                                                                  "steps_per_epoch": None},
                                                      "valid", 0, wiring)) is not None:
        return fast if not batches else fast.take(batches)
    view = wiring.view if wiring else "pairs"
    parts = [records.dataset(d, "valid", fold=fold, view=view) for d in data_dirs if records.split_files(d, "valid")]
    ds = parts[0]
    for more in parts[1:]:
        ds = ds.concatenate(more)
    ds = ds.map(keras_examples(wiring), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    n = _batches(data_dirs, "valid", batch_size, view, fold)
    ds = ds.apply(tf.data.experimental.assert_cardinality(n))
    return ds.take(batches) if batches and batches < n else ds


def _valid_sample(data_dirs, batch_size, wiring, fold, batches):
    """A pairs dataset's fixed validation sample: its valid pairs shuffled (regions, then pairs)
    with :data:`VALID_SAMPLE_SEED`, the first ``batches`` batches; None where the fast pairs path
    does not apply."""
    import tensorflow as tf

    from basenji_tk.data import pairs, records

    if len(data_dirs) != 1 or wiring.view != "pairs":
        return None
    spec = records.load_spec(data_dirs[0])
    if spec.kind != "pairs":
        return None
    n = -(-pairs.count(spec, "valid", fold) // batch_size)
    if n <= batches:
        return None
    ds = pairs.expand(spec, "valid", shuffle=True, shuffle_buffer=4096, seed=VALID_SAMPLE_SEED, fold=fold,
                      batch_size=batch_size)
    ds = ds.map(keras_examples(wiring, batched=True)).take(batches)
    return ds.apply(tf.data.experimental.assert_cardinality(batches)).cache()
