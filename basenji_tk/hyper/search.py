"""Bayesian hyperparameter search with GPyOpt (behind ``bin/hyper_search.py``): the whole run.

What is tuned is a domain (:mod:`basenji_tk.hyper.domain`); the optimiser
(:mod:`basenji_tk.hyper.optimizer`) proposes the points and collects the finished
trials (:mod:`basenji_tk.hyper.trials`); :mod:`basenji_tk.hyper.options` holds the
options and :mod:`basenji_tk.hyper.objective` the training of one trial.

:func:`hyper_search` runs the whole search of the script: each trial is a
subprocess (``python -m basenji_tk.hyper.objective _trial TRIAL_DIR DATA_DIR...``) that
trains ``TRIAL_DIR/params.json`` with :func:`basenji_tk.model.train.train` and writes
``result.json``. ``search_dir`` holds::

    search.json      what this search is: hashes of params.json and domain.json, options, data dirs
    inputs.json      fingerprints of every dataset file, for --restart
    params.json, domain.json   copies of the inputs
    trials.tsv       one row per finished trial, appended (and fsynced) as it ends
    trial_NNN/       params.json, history.tsv, trial.log, result.json (models only with keep_models)
    best/            model_best.keras, params.json, history.tsv of the best trial so far
    convergence.png  best-so-far objective vs trial; params.png: objective vs each value

``restart`` reloads trials.tsv and proposes from the finished trials; a trial
that was running when the search was killed is run again from scratch. It refuses
a params.json or domain.json whose content differs (SHA-256 of the whole file), other
options or data dirs, and a dataset file added, removed or changed since the search
started (size, mtime and SHA-256 of a sample: :func:`basenji_tk.files.fingerprint`).

The search holds :func:`basenji_tk.files.claim` on ``search_dir`` from after the
input checks to the end: an unwritable folder or a second search into it is one
error before any trial. Each trial's training claims its own ``trial_NNN`` folder
(the lock file is per folder, so the two never meet).
"""

import hashlib
import json
import logging
import os
import shutil
from dataclasses import asdict

from basenji_tk import cli, files
from basenji_tk.errors import InputError
from basenji_tk.hyper.domain import Domain, load_domain
from basenji_tk.hyper.objective import RESULT, TrainObjective, trial_dir
from basenji_tk.hyper.optimizer import best_so_far, optimize
from basenji_tk.hyper.options import IDENTITY, OBJECTIVES, Options
from basenji_tk.hyper.trials import Trial, TrialLog
from basenji_tk.model.resume import write_json

log = logging.getLogger("basenji_tk")

TRIALS = "trials.tsv"
SEARCH = "search.json"
BEST_DIR = "best"
INPUTS = "inputs.json"
CONVERGENCE = "convergence.png"
PARAM_PLOT = "params.png"
MODEL_FILES = ("model_best.keras", "checkpoint.keras")


# ----------------------------------------------------------------------------- plots
def plot_search(trials: list, domain: Domain, out_dir, minimize: bool, label: str = "objective") -> list:
    """convergence.png (best so far vs trial) and params.png (objective vs each value); returns the paths."""
    import matplotlib.pyplot as plt

    from basenji_tk.plots import _save  # sets the Agg backend

    trials = sorted(trials, key=lambda t: t.number)
    ok = [t for t in trials if t.ok]
    paths = [os.path.join(str(out_dir), CONVERGENCE), os.path.join(str(out_dir), PARAM_PLOT)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([t.number for t in trials], best_so_far(trials, minimize), "-", color="C0", label="best so far")
    ax.plot([t.number for t in ok], [t.objective for t in ok], "o", color="C1", ms=4, label="trial")
    bad = [t.number for t in trials if not t.ok]
    if bad and ok:
        ax.plot(bad, [max(t.objective for t in ok) if minimize else min(t.objective for t in ok)] * len(bad),
                "x", color="C3", label="failed")
    ax.set_xlabel("trial")
    ax.set_ylabel(label)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, paths[0], 100)

    n = len(domain.dims)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, dim in zip(axes.ravel(), domain.dims):
        ys = [t.objective for t in ok]
        if dim.type == "categorical":
            ax.plot([dim.values.index(t.values[dim.path]) for t in ok], ys, "o", ms=4)
            ax.set_xticks(range(len(dim.values)), [str(v) for v in dim.values])
            ax.set_xlim(-0.5, len(dim.values) - 0.5)
        else:
            ax.plot([t.values[dim.path] for t in ok], ys, "o", ms=4)
            if dim.log:
                ax.set_xscale("log")
        ax.set_xlabel(dim.path, fontsize=8)
        ax.set_ylabel(label)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
    _save(fig, paths[1], 100)
    return paths


# ----------------------------------------------------------------------------- the search folder
def _sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def prepare_search_dir(out: str, identity: dict, opts: Options, inputs: dict) -> bool:
    """Refuse a folder holding a different search; returns whether to continue one (restart).

    ``inputs``: ``{"params": path, "domain": path, "data_dirs": [...]}`` of this run, named
    in the errors when they differ from the interrupted search's."""
    from basenji_tk.model.params import read_json
    from basenji_tk.model.resume import check_inputs

    path = os.path.join(out, SEARCH)
    if os.path.exists(path):
        saved = read_json(path, "search")
        if opts.restart:
            again = "--restart needs the same inputs (use --force to start a new search there)"
            for key, name in (("params_sha256", "params"), ("domain_sha256", "domain")):
                if saved.get(key) != identity[key]:
                    raise InputError(f"{inputs[name]}: this {name} file's content differs from the interrupted "
                                     f"search's ({key} was {json.dumps(saved.get(key))}); {again}")
            for key in identity:
                if saved.get(key) != identity[key]:
                    raise InputError(f"{out}: --restart with a different search: {key} was "
                                     f"{json.dumps(saved.get(key))}, now {json.dumps(identity[key])} "
                                     "(use --force to start a new search there)")
            was = [os.path.abspath(d) for d in saved.get("data_dirs", [])]
            now = [os.path.abspath(d) for d in inputs["data_dirs"]]
            if was != now:
                raise InputError(f"{out}: --restart with different data dirs: was {' '.join(was)}, now "
                                 f"{' '.join(now)}; {again}")
            if os.path.exists(os.path.join(out, INPUTS)):
                check_inputs(read_json(os.path.join(out, INPUTS), "inputs"), inputs["data_dirs"], out)
            else:  # a search folder from before inputs.json
                log.warning(f"{out}: no {INPUTS}, so --restart cannot check that the datasets are unchanged")
            return True
        if not opts.force:
            raise InputError(f"{out}: already holds a search ({SEARCH}); use --restart to continue it "
                             "(same params and domain) or --force to replace it")
    elif opts.restart:
        raise InputError(f"{out}: nothing to restart (no {SEARCH}); run without --restart")
    return False


def _clear(out: str):
    for name in os.listdir(out):
        p = os.path.join(out, name)
        if name.startswith("trial_") or name in (BEST_DIR, f"{BEST_DIR}.tmp"):
            shutil.rmtree(p, ignore_errors=True)
        elif name in (TRIALS, SEARCH, INPUTS, CONVERGENCE, PARAM_PLOT, "params.json", "domain.json"):
            os.remove(p)


def _keep_best(out: str, trial: Trial):
    """Copy the trial's model, params and history to out/best (through best.tmp)."""
    src, dst, tmp = trial_dir(out, trial.number), os.path.join(out, BEST_DIR), os.path.join(out, f"{BEST_DIR}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in ("model_best.keras", "params.json", "history.tsv", RESULT):
        if os.path.exists(os.path.join(src, name)):
            shutil.copy2(os.path.join(src, name), tmp)
    write_json(os.path.join(tmp, "trial.json"), asdict(trial))
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def hyper_search(params_path, domain_path, data_dirs, out, opts: Options = Options(), objective_fn=None) -> dict:
    """Search ``domain_path`` over ``params_path`` trained on ``data_dirs``; results in ``out``.

    ``objective_fn(number, values)`` replaces training (tests); by default each
    trial trains in a subprocess (:class:`TrainObjective`).

    Returns ``{"trials", "failed", "best": {"trial", "objective", "values"} or None}``.
    """
    params_path, domain_path, out = str(params_path), str(domain_path), str(out)
    if opts.objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {opts.objective}")
    for name in ("n_trials", "init", "parallel"):
        if getattr(opts, name) < (0 if name == "init" else 1):
            raise InputError(f"--{name}: expected a positive number, got {getattr(opts, name)}")
    for name in ("epochs", "steps"):
        if getattr(opts, name) is not None and getattr(opts, name) < 1:
            raise InputError(f"--{name}: expected a positive number, got {getattr(opts, name)}")
    if opts.method not in ("gp", "random"):
        raise InputError(f"--method must be gp or random, got {opts.method}")
    domain, params = load_domain(domain_path, params_path)
    for flag, path in (("epochs", "train.epochs"), ("steps", "train.steps_per_epoch")):
        if getattr(opts, flag) is not None and path in domain.paths:
            raise InputError(f"{domain_path}: tunes {path}, which --{flag} also sets; drop one of them")
    from basenji_tk.model.feeds import check_datasets

    check_datasets([str(d) for d in data_dirs])
    with open(domain_path) as fh:
        domain_spec = json.load(fh)
    identity = {"params_sha256": _sha(params_path),
                "domain_sha256": hashlib.sha256(json.dumps(domain_spec, sort_keys=True).encode()).hexdigest(),
                **{k: getattr(opts, k) for k in IDENTITY}}
    with files.claim(out):  # after the input checks, around everything that writes
        return _search(params_path, domain_path, data_dirs, out, opts, objective_fn, domain, params, domain_spec,
                       identity)


def _search(params_path, domain_path, data_dirs, out, opts, objective_fn, domain, params, domain_spec,
            identity) -> dict:
    """The claimed part of :func:`hyper_search`."""
    from basenji_tk.model.resume import input_prints

    data_dirs = [str(d) for d in data_dirs]
    resume = prepare_search_dir(out, identity, opts, {"params": params_path, "domain": domain_path,
                                                      "data_dirs": data_dirs})
    trial_log = TrialLog(os.path.join(out, TRIALS), domain)
    done = trial_log.read() if resume else []
    if not resume:
        _clear(out)
        shutil.copyfile(params_path, os.path.join(out, ".params.json.tmp"))
        os.replace(os.path.join(out, ".params.json.tmp"), os.path.join(out, "params.json"))
        write_json(os.path.join(out, "domain.json"), domain_spec)
        write_json(os.path.join(out, INPUTS), input_prints(params_path, data_dirs))
        write_json(os.path.join(out, SEARCH), {**identity, "data_dirs": [os.path.abspath(d) for d in data_dirs],
                                                "params": params_path, "domain": domain_path})
    trial_log.start()
    minimize = OBJECTIVES[opts.objective] == "minimize"
    if done:
        log.info(f"--restart: {len(done)} trials finished, {max(0, opts.n_trials - len(done))} to go")

    best = {"trial": None}

    def better(t):
        if not t.ok:
            return False
        b = best["trial"]
        return b is None or (t.objective < b.objective if minimize else t.objective > b.objective)

    for t in done:
        if better(t):
            best["trial"] = t
    from tqdm import tqdm

    bar = tqdm(total=opts.n_trials, initial=min(len(done), opts.n_trials), desc="trials", unit="trial",
               disable=not cli.show_progress(opts.quiet))

    def on_trial(t: Trial):
        if better(t):
            best["trial"] = t
            _keep_best(out, t)
        if not opts.keep_models:
            for name in MODEL_FILES:
                path = os.path.join(trial_dir(out, t.number), name)
                if os.path.exists(path):
                    os.remove(path)
        trial_log.append(t)  # last: a row means the trial, its best copy and its clean-up are finished
        log.info(f"trial {t.number} {t.status}: {opts.objective} {t.objective:.4g} ({t.seconds:.0f}s)"
                 + (f" {t.error}" if t.error else ""))
        bar.update(1)

    objective = objective_fn or TrainObjective(params, data_dirs, out, opts)
    trials = optimize(domain, objective, opts.n_trials, init=opts.init, seed=opts.seed, parallel=opts.parallel,
                      method=opts.method, minimize=minimize, exact=False, done=done, on_trial=on_trial)
    bar.close()
    plot_search(trials, domain, out, minimize, opts.objective)
    b = best["trial"]
    summary = {"trials": len(trials), "failed": sum(not t.ok for t in trials),
               "best": None if b is None else {"trial": b.number, "objective": b.objective, "values": b.values}}
    if b is None:
        log.warning(f"every trial failed; see {os.path.join(out, TRIALS)}")
    else:
        log.info(f"best: trial {b.number}, {opts.objective} {b.objective:.4g}, {json.dumps(b.values)}; "
                 f"model in {os.path.join(out, BEST_DIR)}")
    return summary
