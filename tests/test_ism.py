"""ISM and saliency: pure pieces, ensembling against models.ensemble, sat_mut.py and saliency.py.

Sequences are real (data/hg19_chr20_20Mb.fa.gz); the models are the tiny trained demo model of
conftest or small random-weight models built here (labelled).
"""

import h5py
import numpy as np
import pytest
from conftest import FASTA, assert_clean_failure, run_script

from basenji_tk.data import dna
from basenji_tk.interpret import mutagenesis as ism
from basenji_tk.interpret.saliency import Saliency
from basenji_tk.model import models
from basenji_tk.errors import InputError
from basenji_tk.io.genome import Genome


def real_window(start, length):
    return dna.one_hot(Genome(FASTA).fetch("20", start, start + length), dtype=np.float32)


def random_model(length=1024, trunk=None, head=None, seed=0):
    """A small model with RANDOM weights (not trained)."""
    import keras

    keras.utils.set_random_seed(seed)
    trunk = trunk or [{"name": "conv_block", "filters": 8, "kernel_size": 7, "pool_size": 4},
                      {"name": "conv_block", "filters": 8, "kernel_size": 5, "dilation_rate": 2, "pool_size": 4}]
    head = head or [{"name": "final", "units": 3, "activation": "softplus"}]
    return models.build_model({"seq_length": length, "seq_depth": 4, "trunk": trunk, "head": head})


# ----------------------------------------------------------------------------- pure pieces
def test_mutants_bins_importance():
    ref = dna.one_hot("ACNT", dtype=np.float32)
    pos, base = ism.mutants(ref, 1, 4)
    assert list(pos) == [1, 1, 1, 2, 2, 2, 2, 3, 3, 3] and list(base) == [0, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    assert list(ism.score_bins("sum", 8, 128, 0, 400, 600)) == list(range(8))
    assert list(ism.score_bins("center", 8, 128, 0, 400, 600)) == [3, 4]
    assert list(ism.score_bins("center", 8, 128, 64, 500, 501)) == [3]
    assert list(ism.score_bins("tss", 8, 128, 0, 0, 1, position=300, tss_flank=1)) == [1, 2, 3]
    assert list(ism.score_bins("tss", 8, 128, 0, 0, 1, position=5, tss_flank=2)) == [0, 1, 2]
    with pytest.raises(InputError, match="no output bin"):
        ism.score_bins("tss", 8, 128, 0, 0, 1, position=5000)
    scores = np.zeros((2, 4, 1))
    scores[0, :, 0] = [0, -3, 2, 1]
    scores[1, :, 0] = [0.5, 0, 0.2, -0.1]
    np.testing.assert_array_equal(ism.importance(scores)[:, 0], [-3, 0.5])
    field = models.ReceptiveField(100, 8)
    np.testing.assert_array_equal(ism.reachable(np.array([0, 99, 100, 399, 400, 500]), np.array([2]), 100, 0, field),
                                  [False, False, True, True, False, False])


# ----------------------------------------------------------------------------- prediction
@pytest.mark.parametrize("method", ["naive", "fast"])
def test_predictor_matches_the_ensemble_model(method):
    """Mutants moved with rc and shifts equal models.ensemble on the full mutant sequences."""
    model = random_model()
    ref = real_window(5_000_000, 1024)
    rng = np.random.default_rng(0)
    pos = np.concatenate([[0, 1, 1022, 1023], rng.integers(0, 1024, 12)])
    base = np.array([(int(np.argmax(ref[p])) + 1 + k % 3) % 4 for k, p in enumerate(pos)])
    shifts = (0, 3, -2)
    pred = ism.Predictor(model, method, rc=True, shifts=shifts, batch_size=5)
    assert pred.method == method
    ref_pred, mut_pred = pred.predict(ref, pos, base)
    full = models.ensemble(model, rc=True, shifts=shifts)
    seqs = np.repeat(ref[None], len(pos), axis=0)
    seqs[np.arange(len(pos)), pos] = np.eye(4, dtype=np.float32)[base]
    want = np.asarray(full.predict_on_batch(seqs))
    np.testing.assert_allclose(mut_pred, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ref_pred, np.asarray(full.predict_on_batch(ref[None]))[0], rtol=1e-4, atol=1e-5)


def test_out_of_reach_mutations_score_zero():
    """With the center statistic, skipped mutations are exactly those that cannot change the bins."""
    model = random_model(length=2048)
    ref = real_window(6_000_000, 2048)
    pred = ism.Predictor(model, "naive", batch_size=64)
    bins = ism.score_bins("center", 128, 16, 0, 1000, 1040)
    field = models.receptive_field(model)
    fast = ism.saturation_mutagenesis(pred, ref, 600, 1500, bins, [0, 2], 16, 0, field)
    full = ism.saturation_mutagenesis(pred, ref, 600, 1500, bins, [0, 2], 16, 0, None)
    assert fast.skipped > 0 and full.skipped == 0 and fast.predicted + fast.skipped == full.predicted
    np.testing.assert_allclose(fast.scores, full.scores, atol=1e-6)
    assert np.abs(full.scores).max() > 0


# ----------------------------------------------------------------------------- saliency
def test_saliency_sums_for_a_linear_model():
    """Linear layers (RANDOM weights): gradient x input and bin saliency add up to the output."""
    model = random_model(length=512, trunk=[{"name": "conv_block", "filters": 6, "kernel_size": 5, "pool_size": 8,
                                            "pool_type": "average", "activation": "linear", "batch_norm": False}],
                         head=[{"name": "final", "units": 2, "activation": "linear"}])
    x = real_window(7_000_000, 512)[None]
    bins = np.array([10, 11, 12])
    y = lambda s: np.asarray(model.predict_on_batch(s))[0, bins, 1].sum()  # noqa: E731
    grads, sal = Saliency(model)(x, 1, bins)
    gxi = (grads * x).sum()
    assert gxi == pytest.approx(y(x) - y(np.zeros_like(x)), rel=1e-4)
    assert sal.shape == (1, 64)
    import keras

    dense = next(layer for layer in model.layers if isinstance(layer, keras.layers.Dense))
    assert sal.sum() == pytest.approx(y(x) - len(bins) * float(dense.get_weights()[1][1]), rel=1e-4)


# ----------------------------------------------------------------------------- the scripts
def write_bed(path, rows):
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_sat_mut_script(tmp_path, tiny_model):
    bed = write_bed(tmp_path / "r.bed", [("20", 5_000_100, 5_000_300, "peak1", 0, "+"),
                                         ("chr20", 9_000_000, 9_000_001, "tss1", 0, "-"),
                                         ("20", 3000, 3100, "near_start", 0, "+"),  # window padded with N
                                         ("20", 0, 2, "off_end", 0, "+")])  # mutated bp off the end: skipped
    out = tmp_path / "out"
    proc = run_script("sat_mut.py", "-q", tiny_model, bed, "-f", FASTA, "-o", out, "--mut_len", 24,
                      "--stat", "center", "--targets", "0,2", "--plots", "--float32")
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out / "scores.h5") as h5:
        assert h5["scores"].shape == (3, 24, 4, 2) and h5["seqs"].shape == (3, 24, 4)
        assert [x.decode() for x in h5["name"][:]] == ["peak1", "tss1", "near_start"]
        assert h5.attrs["sites_off_chromosome_end_skipped"] == 1 and h5.attrs["windows_padded_with_n"] == 1
        seqs, scores, imp = h5["seqs"][:], h5["scores"][:], h5["importance"][:]
        window_start, start = h5["window_start"][0], h5["start"][0]
        ids = [t.decode() for t in h5["target_ids"][:]]
    assert (scores[seqs.astype(bool)] == 0).all() and np.abs(scores).max() > 0
    np.testing.assert_array_equal(imp, np.stack([ism.importance(s) for s in scores]))
    assert len(list((out / "plots").glob("*.png"))) == 3 * 2
    # one mutant by brute force: the centre bins of the mutant minus the reference
    model = models.load_model(tiny_model / "model_best.keras")
    ref = real_window(int(window_start), 16384)
    k = 7
    b = (int(np.argmax(seqs[0, k])) + 2) % 4
    mut = ref.copy()
    mut[start - window_start + k] = np.eye(4)[b]
    p = np.asarray(model.predict_on_batch(np.stack([ref, mut])))
    bins = ism.score_bins("center", p.shape[1], 128, 0, int(start - window_start), int(start - window_start) + 24)
    want = (p[1, bins] - p[0, bins]).sum(axis=0)[[0, 2]]
    np.testing.assert_allclose(scores[0, k, b], want, rtol=1e-3, atol=1e-5)
    assert len(ids) == 2


def test_sat_mut_vcf_and_bad_input(tmp_path, tiny_model):
    vcf = tmp_path / "v.vcf"
    genome = Genome(FASTA)
    b1, b2 = genome.fetch("20", 5_000_049, 5_000_050), genome.fetch("20", 5_001_000, 5_001_001)
    alt1, alt2 = next(x for x in "ACGT" if x != b1), next(x for x in "ACGT" if x != b2)
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=20>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                   f"20\t5000050\tsnp1\t{b1}\t{alt1}\t.\t.\t.\n20\t5001001\tsnp2\t{b2}\t{alt2}\t.\t.\t.\n")  # CONSTRUCTED
    out = tmp_path / "out"
    run_script("sat_mut.py", "-q", tiny_model, "--vcf", vcf, "-f", FASTA, "-o", out, "--mut_len", 9,
               "--stat", "tss", check=True)
    with h5py.File(out / "scores.h5") as h5:
        assert [x.decode() for x in h5["allele"][:]] == ["ref", "alt", "ref", "alt"]
        seqs = h5["seqs"][:]
    assert dna.decode(seqs[0])[4] == b1 and dna.decode(seqs[1])[4] == alt1
    assert dna.decode(seqs[0])[:4] == dna.decode(seqs[1])[:4]
    bed = write_bed(tmp_path / "r.bed", [("20", 5_000_100, 5_000_300, "p")])
    assert_clean_failure(run_script("sat_mut.py", tiny_model, bed, "-f", FASTA, "-o", out, "--mut_len", 20000),
                         "--mut_len 20000", "16,384")
    assert_clean_failure(run_script("sat_mut.py", tiny_model, bed, "-f", FASTA, "-o", out, "--targets", "nope"),
                         "--targets", "nope")
    empty = tmp_path / "empty.bed"
    empty.write_text("# nothing\n")
    assert_clean_failure(run_script("sat_mut.py", tiny_model, empty, "-f", FASTA, "-o", out), "empty.bed", "no regions")
    assert_clean_failure(run_script("sat_mut.py", tiny_model, bed, "--vcf", vcf, "-f", FASTA, "-o", out), "not both")
    bad = write_bed(tmp_path / "bad.bed", [("20", "x", 5, "p")])
    assert_clean_failure(run_script("sat_mut.py", tiny_model, bad, "-f", FASTA, "-o", out), "bad.bed:1")


def test_saliency_script(tmp_path, tiny_model):
    import pyBigWig

    bed = write_bed(tmp_path / "r.bed", [("20", 5_000_100, 5_000_300, "peak1"), ("20", 9_000_000, 9_000_001, "tss1")])
    out = tmp_path / "sal"
    proc = run_script("saliency.py", "-q", tiny_model, bed, "-f", FASTA, "-o", out, "--target", "tss",
                      "--stat", "tss")
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out / "saliency.h5") as h5:
        gxi, sal, start = h5["grad_x_input"][:], h5["bin_saliency"][:], h5["start"][:]
        width = int(h5.attrs["bin_width"])
    assert gxi.shape == (2, 16384) and sal.shape[0] == 2 and width * sal.shape[1] == 16384
    assert np.abs(sal).max() > 0
    with pyBigWig.open(str(out / "bin_saliency.bw")) as bw:
        got = bw.values("20", int(start[1]), int(start[1]) + width * sal.shape[1], numpy=True)[::width]
    np.testing.assert_allclose(got, sal[1], rtol=1e-5, atol=1e-6)
    assert len(list(out.glob("*.png"))) == 2
    # bad input names saliency.py's own flag, and a renamed chromosome says what it became
    bed2 = tmp_path / "chr.bed"
    bed2.write_text("chr20\t5000100\t5000300\tp\n")
    proc = run_script("saliency.py", tiny_model, bed2, "-f", FASTA, "-o", tmp_path / "bad", "--target", "nope")
    line = assert_clean_failure(proc, "--target:", "nope")
    assert "--targets" not in line and "chr20->20" in proc.stderr
    proc = run_script("saliency.py", "-q", tiny_model, bed, "-f", FASTA, "-o", out, "--target", "tss")
    assert_clean_failure(proc, "saliency.h5", "--force")
