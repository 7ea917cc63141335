"""Per-context motifs and motif activity against TF expression (ChromDragoNN §2.6, §3.4, Fig. 3A).

The pure parts against numpy/scipy and hand-made tables; context_motifs.py end to end on the zoo's
tiny pairs model (SEMI-SYNTHETIC contexts: CTCF peaks, CpG islands, TSSs and two halves of the
CTCF peaks; barely trained, so its motifs mean nothing: the test checks files, shapes, errors and
--restart).
"""

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import assert_clean_failure, run_script

from basenji_tk.interpret import motif_activity as ma
from basenji_tk.errors import InputError
from basenji_tk.interpret.context_motifs import context_motifs, specific_bins


# ----------------------------------------------------------------------------- specific bins
def test_specific_bins_against_a_loop():
    rng = np.random.default_rng(1)
    labels = (rng.random((500, 10)) < rng.random(10) * 0.5).astype(np.uint8)
    for c in range(10):
        want = [i for i in range(500) if labels[i, c] == 1 and sum(labels[i]) / 10 < 0.3]
        got = specific_bins(labels, c, max_fraction=0.3, n=10_000)
        assert got.tolist() == want
        assert len(want) > 0
        # a draw of fewer: sorted, a subset, the same for the same seed, another for another seed
        k = max(1, len(want) // 2)
        drawn = specific_bins(labels, c, 0.3, n=k, seed=3)
        assert len(drawn) == k and (np.diff(drawn) > 0).all() and set(drawn) <= set(want)
        assert (drawn == specific_bins(labels, c, 0.3, n=k, seed=3)).all()
    c = int(np.argmax([len(specific_bins(labels, j, 0.3, 10_000)) for j in range(10)]))
    k = len(specific_bins(labels, c, 0.3, 10_000)) // 2
    assert k >= 10
    assert (specific_bins(labels, c, 0.3, k, seed=1) != specific_bins(labels, c, 0.3, k, seed=0)).any()
    # "fewer than": a region in exactly 3 of 10 contexts is not specific at 0.3, it is at 0.31
    row = np.zeros((1, 10), np.uint8)
    row[0, :3] = 1
    assert specific_bins(row, 0, 0.3).tolist() == [] and specific_bins(row, 0, 0.31).tolist() == [0]


# ----------------------------------------------------------------------------- activity and correlation
def _matches(*rows):
    return pd.DataFrame([{"pattern": p, "tf": tf, "match": m, "q_value": 0.001, "significant": sig}
                         for p, tf, m, sig in rows])


def test_dimer_and_variant_names():
    assert ma.tf_names("Pou5f1::Sox2") == ["Pou5f1", "Sox2"]
    assert ma.tf_names("NR2F1(var.2)") == ["NR2F1"]
    assert ma.tf_names("CTCF") == ["CTCF"]
    assert ma.tf_names("TAL1::TCF3::TAL1") == ["TAL1", "TCF3"]


def test_activity_joins_patterns_by_their_best_name():
    results = {
        "a": _matches(("pos_patterns.pattern_0", "CTCF", "MA0139.2", True),
                      ("pos_patterns.pattern_1", "Spi1", "MA0080.7", True),
                      ("pos_patterns.pattern_2", "GATA1", "MA0035.5", False),  # not significant: left out
                      ("neg_patterns.pattern_0", "FOXA1", "MA0148.5", True)),  # negative: left out by default
        "b": _matches(("pos_patterns.pattern_0", "ctcf", "MA1929.2", True)),  # another CTCF matrix, other case
        "c": _matches(),
    }
    act = ma.motif_activity(results)
    assert list(act.columns) == ["a", "b", "c"]
    assert act.to_dict("index") == {"CTCF": {"a": 1, "b": 1, "c": 0}, "Spi1": {"a": 1, "b": 0, "c": 0}}
    both = ma.motif_activity(results, sign="both")
    assert both.loc["FOXA1"].tolist() == [1, 0, 0] and "GATA1" not in both.index


def test_correlation_ranks_the_planted_tf_first_and_agrees_with_scipy():
    from scipy import stats

    rng = np.random.default_rng(0)
    contexts = [f"c{i}" for i in range(12)]
    active = np.array([1, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0, 1])
    expression = pd.DataFrame(rng.normal(2, 1, (12, 5)), index=contexts,
                              columns=["HNF4A", "HNF4G", "POU5F1", "SOX2", "CTCF"])
    expression["HNF4A"] += 4 * active  # the planted TF: high where its motif is found
    expression["CTCF"] = 5.0  # constant: no correlation
    activity = pd.DataFrame([active, rng.integers(0, 2, 12), np.ones(12, int)], index=["HNF4A", "Pou5f1::Sox2", "CTCF"],
                            columns=contexts)
    matches = {"HNF4A": ["HNF4A", "HNF4G", "Nr2f6"], "Pou5f1::Sox2": ["Pou5f1::Sox2"], "CTCF": ["CTCF"]}
    table = ma.motif_expression_correlation(activity, expression, matches)
    assert (table.iloc[0]["motif"], table.iloc[0]["tf"]) == ("HNF4A", "HNF4A")
    assert set(zip(table.motif, table.tf)) == {("HNF4A", "HNF4A"), ("HNF4A", "HNF4G"), ("Pou5f1::Sox2", "POU5F1"),
                                               ("Pou5f1::Sox2", "SOX2"), ("CTCF", "CTCF")}  # Nr2f6: no column
    for row in table.itertuples():
        a = activity.loc[row.motif].to_numpy(float)
        e = expression[row.tf].to_numpy(float)
        if row.motif == "CTCF":
            assert np.isnan(row.r) and np.isnan(row.p_value)
            continue
        r, p = stats.pearsonr(a, e)
        assert row.r == pytest.approx(r) and row.p_value == pytest.approx(p)
    assert np.isnan(table.iloc[-1]["r"])  # the constant row sorts last
    finite = table["r"].dropna().to_numpy()
    assert (np.diff(finite) <= 0).all()
    assert ma.planted_recall(table, ["HNF4A"], top=1) == 1.0 and ma.planted_recall(table, ["CTCF"], top=15) == 0.0
    # a table of (motif, tf) rows works as the mapping does
    rows = pd.DataFrame([(m, t) for m, ts in matches.items() for t in ts], columns=["motif", "tf"])
    assert ma.motif_expression_correlation(activity, expression, rows).equals(table)


def test_candidates_take_every_match_under_q():
    results = {"a": {"matches": _matches(("pos_patterns.pattern_0", "HNF1A", "MA0046.3", True)),
                     "tomtom": pd.DataFrame({"query": ["pos_patterns.pattern_0"] * 3, "target_alt": ["HNF1A", "HNF1B",
                                                                                                     "Hnf1a"],
                                             "p_value": [1e-9, 1e-7, 1e-3], "q_value": [1e-6, 1e-4, 0.2]})}}
    assert ma.motif_candidates(results, q=0.05) == {"HNF1A": ["HNF1A", "HNF1B"]}


# ----------------------------------------------------------------------------- end to end
def zoo_args(zoo_pairs, out):
    return [zoo_pairs.model_dir, zoo_pairs.data_dir, "-o", out, "--contexts", "cpg,tss,ctcf", "--n_bins", 40,
            "--no_report", "--no_plots", "--n_leiden_runs", 2, "--batch_size", 32]


@pytest.fixture(scope="module")
def first_run(zoo_pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("context_motifs") / "out"
    return run_script("context_motifs.py", *zoo_args(zoo_pairs, out)), out


def test_end_to_end_on_the_zoo_pairs_model(first_run):
    proc, out = first_run
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout, proc.stderr[-3000:])
    assert "warning: context ctcf" in proc.stderr  # its regions are all in >= 2 of 5 contexts
    for c in ("cpg", "tss"):
        for name in ("regions.bed", "attributions.h5", "seqlets.tsv", "matches.tsv", "tomtom.tsv", "done.json"):
            assert (out / c / name).exists(), (c, name)
        done = json.loads((out / c / "done.json").read_text())
        assert 0 < done["bins"] <= 40
    assert not (out / "ctcf").exists()
    act = pd.read_csv(out / "activity.tsv", sep="\t", comment="#", index_col=0)
    assert list(act.columns) == ["cpg", "tss"] and set(np.unique(act.to_numpy())) <= {0, 1}
    corr = pd.read_csv(out / "motif_tf_correlation.tsv", sep="\t", comment="#")
    assert list(corr.columns) == ma.CORRELATION_COLUMNS
    assert (out / "heatmap.png").stat().st_size > 1000
    assert "SEMI-SYNTHETIC" in (out / "activity.tsv").read_text().splitlines()[0]


def _again(zoo_pairs, out, **kw):
    options = dict(contexts="cpg,tss,ctcf", n_bins=40, report=False, plots=False, n_leiden_runs=2, batch_size=32,
                   quiet=True)
    return context_motifs(zoo_pairs.model_dir, zoo_pairs.data_dir, out, **{**options, **kw})


def test_restart_skips_finished_contexts(zoo_pairs, first_run):
    proc, out = first_run
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(InputError, match="already holds run.json.* use --restart to continue it or --force"):
        _again(zoo_pairs, out)  # a finished run is kept without --restart or --force
    with pytest.raises(InputError, match="--restart with different settings: n_bins was 40, now 30"):
        _again(zoo_pairs, out, n_bins=30, restart=True)
    stamp = {c: os.stat(out / c / "attributions.h5").st_mtime_ns for c in ("cpg", "tss")}
    (out / "tss" / "done.json").unlink()  # as if interrupted during tss
    res = _again(zoo_pairs, out, restart=True)
    assert res["reused"] == ["cpg"] and res["contexts"] == ["cpg", "tss"] and res["skipped"] == ["ctcf"]
    assert os.stat(out / "cpg" / "attributions.h5").st_mtime_ns == stamp["cpg"]
    assert os.stat(out / "tss" / "attributions.h5").st_mtime_ns != stamp["tss"]
    assert (out / "tss" / "done.json").exists()
    act = pd.read_csv(out / "activity.tsv", sep="\t", comment="#", index_col=0)
    assert list(act.columns) == ["cpg", "tss"]


def test_error_lines(zoo_pairs, tmp_path):
    from zoo import seq_to_seq_keras

    model, data = zoo_pairs.model_dir, zoo_pairs.data_dir
    proc = run_script("context_motifs.py", model, data, "-o", tmp_path / "a", "--contexts", "cpg,liver")
    assert_clean_failure(proc, "--contexts", "liver", "not a context of")
    assert not (tmp_path / "a").exists()
    proc = run_script("context_motifs.py", model, data, "-o", tmp_path / "f", "--model", tmp_path / "gone.keras")
    assert_clean_failure(proc, "gone.keras", "model file not found")
    assert not (tmp_path / "f").exists()
    with pytest.raises(InputError, match="no context of ctcf has a region accessible there and in fewer than 0.3"):
        _again(zoo_pairs, tmp_path / "b", contexts="ctcf")
    plain = tmp_path / "plain_model"
    plain.mkdir()
    seq_to_seq_keras().save(plain / "model_best.keras")
    with pytest.raises(InputError, match="plain_model: not a pairs model"):
        context_motifs(plain, data, tmp_path / "c")
    with pytest.raises(InputError, match="--group: .*contexts.tsv has no column 'lineage'"):
        _again(zoo_pairs, tmp_path / "e", group="lineage")
    with pytest.raises(InputError, match="--max_fraction"):
        _again(zoo_pairs, tmp_path / "d", max_fraction=0)
    assert not any((tmp_path / x).exists() for x in "bcde")


# ----------------------------------------------------------------------------- a planted truth
PLANTED = ("MA0139.2", "MA1494.2")  # CTCF; HNF4A (a DR1 site, 20.8 bits, unlike CTCF's GC-rich one)
NOISE_TFS = ("CTCFL", "HNF4G", "NR2F6", "RXRA", "GATA1", "FOXA1")  # relatives of both, and others


@pytest.fixture(scope="module")
def planted_contexts(tmp_path_factory):
    """SEMI-SYNTHETIC (planted motifs in shuffled real chr20 sequence): 2,000 windows of 200 bp, each
    carrying CTCF and/or HNF4A with probability 1/3 (basenji_tk.interpret.planted), laid end to end
    on one contig; 4 contexts, two where a window is accessible when it carries CTCF and two where it
    carries HNF4A, whose expression has CTCF (or HNF4A) at log2 6 and the other at 1, with 6 other TFs
    at random; a tiny pairs model (sequence + expression) trained on them."""
    import time

    import pysam

    from basenji_tk.data import pairs
    from basenji_tk.interpret.planted import planted_set
    from basenji_tk.io.meme import jaspar_motifs
    from basenji_tk.model.train import Options, train
    from conftest import FASTA, write_json

    t0 = time.perf_counter()
    work = tmp_path_factory.mktemp("planted_contexts_SEMI-SYNTHETIC")
    motifs = sorted(jaspar_motifs(names=list(PLANTED)), key=lambda m: PLANTED.index(m.name))
    p = planted_set(FASTA, motifs, n=2000, length=200, seed=0, valid=0, test=0)
    seq = "".join(p.sequences())
    (work / "planted.fa").write_text(">planted SEMI-SYNTHETIC\n" + "".join(seq[i:i + 60] + "\n"
                                                                       for i in range(0, len(seq), 60)))
    pysam.faidx(str(work / "planted.fa"))
    (work / "all.bed").write_text(f"planted\t0\t{len(seq)}\n")
    rng = np.random.default_rng(0)
    tfs = ["CTCF", "HNF4A", *NOISE_TFS]
    contexts, rows = {}, []
    for k, m in enumerate(motifs):
        for j in (1, 2):
            name = f"{m.alt.upper()}_active{j}"
            bed = work / f"{name}_SEMI-SYNTHETIC.bed"
            bed.write_text("".join(f"planted\t{i * 200}\t{i * 200 + 200}\n" for i in np.flatnonzero(p.labels[:, k])))
            contexts[name] = bed
            v = rng.lognormal(1, 0.7, len(tfs))
            v[k], v[1 - k] = 2 ** (6 + rng.normal(0, 0.3)), 2 ** (1 + rng.normal(0, 0.3))
            rows.append(name + "\t" + "\t".join(f"{x:.3f}" for x in v))
    (work / "contexts.tsv").write_text("context\tpeaks\tprogramme\n" + "".join(f"{c}\t{b}\t{c.split('_')[0]}\n"
                                                                             for c, b in contexts.items()))
    (work / "expression_SEMI-SYNTHETIC.tsv").write_text("context\t" + "\t".join(tfs) + "\n" + "\n".join(rows) + "\n")
    data = work / "pairs_SEMI-SYNTHETIC"
    pairs.make_pairs(str(work / "planted.fa"), work / "contexts.tsv", work / "expression_SEMI-SYNTHETIC.tsv", data,
                     pairs.Options(seq_length=200, bin_length=200, stride=200, regions=str(work / "all.bed"),
                                   valid="0.2", test="0", chunk_size=20_000, valid_contexts="0", test_contexts="0",
                                   log="log2"))
    params = write_json(work / "params.json", {
        "train": {"batch_size": 64, "epochs": 6, "steps_per_epoch": 60, "learning_rate": 0.005, "loss": "bce",
                  "monitor": "val_loss", "seed": 0},
        "model": {"name": "planted_pairs", "inputs": {"sequence": {"kind": "sequence", "shape": [200, 4]},
                                                      "expression": {"kind": "vector", "shape": [len(tfs)]},
                                                      "mean_accessibility": {"kind": "vector", "shape": [1]}},
                  "trunk": [{"name": "conv_block", "filters": 16, "kernel_size": 15, "batch_norm": False,
                             "pool_size": 4},
                            {"name": "conv_block", "filters": 16, "kernel_size": 5, "batch_norm": False},
                            {"name": "global_pool", "pool_type": "max"}],
                  "heads": {"accessible": {"label": "accessible", "loss": "bce", "blocks": [
                      {"name": "expression_fusion", "input": "expression", "scalar_input": "mean_accessibility",
                       "scalar_at": 1, "units": [32, 8], "dropout": 0.0, "batch_norm": False},
                      {"name": "final", "units": 1, "activation": "sigmoid"}]}}}})
    t1 = time.perf_counter()
    train(str(params), [str(data)], str(work / "model"), Options(seed=0, quiet=True))
    history = pd.read_csv(work / "model" / "history.tsv", sep="\t")
    return {"model": work / "model", "data": data, "work": work, "history": history,
            "seconds": {"data": t1 - t0, "train": time.perf_counter() - t1}}


@pytest.mark.slow
def test_planted_contexts_name_their_tfs(planted_contexts):
    """The motif found in the HNF4A contexts correlates best with HNF4A's expression (above its
    relatives HNF4G, NR2F6, RXRA, whose expression is random), and the planted TFs lead the table."""
    import time

    from basenji_tk import cli

    cli.setup_logging(quiet=True)
    t0 = time.perf_counter()
    res = context_motifs(planted_contexts["model"], planted_contexts["data"], planted_contexts["work"] / "motifs",
                         split="all", max_fraction=0.6, n_bins=120, report=False, plots=False, quiet=True,
                         n_leiden_runs=1, batch_size=150, group="programme")
    seconds = dict(planted_contexts["seconds"], context_motifs=time.perf_counter() - t0)
    act, corr = res["activity"], res["correlation"]
    print(f"\nSEMI-SYNTHETIC planted contexts ({', '.join(f'{k} {v:.1f} s' for k, v in seconds.items())}; "
          f"best val_auroc {planted_contexts['history']['val_auroc'].max():.3f})\n{act}\n{corr.to_string()}")
    assert res["label"] == "SEMI-SYNTHETIC" and not res["skipped"]
    assert planted_contexts["history"]["val_auroc"].max() > 0.9
    hnf4 = ["HNF4A_active1", "HNF4A_active2"]
    ctcf = ["CTCF_active1", "CTCF_active2"]
    top = corr.iloc[0]
    assert top["tf"] == "HNF4A" and top["r"] > 0.95, corr.head()
    motif = top["motif"]  # HNF4A, or a relative's name when that matrix matched best
    assert act.loc[motif, hnf4].tolist() == [1, 1] and act.loc[motif, ctcf].tolist() == [0, 0]
    mine = corr[corr["motif"] == motif].dropna(subset=["r"])
    assert len(mine) >= 2 and (mine["r"].iloc[1:] < top["r"]).all()  # above the relatives it also matches
    assert "CTCF" in act.index and act.loc["CTCF", ctcf].tolist() == [1, 1]
    ctcf_rows = corr[(corr["motif"] == "CTCF") & corr["r"].notna()]
    if len(ctcf_rows):  # CTCF also named in an HNF4A context leaves its activity without contrast
        assert ctcf_rows.iloc[0]["tf"] == "CTCF"
    assert ma.planted_recall(corr, ["CTCF", "HNF4A"], top=15) >= 0.5
    # what was explained: the model's logit with the context's expression and each region's own mean
    _check_explained(planted_contexts, "HNF4A_active1")


def _check_explained(planted_contexts, context):
    import h5py

    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import records
    from basenji_tk.data.pairs_views import context_table, pairs_info
    from basenji_tk.interpret.context_motifs import region_labels

    spec = records.load_spec(planted_contexts["data"])
    names = pairs_info(spec)["contexts"]
    folder = planted_contexts["work"] / "motifs" / context
    bed = (folder / "regions.bed").read_text().splitlines()
    rows = np.array([int(line.split("\t")[3][len("region"):]) for line in bed])
    with h5py.File(folder / "attributions.h5", "r") as h5:
        f_x, one_hot = h5["f_x"][:], h5["one_hot"][:].astype(np.float32)
    labels = region_labels(spec)
    assert (labels[rows, names.index(context)] == 1).all() and (labels[rows].mean(axis=1) < 0.6).all()
    tm = TrainedModel.load(planted_contexts["model"])
    expression = np.repeat(context_table(spec)[names.index(context)][None], len(rows), axis=0)
    mean = labels[rows].mean(axis=1, keepdims=True).astype(np.float32)  # every context is a training one
    logits = tm.predict({"sequence": one_hot, "expression": expression, "mean_accessibility": mean}, logits=True)
    assert np.allclose(next(iter(logits.values())).ravel(), f_x, atol=1e-4)
    other = tm.predict({"sequence": one_hot, "expression": expression, "mean_accessibility": 0 * mean}, logits=True)
    assert not np.allclose(next(iter(other.values())).ravel(), f_x, atol=1e-2)  # the mean does matter to it


def test_attribute_regions_feeds_each_region_its_own_input(zoo_pairs, tmp_path):
    """attribute_regions(region_inputs=...): region i is explained with row i (what the mean
    accessibility of each bin needs); checked on the zoo model's expression input."""
    import h5py

    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret.attribution_run import attribute_regions

    n = len(zoo_pairs.bed.read_text().splitlines())
    rows = np.random.default_rng(0).normal(2, 1, (n, 20)).astype(np.float32)
    attribute_regions(zoo_pairs.model_dir, zoo_pairs.bed, tmp_path / "a", method="grad_x_input", plots=False,
                      region_inputs={"expression": rows}, quiet=True)
    with h5py.File(tmp_path / "a" / "attributions.h5", "r") as h5:
        f_x, one_hot = h5["f_x"][:], h5["one_hot"][:].astype(np.float32)
    tm = TrainedModel.load(zoo_pairs.model_dir)
    want = next(iter(tm.predict({"sequence": one_hot, "expression": rows}, logits=True).values())).ravel()
    assert np.allclose(f_x, want, atol=1e-5)
    same = next(iter(tm.predict({"sequence": one_hot, "expression": np.repeat(rows[:1], n, 0)},
                                logits=True).values())).ravel()
    assert not np.allclose(f_x[1:], same[1:], atol=1e-4)  # the rows differ enough to tell
    for bad, match in (({"expression": rows[:-1]}, "per-region input 'expression'"),
                       ({"sequence": rows}, "not a non-sequence input"), ({"mean": rows}, "'mean' is not")):
        with pytest.raises(InputError, match=match):
            attribute_regions(zoo_pairs.model_dir, zoo_pairs.bed, tmp_path / "b", method="grad_x_input",
                              plots=False, region_inputs=bad, quiet=True)
