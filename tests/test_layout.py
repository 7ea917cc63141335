"""The package's layout: stages in the order data flows, small modules, old names still import.

A module may import from its own stage, from the stages before it, and from the shared modules
(``errors``, ``files``, ``cli``, ``plots``, ``stats``); ``io`` imports none of the stages. Function-level
imports count too: a lazy import is still a dependency.
"""

import ast
import importlib
import warnings
from pathlib import Path

import pytest

import basenji_tk

PACKAGE = Path(basenji_tk.__file__).parent
STAGES = ["io", "coverage", "data", "model", "analysis", "interpret", "hyper"]
SHARED = {"errors", "files", "cli", "plots", "stats", "__init__"}
MAX_LINES = 600


def modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def stage_of(path: Path):
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def imported_stages(path: Path):
    """(line, stage or shared module name) for every basenji_tk import in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "basenji_tk":
                names = [f"basenji_tk.{a.name}" for a in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "basenji_tk" and len(parts) > 1:
                yield node.lineno, parts[1]


def test_every_module_sits_in_a_stage_or_is_shared():
    for path in modules():
        stage = stage_of(path)
        assert stage in STAGES or (stage is None and path.stem in SHARED), path


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_earlier_stages(path):
    stage = stage_of(path)
    rank = STAGES.index(stage) if stage else -1  # shared modules import only shared modules
    for line, target in imported_stages(path):
        if target in SHARED or target in ("__version__", "moved_attribute", "on_import"):
            continue
        assert target in STAGES, f"{path}:{line} imports basenji_tk.{target}, not a stage"
        assert STAGES.index(target) <= rank, (
            f"{path.relative_to(PACKAGE)}:{line} ({stage or 'shared'}) imports from {target}, a later stage")


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_600_lines(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"


@pytest.mark.parametrize("old", sorted(basenji_tk.MOVED))
def test_old_module_names_import_with_a_warning(old):
    import sys

    homes = basenji_tk.MOVED[old] if isinstance(basenji_tk.MOVED[old], tuple) else (basenji_tk.MOVED[old],)
    new = [importlib.import_module(f"basenji_tk.{home}") for home in homes]
    sys.modules.pop(f"basenji_tk.{old}", None)
    with pytest.warns(DeprecationWarning, match=f"basenji_tk.{old} is now basenji_tk.{homes[0]}"):
        module = importlib.import_module(f"basenji_tk.{old}")
    if len(homes) == 1:
        assert module is new[0] and module.__spec__.name == new[0].__name__
        return
    for home in new:  # a split module: a public function of each new home resolves through the old name
        name = next(n for n, v in vars(home).items() if callable(v) and not n.startswith("_")
                    and getattr(v, "__module__", None) == home.__name__)
        with pytest.warns(DeprecationWarning, match=f"basenji_tk.{old}.{name} is now"):
            assert getattr(module, name) is getattr(home, name)


def test_old_package_attributes_resolve_with_a_warning():
    from basenji_tk import coverage, hyper

    with pytest.warns(DeprecationWarning, match="basenji_tk.coverage.fit_gc is now"):
        fit_gc = coverage.fit_gc
    assert fit_gc.__name__ == "fit_gc"
    with pytest.warns(DeprecationWarning, match="basenji_tk.hyper.Domain is now"):
        assert hyper.Domain.__name__ == "Domain"
    with pytest.raises(AttributeError):
        coverage.no_such_name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from basenji_tk.model import train  # noqa: F401  the new names warn about nothing
