"""Each published params file trains through train.py on a dataset from its builder, and resumes after kill -9.

One dataset per builder, from real files (the labels of the regions, table and pairs sets are
SEMI-SYNTHETIC or stand-ins, as their names say):

- tiling: MCF-7 GRO-seq (real, chr7, ../shared) through bam_cov.py, 0 min signal in, the
  40 min signal smoothed and cropped to the centre 50 bp bin out (groseq_cnn, groseq_dnn);
- regions: windows on the chr20 CTCF peaks; a per-base profile and its total from three real
  tracks (Drop-seq coverage, TSS and CpG-island BEDs, standing in for ATAC cell types) and a
  stand-in "Tn5 bias" input (bpaitac); GC-matched negatives and a peak label (basset);
- table: the SEMI-SYNTHETIC MPRA table of test_tables (mpra_cnn, with replicate weights);
- pairs: chr20 bins x five contexts from the data/ BEDs, SEMI-SYNTHETIC expression of 1,630
  "TFs" (chromdragonn_resnet_stage1 on the regions view, then stage 2 initialised from it; Basset's
  stage 1 then its no-mean stage 2, frozen; the 1:3 batches of every stage-2 file).

Training is a few steps of small batches; the models are the published ones.
"""

import csv
import json
import os
import signal
import subprocess

import numpy as np
import pytest

from conftest import BIN_DIR, DATA, FASTA, REPO, run_script, shared, write_json

from basenji_tk.data import records
from basenji_tk.model.train import KILL_ENV, Options, train


def history(out):
    with open(out / "history.tsv") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def published(name, folder, **train_overrides):
    """params/NAME.json with a few-step budget (and ``train_overrides``), written to ``folder``."""
    params = json.loads((REPO / "params" / f"{name}.json").read_text())
    params["train"].update({"epochs": 2, "steps_per_epoch": 2, "batch_size": 8, "seed": 0, **train_overrides})
    return write_json(folder / f"{name}.json", params)


def killed_and_resumed(params, data, out):
    """Train 2 epochs of 2 steps, SIGKILLed at step 3 (inside epoch 2), then --restart: the run ends
    with both epochs, the first kept from before the kill."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **{KILL_ENV: "3"})
    proc = subprocess.run([str(BIN_DIR / "train.py"), "-q", "--seed", "0", str(params), str(data), "-o", str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    first = history(out)
    assert [r["epoch"] for r in first] == ["1"]
    summary = train(params, [data], str(out), Options(restart=True, seed=0, quiet=True))
    rows = history(out)
    assert summary["epochs"] == 2 and [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0] == first[0]  # epoch 1 is the one written before the kill
    assert all(np.isfinite(float(r["val_loss"])) for r in rows)
    return rows


# ----------------------------------------------------------------------------- table: MPRA
@pytest.fixture(scope="module")
def mpra_dataset(tmp_path_factory):
    from test_tables import REGION, replicate_args, simulate_mpra

    work = tmp_path_factory.mktemp("mpra")
    table = work / "mpra_SEMI-SYNTHETIC.tsv"
    simulate_mpra(table, n_regions=12)
    out = work / "mpra_SEMI-SYNTHETIC"
    run_script("make_table.py", "-q", table, "-o", out, *replicate_args(), "--frame", REGION, "--offset_column",
               "pos", "--replicate_weight", "--group_column", "region", "--valid", 0.2, "--test", 0.1,
               check=True)
    return out


def test_mpra_cnn_on_a_table_dataset(tmp_path, mpra_dataset):
    rows = killed_and_resumed(published("mpra_cnn", tmp_path), mpra_dataset, tmp_path / "m")
    # one head: Keras names its metrics without the head; a regression label gets r, R², RMSE, Spearman
    assert list(rows[0])[:6] == ["epoch", "loss", "pearsonr", "r2", "rmse", "spearmanr"]
    stats = json.loads((tmp_path / "m" / "params.json").read_text())
    assert stats["train"]["sample_weight"] == "weight"


# ----------------------------------------------------------------------------- regions: bpAI-TAC and Basset
@pytest.fixture(scope="module")
def coverage(tmp_path_factory):
    """A real bp-resolution track: Drop-seq read coverage on chr20 (bam_cov.py)."""
    work = tmp_path_factory.mktemp("cov")
    run_script("bam_cov.py", "-q", "--full", DATA / "dropseq.bam", work / "dropseq.bw", check=True)
    return work / "dropseq.bw"


@pytest.fixture(scope="module")
def bpaitac_dataset(tmp_path_factory, coverage):
    work = tmp_path_factory.mktemp("bpaitac")
    (work / "cells.txt").write_text("identifier\tfile\tsum_stat\n"
                                    f"dropseq\t{coverage}\tsum\ntss\t{DATA / 'tss.bed'}\tmean\n"
                                    f"cpg\t{DATA / 'cpg_islands.bed'}\tmean\n")
    (work / "bias.txt").write_text(f"identifier\tfile\tsum_stat\nstand_in\t{DATA / 'tss_pm500.bed'}\tmean\n")
    plan = {"sequence": True,
            "inputs": {"tn5_bias": {"tracks": "bias.txt", "resolution": 1, "crop": 250}},
            "labels": {"profile": {"tracks": "cells.txt", "resolution": 1, "crop": 250, "label_type": "profile"},
                       "total": {"tracks": "cells.txt", "total": True, "crop": 250, "log": True,
                                 "quantile_normalize": True}}}
    write_json(work / "plan.json", plan)
    peaks = work / "ctcf_first300.bed"  # few records: validation runs over all of them each epoch
    peaks.write_text("".join((DATA / "ctcf_peaks.bed").read_text().splitlines(keepends=True)[:300]))
    out = work / "regions_ctcf_stand-in_labels"
    run_script("make_regions.py", "-q", "-l", 1000, "--features", work / "plan.json", "--valid", 0.2, "--test", 0.1,
               "--chunk_size", 500_000, "--blacklist", DATA / "blacklist.bed", FASTA, peaks, "-o", out, check=True)
    return out


def test_bpaitac_two_heads_on_a_regions_dataset(tmp_path, bpaitac_dataset):
    spec = records.load_spec(bpaitac_dataset)
    assert spec.features["profile"].shape == (250, 3) and spec.features["total"].shape == (3,)
    rows = killed_and_resumed(published("bpaitac", tmp_path, batch_size=4), bpaitac_dataset, tmp_path / "m")
    for key in ("val_profile_loss", "val_total_loss", "val_profile_jsd", "val_total_pearsonr"):
        assert key in rows[0], sorted(rows[0])


def test_basset_on_peaks_and_gc_matched_negatives(tmp_path):
    out = tmp_path / "basset_ctcf"
    run_script("make_regions.py", "-q", "-l", 600, "--negatives", 1, "--label", "accessible", "--valid", 0.2,
               "--test", 0.1, "--chunk_size", 500_000, FASTA, DATA / "ctcf_peaks.bed", "-o", out, check=True)
    params = published("basset", tmp_path, epochs=1)
    summary = train(params, [out], str(tmp_path / "m"), Options(seed=0, quiet=True))
    assert summary["epochs"] == 1 and "val_auprc" in history(tmp_path / "m")[0]


# ----------------------------------------------------------------------------- tiling: GRO-seq
@pytest.fixture(scope="module")
def groseq_tracks(tmp_path_factory):
    bams = [shared("bams", f"mcf7_groseq_{t}min_chr7.sorted.bam") for t in (0, 40)]
    work = tmp_path_factory.mktemp("groseq")
    exe = str(BIN_DIR / "bam_cov.py")
    procs = [subprocess.Popen([exe, "-q", "--shift", "0", str(bams[0]), str(work / "g0.bw")]),
             subprocess.Popen([exe, "-q", "--shift", "0", "--strand", str(bams[0]), str(work / "g0s.bw")]),
             subprocess.Popen([exe, "-q", "--shift", "0", str(bams[1]), str(work / "g40.bw")])]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    (work / "in.txt").write_text("identifier\tfile\tsum_stat\ng0\tg0.bw\tmean\n")
    (work / "in2.txt").write_text("identifier\tfile\tsum_stat\nplus\tg0s.plus.bw\tmean\nminus\tg0s.minus.bw\tmean\n")
    (work / "lab.txt").write_text("identifier\tfile\tsum_stat\ng40\tg40.bw\tmean\n")
    (work / "r.bed").write_text("chr7\t5000000\t7000000\n")
    return work


def groseq_dataset(work, name, bins, tracks, strands):
    plan = {"sequence": False,
            "inputs": {"groseq": {"tracks": tracks, "resolution": 50, "transform": "log1p", "strands": strands}},
            "labels": {"mark": {"tracks": "lab.txt", "resolution": 50, "crop": 50, "smooth_sigma": 10}}}
    write_json(work / f"{name}.json", plan)
    out = work / name
    run_script("make_targets.py", "-q", "--features", work / f"{name}.json", "-l", bins * 50, "--stride", 4000,
               "--regions", work / "r.bed", "--valid", 0.2, "--test", 0.1, "--chunk_size", 400_000, "-o", out,
               check=True)
    return out


def test_groseq_cnn_and_dnn_on_signal_tiling(tmp_path, groseq_tracks):
    cnn_data = groseq_dataset(groseq_tracks, "g2561", 2561, "in.txt", False)
    assert records.load_spec(cnn_data).features["groseq"].shape == (2561, 1)
    killed_and_resumed(published("groseq_cnn", tmp_path), cnn_data, tmp_path / "cnn")
    dnn_data = groseq_dataset(groseq_tracks, "g200", 200, "in2.txt", True)
    summary = train(published("groseq_dnn", tmp_path, epochs=1), [dnn_data], str(tmp_path / "dnn"),
                    Options(seed=0, quiet=True))
    assert summary["epochs"] == 1


# ----------------------------------------------------------------------------- pairs: ChromDragoNN, two stages
@pytest.fixture(scope="module")
def pairs_dataset(tmp_path_factory):
    work = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    ctcf = (DATA / "ctcf_peaks.bed").read_text().splitlines()
    (work / "ctcf_half_a_SEMI-SYNTHETIC.bed").write_text("\n".join(ctcf[::2]) + "\n")
    (work / "ctcf_half_b_SEMI-SYNTHETIC.bed").write_text("\n".join(ctcf[1::2]) + "\n")
    contexts = {"ctcf": DATA / "ctcf_peaks.bed", "cpg": DATA / "cpg_islands.bed", "tss": DATA / "tss_pm500.bed",
                "half_a": work / "ctcf_half_a_SEMI-SYNTHETIC.bed", "half_b": work / "ctcf_half_b_SEMI-SYNTHETIC.bed"}
    (work / "contexts.tsv").write_text("context\tpeaks\n" + "".join(f"{k}\t{v}\n" for k, v in contexts.items()))
    tfs = [f"TF{i}" for i in range(1630)]
    (work / "expression_SEMI-SYNTHETIC.tsv").write_text(
        "context\t" + "\t".join(tfs) + "\n"
        + "".join(f"{k}\t" + "\t".join(f"{v:.3f}" for v in rng.lognormal(1, 1, len(tfs))) + "\n" for k in contexts))
    (work / "regions.bed").write_text("chr20\t1000000\t1250000\n")
    out = work / "pairs_SEMI-SYNTHETIC"
    run_script("make_pairs.py", "-q", FASTA, work / "contexts.tsv", work / "expression_SEMI-SYNTHETIC.tsv",
               "--regions", work / "regions.bed", "--stride", 400, "--empty_fraction", 0.02, "--valid", 0.25,
               "--test", 0, "--chunk_size", 60_000, "--valid_contexts", "half_b", "--test_contexts", "tss",
               "--log", "log2",
               "-o", out, check=True)
    return out


def test_chromdragonn_stage1_then_stage2_initialised_from_it(tmp_path, pairs_dataset):
    stage1 = published("chromdragonn_resnet_stage1", tmp_path, epochs=1, steps_per_epoch=1)
    train(stage1, [pairs_dataset], str(tmp_path / "s1"), Options(seed=0, quiet=True))
    from basenji_tk.model import models

    one = models.load_model(tmp_path / "s1" / "model_best.keras")
    assert one.output["training_contexts"].shape[1:] == (3,)  # ctcf, cpg, half_a: the training contexts only

    stage2 = published("chromdragonn_resnet_stage2", tmp_path, init_from=str(tmp_path / "s1"))
    rows = killed_and_resumed(stage2, pairs_dataset, tmp_path / "s2")
    assert "val_auprc" in rows[0] and "val_auroc" in rows[0]
    two = models.load_model(tmp_path / "s2" / "checkpoint.keras")
    conv = [lyr.name for lyr in one.layers if lyr.name.startswith("conv1d")]
    assert len(conv) == 23  # the paper's 23 convolutions, all handed on


STAGE2_FILES = [f"chromdragonn_{arch}_stage2{variant}" for arch in ("resnet", "basset", "factorized")
                for variant in ("", "_nomean")]


@pytest.mark.parametrize("name", STAGE2_FILES)
def test_every_stage2_file_draws_one_positive_to_three_negatives(tmp_path, pairs_dataset, name):
    """train.balance (positive_fraction 0.25) of each stage-2 file: every batch holds exactly 2 of 8
    accessible pairs, and the inputs the file declares (the no-mean files: no mean_accessibility)."""
    from basenji_tk.model.feeds import train_dataset
    from basenji_tk.model.params import load_params
    from basenji_tk.model.wiring import wire

    params = load_params(published(name, tmp_path))
    tp, mp = params["train"], params["model"]
    assert tp["balance"] == {"label": "accessible", "positive_fraction": 0.25}
    wiring = wire(mp, tp, records.load_spec(pairs_dataset), name)
    batches = list(train_dataset([str(pairs_dataset)], {**tp, "steps_per_epoch": 3}, 0, wiring))
    assert len(batches) == 3
    for x, y in batches:
        assert set(x) == set(mp["inputs"])
        assert np.asarray(y["accessible"] if isinstance(y, dict) else y).sum() == 2


@pytest.mark.parametrize("arch", ["basset"])  # factorized: built, counted and its trunk shared in test_published_params
def test_comparison_models_two_stages_frozen(tmp_path, pairs_dataset, arch):
    """Stage 1 of Basset, then its stage 2 (no mean) initialised from it with train.freeze true
    (--set): the convolutions stay stage 1's."""
    from basenji_tk.model import models

    stage1 = published(f"chromdragonn_{arch}_stage1", tmp_path, epochs=1, steps_per_epoch=1)
    train(stage1, [pairs_dataset], str(tmp_path / "s1"), Options(seed=0, quiet=True))
    stage2 = published(f"chromdragonn_{arch}_stage2_nomean", tmp_path, epochs=1, steps_per_epoch=2)
    train(stage2, [pairs_dataset], str(tmp_path / "s2"), Options(seed=0, quiet=True, sets=(
        f"train.init_from={tmp_path / 's1'}", "train.freeze=true")))
    one = models.load_model(tmp_path / "s1" / "model_best.keras")
    two = models.load_model(tmp_path / "s2" / "checkpoint.keras")
    convs = [lyr.name for lyr in two.layers if lyr.name.startswith("conv1d")]
    assert len(convs) == {"basset": 3, "factorized": 9}[arch]
    for name in convs:
        assert not two.get_layer(name).trainable
        np.testing.assert_array_equal(two.get_layer(name).get_weights()[0], one.get_layer(name).get_weights()[0])
    assert "val_auprc" in history(tmp_path / "s2")[0]
