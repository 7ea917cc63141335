"""DeepLIFT's rescale rule for Keras models, swapped in for the duration of a call (:func:`rescale_rules`).

DeepLIFT (Shrikumar et al. 2017) explains ``f(x) - f(r)`` for an input ``x`` and a reference
``r`` by *multipliers* ``m`` with ``sum_i m_i (x_i - r_i) = f(x) - f(r)`` exactly (completeness,
"summation to delta"). Multipliers chain like gradients, so they are computed as gradients with
the backward pass of each nonlinearity replaced:

* an elementwise nonlinearity ``y = f(z)`` (relu, gelu, softplus, sigmoid, tanh, elu, swish,
  exponential, ... as an ``Activation`` layer or a layer's ``activation``): the rescale rule,
  multiplier ``(f(z_x) - f(z_r)) / (z_x - z_r)``, and the gradient ``f'(z_x)`` where
  ``|z_x - z_r| < 1e-6``;
* max pooling (``MaxPooling1D``, ``GlobalMaxPooling1D``): the rule of DeepSHAP (Lundberg & Lee
  2017): the change of each pooled output ``y_x - y_r`` is split into ``max(y_x, y_r) - y_r``,
  given to the input that is the maximum for ``x``, and ``y_x - max(y_x, y_r)``, given to the one
  that is the maximum for ``r``; each input's multiplier is its share over its own ``z_x - z_r``.
  Both parts sum to ``y_x - y_r``, so completeness holds;
* linear layers (convolutions, dense, batch normalisation at inference, average pooling, add,
  concatenate, crop, flatten, reshape, reverse complement, dropout at inference): nothing, their
  gradient is their multiplier.

The model runs on one batch ``[x-rows; reference-rows]`` (the first half inputs, the second
their references, row ``i`` of one half paired with row ``i`` of the other); each replaced
backward pass reads the forward values of both halves, takes the upstream multipliers of the
first half and passes the same multipliers to both halves. The multipliers of the inputs are
the gradient of the explained scalar (summed over the first half) at the first half's inputs.
Layers that mix rows of a batch do not exist at inference in these models.

A layer with no rule (a softmax or a product inside the network, attention, a custom layer) is
listed by :func:`unhandled_layers`; its plain gradient is used, so completeness may fail there;
callers measure the gap and warn naming the layer.

Why not a library: shap 0.51 (the newest for Python 3.11), checked on Keras 3.15 / TF 2.21, sums
correctly on a relu/max-pool/dense model, but (1) fails on GELU ("gradient registry has no entry
for: shap_Erfc", GELU is the activation of Enformer-like and the demo's dilated blocks), (2) takes
one background set for every explained sequence, while DeepSHAP for DNA uses shuffles of each
sequence (chrombpnet relies on a fork of shap that takes a function for the references), and (3)
gives no hypothetical contributions (TF-MoDISco needs them). captum and tangermeme are PyTorch.
"""

from __future__ import annotations

import contextlib

ELEMENTWISE = ("relu", "gelu", "softplus", "sigmoid", "tanh", "elu", "selu", "swish", "silu", "exponential",
               "softsign", "leaky_relu", "relu6", "hard_sigmoid", "hard_swish", "mish", "log_sigmoid", "celu")
LINEAR_ACTIVATIONS = ("linear", "identity", None)
# layer classes whose forward pass is linear (affine) per row at inference: their gradient is their multiplier
LINEAR_LAYERS = ("InputLayer", "Conv1D", "Conv2D", "Conv1DTranspose", "SeparableConv1D", "DepthwiseConv1D", "Dense",
                 "EinsumDense", "BatchNormalization", "AveragePooling1D", "GlobalAveragePooling1D", "Add", "Subtract",
                 "Average", "Concatenate", "Cropping1D", "ZeroPadding1D", "UpSampling1D", "Flatten", "Reshape",
                 "Permute", "RepeatVector", "Dropout", "SpatialDropout1D", "GaussianDropout", "GaussianNoise",
                 "Identity", "ReverseComplement", "ReverseBins", "ShiftSequence", "StochasticReverseComplement",
                 "SwitchReverse", "StochasticShift", "Activation", "ReLU", "ELU", "LeakyReLU")
MAX_POOLS = ("MaxPooling1D", "GlobalMaxPooling1D")
EPSILON = 1e-6


def _activation_name(fn) -> str | None:
    name = getattr(fn, "__name__", None)
    return None if name in LINEAR_ACTIVATIONS else name


def all_layers(model) -> list:
    """Every layer of ``model``, nested models' layers included (depth first, each once)."""
    seen, out = set(), []

    def walk(m):
        for layer in m.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            if hasattr(layer, "layers") and layer.layers:
                walk(layer)
            else:
                out.append(layer)

    walk(model)
    return out


def _rule_for(layer) -> str | None:
    """``'activation'`` (swap ``layer.activation``), ``'maxpool'`` (swap ``layer.call``), ``'linear'``
    (nothing to do) or None (no rule)."""
    kind = type(layer).__name__
    if kind in MAX_POOLS:
        return "maxpool"
    if kind in ("ReLU", "ELU", "LeakyReLU"):
        return "call"
    act = _activation_name(getattr(layer, "activation", None))
    if act is not None:
        return "activation" if act in ELEMENTWISE else None
    return "linear" if kind in LINEAR_LAYERS else None


def unhandled_layers(model) -> list[str]:
    """Names (and classes) of the layers of ``model`` with no DeepLIFT rule here."""
    return [f"{layer.name} ({type(layer).__name__}"
            + (f", activation {_activation_name(layer.activation)})" if _activation_name(
                getattr(layer, "activation", None)) else ")")
            for layer in all_layers(model) if _rule_for(layer) is None]


def _halves(t):
    import tensorflow as tf

    return tf.split(t, 2, axis=0)


def rescale(fn):
    """``fn`` (elementwise) with the rescale rule as its backward pass on a ``[x; ref]`` batch."""
    import tensorflow as tf

    @tf.custom_gradient
    def f(z):
        y = fn(z)

        def grad(dy):
            zx, zr = _halves(z)
            yx, yr = _halves(y)
            dz = zx - zr
            with tf.GradientTape() as tape:
                tape.watch(zx)
                fx = fn(zx)
            slope = tape.gradient(fx, zx)
            near = tf.abs(dz) < EPSILON
            m = tf.where(near, slope, (yx - yr) / tf.where(near, tf.ones_like(dz), dz))
            up, _ = _halves(dy)
            g = up * m
            return tf.concat([g, g], axis=0)

        return y, grad

    return f


def max_rule(call):
    """A max-pooling layer's ``call`` with DeepSHAP's max rule as its backward pass on a ``[x; ref]`` batch."""
    import tensorflow as tf

    def wrapped(inputs, *args, **kwargs):
        @tf.custom_gradient
        def f(z):
            y = call(z, *args, **kwargs)

            def grad(dy):
                zx, zr = _halves(z)
                yx, yr = _halves(y)
                up, _ = _halves(dy)
                top = tf.maximum(yx, yr)
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch([zx, zr])
                    px, pr = call(zx, *args, **kwargs), call(zr, *args, **kwargs)
                share = tape.gradient(px, zx, output_gradients=up * (top - yr)) + \
                    tape.gradient(pr, zr, output_gradients=up * (yx - top))
                dz = zx - zr
                near = tf.abs(dz) < EPSILON
                m = tf.where(near, tf.zeros_like(dz), share / tf.where(near, tf.ones_like(dz), dz))
                return tf.concat([m, m], axis=0)

            return y, grad

        return f(inputs)

    return wrapped


@contextlib.contextmanager
def rescale_rules(model):
    """Within the block, ``model``'s nonlinearities have DeepLIFT backward passes (see the module
    docstring); yields the list of layers with no rule. Layers are restored on leaving, also on errors.
    Trace any ``tf.function`` inside the block."""
    swapped, unhandled = [], unhandled_layers(model)
    try:
        for layer in all_layers(model):
            rule = _rule_for(layer)
            if rule == "activation":
                swapped.append((layer, "activation", layer.activation))
                layer.activation = rescale(layer.activation)
            elif rule == "call":
                swapped.append((layer, "call", layer.__dict__.get("call")))
                layer.call = rescale(layer.call)
            elif rule == "maxpool":
                swapped.append((layer, "call", layer.__dict__.get("call")))
                layer.call = max_rule(layer.call)
        yield unhandled
    finally:
        for layer, attr, old in reversed(swapped):
            if attr == "call" and old is None:
                del layer.call
            else:
                setattr(layer, attr, old)
