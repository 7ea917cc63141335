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
"""

import logging
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from basenji_tk import cli, files
from basenji_tk.errors import InputError

if TYPE_CHECKING:
    from basenji_tk.model.accumulator import PerTargetAccumulator

# Keras and TensorFlow load inside the functions that need them (basenji_tk.model.models,
# basenji_tk.data.tfrecords), and scipy.stats inside those that score (basenji_tk.stats,
# .model.accumulator, .model.peaks), so that a script stops at a bad option before paying for them.
log = logging.getLogger("basenji_tk")

MODEL_FILE = "model_best.keras"  # what train.py keeps in a model folder
ACC = "acc.tsv"
PEAK_FDR = 0.01
PEAK_LOCAL_BP = 5000  # local background from +-5 kb around a bin (MACS's 10 kb "llocal" window)
NUM_TRACKS = 3
C_CODE, G_CODE, N_CODE = 1, 2, 4  # integer codes of sequences in records (A0 C1 G2 T3 N4)


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


def ensemble_model(model, rc: bool, shifts, seq_length: int):
    """:func:`models.ensemble` after checking that every shift is shorter than the sequence."""
    from basenji_tk.model import models

    shifts = tuple(int(s) for s in shifts) or (0,)
    too_far = [s for s in shifts if abs(s) >= seq_length]
    if too_far:
        raise InputError(f"--shifts: {too_far[0]} is not shorter than the model's {seq_length} bp input")
    return models.ensemble(model, rc=rc, shifts=shifts)


def sequence_input(model) -> tuple[int, int]:
    """``(seq_length, depth)`` of a model's sequence input; an error for models with other inputs."""
    from basenji_tk.model.models import SEQUENCE

    shape = model.input_shape
    if isinstance(shape, dict):
        extra = [name for name in shape if name != SEQUENCE]
        if extra:
            raise InputError(f"model '{model.name}' also takes the input '{extra[0]}'; "
                             "only sequence-only models can be scored on a dataset or a BED file")
        shape = shape[SEQUENCE]
    if isinstance(shape, list):
        raise InputError(f"model '{model.name}' takes {len(shape)} inputs; expected one sequence input")
    return int(shape[1]), int(shape[2])


def predict_batch(model, one_hot: np.ndarray) -> np.ndarray:
    """``(B, L, 4)`` float32 -> the model's ``(B, T, n)`` predictions as numpy float32."""
    from basenji_tk.model.models import SEQUENCE

    x = {SEQUENCE: one_hot} if isinstance(model.input, dict) else one_hot
    return np.asarray(model.predict_on_batch(x), dtype=np.float32)


def file_label(name: str) -> str:
    """A target id or chromosome made safe for a file name (anything odd becomes ``_``)."""
    return re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)) or "_"


def peak_window(stats: dict) -> int:
    """Bins each side of a bin for the local Poisson background: +-5 kb, as MACS's 10 kb window."""
    return max(1, round(PEAK_LOCAL_BP / int(stats["pool_width"])))


# ----------------------------------------------------------------------------- checks
def check_model_fits(model, stats: dict, model_path: str, data_dir: str) -> None:
    """The model's input length and ``(bins, targets)`` output must be the dataset's."""
    stats_path = os.path.join(str(data_dir), "statistics.json")
    length, depth = sequence_input(model)
    if length != int(stats["seq_length"]):
        raise InputError(f"{model_path}: the model takes {length} bp sequences but {stats_path} has "
                         f"seq_length {stats['seq_length']}")
    if depth != 4:
        raise InputError(f"{model_path}: the model takes {depth} channels per base; datasets are one-hot (4)")
    out = model.output_shape
    want = (int(stats["target_length"]), int(stats["num_targets"]))
    if isinstance(out, list) or tuple(out[1:]) != want:
        got = "several outputs" if isinstance(out, list) else " x ".join(map(str, out[1:]))
        raise InputError(f"{model_path}: the model outputs {got} (bins x targets) but {stats_path} has "
                         f"target_length {want[0]} x num_targets {want[1]}")


# ----------------------------------------------------------------------------- baseline
def bin_features(codes: np.ndarray, num_bins: int, pool_width: int) -> np.ndarray:
    """Two DNA features per target bin: ``codes (..., L) uint8 -> (..., num_bins, 2)`` float64.

    Column 0 is the GC fraction of the bin's A/C/G/T bases (N bases are left
    out; a bin of only N gets 0.5), column 1 the number of CpG dinucleotides
    whose C lies in the bin. Bins are ``pool_width`` bp; when
    ``num_bins * pool_width`` is shorter than L the bins sit in the middle, as
    targets of a cropped dataset do (``(L - num_bins * pool_width) // 2`` bp off
    the start)."""
    codes = np.asarray(codes)
    length = codes.shape[-1]
    offset = (length - num_bins * pool_width) // 2
    if offset < 0:
        raise InputError(f"{num_bins} bins of {pool_width} bp do not fit in a {length} bp sequence")
    is_cg = np.zeros(codes.shape, dtype=bool)
    is_cg[..., :-1] = (codes[..., :-1] == C_CODE) & (codes[..., 1:] == G_CODE)
    span = slice(offset, offset + num_bins * pool_width)
    binned_shape = codes.shape[:-1] + (num_bins, pool_width)
    bins = codes[..., span].reshape(binned_shape)
    acgt = (bins < N_CODE).sum(axis=-1)
    gc = ((bins == C_CODE) | (bins == G_CODE)).sum(axis=-1)
    gc_fraction = np.where(acgt > 0, gc / np.maximum(acgt, 1), 0.5)
    cpg = is_cg[..., span].reshape(binned_shape).sum(axis=-1)
    return np.stack([gc_fraction, cpg.astype(np.float64)], axis=-1)


def _design(features: np.ndarray) -> np.ndarray:
    """``(..., 2)`` features -> ``(..., 3)`` with a leading column of ones (the intercept)."""
    return np.concatenate([np.ones(features.shape[:-1] + (1,)), features], axis=-1)


def fit_baseline(data_dir, split: str = "train") -> np.ndarray:
    """Least-squares coefficients of each target on ``[1, GC fraction, CpG count]`` per bin.

    Reads ``split`` of the dataset record by record (numpy only) and accumulates
    the normal equations, so memory stays flat. Returns ``(3, n)``: intercept,
    GC and CpG weights for each of the n targets."""
    from basenji_tk.data.tfrecords import load_statistics, read_records, split_files

    stats = load_statistics(data_dir)
    if not split_files(data_dir, split):
        raise InputError(f"{data_dir}: no tfrecords/{split}-*.tfr files; the baseline is fitted on the "
                         f"{split} split")
    num_bins, num_targets = int(stats["target_length"]), int(stats["num_targets"])
    xtx = np.zeros((3, 3))
    xty = np.zeros((3, num_targets))
    for _, codes, targets in read_records(data_dir, split):
        x = _design(bin_features(codes, num_bins, int(stats["pool_width"])))  # (T, 3)
        xtx += x.T @ x
        xty += x.T @ targets.astype(np.float64)
    return np.linalg.lstsq(xtx, xty, rcond=None)[0]


def baseline_predict(features: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Baseline predictions: ``features (..., 2)`` and ``coef (3, n)`` -> ``(..., n)`` float64."""
    return _design(features) @ coef


def one_hot_to_codes(one_hot: np.ndarray) -> np.ndarray:
    """``(..., L, 4)`` one-hot -> ``(..., L)`` uint8 codes; an all-zero row is N (4)."""
    return np.where(one_hot.max(axis=-1) > 0, one_hot.argmax(axis=-1), N_CODE).astype(np.uint8)


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


def _score_split(model, data_dir, split, stats, batch_size, keep_all, coef, quiet) -> _Pass:
    """Predict the split batch by batch and stream everything the table and plots need."""
    from tqdm import tqdm

    from basenji_tk.model.accumulator import PerTargetAccumulator
    from basenji_tk.data.tfrecords import dataset

    num_targets = int(stats["num_targets"])
    run = _Pass(acc=PerTargetAccumulator(num_targets),
                base_acc=PerTargetAccumulator(num_targets, sample_size=0) if coef is not None else None,
                binary=np.ones(num_targets, dtype=bool), keeper=_Keeper(num_targets))
    total = int(stats.get("counts", {}).get(split, 0)) or None
    with tqdm(total=total, desc=f"{split} sequences", unit="seq", disable=not cli.show_progress(quiet)) as bar:
        for index, one_hot, y in dataset(data_dir, split, batch_size=batch_size, with_index=True).as_numpy_iterator():
            p = predict_batch(model, one_hot)
            run.acc.update(y, p)
            arrays = [y, p]
            if coef is not None:
                features = bin_features(one_hot_to_codes(one_hot), y.shape[1], int(stats["pool_width"]))
                b = baseline_predict(features, coef).astype(np.float32)
                run.base_acc.update(y, b)
                arrays.append(b)
            run.binary &= ((y == 0) | (y == 1)).all(axis=(0, 1))
            run.keeper.add(np.ones(num_targets, dtype=bool) if keep_all else run.binary, *arrays)
            signal = y.sum(axis=(1, 2))
            run.top.extend((float(signal[i]), int(index[i]), y[i], p[i]) for i in range(len(y)))
            run.top = sorted(run.top, key=lambda t: (-t[0], t[1]))[:NUM_TRACKS]
            bar.update(len(y))
    if run.acc.count == 0:
        raise InputError(f"{data_dir}: the {split} split holds no sequences")
    return run


# ----------------------------------------------------------------------------- table
def targets_table(data_dir, stats: dict) -> pd.DataFrame:
    """``index``, ``identifier`` (and ``description`` when the dataset's targets.txt has it), one row per target."""
    ids = [str(t) for t in stats["target_ids"]]
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
    from basenji_tk import stats as scores
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
        auroc[run.keeper.cols[which]] = scores.auroc(y.astype(bool), p)
        auprc[run.keeper.cols[which]] = scores.auprc(y.astype(bool), p)
        cols.update(auroc=auroc, auprc=auprc)
    peak_labels = None
    if peaks:  # every column was kept
        y, p = kept[0], kept[1]
        peak_labels = call_peaks(y, fdr=PEAK_FDR, local_window=local_window).reshape(-1, n)
        fraction = peak_labels.mean(axis=0)
        peak_auprc = scores.auprc(peak_labels, p.reshape(-1, n))
        with np.errstate(divide="ignore", invalid="ignore"):
            enrichment = np.where(fraction > 0, peak_auprc / fraction, np.nan)
        cols.update(peak_fraction=fraction, peak_auprc=peak_auprc, peak_enrichment=enrichment)
    if run.base_acc is not None:
        cols.update(baseline_pearsonr=run.base_acc.pearson_r(), baseline_r2=run.base_acc.r_squared())
        if peak_labels is not None:
            cols["baseline_peak_auprc"] = scores.auprc(peak_labels, kept[2].reshape(-1, n))
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
    """A compact text table for the terminal: one line per target and a line of means."""
    columns = [("target", "identifier"), ("r", "pearsonr"), ("R²", "r2"), ("log r", "log_pearsonr"),
               ("Spearman", "spearmanr"), ("AUPRC", "auprc"), ("peak AUPRC", "peak_auprc"),
               ("enrich", "peak_enrichment"), ("base r", "baseline_pearsonr"), ("base R²", "baseline_r2"),
               ("base peak AUPRC", "baseline_peak_auprc")]
    columns = [(head, key) for head, key in columns if key in df.columns]
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
def _write_plots(run: _Pass, table: pd.DataFrame, data_dir, out_dir, split, pool_width) -> list[str]:
    from basenji_tk import plots

    written = []
    y, p = run.acc.sample()
    for k, target in enumerate(table["identifier"]):
        written.append(plots.scatter(y[:, k], p[:, k], os.path.join(out_dir, f"scatter_{file_label(target)}.png"),
                                     title=f"{target} ({split} split)"))
    bed = pd.read_csv(os.path.join(str(data_dir), "sequences.bed"), sep="\t", header=None, dtype={0: str})
    for _, index, y_seq, p_seq in run.top:
        chrom, start, end = bed.iloc[index, 0], int(bed.iloc[index, 1]), int(bed.iloc[index, 2])
        path = os.path.join(out_dir, f"tracks_{file_label(chrom)}_{start}.png")
        written.append(plots.tracks(y_seq, p_seq, path, list(table["identifier"]),
                                    region_label=f"{chrom}:{start}-{end}", bin_width=pool_width))
    return written


# ----------------------------------------------------------------------------- entry point
def evaluate(model_dir, data_dir, out_dir, split: str = "test", rc: bool = False, shifts=(0,),
             peaks: bool = False, baseline: bool = False, batch_size: int = 8, plots: bool = True,
             model_file=None, quiet: bool = False, force: bool = False) -> pd.DataFrame:
    """Score ``model_dir``'s model on ``split`` of ``data_dir``; write acc.tsv and plots to ``out_dir``.

    ``model_file`` replaces ``model_dir/model_best.keras``. With ``rc`` and/or
    several ``shifts`` the predictions are averaged over reverse complements and
    shifted copies (:func:`basenji_tk.model.models.ensemble`). Returns the acc.tsv
    table: one row per target with ``index``, ``identifier``, ``description``
    (if the dataset's targets.txt has one), then ``pearsonr``, ``r2``,
    ``log_pearsonr``, ``log_r2``, ``spearmanr``; ``auroc``/``auprc`` when a
    target is binary; ``peak_fraction``, ``peak_auprc``, ``peak_enrichment``
    with ``peaks``; ``baseline_pearsonr``, ``baseline_r2`` (and
    ``baseline_peak_auprc``) with ``baseline``.
    """
    from basenji_tk.model import models
    from basenji_tk.data.tfrecords import load_statistics, split_files

    data_dir, out_dir = str(data_dir), str(out_dir)
    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    stats = load_statistics(data_dir)
    if not split_files(data_dir, split):
        raise InputError(f"{data_dir}: no tfrecords/{split}-*.tfr files for --split {split}")
    if plots and not os.path.exists(os.path.join(data_dir, "sequences.bed")):
        raise InputError(f"{data_dir}: no sequences.bed, which the track plots need (--no_plots skips them)")
    with files.claim(out_dir):
        model_path = str(model_file) if model_file else os.path.join(str(model_dir), MODEL_FILE)
        model = models.load_model(model_path)
        check_model_fits(model, stats, model_path, data_dir)
        files.refuse_overwrite(out_dir, [ACC], force)
        model = ensemble_model(model, rc, shifts, int(stats["seq_length"]))
        table = targets_table(data_dir, stats)
        coef = None
        if baseline:
            log.info(f"fitting the GC/CpG baseline on {data_dir}'s train split")
            coef = fit_baseline(data_dir, "train")

        log.info(f"predicting the {split} split of {data_dir}")
        run = _score_split(model, data_dir, split, stats, int(batch_size), peaks, coef, quiet)
        df = pd.concat([table, pd.DataFrame(_metrics_columns(run, peaks, peak_window(stats)))], axis=1)

        write_table(df, os.path.join(out_dir, ACC))
        if plots:
            _write_plots(run, table, data_dir, out_dir, split, int(stats["pool_width"]))
        log.info(f"wrote {os.path.join(out_dir, ACC)} ({len(df)} targets, {run.acc.count:,} bins)")
        return df
