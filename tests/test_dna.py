import numpy as np
import pysam
import pytest

from basenji_tk.data import dna
from conftest import FASTA


def naive_one_hot(seq):
    out = np.zeros((len(seq), 4), dtype=np.uint8)
    for i, b in enumerate(seq.upper()):
        if b in "ACGT":
            out[i, "ACGT".index(b)] = 1
    return out


def test_one_hot_matches_naive_on_real_sequence():
    with pysam.FastaFile(str(FASTA)) as fa:
        seq = fa.fetch("20", 59_000, 61_000)  # crosses the end of the telomere gap
    assert "N" in seq and "A" in seq
    x = dna.one_hot(seq)
    assert x.shape == (2000, 4) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, naive_one_hot(seq))
    assert dna.decode(x) == seq.upper()


def test_one_hot_case_other_letters_and_n_value():
    x = dna.one_hot("acgtNRY", n_value=0.25, dtype=np.float32)
    np.testing.assert_array_equal(x[:4], np.eye(4, dtype=np.float32))
    np.testing.assert_array_equal(x[4:], np.full((3, 4), 0.25, dtype=np.float32))
    assert dna.encode(b"ACGTN").tolist() == [0, 1, 2, 3, 4]
    assert dna.one_hot("").shape == (0, 4)


def test_reverse_complement_one_hot_and_string():
    seq = "AACGTTTNG"
    rc = dna.reverse_complement(dna.one_hot(seq))
    assert dna.decode(rc) == dna.reverse_complement_str(seq) == "CNAAACGTT"
    batch = np.stack([dna.one_hot(seq)] * 2)
    assert dna.reverse_complement(batch).shape == (2, 9, 4)


def test_decode_rejects_wrong_shape_and_marks_ambiguous_rows():
    with pytest.raises(ValueError):
        dna.decode(np.zeros((3, 5)))
    x = np.array([[0.25, 0.25, 0.25, 0.25], [0, 0, 0, 0], [0, 0.9, 0.1, 0]])
    assert dna.decode(x) == "NNC"


def test_long_sequences_take_the_compiled_path_and_agree():
    # over 1 Mb (two threads), odd length, lower case and other letters included
    with pysam.FastaFile(str(FASTA)) as fa:
        seq = fa.fetch("20", 59_000, 59_000 + (1 << 20) + 1)
    seq = seq[:1000] + seq[1000:2000].lower() + "RYKM" + seq[2004:]
    assert len(seq) > dna._PARALLEL_MIN and len(seq) % 2 == 1
    x = dna.one_hot(seq)
    np.testing.assert_array_equal(x, naive_one_hot(seq))
    np.testing.assert_array_equal(x[:5000], dna.one_hot(seq[:5000]))
