"""Variant effects on a trained model's predictions (``sed.py``): allele windows and scoring.

Each output of the model is scored where it makes sense (:mod:`basenji_tk.analysis.effects` has
the statistics):

* **binned** tracks (Basenji): every gene gets one model window centred on its TSS (the middle of
  its TSSs when it has several) and every variant inside that window is scored against it: the
  reference window is predicted once and shared by all the gene's variants (SED, logSED, SAD,
  maxlog2 at the gene's TSS bins). These need GENES;
* every other kind (a profile and its total, one value per sequence, a probability): each
  variant gets its own window centred on it (its first base at ``window // 2``), reference and
  alternative. GENES are optional: given, only variants inside a gene's window (as a binned
  output would see it) are scored, one row per variant-gene pair.

Each alternative window is the reference with the allele substituted. SNPs keep every position.
An indel keeps the window aligned left of the variant; right of it the sequence shifts by the
length difference (a deletion pulls in genome bases from past the window's end, an insertion
pushes bases out of it), so positions right of the variant compare bases that are that many bp
apart (under one 128-bp bin for indels up to ``--max_indel``, default 32 bp).

A model's other inputs (a context vector, fixed values, signal tracks) are filled per window by
:func:`basenji_tk.analysis.inputs.resolve_inputs`; they are the same for the reference and the
alternative. Outputs sharing a placement share predictions; each scored output is written by its
own :class:`~basenji_tk.analysis.sedwriter.SedWriter`: ``sed.h5``/``sed.tsv`` when one output is
scored (a binned model's files are laid out as before), ``sed_OUTPUT.h5``/``sed_OUTPUT.tsv`` each
when several are.

The variants come from :func:`basenji_tk.io.vcf.read_vcf`, the genes from
:func:`basenji_tk.io.genes.read_genes`.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np

from basenji_tk.analysis import effects
from basenji_tk.analysis.sedwriter import H5_NAME, PARTIAL, TSV_NAME, SedWriter, check_restart_inputs, resumable
from basenji_tk.errors import InputError
from basenji_tk.io.genes import Gene, read_genes
from basenji_tk.io.genome import Genome
from basenji_tk.io.vcf import Variants, read_vcf

log = logging.getLogger("basenji_tk")

STATS = effects.BINNED  # a binned output's statistics, the columns of a Basenji-style sed.h5


# ----------------------------------------------------------------------------- windows
@dataclass
class Window:
    """One model window and the variants scored in it.

    A gene's window (binned outputs): ``gene`` and its ``tss_bins`` (output bin of each TSS inside
    the predicted bins). A variant's own window (other outputs): one variant, and ``genes``, the
    genes it is paired with (None when scored without genes). ``key`` names it in sed.h5's ``done``."""

    key: str
    chrom: str  # FASTA name
    start: int  # window start (0-based)
    variants: np.ndarray  # indices into Variants
    gene: Gene | None = None
    tss_bins: np.ndarray | None = None
    genes: list | None = None


def gene_key(gene: Gene) -> str:
    return f"{gene.chrom}:{gene.name}" + (f"#{gene.locus}" if gene.locus else "")


class _Locator:
    """The variants inside a window: ``(chrom, start, length) -> (indices that fit, how many reach past its end)``."""

    def __init__(self, variants: Variants):
        self.variants, self.by_chrom = variants, {}
        for i, c in enumerate(variants.chrom):
            self.by_chrom.setdefault(c, [i, i])[1] = i + 1
        self.ref_len = np.array([len(r) for r in variants.ref], dtype=np.int64)

    def __call__(self, chrom: str, start: int, length: int) -> tuple[np.ndarray, int]:
        pos = self.variants.pos
        lo, hi = self.by_chrom.get(chrom, (0, 0))
        idx = np.arange(lo + np.searchsorted(pos[lo:hi], start), lo + np.searchsorted(pos[lo:hi], start + length))
        fits = pos[idx] + self.ref_len[idx] <= start + length
        return idx[fits], int((~fits).sum())


def gene_start(gene: Gene, seq_length: int) -> int:
    """Start of the gene's window: centred on the middle of its TSSs."""
    return int(gene.tss[0] + gene.tss[-1]) // 2 - seq_length // 2


def gene_windows(genes: list[Gene], variants: Variants, seq_length: int, num_bins: int, pool_width: int,
                 offset: int, sizes: dict, counts: Counter) -> list[Window]:
    """A window per gene centred on the middle of its TSSs, with its TSS bins and variants.

    ``offset``: bp from the window start to the first output bin; ``sizes``: chromosome lengths.
    TSSs outside the predicted bins and variants reaching past the window's end are counted."""
    locate = _Locator(variants)
    out = []
    for gene in genes:
        start = gene_start(gene, seq_length)
        bins = (gene.tss - start - offset) // pool_width
        inside = (gene.tss - start - offset >= 0) & (bins < num_bins)
        counts["tss_outside_window"] += int((~inside).sum())
        if not inside.any():
            counts["genes_without_tss_in_bins"] += 1
            continue
        if start < 0 or start + seq_length > sizes[gene.chrom]:
            counts["windows_padded_with_n"] += 1  # past a chromosome end: N, as in training
        idx, past = locate(gene.chrom, start, seq_length)
        counts["variant_past_window_end"] += past
        out.append(Window(gene_key(gene), gene.chrom, start, idx, gene=gene, tss_bins=bins[inside]))
    return out


def variant_windows(variants: Variants, window: int, sizes: dict, counts: Counter, genes=None,
                    gene_span: int | None = None) -> list[Window]:
    """A window of ``window`` bp per variant with its first base at ``window // 2``.

    With ``genes``: only the variants inside a gene's window (``gene_span`` bp centred on the middle
    of its TSSs, what a binned output of the model would see), each with the genes it is in."""
    paired = None
    if genes is not None:
        locate, paired = _Locator(variants), defaultdict(list)
        for gene in genes:
            for v in locate(gene.chrom, gene_start(gene, gene_span), gene_span)[0].tolist():
                paired[v].append(gene)
        counts["variants_near_no_gene"] += len(variants) - len(paired)
    out = []
    for v in (sorted(paired) if paired is not None else range(len(variants))):
        chrom, pos = variants.chrom[v], int(variants.pos[v])
        start = pos - window // 2
        if start < 0 or start + window > sizes[chrom]:
            counts["windows_padded_with_n"] += 1
        if pos + len(variants.ref[v]) > start + window:
            counts["variant_past_window_end"] += 1  # an allele longer than half the window
            continue
        key = f"{chrom}:{pos + 1}:{variants.ref[v]}:{variants.alt[v]}"
        out.append(Window(key, chrom, start, np.array([v], dtype=np.int64),
                          genes=paired[v] if paired is not None else None))
    return out


def alt_sequence(window: str, offset: int, ref: str, alt: str, length: int) -> str:
    """The window's bases with ``ref`` at ``offset`` replaced by ``alt``, cut to ``length``.

    ``window`` holds at least ``length + len(ref) - len(alt)`` bases (extra bases past the end
    fill in after a deletion)."""
    if window[offset:offset + len(ref)].upper() != ref:
        raise ValueError(f"reference allele {ref} not at offset {offset}")
    return (window[:offset] + alt + window[offset + len(ref):])[:length]


# ----------------------------------------------------------------------------- predicting and scoring
def score_windows(predict, genome: Genome, windows: list[Window], variants: Variants, seq_length: int,
                  max_indel: int, batch_size: int, emit, statistics, naive: bool = False, progress=None,
                  extra=None, sequence: str = "sequence") -> None:
    """Predict every window's reference and alternatives; ``emit(window, variant indices, stats)``
    once per window, in order, with ``stats`` ``{name: (pairs, S, targets)}`` (None when the window
    holds no variant).

    ``predict``: ``{input name: (B, ...)}`` float32 -> ``{output: (B, ...)}``; the sequence input
    ``sequence`` is ``(B, seq_length, 4)``, the window's bases.
    ``extra(window)``: the window's other inputs ``{name: array}`` (shared by its sequences).
    ``statistics(window, ref, alt)``: ``ref`` ``{output: array}`` and ``alt`` ``{output: (P, ...)}``
    -> ``{name: (P, S, targets)}``. Sequences of consecutive windows share batches; a window is
    emitted once all its sequences are predicted. ``naive`` predicts the reference again next to
    every alternative (the two-passes-per-variant baseline of the benchmark; same results, twice
    the work).
    """
    from basenji_tk.data import dna

    pending = []  # (window number, variant index or None for a reference, one-hot, other inputs)
    refs, results = {}, defaultdict(list)

    def run_batch():
        batch = {sequence: np.stack([x for _, _, x, _ in pending])}
        for name in pending[0][3]:
            batch[name] = np.stack([e[name] for _, _, _, e in pending])
        preds = predict(batch)
        k = 0
        while k < len(pending):  # runs of one window's alternatives share one statistics call
            w, v, _, _ = pending[k]
            if v is None:
                refs[w] = {n: p[k] for n, p in preds.items()}
                k += 1
                continue
            end = k
            while end < len(pending) and pending[end][0] == w and pending[end][1] is not None:
                end += 1
            results[w].append(([pending[j][1] for j in range(k, end)],
                               statistics(windows[w], refs[w], {n: p[k:end] for n, p in preds.items()})))
            if progress:
                progress(end - k)
            k = end
        pending.clear()

    def emit_before(current):
        for w in sorted(k for k in refs if k < current):
            parts = results.pop(w, [])
            vidx = np.array([v for ids, _ in parts for v in ids], dtype=np.int64)
            emit(windows[w], vidx, {n: np.concatenate([st[n] for _, st in parts]) for n in parts[0][1]}
                 if parts else None)
            del refs[w]

    for w, win in enumerate(windows):
        text = genome.fetch(win.chrom, win.start, win.start + seq_length + max_indel)
        ref_oh = dna.one_hot(text[:seq_length], dtype=np.float32)
        others = extra(win) if extra is not None else {}
        items = [(w, None, ref_oh, others)]
        for v in win.variants.tolist():
            o = int(variants.pos[v]) - win.start
            ref, alt = variants.ref[v], variants.alt[v]
            if len(ref) == len(alt):
                x = ref_oh.copy()
                x[o:o + len(alt)] = dna.one_hot(alt, dtype=np.float32)
            else:
                x = dna.one_hot(alt_sequence(text, o, ref, alt, seq_length), dtype=np.float32)
            if naive:
                items.append((w, None, ref_oh, others))
            items.append((w, v, x, others))
        for item in items:
            pending.append(item)
            if len(pending) == batch_size:
                run_batch()
                emit_before(w)
    if pending:
        run_batch()
    emit_before(len(windows))


# ----------------------------------------------------------------------------- sed.py
@dataclass
class Scored:
    """One output ``sed.py`` scores: its :class:`~basenji_tk.analysis.trained.OutputInfo`, the chosen
    ``(index, id, label)`` targets, its two files' names, and (once open) its writer."""

    output: object
    chosen: list
    names: tuple
    writer: SedWriter | None = None

    @property
    def stats(self) -> tuple:
        return effects.stat_names(self.output.kind, self.output.activation)


def scored_outputs(tm, output=None, targets=None, genes: bool = True) -> list[Scored]:
    """The outputs of ``tm`` to score: ``output`` (a name), or every output with statistics (binned
    ones only with ``genes``). A model without a sequence input is an error."""
    if tm.sequence is None:
        takes = ", ".join(f"'{i.name}' ({i.kind})" for i in tm.inputs.values())
        raise InputError(f"sed.py needs a model with a sequence input; {tm.model_path} takes only {takes}")
    if tm.window != tm.seq_length:
        raise InputError(f"{tm.model_path}: the sequence input ({tm.seq_length:,} bp) covers only part of the model's "
                         f"{tm.window:,}-bp window; sed.py scores models whose sequence is their window")
    chosen = [tm.output(output)] if output is not None else [o for o in tm.outputs.values() if o.kind in effects.STATS]
    binned = [o for o in chosen if o.kind == "binned"]
    if binned and not genes:
        if output is not None or len(binned) == len(chosen):
            raise InputError(f"GENES not given: output '{binned[0].name}' of {tm.model_path} is binned, and binned "
                             "tracks are scored at gene TSSs (give a TSS BED or GTF)")
        log.info(f"not scored without GENES: the binned output(s) {', '.join(o.name for o in binned)}")
        chosen = [o for o in chosen if o.kind != "binned"]
    several = len(chosen) > 1
    return [Scored(o, tm.select_targets(targets, o), (f"sed_{o.name}.h5", f"sed_{o.name}.tsv") if several
                   else (H5_NAME, TSV_NAME)) for o in chosen]


def score_variants(model_dir, vcf, genes_path, out_dir, fasta=None, rc: bool = False, shifts=(0,), targets=None,
                   batch_size: int = 8, restart: bool = False, float32: bool = False, max_indel: int = 32,
                   model_file=None, quiet: bool = False, naive: bool = False, force: bool = False, output=None,
                   inputs=None) -> dict:
    """``sed.py``: score every variant of ``vcf`` with the outputs of ``model_dir`` (``output``: just
    that one), near the genes of ``genes_path`` (needed for binned outputs, optional for the others);
    returns counts. ``inputs``: :class:`~basenji_tk.analysis.inputs.InputOptions` for the model's
    inputs besides the sequence.

    A finished ``out_dir`` is kept unless ``force``; an interrupted one is continued with
    ``restart`` (its inputs must be unchanged) or replaced with ``force``."""
    from basenji_tk import files
    from basenji_tk.analysis.inputs import InputOptions, resolve_inputs
    from basenji_tk.analysis.trained import TrainedModel, model_path_of

    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    if int(max_indel) < 0:
        raise InputError(f"--max_indel: expected 0 or more, got {max_indel}")
    for path, what in ((vcf, "VCF"), (genes_path, "genes")):
        if path is not None and not os.path.isfile(str(path)):
            raise InputError(f"{path}: no such {what} file")
    model_path_of(model_dir, model_file)
    opts = inputs or InputOptions()
    with files.claim(out_dir):
        tm = TrainedModel.load(model_dir, model_file)
        scored = scored_outputs(tm, output, targets, genes_path is not None)
        names = [s.names for s in scored]
        resume = restart and resumable(out_dir, names)
        if not resume:
            files.refuse_overwrite(out_dir, [n for pair in names for n in pair], force,
                                   restart_hint=resumable(out_dir, names))
            if resumable(out_dir, names) and not force:
                raise InputError(f"{out_dir}: holds an interrupted run ({names[0][0]}{PARTIAL}); use --restart to "
                                 "continue it or --force to start again")
            if restart:
                log.info(f"--restart: no interrupted run in {out_dir}; starting from the beginning")
        genome = tm.genome(fasta)
        with resolve_inputs(tm, opts, genome.sizes) as resolver:  # every problem with the other inputs, up front
            read = {"VCF": vcf, "genes file": genes_path, "FASTA": genome.path, "model file": tm.model_path,
                    "context table": opts.context_tsv}
            read.update({f"--input {t.partition('=')[0]}": t.partition("=")[2] for t in opts.values
                         if t.partition("=")[2].endswith(".npy")})
            read = {what: path for what, path in read.items() if path is not None}
            if resume:
                check_restart_inputs(out_dir, read, names[0][0])
            prints = {what: files.fingerprint(path) for what, path in read.items()}
            tm.predictor(rc, shifts)  # a bad --shifts is an error before anything is written
            return _score(tm, scored, genome, vcf, genes_path, out_dir, rc, shifts, batch_size, resume, float32,
                          max_indel, quiet, naive, prints, resolver, opts)


def _attrs(tm, s: Scored, genome, vcf, genes_path, rc, shifts, max_indel, opts) -> dict:
    """The run's settings stored with one output's files (compared on --restart)."""
    import json

    out = s.output
    attrs = dict(model=os.path.abspath(tm.model_path), vcf=os.path.abspath(str(vcf)),
                 genes=os.path.abspath(str(genes_path)) if genes_path else "", fasta=os.path.abspath(genome.path),
                 rc=bool(rc), shifts=",".join(str(x) for x in shifts), targets=",".join(c[1] for c in s.chosen),
                 seq_length=tm.seq_length)
    if out.kind == "binned":
        attrs.update(pool_width=out.resolution, max_indel=int(max_indel))  # as sed.h5 always had
    else:
        attrs.update(max_indel=int(max_indel), output_kind=out.kind, window="centred on the variant")
    if out.kind != "binned" or len(tm.outputs) > 1:
        attrs["output"] = out.name
    if tm.extra_inputs:
        attrs["extra_inputs"] = json.dumps(dict(context=opts.context, context_tsv=opts.context_tsv,
                                                input=list(opts.values)))
    return attrs


def _passes(scored, genes, variants, seq_length, sizes, genes_path) -> list:
    """``[(windows, [Scored], counts)]``: outputs scored in the same windows share one pass (and its predictions)."""
    groups = defaultdict(list)
    for s in scored:
        o = s.output
        groups[("gene", o.num_positions, o.resolution, o.offset) if o.kind == "binned" else ("variant",)].append(s)
    passes = []
    for key, members in groups.items():
        if key[0] == "gene":
            pc = Counter({k: 0 for k in ("tss_outside_window", "genes_without_tss_in_bins", "windows_padded_with_n",
                                         "variant_past_window_end")})
            windows = gene_windows(genes, variants, seq_length, key[1], key[2], key[3], sizes, pc)
            if not windows:
                raise InputError(f"{genes_path}: no gene has a TSS inside the model's predicted bins")
            pc["genes_scored"] = len(windows)
            pc["pairs"] = sum(len(w.variants) for w in windows)
        else:
            pc = Counter({k: 0 for k in ("windows_padded_with_n", "variant_past_window_end")})
            windows = variant_windows(variants, seq_length, sizes, pc, genes, seq_length)
            pc["pairs"] = sum(len(w.genes) if w.genes is not None else 1 for w in windows)
        passes.append((windows, members, pc))
    return passes


def _meta(variants, win: Window, vidx: np.ndarray):
    """The rows of a window's scored variants (their sed.h5 columns) and, per row, its row in the statistics."""
    if win.gene is not None:
        genes, rows = [win.gene] * len(vidx), np.arange(len(vidx))
    elif win.genes is not None:
        genes, rows = win.genes, np.zeros(len(win.genes), dtype=np.int64)  # one variant, several genes
    else:
        genes, rows = None, np.arange(len(vidx))
    v = vidx[rows]
    pos = variants.pos[v]
    meta = dict(snp=[variants.ids[i] for i in v], chrom=[win.chrom] * len(v), pos=pos + 1,
                ref=[variants.ref[i] for i in v], alt=[variants.alt[i] for i in v], flipped=variants.flipped[v])
    if genes is not None:
        nearest = np.array([g.tss[np.abs(g.tss - p).argmin()] for g, p in zip(genes, pos)], dtype=np.int64)
        meta.update(gene=[g.name for g in genes], tss_dist=pos - nearest)
    return meta, rows


def _score(tm, scored, genome, vcf, genes_path, out_dir, rc, shifts, batch_size, restart, float32, max_indel, quiet,
           naive, prints, resolver, opts) -> dict:
    """The work of :func:`score_variants` inside its claim on ``out_dir``."""
    import json
    import time

    from tqdm import tqdm

    from basenji_tk import cli

    genes, gene_counts = read_genes(genes_path, genome) if genes_path is not None else (None, Counter())
    variants = read_vcf(vcf, genome, max_indel)
    counts = Counter({f"vcf_{k}": 0 for k in ("records", "alleles", "scorable", "flipped", "duplicates",
                                                "ref_mismatch_skipped", "past_chrom_end_skipped", "symbolic_skipped",
                                                "long_indel_skipped", "chrom_not_in_fasta")})
    counts.update({f"vcf_{k}": v for k, v in variants.counts.items()})
    counts.update({f"genes_{k}": v for k, v in gene_counts.items()})
    log.info(f"{vcf}: {counts['vcf_scorable']:,} variants to score ({counts['vcf_flipped']:,} flipped, "
             f"{counts['vcf_ref_mismatch_skipped']:,} REF mismatches, {counts['vcf_past_chrom_end_skipped']:,} past "
             f"the chromosome's end, {counts['vcf_duplicates']:,} duplicates, "
             f"{counts['vcf_long_indel_skipped'] + counts['vcf_symbolic_skipped']:,} other alleles skipped); "
             + (f"{len(genes):,} genes" if genes is not None else "no genes"))
    seq_length = tm.seq_length
    passes = _passes(scored, genes, variants, seq_length, genome.sizes, genes_path)
    kept = [s for _, members, _ in passes for s in members]
    try:
        for s in kept:
            s.writer = SedWriter(out_dir, s.chosen, s.stats, float32,
                                 _attrs(tm, s, genome, vcf, genes_path, rc, shifts, max_indel, opts), restart,
                                 inputs=json.dumps(prints), names=s.names,
                                 meta=SedWriter.META if genes is not None else SedWriter.VARIANT_META)
    except BaseException:
        for s in kept:
            if s.writer is not None:
                s.writer.abort()
        raise
    todo = [[w for w in windows if any(w.key not in s.writer.done for s in members)] for windows, members, _ in passes]
    total = sum(len(w.variants) for windows in todo for w in windows)
    for (windows, members, pc), left in zip(passes, todo):
        what = (f"{pc['pairs']:,} variant-gene pairs in {len(windows):,} gene windows" if members[0].output.kind ==
                "binned" else f"{len(windows):,} variants in windows centred on them")
        log.info(f"scoring {what} of {seq_length:,} bp for {', '.join(s.output.describe() for s in members)}"
                 + (f" ({len(windows) - len(left):,} windows done before the restart)" if len(left) < len(windows)
                    else ""))
    extra = (lambda win: resolver((win.chrom, win.start, win.start + tm.window))) if tm.extra_inputs else None
    started = time.time()
    try:
        with tqdm(total=total, desc="variants", unit="variant", disable=not cli.show_progress(quiet)) as bar:
            for (_, members, _), windows in zip(passes, todo):
                _run_pass(tm, members, windows, variants, genome, seq_length, max_indel, batch_size, naive, rc,
                          shifts, extra, bar.update)
    except BaseException:
        for s in kept:
            s.writer.abort()
        raise
    seconds = time.time() - started
    timing = dict(seconds=round(seconds, 2), variants_per_second=round(total / seconds, 2) if seconds > 0 else None)
    base = dict(counts)
    for _, members, pc in passes:
        for s in members:
            h5_path, tsv_path = s.writer.close({**base, **pc, **timing})  # each file: its own pass's counts
            log.info(f"wrote {h5_path} and {tsv_path}: {pc['pairs']:,} {'pairs' if genes is not None else 'variants'}"
                     f" x {len(s.chosen)} targets")
        counts.update(pc)
    counts.update(timing)
    log.info(f"{total:,} alternative alleles scored now at {timing['variants_per_second'] or 0:,.1f} variants/s")
    return dict(counts)


def _run_pass(tm, members, windows, variants, genome, seq_length, max_indel, batch_size, naive, rc, shifts, extra,
              progress) -> None:
    """Score ``windows`` for the outputs ``members`` (one shared prediction per sequence)."""

    def statistics(win, ref, alt):
        return {s.output.name: effects.effect_stats(s.output.kind, s.output.activation, ref[s.output.name],
                                                    alt[s.output.name], win.tss_bins) for s in members}

    def emit(win, vidx, st):
        meta, rows = _meta(variants, win, vidx)
        for s in members:
            if win.key not in s.writer.done:
                index = np.array([c[0] for c in s.chosen])
                s.writer.add(win.key, meta, None if st is None else st[s.output.name][rows][:, :, index])

    score_windows(lambda batch: tm.predict(batch, rc, shifts), genome, windows, variants, seq_length, max_indel,
                  int(batch_size), emit, statistics, naive=naive, progress=progress, extra=extra,
                  sequence=tm.sequence.name)
