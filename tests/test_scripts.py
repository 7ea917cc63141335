"""Every script in bin/ against an output it cannot write and against a second run into the same output.

Each script gets valid inputs, so the only thing wrong is the output location: a file where a
folder is expected, a read-only bind mount (root ignores ``chmod``, not a read-only mount), or
an output another process holds (basenji_tk.files.claim, as a concurrent run of any script
would). Each must end with one ``error:`` line, exit status 2, and leave nothing behind.
"""

import json
import os

import pytest

from conftest import (DATA, FASTA, REPO, TARGETS, assert_clean_failure, hold_claim, read_only, run_script,
                      tiny_params, write_json)
from test_sedld import make_inputs, write_sed

# How each script names its output: a folder (locked inside) or a file / a folder renamed into
# place whole (locked beside it).
KIND = {
    "bam_cov.py": "file", "make_targets.py": "file", "predict.py": "file", "make_table.py": "file",
    "make_regions.py": "file", "make_pairs.py": "file", "plot_history.py": "file",
    "train.py": "folder", "hyper_search.py": "folder", "test.py": "folder", "sed.py": "folder",
    "sat_mut.py": "folder", "saliency.py": "folder", "sed_ld.py": "folder", "gwas_classify.py": "folder",
    "import_model.py": "folder", "tomtom.py": "folder", "scan_motifs.py": "folder", "motifs.py": "folder",
    "insert_motif.py": "folder", "attribute.py": "folder", "test_contexts.py": "folder", "impute_contexts.py": "folder",
    "context_motifs.py": "folder",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model, demo_dataset, zoo_pairs):
    """Valid inputs for every script (the demo data, the tiny model, GENERATED sed.h5 tables)."""
    work = tmp_path_factory.mktemp("script_inputs")
    bed = work / "regions.bed"
    bed.write_text("chr20\t2000000\t2000010\tr1\n")
    ld = make_inputs(work / "ld")
    ids = [f"v{i}" for i in range(40)]
    gwas_sed = write_sed(work / "gwas_sed.h5", "20", list(range(1, 41)), ids, ["A"] * 40, ["G"] * 40, ["G1"] * 40,
                         [0] * 40, [[float(i % 7), float(i % 3)] for i in range(40)])
    (work / "contexts.tsv").write_text(f"context\tpeaks\nctcf\t{DATA / 'ctcf_peaks.bed'}\ncpg\t{DATA / 'cpg_islands.bed'}\n")
    (work / "tpm.tsv").write_text("context\tTF1\tTF2\nctcf\t1.5\t2\ncpg\t3\t0.5\n")
    (work / "window.bed").write_text("chr20\t1000000\t1100000\n")
    (work / "table.tsv").write_text("sequence\ty\nACGTACGT\t1.5\nTTGACCAA\t-0.5\n")
    (work / "pos.txt").write_text("\n".join(ids[:20]) + "\n")
    (work / "neg.txt").write_text("\n".join(ids[20:]) + "\n")
    params = write_json(work / "params.json", tiny_params())
    domain = write_json(work / "domain.json", {"train.learning_rate": {"type": "continuous", "range": [1e-4, 1e-2],
                                                                       "log": True}})
    import h5py
    import numpy as np

    with h5py.File(work / "attributions.h5", "w") as h5:  # GENERATED: random bases and values
        rng = np.random.default_rng(0)
        h5["one_hot"] = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (8, 100))]
        h5["hypothetical"] = rng.normal(size=(8, 100, 4)).astype(np.float32)
        h5["attributions"] = h5["one_hot"][:] * h5["hypothetical"][:]
    from zoo import seq_to_seq_keras

    from basenji_tk.io.meme import Motif, write_meme

    rng = __import__("numpy").random.default_rng(0)  # GENERATED motifs: 2 queries, a database of 30
    meme = write_meme([Motif(f"q{i}", rng.dirichlet([0.3] * 4, 8)) for i in range(2)], work / "q.meme")
    db = write_meme([Motif(f"t{i}", rng.dirichlet([0.3] * 4, 10)) for i in range(30)], work / "db.meme")
    (work / "scan.bed").write_text("chr20\t2000000\t2000200\tr1\n")

    seq_to_seq_keras().save(work / "seq_to_seq.keras")
    write_meme([Motif("M", [[0.7, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.7]])], work / "motifs.meme")
    (work / "new_contexts.tsv").write_text("context\t" + "\t".join(f"TF{i}" for i in range(20)) + "\nnew\t"
                                           + "\t".join(["1.5"] * 20) + "\n")
    model, data = tiny_model, demo_dataset
    return {
        "context_motifs.py": lambda out: [zoo_pairs.model_dir, zoo_pairs.data_dir, "-o", out, "--contexts", "cpg",
                                          "--n_bins", 10, "--no_report", "--no_plots", "--n_leiden_runs", 1],
        "test_contexts.py": lambda out: [zoo_pairs.data_dir, zoo_pairs.model_dir, "-o", out],
        "impute_contexts.py": lambda out: [zoo_pairs.model_dir, zoo_pairs.data_dir, work / "new_contexts.tsv", "-o", out],
        "bam_cov.py": lambda out: [DATA / "dropseq.bam", out],
        "make_targets.py": lambda out: ["-l", 16384, "-w", 128, FASTA, TARGETS, "-o", out],
        "make_pairs.py": lambda out: [FASTA, work / "contexts.tsv", work / "tpm.tsv", "--regions", work / "window.bed",
                                      "--valid_contexts", 0, "--test_contexts", 0, "-o", out],
        "make_table.py": lambda out: [work / "table.tsv", "-o", out, "--activity", "y", "--valid", 0, "--test", 0],
        "make_regions.py": lambda out: ["-l", 1024, "-w", 128, "--valid", 0, "--test", 0, FASTA, DATA / "ctcf_peaks.bed",
                                        TARGETS, "-o", out],
        "predict.py": lambda out: [model, bed, "-o", out],
        "train.py": lambda out: [params, data, "-o", out],
        "plot_history.py": lambda out: [model, "-o", out],
        "hyper_search.py": lambda out: [params, domain, data, "-o", out, "-n", 2, "--init", 2, "--epochs", 1,
                                        "--steps", 2],
        "test.py": lambda out: [model, data, "-o", out],
        "sed.py": lambda out: [model, DATA / "variants_1kg.vcf.gz", DATA / "tss.bed", "-o", out],
        "sat_mut.py": lambda out: [model, bed, "-o", out, "--mut_len", 4],
        "saliency.py": lambda out: [model, bed, "-o", out],
        "attribute.py": lambda out: [model, bed, "-o", out, "--n_references", 2, "--no_plots"],
        "sed_ld.py": lambda out: [ld["sed"], ld["vcf"], ld["eqtl"], "-o", out],
        "motifs.py": lambda out: [work / "attributions.h5", "-o", out, "--seqlets_only"],
        "import_model.py": lambda out: [work / "seq_to_seq.keras", "-o", out, "--resolution", 1],
        "tomtom.py": lambda out: [meme, "--db", db, "-o", out],
        "scan_motifs.py": lambda out: [meme, work / "scan.bed", "-f", FASTA, "-o", out],
        "insert_motif.py": lambda out: [model, "--regions", bed, "--motif", "M", "--motifs", work / "motifs.meme",
                                        "--n", 4, "-o", out],
        "gwas_classify.py": lambda out: [gwas_sed, work / "pos.txt", work / "neg.txt", "-o", out, "--stat", "SED",
                                         "--components", 1, "--folds", 2],
    }


def out_name(script):
    return {"bam_cov.py": "cov.bw", "predict.py": "preds.h5", "plot_history.py": "fig.png"}.get(script, "out")


def test_every_script_is_covered():
    assert sorted(p.name for p in (REPO / "bin").glob("*.py")) == sorted(KIND)


@pytest.mark.parametrize("script", sorted(KIND))
def test_a_file_where_a_folder_is_expected(script, inputs, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder\n")
    proc = run_script(script, *inputs[script](blocker / out_name(script)))
    assert_clean_failure(proc, "afile", "not a folder")
    assert blocker.read_text() == "not a folder\n" and sorted(os.listdir(tmp_path)) == ["afile"]


@pytest.mark.parametrize("script", sorted(KIND))
def test_a_read_only_location(script, inputs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    proc = run_script(script, *inputs[script](ro / out_name(script)), prefix=read_only(ro))
    assert_clean_failure(proc, str(ro), "read-only file system")
    assert os.listdir(ro) == []


@pytest.mark.parametrize("script", sorted(KIND))
def test_a_second_run_into_the_same_output(script, inputs, tmp_path):
    out = tmp_path / out_name(script)
    holder = hold_claim(out, folder=KIND[script] == "folder")
    before = sorted(os.listdir(tmp_path)), sorted(os.listdir(out)) if out.is_dir() else None
    try:
        proc = run_script(script, *inputs[script](out))
    finally:
        holder.kill()
        holder.wait()
    assert_clean_failure(proc, str(out), f"another run (process {holder.pid})")
    assert (sorted(os.listdir(tmp_path)), sorted(os.listdir(out)) if out.is_dir() else None) == before


def test_finished_outputs_are_kept_without_force(inputs, tmp_path):
    """Every script refuses to replace a finished run's output unless --force (here: the quick ones)."""
    out = tmp_path / "gwas"
    run_script("gwas_classify.py", "-q", *inputs["gwas_classify.py"](out), check=True)
    first = (out / "auroc.tsv").read_text()
    assert_clean_failure(run_script("gwas_classify.py", *inputs["gwas_classify.py"](out)), "auroc.tsv", "--force")
    assert (out / "auroc.tsv").read_text() == first
    run_script("gwas_classify.py", "-q", *inputs["gwas_classify.py"](out), "--force", check=True)
    assert len(json.loads((out / "gwas_classify.json").read_text())["folds"]) == 2


@pytest.mark.parametrize("script", sorted(KIND))
def test_help_says_each_default_once(script):
    proc = run_script(script, "--help", check=True)
    text = " ".join(proc.stdout.split())
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: )" not in text
    options = [part for part in text.split(" --") if "default" in part]
    twice = [part[:60] for part in options if part.count("default") > 1]
    assert not twice, twice
    assert all(a.help for a in _parser(script)._actions), f"{script}: an option has no help text"


def _parser(script):
    """The script's argparse parser (parse_args is wrapped to hand the parser back)."""
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location(script[:-3], REPO / "bin" / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seen = {}
    real = argparse.ArgumentParser.parse_args

    def capture(self, *a, **k):
        seen["parser"] = self
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        module.parse_args([])
    except SystemExit:
        pass
    finally:
        argparse.ArgumentParser.parse_args = real
    return seen["parser"]


TF_NOISE = ("oneDNN", "absl::InitializeLog", "cpu_feature_guard", "I0000 ", "W0000 ")


def test_tensorflow_start_up_lines_stay_out_of_stderr(inputs, tmp_path):
    """predict.py loads a model and predicts: stderr holds none of TensorFlow's own start-up lines."""
    proc = run_script("predict.py", "-q", *inputs["predict.py"](tmp_path / "p.h5"), check=True)
    assert not [line for line in proc.stderr.splitlines() if any(w in line for w in TF_NOISE)], proc.stderr
    code = ("import sys\nfrom basenji_tk import cli\ncli.setup_logging(verbose=sys.argv[1] == '1')\n"
            "import keras, tensorflow as tf\nprint(int(tf.reduce_sum(tf.ones(3))))\n")
    import subprocess
    import sys

    quiet = subprocess.run([sys.executable, "-c", code, "0"], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "3", quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if any(w in line for w in TF_NOISE)], quiet.stderr


def test_two_real_runs_into_one_folder(inputs, tmp_path):
    """The literal case: sed.py runs (slowed by --rc and 3 shifts) and a second sed.py starts into its folder."""
    import subprocess
    import time

    from conftest import BIN_DIR

    from basenji_tk import files

    out = tmp_path / "sed"
    first = subprocess.Popen([str(BIN_DIR / "sed.py"), "-q", *map(str, inputs["sed.py"](out)), "--rc",
                              "--shifts=-1,0,1"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lock = out / files.LOCK_NAME
        for _ in range(600):  # until the first run holds the folder (its pid is in the lock file)
            if first.poll() is not None or (lock.exists() and lock.read_text().strip()):
                break
            time.sleep(0.1)
        assert first.poll() is None, first.stderr.read()
        second = run_script("sed.py", *inputs["sed.py"](out))
        still_running = first.poll() is None
    finally:
        first.kill()
        first.wait()
    assert still_running, "the first run ended before the second one started; slow it down"
    assert_clean_failure(second, str(out), f"another run (process {first.pid})")
