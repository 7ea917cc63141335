"""The tf.data pipeline over the dataset make_targets.py writes from data/."""

import numpy as np
import pytest

from basenji_tk.data import dna
from basenji_tk.data import tfrecords as tfr
from basenji_tk.errors import InputError


def take(ds, n):
    return [tuple(np.asarray(t) for t in item) for item in ds.take(n)]


def test_ordered_reading_follows_sequences_bed(demo_dataset):
    rows = [line.split("\t") for line in open(demo_dataset / "sequences.bed")]
    valid_rows = [i for i, r in enumerate(rows) if r[3].strip() == "valid"]
    items = list(tfr.dataset(demo_dataset, "valid", with_index=True).as_numpy_iterator())
    assert [int(i) for i, _, _ in items] == valid_rows
    _, x, y = items[0]
    assert x.shape == (16384, 4) and x.dtype == np.float32 and y.shape == (128, 3) and y.dtype == np.float32
    assert set(np.unique(x.sum(axis=1))) <= {0.0, 1.0}
    # the same records as the plain numpy reader
    for (i, codes, targets), (j, x, y) in zip(tfr.read_records(demo_dataset, "valid"), items):
        assert i == j
        np.testing.assert_array_equal(dna.codes_to_one_hot(codes, dtype=np.float32), x)
        np.testing.assert_array_equal(targets, y)


def test_training_stream_is_shuffled_batched_and_repeatable(demo_dataset):
    kw = dict(batch_size=8, shuffle=True, shuffle_buffer=64, seed=3, with_index=True)
    first = take(tfr.dataset(demo_dataset, "train", **kw), 20)
    again = take(tfr.dataset(demo_dataset, "train", **kw), 20)
    other = take(tfr.dataset(demo_dataset, "train", **dict(kw, seed=4)), 20)
    assert first[0][1].shape == (8, 16384, 4) and first[0][2].shape == (8, 128, 3)
    idx = np.concatenate([b[0] for b in first])
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not np.array_equal(idx, np.concatenate([b[0] for b in other]))
    assert not np.array_equal(idx, np.sort(idx))  # shuffled
    assert len(set(idx.tolist())) == len(idx)  # each record once per epoch


def test_epochs_cover_every_record_and_reshuffle(demo_dataset):
    n = int(tfr.load_statistics(demo_dataset)["train_seqs"])
    ds = tfr.dataset(demo_dataset, "train", shuffle=True, seed=0, repeat=True, with_index=True)
    idx = [int(i) for i, _, _ in ds.take(2 * n).as_numpy_iterator()]
    assert sorted(idx[:n]) == sorted(idx[n:]) and idx[:n] != idx[n:]


def test_reverse_complement_and_shift_augmentation(demo_dataset):
    plain = {int(i): (x, y) for i, x, y in tfr.dataset(demo_dataset, "valid", with_index=True).as_numpy_iterator()}
    aug = list(tfr.dataset(demo_dataset, "valid", rc=True, shift=3, seed=11, with_index=True).as_numpy_iterator())
    flips, shifts = 0, set()
    for i, x, y in aug:
        x0, y0 = plain[int(i)]
        for flipped in (False, True):
            xs, ys = (dna.reverse_complement(x0), y0[::-1]) if flipped else (x0, y0)
            # shift then reverse complement: a shift by -k of the reverse complement
            found = [k for k in range(-3, 4) if np.array_equal(x, shift_np(xs, k))]
            if found and np.array_equal(y, ys):
                flips += flipped
                shifts.add(found[0])
                break
        else:
            pytest.fail(f"record {i} is neither a shift nor a shifted reverse complement")
    assert 0.3 < flips / len(aug) < 0.7
    assert len(shifts) >= 5
    again = list(tfr.dataset(demo_dataset, "valid", rc=True, shift=3, seed=11, with_index=True).as_numpy_iterator())
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(aug, again))


def shift_np(x, k):
    out = np.zeros_like(x)
    if k >= 0:
        out[k:] = x[:len(x) - k]
    else:
        out[:k] = x[-k:]
    return out


def test_missing_dataset_and_split_are_clear_errors(tmp_path, demo_dataset):
    with pytest.raises(InputError, match="no statistics.json"):
        tfr.dataset(tmp_path, "train")
    with pytest.raises(InputError, match="no tfrecords/tests"):
        tfr.dataset(demo_dataset, "tests")
