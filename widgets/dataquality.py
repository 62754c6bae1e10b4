"""The data-quality explorer: keep fraction → what each selector keeps and what its model learns.

The Data-Quality Illusion (Nait Saada et al. 2025; :mod:`otkit.dataquality.study`): a quality
classifier (CQF) keeps the top-scored share of a pool. The explorer reads a precomputed
:class:`otkit.dataquality.study.KeepFractionGrid` (one small transformer trained per method and
keep fraction) and shows, at the chosen **keep fraction**:

* left, the composition of each method's selection (stacked shares of the domains and junk):
  CQF piles onto the benchmark domain as the fraction shrinks, importance resampling (oracle)
  keeps the HQ mix;
* right, the trade-off: held-out HQ loss (x) against cloze accuracy on the benchmark (y), one
  line per method over all fractions, the current fraction marked.

The grid is the notebook's own (``grid=``) or a small default trained once per process
(:func:`default_grid`, a few seconds).

Stable names for browser tests: traces ``"share-<component>"`` (bars), ``"tradeoff-<method>"``
(lines) and ``"current"`` (markers); the outer box has the class ``otkit-dataquality``;
``layout.meta`` holds ``fraction`` and, per method m, ``m_hq_loss``, ``m_cloze`` and
``m_benchmark_share`` (``oracle-top`` written ``oracle_top``); stats spans
``.otkit-stat-fraction`` and ``.otkit-stat-<m>_hq_loss``, ``.otkit-stat-<m>_cloze``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from otkit.dataquality.study import (
    KeepFractionGrid,
    StudySetup,
    keep_fraction_grid,
    make_domain_arm,
)
from otkit.nn.trainer import TrainerConfig
from otkit.validation import check_choice

from .base import InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["DataQualityState", "compute_dataquality", "default_grid", "DataQualityExplorer"]

#: Colours of the composition's components, in :attr:`KeepFractionGrid.components` order.
COLORS = ("#2a9d8f", "#457b9d", "#8ab17d", "#e9c46a", "#bbbbbb", "#e76f51", "#6d597a")
METHOD_COLORS = {"random": "#888888", "cqf": "#e63946", "oracle": "#1d3557",
                 "oracle-top": "#f4a261", "ot": "#2a9d8f"}


@functools.lru_cache(maxsize=2)
def default_grid(seed: int = 0) -> KeepFractionGrid:
    """A small grid (1200-document pool, 50 training steps, methods random / CQF / oracle,
    keep fractions 2.5–20%), trained once per process: about 4 s on one core."""
    setup = StudySetup(n_pool=1200, n_hq=200, n_eval=150)
    trainer = TrainerConfig(steps=50, batch_size=32, lr=3e-3, warmup=5, eval_every=50,
                            weight_decay=0.0)
    arm = make_domain_arm(setup, seed=seed)
    return keep_fraction_grid(arm, (0.025, 0.05, 0.1, 0.2), ("random", "cqf", "oracle"),
                              trainer=trainer, seed=seed)


def _key(method: str) -> str:
    return method.replace("-", "_")


@dataclass(frozen=True, eq=False)
class DataQualityState:
    """The grid's cells at one keep fraction: ``cells[method]`` is
    :meth:`KeepFractionGrid.at`'s dictionary."""

    fraction: float
    grid: KeepFractionGrid
    cells: dict[str, dict]
    benchmark: str


def compute_dataquality(fraction: float, *, grid: KeepFractionGrid | None = None,
                        benchmark: str = "science") -> DataQualityState:
    """The cells of ``grid`` (default :func:`default_grid`) at ``fraction`` (one of
    ``grid.fractions``)."""
    grid = default_grid() if grid is None else grid
    check_choice("fraction", fraction, grid.fractions)
    check_choice("benchmark", benchmark, grid.components)
    return DataQualityState(float(fraction), grid,
                            {m: grid.at(m, fraction) for m in grid.methods}, benchmark)


def _num(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


class DataQualityExplorer(InteractiveFigure):
    """The data-quality explorer (module docstring)."""

    css_class = "otkit-dataquality"

    def __init__(self, *, fraction: float | None = None, grid: KeepFractionGrid | None = None,
                 benchmark: str = "science", seed: int = 0, debounce_ms: float = 150,
                 disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            self.grid = default_grid(seed) if grid is None else grid
        fraction = self.grid.fractions[len(self.grid.fractions) // 2] if fraction is None \
            else fraction
        compute_dataquality(fraction, grid=self.grid, benchmark=benchmark)  # validates
        self.benchmark = benchmark
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         fraction=float(fraction))

    def make_controls(self):
        style = {"description_width": "initial"}
        options = [(f"{f:.1%}", f) for f in self.grid.fractions]
        return {"fraction": ipw.SelectionSlider(options=options, value=self.grid.fractions[0],
                                                description="keep fraction", style=style,
                                                layout=ipw.Layout(width="380px"))}

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55],
                            subplot_titles=("what each method keeps",
                                            "HQ loss vs benchmark cloze (all fractions)"))
        for i, c in enumerate(self.grid.components):
            fig.add_trace(go.Bar(name=f"share-{c}", x=list(self.grid.methods), y=[0.0],
                                 marker_color=COLORS[i % len(COLORS)], legendgroup="share",
                                 hovertemplate=f"{c}: %{{y:.1%}}<extra></extra>"), 1, 1)
        for m in self.grid.methods:
            fig.add_trace(go.Scatter(name=f"tradeoff-{m}", x=[0.0], y=[0.0],
                                     mode="lines+markers", line_color=METHOD_COLORS.get(m),
                                     marker_size=6), 1, 2)
        fig.add_trace(go.Scatter(name="current", x=[0.0], y=[0.0], mode="markers+text",
                                 marker={"size": 15, "symbol": "star", "color": "black"},
                                 textposition="top center", showlegend=False), 1, 2)
        fig.update_xaxes(title_text="method", row=1, col=1)
        fig.update_yaxes(title_text="share of the selection", range=[0, 1], row=1, col=1)
        fig.update_xaxes(title_text="held-out HQ loss (nats/token)", row=1, col=2)
        fig.update_yaxes(title_text="cloze accuracy (benchmark domain)", row=1, col=2)
        return figure_widget(fig, "keep fraction …", height=440, barmode="stack")

    def compute(self, **params) -> DataQualityState:
        return compute_dataquality(params["fraction"], grid=self.grid, benchmark=self.benchmark)

    def draw(self, state: DataQualityState) -> None:
        g = state.grid
        methods = list(g.methods)
        for i, c in enumerate(g.components):
            self.trace(f"share-{c}").update(
                x=methods, y=[state.cells[m]["composition"][c] for m in methods])
        for mi, m in enumerate(methods):
            self.trace(f"tradeoff-{m}").update(
                x=[_num(v) for v in g.hq_loss[mi]], y=[_num(v) for v in g.cloze[mi]],
                text=[f"{f:.1%}" for f in g.fractions],
                hovertemplate=f"{m}, keep %{{text}}: HQ loss %{{x:.3f}}, cloze %{{y:.2f}}"
                              "<extra></extra>")
        self.trace("current").update(
            x=[_num(state.cells[m]["hq_loss"]) for m in methods],
            y=[_num(state.cells[m]["cloze"]) for m in methods], text=methods)
        meta: dict[str, object] = {"fraction": state.fraction}
        parts = [_stat("fraction", "keep", repr(state.fraction), f"{state.fraction:.1%}")]
        for m in methods:
            cell = state.cells[m]
            k = _key(m)
            meta[f"{k}_hq_loss"] = cell["hq_loss"]
            meta[f"{k}_cloze"] = cell["cloze"]
            meta[f"{k}_benchmark_share"] = cell["composition"][state.benchmark]
            parts.append(_stat(f"{k}_hq_loss", f"{m}: HQ loss", repr(cell["hq_loss"]),
                               f"{cell['hq_loss']:.3f}"))
            parts.append(_stat(f"{k}_cloze", "cloze", repr(cell["cloze"]),
                               f"{cell['cloze']:.2f}"))
        self.figure.layout.meta = meta
        self.figure.layout.title.text = (
            f"keep {state.fraction:.1%} of the pool ({state.cells[methods[0]]['k']} documents)")
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join(parts) + "</div>"
