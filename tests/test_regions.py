"""The regions builder (basenji_tk.data.regions, regions_plan, negatives; basenji_tk.io.peaks;
bin/make_regions.py) on real chr20 data.

Regions are the real CTCF ChIP-seq peaks of data/ctcf_peaks.bed. The narrowPeak version used
here is DERIVED from them: column 10 (the summit) is the offset of the first "CCCTC" in the
peak's sequence (the namesake CTCF core), -1 when the peak has none, and one peak is repeated
to exercise duplicate merging. Label tracks are real: the Drop-seq reads of data/dropseq.bam
turned into a BigWig by bam_cov.py, the GENCODE TSS windows and the CpG islands.
"""

import json

import numpy as np
import pytest

from basenji_tk.data import dna
from basenji_tk.io import genome as gn
from basenji_tk.io import peaks as pk
from basenji_tk.data import negatives as ng
from basenji_tk.data import regions_plan as rp
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError
from conftest import DATA, FASTA, assert_clean_failure, run_script, write_fasta

CTCF = DATA / "ctcf_peaks.bed"
BLACKLIST = DATA / "blacklist.bed"
L = 1000
MARGIN = 100


def _ctcf_rows():
    rows = []
    for line in CTCF.read_text().splitlines():
        f = line.split("\t")
        rows.append((f[0], int(f[1]), int(f[2])))
    return rows


@pytest.fixture(scope="module")
def fasta():
    import pysam

    with pysam.FastaFile(str(FASTA)) as fa:
        yield fa


@pytest.fixture(scope="module")
def narrowpeak(tmp_path_factory, fasta):
    """CTCF peaks as narrowPeak with a derived summit (see the module docstring); returns
    (path, rows) with rows (chrom, start, end, name, summit offset)."""
    rows = []
    for i, (c, s, e) in enumerate(_ctcf_rows()):
        hit = fasta.fetch(c, s, e).upper().find("CCCTC")
        rows.append((c, s, e, f"peak{i}", hit))
    rows.append(rows[4][:3] + ("peak4dup", rows[4][4]))  # the same peak again: merged
    path = tmp_path_factory.mktemp("np") / "ctcf_derived_summits.narrowPeak"
    path.write_text("".join(f"{c}\t{s}\t{e}\t{n}\t0\t.\t1\t1\t1\t{p}\n" for c, s, e, n, p in rows))
    return path, rows


# ----------------------------------------------------------------------------- pure functions
def test_read_regions_bed_centres_and_narrowpeak_summits(narrowpeak):
    sizes = {"20": 20_000_000}
    bed = pk.read_regions(CTCF, sizes)
    rows = _ctcf_rows()
    assert bed.fmt == "bed" and len(bed) == len(rows)
    for k in (0, 7, len(rows) - 1):
        c, s, e = rows[k]
        assert bed.centre[k] == s + (e - s) // 2 and bed.name[k] == f"line{k + 1}"
    path, np_rows = narrowpeak
    peaks = pk.read_regions(path, sizes)
    assert peaks.fmt == "narrowpeak"
    for k, (c, s, e, name, p) in enumerate(np_rows):
        assert peaks.centre[k] == (s + p if p >= 0 else s + (e - s) // 2)
        assert peaks.name[k] == name
    assert (np.array([r[4] for r in np_rows]) >= 0).sum() > 100  # both kinds of row are present
    assert (np.array([r[4] for r in np_rows]) < 0).sum() > 100


@pytest.mark.parametrize("line, words", [
    ("20\t100\tabc\n", ["bad.bed:2", "integer start and end"]),
    ("20\t100\n", ["bad.bed:2", "at least 3"]),
    ("20\t500\t400\n", ["bad.bed:2", "start < end"]),
    ("chr7\t100\t200\n", ["bad.bed:2", "'chr7' is not in the FASTA"]),
    ("20\t19999990\t20000010\n", ["bad.bed:2", "past the end"]),
])
def test_read_regions_errors_name_file_and_line(tmp_path, line, words):
    path = tmp_path / "bad.bed"
    path.write_text("20\t10\t20\n" + line)
    with pytest.raises(InputError) as err:
        pk.read_regions(path, {"20": 20_000_000})
    for w in words:
        assert w in str(err.value)


def test_narrowpeak_summit_outside_peak(tmp_path):
    path = tmp_path / "x.narrowPeak"
    path.write_text("20\t1000\t1100\tp\t0\t.\t1\t1\t1\t50\n20\t2000\t2100\tq\t0\t.\t1\t1\t1\t100\n")
    with pytest.raises(InputError, match=r"x.narrowPeak:2: narrowPeak summit offset 100 lies outside"):
        pk.read_regions(path, {"20": 20_000_000})


def test_window_counts_and_n_runs_match_loops(fasta):
    codes = dna.encode(fasta.fetch("20", 59_000, 80_000))
    starts = np.array([0, 1, 500, 999, 5000, 20_000 - L])
    gc, n = ng.window_counts(codes, starts, L)
    for k, s in enumerate(starts):
        w = codes[s:s + L]
        assert gc[k] == sum(1 for x in w if x in (1, 2)) and n[k] == sum(1 for x in w if x == 4)
    ns, ne = ng.n_runs(codes)
    is_n = codes == 4
    expect, i = [], 0
    while i < len(codes):
        if is_n[i]:
            j = i
            while j < len(codes) and is_n[j]:
                j += 1
            expect.append((i, j))
            i = j
        else:
            i += 1
    assert list(zip(ns.tolist(), ne.tolist())) == expect and expect[0] == (0, 1000)


def test_allowed_starts_brute_force():
    rng = np.random.default_rng(3)
    size, length = 400, 30
    fs = np.sort(rng.integers(0, size, 6))
    fe = fs + rng.integers(1, 25, 6)
    within = (np.array([0, 150, 260]), np.array([140, 250, 400]))
    lo, hi = ng.allowed_starts(size, fs, fe, length, within)
    got = {s for a, b in zip(lo, hi) for s in range(a, b)}
    expect = set()
    for s in range(size - length + 1):
        free = all(e <= s or st >= s + length for st, e in zip(fs, fe))
        inside = any(a <= s and s + length <= b for a, b in zip(*within))
        if free and inside:
            expect.add(s)
    assert got == expect


def test_quotas_and_gc_matching():
    bins = np.array([3, 3, 3, 4, 9])
    q = ng.negative_quotas(bins, 10, 1.5)
    assert q.sum() == round(1.5 * 5) and q[3] >= 4 and q[9] >= 1 and q[0] == 0
    cand = np.array([3] * 10 + [4] * 2 + [9] * 5)
    chosen, short = ng.match_gc(cand, q, np.random.default_rng(0))
    assert short[4] == max(0, q[4] - 2) and len(set(chosen.tolist())) == len(chosen)
    for b in range(10):
        assert (cand[chosen] == b).sum() == min(q[b], (cand == b).sum())
    again, _ = ng.match_gc(cand, q, np.random.default_rng(0))
    assert np.array_equal(chosen, again)
    assert ng.gc_bin([0.0, 0.049, 0.05, 0.999, 1.0], 20).tolist() == [0, 0, 1, 19, 19]


def test_window_splits_drop_windows_reaching_another_split():
    by_split = {"train": [gn.Interval("a", 0, 100), gn.Interval("a", 300, 400)],
                "valid": [gn.Interval("a", 100, 300)], "test": []}
    start = np.array([10, 90, 150, 285, 395, 500, 280])
    split, why = rp.window_splits(np.zeros(7, np.int64), start, start + 20, ["a"], by_split)
    assert split.tolist() == [0, -1, 1, -1, -1, -1, 1]  # [280, 300) only touches [300, 400)
    assert why.tolist() == ["", "straddles_splits", "", "straddles_splits", "outside_contigs", "outside_contigs", ""]


def test_plan_is_seeded_and_splits_by_chromosome_list(tmp_path, fasta):
    """Two contigs cut from real chr20 (20a = [0, 4 Mb), 20b = [4, 8 Mb)): --valid 20b."""
    seqs = {"20a": fasta.fetch("20", 0, 4_000_000), "20b": fasta.fetch("20", 4_000_000, 8_000_000)}
    path = write_fasta(tmp_path / "two_contigs_cut_from_chr20.fa.gz", seqs, bgzip=True)
    bed = tmp_path / "peaks.bed"
    bed.write_text("".join(f"{'20a' if s < 4e6 else '20b'}\t{s % 4_000_000}\t{e % 4_000_000}\n"
                           for c, s, e in _ctcf_rows() if e < 8_000_000 and (s < 4e6) == (e < 4e6)))
    g = gn.Genome(path)
    try:
        regions = pk.read_regions(bed, g.sizes)
        o = rp.Options(valid="20b", test="0", negatives=1.0, seed=5)
        p = rp.plan_regions(g, regions, o)
        q = rp.plan_regions(g, regions, o)
        r = rp.plan_regions(g, regions, rp.Options(valid="20b", test="0", negatives=1.0, seed=6))
    finally:
        g.close()
    names = np.array(p.chroms)[p.chrom]
    assert set(names[p.split == 1]) == {"20b"} and set(names[p.split == 0]) == {"20a"}
    assert p.counts["test"] == 0 and p.counts["valid"] > 100
    assert np.array_equal(p.start, q.start) and p.name == q.name
    assert not np.array_equal(np.sort(p.start[p.label == 0]), np.sort(r.start[r.label == 0]))


# ----------------------------------------------------------------------------- acceptance
@pytest.fixture(scope="module")
def built(tmp_path_factory, narrowpeak):
    work = tmp_path_factory.mktemp("regions")
    run_script("bam_cov.py", "-q", "--full", DATA / "dropseq.bam", work / "dropseq.bw", check=True)
    (work / "profile.txt").write_text(
        f"identifier\tfile\tsum_stat\ndropseq\t{work / 'dropseq.bw'}\tsum\ntss\t{DATA / 'tss_pm500.bed'}\tsum\n")
    (work / "cpg.txt").write_text(f"identifier\tfile\tsum_stat\ncpg\t{DATA / 'cpg_islands.bed'}\tmean\n")
    plan = {"sequence": True, "labels": {
        "profile": {"tracks": "profile.txt", "resolution": 1, "crop": 250, "label_type": "profile"},
        "total": {"tracks": "profile.txt", "total": True, "crop": 250},
        "cpg": {"tracks": "cpg.txt", "resolution": 50, "crop": 200, "binarize": 0.5},
    }}
    (work / "plan.json").write_text(json.dumps(plan))
    out = work / "ds"
    run_script("make_regions.py", "-q", FASTA, narrowpeak[0], "--features", work / "plan.json", "-o", out,
               "-l", L, "--blacklist", BLACKLIST, "--negatives", 1.0, "--margin", MARGIN, "--label", "is_peak",
               "--seed", 3, check=True)
    return work, out


def _records(out):
    from basenji_tk.data import records

    bed = [line.split("\t") for line in (out / "sequences.bed").read_text().splitlines()]
    recs = {}
    for split in tg.SPLITS:
        for r in records.read_records(out, split):
            recs[r["index"]] = r
    return bed, recs


def _coverage(intervals, start, end):
    """Per base of [start, end): 1 inside any of the BED intervals, else 0 (plain loop; a BED
    track without a score column counts a base covered twice once)."""
    out = np.zeros(end - start)
    for s, e in intervals:
        for x in range(max(s, start), min(e, end)):
            out[x - start] = 1
    return out


def test_records_match_an_independent_recomputation(built, narrowpeak, fasta):
    import pyBigWig

    work, out = built
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["kind"] == "regions" and stats["format"] == "basenji_tk.dataset/2"
    f = stats["features"]
    assert f["sequence"]["shape"] == [L, 4] and f["profile"]["shape"] == [250, 2]
    assert f["total"]["shape"] == [2] and f["cpg"]["shape"] == [4, 1] and f["is_peak"]["shape"] == [1]
    bed, recs = _records(out)
    assert len(recs) == len(bed) == sum(stats["counts"].values())

    rows = {r[3]: r for r in narrowpeak[1]}
    info = stats["regions"]
    assert info["input"] == len(narrowpeak[1])
    assert info["positives"] + sum(info["dropped"].values()) == info["input"]
    assert info["dropped"]["duplicate"] == 1
    black = [(int(a), int(b)) for _, a, b in (x.split("\t") for x in BLACKLIST.read_text().splitlines())]
    expect_black = sum(1 for c, s, e, n, p in narrowpeak[1][:-1]
                       if any(min(e2, (s + p if p >= 0 else s + (e - s) // 2) + L // 2) >
                              max(s2, (s + p if p >= 0 else s + (e - s) // 2) - L // 2) for s2, e2 in black))
    assert info["dropped"]["blacklist"] == expect_black > 0

    bw = pyBigWig.open(str(work / "dropseq.bw"))
    tss = [(int(x.split("\t")[1]), int(x.split("\t")[2])) for x in (DATA / "tss_pm500.bed").read_text().splitlines()]
    cpg = [(int(x.split("\t")[1]), int(x.split("\t")[2])) for x in (DATA / "cpg_islands.bed").read_text().splitlines()]
    n_pos = 0
    for k, (chrom, start, end, split, name) in enumerate(bed):
        start, end = int(start), int(end)
        r = recs[k]
        assert end - start == L
        assert np.array_equal(r["sequence"], dna.encode(fasta.fetch(chrom, start, end)))
        if name == "negative":
            assert r["is_peak"][0] == 0
        else:
            n_pos += 1
            assert r["is_peak"][0] == 1
            first = name.split(",")[0]
            c, s, e, _, p = rows[first]
            centre = s + p if p >= 0 else s + (e - s) // 2
            assert start == centre - L // 2, name
            if "," in name:
                assert name == "peak4,peak4dup"
        if k % 7:  # the label checks use plain loops: every 7th record is enough
            continue
        lo = start + (L - 250) // 2
        drop = np.nan_to_num(np.array(bw.values(chrom, lo, lo + 250)), nan=0.0)
        prof = np.stack([drop, _coverage(tss, lo, lo + 250)], axis=1)
        assert np.allclose(r["profile"], prof, atol=1e-5)
        assert np.allclose(r["total"], prof.sum(axis=0), rtol=1e-5, atol=1e-4)
        clo = start + (L - 200) // 2
        frac = _coverage(cpg, clo, clo + 200).reshape(4, 50).mean(axis=1)
        assert np.array_equal(r["cpg"][:, 0], (frac > 0.5).astype(np.float32))
    assert n_pos == info["positives"]
    assert sum(r["profile"][:, 0].sum() for r in recs.values()) > 0  # the BigWig label is not all zero
    assert sum(r["cpg"].sum() for r in recs.values()) > 0


def test_negatives_avoid_positives_and_blacklist_and_match_gc(built, narrowpeak, fasta):
    work, out = built
    stats = json.loads((out / "statistics.json").read_text())
    bed = [line.split("\t") for line in (out / "sequences.bed").read_text().splitlines()]
    pos = [(int(s), int(e)) for c, s, e, sp, n in bed if n != "negative"]
    neg = [(int(s), int(e)) for c, s, e, sp, n in bed if n == "negative"]
    assert len(neg) == len(pos) == stats["regions"]["negatives"]["found"]
    forbid = [(a, b) for _, a, b in ((x.split("\t")) for x in BLACKLIST.read_text().splitlines())]
    forbid = [(int(a), int(b)) for a, b in forbid]
    for c, s, e, n, p in narrowpeak[1]:  # every input region and its window widened by the margin
        centre = s + p if p >= 0 else s + (e - s) // 2
        forbid.append((min(s, centre - L // 2) - MARGIN, max(e, centre - L // 2 + L) + MARGIN))
    forbid.sort()
    fs = np.array([a for a, _ in forbid])
    reach = np.maximum.accumulate(np.array([b for _, b in forbid]))
    for s, e in neg:
        k = np.searchsorted(fs, e) - 1  # the forbidden intervals starting before e
        assert k < 0 or reach[k] <= s, (s, e)
    assert len(set(neg)) == len(neg)

    def gc(s, e):
        x = dna.encode(fasta.fetch("20", s, e))
        acgt = (x < 4).sum()
        assert (x == 4).sum() <= 0.1 * L
        return ((x == 1) | (x == 2)).sum() / acgt

    gp, gneg = np.array([gc(*w) for w in pos]), np.array([gc(*w) for w in neg])
    hp = np.bincount(np.minimum((gp * 20).astype(int), 19), minlength=20)
    hn = np.bincount(np.minimum((gneg * 20).astype(int), 19), minlength=20)
    assert np.array_equal(hp, hn)  # every GC bin filled exactly (20 bins of 0.05)
    assert abs(gp.mean() - gneg.mean()) < 0.01
    assert gp.mean() > 0.45  # CTCF peaks are GC-rich: matching did something (chr20 is 41 %)
    assert stats["regions"]["negatives"]["gc_bins"] == 20


def test_splits_are_disjoint_chunks(built):
    _, out = built
    stats = json.loads((out / "statistics.json").read_text())
    bed = [line.split("\t") for line in (out / "sequences.bed").read_text().splitlines()]
    assert all(stats["counts"][s] > 0 for s in tg.SPLITS)
    for s in ("valid", "test"):
        share = stats["counts"][s] / sum(stats["counts"].values())
        assert 0.02 < share < 0.3, (s, share)
    rows = sorted((int(a), int(b), sp) for _, a, b, sp, _ in bed)
    for (s1, e1, p1), (s2, e2, p2) in zip(rows, rows[1:]):
        if p1 != p2:
            assert s2 >= e1, "windows of two splits share bases"
    held = [(sp, int(a)) for _, a, _, sp, _ in bed if sp != "train"]
    assert held == sorted(held, key=lambda x: (tg.SPLITS.index(x[0]), x[1]))
    by = {sp: {n for *_, s2, n in bed if s2 == sp} for sp in tg.SPLITS}
    assert stats["regions"]["counts_by_label"]["valid"]["negative"] == sum(
        1 for *_, sp, n in bed if sp == "valid" and n == "negative")
    assert by["train"]


def test_script_errors(tmp_path, narrowpeak):
    bad = tmp_path / "bad.bed"
    bad.write_text("20\t100\t900\n20\t100\tx\n")
    proc = run_script("make_regions.py", FASTA, bad, DATA / "targets.txt", "-o", tmp_path / "o1")
    assert_clean_failure(proc, f"{bad}:2", "integer start and end")
    peak = tmp_path / "bad.narrowPeak"
    peak.write_text("20\t1000\t1100\tp\t0\t.\t1\t1\t1\t120\n")
    proc = run_script("make_regions.py", FASTA, peak, DATA / "targets.txt", "-o", tmp_path / "o2")
    assert_clean_failure(proc, f"{peak}:1", "summit offset 120 lies outside")
    other = tmp_path / "other.bed"
    other.write_text("20\t1000\t1100\n21\t1000\t1100\n")
    proc = run_script("make_regions.py", FASTA, other, DATA / "targets.txt", "-o", tmp_path / "o3")
    assert_clean_failure(proc, f"{other}:2", "'21' is not in the FASTA")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()


def test_finished_dataset_is_kept_unless_forced(built):
    work, out = built
    before = (out / "sequences.bed").read_text()
    proc = run_script("make_regions.py", FASTA, CTCF, DATA / "targets.txt", "-o", out)
    assert_clean_failure(proc, str(out), "--force")
    assert (out / "sequences.bed").read_text() == before


def test_trains_two_heads_through_train_py(built, tmp_path):
    """A regions dataset feeds train.py: a binary head on is_peak and a regression head on total."""
    _, out = built
    params = {"train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 4, "seed": 0, "monitor": "val_loss"},
              "model": {"inputs": {"sequence": {"kind": "sequence", "shape": [L, 4]}},
                        "trunk": [{"name": "conv_block", "filters": 8, "kernel_size": 9, "pool_size": 10}],
                        "heads": {"is_peak": {"loss": "bce", "blocks": [
                                      {"name": "final", "units": 1, "activation": "sigmoid", "flatten": True}]},
                                  "total": {"loss": "mse", "weight": 0.5, "blocks": [
                                      {"name": "final", "units": 2, "activation": "linear", "flatten": True}]}}}}
    (tmp_path / "params.json").write_text(json.dumps(params))
    run_script("train.py", "-q", tmp_path / "params.json", out, "-o", tmp_path / "model", check=True)
    head, row = (tmp_path / "model" / "history.tsv").read_text().splitlines()[:2]
    got = dict(zip(head.split("\t"), row.split("\t")))
    assert np.isfinite(float(got["val_is_peak_auroc"])) and np.isfinite(float(got["val_total_loss"]))
