"""``attribute.py``: attributions (:mod:`basenji_tk.interpret.attribution`) for a window centred on
each BED region, written as ``attributions.h5`` (what TF-MoDISco and the seqlet caller read),
``attributions.bw`` (summed over bases) and a track plot per region.

``attributions.h5``: ``one_hot`` ``(N, L, 4)`` uint8, ``attributions`` ``(N, L, 4)`` float32 (the
observed base's contribution, zero elsewhere), ``hypothetical`` ``(N, L, 4)`` float32, ``chrom``,
``name``, ``strand`` (bytes), ``start``, ``end`` (int64: the span stored, the model's window or
its central ``--crop`` bp), per region ``f_x`` (the explained scalar), ``f_ref`` (its mean over
the references) and ``gap`` (completeness, NaN for grad_x_input); attributes ``method``,
``model``, ``output``, ``targets`` (comma-separated ids), ``logit``, ``n_references``, ``steps``,
``reference``, ``stat``, ``genome``, ``window`` (the model's), ``crop``, ``max_gap``, ``seed``.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.interpret.attribution import GAP_WARNING, Attributor, check_completeness, choose
from basenji_tk.interpret.mutagenesis import STATS
from basenji_tk.interpret.sites import read_sites

log = logging.getLogger("basenji_tk")

OUTPUTS = ("attributions.h5", "attributions.bw")
LOGO_SPAN = 1000  # bp; a stored span up to this long is plotted with a logo of its centre
LOGO_BP = 200


def _check_ends(bed, sites, genome):
    """A region that ends past its chromosome's end is an error naming its line."""
    from basenji_tk.io.genome import table_lines

    for (lineno, _), s in zip(table_lines(str(bed)), sites):
        if s.end > genome.sizes[s.chrom]:
            raise InputError(f"{bed}:{lineno}: region {s.chrom}:{s.start}-{s.end} ends past the end of {s.chrom} "
                             f"({genome.sizes[s.chrom]:,} bp)")


def attribute_regions(model_dir, bed, out_dir, fasta=None, method: str = "deepshap", output=None, targets=None,
                      logit: bool | None = None, stat: str | None = None, center_len: int = 200, tss_flank: int = 0,
                      n_references: int = 20, steps: int = 50, reference: str | None = None, seed: int = 0,
                      batch_size: int = 4, crop: int | None = None, plots: bool = True, model_file=None,
                      inputs=None, region_inputs: dict | None = None, quiet: bool = False,
                      force: bool = False) -> dict:
    """Attributions of ``output``'s ``targets`` (summed; over the ``stat`` bins of a positional
    output, default ``center``, ``sum`` for a profile) for each BED region's window; writes the
    files of the module docstring into ``out_dir`` and returns counts and the largest gap.

    ``region_inputs``: ``{model input: (N, *input shape)}``, one row per BED region in file
    order, for an input that differs between regions (ChromDragoNN's mean accessibility of each
    bin); ``inputs`` fills the others."""
    from basenji_tk.analysis.inputs import resolve_inputs
    from basenji_tk.analysis.trained import TrainedModel, folder_genome
    from basenji_tk.interpret.saliency import _Job

    if stat is not None and stat not in STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    if int(batch_size) < 1 or int(center_len) < 1 or int(tss_flank) < 0:
        raise InputError("expected --batch_size >= 1, --center_len >= 1 and --tss_flank >= 0")
    if int(n_references) < 1:
        raise InputError(f"--n_references: expected at least 1 reference, got {n_references}")
    genome = folder_genome(model_dir, fasta)
    sites = read_sites(bed, genome)
    _check_ends(bed, sites, genome)

    with files.claim(out_dir):
        tm = TrainedModel.load(model_dir, model_file)
        scored = choose(tm, output, targets, logit)
        attributor = Attributor(tm, scored, method, n_references, steps, reference, seed)
        stat = stat or ("sum" if scored.info.kind == "profile" else "center")
        L = tm.seq_length
        crop = L if crop is None else int(crop)
        if not 1 <= crop <= L:
            raise InputError(f"--crop: expected 1 to {L:,} bp (the model's window), got {crop}")
        per_region = _region_inputs(tm, region_inputs, len(sites))
        fill = resolve_inputs(tm, inputs, genome.sizes,
                              only=[i.name for i in tm.extra_inputs if i.name not in per_region])
        w0s = np.array([(s.start + s.end) // 2 - tm.window // 2 for s in sites], dtype=np.int64)
        job = _Job(tm, scored, sites, w0s, genome, fill, stat, int(tss_flank), int(center_len), int(batch_size),
                   str(out_dir), plots, quiet)
        job.bins(0)  # a statistic the output cannot take fails here, before any work
        files.refuse_overwrite(out_dir, list(OUTPUTS), force)
        with fill, attributor:
            return _write(job, attributor, crop, per_region)


def _region_inputs(tm, region_inputs, n: int) -> dict:
    """``region_inputs`` checked against the model's inputs: float32 ``(n, *shape)`` each."""
    out = {}
    for name, values in (region_inputs or {}).items():
        if name not in tm.inputs or tm.inputs[name].kind == "sequence":
            raise InputError(f"per-region input '{name}' is not a non-sequence input of {tm.model_path} "
                             f"(inputs: {', '.join(tm.inputs)})")
        values = np.asarray(values, dtype=np.float32)
        shape = (n, *tm.inputs[name].shape)
        if values.size != int(np.prod(shape)):
            raise InputError(f"per-region input '{name}': {values.shape} values for {n} regions of "
                             f"shape {list(tm.inputs[name].shape)}")
        out[name] = values.reshape(shape)
    return out


def _write(job, attributor, crop: int, per_region: dict | None = None) -> dict:
    import h5py

    from basenji_tk.analysis.evaluate import file_label
    from basenji_tk.analysis.predict import _tmp_name, write_window_bigwigs

    tm, scored, n = job.tm, job.scored, len(job.sites)
    c0 = (tm.seq_length - crop) // 2
    starts = job.w0s + c0
    out_path = os.path.join(job.out_dir, "attributions.h5")
    tmp = _tmp_name(out_path)
    gaps = []
    try:
        with h5py.File(tmp, "w") as h5:
            sets = {name: h5.create_dataset(name, (n, crop, 4), dtype=dtype, compression="gzip")
                    for name, dtype in (("one_hot", "uint8"), ("attributions", "float32"),
                                        ("hypothetical", "float32"))}
            per = {name: h5.create_dataset(name, (n,), dtype="float32") for name in ("f_x", "f_ref", "gap")}
            seq = tm.sequence.name
            for rows, x in job.batches():
                x.update({name: values[rows] for name, values in (per_region or {}).items()})
                res = attributor(x, [job.bins(j) for j in rows])
                gaps.append(check_completeness(res, attributor.unhandled, f"regions {rows[0]}-{rows[-1]}: "))
                lo, hi = rows[0], rows[-1] + 1
                sets["one_hot"][lo:hi] = x[seq][:, c0:c0 + crop].astype(np.uint8)
                sets["attributions"][lo:hi] = res.attributions[:, c0:c0 + crop]
                sets["hypothetical"][lo:hi] = res.hypothetical[:, c0:c0 + crop]
                for name, values in (("f_x", res.f_x), ("f_ref", res.f_ref), ("gap", res.gap)):
                    per[name][lo:hi] = values
            for name, values in (("chrom", [s.chrom for s in job.sites]), ("name", [s.name for s in job.sites]),
                                 ("strand", [s.strand for s in job.sites])):
                h5.create_dataset(name, data=np.array(values, dtype="S"))
            h5.create_dataset("start", data=starts)
            h5.create_dataset("end", data=starts + crop)
            max_gap = float(np.nanmax(gaps)) if np.isfinite(gaps).any() else float("nan")
            shuffled = attributor.method != "grad_x_input" and attributor.reference == "shuffle"
            h5.attrs.update(method=attributor.method, model=os.path.abspath(tm.model_path), output=scored.info.name,
                            output_kind=scored.info.kind, targets=",".join(t[1] for t in scored.targets),
                            logit=bool(scored.logit), n_references=attributor.n if shuffled else 0,
                            steps=attributor.steps if attributor.method == "integrated_gradients" else 0,
                            reference=attributor.reference if attributor.method != "grad_x_input" else "",
                            stat=job.stat if scored.positional else "value", genome=os.path.abspath(job.genome.path),
                            window=int(tm.window), crop=int(crop), max_gap=max_gap, seed=int(attributor.seed))
            summed = h5["attributions"][:].sum(axis=2)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    chroms = np.array([s.chrom for s in job.sites])
    write_window_bigwigs([os.path.join(job.out_dir, "attributions.bw")], job.genome.sizes, chroms, starts, 1,
                         lambda r: summed[r][:, :, None])
    pngs = []
    if job.plots:
        what = ", ".join(t[1] for t in scored.targets)
        for j, s in enumerate(job.sites):
            path = os.path.join(job.out_dir, f"{j:04d}_{file_label(s.name)}.png")
            with h5py.File(out_path, "r") as h5:
                values = h5["attributions"][j]
            pngs.append(attribution_plot(values, path, int(starts[j]), s.chrom,
                                         f"{s.name}: {attributor.method} of {scored.describe()} {what}"))
    log.info(f"wrote {out_path}, attributions.bw and {len(pngs)} plots for {n} regions ({attributor.method}; "
             f"largest completeness gap {max_gap:.3g})")
    if max_gap > GAP_WARNING:
        log.warning(f"warning: the largest completeness gap, {max_gap:.3g}, is above {GAP_WARNING:g}")
    return {"regions": n, "method": attributor.method, "length": crop, "max_gap": max_gap, "plots": len(pngs)}


def attribution_plot(values, path, start: int = 0, chrom: str = "", title: str = "") -> str:
    """Attributions ``(L, 4)`` of one region: a logo of the central :data:`LOGO_BP` bp under a
    track of the whole span for a span up to :data:`LOGO_SPAN` bp, the track alone otherwise."""
    import matplotlib

    from basenji_tk import plots as plot

    values = np.asarray(values, dtype=np.float64)
    L = len(values)
    if L > LOGO_SPAN:
        return plot.saliency_track(values.sum(axis=1), path, start=start, chrom=chrom, title=title,
                                   ylabel="attribution")
    import matplotlib.pyplot as plt

    w = min(L, LOGO_BP)
    a = (L - w) // 2
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 4.5), gridspec_kw={"height_ratios": [1, 1.6]})
    summed = values.sum(axis=1)
    x = start + np.arange(L)
    top.fill_between(x, np.maximum(summed, 0), 0, step="mid", color=plot.SALIENCY_POSITIVE, linewidth=0)
    top.fill_between(x, np.minimum(summed, 0), 0, step="mid", color=plot.SALIENCY_NEGATIVE, linewidth=0)
    top.axvspan(start + a - 0.5, start + a + w - 0.5, color="0.9", zorder=0)
    top.set_xlim(start - 0.5, start + L - 0.5)
    top.set_ylabel("attribution", fontsize=8)
    top.set_title(title, fontsize=10)
    plot.logo(bottom, values[a:a + w], start=start + a, ylabel="attribution")
    bottom.axhline(0.0, color="0.4", linewidth=0.5)
    for ax in (top, bottom):
        ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        ax.tick_params(labelsize=7)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    bottom.set_xlabel(f"{chrom} position (bp)" if chrom else "position (bp)", fontsize=8)
    fig.tight_layout()
    tmp = f"{path}.{os.getpid()}.tmp.png"
    try:
        fig.savefig(tmp, dpi=150)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
