"""Peak calls and Benjamini-Hochberg against statsmodels, on random (GENERATED) counts."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from basenji_tk.errors import InputError
from basenji_tk.model import peaks as bp

SEEDS = (0, 1, 2, 3)


@pytest.mark.parametrize("seed", SEEDS)
def test_benjamini_hochberg_matches_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.random(300), rng.random(50) ** 6, [0.0, 1.0, 0.5, 0.5]])  # ties and ends
    q = bp.benjamini_hochberg(p)
    np.testing.assert_allclose(q, multipletests(p, method="fdr_bh")[1], rtol=1e-12, atol=0)
    order = np.argsort(p)
    assert np.all(np.diff(q[order]) >= 0) and q.max() <= 1.0
    assert bp.benjamini_hochberg([]).shape == (0,)


def test_call_peaks_finds_planted_bins():
    """GENERATED: Poisson(3) background, 12 planted bins of 30-40 in each of 2 targets."""
    rng = np.random.default_rng(42)
    counts = rng.poisson(3.0, size=(20, 128, 2)).astype(np.float32)
    truth = np.zeros(counts.shape, dtype=bool)
    for k in range(2):
        flat = rng.choice(20 * 128, 12, replace=False)
        s, t = np.unravel_index(flat, (20, 128))
        truth[s, t, k] = True
        counts[s, t, k] = rng.integers(30, 41, 12) + rng.random(12) * 0.4  # non-integers: rounded
    peaks = bp.call_peaks(counts, fdr=0.01)
    assert peaks.shape == counts.shape and peaks.dtype == bool
    assert peaks[truth].all()
    assert (peaks & ~truth).sum() <= 2


def test_call_peaks_background_rarely_fires():
    """GENERATED: pure Poisson background with uneven target depths."""
    rng = np.random.default_rng(0)
    counts = rng.poisson([0.5, 4.0, 20.0], size=(50, 200, 3))
    peaks = bp.call_peaks(counts, fdr=0.05)
    assert peaks.mean() < 0.001
    assert not bp.call_peaks(np.zeros((2, 10, 1))).any()


def test_call_peaks_local_background_and_min_lambda():
    counts = np.full((1, 600, 1), 2.0)
    counts[0, 200:220] = 20.0  # a raised domain ...
    counts[0, 210] = 45.0  # ... with a strong bin inside it
    counts[0, 5] = 15.0  # a moderate bin on a quiet background
    peaks = bp.call_peaks(counts, fdr=0.01, local_window=5)[0, :, 0]
    assert np.flatnonzero(peaks).tolist() == [5, 210]  # the domain's interior meets its local level
    assert np.flatnonzero(bp.call_peaks(counts, min_lambda=8.0)[0, :, 0]).tolist() == [210]
    global_only = bp.call_peaks(counts, local_window=0)[0, :, 0]
    assert np.flatnonzero(global_only).tolist() == [5] + list(range(200, 220))
    with pytest.raises(InputError):
        bp.call_peaks(np.zeros((10, 2)))
