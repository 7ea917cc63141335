"""Held-out contexts (analysis/crosscontext*.py, test_contexts.py) and imputation (analysis/impute.py,
impute_contexts.py): baselines against loops, the binned AUPRC's inversion against scikit-learn,
the Wilcoxon test against scipy, the model cut at the context input against tiling, and both
scripts end to end on the zoo's pairs model and on a 3-fold SEMI-SYNTHETIC set with a model per fold."""

import importlib.util
import json
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import FASTA, REPO, run_script, write_json

from basenji_tk.analysis import crosscontext as cc
from basenji_tk.errors import InputError


# ----------------------------------------------------------------------------- small arrays
def test_mean_baseline_against_a_loop():
    rng = np.random.default_rng(0)
    labels = (rng.random((30, 6)) < 0.3).astype(np.uint8)
    train = [0, 2, 3, 5]
    want = [sum(int(labels[r, c]) for c in train) / len(train) for r in range(30)]
    np.testing.assert_allclose(cc.mean_baseline(labels, train), want, rtol=1e-6)
    with pytest.raises(InputError, match="no training contexts"):
        cc.mean_baseline(labels, [])


@pytest.mark.parametrize("similarity", ["pearson", "centered"])
def test_rna_weighted_baseline_against_a_loop(similarity):
    rng = np.random.default_rng(1)
    labels = (rng.random((25, 7)) < 0.4).astype(np.uint8)
    expression = rng.normal(size=(7, 12)) + np.linspace(0, 3, 12)  # a shared profile: every pair alike
    train, query = [0, 1, 2, 4, 6], expression[[3, 5]]
    centre = expression[train].mean(axis=0) if similarity == "centered" else 0
    want = np.zeros((25, 2))
    for q in range(2):
        w = [max(0.0, np.corrcoef(query[q] - centre, expression[k] - centre)[0, 1]) for k in train]
        for r in range(25):
            want[r, q] = sum(wk * labels[r, k] for wk, k in zip(w, train)) / sum(w)
    got = cc.rna_weighted_baseline(labels, train, expression, query, similarity)
    assert got.shape == (25, 2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_rna_weighted_baseline_without_a_positive_weight(caplog):
    """A query no training context resembles gets the mean baseline, with a warning naming it."""
    expression = np.array([[1, 2, 3, 4], [1, 2, 3, 4.5], [4, 3, 2, 1]], float)
    labels = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0]], np.uint8)
    with caplog.at_level("WARNING", logger="basenji_tk"):
        got = cc.rna_weighted_baseline(labels, [0, 1], expression, expression[[2]], "pearson", ["far"])
    np.testing.assert_allclose(got[:, 0], cc.mean_baseline(labels, [0, 1]))
    assert "context far has no training context of positive pearson" in caplog.text
    with pytest.raises(InputError, match="--similarity"):
        cc.context_similarity(expression, expression, "cosine")


def _grouped_contexts(seed=0, n_regions=4000, n_groups=4, per_group=6, n_tfs=60):
    """GENERATED: contexts in groups; 20 housekeeping TFs high everywhere, 10 TFs high per group; a
    region is open in a group's contexts (its own set, with 10 % flips) or everywhere (5 %)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_groups), per_group)
    expr = rng.normal(0, 0.3, (len(groups), n_tfs))
    expr[:, :20] += rng.uniform(4, 8, 20)
    for g in range(n_groups):
        expr[groups == g, 20 + 10 * g:30 + 10 * g] += 3
    home = rng.integers(0, n_groups, n_regions)
    labels = (home[:, None] == groups[None, :]) & (rng.random((n_regions, 1)) < 0.3)
    labels |= rng.random((n_regions, 1)) < 0.05
    labels ^= rng.random(labels.shape) < 0.1
    return labels.astype(np.uint8), expr, groups


def test_rna_weighted_baseline_on_grouped_contexts():
    """The two similarities side by side (their numbers, printed with -s, are in the report): on contexts
    sharing housekeeping TFs, centring lets the group-specific TFs set the weights."""
    labels, expr, groups = _grouped_contexts()
    test = np.array([0, 6, 12, 18])  # one context of each group held out
    train = np.setdiff1d(np.arange(len(groups)), test)
    y = labels[:, test]
    out = {"mean": cc.score_contexts(y, {"mean": cc.mean_baseline(labels, train)}, list(map(str, test)),
                                     np.array(["train"] * len(y)))[1]["auprc"][0]}
    for sim in cc.SIMILARITIES:
        p = cc.rna_weighted_baseline(labels, train, expr, expr[test], sim)
        out[sim] = cc.score_contexts(y, {sim: p}, list(map(str, test)), np.array(["train"] * len(y)))[1]["auprc"][0]
    print("pooled AUPRC (GENERATED grouped contexts):", {k: round(float(v), 3) for k, v in out.items()})
    assert out["centered"] > out["pearson"] > out["mean"]


def test_binned_auprc_inverts_above_half():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(2)
    n = 3000
    fraction = np.round(rng.random(n), 2)
    fraction[:5] = [0.0, 0.5, 1.0, 0.1, 0.49]
    y = rng.random(n) < fraction
    p = np.clip(fraction + rng.normal(0, 0.2, n), 0, 1)
    table = cc.binned_auprc(y, p, fraction)
    assert len(table) == 10 and table["regions"].sum() == n and abs(table["share"].sum() - 1) < 1e-9
    edges = np.round(np.linspace(0, 1, 11), 10)
    for k, row in table.iterrows():
        m = (fraction >= edges[k]) & ((fraction < edges[k + 1]) if k < 9 else (fraction <= 1))
        assert row["regions"] == m.sum()
        if edges[k] >= 0.5:
            assert row["positive_class"] == "closed"
            want = average_precision_score(~y[m], 1 - p[m])
        else:
            assert row["positive_class"] == "accessible"
            want = average_precision_score(y[m], p[m])
        assert row["auprc"] == pytest.approx(want, abs=1e-9)
    one_class = cc.binned_auprc([1, 1], [0.2, 0.3], [0.05, 0.05])
    assert np.isnan(one_class["auprc"][0]) and one_class["regions"][0] == 2


def test_fold_comparison_against_scipy():
    from scipy.stats import wilcoxon

    a, b = [0.71, 0.74, 0.69, 0.77, 0.72], [0.60, 0.66, 0.63, 0.64, 0.61]
    res = cc.fold_comparison(a, b)
    assert res["p"] == pytest.approx(1 / 32) and res["statistic"] == 15 and res["n"] == 5
    assert res["mean_difference"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert cc.fold_comparison(b, a)["p"] == pytest.approx(1.0)
    mixed_a, mixed_b = [0.5, 0.61, 0.7, 0.52, 0.9], [0.55, 0.6, 0.62, 0.5, 0.7]
    want = wilcoxon(mixed_a, mixed_b, alternative="greater", method="exact")
    got = cc.fold_comparison(mixed_a, mixed_b)
    assert got["p"] == pytest.approx(want.pvalue) and got["statistic"] == want.statistic and 1 / 32 < got["p"] < 1
    assert np.isnan(cc.fold_comparison(a, a)["p"])
    with pytest.raises(InputError, match="equal"):
        cc.fold_comparison(a, b[:4])


# ----------------------------------------------------------------------------- the cut
def _fusion_model(scalar_at, early=False):
    """A small two/three-input model from the block registry (GENERATED weights); ``early``: the
    expression joins the sequence at the input (no cut)."""
    import keras

    from basenji_tk.model import models

    keras.utils.set_random_seed(3)
    if early:
        seq, expr = keras.Input((100, 4), name="sequence"), keras.Input((6,), name="expression")
        x = keras.layers.Concatenate()([seq, keras.layers.RepeatVector(100)(expr)])
        x = keras.layers.GlobalMaxPooling1D()(keras.layers.Conv1D(4, 5, activation="relu")(x))
        return keras.Model({"sequence": seq, "expression": expr}, keras.layers.Dense(1, activation="sigmoid")(x))
    params = {"name": "fusion", "inputs": {"sequence": {"kind": "sequence", "shape": [100, 4]},
                                           "expression": {"kind": "vector", "shape": [6]},
                                           "mean_accessibility": {"kind": "vector", "shape": [1]}},
              "trunk": [{"name": "conv_block", "filters": 4, "kernel_size": 5, "pool_size": 4}],
              "heads": {"accessible": {"label": "accessible", "blocks": [
                  {"name": "expression_fusion", "input": "expression", "scalar_input": "mean_accessibility",
                   "units": [8, 4], "scalar_at": scalar_at, "dropout": 0.3},
                  {"name": "final", "units": 1, "activation": "sigmoid"}]}}}
    return models.build_model(params)


@pytest.mark.parametrize("scalar_at", [0, 1, 2])
def test_cut_equals_tiled_with_the_mean_input(scalar_at):
    rng = np.random.default_rng(4)
    seq = np.eye(4, dtype=np.float32)[rng.integers(0, 4, (7, 100))]
    expr, mean = rng.normal(size=(3, 6)).astype(np.float32), rng.random(7).astype(np.float32)
    model = _fusion_model(scalar_at)
    cut = cc.ContextPredictor(model, batch_size=5)
    assert cut.method == "cut" and cut.cut[2] == ["expression", "mean_accessibility"]
    got = cut.predict(seq, expr, mean)
    want = cc.ContextPredictor(model, method="tiled", batch_size=4).predict(seq, expr, mean)
    assert got.shape == (7, 3) and np.abs(got - want).max() < 1e-5 and got.std() > 0
    one = model.predict_on_batch({"sequence": seq[2:3], "expression": expr[1:2], "mean_accessibility": mean[2:3, None]})
    assert abs(float(np.asarray(one["accessible"]).reshape(-1)[0]) - got[2, 1]) < 1e-5


def test_no_cut_when_the_context_joins_the_sequence():
    model = _fusion_model(0, early=True)
    assert cc.cut_at_context(model) is None
    assert cc.ContextPredictor(model).method == "tiled"
    with pytest.raises(InputError, match="tiled"):
        cc.ContextPredictor(model, method="cut")


def test_context_predictions_cut_equals_tiled(zoo_pairs):
    from basenji_tk.data import records

    cut = cc.context_predictions(zoo_pairs.model_dir, zoo_pairs.data_dir, ["tss", "half_b", "ctcf"], method="cut",
                                 batch_size=16)
    tiled = cc.context_predictions(zoo_pairs.model_dir, zoo_pairs.data_dir, ["tss", "half_b", "ctcf"],
                                   method="tiled", batch_size=7)
    assert np.abs(cut[0] - tiled[0]).max() < 1e-5 and cut[0].shape == (98, 3)
    for k in (1, 2, 3):
        np.testing.assert_array_equal(cut[k], tiled[k])
    stored = {r["index"]: r["labels"] for s in ("train", "valid") for r in records.read_records(zoo_pairs.data_dir, s)}
    np.testing.assert_array_equal(cut[1], np.stack([stored[i][[2, 4, 0]] for i in cut[2]]))
    assert set(cut[3]) == {"train", "valid"}
    default = cc.context_predictions(zoo_pairs.model_dir, zoo_pairs.data_dir, split="valid")  # the test context
    np.testing.assert_allclose(default[0][:, 0], cut[0][cut[3] == "valid", 0], atol=1e-6)


# ----------------------------------------------------------------------------- the scripts
def _main(script, capsys, *argv):
    """Run a bin/ script's main in this process through cli.run: (exit status, stdout, stderr)."""
    from basenji_tk import cli

    spec = importlib.util.spec_from_file_location(script[:-3], REPO / "bin" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit) as stop:
        cli.run(module.main, [str(a) for a in argv])
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


def _error(script, capsys, *argv):
    code, _, err = _main(script, capsys, *argv)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    return lines[0]


def test_test_contexts_end_to_end(zoo_pairs, tmp_path):
    out = tmp_path / "tc"
    proc = run_script("test_contexts.py", "-q", zoo_pairs.data_dir, zoo_pairs.model_dir, "--names", "zoo", "-o", out,
                      "--similarity", "centered", check=True)
    assert "zoo" in proc.stdout and "rna_weighted" in proc.stdout
    for name in ("metrics.tsv", "pooled.tsv", "binned_auprc.tsv", "binned_auprc.png", "pr_curves.png",
                 "test_contexts.json"):
        assert (out / name).stat().st_size > 0, name
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert set(metrics["model"]) == {"zoo", "mean", "rna_weighted"} and set(metrics["context"]) == {"tss"}
    assert set(metrics["genome"]) == {"all", "train", "valid"}
    assert metrics[["auprc", "auroc"]].apply(lambda c: c.between(0, 1)).all().all()
    p, y, _, split = cc.context_predictions(zoo_pairs.model_dir, zoo_pairs.data_dir)
    row = metrics[(metrics["model"] == "zoo") & (metrics["genome"] == "all")].iloc[0]
    assert row["positives"] == y.sum() == 11 and row["regions"] == 98
    from sklearn.metrics import average_precision_score

    assert row["auprc"] == pytest.approx(average_precision_score(y[:, 0], p[:, 0]), abs=1e-5)
    binned = pd.read_csv(out / "binned_auprc.tsv", sep="\t")
    assert (binned.groupby("model")["regions"].sum() == 98).all()
    summary = json.loads((out / "test_contexts.json").read_text())
    assert summary["label"] == "SEMI-SYNTHETIC" and summary["folds"][0]["models"]["zoo"]["method"] == "cut"


def test_test_contexts_scores_the_last_epoch(zoo_pairs, tmp_path, capsys):
    """--weights last scores each folder's checkpoint.keras: a folder whose checkpoint is another
    model's weights scores as that model, and a folder without one is one error line."""
    import shutil

    from zoo import _train

    mine, other = tmp_path / "mine", tmp_path / "other"
    shutil.copytree(zoo_pairs.model_dir, mine)
    params = json.loads((mine / "params.json").read_text())
    params["train"].update(steps_per_epoch=8, learning_rate=0.01)  # another model on the same data
    _train(params, zoo_pairs.data_dir, other)
    shutil.copy(other / "model_best.keras", mine / "checkpoint.keras")

    def auprc(model, *argv):
        out = tmp_path / f"o_{model.name}_{len(argv)}"
        code, _, err = _main("test_contexts.py", capsys, "-q", zoo_pairs.data_dir, model, "--names", "m", "-o", out,
                             "--no_baselines", *argv)
        assert code == 0, err
        pooled = pd.read_csv(out / "pooled.tsv", sep="\t")
        return float(pooled.loc[pooled["genome"] == "all", "auprc"].iloc[0]), json.loads(
            (out / "test_contexts.json").read_text())

    best, _ = auprc(mine)
    last, record = auprc(mine, "--weights", "last")
    assert last == pytest.approx(auprc(other)[0], abs=1e-6) and last != pytest.approx(best, abs=1e-6)
    assert record["folds"][0]["models"]["m"]["weights"] == "last"
    (mine / "checkpoint.keras").unlink()
    line = _error("test_contexts.py", capsys, zoo_pairs.data_dir, mine, "-o", tmp_path / "gone", "--weights", "last")
    assert "checkpoint.keras: not found" in line and not (tmp_path / "gone").exists()


@pytest.fixture(scope="module")
def three_folds(zoo_pairs, tmp_path_factory):
    """A 3-fold SEMI-SYNTHETIC pairs set on the zoo's contexts with 12 correlated "TFs", and one
    tiny model per fold (train.fold)."""
    from zoo import _train

    from basenji_tk.data import pairs

    work = tmp_path_factory.mktemp("three_folds")
    rng = np.random.default_rng(0)
    base = rng.lognormal(1, 1, 12)
    names = ["ctcf", "cpg", "tss", "half_a", "half_b"]
    table = work / "expression12_SEMI-SYNTHETIC.tsv"
    table.write_text("context\t" + "\t".join(f"TF{i}" for i in range(12)) + "\n" + "".join(
        f"{n}\t" + "\t".join(f"{v:.3f}" for v in base * rng.lognormal(0, 0.3, 12)) + "\n" for n in names))
    zoo_dir = zoo_pairs.data_dir.parent
    data = work / "pairs3_SEMI-SYNTHETIC"
    pairs.make_pairs(FASTA, zoo_dir / "contexts.tsv", table, data, pairs.Options(
        seq_length=500, bin_length=200, stride=500, regions=str(zoo_dir / "window.bed"), valid="0", test="0.25",
        chunk_size=60_000, folds=3, empty_fraction=0.1, log="log2"))
    model = json.loads((zoo_dir / "model_params.json").read_text())["model"]
    model["inputs"]["expression"]["shape"] = [12]
    for f in range(3):
        _train({"train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "loss": "bce", "monitor": "val_loss",
                          "seed": f, "fold": f}, "model": model}, data, work / f"resnet_fold{f}")
    return data, work


def test_test_contexts_over_folds(three_folds, tmp_path, capsys):
    data, work = three_folds
    out = tmp_path / "folds"
    code, stdout, _ = _main("test_contexts.py", capsys, "-q", data, work / "resnet_fold{fold}", "--folds", "all",
                            "-o", out)
    assert code == 0 and "resnet > mean" in stdout, _
    folds = pd.read_csv(out / "folds.tsv", sep="\t")
    assert list(folds["fold"]) == [0, 1, 2] and folds.filter(like=":auprc").stack().between(0, 1).all()
    tests = pd.read_csv(out / "folds_wilcoxon.tsv", sep="\t")
    assert len(tests) == 6 and (tests["n"] == 3).all()
    assert tests["p"].dropna().between(1 / 8 - 1e-9, 1).all()  # n = 3: the smallest exact p is 1/8
    one = tests[(tests["a"] == "resnet") & (tests["b"] == "mean")].iloc[0]
    assert one["mean_difference"] == pytest.approx((folds["resnet:auprc"] - folds["mean:auprc"]).mean(), abs=1e-5)
    pooled = pd.read_csv(out / "pooled.tsv", sep="\t", dtype={"fold": str})
    every = pooled[pooled["fold"] == "all"]
    assert set(every["model"]) == {"resnet", "mean", "rna_weighted"} and (every["contexts"] == 5).all()
    metrics = pd.read_csv(out / "metrics.tsv", sep="\t")
    assert sorted(metrics.loc[metrics["model"] == "mean", "context"].unique()) == sorted(
        ["ctcf", "cpg", "tss", "half_a", "half_b"])  # each context held out once
    assert set(metrics["genome"]) == {"all", "train", "test"}  # the training and the held-out genome
    code, stdout, _ = _main("test_contexts.py", capsys, "-q", data, work / "resnet_fold{fold}", "--folds", "all",
                            "-o", out, "--compare", "resnet,rna_weighted", "--force", "--split", "test")
    only = pd.read_csv(out / "folds_wilcoxon.tsv", sep="\t")
    assert code == 0 and list(zip(only["a"], only["b"])) == [("resnet", "rna_weighted")]
    assert set(pd.read_csv(out / "metrics.tsv", sep="\t")["genome"]) == {"all"}


def test_test_contexts_errors(zoo_pairs, three_folds, tmp_path, capsys):
    import keras

    data, work = three_folds
    plain = tmp_path / "plain"
    plain.mkdir()
    x = inp = keras.Input((500, 4), name="sequence")
    keras.Model(inp, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(x))).save(
        plain / "model_best.keras")
    z, m = zoo_pairs.data_dir, zoo_pairs.model_dir
    assert "not a pairs model" in _error("test_contexts.py", capsys, z, plain, "-o", tmp_path / "o1")
    line = _error("test_contexts.py", capsys, data, m, "-o", tmp_path / "o2", "--fold", 0)
    assert "20 context features" in line and "12" in line and "another dataset's contexts" in line
    assert "--fold 3" in _error("test_contexts.py", capsys, z, m, "-o", tmp_path / "o3", "--fold", 3)
    assert "'nowhere' is not a context" in _error("test_contexts.py", capsys, z, m, "-o", tmp_path / "o4",
                                                  "--contexts", "tss,nowhere")
    assert "trained on fold 1" in _error("test_contexts.py", capsys, data, work / "resnet_fold1", "-o",
                                         tmp_path / "o5", "--fold", 0)
    assert "holds no {fold}" in _error("test_contexts.py", capsys, data, work / "resnet_fold1", "-o",
                                       tmp_path / "o6", "--folds", "all")
    assert not any((tmp_path / f"o{k}").exists() for k in range(1, 7))


def test_impute_contexts(zoo_pairs, tmp_path, capsys):
    import h5py

    from basenji_tk.data import records

    rng = np.random.default_rng(5)
    tfs = [f"TF{i}" for i in range(20)]
    expression = tmp_path / "new_SEMI-SYNTHETIC.tsv"  # columns in another order, one extra
    expression.write_text("context\textra\t" + "\t".join(reversed(tfs)) + "\n" + "".join(
        f"new{k}\t1\t" + "\t".join(f"{v:.3f}" for v in rng.lognormal(1, 1, 20)) + "\n" for k in range(6))
        + "tss\t1\t" + "\t".join(["2"] * 20) + "\n")  # a context of the dataset: not imputed by default
    (tmp_path / "groups.tsv").write_text("context\tlineage\n" + "".join(f"new{k}\t{'AB'[k % 2]}\n" for k in range(6)))
    ctcf = (zoo_pairs.data_dir.parent / "contexts.tsv").read_text().splitlines()[1].split("\t")[1]
    (tmp_path / "truth.tsv").write_text(f"context\tpeaks\nnew0\t{ctcf}\n")
    out = tmp_path / "imp"
    code, stdout, _ = _main("impute_contexts.py", capsys, "-q", zoo_pairs.model_dir, zoo_pairs.data_dir, expression,
                            "-o", out, "--groups", tmp_path / "groups.tsv", "--group_column", "lineage", "--truth",
                            tmp_path / "truth.tsv")
    assert code == 0 and "kNN group agreement" in stdout
    with h5py.File(out / "imputed.h5") as h5:
        probs, index = h5["probabilities"][:], h5["index"][:]
        assert probs.dtype == np.float16 and probs.shape == (98, 6)
        assert [c.decode() for c in h5["contexts"][:]] == [f"new{k}" for k in range(6)]
        assert (h5["end"][:] - h5["start"][:] == 200).all() and h5.attrs["label"] == "SEMI-SYNTHETIC"
    # the same vector through the dataset's own transform: log2(x + 1) of the reordered columns
    row = np.log2(np.array(expression.read_text().splitlines()[1].split("\t")[2:], float)[::-1] + 1)
    from basenji_tk.analysis.trained import TrainedModel

    tm = TrainedModel.load(zoo_pairs.model_dir)
    spec = records.load_spec(zoo_pairs.data_dir)
    scan = cc.scan_contexts(spec, [cc.ContextPredictor.for_trained(tm, spec, "tiled")], row[None],
                            cc.training_index(spec), "all")
    np.testing.assert_allclose(probs[:, 0], scan.probs[0][:, 0], atol=2e-3)  # float16
    stored = {r["index"]: r["labels"][0] for s in ("train", "valid") for r in records.read_records(zoo_pairs.data_dir, s)}
    truth = pd.read_csv(out / "truth.tsv", sep="\t")
    assert truth["positives"][0] == sum(stored[i] for i in index) == 17  # the dataset's own ctcf labels
    knn = pd.read_csv(out / "knn_agreement.tsv", sep="\t")
    assert len(knn) == 4 and knn["agreement"].between(0, 1).all() and knn["chance"].iloc[0] == pytest.approx(0.4)
    assert len(pd.read_csv(out / "tsne.tsv", sep="\t")) == 6 and (out / "tsne.png").stat().st_size > 0
    bad = tmp_path / "bad.tsv"
    bad.write_text("context\t" + "\t".join(tfs[:3] + tfs[4:]) + "\nx\t" + "\t".join(["1"] * 19) + "\n")
    assert "no column 'TF3'" in _error("impute_contexts.py", capsys, zoo_pairs.model_dir, zoo_pairs.data_dir, bad,
                                       "-o", tmp_path / "bad_out")
    assert "no group for context 'new1' and 4 more" in _error(
        "impute_contexts.py", capsys, zoo_pairs.model_dir, zoo_pairs.data_dir, expression, "-o", tmp_path / "bad2",
        "--groups", write_tsv(tmp_path / "g2.tsv", "context\tgroup\nnew0\tA\n"))
    assert "gone.keras: model file not found" in _error(
        "impute_contexts.py", capsys, zoo_pairs.model_dir, zoo_pairs.data_dir, expression, "-o", tmp_path / "bad3",
        "--model", tmp_path / "gone.keras")
    assert not any((tmp_path / b).exists() for b in ("bad_out", "bad2", "bad3"))


def write_tsv(path, text):
    path.write_text(text)
    return path


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
