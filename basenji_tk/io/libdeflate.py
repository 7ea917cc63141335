"""libdeflate's C functions through ctypes, for BGZF blocks (BAM) and BigWig data blocks.

The ``deflate`` wheel links libdeflate statically and exports its C symbols (Linux, macOS), so
ctypes can call them directly: a ctypes call releases the GIL, which lets worker threads inflate
or deflate at the same time, straight from and into NumPy buffers. Where the symbols are not
exported (Windows) the functions here fall back to Python's zlib, which also releases the GIL.
"""

from __future__ import annotations

import ctypes
import zlib

import numpy as np


def _load():
    try:
        from deflate import _deflate

        lib = ctypes.CDLL(_deflate.__file__)
        fns = (lib.libdeflate_alloc_decompressor, lib.libdeflate_free_decompressor,
               lib.libdeflate_gzip_decompress, lib.libdeflate_alloc_compressor,
               lib.libdeflate_free_compressor, lib.libdeflate_zlib_compress, lib.libdeflate_zlib_compress_bound)
    except (ImportError, OSError, AttributeError):  # pragma: no cover - platform dependent
        return None
    vp, size = ctypes.c_void_p, ctypes.c_size_t
    signatures = ([], vp), ([vp], None), ([vp, vp, size, vp, size, vp], ctypes.c_int), \
        ([ctypes.c_int], vp), ([vp], None), ([vp, vp, size, vp, size], size), ([vp, size], size)
    for fn, (args, res) in zip(fns, signatures):
        fn.argtypes, fn.restype = args, res
    return fns


_LIB = _load()
AVAILABLE = _LIB is not None


def gunzip_blocks(src: np.ndarray, rows: list, dst: np.ndarray, starts: list) -> None:
    """Inflate BGZF blocks of ``src`` into ``dst``, checking each one's CRC-32 and size.

    ``rows``: (payload start, payload length, ISIZE, CRC-32) per block (the payload starts 18 bytes
    into the block; the 8-byte footer follows it); ``starts``: where each block goes in ``dst``.
    A BGZF block is a whole gzip member, so libdeflate inflates and checks it in one call.
    """
    if _LIB is None:  # pragma: no cover - platform dependent
        for (at, length, size, crc), o in zip(rows, starts):
            data = zlib.decompress(src[at:at + length], -15, max(size, 1))
            if len(data) != size or zlib.crc32(data) != crc:
                raise ValueError(f"corrupt BGZF block (inflated size or CRC-32 wrong) at batch byte {at - 18}")
            dst[o:o + size] = np.frombuffer(data, np.uint8)
        return
    alloc, free, gunzip = _LIB[:3]
    decompressor = alloc()
    if not decompressor:
        raise MemoryError("libdeflate could not allocate a decompressor")
    try:
        s, d = src.ctypes.data, dst.ctypes.data
        for (at, length, size, _), o in zip(rows, starts):
            if gunzip(decompressor, s + at - 18, length + 26, d + o, size, None) != 0:
                raise ValueError(f"corrupt BGZF block (inflated size or CRC-32 wrong) at batch byte {at - 18}")
    finally:
        free(decompressor)


def zlib_compress(chunks: list[bytes], level: int = 1) -> list[bytes]:
    """Each chunk as a zlib stream (what BigWig readers inflate)."""
    if _LIB is None:  # pragma: no cover - platform dependent
        return [zlib.compress(c, level) for c in chunks]
    alloc, free, compress, bound = _LIB[3:]
    compressor = alloc(level)
    if not compressor:
        raise MemoryError("libdeflate could not allocate a compressor")
    try:
        out = []
        buf = ctypes.create_string_buffer(bound(compressor, max(map(len, chunks), default=0)))
        for c in chunks:
            n = compress(compressor, c, len(c), buf, len(buf))
            out.append(ctypes.string_at(buf, n))
        return out
    finally:
        free(compressor)
