"""Training losses, by the names ``params["train"]["loss"]`` uses.

- ``poisson``: ``pred - y * log(pred)`` (counts; pair with a softplus ``final``).
- ``bce``: binary cross-entropy (0/1 targets; pair with a sigmoid ``final``).
- ``mse``: mean squared error.
- ``masked_mse``: squared error over the bins whose target is present: NaN targets
  are ignored, and with ``mask_zero`` so are zeros (e.g. bins not measured).

All are standard Keras losses or registered here, so compiled models reload in safe mode.
"""

import keras
from keras import ops

from basenji_tk.errors import InputError

NAMES = ("poisson", "bce", "mse", "masked_mse")


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


def get_loss(name: str, mask_zero: bool = False) -> keras.losses.Loss:
    """The loss called ``name`` (one of :data:`NAMES`)."""
    if name == "poisson":
        return keras.losses.Poisson()
    if name == "bce":
        return keras.losses.BinaryCrossentropy()
    if name == "mse":
        return keras.losses.MeanSquaredError()
    if name == "masked_mse":
        return MaskedMSE(mask_zero=mask_zero)
    raise InputError(f"unknown loss '{name}'; allowed: {', '.join(NAMES)}")
