"""The feature plan: checking, features, per-window values against plain recomputations,
and the GRO-seq acceptance dataset (0 min signal in, 40 min smoothed centre bin out)."""

import json
import math
import subprocess

import numpy as np
import pytest

from basenji_tk.data import dataset as ds
from basenji_tk.data import features as ft
from basenji_tk.errors import InputError
from conftest import BIN_DIR, DATA, TARGETS, assert_clean_failure, run_script, shared

CHR20 = 20_000_000


def write_plan(tmp_path, plan, name="plan.json"):
    path = tmp_path / name
    path.write_text(json.dumps(plan))
    return path


@pytest.fixture
def tables(tmp_path):
    """Targets tables beside the plan: the bundled BED tracks, and CTCF alone as a covered fraction."""
    text = TARGETS.read_text()
    for name in ("ctcf_peaks.bed", "cpg_islands.bed", "tss_pm500.bed"):
        text = text.replace(f"\t{name}\t", f"\t{DATA / name}\t")
    (tmp_path / "t.txt").write_text(text)
    (tmp_path / "ctcf.txt").write_text(f"identifier\tfile\tsum_stat\nctcf\t{DATA / 'ctcf_peaks.bed'}\tmean\n")
    (tmp_path / "pair.txt").write_text(f"identifier\tfile\nplus\t{DATA / 'ctcf_peaks.bed'}\n"
                                       f"minus\t{DATA / 'cpg_islands.bed'}\n")
    return tmp_path


def coverage_by_hand(bed_path, chrom, start, end):
    """1 per base covered by any interval (0 off the chromosome): an independent reading of the BED."""
    cov = np.zeros(end - start)
    for line in open(bed_path):
        f = line.split("\t")
        if f[0] == chrom and int(f[1]) < end and int(f[2]) > start:
            cov[max(int(f[1]), start) - start:min(int(f[2]), end) - start] = 1
    return cov


@pytest.mark.parametrize("plan, words", [
    ({"sequence": True, "labels": {"a": {"tracks": "t.txt", "resolution": 50}}, "extra": 1}, ["key 'extra'"]),
    ({"labels": {"a": {"tracks": "t.txt", "resolution": 50, "smooth": 3}}}, ["labels.a", "key 'smooth'"]),
    ({"inputs": {"s": {"tracks": "t.txt", "resolution": 50, "log": True}},
      "labels": {"a": {"tracks": "t.txt", "resolution": 50}}}, ["inputs.s", "key 'log'"]),
    ({"labels": {"a": {"tracks": "t.txt", "resolution": "50"}}}, ["labels.a", "'resolution'", "integer"]),
    ({"labels": {"a": {"resolution": 50}}}, ["labels.a", "lacks 'tracks'"]),
    ({"labels": {"a": {"tracks": "none.txt", "resolution": 50}}}, ["none.txt", "not found"]),
    ({"labels": {"a": {"tracks": "t.txt", "resolution": 50, "crop": 75}}}, ["labels.a", "crop 75", "resolution 50"]),
    ({"labels": {"a": {"tracks": "t.txt"}}}, ["labels.a", "lacks 'resolution'"]),
    ({"labels": {"a": {"tracks": "t.txt", "resolution": 50, "label_type": "peaks"}}}, ["'label_type'"]),
    ({"inputs": {"s": {"tracks": "t.txt", "resolution": 50, "strands": True}},
      "labels": {"a": {"tracks": "t.txt", "resolution": 50}}}, ["inputs.s", "strands", "3 rows", "pairs"]),
    ({"inputs": {"s": {"tracks": "t.txt", "resolution": 50, "transform": "sqrt"}},
      "labels": {"a": {"tracks": "t.txt", "resolution": 50}}}, ["'transform'", "log1p"]),
    ({"labels": {"sequence": {"tracks": "t.txt", "resolution": 50}}}, ["labels.sequence", "reserved"]),
    ({"labels": {"a-b": {"tracks": "t.txt", "resolution": 50}}}, ["labels.a-b", "letters"]),
    ({"inputs": {"a": {"tracks": "t.txt", "resolution": 50}},
      "labels": {"a": {"tracks": "t.txt", "resolution": 50}}}, ["labels.a", "also used in inputs"]),
    ({"labels": {"a": {"tracks": "t.txt", "resolution": 50}}, "weight": "w.txt"}, ["'weight'", "null"]),
    ({"sequence": True}, ["no labels"]),
])
def test_plan_errors_name_the_file_and_key(tables, plan, words):
    path = write_plan(tables, plan)
    with pytest.raises(InputError) as err:
        ft.load_plan(path)
    msg = str(err.value)
    assert str(path) in msg or "none.txt" in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_plan_json_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"sequence": true,\n "labels": {,}}')
    with pytest.raises(InputError, match=r"p.json:2: not valid JSON"):
        ft.load_plan(path)


def test_window_checks_and_features(tables):
    plan = ft.load_plan(write_plan(tables, {
        "sequence": True,
        "inputs": {"pair": {"tracks": "pair.txt", "resolution": 50, "strands": True, "transform": "log1p"}},
        "labels": {"open": {"tracks": "ctcf.txt", "resolution": 200, "crop": 200, "binarize": 0.5},
                   "total": {"tracks": "t.txt", "total": True, "crop": 250, "log": True, "quantile_normalize": True},
                   "prof": {"tracks": "t.txt", "resolution": 1, "crop": 250, "label_type": "profile",
                            "dtype": "float16"}}}))
    with pytest.raises(InputError, match="labels.open: the window length 1100 bp is not a multiple"):
        plan.check_window(1100)
    with pytest.raises(InputError, match="labels.total: crop 250 bp is longer than the window"):
        plan.check_window(200)
    feats = {f.name: f for f in plan.check_window(1000).features()}
    assert list(feats) == ["sequence", "pair", "open", "total", "prof"]
    assert (feats["sequence"].shape, feats["sequence"].dtype) == ((1000, 4), "uint8")
    assert (feats["pair"].kind, feats["pair"].shape, feats["pair"].strands, feats["pair"].names) == \
        ("signal", (20, 2), True, ("plus", "minus"))
    assert (feats["open"].shape, feats["open"].label_type, feats["open"].resolution) == ((1, 1), "binary", 200)
    assert (feats["total"].shape, feats["total"].resolution) == ((3,), None)
    assert (feats["prof"].shape, feats["prof"].dtype, feats["prof"].label_type) == ((250, 3), "float16", "profile")
    assert plan.quantile_names == ["total"]
    old = {f.name: f for f in ft.old_plan(TARGETS, 128).check_window(16384).features()}
    assert list(old) == ["sequence", "target"]
    assert (old["target"].shape, old["target"].resolution, old["target"].dtype) == ((128, 3), 128, "float16")


def test_values_match_a_recomputation_from_the_bed_files(tables):
    plan = ft.load_plan(write_plan(tables, {
        "inputs": {"pair": {"tracks": "pair.txt", "resolution": 50, "strands": True, "transform": "log1p"}},
        "labels": {"open": {"tracks": "ctcf.txt", "resolution": 200, "crop": 200, "binarize": 0.5},
                   "total": {"tracks": "t.txt", "total": True, "crop": 250, "log": 0.5},
                   "smooth": {"tracks": "ctcf.txt", "resolution": 50, "crop": 100, "smooth_sigma": 3},
                   "whole": {"tracks": "ctcf.txt", "resolution": 50, "smooth_sigma": 3}}}))
    plan.check_window(1000).open({"chr20": CHR20}, ["chr20"])
    beds = [DATA / "ctcf_peaks.bed", DATA / "cpg_islands.bed", DATA / "tss_pm500.bed"]
    peaks = [tuple(map(int, line.split("\t")[1:3])) for line in open(beds[0])][:40:4]
    windows = [(s + e) // 2 - 500 + shift for s, e in peaks for shift in (-300, 0, 170)] + [0, 120, CHR20 - 1000]
    r = int(4 * 3 + 0.5)
    w = np.array([math.exp(-k * k / 18) for k in range(-r, r + 1)])
    w /= w.sum()
    for start in windows:
        v = plan.values("chr20", start, start + 1000)
        pair = np.stack([coverage_by_hand(b, "20", start, start + 1000).reshape(20, 50).sum(1)
                         for b in beds[:2]], axis=1)
        np.testing.assert_allclose(v["pair"], np.log1p(pair), rtol=1e-6)
        frac = coverage_by_hand(beds[0], "20", start + 400, start + 600).mean()
        assert v["open"].tolist() == [[float(frac > 0.5)]]
        # the table's clip (128) applies per bin, here 1 bp, so not to the total
        tot = [coverage_by_hand(b, "20", start + 375, start + 625).sum() for b in beds]
        np.testing.assert_allclose(v["total"], np.log(np.array(tot) + 0.5), rtol=1e-6)
        # smoothing reads past the window; off the chromosome the signal is 0
        lo, hi = start + 450 - 50 * r, start + 550 + 50 * r
        wide = coverage_by_hand(beds[0], "20", lo, hi)
        if lo < 0:
            wide[: -lo] = 0
        binned = wide.reshape(-1, 50).mean(1)
        expected = [sum(binned[i + k] * w[k] for k in range(2 * r + 1)) for i in range(2)]
        np.testing.assert_allclose(v["smooth"][:, 0], expected, rtol=1e-5, atol=1e-7)
        # no crop: the window's edge bins are smoothed with the signal beyond the window
        lo, hi = start - 50 * r, start + 1000 + 50 * r
        wide = coverage_by_hand(beds[0], "20", lo, hi)
        if lo < 0:
            wide[: -lo] = 0
        binned = wide.reshape(-1, 50).mean(1)
        expected = [sum(binned[i + k] * w[k] for k in range(2 * r + 1)) for i in range(20)]
        np.testing.assert_allclose(v["whole"][:, 0], expected, rtol=1e-5, atol=1e-7)
    assert sum(v.sum() for v in [plan.values("chr20", s, s + 1000)["open"] for s in windows]) > 3  # some peaks
    plan.close()


def test_quantile_pass_normalises_totals_over_all_windows(tables):
    from test_labels import qn_by_hand

    plan = ft.load_plan(write_plan(tables, {
        "labels": {"total": {"tracks": "t.txt", "total": True, "crop": 2000, "quantile_normalize": True}}}))
    plan.check_window(2000).open({"chr20": CHR20}, ["chr20"])
    windows = [("chr20", s, s + 2000) for s in range(1_000_000, 1_400_000, 2000)]
    got = plan.quantile_pass(windows)["total"]
    beds = [DATA / "ctcf_peaks.bed", DATA / "cpg_islands.bed", DATA / "tss_pm500.bed"]
    raw = np.array([[coverage_by_hand(b, "20", s, e).sum() for b in beds] for c, s, e in windows])
    assert got.shape == (200, 3) and (raw > 0).sum() > 20
    np.testing.assert_allclose(got, qn_by_hand(raw), rtol=1e-5)
    plan.close()


def test_cli_errors_for_plans(tables, tmp_path):
    plan = write_plan(tables, {"sequence": True, "labels": {"a": {"tracks": "t.txt", "resolution": 50}}})
    proc = run_script("make_targets.py", "--features", plan, "-l", 1000, "-o", tmp_path / "o")
    assert_clean_failure(proc, "plan.json", "'sequence': true", "no FASTA")
    proc = run_script("make_targets.py", DATA / "hg19_chr20_20Mb.fa.gz", TARGETS, "--features", plan,
                      "-o", tmp_path / "o")
    assert_clean_failure(proc, "--features", "replaces TARGETS")
    bad = write_plan(tables, {"labels": {"a": {"tracks": "t.txt", "resolution": 50, "bins": 3}}}, "bad.json")
    proc = run_script("make_targets.py", "--features", bad, "-o", tmp_path / "o")
    assert_clean_failure(proc, "bad.json", "labels.a", "unknown key 'bins'")
    (tmp_path / "s.txt").write_text("chr20\t20000000\nchr21 x\n")
    plan2 = write_plan(tables, {"labels": {"a": {"tracks": "t.txt", "resolution": 50}}}, "p2.json")
    proc = run_script("make_targets.py", "--features", plan2, "--sizes", tmp_path / "s.txt", "-l", 1000,
                      "-o", tmp_path / "o")
    assert_clean_failure(proc, "s.txt:2", "chrom<TAB>size")
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- GRO-seq acceptance
def test_groseq_signal_dataset_matches_pybigwig(tmp_path):
    """MCF-7 GRO-seq (real, chr7, no sequence): 0 min (+, -) 5' ends in 201 bins of 50 bp in,
    the 40 min signal smoothed (sigma 10 bins) and cropped to the centre 50 bp bin out."""
    import pyBigWig

    from basenji_tk.data import records

    bam0 = shared("bams", "mcf7_groseq_0min_chr7.sorted.bam")
    bam40 = shared("bams", "mcf7_groseq_40min_chr7.sorted.bam")
    exe = str(BIN_DIR / "bam_cov.py")  # the two BAMs side by side (2 cores)
    procs = [subprocess.Popen([exe, "-q", "--shift", "0", "--strand", str(bam0), str(tmp_path / "g0.bw")]),
             subprocess.Popen([exe, "-q", "--shift", "0", str(bam40), str(tmp_path / "g40.bw")])]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    (tmp_path / "in.txt").write_text("identifier\tfile\tsum_stat\nplus\tg0.plus.bw\tmean\nminus\tg0.minus.bw\tmean\n")
    (tmp_path / "lab.txt").write_text("identifier\tfile\tsum_stat\ng40\tg40.bw\tmean\n")
    plan = write_plan(tmp_path, {
        "sequence": False,
        "inputs": {"groseq": {"tracks": "in.txt", "resolution": 50, "strands": True, "transform": "log1p"}},
        "labels": {"g40": {"tracks": "lab.txt", "resolution": 50, "crop": 50, "smooth_sigma": 10}}})
    lo, hi = 5_000_000, 7_000_000
    (tmp_path / "r.bed").write_text(f"chr7\t{lo}\t{hi}\n")
    out = tmp_path / "d"
    o = ds.Options(seq_length=201 * 50, stride=2000, regions=(str(tmp_path / "r.bed"),), valid="0.1", test="0.1",
                   chunk_size=400_000)
    ds.build(None, None, plan, out, o)  # make_targets.py --features PLAN (the script is run in the tests above)
    spec = records.load_spec(out)
    assert spec.kind == "tiling" and list(spec.features) == ["groseq", "g40"]
    assert spec.features["groseq"].shape == (201, 2) and spec.features["groseq"].strands
    assert spec.features["g40"].shape == (1, 1) and spec.features["g40"].resolution == 50
    rows = [line.split("\t") for line in (out / "sequences.bed").read_text().splitlines()]
    assert len(rows) == sum(spec.counts.values()) and all(spec.counts.values())
    assert all(r[0] == "chr7" and lo <= int(r[1]) and int(r[2]) <= hi for r in rows)

    # independent recomputation: per-base values from pyBigWig, no data = 0, numpy convolution
    pad = 40 * 50  # the smoothing kernel reaches 4 sigma = 40 bins
    base = lo - pad
    bws = [pyBigWig.open(str(tmp_path / n)) for n in ("g0.plus.bw", "g0.minus.bw", "g40.bw")]
    per_base = [np.nan_to_num(bw.values("chr7", base, hi + pad, numpy=True)) for bw in bws]
    w = np.exp(-np.arange(-40, 41) ** 2 / 200.0)
    w /= w.sum()
    checked, nonzero = 0, 0
    for split in ("train", "valid", "test"):
        for rec in records.read_records(out, split):
            chrom, s, e, sp = rows[rec["index"]]
            s, e = int(s), int(e)
            assert sp.strip() == split and e - s == 10050
            a = s - base
            x = np.stack([per_base[k][a:a + 10050].reshape(201, 50).mean(1) for k in (0, 1)], axis=1)
            np.testing.assert_allclose(rec["groseq"], np.log1p(x), rtol=1e-5, atol=1e-7)
            c = a + 100 * 50  # the centre bin [c, c + 50) and 40 bins each side, read past the window
            near = per_base[2][c - pad:c + 50 + pad].reshape(81, 50).mean(1)
            np.testing.assert_allclose(rec["g40"][0, 0], (near * w).sum(), rtol=1e-4, atol=1e-7)
            checked += 1
            nonzero += rec["g40"][0, 0] > 0
    assert checked == len(rows) and nonzero > checked // 4  # GRO-seq signal is near most windows here
