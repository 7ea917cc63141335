import math

import numpy as np
import pytest

from basenji_tk.io import genome as gn
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError
from conftest import DATA, TARGETS


def table(tmp_path, text, files=("a.bed",)):
    for f in files:
        (tmp_path / f).write_text("20\t0\t10\n")
    path = tmp_path / "targets.txt"
    path.write_text(text)
    return path


def test_demo_table_reads():
    ts = tg.read_targets(TARGETS)
    assert [t.identifier for t in ts] == ["ctcf", "cpg", "tss"]
    assert all(t.sum_stat == "sum" and t.clip == 128 and t.clip_soft == 128 for t in ts)
    assert ts[0].file == str(DATA / "ctcf_peaks.bed")


def test_optional_columns_default_and_basenji_index_column(tmp_path):
    path = table(tmp_path, "\tidentifier\tfile\n0\tx\ta.bed\n")
    (t,) = tg.read_targets(path)
    assert (t.sum_stat, t.clip, t.scale, t.description, t.score_column) == ("sum", math.inf, 1.0, "x", None)


@pytest.mark.parametrize("text, words", [
    ("identifier\tfile\tsum_stat\nx\ta.bed\n", [":2", "row 'x'", "2 tab-separated columns", "header has 3"]),
    ("identifier\tfile\nx\tmissing.bed\n", [":2", "row 'x'", "file not found", "missing.bed"]),
    ("identifier\tpath\nx\ta.bed\n", [":1", "lacks column 'file'"]),
    ("identifier\tfile\tcolour\nx\ta.bed\tred\n", ["unknown column(s) colour", "allowed"]),
    ("identifier\tfile\nx\ta.bed\nx\ta.bed\n", [":3", "repeats line 2"]),
    ("identifier\tfile\tsum_stat\nx\ta.bed\tmedian\n", ["row 'x'", "sum, mean, max", "'median'"]),
    ("identifier\tfile\tclip\nx\ta.bed\tten\n", ["row 'x'", "'clip'", "'ten'"]),
    ("identifier\tfile\tscale\nx\ta.bed\t0\n", ["'scale' must be > 0"]),
    ("identifier\tfile\tscore_column\nx\ta.bed\t2\n", ["score_column", ">= 4"]),
    ("identifier\tfile\n", ["no target rows"]),
])
def test_bad_tables_name_the_line_and_row(tmp_path, text, words):
    path = table(tmp_path, text)
    with pytest.raises(InputError) as err:
        tg.read_targets(path)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_bin_values_and_transform():
    v = np.arange(8, dtype=np.float32)
    assert tg.bin_values(v, 4, "sum").tolist() == [6, 22]
    assert tg.bin_values(v, 4, "mean").tolist() == [1.5, 5.5]
    assert tg.bin_values(v, 4, "max").tolist() == [3, 7]
    x = tg.transform(np.array([1.0, 10.0, 30.0], dtype=np.float32), scale=2, clip_soft=16, clip=20)
    # 2 -> 2; 20 -> 16 + sqrt(4) = 18; 60 -> 16 + sqrt(44) = 22.63 -> clipped to 20
    np.testing.assert_allclose(x, [2, 18, 20], rtol=1e-6)


def test_bed_track_binary_and_scored_against_brute_force(tmp_path):
    rng = np.random.default_rng(3)
    starts = rng.integers(0, 5000, 80)
    ends = starts + rng.integers(1, 300, 80)
    scores = rng.integers(1, 100, 80)
    bed = tmp_path / "x.bed"  # GENERATED intervals
    bed.write_text("".join(f"chr1\t{s}\t{e}\tp{i}\t{v}\n" for i, (s, e, v) in enumerate(zip(starts, ends, scores))))
    binary = tg.BedTrack(tg.Target("b", str(bed)), ["1"], ["1"])
    scored = tg.BedTrack(tg.Target("s", str(bed), score_column=5), ["1"], ["1"])
    depth = np.zeros(6000)
    for s, e, v in zip(starts, ends, scores):
        depth[s:e] += v
    covered = np.zeros(6000)
    for s, e in zip(starts, ends):
        covered[s:e] = 1
    for a, b in [(0, 6000), (123, 456), (4000, 5999)]:
        np.testing.assert_array_equal(binary.values("1", a, b), covered[a:b])
        np.testing.assert_array_equal(scored.values("1", a, b), depth[a:b])


def test_tile_is_centred_and_inside():
    # 1100 bp: 800 bp of slack is 3 strides and 50 bp, split evenly at both ends
    assert tg.tile(gn.Interval("c", 100, 1200), 300, 250) == [125, 375, 625, 875]
    assert tg.tile(gn.Interval("c", 0, 299), 300, 100) == []


def _contigs():
    # GENERATED layout: three chromosomes of 10, 6 and 4 Mb with one gap on the first
    return [gn.Interval("1", 0, 4_000_000), gn.Interval("1", 4_100_000, 10_000_000),
            gn.Interval("2", 0, 6_000_000), gn.Interval("3", 0, 4_000_000)]


def overlaps(a, b):
    return a.chrom == b.chrom and a.start < b.end and b.start < a.end


def test_fraction_splits_are_disjoint_and_near_their_share():
    out = tg.assign_splits(_contigs(), 0.1, 0.2, 131072, 1_000_000, seed=5)
    total = sum(len(c) for s in tg.SPLITS for c in out[s])
    assert abs(sum(map(len, out["valid"])) / total - 0.1) < 0.05
    assert abs(sum(map(len, out["test"])) / total - 0.2) < 0.05
    pieces = [(s, c) for s in tg.SPLITS for c in out[s]]
    for i, (s1, a) in enumerate(pieces):
        for s2, b in pieces[i + 1:]:
            assert not overlaps(a, b)
    assert out == tg.assign_splits(_contigs(), 0.1, 0.2, 131072, 1_000_000, seed=5)
    assert out != tg.assign_splits(_contigs(), 0.1, 0.2, 131072, 1_000_000, seed=6)


def test_small_fraction_still_gets_a_chunk_and_chromosome_lists():
    out = tg.assign_splits(_contigs(), 0.001, 0.0, 131072, 1_000_000, seed=0)
    assert len(out["valid"]) == 1 and out["test"] == []
    out = tg.assign_splits(_contigs(), ["chr2"], ["3"], 131072, 1_000_000, seed=0)
    assert {c.chrom for c in out["valid"]} == {"2"} and {c.chrom for c in out["test"]} == {"3"}
    assert {c.chrom for c in out["train"]} == {"1"}
    with pytest.raises(InputError, match="also in --valid"):
        tg.assign_splits(_contigs(), ["2"], ["2"], 131072, 1_000_000, seed=0)


def test_parse_split():
    assert tg.parse_split("0.1", "--valid") == 0.1
    assert tg.parse_split("chr8, chr9", "--valid") == ["chr8", "chr9"]
    with pytest.raises(InputError, match=r"--test: a fraction must be in \[0, 1\)"):
        tg.parse_split("1.5", "--test")


def test_table_row_naming_a_folder_or_a_binary_file(tmp_path):
    (tmp_path / "sub").mkdir()
    with pytest.raises(InputError, match=r"targets.txt:2 \(row 'x'\): .*sub is a folder"):
        tg.read_targets(table(tmp_path, "identifier\tfile\nx\tsub\n"))
    (tmp_path / "reads.bam").write_bytes((DATA / "dropseq.bam").read_bytes()[:4096])  # real BAM bytes: gzip, binary
    (t,) = tg.read_targets(table(tmp_path, "identifier\tfile\nx\treads.bam\n"))
    with pytest.raises(InputError, match=r"targets.txt:2 \(row 'x'\): .*reads.bam is neither a BigWig nor a text BED"):
        tg.open_track(t, ["20"], ["20"])
