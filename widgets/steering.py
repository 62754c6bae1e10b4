"""The steering explorer: the strength λ of an activation-steering intervention, live.

AcT and LinEAS (Rodriguez et al. 2024, 2025; :mod:`otkit.steering`) map a model's activations
part of the way towards a concept, z' = λ T(z) + (1 − λ) z. The explorer shows a *task*
(:func:`otkit.steering.text.text_steering_task` or
:func:`otkit.steering.images.digit_steering_task`) under one intervention:

* the **strength** λ ∈ {0, 0.1, …, 1} and the **method** (Linear-AcT, the Gaussian map, the
  mean shift, LinEAS) are the controls;
* the left panel is the concept rate against λ, the right one the price paid for it against λ
  (the perplexity of held-out normal text, or for images the Fréchet distance to real
  digits), both with a marker at the current λ;
* the samples at the current λ: continuations of the task's prompts with the concept's words
  in bold, listed under the curves (a text task: one with a ``tokenizer``), or a grid of
  generated digits in a third panel.

Each method is fitted once and its curve computed once (:data:`FIT_CACHE`), so moving λ only
samples the model under the intervention at that strength. ``compute_steering`` is the same
computation without a browser.
"""

from __future__ import annotations

import hashlib
import html
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as ipw
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from otkit.steering import Intervention, check_strength, fit_act, fit_lineas
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, rows_with_gaps

__all__ = [
    "METHODS", "STRENGTHS", "FIT_CACHE", "SteeringCurves", "SteeringState",
    "fit_intervention", "compute_steering", "SteeringExplorer",
]

METHODS = ("linear_act", "gaussian", "mean_shift", "lineas")
METHOD_LABELS = {"linear_act": "Linear-AcT", "gaussian": "Gaussian", "mean_shift": "mean shift",
                 "lineas": "LinEAS"}
STRENGTHS = tuple(round(0.1 * i, 1) for i in range(11))
#: LinEAS's training options in the widget: token-level losses, as in notebook 06.
LINEAS_OPTIONS = {"steps": 100, "lr": 0.05}

#: Fitted interventions and their curves, per (task, method, strengths): the task by identity,
#: through a :class:`_TaskKey`.
FIT_CACHE = FitCache(16)


class _TaskKey:
    """A task in a cache key, by identity, without keeping it alive.

    The key was ``id(task)``: Python reuses the id of a freed object, so a task made after
    another was freed could be served the other's fits (a notebook's task shifted by −3 got
    the intervention fitted for +3). Not a hash of the task's content either: what a fit
    depends on is the model's weights, the modules, ``forward``, the pooling, the batches, and
    for the curves whatever ``evaluate`` reads (prompts, held-out data, noise, a scorer);
    hashing all of it on every move of λ would be slow and, for any attribute a task class
    gains later, silently incomplete. So the key holds a weak reference and equals another only
    while both point to the same live object: a freed task's key equals nothing (its entries
    are dropped on the next compute), a new task with a recycled id starts afresh. (A task
    changed in place, its tensors or weights edited, keeps its fits: build a new task.)
    """

    __slots__ = ("_hash", "_ref")

    def __init__(self, task: object) -> None:
        self._ref = weakref.ref(task)
        self._hash = id(task)

    @property
    def dead(self) -> bool:
        return self._ref() is None

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _TaskKey):
            return NotImplemented
        task = self._ref()
        return task is not None and task is other._ref()


@dataclass(frozen=True, eq=False)
class SteeringCurves:
    """One method fitted on a task and evaluated over a grid of strengths.

    Attributes:
        method: the estimator's name; intervention: the fitted maps.
        strengths: the grid; rows: ``task.evaluate`` at each strength.
        quality: the rows' key of the price paid ("perplexity" or "frechet").
        fit_seconds, curve_seconds: the time to fit and to evaluate the grid.
    """

    method: str
    intervention: Intervention
    strengths: tuple[float, ...]
    rows: tuple[dict, ...]
    quality: str
    fit_seconds: float
    curve_seconds: float

    def at(self, strength: float) -> dict:
        return self.rows[self.strengths.index(strength)]


@dataclass(frozen=True, eq=False)
class SteeringState:
    """What the explorer shows: a method's curves and the samples at one strength."""

    curves: SteeringCurves
    strength: float
    samples: Any  # list[str] (text) or Tensor [k, 8, 8] (digits)
    prompts: tuple[str, ...]  # the prompts continued (text), else empty
    concept_words: frozenset[str]
    cached: bool

    @property
    def row(self) -> dict:
        return self.curves.at(self.strength)

    @property
    def is_text(self) -> bool:
        return isinstance(self.samples, list)

    def fingerprint(self) -> str:
        """A short hash of the samples, to tell on the page whether they changed."""
        data = "\n".join(self.samples) if self.is_text else self.samples.numpy().tobytes()
        return hashlib.sha1(data.encode() if isinstance(data, str) else data).hexdigest()[:12]


def _check_method(method: object) -> str:
    return check_choice("method", method, METHODS)  # type: ignore[return-value]


def fit_intervention(task, method: str) -> Intervention:
    """Fit ``method`` on ``task``'s source and target batches (:mod:`otkit.steering`)."""
    method = _check_method(method)
    pool = getattr(task, "pool", "mean")
    if method == "lineas":
        return fit_lineas(task.model, task.modules, task.source, task.target,
                          forward=task.forward, pool=pool, **LINEAS_OPTIONS).intervention
    return fit_act(task.model, task.modules, task.source, task.target, method=method,
                   forward=task.forward, pool=pool)


def _curves(task, method: str, strengths: tuple[float, ...]) -> SteeringCurves:
    start = time.perf_counter()
    intervention = fit_intervention(task, method)
    fitted = time.perf_counter()
    rows = tuple(task.evaluate(intervention, strengths))
    quality = "perplexity" if "perplexity" in rows[0] else "frechet"
    return SteeringCurves(method, intervention, strengths, rows, quality, fitted - start,
                          time.perf_counter() - fitted)


def _concept_words(task) -> frozenset[str]:
    from otkit.steering.text import TOPICS

    concept = getattr(task, "concept", None)
    return frozenset(sum(TOPICS[concept], ())) if concept in TOPICS else frozenset()


def compute_steering(
    task, method: str = "linear_act", strength: float = 0.0, *,
    strengths: Sequence[float] = STRENGTHS, count: int = 8,
) -> SteeringState:
    """The explorer's state: ``method``'s curves on ``task`` (cached) and ``count`` samples at
    ``strength`` (which must be on the grid ``strengths``)."""
    method = _check_method(method)
    strength = check_strength(strength)
    grid = tuple(float(check_strength(s, "strengths")) for s in strengths)
    check_choice("strength", strength, grid)
    FIT_CACHE.drop(lambda key: key[0].dead)  # fits of freed tasks: nothing can reach them
    curves, cached = FIT_CACHE.get((_TaskKey(task), method, grid),
                                   lambda: _curves(task, method, grid))
    samples = task.samples(curves.intervention, strength, count=count)
    prompts: tuple[str, ...] = ()
    if isinstance(samples, list) and hasattr(task, "prompts"):
        prompts = tuple(task.tokenizer.decode(task.prompts[:count]))
    return SteeringState(curves, strength, samples, prompts, _concept_words(task), cached)


class SteeringExplorer(InteractiveFigure):
    """The steering explorer (module docstring).

    Args:
        task: a text or digits steering task (:mod:`otkit.steering.text`,
            :mod:`otkit.steering.images`).
        method: one of ``methods``, shown first; strength: λ shown first, on ``strengths``.
        methods: the methods offered; strengths: the grid of λ (the slider's stops).
        count: samples shown.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-steering"

    def __init__(
        self, task, *, method: str = "linear_act", strength: float = 0.0,
        methods: Sequence[str] = METHODS, strengths: Sequence[float] = STRENGTHS,
        count: int = 8, debounce_ms: float = 150, disable_while_busy: bool = False,
    ):
        self.task = task
        self.methods = tuple(_check_method(m) for m in methods)
        if not self.methods:
            raise ValueError("methods is empty")
        check_choice("method", method, self.methods)
        self.strengths = tuple(float(check_strength(s, "strengths")) for s in strengths)
        check_choice("strength", check_strength(strength), self.strengths)
        self.count = count
        self.cached = False
        #: Whether the samples are images, drawn in a third panel (text is listed under it).
        self.images = not hasattr(task, "tokenizer")
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         strength=float(strength), method=method)

    # ----- InteractiveFigure --------------------------------------------------------------
    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "strength": ipw.SelectionSlider(
                options=[(f"{s:.1f}", s) for s in self.strengths], value=self.strengths[0],
                description="strength λ", continuous_update=True, style=style,
                layout=ipw.Layout(width="380px"),
            ),
            "method": ipw.ToggleButtons(
                options=[(METHOD_LABELS[m], m) for m in self.methods], value=self.methods[0],
                description="method", style=style,
            ),
        }

    def make_figure(self) -> go.FigureWidget:
        if self.images:
            fig = make_subplots(rows=1, cols=3, column_widths=[0.34, 0.34, 0.32],
                                horizontal_spacing=0.08,
                                subplot_titles=("concept rate", "price", "samples"))
        else:  # the continuations are listed under the figure: no empty third panel
            fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                                subplot_titles=("concept rate", "price"))
        for col, name in ((1, "rate"), (2, "quality")):
            fig.add_trace(go.Scatter(name=name, mode="lines+markers", x=[], y=[],
                                     line={"color": "#1f77b4"}), row=1, col=col)
            fig.add_trace(go.Scatter(name=name + "-now", mode="markers", x=[], y=[],
                                     marker={"size": 13, "color": "#d62728",
                                             "line": {"width": 1, "color": "black"}}),
                          row=1, col=col)
        for col in (1, 2):
            fig.update_xaxes(title_text="strength λ", range=[-0.05, 1.05], row=1, col=col)
        if self.images:
            fig.add_trace(go.Heatmap(name="digits", z=[], colorscale="Greys", showscale=False,
                                     zmin=-1, zmax=1, hoverinfo="skip"), row=1, col=3)
            fig.update_xaxes(visible=False, row=1, col=3)
            fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x3", row=1, col=3)
        return figure_widget(fig, "steering …", height=380, margin={"r": 20, "b": 50},
                             legend=None)

    def compute(self, **params) -> SteeringState:
        state = compute_steering(self.task, params["method"], params["strength"],
                                 strengths=self.strengths, count=self.count)
        self.cached = state.cached
        return state

    def draw(self, state: SteeringState) -> None:
        fig, curves = self.figure, state.curves
        x = list(curves.strengths)
        rates = [r["concept_rate"] for r in curves.rows]
        quality = [r[curves.quality] for r in curves.rows]
        self.trace("rate").update(x=x, y=rates)
        self.trace("rate-now").update(x=[state.strength], y=[state.row["concept_rate"]])
        self.trace("quality").update(x=x, y=quality)
        self.trace("quality-now").update(x=[state.strength], y=[state.row[curves.quality]])
        fig.layout.yaxis.range = [-0.02, 1.02]
        fig.layout.yaxis.title.text = "share of samples with the concept"
        label = "held-out perplexity" if curves.quality == "perplexity" else "Fréchet to real digits"
        fig.layout.yaxis2.title.text = label
        fig.layout.annotations[1].text = label
        if self.images:
            digits = [] if state.is_text else rows_with_gaps(_mosaic(state.samples))
            self.trace("digits").update(z=digits)
            fig.layout.annotations[2].text = f"samples at λ = {state.strength:.1f}"
        fig.layout.title.text = (
            f"{METHOD_LABELS[curves.method]} at λ = {state.strength:.1f}: concept rate "
            f"{state.row['concept_rate']:.3f}, {curves.quality} {state.row[curves.quality]:.3g}"
        )
        fig.layout.meta = _meta(state)
        self.stats.value = _stats_html(state)


def _mosaic(images: torch.Tensor, columns: int = 4) -> torch.Tensor:
    """``[k, 8, 8]`` images tiled in rows of ``columns``, separated by a blank pixel."""
    k = images.shape[0]
    rows = -(-k // columns)
    out = torch.full((rows * 9 - 1, columns * 9 - 1), float("nan"))
    for i in range(k):
        r, c = divmod(i, columns)
        out[r * 9: r * 9 + 8, c * 9: c * 9 + 8] = images[i].float()
    return out


def _meta(state: SteeringState) -> dict:
    curves = state.curves
    return {
        "method": curves.method,
        "strength": state.strength,
        "strengths": list(curves.strengths),
        "concept_rate": state.row["concept_rate"],
        "quality_name": curves.quality,
        "quality": state.row[curves.quality],
        "rates": [r["concept_rate"] for r in curves.rows],
        "qualities": [r[curves.quality] for r in curves.rows],
        "samples": state.fingerprint(),
        "modality": "text" if state.is_text else "images",
        "fit_seconds": curves.fit_seconds,
        "curve_seconds": curves.curve_seconds,
        "cached": state.cached,
    }


def _highlight(text: str, words: frozenset[str]) -> str:
    return " ".join(f"<b>{html.escape(w)}</b>" if w in words else html.escape(w)
                    for w in text.split())


def _stats_html(state: SteeringState) -> str:
    curves = state.curves
    q = state.row[curves.quality]
    parts = [
        _stat("strength", "λ", repr(state.strength), f"{state.strength:.1f}"),
        _stat("method", "method", curves.method, METHOD_LABELS[curves.method]),
        _stat("concept-rate", "concept rate", repr(state.row["concept_rate"]),
              f"{state.row['concept_rate']:.3f}", "share of the task's samples with the concept"),
        _stat(curves.quality, curves.quality, repr(q), f"{q:.4g}"),
        _stat("samples", "samples", state.fingerprint(), state.fingerprint(),
              "a hash of the samples shown"),
        _stat("fit", "fit", repr(curves.fit_seconds),
              f"{curves.fit_seconds:.1f} s" + (" (cached)" if state.cached else "")),
    ]
    out = '<div class="otkit-stats-line">' + " · ".join(parts) + "</div>"
    if state.is_text:
        items = "".join(
            f"<li>{html.escape(p)} → {_highlight(s, state.concept_words)}</li>"
            for p, s in zip(state.prompts, state.samples)
        )
        out += f'<ul class="otkit-steering-samples" style="margin:4px 0">{items}</ul>'
    return out
