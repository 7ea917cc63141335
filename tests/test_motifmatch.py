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


# ---------------------------------------------------------------- scanning
def planted(rng, motif, n=6, length=400):
    """GENERATED: uniform random sequences; the motif's consensus planted at known places."""
    from basenji_tk.data.dna import reverse_complement_str

    seqs, truth = [], []
    for i in range(n):
        s = list(rng.choice(list("ACGT"), length))
        if i % 3 != 2:  # every third sequence has no planted site
            start, strand = int(rng.integers(0, length - motif.width)), "+" if i % 3 == 0 else "-"
            site = motif.consensus if strand == "+" else reverse_complement_str(motif.consensus)
            s[start:start + motif.width] = site
            truth.append((i, start, strand))
        seqs.append("".join(s))
    return seqs, truth


def test_scan_finds_planted(jaspar):
    from basenji_tk.data.dna import one_hot

    (ctcf,) = select(jaspar, ["MA0139.2"], "jaspar")
    seqs, truth = planted(np.random.default_rng(3), ctcf)
    x = np.stack([one_hot(s) for s in seqs])
    hits = scan([ctcf], x, threshold=1e-4)
    strong = hits[hits["p_value"] < 1e-8]
    assert sorted(zip(strong["sequence"], strong["start"], strong["strand"])) == sorted(truth)
    # the consensus is the one best 15-mer of 4^15 (both strands are reported separately)
    np.testing.assert_allclose(strong["p_value"], 4.0 ** -15, rtol=1e-6)
    assert (strong["q_value"] < 0.05).all()
    assert (strong["end"] - strong["start"] == ctcf.width).all()
    assert (hits["p_value"] <= 1e-4).all() and (hits["q_value"] >= hits["p_value"]).all()
    # the consensus scores the motif's best log2-odds (memelite adds eps 1e-4 before the log)
    best = np.log2(ctcf.pwm.max(1) + 1e-4).sum() - ctcf.width * np.log2(0.25)
    np.testing.assert_allclose(strong["score"], best, rtol=1e-3)
    # sequences shorter than the array: a hit past a sequence's own length is dropped
    i, start, _ = truth[0]
    cut = scan([ctcf], x, lengths=[start + ctcf.width - 1 if k == i else len(seqs[k]) for k in range(len(x))])
    assert not ((cut["sequence"] == i) & (cut["start"] == start)).any()
    with pytest.raises(Exception, match="longer than every sequence"):
        scan([ctcf], x[:, :10])


def test_bh_of_smallest_is_bh():
    from scipy.stats import false_discovery_control

    from basenji_tk.interpret.motifmatch import _bh_of_smallest

    p = np.random.default_rng(0).uniform(size=5000) ** 4
    small = p[p < 1e-3]
    np.testing.assert_allclose(_bh_of_smallest(small, len(p)), false_discovery_control(p)[p < 1e-3])


# ---------------------------------------------------------------- logos
def test_logos(tmp_path, jaspar):
    import matplotlib.pyplot as plt

    from basenji_tk.interpret.logos import aligned_starts, draw_logo, information_heights, match_figure
    from basenji_tk.interpret.motifmatch import match_rows

    (ctcf,) = select(jaspar, ["MA0139.2"], "jaspar")
    h = information_heights(ctcf.pwm)
    np.testing.assert_allclose(h.sum(1), ctcf.information())
    assert aligned_starts(9, 15, 3) == (0, -3, -3, 12) and aligned_starts(8, 6, -2) == (0, 2, 0, 8)
    fig, ax = plt.subplots()
    draw_logo(ax, ctcf.pwm, start=5)
    assert ax.get_ylim() == (0, 2)
    draw_logo(ax, -h, information=False)
    assert ax.get_ylim()[0] < -1.5  # raw heights go below zero
    plt.close(fig)
    queries = [Motif("slice", ctcf.pwm[3:12][::-1, ::-1]), Motif("GENERATED_flat", np.full((5, 4), 0.25))]
    rows = match_rows(tomtom(queries, jaspar, top=5), queries, jaspar)
    assert rows[0]["target"].name == "MA0139.2" and rows[0]["orientation"] == "-"
    out = match_figure(rows, tmp_path / "m.png", title="GENERATED")
    assert open(out, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- scripts
def test_scripts_help():
    for name in ("tomtom.py", "scan_motifs.py"):
        proc = run_script(name, "--help", check=True)
        assert "usage:" in proc.stdout and "--force" in proc.stdout


def test_tomtom_script(tmp_path, jaspar):
    query = write_meme(select(jaspar, ["MA0139.2", "MA0079.5"], "jaspar"), tmp_path / "q.meme")
    proc = run_script("tomtom.py", "-q", query, "--top", 3, "-o", tmp_path / "out", check=True)
    import pandas as pd

    table = pd.read_csv(tmp_path / "out" / "tomtom.tsv", sep="\t")
    assert len(table) == 6 and list(table["target"][table["rank"] == 1]) == ["MA0079.5", "MA0139.2"]  # file order
    assert (tmp_path / "out" / "matches.png").stat().st_size > 10_000
    assert "2 with a match" in proc.stdout
    again = run_script("tomtom.py", "-q", query, "-o", tmp_path / "out")
    assert_clean_failure(again, "tomtom.tsv", "--force")


def test_tomtom_script_errors(tmp_path):
    bad = tmp_path / "bad.meme"
    bad.write_text("MEME version 4\n\nMOTIF a\nletter-probability matrix: alength= 4 w= 2\n0.25 0.25 0.25 0.25\n"
                   "0.5 0.5 0.5\n")
    assert_clean_failure(run_script("tomtom.py", bad, "-o", tmp_path / "o"), f"{bad}:6:", "4 columns")
    assert_clean_failure(run_script("tomtom.py", tmp_path / "none.meme", "-o", tmp_path / "o"), "no such MEME file")
    assert_clean_failure(run_script("tomtom.py", bad, "--db", bad, "-o", tmp_path / "o"), f"{bad}:6:")
    assert not (tmp_path / "o").exists()


def test_scan_script(tmp_path, jaspar):
    from conftest import write_fasta

    (ctcf,) = select(jaspar, ["MA0139.2"], "jaspar")
    seqs, truth = planted(np.random.default_rng(5), ctcf, n=3, length=300)
    fasta = write_fasta(tmp_path / "g.fa", {"chrA": "N" * 50 + "".join(seqs)})
    bed = tmp_path / "r.bed"
    bed.write_text("".join(f"chrA\t{50 + 300 * i}\t{50 + 300 * (i + 1)}\tr{i}\n" for i in range(3)))
    motifs = write_meme(select(jaspar, ["MA0139.2", "MA0079.5"], "jaspar"), tmp_path / "m.meme")
    run_script("scan_motifs.py", "-q", motifs, bed, "-f", fasta, "--names", "CTCF", "-o", tmp_path / "s", check=True)
    import pandas as pd

    hits = pd.read_csv(tmp_path / "s" / "hits.tsv", sep="\t")
    strong = hits[hits["p_value"] < 1e-8]
    assert (strong["q_value"] < 0.05).all()
    assert set(hits["motif"]) <= {"MA0139.2"}
    expected = sorted((50 + 300 * i + s, st) for i, s, st in truth)
    assert sorted(zip(strong["start"], strong["strand"])) == expected
    assert set(strong["matched"]) == {ctcf.consensus}  # read on the hit's strand
    bed_rows = [line.split("\t") for line in open(tmp_path / "s" / "hits.bed")]
    assert len(bed_rows) == len(hits) and bed_rows[0][0] == "chrA"

    assert_clean_failure(run_script("scan_motifs.py", motifs, bed, "-f", fasta, "--names", "CTCF,NOPE",
                                    "-o", tmp_path / "e1"), "no motif named NOPE")
    short = tmp_path / "short.bed"
    short.write_text("chrA\t60\t300\tok\nchrA\t100\t110\ttiny\n")
    assert_clean_failure(run_script("scan_motifs.py", motifs, short, "-f", fasta, "-o", tmp_path / "e2"),
                         "region tiny", "shorter than motif MA0139.2 (15 bp)")
    bad = tmp_path / "bad.meme"
    bad.write_text(open(motifs).read().replace(" 0.0", " x.0", 1))
    line = next(i for i, t in enumerate(open(bad), 1) if "x.0" in t)
    assert_clean_failure(run_script("scan_motifs.py", bad, bed, "-f", fasta, "-o", tmp_path / "e3"), f"{bad}:{line}:",
                         "not a number")
