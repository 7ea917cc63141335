"""test.py and basenji_tk.analysis.evaluate on the demo dataset and the tiny model (session fixtures).

Metrics are checked against an independent recomputation: the test split read
with numpy, one-hot by hand, model.predict, and scipy/sklearn per target.
"""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from basenji_tk.analysis import evaluate as ev
from basenji_tk.model import models
from basenji_tk.data import tfrecords as tfr
from basenji_tk.errors import InputError
from conftest import assert_clean_failure, run_script, tiny_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def one_hot_by_hand(codes):
    """``(..., L)`` codes A0 C1 G2 T3 N4 -> ``(..., L, 4)`` float32, N all zeros."""
    return np.eye(5, 4, dtype=np.float32)[codes]


def log2p1(x):
    return np.log2(np.maximum(x, 0) + 1)


def r2(y, p):
    return 1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum()


@pytest.fixture(scope="module")
def test_split(demo_dataset, tiny_model):
    """The test split by hand: indices (S,), codes (S, L), targets (S, T, n), predictions (S, T, n)."""
    records = list(tfr.read_records(demo_dataset, "test"))
    index = np.array([r[0] for r in records])
    codes = np.stack([r[1] for r in records])
    y = np.stack([r[2] for r in records])
    model = models.load_model(tiny_model / "model_best.keras")
    p = model.predict(one_hot_by_hand(codes), batch_size=32, verbose=0)
    return dict(index=index, codes=codes, y=y, p=p, model=model)


@pytest.fixture(scope="module")
def acceptance(demo_dataset, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("test_py") / "out"
    proc = run_script("test.py", "-q", "--peaks", "--baseline", "--rc", "--shifts", "1,0,-1",
                      tiny_model, demo_dataset, "-o", out)
    return proc, out


# ----------------------------------------------------------------------------- acceptance
def test_script_writes_table_and_plots(acceptance, demo_dataset):
    proc, out = acceptance
    assert proc.returncode == 0, proc.stderr
    statistics = tfr.load_statistics(demo_dataset)
    ids = statistics["target_ids"]
    acc = pd.read_csv(out / "acc.tsv", sep="\t")
    assert list(acc["identifier"]) == ids and list(acc["index"]) == list(range(len(ids)))
    assert list(acc.columns[:3]) == ["index", "identifier", "description"]
    for column in ("pearsonr", "r2", "log_pearsonr", "log_r2", "spearmanr", "peak_fraction", "peak_auprc",
                   "peak_enrichment", "baseline_pearsonr", "baseline_r2", "baseline_peak_auprc"):
        assert np.isfinite(acc[column]).all(), column
    assert "auroc" not in acc.columns  # no target of the demo is 0/1
    np.testing.assert_allclose(acc["peak_enrichment"], acc["peak_auprc"] / acc["peak_fraction"], rtol=1e-4)

    for target in ids:
        assert (out / f"scatter_{target}.png").read_bytes()[:8] == PNG_MAGIC
        assert target in proc.stdout  # the printed table
    tracks = sorted(name for name in os.listdir(out) if name.startswith("tracks_"))
    assert len(tracks) == 3
    test_rows = [line.split("\t") for line in open(demo_dataset / "sequences.bed") if line.split("\t")[3].strip() == "test"]
    assert set(tracks) <= {f"tracks_{r[0]}_{r[1]}.png" for r in test_rows}
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temporary left


def test_tracks_are_the_sequences_with_most_signal(acceptance, test_split, demo_dataset):
    _, out = acceptance
    rows = [line.split("\t") for line in open(demo_dataset / "sequences.bed")]
    total = test_split["y"].sum(axis=(1, 2))
    top = test_split["index"][np.lexsort((test_split["index"], -total))[:3]]
    written = sorted(name for name in os.listdir(out) if name.startswith("tracks_"))
    assert written == sorted(f"tracks_{rows[i][0]}_{rows[i][1]}.png" for i in top)


# ----------------------------------------------------------------------------- metrics
def test_metrics_equal_independent_recomputation(test_split, tiny_model, demo_dataset, tmp_path):
    df = ev.evaluate(tiny_model, demo_dataset, tmp_path, plots=False, quiet=True)
    assert pd.read_csv(tmp_path / "acc.tsv", sep="\t").shape == df.shape
    n = test_split["y"].shape[-1]
    y, p = test_split["y"].reshape(-1, n).astype(np.float64), test_split["p"].reshape(-1, n).astype(np.float64)
    for k in range(n):
        expected = {
            "pearsonr": stats.pearsonr(y[:, k], p[:, k])[0],
            "r2": r2(y[:, k], p[:, k]),
            "log_pearsonr": stats.pearsonr(log2p1(y[:, k]), log2p1(p[:, k]))[0],
            "log_r2": r2(log2p1(y[:, k]), log2p1(p[:, k])),
            "spearmanr": stats.spearmanr(y[:, k], p[:, k])[0],
        }
        for column, value in expected.items():
            assert df.loc[k, column] == pytest.approx(value, rel=1e-4, abs=1e-5), (k, column)


def test_binary_targets_get_auroc_and_auprc(test_split, tiny_model, demo_dataset, tmp_path):
    """A copy of the dataset whose test targets 0 and 2 are 0/1; target 1 is 0/1 but for its last record."""
    data = tmp_path / "binary"
    data.mkdir()
    for name in ("statistics.json", "sequences.bed", "targets.txt"):
        shutil.copy(demo_dataset / name, data / name)
    (data / "tfrecords").mkdir()
    for path in tfr.split_files(demo_dataset, "train"):
        shutil.copy(path, data / "tfrecords")
    binary = (test_split["y"] > 0).astype(np.float16)
    binary[-1, 0, 1] = 2.0  # only the last batch shows that target 1 is not binary
    writer = tfr.SplitWriter(data / "tfrecords", "test")
    for index, codes, targets in zip(test_split["index"], test_split["codes"], binary):
        writer.write(tfr.example_bytes(index, codes, targets))
    writer.close()

    df = ev.evaluate(tiny_model, data, tmp_path / "out", plots=False, quiet=True)
    n = binary.shape[-1]
    y, p = binary.reshape(-1, n), test_split["p"].reshape(-1, n)
    for k in (0, 2):
        assert df.loc[k, "auroc"] == pytest.approx(roc_auc_score(y[:, k], p[:, k]), rel=1e-4)
        assert df.loc[k, "auprc"] == pytest.approx(average_precision_score(y[:, k], p[:, k]), rel=1e-4)
    assert np.isnan(df.loc[1, "auroc"]) and np.isnan(df.loc[1, "auprc"])


def test_rc_ensemble_is_the_mean_of_forward_and_reverse(test_split, tiny_model, demo_dataset, tmp_path):
    model, x = test_split["model"], one_hot_by_hand(test_split["codes"])
    forward = model.predict(x, batch_size=32, verbose=0)
    reverse = model.predict(x[:, ::-1, ::-1], batch_size=32, verbose=0)[:, ::-1, :]
    by_hand = (forward + reverse) / 2
    np.testing.assert_allclose(models.ensemble(model, rc=True).predict(x[:8], verbose=0), by_hand[:8],
                               rtol=1e-5, atol=1e-6)

    df = ev.evaluate(tiny_model, demo_dataset, tmp_path, rc=True, plots=False, quiet=True)
    n = by_hand.shape[-1]
    y, p = test_split["y"].reshape(-1, n), by_hand.reshape(-1, n)
    for k in range(n):
        assert df.loc[k, "pearsonr"] == pytest.approx(stats.pearsonr(y[:, k], p[:, k])[0], rel=1e-4, abs=1e-5)
        assert df.loc[k, "r2"] == pytest.approx(r2(y[:, k], p[:, k]), rel=1e-4, abs=1e-5)


def test_format_table():
    df = pd.DataFrame({"identifier": ["ctcf", "cpg"], "pearsonr": [0.5, np.nan], "r2": [0.25, 0.1],
                       "log_pearsonr": [0.4, 0.3], "spearmanr": [0.3, 0.2], "baseline_pearsonr": [0.1, 0.2]})
    lines = ev.format_table(df).splitlines()
    assert lines[0].split() == ["target", "r", "R²", "log", "r", "Spearman", "base", "r"]
    assert lines[1].split() == ["ctcf", "0.500", "0.250", "0.400", "0.300", "0.100"]
    assert lines[2].split()[1] == "nan" and lines[3].split()[0] == "mean"


# ----------------------------------------------------------------------------- baseline
def test_bin_features_by_hand():
    seq = "CGCG" "AAAC" "GTNN" "NNNN"
    codes = np.frombuffer(seq.encode(), dtype=np.uint8).copy()
    codes = np.select([codes == ord(c) for c in "ACGT"], [0, 1, 2, 3], 4).astype(np.uint8)
    features = ev.bin_features(codes, num_bins=4, pool_width=4)
    # GC fraction of A/C/G/T bases (an all-N bin: 0.5); CpG counted in the bin of its C
    np.testing.assert_allclose(features, [[1.0, 2], [0.25, 1], [0.5, 0], [0.5, 0]])
    # cropped: 2 bins in the middle of the 16 bp; a batch axis passes through
    cropped = ev.bin_features(np.stack([codes, codes]), num_bins=2, pool_width=4)
    np.testing.assert_allclose(cropped, [[[0.25, 1], [0.5, 0]]] * 2)
    assert ev.one_hot_to_codes(one_hot_by_hand(codes)).tolist() == codes.tolist()


def test_baseline_fit_and_skill(demo_dataset, acceptance):
    statistics = tfr.load_statistics(demo_dataset)
    num_bins, pool_width = statistics["target_length"], statistics["pool_width"]
    coef = ev.fit_baseline(demo_dataset)
    assert coef.shape == (3, statistics["num_targets"])

    features, targets = [], []
    for _, codes, y in tfr.read_records(demo_dataset, "train"):
        features.append(ev.bin_features(codes, num_bins, pool_width))
        targets.append(y)
    features, targets = np.concatenate(features), np.concatenate(targets).astype(np.float64)
    design = np.column_stack([np.ones(len(features)), features])
    np.testing.assert_allclose(coef, np.linalg.lstsq(design, targets, rcond=None)[0], rtol=1e-6, atol=1e-8)

    # CpG islands follow CpG density: the baseline beats a constant clearly on train (R² 0.26)
    # and keeps r of 0.32 on the test split (only 25 of its 16,384 bins are in islands)
    cpg = statistics["target_ids"].index("cpg")
    fitted = ev.baseline_predict(features, coef)[:, cpg]
    assert r2(targets[:, cpg], fitted) > 0.2
    acc = pd.read_csv(acceptance[1] / "acc.tsv", sep="\t")
    assert acc.loc[cpg, "baseline_pearsonr"] > 0.25


# ----------------------------------------------------------------------------- bad input
def test_mismatched_output_length(tiny_model, demo_dataset, tmp_path):
    from basenji_tk.model.params import check_params

    params = tiny_params()
    params["model"]["trunk"][0]["pool_size"] = 4  # 256 bins instead of the dataset's 128
    model = models.build_model(check_params(params)["model"], 3)
    other = models.save_model(model, tmp_path / "other.keras")
    proc = run_script("test.py", "-q", "--model", other, tiny_model, demo_dataset, "-o", tmp_path / "out")
    assert_clean_failure(proc, "256 x 3", "target_length 128", "statistics.json", "other.keras")


def test_bad_inputs_in_process(tiny_model, demo_dataset, tmp_path):
    with pytest.raises(InputError, match="statistics.json"):
        ev.evaluate(tiny_model, tmp_path, tmp_path / "out")
    with pytest.raises(InputError, match="no tfrecords/nope-"):
        ev.evaluate(tiny_model, demo_dataset, tmp_path / "out", split="nope")
    with pytest.raises(InputError, match="model file not found"):
        ev.evaluate(tmp_path, demo_dataset, tmp_path / "out")
    with pytest.raises(InputError, match="--shifts: 20000"):
        ev.evaluate(tiny_model, demo_dataset, tmp_path / "out", shifts=(0, 20000))
    for text in ("1,x", "", "1.5"):
        with pytest.raises(InputError, match="--shifts"):
            ev.parse_shifts(text)
    assert ev.parse_shifts("1, 0,-1") == (1, 0, -1)


@pytest.mark.parametrize("case", ["no_statistics", "bad_shifts"])
def test_script_bad_input(case, tiny_model, demo_dataset, tmp_path):
    if case == "no_statistics":
        proc = run_script("test.py", "-q", tiny_model, tmp_path, "-o", tmp_path / "out")
        assert_clean_failure(proc, "statistics.json", str(tmp_path))
    else:
        proc = run_script("test.py", "-q", "--shifts", "1,a", tiny_model, demo_dataset, "-o", tmp_path / "out")
        assert_clean_failure(proc, "--shifts", "1,a")
    assert not (tmp_path / "out").exists()
