"""basenji_tk.model.scaling: a published architecture at a fraction of its width."""

import json

import pytest

from conftest import REPO


def _conv_layers(model):
    return [(lyr.kernel_size[0], lyr.filters) for lyr in model.layers if lyr.__class__.__name__ == "Conv1D"]


def test_the_resnet_keeps_its_layers_at_an_eighth_of_its_width():
    from basenji_tk.model import models
    from basenji_tk.model.scaling import scale_widths

    params = json.load(open(REPO / "params" / "chromdragonn_resnet_stage2.json"))
    params["model"]["inputs"]["expression"]["shape"] = [40]
    assert scale_widths(params, 1.0) == params
    small = scale_widths(params, 0.125)
    full_model, small_model = models.build_model(params["model"]), models.build_model(small["model"])
    full, narrow = _conv_layers(full_model), _conv_layers(small_model)
    assert len(full) == len(narrow) == 23  # the paper's 23 convolutions
    assert [k for k, _ in full] == [k for k, _ in narrow]  # same kernels, same order
    assert [max(4, round(f / 8)) for _, f in full] == [f for _, f in narrow]
    assert small_model.output["accessible"].shape[1:] == full_model.output["accessible"].shape[1:] == (1,)  # final kept
    assert small_model.count_params() < full_model.count_params() / 20
    fusion = small["model"]["heads"]["accessible"]["blocks"][0]
    assert fusion["units"] == [125, 12] and params["model"]["heads"]["accessible"]["blocks"][0]["units"] == [1000, 100]
    wide_head = scale_widths(params, 0.125, head_width=1)
    assert wide_head["model"]["trunk"] == small["model"]["trunk"]  # the narrow convolutions
    assert wide_head["model"]["heads"] == params["model"]["heads"]  # the published dense layers
    with pytest.raises(ValueError, match="positive"):
        scale_widths(params, 0)
    with pytest.raises(ValueError, match="head_width must be positive"):
        scale_widths(params, 0.5, head_width=-1)


def test_task_blocks_scale_as_stage1_head():
    from basenji_tk.model.scaling import scale_block

    block = {"name": "expression_fusion", "units": [1000, 100],
             "task_blocks": [{"name": "dense_block", "units": 1000}, {"name": "final", "activation": "linear"}]}
    out = scale_block(block, 0.125)
    assert out["units"] == [125, 12]
    assert out["task_blocks"] == [{"name": "dense_block", "units": 125}, {"name": "final", "activation": "linear"}]
    assert block["task_blocks"][0]["units"] == 1000  # the input is not changed
