"""records: the dataset contract (named features), its writer, readers and augmentation."""

import json

import numpy as np
import pytest

from basenji_tk.data import dna, records
from basenji_tk import files
from basenji_tk.errors import InputError
from basenji_tk.data.records import Feature


def features():
    return [
        Feature("sequence", "sequence", (8, 4), "uint8"),
        Feature("groseq", "signal", (4, 2), "float16", resolution=2, names=("plus", "minus"), strands=True),
        Feature("expression", "vector", (3,)),
        Feature("profile", "label", (4, 1), resolution=2, label_type="profile"),
        Feature("total", "label", (1,)),
        Feature("weight", "weight", ()),
    ]


def example(i):
    rng = np.random.default_rng(i)
    return {
        "sequence": dna.encode("ACGTNACG"[i % 8:] + "ACGTNACG"[:i % 8]),
        "groseq": rng.random((4, 2)).astype(np.float32),
        "expression": rng.random(3),
        "profile": rng.random((4, 1)),
        "total": [float(i)],
        "weight": 0.5 + i / 100,
    }


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "ds"
    with files.claim(str(out), folder=False), records.DatasetWriter(out, features(), "regions",
                                                                   records_per_file=3) as w:
        for i in range(10):
            w.add("train" if i < 7 else "valid", example(i), ("chr1", 100 * i, 100 * i + 8, f"r{i}"))
        stats = w.finish({"settings": {"x": 1}})
    return out, stats


def test_writer_says_what_each_record_holds(written):
    out, stats = written
    on_disk = json.loads((out / "statistics.json").read_text())
    assert on_disk == stats
    assert stats["format"] == records.FORMAT and stats["kind"] == "regions"
    assert stats["counts"] == {"train": 7, "valid": 3, "test": 0} and stats["seq_length"] == 8
    spec = records.load_spec(out)
    assert list(spec.features) == [f.name for f in features()]
    assert spec.features["groseq"] == features()[1] and spec.features["groseq"].span == 8
    assert (out / "sequences.bed").read_text().splitlines()[8] == "chr1\t800\t808\tvalid\tr8"
    assert len(records.split_files(out, "train")) == 3  # 3 + 3 + 1
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".ds.tmp")]


def test_records_read_back_as_written(written):
    out, _ = written
    got = list(records.read_records(out, "train")) + list(records.read_records(out, "valid"))
    assert [g["index"] for g in got] == list(range(10))
    for g in got:
        want = example(g["index"])
        np.testing.assert_array_equal(g["sequence"], want["sequence"])
        np.testing.assert_array_equal(g["groseq"], np.asarray(want["groseq"], np.float16))
        np.testing.assert_allclose(g["expression"], np.asarray(want["expression"], np.float32))
        assert g["weight"] == np.float32(want["weight"]) and g["weight"].shape == ()


def test_tf_pipeline_one_hot_and_reverse_complement(written):
    out, _ = written
    spec = records.load_spec(out)
    plain = list(records.dataset(out, "train", with_index=True).as_numpy_iterator())
    seq = plain[1]["sequence"]
    assert seq.shape == (8, 4) and seq.dtype == np.float32
    np.testing.assert_array_equal(seq, dna.codes_to_one_hot(example(1)["sequence"], dtype=np.float32))
    assert seq[np.asarray(example(1)["sequence"]) == 4].sum() == 0  # N is all zeros
    import tensorflow as tf

    ex = {k: tf.constant(v) for k, v in plain[1].items()}
    rc = {k: np.asarray(v) for k, v in records.reverse_complement(ex, spec.features).items()}
    np.testing.assert_array_equal(rc["sequence"], seq[::-1, ::-1])
    np.testing.assert_array_equal(rc["groseq"], plain[1]["groseq"][::-1, ::-1])  # flipped, + and - swapped
    np.testing.assert_array_equal(rc["profile"], plain[1]["profile"][::-1])
    np.testing.assert_array_equal(rc["expression"], plain[1]["expression"])
    np.testing.assert_array_equal(rc["total"], plain[1]["total"])


def test_augmentation_is_seeded(written):
    out, _ = written

    def stream(seed):
        return [e["sequence"] for e in records.dataset(out, "train", rc=True, shift=2, seed=seed).as_numpy_iterator()]

    a, b, c = stream(3), stream(3), stream(4)
    assert all((x == y).all() for x, y in zip(a, b))
    assert not all((x == y).all() for x, y in zip(a, c))


def test_make_targets_writes_the_contract_and_an_old_folder_reads_the_same(demo_dataset, tmp_path, caplog):
    import logging
    import shutil

    stats = json.loads((demo_dataset / "statistics.json").read_text())
    assert stats["format"] == records.FORMAT and stats["kind"] == "tiling"
    new = records.load_spec(demo_dataset)
    t = new.features["target"]
    assert (t.kind, t.shape, t.resolution) == ("label", (stats["target_length"], stats["num_targets"]),
                                               stats["pool_width"])
    assert t.names == tuple(stats["target_ids"]) and new.features["sequence"].shape == (stats["seq_length"], 4)

    old = tmp_path / "old"  # as basenji_tk wrote it before the contract: no features, format 1
    shutil.copytree(demo_dataset, old)
    for key in ("features", "kind"):
        del stats[key]
    stats["format"] = records.OLD_FORMAT
    (old / "statistics.json").write_text(json.dumps(stats))
    with caplog.at_level(logging.INFO, logger="basenji_tk"):
        spec = records.load_spec(old)
    assert "basenji_tk.dataset/1 dataset (no 'features' in statistics.json); read as it is" in caplog.text
    assert spec.features == new.features and spec.counts == new.counts
    first = next(records.dataset(old, "valid").as_numpy_iterator())
    assert first["target"].shape == t.shape and first["sequence"].shape == (stats["seq_length"], 4)


@pytest.mark.parametrize("bad, message", [
    (dict(sequence=np.zeros(7, np.uint8)), "feature 'sequence' expected codes of shape [8], got [7]"),
    (dict(total=[np.nan]), "feature 'total' has 1 NaN or infinite values"),
    (dict(groseq=np.full((4, 2), 1e6)), "feature 'groseq' has values above the float16 maximum"),
])
def test_bad_values_name_the_feature_and_record(tmp_path, bad, message):
    with pytest.raises(InputError, match="chr1:0:8: " + message.replace("[", r"\[").replace("]", r"\]")):
        with records.DatasetWriter(tmp_path / "ds", features(), "regions") as w:
            w.add("train", {**example(0), **bad}, ("chr1", 0, 8))
    assert list(tmp_path.iterdir()) == []  # the temporary folder went too


@pytest.mark.parametrize("obj, message", [
    ({"kind": "sequence", "shape": [10, 4], "dtype": "float32"}, "a sequence is shape"),
    ({"kind": "label", "shape": [3], "label_type": "binary2"}, "label_type must be one of"),
    ({"kind": "signal", "shape": [3]}, "a signal is shape"),
    ({"kind": "vector", "shape": [3], "names": ["a"]}, "1 names for a last axis of 3"),
    ({"kind": "weight", "shape": [1]}, "a weight is one number"),
    ({"kind": "vector", "shape": [3], "colour": 1}, "unknown key 'colour'"),
    ({"shape": [3]}, "'kind' is required"),
])
def test_bad_feature_entries(obj, message):
    with pytest.raises(InputError, match=message):
        Feature.from_json("f", obj, "statistics.json")
