"""The BAM reading and compiled pieces under bam_cov: BGZF batches, libdeflate, read grouping, the
EM/GC loops and the BigWig writer's run and zoom passes, each against a plain reference.

Inputs are the real demo BAM in data/ or random numbers (simulated, to cover edge cases).
"""

import collections
import shutil
import struct
import zlib

import numpy as np
import pysam
import pytest
from conftest import DATA, assert_clean_failure, run_script

from basenji_tk.io import bamio, bgzf, bigwig, libdeflate

from basenji_tk.coverage import kernels as covkernels
BAM = DATA / "dropseq.bam"
SKIP = 0x200 | 0x800  # QC-fail, supplementary


def decode(path, threads=2):
    voffset = pysam.AlignmentFile(str(path)).tell()
    with bgzf.BatchReader(str(path), voffset, threads) as batches:
        return bamio.read_columns(batches, SKIP, 0, True)


def test_batches_cut_anywhere_decode_the_same(monkeypatch):
    whole = decode(BAM)
    assert len(whole.pos) > 1000
    # batches smaller than a block and a headroom shorter than a record: every record crosses
    # batch edges somewhere, and long ones take the path that joins two buffers
    monkeypatch.setattr(bgzf, "BATCH", 20_000)
    monkeypatch.setattr(bgzf, "HEADROOM", 50)
    for threads in (1, 3):
        cut = decode(BAM, threads)
        for field in ("tid", "pos", "rlen", "flag", "key", "nh", "blk_rec", "blk_start", "blk_end", "stats"):
            np.testing.assert_array_equal(getattr(cut, field), getattr(whole, field), err_msg=field)
    # and the records match pysam's
    bam = pysam.AlignmentFile(str(BAM))
    mapped = [r for r in bam.fetch(until_eof=True) if not r.is_unmapped and not r.flag & SKIP]
    assert len(mapped) == len(whole.pos)
    assert [r.reference_end - 1 if r.is_reverse else r.reference_start for r in mapped[:500]] == \
        whole.pos[:500].tolist()


def block_starts(path):
    data = open(path, "rb").read()
    starts, i = [], 0
    while i < len(data):
        starts.append(i)
        i += struct.unpack_from("<H", data, i + 16)[0] + 1
    return data, starts


def test_damaged_bam_is_one_line_error(tmp_path):
    data, starts = block_starts(BAM)
    assert len(starts) > 5
    # a flipped byte inside the third block's compressed data: caught by the CRC-32 check
    bad = bytearray(data)
    bad[starts[3] - 20] ^= 0xFF
    # cut inside the fifth block, the EOF marker block kept after it (so pysam opens the file)
    for name, content in (("flipped.bam", bytes(bad)), ("cut.bam", data[:starts[4] + 40] + data[-28:])):
        path = tmp_path / name
        path.write_bytes(content)
        shutil.copy(str(BAM) + ".bai", str(path) + ".bai")
        proc = run_script("bam_cov.py", path, tmp_path / "x.bw")
        assert_clean_failure(proc, name, "damaged BAM")
        assert not (tmp_path / "x.bw").exists()
    with pytest.raises(ValueError, match="CRC-32"):
        decode(tmp_path / "flipped.bam")
    with pytest.raises(ValueError, match="truncated"):
        decode(tmp_path / "cut.bam")


def test_libdeflate_and_zlib_agree(monkeypatch):
    assert libdeflate.AVAILABLE  # the deflate wheel exports libdeflate's symbols on this platform
    src = np.fromfile(BAM, dtype=np.uint8)
    rows, used = bgzf.scan_blocks(src, len(src))
    assert used == len(src) and rows[-1][2] == 0  # the file ends with the empty EOF block
    starts = np.cumsum([0] + [r[2] for r in rows]).tolist()
    fast = np.empty(starts[-1], np.uint8)
    libdeflate.gunzip_blocks(src, rows, fast, starts)
    chunks = [bytes(fast[a:a + 20_000]) for a in range(0, 200_000, 20_000)]
    packed = libdeflate.zlib_compress(chunks, 1)
    monkeypatch.setattr(libdeflate, "_LIB", None)
    slow = np.empty_like(fast)
    libdeflate.gunzip_blocks(src, rows, slow, starts)
    np.testing.assert_array_equal(fast, slow)
    assert [zlib.decompress(p) for p in packed] == chunks == [zlib.decompress(p) for p in
                                                              libdeflate.zlib_compress(chunks, 1)]


@pytest.mark.parametrize("n", [7, 200_000])
def test_group_by_key_matches_a_dictionary(n):
    rng = np.random.default_rng(n)  # simulated keys: many repeated, a few unique
    keys = rng.integers(-2**62, 2**62, n // 3 + 1)[rng.integers(0, n // 3 + 1, n)]
    secondary = rng.random(n) < 0.2
    nh = rng.integers(0, 12, n).astype(np.int32)
    gid, count, any_secondary, max_nh = bamio.group_by_key(keys, secondary, nh)
    members = collections.defaultdict(list)
    for i, k in enumerate(keys.tolist()):
        members[k].append(i)
    assert len(count) == len(members)
    for rows in members.values():
        g = gid[rows[0]]
        assert (gid[rows] == g).all() and count[g] == len(rows)
        assert any_secondary[g] == secondary[rows].any() and max_nh[g] == nh[rows].max()


def test_gaussian_window_sums_brute_force():
    rng = np.random.default_rng(1)
    query, points = np.sort(rng.integers(0, 5000, 300)), np.sort(rng.integers(0, 5000, 400))
    weights = rng.random(400)
    got = covkernels.gaussian_window_sums(query, points, weights, 32.0)
    d = points[None, :] - query[:, None]
    want = (weights * np.exp(-0.5 * (d / 32.0) ** 2) * (np.abs(d) <= 128)).sum(axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_gc_bin_sums_matches_a_numpy_reference():
    rng = np.random.default_rng(2)
    length, max_gap, levels, undefined = 50_000, 700, 250, 255
    codes_all = rng.integers(0, levels + 1, length).astype(np.uint8)
    codes_all[rng.random(length) < 0.05] = undefined
    # events with a few long read-free stretches, some positions repeated
    pos = np.sort(np.concatenate([rng.integers(0, 12_000, 300), rng.integers(20_000, 21_000, 40),
                                  rng.integers(30_000, 50_000, 500), [25_000, 25_000]]))
    w = rng.random(len(pos))
    for start, end in ((0, 17_000), (17_000, 34_000), (34_000, 50_000)):
        codes = codes_all[start:end]
        n_pos, cov_sum = np.zeros(101, np.int64), np.zeros(101)
        lo, hi = np.searchsorted(pos, start - max_gap, "left"), np.searchsorted(pos, end + max_gap, "right")
        excluded = covkernels.gc_bin_sums(codes, start, pos, w, lo, hi, max_gap, levels, undefined, n_pos, cov_sum)
        # reference: bases strictly between consecutive events (or the window edges) > max_gap apart
        around = np.concatenate([[start - max_gap - 1], pos[lo:hi], [end + max_gap + 1]])
        gap = np.zeros(end - start, bool)
        for i in np.flatnonzero(np.diff(around) > max_gap):
            a, b = max(around[i] + 1, start), min(around[i + 1], end)
            if a < b:
                gap[a - start:b - start] = True
        cov = np.bincount(pos[(pos >= start) & (pos < end)] - start, w[(pos >= start) & (pos < end)], end - start)
        ok = (codes != undefined) & ~gap
        b = (codes[ok].astype(np.int64) * 100 + levels // 2) // levels
        assert excluded == int(((codes != undefined) & gap).sum())
        np.testing.assert_array_equal(n_pos, np.bincount(b, minlength=101))
        np.testing.assert_allclose(cov_sum, np.bincount(b, cov[ok], 101), rtol=1e-12)


def test_nonzero_runs_and_bin_summaries():
    rng = np.random.default_rng(3)
    values = rng.choice([0.0, 0.0, 1.0, 2.5], 10_000) * (rng.random(10_000) < 0.7)
    first, end, value = bigwig.nonzero_runs(values)
    rebuilt = np.zeros_like(values)
    for a, b, v in zip(first, end, value):
        rebuilt[a:b] = v
    np.testing.assert_array_equal(rebuilt, values)
    assert (value != 0).all() and ((first[1:] > end[:-1]) | (value[1:] != value[:-1])).all()  # maximal runs
    starts, ends, vals = first + 100, end + 100, value.astype(np.float64)
    s, e, count, lo, hi, total, total_sq = bigwig._bin_summaries(starts, ends, vals, 256)
    base = np.zeros(ends.max() + 256)
    covered = np.zeros(len(base), bool)
    for a, b, v in zip(starts, ends, vals):
        base[a:b], covered[a:b] = v, True
    bins = np.unique(np.flatnonzero(covered) // 256)
    np.testing.assert_array_equal(s // 256, bins)
    for k, bn in enumerate(bins):
        seg, cov = base[bn * 256:(bn + 1) * 256], covered[bn * 256:(bn + 1) * 256]
        assert count[k] == cov.sum() and total[k] == pytest.approx(seg.sum())
        assert total_sq[k] == pytest.approx((seg ** 2).sum()) and lo[k] == seg[cov].min() and hi[k] == seg[cov].max()
        assert s[k] == bn * 256 + np.argmax(cov) and e[k] == bn * 256 + len(cov) - np.argmax(cov[::-1])
