"""``train.init_from``: start a model from the layers another trained model shares with it.

:func:`shared_layers` finds the layers two models share from the inputs on; :func:`init_from`
copies their weights and freezes those ``train.freeze`` names.
"""

import json
import logging
import os

from basenji_tk.errors import InputError
from basenji_tk.model.resume import BEST

log = logging.getLogger("basenji_tk")


def shared_layers(model, donor) -> list:
    """The layers of ``model`` that ``donor`` shares from the inputs on: a layer counts when the
    donor has one of the same name, class and weight shapes and every layer feeding it counts too
    (inputs count when the donor has an input of that name and shape). So transfer stops where the
    two graphs part, e.g. at stage 2's concatenation of the expression vector."""
    import keras

    theirs = {layer.name: layer for layer in donor._flatten_layers(include_self=False)}
    good = set()
    for layer in model.layers:  # a functional model lists its layers in graph order
        other = theirs.get(layer.name)
        if other is None or type(other) is not type(layer):
            continue
        if isinstance(layer, keras.layers.InputLayer):
            if tuple(layer.output.shape) == tuple(other.output.shape):
                good.add(layer.name)
            continue
        parents = [n.operation.name for node in layer._inbound_nodes for n in node.parent_nodes]
        if parents and all(p in good for p in parents) and \
                [w.shape for w in layer.weights] == [w.shape for w in other.weights]:
            good.add(layer.name)
    return [layer for layer in model.layers if layer.name in good and layer.weights]


def with_stage1_head(stage2: dict, stage1: dict, head: str | None = None) -> dict:
    """A copy of stage-2 params whose ``expression_fusion`` block also rebuilds stage 1's head as
    ``task_blocks`` (its ``final`` made linear: the logits), as the ChromDragoNN authors' stage-2
    code does; ``train.init_from`` then fills those layers from the stage-1 model too. ``head``:
    stage 1's head (default: its only one)."""
    import copy

    heads = stage1["model"].get("heads") or {}
    if head is None and len(heads) != 1:
        raise InputError(f"stage-1 params have {len(heads)} heads; name the one to rebuild")
    if (head or next(iter(heads), None)) not in heads:
        raise InputError(f"stage-1 params have no head {head!r} (heads: {', '.join(heads) or 'none'})")
    blocks = copy.deepcopy(heads[head or next(iter(heads))]["blocks"])
    if blocks[-1].get("name") == "final":
        blocks[-1]["activation"] = "linear"
    out = copy.deepcopy(stage2)
    fusions = [b for h in out["model"].get("heads", {}).values() for b in h["blocks"]
               if b.get("name") == "expression_fusion"]
    if len(fusions) != 1:
        raise InputError(f"stage-2 params have {len(fusions)} expression_fusion blocks; expected one")
    fusions[0]["task_blocks"] = blocks
    return out


def _matches(name: str, freeze) -> bool:
    return freeze is True or (isinstance(freeze, list) and any(name == f or name.startswith(f) for f in freeze))


def init_from(model, tp: dict, params_path: str, model_params: dict | None = None) -> list[str]:
    """Copy into ``model`` the weights of the layers ``train.init_from`` shares with it
    (:func:`shared_layers`), and freeze as ``train.freeze`` says; returns the names copied.

    With ``model_params`` (the params' model section) the trunk is checked too: trunk layers left
    uninitialised (the two trunks part somewhere) are a warning naming them, and an error when
    ``train.freeze`` would cover them (``true``, the Freeze variant, means the whole stage-1 trunk;
    a list that names one). Nothing shared at all is an error naming the params and the model."""
    from basenji_tk.model import models

    source = tp["init_from"]
    if os.path.isdir(source):
        source = os.path.join(source, BEST)
    donor = models.load_model(source)
    layers = shared_layers(model, donor)
    copied = [layer.name for layer in layers]
    if not copied:
        raise InputError(f"{params_path}: train.init_from {source} shares no layer with this model (same name, "
                         "class and weight shapes, fed by shared layers from the inputs on); its trunk must be "
                         "the stage-1 model's")
    freeze = tp["freeze"]
    missing = [n for n in models.trunk_layer_names(model_params, params_path) if n not in copied] \
        if model_params is not None else []
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        covered = [n for n in missing if _matches(n, freeze)]
        if covered:
            what = "true (freeze the stage-1 trunk)" if freeze is True else json.dumps(freeze)
            raise InputError(f"{params_path}: train.freeze is {what}, but {len(missing)} trunk layers were not "
                             f"initialised from {source} ({shown}): the trunks part there (other names, classes or "
                             "shapes); match the stage-1 trunk or freeze only the layers copied")
        log.warning(f"{params_path}: {len(missing)} trunk layers were not initialised from {source} and start at "
                    f"random: {shown}")
    for layer in layers:
        layer.set_weights(donor.get_layer(layer.name).get_weights())
    frozen = [n for n in copied if _matches(n, freeze)]
    for layer in layers:
        if layer.name in frozen:
            layer.trainable = False
    if isinstance(freeze, list):
        unmatched = [f for f in freeze if not any(n == f or n.startswith(f) for n in copied)]
        if unmatched:
            raise InputError(f"{params_path}: train.freeze names '{unmatched[0]}', which matches no layer "
                             f"copied from {source}")
    log.info(f"initialised {len(copied)} layers from {source}; froze {len(frozen)}")
    return copied
