"""Attributions of one scalar per example to each base of the sequence: three methods.

The scalar (:func:`output_weights`) is a weighted sum of one output: the chosen targets (one,
or a sum such as a lineage) over the bins ``--stat`` picks for a positional output
(:func:`basenji_tk.interpret.scoring.scored_bins`), the number itself for an output of one number
per target, before the output's sigmoid/softmax with ``logit``. A profile output (a softmax over
positions) is explained as chrombpnet explains its profile head: the sum over positions of
``softmax(logits)``, held constant, times the mean-centred logits.

Methods (:class:`Attributor`):

* ``grad_x_input``: the gradient at the sequence. Hypothetical contributions (what TF-MoDISco
  takes) are the gradient minus its mean over the 4 bases at each position (the gradient
  projected on ``e_b - 1/4``: a uniform reference; Majdandzic et al. 2023's correction);
* ``integrated_gradients`` (Sundararajan et al. 2017): the gradient averaged along the straight
  path from a reference to the sequence, ``steps`` trapezoid intervals; the reference is the
  all-zero sequence (default) or ``n_references`` dinucleotide shuffles (averaged);
* ``deepshap``: DeepLIFT's rescale rule (:mod:`basenji_tk.interpret.deeplift`) against each of
  ``n_references`` dinucleotide shuffles of the sequence, averaged (DeepSHAP as chrombpnet uses it).

For the two reference methods, the multipliers ``m`` (path-averaged gradients, or DeepLIFT's)
give hypothetical contributions ``h_b = sum_j m_j (e_b[j] - r_j)`` at each position (the
contribution base ``b`` would have there), averaged over the references; every method's
``attributions`` are ``h x one_hot`` (the observed base's, zero elsewhere). Completeness: for
``deepshap`` the attributions sum to ``f(x) - mean f(r)`` (exactly, up to float32), for
integrated gradients up to the discretisation; :class:`Attributions` records the gap per
example (relative to ``max(1, |f(x)|, |mean f(r)|)``), computed from the full contributions
``sum m (x - r)`` (an N position of ``x``, all zeros, has no observed base to hold its share).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from basenji_tk.errors import InputError
from basenji_tk.interpret.scoring import SQUASHING, choose_output

log = logging.getLogger("basenji_tk")

METHODS = ("grad_x_input", "integrated_gradients", "deepshap")
REFERENCES = ("zero", "shuffle")
GAP_WARNING = 1e-3
ROW_BUDGET = 2 ** 21  # rows x bp per forward/backward pass (128 rows of a 16-kb window)


@dataclass
class Attributions:
    """One batch: ``attributions`` and ``hypothetical`` ``(B, L, 4)`` float32, the explained scalar
    ``f_x`` ``(B,)``, ``f_ref`` (its mean over the references, NaN without), ``gap`` (completeness,
    NaN for grad_x_input) and, for grad_x_input, the plain ``gradients``."""

    attributions: np.ndarray
    hypothetical: np.ndarray
    f_x: np.ndarray
    f_ref: np.ndarray
    gap: np.ndarray
    gradients: np.ndarray | None = None


def choose(tm, output=None, targets=None, logit: bool | None = None):
    """The :class:`~basenji_tk.interpret.scoring.ScoredOutput` to attribute: as ``choose_output``,
    a profile (softmax over positions) always by its logits (chrombpnet's profile contribution).

    ``logit`` None (the default): explain the logit of an output that ends in a sigmoid or
    softmax, as ChromDragoNN and chrombpnet do (a probability's gradient vanishes where the model
    is sure), and any other output as it is; False: the probability itself."""
    info = tm.output(output)
    profile = info.kind == "profile" and info.activation == "softmax"
    if logit is None:
        logit = info.activation in SQUASHING
    return choose_output(tm, output, targets, bool(logit) or profile)


def is_profile(scored) -> bool:
    return scored.info.kind == "profile" and scored.info.activation == "softmax" and scored.logit


def output_weights(scored, bins, logits=None) -> np.ndarray:
    """Weights ``(B, *output shape)`` whose dot product with the output is the explained scalar.

    ``bins``: per example, the positions of a positional output (:func:`scored_bins`); the
    chosen targets of ``scored`` are summed. A profile (:func:`is_profile`) needs its ``logits``
    at the explained sequences ``(B, P, T)``: weight ``softmax(logits)`` per chosen position,
    centred so that the weighted sum is of the mean-centred logits."""
    info, B = scored.info, len(bins)
    shape = tuple(int(d) for d in info.shape) or (1,)
    t = np.zeros(shape[-1], dtype=np.float32)
    t[scored.target_index] = 1.0
    if not scored.positional:
        return np.broadcast_to(t, (B, *shape)).astype(np.float32)
    w = np.zeros((B, *shape), dtype=np.float32)
    for b, rows in enumerate(bins):
        w[b, np.asarray(rows, dtype=np.int64)] = t
    if is_profile(scored):
        z = np.asarray(logits, dtype=np.float64)
        soft = np.exp(z - z.max(axis=1, keepdims=True))
        soft /= soft.sum(axis=1, keepdims=True)
        w = w * soft
        w = w - w.sum(axis=1, keepdims=True) / shape[0]
    return w.astype(np.float32)


def _project(m, ref) -> np.ndarray:
    """Hypothetical contributions ``h_b = m_b - sum_j m_j r_j`` of multipliers ``m`` against reference ``r``."""
    return m - (m * ref).sum(axis=-1, keepdims=True)


def _gap(total, f_x, f_ref) -> np.ndarray:
    want = f_x - f_ref
    return np.abs(total - want) / np.maximum(1.0, np.maximum(np.abs(f_x), np.abs(f_ref)))


class Attributor:
    """Attributions of the scalar of ``scored`` (from :func:`choose`) of ``tm`` by ``method``.

    Use as a context manager around many calls with ``deepshap`` (the rescale rules stay in
    place and the pass is traced once); a call outside one opens and closes it itself."""

    def __init__(self, tm, scored, method: str = "deepshap", n_references: int = 20, steps: int = 50,
                 reference: str | None = None, seed: int = 0, row_budget: int = ROW_BUDGET):
        if method not in METHODS:
            raise InputError(f"--method: '{method}' (expected one of {', '.join(METHODS)})")
        if int(n_references) < 1:
            raise InputError(f"--n_references: expected at least 1 reference, got {n_references}")
        if int(steps) < 1:
            raise InputError(f"--steps: expected at least 1 step, got {steps}")
        reference = reference or ("zero" if method == "integrated_gradients" else "shuffle")
        if reference not in REFERENCES:
            raise InputError(f"--reference: '{reference}' (expected one of {', '.join(REFERENCES)})")
        if method == "deepshap" and reference != "shuffle":
            raise InputError("--reference: deepshap averages over dinucleotide-shuffled references (--reference "
                             "shuffle)")
        if tm.sequence is None:
            raise InputError(f"{tm.model_path} has no DNA sequence input to attribute to (inputs: "
                             f"{', '.join(tm.inputs)}); saliency.py --wrt NAME explains its other inputs")
        self.tm, self.scored, self.method = tm, scored, method
        self.n = 1 if (method == "grad_x_input" or reference == "zero") else int(n_references)
        self.steps, self.reference = int(steps), reference
        self.seed, self.rng = int(seed), np.random.default_rng(seed)
        self.model = scored.model
        self.seq_name = tm.sequence.name
        self.dict_input = isinstance(self.model.input, dict)
        self.rows = max(2, int(row_budget) // int(tm.seq_length))
        self.unhandled, self._rules, self._steps = [], None, {}

    # ------------------------------------------------------------------- passes
    def __enter__(self):
        if self.method == "deepshap" and self._rules is None:
            from basenji_tk.interpret.deeplift import rescale_rules

            self._rules = rescale_rules(self.model)
            self.unhandled = self._rules.__enter__()
            self._steps.pop("deeplift", None)
        return self

    def __exit__(self, *exc):
        if self._rules is not None:
            rules, self._rules = self._rules, None
            self._steps.pop("deeplift", None)
            rules.__exit__(*exc)

    def _step(self, kind: str):
        if kind not in self._steps:
            import tensorflow as tf

            model, name, dict_input = self.model, self.seq_name, self.dict_input

            def step(seq, others, w):
                with tf.GradientTape() as tape:
                    tape.watch(seq)
                    y = model({**others, name: seq} if dict_input else seq, training=False)
                    y = tf.reshape(tf.cast(y, tf.float32), tf.shape(w))
                    s = tf.reduce_sum(tf.reshape(y * w, (tf.shape(w)[0], -1)), axis=1)
                    total = tf.reduce_sum(s)
                return s, tape.gradient(total, seq)

            self._steps[kind] = tf.function(step, reduce_retracing=True)
        return self._steps[kind]

    def _run(self, kind, seq, others, w, chunk):
        """The step on rows of ``seq`` in chunks of ``chunk`` rows -> (scalars, gradients) as numpy."""
        import tensorflow as tf

        s_all, g_all = [], []
        for i in range(0, len(seq), chunk):
            part = slice(i, i + chunk)
            s, g = self._step(kind)(tf.constant(seq[part]), {k: tf.constant(v[part]) for k, v in others.items()},
                                    tf.constant(w[part]))
            s_all.append(s.numpy())
            g_all.append(g.numpy())
        return np.concatenate(s_all), np.concatenate(g_all)

    def _logits(self, inputs) -> np.ndarray:
        feed = inputs if self.dict_input else inputs[self.seq_name]
        return np.asarray(self.model.predict_on_batch(feed), dtype=np.float32)

    # ------------------------------------------------------------------- methods
    def references(self, one_hot) -> np.ndarray:
        """``(B, n, L, 4)``: ``n`` dinucleotide shuffles of each sequence, or the all-zero sequence."""
        if self.reference == "zero":
            return np.zeros((len(one_hot), 1, *one_hot.shape[1:]), dtype=np.float32)
        from basenji_tk.interpret.shuffle import dinuc_shuffle

        return dinuc_shuffle(np.asarray(one_hot, dtype=np.float32), self.n, self.rng).astype(np.float32)

    def __call__(self, inputs: dict, bins, references=None) -> Attributions:
        """``inputs``: ``{name: (B, ...)}`` for every model input (the sequence one-hot ``(B, L, 4)``);
        ``bins``: per example, the output positions explained (ignored for outputs without positions);
        ``references``: ``(B, n, L, 4)`` to use instead of drawn ones."""
        inputs = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
        x = inputs[self.seq_name]
        others = {k: v for k, v in inputs.items() if k != self.seq_name}
        w = output_weights(self.scored, bins, self._logits(inputs) if is_profile(self.scored) else None)
        if self.method == "grad_x_input":
            s, g = self._run("plain", x, others, w, self.rows)
            hyp = g - g.mean(axis=-1, keepdims=True)
            nan = np.full(len(x), np.nan)
            return Attributions((hyp * x).astype(np.float32), hyp.astype(np.float32), s, nan, nan, g)
        refs = self.references(x) if references is None else np.asarray(references, dtype=np.float32)
        if refs.ndim != 4 or refs.shape[0] != len(x) or refs.shape[2:] != x.shape[1:]:
            raise InputError(f"references: expected shape ({len(x)}, n, {x.shape[1]}, 4), got {refs.shape}")
        if self.method == "deepshap":
            if self._rules is None:
                with self:
                    return self._deepshap(x, others, w, refs)
            return self._deepshap(x, others, w, refs)
        return self._integrated(x, others, w, refs)

    def _pairs(self, x, others, w, refs):
        """Rows ``(b, k)`` for each example ``b`` and reference ``k``: sequence, reference, other inputs, weights."""
        B, n = refs.shape[:2]
        rep = lambda a: np.repeat(a, n, axis=0)  # noqa: E731
        return rep(x), refs.reshape(B * n, *x.shape[1:]), {k: rep(v) for k, v in others.items()}, rep(w)

    def _finish(self, x, m, r, f_x, f_r, B, n):
        """Average the projected hypothetical contributions of multipliers ``m`` over the references."""
        L = x.shape[1]
        hyp = _project(m, r).reshape(B, n, L, 4).mean(axis=1)
        total = (m * (np.repeat(x, n, axis=0) - r)).reshape(B, n, -1).sum(axis=2).mean(axis=1)
        f_ref = f_r.reshape(B, n).mean(axis=1)
        return Attributions((hyp * x).astype(np.float32), hyp.astype(np.float32), f_x, f_ref,
                            _gap(total, f_x, f_ref))

    def _deepshap(self, x, others, w, refs) -> Attributions:
        B, n = refs.shape[:2]
        xs, rs, os_, ws = self._pairs(x, others, w, refs)
        half = max(1, self.rows // 2)
        s_x, s_r, ms = [], [], []
        for i in range(0, len(xs), half):
            part = slice(i, i + half)
            k = len(xs[part])
            s, g = self._run("deeplift", np.concatenate([xs[part], rs[part]]),
                             {name: np.concatenate([v[part], v[part]]) for name, v in os_.items()},
                             np.concatenate([ws[part], ws[part]]), 2 * k)
            s_x.append(s[:k])
            s_r.append(s[k:])
            ms.append(g[:k])
        f_x = np.concatenate(s_x).reshape(B, n)[:, 0]
        return self._finish(x, np.concatenate(ms), rs, f_x, np.concatenate(s_r), B, n)

    def _integrated(self, x, others, w, refs) -> Attributions:
        B, n = refs.shape[:2]
        xs, rs, os_, ws = self._pairs(x, others, w, refs)
        alphas = np.linspace(0.0, 1.0, self.steps + 1, dtype=np.float32)
        weights = np.full(self.steps + 1, 1.0 / self.steps)
        weights[[0, -1]] = 0.5 / self.steps
        m = np.zeros_like(xs)
        f_x = f_r = None
        per = max(1, self.rows // max(1, len(xs)))  # path points per pass
        for i in range(0, len(alphas), per):
            a = alphas[i:i + per]
            path = rs[None] + a[:, None, None, None] * (xs - rs)[None]
            s, g = self._run("plain", path.reshape(-1, *xs.shape[1:]),
                             {k: np.tile(v, (len(a),) + (1,) * (v.ndim - 1)) for k, v in os_.items()},
                             np.tile(ws, (len(a),) + (1,) * (ws.ndim - 1)), self.rows)
            s, g = s.reshape(len(a), -1), g.reshape(len(a), *xs.shape)
            m += np.tensordot(weights[i:i + per], g, axes=1).astype(np.float32)
            if i == 0:
                f_r = s[0]
            if i + len(a) == len(alphas):
                f_x = s[-1].reshape(B, n)[:, 0]
        return self._finish(x, m, rs, f_x, f_r, B, n)


def check_completeness(result: Attributions, unhandled=(), what: str = "") -> float:
    """The largest completeness gap of a batch; a warning above :data:`GAP_WARNING` naming the
    layers with no DeepLIFT rule."""
    gap = float(np.nanmax(result.gap)) if np.isfinite(result.gap).any() else float("nan")
    if gap > GAP_WARNING:
        why = f"; layers with no DeepLIFT rule: {', '.join(unhandled)}" if unhandled else ""
        log.warning(f"warning: {what}attributions sum to f(x) - mean f(reference) only within {gap:.3g} "
                    f"(relative), more than {GAP_WARNING:g}{why}")
    return gap
