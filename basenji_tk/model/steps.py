"""Validation loss against training steps (ChromDragoNN Fig. 1B): ``train.validate_every``.

Every ``train.validate_every`` optimizer steps, :func:`step_validation` (a Keras callback next
to train.py's Guard and TensorBoard ones) evaluates the model on the first
``train.validation_steps`` batches of the valid split (the same batches every time: the valid
split is read in order) and appends a row to ``history_steps.tsv`` (:class:`StepHistory`):

    step        optimizer steps so far (counted across epochs and restarts)
    epoch       the epoch (from 1) the step belongs to
    train_loss  mean training loss per batch since the previous check (over epoch ends too)
    val_loss    the loss on those validation batches, as Keras's val_loss computes it
    val_METRIC  the run's train.monitor, when it is not val_loss

The check runs ``model.evaluate`` between two training steps and puts the metric states back
afterwards, so the training run itself (weights, history.tsv) is the same as without it. A
``--restart`` keeps the rows of the finished epochs and repeats the others, so no step appears
twice; the running train_loss is carried across the restart in train_state.json.
:func:`read_history` reads a model folder's history.tsv or history_steps.tsv and
:func:`plot_history` overlays several runs (``bin/plot_history.py``).
"""

import csv
import logging
import math
import os

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.model.resume import HISTORY, HISTORY_STEPS

log = logging.getLogger("basenji_tk")

COLUMNS = ("step", "epoch", "train_loss", "val_loss")


class StepHistory:
    """history_steps.tsv: one row per check, rewritten through a temporary file after each one.

    ``keep_epochs``: a resumed run keeps only the rows of the epochs it finished."""

    def __init__(self, path, columns, keep_epochs: int = 0):
        self.path, self.columns, self.rows = path, list(columns), []
        if keep_epochs and os.path.exists(path):
            with open(path) as fh:
                reader = csv.DictReader(fh, delimiter="\t")
                self.rows = [r for r in reader if int(r["epoch"]) <= keep_epochs]
        if os.path.exists(path):
            self._write()  # drop the rows of an unfinished epoch now: they are about to be repeated

    def add(self, row: dict):
        self.rows.append({k: row.get(k, "") for k in self.columns})
        self._write()

    def _write(self):
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, self.columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)
        os.replace(tmp, self.path)


def check_valid_batches(valid, data_dirs, steps: int) -> int:
    """The number of validation batches a check evaluates: ``steps``, or fewer when the valid
    split has fewer; none is an :class:`InputError` naming the dataset."""
    n = int(valid.cardinality())
    if n == 0:
        raise InputError(f"{data_dirs[0]}: train.validate_every needs validation batches, and this dataset's "
                         "valid split has none")
    if 0 < n < steps:
        log.info(f"train.validation_steps is {steps}, but the valid split has {n} batches: each check uses them all")
        return n
    return steps


def step_validation(valid, tp: dict, history: StepHistory, monitor: str, window=(0.0, 0)):
    """The callback: every ``tp["validate_every"]`` steps, evaluate on ``valid.take(tp["validation_steps"])``
    and add a row to ``history``. ``window`` is ``(sum of batch losses, batches)`` since the last check,
    carried over from before a restart; the callback's :meth:`window` gives it back after each epoch."""
    import keras

    every, batches = tp["validate_every"], valid.take(tp["validation_steps"])

    class StepValidation(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.total, self.count = float(window[0]), int(window[1])
            self.epoch, self.before = 0, 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch, self.before = epoch, 0.0

        def on_train_batch_end(self, batch, logs=None):
            # Keras logs the running mean since the epoch began: (batch + 1) x mean - the previous sum
            # is this batch's loss (batches of one size)
            running = float(np.asarray((logs or {}).get("loss", math.nan))) * (batch + 1)
            self.total += running - self.before
            self.before = running
            self.count += 1
            step = int(self.model.optimizer.iterations.numpy())
            if step % every:
                return
            state = [v.numpy() for v in self.model.metrics_variables]
            try:
                result = self.model.evaluate(batches, verbose=0, return_dict=True)
            finally:  # the epoch's running training metrics go on as if nothing happened
                for v, value in zip(self.model.metrics_variables, state):
                    v.assign(value)
            row = {"step": step, "epoch": self.epoch + 1, "train_loss": _fmt(self.total / max(self.count, 1)),
                   **{f"val_{k}": _fmt(float(v)) for k, v in result.items()}}
            history.add(row)
            log.debug(f"step {step}: train_loss {row['train_loss']}, val_loss {row['val_loss']}")
            self.total, self.count = 0.0, 0

        def window(self) -> list:
            return [self.total, self.count]

    return StepValidation()


def columns_for(monitor: str) -> list:
    return list(COLUMNS) + ([monitor] if monitor != "val_loss" else [])


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# ----------------------------------------------------------------------------- reading and plotting
def read_history(run_dir, steps: bool = False) -> dict:
    """A model folder's history as ``{column: (rows,) array}``: history_steps.tsv with ``steps``
    (x axis ``step``), else history.tsv (``epoch``). Empty cells are NaN."""
    path = os.path.join(str(run_dir), HISTORY_STEPS if steps else HISTORY)
    if not os.path.isfile(path):
        why = " (train with train.validate_every, e.g. --set train.validate_every=50)" if steps else ""
        raise InputError(f"{path}: not found{why}")
    with open(path) as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        rows = list(reader)
        names = list(reader.fieldnames or ())
    if not rows:
        raise InputError(f"{path}: holds no rows yet")
    out = {}
    for name in names:
        try:
            out[name] = np.array([float(r[name]) if r[name] not in ("", None) else np.nan for r in rows])
        except ValueError:
            continue  # a text column (history.tsv's best marker)
    return out


def plot_history(runs, out, labels=None, steps: bool = False, metric: str = "val_loss", title: str = "",
                 force: bool = False) -> str:
    """Overlay ``metric`` of several model folders ``runs`` against steps (``steps``, from
    history_steps.tsv) or epochs (history.tsv) in the PNG ``out``; ``labels`` names the curves
    (default: the folder names). Returns ``out``."""
    from basenji_tk import plots

    runs = [str(r) for r in runs]
    labels = list(labels) if labels else [os.path.basename(os.path.normpath(r)) for r in runs]
    if len(labels) != len(runs):
        raise InputError(f"--labels: {len(labels)} labels for {len(runs)} runs")
    x_name = "step" if steps else "epoch"
    curves = []
    for run, label in zip(runs, labels):
        table = read_history(run, steps)
        if metric not in table:
            path = os.path.join(run, HISTORY_STEPS if steps else HISTORY)
            raise InputError(f"{path}: no column '{metric}'; it has: {', '.join(table)}")
        curves.append((label, table[x_name], table[metric]))
    with files.claim(out, folder=False):
        files.refuse_overwrite(out, force=force)
        return plots.history_curves(curves, out, x_name, metric, title)
