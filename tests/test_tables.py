"""Table datasets (basenji_tk.data.tables, table_tasks; basenji_tk.io.tabular; bin/make_table.py) on a
SEMI-SYNTHETIC MPRA-like table.

The sequences are real (chr20 of data/hg19_chr20_20Mb.fa.gz, 295 bp regions centred on
data/ctcf_peaks.bed peaks, 31 tiles of 145 bp at 5 bp steps, as in Sharpr-MPRA); the activities
of 4 tasks x 2 replicates are SIMULATED (negative-binomial DNA counts, Poisson RNA counts around
a GC/CTCF-motif/position model). Everything the builder computes is checked against a
recomputation here in plain numpy loops.
"""

import csv
import json
import math

import numpy as np
import pysam
import pytest

from basenji_tk.data import table_tasks, tables
from basenji_tk.io import tabular
from basenji_tk.errors import InputError
from conftest import DATA, FASTA, assert_clean_failure, run_script

TASKS = ("HepG2_minP", "K562_minP", "HepG2_SV40P", "K562_SV40P")  # the paper's Fig. 5 order
REGION, TILE, STEP = 295, 145, 5


# ----------------------------------------------------------------------------- the SEMI-SYNTHETIC table
def simulate_mpra(path, n_regions=40, seed=0):
    """Write the SEMI-SYNTHETIC MPRA table (TSV) to ``path``; returns its rows as dicts.

    Columns: name region chrom start end pos sequence, then per task T and replicate r:
    T_rep{r} (activity from the counts by the M3 formula), T_rna{r}, T_dna{r}.
    """
    peaks = [tuple(map(int, line.split()[1:3])) for line in open(DATA / "ctcf_peaks.bed")]
    picked = peaks[::len(peaks) // n_regions][:n_regions]
    rng = np.random.default_rng(seed)
    gain = rng.normal(0, 1, size=(len(TASKS), 3))  # per task: GC, CTCF motif, centre bump
    rows = []
    with pysam.FastaFile(str(FASTA)) as fa:
        for k, (s, e) in enumerate(picked):
            r0 = (s + e) // 2 - REGION // 2
            for j in range(0, REGION - TILE + 1, STEP):
                seq = fa.fetch("20", r0 + j, r0 + j + TILE)
                gc = (seq.count("G") + seq.count("C")) / TILE
                motif = seq.count("CCCTC") + seq.count("GAGGG")
                bump = math.exp(-(((j + TILE / 2) - REGION / 2) / 40) ** 2)
                rows.append({"name": f"r{k}_t{j}", "region": f"r{k}", "chrom": "chr20", "start": r0 + j,
                             "end": r0 + j + TILE, "pos": j, "sequence": seq, "_mu": [
                                 g[0] * (gc - 0.45) * 5 + g[1] * motif + g[2] * bump for g in gain]})
    n = len(rows)
    for t, task in enumerate(TASKS):
        mu = np.array([row["_mu"][t] for row in rows])
        mu = (mu - mu.mean()) / mu.std()  # unit signal; noise sd 1.2 puts replicate r near 0.4 (paper: 0.33-0.47)
        for r in (1, 2):
            dna = rng.negative_binomial(20, 20 / 220, size=n)  # mean 200
            rna = rng.poisson(dna * 2.0 ** (mu + rng.normal(0, 1.2, size=n)))
            act = np.log2(((rna + 1) / np.sum(rna + 1)) / ((dna + 1) / np.sum(dna + 1)))
            for i, row in enumerate(rows):
                row[f"{task}_rep{r}"] = f"{act[i]:.6f}"
                row[f"{task}_rna{r}"] = int(rna[i])
                row[f"{task}_dna{r}"] = int(dna[i])
    cols = [c for c in rows[0] if not c.startswith("_")]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, cols, delimiter="\t", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return rows


@pytest.fixture(scope="module")
def mpra(tmp_path_factory):
    path = tmp_path_factory.mktemp("mpra") / "mpra_SEMI-SYNTHETIC_chr20_ctcf.tsv"
    return path, simulate_mpra(path)


def replicate_args():
    return [a for t in TASKS for a in ("--replicates", f"{t}={t}_rep1,{t}_rep2")]


def options(**kw):
    tasks = tuple(table_tasks.Task(t, (f"{t}_rep1", f"{t}_rep2")) for t in TASKS)
    return tables.TableOptions(**{"tasks": tasks, "frame": REGION, "offset_column": "pos",
                                  "group_column": "region", **kw})


# ----------------------------------------------------------------------------- pure functions
def test_counts_activity_matches_a_loop():
    rng = np.random.default_rng(1)
    rna, dna = rng.integers(0, 50, 30), rng.integers(0, 50, 30)
    got = table_tasks.counts_activity(rna, dna)
    rs, ds = sum(x + 1 for x in rna), sum(x + 1 for x in dna)
    for i in range(30):
        assert got[i] == pytest.approx(math.log2(((rna[i] + 1) / rs) / ((dna[i] + 1) / ds)), rel=1e-12)


def test_replicate_distance_and_weight_match_a_loop():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(20, 2)), rng.normal(size=(20, 3))
    single = rng.normal(size=(20, 1))  # one replicate: adds nothing
    d = table_tasks.replicate_distance([a, b, single])
    w = table_tasks.agreement_weight(d)
    for i in range(20):
        sq = (a[i, 0] - a[i, 1]) ** 2
        sq += ((b[i, 0] - b[i, 1]) ** 2 + (b[i, 0] - b[i, 2]) ** 2 + (b[i, 1] - b[i, 2]) ** 2) / 3
        assert d[i] == pytest.approx(math.sqrt(sq))
        assert w[i] == pytest.approx((max(d) - d[i]) / (max(d) - min(d)))
    assert w.min() == 0 and w.max() == 1 and np.argmin(w) == np.argmax(d)
    assert np.all(table_tasks.agreement_weight(np.full(5, 0.3)) == 1)


def test_place_and_pad():
    codes = np.array([0, 1, 2, 3, 0], dtype=np.uint8)
    out = tables.place(codes, 9, 3)
    assert out.tolist() == [4, 4, 4, 0, 1, 2, 3, 0, 4]
    assert tables.pad_offset(5, 9, "center") == 2 and tables.pad_offset(5, 9, "right") == 4
    assert tables.pad_offset(5, 9, "left") == 0 and tables.pad_offset(5, 9, "refuse") is None
    assert tables.pad_offset(10, 9, "center") is None and tables.pad_offset(9, 9, "refuse") == 0


def test_group_splits_keep_groups_together_and_follow_the_seed():
    groups = [f"g{i // 31}" for i in range(40 * 31)]
    s0 = tables.assign_splits(groups, 0.1, 0.1, seed=0)
    for g in set(groups):
        assert len({s for s, h in zip(s0, groups) if h == g}) == 1
    assert {s: int((s0 == s).sum()) for s in tables.SPLITS} == {"train": 32 * 31, "valid": 4 * 31, "test": 4 * 31}
    assert (tables.assign_splits(groups, 0.1, 0.1, seed=0) == s0).all()
    assert (tables.assign_splits(groups, 0.1, 0.1, seed=1) != s0).any()
    rows = tables.assign_splits(range(100), 0.2, 0.1, seed=3)
    assert (rows == "valid").sum() == 20 and (rows == "test").sum() == 10


def test_parse_task():
    assert table_tasks.parse_task("a,b", "activity", "--activity") == [table_tasks.Task("a", ("a",)),
                                                                       table_tasks.Task("b", ("b",))]
    assert table_tasks.parse_task("T=x1,x2", "activity", "--replicates") == [table_tasks.Task("T", ("x1", "x2"))]
    assert table_tasks.parse_task("T=r1:d1,r2:d2", "counts", "--counts") == [
        table_tasks.Task("T", (("r1", "d1"), ("r2", "d2")), "counts")]
    with pytest.raises(InputError, match="RNA_COLUMN:DNA_COLUMN"):
        table_tasks.parse_task("T=r1,d1", "counts", "--counts")


# ----------------------------------------------------------------------------- reading and records as arrays
def test_table_records_frame_offsets_and_replicate_mean(mpra):
    path, rows = mpra
    rec = tables.table_records(tabular.read_table(path), options(replicate_weight=True))
    assert rec.codes.shape == (40 * 31, REGION) and rec.activity.shape == (40 * 31, 4)
    w_dist = []
    for i, row in enumerate(rows):
        pos = row["pos"]
        assert (rec.codes[i, :pos] == 4).all() and (rec.codes[i, pos + TILE:] == 4).all()
        assert "".join("ACGTN"[c] for c in rec.codes[i, pos:pos + TILE]) == row["sequence"]
        for t, task in enumerate(TASKS):
            assert rec.activity[i, t] == pytest.approx((float(row[f"{task}_rep1"]) + float(row[f"{task}_rep2"])) / 2)
        w_dist.append(math.sqrt(sum((float(row[f"{t}_rep1"]) - float(row[f"{t}_rep2"])) ** 2 for t in TASKS)))
    lo, hi = min(w_dist), max(w_dist)
    assert rec.weight == pytest.approx([(hi - d) / (hi - lo) for d in w_dist])
    assert rec.bed[0] == ("r0_t0", 0, TILE)


def test_counts_genome_and_sequence_routes_agree(mpra):
    """Activities from the RNA/DNA count columns equal the table's own (simulator's formula), and
    chrom/start/end read from the FASTA (chr20 -> 20) give the same codes as the sequence column."""
    path, rows = mpra
    genome_mod = pytest.importorskip("basenji_tk.io.genome")
    base = tables.table_records(tabular.read_table(path), options())
    counts = tuple(table_tasks.Task(t, ((f"{t}_rna1", f"{t}_dna1"), (f"{t}_rna2", f"{t}_dna2")), "counts")
                   for t in TASKS)
    g = genome_mod.Genome(FASTA)
    try:
        other = tables.table_records(tabular.read_table(path), options(tasks=counts, coords=("chrom", "start", "end")),
                                     genome=g)
    finally:
        g.close()
    assert np.abs(other.activity - base.activity).max() < 1e-5  # the table keeps 6 decimals
    assert (other.codes == base.codes).all()
    assert other.bed[5] == ("20", rows[5]["start"], rows[5]["end"], rows[5]["name"])
    assert (other.split == base.split).all()


def test_fasta_csv_and_padding(tmp_path):
    fa = tmp_path / "tiles.fa"
    fa.write_text(">a act=1.5 grp=x\nACGT\nAC\n\n>b act=-2 grp=y\nacg\n>c act=0 grp=x\nNNACGTAC\n")
    t = tabular.read_table(fa)
    assert t.header == ["name", "sequence", "act", "grp"] and [r[0] for r in t.rows] == [1, 5, 7]
    rec = tables.table_records(t, tables.TableOptions(tasks=(table_tasks.Task("act", ("act",)),), pad="center",
                                                      valid=0, test=0))
    assert rec.codes.shape == (3, 8)
    assert rec.codes[1].tolist() == [4, 4, 0, 1, 2, 4, 4, 4]  # 3 bp centred in 8: 2 left, 3 right
    assert rec.activity[:, 0].tolist() == [1.5, -2, 0] and (rec.split == "train").all()
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('# made by hand\nname,seq,y,split\n\nu,ACGT,"1.0",valid\n# note\nv,ACGA,2,test\n')
    t = tabular.read_table(csv_path)
    assert [r[0] for r in t.rows] == [4, 6]
    rec = tables.table_records(t, tables.TableOptions(tasks=(table_tasks.Task("y", ("y",)),), split_column="split"))
    assert rec.split.tolist() == ["valid", "test"] and rec.bed == [("u", 0, 4), ("v", 0, 4)]


def test_drop_missing(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("sequence\ta\tb\nACGT\t1\t2\nACGT\tNA\t2\nACGA\t3\t4\n")
    o = tables.TableOptions(tasks=(table_tasks.Task("m", ("a", "b")),), valid=0, test=0, drop_missing=True)
    rec = tables.table_records(tabular.read_table(p), o)
    assert rec.dropped == [3] and rec.activity[:, 0].tolist() == [1.5, 3.5] and rec.lines.tolist() == [2, 4]


# ----------------------------------------------------------------------------- errors through the script
def _bad_table(tmp_path, edit):
    rows = [["name", "region", "pos", "sequence", "a1", "a2"]]
    for i in range(6):
        rows.append([f"t{i}", f"g{i // 3}", str(5 * i), "ACGT" * 5, str(i / 10), str(i / 9)])
    edit(rows)
    p = tmp_path / "bad.tsv"
    p.write_text("".join("\t".join(r) + "\n" for r in rows))
    return p


@pytest.mark.parametrize("edit, words, extra", [
    (lambda r: r[3].__setitem__(3, "ACGTXACGT"), ["bad.tsv:4", "'sequence'", "bad base 'X'"], []),
    (lambda r: r[5].__setitem__(4, ""), ["bad.tsv:6", "'a1'", "missing"], []),
    (lambda r: r[2].__setitem__(5, "high"), ["bad.tsv:3", "'a2'", "'high'"], []),
    (lambda r: r[4].__setitem__(3, "A" * 41), ["bad.tsv:5", "41 bp", "longer than the frame"], []),
    (lambda r: r[6].__setitem__(2, "30"), ["bad.tsv:7", "'pos'", "offset 30", "outside the 40 bp frame"], []),
    (lambda r: None, ["bad.tsv:1", "no column 'a3'"], ["--activity", "a3"]),
    (lambda r: None, ["bad.tsv:1", "no column 'place'", "--offset_column"], ["--offset_column", "place"]),
])
def test_bad_rows_are_one_error_line(tmp_path, edit, words, extra):
    p = _bad_table(tmp_path, edit)
    args = ["--replicates", "A=a1,a2", "--frame", 40, "--offset_column", "pos", "--group_column", "region"]
    if extra[:1] == ["--offset_column"]:
        args[args.index("--offset_column") + 1] = extra[1]
        extra = []
    proc = run_script("make_table.py", p, "-o", tmp_path / "out", *args, *extra)
    assert_clean_failure(proc, *words)
    assert not (tmp_path / "out").exists()


def test_other_lengths_refused_by_default(tmp_path):
    p = _bad_table(tmp_path, lambda r: r[2].__setitem__(3, "ACGT" * 4))
    proc = run_script("make_table.py", p, "-o", tmp_path / "out", "--activity", "a1")
    assert_clean_failure(proc, "bad.tsv:3", "16 bp", "--pad")


# ----------------------------------------------------------------------------- the dataset, through the script
def _bed_rows(data_dir):
    return [line.rstrip("\n").split("\t") for line in open(data_dir / "sequences.bed")]


@pytest.fixture(scope="module")
def mpra_dataset(mpra, tmp_path_factory):
    """The SEMI-SYNTHETIC MPRA dataset: 145 bp tiles in a 295 bp frame, 4 tasks (replicate means),
    replicate-agreement weights, splits by region (for training params/mpra_cnn.json on it)."""
    path, rows = mpra
    out = tmp_path_factory.mktemp("mpra_ds") / "mpra_SEMI-SYNTHETIC"
    run_script("make_table.py", "-q", path, "-o", out, *replicate_args(), "--frame", REGION, "--offset_column",
               "pos", "--replicate_weight", "--group_column", "region", "--valid", 0.1, "--test", 0.1,
               "--seqs_per_tfr", 400, "--description", "SEMI-SYNTHETIC MPRA-like table on chr20 CTCF peaks",
               check=True)
    return out, rows


def test_dataset_records_match_a_recomputation(mpra_dataset):
    records = pytest.importorskip("basenji_tk.data.records")
    out, rows = mpra_dataset
    by_name = {r["name"]: r for r in rows}
    spec = records.load_spec(out)
    assert spec.kind == "table" and spec.stats["semi_synthetic"] is True
    assert spec.features["sequence"].shape == (REGION, 4)
    assert spec.features["activity"].shape == (4,) and spec.features["activity"].names == TASKS
    assert spec.features["weight"].kind == "weight"
    bed = _bed_rows(out)
    assert len(bed) == len(rows) == 40 * 31
    # independent weights: Euclidean distance between the replicate vectors, min-max of -d
    dist = {r["name"]: math.sqrt(sum((float(r[f"{t}_rep1"]) - float(r[f"{t}_rep2"])) ** 2 for t in TASKS))
            for r in rows}
    lo, hi = min(dist.values()), max(dist.values())
    seen, region_split = 0, {}
    for split in tables.SPLITS:
        for ex in records.read_records(out, split):
            name, start, end, bed_split = bed[ex["index"]]
            row = by_name[name]
            assert (bed_split, start, end) == (split, "0", str(TILE))
            pos = row["pos"]
            codes = ex["sequence"]
            assert (codes[:pos] == 4).all() and (codes[pos + TILE:] == 4).all()
            assert "".join("ACGT"[c] for c in codes[pos:pos + TILE]) == row["sequence"]  # chr20 has no N here
            want = [(float(row[f"{t}_rep1"]) + float(row[f"{t}_rep2"])) / 2 for t in TASKS]
            assert ex["activity"] == pytest.approx(want, abs=1e-6)
            assert ex["weight"] == pytest.approx((hi - dist[name]) / (hi - lo), abs=1e-6)
            assert region_split.setdefault(row["region"], split) == split  # regions never straddle splits
            seen += 1
    assert seen == len(rows)
    assert sorted(spec.counts.values()) == [4 * 31, 4 * 31, 32 * 31]
    for t in TASKS:  # M6: replicate agreement kept in the statistics, near the paper's 0.33-0.47
        a = [float(r[f"{t}_rep1"]) for r in rows]
        b = [float(r[f"{t}_rep2"]) for r in rows]
        assert spec.stats["replicate_pearson"][t] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-9)
        assert 0.3 < spec.stats["replicate_pearson"][t] < 0.5


def test_dataset_reads_as_one_hot_batches(mpra_dataset):
    records = pytest.importorskip("basenji_tk.data.records")
    out, _ = mpra_dataset
    batch = next(iter(records.dataset(out, "valid", batch_size=8)))
    assert tuple(batch["sequence"].shape) == (8, REGION, 4)
    assert tuple(batch["activity"].shape) == (8, 4) and tuple(batch["weight"].shape) == (8,)
    s = batch["sequence"].numpy()
    assert (s.sum(axis=-1) <= 1).all() and s.sum() == 8 * TILE  # padding is all-zero one-hot


def test_genome_and_counts_routes_through_the_script(mpra, tmp_path):
    """chrom/start/end from --fasta and activity from --counts: same records as the sequence and
    activity columns; sequences.bed holds the genome coordinates and the row name."""
    records = pytest.importorskip("basenji_tk.data.records")
    path, rows = mpra
    counts = [a for t in TASKS for a in ("--counts", f"{t}={t}_rna1:{t}_dna1,{t}_rna2:{t}_dna2")]
    common = ["-q", "--frame", REGION, "--offset_column", "pos", "--split_column", "split"]
    with_split = tmp_path / "mpra_SEMI-SYNTHETIC_split.tsv"
    text = open(path).read().splitlines()
    with_split.write_text("\n".join([text[0] + "\tsplit"] + [
        line + "\t" + ("test" if i % 7 == 0 else "train") for i, line in enumerate(text[1:])]) + "\n")
    a, b = tmp_path / "a", tmp_path / "b"
    tables.build_table_dataset(with_split, a, options(group_column=None, split_column="split"))  # in-process
    run_script("make_table.py", with_split, "-o", b, *counts, *common, "--fasta", FASTA, "--coords",
               "chrom,start,end", check=True)
    bed_b = _bed_rows(b)
    row_b = next(r for r in bed_b if r[4] == rows[1]["name"])
    assert row_b == ["20", str(rows[1]["start"]), str(rows[1]["end"]), "train", rows[1]["name"]]
    for split in ("train", "test"):
        ra, rb = list(records.read_records(a, split)), list(records.read_records(b, split))
        assert len(ra) == len(rb) == sum((i % 7 == 0) == (split == "test") for i in range(len(rows)))
        for x, y in zip(ra, rb):
            assert (x["sequence"] == y["sequence"]).all()
            assert np.abs(x["activity"] - y["activity"]).max() < 1e-5
    stats = json.loads((b / "statistics.json").read_text())
    assert "weight" not in stats["features"] and stats["table"]["from_genome"] is True
    assert stats["features"]["activity"]["meta"]["counts_formula"].startswith("log2(((RNA+1)")


def test_existing_output_needs_force(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("sequence\ty\nACGT\t1\nACGA\t2\n")
    target = tmp_path / "ds"
    o = tables.TableOptions(tasks=(table_tasks.Task("y", ("y",)),), valid=0, test=0)
    tables.build_table_dataset(p, target, o)
    proc = run_script("make_table.py", "-q", p, "-o", target, "--activity", "y", "--valid", 0, "--test", 0)
    assert_clean_failure(proc, "already exists", "--force")
    p.write_text("sequence\ty\nACGT\t1\nACGA\t3\n")
    tables.build_table_dataset(p, target, tables.TableOptions(tasks=o.tasks, valid=0, test=0, force=True))
    assert json.loads((target / "statistics.json").read_text())["counts"]["train"] == 2
    assert [line.rstrip("\n").split("\t") for line in open(target / "sequences.bed")] == [["row2", "0", "4", "train"],
                                                                                 ["row3", "0", "4", "train"]]


@pytest.mark.parametrize("text, kw, words", [
    ("chrom\tstart\tend\ty\nchr7\t10\t20\t1\n", {"coords": ("chrom", "start", "end")}, ["t.tsv:2", "'chrom'", "'chr7'"]),
    ("chrom\tstart\tend\ty\nchr20\t19999990\t20000010\t1\n", {}, ["t.tsv:2", "not inside 20"]),
    ("chrom\tstart\tend\ty\n20\tten\t20\t1\n", {}, ["t.tsv:2", "expected integers"]),
    ("sequence\ty\tsplit\nACGT\t1\ttrain\nACGT\t1\tvalidation\n", {"split_column": "split"},
     ["t.tsv:3", "'split'", "'validation'"]),
    ("sequence\ty\tw\nACGT\t1\t0.5\nACGT\t1\t-1\n", {"weight_column": "w"}, ["t.tsv:3", "'w'", "'-1'", ">= 0"]),
    ("sequence\ty\nACGT\tinf\n", {}, ["t.tsv:2", "'y'", "finite"]),
    ("sequence\ty\nACGT\t1\t3\n", {}, ["t.tsv:2", "3 fields", "header has 2"]),
    ("sequence\ty\ty\nACGT\t1\t3\n", {}, ["t.tsv:1", "'y' appears twice"]),
])
def test_library_errors_name_the_line_and_column(tmp_path, text, kw, words):
    from basenji_tk.io import genome as gn

    p = tmp_path / "t.tsv"
    p.write_text(text)
    g = gn.Genome(FASTA)
    try:
        with pytest.raises(InputError) as err:
            tables.table_records(tabular.read_table(p), tables.TableOptions(
                tasks=(table_tasks.Task("y", ("y",)),), valid=0, test=0, **kw), genome=g)
    finally:
        g.close()
    for w in words:
        assert w in str(err.value), (w, str(err.value))


def test_gzip_csv_with_crlf(tmp_path):
    import gzip

    p = tmp_path / "t.csv.gz"
    with gzip.open(p, "wt", newline="") as fh:
        fh.write('#name,seq,y\r\na,"ACGT",1\r\nb,ACGA,2\r\n')
    rec = tables.table_records(tabular.read_table(p), tables.TableOptions(tasks=(table_tasks.Task("y", ("y",)),),
                                                                         valid=0, test=0))
    assert rec.codes.tolist() == [[0, 1, 2, 3], [0, 1, 2, 0]] and rec.bed == [("a", 0, 4), ("b", 0, 4)]
