"""DNA as arrays: integer codes, one-hot encoding, decoding, reverse complement.

Pure numpy. One-hot order is A, C, G, T along the last axis; any other base
(N, IUPAC codes) is a row of ``n_value`` (0 by default, 0.25 when a model asks).
Shapes: a sequence of length L encodes to ``(L, 4)``; batches are ``(B, L, 4)``.
"""

import numpy as np

BASES = "ACGT"
N_CODE = 4  # integer code of any base that is not A, C, G or T

# byte -> code (A0 C1 G2 T3, everything else 4), upper and lower case alike
_CODE = np.full(256, N_CODE, dtype=np.uint8)
for _i, _b in enumerate(BASES):
    _CODE[ord(_b)] = _i
    _CODE[ord(_b.lower())] = _i
_CODE.setflags(write=False)

# code -> one-hot row packed into one uint32, so that encoding is a single take
_ROW32 = np.zeros(5, dtype=np.uint32)
for _i in range(4):
    _row = np.zeros(4, dtype=np.uint8)
    _row[_i] = 1
    _ROW32[_i] = _row.view(np.uint32)[0]
_ROW32.setflags(write=False)


def _as_bytes(seq) -> np.ndarray:
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    return np.frombuffer(seq, dtype=np.uint8)


def encode(seq) -> np.ndarray:
    """Sequence (str or bytes) -> integer codes ``(L,)`` uint8: A0 C1 G2 T3, other 4."""
    return _CODE.take(_as_bytes(seq))


def codes_to_one_hot(codes: np.ndarray, n_value: float = 0.0, dtype=np.uint8) -> np.ndarray:
    """Integer codes ``(..., L)`` -> one-hot ``(..., L, 4)``; code 4 becomes ``n_value``."""
    codes = np.asarray(codes, dtype=np.uint8)
    if n_value == 0:
        packed = _ROW32.take(codes)  # one uint32 per base, its bytes are the one-hot row
        out = packed.view(np.uint8).reshape(codes.shape + (4,))
        return out if np.dtype(dtype) == np.uint8 else out.astype(dtype)
    table = np.zeros((5, 4), dtype=dtype)
    table[np.arange(4), np.arange(4)] = 1
    table[N_CODE] = n_value
    return table[codes]


def one_hot(seq, n_value: float = 0.0, dtype=np.uint8) -> np.ndarray:
    """Sequence (str or bytes) -> one-hot ``(L, 4)`` in order A, C, G, T.

    Lower case counts as upper case; any other letter is a row of ``n_value``.
    The default ``uint8`` keeps memory at 4 bytes a base; pass ``dtype=np.float32``
    for model input.
    """
    return codes_to_one_hot(encode(seq), n_value=n_value, dtype=dtype)


def decode(one_hot_seq: np.ndarray) -> str:
    """One-hot ``(L, 4)`` -> sequence; a row that is not a clear single base is ``N``."""
    x = np.asarray(one_hot_seq)
    if x.ndim != 2 or x.shape[1] != 4:
        raise ValueError(f"expected a one-hot array of shape (L, 4), got {x.shape}")
    idx = x.argmax(axis=1)
    top = x[np.arange(len(x)), idx]
    clear = (top > 0) & ((x == top[:, None]).sum(axis=1) == 1)
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    return letters[np.where(clear, idx, N_CODE)].tobytes().decode("ascii")


def reverse_complement(one_hot_seq: np.ndarray) -> np.ndarray:
    """Reverse complement of one-hot ``(..., L, 4)``: reverse positions and A<->T, C<->G."""
    return np.asarray(one_hot_seq)[..., ::-1, ::-1]


_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def reverse_complement_str(seq: str) -> str:
    """Reverse complement of a sequence string (IUPAC codes other than N are kept as N-like)."""
    return seq.translate(_COMPLEMENT)[::-1]
