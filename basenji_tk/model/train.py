"""Fit a model from params.json to one or more datasets, with resumable checkpoints.

:func:`train` (behind ``bin/train.py``) checks the params, options and datasets, wires the model
to them (:mod:`basenji_tk.model.wiring`), builds it (or loads its checkpoint with ``--restart``),
copies the layers ``train.init_from`` shares with it (:mod:`basenji_tk.model.transfer`), and fits
it epoch by epoch on the batches of :mod:`basenji_tk.model.feeds`, every random stream of an epoch
set from ``(train.seed, epoch)`` (:mod:`basenji_tk.model.seeds`). What it writes into the model
folder, and what ``--restart`` and ``--force`` check there: :mod:`basenji_tk.model.resume`.

The whole run holds :func:`basenji_tk.files.claim` on the model folder: an
unwritable folder or a second run into it is one error before any work. A fresh
run that fails before its first epoch ends removes what it wrote (and the folder,
when it made it); an existing model is only removed (``--force``) once the new
model has been built and checked against the data.
"""

import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from basenji_tk import cli, files
from basenji_tk.errors import InputError
from basenji_tk.model.feeds import check_datasets, train_dataset, valid_dataset
from basenji_tk.model.params import MAX_SEED, apply_sets, load_params, read_json, set_label
from basenji_tk.model.resume import (BEST, CHECKPOINT, DATA_STATS, HISTORY, HISTORY_STEPS, INPUTS, LOGS, PARAMS, STATE,
                                     History, clear_dir, input_prints, prepare_dir, remove_stale_temporaries,
                                     write_json)
from basenji_tk.model.steps import StepHistory, check_valid_batches, columns_for, step_validation
from basenji_tk.model.seeds import reset_random_state
from basenji_tk.model.transfer import init_from
from basenji_tk.model.wiring import (Wiring, check_model_fits, check_monitor, compile_model, head_metrics,
                                     lower_is_better, monitor_names, wire)

log = logging.getLogger("basenji_tk")

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
    sets: tuple = ()  # --set KEY=VALUE items merged into the params file (params.apply_sets)


def choose_strategy():
    """MultiWorkerMirrored with TF_CONFIG, Mirrored with several GPUs, else the default."""
    import tensorflow as tf

    if os.environ.get("TF_CONFIG"):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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


def _fmt(x):
    return f"{x:.6g}" if isinstance(x, float) else str(x)


# ----------------------------------------------------------------------------- the run
def train(params_path, data_dirs, out: str, opts: Options = Options()) -> dict:
    """Train; returns ``{"epochs": finished, "best": value, "best_epoch": n, "stopped": why}``.

    Cheap checks of the params, options and datasets come first; then the model folder
    ``out`` is claimed (:func:`basenji_tk.files.claim`) for the whole run. ``opts.sets``
    (``--set KEY=VALUE``) are merged into the params file before anything is checked: the merged
    params are what is checked, used and written to ``out/params.json``."""
    sets = tuple(opts.sets)
    params = load_params(params_path, sets)
    tp, mp = params["train"], params["model"]
    if opts.seed is not None:
        if not 0 <= opts.seed <= MAX_SEED:
            raise InputError(f"--seed must be in [0, {MAX_SEED}], got {opts.seed}")
        tp["seed"] = opts.seed
    if opts.epochs is not None:
        if opts.epochs < 1:
            raise InputError(f"--epochs must be at least 1, got {opts.epochs}")
        tp["epochs"] = opts.epochs
    where = set_label(params_path, sets)
    data_dirs = [str(d) for d in data_dirs]
    spec = check_datasets(data_dirs)
    stats = spec.stats
    for key, what in (("num_targets", "targets"), ("target_length", "bins per sequence")):
        if mp[key] and stats.get(key) and mp[key] != stats[key]:
            raise InputError(f"{where}: model.{key} is {mp[key]} but {data_dirs[0]} has {stats[key]} {what}")
    wiring = wire(mp, tp, spec, where)
    if tp["balance"] and not tp["steps_per_epoch"] and spec.kind != "pairs":
        raise InputError(f"{where}: train.balance draws batches without end; give train.steps_per_epoch "
                         "(a pairs dataset's epoch uses each negative pair once)")
    explicit = "monitor" in (apply_sets(read_json(params_path, "params"), sets, str(params_path)).get("train") or {})
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


def data_sizes(spec, fold) -> dict:
    """Label widths a model may take from the data beyond its heads': a pairs dataset's number of
    training contexts in ``fold`` (stage 1's task count, for stage 2's ``task_blocks``)."""
    if spec.kind != "pairs":
        return {}
    from basenji_tk.data.pairs_views import REGION_LABELS, region_features

    labels = next(f for f in region_features(spec, fold) if f.name == REGION_LABELS)
    return {REGION_LABELS: labels.shape[0]}  # the width stage 1's regions view trains on


def _fit(params, params_path, data_dirs, out, opts, spec, wiring, explicit, resume, progress) -> dict:
    tp, mp = params["train"], params["model"]
    where = set_label(params_path, opts.sets)  # how messages name the params: the file and the --set items
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
                                       where=where, sizes=data_sizes(spec, tp["fold"]))
            check_model_fits(model, wiring, spec, where)
            if tp["init_from"]:
                init_from(model, tp, where, mp)
            mets = compile_model(model, tp, per_head.get("target"), wiring, mp["heads"])
    check_model_fits(model, wiring, spec, where)
    monitor = check_monitor(tp, monitor_names(wiring, mets), where, explicit)
    log.info(models.describe(model))
    if not resume:  # the new model is built and fits: only now does a previous one (--force) go
        clear_dir(out, params_path)
        progress["cleared"] = True
        write_json(os.path.join(out, INPUTS), {**input_prints(params_path, data_dirs), "sets": list(opts.sets)})

    state = {"epoch": 0, "best": None, "best_epoch": 0, "wait": 0, "step_window": [0.0, 0]}
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
    valid = valid_dataset(data_dirs, tp["batch_size"], wiring, tp["fold"], tp["valid_batches"])
    steps = None
    if tp["validate_every"]:
        tp = {**tp, "validation_steps": check_valid_batches(valid, data_dirs, tp["validation_steps"])}
        steps = StepHistory(os.path.join(out, HISTORY_STEPS), columns_for(monitor), keep_epochs=state["epoch"])
    tensorboard = keras.callbacks.TensorBoard(os.path.join(out, LOGS), write_graph=False, profile_batch=0)
    verbose = 1 if cli.show_progress(opts.quiet) else 0
    stopped = "epochs"

    for epoch in range(state["epoch"], tp["epochs"]):
        if state["wait"] >= tp["patience"]:
            stopped = "patience"
            break
        guard = _guard_callback()
        callbacks = [guard, tensorboard]
        if steps is not None:
            callbacks.append(step_validation(valid, tp, steps, monitor, state["step_window"]))
        t0 = time.perf_counter()
        reset_random_state(model, tp["seed"], epoch)
        fit = model.fit(train_dataset(data_dirs, tp, epoch, wiring), validation_data=valid, initial_epoch=epoch,
                        epochs=epoch + 1, verbose=verbose, shuffle=False, callbacks=callbacks)
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
        if steps is not None:
            state["step_window"] = callbacks[-1].window()
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
