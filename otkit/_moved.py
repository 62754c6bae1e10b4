"""Old module paths of otkit and widgets, kept importable after the move to one package per paper.

``import otkit.conformal_study`` (say) still works: it gives a module holding the names of
``otkit.conformal.study`` and warns once (:class:`DeprecationWarning`) with the new path. The
table is the record of where each module went; nothing else in otkit imports an old path
(``tests/project/test_layout.py``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: old module path -> new module path
MOVED: dict[str, str] = {
    "otkit.map_estimation": "otkit.progot.study",
    "otkit.solver_comparison": "otkit.progot.study",
    "otkit.conformal_metrics": "otkit.conformal.metrics",
    "otkit.conformal_study": "otkit.conformal.study",
    "otkit.regression_data": "otkit.conformal.data",
    "otkit.elastic_ground_truth": "otkit.elastic.ground_truth",
    "otkit.elastic_study": "otkit.elastic.study",
    "otkit.subspace_cost": "otkit.elastic.subspace",
    "otkit.datasets": "otkit.data.samplers",
    "otkit.ground_truth": "otkit.data.ground_truth",
    "otkit.tables": "otkit.runs.tables",
    "otkit.flows.networks": "otkit.nn.velocity",
    "otkit.flows.sampling": "otkit.nn.ode",
    "widgets.sharpness": "widgets.flows",
    "widgets.laguerre": "widgets.semidiscrete",
    "widgets.conformal_explorer": "widgets.conformal",
    "widgets.lowrank_explorer": "widgets.lowrank",
    "widgets.progot_explorer": "widgets.progot",
}

#: names that moved to a different module than the rest of theirs (old path -> {name: module})
MOVED_NAMES: dict[str, dict[str, str]] = {
    "otkit.datasets": {
        "perturbed_expression": "otkit.elastic.data",
        "PerturbedExpression": "otkit.elastic.data",
    },
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        return None  # a fresh module object, filled below

    def exec_module(self, module) -> None:
        old = module.__name__
        warnings.warn(
            f"{old} moved to {self.new}; import it from there (the old path will go)",
            DeprecationWarning,
            stacklevel=2,
        )
        target = importlib.import_module(self.new)
        names = {k: v for k, v in vars(target).items() if not k.startswith("__")}
        for name, where in MOVED_NAMES.get(old, {}).items():
            names[name] = getattr(importlib.import_module(where), name)
        module.__dict__.update(names)
        module.__all__ = list(getattr(target, "__all__", [])) + list(MOVED_NAMES.get(old, {}))


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
