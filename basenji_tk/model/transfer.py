"""``train.init_from``: start a model from the layers another trained model shares with it.

:func:`shared_layers` finds the layers two models share from the inputs on; :func:`init_from`
copies their weights and freezes those ``train.freeze`` names.
"""

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


def init_from(model, tp: dict, params_path: str) -> list[str]:
    """Copy into ``model`` the weights of the layers ``train.init_from`` shares with it
    (:func:`shared_layers`), and freeze as ``train.freeze`` says; returns the names copied."""
    from basenji_tk.model import models

    source = tp["init_from"]
    if os.path.isdir(source):
        source = os.path.join(source, BEST)
    donor = models.load_model(source)
    layers = shared_layers(model, donor)
    for layer in layers:
        layer.set_weights(donor.get_layer(layer.name).get_weights())
    copied = [layer.name for layer in layers]
    if not copied:
        raise InputError(f"{params_path}: train.init_from {source} shares no layer with this model (same name, "
                         "class and weight shapes, fed by shared layers from the inputs on)")
    freeze = tp["freeze"]
    frozen = [n for n in copied if freeze is True or (isinstance(freeze, list) and any(
        n == f or n.startswith(f) for f in freeze))]
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
