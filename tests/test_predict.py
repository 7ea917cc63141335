"""predict.py and basenji_tk.analysis.predict with the tiny model on the demo genome (session fixtures).

Predictions are checked against model.predict on windows fetched independently
with pysam, and the BigWigs against the HDF5 through pyBigWig.
"""

import h5py
import numpy as np
import pyBigWig
import pysam
import pytest

from basenji_tk.model import models
from basenji_tk.analysis import predict as pr
from basenji_tk.errors import InputError
from conftest import FASTA, assert_clean_failure, run_script

SEQ_LENGTH, POOL = 16384, 128
CHROM_SIZE = 20_000_000
# (start, end) on chromosome 20 of the demo FASTA: a window hanging off the start,
# two windows that overlap, one on its own and one hanging off the end
REGIONS = [(1000, 1200), (5_000_000, 5_000_500), (5_010_000, 5_010_100), (12_000_000, 12_000_001),
           (19_999_000, 19_999_900)]


def write_bed(path, rows):
    path.write_text("".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def predicted(tiny_model, tmp_path_factory):
    """predict.py on REGIONS with --bigwig; the genome comes from the model's data_statistics.json."""
    work = tmp_path_factory.mktemp("predict")
    bed = write_bed(work / "regions.bed", [("20", s, e, f"r{i}") for i, (s, e) in enumerate(REGIONS)])
    proc = run_script("predict.py", "-q", tiny_model, bed, "-o", work / "out" / "preds.h5",
                      "--bigwig", work / "bw", "--batch_size", 2)
    assert proc.returncode == 0, proc.stderr
    return work


def window_by_hand(chrom, start, end):
    """The window's bases from pysam, N outside the chromosome, one-hot (L, 4) float32."""
    with pysam.FastaFile(str(FASTA)) as fasta:
        size = fasta.get_reference_length(chrom)
        seq = "N" * max(0, -start) + fasta.fetch(chrom, max(0, start), min(size, end)) + "N" * max(0, end - size)
    letters = np.frombuffer(seq.upper().encode(), dtype=np.uint8)
    return (letters[:, None] == np.frombuffer(b"ACGT", dtype=np.uint8)[None, :]).astype(np.float32)


def test_h5_holds_windows_and_predictions(predicted, tiny_model):
    with h5py.File(predicted / "out" / "preds.h5", "r") as h5:
        preds = h5["preds"][:]
        assert preds.shape == (len(REGIONS), SEQ_LENGTH // POOL, 3) and preds.dtype == np.float16
        assert h5["chrom"][:].tolist() == [b"20"] * len(REGIONS)
        assert h5["region_start"][:].tolist() == [s for s, _ in REGIONS]
        assert h5["region_end"][:].tolist() == [e for _, e in REGIONS]
        starts, ends = h5["start"][:], h5["end"][:]
        assert starts.dtype == np.int64
        assert [t.decode() for t in h5["target_ids"][:]] == ["ctcf", "cpg", "tss"]
        assert h5.attrs["pool_width"] == POOL and h5.attrs["bin_offset"] == 0
    mids = [(s + e) // 2 for s, e in REGIONS]
    assert starts.tolist() == [m - SEQ_LENGTH // 2 for m in mids] and (ends - starts == SEQ_LENGTH).all()
    assert starts[0] < 0 and ends[-1] > CHROM_SIZE  # the edge cases are exercised

    x = np.stack([window_by_hand("20", int(s), int(e)) for s, e in zip(starts, ends)])
    model = models.load_model(tiny_model / "model_best.keras")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(preds.astype(np.float32), expected, rtol=2e-3, atol=1e-3)
    assert not [p.name for p in (predicted / "out").iterdir() if p.name.startswith(".")]


def test_bigwigs_equal_h5_and_average_overlaps(predicted):
    with h5py.File(predicted / "out" / "preds.h5", "r") as h5:
        preds, starts = h5["preds"][:].astype(np.float32), h5["start"][:]
    for k, target in enumerate(["ctcf", "cpg", "tss"]):
        bw = pyBigWig.open(str(predicted / "bw" / f"{target}.bw"))
        try:
            assert bw.chroms() == {"20": CHROM_SIZE}
            # the lone window: base-level values are its bins, exactly
            lone = 3
            values = np.array(bw.values("20", int(starts[lone]), int(starts[lone]) + SEQ_LENGTH))
            np.testing.assert_array_equal(values.reshape(-1, POOL), np.repeat(preds[lone, :, k, None], POOL, 1))
            # every base of every window: the mean of the bins of the windows covering it
            for start in starts:
                lo, hi = max(0, int(start)), min(CHROM_SIZE, int(start) + SEQ_LENGTH)
                pos = np.arange(lo, hi)
                total, count = np.zeros(pos.size), np.zeros(pos.size)
                for j in range(len(starts)):
                    inside = (pos >= starts[j]) & (pos < starts[j] + SEQ_LENGTH)
                    total[inside] += preds[j, (pos[inside] - starts[j]) // POOL, k]
                    count[inside] += 1
                np.testing.assert_allclose(bw.values("20", lo, hi), total / count, rtol=1e-6)
            intervals = bw.intervals("20")
            assert intervals[0][0] == 0 and intervals[-1][1] == CHROM_SIZE  # clipped to the chromosome
            assert all(a[1] <= b[0] for a, b in zip(intervals, intervals[1:]))  # sorted, disjoint
        finally:
            bw.close()


def test_average_bins():
    starts, ends, means = pr.average_bins([0, 5, 20], [10, 15, 30], np.array([[1.0, 2.0], [3.0, 4.0], [7.0, 8.0]]))
    assert starts.tolist() == [0, 5, 10, 20] and ends.tolist() == [5, 10, 15, 30]
    np.testing.assert_array_equal(means, [[1, 2], [2, 3], [3, 4], [7, 8]])
    starts, ends, means = pr.average_bins([], [], np.zeros(0))
    assert starts.size == ends.size == means.size == 0


def test_windows_and_offset():
    starts, ends = pr.windows([100, 7], [201, 8], 10)
    assert starts.tolist() == [145, 2] and ends.tolist() == [155, 12]
    assert pr.bin_offset(16384, 120, 128) == 512


def test_unknown_chromosome(tiny_model, tmp_path):
    bed = write_bed(tmp_path / "r.bed", [("20", 100, 200), ("chr7", 100, 200)])
    proc = run_script("predict.py", "-q", tiny_model, bed, "-o", tmp_path / "p.h5")
    assert_clean_failure(proc, "chr7", "not in the FASTA", str(bed))
    assert not (tmp_path / "p.h5").exists()


def test_bad_inputs_in_process(tiny_model, tmp_path):
    empty = write_bed(tmp_path / "empty.bed", [])
    with pytest.raises(InputError, match="no regions"):
        pr.predict_bed(tiny_model, empty, tmp_path / "p.h5")
    bad = tmp_path / "bad.bed"
    bad.write_text("20\t100\t200\n20\tten\t300\n")
    with pytest.raises(InputError, match=r"bad.bed:2: expected numbers"):
        pr.predict_bed(tiny_model, bad, tmp_path / "p.h5")
    past = write_bed(tmp_path / "past.bed", [("20", CHROM_SIZE + 10, CHROM_SIZE + 20)])
    with pytest.raises(InputError, match="past the end"):
        pr.predict_bed(tiny_model, past, tmp_path / "p.h5")
    ok = write_bed(tmp_path / "ok.bed", [("20", 100, 200)])
    with pytest.raises(InputError, match="data_statistics.json not found.*--fasta"):
        pr.predict_bed(tmp_path, ok, tmp_path / "p.h5")  # a folder without the training statistics
    with pytest.raises(InputError, match="--shifts"):
        pr.predict_bed(tiny_model, ok, tmp_path / "p.h5", shifts=(SEQ_LENGTH,))
    assert not (tmp_path / "p.h5").exists()
