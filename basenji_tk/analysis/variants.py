"""Variant effects on predicted expression: allele windows, SED/SAD statistics, scoring.

:func:`score_variants` (``sed.py``) gives every gene one model window centred on its TSS (the
middle of its TSSs when it has several) and scores every variant inside that window against it:

* the reference window is predicted once and shared by all the gene's variants;
* each variant's alternative window is the reference with the allele substituted. SNPs keep every
  position. An indel keeps the window aligned left of the variant; right of it the sequence
  shifts by the length difference (a deletion pulls in genome bases from past the window's end,
  an insertion pushes bases out of it), so bins right of the variant compare positions that are
  that many bp apart (under one 128-bp bin for indels up to ``--max_indel``, default 32 bp).

Statistics per SNP-gene pair and target, from the reference ``r`` and alternative ``a``
predictions (``(bins,)`` each; negative predictions count as 0 in logarithms):

* ``SED``     = sum over the gene's TSSs of ``a[b] - r[b]`` at the TSS's bin ``b`` (Basenji's
  SNP expression difference);
* ``logSED``  = ``log2(sum a[b] + 1) - log2(sum r[b] + 1)`` over the same bins;
* ``SAD``     = ``sum over all bins (a - r)``;
* ``maxlog2`` = ``max over bins |log2(a + 1) - log2(r + 1)|``.

The variants come from :func:`basenji_tk.io.vcf.read_vcf`, the genes from
:func:`basenji_tk.io.genes.read_genes`; the outputs are written by
:class:`basenji_tk.analysis.sedwriter.SedWriter`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from basenji_tk.analysis.sedwriter import H5_NAME, PARTIAL, TSV_NAME, SedWriter, check_restart_inputs, resumable
from basenji_tk.errors import InputError
from basenji_tk.io.genes import Gene, read_genes
from basenji_tk.io.genome import Genome
from basenji_tk.io.vcf import Variants, read_vcf

log = logging.getLogger("basenji_tk")

STATS = ("SED", "logSED", "SAD", "maxlog2")


# ----------------------------------------------------------------------------- statistics
def sed_stats(ref: np.ndarray, alt: np.ndarray, tss_bins: np.ndarray) -> np.ndarray:
    """Statistics of a window's pairs: ``ref`` ``(bins, targets)`` and ``alt`` ``(pairs, bins,
    targets)`` predictions -> ``(pairs, len(STATS), targets)``, computed in float64."""
    ref, alt = ref.astype(np.float64), alt.astype(np.float64)
    r_tss, a_tss = ref[tss_bins].sum(axis=0), alt[:, tss_bins].sum(axis=1)
    log_r, log_a = np.log2(np.maximum(ref, 0) + 1), np.log2(np.maximum(alt, 0) + 1)
    return np.stack([a_tss - r_tss,
                     np.log2(np.maximum(a_tss, 0) + 1) - np.log2(np.maximum(r_tss, 0) + 1),
                     (alt - ref).sum(axis=1),
                     np.abs(log_a - log_r).max(axis=1)], axis=1)


def alt_sequence(window: str, offset: int, ref: str, alt: str, length: int) -> str:
    """The window's bases with ``ref`` at ``offset`` replaced by ``alt``, cut to ``length``.

    ``window`` holds at least ``length + len(ref) - len(alt)`` bases (extra bases past the end
    fill in after a deletion)."""
    if window[offset:offset + len(ref)].upper() != ref:
        raise ValueError(f"reference allele {ref} not at offset {offset}")
    return (window[:offset] + alt + window[offset + len(ref):])[:length]


# ----------------------------------------------------------------------------- windows and scoring
@dataclass
class Window:
    """One gene's model window and the variants scored in it."""

    gene: Gene
    start: int  # window start (0-based)
    tss_bins: np.ndarray  # output bin of each TSS inside the predicted bins
    variants: np.ndarray  # indices into Variants

    @property
    def key(self) -> str:
        return f"{self.gene.chrom}:{self.gene.name}" + (f"#{self.gene.locus}" if self.gene.locus else "")


def gene_windows(genes: list[Gene], variants: Variants, seq_length: int, num_bins: int, pool_width: int,
                 offset: int, sizes: dict, counts: Counter) -> list[Window]:
    """A window per gene centred on the middle of its TSSs, with its TSS bins and variants.

    ``offset``: bp from the window start to the first output bin; ``sizes``: chromosome lengths.
    TSSs outside the predicted bins and variants reaching past the window's end are counted."""
    by_chrom = {}
    for i, c in enumerate(variants.chrom):
        by_chrom.setdefault(c, [i, i])[1] = i + 1
    ref_len = np.array([len(r) for r in variants.ref], dtype=np.int64)
    out = []
    for gene in genes:
        start = int(gene.tss[0] + gene.tss[-1]) // 2 - seq_length // 2
        bins = (gene.tss - start - offset) // pool_width
        inside = (gene.tss - start - offset >= 0) & (bins < num_bins)
        counts["tss_outside_window"] += int((~inside).sum())
        if not inside.any():
            counts["genes_without_tss_in_bins"] += 1
            continue
        if start < 0 or start + seq_length > sizes[gene.chrom]:
            counts["windows_padded_with_n"] += 1  # past a chromosome end: N, as in training
        lo, hi = by_chrom.get(gene.chrom, (0, 0))
        a = lo + np.searchsorted(variants.pos[lo:hi], start)
        b = lo + np.searchsorted(variants.pos[lo:hi], start + seq_length)
        idx = np.arange(a, b)
        fits = variants.pos[idx] + ref_len[idx] <= start + seq_length
        counts["variant_past_window_end"] += int((~fits).sum())
        out.append(Window(gene, start, bins[inside], idx[fits]))
    return out


def score_windows(predict, genome: Genome, windows: list[Window], variants: Variants, seq_length: int,
                  max_indel: int, batch_size: int, emit, naive: bool = False, progress=None) -> None:
    """Predict every window's reference and alternatives; ``emit(window, variant indices, stats)``
    once per window, in order, with ``stats`` of shape ``(pairs, len(STATS), targets)`` (None
    when the window holds no variant).

    ``predict``: ``(B, L, 4)`` float32 -> ``(B, bins, targets)``. Sequences of consecutive windows
    share batches; a window is emitted once all its sequences are predicted. ``naive`` predicts
    the reference again next to every alternative (the two-passes-per-variant baseline of the
    benchmark; same results, twice the work).
    """
    from basenji_tk.data import dna

    pending = []  # (window number, variant index or None for a reference, one-hot)
    refs, results = {}, defaultdict(list)

    def run_batch():
        preds = predict(np.stack([x for _, _, x in pending]))
        k = 0
        while k < len(pending):  # runs of one window's alternatives share one statistics call
            w, v, _ = pending[k]
            if v is None:
                refs[w] = preds[k]
                k += 1
                continue
            end = k
            while end < len(pending) and pending[end][0] == w and pending[end][1] is not None:
                end += 1
            results[w].append(([pending[j][1] for j in range(k, end)],
                               sed_stats(refs[w], preds[k:end], windows[w].tss_bins)))
            if progress:
                progress(end - k)
            k = end
        pending.clear()

    def emit_before(current):
        for w in sorted(k for k in refs if k < current):
            parts = results.pop(w, [])
            vidx = np.array([v for ids, _ in parts for v in ids], dtype=np.int64)
            emit(windows[w], vidx, np.concatenate([st for _, st in parts]) if parts else None)
            del refs[w]

    for w, win in enumerate(windows):
        text = genome.fetch(win.gene.chrom, win.start, win.start + seq_length + max_indel)
        ref_oh = dna.one_hot(text[:seq_length], dtype=np.float32)
        items = [(w, None, ref_oh)]
        for v in win.variants.tolist():
            o = int(variants.pos[v]) - win.start
            ref, alt = variants.ref[v], variants.alt[v]
            if len(ref) == len(alt):
                x = ref_oh.copy()
                x[o:o + len(alt)] = dna.one_hot(alt, dtype=np.float32)
            else:
                x = dna.one_hot(alt_sequence(text, o, ref, alt, seq_length), dtype=np.float32)
            if naive:
                items.append((w, None, ref_oh))
            items.append((w, v, x))
        for item in items:
            pending.append(item)
            if len(pending) == batch_size:
                run_batch()
                emit_before(w)
    if pending:
        run_batch()
    emit_before(len(windows))


def score_variants(model_dir, vcf, genes_path, out_dir, fasta=None, rc: bool = False, shifts=(0,), targets=None,
                   batch_size: int = 8, restart: bool = False, float32: bool = False, max_indel: int = 32,
                   model_file=None, quiet: bool = False, naive: bool = False, force: bool = False) -> dict:
    """``sed.py``: score every variant of ``vcf`` near the genes of ``genes_path``; returns counts.

    A finished ``out_dir`` (sed.h5 or sed.tsv) is kept unless ``force``; an interrupted one is
    continued with ``restart`` (its inputs must be unchanged) or replaced with ``force``."""
    from basenji_tk import files
    from basenji_tk.analysis.evaluate import MODEL_FILE
    from basenji_tk.analysis.predict import open_genome, training_statistics

    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    if int(max_indel) < 0:
        raise InputError(f"--max_indel: expected 0 or more, got {max_indel}")
    for path, what in ((vcf, "VCF"), (genes_path, "genes")):
        if not os.path.isfile(str(path)):
            raise InputError(f"{path}: no such {what} file")
    model_path = str(model_file) if model_file else os.path.join(str(model_dir), MODEL_FILE)
    if not os.path.isfile(model_path):
        raise InputError(f"{model_path}: model file not found")
    stats, stats_path = training_statistics(model_dir)
    with files.claim(out_dir):
        resume = restart and resumable(out_dir)
        if not resume:
            files.refuse_overwrite(out_dir, [H5_NAME, TSV_NAME], force, restart_hint=resumable(out_dir))
            if resumable(out_dir) and not force:
                raise InputError(f"{out_dir}: holds an interrupted run ({H5_NAME}{PARTIAL}); use --restart to continue "
                                 "it or --force to start again")
            if restart:
                log.info(f"--restart: no interrupted run in {out_dir}; starting from the beginning")
        genome = open_genome(fasta, stats, stats_path)
        inputs = {"VCF": vcf, "genes file": genes_path, "FASTA": genome.path, "model file": model_path}
        if resume:
            check_restart_inputs(out_dir, inputs)
        prints = {what: files.fingerprint(path) for what, path in inputs.items()}
        return _score(model_dir, model_path, stats, stats_path, genome, vcf, genes_path, out_dir, rc, shifts,
                      targets, batch_size, resume, float32, max_indel, quiet, naive, prints)


def _score(model_dir, model_path, stats, stats_path, genome, vcf, genes_path, out_dir, rc, shifts, targets,
           batch_size, restart, float32, max_indel, quiet, naive, prints) -> dict:
    """The work of :func:`score_variants` inside its claim on ``out_dir``."""
    import json
    import time

    from tqdm import tqdm

    from basenji_tk import cli
    from basenji_tk.analysis.evaluate import ensemble_model, predict_batch
    from basenji_tk.analysis.predict import bin_offset, load_trained

    genes, gene_counts = read_genes(genes_path, genome)
    variants = read_vcf(vcf, genome, max_indel)
    counts = Counter({f"vcf_{k}": 0 for k in ("records", "alleles", "scorable", "flipped", "duplicates",
                                                "ref_mismatch_skipped", "past_chrom_end_skipped", "symbolic_skipped",
                                                "long_indel_skipped", "chrom_not_in_fasta")})
    counts.update({f"vcf_{k}": v for k, v in variants.counts.items()})
    counts.update({f"genes_{k}": v for k, v in gene_counts.items()})
    counts.update({k: 0 for k in ("tss_outside_window", "genes_without_tss_in_bins", "windows_padded_with_n",
                                  "variant_past_window_end")})
    log.info(f"{vcf}: {counts['vcf_scorable']:,} variants to score ({counts['vcf_flipped']:,} flipped, "
             f"{counts['vcf_ref_mismatch_skipped']:,} REF mismatches, {counts['vcf_past_chrom_end_skipped']:,} past "
             f"the chromosome's end, {counts['vcf_duplicates']:,} duplicates, "
             f"{counts['vcf_long_indel_skipped'] + counts['vcf_symbolic_skipped']:,} other alleles skipped); "
             f"{len(genes):,} genes")

    model, model_path, details, chosen = load_trained(model_dir, model_path, stats, stats_path, targets)
    seq_length, num_bins, pool_width = details["seq_length"], details["num_bins"], details["pool_width"]
    model = ensemble_model(model, rc, shifts, seq_length)
    index = np.array([c[0] for c in chosen])
    windows = gene_windows(genes, variants, seq_length, num_bins, pool_width,
                           bin_offset(seq_length, num_bins, pool_width), genome.sizes, counts)
    if not windows:
        raise InputError(f"{genes_path}: no gene has a TSS inside the model's predicted bins")

    attrs = dict(model=os.path.abspath(model_path), vcf=os.path.abspath(str(vcf)),
                 genes=os.path.abspath(str(genes_path)), fasta=os.path.abspath(genome.path), rc=bool(rc),
                 shifts=",".join(str(s) for s in shifts), targets=",".join(c[1] for c in chosen),
                 seq_length=seq_length, pool_width=pool_width, max_indel=int(max_indel))
    writer = SedWriter(out_dir, chosen, STATS, float32, attrs, restart, inputs=json.dumps(prints))
    todo = [w for w in windows if w.key not in writer.done]
    pairs = sum(len(w.variants) for w in todo)
    counts["genes_scored"] = len(windows)
    counts["pairs"] = sum(len(w.variants) for w in windows)
    log.info(f"scoring {pairs:,} variant-gene pairs in {len(todo):,} windows of {seq_length:,} bp"
             + (f" ({len(windows) - len(todo):,} windows done before the restart)" if len(todo) < len(windows) else ""))

    def emit(win: Window, vidx: np.ndarray, st) -> None:
        tss = win.gene.tss
        pos = variants.pos[vidx]
        nearest = tss[np.abs(pos[:, None] - tss[None, :]).argmin(axis=1)] if len(vidx) else pos
        meta = dict(snp=[variants.ids[v] for v in vidx], chrom=[win.gene.chrom] * len(vidx), pos=pos + 1,
                    ref=[variants.ref[v] for v in vidx], alt=[variants.alt[v] for v in vidx],
                    flipped=variants.flipped[vidx], gene=[win.gene.name] * len(vidx), tss_dist=pos - nearest)
        writer.add(win.key, meta, None if st is None else st[:, :, index])

    started = time.time()
    try:
        with tqdm(total=pairs, desc="variants", unit="variant", disable=not cli.show_progress(quiet)) as bar:
            score_windows(lambda x: predict_batch(model, x), genome, todo, variants, seq_length, max_indel,
                          int(batch_size), emit, naive=naive, progress=bar.update)
    except BaseException:
        writer.abort()
        raise
    seconds = time.time() - started
    counts["seconds"] = round(seconds, 2)
    counts["variants_per_second"] = round(pairs / seconds, 2) if seconds > 0 else None
    h5_path, tsv_path = writer.close(counts)
    log.info(f"wrote {h5_path} and {tsv_path}: {counts['pairs']:,} pairs x {len(chosen)} targets; "
             f"{pairs:,} scored now at {counts['variants_per_second'] or 0:,.1f} variants/s")
    return dict(counts)
