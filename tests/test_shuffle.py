"""Dinucleotide shuffles (exact counts, uniform over the sequences that keep them) and
GC-matched genome windows (basenji_tk.interpret.shuffle)."""

import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from basenji_tk.data import dna
from basenji_tk.errors import InputError
from basenji_tk.interpret.shuffle import dinuc_counts, dinuc_shuffle, dinuc_shuffle_str, gc_matched_windows
from basenji_tk.io.genome import Genome

DEMO_FASTA = Path(__file__).resolve().parents[1] / "data" / "hg19_chr20_20Mb.fa.gz"


def random_one_hot(length, seed):
    rng = np.random.default_rng(seed)
    return dna.one_hot("".join(rng.choice(list("ACGT"), length)))


def test_shuffles_keep_exact_dinucleotide_counts_and_ends():
    x = random_one_hot(2000, 1)
    out = dinuc_shuffle(x, 50, rng=7)
    assert out.shape == (50, 2000, 4) and out.dtype == x.dtype
    want = dinuc_counts(x)
    for s in out:
        assert (dinuc_counts(s) == want).all()
        assert (s[0] == x[0]).all() and (s[-1] == x[-1]).all()
    assert np.mean([(s != x).any(axis=1).mean() for s in out]) > 0.5  # they do move bases
    assert len({s.tobytes() for s in out}) == 50


def test_n_rows_are_a_fifth_letter():
    seq = "ACGTNNNACGGGTTANACCA" * 10
    x = dna.one_hot(seq, n_value=0.25, dtype=np.float32)
    for s in dinuc_shuffle(x, 10, rng=3):
        assert (dinuc_counts(s) == dinuc_counts(x)).all()
        assert np.isclose(s[(s == 0.25).all(axis=1)], 0.25).all()
        assert ((s == 0.25).all(axis=1)).sum() == seq.count("N")
    for t in dinuc_shuffle_str(seq, 5, rng=3):
        assert Counter(zip(t, t[1:])) == Counter(zip(seq, seq[1:]))


def test_batches_and_seeds():
    x = np.stack([random_one_hot(300, k) for k in range(3)])
    a, b = dinuc_shuffle(x, 4, rng=11), dinuc_shuffle(x, 4, rng=11)
    assert a.shape == (3, 4, 300, 4) and (a == b).all()
    assert not (a == dinuc_shuffle(x, 4, rng=12)).all()
    for i in range(3):
        assert all((dinuc_counts(s) == dinuc_counts(x[i])).all() for s in a[i])


def test_uniform_over_all_sequences_with_the_same_dinucleotides():
    """Every sequence with the input's dinucleotide counts (enumerated) is drawn, equally often."""
    seq = "ACAGTACGAC"
    want = Counter(zip(seq, seq[1:]))
    space = {"".join(p) for p in itertools.product("ACGT", repeat=len(seq))
             if Counter(zip(p, p[1:])) == want}
    draws = Counter(dinuc_shuffle_str(seq, 30_000, rng=5))
    assert set(draws) == space and len(space) > 5
    observed = np.array([draws[s] for s in sorted(space)])
    assert stats.chisquare(observed).pvalue > 1e-3


def test_bad_input():
    with pytest.raises(InputError, match="one-hot"):
        dinuc_shuffle(np.zeros((10, 5)), 2)
    with pytest.raises(InputError, match="n >= 1"):
        dinuc_shuffle(random_one_hot(10, 0), 0)


def test_gc_matched_windows_match_gc_and_avoid_excluded():
    genome = Genome(DEMO_FASTA)
    chrom = genome.chroms[0]
    targets = np.array([0.35, 0.40, 0.45, 0.50, 0.55, 0.60] * 5)
    exclude = [(chrom, 0, 10_000_000)]
    wins = gc_matched_windows(genome, 500, targets, rng=0, exclude=exclude)
    assert len(wins) == len(targets)
    gc = []
    for c, s, e in wins:
        assert e - s == 500 and s >= 10_000_000 and e <= genome.sizes[c]
        seq = genome.fetch(c, s, e).upper()
        assert seq.count("N") <= 5
        gc.append((seq.count("G") + seq.count("C")) / max(1, len(seq) - seq.count("N")))
    assert np.abs(np.sort(gc) - np.sort(targets)).max() < 0.05 + 1e-9  # 20 bins of 0.05
    again = gc_matched_windows(genome, 500, targets, rng=0, exclude=exclude)
    assert again == wins
    single = gc_matched_windows(genome, 200, 0.42, n=8, rng=1)
    assert len(single) == 8
    with pytest.raises(InputError, match="GC fractions"):
        gc_matched_windows(genome, 500, [1.5])
