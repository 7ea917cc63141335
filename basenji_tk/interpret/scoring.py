"""What ``sat_mut.py`` and ``saliency.py`` explain: one output of a trained model, scored by its kind.

A model may have several named outputs (:class:`basenji_tk.analysis.trained.TrainedModel`);
the scripts explain one (``--output NAME``; the only one by default), as a model of its own
on the same layers (:meth:`~basenji_tk.analysis.trained.TrainedModel.output_model`), and score
it by what the output is:

* ``binned`` tracks and ``profile`` outputs (positions x targets): the chosen targets summed
  over the bins ``--stat`` picks (:func:`basenji_tk.interpret.mutagenesis.score_bins`). A profile
  that is a softmax over its positions sums to 1 over all of them, so a statistic covering
  every position would score 0 for every change: :func:`scored_bins` refuses it and names the
  alternatives (fewer bins, the counts output, or the logits);
* ``total``, ``value`` and ``probability`` outputs (one number per target): the number itself.

``logit=True`` explains an output that ends in a sigmoid or softmax before that activation
(ChromDragoNN scores the logit): the gradient of a probability vanishes where the model is
sure, that of its logit does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.interpret.mutagenesis import score_bins

SQUASHING = ("sigmoid", "softmax")


@dataclass
class ScoredOutput:
    """The output a script explains: ``info`` (its :class:`~basenji_tk.analysis.trained.OutputInfo`),
    ``model`` (one output, on the model's own layers), ``targets`` ``[(index, id, label)]`` chosen,
    ``logit`` (explained before its sigmoid/softmax)."""

    info: object
    model: object
    targets: list
    logit: bool = False

    @property
    def positional(self) -> bool:
        return self.info.positional

    @property
    def target_index(self) -> np.ndarray:
        return np.array([t[0] for t in self.targets], dtype=np.int64)

    @property
    def distribution(self) -> bool:
        """A softmax over positions (sums to 1 over them), scored as probabilities."""
        return self.positional and self.info.activation == "softmax" and not self.logit

    def describe(self) -> str:
        what = "logit of " if self.logit else ""
        return f"{what}{self.info.name} ({self.info.kind})"


def choose_output(tm, output=None, targets=None, logit: bool = False, target_option: str = "--targets"
                  ) -> ScoredOutput:
    """The output ``output`` of ``tm`` (the only one when None) with its ``targets`` chosen
    (comma-separated indices or ids, None: all); with ``logit``, before its sigmoid/softmax (an
    error naming ``--logit`` for an output without one)."""
    info = tm.output(output)
    chosen = tm.select_targets(targets, info, target_option)
    if logit and info.activation not in SQUASHING:
        raise InputError(f"--logit: output '{info.name}' of {tm.model_path} does not end in a sigmoid or softmax "
                         f"(its final activation: {info.activation or 'linear'}), so it has no logit to explain")
    return ScoredOutput(info, tm.output_model(info.name, logits=logit), chosen, bool(logit))


def scored_bins(scored: ScoredOutput, stat: str, start: int, stop: int, position: int | None = None,
                tss_flank: int = 0) -> np.ndarray:
    """The output positions a score sums over for one window: ``--stat`` over ``[start, stop)``
    (window bp; ``position`` for ``tss``), none for an output without positions. An error when
    the output is a softmax over its positions and ``stat`` covers all of them."""
    info = scored.info
    if not scored.positional:
        return np.zeros(0, dtype=np.int64)
    bins = score_bins(stat, info.num_positions, info.resolution, info.offset, start, stop, position, tss_flank)
    if scored.distribution and len(bins) == info.num_positions:
        raise InputError(f"--stat {stat}: output '{info.name}' is a softmax over its {info.num_positions} positions, "
                         f"so its sum over all of them is always 1 and every score would be 0; score fewer positions "
                         f"(--stat tss, or --stat center over less than {info.num_positions * info.resolution} bp), "
                         "a counts output (--output), or, in saliency.py, its logits (--logit)")
    return bins
