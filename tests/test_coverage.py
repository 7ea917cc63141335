"""bam_cov: events, multi-mapping reads, EM, GC correction, outputs and bad input.

Real BAMs come from ../shared/data (tests skip without it); the constructed BAMs written here
are labelled as such: they hold alignments made up for a case with a known answer.
"""

import collections
import gzip
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pyBigWig
import pysam
import pytest
from conftest import BIN_DIR, DATA, FASTA, assert_clean_failure, read_only, run_script, shared

from basenji_tk.data import dataset as ds
from basenji_tk import files
from basenji_tk.data import tfrecords as tfr
from basenji_tk.coverage.pipeline import Options, bam_cov

# ------------------------------------------------------------------ helpers


def write_bam(path, contigs, reads, sort_order="coordinate", index=True):
    """Write constructed alignments: reads are dicts with name, tid, pos, len (or cigar), and
    optional reverse, flag, tags, mapq, tlen, mate_pos. Sorted by (tid, pos) unless told not to."""
    header = {"HD": {"VN": "1.6", "SO": sort_order}, "SQ": [{"SN": n, "LN": ln} for n, ln in contigs]}
    if sort_order == "coordinate":
        reads = sorted(reads, key=lambda r: (r["tid"], r["pos"]))
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for r in reads:
            a = pysam.AlignedSegment(out.header)
            a.query_name = r["name"]
            a.flag = r.get("flag", 0) | (0x10 if r.get("reverse") else 0)
            a.reference_id = r["tid"]
            a.reference_start = r["pos"]
            a.mapping_quality = r.get("mapq", 30)
            a.cigarstring = r.get("cigar", f"{r.get('len', 50)}M")
            if "tlen" in r:
                a.next_reference_id, a.next_reference_start, a.template_length = r["tid"], r["mate_pos"], r["tlen"]
            for tag, value in r.get("tags", {}).items():
                a.set_tag(tag, value)
            out.write(a)
    if index:
        pysam.index(str(path))
    return path


def h5_tracks(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][:].astype(np.float64) for name in f}


def independent_events(bam_path, shift=0, max_maps=10):
    """5' event counts per base made with pysam loops: unique reads 1, an NH > 1 read 1/n at
    each of its n records (grouped by name and mate), reads with more than max_maps dropped."""
    bam = pysam.AlignmentFile(str(bam_path))
    counts = {c: np.zeros(n) for c, n in zip(bam.references, bam.lengths)}
    groups = collections.defaultdict(list)
    for r in bam.fetch(until_eof=True):
        if r.is_unmapped or r.is_qcfail or r.is_supplementary:
            continue
        if r.is_reverse:
            p = r.reference_end - 1 - shift
        else:
            p = r.reference_start + shift
        p = min(max(p, 0), bam.get_reference_length(r.reference_name) - 1)
        nh = r.get_tag("NH") if r.has_tag("NH") else 1
        if nh > 1:
            groups[(r.query_name, r.is_read2)].append((r.reference_name, p, nh))
        else:
            counts[r.reference_name][p] += 1
    used = sum(c.sum() for c in counts.values())
    for locations in groups.values():
        if max(len(locations), max(n for _, _, n in locations)) > max_maps:
            continue
        for chrom, p, _ in locations:
            counts[chrom][p] += 1 / len(locations)
        used += 1
    return counts, used, len(groups)


def run(bam, out, **options):
    summary = bam_cov(str(bam), str(out), Options(**options))
    return summary


# ------------------------------------------------------------------ events on real BAMs


@pytest.mark.parametrize("parts", [("grch37_chr20", "dropseq_chr20.bam"), ("bams", "dm3_chr2L_x.bam")])
@pytest.mark.parametrize("shift", [0, 40])
def test_events_equal_an_independent_pysam_count(tmp_path, parts, shift):
    bam = shared(*parts)
    summary = run(bam, tmp_path / "cov.h5", shift=shift)
    got = h5_tracks(tmp_path / "cov.h5")
    expected, used, _ = independent_events(bam, shift=shift)
    for chrom, values in expected.items():
        if values.any() or chrom in got:
            np.testing.assert_allclose(got[chrom], values, atol=1e-6, err_msg=chrom)
    assert summary.reads_used == used
    assert summary.total_coverage == pytest.approx(used)


def test_full_equals_depth_of_aligned_blocks(tmp_path):
    """--full: per-base depth of aligned blocks (deletions and introns excluded, as samtools depth)."""
    bam_path = shared("bams", "dm3_chr2L_x.bam")
    run(bam_path, tmp_path / "full.h5", full=True, max_maps=1)  # unique reads only: depth is an integer
    got = h5_tracks(tmp_path / "full.h5")["chr2L"]
    bam = pysam.AlignmentFile(str(bam_path))
    depth = np.zeros(bam.get_reference_length("chr2L"))
    for r in bam.fetch("chr2L"):
        if r.get_tag("NH") == 1:
            for start, end in r.get_blocks():
                depth[start:end] += 1
    np.testing.assert_array_equal(got, depth)
    assert depth.sum() > 1_000_000


def test_multi_mapping_reads_recognised_from_nh(tmp_path):
    for parts in (("bams", "dm3_chr2L_x.bam"), ("bams", "gm12878_rnaseq_dupradar.bam")):
        bam = shared(*parts)
        summary = run(bam, tmp_path / "x.h5", shift=0, force=True)
        expected, used, n_groups = independent_events(bam)
        names = collections.defaultdict(list)
        for r in pysam.AlignmentFile(str(bam)).fetch(until_eof=True):
            names[r.query_name].append(r.get_tag("NH"))
        too_many = sum(1 for v in names.values() if max(v) > 1 and max(max(v), len(v)) > 10)
        multi = sum(1 for v in names.values() if max(v) > 1) - too_many
        assert summary.multi == multi, parts
        assert summary.dropped["too_many_maps"] == too_many
        assert summary.reads_used == used
        assert summary.multi_scheme == "NH tag"
    # dm3: NH runs 1..13; 275 multi-mapping read names, one with NH 13 is dropped at --max_maps 10
    assert multi > 0


def test_mass_is_conserved_by_the_em(tmp_path):
    bam = shared("bams", "gm12878_rnaseq_dupradar.bam")  # 4,088 of 4,247 reads multi-mapping
    plain = run(bam, tmp_path / "plain.h5", shift=0)
    em = run(bam, tmp_path / "em.h5", shift=0, multi_em=30, em_tol=0)
    assert em.em_rounds == 30
    totals = [sum(v.sum() for v in h5_tracks(tmp_path / f"{n}.h5").values()) for n in ("plain", "em")]
    assert totals[0] == pytest.approx(plain.reads_used, rel=1e-6)  # float32 storage
    assert totals[1] == pytest.approx(em.reads_used, rel=1e-6)
    assert plain.total_coverage == pytest.approx(plain.reads_used, rel=1e-12)  # float64 sums
    assert em.total_coverage == pytest.approx(em.reads_used, rel=1e-12)
    a, b = h5_tracks(tmp_path / "plain.h5"), h5_tracks(tmp_path / "em.h5")
    assert any(np.abs(a[c] - b[c]).sum() > 1 for c in a)  # the EM did move weight


# ------------------------------------------------------------------ constructed cases


def repeat_case(tmp_path, secondary=True):
    """CONSTRUCTED: two identical 300-bp repeat copies on one 20-kb contig, A at 5,000 and B at
    14,000; 600 unique reads in the 300 bp on either side of A (none inside the copies), 120 reads
    that map equally well to A+o and B+o. Multi-mappers as primary + secondary (Bowtie2 -k) or
    with NH:i:2."""
    rng = np.random.default_rng(0)
    reads = []
    for i, p in enumerate(np.r_[rng.integers(4700, 5000, 300), rng.integers(5300, 5600, 300)]):
        reads.append(dict(name=f"u{i}", tid=0, pos=int(p)))
    for i, o in enumerate(rng.integers(0, 250, 120)):
        for k, base in enumerate((5000, 14000)):
            flag = 0x100 if (secondary and k) else 0
            tags = {} if secondary else {"NH": 2}
            reads.append(dict(name=f"m{i}", tid=0, pos=int(base + o), flag=flag, tags=tags, mapq=1))
    return write_bam(tmp_path / "repeat.bam", [("c", 20000)], reads)


@pytest.mark.parametrize("secondary", [True, False])
def test_em_moves_multi_reads_to_the_copy_with_unique_coverage(tmp_path, secondary):
    bam = repeat_case(tmp_path, secondary)
    summary = run(bam, tmp_path / "em.h5", shift=0, multi_em=100, em_tol=1e-4)
    cov = h5_tracks(tmp_path / "em.h5")["c"]
    on_a, on_b = cov[5000:5300].sum(), cov[14000:14300].sum()
    assert summary.multi == 120 and summary.unique == 600
    assert on_a + on_b == pytest.approx(120)
    assert on_a / 120 >= 0.9, (on_a, on_b, summary.em_history[-3:])
    run(bam, tmp_path / "even.h5", shift=0)  # no EM: half and half
    even = h5_tracks(tmp_path / "even.h5")["c"]
    assert even[5000:5300].sum() == pytest.approx(60) and even[14000:14300].sum() == pytest.approx(60)


def test_bwa_xa_alternatives_are_locations(tmp_path):
    """CONSTRUCTED: one read with BWA's XA tag naming a second hit on another contig."""
    reads = [dict(name="r1", tid=0, pos=100, len=50, mapq=0, tags={"XA": "c2,-1001,50M,0;"}),
             dict(name="r2", tid=0, pos=300, len=50)]
    bam = write_bam(tmp_path / "xa.bam", [("c1", 2000), ("c2", 2000)], reads)
    summary = run(bam, tmp_path / "xa.h5", shift=0)
    cov = h5_tracks(tmp_path / "xa.h5")
    assert summary.multi == 1 and summary.unique == 1 and "XA" in summary.multi_scheme
    assert cov["c1"][100] == 0.5 and cov["c1"][300] == 1
    assert cov["c2"][1000 + 50 - 1] == 0.5  # reverse hit at 1,001 (1-based): 5' end at 1,049 (0-based)


def test_shift_is_learned_single_and_paired(tmp_path):
    """CONSTRUCTED: 200-bp fragments; single-end reads from either end, then proper pairs."""
    rng = np.random.default_rng(1)
    starts = np.sort(rng.integers(1000, 99_000, 4000))
    single = []
    for i, s in enumerate(starts):
        if i % 2:
            single.append(dict(name=f"r{i}", tid=0, pos=int(s), len=36))
        else:
            single.append(dict(name=f"r{i}", tid=0, pos=int(s + 200 - 36), len=36, reverse=True))
    bam = write_bam(tmp_path / "se.bam", [("c", 100_000)], single)
    summary = run(bam, tmp_path / "se.h5", multi_em=0)
    assert abs(summary.shift - 100) <= 2, summary.shift_source
    pairs = []
    for i, s in enumerate(starts[:1000]):
        s = int(s)
        pairs.append(dict(name=f"p{i}", tid=0, pos=s, len=50, flag=0x1 | 0x2 | 0x40 | 0x20, tlen=180, mate_pos=s + 130))
        pairs.append(dict(name=f"p{i}", tid=0, pos=s + 130, len=50, flag=0x1 | 0x2 | 0x80, reverse=True, tlen=-180,
                          mate_pos=s))
    bam = write_bam(tmp_path / "pe.bam", [("c", 100_000)], pairs)
    summary = run(bam, tmp_path / "pe.h5")
    assert summary.paired and summary.shift == 90


# ------------------------------------------------------------------ GC correction (simulated)


def simulated_gc_bam(tmp_path, n_reads=240_000, region=(2_000_000, 6_000_000), fragment=200):
    """SIMULATED: fragments drawn from the real GRCh37 chr20 sequence in data/ (bases
    2-6 Mb) with a sampling probability that grows with their GC content (x 2**(8 (gc - 0.4)),
    so about 5x more likely at 60% GC than at 40%); single-end 50-bp reads from either end."""
    seq = pysam.FastaFile(str(FASTA)).fetch("20", *region).upper()
    s = np.frombuffer(seq.encode(), dtype=np.uint8)
    gc = np.cumsum(np.r_[0, (s == ord("G")) | (s == ord("C"))])
    n_bases = np.cumsum(np.r_[0, s != ord("N")])
    starts = np.arange(len(s) - fragment)
    frac = (gc[starts + fragment] - gc[starts]) / np.maximum(n_bases[starts + fragment] - n_bases[starts], 1)
    ok = (n_bases[starts + fragment] - n_bases[starts]) == fragment
    weight = np.where(ok, np.exp2(8 * (frac - 0.4)), 0)
    rng = np.random.default_rng(7)
    picked = np.sort(rng.choice(starts, n_reads, p=weight / weight.sum()))
    reverse = rng.random(n_reads) < 0.5
    reads = [dict(name=f"s{i}", tid=0, pos=int(region[0] + p + (fragment - 50 if rv else 0)), len=50, reverse=bool(rv))
             for i, (p, rv) in enumerate(zip(picked, reverse))]
    return write_bam(tmp_path / "gc_sim.bam", [("20", 20_000_000)], reads)


def binned_gc_correlation(track, region, bin_size=5000):
    seq = pysam.FastaFile(str(FASTA)).fetch("20", *region).upper()
    s = np.frombuffer(seq.encode(), dtype=np.uint8)
    n = len(s) // bin_size
    gc = ((s == ord("G")) | (s == ord("C")))[: n * bin_size].reshape(n, bin_size).mean(axis=1)
    cov = track[region[0]:region[0] + n * bin_size].reshape(n, bin_size).sum(axis=1)
    return np.corrcoef(gc, cov)[0, 1], cov.sum()


def test_gc_correction_removes_a_simulated_gc_bias(tmp_path):
    region = (2_000_000, 6_000_000)
    bam = simulated_gc_bam(tmp_path, region=region)
    raw = run(bam, tmp_path / "raw.h5", shift=100)
    fixed = run(bam, tmp_path / "gc.h5", shift=100, gc=str(FASTA))
    r_before, total_before = binned_gc_correlation(h5_tracks(tmp_path / "raw.h5")["20"], region)
    r_after, total_after = binned_gc_correlation(h5_tracks(tmp_path / "gc.h5")["20"], region)
    assert r_before > 0.5, r_before
    assert abs(r_after) < 0.1, r_after
    assert total_after == pytest.approx(total_before, rel=0.01)
    assert raw.gc is None and fixed.gc["log_base"] == 2 and len(fixed.gc["coefficients"]) == 4
    # the fitted effect rises with GC like the simulated one (slope 8 in log2 per unit GC)
    rows = [line.split("\t") for line in open(tmp_path / "gc.gc_model.tsv").read().splitlines()[1:]]
    fitted = {round(float(r[0]), 2): float(r[4]) for r in rows if r[6] == "1"}
    assert fitted[0.55] - fitted[0.35] == pytest.approx(8 * 0.2, abs=0.4)
    assert (tmp_path / "gc.gc_model.png").stat().st_size > 10_000


# ------------------------------------------------------------------ outputs


def test_bigwig_h5_bins_and_strands_agree(tmp_path):
    bam = shared("bams", "dm3_chr2L_x.bam")
    run(bam, tmp_path / "a.h5", shift=30, multi_em=5)
    run(bam, tmp_path / "a.bw", shift=30, multi_em=5, force=True)  # a.json again
    run(bam, tmp_path / "b.h5", shift=30, multi_em=5, bin=128)
    run(bam, tmp_path / "s.h5", shift=30, multi_em=5, strand=True)
    per_base = h5_tracks(tmp_path / "a.h5")["chr2L"]
    bw = pyBigWig.open(str(tmp_path / "a.bw"))
    assert bw.chroms() == dict(zip(*[pysam.AlignmentFile(str(bam)).references, pysam.AlignmentFile(str(bam)).lengths]))
    np.testing.assert_allclose(np.nan_to_num(bw.values("chr2L", 0, len(per_base))), per_base, rtol=1e-6)
    assert bw.stats("chr2L", 0, len(per_base), type="max", exact=True)[0] == pytest.approx(per_base.max())
    binned = h5_tracks(tmp_path / "b.h5")["chr2L"]
    padded = np.r_[per_base, np.zeros(-len(per_base) % 128)]
    np.testing.assert_allclose(binned, padded.reshape(-1, 128).sum(axis=1), rtol=1e-5, atol=1e-5)
    plus, minus = h5_tracks(tmp_path / "s.plus.h5")["chr2L"], h5_tracks(tmp_path / "s.minus.h5")["chr2L"]
    np.testing.assert_allclose(plus + minus, per_base, atol=1e-6)
    assert plus.sum() > 0 and minus.sum() > 0
    summary = json.loads((tmp_path / "a.json").read_text())
    assert summary["reads_used"] == summary["unique"] + summary["multi"]
    assert summary["em_rounds"] == 5 and summary["shift"] == 30
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_script_writes_bigwig_gc_report_and_summary(tmp_path):
    proc = run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "drop.bw", "--multi_em", "10", "--gc", FASTA,
                      "--gc_length_mismatch", check=True)
    assert "wrote" in proc.stdout
    for name in ("drop.bw", "drop.json", "drop.gc_model.png", "drop.gc_model.tsv"):
        assert (tmp_path / name).exists(), name
    summary = json.loads((tmp_path / "drop.json").read_text())
    assert summary["reads_used"] > 1000 and summary["gc"]["coefficients"]
    assert run_script("bam_cov.py", "--help").stdout.count("--multi_em") >= 1


# ------------------------------------------------------------------ bad input


def no_outputs(folder, keep=()):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert_clean_failure(run_script("bam_cov.py", tmp_path / "missing.bam", out / "x.bw"), "missing.bam", "no such")
    text = tmp_path / "text.bam"
    text.write_text("not a bam\n")
    assert_clean_failure(run_script("bam_cov.py", text, out / "x.bw"), "text.bam", "not a readable BAM")
    assert_clean_failure(run_script("bam_cov.py", DATA / "dropseq.bam", out / "x.txt"), ".bw/.bigwig")
    # header says unsorted
    unsorted = write_bam(tmp_path / "uns.bam", [("c", 5000)],
                         [dict(name="a", tid=0, pos=900), dict(name="b", tid=0, pos=100)], sort_order="unsorted",
                         index=False)
    assert_clean_failure(run_script("bam_cov.py", unsorted, out / "x.bw"), "not coordinate-sorted", "samtools sort")
    # no SO tag, records out of order: the first out-of-order read is named
    liar = write_bam(tmp_path / "liar.bam", [("c", 5000)], [dict(name="a", tid=0, pos=900), dict(name="b", tid=0, pos=100)],
                     sort_order="unknown", index=False)
    assert_clean_failure(run_script("bam_cov.py", liar, out / "x.bw"), "liar.bam", "not coordinate-sorted",
                         "first out-of-order read at c:101, after c:901", "samtools sort")
    # no usable reads
    empty = write_bam(tmp_path / "unmapped.bam", [("c", 5000)], [dict(name="a", tid=0, pos=10, flag=0x4)])
    assert_clean_failure(run_script("bam_cov.py", empty, out / "x.bw"), "no usable reads", "unmapped 1")
    # --gc FASTA with other chromosome names
    other = write_bam(tmp_path / "other.bam", [("chrZ", 5000)], [dict(name="a", tid=0, pos=10)])
    assert_clean_failure(run_script("bam_cov.py", other, out / "x.bw", "--gc", FASTA),
                         "BAM chromosome(s) chrZ", "the file has: 20")
    assert no_outputs(out) == []


def test_real_unsorted_bam_is_refused(tmp_path):
    bam = shared("bams", "mcf7_groseq_0min_chr7.bam")
    assert_clean_failure(run_script("bam_cov.py", bam, tmp_path / "x.bw"), "SO:unsorted", "samtools sort")
    assert no_outputs(tmp_path) == []


def test_sorted_bam_without_index_is_read_and_chr_prefix_matched(tmp_path):
    """No index is needed, and none is written beside the input; a missing output folder is made."""
    reads = [dict(name=f"r{i}", tid=0, pos=1_000_000 + 100 * i) for i in range(300)]
    bam = write_bam(tmp_path / "chr.bam", [("chr20", 20_000_000)], reads, index=False)
    summary = run(bam, tmp_path / "new" / "chr.h5", shift=0, gc=str(FASTA))  # FASTA names the contig '20'
    assert not (tmp_path / "chr.bam.bai").exists() and summary.reads_used == 300
    assert sorted(os.listdir(tmp_path / "new")) == ["chr.gc_model.png", "chr.gc_model.tsv", "chr.h5", "chr.json"]


def test_demo_bam_is_real_and_gzip_fasta_is_read(tmp_path):
    """The demo chain's input: data/dropseq.bam with the bgzip FASTA of data/."""
    with gzip.open(FASTA, "rt") as f:
        assert f.readline().startswith(">20")
    summary = run(DATA / "dropseq.bam", tmp_path / "d.h5", multi_em=10, gc=str(FASTA), gc_length_mismatch=True)
    assert summary.unique + summary.multi == summary.reads_used > 1000
    assert summary.gc["rescaled_by"][0] == pytest.approx(1, abs=0.2)


# ------------------------------------------------------------------ issue 14: bins, totals, outputs, BAM checks


def per_base_events(bam=DATA / "dropseq.bam", shift=0):
    expected, used, _ = independent_events(bam, shift=shift)
    return expected, used


@pytest.mark.parametrize("bin_size", [1, 64, 128, 1000])
def test_binned_bigwig_bins_match_pybigwig_stats(tmp_path, bin_size):
    """--bin N BigWig: every N-bp bin holds its events / N on each base (zoom levels within 32 bits)."""
    run(DATA / "dropseq.bam", tmp_path / "b.bw", shift=0, bin=bin_size)
    expected, used = per_base_events()
    events = expected["20"]
    length = len(events)
    bw = pyBigWig.open(str(tmp_path / "b.bw"))
    assert bw.chroms("20") == length
    n = -(-length // bin_size)
    sums = np.bincount(np.arange(length) // bin_size, weights=events, minlength=n)
    nonzero = np.flatnonzero(sums)
    assert len(nonzero) > 50
    for b in nonzero[:: max(1, len(nonzero) // 200)]:
        s, e = b * bin_size, min((b + 1) * bin_size, length)
        assert bw.stats("20", int(s), int(e), type="sum", exact=True)[0] == pytest.approx(sums[b], rel=1e-5)
        assert bw.stats("20", int(s), int(e), type="mean", exact=True)[0] == pytest.approx(sums[b] / (e - s), rel=1e-5)
        assert bw.stats("20", int(s), int(e), type="coverage", exact=True)[0] == pytest.approx(1.0)
    # whole-chromosome sums from the zoom levels and from the data agree with the reads used
    assert bw.stats("20", type="sum", exact=True)[0] == pytest.approx(used, rel=1e-5)
    # (libBigWig's zoom-based "sum" is not a sum, also on files pyBigWig writes: mean x covered bases is)
    mean, covered = (bw.stats("20", 0, 20_000_000, type=t)[0] for t in ("mean", "coverage"))
    assert mean * covered * 20_000_000 == pytest.approx(used, rel=1e-3)
    assert bw.stats("20", 0, 20_000_000, type="max")[0] == pytest.approx(sums.max() / bin_size, rel=1e-5)


def test_make_targets_sums_the_same_from_bin_1_and_bin_128_tracks(tmp_path):
    run(DATA / "dropseq.bam", tmp_path / "b1.bw", shift=0)
    run(DATA / "dropseq.bam", tmp_path / "b128.bw", shift=0, bin=128)
    (tmp_path / "t.txt").write_text("identifier\tfile\tsum_stat\nb1\tb1.bw\tsum\nb128\tb128.bw\tsum\n")
    # one contig from base 0 (the leading 60 kb of N do not split it) in one piece, tiled from base
    # 5,760 = 45 x 128, so every target bin is a track bin (a sequence off the bin grid would mix bins)
    o = ds.Options(seq_length=16384, pool_width=128, valid="0", test="0", target_dtype="float32",
                   gap_min=10_000_000, chunk_size=1 << 25)
    ds.make_targets(FASTA, tmp_path / "t.txt", tmp_path / "d", o)
    starts = [int(line.split("\t")[1]) for line in open(tmp_path / "d" / "sequences.bed")]
    assert len(starts) > 1000 and all(s % 128 == 0 for s in starts)
    y = np.concatenate([y for _, _, y in tfr.read_records(tmp_path / "d", "train")])
    assert y[:, 0].sum() > 1000  # most reads fall in the records
    np.testing.assert_allclose(y[:, 1], y[:, 0], rtol=1e-5, atol=1e-5)


def test_gc_correction_keeps_the_total_of_each_track(tmp_path):
    demo = run(DATA / "dropseq.bam", tmp_path / "d.h5", multi_em=10, gc=str(FASTA), gc_length_mismatch=True)
    assert demo.total_coverage == pytest.approx(demo.reads_used, rel=1e-9)
    assert sum(v.sum() for v in h5_tracks(tmp_path / "d.h5").values()) == pytest.approx(demo.reads_used, rel=1e-5)
    assert demo.gc["total_after"] == pytest.approx(demo.gc["total_before"], rel=1e-9)
    assert demo.gc["rescaled_by"][0] != pytest.approx(1, abs=1e-4)  # the correction alone moves the total
    stranded = run(DATA / "dropseq.bam", tmp_path / "s.h5", shift=0, strand=True, gc=str(FASTA),
                   gc_length_mismatch=True)
    plain = run(DATA / "dropseq.bam", tmp_path / "p.h5", shift=0, strand=True)
    for name in ("plus", "minus"):
        got = h5_tracks(tmp_path / f"s.{name}.h5")["20"]
        raw = h5_tracks(tmp_path / f"p.{name}.h5")["20"]
        assert got.sum() == pytest.approx(raw.sum(), rel=1e-5) and not np.allclose(got, raw)
    assert stranded.total_coverage == pytest.approx(plain.reads_used, rel=1e-9)
    full = run(DATA / "dropseq.bam", tmp_path / "f.h5", full=True, gc=str(FASTA), gc_length_mismatch=True)
    assert full.total_coverage == pytest.approx(full.gc["total_before"], rel=1e-9)
    assert full.total_coverage > 50 * full.reads_used  # aligned bases, not reads


def test_fasta_chromosome_length_must_match_the_bam_header(tmp_path):
    out = tmp_path / "out"
    proc = run_script("bam_cov.py", DATA / "dropseq.bam", out / "x.bw", "--gc", FASTA)
    assert_clean_failure(proc, "hg19_chr20_20Mb.fa.gz", "20 20,000,000 bp (BAM 63,025,520 bp)", "--gc_length_mismatch")
    assert not out.exists()
    # a FASTA chromosome longer than the header's is refused too
    reads = [dict(name=f"r{i}", tid=0, pos=1_000_000 + 100 * i) for i in range(300)]
    short = write_bam(tmp_path / "short.bam", [("20", 10_000_000)], reads)
    assert_clean_failure(run_script("bam_cov.py", short, out / "x.bw", "--gc", FASTA), "(BAM 10,000,000 bp)")
    # with the flag: one warning saying what stays uncorrected
    proc = run_script("bam_cov.py", DATA / "dropseq.bam", out / "x.bw", "--gc", FASTA, "--gc_length_mismatch",
                      check=True)
    warning = [line for line in proc.stderr.splitlines() if "--gc_length_mismatch" in line]
    assert len(warning) == 1 and "43,025,520 bases past the FASTA's ends (0 read events there)" in warning[0]


def test_a_second_run_into_the_same_output_is_refused(tmp_path):
    with files.claim(tmp_path / "x.bw", folder=False):  # a first run holding the output
        proc = run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "x.bw", "--strand")
    assert_clean_failure(proc, "x.bw", f"another run (process {os.getpid()})")
    assert os.listdir(tmp_path) == []


def test_finished_output_is_kept_unless_force(tmp_path):
    run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "x.bw", "--shift", "0", check=True)
    before = (tmp_path / "x.bw").stat().st_mtime_ns
    # refused before the BAM is opened: a missing BAM is not even noticed
    proc = run_script("bam_cov.py", tmp_path / "missing.bam", tmp_path / "x.bw")
    assert_clean_failure(proc, "already holds x.bw, x.json", "--force")
    os.remove(tmp_path / "x.bw")
    assert_clean_failure(run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "x.bw"), "already holds x.json")
    run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "s.bw", "--strand", check=True)
    os.remove(tmp_path / "s.json")
    assert_clean_failure(run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "s.bw", "--strand"),
                         "already holds s.plus.bw, s.minus.bw")
    run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "x.bw", "--shift", "0", "--force", check=True)
    assert (tmp_path / "x.bw").exists() and (tmp_path / "x.json").stat().st_mtime_ns > before


def test_unindexed_bam_in_a_read_only_folder_leaves_nothing_behind(tmp_path):
    reads = [dict(name=f"r{i}", tid=0, pos=1000 + 10 * i) for i in range(50)]
    ro = tmp_path / "ro"
    ro.mkdir()
    write_bam(ro / "x.bam", [("c", 5000)], reads, index=False)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = dict(os.environ, TMPDIR=str(temp), TF_CPP_MIN_LOG_LEVEL="3")
    for k in range(2):
        proc = subprocess.run([*read_only(ro), str(BIN_DIR / "bam_cov.py"), str(ro / "x.bam"),
                               str(tmp_path / f"o{k}.h5"), "--shift", "0"], capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        assert "50 reads" in proc.stdout and "indexed " not in proc.stderr
    assert os.listdir(ro) == ["x.bam"] and os.listdir(temp) == []


def test_bam_errors_name_the_real_cause(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # a damaged BAM without an index: damaged, not "could not be indexed"
    data = open(DATA / "dropseq.bam", "rb").read()
    bad = bytearray(data)
    bad[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.bam").write_bytes(bytes(bad))
    assert_clean_failure(run_script("bam_cov.py", tmp_path / "bad.bam", out / "x.bw"), "bad.bam", "damaged BAM")
    # header claims coordinate order, records are not
    liar = write_bam(tmp_path / "liar.bam", [("c", 5000)], [dict(name="a", tid=0, pos=900), dict(name="b", tid=0, pos=100)],
                     sort_order="unsorted", index=False)
    liar_header = pysam.AlignmentFile(str(liar)).header.to_dict()
    liar_header["HD"]["SO"] = "coordinate"
    with pysam.AlignmentFile(str(liar)) as src, pysam.AlignmentFile(str(tmp_path / "liar2.bam"), "wb",
                                                                     header=liar_header) as dst:
        for r in src.fetch(until_eof=True):
            dst.write(r)
    assert_clean_failure(run_script("bam_cov.py", tmp_path / "liar2.bam", out / "x.bw"), "not coordinate-sorted",
                         "first out-of-order read at c:101, after c:901", "header says SO:coordinate")
    # a sorted BAM whose header says unsorted is read, as samtools would index it
    reads = [dict(name=f"r{i}", tid=0, pos=100 + 10 * i) for i in range(40)]
    honest = write_bam(tmp_path / "sorted.bam", [("c", 5000)], reads, sort_order="unsorted", index=False)
    assert run(honest, out / "ok.h5", shift=0).reads_used == 40
    # empty BAM (header only), and a header without @SQ lines
    empty = write_bam(tmp_path / "empty.bam", [("c", 5000)], [], index=False)
    assert_clean_failure(run_script("bam_cov.py", empty, out / "x.bw"), "no usable reads", "no alignments")
    with pysam.AlignmentFile(str(tmp_path / "nosq.bam"), "wb", header={"HD": {"VN": "1.6"}}):
        pass
    assert_clean_failure(run_script("bam_cov.py", tmp_path / "nosq.bam", out / "x.bw"), "no reference sequences")
    assert sorted(os.listdir(out)) == ["ok.h5", "ok.json"]


def test_full_reports_no_shift(tmp_path):
    proc = run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "f.bw", "--full", check=True)
    assert "every aligned base (--full)" in proc.stdout and "shifted" not in proc.stdout
    summary = json.loads((tmp_path / "f.json").read_text())
    assert summary["shift"] is None and "not used" in summary["shift_source"]


def test_stranded_unfragmented_reads_get_a_warning(tmp_path):
    """GRO-seq (nascent RNA, 1-bp reads) and Drop-seq (3' RNA) look stranded; dm3 DNA-like reads do not."""
    groseq = shared("bams", "mcf7_groseq_0min_chr7.sorted.bam")
    proc = run_script("bam_cov.py", groseq, tmp_path / "g.bw", check=True)
    warning = [line for line in proc.stderr.splitlines() if "strand-specific" in line]
    assert len(warning) == 1 and "--shift 0 --strand" in warning[0]
    summary = json.loads((tmp_path / "g.json").read_text())
    assert summary["shift"] == 94 and summary["strand_asymmetry"] > 0.8
    proc = run_script("bam_cov.py", groseq, tmp_path / "g0.bw", "--shift", "0", "--strand", check=True)
    assert "strand-specific" not in proc.stderr
    proc = run_script("bam_cov.py", DATA / "dropseq.bam", tmp_path / "d.bw", check=True)
    assert "strand-specific" in proc.stderr
    dna = shared("bams", "dm3_chr2L_x.bam")
    proc = run_script("bam_cov.py", dna, tmp_path / "m.bw", check=True)
    assert "strand-specific" not in proc.stderr
    assert json.loads((tmp_path / "m.json").read_text())["strand_asymmetry"] < 0.2


def test_odd_chromosome_names_large_bins_and_strands_with_bins(tmp_path):
    """CONSTRUCTED: contig names with '/', '*', ':' and '|'; --bin beyond one output chunk; --strand --bin."""
    contigs = [("chrUn/KI270302v1", 5000), ("HLA-A*01:01:01:01", 6000), ("gi|123|x", 7_000_000)]
    reads = [dict(name=f"r{i}", tid=i % 3, pos=100 + 37 * i, reverse=bool(i % 2)) for i in range(90)]
    bam = write_bam(tmp_path / "odd.bam", contigs, reads)
    run(bam, tmp_path / "o.h5", shift=0)
    with h5py.File(tmp_path / "o.h5") as f:
        names = {f[k].attrs["chrom"]: f[k][:].sum() for k in f}
    assert names == {c: 30 for c, _ in contigs}
    run(bam, tmp_path / "s.bw", shift=0, strand=True, bin=128)
    for strand in ("plus", "minus"):
        bw = pyBigWig.open(str(tmp_path / f"s.{strand}.bw"))
        assert bw.chroms() == dict(contigs)
        for c, length in contigs:
            assert bw.stats(c, 0, length, type="sum", exact=True)[0] == pytest.approx(15)
    big = run(bam, tmp_path / "big.h5", shift=0, bin=5_000_000)
    assert big.total_coverage == 90
    assert h5_tracks(tmp_path / "big.h5")["gi|123|x"].tolist() == [30, 0]


# ------------------------------------------------------------------ the stage's modules


def test_0_1_names_resolve_to_the_module_that_defines_them():
    """basenji_tk.coverage was one module in 0.1: its names still resolve, each warning naming its own home."""
    import importlib
    import warnings

    from basenji_tk import coverage

    old_names = ["bam_cov", "Options", "Summary", "Alignments", "Reads", "read_alignments", "group_reads",
                 "learn_shift", "strand_cross_correlation", "global_offsets", "multi_em", "GenomeGC", "GCModel",
                 "fit_gc", "write_gc_report", "ChildPlot", "TrackWriter", "CHUNK", "DROP_REASONS", "GC_BINS",
                 "open_bam", "TRACK_EXTS"]
    defined = {}
    for sub in coverage._FORMER:
        module = importlib.import_module(f"basenji_tk.coverage.{sub}")
        defined.update({name: sub for name, value in vars(module).items()
                        if getattr(value, "__module__", None) == module.__name__ and name not in defined})
    for name in sorted(set(old_names) | set(defined)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = getattr(coverage, name)
        assert len(caught) == 1 and caught[0].category is DeprecationWarning
        message = str(caught[0].message)
        home = defined.get(name) or next(s for s in coverage._FORMER
                                         if hasattr(importlib.import_module(f"basenji_tk.coverage.{s}"), name))
        assert message.startswith(f"basenji_tk.coverage.{name} is now basenji_tk.coverage.{home}.{name};"), message
        assert value is getattr(importlib.import_module(f"basenji_tk.coverage.{home}"), name)


def test_importing_one_coverage_module_imports_only_what_it_needs():
    """``from basenji_tk.coverage import em`` imports em and the modules em imports, not the whole stage."""
    code = ("import sys\nfrom basenji_tk.coverage import em\n"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('basenji_tk.coverage.'))))")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["basenji_tk.coverage.checks", "basenji_tk.coverage.em",
                                   "basenji_tk.coverage.events"]


def test_gc_plot_child_imports_this_package(monkeypatch):
    """The child that draws the GC plot looks for basenji_tk first where the parent found it (a
    checkout need not be installed), then on the caller's PYTHONPATH."""
    import basenji_tk
    from basenji_tk.coverage import gc

    started = []

    class Child:
        def __init__(self, args, env, **kwargs):
            started.append((args, env))

    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    monkeypatch.setattr(gc.subprocess, "Popen", Child)
    gc.ChildPlot()
    (args, env), = started
    assert args[0] == sys.executable and "from basenji_tk.plots import gc_model_table" in args[2]
    first, rest = env["PYTHONPATH"].split(os.pathsep)
    assert os.path.join(first, "basenji_tk") == os.path.dirname(basenji_tk.__file__)
    assert rest == "/somewhere/else"
