"""Binding a model's params to a dataset's features by name, and compiling it for them.

The params are wired to the data by name (:func:`wire`): each model input takes the dataset
feature of its name (:mod:`basenji_tk.data.records`), each head of ``model.heads`` predicts the label
it names with its own loss, loss weight and metrics (by the label's type, :func:`compile_model`), and
``train.sample_weight`` names a weight feature. Before any work, a name the dataset lacks, or a
kind, shape or bp-per-position that differs, is one error naming both sides
(:func:`check_model_fits` checks the built model's outputs). :func:`monitor_names` lists the
validation figures such a model logs, and :func:`check_monitor` picks ``train.monitor`` among them.
"""

import logging
from dataclasses import dataclass, field

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")


# ----------------------------------------------------------------------------- wiring
@dataclass
class Wiring:
    """Which dataset features feed which model inputs, and which labels each output predicts.

    ``inputs`` are feature names (a model input takes the feature of its own name);
    ``heads`` maps each output to its label feature; ``single_input``/``single_output`` say
    whether the model takes/gives a bare tensor rather than a dict."""

    inputs: list
    heads: dict
    single_input: bool
    single_output: bool
    weight: str | None = None
    labels: dict = None  # head -> records.Feature of its label
    reshape: dict = field(default_factory=dict)  # head -> output shape, where the label differs by 1-axes
    view: str = "pairs"  # of a pairs dataset: (region, context) pairs, or regions (ChromDragoNN's stage 1)


def wire(mp: dict, tp: dict, spec, params_path: str) -> Wiring:
    """Bind ``params["model"]`` to a dataset's features; one error naming both sides when they differ."""
    from basenji_tk.model import models

    data = spec.path
    if spec.kind == "pairs":  # a model predicting the training contexts' labels reads regions, not pairs
        from basenji_tk.data.pairs import REGION_LABELS

        labels = {hp["label"] for hp in mp.get("heads", {}).values()}
        spec.view = "regions" if REGION_LABELS in labels else "pairs"
        if spec.view == "regions" and not spec.counts["valid"]:
            raise InputError(f"{params_path}: a model of the training contexts' labels validates on the valid "
                             f"regions of {data}, and it has none; make it with make_pairs.py --valid")
    have = spec.example_features
    inputs = models.input_specs(mp)
    legacy = not any(isinstance(v, dict) for v in mp.get("inputs", {}).values())
    for name, want in inputs.items():
        where = "model.seq_length" if (legacy and name == models.SEQUENCE) else f"model.inputs.{name}"
        if name not in have:
            if legacy and name != models.SEQUENCE and spec.kind == "tiling" and set(have) <= {"sequence", "target"}:
                raise InputError(f"{params_path}: model.inputs names {', '.join(mp['inputs'])}, but {data} "
                                 "records hold only sequences and targets")
            raise InputError(f"{params_path}: {where} names feature '{name}', but {data} has no such feature "
                             f"(it has: {', '.join(have)})")
        f = have[name]
        if f.kind != want["kind"]:
            raise InputError(f"{params_path}: {where} is a {want['kind']} input, but {data} feature '{name}' "
                             f"is a {f.kind}")
        if tuple(want["shape"]) != f.shape:
            if where == "model.seq_length" and want["shape"][1] == f.shape[1]:
                raise InputError(f"{params_path}: model.seq_length is {want['shape'][0]} but {data} holds "
                                 f"{f.shape[0]} bp sequences")
            raise InputError(f"{params_path}: {where} has shape {list(want['shape'])}, but {data} feature "
                             f"'{name}' is {list(f.shape)}")
        if f.positional and want.get("resolution") and want["resolution"] != f.resolution:
            raise InputError(f"{params_path}: {where} is at {want['resolution']} bp per position, but {data} "
                             f"feature '{name}' is at {f.resolution} bp")
    if mp.get("heads"):
        heads = {h: hp["label"] for h, hp in mp["heads"].items()}
    else:
        heads = {"target": "target"}
    labels = {}
    for head, label in heads.items():
        where = f"model.heads.{head}.label" if mp.get("heads") else "model.head (label 'target')"
        if label not in have:
            raise InputError(f"{params_path}: {where} names label '{label}', but {data} has no such feature "
                             f"(it has: {', '.join(have)})")
        if have[label].kind != "label":
            raise InputError(f"{params_path}: {where} names '{label}', but in {data} it is a {have[label].kind}, "
                             "not a label")
        labels[head] = have[label]
    weight = tp.get("sample_weight")
    if weight is not None:
        if weight not in have or have[weight].kind != "weight":
            kinds = [n for n, f in have.items() if f.kind == "weight"]
            raise InputError(f"{params_path}: train.sample_weight names '{weight}', but {data} has no weight "
                             f"feature of that name (weights: {', '.join(kinds) or 'none'})")
    balance = tp.get("balance")
    if balance:
        f = have.get(balance["label"])
        if f is None or f.kind != "label" or f.label_type != "binary":
            raise InputError(f"{params_path}: train.balance.label names '{balance['label']}', but {data} has no "
                             "binary label of that name")
    return Wiring(list(inputs), heads, list(inputs) == [models.SEQUENCE], not mp.get("heads"), weight, labels,
                  view=spec.view)


def check_model_fits(model, wiring: Wiring, spec, params_path: str):
    """Each output's shape, and its resolution along positions, must match its label; say both."""
    from basenji_tk.model import models

    outs = models.output_tensors(model)
    inputs = spec.example_features
    first = next((n for n in wiring.inputs if inputs[n].positional), None)
    for head, label in wiring.labels.items():
        got, want = tuple(outs[head].shape[1:]), label.shape
        if got != want and [n for n in got if n != 1] == [n for n in want if n != 1]:
            wiring.reshape[head] = got  # e.g. a (1, 1) centre-bin label for a (1,) dense output
        elif got != want:
            if wiring.single_output and len(want) == 2 and len(got) == 2:
                raise InputError(f"{params_path}: the model outputs {' x '.join(map(str, got))} (bins x targets) "
                                 f"but {spec.path} has {want[0]} bins x {want[1]} targets; change pooling/cropping "
                                 "or final units")
            raise InputError(f"{params_path}: output '{head}' has shape {list(got)}, but its label "
                             f"'{label.name}' in {spec.path} is {list(want)}")
        if label.positional and len(got) >= 2 and first is not None:
            rf = models.receptive_field(model, None if wiring.single_output else head)
            if rf is not None and not rf.whole:
                res = rf.step * inputs[first].resolution
                if res != label.resolution:
                    raise InputError(f"{params_path}: output '{head}' has one position every {res} bp, but its "
                                     f"label '{label.name}' in {spec.path} is at {label.resolution} bp per position")


# ----------------------------------------------------------------------------- compiling
def make_optimizer(tp: dict):
    import keras

    clip = {"global_clipnorm": tp["clip_norm"]} if tp["clip_norm"] else {}
    if tp["optimizer"] == "sgd":
        return keras.optimizers.SGD(tp["learning_rate"], momentum=tp["momentum"], **clip)
    return keras.optimizers.Adam(tp["learning_rate"], beta_1=tp["beta_1"], beta_2=tp["beta_2"], **clip)


def metrics_for(label) -> list:
    """Training metrics for one label feature, by its label_type (:func:`basenji_tk.model.metrics.for_label`)."""
    from basenji_tk.model import metrics

    return metrics.for_label(label.label_type, label.shape[-1] if label.shape else 1)


def head_metrics(tp: dict, wiring: Wiring, heads: dict | None, num_targets: int | None = None) -> dict:
    """``{head: [keras metrics]}``; a one-output model with a regression label gets Pearson r and
    R² over ``num_targets`` (as before), other labels the metrics of their label_type."""
    from basenji_tk.model import metrics

    if wiring.single_output:
        label = wiring.labels["target"]
        if label.label_type == "regression":
            n = num_targets or label.shape[-1]
            return {"target": [metrics.PearsonR(n), metrics.RSquared(n)]}
        return {"target": metrics_for(label)}
    out = {}
    for head, hp in heads.items():
        label = wiring.labels[head]
        out[head] = (metrics_for(label) if hp["metrics"] is None else
                     [metrics.get_metric(m, label.shape[-1] if label.shape else 1) for m in hp["metrics"]])
    return out


def monitor_names(wiring: Wiring, mets: dict) -> list[str]:
    """The validation figures Keras logs: ``val_loss``, ``val_METRIC`` or ``val_HEAD_loss`` and
    ``val_HEAD_METRIC`` with several heads."""
    if wiring.single_output or len(mets) == 1:  # one head of model.heads: Keras logs its metrics unprefixed
        return ["val_loss"] + [f"val_{m.name}" for ms in mets.values() for m in ms]
    return (["val_loss"] + [f"val_{h}_loss" for h in mets]
            + [f"val_{h}_{m.name}" for h, ms in mets.items() for m in ms])


def compile_model(model, tp: dict, num_targets: int | None = None, wiring: Wiring | None = None,
                  heads: dict | None = None) -> dict:
    """Compile with each output's loss, loss weight and metrics (:func:`head_metrics`); returns
    the metrics. Without ``wiring``: a one-output model on ``num_targets`` regression targets."""
    from basenji_tk.model.losses import get_loss
    from basenji_tk.data.records import Feature

    if wiring is None:
        label = Feature("target", "label", (1, num_targets))
        wiring = Wiring(["sequence"], {"target": "target"}, True, True, None, {"target": label})
    mets = head_metrics(tp, wiring, heads, num_targets)
    if wiring.single_output:
        model.compile(optimizer=make_optimizer(tp), loss=get_loss(tp["loss"], tp["mask_zero"]),
                      metrics=mets["target"])
        return mets
    loss = {h: get_loss(hp["loss"] or tp["loss"], hp["mask_zero"] or tp["mask_zero"]) for h, hp in heads.items()}
    model.compile(optimizer=make_optimizer(tp), loss=loss, loss_weights={h: hp["weight"] for h, hp in heads.items()},
                  metrics=mets)
    return mets


def lower_is_better(monitor: str) -> bool:
    """Losses, RMSE and JSD fall as the model improves; correlations, R² and AUCs rise."""
    from basenji_tk.model.metrics import LOWER_IS_BETTER

    return any(monitor == f"val_{m}" or monitor.endswith(f"_{m}") for m in LOWER_IS_BETTER)


def check_monitor(tp: dict, names: list, params_path: str, explicit: bool) -> str:
    """``train.monitor`` if the model logs it; the default falls back to val_loss for a model without it."""
    if tp["monitor"] in names:
        return tp["monitor"]
    if not explicit:
        log.info(f"train.monitor: this model logs no {tp['monitor']}; monitoring val_loss")
        return "val_loss"
    raise InputError(f"{params_path}: train.monitor is {tp['monitor']}, but this model logs only "
                     f"{', '.join(names)}")
