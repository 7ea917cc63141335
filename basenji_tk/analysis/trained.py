"""One trained model, loaded once: :class:`TrainedModel`.

Every script that runs a model (``test.py``, ``predict.py``, ``sat_mut.py``, ``sed.py``, ...)
gets it here. A model folder is one of

* a ``train.py`` folder: ``model_best.keras``, ``params.json`` and ``data_statistics.json`` (the
  training dataset's ``statistics.json``). Inputs and outputs are wired as training wired them
  (:func:`basenji_tk.model.train.wire`): each input is the dataset feature of its name, each
  output predicts the label its head names;
* an imported folder (``import_model.py``): a Keras file and ``model_card.json``, which says
  what the file cannot (:mod:`basenji_tk.analysis.cards`);
* a folder with only a model file: outputs are read off the model (bins every receptive-field
  step, targets ``t0, t1, ...``), with a warning.

Geometry. A model sees one *window* of ``window`` bp of the genome (a sequence model: its
input length). A positional input or output covers the middle of it: position ``k`` of an
output with ``resolution`` r and ``offset`` o spans ``window_start + o + k * r`` onwards, with
``o = (window - positions * r) // 2`` unless the card says otherwise (0 unless the model crops).

Outputs have a *kind*: ``binned`` (positions x targets, any resolution), ``profile`` (per-base
probabilities over positions, with ``total`` its counts), ``total`` (one number per target,
summed over positions), ``value`` (one number per target and record, e.g. MPRA activity) or
``probability`` (sigmoid or softmax class probabilities). Their ``targets`` name the last axis.

Keras loads in safe mode (no code from the file runs); TensorFlow is imported only when a
model is loaded.
"""

import json
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

MODEL_FILE = "model_best.keras"  # what train.py keeps in a model folder
DATA_STATS = "data_statistics.json"  # the training dataset's statistics.json, kept by train.py
PARAMS = "params.json"
TRAIN_INPUTS = "inputs.json"  # train.py's fingerprints of its datasets (their paths)
CARD = "model_card.json"
INPUT_KINDS = ("sequence", "signal", "vector")
OUTPUT_KINDS = ("binned", "profile", "total", "value", "probability")
POSITIONAL_KINDS = ("binned", "profile")


@dataclass(frozen=True)
class InputInfo:
    """One model input: ``shape`` without the batch axis; ``resolution`` bp per position (sequence
    and signal inputs); ``offset`` bp from the window start to its first position; ``names`` label the
    last axis; ``feature`` is the training dataset's :class:`~basenji_tk.data.records.Feature` (its
    ``meta`` names the tracks a signal was read from), None for imported models."""

    name: str
    kind: str
    shape: tuple
    resolution: int | None = None
    offset: int | None = None
    names: tuple = ()
    feature: object = field(default=None, compare=False, repr=False)

    @property
    def positional(self) -> bool:
        return self.kind in ("sequence", "signal")


@dataclass(frozen=True)
class OutputInfo:
    """One named output: ``kind`` (:data:`OUTPUT_KINDS`), ``shape`` without the batch axis,
    ``resolution`` bp per position and ``offset`` bp from the window start (positional kinds,
    else None), ``targets`` (ids of the last axis) and ``labels`` (their descriptions), the final
    ``activation`` (``sigmoid``, ``softmax``, ``softplus``, ... or None when linear/unknown), the
    ``label_type`` it was trained on, the dataset ``label`` (feature name) it predicts, and
    ``strands`` (the last axis is (+, -) pairs, swapped by a reverse complement)."""

    name: str
    kind: str
    shape: tuple
    resolution: int | None
    offset: int | None
    targets: list
    labels: list
    activation: str | None = None
    label_type: str | None = None
    label: str | None = None
    strands: bool = False

    @property
    def positional(self) -> bool:
        return self.kind in POSITIONAL_KINDS

    @property
    def num_targets(self) -> int:
        return int(self.shape[-1]) if self.shape else 1

    @property
    def num_positions(self) -> int | None:
        return int(self.shape[0]) if self.positional else None

    def describe(self) -> str:
        at = f", {self.shape[0]} x {self.resolution} bp from +{self.offset} bp" if self.positional else ""
        return f"{self.name}: {self.kind} {tuple(self.shape)}{at}"


# ----------------------------------------------------------------------------- reading a folder
def _read_json(path, what):
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read the {what} ({err.strerror})") from None


def training_statistics(model_dir) -> tuple[dict | None, str]:
    """``(statistics, path)`` of ``model_dir/data_statistics.json``; ``None`` when train.py left none."""
    path = os.path.join(str(model_dir), DATA_STATS)
    return (_read_json(path, "training statistics") if os.path.exists(path) else None), path


def read_card(model_dir) -> dict | None:
    """``model_dir/model_card.json`` checked (:func:`basenji_tk.analysis.cards.check_card`), or None."""
    path = os.path.join(str(model_dir), CARD)
    if not os.path.exists(path):
        return None
    from basenji_tk.analysis.cards import check_card

    return check_card(_read_json(path, "model card"), path)


def folder_genome(model_dir, fasta=None):
    """``fasta``, or else the genome the folder's model was trained on (its card or
    data_statistics.json), as an open :class:`~basenji_tk.io.genome.Genome`. Keras is not loaded."""
    from basenji_tk.io.genome import Genome

    if fasta:
        return Genome(fasta)
    card = read_card(model_dir)
    if card is not None:
        where = os.path.join(str(model_dir), CARD)
        path = (card.get("genome") or {}).get("path")
        if not path:
            raise InputError(f"{where} names no genome; pass the FASTA with --fasta")
    else:
        stats, where = training_statistics(model_dir)
        if stats is None:
            raise InputError(f"{where} not found, so the genome is unknown; pass the FASTA with --fasta")
        path = training_genome(stats)
        if not path:
            raise InputError(f"{where} names no genome; pass the FASTA with --fasta")
    if not os.path.exists(path):
        raise InputError(f"{path}: FASTA named in {where} not found; pass it with --fasta")
    return Genome(path)


def training_genome(stats: dict) -> str | None:
    """The FASTA a dataset was built from, by its statistics: ``genome.path`` (tiling, regions) or
    ``files.fasta.path`` (pairs) or ``files.genome.path`` (a table read from a genome, as
    make_table.py writes it); None when it had none."""
    genome = stats.get("genome") or {}
    if genome.get("path") and genome.get("has_sequence") is not False:
        return genome["path"]
    files = stats.get("files") or {}
    return (files.get("fasta") or files.get("genome") or {}).get("path")


def model_path_of(model_dir, model_file=None) -> str:
    """The Keras file of a model folder (``model_file`` when given); an error when there is none."""
    model_dir = str(model_dir)
    if model_file:
        path = str(model_file)
    else:
        if not os.path.isdir(model_dir):
            raise InputError(f"{model_dir}: not a model folder (no such folder)")
        card = read_card(model_dir)
        path = os.path.join(model_dir, card["model_file"] if card else MODEL_FILE)
    if not os.path.isfile(path):
        hint = "" if model_file else (f" ({model_dir} holds no model: train one with train.py, or make a folder "
                                      "from a Keras file with import_model.py)")
        raise InputError(f"{path}: model file not found{hint}")
    return path


# ----------------------------------------------------------------------------- the graph
_PASS_THROUGH = ("Identity", "SwitchReverse", "InputLayer")


def _parents(tensor):
    op, node_index, _ = tensor._keras_history
    return op, op._inbound_nodes[node_index].input_tensors


def _activation_name(fn) -> str | None:
    name = getattr(fn, "__name__", None) or str(fn)
    return None if name in ("linear", "identity", None) else name


def final_activation(tensor) -> tuple[str | None, object]:
    """``(activation, pre-activation tensor or None)`` of a model output: walks back through
    pass-through layers (Identity, SwitchReverse) to an ``Activation`` layer, a layer with its own
    ``activation``, or :class:`~basenji_tk.model.layers.SoftmaxPositions` (``softmax``)."""
    import keras

    while True:
        op, parents = _parents(tensor)
        kind = type(op).__name__
        if kind in _PASS_THROUGH and parents:
            tensor = parents[0]
            continue
        if isinstance(op, keras.layers.Activation):
            name = _activation_name(op.activation)
            if name is None and parents:
                tensor = parents[0]
                continue
            return name, parents[0] if parents else None
        if kind == "SoftmaxPositions":
            if len(parents) == 2:
                return "softmax", keras.layers.Add()([keras.ops.cast(parents[0], "float32"),
                                                      keras.ops.cast(parents[1], "float32")])
            return "softmax", parents[0]
        if kind == "Softmax":
            return "softmax", parents[0]
        return _activation_name(getattr(op, "activation", None)), None


def _model_inputs(model) -> dict:
    """``{name: symbolic input}``; a bare-input model's one input is ``sequence`` unless it is named."""
    if isinstance(model.input, dict):
        return dict(model.input)
    inputs = model.inputs
    if len(inputs) == 1:
        return {"sequence": inputs[0]}
    return {t.name.split(":")[0]: t for t in inputs}


def _model_outputs(model) -> dict:
    """``{name: symbolic output}``: a dict model's names, ``target`` for one output, layer names for a list."""
    out = model.output
    if isinstance(out, dict):
        return dict(out)
    if isinstance(out, (list, tuple)):
        if len(out) == 1:
            return {"target": out[0]}
        return {t._keras_history[0].name: t for t in out}
    return {"target": out}


# ----------------------------------------------------------------------------- the object
class TrainedModel:
    """A model folder loaded once; see the module docstring. Make one with :meth:`load`.

    Attributes: ``model`` (keras.Model, safe mode), ``model_dir``, ``model_path``, ``inputs``
    (``{name: InputInfo}`` in model order), ``outputs`` (``{name: OutputInfo}``), ``window`` (bp),
    ``stats`` (the training statistics or None), ``params`` (params.json or None), ``card`` (the
    model card or None), ``data_dir`` (the training dataset folder, when known), ``spec`` (its
    :class:`~basenji_tk.data.records.DatasetSpec` from the statistics, or None)."""

    def __init__(self, model, model_dir, model_path, inputs, outputs, window, stats=None, params=None,
                 card=None, data_dir=None, spec=None):
        self.model, self.model_dir, self.model_path = model, str(model_dir), str(model_path)
        self.inputs, self.outputs, self.window = inputs, outputs, int(window)
        self.stats, self.params, self.card, self.data_dir, self.spec = stats, params, card, data_dir, spec
        self._predictors = {}

    # ------------------------------------------------------------------- loading
    @classmethod
    def load(cls, model_dir, model_file=None) -> "TrainedModel":
        """Load ``model_dir`` (``model_file`` replaces its Keras file). Errors name the folder's file."""
        from basenji_tk.model.models import load_model

        model_dir = str(model_dir)
        path = model_path_of(model_dir, model_file)
        card = read_card(model_dir) if os.path.isdir(model_dir) else None
        model = load_model(path)
        if card is not None:
            from basenji_tk.analysis.cards import from_card

            return cls(model, model_dir, path, *from_card(model, card, os.path.join(model_dir, CARD)), card=card)
        stats, stats_path = training_statistics(model_dir)
        params_path = os.path.join(model_dir, PARAMS)
        if stats is not None and os.path.exists(params_path):
            return cls._from_training(model, model_dir, path, stats, stats_path, params_path)
        return cls._from_model(model, model_dir, path, stats, stats_path)

    @classmethod
    def _from_training(cls, model, model_dir, path, stats, stats_path, params_path):
        """A train.py folder: wire params.json to the training statistics as training did."""
        from basenji_tk.data import records
        from basenji_tk.model import train as T
        from basenji_tk.model.params import check_params

        params = check_params(_read_json(params_path, "params"), params_path)
        data_dir = None
        prints = os.path.join(model_dir, TRAIN_INPUTS)
        if os.path.exists(prints):
            dirs = _read_json(prints, "training inputs").get("data_dirs") or []
            data_dir = dirs[0].get("path") if dirs else None
        spec = records.spec_from_statistics(stats, data_dir or model_dir, stats_path, note_old=False)
        wiring = T.wire(params["model"], params["train"], spec, params_path)
        have = spec.example_features
        symbolic = _model_inputs(model)
        window = int(stats.get("seq_length") or max(have[n].span or 0 for n in wiring.inputs) or 1)
        inputs = {}
        for name in symbolic:
            f = have.get(name)
            if f is None:
                raise InputError(f"{path}: the model takes an input '{name}' that {stats_path} has no feature for")
            shape = tuple(int(d) for d in symbolic[name].shape[1:])
            offset = (window - f.span) // 2 if f.positional else None
            inputs[name] = InputInfo(name, f.kind, shape, f.resolution, offset, f.names, f)
        outs = _model_outputs(model)
        outputs = {}
        for head, label in wiring.labels.items():
            if head not in outs:
                raise InputError(f"{path}: params.json names the head '{head}', but the model has no such output "
                                 f"(outputs: {', '.join(outs)})")
            shape = tuple(int(d) for d in outs[head].shape[1:])
            activation, _ = final_activation(outs[head])
            kind = _label_kind(label, shape)
            res = label.resolution if kind in POSITIONAL_KINDS else None
            if res and [d for d in shape if d != 1] != [d for d in label.shape if d != 1]:
                res = _own_resolution(model, head if isinstance(model.output, dict) else None, inputs, window, shape)
            offset = _offset(window, shape, res, path, head) if res else None
            targets = _target_ids(label.names, shape, head)
            descriptions = [str(x) for x in stats.get("target_descriptions", [])] if label.name == "target" else []
            outputs[head] = OutputInfo(head, kind, shape, res, offset, targets,
                                       descriptions if len(descriptions) == len(targets) else list(targets),
                                       activation, label.label_type, label.name, bool(label.strands))
        return cls(model, model_dir, path, inputs, outputs, window, stats, params, None, data_dir, spec)

    @classmethod
    def _from_model(cls, model, model_dir, path, stats, stats_path):
        """Only a model file: what its shapes say (the old-format statistics fill in bins and targets)."""
        from basenji_tk.model.models import receptive_field

        symbolic = _model_inputs(model)
        inputs, window = {}, None
        for name, t in symbolic.items():
            shape = tuple(int(d) if d is not None else 0 for d in t.shape[1:])
            if 0 in shape:
                raise InputError(f"{path}: input '{name}' has no fixed shape {tuple(t.shape[1:])}; make a model folder "
                                 "with import_model.py --seq_length")
            kind = "vector" if len(shape) == 1 else ("sequence" if shape[-1] == 4 and window is None else "signal")
            window = window or (shape[0] if kind != "vector" else None)
            positional = kind != "vector"
            inputs[name] = InputInfo(name, kind, shape, 1 if positional else None, 0 if positional else None)
        window = window or 1
        if stats is None:
            log.warning(f"warning: {stats_path} not found; outputs are read off the model (targets t0, t1, ...)")
        outputs = {}
        for name, t in _model_outputs(model).items():
            shape = tuple(int(d) for d in t.shape[1:])
            activation, _ = final_activation(t)
            res = None
            if len(shape) == 2:
                field = receptive_field(model, None if name == "target" else name)
                res = field.step if field is not None and not field.whole else max(1, window // shape[0])
                if stats is not None and name == "target" and stats.get("pool_width"):
                    res = int(stats["pool_width"])
            kind = "binned" if res else ("probability" if activation in ("sigmoid", "softmax") else "value")
            ids = [str(x) for x in stats["target_ids"]] if stats and len(stats.get("target_ids", [])) == shape[-1] \
                else [f"t{k}" for k in range(shape[-1] if shape else 1)]
            offset = _offset(window, shape, res, path, name) if res else None
            outputs[name] = OutputInfo(name, kind, shape, res, offset, ids, list(ids), activation)
        return cls(model, model_dir, path, inputs, outputs, window, stats)

    # ------------------------------------------------------------------- what it is
    @property
    def sequence(self) -> InputInfo | None:
        """The DNA sequence input, or None (a signal-only model)."""
        return next((i for i in self.inputs.values() if i.kind == "sequence"), None)

    @property
    def seq_length(self) -> int | None:
        return self.sequence.shape[0] if self.sequence else None

    @property
    def extra_inputs(self) -> list:
        """The inputs other than the sequence (:func:`basenji_tk.analysis.inputs.extra_inputs` fills them)."""
        return [i for i in self.inputs.values() if i.kind != "sequence"]

    def describe(self) -> str:
        ins = ", ".join(f"{i.name} {i.kind} {tuple(i.shape)}" for i in self.inputs.values())
        outs = "; ".join(o.describe() for o in self.outputs.values())
        return f"{self.model_path}: window {self.window:,} bp; inputs {ins}; outputs {outs}"

    def output(self, name=None, option: str = "--output") -> OutputInfo:
        """The output ``name``; without a name, the only one (an error listing them when there are several)."""
        if name is None:
            if len(self.outputs) == 1:
                return next(iter(self.outputs.values()))
            raise InputError(f"{self.model_path}: the model has {len(self.outputs)} outputs; choose one with {option} "
                             f"({', '.join(self.outputs)})")
        if name not in self.outputs:
            raise InputError(f"{option}: '{name}' is not an output of {self.model_path} "
                             f"(outputs: {', '.join(self.outputs)})")
        return self.outputs[name]

    def select_targets(self, spec=None, output=None, option: str = "--targets") -> list[tuple[int, str, str]]:
        """``spec``: comma-separated indices or ids of ``output``'s targets (None: all) -> [(index, id, label)]."""
        out = output if isinstance(output, OutputInfo) else self.output(output)
        return select_targets(spec, out.targets, out.labels, option)

    def track_layout(self, script: str = "this script", output=None) -> dict:
        """``seq_length``, ``num_bins``, ``num_targets``, ``pool_width``, ``bin_offset``, ``target_ids`` of
        a sequence model's binned output (what the track scripts need); an error naming ``script`` otherwise."""
        out = self.output(output)
        if self.sequence is None or not out.positional:
            raise InputError(f"{script} needs a sequence model with binned outputs; {self.model_path} has "
                             f"{out.describe()} from {', '.join(self.inputs)}")
        return dict(seq_length=self.seq_length, num_bins=out.shape[0], num_targets=out.num_targets,
                    pool_width=out.resolution, bin_offset=out.offset, target_ids=list(out.targets))

    def genome(self, fasta=None):
        """``fasta`` or the genome the model was trained on (an open :class:`~basenji_tk.io.genome.Genome`)."""
        return folder_genome(self.model_dir, fasta)

    # ------------------------------------------------------------------- predicting
    def predictor(self, rc: bool = False, shifts=(0,), logits: bool = False):
        """A keras.Model taking the model's inputs (a dict of arrays, or the bare sequence when the model
        takes only that) and giving ``{output name: tensor}``: the mean over ``shifts`` (bp; the sequence
        moves, N-padded) and, with ``rc``, reverse complements (every positional input reversed, strand
        pairs swapped; positional outputs flipped back). ``logits``: the outputs before their final
        sigmoid/softmax (an error for an output without a separate activation)."""
        shifts = tuple(int(s) for s in shifts) or (0,)
        key = (bool(rc), shifts, bool(logits))
        if key not in self._predictors:
            self._predictors[key] = self._build_predictor(*key)
        return self._predictors[key]

    def _output_tensor(self, name: str, logits: bool):
        t = _model_outputs(self.model)[name]
        if not logits:
            return t
        activation, tensor = final_activation(t)
        if tensor is None:
            raise InputError(f"{self.model_path}: output '{name}' has no separate final activation "
                             f"({activation or 'linear'}); its logits are not available")
        return tensor

    def output_model(self, name=None, logits: bool = False, option: str = "--output"):
        """ONE output of the model itself (no ensembling) as a keras.Model on the model's own layers,
        taking what ``tm.model`` takes; ``logits``: before its final sigmoid/softmax (see
        :meth:`predictor`). ``name`` as in :meth:`output`."""
        import keras

        out = self.output(name, option)
        key = ("output", out.name, bool(logits))
        if key not in self._predictors:
            self._predictors[key] = keras.Model(self.model.input, self._output_tensor(out.name, logits),
                                                name=f"{self.model.name}_{out.name}")
        return self._predictors[key]

    def _base(self, logits: bool):
        import keras

        outs = {name: self._output_tensor(name, logits) for name in _model_outputs(self.model)}
        return keras.Model(self.model.input, outs, name=f"{self.model.name}_outputs")

    def _build_predictor(self, rc: bool, shifts: tuple, logits: bool):
        import keras

        from basenji_tk.model import layers

        seq = self.sequence
        too_far = [s for s in shifts if seq is not None and abs(s) >= seq.shape[0]]
        if too_far:
            raise InputError(f"--shifts: {too_far[0]} is not shorter than the model's {seq.shape[0]} bp input")
        if seq is None and shifts != (0,):
            raise InputError(f"--shifts: {self.model_path} has no sequence input to shift")
        base = self._base(logits)
        dict_input = isinstance(self.model.input, dict)
        names = list(self.inputs)
        tensors = {n: keras.Input(self.inputs[n].shape, name=n) for n in names}
        runs = []
        for shift in shifts:
            for reverse in ([False, True] if rc else [False]):
                x = dict(tensors)
                if shift:
                    x[seq.name] = layers.ShiftSequence(shift)(x[seq.name])
                if reverse:
                    for n, info in self.inputs.items():
                        if info.kind == "sequence":
                            x[n] = layers.ReverseComplement()(x[n])
                        elif info.kind == "signal":
                            f = info.feature
                            x[n] = _swap_strands(layers.ReverseBins()(x[n]), bool(f is not None and f.strands))
                y = base(x if dict_input else x[names[0]])
                y = dict(y) if isinstance(y, dict) else {next(iter(self.outputs)): y}
                if reverse:
                    y = {n: _swap_strands(layers.ReverseBins()(t), self.outputs[n].strands)
                         if self.outputs[n].positional else t for n, t in y.items()}
                runs.append(y)
        out = {n: runs[0][n] if len(runs) == 1 else keras.layers.Average()([r[n] for r in runs]) for n in runs[0]}
        return keras.Model(tensors if dict_input else tensors[names[0]], out, name=f"{self.model.name}_ensemble")

    def model_inputs(self, inputs) -> object:
        """``inputs`` (a dict by input name, or the sequence array for a model with only that) as the
        Keras model takes them; an error naming a missing input."""
        if not isinstance(inputs, dict):
            if len(self.inputs) != 1:
                raise InputError(f"{self.model_path} takes {', '.join(self.inputs)}; give a dict of arrays")
            inputs = {next(iter(self.inputs)): inputs}
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise InputError(f"model input '{missing[0]}' is not given (the model takes {', '.join(self.inputs)})")
        arrays = {n: np.asarray(inputs[n], dtype=np.float32) for n in self.inputs}
        return arrays if isinstance(self.model.input, dict) else arrays[next(iter(self.inputs))]

    def predict(self, inputs, rc: bool = False, shifts=(0,), logits: bool = False) -> dict:
        """One batch: ``inputs`` (see :meth:`model_inputs`, each ``(B, ...)``) -> ``{output: (B, ...) float32}``."""
        out = self.predictor(rc, shifts, logits).predict_on_batch(self.model_inputs(inputs))
        return {n: np.asarray(v, dtype=np.float32) for n, v in out.items()}


def _swap_strands(x, strands: bool):
    """Swap each (+, -) pair of the last axis (a reverse complement of a stranded track)."""
    if not strands:
        return x
    import keras

    n = int(x.shape[-1])
    order = [k + 1 if k % 2 == 0 else k - 1 for k in range(n)]
    return keras.ops.take(x, np.array(order, dtype=np.int32), axis=-1)


def _own_resolution(model, head, inputs, window, shape) -> int:
    """bp per position of an output whose shape differs from its label's (a ``--model`` file other
    than the one params.json describes): the receptive-field step on the first positional input."""
    from basenji_tk.model.models import receptive_field

    field = receptive_field(model, head)
    first = next((i for i in inputs.values() if i.positional), None)
    if field is not None and not field.whole and first is not None:
        return int(field.step * first.resolution)
    return max(1, window // int(shape[0]))


def _label_kind(label, shape) -> str:
    """The output kind of a head trained on the dataset feature ``label``."""
    if label.positional and len(shape) >= 2:
        return "profile" if label.label_type == "profile" else "binned"
    if label.label_type == "binary":
        return "probability"
    if label.label_type == "count" or label.meta.get("total"):
        return "total"
    return "value"


def _target_ids(names, shape, head) -> list:
    n = int(shape[-1]) if shape else 1
    if len(names) == n:
        return [str(x) for x in names]
    return [head] if n == 1 else [f"{head}{k}" for k in range(n)]


def _offset(window, shape, resolution, path, name) -> int:
    span = int(shape[0]) * int(resolution)
    if span > window:
        raise InputError(f"{path}: output '{name}' spans {shape[0]} x {resolution} bp = {span:,} bp, more than the "
                         f"model's {window:,} bp window")
    return (window - span) // 2


def select_targets(spec, target_ids: list[str], labels: list[str], option: str = "--targets"
                   ) -> list[tuple[int, str, str]]:
    """``option`` (``--targets``): comma-separated indices or identifiers (None: all) -> [(index, id, label)]."""
    if spec is None or str(spec).strip() == "":
        return [(i, t, labels[i]) for i, t in enumerate(target_ids)]
    chosen = []
    for part in str(spec).split(","):
        part = part.strip()
        if part in target_ids:
            i = target_ids.index(part)
        elif re.fullmatch(r"\d+", part) and int(part) < len(target_ids):
            i = int(part)
        else:
            raise InputError(f"{option}: {part!r} is neither a target id nor an index below {len(target_ids)} "
                             f"(targets: {', '.join(target_ids[:8])}{' ...' if len(target_ids) > 8 else ''})")
        chosen.append((i, target_ids[i], labels[i]))
    return chosen
