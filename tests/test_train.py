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

from basenji_tk import files, metrics, models, tfrecords
from basenji_tk import train as train_module
from basenji_tk.errors import InputError
from basenji_tk.train import KILL_ENV, train


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
    assert float(best["val_pearsonr"]) == pytest.approx(metrics.pearson_r(y, p).mean(), abs=2e-4)
    assert float(best["val_r2"]) == pytest.approx(metrics.r_squared(y, p).mean(), abs=2e-4)


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
    assert len(train_module.seed_generators(mb)) == 4  # 2 dropouts, in-model rc and shift
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
