"""Which real TF sites carry their TF's motif: FIMO scans around sites, the site-over-control
enrichment that picks a TF's motif, and the choice of the programme TFs of the LABELLED
SEMI-SYNTHETIC context benchmark (:mod:`basenji_tk.interpret.planted_contexts`, whose docstring
gives the criteria). Scans go through :mod:`basenji_tk.interpret.motifmatch` (memelite FIMO and
TOMTOM)."""

from __future__ import annotations

import numpy as np

from basenji_tk.errors import InputError


def one_hot_windows(codes, centres, flank):
    """``(n, 2 * flank + 1, 4)`` uint8 windows of ``codes`` around ``centres`` (N rows all zero)."""
    idx = np.asarray(centres, np.int64)[:, None] + np.arange(-flank, flank + 1)[None]
    w = codes[idx]
    out = np.zeros(w.shape + (4,), np.uint8)
    ok = w < 4
    out[ok, w[ok]] = 1
    return out


def motifs_by_tf(motifs):
    out = {}
    for m in motifs:
        for part in str(m.alt).upper().split("::"):
            out.setdefault(part, []).append(m)
    return out


def motif_hits(motif, one_hot, p_value):
    from basenji_tk.interpret.motifmatch import scan

    table = scan([motif], one_hot, threshold=p_value)
    hit = np.zeros(len(one_hot), bool)
    hit[table["sequence"].to_numpy()] = True
    return hit


def motif_enrichment(tf, starts, motifs, codes, flank=50, shift=5000, p_value=1e-4, cache=None) -> dict:
    """FIMO hits of ``tf``'s motifs within +-``flank`` of its sites against the sites shifted by
    +-``shift`` (control windows off the chromosome are dropped); the most enriched motif wins.

    Returns ``{motif, motif_name, sites, controls, site_hits, control_hits, site_fraction,
    control_fraction, enrichment, raw_ratio, per_motif}``; ``cache`` (a dict) keeps each
    (TF, motif) scan within a call."""
    size = len(codes)
    centres = np.asarray(starts, np.int64)
    centres = centres[(centres - flank >= 0) & (centres + flank < size)]
    ctrl = np.concatenate([centres - shift, centres + shift])
    ctrl = ctrl[(ctrl - flank >= 0) & (ctrl + flank < size)]
    windows = None
    best, per_motif = None, {}
    for m in motifs:
        key = (tf, m.name, flank, shift, p_value)
        if cache is None or key not in cache:
            if windows is None:
                windows = one_hot_windows(codes, np.concatenate([centres, ctrl]), flank)
            hit = motif_hits(m, windows, p_value)
            result = (int(hit[:len(centres)].sum()), int(hit[len(centres):].sum()))
            if cache is not None:
                cache[key] = result
        else:
            result = cache[key]
        hs, hc = result
        ns, nc = len(centres), len(ctrl)
        enr = ((hs + 0.5) / (ns + 1)) / ((hc + 0.5) / (nc + 1))
        raw = float("inf") if hc == 0 and hs > 0 else (hs / ns) / (hc / nc) if hc else 0.0
        row = {"motif": m.name, "motif_name": m.alt, "sites": ns, "controls": nc, "site_hits": hs,
               "control_hits": hc, "site_fraction": hs / max(ns, 1), "control_fraction": hc / max(nc, 1),
               "enrichment": enr, "raw_ratio": raw}
        per_motif[m.name] = round(enr, 4)
        rank = (enr, row["site_fraction"], "::" not in m.alt, m.name)
        if best is None or rank > best[0]:
            best = (rank, row)
    return best[1] | {"per_motif": per_motif}


def motif_bearing(starts, motif, codes, flank=50, p_value=1e-4) -> np.ndarray:
    """``(n,)`` bool: which of ``starts`` have a FIMO hit of ``motif`` (p < ``p_value``, either
    strand) within +-``flank`` bp (the test of :func:`motif_enrichment`; sites too near a
    chromosome end to scan are False)."""
    starts = np.asarray(starts, np.int64)
    ok = (starts - flank >= 0) & (starts + flank < len(codes))
    out = np.zeros(len(starts), bool)
    if ok.any():
        out[ok] = motif_hits(motif, one_hot_windows(codes, starts[ok], flank), p_value)
    return out


def select_programme_tfs(sites, motifs, codes, n=16, min_sites=20, min_enrichment=2.0, flank=50, shift=5000,
                         p_value=1e-4, distinct_q=0.05, exclude=("CTCF",), chosen=None,
                         by_hits=False) -> tuple[list, dict]:
    """The programme TFs (module docstring) -> ``(TF names in the order chosen, selection record)``.

    ``sites``: ``{TF: starts}``; ``motifs``: JASPAR :class:`~basenji_tk.io.meme.Motif` list (alt =
    TF name); ``codes``: the chromosome as ``dna.encode`` codes. ``chosen``: take these TFs as
    given (their statistics are still recorded, no threshold applied). ``by_hits``: rank the
    eligible TFs by the number of their sites that carry the motif (then enrichment) and ask
    ``min_sites`` of those, not of all sites (the ``motif_sites`` design). The record holds every
    candidate's statistics and why each skipped one was skipped."""
    from basenji_tk.interpret.motifmatch import tomtom

    by_tf, cache = motifs_by_tf(motifs), {}
    stats, skipped = {}, {}
    names = list(chosen) if chosen is not None else sorted(sites)
    for tf in names:
        if tf not in sites:
            raise InputError(f"programme TF {tf!r} has no site in the sites BED")
        if tf.upper() not in by_tf:
            if chosen is not None:
                raise InputError(f"programme TF {tf!r} has no JASPAR CORE vertebrate motif of that name")
            skipped[tf] = "no JASPAR motif of that name"
            continue
        if chosen is None and len(sites[tf]) < min_sites:
            skipped[tf] = f"{len(sites[tf])} sites (< {min_sites})"
            continue
        stats[tf] = motif_enrichment(tf, sites[tf], by_tf[tf.upper()], codes, flank, shift, p_value, cache)
    record = {"criteria": {"n": n, "min_sites": min_sites, "min_enrichment": min_enrichment, "flank": flank,
                           "rank": "sites with the motif, then enrichment" if by_hits else "enrichment",
                           "control_shift": shift, "fimo_p": p_value, "distinct_tomtom_q": distinct_q,
                           "exclude": list(exclude), "motifs": "JASPAR2024 CORE vertebrates (pyjaspar)",
                           "enrichment": "((site hits + 0.5) / (sites + 1)) / ((control hits + 0.5) / "
                                         "(controls + 1)); the raw ratio must pass too"}}
    if chosen is not None:
        record |= {"given": True, "tfs": {tf: stats[tf] for tf in names}}
        return names, record
    eligible = [tf for tf, s in stats.items() if tf.upper() not in {x.upper() for x in exclude}
                and s["enrichment"] >= min_enrichment and s["raw_ratio"] >= min_enrichment
                and (not by_hits or s["site_hits"] >= min_sites)]
    for tf in stats:
        if tf not in eligible:
            s = stats[tf]
            skipped[tf] = ("excluded (ubiquitous class)" if tf.upper() in {x.upper() for x in exclude}
                           else f"enrichment {s['enrichment']:.2f} (< {min_enrichment})"
                           if min(s["enrichment"], s["raw_ratio"]) < min_enrichment
                           else f"{s['site_hits']} sites with the motif (< {min_sites})")
    if by_hits:
        eligible.sort(key=lambda t: (-stats[t]["site_hits"], -stats[t]["enrichment"], t))
    else:
        eligible.sort(key=lambda t: (-stats[t]["enrichment"], -stats[t]["site_fraction"], t))
    by_name = {m.name: m for m in motifs}
    blocking = {m.name: f"{x} (excluded)" for x in exclude for m in by_tf.get(x.upper(), [])}
    query = list(dict.fromkeys([stats[t]["motif"] for t in eligible] + list(blocking)))
    similar = set()
    if len(query) > 1:
        table = tomtom([by_name[q] for q in query], [by_name[q] for q in query])
        table = table[(table["query"] != table["target"]) & (table["q_value"] <= distinct_q)]
        similar = {(a, b) for a, b in zip(table["query"], table["target"])}
        similar |= {(b, a) for a, b in similar}
    out = []
    for tf in eligible:
        m = stats[tf]["motif"]
        clash = [owner for mm, owner in blocking.items() if mm == m or (m, mm) in similar]
        if clash:
            skipped[tf] = f"motif {m} TOMTOM-matches {clash[0]}"
            continue
        if len(out) == n:
            skipped[tf] = "enough TFs chosen"
            continue
        out.append(tf)
        blocking[m] = tf
    if len(out) < n:
        raise InputError(f"only {len(out)} TFs pass the programme-TF criteria (asked for {n}): "
                         f"{', '.join(out)}; lower n_programme")
    record |= {"given": False, "tfs": {tf: stats[tf] for tf in out}, "candidates": stats, "skipped": skipped,
               "order": out}
    return out, record
