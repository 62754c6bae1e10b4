"""The truth-probe explorer: layer and L2 strength → in/cross-task AUROC and cosine heat-maps.

Geometries of Truth (Azizian et al. 2025; :mod:`otkit.truth.study`): a probe trained to tell a
model's right answers from its wrong ones on one task, tested on every task. The explorer shows,
for the small multi-task transformer of notebook 13:

* the controls: **layer** (a block whose residual stream at ``=`` is probed) and **C** (the
  probes' inverse L2 strength, over :data:`CS`);
* two heat-maps: the AUROC matrix (row: task trained on, column: task tested on) and the cosine
  matrix of the probe directions;
* in the stats: mean in-task and cross-task AUROC and mean off-task |cos|.

The model is trained once per process (:func:`otkit.truth.train_multitask`, about a minute on
one core) and its activations kept; a notebook may pass its own ``trained`` model instead.

Stable names for browser tests: traces ``"auroc"`` and ``"cosine"``; the outer box has the
class ``otkit-truth``; ``layout.meta`` holds ``layer``, ``C``, ``in_task``, ``cross_task``
and ``abs_cosine``; stats spans ``.otkit-stat-layer``, ``.otkit-stat-C``,
``.otkit-stat-in_task``, ``.otkit-stat-cross_task``, ``.otkit-stat-abs_cosine``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from otkit.truth import (
    MultiTaskModel,
    answer_correct,
    last_prompt_activations,
    probe_study,
    train_multitask,
)
from otkit.truth.study import ProbeStudy
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["CS", "TruthState", "compute_truth", "TruthExplorer"]

#: The C slider's stops (inverse L2 strength of the probes).
CS = (0.001, 0.01, 0.1, 1.0, 10.0)
FIT_CACHE = FitCache(32)


@functools.lru_cache(maxsize=2)
def _default_model(seed: int) -> MultiTaskModel:
    return train_multitask(seed=seed)


@dataclass(frozen=True, eq=False)
class TruthState:
    """The probe study at one (layer, C) and its headline numbers."""

    layer: int
    C: float
    study: ProbeStudy
    in_task: float
    cross_task: float
    abs_cosine: float


def _inputs(trained: MultiTaskModel):
    key = ("inputs", id(trained))
    return FIT_CACHE.get(key, lambda: (last_prompt_activations(trained.model, trained.data),
                                       answer_correct(trained.model, trained.data)))[0]


def compute_truth(layer: int = 2, C: float = 1.0, *, trained: MultiTaskModel | None = None,
                  seed: int = 0) -> TruthState:
    """Probes at ``layer`` (1 … L) with inverse L2 strength ``C`` (one of :data:`CS`)."""
    trained = _default_model(seed) if trained is None else trained
    n_layers = len(trained.model.blocks)
    check_choice("layer", layer, tuple(range(1, n_layers + 1)))
    check_choice("C", C, CS)
    acts, correct = _inputs(trained)
    study, _ = FIT_CACHE.get(("study", id(trained), layer, C), lambda: probe_study(
        acts, correct, trained.data.task, C=C, layers=[layer], seed=seed))
    cross = study.cross_task(layer)
    return TruthState(int(layer), float(C), study, float(np.nanmean(study.in_task(layer))),
                      float(np.nanmean(cross)), float(np.nanmean(study.off_cosine(layer))))


class TruthExplorer(InteractiveFigure):
    """The truth-probe explorer (module docstring)."""

    css_class = "otkit-truth"

    def __init__(self, *, layer: int = 2, C: float = 1.0, trained: MultiTaskModel | None = None,
                 seed: int = 0, debounce_ms: float = 150, disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            self.trained = _default_model(seed) if trained is None else trained
            compute_truth(layer, C, trained=self.trained, seed=seed)  # validates
        self.seed = seed
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         layer=int(layer), C=float(C))

    def make_controls(self):
        style = {"description_width": "initial"}
        n = len(self.trained.model.blocks)
        return {
            "layer": ipw.SelectionSlider(options=[(str(v), v) for v in range(1, n + 1)],
                                         value=n, description="layer", style=style,
                                         layout=ipw.Layout(width="300px")),
            "C": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in CS], value=1.0,
                                     description="C (inverse L2)", style=style,
                                     layout=ipw.Layout(width="360px")),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("AUROC (train → test task)",
                                                            "cosine of probe directions"))
        fig.add_trace(go.Heatmap(name="auroc", z=[[0]], zmin=0.2, zmax=0.8,
                                 colorscale="RdBu_r", showscale=False), 1, 1)
        fig.add_trace(go.Heatmap(name="cosine", z=[[0]], zmin=-1, zmax=1,
                                 colorscale="RdBu_r", showscale=False), 1, 2)
        return figure_widget(fig, "truth probes …", height=420, legend=None)

    def compute(self, **params) -> TruthState:
        return compute_truth(params["layer"], params["C"], trained=self.trained, seed=self.seed)

    def draw(self, state: TruthState) -> None:
        tasks = list(state.study.tasks)
        for name, m in (("auroc", state.study.auroc[state.layer]),
                        ("cosine", state.study.cosine[state.layer])):
            self.trace(name).update(z=np.round(m, 3).tolist(), x=tasks, y=tasks,
                                    text=np.round(m, 2).tolist(), texttemplate="%{text}")
        self.figure.layout.title.text = (
            f"layer {state.layer}, C = {state.C:g}: in-task AUROC {state.in_task:.3f}, "
            f"cross-task {state.cross_task:.3f}, off-task |cos| {state.abs_cosine:.3f}")
        self.figure.layout.meta = {"layer": state.layer, "C": state.C, "in_task": state.in_task,
                                   "cross_task": state.cross_task,
                                   "abs_cosine": state.abs_cosine}
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("layer", "layer", repr(state.layer), str(state.layer)),
            _stat("C", "C", repr(state.C), f"{state.C:g}"),
            _stat("in_task", "in-task AUROC", repr(state.in_task), f"{state.in_task:.3f}"),
            _stat("cross_task", "cross-task AUROC", repr(state.cross_task),
                  f"{state.cross_task:.3f}"),
            _stat("abs_cosine", "off-task |cos|", repr(state.abs_cosine),
                  f"{state.abs_cosine:.3f}"),
        ]) + "</div>"
