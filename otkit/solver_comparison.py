"""Couplings at small ε: ProgOT against Sinkhorn, cold and with ε-scaling, at equal ε and tol.

Kassraie et al. (2024, §5.2) report ProgOT as a faster and more robust coupling solver at large
scale. To compare fairly, every solver here ends at the same ε_final = ``relative_epsilon`` ×
std C(x, y) and stops at the same L1 marginal tolerance:

* ``"sinkhorn"``: a cold start at ε_final;
* ``"sinkhorn-scaling"``: ε annealed from std C by a factor q per iteration down to ε_final
  (:func:`otkit.sinkhorn` with ``epsilon_scaling=q``);
* ``"progot"``: K steps whose ε moves geometrically from 0.05 std C to ε_final
  (:func:`progot_epsilons`), so that its last step solves at ε_final, warm-started.

Each is scored by its Sinkhorn iterations (ProgOT: summed over steps), wall time, convergence
and the cost ⟨P, C(x, y)⟩ of its coupling on the original clouds (ProgOT's plan is indexed by
the original points), optionally relative to exact OT.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .progot import cost_scale, progot
from .sinkhorn import DEFAULT_RELATIVE_EPSILON, ConvergenceWarning, sinkhorn
from .validation import check_clouds, check_positive

__all__ = ["CouplingScore", "compare_coupling_solvers", "progot_epsilons"]


@dataclass(frozen=True)
class CouplingScore:
    """One solver's coupling at ε_final.

    Attributes:
        solver: ``"sinkhorn"``, ``"sinkhorn-scaling"`` or ``"progot"``.
        setting: e.g. ``"cold"``, ``"q=0.9"``, ``"K=4"``.
        n, m: cloud sizes.
        epsilon: the final ε (absolute).
        iterations: Sinkhorn iterations (ProgOT: all steps).
        seconds: wall time of the solve.
        converged: whether every solve reached ``tol`` within ``max_iter``.
        cost: ⟨P, C(x, y)⟩ with c = ½‖x − y‖².
        marginal_error: ``‖P1 − a‖₁ + ‖Pᵀ1 − b‖₁``.
        cost_gap: ``cost / exact_cost − 1`` when an exact cost was given, else None.
    """

    solver: str
    setting: str
    n: int
    m: int
    epsilon: float
    iterations: int
    seconds: float
    converged: bool
    cost: float
    marginal_error: float
    cost_gap: float | None


def progot_epsilons(start: float, end: float, num_steps: int) -> torch.Tensor:
    """``[K]`` ε decreasing geometrically from ``start`` to exactly ``end`` (float64)."""
    start, end = check_positive("start", start), check_positive("end", end)
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    if num_steps == 1:
        return torch.tensor([end], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)
    return start * (end / start) ** t


def compare_coupling_solvers(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    relative_epsilon: float = 0.01,
    num_steps: Sequence[int] = (4, 8),
    epsilon_scaling: float = 0.9,
    tol: float = 1e-3,
    max_iter: int = 5000,
    exact_cost: float | None = None,
    **solver,
) -> list[CouplingScore]:
    """Solve ``x: [n, d]`` → ``y: [m, d]`` at ε_final with each solver (module docstring).

    ``solver`` goes to every solve (``mode``, ``backend``, ``block_size``...). Stalls are
    recorded in ``converged``, not warned.
    """
    x, y = check_clouds(x, y)
    rel = check_positive("relative_epsilon", relative_epsilon)
    if exact_cost is not None:
        exact_cost = check_positive("exact_cost", exact_cost)
    scale = cost_scale(x, y)
    eps_final, eps_start = rel * scale, DEFAULT_RELATIVE_EPSILON * scale
    common = dict(tol=tol, max_iter=max_iter, **solver)
    runs = [("sinkhorn", "cold", dict()), ("sinkhorn-scaling", f"q={epsilon_scaling:g}",
                                           dict(epsilon_scaling=epsilon_scaling))]
    scores = []

    def score(name: str, setting: str, result, seconds: float, iterations: int) -> CouplingScore:
        cost = result.ot_cost().item()
        return CouplingScore(
            solver=name, setting=setting, n=x.shape[0], m=y.shape[0], epsilon=eps_final,
            iterations=iterations, seconds=seconds, converged=result.converged, cost=cost,
            marginal_error=result.marginal_error(),
            cost_gap=None if exact_cost is None else cost / exact_cost - 1.0,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, setting, extra in runs:
            start = time.perf_counter()
            fit = sinkhorn(x, y, epsilon=eps_final, **extra, **common)
            seconds = time.perf_counter() - start
            scores.append(score(name, setting, fit, seconds, fit.n_iter))
        for k in num_steps:
            start = time.perf_counter()
            fit = progot(x, y, num_steps=k, alpha="lin",
                         epsilon=progot_epsilons(eps_start, eps_final, k), **common)
            seconds = time.perf_counter() - start
            scores.append(score("progot", f"K={k}", fit, seconds, fit.total_iterations))
    return scores
