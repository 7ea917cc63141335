"""The inputs of a model besides its DNA: one function every script uses to fill them.

A model may take, besides (or instead of) the sequence of its window:

* a **context vector** (ChromDragoNN's expression of transcription factors in a cell type): a row of
  the training pairs dataset's context table (``--context NAME``), or a row of a TSV of the same
  features (``--context_tsv FILE --context NAME``; the training transform, e.g. log2(x + 1), is
  applied and columns are matched by name);
* **signal tracks** (a Tn5 bias track, GRO-seq coverage): read for the window from the BigWigs/BEDs
  of the tracks table the dataset's feature ``meta`` names, binned, cropped and transformed as the
  dataset builder did (:func:`basenji_tk.data.features.signal_plan`);
* **fixed values** (``--input NAME=VALUE``, ``NAME=v1,v2,...`` or ``NAME=FILE.npy``), which also
  override the two above.

:func:`resolve_inputs` checks the options against the model once (every problem is one error
naming the option and what was expected) and returns an :class:`InputResolver`; calling it with
windows ``(chrom, start, end)`` (the model's window, FASTA chromosome names) gives
``{input name: array}`` for every non-sequence input. :func:`extra_inputs` does both at once.
"""

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

CONTEXT_INPUT = "expression"  # the context vector of a pairs dataset (basenji_tk.data.pairs.PAIR_FEATURES)


@dataclass
class InputOptions:
    """What the scripts' ``--context``, ``--context_tsv`` and ``--input`` options say."""

    context: str | None = None
    context_tsv: str | None = None
    values: tuple = ()  # "NAME=VALUE" / "NAME=v1,v2" / "NAME=FILE.npy"
    data_dir: str | None = None  # the training dataset folder, when it moved since training


def options_from_args(args) -> InputOptions:
    """The :class:`InputOptions` of a script's parsed arguments (:func:`basenji_tk.cli.add_input_options`)."""
    return InputOptions(getattr(args, "context", None), getattr(args, "context_tsv", None),
                        tuple(getattr(args, "input", None) or ()), getattr(args, "data", None))


def constant_array(text: str, shape: tuple, option: str) -> np.ndarray:
    """``VALUE`` (every element), ``v1,v2,...`` (the whole shape) or ``FILE.npy`` -> float32 of ``shape``."""
    if str(text).endswith(".npy"):
        if not os.path.isfile(text):
            raise InputError(f"{option}: {text}: file not found")
        arr = np.load(text).astype(np.float32)
    else:
        try:
            arr = np.array([float(v) for v in str(text).split(",")], dtype=np.float32)
        except ValueError:
            raise InputError(f"{option}: expected a number, comma-separated numbers or a .npy file, got "
                             f"{text!r}") from None
        if arr.size == 1:
            return np.full(shape, arr[0], dtype=np.float32)
    if arr.size != int(np.prod(shape)):
        raise InputError(f"{option}: {arr.size} values for an input of shape {list(shape)}")
    return arr.reshape(shape)


def _fixed_values(tm, values) -> dict:
    out = {}
    for text in values:
        name, sep, value = str(text).partition("=")
        name = name.strip()
        if not sep or not value:
            raise InputError(f"--input: expected NAME=VALUE or NAME=FILE.npy, got {text!r}")
        if name not in tm.inputs:
            raise InputError(f"--input: '{name}' is not an input of {tm.model_path} (inputs: {', '.join(tm.inputs)})")
        if tm.inputs[name].kind == "sequence":
            raise InputError(f"--input: '{name}' is the DNA sequence, which comes from the genome")
        out[name] = constant_array(value, tm.inputs[name].shape, f"--input {name}")
    return out


def _context_vector(tm, info, opts: InputOptions) -> np.ndarray:
    """The context row ``--context`` names: from ``--context_tsv`` or the training dataset's context table."""
    from basenji_tk.data import pairs

    if opts.context_tsv:
        meta = info.feature.meta if info.feature is not None else {}
        log_base, pseudo = meta.get("log", "none"), float(meta.get("pseudocount", 1.0) or 1.0)
        names, columns, values = pairs.read_context_table(opts.context_tsv, pseudo, log_base)
        where = opts.context_tsv
        want = list(info.names) or list(columns)
        missing = [c for c in want if c not in columns]
        if missing:
            raise InputError(f"--context_tsv: {where} lacks the column(s) {', '.join(missing[:5])} of the "
                             f"{len(want)} features '{info.name}' takes")
        values = values[:, [list(columns).index(c) for c in want]]
    else:
        spec = tm.spec
        if opts.data_dir:
            from basenji_tk.data import records

            spec = records.load_spec(opts.data_dir)
        names = list(pairs.pairs_info(spec)["contexts"])
        where = os.path.join(spec.path, pairs.pairs_info(spec)["context_table"])
        if not os.path.exists(where):
            raise InputError(f"--context: the context table {where} of the training dataset is missing; give "
                             "--context_tsv FILE (or --data DIR where the dataset is now)")
        values = pairs.context_table(spec)
    if opts.context not in names:
        shown = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
        raise InputError(f"--context: {opts.context!r} is not a context of {where} (contexts: {shown})")
    row = np.asarray(values[names.index(opts.context)], dtype=np.float32)
    if row.shape != tuple(info.shape):
        raise InputError(f"--context: {where} rows have {row.size} values but input '{info.name}' takes "
                         f"{list(info.shape)}")
    return row


@dataclass
class InputResolver:
    """Fills a model's non-sequence inputs for windows; made by :func:`resolve_inputs`."""

    tm: object
    fixed: dict = field(default_factory=dict)  # name -> array of the input's shape
    plans: dict = field(default_factory=dict)  # name -> FeaturePlan reading the signal
    chrom_sizes: dict | None = None

    def __call__(self, windows) -> dict:
        """``(chrom, start, end)`` -> ``{name: array of the input's shape}``; a list of windows ->
        ``{name: (B, ...)}``. Windows are the model's whole window (``tm.window`` bp)."""
        single = isinstance(windows, tuple) and len(windows) == 3 and not isinstance(windows[0], (tuple, list))
        rows = [windows] if single else list(windows)
        out = {n: np.broadcast_to(v, (len(rows),) + v.shape).copy() for n, v in self.fixed.items()}
        for name, plan in self.plans.items():
            if not plan.groups[0].tracks:
                needed = sorted({str(r[0]) for r in rows})
                plan.open(self.chrom_sizes, needed)
            stack = []
            for chrom, start, end in rows:
                if int(end) - int(start) != self.tm.window:
                    raise InputError(f"window {chrom}:{start}-{end} is {int(end) - int(start):,} bp; the model's "
                                     f"window is {self.tm.window:,} bp")
                stack.append(plan.values(str(chrom), int(start), int(end))[name])
            out[name] = np.stack(stack).astype(np.float32)
        return {n: v[0] for n, v in out.items()} if single else out

    def close(self):
        for plan in self.plans.values():
            plan.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _is_context(tm, info) -> bool:
    return tm.spec is not None and tm.spec.kind == "pairs" and info.name == CONTEXT_INPUT and info.kind == "vector"


def resolve_inputs(tm, options: InputOptions | None = None, chrom_sizes: dict | None = None,
                   only=None) -> InputResolver:
    """Decide where each non-sequence input of ``tm`` (or those named in ``only``) comes from; an
    error naming the option for one that cannot be filled. ``chrom_sizes`` (``{chrom: bp}``, e.g.
    ``genome.sizes``) is needed for signal inputs read from tracks (default: the training
    statistics' chromosome sizes)."""
    opts = options or InputOptions()
    fixed = _fixed_values(tm, opts.values)
    resolver = InputResolver(tm, fixed, {}, chrom_sizes)
    context_used = any(_is_context(tm, i) for i in tm.extra_inputs)
    for info in tm.extra_inputs:
        if info.name in fixed or (only is not None and info.name not in only):
            continue
        if _is_context(tm, info):
            if not opts.context:
                raise InputError(f"model input '{info.name}' needs --context NAME (a context of the training "
                                 f"dataset, or of --context_tsv) or --input {info.name}=...")
            fixed[info.name] = _context_vector(tm, info, opts)
        elif info.kind == "signal" and info.feature is not None and info.feature.meta.get("tracks"):
            from basenji_tk.data.features import signal_plan

            plan = signal_plan(info.feature, f"{tm.model_dir}: input '{info.name}'").check_window(tm.window)
            resolver.plans[info.name] = plan
            if resolver.chrom_sizes is None:
                sizes = ((tm.stats or {}).get("genome") or {}).get("chrom_sizes")
                if not sizes:
                    raise InputError(f"model input '{info.name}' is read from tracks, and the chromosome sizes are "
                                     "unknown; pass the FASTA with --fasta")
                resolver.chrom_sizes = dict(sizes)
        else:
            raise InputError(f"model input '{info.name}' ({info.kind} {list(info.shape)}) needs --input "
                             f"{info.name}=VALUE (a number, v1,v2,... or FILE.npy)")
    if (opts.context or opts.context_tsv) and not context_used:
        raise InputError(f"--context: {tm.model_path} takes no context vector (inputs: {', '.join(tm.inputs)})")
    if opts.context_tsv and not opts.context:
        raise InputError("--context_tsv needs --context NAME (the row to use)")
    return resolver


def extra_inputs(tm, windows, options: InputOptions | None = None, chrom_sizes: dict | None = None) -> dict:
    """``{input name: array}`` for every non-sequence input of ``tm`` over ``windows`` (one
    ``(chrom, start, end)`` or a list); see :func:`resolve_inputs`."""
    with resolve_inputs(tm, options, chrom_sizes) as resolver:
        return resolver(windows)
