"""Progressive entropic optimal transport (ProgOT).

Kassraie, Pooladian, Klein, Thornton, Niles-Weed and Cuturi, "Progressive Entropic Optimal
Transport Solvers", NeurIPS 2024. For the cost c(x, y) = ½‖x − y‖², instead of one entropic
problem at one ε, ProgOT walks the source cloud to the target along the McCann interpolation
in K steps. Starting from x⁽⁰⁾ = x, step k = 1..K

1. solves entropic OT from the *current* cloud x⁽ᵏ⁻¹⁾ to y at regularization ε_k,
2. builds its entropic map T_k(z) = Σ_j p_j(z) y_j, p_j(z) ∝ b_j exp((g_j − c(z, y_j))/ε_k)
   (Pooladian and Niles-Weed 2021), and
3. moves the cloud a fraction α_k of the way: x⁽ᵏ⁾ = (1 − α_k) x⁽ᵏ⁻¹⁾ + α_k T_k(x⁽ᵏ⁻¹⁾).

A new point follows the same recursion with the stored potentials, so the fitted clouds and
the out-of-sample map agree on the training points at every step. (OTT-JAX's fit loop, since
May 2025, displaces from the original x⁽⁰⁾ instead, so its fit and its ``transport`` disagree
from step 2 on; ``tests/progot/test_solver.py`` would catch that.) The coupling estimate is the last
step's plan, indexed by the original points i and the targets j.

Step sizes (the paper's §4; progress t_k = 1 − Π_{l≤k}(1 − α_l), t_0 = 0):

* ``"lin"``:  α_k = 1/(K − k + 1),                t_k = k/K;
* ``"quad"``: α_k = (2k + 1)/((K + 1)² − k²),     t_k = k(k + 2)/(K(K + 2)) (slow start);
* ``"exp"``:  α_k = 1/e,                          t_k = 1 − (1 − 1/e)^k (never reaches 1: the
  last cloud stops short of the target, as in the paper and OTT-JAX).

Regularization: by default each step uses ``relative_epsilon`` (0.05) × std of its own cost
matrix (OTT-JAX's default). ``epsilon="tuned"`` (the paper's Algorithm 4) interpolates ε_k = (1 − t_{k−1}) ε_start +
t_{k−1} ε_end from ε_start = ``start_epsilon_scale`` × 0.05 std C(x, y) to an ε_end chosen
on the target alone: for each scale s of a grid, fit y → y at ε = s × 0.05 std C(y, y) and keep
the s whose entropic map best reproduces held-out target points. Warm start: step k + 1 begins
from (1 − α_k)(f_k, g_k).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..costs import SqEuclidean
from ..geometry import PointCloud
from ..sinkhorn import (
    DEFAULT_RELATIVE_EPSILON,
    ConvergenceWarning,
    SinkhornResult,
    resolve_epsilon,
    sinkhorn,
)
from ..validation import (
    check_choice,
    check_cloud,
    check_clouds,
    check_positive,
    check_weights,
)

__all__ = [
    "progot",
    "ProgOTResult",
    "EpsilonTuning",
    "EdgeOfGridWarning",
    "alpha_schedule",
    "progress_schedule",
    "epsilon_schedule",
    "tune_end_epsilon",
    "cost_scale",
    "ALPHA_SCHEDULES",
    "DEFAULT_EPSILON_SCALES",
]

#: Named step-size schedules.
ALPHA_SCHEDULES = ("lin", "quad", "exp")

#: Number of steps when neither ``num_steps`` nor a schedule of values says otherwise.
DEFAULT_NUM_STEPS = 4

#: Grid of scales s for the tuned ε_end = s × 0.05 std C(y, y): 2⁻¹⁰ to 4, factors of 2 (in
#: two dimensions the best scale can be as small as 2⁻⁶).
DEFAULT_EPSILON_SCALES = tuple(2.0**p for p in range(-10, 3))

#: Fraction of the target held out to tune ε_end when no ``y_eval`` is given.
HELD_OUT_FRACTION = 0.2


class EdgeOfGridWarning(UserWarning):
    """The tuned ε_end is the smallest or largest of the grid tried."""


# --------------------------------------------------------------------------- schedules


def cost_scale(x: torch.Tensor, y: torch.Tensor) -> float:
    """std of the ½‖x − y‖² cost matrix between ``x`` and ``y``: the unit of relative ε."""
    return resolve_epsilon(PointCloud(x, y, SqEuclidean()), None, None)[1]


def alpha_schedule(kind: str | Sequence[float] | torch.Tensor, num_steps: int) -> torch.Tensor:
    """Step sizes ``[K]`` (float64, CPU): a named schedule (module docstring) or given values.

    Given values must lie in (0, 1] and number ``num_steps``.
    """
    k_steps = _check_num_steps(num_steps)
    if isinstance(kind, str):
        check_choice("alpha", kind, ALPHA_SCHEDULES)
        k = torch.arange(1, k_steps + 1, dtype=torch.float64)
        if kind == "lin":
            return 1.0 / (k_steps - k + 1)
        if kind == "quad":
            return (2 * k + 1) / ((k_steps + 1) ** 2 - k**2)
        return torch.full((k_steps,), math.exp(-1.0), dtype=torch.float64)  # "exp"
    alphas = _as_schedule("alpha", kind)
    if alphas.numel() != k_steps:
        raise ValueError(f"alpha has {alphas.numel()} values but num_steps is {k_steps}")
    if not ((alphas > 0) & (alphas <= 1)).all():
        raise ValueError(f"alpha values must lie in (0, 1], got {alphas.tolist()}")
    return alphas


def progress_schedule(alphas: torch.Tensor) -> torch.Tensor:
    """Progress ``t = [t_0 = 0, t_1, ..., t_K]`` along the interpolation, ``t_k = 1 − Π(1 − α)``."""
    alphas = _as_schedule("alphas", alphas)
    survive = torch.cumprod(1.0 - alphas, dim=0)
    return torch.cat([alphas.new_zeros(1), 1.0 - survive])


def epsilon_schedule(start: float, end: float, alphas: torch.Tensor) -> torch.Tensor:
    """``ε_k = (1 − t_{k−1}) start + t_{k−1} end`` for k = 1..K (``[K]``, float64)."""
    start, end = check_positive("start", start), check_positive("end", end)
    t = progress_schedule(alphas)[:-1]
    return (1.0 - t) * start + t * end


@dataclass(frozen=True, repr=False)
class EpsilonTuning:
    """How ε_end was chosen: the map error of fitting y → y at each scale of the grid.

    Attributes:
        scales: ``[S]`` scales s tried (float64).
        epsilons: ``[S]`` the absolute ε = s × relative_epsilon × std C(y, y).
        errors: ``[S]`` mean ‖y_eval − T(y_eval)‖² of each fit's entropic map.
        converged: ``[S]`` bool, whether each fit reached its tolerance.
        best: index of the chosen scale.
    """

    scales: torch.Tensor
    epsilons: torch.Tensor
    errors: torch.Tensor
    converged: torch.Tensor
    best: int

    @property
    def epsilon(self) -> float:
        """The chosen ε_end."""
        return self.epsilons[self.best].item()

    def __repr__(self) -> str:
        return (
            f"EpsilonTuning(best scale={self.scales[self.best].item():.4g}, "
            f"epsilon={self.epsilon:.4g}, scales tried={self.scales.numel()})"
        )


def tune_end_epsilon(
    y: torch.Tensor,
    y_eval: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    scales: Sequence[float] | torch.Tensor = DEFAULT_EPSILON_SCALES,
    relative_epsilon: float = DEFAULT_RELATIVE_EPSILON,
    generator: torch.Generator | None = None,
    **solver_kwargs,
) -> EpsilonTuning:
    """Choose ε_end for ProgOT on the target alone (the paper's Algorithm 4).

    For each scale s, fit entropic OT from ``y`` to itself at ε = s × ``relative_epsilon`` ×
    std C(y, y) and score its entropic map by ``mean ‖y_eval − T(y_eval)‖²`` on held-out target
    points: too small an ε overfits (the map snaps to training points), too large shrinks to
    the mean. Without ``y_eval``, a random ``HELD_OUT_FRACTION`` of ``y`` is held out (drawn
    with ``generator``) and the fit uses the rest.

    Args:
        y: target points ``[m, d]``; b: their weights ``[m]`` (uniform by default; only used
            when ``y_eval`` is given).
        y_eval: held-out target points ``[k, d]``.
        scales: the grid of positive scales.
        solver_kwargs: passed to :func:`otkit.sinkhorn` (``tol``, ``max_iter``, ``backend``...).
    """
    grid = _as_schedule("scales", scales)
    if not (grid > 0).all():
        raise ValueError(f"scales must be positive, got {grid.tolist()}")
    y = check_cloud("y", y)
    if b is not None:
        b = check_weights("b", b, y.shape[0], y)
    if y_eval is None:
        if b is not None:
            raise ValueError("give y_eval with b: held-out points cannot be split off weighted y")
        y, y_eval = _split_held_out(y, generator)
    else:
        y_eval = check_cloud("y_eval", y_eval)
        if y_eval.shape[1] != y.shape[1] or y_eval.device != y.device or y_eval.dtype != y.dtype:
            raise ValueError(
                f"y_eval must be like y ([k, {y.shape[1]}], {y.dtype} on {y.device}), got "
                f"[{', '.join(map(str, y_eval.shape))}], {y_eval.dtype} on {y_eval.device}"
            )
    base = check_positive("relative_epsilon", relative_epsilon) * cost_scale(y, y)
    errors = torch.empty(grid.numel(), dtype=torch.float64)
    converged = torch.empty(grid.numel(), dtype=torch.bool)
    # Cold starts: for y → y the first half-step already lands near the solution, and a warm
    # start from a larger ε was measured to slow each fit down (up to 5× at n = 2048).
    for i, scale in enumerate(grid.tolist()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fit = sinkhorn(y, y, b, b, epsilon=scale * base, **solver_kwargs)
        errors[i] = ((fit.transport(y_eval) - y_eval) ** 2).sum(1).mean().item()
        converged[i] = fit.converged
    if not torch.isfinite(errors).any():
        raise FloatingPointError("every fit of the epsilon_end grid gave a non-finite error")
    best = int(torch.where(torch.isfinite(errors), errors, math.inf).argmin())
    if grid.numel() > 1 and grid[best] in (grid.min(), grid.max()):
        side = "largest" if grid[best] == grid.max() else "smallest"
        warnings.warn(
            f"the tuned epsilon_end sits at the {side} scale of the grid ({grid[best].item():g}):"
            " the best may lie beyond it; widen epsilon_scales",
            EdgeOfGridWarning,
            stacklevel=2,
        )
    return EpsilonTuning(
        scales=grid, epsilons=grid * base, errors=errors, converged=converged, best=best
    )


# --------------------------------------------------------------------------- the solver


@dataclass(frozen=True, repr=False)
class ProgOTResult:
    """A fitted ProgOT solver: K entropic steps and the clouds they moved.

    Attributes:
        steps: the K per-step :class:`~otkit.sinkhorn.SinkhornResult` (step k from
            ``xs[k]`` to y).
        alphas: ``[K]`` step sizes (float64, CPU).
        epsilons: ``[K]`` the ε each step used (float64, CPU).
        xs: the fitted clouds x⁽⁰⁾ = x, ..., x⁽ᴷ⁾, a list of K + 1 tensors ``[n, d]``.
        tuning: how ε_end was chosen (``epsilon="tuned"``), else ``None``.
    """

    steps: tuple[SinkhornResult, ...]
    alphas: torch.Tensor
    epsilons: torch.Tensor
    xs: list[torch.Tensor]
    tuning: EpsilonTuning | None = None

    def __repr__(self) -> str:
        x = self.xs[0]
        return (
            f"ProgOTResult(num_steps={self.num_steps}, n={x.shape[0]}, m={self.y.shape[0]}, "
            f"epsilons={[float(f'{e:.3g}') for e in self.epsilons.tolist()]}, "
            f"progress={self.progress[-1].item():.3g}, converged={self.converged}, "
            f"n_iters={list(self.n_iters)}, dtype={x.dtype}, device={x.device})"
        )

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def x(self) -> torch.Tensor:
        """The original source points ``[n, d]``."""
        return self.xs[0]

    @property
    def y(self) -> torch.Tensor:
        """The target points ``[m, d]``."""
        return self.steps[0].y

    @property
    def progress(self) -> torch.Tensor:
        """``[K + 1]`` progress t_k along the interpolation (t_0 = 0)."""
        return progress_schedule(self.alphas)

    @property
    def converged(self) -> bool:
        """Whether every step reached its tolerance."""
        return all(step.converged for step in self.steps)

    @property
    def n_iters(self) -> tuple[int, ...]:
        """Sinkhorn iterations of each step."""
        return tuple(step.n_iter for step in self.steps)

    @property
    def total_iterations(self) -> int:
        return sum(self.n_iters)

    def transport(
        self, x_new: torch.Tensor, num_steps: int | None = None, return_path: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """Push ``x_new: [k, d]`` through the first ``num_steps`` steps (all by default).

        The recursion of the fit: z ← (1 − α_k) z + α_k T_k(z). Returns ``[k, d]``, or with
        ``return_path`` the list of the K' + 1 clouds ``[x_new, ..., z⁽ᴷ'⁾]`` (on the training
        points it equals ``xs``). With ``num_steps=0`` the input itself comes back.
        """
        steps = self.num_steps if num_steps is None else num_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= self.num_steps:
            raise ValueError(f"num_steps must be an integer in [0, {self.num_steps}], got {num_steps!r}")
        z = self.steps[0].check_points("x_new", x_new)
        path = [z]
        for k in range(steps):
            z = _displace(z, self.steps[k], self.alphas[k].item())
            path.append(z)
        return path if return_path else z

    def coupling(self) -> torch.Tensor:
        """The last step's plan ``[n, m]`` (rows indexed by the original points).

        It is the entropic plan between the moved cloud x⁽ᴷ⁻¹⁾ and y, read as a coupling of
        x and y through the indices: the final ε blurs the remaining displacement, not the
        whole one, and earlier steps' map errors are part of it. At equal final ε it is not
        Sinkhorn's plan between x and y (benchmarks/PROGOT.md measures the difference).
        """
        return self.steps[-1].coupling()

    def apply(self, v: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """``P @ v`` (or ``Pᵀ @ v``) with the last step's plan P, without building it."""
        return self.steps[-1].apply(v, transpose)

    def marginal_error(self) -> float:
        """The last plan's ``‖P 1 − a‖₁ + ‖Pᵀ 1 − b‖₁``."""
        return self.steps[-1].marginal_error()

    def ot_cost(self) -> torch.Tensor:
        """``⟨P, C(x, y)⟩``: the last plan's cost between the ORIGINAL clouds (0-d tensor).

        With c = ½‖x − y‖², ``⟨P, C⟩ = ½ Σ_i r_i ‖x_i‖² + ½ Σ_j c_j ‖y_j‖² − Σ_i ⟨x_i, (P y)_i⟩``
        for the marginals r, c of P; computed from ``apply`` without the dense plan.
        """
        x, y = self.x, self.y
        row, col = self.steps[-1].marginals()
        cross = (x * self.apply(y)).sum()
        return 0.5 * (row @ (x * x).sum(1)) + 0.5 * (col @ (y * y).sum(1)) - cross


def progot(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    num_steps: int | None = None,
    alpha: str | Sequence[float] | torch.Tensor = "lin",
    epsilon: None | float | str | Sequence[float] | torch.Tensor = None,
    relative_epsilon: float | None = None,
    epsilon_scales: Sequence[float] | torch.Tensor = DEFAULT_EPSILON_SCALES,
    start_epsilon_scale: float = 1.0,
    y_eval: torch.Tensor | None = None,
    warm_start: bool = True,
    tol: float = 1e-3,
    max_iter: int = 2000,
    backend: str = "auto",
    mode: str = "auto",
    block_size: int | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> ProgOTResult:
    """Fit ProgOT from ``x: [n, d]`` to ``y: [m, d]`` for the cost ½‖x − y‖² (module docstring).

    Args:
        x, y: source and target points; a, b: their weights (uniform by default).
        num_steps: K (default: the length of a given ``alpha`` or ``epsilon`` schedule, else 4).
        alpha: ``"lin"`` | ``"quad"`` | ``"exp"`` or K step sizes in (0, 1].
        epsilon: ``None``: ``relative_epsilon`` × std of each step's cost; a number: that ε at
            every step; ``"tuned"``: the interpolated schedule to a tuned ε_end; or K
            positive values.
        relative_epsilon: the relative ε of the default mode and the unit of the tuned one
            (0.05 when not given).
        epsilon_scales, start_epsilon_scale, y_eval: the tuned mode's grid of ε_end scales,
            ε_start's scale and held-out target points (see :func:`tune_end_epsilon`).
        warm_start: start step k + 1 from (1 − α_k)(f_k, g_k).
        tol, max_iter, backend, mode, block_size: passed to each step's
            :func:`otkit.sinkhorn`. A step that stops at ``max_iter`` is reported by one
            :class:`~otkit.sinkhorn.ConvergenceWarning` at the end.
        generator: randomness of the held-out split when tuning without ``y_eval``.
        progress: show a tqdm bar over the steps.
    """
    x, y = check_clouds(x, y)
    check_weights("a", a, x.shape[0], x)
    check_weights("b", b, y.shape[0], y)
    k_steps = _resolve_num_steps(num_steps, alpha, epsilon)
    if epsilon != "tuned":
        # the tuned mode's options must not be silently ignored
        given = [
            name for name, changed in (
                ("y_eval", y_eval is not None),
                ("start_epsilon_scale", start_epsilon_scale != 1.0),
                ("epsilon_scales", epsilon_scales is not DEFAULT_EPSILON_SCALES),
            ) if changed
        ]
        if given:
            raise ValueError(f"{', '.join(given)} only apply to epsilon='tuned'")
    alphas = alpha_schedule(alpha, k_steps)
    if relative_epsilon is not None:
        check_positive("relative_epsilon", relative_epsilon)
    rel = DEFAULT_RELATIVE_EPSILON if relative_epsilon is None else relative_epsilon
    solver = dict(tol=tol, max_iter=max_iter, backend=backend, mode=mode, block_size=block_size)

    tuning = None
    epsilons: torch.Tensor | None
    if epsilon is None:
        epsilons = None
    elif isinstance(epsilon, str):
        if epsilon != "tuned":
            raise ValueError(f"epsilon must be None, 'tuned', a number or {k_steps} values, got {epsilon!r}")
        if b is not None and y_eval is None:
            raise ValueError(
                "epsilon='tuned' with weights b needs y_eval: held-out points cannot be split "
                "off a weighted target"
            )
        start_scale = check_positive("start_epsilon_scale", start_epsilon_scale)
        start = start_scale * (rel * cost_scale(x, y))
        tuning = tune_end_epsilon(
            y, y_eval, b, scales=epsilon_scales,
            relative_epsilon=rel, generator=generator, **solver,
        )
        epsilons = epsilon_schedule(start, tuning.epsilon, alphas)
    elif isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool):
        epsilons = torch.full((k_steps,), check_positive("epsilon", epsilon), dtype=torch.float64)
    else:
        epsilons = _as_schedule("epsilon", epsilon)
        if epsilons.numel() != k_steps:
            raise ValueError(f"epsilon has {epsilons.numel()} values but num_steps is {k_steps}")
        if not (epsilons > 0).all():
            raise ValueError(f"epsilon values must be positive, got {epsilons.tolist()}")

    xs, steps, init, stalled = [x], [], None, []
    for k in tqdm(range(k_steps), desc="progot", disable=not progress, leave=False):
        eps = dict(relative_epsilon=rel) if epsilons is None else dict(epsilon=epsilons[k].item())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            step = sinkhorn(xs[-1], y, a, b, init=init, **eps, **solver)
        if not step.converged:
            stalled.append(k + 1)
        alpha_k = alphas[k].item()
        xs.append(_displace(xs[-1], step, alpha_k))
        steps.append(step)
        if warm_start:
            init = ((1.0 - alpha_k) * step.f, (1.0 - alpha_k) * step.g)
    if stalled:
        warnings.warn(
            f"ProgOT steps {stalled} of {k_steps} did not reach tol={tol:g} in max_iter="
            f"{max_iter}: raise max_iter, or use larger epsilons",
            ConvergenceWarning,
            stacklevel=2,
        )
    return ProgOTResult(
        steps=tuple(steps), alphas=alphas,
        epsilons=torch.tensor([s.epsilon for s in steps], dtype=torch.float64),
        xs=xs, tuning=tuning,
    )


# --------------------------------------------------------------------------- helpers


def _displace(z: torch.Tensor, step: SinkhornResult, alpha: float) -> torch.Tensor:
    """One ProgOT move ``(1 − α) z + α T(z)``, the same in fitting and in transport."""
    if alpha == 1.0:
        return step.transport(z)
    return torch.lerp(z, step.transport(z), alpha)


def _check_num_steps(num_steps: object) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    return num_steps


def _as_schedule(name: str, values: object) -> torch.Tensor:
    """A 1-d finite float64 CPU tensor from a sequence or tensor of numbers."""
    if isinstance(values, torch.Tensor):
        out = values.detach().to("cpu", torch.float64)
    elif isinstance(values, Sequence) and not isinstance(values, str):
        try:
            out = torch.tensor([float(v) for v in values], dtype=torch.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from None
    else:
        raise TypeError(f"{name} must be a sequence or tensor of numbers, got {type(values).__name__}")
    if out.ndim != 1 or out.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-d schedule, got shape {tuple(out.shape)}")
    if not torch.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or inf values: {out.tolist()}")
    return out


def _resolve_num_steps(num_steps, alpha, epsilon) -> int:
    """K from ``num_steps``, else from a given alpha or epsilon schedule, else the default."""
    if num_steps is not None:
        return _check_num_steps(num_steps)
    for name, value in (("alpha", alpha), ("epsilon", epsilon)):
        if isinstance(value, torch.Tensor) or (
            isinstance(value, Sequence) and not isinstance(value, str)
        ):
            return _as_schedule(name, value).numel()
    return DEFAULT_NUM_STEPS


def _split_held_out(
    y: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    m = y.shape[0]
    held = max(1, round(HELD_OUT_FRACTION * m))
    if m - held < 2:
        raise ValueError(f"y has {m} points: too few to hold some out for tuning; pass y_eval")
    device = generator.device if generator is not None else torch.device("cpu")
    perm = torch.randperm(m, generator=generator, device=device).to(y.device)
    return y[perm[held:]], y[perm[:held]]
