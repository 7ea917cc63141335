"""Bayesian hyperparameter search over a params file's paths (GPyOpt), as ``hyper_search.py``
runs it.

Names that ``basenji_tk.hyper`` held when it was one module still resolve here, with a
DeprecationWarning naming their new module.
"""

from basenji_tk import moved_attribute

# the modules that took over the flat 0.1 module's names (searched in this order)
_FORMER = ("search",)


def __getattr__(name):
    return moved_attribute(__name__, _FORMER, name)
