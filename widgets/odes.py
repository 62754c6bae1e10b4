"""The ODE explorer: pick a trajectory and its noise → the recovered equations and their fits.

Discovering ODEs with transformers (Becker et al. 2022, 2023; :mod:`otkit.odes`). The explorer
shows, for one known scalar ODE ẏ = f(y):

* the controls: **equation** (a dropdown of :data:`EQUATIONS`), **y0** (the initial condition,
  over :data:`Y0S`), **noise** σ (over :data:`NOISES`, y + σ · rms(y) · ε) and **sampling**
  (regular or irregular times, 32 samples on [0, 4]);
* the figure: the noisy samples, the true solution and, integrated from the same y0, the
  equations recovered by the pre-trained transformer (beam search + least-squares constants),
  SINDy and exhaustive enumeration;
* the stats: each method's equation (sympy-simplified) and its R² on the true solution.

The model is pre-trained once per process (:func:`otkit.odes.model.train_model`, about 25 s on
one core); a notebook may pass its own ``trained`` model.

Stable names for browser tests: traces ``"samples"``, ``"truth"``, ``"transformer"``,
``"sindy"``, ``"enumeration"``; the outer box has the class ``otkit-odes``; ``layout.meta``
holds ``equation``, ``y0``, ``noise``, ``sampling``, ``truth`` (the true f) and per method
``<method>`` (its f), ``<method>_r2`` and ``<method>_correct`` (exact skeleton); stats spans
``.otkit-stat-noise``, ``.otkit-stat-<method>`` (data-value: its R²).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import ipywidgets as ipw
import numpy as np
import plotly.graph_objects as go
import torch

from otkit.odes.fitting import Fit, r2_score, simulate
from otkit.odes.generator import add_noise, rk4, sample_times, vector_field
from otkit.odes.grammar import simplify
from otkit.odes.model import TrainedODEModel, train_model
from otkit.odes.study import predict
from otkit.validation import check_choice, check_count

from .base import InteractiveFigure, _stat, figure_widget

__all__ = ["EQUATIONS", "Y0S", "NOISES", "SAMPLINGS", "METHODS", "OdeState", "compute_odes",
           "ODEExplorer"]

#: The dropdown: name → constants {term index: c} (terms 1, y, y², y³, sin y, e^{−y}, y/(1+y²)).
EQUATIONS = {
    "logistic: y - y^2": {1: 1.0, 2: -1.0},
    "bistable: y - y^3": {1: 1.0, 3: -1.0},
    "decay: -y": {1: -1.0},
    "relaxation: exp(-y) - 1": {0: -1.0, 5: 1.0},
    "pendulum-like: -sin(y)": {4: -1.0},
    "saturation: 1.5 y/(1+y^2) - 0.5 y": {1: -0.5, 6: 1.5},
}
#: The y0 slider's stops.
Y0S = (0.25, 0.5, 2.0, 3.0)
#: The noise slider's stops (σ, relative to the trajectory's rms).
NOISES = (0.0, 0.01, 0.02, 0.05, 0.1)
SAMPLINGS = ("regular", "irregular")
METHODS = ("transformer", "sindy", "enumeration")
N_POINTS, T_MAX, N_DENSE = 32, 4.0, 120


@functools.lru_cache(maxsize=2)
def _default_model(seed: int) -> TrainedODEModel:
    return train_model(seed=seed)


def _coefficients(equation: str) -> torch.Tensor:
    c = torch.zeros(7, dtype=torch.float64)
    for k, v in EQUATIONS[equation].items():
        c[k] = v
    return c


@dataclass(frozen=True, eq=False)
class OdeState:
    """One explorer state: the samples, the truth and each method's recovered equation."""

    equation: str
    y0: float
    noise: float
    sampling: str
    t: np.ndarray
    y: np.ndarray
    dense_t: np.ndarray
    truth: np.ndarray
    fits: dict[str, Fit]
    curves: dict[str, np.ndarray]
    r2: dict[str, float]
    correct: dict[str, bool]
    formulas: dict[str, str]
    true_formula: str


def compute_odes(equation: str = "bistable: y - y^3", y0: float = 0.5, noise: float = 0.0,
                 sampling: str = "regular", *, trained: TrainedODEModel | None = None,
                 seed: int = 0, beam: int = 8) -> OdeState:
    """Sample the chosen solution, recover f with every method, integrate each from y0."""
    check_choice("equation", equation, tuple(EQUATIONS))
    check_choice("y0", y0, Y0S)
    check_choice("noise", noise, NOISES)
    check_choice("sampling", sampling, SAMPLINGS)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    check_count("beam", beam)
    trained = _default_model(seed) if trained is None else trained
    if not isinstance(trained, TrainedODEModel):
        raise TypeError(f"trained must be a TrainedODEModel, got {type(trained).__name__}")
    c = _coefficients(equation)
    gen = torch.Generator().manual_seed(seed)
    t = sample_times(1, N_POINTS, T_MAX, 1.0 if sampling == "irregular" else 0.0, generator=gen)
    y0_t = torch.tensor([float(y0)], dtype=torch.float64)
    with torch.no_grad():
        clean = rk4(vector_field(c[None]), y0_t, t, 8)
    y = add_noise(clean, noise, generator=gen)[0]
    t = t[0]
    if not bool(torch.isfinite(y).all()):  # pragma: no cover - every listed pair is checked
        raise ValueError(f"the solution of {equation} from y0 = {y0} blows up")
    fits = {m: predict(m, t, y, trained, beam) for m in METHODS}
    dense = torch.linspace(0, T_MAX, N_DENSE, dtype=torch.float64)
    rows = torch.stack([c] + [torch.as_tensor(fits[m].constants, dtype=torch.float64)
                              for m in METHODS])
    curves = simulate(rows, y0_t.expand(len(rows)), dense)
    truth_skeleton = tuple(sorted(EQUATIONS[equation]))
    r2, formulas = {}, {}
    for j, m in enumerate(METHODS):
        r2[m] = r2_score(curves[0], curves[j + 1]) if fits[m].skeleton else -np.inf
        formulas[m] = str(simplify(None, fits[m].constants, digits=3, combine=False))
    return OdeState(
        equation, float(y0), float(noise), sampling, t.numpy(), y.numpy(), dense.numpy(),
        curves[0].numpy(), fits, {m: curves[j + 1].numpy() for j, m in enumerate(METHODS)}, r2,
        {m: fits[m].skeleton == truth_skeleton for m in METHODS}, formulas,
        str(simplify(truth_skeleton, c)))


def _finite(values: np.ndarray) -> list:
    return [float(v) if np.isfinite(v) and abs(v) < 1e3 else None for v in values]


class ODEExplorer(InteractiveFigure):
    """The ODE explorer (module docstring)."""

    css_class = "otkit-odes"

    def __init__(self, *, equation: str = "bistable: y - y^3", y0: float = 0.5,
                 noise: float = 0.0, sampling: str = "regular",
                 trained: TrainedODEModel | None = None, seed: int = 0, beam: int = 8,
                 debounce_ms: float = 150, disable_while_busy: bool = False):
        from .base import torch_threads

        with torch_threads(self.compute_threads):
            self.trained = _default_model(seed) if trained is None else trained
            compute_odes(equation, y0, noise, sampling, trained=self.trained, seed=seed,
                         beam=beam)  # validates
        self.seed, self.beam = seed, beam
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         equation=equation, y0=float(y0), noise=float(noise), sampling=sampling)

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "equation": ipw.Dropdown(options=list(EQUATIONS), value="bistable: y - y^3",
                                     description="ẏ =", style=style,
                                     layout=ipw.Layout(width="330px")),
            "y0": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in Y0S], value=0.5,
                                      description="y0", style=style,
                                      layout=ipw.Layout(width="260px")),
            "noise": ipw.SelectionSlider(options=[(f"{v:g}", v) for v in NOISES], value=0.0,
                                         description="noise σ", style=style,
                                         layout=ipw.Layout(width="280px")),
            "sampling": ipw.ToggleButtons(options=list(SAMPLINGS), value="regular",
                                          style={"button_width": "80px"}),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Scatter(name="samples", mode="markers", x=[], y=[],
                                 marker={"size": 6, "color": "black"}))
        fig.add_trace(go.Scatter(name="truth", mode="lines", x=[], y=[],
                                 line={"color": "gray", "width": 4}))
        for m, dash in zip(METHODS, ("solid", "dot", "dash")):
            fig.add_trace(go.Scatter(name=m, mode="lines", x=[], y=[], line={"dash": dash}))
        fig.update_xaxes(title_text="t")
        fig.update_yaxes(title_text="y")
        return figure_widget(fig, "recovered ODEs …", height=420)

    def compute(self, **params) -> OdeState:
        return compute_odes(params["equation"], params["y0"], params["noise"],
                            params["sampling"], trained=self.trained, seed=self.seed,
                            beam=self.beam)

    def draw(self, state: OdeState) -> None:
        self.trace("samples").update(x=state.t.tolist(), y=state.y.tolist())
        self.trace("truth").update(x=state.dense_t.tolist(), y=state.truth.tolist())
        for m in METHODS:
            self.trace(m).update(x=state.dense_t.tolist(), y=_finite(state.curves[m]),
                                 hovertemplate=f"{m}: ẏ = {state.formulas[m]}<extra></extra>")
        self.figure.layout.title.text = (
            f"ẏ = {state.true_formula}, y0 = {state.y0:g}, noise {state.noise:g}, "
            f"{state.sampling}: transformer → ẏ = {state.formulas['transformer']}")
        meta = {"equation": state.equation, "y0": state.y0, "noise": state.noise,
                "sampling": state.sampling, "truth": state.true_formula}
        for m in METHODS:
            r2 = state.r2[m]
            meta.update({m: state.formulas[m], f"{m}_r2": float(r2) if np.isfinite(r2) else -1e9,
                         f"{m}_correct": bool(state.correct[m])})
        self.figure.layout.meta = meta
        parts = [_stat("noise", "noise σ", repr(state.noise), f"{state.noise:g}")]
        for m in METHODS:
            r2 = state.r2[m]
            text = f"ẏ = {state.formulas[m]} (R² {r2:.3f}{', exact skeleton' if state.correct[m] else ''})"
            parts.append(_stat(m, m, repr(float(r2)), text))
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join(parts) + "</div>"
