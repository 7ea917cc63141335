"""Label (and signal-input) transforms: pure functions from arrays to arrays.

Axis 0 is always positions (bins); any further axes (targets, strands) are carried along.
The feature plan (:mod:`basenji_tk.data.features`) applies them in this order:
bin -> smooth -> crop -> total -> binarize -> log -> quantile normalise (the last over all records).
"""

import numpy as np
from scipy import ndimage


def crop_center(x: np.ndarray, crop_bp: int, resolution: int = 1) -> np.ndarray:
    """The central ``crop_bp`` bp of ``x`` ``(positions, ...)`` -> ``(crop_bp // resolution, ...)``.

    ``crop_bp`` must be a multiple of ``resolution`` and no longer than the input. When the
    number of positions left over is odd, the extra position is dropped on the right (the
    crop starts at ``(positions - kept) // 2``).
    """
    if crop_bp % resolution:
        raise ValueError(f"crop {crop_bp} bp is not a multiple of the resolution {resolution}")
    keep = crop_bp // resolution
    n = x.shape[0]
    if not 0 < keep <= n:
        raise ValueError(f"crop of {keep} positions does not fit in {n}")
    lo = (n - keep) // 2
    return x[lo:lo + keep]


def binarize(x: np.ndarray, threshold: float) -> np.ndarray:
    """1.0 where ``x > threshold``, else 0.0; float32 of ``x``'s shape."""
    return (np.asarray(x) > threshold).astype(np.float32)


def smooth_radius(sigma_bins: float, truncate: float = 4.0) -> int:
    """How many positions each side :func:`gaussian_smooth` reads: ``int(truncate * sigma + 0.5)``."""
    return int(truncate * float(sigma_bins) + 0.5)


def gaussian_smooth(x: np.ndarray, sigma_bins: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian filter along positions: ``(positions, ...)`` -> same shape, float32.

    ``scipy.ndimage.gaussian_filter1d`` with ``mode="constant"`` (zeros beyond the ends) and
    ``truncate`` sigmas (the kernel has :func:`smooth_radius` positions each side). Values within
    that radius of an end therefore see zeros there: callers that want the true smoothed signal
    read ``smooth_radius`` extra positions each side and crop them off afterwards (the feature
    plan does), so only chromosome ends are padded with zeros.
    """
    if sigma_bins <= 0:
        return np.asarray(x, dtype=np.float32).copy()
    out = ndimage.gaussian_filter1d(np.asarray(x, dtype=np.float64), float(sigma_bins), axis=0,
                                    mode="constant", cval=0.0, truncate=truncate)
    return out.astype(np.float32)


def log_transform(x: np.ndarray, pseudocount: float = 1.0) -> np.ndarray:
    """``log(x + pseudocount)`` (natural log), float32 of ``x``'s shape; pseudocount 1 is ``log1p``."""
    x = np.asarray(x, dtype=np.float64)
    out = np.log1p(x) if pseudocount == 1 else np.log(x + pseudocount)
    return out.astype(np.float32)


def total(x: np.ndarray, span_bp: int | None = None, resolution: int = 1) -> np.ndarray:
    """Sum over the central ``span_bp`` of ``x`` ``(positions, ...)`` -> ``(...)`` float32.

    ``span_bp`` None sums over all positions.
    """
    if span_bp is not None:
        x = crop_center(x, span_bp, resolution)
    return np.asarray(x, dtype=np.float64).sum(axis=0).astype(np.float32)


def quantile_normalize(matrix: np.ndarray) -> np.ndarray:
    """Quantile normalisation across targets: ``(records, targets)`` -> same shape, float32.

    Each column is mapped onto the reference distribution, the mean over columns of the sorted
    columns: the k-th smallest value of a column becomes the mean of the k-th smallest values.
    Ties: values that are equal within a column all get the mean of the reference values over
    the ranks they span (so equal inputs stay equal, e.g. the many zeros of count data).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"quantile_normalize takes (records, targets), got shape {m.shape}")
    n = m.shape[0]
    order = np.argsort(m, axis=0, kind="stable")
    ordered = np.take_along_axis(m, order, axis=0)
    reference = ordered.mean(axis=1)  # (records,)
    csum = np.concatenate([[0.0], np.cumsum(reference)])
    out = np.empty_like(m)
    for j in range(m.shape[1]):
        col = ordered[:, j]
        # runs of equal values in the sorted column: [first, last) ranks of each
        first = np.flatnonzero(np.concatenate([[True], col[1:] != col[:-1]]))
        last = np.concatenate([first[1:], [n]])
        means = (csum[last] - csum[first]) / (last - first)
        values = np.repeat(means, last - first)
        out[order[:, j], j] = values
    return out.astype(np.float32)


def quantile_normalize_positions(values: np.ndarray) -> np.ndarray:
    """:func:`quantile_normalize` of ``(records, ..., targets)``: the records and positions
    together are the rows, the last axis the targets; returns the same shape."""
    v = np.asarray(values)
    flat = v.reshape(-1, v.shape[-1])
    return quantile_normalize(flat).reshape(v.shape)
