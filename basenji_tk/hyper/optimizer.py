"""The optimiser: random and GPyOpt proposals, and the loop that runs trials and collects them.

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
"""

import contextlib
import json
import logging
import math
import sys
import time
import warnings
from concurrent import futures

import numpy as np

from basenji_tk.hyper.domain import Domain
from basenji_tk.hyper.trials import Trial

log = logging.getLogger("basenji_tk")

NO_FINITE_PENALTY = 1.0


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
