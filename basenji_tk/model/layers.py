"""Custom Keras layers: sequence augmentation and the pieces of prediction ensembles.

Every layer here is registered with Keras (package ``basenji_tk``) and round-trips
through ``get_config``, so a saved ``model.keras`` reloads with
``keras.saving.load_model(path, safe_mode=True)`` once :mod:`basenji_tk` is
imported; no Lambda layers, no user code.

Sequences are one-hot ``(batch, length, 4)`` in the order A, C, G, T, so reversing
both the length and the channel axis gives the reverse complement (N, all zeros,
stays N). Positional outputs are ``(batch, bins, targets)``; their bins run in the
opposite direction on the reverse strand.

Training augmentation (Basenji's design): :class:`StochasticReverseComplement`
flips the whole batch with probability 1/2 and passes the decision on, so that
:class:`SwitchReverse` can flip the predictions back to the forward orientation;
the loss then compares like with like. :class:`StochasticShift` moves the batch
by a random number of bases. Both are the identity at inference time.
"""

import keras
from keras import ops

PACKAGE = "basenji_tk"


def _reverse_complement(seq):
    return ops.flip(ops.flip(seq, axis=1), axis=2)


def _shift(seq, shift, max_shift):
    """Move ``(batch, L, C)`` sequences by ``shift`` bases (right when positive), N-padded.

    ``max_shift`` bounds ``|shift|`` (a Python int, so the padding is static)."""
    length = ops.shape(seq)[1]
    padded = ops.pad(seq, [[0, 0], [max_shift, max_shift], [0, 0]])
    start = max_shift - shift
    return ops.slice(padded, ops.stack([0, start, 0]), ops.stack([ops.shape(seq)[0], length, ops.shape(seq)[2]]))


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReverseComplement(keras.layers.Layer):
    """Reverse complement of one-hot ``(batch, length, 4)`` sequences, always."""

    def call(self, seq):
        return _reverse_complement(seq)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ReverseBins(keras.layers.Layer):
    """Reverse positional outputs ``(batch, bins, targets)`` along the bins, always."""

    def call(self, x):
        return ops.flip(x, axis=1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ShiftSequence(keras.layers.Layer):
    """Shift ``(batch, length, 4)`` sequences by a fixed ``shift`` bases (right if > 0), N-padded."""

    def __init__(self, shift: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.shift = int(shift)

    def call(self, seq):
        if self.shift == 0:
            return seq
        return _shift(seq, self.shift, abs(self.shift))

    def get_config(self):
        return {**super().get_config(), "shift": self.shift}


@keras.saving.register_keras_serializable(package=PACKAGE)
class StochasticReverseComplement(keras.layers.Layer):
    """Training only: reverse-complement the batch with probability 1/2.

    Returns ``[sequence, reversed]`` where ``reversed`` is a boolean scalar that
    :class:`SwitchReverse` uses to flip the predictions back. At inference the
    sequence passes unchanged and ``reversed`` is False.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, seq, training=False):
        if not training:
            return [seq, ops.convert_to_tensor(False)]
        flip = keras.random.uniform((), seed=self.seed_generator) < 0.5
        return [ops.cond(flip, lambda: _reverse_complement(seq), lambda: seq), flip]

    def compute_output_spec(self, seq, training=False):
        return [keras.KerasTensor(seq.shape, dtype=seq.dtype), keras.KerasTensor((), dtype="bool")]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SwitchReverse(keras.layers.Layer):
    """``[x, reversed]`` -> ``x`` with its bins reversed when ``reversed`` is True.

    Outputs without a bin axis (``(batch, targets)``) have no orientation and pass unchanged.
    """

    def call(self, inputs):
        x, flip = inputs
        if len(x.shape) < 3:
            return x
        return ops.cond(flip, lambda: ops.flip(x, axis=1), lambda: x)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class StochasticShift(keras.layers.Layer):
    """Training only: shift the batch by a uniform random ``[-max_shift, max_shift]`` bases (N-padded)."""

    def __init__(self, max_shift: int = 0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.max_shift = int(max_shift)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, seq, training=False):
        if not training or self.max_shift == 0:
            return seq
        shift = keras.random.randint((), -self.max_shift, self.max_shift + 1, seed=self.seed_generator)
        return _shift(seq, shift, self.max_shift)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "max_shift": self.max_shift, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SoftmaxPositions(keras.layers.Layer):
    """Softmax over positions (axis 1) per channel, optionally after adding a bias to the logits.

    Input: logits ``(batch, L, C)``, or ``[logits, bias]`` with ``bias`` of shape
    ``(batch, L, 1)`` (broadcast over channels) or ``(batch, L, C)``. With ``bin_size``
    ``b`` > 1 the biased logits are summed over each run of ``b`` positions first.
    Output: ``(batch, L / b, C)`` float32 probabilities, each channel summing to 1 over
    positions. Computed in float32 (also under mixed precision)."""

    def __init__(self, bin_size: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.bin_size = int(bin_size)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            logits, bias = inputs
            logits = ops.cast(logits, "float32") + ops.cast(bias, "float32")
        else:
            logits = ops.cast(inputs, "float32")
        if self.bin_size > 1:
            shape = ops.shape(logits)
            logits = ops.sum(ops.reshape(logits, (shape[0], shape[1] // self.bin_size, self.bin_size, shape[2])),
                             axis=2)
        return ops.softmax(logits, axis=1)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0],
                                                                                     (list, tuple)) else input_shape
        length = None if shape[1] is None else shape[1] // self.bin_size
        return (shape[0], length, shape[2])

    def get_config(self):
        return {**super().get_config(), "bin_size": self.bin_size}
