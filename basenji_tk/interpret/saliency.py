"""Gradient saliency maps (``saliency.py``).

:class:`Saliency`: gradient x input at each base for a chosen output (target and bins),
and Basenji's map, the dot product of each bin's representation after the convolution
tower (the output of the last pooling layer) with its gradient, one signed value per bin.
"""

from __future__ import annotations

import logging

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.interpret.mutagenesis import STATS, score_bins
from basenji_tk.interpret.sites import read_sites

log = logging.getLogger("basenji_tk")


def representation_layer(model):
    """The layer whose output is the bin representation: the last pooling (or strided
    convolution) layer before the output. An :class:`InputError` when there is none."""
    import keras

    last = None
    for layer in model.layers:
        if isinstance(layer, (keras.layers.MaxPooling1D, keras.layers.AveragePooling1D)):
            last = layer
        elif isinstance(layer, keras.layers.Conv1D) and layer.strides[0] > 1:
            last = layer
    if last is None:
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

    ``layer``: the bin representation (default :func:`representation_layer`); the model is
    split there once, so one forward and backward pass gives both maps."""

    def __init__(self, model, layer=None):
        import keras

        self.layer = layer or representation_layer(model)
        self.split = keras.Model(model.inputs, [self.layer.output, model.outputs[0]])

    def __call__(self, one_hot: np.ndarray, target: int, bins) -> tuple[np.ndarray, np.ndarray]:
        """``(B, L, 4)`` -> ``(gradients (B, L, 4), bin_saliency (B, R))``.

        ``gradients``: of the output with respect to the input (multiply by ``one_hot`` for
        gradient x input); ``bin_saliency``: per representation bin, the sum over channels of
        activation x gradient (Basenji's saliency map)."""
        import tensorflow as tf

        x = tf.convert_to_tensor(np.asarray(one_hot, dtype=np.float32))
        bins = tf.constant(np.asarray(bins, dtype=np.int32))
        with tf.GradientTape() as tape:
            tape.watch(x)
            h, y = self.split(x, training=False)
            y = _selected(y, bins, target)
        gx, gh = tape.gradient(y, [x, h])
        sal = tf.reduce_sum(tf.cast(h, tf.float32) * tf.cast(gh, tf.float32), axis=-1)
        return gx.numpy(), sal.numpy()


def saliency_maps(model_dir, bed, out_dir, fasta=None, target="0", stat: str = "center", tss_flank: int = 0,
                  center_len: int = 200, layer=None, batch_size: int = 8, plots: bool = True, model_file=None,
                  quiet: bool = False, force: bool = False) -> dict:
    """``saliency.py``: gradient x input and Basenji's bin saliency for a window centred on each
    BED region, for one target's output summed over ``stat`` bins. Writes ``saliency.h5``, BigWigs
    ``grad_x_input.bw`` and ``bin_saliency.bw``, and a track plot per region; returns counts."""
    import os

    import h5py
    from tqdm import tqdm

    from basenji_tk import cli, plots as plot
    from basenji_tk.data import dna
    from basenji_tk.analysis.evaluate import file_label
    from basenji_tk.analysis.predict import _tmp_name, bin_offset, load_trained, open_genome, training_statistics, \
        write_window_bigwigs

    if stat not in STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    stats, stats_path = training_statistics(model_dir)
    genome = open_genome(fasta, stats, stats_path)
    sites = read_sites(bed, genome)

    with files.claim(out_dir):
        model, model_path, details, chosen = load_trained(model_dir, model_file, stats, stats_path, target,
                                                           option="--target")
        L, num_bins, pool_width = details["seq_length"], details["num_bins"], details["pool_width"]
        if len(chosen) != 1:
            raise InputError(f"--target: choose one target, got {len(chosen)}")
        t_index, t_id = chosen[0][0], chosen[0][1]
        if layer is not None:
            names = [x.name for x in model.layers]
            if layer not in names:
                raise InputError(f"--layer: '{layer}' is not a layer of {model_path} (e.g. {', '.join(names[-8:])})")
            layer = model.get_layer(layer)
        files.refuse_overwrite(out_dir, ["saliency.h5"], force)
        maps = Saliency(model, layer)
        layer = maps.layer
        R = int(layer.output.shape[1])
        offset = bin_offset(L, num_bins, pool_width)
        c0 = L // 2 - center_len // 2
        n = len(sites)
        w0s = np.array([(s.start + s.end) // 2 - L // 2 for s in sites], dtype=np.int64)
        out_path = os.path.join(str(out_dir), "saliency.h5")
        tmp = _tmp_name(out_path)
        try:
            with h5py.File(tmp, "w") as h5:
                grads = h5.create_dataset("gradients", (n, L, 4), dtype="float16", compression="gzip")
                gxi = h5.create_dataset("grad_x_input", (n, L), dtype="float32", compression="gzip")
                sal = h5.create_dataset("bin_saliency", (n, R), dtype="float32")
                for i in tqdm(range(0, n, batch_size), desc="batches", unit="batch",
                              disable=not cli.show_progress(quiet)):
                    rows = range(i, min(n, i + batch_size))
                    x = np.stack([dna.one_hot(genome.fetch(sites[j].chrom, int(w0s[j]), int(w0s[j]) + L),
                                              dtype=np.float32) for j in rows])
                    for j in rows:  # the bins may differ per region (tss)
                        k = j - i
                        pos = (sites[j].start + sites[j].end) // 2 - int(w0s[j])
                        bins = score_bins(stat, num_bins, pool_width, offset, c0, c0 + center_len, pos, tss_flank)
                        g, sv = maps(x[k:k + 1], t_index, bins)
                        grads[j] = g[0]
                        gxi[j] = (g[0] * x[k]).sum(axis=1)
                        sal[j] = sv[0]
                for name, values in (("chrom", [s.chrom for s in sites]), ("name", [s.name for s in sites]),
                                     ("strand", [s.strand for s in sites])):
                    h5.create_dataset(name, data=np.array(values, dtype="S"))
                h5.create_dataset("start", data=w0s)
                h5.create_dataset("end", data=w0s + L)
                h5.attrs.update(model=os.path.abspath(model_path), genome=os.path.abspath(genome.path), target=t_id,
                                stat=stat, layer=layer.name, bin_width=L // R, seq_length=L)
                gx, sv = gxi[:], sal[:]
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        chroms = np.array([s.chrom for s in sites])
        bw = [write_window_bigwigs([os.path.join(str(out_dir), "grad_x_input.bw")], genome.sizes, chroms, w0s, 1,
                                   lambda rows: gx[rows][:, :, None]),
              write_window_bigwigs([os.path.join(str(out_dir), "bin_saliency.bw")], genome.sizes, chroms, w0s, L // R,
                                   lambda rows: sv[rows][:, :, None])]
        pngs = []
        if plots:
            for j, s in enumerate(sites):
                path = os.path.join(str(out_dir), f"{j:04d}_{file_label(s.name)}_{file_label(t_id)}.png")
                pngs.append(plot.saliency_track(sv[j], path, start=int(w0s[j]), bin_width=L // R, chrom=s.chrom,
                                                title=f"{s.name}: bin saliency for {t_id} ({stat} bins)"))
        log.info(f"wrote {out_path}, {len(bw)} BigWigs and {len(pngs)} plots for {n} regions (layer {layer.name}, "
                 f"{R} bins of {L // R} bp)")
        return {"regions": n, "layer": layer.name, "bins": R, "bin_width": L // R, "plots": len(pngs)}
