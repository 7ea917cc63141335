"""A published architecture at a fraction of its width: the same blocks in the same order, every
filter and unit count multiplied by ``width``.

The published ChromDragoNN stage-2 model has 8.96 M parameters and trains at about 17
examples/s on two CPU cores (``benchmarks/bench_pairs.py``); at ``width=0.125`` the same 23
convolutions train about 40x faster, which is what the tutorial and the CPU benchmark use. The
depth, kernel sizes, pools, residual structure and head layout are untouched, so a comparison
between architectures keeps its shape; the absolute numbers are those of the narrower models.
"""

import copy

WIDTH_KEYS = ("filters", "units")


def scale_block(block: dict, width: float, minimum: int = 4) -> dict:
    """One block with its ``filters``/``units`` (an int or a list) times ``width``, at least
    ``minimum``; the ``final`` block keeps its units (they are the outputs). Nested
    ``task_blocks`` (stage 1's head inside stage 2) scale the same way, so they stay stage 1's."""
    out = dict(block)
    if out.get("name") == "final":
        return out
    if isinstance(out.get("task_blocks"), list):
        out["task_blocks"] = [scale_block(b, width, minimum) for b in out["task_blocks"]]
    for key in WIDTH_KEYS:
        value = out.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            out[key] = max(minimum, round(value * width))
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            out[key] = [max(minimum, round(v * width)) for v in value]
    return out


def scale_widths(params: dict, width: float, minimum: int = 4, head_width: float = None) -> dict:
    """A copy of a params dict (both sections) with every trunk block scaled by
    :func:`scale_block` at ``width`` and every head block at ``head_width`` (default: ``width``);
    ``width=1`` returns an equal copy.

    ``head_width=1`` keeps the published dense layers, which cost little on 1,000 bp inputs:
    ChromDragoNN's stage-2 ResNet at width 1/8 with 503 expression features is 31.9 MFLOP of
    convolution per example forward and 2.3 MFLOP of dense layers at ``head_width=1`` (0.26 at
    1/8). At 1/8 the fusion's second layer keeps only 12 units under dropout 0.3."""
    head_width = width if head_width is None else head_width
    for name, value in (("width", width), ("head_width", head_width)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    out = copy.deepcopy(params)
    model = out.get("model", {})
    model["trunk"] = [scale_block(b, width, minimum) for b in model.get("trunk", [])]
    if model.get("head"):
        model["head"] = [scale_block(b, head_width, minimum) for b in model["head"]]
    for head in model.get("heads", {}).values():
        head["blocks"] = [scale_block(b, head_width, minimum) for b in head.get("blocks", [])]
    return out
