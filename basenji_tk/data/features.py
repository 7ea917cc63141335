"""The feature plan: which named features a dataset builder writes, and each window's values.

A plan is a JSON file (the tiling and regions builders share it)::

    {"sequence": true,
     "inputs": {"groseq": {"tracks": "groseq.txt", "resolution": 50, "transform": "log1p", "strands": true}},
     "labels": {"profile": {"tracks": "atac.txt", "resolution": 1, "crop": 250, "label_type": "profile"},
                "total":   {"tracks": "atac.txt", "total": true, "crop": 250, "quantile_normalize": true},
                "marks":   {"tracks": "marks.txt", "resolution": 50, "crop": 50, "smooth_sigma": 10},
                "open":    {"tracks": "peaks.txt", "resolution": 200, "crop": 200, "binarize": 0.5}},
     "weight": null}

``tracks`` is a targets table (:func:`basenji_tk.data.targets.read_targets`; BigWig or BED; sum_stat,
clip, scale per row), read relative to the plan's folder. Inputs and labels are both binned
tracks (:func:`basenji_tk.data.targets.target_matrix`); each is then, in this order:

1. **smoothed** (``smooth_sigma``, in bins; :func:`labels.gaussian_smooth`). The window is read
   with :func:`labels.smooth_radius` extra bins each side and those are cropped off again, so a
   smoothed value is the one of the whole chromosome smoothed; only beyond a chromosome's ends
   does the filter see zeros;
2. **cropped** to the central ``crop`` bp (default: the whole window);
3. **summed** over that span (``total: true``: shape ``(targets,)``, no resolution; binned at
   ``resolution``, default 1 bp, before summing; the table's clip and scale act per bin);
4. **binarised** (``binarize: t``: 1 where value > t);
5. **log** transformed (labels: ``log: true`` is ``log(x + 1)``, a number is the pseudocount;
   inputs: ``transform: "log1p"``), then multiplied by ``scale`` (default 1);
6. **quantile normalised** across the targets over all records (``quantile_normalize: true``,
   labels only): this needs every record first, so builders run two passes
   (:meth:`FeaturePlan.quantile_pass`, then :meth:`FeaturePlan.values` for the rest).

``strands: true`` (inputs) reads the tracks table's rows as (+, -) pairs: the last axis is
``[+, -, +, -, ...]`` and a reverse complement swaps each pair.
"""

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.data import labels as lb
from basenji_tk.data import targets as tg
from basenji_tk.errors import InputError

PLAN_KEYS = ("sequence", "inputs", "labels", "weight")
COMMON_KEYS = ("tracks", "resolution", "crop", "smooth_sigma", "binarize", "scale", "dtype")
INPUT_KEYS = COMMON_KEYS + ("transform", "strands")
LABEL_KEYS = COMMON_KEYS + ("label_type", "total", "log", "quantile_normalize")
LABEL_TYPES = ("binary", "regression", "profile", "count")
TRANSFORMS = ("none", "log1p")
DTYPES = ("float16", "float32")
RESERVED = ("sequence", "weight", "index")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FLOAT16_MAX = float(np.finfo(np.float16).max)

log = logging.getLogger("basenji_tk")


@dataclass
class Group:
    """One input (kind ``signal``) or label of the plan, checked."""

    name: str
    kind: str  # "signal" or "label"
    tracks_file: str
    targets: list
    resolution: int | None = None  # None: the plan did not say (totals default to 1 bp)
    crop: int | None = None  # bp, centred; None: the whole window
    smooth_sigma: float = 0.0
    binarize: float | None = None
    log: float | None = None  # pseudocount, or None for no log
    scale: float = 1.0
    total: bool = False
    quantile: bool = False
    strands: bool = False
    label_type: str | None = None
    dtype: str = "float32"
    where: str = ""
    tracks: list = field(default_factory=list, repr=False)  # open Track objects
    overflow: int = 0  # float16 values clipped to its maximum

    @property
    def bin_bp(self) -> int:
        return self.resolution or 1

    def span(self, window_length: int) -> int:
        return self.crop or window_length

    def shape(self, window_length: int) -> tuple:
        if self.total:
            return (len(self.targets),)
        return (self.span(window_length) // self.bin_bp, len(self.targets))

    def meta(self) -> dict:
        out = {"tracks": os.path.abspath(self.tracks_file), "crop_bp": self.crop}
        for key, value in (("smooth_sigma", self.smooth_sigma or None), ("binarize", self.binarize),
                           ("log_pseudocount", self.log), ("scale", None if self.scale == 1 else self.scale),
                           ("total", self.total or None), ("quantile_normalize", self.quantile or None)):
            if value is not None:
                out[key] = value
        if self.smooth_sigma:
            out["smooth"] = f"gaussian_filter1d sigma {self.smooth_sigma:g} bins, truncate 4, read past the window"
        return out


# ----------------------------------------------------------------------------- checking
def _kind_error(at, key, expected, value):
    return InputError(f"{at}: key '{key}' expected {expected}, got {json.dumps(value)}")


def _int(at, key, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _kind_error(at, key, f"an integer >= {minimum}", value)
    return value


def _number(at, key, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _kind_error(at, key, "a number", value)
    if positive and value <= 0:
        raise _kind_error(at, key, "a number > 0", value)
    return float(value)


def _bool(at, key, value):
    if not isinstance(value, bool):
        raise _kind_error(at, key, "true or false", value)
    return value


def _group(path, section, name, spec, base) -> Group:
    at = f"{path}: {section}.{name}"
    kind = "signal" if section == "inputs" else "label"
    if not isinstance(spec, dict):
        raise InputError(f"{at}: expected an object with 'tracks', got {json.dumps(spec)}")
    allowed = INPUT_KEYS if kind == "signal" else LABEL_KEYS
    for key in spec:
        if key not in allowed:
            raise InputError(f"{at}: unknown key '{key}'; allowed: {', '.join(allowed)}")
    if "tracks" not in spec:
        raise InputError(f"{at}: lacks 'tracks' (a targets table, relative to the plan's folder)")
    tracks = spec["tracks"]
    if not isinstance(tracks, str) or not tracks:
        raise _kind_error(at, "tracks", "a targets table path", tracks)
    tracks = tracks if os.path.isabs(tracks) else os.path.join(base, tracks)
    g = Group(name=name, kind=kind, tracks_file=tracks, targets=tg.read_targets(tracks), where=at)
    if "resolution" in spec:
        g.resolution = _int(at, "resolution", spec["resolution"])
    if spec.get("crop") is not None:
        g.crop = _int(at, "crop", spec["crop"])
        if g.crop % g.bin_bp:
            raise InputError(f"{at}: crop {g.crop} bp is not a multiple of the resolution {g.bin_bp}")
    if spec.get("smooth_sigma") is not None:
        g.smooth_sigma = _number(at, "smooth_sigma", spec["smooth_sigma"])
        if g.smooth_sigma < 0:
            raise _kind_error(at, "smooth_sigma", "a number >= 0 (bins)", spec["smooth_sigma"])
    if spec.get("binarize") is not None:
        g.binarize = _number(at, "binarize", spec["binarize"])
    if "scale" in spec:
        g.scale = _number(at, "scale", spec["scale"], positive=True)
    if "dtype" in spec:
        if spec["dtype"] not in DTYPES:
            raise _kind_error(at, "dtype", " or ".join(DTYPES), spec["dtype"])
        g.dtype = spec["dtype"]
    if kind == "signal":
        transform = spec.get("transform", "none")
        if transform not in TRANSFORMS:
            raise _kind_error(at, "transform", " or ".join(TRANSFORMS), transform)
        g.log = 1.0 if transform == "log1p" else None
        g.strands = _bool(at, "strands", spec.get("strands", False))
        if g.strands and len(g.targets) % 2:
            raise InputError(f"{at}: strands is true but {tracks} has {len(g.targets)} rows; "
                             "expected (+, -) pairs, one row per strand")
        if g.resolution is None:
            raise InputError(f"{at}: lacks 'resolution' (bp per bin of the input signal)")
        return g
    g.total = _bool(at, "total", spec.get("total", False))
    g.quantile = _bool(at, "quantile_normalize", spec.get("quantile_normalize", False))
    log = spec.get("log", False)
    if log is True:
        g.log = 1.0
    elif log is not False and log is not None:
        g.log = _number(at, "log", log, positive=True)
    if g.resolution is None and not g.total:
        raise InputError(f"{at}: lacks 'resolution' (bp per label bin; not needed with total: true)")
    default = "binary" if g.binarize is not None else "regression"
    g.label_type = spec.get("label_type", default)
    if g.label_type not in LABEL_TYPES:
        raise _kind_error(at, "label_type", " or ".join(LABEL_TYPES), g.label_type)
    return g


@dataclass
class FeaturePlan:
    """A checked plan: ``sequence`` (bool) and the input and label groups, in plan order."""

    path: str
    sequence: bool
    groups: list
    window_length: int | None = None

    @property
    def quantile_names(self) -> list:
        return [g.name for g in self.groups if g.quantile]

    def group(self, name) -> Group:
        return next(g for g in self.groups if g.name == name)

    # ------------------------------------------------------------------- window
    def check_window(self, window_length: int):
        """Check every group against the window length (bp); fixes ``window_length``."""
        for g in self.groups:
            if window_length % g.bin_bp:
                raise InputError(f"{g.where}: the window length {window_length} bp is not a multiple of "
                                 f"the resolution {g.bin_bp}")
            if g.crop is not None and g.crop > window_length:
                raise InputError(f"{g.where}: crop {g.crop} bp is longer than the window ({window_length} bp)")
        self.window_length = window_length
        return self

    def features(self, sequence_dtype="uint8") -> list:
        """``records.Feature`` objects, in the order: sequence, inputs, labels."""
        from basenji_tk.data import records

        L = self.window_length
        out = []
        if self.sequence:
            out.append(records.Feature(name="sequence", kind="sequence", shape=(L, 4), dtype=sequence_dtype,
                                       resolution=1))
        for g in self.groups:
            out.append(records.Feature(
                name=g.name, kind=g.kind, shape=g.shape(L), dtype=g.dtype,
                resolution=None if g.total else g.bin_bp, names=tuple(t.identifier for t in g.targets),
                label_type=g.label_type, strands=g.strands, meta=g.meta()))
        return out

    # ------------------------------------------------------------------- tracks
    def open(self, chrom_sizes: dict, needed):
        """Open every group's tracks for the genome ``{chrom: size}``; ``needed`` chromosomes must be in each."""
        self.chrom_sizes = dict(chrom_sizes)
        for g in self.groups:
            g.tracks = [tg.open_track(t, list(chrom_sizes), needed) for t in g.targets]
        return self

    def close(self):
        for g in self.groups:
            for t in g.tracks:
                t.close()
            g.tracks = []

    def track_counts(self) -> dict:
        """``{group: {target: {nan, no_data, inf}}}`` base values read as 0 so far."""
        out = {}
        for g in self.groups:
            out[g.name] = {t.target.identifier: {"nan": t.nan_count, "no_data": t.no_data_count,
                                                 "inf": t.inf_count} for t in g.tracks}
            if g.overflow:
                out[g.name]["float16_overflow"] = g.overflow
                log.warning(f"warning: {g.where}: {g.overflow} values above the float16 maximum were clipped "
                            "to it; set 'dtype': 'float32' or a 'clip' in the tracks table")
        return out

    def _binned(self, g: Group, chrom, lo, hi) -> np.ndarray:
        """``(bins, targets)`` of ``[lo, hi)`` at ``g.bin_bp``; bases off the chromosome are 0."""
        size = self.chrom_sizes[chrom]
        if lo >= 0 and hi <= size:
            return tg.target_matrix(g.tracks, chrom, lo, hi, g.bin_bp)
        a, b = max(lo, 0), min(hi, size)
        cols = []
        for t in g.tracks:
            v = np.zeros(hi - lo, dtype=np.float32)
            if b > a:
                v[a - lo:b - lo] = t.values(chrom, a, b)
            v = t._clean_inf(v)
            x = tg.bin_values(v, g.bin_bp, t.target.sum_stat)
            cols.append(tg.transform(x, t.target.scale, t.target.clip_soft, t.target.clip))
        return np.stack(cols, axis=1)

    def group_values(self, g: Group, chrom, start, end) -> np.ndarray:
        """One group's values over the window ``[start, end)``, shaped ``g.shape(end - start)``."""
        L, res = end - start, g.bin_bp
        span = g.span(L)
        offset = ((L - span) // res) // 2 * res  # labels.crop_center's choice, in bp
        pad = lb.smooth_radius(g.smooth_sigma) * res if g.smooth_sigma else 0
        lo, hi = start + offset - pad, start + offset + span + pad
        x = self._binned(g, chrom, lo, hi)
        if g.smooth_sigma:
            x = lb.gaussian_smooth(x, g.smooth_sigma)
            x = x[pad // res: x.shape[0] - pad // res]
        if g.total:
            x = lb.total(x)
        if g.binarize is not None:
            x = lb.binarize(x, g.binarize)
        if g.log is not None:
            x = lb.log_transform(x, g.log)
        if g.scale != 1:
            x = x * np.float32(g.scale)
        if g.dtype == "float16":
            big = np.abs(x) > FLOAT16_MAX
            if big.any():
                g.overflow += int(big.sum())
                x = np.clip(x, -FLOAT16_MAX, FLOAT16_MAX)
        return x.astype(np.float32, copy=False)

    def values(self, chrom, start, end, names=None) -> dict:
        """``{name: array}`` for the window (every group, or those in ``names``), before quantile
        normalisation; the sequence is the builder's to add."""
        return {g.name: self.group_values(g, chrom, start, end) for g in self.groups
                if names is None or g.name in names}

    def quantile_pass(self, windows, progress=False) -> dict:
        """First pass: ``{name: (records, *shape)}`` float32, quantile normalised across targets, for
        the groups with ``quantile_normalize``; ``windows`` is a list of ``(chrom, start, end)``."""
        names = self.quantile_names
        if not names:
            return {}
        from tqdm import tqdm

        stacked = {n: [] for n in names}
        for chrom, start, end in tqdm(windows, desc="quantile pass", unit="seq", disable=not progress):
            for n, v in self.values(chrom, start, end, names).items():
                stacked[n].append(v)
        return {n: lb.quantile_normalize_positions(np.stack(v)) for n, v in stacked.items()}


def load_plan(path) -> FeaturePlan:
    """Read and check a plan JSON; every problem is one :class:`InputError` naming the file and key."""
    path = str(path)
    if not os.path.exists(path):
        raise InputError(f"{path}: feature plan not found")
    try:
        with open(path) as fh:
            spec = json.load(fh)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    return plan_from_dict(spec, path)


def plan_from_dict(spec, path="<plan>", base=None) -> FeaturePlan:
    base = base or os.path.dirname(os.path.abspath(path))
    if not isinstance(spec, dict):
        raise InputError(f"{path}: expected a JSON object with keys {', '.join(PLAN_KEYS)}")
    for key in spec:
        if key not in PLAN_KEYS:
            raise InputError(f"{path}: unknown key '{key}'; allowed: {', '.join(PLAN_KEYS)}")
    sequence = _bool(path, "sequence", spec.get("sequence", False))
    if spec.get("weight") is not None:
        raise InputError(f"{path}: key 'weight' must be null for genome windows (per-record weights come "
                         f"from the table builder)")
    groups, seen = [], {}
    for section in ("inputs", "labels"):
        part = spec.get(section) or {}
        if not isinstance(part, dict):
            raise _kind_error(path, section, "an object of named features", part)
        for name, g in part.items():
            if not isinstance(name, str) or not _NAME.match(name):
                raise InputError(f"{path}: {section}.{name}: a feature name is letters, digits and _ "
                                 "(not starting with a digit)")
            if name in RESERVED:
                raise InputError(f"{path}: {section}.{name}: the name '{name}' is reserved; choose another")
            if name in seen:
                raise InputError(f"{path}: {section}.{name}: the name is also used in {seen[name]}")
            seen[name] = section
            groups.append(_group(path, section, name, g, base))
    if not groups and not sequence:
        raise InputError(f"{path}: the plan has no features (no sequence, inputs or labels)")
    if not any(g.kind == "label" for g in groups):
        raise InputError(f"{path}: the plan has no labels; give at least one under 'labels'")
    return FeaturePlan(path=path, sequence=sequence, groups=groups)


def old_plan(targets_file, pool_width, target_dtype="float16") -> FeaturePlan:
    """The plan today's ``make_targets.py FASTA TARGETS`` call means: sequence + label ``target``."""
    spec = {"sequence": True, "labels": {"target": {"tracks": os.path.abspath(str(targets_file)),
                                                    "resolution": pool_width, "dtype": target_dtype}}}
    return plan_from_dict(spec, str(targets_file))


def signal_plan(feature, where: str) -> FeaturePlan:
    """The plan that reads a dataset's signal input ``feature`` again for new windows (prediction),
    from what its ``meta`` recorded: the same tracks table, resolution, crop, smoothing, binarising,
    transform and scale. ``where`` names the file the feature came from in errors."""
    meta = feature.meta or {}
    if feature.kind != "signal" or not meta.get("tracks"):
        raise InputError(f"{where}: feature '{feature.name}' names no tracks table to read it from")
    spec = {"tracks": meta["tracks"], "resolution": feature.resolution, "strands": bool(feature.strands),
            "dtype": feature.dtype if feature.dtype in DTYPES else "float32"}
    for key, name in (("crop_bp", "crop"), ("smooth_sigma", "smooth_sigma"), ("binarize", "binarize"),
                      ("scale", "scale")):
        if meta.get(key) is not None:
            spec[name] = meta[key]
    pseudocount = meta.get("log_pseudocount")
    if pseudocount is not None:
        if float(pseudocount) != 1.0:
            raise InputError(f"{where}: feature '{feature.name}' was log transformed with pseudocount {pseudocount}; "
                             "signal inputs know only log1p")
        spec["transform"] = "log1p"
    group = _group(where, "inputs", feature.name, spec, os.path.dirname(os.path.abspath(meta["tracks"])))
    return FeaturePlan(path=where, sequence=False, groups=[group])
