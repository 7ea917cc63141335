"""Per-target Pearson r, R² and Spearman r of a test set too large to hold.

:class:`PerTargetAccumulator` gives the same Pearson r and R² as :func:`basenji_tk.stats.pearson_r`
and :func:`basenji_tk.stats.r_squared` on all the data: it streams batches through exact float64
moments and keeps a fixed-size uniform random sample for Spearman r and scatter plots. Shapes
and undefined values (NaN) as in :mod:`basenji_tk.stats`.
"""

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.stats import log2p1, spearman_r


class _Moments:
    """Exact streamed moments of paired columns ``(N, n)``, float64.

    Batches are merged with Chan et al.'s parallel update: each batch's means,
    centred sums of squares and co-moment are computed around the batch's own
    mean and then combined, so nothing like ``sum(x**2) - sum(x)**2 / N`` ever
    cancels catastrophically (data with mean 1e4 and unit variance is fine)."""

    def __init__(self, num_targets: int):
        zeros = lambda: np.zeros(num_targets)  # noqa: E731
        self.count = 0
        self.mean_y, self.mean_p = zeros(), zeros()
        self.m2_y, self.m2_p, self.co = zeros(), zeros(), zeros()
        self.ss_res = zeros()  # sum of (y - p)**2: non-negative terms, summed directly
        self.min_y, self.max_y = np.full(num_targets, np.inf), np.full(num_targets, -np.inf)
        self.min_p, self.max_p = self.min_y.copy(), self.max_y.copy()

    def update(self, y: np.ndarray, p: np.ndarray) -> None:
        nb = y.shape[0]
        if nb == 0:
            return
        mb_y, mb_p = y.mean(axis=0), p.mean(axis=0)
        dy, dp = y - mb_y, p - mb_p
        na, n = self.count, self.count + nb
        delta_y, delta_p = mb_y - self.mean_y, mb_p - self.mean_p
        w = na * nb / n
        self.m2_y += (dy * dy).sum(axis=0) + delta_y * delta_y * w
        self.m2_p += (dp * dp).sum(axis=0) + delta_p * delta_p * w
        self.co += (dy * dp).sum(axis=0) + delta_y * delta_p * w
        self.mean_y += delta_y * nb / n
        self.mean_p += delta_p * nb / n
        self.ss_res += ((y - p) ** 2).sum(axis=0)
        self.min_y, self.max_y = np.minimum(self.min_y, y.min(axis=0)), np.maximum(self.max_y, y.max(axis=0))
        self.min_p, self.max_p = np.minimum(self.min_p, p.min(axis=0)), np.maximum(self.max_p, p.max(axis=0))
        self.count = n

    def pearson_r(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.clip(self.co / np.sqrt(self.m2_y * self.m2_p), -1.0, 1.0)
        r[(self.min_y >= self.max_y) | (self.min_p >= self.max_p)] = np.nan
        return r

    def r_squared(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - self.ss_res / self.m2_y
        r2[self.min_y >= self.max_y] = np.nan
        return r2


class PerTargetAccumulator:
    """Per-target Pearson r, R² and Spearman r over a stream of batches.

    ``update(y, p)`` takes ``(B, T, n)`` or ``(N, n)`` arrays (any leading
    shape; rows are ``reshape(-1, n)``). Pearson r and R² are exact: float64
    moments merged batch by batch (see :class:`_Moments`), both on raw values
    and on ``log2(max(x, 0) + 1)`` (negatives clipped to 0 before the log).
    They agree with :func:`pearson_r` / :func:`r_squared` on the concatenated
    data to rounding error.

    Spearman r needs ranks, which do not stream, so it is computed on a uniform
    random sample of at most ``sample_size`` rows, also returned by
    :meth:`sample` for scatter plots. Each row gets a random key from one
    ``numpy`` generator seeded with ``seed``, drawn in row order; the sample is
    the rows with the smallest keys, returned in stream order. Because the
    generator yields the same numbers however the draws are split, the sample
    depends only on the seed and the rows, not on the batch sizes. It holds
    ``2 * sample_size * n`` float32 values: lower ``sample_size`` for
    thousands of targets.
    """

    def __init__(self, num_targets: int, sample_size: int = 200_000, seed: int = 0):
        if num_targets < 1:
            raise InputError(f"num_targets must be >= 1, got {num_targets}")
        if sample_size < 0:
            raise InputError(f"sample_size must be >= 0, got {sample_size}")
        self.num_targets, self.sample_size = int(num_targets), int(sample_size)
        self._raw, self._log = _Moments(self.num_targets), _Moments(self.num_targets)
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._rows = np.empty(0, dtype=np.int64)
        self._y = np.empty((0, self.num_targets), dtype=np.float32)
        self._p = np.empty((0, self.num_targets), dtype=np.float32)

    @property
    def count(self) -> int:
        """Rows seen so far."""
        return self._raw.count

    def update(self, y, p) -> None:
        """Add a batch: ``y`` and ``p`` of the same shape ``(..., n)``."""
        y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
        if y.shape != p.shape or y.shape[-1:] != (self.num_targets,):
            raise InputError(f"expected y and p of one shape (..., {self.num_targets}), "
                             f"got {y.shape} and {p.shape}")
        y, p = y.reshape(-1, self.num_targets), p.reshape(-1, self.num_targets)
        first = self.count
        self._raw.update(y, p)
        self._log.update(log2p1(y), log2p1(p))
        self._keep(y, p, first)

    def _keep(self, y: np.ndarray, p: np.ndarray, first: int) -> None:
        keys = self._rng.random(y.shape[0])
        if self.sample_size == 0:
            return
        if self._keys.size >= self.sample_size:  # full: only keys below the largest kept can enter
            take = np.flatnonzero(keys < self._keys.max())
            if take.size == 0:
                return
            keys, y, p = keys[take], y[take], p[take]
            rows = first + take
        else:
            rows = first + np.arange(y.shape[0])
        keys = np.concatenate([self._keys, keys])
        rows = np.concatenate([self._rows, rows])
        ys = np.concatenate([self._y, y.astype(np.float32)])
        ps = np.concatenate([self._p, p.astype(np.float32)])
        if keys.size > self.sample_size:
            keep = np.sort(np.argpartition(keys, self.sample_size - 1)[:self.sample_size])
            keys, rows, ys, ps = keys[keep], rows[keep], ys[keep], ps[keep]
        self._keys, self._rows, self._y, self._p = keys, rows, ys, ps

    def pearson_r(self, log: bool = False) -> np.ndarray:
        """``(n,)`` exact Pearson r over all rows; on ``log2(x+1)`` values if ``log``."""
        return (self._log if log else self._raw).pearson_r()

    def r_squared(self, log: bool = False) -> np.ndarray:
        """``(n,)`` exact R² over all rows; on ``log2(x+1)`` values if ``log``."""
        return (self._log if log else self._raw).r_squared()

    def spearman_r(self) -> np.ndarray:
        """``(n,)`` Spearman r on the sample (exact while ``count <= sample_size``)."""
        return spearman_r(*self.sample())

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        """The sampled rows ``(y, p)``, each ``(min(count, sample_size), n)`` float32, in stream order."""
        order = np.argsort(self._rows, kind="stable")
        return self._y[order], self._p[order]
