"""``params["model"]`` -> ``keras.Model``; receptive field; save, load and ensembles.

A model's inputs are named after the dataset features they take (``model.inputs``:
``sequence`` ``(batch, L, 4)``, a signal ``(batch, bins, channels)``, a vector
``(batch, n)``); without a sequence or signal entry the model takes ``sequence`` of
``(seq_length, seq_depth)``. The trunk reads the first sequence or signal input; other
inputs reach the blocks that ask for them by name. A model with one input named
``sequence`` takes the array itself, others a dict ``{name: array}``. ``model.head``
gives one output (label ``target``); ``model.heads`` gives a dict of named outputs, each
its own blocks on the trunk's output.

``model.keras`` files hold only standard Keras layers and the registered layers of
:mod:`basenji_tk.model.layers`, so :func:`load_model` (or ``keras.saving.load_model`` after
``import basenji_tk``) reloads them with ``safe_mode=True``.
"""

import collections
import contextlib
import os
from dataclasses import dataclass

import keras

from basenji_tk.model import blocks, layers
from basenji_tk.model import losses as _losses  # noqa: F401  (registers custom losses for loading)
from basenji_tk.model import metrics as _metrics  # noqa: F401  (registers custom metrics for loading)
from basenji_tk.errors import InputError

SEQUENCE = "sequence"
POSITIONAL = ("sequence", "signal")


def input_specs(model_params: dict) -> dict:
    """``{name: {"kind", "shape", "resolution"}}`` of the model's inputs, in order.

    A bare length in ``model.inputs`` is a vector; without a sequence or signal entry the
    model also takes ``sequence`` of ``(seq_length, seq_depth)``, first."""
    mp = model_params
    specs = {}
    for name, spec in mp.get("inputs", {}).items():
        if isinstance(spec, int):
            specs[name] = {"kind": "vector", "shape": [spec]}
        else:
            specs[name] = {**spec, "resolution": spec.get("resolution") or (1 if spec["kind"] != "vector" else None)}
    if not any(s["kind"] in POSITIONAL for s in specs.values()):
        specs = {SEQUENCE: {"kind": "sequence", "shape": [mp["seq_length"], mp.get("seq_depth", 4)],
                            "resolution": 1}, **specs}
    return specs


def trunk_input(model_params: dict) -> str:
    """The input the trunk reads: the first sequence or signal input."""
    return next(n for n, s in input_specs(model_params).items() if s["kind"] in POSITIONAL)


@contextlib.contextmanager
def _own_layer_names():
    """Name layers from a fresh counter (conv1d, conv1d_1, ...), as in a new process, so the
    same params give the same layer names and ``train.init_from`` can match layers by name."""
    from keras.src.backend.common import global_state

    key = "object_name_uids"
    saved = global_state.get_global_attribute(key)
    global_state.set_global_attribute(key, collections.defaultdict(int))
    try:
        yield
    finally:
        global_state.set_global_attribute(key, saved)


def build_model(model_params: dict, num_targets=None, where: str = "params", sizes: dict | None = None) -> keras.Model:
    """Build the model a resolved ``params["model"]`` section describes.

    ``num_targets`` (from the data) is what ``final`` blocks without ``units`` use: an int
    for ``model.head``, ``{head: n}`` for ``model.heads``; it defaults to
    ``model.num_targets``. ``where`` prefixes error messages (the params file's path).
    A model whose only input is ``sequence`` takes the array itself, others a dict
    ``{name: array}``; ``model.head`` gives one output, ``model.heads`` a dict of named ones.
    ``sizes``: label widths the data knows beyond the heads' (``{"training_contexts": n}`` for
    ``expression_fusion``'s ``task_blocks``)."""
    mp = model_params
    per_head = num_targets if isinstance(num_targets, dict) else {}
    with _own_layer_names():
        tensors, ctx, x, flip = _trunk(mp, None if per_head else (num_targets or mp.get("num_targets")), where)
        ctx.sizes = dict(sizes or {})
        others = ctx.inputs
        if mp.get("heads"):
            out = {}
            for head, hp in mp["heads"].items():
                ctx.num_targets = per_head.get(head) or mp.get("num_targets")
                y = x
                for i, spec in enumerate(hp["blocks"]):
                    y = blocks.apply_block(y, spec, ctx, f"{where}: model.heads.{head}.blocks[{i}]")
                if flip is not None:
                    y = layers.SwitchReverse()([y, flip])
                out[head] = keras.layers.Identity(name=head)(y)
        else:
            for i, spec in enumerate(mp.get("head", [])):
                x = blocks.apply_block(x, spec, ctx, f"{where}: model.head[{i}]")
            out = layers.SwitchReverse()([x, flip]) if flip is not None else x

        unused = [name for name in others if name not in ctx.used_inputs]
        if unused:
            raise InputError(f"{where}: model.inputs declares '{unused[0]}' but no block uses it "
                             "(expression_fusion takes it with input=...)")
        inputs = tensors[SEQUENCE] if list(tensors) == [SEQUENCE] else tensors
        return keras.Model(inputs, out, name=mp.get("name") or "basenji_tk")


def _trunk(mp: dict, num_targets, where: str):
    """The inputs, in-model augmentation and ``model.trunk`` blocks: ``(inputs by name, block
    context, trunk output, reverse-complement flag or None)``. Layer names come from the counter
    the caller set (:func:`_own_layer_names`), so the trunk's names do not depend on the heads."""
    specs = input_specs(mp)
    first = trunk_input(mp)
    tensors = {name: keras.Input(tuple(s["shape"]), name=name) for name, s in specs.items()}
    ctx = blocks.Context(inputs={name: t for name, t in tensors.items() if name != first}, num_targets=num_targets)
    x = tensors[first]
    flip = None
    if specs[first]["kind"] == "sequence":
        if mp.get("augment_shift"):
            x = layers.StochasticShift(mp["augment_shift"])(x)
        if mp.get("augment_rc"):
            x, flip = layers.StochasticReverseComplement()(x)
    for i, spec in enumerate(mp.get("trunk", [])):
        x = blocks.apply_block(x, spec, ctx, f"{where}: model.trunk[{i}]")
    return tensors, ctx, x, flip


def trunk_layer_names(model_params: dict, where: str = "params") -> list[str]:
    """The names of the layers with weights that ``model.trunk`` makes, in order: the same names
    they have in :func:`build_model`'s model of these params (what ``train.init_from`` should fill)."""
    with _own_layer_names():
        tensors, _, x, _ = _trunk(model_params, None, where)
        first = tensors[trunk_input(model_params)]
        trunk = keras.Model(first, x, name="trunk")
    return [layer.name for layer in trunk.layers if layer.weights]


def output_tensors(model: keras.Model) -> dict:
    """``{name: output tensor}``; a one-output model's output is named ``target``."""
    out = model.output
    return dict(out) if isinstance(out, dict) else {"target": out}


# ----------------------------------------------------------------------------- receptive field
@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output position: ``size`` bp, ``step`` bp between positions."""

    size: int
    step: int
    whole: bool = False  # the position sees the whole input (after Flatten or a dense on vectors)


def _input_shapes(model) -> dict:
    """``{input name: shape without the batch axis}``; the sequence input is ``sequence``."""
    if isinstance(model.input, dict):
        return {k: tuple(v.shape[1:]) for k, v in model.input.items()}
    return {SEQUENCE: tuple(model.input.shape[1:])}


def _combine(fields):
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    if any(f.whole for f in fields):
        return ReceptiveField(max(f.size for f in fields), 1, True)
    return ReceptiveField(max(f.size for f in fields), fields[0].step)


def receptive_field(model: keras.Model, output: str | None = None) -> ReceptiveField:
    """The receptive field of the model's output positions on its positional input, in
    input positions (bp for a DNA sequence); ``output`` names a head (default: the first).

    Walks the layer graph: a convolution with kernel ``k``, dilation ``d`` and stride
    ``s`` widens the field by ``(k-1)*d*step`` and multiplies the step by ``s``;
    pooling by ``p`` widens it by ``(p-1)*step``; merges take the widest path;
    flattening sees the whole input."""
    seq_length = next(v[0] for v in _input_shapes(model).values() if len(v) == 2)
    memo = {}

    def field_of(tensor):
        key = id(tensor)
        if key in memo:
            return memo[key]
        op, node_index, _ = tensor._keras_history
        parents = op._inbound_nodes[node_index].input_tensors
        if not parents:
            out = ReceptiveField(1, 1) if len(tensor.shape) == 3 else None
        else:
            f = _combine([field_of(t) for t in parents])
            if f is None or f.whole:
                out = f
            elif isinstance(op, keras.layers.Conv1D):
                k, d, s = op.kernel_size[0], op.dilation_rate[0], op.strides[0]
                out = ReceptiveField(f.size + (k - 1) * d * f.step, f.step * s)
            elif isinstance(op, (keras.layers.MaxPooling1D, keras.layers.AveragePooling1D)):
                out = ReceptiveField(f.size + (op.pool_size[0] - 1) * f.step, f.step * op.strides[0])
            elif isinstance(op, keras.layers.Flatten) or len(tensor.shape) < 3:
                out = ReceptiveField(seq_length, 1, True)
            else:
                out = f
        memo[key] = out
        return out

    return field_of(output_tensors(model)[output] if output else model.outputs[0])


def describe(model: keras.Model) -> str:
    """A few lines: inputs, output shape, parameters, receptive field and bin width."""
    f = receptive_field(model)
    inputs = ", ".join(f"{k} {v}" for k, v in _input_shapes(model).items())
    outs = output_tensors(model)
    out = (tuple(model.output_shape[1:]) if not isinstance(model.output, dict)
           else "{" + ", ".join(f"{k} {tuple(t.shape[1:])}" for k, t in outs.items()) + "}")
    if f is None:
        rf = "receptive field: n/a"
    elif f.whole:
        rf = "receptive field: the whole input (flattened)"
    else:
        unit = "bp" if SEQUENCE in _input_shapes(model) else "input bins"
        rf = f"receptive field: {f.size:,} {unit} per output position; output bins every {f.step:,} {unit}"
    return (f"model '{model.name}': inputs {inputs} -> output {out}; "
            f"{model.count_params():,} parameters\n{rf}")


# ----------------------------------------------------------------------------- files
def save_model(model: keras.Model, path) -> str:
    """Save to ``path`` (a ``.keras`` file) through a temporary name, so a crash never
    leaves a half-written file under the final name."""
    path = str(path)
    if not path.endswith(".keras"):
        raise InputError(f"{path}: model files must end in .keras")
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base[:-6]}.tmp{os.getpid()}.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_model(path, compile: bool = False) -> keras.Model:
    """Load a ``.keras`` file in safe mode (no arbitrary code); ``compile`` restores the
    optimizer state, loss and metrics too (for resuming training)."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: model file not found")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except (ValueError, OSError, TypeError) as err:
        raise InputError(f"{path}: cannot load model: {str(err).splitlines()[0]}") from None


# ----------------------------------------------------------------------------- ensembles
def ensemble(model: keras.Model, rc: bool = False, shifts=(0,)) -> keras.Model:
    """A model that averages ``model`` over shifted and reverse-complemented inputs.

    Every shift in ``shifts`` (bases, right when positive; N-padded) is applied, and
    with ``rc`` also its reverse complement, whose positional outputs are flipped back
    before averaging. With one shift of 0 and no ``rc``, ``model`` itself is returned."""
    shifts = [int(s) for s in shifts] or [0]
    if not rc and shifts == [0]:
        return model
    if isinstance(model.input, dict):
        inputs = {k: keras.Input(v.shape[1:], name=k, dtype=v.dtype) for k, v in model.input.items()}
        seq = inputs[SEQUENCE]
    else:
        inputs = seq = keras.Input(model.input.shape[1:], name=SEQUENCE, dtype=model.input.dtype)
    outputs = []
    for shift in shifts:
        x = layers.ShiftSequence(shift)(seq) if shift else seq
        for reverse in ([False, True] if rc else [False]):
            xs = layers.ReverseComplement()(x) if reverse else x
            y = model({**inputs, SEQUENCE: xs} if isinstance(inputs, dict) else xs)
            if reverse and len(y.shape) == 3:
                y = layers.ReverseBins()(y)
            outputs.append(y)
    out = outputs[0] if len(outputs) == 1 else keras.layers.Average()(outputs)
    return keras.Model(inputs, out, name=f"{model.name}_ensemble")
