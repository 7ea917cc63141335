"""Training-side pieces of ChromDragoNN: validation loss against steps (train.validate_every,
history_steps.tsv, plot_history.py), ``train.py --set KEY=VALUE``, and stage 2's Freeze and Tune
initialised from stage 1 (train.init_from, train.freeze), with the errors when the trunks differ.

Tiny models (about 2,000 parameters) on the zoo's SEMI-SYNTHETIC pairs dataset (zoo_pairs: chr20
bins x 5 contexts, 20 "TFs"); a few steps each.
"""

import copy
import csv
import json
import logging

import numpy as np
import pytest

from conftest import assert_clean_failure, run_script, write_json

from basenji_tk.errors import InputError
from basenji_tk.model.params import apply_sets, load_params
from basenji_tk.model.train import Options, train

TRUNK = [{"name": "conv_block", "filters": 8, "kernel_size": 9, "pool_size": 4},
         {"name": "conv_block", "filters": 8, "kernel_size": 5, "pool_size": 5}]
STAGE1 = {"train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "loss": "bce", "monitor": "val_loss"},
          "model": {"name": "tiny_stage1", "inputs": {"sequence": {"kind": "sequence", "shape": [500, 4]}},
                    "trunk": TRUNK,
                    "heads": {"training_contexts": {"label": "training_contexts", "loss": "bce", "blocks": [
                        {"name": "dense_block", "units": 8, "flatten": True},
                        {"name": "final", "activation": "sigmoid"}]}}}}
STAGE2 = {"train": {"batch_size": 16, "epochs": 2, "steps_per_epoch": 3, "loss": "bce", "monitor": "val_auprc",
                    "validate_every": 2, "validation_steps": 1000},
          "model": {"name": "tiny_stage2",
                    "inputs": {"sequence": {"kind": "sequence", "shape": [500, 4]},
                               "expression": {"kind": "vector", "shape": [20]},
                               "mean_accessibility": {"kind": "vector", "shape": [1]}},
                    "trunk": TRUNK,
                    "heads": {"accessible": {"label": "accessible", "loss": "bce", "blocks": [
                        {"name": "expression_fusion", "input": "expression", "scalar_input": "mean_accessibility",
                         "units": [16, 8], "scalar_at": 1, "dropout": 0.1},
                        {"name": "final", "units": 1, "activation": "sigmoid"}]}}}}


def rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def fit(params, data, out, *sets, **opts):
    return train(params, [data], str(out), Options(seed=0, quiet=True, sets=tuple(sets), **opts))


def weights(path):
    from basenji_tk.model import models

    return {w.path: np.asarray(w) for w in models.load_model(path).weights}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    work = tmp_path_factory.mktemp("steps")
    return {"s1": write_json(work / "stage1.json", STAGE1), "s2": write_json(work / "stage2.json", STAGE2),
            "work": work}


# ----------------------------------------------------------------------------- --set
def test_set_merges_dotted_keys_json_values_and_strings():
    raw = copy.deepcopy(STAGE2)
    got = apply_sets(raw, ["train.freeze=true", "train.init_from=runs/s1", "train.fold=2",
                           "model.heads.accessible.blocks.0.units=[1000,100]", "model.trunk.1.filters=12",
                           "train.clip_norm=null", "model.heads.accessible.metrics=[\"auprc\"]"])
    assert raw == STAGE2  # the file's content is not changed in place
    tp, hp = got["train"], got["model"]["heads"]["accessible"]
    assert (tp["freeze"], tp["init_from"], tp["fold"], tp["clip_norm"]) == (True, "runs/s1", 2, None)
    assert hp["blocks"][0]["units"] == [1000, 100] and hp["metrics"] == ["auprc"]
    assert got["model"]["trunk"][1]["filters"] == 12 and got["model"]["trunk"][0] == TRUNK[0]
    assert apply_sets(raw, ["train.epochs=3", "train.epochs=5"])["train"]["epochs"] == 5  # in order


@pytest.mark.parametrize("item, words", [
    ("trainer.epochs=3", ["unknown section 'trainer'", "--set trainer.epochs=3"]),
    ("model.trunk.5.filters=3", ["--set model.trunk.5.filters=3", "model.trunk has 2 entries"]),
    ("train.epochs.max=3", ["train.epochs is 2", "'max' cannot be set"]),
    ("model.trunk.first=1", ["model.trunk is a list"]),
    ("train.epochs", ["expected KEY=VALUE"]),
    ("train.epoch=3", ["--set train.epoch=3", "unknown key 'train.epoch'"]),
    ("train.balance.label=accessible", ["--set train.balance.label", "train.balance"]),
])
def test_set_errors_name_the_set(files, item, words):
    with pytest.raises(InputError) as err:
        load_params(files["s2"], [item])
    for w in words:
        assert w in str(err.value), str(err.value)


# ----------------------------------------------------------------------------- history_steps.tsv
@pytest.fixture(scope="module")
def stage2_runs(files, zoo_pairs):
    """Stage 2 from random weights, 2 epochs of 3 steps: with checks every 2 steps, without, and in
    two pieces (1 epoch, then --restart) with the rows a kill in epoch 2 would have left."""
    work, data = files["work"], zoo_pairs.data_dir
    fit(files["s2"], data, work / "every2")
    fit(files["s2"], data, work / "plain", "train.validate_every=null")
    split = work / "split"
    fit(files["s2"], data, split, epochs=1)
    with open(split / "history_steps.tsv", "a") as fh:  # a row of epoch 2 written before a kill
        fh.write("4\t2\t9\t9\t9\n")
    fit(files["s2"], data, split, restart=True)
    return work


def test_history_steps_rows_agree_with_history(stage2_runs):
    steps, epochs = rows(stage2_runs / "every2" / "history_steps.tsv"), rows(stage2_runs / "every2" / "history.tsv")
    assert list(steps[0]) == ["step", "epoch", "train_loss", "val_loss", "val_auprc"]
    assert [(r["step"], r["epoch"]) for r in steps] == [("2", "1"), ("4", "2"), ("6", "2")]
    # step 6 ends epoch 2 and the checks use every validation batch: Keras's own val_loss and val_auprc
    for key in ("val_loss", "val_auprc"):
        assert float(steps[-1][key]) == pytest.approx(float(epochs[1][key]), rel=1e-5)
    # train_loss: the mean batch loss since the last check (2 batches each), so over the 6 batches it is
    # the mean of the two epochs' training losses
    assert np.mean([float(r["train_loss"]) for r in steps]) == pytest.approx(
        np.mean([float(r["loss"]) for r in epochs]), rel=1e-5)
    assert len({r["val_loss"] for r in steps}) == 3  # the model changes between checks


def test_checks_leave_the_training_run_unchanged(stage2_runs):
    with_checks, plain = rows(stage2_runs / "every2" / "history.tsv"), rows(stage2_runs / "plain" / "history.tsv")
    drop = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert drop(with_checks) == drop(plain)
    a, b = weights(stage2_runs / "every2" / "checkpoint.keras"), weights(stage2_runs / "plain" / "checkpoint.keras")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not (stage2_runs / "plain" / "history_steps.tsv").exists()


def test_restart_appends_without_duplicate_steps(stage2_runs):
    """The piecewise run drops the leftover row of the unfinished epoch and ends with the rows of the
    uninterrupted run, train_loss of step 4 (steps 3 and 4, across the restart) included."""
    assert (stage2_runs / "split" / "history_steps.tsv").read_text() == \
        (stage2_runs / "every2" / "history_steps.tsv").read_text()


def test_restart_refuses_another_set(stage2_runs, files, zoo_pairs):
    out = stage2_runs / "every2"
    before = (out / "history_steps.tsv").read_text()
    with pytest.raises(InputError) as err:
        fit(files["s2"], zoo_pairs.data_dir, out, "model.heads.accessible.blocks.0.units=[16,4]", restart=True)
    assert "--restart with different params" in str(err.value)
    assert "model.heads.accessible.blocks.0.units.1 was 8, now 4" in str(err.value)
    assert "\n" not in str(err.value) and (out / "history_steps.tsv").read_text() == before
    saved = json.loads((out / "params.json").read_text())
    assert saved["train"]["validate_every"] == 2 and json.loads((out / "inputs.json").read_text())["sets"] == []


def test_restart_of_a_run_from_before_validate_every(stage2_runs, files, zoo_pairs):
    """A model folder whose params.json predates the two keys restarts when they are at their defaults."""
    out = stage2_runs / "plain"
    saved = json.loads((out / "params.json").read_text())
    for key in ("validate_every", "validation_steps"):
        del saved["train"][key]
    (out / "params.json").write_text(json.dumps(saved))
    summary = fit(files["s2"], zoo_pairs.data_dir, out, "train.validate_every=null", "train.validation_steps=20",
                  restart=True)
    assert summary["epochs"] == 2 and not (out / "history_steps.tsv").exists()


def test_validate_every_without_validation_batches(zoo_pairs):
    import tensorflow as tf

    from basenji_tk.model.steps import check_valid_batches

    with pytest.raises(InputError, match="train.validate_every needs validation batches"):
        check_valid_batches(tf.data.Dataset.range(0), [str(zoo_pairs.data_dir)], 20)
    assert check_valid_batches(tf.data.Dataset.range(3), ["d"], 20) == 3


# ----------------------------------------------------------------------------- Freeze and Tune
@pytest.fixture(scope="module")
def two_stages(files, zoo_pairs):
    """Stage 1 on the regions view, then stage 2 initialised from it, frozen and tuned (--set)."""
    work, data = files["work"], zoo_pairs.data_dir
    fit(files["s1"], data, work / "s1")
    for variant, freeze in (("freeze", "true"), ("tune", "false")):
        fit(files["s2"], data, work / variant, f"train.init_from={work / 's1'}", f"train.freeze={freeze}",
            "train.epochs=1", *(["train.validate_every=null"] if freeze == "true" else []))
    return work


def trunk_names():
    from basenji_tk.model import models
    from basenji_tk.model.params import check_params

    return models.trunk_layer_names(check_params(copy.deepcopy(STAGE2))["model"])


def test_freeze_keeps_exactly_the_stage1_trunk(two_stages):
    from basenji_tk.model import models

    names = trunk_names()
    assert names == ["conv1d", "batch_normalization", "conv1d_1", "batch_normalization_1"]
    one = models.load_model(two_stages / "s1" / "model_best.keras")
    frozen = models.load_model(two_stages / "freeze" / "checkpoint.keras")
    assert [lyr.name for lyr in frozen.layers if lyr.weights and not lyr.trainable] == names
    for name in names:  # kernels and batch-norm statistics: what stage 1 ended with
        for a, b in zip(frozen.get_layer(name).get_weights(), one.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    import keras

    from basenji_tk.model.params import check_params

    keras.utils.set_random_seed(0)  # what train.py does before it builds: the head's starting weights
    start = models.build_model(check_params(copy.deepcopy(STAGE2))["model"])
    for name in ("dense", "dense_1", "dense_2"):  # the head trains
        assert frozen.get_layer(name).trainable
        assert not np.array_equal(frozen.get_layer(name).get_weights()[0], start.get_layer(name).get_weights()[0])
    assert json.loads((two_stages / "freeze" / "params.json").read_text())["train"]["freeze"] is True


def test_tune_trains_everything(two_stages):
    from basenji_tk.model import models

    one = models.load_model(two_stages / "s1" / "model_best.keras")
    tuned = models.load_model(two_stages / "tune" / "checkpoint.keras")
    assert all(lyr.trainable for lyr in tuned.layers if lyr.weights)
    for name in trunk_names():
        assert not np.array_equal(tuned.get_layer(name).get_weights()[0], one.get_layer(name).get_weights()[0]), name


def test_task_blocks_carry_the_stage1_head_into_stage2(two_stages, files, zoo_pairs):
    """The authors' stage 2: stage 1's head rebuilt inside the fusion (task_blocks) is filled by
    init_from, one logit per training context of the fold, joined after the first dense layer."""
    from basenji_tk.model import models

    head = copy.deepcopy(STAGE1["model"]["heads"]["training_contexts"]["blocks"])
    head[-1]["activation"] = "linear"  # the logits
    out = two_stages / "tasks"
    fit(files["s2"], zoo_pairs.data_dir, out, f"train.init_from={two_stages / 's1'}", "train.freeze=true",
        "train.epochs=1", "train.validate_every=null", "model.heads.accessible.blocks.0.task_blocks=" + json.dumps(head))
    one = models.load_model(two_stages / "s1" / "model_best.keras")
    two = models.load_model(out / "checkpoint.keras")
    n = one.get_layer("dense_1").get_weights()[0].shape[1]  # stage 1's final: one unit per training context
    assert n == len(json.loads((zoo_pairs.data_dir / "statistics.json").read_text())["pairs"]["folds"][0]["train"])
    for name in ("dense", "dense_1"):  # stage 1's head, frozen with the trunk and equal to stage 1's
        assert not two.get_layer(name).trainable
        for a, b in zip(two.get_layer(name).get_weights(), one.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert two.get_layer("dense_3").get_weights()[0].shape[0] == 16 + n + 1 + 1  # h, logits, their mean, the mean
    assert two.get_layer("dense_3").trainable


def test_plot_history_overlays_runs(two_stages, stage2_runs, tmp_path):
    """Fig. 1B: stage 2 from stage 1 (tuned) and from random weights, per step."""
    fig = tmp_path / "fig1b_SEMI-SYNTHETIC.png"
    proc = run_script("plot_history.py", "-q", two_stages / "tune", stage2_runs / "every2", "--labels",
                      "stage-1 init,random init", "--steps", "-o", fig, "--title", "SEMI-SYNTHETIC", check=True)
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", proc.stderr
    assert_clean_failure(run_script("plot_history.py", two_stages / "tune", "-o", fig), str(fig), "--force")
    epochs = tmp_path / "epochs.png"
    run_script("plot_history.py", two_stages / "s1", "-o", epochs, "--metric", "val_loss", check=True)
    assert_clean_failure(run_script("plot_history.py", two_stages / "s1", "--steps", "-o", tmp_path / "x.png"),
                         "history_steps.tsv", "train.validate_every")
    assert_clean_failure(run_script("plot_history.py", two_stages / "s1", "--metric", "val_pearsonr", "-o",
                                    tmp_path / "x.png"), "history.tsv", "no column 'val_pearsonr'")
    assert not (tmp_path / "x.png").exists()


# ----------------------------------------------------------------------------- trunks that differ
def test_a_partly_matching_trunk_warns_and_refuses_to_freeze(two_stages, caplog):
    from basenji_tk.model import models
    from basenji_tk.model.params import check_params
    from basenji_tk.model.transfer import init_from

    params = check_params(apply_sets(STAGE2, ["model.trunk.1.filters=6",
                                              f"train.init_from={two_stages / 's1'}"]), "p.json")
    model = models.build_model(params["model"], where="p.json")
    with caplog.at_level(logging.WARNING, logger="basenji_tk"):
        copied = init_from(model, params["train"], "p.json", params["model"])
    assert copied == ["conv1d", "batch_normalization"]
    assert "2 trunk layers were not initialised" in caplog.text and "conv1d_1, batch_normalization_1" in caplog.text
    for freeze in (True, ["conv1d_1"]):
        with pytest.raises(InputError, match="train.freeze is .* 2 trunk layers were not initialised"):
            init_from(models.build_model(params["model"]), {**params["train"], "freeze": freeze}, "p.json",
                      params["model"])


def test_a_trunk_that_shares_nothing_is_one_error_line(two_stages, files, zoo_pairs, tmp_path):
    out = tmp_path / "m"
    proc = run_script("train.py", files["s2"], zoo_pairs.data_dir, "-o", out, "--set",
                      f"train.init_from={two_stages / 's1'}", "--set", "model.trunk.0.filters=12")
    line = assert_clean_failure(proc, str(files["s2"]), "--set", str(two_stages / "s1" / "model_best.keras"),
                                "shares no layer")
    assert "model.trunk.0.filters=12" in line and not out.exists()


def test_valid_batches_is_a_fixed_sample_of_the_valid_pairs(zoo_pairs, files, tmp_path):
    """train.valid_batches: the same N batches every epoch, drawn from the whole valid split (not
    its first regions), and the epoch's val_loss is theirs."""
    from basenji_tk.data import records
    from basenji_tk.model.feeds import valid_dataset
    from basenji_tk.model.wiring import wire

    params = load_params(files["s2"])
    spec = records.load_spec(str(zoo_pairs.data_dir))
    wiring = wire(params["model"], params["train"], spec, "p")
    whole = list(valid_dataset([str(zoo_pairs.data_dir)], 4, wiring))
    sample = valid_dataset([str(zoo_pairs.data_dir)], 4, wiring, batches=3)
    first, second = list(sample), list(sample)
    assert len(first) == 3 < len(whole)
    for a, b in zip(first, second):  # the same batches each time the epoch's validation runs
        np.testing.assert_array_equal(a[0]["sequence"], b[0]["sequence"])
    head = np.concatenate([b[0]["expression"] for b in whole[:3]])
    assert not np.array_equal(np.concatenate([b[0]["expression"] for b in first]), head)  # shuffled, not the head
    out = tmp_path / "m"
    fit(files["s2"], zoo_pairs.data_dir, out, "train.valid_batches=3")
    assert json.load(open(out / "params.json"))["train"]["valid_batches"] == 3
    assert all(np.isfinite(float(r["val_loss"])) for r in rows(out / "history.tsv"))
