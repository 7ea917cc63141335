"""Peak calls in binned coverage: a Poisson test against a MACS-style background.

:func:`call_peaks` turns binned coverage into binary peak labels (p-values adjusted by
:func:`benjamini_hochberg`), so that a coverage model can also be scored as a peak classifier
with :func:`basenji_tk.stats.auroc` / :func:`basenji_tk.stats.auprc`.
"""

import numpy as np
from scipy import stats

from basenji_tk.errors import InputError


def _bh_columns(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg q-values down each column of ``(m, n)`` p-values."""
    m = p.shape[0]
    if m == 0:
        return p.copy()
    order = np.argsort(p, axis=0, kind="stable")
    ranked = np.take_along_axis(p, order, axis=0) * m / np.arange(1, m + 1)[:, None]
    ranked = np.minimum.accumulate(ranked[::-1], axis=0)[::-1]  # enforce monotone q
    q = np.empty_like(ranked)
    np.put_along_axis(q, order, np.minimum(ranked, 1.0), axis=0)
    return q


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values): ``(m,) -> (m,)``.

    ``q_(i) = min_{j >= i} p_(j) m / j`` over p-values sorted ascending, capped
    at 1; q is monotone in p."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise InputError(f"pvalues: expected a 1-D array, got shape {p.shape}")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise InputError("pvalues: expected values in [0, 1]")
    return _bh_columns(p[:, None])[:, 0]


def _window_mean(x: np.ndarray, half: int) -> np.ndarray:
    """Mean of ``x[:, t-half : t+half+1]`` along axis 1 of ``(S, T, n)``, clipped at the ends."""
    num = x.shape[1]
    csum = np.concatenate([np.zeros_like(x[:, :1]), np.cumsum(x, axis=1)], axis=1)
    lo = np.clip(np.arange(num) - half, 0, num)
    hi = np.clip(np.arange(num) + half + 1, 0, num)
    return (csum[:, hi] - csum[:, lo]) / (hi - lo)[None, :, None]


def call_peaks(counts, fdr: float = 0.01, local_window: int = 5, min_lambda: float | None = None) -> np.ndarray:
    """Call enriched bins: ``(S, T, n)`` coverage -> ``(S, T, n)`` bool.

    ``counts`` holds binned coverage for S sequences of T bins and n targets;
    values are rounded to non-negative integers for a Poisson test. For each
    target, in the manner of MACS:

    * ``lambda_global`` is the mean count over all bins of all sequences;
    * ``lambda_local`` is the mean count of the ``2 * local_window + 1`` bins
      centred on the bin, within its sequence (fewer at the ends);
      ``local_window=0`` turns it off (a window of the bin alone would make
      every bin its own background);
    * ``lambda = max(lambda_global, lambda_local, min_lambda, 1e-6)``;
    * ``p = P(X >= x | lambda)`` for ``X ~ Poisson(lambda)``;
    * p-values are Benjamini–Hochberg adjusted across all the target's bins,
      and a bin is a peak where ``q <= fdr`` and ``x > 0``.

    The local window includes the bin itself (MACS's local windows also span
    the candidate). A lone strong bin therefore raises its own background only
    by ``x / (2 * local_window + 1)`` and stays detectable, while a bin sitting
    on a locally raised background is judged against that background. The
    global mean is the floor, so quiet regions do not turn small counts into
    peaks. A broad domain much wider than the window raises its own local
    background and may be called only at its edges, or not at all.
    """
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim != 3:
        raise InputError(f"counts: expected shape (S, T, n), got {x.shape}")
    if local_window < 0:
        raise InputError(f"local_window must be >= 0, got {local_window}")
    if not 0 <= fdr <= 1:
        raise InputError(f"fdr must be in [0, 1], got {fdr}")
    x = np.maximum(np.rint(x), 0.0)
    if x.size == 0:
        return np.zeros(x.shape, dtype=bool)
    lam = np.broadcast_to(x.mean(axis=(0, 1)), x.shape)
    if local_window > 0:
        lam = np.maximum(lam, _window_mean(x, int(local_window)))
    lam = np.maximum(lam, max(1e-6, min_lambda or 0.0))
    pvalues = stats.poisson.sf(x - 1, lam)
    q = _bh_columns(pvalues.reshape(-1, x.shape[2])).reshape(x.shape)
    return (q <= fdr) & (x > 0)
