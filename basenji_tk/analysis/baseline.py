"""A linear baseline for binned tracks: each bin's target on two features of the bin's DNA.

Fitted per target on the train split of a tiling dataset (``sequence`` + the binned ``target``),
its scores are the number to beat for a model that learnt more than base composition
(``test.py --baseline``): GC fraction and CpG count of each bin (:func:`bin_features`).
"""

import numpy as np

from basenji_tk.errors import InputError

C_CODE, G_CODE, N_CODE = 1, 2, 4  # integer codes of sequences in records (A0 C1 G2 T3 N4)


def bin_features(codes: np.ndarray, num_bins: int, pool_width: int) -> np.ndarray:
    """Two DNA features per target bin: ``codes (..., L) uint8 -> (..., num_bins, 2)`` float64.

    Column 0 is the GC fraction of the bin's A/C/G/T bases (N bases are left
    out; a bin of only N gets 0.5), column 1 the number of CpG dinucleotides
    whose C lies in the bin. Bins are ``pool_width`` bp; when
    ``num_bins * pool_width`` is shorter than L the bins sit in the middle, as
    targets of a cropped dataset do (``(L - num_bins * pool_width) // 2`` bp off
    the start)."""
    codes = np.asarray(codes)
    length = codes.shape[-1]
    offset = (length - num_bins * pool_width) // 2
    if offset < 0:
        raise InputError(f"{num_bins} bins of {pool_width} bp do not fit in a {length} bp sequence")
    is_cg = np.zeros(codes.shape, dtype=bool)
    is_cg[..., :-1] = (codes[..., :-1] == C_CODE) & (codes[..., 1:] == G_CODE)
    span = slice(offset, offset + num_bins * pool_width)
    binned_shape = codes.shape[:-1] + (num_bins, pool_width)
    bins = codes[..., span].reshape(binned_shape)
    acgt = (bins < N_CODE).sum(axis=-1)
    gc = ((bins == C_CODE) | (bins == G_CODE)).sum(axis=-1)
    gc_fraction = np.where(acgt > 0, gc / np.maximum(acgt, 1), 0.5)
    cpg = is_cg[..., span].reshape(binned_shape).sum(axis=-1)
    return np.stack([gc_fraction, cpg.astype(np.float64)], axis=-1)


def _design(features: np.ndarray) -> np.ndarray:
    """``(..., 2)`` features -> ``(..., 3)`` with a leading column of ones (the intercept)."""
    return np.concatenate([np.ones(features.shape[:-1] + (1,)), features], axis=-1)


def fit_baseline(data_dir, split: str = "train") -> np.ndarray:
    """Least-squares coefficients of each target on ``[1, GC fraction, CpG count]`` per bin.

    Reads ``split`` of the dataset record by record (numpy only) and accumulates
    the normal equations, so memory stays flat. Returns ``(3, n)``: intercept,
    GC and CpG weights for each of the n targets."""
    from basenji_tk.data.tfrecords import load_statistics, read_records, split_files

    stats = load_statistics(data_dir)
    if not split_files(data_dir, split):
        raise InputError(f"{data_dir}: no tfrecords/{split}-*.tfr files; the baseline is fitted on the "
                         f"{split} split")
    num_bins, num_targets = int(stats["target_length"]), int(stats["num_targets"])
    xtx = np.zeros((3, 3))
    xty = np.zeros((3, num_targets))
    for _, codes, targets in read_records(data_dir, split):
        x = _design(bin_features(codes, num_bins, int(stats["pool_width"])))  # (T, 3)
        xtx += x.T @ x
        xty += x.T @ targets.astype(np.float64)
    return np.linalg.lstsq(xtx, xty, rcond=None)[0]


def baseline_predict(features: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Baseline predictions: ``features (..., 2)`` and ``coef (3, n)`` -> ``(..., n)`` float64."""
    return _design(features) @ coef


def one_hot_to_codes(one_hot: np.ndarray) -> np.ndarray:
    """``(..., L, 4)`` one-hot -> ``(..., L)`` uint8 codes; an all-zero row is N (4)."""
    return np.where(one_hot.max(axis=-1) > 0, one_hot.argmax(axis=-1), N_CODE).astype(np.uint8)
