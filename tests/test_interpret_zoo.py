"""sat_mut.py and saliency.py on every kind of model of the zoo (tests/zoo.py).

The zoo models are tiny and barely trained (one epoch of two steps), so the scores say nothing
about biology; the tests check that both scripts run where they make sense, give one error line
where they do not, that fast and naive ISM agree through sat_mut.py, and that the numbers are
what the model gives (reference predictions, context vectors, logit gradients, finite differences).
"""

import h5py
import numpy as np
import pytest
from conftest import DATA, FASTA, assert_clean_failure, run_script

from basenji_tk.analysis.inputs import InputOptions, extra_inputs
from basenji_tk.analysis.trained import TrainedModel
from basenji_tk.data import dna
from basenji_tk.io.genome import Genome

# zoo kind -> (sat_mut.py / saliency.py options besides the zoo's own, the output explained)
SEQUENCE_CASES = {
    "binned": (["--targets", "0,2", "--stat", "center"], "target"),
    "pairs": ([], "accessible"),
    "profile_counts": (["--output", "total"], "total"),
    "profile_shape": (["--output", "profile", "--stat", "center", "--targets", "ctcf"], "profile"),
    "table": ([], "activity"),
    "imported_keras": (["--stat", "tss", "--tss_flank", "5"], "target"),
    "imported_h5": (["--stat", "sum", "--targets", "1"], "target"),
}
# zoo kind -> saliency.py options besides the zoo's own
SALIENCY_CASES = {
    "binned": ["--target", "2", "--stat", "center"],
    "pairs": [],
    "profile_counts": ["--output", "total", "--target", "1"],
    "profile_shape": ["--output", "profile", "--target", "ctcf", "--center_len", "20"],  # 20 of its 100 positions
    "table": ["--target", "3"],
    "imported_keras": ["--stat", "tss", "--tss_flank", "5", "--target", "cpg"],
    "imported_h5": ["--stat", "sum", "--target", "1"],
}
MUT_LEN = 12


def zoo_of(request, case):
    return request.getfixturevalue(f"zoo_{case.split('_')[0] if case.startswith('profile') else case}")


def read_h5(path, *names):
    with h5py.File(path) as h5:
        return {n: h5[n][:] for n in names}, dict(h5.attrs)


def windows(scores_path):
    """(chrom, window start) of each sequence of a scores.h5."""
    got, _ = read_h5(scores_path, "chrom", "window_start")
    return [(c.decode(), int(w)) for c, w in zip(got["chrom"], got["window_start"])]


@pytest.mark.parametrize("case", sorted(SEQUENCE_CASES))
def test_sat_mut_fast_and_naive_agree(case, request, tmp_path):
    """The acceptance check: fast and naive ISM agree to 1e-4 through sat_mut.py, on every zoo model
    with a sequence input; and the reference score is what the model predicts for the window."""
    z = zoo_of(request, case)
    extra, output = SEQUENCE_CASES[case]
    scores = {}
    for method in ("fast", "naive"):
        out = tmp_path / method
        proc = run_script("sat_mut.py", "-q", z.model_dir, z.bed, "-f", FASTA, "-o", out, "--mut_len", MUT_LEN,
                          "--method", method, "--float32", *z.options, *extra)
        assert proc.returncode == 0, proc.stderr
        got, attrs = read_h5(out / "scores.h5", "scores", "ref_score", "seqs", "target_ids")
        assert attrs["method"] == method and attrs["output"] == output
        scores[method] = got
    fast, naive = scores["fast"]["scores"], scores["naive"]["scores"]
    assert fast.shape == naive.shape and fast.shape[:3] == (3, MUT_LEN, 4)
    assert np.abs(fast - naive).max() <= 1e-4
    assert np.abs(naive).max() > 0  # the mutations move this output
    assert (naive[scores["naive"]["seqs"].astype(bool)] == 0).all()  # reference bases score 0

    # the reference score, from the model itself (with its context vector)
    tm = TrainedModel.load(z.model_dir)
    info = tm.output(output)
    ids = [t.decode() for t in scores["naive"]["target_ids"]]
    genome = Genome(FASTA)
    opts = InputOptions(context=z.options[1] if "--context" in z.options else None)
    for i, (chrom, w0) in enumerate(windows(tmp_path / "naive" / "scores.h5")):
        window = (chrom, w0, w0 + tm.window)
        x = {tm.sequence.name: dna.one_hot(genome.fetch(*window), dtype=np.float32)[None]}
        x.update({k: v[None] for k, v in extra_inputs(tm, window, opts, genome.sizes).items()})
        pred = tm.predict(x)[output][0].astype(np.float64)
        cols = [info.targets.index(t) for t in ids]
        if info.positional:
            with h5py.File(tmp_path / "naive" / "scores.h5") as h5:
                stat, start = h5.attrs["stat"], int(h5["start"][i]) - w0
            from basenji_tk.interpret.mutagenesis import score_bins

            position = start + MUT_LEN // 2
            bins = score_bins(stat, info.num_positions, info.resolution, info.offset, start, start + MUT_LEN,
                              position, 5 if case == "imported_keras" else 0)
            want = pred[bins][:, cols].sum(axis=0)
        else:
            want = pred[cols]
        np.testing.assert_allclose(scores["naive"]["ref_score"][i], want, rtol=1e-4, atol=1e-5)


def test_sat_mut_depends_on_the_context(zoo_pairs, tmp_path):
    """A two-input model: the same sequence scores differently in another context."""
    got = {}
    for context in ("cpg", "ctcf"):
        out = tmp_path / context
        run_script("sat_mut.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-f", FASTA, "-o", out, "--mut_len", 8,
                   "--float32", "--context", context, check=True)
        got[context], attrs = read_h5(out / "scores.h5", "scores", "ref_score")
        assert attrs["context"] == context
    assert np.abs(got["cpg"]["ref_score"] - got["ctcf"]["ref_score"]).max() > 1e-6
    assert np.abs(got["cpg"]["scores"] - got["ctcf"]["scores"]).max() > 1e-7


def test_sat_mut_where_it_does_not_apply(zoo_signal, zoo_profile, zoo_pairs, tiny_model, tmp_path):
    out = tmp_path / "x"
    proc = run_script("sat_mut.py", zoo_signal.model_dir, zoo_signal.bed, "-f", FASTA, "-o", out)
    assert_clean_failure(proc, "sat_mut.py mutates a DNA sequence input", "marks signal", "saliency.py")
    assert not out.exists()
    proc = run_script("sat_mut.py", zoo_profile.model_dir, zoo_profile.bed, "-f", FASTA, "-o", out)
    assert_clean_failure(proc, "--output", "profile", "total")
    proc = run_script("sat_mut.py", zoo_profile.model_dir, zoo_profile.bed, "-f", FASTA, "-o", out,
                      "--output", "profile", "--stat", "sum")
    assert_clean_failure(proc, "--stat sum", "softmax over its 100 positions", "--output")
    proc = run_script("sat_mut.py", zoo_pairs.model_dir, zoo_pairs.bed, "-f", FASTA, "-o", out)
    assert_clean_failure(proc, "expression", "--context")
    proc = run_script("sat_mut.py", zoo_pairs.model_dir, zoo_pairs.bed, "-f", FASTA, "-o", out, "--context", "nope")
    assert_clean_failure(proc, "--context", "nope")
    proc = run_script("sat_mut.py", tiny_model, zoo_pairs.bed, "-f", FASTA, "-o", out, "--output", "nope")
    assert_clean_failure(proc, "--output", "nope", "target")
    assert not out.exists()


# ----------------------------------------------------------------------------- saliency.py
@pytest.mark.parametrize("case", sorted(SALIENCY_CASES))
def test_saliency_on_the_sequence(case, request, tmp_path):
    z = zoo_of(request, case)
    output = SEQUENCE_CASES[case][1]
    out = tmp_path / "sal"
    proc = run_script("saliency.py", "-q", z.model_dir, z.bed, "-f", FASTA, "-o", out, *z.options,
                      *SALIENCY_CASES[case])
    assert proc.returncode == 0, proc.stderr
    tm = TrainedModel.load(z.model_dir)
    with h5py.File(out / "saliency.h5") as h5:
        gxi, grads = h5["grad_x_input"][:], h5["gradients"][:].astype(np.float32)
        assert h5.attrs["output"] == output and not h5.attrs["logit"]
        has_bins = "bin_saliency" in h5
    assert gxi.shape == (3, tm.seq_length) and np.abs(gxi).max() > 0
    assert (out / "grad_x_input.bw").exists() and has_bins == (out / "bin_saliency.bw").exists()
    # a model without pooling on the way to the output (the seq-to-seq import, the profile head) has no bin map
    assert has_bins == (case in ("binned", "pairs", "profile_counts", "table", "imported_h5"))
    assert len(list(out.glob("*.png"))) == 3
    assert np.isfinite(grads).all()


def test_saliency_logit_is_the_probability_gradient_over_p_1_minus_p(zoo_pairs, tmp_path):
    """d sigmoid(z) = p (1 - p) dz: the logit's gradient x input, scaled, is the probability's."""
    got = {}
    for flag in ([], ["--logit"]):
        out = tmp_path / ("logit" if flag else "prob")
        run_script("saliency.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-f", FASTA, "-o", out, "--context",
                   "cpg", "--no_plots", *flag, check=True)
        with h5py.File(out / "saliency.h5") as h5:
            got[bool(flag)] = (h5["grad_x_input"][:], h5["start"][:], bool(h5.attrs["logit"]))
    assert got[True][2] and not got[False][2]
    tm = TrainedModel.load(zoo_pairs.model_dir)
    genome = Genome(FASTA)
    for i, w0 in enumerate(got[True][1]):
        window = ("20", int(w0), int(w0) + tm.window)
        x = {"sequence": dna.one_hot(genome.fetch(*window), dtype=np.float32)[None]}
        x.update({k: v[None] for k, v in extra_inputs(tm, window, InputOptions(context="cpg"), genome.sizes).items()})
        p = float(tm.predict(x)["accessible"][0, 0])
        np.testing.assert_allclose(got[False][0][i], p * (1 - p) * got[True][0][i], rtol=1e-3, atol=1e-7)
    assert np.abs(got[True][0]).max() > np.abs(got[False][0]).max()  # the sigmoid only shrinks it


def test_saliency_on_the_context_vector(zoo_pairs, tmp_path):
    """Which TFs' expression the prediction leans on: named features, a table, a plot; the gradient
    is that of the model (a central finite difference on the top feature)."""
    out = tmp_path / "expr"
    proc = run_script("saliency.py", "-q", zoo_pairs.model_dir, zoo_pairs.bed, "-f", FASTA, "-o", out,
                      "--context", "cpg", "--wrt", "expression", "--logit", "--top", 5)
    assert proc.returncode == 0, proc.stderr
    assert "20 features of 'expression'" in proc.stdout
    with h5py.File(out / "saliency.h5") as h5:
        names = [x.decode() for x in h5["feature_names"][:]]
        values, grads, gxi = h5["input"][:], h5["gradients"][:], h5["grad_x_input"][:]
        per_feature, starts = h5["feature_grad_x_input"][:], h5["start"][:]
        assert h5.attrs["input"] == "expression" and h5.attrs["input_kind"] == "vector"
    assert names == [f"TF{k}" for k in range(20)]
    tm = TrainedModel.load(zoo_pairs.model_dir)
    genome = Genome(FASTA)
    context = extra_inputs(tm, ("20", 0, tm.window), InputOptions(context="cpg"), genome.sizes)["expression"]
    np.testing.assert_allclose(values, np.repeat(context[None], 3, axis=0), rtol=1e-6)
    np.testing.assert_allclose(gxi, grads * values, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(per_feature, gxi)
    rows = (out / "features.tsv").read_text().splitlines()
    assert rows[0] == "rank\tfeature\tmean_grad_x_input\tmean_abs_grad_x_input"
    mean_abs = [float(r.split("\t")[3]) for r in rows[1:]]
    assert len(mean_abs) == 20 and mean_abs == sorted(mean_abs, reverse=True)
    assert rows[1].split("\t")[1] == names[int(np.argmax(np.abs(per_feature).mean(axis=0)))]
    assert (out / "top_features.png").exists()
    # finite difference of the logit along the top feature, region 0
    logit = tm.output_model("accessible", logits=True)
    k = int(np.argmax(np.abs(grads[0])))
    seq = dna.one_hot(genome.fetch("20", int(starts[0]), int(starts[0]) + tm.window), dtype=np.float32)[None]
    eps = 1e-2 * max(1.0, abs(float(context[k])))
    ends = []
    for sign in (1, -1):
        v = context.copy()
        v[k] += sign * eps
        ends.append(float(np.asarray(logit({"sequence": seq, "expression": v[None]}, training=False))[0, 0]))
    np.testing.assert_allclose((ends[0] - ends[1]) / (2 * eps), grads[0, k], rtol=2e-2, atol=1e-5)


def test_saliency_on_a_signal_only_model(zoo_signal, tmp_path):
    """No sequence: the signal input (TSS and CpG-island tracks at 100 bp) is attributed to, per track."""
    tss = [line.split("\t")[:4] for line in (DATA / "tss_pm500.bed").read_text().splitlines()
           if line.startswith("20\t") and 1_000_000 < int(line.split("\t")[1]) < 2_000_000][:5:2]
    bed = tmp_path / "tss.bed"
    bed.write_text("".join("\t".join(f) + "\n" for f in tss))  # windows with marks in them
    out = tmp_path / "sig"
    proc = run_script("saliency.py", "-q", zoo_signal.model_dir, bed, "-f", FASTA, "-o", out, "--top", 2)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out / "saliency.h5") as h5:
        names = [x.decode() for x in h5["feature_names"][:]]
        values, gxi, per_feature = h5["input"][:], h5["grad_x_input"][:], h5["feature_grad_x_input"][:]
        assert h5.attrs["input"] == "marks" and h5.attrs["output"] == "ctcf"
    assert names == ["tss", "cpg"]
    assert gxi.shape == (3, 20, 2) and values[:, :, 0].max(axis=1).min() > 0  # a TSS in every window
    assert np.abs(gxi).max() > 0
    np.testing.assert_allclose(per_feature, gxi.sum(axis=1), rtol=1e-5, atol=1e-7)
    tm = TrainedModel.load(zoo_signal.model_dir)  # the input is the tracks as the dataset read them
    window = (tss[0][0], int((int(tss[0][1]) + int(tss[0][2])) // 2 - tm.window // 2))
    want = extra_inputs(tm, (window[0], window[1], window[1] + tm.window), None, Genome(FASTA).sizes)["marks"]
    np.testing.assert_allclose(values[0], want, rtol=1e-6)
    assert (out / "top_features.png").exists() and len((out / "features.tsv").read_text().splitlines()) == 3


def test_saliency_where_it_does_not_apply(zoo_profile, zoo_pairs, tiny_model, tmp_path):
    out = tmp_path / "x"
    proc = run_script("saliency.py", tiny_model, zoo_pairs.bed, "-f", FASTA, "-o", out, "--logit")
    assert_clean_failure(proc, "--logit", "softplus")
    proc = run_script("saliency.py", zoo_profile.model_dir, zoo_profile.bed, "-f", FASTA, "-o", out,
                      "--output", "profile", "--target", "ctcf")  # --center_len 200 covers all 100 positions
    assert_clean_failure(proc, "softmax over its 100 positions", "--logit")
    proc = run_script("saliency.py", zoo_pairs.model_dir, zoo_pairs.bed, "-f", FASTA, "-o", out, "--context", "cpg",
                      "--wrt", "nope")
    assert_clean_failure(proc, "--wrt", "nope", "expression")
    assert not out.exists()
    # with --logit the profile's logits over those positions are explained
    run_script("saliency.py", "-q", zoo_profile.model_dir, zoo_profile.bed, "-f", FASTA, "-o", out,
               "--output", "profile", "--target", "ctcf", "--logit", check=True)
    with h5py.File(out / "saliency.h5") as h5:
        assert h5.attrs["logit"] and np.abs(h5["grad_x_input"][:]).max() > 0
