"""Named blocks for ``params.json``: ``model.trunk`` and ``model.head`` are lists of them.

A block is an object with a ``name`` and that block's arguments, e.g.::

    {"name": "conv_block", "filters": 64, "kernel_size": 15, "pool_size": 2}

Each block is a function ``(x, **args) -> x`` that wires standard Keras layers
(Conv1D, BatchNormalization, Dense, ...) into the model, so the whole model saves
and reloads as plain Keras. The registry checks every block against its
function's signature before anything is built: an unknown block or argument, a
missing required argument or a value of the wrong type is an :class:`InputError`
naming the place in params.json and listing what is allowed.

Shapes: positional tensors are ``(batch, length, channels)``; ``dense_block`` with
``flatten``, ``expression_fusion`` and ``final`` with ``flatten`` give ``(batch, units)``,
``global_pool`` ``(batch, channels)``. ``softmax_positions`` turns ``(batch, L, C)`` logits
into probabilities over positions (its heads output probabilities; the profile losses
take them). Every block with weights takes ``kernel_initializer`` (default Keras's
``glorot_uniform``); convolutions and pools take ``padding`` (``same`` or ``valid``).

``python -c "from basenji_tk import blocks; print(blocks.describe())"`` lists every
block with its arguments and defaults.
"""

import inspect
import json
import types
from dataclasses import dataclass, field

import keras

from basenji_tk.errors import InputError

ACTIVATIONS = ("relu", "gelu", "softplus", "sigmoid", "linear", "tanh", "elu", "swish", "exponential")
POOLS = ("max", "average")
PADDINGS = ("same", "valid")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform")
REQUIRED = inspect.Parameter.empty


@dataclass
class Context:
    """What blocks may need beyond their input: the model's extra inputs and target count."""

    inputs: dict = field(default_factory=dict)  # name -> keras.Input for model.inputs
    num_targets: int | None = None
    used_inputs: set = field(default_factory=set)
    sizes: dict = field(default_factory=dict)  # label name -> width known from the data (training_contexts)


@dataclass
class Block:
    name: str
    fn: callable
    args: dict  # argument -> default (REQUIRED when none)
    types: dict  # argument -> the type its value must have (None: any)
    doc: str
    needs_context: bool


BLOCKS: dict[str, Block] = {}


def block(extends: str | None = None, drop: tuple = ()):
    """Register a block function; ``extends`` also accepts that block's arguments (less ``drop``)."""

    def register(fn):
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # the first is the input tensor
        own = [p for p in params if p.name != "ctx" and p.kind != p.VAR_KEYWORD]
        args = {p.name: p.default for p in own}
        types = {p.name: p.annotation if p.annotation is not p.empty else _type_of(p.default) for p in own}
        if extends:
            base = BLOCKS[extends]
            args = {**args, **{k: v for k, v in base.args.items() if k not in drop}}
            types = {**types, **{k: v for k, v in base.types.items() if k not in drop}}
        doc = inspect.getdoc(fn) or ""
        BLOCKS[fn.__name__] = Block(fn.__name__, fn, args, types, doc, "ctx" in sig.parameters)
        return fn

    return register


# ----------------------------------------------------------------------------- checking
def _type_of(default):
    if default is REQUIRED or default is None:
        return None
    return list if isinstance(default, tuple) else type(default)


TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list"}


def _type_name(kind) -> str:
    if isinstance(kind, types.UnionType):
        return " or ".join(_type_name(k) for k in kind.__args__)
    return TYPE_NAMES.get(kind, str(kind))


def _type_ok(value, kind) -> bool:
    if kind is None:
        return True
    if isinstance(kind, (tuple, types.UnionType)):
        return any(_type_ok(value, k) for k in (kind if isinstance(kind, tuple) else kind.__args__))
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_block(spec: dict, where: str) -> dict:
    """Check one block spec; returns ``{argument: value}`` with defaults filled in."""
    name = spec.get("name")
    if name not in BLOCKS:
        raise InputError(f"{where}: unknown block '{name}'; allowed blocks: {', '.join(sorted(BLOCKS))}")
    info = BLOCKS[name]
    args = {k: v for k, v in spec.items() if k != "name"}
    for key, value in args.items():
        if key not in info.args:
            raise InputError(f"{where} ({name}): unknown argument '{key}'; allowed: {', '.join(info.args)}")
        kind = info.types[key]
        if not _type_ok(value, kind):
            raise InputError(f"{where} ({name}): '{key}' must be {_type_name(kind)}, "
                             f"got {json.dumps(value)}")
    missing = [k for k, d in info.args.items() if d is REQUIRED and k not in args]
    if missing:
        raise InputError(f"{where} ({name}): argument '{missing[0]}' is required")
    for key in ("activation",):
        if key in args and args[key] not in ACTIVATIONS:
            raise InputError(f"{where} ({name}): activation '{args[key]}' is not one of {', '.join(ACTIVATIONS)}")
    for key, allowed in (("pool_type", POOLS), ("padding", PADDINGS), ("kernel_initializer", INITIALIZERS)):
        if key in args and args[key] not in allowed:
            raise InputError(f"{where} ({name}): {key} must be one of {', '.join(allowed)}, got {json.dumps(args[key])}")
    return {k: args.get(k, d) for k, d in info.args.items()}


def apply_block(x, spec: dict, ctx: Context, where: str):
    """Check ``spec`` and wire its block onto ``x``; returns the block's output tensor."""
    args = check_block(spec, where)
    info = BLOCKS[spec["name"]]
    try:
        if info.needs_context:
            return info.fn(x, ctx=ctx, **args)
        return info.fn(x, **args)
    except InputError as err:
        raise InputError(f"{where} ({info.name}): {err}") from None
    except ValueError as err:  # Keras shape errors: say which block
        raise InputError(f"{where} ({info.name}): cannot apply to input of shape {tuple(x.shape)}: "
                         f"{str(err).splitlines()[0]}") from None


def describe() -> str:
    """Every block with its arguments and defaults (for --help and the docs)."""
    lines = []
    for name in sorted(BLOCKS):
        b = BLOCKS[name]
        args = ", ".join(k if d is REQUIRED else f"{k}={json.dumps(d)}" for k, d in b.args.items())
        lines.append(f"{name}({args})\n    {b.doc.splitlines()[0] if b.doc else ''}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- pieces
GLOROT = "glorot_uniform"  # Keras's default, kept as the default of every block


def _regularizer(l2_scale):
    return keras.regularizers.L2(l2_scale) if l2_scale else None


def _conv(x, filters, kernel_size, strides=1, dilation_rate=1, padding="same", use_bias=True,
          l2_scale=0.0, kernel_initializer=GLOROT):
    return keras.layers.Conv1D(filters, kernel_size, strides=strides, dilation_rate=dilation_rate, padding=padding,
                               use_bias=use_bias, kernel_regularizer=_regularizer(l2_scale),
                               kernel_initializer=kernel_initializer)(x)


def _finish(x, activation, batch_norm, bn_momentum, dropout):
    """Batch norm, activation and dropout, in that order, each only when asked for."""
    if batch_norm:
        x = keras.layers.BatchNormalization(momentum=bn_momentum)(x)
    if activation != "linear":
        x = keras.layers.Activation(activation)(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    return x


def _pool(x, pool_size, pool_type, padding="same"):
    """Pool by ``pool_size``: ``same`` keeps ``ceil(L / p)`` positions, ``valid`` ``floor(L / p)``."""
    if pool_size <= 1:
        return x
    if padding == "valid" and x.shape[1] is not None and x.shape[1] < pool_size:
        raise InputError(f"pool_size {pool_size} is longer than the {x.shape[1]} positions left (padding valid)")
    layer = keras.layers.MaxPooling1D if pool_type == "max" else keras.layers.AveragePooling1D
    return layer(pool_size=pool_size, padding=padding)(x)


# ----------------------------------------------------------------------------- blocks
@block()
def conv_block(x, filters: int = REQUIRED, kernel_size=1, activation="relu", strides=1, dilation_rate=1,
               dropout=0.0, pool_size=1, pool_type="max", batch_norm=True, bn_momentum=0.9,
               l2_scale=0.0, residual=False, padding="same", kernel_initializer=GLOROT):
    """Convolution, batch norm, activation, dropout, then pooling (``pool_size`` > 1).

    ``padding`` (``same``: as many positions out as in; ``valid``: ``L - (k-1)*d``) applies to
    the convolution and to its pooling. ``residual`` adds the block's input to the
    convolution's output (widths must match, padding same)."""
    y = _conv(x, filters, kernel_size, strides, dilation_rate, padding, not batch_norm, l2_scale, kernel_initializer)
    y = _finish(y, activation, batch_norm, bn_momentum, dropout)
    if residual:
        if x.shape[-1] != filters or strides != 1 or (padding == "valid" and kernel_size > 1):
            raise InputError(f"residual needs input width {x.shape[-1]} == filters {filters}, strides 1 "
                             "and padding same")
        y = keras.layers.Add()([x, y])
    return _pool(y, pool_size, pool_type, padding)


@block(extends="conv_block", drop=("filters",))
def conv_tower(x, filters_init: int = REQUIRED, filters_mult=1.0, repeat=1, divisible_by=1, **conv_args):
    """``repeat`` conv_blocks whose widths grow by ``filters_mult`` each time (rounded to ``divisible_by``)."""
    width = float(filters_init)
    for _ in range(repeat):
        filters = max(divisible_by, int(round(width / divisible_by)) * divisible_by)
        x = conv_block(x, filters=filters, **conv_args)
        width *= filters_mult
    return x


@block()
def dilated_dense(x, filters: int = REQUIRED, kernel_size=3, layers=7, dilation_init=1, rate_mult=2.0,
                  activation="relu", dropout=0.0, batch_norm=True, bn_momentum=0.9, l2_scale=0.0,
                  kernel_initializer=GLOROT):
    """Densely connected dilated convolutions (Basenji 2018).

    Layer ``i`` convolves the concatenation of the block input and every earlier
    layer's output with dilation ``dilation_init * rate_mult**i``, so the receptive
    field grows exponentially; the output is that concatenation after the last layer
    (width: input + ``layers * filters``)."""
    rate = float(dilation_init)
    for _ in range(layers):
        y = conv_block(x, filters=filters, kernel_size=kernel_size, dilation_rate=int(round(rate)),
                       activation=activation, dropout=dropout, batch_norm=batch_norm,
                       bn_momentum=bn_momentum, l2_scale=l2_scale, kernel_initializer=kernel_initializer)
        x = keras.layers.Concatenate(axis=-1)([x, y])
        rate *= rate_mult
    return x


@block()
def dilated_residual(x, filters: int = REQUIRED, kernel_size=3, layers=7, dilation_init=1, rate_mult=2.0,
                     activation="relu", dropout=0.0, batch_norm=True, bn_momentum=0.9, l2_scale=0.0,
                     single_conv=False, kernel_initializer=GLOROT):
    """Dilated convolutions with residual additions; dilation multiplies by ``rate_mult`` per layer.

    Each layer (later Basenji): a dilated conv_block of ``filters``, a width-1 conv_block
    back to the input width, added to the layer's input. With ``single_conv`` (bpAI-TAC's
    body, usually with ``batch_norm: false``): ``x + activation(conv(x))``, one dilated
    convolution of ``filters`` (which must equal the input width) per layer."""
    rate = float(dilation_init)
    width = x.shape[-1]
    if single_conv and width != filters:
        raise InputError(f"single_conv needs filters {filters} == input width {width}")
    for _ in range(layers):
        y = conv_block(x, filters=filters, kernel_size=kernel_size, dilation_rate=int(round(rate)),
                       activation=activation, batch_norm=batch_norm, bn_momentum=bn_momentum, l2_scale=l2_scale,
                       dropout=dropout if single_conv else 0.0, kernel_initializer=kernel_initializer)
        if not single_conv:
            y = conv_block(y, filters=width, kernel_size=1, activation=activation, dropout=dropout,
                           batch_norm=batch_norm, bn_momentum=bn_momentum, l2_scale=l2_scale,
                           kernel_initializer=kernel_initializer)
        x = keras.layers.Add()([x, y])
        rate *= rate_mult
    return x


@block()
def res_block(x, filters: int = REQUIRED, kernel_size: int | list = 3, convs: int = None, strides=1,
              activation="relu", dropout=0.0, batch_norm=True, bn_momentum=0.9, l2_scale=0.0,
              kernel_initializer=GLOROT):
    """Residual block: ``convs`` (1-3) convolutions of one width plus a skip connection.

    As in the ChromDragoNN sequence ResNet: the last convolution's output is added to
    the input (through a width-1 projection when widths or ``strides`` differ) before
    the final activation. ``kernel_size`` is one width for every convolution (``convs``
    of them, default 2) or a list with one width per convolution (``[7, 3, 3]``; then
    ``convs``, if given, must equal its length)."""
    kernels = kernel_size if isinstance(kernel_size, list) else [kernel_size] * (convs or 2)
    if isinstance(kernel_size, list) and convs is not None and convs != len(kernels):
        raise InputError(f"convs {convs} does not match the {len(kernels)} kernel sizes {json.dumps(kernel_size)}")
    if not 1 <= len(kernels) <= 3:
        raise InputError(f"convs must be 1 to 3, got {len(kernels)}")
    if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in kernels):
        raise InputError(f"kernel_size must be a positive integer or a list of them, got {json.dumps(kernel_size)}")
    y = x
    for i, k in enumerate(kernels):
        y = _conv(y, filters, k, strides if i == 0 else 1, 1, "same", not batch_norm, l2_scale, kernel_initializer)
        last = i == len(kernels) - 1
        y = _finish(y, "linear" if last else activation, batch_norm, bn_momentum, 0.0)
    skip = x
    if x.shape[-1] != filters or strides != 1:
        skip = _conv(x, filters, 1, strides, 1, "same", not batch_norm, l2_scale, kernel_initializer)
        skip = _finish(skip, "linear", batch_norm, bn_momentum, 0.0)
    y = keras.layers.Add()([skip, y])
    return _finish(y, activation, False, bn_momentum, dropout)


@block()
def pool(x, pool_size=2, pool_type="max", padding="same"):
    """Max or average pooling over ``pool_size`` positions (``valid``: drop a partial last window)."""
    return _pool(x, pool_size, pool_type, padding)


@block()
def global_pool(x, pool_type="average"):
    """Max or average over all positions: ``(batch, length, channels) -> (batch, channels)``."""
    if len(x.shape) != 3:
        raise InputError(f"global_pool needs (batch, length, channels), got {tuple(x.shape)}")
    layer = keras.layers.GlobalMaxPooling1D if pool_type == "max" else keras.layers.GlobalAveragePooling1D
    return layer()(x)


@block()
def cropping(x, crop: int = REQUIRED):
    """Drop ``crop`` positions (bins) from each end."""
    if 2 * crop >= x.shape[1]:
        raise InputError(f"crop {crop} from each end leaves nothing of {x.shape[1]} positions")
    return keras.layers.Cropping1D(crop)(x)


@block()
def reshape(x, shape: list = REQUIRED):
    """Reshape each example to ``shape`` (one entry may be -1), e.g. ``[1, -1]`` turns ``(batch, n)``
    into one bin ``(batch, 1, n)`` to match a centre-bin label."""
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and (d >= 1 or d == -1) for d in shape) \
            or shape.count(-1) > 1:
        raise InputError(f"shape must be a list of positive integers with at most one -1, got {json.dumps(shape)}")
    return keras.layers.Reshape(tuple(shape))(x)


@block()
def dense_block(x, units: int = REQUIRED, activation="relu", dropout=0.0, batch_norm=False, bn_momentum=0.9,
                l2_scale=0.0, flatten=False, kernel_initializer=GLOROT):
    """A dense layer: per position on ``(batch, length, channels)``, or on everything with ``flatten``."""
    if flatten and len(x.shape) > 2:
        x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(units, use_bias=not batch_norm, kernel_regularizer=_regularizer(l2_scale),
                           kernel_initializer=kernel_initializer)(x)
    return _finish(x, activation, batch_norm, bn_momentum, dropout)


def _model_input(ctx, name):
    """The model input called ``name`` (declared in ``model.inputs``), marked as used."""
    if name not in ctx.inputs:
        declared = ", ".join(ctx.inputs) or "none"
        raise InputError(f"input '{name}' is not declared in model.inputs (declared: {declared})")
    ctx.used_inputs.add(name)
    return ctx.inputs[name]


@block()
def expression_fusion(x, ctx, input="expression", scalar_input: str = None, units=[1000, 1000], activation="relu",
                      dropout=0.3, batch_norm=True, bn_momentum=0.9, l2_scale=0.0, scalar_at=0,
                      scalar_batch_norm=False, task_blocks=None, task_label="training_contexts",
                      kernel_initializer=GLOROT):
    """Two-input fusion (ChromDragoNN): flattened sequence features + an expression vector.

    The flattened sequence representation is concatenated with the model input named
    ``input`` (declared in ``model.inputs``, e.g. expression of transcription factors)
    and passed through dense layers of ``units`` with batch norm, activation and dropout.
    The input named ``scalar_input`` (e.g. mean accessibility), when given, is
    concatenated before dense layer ``scalar_at``: 0 (default) with the flatten and the
    expression, 1 with the output of the first dense layer (ChromDragoNN's authors'
    stage-2 code), ``len(units)`` after the last one (the paper's "final FC layer").
    ``scalar_batch_norm``: batch-normalise the scalar first (off in the authors' code). A raw
    fraction in [0, 1] beside ~1,000 batch-normalised units moves the logit little in a few
    thousand Adam steps (each weight moves about ``learning_rate`` per step).

    ``task_blocks`` (the authors' stage-2 code): stage 1's head blocks, rebuilt here on the trunk
    output before anything else so that their layer names are stage 1's and ``train.init_from``
    fills them; a ``final`` among them without ``units`` gets one unit per ``task_label`` column
    (the fold's training contexts). Their last output (give ``final`` ``"activation": "linear"``:
    the stage-1 logits), and the mean of its sigmoids, join the scalar before dense layer
    ``scalar_at``: the model sees, per region, stage 1's call in every training context."""
    if not 0 <= scalar_at <= len(units):
        raise InputError(f"scalar_at must be 0 to {len(units)} (the number of dense layers), got {scalar_at}")
    tasks = _task_outputs(x, ctx, task_blocks, task_label) if task_blocks else []
    parts = [keras.layers.Flatten()(x) if len(x.shape) > 2 else x, _model_input(ctx, input)]
    scalar = _model_input(ctx, scalar_input) if scalar_input is not None else None
    if scalar is not None and scalar_batch_norm:
        scalar = keras.layers.BatchNormalization(momentum=bn_momentum)(scalar)
    if tasks:
        scalar = keras.layers.Concatenate(axis=-1)(tasks + ([scalar] if scalar is not None else []))
    x = keras.layers.Concatenate(axis=-1)(parts)
    for i, width in enumerate(units):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise InputError(f"units must be a list of positive integers, got {json.dumps(units)}")
        if scalar is not None and i == scalar_at:
            x = keras.layers.Concatenate(axis=-1)([x, scalar])
        x = dense_block(x, units=width, activation=activation, dropout=dropout, batch_norm=batch_norm,
                        bn_momentum=bn_momentum, l2_scale=l2_scale, kernel_initializer=kernel_initializer)
    if scalar is not None and scalar_at == len(units):
        x = keras.layers.Concatenate(axis=-1)([x, scalar])
    return x


def _task_outputs(x, ctx, specs, label) -> list:
    """``[stage-1 logits (batch, n), mean of their sigmoids (batch, 1)]`` from ``specs`` on ``x``."""
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise InputError("task_blocks must be a list of block specs (stage 1's head blocks)")
    n = ctx.sizes.get(label)
    saved, ctx.num_targets = ctx.num_targets, n
    try:
        for i, spec in enumerate(specs):
            x = apply_block(x, spec, ctx, f"task_blocks[{i}]")
    finally:
        ctx.num_targets = saved
    if len(x.shape) != 2:
        raise InputError(f"task_blocks must end in a (batch, tasks) output, got shape {tuple(x.shape)[1:]}")
    width = int(x.shape[-1])
    mean = keras.layers.GlobalAveragePooling1D()(keras.layers.Reshape((width, 1))(
        keras.layers.Activation("sigmoid", dtype="float32")(x)))
    return [x, mean]


@block()
def softmax_positions(x, ctx, bias_input: str = None, bin_size=1):
    """Softmax over positions, per channel: ``(batch, L, C)`` logits -> probabilities summing to 1 over L.

    The output is probabilities (not logits): the profile losses and metrics
    (``multinomial_nll``, ``profile_ce``, ``jsd``) take them as they are. ``bias_input``
    names a model input of shape ``(L, 1)`` or ``(L, C)`` (e.g. a Tn5 bias model's
    predicted log-likelihood) added to the logits first (bpAI-TAC, ChromBPNet). With
    ``bin_size`` > 1 the logits (bias included) are summed in bins of that many positions
    before the softmax (bpAI-TAC's binning ablation): ``(batch, L / bin_size, C)``."""
    from basenji_tk.model.layers import SoftmaxPositions

    if len(x.shape) != 3:
        raise InputError(f"softmax_positions needs (batch, positions, channels), got {tuple(x.shape)}")
    if bin_size < 1 or x.shape[1] % bin_size:
        raise InputError(f"bin_size {bin_size} does not divide the {x.shape[1]} positions")
    layer = SoftmaxPositions(bin_size=bin_size, dtype="float32")
    if bias_input is None:
        return layer(x)
    bias = _model_input(ctx, bias_input)
    if len(bias.shape) != 3 or bias.shape[1] != x.shape[1] or bias.shape[2] not in (1, x.shape[2]):
        raise InputError(f"bias input '{bias_input}' has shape {tuple(bias.shape[1:])}; expected "
                         f"({x.shape[1]}, 1) or ({x.shape[1]}, {x.shape[2]}) to add to the logits")
    return layer([x, bias])


@block()
def final(x, ctx, units: int = None, activation="softplus", flatten=False, l2_scale=0.0,
          kernel_initializer=GLOROT):
    """The output layer: ``units`` (default: the number of targets) with softplus (counts),
    sigmoid (binary) or linear activation. Always float32, also under mixed precision."""
    if flatten and len(x.shape) > 2:
        x = keras.layers.Flatten()(x)
    units = units or ctx.num_targets
    if not units:
        raise InputError("units is not given and the number of targets is unknown")
    x = keras.layers.Dense(units, kernel_regularizer=_regularizer(l2_scale), dtype="float32",
                           kernel_initializer=kernel_initializer)(x)
    return keras.layers.Activation(activation, dtype="float32")(x)
