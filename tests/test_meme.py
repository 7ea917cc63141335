"""MEME motif files: reading, writing, checking, JASPAR through pyjaspar."""

import numpy as np
import pytest

from conftest import shared
from basenji_tk.errors import InputError
from basenji_tk.io.meme import Motif, jaspar_motifs, motif_database, read_meme, select, write_meme

# GENERATED: two small motifs in the layout JASPAR and MEME write (line numbers matter below)
GOOD = """\
MEME version 4

ALPHABET= ACGT

strands: + -

Background letter frequencies
A 0.25 C 0.25 G 0.25 T 0.25

MOTIF MA0001.1 AGL3
letter-probability matrix: alength= 4 w= 3 nsites= 20 E= 0
 0.7  0.1  0.1  0.1
 0.0  1.0  0.0  0.0
 0.25 0.25 0.25 0.26
URL http://example.org/MA0001.1

MOTIF pos_patterns.pattern_0
letter-probability matrix: alength= 4 w= 2
0.1 0.2 0.3 0.4
0.5 0.5 0.0 0.0
"""
# line 10: MOTIF MA0001.1, 11: its header, 12-14: its rows (14 sums to 1.01: kept, renormalised), 17: MOTIF pattern_0


def write(tmp_path, text, name="m.meme"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_good(tmp_path):
    motifs = read_meme(write(tmp_path, GOOD))
    assert [m.name for m in motifs] == ["MA0001.1", "pos_patterns.pattern_0"]
    a, b = motifs
    assert a.alt == "AGL3" and a.nsites == 20 and a.url == "http://example.org/MA0001.1" and a.width == 3
    assert b.alt == "" and b.width == 2
    np.testing.assert_allclose(a.pwm[2], np.array([0.25, 0.25, 0.25, 0.26]) / 1.01)
    np.testing.assert_allclose(a.pwm.sum(1), 1.0)
    assert a.consensus == "ACT"
    rc = a.reverse_complement()
    np.testing.assert_allclose(rc.pwm[-1], [0.1, 0.1, 0.1, 0.7])  # A -> T at the other end
    assert rc.consensus == "AGT"
    ic = a.information()
    assert ic[1] == pytest.approx(2.0) and ic[2] == pytest.approx(0.0, abs=1e-3)
    assert ic[0] == pytest.approx(2 + 0.7 * np.log2(0.7) + 0.3 * np.log2(0.1))


def test_round_trip(tmp_path):
    motifs = read_meme(write(tmp_path, GOOD))
    out = write_meme(motifs, tmp_path / "out.meme", background=[0.3, 0.2, 0.2, 0.3])
    again = read_meme(out)
    assert [(m.name, m.alt, m.nsites, m.url) for m in again] == [(m.name, m.alt, m.nsites, m.url) for m in motifs]
    for x, y in zip(motifs, again):
        np.testing.assert_allclose(x.pwm, y.pwm, atol=2e-6)
    assert "A 0.30000 C 0.20000" in out_text(out)


def out_text(path):
    return open(path).read()


@pytest.mark.parametrize("line, new, where, words", [
    (12, " 0.7  0.1  0.2", 12, "4 columns"),
    (12, " 0.7  0.1  x  0.1", 12, "'x'"),
    (12, " 0.9  -0.1  0.1  0.1", 12, "negative"),
    (13, " 0.0  1.0  0.0  0.5", 13, "sums to 1.5"),
    (11, "letter-probability matrix: alength= 4 w= 4 nsites= 20 E= 0", 11, "w= 4 but has 3 rows"),
    (11, "letter-probability matrix: alength= 4 w= 2 nsites= 20 E= 0", 14, "more matrix rows than w= 2"),
    (10, "MOTIF pos_patterns.pattern_0", 17, "again (first at line 10)"),
    (11, "letter-probability matrix: alength= 20 w= 3", 11, "alength= 20"),
    (3, "ALPHABET= ACDEFGHIKLMNPQRSTVWY", 3, "only DNA"),
])
def test_bad_matrix_names_line(tmp_path, line, new, where, words):
    lines = GOOD.splitlines()
    lines[line - 1] = new
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputError) as err:
        read_meme(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:{where}: "), msg
    assert words in msg, msg


def test_no_motif_and_missing(tmp_path):
    with pytest.raises(InputError, match="no motif"):
        read_meme(write(tmp_path, "MEME version 4\n\nALPHABET= ACGT\n"))
    with pytest.raises(InputError, match="no motif"):
        read_meme(write(tmp_path, "chr1\t10\t20\n", "x.bed"))
    with pytest.raises(InputError, match=r"m.meme:3: MOTIF B has no letter-probability"):
        read_meme(write(tmp_path, "MEME version 4\n\nMOTIF B\nMOTIF C\nletter-probability matrix: w= 1\n1 0 0 0\n"))
    with pytest.raises(InputError, match="no such MEME file"):
        read_meme(tmp_path / "absent.meme")
    with pytest.raises(InputError, match="no such MEME file"):
        motif_database(tmp_path / "absent.meme")


def test_meme_txt_sections(tmp_path):
    """MEME's own meme.txt: the log-odds matrix and the site listings are skipped."""
    text = (GOOD.split("MOTIF")[0] + "MOTIF GGCA MEME-1\twidth =   2  sites =  20  llr = 175  E-value = 1.1e-003\n"
            "log-odds matrix: alength= 4 w= 2 n= 2000 bayes= 3 E= 1.1e-003\n -3 -2 4 1\n 2 -1 -3 0\n"
            "----\n\tMotif GGCA MEME-1 position-specific probability matrix\n----\n"
            "letter-probability matrix: alength= 4 w= 2 nsites= 20 E= 1.1e-003\n 0 0 1 0\n 0.5 0.5 0 0\n----\n")
    (m,) = read_meme(write(tmp_path, text))
    assert (m.name, m.alt, m.nsites, m.consensus) == ("GGCA", "MEME-1", 20, "GA")


def test_archetypes_file():
    path = shared("motifs", "jaspar_2024_consensus.meme")
    motifs = read_meme(path)
    assert len(motifs) == 182
    (ctcf,) = [m for m in motifs if m.name.startswith("C055:CTCF")]
    assert ctcf.width == 12 and ctcf.consensus == "CCACCAGGGGGC"
    assert all(np.allclose(m.pwm.sum(1), 1) for m in motifs)


def test_jaspar():
    motifs = jaspar_motifs()
    assert len(motifs) == 879  # JASPAR 2024 CORE vertebrates, latest version of each matrix
    (ctcf,) = select(motifs, ["MA0139.2"], "jaspar")
    assert ctcf.alt == "CTCF" and ctcf.width == 15 and ctcf.consensus == "GCCACCAGGGGGCGC"
    np.testing.assert_allclose(ctcf.pwm.sum(1), 1.0)
    assert ctcf.pwm.min() > 0  # the pseudocount
    assert {m.name for m in select(motifs, ["ctcf"], "jaspar")} == {"MA0139.2", "MA1929.2", "MA1930.2"}
    assert [m.name for m in jaspar_motifs(names=["MA0139"])] == ["MA0139.2"]
    with pytest.raises(InputError, match="no motif named NOSUCHTF"):
        jaspar_motifs(names=["CTCF", "nosuchtf"])
    assert len(motif_database("jaspar:CORE:vertebrates")) == 879
    with pytest.raises(InputError, match="expected jaspar"):
        motif_database("jaspar:CORE:vertebrates:JASPAR2024:x")


def test_motif_checks():
    with pytest.raises(ValueError):
        Motif("x", np.ones((3, 5)) / 5)
    with pytest.raises(ValueError):
        write_meme([Motif("a b", np.full((2, 4), 0.25))], "/dev/null")
