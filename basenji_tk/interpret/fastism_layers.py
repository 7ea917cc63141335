"""How each layer of a model runs on the windows of :class:`~basenji_tk.interpret.fastism.FastISM`.

A single-base change at input position ``p`` can only alter a band of each positional
tensor ``(batch, N, C)``. :class:`Window` holds, per ``p``, that band and a window of
constant width ``W`` and start ``offset[p]`` covering it:

- sequence input: ``[p, p]``, ``W = 1``;
- Conv1D (kernel ``k``, dilation ``d``, stride ``s``, left padding ``pl`` of Keras'
  ``same``/``valid``/``causal`` rules) and Max/AveragePooling1D (``k`` = pool size,
  ``d = 1``): input range ``[lo, hi]`` touches outputs
  ``ceil((lo + pl - (k-1)d) / s) .. floor((hi + pl) / s)`` (:func:`band`); Cropping1D shifts it;
- per-position layers (BatchNormalization, Activation, Dense on positional tensors)
  keep the window; Dropout and the augmentation layers are the identity at inference;
- Add/Concatenate: the union of their inputs' ranges.

Windows are clamped inside ``[0, N)`` (so ``W <= N``; a window as long as the tensor is
the full computation). The engine's plan is a list of steps, one per layer call; for a
batch of mutants each windowed step computes its output window only:

- :class:`BandedStep` (pooling, cropping, and convolutions whose output window is not much
  wider than their input window: width-1 kernels, windows grown to the whole tensor) gathers,
  per mutant, the input positions the output window needs, from the input window where it
  covers them and else from the cached reference (padded with the layer's padding value:
  0 for convolutions, -inf for max pooling), and applies the layer's weights with VALID
  padding; average pooling divides by the count of real (non-padding) inputs, as
  TensorFlow's ``same`` pooling does;
- :class:`DeltaConvStep` (most other convolutions: ``W_in`` is well below
  ``W_out = W_in + (k-1)d``) adds to the reference output window the convolution of the
  input change, multiplying only the ``W_in`` changed positions by the kernel (``W_in * k``
  instead of ``W_out * k`` products);
- :class:`PointwiseStep`, :class:`MergeStep` (Add and Concatenate take each input over the
  output window) run on the windows;
- :class:`FullStep`: non-local layers (Flatten, Dense on vectors, ...) on the full tensors,
  the windows spliced into the reference first; :class:`FlatDenseStep`: a Dense on a
  flattened window (optionally concatenated with vector inputs) adds to its reference output
  the window's change times the window's rows of its kernel.
"""

import inspect
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from basenji_tk.model import layers as bt_layers

IDENTITY = (keras.layers.Dropout, keras.layers.Identity, bt_layers.StochasticShift)  # the identity at inference
POINTWISE = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.Dense)
BANDED = (keras.layers.Conv1D, keras.layers.MaxPooling1D, keras.layers.AveragePooling1D, keras.layers.Cropping1D)
MERGE = (keras.layers.Add, keras.layers.Concatenate)
# layers that are run in full (on the windows spliced into the reference): exact, not local
NON_LOCAL = (keras.layers.Flatten, bt_layers.SoftmaxPositions)
SUPPORTED = (IDENTITY + POINTWISE + BANDED + MERGE + NON_LOCAL
             + (bt_layers.StochasticReverseComplement, bt_layers.SwitchReverse))

# A convolution multiplies only its changed inputs (DeltaConvStep) when their number is at most this
# fraction of its output window's (kernel products W_in * k against W_out * k for BandedStep).
DELTA_CONV_RATIO = 0.75
# DeltaConvStep sums the taps into output windows up to this wide by a matrix product, wider ones
# by a segment sum (the product's cost grows with the window).
ONE_HOT_WIDTH = 32

# A Dense layer on a flattened window multiplies only the window's rows of its kernel
# (FlatDenseStep), one product per window start present in the batch, when there are at most
# this many possible starts; else it runs in full.
MAX_FLAT_STARTS = 64

FLAG = "flag"  # state of StochasticReverseComplement's 'reversed' output: always False at inference
FULL = "full"  # state of a tensor computed in full for every mutant
CONST = "const"  # a tensor computed from the fixed inputs only: the same for every mutant


class NotSupported(Exception):
    """The model holds a layer or a wiring that the fast path cannot reproduce exactly."""


# ----------------------------------------------------------------------------- analysis
@dataclass(eq=False)
class Window:
    """Where a positional tensor ``(batch, length, C)`` of a mutant may differ from the reference.

    Arrays are indexed by the mutated input position ``p`` (``(L,)`` each): ``lo[p]..hi[p]``
    (inclusive) may change (none when ``lo > hi``); the computed window is
    ``offset[p] .. offset[p] + width - 1``, inside ``[0, length)``."""

    length: int
    lo: np.ndarray
    hi: np.ndarray
    width: int
    offset: np.ndarray
    table: int  # index of ``offset`` among FastISM's offset tables


def _ceil_div(a, b):
    return -((-a) // b)


def band(lo, hi, n_out, kernel, dilation, stride, pad_left):
    """Output positions ``[lo', hi']`` of a strided/dilated window op touched by inputs ``[lo, hi]``.

    Output ``j`` reads inputs ``j*stride - pad_left + t*dilation``, ``t = 0..kernel-1``.
    Empty ranges (``lo > hi``) stay empty; results are clipped to ``[0, n_out)``."""
    empty = lo > hi
    out_lo = np.maximum(_ceil_div(lo + pad_left - (kernel - 1) * dilation, stride), 0)
    out_hi = np.minimum((hi + pad_left) // stride, n_out - 1)
    empty |= out_lo > out_hi
    return np.where(empty, n_out, out_lo), np.where(empty, n_out - 1, out_hi)


def same_pad_left(n_in, n_out, kernel, dilation, stride):
    """Left padding of TensorFlow's ``SAME`` rule (the larger half goes right)."""
    total = max((n_out - 1) * stride + (kernel - 1) * dilation + 1 - n_in, 0)
    return total // 2


def banded_geometry(op, n_in, n_out):
    """``(kernel, dilation, stride, pad_left)`` of a Conv1D, pooling or Cropping1D layer,
    or None when its configuration is not handled by windows (it then runs in full)."""
    if isinstance(op, keras.layers.Cropping1D):
        return 1, 1, 1, -op.cropping[0]
    if getattr(op, "data_format", "channels_last") != "channels_last":
        return None
    if isinstance(op, keras.layers.Conv1D):
        if op.groups != 1 or getattr(op, "quantization_mode", None):
            return None
        k, d, s = op.kernel_size[0], op.dilation_rate[0], op.strides[0]
    else:
        k, d, s = op.pool_size[0], 1, op.strides[0]
    if op.padding == "same":
        return k, d, s, same_pad_left(n_in, n_out, k, d, s)
    if op.padding == "valid":
        return k, d, s, 0
    if op.padding == "causal":
        return k, d, s, (k - 1) * d
    return None


def graph_nodes(model):
    """The model's nodes (layer calls), each after the nodes that make its inputs."""
    order, seen = [], set()
    stack = [(t, False) for t in model.outputs]
    while stack:
        tensor, expanded = stack.pop()
        op, node_index, _ = tensor._keras_history
        node = op._inbound_nodes[node_index]
        if id(node) in seen:
            continue
        if expanded:
            seen.add(id(node))
            order.append(node)
        else:
            stack.append((tensor, True))
            stack.extend((t, False) for t in node.input_tensors)
    return order


def accepts_training(op) -> bool:
    return "training" in inspect.signature(op.call).parameters


def call_at_inference(op, takes_training, *args, **kwargs):
    """Call a layer at inference (``training=False`` when its call takes it)."""
    if takes_training:
        kwargs["training"] = False
    return op(*args, **kwargs)


# ----------------------------------------------------------------------------- batch run
# The plan is a list of steps, one per layer call: ``step(run)`` puts the call's outputs in
# ``run.env`` (windows or full values) while the batch function is traced.
class Run:
    """One batch of mutants inside the traced function: values of every tensor so far.

    ``env[id(tensor)]``: ``(B, W, C)`` windows for windowed tensors, full values otherwise."""

    def __init__(self, plan, positions, bases, refs, others):
        self.plan = plan
        self.positions = positions  # (B,) int32
        self.bases = bases  # (B,) int32
        self.refs = refs  # tuple of cached (padded) reference activations
        self.others = others  # tuple of the fixed inputs, without the batch axis
        self.env = {}
        self._offsets = {}

    def offset(self, window: Window):
        """``(B,)`` window starts of ``window`` for this batch's mutants."""
        if window.table not in self._offsets:
            self._offsets[window.table] = tf.gather(self.plan._tables[window.table], self.positions)
        return self._offsets[window.table]

    def gather(self, tensor_id, start, size, ref_index, ref_left):
        """``(B, size, C)``: the mutant tensor at positions ``start + [0, size)`` (``start`` (B,)).

        Taken from the mutant's window where it covers them, else from the cached
        reference ``refs[ref_index]`` (padded by ``ref_left`` positions on the left)."""
        window = self.plan._state[tensor_id]
        values, width = self.env[tensor_id], window.width
        idx = start[:, None] + tf.range(size)[None, :]  # (B, size)
        from_ref = tf.gather(self.refs[ref_index], idx + ref_left)
        rel = idx - self.offset(window)[:, None]
        inside = tf.logical_and(rel >= 0, rel < width)
        from_window = tf.gather(values, tf.clip_by_value(rel, 0, width - 1), batch_dims=1)
        return tf.where(inside[:, :, None], from_window, from_ref)

    def full(self, tensor_id):
        """The full ``(B, N, C)`` mutant tensor (its window spliced into the reference)."""
        state = self.plan._state[tensor_id]
        if not isinstance(state, Window):
            return self.env[tensor_id]
        zeros = tf.zeros_like(self.positions)
        return self.gather(tensor_id, zeros, state.length, self.plan._ref_index(tensor_id, 0, 0, 0.0), 0)


@dataclass
class SequenceStep:
    out: int
    depth: int
    dtype: str

    def __call__(self, run):
        run.env[self.out] = tf.one_hot(run.bases, self.depth, dtype=self.dtype)[:, None, :]  # (B, 1, C)


@dataclass
class FixedInputStep:
    """An input other than the mutated sequence (a vector or a signal): the same for every mutant."""

    out: int
    index: int  # position in run.others
    dtype: str

    def __call__(self, run):
        value = tf.cast(run.others[self.index], self.dtype)
        run.env[self.out] = tf.tile(value[None], [tf.shape(run.positions)[0]] + [1] * len(value.shape))


@dataclass
class AliasStep:
    """Identity at inference: the output is the input (window or full)."""

    src: int
    out: int

    def __call__(self, run):
        run.env[self.out] = run.env[self.src]


@dataclass
class PointwiseStep:
    """A per-position layer applied to the window only."""

    op: object
    takes_training: bool
    src: int
    out: int

    def __call__(self, run):
        run.env[self.out] = call_at_inference(self.op, self.takes_training, run.env[self.src])


@dataclass
class BandedStep:
    """Conv1D, pooling or cropping on the window: gather input + halo, apply with VALID padding."""

    op: object
    src: int
    out: int
    out_window: Window
    kernel: int
    dilation: int
    stride: int
    pad_left: int
    size: int  # input positions gathered per mutant
    ref_index: int
    ref_left: int
    n_in: int
    needs_count: bool  # average pooling over padding: divide by the real inputs only

    def __call__(self, run):
        start = run.offset(self.out_window) * self.stride - self.pad_left
        x = run.gather(self.src, start, self.size, self.ref_index, self.ref_left)
        op = self.op
        if isinstance(op, keras.layers.Cropping1D):
            y = x
        elif isinstance(op, keras.layers.Conv1D):
            y = ops.conv(ops.cast(x, op.compute_dtype), ops.cast(op.kernel, op.compute_dtype), strides=self.stride,
                         padding="valid", dilation_rate=self.dilation, data_format="channels_last")
            if op.use_bias:
                y = y + ops.cast(op.bias, op.compute_dtype)
            y = op.activation(y)
        elif isinstance(op, keras.layers.MaxPooling1D):
            y = ops.max_pool(x, self.kernel, self.stride, padding="valid", data_format="channels_last")
        else:
            y = ops.average_pool(x, self.kernel, self.stride, padding="valid", data_format="channels_last")
            if self.needs_count:
                idx = start[:, None] + tf.range(self.size)[None, :]
                real = tf.cast(tf.logical_and(idx >= 0, idx < self.n_in), x.dtype)[:, :, None]
                y = y / ops.average_pool(real, self.kernel, self.stride, padding="valid", data_format="channels_last")
        run.env[self.out] = y


@dataclass
class DeltaConvStep:
    """Conv1D (linear, no activation) as reference output + the convolution of the input change.

    Only the ``W_in`` changed input positions are multiplied (``W_in * k`` kernel taps per
    mutant instead of ``W_out * k``): ``delta (B, W_in, Cin) @ kernel (Cin, k*Cout)`` gives every
    tap's contribution, which is summed into the output window where it lands
    (input ``i`` through tap ``t`` reaches output ``(i + pad_left - t*dilation) / stride``)."""

    op: object
    src: int
    out: int
    in_window: Window
    out_window: Window
    kernel: int
    dilation: int
    stride: int
    pad_left: int
    ref_in: int  # cached reference input (unpadded)
    ref_out: int  # cached reference output (unpadded)

    def __call__(self, run):
        op, w_in, w_out, k = self.op, self.in_window.width, self.out_window.width, self.kernel
        a, o = run.offset(self.in_window), run.offset(self.out_window)
        x = run.env[self.src]
        batch, c_in, c_out = tf.shape(x)[0], x.shape[2], op.filters
        delta = ops.cast(x - tf.gather(run.refs[self.ref_in], a[:, None] + tf.range(w_in)[None, :]), op.compute_dtype)
        kernel = tf.reshape(tf.transpose(ops.cast(op.kernel, op.compute_dtype), [1, 0, 2]), [c_in, k * c_out])
        taps = tf.reshape(tf.matmul(tf.reshape(delta, [-1, c_in]), kernel), [batch, w_in * k, c_out])
        # output position reached by (input i, tap t), relative to the output window
        reach = (a[:, None, None] + tf.range(w_in)[None, :, None] + self.pad_left
                 - tf.range(k)[None, None, :] * self.dilation)
        rel = tf.math.floordiv(reach, self.stride) - o[:, None, None]
        lands = (tf.math.floormod(reach, self.stride) == 0) & (rel >= 0) & (rel < w_out)
        rel = tf.reshape(tf.where(lands, rel, -1), [batch, w_in * k])
        if w_out <= ONE_HOT_WIDTH:  # sum by a (w_out, w_in*k) 0/1 matrix per mutant
            change = tf.matmul(tf.one_hot(rel, w_out, dtype=taps.dtype), taps, transpose_a=True)
        else:
            ids = tf.where(rel >= 0, rel + tf.range(batch)[:, None] * w_out, -1)
            change = tf.reshape(tf.math.unsorted_segment_sum(taps, ids, batch * w_out), [batch, w_out, c_out])
        base = tf.gather(run.refs[self.ref_out], o[:, None] + tf.range(w_out)[None, :])
        run.env[self.out] = base + change


@dataclass
class FlatDenseStep:
    """Dense on a flattened window (maybe concatenated with constant vectors): reference output +
    the window's change times the kernel rows of the window.

    Mutants are grouped by window start (``tf.dynamic_partition``); each group multiplies its
    ``(n, W*C)`` change by the ``W*C`` kernel rows at that start."""

    op: object
    src: int  # the windowed tensor that is flattened
    window: Window
    column: int  # the Dense input column of the flattened tensor's first value
    ref_in: int  # cached reference of ``src`` (unpadded)
    ref_out: int  # cached reference Dense output (U,)
    out: int

    def __call__(self, run):
        op, width, starts = self.op, self.window.width, self.window.length - self.window.width + 1
        o = run.offset(self.window)
        x = run.env[self.src]
        channels, batch = x.shape[2], tf.shape(x)[0]
        delta = x - tf.gather(run.refs[self.ref_in], o[:, None] + tf.range(width)[None, :])
        delta = ops.cast(tf.reshape(delta, [batch, width * channels]), op.compute_dtype)
        kernel = ops.cast(op.kernel, op.compute_dtype)
        groups = tf.dynamic_partition(delta, o, starts)
        rows = tf.dynamic_partition(tf.range(batch), o, starts)
        units = kernel.shape[1]

        def product(group, first):  # only starts present in the batch slice (copy) their rows
            return tf.cond(tf.shape(group)[0] > 0,
                           lambda: tf.matmul(group, kernel[first:first + width * channels]),
                           lambda: tf.zeros([0, units], kernel.dtype))

        products = [product(g, self.column + v * channels) for v, g in enumerate(groups)]
        change = tf.dynamic_stitch(rows, products)
        run.env[self.out] = ops.cast(run.refs[self.ref_out], op.compute_dtype)[None, :] + change


@dataclass
class MergeStep:
    """Add or channel Concatenate of windows: each input taken over the output's window."""

    op: object
    srcs: list  # (tensor id, ref index or None when its window is the output's)
    out: int
    out_window: Window

    def __call__(self, run):
        start = run.offset(self.out_window)
        parts = [run.env[src] if ref is None else run.gather(src, start, self.out_window.width, ref, 0)
                 for src, ref in self.srcs]
        run.env[self.out] = self.op(parts)


@dataclass
class FullStep:
    """A layer run on full tensors (windowed inputs spliced into the reference first)."""

    node: object
    takes_training: bool

    def __call__(self, run):
        values = {id(t): run.full(id(t)) for t in self.node.input_tensors}
        args, kwargs = self.node.arguments.fill_in(values)
        outputs = call_at_inference(self.node.operation, self.takes_training, *args, **kwargs)
        for tensor, value in zip(self.node.outputs, tf.nest.flatten(outputs)):
            run.env[id(tensor)] = value
