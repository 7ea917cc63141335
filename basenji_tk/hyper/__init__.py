"""Bayesian hyperparameter search over a params file's paths (GPyOpt), as ``hyper_search.py``
runs it.

    domain.py     the search space: Dim, Domain, load_domain (paths of params.json, checked values)
    trials.py     Trial and TrialLog (trials.tsv)
    optimizer.py  random and GPyOpt proposals, failure penalties, the parallel trial loop (optimize)
    options.py    Options, the objectives, what a restart may not change
    objective.py  TrainObjective: each trial trains in a subprocess (python -m basenji_tk.hyper.objective)
    search.py     hyper_search: the search folder, restart, best/, the plots

Names that ``basenji_tk.hyper`` held when it was one module still resolve here, with a
DeprecationWarning naming their new module.
"""

from basenji_tk import moved_attribute

# the modules that took over the flat 0.1 module's names (searched in this order)
_FORMER = ("domain", "trials", "optimizer", "options", "objective", "search")


def __getattr__(name):
    return moved_attribute(__name__, _FORMER, name)
