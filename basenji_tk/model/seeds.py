"""Every random stream of a training epoch, set from ``(train.seed, epoch)`` alone.

What a restart guarantees: epoch ``e`` depends only on the weights and optimizer
state after epoch ``e - 1`` (in checkpoint.keras) and on ``(train.seed, e)``. Its
shuffling and pipeline augmentation (``train.rc``/``train.shift``) are seeded from
``(seed, e, dataset)`` (:func:`epoch_seed`), and every Keras ``SeedGenerator`` of the model (dropout,
``model.augment_rc``/``augment_shift``) is set from ``(seed, e, k)`` before the epoch
starts (:func:`reset_random_state`), so no random state carries over from one epoch to the next. With ``--seed``
(deterministic TensorFlow ops) a resumed run therefore ends with exactly the weights
of an uninterrupted one.
"""

import numpy as np


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A seed in [0, 2**31) for one random stream of one epoch, from ``(seed, epoch, stream)``.

    Streams: 0..n-1 the datasets' shuffling and augmentation, :data:`MIX_STREAM` the mix of
    datasets, ``SEED_GENERATOR_STREAM + k`` the model's k-th SeedGenerator. Unlike ``seed +
    epoch``, neighbouring seeds and epochs, and the datasets of one epoch, share no stream."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0] >> 1)


MIX_STREAM = 1_000_000
SEED_GENERATOR_STREAM = 2_000_000


def seed_generators(model) -> list:
    """Every ``keras.random.SeedGenerator`` of ``model`` and its nested layers (dropout, augmentation)."""
    found, seen = [], set()
    for layer in model._flatten_layers(include_self=True):  # Keras 3: the model and every nested layer
        for gen in getattr(layer, "_seed_generators", []):
            if id(gen) not in seen:
                seen.add(id(gen))
                found.append(gen)
    return found


def reset_random_state(model, seed: int, epoch: int) -> int:
    """Set every SeedGenerator state of ``model`` (and Keras' global one, if made) from ``(seed, epoch)``.

    Keras does not save SeedGenerator states in ``.keras`` files, and they advance with
    every call, so without this a resumed epoch would draw other dropout masks than an
    uninterrupted one. Returns the number of generators set."""
    gens = seed_generators(model)
    try:  # unseeded keras.random calls draw from this one; none of ours does, but a custom block might
        from keras.src.backend.common import global_state

        glob = global_state.get_global_attribute("global_seed_generator")
    except ImportError:
        glob = None
    for k, gen in enumerate(gens + ([glob] if glob is not None else [])):
        gen.state.assign(np.array([epoch_seed(seed, epoch, SEED_GENERATOR_STREAM + k), 0],
                                  dtype=gen.state.dtype))
    return len(gens)
