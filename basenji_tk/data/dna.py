"""DNA as arrays: integer codes, one-hot encoding, decoding, reverse complement.

Pure numpy. One-hot order is A, C, G, T along the last axis; any other base
(N, IUPAC codes) is a row of ``n_value`` (0 by default, 0.25 when a model asks).
Shapes: a sequence of length L encodes to ``(L, 4)``; batches are ``(B, L, 4)``.
"""

import threading

import numpy as np

BASES = "ACGT"
N_CODE = 4  # integer code of any base that is not A, C, G or T

def _table(mapping: dict, default: int) -> bytes:
    """A 256-byte table for ``bytes.translate`` (C speed, one pass)."""
    table = bytearray([default]) * 256
    for key, value in mapping.items():
        table[key] = value
    return bytes(table)


# letter -> code (A0 C1 G2 T3, anything else 4), upper and lower case alike
_CODE = _table({ord(c): i for i, b in enumerate(BASES) for c in (b, b.lower())}, N_CODE)
# letter -> its one-hot row as 4 bits (A 1, C 2, G 4, T 8; other 0), and code -> the same bits
_LETTER_BITS = _table({ord(c): 1 << i for i, b in enumerate(BASES) for c in (b, b.lower())}, 0)
_CODE_BITS = _table({i: 1 << i for i in range(4)}, 0)


def _as_bytes(seq) -> bytes:
    if isinstance(seq, str):
        return seq.encode("ascii", errors="replace")
    return bytes(seq)


def encode(seq) -> np.ndarray:
    """Sequence (str or bytes) -> integer codes ``(L,)`` uint8: A0 C1 G2 T3, other 4."""
    return np.frombuffer(_as_bytes(seq).translate(_CODE), dtype=np.uint8)


def _bits_to_one_hot(bits: bytes) -> np.ndarray:
    """One byte of 4 one-hot bits per base -> ``(L, 4)`` uint8, without a per-base Python step.

    Bases are paired into one byte (first base in the low nibble) and ``np.unpackbits``
    spreads each byte's 8 bits over 8 bytes: exactly two one-hot rows.
    """
    n = len(bits)
    if n % 2:
        bits += b"\0"
    pairs = np.frombuffer(bits, dtype=np.uint16)  # little-endian: first base in the low byte
    packed = pairs >> 4
    packed |= pairs  # low byte now holds first | second << 4
    out = np.unpackbits(packed.astype(np.uint8), bitorder="little").reshape(-1, 4)
    return out[:n]


# Long sequences: a compiled loop that looks up two bases at a time (a uint16 of two
# letters) in a 65,536-entry table of their two one-hot rows (a uint64), run on two
# threads. Compiled on first use, so that importing this module stays light.
_PARALLEL_MIN = 1 << 20
_kernel = None
_PAIR_ROWS = None


def _pair_kernel():
    global _kernel, _PAIR_ROWS
    if _kernel is None:
        import numba

        @numba.njit(nogil=True, cache=True)
        def fill(pairs, table, out):
            for i in range(pairs.shape[0]):
                out[i] = table[pairs[i]]

        bits = np.frombuffer(_LETTER_BITS, dtype=np.uint8)
        rows = _bits_to_one_hot(bits.tobytes()).copy().view(np.uint32).ravel().astype(np.uint64)
        # first base in the low byte of the uint16 -> its row in the low 4 bytes of the uint64
        _PAIR_ROWS = rows[np.arange(65536) & 0xFF] | (rows[np.arange(65536) >> 8] << np.uint64(32))
        _kernel = fill
    return _kernel, _PAIR_ROWS


def _letters_to_one_hot(raw: bytes) -> np.ndarray:
    n = len(raw)
    if n < _PARALLEL_MIN:
        return _bits_to_one_hot(raw.translate(_LETTER_BITS))
    fill, table = _pair_kernel()
    if n % 2:
        raw += b"N"
    pairs = np.frombuffer(raw, dtype=np.uint16)
    out = np.empty(len(pairs), dtype=np.uint64)
    half = len(pairs) // 2
    worker = threading.Thread(target=fill, args=(pairs[half:], table, out[half:]))
    worker.start()  # the compiled loop releases the GIL: both halves run at once
    fill(pairs[:half], table, out[:half])
    worker.join()
    return out.view(np.uint8).reshape(-1, 4)[:n]


def codes_to_one_hot(codes: np.ndarray, n_value: float = 0.0, dtype=np.uint8) -> np.ndarray:
    """Integer codes ``(L,)`` -> one-hot ``(L, 4)``; code 4 becomes a row of ``n_value``."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if codes.ndim != 1:
        return np.stack([codes_to_one_hot(c, n_value, dtype) for c in codes])
    out = _bits_to_one_hot(codes.tobytes().translate(_CODE_BITS))
    return _finish(out, codes == N_CODE if n_value else None, n_value, dtype)


def one_hot(seq, n_value: float = 0.0, dtype=np.uint8) -> np.ndarray:
    """Sequence (str or bytes) -> one-hot ``(L, 4)`` in order A, C, G, T.

    Lower case counts as upper case; any other letter is a row of ``n_value``.
    The default ``uint8`` keeps memory at 4 bytes a base; pass ``dtype=np.float32``
    for model input.
    """
    raw = _as_bytes(seq)
    out = _letters_to_one_hot(raw)
    return _finish(out, encode(raw) == N_CODE if n_value else None, n_value, dtype)


def _finish(out, is_n, n_value, dtype):
    if np.dtype(dtype) != np.uint8 or is_n is not None:
        out = out.astype(dtype)
    if is_n is not None:
        out[is_n] = n_value
    return out


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
