"""The CompleteP explorer: width and depth → loss against learning rate, per parameterization.

Dey et al. (2025), "Don't be lazy: CompleteP enables compute-efficient deep transformers":
under SP the best learning rate η* moves when the transformer is made wider or deeper; μP holds
it across widths, CompleteP (α = 1) across widths and depths (rules:
:mod:`otkit.nn.parameterization`). The explorer shows, for the chosen width and depth:

* the controls: **width** and **depth** (sliders over the study's sizes; the study varies the
  width at the base depth and the depth at the base width, other pairs are not in the grid);
* the held-out loss against log₂ η of each parameterization (mean over seeds), the base
  model's curve dotted for reference, and a marker at each scheme's η* (parabola around the
  minimum, :func:`otkit.completep.study.best_log2_lr`);
* in the stats, η* per scheme and its drift from the base size in octaves.

It draws a :class:`otkit.completep.study.TransferStudy` (precomputed: no training happens in
the widget). Without one it draws :data:`BUNDLED`, the seed-mean losses of the notebook's quick
grid (:data:`otkit.completep.study.QUICK`, seeds 0 and 1), stored here as numbers;
``compute_completep`` is the same computation without a browser.

Stable names for browser tests: traces ``"<scheme>"`` (the curves), ``"<scheme>_best"``
(markers) and ``"base"`` (the base model's curve, SP's); the outer box has the class
``otkit-completep``; ``layout.meta`` holds ``width``, ``depth``, ``available``, ``best``
(``{scheme: log₂ η*}``) and ``drift`` (``{scheme: octaves}``); the stats line has spans
``.otkit-stat-width``, ``.otkit-stat-depth`` and ``.otkit-stat-drift-<scheme>`` with
``data-value`` attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go

from otkit.completep.study import QUICK, TransferGrid, TransferStudy, best_log2_lr

from .base import InteractiveFigure, _stat, figure_widget

__all__ = ["BUNDLED", "bundled_study", "CompletePState", "compute_completep",
           "CompletePExplorer"]

LABELS = {"sp": "SP", "mup": "μP", "depth_mup": "depth-μP (α = ½)", "completep": "CompleteP (α = 1)"}
COLORS = {"sp": "#1f77b4", "mup": "#2ca02c", "depth_mup": "#9467bd", "completep": "#d62728"}

#: Seed-mean held-out losses of :data:`otkit.completep.study.QUICK` (schemes × shapes × rates,
#: in the grid's order), from ``lr_sweep(QUICK).losses.mean(-1)``; regenerate after changing
#: the study.
BUNDLED: list[list[list[float]]] = [
    [  # sp
        [2.8536, 2.5717, 2.4429, 2.4007, 2.3899, 2.4015, 2.5746],
        [2.5306, 2.4008, 2.3655, 2.3532, 2.3807, 2.9484, 3.0999],
        [2.3753, 2.3472, 2.3439, 2.3665, 2.6303, 3.0235, 3.2658],
        [2.8610, 2.5968, 2.4880, 2.4712, 2.4505, 2.4540, 2.9550],
    ],
    [  # mup
        [2.8536, 2.5717, 2.4429, 2.4007, 2.3899, 2.4015, 2.5746],
        [2.8075, 2.5060, 2.3800, 2.3464, 2.3385, 2.3528, 2.9889],
        [2.7853, 2.4806, 2.3651, 2.3396, 2.3340, 2.3457, 2.8159],
        [2.8610, 2.5968, 2.4880, 2.4712, 2.4505, 2.4540, 2.9550],
    ],
    [  # completep
        [2.8536, 2.5717, 2.4429, 2.4007, 2.3899, 2.4015, 2.5746],
        [2.8075, 2.5060, 2.3800, 2.3464, 2.3385, 2.3528, 2.9889],
        [2.7853, 2.4806, 2.3651, 2.3396, 2.3340, 2.3457, 2.8159],
        [2.8523, 2.5710, 2.4404, 2.4094, 2.4095, 2.4217, 2.4435],
    ],
]


def bundled_study() -> TransferStudy:
    """:data:`BUNDLED` as a one-"seed" :class:`TransferStudy` on :data:`QUICK`'s grid."""
    losses = np.asarray(BUNDLED, dtype=float)[..., None]
    grid = TransferGrid(**{**{f: getattr(QUICK, f) for f in QUICK.__dataclass_fields__},
                           "seeds": (0,)})
    return TransferStudy(grid, losses)


@dataclass(frozen=True, eq=False)
class CompletePState:
    """The curves at one size: ``curves[scheme]`` (seed-mean loss per ``log2_lrs``), the base
    model's curve, ``best[scheme]`` = (log₂ η*, its loss) and ``drift[scheme]`` (octaves from
    the base); ``available`` is False for a size outside the grid (then the dicts are empty)."""

    width: int
    depth: int
    available: bool
    log2_lrs: tuple[float, ...]
    curves: dict
    base_curve: tuple[float, ...]
    best: dict
    drift: dict


def compute_completep(study: TransferStudy, width: int, depth: int) -> CompletePState:
    """The explorer's state for ``study`` at ``(width, depth)``."""
    if not isinstance(study, TransferStudy):
        raise TypeError(f"study must be a TransferStudy, got {type(study).__name__}")
    g = study.grid
    if width not in g.widths:
        raise ValueError(f"width must be one of {g.widths}, got {width!r}")
    if depth not in g.depths:
        raise ValueError(f"depth must be one of {g.depths}, got {depth!r}")
    x = tuple(float(v) for v in g.log2_lrs)
    base = {s: study.curve(s, g.base_width, g.base_depth).mean(1) for s in g.schemes}
    base_curve = tuple(float(v) for v in base[g.schemes[0]])
    if (width, depth) not in g.shapes:
        return CompletePState(width, depth, False, x, {}, base_curve, {}, {})
    curves, best, drift = {}, {}, {}
    for s in g.schemes:
        y = study.curve(s, width, depth).mean(1)
        curves[s] = tuple(float(v) for v in y)
        b = best_log2_lr(x, y)[0]
        best[s] = (b, float(np.interp(b, x, y)))
        drift[s] = b - best_log2_lr(x, base[s])[0]
    return CompletePState(width, depth, True, x, curves, base_curve, best, drift)


class CompletePExplorer(InteractiveFigure):
    """The CompleteP explorer (module docstring).

    Args:
        study: a :class:`TransferStudy` (default: :func:`bundled_study`).
        width, depth: the first size shown (default: the largest width at the base depth).
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-completep"

    def __init__(self, study: TransferStudy | None = None, *, width: int | None = None,
                 depth: int | None = None, debounce_ms: float = 150,
                 disable_while_busy: bool = False):
        self.study = bundled_study() if study is None else study
        g = self.study.grid
        width = max(g.widths) if width is None else width
        depth = g.base_depth if depth is None else depth
        compute_completep(self.study, width, depth)  # validates
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         width=width, depth=depth)

    def make_controls(self):
        g = self.study.grid
        style = {"description_width": "initial"}
        return {
            "width": ipw.SelectionSlider(options=[(str(w), w) for w in g.widths],
                                         value=g.base_width, description="width (d_model)",
                                         style=style, layout=ipw.Layout(width="320px")),
            "depth": ipw.SelectionSlider(options=[(str(d), d) for d in g.depths],
                                         value=g.base_depth, description="depth (blocks)",
                                         style=style, layout=ipw.Layout(width="320px")),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Scatter(name="base", mode="lines", x=[], y=[],
                                 line={"color": "gray", "dash": "dot"},
                                 hovertemplate="base size: log₂η %{x}, loss %{y:.4f}<extra></extra>"))
        for s in self.study.grid.schemes:
            fig.add_trace(go.Scatter(
                name=s, mode="lines+markers", x=[], y=[], line={"color": COLORS[s]},
                hovertemplate=f"{LABELS[s]}: log₂η %{{x}}, loss %{{y:.4f}}<extra></extra>"))
        for s in self.study.grid.schemes:
            fig.add_trace(go.Scatter(
                name=f"{s}_best", mode="markers", x=[], y=[], showlegend=False,
                marker={"size": 14, "symbol": "star", "color": COLORS[s],
                        "line": {"width": 1, "color": "black"}},
                hovertemplate=f"{LABELS[s]} best: log₂η* %{{x:.2f}}<extra></extra>"))
        fig.update_xaxes(title_text="log₂ η (base learning rate)")
        fig.update_yaxes(title_text="held-out loss (nats)")
        return figure_widget(fig, "CompleteP …", height=440, margin={"b": 50}, legend="below",
                             legend_y=-0.18)

    def compute(self, **params) -> CompletePState:
        return compute_completep(self.study, params["width"], params["depth"])

    def draw(self, state: CompletePState) -> None:
        g = self.study.grid
        x = list(state.log2_lrs)
        self.trace("base").update(x=x, y=list(state.base_curve))
        for s in g.schemes:
            if state.available:
                self.trace(s).update(x=x, y=list(state.curves[s]))
                self.trace(f"{s}_best").update(x=[state.best[s][0]], y=[state.best[s][1]])
            else:
                self.trace(s).update(x=[], y=[])
                self.trace(f"{s}_best").update(x=[], y=[])
        if state.available:
            drifts = ", ".join(f"{LABELS[s]} {state.drift[s]:+.2f}" for s in g.schemes)
            sub = f"drift of the best η from the base size, octaves: {drifts}"
        else:
            sub = (f"not in the grid: the study varies the width at depth {g.base_depth} and "
                   f"the depth at width {g.base_width}")
        self.figure.layout.title.text = (
            f"width {state.width}, depth {state.depth}: loss against learning rate "
            f"(base {g.base_width}×{g.base_depth}, dotted)<br><sup>{sub}</sup>")
        self.figure.layout.meta = {
            "width": state.width, "depth": state.depth, "available": state.available,
            "best": {s: b[0] for s, b in state.best.items()}, "drift": dict(state.drift),
        }
        stats = [_stat("width", "width", state.width, str(state.width)),
                 _stat("depth", "depth", state.depth, str(state.depth))]
        for s in g.schemes:
            d = state.drift.get(s, math.nan)
            stats.append(_stat(f"drift-{s}", f"{LABELS[s]} drift", repr(d),
                               "—" if math.isnan(d) else f"{d:+.2f} oct",
                               "log₂ η*(this size) − log₂ η*(base size)"))
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join(stats) + "</div>"
