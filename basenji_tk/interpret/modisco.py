"""Motifs from attributions: bpAI-TAC seqlets, TF-MoDISco (modisco-lite) and TOMTOM names.

:func:`discover_motifs` reads an ``attributions.h5`` (see :func:`read_attributions`), writes
the seqlets of the bpAI-TAC rule (:mod:`.seqlets`), runs ``modiscolite.tfmodisco.TFMoDISco``
on the one-hot sequences and hypothetical contributions, saves its HDF5 and HTML report,
writes the patterns as MEME motifs (probability matrices trimmed by modisco's own rule:
the positions from the first to the last whose summed |contribution| reaches
``trim_threshold`` of the pattern's largest) and names them by TOMTOM against a motif
database (:func:`basenji_tk.interpret.motifmatch.tomtom`).

``matches.tsv`` gives each pattern's information content (bits summed over its trimmed
positions) beside its match: TOMTOM's Pearson-like column score ignores how far a column
is from uniform, so a weak pattern can get a small q-value. On the demo model's CTCF peaks a
1.7-bit AT-rich negative pattern matched a CTCF matrix at q 7e-8. So a pattern is named
(``significant``) only when its best q is below ``q`` and it is not nearly flat (``flat``: under
:data:`~basenji_tk.interpret.motifmatch.FLAT_BITS` bits per position on average, the bound TOMTOM
warns at); that pattern's 0.14 bits per position leave it unnamed.
"""

from __future__ import annotations

import logging
import os
import shutil

import numpy as np

from basenji_tk import files
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

# modisco-lite's own defaults for the parameters people tune (TFMoDISco's signature).
MODISCO_DEFAULTS = {
    "sliding_window_size": 21,
    "flank_size": 10,
    "max_seqlets_per_metacluster": 20000,
    "target_seqlet_fdr": 0.2,
    "min_metacluster_size": 100,
    "final_min_cluster_size": 20,
    "n_leiden_runs": 50,
}
# Below this many sequences the two minimums left at their defaults shrink in proportion
# (modisco's defaults suit thousands of peaks: 100 seqlets for a metacluster, 20 for a motif).
FULL_SIZE = 1000
FLOORS = {"min_metacluster_size": 20, "final_min_cluster_size": 10}
TRIM_THRESHOLD = 0.3  # modisco-lite's report trims the same way
OUTPUTS = ["seqlets.tsv", "modisco.h5", "report", "motifs.meme", "matches.tsv", "motifs.png"]


def read_attributions(path, window: int | None = None, need_hypothetical: bool = True) -> dict:
    """The arrays of an attributions file, optionally only the central ``window`` bp.

    Returns ``one_hot`` (N, W, 4) float32, ``attributions`` (N, W, 4) (the observed base's
    contribution; ``one_hot * hypothetical`` when the file has none), ``hypothetical`` (or
    None), ``offset`` (first position kept), the per-sequence ``chrom``, ``start``, ``name``
    when present, and the file's attrs. Raises :class:`InputError` naming ``path`` for a file
    that is not HDF5, is empty, lacks a dataset, or whose arrays disagree in shape.
    """
    import h5py

    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file (expected an attributions.h5 from attribute.py)")
    try:
        h5 = h5py.File(path, "r")
    except OSError:
        raise InputError(f"{path}: not an HDF5 file (expected an attributions.h5 from attribute.py)") from None
    with h5:
        if "one_hot" not in h5:
            raise InputError(f"{path}: no 'one_hot' dataset (an empty or unfinished attributions file)")
        oh = h5["one_hot"]
        if oh.ndim != 3 or oh.shape[2] != 4:
            raise InputError(f"{path}: 'one_hot' has shape {oh.shape}, expected (N, L, 4)")
        n, length = oh.shape[:2]
        if n == 0 or length == 0:
            raise InputError(f"{path}: holds no sequences (one_hot has shape {oh.shape})")
        if need_hypothetical and "hypothetical" not in h5:
            raise InputError(f"{path}: no 'hypothetical' dataset (TF-MoDISco needs the hypothetical contributions)")
        if "hypothetical" not in h5 and "attributions" not in h5:
            raise InputError(f"{path}: neither 'attributions' nor 'hypothetical' is there")
        for key in ("attributions", "hypothetical"):
            if key in h5 and h5[key].shape != oh.shape:
                raise InputError(f"{path}: '{key}' has shape {h5[key].shape} but 'one_hot' has {oh.shape}")
        offset, stop = 0, length
        if window is not None:
            if not 1 <= int(window) <= length:
                raise InputError(f"--window: {window} bp, but the sequences of {path} are {length} bp")
            offset = (length - int(window)) // 2
            stop = offset + int(window)
        cut = np.s_[:, offset:stop]
        out = {"one_hot": oh[cut].astype(np.float32), "offset": offset, "attrs": dict(h5.attrs), "path": path}
        out["hypothetical"] = h5["hypothetical"][cut].astype(np.float32) if "hypothetical" in h5 else None
        if "attributions" in h5:
            out["attributions"] = h5["attributions"][cut].astype(np.float32)
        else:
            out["attributions"] = out["one_hot"] * out["hypothetical"]
        for key in ("chrom", "name", "start"):
            if key in h5 and len(h5[key]) == n:
                values = h5[key][:]
                out[key] = [v.decode() if isinstance(v, bytes) else v for v in values] if key != "start" else values
    for key in ("attributions", "hypothetical"):
        if out[key] is not None and not np.isfinite(out[key]).all():
            raise InputError(f"{path}: '{key}' holds NaN or infinite values")
    return out


def modisco_params(n_sequences: int, **given) -> dict:
    """TFMoDISco keyword arguments: modisco's defaults, the ``given`` ones (None: default), and
    with fewer than ``FULL_SIZE`` sequences the two minimums not given scaled down (logged)."""
    params = dict(MODISCO_DEFAULTS)
    unknown = set(given) - set(params)
    if unknown:
        raise TypeError(f"unknown modisco parameters: {sorted(unknown)}")
    params.update({k: v for k, v in given.items() if v is not None})
    if n_sequences < FULL_SIZE:
        scaled = {}
        for key, floor in FLOORS.items():
            if given.get(key) is None:
                value = max(floor, round(MODISCO_DEFAULTS[key] * n_sequences / FULL_SIZE))
                if value < params[key]:
                    scaled[key] = value
        if scaled:
            params.update(scaled)
            log.info("%d sequences (fewer than %d): %s scaled down from modisco's defaults", n_sequences,
                     FULL_SIZE, ", ".join(f"{k} {MODISCO_DEFAULTS[k]} -> {v}" for k, v in scaled.items()))
    for key in ("sliding_window_size", "max_seqlets_per_metacluster", "min_metacluster_size",
                "final_min_cluster_size", "n_leiden_runs"):
        if int(params[key]) < 1:
            raise InputError(f"--{key}: expected >= 1, got {params[key]}")
    if int(params["flank_size"]) < 0 or not 0 < float(params["target_seqlet_fdr"]) < 1:
        raise InputError("expected --flank_size >= 0 and 0 < --target_seqlet_fdr < 1")
    return params


def run_modisco(one_hot, hypothetical, params: dict):
    """(pos_patterns, neg_patterns) of ``modiscolite.tfmodisco.TFMoDISco`` (either may be None)."""
    import modiscolite

    width = int(params["sliding_window_size"]) + 2 * int(params["flank_size"])
    if width > one_hot.shape[1]:
        raise InputError(f"--sliding_window_size + 2 x --flank_size: {width} bp is longer than the "
                         f"{one_hot.shape[1]}-bp sequences")
    return modiscolite.tfmodisco.TFMoDISco(one_hot=np.asarray(one_hot, np.float32),
                                           hypothetical_contribs=np.asarray(hypothetical, np.float32), **params)


def trim_span(cwm, trim_threshold: float = TRIM_THRESHOLD) -> tuple[int, int]:
    """modisco's trim: first to last position whose summed |contribution| >= threshold x max."""
    score = np.abs(np.asarray(cwm)).sum(axis=1)
    keep = np.flatnonzero(score >= trim_threshold * score.max())
    return int(keep[0]), int(keep[-1]) + 1


def read_patterns(modisco_h5, trim_threshold: float = TRIM_THRESHOLD) -> list[dict]:
    """The patterns of a modisco-lite HDF5, positive then negative: ``name``
    ('pos_patterns.pattern_0'), ``n_seqlets``, trimmed ``ppm`` and ``cwm``."""
    import h5py

    out = []
    with h5py.File(modisco_h5, "r") as h5:
        for group in ("pos_patterns", "neg_patterns"):
            if group not in h5:
                continue
            for key in sorted(h5[group], key=lambda k: int(k.split("_")[-1])):
                g = h5[group][key]
                cwm = np.asarray(g["contrib_scores"][:])
                a, b = trim_span(cwm, trim_threshold)
                ppm = np.asarray(g["sequence"][:])[a:b]
                ppm = (ppm + 1e-6) / (ppm + 1e-6).sum(axis=1, keepdims=True)
                out.append({"name": f"{group}.{key}", "n_seqlets": int(g["seqlets"]["n_seqlets"][0]),
                            "ppm": ppm, "cwm": cwm[a:b]})
    return out


def _seqlet_table(data: dict, found):
    """The seqlets table with genome coordinates where the file has them."""
    table = found.table.copy()
    table["start"] += data["offset"]
    table["end"] += data["offset"]
    if "chrom" in data and "start" in data:
        rows = table["sequence"].to_numpy()
        table.insert(1, "chrom", [data["chrom"][i] for i in rows])
        w0 = np.asarray(data["start"])[rows]
        table.insert(2, "genome_start", w0 + table["start"].to_numpy())
        table.insert(3, "genome_end", w0 + table["end"].to_numpy())
    if "name" in data:
        table.insert(1, "name", [data["name"][i] for i in table["sequence"]])
    return table


def describe(data: dict, short: bool = False) -> str:
    """'PATH (METHOD attributions)': names the file and its method (a generated set says so there)."""
    method = data["attrs"].get("method", "")
    method = method.decode() if isinstance(method, bytes) else str(method)
    path = os.path.basename(data["path"]) if short else data["path"]
    return f"{path} ({method} attributions)" if method else str(path)


def _write_tsv(table, path, comment: str = "") -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        if comment:
            f.write(f"# {comment}\n")
        table.to_csv(f, sep="\t", index=False, float_format="%.6g")
    os.replace(tmp, path)


def match_patterns(patterns: list[dict], database, q: float = 0.05):
    """(table, queries, hits): one row per pattern with its best TOMTOM match in ``database`` (a
    list of Motifs), the patterns as Motifs, and TOMTOM's full table (None without patterns)."""
    import pandas as pd

    from basenji_tk.interpret.motifmatch import FLAT_BITS, tomtom
    from basenji_tk.io.meme import Motif

    queries = [Motif(name=p["name"], pwm=p["ppm"], nsites=p["n_seqlets"]) for p in patterns]
    hits = tomtom(queries, database) if queries else None
    rows = []
    for p, m in zip(patterns, queries):
        row = {"pattern": p["name"], "n_seqlets": p["n_seqlets"], "width": m.width, "consensus": m.consensus,
               "information": float(m.information().sum()),
               "match": "", "tf": "", "p_value": np.nan, "e_value": np.nan, "q_value": np.nan,
               "orientation": "", "offset": np.nan, "significant": False,
               "flat": bool(m.information().mean() < FLAT_BITS)}
        mine = hits[hits["query"] == p["name"]] if hits is not None else []
        if len(mine):
            best = mine.sort_values("p_value", kind="stable").iloc[0]
            row.update(match=best["target"], tf=best["target_alt"], p_value=best["p_value"],
                       e_value=best["e_value"], q_value=best["q_value"], orientation=best["orientation"],
                       offset=best["offset"], significant=bool(best["q_value"] < q) and not row["flat"])
        rows.append(row)
    return pd.DataFrame(rows, columns=["pattern", "n_seqlets", "width", "consensus", "information", "match", "tf",
                                       "p_value",
                                       "e_value", "q_value", "orientation", "offset", "significant", "flat"]), queries, hits


def _write_report(modisco_h5: str, out_dir: str, db_meme: str, trim_threshold: float) -> None:
    """modisco-lite's HTML report with logos (TOMTOM through memelite: ttl=True) into out_dir/report."""
    from modiscolite.report import report_motifs

    final = os.path.join(out_dir, "report")
    tmp = f"{final}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    report_motifs(modisco_h5, tmp, img_path_suffix="./", meme_motif_db=db_meme, is_writing_tomtom_matrix=False,
                  top_n_matches=3, trim_threshold=trim_threshold, ttl=True)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def discover_motifs(attributions_h5, out_dir, db: str = "jaspar", window: int | None = None,
                    seqlets_only: bool = False, z: float = 1.96, trim_threshold: float = TRIM_THRESHOLD,
                    q: float = 0.05, report: bool = True, force: bool = False, figure: bool = True,
                    **modisco) -> dict:
    """Seqlets, TF-MoDISco patterns and their names for one attributions file (module text).

    Writes into ``out_dir``: ``seqlets.tsv`` and, unless ``seqlets_only``, ``modisco.h5``,
    ``report/`` (modisco-lite's motifs.html and logos), ``motifs.meme``, ``matches.tsv`` and
    ``motifs.png`` (not with ``figure=False``). ``modisco`` holds TFMoDISco parameters
    (:data:`MODISCO_DEFAULTS`).
    Returns a summary dict (``matches``: the matches table).
    """
    from basenji_tk.interpret.seqlets import find_seqlets

    data = read_attributions(attributions_h5, window, need_hypothetical=not seqlets_only)
    n = len(data["one_hot"])
    params = None if seqlets_only else modisco_params(n, **modisco)
    database = None
    if not seqlets_only:
        from basenji_tk.io.meme import motif_database

        database = motif_database(db)
        if not database:
            raise InputError(f"--db: {db} holds no motifs")
    out_dir = str(out_dir)
    with files.claim(out_dir):
        files.refuse_overwrite(out_dir, OUTPUTS if not seqlets_only else ["seqlets.tsv"], force)
        for name in OUTPUTS if force else ():  # no stale output of an earlier run stays beside the new ones
            old = os.path.join(out_dir, name)
            if os.path.isdir(old):
                shutil.rmtree(old)
            elif os.path.exists(old):
                os.remove(old)
        found = find_seqlets(data["attributions"], z=z)
        table = _seqlet_table(data, found)
        _write_tsv(table, os.path.join(out_dir, "seqlets.tsv"),
                   f"bpAI-TAC seqlets of {describe(data)}: |attribution| > {z} x SD ({found.sd:.4g}) = "
                   f"{found.threshold:.4g}, >= 4 significant bases, single-base gaps")
        summary = {"sequences": n, "seqlets": len(table), "threshold": found.threshold, "window": window}
        log.info("%d seqlets in %d sequences (|attribution| > %.4g)", len(table), n, found.threshold)
        if seqlets_only:
            return summary
        summary.update(_modisco_outputs(data, out_dir, database, db, params, trim_threshold, q, report, figure))
    return summary


def _modisco_outputs(data, out_dir, database, db, params, trim_threshold, q, report, figure=True) -> dict:
    import modiscolite

    from basenji_tk.interpret.logos import match_figure
    from basenji_tk.interpret.motifmatch import match_rows
    from basenji_tk.io.meme import write_meme

    log.info("TF-MoDISco on %d sequences of %d bp: %s", len(data["one_hot"]), data["one_hot"].shape[1],
             ", ".join(f"{k}={v}" for k, v in params.items()))
    pos, neg = run_modisco(data["one_hot"], data["hypothetical"], params)
    h5_path = os.path.join(out_dir, "modisco.h5")
    tmp = f"{h5_path}.tmp"
    modiscolite.io.save_hdf5(tmp, pos, neg, int(params["sliding_window_size"]))
    os.replace(tmp, h5_path)
    patterns = read_patterns(h5_path, trim_threshold)
    matches, motifs, hits = match_patterns(patterns, database, q)
    write_meme(motifs, os.path.join(out_dir, "motifs.meme"))
    _write_tsv(matches, os.path.join(out_dir, "matches.tsv"),
               f"TF-MoDISco patterns of {describe(data)} and their best TOMTOM match in {db}")
    if report and patterns:
        db_meme = write_meme(database, os.path.join(out_dir, ".database.meme"))  # as parsed here, for memelite
        try:
            _write_report(h5_path, out_dir, db_meme, trim_threshold)
        finally:
            os.remove(db_meme)
    if patterns and figure:
        rows = match_rows(hits, motifs, database, q)
        for row, p in zip(rows, patterns):
            row.update(contribution=p["cwm"], label=f"{p['name']}: {p['n_seqlets']} seqlets (contribution)")
        title = f"TF-MoDISco patterns of {describe(data, short=True)}\nbest matches in {os.path.basename(str(db))}"
        match_figure(rows, os.path.join(out_dir, "motifs.png"), q=q, title=title)
    return {"patterns": len(patterns), "matches": matches, "params": params}
