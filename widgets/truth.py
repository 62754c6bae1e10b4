"""The truth-probe explorer: layer, L2 and L1 strength → AUROC, cosine and support-overlap maps.

Geometries of Truth (Azizian et al. 2025; :mod:`otkit.truth.study`): a probe trained to tell a
model's right answers from its wrong ones on one task, tested on every task. The explorer shows,
for the small multi-task transformer of notebook 13:

* the controls: **layer** (a block whose residual stream at ``=`` is probed), **C** (the
  probes' inverse L2 strength, over :data:`CS`) and **sparsity** ``l1_C`` (the inverse strength
  of sparse L1 probes, over :data:`L1_CS`: smaller keeps fewer neurons);
* three heat-maps: the AUROC matrix (row: task trained on, column: task tested on), the cosine
  matrix of the probe directions, and the Jaccard overlap of the L1 probes' supports
  (:func:`otkit.truth.transfer.support`, fitted on each task's examples);
* in the stats: mean in-task and cross-task AUROC, mean off-task |cos|, the mean support size
  and the mean off-task Jaccard against that of random supports of the same sizes.

The model is trained once per process (:func:`otkit.truth.train_multitask`, about a minute on
one core) and its activations kept; a notebook may pass its own ``trained`` model instead.

Stable names for browser tests: traces ``"auroc"``, ``"cosine"`` and ``"jaccard"``; the outer
box has the class ``otkit-truth``; ``layout.meta`` holds ``layer``, ``C``, ``l1_C``,
``in_task``, ``cross_task``, ``abs_cosine``, ``support_size`` and ``jaccard``; stats spans
``.otkit-stat-<name>`` for ``layer``, ``C``, ``l1_C``, ``in_task``, ``cross_task``,
``abs_cosine``, ``support_size``, ``jaccard`` and ``random_jaccard``.
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
from otkit.truth.transfer import random_jaccard, support
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["CS", "L1_CS", "TruthState", "compute_truth", "TruthExplorer"]

#: The C slider's stops (inverse L2 strength of the probes).
CS = (0.001, 0.01, 0.1, 1.0, 10.0)
#: The sparsity slider's stops (inverse L1 strength of the sparse probes).
L1_CS = (0.01, 0.03, 0.1, 0.3)
FIT_CACHE = FitCache(32)


@functools.lru_cache(maxsize=2)
def _default_model(seed: int) -> MultiTaskModel:
    return train_multitask(seed=seed)


@dataclass(frozen=True, eq=False)
class TruthState:
    """The probe study at one (layer, C), the L1 supports at ``l1_C``, and headline numbers."""

    layer: int
    C: float
    study: ProbeStudy
    in_task: float
    cross_task: float
    abs_cosine: float
    l1_C: float = 0.03
    supports: tuple = ()
    jaccard: np.ndarray | None = None
    support_size: float = float("nan")
    mean_jaccard: float = float("nan")
    random_jaccard: float = float("nan")


def _inputs(trained: MultiTaskModel):
    key = ("inputs", id(trained))
    return FIT_CACHE.get(key, lambda: (last_prompt_activations(trained.model, trained.data),
                                       answer_correct(trained.model, trained.data)))[0]


def _supports(acts, correct, task, layer: int, l1_C: float, seed: int) -> tuple[np.ndarray, ...]:
    x = acts[layer].double().numpy()
    y, t = correct.numpy().astype(int), task.numpy()
    out = []
    for i in sorted(set(t.tolist())):
        xi, yi = x[t == i], y[t == i]
        out.append(support(xi, yi, C=l1_C, seed=seed) if len(np.unique(yi)) == 2
                   else np.array([], dtype=int))
    return tuple(out)


def compute_truth(layer: int = 2, C: float = 1.0, l1_C: float = 0.03, *,
                  trained: MultiTaskModel | None = None, seed: int = 0) -> TruthState:
    """Probes at ``layer`` (1 … L) with inverse L2 strength ``C`` (one of :data:`CS`), and L1
    supports at inverse strength ``l1_C`` (one of :data:`L1_CS`)."""
    trained = _default_model(seed) if trained is None else trained
    n_layers = len(trained.model.blocks)
    check_choice("layer", layer, tuple(range(1, n_layers + 1)))
    check_choice("C", C, CS)
    check_choice("l1_C", l1_C, L1_CS)
    acts, correct = _inputs(trained)
    study, _ = FIT_CACHE.get(("study", id(trained), layer, C), lambda: probe_study(
        acts, correct, trained.data.task, C=C, layers=[layer], seed=seed))
    cross = study.cross_task(layer)
    supports, _ = FIT_CACHE.get(("supports", id(trained), layer, l1_C), lambda: _supports(
        acts, correct, trained.data.task, layer, l1_C, seed))
    k = len(supports)
    jaccard = np.full((k, k), np.nan)
    chance = []
    for a in range(k):
        for b in range(k):
            if a != b and len(supports[a]) and len(supports[b]):
                union = len(np.union1d(supports[a], supports[b]))
                jaccard[a, b] = len(np.intersect1d(supports[a], supports[b])) / union
                if a < b:
                    chance.append(random_jaccard(acts.shape[-1], len(supports[a]), len(supports[b]),
                                                 samples=200, seed=seed))
    off = jaccard[~np.eye(k, dtype=bool)]
    return TruthState(int(layer), float(C), study, float(np.nanmean(study.in_task(layer))),
                      float(np.nanmean(cross)), float(np.nanmean(study.off_cosine(layer))),
                      float(l1_C), supports, jaccard, float(np.mean([len(x) for x in supports])),
                      float(np.nanmean(off)) if np.isfinite(off).any() else float("nan"),
                      float(np.mean(chance)) if chance else float("nan"))


class TruthExplorer(InteractiveFigure):
    """The truth-probe explorer (module docstring)."""

    css_class = "otkit-truth"

    def __init__(self, *, layer: int = 2, C: float = 1.0, l1_C: float = 0.03,
                 trained: MultiTaskModel | None = None, seed: int = 0, debounce_ms: float = 150,
                 disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            self.trained = _default_model(seed) if trained is None else trained
            compute_truth(layer, C, l1_C, trained=self.trained, seed=seed)  # validates
        self.seed = seed
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         layer=int(layer), C=float(C), l1_C=float(l1_C))

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
            "l1_C": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in L1_CS], value=0.03,
                                        description="sparsity (inverse L1)", style=style,
                                        layout=ipw.Layout(width="360px")),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=3, subplot_titles=("AUROC (train → test task)",
                                                            "cosine of probe directions",
                                                            "L1 support overlap (Jaccard)"))
        fig.add_trace(go.Heatmap(name="auroc", z=[[0]], zmin=0.2, zmax=0.8,
                                 colorscale="RdBu_r", showscale=False), 1, 1)
        fig.add_trace(go.Heatmap(name="cosine", z=[[0]], zmin=-1, zmax=1,
                                 colorscale="RdBu_r", showscale=False), 1, 2)
        fig.add_trace(go.Heatmap(name="jaccard", z=[[0]], zmin=0, zmax=1,
                                 colorscale="Blues", showscale=False), 1, 3)
        return figure_widget(fig, "truth probes …", height=420, legend=None)

    def compute(self, **params) -> TruthState:
        return compute_truth(params["layer"], params["C"], params["l1_C"], trained=self.trained,
                             seed=self.seed)

    def draw(self, state: TruthState) -> None:
        tasks = list(state.study.tasks)
        for name, m in (("auroc", state.study.auroc[state.layer]),
                        ("cosine", state.study.cosine[state.layer]), ("jaccard", state.jaccard)):
            self.trace(name).update(z=np.round(m, 3).tolist(), x=tasks, y=tasks,
                                    text=np.round(m, 2).tolist(), texttemplate="%{text}")
        self.figure.layout.title.text = (
            f"layer {state.layer}, C = {state.C:g}: in-task AUROC {state.in_task:.3f}, "
            f"cross-task {state.cross_task:.3f}, off-task |cos| {state.abs_cosine:.3f}")
        self.figure.layout.meta = {"layer": state.layer, "C": state.C, "l1_C": state.l1_C,
                                   "in_task": state.in_task, "cross_task": state.cross_task,
                                   "abs_cosine": state.abs_cosine,
                                   "support_size": state.support_size,
                                   "jaccard": state.mean_jaccard}
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("layer", "layer", repr(state.layer), str(state.layer)),
            _stat("C", "C", repr(state.C), f"{state.C:g}"),
            _stat("in_task", "in-task AUROC", repr(state.in_task), f"{state.in_task:.3f}"),
            _stat("cross_task", "cross-task AUROC", repr(state.cross_task),
                  f"{state.cross_task:.3f}"),
            _stat("abs_cosine", "off-task |cos|", repr(state.abs_cosine),
                  f"{state.abs_cosine:.3f}"),
            _stat("l1_C", "L1 C", repr(state.l1_C), f"{state.l1_C:g}"),
            _stat("support_size", "support size", repr(state.support_size),
                  f"{state.support_size:.1f}"),
            _stat("jaccard", "off-task Jaccard", repr(state.mean_jaccard),
                  f"{state.mean_jaccard:.3f}"),
            _stat("random_jaccard", "random supports' Jaccard", repr(state.random_jaccard),
                  f"{state.random_jaccard:.3f}"),
        ]) + "</div>"
