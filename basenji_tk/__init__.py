"""basenji_tk: sequence-to-function genomics with Keras, in the style of Basenji.

``import basenji_tk`` makes every model file the package writes loadable with
``keras.saving.load_model(path, safe_mode=True)``: the custom layers, losses and
metrics (:mod:`basenji_tk.layers`, :mod:`basenji_tk.losses`, :mod:`basenji_tk.metrics`)
are registered with Keras as soon as Keras itself is imported, whichever comes first.

Why a hook and not plain imports here: importing those modules imports Keras and
TensorFlow (about 2-3 s), and every script, also those that never touch TensorFlow
(bam_cov.py, sed_ld.py), imports this package first (``basenji_tk.cli``). So when
Keras is already loaded they are imported at once; otherwise a finder on
``sys.meta_path`` waits for ``import keras`` (from anywhere: the user, TensorFlow,
our own modules) and imports them right after Keras has finished loading. The hook
costs nothing measurable: ``import basenji_tk`` takes under 1 ms either way.
"""

import sys

__version__ = "0.1.0"

_REGISTERING = ("basenji_tk.layers", "basenji_tk.losses", "basenji_tk.metrics")


def _register_keras_objects() -> None:
    """Import the modules whose classes are registered Keras serializables."""
    import importlib

    for name in _REGISTERING:
        importlib.import_module(name)  # a module already being imported is returned as it is


class _AfterKeras:
    """A ``sys.meta_path`` finder that only watches for the top-level ``keras`` module.

    It finds ``keras``'s spec with the other finders, and wraps its loader's
    ``exec_module`` so that :func:`_register_keras_objects` runs once Keras is loaded.
    It removes itself at the first ``import keras``, so it runs once per process.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        import importlib.util

        _remove_hook()
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            _register_keras_objects()

        spec.loader.exec_module = exec_module  # this spec's own loader instance only
        return spec


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterKeras)]


if "keras" in sys.modules:
    _register_keras_objects()
elif not any(isinstance(f, _AfterKeras) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterKeras())
