"""BGZF, the blocked gzip that holds a BAM, read in batches of whole blocks inflated ahead in threads.

Each batch is a few MiB of consecutive compressed blocks. Worker threads inflate batches with
libdeflate (:mod:`basenji_tk.io.libdeflate`, ctypes calls that release the GIL) straight into NumPy
buffers, which are reused from batch to batch; every block's CRC-32 and size are checked.

This module imports no numba, so a caller can start the reader and then pay for numba's start-up
while the first batches inflate. Format reference: the SAM/BAM specification (SAMv1 section 4.1).
"""

from __future__ import annotations

import os
import queue
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from basenji_tk.io.libdeflate import gunzip_blocks

BATCH = 4 << 20  # compressed bytes read and inflated as one batch
HEADROOM = 1 << 16  # free bytes before each inflated batch, for the previous batch's partial record
_HEADER = struct.Struct("<BBBB6xHBBHH")  # ID1 ID2 CM FLG (MTIME XFL OS) XLEN SI1 SI2 SLEN BSIZE
_FOOTER = struct.Struct("<II")  # CRC32 ISIZE


def scan_blocks(buf: np.ndarray, n: int, file_offset: int = 0) -> tuple[list, int]:
    """The complete blocks in ``buf[:n]`` as (payload start, payload length, ISIZE, CRC-32) rows,
    and the bytes they span. A header that is not BGZF's raises ValueError with its file offset."""
    rows, i = [], 0
    while i + 18 <= n:
        id1, id2, cm, flg, xlen, si1, si2, slen, bsize = _HEADER.unpack_from(buf, i)
        if (id1, id2, cm, xlen, si1, si2, slen) != (31, 139, 8, 6, 66, 67, 2) or not flg & 4 or bsize < 25:
            raise ValueError(f"not a BGZF block at byte {file_offset + i}")
        end = i + bsize + 1
        if end > n:
            break
        crc, isize = _FOOTER.unpack_from(buf, end - 8)
        rows.append((i + 18, bsize - 25, isize, crc))
        i = end
    return rows, i


def _take(spares: list, size: int) -> np.ndarray:
    """A spare buffer of at least ``size`` bytes, or a new one with some room to spare.

    Reusing buffers matters: a fresh buffer costs a page fault per 4 KiB on first touch, which for
    a BAM's worth of inflated batches adds up to a third of a second of system time.
    """
    try:
        buf = spares.pop()
        if len(buf) >= size:
            return buf
    except IndexError:
        pass
    return np.empty(size + size // 4, np.uint8)


def _batches(f, start: int, spares: list):
    """Yield (compressed bytes, block rows, file offset after the batch) of whole blocks from ``start``."""
    f.seek(start)
    offset, tail = start, np.empty(0, np.uint8)
    while True:
        buf = _take(spares, len(tail) + BATCH)
        buf[:len(tail)] = tail
        got = f.readinto(memoryview(buf)[len(tail):len(tail) + BATCH])
        n = len(tail) + got
        rows, used = scan_blocks(buf, n, offset)
        offset += used
        tail = buf[used:n].copy()
        if rows:
            yield buf, rows, offset
        else:
            spares.append(buf)
        if not got:
            if len(tail):
                raise ValueError("truncated BGZF block at the end of the file")
            return


def inflate(src: np.ndarray, rows: list, dst: np.ndarray | None = None) -> np.ndarray:
    """Inflate the blocks ``rows`` of ``src`` after ``HEADROOM`` free bytes of ``dst`` (new if None
    or too small); returns the filled part of ``dst``."""
    starts = np.cumsum([HEADROOM] + [r[2] for r in rows]).tolist()
    if dst is None or len(dst) < starts[-1]:
        dst = np.empty(starts[-1], np.uint8)
    dst = dst[:starts[-1]]
    gunzip_blocks(src, rows, dst, starts)
    return dst


class BatchReader:
    """Iterate over (inflated buffer, first byte to read, file offset after the batch) in file order.

    Starts at virtual offset ``voffset`` (compressed offset << 16 | offset in the block). A feeder
    thread reads and scans batches and ``threads`` workers inflate them, at most ``ahead`` batches
    in flight (bounded memory). Each buffer has ``HEADROOM`` free bytes before its data, where the
    caller may put the start of a record that the previous batch cut; a buffer is reused for a later
    batch once the next one is requested. Use as a context manager.
    """

    def __init__(self, path: str, voffset: int, threads: int = 2, ahead: int = 8):
        self.f = open(path, "rb")
        self.start, self.size = voffset >> 16, os.fstat(self.f.fileno()).st_size  # compressed bytes
        self.pool = ThreadPoolExecutor(max(1, threads))
        self.queue = queue.Queue(max(ahead, threads + 1))
        self.spare_src, self.spare_dst = [], []  # buffers to reuse (list append and pop are atomic)
        self.first_skip = voffset & 0xFFFF
        self.stop = threading.Event()
        self.feeder = threading.Thread(target=self._feed, args=(voffset >> 16,), daemon=True)
        self.feeder.start()

    def _feed(self, start: int) -> None:
        try:
            for src, rows, end in _batches(self.f, start, self.spare_src):
                if self.stop.is_set():
                    return
                self.queue.put((self.pool.submit(self._inflate, src, rows), end))
        except (ValueError, OSError) as err:
            self.queue.put(err)
            return
        self.queue.put(None)

    def _inflate(self, src: np.ndarray, rows: list) -> np.ndarray:
        size = HEADROOM + sum(r[2] for r in rows)
        dst = inflate(src, rows, _take(self.spare_dst, size))
        self.spare_src.append(src)
        return dst

    def __iter__(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if isinstance(item, Exception):
                raise item
            future, end = item
            start, self.first_skip = HEADROOM + self.first_skip, 0
            buf = future.result()
            yield buf, start, end
            self.spare_dst.append(buf.base if buf.base is not None else buf)  # the caller is done with it

    def close(self) -> None:
        self.stop.set()
        while self.feeder.is_alive():  # unblock a feeder waiting for queue space
            try:
                self.queue.get(timeout=0.01)
            except queue.Empty:
                pass
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
