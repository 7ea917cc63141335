"""Variant effects on predicted expression: VCF and gene reading, allele windows, SED/SAD statistics.

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

VCF reading (:func:`read_vcf`): multi-allelic records are split; a variant seen twice (same
chromosome, position and alleles) is scored once; REF is checked against the FASTA: a SNP whose ALT
is the genome base is flipped (scored with the genome base as reference, recorded in ``flipped``),
other mismatches are skipped and counted, as are symbolic alleles, indels longer than
``max_indel`` and chromosomes the FASTA lacks. Positions are 0-based internally; outputs show the
VCF's 1-based position.
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.io import vcf as vcfio
from basenji_tk.errors import InputError
from basenji_tk.io.genome import Genome, chrom_lookup, table_lines

log = logging.getLogger("basenji_tk")

STATS = ("SED", "logSED", "SAD", "maxlog2")
LOCUS_GAP = 200_000  # bp: TSSs of one gene name farther apart than this are separate genes (loci)
H5_NAME, TSV_NAME = "sed.h5", "sed.tsv"
PARTIAL = ".partial"  # an unfinished run's outputs, kept for --restart


# ----------------------------------------------------------------------------- variants
@dataclass
class Variants:
    """Variants sorted by (FASTA chromosome order, position), one row per (position, REF, ALT)."""

    chrom: list  # FASTA name per variant
    pos: np.ndarray  # int64, 0-based
    ref: list  # as scored (the genome's base after a flip)
    alt: list
    ids: list
    flipped: np.ndarray  # bool
    counts: Counter = field(default_factory=Counter)

    def __len__(self):
        return len(self.pos)


def read_vcf(path, genome: Genome, max_indel: int = 32) -> Variants:
    """Every scorable variant of a VCF (plain, bgzip or plain gzip; any order), checked against ``genome``.

    A malformed record is an :class:`InputError` naming its line (as a text editor counts
    them, header included)."""
    path = str(path)
    to_fasta = chrom_lookup(genome.chroms)
    order = {c: i for i, c in enumerate(genome.chroms)}
    counts, missing = Counter(), Counter()
    seen, rows = set(), []
    with vcfio.open_vcf(path) as vcf:
        records = iter(vcf)
        while True:
            try:
                rec = next(records)
            except StopIteration:
                break
            except (ValueError, OSError) as err:
                raise InputError(vcfio.bad_record(path, counts["records"] + 1, err)) from None
            counts["records"] += 1
            chrom = to_fasta(rec.chrom)
            if chrom is None:
                missing[rec.chrom] += 1
                continue
            if rec.ref is None or not rec.alts:
                counts["no_alt"] += 1
                continue
            for alt in rec.alts:
                counts["alleles"] += 1
                ref = rec.ref.upper()
                alt = alt.upper()
                if not re.fullmatch(r"[ACGTN]+", alt) or not re.fullmatch(r"[ACGTN]+", ref):
                    counts["symbolic_skipped"] += 1
                    continue
                if len(ref) != len(alt) and max(len(ref), len(alt)) > max_indel + 1:
                    counts["long_indel_skipped"] += 1
                    continue
                pos = rec.pos - 1
                if pos < 0 or pos + len(ref) > genome.sizes[chrom]:
                    counts["past_chrom_end_skipped"] += 1  # e.g. a whole-chromosome VCF on a part of it
                    continue
                key = (chrom, pos, ref, alt)
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(key)
                genome_ref = genome.fetch(chrom, pos, pos + len(ref)).upper()
                flipped = False
                if genome_ref != ref:
                    if len(ref) == 1 and len(alt) == 1 and genome_ref == alt:
                        ref, alt, flipped = alt, ref, True
                        counts["flipped"] += 1
                    else:
                        counts["ref_mismatch_skipped"] += 1
                        continue
                vid = rec.id if rec.id and rec.id != "." else f"{rec.chrom}:{rec.pos}:{rec.ref}:{alt if not flipped else ref}"
                rows.append((order[chrom], pos, ref, alt, vid, flipped))
    if missing:
        counts["chrom_not_in_fasta"] = sum(missing.values())
        names = ", ".join(sorted(missing)[:5]) + (" ..." if len(missing) > 5 else "")
        if not rows:
            raise InputError(f"{path}: no VCF chromosome is in the FASTA {genome.path} (VCF has {names}; FASTA has "
                             f"{', '.join(genome.chroms[:5])}{' ...' if len(genome.chroms) > 5 else ''})")
        log.warning(f"warning: {counts['chrom_not_in_fasta']:,} VCF records on chromosomes missing from the FASTA "
                    f"skipped: {names}")
    rows.sort(key=lambda r: (r[0], r[1]))
    counts["scorable"] = len(rows)
    names = genome.chroms
    return Variants(chrom=[names[r[0]] for r in rows], pos=np.array([r[1] for r in rows], dtype=np.int64),
                    ref=[r[2] for r in rows], alt=[r[3] for r in rows], ids=[r[4] for r in rows],
                    flipped=np.array([r[5] for r in rows], dtype=bool), counts=counts)


# ----------------------------------------------------------------------------- genes
@dataclass
class Gene:
    name: str
    chrom: str  # FASTA name
    tss: np.ndarray  # int64, 0-based TSS positions, sorted
    strand: str
    locus: int = 0  # 1, 2, ... for a name found at loci more than LOCUS_GAP apart (0: one locus)


def read_genes(path, genome: Genome) -> tuple[list[Gene], Counter]:
    """Genes from a TSS BED (chrom, start, end, name, and a +/- strand in column 5 or 6) or a GTF
    (the TSS of every ``transcript``, grouped by ``gene_name`` or ``gene_id``).

    Plain or gzip; ``#``/``track``/``browser`` lines, and a first BED line of column names, are
    skipped; Windows line endings are accepted. A name whose TSSs lie more than ``LOCUS_GAP`` bp
    apart (e.g. ``Y_RNA``, which GENCODE gives to many small genes) is one gene per locus
    (``locus`` 1, 2, ... in genome order), each with its own window."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such genes file")
    gtf = re.search(r"\.gtf(\.gz)?$", path) is not None
    to_fasta = chrom_lookup(genome.chroms)
    tss, strands, counts = defaultdict(list), {}, Counter()
    for k, (number, cols) in enumerate(table_lines(path)):
        if k == 0 and not gtf and len(cols) >= 3 and not (_is_int(cols[1]) or _is_int(cols[2])):
            continue  # a column-name header ("chrom start end name ...")
        try:
            name, chrom, position, strand = (_gtf_tss if gtf else _bed_tss)(cols)
        except (ValueError, IndexError) as err:
            kind = "GTF" if gtf else "BED"
            raise InputError(f"{path}: line {number}: expected a {kind} gene line ({err})") from None
        if name is None:
            continue
        fasta_chrom = to_fasta(chrom)
        if fasta_chrom is None:
            counts["chrom_not_in_fasta"] += 1
            continue
        if not 0 <= position < genome.sizes[fasta_chrom]:
            counts["tss_outside_chromosome"] += 1
            continue
        tss[(name, fasta_chrom)].append(position)
        strands[(name, fasta_chrom, position)] = strand
    genes = []
    for (name, chrom), p in tss.items():
        p = np.unique(np.array(p, dtype=np.int64))
        loci = np.split(p, np.flatnonzero(np.diff(p) > LOCUS_GAP) + 1)
        if len(loci) > 1:
            counts["names_at_several_loci"] += 1
        for k, where in enumerate(loci):
            genes.append(Gene(name, chrom, where, strands[(name, chrom, int(where[0]))], k + 1 if len(loci) > 1 else 0))
    order = {c: i for i, c in enumerate(genome.chroms)}
    genes.sort(key=lambda g: (order[g.chrom], int(g.tss[0]), g.name))
    if not genes:
        raise InputError(f"{path}: no gene TSS on the FASTA's chromosomes ({', '.join(genome.chroms[:5])})")
    return genes, counts


def _is_int(text: str) -> bool:
    return text.strip().lstrip("-").isdigit()


def _bed_tss(cols):
    if len(cols) < 4:
        raise ValueError(f"{len(cols)} tab-separated columns, expected 4 or more: chrom, start, end, name")
    start, end = int(cols[1]), int(cols[2])
    strand = next((cols[k] for k in (5, 4) if len(cols) > k and cols[k] in ("+", "-")), "+")
    if end <= start:
        raise ValueError(f"end {end} not after start {start}")
    return cols[3], cols[0], start if strand == "+" else end - 1, strand


def _gtf_tss(cols):
    if len(cols) < 9:
        raise ValueError(f"{len(cols)} columns, GTF has 9")
    if cols[2] != "transcript":
        return None, None, None, None
    attrs = dict(re.findall(r'(\w+) "([^"]*)"', cols[8]))
    name = attrs.get("gene_name") or attrs.get("gene_id")
    if not name:
        raise ValueError("no gene_name or gene_id attribute")
    start, end = int(cols[3]) - 1, int(cols[4])  # GTF: 1-based, inclusive
    return name, cols[0], start if cols[6] == "+" else end - 1, cols[6]


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


# ----------------------------------------------------------------------------- outputs
class SedWriter:
    """``sed.h5`` and ``sed.tsv`` appended window by window under ``.partial`` names.

    After each window the HDF5 file records the rows written, the TSV's length and the window's
    key in ``done``, so ``restart`` can drop anything written after the last finished window
    and skip the finished ones. ``close`` renames both files into place.
    """

    META = ("snp", "chrom", "pos", "ref", "alt", "flipped", "gene", "tss_dist")

    def __init__(self, out_dir: str, targets: list[tuple[int, str, str]], float32: bool, attrs: dict,
                 restart: bool, inputs: str = "{}"):
        import h5py

        self.h5_path, self.tsv_path = os.path.join(out_dir, H5_NAME), os.path.join(out_dir, TSV_NAME)
        self.h5_tmp, self.tsv_tmp = self.h5_path + PARTIAL, self.tsv_path + PARTIAL
        self.targets = targets
        self.dtype = np.float32 if float32 else np.float16
        self.done = set()
        if restart and os.path.exists(self.h5_tmp) and os.path.exists(self.tsv_tmp):
            try:
                self.h5 = h5py.File(self.h5_tmp, "a")
            except OSError as err:
                raise InputError(f"{self.h5_tmp}: cannot reopen the interrupted run ({err}); run without "
                                 f"--restart") from None
            before = {k: self.h5.attrs.get(k) for k in attrs}
            changed = [k for k, v in attrs.items() if str(before[k]) != str(v)]
            if changed:
                self.h5.close()
                raise InputError(f"{self.h5_tmp}: --restart with a different {changed[0]} "
                                 f"({before[changed[0]]} before, {attrs[changed[0]]} now); run without --restart")
            rows = int(self.h5.attrs["rows"])
            for name in (*self.META, *STATS):
                self.h5[name].resize(rows, axis=0)
            done = self.h5["done"]
            done.resize(int(self.h5.attrs["windows"]), axis=0)
            self.done = {k.decode() for k in done[:]}
            self.tsv = open(self.tsv_tmp, "r+")
            self.tsv.truncate(int(self.h5.attrs["tsv_bytes"]))
            self.tsv.seek(0, os.SEEK_END)
            log.info(f"restart: {len(self.done):,} windows ({rows:,} rows) already scored in {self.h5_tmp}")
            return
        self.h5 = h5py.File(self.h5_tmp, "w")
        string = h5py.string_dtype()
        for name in self.META:
            dtype = {"pos": np.int64, "tss_dist": np.int64, "flipped": bool}.get(name, string)
            self.h5.create_dataset(name, (0,), maxshape=(None,), dtype=dtype, chunks=True)
        for name in STATS:
            self.h5.create_dataset(name, (0, len(targets)), maxshape=(None, len(targets)), dtype=self.dtype,
                                   chunks=(max(1, 65536 // max(1, len(targets))), len(targets)))
        self.h5.create_dataset("done", (0,), maxshape=(None,), dtype=string, chunks=True)
        self.h5.create_dataset("target_index", data=np.array([t[0] for t in targets], dtype=np.int64))
        self.h5.create_dataset("target_ids", data=np.array([t[1] for t in targets], dtype="S"))
        self.h5.create_dataset("target_labels", data=np.array([t[2] for t in targets], dtype="S"))
        self.h5.attrs.update(attrs, rows=0, windows=0, tsv_bytes=0, inputs=inputs)
        self.tsv = open(self.tsv_tmp, "w")
        self.tsv.write("snp\tchrom\tpos\tref\talt\tflipped\tgene\ttss_dist\ttarget_index\ttarget_id\t"
                       + "\t".join(STATS) + "\n")
        self.tsv.flush()
        self.h5.attrs["tsv_bytes"] = self.tsv.tell()

    def add(self, key: str, meta: dict, stats) -> None:
        """One window's rows: ``meta[name]`` lists of length P, ``stats`` ``(P, len(STATS), targets)``."""
        n = len(meta["snp"])
        if n:
            heads = ["\t".join(str(meta[name][i]) for name in self.META) for i in range(n)]
            labels = [f"{index}\t{tid}" for index, tid, _ in self.targets]
            values = np.asarray(stats, dtype=np.float64).transpose(0, 2, 1).reshape(n * len(labels), len(STATS))
            text = io.StringIO()
            np.savetxt(text, values, fmt="%.6g", delimiter="\t")
            rows = text.getvalue().splitlines()
            t = len(labels)
            self.tsv.write("".join(f"{heads[r // t]}\t{labels[r % t]}\t{row}\n" for r, row in enumerate(rows)))
            self.tsv.flush()
            rows = int(self.h5.attrs["rows"])
            for name in self.META:
                ds = self.h5[name]
                ds.resize(rows + n, axis=0)
                ds[rows:] = np.asarray(meta[name], dtype=bool if name == "flipped" else None)
            for s, name in enumerate(STATS):
                ds = self.h5[name]
                ds.resize(rows + n, axis=0)
                ds[rows:] = stats[:, s, :].astype(self.dtype)
            self.h5.attrs["rows"] = rows + n
        done = self.h5["done"]
        windows = int(self.h5.attrs["windows"])
        done.resize(windows + 1, axis=0)
        done[windows] = key
        self.h5.attrs.update(windows=windows + 1, tsv_bytes=self.tsv.tell())
        self.h5.flush()
        self.done.add(key)

    def close(self, counts: dict) -> tuple[str, str]:
        self.h5.attrs.update({f"count_{k}": v for k, v in counts.items()})
        self.h5.close()
        self.tsv.close()
        os.replace(self.h5_tmp, self.h5_path)
        os.replace(self.tsv_tmp, self.tsv_path)
        return self.h5_path, self.tsv_path

    def abort(self) -> None:
        """Close, keeping the partial files for --restart."""
        try:
            self.h5.close()
        finally:
            self.tsv.close()


def _resumable(out_dir) -> bool:
    return all(os.path.exists(os.path.join(str(out_dir), n + PARTIAL)) for n in (H5_NAME, TSV_NAME))


def _check_restart_inputs(out_dir, inputs: dict) -> None:
    """On --restart: refuse when a file the interrupted run read (``{what: path}``) changed since.

    The interrupted run saved :func:`files.fingerprint` of each in the partial sed.h5's ``inputs``
    attribute (JSON): size, mtime and a SHA-256 of the first and last MiB and 16 sampled blocks.
    """
    import json

    import h5py

    from basenji_tk import files

    h5_tmp = os.path.join(str(out_dir), H5_NAME + PARTIAL)
    try:
        with h5py.File(h5_tmp, "r") as h5:
            saved = h5.attrs.get("inputs")
    except OSError as err:
        raise InputError(f"{h5_tmp}: cannot reopen the interrupted run ({err}); run without --restart") from None
    if saved is None:
        raise InputError(f"{h5_tmp}: the interrupted run saved no fingerprints of its inputs, so --restart cannot "
                         "tell whether they changed; run without --restart")
    saved = json.loads(saved)
    for what, path in inputs.items():
        before = saved.get(what)
        if before is None or os.path.abspath(str(path)) != before.get("path"):
            raise InputError(f"{path}: --restart with a different {what} (the interrupted run read "
                             f"{(before or {}).get('path')}); run without --restart")
        files.check_unchanged(before, path, what)


def score_variants(model_dir, vcf, genes_path, out_dir, fasta=None, rc: bool = False, shifts=(0,), targets=None,
                   batch_size: int = 8, restart: bool = False, float32: bool = False, max_indel: int = 32,
                   model_file=None, quiet: bool = False, naive: bool = False, force: bool = False) -> dict:
    """``sed.py``: score every variant of ``vcf`` near the genes of ``genes_path``; returns counts.

    A finished ``out_dir`` (sed.h5 or sed.tsv) is kept unless ``force``; an interrupted one is
    continued with ``restart`` (its inputs must be unchanged) or replaced with ``force``."""
    from basenji_tk import files
    from basenji_tk.analysis.trained import folder_genome, model_path_of

    if int(batch_size) < 1:
        raise InputError(f"--batch_size: expected a positive number, got {batch_size}")
    if int(max_indel) < 0:
        raise InputError(f"--max_indel: expected 0 or more, got {max_indel}")
    for path, what in ((vcf, "VCF"), (genes_path, "genes")):
        if not os.path.isfile(str(path)):
            raise InputError(f"{path}: no such {what} file")
    model_path = model_path_of(model_dir, model_file)
    stats, stats_path = None, None
    with files.claim(out_dir):
        resume = restart and _resumable(out_dir)
        if not resume:
            files.refuse_overwrite(out_dir, [H5_NAME, TSV_NAME], force, restart_hint=_resumable(out_dir))
            if _resumable(out_dir) and not force:
                raise InputError(f"{out_dir}: holds an interrupted run ({H5_NAME}{PARTIAL}); use --restart to continue "
                                 "it or --force to start again")
            if restart:
                log.info(f"--restart: no interrupted run in {out_dir}; starting from the beginning")
        genome = folder_genome(model_dir, fasta)
        inputs = {"VCF": vcf, "genes file": genes_path, "FASTA": genome.path, "model file": model_path}
        if resume:
            _check_restart_inputs(out_dir, inputs)
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
    from basenji_tk.analysis.predict import bin_offset
    from basenji_tk.analysis.trained import TrainedModel

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

    tm = TrainedModel.load(model_dir, model_path)
    details, chosen = tm.track_layout("sed.py"), tm.select_targets(targets)
    seq_length, num_bins, pool_width = details["seq_length"], details["num_bins"], details["pool_width"]
    model = tm.predictor(rc, shifts)
    index = np.array([c[0] for c in chosen])
    windows = gene_windows(genes, variants, seq_length, num_bins, pool_width,
                           bin_offset(seq_length, num_bins, pool_width), genome.sizes, counts)
    if not windows:
        raise InputError(f"{genes_path}: no gene has a TSS inside the model's predicted bins")

    attrs = dict(model=os.path.abspath(model_path), vcf=os.path.abspath(str(vcf)),
                 genes=os.path.abspath(str(genes_path)), fasta=os.path.abspath(genome.path), rc=bool(rc),
                 shifts=",".join(str(s) for s in shifts), targets=",".join(c[1] for c in chosen),
                 seq_length=seq_length, pool_width=pool_width, max_indel=int(max_indel))
    writer = SedWriter(out_dir, chosen, float32, attrs, restart, inputs=json.dumps(prints))
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
            out = next(iter(tm.outputs))
            score_windows(lambda x: np.asarray(model.predict_on_batch(x)[out], np.float32), genome, todo, variants,
                          seq_length, max_indel,
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
