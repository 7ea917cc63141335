"""Fit a model from params.json to one or more datasets, with resumable checkpoints.

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
from dataclasses import dataclass

import numpy as np

from basenji_tk import cli, files
from basenji_tk.errors import InputError
from basenji_tk.params import MAX_SEED, load_params, read_json

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


def check_datasets(data_dirs) -> dict:
    """Load each dataset's statistics; all must share sequence length, bins and targets, and
    every split statistics.json counts must have its record files."""
    from basenji_tk.tfrecords import load_statistics, split_files

    first = None
    for d in data_dirs:
        stats = load_statistics(d)
        if first is None:
            first = stats
        for key in ("seq_length", "target_length", "num_targets", "target_ids"):
            if stats.get(key) != first.get(key):
                raise InputError(f"{d}: {key} {stats.get(key)} differs from {data_dirs[0]}'s "
                                 f"{first.get(key)}; datasets trained together must match")
        for split in ("train", "valid"):
            if stats.get(f"{split}_seqs", 0) and not split_files(d, split):
                raise InputError(f"{d}: statistics.json counts {stats[f'{split}_seqs']} {split} sequences but "
                                 f"there is no tfrecords/{split}-*.tfr file; make the dataset again")
    if not sum(load_statistics(d).get("train_seqs", 0) for d in data_dirs):
        raise InputError(f"{data_dirs[0]}: no training sequences (statistics.json train_seqs is 0 or missing)")
    if not sum(load_statistics(d).get("valid_seqs", 0) for d in data_dirs):
        raise InputError(f"{data_dirs[0]}: no validation sequences; early stopping needs some "
                         "(make_targets.py --valid)")
    return first


def check_model_fits(model, mp: dict, stats: dict, params_path: str, data_dir: str):
    """The model's input and output must match the dataset; say both numbers when not."""
    if mp["seq_length"] != stats["seq_length"]:
        raise InputError(f"{params_path}: model.seq_length is {mp['seq_length']} but {data_dir} holds "
                         f"{stats['seq_length']} bp sequences")
    if mp["inputs"]:
        raise InputError(f"{params_path}: model.inputs names {', '.join(mp['inputs'])}, but {data_dir} records "
                         "hold only sequences and targets")
    want = (stats["target_length"], stats["num_targets"])
    got = tuple(model.output_shape[1:])
    if got != want:
        raise InputError(f"{params_path}: the model outputs {' x '.join(map(str, got))} (bins x targets) but "
                         f"{data_dir} has {want[0]} bins x {want[1]} targets; change pooling/cropping or "
                         "final units")


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


def compile_model(model, tp: dict, num_targets: int):
    from basenji_tk.losses import get_loss
    from basenji_tk.metrics import PearsonR, RSquared

    model.compile(optimizer=make_optimizer(tp), loss=get_loss(tp["loss"], tp["mask_zero"]),
                  metrics=[PearsonR(num_targets), RSquared(num_targets)])


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed in [0, 2**31) for one random stream of one epoch, from ``(seed, epoch, stream)``.

    Streams: 0..n-1 the datasets' shuffling and augmentation, :data:`MIX_STREAM` the mix of
    datasets, ``SEED_GENERATOR_STREAM + k`` the model's k-th SeedGenerator. Unlike ``seed +
    epoch``, neighbouring seeds and epochs, and the datasets of one epoch, share no stream."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0] >> 1)


MIX_STREAM = 1_000_000
SEED_GENERATOR_STREAM = 2_000_000


def train_dataset(data_dirs, tp: dict, epoch: int):
    """The training batches of one epoch: every dataset's train split, shuffled and augmented with
    seeds from ``(train.seed, epoch, dataset)`` (:func:`epoch_seed`)."""
    import tensorflow as tf

    from basenji_tk import tfrecords

    parts = [tfrecords.dataset(d, "train", shuffle=True, shuffle_buffer=tp["shuffle_buffer"], rc=tp["rc"],
                               shift=tp["shift"], seed=epoch_seed(tp["seed"], epoch, k))
             for k, d in enumerate(data_dirs)]
    ds = parts[0] if len(parts) == 1 else tf.data.Dataset.sample_from_datasets(
        parts, seed=epoch_seed(tp["seed"], epoch, MIX_STREAM))
    ds = ds.batch(tp["batch_size"])
    if tp["steps_per_epoch"]:
        ds = ds.repeat().take(tp["steps_per_epoch"])
    else:  # a known length gives Keras a progress bar with a total and no end-of-data warning
        ds = ds.apply(tf.data.experimental.assert_cardinality(_batches(data_dirs, "train", tp["batch_size"])))
    return ds.prefetch(tf.data.AUTOTUNE)


def _batches(data_dirs, split: str, batch_size: int) -> int:
    from basenji_tk.tfrecords import load_statistics

    records = sum(load_statistics(d).get(f"{split}_seqs", 0) for d in data_dirs)
    return -(-records // batch_size)


def valid_dataset(data_dirs, batch_size: int):
    import tensorflow as tf

    from basenji_tk import tfrecords

    parts = [tfrecords.dataset(d, "valid") for d in data_dirs if tfrecords.split_files(d, "valid")]
    ds = parts[0]
    for more in parts[1:]:
        ds = ds.concatenate(more)
    ds = ds.batch(batch_size)
    return ds.apply(tf.data.experimental.assert_cardinality(_batches(data_dirs, "valid", batch_size)))


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
    """history.tsv: one row per finished epoch; rewritten through a temporary file."""

    COLUMNS = ("epoch", "loss", "pearsonr", "r2", "val_loss", "val_pearsonr", "val_r2", "learning_rate",
               "seconds", "best")

    def __init__(self, path, keep_epochs: int = 0):
        self.path = path
        self.rows = []
        if keep_epochs and os.path.exists(path):
            with open(path) as fh:
                self.rows = [r for r in csv.DictReader(fh, delimiter="\t") if int(r["epoch"]) <= keep_epochs]

    def add(self, row: dict):
        self.rows.append({k: row.get(k, "") for k in self.COLUMNS})
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.COLUMNS, delimiter="\t", lineterminator="\n")
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
    stats = check_datasets(data_dirs)
    if mp["num_targets"] and mp["num_targets"] != stats["num_targets"]:
        raise InputError(f"{params_path}: model.num_targets is {mp['num_targets']} but {data_dirs[0]} has "
                         f"{stats['num_targets']} targets")
    if mp["target_length"] and mp["target_length"] != stats["target_length"]:
        raise InputError(f"{params_path}: model.target_length is {mp['target_length']} but {data_dirs[0]} has "
                         f"{stats['target_length']} bins per sequence")
    with files.claim(out):
        return _run(params, str(params_path), data_dirs, str(out), opts, stats)


def _run(params: dict, params_path: str, data_dirs: list, out: str, opts: Options, stats: dict) -> dict:
    """The claimed part of :func:`train`: prepare the folder, build or load, fit epoch by epoch."""
    resume = prepare_dir(out, opts, params, params_path, data_dirs)
    remove_stale_temporaries(out)
    progress = {"cleared": False}
    try:
        return _fit(params, params_path, data_dirs, out, opts, stats, resume, progress)
    except BaseException:
        if progress["cleared"] and not os.path.exists(os.path.join(out, STATE)):
            clear_dir(out, params_path)  # a fresh run that finished no epoch: remove what it wrote
        raise


def _fit(params, params_path, data_dirs, out, opts, stats, resume, progress) -> dict:
    tp, mp = params["train"], params["model"]
    import keras
    import tensorflow as tf

    from basenji_tk import models

    keras.utils.set_random_seed(tp["seed"])
    if opts.seed is not None:
        tf.config.experimental.enable_op_determinism()
    if opts.mixed_precision:
        keras.mixed_precision.set_dtype_policy("mixed_float16")
    strategy = choose_strategy()
    with strategy.scope():
        if resume:
            model = models.load_model(os.path.join(out, CHECKPOINT), compile=True)
        else:
            model = models.build_model(mp, stats["num_targets"], where=str(params_path))
            check_model_fits(model, mp, stats, params_path, data_dirs[0])
            compile_model(model, tp, stats["num_targets"])
    check_model_fits(model, mp, stats, params_path, data_dirs[0])
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
        log.info(f"resuming after epoch {state['epoch']} (best {tp['monitor']} {state['best']} "
                 f"at epoch {state['best_epoch']})")
    else:
        write_json(os.path.join(out, DATA_STATS), stats)
    write_json(os.path.join(out, PARAMS), params)
    history = History(os.path.join(out, HISTORY), keep_epochs=state["epoch"])
    lower_better = tp["monitor"] == "val_loss"
    valid = valid_dataset(data_dirs, tp["batch_size"])
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
        fit = model.fit(train_dataset(data_dirs, tp, epoch), validation_data=valid, initial_epoch=epoch,
                        epochs=epoch + 1, verbose=verbose, shuffle=False,
                        callbacks=[guard, tensorboard])
        if guard.bad:
            kept = (f"{CHECKPOINT} holds epoch {state['epoch']}" if state["epoch"]
                    else "no checkpoint was written")
            raise TrainingError(f"training loss became {guard.bad[1]} at epoch {epoch + 1}, batch {guard.bad[0]}; "
                                f"stopped ({kept} in {out}); try a lower learning_rate or clip_norm")
        logs = {k: float(v[-1]) for k, v in fit.history.items()}
        value = logs.get(tp["monitor"], float("nan"))
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
        log.info(f"epoch {epoch + 1}/{tp['epochs']}: loss {logs.get('loss', float('nan')):.4f}, "
                 f"val_loss {logs.get('val_loss', float('nan')):.4f}, "
                 f"val_pearsonr {logs.get('val_pearsonr', float('nan')):.4f}, "
                 f"val_r2 {logs.get('val_r2', float('nan')):.4f}, {seconds:.1f}s{' *' if improved else ''}")
    else:
        if state["wait"] >= tp["patience"]:
            stopped = "patience"
    log.info(f"best {tp['monitor']} {state['best']:.4f} at epoch {state['best_epoch']}; "
             f"model in {os.path.join(out, BEST)}")
    return {"epochs": state["epoch"], "best": state["best"], "best_epoch": state["best_epoch"], "stopped": stopped}
