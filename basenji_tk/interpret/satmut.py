"""``sat_mut.py``: saturation mutagenesis around BED regions or VCF SNPs, written to ``scores.h5``.

Any model with a DNA sequence input: its other inputs (a context's vector, signal tracks, fixed
values) are filled once per window (:func:`basenji_tk.analysis.inputs.resolve_inputs`) and held
fixed while the sequence is mutated, so the scores answer what the sequence needs in that context.
The output explained and how it is scored per kind: :mod:`basenji_tk.interpret.scoring`.
"""

from __future__ import annotations

import logging

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.interpret.mutagenesis import STATS, Predictor, importance, saturation_mutagenesis
from basenji_tk.interpret.scoring import choose_output, scored_bins
from basenji_tk.interpret.sites import distal_window, parse_score_at, read_sites, variant_sites

log = logging.getLogger("basenji_tk")


def sat_mut(model_dir, out_dir, bed=None, vcf=None, fasta=None, mut_len: int = 200, stat: str = "sum",
            targets=None, rc: bool = False, shifts=(0,), batch_size: int = 32, method: str = "auto",
            tss_flank: int = 0, float32: bool = False, plots: bool = False, model_file=None, output=None,
            inputs=None, score_at=None, quiet: bool = False, force: bool = False) -> dict:
    """``sat_mut.py``: ISM of the central ``mut_len`` bp of a window centred on each BED region or
    VCF SNP (both alleles). Writes ``out_dir/scores.h5`` (and PNGs with ``plots``); returns counts.

    ``output``: the model output to score (needed when there are several); ``inputs``: an
    :class:`~basenji_tk.analysis.inputs.InputOptions` for the model's other inputs. ``score_at``
    (``CHROM:POS``, 1-based): score the output bin(s) holding that position (``tss_flank`` bins
    either side) instead of ``stat``, in a window centred between each site and it (Basenji's
    distal-element analysis: mutate region A, score gene B's TSS bin)."""
    import os
    import time

    import h5py
    from tqdm import tqdm

    from basenji_tk import cli
    from basenji_tk.analysis.inputs import resolve_inputs
    from basenji_tk.analysis.predict import _tmp_name
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import dna

    if (bed is None) == (vcf is None):
        raise InputError("give either a BED file of regions or --vcf, not both")
    if stat not in STATS:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    if int(batch_size) < 1 or int(mut_len) < 1 or int(tss_flank) < 0:
        raise InputError("expected --batch_size >= 1, --mut_len >= 1 and --tss_flank >= 0")
    shifts = tuple(int(x) for x in shifts) or (0,)
    from basenji_tk.model.models import receptive_field

    tm = TrainedModel.load(model_dir, model_file)
    seq = tm.sequence
    if seq is None:
        raise InputError(f"sat_mut.py mutates a DNA sequence input, and {tm.model_path} has none (inputs: "
                         f"{', '.join(f'{i.name} {i.kind}' for i in tm.inputs.values())}); saliency.py "
                         "attributes its predictions to those inputs")
    L = tm.seq_length
    if tm.window != L or seq.offset:
        raise InputError(f"{tm.model_path}: the sequence input covers {L:,} bp of a {tm.window:,} bp window; "
                         "sat_mut.py needs it to be the whole window")
    scored = choose_output(tm, output, targets)
    chosen, out = scored.targets, scored.info
    if mut_len > L:
        raise InputError(f"--mut_len {mut_len} is longer than the model's {L:,} bp input")
    if any(abs(s) >= L for s in shifts):
        raise InputError(f"--shifts: every shift must be shorter than the model's {L:,} bp input")
    genome = tm.genome(fasta)
    if bed is not None:
        sites, counts = read_sites(bed, genome), {}
    else:
        sites, counts = variant_sites(vcf, genome)
    fill = resolve_inputs(tm, inputs, genome.sizes)  # every input option's error comes here, before any work
    at = parse_score_at(score_at, genome) if score_at else None
    if at is not None:
        if not out.positional:
            raise InputError(f"--score_at: output '{out.name}' of {tm.model_path} is one number per target "
                             f"({out.kind}); only an output with positions has a bin to score at a distal position")
        stat = "tss"
    mut_start = L // 2 - mut_len // 2
    mut_stop = mut_start + mut_len
    scored_bins(scored, stat, mut_start, mut_stop, L // 2, tss_flank)  # a statistic the output cannot take
    span = (out.offset, out.offset + out.num_positions * out.resolution) if out.positional else (0, L)

    with files.claim(out_dir):
        tidx = scored.target_index
        pool_width, offset = (out.resolution, out.offset) if out.positional else (1, 0)
        field = receptive_field(scored.model)
        signals = {i.name: bool(i.feature is not None and i.feature.strands) for i in tm.extra_inputs
                   if i.kind == "signal"}
        predictor = Predictor(scored.model, method, rc, shifts, int(batch_size), seq.name, signals, out.strands)

        todo, padded, off_end = [], 0, 0
        for s in sites:
            w0, m0 = distal_window(s, at, L, span, mut_len, score_at) if at else \
                ((s.start + s.end) // 2 - L // 2, mut_start)
            size = genome.sizes[s.chrom]
            if w0 + m0 < 0 or w0 + m0 + mut_len > size:
                off_end += 1
                continue
            padded += int(w0 < 0 or w0 + L > size)
            todo.append((s, w0, m0))
        counts.update(sites=len(sites), sites_off_chromosome_end_skipped=off_end, windows_padded_with_n=padded)
        if off_end:
            log.warning(f"warning: {off_end} site(s) skipped: their central {mut_len} bp run off a chromosome end")
        if padded:
            log.info(f"{padded} window(s) run off a chromosome end and are padded with N")
        if not todo:
            raise InputError(f"{bed or vcf}: no site left to mutate ({off_end} run off chromosome ends)")
        files.refuse_overwrite(out_dir, ["scores.h5"], force)

        out_path = os.path.join(str(out_dir), "scores.h5")
        tmp = _tmp_name(out_path)
        n, T = len(todo), len(chosen)
        dtype = "float32" if float32 else "float16"
        predicted = skipped = 0
        scored_at = np.zeros((n, 2), dtype=np.int64)
        started = time.time()
        log.info(f"mutating {n:,} sequences x {mut_len} bp x 3 bases ({predictor.method} path, "
                 f"{scored.describe()}{f', stat {stat}' if out.positional else ''})")
        try:
            with fill, h5py.File(tmp, "w") as h5:
                seqs = h5.create_dataset("seqs", (n, mut_len, 4), dtype="uint8")
                scores = h5.create_dataset("scores", (n, mut_len, 4, T), dtype=dtype,
                                           chunks=(1, mut_len, 4, T), compression="gzip")
                imp = h5.create_dataset("importance", (n, mut_len, T), dtype=dtype)
                ref_scores = h5.create_dataset("ref_score", (n, T), dtype="float32")
                for i, (s, w0, m0) in enumerate(tqdm(todo, desc="sequences", unit="seq",
                                                  disable=not cli.show_progress(quiet))):
                    text = genome.fetch(s.chrom, w0, w0 + L)
                    if s.allele == "alt":
                        k = s.start - w0
                        text = text[:k] + s.alt + text[k + 1:]
                    one_hot = dna.one_hot(text, dtype=np.float32)
                    position = at[1] - w0 if at else (s.start + s.end) // 2 - w0
                    bins = scored_bins(scored, stat, m0, m0 + mut_len, position, tss_flank)
                    if len(bins):
                        scored_at[i] = (w0 + offset + bins.min() * pool_width,
                                        w0 + offset + (bins.max() + 1) * pool_width)
                    other = fill((s.chrom, w0, w0 + L)) if tm.extra_inputs else None
                    res = saturation_mutagenesis(predictor, one_hot, m0, m0 + mut_len, bins, tidx, pool_width,
                                                 offset, field, other)
                    seqs[i] = one_hot[m0:m0 + mut_len].astype(np.uint8)
                    scores[i] = res.scores
                    imp[i] = importance(res.scores)
                    ref_scores[i] = res.ref_score
                    predicted += res.predicted
                    skipped += res.skipped
                seconds = time.time() - started
                for name, values in (("chrom", [t[0].chrom for t in todo]), ("name", [t[0].name for t in todo]),
                                     ("strand", [t[0].strand for t in todo]), ("allele", [t[0].allele for t in todo]),
                                     ("ref", [t[0].ref for t in todo]), ("alt", [t[0].alt for t in todo]),
                                     ("target_ids", [c[1] for c in chosen]), ("target_labels", [c[2] for c in chosen])):
                    h5.create_dataset(name, data=np.array(values, dtype="S"))
                w0s = np.array([t[1] for t in todo], dtype=np.int64)
                m0s = np.array([t[2] for t in todo], dtype=np.int64)
                h5.create_dataset("window_start", data=w0s)
                h5.create_dataset("start", data=w0s + m0s)
                h5.create_dataset("end", data=w0s + m0s + mut_len)
                h5.create_dataset("site_start", data=np.array([t[0].start for t in todo], dtype=np.int64))
                h5.create_dataset("site_end", data=np.array([t[0].end for t in todo], dtype=np.int64))
                if out.positional:  # the genome span of the bins each site's scores sum over
                    h5.create_dataset("scored_start", data=scored_at[:, 0])
                    h5.create_dataset("scored_end", data=scored_at[:, 1])
                counts.update(mutants_predicted=predicted, mutants_out_of_reach=skipped, seconds=round(seconds, 2),
                              mutants_per_second=round(predicted / seconds, 1) if seconds > 0 else None)
                h5.attrs.update(model=os.path.abspath(tm.model_path), genome=os.path.abspath(genome.path), stat=stat,
                                mut_len=mut_len, tss_flank=tss_flank, rc=bool(rc), shifts=",".join(map(str, shifts)),
                                method=predictor.method, seq_length=L, pool_width=pool_width, output=out.name,
                                output_kind=out.kind, **input_attrs(inputs),
                                **({"score_at": f"{at[0]}:{at[1] + 1}"} if at else {}),
                                **{k: v for k, v in counts.items() if v is not None})
            os.replace(tmp, out_path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        log.info(f"wrote {out_path}: {n:,} sequences, {predicted:,} mutants predicted at "
                 f"{counts['mutants_per_second'] or 0:,.0f}/s ({predictor.method} path)"
                 + (f", {skipped:,} out of the scored bins' reach (0)" if skipped else ""))
        if plots:
            counts["plots"] = len(plot_scores(out_path, os.path.join(str(out_dir), "plots")))
        return counts


def input_attrs(inputs) -> dict:
    """What filled the model's other inputs, as HDF5 attributes (``context``, ``context_tsv``, ``inputs``)."""
    if inputs is None:
        return {}
    got = {"context": inputs.context, "context_tsv": inputs.context_tsv, "inputs": ";".join(inputs.values)}
    return {k: v for k, v in got.items() if v}


def plot_scores(scores_path, plot_dir) -> list[str]:
    """One PNG per sequence and target of a ``scores.h5``: loss and gain logos and a heatmap."""
    import os

    import h5py

    from basenji_tk import plots
    from basenji_tk.analysis.evaluate import file_label

    os.makedirs(plot_dir, exist_ok=True)
    paths = []
    with h5py.File(scores_path, "r") as h5:
        targets = [t.decode() for t in h5["target_ids"][:]]
        names = [x.decode() for x in h5["name"][:]]
        alleles = [x.decode() for x in h5["allele"][:]]
        chroms = [x.decode() for x in h5["chrom"][:]]
        starts = h5["start"][:]
        for i in range(len(names)):
            seq = h5["seqs"][i].astype(np.float32)
            sc = h5["scores"][i].astype(np.float32)
            label = file_label(names[i] + (f"_{alleles[i]}" if alleles[i] else ""))
            for k, t in enumerate(targets):
                path = os.path.join(plot_dir, f"{i:04d}_{label}_{file_label(t)}.png")
                title = f"{names[i]}{' (' + alleles[i] + ')' if alleles[i] else ''} {chroms[i]}:{starts[i]:,} — {t}"
                paths.append(plots.ism_figure(sc[:, :, k], seq, path, title=title, start=int(starts[i])))
    return paths
