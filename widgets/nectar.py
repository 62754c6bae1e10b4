"""The Nectar explorer: the capacity of each layer's networks against the accuracy gap.

Nectar (Monteiro, Klein, Ablin, Cuturi 2026; :mod:`otkit.nectar`) replaces every layer's cache
of a context by a score network ẑ ≈ log Z and a target network ô ≈ o per head, merged exactly
with the live tokens' attention. The explorer fits them on one context of the lookup task
(:mod:`otkit.nectar.lookup`) with a hidden width per layer and shows:

* the controls: **width of layer l** for each layer (sliders over :data:`WIDTHS`);
* the accuracy gap to the full cache against the memory per head (cached tokens, the mean over
  layers): the curve of uniform widths (``"uniform"``) and the current widths (``"now"``);
* in the title and stats: the widths, the memory, the accuracy and loss gaps and each layer's
  merged-attention error.

Fits are kept (:data:`FIT_CACHE`); with no model given the explorer trains a tiny one once
(:func:`tiny_model`, a few seconds) and keeps it. ``compute_nectar`` is the same computation
without a browser.

Stable names for browser tests: traces ``"uniform"`` and ``"now"``; the outer box has the class
``otkit-nectar``; ``layout.meta`` holds ``widths``, ``tokens``, ``accuracy_gap``, ``loss_gap``,
``attn`` (per layer), ``front_gap`` and ``cached``; the stats line has spans
``.otkit-stat-widths``, ``.otkit-stat-tokens``, ``.otkit-stat-gap``, ``.otkit-stat-loss-gap``
with ``data-value`` attributes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go

from otkit.nectar.lookup import LookupSpec, train_lookup
from otkit.nectar.regression import nectar_tokens
from otkit.nectar.study import evaluate, fit_context, prepare_context
from otkit.nn.transformer import Transformer
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["WIDTHS", "FIT_CACHE", "TINY_SPEC", "tiny_model", "NectarState", "compute_nectar",
           "NectarExplorer"]

#: The width sliders' stops.
WIDTHS = (1, 2, 4, 8, 16)
#: The tiny model's task (trained by :func:`tiny_model`).
TINY_SPEC = LookupSpec(n_keys=6, n_values=6, n_filler=8, n_records=6, n_questions=4)
#: Adam steps of each fit.
STEPS = 300

FIT_CACHE = FitCache(64)


@functools.lru_cache(maxsize=2)
def tiny_model(seed: int = 0) -> tuple[Transformer, LookupSpec]:
    """A 2-layer, 2-head, d_model 32 lookup model trained briefly (kept once trained)."""
    model, _ = train_lookup(TINY_SPEC, max_len=160, seed=seed, d_model=32, n_heads=2,
                            d_mlp=64, curriculum=((10, 250, 32, 3e-3), (48, 40, 16, 1e-3)))
    return model, TINY_SPEC


@dataclass(frozen=True, eq=False)
class NectarState:
    """The explorer's state: the widths, memory per head (per layer), the evaluation of
    :func:`otkit.nectar.study.evaluate`, and the uniform widths' (tokens, accuracy gap)."""

    widths: tuple[int, ...]
    tokens: tuple[float, ...]
    result: dict
    front: tuple[tuple[float, float], ...]
    cached: bool


@functools.lru_cache(maxsize=8)
def _setup(model: Transformer, spec: LookupSpec, n: int, seed: int):
    return prepare_context(model, spec, n, seed=seed, n_train=16, n_test=32)


def _evaluate(model, spec, n, seed, widths) -> tuple[dict, bool]:
    def make() -> dict:
        setup = _setup(model, spec, n, seed)
        return evaluate(model, setup, fit_context(setup, list(widths), steps=STEPS,
                                                   seed=seed).summaries())
    return FIT_CACHE.get((id(model), n, seed, widths), make)


def compute_nectar(widths: tuple[int, ...] = (4, 4), *,
                   trained: tuple[Transformer, LookupSpec] | None = None, n: int | None = None,
                   seed: int = 0) -> NectarState:
    """Nectar with hidden widths ``widths`` (one per layer, each in :data:`WIDTHS`) on the
    context of ``n`` tokens drawn with ``seed``, for ``trained = (model, spec)`` (default
    :func:`tiny_model`; n defaults to 64 for it, 256 otherwise)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    model, spec = tiny_model(0) if trained is None else trained
    if not isinstance(model, Transformer) or not isinstance(spec, LookupSpec):
        raise TypeError("trained must be (Transformer, LookupSpec)")
    n = (64 if trained is None else 256) if n is None else n
    widths = tuple(widths)
    if len(widths) != len(model.blocks):
        raise ValueError(f"widths must hold one width per layer ({len(model.blocks)}), got {widths}")
    for w in widths:
        check_choice("widths", w, WIDTHS)
    d_head = model.config.d_head
    result, cached = _evaluate(model, spec, n, seed, widths)
    front = tuple((nectar_tokens(w, d_head),
                   _evaluate(model, spec, n, seed, (w,) * len(widths))[0]["accuracy_gap"])
                  for w in WIDTHS)
    return NectarState(widths, tuple(nectar_tokens(w, d_head) for w in widths), result, front,
                       cached)


class NectarExplorer(InteractiveFigure):
    """The Nectar explorer (module docstring).

    Args:
        trained: ``(model, spec)`` (default: :func:`tiny_model`); n: the context's length;
        widths: initial widths per layer; seed: the context's draw.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-nectar"

    def __init__(self, *, trained: tuple[Transformer, LookupSpec] | None = None,
                 n: int | None = None, widths: tuple[int, ...] | None = None, seed: int = 0,
                 debounce_ms: float = 150, disable_while_busy: bool = False):
        model = (tiny_model(0) if trained is None else trained)[0]
        self.n_layers = len(model.blocks) if isinstance(model, Transformer) else 2
        widths = (4,) * self.n_layers if widths is None else tuple(widths)
        with torch_threads(self.compute_threads):
            compute_nectar(widths, trained=trained, n=n, seed=seed)  # validates, fills the cache
        self.trained, self.n, self.seed = trained, n, seed
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         **{f"width_{layer}": w for layer, w in enumerate(widths)})

    def make_controls(self):
        style = {"description_width": "initial"}
        return {f"width_{layer}": ipw.SelectionSlider(
            options=[(str(w), w) for w in WIDTHS], value=4, description=f"width, layer {layer}",
            continuous_update=True, style=style, layout=ipw.Layout(width="340px"))
            for layer in range(self.n_layers)}

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Scatter(
            name="uniform", mode="lines+markers", x=[], y=[], line={"color": "#1f77b4"},
            text=[f"width {w} in every layer" for w in WIDTHS],
            hovertemplate="%{text}<br>%{x:.1f} tokens per head, gap %{y:.1%}<extra></extra>"))
        fig.add_trace(go.Scatter(
            name="now", mode="markers", x=[], y=[], marker={"size": 16, "color": "#d62728",
                                                            "symbol": "star"},
            hovertemplate="now: %{x:.1f} tokens per head, gap %{y:.1%}<extra></extra>"))
        fig.update_xaxes(title_text="memory per head (cached tokens, mean over layers)",
                         type="log")
        fig.update_yaxes(title_text="accuracy gap to the full cache", tickformat=".0%")
        return figure_widget(fig, "Nectar …", height=420, margin={"b": 50}, legend="below",
                             legend_y=-0.18)

    def compute(self, **params) -> NectarState:
        widths = tuple(params[f"width_{layer}"] for layer in range(self.n_layers))
        state = compute_nectar(widths, trained=self.trained, n=self.n, seed=self.seed)
        self.cached = state.cached
        return state

    def draw(self, state: NectarState) -> None:
        r = state.result
        tokens = float(np.mean(state.tokens))
        self.trace("uniform").update(x=[t for t, _ in state.front], y=[g for _, g in state.front])
        self.trace("now").update(x=[tokens], y=[r["accuracy_gap"]])
        attn = [r[f"attn_{layer}"] for layer in range(self.n_layers)]
        self.figure.layout.title.text = (
            f"Nectar, widths {list(state.widths)}: accuracy gap {r['accuracy_gap']:.1%}, "
            f"loss gap {r['loss_gap']:.3g}<br><sup>{tokens:.1f} cached tokens per head; merged "
            f"attention error per layer {', '.join(f'{a:.3f}' for a in attn)}; full-cache "
            f"accuracy {r['accuracy_full']:.0%}</sup>")
        self.figure.layout.meta = {
            "widths": list(state.widths), "tokens": tokens, "accuracy_gap": r["accuracy_gap"],
            "loss_gap": r["loss_gap"], "attn": attn, "front_gap": [g for _, g in state.front],
            "cached": state.cached,
        }
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("widths", "widths", ",".join(map(str, state.widths)),
                  " / ".join(map(str, state.widths))),
            _stat("tokens", "memory", repr(tokens), f"{tokens:.1f} tokens/head"),
            _stat("gap", "accuracy gap", repr(r["accuracy_gap"]), f"{r['accuracy_gap']:.1%}"),
            _stat("loss-gap", "loss gap", repr(r["loss_gap"]), f"{r['loss_gap']:.3g}"),
        ]) + "</div>"
