"""The runs behind ``tomtom.py`` and ``scan_motifs.py``: files in, tables and figures out."""

from __future__ import annotations

import logging
import math
import os
import time

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.interpret.motifmatch import _bh_of_smallest, match_rows, scan, tomtom
from basenji_tk.io.meme import motif_database, select

log = logging.getLogger("basenji_tk")

TOMTOM_OUTPUTS = ["tomtom.tsv", "matches.png"]
SCAN_OUTPUTS = ["hits.tsv", "hits.bed"]
SCAN_CELLS = 1 << 24  # padded bases per FIMO call (16 Mb, 64 MB of one-hot)


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def tomtom_files(query, db: str, out_dir, q: float = 0.05, max_p: float | None = None, top: int | None = 10,
                 trim: float = 0.0, plots: bool = True, force: bool = False) -> dict:
    """Match the motifs of ``query`` (a MEME file) against ``db`` (a MEME file or ``jaspar[...]``):
    ``tomtom.tsv`` (the pairs kept by ``max_p`` and ``top``) and ``matches.png`` (each query over
    its best match with q <= ``q``)."""
    if not 0 < q <= 1 or (max_p is not None and not 0 < max_p <= 1) or (top is not None and top < 1):
        raise InputError("expected 0 < -q <= 1, 0 < --max_p <= 1 and --top >= 1")
    queries = motif_database(query)
    if trim > 0:
        queries = [m.trimmed(trim) for m in queries]
    database = motif_database(db)
    with files.claim(out_dir):
        files.refuse_overwrite(out_dir, TOMTOM_OUTPUTS if plots else TOMTOM_OUTPUTS[:1], force)
        t0 = time.perf_counter()
        table = tomtom(queries, database)
        seconds = time.perf_counter() - t0
        kept = table
        if top is not None:
            kept = kept[kept["rank"] <= top]
        if max_p is not None:
            kept = kept[kept["p_value"] <= max_p]
        tsv = os.path.join(str(out_dir), "tomtom.tsv")
        _write_atomic(tsv, kept.to_csv(sep="\t", index=False, float_format="%.4g"))
        rows = match_rows(table, queries, database, q)
        if plots:
            from basenji_tk.interpret.logos import match_figure

            match_figure(rows, os.path.join(str(out_dir), "matches.png"), q=q,
                         title=f"{os.path.basename(str(query))} against {os.path.basename(str(db))}")
    best = [(r["query"].name, r["target"].label if r["target"] is not None else None, r["q_value"]) for r in rows]
    return {"queries": len(queries), "targets": len(database), "pairs": len(kept), "seconds": seconds,
            "matched": sum(b[1] is not None for b in best), "best": best}


def _regions(bed, genome, motifs):
    from basenji_tk.interpret.sites import read_sites

    sites = read_sites(bed, genome)
    widest = max(motifs, key=lambda m: m.width)
    for s in sites:
        if s.end - s.start < widest.width:
            raise InputError(f"{bed}: region {s.name} ({s.chrom}:{s.start}-{s.end}, {s.end - s.start} bp) is shorter "
                             f"than motif {widest.name} ({widest.width} bp)")
    return sites


def scan_files(motifs_path, bed, fasta, out_dir, names=None, threshold: float = 1e-4, force: bool = False) -> dict:
    """FIMO hits of the motifs of ``motifs_path`` (only ``names`` when given) in the regions of
    ``bed``: ``hits.tsv`` (genome coordinates, p and q values, the matched bases) and ``hits.bed``."""
    import pandas as pd

    from basenji_tk.data.dna import decode, one_hot, reverse_complement_str
    from basenji_tk.io.genome import Genome

    if not 0 < threshold <= 1:
        raise InputError(f"--threshold {threshold}: expected a p-value in (0, 1]")
    motifs = motif_database(motifs_path)
    if names:
        motifs = select(motifs, names, str(motifs_path), jaspar=str(motifs_path).lower().startswith("jaspar"))
    genome = Genome(fasta)
    sites = _regions(bed, genome, motifs)
    with files.claim(out_dir):
        files.refuse_overwrite(out_dir, SCAN_OUTPUTS, force)
        t0 = time.perf_counter()
        lengths = np.array([s.end - s.start for s in sites], dtype=np.int64)
        order = np.argsort(lengths, kind="stable")
        parts, done = [], 0
        while done < len(order):  # batches of similar lengths, padded to the longest of each
            stop = done + 1
            while stop < len(order) and lengths[order[stop]] * (stop + 1 - done) <= SCAN_CELLS:
                stop += 1
            idx = order[done:stop]
            width = int(lengths[idx].max())
            x = np.zeros((len(idx), width, 4), dtype=np.uint8)
            for k, i in enumerate(idx):
                x[k, :lengths[i]] = one_hot(genome.fetch(sites[i].chrom, sites[i].start, sites[i].end))
            hits = scan(motifs, x, threshold=threshold, lengths=lengths[idx])
            hits["matched"] = [decode(x[s, a:b]) for s, a, b in zip(hits["sequence"], hits["start"], hits["end"])]
            hits["sequence"] = idx[hits["sequence"].to_numpy()] if len(hits) else hits["sequence"]
            parts.append(hits)
            done = stop
        seconds = time.perf_counter() - t0
        hits = pd.concat(parts, ignore_index=True)
        for m in motifs:  # q-values over every window of every region (scan gave them per batch)
            rows = (hits["motif"] == m.name).to_numpy()
            tested = 2 * int(np.clip(lengths - m.width + 1, 0, None).sum())
            hits.loc[rows, "q_value"] = _bh_of_smallest(hits.loc[rows, "p_value"].to_numpy(), tested)
        seq = hits["sequence"].to_numpy().astype(np.int64)
        starts = np.array([sites[i].start for i in seq], dtype=np.int64)
        minus = (hits["strand"] == "-").to_numpy()
        table = pd.DataFrame({
            "chrom": [sites[i].chrom for i in seq], "start": starts + hits["start"].to_numpy(),
            "end": starts + hits["end"].to_numpy(), "region": [sites[i].name for i in seq],
            "motif": hits["motif"], "motif_alt": hits["motif_alt"], "strand": hits["strand"],
            "score": hits["score"], "p_value": hits["p_value"], "q_value": hits["q_value"],
            "matched": [reverse_complement_str(s) if mi else s for s, mi in zip(hits["matched"], minus)],
        }).sort_values(["chrom", "start", "motif", "strand"], kind="stable")
        out = str(out_dir)
        _write_atomic(os.path.join(out, "hits.tsv"), table.to_csv(sep="\t", index=False, float_format="%.4g"))
        bed_score = [min(1000, int(round(-10 * math.log10(max(p, 1e-300))))) for p in table["p_value"]]
        lines = [f"{c}\t{s}\t{e}\t{m}\t{sc}\t{st}\n" for c, s, e, m, sc, st in
                 zip(table["chrom"], table["start"], table["end"], table["motif"], bed_score, table["strand"])]
        _write_atomic(os.path.join(out, "hits.bed"), "".join(lines))
    bp = int(lengths.sum())
    return {"motifs": len(motifs), "regions": len(sites), "bp": bp, "hits": len(table),
            "significant": int((table["q_value"] <= 0.05).sum()), "seconds": seconds,
            "bp_per_second": bp / seconds if seconds > 0 else float("inf")}
