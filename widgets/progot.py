"""The ProgOT explorer: how the step sizes α_k and the regularizations ε_k move a cloud.

ProgOT (:func:`otkit.progot`) walks the source cloud x to the target y in K entropic steps,
x⁽ᵏ⁾ = (1 − α_k) x⁽ᵏ⁻¹⁾ + α_k T_k(x⁽ᵏ⁻¹⁾), each T_k an entropic map at ε_k. Here x and y are
samples of a 2-D ground-truth pair (:func:`otkit.data.ground_truth_map`) whose optimal
map T is known, so the fitted map can be scored on held-out points against the truth, and
against the plain entropic map (one :func:`otkit.sinkhorn` fit at the default ε).

* :func:`compute_progot` — the computation, a plain function returning a frozen
  :class:`ProgOTState`; no browser or widget needed.
* :class:`ProgOTExplorer` — the widget: K, the α schedule, the ε mode (``"default"``: 0.05 ×
  std of each step's cost; ``"tuned"``: progot's ε_end tuned on the target; ``"manual"``:
  ε_k interpolated from ε_start to ε_end along the progress, the two given *relative* to the
  std of the cost matrix C(x, y) like otkit's ``relative_epsilon``), the map and a seed.
  Left, the schedules per step; right, the cloud x⁽ᵏ⁾ of the step chosen with the ``step``
  slider, which only redraws (it never recomputes).

Stable names for browser tests: traces ``"alpha"`` and ``"epsilon"`` (bars at steps 1..K,
ε on the right-hand axis), ``"progress"`` (t_0..t_K, a line), ``"current"`` (the chosen step
on the progress line), ``"target"``, ``"source"``, ``"trajectories"`` (a few training points'
paths through x⁽⁰⁾..x⁽ᴷ⁾, one trace with ``None`` between paths), ``"cloud"`` (x⁽ᵏ⁾ for the
chosen step k); the outer box has the class ``otkit-progot`` and the step slider
``otkit-control-step``; ``layout.meta`` holds the numbers (``map_error``, ``entropic_error``,
``step_errors``, ``alphas``, ``epsilons``, ``progress``, ``n_iters``, ``total_iterations``,
``converged``, ``time_s``, ``num_steps``, ``step``, ...); the stats line has spans
``.otkit-stat-map-error``, ``.otkit-stat-entropic-error``, ``.otkit-stat-iterations``,
``.otkit-stat-steps``, ``.otkit-stat-progress``, ``.otkit-stat-time``,
``.otkit-stat-converged``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

import otkit
from otkit.data import GROUND_TRUTH_MAPS, ground_truth_map, map_error
from otkit.progot import (
    ALPHA_SCHEDULES,
    alpha_schedule,
    cost_scale,
    epsilon_schedule,
    progot,
)
from otkit.validation import check_choice, check_positive

from .base import InteractiveFigure, _stat, figure_widget, seed_control

__all__ = [
    "ProgOTState", "compute_progot", "ProgOTExplorer", "EPSILON_MODES", "TRACE_NAMES",
    "trajectories",
]

#: The ε modes: progot's per-step default, its tuned schedule, or a given one.
EPSILON_MODES = ("default", "tuned", "manual")

#: Trace names, in figure order.
TRACE_NAMES = (
    "alpha", "epsilon", "progress", "current", "target", "source", "trajectories", "cloud",
)

_MAX_STEPS = 10  # the num_steps slider's end (the compute function takes any K >= 1)


@dataclass(frozen=True, eq=False)
class ProgOTState:
    """One ProgOT fit on a 2-D ground-truth pair, scored against the true map.

    Attributes:
        n, n_test, num_steps, alpha, epsilon_mode, kind, seed: the arguments.
        epsilon_start, epsilon_end: the manual mode's ε_start and ε_end, relative to
            ``cost_std`` (recorded in every mode, used only in ``"manual"``).
        cost_std: std of the cost matrix C(x, y): the unit of relative ε.
        x, y: the training clouds ``[n, 2]`` (CPU, float32).
        xs: the fitted clouds x⁽⁰⁾ = x, ..., x⁽ᴷ⁾, K + 1 tensors ``[n, 2]``.
        alphas: ``[K]`` step sizes; epsilons: ``[K]`` the absolute ε of each step;
            progress: ``[K + 1]`` t_0 = 0, ..., t_K (all float64).
        n_iters, converged_steps: Sinkhorn iterations and convergence of each step.
        tuned_epsilon_end: the tuned ε_end (absolute) in ``"tuned"`` mode, else ``None``.
        x_test: held-out source points ``[n_test, 2]``; truth: their true images T(x_test);
            image: their ProgOT images.
        map_error: ``map_error(image, truth)`` (0 perfect, ~1 for predicting the mean).
        step_errors: K + 1 errors of the test points after k = 0..K steps against the
            *final* truth T(x_test): the distance still to go (``step_errors[-1] ==
            map_error``).
        entropic_error, entropic_epsilon, entropic_n_iter, entropic_converged: the same
            score for the plain entropic map of one Sinkhorn fit x → y at the default ε.
        time_s: seconds of the ProgOT fit (tuning included); entropic_time_s: of the
            reference fit.
        warnings: messages of ProgOT's convergence warnings (not the reference fit's).
    """

    n: int
    n_test: int
    num_steps: int
    alpha: str
    epsilon_mode: str
    epsilon_start: float
    epsilon_end: float
    kind: str
    seed: int
    cost_std: float
    x: torch.Tensor
    y: torch.Tensor
    xs: tuple[torch.Tensor, ...]
    alphas: torch.Tensor
    epsilons: torch.Tensor
    progress: torch.Tensor
    n_iters: tuple[int, ...]
    converged_steps: tuple[bool, ...]
    tuned_epsilon_end: float | None
    x_test: torch.Tensor
    truth: torch.Tensor
    image: torch.Tensor
    map_error: float
    step_errors: tuple[float, ...]
    entropic_error: float
    entropic_epsilon: float
    entropic_n_iter: int
    entropic_converged: bool
    time_s: float
    entropic_time_s: float
    warnings: tuple[str, ...] = ()

    @property
    def total_iterations(self) -> int:
        """Sinkhorn iterations of all K steps together."""
        return sum(self.n_iters)

    @property
    def converged(self) -> bool:
        """Whether every ProgOT step reached its tolerance."""
        return all(self.converged_steps)


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def compute_progot(
    *,
    n: int = 256,
    num_steps: int = 4,
    alpha: str = "lin",
    epsilon_mode: str = "default",
    epsilon_start: float = 0.05,
    epsilon_end: float = 0.01,
    kind: str = "softplus",
    seed: int = 0,
    n_test: int = 256,
    tol: float = 1e-3,
    max_iter: int = 2000,
) -> ProgOTState:
    """Fit ProgOT on samples of a 2-D ground-truth map and score it against the truth.

    Args:
        n: training points per cloud (at least 3: the tuned mode holds some targets out).
        num_steps: K; alpha: one of :data:`otkit.progot.ALPHA_SCHEDULES`.
        epsilon_mode: one of :data:`EPSILON_MODES` (module docstring).
        epsilon_start, epsilon_end: the manual schedule's ends, relative to std C(x, y): the
            steps use ``epsilon_schedule(epsilon_start·s, epsilon_end·s, alphas)`` with
            s = std C(x, y). Validated in every mode, used only in ``"manual"``.
        kind: the ground-truth map, one of :data:`otkit.data.GROUND_TRUTH_MAPS`.
        seed: chooses the map (its ``seed``) and seeds the samples and the tuning's split.
        n_test: held-out source points to score the maps on (at least 2).
        tol, max_iter: passed to every Sinkhorn fit.

    Non-convergence does not raise: it is reported in ``converged_steps`` and ``warnings``.
    Bad arguments raise ``ValueError`` (or ``TypeError`` for a wrong type).
    """
    n, n_test = _check_int("n", n, 3), _check_int("n_test", n_test, 2)
    num_steps = _check_int("num_steps", num_steps, 1)
    seed = _check_int("seed", seed, 0)
    alpha = check_choice("alpha", alpha, ALPHA_SCHEDULES)
    epsilon_mode = check_choice("epsilon_mode", epsilon_mode, EPSILON_MODES)
    kind = check_choice("kind", kind, GROUND_TRUTH_MAPS)
    epsilon_start = check_positive("epsilon_start", epsilon_start)
    epsilon_end = check_positive("epsilon_end", epsilon_end)

    truth_map = ground_truth_map(kind, 2, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = truth_map.sample_pair(n, generator=gen)
    x_test = truth_map.sample_source(n_test, generator=gen)
    truth = truth_map.map(x_test)
    cost_std = cost_scale(x, y)
    alphas = alpha_schedule(alpha, num_steps)
    if epsilon_mode == "manual":
        epsilon = epsilon_schedule(epsilon_start * cost_std, epsilon_end * cost_std, alphas)
    else:
        epsilon = None if epsilon_mode == "default" else "tuned"

    solver = dict(tol=tol, max_iter=max_iter)
    # ProgOT's warnings and the reference fit's are recorded apart: the "converged" stat is
    # ProgOT's; the reference reports its own convergence in entropic_converged.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", otkit.ConvergenceWarning)
        start = time.perf_counter()
        result = progot(
            x, y, num_steps=num_steps, alpha=alpha, epsilon=epsilon,
            generator=torch.Generator().manual_seed(seed), **solver,
        )
        time_s = time.perf_counter() - start
    with warnings.catch_warnings(record=True) as caught_entropic:
        warnings.simplefilter("always", otkit.ConvergenceWarning)
        start = time.perf_counter()
        entropic = otkit.sinkhorn(x, y, **solver)
        entropic_time_s = time.perf_counter() - start
    for w in caught + caught_entropic:  # anything but non-convergence is passed on
        if not issubclass(w.category, otkit.ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    path = result.transport(x_test, return_path=True)
    step_errors = tuple(map_error(z, truth) for z in path)
    return ProgOTState(
        n=n, n_test=n_test, num_steps=num_steps, alpha=alpha, epsilon_mode=epsilon_mode,
        epsilon_start=epsilon_start, epsilon_end=epsilon_end, kind=kind, seed=seed,
        cost_std=cost_std, x=x, y=y, xs=tuple(result.xs), alphas=result.alphas,
        epsilons=result.epsilons, progress=result.progress, n_iters=result.n_iters,
        converged_steps=tuple(step.converged for step in result.steps),
        tuned_epsilon_end=None if result.tuning is None else result.tuning.epsilon,
        x_test=x_test, truth=truth, image=path[-1], map_error=step_errors[-1],
        step_errors=step_errors,
        entropic_error=map_error(entropic.transport(x_test), truth),
        entropic_epsilon=entropic.epsilon, entropic_n_iter=entropic.n_iter,
        entropic_converged=entropic.converged, time_s=time_s, entropic_time_s=entropic_time_s,
        warnings=tuple(
            str(w.message) for w in caught if issubclass(w.category, otkit.ConvergenceWarning)
        ),
    )


def trajectories(state: ProgOTState, count: int = 24) -> tuple[list, list]:
    """The paths x⁽⁰⁾..x⁽ᴷ⁾ of ``count`` training points (evenly spaced indices) as one
    polyline ``(xs, ys)``, with ``None`` between paths."""
    index = torch.linspace(0, state.n - 1, min(count, state.n)).round().long()
    path = torch.stack([cloud[index] for cloud in state.xs], dim=1)  # [count, K + 1, 2]
    xs: list = []
    ys: list = []
    for points in path.tolist():
        xs += [p[0] for p in points] + [None]
        ys += [p[1] for p in points] + [None]
    return xs, ys


class ProgOTExplorer(InteractiveFigure):
    """The ProgOT schedule explorer (module docstring).

    Args:
        num_steps, alpha, epsilon_mode, epsilon_start, epsilon_end, kind, seed: initial
            control values (the ε sliders are relative to std C(x, y), as in
            :func:`compute_progot`, and enabled only in manual mode).
        step: the cloud x⁽ᵏ⁾ shown first (default: the last, K). While the step slider sits
            at its end, it follows K when K changes.
        n_paths: how many training points' trajectories to draw.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
        **compute_options: passed to :func:`compute_progot` (``n``, ``n_test``, ``tol``,
            ``max_iter``).

    The step slider is a view control, not a compute parameter: it is not in
    :attr:`controls` (so not in ``params``), moving it redraws the cloud without computing
    (``n_computes`` stays), and ``set(step=k)`` moves it.
    """

    css_class = "otkit-progot"

    def __init__(
        self,
        *,
        num_steps: int = 4,
        alpha: str = "lin",
        epsilon_mode: str = "default",
        epsilon_start: float = 0.05,
        epsilon_end: float = 0.01,
        kind: str = "softplus",
        seed: int = 0,
        step: int | None = None,
        n_paths: int = 24,
        debounce_ms: float = 150,
        disable_while_busy: bool = False,
        **compute_options,
    ):
        self.n_paths = n_paths
        self.compute_options = compute_options
        self._quiet_step = False
        # Made before the base's __init__, which lays out the controls and draws once.
        self.step_control = ipw.IntSlider(
            value=num_steps if step is None else step, min=0, max=max(num_steps, _MAX_STEPS),
            description="show step k", continuous_update=True,
            style={"description_width": "initial"},
        )
        self.step_control.add_class("otkit-control")
        self.step_control.add_class("otkit-control-step")
        self._follow_last = step is None
        super().__init__(
            debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
            num_steps=num_steps, alpha=alpha, epsilon_mode=epsilon_mode,
            epsilon_start=epsilon_start, epsilon_end=epsilon_end, kind=kind, seed=seed,
        )
        self.step_control.observe(self._on_step, names="value")

    # ----- InteractiveFigure --------------------------------------------------------------
    def make_controls(self):
        style = {"description_width": "initial"}
        log_slider = dict(
            base=10, min=-3, max=0, step=0.1, readout_format=".3g", continuous_update=True,
            disabled=True, style=style,  # enabled in manual mode only
        )
        controls = {
            "num_steps": ipw.IntSlider(
                value=4, min=1, max=_MAX_STEPS, description="steps K", continuous_update=True,
                style=style,
            ),
            "alpha": ipw.Dropdown(
                options=list(ALPHA_SCHEDULES), value="lin", description="α schedule",
                layout=ipw.Layout(width="170px"), style=style,
            ),
            "epsilon_mode": ipw.ToggleButtons(
                options=list(EPSILON_MODES), value="default", description="ε mode",
                style={**style, "button_width": "70px"},
            ),
            "epsilon_start": ipw.FloatLogSlider(
                value=0.05, description="ε start (relative)", **log_slider
            ),
            "epsilon_end": ipw.FloatLogSlider(
                value=0.01, description="ε end (relative)", **log_slider
            ),
            "kind": ipw.Dropdown(
                options=list(GROUND_TRUTH_MAPS), value="softplus", description="map",
                layout=ipw.Layout(width="170px"), style=style,
            ),
            "seed": seed_control(),
        }
        controls["epsilon_mode"].observe(self._enable_epsilon_sliders, names="value")
        return controls

    def layout_controls(self, controls: list[ipw.Widget]) -> ipw.Box:
        """Three rows: the problem and the steps, the ε schedule, the step shown."""
        return self.control_rows(["num_steps", "alpha", "kind", "seed"],
                                 ["epsilon_mode", "epsilon_start", "epsilon_end"],
                                 [self.step_control])

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.42, 0.58], horizontal_spacing=0.16,
            specs=[[{"secondary_y": True}, {}]],
            subplot_titles=("schedules per step", "the moving cloud"),
        )
        # α and t share [0, 1] on the overlaying axis, drawn above the ε bars' axis: the
        # progress line stays visible over the bars.
        schedules = dict(row=1, col=1)
        fig.add_trace(go.Bar(
            name="alpha", x=[], y=[], offsetgroup="alpha", marker_color="#1f77b4",
            hovertemplate="step %{x}: α = %{y:.3f}<extra>alpha</extra>",
        ), secondary_y=True, **schedules)
        fig.add_trace(go.Bar(
            name="epsilon", x=[], y=[], offsetgroup="epsilon", marker_color="#ff7f0e",
            hovertemplate="step %{x}: ε = %{y:.3g}<extra>epsilon</extra>",
        ), secondary_y=False, **schedules)
        fig.add_trace(go.Scatter(
            name="progress", mode="lines+markers", x=[], y=[], line=dict(color="#2ca02c"),
            hovertemplate="after %{x} steps: t = %{y:.3f}, test error %{customdata:.3g}"
                          "<extra>progress</extra>",
        ), secondary_y=True, **schedules)
        fig.add_trace(go.Scatter(
            name="current", mode="markers", x=[], y=[], showlegend=False, hoverinfo="skip",
            marker=dict(size=16, color="rgba(0,0,0,0)", line=dict(width=2.5, color="#9467bd")),
        ), secondary_y=True, **schedules)
        fig.add_trace(go.Scatter(
            name="target", mode="markers", x=[], y=[], opacity=0.6,
            marker=dict(color="#d62728", size=5),
        ), row=1, col=2)
        fig.add_trace(go.Scatter(
            name="source", mode="markers", x=[], y=[], opacity=0.35,
            marker=dict(color="#1f77b4", size=5),
        ), row=1, col=2)
        fig.add_trace(go.Scatter(
            name="trajectories", mode="lines", x=[], y=[], hoverinfo="skip",
            line=dict(color="#555", width=1), opacity=0.6,
        ), row=1, col=2)
        fig.add_trace(go.Scatter(
            name="cloud", mode="markers", x=[], y=[],
            marker=dict(color="#9467bd", size=6, line=dict(width=0.5, color="white")),
        ), row=1, col=2)
        fig.update_xaxes(title_text="step k", dtick=1, row=1, col=1)
        fig.update_yaxes(title_text="α_k and progress t_k", range=[0, 1.05], side="left",
                         tickmode="linear", tick0=0, dtick=0.2,  # not synced to ε's ticks
                         secondary_y=True, **schedules)
        fig.update_yaxes(title_text="ε_k", rangemode="tozero", side="right",
                         showgrid=False, tickformat=".2g", secondary_y=False, **schedules)
        fig.update_xaxes(title_text="x₁", row=1, col=2)
        fig.update_yaxes(title_text="x₂", scaleanchor="x2", scaleratio=1, row=1, col=2)
        return figure_widget(fig, "map error …", height=540, margin={"t": 90}, legend_y=-0.14,
                             barmode="group")

    def compute(self, **params) -> ProgOTState:
        return compute_progot(**params, **self.compute_options)

    def draw(self, state: ProgOTState) -> None:
        fig = self.figure
        steps = list(range(1, state.num_steps + 1))
        self.trace("alpha").update(x=steps, y=state.alphas.tolist())
        self.trace("epsilon").update(x=steps, y=state.epsilons.tolist())
        self.trace("progress").update(
            x=list(range(state.num_steps + 1)), y=state.progress.tolist(),
            customdata=list(state.step_errors),
        )
        fig.layout.xaxis.range = [-0.5, state.num_steps + 0.5]
        x, y = state.x.numpy(), state.y.numpy()
        self.trace("source").update(x=x[:, 0], y=x[:, 1])
        self.trace("target").update(x=y[:, 0], y=y[:, 1])
        xs, ys = trajectories(state, self.n_paths)
        self.trace("trajectories").update(x=xs, y=ys)

        mode = state.epsilon_mode
        if mode == "manual":
            mode += f" {state.epsilon_start:.3g} → {state.epsilon_end:.3g}"
        fig.layout.title.text = (
            f"map error: ProgOT {state.map_error:.4f} · entropic map {state.entropic_error:.4f}"
            f"<br><sup>K = {state.num_steps}, α {state.alpha}, ε {mode}, {state.kind} map, "
            f"n = {state.n}</sup>"
        )
        self.stats.value = _stats_html(state)

        # The step slider spans 0..K; at its end it follows K (the final cloud stays shown).
        slider = self.step_control
        at_end = self._follow_last or slider.value == slider.max
        with self._step_quietly():
            slider.max = state.num_steps  # clamps the value when K falls
            if at_end:
                slider.value = state.num_steps
        self._follow_last = False
        self._draw_step(state, slider.value)

    # ----- public -------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """The step k whose cloud x⁽ᵏ⁾ is shown."""
        return self.step_control.value

    def set(self, **params) -> "ProgOTExplorer":
        """As :meth:`InteractiveFigure.set`, and ``step=k`` moves the step slider (a redraw
        only; clamped to 0..K of the current state)."""
        step = params.pop("step", None)
        super().set(**params)
        if step is not None:
            self.step_control.value = step
        return self

    # ----- the view-only step control -----------------------------------------------------
    def _on_step(self, change) -> None:
        if self._quiet_step or self.state is None:
            return
        with self.figure.batch_update():
            self._draw_step(self.state, change["new"])
        self._sync_figure_model()

    @contextmanager
    def _step_quietly(self):
        """Change the step slider without redrawing (``draw`` redraws the step itself)."""
        self._quiet_step = True
        try:
            yield
        finally:
            self._quiet_step = False

    def _draw_step(self, state: ProgOTState, k: int) -> None:
        k = min(max(int(k), 0), state.num_steps)
        cloud = state.xs[k].numpy()
        self.trace("cloud").update(x=cloud[:, 0], y=cloud[:, 1])
        t = state.progress[k].item()
        self.trace("current").update(x=[k], y=[t])
        self.figure.layout.annotations[1].text = (
            f"cloud x<sup>({k})</sup> after {k} of {state.num_steps} steps (t = {t:.3f}, "
            f"test error {state.step_errors[k]:.3g})"
        )
        # The whole dict: inside batch_update, reading layout.meta back gives the old one.
        self.figure.layout.meta = {**_meta(state), "step": k}

    # ----- the manual ε sliders -----------------------------------------------------------
    def _enable_epsilon_sliders(self, change=None) -> None:
        manual = self.controls["epsilon_mode"].value == "manual"
        for name in ("epsilon_start", "epsilon_end"):
            self.controls[name].disabled = not manual

    def _set_disabled(self, disabled: bool) -> None:
        super()._set_disabled(disabled)
        if not disabled:  # the base re-enables every control: keep ε sliders off outside manual
            self._enable_epsilon_sliders()


def _meta(state: ProgOTState) -> dict:
    """The numbers for ``layout.meta`` (the shown step is added by the widget)."""
    return {
        "map_error": state.map_error,
        "entropic_error": state.entropic_error,
        "step_errors": list(state.step_errors),
        "alphas": state.alphas.tolist(),
        "epsilons": state.epsilons.tolist(),
        "progress": state.progress.tolist(),
        "n_iters": list(state.n_iters),
        "total_iterations": state.total_iterations,
        "converged": state.converged,
        "time_s": state.time_s,
        "num_steps": state.num_steps,
        "alpha": state.alpha,
        "epsilon_mode": state.epsilon_mode,
        "entropic_epsilon": state.entropic_epsilon,
        "cost_std": state.cost_std,
        "kind": state.kind,
        "seed": state.seed,
        "n": state.n,
    }


def _stats_html(state: ProgOTState) -> str:
    conv = "yes" if state.converged else (
        "no: steps " + ", ".join(str(k + 1) for k, ok in enumerate(state.converged_steps)
                                 if not ok) + " hit max_iter"
    )
    iters = "+".join(map(str, state.n_iters))
    parts = [
        _stat("map-error", "map error: ProgOT", repr(state.map_error), f"{state.map_error:.4f}",
              "mean ‖T̂(x) − T(x)‖² / variance of T(x), on held-out points"),
        _stat("entropic-error", "entropic map", repr(state.entropic_error),
              f"{state.entropic_error:.4f}", f"one Sinkhorn fit at ε = "
              f"{state.entropic_epsilon:.3g} ({state.entropic_n_iter} iterations)"),
        _stat("iterations", "iterations", state.total_iterations,
              f"{state.total_iterations} ({iters})"),
        _stat("steps", "K", state.num_steps, str(state.num_steps)),
        _stat("progress", "final t", repr(state.progress[-1].item()),
              f"{state.progress[-1].item():.3f}"),
        _stat("time", "time", repr(state.time_s), f"{state.time_s:.2f} s"),
        _stat("converged", "converged", str(state.converged).lower(), conv,
              "; ".join(state.warnings)),
    ]
    style = "" if state.converged else ' style="color:#b36b00"'
    return f'<div class="otkit-stats-line"{style}>' + " · ".join(parts) + "</div>"
