import numpy as np
import pytest

from basenji_tk.io import genome as gn
from basenji_tk.errors import InputError
from conftest import DATA, FASTA, write_fasta


def brute_covered(intervals, start, end):
    mask = np.zeros(end - start, dtype=bool)
    for s, e in intervals:
        mask[max(s, start) - start:max(min(e, end) - start, 0)] = True
    return mask


def test_interval_set_matches_brute_force():
    rng = np.random.default_rng(1)
    starts = rng.integers(0, 10_000, 300)
    ends = starts + rng.integers(0, 200, 300)
    iset = gn.IntervalSet(starts, ends)
    assert np.all(iset.starts[1:] > iset.ends[:-1])  # merged and disjoint
    for _ in range(200):
        a = int(rng.integers(0, 10_000))
        b = a + int(rng.integers(1, 2_000))
        expected = brute_covered(zip(starts, ends), a, b)
        assert iset.covered(a, b) == expected.sum()
        np.testing.assert_array_equal(iset.mask(a, b), expected)


def test_merge_and_complement():
    s, e = gn.merge_intervals([5, 0, 10, 3], [8, 4, 12, 6])
    assert list(zip(s, e)) == [(0, 8), (10, 12)]
    lo, hi = gn.complement([0, 10], [4, 12], 20)
    assert list(zip(lo, hi)) == [(4, 10), (12, 20)]


def test_n_runs_across_read_chunks(tmp_path):
    # GENERATED sequence: N runs placed across the 1 kb chunk boundaries used below
    rng = np.random.default_rng(0)
    seq = np.array(list("ACGT"))[rng.integers(0, 4, 5000)]
    for s, e in [(0, 10), (990, 1010), (2000, 3000), (4999, 5000)]:
        seq[s:e] = "N"
    fa = write_fasta(tmp_path / "g.fa", {"chrA": "".join(seq)})
    g = gn.Genome(fa)
    s, e = g.n_runs("chrA", chunk=1000)
    assert list(zip(s, e)) == [(0, 10), (990, 1010), (2000, 3000), (4999, 5000)]
    assert (tmp_path / "g.fa.fai").exists()  # indexed on first use
    assert g.fetch("chrA", -2, 3) == "NNNNN"


def test_real_chr20_gap_and_contigs():
    g = gn.Genome(FASTA)
    assert g.sizes == {"20": 20_000_000}
    s, e = g.n_runs("20")
    assert list(zip(s, e)) == [(0, 60_000)]  # the p-arm telomere; data/README.md
    blacklist = gn.read_bed_sets([DATA / "blacklist.bed"], g.chroms)
    contigs, masked = gn.find_contigs(g, 1000, blacklist=blacklist)
    assert [(c.start, c.end) for c in contigs] == [(60_000, 1_560_001), (1_605_000, 20_000_000)]
    assert masked["20"].covered(0, 100_000) == 60_000


def test_unmappable_runs_join_n_runs(tmp_path):
    # GENERATED: a 600 bp N run next to 600 bp unmappable makes one 1.2 kb gap
    seq = "A" * 1000 + "N" * 600 + "C" * 3400
    g = gn.Genome(write_fasta(tmp_path / "g.fa", {"c": seq}))
    unmap = {"c": gn.IntervalSet([1600], [2200])}
    contigs, _ = gn.find_contigs(g, 1000, unmap=unmap)
    assert [(c.start, c.end) for c in contigs] == [(0, 1000), (2200, 5000)]
    contigs, _ = gn.find_contigs(g, 1000)
    assert [(c.start, c.end) for c in contigs] == [(0, 5000)]


def test_plain_gzip_fasta_is_a_clear_error(tmp_path):
    fa = write_fasta(tmp_path / "g.fa.gz", {"c": "ACGT" * 100}, plain_gzip=True)
    with pytest.raises(InputError, match="not bgzip"):
        gn.Genome(fa)


def test_match_chroms_normalises_and_lists_absent(caplog):
    assert gn.match_chroms(["chr20", "chrX"], ["20"], "t.bed") == {"20": "chr20"}
    assert "normalised" in caplog.text
    with pytest.raises(InputError, match="none of its chromosomes .*chr1"):
        gn.match_chroms(["chr1"], ["20"], "t.bed")
    with pytest.raises(InputError, match="no data for FASTA chromosome.*21.*file has: 20"):
        gn.match_chroms(["20"], ["20", "21"], "t.bw", needed=["20", "21"])


def test_read_bed_errors_name_the_line(tmp_path):
    bed = tmp_path / "x.bed"
    bed.write_text("track name=x\n20\t5\t10\n20\tfive\t10\n")
    with pytest.raises(InputError, match=r"x.bed:3: expected numbers"):
        gn.read_bed(bed)
    bed.write_text("20\t5\n")
    with pytest.raises(InputError, match=r"x.bed:1: expected 3 tab-separated columns"):
        gn.read_bed(bed)
    bed.write_text("20\t9\t5\n")
    with pytest.raises(InputError, match=r"x.bed:1: expected 0 <= start <= end"):
        gn.read_bed(bed)
