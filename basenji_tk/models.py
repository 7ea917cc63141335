"""``params["model"]`` -> ``keras.Model``; receptive field; save, load and ensembles.

The sequence input is named ``sequence`` and has shape ``(batch, seq_length,
seq_depth)``; each entry of ``model.inputs`` adds a vector input ``(batch, length)``
of that name. A model with extra inputs takes a dict ``{name: array}``; a
sequence-only model takes the array itself.

``model.keras`` files hold only standard Keras layers and the registered layers of
:mod:`basenji_tk.layers`, so :func:`load_model` (or ``keras.saving.load_model`` after
``import basenji_tk``) reloads them with ``safe_mode=True``.
"""

import os
from dataclasses import dataclass

import keras

from basenji_tk import blocks, layers
from basenji_tk import losses as _losses  # noqa: F401  (registers custom losses for loading)
from basenji_tk import metrics as _metrics  # noqa: F401  (registers custom metrics for loading)
from basenji_tk.errors import InputError

SEQUENCE = "sequence"


def build_model(model_params: dict, num_targets: int | None = None, where: str = "params") -> keras.Model:
    """Build the model a resolved ``params["model"]`` section describes.

    ``num_targets`` (from the data) is what ``final`` blocks without ``units`` use;
    it defaults to ``model.num_targets``. ``where`` prefixes error messages (the
    params file's path)."""
    mp = model_params
    num_targets = num_targets or mp.get("num_targets")
    seq = keras.Input((mp["seq_length"], mp["seq_depth"]), name=SEQUENCE)
    extra = {name: keras.Input((length,), name=name) for name, length in mp.get("inputs", {}).items()}
    ctx = blocks.Context(inputs=extra, num_targets=num_targets)

    x = seq
    if mp.get("augment_shift"):
        x = layers.StochasticShift(mp["augment_shift"])(x)
    flip = None
    if mp.get("augment_rc"):
        x, flip = layers.StochasticReverseComplement()(x)
    for part in ("trunk", "head"):
        for i, spec in enumerate(mp.get(part, [])):
            x = blocks.apply_block(x, spec, ctx, f"{where}: model.{part}[{i}]")
    if flip is not None:
        x = layers.SwitchReverse()([x, flip])

    unused = [name for name in extra if name not in ctx.used_inputs]
    if unused:
        raise InputError(f"{where}: model.inputs declares '{unused[0]}' but no block uses it "
                         "(expression_fusion takes it with input=...)")
    inputs = {SEQUENCE: seq, **extra} if extra else seq
    return keras.Model(inputs, x, name=mp.get("name") or "basenji_tk")


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


def receptive_field(model: keras.Model) -> ReceptiveField:
    """The receptive field of the model's output positions on the ``sequence`` input.

    Walks the layer graph: a convolution with kernel ``k``, dilation ``d`` and stride
    ``s`` widens the field by ``(k-1)*d*step`` and multiplies the step by ``s``;
    pooling by ``p`` widens it by ``(p-1)*step``; merges take the widest path;
    flattening sees the whole input."""
    seq_length = _input_shapes(model)[SEQUENCE][0]
    memo = {}

    def field_of(tensor):
        key = id(tensor)
        if key in memo:
            return memo[key]
        op, node_index, _ = tensor._keras_history
        parents = op._inbound_nodes[node_index].input_tensors
        if not parents:
            out = ReceptiveField(1, 1) if op.name == SEQUENCE else None
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

    return field_of(model.outputs[0])


def describe(model: keras.Model) -> str:
    """A few lines: inputs, output shape, parameters, receptive field and bin width."""
    f = receptive_field(model)
    inputs = ", ".join(f"{k} {v}" for k, v in _input_shapes(model).items())
    out = tuple(model.output_shape[1:])
    if f is None:
        rf = "receptive field: n/a"
    elif f.whole:
        rf = "receptive field: the whole input (flattened)"
    else:
        rf = f"receptive field: {f.size:,} bp per output position; output bins every {f.step:,} bp"
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
