"""Attributions and motifs against a known truth: the GENERATED planted-motif set (tests/planted.py).

GENERATED (planted motifs in shuffled real chr20 sequence): CTCF and Spi1 instances planted into
dinucleotide-shuffled 200-bp windows of data/'s chr20, a small model trained to say which
sequences carry which. On held-out (test split) sequences that carry a motif, the bases of its
planted instances should hold the attribution mass: per method and task, the AUROC of the
per-base score |sum over bases of the attribution| (the observed base's contribution, in absolute
value: a sampled instance has weak bases whose signed contribution can be small or negative, and
the model's negative evidence is information too) at planted bases against every other base of
those sequences is >= 0.9. TF-MoDISco + TOMTOM on DeepSHAP attributions of both tasks' summed
logits name both planted TFs with q < 0.05.
"""

import h5py
import numpy as np
import pytest

from conftest import FASTA, run_script

from basenji_tk import stats

METHODS = ("grad_x_input", "integrated_gradients", "deepshap")
MIN_AUROC = 0.9


@pytest.fixture(scope="module")
def carriers(planted_model, tmp_path_factory):
    """A BED of the test sequences that carry at least one planted motif."""
    p = planted_model.planted
    bed = tmp_path_factory.mktemp("planted_carriers") / "test_carriers_GENERATED.bed"
    names = p.names
    rows = [i for i in np.flatnonzero(p.split == "test") if p.labels[i].any()]
    bed.write_text("".join(f"{names[i]}\t0\t{p.one_hot.shape[1]}\t{names[i]}\n" for i in rows))
    return bed


def attribute(planted_model, bed, out, method, targets):
    # no --fasta: the model folder knows the generated genome its table dataset was read from
    run_script("attribute.py", "-q", "--no_plots", "--method", method, "--targets", targets, "--logit",
               "--batch_size", 64, planted_model.model_dir, bed, "-o", out, check=True)
    return out / "attributions.h5"


def planted_auroc(planted, h5_path, task: int) -> tuple[float, int]:
    """AUROC of |attribution| at ``task``'s planted bases against the other bases of the
    sequences in ``h5_path`` that carry it, and how many such sequences there were."""
    with h5py.File(h5_path, "r") as h5:
        scores = np.abs(h5["attributions"][:].sum(axis=2))
        names = [n.decode() for n in h5["name"][:]]
    index = {n: i for i, n in enumerate(planted.names)}
    rows = np.array([index[n] for n in names])
    carry = planted.labels[rows, task]
    truth = planted.mask(task)[rows]
    return float(stats.auroc(truth[carry].reshape(-1, 1), scores[carry].reshape(-1, 1))[0]), int(carry.sum())


@pytest.mark.parametrize("method", METHODS)
def test_attribution_mass_sits_on_the_planted_bases(planted_model, carriers, tmp_path, method):
    found = {}
    for k, task in enumerate(planted_model.tasks):
        h5 = attribute(planted_model, carriers, tmp_path / task, method, task)
        found[task] = planted_auroc(planted_model.planted, h5, k)
    print(f"\nGENERATED (planted motifs in shuffled real chr20 sequence): {method}, AUROC of |attribution| "
          "at planted bases per task: " + ", ".join(f"{t} {a:.3f} ({n} sequences)" for t, (a, n) in found.items()))
    for task, (auc, n) in found.items():
        assert n >= 100, (task, n)
        assert auc >= MIN_AUROC, (method, task, auc)


def test_modisco_and_tomtom_name_both_planted_motifs(planted_model, carriers, tmp_path):
    import pandas as pd

    h5 = attribute(planted_model, carriers, tmp_path / "both", "deepshap", ",".join(planted_model.tasks))
    out = tmp_path / "motifs"
    proc = run_script("motifs.py", "-q", h5, "-o", out, "--no_report", "--n_leiden_runs", 10, check=True)
    matches = pd.read_csv(out / "matches.tsv", sep="\t", comment="#")
    print("\nGENERATED (planted motifs in shuffled real chr20 sequence): TF-MoDISco patterns and best JASPAR match\n"
          + matches.to_string(index=False) + "\n" + proc.stdout)
    named = matches[matches.q_value < 0.05]
    for motif in planted_model.motifs:
        hits = named[named.tf.str.upper() == motif.alt.upper()]
        assert len(hits), (motif.alt, matches[["pattern", "tf", "q_value"]].to_string())
        assert (hits.match == motif.name).any(), (motif.name, hits.match.tolist())
    assert len(named) <= 2 * len(planted_model.motifs), matches.to_string()  # no spray of chance names


def test_the_planted_set_is_what_it_says(planted_model):
    """Labels, sites and backgrounds agree with each other and with the genome."""
    from basenji_tk.interpret.shuffle import dinuc_counts
    from basenji_tk.io.genome import Genome
    from basenji_tk.data import dna

    p = planted_model.planted
    n, length, _ = p.one_hot.shape
    print("\nGENERATED planted set: " + ", ".join(f"{k} {v:.1f} s" for k, v in planted_model.seconds.items()))
    assert np.allclose(p.labels.mean(axis=0), 1 / 3, atol=0.03)
    assert 0.08 < p.labels.all(axis=1).mean() < 0.14  # 1/9 carry both
    carried = np.zeros_like(p.labels)
    for i, k, start, end, strand in p.sites:
        assert 0 <= start < end <= length and end - start == planted_model.motifs[k].width and strand in "+-"
        carried[i, k] = True
    assert (carried == p.labels).all()
    assert {s[4] for s in p.sites} == {"+", "-"}
    for k in range(len(p.motifs)):  # instances of one sequence never overlap
        assert p.mask(k).sum() == sum(e - s for i, kk, s, e, _ in p.sites if kk == k)
    assert not (p.mask(0) & p.mask(1)).any()
    # a sequence without motifs is a dinucleotide shuffle of its genome window: same counts, other order
    genome = Genome(FASTA)
    empty = np.flatnonzero(~p.labels.any(axis=1))[:50]
    for i in empty:
        real = dna.one_hot(genome.fetch(*p.source[i]).upper())
        assert (dinuc_counts(real) == dinuc_counts(p.one_hot[i])).all()
        assert (real != p.one_hot[i]).any(axis=1).mean() > 0.3
    # planted instances are samples of the motif: the mean probability of a planted base under the
    # PWM matches its expectation, the mean over positions of sum_b p_b^2 (0.65 CTCF, 0.70 Spi1;
    # a background base would score about 1/4)
    for k, motif in enumerate(planted_model.motifs):
        probs = []
        for i, kk, s, e, strand in p.sites:
            if kk == k:
                inst = p.one_hot[i, s:e]
                inst = inst[::-1, ::-1] if strand == "-" else inst
                probs.append((inst * motif.pwm).sum(axis=1).mean())
        expected = (motif.pwm ** 2).sum(axis=1).mean()
        assert abs(np.mean(probs) - expected) < 0.02, (motif.alt, np.mean(probs), expected)
