"""tutorials/07_motifs.ipynb (its own file, so it runs beside the other notebooks)."""

from conftest import REPO
from test_tutorials import run_notebook


def test_motifs_notebook_runs(tmp_path, monkeypatch):
    run_notebook(REPO / "tutorials" / "07_motifs.ipynb", tmp_path, monkeypatch)
