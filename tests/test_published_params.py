"""The published architectures in params/: each built from its file and checked layer by layer
against the paper (CHECKLIST C10-C12, G9-G10, M10, A5-A8), with parameter counts recomputed
here by hand from the layer sizes (and the paper's own total where it gives one: GRO-seq CNN)."""

import json

import keras
import numpy as np
import pytest

from basenji_tk.model import losses, models
from basenji_tk.model.params import load_params

from conftest import REPO


def build(name, num_targets=None):
    params = load_params(REPO / "params" / f"{name}.json")
    return params, models.build_model(params["model"], num_targets, where=name)


def of(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def conv(k, c_in, c_out, bn=False):
    """Parameters of a width-k convolution (a bias, or batch norm's 4 per channel instead)."""
    return k * c_in * c_out + (4 * c_out if bn else c_out)


dense = lambda n_in, n_out, bn=False: conv(1, n_in, n_out, bn)  # noqa: E731


def out_lengths(model, cls):
    return [layer.output.shape[1] for layer in of(model, cls)]


# ----------------------------------------------------------------------------- ChromDragoNN
RESNET_KERNELS = [3, 3, 3, 3, 3, 3, 3, 7, 7, 7, 7, 1, 7, 3, 3, 7, 3, 3, 7, 7, 7, 7, 7]
RESNET_FILTERS = [48, 64, 64, 64, 64, 64, 128, 128, 128, 128, 128] + [200] * 12


def resnet_trunk_params():
    """C10 with the authors' transitions: 2 pre-convs, 4 residual groups, 3 transitions, all BN."""
    return (conv(3, 4, 48, True) + conv(3, 48, 64, True) + 4 * conv(3, 64, 64, True)  # pre-convs, group 1
            + conv(3, 64, 128, True) + 4 * conv(7, 128, 128, True)  # transition k3, group 2 (k7)
            + conv(1, 128, 200, True) + 2 * (conv(7, 200, 200, True) + 2 * conv(3, 200, 200, True))  # k1, group 3
            + 4 * conv(7, 200, 200, True) + conv(7, 200, 200, True))  # group 4, final conv k7


def check_resnet_trunk(model):
    convs = of(model, keras.layers.Conv1D)
    assert len(convs) == 23  # "23 convolution layers across 8 residual blocks"
    assert [c.kernel_size[0] for c in convs] == RESNET_KERNELS
    assert [c.filters for c in convs] == RESNET_FILTERS
    assert len(of(model, keras.layers.BatchNormalization)) >= 23
    assert len(of(model, keras.layers.Add)) == 8  # 8 residual blocks, identity skips (no projections)
    assert [p.pool_size[0] for p in of(model, keras.layers.MaxPooling1D)] == [3, 4, 4]
    assert of(model, keras.layers.Flatten)[0].output.shape[1] == 4200  # 200 x 21
    assert all(c.get_config()["kernel_initializer"]["class_name"] == "LecunUniform" for c in convs)


def test_chromdragonn_stage1_is_the_papers_resnet():
    params, model = build("chromdragonn_resnet_stage1", {"training_contexts": 103})
    check_resnet_trunk(model)
    assert model.output["training_contexts"].shape[1:] == (103,)  # one task per training context (103/10/10)
    head = dense(4200, 1000, True) + dense(1000, 1000, True) + dense(1000, 103)
    assert model.count_params() == resnet_trunk_params() + head
    assert [d.rate for d in of(model, keras.layers.Dropout)] == [0.3, 0.3]
    assert params["model"]["heads"]["training_contexts"]["loss"] == "bce"


def test_chromdragonn_stage2_fuses_expression_then_the_mean():
    params, model = build("chromdragonn_resnet_stage2")
    check_resnet_trunk(model)
    assert set(model.input) == {"sequence", "expression", "mean_accessibility"}
    assert model.output["accessible"].shape[1:] == (1,)
    denses = of(model, keras.layers.Dense)
    # authors' stage-2 code: FC(4200 + 1630 -> 1000), then the mean joins, FC(1001 -> 100), output
    assert [d.kernel.shape for d in denses] == [(5830, 1000), (1001, 100), (100, 1)]
    head = dense(5830, 1000, True) + dense(1001, 100, True) + dense(100, 1)
    assert model.count_params() == resnet_trunk_params() + head
    assert params["train"]["balance"] == {"label": "accessible", "positive_fraction": 0.25}
    x = {"sequence": np.eye(4, dtype="float32")[np.random.default_rng(0).integers(0, 4, (2, 1000))],
         "expression": np.zeros((2, 1630), "float32"), "mean_accessibility": np.full((2, 1), 0.5, "float32")}
    prob = np.asarray(model(x)["accessible"])
    assert ((prob > 0) & (prob < 1)).all()


def test_stage2_shares_the_trunk_with_stage1_by_layer_name():
    """train.init_from copies the layers the two stages share from the input on: all 46 trunk
    layers (23 convolutions, 23 batch norms). The first FC's batch norm has the same name and width
    in both, but it follows FCs of other inputs (4,200 against 4,200 + 1,630), so it is not copied."""
    from basenji_tk.model.transfer import shared_layers

    _, one = build("chromdragonn_resnet_stage1", {"training_contexts": 103})
    _, two = build("chromdragonn_resnet_stage2")
    shared = [layer.name for layer in shared_layers(two, one)]
    trunk = [layer.name for layer in one.layers if isinstance(layer, (keras.layers.Conv1D,
                                                                      keras.layers.BatchNormalization))][:46]
    assert shared == trunk
    assert trunk == models.trunk_layer_names(load_params(REPO / "params" / "chromdragonn_resnet_stage2.json")["model"])
    bn = of(two, keras.layers.BatchNormalization)[23]
    assert bn.name == "batch_normalization_23" and bn.name in [lyr.name for lyr in one.layers]


def test_chromdragonn_resnet_is_an_alias_of_stage2():
    """The single-output file (for tools that take one output: bench_ism, fast ISM) is stage 2."""
    _, alias = build("chromdragonn_resnet")
    _, stage2 = build("chromdragonn_resnet_stage2")
    assert alias.count_params() == stage2.count_params()
    kinds = lambda m: [type(layer).__name__ for layer in m.layers if type(layer).__name__ != "Identity"]  # noqa
    assert kinds(alias) == kinds(stage2)
    a = json.loads((REPO / "params" / "chromdragonn_resnet.json").read_text())["model"]
    b = json.loads((REPO / "params" / "chromdragonn_resnet_stage2.json").read_text())["model"]
    assert a["trunk"] == b["trunk"] and a["head"] == b["heads"]["accessible"]["blocks"]


def test_chromdragonn_resnet_stage2_nomean_drops_only_the_mean():
    """Fig. 1C's "without mean": the same model less the mean input; the second FC takes 1,000, not 1,001."""
    params, model = build("chromdragonn_resnet_stage2_nomean")
    check_resnet_trunk(model)
    assert set(model.input) == {"sequence", "expression"}
    assert [d.kernel.shape for d in of(model, keras.layers.Dense)] == [(5830, 1000), (1000, 100), (100, 1)]
    head = dense(5830, 1000, True) + dense(1000, 100, True) + dense(100, 1)
    assert model.count_params() == resnet_trunk_params() + head
    assert params["train"]["balance"] == {"label": "accessible", "positive_fraction": 0.25}


# ChromDragoNN's comparison models (CHECKLIST C12, C13), 1,000 bp in, padding same, BN + ReLU after each
# convolution (no conv bias), max pools 3, 4, 4 (ceil: 1000 -> 334 -> 84 -> 21), flatten 200 x 21 = 4,200:
#
#   Basset (Kelley 2016; authors' model_zoo/stage1/basset_vanilla.py)
#     conv 300 x 19, pool 3 | conv 200 x 11, pool 4 | conv 200 x 7, pool 4
#   Factorized Basset (Wnuk 2017; authors' model_zoo/stage1/factorized.py): 9 convolutions
#     48 x 3, 64 x 3, 100 x 3, 150 x 7, 300 x 7, pool 3 | 200 x 7, 200 x 3, 200 x 3, pool 4 | 200 x 7, pool 4
#
# Heads as the ResNet files: stage 1 FC 1000 (BN, dropout 0.3) x 2 + sigmoid per training context;
# stage 2 FC(4200 + 1630 -> 1000), the mean joins, FC(1001 -> 100), sigmoid (nomean: FC(1000 -> 100)).
# (The authors' own Basset/Factorized stage-2 scripts concatenate the mean at the flatten and use
# FC 1000 -> 1000 -> 2; the files here keep one head for all three trunks, so the trunk is all that differs.)
COMPARISON = {
    "basset": [(19, 4, 300), (11, 300, 200), (7, 200, 200)],
    "factorized": [(3, 4, 48), (3, 48, 64), (3, 64, 100), (7, 100, 150), (7, 150, 300),
                   (7, 300, 200), (3, 200, 200), (3, 200, 200), (7, 200, 200)],
}
POOLS = {"basset": [3, 4, 4], "factorized": [3, 4, 4]}


def check_comparison_trunk(model, arch):
    convs = of(model, keras.layers.Conv1D)
    assert [(c.kernel_size[0], c.filters) for c in convs] == [(k, o) for k, _, o in COMPARISON[arch]]
    assert len(of(model, keras.layers.BatchNormalization)) >= len(convs) and not of(model, keras.layers.Add)
    assert [p.pool_size[0] for p in of(model, keras.layers.MaxPooling1D)] == POOLS[arch]
    assert out_lengths(model, keras.layers.MaxPooling1D) == [334, 84, 21]
    assert of(model, keras.layers.Flatten)[0].output.shape[1] == 4200
    assert all(c.get_config()["kernel_initializer"]["class_name"] == "LecunUniform" for c in convs)
    return sum(conv(k, i, o, True) for k, i, o in COMPARISON[arch])


@pytest.mark.parametrize("arch", sorted(COMPARISON))
def test_chromdragonn_comparison_models(arch):
    assert len(COMPARISON["factorized"]) == 9  # "9 convolutions"
    params, one = build(f"chromdragonn_{arch}_stage1", {"training_contexts": 103})
    trunk = check_comparison_trunk(one, arch)
    assert one.count_params() == trunk + dense(4200, 1000, True) + dense(1000, 1000, True) + dense(1000, 103)
    assert [d.rate for d in of(one, keras.layers.Dropout)] == [0.3, 0.3]
    params2, two = build(f"chromdragonn_{arch}_stage2")
    assert check_comparison_trunk(two, arch) == trunk
    assert [d.kernel.shape for d in of(two, keras.layers.Dense)] == [(5830, 1000), (1001, 100), (100, 1)]
    assert two.count_params() == trunk + dense(5830, 1000, True) + dense(1001, 100, True) + dense(100, 1)
    assert params2["train"]["balance"] == {"label": "accessible", "positive_fraction": 0.25}
    _, nomean = build(f"chromdragonn_{arch}_stage2_nomean")
    assert set(nomean.input) == {"sequence", "expression"}
    assert nomean.count_params() == trunk + dense(5830, 1000, True) + dense(1000, 100, True) + dense(100, 1)
    from basenji_tk.model.transfer import shared_layers

    for stage2 in (two, nomean):  # init_from hands on exactly the trunk: its convolutions and batch norms
        shared = [layer.name for layer in shared_layers(stage2, one)]
        assert shared == [layer.name for layer in one.layers if isinstance(
            layer, (keras.layers.Conv1D, keras.layers.BatchNormalization))][:2 * len(COMPARISON[arch])]
        assert shared == models.trunk_layer_names(load_params(REPO / "params" / f"{stage2.name}.json")["model"])


# ----------------------------------------------------------------------------- GRO-seq
def test_groseq_cnn_is_the_appendix_table():
    params, model = build("groseq_cnn")
    convs = of(model, keras.layers.Conv1D)
    assert out_lengths(model, keras.layers.Conv1D) == [2557, 1274, 633, 312, 152, 72, 32]
    assert [c.count_params() for c in convs] == [96] + [1296] * 6
    assert out_lengths(model, keras.layers.MaxPooling1D) == [1278, 637, 316, 156, 76, 36]
    assert of(model, keras.layers.Flatten)[0].output.shape[1] == 512
    assert [d.count_params() for d in of(model, keras.layers.Dense)] == [513]
    assert len(of(model, keras.layers.Dropout)) == 1
    assert model.count_params() == 8385  # "Total params: 8,385"
    assert model.input["groseq"].shape[1:] == (2561, 1) and model.output["mark"].shape[1:] == (1, 1)


def test_groseq_dnn_has_five_relu_dense_layers_and_rmse():
    params, model = build("groseq_dnn")
    denses = of(model, keras.layers.Dense)
    widths = [d.units for d in denses]
    assert len(widths) == 6 and widths[-1] == 1  # 5 ReLU layers + the linear output
    assert [a.get_config()["activation"] for a in of(model, keras.layers.Activation)] == ["relu"] * 5 + ["linear"]
    assert model.input["groseq"].shape[1:] == (200, 2)  # 200 bins of 50 bp = 5 kb, both strands
    n_in = [400] + widths[:-1]
    assert model.count_params() == sum(dense(i, o) for i, o in zip(n_in, widths))
    assert params["model"]["heads"]["mark"]["loss"] == "rmse"


# ----------------------------------------------------------------------------- MPRA
def test_mpra_cnn_is_the_best_model():
    params, model = build("mpra_cnn")
    convs = of(model, keras.layers.Conv1D)
    assert [(c.filters, c.kernel_size[0]) for c in convs] == [(100, 4), (100, 4)]
    assert out_lengths(model, keras.layers.Conv1D) == [292, 289]
    assert [p.pool_size[0] for p in of(model, keras.layers.MaxPooling1D)] == [44]
    assert [d.rate for d in of(model, keras.layers.Dropout)] == [0.1, 0.1]
    assert model.output["activity"].shape[1:] == (4,)
    weighted = convs + of(model, keras.layers.Dense)
    assert all(layer.get_config()["kernel_initializer"]["class_name"] == "HeNormal" for layer in weighted)
    assert model.count_params() == conv(4, 4, 100) + conv(4, 100, 100) + dense(6 * 100, 4)
    assert params["train"]["sample_weight"] == "weight"


# ----------------------------------------------------------------------------- bpAI-TAC
def test_bpaitac_body_and_heads():
    params, model = build("bpaitac")
    c = 3
    convs = of(model, keras.layers.Conv1D)
    dilated = [k.dilation_rate[0] for k in convs if k.dilation_rate[0] > 1]
    assert dilated == [2 ** i for i in range(1, 10)]  # 2, 4, ..., 512
    assert all(k.filters == 300 for k in convs if k.filters != c)
    assert len(of(model, keras.layers.Add)) == 9 and not of(model, keras.layers.BatchNormalization)
    assert [k.kernel_size[0] for k in convs if k.filters == c] == [25]  # the profile conv, one filter per context
    assert [p.pool_size[0] for p in of(model, keras.layers.MaxPooling1D)] == [5, 5, 5]
    assert of(model, keras.layers.Flatten)[0].output.shape[1] == 8 * 300  # 1000 / 125
    assert {k: tuple(v.shape[1:]) for k, v in model.output.items()} == {"profile": (250, c), "total": (c,)}
    body = conv(25, 4, 300) + 9 * conv(3, 300, 300)
    heads = conv(25, 300, c) + 3 * conv(3, 300, 300) + dense(2400, c)
    assert model.count_params() == body + heads
    hp = params["model"]["heads"]
    assert (hp["profile"]["loss"], hp["total"]["loss"]) == ("profile_ce", "mse")
    assert hp["profile"]["weight"] + hp["total"]["weight"] == pytest.approx(1.0)  # (1 - lambda), lambda
    assert all(h["loss"] in losses.NAMES for h in hp.values())


def test_bpaitac_bias_enters_the_profile_logits():
    _, model = build("bpaitac")
    rng = np.random.default_rng(1)
    seq = np.eye(4, dtype="float32")[rng.integers(0, 4, (2, 1000))]
    zero = np.zeros((2, 250, 1), "float32")
    bias = rng.normal(0, 1, (2, 250, 1)).astype("float32")
    p0 = np.asarray(model({"sequence": seq, "tn5_bias": zero})["profile"], np.float64)
    p1 = np.asarray(model({"sequence": seq, "tn5_bias": bias})["profile"], np.float64)
    np.testing.assert_allclose(p0.sum(axis=1), 1.0, rtol=1e-5)
    want = p0 * np.exp(bias)
    np.testing.assert_allclose(p1, want / want.sum(axis=1, keepdims=True), rtol=1e-4)


# ----------------------------------------------------------------------------- Basset
def test_basset():
    params, model = build("basset", {"accessible": 164})
    convs = of(model, keras.layers.Conv1D)
    assert [(k.filters, k.kernel_size[0]) for k in convs] == [(300, 19), (200, 11), (200, 7)]
    assert [p.pool_size[0] for p in of(model, keras.layers.MaxPooling1D)] == [3, 4, 4]
    assert out_lengths(model, keras.layers.MaxPooling1D) == [194, 46, 10]
    assert of(model, keras.layers.Flatten)[0].output.shape[1] == 2000
    assert [d.rate for d in of(model, keras.layers.Dropout)] == [0.3, 0.3]
    assert of(model, keras.layers.Activation)[-1].get_config()["activation"] == "sigmoid"
    total = (conv(19, 4, 300, True) + conv(11, 300, 200, True) + conv(7, 200, 200, True)
             + dense(2000, 1000, True) + dense(1000, 1000, True) + dense(1000, 164))
    assert model.count_params() == total


# ----------------------------------------------------------------------------- all of them
@pytest.mark.parametrize("name", ["chromdragonn_resnet_stage1", "chromdragonn_resnet_stage2", "groseq_cnn",
                                  "groseq_dnn", "mpra_cnn", "bpaitac", "basset", "chromdragonn_basset_stage2",
                                  "chromdragonn_factorized_stage2_nomean"])
def test_published_models_reload_in_safe_mode(name, tmp_path):
    _, model = build(name, {"training_contexts": 5, "accessible": 5})
    again = models.load_model(models.save_model(model, tmp_path / "m.keras"))
    assert again.count_params() == model.count_params()
    rng = np.random.default_rng(0)
    x = {k: rng.random((2, *v.shape[1:])).astype("float32") for k, v in
         (model.input.items() if isinstance(model.input, dict) else [("x", model.input)])}
    x = x if isinstance(model.input, dict) else x["x"]
    got, want = again(x), model(x)
    for key in want:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("arch", ["resnet", "basset", "factorized"])
def test_stage2_with_the_stage1_head_shares_every_stage1_layer(arch):
    """The authors' stage 2 (transfer.with_stage1_head): init_from fills every stage-1 layer with
    weights, and the fusion's second dense layer reads h, one logit per training context, their
    mean and the mean input. At 1/8 width (the same layers) to keep it quick."""
    from basenji_tk.model.params import check_params
    from basenji_tk.model.scaling import scale_widths
    from basenji_tk.model.transfer import shared_layers, with_stage1_head

    raw = {s: json.loads((REPO / "params" / f"chromdragonn_{arch}_{s}.json").read_text()) for s in ("stage1", "stage2")}
    stage2 = check_params(scale_widths(with_stage1_head(raw["stage2"], raw["stage1"]), 0.125))
    stage1 = check_params(scale_widths(raw["stage1"], 0.125))
    two = models.build_model(stage2["model"], {"accessible": 1}, sizes={"training_contexts": 103})
    one = models.build_model(stage1["model"], {"training_contexts": 103})
    shared = {layer.name for layer in shared_layers(two, one)}
    assert shared == {layer.name for layer in one.layers if layer.weights}
    first = raw["stage2"]["model"]["heads"]["accessible"]["blocks"][0]["units"][0] // 8
    widths = [d.kernel.shape[0] for d in of(two, keras.layers.Dense) if d.name not in shared]
    assert widths[1] == first + 103 + 1 + 1
    assert "task_blocks" not in raw["stage2"]["model"]["heads"]["accessible"]["blocks"][0]  # the input is kept


def test_with_stage1_head_needs_one_fusion_and_one_head():
    from basenji_tk.errors import InputError
    from basenji_tk.model.transfer import with_stage1_head

    stage1 = json.loads((REPO / "params" / "chromdragonn_resnet_stage1.json").read_text())
    with pytest.raises(InputError, match="0 expression_fusion blocks"):
        with_stage1_head(stage1, stage1)
    with pytest.raises(InputError, match="no head 'x'"):
        with_stage1_head(stage1, stage1, head="x")
