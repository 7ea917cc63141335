"""Models from elsewhere: a Keras file made into a model folder, and the card that describes it.

``import_model.py MODEL_FILE -o MODEL_DIR`` (:func:`import_model`) loads a ``.keras`` file, or a
Keras 2 ``.h5`` file, and writes ``MODEL_DIR/model.keras`` (safe-mode loadable; an input length
the file leaves open is fixed first) and ``MODEL_DIR/model_card.json``: what the file cannot
say, which :class:`~basenji_tk.analysis.trained.TrainedModel` reads::

    {"format": "basenji_tk.model_card/1",
     "model_file": "model.keras",
     "source": {"path": "/abs/model.h5", "sha256": "...", "format": "h5"},
     "window": 1000,
     "genome": {"path": "/abs/genome.fa"},
     "inputs": {"sequence": {"kind": "sequence", "shape": [1000, 4], "resolution": 1, "offset": 0}},
     "outputs": {"target": {"kind": "binned", "resolution": 1, "offset": 100, "targets": ["a", "b"],
                            "labels": ["a", "b"], "label_type": "regression", "activation": "softplus"}}}

``window`` is the bp of genome one prediction sees (the sequence input's length); an output's
position ``k`` spans ``window_start + offset + k * resolution`` onwards. Output kinds as in
:mod:`basenji_tk.analysis.trained`. ``train.py`` folders need no card (their params.json and
data_statistics.json say all of this).
"""

import json
import logging
import os

from basenji_tk import files
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

CARD_FORMAT = "basenji_tk.model_card/1"
CARD_KEYS = ("format", "model_file", "source", "window", "genome", "inputs", "outputs", "created_by")
INPUT_KEYS = ("kind", "shape", "resolution", "offset", "names")
OUTPUT_KEYS = ("kind", "shape", "resolution", "offset", "targets", "labels", "label_type", "activation", "strands",
               "label")
IMPORTED = "model.keras"
LABEL_TYPES = {"binned": "regression", "profile": "profile", "total": "count", "value": "regression",
               "probability": "binary"}


# ----------------------------------------------------------------------------- reading
def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_card(card, where: str) -> dict:
    """Check a card's keys and kinds; every problem is one error naming ``where`` and the key."""
    from basenji_tk.analysis.trained import INPUT_KINDS, OUTPUT_KINDS, POSITIONAL_KINDS

    if not isinstance(card, dict):
        raise InputError(f"{where}: expected a JSON object")
    if card.get("format") != CARD_FORMAT:
        raise InputError(f"{where}: format must be {CARD_FORMAT!r}, got {card.get('format')!r}")
    unknown = [k for k in card if k not in CARD_KEYS]
    if unknown:
        raise InputError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(CARD_KEYS)}")
    for key in ("model_file", "window", "inputs", "outputs"):
        if key not in card:
            raise InputError(f"{where}: '{key}' is required")
    if not _positive(card["window"]):
        raise InputError(f"{where}: window must be a positive integer (bp), got {json.dumps(card['window'])}")
    for section, keys, kinds in (("inputs", INPUT_KEYS, INPUT_KINDS), ("outputs", OUTPUT_KEYS, OUTPUT_KINDS)):
        if not isinstance(card[section], dict) or not card[section]:
            raise InputError(f"{where}: {section} must be an object naming at least one {section[:-1]}")
        for name, entry in card[section].items():
            at = f"{where}: {section}.{name}"
            if not isinstance(entry, dict):
                raise InputError(f"{at}: expected an object")
            bad = [k for k in entry if k not in keys]
            if bad:
                raise InputError(f"{at}: unknown key '{bad[0]}'; allowed: {', '.join(keys)}")
            if entry.get("kind") not in kinds:
                raise InputError(f"{at}: kind must be one of {', '.join(kinds)}, got {entry.get('kind')!r}")
            positional = entry["kind"] in POSITIONAL_KINDS or entry["kind"] in ("sequence", "signal")
            if positional and not _positive(entry.get("resolution")):
                raise InputError(f"{at}: a {entry['kind']} needs resolution (bp per position, a positive integer)")
    return card


def from_card(model, card: dict, where: str) -> tuple:
    """``(inputs, outputs, window)`` of ``model`` as its card describes them; the card must fit the model."""
    from basenji_tk.analysis.trained import (POSITIONAL_KINDS, InputInfo, OutputInfo, _model_inputs, _model_outputs,
                                             final_activation)

    window = int(card["window"])
    symbolic, outs = _model_inputs(model), _model_outputs(model)
    for section, have in (("inputs", symbolic), ("outputs", outs)):
        if set(card[section]) != set(have):
            raise InputError(f"{where}: {section} {', '.join(card[section])} but the model has "
                             f"{', '.join(have)}; import the model again")
    inputs = {}
    for name, t in symbolic.items():
        c = card["inputs"][name]
        shape = tuple(int(d) for d in t.shape[1:])
        res = c.get("resolution")
        offset = c.get("offset", (window - shape[0] * res) // 2) if res else None
        inputs[name] = InputInfo(name, c["kind"], shape, res, offset, tuple(c.get("names", ())))
    outputs = {}
    for name, t in outs.items():
        c = card["outputs"][name]
        shape = tuple(int(d) for d in t.shape[1:])
        res = c.get("resolution") if c["kind"] in POSITIONAL_KINDS else None
        offset = c.get("offset", (window - shape[0] * res) // 2) if res else None
        targets = [str(x) for x in c.get("targets") or [f"t{k}" for k in range(shape[-1] if shape else 1)]]
        if len(targets) != (shape[-1] if shape else 1):
            raise InputError(f"{where}: outputs.{name} names {len(targets)} targets but the model outputs "
                             f"{shape[-1] if shape else 1}")
        activation = c.get("activation") or final_activation(t)[0]
        outputs[name] = OutputInfo(name, c["kind"], shape, res, offset, targets,
                                   [str(x) for x in c.get("labels") or targets], activation,
                                   c.get("label_type") or LABEL_TYPES[c["kind"]], c.get("label"),
                                   bool(c.get("strands", False)))
    return inputs, outputs, window


# ----------------------------------------------------------------------------- importing
def _load_any(path: str):
    """A ``.keras`` file (safe mode) or a Keras 2 ``.h5`` file; an error for anything else."""
    import keras

    from basenji_tk.model.models import load_model

    if not os.path.isfile(path):
        raise InputError(f"{path}: model file not found")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:4] == b"PK\x03\x04":
        return load_model(path), "keras"
    if head == b"\x89HDF\r\n\x1a\n":
        try:
            return keras.saving.load_model(path, compile=False, safe_mode=True), "h5"
        except (ValueError, OSError, TypeError, KeyError) as err:
            raise InputError(f"{path}: cannot load this HDF5 file as a Keras model: "
                             f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    raise InputError(f"{path}: not a Keras model file (expected a .keras zip archive or a Keras 2 .h5 HDF5 file)")


def _fix_length(model, seq_length, path):
    """The model with its open input length set to ``seq_length`` (weights copied)."""
    import keras

    shapes = {n: tuple(t.shape[1:]) for n, t in _inputs(model).items()}
    open_axes = [n for n, s in shapes.items() if None in s]
    if not open_axes:
        fixed = {n: s[0] for n, s in shapes.items() if len(s) == 2}
        if seq_length and any(length != seq_length for length in fixed.values()):
            raise InputError(f"--seq_length {seq_length}: {path} takes fixed {list(fixed.values())[0]} bp inputs")
        return model
    if not seq_length:
        raise InputError(f"{path}: the input length is not fixed ({shapes[open_axes[0]]}); give it with --seq_length")
    new = {n: keras.Input(tuple(seq_length if d is None else d for d in s), name=n) for n, s in shapes.items()}
    tensors = new if isinstance(model.input, dict) else list(new.values())
    tensors = tensors[0] if isinstance(tensors, list) and len(tensors) == 1 else tensors
    try:
        clone = keras.models.clone_model(model, input_tensors=tensors)
        clone.set_weights(model.get_weights())
        return clone
    except (ValueError, TypeError) as err:
        raise InputError(f"{path}: cannot fix the input length to {seq_length} ({str(err).splitlines()[0]})") from None


def _inputs(model) -> dict:
    from basenji_tk.analysis.trained import _model_inputs

    return _model_inputs(model)


def read_target_names(spec: str, option: str = "--targets") -> tuple[list, list]:
    """``(ids, descriptions)`` from a comma-separated list, a TSV with an ``identifier`` column (and
    ``description``), or a text file of one id per line."""
    if spec is None:
        return [], []
    if os.path.isfile(spec):
        with open(spec) as fh:
            lines = [line.rstrip("\n\r") for line in fh if line.strip() and not line.startswith("#")]
        header = [h.strip() for h in lines[0].split("\t")] if lines else []
        if "identifier" in header:
            rows = [line.split("\t") for line in lines[1:]]
            i, d = header.index("identifier"), header.index("description") if "description" in header else None
            ids = [r[i].strip() for r in rows]
            return ids, [r[d].strip() if d is not None and d < len(r) else ids[k] for k, r in enumerate(rows)]
        return [line.strip() for line in lines], [line.strip() for line in lines]
    ids = [t.strip() for t in str(spec).split(",") if t.strip()]
    if not ids:
        raise InputError(f"{option}: expected target names (a,b,c) or a targets table, got {spec!r}")
    return ids, ids


def _per_output(values, names, option, convert=str) -> dict:
    """``["NAME=VALUE", "VALUE"]`` -> ``{output: value}``; a bare value applies to every output."""
    out = {}
    for text in values or []:
        name, sep, value = str(text).partition("=")
        if sep and name in names:
            out[name] = value
        elif sep and not os.path.exists(str(text)):
            raise InputError(f"{option}: '{name}' is not an output of the model (outputs: {', '.join(names)})")
        else:
            out.update({n: text for n in names if n not in out})
    try:
        return {n: convert(v) for n, v in out.items()}
    except ValueError:
        raise InputError(f"{option}: expected {'integers' if convert is int else 'values'}, got "
                         f"{', '.join(map(str, values))}") from None


def import_model(model_file, out_dir, seq_length=None, resolution=(), offset=(), targets=(), kinds=(),
                 fasta=None, force: bool = False) -> dict:
    """Make ``out_dir`` a model folder from a Keras file; returns the card written.

    ``resolution``, ``offset``, ``targets`` and ``kinds`` are lists of ``VALUE`` (every output) or
    ``OUTPUT=VALUE``: bp per output position (default: the model's receptive-field step), bp from
    the window start to the first position (default: centred), target names (``a,b,c`` or a
    targets table) and the output kind (default: positions x targets is ``binned``; a sigmoid or
    softmax output ``probability``; else ``value``). ``fasta``: the genome it predicts."""
    from basenji_tk.analysis.trained import (CARD, OUTPUT_KINDS, POSITIONAL_KINDS, _model_outputs, final_activation)
    from basenji_tk.model.models import receptive_field, save_model

    model_file, out_dir = str(model_file), str(out_dir)
    if fasta is not None and not os.path.isfile(str(fasta)):
        raise InputError(f"--fasta: {fasta}: FASTA file not found")
    if seq_length is not None and int(seq_length) < 1:
        raise InputError(f"--seq_length: expected a positive number of bp, got {seq_length}")
    model, fmt = _load_any(model_file)
    model = _fix_length(model, seq_length, model_file)
    ins = _inputs(model)
    positional = {n: tuple(int(d) for d in t.shape[1:]) for n, t in ins.items() if len(t.shape) == 3}
    if not positional:
        raise InputError(f"{model_file}: no input of shape (length, channels); a model of the genome reads a "
                         "sequence (length, 4) or a signal")
    seq_name = next((n for n, s in positional.items() if s[-1] == 4), next(iter(positional)))
    window = positional[seq_name][0]
    inputs = {}
    for n, t in ins.items():
        shape = [int(d) for d in t.shape[1:]]
        if len(shape) == 1:
            inputs[n] = {"kind": "vector", "shape": shape}
        else:
            inputs[n] = {"kind": "sequence" if n == seq_name and shape[-1] == 4 else "signal", "shape": shape,
                         "resolution": max(1, window // shape[0]), "offset": 0}
    outs = _model_outputs(model)
    names = list(outs)
    res_given = _per_output(resolution, names, "--resolution", int)
    off_given = _per_output(offset, names, "--offset", int)
    kind_given = _per_output(kinds, names, "--kind")
    tgt_given = _per_output(targets, names, "--targets")
    outputs = {}
    for name, t in outs.items():
        shape = [int(d) for d in t.shape[1:]]
        activation = final_activation(t)[0]
        kind = kind_given.get(name) or ("binned" if len(shape) == 2 else
                                        "probability" if activation in ("sigmoid", "softmax") else "value")
        if kind not in OUTPUT_KINDS:
            raise InputError(f"--kind: '{kind}' is not an output kind ({', '.join(OUTPUT_KINDS)})")
        entry = {"kind": kind, "shape": shape}
        if kind in POSITIONAL_KINDS:
            if len(shape) != 2:
                raise InputError(f"--kind {kind}: output '{name}' has shape {shape}; a {kind} output is "
                                 "(positions, targets)")
            res = res_given.get(name)
            if res is None:
                field = receptive_field(model, None if name == "target" else name)
                res = field.step if field is not None and not field.whole else None
                if res is None or shape[0] * res > window:
                    raise InputError(f"{model_file}: cannot tell the bp per position of output '{name}'; give "
                                     "--resolution")
            if res < 1 or window % res:
                raise InputError(f"--resolution: {res} bp per position does not divide the model's {window:,} bp "
                                 "input")
            span = shape[0] * res
            off = off_given.get(name, (window - span) // 2)
            if off < 0 or off + span > window:
                raise InputError(f"--offset: output '{name}' ({shape[0]} x {res} bp from {off} bp) does not fit in "
                                 f"the {window:,} bp input")
            entry.update(resolution=int(res), offset=int(off))
        n = shape[-1] if shape else 1
        ids, labels = read_target_names(tgt_given.get(name), "--targets")
        if ids and len(ids) != n:
            raise InputError(f"--targets: {len(ids)} names for output '{name}', which has {n} targets")
        entry.update(targets=ids or [f"t{k}" for k in range(n)], labels=labels or ids or [f"t{k}" for k in range(n)],
                     label_type=LABEL_TYPES[kind])
        if activation:
            entry["activation"] = activation
        outputs[name] = entry
    from basenji_tk import __version__

    card = {"format": CARD_FORMAT, "model_file": IMPORTED, "created_by": f"basenji_tk {__version__}",
            "source": {"path": os.path.abspath(model_file), "sha256": files.file_sha256(model_file), "format": fmt},
            "window": int(window), "genome": {"path": os.path.abspath(str(fasta))} if fasta else None,
            "inputs": inputs, "outputs": outputs}
    with files.claim(out_dir):
        held = [p for p in (IMPORTED, CARD, "model_best.keras") if os.path.exists(os.path.join(out_dir, p))]
        if held and not force:
            raise InputError(f"{out_dir}: already holds a model ({', '.join(held)}); use --force to replace it")
        save_model(model, os.path.join(out_dir, IMPORTED))
        tmp = os.path.join(out_dir, f".{CARD}.tmp{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump(card, fh, indent=1)
            fh.write("\n")
        os.replace(tmp, os.path.join(out_dir, CARD))
    log.info(f"wrote {out_dir}: {os.path.basename(model_file)} ({fmt}) with a {window:,} bp window; outputs "
             + "; ".join(f"{n} {o['kind']} {tuple(o['shape'])}" for n, o in outputs.items()))
    return card
