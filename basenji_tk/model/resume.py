"""The model folder a training run writes, and what ``--restart`` and ``--force`` check in it.

The model folder holds::

    params.json            the resolved params (defaults filled in) this run used
    data_statistics.json   the first dataset's statistics.json (genome, targets, bins)
    checkpoint.keras       model + optimizer state after the last finished epoch
    model_best.keras       the model at the best validation ``train.monitor`` so far
    history.tsv            one row per finished epoch
    history_steps.tsv      with train.validate_every: one row per validation check (step, epoch,
                           train_loss, val_loss, the monitor), :mod:`basenji_tk.model.steps`
    train_state.json       epoch, best value, epochs without improvement
    logs/                  TensorBoard logs
    inputs.json            fingerprints of the params file and of every file of every dataset

Every file is written under a temporary name and renamed, checkpoint first and
``train_state.json`` last, so after a kill at any moment ``--restart`` finds a
consistent state and repeats at most the epoch that was running (how its result equals
an uninterrupted run's: :mod:`basenji_tk.model.seeds`). ``--restart`` refuses different
params (except :data:`RESTART_MAY_CHANGE`), different data dirs, and a dataset file that
changed since the fresh start (size, mtime and SHA-256 of a sample:
:func:`basenji_tk.files.fingerprint`). An existing model is only removed (``--force``)
once the new model has been built and checked against the data (:func:`clear_dir`).
"""

import csv
import json
import logging
import os
import shutil
from typing import TYPE_CHECKING

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.model.params import SECTIONS, read_json

if TYPE_CHECKING:
    from basenji_tk.model.train import Options

log = logging.getLogger("basenji_tk")

PARAMS = "params.json"
DATA_STATS = "data_statistics.json"
CHECKPOINT = "checkpoint.keras"
BEST = "model_best.keras"
HISTORY = "history.tsv"
HISTORY_STEPS = "history_steps.tsv"
STATE = "train_state.json"
LOGS = "logs"
INPUTS = "inputs.json"
OWNED = (PARAMS, DATA_STATS, CHECKPOINT, BEST, HISTORY, HISTORY_STEPS, STATE, LOGS, INPUTS)
# What --restart may change: how long to go on, and the step size (e.g. after a NaN loss).
RESTART_MAY_CHANGE = ("epochs", "patience", "learning_rate", "clip_norm")


# ----------------------------------------------------------------------------- the folder
def write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def prepare_dir(out: str, opts: "Options", params: dict, params_path: str, data_dirs: list) -> bool:
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
                if was == now or (key not in saved.get(section, {}) and now == SECTIONS[section][key].default):
                    continue  # the same, or a key added to the schema since the run started, at its default
                if section == "train" and key in RESTART_MAY_CHANGE:
                    log.info(f"--restart: train.{key} changes from {json.dumps(was)} to {json.dumps(now)}")
                    continue
                where, was, now = first_difference(f"{section}.{key}", was, now)
                raise InputError(f"{out}: --restart with different params: {where} was {json.dumps(was)}, now "
                                 f"{json.dumps(now)} (the params file with its --set items; only "
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


def first_difference(key: str, was, now) -> tuple:
    """``(dotted key, was, now)`` of the first leaf where two params values differ (list entries
    by number), so a restart's error names ``model.heads.accessible.blocks.0.units``, not the head."""
    if isinstance(was, dict) and isinstance(now, dict):
        for k in list(was) + [k for k in now if k not in was]:
            if was.get(k) != now.get(k):
                return first_difference(f"{key}.{k}", was.get(k), now.get(k))
    if isinstance(was, list) and isinstance(now, list) and len(was) == len(now):
        for i, (a, b) in enumerate(zip(was, now)):
            if a != b:
                return first_difference(f"{key}.{i}", a, b)
    return key, was, now


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


# ----------------------------------------------------------------------------- history.tsv
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
