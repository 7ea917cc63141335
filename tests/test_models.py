"""Blocks, layers and models: shapes, receptive fields, serialization, ensembles, params files."""

import json

import keras
import numpy as np
import pytest
from conftest import REPO

from basenji_tk.model import blocks, models
from basenji_tk.data import dna
from basenji_tk.errors import InputError
from basenji_tk.model.layers import ReverseComplement, ShiftSequence, StochasticReverseComplement, StochasticShift
from basenji_tk.model.params import check_params

rng = np.random.default_rng(0)


def random_one_hot(batch, length, seed=0):
    """GENERATED random DNA, one-hot (batch, length, 4)."""
    codes = np.random.default_rng(seed).integers(0, 4, size=(batch, length))
    return np.eye(4, dtype="float32")[codes]


def model_of(trunk, head=None, seq_length=256, num_targets=3, **model):
    params = check_params({"model": {"seq_length": seq_length, "trunk": trunk,
                                     "head": head if head is not None else [{"name": "final"}], **model}})
    return models.build_model(params["model"], num_targets)


def roundtrip(model, tmp_path, x):
    """Save, reload in safe mode, and check the predictions are unchanged."""
    path = models.save_model(model, tmp_path / "m.keras")
    again = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    return again


BLOCK_CASES = {
    "conv_block": ([{"name": "conv_block", "filters": 6, "kernel_size": 5, "pool_size": 4, "dropout": 0.1}],
                   (64, 3)),
    "conv_tower": ([{"name": "conv_tower", "filters_init": 4, "filters_mult": 2.0, "repeat": 3,
                     "kernel_size": 3, "pool_size": 2}], (32, 3)),
    "dilated_dense": ([{"name": "conv_block", "filters": 4, "pool_size": 8},
                       {"name": "dilated_dense", "filters": 3, "layers": 4}], (32, 3)),
    "dilated_residual": ([{"name": "conv_block", "filters": 4, "pool_size": 8},
                          {"name": "dilated_residual", "filters": 5, "layers": 3, "dropout": 0.1}], (32, 3)),
    "res_block": ([{"name": "conv_block", "filters": 4},
                   {"name": "res_block", "filters": 6, "convs": 3, "strides": 2}], (128, 3)),
    "pool": ([{"name": "pool", "pool_size": 4, "pool_type": "average"}], (64, 3)),
    "cropping": ([{"name": "pool", "pool_size": 8}, {"name": "cropping", "crop": 4}], (24, 3)),
    "dense_block": ([{"name": "dense_block", "units": 7, "batch_norm": True, "flatten": True}], (3,)),
    "global_pool": ([{"name": "conv_block", "filters": 4}, {"name": "global_pool", "pool_type": "max"}], (3,)),
    "softmax_positions": ([{"name": "pool", "pool_size": 8}, {"name": "softmax_positions", "bin_size": 2}], (16, 3)),
    "reshape": ([{"name": "dense_block", "units": 6, "flatten": True}, {"name": "reshape", "shape": [2, -1]}],
                (2, 3)),
}


@pytest.mark.parametrize("name", sorted(BLOCK_CASES))
def test_block_shapes_and_serialization(name, tmp_path):
    trunk, shape = BLOCK_CASES[name]
    model = model_of(trunk)
    assert model.output_shape[1:] == shape
    roundtrip(model, tmp_path, random_one_hot(2, 256))


def test_every_registered_block_is_tested():
    assert set(blocks.BLOCKS) == set(BLOCK_CASES) | {"expression_fusion", "final"}


def test_conv_tower_widths_grow_geometrically():
    model = model_of([{"name": "conv_tower", "filters_init": 10, "filters_mult": 1.5, "repeat": 3,
                       "divisible_by": 2, "kernel_size": 3}])
    widths = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv1D)]
    assert widths == [10, 16, 22]  # 10, 15 -> 16, 22.5 -> 22 (rounded to even)


def test_dilated_dense_concatenates_every_layer():
    model = model_of([{"name": "conv_block", "filters": 4, "pool_size": 8},
                      {"name": "dilated_dense", "filters": 3, "layers": 4, "rate_mult": 2.0}], head=[])
    assert model.output_shape[1:] == (32, 4 + 4 * 3)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv1D)][1:]
    assert [c.dilation_rate[0] for c in convs] == [1, 2, 4, 8]
    assert [c.input.shape[-1] for c in convs] == [4, 7, 10, 13]  # each sees all earlier outputs


def test_res_block_projects_only_when_widths_differ():
    same = model_of([{"name": "conv_block", "filters": 6}, {"name": "res_block", "filters": 6}], head=[])
    wider = model_of([{"name": "conv_block", "filters": 6}, {"name": "res_block", "filters": 8}], head=[])
    ones = [lambda m: [c for c in m.layers if isinstance(c, keras.layers.Conv1D) and c.kernel_size[0] == 1]]
    assert len(ones[0](same)) == 1 and len(ones[0](wider)) == 2  # the first conv_block is width 1 too
    assert any(isinstance(layer, keras.layers.Add) for layer in same.layers)


def test_receptive_field_formula_and_gradient_agree():
    """The computed field equals the span of input positions that move one output bin."""
    linear = {"batch_norm": False, "activation": "linear"}  # so no path's gradient is cut to zero
    model = model_of([{"name": "conv_block", "filters": 4, "kernel_size": 5, "pool_size": 2, "pool_type": "average",
                       **linear},
                      {"name": "dilated_dense", "filters": 2, "kernel_size": 3, "layers": 3, **linear}],
                     head=[{"name": "final", "activation": "linear"}], seq_length=512)
    field = models.receptive_field(model)
    assert (field.size, field.step) == (5 + 1 + 2 * (2 + 4 + 8), 2)
    import tensorflow as tf

    x = tf.Variable(random_one_hot(1, 512, seed=3))
    with tf.GradientTape() as tape:
        y = model(x)[0, 128, 0]
    grad = np.abs(tape.gradient(y, x).numpy()[0]).sum(axis=1)
    touched = np.flatnonzero(grad > 0)
    assert touched[-1] - touched[0] + 1 == field.size
    assert "receptive field: 34 bp" in models.describe(model)


def test_expression_fusion_takes_named_inputs(tmp_path):
    model = model_of([{"name": "conv_block", "filters": 4, "pool_size": 16}],
                     head=[{"name": "expression_fusion", "input": "expr", "scalar_input": "mean", "units": [8, 4]},
                           {"name": "final", "units": 1, "activation": "sigmoid"}],
                     inputs={"expr": 10, "mean": 1})
    assert model.output_shape == (None, 1)
    x = {"sequence": random_one_hot(3, 256), "expr": rng.random((3, 10), dtype="float32"),
         "mean": rng.random((3, 1), dtype="float32")}
    roundtrip(model, tmp_path, x)
    assert "expr (10,)" in models.describe(model) and "whole input" in models.describe(model)


@pytest.mark.parametrize("spec, message", [
    ({"name": "conv_blok", "filters": 3}, "unknown block 'conv_blok'; allowed blocks: conv_block, conv_tower, cropping"),
    ({"name": "conv_block", "filters": 3, "kernal_size": 3}, "unknown argument 'kernal_size'; allowed: filters"),
    ({"name": "conv_block"}, "argument 'filters' is required"),
    ({"name": "conv_block", "filters": "8"}, "'filters' must be an integer, got \"8\""),
    ({"name": "conv_block", "filters": 8, "activation": "rleu"}, "activation 'rleu' is not one of relu"),
])
def test_bad_blocks_are_named(spec, message):
    with pytest.raises(InputError, match="p.json: model.trunk\\[0\\]") as err:
        check_params({"model": {"seq_length": 64, "trunk": [spec]}}, "p.json")
    assert message in str(err.value)


def test_fusion_input_must_be_declared_and_used():
    with pytest.raises(InputError, match="input 'expr' is not declared in model.inputs"):
        model_of([], head=[{"name": "expression_fusion", "input": "expr"}, {"name": "final"}])
    with pytest.raises(InputError, match="model.inputs declares 'expr' but no block uses it"):
        model_of([{"name": "conv_block", "filters": 2}], inputs={"expr": 3})


def test_shape_errors_name_the_block():
    with pytest.raises(InputError, match=r"model.trunk\[1\] \(cropping\): crop 20 from each end leaves nothing"):
        model_of([{"name": "pool", "pool_size": 8}, {"name": "cropping", "crop": 20}])


def test_final_defaults_to_num_targets_and_float32():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = model_of([{"name": "conv_block", "filters": 4, "pool_size": 8}], num_targets=5)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert model.output_shape[1:] == (32, 5)
    assert model.outputs[0].dtype == "float32"
    assert any(layer.compute_dtype == "float16" for layer in model.layers if isinstance(layer, keras.layers.Conv1D))


# ----------------------------------------------------------------------------- layers
def test_reverse_complement_and_shift_layers():
    seq = "ACGTTGCANNAC" * 4
    x = dna.one_hot(seq)[None].astype("float32")
    rc = ReverseComplement()(x).numpy()[0]
    np.testing.assert_array_equal(rc, dna.one_hot(dna.reverse_complement_str(seq)))
    right = ShiftSequence(3)(x).numpy()[0]
    np.testing.assert_array_equal(right[3:], x[0, :-3])
    assert right[:3].sum() == 0  # N-padded
    left = ShiftSequence(-2)(x).numpy()[0]
    np.testing.assert_array_equal(left[:-2], x[0, 2:])


def test_stochastic_layers_are_identity_at_inference_and_vary_in_training():
    x = random_one_hot(2, 40)
    layer = StochasticShift(3, seed=1)
    np.testing.assert_array_equal(layer(x, training=False), x)
    seen = set()
    for _ in range(30):
        y = layer(x, training=True).numpy()
        shift = next(s for s in range(-3, 4) if np.array_equal(ShiftSequence(s)(x).numpy(), y))
        seen.add(shift)
    assert len(seen) >= 5
    rc_layer = StochasticReverseComplement(seed=2)
    out, flag = rc_layer(x, training=False)
    assert not bool(flag) and np.array_equal(out, x)
    flips = [bool(rc_layer(x, training=True)[1]) for _ in range(40)]
    assert 8 <= sum(flips) <= 32


def test_augment_rc_flips_predictions_back():
    """With in-model rc, a training-mode output is f(x) or the bin-flipped f(rc(x)), never f(rc(x)) itself."""
    trunk = [{"name": "conv_block", "filters": 4, "kernel_size": 5, "pool_size": 8, "batch_norm": False}]
    plain = model_of(trunk)
    aug = model_of(trunk, augment_rc=True)
    aug.set_weights(plain.get_weights())
    x = random_one_hot(2, 256)
    forward = plain(x).numpy()
    flipped_back = plain(ReverseComplement()(x)).numpy()[:, ::-1]
    np.testing.assert_allclose(aug(x, training=False).numpy(), forward, rtol=1e-6)
    kinds = set()
    for _ in range(20):
        y = aug(x, training=True).numpy()
        kinds.add("f" if np.allclose(y, forward, rtol=1e-5) else "rc" if np.allclose(y, flipped_back, rtol=1e-5)
                  else "?")
    assert kinds == {"f", "rc"}


def test_ensemble_averages_rc_and_shifts(tmp_path):
    model = model_of([{"name": "conv_block", "filters": 4, "kernel_size": 5, "pool_size": 8, "batch_norm": False}])
    x = random_one_hot(2, 256)
    f = lambda s: model(s).numpy()  # noqa: E731
    want = np.mean([f(ShiftSequence(s)(x)) for s in (1, -1)]
                   + [f(ReverseComplement()(ShiftSequence(s)(x)))[:, ::-1] for s in (1, -1)], axis=0)
    ens = models.ensemble(model, rc=True, shifts=[1, -1])
    np.testing.assert_allclose(ens.predict(x, verbose=0), want, rtol=1e-5, atol=1e-7)
    assert models.ensemble(model) is model
    roundtrip(ens, tmp_path, x)


def test_load_model_errors(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        models.load_model(tmp_path / "none.keras")
    (tmp_path / "bad.keras").write_text("not a zip")
    with pytest.raises(InputError, match="bad.keras: cannot load model"):
        models.load_model(tmp_path / "bad.keras")


# ----------------------------------------------------------------------------- shipped params
@pytest.mark.parametrize("name, output", [("demo", (128, 3)), ("chromdragonn_resnet", (1,)),
                                          ("basenji2018", (1024, 3))])
def test_shipped_params_build(name, output):
    from basenji_tk.model.params import load_params

    params = load_params(REPO / "params" / f"{name}.json")
    model = models.build_model(params["model"], 3)
    assert model.output_shape[1:] == output


def test_basenji2018_is_the_published_shape():
    from basenji_tk.model.params import load_params

    model = models.build_model(load_params(REPO / "params" / "basenji2018.json")["model"], 3)
    pools = [layer.pool_size[0] for layer in model.layers if isinstance(layer, keras.layers.MaxPooling1D)]
    dilations = [layer.dilation_rate[0] for layer in model.layers
                 if isinstance(layer, keras.layers.Conv1D) and layer.dilation_rate[0] > 1]
    assert pools == [2, 4, 4, 4] and dilations == [2, 4, 8, 16, 32, 64]
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 12
    field = models.receptive_field(model)
    assert field.step == 128 and field.size > 30_000
    text = json.loads((REPO / "params" / "basenji2018.json").read_text())
    assert text["train"]["loss"] == "poisson"


@pytest.mark.slow
def test_basenji2018_trains_at_full_length(tmp_path):
    """Forward and backward at 131,072 bp on CPU, and a few steps of fitting (GENERATED targets)."""
    from basenji_tk.model.params import load_params
    from basenji_tk.model.wiring import compile_model

    params = load_params(REPO / "params" / "basenji2018.json")
    model = models.build_model(params["model"], 2)
    compile_model(model, params["train"], 2)
    x = random_one_hot(2, 131072)
    y = np.random.default_rng(1).poisson(2.0, size=(2, 1024, 2)).astype("float32")
    losses = [float(model.train_on_batch(x, y)[0]) for _ in range(4)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
