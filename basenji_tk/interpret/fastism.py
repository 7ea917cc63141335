"""Exact fast in-silico saturation mutagenesis (ISM): every single-base mutant of one sequence.

Naive ISM runs the whole model on each mutant (3 per position). A single-base change
only alters a band of each convolution's output, so most of every positional
activation equals the reference sequence's; :class:`FastISM` computes only that band
(the idea of fastISM, Nair et al. 2022, Bioinformatics 38:2397) and splices it into
the reference activations, which are computed once per reference and cached.

How it works. The model's layer graph is walked once (:meth:`FastISM.__init__`). Each
positional tensor ``(batch, N, C)`` gets, for every possible mutated position ``p``
of the input, the range of its positions that may differ from the reference, and a
*window* of constant width ``W`` (per tensor) and start ``offset[p]`` covering it:

- sequence input: ``[p, p]``, ``W = 1``;
- Conv1D (kernel ``k``, dilation ``d``, stride ``s``, left padding ``pl`` of Keras'
  ``same``/``valid``/``causal`` rules) and Max/AveragePooling1D (``k`` = pool size,
  ``d = 1``): input range ``[lo, hi]`` touches outputs
  ``ceil((lo + pl - (k-1)d) / s) .. floor((hi + pl) / s)``; Cropping1D shifts it;
- per-position layers (BatchNormalization, Activation, Dense on positional tensors)
  keep the window; Dropout and the augmentation layers are the identity at inference;
- Add/Concatenate: the union of their inputs' ranges.

Windows are clamped inside ``[0, N)`` (so ``W <= N``; a window as long as the tensor is
the full computation). For a batch of mutants, each windowed layer computes its output
window only:

- pooling, cropping, and convolutions whose output window is not much wider than their
  input window (width-1 kernels, windows grown to the whole tensor) gather, per mutant,
  the input positions the output window needs, from the input window where it
  covers them and else from the cached reference (padded with the layer's padding value:
  0 for convolutions, -inf for max pooling), and apply the layer's weights with VALID
  padding; average pooling divides by the count of real (non-padding) inputs, as
  TensorFlow's ``same`` pooling does;
- other convolutions (most: ``W_in`` is well below ``W_out = W_in + (k-1)d``) add to the
  reference output window the convolution of the input change, multiplying only the
  ``W_in`` changed positions by the kernel (``W_in * k`` instead of ``W_out * k`` products);
- per-position layers, Add and Concatenate run on the windows (Add/Concatenate take each
  input over the output window).

At the first non-local layer (Flatten, Dense on vectors, ...) the window is spliced into
the full reference activation and the rest of that path runs in full, batched, through
the model's own layers; except that a Dense on a flattened window (optionally
concatenated with vector inputs, as in ``expression_fusion``) adds to its reference
output the window's change times the window's rows of its kernel.

Exactness: every value is computed from exactly the inputs the model would use, with
the model's weights; the change-based layers add a change to a reference value, so
results match ``model(mutants, training=False)`` to float rounding (~1e-6 relative
in float32, measured 2e-7 absolute on the benchmark models).
"""

import inspect
import weakref
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from basenji_tk.model import layers as bt_layers
from basenji_tk.errors import InputError
from basenji_tk.model.models import SEQUENCE

_IDENTITY = (keras.layers.Dropout, bt_layers.StochasticShift)  # the identity at inference
_POINTWISE = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.Dense)
_BANDED = (keras.layers.Conv1D, keras.layers.MaxPooling1D, keras.layers.AveragePooling1D, keras.layers.Cropping1D)
_MERGE = (keras.layers.Add, keras.layers.Concatenate)
_SUPPORTED = (_IDENTITY + _POINTWISE + _BANDED + _MERGE
              + (keras.layers.Flatten, bt_layers.StochasticReverseComplement, bt_layers.SwitchReverse))

# A convolution multiplies only its changed inputs (_DeltaConv) when their number is at most this
# fraction of its output window's (kernel products W_in * k against W_out * k for _Banded).
DELTA_CONV_RATIO = 0.75
# _DeltaConv sums the taps into output windows up to this wide by a matrix product, wider ones
# by a segment sum (the product's cost grows with the window).
ONE_HOT_WIDTH = 32

# A Dense layer on a flattened window multiplies only the window's rows of its kernel
# (_FlatDense), one product per window start present in the batch, when there are at most
# this many possible starts; else it runs in full.
MAX_FLAT_STARTS = 64

FLAG = "flag"  # state of StochasticReverseComplement's 'reversed' output: always False at inference
FULL = "full"  # state of a tensor computed in full for every mutant
CONST = "const"  # a tensor computed from the vector inputs only: the same for every mutant


class NotSupported(Exception):
    """The model holds a layer or a wiring that the fast path cannot reproduce exactly."""


# ----------------------------------------------------------------------------- analysis
@dataclass(eq=False)
class _Window:
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


def _band(lo, hi, n_out, kernel, dilation, stride, pad_left):
    """Output positions ``[lo', hi']`` of a strided/dilated window op touched by inputs ``[lo, hi]``.

    Output ``j`` reads inputs ``j*stride - pad_left + t*dilation``, ``t = 0..kernel-1``.
    Empty ranges (``lo > hi``) stay empty; results are clipped to ``[0, n_out)``."""
    empty = lo > hi
    out_lo = np.maximum(_ceil_div(lo + pad_left - (kernel - 1) * dilation, stride), 0)
    out_hi = np.minimum((hi + pad_left) // stride, n_out - 1)
    empty |= out_lo > out_hi
    return np.where(empty, n_out, out_lo), np.where(empty, n_out - 1, out_hi)


def _same_pad_left(n_in, n_out, kernel, dilation, stride):
    """Left padding of TensorFlow's ``SAME`` rule (the larger half goes right)."""
    total = max((n_out - 1) * stride + (kernel - 1) * dilation + 1 - n_in, 0)
    return total // 2


def _banded_geometry(op, n_in, n_out):
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
        return k, d, s, _same_pad_left(n_in, n_out, k, d, s)
    if op.padding == "valid":
        return k, d, s, 0
    if op.padding == "causal":
        return k, d, s, (k - 1) * d
    return None


def _graph_nodes(model):
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


def _takes_training(op) -> bool:
    return "training" in inspect.signature(op.call).parameters


def _call(op, takes_training, *args, **kwargs):
    """Call a layer at inference (``training=False`` when its call takes it)."""
    if takes_training:
        kwargs["training"] = False
    return op(*args, **kwargs)


# ----------------------------------------------------------------------------- batch run
# The plan is a list of steps, one per layer call: ``step(run)`` puts the call's outputs in
# ``run.env`` (windows or full values) while the batch function is traced.
class _Run:
    """One batch of mutants inside the traced function: values of every tensor so far.

    ``env[id(tensor)]``: ``(B, W, C)`` windows for windowed tensors, full values otherwise."""

    def __init__(self, plan, positions, bases, refs, others):
        self.plan = plan
        self.positions = positions  # (B,) int32
        self.bases = bases  # (B,) int32
        self.refs = refs  # tuple of cached (padded) reference activations
        self.others = others  # tuple of (D,) vector inputs
        self.env = {}
        self._offsets = {}

    def offset(self, window: _Window):
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
        if not isinstance(state, _Window):
            return self.env[tensor_id]
        zeros = tf.zeros_like(self.positions)
        return self.gather(tensor_id, zeros, state.length, self.plan._ref_index(tensor_id, 0, 0, 0.0), 0)


@dataclass
class _SequenceInput:
    out: int
    depth: int
    dtype: str

    def __call__(self, run):
        run.env[self.out] = tf.one_hot(run.bases, self.depth, dtype=self.dtype)[:, None, :]  # (B, 1, C)


@dataclass
class _VectorInput:
    out: int
    index: int  # position in run.others
    dtype: str

    def __call__(self, run):
        value = tf.cast(run.others[self.index], self.dtype)
        run.env[self.out] = tf.tile(value[None], [tf.shape(run.positions)[0], 1])


@dataclass
class _Alias:
    """Identity at inference: the output is the input (window or full)."""

    src: int
    out: int

    def __call__(self, run):
        run.env[self.out] = run.env[self.src]


@dataclass
class _Pointwise:
    """A per-position layer applied to the window only."""

    op: object
    takes_training: bool
    src: int
    out: int

    def __call__(self, run):
        run.env[self.out] = _call(self.op, self.takes_training, run.env[self.src])


@dataclass
class _Banded:
    """Conv1D, pooling or cropping on the window: gather input + halo, apply with VALID padding."""

    op: object
    src: int
    out: int
    out_window: _Window
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
class _DeltaConv:
    """Conv1D (linear, no activation) as reference output + the convolution of the input change.

    Only the ``W_in`` changed input positions are multiplied (``W_in * k`` kernel taps per
    mutant instead of ``W_out * k``): ``delta (B, W_in, Cin) @ kernel (Cin, k*Cout)`` gives every
    tap's contribution, which is summed into the output window where it lands
    (input ``i`` through tap ``t`` reaches output ``(i + pad_left - t*dilation) / stride``)."""

    op: object
    src: int
    out: int
    in_window: _Window
    out_window: _Window
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
class _FlatDense:
    """Dense on a flattened window (maybe concatenated with constant vectors): reference output +
    the window's change times the kernel rows of the window.

    Mutants are grouped by window start (``tf.dynamic_partition``); each group multiplies its
    ``(n, W*C)`` change by the ``W*C`` kernel rows at that start."""

    op: object
    src: int  # the windowed tensor that is flattened
    window: _Window
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
class _Merge:
    """Add or channel Concatenate of windows: each input taken over the output's window."""

    op: object
    srcs: list  # (tensor id, ref index or None when its window is the output's)
    out: int
    out_window: _Window

    def __call__(self, run):
        start = run.offset(self.out_window)
        parts = [run.env[src] if ref is None else run.gather(src, start, self.out_window.width, ref, 0)
                 for src, ref in self.srcs]
        run.env[self.out] = self.op(parts)


@dataclass
class _Full:
    """A layer run on full tensors (windowed inputs spliced into the reference first)."""

    node: object
    takes_training: bool

    def __call__(self, run):
        values = {id(t): run.full(id(t)) for t in self.node.input_tensors}
        args, kwargs = self.node.arguments.fill_in(values)
        outputs = _call(self.node.operation, self.takes_training, *args, **kwargs)
        for tensor, value in zip(self.node.outputs, tf.nest.flatten(outputs)):
            run.env[id(tensor)] = value


# ----------------------------------------------------------------------------- the engine
class FastISM:
    """Exact fast ISM for a basenji_tk model (built or loaded ``keras.Model``).

    ``FastISM(model).predict_mutants(reference, positions, bases)`` gives what
    ``model(mutant, training=False)`` gives for each single-base mutant of
    ``reference``; see the module docstring for the method.

    Attributes after analysis: ``seq_length`` (L), ``seq_depth`` (C), ``vector_inputs``
    (``(name, D, dtype)`` of each extra vector input), ``widths`` (``{layer name: (window
    width, output length)}`` of every windowed convolution, pooling and cropping layer).

    Build one per model and reuse it: the analysis is quick, but each instance traces its
    own functions (once per batch size). The cached reference activations (one reference
    at a time) take about the memory of one forward pass (~280 MB for a 131 kb Basenji)."""

    def __init__(self, model: keras.Model):
        if len(model.outputs) != 1:
            raise NotSupported(f"model '{model.name}' has {len(model.outputs)} outputs; FastISM handles one")
        self.model = model
        self._state = {}  # id(tensor) -> _Window | FULL | CONST | FLAG
        self._flat = {}  # id(tensor) -> (windowed tensor id, column): a flattened window, maybe with constants
        self._steps = []
        self._offset_arrays = []  # (L,) int32 window starts, deduplicated
        self._ref_requests = {}  # (tensor id, pad left, pad right, pad value) -> index
        self._nodes = _graph_nodes(model)
        self._uses = {}  # id(tensor) -> number of layer calls (and model outputs) that take it
        for t in [t for node in self._nodes for t in node.input_tensors] + list(model.outputs):
            self._uses[id(t)] = self._uses.get(id(t), 0) + 1
        self.vector_inputs = []
        self.widths = {}
        self._analyse()
        self._out_id = id(model.outputs[0])
        if self._state[self._out_id] == FLAG:
            raise NotSupported("the model's output is a reverse-complement flag")
        if isinstance(self._state[self._out_id], _Window):
            self._ref_index(self._out_id, 0, 0, 0.0)
        self._tables = [tf.constant(a, dtype=tf.int32) for a in self._offset_arrays]
        self._requests = sorted(self._ref_requests, key=self._ref_requests.get)
        self._batch_fn = tf.function(self._run_batch, autograph=False)
        self._reference_fn = tf.function(self._run_reference, autograph=False)
        self._cached = None  # (reference, others, refs, prediction)

    # ------------------------------------------------------------------ analysis
    def _table(self, offset: np.ndarray) -> int:
        offset = offset.astype(np.int32)
        for i, known in enumerate(self._offset_arrays):
            if np.array_equal(known, offset):
                return i
        self._offset_arrays.append(offset)
        return len(self._offset_arrays) - 1

    def _window(self, lo, hi, length) -> _Window:
        width = int(max(1, (hi - lo + 1).max()))
        width = min(width, length)
        offset = np.clip(lo, 0, length - width)
        return _Window(length, lo, hi, width, offset, self._table(offset))

    def _ref_index(self, tensor_id, pad_left, pad_right, pad_value) -> int:
        key = (tensor_id, int(pad_left), int(pad_right), float(pad_value))
        return self._ref_requests.setdefault(key, len(self._ref_requests))

    def _analyse(self):
        seq_inputs = []
        for node in self._nodes:
            op, outs = node.operation, node.outputs
            if node.is_input:
                tensor = outs[0]
                if len(tensor.shape) == 3:
                    seq_inputs.append(tensor)
                    self.seq_length, self.seq_depth = int(tensor.shape[1]), int(tensor.shape[2])
                    self._seq_dtype = tensor.dtype
                    pos = np.arange(self.seq_length)
                    self._state[id(tensor)] = self._window(pos, pos, self.seq_length)
                    self._steps.append(_SequenceInput(id(tensor), self.seq_depth, tensor.dtype))
                elif len(tensor.shape) == 2:
                    self._state[id(tensor)] = CONST
                    self._steps.append(_VectorInput(id(tensor), len(self.vector_inputs), tensor.dtype))
                    self.vector_inputs.append((op.name, int(tensor.shape[1]), tensor.dtype))
                else:
                    raise NotSupported(f"input '{op.name}' of shape {tuple(tensor.shape)}")
                continue
            if type(op) not in _SUPPORTED:
                raise NotSupported(f"{type(op).__name__} layer '{op.name}' is not supported by FastISM")
            self._plan_node(node)
        if len(seq_inputs) != 1:
            raise NotSupported(f"FastISM needs exactly one (batch, length, channels) sequence input, "
                               f"found {len(seq_inputs)}")

    def _plan_node(self, node):
        op = node.operation
        ins, outs = node.input_tensors, node.outputs
        states = [self._state[id(t)] for t in ins]
        windowed = [s for s in states if isinstance(s, _Window)]
        if FLAG in states and not isinstance(op, bt_layers.SwitchReverse):
            raise NotSupported(f"{type(op).__name__} layer '{op.name}' takes a reverse-complement flag")
        if isinstance(op, bt_layers.StochasticReverseComplement):
            self._state[id(outs[0])], self._state[id(outs[1])] = states[0], FLAG
            self._steps.append(_Alias(id(ins[0]), id(outs[0])))
            return
        if isinstance(op, bt_layers.SwitchReverse):
            if states[1] != FLAG:
                raise NotSupported(f"SwitchReverse layer '{op.name}' does not follow a StochasticReverseComplement")
            self._state[id(outs[0])] = states[0]
            self._steps.append(_Alias(id(ins[0]), id(outs[0])))
            return
        if isinstance(op, _IDENTITY):
            self._state[id(outs[0])] = states[0]
            self._steps.append(_Alias(id(ins[0]), id(outs[0])))
            return
        if windowed and len(windowed) == len(states):
            if self._plan_windowed(node, states):
                return
        if isinstance(op, keras.layers.Dense) and self._plan_flat_dense(node):
            return
        # Non-local layers (Flatten, Dense on vectors, ...) and anything else: in full.
        for t, s in zip(ins, states):
            if isinstance(s, _Window):
                self._ref_index(id(t), 0, 0, 0.0)
        for t in outs:
            self._state[id(t)] = CONST if all(s == CONST for s in states) else FULL
        self._steps.append(_Full(node, _takes_training(op)))
        self._note_flat(node, states)

    def _note_flat(self, node, states):
        """Remember Flatten of a window, and its Concatenate with constants, for _FlatDense.

        Their full values are still planned; the traced function drops them when unused."""
        op, ins, out = node.operation, node.input_tensors, node.outputs[0]
        if isinstance(op, keras.layers.Flatten) and isinstance(states[0], _Window):
            self._flat[id(out)] = (id(ins[0]), 0)
        elif isinstance(op, keras.layers.Concatenate) and op.axis in (-1, 1) and len(out.shape) == 2:
            flat = [i for i, t in enumerate(ins) if id(t) in self._flat and self._uses[id(t)] == 1]
            others_const = all(s == CONST for i, s in enumerate(states) if i not in flat)
            if len(flat) == 1 and others_const:
                src, column = self._flat[id(ins[flat[0]])]
                self._flat[id(out)] = (src, column + sum(int(t.shape[1]) for t in ins[:flat[0]]))

    def _plan_flat_dense(self, node) -> bool:
        op, src, out = node.operation, node.input_tensors[0], node.outputs[0]
        if (id(src) not in self._flat or self._uses[id(src)] != 1 or op.activation is not keras.activations.linear
                or getattr(op, "quantization_mode", None) or getattr(op, "lora_enabled", False)):
            return False
        windowed, column = self._flat[id(src)]
        window = self._state[windowed]
        if window.length - window.width + 1 > MAX_FLAT_STARTS:
            return False
        self._state[id(out)] = FULL
        self._steps.append(_FlatDense(op, windowed, window, column, self._ref_index(windowed, 0, 0, 0.0),
                                      self._ref_index(id(out), 0, 0, 0.0), id(out)))
        return True

    def _plan_windowed(self, node, states) -> bool:
        """Plan a layer whose inputs are all windowed; False when it must run in full."""
        op = node.operation
        src, out = node.input_tensors[0], node.outputs[0]
        if isinstance(op, _POINTWISE):
            if isinstance(op, keras.layers.BatchNormalization) and op.axis not in (-1, 2):
                return False
            self._state[id(out)] = states[0]
            self._steps.append(_Pointwise(op, _takes_training(op), id(src), id(out)))
            return True
        if isinstance(op, _MERGE):
            if isinstance(op, keras.layers.Concatenate) and op.axis not in (-1, 2):
                return False
            length = states[0].length
            big = np.iinfo(np.int64).max
            lo = np.min([np.where(s.lo <= s.hi, s.lo, big) for s in states], axis=0)
            hi = np.max([np.where(s.lo <= s.hi, s.hi, -1) for s in states], axis=0)
            empty = lo > hi
            window = self._window(np.where(empty, length, lo), np.where(empty, length - 1, hi), length)
            srcs = []
            for t, s in zip(node.input_tensors, states):
                same = s.table == window.table and s.width == window.width
                srcs.append((id(t), None if same else self._ref_index(id(t), 0, 0, 0.0)))
            self._state[id(out)] = window
            self._steps.append(_Merge(op, srcs, id(out), window))
            return True
        if isinstance(op, _BANDED):
            return self._plan_banded(op, src, out, states[0])
        return False

    def _plan_banded(self, op, src, out, state: _Window) -> bool:
        n_in, n_out = state.length, int(out.shape[1])
        geometry = _banded_geometry(op, n_in, n_out)
        if geometry is None:
            return False
        k, d, s, pl = geometry
        lo, hi = _band(state.lo, state.hi, n_out, k, d, s, pl)
        window = self._window(lo, hi, n_out)
        size = (window.width - 1) * s + (k - 1) * d + 1
        start = window.offset.astype(np.int64) * s - pl
        ref_left = max(0, -int(start.min()))
        ref_right = max(0, int((start + size).max()) - n_in)
        pad_value = float("-inf") if isinstance(op, keras.layers.MaxPooling1D) else 0.0
        needs_count = isinstance(op, keras.layers.AveragePooling1D) and (ref_left > 0 or ref_right > 0)
        self._state[id(out)] = window
        self.widths[op.name] = (window.width, n_out)
        if (isinstance(op, keras.layers.Conv1D) and op.activation is keras.activations.linear
                and state.width <= DELTA_CONV_RATIO * window.width):
            self._steps.append(_DeltaConv(op, id(src), id(out), state, window, k, d, s, pl,
                                          self._ref_index(id(src), 0, 0, 0.0), self._ref_index(id(out), 0, 0, 0.0)))
            return True
        self._steps.append(_Banded(op, id(src), id(out), window, k, d, s, pl, size,
                                   self._ref_index(id(src), ref_left, ref_right, pad_value), ref_left, n_in,
                                   needs_count))
        return True

    # ------------------------------------------------------------------ traced functions
    def _run_reference(self, sequence, others):
        """Reference activations for every request (``(N + pads, C)``; ``(U,)`` for a Dense
        output), and the prediction without the batch axis."""
        values = {}
        vector_index = {name: i for i, (name, _, _) in enumerate(self.vector_inputs)}
        for node in self._nodes:
            if node.is_input:
                tensor = node.outputs[0]
                name = node.operation.name
                values[id(tensor)] = (sequence if len(tensor.shape) == 3
                                      else tf.cast(others[vector_index[name]][None], tensor.dtype))
                continue
            args, kwargs = node.arguments.fill_in(values)
            outputs = _call(node.operation, _takes_training(node.operation), *args, **kwargs)
            for tensor, value in zip(node.outputs, tf.nest.flatten(outputs)):
                values[id(tensor)] = value
        refs = tuple(tf.pad(values[tid][0], [[left, right], [0, 0]], constant_values=tf.cast(pad, values[tid].dtype))
                     if left or right else values[tid][0] for tid, left, right, pad in self._requests)
        return refs, tf.cast(values[self._out_id][0], tf.float32)

    def _run_batch(self, positions, bases, refs, others):
        """``(B, *output_shape)`` float32 predictions for mutants ``positions`` -> ``bases``."""
        run = _Run(self, positions, bases, refs, others)
        for step in self._steps:
            step(run)
        return tf.cast(run.full(self._out_id), tf.float32)

    # ------------------------------------------------------------------ public
    def _inputs(self, reference, other_inputs):
        reference = np.asarray(reference, dtype=np.float32)
        if reference.shape != (self.seq_length, self.seq_depth):
            raise InputError(f"reference must have shape ({self.seq_length}, {self.seq_depth}), "
                             f"got {reference.shape}")
        other_inputs = other_inputs or {}
        others = []
        for name, length, _ in self.vector_inputs:
            if name not in other_inputs:
                raise InputError(f"other_inputs lacks '{name}' (the model's inputs: "
                                 f"{', '.join(n for n, _, _ in self.vector_inputs)})")
            value = np.asarray(other_inputs[name], dtype=np.float32).reshape(-1)
            if value.shape != (length,):
                raise InputError(f"other_inputs['{name}'] must have {length} values, got {value.size}")
            others.append(value)
        return reference, others

    def _reference(self, reference, other_inputs):
        """``(refs, prediction, vector inputs)`` for this reference, cached until it (or a
        vector input) changes."""
        reference, others = self._inputs(reference, other_inputs)
        cached = self._cached
        if (cached is None or not np.array_equal(cached[0], reference)
                or any(not np.array_equal(a, b) for a, b in zip(cached[1], others))):
            refs, prediction = self._reference_fn(tf.constant(reference[None], dtype=self._seq_dtype),
                                                  tuple(tf.constant(v) for v in others))
            self._cached = cached = (reference.copy(), [v.copy() for v in others], refs, prediction)
        return cached[2], cached[3], cached[1]

    def reference_prediction(self, reference, other_inputs=None) -> np.ndarray:
        """``model(reference, training=False)`` without the batch axis (float32, output_shape[1:])."""
        return self._reference(reference, other_inputs)[1].numpy()

    def predict_mutants(self, reference, positions, bases, other_inputs=None, batch_size=64) -> np.ndarray:
        """Predictions for single-base mutants of ``reference``.

        reference: ``(L, C)`` one-hot of one sequence; positions: ``(M,)`` ints in ``[0, L)``;
        bases: ``(M,)`` ints in ``[0, C)`` (A, C, G, T): mutant ``i`` has row ``positions[i]``
        replaced by ``e_{bases[i]}``; other_inputs: ``{name: (D,)}`` for the model's vector
        inputs, the same for every mutant. Returns ``(M, *model.output_shape[1:])`` float32.
        Mutants run ``batch_size`` at a time in position order (neighbours share window
        starts; the last batch padded), one traced function per batch size."""
        positions, bases = _check_mutants(positions, bases, self.seq_length, self.seq_depth)
        refs, _, others = self._reference(reference, other_inputs)
        others = tuple(tf.constant(v) for v in others)
        order = np.argsort(positions, kind="stable")
        out = np.empty((len(positions), *self.model.output_shape[1:]), dtype=np.float32)
        for begin, p, b in _batches(positions[order], bases[order], batch_size):
            y = self._batch_fn(tf.constant(p), tf.constant(b), refs, others).numpy()
            out[order[begin:begin + batch_size]] = y[:len(out) - begin]
        return out


def _check_mutants(positions, bases, length, depth):
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    bases = np.asarray(bases, dtype=np.int64).reshape(-1)
    if positions.shape != bases.shape:
        raise InputError(f"positions ({positions.size}) and bases ({bases.size}) differ in length")
    if positions.size and (positions.min() < 0 or positions.max() >= length):
        raise InputError(f"positions must lie in [0, {length})")
    if bases.size and (bases.min() < 0 or bases.max() >= depth):
        raise InputError(f"bases must lie in [0, {depth})")
    return positions.astype(np.int32), bases.astype(np.int32)


def _batches(positions, bases, batch_size):
    """``(start, positions, bases)`` per batch of ``batch_size``; the last one padded by repeating."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    for begin in range(0, len(positions), batch_size):
        p, b = positions[begin:begin + batch_size], bases[begin:begin + batch_size]
        pad = batch_size - len(p)
        if pad:
            p, b = np.concatenate([p, np.repeat(p[-1:], pad)]), np.concatenate([b, np.repeat(b[-1:], pad)])
        yield begin, p, b


# ----------------------------------------------------------------------------- naive ISM
_NAIVE_FNS = weakref.WeakKeyDictionary()


def _naive_fn(model):
    """A traced ``model(x, training=False)`` kept while the model lives (one trace per batch size)."""
    if model not in _NAIVE_FNS:
        held = weakref.ref(model)  # a strong reference here would keep the model alive forever
        _NAIVE_FNS[model] = tf.function(lambda x: held()(x, training=False), autograph=False)
    return _NAIVE_FNS[model]


def naive_predict_mutants(model, reference, positions, bases, other_inputs=None, batch_size=64) -> np.ndarray:
    """The plain way: build each full one-hot mutant and run the model on it, ``batch_size`` at a time.

    Same arguments and result as :meth:`FastISM.predict_mutants`: ``(M, *output_shape[1:])``
    float32. The reference for tests and benchmarks."""
    reference = np.asarray(reference, dtype=np.float32)
    length, depth = reference.shape
    positions, bases = _check_mutants(positions, bases, length, depth)
    named = isinstance(model.input, dict)
    others = {k: np.asarray(v, dtype=np.float32).reshape(1, -1) for k, v in (other_inputs or {}).items()}
    fn = _naive_fn(model)
    eye = np.eye(depth, dtype=np.float32)
    out = np.empty((len(positions), *model.output_shape[1:]), dtype=np.float32)
    for begin, p, b in _batches(positions, bases, batch_size):
        x = np.repeat(reference[None], len(p), axis=0)
        x[np.arange(len(p)), p] = eye[b]
        if named:
            x = {SEQUENCE: x, **{k: np.repeat(v, len(p), axis=0) for k, v in others.items()}}
        y = np.asarray(fn(x), dtype=np.float32)
        out[begin:begin + batch_size] = y[:len(out) - begin]
    return out
