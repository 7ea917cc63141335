"""Regions datasets: windows centred on BED regions or narrowPeak summits, with GC-matched
negatives (``make_regions.py``).

:func:`make_regions` checks the inputs, reads the regions (:func:`basenji_tk.io.peaks.read_regions`),
plans the records (:func:`basenji_tk.data.regions_plan.plan_regions`: windows, drops, splits and
negatives from :mod:`basenji_tk.data.negatives`; the steps are in that module's docstring) and
writes the folder: each window's sequence, then either the binned targets of a targets table,
the features of a plan (:mod:`basenji_tk.data.features`), or only a ``--label`` of peaks versus
negatives.
"""

from __future__ import annotations

import os

import numpy as np

from basenji_tk.data import dna
from basenji_tk.io import genome as gn
from basenji_tk.io.peaks import read_regions
from basenji_tk.data import targets as tg
from basenji_tk.data.regions_plan import Options, Plan, check_options, plan_regions
from basenji_tk.errors import InputError


# ----------------------------------------------------------------------------- the builder
def _sequences(genome_path, chroms, plan: Plan, L: int):
    """Each record's codes, from the plan's memory or a FASTA handle of its own."""
    if plan.codes is not None:
        yield from plan.codes
        return
    g = gn.Genome(genome_path)
    try:
        for c, s in zip(plan.chrom.tolist(), plan.start.tolist()):
            yield dna.encode(g.fetch(chroms[c], s, s + L))
    finally:
        g.close()


def make_regions(fasta, regions_path, out_dir, options: Options | None = None, targets=None,
                 plan_path=None) -> dict:
    """Build a regions dataset folder ``out_dir`` (kind ``regions``) and return its statistics.

    Features: ``sequence`` (codes of the window), then either the label ``target`` of the targets
    table ``targets`` binned at ``options.pool_width`` (as ``make_targets``) or the features of
    the plan ``plan_path`` (:mod:`basenji_tk.data.features`), and with ``options.label`` a binary label
    ``(1,)`` that is 1 for positives and 0 for negatives. Inputs are checked first; then
    ``out_dir`` is claimed (:func:`files.claim`) before any work."""
    from basenji_tk.data import features as ft
    from basenji_tk import files

    from basenji_tk.data import records
    o = options or Options()
    check_options(o)
    if targets is not None and plan_path is not None:
        raise InputError("give a targets table (TARGETS) or --features PLAN.json, not both")
    if targets is None and plan_path is None and not o.label:
        raise InputError("nothing to label: give a targets table (TARGETS), --features PLAN.json or --label NAME")
    out_dir = os.path.abspath(str(out_dir))
    if targets is not None:
        if o.seq_length % o.pool_width:
            raise InputError(f"-l {o.seq_length} is not a multiple of -w {o.pool_width}")
        fplan = ft.old_plan(targets, o.pool_width, o.target_dtype)
    elif plan_path is not None:
        fplan = ft.load_plan(plan_path)
    else:  # the sequence and the --label of peaks versus negatives (a Basset-style set)
        fplan = ft.FeaturePlan("(--label only)", True, [])
    fplan.check_window(o.seq_length)
    if o.label and o.label in {g.name for g in fplan.groups} | {"sequence", "index", "weight"}:
        raise InputError(f"--label {o.label}: the name is taken by another feature; choose another")
    genome = gn.Genome(fasta)
    try:
        regions = read_regions(regions_path, genome.sizes, o.fmt)
        with files.claim(out_dir, folder=False):
            if os.path.isdir(out_dir) and os.listdir(out_dir) and not o.force:
                what = "a finished dataset" if os.path.exists(os.path.join(out_dir, records.STATISTICS)) else \
                    "other files"
                raise InputError(f"{out_dir}: holds {what}; use --force to replace it, or choose another -o")
            if os.path.exists(out_dir) and not os.path.isdir(out_dir):
                raise InputError(f"{out_dir}: exists and is not a folder")
            return _make(genome, regions, fplan, out_dir, o, targets, plan_path)
    finally:
        genome.close()
        fplan.close()


def _make(genome, regions, fplan, out_dir, o: Options, targets, plan_path) -> dict:
    from tqdm import tqdm

    from basenji_tk.data import records
    from basenji_tk.files import file_sha256

    L = o.seq_length
    plan = plan_regions(genome, regions, o)
    chroms = plan.chroms
    needed = sorted({chroms[c] for c in set(plan.chrom.tolist())}, key=chroms.index)
    fplan.open(genome.sizes, needed)
    features = fplan.features()
    if not fplan.sequence:  # a regions dataset always holds its windows' sequence
        features.insert(0, records.Feature("sequence", "sequence", (L, 4), "uint8", 1))
    if o.label:
        features.append(records.Feature(o.label, "label", (1,), "float32", label_type="binary",
                                        meta={"positive": "window centred on a region", "negative": "sampled"}))
    windows = [(chroms[c], s, s + L) for c, s in zip(plan.chrom.tolist(), plan.start.tolist())]
    in_order = np.lexsort((plan.start, plan.chrom))  # genome order: each track block is read once
    normalised = fplan.quantile_pass([windows[i] for i in in_order], progress=o.progress)
    back = np.empty_like(in_order)
    back[in_order] = np.arange(len(in_order))
    normalised = {name: x[back] for name, x in normalised.items()}  # (ranks do not depend on the order)
    rest = [g.name for g in fplan.groups if g.name not in normalised]
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(o).items()
                if k not in ("force", "progress", "cache_mb")}
    inputs = {"genome": genome.path, "regions": regions.path}
    inputs.update({t.identifier if targets else f"{g.name}/{t.identifier}": t.file
                   for g in fplan.groups for t in g.targets})
    info = {
        "settings": settings,
        "regions": plan.info,
        "genome": {"path": os.path.abspath(genome.path), "chrom_sizes": {c: genome.sizes[c] for c in needed}},
        "files": {k: {"path": os.path.abspath(p), "sha256": file_sha256(p)} for k, p in inputs.items()},
    }
    if plan_path is not None:
        with open(plan_path) as fh:
            info["plan"] = {"path": os.path.abspath(plan_path), "text": fh.read()}
    with records.DatasetWriter(out_dir, features, kind="regions", records_per_file=o.records_per_file) as w:
        from basenji_tk.data.dataset import background

        seqs = background(_sequences(genome.path, chroms, plan, L))
        one = np.ones(1, np.float32)
        zero = np.zeros(1, np.float32)
        per_record = sum(4 * int(np.prod(f.shape)) for f in features if f.name in rest)
        ahead = per_record * len(windows) <= o.cache_mb * (1 << 20)
        if ahead:  # tracks read in genome order (random reads of a BigWig cost a block each), kept for writing
            early = [None] * len(windows)
            for k in tqdm(in_order, desc="labels", unit="rec", disable=not o.progress):
                early[k] = fplan.values(*windows[k], rest)
        for k, (chrom, start, end) in enumerate(tqdm(windows, desc="records", unit="rec", disable=not o.progress)):
            values = early[k] if ahead else fplan.values(chrom, start, end, rest)
            if ahead:
                early[k] = None
            for name, stacked in normalised.items():
                values[name] = stacked[k]
            values["sequence"] = next(seqs)
            if o.label:
                values[o.label] = one if plan.label[k] else zero
            w.add(tg.SPLITS[plan.split[k]], values, (chrom, start, end, plan.name[k]))
        info["nonfinite_values"] = fplan.track_counts()
        return w.finish(info)
