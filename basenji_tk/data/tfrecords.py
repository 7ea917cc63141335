"""TFRecords of (sequence, targets) and the tf.data pipelines that read them.

Each record is a ``tf.train.Example`` with three features:

- ``sequence``: bytes, one uint8 code per base (A0 C1 G2 T3, other 4), length L;
- ``target``: bytes, ``(L // pool_width, n_targets)`` in the dataset's target dtype
  (float16 by default, as in Basenji), row-major;
- ``index``: int64, the record's row in ``sequences.bed``.

Files are ``tfrecords/{split}-{k}.tfr``, ZLIB-compressed. The readers yield
``(one_hot (L, 4) float32, targets (T, n_targets) float32)``.
"""

import os
import queue
import threading

import numpy as np
import tensorflow as tf

from basenji_tk.errors import InputError
from basenji_tk.data.records import COMPRESSION, STATISTICS, load_statistics, split_files  # noqa: F401



# ----------------------------------------------------------------------------- writing
def example_bytes(index: int, codes: np.ndarray, targets: np.ndarray) -> bytes:
    """Serialise one record; ``targets`` already in the dataset's dtype."""
    feature = {
        "sequence": tf.train.Feature(bytes_list=tf.train.BytesList(value=[codes.astype(np.uint8).tobytes()])),
        "target": tf.train.Feature(bytes_list=tf.train.BytesList(value=[np.ascontiguousarray(targets).tobytes()])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
    }
    # deterministic: protobuf maps otherwise serialise in hash order, and files would differ run to run
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


class SplitWriter:
    """Writes one split's records into ``{split}-0.tfr``, ``{split}-1.tfr``, ... of ``per_file`` each.

    ZLIB level 1: on DNA codes it compresses 3.2x (level 6: 3.7x) at over ten times
    the speed, and compression is most of the cost of writing a dataset.
    """

    def __init__(self, folder, split, per_file=256, compression_level=1):
        self.folder, self.split, self.per_file = folder, split, per_file
        self.options = tf.io.TFRecordOptions(compression_type=COMPRESSION, compression_level=compression_level)
        self.count, self._writer = 0, None
        self.files = []

    def write(self, record: bytes):
        if self.count % self.per_file == 0:
            self.close()
            path = os.path.join(self.folder, f"{self.split}-{len(self.files)}.tfr")
            self.files.append(path)
            self._writer = tf.io.TFRecordWriter(path, self.options)
        self._writer.write(record)
        self.count += 1

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class BackgroundWriter:
    """Feeds :class:`SplitWriter` s from a thread, so compression (which releases the GIL)
    overlaps with reading the genome and tracks. Use as a context manager; an error in
    the thread is raised again in the caller."""

    def __init__(self, folder, splits, per_file=256, queue_size=64):
        self.writers = {s: SplitWriter(folder, s, per_file) for s in splits}
        self._queue = queue.Queue(maxsize=queue_size)
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.writers[item[0]].write(item[1])
                except BaseException as err:  # handed to the caller in write/close
                    self._error = err

    def write(self, split, record: bytes):
        if self._error is not None:
            raise self._error
        self._queue.put((split, record))

    def close(self):
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        for w in self.writers.values():
            w.close()
        if self._error is not None:
            raise self._error

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.close()
        except BaseException:
            if exc_type is None:  # otherwise the caller's own error is the one to see
                raise


# ----------------------------------------------------------------------------- reading
# (the folder's contract lives in basenji_tk.data.records, which needs no TensorFlow)
def _parser(stats, with_index=False):
    seq_length = int(stats["seq_length"])
    shape = (int(stats["target_length"]), int(stats["num_targets"]))
    dtype = tf.dtypes.as_dtype(stats.get("target_dtype", "float16"))
    spec = {
        "sequence": tf.io.FixedLenFeature([], tf.string),
        "target": tf.io.FixedLenFeature([], tf.string),
        "index": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, spec)
        codes = tf.io.decode_raw(ex["sequence"], tf.uint8)
        one_hot = tf.one_hot(tf.cast(codes, tf.int32), 4, dtype=tf.float32)  # code 4 -> zeros
        one_hot = tf.ensure_shape(one_hot, (seq_length, 4))
        targets = tf.reshape(tf.io.decode_raw(ex["target"], dtype), shape)
        targets = tf.cast(targets, tf.float32)
        if with_index:
            return ex["index"], one_hot, targets
        return one_hot, targets

    return parse


def reverse_complement(one_hot, targets):
    """Reverse complement a ``(L, 4)`` sequence and flip its ``(T, n)`` targets along T."""
    return tf.reverse(one_hot, axis=[0, 1]), tf.reverse(targets, axis=[0])


def shift_sequence(one_hot, shift):
    """Move a ``(L, 4)`` sequence by ``shift`` bases (right if positive), filling with N (zeros)."""
    length = tf.shape(one_hot)[0]
    pad = tf.abs(shift)
    padded = tf.pad(one_hot, [[pad, pad], [0, 0]])
    return padded[pad - shift: pad - shift + length]


def dataset(data_dir, split="train", batch_size=None, shuffle=False, shuffle_buffer=1024,
            rc=False, shift=0, seed=0, repeat=False, with_index=False):
    """A ``tf.data.Dataset`` of ``(one_hot (L, 4), targets (T, n))`` float32 pairs.

    ``shuffle=False`` reads in ``sequences.bed`` order (for evaluation). With
    ``shuffle=True`` the files and then the records (in a buffer of
    ``shuffle_buffer``) are shuffled, afresh each epoch. ``rc`` reverse-complements
    half of the sequences at random (targets flipped) and ``shift`` moves each
    sequence by a random amount in ``[-shift, shift]``. All randomness follows
    ``seed``: the same seed gives the same stream. ``with_index`` prepends each
    record's row in ``sequences.bed``.
    """
    stats = load_statistics(data_dir)
    files = split_files(data_dir, split)
    if not files:
        raise InputError(f"{data_dir}: no tfrecords/{split}-*.tfr files")
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(
            lambda f: tf.data.TFRecordDataset(f, compression_type=COMPRESSION),
            cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    else:
        ds = tf.data.TFRecordDataset(ds, compression_type=COMPRESSION)
    if repeat:
        ds = ds.repeat()
    parse = _parser(stats, with_index)
    if rc or shift:
        seed_t = tf.constant(seed, tf.int64)

        def augment(i, serialized):
            out = parse(serialized)
            one_hot, targets = out[-2], out[-1]
            if shift:
                k = tf.random.stateless_uniform([], seed=tf.stack([seed_t, i]), minval=-shift,
                                                maxval=shift + 1, dtype=tf.int32)
                one_hot = shift_sequence(one_hot, k)
            if rc:
                flip = tf.random.stateless_uniform([], seed=tf.stack([seed_t + 7919, i])) < 0.5
                one_hot, targets = tf.cond(flip, lambda: reverse_complement(one_hot, targets),
                                           lambda: (one_hot, targets))
            return (out[0], one_hot, targets) if with_index else (one_hot, targets)

        ds = ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)


def read_records(data_dir, split):
    """Yield ``(index, codes (L,) uint8, targets (T, n) float32)`` in file order, as numpy."""
    stats = load_statistics(data_dir)
    dtype = np.dtype(stats.get("target_dtype", "float16"))
    shape = (int(stats["target_length"]), int(stats["num_targets"]))
    for path in split_files(data_dir, split):
        for raw in tf.data.TFRecordDataset(path, compression_type=COMPRESSION).as_numpy_iterator():
            ex = tf.train.Example.FromString(raw).features.feature
            codes = np.frombuffer(ex["sequence"].bytes_list.value[0], dtype=np.uint8)
            targets = np.frombuffer(ex["target"].bytes_list.value[0], dtype=dtype).reshape(shape)
            yield int(ex["index"].int64_list.value[0]), codes, targets.astype(np.float32)
