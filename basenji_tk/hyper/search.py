"""Bayesian hyperparameter search with GPyOpt (behind ``bin/hyper_search.py``).

A *domain* names what to tune by its path in params.json::

    {"model.trunk[0].filters": {"type": "discrete", "values": [64, 128, 256]},
     "train.learning_rate":    {"type": "continuous", "range": [1e-4, 1e-2], "log": true},
     "model.trunk[2].dropout": {"type": "continuous", "range": [0.0, 0.5]},
     "train.optimizer":        {"type": "categorical", "values": ["adam", "sgd"]}}

Valid paths are ``train.<key>`` for every key of :data:`basenji_tk.model.params.TRAIN`,
``model.<key>`` for the scalar model keys, and ``model.trunk[i].<arg>`` /
``model.head[i].<arg>`` for every registered argument of block ``i``'s
function (:data:`basenji_tk.model.blocks.BLOCKS`), set in params.json or not. Every
candidate value (both ends of a range, every listed value) is checked by putting
it into params.json and checking that, so a wrong type or choice is an error
before anything runs. A continuous dimension of an integer argument (filters) is
rounded. ``"log": true`` (continuous or discrete, all values > 0) makes GPyOpt
search log10 of the value.

The search (:func:`optimize`) is independent of training: it calls an objective
``f(trial, values) -> float`` (or a dict with ``objective`` and ``epochs``) and
**minimises** it. Trials ``1..init`` are random points (a generator seeded with
``(seed, trial)``); later ones come from a Gaussian process with expected
improvement (GPyOpt; categorical dimensions one-hot, discrete ones searched over
their values). With ``parallel=K`` up to K trials run at once; when several
slots are free GPyOpt proposes a batch (``local_penalization``), and trials
still running enter the GP as "constant liar" observations at the best value so
far, so they are not proposed again.

**Failed trials** (an exception from the objective, a non-finite value) are kept
as ``status=failed`` with their error. For the GP they get a penalty recomputed
at every proposal: the worst finite value so far plus half the spread of the
finite values (plus 1 when all finite values are equal), and 1.0 while no trial
has succeeded (with no spread at all the next point is random). So the GP
learns "bad here" without a huge value flattening the rest of the surface.

:func:`hyper_search` runs the whole search of the script: each trial is a
subprocess (``python -m basenji_tk.hyper.search _trial TRIAL_DIR DATA_DIR...``) that
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

import contextlib
import csv
import difflib
import hashlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent import futures
from dataclasses import asdict, dataclass, field

import numpy as np

from basenji_tk import cli, files
from basenji_tk.errors import InputError
from basenji_tk.model.train import write_json

log = logging.getLogger("basenji_tk")

OBJECTIVES = {"valid_loss": "minimize", "valid_pearsonr": "maximize", "valid_auprc": "maximize"}
TYPES = ("continuous", "discrete", "categorical")
TRIALS = "trials.tsv"
SEARCH = "search.json"
BEST_DIR = "best"
RESULT = "result.json"
INPUTS = "inputs.json"
CONVERGENCE = "convergence.png"
PARAM_PLOT = "params.png"
FIXED_COLUMNS = ("objective", "epochs", "seconds", "status", "error")
MODEL_FILES = ("model_best.keras", "checkpoint.keras")
NO_FINITE_PENALTY = 1.0
PATH_RE = re.compile(r"^(train|model)\.(\w+)(?:\[(\d+)\]\.(\w+))?$")


# ----------------------------------------------------------------------------- the domain
@dataclass
class Dim:
    """One tuned parameter. ``values``: the choices (discrete, categorical); ``bounds``: (lo, hi) (continuous)."""

    path: str
    type: str
    values: list = field(default_factory=list)
    bounds: tuple = ()
    log: bool = False
    integer: bool = False  # a continuous dimension of an integer argument is rounded

    def _scale(self) -> tuple:
        """(low, high) of the raw coordinate (log10 for log dims) that maps to [0, 1]."""
        raw = self.bounds if self.type == "continuous" else (min(self.values), max(self.values))
        lo, hi = (math.log10(v) if self.log else float(v) for v in raw)
        return lo, (hi if hi > lo else lo + 1.0)

    def _enc(self, v) -> float:
        lo, hi = self._scale()
        return ((math.log10(v) if self.log else float(v)) - lo) / (hi - lo)

    def gpyopt(self) -> dict:
        """This dimension in GPyOpt's search space: continuous and discrete scaled to [0, 1] (in log10 for
        log dims) so that one kernel length scale fits all; categories as indices (GPyOpt one-hot encodes them)."""
        if self.type == "continuous":
            dom = (0.0, 1.0)
        elif self.type == "discrete":
            dom = tuple(self._enc(v) for v in self.values)
        else:
            dom = tuple(range(len(self.values)))
        return {"name": self.path, "type": self.type, "domain": dom}

    def encode(self, value) -> float:
        """A parameter value -> its coordinate in GPyOpt's space."""
        if self.type == "categorical":
            return float(self.values.index(value))
        return self._enc(value)

    def decode(self, x: float):
        """A coordinate in GPyOpt's space -> the parameter value (nearest choice for discrete/categorical)."""
        if self.type == "categorical":
            return self.values[int(np.clip(round(float(x)), 0, len(self.values) - 1))]
        if self.type == "discrete":
            return self.values[int(np.argmin([abs(self._enc(v) - float(x)) for v in self.values]))]
        lo, hi = self._scale()
        t = lo + float(np.clip(x, 0.0, 1.0)) * (hi - lo)
        v = float(min(max(10 ** t if self.log else t, self.bounds[0]), self.bounds[1]))
        return int(round(v)) if self.integer else v

    def sample(self, rng: np.random.Generator):
        """A uniform random value (uniform in log10 for log dims)."""
        if self.type != "continuous":
            return self.values[int(rng.integers(len(self.values)))]
        return self.decode(rng.uniform(0.0, 1.0))

    def cell(self, value) -> str:
        """The value as written in trials.tsv."""
        return value if isinstance(value, str) else json.dumps(value)

    def parse_cell(self, text: str):
        if self.type != "continuous":
            for v in self.values:
                if self.cell(v) == text:
                    return v
            raise ValueError(f"{text!r} is not one of the values of {self.path}")
        return int(round(float(text))) if self.integer else float(text)


@dataclass
class Domain:
    dims: list

    @property
    def paths(self) -> list:
        return [d.path for d in self.dims]

    def encode(self, values: dict) -> np.ndarray:
        """``{path: value}`` -> ``(n_dims,)`` coordinates in GPyOpt's space."""
        return np.array([d.encode(values[d.path]) for d in self.dims], dtype=float)

    def decode(self, x) -> dict:
        return {d.path: d.decode(v) for d, v in zip(self.dims, np.asarray(x, dtype=float).ravel())}

    def sample(self, rng) -> dict:
        return {d.path: d.sample(rng) for d in self.dims}

    def gpyopt(self) -> list:
        return [d.gpyopt() for d in self.dims]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_domain(spec, where: str = "domain") -> Domain:
    """Check the structure of a domain (a dict ``{path: {type, values|range, log}}``) and build it.

    Only the shape of each entry is checked here; :func:`check_domain` checks the
    paths and values against a params.json.
    """
    if not isinstance(spec, dict) or not spec:
        raise InputError(f"{where}: expected a non-empty JSON object {{\"path.in.params\": {{\"type\": ...}}}}")
    dims = []
    for path, entry in spec.items():
        at = f"{where}: '{path}'"
        if not isinstance(entry, dict):
            raise InputError(f"{at} must be an object with 'type' and 'values' or 'range'")
        kind = entry.get("type")
        if kind not in TYPES:
            raise InputError(f"{at}: type must be one of {', '.join(TYPES)}, got {json.dumps(kind)}")
        allowed = {"type", "log", "range" if kind == "continuous" else "values"}
        extra = sorted(set(entry) - allowed)
        if extra:
            raise InputError(f"{at}: unknown key '{extra[0]}' for a {kind} dimension; allowed: {', '.join(sorted(allowed))}")
        log_scale = entry.get("log", False)
        if not isinstance(log_scale, bool) or (log_scale and kind == "categorical"):
            raise InputError(f"{at}: 'log' must be true or false (and only for continuous or discrete)")
        if kind == "continuous":
            rng = entry.get("range")
            if not (isinstance(rng, list) and len(rng) == 2 and all(_is_number(v) for v in rng)):
                raise InputError(f"{at}: 'range' must be [low, high], two finite numbers; got {json.dumps(rng)}")
            lo, hi = rng
            if lo == hi:
                raise InputError(f"{at}: empty range [{lo}, {hi}]; use a discrete dimension or leave it out")
            if lo > hi:
                raise InputError(f"{at}: inverted range [{lo}, {hi}]; low must be below high")
            if log_scale and lo <= 0:
                raise InputError(f"{at}: a log range must be above 0, got [{lo}, {hi}]")
            dims.append(Dim(path, kind, bounds=(lo, hi), log=log_scale))
            continue
        values = entry.get("values")
        if not isinstance(values, list) or not values:
            raise InputError(f"{at}: 'values' must be a non-empty list")
        if len({json.dumps(v) for v in values}) < len(values):
            raise InputError(f"{at}: 'values' lists a value twice")
        if kind == "discrete" and not all(_is_number(v) for v in values):
            raise InputError(f"{at}: discrete values must be numbers (use categorical for others), "
                             f"got {json.dumps(values)}")
        if kind == "categorical" and not all(isinstance(v, (str, int, float, bool)) or v is None for v in values):
            raise InputError(f"{at}: categorical values must be strings, numbers, true/false or null")
        if any(isinstance(v, str) and re.search(r"[\t\n\r]", v) for v in values):
            raise InputError(f"{at}: values may not contain tabs or line breaks")
        if log_scale and min(values) <= 0:
            raise InputError(f"{at}: log values must all be above 0, got {json.dumps(values)}")
        dims.append(Dim(path, kind, values=list(values), log=log_scale))
    return Domain(dims)


def valid_paths(params: dict) -> list:
    """Every tunable path of a (raw or resolved) params dict: train keys, model scalars, block arguments."""
    from basenji_tk.model import blocks
    from basenji_tk.model.params import MODEL, TRAIN

    paths = [f"train.{k}" for k in TRAIN]
    paths += [f"model.{k}" for k in MODEL if k not in ("trunk", "head", "inputs")]
    model = params.get("model", {})
    for part in ("trunk", "head"):
        for i, spec in enumerate(model.get(part, [])):
            info = blocks.BLOCKS.get(spec.get("name")) if isinstance(spec, dict) else None
            if info is not None:
                paths += [f"model.{part}[{i}].{arg}" for arg in info.args]
    return paths


def set_value(params: dict, path: str, value) -> None:
    """Set ``path`` (``train.x``, ``model.x``, ``model.trunk[i].arg``) in ``params`` in place."""
    section, key, index, arg = PATH_RE.match(path).groups()
    if index is None:
        params.setdefault(section, {})[key] = value
    else:
        params[section][key][int(index)][arg] = value


def check_domain(domain: Domain, params: dict, where: str, params_path: str) -> None:
    """Check every path of ``domain`` against ``params`` (raw params.json) and every candidate value.

    A path that is not in ``params`` names the nearest valid ones. Each candidate
    (both ends of a range, each listed value) is put into a copy of ``params``
    and checked with the params schema. Sets ``Dim.integer`` for integer arguments.
    """
    from basenji_tk.model import blocks
    from basenji_tk.model.params import TRAIN, check_params

    paths = valid_paths(params)
    for dim in domain.dims:
        if dim.path not in paths:
            near = difflib.get_close_matches(dim.path, paths, n=3, cutoff=0.0)
            raise InputError(f"{where}: '{dim.path}' is not a parameter of {params_path}; nearest: {', '.join(near)}")
        section, key, index, arg = PATH_RE.match(dim.path).groups()
        if section == "train":
            kinds = TRAIN[key].types
        elif index is not None:
            kinds = (blocks.BLOCKS[params["model"][key][int(index)]["name"]].types[arg],)
        else:
            from basenji_tk.model.params import MODEL

            kinds = MODEL[key].types
        numeric = any(k in (int, float) for k in kinds)
        if dim.type != "categorical" and not numeric and None not in kinds:
            raise InputError(f"{where}: '{dim.path}' is not numeric; use a categorical dimension")
        dim.integer = dim.type == "continuous" and int in kinds and float not in kinds
        if dim.integer and dim.bounds[1] - dim.bounds[0] < 1:
            raise InputError(f"{where}: '{dim.path}' is an integer; range {list(dim.bounds)} holds fewer than two")
        candidates = dim.values if dim.type != "continuous" else [dim.decode(dim.encode(b)) for b in dim.bounds]
        for value in candidates:
            trial = json.loads(json.dumps(params))
            set_value(trial, dim.path, value)
            try:
                check_params(trial, params_path)
            except InputError as err:
                raise InputError(f"{where}: '{dim.path}' value {json.dumps(value)} does not fit: {err}") from None


def load_domain(domain_path, params_path) -> tuple:
    """Read and check domain.json against params.json; returns ``(Domain, raw params dict)``."""
    from basenji_tk.model.params import load_params, read_json

    domain_path, params_path = str(domain_path), str(params_path)
    load_params(params_path)  # the params themselves must be valid
    params = read_json(params_path)
    domain = parse_domain(read_json(domain_path, "domain"), domain_path)
    check_domain(domain, params, domain_path, params_path)
    return domain, params


# ----------------------------------------------------------------------------- trials and the log
@dataclass
class Trial:
    """One finished trial. ``objective``: the value in its own units (nan when failed)."""

    number: int
    values: dict
    objective: float = float("nan")
    epochs: int | str = ""
    seconds: float = 0.0
    status: str = "ok"
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and math.isfinite(self.objective)


class TrialLog:
    """trials.tsv: a header, then one full line per finished trial (written, flushed, fsynced)."""

    def __init__(self, path, domain: Domain):
        self.path, self.domain = str(path), domain
        self.columns = ["trial", *domain.paths, *FIXED_COLUMNS]

    def read(self) -> list:
        """The finished trials; a line without its newline (a kill while writing) is dropped from the file."""
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as fh:
            data = fh.read()
        if data and not data.endswith(b"\n"):
            keep = data[:data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as fh:
                fh.truncate(len(keep))
            data = keep
        lines = data.decode().splitlines()
        if not lines:
            return []
        if lines[0].split("\t") != self.columns:
            raise InputError(f"{self.path}: columns {lines[0].split(chr(9))} are not this search's {self.columns}")
        trials = []
        for n, line in enumerate(lines[1:], start=2):
            cells = line.split("\t")
            try:
                row = dict(zip(self.columns, cells, strict=True))
                values = {d.path: d.parse_cell(row[d.path]) for d in self.domain.dims}
                trials.append(Trial(int(row["trial"]), values, float(row["objective"] or "nan"),
                                    int(row["epochs"]) if row["epochs"] else "", float(row["seconds"] or 0),
                                    row["status"], row["error"]))
            except ValueError as err:
                raise InputError(f"{self.path}: line {n} is not a trial row ({err})") from None
        return trials

    def _append(self, text: str):
        with open(self.path, "a") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def start(self):
        if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
            self._append("\t".join(self.columns) + "\n")

    def append(self, t: Trial):
        error = re.sub(r"\s+", " ", t.error).strip()[:500]
        cells = [str(t.number), *(d.cell(t.values[d.path]) for d in self.domain.dims),
                 "" if not math.isfinite(t.objective) else repr(float(t.objective)), str(t.epochs),
                 f"{t.seconds:.1f}", t.status, error]
        self._append("\t".join(cells) + "\n")


# ----------------------------------------------------------------------------- proposals
def penalised(ys: np.ndarray) -> np.ndarray:
    """``(n,)`` values to minimise, nan for failed trials -> the same with failures penalised (see module doc)."""
    ys = np.asarray(ys, dtype=float).copy()
    finite = np.isfinite(ys)
    if not finite.any():
        ys[:] = NO_FINITE_PENALTY
        return ys
    worst, best = ys[finite].max(), ys[finite].min()
    ys[~finite] = worst + (0.5 * (worst - best) if worst > best else 1.0)
    return ys


def _gp_batch(domain: Domain, X: np.ndarray, Y: np.ndarray, batch: int, seed: int, exact: bool) -> np.ndarray:
    """``batch`` new points (``(batch, n_dims)`` GPyOpt coordinates) from a GP with expected improvement."""
    import GPyOpt

    np.random.seed(seed % (2 ** 32))  # GPyOpt and GPy draw restarts from numpy's global generator
    try:  # one BLAS thread: faster for these small matrices, and the same proposals on any machine
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(1)
    except ImportError:
        limits = contextlib.nullcontext()
    with limits, warnings.catch_warnings(), np.errstate(all="ignore"), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        bo = GPyOpt.methods.BayesianOptimization(
            f=None, domain=domain.gpyopt(), X=X, Y=Y.reshape(-1, 1), acquisition_type="EI", normalize_Y=True,
            exact_feval=exact, evaluator_type="local_penalization" if batch > 1 else "sequential",
            batch_size=batch, de_duplication=True, optimize_restarts=2, max_iters=200, ARD=True)
        return np.atleast_2d(bo.suggest_next_locations())


def propose(domain: Domain, done: list, running: list, numbers: list, *, init: int, seed: int,
            method: str = "gp", minimize: bool = True, exact: bool = False) -> list:
    """Points (``{path: value}``) for the trials ``numbers``.

    ``done``: finished :class:`Trial`; ``running``: values of trials still running.
    Trials numbered up to ``init`` (and all with ``method='random'``, or while the
    finished trials show no spread) are random with seed ``(seed, number)``; the
    rest are one GPyOpt batch.
    """
    out, gp = {}, []
    sign = 1.0 if minimize else -1.0
    ys = penalised([sign * t.objective if t.ok else float("nan") for t in done])
    for n in numbers:
        if method == "random" or n <= init or len(done) < 2 or np.ptp(ys) == 0:
            out[n] = domain.sample(np.random.default_rng([seed, n]))
        else:
            gp.append(n)
    if gp:
        X = np.array([domain.encode(t.values) for t in done] + [domain.encode(v) for v in running])
        Y = np.concatenate([ys, np.full(len(running), ys.min())])  # constant liar for running trials
        try:
            points = _gp_batch(domain, X, Y, len(gp), seed * 100_003 + gp[0], exact)
        except Exception as err:  # noqa: BLE001 - a GP that cannot be fitted should not end the search
            log.warning(f"GPyOpt could not propose ({type(err).__name__}: {err}); trying random points")
            points = [domain.encode(domain.sample(np.random.default_rng([seed, n]))) for n in gp]
        for n, x in zip(gp, points):
            out[n] = domain.decode(x)
    return [out[n] for n in numbers]


def optimize(domain: Domain, objective, n_trials: int, *, init: int = 5, seed: int = 0, parallel: int = 1,
             method: str = "gp", minimize: bool = True, exact: bool = False, done=(), on_trial=None,
             first_number: int = 1) -> list:
    """Run trials until ``n_trials`` are finished; returns every :class:`Trial`, in completion order.

    ``objective(number, values) -> float`` or ``{"objective": float, "epochs": int}``;
    an exception or a non-finite value marks the trial failed. ``done``: trials
    already finished (a restart); new trials take the lowest numbers not yet used,
    from ``first_number``. ``on_trial(trial)`` is called as each trial ends, in the
    calling thread. ``exact``: the objective is noise-free (GPyOpt's exact_feval).
    """
    trials = list(done)
    used = {t.number for t in trials}
    free_numbers = (n for n in range(first_number, 10 ** 9) if n not in used)
    running = {}  # future -> (number, values, start time)

    def call(number, values):
        result = objective(number, values)
        return result if isinstance(result, dict) else {"objective": result}

    with futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        while len(trials) + len(running) < n_trials or running:
            slots = min(parallel - len(running), n_trials - len(trials) - len(running))
            if slots > 0:
                numbers = [next(free_numbers) for _ in range(slots)]
                points = propose(domain, trials, [v for _, v, _ in running.values()], numbers, init=init,
                                 seed=seed, method=method, minimize=minimize, exact=exact)
                for number, values in zip(numbers, points):
                    log.info(f"trial {number}: {json.dumps(values)}")
                    running[pool.submit(call, number, values)] = (number, values, time.perf_counter())
            finished, _ = futures.wait(list(running), return_when=futures.FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: running[f][0]):
                number, values, t0 = running.pop(fut)
                trial = Trial(number, values, seconds=time.perf_counter() - t0)
                try:
                    result = fut.result()
                    trial.objective = float(result["objective"])
                    trial.epochs = result.get("epochs", "")
                    if not math.isfinite(trial.objective):
                        trial.status, trial.error = "failed", f"objective is {trial.objective}"
                except Exception as err:  # noqa: BLE001 - a failed trial is data, the search goes on
                    trial.objective, trial.status = float("nan"), "failed"
                    trial.error = f"{type(err).__name__}: {err}"
                    log.warning(f"trial {number} failed: {trial.error}")
                trials.append(trial)
                if on_trial:
                    on_trial(trial)
    return trials


def best_so_far(trials: list, minimize: bool = True) -> np.ndarray:
    """``(n,)`` the best objective among the first i+1 trials (by number); nan until one succeeds."""
    out, best = [], float("nan")
    for t in sorted(trials, key=lambda t: t.number):
        if t.ok and (math.isnan(best) or (t.objective < best if minimize else t.objective > best)):
            best = t.objective
        out.append(best)
    return np.array(out)


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


# ----------------------------------------------------------------------------- training trials
@dataclass
class Options:
    n_trials: int = 20
    init: int = 5
    seed: int = 0
    parallel: int = 1
    objective: str = "valid_pearsonr"
    epochs: int | None = None  # sets train.epochs of every trial
    steps: int | None = None  # sets train.steps_per_epoch of every trial
    method: str = "gp"  # or "random"
    keep_models: bool = False
    restart: bool = False
    force: bool = False
    quiet: bool = False


IDENTITY = ("objective", "epochs", "steps", "init", "seed", "method")  # options a restart may not change


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
        cmd = [sys.executable, "-m", "basenji_tk.hyper.search", "_trial", folder, "--objective", self.opts.objective,
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


# ----------------------------------------------------------------------------- the search folder
def _sha(path) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def prepare_search_dir(out: str, identity: dict, opts: Options, inputs: dict) -> bool:
    """Refuse a folder holding a different search; returns whether to continue one (restart).

    ``inputs``: ``{"params": path, "domain": path, "data_dirs": [...]}`` of this run, named
    in the errors when they differ from the interrupted search's."""
    from basenji_tk.model.params import read_json
    from basenji_tk.model.train import check_inputs

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
    from basenji_tk.model.train import check_datasets

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
    from basenji_tk.model.train import input_prints

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


# ----------------------------------------------------------------------------- trial subprocess
def _trial_main(argv):
    import argparse

    p = argparse.ArgumentParser(prog="python -m basenji_tk.hyper.search _trial")
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
    sys.exit("usage: python -m basenji_tk.hyper.search _trial TRIAL_DIR DATA_DIR... (run by hyper_search.py)")
