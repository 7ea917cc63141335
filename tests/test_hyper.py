"""hyper_search.py: GPyOpt against random search on a synthetic objective, the domain checks,
the search folder (trials.tsv, best/, plots, restart, refusals), and slow end-to-end runs on data/."""

import csv
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import BIN_DIR, REPO, assert_clean_failure, read_only, run_script, tiny_params, write_json

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.hyper.domain import load_domain, parse_domain
from basenji_tk.hyper.objective import TrainObjective, trial_params
from basenji_tk.hyper.optimizer import optimize, penalised
from basenji_tk.hyper.options import Options
from basenji_tk.hyper.search import hyper_search

spec = importlib.util.spec_from_file_location("bench_hyper", REPO / "benchmarks" / "bench_hyper.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

DOMAIN = {"model.trunk[0].filters": {"type": "discrete", "values": [4, 8, 16], "log": True},
          "train.learning_rate": {"type": "continuous", "range": [1e-4, 1e-2], "log": True},
          "model.trunk[1].dropout": {"type": "continuous", "range": [0.0, 0.5]},  # not set in tiny_params
          "train.optimizer": {"type": "categorical", "values": ["adam", "sgd"]}}


def rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def fake_data(tmp_path):
    """A folder that passes the dataset checks (statistics.json, empty record files); for searches that
    never train."""
    d = tmp_path / "data"
    (d / "tfrecords").mkdir(parents=True)
    write_json(d / "statistics.json", {"seq_length": 16384, "target_length": 128, "num_targets": 3,
                                       "target_ids": ["a", "b", "c"], "train_seqs": 64, "valid_seqs": 8})
    for split in ("train", "valid"):
        (d / "tfrecords" / f"{split}-0.tfr").write_bytes(b"")
    return d


def inputs(tmp_path, domain=DOMAIN, **train):
    return write_json(tmp_path / "params.json", tiny_params(**train)), write_json(tmp_path / "domain.json", domain)


# ----------------------------------------------------------------------------- the optimiser
def test_gpyopt_reaches_the_optimum_and_beats_random_search():
    """Reduced benchmarks/bench_hyper.py: seeds 0-2 of GPyOpt (20 evaluations each): the median
    best-so-far is within 5% of the objective's range of its minimum, and below random search's
    median over 10 seeds (random search is cheap)."""
    gp = np.array([bench.gap_curve("gp", seed=s) for s in range(3)])
    random = np.array([bench.gap_curve("random", seed=s) for s in range(10)])
    assert np.median(gp[:, -1]) <= bench.WITHIN, gp[:, -1]
    assert np.median(gp[:, -1]) < np.median(random[:, -1]), (gp[:, -1], random[:, -1])
    assert np.median(random[:, -1]) > bench.WITHIN  # the problem is not trivial


def test_encoding_round_trips_and_log_dims_sample_in_log_space():
    domain = parse_domain(bench.SPEC)
    for d in domain.gpyopt():
        assert all(0.0 <= v <= 2 for v in np.ravel(d["domain"]))  # scaled to [0, 1] (categories: indices)
    rng = np.random.default_rng(0)
    points = [domain.sample(rng) for _ in range(400)]
    for p in points[:20]:
        assert domain.decode(domain.encode(p)) == pytest.approx(p)
    lrs = np.log10([p["lr"] for p in points])
    assert abs(np.mean(lrs < -2.5) - 0.5) < 0.1  # uniform in log10 over [-4, -1]
    assert {p["opt"] for p in points} == {"adam", "sgd", "rmsprop"}
    assert {p["filters"] for p in points} == {16, 32, 64, 128, 256}


def test_failed_trials_get_a_penalty_and_the_search_goes_on():
    assert list(penalised([1.0, float("nan"), 3.0])) == [1.0, 4.0, 3.0]  # worst + half the spread
    assert list(penalised([2.0, float("nan")])) == [2.0, 3.0]
    assert list(penalised([float("nan")] * 2)) == [1.0, 1.0]
    domain = parse_domain(bench.SPEC)

    def sometimes(number, values):
        if number % 3 == 0:
            raise FloatingPointError("loss became nan")
        return float("nan") if number == 7 else bench.objective(number, values)

    trials = optimize(domain, sometimes, 9, init=4, seed=1, exact=True)
    assert sorted(t.number for t in trials) == list(range(1, 10))
    failed = [t for t in trials if not t.ok]
    assert [t.number for t in failed] == [3, 6, 7, 9]
    assert failed[0].error == "FloatingPointError: loss became nan" and failed[2].error == "objective is nan"


def test_parallel_batches_propose_distinct_points():
    domain = parse_domain(bench.SPEC)
    seen = []

    def slow(number, values):
        seen.append(number)
        time.sleep(0.05)
        return bench.objective(number, values)

    trials = optimize(domain, slow, 9, init=3, seed=0, parallel=3, exact=True)
    assert sorted(t.number for t in trials) == list(range(1, 10))
    points = {json.dumps(t.values, sort_keys=True) for t in trials}
    assert len(points) == 9


# ----------------------------------------------------------------------------- the domain
@pytest.mark.parametrize("domain, words", [
    ({"model.trunk[0].filter": {"type": "discrete", "values": [4, 8]}},
     ["'model.trunk[0].filter' is not a parameter", "nearest: model.trunk[0].filters"]),
    ({"train.learning_rat": {"type": "continuous", "range": [0.1, 0.2]}}, ["nearest: train.learning_rate"]),
    ({"model.trunk[5].dropout": {"type": "continuous", "range": [0.1, 0.2]}}, ["nearest: model.trunk[", "dropout"]),
    ({"train.learning_rate": {"type": "continuous", "range": [0.01, 0.01]}}, ["empty range"]),
    ({"train.learning_rate": {"type": "continuous", "range": [0.1, 0.01]}}, ["inverted range"]),
    ({"train.learning_rate": {"type": "continuous", "range": [0, 0.01], "log": True}}, ["log range must be above 0"]),
    ({"train.learning_rate": {"type": "continuous", "range": [-1, 0.01], "log": True}}, ["log range"]),
    ({"train.learning_rate": {"type": "discrete", "values": [0.0, 0.1], "log": True}}, ["log values"]),
    ({"train.learning_rate": {"type": "categorical", "values": [0.01, "fast"]}},
     ["'train.learning_rate' value \"fast\" does not fit", "must be number"]),
    ({"train.optimizer": {"type": "categorical", "values": ["adam", "rmsprop"]}}, ["rmsprop", "adam, sgd"]),
    ({"train.optimizer": {"type": "continuous", "range": [0, 1]}}, ["not numeric"]),
    ({"model.trunk[0].activation": {"type": "categorical", "values": ["relu", "swoosh"]}}, ["swoosh"]),
    ({"train.batch_size": {"type": "continuous", "range": [0, 8]}}, ["must be >= 1"]),
    ({"train.seed": {"type": "gaussian"}}, ["type must be one of continuous, discrete, categorical"]),
    ({"train.seed": {"type": "discrete", "values": []}}, ["non-empty list"]),
    ({"train.seed": {"type": "discrete", "values": [1, 1]}}, ["twice"]),
    ({}, ["non-empty JSON object"]),
])
def test_bad_domains_are_refused_before_anything_runs(tmp_path, domain, words):
    params, path = inputs(tmp_path, domain)
    with pytest.raises(InputError) as err:
        load_domain(path, params)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_block_defaults_are_tunable_and_integer_ranges_round(tmp_path):
    params, path = inputs(tmp_path, {**DOMAIN, "model.trunk[1].filters": {"type": "continuous", "range": [4, 16]},
                                     "model.head[0].l2_scale": {"type": "continuous", "range": [0, 0.01]}})
    domain, raw = load_domain(path, params)
    assert "dropout" not in raw["model"]["trunk"][1]
    dim = domain.dims[-2]
    assert dim.integer and isinstance(dim.decode(0.37), int)
    values = domain.sample(np.random.default_rng(0))
    p = trial_params(raw, values, Options(objective="valid_loss", epochs=2, steps=3))
    assert p["model"]["trunk"][1]["dropout"] == values["model.trunk[1].dropout"]
    assert p["train"]["epochs"] == 2 and p["train"]["steps_per_epoch"] == 3 and p["train"]["monitor"] == "val_loss"


def test_malformed_domain_json_names_the_line(tmp_path):
    params = write_json(tmp_path / "params.json", tiny_params())
    (tmp_path / "domain.json").write_text('{\n "train.learning_rate": {"type": "continuous",\n "range": [1, 2],}\n}')
    line = assert_clean_failure(run_script("hyper_search.py", params, tmp_path / "domain.json", fake_data(tmp_path),
                                           "-o", tmp_path / "search"))
    assert "not valid JSON" in line and "line 3" in line
    assert not (tmp_path / "search").exists()  # nothing written


# ----------------------------------------------------------------------------- the search folder
def fake_objective(number, values):
    """A synthetic stand-in for training, minimised at learning_rate 1e-3, dropout 0.2, 8 filters, adam."""
    return {"objective": -((math.log10(values["train.learning_rate"]) + 3) ** 2
                           + (values["model.trunk[1].dropout"] - 0.2) ** 2
                           + 0.1 * (math.log2(values["model.trunk[0].filters"]) - 3) ** 2
                           + (0.3 if values["train.optimizer"] == "sgd" else 0.0)),
            "epochs": 1}


def test_search_folder_restart_and_refusals(tmp_path):
    params, domain = inputs(tmp_path)
    data, out = fake_data(tmp_path), tmp_path / "search"
    opts = Options(n_trials=4, init=3, seed=2, objective="valid_pearsonr", steps=2)
    summary = hyper_search(params, domain, [data], out, opts, objective_fn=fake_objective)
    assert summary["trials"] == 4 and summary["failed"] == 0
    table = rows(out / "trials.tsv")
    assert [r["trial"] for r in table] == ["1", "2", "3", "4"]
    assert list(table[0]) == ["trial", *DOMAIN, "objective", "epochs", "seconds", "status", "error"]
    best = max(table, key=lambda r: float(r["objective"]))
    assert summary["best"]["trial"] == int(best["trial"])
    assert json.loads((out / "best" / "trial.json").read_text())["number"] == int(best["trial"])
    for name in ("convergence.png", "params.png", "search.json", "params.json", "domain.json"):
        assert (out / name).stat().st_size > 100, name
    assert not [n for n in os.listdir(out) if "tmp" in n]

    # a different search in the same folder is refused; --restart with the same one goes on
    with pytest.raises(InputError, match="already holds a search.*--restart.*--force"):
        hyper_search(params, domain, [data], out, opts, objective_fn=fake_objective)
    other = write_json(tmp_path / "other.json", {**DOMAIN, "train.momentum": {"type": "continuous",
                                                                                "range": [0.8, 0.99]}})
    budget = write_json(tmp_path / "budget.json", {**DOMAIN, "train.steps_per_epoch": {"type": "discrete",
                                                                                         "values": [2, 4]}})
    with pytest.raises(InputError, match="train.steps_per_epoch, which --steps also sets"):
        hyper_search(params, budget, [data], tmp_path / "budget", opts, objective_fn=fake_objective)
    with pytest.raises(InputError, match="other.json: this domain file's content differs from the interrupted"):
        hyper_search(params, other, [data], out, Options(**{**opts.__dict__, "restart": True}),
                     objective_fn=fake_objective)
    with pytest.raises(InputError, match="--restart with a different search: seed"):
        hyper_search(params, domain, [data], out, Options(**{**opts.__dict__, "restart": True,
                                                             "seed": 3}), objective_fn=fake_objective)

    # a kill while a row was being written leaves a half line: dropped, and that trial runs again
    with open(out / "trials.tsv", "a") as fh:
        fh.write("5\t8\t0.001")
    called = []

    def counting(number, values):
        called.append(number)
        return fake_objective(number, values)

    more = Options(**{**opts.__dict__, "restart": True, "n_trials": 7})
    summary = hyper_search(params, domain, [data], out, more, objective_fn=counting)
    assert called == [5, 6, 7] and summary["trials"] == 7
    assert [r["trial"] for r in rows(out / "trials.tsv")] == [str(n) for n in range(1, 8)]
    assert [r["trial"] for r in rows(out / "trials.tsv")][:4] == [r["trial"] for r in table]

    # --force replaces it
    summary = hyper_search(params, domain, [data], out, Options(n_trials=2, init=2, force=True),
                           objective_fn=fake_objective)
    assert len(rows(out / "trials.tsv")) == 2


def test_script_refuses_a_different_search_and_a_bad_path(tmp_path):
    params, domain = inputs(tmp_path)
    data, out = fake_data(tmp_path), tmp_path / "search"
    out.mkdir()
    write_json(out / "search.json", {"params_sha256": "x"})
    line = assert_clean_failure(run_script("hyper_search.py", params, domain, data, "-o", out), "already holds")
    assert "--restart" in line and "--force" in line
    line = assert_clean_failure(run_script("hyper_search.py", "--restart", params, domain, data, "-o", out))
    assert line.startswith(f"error: {params}: this params file's content differs") and "--force" in line
    bad = write_json(tmp_path / "bad.json", {"model.trunk[0].filtres": {"type": "discrete", "values": [4, 8]}})
    line = assert_clean_failure(run_script("hyper_search.py", params, bad, data, "-o", tmp_path / "new"))
    assert "nearest: model.trunk[0].filters" in line
    assert not (tmp_path / "new").exists()
    assert os.listdir(out) == ["search.json"]


def test_restart_refuses_changed_inputs(tmp_path):
    """Between the kill and --restart: other data dirs, or a dataset file changed in place -> one error
    naming it; and a params.json edited since -> one error naming the file."""
    params, domain = inputs(tmp_path)
    data, out = fake_data(tmp_path), tmp_path / "search"
    hyper_search(params, domain, [data], out, Options(n_trials=2, init=2), objective_fn=fake_objective)
    assert "statistics.json" in json.loads((out / "inputs.json").read_text())["data_dirs"][0]["files"]
    restart = ["hyper_search.py", "--restart", "-n", 3, "--init", 2, params, domain]

    other = tmp_path / "other"
    shutil.copytree(data, other)
    line = assert_clean_failure(run_script(*restart, other, "-o", out), "--restart with different data dirs")
    assert str(other) in line

    stats = data / "statistics.json"
    text = stats.read_text()
    stats.write_text(text.replace('"valid_seqs": 8', '"valid_seqs": 9'))  # same size, other content
    assert len(stats.read_text()) == len(text)
    line = assert_clean_failure(run_script(*restart, data, "-o", out))
    assert line.startswith(f"error: {stats}: ") and "changed since the interrupted run" in line

    stats.write_text(text)
    edited = json.loads(params.read_text())
    edited["train"]["patience"] = 4
    write_json(params, edited)
    line = assert_clean_failure(run_script(*restart, data, "-o", out))
    assert line.startswith(f"error: {params}: this params file's content differs")
    assert len(rows(out / "trials.tsv")) == 2  # nothing ran


def test_unwritable_search_dir_and_a_concurrent_search_are_one_error(tmp_path):
    params, domain = inputs(tmp_path)
    data = fake_data(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = subprocess.run([*read_only(ro), str(BIN_DIR / "hyper_search.py"), str(params), str(domain), str(data),
                           "-o", str(ro / "search")], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert_clean_failure(proc, str(ro / "search"), "read-only file system")
    out = tmp_path / "search"
    with files.claim(out):
        proc = run_script("hyper_search.py", params, domain, data, "-o", out)
    assert_clean_failure(proc, str(out), f"process {os.getpid()}")
    assert os.listdir(out) == []


def test_help_explains_the_objective():
    proc = run_script("hyper_search.py", "--help", check=True)
    text = " ".join(proc.stdout.split())
    assert "--objective {valid_loss,valid_pearsonr,valid_auprc} what each trial is scored on" in text


def test_a_trial_trains_in_its_own_folder_under_the_search_lock(tmp_path, demo_dataset):
    """The search holds its folder's lock while trials run; a trial's train() claims trial_NNN."""
    params, domain = inputs(tmp_path, {"train.learning_rate": DOMAIN["train.learning_rate"]})
    out = tmp_path / "search"
    raw = json.loads(params.read_text())
    with files.claim(out):
        objective = TrainObjective(raw, [demo_dataset], out, Options(objective="valid_loss", epochs=1,
                                                                     steps=2))
        result = objective(1, {"train.learning_rate": 0.001})
    assert math.isfinite(result["objective"]) and result["epochs"] == 1
    trial = out / "trial_001"
    assert (trial / "model_best.keras").exists() and (trial / "inputs.json").exists()
    assert not (trial / files.LOCK_NAME).exists()


# ----------------------------------------------------------------------------- slow: real training
@pytest.mark.slow
def test_search_on_data_end_to_end(tmp_path, demo_dataset):
    """The issue's search: params/demo.json on the demo dataset, 8 trials x 1 epoch of 4 steps
    over first-layer filters, the dilated block's dropout and the learning rate, 2 at a time."""
    params = REPO / "params" / "demo.json"
    domain = write_json(tmp_path / "domain.json", {
        "model.trunk[0].filters": {"type": "discrete", "values": [16, 32, 48]},
        "model.trunk[2].dropout": {"type": "continuous", "range": [0.0, 0.3]},
        "train.learning_rate": {"type": "continuous", "range": [3e-4, 1e-2], "log": True}})
    out = tmp_path / "search"
    proc = run_script("hyper_search.py", "-q", params, domain, demo_dataset, "-o", out, "-n", 8, "--init", 4,
                      "--epochs", 1, "--steps", 4, "--objective", "valid_loss", "--parallel", 2, check=True)
    assert "trials: 8, failed: 0" in proc.stdout
    table = rows(out / "trials.tsv")
    assert sorted(int(r["trial"]) for r in table) == list(range(1, 9))
    first = next(r for r in table if r["trial"] == "1")
    best = min(float(r["objective"]) for r in table)
    assert best <= float(first["objective"])
    assert (out / "best" / "model_best.keras").exists() and (out / "best" / "params.json").exists()
    for n in range(1, 9):
        trial = out / f"trial_{n:03d}"
        assert (trial / "params.json").exists() and (trial / "history.tsv").exists()
        assert not (trial / "model_best.keras").exists()  # --keep_models is off
    p = json.loads((out / "trial_005" / "params.json").read_text())
    assert p["train"]["steps_per_epoch"] == 4 and p["train"]["monitor"] == "val_loss"


@pytest.mark.slow
def test_kill_mid_trial_and_restart(tmp_path, demo_dataset):
    domain = {"train.learning_rate": DOMAIN["train.learning_rate"]}
    params, domain = inputs(tmp_path, domain)
    out = tmp_path / "search"
    args = [str(BIN_DIR / "hyper_search.py"), "-q", str(params), str(domain), str(demo_dataset), "-o", str(out),
            "-n", "4", "--init", "2", "--epochs", "1", "--steps", "3"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:  # one row written and trial 2 training
            if (out / "trials.tsv").exists() and len(rows(out / "trials.tsv")) >= 1 \
                    and (out / "trial_002" / "params.json").exists():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the search did not get to its second trial")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    done = rows(out / "trials.tsv")
    assert len(done) < 4
    stamps = {r["trial"]: os.stat(out / f"trial_{int(r['trial']):03d}" / "history.tsv").st_mtime_ns for r in done}
    time.sleep(1.0)  # the orphaned trial process notices its parent is gone
    run_script("hyper_search.py", *args[1:], "--restart", check=True)
    table = rows(out / "trials.tsv")
    assert [r["trial"] for r in table][:len(done)] == [r["trial"] for r in done]
    assert sorted(int(r["trial"]) for r in table) == [1, 2, 3, 4]
    for n, stamp in stamps.items():  # finished trials were not rerun
        assert os.stat(out / f"trial_{int(n):03d}" / "history.tsv").st_mtime_ns == stamp
