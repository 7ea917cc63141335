import json

import pytest

from basenji_tk.model import params as pm
from basenji_tk.errors import InputError


def write(tmp_path, obj, name="params.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def test_defaults_are_filled(tmp_path):
    p = pm.load_params(write(tmp_path, {"model": {"seq_length": 1024, "trunk": [{"name": "conv_block", "filters": 8}]}}))
    assert p["train"]["batch_size"] == 64 and p["train"]["loss"] == "poisson"
    assert p["model"]["seq_depth"] == 4 and p["model"]["trunk"] == [{"name": "conv_block", "filters": 8}]


@pytest.mark.parametrize("obj, words", [
    ({"model": {"seq_length": 8}, "train": {"train_epochs": 3}},
     ["params.json", "train.train_epochs", "batch_size", "epochs"]),
    ({"model": {"seq_length": "8"}}, ["model.seq_length", "integer", '"8"']),
    ({"model": {"seq_length": 8}, "train": {"rc": 1}}, ["train.rc", "true/false"]),
    ({"model": {"seq_length": 8}, "train": {"batch_size": True}}, ["train.batch_size", "integer"]),
    ({"model": {"seq_length": 8}, "train": {"optimizer": "adagrad"}}, ["train.optimizer", "adam, sgd"]),
    ({"model": {"seq_length": 8}, "train": {"learning_rate": -1}}, ["train.learning_rate", "> 0", "got -1"]),
    # ranges: Adam's betas and SGD's momentum in [0, 1), a step size above 0, seeds numpy accepts
    ({"model": {"seq_length": 8}, "train": {"beta_1": 1.5}}, ["train.beta_1", "in [0, 1)", "got 1.5"]),
    ({"model": {"seq_length": 8}, "train": {"beta_2": 1}}, ["train.beta_2", "in [0, 1)", "got 1"]),
    ({"model": {"seq_length": 8}, "train": {"momentum": 1.0}}, ["train.momentum", "in [0, 1)"]),
    ({"model": {"seq_length": 8}, "train": {"learning_rate": 0}}, ["train.learning_rate", "> 0", "got 0"]),
    ({"model": {"seq_length": 8}, "train": {"clip_norm": -0.5}}, ["train.clip_norm", ">= 0"]),
    ({"model": {"seq_length": 8}, "train": {"patience": 0}}, ["train.patience", ">= 1"]),
    ({"model": {"seq_length": 8}, "train": {"batch_size": 0}}, ["train.batch_size", ">= 1"]),
    ({"model": {"seq_length": 8}, "train": {"shift": -3}}, ["train.shift", ">= 0"]),
    ({"model": {"seq_length": 8}, "train": {"seed": -1}}, ["train.seed", "in [0, 4294967295]"]),
    ("{\"model\": {\"seq_length\": 8}, \"train\": {\"learning_rate\": NaN}}", ["train.learning_rate", "finite"]),
    ("{\"model\": {\"seq_length\": 8}, \"train\": {\"clip_norm\": Infinity}}", ["train.clip_norm", "finite"]),
    ({"model": {}}, ["model.seq_length", "required"]),
    ({"train": {}}, ["'model' is required"]),
    ({"model": {"seq_length": 8}, "tain": {}}, ["unknown section 'tain'", "train, model"]),
    ({"model": {"seq_length": 8, "trunk": [{"filters": 3}]}}, ["model.trunk[0]", "'name'"]),
    ({"model": {"seq_length": 8, "inputs": {"tf_expr": 0}}}, ["model.inputs.tf_expr", "positive"]),
    ("{\"model\": ", ["not valid JSON", "line 1"]),
])
def test_bad_params_name_file_key_and_allowed(tmp_path, obj, words):
    path = write(tmp_path, obj)
    with pytest.raises(InputError) as err:
        pm.load_params(path)
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message or "params.json" in message
    for w in words:
        assert w in message, (w, message)


def test_range_ends_are_allowed_where_the_range_says(tmp_path):
    p = pm.load_params(write(tmp_path, {"model": {"seq_length": 8},
                                        "train": {"beta_1": 0, "beta_2": 0.999999, "momentum": 0.0, "clip_norm": 0,
                                                  "seed": 2 ** 32 - 1, "learning_rate": 1e-12}}))
    assert p["train"]["beta_1"] == 0 and p["train"]["seed"] == 2 ** 32 - 1


def test_float_accepts_integer_and_null_where_allowed(tmp_path):
    p = pm.load_params(write(tmp_path, {"model": {"seq_length": 8}, "train": {"learning_rate": 1, "clip_norm": None}}))
    assert p["train"]["learning_rate"] == 1 and p["train"]["clip_norm"] is None


def test_missing_file():
    with pytest.raises(InputError, match="not found"):
        pm.load_params("/nonexistent/params.json")
