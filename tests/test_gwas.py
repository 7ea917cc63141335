"""gwas_classify.py (basenji_tk.analysis.gwas): cross-validated AUROC from sed.h5 features.

The sed.h5 is GENERATED (:func:`test_sedld.write_sed`) with SIMULATED features.
"""

import json

import numpy as np

from conftest import assert_clean_failure, run_script
from test_sedld import write_sed


def test_gwas_classify(tmp_path):
    rng = np.random.default_rng(5)
    n = 120
    feats = rng.normal(size=(n, 6))
    feats[:60, :2] += 2.0  # the first 60 variants (SIMULATED positives) differ in two targets
    ids = [f"v{i}" for i in range(n)]
    path = write_sed(tmp_path / "sed.h5", "20", np.arange(n) + 1, ids, ["A"] * n, ["G"] * n, ["G1"] * n,
                     np.zeros(n), feats, targets=tuple(f"t{i}" for i in range(6)))
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("\n".join(ids[:60] + ["missing1"]) + "\n")
    neg.write_text("# matched negatives\n" + "\n".join(ids[60:]) + "\n")
    out = tmp_path / "out"
    proc = run_script("gwas_classify.py", "-q", path, pos, neg, "-o", out, "--stat", "SED", "--components", 3,
                      "--folds", 4, "--seed", 1)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "gwas_classify.json").read_text())
    assert len(res["auroc"]) == 4 and res["mean"] > 0.75 and res["counts"]["positives_not_in_sed"] == 1
    assert (out / "auroc.tsv").read_text().splitlines()[-2].startswith("mean\t")
    again = tmp_path / "again"
    run_script("gwas_classify.py", "-q", path, pos, neg, "-o", again, "--stat", "SED", "--components", 3,
               "--folds", 4, "--seed", 1, check=True)
    assert (again / "auroc.tsv").read_text() == (out / "auroc.tsv").read_text()
    neg.write_text("v0\nv100\n")
    assert_clean_failure(run_script("gwas_classify.py", path, pos, neg, "-o", out), "also in", "v0")
    neg.write_text("v100\nv101\n")
    assert_clean_failure(run_script("gwas_classify.py", path, pos, neg, "-o", out, "--folds", 5), "neg.txt",
                         "2 negatives")
