"""The search space: which values of a params.json a search tunes, and how GPyOpt sees them.

A *domain* names what to tune by its path in params.json::

    {"model.trunk[0].filters": {"type": "discrete", "values": [64, 128, 256]},
     "train.learning_rate":    {"type": "continuous", "range": [1e-4, 1e-2], "log": true},
     "model.trunk[2].dropout": {"type": "continuous", "range": [0.0, 0.5]},
     "train.optimizer":        {"type": "categorical", "values": ["adam", "sgd"]}}

Valid paths are ``train.<key>`` for every key of :data:`basenji_tk.model.params.TRAIN`,
``model.<key>`` for the scalar model keys, and ``model.trunk[i].<arg>`` /
``model.head[i].<arg>`` for every registered argument of block ``i``'s
function (:data:`basenji_tk.model.blocks.BLOCKS`), set in params.json or not. Every
candidate value (both ends of a range, every listed value) is checked by putting
it into params.json and checking that, so a wrong type or choice is an error
before anything runs. A continuous dimension of an integer argument (filters) is
rounded. ``"log": true`` (continuous or discrete, all values > 0) makes GPyOpt
search log10 of the value.
"""

import difflib
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from basenji_tk.errors import InputError

TYPES = ("continuous", "discrete", "categorical")
PATH_RE = re.compile(r"^(train|model)\.(\w+)(?:\[(\d+)\]\.(\w+))?$")


@dataclass
class Dim:
    """One tuned parameter. ``values``: the choices (discrete, categorical); ``bounds``: (lo, hi) (continuous)."""

    path: str
    type: str
    values: list = field(default_factory=list)
    bounds: tuple = ()
    log: bool = False
    integer: bool = False  # a continuous dimension of an integer argument is rounded

    def _scale(self) -> tuple:
        """(low, high) of the raw coordinate (log10 for log dims) that maps to [0, 1]."""
        raw = self.bounds if self.type == "continuous" else (min(self.values), max(self.values))
        lo, hi = (math.log10(v) if self.log else float(v) for v in raw)
        return lo, (hi if hi > lo else lo + 1.0)

    def _enc(self, v) -> float:
        lo, hi = self._scale()
        return ((math.log10(v) if self.log else float(v)) - lo) / (hi - lo)

    def gpyopt(self) -> dict:
        """This dimension in GPyOpt's search space: continuous and discrete scaled to [0, 1] (in log10 for
        log dims) so that one kernel length scale fits all; categories as indices (GPyOpt one-hot encodes them)."""
        if self.type == "continuous":
            dom = (0.0, 1.0)
        elif self.type == "discrete":
            dom = tuple(self._enc(v) for v in self.values)
        else:
            dom = tuple(range(len(self.values)))
        return {"name": self.path, "type": self.type, "domain": dom}

    def encode(self, value) -> float:
        """A parameter value -> its coordinate in GPyOpt's space."""
        if self.type == "categorical":
            return float(self.values.index(value))
        return self._enc(value)

    def decode(self, x: float):
        """A coordinate in GPyOpt's space -> the parameter value (nearest choice for discrete/categorical)."""
        if self.type == "categorical":
            return self.values[int(np.clip(round(float(x)), 0, len(self.values) - 1))]
        if self.type == "discrete":
            return self.values[int(np.argmin([abs(self._enc(v) - float(x)) for v in self.values]))]
        lo, hi = self._scale()
        t = lo + float(np.clip(x, 0.0, 1.0)) * (hi - lo)
        v = float(min(max(10 ** t if self.log else t, self.bounds[0]), self.bounds[1]))
        return int(round(v)) if self.integer else v

    def sample(self, rng: np.random.Generator):
        """A uniform random value (uniform in log10 for log dims)."""
        if self.type != "continuous":
            return self.values[int(rng.integers(len(self.values)))]
        return self.decode(rng.uniform(0.0, 1.0))

    def cell(self, value) -> str:
        """The value as written in trials.tsv."""
        return value if isinstance(value, str) else json.dumps(value)

    def parse_cell(self, text: str):
        if self.type != "continuous":
            for v in self.values:
                if self.cell(v) == text:
                    return v
            raise ValueError(f"{text!r} is not one of the values of {self.path}")
        return int(round(float(text))) if self.integer else float(text)


@dataclass
class Domain:
    dims: list

    @property
    def paths(self) -> list:
        return [d.path for d in self.dims]

    def encode(self, values: dict) -> np.ndarray:
        """``{path: value}`` -> ``(n_dims,)`` coordinates in GPyOpt's space."""
        return np.array([d.encode(values[d.path]) for d in self.dims], dtype=float)

    def decode(self, x) -> dict:
        return {d.path: d.decode(v) for d, v in zip(self.dims, np.asarray(x, dtype=float).ravel())}

    def sample(self, rng) -> dict:
        return {d.path: d.sample(rng) for d in self.dims}

    def gpyopt(self) -> list:
        return [d.gpyopt() for d in self.dims]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_domain(spec, where: str = "domain") -> Domain:
    """Check the structure of a domain (a dict ``{path: {type, values|range, log}}``) and build it.

    Only the shape of each entry is checked here; :func:`check_domain` checks the
    paths and values against a params.json.
    """
    if not isinstance(spec, dict) or not spec:
        raise InputError(f"{where}: expected a non-empty JSON object {{\"path.in.params\": {{\"type\": ...}}}}")
    dims = []
    for path, entry in spec.items():
        at = f"{where}: '{path}'"
        if not isinstance(entry, dict):
            raise InputError(f"{at} must be an object with 'type' and 'values' or 'range'")
        kind = entry.get("type")
        if kind not in TYPES:
            raise InputError(f"{at}: type must be one of {', '.join(TYPES)}, got {json.dumps(kind)}")
        allowed = {"type", "log", "range" if kind == "continuous" else "values"}
        extra = sorted(set(entry) - allowed)
        if extra:
            raise InputError(f"{at}: unknown key '{extra[0]}' for a {kind} dimension; allowed: {', '.join(sorted(allowed))}")
        log_scale = entry.get("log", False)
        if not isinstance(log_scale, bool) or (log_scale and kind == "categorical"):
            raise InputError(f"{at}: 'log' must be true or false (and only for continuous or discrete)")
        if kind == "continuous":
            rng = entry.get("range")
            if not (isinstance(rng, list) and len(rng) == 2 and all(_is_number(v) for v in rng)):
                raise InputError(f"{at}: 'range' must be [low, high], two finite numbers; got {json.dumps(rng)}")
            lo, hi = rng
            if lo == hi:
                raise InputError(f"{at}: empty range [{lo}, {hi}]; use a discrete dimension or leave it out")
            if lo > hi:
                raise InputError(f"{at}: inverted range [{lo}, {hi}]; low must be below high")
            if log_scale and lo <= 0:
                raise InputError(f"{at}: a log range must be above 0, got [{lo}, {hi}]")
            dims.append(Dim(path, kind, bounds=(lo, hi), log=log_scale))
            continue
        values = entry.get("values")
        if not isinstance(values, list) or not values:
            raise InputError(f"{at}: 'values' must be a non-empty list")
        if len({json.dumps(v) for v in values}) < len(values):
            raise InputError(f"{at}: 'values' lists a value twice")
        if kind == "discrete" and not all(_is_number(v) for v in values):
            raise InputError(f"{at}: discrete values must be numbers (use categorical for others), "
                             f"got {json.dumps(values)}")
        if kind == "categorical" and not all(isinstance(v, (str, int, float, bool)) or v is None for v in values):
            raise InputError(f"{at}: categorical values must be strings, numbers, true/false or null")
        if any(isinstance(v, str) and re.search(r"[\t\n\r]", v) for v in values):
            raise InputError(f"{at}: values may not contain tabs or line breaks")
        if log_scale and min(values) <= 0:
            raise InputError(f"{at}: log values must all be above 0, got {json.dumps(values)}")
        dims.append(Dim(path, kind, values=list(values), log=log_scale))
    return Domain(dims)


def valid_paths(params: dict) -> list:
    """Every tunable path of a (raw or resolved) params dict: train keys, model scalars, block arguments."""
    from basenji_tk.model import blocks
    from basenji_tk.model.params import MODEL, TRAIN

    paths = [f"train.{k}" for k in TRAIN]
    paths += [f"model.{k}" for k in MODEL if k not in ("trunk", "head", "inputs")]
    model = params.get("model", {})
    for part in ("trunk", "head"):
        for i, spec in enumerate(model.get(part, [])):
            info = blocks.BLOCKS.get(spec.get("name")) if isinstance(spec, dict) else None
            if info is not None:
                paths += [f"model.{part}[{i}].{arg}" for arg in info.args]
    return paths


def set_value(params: dict, path: str, value) -> None:
    """Set ``path`` (``train.x``, ``model.x``, ``model.trunk[i].arg``) in ``params`` in place."""
    section, key, index, arg = PATH_RE.match(path).groups()
    if index is None:
        params.setdefault(section, {})[key] = value
    else:
        params[section][key][int(index)][arg] = value


def check_domain(domain: Domain, params: dict, where: str, params_path: str) -> None:
    """Check every path of ``domain`` against ``params`` (raw params.json) and every candidate value.

    A path that is not in ``params`` names the nearest valid ones. Each candidate
    (both ends of a range, each listed value) is put into a copy of ``params``
    and checked with the params schema. Sets ``Dim.integer`` for integer arguments.
    """
    from basenji_tk.model import blocks
    from basenji_tk.model.params import TRAIN, check_params

    paths = valid_paths(params)
    for dim in domain.dims:
        if dim.path not in paths:
            near = difflib.get_close_matches(dim.path, paths, n=3, cutoff=0.0)
            raise InputError(f"{where}: '{dim.path}' is not a parameter of {params_path}; nearest: {', '.join(near)}")
        section, key, index, arg = PATH_RE.match(dim.path).groups()
        if section == "train":
            kinds = TRAIN[key].types
        elif index is not None:
            kinds = (blocks.BLOCKS[params["model"][key][int(index)]["name"]].types[arg],)
        else:
            from basenji_tk.model.params import MODEL

            kinds = MODEL[key].types
        numeric = any(k in (int, float) for k in kinds)
        if dim.type != "categorical" and not numeric and None not in kinds:
            raise InputError(f"{where}: '{dim.path}' is not numeric; use a categorical dimension")
        dim.integer = dim.type == "continuous" and int in kinds and float not in kinds
        if dim.integer and dim.bounds[1] - dim.bounds[0] < 1:
            raise InputError(f"{where}: '{dim.path}' is an integer; range {list(dim.bounds)} holds fewer than two")
        candidates = dim.values if dim.type != "continuous" else [dim.decode(dim.encode(b)) for b in dim.bounds]
        for value in candidates:
            trial = json.loads(json.dumps(params))
            set_value(trial, dim.path, value)
            try:
                check_params(trial, params_path)
            except InputError as err:
                raise InputError(f"{where}: '{dim.path}' value {json.dumps(value)} does not fit: {err}") from None


def load_domain(domain_path, params_path) -> tuple:
    """Read and check domain.json against params.json; returns ``(Domain, raw params dict)``."""
    from basenji_tk.model.params import load_params, read_json

    domain_path, params_path = str(domain_path), str(params_path)
    load_params(params_path)  # the params themselves must be valid
    params = read_json(params_path)
    domain = parse_domain(read_json(domain_path, "domain"), domain_path)
    check_domain(domain, params, domain_path, params_path)
    return domain, params
