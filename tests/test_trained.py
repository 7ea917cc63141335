"""basenji_tk.analysis.trained: every zoo model loads into one TrainedModel with the right inputs and outputs."""

import numpy as np
import pytest

from basenji_tk.analysis.inputs import InputOptions, extra_inputs
from basenji_tk.analysis.trained import TrainedModel
from basenji_tk.errors import InputError
from zoo import KINDS

EXPECTED = {  # kind -> ({input: kind}, {output: (kind, shape, resolution, offset)})
    "binned": ({"sequence": "sequence"}, {"target": ("binned", (128, 3), 128, 0)}),
    "pairs": ({"sequence": "sequence", "expression": "vector"}, {"accessible": ("probability", (1,), None, None)}),
    "profile": ({"sequence": "sequence"}, {"profile": ("profile", (100, 3), 1, 150), "total": ("total", (3,), None, None)}),
    "table": ({"sequence": "sequence"}, {"activity": ("value", (4,), None, None)}),
    "signal": ({"marks": "signal"}, {"ctcf": ("binned", (10, 1), 100, 500)}),
    "imported_keras": ({"sequence": "sequence"}, {"target": ("binned", (100, 3), 1, 150)}),
    "imported_h5": ({"sequence": "sequence"}, {"target": ("binned", (128, 3), 128, 0)}),
}


@pytest.mark.parametrize("kind", KINDS)
def test_every_zoo_model_loads(kind, request):
    z = request.getfixturevalue(f"zoo_{kind}")
    tm = TrainedModel.load(z.model_dir)
    inputs, outputs = EXPECTED[kind]
    assert {n: i.kind for n, i in tm.inputs.items()} == inputs
    got = {n: (o.kind, o.shape, o.resolution, o.offset) for n, o in tm.outputs.items()}
    assert got == outputs
    for o in tm.outputs.values():
        assert len(o.targets) == o.num_targets

