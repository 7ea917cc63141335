"""In-silico saturation mutagenesis (ISM): mutants, their scores, and the predictions behind them.

ISM changes every position of a region to each other base and records how the
model's prediction moves. A mutant's **score** per target is its prediction minus
the reference prediction, reduced over output bins by a statistic:

* ``sum``: all output bins;
* ``center``: the bins overlapping the mutated region (at least one);
* ``tss``: the bin holding a given position (``tss_flank`` bins either side too).

Models whose output has no bin axis (``(batch, targets)``) are scored on the
output itself. Predictions come from :class:`basenji_tk.interpret.fastism.FastISM` when it
can handle the model (``method='auto'`` or ``'fast'``), which reuses the
reference activations outside each mutation's band and gives the same numbers;
``method='naive'`` predicts every mutant in full (:func:`naive_predict_mutants`). With
``center`` or ``tss``, mutations farther from the scored bins than the model's receptive
field cannot change them: they score exactly 0 and are not predicted.

Reverse complements (``rc``) and ``shifts`` are averaged the way
:func:`basenji_tk.model.models.ensemble` does: each mutant is moved (and complemented)
with its sequence, and reversed outputs are flipped back.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError

log = logging.getLogger("basenji_tk")

STATS = ("sum", "center", "tss")
METHODS = ("auto", "fast", "naive")


# ----------------------------------------------------------------------------- pure pieces
def mutants(reference: np.ndarray, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """Every single-base change of ``reference`` ``(L, 4)`` in ``[start, stop)``.

    Returns ``(positions (M,), bases (M,))`` int64, by position then base (A, C, G, T):
    the three other bases at each position, all four where the reference is N."""
    ref = np.asarray(reference)[start:stop]
    is_ref = ref > 0.5
    is_ref[~is_ref.any(axis=1)] = False  # N: every base is a change
    pos, base = np.nonzero(~is_ref)
    return pos.astype(np.int64) + start, base.astype(np.int64)


def score_bins(stat: str, num_bins: int, pool_width: int, offset: int, mut_start: int, mut_stop: int,
               position: int | None = None, tss_flank: int = 0) -> np.ndarray:
    """Output bins a statistic sums over, for a window whose first bin starts ``offset`` bp in.

    ``mut_start``, ``mut_stop``, ``position``: window coordinates (bp). ``sum``: all bins;
    ``center``: the bins overlapping ``[mut_start, mut_stop)`` (at least the one holding its
    middle); ``tss``: the bin holding ``position``, with ``tss_flank`` bins either side."""
    if stat == "sum":
        return np.arange(num_bins)
    if stat == "center":
        lo = (mut_start - offset) // pool_width
        hi = (mut_stop - 1 - offset) // pool_width
        if hi < lo:
            lo = hi = ((mut_start + mut_stop) // 2 - offset) // pool_width
    elif stat == "tss":
        b = (int(position) - offset) // pool_width
        lo, hi = b - tss_flank, b + tss_flank
    else:
        raise InputError(f"--stat: '{stat}' (expected one of {', '.join(STATS)})")
    bins = np.arange(max(lo, 0), min(hi, num_bins - 1) + 1)
    if not len(bins):
        raise InputError(f"--stat {stat}: no output bin covers the scored position(s); the model predicts bins "
                         f"from {offset} to {offset + num_bins * pool_width} bp of its window")
    return bins


def reachable(positions: np.ndarray, bins: np.ndarray, pool_width: int, offset: int, field) -> np.ndarray:
    """Which ``positions`` (window bp) can change the output ``bins``: ``(M,)`` bool.

    Conservative: within a whole receptive field (``field.size`` bp) of the bins' span."""
    if field is None or field.whole:
        return np.ones(len(positions), dtype=bool)
    lo = offset + int(bins.min()) * pool_width - field.size
    hi = offset + (int(bins.max()) + 1) * pool_width + field.size
    return (positions >= lo) & (positions < hi)


def reduce_scores(pred: np.ndarray, ref: np.ndarray, bins: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mutant minus reference, summed over ``bins``: ``(M, bins, T) , (bins, T) -> (M, t)`` for chosen targets.

    Outputs without a bin axis (``(M, T)``, ``(T,)``) are differenced directly."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.ndim == 2:
        return (pred - ref[None])[:, targets]
    return (pred[:, bins][:, :, targets] - ref[bins][None][:, :, targets]).sum(axis=1)


def reference_score(ref: np.ndarray, bins: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The reference prediction summed over ``bins`` for the chosen targets: ``(t,)``."""
    ref = np.asarray(ref, dtype=np.float64)
    return ref[targets] if ref.ndim == 1 else ref[bins][:, targets].sum(axis=0)


def importance(scores: np.ndarray) -> np.ndarray:
    """The change with the largest absolute value at each position, signed: ``(L, 4, T) -> (L, T)``."""
    scores = np.asarray(scores)
    pick = np.abs(scores).argmax(axis=1)
    return np.take_along_axis(scores, pick[:, None, :], axis=1)[:, 0, :]


def _swap_strands(x: np.ndarray) -> np.ndarray:
    """Swap each (+, -) pair of the last axis (a reverse complement of a stranded track)."""
    order = np.arange(x.shape[-1]).reshape(-1, 2)[:, ::-1].reshape(-1)
    return x[..., order]


def _shift(one_hot: np.ndarray, shift: int) -> np.ndarray:
    """``(L, 4)`` moved ``shift`` bases right (left when negative), N-padded (as ``layers.ShiftSequence``)."""
    out = np.zeros_like(one_hot)
    if shift >= 0:
        out[shift:] = one_hot[:len(one_hot) - shift]
    else:
        out[:shift] = one_hot[-shift:]
    return out


# ----------------------------------------------------------------------------- prediction engines
def model_inputs(model, seqs: np.ndarray, other_inputs=None, sequence: str = "sequence"):
    """The model's input for one-hot ``seqs`` ``(B, L, 4)``: the array itself, or a dict with the
    sequences under ``sequence`` (the input's name) and ``other_inputs`` (``{name: array}``, the
    same for every sequence) repeated over the batch."""
    if not isinstance(model.input, dict):
        return seqs
    other = other_inputs or {}
    missing = [k for k in model.input if k != sequence and k not in other]
    if missing:
        raise InputError(f"model '{model.name}' also takes the input '{missing[0]}'; give it with the sequences")
    return {sequence: seqs, **{k: np.repeat(np.asarray(v, dtype=np.float32)[None], len(seqs), axis=0)
                               for k, v in other.items()}}


class Predictor:
    """Predictions of single-base mutants of one reference, averaged over ``rc`` and ``shifts``.

    ``model``: a basenji_tk ``keras.Model`` with one output (not an ensemble wrapper). ``method``:
    ``auto`` (fast path where supported, else naive), ``fast`` (an :class:`InputError` when the
    model has a layer the fast path cannot handle) or ``naive``. ``sequence``: the name of the
    DNA input of a model that takes a dict. With ``rc``, the positional inputs named in
    ``signals`` (``{name: stranded}``) are reversed with the sequence (their (+, -) channel pairs
    swapped when stranded), and reversed positional outputs flipped back (pairs swapped with
    ``output_strands``), as :meth:`basenji_tk.analysis.trained.TrainedModel.predictor` does."""

    def __init__(self, model, method: str = "auto", rc: bool = False, shifts=(0,), batch_size: int = 32,
                 sequence: str = "sequence", signals=None, output_strands: bool = False):
        from basenji_tk.interpret import fastism

        if method not in METHODS:
            raise InputError(f"--method: '{method}' (expected one of {', '.join(METHODS)})")
        self.model, self.rc, self.shifts, self.batch_size = model, bool(rc), tuple(int(s) for s in shifts), batch_size
        self.sequence, self.signals, self.output_strands = sequence, dict(signals or {}), bool(output_strands)
        self.engine = None
        self.method = "naive"
        if method != "naive":
            try:
                self.engine = fastism.FastISM(model, sequence if isinstance(model.input, dict) else None)
                self.method = "fast"
            except fastism.NotSupported as err:
                if method == "fast":
                    raise InputError(f"--method fast: {err}") from None
                log.warning(f"warning: the fast ISM path does not apply ({err}); predicting every mutant in full")
        self.positional = len(model.output_shape) == 3

    def _one(self, reference, positions, bases, other):
        if not len(positions):
            return np.zeros((0, *self.model.output_shape[1:]), dtype=np.float32)
        if self.engine is not None:
            return self.engine.predict_mutants(reference, positions, bases, other, self.batch_size)
        return naive_predict_mutants(self.model, reference, positions, bases, other, self.batch_size, self.sequence)

    def _reference(self, reference, other):
        if self.engine is not None:  # from the activations it caches for the mutants anyway
            return self.engine.reference_prediction(reference, other)
        x = model_inputs(self.model, reference[None], other, self.sequence)
        return np.asarray(self.model(x, training=False), dtype=np.float32)[0]

    def _reversed_inputs(self, other):
        if not other:
            return other
        out = dict(other)
        for name, stranded in self.signals.items():
            if name in out:
                value = np.asarray(out[name])[::-1]
                out[name] = _swap_strands(value) if stranded else value.copy()
        return out

    def predict(self, reference: np.ndarray, positions, bases, other_inputs=None):
        """``(ref_pred (*out), mutant_preds (M, *out))`` for ``reference`` ``(L, 4)`` float32."""
        reference = np.asarray(reference, dtype=np.float32)
        positions, bases = np.asarray(positions, dtype=np.int64), np.asarray(bases, dtype=np.int64)
        L = len(reference)
        ref_sum, mut_sum, n = None, None, 0
        for shift in self.shifts:
            moved = _shift(reference, shift) if shift else reference
            p = positions + shift
            inside = (p >= 0) & (p < L)
            for reverse in ([False, True] if self.rc else [False]):
                seq = moved[::-1, ::-1].copy() if reverse else moved
                q = L - 1 - p[inside] if reverse else p[inside]
                b = 3 - bases[inside] if reverse else bases[inside]
                other = self._reversed_inputs(other_inputs) if reverse else other_inputs
                ref = self._reference(seq, other)
                out = np.repeat(ref[None], len(positions), axis=0)
                out[inside] = self._one(seq, q, b, other)
                if reverse and self.positional:
                    ref, out = ref[::-1], out[:, ::-1]
                    if self.output_strands:
                        ref, out = _swap_strands(ref), _swap_strands(out)
                ref_sum = ref.astype(np.float64) if ref_sum is None else ref_sum + ref
                mut_sum = out.astype(np.float64) if mut_sum is None else mut_sum + out
                n += 1
        return (ref_sum / n).astype(np.float32), (mut_sum / n).astype(np.float32)


@dataclass
class IsmResult:
    """ISM of one sequence: ``scores`` ``(len, 4, t)`` (0 at reference bases), ``ref_score`` ``(t,)``,
    ``predicted`` and ``skipped`` mutant counts (skipped: out of the scored bins' reach, score 0)."""

    scores: np.ndarray
    ref_score: np.ndarray
    predicted: int
    skipped: int


def saturation_mutagenesis(predictor: Predictor, reference: np.ndarray, mut_start: int, mut_stop: int,
                           bins: np.ndarray, targets, pool_width: int = 1, offset: int = 0, field=None,
                           other_inputs=None) -> IsmResult:
    """Score every single-base change of ``reference`` ``(L, 4)`` in ``[mut_start, mut_stop)``.

    ``bins``: output bins summed (see :func:`score_bins`); ``targets``: output targets kept;
    ``field``: the model's :class:`~basenji_tk.model.models.ReceptiveField` (None: predict all)."""
    targets = np.asarray(targets, dtype=np.int64)
    positions, bases = mutants(reference, mut_start, mut_stop)
    keep = reachable(positions, bins, pool_width, offset, field) if predictor.positional else \
        np.ones(len(positions), dtype=bool)
    ref, preds = predictor.predict(reference, positions[keep], bases[keep], other_inputs)
    scores = np.zeros((mut_stop - mut_start, 4, len(targets)), dtype=np.float32)
    scores[positions[keep] - mut_start, bases[keep]] = reduce_scores(preds, ref, bins, targets)
    return IsmResult(scores, reference_score(ref, bins, targets).astype(np.float32), int(keep.sum()),
                     int((~keep).sum()))


# ----------------------------------------------------------------------------- naive ISM
def check_mutants(positions, bases, length, depth):
    """``positions`` and ``bases`` of single-base mutants as ``(M,)`` int32, after checking that
    they pair up and lie inside a ``(length, depth)`` one-hot reference."""
    positions = np.asarray(positions, dtype=np.int64).reshape(-1)
    bases = np.asarray(bases, dtype=np.int64).reshape(-1)
    if positions.shape != bases.shape:
        raise InputError(f"positions ({positions.size}) and bases ({bases.size}) differ in length")
    if positions.size and (positions.min() < 0 or positions.max() >= length):
        raise InputError(f"positions must lie in [0, {length})")
    if bases.size and (bases.min() < 0 or bases.max() >= depth):
        raise InputError(f"bases must lie in [0, {depth})")
    return positions.astype(np.int32), bases.astype(np.int32)


def mutant_batches(positions, bases, batch_size):
    """``(start, positions, bases)`` per batch of ``batch_size``; the last one padded by repeating."""
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    for begin in range(0, len(positions), batch_size):
        p, b = positions[begin:begin + batch_size], bases[begin:begin + batch_size]
        pad = batch_size - len(p)
        if pad:
            p, b = np.concatenate([p, np.repeat(p[-1:], pad)]), np.concatenate([b, np.repeat(b[-1:], pad)])
        yield begin, p, b


_NAIVE_FNS = weakref.WeakKeyDictionary()


def _naive_fn(model):
    """A traced ``model(x, training=False)`` kept while the model lives (one trace per batch size)."""
    import tensorflow as tf

    if model not in _NAIVE_FNS:
        held = weakref.ref(model)  # a strong reference here would keep the model alive forever
        _NAIVE_FNS[model] = tf.function(lambda x: held()(x, training=False), autograph=False)
    return _NAIVE_FNS[model]


def naive_predict_mutants(model, reference, positions, bases, other_inputs=None, batch_size=64,
                          sequence: str = "sequence") -> np.ndarray:
    """The plain way: build each full one-hot mutant and run the model on it, ``batch_size`` at a time.

    Same arguments and result as :meth:`basenji_tk.interpret.fastism.FastISM.predict_mutants`:
    ``(M, *output_shape[1:])`` float32; ``sequence`` names the DNA input of a model that takes a
    dict. The reference for tests and benchmarks."""
    reference = np.asarray(reference, dtype=np.float32)
    length, depth = reference.shape
    positions, bases = check_mutants(positions, bases, length, depth)
    named = isinstance(model.input, dict)
    shapes = {k: tuple(v.shape[1:]) for k, v in model.input.items()} if named else {}
    others = {k: np.asarray(v, dtype=np.float32).reshape((1,) + shapes.get(k, np.shape(v)))
              for k, v in (other_inputs or {}).items()}
    fn = _naive_fn(model)
    eye = np.eye(depth, dtype=np.float32)
    out = np.empty((len(positions), *model.output_shape[1:]), dtype=np.float32)
    for begin, p, b in mutant_batches(positions, bases, batch_size):
        x = np.repeat(reference[None], len(p), axis=0)
        x[np.arange(len(p)), p] = eye[b]
        if named:
            x = {sequence: x, **{k: np.repeat(v, len(p), axis=0) for k, v in others.items()}}
        y = np.asarray(fn(x), dtype=np.float32)
        out[begin:begin + batch_size] = y[:len(out) - begin]
    return out
