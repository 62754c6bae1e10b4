"""The Bloop explorer: λ and the EMA speed ρ moving a point on the fronts of the quadratic toy.

Bloop (Hsieh et al. 2024; :class:`otkit.nn.GradientSurgery`) follows
d = g_m + λ (g_a − ⟨g_a, ĝ⟩/‖ĝ‖² ĝ), ĝ an EMA of the main gradients with speed ρ. On the
paper's quadratic toy (:func:`otkit.bloop.study.quadratic_toy`: overparameterized linear
regression as the main loss, ½‖θ − θ_aux‖² as the auxiliary one; SGD on mini-batches) the
explorer shows:

* the controls: **λ** (a slider over :data:`LAMS`, logspace(−3, 3)) and **ρ** (a slider over
  :data:`RHOS`; ρ = 1 projects on the batch gradient itself, no EMA);
* the fronts of main against auxiliary loss over λ: Bloop's at the current ρ, and mixed
  training's, the Dynamic Barrier's and PCGrad's, as the paper runs them (no EMA);
* a marker at Bloop's (λ, ρ) run, small markers at the baselines' runs at the same λ, and in
  the title and stats the ratio of mixed training's main loss at the same auxiliary loss
  (its front interpolated, :func:`otkit.bloop.study.main_at_aux`) to Bloop's.

The runs are trained once each and kept (:data:`FIT_CACHE`): the baselines' fronts on the first
draw, Bloop's front for each ρ when it is first asked for (seven runs, a second or two).
``compute_bloop`` is the same computation without a browser.

Stable names for browser tests: traces ``"mixed"``, ``"dynamic_barrier"``, ``"pcgrad"``,
``"bloop"``, ``"baselines_now"`` and ``"now"``; the outer box has the class ``otkit-bloop``;
``layout.meta`` holds ``lam``, ``rho``, ``main``, ``aux``, ``mixed_at_equal_aux``, ``ratio``,
``front_main`` (Bloop's front, by λ) and ``cached``; the stats line has spans
``.otkit-stat-lam``, ``.otkit-stat-rho``, ``.otkit-stat-main``, ``.otkit-stat-aux`` and
``.otkit-stat-ratio``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go

from otkit.bloop.study import (
    PAPER_RHO,
    QuadraticToy,
    main_at_aux,
    quadratic_toy,
    train_quadratic,
)
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["LAMS", "RHOS", "BASELINES", "FIT_CACHE", "BloopRun", "BloopState", "compute_bloop",
           "BloopExplorer"]

#: The λ slider's stops: logspace(−3, 3), the toy's grid.
LAMS = tuple(float(v) for v in np.logspace(-3, 3, 7))
#: The ρ slider's stops (ρ = 1: no EMA).
RHOS = (0.001, 0.01, 0.1, 1.0)
#: The methods Bloop is drawn against, each with the paper's ρ (no EMA).
BASELINES = ("mixed", "dynamic_barrier", "pcgrad")
LABELS = {"bloop": "Bloop", "mixed": "mixed", "dynamic_barrier": "Dynamic Barrier",
          "pcgrad": "PCGrad"}
COLORS = {"bloop": "#d62728", "mixed": "#1f77b4", "dynamic_barrier": "#2ca02c",
          "pcgrad": "#9467bd"}
#: The toy (the paper's: p = 300, n = 256) and its training: SGD, lr 1e-3, batches of 64,
#: 500 epochs (half the notebook's 1,000, for speed; the fronts keep their shape).
P, N, EPOCHS, BATCH, LR = 300, 256, 500, 64, 1e-3

FIT_CACHE = FitCache(64)


@dataclass(frozen=True, eq=False)
class BloopRun:
    """One training run's final losses on the whole toy."""

    method: str
    lam: float
    rho: float
    main: float
    aux: float
    seconds: float


@dataclass(frozen=True, eq=False)
class BloopState:
    """The explorer's state: Bloop's run at (λ, ρ), its front at ρ, the baselines' fronts
    (by method) and runs at λ, and mixed training's main loss at Bloop's auxiliary loss
    (NaN outside mixed's front) with its ratio to Bloop's."""

    run: BloopRun
    front: tuple[BloopRun, ...]
    fronts: dict[str, tuple[BloopRun, ...]]
    baselines_now: dict[str, BloopRun]
    mixed_at_equal_aux: float
    ratio: float
    cached: bool


@functools.lru_cache(maxsize=4)
def _toy(seed: int) -> QuadraticToy:
    return quadratic_toy(P, N, seed=seed)


def _fit(method: str, lam: float, rho: float, seed: int) -> BloopRun:
    toy = _toy(seed)
    start = time.perf_counter()
    theta = train_quadratic(toy, method, lam, rho, epochs=EPOCHS, batch_size=BATCH, lr=LR,
                            seed=seed)
    return BloopRun(method, lam, rho, toy.main_loss(theta), toy.aux_loss(theta),
                    time.perf_counter() - start)


def _cached_fit(method: str, lam: float, rho: float, seed: int) -> tuple[BloopRun, bool]:
    return FIT_CACHE.get((method, lam, rho, seed), lambda: _fit(method, lam, rho, seed))


def compute_bloop(lam: float = 1.0, rho: float = 0.01, *, seed: int = 0) -> BloopState:
    """Bloop at ``lam`` (one of :data:`LAMS`) and ``rho`` (one of :data:`RHOS`), its front at
    ``rho`` and the baselines' fronts, on the toy drawn with ``seed``."""
    check_choice("lam", lam, LAMS)
    check_choice("rho", rho, RHOS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    lam, rho = float(lam), float(rho)
    run, cached = _cached_fit("bloop", lam, rho, seed)
    front = tuple(_cached_fit("bloop", v, rho, seed)[0] for v in LAMS)
    fronts = {b: tuple(_cached_fit(b, v, PAPER_RHO[b], seed)[0] for v in LAMS)
              for b in BASELINES}
    now = {b: next(r for r in fronts[b] if r.lam == lam) for b in BASELINES}
    mixed = main_at_aux([(r.aux, r.main) for r in fronts["mixed"]], run.aux)
    return BloopState(run, front, fronts, now, mixed, mixed / run.main, cached)


class BloopExplorer(InteractiveFigure):
    """The Bloop explorer (module docstring).

    Args:
        lam: one of :data:`LAMS`; rho: one of :data:`RHOS`; seed: the toy's.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-bloop"

    def __init__(self, *, lam: float = 1.0, rho: float = 0.01, seed: int = 0,
                 debounce_ms: float = 150, disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            compute_bloop(lam, rho, seed=seed)  # validates (and fills the cache)
        self.seed = seed
        self.cached = False
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         lam=float(lam), rho=float(rho))

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "lam": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in LAMS], value=1.0,
                                       description="λ", continuous_update=True, style=style,
                                       layout=ipw.Layout(width="360px")),
            "rho": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in RHOS], value=0.01,
                                       description="ρ (Bloop's EMA)", continuous_update=True,
                                       style=style, layout=ipw.Layout(width="360px")),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        for b in BASELINES:
            fig.add_trace(go.Scatter(
                name=b, mode="lines+markers", x=[], y=[], opacity=0.75,
                line={"color": COLORS[b], "dash": "dot"}, marker={"size": 6},
                hovertemplate=f"{LABELS[b]} %{{text}}<br>aux %{{x:.4g}}, main %{{y:.4g}}<extra></extra>"))
        fig.add_trace(go.Scatter(
            name="bloop", mode="lines+markers", x=[], y=[], line={"color": COLORS["bloop"]},
            marker={"size": 7},
            hovertemplate="Bloop %{text}<br>aux %{x:.4g}, main %{y:.4g}<extra></extra>"))
        fig.add_trace(go.Scatter(
            name="baselines_now", mode="markers", x=[], y=[], showlegend=False,
            marker={"size": 11, "color": [COLORS[b] for b in BASELINES],
                    "line": {"width": 1, "color": "black"}},
            hovertemplate="%{text}<extra></extra>"))
        fig.add_trace(go.Scatter(
            name="now", mode="markers", x=[], y=[], showlegend=False,
            marker={"size": 16, "color": COLORS["bloop"], "symbol": "star",
                    "line": {"width": 1, "color": "black"}},
            hovertemplate="Bloop now: aux %{x:.4g}, main %{y:.4g}<extra></extra>"))
        # the legend shows the stable trace names (browser tests read the traces by them)
        fig.update_layout(legend_title_text="fronts over λ (baselines without EMA):")
        fig.update_xaxes(title_text="auxiliary loss ½‖θ − θ_aux‖²", type="log")
        fig.update_yaxes(title_text="main loss ½ mean (xθ − y)²", type="log")
        return figure_widget(fig, "Bloop …", height=460, margin={"b": 50}, legend="below",
                             legend_y=-0.16)

    def compute(self, **params) -> BloopState:
        state = compute_bloop(params["lam"], params["rho"], seed=self.seed)
        self.cached = state.cached
        return state

    def draw(self, state: BloopState) -> None:
        run = state.run
        for b in BASELINES:
            self.trace(b).update(
                x=[r.aux for r in state.fronts[b]], y=[r.main for r in state.fronts[b]],
                text=[f"λ = {r.lam:g}" for r in state.fronts[b]])
        self.trace("bloop").update(x=[r.aux for r in state.front], y=[r.main for r in state.front],
                                   text=[f"λ = {r.lam:g}" for r in state.front])
        now = [state.baselines_now[b] for b in BASELINES]
        self.trace("baselines_now").update(
            x=[r.aux for r in now], y=[r.main for r in now],
            text=[f"{LABELS[r.method]} at λ = {r.lam:g}: aux {r.aux:.4g}, main {r.main:.4g}"
                  for r in now])
        self.trace("now").update(x=[run.aux], y=[run.main])
        if math.isfinite(state.ratio):
            versus = (f"mixed training at the same auxiliary loss: main {state.mixed_at_equal_aux:.3g}"
                      f" ({state.ratio:.3g}× Bloop's)")
        else:
            versus = "this auxiliary loss lies outside mixed training's front"
        self.figure.layout.title.text = (
            f"Bloop, λ = {run.lam:g}, ρ = {run.rho:g}: main {run.main:.3g} at aux {run.aux:.4g}"
            f"<br><sup>{versus}; quadratic toy p = {P}, n = {N}, {EPOCHS} epochs of SGD</sup>")
        self.figure.layout.meta = {
            "lam": run.lam, "rho": run.rho, "main": run.main, "aux": run.aux,
            "mixed_at_equal_aux": None if math.isnan(state.mixed_at_equal_aux)
            else state.mixed_at_equal_aux,
            "ratio": None if math.isnan(state.ratio) else state.ratio,
            "front_main": [r.main for r in state.front], "cached": state.cached,
        }
        ratio = "—" if math.isnan(state.ratio) else f"{state.ratio:.3g}×"
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("lam", "λ", repr(run.lam), f"{run.lam:g}"),
            _stat("rho", "ρ", repr(run.rho), f"{run.rho:g}"),
            _stat("main", "main loss", repr(run.main), f"{run.main:.3g}"),
            _stat("aux", "aux loss", repr(run.aux), f"{run.aux:.4g}"),
            _stat("ratio", "mixed / Bloop at equal aux", repr(state.ratio), ratio,
                  "mixed training's main loss at Bloop's auxiliary loss, over Bloop's"),
        ]) + "</div>"
