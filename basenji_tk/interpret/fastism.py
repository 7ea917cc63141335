"""Exact fast in-silico saturation mutagenesis (ISM): every single-base mutant of one sequence.

Naive ISM (:func:`basenji_tk.interpret.mutagenesis.naive_predict_mutants`) runs the whole
model on each mutant (3 per position). A single-base change only alters a band of each
convolution's output, so most of every positional activation equals the reference
sequence's; :class:`FastISM` computes only that band (the idea of fastISM, Nair et al. 2022,
Bioinformatics 38:2397) and splices it into the reference activations, which are computed
once per reference and cached.

How it works. The model's layer graph is walked once (:meth:`FastISM.__init__`): each
positional tensor gets, for every possible mutated input position, the window of its
positions that may differ from the reference, and each layer call becomes one step of a
plan that computes only its output window (the rules per layer are in
:mod:`basenji_tk.interpret.fastism_layers`). At the first non-local layer (Flatten, Dense
on vectors, ...) the window is spliced into the full reference activation and the rest of
that path runs in full, batched, through the model's own layers; except that a Dense on a
flattened window (optionally concatenated with vector inputs, as in ``expression_fusion``)
adds to its reference output the window's change times the window's rows of its kernel.

Exactness: every value is computed from exactly the inputs the model would use, with
the model's weights; the change-based layers add a change to a reference value, so
results match ``model(mutants, training=False)`` to float rounding (~1e-6 relative
in float32, measured 2e-7 absolute on the benchmark models).
"""

import keras
import numpy as np
import tensorflow as tf

from basenji_tk.model import layers as bt_layers
from basenji_tk.errors import InputError
from basenji_tk.interpret.fastism_layers import (
    BANDED, CONST, DELTA_CONV_RATIO, FLAG, FULL, IDENTITY, MAX_FLAT_STARTS, MERGE, POINTWISE, SUPPORTED,
    AliasStep, BandedStep, DeltaConvStep, FlatDenseStep, FullStep, MergeStep, NotSupported, PointwiseStep, Run,
    SequenceStep, FixedInputStep, Window, accepts_training, band, banded_geometry, call_at_inference, graph_nodes)
from basenji_tk.interpret.mutagenesis import check_mutants, mutant_batches


# ----------------------------------------------------------------------------- the engine
class FastISM:
    """Exact fast ISM for a basenji_tk model (built or loaded ``keras.Model``).

    ``FastISM(model).predict_mutants(reference, positions, bases)`` gives what
    ``model(mutant, training=False)`` gives for each single-base mutant of
    ``reference``; see the module docstring for the method.

    ``sequence``: the name of the input that is mutated (default: the model's only input of
    shape ``(batch, length, channels)``). Every other input, a vector ``(batch, D)`` or a
    positional signal ``(batch, N, C)`` (a Tn5 bias track), is held fixed: the same for every
    mutant, given as ``other_inputs``.

    Attributes after analysis: ``seq_length`` (L), ``seq_depth`` (C), ``other_inputs``
    (``(name, shape, dtype)`` of each fixed input, shape without the batch axis), ``widths``
    (``{layer name: (window width, output length)}`` of every windowed convolution, pooling
    and cropping layer).

    Build one per model and reuse it: the analysis is quick, but each instance traces its
    own functions (once per batch size). The cached reference activations (one reference
    at a time) take about the memory of one forward pass (~280 MB for a 131 kb Basenji)."""

    def __init__(self, model: keras.Model, sequence: str | None = None):
        if len(model.outputs) != 1:
            raise NotSupported(f"model '{model.name}' has {len(model.outputs)} outputs; FastISM handles one")
        self.model = model
        self._state = {}  # id(tensor) -> Window | FULL | CONST | FLAG
        self._flat = {}  # id(tensor) -> (windowed tensor id, column): a flattened window, maybe with constants
        self._steps = []
        self._offset_arrays = []  # (L,) int32 window starts, deduplicated
        self._ref_requests = {}  # (tensor id, pad left, pad right, pad value) -> index
        self._nodes = graph_nodes(model)
        self._uses = {}  # id(tensor) -> number of layer calls (and model outputs) that take it
        for t in [t for node in self._nodes for t in node.input_tensors] + list(model.outputs):
            self._uses[id(t)] = self._uses.get(id(t), 0) + 1
        self.other_inputs = []
        self.widths = {}
        self._sequence = sequence
        self._analyse()
        self._out_id = id(model.outputs[0])
        if self._state[self._out_id] == FLAG:
            raise NotSupported("the model's output is a reverse-complement flag")
        if isinstance(self._state[self._out_id], Window):
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

    def _window(self, lo, hi, length) -> Window:
        width = int(max(1, (hi - lo + 1).max()))
        width = min(width, length)
        offset = np.clip(lo, 0, length - width)
        return Window(length, lo, hi, width, offset, self._table(offset))

    def _ref_index(self, tensor_id, pad_left, pad_right, pad_value) -> int:
        key = (tensor_id, int(pad_left), int(pad_right), float(pad_value))
        return self._ref_requests.setdefault(key, len(self._ref_requests))

    def _analyse(self):
        seq_inputs = []
        for node in self._nodes:
            op, outs = node.operation, node.outputs
            if node.is_input:
                tensor = outs[0]
                if len(tensor.shape) == 3 and self._sequence in (None, op.name):
                    seq_inputs.append(tensor)
                    self._seq_id = id(tensor)
                    self.seq_length, self.seq_depth = int(tensor.shape[1]), int(tensor.shape[2])
                    self._seq_dtype = tensor.dtype
                    pos = np.arange(self.seq_length)
                    self._state[id(tensor)] = self._window(pos, pos, self.seq_length)
                    self._steps.append(SequenceStep(id(tensor), self.seq_depth, tensor.dtype))
                elif len(tensor.shape) in (2, 3) and None not in tensor.shape[1:]:
                    self._state[id(tensor)] = CONST
                    self._steps.append(FixedInputStep(id(tensor), len(self.other_inputs), tensor.dtype))
                    self.other_inputs.append((op.name, tuple(int(d) for d in tensor.shape[1:]), tensor.dtype))
                else:
                    raise NotSupported(f"input '{op.name}' of shape {tuple(tensor.shape)}")
                continue
            if type(op) not in SUPPORTED:
                raise NotSupported(f"{type(op).__name__} layer '{op.name}' is not supported by FastISM")
            self._plan_node(node)
        if len(seq_inputs) != 1:
            which = f"an input named '{self._sequence}' of shape" if self._sequence else "exactly one"
            raise NotSupported(f"FastISM needs {which} (batch, length, channels) sequence input, "
                               f"found {len(seq_inputs)}")

    def _plan_node(self, node):
        op = node.operation
        ins, outs = node.input_tensors, node.outputs
        states = [self._state[id(t)] for t in ins]
        windowed = [s for s in states if isinstance(s, Window)]
        if FLAG in states and not isinstance(op, bt_layers.SwitchReverse):
            raise NotSupported(f"{type(op).__name__} layer '{op.name}' takes a reverse-complement flag")
        if isinstance(op, bt_layers.StochasticReverseComplement):
            self._state[id(outs[0])], self._state[id(outs[1])] = states[0], FLAG
            self._steps.append(AliasStep(id(ins[0]), id(outs[0])))
            return
        if isinstance(op, bt_layers.SwitchReverse):
            if states[1] != FLAG:
                raise NotSupported(f"SwitchReverse layer '{op.name}' does not follow a StochasticReverseComplement")
            self._state[id(outs[0])] = states[0]
            self._steps.append(AliasStep(id(ins[0]), id(outs[0])))
            return
        if isinstance(op, IDENTITY):
            self._state[id(outs[0])] = states[0]
            self._steps.append(AliasStep(id(ins[0]), id(outs[0])))
            return
        if windowed and len(windowed) == len(states):
            if self._plan_windowed(node, states):
                return
        if isinstance(op, keras.layers.Dense) and self._plan_flat_dense(node):
            return
        # Non-local layers (Flatten, Dense on vectors, ...) and anything else: in full.
        for t, s in zip(ins, states):
            if isinstance(s, Window):
                self._ref_index(id(t), 0, 0, 0.0)
        for t in outs:
            self._state[id(t)] = CONST if all(s == CONST for s in states) else FULL
        self._steps.append(FullStep(node, accepts_training(op)))
        self._note_flat(node, states)

    def _note_flat(self, node, states):
        """Remember Flatten of a window, and its Concatenate with constants, for FlatDenseStep.

        Their full values are still planned; the traced function drops them when unused."""
        op, ins, out = node.operation, node.input_tensors, node.outputs[0]
        if isinstance(op, keras.layers.Flatten) and isinstance(states[0], Window):
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
        self._steps.append(FlatDenseStep(op, windowed, window, column, self._ref_index(windowed, 0, 0, 0.0),
                                          self._ref_index(id(out), 0, 0, 0.0), id(out)))
        return True

    def _plan_windowed(self, node, states) -> bool:
        """Plan a layer whose inputs are all windowed; False when it must run in full."""
        op = node.operation
        src, out = node.input_tensors[0], node.outputs[0]
        if isinstance(op, POINTWISE):
            if isinstance(op, keras.layers.BatchNormalization) and op.axis not in (-1, 2):
                return False
            self._state[id(out)] = states[0]
            self._steps.append(PointwiseStep(op, accepts_training(op), id(src), id(out)))
            return True
        if isinstance(op, MERGE):
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
            self._steps.append(MergeStep(op, srcs, id(out), window))
            return True
        if isinstance(op, BANDED):
            return self._plan_banded(op, src, out, states[0])
        return False

    def _plan_banded(self, op, src, out, state: Window) -> bool:
        n_in, n_out = state.length, int(out.shape[1])
        geometry = banded_geometry(op, n_in, n_out)
        if geometry is None:
            return False
        k, d, s, pl = geometry
        lo, hi = band(state.lo, state.hi, n_out, k, d, s, pl)
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
            self._steps.append(DeltaConvStep(op, id(src), id(out), state, window, k, d, s, pl,
                                              self._ref_index(id(src), 0, 0, 0.0), self._ref_index(id(out), 0, 0, 0.0)))
            return True
        self._steps.append(BandedStep(op, id(src), id(out), window, k, d, s, pl, size,
                                       self._ref_index(id(src), ref_left, ref_right, pad_value), ref_left, n_in,
                                       needs_count))
        return True

    # ------------------------------------------------------------------ traced functions
    def _run_reference(self, sequence, others):
        """Reference activations for every request (``(N + pads, C)``; ``(U,)`` for a Dense
        output), and the prediction without the batch axis."""
        values = {}
        fixed_index = {name: i for i, (name, _, _) in enumerate(self.other_inputs)}
        for node in self._nodes:
            if node.is_input:
                tensor = node.outputs[0]
                name = node.operation.name
                values[id(tensor)] = (sequence if id(tensor) == self._seq_id
                                      else tf.cast(others[fixed_index[name]][None], tensor.dtype))
                continue
            args, kwargs = node.arguments.fill_in(values)
            outputs = call_at_inference(node.operation, accepts_training(node.operation), *args, **kwargs)
            for tensor, value in zip(node.outputs, tf.nest.flatten(outputs)):
                values[id(tensor)] = value
        refs = tuple(tf.pad(values[tid][0], [[left, right], [0, 0]], constant_values=tf.cast(pad, values[tid].dtype))
                     if left or right else values[tid][0] for tid, left, right, pad in self._requests)
        return refs, tf.cast(values[self._out_id][0], tf.float32)

    def _run_batch(self, positions, bases, refs, others):
        """``(B, *output_shape)`` float32 predictions for mutants ``positions`` -> ``bases``."""
        run = Run(self, positions, bases, refs, others)
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
        for name, shape, _ in self.other_inputs:
            if name not in other_inputs:
                raise InputError(f"other_inputs lacks '{name}' (the model's inputs: "
                                 f"{', '.join(n for n, _, _ in self.other_inputs)})")
            value = np.asarray(other_inputs[name], dtype=np.float32)
            if value.size != int(np.prod(shape)):
                raise InputError(f"other_inputs['{name}'] must have shape {shape}, got {value.shape}")
            others.append(value.reshape(shape))
        return reference, others

    def _reference(self, reference, other_inputs):
        """``(refs, prediction, fixed inputs)`` for this reference, cached until it (or a
        fixed input) changes."""
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
        replaced by ``e_{bases[i]}``; other_inputs: ``{name: array}`` for the model's fixed
        inputs, the same for every mutant. Returns ``(M, *model.output_shape[1:])`` float32.
        Mutants run ``batch_size`` at a time in position order (neighbours share window
        starts; the last batch padded), one traced function per batch size."""
        positions, bases = check_mutants(positions, bases, self.seq_length, self.seq_depth)
        refs, _, others = self._reference(reference, other_inputs)
        others = tuple(tf.constant(v) for v in others)
        order = np.argsort(positions, kind="stable")
        out = np.empty((len(positions), *self.model.output_shape[1:]), dtype=np.float32)
        for begin, p, b in mutant_batches(positions[order], bases[order], batch_size):
            y = self._batch_fn(tf.constant(p), tf.constant(b), refs, others).numpy()
            out[order[begin:begin + batch_size]] = y[:len(out) - begin]
        return out
