"""Seqlets (bpAI-TAC rule), TF-MoDISco and TOMTOM names on a GENERATED attribution set.

The set: 300 random 200-bp sequences with sampled instances of two JASPAR 2024 matrices
(CTCF MA0139.2, Spi1 MA0080.7) planted at known positions and strands. No model: the
attributions are one_hot x (1 at planted bases + noise) and the hypothetical contributions
the planted matrix's log-odds at planted positions + noise, so the truth is known.
"""

import h5py
import numpy as np
import pandas as pd
import pytest

from basenji_tk.errors import InputError
from basenji_tk.interpret.seqlets import find_seqlets, interval_recovery
from conftest import assert_clean_failure, run_script

PLANTED = {"MA0139.2": "CTCF", "MA0080.7": "Spi1"}
N, L = 300, 200


def _write(path, one_hot, attributions=None, hypothetical=None, method="generated: planted CTCF + Spi1"):
    with h5py.File(path, "w") as h5:
        if one_hot is not None:
            h5["one_hot"] = one_hot
        if attributions is not None:
            h5["attributions"] = attributions
        if hypothetical is not None:
            h5["hypothetical"] = hypothetical
        n = 0 if one_hot is None else len(one_hot)
        h5["chrom"] = np.array([b"synthetic"] * n)
        h5["start"] = np.arange(n, dtype=np.int64) * 1000
        h5["end"] = h5["start"][:] + (0 if one_hot is None else one_hot.shape[1])
        h5["name"] = np.array([f"seq{i}".encode() for i in range(n)])
        h5.attrs.update(method=method, targets="planted", window=L)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    from basenji_tk.io.meme import jaspar_motifs

    motifs = jaspar_motifs(names=list(PLANTED))
    assert sorted(m.name for m in motifs) == sorted(PLANTED)
    rng = np.random.default_rng(17)
    seq = rng.integers(0, 4, (N, L))
    bump = np.zeros((N, L))
    hyp = rng.normal(0, 0.05, (N, L, 4))
    truth = []
    for i in range(N):
        taken = np.zeros(L, bool)
        for m in motifs:
            if rng.random() > 0.6:
                continue
            w = m.width
            for _ in range(100):
                s = int(rng.integers(0, L - w))
                if not taken[max(0, s - 3):s + w + 3].any():
                    break
            else:
                continue
            strand = "+" if rng.random() < 0.5 else "-"
            pwm = m.pwm if strand == "+" else m.pwm[::-1, ::-1]
            seq[i, s:s + w] = [rng.choice(4, p=row) for row in pwm]
            bump[i, s:s + w] = 1.0
            hyp[i, s:s + w] += 0.5 * np.log2((pwm + 0.01) / 0.25)
            taken[s:s + w] = True
            truth.append((i, s, s + w, m.name, strand))
    one_hot = np.eye(4, dtype=np.uint8)[seq]
    contrib = one_hot * (bump + rng.normal(0, 0.2, (N, L)))[:, :, None]
    path = _write(tmp_path_factory.mktemp("planted") / "attributions.h5", one_hot,
                  contrib.astype(np.float32), hyp.astype(np.float32))
    return {"path": path, "one_hot": one_hot, "attributions": contrib, "truth": truth}


def test_seqlet_rule_on_a_handmade_track():
    a = np.zeros((2, 30))
    a[0, 2:6] = 5  # four significant bases: a seqlet
    a[0, [10, 12, 13, 15]] = 5  # single-base gaps: one seqlet over 10..15
    a[0, [20, 21, 24, 25]] = 5  # a two-base gap splits it into two runs of two
    a[0, 28:30] = 5  # runs on at the end of sequence 0 ...
    a[1, 0:2] = 5  # ... and the start of sequence 1: not joined
    a[1, [8, 9, 11, 12]] = 5
    a[1, 10] = -5  # a significant base of the other sign breaks the run
    a[1, 15:19] = -5  # a negative seqlet
    a[1, 22:25] = 0.9  # under the threshold
    found = find_seqlets(a, threshold=1.0)
    got = found.table[["sequence", "start", "end", "n_significant", "attribution", "sign"]]
    assert got.values.tolist() == [[0, 2, 6, 4, 20.0, "+"], [0, 10, 16, 4, 20.0, "+"], [1, 15, 19, 4, -20.0, "-"]]
    assert (found.table["strand"] == ".").all()


def test_threshold_is_1_96_sd_of_all_bases(planted):
    found = find_seqlets(planted["attributions"], one_hot=planted["one_hot"])
    per_base = planted["attributions"].sum(axis=2)
    assert found.threshold == pytest.approx(1.96 * per_base.std())
    for (i, s, e), oh, c in zip(found.table[["sequence", "start", "end"]].values, found.one_hot, found.contributions):
        assert np.array_equal(oh, planted["one_hot"][i, s:e]) and np.allclose(c, planted["attributions"][i, s:e])
        assert (np.abs(per_base[i, [s, e - 1]]) > found.threshold).all()  # runs end on significant bases


def test_seqlets_recover_the_planted_intervals(planted):
    found = find_seqlets(planted["attributions"])
    truth = [(i, s, e) for i, s, e, _, _ in planted["truth"]]
    precision, recall = interval_recovery(found.table[["sequence", "start", "end"]].values, truth)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    assert (found.table["sign"] == "+").mean() >= 0.9


@pytest.fixture(scope="module")
def discovered(planted, tmp_path_factory):
    out = tmp_path_factory.mktemp("motifs") / "out"
    proc = run_script("motifs.py", planted["path"], "-o", out, "--n_leiden_runs", 2, check=True)
    return out, proc


def test_modisco_names_both_planted_motifs(discovered):
    out, proc = discovered
    matches = pd.read_csv(out / "matches.tsv", sep="\t", comment="#")
    best = {}
    for row in matches.itertuples():  # the largest pattern of each matched TF
        if row.significant and row.match not in best:
            best[row.match] = row
    assert set(PLANTED) <= set(best), matches
    for mid, tf in PLANTED.items():
        assert best[mid].tf == tf and best[mid].q_value < 0.05 and best[mid].n_seqlets >= 20
    lines = [x for x in proc.stdout.splitlines() if x.startswith(("pos_patterns", "neg_patterns"))]
    assert len(lines) == len(matches) and any("MA0139.2 CTCF" in x for x in lines)


def test_outputs_are_written(discovered, planted):
    from basenji_tk.io.meme import read_meme

    out, _ = discovered
    motifs = read_meme(out / "motifs.meme")
    matches = pd.read_csv(out / "matches.tsv", sep="\t", comment="#")
    assert [m.name for m in motifs] == matches["pattern"].tolist()
    assert [m.consensus for m in motifs] == matches["consensus"].tolist()
    with h5py.File(out / "modisco.h5") as h5:
        assert "pos_patterns" in h5
    assert (out / "report" / "motifs.html").stat().st_size > 0
    assert list((out / "report" / "trimmed_logos").glob("*.png"))
    assert (out / "motifs.png").stat().st_size > 0
    seqlets = pd.read_csv(out / "seqlets.tsv", sep="\t", comment="#")
    assert len(seqlets) == len(find_seqlets(planted["attributions"]).table)
    assert (seqlets["genome_start"] == seqlets["sequence"] * 1000 + seqlets["start"]).all()
    with open(out / "matches.tsv") as f:
        assert "generated" in f.readline()


def test_window_and_seqlets_only(planted, tmp_path):
    out = tmp_path / "out"
    proc = run_script("motifs.py", planted["path"], "-o", out, "--seqlets_only", "--window", 100, check=True)
    assert sorted(p.name for p in out.iterdir()) == ["seqlets.tsv"]
    seqlets = pd.read_csv(out / "seqlets.tsv", sep="\t", comment="#")
    assert seqlets["start"].min() >= 50 and seqlets["end"].max() <= 150
    assert f"{len(seqlets)} seqlets in {N} sequences" in proc.stdout


def test_bad_inputs(planted, tmp_path):
    one_hot = planted["one_hot"][:5]
    attr = planted["attributions"][:5].astype(np.float32)
    cases = {
        "empty.h5": (None, None, None, "no 'one_hot'"),
        "none.h5": (one_hot[:0], attr[:0], attr[:0], "no sequences"),
        "nohyp.h5": (one_hot, attr, None, "no 'hypothetical'"),
        "shapes.h5": (one_hot, attr, attr[:, :100], "shape"),
    }
    for name, (oh, a, h, words) in cases.items():
        path = _write(tmp_path / name, oh, a, h)
        assert_clean_failure(run_script("motifs.py", path, "-o", tmp_path / "o"), str(path), words)
    for name, content in (("zero.h5", ""), ("text.h5", "not hdf5\n")):
        text = tmp_path / name
        text.write_text(content)
        assert_clean_failure(run_script("motifs.py", text, "-o", tmp_path / "o"), str(text), "HDF5")
    path = _write(tmp_path / "ok.h5", one_hot, attr, attr)
    assert_clean_failure(run_script("motifs.py", path, "-o", tmp_path / "o", "--window", 500), "--window")
    assert not (tmp_path / "o").exists()


def test_read_attributions_checks_values(planted, tmp_path):
    from basenji_tk.interpret.modisco import read_attributions

    attr = planted["attributions"][:3].astype(np.float32)
    attr[0, 0, 0] = np.nan
    path = _write(tmp_path / "nan.h5", planted["one_hot"][:3], attr, attr)
    with pytest.raises(InputError, match="NaN"):
        read_attributions(path)


def test_help():
    proc = run_script("motifs.py", "--help", check=True)
    for words in ("seqlets.tsv", "1.96", "TF-MoDISco", "TOMTOM", "--n_leiden_runs", "--db", "JASPAR 2024"):
        assert words in proc.stdout, words


def test_modisco_minimums_scale_with_few_sequences():
    from basenji_tk.interpret.modisco import MODISCO_DEFAULTS, modisco_params

    assert modisco_params(5000) == MODISCO_DEFAULTS
    few = modisco_params(300)
    assert (few["min_metacluster_size"], few["final_min_cluster_size"]) == (30, 10)
    assert (modisco_params(93)["min_metacluster_size"], modisco_params(93)["final_min_cluster_size"]) == (20, 10)
    given = modisco_params(93, min_metacluster_size=150, final_min_cluster_size=None, n_leiden_runs=3)
    assert (given["min_metacluster_size"], given["final_min_cluster_size"], given["n_leiden_runs"]) == (150, 10, 3)
    with pytest.raises(InputError, match="n_leiden_runs"):
        modisco_params(93, n_leiden_runs=0)


def test_a_nearly_flat_pattern_is_not_named():
    """TOMTOM gives a flat pattern a small q against the flat stretches of long matrices; it stays unnamed."""
    from basenji_tk.interpret.modisco import match_patterns
    from basenji_tk.io.meme import jaspar_motifs

    db = jaspar_motifs()
    ctcf = next(m for m in db if m.name.startswith("MA0139"))
    flat = np.full((12, 4), 0.25) + np.random.default_rng(0).normal(0, 0.02, (12, 4))
    flat = np.abs(flat) / np.abs(flat).sum(axis=1, keepdims=True)
    table, _, _ = match_patterns([{"name": "core", "ppm": ctcf.pwm, "n_seqlets": 50},
                                  {"name": "flat", "ppm": flat, "n_seqlets": 30}], db)
    core, weak = table.set_index("pattern").loc["core"], table.set_index("pattern").loc["flat"]
    assert core.significant and core.tf.upper() == "CTCF" and not core.flat
    assert weak.flat and not weak.significant
