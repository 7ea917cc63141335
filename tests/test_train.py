"""train.py: outputs, streamed validation metrics, resume after kill -9, and every refusal."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import BIN_DIR, assert_clean_failure, read_only, run_script, tiny_params, write_json

from basenji_tk import files
from basenji_tk.model import feeds, models, seeds, wiring
from basenji_tk.data import tfrecords
from basenji_tk.errors import InputError
from basenji_tk.stats import pearson_r, r_squared
from basenji_tk.model.train import KILL_ENV, train


def history(model_dir):
    with open(model_dir / "history.tsv") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_outputs_and_streamed_validation_metrics(tiny_model, demo_dataset):
    names = set(os.listdir(tiny_model))
    assert {"model_best.keras", "checkpoint.keras", "history.tsv", "params.json", "data_statistics.json",
            "train_state.json", "logs"} <= names
    assert not [n for n in names if ".tmp" in n]
    rows = history(tiny_model)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    params = json.loads((tiny_model / "params.json").read_text())
    assert params["train"]["loss"] == "poisson" and params["model"]["augment_rc"] is False  # defaults resolved
    assert os.listdir(tiny_model / "logs")  # TensorBoard event files

    # val_pearsonr of the best epoch = Pearson r over the whole validation split, per target, averaged
    best = next(r for r in reversed(rows) if r["best"] == "*")
    model = models.load_model(tiny_model / "model_best.keras")
    ys, ps = [], []
    for x, y in tfrecords.dataset(demo_dataset, "valid", batch_size=16):
        ys.append(y.numpy())
        ps.append(model.predict(x, verbose=0))
    n = ys[0].shape[-1]
    y, p = np.concatenate(ys).reshape(-1, n), np.concatenate(ps).reshape(-1, n)
    assert float(best["val_pearsonr"]) == pytest.approx(pearson_r(y, p).mean(), abs=2e-4)
    assert float(best["val_r2"]) == pytest.approx(r_squared(y, p).mean(), abs=2e-4)


@pytest.mark.parametrize("name, imports", [("model_best.keras", "basenji_tk, keras"),
                                           ("checkpoint.keras", "basenji_tk, keras"),
                                           ("checkpoint.keras", "keras, basenji_tk")])
def test_readme_loading_line_works_in_a_fresh_interpreter(tiny_model, name, imports):
    """The README's line, `import basenji_tk` then keras.saving.load_model(path, safe_mode=True), on
    what train.py wrote (compiled with PearsonR/RSquared; checkpoint.keras with the optimizer too)."""
    code = (f"import sys, numpy as np, {imports}\n"
            "m = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
            "logs = m.evaluate(np.ones((2, 16384, 4)), np.ones((2, 128, 3)), return_dict=True, verbose=0)\n"
            "print(' '.join(sorted(logs)), int(m.optimizer.iterations.numpy()))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", code, str(tiny_model / name)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    state = json.loads((tiny_model / "train_state.json").read_text())
    epochs = state["best_epoch"] if name == "model_best.keras" else state["epoch"]
    assert proc.stdout.split() == ["loss", "pearsonr", "r2", str(10 * epochs)]  # the custom metrics; 10 steps/epoch


def test_importing_the_package_does_not_load_keras():
    """Scripts that never use TensorFlow import basenji_tk.cli; that must not pull in Keras."""
    code = "import sys, basenji_tk, basenji_tk.cli; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def random_params(**train):
    """The tiny model with every random state a resumed epoch depends on: dropout in both
    convolutions, pipeline rc and shift (train.rc/shift), in-model rc and shift (SeedGenerators)."""
    params = tiny_params(rc=True, shift=3, **train)
    for spec in params["model"]["trunk"]:
        spec["dropout"] = 0.3
    params["model"].update(augment_rc=True, augment_shift=2)
    return params


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path, demo_dataset):
    """kill -9 in the middle of epoch 2; --restart loses only that epoch and ends where an
    uninterrupted run ends: same history, bit-identical weights (so the optimizer state and
    every random state came back: dropout, shuffling, both kinds of augmentation)."""
    params = write_json(tmp_path / "p.json", random_params(epochs=3, steps_per_epoch=6))
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run_script("train.py", "-q", "--seed", 3, params, demo_dataset, "-o", straight, check=True)

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{KILL_ENV: "9"})  # step 9 = batch 3 of epoch 2
    proc = subprocess.run([str(BIN_DIR / "train.py"), "-q", "--seed", "3", str(params), str(demo_dataset),
                           "-o", str(killed)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    assert [r["epoch"] for r in history(killed)] == ["1"]
    assert json.loads((killed / "train_state.json").read_text())["epoch"] == 1

    run_script("train.py", "-q", "--seed", 3, "--restart", params, demo_dataset, "-o", killed, check=True)
    a, b = history(straight), history(killed)
    assert [r["epoch"] for r in b] == ["1", "2", "3"]
    for ra, rb in zip(a, b):
        assert ra["val_loss"] == rb["val_loss"] and ra["loss"] == rb["loss"]
    ma = models.load_model(straight / "checkpoint.keras", compile=True)
    mb = models.load_model(killed / "checkpoint.keras", compile=True)
    assert int(mb.optimizer.iterations.numpy()) == 18
    assert len(seeds.seed_generators(mb)) == 4  # 2 dropouts, in-model rc and shift
    wa, wb = ma.get_weights(), mb.get_weights()
    assert len(wa) == len(wb) > 0
    for x, y in zip(wa, wb):
        assert np.array_equal(x, y), float(np.abs(x - y).max())


def test_refuses_to_overwrite_a_model(tmp_path, tiny_model, demo_dataset):
    params = tiny_model / "params.json"
    line = assert_clean_failure(run_script("train.py", params, demo_dataset, "-o", tiny_model))
    assert "already holds a model" in line and "--restart" in line and "--force" in line
    line = assert_clean_failure(run_script("train.py", "--restart", params, demo_dataset, "-o", tmp_path / "new"))
    assert "nothing to restart" in line
    other = write_json(tmp_path / "other.json", tiny_params(epochs=2, optimizer="sgd"))
    line = assert_clean_failure(run_script("train.py", "--restart", other, demo_dataset, "-o", tiny_model))
    assert "different params: train.optimizer was \"adam\", now \"sgd\"" in line


def test_force_replaces_a_model(tmp_path, demo_dataset):
    params = write_json(tmp_path / "p.json", tiny_params(steps_per_epoch=2))
    out = tmp_path / "m"
    run_script("train.py", "-q", params, demo_dataset, "-o", out, check=True)
    (out / "notes.txt").write_text("mine")
    run_script("train.py", "-q", "--force", params, demo_dataset, "-o", out, check=True)
    assert len(history(out)) == 1 and (out / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("change, expected", [
    ({"trunk": [{"name": "conv_block", "filters": 4, "pool_size": 64}]},
     "the model outputs 256 x 3 (bins x targets) but {data} has 128 bins x 3 targets"),
    ({"seq_length": 8192}, "model.seq_length is 8192 but {data} holds 16384 bp sequences"),
    ({"trunk": [{"name": "dilated_dens", "filters": 4}]}, "unknown block 'dilated_dens'; allowed blocks:"),
    ({"trunk": [{"name": "conv_block", "filters": 4, "pool_size": 128, "pool": 2}]},
     "(conv_block): unknown argument 'pool'; allowed: filters, kernel_size"),
    ({"num_targets": 5}, "model.num_targets is 5 but {data} has 3 targets"),
])
def test_params_that_do_not_fit_the_data(tmp_path, demo_dataset, change, expected):
    params = tiny_params()
    params["model"].update(change)
    path = write_json(tmp_path / "p.json", params)
    with pytest.raises(InputError) as err:  # in-process: the CLI's one-line boundary is tested above
        train(path, [demo_dataset], str(tmp_path / "m"))
    assert expected.format(data=demo_dataset) in str(err.value)
    assert not (tmp_path / "m").exists()  # the folder it made is gone again


def test_a_failed_run_leaves_no_folder_and_keeps_an_existing_model(tmp_path, tiny_model, demo_dataset):
    # a fresh run whose first epoch fails (NaN loss): what it wrote is removed, and the folder it made
    bad = write_json(tmp_path / "bad.json", tiny_params(steps_per_epoch=4, learning_rate=1e12))
    line = assert_clean_failure(run_script("train.py", "--seed", 0, bad, demo_dataset, "-o", tmp_path / "new"))
    assert "training loss became" in line and "no checkpoint was written" in line
    assert not (tmp_path / "new").exists()
    # --force with a model that does not fit the data: the model already there stays as it was
    existing = tmp_path / "existing"
    shutil.copytree(tiny_model, existing)
    before = {p.relative_to(existing): p.read_bytes() for p in existing.rglob("*") if p.is_file()}
    unfit = tiny_params()
    unfit["model"]["seq_length"] = 8192
    line = assert_clean_failure(run_script("train.py", "--force", write_json(tmp_path / "unfit.json", unfit),
                                           demo_dataset, "-o", existing), "seq_length is 8192")
    assert {p.relative_to(existing): p.read_bytes() for p in existing.rglob("*") if p.is_file()} == before


def test_unwritable_output_and_a_concurrent_run_are_one_error(tmp_path, demo_dataset):
    params = write_json(tmp_path / "p.json", tiny_params())
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = subprocess.run([*read_only(ro), str(BIN_DIR / "train.py"), str(params), str(demo_dataset),
                           "-o", str(ro / "m")], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert_clean_failure(proc, str(ro / "m"), "read-only file system")
    out = tmp_path / "m"
    with files.claim(out):  # another run holds the folder
        proc = run_script("train.py", params, demo_dataset, "-o", out)
    assert_clean_failure(proc, str(out), f"process {os.getpid()}")
    assert os.listdir(out) == []  # the second run wrote nothing


def test_restart_refuses_a_changed_dataset_file(tmp_path, demo_dataset):
    """A dataset file changed in place between the kill and --restart: one error naming the file."""
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    params = write_json(tmp_path / "p.json", tiny_params(epochs=2, steps_per_epoch=2))
    out = tmp_path / "m"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{KILL_ENV: "3"})  # in epoch 2
    proc = subprocess.run([str(BIN_DIR / "train.py"), "-q", str(params), str(data), "-o", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL
    saved = json.loads((out / "inputs.json").read_text())
    assert saved["params"]["path"] == str(params) and "statistics.json" in saved["data_dirs"][0]["files"]

    other = tmp_path / "other"
    shutil.copytree(data, other)
    line = assert_clean_failure(run_script("train.py", "--restart", params, other, "-o", out))
    assert "--restart with different data dirs" in line and str(other) in line

    record = tfrecords.split_files(data, "train")[0]
    with open(record, "r+b") as fh:  # same size, one byte different, in the middle
        fh.seek(os.path.getsize(record) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    line = assert_clean_failure(run_script("train.py", "--restart", params, data, "-o", out))
    assert line.startswith(f"error: {record}: ") and "changed since the interrupted run" in line
    assert json.loads((out / "train_state.json").read_text())["epoch"] == 1  # nothing touched


def test_seed_and_epochs_options_are_checked(tmp_path, demo_dataset):
    params = write_json(tmp_path / "p.json", tiny_params())
    assert_clean_failure(run_script("train.py", "--seed", -1, params, demo_dataset, "-o", tmp_path / "m"),
                         "--seed must be in [0, 4294967295]")
    assert_clean_failure(run_script("train.py", "--epochs", 0, params, demo_dataset, "-o", tmp_path / "m"),
                         "--epochs must be at least 1, got 0")
    assert not (tmp_path / "m").exists()


def test_data_dir_without_statistics(tmp_path):
    path = write_json(tmp_path / "p.json", tiny_params())
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: not a dataset folder \\(no statistics.json\\)"):
        train(path, [tmp_path / "empty"], str(tmp_path / "m"))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, demo_dataset):
    params = write_json(tmp_path / "p.json", tiny_params(epochs=3, steps_per_epoch=4))
    out = tmp_path / "m"
    run_script("train.py", "-q", "--seed", 0, "--epochs", 1, params, demo_dataset, "-o", out, check=True)
    before = (out / "checkpoint.keras").read_bytes()
    # Resumed with an absurd step size (--restart may change learning_rate): the loss leaves the numbers.
    bad = write_json(tmp_path / "bad.json", tiny_params(epochs=3, steps_per_epoch=4, learning_rate=1e12))
    proc = run_script("train.py", "--restart", "--seed", 0, bad, demo_dataset, "-o", out)
    line = assert_clean_failure(proc)
    assert "training loss became" in line and "at epoch 2, batch" in line
    assert "checkpoint.keras holds epoch 1" in line
    assert (out / "checkpoint.keras").read_bytes() == before
    assert len(history(out)) == 1


def test_a_dataset_missing_its_record_files(tmp_path, demo_dataset):
    """statistics.json counts valid sequences but the valid records are gone: one error, before any work."""
    data = tmp_path / "data"
    shutil.copytree(demo_dataset, data)
    for path in tfrecords.split_files(data, "valid"):
        os.remove(path)
    params = write_json(tmp_path / "p.json", tiny_params())
    line = assert_clean_failure(run_script("train.py", params, data, "-o", tmp_path / "m"))
    assert line.startswith(f"error: {data}: statistics.json counts ") and "no tfrecords/valid-*.tfr file" in line
    assert not (tmp_path / "m").exists()


def test_several_data_dirs_train_together(tmp_path, demo_dataset):
    """Two datasets of the same layout are sampled together; a different layout is refused."""
    path = write_json(tmp_path / "p.json", tiny_params(steps_per_epoch=3))
    summary = train(path, [demo_dataset, demo_dataset], str(tmp_path / "m"))
    assert summary["epochs"] == 1 and (tmp_path / "m" / "model_best.keras").exists()
    other = tmp_path / "other"
    other.mkdir()
    stats = json.loads((demo_dataset / "statistics.json").read_text())
    (other / "statistics.json").write_text(json.dumps({**stats, "target_length": 64}))
    with pytest.raises(InputError, match="other: target_length 64 differs from .*'s 128"):
        train(path, [demo_dataset, other], str(tmp_path / "m2"))


# ----------------------------------------------------------------------------- the contract: named features in, named outputs out
def contract_dataset(out, n=48, length=64):
    """Real chr20 sequence with a vector input, a positional profile label at 4 bp, a total,
    a binary label and a weight: every kind a params file can bind."""
    from basenji_tk.data import dna, records
    from basenji_tk.io import genome
    from basenji_tk.data.records import Feature
    from conftest import FASTA

    feats = [Feature("sequence", "sequence", (length, 4), "uint8"),
             Feature("expression", "vector", (3,)),
             Feature("profile", "label", (length // 4, 2), resolution=4, label_type="profile"),
             Feature("total", "label", (2,)),
             Feature("bound", "label", (1,), label_type="binary"),
             Feature("weight", "weight", ())]
    g = genome.Genome(FASTA)
    rng = np.random.default_rng(0)
    with files.claim(str(out), folder=False), records.DatasetWriter(out, feats, "regions") as w:
        for i in range(n):
            start = 5_000_000 + 1000 * i
            codes = dna.encode(g.fetch(g.chroms[0], start, start + length))
            gc = float(np.isin(codes, (1, 2)).mean())
            prof = np.stack([np.convolve(np.isin(codes, (1, 2)), np.ones(4), "valid")[::4][:length // 4],
                             rng.random(length // 4)], axis=1)
            w.add("train" if i < 36 else "valid",
                  {"sequence": codes, "expression": rng.random(3), "profile": prof, "total": prof.sum(0),
                   "bound": [float(gc > 0.585)], "weight": rng.random()}, (g.chroms[0], start, start + length))
        w.finish({"semi_synthetic": True})
    g.close()
    return out


@pytest.fixture(scope="module")
def contract_data(tmp_path_factory):
    return contract_dataset(tmp_path_factory.mktemp("contract") / "d")


def two_head_params(**train):
    return {
        "train": {"batch_size": 8, "epochs": 1, "steps_per_epoch": 3, "seed": 0, "sample_weight": "weight",
                  "monitor": "val_total_pearsonr", **train},
        "model": {
            "inputs": {"sequence": {"kind": "sequence", "shape": [64, 4]},
                       "expression": {"kind": "vector", "shape": [3]}},
            "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 5, "pool_size": 4}],
            "heads": {
                "profile": {"loss": "poisson", "weight": 0.5,
                            "blocks": [{"name": "final", "units": 2, "activation": "softplus"}]},
                "total": {"loss": "mse", "weight": 0.5,
                          "blocks": [{"name": "expression_fusion", "input": "expression", "units": [8]},
                                     {"name": "final", "units": 2, "activation": "softplus"}]},
            },
        },
    }


def test_two_inputs_two_heads_and_sample_weights_train(tmp_path, contract_data):
    path = write_json(tmp_path / "p.json", two_head_params())
    summary = train(path, [contract_data], str(tmp_path / "m"))
    assert summary["epochs"] == 1
    rows = history(tmp_path / "m")
    for key in ("loss", "val_loss", "val_profile_loss", "val_total_loss", "val_total_pearsonr", "val_profile_jsd"):
        assert key in rows[0], sorted(rows[0])
    assert summary["best"] == pytest.approx(float(rows[0]["val_total_pearsonr"]), abs=1e-5)
    model = models.load_model(tmp_path / "m" / "model_best.keras")
    assert set(model.input) == {"sequence", "expression"} and set(model.output) == {"profile", "total"}

    # the weights reach the loss: batches of the same records with weights zeroed give a zero weighted loss
    wired = wiring.wire(load(path)["model"], load(path)["train"], records_spec(contract_data), str(path))
    x, y, w = next(iter(feeds.valid_dataset([str(contract_data)], 4, wired)))
    assert set(w) == {"profile", "total"} and tuple(w["profile"].shape) == (4, 1) and tuple(w["total"].shape) == (4,)


def load(path):
    from basenji_tk.model.params import load_params

    return load_params(path)


def records_spec(d):
    from basenji_tk.data import records

    return records.load_spec(d)


@pytest.mark.parametrize("edit, expected", [
    (lambda p: p["model"]["inputs"].update(tf_expression={"kind": "vector", "shape": [3]}),
     "model.inputs.tf_expression names feature 'tf_expression', but {data} has no such feature (it has: sequence, "
     "expression, profile, total, bound, weight)"),
    (lambda p: p["model"]["inputs"]["expression"].update(shape=[4]),
     "model.inputs.expression has shape [4], but {data} feature 'expression' is [3]"),
    (lambda p: p["model"]["inputs"]["expression"].update(kind="signal", shape=[3, 1]),
     "model.inputs.expression is a signal input, but {data} feature 'expression' is a vector"),
    (lambda p: p["model"]["heads"]["total"].update(label="totals"),
     "model.heads.total.label names label 'totals', but {data} has no such feature"),
    (lambda p: p["model"]["heads"]["total"].update(label="weight"),
     "model.heads.total.label names 'weight', but in {data} it is a weight, not a label"),
    (lambda p: p["model"]["heads"]["total"]["blocks"][1].update(units=3),
     "output 'total' has shape [3], but its label 'total' in {data} is [2]"),
    (lambda p: p["model"]["trunk"][0].update(pool_size=2) or
     p["model"]["heads"]["profile"]["blocks"].insert(0, {"name": "cropping", "crop": 8}),
     "output 'profile' has one position every 2 bp, but its label 'profile' in {data} is at 4 bp per position"),
    (lambda p: p["train"].update(sample_weight="bound"),
     "train.sample_weight names 'bound', but {data} has no weight feature of that name (weights: weight)"),
    (lambda p: p["train"].update(monitor="val_total_auprc"),
     "train.monitor is val_total_auprc, but this model logs only val_loss, val_profile_loss"),
    (lambda p: p["train"].update(balance={"label": "total", "positive_fraction": 0.25}),
     "train.balance.label names 'total', but {data} has no binary label of that name"),
])
def test_params_and_data_that_do_not_wire(tmp_path, contract_data, edit, expected):
    params = two_head_params()
    edit(params)
    path = write_json(tmp_path / "p.json", params)
    with pytest.raises(InputError) as err:
        train(path, [contract_data], str(tmp_path / "m"))
    assert f"{path}: " + expected.format(data=contract_data) in str(err.value)
    assert not (tmp_path / "m").exists()


def test_a_wiring_error_is_one_line_from_the_script(tmp_path, contract_data):
    params = two_head_params()
    params["model"]["inputs"]["rna"] = {"kind": "vector", "shape": [3]}
    path = write_json(tmp_path / "p.json", params)
    assert_clean_failure(run_script("train.py", path, contract_data, "-o", tmp_path / "m"),
                         "model.inputs.rna names feature 'rna'", str(contract_data))


def test_balanced_batches_hold_one_positive_to_three_negatives(contract_data):
    from basenji_tk.data import records

    ds = records.dataset(contract_data, "train", shuffle=True, seed=1)
    batches = list(feeds.balance(ds, "bound", 0.25, 8).batch(8).take(12).as_numpy_iterator())
    assert all(int(b["bound"].sum()) == 2 for b in batches)
    labels = [r["bound"][0] for r in records.read_records(contract_data, "train")]
    assert 0 < sum(labels) < len(labels) / 4  # positives are rarer than 1 in 4 here, so they were upsampled


def test_init_from_copies_layers_by_name_and_freeze_keeps_them(tmp_path, contract_data):
    first = write_json(tmp_path / "a.json", two_head_params())
    train(first, [contract_data], str(tmp_path / "a"))
    second = two_head_params(init_from=str(tmp_path / "a"), freeze=["conv1d"], learning_rate=0.01)
    second["model"]["heads"]["total"]["blocks"][0]["units"] = [16]  # a layer that cannot be copied
    path = write_json(tmp_path / "b.json", second)
    train(path, [contract_data], str(tmp_path / "b"))
    a = models.load_model(tmp_path / "a" / "model_best.keras")
    b = models.load_model(tmp_path / "b" / "model_best.keras")
    conv_a, conv_b = a.get_layer("conv1d"), b.get_layer("conv1d")
    assert not conv_b.trainable
    for x, y in zip(conv_a.get_weights(), conv_b.get_weights()):
        np.testing.assert_array_equal(x, y)  # copied, then frozen through training
    # the profile head's dense was copied and tuned (trainable); the wider fusion layer was left as built
    assert b.get_layer("dense").trainable
    assert not np.array_equal(a.get_layer("dense").get_weights()[0], b.get_layer("dense").get_weights()[0])
    assert a.get_layer("dense_1").get_weights()[0].shape == (131, 8) != b.get_layer("dense_1").get_weights()[0].shape

    bad = write_json(tmp_path / "c.json", two_head_params(init_from=str(tmp_path / "a"), freeze=["lstm"]))
    with pytest.raises(InputError, match="train.freeze names 'lstm', which matches no layer copied from"):
        train(bad, [contract_data], str(tmp_path / "c"))
