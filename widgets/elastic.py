"""The elastic explorer: which coordinates an elastic Monge map moves, as λ and r change.

MBO (Cuturi, Klein and Ablin 2023; :mod:`otkit.elastic`) estimates Monge maps for costs
h(x − y), h(z) = ½‖z‖² + λ r(z), whose displacements T(x) − x are sparse for a sparsifying
regularizer r. The explorer fits them on a planted sparse translation (x ~ N(0, I_d), the
target shifted by δ on a few coordinates, the Monge map of every convex h) and shows:

* the controls: **λ** (a slider over :data:`LAMS`; 0 is the squared-Euclidean map) and the
  **regularizer** (L1 or STVS);
* left: the displacements of a few held-out points, coordinate by coordinate (a heatmap;
  white is exactly 0), with δ on top: which coordinates move and by how much;
* right: the trade-off between sparsity and accuracy over λ for both regularizers (the fraction
  of coordinates moved against the error to δ), with a marker at the current setting.

Every (regularizer, λ) map is fitted once (:data:`FIT_CACHE`); ``compute_elastic`` is the same
computation without a browser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from otkit.elastic import elastic_cost, sparse_shift_problem
from otkit.elastic.study import MOVED
from otkit.sinkhorn import sinkhorn
from otkit.validation import check_choice

from .base import (
    FitCache,
    InteractiveFigure,
    _stat,
    figure_widget,
    rows_with_gaps,
    torch_threads,
)

__all__ = ["LAMS", "REGULARIZERS", "FIT_CACHE", "ElasticFit", "ElasticState", "compute_elastic",
           "ElasticExplorer", "error_range"]

LAMS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)  # STVS needs λ ≤ 2ρ for a convex h
REGULARIZERS = ("l1", "stvs")
LABELS = {"l1": "L1", "stvs": "STVS"}
#: The planted problem: dimension, points per side, shifted coordinates, shift, points shown.
D, N, K, SHIFT, SHOWN = 30, 300, 4, 2.0, 8
RELATIVE_EPSILON = 0.5

FIT_CACHE = FitCache(32)


@dataclass(frozen=True, eq=False)
class ElasticFit:
    """One map on the planted problem: ``displacements: [SHOWN, D]`` of the points shown and
    the scores on all held-out points (``moved``, ``error``, ``recall``; see
    :func:`otkit.elastic.study.sparse_shift_study`)."""

    regularizer: str
    lam: float
    displacements: torch.Tensor
    moved: float
    error: float
    recall: float
    seconds: float


@dataclass(frozen=True, eq=False)
class ElasticState:
    """The explorer's state: the current fit, the trade-off curves and δ."""

    fit: ElasticFit
    curves: dict[str, tuple[ElasticFit, ...]]
    delta: torch.Tensor
    cached: bool


def _problem(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x, _, delta = sparse_shift_problem(N, D, K, shift=SHIFT, generator=gen)
    y = torch.randn(N, D, generator=gen, dtype=torch.float64) + delta
    x_test = torch.randn(200, D, generator=gen, dtype=torch.float64)
    return x, y, x_test, delta


def _fit(regularizer: str, lam: float, seed: int) -> ElasticFit:
    x, y, x_test, delta = _problem(seed)
    start = time.perf_counter()
    cost = "sqeuclidean" if lam == 0 else elastic_cost(
        regularizer, lam=lam, **({"gamma": 1.0} if regularizer == "stvs" else {}))
    disp = sinkhorn(x, y, cost=cost, relative_epsilon=RELATIVE_EPSILON).transport(x_test) - x_test
    moved = disp.abs() > MOVED
    return ElasticFit(
        regularizer, lam, disp[:SHOWN].clone(), moved.double().mean().item(),
        (((disp - delta) ** 2).sum(1).mean() / (delta**2).sum()).item(),
        moved[:, delta != 0].double().mean().item(), time.perf_counter() - start,
    )


def _cached_fit(regularizer: str, lam: float, seed: int) -> tuple[ElasticFit, bool]:
    key = ("sqeuclidean" if lam == 0 else regularizer, lam, seed)
    return FIT_CACHE.get(key, lambda: _fit(regularizer, lam, seed))


def compute_elastic(regularizer: str = "l1", lam: float = 1.0, *, seed: int = 0) -> ElasticState:
    """The map of ``regularizer`` at ``lam`` (one of :data:`LAMS`) and both trade-off curves."""
    check_choice("regularizer", regularizer, REGULARIZERS)
    check_choice("lam", lam, LAMS)
    fit, cached = _cached_fit(regularizer, float(lam), seed)
    curves = {r: tuple(_cached_fit(r, v, seed)[0] for v in LAMS) for r in REGULARIZERS}
    return ElasticState(fit, curves, _problem(seed)[3], cached)


def error_range(state: ElasticState) -> list[float]:
    """The trade-off panel's error axis: every point of both curves, with room for the "now"
    marker (14 px) above and below; the same for every λ, so the curves stay put."""
    errors = [f.error for fits in state.curves.values() for f in fits]
    low, high = min(errors), max(errors)
    pad = 0.08 * max(high - low, 1e-3)
    return [low - pad, high + pad]


class ElasticExplorer(InteractiveFigure):
    """The elastic explorer (module docstring).

    Args:
        regularizer: ``"l1"`` or ``"stvs"``; lam: one of :data:`LAMS`; seed: the problem's.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-elastic"

    def __init__(self, *, regularizer: str = "l1", lam: float = 0.0, seed: int = 0,
                 debounce_ms: float = 150, disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            compute_elastic(regularizer, lam, seed=seed)  # validates (and warms the cache)
        self.seed = seed
        self.cached = False
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         lam=float(lam), regularizer=regularizer)

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "lam": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in LAMS], value=LAMS[0],
                                       description="λ", continuous_update=True, style=style,
                                       layout=ipw.Layout(width="360px")),
            "regularizer": ipw.ToggleButtons(options=[(LABELS[r], r) for r in REGULARIZERS],
                                             value="l1", description="regularizer", style=style),
        }

    def make_figure(self) -> go.FigureWidget:
        # the colour bar stands in the gap, thin, clear of the right panel's axis title
        fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.2,
                            subplot_titles=("displacements T(x) − x", "sparsity against accuracy"))
        fig.add_trace(go.Heatmap(name="displacements", z=[], colorscale="RdBu", zmid=0,
                                 zmin=-SHIFT, zmax=SHIFT,
                                 colorbar={"x": 0.49, "len": 0.8, "thickness": 14},
                                 hovertemplate="coordinate %{x}, %{y}: %{z:.3f}<extra></extra>"),
                      row=1, col=1)
        for r, color in zip(REGULARIZERS, ("#1f77b4", "#2ca02c")):
            fig.add_trace(go.Scatter(name=r, mode="lines+markers", x=[], y=[],
                                     line={"color": color}), row=1, col=2)
        fig.add_trace(go.Scatter(name="now", mode="markers", x=[], y=[],
                                 marker={"size": 14, "color": "#d62728",
                                         "line": {"width": 1, "color": "black"}}), row=1, col=2)
        fig.update_xaxes(title_text="coordinate", row=1, col=1)
        fig.update_yaxes(autorange="reversed", row=1, col=1)
        fig.update_xaxes(title_text="fraction of coordinates moved", range=[0, 1.05], row=1, col=2)
        fig.update_yaxes(title_text="error to δ (normalized)", row=1, col=2)
        # The legend in the lower right corner: the curves rise from lower left (sparse maps)
        # to upper right (λ = 0, every coordinate moved), where the default λ puts the marker.
        return figure_widget(fig, "elastic map …", height=420, margin={"r": 20, "b": 50},
                             legend="lower corner")

    def compute(self, **params) -> ElasticState:
        state = compute_elastic(params["regularizer"], params["lam"], seed=self.seed)
        self.cached = state.cached
        return state

    def draw(self, state: ElasticState) -> None:
        fit = state.fit
        z = torch.cat([state.delta[None], torch.full((1, D), float("nan"),
                                                     dtype=torch.float64),
                       fit.displacements])
        labels = ["δ (truth)", " "] + [f"point {i}" for i in range(SHOWN)]
        self.trace("displacements").update(z=rows_with_gaps(z), y=labels, x=list(range(D)))
        for r in REGULARIZERS:
            self.trace(r).update(x=[f.moved for f in state.curves[r]],
                                 y=[f.error for f in state.curves[r]],
                                 text=[f"λ = {f.lam:g}" for f in state.curves[r]])
        self.trace("now").update(x=[fit.moved], y=[fit.error])
        self.figure.layout.yaxis2.range = error_range(state)
        name = "squared Euclidean" if fit.lam == 0 else f"{LABELS[fit.regularizer]}, λ = {fit.lam:g}"
        self.figure.layout.title.text = (
            f"{name}: {fit.moved:.0%} of coordinates moved, error {fit.error:.3f}, "
            f"support recall {fit.recall:.0%}<br><sup>x ~ N(0, I_{D}), target shifted by "
            f"{SHIFT:g} on {K} coordinates; {N} points per side, ε = {RELATIVE_EPSILON} × std"
            "</sup>")
        self.figure.layout.meta = {
            "regularizer": fit.regularizer, "lam": fit.lam, "moved": fit.moved,
            "error": fit.error, "recall": fit.recall, "zeros": int((fit.displacements.abs() <= MOVED).sum()),
            "curve_moved": {r: [f.moved for f in state.curves[r]] for r in REGULARIZERS},
            "cached": state.cached,
        }
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("lam", "λ", repr(fit.lam), f"{fit.lam:g}"),
            _stat("regularizer", "regularizer", fit.regularizer, LABELS[fit.regularizer]),
            _stat("moved", "moved", repr(fit.moved), f"{fit.moved:.1%}",
                  "fraction of coordinates of 200 held-out points that move"),
            _stat("error", "error", repr(fit.error), f"{fit.error:.3f}",
                  "mean ‖T(x) − x − δ‖² / ‖δ‖²"),
            _stat("recall", "support recall", repr(fit.recall), f"{fit.recall:.0%}"),
        ]) + "</div>"
