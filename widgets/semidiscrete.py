"""The Laguerre explorer: which noise goes to which target, as the dual potential trains.

Semidiscrete flow matching (Mousavi-Hosseini, Zhang, Klein and Cuturi, 2025, "Flow Matching
with Semidiscrete Couplings") pairs each noise sample x ~ N(0, I) with a target point y_j
through a dual potential g ∈ R^N fitted by SGD (:func:`otkit.semidiscrete.semidiscrete`). At
ε = 0 the noise goes to its Laguerre cell, argmin_j ½‖x − y_j‖² − g_j: at g = 0 these are the
Voronoi cells of the targets, and with N(0, I) noise and targets on a half annulus of radii
4–6 the innermost targets swallow almost all the noise while the outer ones get none. As g
trains, the cells of the starved targets grow until every cell holds its share b_j = 1/N of
the noise. At ε > 0 a noise point is paired with a random target drawn from the soft row
∝ b_j exp((g_j − c(x, y_j))/ε); the map then shows the cell of the row's mode.

* :func:`compute_laguerre_training` — the training, a plain function returning a frozen
  :class:`LaguerreTraining`: the potential at step 0 (g = 0) and at every χ² check
  (``snapshots`` of them), each snapshot's cell masses and χ² on one fixed noise sample.
  Results are cached by their arguments (:data:`TRAINING_CACHE`), so moving the step slider,
  or coming back to an earlier setting, never retrains.
* :func:`laguerre_cells` — one snapshot, drawn: the target of each point of a regular grid,
  and the snapshot's cell masses against b and χ²; a frozen :class:`LaguerreState`.
* :class:`LaguerreExplorer` — the widget: the snapshot (a slider labelled with the SGD step),
  ε (0 or :data:`EPSILON_OPTIONS`' positive value), the number of targets and a seed.

The grid spans the box holding both the bulk of the noise, [−3.5, 3.5]², and the targets'
half annulus with a margin of 0.5 (for the default radii: [−6.5, 6.5] × [−3.5, 6.5]), with
square cells and ``grid`` points along its longer side (120 × 93 by default).

Stable names for browser tests: traces ``"cells"`` (a heatmap of each grid point's target
index, one qualitative colour per target), ``"noise"`` (a few hundred noise samples, light),
``"targets"`` (y, coloured as their cells, marker area ∝ cell mass / b, capped at 4) on the
left; ``"mass"`` (bars: each target's cell mass, targets ordered by radius, coloured as their
cells) and ``"b"`` (the target weights, a line) on the right; the outer box has the class
``otkit-laguerre`` and the step slider ``otkit-control-step``; ``layout.meta`` holds the
numbers (``step``, ``step_index``, ``steps``, ``chi2``, ``chi2_history``, ``max_mass_error``,
``mass_errors``, ``solver_chi2``, ``masses``, ``epsilon``, ``n_targets``, ``seed``,
``cached``, ``time_s``, ...); the stats line has spans ``.otkit-stat-step``,
``.otkit-stat-chi2``, ``.otkit-stat-max-mass-error``, ``.otkit-stat-epsilon`` and
``.otkit-stat-time``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from otkit.costs import get_cost
from otkit.data import half_annulus
from otkit.flows.distributions import StandardNormal
from otkit.semidiscrete import SemidiscreteResult, assign, chi2_error, semidiscrete
from otkit.validation import check_choice, check_count, check_positive

from .base import FitCache, InteractiveFigure, _stat, figure_widget, seed_control

__all__ = [
    "EPSILON_OPTIONS", "N_TARGET_OPTIONS", "TRACE_NAMES", "TRAINING_CACHE", "LaguerreExplorer",
    "LaguerreState", "LaguerreTraining", "chi2_text", "compute_laguerre_training", "grid_box",
    "laguerre_cells", "snapshot_steps", "target_colors",
]

#: Trace names, in figure order.
TRACE_NAMES = ("cells", "noise", "targets", "mass", "b")

#: The ε the widget's dropdown offers: the Laguerre cells, and one entropic value.
EPSILON_OPTIONS = (0.0, 0.5)

#: The numbers of targets the widget's dropdown offers.
N_TARGET_OPTIONS = (8, 16, 32, 64)

#: Trainings kept by :func:`compute_laguerre_training` (keyed by its arguments).
TRAINING_CACHE = FitCache(16)

N_EVAL = 20_000  # the fixed noise sample the cell masses and χ² are measured on
N_NOISE = 300  # noise samples drawn in the figure
_EVAL_SEED_OFFSET = 1_000_003  # the evaluation sample's seed: seed + this (not the training's)
_SOURCE_HALF_WIDTH = 3.5  # the grid covers [−3.5, 3.5]² (the noise's bulk) and the targets
_MARGIN = 0.5
#: The training options that are not controls of the widget, at their defaults.
_OPTION_DEFAULTS = {"inner": 4.0, "outer": 6.0, "num_iterations": 4000, "lr": 0.1,
                    "batch_size": 128, "snapshots": 8}
_PALETTE = qualitative.Dark24 + qualitative.Light24 + qualitative.Alphabet  # 74 colours
_TARGET_SIZE = 11.0  # marker diameter of a target whose cell holds its share b_j


def target_colors(n: int) -> list[str]:
    """One qualitative colour per target index (repeating after 74)."""
    return [_PALETTE[j % len(_PALETTE)] for j in range(n)]


def snapshot_steps(num_iterations: int, snapshots: int) -> tuple[int, ...]:
    """The SGD steps of the snapshots: 0, then every χ² check of
    ``semidiscrete(..., check_every=num_iterations // snapshots)`` (the last one at
    ``num_iterations``)."""
    every = num_iterations // snapshots
    steps = list(range(every, num_iterations + 1, every))
    if steps[-1] != num_iterations:
        steps.append(num_iterations)
    return (0, *steps)


@dataclass(frozen=True, eq=False)
class LaguerreTraining:
    """One semidiscrete training, with its potential kept at every χ² check (module docstring).

    Attributes:
        n_targets, inner, outer, epsilon, num_iterations, lr, batch_size, snapshots, seed:
            the arguments of :func:`compute_laguerre_training`.
        y: the targets ``[N, 2]`` (float64); b: their weights ``[N]`` (uniform, 1/N).
        steps: the SGD step of each snapshot, ``(0, every, 2·every, ..., num_iterations)``.
        potentials: ``[S + 1, N]`` g at each snapshot (zeros at step 0; then the EMA
            potential the solver passed to its callback).
        masses: ``[S + 1, N]`` each target's share of the evaluation noise sample
            (:data:`N_EVAL` points of N(0, I), the same for every snapshot): the fraction of
            points in its Laguerre cell at ε = 0, the mean of its column of the soft coupling
            at ε > 0 — what the training matches to b.
        chi2: ``S + 1`` χ² errors of the snapshots' target marginal against b, by
            :func:`otkit.semidiscrete.chi2_error` on the evaluation sample (≈ 0 when matched).
        mass_errors: ``S + 1`` values of max_j |masses_j − b_j|.
        solver_chi2: ``S`` the solver's own χ² estimates at its checks (steps[1:]), on
            fresh batches of its training stream.
        noise: ``[N_NOISE, 2]`` noise samples to draw (the evaluation sample's first).
        result: the final :class:`otkit.semidiscrete.SemidiscreteResult`.
        time_s: seconds of the whole compute (training and evaluation).
    """

    n_targets: int
    inner: float
    outer: float
    epsilon: float
    num_iterations: int
    lr: float
    batch_size: int
    snapshots: int
    seed: int
    y: torch.Tensor
    b: torch.Tensor
    steps: tuple[int, ...]
    potentials: torch.Tensor
    masses: torch.Tensor
    chi2: tuple[float, ...]
    mass_errors: tuple[float, ...]
    solver_chi2: tuple[float, ...]
    noise: torch.Tensor
    result: SemidiscreteResult
    time_s: float

    @property
    def num_snapshots(self) -> int:
        """Snapshots kept, step 0 included (S + 1)."""
        return len(self.steps)


@dataclass(frozen=True, eq=False)
class LaguerreState:
    """One snapshot of a :class:`LaguerreTraining`, drawn on a grid (module docstring).

    Attributes:
        training: the training this snapshot belongs to.
        step_index: the snapshot's index in ``training.steps``; step: its SGD step.
        g: ``[N]`` the potential at this snapshot.
        epsilon: the training's ε.
        grid_x: ``[nx]``, grid_y: ``[ny]`` the grid's coordinates (:func:`grid_box`).
        cells: ``[ny, nx]`` the target index of each grid point (row = y): its Laguerre cell
            at ε = 0, the mode of its soft row at ε > 0 (argmax_j g_j + ε log b_j − c).
        mass: ``[N]`` each target's share of the evaluation sample (``training.masses``).
        b: ``[N]`` the target weights.
        mass_error: max_j |mass_j − b_j|; chi2: the snapshot's χ² (``training.chi2``).
        solver_chi2: the solver's own χ² at this step (``None`` at step 0).
        time_s: seconds to draw the snapshot (the grid assignment).
    """

    training: LaguerreTraining
    step_index: int
    step: int
    g: torch.Tensor
    epsilon: float
    grid_x: torch.Tensor
    grid_y: torch.Tensor
    cells: torch.Tensor
    mass: torch.Tensor
    b: torch.Tensor
    mass_error: float
    chi2: float
    solver_chi2: float | None
    time_s: float


def _check_epsilon(epsilon: object) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)):
        raise TypeError(f"epsilon must be a number >= 0, got {type(epsilon).__name__}")
    if not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon}")
    return float(epsilon)


def _check_radius(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number >= 0, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def _soft_rows(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor, b: torch.Tensor,
               epsilon: float) -> torch.Tensor:
    """The soft coupling's rows ∝ b_j exp((g_j − ½‖x_i − y_j‖²)/ε), ``[k, N]``."""
    cost = get_cost("sqeuclidean").pairwise(x, y)
    return torch.softmax(torch.log(b) + (g - cost) / epsilon, dim=1)


def _rows(x, y, g, b, epsilon) -> torch.Tensor:
    """π ``[k, N]``: one-hot Laguerre cells at ε = 0, the soft rows at ε > 0."""
    if epsilon == 0:
        index = assign(x, y, g, b=b)
        return torch.nn.functional.one_hot(index, y.shape[0]).to(x.dtype)
    return _soft_rows(x, y, g, b, epsilon)


def compute_laguerre_training(
    n_targets: int = 32,
    inner: float = 4.0,
    outer: float = 6.0,
    epsilon: float = 0.0,
    num_iterations: int = 4000,
    lr: float = 0.1,
    batch_size: int = 128,
    snapshots: int = 8,
    seed: int = 0,
) -> LaguerreTraining:
    """Train the semidiscrete potential from N(0, I₂) noise to half-annulus targets.

    The targets are ``half_annulus(n_targets, inner, outer, seed=seed)`` in float64 with
    uniform weights b = 1/N; the training is ``semidiscrete(StandardNormal(2), y,
    epsilon=epsilon, steps=num_iterations, lr=lr, batch_size=batch_size,
    check_every=num_iterations // snapshots, generator=seed, callback=...)`` (plain SGD, EMA
    0.99), keeping the potential at every check; g = 0 is added as the snapshot of step 0.
    Each snapshot's cell masses and χ² are measured on one fixed sample of :data:`N_EVAL`
    noise points (seeded ``seed + 1000003``, apart from the training's draws).

    One thread, the defaults: about 3 s. Results are cached by the (validated) arguments in
    :data:`TRAINING_CACHE`: the same arguments return the same object without training.

    Args:
        n_targets: N ≥ 2 target points.
        inner, outer: the half annulus' radii, 0 ≤ inner < outer.
        epsilon: entropic regularization ≥ 0 (0: Laguerre cells).
        num_iterations: SGD steps; lr: the learning rate (> 0); batch_size: noise per step (≥ 2).
            The default lr is 0.1, not semidiscrete's 0.02: at 0.02 the outermost of 32 targets
            still have empty cells after 4000 steps (χ² ≈ 0.18); at 0.1 χ² falls from ≈ 5 to
            ≈ 0.01 by step 1500 and ≈ 0.0005 by 4000 (seed 0).
        snapshots: χ² checks to keep (1 ≤ snapshots ≤ num_iterations); the last is at
            ``num_iterations``.
        seed: seeds the targets and the training's noise (≥ 0).

    Bad arguments raise ``ValueError`` (``TypeError`` for a wrong type), naming the argument,
    before any training.
    """
    training, _, _ = _training(
        n_targets=n_targets, inner=inner, outer=outer, epsilon=epsilon,
        num_iterations=num_iterations, lr=lr, batch_size=batch_size, snapshots=snapshots,
        seed=seed,
    )
    return training


def _training(**kwargs) -> tuple[LaguerreTraining, bool, tuple]:
    """:func:`compute_laguerre_training`, whether it came from :data:`TRAINING_CACHE`, and
    its cache key (the validated arguments)."""
    args = _check_training_args(**kwargs)
    key = tuple(sorted(args.items()))
    training, cached = TRAINING_CACHE.get(key, lambda: _train(**args))
    return training, cached, key


def _check_training_args(*, n_targets, inner, outer, epsilon, num_iterations, lr, batch_size,
                         snapshots, seed) -> dict:
    n_targets = check_count("n_targets", n_targets, minimum=2)
    inner = _check_radius("inner", inner)
    outer = _check_radius("outer", outer)
    if not inner < outer:
        raise ValueError(f"inner must be smaller than outer, got inner={inner}, outer={outer}")
    epsilon = _check_epsilon(epsilon)
    num_iterations = check_count("num_iterations", num_iterations)
    lr = check_positive("lr", lr)
    batch_size = check_count("batch_size", batch_size, minimum=2)
    snapshots = check_count("snapshots", snapshots)
    if snapshots > num_iterations:
        raise ValueError(
            f"snapshots must be at most num_iterations = {num_iterations}, got {snapshots}"
        )
    seed = check_count("seed", seed, minimum=0)
    return dict(n_targets=n_targets, inner=inner, outer=outer, epsilon=epsilon,
                num_iterations=num_iterations, lr=lr, batch_size=batch_size,
                snapshots=snapshots, seed=seed)


def _train(*, n_targets, inner, outer, epsilon, num_iterations, lr, batch_size, snapshots,
           seed) -> LaguerreTraining:
    start = time.perf_counter()
    y = half_annulus(n_targets, inner, outer, seed=seed, dtype=torch.float64)
    b = torch.full((n_targets,), 1.0 / n_targets, dtype=torch.float64)
    kept: list[tuple[int, torch.Tensor]] = [(0, torch.zeros_like(b))]
    result = semidiscrete(
        StandardNormal(2), y, b, epsilon=epsilon, steps=num_iterations,
        batch_size=batch_size, lr=lr, check_every=num_iterations // snapshots, generator=seed,
        callback=lambda step, g: kept.append((step, g.detach().clone())),
    )
    steps = tuple(step for step, _ in kept)
    assert steps == snapshot_steps(num_iterations, snapshots), steps
    potentials = torch.stack([g for _, g in kept])

    gen = torch.Generator().manual_seed(seed + _EVAL_SEED_OFFSET)
    x = StandardNormal(2)(N_EVAL, gen).to(torch.float64)
    masses, chi2 = [], []
    for g in potentials:
        pi = _rows(x, y, g, b, epsilon)
        masses.append(pi.mean(0))
        chi2.append(chi2_error(pi, b))
    masses = torch.stack(masses)
    return LaguerreTraining(
        n_targets=n_targets, inner=inner, outer=outer, epsilon=epsilon,
        num_iterations=num_iterations, lr=lr, batch_size=batch_size, snapshots=snapshots,
        seed=seed, y=y, b=b, steps=steps, potentials=potentials, masses=masses,
        chi2=tuple(chi2), mass_errors=tuple((masses - b).abs().amax(1).tolist()),
        solver_chi2=tuple(result.chi2.tolist()), noise=x[:N_NOISE].clone(), result=result,
        time_s=time.perf_counter() - start,
    )


def grid_box(training: LaguerreTraining) -> tuple[float, float, float, float]:
    """``(x_min, x_max, y_min, y_max)``: the box holding the noise's bulk [−3.5, 3.5]² and the
    targets' half annulus (``[−outer, outer] × [0, outer]``), with a margin of 0.5; for the
    default radii [−6.5, 6.5] × [−3.5, 6.5]."""
    s, reach = _SOURCE_HALF_WIDTH, training.outer + _MARGIN
    return (-max(s, reach), max(s, reach), -s, max(s, reach))


def laguerre_cells(training: LaguerreTraining, step_index: int, grid: int = 120) -> LaguerreState:
    """Snapshot ``step_index`` of ``training`` on a regular grid (module docstring).

    The grid covers :func:`grid_box` with square cells, ``grid`` points along the box's longer
    side (120 × 93 for the default half annulus). Each grid point gets its target: the
    Laguerre cell argmax_j g_j − ½‖x − y_j‖² at ε = 0 (at g = 0 the nearest target), the mode
    of its soft row at ε > 0. The masses and χ² are the training's (on its evaluation sample).

    Args:
        training: from :func:`compute_laguerre_training`.
        step_index: the snapshot, 0 ≤ step_index < ``training.num_snapshots`` (0 is g = 0).
        grid: points along the longer side of the box (≥ 2).
    """
    if not isinstance(training, LaguerreTraining):
        raise TypeError(f"training must be a LaguerreTraining, got {type(training).__name__}")
    if isinstance(step_index, bool) or not isinstance(step_index, int):
        raise TypeError(f"step_index must be an integer, got {step_index!r}")
    last = training.num_snapshots - 1
    if not 0 <= step_index <= last:
        raise ValueError(f"step_index must lie in [0, {last}] (the snapshots), got {step_index}")
    grid = check_count("grid", grid, minimum=2)
    start = time.perf_counter()
    x0, x1, y0, y1 = grid_box(training)
    spacing = max(x1 - x0, y1 - y0) / (grid - 1)
    nx = round((x1 - x0) / spacing) + 1
    ny = round((y1 - y0) / spacing) + 1
    gx = torch.linspace(x0, x1, nx, dtype=torch.float64)
    gy = torch.linspace(y0, y1, ny, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1).reshape(-1, 2)
    g, b = training.potentials[step_index], training.b
    mode_g = g if training.epsilon == 0 else g + training.epsilon * torch.log(b)
    cells = assign(points, training.y, mode_g, b=b).reshape(ny, nx)
    mass = training.masses[step_index]
    return LaguerreState(
        training=training, step_index=step_index, step=training.steps[step_index], g=g,
        epsilon=training.epsilon, grid_x=gx, grid_y=gy, cells=cells, mass=mass, b=b,
        mass_error=training.mass_errors[step_index], chi2=training.chi2[step_index],
        solver_chi2=None if step_index == 0 else training.solver_chi2[step_index - 1],
        time_s=time.perf_counter() - start,
    )


# ----- the widget --------------------------------------------------------------------------


class LaguerreExplorer(InteractiveFigure):
    """The Laguerre explorer (module docstring).

    Args:
        step: the snapshot shown first, an index into the snapshots (0: g = 0, the default).
        epsilon: one of :data:`EPSILON_OPTIONS`; n_targets: one of :data:`N_TARGET_OPTIONS`;
            seed: ≥ 0 (see :func:`compute_laguerre_training`).
        grid: the grid's points along its longer side (:func:`laguerre_cells`).
        cache_size: drawn snapshots kept (:attr:`cells_cache`); trainings are kept by
            :data:`TRAINING_CACHE`.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
        **compute_options: passed to :func:`compute_laguerre_training` (``inner``,
            ``outer``, ``num_iterations``, ``lr``, ``batch_size``, ``snapshots``); they fix
            the step slider's labels, so they are not controls.

    The ``step`` control is a compute parameter, but a cheap one: a change trains nothing
    (the training comes from the cache) and only draws the snapshot on the grid.

    Attributes:
        cached: whether the last state's training came from the cache.
        steps: the SGD step of each snapshot (the step slider's labels).
    """

    css_class = "otkit-laguerre"

    def __init__(
        self,
        *,
        step: int = 0,
        epsilon: float = 0.0,
        n_targets: int = 32,
        seed: int = 0,
        grid: int = 120,
        cache_size: int = 64,
        debounce_ms: float = 150,
        disable_while_busy: bool = False,
        **compute_options,
    ):
        unknown = sorted(set(compute_options) - set(_OPTION_DEFAULTS))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} for compute_laguerre_training")
        self.grid = check_count("grid", grid, minimum=2)
        self.compute_options = compute_options
        options = _check_training_args(**{
            "n_targets": 32, "epsilon": 0.0, "seed": 0, **_OPTION_DEFAULTS, **compute_options,
        })
        self.steps = snapshot_steps(options["num_iterations"], options["snapshots"])
        for name, value, choices in (("epsilon", epsilon, EPSILON_OPTIONS),
                                     ("n_targets", n_targets, N_TARGET_OPTIONS),
                                     ("step", step, tuple(range(len(self.steps))))):
            check_choice(name, value, choices)
        self.cells_cache = FitCache(cache_size)  # before the base's __init__, which computes
        self.cached = False
        super().__init__(
            debounce_ms=debounce_ms, disable_while_busy=disable_while_busy, step=step,
            epsilon=epsilon, n_targets=n_targets, seed=seed,
        )

    # ----- InteractiveFigure --------------------------------------------------------------
    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "step": ipw.SelectionSlider(
                options=[(str(s), k) for k, s in enumerate(self.steps)], value=0,
                description="SGD step", continuous_update=True, style=style,
                layout=ipw.Layout(width="420px"),
            ),
            "epsilon": ipw.Dropdown(
                options=[("0 (Laguerre cells)" if e == 0 else f"{e:g} (mode of the soft row)", e)
                         for e in EPSILON_OPTIONS],
                value=0.0, description="ε", layout=ipw.Layout(width="240px"), style=style,
            ),
            "n_targets": ipw.Dropdown(
                options=list(N_TARGET_OPTIONS), value=32, description="targets N",
                layout=ipw.Layout(width="150px"), style=style,
            ),
            "seed": seed_control(),
        }

    def layout_controls(self, controls: list[ipw.Widget]) -> ipw.Box:
        """Two rows: the snapshot shown, then the problem (ε, N, seed)."""
        return self.control_rows(["step"], ["epsilon", "n_targets", "seed"])

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.62, 0.38], horizontal_spacing=0.09,
            subplot_titles=("which noise goes to which target", "cell mass per target"),
        )
        fig.add_trace(go.Heatmap(
            name="cells", x=[], y=[], z=[], zmin=-0.5, zmax=0.5, showscale=False,
            hovertemplate="x = (%{x:.2f}, %{y:.2f}) → target %{z}<extra></extra>",
        ), row=1, col=1)
        fig.add_trace(go.Scatter(
            name="noise", mode="markers", x=[], y=[],
            marker={"size": 3, "color": "rgba(255,255,255,0.75)",
                    "line": {"width": 0.5, "color": "rgba(0,0,0,0.35)"}},
            hoverinfo="skip",
        ), row=1, col=1)
        fig.add_trace(go.Scatter(
            name="targets", mode="markers", x=[], y=[],
            marker={"size": [], "color": [], "sizemode": "diameter",
                    "line": {"width": 1.5, "color": "black"}},
            hovertemplate="target %{customdata[0]}: cell mass %{customdata[1]:.3g} × b"
                          "<extra></extra>",
        ), row=1, col=1)
        fig.add_trace(go.Bar(
            name="mass", x=[], y=[], marker={"color": [], "line": {"width": 0.5,
                                                                   "color": "black"}},
            hovertemplate="target %{x}: mass %{y:.4f} (radius %{customdata:.2f})"
                          "<extra></extra>",
        ), row=1, col=2)
        fig.add_trace(go.Scatter(
            name="b", mode="lines", x=[], y=[], line={"color": "black", "dash": "dash"},
            hovertemplate="b = %{y:.4f}<extra></extra>",
        ), row=1, col=2)
        fig.update_xaxes(title_text="first coordinate", row=1, col=1)
        fig.update_yaxes(title_text="second coordinate", scaleanchor="x", scaleratio=1,
                         row=1, col=1)
        fig.update_xaxes(title_text="targets, by radius", type="category", showticklabels=False,
                         row=1, col=2)
        fig.update_yaxes(title_text="share of the noise", row=1, col=2)
        return figure_widget(fig, "Laguerre cells …", height=560, margin={"t": 90, "b": 50},
                             legend=None, bargap=0.15)

    def compute(self, **params) -> LaguerreState:
        step = params.pop("step")
        training, self.cached, key = _training(
            **{**_OPTION_DEFAULTS, **self.compute_options, **params})
        state, _ = self.cells_cache.get(
            (key, step, self.grid), lambda: laguerre_cells(training, step, self.grid))
        return state

    def draw(self, state: LaguerreState) -> None:
        fig, training = self.figure, state.training
        n = training.n_targets
        colors = target_colors(n)
        scale = [[(k + d) / n, c] for k, c in enumerate(colors) for d in (0, 1)]
        self.trace("cells").update(
            x=state.grid_x.numpy(), y=state.grid_y.numpy(), z=state.cells.numpy(),
            zmin=-0.5, zmax=n - 0.5, colorscale=scale,
        )
        noise = training.noise.numpy()
        self.trace("noise").update(x=noise[:, 0], y=noise[:, 1])
        y = training.y.numpy()
        share = (state.mass / state.b).numpy()  # 1 = the cell holds its share b_j
        sizes = 4.0 + _TARGET_SIZE * share.clip(0, 4) ** 0.5
        self.trace("targets").update(
            x=y[:, 0], y=y[:, 1], marker={"size": sizes, "color": colors},
            customdata=[[j, s] for j, s in enumerate(share.tolist())],
        )
        order = training.y.norm(dim=1).argsort().tolist()
        labels = [str(j) for j in order]
        radius = training.y.norm(dim=1)
        self.trace("mass").update(
            x=labels, y=state.mass[order].numpy(), customdata=radius[order].numpy(),
            marker={"color": [colors[j] for j in order]},
        )
        self.trace("b").update(x=labels, y=state.b[order].numpy())
        top = max(training.masses.max().item(), training.b.max().item())
        fig.layout.yaxis2.range = [0, 1.05 * top]  # fixed over the snapshots: bars shrink
        x0, x1, y0, y1 = grid_box(training)
        fig.layout.xaxis.range = [x0, x1]
        fig.layout.yaxis.range = [y0, y1]

        kind = "Laguerre cells" if state.epsilon == 0 else (
            f"ε = {state.epsilon:g}: cells of each row's mode")
        fig.layout.title.text = (
            f"SGD step {state.step} of {training.num_iterations}: χ² {chi2_text(state.chi2, 3)}, "
            f"max |mass − b| = {state.mass_error:.3g}"
            f"<br><sup>{kind}; N = {n} targets on a half annulus, noise N(0, I), "
            f"b = 1/N; target size ∝ cell mass / b</sup>"
        )
        # The whole dict: inside batch_update, reading layout.meta back gives the old one.
        fig.layout.meta = _meta(state, self.cached)
        self.stats.value = _stats_html(state, self.cached)

    # ----- public -------------------------------------------------------------------------
    @property
    def step(self) -> int:
        """The SGD step of the snapshot shown."""
        return self.steps[self.controls["step"].value]


def chi2_text(chi2: float, digits: int) -> str:
    """``"= 0.0123"``, or for a negative estimate ``"≈ 0 (estimate -2.1e-05)"``.

    :func:`otkit.semidiscrete.chi2_error` is unbiased: once the marginal is matched, sampling
    noise puts it below 0 about half the time. A negative χ² is not shown as if it were a
    value (nor clipped to a small positive one): the page says it is 0 up to noise, and
    gives the estimate.
    """
    if chi2 < 0:
        return f"≈ 0 (estimate {chi2:.{digits}g})"
    return f"= {chi2:.{digits}g}"


def _meta(state: LaguerreState, cached: bool) -> dict:
    """The numbers for ``layout.meta``."""
    t = state.training
    return {
        "step": state.step,
        "step_index": state.step_index,
        "steps": list(t.steps),
        "chi2": state.chi2,
        "chi2_history": list(t.chi2),
        "max_mass_error": state.mass_error,
        "mass_errors": list(t.mass_errors),
        "solver_chi2": list(t.solver_chi2),
        "masses": state.mass.tolist(),
        "b": state.b.tolist(),
        "epsilon": state.epsilon,
        "n_targets": t.n_targets,
        "inner": t.inner,
        "outer": t.outer,
        "num_iterations": t.num_iterations,
        "lr": t.lr,
        "batch_size": t.batch_size,
        "seed": t.seed,
        "n_eval": N_EVAL,
        "grid": [len(state.grid_y), len(state.grid_x)],
        "box": list(grid_box(t)),
        "time_s": t.time_s,
        "cached": cached,
    }


def _stats_html(state: LaguerreState, cached: bool) -> str:
    t = state.training
    time_text = f"{t.time_s:.2f} s" + (" (cached)" if cached else "")
    parts = [
        _stat("step", "SGD step", state.step, f"{state.step} / {t.num_iterations}",
              f"snapshot {state.step_index} of {t.num_snapshots - 1}; step 0 is g = 0"),
        _stat("chi2", "χ²", repr(state.chi2), chi2_text(state.chi2, 4).removeprefix("= "),
              f"χ² of the target marginal against b, on {N_EVAL} noise samples (0 = matched); "
              "the estimate is unbiased, so once matched it falls below 0 by sampling noise"),
        _stat("max-mass-error", "max |mass − b|", repr(state.mass_error),
              f"{state.mass_error:.4f}", f"b = 1/N = {1 / t.n_targets:.4f}"),
        _stat("epsilon", "ε", repr(state.epsilon), f"{state.epsilon:g}"),
        _stat("time", "training", repr(t.time_s), time_text),
    ]
    return '<div class="otkit-stats-line">' + " · ".join(parts) + "</div>"
