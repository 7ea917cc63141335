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


class _ImportHook:
    """A ``sys.meta_path`` finder that wraps how one top-level module is loaded, once.

    It finds the module's spec with the other finders and replaces that spec's own
    loader's ``exec_module`` by ``wrap(exec_module)``; it removes itself at the first
    import of the module, so it runs once per process.
    """

    def __init__(self, name: str, wrap):
        self.name, self.wrap = name, wrap

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        import importlib.util

        sys.meta_path[:] = [f for f in sys.meta_path if f is not self]
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader.exec_module = self.wrap(spec.loader.exec_module)  # this spec's loader instance only
        return spec


def on_import(name: str, wrap) -> None:
    """Load the top-level module ``name`` through ``wrap(exec_module)`` when it is first imported.

    Nothing happens when ``name`` is already imported or already has a hook."""
    if name not in sys.modules and not any(isinstance(f, _ImportHook) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _ImportHook(name, wrap))


def _then_register(load):
    def exec_module(module):
        load(module)
        _register_keras_objects()

    return exec_module


if "keras" in sys.modules:
    _register_keras_objects()
else:
    on_import("keras", _then_register)
