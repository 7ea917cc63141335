"""Accuracy of a trained model on one split of a dataset: a per-target table and plots.

:func:`evaluate` (behind ``bin/test.py``) predicts every sequence of a split, in
batches, and scores each target:

* Pearson r and R² (``1 - SS_res/SS_tot``) on raw values and on ``log2(x+1)``
  values, exact over all bins (streamed through
  :class:`~basenji_tk.model.accumulator.PerTargetAccumulator`), and Spearman r on its
  random sample of bins (exact up to 200,000 bins);
* for a binary target (every value in the split is 0 or 1): AUROC and AUPRC of
  the predictions;
* with ``peaks``: bins called as peaks in the experiment
  (:func:`~basenji_tk.model.peaks.call_peaks`, Poisson against the larger of the mean
  and the mean of the surrounding 10 kb, FDR 0.01), the fraction of
  bins that are peaks, the AUPRC of the predictions for those peaks, and their
  ratio (the enrichment over a random predictor, whose AUPRC is the fraction);
* with ``baseline``: the same scores for a linear model of each bin's target on
  two features of the bin's DNA, GC fraction and CpG count (see
  :func:`bin_features`), fitted on the train split. A model that does not beat
  it has learnt little beyond base composition.

Outputs in ``out_dir``: ``acc.tsv`` (one row per target), ``scatter_<id>.png``
per target and ``tracks_<chrom>_<start>.png`` for the sequences with the most
experiment signal.

Memory: the metrics stream, but peak calling needs the whole split at once, so
with ``peaks`` the targets and predictions of the split are held as ``(S, T, n)``
float32 arrays (and the baseline's with ``baseline``); without it only the
columns of binary targets are. That is fine for test splits; for a split of
thousands of sequences and targets, leave ``peaks`` off.

Every kind of model and dataset. The model is a
:class:`~basenji_tk.analysis.trained.TrainedModel`; the split is read as training reads it
(:func:`basenji_tk.data.records.dataset`, a pairs dataset in the view the model was trained on),
each model input taking the dataset feature of its name (the DNA: the dataset's sequence) or
what ``inputs`` gives (:mod:`basenji_tk.analysis.inputs`), and each output scored against the
label it was trained on (an imported model: the label of its name, or the one label of its
shape). Binned outputs get the table above; the others the scores of their kind
(:mod:`basenji_tk.analysis.scores`): AUROC and AUPRC for probabilities (with ROC and PR curves),
JSD and profile Pearson r for profiles, Pearson, Spearman, R² and RMSE for one value per record
or a total (with scatter plots). A model of one output writes ``acc.tsv``; a model of several
writes ``acc_<output>.tsv`` per output and prefixes its plots with the output's name.
"""

import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from basenji_tk import cli, files
from basenji_tk.analysis.baseline import baseline_predict, bin_features, fit_baseline, one_hot_to_codes  # noqa: F401
from basenji_tk.errors import InputError

if TYPE_CHECKING:
    from basenji_tk.model.accumulator import PerTargetAccumulator

# Keras and TensorFlow load inside the functions that need them (basenji_tk.model.models,
# .metrics, .tfrecords), so that a script stops at a bad option before paying for them.
log = logging.getLogger("basenji_tk")

ACC = "acc.tsv"
PEAK_FDR = 0.01
PEAK_LOCAL_BP = 5000  # local background from +-5 kb around a bin (MACS's 10 kb "llocal" window)
NUM_TRACKS = 3


# ----------------------------------------------------------------------------- options shared with predict.py
def parse_shifts(text: str, option: str = "--shifts") -> tuple[int, ...]:
    """``"1,0,-1"`` -> ``(1, 0, -1)``; anything else is an :class:`InputError` naming ``option``."""
    try:
        shifts = tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        shifts = ()
    if not shifts:
        raise InputError(f"{option}: expected comma-separated integers such as 1,0,-1, got {text!r}")
    return shifts


def file_label(name: str) -> str:
    """A target id or chromosome made safe for a file name (anything odd becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)) or "_"


def peak_window(resolution: int) -> int:
    """Bins each side of a bin of ``resolution`` bp for the local Poisson background: +-5 kb, as
    MACS's 10 kb window."""
    return max(1, round(PEAK_LOCAL_BP / int(resolution)))


# ----------------------------------------------------------------------------- one pass over a split
class _Keeper:
    """Keeps, batch after batch, the ``(B, T, k)`` slices of the target columns still wanted.

    ``wanted`` may only lose columns over time (a target stops being binary);
    columns dropped are dropped from what was kept too."""

    def __init__(self, num_targets: int):
        self.cols = np.arange(num_targets)
        self.parts = []

    def add(self, wanted: np.ndarray, *arrays):
        new = np.flatnonzero(wanted)
        if new.size < self.cols.size:
            pos = np.flatnonzero(np.isin(self.cols, new))
            self.parts = [tuple(a[..., pos] for a in part) for part in self.parts]
            self.cols = new
        if new.size:
            self.parts.append(tuple(a[..., new] for a in arrays))

    def arrays(self) -> list:
        """The kept arrays, each ``(S, T, k)`` for the ``k`` columns in ``self.cols``."""
        return [np.concatenate(parts, axis=0) for parts in zip(*self.parts)]


@dataclass
class _Pass:
    """What one pass over a split leaves behind."""

    acc: "PerTargetAccumulator"
    base_acc: "PerTargetAccumulator | None"
    binary: np.ndarray  # (n,) bool: every value of the target is 0 or 1
    keeper: _Keeper
    top: list = field(default_factory=list)  # [(total signal, record index, y (T, n), p (T, n))]


@dataclass
class _Kept:
    """An output that is not binned: every batch's labels and predictions, scored at the end."""

    index: list = field(default_factory=list)
    y: list = field(default_factory=list)
    p: list = field(default_factory=list)

    def add(self, index, y, p):
        self.index.append(index)
        self.y.append(y)
        self.p.append(p)

    def arrays(self):
        return tuple(np.concatenate(a, axis=0) for a in (self.index, self.y, self.p))

    @property
    def count(self) -> int:
        return sum(len(i) for i in self.index)


def _new_run(o, keep_all: bool, baseline: bool):
    from basenji_tk.model.accumulator import PerTargetAccumulator

    if o.kind != "binned":
        return _Kept()
    n = o.num_targets
    return _Pass(acc=PerTargetAccumulator(n),
                 base_acc=PerTargetAccumulator(n, sample_size=0) if baseline else None,
                 binary=np.ones(n, dtype=bool), keeper=_Keeper(n))


def _add_binned(run: _Pass, index, y, p, keep_all, coef, codes, resolution):
    """Stream one batch of a binned output ``(B, T, n)`` into its pass."""
    run.acc.update(y, p)
    arrays = [y, p]
    if coef is not None:
        b = baseline_predict(bin_features(codes, y.shape[1], resolution), coef).astype(np.float32)
        run.base_acc.update(y, b)
        arrays.append(b)
    run.binary &= ((y == 0) | (y == 1)).all(axis=(0, 1))
    run.keeper.add(np.ones(y.shape[-1], dtype=bool) if keep_all else run.binary, *arrays)
    signal = y.sum(axis=(1, 2))
    run.top.extend((float(signal[i]), int(index[i]), y[i], p[i]) for i in range(len(y)))
    run.top = sorted(run.top, key=lambda t: (-t[0], t[1]))[:NUM_TRACKS]


def _split_size(spec, split, view) -> int | None:
    from basenji_tk.data import pairs

    if spec.kind == "pairs" and view == "pairs":
        return pairs.count(spec, split)
    return int(spec.counts.get(split, 0)) or None


def _score_split(tm, predictor, spec, pairing, split, batch_size, keep_all, coef, fill, quiet) -> dict:
    """Predict the split batch by batch; stream binned outputs, keep the others: ``{output: run}``."""
    from tqdm import tqdm

    from basenji_tk.analysis.examples import split_batches

    runs = {name: _new_run(o, keep_all, coef is not None) for name, o in tm.outputs.items()}
    seq = tm.sequence.name if tm.sequence else None
    with tqdm(total=_split_size(spec, split, pairing.view), desc=f"{split} examples", unit="ex",
              disable=not cli.show_progress(quiet)) as bar:
        for index, x, y in split_batches(tm, spec, pairing, split, batch_size, fill):
            out = predictor.predict_on_batch(tm.model_inputs(x))
            codes = one_hot_to_codes(x[seq]) if coef is not None else None
            for name, run in runs.items():
                p = np.asarray(out[name], dtype=np.float32).reshape(y[name].shape)
                if isinstance(run, _Pass):
                    _add_binned(run, index, y[name], p, keep_all, coef, codes, tm.outputs[name].resolution)
                else:
                    run.add(index, y[name], p)
            bar.update(len(index))
    first = next(iter(runs.values()))
    if (first.acc.count if isinstance(first, _Pass) else first.count) == 0:
        raise InputError(f"{spec.path}: the {split} split holds no sequences")
    return runs


# ----------------------------------------------------------------------------- table
def targets_table(data_dir, ids) -> pd.DataFrame:
    """``index``, ``identifier`` (and ``description`` when the dataset's targets.txt has it), one row per target."""
    ids = [str(t) for t in ids]
    table = pd.DataFrame({"index": np.arange(len(ids)), "identifier": ids})
    path = os.path.join(str(data_dir), "targets.txt")
    if os.path.exists(path):
        given = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if {"identifier", "description"} <= set(given.columns):
            descriptions = dict(zip(given["identifier"], given["description"]))
            table["description"] = [descriptions.get(t, "") for t in ids]
    return table


def _metrics_columns(run: _Pass, peaks: bool, local_window: int = 5) -> dict:
    """The metric columns of acc.tsv, each ``(n,)``."""
    from basenji_tk import stats
    from basenji_tk.model.peaks import call_peaks

    n = run.acc.num_targets
    cols = {
        "pearsonr": run.acc.pearson_r(), "r2": run.acc.r_squared(),
        "log_pearsonr": run.acc.pearson_r(log=True), "log_r2": run.acc.r_squared(log=True),
        "spearmanr": run.acc.spearman_r(),
    }
    kept = run.keeper.arrays()
    if run.binary.any():
        auroc, auprc = np.full(n, np.nan), np.full(n, np.nan)
        which = np.isin(run.keeper.cols, np.flatnonzero(run.binary))  # kept columns that are binary
        y, p = (a[..., which].reshape(-1, which.sum()) for a in kept[:2])
        auroc[run.keeper.cols[which]] = stats.auroc(y.astype(bool), p)
        auprc[run.keeper.cols[which]] = stats.auprc(y.astype(bool), p)
        cols.update(auroc=auroc, auprc=auprc)
    peak_labels = None
    if peaks:  # every column was kept
        y, p = kept[0], kept[1]
        peak_labels = call_peaks(y, fdr=PEAK_FDR, local_window=local_window).reshape(-1, n)
        fraction = peak_labels.mean(axis=0)
        peak_auprc = stats.auprc(peak_labels, p.reshape(-1, n))
        with np.errstate(divide="ignore", invalid="ignore"):
            enrichment = np.where(fraction > 0, peak_auprc / fraction, np.nan)
        cols.update(peak_fraction=fraction, peak_auprc=peak_auprc, peak_enrichment=enrichment)
    if run.base_acc is not None:
        cols.update(baseline_pearsonr=run.base_acc.pearson_r(), baseline_r2=run.base_acc.r_squared())
        if peak_labels is not None:
            cols["baseline_peak_auprc"] = stats.auprc(peak_labels, kept[2].reshape(-1, n))
    return cols


def write_table(df: pd.DataFrame, path) -> str:
    """Write ``df`` as a TSV through a temporary name, renamed when complete."""
    path = str(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        df.to_csv(tmp, sep="\t", index=False, float_format="%.6g", na_rep="nan")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def format_table(df: pd.DataFrame) -> str:
    """A compact text table for the terminal: one line per target and a line of means (per output,
    under its name, when ``df`` has an ``output`` column)."""
    if "output" in df.columns:
        parts = []
        for name, part in df.groupby("output", sort=False):
            part = part.drop(columns="output").dropna(axis=1, how="all").reset_index(drop=True)
            parts.append(f"output {name}:\n{format_table(part)}")
        return "\n\n".join(parts)
    columns = [("target", "identifier"), ("r", "pearsonr"), ("R²", "r2"), ("log r", "log_pearsonr"),
               ("Spearman", "spearmanr"), ("RMSE", "rmse"), ("AUROC", "auroc"), ("AUPRC", "auprc"),
               ("JSD", "jsd"), ("profile r", "profile_pearsonr"), ("count r", "count_pearsonr"),
               ("peak AUPRC", "peak_auprc"), ("enrich", "peak_enrichment"), ("base r", "baseline_pearsonr"),
               ("base R²", "baseline_r2"), ("base peak AUPRC", "baseline_peak_auprc")]
    # AUROC only for probability outputs: binned tables print AUPRC alone, as they always have
    columns = [(head, key) for head, key in columns if key in df.columns and (key != "auroc" or "positives" in df)]
    width = max([len("target"), len("mean")] + [len(str(t)) for t in df["identifier"]])

    def line(cells):
        return "  ".join(f"{c:<{width}}" if i == 0 else f"{c:>{max(len(h), 7)}}"
                         for i, (c, (h, _)) in enumerate(zip(cells, columns)))

    def number(x):
        return "nan" if pd.isna(x) else f"{x:.3f}"

    lines = [line([head for head, _ in columns])]
    for _, row in df.iterrows():
        lines.append(line([str(row["identifier"])] + [number(row[key]) for _, key in columns[1:]]))
    if len(df) > 1:
        lines.append(line(["mean"] + [number(df[key].mean()) for _, key in columns[1:]]))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plots
def _region(bed, index) -> tuple[str, int, str]:
    chrom, start, end = str(bed.iloc[index, 0]), int(bed.iloc[index, 1]), int(bed.iloc[index, 2])
    return chrom, start, f"{chrom}:{start}-{end}"


def _write_plots(run: _Pass, table: pd.DataFrame, bed, out_dir, split, pool_width, prefix: str = "") -> list[str]:
    """A binned output: a scatter per target and the tracks of the records with the most signal."""
    from basenji_tk import plots

    written = []
    y, p = run.acc.sample()
    for k, target in enumerate(table["identifier"]):
        path = os.path.join(out_dir, f"scatter_{prefix}{file_label(target)}.png")
        written.append(plots.scatter(y[:, k], p[:, k], path, title=f"{target} ({split} split)"))
    for _, index, y_seq, p_seq in run.top:
        chrom, start, label = _region(bed, index)
        path = os.path.join(out_dir, f"tracks_{prefix}{file_label(chrom)}_{start}.png")
        written.append(plots.tracks(y_seq, p_seq, path, list(table["identifier"]), region_label=label,
                                    bin_width=pool_width))
    return written


def _write_kept_plots(o, kept: _Kept, table, bed, out_dir, split, prefix: str) -> list[str]:
    """A probability output: ROC and PR curves; values and totals: a scatter per target; a profile:
    the profiles of the records with the most reads."""
    from basenji_tk import plots

    index, y, p = kept.arrays()
    ids = list(table["identifier"])
    if o.kind == "probability":
        return [plots.classifier_curves(y.reshape(len(y), -1), p.reshape(len(p), -1),
                                        os.path.join(out_dir, f"curves_{file_label(o.name)}.png"), ids,
                                        title=f"{o.name} ({split} split)")]
    if o.kind in ("value", "total"):
        y, p = y.reshape(len(y), -1), p.reshape(len(p), -1)
        return [plots.scatter(y[:, k], p[:, k], os.path.join(out_dir, f"scatter_{prefix}{file_label(t)}.png"),
                              title=f"{t} ({split} split)", log=False) for k, t in enumerate(ids)]
    written = []
    for i in np.lexsort((index, -y.sum(axis=(1, 2))))[:NUM_TRACKS]:
        chrom, start, label = _region(bed, int(index[i]))
        path = os.path.join(out_dir, f"tracks_{prefix}{file_label(chrom)}_{start}.png")
        written.append(plots.tracks(y[i], p[i], path, ids, region_label=f"{label} (reads over predicted profile)",
                                    bin_width=o.resolution))
    return written


# ----------------------------------------------------------------------------- entry point
def _check_extras(tm, spec, pairing, peaks: bool, baseline: bool):
    binned = [n for n, o in tm.outputs.items() if o.kind == "binned"]
    if peaks and not binned:
        raise InputError(f"--peaks: peaks are called in binned tracks, and {tm.model_path} has none ("
                         + "; ".join(o.describe() for o in tm.outputs.values()) + ")")
    if baseline and not (len(binned) == 1 and tm.sequence is not None and spec.kind == "tiling"
                         and pairing.labels[binned[0]].name == "target"):
        raise InputError("--baseline: the GC/CpG baseline is fitted to the binned 'target' of a tiling dataset of "
                         f"sequences (make_targets.py FASTA TARGETS); {spec.path} and {tm.model_path} are not that")


def evaluate(model_dir, data_dir, out_dir, split: str = "test", rc: bool = False, shifts=(0,),
             peaks: bool = False, baseline: bool = False, batch_size: int = 8, plots: bool = True,
             model_file=None, quiet: bool = False, force: bool = False, inputs=None) -> pd.DataFrame:
    """Score ``model_dir``'s model on ``split`` of ``data_dir``; write acc.tsv and plots to ``out_dir``.

    ``model_file`` replaces the folder's model file; ``inputs``
    (:class:`~basenji_tk.analysis.inputs.InputOptions`) fills model inputs the dataset lacks. With
    ``rc`` and/or several ``shifts`` the predictions are averaged over reverse complements and
    shifted copies (:meth:`~basenji_tk.analysis.trained.TrainedModel.predictor`). Returns the acc.tsv
    table of a binned output: one row per target with ``index``, ``identifier``, ``description``
    (if the dataset's targets.txt has one), then ``pearsonr``, ``r2``,
    ``log_pearsonr``, ``log_r2``, ``spearmanr``; ``auroc``/``auprc`` when a
    target is binary; ``peak_fraction``, ``peak_auprc``, ``peak_enrichment``
    with ``peaks``; ``baseline_pearsonr``, ``baseline_r2`` (and
    ``baseline_peak_auprc``) with ``baseline``. Other kinds of output get the columns of
    :mod:`basenji_tk.analysis.scores`. A model of several outputs writes ``acc_<output>.tsv`` each
    and returns them stacked, with an ``output`` column first.
    """
    from basenji_tk.analysis import scores
    from basenji_tk.analysis.examples import pair_with_dataset
    from basenji_tk.analysis.inputs import resolve_inputs
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import records

    data_dir, out_dir = str(data_dir), str(out_dir)
    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    spec = records.load_spec(data_dir)
    stats_path = os.path.join(data_dir, records.STATISTICS)
    if spec.kind != "pairs" and not records.split_files(data_dir, split):
        raise InputError(f"{data_dir}: no tfrecords/{split}-*.tfr files for --split {split}")
    if plots and not os.path.exists(os.path.join(data_dir, "sequences.bed")):
        raise InputError(f"{data_dir}: no sequences.bed, which the track plots need (--no_plots skips them)")
    with files.claim(out_dir):
        tm = TrainedModel.load(model_dir, model_file)
        pairing = pair_with_dataset(tm, spec, stats_path)
        several = len(tm.outputs) > 1
        acc_names = {n: f"acc_{file_label(n)}.tsv" if several else ACC for n in tm.outputs}
        files.refuse_overwrite(out_dir, list(acc_names.values()), force)
        _check_extras(tm, spec, pairing, peaks, baseline)
        if spec.kind == "pairs" and not _split_size(spec, split, pairing.view):
            raise InputError(f"{data_dir}: no {split} examples in this pairs dataset (--split {split})")
        predictor = tm.predictor(rc, shifts)
        fill = resolve_inputs(tm, inputs, only=pairing.filled)
        coef = None
        if baseline:
            log.info(f"fitting the GC/CpG baseline on {data_dir}'s train split")
            coef = fit_baseline(data_dir, "train")

        log.info(f"predicting the {split} split of {data_dir}")
        runs = _score_split(tm, predictor, spec, pairing, split, int(batch_size), peaks, coef, fill, quiet)
        bed = (pd.read_csv(os.path.join(data_dir, "sequences.bed"), sep="\t", header=None, dtype={0: str})
               if plots else None)
        frames = {}
        for name, run in runs.items():
            o, label = tm.outputs[name], pairing.labels[name]
            ids = list(label.names) if len(label.names) == o.num_targets else o.targets
            table = targets_table(data_dir, ids)
            prefix = f"{file_label(name)}_" if several else ""
            if isinstance(run, _Pass):
                df = pd.concat([table, pd.DataFrame(_metrics_columns(run, peaks, peak_window(o.resolution)))], axis=1)
                if plots:
                    _write_plots(run, table, bed, out_dir, split, o.resolution, prefix)
                count = f"{run.acc.count:,} bins"
            else:
                _, y, p = run.arrays()
                df = pd.concat([table, pd.DataFrame(scores.columns(o.kind, y, p))], axis=1)
                if plots:
                    _write_kept_plots(o, run, table, bed, out_dir, split, prefix)
                count = f"{run.count:,} examples"
            write_table(df, os.path.join(out_dir, acc_names[name]))
            log.info(f"wrote {os.path.join(out_dir, acc_names[name])} ({o.kind} output {name}: {len(df)} targets, "
                     f"{count})")
            frames[name] = df
        if not several:
            return next(iter(frames.values()))
        return pd.concat([df.assign(output=name)[["output"] + list(df.columns)] for name, df in frames.items()],
                         ignore_index=True)
