"""Per-context motifs of a ChromDragoNN pairs model and their activity against TF expression
(the paper's §2.6, §3.4, Fig. 2 and Fig. 3A): ``context_motifs.py``.

For each chosen context (cell type) of a pairs dataset:

1. **Specific bins** (:func:`specific_bins`): the regions accessible in that context and in fewer
   than ``max_fraction`` (0.3) of ALL the dataset's contexts, at most ``n_bins`` (20,000) of them
   drawn with the seed; regions of every genome split are candidates (the paper sampled the
   genome's bins, not a held-out part). Written as ``regions.bed`` (each region's central bin).
2. **Attributions** (:func:`basenji_tk.interpret.attribution_run.attribute_regions`): gradient x
   input of the model's output logit (the paper's "gradient of the logit of the output
   probability ... gated by the observed nucleotides") over the model's whole window, with THAT
   context's expression vector and, for a model that takes the mean accessibility, each region's
   own mean over the fold's training contexts (the paper scored with a model without the mean;
   either is accepted here). ``attributions.h5`` and ``attributions.bw``.
3. **Motifs** (:func:`basenji_tk.interpret.modisco.discover_motifs`, what ``motifs.py`` runs):
   seqlets, TF-MoDISco patterns, ``motifs.meme``, their best TOMTOM match (``matches.tsv``,
   ``motifs.png``, the HTML ``report/``), and ``tomtom.tsv``: every (pattern, database motif)
   pair with q below ``q`` (the candidate TFs of step 5).
4. ``done.json`` last: a context folder with it is finished (``--restart`` skips it).

Then over the contexts (:mod:`basenji_tk.interpret.motif_activity`): ``activity.tsv`` (motifs x
contexts, 0/1; a motif is the TF name of a pattern's best significant match), and
``motif_tf_correlation.tsv`` (Pearson r of each motif's activity with the expression, as the
dataset's context table holds it, of each TF that could bind it) and ``heatmap.png`` (Fig. 3A:
the first ``top`` rows; columns clustered, or ordered by a ``--group`` column of the dataset's
contexts table). A context skipped for want of specific regions is not a column. ``run.json``
records the settings and fingerprints of the model and the dataset, which ``--restart`` checks;
the run writes nothing before every check has passed and at least one context has regions.

Memory: the ``(regions, contexts)`` uint8 label matrix is read whole (chr20's bins x 40 contexts:
tens of MB; ChromDragoNN's genome-wide 60 M bins x 123 contexts would be 7 GB).
"""

from __future__ import annotations

import json
import logging
import os
import shutil

import numpy as np
import pandas as pd

from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.interpret.motif_activity import (heatmap, motif_activity, motif_candidates,  # noqa: F401
                                                 motif_expression_correlation, planted_recall)

log = logging.getLogger("basenji_tk")

RUN = "run.json"
OUTPUTS = [RUN, "activity.tsv", "motif_tf_correlation.tsv", "heatmap.png"]
DONE = "done.json"
SEMI = "SEMI-SYNTHETIC"
# What a restart may change: only what the summary over contexts shows.
FREE = ("top", "label")
FULL = 1000  # sequences: TF-MoDISco's parameters are checked as for a full-size run


# ----------------------------------------------------------------------------- choosing bins
def specific_bins(labels, context_index: int, max_fraction: float = 0.3, n: int = 20000, seed: int = 0) -> np.ndarray:
    """Indices ``(k,)`` (sorted) of the regions accessible in context ``context_index`` and in fewer
    than ``max_fraction`` of all contexts. ``labels``: ``(regions, contexts)`` 0/1. At most ``n``,
    drawn without replacement by ``numpy.random.default_rng([seed, context_index])``."""
    labels = np.asarray(labels) > 0
    if labels.ndim != 2 or not 0 <= int(context_index) < labels.shape[1]:
        raise ValueError(f"labels must be (regions, contexts) and context_index a column, not {labels.shape}, "
                         f"{context_index}")
    candidates = np.flatnonzero(labels[:, context_index] & (labels.mean(axis=1) < max_fraction))
    if len(candidates) > int(n):
        rng = np.random.default_rng([int(seed), int(context_index)])
        candidates = np.sort(rng.choice(candidates, int(n), replace=False))
    return candidates


def region_labels(spec) -> np.ndarray:
    """``(regions, contexts)`` uint8: the labels of every region of a pairs dataset (all splits),
    rows in ``sequences.bed`` order."""
    import tensorflow as tf

    from basenji_tk.data import records
    from basenji_tk.data.pairs_views import LABEL, pairs_info

    n_contexts = len(pairs_info(spec)["contexts"])
    n = sum(int(v) for v in spec.counts.values())
    out = np.zeros((n, n_contexts), dtype=np.uint8)
    keys = {LABEL: tf.io.FixedLenFeature([], tf.string), "index": tf.io.FixedLenFeature([], tf.int64)}
    seen = 0
    for split in records.SPLITS:
        paths = records.split_files(spec.path, split)
        if not paths:
            continue
        ds = tf.data.TFRecordDataset(paths, compression_type=records.COMPRESSION).batch(4096)
        for batch in ds.map(lambda s: tf.io.parse_example(s, keys)).as_numpy_iterator():
            index = batch["index"]
            if len(index) and (index.min() < 0 or index.max() >= n):
                raise InputError(f"{spec.path}: a {split} record has index {int(index.max())}, but statistics.json "
                                 f"counts {n} regions")
            out[index] = np.frombuffer(b"".join(batch[LABEL]), dtype=np.uint8).reshape(len(index), n_contexts)
            seen += len(index)
    if seen != n:
        raise InputError(f"{spec.path}: {seen} region records, but statistics.json counts {n}")
    return out


def read_windows(spec) -> pd.DataFrame:
    """``sequences.bed`` of a dataset: ``chrom``, ``start``, ``end`` (the model window), ``split``."""
    path = os.path.join(spec.path, "sequences.bed")
    if not os.path.exists(path):
        raise InputError(f"{path}: missing (the regions' coordinates)")
    bed = pd.read_csv(path, sep="\t", header=None, dtype={0: str}, usecols=[0, 1, 2, 3])
    bed.columns = ["chrom", "start", "end", "split"]
    return bed


# ----------------------------------------------------------------------------- the model and the dataset
def _check_model(tm, model_dir, spec):
    from basenji_tk.analysis.inputs import CONTEXT_INPUT

    trained = tm.spec.kind if tm.spec is not None else "no dataset"
    if tm.spec is None or tm.spec.kind != "pairs" or tm.spec.view == "regions" or CONTEXT_INPUT not in tm.inputs:
        what = ("a stage-1 (regions view) model: it takes no expression" if tm.spec is not None and
                tm.spec.kind == "pairs" and tm.spec.view == "regions" else f"its training dataset: {trained}; "
                f"inputs: {', '.join(tm.inputs)}")
        raise InputError(f"{model_dir}: not a pairs model ({what}); context_motifs.py explains a model of "
                         f"(sequence, {CONTEXT_INPUT}) pairs trained on a make_pairs.py dataset")
    info = tm.inputs[CONTEXT_INPUT]
    features = list(spec.stats["pairs"]["context_features"])
    if info.names and list(info.names) != features:
        raise InputError(f"{spec.path}: its context table's features ({len(features)}: {', '.join(features[:3])} ...) "
                         f"are not the {len(info.names)} the model's '{CONTEXT_INPUT}' input was trained on")
    if tm.seq_length != int(spec.stats["pairs"]["seq_length"]):
        raise InputError(f"{spec.path}: {spec.stats['pairs']['seq_length']} bp windows, but the model takes "
                         f"{tm.seq_length} bp")


def choose_contexts(spec, tm, contexts=None, split: str = "train") -> list[str]:
    """The contexts to explain: ``contexts`` (names, a list or comma-separated) or those of
    ``split`` (train, valid, test or all) in the model's fold (``train.fold``, default 0)."""
    from basenji_tk.data.pairs_views import fold_splits, pairs_info

    names = list(pairs_info(spec)["contexts"])
    if contexts:
        chosen = [c.strip() for c in contexts.split(",")] if isinstance(contexts, str) else list(contexts)
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise InputError(f"--contexts: {', '.join(unknown)} not a context of {spec.path} "
                             f"(contexts: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''})")
        return list(dict.fromkeys(chosen))
    if split == "all":
        return names
    if split not in ("train", "valid", "test"):
        raise InputError(f"--split: '{split}' (expected train, valid, test or all)")
    splits = fold_splits(spec, model_fold(tm))
    chosen = [n for n in names if splits[n] == split]
    if not chosen:
        raise InputError(f"--split {split}: fold {model_fold(tm)} of {spec.path} has no {split} context")
    return chosen


def model_fold(tm) -> int:
    return int(((tm.params or {}).get("train") or {}).get("fold") or 0)


def context_groups(spec, column: str) -> dict:
    """``{context: value}`` of ``column`` of the contexts table the dataset was built from (its
    path as ``statistics.json`` records it), e.g. a SEMI-SYNTHETIC benchmark's ``lineage``."""
    path = ((spec.stats.get("files") or {}).get("contexts") or {}).get("path")
    if not path or not os.path.exists(path):
        raise InputError(f"--group: the contexts table of {spec.path} ({path or 'not recorded'}) is not there")
    table = pd.read_csv(path, sep="\t", dtype=str, comment="#")
    if column not in table.columns or "context" not in table.columns:
        raise InputError(f"--group: {path} has no column '{column}' (columns: {', '.join(table.columns)})")
    return dict(zip(table["context"].str.strip(), table[column].fillna("").str.strip()))


def expression_table(spec) -> tuple[pd.DataFrame, str]:
    """The dataset's context table as ``(contexts, features)`` and what its values are."""
    from basenji_tk.data.pairs_views import context_table, pairs_info

    info = pairs_info(spec)
    table = pd.DataFrame(context_table(spec), index=list(info["contexts"]), columns=list(info["context_features"]))
    e = info.get("expression") or {}
    log_base = e.get("log", "none")
    what = f"{log_base}(TPM + {e.get('pseudocount', 1):g})" if log_base not in (None, "none") else "expression"
    return table, what


# ----------------------------------------------------------------------------- one context
def _done(folder: str) -> dict | None:
    path = os.path.join(folder, DONE)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        done = json.load(fh)
    needed = ["attributions.h5", "matches.tsv", "tomtom.tsv", "regions.bed"]
    return done if all(os.path.exists(os.path.join(folder, f)) for f in needed) else None


def _read_result(folder: str) -> dict:
    matches = pd.read_csv(os.path.join(folder, "matches.tsv"), sep="\t", comment="#")
    tomtom = pd.read_csv(os.path.join(folder, "tomtom.tsv"), sep="\t", comment="#")
    return {"matches": matches, "tomtom": tomtom}


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _one_context(job: dict, context: str, rows: np.ndarray, folder: str) -> dict:
    """Steps 1-4 of the module text for one context; returns its result (matches, tomtom)."""
    from basenji_tk.analysis.inputs import InputOptions
    from basenji_tk.interpret.attribution_run import attribute_regions
    from basenji_tk.interpret.modisco import discover_motifs
    from basenji_tk.interpret.motifmatch import tomtom
    from basenji_tk.io.meme import read_meme

    os.makedirs(folder, exist_ok=True)
    stale = os.path.join(folder, DONE)
    if os.path.exists(stale):
        os.remove(stale)
    w, flank, bin_length = job["windows"], job["flank"], job["bin_length"]
    starts = w["start"].to_numpy()[rows] + flank
    chroms = w["chrom"].to_numpy()[rows]
    bed = "".join(f"{c}\t{s}\t{s + bin_length}\tregion{i}\n" for c, s, i in zip(chroms, starts, rows))
    bed_path = os.path.join(folder, "regions.bed")
    _write_text(bed_path, bed)
    extra = {"mean_accessibility": job["mean"][rows, None]} if job["takes_mean"] else None
    attribute_regions(job["model_dir"], bed_path, folder, fasta=job["fasta"], method="grad_x_input", logit=None,
                      batch_size=job["batch_size"], plots=False, model_file=job["model_file"],
                      inputs=InputOptions(context=context, data_dir=job["data_dir"]), region_inputs=extra,
                      quiet=True, force=True)
    res = discover_motifs(os.path.join(folder, "attributions.h5"), folder, db=job["db"], q=job["q"],
                          report=job["report"], figure=job["plots"], force=True, **job["modisco"])
    matches = res["matches"]
    if len(matches):
        hits = tomtom(read_meme(os.path.join(folder, "motifs.meme")), job["database"])
        hits = hits[hits["q_value"] < job["q"]]
    else:
        from basenji_tk.interpret.motifmatch import TOMTOM_COLUMNS

        hits = pd.DataFrame(columns=TOMTOM_COLUMNS)
    _write_text(os.path.join(folder, "tomtom.tsv"),
                f"# {job['label'] + ' ' if job['label'] else ''}TOMTOM pairs of {context}'s TF-MoDISco patterns with "
                f"q < {job['q']:g} in {job['db']}\n" + hits.to_csv(sep="\t", index=False, float_format="%.4g"))
    named = matches[matches["significant"]] if len(matches) else matches
    done = {"context": context, "bins": int(len(rows)), "patterns": int(len(matches)),
            "named": sorted(set(named["tf"].astype(str))) if len(named) else [], "seqlets": int(res["seqlets"])}
    _write_text(stale, json.dumps(done, indent=1) + "\n")
    return {"matches": matches, "tomtom": hits, "done": done}


# ----------------------------------------------------------------------------- the run
def _prepare(out_dir: str, settings: dict, prints: dict, restart: bool, force: bool, folders: list) -> None:
    """Refuse a finished run (unless force) or a restart of a different one; remove old outputs with force."""
    path = os.path.join(out_dir, RUN)
    if restart:
        if not os.path.exists(path):
            raise InputError(f"{out_dir}: nothing to restart (no {RUN}); run without --restart")
        with open(path) as fh:
            saved = json.load(fh)
        for key, now in settings.items():
            was = saved.get("settings", {}).get(key)
            if key not in FREE and was != now:
                raise InputError(f"{out_dir}: --restart with different settings: {key} was {json.dumps(was)}, now "
                                 f"{json.dumps(now)} (run without --restart, with --force, to start again)")
        for what, fp in prints.items():
            if what in saved.get("inputs", {}):
                files.check_unchanged(saved["inputs"][what], fp["path"], f"{what} input")
        return
    files.refuse_overwrite(out_dir, OUTPUTS + folders, force, restart_hint=True)
    if force:
        for name in OUTPUTS + folders:
            old = os.path.join(out_dir, name)
            if os.path.isdir(old):
                shutil.rmtree(old)
            elif os.path.exists(old):
                os.remove(old)


def _job(spec, tm, model_dir, data_dir, labels, fasta, batch_size, db, database, q, report, plots, modisco,
         label) -> dict:
    """What every context's run needs: the windows, each region's mean accessibility (for a model
    that takes it), the genome, the motif database and the options."""
    from basenji_tk.data.pairs_views import fold_splits, mean_accessibility, pairs_info

    info = pairs_info(spec)
    if fasta is None:
        given = ((spec.stats.get("files") or {}).get("fasta") or {}).get("path")
        fasta = given if given and os.path.exists(given) else None
    splits = fold_splits(spec, model_fold(tm))
    train_index = np.array([i for i, n in enumerate(info["contexts"]) if splits[n] == "train"], dtype=np.int64)
    takes_mean = "mean_accessibility" in tm.inputs
    if takes_mean:
        log.info("the model takes the mean accessibility: each region gets its own, over the fold's %d training "
                 "contexts (the paper explained a model without it)", len(train_index))
    return {"windows": read_windows(spec), "flank": (int(info["seq_length"]) - int(info["bin_length"])) // 2,
            "bin_length": int(info["bin_length"]), "takes_mean": takes_mean,
            "mean": mean_accessibility(labels, train_index) if takes_mean else None,
            "model_dir": model_dir, "model_file": tm.model_path, "fasta": fasta, "data_dir": data_dir, "batch_size": int(batch_size),
            "db": str(db), "database": database, "q": float(q), "report": report, "plots": plots,
            "modisco": modisco, "label": label}


def context_motifs(model_dir, data_dir, out_dir, contexts=None, split: str = "train", max_fraction: float = 0.3,
                   n_bins: int = 20000, db: str = "jaspar", q: float = 0.05, top: int = 15, batch_size: int = 64,
                   seed: int = 0, label: str | None = None, fasta=None, sign: str = "positive", report: bool = True,
                   plots: bool = True, group: str | None = None, restart: bool = False, force: bool = False,
                   quiet: bool = False, model_file=None, **modisco) -> dict:
    """The whole run of the module text into ``out_dir``; returns a summary (``activity``,
    ``correlation``, ``contexts`` done, ``skipped`` for want of regions, ``reused``: finished before
    a restart). ``label`` (default SEMI-SYNTHETIC when the
    dataset's path says so) heads every table and the figure title; ``report`` and ``plots``: each
    context's HTML report and ``motifs.png`` (``heatmap.png`` is always drawn); ``group``: a column of
    the dataset's contexts table that orders the heatmap's columns (default: clustered); ``model_file``: a Keras
    file to explain instead of the folder's model_best.keras; ``modisco`` holds TFMoDISco
    parameters (:data:`basenji_tk.interpret.modisco.MODISCO_DEFAULTS`)."""
    from tqdm import tqdm

    from basenji_tk import cli
    from basenji_tk.analysis.evaluate import file_label
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import records
    from basenji_tk.data.pairs_views import pairs_info
    from basenji_tk.interpret.modisco import modisco_params
    from basenji_tk.interpret.motif_activity import SIGNS
    from basenji_tk.io.meme import motif_database

    if not 0 < float(max_fraction) <= 1 or int(n_bins) < 1 or not 0 < float(q) <= 1 or int(top) < 1 \
            or int(batch_size) < 1:
        raise InputError("expected 0 < --max_fraction <= 1, --n_bins >= 1, 0 < --q_value <= 1, --top >= 1 and "
                         "--batch_size >= 1")
    if sign not in SIGNS:
        raise InputError(f"--sign: '{sign}' (expected one of {', '.join(SIGNS)})")
    data_dir, out_dir = os.path.abspath(str(data_dir)), str(out_dir)
    spec = records.load_spec(data_dir)
    info = pairs_info(spec)
    modisco_params(FULL, **modisco)  # an unknown or out-of-range TF-MoDISco parameter fails here
    database = motif_database(db)
    if not database:
        raise InputError(f"--motifs: {db} holds no motifs")
    groups = context_groups(spec, group) if group else None
    if label is None and SEMI in data_dir.upper():
        label = SEMI
    label = label or ""
    with files.claim(out_dir):
        tm = TrainedModel.load(model_dir, model_file)
        _check_model(tm, model_dir, spec)
        chosen = choose_contexts(spec, tm, contexts, split)
        folders = {c: file_label(c) for c in chosen}
        if len(set(folders.values())) < len(folders):
            raise InputError("--contexts: two contexts share a folder name once made safe for a file name")
        names = list(info["contexts"])
        labels = region_labels(spec)
        rows, skipped = {}, []
        for c in chosen:
            rows[c] = specific_bins(labels, names.index(c), max_fraction, n_bins, seed)
            if not len(rows[c]):
                log.warning(f"warning: context {c}: no region is accessible there and in fewer than "
                            f"{max_fraction:g} of the {len(names)} contexts; skipped")
                skipped.append(c)
        if len(skipped) == len(chosen):
            raise InputError(f"no context of {', '.join(chosen[:5])}{' ...' if len(chosen) > 5 else ''} has a region "
                             f"accessible there and in fewer than {max_fraction:g} of the {len(names)} contexts of "
                             f"{data_dir}")
        settings = dict(contexts=chosen, max_fraction=float(max_fraction), n_bins=int(n_bins), seed=int(seed),
                        db=str(db), q=float(q), sign=sign, fold=model_fold(tm), modisco=modisco, top=int(top),
                        label=label)
        prints = {"model": files.fingerprint(tm.model_path), "data": files.fingerprint(data_dir)}
        _prepare(out_dir, settings, prints, restart, force, list(folders.values()))
        _write_text(os.path.join(out_dir, RUN), json.dumps({"label": label, "model": os.path.abspath(tm.model_path),
                                                            "data": data_dir, "settings": settings, "inputs": prints},
                                                           indent=1) + "\n")
        job = _job(spec, tm, model_dir, data_dir, labels, fasta, batch_size, db, database, q, report, plots, modisco,
                   label)
        results, reused = {}, []
        for c in tqdm([c for c in chosen if c not in skipped], desc="contexts", unit="context",
                      disable=not cli.show_progress(quiet)):
            folder = os.path.join(out_dir, folders[c])
            if restart and (done := _done(folder)) is not None:
                log.info("context %s: finished before (%d bins), skipped", c, done["bins"])
                results[c] = _read_result(folder)
                reused.append(c)
                continue
            results[c] = _one_context(job, c, rows[c], folder)
            d = results[c]["done"]
            log.info("context %s: %d bins, %d patterns, named: %s", c, d["bins"], d["patterns"],
                     ", ".join(d["named"]) or "none")
        summary = _summarise(out_dir, results, skipped, spec, float(q), int(top), label, sign, groups, group)
        return dict(summary, reused=reused)


def _summarise(out_dir, results, skipped, spec, q, top, label, sign, groups=None, group=None) -> dict:
    activity = motif_activity(results, sign)
    expression, what = expression_table(spec)
    candidates = motif_candidates(results, q, sign)
    corr = motif_expression_correlation(activity, expression, candidates)
    head = f"{label} " if label else ""
    _write_text(os.path.join(out_dir, "activity.tsv"),
                f"# {head}motif activity: 1 where TF-MoDISco found the motif (the TF name of a {sign} pattern's best "
                f"TOMTOM match with q < {q:g}) in the context\n" + activity.to_csv(sep="\t"))
    _write_text(os.path.join(out_dir, "motif_tf_correlation.tsv"),
                f"# {head}Pearson r of each motif's activity with the {what} of each TF that could bind it, over "
                f"{activity.shape[1]} contexts\n" + corr.to_csv(sep="\t", index=False, float_format="%.4g"))
    title = (f"{head}motif activity and TF expression over {activity.shape[1]} contexts\n"
             f"(top {min(top, int(corr['r'].notna().sum()))} motif/TF pairs by Pearson r)")
    order = names = None
    if groups is not None:
        order = sorted(activity.columns, key=lambda c: (groups.get(c, ""), list(activity.columns).index(c)))
        names = {c: f"{c} [{groups.get(c, '')}]" for c in activity.columns}
        title += f", columns by {group}"
    heatmap(corr, activity, expression, os.path.join(out_dir, "heatmap.png"), top=top, title=title.strip(),
            expression_label=f"{what}, z-score per row", order=order, column_labels=names)
    if activity.shape[1] < 3:
        log.warning(f"warning: {activity.shape[1]} context(s): a correlation across contexts needs at least 3")
    log.info("wrote %s: %d motifs x %d contexts, %d motif/TF pairs (%d with a correlation)", out_dir,
             activity.shape[0], activity.shape[1], len(corr), int(corr["r"].notna().sum()))
    return {"activity": activity, "correlation": corr, "contexts": list(results), "skipped": skipped,
            "label": label}
