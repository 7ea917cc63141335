"""params.json: load, check against a schema, fill defaults.

A params file has two sections, as in Basenji: ``train`` (how to fit) and
``model`` (what to build). Every key is checked: an unknown key, a wrong type or
a value outside its choices is an :class:`InputError` that names the file, the
key and what is allowed. Nothing is silently ignored (Basenji ignored dead keys
such as ``train_epochs``).

Blocks in ``model.trunk`` and ``model.head`` are objects with a ``name`` and the
block's own arguments; the block registry (``basenji_tk.model.blocks``) checks those.
``train.rc``/``train.shift`` augment in the input pipeline (targets flipped with
the sequence); ``model.augment_rc``/``model.augment_shift`` augment inside the
model while training, Basenji's way (predictions flipped back).
"""

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from basenji_tk.errors import InputError

LOSSES = ("poisson", "mse", "rmse", "masked_mse", "bce", "multinomial_nll", "profile_ce", "jsd")


@dataclass(frozen=True)
class Field:
    """One key of a section: accepted types, default, allowed values, meaning."""

    types: tuple
    default: Any = None
    choices: tuple = ()
    doc: str = ""
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # which ends of [minimum, maximum] are allowed themselves ("[]", "[)", "(]", "()")
    ends: str = "[]"

    def range_text(self) -> str:
        """The allowed range, e.g. ``[0, 1)``, ``> 0`` or ``>= 1``."""
        lo, hi = (v if v is None or isinstance(v, int) else f"{v:g}" for v in (self.minimum, self.maximum))
        if lo is not None and hi is not None:
            return f"in {self.ends[0]}{lo}, {hi}{self.ends[1]}"
        if lo is not None:
            return f"{'>=' if self.ends[0] == '[' else '>'} {lo}"
        return f"{'<=' if self.ends[1] == ']' else '<'} {hi}"

    def in_range(self, value) -> bool:
        lo_ok = (self.minimum is None or value > self.minimum
                 or (value == self.minimum and self.ends[0] == "["))
        hi_ok = (self.maximum is None or value < self.maximum
                 or (value == self.maximum and self.ends[1] == "]"))
        return lo_ok and hi_ok

    def type_names(self) -> str:
        names = {bool: "true/false", int: "integer", float: "number", str: "string",
                 list: "list", dict: "object", type(None): "null"}
        return " or ".join(names.get(t, t.__name__) for t in self.types)


MAX_SEED = 2 ** 32 - 1  # numpy and Python seeds: 0 <= seed < 2**32

TRAIN = {
    "batch_size": Field((int,), 64, doc="sequences per step", minimum=1),
    "epochs": Field((int,), 100, doc="most epochs to run", minimum=1),
    "steps_per_epoch": Field((int, type(None)), None, doc="batches per epoch (default: the whole train split)",
                             minimum=1),
    "patience": Field((int,), 20, doc="epochs without improvement before stopping", minimum=1),
    "learning_rate": Field((float,), 0.001, doc="optimizer step size", minimum=0, ends="(]"),
    "optimizer": Field((str,), "adam", ("adam", "sgd"), doc="optimizer"),
    "momentum": Field((float,), 0.99, doc="SGD momentum", minimum=0, maximum=1, ends="[)"),
    "beta_1": Field((float,), 0.9, doc="Adam beta_1", minimum=0, maximum=1, ends="[)"),
    "beta_2": Field((float,), 0.999, doc="Adam beta_2", minimum=0, maximum=1, ends="[)"),
    "clip_norm": Field((float, type(None)), None, doc="gradient clipping by global norm (0 or null: none)",
                       minimum=0),
    "loss": Field((str,), "poisson", LOSSES, doc="training loss (of model.head; a model.heads entry may name its own)"),
    "shuffle_buffer": Field((int,), 1024, doc="records held for shuffling", minimum=1),
    "rc": Field((bool,), False, doc="random reverse-complement augmentation"),
    "shift": Field((int,), 0, doc="random shift augmentation, bp either way", minimum=0),
    "seed": Field((int,), 0, doc="seed for shuffling, augmentation, dropout and initialisation", minimum=0,
                  maximum=MAX_SEED),
    "monitor": Field((str,), "val_pearsonr",
                     doc="validation figure for early stopping and model_best.keras: val_loss or any metric "
                         "of the model's heads (val_HEAD_METRIC with several heads; losses, rmse and jsd: lower "
                         "is better); checked against the model's metrics before training"),
    "mask_zero": Field((bool,), False, doc="masked_mse: also ignore bins whose target is 0"),
    "sample_weight": Field((str, type(None)), None, doc="the dataset's weight feature that weighs each record's "
                           "loss (every head)"),
    "balance": Field((dict, type(None)), None, doc="class-balanced batches: {\"label\": binary label feature, "
                     "\"positive_fraction\": share of positives per batch} (ChromDragoNN: 0.25)"),
    "init_from": Field((str, type(None)), None, doc="a trained model (.keras file or model folder) whose layers "
                       "of the same name and shape initialise this one (two-stage training)"),
    "freeze": Field((bool, list), False, doc="with init_from: true freezes every initialised layer (Freeze: the "
                    "stage-1 trunk; refused when part of the trunk could not be initialised); a list freezes the "
                    "layers with those names or name prefixes; false trains everything (Tune)"),
    "fold": Field((int, type(None)), None, doc="pairs datasets: the context fold to hold out (default: the "
                  "dataset's own split)", minimum=0),
    "valid_batches": Field((int, type(None)), None, doc="validation batches per epoch: null, the whole valid split; N, "
                           "a fixed sample of N batches, the same every epoch (a pairs dataset's valid split "
                           "holds every valid context with every region, often 10-100x the training steps)",
                           minimum=1),
    "validate_every": Field((int, type(None)), None, doc="also evaluate on train.validation_steps validation "
                            "batches every this many training steps, into history_steps.tsv (null: off)",
                            minimum=1),
    "validation_steps": Field((int,), 20, doc="validation batches (the first of the valid split, the same every "
                              "time) that each train.validate_every check evaluates", minimum=1),
}

MODEL = {
    "seq_length": Field((int, type(None)), None, doc="DNA input length (bp); required unless model.inputs declares "
                        "the inputs", minimum=1),
    "seq_depth": Field((int,), 4, doc="channels per base (4 for one-hot DNA)", minimum=1),
    "target_length": Field((int, type(None)), None, doc="output bins; checked against the data", minimum=1),
    "num_targets": Field((int, type(None)), None, doc="output tracks; checked against the data", minimum=1),
    "name": Field((str,), "basenji_tk", doc="model name (shown in summaries)"),
    "inputs": Field((dict,), {}, doc="named inputs, each a dataset feature: {name: {\"kind\": sequence|signal|"
                    "vector, \"shape\": [...], \"resolution\": bp}}; a bare length is a vector; without a "
                    "sequence or signal entry the model also takes 'sequence' (seq_length x seq_depth)"),
    "augment_rc": Field((bool,), False, doc="in-model random reverse complement while training; "
                        "predictions are flipped back"),
    "augment_shift": Field((int,), 0, doc="in-model random shift while training, bp either way", minimum=0),
    "trunk": Field((list,), [], doc="blocks applied to the sequence"),
    "head": Field((list,), [], doc="blocks producing the one output, label 'target' (or use model.heads)"),
    "heads": Field((dict,), {}, doc="named outputs: {name: {\"label\": feature, \"loss\": ..., \"weight\": 1.0, "
                   "\"blocks\": [...], \"metrics\": [...]}}, each on the trunk's output"),
}

HEAD = {
    "label": Field((str, type(None)), None, doc="the dataset label this output predicts (default: the head's name)"),
    "loss": Field((str, type(None)), None, LOSSES + (None,), doc="its loss (default: train.loss)"),
    "weight": Field((float,), 1.0, doc="its weight in the total loss", minimum=0),
    "blocks": Field((list,), [], doc="blocks from the trunk's output to this output"),
    "metrics": Field((list, type(None)), None, doc="metric names (default: by the label's type)"),
    "mask_zero": Field((bool,), False, doc="masked_mse: also ignore bins whose target is 0"),
}

INPUT = {
    "kind": Field((str,), required=True, choices=("sequence", "signal", "vector"), doc="what the feature is"),
    "shape": Field((list,), required=True, doc="its shape without the batch axis"),
    "resolution": Field((int, type(None)), None, doc="bp per position (sequence: 1)", minimum=1),
}

SECTIONS = {"train": TRAIN, "model": MODEL}


def _check_value(value, field: Field, key: str, path: str):
    is_bool = isinstance(value, bool)
    ok = any(
        (t is float and isinstance(value, (int, float)) and not is_bool)
        or (t is int and isinstance(value, int) and not is_bool)
        or (t is bool and is_bool)
        or (t not in (int, float, bool) and isinstance(value, t))
        for t in field.types
    )
    if not ok:
        raise InputError(f"{path}: '{key}' must be {field.type_names()}, got {json.dumps(value)}")
    if field.choices and value not in field.choices:
        raise InputError(f"{path}: '{key}' must be one of {', '.join(map(str, field.choices))}, got {json.dumps(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{path}: '{key}' must be a finite number, got {value}")
    if (field.minimum is not None or field.maximum is not None) and isinstance(value, (int, float)) \
            and not is_bool and not field.in_range(value):
        raise InputError(f"{path}: '{key}' must be {field.range_text()}, got {json.dumps(value)}")


def check_section(section: dict, schema: dict, name: str, path: str) -> dict:
    """Check one section against ``schema``; returns a copy with defaults filled in."""
    if not isinstance(section, dict):
        raise InputError(f"{path}: '{name}' must be an object, got {json.dumps(section)[:40]}")
    unknown = [k for k in section if k not in schema]
    if unknown:
        raise InputError(f"{path}: unknown key '{name}.{unknown[0]}'; allowed in '{name}': {', '.join(schema)}")
    out = {}
    for key, field in schema.items():
        if key not in section:
            if field.required:
                raise InputError(f"{path}: '{name}.{key}' is required ({field.doc})")
            out[key] = json.loads(json.dumps(field.default))  # a fresh copy of lists and dicts
            continue
        _check_value(section[key], field, f"{name}.{key}", path)
        out[key] = section[key]
    if name == "model":
        _check_model(out, path)
    if name == "train":
        _check_train(out, path)
    return out


def _check_blocks(blocks: list, where: str, path: str):
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("name"), str):
            raise InputError(f"{path}: '{where}[{i}]' must be an object with a string 'name'")
        from basenji_tk.model.blocks import check_block  # Keras loads only when a model is checked

        check_block(block, f"{path}: {where}[{i}]")


def _check_model(out: dict, path: str):
    inputs = {}
    for key, spec in out["inputs"].items():
        if isinstance(spec, int) and not isinstance(spec, bool):
            if spec < 1:
                raise InputError(f"{path}: 'model.inputs.{key}' must be a positive integer length")
            inputs[key] = spec
            continue
        spec = check_section(spec, INPUT, f"model.inputs.{key}", path)
        shape = spec["shape"]
        if not shape or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
            raise InputError(f"{path}: 'model.inputs.{key}.shape' must be a list of positive integers, "
                             f"got {json.dumps(shape)}")
        want = {"sequence": 2, "signal": 2, "vector": 1}[spec["kind"]]
        if len(shape) != want:
            raise InputError(f"{path}: 'model.inputs.{key}.shape': a {spec['kind']} input has {want} axes "
                             f"(positions x channels)" if want == 2 else f"{path}: 'model.inputs.{key}.shape': "
                             f"a vector input has one axis, got {json.dumps(shape)}")
        inputs[key] = {k: v for k, v in spec.items() if v is not None}
    out["inputs"] = inputs
    positional = [k for k, v in inputs.items() if isinstance(v, dict) and v["kind"] in ("sequence", "signal")]
    if not positional and out["seq_length"] is None:
        raise InputError(f"{path}: 'model.seq_length' is required (the DNA input's length), unless "
                         "model.inputs declares a sequence or signal input")
    if positional and out["seq_length"] is not None:
        raise InputError(f"{path}: give the input length once: model.inputs.{positional[0]}.shape, "
                         "not model.seq_length too")
    _check_blocks(out["trunk"], "model.trunk", path)
    _check_blocks(out["head"], "model.head", path)
    if out["heads"] and out["head"]:
        raise InputError(f"{path}: 'model.head' and 'model.heads' both given; use model.heads for named outputs")
    for head, spec in out["heads"].items():
        if not isinstance(head, str) or not head.isidentifier():
            raise InputError(f"{path}: 'model.heads.{head}': a head name is letters, digits and _")
        spec = check_section(spec, HEAD, f"model.heads.{head}", path)
        spec["label"] = spec["label"] or head
        _check_blocks(spec["blocks"], f"model.heads.{head}.blocks", path)
        out["heads"][head] = spec


def _check_train(out: dict, path: str):
    balance = out["balance"]
    if balance is not None:
        if set(balance) != {"label", "positive_fraction"} or not isinstance(balance["label"], str):
            raise InputError(f"{path}: 'train.balance' must be {{\"label\": feature name, "
                             f"\"positive_fraction\": number}}, got {json.dumps(balance)}")
        frac = balance["positive_fraction"]
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
            raise InputError(f"{path}: 'train.balance.positive_fraction' must be in (0, 1), got {json.dumps(frac)}")
    freeze = out["freeze"]
    if isinstance(freeze, list) and not all(isinstance(x, str) for x in freeze):
        raise InputError(f"{path}: 'train.freeze' must be true/false or a list of layer names")
    if freeze and not out["init_from"]:
        raise InputError(f"{path}: 'train.freeze' needs 'train.init_from' (the model whose layers it keeps)")


def check_params(params: dict, path: str = "params") -> dict:
    """Check a params dict (both sections); returns it resolved with defaults."""
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a JSON object with sections {', '.join(SECTIONS)}")
    unknown = [k for k in params if k not in SECTIONS]
    if unknown:
        raise InputError(f"{path}: unknown section '{unknown[0]}'; allowed: {', '.join(SECTIONS)}")
    if "model" not in params:
        raise InputError(f"{path}: section 'model' is required")
    return {name: check_section(params.get(name, {}), schema, name, path) for name, schema in SECTIONS.items()}


def read_json(path, what: str = "params"):
    """A JSON file's content; a missing file or bad JSON is an :class:`InputError` naming the line."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: {what} file not found")
    with open(path) as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}: not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


def parse_set(item: str) -> tuple[list, object]:
    """``KEY=VALUE`` of ``--set``: the dotted key split into its parts (list indices as ints) and
    the value parsed as JSON, or kept as a string when it is not JSON (``runs/s1``)."""
    key, eq, text = item.partition("=")
    if not eq or not key or any(not part for part in key.split(".")):
        raise InputError(f"--set {item}: expected KEY=VALUE with a dotted KEY (e.g. train.freeze=true)")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    return [int(part) if part.isdigit() else part for part in key.split(".")], value


def apply_sets(raw: dict, sets=(), path: str = "params") -> dict:
    """``raw`` (a params file's content) with each ``--set KEY=VALUE`` of ``sets`` applied in order.

    KEY is dotted into the sections (``model.heads.accessible.blocks.0.units``; list entries by
    number). A missing object key is added (the schema checks it later); a section outside
    :data:`SECTIONS`, a list index out of range, or a step into a value that is neither object nor
    list is an :class:`InputError` naming the ``--set``. Returns a new dict; ``raw`` is unchanged."""
    merged = json.loads(json.dumps(raw))
    if sets and not isinstance(merged, dict):
        raise InputError(f"{path}: expected a JSON object with sections {', '.join(SECTIONS)}")
    for item in sets:
        keys, value = parse_set(item)
        if keys[0] not in SECTIONS:
            raise InputError(f"{path}: --set {item}: unknown section '{keys[0]}'; allowed: {', '.join(SECTIONS)}")
        node, where = merged, []
        for i, key in enumerate(keys):
            last = i == len(keys) - 1
            if isinstance(node, dict):
                key = str(key)
                if last:
                    node[key] = value
                else:
                    node = node.setdefault(key, {})
            elif isinstance(node, list) and isinstance(key, int):
                if key >= len(node):
                    raise InputError(f"{path}: --set {item}: {'.'.join(map(str, where))} has {len(node)} entries "
                                     f"(0 to {len(node) - 1})")
                if last:
                    node[key] = value
                else:
                    node = node[key]
            else:
                kind = "a list (give an index)" if isinstance(node, list) else (
                    "an object" if isinstance(node, dict) else json.dumps(node))
                raise InputError(f"{path}: --set {item}: {'.'.join(map(str, where))} is {kind}, so '{key}' cannot "
                                 "be set inside it")
            where.append(key)
    return merged


def set_label(path, sets=()) -> str:
    """How errors name the params: the file, and the ``--set`` items merged into it."""
    return f"{path} (with --set {' '.join(sets)})" if sets else str(path)


def load_params(path, sets=()) -> dict:
    """Read, check and resolve a params.json file, with ``--set KEY=VALUE`` items merged in first."""
    return check_params(apply_sets(read_json(path), sets, str(path)), set_label(path, sets))
