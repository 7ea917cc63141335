"""sed.py on every kind of model of the zoo (tests/zoo.py), against a brute-force computation.

Variants: the real 1000 Genomes records of data/variants_1kg.vcf.gz in the densest 400-bp
stretch of the VCF's first 20,000 records, plus a CONSTRUCTED 2-bp deletion and 2-bp insertion
among them. Genes: one CONSTRUCTED TSS, "CLUSTER", in the middle of that stretch, so every
variant lies inside the gene's window of every zoo model (the 400-bp ones included).

Brute force: each variant's reference and alternative windows are cut from the FASTA here,
predicted with the Keras model file itself (its context vector read from the pairs dataset's
contexts.npy) and the statistics computed from their definitions.
"""

import gzip
import json

import h5py
import numpy as np
import pytest
from conftest import DATA, FASTA, assert_clean_failure, run_script

from basenji_tk.analysis.variants import score_variants
from basenji_tk.data import dna
from basenji_tk.io.genome import Genome

VCF = DATA / "variants_1kg.vcf.gz"
EPS = 1e-6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(vcf, genes, tss)``: the densest 400 bp of real variants, two CONSTRUCTED indels, a CONSTRUCTED TSS."""
    genome = Genome(FASTA)
    with gzip.open(VCF, "rt") as fh:
        lines = fh.read().splitlines()
    header = [x for x in lines if x.startswith("#")]
    body = [x for x in lines if not x.startswith("#")][:20_000]
    pos = np.array([int(x.split("\t")[1]) for x in body])
    ends = np.searchsorted(pos, pos + 380)
    i = int(np.argmax(ends - np.arange(len(pos))))
    chosen = body[i:ends[i]]
    lo, hi = pos[i], pos[ends[i] - 1]
    tss = (lo + hi) // 2 - 1  # 0-based
    chrom = chosen[0].split("\t")[0]
    taken = set(pos[i:ends[i]].tolist())
    free = [p for p in range(lo + 5, hi - 5) if not taken & set(range(p - 2, p + 4))]
    d, n = free[0], free[-1]  # 1-based positions between the real variants
    ref_d = genome.fetch(chrom, d - 1, d + 2)
    ref_n = genome.fetch(chrom, n - 1, n)
    constructed = [f"{chrom}\t{d}\tdel2\t{ref_d}\t{ref_d[0]}\t.\tPASS\t.",  # CONSTRUCTED: a 2-bp deletion
                   f"{chrom}\t{n}\tins2\t{ref_n}\t{ref_n}GC\t.\tPASS\t."]  # CONSTRUCTED: a 2-bp insertion
    work = tmp_path_factory.mktemp("sed_models")
    vcf = work / "cluster.vcf"
    vcf.write_text("\n".join(header + sorted(chosen + constructed, key=lambda x: int(x.split("\t")[1]))) + "\n")
    genes = work / "cluster_tss.bed"
    genes.write_text(f"{chrom}\t{tss}\t{tss + 1}\tCLUSTER\t0\t+\n")  # CONSTRUCTED gene
    assert len(chosen) >= 4 and hi - lo < 400
    return vcf, genes, tss


def keras_file(model_dir):
    card = model_dir / "model_card.json"
    return model_dir / (json.loads(card.read_text())["model_file"] if card.exists() else "model_best.keras")


def raw_predict(model, seqs, extra=None):
    """``{output: (B, ...)}`` of the Keras model itself for one-hot ``seqs`` (and vectors ``extra``)."""
    x = np.stack([dna.one_hot(s, dtype=np.float32) for s in seqs])
    if isinstance(model.input, dict):
        names = [n for n in model.input if n != "sequence"]
        x = {"sequence": x, **{n: np.repeat(extra[n][None], len(seqs), axis=0) for n in names}}
    out = model.predict_on_batch(x)
    out = out if isinstance(out, dict) else {"target": out}
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def rows_of(path):
    """sed.h5 as ``{(pos, ref, alt): {stat: (targets,)}}`` plus the file."""
    h5 = h5py.File(path, "r")
    keys = list(zip(h5["pos"][:].tolist(), [x.decode() for x in h5["ref"][:]], [x.decode() for x in h5["alt"][:]]))
    return h5, keys


def records(vcf):
    out = []
    for line in open(vcf):
        if not line.startswith("#"):
            c = line.split("\t")
            out.append((c[0], int(c[1]), c[3], c[4], c[2]))
    return out


def windows_for(genome, chrom, start, length, pos1, ref, alt):
    """Reference and alternative window bases (the alternative keeps the window's left end)."""
    seq = genome.fetch(chrom, start, start + length + 40)
    o = pos1 - 1 - start
    assert seq[o:o + len(ref)] == ref
    return seq[:length], (seq[:o] + alt + seq[o + len(ref):])[:length]


def jsd(r, a):
    """Jensen-Shannon divergence (base 2) over positions, per target: ``(L, T)`` x2 -> ``(T,)``."""
    p, q = r / r.sum(0), a / a.sum(0)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = lambda x: np.where(x > 0, x * np.log2(x / m), 0).sum(0)  # noqa: E731
    return (kl(p) + kl(q)) / 2


def log2p(x):
    return np.log2(np.maximum(x, 0) + 1)


def expected(kind, r, a, tss_bin=None):
    """The statistics of one output from their definitions (effects.py's docstring)."""
    if kind == "binned":
        rt, at = r[tss_bin], a[tss_bin]
        return {"SED": at - rt, "logSED": log2p(at) - log2p(rt), "SAD": (a - r).sum(0),
                "maxlog2": np.abs(log2p(a) - log2p(r)).max(0)}
    if kind == "profile":
        return {"profile_jsd": jsd(r, a)}
    if kind == "total":
        return {"total_diff": a - r, "log_total_ratio": log2p(a) - log2p(r)}
    out = {"diff": a - r, "log_ratio": np.log2((np.maximum(a, 0) + EPS) / (np.maximum(r, 0) + EPS))}
    if kind == "probability":
        pr, pa = np.clip(r, EPS, 1 - EPS), np.clip(a, EPS, 1 - EPS)
        out["logit_diff"] = np.log(pa / (1 - pa)) - np.log(pr / (1 - pr))
    return out


def check(h5_path, model, kind, output, cluster, resolution=None, extra=None, with_gene=False):
    """Every row of ``h5_path`` against the brute force; returns the largest |statistic| seen."""
    vcf, _, tss = cluster
    genome = Genome(FASTA)
    seq = model.input["sequence"] if isinstance(model.input, dict) else model.inputs[0]
    length = int(seq.shape[1])
    h5, keys = rows_of(h5_path)
    want_rows = {(p, r, a) for _, p, r, a, _ in records(vcf)}
    assert sorted(keys) == sorted(want_rows), "one row per variant"
    ids = [x.decode() for x in h5["target_ids"][:]]
    largest = 0.0
    for row, (pos1, ref, alt) in enumerate(keys):
        chrom = h5["chrom"][row].decode()
        start = (tss - length // 2) if kind == "binned" else pos1 - 1 - length // 2
        r_seq, a_seq = windows_for(genome, chrom, start, length, pos1, ref, alt)
        pred = raw_predict(model, [r_seq, a_seq], extra)[output]
        tss_bin = None
        if kind == "binned":
            offset = (length - pred.shape[1] * resolution) // 2
            tss_bin = (tss - start - offset) // resolution
        want = expected(kind, pred[0], pred[1], tss_bin)
        for stat, value in want.items():
            got = h5[stat][row].astype(np.float64)
            assert got.shape == (len(ids),)
            np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-5, err_msg=f"{kind} {stat} {pos1} {ref}>{alt}")
            # and relative to their size, for statistics that are small (a JSD of 1e-4 must not pass as 0)
            np.testing.assert_allclose(got, value, rtol=1e-3, atol=1e-7, err_msg=f"{kind} {stat} {pos1} {ref}>{alt}")
            largest = max(largest, float(np.abs(value).max()))
        if with_gene:
            assert h5["gene"][row].decode() == "CLUSTER" and int(h5["tss_dist"][row]) == pos1 - 1 - tss
    assert "gene" in h5 if with_gene else "gene" not in h5
    h5.close()
    return largest


@pytest.mark.parametrize("kind,resolution", [("binned", 128), ("imported_keras", 1), ("imported_h5", 128)])
def test_binned_models_score_at_the_gene_tss(kind, resolution, request, cluster, tmp_path):
    from basenji_tk.model.models import load_model

    zoo = request.getfixturevalue(f"zoo_{kind}")
    vcf, genes, _ = cluster
    counts = score_variants(zoo.model_dir, vcf, genes, tmp_path / "out", fasta=FASTA, float32=True, batch_size=3)
    assert counts["pairs"] == len(records(vcf)) and counts["genes_scored"] == 1
    model = load_model(keras_file(zoo.model_dir))
    assert check(tmp_path / "out" / "sed.h5", model, "binned", "target", cluster, resolution, with_gene=True) > 1e-4
    with h5py.File(tmp_path / "out" / "sed.h5") as h5:
        assert [k for k in ("SED", "logSED", "SAD", "maxlog2") if k in h5] == ["SED", "logSED", "SAD", "maxlog2"]
        assert "output" not in h5.attrs  # a one-output binned model's sed.h5 is laid out as before


def test_profile_model_scores_jsd_and_totals_in_windows_centred_on_each_variant(zoo_profile, cluster, tmp_path):
    from basenji_tk.model.models import load_model

    vcf, genes, tss = cluster
    counts = score_variants(zoo_profile.model_dir, vcf, None, tmp_path / "all", fasta=FASTA, float32=True,
                            batch_size=4)
    n = len(records(vcf))
    assert counts["pairs"] == n  # one row per variant in each output's files
    out = tmp_path / "all"
    assert sorted(p.name for p in out.iterdir()) == ["sed_profile.h5", "sed_profile.tsv", "sed_total.h5",
                                                     "sed_total.tsv"]
    model = load_model(keras_file(zoo_profile.model_dir))
    assert check(out / "sed_profile.h5", model, "profile", "profile", cluster) > 1e-6
    assert check(out / "sed_total.h5", model, "total", "total", cluster) > 1e-4
    with h5py.File(out / "sed_profile.h5") as h5:
        assert h5.attrs["output"] == "profile" and h5.attrs["output_kind"] == "profile"
        assert [x.decode() for x in h5["target_ids"][:]] == ["tss", "cpg", "ctcf"]
    header = (out / "sed_total.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["snp", "chrom", "pos", "ref", "alt", "flipped", "target_index", "target_id", "total_diff",
                      "log_total_ratio"]
    assert len((out / "sed_total.tsv").read_text().splitlines()) == 1 + n * 3
    # --output picks one output: sed.h5; with genes, a row per variant-gene pair
    score_variants(zoo_profile.model_dir, vcf, genes, tmp_path / "one", fasta=FASTA, float32=True, output="total",
                   targets="ctcf")
    assert sorted(p.name for p in (tmp_path / "one").iterdir()) == ["sed.h5", "sed.tsv"]
    with h5py.File(tmp_path / "one" / "sed.h5") as h5, h5py.File(out / "sed_total.h5") as every:
        assert [x.decode() for x in h5["gene"][:]] == ["CLUSTER"] * n
        np.testing.assert_allclose(h5["total_diff"][:, 0], every["total_diff"][:, 2], rtol=1e-5, atol=1e-6)
        assert list(h5["tss_dist"][:]) == [p - 1 - tss for p in h5["pos"][:]]


def test_table_model_scores_the_value_difference_and_log_ratio(zoo_table, cluster, tmp_path):
    from basenji_tk.model.models import load_model

    vcf, _, _ = cluster
    counts = score_variants(zoo_table.model_dir, vcf, None, tmp_path / "out", fasta=FASTA, float32=True)
    assert counts["pairs"] == len(records(vcf))
    model = load_model(keras_file(zoo_table.model_dir))
    assert check(tmp_path / "out" / "sed.h5", model, "value", "activity", cluster) > 1e-4


def test_pairs_model_through_the_script_with_a_context(zoo_pairs, cluster, tmp_path):
    from basenji_tk.model.models import load_model

    vcf, genes, _ = cluster
    out = tmp_path / "out"
    proc = run_script("sed.py", "-q", zoo_pairs.model_dir, vcf, "-o", out, "--float32", "-f", FASTA,
                      *zoo_pairs.options)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((zoo_pairs.data_dir / "statistics.json").read_text())
    context = np.load(zoo_pairs.data_dir / stats["pairs"]["context_table"])[stats["pairs"]["contexts"].index("cpg")]
    model = load_model(keras_file(zoo_pairs.model_dir))
    assert check(out / "sed.h5", model, "probability", "accessible", cluster, extra={"expression": context}) > 1e-5
    with h5py.File(out / "sed.h5") as h5:
        assert json.loads(h5.attrs["extra_inputs"])["context"] == "cpg"
    # another context gives other numbers; none is one error line
    other = run_script("sed.py", "-q", zoo_pairs.model_dir, vcf, "-o", tmp_path / "tss", "--float32", "-f", FASTA,
                       "--context", "tss", check=True)
    assert other.returncode == 0
    with h5py.File(out / "sed.h5") as a, h5py.File(tmp_path / "tss" / "sed.h5") as b:
        assert not np.array_equal(a["logit_diff"][:], b["logit_diff"][:])
    proc = run_script("sed.py", zoo_pairs.model_dir, vcf, "-o", tmp_path / "none", "-f", FASTA)
    assert_clean_failure(proc, "model input 'expression' needs --context")
    assert not (tmp_path / "none").exists()


def test_signal_only_model_is_one_error_line(zoo_signal, cluster, tmp_path):
    vcf, genes, _ = cluster
    proc = run_script("sed.py", zoo_signal.model_dir, vcf, genes, "-o", tmp_path / "out", "-f", FASTA)
    assert_clean_failure(proc, "sed.py needs a model with a sequence input", "takes only 'marks' (signal)")
    assert not (tmp_path / "out").exists()


def test_binned_output_without_genes_and_unknown_output_are_errors(zoo_binned, zoo_profile, cluster, tmp_path):
    from basenji_tk.errors import InputError

    vcf, _, _ = cluster
    with pytest.raises(InputError, match="GENES not given: output 'target' .* is binned"):
        score_variants(zoo_binned.model_dir, vcf, None, tmp_path / "a", fasta=FASTA)
    with pytest.raises(InputError, match="--output: 'nope' is not an output .*profile, total"):
        score_variants(zoo_profile.model_dir, vcf, None, tmp_path / "b", fasta=FASTA, output="nope")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_restart_of_a_two_output_run_gives_the_same_files(zoo_profile, cluster, tmp_path, monkeypatch):
    """Both outputs' writers resume where the interrupted run stopped, even when it stopped between them."""
    from basenji_tk.analysis import effects, sedwriter
    from basenji_tk.errors import InputError

    vcf, genes, _ = cluster
    model = zoo_profile.model_dir
    run = dict(fasta=FASTA, batch_size=2)  # a window's two sequences are one batch, in either run
    score_variants(model, vcf, None, tmp_path / "full", **run)
    add = sedwriter.SedWriter.add
    calls = []

    def crash_in_the_fifth_window(self, key, meta, stats):
        calls.append(key)
        if len(calls) == 10:  # window 5's first writer (profile) has its rows, its second (total) not
            raise KeyboardInterrupt
        add(self, key, meta, stats)

    monkeypatch.setattr(sedwriter.SedWriter, "add", crash_in_the_fifth_window)
    with pytest.raises(KeyboardInterrupt):
        score_variants(model, vcf, None, tmp_path / "cut", **run)
    monkeypatch.setattr(sedwriter.SedWriter, "add", add)
    names = sorted(p.name for p in (tmp_path / "cut").iterdir() if not p.name.startswith("."))
    assert names == ["sed_profile.h5.partial", "sed_profile.tsv.partial", "sed_total.h5.partial",
                     "sed_total.tsv.partial"]
    cut = tmp_path / "cut"
    with h5py.File(cut / "sed_profile.h5.partial") as a, h5py.File(cut / "sed_total.h5.partial") as b:
        assert (int(a.attrs["windows"]), int(b.attrs["windows"])) == (5, 4)
    with pytest.raises(InputError, match="interrupted run.*--restart.*--force"):
        score_variants(model, vcf, None, tmp_path / "cut", **run)
    with pytest.raises(InputError, match="different output_kind|different targets"):  # settings must match
        score_variants(model, vcf, None, tmp_path / "cut", **run, restart=True, targets="ctcf")
    scored = []
    monkeypatch.setattr(effects, "profile_stats", lambda *a, f=effects.profile_stats: scored.append(1) or f(*a))
    score_variants(model, vcf, None, tmp_path / "cut", **run, restart=True)
    n = len(records(vcf))
    assert len(scored) == n - 4  # windows 1-4 were finished in both files; 5 (half written) and on are scored
    with h5py.File(tmp_path / "cut" / "sed_profile.h5") as h5:
        assert len(h5["pos"]) == n
    for name in ("sed_profile", "sed_total"):
        assert (tmp_path / "full" / f"{name}.tsv").read_text() == (tmp_path / "cut" / f"{name}.tsv").read_text()
        with h5py.File(tmp_path / "full" / f"{name}.h5") as a, h5py.File(tmp_path / "cut" / f"{name}.h5") as b:
            for key in ("pos", "alt", *(k for k in ("profile_jsd", "total_diff") if k in a)):
                np.testing.assert_array_equal(a[key][:], b[key][:], err_msg=f"{name} {key}")
            assert len(b["done"]) == n
