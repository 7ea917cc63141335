"""Output claims (writability, locks, cleanup) and input fingerprints for --restart."""

import os
import subprocess
import sys
import time

import pytest

from basenji_tk import files
from basenji_tk.errors import InputError
from conftest import hold_claim, read_only

def test_claim_makes_folder_and_removes_lock(tmp_path):
    out = tmp_path / "a" / "b"
    with files.claim(out):
        assert (out / files.LOCK_NAME).exists()
        (out / "x.txt").write_text("x")
    assert sorted(os.listdir(out)) == ["x.txt"]


def test_failed_block_removes_only_folders_it_made_and_left_empty(tmp_path):
    out = tmp_path / "new" / "deeper"
    with pytest.raises(RuntimeError):
        with files.claim(out):
            raise RuntimeError("boom")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    with pytest.raises(RuntimeError):
        with files.claim(kept):
            (kept / "result.tsv").write_text("1")
            raise RuntimeError("boom")
    assert (kept / "result.tsv").exists() and not (kept / files.LOCK_NAME).exists()


def test_file_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        with files.claim(tmp_path / "afile" / "out"):
            pass
    with pytest.raises(InputError, match="is a file, not a folder"):
        files.writable_file(tmp_path / "afile" / "out.bw")
    with pytest.raises(InputError, match="not a folder"):
        with files.claim(tmp_path / "afile"):
            pass


def test_read_only_file_system(tmp_path):
    code = "from basenji_tk import files\nimport sys\nwith files.claim(sys.argv[1]):\n    pass"
    proc = subprocess.run([*read_only(tmp_path), sys.executable, "-c", code, str(tmp_path / "out")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "InputError" in proc.stderr, proc.stderr
    assert "cannot create the output folder" in proc.stderr and "read-only file system" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("folder", [True, False])
def test_second_claim_names_the_holder(tmp_path, folder):
    out = tmp_path / ("out" if folder else "out.bw")
    proc = hold_claim(out, folder)
    try:
        with pytest.raises(InputError, match=f"another run \\(process {proc.pid}\\)"):
            with files.claim(out, folder=folder):
                pass
    finally:
        proc.kill()
        proc.wait()
    # kill -9 leaves the lock file behind, but not the lock
    with files.claim(out, folder=folder):
        pass


def test_fingerprint_sees_changes(tmp_path):
    f = tmp_path / "v.vcf"
    f.write_bytes(b"#header\n" + b"chr1\t1\t.\tA\tC\n" * 300_000)
    saved = files.fingerprint(f)
    files.check_unchanged(saved, f)
    data = bytearray(f.read_bytes())
    data[len(data) // 2 + 3] = ord("G")  # same size, in the middle
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match="changed since the interrupted run"):
        files.check_unchanged(saved, f)
    f.write_bytes(b"#header\n")
    with pytest.raises(InputError, match="bytes before"):
        files.check_unchanged(saved, f)


def test_fingerprint_of_a_folder(tmp_path):
    d = tmp_path / "data"
    (d / "tfrecords").mkdir(parents=True)
    (d / "statistics.json").write_text("{}")
    (d / "tfrecords" / "train-0.tfr").write_bytes(b"x" * 100)
    saved = files.fingerprint(d)
    with files.claim(d):  # the lock file is not part of the data
        files.check_unchanged(saved, d)
    time.sleep(0.01)
    (d / "tfrecords" / "train-0.tfr").write_bytes(b"y" * 100)
    with pytest.raises(InputError, match=r"train-0.tfr: this input changed .*content differs"):
        files.check_unchanged(saved, d)
    saved = files.fingerprint(d)
    (d / "tfrecords" / "train-1.tfr").write_bytes(b"z")
    with pytest.raises(InputError, match="train-1.tfr: this input was added"):
        files.check_unchanged(saved, d)
    (d / "tfrecords" / "train-1.tfr").unlink()
    (d / "statistics.json").unlink()
    with pytest.raises(InputError, match="statistics.json: this input was removed"):
        files.check_unchanged(saved, d)


def test_refuse_overwrite(tmp_path):
    files.refuse_overwrite(tmp_path, ["acc.tsv"], force=False)
    (tmp_path / "acc.tsv").write_text("x")
    with pytest.raises(InputError, match="already holds acc.tsv from a finished run; use --force"):
        files.refuse_overwrite(tmp_path, ["acc.tsv", "other.png"], force=False)
    files.refuse_overwrite(tmp_path, ["acc.tsv"], force=True)
    files.refuse_overwrite(tmp_path / "preds.h5")
    (tmp_path / "preds.h5").write_text("x")
    with pytest.raises(InputError, match="preds.h5: exists"):
        files.refuse_overwrite(tmp_path / "preds.h5")
