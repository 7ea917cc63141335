"""make_targets.py end to end on the bundled real data, and its errors."""

import filecmp
import json
import os
import subprocess

import numpy as np
import pysam
import pytest

from basenji_tk.data import dataset as ds
from basenji_tk.data import tfrecords as tfr
from conftest import DATA, FASTA, TARGETS, run_script, write_fasta

LETTERS = np.frombuffer(b"ACGTN", dtype=np.uint8)


def read_bed_rows(path):
    rows = [line.split("\t") for line in open(path) if line.strip()]
    return [(r[0], int(r[1]), int(r[2]), r[3].strip()) for r in rows]


def coverage_by_hand(bed_path, chrom, start, end):
    """1 per base covered by any interval: an independent reading of the BED file."""
    cov = np.zeros(end - start)
    for line in open(bed_path):
        f = line.split("\t")
        if f[0] == chrom and int(f[1]) < end and int(f[2]) > start:
            cov[max(int(f[1]), start) - start:min(int(f[2]), end) - start] = 1
    return cov


def all_records(data_dir):
    return {i: (codes, y) for split in ("train", "valid", "test") for i, codes, y in tfr.read_records(data_dir, split)}


def test_acceptance_command_writes_the_dataset(demo_dataset):
    d = demo_dataset
    stats = json.loads((d / "statistics.json").read_text())
    assert (stats["seq_length"], stats["pool_width"], stats["target_length"]) == (16384, 128, 128)
    assert stats["target_ids"] == ["ctcf", "cpg", "tss"] and stats["num_targets"] == 3
    assert stats["genome"]["sha256"] == ds.file_sha256(FASTA)
    rows = read_bed_rows(d / "sequences.bed")
    counts = {s: sum(r[3] == s for r in rows) for s in ("train", "valid", "test")}
    assert counts == stats["counts"] and all(counts.values())
    # ~10% each for valid and test, in whole chunks
    assert 0.05 < counts["valid"] / len(rows) < 0.15 and 0.05 < counts["test"] / len(rows) < 0.15
    assert (d / "targets.txt").exists()
    assert sorted(os.listdir(d / "tfrecords")) == sorted(
        f"{s}-{k}.tfr" for s in counts for k in range(-(-counts[s] // 256)))
    assert not [p for p in os.listdir(d.parent) if p.startswith(".")]  # no temporary folders left


def test_splits_are_disjoint_and_inside_contigs(demo_dataset):
    rows = read_bed_rows(demo_dataset / "sequences.bed")
    assert all(e - s == 16384 and s >= 60_000 and e <= 20_000_000 for _, s, e, _ in rows)  # outside the N gap
    by_split = {}
    for _, s, e, split in rows:
        by_split.setdefault(split, []).append((s, e))
    for a in by_split:
        for b in by_split:
            if a < b:
                for s1, e1 in by_split[a]:
                    for s2, e2 in by_split[b]:
                        assert e1 <= s2 or e2 <= s1, (a, b, s1, s2)


def test_random_records_equal_fasta_and_recomputed_targets(demo_dataset):
    rows = read_bed_rows(demo_dataset / "sequences.bed")
    records = all_records(demo_dataset)
    assert sorted(records) == list(range(len(rows)))
    beds = [DATA / "ctcf_peaks.bed", DATA / "cpg_islands.bed", DATA / "tss_pm500.bed"]
    rng = np.random.default_rng(7)
    with pysam.FastaFile(str(FASTA)) as fa:
        for i in rng.choice(len(rows), 25, replace=False):
            chrom, start, end, _ = rows[i]
            codes, y = records[i]
            assert LETTERS[codes].tobytes().decode() == fa.fetch(chrom, start, end).upper()
            for j, bed in enumerate(beds):
                expected = coverage_by_hand(bed, chrom, start, end).reshape(-1, 128).sum(axis=1)
                np.testing.assert_array_equal(y[:, j], expected.astype(np.float16))


def test_same_seed_same_files_and_another_seed_differs(demo_dataset, tmp_path):
    o = ds.Options(seq_length=16384, pool_width=128, valid="0.1", test="0.1")
    ds.make_targets(FASTA, TARGETS, tmp_path / "again", o)
    cmp = filecmp.dircmp(demo_dataset, tmp_path / "again")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    assert not cmp.subdirs["tfrecords"].diff_files
    for name in os.listdir(demo_dataset / "tfrecords"):
        assert filecmp.cmp(demo_dataset / "tfrecords" / name, tmp_path / "again" / "tfrecords" / name, shallow=False)
    o.seed = 1
    ds.make_targets(FASTA, TARGETS, tmp_path / "seed1", o)
    assert (tmp_path / "seed1" / "sequences.bed").read_text() != (demo_dataset / "sequences.bed").read_text()


def dropseq_bigwig(path, name="chr20"):
    """Real Drop-seq read coverage from data/dropseq.bam as a BigWig, contig renamed to ``name``."""
    import pyBigWig

    cov = np.zeros(20_000_000, dtype=np.float32)
    with pysam.AlignmentFile(str(DATA / "dropseq.bam")) as bam:
        for read in bam.fetch("20", 0, 20_000_000):
            for s, e in read.get_blocks():
                cov[s:min(e, 20_000_000)] += 1
    edges = np.flatnonzero(np.diff(np.concatenate([[0], cov, [0]])) != 0)
    starts, ends = edges[:-1], edges[1:]
    keep = cov[starts] > 0
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(name, 20_000_000)])
    bw.addEntries([name] * int(keep.sum()), starts[keep].tolist(), ends=ends[keep].tolist(),
                  values=cov[starts[keep]].astype(float).tolist())
    bw.close()
    return cov


def test_bigwig_targets_with_renamed_chromosome_match_pybigwig_stats(tmp_path, caplog):
    import pyBigWig

    dropseq_bigwig(tmp_path / "dropseq.bw")
    (tmp_path / "t.txt").write_text(
        "identifier\tfile\tsum_stat\tscale\tclip\n"
        "reads_sum\tdropseq.bw\tsum\t1\tinf\n"
        "reads_max\tdropseq.bw\tmax\t2\t5\n")
    o = ds.Options(seq_length=16384, pool_width=128, valid="0.1", test="0.1", target_dtype="float32")
    ds.make_targets(FASTA, tmp_path / "t.txt", tmp_path / "d", o)
    assert "chr20->20" in caplog.text  # normalised with a warning
    rows = read_bed_rows(tmp_path / "d" / "sequences.bed")
    records = all_records(tmp_path / "d")
    bw = pyBigWig.open(str(tmp_path / "dropseq.bw"))
    nonzero = [i for i in records if records[i][1][:, 0].any()]
    assert len(nonzero) > 20  # the reads do reach many sequences
    for i in nonzero[:15]:
        _, start, end, _ = rows[i]
        _, y = records[i]
        for b in range(0, 128):
            s = start + 128 * b
            total = bw.stats("chr20", s, s + 128, type="sum", exact=True)[0] or 0.0
            top = bw.stats("chr20", s, s + 128, type="max", exact=True)[0] or 0.0
            assert y[b, 0] == pytest.approx(total, rel=1e-6)
            assert y[b, 1] == pytest.approx(min(2 * top, 5.0), rel=1e-6)


# ----------------------------------------------------------------------------- bad input
def assert_clean_failure(proc, *words, out=None):
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    if out is not None:
        assert not out.exists()
        assert not [p for p in os.listdir(out.parent) if ".tmp-" in p]


def test_help():
    proc = run_script("make_targets.py", "--help")
    assert proc.returncode == 0
    for w in ("--seq_length", "--pool_width", "sequences.bed", "statistics.json", "--force", "(default: 131072)"):
        assert w in proc.stdout


def test_error_fasta_that_cannot_be_indexed(tmp_path):
    fa = write_fasta(tmp_path / "g.fa.gz", {"20": "ACGT" * 1000}, plain_gzip=True)
    proc = run_script("make_targets.py", fa, TARGETS, "-o", tmp_path / "o")
    assert_clean_failure(proc, str(fa), "bgzip", out=tmp_path / "o")


def test_error_track_chromosomes_absent_from_fasta(tmp_path):
    (tmp_path / "x.bed").write_text("chr1\t100\t200\nchrX\t5\t50\n")
    (tmp_path / "t.txt").write_text("identifier\tfile\nx\tx.bed\n")
    proc = run_script("make_targets.py", "-l", 16384, FASTA, tmp_path / "t.txt", "-o", tmp_path / "o")
    assert_clean_failure(proc, "x.bed", "chr1", "chrX", "is in the FASTA", out=tmp_path / "o")


def test_error_bigwig_lacking_a_needed_chromosome(tmp_path):
    import pyBigWig

    bw = pyBigWig.open(str(tmp_path / "x.bw"), "w")
    bw.addHeader([("chr1", 1000)])
    bw.addEntries(["chr1"], [0], ends=[10], values=[1.0])
    bw.close()
    (tmp_path / "t.txt").write_text("identifier\tfile\nx\tx.bw\n")
    proc = run_script("make_targets.py", "-l", 16384, FASTA, tmp_path / "t.txt", "-o", tmp_path / "o")
    assert_clean_failure(proc, "x.bw", "no data for FASTA chromosome(s) 20", "chr1", out=tmp_path / "o")


def test_error_targets_row_missing_a_column_or_file(tmp_path):
    text = TARGETS.read_text().replace("\t128\t1\tCpG", "\t1\tCpG")
    for name in ("ctcf_peaks.bed", "cpg_islands.bed", "tss_pm500.bed"):
        text = text.replace(f"\t{name}\t", f"\t{DATA / name}\t")
    (tmp_path / "t.txt").write_text(text)
    (tmp_path / "t2.txt").write_text("identifier\tfile\nctcf\tnowhere.bed\n")
    proc = run_script("make_targets.py", FASTA, tmp_path / "t.txt", "-o", tmp_path / "o")
    assert_clean_failure(proc, "t.txt:3", "row 'cpg'", "6 tab-separated columns", out=tmp_path / "o")
    proc = run_script("make_targets.py", FASTA, tmp_path / "t2.txt", "-o", tmp_path / "o")
    assert_clean_failure(proc, "t2.txt:2", "row 'ctcf'", "nowhere.bed", out=tmp_path / "o")


def test_error_seq_length_not_multiple_of_pool_width(tmp_path):
    proc = run_script("make_targets.py", "-l", 1000, "-w", 128, FASTA, TARGETS, "-o", tmp_path / "o")
    assert_clean_failure(proc, "--seq_length 1000", "--pool_width 128", "896", "1024", out=tmp_path / "o")


def test_error_split_that_ends_up_empty(tmp_path):
    # 8 Mb sequences: the 20 Mb fit two chunks, which valid and test take
    proc = run_script("make_targets.py", "-l", 8_388_608, FASTA, TARGETS, "-o", tmp_path / "o")
    assert_clean_failure(proc, "train split is empty", out=tmp_path / "o")
    proc = run_script("make_targets.py", "-l", 16384, "--valid", "chrY", FASTA, TARGETS, "-o", tmp_path / "o")
    assert_clean_failure(proc, "--valid", "chrY", out=tmp_path / "o")


def test_output_folder_with_a_different_dataset_is_kept_unless_forced(tmp_path):
    out = tmp_path / "d"
    ds.make_targets(FASTA, TARGETS, out, ds.Options(seq_length=16384, valid="0.1", test="0.1"))
    before = (out / "statistics.json").read_text()
    proc = run_script("make_targets.py", "-l", 32768, FASTA, TARGETS, "-o", out)
    assert_clean_failure(proc, str(out), "different dataset", "--force")
    assert (out / "statistics.json").read_text() == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    proc = run_script("make_targets.py", "-l", 32768, FASTA, TARGETS, "-o", tmp_path / "other")
    assert_clean_failure(proc, "holds other files")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    proc = run_script("make_targets.py", "-q", "-l", 32768, "--force", FASTA, TARGETS, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "statistics.json").read_text())["seq_length"] == 32768
    # the same command again is not 'different': it rebuilds without --force
    proc = run_script("make_targets.py", "-q", "-l", 32768, FASTA, TARGETS, "-o", out)
    assert proc.returncode == 0, proc.stderr


def test_a_crash_midway_leaves_the_old_dataset_and_no_debris(tmp_path, monkeypatch):
    out = tmp_path / "d"
    o = ds.Options(seq_length=16384, valid="0.1", test="0.1")
    ds.make_targets(FASTA, TARGETS, out, o)
    before = sorted(os.listdir(out / "tfrecords"))
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) > 300:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    real = ds.tg.target_matrix
    monkeypatch.setattr(ds.tg, "target_matrix", failing)
    o.force, o.seq_length = True, 32768
    with pytest.raises(RuntimeError, match="simulated crash"):
        ds.make_targets(FASTA, TARGETS, out, o)
    assert sorted(os.listdir(out / "tfrecords")) == before
    assert json.loads((out / "statistics.json").read_text())["seq_length"] == 16384
    assert os.listdir(tmp_path) == ["d"]


@pytest.mark.parametrize("span", [128, 8], ids=["read-as-intervals", "read-as-values"])
def test_dense_bigwig_with_nan_and_inf_values(tmp_path, span):
    """A dense track (GC fraction per ``span`` bp, computed from the real FASTA); one stored
    NaN entry and one inf entry are zeroed and counted. At 8 bp the track has too many
    intervals per window and is read base by base."""
    import pyBigWig

    with pysam.FastaFile(str(FASTA)) as fa:
        seq = np.frombuffer(fa.fetch("20", 0, 20_000_000).encode(), dtype=np.uint8)
    gc = np.isin(seq, np.frombuffer(b"GCgc", np.uint8)).reshape(-1, span).mean(axis=1)
    gc[128_000 // span], gc[640_000 // span] = np.nan, np.inf
    bw = pyBigWig.open(str(tmp_path / "gc.bw"), "w")
    bw.addHeader([("20", 20_000_000)])
    bw.addEntries("20", 0, values=gc.tolist(), span=span, step=span)
    bw.close()
    (tmp_path / "t.txt").write_text("identifier\tfile\tsum_stat\ngc\tgc.bw\tmean\n")
    o = ds.Options(seq_length=16384, valid="0", test="0", target_dtype="float32")
    stats = ds.make_targets(FASTA, tmp_path / "t.txt", tmp_path / "d", o)
    assert stats["nonfinite_values"]["gc"] == {"nan": span, "no_data": 0, "inf": span, "float16_overflow": 0}
    rows = read_bed_rows(tmp_path / "d" / "sequences.bed")
    expected = np.nan_to_num(gc, nan=0, posinf=0)
    # sequences start 60,000 + offset, not on 128 bp boundaries: recompute per bin from bases
    per_base = np.repeat(expected, span)
    for i, codes, y in tfr.read_records(tmp_path / "d", "train"):
        start = rows[i][1]
        np.testing.assert_allclose(y[:, 0], per_base[start:start + 16384].reshape(-1, 128).mean(axis=1),
                                   rtol=1e-5, atol=1e-6)


def test_unwritable_output_or_a_second_run_is_one_error_before_any_work(tmp_path):
    from conftest import BIN_DIR, read_only

    from basenji_tk import files

    out = tmp_path / "d"
    with files.claim(out, folder=False):  # as a first run writing there holds it
        proc = run_script("make_targets.py", "-l", 16384, FASTA, TARGETS, "-o", out)
    assert_clean_failure(proc, str(out), f"another run (process {os.getpid()})", out=out)
    assert "contigs" not in proc.stderr  # refused before tiling
    locked = tmp_path / "locked"
    locked.mkdir()
    prefix = read_only(locked)
    proc = subprocess.run([*prefix, str(BIN_DIR / "make_targets.py"), "-l", "16384", str(FASTA), str(TARGETS),
                           "-o", str(locked / "d")], capture_output=True, text=True, timeout=600)
    assert_clean_failure(proc, str(locked / "d"), "read-only file system", out=locked / "d")
    assert "contigs" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("span", [128, 8], ids=["read-as-intervals", "read-as-values"])
def test_bigwig_nan_and_no_data_are_counted_apart(tmp_path, span):
    """A GENERATED BigWig: value 1 in ``span``-bp entries, except two gaps without entries, 40
    entries stored as NaN, and nothing past 19,994,624 (the track's chromosome is shorter than
    the FASTA's 20 Mb). statistics.json counts the NaN and the no-data bases of the sequences."""
    import pyBigWig

    size = 19_994_624  # a multiple of 1,024, as are the gap edges: whole entries for both spans
    gaps = [(999_424, 1_299_456), (4_999_168, 4_999_168 + 100 * span)]
    covered = np.ones(20_000_000, dtype=bool)
    covered[size:] = False
    for a, b in gaps:
        covered[a:b] = False
    rng = np.random.default_rng(3)
    entries = np.flatnonzero(covered[:size:span])
    nan_entries = rng.choice(entries, 40, replace=False)
    values = np.ones(size // span)
    values[nan_entries] = np.nan
    stored_nan = np.zeros(20_000_000, dtype=bool)
    for e in nan_entries:
        stored_nan[e * span:(e + 1) * span] = True
    bw = pyBigWig.open(str(tmp_path / "x.bw"), "w")
    bw.addHeader([("20", size)])
    edges = [0] + [x for gap in gaps for x in gap] + [size]
    for a, b in zip(edges[::2], edges[1::2]):  # the covered blocks between the gaps
        bw.addEntries("20", a, values=values[a // span:b // span].tolist(), span=span, step=span)
    bw.close()
    (tmp_path / "t.txt").write_text("identifier\tfile\nx\tx.bw\n")
    o = ds.Options(seq_length=16384, valid="0", test="0", target_dtype="float32")
    stats = ds.make_targets(FASTA, tmp_path / "t.txt", tmp_path / "d", o)
    rows = read_bed_rows(tmp_path / "d" / "sequences.bed")
    in_seqs = np.zeros(20_000_000, dtype=bool)
    for _, s, e, _ in rows:
        in_seqs[s:e] = True
    want_nan, want_gap = int((stored_nan & in_seqs).sum()), int((~covered & in_seqs).sum())
    assert want_nan > 0 and want_gap > 300_000
    assert stats["nonfinite_values"]["x"] == {"nan": want_nan, "no_data": want_gap, "inf": 0, "float16_overflow": 0}


# ----------------------------------------------------------------------------- --features plans
def test_old_call_reads_as_sequence_and_target_like_its_plan(demo_dataset):
    from basenji_tk.data import features as ft
    from basenji_tk.data import records

    spec = records.load_spec(demo_dataset)
    assert list(spec.features) == ["sequence", "target"]
    planned = {f.name: f for f in ft.old_plan(TARGETS, 128).check_window(16384).features()}
    for name, f in spec.features.items():
        assert (f.kind, f.shape, f.resolution, f.dtype) == \
            (planned[name].kind, planned[name].shape, planned[name].resolution, planned[name].dtype), name


def test_features_plan_with_sequence_binary_centre_and_quantile_totals(tmp_path):
    from basenji_tk.data import labels, records

    beds = [DATA / "ctcf_peaks.bed", DATA / "cpg_islands.bed", DATA / "tss_pm500.bed"]
    (tmp_path / "frac.txt").write_text("identifier\tfile\tsum_stat\n" + "".join(
        f"{b.stem}\t{b}\tmean\n" for b in beds))
    (tmp_path / "plan.json").write_text(json.dumps({
        "sequence": True,
        "labels": {"open": {"tracks": "frac.txt", "resolution": 200, "crop": 200, "binarize": 0.5},
                   "total": {"tracks": "frac.txt", "total": True, "crop": 250, "quantile_normalize": True}}}))
    (tmp_path / "r.bed").write_text("20\t1000000\t1300000\n")
    out = tmp_path / "d"
    run_script("make_targets.py", "-q", FASTA, "--features", tmp_path / "plan.json", "-l", 1000, "--stride", 500,
               "--regions", tmp_path / "r.bed", "--chunk_size", 100_000, "-o", out, check=True)
    spec = records.load_spec(out)
    assert spec.kind == "tiling" and list(spec.features) == ["sequence", "open", "total"]
    rows = read_bed_rows(out / "sequences.bed")
    assert all(1_000_000 <= s and e <= 1_300_000 and e - s == 1000 for _, s, e, _ in rows)
    recs = {r["index"]: r for split in ("train", "valid", "test") for r in records.read_records(out, split)}
    assert sorted(recs) == list(range(len(rows)))
    lo = 1_000_000
    cov = [coverage_by_hand(b, "20", lo, 1_300_000) for b in beds]  # each BED read once, sliced below
    raw = np.array([[c[s + 375 - lo:s + 625 - lo].sum() for c in cov] for _, s, _, _ in rows])
    from test_labels import qn_by_hand

    qn = qn_by_hand(raw)
    positives = 0
    with pysam.FastaFile(str(FASTA)) as fa:
        for i, (chrom, s, e, _) in enumerate(rows):
            rec = recs[i]
            assert LETTERS[rec["sequence"]].tobytes().decode() == fa.fetch(chrom, s, e).upper()
            frac = [c[s + 400 - lo:s + 600 - lo].mean() for c in cov]
            np.testing.assert_array_equal(rec["open"][0], np.array(frac) > 0.5)
            positives += rec["open"].sum()
            np.testing.assert_allclose(rec["total"], qn[i], rtol=1e-5)
    assert positives > 5 and labels.quantile_normalize(raw).shape == raw.shape
