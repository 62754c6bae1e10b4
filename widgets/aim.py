"""The AIM explorer: trunk size and checkpoint → pre-training loss against probe accuracy, and
the checkpoint's next-patch predictions.

AIM (El-Nouby et al. 2024; :mod:`otkit.aim`) pre-trains a prefix-causal ViT to regress the
next patch's normalized pixels; the paper's headline is that the pre-training loss predicts
the frozen trunk's probe accuracy across checkpoints and sizes. The explorer trains two small
trunks (widths :data:`WIDTHS`, depth 2) on :data:`TRAIN_N` of the 8×8 digits in 2×2 patches
for :data:`STEPS` steps, probing each at the checkpoints :data:`MARKS`
(:func:`otkit.aim.study.pretrain_aim`), and shows:

* the controls: **width**, **checkpoint** (a step of :data:`MARKS`) and **probe** (linear on
  mean-pooled tokens, or AIM's attentive probe);
* left: every checkpoint's held-out loss against the probe's held-out accuracy, one trace per
  width, a star at the chosen one, Spearman's ρ over all of them in the title;
* right: a few held-out digits (top) and the checkpoint's predictions (bottom) with the first
  :data:`PREFIX` patches given and every later patch predicted from the true ones before it
  (:func:`otkit.aim.study.reconstruct`).

The runs are trained once per (width, seed) and kept (:data:`FIT_CACHE`); ``compute_aim`` is the
same computation without a browser.

Stable names for browser tests: traces ``"w16"``, ``"w32"``, ``"now"`` and ``"digits"`` (the
heatmap); the outer box has the class ``otkit-aim``; ``layout.meta`` holds ``width``, ``step``,
``probe``, ``loss``, ``accuracy``, ``spearman``, ``recon_mse`` and ``cached``; the stats line
has spans ``.otkit-stat-width``, ``.otkit-stat-step``, ``.otkit-stat-loss``,
``.otkit-stat-accuracy`` and ``.otkit-stat-spearman``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from otkit.aim.model import patchify
from otkit.aim.study import (
    PretrainRun,
    Split,
    digits_patches,
    loss_accuracy_spearman,
    pretrain_aim,
    reconstruct,
)
from otkit.validation import check_choice

from .base import (
    FitCache,
    InteractiveFigure,
    _stat,
    figure_widget,
    rows_with_gaps,
    torch_threads,
)

__all__ = ["WIDTHS", "MARKS", "STEPS", "PROBES", "FIT_CACHE", "AIMState", "compute_aim",
           "AIMExplorer"]

#: The trunk widths offered (depth 2, 4 heads).
WIDTHS = (16, 32)
#: Training steps (AdamW, batches of 64) and the probed checkpoints.
STEPS = 80
MARKS = (20, 40, 60, 80)
#: Training digits used (of 1,438), the probes' held-out split is the full test split.
TRAIN_N = 400
#: Patches given before predicting; digits shown.
PREFIX, N_SHOW = 4, 6
#: The attentive probe's AdamW steps (the notebook's: 150).
PROBE_STEPS = 80
PROBES = ("attentive", "linear")
COLORS = {16: "#1f77b4", 32: "#d62728"}

FIT_CACHE = FitCache(8)


@dataclass(frozen=True, eq=False)
class AIMState:
    """The explorer's state: the chosen run and checkpoint, every checkpoint's (loss, accuracy)
    by width, Spearman's ρ over them, the shown digits ``[k, 8, 8]`` and their predictions."""

    width: int
    step: int
    probe: str
    loss: float
    accuracy: float
    points: dict[int, tuple[tuple[int, float, float], ...]]
    spearman: float
    originals: np.ndarray
    predictions: np.ndarray
    recon_mse: float
    cached: bool


@functools.lru_cache(maxsize=2)
def _data(seed: int) -> tuple[Split, Split]:
    train, test = digits_patches(2, seed=seed)
    return Split(train.patches[:TRAIN_N], train.labels[:TRAIN_N]), test


def _fit(width: int, seed: int) -> PretrainRun:
    train, test = _data(seed)
    return pretrain_aim(train, test, width=width, steps=STEPS, checkpoints=list(MARKS),
                        batch_size=64, probe_steps=PROBE_STEPS, seed=seed)


def compute_aim(width: int = 32, step: int = STEPS, probe: str = "attentive", *,
                seed: int = 0) -> AIMState:
    """The checkpoint ``step`` (one of :data:`MARKS`) of the trunk of ``width`` (one of
    :data:`WIDTHS`), read by ``probe``, among all checkpoints of both widths."""
    check_choice("width", width, WIDTHS)
    check_choice("step", step, MARKS)
    check_choice("probe", probe, PROBES)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    runs, cached = {}, True
    for w in WIDTHS:
        runs[w], hit = FIT_CACHE.get((w, seed), functools.partial(_fit, w, seed))
        cached = cached and hit
    points = {w: tuple((c.step, c.loss, getattr(c, probe)) for c in runs[w].checkpoints)
              for w in WIDTHS}
    spearman = loss_accuracy_spearman(list(runs.values()), probe)["rho"]
    run = runs[width]
    ckpt = next(c for c in run.checkpoints if c.step == step)
    _, test = _data(seed)
    x = test.patches[:N_SHOW]
    with torch.no_grad():
        rec = reconstruct(run.model(step), x, PREFIX)
    originals = x.reshape(-1, 4, 4, 2, 2).permute(0, 1, 3, 2, 4).reshape(-1, 8, 8)
    mse = float(((patchify(rec, 2) - x)[:, PREFIX:] ** 2).mean())
    return AIMState(width, step, probe, ckpt.loss, getattr(ckpt, probe), points, spearman,
                    originals.numpy(), rec[:, 0].numpy(), mse, cached)


def _mosaic(top: np.ndarray, bottom: np.ndarray) -> list[list[float | None]]:
    """Two rows of 8×8 images with one blank row/column between them (None: a gap)."""
    k = top.shape[0]
    out = np.full((17, 9 * k - 1), np.nan)
    for i in range(k):
        out[:8, 9 * i:9 * i + 8] = top[i]
        out[9:, 9 * i:9 * i + 8] = bottom[i]
    return rows_with_gaps(out[::-1].astype(float))


class AIMExplorer(InteractiveFigure):
    """The AIM explorer (module docstring).

    Args:
        width: one of :data:`WIDTHS`; step: one of :data:`MARKS`; probe: one of :data:`PROBES`;
        seed: of the runs and the split.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-aim"

    def __init__(self, *, width: int = 32, step: int = STEPS, probe: str = "attentive",
                 seed: int = 0, debounce_ms: float = 150, disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            compute_aim(width, step, probe, seed=seed)  # validates (and fills the cache)
        self.seed = seed
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         width=width, step=step, probe=probe)

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "width": ipw.SelectionSlider(options=[(str(w), w) for w in WIDTHS], value=32,
                                         description="trunk width", style=style,
                                         continuous_update=True, layout=ipw.Layout(width="260px")),
            "step": ipw.SelectionSlider(options=[(str(s), s) for s in MARKS], value=STEPS,
                                        description="checkpoint (step)", style=style,
                                        continuous_update=True, layout=ipw.Layout(width="320px")),
            "probe": ipw.Dropdown(options=[("attentive probe", "attentive"),
                                           ("linear probe (mean-pooled)", "linear")],
                                  value="attentive", description="probe", style=style,
                                  layout=ipw.Layout(width="300px")),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.1)
        for w in WIDTHS:
            fig.add_trace(go.Scatter(
                name=f"w{w}", mode="lines+markers", x=[], y=[], line={"color": COLORS[w]},
                text=[], hovertemplate=f"width {w}, step %{{text}}<br>loss %{{x:.4f}}, "
                "accuracy %{y:.3f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(
            name="now", mode="markers", x=[], y=[], showlegend=False,
            marker={"size": 16, "symbol": "star", "color": "gold",
                    "line": {"width": 1, "color": "black"}},
            hovertemplate="chosen: loss %{x:.4f}, accuracy %{y:.3f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Heatmap(name="digits", z=[], colorscale="Greys", zmin=-1, zmax=1,
                                 showscale=False,
                                 hovertemplate="pixel %{z:.2f}<extra></extra>"), row=1, col=2)
        fig.update_xaxes(title_text="held-out pre-training loss", row=1, col=1)
        fig.update_yaxes(title_text="probe accuracy (held-out)", row=1, col=1)
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=2)
        fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=2)
        fig.update_layout(legend_title_text="checkpoints by trunk width:")
        return figure_widget(fig, "AIM …", height=430, margin={"b": 50}, legend="below",
                             legend_y=-0.16)

    def compute(self, **params) -> AIMState:
        return compute_aim(params["width"], params["step"], params["probe"], seed=self.seed)

    def draw(self, state: AIMState) -> None:
        for w in WIDTHS:
            pts = state.points[w]
            self.trace(f"w{w}").update(x=[p[1] for p in pts], y=[p[2] for p in pts],
                                       text=[str(p[0]) for p in pts])
        self.trace("now").update(x=[state.loss], y=[state.accuracy])
        self.trace("digits").update(z=_mosaic(state.originals, state.predictions))
        self.figure.layout.title.text = (
            f"width {state.width}, step {state.step}: loss {state.loss:.4f}, {state.probe} probe "
            f"{state.accuracy:.1%}<br><sup>Spearman ρ(loss, accuracy) over all checkpoints "
            f"{state.spearman:.2f}; right: held-out digits (top) and predictions after "
            f"{PREFIX} given patches (bottom)</sup>")
        self.figure.layout.meta = {
            "width": state.width, "step": state.step, "probe": state.probe, "loss": state.loss,
            "accuracy": state.accuracy, "spearman": state.spearman, "recon_mse": state.recon_mse,
            "cached": state.cached,
        }
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("width", "width", repr(state.width), str(state.width)),
            _stat("step", "step", repr(state.step), str(state.step)),
            _stat("loss", "held-out loss", repr(state.loss), f"{state.loss:.4f}"),
            _stat("accuracy", f"{state.probe} probe", repr(state.accuracy),
                  f"{state.accuracy:.1%}"),
            _stat("spearman", "Spearman ρ", repr(state.spearman), f"{state.spearman:.2f}",
                  "rank correlation of loss and accuracy over every checkpoint shown"),
        ]) + "</div>"
