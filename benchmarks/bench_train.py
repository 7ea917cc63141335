"""Training step of the Basenji 2018 model on CPU, in FLOP/s, against dense matmul.

Measured: ``model.fit`` steps of the model of ``params/basenji2018.json`` (131,072 bp
in, 4 convolutions pooling 2-4-4-4 to 1,024 bins of 128 bp, 7 densely connected
dilated convolutions, a width-1 convolution and the final dense layer), built by
``models.build_model`` and compiled by ``wiring.compile_model`` (Poisson loss, Adam,
the Pearson R and R^2 metrics) as ``train.py`` does. The input is GENERATED: one
fixed batch of random one-hot sequences and Poisson targets, repeated from memory
(the values do not affect the speed, and no reader is involved: bench_reader.py
measures that). The step time is the best of ``--repeats`` epochs of ``--steps``
steps, after one untimed epoch that traces (and with ``--jit`` XLA-compiles) the step.

FLOPs are COUNTED from the built model: a Conv1D does ``2 * out_positions *
kernel_size * in_channels * out_channels`` per sequence (a multiply-add is 2 FLOPs;
dilation changes which inputs are read, not how many; positions in the "same"
padding are computed, so they count), a Dense ``2 * positions * in * out``. Bias
adds, batch norm, ReLU, dropout, pooling, concatenation, loss and optimizer are
not counted (elementwise; TensorFlow's profiler, printed alongside as a cross-check,
puts the forward ones at 0.3% of the total). A training step is counted as 3 x
forward, the usual convention (the backward pass computes the gradients of the
inputs and of the weights, each about one forward); it overcounts by the input
gradient of the first convolution, which nothing needs (about 3%).

Baseline, in the same run: ``tf.linalg.matmul`` of two 2048 x 2048 float32 matrices
in a ``tf.function``, ``2 * n**3`` FLOPs each, best of several calls, measured before
and after the training steps (the best is kept: the machine may be shared).
Goal: the training step reaches >= 40% of the matmul FLOP/s.

To show where the time goes (``--no_layers`` skips this): every layer is also run
alone, forward and backward in training mode (gradients of its inputs and weights),
on random inputs of its shape at the same batch size, and timed; per Conv1D/Dense
layer with its FLOP/s, and summed by layer type. The largest convolution is then
split into its three ops (forward, input gradient, weight gradient), each timed
alone, without and with XLA, plus its weight gradient computed as ``kernel_size``
matmuls (the same numbers another way). ``--jit`` also times the whole step with XLA
(``jit_compile=True``; one step after the compiling epoch, as XLA steps are slow
here) and, to explain that, the first dropout layer alone without and with XLA, and
the step of the same model with every dropout rate set to 0, without and with XLA
(an experiment, not the model of the params; its FLOPs are the same).
"""

import argparse
import os
import resource
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import common  # noqa: E402

GOAL = 0.40  # achieved training FLOP/s / matmul FLOP/s
PARAMS = os.path.join(common.REPO_ROOT, "params", "basenji2018.json")


# ----------------------------------------------------------------------------- counting
def layer_flops(model):
    """``[(layer, kind, positions, forward FLOPs per sequence)]`` for every Conv1D and Dense layer."""
    import keras

    seq_length, bins = model.input_shape[1], model.output_shape[1]
    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv1D):
            positions, c_out = layer.output.shape[1], layer.output.shape[2]
            k, c_in = layer.kernel_size[0], layer.input.shape[-1]
            flops = 2 * positions * k * c_in * c_out
            if k == 1:
                kind = "pointwise (width-1 conv, dense)"
            elif positions == seq_length:
                kind = f"conv at full resolution ({positions:,} positions)"
            elif positions == bins:
                kind = f"convs at the {bins:,} output bins (dilated)"
            else:
                kind = "convs after pooling"
            rows.append((layer, kind, positions, flops))
        elif isinstance(layer, keras.layers.Dense):
            shape = layer.input.shape
            positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
            rows.append((layer, "pointwise (width-1 conv, dense)", positions,
                         2 * positions * shape[-1] * layer.units))
    return rows


def profiler_flops(model):
    """Forward FLOPs per sequence by TensorFlow's profiler: ``(total, {op type: FLOPs})``, or
    ``(None, reason)`` when the profiler route fails.

    The forward pass (inference mode) at batch 1 is traced, its variables frozen into
    constants so every shape is static, and ``tf.compat.v1.profiler.profile`` run on
    that graph with the float-operation options; the graph view's per-node counts are
    summed by op type."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        fn = tf.function(lambda x: model(x, training=False))
        concrete = fn.get_concrete_function(tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32))
        graph = convert_variables_to_constants_v2(concrete).graph
        builder = tf.compat.v1.profiler.ProfileOptionBuilder
        options = builder(builder.float_operation()).with_empty_output().build()
        level = tf.get_logger().level
        tf.get_logger().setLevel("ERROR")  # a deprecation warning from inside the profiler
        try:
            result = tf.compat.v1.profiler.profile(graph=graph, cmd="graph", options=options)
        finally:
            tf.get_logger().setLevel(level)
    except Exception as err:  # noqa: BLE001  any failure: report it and keep the analytic count
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    op_type = {op.name: op.type for op in graph.get_operations()}
    per_node = {}

    def walk(node):
        if node.float_ops:
            per_node[node.name] = node.float_ops
        for child in node.children:
            walk(child)

    walk(result)
    by_type = {}
    for name, flops in per_node.items():
        by_type[op_type.get(name, "?")] = by_type.get(op_type.get(name, "?"), 0) + flops
    return result.total_float_ops, by_type


# ----------------------------------------------------------------------------- timing
def matmul_flops_per_s(n=2048, calls=10):
    """Best FLOP/s of ``tf.linalg.matmul`` of two ``n x n`` float32 matrices (``2 n^3`` FLOPs)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    matmul = tf.function(lambda a, b: tf.linalg.matmul(a, b))
    matmul(a, b).numpy()  # trace
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        matmul(a, b).numpy()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def generated_dataset(batch_size, seq_length, target_length, num_targets, seed=0):
    """One batch of random one-hot sequences and Poisson(1) targets, repeated forever."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (batch_size, seq_length))]
    y = rng.poisson(1.0, (batch_size, target_length, num_targets)).astype(np.float32)
    return tf.data.Dataset.from_tensors((x, y)).repeat()


def fit_step_seconds(model, ds, steps, repeats):
    """``(best seconds per step, seconds of the first epoch)`` of ``model.fit`` on ``ds``.

    One ``fit`` call of ``1 + repeats`` epochs of ``steps`` steps each; with
    ``steps_per_epoch`` Keras keeps one iterator across epochs, so the input stream
    runs on as in training. The first epoch traces (and compiles) the step and is not
    counted; the best of the other epochs is."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t0)

    timer = EpochTimer()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*shuffle=True.*")  # tf.data input: nothing to shuffle
        model.fit(ds, epochs=1 + repeats, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    return min(timer.seconds[1:]) / steps, timer.seconds[0]


def build_compiled(params, num_targets, jit=False, dropout=True):
    """The params' model compiled as ``wiring.compile_model`` does; ``jit`` turns XLA on;
    ``dropout=False`` builds it with every block's dropout rate set to 0 (an experiment)."""
    import copy

    from basenji_tk.model import models, wiring

    model_params = params["model"]
    if not dropout:
        model_params = copy.deepcopy(model_params)
        for spec in model_params["trunk"] + model_params["head"]:
            if "dropout" in spec:
                spec["dropout"] = 0.0
    model = models.build_model(model_params, num_targets)
    wiring.compile_model(model, params["train"], num_targets)
    if jit:
        model.jit_compile = True  # before the first fit: the train function is made then
    return model


def layer_step_seconds(layer, batch_size, calls=3, jit=False, length=None):
    """Best seconds of ``layer`` alone in training mode, forward and backward (gradients
    of its inputs and weights), on random inputs of its input shape at ``batch_size``
    (``length`` positions instead of the model's, when given)."""
    import tensorflow as tf

    def random_input(t):
        shape = tuple(t.shape[1:])
        if length is not None:
            shape = (length,) + shape[1:]
        return tf.random.uniform((batch_size,) + shape, seed=3)

    x = tf.nest.map_structure(random_input, layer.input)
    weights = layer.trainable_variables
    dy = tf.random.uniform(layer(x, training=True).shape, seed=4)  # the gradient arriving from above

    @tf.function(jit_compile=jit)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, weights], output_gradients=dy)

    step(x)
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        [g.numpy() for g in tf.nest.flatten(step(x))]
        best = min(best, time.perf_counter() - t0)
    return best


def weight_gradient_matmuls(x, dy, k):
    """The weight gradient of a "same", undilated 1D convolution as ``k`` matmuls: tap ``i`` is
    ``x[:, i + l - pad]^T dy[:, l]`` summed over batch and positions (the same numbers as
    Conv2DBackpropFilter, computed another way: the experiment behind what to try next)."""
    import tensorflow as tf

    batch, length, c_in = x.shape
    x = tf.pad(x, [[0, 0], [(k - 1) // 2, k // 2], [0, 0]])
    dy = tf.reshape(dy, (batch * length, -1))
    return tf.stack([tf.linalg.matmul(tf.reshape(x[:, i:i + length], (batch * length, c_in)), dy,
                                      transpose_a=True) for i in range(k)])


def conv_split_seconds(layer, batch_size, jit=False, calls=3):
    """``{op: best seconds}`` of a Conv1D layer's three convolutions on random data, as the
    TensorFlow ops its training step runs (a 1D convolution is a Conv2D of height 1; its
    gradients are Conv2DBackpropInput and Conv2DBackpropFilter), each alone, and of the
    weight gradient computed as matmuls instead; ``jit`` compiles each with XLA."""
    import tensorflow as tf

    length, c_in = layer.input.shape[1:]
    c_out, k, d = layer.filters, layer.kernel_size[0], layer.dilation_rate[0]
    if d != 1 or layer.strides[0] != 1:
        raise ValueError("only undilated, unstrided convolutions")
    x = tf.random.uniform((batch_size, 1, length, c_in), seed=4)
    w = tf.random.uniform((1, k, c_in, c_out), seed=5)
    dy = tf.random.uniform((batch_size, 1, length, c_out), seed=6)
    ones = [1, 1, 1, 1]
    ops = {
        "forward": lambda: tf.raw_ops.Conv2D(input=x, filter=w, strides=ones, padding="SAME"),
        "input gradient": lambda: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=ones, padding="SAME"),
        "weight gradient": lambda: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=tf.shape(w), out_backprop=dy, strides=ones, padding="SAME"),
        "weight gradient as matmuls": lambda: weight_gradient_matmuls(x[:, 0], dy[:, 0], k),
    }
    out = {}
    for name, op in ops.items():
        fn = tf.function(op, jit_compile=jit)
        fn().numpy()
        best = float("inf")
        for _ in range(calls):
            t0 = time.perf_counter()
            fn().numpy()
            best = min(best, time.perf_counter() - t0)
        out[name] = best
    return out


# ----------------------------------------------------------------------------- report
def print_flops(counted, forward, prof_total, prof_detail, batch, step_flops):
    print("forward FLOPs per sequence, counted (Conv1D and Dense multiply-adds x 2; no bias, BN, pooling):")
    kinds = {}
    for _, kind, _, flops in counted:
        kinds[kind] = kinds.get(kind, 0) + flops
    common.table(["kind", "layers", "GFLOP", "share"],
                 [[k, sum(1 for r in counted if r[1] == k), f"{f / 1e9:.3f}", f"{100 * f / forward:.1f}%"]
                  for k, f in kinds.items()] + [["total", len(counted), f"{forward / 1e9:.3f}", "100%"]])
    if prof_total is None:
        print(f"TensorFlow profiler: did not work here ({prof_detail}); the analytic count stands")
    else:
        conv_mm = prof_detail.get("Conv2D", 0) + prof_detail.get("MatMul", 0)
        rest = prof_total - conv_mm
        print(f"TensorFlow profiler (tf.compat.v1.profiler float_ops on the frozen forward graph, batch 1): "
              f"{prof_total / 1e9:.3f} GFLOP per sequence = Conv2D + MatMul {conv_mm / 1e9:.3f} "
              f"({100 * (conv_mm / forward - 1):+.2f}% from the count above) + elementwise (batch norm, "
              f"max-pool, bias) {rest / 1e9:.3f}")
    print(f"training step = 3 x forward x batch {batch} = {step_flops / 1e9:.1f} GFLOP "
          "(convention: backward = input and weight gradients, about 1 forward each)")


def print_layers(conv_rows, type_rows, batch, base, step_s):
    print(f"\neach Conv1D/Dense layer alone, forward + backward (input and weight gradients, counted as "
          f"3 x forward) at batch {batch}, best of 3:")
    rows = []
    for layer, positions, flops, seconds in conv_rows:
        if hasattr(layer, "kernel_size"):
            shape = f"k{layer.kernel_size[0]} d{layer.dilation_rate[0]} {layer.input.shape[-1]}->{layer.filters}"
        else:
            shape = f"dense {layer.input.shape[-1]}->{layer.units}"
        rate = 3 * flops * batch / seconds
        rows.append([layer.name, shape, f"{positions:,}", f"{flops / 1e9:.3f}", f"{seconds * 1000:.0f}",
                     f"{rate / 1e9:.1f}", f"{100 * rate / base:.0f}%"])
    common.table(["layer", "conv", "positions", "fwd GFLOP/seq", "f+b ms", "GFLOP/s", "of matmul"], rows)
    print("\nevery layer alone, forward + backward in training mode, summed by layer type:")
    rows = [[name, n, f"{sec:.2f}", f"{100 * sec / step_s:.0f}%"]
            for name, (n, sec) in sorted(type_rows.items(), key=lambda kv: -kv[1][1])]
    n_all, sec_all = sum(n for n, _ in type_rows.values()), sum(sec for _, sec in type_rows.values())
    rows.append(["all layers", n_all, f"{sec_all:.2f}", f"{100 * sec_all / step_s:.0f}%"])
    common.table(["layer type", "layers", "f+b s", "of the step"], rows)
    print(f"(the default training step: {step_s:.2f} s; loss, metrics and the Adam update are the rest, "
          "less whatever the whole graph saves over separate calls)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default=PARAMS, help="params file (default params/basenji2018.json)")
    ap.add_argument("--batch_size", type=int, help="sequences per step (default: the params' train.batch_size)")
    ap.add_argument("--num_targets", type=int, default=8,
                    help="output tracks when the params do not fix them (default 8)")
    ap.add_argument("--steps", type=int, default=2, help="steps per timed epoch (default 2)")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs; the best is kept (default 3)")
    ap.add_argument("--jit", action="store_true",
                    help="also measure with XLA (jit_compile=True): 1 timed epoch of 1 step, as an XLA step "
                         "is slow on CPU; and dropout alone with and without XLA")
    ap.add_argument("--no_layers", action="store_true", help="skip timing each layer alone")
    args = ap.parse_args(argv)

    import keras
    import tensorflow as tf

    from basenji_tk.model import models
    from basenji_tk.model.params import load_params

    load_start = os.getloadavg()[0]
    params = load_params(args.params)
    mp, tp = params["model"], params["train"]
    batch = args.batch_size or tp["batch_size"]
    num_targets = mp["num_targets"] or args.num_targets
    keras.utils.set_random_seed(0)

    model = build_compiled(params, num_targets)
    counted = layer_flops(model)
    forward = sum(f for *_, f in counted)  # per sequence
    step_flops = 3 * forward * batch
    prof_total, prof_detail = profiler_flops(model)

    matmul = [matmul_flops_per_s()]
    ds = generated_dataset(batch, mp["seq_length"], model.output_shape[1], num_targets)
    step_s, first_s = fit_step_seconds(model, ds, args.steps, args.repeats)
    runs = [("default (no XLA: Keras' jit_compile='auto' on a CPU-only machine)", step_s, first_s,
             f"{args.repeats} x {args.steps}")]
    matmul.append(matmul_flops_per_s())

    conv_rows, type_rows, split = [], {}, None
    if not args.no_layers:
        timed = {}
        for layer in model.layers:
            if not isinstance(layer, keras.layers.InputLayer):
                timed[layer.name] = layer_step_seconds(layer, batch)
                n, sec = type_rows.get(type(layer).__name__, (0, 0.0))
                type_rows[type(layer).__name__] = (n + 1, sec + timed[layer.name])
        conv_rows = [(layer, positions, flops, timed[layer.name]) for layer, _, positions, flops in counted]
        convs = [r for r in counted if isinstance(r[0], keras.layers.Conv1D) and r[0].dilation_rate[0] == 1]
        if convs:
            big, _, _, big_flops = max(convs, key=lambda r: r[3])
            split = (big, big_flops, conv_split_seconds(big, batch), conv_split_seconds(big, batch, jit=True))

    dropout_cmp = None
    if args.jit:
        dropout = next((x for x in model.layers if isinstance(x, keras.layers.Dropout)), None)
        if dropout is not None:
            length = dropout.input.shape[1] // 8
            dropout_cmp = (dropout, length, layer_step_seconds(dropout, batch, 1, False, length),
                           layer_step_seconds(dropout, batch, 1, True, length))
        jit_model = build_compiled(params, num_targets, jit=True)
        step_s, first_s = fit_step_seconds(jit_model, ds, 1, 1)
        runs.append(("XLA (jit_compile=True)", step_s, first_s, "1 x 1"))
        del jit_model
        matmul.append(matmul_flops_per_s())
        for jit in (False, True):  # what XLA would give if dropout did not cost it so much
            bare = build_compiled(params, num_targets, jit=jit, dropout=False)
            step_s, first_s = fit_step_seconds(bare, ds, args.steps, args.repeats)
            runs.append((f"experiment: dropout off, {'XLA' if jit else 'no XLA'}", step_s, first_s,
                         f"{args.repeats} x {args.steps}"))
            del bare
    base = max(matmul)

    print(f"training step of {os.path.relpath(args.params, common.REPO_ROOT)}: "
          f"{models.describe(model).splitlines()[0]}")
    print(f"batch {batch}, {num_targets} targets; GENERATED input (random one-hot sequences, Poisson targets, "
          f"one batch repeated from memory); model.fit, best of timed epochs after 1 untimed epoch")
    print(f"machine: {common.machine()}; tensorflow {tf.__version__}, keras {keras.__version__}; "
          f"load average (1 min) at start {load_start:.1f}, at end {os.getloadavg()[0]:.1f}\n")
    print_flops(counted, forward, prof_total, prof_detail, batch, step_flops)
    if conv_rows:
        print_layers(conv_rows, type_rows, batch, base, runs[0][1])
    if split:
        layer, flops, plain, xla = split
        print(f"\nthe largest convolution, {layer.name}, split into its three ops, and its weight "
              f"gradient as {layer.kernel_size[0]} matmuls (each {flops * batch / 1e9:.1f} GFLOP at batch {batch}), "
              "alone, best of 3, without and with XLA:")
        rows = [[name, f"{plain[name] * 1000:.0f}", f"{flops * batch / plain[name] / 1e9:.1f}",
                 f"{100 * flops * batch / plain[name] / base:.0f}%", f"{xla[name] * 1000:.0f}",
                 f"{flops * batch / xla[name] / 1e9:.1f}", f"{100 * flops * batch / xla[name] / base:.0f}%"]
                for name in plain]
        common.table(["op", "ms", "GFLOP/s", "of matmul", "XLA ms", "XLA GFLOP/s", "XLA of matmul"], rows)
    if dropout_cmp:
        layer, length, plain, xla = dropout_cmp
        print(f"\nXLA experiment: {layer.name} (rate {layer.rate}) alone on ({batch}, {length:,}, "
              f"{layer.input.shape[-1]}), forward + backward: {plain:.3f} s without XLA, {xla:.3f} s with XLA "
              f"({xla / plain:.0f}x)")

    print(f"\nmatmul 2048 x 2048 float32 (tf.function): {base / 1e9:.1f} GFLOP/s, best of "
          f"{', '.join(f'{m / 1e9:.1f}' for m in matmul)} (measured around the training steps)\n")
    rows = []
    for name, seconds, first, timed_epochs in runs:
        rate = step_flops / seconds
        rows.append([name, f"{first:.1f}", timed_epochs, f"{seconds:.2f}", f"{batch / seconds:.2f}",
                     f"{rate / 1e9:.1f}", f"{100 * rate / base:.0f}%"])
    common.table(["training step", "first epoch s", "epochs x steps", "step s", "seq/s", "GFLOP/s",
                  "of matmul"], rows)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory (max RSS of this process): {rss:.1f} GiB\n")
    for name, seconds, _, _ in runs[:2]:
        ratio = step_flops / seconds / base
        label = "training/matmul" if name.startswith("default") else "training/matmul with XLA"
        print(f"ratio {label} = {100 * ratio:.0f}% (goal >= {100 * GOAL:.0f}%): "
              f"{'met' if ratio >= GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
