"""Motif insertion (insert_motif.py), footprints and distal scoring (--score_at), against known truths.

The truths come from hand-built Keras models whose weights are set by hand: a model that counts
the 8-mer GATTACAG on the + strand (so inserting it adds exactly 1, its reverse complement 0),
the same model doubled, a profile model whose softmax takes a bias input, and a binned model
of known receptive field. Backgrounds are GENERATED (dinucleotide shuffles of data/'s genome).
"""

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import FASTA, assert_clean_failure, run_script
from zoo import REGIONS

KMER = "GATTACAG"
OTHER = "CCCGGGCC"
L = 400


def _one_hot_rows(text):
    return np.eye(4)[["ACGT".index(c) for c in text]]


def _import(model, work, name, kind, **kw):
    from basenji_tk.analysis.cards import import_model

    path = work / f"{name}.keras"
    model.save(path)
    import_model(path, work / name, kinds=[kind], fasta=FASTA, force=True, **kw)
    return work / name


def kmer_keras(scale=1.0):
    """(L, 4) -> (1,): ``scale`` x the number of + strand GATTACAG in the sequence."""
    import keras

    inp = keras.Input((L, 4), name="sequence")
    conv = keras.layers.Conv1D(1, len(KMER), activation="relu")
    dense = keras.layers.Dense(1)
    model = keras.Model(inp, dense(keras.layers.GlobalAveragePooling1D()(conv(inp))), name="kmer_counter")
    conv.set_weights([_one_hot_rows(KMER)[:, :, None].astype(np.float32), np.array([1 - len(KMER)], np.float32)])
    dense.set_weights([np.array([[scale * (L - len(KMER) + 1)]], np.float32), np.zeros(1, np.float32)])
    return model


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from basenji_tk.io.meme import Motif, write_meme

    work = tmp_path_factory.mktemp("insertion")
    (work / "regions.bed").write_text("".join("\t".join(map(str, r)) + "\n" for r in REGIONS))
    near_uniform = np.full((6, 4), 0.25)
    write_meme([Motif("KMER", _one_hot_rows(KMER) * 0.96 + 0.01, "kmer_tf"),
                Motif("OTHER", _one_hot_rows(OTHER) * 0.96 + 0.01, "other_tf"),
                Motif("UNIFORM", near_uniform, "uniform"),
                Motif("LONG", np.full((L + 1, 4), 0.25), "too_long")], work / "motifs.meme")
    _import(kmer_keras(), work, "kmer", "value")
    _import(kmer_keras(2.0), work, "kmer2", "value")
    return work


def _run(work, model="kmer", out="out", **kw):
    from basenji_tk.interpret.insertion import insert_motif

    kw.setdefault("regions", work / "regions.bed")
    kw.setdefault("n", 120)
    res = insert_motif(work / model, work / out, kw.pop("motif", "KMER"), str(work / "motifs.meme"), force=True, **kw)
    table = pd.read_csv(work / out / "insertions.tsv", sep="\t")
    return res, table, pd.read_csv(work / out / "summary.tsv", sep="\t")


# ----------------------------------------------------------------------------- pieces
def test_instances_insert_and_window():
    from basenji_tk.errors import InputError
    from basenji_tk.interpret.insertion import insert, insertion_start, motif_instances
    from basenji_tk.io.meme import Motif

    pwm = np.array([[0.7, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 1.0], [0.25, 0.25, 0.25, 0.25]])
    motif = Motif("M", pwm)
    cons = motif_instances(motif, 3)
    assert (cons.argmax(axis=2) == [0, 3, 0]).all()
    a = motif_instances(motif, 4000, "sample", 7)
    assert np.array_equal(a, motif_instances(motif, 4000, "sample", 7))  # seeded
    freq = a.mean(axis=0)
    assert abs(freq[0, 0] - 0.7) < 0.03 and freq[1, 3] == 1 and np.allclose(freq[2], 0.25, atol=0.03)
    bg = np.zeros((2, 10, 4), np.float32)
    minus = insert(bg, cons[:2], 4, "-")
    assert "".join("ACGT"[i] for i in minus[0, 4:7].argmax(1)) == "TAT"  # reverse complement of ATA
    assert not minus[:, :4].any() and not bg.any()
    assert insertion_start(400, 8) == 196 and insertion_start(400, 8, position=10) == 6
    with pytest.raises(InputError, match="longer than the model's 400 bp window"):
        insertion_start(400, 401, "LONG")
    with pytest.raises(InputError, match="runs off"):
        insertion_start(400, 8, position=2)


def test_backgrounds_scores_are_the_kmer_counts(work):
    """Without the motif, each GENERATED background scores its own count of + strand GATTACAG."""
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret.backgrounds import shuffled_backgrounds
    from basenji_tk.interpret.insertion import make_arm
    from basenji_tk.interpret.shuffle import dinuc_counts
    from basenji_tk.interpret.sites import read_sites

    tm = TrainedModel.load(work / "kmer")
    genome = tm.genome()
    bg = shuffled_backgrounds(genome, read_sites(work / "regions.bed", genome), L, 60, 0)
    assert bg.one_hot.shape == (60, L, 4) and bg.source[:4] == ["r0", "r1", "r2", "r0"]
    assert np.array_equal(dinuc_counts(bg.one_hot[0]), dinuc_counts(bg.one_hot[3]))  # shuffles of one window
    assert not np.array_equal(bg.one_hot[0], bg.one_hot[3])
    # a planted copy in a third of them, so the counts are not all 0
    planted = bg.one_hot.copy()
    planted[::3, 50:58] = _one_hot_rows(KMER)
    arm = make_arm("kmer", tm, None, None, None, genome, False, (0,), 16)
    got = arm.score(arm.predict(planted, bg.windows), np.zeros(0, int))
    truth = [sum("".join("ACGT"[i] for i in s.argmax(1))[k:k + 8] == KMER for k in range(L - 7)) for s in planted]
    assert np.allclose(got, truth, atol=1e-4) and max(truth) >= 1


def test_kmer_insertion_known_effect(work):
    _, table, summary = _run(work, strand="both")
    assert list(table.columns[:7]) == ["background", "source", "background_kind", "strand", "without", "with",
                                       "delta"]
    assert (table["background_kind"].str.startswith("GENERATED")).all()
    plus, minus = table[table.strand == "+"], table[table.strand == "-"]
    assert len(plus) == len(minus) == 120
    assert np.allclose(plus["delta"], 1, atol=1e-4)  # one new GATTACAG, nothing else changes this often
    assert np.allclose(minus["delta"], 0, atol=1e-4)  # its reverse complement is not counted
    row = summary.set_index("strand").loc["+"]
    assert row["median_delta"] == pytest.approx(1, abs=1e-4) and row["fraction_positive"] == 1
    assert row["p_value"] < 1e-15
    assert row["p_value"] == pytest.approx(stats.wilcoxon(plus["with"] - plus["without"]).pvalue, rel=1e-6)
    assert summary.set_index("strand").loc["-", "p_value"] == 1
    # unrelated motif: no change at all; averaging with the reverse complement halves the effect
    _, other, osum = _run(work, motif="OTHER", out="other")
    assert np.allclose(other["delta"], 0, atol=1e-4) and osum.loc[0, "p_value"] == 1
    _, rc, _ = _run(work, out="rc", rc=True, n=30)
    assert np.allclose(rc["delta"], 0.5, atol=1e-4)
    assert (work / "out" / "insertion_box.png").stat().st_size > 5000


def test_sampled_instances_and_gc_matched(work):
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret.backgrounds import window_gc

    res, table, _ = _run(work, motif="UNIFORM", out="uniform", instance="sample", n=40, seed=3)
    again = _run(work, motif="UNIFORM", out="uniform2", instance="sample", n=40, seed=3)[1]
    assert table["delta"].equals(again["delta"])  # seeded
    res, gc, summary = _run(work, out="gc", regions=None, gc_matched=25, gc=0.45)
    assert len(gc) == 25 and (gc["background_kind"] == "genome GC-matched").all()
    windows = [(c, int(a), int(b)) for c, a, b in gc["source"].str.extract(r"(.+):(\d+)-(\d+)").itertuples(False)]
    assert np.all(np.abs(window_gc(TrainedModel.load(work / "kmer").genome(), windows) - 0.45) < 0.06)
    assert np.allclose(gc["delta"], 1, atol=1e-4)


def test_two_models_and_rank_sum(work):
    _, table, summary = _run(work, n=60, model_b=str(work / "kmer2"))
    assert np.allclose(table["delta_b"], 2 * table["delta"], atol=1e-4)
    comp = summary[summary["group"] == "kmer2 - kmer"].iloc[0]
    assert comp["test"] == "wilcoxon_signed_rank_paired" and comp["median_delta"] == pytest.approx(1, abs=1e-4)
    assert comp["p_value"] < 1e-8
    _, table, summary = _run(work, n=60, model_b=str(work / "kmer2"), test="rank_sum")
    comp = summary.iloc[-1]
    assert comp["test"] == "mann_whitney_rank_sum"
    assert comp["p_value"] == pytest.approx(stats.mannwhitneyu(table["delta_b"], table["delta"]).pvalue, rel=1e-6)


def test_two_contexts_and_two_models_on_zoo_pairs(work, zoo_pairs):
    kw = dict(model="pairs", n=40, motif="KMER")
    work.joinpath("pairs").symlink_to(zoo_pairs.model_dir) if not (work / "pairs").exists() else None
    from basenji_tk.analysis.inputs import InputOptions

    _, both, summary = _run(work, out="ctx", inputs=InputOptions(context="cpg"), context_b="ctcf", **kw)
    _, cpg, _ = _run(work, out="cpg", inputs=InputOptions(context="cpg"), **kw)
    _, ctcf, _ = _run(work, out="ctcf", inputs=InputOptions(context="ctcf"), **kw)
    assert np.allclose(both["delta"], cpg["delta"], atol=1e-6)
    assert np.allclose(both["delta_b"], ctcf["delta"], atol=1e-6)
    assert not np.allclose(cpg["delta"], ctcf["delta"])  # the context changes the prediction
    comp = summary[summary["group"] == "ctcf - cpg"].iloc[0]
    assert comp["p_value"] == pytest.approx(stats.wilcoxon(both["delta_b"] - both["delta"]).pvalue, rel=1e-6)
    _, same, summary = _run(work, out="same", inputs=InputOptions(context="cpg"), model_b=str(work / "pairs"), **kw)
    assert np.allclose(same["delta"], same["delta_b"]) and summary.iloc[-1]["p_value"] == 1


def profile_with_bias():
    """(L, 4) sequence and (100, 1) bias -> softmax over 100 central positions of 2 tracks."""
    import keras

    from basenji_tk.model.layers import SoftmaxPositions

    keras.utils.set_random_seed(3)
    seq, bias = keras.Input((L, 4), name="sequence"), keras.Input((100, 1), name="bias")
    x = keras.layers.Conv1D(2, 9, padding="same")(seq)
    x = keras.layers.Cropping1D(150)(x)
    return keras.Model({"sequence": seq, "bias": bias}, SoftmaxPositions()([x, bias]), name="biased_profile")


def test_footprint_profile_and_bias(work, zoo_profile):
    from basenji_tk.analysis.inputs import InputOptions
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.interpret.backgrounds import shuffled_backgrounds
    from basenji_tk.interpret.insertion import make_arm, bias_inputs, footprint
    from basenji_tk.interpret.sites import read_sites

    work.joinpath("profile").symlink_to(zoo_profile.model_dir) if not (work / "profile").exists() else None
    _run(work, model="profile", out="fp", n=30, output="profile", footprint_plot=True, strand="both")
    fp = pd.read_csv(work / "fp" / "footprint.tsv", sep="\t")
    assert len(fp) == 2 * 3 * 100 and set(fp["target"]) == {"tss", "cpg", "ctcf"}
    assert (fp["with_q25"] <= fp["with_median"] + 1e-9).all() and (fp["with_median"] <= fp["with_q75"] + 1e-9).all()
    assert fp["position"].min() == -49.5 + 0 and fp["position"].max() == 49.5  # 100 bp around the motif
    assert (work / "fp" / "footprint.png").stat().st_size > 5000

    biased = _import(profile_with_bias(), work, "biased", "profile", resolution=["1"])
    tm = TrainedModel.load(biased)
    assert bias_inputs(tm, "target") == ["bias"]
    genome = tm.genome()
    bg = shuffled_backgrounds(genome, read_sites(work / "regions.bed", genome), L, 20, 0)
    ramp = work / "ramp.npy"
    np.save(ramp, np.linspace(-3, 3, 100, dtype=np.float32)[:, None])
    arm = make_arm("b", tm, None, None, InputOptions(values=(f"bias={ramp}",)), genome, False, (0,), 8)
    cons = np.repeat(_one_hot_rows(KMER)[None], 20, axis=0).astype(np.float32)
    table = footprint(arm, bg, cons, 196)
    x = {"sequence": bg.one_hot, "bias": np.zeros((20, 100, 1), np.float32)}
    zero_bias = np.median(np.asarray(tm.model(x)), axis=0)
    with_ramp = np.median(np.asarray(tm.model({**x, "bias": np.broadcast_to(np.load(ramp), (20, 100, 1))})), axis=0)
    got = table[table["target"] == "t0"]["without_median"].to_numpy()
    assert np.allclose(got, zero_bias[:, 0], atol=1e-6) and not np.allclose(got, with_ramp[:, 0], atol=1e-3)


def binned_keras(length=2000):
    """(2000, 4) -> 20 bins of 100 bp x 1 track; a bin sees its own bp and its neighbours' (+ 4 bp):
    a receptive field of 9 + 99 + 2 x 100 = 308 bp."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((length, 4), name="sequence")
    x = keras.layers.Conv1D(4, 9, padding="same")(inp)
    x = keras.layers.AveragePooling1D(100)(x)
    return keras.Model(inp, keras.layers.Conv1D(1, 3, padding="same", activation="softplus")(x),
                       name="binned_small")


def test_score_at_distal_bin(work):
    from basenji_tk.errors import InputError
    from basenji_tk.interpret.satmut import sat_mut
    from basenji_tk.interpret.saliency import saliency_maps

    model = _import(binned_keras(), work, "binned", "binned")
    bed = work / "one.bed"
    bed.write_text("20\t1500000\t1500020\tA\n")
    from basenji_tk.analysis.trained import TrainedModel
    from basenji_tk.data import dna

    tm = TrainedModel.load(model)
    genome = tm.genome()
    for name, pos, reach in (("near", 1_500_160, True), ("far", 1_500_810, False)):
        out = work / f"distal_{name}"
        sat_mut(model, out, bed=bed, mut_len=20, score_at=f"20:{pos + 1}", method="naive", float32=True,
                quiet=True, force=True)
        with h5py.File(out / "scores.h5") as h5:
            scores, w0 = h5["scores"][0, :, :, 0], int(h5["window_start"][0])
            assert h5.attrs["score_at"] == f"20:{pos + 1}" and h5.attrs["stat"] == "tss"
            assert h5["scored_start"][0] <= pos < h5["scored_end"][0]
            assert int(h5["start"][0]) == 1_500_000 and w0 == (1_500_010 + pos) // 2 - 1000
        # the truth: predict the first mutant in full and read the bin holding pos
        ref = dna.one_hot(genome.fetch("20", w0, w0 + 2000), dtype=np.float32)
        k = 1_500_000 - w0
        b = (ref[k].argmax() + 1) % 4
        mut = ref.copy()
        mut[k] = np.eye(4)[b]
        y = np.asarray(tm.model(np.stack([ref, mut])))[:, (pos - w0) // 100, 0]
        assert scores[0, b] == pytest.approx(y[1] - y[0], abs=1e-5)
        assert (np.abs(scores).max() > 1e-6) == reach
        if not reach:
            assert abs(y[1] - y[0]) == 0  # out of the receptive field: the model itself does not move
        sal = work / f"sal_{name}"
        saliency_maps(model, bed, sal, score_at=f"20:{pos + 1}", center_len=20, plots=False, quiet=True, force=True)
        with h5py.File(sal / "saliency.h5") as h5:
            g = h5["gradients"][0].astype(np.float64)
            w = int(h5["start"][0])
            assert (np.abs(g[1_500_000 - w:1_500_020 - w]).max() > 0) == reach
            assert h5.attrs["score_at"] == f"20:{pos + 1}"
    with pytest.raises(InputError, match="is 4,989 bp from it; one 2,000 bp window"):
        sat_mut(model, work / "too_far", bed=bed, mut_len=20, score_at="20:1505000", quiet=True, force=True)
    with pytest.raises(InputError, match="expected CHROM:POS"):
        sat_mut(model, work / "bad", bed=bed, mut_len=20, score_at="20-1505000", quiet=True, force=True)


def test_cli_help_and_errors(work):
    proc = run_script("insert_motif.py", "--help")
    assert proc.returncode == 0 and "--context_b" in proc.stdout and "signed_rank" in proc.stdout
    common = ["--regions", work / "regions.bed", "--motifs", work / "motifs.meme", "-q", "--n", 5]
    assert_clean_failure(run_script("insert_motif.py", work / "kmer", *common, "--motif", "NOPE", "-o", work / "e1"),
                         "no motif named 'NOPE'")
    assert_clean_failure(run_script("insert_motif.py", work / "kmer", *common, "--motif", "LONG", "-o", work / "e2"),
                         "401 bp, longer than the model's 400 bp window")
    assert_clean_failure(run_script("insert_motif.py", work / "kmer", *common, "--motif", "kmer_tf", "--footprint",
                                    "-o", work / "e3"), "needs a profile output")
    for script in ("sat_mut.py", "saliency.py"):
        assert "--score_at CHROM:POS" in run_script(script, "--help").stdout
