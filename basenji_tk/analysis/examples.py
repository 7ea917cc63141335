"""A trained model against a dataset: which features feed its inputs, which labels its outputs
predict, and the split read batch by batch as the model takes it.

:func:`pair_with_dataset` matches a :class:`~basenji_tk.analysis.trained.TrainedModel` to a
dataset's example features the way training wired them (:func:`basenji_tk.model.train.wire`):

* each model input takes the feature of its name; the DNA input takes the dataset's sequence
  (whatever the model calls it); an input the dataset lacks is filled by
  :func:`basenji_tk.analysis.inputs.resolve_inputs` (``--input``, ``--context``);
* each output is scored against the label its head was trained on, else the label of its name,
  else (a model of one output) the dataset's one label of the output's shape, or its one label;
* shapes must agree up to axes of length 1 (a ``(1,)`` output for a ``(1, 1)`` centre-bin
  label), and positional outputs must have the label's bp per position.

Every mismatch is one error naming the model file, the dataset's statistics.json and both
shapes. :func:`split_batches` reads the split through :func:`basenji_tk.data.records.dataset`
(a pairs dataset in the model's view) and yields ``(index, x, y)``: record indices ``(B,)``,
``{model input: (B, ...)}`` and ``{output: (B, *output shape)}`` float32.
"""

import os
from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError


@dataclass
class Pairing:
    """``inputs``: model input -> dataset feature name (None: filled by the input resolver);
    ``labels``: output -> the dataset label :class:`~basenji_tk.data.records.Feature`; ``view``: the
    view of a pairs dataset."""

    inputs: dict
    labels: dict
    view: str = "pairs"

    @property
    def filled(self) -> list:
        """Model inputs the dataset does not hold."""
        return [n for n, f in self.inputs.items() if f is None]


def _squeeze(shape) -> list:
    return [int(d) for d in shape if d != 1]


def _shape_text(shape) -> str:
    return " x ".join(map(str, shape)) if shape else "one number"


def pair_with_dataset(tm, spec, stats_path: str) -> Pairing:
    """Match ``tm``'s inputs and outputs to the example features of ``spec`` (see the module docstring)."""
    if spec.kind == "pairs":
        spec.view = tm.spec.view if tm.spec is not None and tm.spec.kind == "pairs" else "pairs"
    have = spec.example_features
    data = spec.path
    inputs = {}
    seq_feature = next((f for f in have.values() if f.kind == "sequence"), None)
    for name, info in tm.inputs.items():
        f = have.get(name)
        if info.kind == "sequence":
            f = f if f is not None and f.kind == "sequence" else seq_feature
            if f is None:
                raise InputError(f"{tm.model_path}: the model reads DNA, but {data} holds no sequence "
                                 f"(features: {', '.join(have)})")
            if f.shape[0] != info.shape[0]:
                raise InputError(f"{tm.model_path}: the model takes {info.shape[0]} bp sequences but {stats_path} "
                                 f"has seq_length {f.shape[0]}")
            if info.shape[-1] != 4:
                raise InputError(f"{tm.model_path}: the model takes {info.shape[-1]} channels per base; "
                                 "datasets are one-hot (4)")
        elif f is not None and _squeeze(f.shape) != _squeeze(info.shape):
            raise InputError(f"{tm.model_path}: input '{name}' is {_shape_text(info.shape)} but {data} feature "
                             f"'{name}' is {_shape_text(f.shape)}")
        inputs[name] = f.name if f is not None and f.kind != "label" else None
    labels = {n: f for n, f in have.items() if f.kind == "label"}
    if not labels:
        raise InputError(f"{data}: no label to score the model against (features: {', '.join(have)})")
    out = {}
    for name, o in tm.outputs.items():
        label = labels.get(o.label) or labels.get(name)
        if label is None and len(tm.outputs) == 1:
            same = [f for f in labels.values() if _squeeze(f.shape) == _squeeze(o.shape)]
            label = same[0] if len(same) == 1 else (next(iter(labels.values())) if len(labels) == 1 else None)
        if label is None:
            raise InputError(f"{tm.model_path}: output '{name}' has no label in {data}: none is named "
                             f"'{o.label or name}' (labels: {', '.join(labels)})")
        if _squeeze(label.shape) != _squeeze(o.shape):
            tiling = label.name == "target" and "target_length" in spec.stats  # the Basenji dataset's message
            if tiling and len(tm.outputs) == 1 and len(label.shape) == 2:
                got = "several outputs" if len(o.shape) != 2 else " x ".join(map(str, o.shape))
                raise InputError(f"{tm.model_path}: the model outputs {got} (bins x targets) but {stats_path} has "
                                 f"target_length {label.shape[0]} x num_targets {label.shape[1]}")
            raise InputError(f"{tm.model_path}: output '{name}' is {_shape_text(o.shape)} but its label "
                             f"'{label.name}' in {stats_path} is {_shape_text(label.shape)}")
        if o.positional and label.positional and o.resolution != label.resolution:
            raise InputError(f"{tm.model_path}: output '{name}' has one position every {o.resolution} bp, but its "
                             f"label '{label.name}' in {stats_path} is at {label.resolution} bp per position")
        out[name] = label
    return Pairing(inputs, out, spec.view)


def split_batches(tm, spec, pairing: Pairing, split: str, batch_size: int, fill=None):
    """Yield ``(index (B,), x {input: (B, ...)}, y {output: (B, *shape)})`` over ``split``; ``fill``
    (an :class:`~basenji_tk.analysis.inputs.InputResolver`) gives the inputs the dataset lacks."""
    from basenji_tk.data import records

    ds = records.dataset(spec.path, split, batch_size=batch_size, with_index=True, view=pairing.view)
    for ex in ds.as_numpy_iterator():
        n = len(ex["index"])
        x = {name: ex[f] for name, f in pairing.inputs.items() if f is not None}
        if pairing.filled:
            extra = fill.fixed if fill is not None else {}
            missing = [m for m in pairing.filled if m not in extra]
            if missing:
                raise InputError(f"model input '{missing[0]}' is not in {spec.path}; give --input {missing[0]}=...")
            x.update({m: np.broadcast_to(extra[m], (n,) + extra[m].shape) for m in pairing.filled})
        y = {o: np.asarray(ex[label.name], dtype=np.float32).reshape((n,) + tuple(tm.outputs[o].shape))
             for o, label in pairing.labels.items()}
        yield ex["index"], x, y


def record_labels(spec) -> list:
    """``chrom:start-end`` of each row of the dataset's ``sequences.bed`` (its name for table rows)."""
    path = os.path.join(spec.path, "sequences.bed")
    out = []
    with open(path) as fh:
        for line in fh:
            f = line.rstrip("\n").split("\t")
            out.append(f"{f[0]}:{f[1]}-{f[2]}" if len(f) >= 3 else f[0])
    return out
