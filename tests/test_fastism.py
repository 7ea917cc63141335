"""FastISM gives exactly what the model gives for every single-base mutant (against naive ISM).

Tiny models with UNTRAINED random weights and random batch-norm statistics (so no layer is
the identity) on GENERATED random DNA; every block type, padding edge and stride case.
"""

import keras
import numpy as np
import pytest

from basenji_tk.model import models
from basenji_tk.errors import InputError
from basenji_tk.interpret.fastism import FastISM, NotSupported
from basenji_tk.interpret.mutagenesis import naive_predict_mutants
from basenji_tk.model.params import check_params

ATOL, RTOL = 1e-4, 1e-4


def model_of(trunk, head, seq_length, num_targets=3, seed=0, **model):
    """A built model with random batch-norm gamma, beta and moving statistics."""
    keras.utils.set_random_seed(seed)
    params = check_params({"model": {"seq_length": seq_length, "trunk": trunk, "head": head, **model}})
    return randomize_batch_norm(models.build_model(params["model"], num_targets), seed)


def randomize_batch_norm(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.uniform(-0.5, 0.5, c),
                               rng.uniform(-0.5, 0.5, c), rng.uniform(0.5, 1.5, c)])
    return model


def random_reference(length, seed=0):
    """GENERATED random DNA, one-hot (length, 4)."""
    return np.eye(4, dtype="float32")[np.random.default_rng(seed).integers(0, 4, length)]


def all_mutants(reference, positions=None):
    """Each other base at each position (every position when None): (positions, bases)."""
    positions = np.arange(len(reference)) if positions is None else np.asarray(positions)
    pos = np.repeat(positions, 3)
    bases = (reference.argmax(axis=1)[pos] + np.tile([1, 2, 3], len(positions))) % 4
    return pos, bases


def some_mutants(reference, n=40, seed=0):
    """Random positions plus both ends (0, 1, L-2, L-1), all 3 bases each."""
    length = len(reference)
    positions = np.r_[0, 1, np.random.default_rng(seed).choice(np.arange(2, length - 2), n, replace=False),
                      length - 2, length - 1]
    return all_mutants(reference, positions)


def check_exact(model, reference, positions, bases, other=None, batch_size=64):
    fast = FastISM(model).predict_mutants(reference, positions, bases, other, batch_size)
    naive = naive_predict_mutants(model, reference, positions, bases, other, batch_size)
    assert fast.shape == naive.shape == (len(positions), *model.output_shape[1:])
    assert fast.dtype == np.float32
    assert np.std(naive) > 0  # the outputs do move with the sequence
    np.testing.assert_allclose(fast, naive, atol=ATOL, rtol=RTOL)
    return fast


# name -> (trunk, head, seq_length, extra model params, positions: None (all) or a subset size)
CASES = {
    # max pooling of negative values (gelu) by 4 over 250 bp and average pooling of 63 bins by 2
    # (both padded); even kernel, dilation, residual
    "conv_block": ([{"name": "conv_block", "filters": 6, "kernel_size": 5, "pool_size": 4, "activation": "gelu"},
                    {"name": "conv_block", "filters": 6, "kernel_size": 4, "dilation_rate": 2, "residual": True,
                     "pool_size": 2, "pool_type": "average"}],
                   [{"name": "final"}], 250, {}, None),
    # strided convolutions with even and odd kernels on lengths that strides do not divide
    "conv_strides": ([{"name": "conv_block", "filters": 5, "kernel_size": 6, "strides": 3, "batch_norm": False},
                      {"name": "conv_block", "filters": 5, "kernel_size": 3, "strides": 2, "pool_size": 2}],
                     [{"name": "final", "activation": "linear"}], 299, {}, None),
    # tower, dilated dense stack, cropping, per-position dense; in-model augmentation layers
    "tower_dilated_dense": ([{"name": "conv_tower", "filters_init": 4, "filters_mult": 1.5, "repeat": 2,
                              "kernel_size": 5, "pool_size": 2},
                             {"name": "dilated_dense", "filters": 3, "kernel_size": 3, "layers": 4, "dropout": 0.1},
                             {"name": "cropping", "crop": 3}],
                            [{"name": "dense_block", "units": 5, "batch_norm": True},
                             {"name": "final", "activation": "softplus"}],
                            512, {"augment_rc": True, "augment_shift": 3}, 60),
    # dilated residual stack after average pooling (no padding: 600 = 4 * 150)
    "dilated_residual": ([{"name": "conv_block", "filters": 6, "kernel_size": 7, "pool_size": 4,
                           "pool_type": "average"},
                          {"name": "dilated_residual", "filters": 4, "kernel_size": 3, "layers": 3, "dropout": 0.2}],
                         [{"name": "final", "activation": "linear"}], 600, {}, 60),
    # res blocks (stride 2 with a width-changing projection, 3 convs; same width), pool, flattened dense
    "res_block": ([{"name": "conv_block", "filters": 6, "kernel_size": 3},
                   {"name": "res_block", "filters": 8, "kernel_size": 3, "convs": 3, "strides": 2},
                   {"name": "res_block", "filters": 8, "kernel_size": 3, "convs": 2},
                   {"name": "pool", "pool_size": 3}],
                  [{"name": "dense_block", "units": 6, "flatten": True, "batch_norm": True, "dropout": 0.3},
                   {"name": "final", "units": 2, "activation": "sigmoid"}], 301, {}, None),
    # final layer on the flattened positions (a Dense on the flattened window directly)
    "final_flatten": ([{"name": "conv_block", "filters": 4, "kernel_size": 9, "pool_size": 8},
                       {"name": "pool", "pool_size": 5, "pool_type": "max"}],
                      [{"name": "final", "flatten": True, "activation": "linear"}], 400, {}, None),
    # Basset-like: three conv/pool blocks, flatten, two dense layers
    "basset_like": ([{"name": "conv_block", "filters": 8, "kernel_size": 19, "pool_size": 3},
                     {"name": "conv_block", "filters": 6, "kernel_size": 11, "pool_size": 4},
                     {"name": "conv_block", "filters": 6, "kernel_size": 7, "pool_size": 4}],
                    [{"name": "dense_block", "units": 16, "flatten": True, "dropout": 0.3},
                     {"name": "dense_block", "units": 16, "dropout": 0.3},
                     {"name": "final", "units": 4, "activation": "sigmoid"}], 600, {}, 60),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_equals_naive(name):
    trunk, head, length, extra, n = CASES[name]
    model = model_of(trunk, head, length, **extra)
    reference = random_reference(length, seed=1)
    positions, bases = all_mutants(reference) if n is None else some_mutants(reference, n)
    check_exact(model, reference, positions, bases)


def test_expression_fusion_with_extra_inputs():
    """ChromDragoNN-style: res blocks, flatten + expression vectors, dense layers (batch norm on vectors)."""
    model = model_of([{"name": "conv_block", "filters": 6, "kernel_size": 3},
                      {"name": "res_block", "filters": 8, "kernel_size": 3},
                      {"name": "pool", "pool_size": 4},
                      {"name": "res_block", "filters": 8, "kernel_size": 1, "convs": 1},
                      {"name": "pool", "pool_size": 4}],
                     [{"name": "expression_fusion", "input": "expr", "scalar_input": "mean", "units": [12, 8]},
                      {"name": "final", "units": 1, "activation": "sigmoid"}], 320,
                     inputs={"expr": 10, "mean": 1})
    reference = random_reference(320, seed=2)
    rng = np.random.default_rng(3)
    other = {"expr": rng.random(10, dtype="float32"), "mean": rng.random(1, dtype="float32")}
    positions, bases = all_mutants(reference)
    check_exact(model, reference, positions, bases, other)
    other2 = {"expr": rng.random(10, dtype="float32"), "mean": rng.random(1, dtype="float32")}
    engine = FastISM(model)
    for o in (other, other2, other):  # the cached reference follows the vector inputs too
        np.testing.assert_allclose(engine.predict_mutants(reference, positions[:30], bases[:30], o, 16),
                                   naive_predict_mutants(model, reference, positions[:30], bases[:30], o, 16),
                                   atol=ATOL, rtol=RTOL)
    with pytest.raises(InputError, match="other_inputs lacks 'mean'"):
        engine.predict_mutants(reference, positions, bases, {"expr": other["expr"]})


def test_hand_built_paddings_and_layers():
    """Keras layers outside the blocks' choices: valid and causal padding, valid pooling with
    strides other than the pool size, uneven cropping, a dense with bias on positions."""
    seq = keras.Input((200, 4), name="sequence")
    x = keras.layers.Conv1D(5, 4, padding="valid", activation="relu")(seq)
    x = keras.layers.Conv1D(5, 3, padding="causal", dilation_rate=2)(x)
    x = keras.layers.MaxPooling1D(3, strides=2, padding="valid")(x)
    x = keras.layers.Cropping1D((2, 5))(x)
    x = keras.layers.Dense(4, activation="tanh")(x)
    x = keras.layers.AveragePooling1D(4, strides=3, padding="same")(x)
    x = keras.layers.Concatenate()([x, keras.layers.Conv1D(3, 5, padding="same")(x)])
    out = keras.layers.Dense(2)(keras.layers.Flatten()(x))
    model = keras.Model(seq, out)
    reference = random_reference(200, seed=4)
    check_exact(model, reference, *all_mutants(reference))


def test_flattened_windows_with_other_features():
    """Dense on [vector input, flattened window]: the window's kernel rows come after the vector's;
    then with a sequence-dependent part too (which rules the window-rows shortcut out)."""
    seq, vec = keras.Input((120, 4), name="sequence"), keras.Input((7,), name="vec")
    x = keras.layers.MaxPooling1D(6, padding="same")(keras.layers.Conv1D(4, 5, padding="same")(seq))
    y = keras.layers.Dense(3)(keras.layers.Concatenate()([vec, keras.layers.Flatten()(x)]))
    z = keras.layers.Dense(2)(keras.layers.Flatten()(keras.layers.MaxPooling1D(4)(x)))
    y = keras.layers.Concatenate()([y, keras.layers.Flatten()(x), z])
    model = keras.Model({"sequence": seq, "vec": vec}, keras.layers.Dense(3)(y))
    reference = random_reference(120, seed=9)
    other = {"vec": np.random.default_rng(0).random(7, dtype="float32")}
    check_exact(model, reference, *all_mutants(reference), other)


def test_windows_stay_narrow():
    """The fast path is local: a width-5 convolution changes 5 outputs; pooling by 4 then 2-3."""
    model = model_of([{"name": "conv_block", "filters": 4, "kernel_size": 5, "pool_size": 4}],
                     [{"name": "final"}], 256)
    engine = FastISM(model)
    conv, pool = (layer.name for layer in model.layers if isinstance(layer, (keras.layers.Conv1D,
                                                                             keras.layers.MaxPooling1D)))
    assert engine.widths[conv] == (5, 256)
    assert engine.widths[pool] == (2, 64)


def test_reference_cache_batches_and_prediction():
    model = model_of([{"name": "conv_block", "filters": 4, "kernel_size": 7, "pool_size": 2},
                      {"name": "dilated_residual", "filters": 3, "layers": 2}], [{"name": "final"}], 200)
    engine = FastISM(model)
    ref_a, ref_b = random_reference(200, seed=5), random_reference(200, seed=6)
    positions, bases = some_mutants(ref_a, 20)
    for reference in (ref_a, ref_b, ref_a):
        np.testing.assert_allclose(engine.reference_prediction(reference),
                                   model(reference[None], training=False)[0], atol=1e-6, rtol=1e-6)
        expected = naive_predict_mutants(model, reference, positions, bases, batch_size=64)
        for batch_size in (1, 7, 64):  # 72 mutants: a padded last batch each time
            np.testing.assert_allclose(engine.predict_mutants(reference, positions, bases, batch_size=batch_size),
                                       expected, atol=ATOL, rtol=RTOL)
    # a mutant to the reference base gives the reference prediction
    same = engine.predict_mutants(ref_a, [0, 100], ref_a.argmax(axis=1)[[0, 100]])
    np.testing.assert_allclose(same, np.repeat(engine.reference_prediction(ref_a)[None], 2, 0), atol=1e-5)
    assert engine.predict_mutants(ref_a, [], []).shape == (0, *model.output_shape[1:])


def test_loaded_model(tmp_path):
    trunk, head, length, extra, _ = CASES["tower_dilated_dense"]
    model = model_of(trunk, head, length, **extra)
    path = models.save_model(model, tmp_path / "m.keras")
    loaded = models.load_model(path)
    reference = random_reference(length, seed=7)
    positions, bases = some_mutants(reference, 20, seed=1)
    fast = FastISM(loaded).predict_mutants(reference, positions, bases)
    np.testing.assert_allclose(fast, naive_predict_mutants(model, reference, positions, bases), atol=ATOL, rtol=RTOL)


def test_mixed_precision():
    """float16 compute, float32 output layer: the fast path follows the layers' dtypes."""
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = model_of([{"name": "conv_block", "filters": 4, "kernel_size": 5, "pool_size": 4},
                          {"name": "res_block", "filters": 4, "kernel_size": 3}],
                         [{"name": "dense_block", "units": 8, "flatten": True}, {"name": "final", "units": 2}], 128)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    reference = random_reference(128, seed=8)
    positions, bases = some_mutants(reference, 10)
    fast = FastISM(model).predict_mutants(reference, positions, bases)
    naive = naive_predict_mutants(model, reference, positions, bases)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, naive, atol=2e-2, rtol=2e-2)  # float16 rounding


def _lstm_model():
    seq = keras.Input((50, 4), name="sequence")
    x = keras.layers.Conv1D(4, 3, padding="same")(seq)
    return keras.Model(seq, keras.layers.Dense(1)(keras.layers.LSTM(3)(x)))


def _global_pool_model():
    seq = keras.Input((50, 4), name="sequence")
    x = keras.layers.Conv1D(4, 3, padding="same")(seq)
    return keras.Model(seq, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(x)))


def _two_outputs_model():
    seq = keras.Input((50, 4), name="sequence")
    x = keras.layers.Conv1D(4, 3, padding="same")(seq)
    return keras.Model(seq, [x, keras.layers.Conv1D(2, 3, padding="same")(x)])


@pytest.mark.parametrize("build, message", [
    (_lstm_model, "LSTM layer"),
    (_global_pool_model, "GlobalAveragePooling1D layer"),
    (_two_outputs_model, "2 outputs"),
])
def test_not_supported_names_the_layer(build, message):
    with pytest.raises(NotSupported, match=message):
        FastISM(build())


def test_bad_arguments():
    model = model_of([{"name": "conv_block", "filters": 2, "kernel_size": 3}], [{"name": "final"}], 64)
    engine, reference = FastISM(model), random_reference(64)
    with pytest.raises(InputError, match=r"positions must lie in \[0, 64\)"):
        engine.predict_mutants(reference, [64], [0])
    with pytest.raises(InputError, match=r"bases must lie in \[0, 4\)"):
        engine.predict_mutants(reference, [3], [4])
    with pytest.raises(InputError, match="reference must have shape"):
        engine.predict_mutants(reference[:10], [3], [1])


def _bias_profile_model(length=120):
    """bpAI-TAC-like (RANDOM weights): a named sequence input and a fixed Tn5-bias signal added to
    the profile logits before a softmax over positions, in a named head (an Identity layer)."""
    from basenji_tk.model import layers as bt_layers

    keras.utils.set_random_seed(11)
    seq, bias = keras.Input((length, 4), name="dna"), keras.Input((length, 1), name="tn5_bias")
    x = keras.layers.Conv1D(4, 7, padding="same", activation="relu")(seq)
    logits = keras.layers.Conv1D(2, 5, padding="same")(x)
    profile = bt_layers.SoftmaxPositions()([logits, bias])
    return keras.Model({"dna": seq, "tn5_bias": bias}, keras.layers.Identity(name="profile")(profile))


def test_fixed_signal_input_and_softmax_positions():
    model = _bias_profile_model()
    reference = random_reference(120, seed=12)
    other = {"tn5_bias": np.random.default_rng(13).normal(0, 1, (120, 1)).astype("float32")}
    positions, bases = all_mutants(reference)
    fast = FastISM(model, sequence="dna").predict_mutants(reference, positions, bases, other, 32)
    naive = naive_predict_mutants(model, reference, positions, bases, other, 32, sequence="dna")
    assert fast.shape == naive.shape == (len(positions), 120, 2) and np.std(naive) > 0
    np.testing.assert_allclose(fast, naive, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(fast.sum(axis=1), 1.0, atol=1e-5)  # still a distribution over positions
    with pytest.raises(NotSupported, match="exactly one"):
        FastISM(model)  # two (batch, length, channels) inputs: which one is the sequence?
    with pytest.raises(InputError, match=r"tn5_bias'\] must have shape \(120, 1\)"):
        FastISM(model, sequence="dna").predict_mutants(reference, positions, bases, {"tn5_bias": np.zeros(7)})


@pytest.mark.parametrize("method", ["fast", "naive"])
def test_predictor_rc_reverses_signal_inputs_and_strands(method):
    """With rc, the fixed signal is reversed with the sequence, and the reversed output flipped back
    with its two channels, a (+, -) strand pair, swapped: as an ensemble built by hand."""
    from basenji_tk.interpret.mutagenesis import Predictor

    model = _bias_profile_model()
    reference = random_reference(120, seed=14)
    bias = np.random.default_rng(15).normal(0, 1, (120, 1)).astype("float32")
    positions, bases = some_mutants(reference, 10)
    pred = Predictor(model, method, rc=True, batch_size=16, sequence="dna", signals={"tn5_bias": False},
                     output_strands=True)
    assert pred.method == method
    ref_pred, mut_pred = pred.predict(reference, positions, bases, {"tn5_bias": bias})
    seqs = np.repeat(reference[None], len(positions) + 1, axis=0)
    seqs[np.arange(1, len(positions) + 1), positions] = np.eye(4, dtype="float32")[bases]
    biases = np.repeat(bias[None], len(seqs), axis=0)
    forward = np.asarray(model({"dna": seqs, "tn5_bias": biases}, training=False))
    back = np.asarray(model({"dna": seqs[:, ::-1, ::-1].copy(), "tn5_bias": biases[:, ::-1].copy()}, training=False))
    want = (forward + back[:, ::-1, ::-1]) / 2  # flipped back along positions, strands swapped
    np.testing.assert_allclose(ref_pred, want[0], atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(mut_pred, want[1:], atol=1e-5, rtol=1e-4)
