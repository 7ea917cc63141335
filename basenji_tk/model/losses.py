"""Training losses, by the names params use (``train.loss``, or ``loss`` of each ``model.heads`` entry).

Shapes: ``y_true`` and ``y_pred`` are ``(batch, ...)``; each loss gives one value per
example, which Keras averages over the batch (weighted by ``sample_weight``, shape
``(batch,)``: ``sum(w * loss) / batch``).

Counts and values:

- ``poisson``: ``pred - y * log(pred)`` (counts; pair with a softplus ``final``).
- ``bce``: binary cross-entropy on probabilities (0/1 targets; pair with a sigmoid ``final``).
- ``mse``: mean squared error.
- ``rmse``: square root of the batch's (weighted) mean squared error. It is taken over
  the whole batch, not per example: per example, the RMSE of a single output would be
  its absolute error.
- ``masked_mse``: squared error over the bins whose target is present: NaN targets
  are ignored, and with ``mask_zero`` so are zeros (e.g. bins not measured).

Profiles, ``(batch, positions, channels)``, taken over axis 1 (positions) for each
channel, then averaged over channels. ``y_true`` holds observed counts per position;
``y_pred`` is what a ``softmax_positions`` head gives: probabilities over positions
(heads output probabilities, not logits). Predictions are renormalised over positions
(so non-negative predicted counts work too) and floored at ``1e-7`` before the log.
A channel with no observed counts contributes 0.

- ``multinomial_nll`` (BPNet, Avsec et al.): ``-sum_i y_i log p_i``, the multinomial
  negative log-likelihood of the observed counts without its constant term
  ``log n! - sum_i log y_i!`` (which no prediction changes); it weighs each profile by
  its total count ``n``.
- ``profile_ce`` (bpAI-TAC): cross-entropy ``-sum_i (y_i / n) log p_i`` between the
  observed distribution and the prediction: ``multinomial_nll / n``, so every profile
  weighs the same whatever its depth.
- ``jsd`` (bias models): Jensen-Shannon divergence, base 2 (in [0, 1]), between the
  observed distribution ``y / n`` and the prediction.

bpAI-TAC's composite ``(1 - lambda) * MSE(log counts) + lambda * profile loss`` is not a
loss here: it is two heads, a count head with ``loss: mse`` on log totals and weight
``1 - lambda``, and a profile head with ``loss: profile_ce`` (or ``multinomial_nll``) and
weight ``lambda``; Keras sums the weighted head losses.

All are standard Keras losses or registered here, so compiled models reload in safe mode.
"""

import keras
from keras import ops

from basenji_tk.errors import InputError

NAMES = ("poisson", "bce", "mse", "rmse", "masked_mse", "multinomial_nll", "profile_ce", "jsd")
PROFILE_LOSSES = ("multinomial_nll", "profile_ce", "jsd")
FLOOR = 1e-7  # the smallest probability a log sees


@keras.saving.register_keras_serializable(package="basenji_tk")
class MaskedMSE(keras.losses.Loss):
    """Mean squared error over present targets; per example, the mean over its present bins.

    ``y_true``, ``y_pred``: ``(batch, ...)``. An example with no present bin contributes 0."""

    def __init__(self, mask_zero: bool = False, name: str = "masked_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_zero = bool(mask_zero)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        present = ops.logical_not(ops.isnan(y_true))
        if self.mask_zero:
            present = ops.logical_and(present, ops.not_equal(y_true, 0))
        y_safe = ops.where(present, y_true, ops.zeros_like(y_true))
        sq = ops.where(present, ops.square(y_pred - y_safe), ops.zeros_like(y_pred))
        axes = list(range(1, len(y_pred.shape)))
        n = ops.sum(ops.cast(present, y_pred.dtype), axis=axes)
        return ops.sum(sq, axis=axes) / ops.maximum(n, 1.0)

    def get_config(self):
        return {**super().get_config(), "mask_zero": self.mask_zero}


@keras.saving.register_keras_serializable(package="basenji_tk")
class RootMeanSquaredError(keras.losses.Loss):
    """``sqrt`` of the batch's mean squared error (weighted as Keras weights any loss).

    ``call`` gives each example's mean squared error; ``__call__`` reduces over the batch
    and then takes the root, floored at ``1e-12`` inside so the gradient stays finite."""

    def __init__(self, name: str = "rmse", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, y_pred.dtype)
        axes = list(range(1, len(y_pred.shape)))
        sq = ops.square(y_pred - y_true)
        return ops.mean(sq, axis=axes) if axes else sq

    def __call__(self, y_true, y_pred, sample_weight=None):
        mse = super().__call__(y_true, y_pred, sample_weight=sample_weight)
        return ops.sqrt(ops.maximum(mse, 1e-12))


def _profiles(y_true, y_pred):
    """Observed counts, their totals and the normalised prediction of ``(batch, L, C)`` profiles."""
    if len(y_pred.shape) != 3:
        raise InputError(f"profile losses need (batch, positions, channels) outputs, got {tuple(y_pred.shape)}")
    y = ops.cast(y_true, "float32")
    p = ops.maximum(ops.cast(y_pred, "float32"), 0.0)
    p = p / ops.maximum(ops.sum(p, axis=1, keepdims=True), FLOOR)
    n = ops.sum(y, axis=1)  # (batch, C)
    return y, n, p


class _ProfileLoss(keras.losses.Loss):
    """Per example: the mean over channels of ``per_channel(y, n, p)`` (``(batch, C)``)."""

    def call(self, y_true, y_pred):
        y, n, p = _profiles(y_true, y_pred)
        return ops.mean(self.per_channel(y, n, p), axis=-1)


@keras.saving.register_keras_serializable(package="basenji_tk")
class MultinomialNLL(_ProfileLoss):
    """``-sum_i y_i log p_i`` over positions, per channel (the multinomial NLL less its constant)."""

    def __init__(self, name: str = "multinomial_nll", **kwargs):
        super().__init__(name=name, **kwargs)

    def per_channel(self, y, n, p):
        return -ops.sum(y * ops.log(ops.maximum(p, FLOOR)), axis=1)


@keras.saving.register_keras_serializable(package="basenji_tk")
class ProfileCrossEntropy(_ProfileLoss):
    """``-sum_i (y_i / n) log p_i`` over positions, per channel; 0 where ``n`` is 0."""

    def __init__(self, name: str = "profile_ce", **kwargs):
        super().__init__(name=name, **kwargs)

    def per_channel(self, y, n, p):
        nll = -ops.sum(y * ops.log(ops.maximum(p, FLOOR)), axis=1)
        return ops.where(n > 0, nll / ops.maximum(n, FLOOR), 0.0)


def jensen_shannon(y, n, p):
    """Base-2 Jensen-Shannon divergence over axis 1 between ``y / n`` and ``p``: ``(batch, C)``; 0 where ``n`` is 0."""
    q = y / ops.expand_dims(ops.maximum(n, FLOOR), 1)
    m = 0.5 * (p + q)

    def kl(a):  # sum a log2(a / m), with 0 log 0 = 0
        return ops.sum(ops.where(a > 0, a * (ops.log(ops.maximum(a, FLOOR)) - ops.log(ops.maximum(m, FLOOR))), 0.0),
                       axis=1)

    js = 0.5 * (kl(p) + kl(q)) / ops.log(ops.cast(2.0, p.dtype))
    return ops.where(n > 0, ops.maximum(js, 0.0), 0.0)


@keras.saving.register_keras_serializable(package="basenji_tk")
class JensenShannon(_ProfileLoss):
    """Base-2 Jensen-Shannon divergence between observed and predicted distributions, per channel."""

    def __init__(self, name: str = "jsd", **kwargs):
        super().__init__(name=name, **kwargs)

    def per_channel(self, y, n, p):
        return jensen_shannon(y, n, p)


def get_loss(name: str, mask_zero: bool = False) -> keras.losses.Loss:
    """The loss called ``name`` (one of :data:`NAMES`)."""
    if name == "poisson":
        return keras.losses.Poisson()
    if name == "bce":
        return keras.losses.BinaryCrossentropy()
    if name == "mse":
        return keras.losses.MeanSquaredError()
    if name == "rmse":
        return RootMeanSquaredError()
    if name == "masked_mse":
        return MaskedMSE(mask_zero=mask_zero)
    if name == "multinomial_nll":
        return MultinomialNLL()
    if name == "profile_ce":
        return ProfileCrossEntropy()
    if name == "jsd":
        return JensenShannon()
    raise InputError(f"unknown loss '{name}'; allowed: {', '.join(NAMES)}")
