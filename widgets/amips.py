"""The amortized-MIPS explorer: the cells of a trained SupportNet's gradient against the true
cells of the support function, in 2-D.

Keys K ⊂ R² (:func:`toy_keys`: 16 points of an anisotropic cloud; those inside the convex hull
are never a MIPS answer). The true cell of key j is {q : argmax_i ⟨q, k_i⟩ = j}, the normal cone
of the hull at k_j. A SupportNet (:class:`otkit.amips.SupportNet`, a bias-free ReLU ICNN: convex
and 1-homogeneous) at a chosen parameter **budget** is trained on queries q ~ N(0, I)
(:func:`otkit.amips.fit`) with hard targets (ε = 0) or soft ones at **ε** > 0 (the smoothed
support function ε log Σ_j exp(⟨q, k_j⟩/ε), whose gradient blurs the boundaries); the plane is
coloured by the key nearest to ∇f(q). Match rate: the share of a grid of queries whose decoded
key is the true argmax (hard ground truth, whatever ε).

Each (budget, ε) is trained once and kept (:data:`FIT_CACHE`). ``compute_amips`` is the same
computation without a browser.

Stable names for browser tests: traces ``"predicted"`` (heatmap of decoded key indices),
``"true"`` (heatmap of true indices), ``"keys"``; the outer box has the class ``otkit-amips``;
``layout.meta`` holds ``budget``, ``epsilon``, ``width``, ``params``, ``match_rate``; the stats
line has spans ``.otkit-stat-budget``, ``.otkit-stat-epsilon``, ``.otkit-stat-match`` with a
``data-value`` attribute.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from otkit.amips import SupportNet, fit, mips, nearest_key, width_for_budget
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["BUDGETS", "EPSILONS", "FIT_CACHE", "AmipsState", "compute_amips", "toy_keys", "AmipsExplorer"]

#: The budget slider's stops (parameters of the SupportNet).
BUDGETS = (40, 80, 160, 320, 640, 1280)
#: The sharpness slider's stops (0: hard targets).
EPSILONS = (0.0, 0.05, 0.1, 0.2, 0.5)
#: Training: Adam steps, batch, learning rate; the grid's resolution and half-width.
STEPS, BATCH, LR, GRID, SPAN = 600, 256, 3e-2, 61, 2.0

FIT_CACHE = FitCache(64)


@functools.lru_cache(maxsize=4)
def toy_keys(seed: int = 0) -> torch.Tensor:
    """16 keys ``[16, 2]`` from an anisotropic Gaussian (scales 1.5 and 0.6, rotated 30°)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(16, 2, generator=g) * torch.tensor([1.5, 0.6])
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    return z @ torch.tensor([[c, s], [-s, c]])


@dataclass(frozen=True, eq=False)
class AmipsState:
    """Keys ``[K, 2]``, the grid axis ``[G]``, predicted and true key indices ``[G, G]``
    (row = y, column = x), the match rate on the grid, width, parameter count, budget, ε."""

    keys: np.ndarray
    axis: np.ndarray
    predicted: np.ndarray
    true: np.ndarray
    match_rate: float
    width: int
    params: int
    budget: int
    epsilon: float
    seconds: float
    cached: bool


def _grid() -> tuple[np.ndarray, torch.Tensor]:
    axis = np.linspace(-SPAN, SPAN, GRID)
    xx, yy = np.meshgrid(axis, axis)
    return axis, torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)


def _train(budget: int, epsilon: float, seed: int) -> tuple[SupportNet, float]:
    keys = toy_keys(seed)
    width = width_for_budget("support", 2, budget, 2)
    net = SupportNet(2, (width, width), bias=False, generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    fit(net, keys, lambda n, g: torch.randn(n, 2, generator=g), steps=STEPS, batch_size=BATCH, lr=LR,
        epsilon=epsilon, generator=torch.Generator().manual_seed(seed + 1))
    return net, time.perf_counter() - start


def compute_amips(budget: int = 320, epsilon: float = 0.0, *, seed: int = 0) -> AmipsState:
    """The SupportNet at ``budget`` (one of :data:`BUDGETS`) and ``epsilon`` (one of
    :data:`EPSILONS`) on :func:`toy_keys` (``seed``), decoded on the grid."""
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget must be an int, got {budget!r}")
    check_choice("budget", budget, BUDGETS)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise TypeError(f"epsilon must be a number, got {epsilon!r}")
    check_choice("epsilon", float(epsilon), EPSILONS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    (net, seconds), cached = FIT_CACHE.get((budget, float(epsilon), seed), lambda: _train(budget, float(epsilon), seed))
    keys = toy_keys(seed)
    axis, q = _grid()
    true = mips(q, keys)
    predicted = nearest_key(net.key(q), keys)
    return AmipsState(
        keys.numpy(), axis, predicted.reshape(GRID, GRID).numpy(), true.reshape(GRID, GRID).numpy(),
        float((predicted == true).float().mean()), net.icnn.hidden[0],
        sum(p.numel() for p in net.parameters()), budget, float(epsilon), seconds, cached,
    )


_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]
_SCALE = [[i / 15, c] for i, c in enumerate(_PALETTE)]


class AmipsExplorer(InteractiveFigure):
    """The amortized-MIPS explorer (module docstring).

    Args:
        budget: one of :data:`BUDGETS`; epsilon: one of :data:`EPSILONS`; seed: the keys'.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-amips"

    def __init__(self, *, budget: int = 320, epsilon: float = 0.0, seed: int = 0,
                 debounce_ms: float = 150, disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            compute_amips(budget, epsilon, seed=seed)  # validates (and fills the cache)
        self.seed = seed
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         budget=int(budget), epsilon=float(epsilon))

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "budget": ipw.SelectionSlider(options=[(str(v), v) for v in BUDGETS], value=320,
                                          description="parameter budget", continuous_update=True,
                                          style=style, layout=ipw.Layout(width="360px")),
            "epsilon": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in EPSILONS], value=0.0,
                                           description="ε (0: hard targets)", continuous_update=True,
                                           style=style, layout=ipw.Layout(width="360px")),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, subplot_titles=("cells of ∇f (decoded)", "true cells"),
                            horizontal_spacing=0.08)
        for col, name in ((1, "predicted"), (2, "true")):
            fig.add_trace(go.Heatmap(name=name, x=[], y=[], z=[], zmin=0, zmax=15, colorscale=_SCALE,
                                     showscale=False, opacity=0.75,
                                     hovertemplate="q = (%{x:.2f}, %{y:.2f}): key %{z}<extra></extra>"),
                          row=1, col=col)
        for col in (1, 2):
            fig.add_trace(go.Scatter(name="keys" if col == 1 else "keys_true", mode="markers", x=[], y=[],
                                     showlegend=False, marker={"size": 9, "color": "black", "symbol": "x"},
                                     hovertemplate="key %{text}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(range=[-SPAN, SPAN])
        fig.update_yaxes(range=[-SPAN, SPAN], scaleanchor="x")
        return figure_widget(fig, "SupportNet …", height=460, margin={"b": 40})

    def compute(self, **params) -> AmipsState:
        return compute_amips(int(params["budget"]), float(params["epsilon"]), seed=self.seed)

    def draw(self, state: AmipsState) -> None:
        axis = state.axis.tolist()
        self.trace("predicted").update(x=axis, y=axis, z=state.predicted.tolist())
        self.trace("true").update(x=axis, y=axis, z=state.true.tolist())
        labels = [str(i) for i in range(len(state.keys))]
        for name in ("keys", "keys_true"):
            self.trace(name).update(x=state.keys[:, 0].tolist(), y=state.keys[:, 1].tolist(), text=labels)
        self.figure.layout.title.text = (
            f"SupportNet, budget {state.budget} ({state.params} parameters, width {state.width}), "
            f"ε = {state.epsilon:g}: match rate {state.match_rate:.1%}"
            f"<br><sup>bias-free ReLU ICNN, {STEPS} Adam steps on q ~ N(0, I); colour = decoded key</sup>")
        self.figure.layout.meta = {
            "budget": state.budget, "epsilon": state.epsilon, "width": state.width,
            "params": state.params, "match_rate": state.match_rate, "cached": state.cached,
        }
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("budget", "budget", repr(state.budget), str(state.budget)),
            _stat("epsilon", "ε", repr(state.epsilon), f"{state.epsilon:g}"),
            _stat("match", "match rate", repr(state.match_rate), f"{state.match_rate:.1%}",
                  "share of grid queries whose decoded key is the true argmax"),
        ]) + "</div>"
