"""What a search is asked to do: :class:`Options` (``hyper_search.py``'s flags), the objectives
with the direction each is optimised in, and the options a ``--restart`` may not change."""

from dataclasses import dataclass

OBJECTIVES = {"valid_loss": "minimize", "valid_pearsonr": "maximize", "valid_auprc": "maximize"}


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
