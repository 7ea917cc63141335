"""Every tutorial notebook runs end to end from the repository root."""

import pytest

from conftest import REPO

# Notebooks with a test file of their own (so that pytest-xdist, which hands out whole files, can
# run them beside the others); every other notebook runs here.
OWN_FILE = {"07_motifs.ipynb": "test_tutorial_motifs.py", "08_chromdragonn.ipynb": "test_tutorial_chromdragonn.py"}
NOTEBOOKS = [p for p in sorted((REPO / "tutorials").glob("*.ipynb")) if p.name not in OWN_FILE]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    run_notebook(path, tmp_path, monkeypatch)


def test_every_notebook_is_tested():
    for name, test_file in OWN_FILE.items():
        assert (REPO / "tests" / test_file).exists() and name in EXPECTED
    assert all(p.name in EXPECTED for p in NOTEBOOKS)


def run_notebook(path, tmp_path, monkeypatch):
    """Execute ``path`` from the repository root with ``TUTORIAL_OUT=tmp_path``; check what it printed
    and wrote against :data:`EXPECTED`."""
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("TUTORIAL_OUT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    for text in EXPECTED[path.name]["outputs"]:
        assert text in outputs
    for name in EXPECTED[path.name]["files"]:
        assert (tmp_path / name).stat().st_size > 100, name


# What each notebook must have printed and written (under TUTORIAL_OUT).
EXPECTED = {
    "01_preprocess.ipynb": {"outputs": ["(16, 16384, 4) (16, 128, 4)", "reads used: ", "multi-mapping at"],
                            "files": ["dropseq.bw", "dropseq.gc_model.png", "raw_vs_corrected.png", "tracks.png"]},
    "02_train_test_predict.ipynb": {
        "outputs": ["receptive field: 16,438 bp", "'epochs': 2", "model_best.keras", "acc.tsv",
                    "(5, 128, 3) float16", "ctcf.bw"],
        "files": ["model/model_best.keras", "test/acc.tsv", "test/scatter_cpg.png", "preds.h5"]},
    "03_variants.ipynb": {"outputs": ["vcf_ref_mismatch_skipped: 0", "vcf_scorable: 24,989", "pairs: 14,010",
                                      "SED on tss", "top-quintile enrichment", "permuted p > 0.01"],
                          "files": ["sed/sed.h5", "sed/sed.tsv", "ref_vs_alt.png", "sim/seed0/enrichment.png"]},
    "04_sat_mut.ipynb": {"outputs": ["held-out peaks", "'scores': (1, 120, 4, 1)", "method: fast",
                                     "12-bp window with the largest loss", "grad_x_input.bw"],
                         "files": ["sat_mut/scores.h5", "saliency/saliency.h5", "saliency/bin_saliency.bw"]},
    "05_hyper_search.ipynb": {"outputs": ["nearest: model.trunk[0].filters", "trials: 4, failed: 0", "best trial:",
                                          "'convergence.png'"],
                              "files": ["search/trials.tsv", "search/convergence.png", "search/params.png",
                                        "search/best/model_best.keras"]},
    "06_datasets.ipynb": {"outputs": ["profile: profile label (250, 3) at 1 bp", "tn5_bias: signal (250, 1) at 1 bp",
                                      "-> heads {'profile': 'profile', 'total': 'total'}; 3,303,606 parameters",
                                      "model.inputs.tn5_bias has shape [1000, 1], but",
                                      "activity: regression label (4,)", "of the 295 bp frame",
                                      "'epochs': 1", "accessible: binary label (1,)", "a balanced batch: positives 4 of 16",
                                      "signal: signal (201, 1) at 50 bp", "mark: regression label (1, 1) at 50 bp",
                                      "old: kind tiling"],
                          "files": ["regions_ctcf_stand-in_labels/statistics.json", "mpra/model_best.keras",
                                    "pairs_SEMI-SYNTHETIC/contexts.npy", "signal_record.png"]},
    "07_motifs.ipynb": {"outputs": ["held-out peaks", "grad_x_input attributions of", "within 1e-3)",
                                    "patterns named CTCF at q < 0.05; the largest:", "Wilcoxon p"],
                        "files": ["gxi/attributions.h5", "shap/attributions.h5", "motifs/matches.tsv",
                                  "motifs/motifs.png", "motifs/modisco.h5", "insert_MA0139.2/insertion_box.png"]},
    "08_chromdragonn.ipynb": {"outputs": ["programme TFs:", "test contexts:", "rna_weighted", "motifs x contexts:"],
                              "files": ["pairs_SEMI-SYNTHETIC/contexts.npy", "tune/history_steps.tsv", "fig1b.png",
                                        "test/pooled.tsv", "test/binned_auprc.png", "impute/tsne.png",
                                        "impute/imputed.h5", "motifs/activity.tsv", "contexts_SEMI-SYNTHETIC/truth.json"]},
}
