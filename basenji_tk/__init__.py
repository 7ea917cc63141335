"""basenji_tk: sequence-to-function genomics with Keras, in the style of Basenji.

``import basenji_tk`` makes every model file the package writes loadable with
``keras.saving.load_model(path, safe_mode=True)``: the custom layers, losses and
metrics (:mod:`basenji_tk.model.layers`, :mod:`basenji_tk.model.losses`, :mod:`basenji_tk.model.metrics`)
are registered with Keras as soon as Keras itself is imported, whichever comes first.

Why a hook and not plain imports here: importing those modules imports Keras and
TensorFlow (about 2-3 s), and every script, also those that never touch TensorFlow
(bam_cov.py, sed_ld.py), imports this package first (``basenji_tk.cli``). So when
Keras is already loaded they are imported at once; otherwise a finder on
``sys.meta_path`` waits for ``import keras`` (from anywhere: the user, TensorFlow,
our own modules) and imports them right after Keras has finished loading. The hook
costs nothing measurable: ``import basenji_tk`` takes under 1 ms either way.

The package is laid out by stage, in the order data flows through it; a module imports
only from its own stage or the stages before it (``tests/test_layout.py`` checks this):

    io/         file formats: BGZF, BAM, BigWig, FASTA/genome, VCF, gene TSSs, genotypes,
                peaks, CSV/TSV/FASTA tables
    coverage/   BAM to coverage tracks (bam_cov.py)
    data/       DNA, targets and label transforms, dataset builders, records and tf.data
    model/      layers, blocks, models, losses, metrics, params, training
    analysis/   the trained-model object, evaluation, prediction, variant effects, LD
    interpret/  ISM, fast ISM, saliency
    hyper/      Bayesian hyperparameter search (GPyOpt)

``errors``, ``files``, ``cli``, ``plots`` and ``stats`` serve every stage. The flat module names of
release 0.1 (``basenji_tk.train``, ``basenji_tk.dna``, ...) still import, as the same module
objects, with a DeprecationWarning; they go in 0.3.
"""

import sys

__version__ = "0.1.0"

_REGISTERING = ("basenji_tk.model.layers", "basenji_tk.model.losses", "basenji_tk.model.metrics")


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


# Where each module of the flat 0.1 layout lives now. Importing the old name gives the new
# module object itself (not a copy), so monkeypatching and private names behave as before. A
# module whose names were split over several new modules is a tuple of them, searched in order.
MOVED = {
    "bgzf": "io.bgzf",
    "libdeflate": "io.libdeflate",
    "bamio": "io.bamio",
    "bigwig": "io.bigwig",
    "genome": "io.genome",
    "vcf": "io.vcf",
    "covkernels": "coverage.kernels",
    "covchecks": "coverage.checks",
    "dna": "data.dna",
    "targets": "data.targets",
    "labels": "data.labels",
    "features": "data.features",
    "dataset": "data.dataset",
    "records": "data.records",
    "tfrecords": "data.tfrecords",
    "regions": ("data.regions", "data.regions_plan", "data.negatives", "io.peaks"),
    "tables": ("data.tables", "data.table_tasks", "io.tabular"),
    "pairs": ("data.pairs", "data.contexts", "data.pairs_views"),
    "layers": "model.layers",
    "blocks": "model.blocks",
    "models": "model.models",
    "losses": "model.losses",
    "metrics": ("model.metrics", "stats", "model.accumulator", "model.peaks"),
    "params": "model.params",
    "train": ("model.train", "model.wiring", "model.feeds", "model.resume", "model.seeds", "model.transfer"),
    "evaluate": ("analysis.evaluate", "analysis.trained", "analysis.baseline"),
    "predict": ("analysis.predict", "analysis.trained"),
    "variants": ("analysis.variants", "analysis.effects", "analysis.sedwriter", "io.vcf", "io.genes"),
    "ld": ("analysis.ld", "io.genotypes", "analysis.sedld_stats", "analysis.sedld_inputs", "analysis.sedld_outputs",
           "analysis.sedld", "analysis.gwas"),
    "ism": ("interpret.mutagenesis", "interpret.satmut", "interpret.saliency", "interpret.sites"),
    "fastism": ("interpret.fastism", "interpret.fastism_layers", "interpret.mutagenesis"),
}


def _moved_warning(old: str, new: str, stacklevel: int = 3) -> None:
    import warnings

    warnings.warn(f"basenji_tk.{old} is now basenji_tk.{new}; the old name goes in basenji_tk 0.3",
                  DeprecationWarning, stacklevel=stacklevel)


def _search_homes(old: str, homes, name: str, stacklevel: int = 3):
    """``name`` from the first of the modules ``homes`` (full names) that has it, with a
    DeprecationWarning saying where it lives now; ``old`` is the 0.1 module (``coverage``)."""
    import importlib

    if not name.startswith("__"):
        for home in homes:
            module = importlib.import_module(home)
            if hasattr(module, name):
                value = getattr(module, name)
                defined = getattr(value, "__module__", None)  # a home may import the name from another home
                home = defined if defined in homes else home
                _moved_warning(f"{old}.{name}", f"{home.partition('.')[2]}.{name}", stacklevel)
                return value
    raise AttributeError(f"module 'basenji_tk.{old}' has no attribute {name!r}")


def moved_attribute(package: str, former: tuple, name: str):
    """``package.name`` for a stage package that was one module in 0.1 (``basenji_tk.coverage``):
    the name from the first of its ``former`` submodules that has it (a package's ``__getattr__``).

    A submodule's own name is no 0.1 name: ``from basenji_tk.coverage import checks`` asks the
    package for the attribute before it imports the submodule, and searching ``former`` then would
    import those modules from inside each other's imports (a circular import)."""
    import importlib.util

    if not name.startswith("__") and importlib.util.find_spec(f"{package}.{name}") is not None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return _search_homes(package.partition(".")[2], [f"{package}.{sub}" for sub in former], name, stacklevel=5)


class _MovedFinder:
    """Answers ``import basenji_tk.<old name>`` with the module at its new place.

    A module that moved whole is returned as itself; one whose names were split over several
    modules (a tuple in :data:`MOVED`) gets a stand-in that looks each name up in them."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix != __name__ or old not in MOVED:
            return None
        import importlib.util

        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        import functools
        import importlib
        import types

        old = spec.name.partition(".")[2]
        homes = MOVED[old] if isinstance(MOVED[old], tuple) else (MOVED[old],)
        _moved_warning(old, homes[0] + (f" (with {', '.join(homes[1:])})" if len(homes) > 1 else ""))
        if len(homes) == 1:
            module = importlib.import_module(f"{__name__}.{homes[0]}")
            spec.loader_state = module.__spec__  # the import system sets __spec__ to this alias spec next
            return module
        module = types.ModuleType(spec.name, f"The 0.1 module basenji_tk.{old}, now in basenji_tk.{', '.join(homes)}.")
        module.__getattr__ = functools.partial(_search_homes, old, [f"{__name__}.{h}" for h in homes])
        return module

    def exec_module(self, module):
        if getattr(module.__spec__, "loader_state", None) is not None:
            module.__spec__ = module.__spec__.loader_state  # already executed at its new place


def __getattr__(name):
    # ``basenji_tk.train`` after a bare ``import basenji_tk`` (the stage packages import as usual)
    if name in MOVED:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")  # through _MovedFinder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


sys.meta_path.append(_MovedFinder())

if "keras" in sys.modules:
    _register_keras_objects()
else:
    on_import("keras", _then_register)
