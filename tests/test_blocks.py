"""The block options of issue 15 against numpy recomputations: valid padding, initialisers,
global pooling, softmax over positions with a bias input, per-conv kernel sizes in res_block,
single-conv residual dilated layers, where expression_fusion takes its scalar, and the
safe-mode round trip of a model that uses them all. Inputs are GENERATED random arrays."""

import keras
import numpy as np
import pytest

from basenji_tk.model import blocks, models
from basenji_tk.errors import InputError

RNG = np.random.default_rng(15)


def run(specs, shape=(64, 4), extra=None):
    """Wire ``specs`` onto an input of ``shape`` (plus ``extra`` {name: shape} model inputs)."""
    inp = keras.Input(shape, name="x")
    ctx = blocks.Context(inputs={k: keras.Input(s, name=k) for k, s in (extra or {}).items()}, num_targets=3)
    y = inp
    for i, spec in enumerate(specs):
        y = blocks.apply_block(y, spec, ctx, f"test[{i}]")
    inputs = {"x": inp, **ctx.inputs} if extra else inp
    return keras.Model(inputs, y), ctx


def of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def np_conv(x, kernel, bias, dilation=1, padding="same"):
    """Keras Conv1D by loops: ``(L, C_in)``, kernel ``(k, C_in, C_out)`` -> ``(L', C_out)``."""
    k = kernel.shape[0]
    span = (k - 1) * dilation
    if padding == "same":
        x = np.pad(x, [(span // 2, span - span // 2), (0, 0)])
    out = np.zeros((x.shape[0] - span, kernel.shape[2]))
    for t in range(out.shape[0]):
        for j in range(k):
            out[t] += x[t + j * dilation] @ kernel[j]
    return out + bias


# ----------------------------------------------------------------------------- padding
def test_valid_padding_conv_and_pool_lengths_and_values():
    specs = [{"name": "conv_block", "filters": 3, "kernel_size": 5, "padding": "valid", "batch_norm": False,
              "activation": "linear", "pool_size": 4}]
    model, _ = run(specs, (61, 4))
    conv = of(model, keras.layers.Conv1D)[0]
    assert conv.output.shape[1] == 57 and model.output.shape[1] == 14  # floor(57 / 4), not ceil (15)
    same, _ = run([{**specs[0], "padding": "same"}], (61, 4))
    assert of(same, keras.layers.Conv1D)[0].output.shape[1] == 61 and same.output.shape[1] == 16  # ceil(61 / 4)
    x = RNG.normal(size=(2, 61, 4)).astype("float32")
    kernel, bias = (w.numpy() for w in conv.weights)
    want = np_conv(x[1], kernel, bias, padding="valid")[:56].reshape(14, 4, 3).max(axis=1)
    np.testing.assert_allclose(np.asarray(model(x))[1], want, rtol=1e-5, atol=1e-5)
    pooled, _ = run([{"name": "pool", "pool_size": 4, "padding": "valid", "pool_type": "average"}], (61, 4))
    np.testing.assert_allclose(np.asarray(pooled(x))[0], x[0, :60].reshape(15, 4, 4).mean(axis=1), rtol=1e-5)


def test_padding_and_initializer_choices_are_checked():
    with pytest.raises(InputError, match=r"test\[0\] \(conv_block\): padding must be one of same, valid"):
        run([{"name": "conv_block", "filters": 3, "padding": "causal"}])
    with pytest.raises(InputError, match="kernel_initializer must be one of glorot_uniform, glorot_normal, he_normal"):
        run([{"name": "dense_block", "units": 3, "kernel_initializer": "orthogonal"}])
    with pytest.raises(InputError, match="pool_size 8 is longer than the 5 positions left"):
        run([{"name": "pool", "pool_size": 8, "padding": "valid"}], (5, 4))


# ----------------------------------------------------------------------------- initialisers
WEIGHTED = {
    "conv_block": {"filters": 4},
    "conv_tower": {"filters_init": 4, "repeat": 2},
    "dilated_dense": {"filters": 3, "layers": 2},
    "dilated_residual": {"filters": 3, "layers": 2},
    "res_block": {"filters": 4},
    "dense_block": {"units": 3},
    "expression_fusion": {"units": [5]},
    "final": {},
}


@pytest.mark.parametrize("name", sorted(WEIGHTED))
@pytest.mark.parametrize("init", ["he_normal", "lecun_uniform"])
def test_every_weighted_block_takes_an_initializer(name, init):
    model, _ = run([{"name": name, "kernel_initializer": init, **WEIGHTED[name]}], extra={"expression": (7,)}
                   if name == "expression_fusion" else None)
    kernels = of(model, keras.layers.Conv1D) + of(model, keras.layers.Dense)
    assert kernels
    cls = {"he_normal": "HeNormal", "lecun_uniform": "LecunUniform"}[init]
    assert all(layer.get_config()["kernel_initializer"]["class_name"] == cls for layer in kernels)


def test_default_initializer_is_glorot_uniform():
    assert set(blocks.INITIALIZERS) == {"glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                                        "lecun_uniform"}
    model, _ = run([{"name": "conv_block", "filters": 4}])
    assert of(model, keras.layers.Conv1D)[0].get_config()["kernel_initializer"]["class_name"] == "GlorotUniform"


@pytest.mark.parametrize("init, variance", [("he_normal", 2.0), ("he_uniform", 2.0), ("lecun_normal", 1.0),
                                            ("lecun_uniform", 1.0)])
def test_initializer_variances_follow_fan_in(init, variance):
    model, _ = run([{"name": "conv_block", "filters": 256, "kernel_size": 5, "kernel_initializer": init}], (32, 64))
    kernel = of(model, keras.layers.Conv1D)[0].kernel.numpy()
    assert kernel.var() == pytest.approx(variance / (5 * 64), rel=0.05)  # fan_in = width x channels


# ----------------------------------------------------------------------------- global pooling
@pytest.mark.parametrize("pool_type, fn", [("max", np.max), ("average", np.mean)])
def test_global_pool_over_positions(pool_type, fn):
    model, _ = run([{"name": "global_pool", "pool_type": pool_type}], (50, 6))
    x = RNG.normal(size=(3, 50, 6)).astype("float32")
    np.testing.assert_allclose(np.asarray(model(x)), fn(x, axis=1), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match=r"global_pool needs \(batch, length, channels\)"):
        run([{"name": "global_pool"}, {"name": "global_pool"}])


# ----------------------------------------------------------------------------- softmax over positions
def np_softmax_positions(logits, bias=0.0, bin_size=1):
    z = (logits + bias).astype(np.float64)
    z = z.reshape(z.shape[0], z.shape[1] // bin_size, bin_size, z.shape[2]).sum(axis=2)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("bias_channels", [None, 1, 3])
@pytest.mark.parametrize("bin_size", [1, 5])
def test_softmax_positions_with_and_without_bias(bias_channels, bin_size):
    spec = {"name": "softmax_positions", "bin_size": bin_size}
    extra = None
    if bias_channels:
        spec["bias_input"] = "tn5_bias"
        extra = {"tn5_bias": (40, bias_channels)}
    model, ctx = run([spec], (40, 3), extra)
    logits = RNG.normal(0, 2, size=(2, 40, 3)).astype("float32")
    if bias_channels:
        bias = RNG.normal(0, 1, size=(2, 40, bias_channels)).astype("float32")
        got = np.asarray(model({"x": logits, "tn5_bias": bias}))
        assert ctx.used_inputs == {"tn5_bias"}
    else:
        bias = 0.0
        got = np.asarray(model(logits))
    assert got.shape == (2, 40 // bin_size, 3)
    np.testing.assert_allclose(got, np_softmax_positions(logits, bias, bin_size), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_positions_errors():
    with pytest.raises(InputError, match="input 'bias' is not declared in model.inputs"):
        run([{"name": "softmax_positions", "bias_input": "bias"}], (40, 3))
    with pytest.raises(InputError, match=r"bias input 'b' has shape \(50, 1\); expected \(40, 1\) or \(40, 3\)"):
        run([{"name": "softmax_positions", "bias_input": "b"}], (40, 3), {"b": (50, 1)})
    with pytest.raises(InputError, match="bin_size 3 does not divide the 40 positions"):
        run([{"name": "softmax_positions", "bin_size": 3}], (40, 3))


# ----------------------------------------------------------------------------- res_block kernels
def test_res_block_kernel_per_conv():
    model, _ = run([{"name": "conv_block", "filters": 8}, {"name": "res_block", "filters": 8, "kernel_size": [7, 3, 3]}])
    assert [c.kernel_size[0] for c in of(model, keras.layers.Conv1D)] == [1, 7, 3, 3]
    two, _ = run([{"name": "res_block", "filters": 8, "kernel_size": 5}])  # one width: 2 convs + projection
    assert sorted(c.kernel_size[0] for c in of(two, keras.layers.Conv1D)) == [1, 5, 5]
    with pytest.raises(InputError, match=r"convs 2 does not match the 3 kernel sizes \[7, 3, 3\]"):
        run([{"name": "res_block", "filters": 8, "kernel_size": [7, 3, 3], "convs": 2}])
    with pytest.raises(InputError, match="convs must be 1 to 3, got 4"):
        run([{"name": "res_block", "filters": 8, "kernel_size": [3, 3, 3, 3]}])
    with pytest.raises(InputError, match="kernel_size must be a positive integer or a list of them"):
        run([{"name": "res_block", "filters": 8, "kernel_size": [3, "7"]}])
    with pytest.raises(InputError, match="'kernel_size' must be an integer or a list"):
        run([{"name": "res_block", "filters": 8, "kernel_size": "7"}])


# ----------------------------------------------------------------------------- single-conv residual dilated
def test_dilated_residual_single_conv_is_x_plus_relu_conv():
    model, _ = run([{"name": "dilated_residual", "filters": 4, "layers": 3, "dilation_init": 2, "single_conv": True,
                     "batch_norm": False}], (30, 4))
    convs = of(model, keras.layers.Conv1D)
    assert [c.dilation_rate[0] for c in convs] == [2, 4, 8] and len(of(model, keras.layers.Add)) == 3
    assert not of(model, keras.layers.BatchNormalization)
    x = RNG.normal(size=(1, 30, 4)).astype("float32")
    want = x[0].astype(np.float64)
    for c in convs:
        kernel, bias = (w.numpy() for w in c.weights)
        want = want + np.maximum(np_conv(want, kernel, bias, c.dilation_rate[0]), 0)
    np.testing.assert_allclose(np.asarray(model(x))[0], want, rtol=1e-4, atol=1e-5)
    with pytest.raises(InputError, match="single_conv needs filters 6 == input width 4"):
        run([{"name": "dilated_residual", "filters": 6, "single_conv": True}], (30, 4))


# ----------------------------------------------------------------------------- expression_fusion
@pytest.mark.parametrize("scalar_at, widths", [(0, [16 * 3 + 7 + 1, 10]), (1, [16 * 3 + 7, 10 + 1]),
                                               (2, [16 * 3 + 7, 10])])
def test_expression_fusion_scalar_at(scalar_at, widths):
    specs = [{"name": "expression_fusion", "input": "expr", "scalar_input": "mean", "units": [10, 5],
              "scalar_at": scalar_at}]
    model, ctx = run(specs, (16, 3), {"expr": (7,), "mean": (1,)})
    assert [d.kernel.shape[0] for d in of(model, keras.layers.Dense)] == widths
    assert model.output.shape[1:] == ((6,) if scalar_at == 2 else (5,))
    assert ctx.used_inputs == {"expr", "mean"}
    with pytest.raises(InputError, match="scalar_at must be 0 to 2"):
        run([{**specs[0], "scalar_at": 3}], (16, 3), {"expr": (7,), "mean": (1,)})


@pytest.mark.parametrize("norm", [False, True])
def test_expression_fusion_scalar_batch_norm(norm):
    specs = [{"name": "expression_fusion", "input": "expr", "scalar_input": "mean", "units": [4],
              "scalar_at": 1, "scalar_batch_norm": norm}]
    model, _ = run(specs, (16, 3), {"expr": (7,), "mean": (1,)})
    mean = RNG.uniform(0, 0.2, size=(64, 1)).astype("float32")
    x = {"x": RNG.normal(size=(64, 16, 3)).astype("float32"), "expr": RNG.normal(size=(64, 7)).astype("float32"),
         "mean": mean}
    scalar = np.asarray(model(x, training=True))[:, -1]  # the scalar joins after the last dense layer
    m = mean[:, 0].astype(np.float64)
    want = (m - m.mean()) / np.sqrt(m.var() + 1e-3) if norm else m  # standardised over the batch (keras' epsilon)
    np.testing.assert_allclose(scalar, want, rtol=1e-4, atol=1e-5)

def test_reshape_block():
    model, _ = run([{"name": "dense_block", "units": 6, "flatten": True}, {"name": "reshape", "shape": [1, -1]}])
    assert model.output.shape[1:] == (1, 6)
    with pytest.raises(InputError, match="shape must be a list of positive integers with at most one -1"):
        run([{"name": "reshape", "shape": [-1, -1]}])


# ----------------------------------------------------------------------------- round trip
def test_new_options_round_trip_in_safe_mode(tmp_path):
    specs = [{"name": "conv_block", "filters": 8, "kernel_size": 5, "padding": "valid", "kernel_initializer": "he_uniform"},
             {"name": "res_block", "filters": 8, "kernel_size": [5, 3], "kernel_initializer": "lecun_normal"},
             {"name": "dilated_residual", "filters": 8, "layers": 2, "single_conv": True},
             {"name": "cropping", "crop": 10},
             {"name": "conv_block", "filters": 2, "kernel_size": 3, "activation": "linear", "batch_norm": False},
             {"name": "softmax_positions", "bias_input": "bias", "bin_size": 2}]
    model, _ = run(specs, (60, 4), {"bias": (36, 1)})
    assert model.output.shape[1:] == (18, 2)
    x = {"x": RNG.normal(size=(2, 60, 4)).astype("float32"), "bias": RNG.normal(size=(2, 36, 1)).astype("float32")}
    again = models.load_model(models.save_model(model, tmp_path / "m.keras"))
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-7)
