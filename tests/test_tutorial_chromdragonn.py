"""tutorials/08_chromdragonn.ipynb (its own file, so it runs beside the other notebooks)."""

from conftest import REPO
from test_tutorials import run_notebook


def test_chromdragonn_notebook_runs(tmp_path, monkeypatch):
    run_notebook(REPO / "tutorials" / "08_chromdragonn.ipynb", tmp_path, monkeypatch)
