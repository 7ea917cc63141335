"""basenji_tk.analysis.trained: every zoo model loads into one TrainedModel with the right inputs and outputs."""

import numpy as np
import pytest

from basenji_tk.analysis.inputs import InputOptions, extra_inputs
from basenji_tk.analysis.trained import TrainedModel
from basenji_tk.errors import InputError
from zoo import KINDS

EXPECTED = {  # kind -> ({input: kind}, {output: (kind, shape, resolution, offset)})
    "binned": ({"sequence": "sequence"}, {"target": ("binned", (128, 3), 128, 0)}),
    "pairs": ({"sequence": "sequence", "expression": "vector"}, {"accessible": ("probability", (1,), None, None)}),
    "profile": ({"sequence": "sequence"}, {"profile": ("profile", (100, 3), 1, 150), "total": ("total", (3,), None, None)}),
    "table": ({"sequence": "sequence"}, {"activity": ("value", (4,), None, None)}),
    "signal": ({"marks": "signal"}, {"ctcf": ("binned", (10, 1), 100, 500)}),
    "imported_keras": ({"sequence": "sequence"}, {"target": ("binned", (100, 3), 1, 150)}),
    "imported_h5": ({"sequence": "sequence"}, {"target": ("binned", (128, 3), 128, 0)}),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_zoo_model_loads(kind, request):
    z = request.getfixturevalue(f"zoo_{kind}")
    tm = TrainedModel.load(z.model_dir)
    inputs, outputs = EXPECTED[kind]
    assert {n: i.kind for n, i in tm.inputs.items()} == inputs
    got = {n: (o.kind, o.shape, o.resolution, o.offset) for n, o in tm.outputs.items()}
    assert got == outputs
    for o in tm.outputs.values():
        assert len(o.targets) == o.num_targets



def _dataset_records(z, split="test", view="pairs", n=8):
    from basenji_tk.data import records

    batch = next(records.dataset(z.data_dir, split, batch_size=n, with_index=True, view=view).as_numpy_iterator())
    return batch


def test_rc_ensemble_flips_positional_outputs_back(zoo_profile):
    tm = TrainedModel.load(zoo_profile.model_dir)
    x = _dataset_records(zoo_profile)["sequence"]
    forward = tm.model.predict(x, verbose=0)
    reverse = tm.model.predict(x[:, ::-1, ::-1], verbose=0)
    got = tm.predict(x, rc=True)
    np.testing.assert_allclose(got["profile"], (forward["profile"] + reverse["profile"][:, ::-1]) / 2, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(got["total"], (forward["total"] + reverse["total"]) / 2, rtol=1e-5, atol=1e-6)
    assert tm.predictor(rc=True) is tm.predictor(rc=True)  # built once


def test_rc_of_a_pairs_model_keeps_the_context_vector(zoo_pairs):
    tm = TrainedModel.load(zoo_pairs.model_dir)
    ex = _dataset_records(zoo_pairs)
    x = {"sequence": ex["sequence"], "expression": ex["expression"]}
    forward = tm.model.predict(x, verbose=0)["accessible"]
    reverse = tm.model.predict({**x, "sequence": x["sequence"][:, ::-1, ::-1]}, verbose=0)["accessible"]
    np.testing.assert_allclose(tm.predict(x, rc=True)["accessible"], (forward + reverse) / 2, rtol=1e-5, atol=1e-7)
    with pytest.raises(InputError, match="--shifts: 500 is not shorter"):
        tm.predictor(shifts=(0, 500))


def test_logits_are_the_outputs_before_their_activation(zoo_pairs, zoo_profile):
    tm = TrainedModel.load(zoo_pairs.model_dir)
    ex = _dataset_records(zoo_pairs)
    x = {"sequence": ex["sequence"], "expression": ex["expression"]}
    probs, logits = tm.predict(x)["accessible"], tm.predict(x, logits=True)["accessible"]
    assert tm.outputs["accessible"].activation == "sigmoid"
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tm.output_model("accessible", logits=True).predict(x, verbose=0), logits, rtol=1e-6)

    tm = TrainedModel.load(zoo_profile.model_dir)
    x = _dataset_records(zoo_profile)["sequence"]
    profile = tm.output_model("profile").predict(x, verbose=0)
    np.testing.assert_allclose(profile, tm.model.predict(x, verbose=0)["profile"], rtol=1e-6)
    z = tm.output_model("profile", logits=True).predict(x, verbose=0)
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(soft / soft.sum(axis=1, keepdims=True), profile, rtol=1e-4, atol=1e-7)
    with pytest.raises(InputError, match="output 'total' has no separate final activation"):
        tm.predictor(logits=True)


def test_signal_inputs_are_read_again_as_the_dataset_stored_them(zoo_signal):
    """For the dataset's own windows, the tracks read through the feature's meta give its records' values."""
    tm = TrainedModel.load(zoo_signal.model_dir)
    ex = _dataset_records(zoo_signal, n=512)
    signal = np.flatnonzero(ex["marks"].sum(axis=(1, 2)) > 0)
    assert signal.size >= 4  # windows with TSS or CpG island signal, and some without
    pick = np.concatenate([signal[:6], np.flatnonzero(ex["marks"].sum(axis=(1, 2)) == 0)[:2]])
    ex = {k: v[pick] for k, v in ex.items()}
    rows = [line.split("\t") for line in (zoo_signal.data_dir / "sequences.bed").read_text().splitlines()]
    windows = [(rows[i][0], int(rows[i][1]), int(rows[i][2])) for i in ex["index"]]
    got = extra_inputs(tm, windows)
    assert set(got) == {"marks"} and got["marks"].shape == (len(windows), 20, 2)
    np.testing.assert_allclose(got["marks"], ex["marks"], rtol=1e-6)
    one = extra_inputs(tm, windows[0])
    np.testing.assert_allclose(one["marks"], ex["marks"][0], rtol=1e-6)
    with pytest.raises(InputError, match="window 20:0-100 is 100 bp; the model's window is 2,000 bp"):
        extra_inputs(tm, [("20", 0, 100)])


def test_context_vectors_from_the_dataset_and_from_a_tsv(zoo_pairs, tmp_path):
    tm = TrainedModel.load(zoo_pairs.model_dir)
    table = np.load(zoo_pairs.data_dir / "contexts.npy")
    names = tm.spec.stats["pairs"]["contexts"]
    got = extra_inputs(tm, [("20", 0, 500)] * 2, InputOptions(context="half_a"))
    np.testing.assert_array_equal(got["expression"], np.repeat(table[names.index("half_a")][None], 2, 0))
    # the raw TSV make_pairs.py read, columns reversed: log2(x + 1) as the dataset, matched by name
    raw = (zoo_pairs.data_dir.parent / "expression_SEMI-SYNTHETIC.tsv").read_text().splitlines()
    cells = [line.split("\t") for line in raw]
    (tmp_path / "reversed.tsv").write_text("\n".join("\t".join([c[0]] + c[1:][::-1]) for c in cells) + "\n")
    tsv = extra_inputs(tm, ("20", 0, 500), InputOptions(context="cpg", context_tsv=str(tmp_path / "reversed.tsv")))
    np.testing.assert_allclose(tsv["expression"], table[names.index("cpg")], rtol=1e-6)
    (tmp_path / "short.tsv").write_text("\n".join("\t".join(c[:5]) for c in cells) + "\n")
    with pytest.raises(InputError, match="--context_tsv: .*short.tsv lacks the column"):
        extra_inputs(tm, ("20", 0, 500), InputOptions(context="cpg", context_tsv=str(tmp_path / "short.tsv")))
    with pytest.raises(InputError, match="--context: 'liver' is not a context of .*contexts.npy "
                                         r"\(contexts: ctcf, cpg, tss, half_a, half_b\)"):
        extra_inputs(tm, ("20", 0, 500), InputOptions(context="liver"))
    with pytest.raises(InputError, match="--input: 'tpm' is not an input of .*inputs: sequence, expression"):
        extra_inputs(tm, ("20", 0, 500), InputOptions(values=("tpm=1",)))


def test_an_imported_two_input_model_needs_its_vector(tmp_path):
    import keras

    from basenji_tk.analysis.cards import import_model
    from conftest import FASTA

    seq, vec = keras.Input((64, 4), name="sequence"), keras.Input((3,), name="tf")
    x = keras.layers.Concatenate()([keras.layers.Flatten()(keras.layers.Conv1D(2, 5)(seq)), vec])
    model = keras.Model({"sequence": seq, "tf": vec}, keras.layers.Dense(1, activation="sigmoid")(x))
    model.save(tmp_path / "two.keras")
    import_model(tmp_path / "two.keras", tmp_path / "m", fasta=FASTA)
    tm = TrainedModel.load(tmp_path / "m")
    assert tm.inputs["tf"].kind == "vector" and tm.output().kind == "probability"
    with pytest.raises(InputError, match=r"model input 'tf' \(vector \[3\]\) needs --input tf=VALUE"):
        extra_inputs(tm, ("20", 0, 64))
    got = extra_inputs(tm, [("20", 0, 64)] * 2, InputOptions(values=("tf=0.5,1,2",)))
    np.testing.assert_array_equal(got["tf"], [[0.5, 1, 2]] * 2)
    with pytest.raises(InputError, match="--context: .* takes no context vector"):
        extra_inputs(tm, ("20", 0, 64), InputOptions(context="cpg", values=("tf=1",)))


def test_outputs_targets_and_layouts(zoo_profile, zoo_table, zoo_binned):
    tm = TrainedModel.load(zoo_profile.model_dir)
    with pytest.raises(InputError, match="has 2 outputs; choose one with --output .*profile, total"):
        tm.output()
    assert tm.select_targets("ctcf,0", "profile") == [(2, "ctcf", "ctcf"), (0, "tss", "tss")]
    with pytest.raises(InputError, match="--targets: 'nope' is neither"):
        tm.select_targets("nope", "total")
    assert tm.track_layout("sat_mut.py", "profile") == dict(seq_length=400, num_bins=100, num_targets=3,
                                                              pool_width=1, bin_offset=150,
                                                              target_ids=["tss", "cpg", "ctcf"])
    with pytest.raises(InputError, match="sed.py needs a sequence model with binned outputs; .*activity: value"):
        TrainedModel.load(zoo_table.model_dir).track_layout("sed.py")
    binned = TrainedModel.load(zoo_binned.model_dir)
    assert binned.track_layout()["target_ids"] == ["ctcf", "cpg", "tss"]
    assert binned.genome().path.endswith("hg19_chr20_20Mb.fa.gz")
    with pytest.raises(InputError, match="names no genome; pass the FASTA with --fasta"):
        TrainedModel.load(zoo_table.model_dir).genome()


def test_folders_that_are_not_models(tmp_path, zoo_imported_keras):
    import json
    import shutil

    with pytest.raises(InputError, match="not a model folder"):
        TrainedModel.load(tmp_path / "nowhere")
    with pytest.raises(InputError, match=r"model_best.keras: model file not found \(.* holds no model"):
        TrainedModel.load(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(zoo_imported_keras.model_dir, bad)
    card = json.loads((bad / "model_card.json").read_text())
    card["outputs"]["target"]["colour"] = "red"
    (bad / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="model_card.json: outputs.target: unknown key 'colour'"):
        TrainedModel.load(bad)
    del card["outputs"]["target"]["colour"]
    card["outputs"]["target"]["targets"] = ["a", "b"]
    (bad / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="outputs.target names 2 targets but the model outputs 3"):
        TrainedModel.load(bad)
