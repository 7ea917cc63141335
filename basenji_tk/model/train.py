"""Fit a model from params.json to one or more datasets, with resumable checkpoints.

The params are wired to the data by name (:func:`wire`): each model input takes the dataset
feature of its name (:mod:`basenji_tk.data.records`), each head of ``model.heads`` predicts the label
it names with its own loss, loss weight and metrics (by the label's type), and
``train.sample_weight`` names a weight feature. Before any work, a name the dataset lacks, or a
kind, shape or bp-per-position that differs, is one error naming both sides
(:func:`check_model_fits` checks the built model's outputs). ``train.balance`` makes batches with
a fixed share of positives; a pairs dataset is read in whole batches from
:func:`basenji_tk.data.pairs.expand`. ``train.init_from`` copies the layers another model shares with
this one from the inputs on (:func:`shared_layers`) and ``train.freeze`` freezes them.

The model folder holds::

    params.json            the resolved params (defaults filled in) this run used
    data_statistics.json   the first dataset's statistics.json (genome, targets, bins)
    checkpoint.keras       model + optimizer state after the last finished epoch
    model_best.keras       the model at the best validation ``train.monitor`` so far
    history.tsv            one row per finished epoch
    train_state.json       epoch, best value, epochs without improvement
    logs/                  TensorBoard logs
    inputs.json            fingerprints of the params file and of every file of every dataset

Every file is written under a temporary name and renamed, checkpoint first and
``train_state.json`` last, so after a kill at any moment ``--restart`` finds a
consistent state and repeats at most the epoch that was running.

What a restart guarantees: epoch ``e`` depends only on the weights and optimizer
state after epoch ``e - 1`` (in checkpoint.keras) and on ``(train.seed, e)``. Its
shuffling and pipeline augmentation (``train.rc``/``train.shift``) are seeded from
``(seed, e, dataset)``, and every Keras ``SeedGenerator`` of the model (dropout,
``model.augment_rc``/``augment_shift``) is set from ``(seed, e, k)`` before the epoch
starts, so no random state carries over from one epoch to the next. With ``--seed``
(deterministic TensorFlow ops) a resumed run therefore ends with exactly the weights
of an uninterrupted one. ``--restart`` refuses different params (except
:data:`RESTART_MAY_CHANGE`), different data dirs, and a dataset file that changed
since the fresh start (size, mtime and SHA-256 of a sample: :func:`basenji_tk.files.fingerprint`).

The whole run holds :func:`basenji_tk.files.claim` on the model folder: an
unwritable folder or a second run into it is one error before any work. A fresh
run that fails before its first epoch ends removes what it wrote (and the folder,
when it made it); an existing model is only removed (``--force``) once the new
model has been built and checked against the data.
"""

import csv
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field

import numpy as np

from basenji_tk import cli, files
from basenji_tk.errors import InputError
from basenji_tk.model.params import MAX_SEED, load_params, read_json

log = logging.getLogger("basenji_tk")

PARAMS = "params.json"
DATA_STATS = "data_statistics.json"
CHECKPOINT = "checkpoint.keras"
BEST = "model_best.keras"
HISTORY = "history.tsv"
STATE = "train_state.json"
LOGS = "logs"
INPUTS = "inputs.json"
OWNED = (PARAMS, DATA_STATS, CHECKPOINT, BEST, HISTORY, STATE, LOGS, INPUTS)
# What --restart may change: how long to go on, and the step size (e.g. after a NaN loss).
RESTART_MAY_CHANGE = ("epochs", "patience", "learning_rate", "clip_norm")
# Fault injection for the resume test: SIGKILL this process after this many training steps.
KILL_ENV = "BASENJI_TK_KILL_AFTER_STEPS"


class TrainingError(InputError):
    """Training cannot go on (NaN loss); the message says what was kept."""


@dataclass
class Options:
    restart: bool = False
    force: bool = False
    seed: int | None = None  # overrides train.seed and makes CPU runs repeatable
    mixed_precision: bool = False
    epochs: int | None = None  # overrides train.epochs
    quiet: bool = False


# ----------------------------------------------------------------------------- pieces
def write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


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


@dataclass
class Wiring:
    """Which dataset features feed which model inputs, and which labels each output predicts.

    ``inputs`` are feature names (a model input takes the feature of its own name);
    ``heads`` maps each output to its label feature; ``single_input``/``single_output`` say
    whether the model takes/gives a bare tensor rather than a dict."""

    inputs: list
    heads: dict
    single_input: bool
    single_output: bool
    weight: str | None = None
    labels: dict = None  # head -> records.Feature of its label
    reshape: dict = field(default_factory=dict)  # head -> output shape, where the label differs by 1-axes
    view: str = "pairs"  # of a pairs dataset: (region, context) pairs, or regions (ChromDragoNN's stage 1)


def wire(mp: dict, tp: dict, spec, params_path: str) -> Wiring:
    """Bind ``params["model"]`` to a dataset's features; one error naming both sides when they differ."""
    from basenji_tk.model import models

    data = spec.path
    if spec.kind == "pairs":  # a model predicting the training contexts' labels reads regions, not pairs
        from basenji_tk.data.pairs import REGION_LABELS

        labels = {hp["label"] for hp in mp.get("heads", {}).values()}
        spec.view = "regions" if REGION_LABELS in labels else "pairs"
        if spec.view == "regions" and not spec.counts["valid"]:
            raise InputError(f"{params_path}: a model of the training contexts' labels validates on the valid "
                             f"regions of {data}, and it has none; make it with make_pairs.py --valid")
    have = spec.example_features
    inputs = models.input_specs(mp)
    legacy = not any(isinstance(v, dict) for v in mp.get("inputs", {}).values())
    for name, want in inputs.items():
        where = "model.seq_length" if (legacy and name == models.SEQUENCE) else f"model.inputs.{name}"
        if name not in have:
            if legacy and name != models.SEQUENCE and spec.kind == "tiling" and set(have) <= {"sequence", "target"}:
                raise InputError(f"{params_path}: model.inputs names {', '.join(mp['inputs'])}, but {data} "
                                 "records hold only sequences and targets")
            raise InputError(f"{params_path}: {where} names feature '{name}', but {data} has no such feature "
                             f"(it has: {', '.join(have)})")
        f = have[name]
        if f.kind != want["kind"]:
            raise InputError(f"{params_path}: {where} is a {want['kind']} input, but {data} feature '{name}' "
                             f"is a {f.kind}")
        if tuple(want["shape"]) != f.shape:
            if where == "model.seq_length" and want["shape"][1] == f.shape[1]:
                raise InputError(f"{params_path}: model.seq_length is {want['shape'][0]} but {data} holds "
                                 f"{f.shape[0]} bp sequences")
            raise InputError(f"{params_path}: {where} has shape {list(want['shape'])}, but {data} feature "
                             f"'{name}' is {list(f.shape)}")
        if f.positional and want.get("resolution") and want["resolution"] != f.resolution:
            raise InputError(f"{params_path}: {where} is at {want['resolution']} bp per position, but {data} "
                             f"feature '{name}' is at {f.resolution} bp")
    if mp.get("heads"):
        heads = {h: hp["label"] for h, hp in mp["heads"].items()}
    else:
        heads = {"target": "target"}
    labels = {}
    for head, label in heads.items():
        where = f"model.heads.{head}.label" if mp.get("heads") else "model.head (label 'target')"
        if label not in have:
            raise InputError(f"{params_path}: {where} names label '{label}', but {data} has no such feature "
                             f"(it has: {', '.join(have)})")
        if have[label].kind != "label":
            raise InputError(f"{params_path}: {where} names '{label}', but in {data} it is a {have[label].kind}, "
                             "not a label")
        labels[head] = have[label]
    weight = tp.get("sample_weight")
    if weight is not None:
        if weight not in have or have[weight].kind != "weight":
            kinds = [n for n, f in have.items() if f.kind == "weight"]
            raise InputError(f"{params_path}: train.sample_weight names '{weight}', but {data} has no weight "
                             f"feature of that name (weights: {', '.join(kinds) or 'none'})")
    balance = tp.get("balance")
    if balance:
        f = have.get(balance["label"])
        if f is None or f.kind != "label" or f.label_type != "binary":
            raise InputError(f"{params_path}: train.balance.label names '{balance['label']}', but {data} has no "
                             "binary label of that name")
    return Wiring(list(inputs), heads, list(inputs) == [models.SEQUENCE], not mp.get("heads"), weight, labels,
                  view=spec.view)


def check_model_fits(model, wiring: Wiring, spec, params_path: str):
    """Each output's shape, and its resolution along positions, must match its label; say both."""
    from basenji_tk.model import models

    outs = models.output_tensors(model)
    inputs = spec.example_features
    first = next((n for n in wiring.inputs if inputs[n].positional), None)
    for head, label in wiring.labels.items():
        got, want = tuple(outs[head].shape[1:]), label.shape
        if got != want and [n for n in got if n != 1] == [n for n in want if n != 1]:
            wiring.reshape[head] = got  # e.g. a (1, 1) centre-bin label for a (1,) dense output
        elif got != want:
            if wiring.single_output and len(want) == 2 and len(got) == 2:
                raise InputError(f"{params_path}: the model outputs {' x '.join(map(str, got))} (bins x targets) "
                                 f"but {spec.path} has {want[0]} bins x {want[1]} targets; change pooling/cropping "
                                 "or final units")
            raise InputError(f"{params_path}: output '{head}' has shape {list(got)}, but its label "
                             f"'{label.name}' in {spec.path} is {list(want)}")
        if label.positional and len(got) >= 2 and first is not None:
            rf = models.receptive_field(model, None if wiring.single_output else head)
            if rf is not None and not rf.whole:
                res = rf.step * inputs[first].resolution
                if res != label.resolution:
                    raise InputError(f"{params_path}: output '{head}' has one position every {res} bp, but its "
                                     f"label '{label.name}' in {spec.path} is at {label.resolution} bp per position")


def prepare_dir(out: str, opts: Options, params: dict, params_path: str, data_dirs: list) -> bool:
    """Refuse to overwrite a model unless --restart or --force; return whether to resume.

    A restart is checked here (params, data dirs, dataset content); nothing is removed
    here: a fresh run clears the folder only once its model is built (:func:`clear_dir`).
    """
    if opts.restart:
        if not os.path.exists(os.path.join(out, STATE)) or not os.path.exists(os.path.join(out, CHECKPOINT)):
            raise InputError(f"{out}: nothing to restart (no {CHECKPOINT} and {STATE}); run without --restart")
        saved = read_json(os.path.join(out, PARAMS), "params")
        for section in params:
            for key in params[section]:
                was, now = saved.get(section, {}).get(key), params[section][key]
                if was == now:
                    continue
                if section == "train" and key in RESTART_MAY_CHANGE:
                    log.info(f"--restart: train.{key} changes from {json.dumps(was)} to {json.dumps(now)}")
                    continue
                raise InputError(f"{out}: --restart with different params: {section}.{key} was "
                                 f"{json.dumps(was)}, now {json.dumps(now)} (only "
                                 f"{', '.join(RESTART_MAY_CHANGE)} may change)")
        inputs = os.path.join(out, INPUTS)
        if os.path.exists(inputs):
            check_inputs(read_json(inputs, "inputs"), data_dirs, out)
        else:  # a model folder from before inputs.json: nothing to compare with
            log.warning(f"{out}: no {INPUTS}, so --restart cannot check that the datasets are unchanged")
            write_json(inputs, input_prints(params_path, data_dirs))
        return True
    held = [name for name in (CHECKPOINT, BEST, STATE) if os.path.exists(os.path.join(out, name))]
    if held and not opts.force:
        raise InputError(f"{out}: already holds a model ({', '.join(held)}); use --restart to resume "
                         "it or --force to replace it")
    return False


def clear_dir(out: str, params_path: str) -> None:
    """Remove a model's files (:data:`OWNED`) from ``out``; other files stay, and so does
    ``params_path`` when it is ``out/params.json`` itself (a hyper_search trial's input)."""
    for name in OWNED:
        path = os.path.join(out, name)
        if name == PARAMS and os.path.exists(path) and os.path.samefile(path, params_path):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def remove_stale_temporaries(out: str) -> None:
    """Temporary files a killed run left (``history.tsv.tmp``, ``.checkpoint.tmp123.keras``)."""
    for name in os.listdir(out):
        stale = (name.endswith(".tmp") and name[:-4] in OWNED) or (
            name.endswith(".keras") and ".tmp" in name and name.startswith((".checkpoint.", ".model_best.")))
        if stale and os.path.isfile(os.path.join(out, name)):
            os.remove(os.path.join(out, name))


# ----------------------------------------------------------------------------- inputs for --restart
def input_prints(params_path, data_dirs) -> dict:
    """What inputs.json holds: :func:`files.fingerprint` of the params file and of each dataset folder."""
    return {"params": files.fingerprint(params_path), "data_dirs": [files.fingerprint(d) for d in data_dirs]}


def check_inputs(saved: dict, data_dirs, out: str, what: str = "dataset file") -> None:
    """Refuse a restart whose data dirs differ from ``saved``'s, or hold a file added, removed or changed."""
    was = [d["path"] for d in saved.get("data_dirs", [])]
    now = [os.path.abspath(d) for d in data_dirs]
    if was != now:
        raise InputError(f"{out}: --restart with different data dirs: was {' '.join(was)}, now {' '.join(now)}")
    for d, entry in zip(data_dirs, saved["data_dirs"]):
        files.check_unchanged(entry, d, what)


def choose_strategy():
    """MultiWorkerMirrored with TF_CONFIG, Mirrored with several GPUs, else the default."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(tp: dict):
    import keras

    clip = {"global_clipnorm": tp["clip_norm"]} if tp["clip_norm"] else {}
    if tp["optimizer"] == "sgd":
        return keras.optimizers.SGD(tp["learning_rate"], momentum=tp["momentum"], **clip)
    return keras.optimizers.Adam(tp["learning_rate"], beta_1=tp["beta_1"], beta_2=tp["beta_2"], **clip)


def metrics_for(label) -> list:
    """Training metrics for one label feature, by its label_type (:func:`basenji_tk.model.metrics.for_label`)."""
    from basenji_tk.model import metrics

    return metrics.for_label(label.label_type, label.shape[-1] if label.shape else 1)


def head_metrics(tp: dict, wiring: Wiring, heads: dict | None, num_targets: int | None = None) -> dict:
    """``{head: [keras metrics]}``; a one-output model with a regression label gets Pearson r and
    R² over ``num_targets`` (as before), other labels the metrics of their label_type."""
    from basenji_tk.model import metrics

    if wiring.single_output:
        label = wiring.labels["target"]
        if label.label_type == "regression":
            n = num_targets or label.shape[-1]
            return {"target": [metrics.PearsonR(n), metrics.RSquared(n)]}
        return {"target": metrics_for(label)}
    out = {}
    for head, hp in heads.items():
        label = wiring.labels[head]
        out[head] = (metrics_for(label) if hp["metrics"] is None else
                     [metrics.get_metric(m, label.shape[-1] if label.shape else 1) for m in hp["metrics"]])
    return out


def monitor_names(wiring: Wiring, mets: dict) -> list[str]:
    """The validation figures Keras logs: ``val_loss``, ``val_METRIC`` or ``val_HEAD_loss`` and
    ``val_HEAD_METRIC`` with several heads."""
    if wiring.single_output or len(mets) == 1:  # one head of model.heads: Keras logs its metrics unprefixed
        return ["val_loss"] + [f"val_{m.name}" for ms in mets.values() for m in ms]
    return (["val_loss"] + [f"val_{h}_loss" for h in mets]
            + [f"val_{h}_{m.name}" for h, ms in mets.items() for m in ms])


def compile_model(model, tp: dict, num_targets: int | None = None, wiring: Wiring | None = None,
                  heads: dict | None = None) -> dict:
    """Compile with each output's loss, loss weight and metrics (:func:`head_metrics`); returns
    the metrics. Without ``wiring``: a one-output model on ``num_targets`` regression targets."""
    from basenji_tk.model.losses import get_loss
    from basenji_tk.data.records import Feature

    if wiring is None:
        label = Feature("target", "label", (1, num_targets))
        wiring = Wiring(["sequence"], {"target": "target"}, True, True, None, {"target": label})
    mets = head_metrics(tp, wiring, heads, num_targets)
    if wiring.single_output:
        model.compile(optimizer=make_optimizer(tp), loss=get_loss(tp["loss"], tp["mask_zero"]),
                      metrics=mets["target"])
        return mets
    loss = {h: get_loss(hp["loss"] or tp["loss"], hp["mask_zero"] or tp["mask_zero"]) for h, hp in heads.items()}
    model.compile(optimizer=make_optimizer(tp), loss=loss, loss_weights={h: hp["weight"] for h, hp in heads.items()},
                  metrics=mets)
    return mets


def lower_is_better(monitor: str) -> bool:
    """Losses, RMSE and JSD fall as the model improves; correlations, R² and AUCs rise."""
    from basenji_tk.model.metrics import LOWER_IS_BETTER

    return any(monitor == f"val_{m}" or monitor.endswith(f"_{m}") for m in LOWER_IS_BETTER)


def check_monitor(tp: dict, names: list, params_path: str, explicit: bool) -> str:
    """``train.monitor`` if the model logs it; the default falls back to val_loss for a model without it."""
    if tp["monitor"] in names:
        return tp["monitor"]
    if not explicit:
        log.info(f"train.monitor: this model logs no {tp['monitor']}; monitoring val_loss")
        return "val_loss"
    raise InputError(f"{params_path}: train.monitor is {tp['monitor']}, but this model logs only "
                     f"{', '.join(names)}")


def shared_layers(model, donor) -> list:
    """The layers of ``model`` that ``donor`` shares from the inputs on: a layer counts when the
    donor has one of the same name, class and weight shapes and every layer feeding it counts too
    (inputs count when the donor has an input of that name and shape). So transfer stops where the
    two graphs part, e.g. at stage 2's concatenation of the expression vector."""
    import keras

    theirs = {layer.name: layer for layer in donor._flatten_layers(include_self=False)}
    good = set()
    for layer in model.layers:  # a functional model lists its layers in graph order
        other = theirs.get(layer.name)
        if other is None or type(other) is not type(layer):
            continue
        if isinstance(layer, keras.layers.InputLayer):
            if tuple(layer.output.shape) == tuple(other.output.shape):
                good.add(layer.name)
            continue
        parents = [n.operation.name for node in layer._inbound_nodes for n in node.parent_nodes]
        if parents and all(p in good for p in parents) and \
                [w.shape for w in layer.weights] == [w.shape for w in other.weights]:
            good.add(layer.name)
    return [layer for layer in model.layers if layer.name in good and layer.weights]


def init_from(model, tp: dict, params_path: str) -> list[str]:
    """Copy into ``model`` the weights of the layers ``train.init_from`` shares with it
    (:func:`shared_layers`), and freeze as ``train.freeze`` says; returns the names copied."""
    from basenji_tk.model import models

    source = tp["init_from"]
    if os.path.isdir(source):
        source = os.path.join(source, BEST)
    donor = models.load_model(source)
    layers = shared_layers(model, donor)
    for layer in layers:
        layer.set_weights(donor.get_layer(layer.name).get_weights())
    copied = [layer.name for layer in layers]
    if not copied:
        raise InputError(f"{params_path}: train.init_from {source} shares no layer with this model (same name, "
                         "class and weight shapes, fed by shared layers from the inputs on)")
    freeze = tp["freeze"]
    frozen = [n for n in copied if freeze is True or (isinstance(freeze, list) and any(
        n == f or n.startswith(f) for f in freeze))]
    for layer in layers:
        if layer.name in frozen:
            layer.trainable = False
    if isinstance(freeze, list):
        unmatched = [f for f in freeze if not any(n == f or n.startswith(f) for n in copied)]
        if unmatched:
            raise InputError(f"{params_path}: train.freeze names '{unmatched[0]}', which matches no layer "
                             f"copied from {source}")
    log.info(f"initialised {len(copied)} layers from {source}; froze {len(frozen)}")
    return copied


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed in [0, 2**31) for one random stream of one epoch, from ``(seed, epoch, stream)``.

    Streams: 0..n-1 the datasets' shuffling and augmentation, :data:`MIX_STREAM` the mix of
    datasets, ``SEED_GENERATOR_STREAM + k`` the model's k-th SeedGenerator. Unlike ``seed +
    epoch``, neighbouring seeds and epochs, and the datasets of one epoch, share no stream."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0] >> 1)


MIX_STREAM = 1_000_000
SEED_GENERATOR_STREAM = 2_000_000


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
    seeds from ``(train.seed, epoch, dataset)`` (:func:`epoch_seed`), balanced when
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


def valid_dataset(data_dirs, batch_size: int, wiring: Wiring | None = None, fold=None):
    import tensorflow as tf

    from basenji_tk.data import records

    if wiring is not None and (fast := _pairs_batches(data_dirs, {"batch_size": batch_size, "fold": fold,
                                                                  "shuffle_buffer": 1, "shift": 0, "rc": False,
                                                                  "steps_per_epoch": None},
                                                      "valid", 0, wiring)) is not None:
        return fast
    view = wiring.view if wiring else "pairs"
    parts = [records.dataset(d, "valid", fold=fold, view=view) for d in data_dirs if records.split_files(d, "valid")]
    ds = parts[0]
    for more in parts[1:]:
        ds = ds.concatenate(more)
    ds = ds.map(keras_examples(wiring), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(_batches(data_dirs, "valid", batch_size, view, fold)))


def seed_generators(model) -> list:
    """Every ``keras.random.SeedGenerator`` of ``model`` and its nested layers (dropout, augmentation)."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=True):  # Keras 3: the model and every nested layer
        for gen in getattr(layer, "_seed_generators", []):
            if id(gen) not in seen:
                seen.add(id(gen))
                found.append(gen)
    return found


def reset_random_state(model, seed: int, epoch: int) -> int:
    """Set every SeedGenerator state of ``model`` (and Keras' global one, if made) from ``(seed, epoch)``.

    Keras does not save SeedGenerator states in ``.keras`` files, and they advance with
    every call, so without this a resumed epoch would draw other dropout masks than an
    uninterrupted one. Returns the number of generators set."""
    gens = seed_generators(model)
    try:  # unseeded keras.random calls draw from this one; none of ours does, but a custom block might
        from keras.src.backend.common import global_state

        glob = global_state.get_global_attribute("global_seed_generator")
    except ImportError:
        glob = None
    for k, gen in enumerate(gens + ([glob] if glob is not None else [])):
        gen.state.assign(np.array([epoch_seed(seed, epoch, SEED_GENERATOR_STREAM + k), 0],
                                  dtype=gen.state.dtype))
    return len(gens)


def _guard_callback():
    """Stops at the first non-finite loss and remembers the batch; kills itself on request (tests)."""
    import keras

    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)

    class Guard(keras.callbacks.Callback):
        bad = None

        def on_train_batch_end(self, batch, logs=None):
            loss = float(np.asarray((logs or {}).get("loss", 0.0)))
            if not math.isfinite(loss):
                self.bad = (batch + 1, loss)
                self.model.stop_training = True
            if kill_after and int(self.model.optimizer.iterations.numpy()) >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    return Guard()


class History:
    """history.tsv: one row per finished epoch; rewritten through a temporary file.

    Columns: ``epoch``, then every figure Keras logged (in its order), then
    ``learning_rate``, ``seconds`` and ``best``; a resumed run keeps the rows it had."""

    TAIL = ("learning_rate", "seconds", "best")

    def __init__(self, path, keep_epochs: int = 0):
        self.path = path
        self.rows, self.columns = [], None
        if keep_epochs and os.path.exists(path):
            with open(path) as fh:
                reader = csv.DictReader(fh, delimiter="\t")
                self.rows = [r for r in reader if int(r["epoch"]) <= keep_epochs]
                self.columns = list(reader.fieldnames or ()) or None

    def add(self, row: dict):
        if self.columns is None:
            self.columns = ["epoch"] + [k for k in row if k not in ("epoch",) + self.TAIL] + list(self.TAIL)
        self.rows.append({k: row.get(k, "") for k in self.columns})
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.columns, delimiter="\t", lineterminator="\n")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)


def _fmt(x):
    return f"{x:.6g}" if isinstance(x, float) else str(x)


# ----------------------------------------------------------------------------- the run
def train(params_path, data_dirs, out: str, opts: Options = Options()) -> dict:
    """Train; returns ``{"epochs": finished, "best": value, "best_epoch": n, "stopped": why}``.

    Cheap checks of the params, options and datasets come first; then the model folder
    ``out`` is claimed (:func:`basenji_tk.files.claim`) for the whole run."""
    params = load_params(params_path)
    tp, mp = params["train"], params["model"]
    if opts.seed is not None:
        if not 0 <= opts.seed <= MAX_SEED:
            raise InputError(f"--seed must be in [0, {MAX_SEED}], got {opts.seed}")
        tp["seed"] = opts.seed
    if opts.epochs is not None:
        if opts.epochs < 1:
            raise InputError(f"--epochs must be at least 1, got {opts.epochs}")
        tp["epochs"] = opts.epochs
    data_dirs = [str(d) for d in data_dirs]
    spec = check_datasets(data_dirs)
    stats = spec.stats
    for key, what in (("num_targets", "targets"), ("target_length", "bins per sequence")):
        if mp[key] and stats.get(key) and mp[key] != stats[key]:
            raise InputError(f"{params_path}: model.{key} is {mp[key]} but {data_dirs[0]} has {stats[key]} {what}")
    wiring = wire(mp, tp, spec, str(params_path))
    if tp["balance"] and not tp["steps_per_epoch"] and spec.kind != "pairs":
        raise InputError(f"{params_path}: train.balance draws batches without end; give train.steps_per_epoch "
                         "(a pairs dataset's epoch uses each negative pair once)")
    explicit = "monitor" in (read_json(params_path, "params").get("train") or {})
    with files.claim(out):
        return _run(params, str(params_path), data_dirs, str(out), opts, spec, wiring, explicit)


def _run(params: dict, params_path: str, data_dirs: list, out: str, opts: Options, spec, wiring: Wiring,
         explicit: bool) -> dict:
    """The claimed part of :func:`train`: prepare the folder, build or load, fit epoch by epoch."""
    resume = prepare_dir(out, opts, params, params_path, data_dirs)
    remove_stale_temporaries(out)
    progress = {"cleared": False}
    try:
        return _fit(params, params_path, data_dirs, out, opts, spec, wiring, explicit, resume, progress)
    except BaseException:
        if progress["cleared"] and not os.path.exists(os.path.join(out, STATE)):
            clear_dir(out, params_path)  # a fresh run that finished no epoch: remove what it wrote
        raise


def _fit(params, params_path, data_dirs, out, opts, spec, wiring, explicit, resume, progress) -> dict:
    tp, mp = params["train"], params["model"]
    import keras
    import tensorflow as tf

    from basenji_tk.model import models

    keras.utils.set_random_seed(tp["seed"])
    if opts.seed is not None:
        tf.config.experimental.enable_op_determinism()
    if opts.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    strategy = choose_strategy()
    per_head = {h: (f.shape[-1] if f.shape else 1) for h, f in wiring.labels.items()}
    with strategy.scope():
        if resume:
            model = models.load_model(os.path.join(out, CHECKPOINT), compile=True)
            mets = head_metrics(tp, wiring, mp["heads"], per_head.get("target"))
        else:
            model = models.build_model(mp, per_head.get("target") if wiring.single_output else per_head,
                                       where=str(params_path))
            check_model_fits(model, wiring, spec, params_path)
            if tp["init_from"]:
                init_from(model, tp, params_path)
            mets = compile_model(model, tp, per_head.get("target"), wiring, mp["heads"])
    check_model_fits(model, wiring, spec, params_path)
    monitor = check_monitor(tp, monitor_names(wiring, mets), params_path, explicit)
    log.info(models.describe(model))
    if not resume:  # the new model is built and fits: only now does a previous one (--force) go
        clear_dir(out, params_path)
        progress["cleared"] = True
        write_json(os.path.join(out, INPUTS), input_prints(params_path, data_dirs))

    state = {"epoch": 0, "best": None, "best_epoch": 0, "wait": 0}
    if resume:
        with open(os.path.join(out, STATE)) as fh:
            state.update(json.load(fh))
        model.optimizer.learning_rate = tp["learning_rate"]
        model.optimizer.global_clipnorm = tp["clip_norm"]
        log.info(f"resuming after epoch {state['epoch']} (best {monitor} {state['best']} "
                 f"at epoch {state['best_epoch']})")
    else:
        write_json(os.path.join(out, DATA_STATS), spec.stats)
    write_json(os.path.join(out, PARAMS), params)
    history = History(os.path.join(out, HISTORY), keep_epochs=state["epoch"])
    lower_better = lower_is_better(monitor)
    valid = valid_dataset(data_dirs, tp["batch_size"], wiring, tp["fold"])
    tensorboard = keras.callbacks.TensorBoard(os.path.join(out, LOGS), write_graph=False, profile_batch=0)
    verbose = 1 if cli.show_progress(opts.quiet) else 0
    stopped = "epochs"

    for epoch in range(state["epoch"], tp["epochs"]):
        if state["wait"] >= tp["patience"]:
            stopped = "patience"
            break
        guard = _guard_callback()
        t0 = time.perf_counter()
        reset_random_state(model, tp["seed"], epoch)
        fit = model.fit(train_dataset(data_dirs, tp, epoch, wiring), validation_data=valid, initial_epoch=epoch,
                        epochs=epoch + 1, verbose=verbose, shuffle=False,
                        callbacks=[guard, tensorboard])
        if guard.bad:
            kept = (f"{CHECKPOINT} holds epoch {state['epoch']}" if state["epoch"]
                    else "no checkpoint was written")
            raise TrainingError(f"training loss became {guard.bad[1]} at epoch {epoch + 1}, batch {guard.bad[0]}; "
                                f"stopped ({kept} in {out}); try a lower learning_rate or clip_norm")
        logs = {k: float(v[-1]) for k, v in fit.history.items()}
        value = logs.get(monitor, float("nan"))
        improved = state["best"] is None or (value < state["best"] if lower_better else value > state["best"])
        models.save_model(model, os.path.join(out, CHECKPOINT))
        if improved:
            models.save_model(model, os.path.join(out, BEST))
            state.update(best=value, best_epoch=epoch + 1, wait=0)
        else:
            state["wait"] += 1
        state["epoch"] = epoch + 1
        seconds = time.perf_counter() - t0
        lr = float(np.asarray(model.optimizer.learning_rate))
        history.add({**{k: _fmt(v) for k, v in logs.items()}, "epoch": epoch + 1, "learning_rate": _fmt(lr),
                     "seconds": f"{seconds:.1f}", "best": "*" if improved else ""})
        write_json(os.path.join(out, STATE), state)
        shown = ["loss", "val_loss"] + [k for k in logs if k.startswith("val_") and k != "val_loss"][:4]
        log.info(f"epoch {epoch + 1}/{tp['epochs']}: "
                 + ", ".join(f"{k} {logs.get(k, float('nan')):.4f}" for k in dict.fromkeys(shown + [monitor]))
                 + f", {seconds:.1f}s{' *' if improved else ''}")
    else:
        if state["wait"] >= tp["patience"]:
            stopped = "patience"
    log.info(f"best {monitor} {state['best']:.4f} at epoch {state['best_epoch']}; "
             f"model in {os.path.join(out, BEST)}")
    return {"epochs": state["epoch"], "best": state["best"], "best_epoch": state["best_epoch"], "stopped": stopped}
