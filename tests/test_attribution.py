"""Attributions (basenji_tk.interpret.attribution, deeplift, bin/attribute.py).

DeepSHAP's completeness (attributions sum to f(x) - mean f(reference)) on a hand-built model with
every rule (relu, gelu, softplus, max pooling, global max pooling) and on the zoo models;
the rescale rule against its closed form on one relu unit; integrated gradients converging with
more steps; grad x input against saliency.py's; hypothetical x one-hot = attributions; the
explained scalars against the model's own predictions (the profile head as chrombpnet defines
it); a CLI run whose attributions.h5 has the agreed layout; bad input.
"""

import importlib.util

import h5py
import numpy as np
import pytest
from conftest import FASTA, assert_clean_failure, run_script

from basenji_tk.analysis.inputs import InputOptions, extra_inputs
from basenji_tk.analysis.trained import TrainedModel
from basenji_tk.errors import InputError
from basenji_tk.interpret.attribution import Attributor, choose
from basenji_tk.interpret.scoring import scored_bins

TOL = 1e-3


def one_hot(rng, n, length):
    return np.eye(4, dtype=np.float32)[rng.integers(0, 4, (n, length))]


@pytest.fixture(scope="module")
def hand_model(tmp_path_factory):
    """conv + relu + max pool + conv + gelu + global max pool & flatten + dense softplus + dense: a model folder."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((120, 4), name="sequence")
    x = keras.layers.Conv1D(8, 9, padding="same", activation="relu")(inp)
    x = keras.layers.MaxPooling1D(4)(x)
    x = keras.layers.Conv1D(6, 5, padding="same")(x)
    x = keras.layers.Activation("gelu")(x)
    x = keras.layers.Concatenate()([keras.layers.GlobalMaxPooling1D()(x), keras.layers.Flatten()(x)])
    x = keras.layers.Dense(5, activation="softplus")(x)
    out = keras.layers.Dense(2)(x)
    folder = tmp_path_factory.mktemp("hand_model")
    keras.Model(inp, out).save(folder / "model_best.keras")
    return TrainedModel.load(folder)


def predict(tm, output, x):
    return np.asarray(tm.output_model(output).predict_on_batch(x), dtype=np.float64)


def test_deepshap_completeness_on_a_hand_built_model(hand_model):
    tm = hand_model
    rng = np.random.default_rng(0)
    x = one_hot(rng, 4, 120)
    scored = choose(tm, None, "0,1")
    a = Attributor(tm, scored, "deepshap", n_references=6, seed=1)
    refs = a.references(x)
    assert refs.shape == (4, 6, 120, 4) and (refs.sum(axis=(1, 2)) == 6 * x.sum(axis=1)).all()  # shuffles keep counts
    res = a({"sequence": x}, [[]] * 4, references=refs)
    assert a.unhandled == []
    f_x = predict(tm, None, x).sum(axis=1)
    f_r = predict(tm, None, refs.reshape(-1, 120, 4)).sum(axis=1).reshape(4, 6).mean(axis=1)
    np.testing.assert_allclose(res.f_x, f_x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.f_ref, f_r, rtol=1e-5, atol=1e-6)
    total = res.attributions.sum(axis=(1, 2))
    assert np.abs(total - (f_x - f_r)).max() < TOL * max(1.0, np.abs(f_x).max())
    assert res.gap.max() < 1e-5 and np.abs(total).max() > 1e-3
    np.testing.assert_allclose(res.attributions, res.hypothetical * x, rtol=0, atol=0)
    # the layers are restored afterwards: plain gradients again
    g = Attributor(tm, scored, "grad_x_input")({"sequence": x}, [[]] * 4)
    import tensorflow as tf

    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.reduce_sum(tm.output_model(None)(xt))
    np.testing.assert_allclose(g.gradients, tape.gradient(y, xt).numpy(), rtol=1e-5, atol=1e-7)


def test_rescale_rule_is_its_closed_form(tmp_path):
    """One relu unit, f = relu(w . x + b): DeepLIFT gives w_i (x_i - r_i) (f(x) - f(r)) / (z(x) - z(r))."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((30, 4), name="sequence")
    out = keras.layers.Dense(1, activation="relu")(keras.layers.Flatten()(inp))
    model = keras.Model(inp, out)
    w, b = model.layers[-1].get_weights()
    model.layers[-1].set_weights([w, np.array([0.3], dtype=np.float32)])
    model.save(tmp_path / "model_best.keras")
    tm = TrainedModel.load(tmp_path)
    rng = np.random.default_rng(1)
    x, refs = one_hot(rng, 3, 30), one_hot(rng, 3 * 5, 30).reshape(3, 5, 30, 4)
    res = Attributor(tm, choose(tm), "deepshap", n_references=5)({"sequence": x}, [[]] * 3, references=refs)
    wv = w[:, 0].reshape(30, 4)
    z = lambda s: (s * wv).sum(axis=(-1, -2)) + 0.3  # noqa: E731
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    want = np.zeros((3, 30, 4))
    for k in range(5):
        zx, zr = z(x), z(refs[:, k])
        scale = np.where(np.abs(zx - zr) > 1e-6, (relu(zx) - relu(zr)) / np.where(zx == zr, 1, zx - zr),
                         (zx > 0).astype(float))
        want += (wv * (x - refs[:, k]) * scale[:, None, None]) / 5
    np.testing.assert_allclose(res.attributions.sum(axis=2), want.sum(axis=2), rtol=1e-4, atol=1e-6)


def test_integrated_gradients_converge(hand_model):
    tm = hand_model
    x = one_hot(np.random.default_rng(2), 3, 120)
    scored = choose(tm, None, "1")
    gaps = [Attributor(tm, scored, "integrated_gradients", steps=s)({"sequence": x}, [[]] * 3).gap.max()
            for s in (2, 64)]
    assert gaps[1] < gaps[0] / 4 and gaps[1] < 5e-3
    res = Attributor(tm, scored, "integrated_gradients", steps=16, reference="shuffle", n_references=3)(
        {"sequence": x}, [[]] * 3)
    np.testing.assert_allclose(res.attributions, res.hypothetical * x, atol=0)
    assert np.isfinite(res.f_ref).all() and res.gap.max() < 0.05


def test_grad_x_input_is_saliencys(zoo_binned):
    """Plain gradient x input is saliency.py's; the stored attributions are its mean-centred form."""
    from basenji_tk.interpret.saliency import Saliency

    tm = TrainedModel.load(zoo_binned.model_dir)
    x = one_hot(np.random.default_rng(4), 2, tm.seq_length)
    scored = choose(tm, None, "2")
    bins = scored_bins(scored, "center", tm.window // 2 - 100, tm.window // 2 + 100)
    res = Attributor(tm, scored, "grad_x_input")({"sequence": x}, [bins, bins])
    g, _ = Saliency(scored.model, False)(x, 2, bins)
    np.testing.assert_allclose((res.gradients * x).sum(-1), (g * x).sum(-1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.hypothetical, g - g.mean(axis=-1, keepdims=True), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(res.attributions, res.hypothetical * x, atol=0)
    np.testing.assert_allclose(res.f_x, predict(tm, None, x)[:, bins, 2].sum(axis=1), rtol=1e-5)


# zoo kind -> (output, targets, logit, statistic)
ZOO = {
    "binned": (None, "0,2", False, "center"),
    "pairs": ("accessible", None, True, None),
    "profile": ("profile", "ctcf,cpg", False, "sum"),
    "profile_total": ("total", "1", False, None),
    "table": ("activity", "0,3", False, None),
    "imported_keras": (None, "cpg", False, "center"),
}


def test_a_sigmoid_output_is_explained_by_its_logit_unless_asked(zoo_pairs, zoo_binned):
    pairs = TrainedModel.load(zoo_pairs.model_dir)
    assert choose(pairs).logit and not choose(pairs, logit=False).logit
    assert not choose(TrainedModel.load(zoo_binned.model_dir)).logit  # softplus: no logit to take


@pytest.mark.parametrize("case", sorted(ZOO))
def test_deepshap_completeness_on_the_zoo(case, request):
    z = request.getfixturevalue(f"zoo_{case.split('_total')[0]}")
    output, targets, logit, stat = ZOO[case]
    tm = TrainedModel.load(z.model_dir)
    scored = choose(tm, output, targets, logit)
    rng = np.random.default_rng(5)
    x = {tm.sequence.name: one_hot(rng, 2, tm.seq_length)}
    if z.options:  # pairs: the context vector, the same for a sequence and its references
        x.update(extra_inputs(tm, [("20", 0, tm.window)] * 2, InputOptions(context=z.options[1]), None))
    c = tm.window // 2
    bins = scored_bins(scored, stat, c - 50, c + 50) if stat else []
    res = Attributor(tm, scored, "deepshap", n_references=4, seed=2)(x, [bins, bins])
    total = res.attributions.sum(axis=(1, 2))
    scale = np.maximum(1.0, np.maximum(np.abs(res.f_x), np.abs(res.f_ref)))
    assert (np.abs(total - (res.f_x - res.f_ref)) / scale).max() < TOL, (total, res.f_x - res.f_ref)
    assert np.abs(total).max() > 1e-6 and res.gap.max() < 1e-5, res.gap  # not trivially zero; float32 round-off
    np.testing.assert_allclose(res.attributions, res.hypothetical * x[tm.sequence.name], atol=0)
    # the explained scalar is the model's own output, or chrombpnet's profile contribution
    y = np.asarray(scored.model.predict_on_batch(tm.model_inputs(x)), dtype=np.float64)
    cols = scored.target_index
    if case == "profile":
        soft = np.exp(y - y.max(axis=1, keepdims=True))
        soft /= soft.sum(axis=1, keepdims=True)
        want = (soft * (y - y.mean(axis=1, keepdims=True)))[:, :, cols].sum(axis=(1, 2))
    elif scored.positional:
        want = y[:, bins][:, :, cols].sum(axis=(1, 2))
    else:
        want = y[:, cols].sum(axis=1)
    np.testing.assert_allclose(res.f_x, want, rtol=1e-4, atol=1e-6)


def test_attribute_script_writes_the_agreed_file(zoo_binned, tmp_path):
    out = tmp_path / "attr"
    proc = run_script("attribute.py", "-q", zoo_binned.model_dir, zoo_binned.bed, "-f", FASTA, "-o", out,
                      "--targets", "0,1", "--n_references", 3, "--crop", 400, "--batch_size", 2)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out / "attributions.h5") as h5:
        oh, attr, hyp = h5["one_hot"][:], h5["attributions"][:], h5["hypothetical"][:]
        start, end, gap = h5["start"][:], h5["end"][:], h5["gap"][:]
        names = [s.decode() for s in h5["name"][:]]
        attrs = dict(h5.attrs)
        assert h5["chrom"][0] == b"20" and h5["strand"][:].dtype.kind == "S"
    assert oh.dtype == np.uint8 and attr.dtype == np.float32 and hyp.dtype == np.float32
    assert oh.shape == attr.shape == hyp.shape == (3, 400, 4)
    assert names == ["r0", "r1", "r2"] and (end - start == 400).all() and start.dtype == np.int64
    mids = np.array([(1_500_000 + 1_500_400) // 2, 2_000_050, 5_000_100])
    assert (np.abs((start + end) // 2 - mids) <= 1).all()
    np.testing.assert_allclose(attr, hyp * oh, atol=0)
    assert (oh.sum(axis=2) == 1).all() and gap.max() < TOL
    ids = TrainedModel.load(zoo_binned.model_dir).output().targets
    assert attrs["method"] == "deepshap" and attrs["targets"] == f"{ids[0]},{ids[1]}"
    assert attrs["n_references"] == 3 and attrs["window"] == 16384 and attrs["output"] == "target"
    assert not attrs["logit"] and attrs["genome"].endswith(".fa.gz")
    assert (out / "attributions.bw").exists() and len(list(out.glob("*.png"))) == 3
    import pyBigWig

    with pyBigWig.open(str(out / "attributions.bw")) as bw:
        got = np.nan_to_num(np.array(bw.values("20", int(start[1]), int(end[1]))))
    np.testing.assert_allclose(got, attr[1].sum(axis=1), rtol=1e-5, atol=1e-7)
    if importlib.util.find_spec("basenji_tk.interpret.modisco") is not None:  # the reader TF-MoDISco runs use
        from basenji_tk.interpret.modisco import read_attributions

        got = read_attributions(out / "attributions.h5", window=200)
        np.testing.assert_array_equal(got["hypothetical"], hyp[:, 100:300])


def test_a_layer_without_a_rule_is_named(tmp_path, caplog):
    """A softmax inside the network has no DeepLIFT rule: the gap is measured and the layer named."""
    import keras

    from basenji_tk.interpret.attribution import check_completeness

    keras.utils.set_random_seed(5)
    inp = keras.Input((40, 4), name="sequence")
    x = keras.layers.Dense(6, activation="softmax", name="inner_softmax")(keras.layers.Flatten()(inp))
    keras.Model(inp, keras.layers.Dense(1)(keras.layers.Dense(4, activation="relu")(x))).save(
        tmp_path / "model_best.keras")
    tm = TrainedModel.load(tmp_path)
    x = one_hot(np.random.default_rng(6), 4, 40)
    with Attributor(tm, choose(tm), "deepshap", n_references=3) as a:
        res = a({"sequence": x}, [[]] * 4)
        assert a.unhandled == ["inner_softmax (Dense, activation softmax)"]
    gap = check_completeness(res, a.unhandled, "test: ")
    assert gap == res.gap.max() > 1e-3
    assert "inner_softmax (Dense, activation softmax)" in caplog.text and f"{gap:.3g}" in caplog.text


def test_bad_input(zoo_binned, zoo_pairs, zoo_signal, tmp_path):
    from basenji_tk.interpret.attribution_run import attribute_regions

    out = tmp_path / "x"
    proc = run_script("attribute.py", zoo_binned.model_dir, zoo_binned.bed, "-f", FASTA, "-o", out,
                      "--targets", "nope")
    assert_clean_failure(proc, "--targets", "nope")
    bed = tmp_path / "end.bed"
    bed.write_text("20\t100000\t100200\tok\n20\t19999900\t20000100\tpast\n")
    with pytest.raises(InputError, match=r"end.bed:2: .* ends past the end of 20"):
        attribute_regions(zoo_binned.model_dir, bed, out, fasta=FASTA)
    with pytest.raises(InputError, match="--n_references: expected at least 1"):
        attribute_regions(zoo_binned.model_dir, zoo_binned.bed, out, fasta=FASTA, n_references=0)
    with pytest.raises(InputError, match="--logit: output 'target'"):
        attribute_regions(zoo_binned.model_dir, zoo_binned.bed, out, fasta=FASTA, logit=True)
    with pytest.raises(InputError, match="--crop: expected 1 to"):
        attribute_regions(zoo_binned.model_dir, zoo_binned.bed, out, fasta=FASTA, crop=10**6)
    with pytest.raises(InputError, match="--context"):
        attribute_regions(zoo_pairs.model_dir, zoo_pairs.bed, out, fasta=FASTA)
    with pytest.raises(InputError, match="no DNA sequence input to attribute to"):
        attribute_regions(zoo_signal.model_dir, zoo_signal.bed, out, fasta=FASTA)
    assert not out.exists()
