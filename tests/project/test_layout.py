"""The house layout: an engine that knows no paper, shared blocks below the papers, one package
per paper, and nothing in otkit that imports widgets. Checked by parsing every import (module
level and inside functions) of every file under otkit/."""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

OTKIT = Path(__file__).resolve().parents[2] / "otkit"

#: The engine: solvers, costs, maps and checks that every paper builds on.
ENGINE = {
    "backends", "batched", "costs", "coupling", "differentiation", "distributed", "divergence",
    "epsilon", "exact", "gaussian", "geometry", "kernels", "maps", "multiscale", "sinkhorn",
    "validation",
}
#: Shared building blocks: may import the engine only.
SHARED = {"nn", "data", "stats"}
#: One package per paper, with the papers each one extends (and so may import).
PAPERS = {
    "progot": set(),
    "semidiscrete": set(),
    "flows": {"semidiscrete"},  # SD-FM pairs come from a semidiscrete potential
    "conformal": set(),
    "steering": {"flows"},  # the image task steers the digits flow model
    "elastic": set(),
    "lowrank": set(),
    "bloop": set(),
    "amips": {"semidiscrete", "flows"},  # semidiscrete assignments are a MIPS; SD-FM flows
    "reflow": {"flows"},  # ReFlow retrains otkit.flows models on teacher pairs
    "truth": {"steering"},  # probes read activations through the steering hooks
    "dataquality": set(),
    "nectar": set(),
    "completep": set(),
    "aim": set(),
    "odes": set(),
}
#: Infrastructure: batch runs of notebooks; imports the engine at most.
INFRASTRUCTURE = {"runs"}
#: The package facade (re-exports public names) and the table of moved module paths.
FACADE = {"__init__", "__main__", "_moved"}


def _top(path: Path) -> str:
    """The first component below otkit/ of a source file: ``sinkhorn``, ``progot``, ..."""
    return path.relative_to(OTKIT).with_suffix("").parts[0]


def _imports(source: str, where: Path) -> set[str]:
    """The otkit components (``widgets`` for the widgets package) imported by ``source``, the
    text of the file at ``where`` (a path relative to otkit/, e.g. ``progot/solver.py``)."""
    tree = ast.parse(source)
    package = list(where.parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:
                base = package[: len(package) - (node.level - 1)]
                module = base + (node.module.split(".") if node.module else [])
                if node.module is None:  # from . import x, y: each name may be a module
                    names = ["otkit." + ".".join(module + [a.name]) for a in node.names]
                else:
                    names = ["otkit." + ".".join(module)]
        for name in names:
            parts = name.split(".")
            if parts[0] == "widgets":
                found.add("widgets")
            elif parts[0] == "otkit" and len(parts) > 1:
                found.add(parts[1])
    return found


def _sources() -> list[Path]:
    return sorted(p for p in OTKIT.rglob("*.py"))


def test_every_component_has_a_place():
    known = ENGINE | SHARED | set(PAPERS) | INFRASTRUCTURE | FACADE
    unplaced = sorted({_top(p) for p in _sources()} - known)
    assert not unplaced, f"give {unplaced} a place in the layout (engine, nn/data or a paper)"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(OTKIT)))
def test_imports_follow_the_layout(path):
    top = _top(path)
    imported = _imports(path.read_text(), path.relative_to(OTKIT)) - {top}
    assert "widgets" not in imported, "otkit must never import widgets"
    if top in ENGINE:
        allowed = ENGINE
    elif top in SHARED:
        allowed = ENGINE
    elif top in PAPERS:
        allowed = ENGINE | SHARED | PAPERS[top]
    elif top in INFRASTRUCTURE:
        allowed = ENGINE
    else:  # the facade
        return
    above = sorted(imported - allowed)
    assert not above, f"otkit/{path.relative_to(OTKIT)} ({top}) imports {above} above its layer"


def test_the_checker_sees_violations():
    """Relative, absolute and function-level imports are all found (the test can fail)."""
    source = "import widgets\ndef f():\n    from .elastic.costs import ElasticCost\n"
    assert _imports(source, Path("sinkhorn.py")) == {"elastic", "widgets"}
    assert _imports("from ..steering import steer\n", Path("nn/hooks.py")) == {"steering"}
    assert _imports("from .. import datasets\n", Path("flows/x.py")) == {"datasets"}


MOVED_EXAMPLES = [
    ("otkit.conformal_study", "compare_conformal_methods"),
    ("otkit.datasets", "moons"),
    ("otkit.datasets", "perturbed_expression"),
    ("otkit.subspace_cost", "learn_subspace"),
    ("otkit.tables", "dict_table"),
    ("otkit.flows.networks", "VelocityMLP"),
    ("widgets.sharpness", "SharpnessExplorer"),
]


@pytest.mark.parametrize(("old", "name"), MOVED_EXAMPLES)
def test_old_module_paths_still_import_with_a_warning(old, name):
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="moved to"):
        module = importlib.import_module(old)
    assert callable(getattr(module, name))


def test_public_names_keep_working():
    import otkit
    from otkit.conformal import OTCP
    from otkit.elastic import elastic_cost, elastic_map  # noqa: F401
    from otkit.flows import VelocityMLP, integrate, train_flow  # noqa: F401
    from otkit.steering import collect_activations, find_modules, steer  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert callable(otkit.sinkhorn) and callable(otkit.progot) and callable(otkit.lowrank)
        assert callable(otkit.semidiscrete) and otkit.OTCP is OTCP
