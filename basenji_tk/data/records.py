"""Datasets as named features: the one contract every builder writes and ``train.py`` reads.

A dataset is a folder::

    statistics.json        what each record holds ("features"), split counts, provenance
    sequences.bed          one row per record: chrom, start, end, split (and a name, when given)
    tfrecords/{split}-K.tfr  ZLIB-compressed tf.train.Example records

``statistics.json`` says ``"format": "basenji_tk.dataset/2"``, the builder's ``"kind"``
(``tiling``, ``regions``, ``table``, ``pairs``) and ``"features"``: one entry per named
feature with its kind, shape, dtype and resolution (bp per position along axis 0)::

    "sequence": {"kind": "sequence", "shape": [1000, 4], "dtype": "uint8", "resolution": 1}
    "profile":  {"kind": "label", "label_type": "profile", "shape": [250, 3], "dtype": "float32",
                 "resolution": 1, "names": ["a", "b", "c"]}

Kinds: ``sequence`` (stored as uint8 codes A0 C1 G2 T3 N4, read as one-hot ``(L, 4)``
float32), ``signal`` (a positional input, ``(bins, channels)``), ``vector`` (an ``(n,)``
input), ``label`` (what a model predicts; ``label_type`` binary, regression, profile or
count) and ``weight`` (a scalar sample weight per record). ``shape`` is what the model
sees. A record holds each feature as raw bytes under the feature's name, plus ``index``
(its row in ``sequences.bed``).

Datasets written before this contract (``basenji_tk.dataset/1``, from ``make_targets.py``)
have no ``features``: they are read as they are, as ``sequence`` plus a regression label
``target`` of ``(target_length, num_targets)`` at ``pool_width`` bp (nothing is rewritten;
:func:`load_spec` logs once that it read the old format).

This module imports TensorFlow only inside the functions that need it.
"""

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

import numpy as np

from basenji_tk import __version__
from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

FORMAT = "basenji_tk.dataset/2"
OLD_FORMAT = "basenji_tk.dataset/1"
STATISTICS = "statistics.json"
COMPRESSION = "ZLIB"
SPLITS = ("train", "valid", "test")
KINDS = ("sequence", "signal", "vector", "label", "weight")
BUILDERS = ("tiling", "regions", "table", "pairs")
LABEL_TYPES = ("binary", "regression", "profile", "count")
DTYPES = ("uint8", "int32", "float16", "float32")
INPUT_KINDS = ("sequence", "signal", "vector")
FEATURE_KEYS = ("kind", "shape", "dtype", "resolution", "names", "label_type", "strands", "meta")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Feature:
    """One named feature of every record.

    ``shape`` is what a model sees (a sequence is ``(L, 4)`` though stored as ``L`` codes);
    ``resolution`` is bp per position along axis 0 for positional features, else None;
    ``names`` labels the last axis; ``strands`` marks a last axis of (+, -) pairs, which
    reverse complementing swaps."""

    name: str
    kind: str
    shape: tuple
    dtype: str = "float32"
    resolution: int | None = None
    names: tuple = ()
    label_type: str | None = None
    strands: bool = False
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        where = f"feature '{self.name}'"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise InputError(f"{where}: a feature name is letters, digits and _ (not starting with a digit)")
        if self.kind not in KINDS:
            raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        shape = tuple(self.shape)
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n > 0 for n in shape):
            raise InputError(f"{where}: shape must be a list of positive integers, got {list(self.shape)}")
        object.__setattr__(self, "shape", tuple(int(n) for n in shape))
        object.__setattr__(self, "names", tuple(self.names))
        if self.dtype not in DTYPES:
            raise InputError(f"{where}: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.kind == "sequence" and (len(self.shape) != 2 or self.shape[1] != 4 or self.dtype != "uint8"):
            raise InputError(f"{where}: a sequence is shape [length, 4] with dtype uint8, got "
                             f"{list(self.shape)} {self.dtype}")
        if self.kind == "signal" and len(self.shape) != 2:
            raise InputError(f"{where}: a signal is shape [bins, channels], got {list(self.shape)}")
        if self.kind == "vector" and len(self.shape) != 1:
            raise InputError(f"{where}: a vector is shape [n], got {list(self.shape)}")
        if self.kind == "weight" and self.shape:
            raise InputError(f"{where}: a weight is one number per record (shape []), got {list(self.shape)}")
        if self.kind in ("sequence", "signal") and self.resolution is None:
            object.__setattr__(self, "resolution", 1)
        if self.resolution is not None and (not isinstance(self.resolution, int) or self.resolution < 1):
            raise InputError(f"{where}: resolution must be a positive integer (bp per position), "
                             f"got {self.resolution!r}")
        if self.resolution is not None and not self.shape:
            raise InputError(f"{where}: a resolution needs a positional axis (shape is [])")
        if self.kind == "label":
            if self.label_type is None:
                object.__setattr__(self, "label_type", "regression")
            if self.label_type not in LABEL_TYPES:
                raise InputError(f"{where}: label_type must be one of {', '.join(LABEL_TYPES)}, "
                                 f"got {self.label_type!r}")
        elif self.label_type is not None:
            raise InputError(f"{where}: only labels have a label_type")
        if self.names and (not self.shape or len(self.names) != self.shape[-1]):
            raise InputError(f"{where}: {len(self.names)} names for a last axis of "
                             f"{self.shape[-1] if self.shape else 0}")
        if self.strands and (not self.shape or self.shape[-1] % 2):
            raise InputError(f"{where}: strands needs an even last axis of (+, -) pairs, got {list(self.shape)}")

    @property
    def positional(self) -> bool:
        """Whether axis 0 runs along the genome (so reverse complementing flips it)."""
        return self.resolution is not None

    @property
    def stored_shape(self) -> tuple:
        return self.shape[:1] if self.kind == "sequence" else self.shape

    @property
    def span(self) -> int | None:
        """bp covered along axis 0, for positional features."""
        return self.shape[0] * self.resolution if self.positional else None

    def describe(self) -> str:
        """e.g. ``sequence (1000, 4) at 1 bp``, ``profile: profile label (250, 3) at 1 bp``."""
        kind = f"{self.label_type} label" if self.kind == "label" else self.kind
        at = f" at {self.resolution} bp" if self.positional else ""
        return f"{self.name}: {kind} {tuple(self.shape)}{at}"

    def to_json(self) -> dict:
        out = {"kind": self.kind, "shape": list(self.shape), "dtype": self.dtype}
        if self.resolution is not None:
            out["resolution"] = self.resolution
        if self.label_type is not None:
            out["label_type"] = self.label_type
        if self.names:
            out["names"] = list(self.names)
        if self.strands:
            out["strands"] = True
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(cls, name: str, obj, where: str) -> "Feature":
        """A feature from its ``statistics.json`` entry; ``where`` names the file in errors."""
        if not isinstance(obj, dict):
            raise InputError(f"{where}: features.{name} must be an object")
        unknown = [k for k in obj if k not in FEATURE_KEYS]
        if unknown:
            raise InputError(f"{where}: features.{name}: unknown key '{unknown[0]}'; allowed: "
                             f"{', '.join(FEATURE_KEYS)}")
        for key in ("kind", "shape"):
            if key not in obj:
                raise InputError(f"{where}: features.{name}: '{key}' is required")
        if not isinstance(obj["shape"], list):
            raise InputError(f"{where}: features.{name}.shape must be a list, got {json.dumps(obj['shape'])}")
        try:
            return cls(name, obj["kind"], tuple(obj["shape"]), obj.get("dtype", "float32"), obj.get("resolution"),
                       tuple(obj.get("names", ())), obj.get("label_type"), bool(obj.get("strands", False)),
                       dict(obj.get("meta", {})))
        except InputError as err:
            raise InputError(f"{where}: {err}") from None


@dataclass
class DatasetSpec:
    """A dataset folder's contract: ``features`` (name -> :class:`Feature`) and split ``counts``."""

    path: str
    stats: dict
    features: dict
    kind: str
    counts: dict
    view: str = "pairs"  # a pairs dataset's examples: (region, context) pairs, or "regions"

    @property
    def example_features(self) -> dict:
        """What each example yields to a model: the stored features, or for a ``pairs`` dataset
        the features its pipeline makes of a (region, context) pair (or, in the ``regions``
        view, of a region with its labels in the training contexts)."""
        if self.kind == "pairs":
            from basenji_tk.data import pairs

            found = pairs.region_features(self) if self.view == "regions" else pairs.example_features(self)
            return {f.name: f for f in found}
        return self.features

    def feature(self, name: str, what: str) -> Feature:
        """The example feature ``name``; an error naming ``what`` asked for it and what there is."""
        found = self.example_features
        if name not in found:
            raise InputError(f"{what} names feature '{name}', but {self.path} has no such feature "
                             f"(it has: {', '.join(found)})")
        return found[name]


# ----------------------------------------------------------------------------- reading the contract
def load_statistics(data_dir) -> dict:
    """The dataset's ``statistics.json``; an :class:`InputError` if it is missing or broken."""
    path = os.path.join(str(data_dir), STATISTICS)
    if not os.path.exists(path):
        raise InputError(f"{data_dir}: not a dataset folder (no {STATISTICS}); make one with make_targets.py "
                         "or another dataset builder")
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


def split_files(data_dir, split) -> list[str]:
    """The split's record files in write order (``train-2`` before ``train-10``)."""
    folder = os.path.join(str(data_dir), "tfrecords")
    pattern = re.compile(rf"^{re.escape(split)}-(\d+)\.tfr$")
    found = []
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            m = pattern.match(name)
            if m:
                found.append((int(m.group(1)), os.path.join(folder, name)))
    return [p for _, p in sorted(found)]


def old_features(stats: dict, where: str) -> dict:
    """The features of a ``basenji_tk.dataset/1`` folder: ``sequence`` and the ``target`` matrix."""
    for key in ("seq_length", "target_length", "num_targets"):
        if not isinstance(stats.get(key), int):
            raise InputError(f"{where}: neither 'features' nor '{key}': not a dataset statistics.json")
    pool = stats.get("pool_width") or stats["seq_length"] // stats["target_length"]
    ids = stats.get("target_ids") or ()
    return {
        "sequence": Feature("sequence", "sequence", (stats["seq_length"], 4), "uint8", 1),
        "target": Feature("target", "label", (stats["target_length"], stats["num_targets"]),
                          stats.get("target_dtype", "float16"), int(pool),
                          tuple(ids) if len(ids) == stats["num_targets"] else ()),
    }


_SAID_OLD = set()


def load_spec(data_dir) -> DatasetSpec:
    """Read and check a dataset folder's contract (either format)."""
    data_dir = str(data_dir)
    return spec_from_statistics(load_statistics(data_dir), data_dir, os.path.join(data_dir, STATISTICS))


def spec_from_statistics(stats: dict, data_dir, where: str, note_old: bool = True) -> DatasetSpec:
    """The contract of the dataset folder ``data_dir`` from its statistics ``stats`` (read from
    ``where``, e.g. the copy a model folder keeps); the folder itself is not read. ``note_old``:
    log once that an old-format folder is read as it is."""
    data_dir = str(data_dir)
    if "features" in stats:
        if not isinstance(stats["features"], dict) or not stats["features"]:
            raise InputError(f"{where}: 'features' must be an object with at least one feature")
        features = {name: Feature.from_json(name, obj, where) for name, obj in stats["features"].items()}
        kind = stats.get("kind", "tiling")
        if kind not in BUILDERS:
            raise InputError(f"{where}: kind must be one of {', '.join(BUILDERS)}, got {kind!r}")
    else:
        features, kind = old_features(stats, where), "tiling"
        if note_old and os.path.abspath(data_dir) not in _SAID_OLD:
            _SAID_OLD.add(os.path.abspath(data_dir))
            log.info(f"{data_dir}: {OLD_FORMAT} dataset (no 'features' in {STATISTICS}); read as it is, "
                     "as features 'sequence' + 'target'")
    counts = {s: int(stats.get("counts", {}).get(s, stats.get(f"{s}_seqs", 0))) for s in SPLITS}
    return DatasetSpec(data_dir, stats, features, kind, counts)


# ----------------------------------------------------------------------------- writing
def _check_value(feature: Feature, value, where: str) -> np.ndarray:
    """``value`` as the feature's stored dtype and shape; an error naming the feature otherwise."""
    arr = np.asarray(value)
    if arr.shape != feature.stored_shape:
        want = "codes of shape" if feature.kind == "sequence" else "shape"
        raise InputError(f"{where}: feature '{feature.name}' expected {want} {list(feature.stored_shape)}, "
                         f"got {list(arr.shape)}")
    if feature.dtype.startswith("float"):
        if not np.isfinite(arr).all():
            raise InputError(f"{where}: feature '{feature.name}' has {int((~np.isfinite(arr)).sum())} "
                             "NaN or infinite values")
        big = np.finfo(feature.dtype).max
        if feature.dtype == "float16" and np.abs(arr).max(initial=0) > big:
            raise InputError(f"{where}: feature '{feature.name}' has values above the float16 maximum "
                             f"{big:g}; store it as float32")
    return np.ascontiguousarray(arr, dtype=feature.dtype)


def example_bytes(features, index: int, values: dict, where: str = "record") -> bytes:
    """One record: each feature's bytes under its name, and ``index``."""
    import tensorflow as tf

    missing = [f.name for f in features if f.name not in values]
    if missing:
        raise InputError(f"{where}: no value for feature '{missing[0]}'")
    extra = [k for k in values if k not in {f.name for f in features}]
    if extra:
        raise InputError(f"{where}: value '{extra[0]}' is not a feature of this dataset")
    out = {f.name: tf.train.Feature(bytes_list=tf.train.BytesList(
        value=[_check_value(f, values[f.name], where).tobytes()])) for f in features}
    out["index"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)]))
    # deterministic: protobuf maps otherwise serialise in hash order, and files would differ run to run
    return tf.train.Example(features=tf.train.Features(feature=out)).SerializeToString(deterministic=True)


def private_temp_dir(out_dir: str) -> str:
    """An empty folder beside ``out_dir`` to build it in, with the permissions of a plain mkdir."""
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.tmp-", dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the dataset should not be
    return tmp


def replace_dir(tmp: str, out_dir: str) -> None:
    """Move the finished ``tmp`` folder to ``out_dir``, replacing what was there last."""
    if os.path.exists(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
        os.rename(out_dir, os.path.join(old, "d"))
        os.rename(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out_dir)


class DatasetWriter:
    """Writes a dataset folder: records go to a temporary folder beside ``out_dir``, which
    :meth:`finish` renames into place; an error inside the ``with`` block removes it.

    ``add(split, values, bed)`` takes one array per feature (a sequence as ``dna.encode``
    codes) and the record's ``(chrom, start, end[, name])``. Extra files a builder wants in
    the folder (a context table) go to :meth:`path` before :meth:`finish`. The caller holds
    :func:`basenji_tk.files.claim` on ``out_dir``."""

    def __init__(self, out_dir, features, kind: str, records_per_file: int = 256):
        if kind not in BUILDERS:
            raise ValueError(f"kind must be one of {BUILDERS}")
        names = [f.name for f in features]
        if len(set(names)) != len(names) or "index" in names:
            raise InputError(f"feature names must be unique and not 'index': {', '.join(names)}")
        from basenji_tk.data import tfrecords as tfr

        self.out_dir = os.path.abspath(str(out_dir))
        self.features, self.kind, self.records_per_file = list(features), kind, records_per_file
        self.counts = {s: 0 for s in SPLITS}
        self.tmp = private_temp_dir(self.out_dir)
        os.makedirs(os.path.join(self.tmp, "tfrecords"))
        self._bed = open(os.path.join(self.tmp, "sequences.bed"), "w")
        self._writer = tfr.BackgroundWriter(os.path.join(self.tmp, "tfrecords"), SPLITS, records_per_file)
        self._index = 0
        self.done = False

    def path(self, name: str) -> str:
        """Where a builder's extra file ``name`` goes inside the dataset being written."""
        return os.path.join(self.tmp, name)

    def add(self, split: str, values: dict, bed: tuple) -> int:
        """Write one record; returns its index (row of ``sequences.bed``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        where = ":".join(map(str, bed[:3])) if len(bed) >= 3 else f"record {self._index}"
        self._writer.write(split, example_bytes(self.features, self._index, values, where))
        fields = [str(x) for x in bed[:3]] + [split] + [str(x) for x in bed[3:]]
        self._bed.write("\t".join(fields) + "\n")
        self.counts[split] += 1
        self._index += 1
        return self._index - 1

    def finish(self, info: dict | None = None) -> dict:
        """Close the records, write ``statistics.json`` (the contract plus ``info``) and rename the
        folder into place; returns the statistics."""
        self._bed.close()
        self._writer.close()
        stats = {
            "format": FORMAT,
            "kind": self.kind,
            "created_by": f"basenji_tk {__version__}",
            "features": {f.name: f.to_json() for f in self.features},
            "counts": dict(self.counts),
            **{f"{s}_seqs": n for s, n in self.counts.items()},
            "records_per_file": self.records_per_file,
        }
        seq = [f for f in self.features if f.kind == "sequence"]
        if seq:
            stats["seq_length"] = seq[0].shape[0]
        for key, value in (info or {}).items():
            if key in stats and key not in ("seq_length",):
                raise ValueError(f"statistics key {key!r} is the writer's")
            stats[key] = value
        with open(os.path.join(self.tmp, STATISTICS), "w") as fh:
            json.dump(stats, fh, indent=2)
            fh.write("\n")
        replace_dir(self.tmp, self.out_dir)
        self.done = True
        log.info(f"wrote {self.out_dir}: {self._index:,} records "
                 f"(train {self.counts['train']:,}, valid {self.counts['valid']:,}, test {self.counts['test']:,})")
        return stats

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if not self.done:
            self._bed.close()
            try:
                self._writer.close()
            except BaseException:
                if exc_type is None:
                    raise
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)
            if exc_type is None:
                raise RuntimeError("DatasetWriter closed without finish()")


# ----------------------------------------------------------------------------- reading records
def read_records(data_dir, split):
    """Yield one dict per record of ``split``, in file order, as numpy: each stored feature
    (a sequence as ``(L,)`` uint8 codes) and ``index``."""
    import tensorflow as tf

    spec = load_spec(data_dir)
    for path in split_files(data_dir, split):
        for raw in tf.data.TFRecordDataset(path, compression_type=COMPRESSION).as_numpy_iterator():
            ex = tf.train.Example.FromString(raw).features.feature
            out = {"index": int(ex["index"].int64_list.value[0])}
            for f in spec.features.values():
                out[f.name] = np.frombuffer(ex[f.name].bytes_list.value[0], dtype=f.dtype).reshape(f.stored_shape)
            yield out


def parser(spec: DatasetSpec, with_index: bool = False):
    """A function from a serialised record to ``{name: tensor}``: float32 for every feature,
    a sequence as one-hot ``(L, 4)`` (N all zeros)."""
    import tensorflow as tf

    keys = {f.name: tf.io.FixedLenFeature([], tf.string) for f in spec.features.values()}
    keys["index"] = tf.io.FixedLenFeature([], tf.int64)
    features = list(spec.features.values())

    def parse(serialized):
        ex = tf.io.parse_single_example(serialized, keys)
        out = {}
        for f in features:
            raw = tf.io.decode_raw(ex[f.name], tf.dtypes.as_dtype(f.dtype))
            if f.kind == "sequence":
                x = tf.ensure_shape(tf.one_hot(tf.cast(raw, tf.int32), 4, dtype=tf.float32), f.shape)
            else:
                x = tf.reshape(tf.cast(raw, tf.float32), f.shape)
            out[f.name] = x
        if with_index:
            out["index"] = ex["index"]
        return out

    return parse


def reverse_complement(example: dict, features: dict) -> dict:
    """Reverse complement one example: a sequence flips both axes, other positional features
    flip along positions, and (+, -) strand pairs swap; vectors, scalars and weights stay."""
    import tensorflow as tf

    out = dict(example)
    for name, f in features.items():
        if name not in out or not f.positional:
            continue
        x = out[name]
        if f.kind == "sequence":
            x = tf.reverse(x, axis=[0, 1])
        else:
            x = tf.reverse(x, axis=[0])
            if f.strands:
                shape = tf.shape(x)
                x = tf.reshape(tf.reverse(tf.reshape(x, [shape[0], -1, 2]), axis=[2]), shape)
        out[name] = x
    return out


def raw_dataset(spec: DatasetSpec, split: str, shuffle=False, shuffle_buffer=1024, seed=0, repeat=False,
                with_index=False):
    """Parsed records of one split (no augmentation, no batching), files and records shuffled
    with ``seed`` when ``shuffle``."""
    import tensorflow as tf

    files = split_files(spec.path, split)
    if not files:
        raise InputError(f"{spec.path}: no tfrecords/{split}-*.tfr files")
    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        ds = ds.interleave(lambda f: tf.data.TFRecordDataset(f, compression_type=COMPRESSION),
                           cycle_length=min(4, len(files)), num_parallel_calls=tf.data.AUTOTUNE,
                           deterministic=True)
        ds = ds.shuffle(shuffle_buffer, seed=seed + 1, reshuffle_each_iteration=True)
    else:
        ds = tf.data.TFRecordDataset(ds, compression_type=COMPRESSION)
    if repeat:
        ds = ds.repeat()
    return ds.map(parser(spec, with_index), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def augment(ds, features: dict, rc: bool = False, shift: int = 0, seed: int = 0):
    """Random reverse complement (half the examples) and shift of the sequence by up to
    ``shift`` bp either way (N-filled; labels stay), both from ``(seed, position in stream)``."""
    import tensorflow as tf

    from basenji_tk.data.tfrecords import shift_sequence

    if not rc and not shift:
        return ds
    seqs = [n for n, f in features.items() if f.kind == "sequence"]
    if shift and not seqs:
        raise InputError("train.shift moves the DNA sequence, but this dataset has no sequence feature")
    seed_t = tf.constant(seed, tf.int64)

    def one(i, ex):
        if shift:
            k = tf.random.stateless_uniform([], seed=tf.stack([seed_t, i]), minval=-shift, maxval=shift + 1,
                                            dtype=tf.int32)
            ex = {**ex, **{n: shift_sequence(ex[n], k) for n in seqs}}
        if rc:
            flip = tf.random.stateless_uniform([], seed=tf.stack([seed_t + 7919, i])) < 0.5
            ex = tf.cond(flip, lambda: reverse_complement(ex, features), lambda: dict(ex))
        return ex

    return ds.enumerate().map(one, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def dataset(data_dir, split="train", batch_size=None, shuffle=False, shuffle_buffer=1024, rc=False, shift=0,
            seed=0, repeat=False, with_index=False, fold=None, view="pairs"):
    """A ``tf.data.Dataset`` of example dicts ``{feature name: float32 tensor}``.

    ``shuffle=False`` reads in ``sequences.bed`` order. ``rc``/``shift`` augment at random
    (:func:`augment`); all randomness follows ``seed``. A ``pairs`` dataset yields its
    (region, context) examples (:func:`basenji_tk.data.pairs.expand`; ``fold`` picks its context fold),
    or with ``view="regions"`` its regions with their training contexts' labels
    (:func:`basenji_tk.data.pairs.regions_view`)."""
    import tensorflow as tf

    spec = load_spec(data_dir)
    spec.view = view
    if spec.kind == "pairs":
        from basenji_tk.data import pairs

        make = pairs.regions_view if view == "regions" else pairs.expand
        ds = make(spec, split, shuffle=shuffle, shuffle_buffer=shuffle_buffer, seed=seed, repeat=repeat,
                  with_index=with_index, fold=fold)
    else:
        ds = raw_dataset(spec, split, shuffle, shuffle_buffer, seed, repeat, with_index)
    ds = augment(ds, spec.example_features, rc, shift, seed)
    if batch_size:
        ds = ds.batch(batch_size, drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)
