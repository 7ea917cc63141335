"""TOMTOM motif matching and FIMO scanning (basenji_tk.interpret.motifmatch) and their scripts."""

import numpy as np
import pytest

from conftest import assert_clean_failure, run_script, shared
from basenji_tk.interpret.motifmatch import best_matches, scan, tomtom
from basenji_tk.io.meme import Motif, jaspar_motifs, read_meme, select, write_meme


@pytest.fixture(scope="module")
def jaspar():
    return jaspar_motifs()


def test_ctcf_matches_itself_first(jaspar):
    (ctcf,) = select(jaspar, ["MA0139.2"], "jaspar")
    table = tomtom([ctcf], jaspar)
    assert len(table) == len(jaspar) and list(table["rank"]) == list(range(1, len(jaspar) + 1))
    assert (np.diff(table["p_value"]) >= 0).all()
    top = table.iloc[0]
    assert (top.target, top.target_alt, top.orientation, top.offset, top.overlap) == ("MA0139.2", "CTCF", "+", 0, 15)
    assert top.q_value < 1e-30
    # the other CTCF matrices come next, all with q < 0.05, ahead of every other TF
    assert set(table["target"][:3]) == {"MA0139.2", "MA1929.2", "MA1930.2"}
    assert (table["q_value"][:3] < 0.05).all()
    np.testing.assert_allclose(table["e_value"], table["p_value"] * len(jaspar))
    # BH over the query's targets, against statsmodels
    from statsmodels.stats.multitest import multipletests

    np.testing.assert_allclose(table["q_value"], multipletests(table["p_value"], method="fdr_bh")[1], rtol=1e-9)
    best = best_matches(table)
    assert list(best["target"]) == ["MA0139.2"]


def test_reverse_complement_and_offset(jaspar):
    (ctcf,) = select(jaspar, ["MA0139.2"], "jaspar")
    inner = Motif("inner", ctcf.pwm[3:12])  # columns 3..11 of the target
    flipped = Motif("flipped", ctcf.pwm[3:12][::-1, ::-1])  # the same on the other strand
    table = tomtom([inner, flipped], jaspar, top=2)
    assert list(table["query"]) == ["inner", "inner", "flipped", "flipped"]
    a = table[table["query"] == "inner"].iloc[0]
    b = table[table["query"] == "flipped"].iloc[0]
    assert (a.target, a.orientation, a.offset, a.overlap) == ("MA0139.2", "+", 3, 9)
    # reverse complement of the 15-column target: the query's first column is its column 15 - 12 = 3
    assert (b.target, b.orientation, b.offset, b.overlap) == ("MA0139.2", "-", 3, 9)
    assert a.q_value < 0.05 and b.q_value < 0.05


def test_top_and_max_p(jaspar):
    qs = select(jaspar, ["MA0139.2", "MA0079.5"], "jaspar")  # CTCF, SP1
    full = tomtom(qs, jaspar)
    cut = tomtom(qs, jaspar, max_p=1e-4)
    assert len(cut) == (full["p_value"] <= 1e-4).sum() and len(cut) < len(full)
    # q-values come from all targets, not from the pairs kept
    merged = cut.merge(full, on=["query", "target"], suffixes=("", "_full"))
    np.testing.assert_allclose(merged["q_value"], merged["q_value_full"])
    best = best_matches(full, q=0.05)
    assert best["query"].tolist() == [m.name for m in qs] and best["target"].tolist() == [m.name for m in qs]
    assert best_matches(full, q=1e-300).empty


def test_archetypes_name_ctcf(jaspar):
    """JASPAR's CTCF matrix against the 182 JASPAR 2024 archetypes: the CTCF archetype first."""
    archetypes = read_meme(shared("motifs", "jaspar_2024_consensus.meme"))
    table = tomtom(select(jaspar, ["MA0139.2"], "jaspar"), archetypes, top=3)
    assert table.iloc[0].target.startswith("C055:CTCF") and table.iloc[0].q_value < 0.05
