"""Gradient saliency maps (``saliency.py``): what in a model's input a prediction leans on.

The prediction explained is one target of one output (:mod:`basenji_tk.interpret.scoring`),
summed over the bins ``--stat`` picks for a positional output; with ``logit``, taken before the
output's sigmoid or softmax (ChromDragoNN scores the logit). Its gradient is taken with respect to

* the DNA sequence (:func:`sequence_maps`): gradient x input at each base, and Basenji's map,
  the dot product of each bin's representation after the convolution tower (the output of the
  last pooling layer) with its gradient, one signed value per bin;
* a non-sequence input (:func:`feature_maps`): a context's vector (which TFs' expression the
  prediction leans on) or a signal track, as gradient x input per feature, named after the
  dataset's features, with a table and a plot of the top features.

The model's other inputs are filled per window as for prediction
(:func:`basenji_tk.analysis.inputs.resolve_inputs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.interpret.mutagenesis import STATS
from basenji_tk.interpret.scoring import choose_output, scored_bins
from basenji_tk.interpret.sites import distal_window, parse_score_at, read_sites

log = logging.getLogger("basenji_tk")


def representation_layer(model, required: bool = True):
    """The layer whose output is the bin representation: the last pooling (or strided
    convolution) layer before the output. None when there is none and not ``required``,
    else an :class:`InputError`."""
    import keras

    last = None
    for layer in model.layers:
        if isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.AveragePooling1D)):
            last = layer
        elif isinstance(layer, keras.layers.Conv1D) and layer.strides[0] > 1:
            last = layer
    if last is None and required:
        raise InputError(f"model '{model.name}' has no pooling layer, so it has no bin representation; "
                         "pass --layer NAME")
    return last


def _selected(y, bins, target):
    import tensorflow as tf

    if len(y.shape) == 2:
        return y[:, target]
    return tf.reduce_sum(tf.gather(y[:, :, target], bins, axis=1), axis=1)


class Saliency:
    """Gradient maps of one output of ``model``: a target summed over chosen bins.

    ``wrt``: the input the gradient is taken of, by name, for a model that takes a dict
    (default ``sequence``). ``layer``: the bin representation (default
    :func:`representation_layer`; ``False`` for none); the model is split there once, so one
    forward and backward pass gives both maps."""

    def __init__(self, model, layer=None, wrt: str = "sequence"):
        import keras

        self.wrt = wrt
        self.layer = None if layer is False else (layer or representation_layer(model))
        outputs = [model.outputs[0]] if self.layer is None else [self.layer.output, model.outputs[0]]
        self.split = keras.Model(model.input, outputs)

    def __call__(self, inputs, target: int, bins) -> tuple[np.ndarray, np.ndarray | None]:
        """``inputs``: ``(B, L, 4)``, or a dict of the model's inputs -> ``(gradients, bin_saliency)``.

        ``gradients``: of the output with respect to the ``wrt`` input, its shape (multiply by
        the input for gradient x input); ``bin_saliency`` ``(B, R)``: per representation bin,
        the sum over channels of activation x gradient (Basenji's saliency map), None without a
        representation layer."""
        import tensorflow as tf

        if isinstance(inputs, dict):
            x = {k: tf.convert_to_tensor(np.asarray(v, dtype=np.float32)) for k, v in inputs.items()}
            watched = x[self.wrt]
        else:
            x = watched = tf.convert_to_tensor(np.asarray(inputs, dtype=np.float32))
        bins = tf.constant(np.asarray(bins, dtype=np.int32))
        with tf.GradientTape() as tape:
            tape.watch(watched)
            out = self.split(x, training=False)
            h, y = (out[0], out[1]) if self.layer is not None else (None, out[0] if isinstance(out, list) else out)
            y = _selected(y, bins, target)
        if h is None:
            return tape.gradient(y, watched).numpy(), None
        gx, gh = tape.gradient(y, [watched, h])
        sal = tf.reduce_sum(tf.cast(h, tf.float32) * tf.cast(gh, tf.float32), axis=-1)
        return gx.numpy(), sal.numpy()


# ----------------------------------------------------------------------------- saliency.py
def attributed_input(tm, wrt=None):
    """The input ``--wrt`` names; by default the DNA sequence, or a model's only input."""
    if wrt is not None:
        if wrt not in tm.inputs:
            raise InputError(f"--wrt: '{wrt}' is not an input of {tm.model_path} (inputs: {', '.join(tm.inputs)})")
        return tm.inputs[wrt]
    if tm.sequence is not None:
        return tm.sequence
    if len(tm.inputs) == 1:
        return next(iter(tm.inputs.values()))
    raise InputError(f"{tm.model_path} has no sequence input and several others; choose the one to attribute to "
                     f"with --wrt ({', '.join(tm.inputs)})")


def feature_names(info) -> list[str]:
    """Names of the features (last axis) of a non-sequence input: the dataset's names (TFs,
    tracks), else ``NAME0, NAME1, ...``."""
    n = int(info.shape[-1])
    names = [str(x) for x in (info.names or ())]
    return names if len(names) == n else [f"{info.name}{k}" for k in range(n)]


@dataclass
class _Job:
    """What both kinds of map need: the model, the explained output, the regions and their windows."""

    tm: object
    scored: object
    sites: list
    w0s: np.ndarray
    genome: object
    fill: object
    stat: str
    tss_flank: int
    center_len: int
    batch_size: int
    out_dir: str
    plots: bool
    quiet: bool
    score_at: tuple | None = None  # (chrom, 0-based position) whose bins are explained

    @property
    def target(self):
        return self.scored.targets[0]

    def bins(self, j):
        """The output bins explained for region ``j`` (they differ per region with ``tss``)."""
        s, w0, window = self.sites[j], int(self.w0s[j]), self.tm.window
        if self.score_at is not None:
            return scored_bins(self.scored, "tss", 0, 1, self.score_at[1] - w0, self.tss_flank)
        c0 = window // 2 - self.center_len // 2
        return scored_bins(self.scored, self.stat, c0, c0 + self.center_len, (s.start + s.end) // 2 - w0,
                           self.tss_flank)

    def batches(self):
        """``(rows, inputs)`` per batch of regions: ``inputs`` ``{name: (b, ...)}`` for every model input."""
        from tqdm import tqdm

        from basenji_tk import cli
        from basenji_tk.data import dna

        tm, n = self.tm, len(self.sites)
        for i in tqdm(range(0, n, self.batch_size), desc="batches", unit="batch",
                      disable=not cli.show_progress(self.quiet)):
            rows = list(range(i, min(n, i + self.batch_size)))
            windows = [(self.sites[j].chrom, int(self.w0s[j]), int(self.w0s[j]) + tm.window) for j in rows]
            x = self.fill(windows) if tm.extra_inputs else {}
            if tm.sequence is not None:
                x[tm.sequence.name] = np.stack([dna.one_hot(self.genome.fetch(c, a, b), dtype=np.float32)
                                                for c, a, b in windows])
            yield rows, x

    def attrs(self) -> dict:
        import os

        out = self.scored.info
        at = {"score_at": f"{self.score_at[0]}:{self.score_at[1] + 1}"} if self.score_at else {}
        return dict(model=os.path.abspath(self.tm.model_path), genome=os.path.abspath(self.genome.path),
                    target=self.target[1], output=out.name, output_kind=out.kind, logit=bool(self.scored.logit),
                    stat=self.stat if out.positional else "value", window=self.tm.window, **at)

    def write_regions(self, h5):
        for name, values in (("chrom", [s.chrom for s in self.sites]), ("name", [s.name for s in self.sites]),
                             ("strand", [s.strand for s in self.sites])):
            h5.create_dataset(name, data=np.array(values, dtype="S"))
        h5.create_dataset("start", data=self.w0s)
        h5.create_dataset("end", data=self.w0s + self.tm.window)
        h5.create_dataset("site_start", data=np.array([s.start for s in self.sites], dtype=np.int64))
        h5.create_dataset("site_end", data=np.array([s.end for s in self.sites], dtype=np.int64))


def saliency_maps(model_dir, bed, out_dir, fasta=None, target="0", stat: str = "center", tss_flank: int = 0,
                  center_len: int = 200, layer=None, batch_size: int = 8, plots: bool = True, model_file=None,
                  output=None, logit: bool = False, wrt=None, top: int = 20, inputs=None, score_at=None,
                  quiet: bool = False, force: bool = False) -> dict:
    """``saliency.py``: gradients of one target of one output (summed over ``stat`` bins) for a
    window centred on each BED region, with respect to the sequence (:func:`sequence_maps`) or
    the input ``wrt`` (:func:`feature_maps`). Writes ``saliency.h5`` and more; returns counts.

    ``logit``: explain the output before its sigmoid/softmax; ``inputs``: an
    :class:`~basenji_tk.analysis.inputs.InputOptions` for the model's other inputs; ``score_at``
    (``CHROM:POS``, 1-based): explain the output bin(s) holding that position (``tss_flank``
    either side) in a window centred between each region and it (the region's central
    ``center_len`` bp and the position must both fit)."""
    from basenji_tk.analysis.inputs import resolve_inputs
    from basenji_tk.analysis.trained import TrainedModel, folder_genome

    if stat not in STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    if int(batch_size) < 1 or int(center_len) < 1 or int(tss_flank) < 0 or int(top) < 1:
        raise InputError("expected --batch_size >= 1, --center_len >= 1, --tss_flank >= 0 and --top >= 1")
    genome = folder_genome(model_dir, fasta)
    sites = read_sites(bed, genome)

    with files.claim(out_dir):
        tm = TrainedModel.load(model_dir, model_file)
        scored = choose_output(tm, output, target, logit, target_option="--target")
        if len(scored.targets) != 1:
            raise InputError(f"--target: choose one target, got {len(scored.targets)}")
        info = attributed_input(tm, wrt)
        if layer is not None and info.kind != "sequence":
            raise InputError(f"--layer: the bin representation is of the sequence; '{info.name}' is a {info.kind} "
                             "input")
        fill = resolve_inputs(tm, inputs, genome.sizes)
        at = parse_score_at(score_at, genome) if score_at else None
        out = scored.info
        if at is not None and not out.positional:
            raise InputError(f"--score_at: output '{out.name}' of {tm.model_path} is one number per target "
                             f"({out.kind}); only an output with positions has a bin to score at a distal position")
        if at is not None:
            span = (out.offset, out.offset + out.num_positions * out.resolution)
            w0s = np.array([distal_window(s, at, tm.window, span, int(center_len), score_at)[0] for s in sites],
                           dtype=np.int64)
        else:
            w0s = np.array([(s.start + s.end) // 2 - tm.window // 2 for s in sites], dtype=np.int64)
        job = _Job(tm, scored, sites, w0s, genome, fill, "tss" if at else stat, int(tss_flank), int(center_len),
                   int(batch_size), str(out_dir), plots, quiet, at)
        job.bins(0)  # a statistic the output cannot take fails here, before any work
        files.refuse_overwrite(out_dir, ["saliency.h5"], force)
        with fill:
            if info.kind == "sequence":
                return sequence_maps(job, layer)
            return feature_maps(job, info, int(top))


def sequence_maps(job: _Job, layer=None) -> dict:
    """Gradient x input per base and Basenji's bin saliency (when the model pools) of each region:
    ``saliency.h5``, ``grad_x_input.bw``, ``bin_saliency.bw``, and a track plot per region."""
    import os

    import h5py

    from basenji_tk import plots as plot
    from basenji_tk.analysis.evaluate import file_label
    from basenji_tk.analysis.predict import _tmp_name, write_window_bigwigs

    tm, model = job.tm, job.scored.model
    L, name = tm.seq_length, tm.sequence.name
    if layer is not None:
        names = [x.name for x in model.layers]
        if layer not in names:
            raise InputError(f"--layer: '{layer}' is not a layer of {tm.model_path} on the way to output "
                             f"'{job.scored.info.name}' (e.g. {', '.join(names[-8:])})")
        layer = model.get_layer(layer)
    else:
        layer = representation_layer(model, required=False)
        if layer is None:
            log.warning(f"warning: {tm.model_path} has no pooling layer on the way to output "
                        f"'{job.scored.info.name}', so no bin saliency (pass --layer NAME for one)")
    maps = Saliency(model, layer if layer is not None else False, wrt=name)
    R = int(layer.output.shape[1]) if layer is not None else 0
    t_index, t_id = job.target[0], job.target[1]
    n = len(job.sites)
    out_path = os.path.join(job.out_dir, "saliency.h5")
    tmp = _tmp_name(out_path)
    try:
        with h5py.File(tmp, "w") as h5:
            grads = h5.create_dataset("gradients", (n, L, 4), dtype="float16", compression="gzip")
            gxi = h5.create_dataset("grad_x_input", (n, L), dtype="float32", compression="gzip")
            sal = h5.create_dataset("bin_saliency", (n, R), dtype="float32") if R else None
            for rows, x in job.batches():
                for k, j in enumerate(rows):  # the bins may differ per region (tss)
                    g, sv = maps(tm.model_inputs({key: v[k:k + 1] for key, v in x.items()}), t_index, job.bins(j))
                    grads[j] = g[0]
                    gxi[j] = (g[0] * x[name][k]).sum(axis=1)
                    if sal is not None:
                        sal[j] = sv[0]
            job.write_regions(h5)
            h5.attrs.update(job.attrs(), seq_length=L)
            if R:
                h5.attrs.update(layer=layer.name, bin_width=L // R)
            gx, sv = gxi[:], (sal[:] if sal is not None else None)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    chroms = np.array([s.chrom for s in job.sites])
    bw = [write_window_bigwigs([os.path.join(job.out_dir, "grad_x_input.bw")], job.genome.sizes, chroms, job.w0s, 1,
                               lambda rows: gx[rows][:, :, None])]
    if R:
        bw += write_window_bigwigs([os.path.join(job.out_dir, "bin_saliency.bw")], job.genome.sizes, chroms, job.w0s,
                                   L // R, lambda rows: sv[rows][:, :, None])
    pngs = []
    if job.plots:
        what = f"{job.scored.describe()} {t_id} ({job.stat} bins)" if job.scored.positional else \
            f"{job.scored.describe()} {t_id}"
        for j, s in enumerate(job.sites):
            path = os.path.join(job.out_dir, f"{j:04d}_{file_label(s.name)}_{file_label(t_id)}.png")
            values, width, kind = (sv[j], L // R, "bin saliency") if R else (gx[j], 1, "gradient x input")
            pngs.append(plot.saliency_track(values, path, start=int(job.w0s[j]), bin_width=width, chrom=s.chrom,
                                            title=f"{s.name}: {kind} for {what}"))
    log.info(f"wrote {out_path}, {len(bw)} BigWigs and {len(pngs)} plots for {n} regions"
             + (f" (layer {layer.name}, {R} bins of {L // R} bp)" if R else " (no bin saliency)"))
    res = {"regions": n, "input": name, "plots": len(pngs)}
    if R:
        res.update(layer=layer.name, bins=R, bin_width=L // R)
    return res


def feature_maps(job: _Job, info, top: int = 20) -> dict:
    """Gradient x input of each feature of the non-sequence input ``info`` in each region:
    ``saliency.h5``, ``features.tsv`` (features by mean |gradient x input| over the regions) and
    ``top_features.png`` (the ``top`` of them, signed means)."""
    import os

    import h5py

    from basenji_tk import plots as plot
    from basenji_tk.analysis.predict import _tmp_name

    tm, name = job.tm, info.name
    names = feature_names(info)
    maps = Saliency(job.scored.model, False, wrt=name)
    t_index, t_id = job.target[0], job.target[1]
    n, shape = len(job.sites), tuple(info.shape)
    out_path = os.path.join(job.out_dir, "saliency.h5")
    tmp = _tmp_name(out_path)
    try:
        with h5py.File(tmp, "w") as h5:
            values = h5.create_dataset("input", (n, *shape), dtype="float32", compression="gzip")
            grads = h5.create_dataset("gradients", (n, *shape), dtype="float32", compression="gzip")
            gxi = h5.create_dataset("grad_x_input", (n, *shape), dtype="float32", compression="gzip")
            per_feature = h5.create_dataset("feature_grad_x_input", (n, len(names)), dtype="float32")
            for rows, x in job.batches():
                for k, j in enumerate(rows):
                    g, _ = maps(tm.model_inputs({key: v[k:k + 1] for key, v in x.items()}), t_index, job.bins(j))
                    values[j], grads[j] = x[name][k], g[0]
                    gxi[j] = g[0] * x[name][k]
                    per_feature[j] = gxi[j] if len(shape) == 1 else gxi[j].sum(axis=0)  # signals: over positions
            job.write_regions(h5)
            h5.create_dataset("feature_names", data=np.array(names, dtype="S"))
            h5.attrs.update(job.attrs(), input=name, input_kind=info.kind)
            table = per_feature[:].astype(np.float64)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    mean, mean_abs = table.mean(axis=0), np.abs(table).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    tsv = os.path.join(job.out_dir, "features.tsv")
    with open(_tmp_name(tsv), "w") as fh:
        fh.write("rank\tfeature\tmean_grad_x_input\tmean_abs_grad_x_input\n")
        fh.writelines(f"{r + 1}\t{names[k]}\t{mean[k]:.6g}\t{mean_abs[k]:.6g}\n" for r, k in enumerate(order))
    os.replace(_tmp_name(tsv), tsv)
    pngs = []
    if job.plots:
        pngs.append(plot.feature_bars(names, mean, os.path.join(job.out_dir, "top_features.png"), top=top,
                                      title=f"{name}: features {job.scored.describe()} {t_id} leans on "
                                            f"(mean over {n} regions)",
                                      xlabel="gradient x input"))
    log.info(f"wrote {out_path}, {tsv} and {len(pngs)} plot(s): gradient x input of {len(names)} features of "
             f"'{name}' for {n} regions")
    return {"regions": n, "input": name, "features": len(names), "plots": len(pngs),
            "top": [(names[k], float(mean[k])) for k in order[:min(top, 5)]]}
