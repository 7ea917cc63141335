"""In-silico motif insertion: how a model's prediction moves when a motif is written into backgrounds.

bpAI-TAC (Fig. 3) inserts a motif into 1,000 dinucleotide-shuffled sequences and compares the
predictions with and without it; Basenji and ChromBPNet do the same for footprints. Here:

* **backgrounds** (:mod:`basenji_tk.interpret.backgrounds`): dinucleotide shuffles of the windows centred on BED
  regions (:func:`shuffled_backgrounds`, GENERATED sequence with the regions' exact dinucleotide
  counts) or genome windows of matched GC (:func:`gc_backgrounds`);
* **instances** (:func:`motif_instances`): the motif's consensus, or one instance sampled from its
  PWM per background (seeded);
* **insertion** (:func:`insert`): the instance, or its reverse complement for ``-``, written over
  ``width`` bases from ``start`` of every background;
* **scores** (:class:`Arm`): one model with its inputs filled (a context, a signal, fixed values),
  predicting one output; a background's score is the chosen targets summed (a lineage may be a
  sum of targets) over the bins :func:`basenji_tk.interpret.scoring.scored_bins` picks for a
  positional output, the number itself otherwise;
* **tests** (:func:`summarize`): per arm, the median delta, its IQR, the fraction above 0 and a
  Wilcoxon signed-rank test of with against without; between two arms (two models, or two
  contexts of one) a test of their deltas: the paired signed-rank test by default, because both
  arms see the same backgrounds, so pairing removes the background-to-background spread that a
  rank-sum test (bpAI-TAC's choice, ``rank_sum``) leaves in; the rank-sum test treats the two sets
  of deltas as independent samples;
* **footprints** (:func:`footprint`): a profile output around the inserted motif, the median and
  25-75 % band over backgrounds with and without it, per insertion strand and target (bpAI-TAC
  Fig. 3d), the model's Tn5 bias input (issue 13) set to zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.interpret.backgrounds import (Backgrounds, gc_backgrounds, shuffled_backgrounds,
                                              site_windows, window_gc)

log = logging.getLogger("basenji_tk")

INSTANCES = ("consensus", "sample")
STRANDS = ("+", "-", "both")
TESTS = ("signed_rank", "rank_sum")


# ----------------------------------------------------------------------------- motifs and insertion
def motif_instances(motif, n: int, instance: str = "consensus", rng=None) -> np.ndarray:
    """``n`` one-hot instances ``(n, W, 4)`` float32 of ``motif`` (a :class:`basenji_tk.io.meme.Motif`):
    its consensus ``n`` times, or with ``sample`` one sequence drawn base by base from its PWM each."""
    pwm = np.asarray(motif.pwm, dtype=np.float64)
    if pwm.ndim != 2 or pwm.shape[1] != 4 or not len(pwm):
        raise InputError(f"motif {motif.name}: expected a (width, 4) matrix, got {pwm.shape}")
    pwm = np.clip(pwm, 0, None)
    pwm = pwm / np.where(pwm.sum(axis=1, keepdims=True) > 0, pwm.sum(axis=1, keepdims=True), 1)
    eye = np.eye(4, dtype=np.float32)
    if instance == "consensus":
        return np.repeat(eye[pwm.argmax(axis=1)][None], n, axis=0)
    if instance != "sample":
        raise InputError(f"--instance: '{instance}' (expected one of {', '.join(INSTANCES)})")
    rng = np.random.default_rng(rng)
    draws = rng.random((n, len(pwm), 1))
    bases = (draws > np.cumsum(pwm, axis=1)[None]).sum(axis=2).clip(0, 3)
    return eye[bases]


def insertion_start(length: int, width: int, name: str = "motif", position=None) -> int:
    """Where (window bp) a ``width``-bp motif starts: centred on ``position`` (default the window's
    centre). An error when it is longer than the ``length``-bp window or runs off it."""
    if width > length:
        raise InputError(f"motif {name} is {width} bp, longer than the model's {length:,} bp window")
    centre = length // 2 if position is None else int(position)
    start = centre - width // 2
    if start < 0 or start + width > length:
        raise InputError(f"--position {centre}: motif {name} ({width} bp) centred there runs off the "
                         f"{length:,} bp window (expected {width // 2} to {length - width + width // 2})")
    return start


def insert(backgrounds: np.ndarray, instances: np.ndarray, start: int, strand: str = "+") -> np.ndarray:
    """A copy of ``backgrounds`` ``(N, L, 4)`` with ``instances`` ``(N, W, 4)`` (their reverse
    complements for ``-``) over ``[start, start + W)``."""
    out = np.array(backgrounds, dtype=np.float32, copy=True)
    inst = instances[:, ::-1, ::-1] if strand == "-" else instances
    out[:, start:start + inst.shape[1]] = inst
    return out


# ----------------------------------------------------------------------------- one model, its inputs, one output
def bias_inputs(tm, output: str) -> list[str]:
    """Names of the inputs added to the logits of ``output``'s positional softmax (a Tn5 bias
    track, issue 13): what footprints set to zero."""
    from basenji_tk.analysis.trained import _PASS_THROUGH, _model_inputs, _model_outputs, _parents

    tensor = _model_outputs(tm.model)[output]
    while True:
        op, parents = _parents(tensor)
        if type(op).__name__ in _PASS_THROUGH and parents:
            tensor = parents[0]
            continue
        if type(op).__name__ != "SoftmaxPositions" or len(parents) != 2:
            return []
        break
    by_op = {id(t._keras_history[0]): name for name, t in _model_inputs(tm.model).items()}
    found, stack, seen = [], [parents[1]], set()
    while stack:
        op, up = _parents(stack.pop())
        if id(op) in seen:
            continue
        seen.add(id(op))
        if id(op) in by_op:
            found.append(by_op[id(op)])
        stack.extend(up)
    return found


@dataclass
class Arm:
    """One side of a comparison: ``tm`` (a :class:`~basenji_tk.analysis.trained.TrainedModel`)
    predicting ``scored`` (:func:`~basenji_tk.interpret.scoring.choose_output`) with its other inputs
    filled by ``fill`` (:func:`~basenji_tk.analysis.inputs.resolve_inputs`); ``label`` names it."""

    label: str
    tm: object
    scored: object
    fill: object
    rc: bool = False
    shifts: tuple = (0,)
    batch_size: int = 32
    zeros: dict = field(default_factory=dict)  # inputs held at zero (a bias track)

    def predict(self, one_hot: np.ndarray, windows) -> np.ndarray:
        """The chosen output for ``one_hot`` ``(N, L, 4)`` in batches: ``(N, *output)`` float32."""
        tm, name = self.tm, self.scored.info.name
        model = tm.predictor(self.rc, self.shifts)
        seq = tm.sequence.name
        out, B = [], int(self.batch_size)
        for i in range(0, len(one_hot), B):
            x = np.asarray(one_hot[i:i + B], dtype=np.float32)
            rows = list(windows[i:i + B])
            pad = B - len(x)
            if pad:  # one traced batch shape
                x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
                rows += [rows[-1]] * pad
            inputs = dict(self.fill(rows)) if tm.extra_inputs else {}
            for k, shape in self.zeros.items():
                inputs[k] = np.zeros((B, *shape), dtype=np.float32)
            inputs[seq] = x
            y = model.predict_on_batch(tm.model_inputs(inputs))
            y = y[name] if isinstance(y, dict) else y
            out.append(np.asarray(y, dtype=np.float32)[:B - pad])
        return np.concatenate(out)

    def score(self, preds: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """``(N,)``: the chosen targets of ``preds`` summed, over ``bins`` for a positional output."""
        preds, t = np.asarray(preds, dtype=np.float64), self.scored.target_index
        if preds.ndim == 3:
            return preds[:, bins][:, :, t].sum(axis=(1, 2))
        return preds[:, t].sum(axis=1)


def effects(arms, backgrounds: Backgrounds, instances: np.ndarray, start: int, strands=("+",), stat="center",
            tss_flank: int = 0):
    """Scores of every background without and with the motif, per arm and insertion strand: a
    ``pandas.DataFrame`` with ``background, source, strand, without, with, delta`` (and
    ``without_b, with_b, delta_b`` for a second arm)."""
    import pandas as pd

    from basenji_tk.interpret.scoring import scored_bins

    width = instances.shape[1]
    cols = {}
    for k, arm in enumerate(arms):
        bins = scored_bins(arm.scored, stat, start, start + width, start + width // 2, tss_flank)
        base = arm.score(arm.predict(backgrounds.one_hot, backgrounds.windows), bins)
        suffix = "" if k == 0 else "_b"
        for s in strands:
            got = arm.score(arm.predict(insert(backgrounds.one_hot, instances, start, s), backgrounds.windows), bins)
            cols.setdefault(s, {}).update({f"without{suffix}": base, f"with{suffix}": got,
                                           f"delta{suffix}": got - base})
    n = len(backgrounds)
    frames = [pd.DataFrame({"background": np.arange(n), "source": backgrounds.source, "strand": s, **cols[s]})
              for s in strands]
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- statistics
def _signed_rank(x, y=None) -> tuple[float, float]:
    """Wilcoxon signed-rank test of ``x - y`` (two-sided); ``(0, 1)`` when every difference is 0."""
    from scipy import stats

    d = np.asarray(x, dtype=np.float64) - (0 if y is None else np.asarray(y, dtype=np.float64))
    if not np.any(d != 0):
        return 0.0, 1.0
    res = stats.wilcoxon(d)
    return float(res.statistic), float(res.pvalue)


def _rank_sum(x, y) -> tuple[float, float]:
    """Mann-Whitney U (Wilcoxon rank-sum, two-sided) of ``x`` against ``y``."""
    from scipy import stats

    res = stats.mannwhitneyu(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                             alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def _row(group, strand, delta, test, statistic, p):
    q25, q50, q75 = np.percentile(delta, [25, 50, 75]) if len(delta) else (np.nan,) * 3
    return {"group": group, "strand": strand, "n": len(delta), "median_delta": q50, "q25": q25, "q75": q75,
            "iqr": q75 - q25, "fraction_positive": float(np.mean(np.asarray(delta) > 0)) if len(delta) else np.nan,
            "test": test, "statistic": statistic, "p_value": p}


def summarize(table, labels, test: str = "signed_rank"):
    """Per arm (``labels``) and strand (and both strands pooled when there are two): median delta,
    quartiles, IQR, fraction > 0 and a Wilcoxon signed-rank test of with against without; with two
    arms, a comparison row per strand: ``signed_rank`` of the paired deltas (default) or
    ``rank_sum`` (Mann-Whitney). ``median_delta`` of a comparison row: the median of ``delta_b -
    delta`` (signed_rank) or the difference of the medians (rank_sum)."""
    import pandas as pd

    if test not in TESTS:
        raise InputError(f"--test: '{test}' (expected one of {', '.join(TESTS)})")
    strands = list(dict.fromkeys(table["strand"]))
    groups = [(s, table[table["strand"] == s]) for s in strands]
    if len(strands) > 1:
        groups.append(("both", table))
    rows = []
    for k, label in enumerate(labels):
        suffix = "" if k == 0 else "_b"
        for s, part in groups:
            rows.append(_row(label, s, part[f"delta{suffix}"].to_numpy(), "wilcoxon_signed_rank_with_vs_without",
                             *_signed_rank(part[f"with{suffix}"], part[f"without{suffix}"])))
    if len(labels) == 2:
        for s, part in groups:
            a, b = part["delta"].to_numpy(), part["delta_b"].to_numpy()
            if test == "signed_rank":
                row = _row(f"{labels[1]} - {labels[0]}", s, b - a, "wilcoxon_signed_rank_paired", *_signed_rank(b, a))
            else:
                row = _row(f"{labels[1]} - {labels[0]}", s, b - a, "mann_whitney_rank_sum", *_rank_sum(b, a))
                row.update(median_delta=float(np.median(b) - np.median(a)), q25=np.nan, q75=np.nan, iqr=np.nan,
                           fraction_positive=np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- footprints
def check_profile(arm):
    """The arm's output info; an error unless it is a profile."""
    info = arm.scored.info
    if info.kind != "profile":
        others = [o.name for o in arm.tm.outputs.values() if o.kind == "profile"]
        hint = f" (--output {others[0]})" if others else "; the model has none"
        raise InputError(f"--footprint: output '{info.name}' of {arm.tm.model_path} is a {info.kind} output; "
                         f"a footprint needs a profile output{hint}")
    return info


def footprint(arm, backgrounds: Backgrounds, instances: np.ndarray, start: int, strands=("+",), flank=None):
    """A profile output around the motif inserted at ``start``: per insertion strand, target and
    output position within ``flank`` bp of the motif's centre (all positions when None), the
    median and 25 / 75 % quantiles over backgrounds of the prediction with and without the motif.
    ``position``: bp from the motif's centre. The arm's bias inputs are held at zero."""
    from dataclasses import replace

    import pandas as pd

    info = check_profile(arm)
    width = instances.shape[1]
    centre = start + width / 2
    pos = info.offset + (np.arange(info.num_positions) + 0.5) * info.resolution - centre
    keep = np.ones(len(pos), dtype=bool) if flank is None else np.abs(pos) <= float(flank)
    if not keep.any():
        raise InputError(f"--flank {flank}: no position of output '{info.name}' lies that close to the motif")
    arm = replace(arm, zeros={b: arm.tm.inputs[b].shape for b in bias_inputs(arm.tm, info.name)})
    tidx = arm.scored.target_index
    without = arm.predict(backgrounds.one_hot, backgrounds.windows)[:, keep][:, :, tidx]
    q_without = np.percentile(without, [50, 25, 75], axis=0)
    frames = []
    for s in strands:
        got = arm.predict(insert(backgrounds.one_hot, instances, start, s), backgrounds.windows)[:, keep][:, :, tidx]
        q_with = np.percentile(got, [50, 25, 75], axis=0)
        for j, (_, t_id, _) in enumerate(arm.scored.targets):
            frames.append(pd.DataFrame({
                "strand": s, "target": t_id, "position": pos[keep],
                "with_median": q_with[0][:, j], "with_q25": q_with[1][:, j], "with_q75": q_with[2][:, j],
                "without_median": q_without[0][:, j], "without_q25": q_without[1][:, j],
                "without_q75": q_without[2][:, j]}))
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------- insert_motif.py
def find_motif(motifs, name: str, where: str = "--motifs"):
    """The motif called ``name``: by its name, else its alternative name (a JASPAR TF name), else
    either ignoring case."""
    for same in (lambda a, b: a == b, lambda a, b: a.upper() == b.upper()):
        for attr in ("name", "alt"):
            hits = [m for m in motifs if getattr(m, attr, "") and same(getattr(m, attr), name)]
            if hits:
                return hits[0]
    shown = ", ".join(m.alt or m.name for m in motifs[:8]) + (" ..." if len(motifs) > 8 else "")
    raise InputError(f"--motif: no motif named '{name}' in {where} ({len(motifs)} motifs: {shown})")


def make_arm(label, tm, output, targets, opts, genome, rc, shifts, batch_size):
    """An :class:`Arm` for ``tm``: its output chosen and its inputs resolved, a bias input the
    options leave unset held at zero (what issue 13 interprets)."""
    from dataclasses import replace

    from basenji_tk.analysis.inputs import InputOptions, resolve_inputs
    from basenji_tk.interpret.scoring import choose_output

    if tm.sequence is None or tm.window != tm.seq_length or tm.sequence.offset:
        raise InputError(f"{tm.model_path}: motif insertion writes into a DNA sequence input covering the whole "
                         "window; this model has none")
    scored = choose_output(tm, output, targets)
    opts = opts or InputOptions()
    given = {v.partition("=")[0].strip() for v in opts.values}
    biases = [b for b in bias_inputs(tm, scored.info.name) if b not in given]
    if biases:
        log.info(f"{tm.model_path}: bias input(s) {', '.join(biases)} held at zero")
        opts = replace(opts, values=tuple(opts.values) + tuple(f"{b}=0" for b in biases))
    fill = resolve_inputs(tm, opts, genome.sizes)
    return Arm(label, tm, scored, fill, bool(rc), tuple(shifts) or (0,), int(batch_size))


def insert_motif(model_dir, out_dir, motif: str, motifs: str, regions=None, gc_matched=None, gc=None, fasta=None,
                 instance: str = "consensus", n: int = 1000, output=None, targets=None, stat: str = "center",
                 tss_flank: int = 0, position=None, strand: str = "+", model_b=None, context_b=None, inputs=None,
                 test: str = "signed_rank", footprint_plot: bool = False, flank=None, rc: bool = False, shifts=(0,),
                 batch_size: int = 32, seed: int = 0, model_file=None, force: bool = False) -> dict:
    """``insert_motif.py``: insert ``motif`` (a name in the ``motifs`` database, MEME file or
    ``jaspar``) into ``n`` backgrounds (dinucleotide shuffles of the windows of the BED ``regions``,
    or ``gc_matched`` genome windows of GC ``gc`` or of the regions' GC), score one output
    with and without it, and compare with ``model_b`` (a model folder) or ``context_b`` (a second
    ``--context``). Writes ``insertions.tsv``, ``summary.tsv``, ``insertion_box.png`` (and with
    ``footprint_plot`` ``footprint.tsv`` and ``footprint.png``) into ``out_dir``; returns a summary."""
    import os
    from dataclasses import replace

    from basenji_tk import files
    from basenji_tk.analysis.evaluate import write_table
    from basenji_tk.analysis.inputs import InputOptions
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret import insertion_plots
    from basenji_tk.interpret.sites import read_sites
    from basenji_tk.io.meme import motif_database

    if regions is None and gc_matched is None:
        raise InputError("give --regions BED (dinucleotide-shuffled backgrounds) or --gc_matched N (genome windows)")
    if gc_matched is not None and regions is None and gc is None:
        raise InputError("--gc_matched: give the GC to match with --gc FRACTION, or --regions BED to match theirs")
    if model_b is not None and context_b is not None:
        raise InputError("compare two models (--model_b) or two contexts (--context_b), not both at once")
    if strand not in STRANDS:
        raise InputError(f"--strand: '{strand}' (expected one of {', '.join(STRANDS)})")
    if test not in TESTS:
        raise InputError(f"--test: '{test}' (expected one of {', '.join(TESTS)})")
    n = int(gc_matched if gc_matched is not None else n)
    if n < 1 or int(batch_size) < 1 or int(tss_flank) < 0:
        raise InputError("expected --n (or --gc_matched) >= 1, --batch_size >= 1 and --tss_flank >= 0")
    database = motif_database(motifs)
    if not database:
        raise InputError(f"--motifs: {motifs} holds no motif")
    mot = find_motif(database, motif, motifs)
    opts = inputs or InputOptions()
    tm = TrainedModel.load(model_dir, model_file)
    genome = tm.genome(fasta)
    L = tm.seq_length
    start = insertion_start(L or 0, mot.width, mot.alt or mot.name, position)
    label_a = opts.context if context_b is not None else os.path.basename(os.path.normpath(str(model_dir)))
    arms = [make_arm(label_a, tm, output, targets, opts, genome, rc, shifts, batch_size)]
    if context_b is not None:
        if not opts.context:
            raise InputError("--context_b: give the first context with --context A")
        arms.append(make_arm(context_b, tm, output, targets, replace(opts, context=context_b), genome, rc, shifts,
                         batch_size))
    elif model_b is not None:
        tm_b = TrainedModel.load(model_b)
        if tm_b.seq_length != L:
            raise InputError(f"--model_b: {tm_b.model_path} reads {tm_b.seq_length or 0:,} bp windows and "
                             f"{tm.model_path} {L:,} bp; the two models must see the same backgrounds")
        label_b = os.path.basename(os.path.normpath(str(model_b)))
        arms.append(make_arm(label_b if label_b != label_a else f"{label_b} (b)", tm_b, output, targets, opts, genome,
                         rc, shifts, batch_size))
    if footprint_plot:
        check_profile(arms[0])
    from basenji_tk.interpret.scoring import scored_bins

    for arm in arms:  # a statistic an output cannot take fails before any prediction
        scored_bins(arm.scored, stat, start, start + mot.width, start + mot.width // 2, tss_flank)
    names = ["insertions.tsv", "summary.tsv", "insertion_box.png"]
    names += ["footprint.tsv", "footprint.png"] if footprint_plot else []

    with files.claim(out_dir):
        files.refuse_overwrite(out_dir, names, force)
        rng = np.random.default_rng(seed)
        sites = read_sites(regions, genome) if regions is not None else None
        if gc_matched is not None:
            exclude = [w for _, w in site_windows(sites, L, genome.sizes)] if sites else None
            target_gc = float(gc) if gc is not None else window_gc(genome, exclude or [])  # one per region
            if np.ndim(target_gc) and (not len(target_gc) or np.isnan(target_gc).all()):
                raise InputError(f"{regions}: no region's {L:,} bp window lies inside its chromosome with a called "
                                 "base")
            target_gc = target_gc[~np.isnan(target_gc)] if np.ndim(target_gc) else target_gc
            bg = gc_backgrounds(genome, L, n, rng, target_gc, exclude)
        else:
            bg = shuffled_backgrounds(genome, sites, L, n, rng)
        instances = motif_instances(mot, len(bg), instance, rng)
        strands = ("+", "-") if strand == "both" else (strand,)
        log.info(f"inserting {mot.name}{f' ({mot.alt})' if mot.alt else ''} ({mot.width} bp, {instance}) at "
                 f"{start}-{start + mot.width} of {len(bg):,} {bg.kind} backgrounds, strand {strand}; "
                 + " vs ".join(f"{a.label}: {a.scored.describe()} {','.join(t[1] for t in a.scored.targets)}"
                               for a in arms))
        with _closing(arms):
            table = effects(arms, bg, instances, start, strands, stat, tss_flank)
            fp = footprint(arms[0], bg, instances, start, strands, flank) if footprint_plot else None
        labels = [a.label for a in arms]
        summary = summarize(table, labels, test)
        what = dict(motif=mot.name, motif_alt=mot.alt, instance=instance, background_kind=bg.kind,
                    output=arms[0].scored.info.name, targets=",".join(t[1] for t in arms[0].scored.targets))
        table.insert(2, "background_kind", bg.kind)
        summary = summary.assign(**what)
        out = str(out_dir)
        write_table(table, os.path.join(out, "insertions.tsv"))
        write_table(summary, os.path.join(out, "summary.tsv"))
        title = f"{mot.alt or mot.name} ({instance}) inserted into {len(bg):,} {bg.kind} backgrounds"
        scored = what["output"] if what["targets"] == what["output"] else f"{what['output']}: {what['targets']}"
        insertion_plots.box(table, labels, os.path.join(out, "insertion_box.png"), title, f"delta {scored}", summary)
        if fp is not None:
            fp.insert(0, "background_kind", bg.kind)
            write_table(fp, os.path.join(out, "footprint.tsv"))
            insertion_plots.footprint(fp, os.path.join(out, "footprint.png"), f"footprint of {title}")
    first = summary.iloc[0]
    return {"motif": mot.name, "width": mot.width, "backgrounds": len(bg), "start": start,
            "median_delta": float(first["median_delta"]), "fraction_positive": float(first["fraction_positive"]),
            "p_value": float(first["p_value"]), "summary": summary}


class _closing:
    """Close every arm's input readers on leaving the block."""

    def __init__(self, arms):
        self.arms = arms

    def __enter__(self):
        return self.arms

    def __exit__(self, *exc):
        for arm in self.arms:
            arm.fill.close()
