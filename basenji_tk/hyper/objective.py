"""Training trials: the objective that trains each trial in its own process, and that process.

:class:`TrainObjective` writes ``TRIAL_DIR/params.json`` (:func:`trial_params`) and runs
``python -m basenji_tk.hyper.objective _trial TRIAL_DIR DATA_DIR...``, which trains it with
:func:`basenji_tk.model.train.train` (:func:`run_trial`) and writes ``result.json``; the
objective reads the result back or raises.
"""

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from basenji_tk import cli
from basenji_tk.hyper.domain import set_value
from basenji_tk.hyper.options import OBJECTIVES, Options
from basenji_tk.model.resume import write_json

log = logging.getLogger("basenji_tk")

RESULT = "result.json"


def trial_params(params: dict, values: dict, opts: Options) -> dict:
    """params.json of one trial: the tuned values, the budget, and the monitor matching the objective."""
    p = json.loads(json.dumps(params))
    p.setdefault("train", {})
    if opts.epochs:
        p["train"]["epochs"] = opts.epochs
    if opts.steps:
        p["train"]["steps_per_epoch"] = opts.steps
    if opts.objective == "valid_loss":
        p["train"]["monitor"] = "val_loss"
    elif opts.objective == "valid_pearsonr":
        p["train"]["monitor"] = "val_pearsonr"
    for path, value in values.items():
        set_value(p, path, value)
    return p


def trial_dir(out, number: int) -> str:
    return os.path.join(str(out), f"trial_{number:03d}")


class TrainObjective:
    """``f(number, values)``: train one trial in a subprocess; returns ``{"objective", "epochs"}`` or raises."""

    def __init__(self, params: dict, data_dirs, out, opts: Options):
        self.params, self.data_dirs, self.out, self.opts = params, [str(d) for d in data_dirs], str(out), opts

    def __call__(self, number, values):
        from basenji_tk.model.params import check_params

        folder = trial_dir(self.out, number)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.makedirs(folder)
        params = trial_params(self.params, values, self.opts)
        check_params(params, os.path.join(folder, "params.json"))
        write_json(os.path.join(folder, "params.json"), params)
        cmd = [sys.executable, "-m", "basenji_tk.hyper.objective", "_trial", folder, "--objective", self.opts.objective,
               *self.data_dirs]
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with open(os.path.join(folder, "trial.log"), "w") as logfile:
            proc = subprocess.run(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        path = os.path.join(folder, RESULT)
        if not os.path.exists(path):
            with open(os.path.join(folder, "trial.log")) as fh:
                tail = [line.strip() for line in fh if line.strip()][-1:] or [""]
            why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"status {proc.returncode}"
            raise RuntimeError(f"trial process ended with {why} and no result: {tail[0]}")
        with open(path) as fh:
            result = json.load(fh)
        if result["status"] != "ok":
            raise TrialFailed(result["error"])
        return result


class TrialFailed(Exception):
    """The trial process reported a failure (its message is the trial's error)."""

    def __str__(self):
        return self.args[0]


def _watch_parent():
    """End this trial process when the search that started it dies (e.g. kill -9)."""
    parent = os.getppid()

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def run_trial(folder: str, data_dirs: list, objective: str) -> dict:
    """Train ``folder/params.json`` into ``folder``; measure the objective; write and return result.json.

    The objective is the best epoch's ``val_loss``/``val_pearsonr`` (the trial's
    train.monitor is set to match), or for ``valid_auprc`` the mean peak AUPRC of
    model_best.keras over the targets on the first dataset's valid split
    (:func:`basenji_tk.analysis.evaluate.evaluate` with ``peaks``).
    """
    from basenji_tk.model.train import Options as TrainOptions
    from basenji_tk.model.train import TrainingError, train

    result = {"status": "failed", "objective": None, "epochs": None, "error": ""}
    try:
        fit = train(os.path.join(folder, "params.json"), data_dirs, folder, TrainOptions(quiet=True))
        result["epochs"] = fit["epochs"]
        if objective == "valid_auprc":
            from basenji_tk.analysis.evaluate import evaluate
            from basenji_tk.analysis.trained import TrainedModel

            # binned tracks: the AUPRC of called peaks; probabilities (binary labels): their own AUPRC
            binned = any(o.kind == "binned" for o in TrainedModel.load(folder).outputs.values())
            table = evaluate(folder, data_dirs[0], os.path.join(folder, "valid"), split="valid", peaks=binned,
                             plots=False, quiet=True)
            column = "peak_auprc" if binned else "auprc"
            value = float(np.nanmean(table[column])) if column in table and table[column].notna().any() \
                else float("nan")
        else:
            value = float(fit["best"]) if fit["best"] is not None else float("nan")
        if math.isfinite(value):
            result.update(status="ok", objective=value)
        else:
            result["error"] = f"{objective} is {value}"
    except TrainingError as err:
        result["error"] = f"TrainingError: {err}"
    except Exception as err:  # noqa: BLE001 - reported to the search, which goes on
        import tensorflow as tf

        if isinstance(err, tf.errors.ResourceExhaustedError):
            result["error"] = f"out of memory: {str(err).splitlines()[0]}"
        else:
            result["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    write_json(os.path.join(folder, RESULT), result)
    return result


# ----------------------------------------------------------------------------- trial subprocess
def _trial_main(argv):
    import argparse

    p = argparse.ArgumentParser(prog="python -m basenji_tk.hyper.objective _trial")
    p.add_argument("folder")
    p.add_argument("data_dirs", nargs="+")
    p.add_argument("--objective", default="valid_pearsonr", choices=list(OBJECTIVES))
    args = p.parse_args(argv)
    cli.setup_logging(quiet=False)
    _watch_parent()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    result = run_trial(args.folder, args.data_dirs, args.objective)
    log.info(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_trial":
        sys.exit(_trial_main(sys.argv[2:]))
    sys.exit("usage: python -m basenji_tk.hyper.objective _trial TRIAL_DIR DATA_DIR... (run by hyper_search.py)")
