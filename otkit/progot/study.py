"""The experiments of notebook 01 (Kassraie et al. 2024, §5): ProgOT as a map estimator and as
a coupling solver.

**Maps.** Given a :class:`~otkit.data.GroundTruthMap` (a source law μ and its Brenier map T),
draw n source points and n target points from independent source draws, fit an estimator T̂,
and score it on fresh source points by the normalized error

    E(T̂) = mean_i ‖T̂(x_i) − T(x_i)‖² / mean_i ‖T(x_i) − mean T(x)‖²

(:func:`~otkit.data.map_error`: 0 is perfect, 1 is as bad as predicting the mean).
Estimators compared (§5.1):

* the entropic map (Pooladian and Niles-Weed 2021) at ε = ``relative_epsilon`` × std C, at
  the default 0.05 and over a grid; the grid's best uses the ground truth (an oracle no user
  has), so it bounds what any rule choosing ε on that grid could reach;
* the debiased entropic map (the map of the Sinkhorn divergence,
  :func:`otkit.divergence.sinkhorn_divergence`: x + T_ε^{xy}(x) − T_ε^{xx}(x)) over the same
  grid, with its own oracle best;
* ProgOT (:func:`otkit.progot`) for each K, α schedule and ε mode (``"default"`` or
  ``"tuned"``, the latter chosen on the target alone).

**Couplings at small ε** (§5.2): ProgOT against Sinkhorn, cold and with ε-scaling, at equal ε
and tol.

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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch

from ..data.ground_truth import GroundTruthMap, map_error
from ..divergence import sinkhorn_divergence
from ..sinkhorn import DEFAULT_RELATIVE_EPSILON, ConvergenceWarning, sinkhorn
from ..validation import check_clouds, check_positive
from .solver import (
    ALPHA_SCHEDULES,
    alpha_schedule,
    cost_scale,
    epsilon_schedule,
    progot,
    tune_end_epsilon,
)

__all__ = [
    "MapScore",
    "compare_map_estimators",
    "oracle_best",
    "summarize_scores",
    "DEFAULT_ENTROPIC_GRID",
    "CouplingScore",
    "compare_coupling_solvers",
    "progot_epsilons",
]

#: Relative ε grid of the entropic-map baseline (0.05 is the default).
DEFAULT_ENTROPIC_GRID = (0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass(frozen=True)
class MapScore:
    """One estimator fitted on one draw, scored out of sample.

    Attributes:
        problem, dim, n, seed: the ground truth's name, dimension, sample size and draw.
        method: ``"entropic"``, ``"debiased"`` or ``"progot"``.
        setting: a short label, e.g. ``"rel_eps=0.05"`` or ``"K=4 lin tuned"``.
        num_steps, alpha, epsilon_mode: ProgOT's settings (None for the entropic map).
        relative_epsilon: the (debiased) entropic map's relative ε (None for ProgOT).
        error: normalized out-of-sample error (module docstring).
        seconds: fitting and scoring time (tuned ProgOT: including the ε_end tuning, which is
            done once per draw and shared by every K and α).
        iterations: Sinkhorn iterations in total (ProgOT: all steps; not the tuning fits).
        converged: whether every solve reached its tolerance.
    """

    problem: str
    dim: int
    n: int
    seed: int
    method: str
    setting: str
    num_steps: int | None
    alpha: str | None
    epsilon_mode: str | None
    relative_epsilon: float | None
    error: float
    seconds: float
    iterations: int
    converged: bool


def compare_map_estimators(
    problem: GroundTruthMap,
    n: int,
    *,
    seed: int = 0,
    n_test: int = 1000,
    num_steps: Sequence[int] = (2, 4, 8),
    alphas: Sequence[str] = ALPHA_SCHEDULES,
    epsilon_modes: Sequence[str] = ("default", "tuned"),
    entropic_grid: Sequence[float] = DEFAULT_ENTROPIC_GRID,
    debiased_grid: Sequence[float] = (),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    **solver,
) -> list[MapScore]:
    """Fit and score the entropic map (over ``entropic_grid``), the debiased entropic map (over
    ``debiased_grid``, none by default) and ProgOT (every K, α, ε mode).

    ``solver`` goes to every :func:`otkit.sinkhorn` / :func:`otkit.progot` call (``tol``,
    ``max_iter``, ``backend``, ...). Non-convergence is recorded, not warned.
    """
    for mode in epsilon_modes:
        if mode not in ("default", "tuned"):
            raise ValueError(f"epsilon_modes must hold 'default' or 'tuned', got {mode!r}")
    gen = torch.Generator().manual_seed(seed)
    x, y = problem.sample_pair(n, generator=gen, dtype=dtype, device=device)
    x_test = problem.sample_source(n_test, generator=gen, dtype=dtype, device=device)
    truth = problem.map(x_test)
    common = dict(problem=problem.name, dim=problem.dim, n=n, seed=seed)
    scores = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for rel in entropic_grid:
            start = time.perf_counter()
            fit = sinkhorn(x, y, relative_epsilon=rel, **solver)
            error = map_error(fit.transport(x_test), truth)
            scores.append(MapScore(
                **common, method="entropic", setting=f"rel_eps={rel:g}", num_steps=None,
                alpha=None, epsilon_mode=None, relative_epsilon=rel, error=error,
                seconds=time.perf_counter() - start, iterations=fit.n_iter,
                converged=fit.converged,
            ))
        for rel in debiased_grid:
            start = time.perf_counter()
            fit = sinkhorn_divergence(x, y, relative_epsilon=rel, **solver)
            error = map_error(fit.transport(x_test), truth)
            scores.append(MapScore(
                **common, method="debiased", setting=f"debiased rel_eps={rel:g}", num_steps=None,
                alpha=None, epsilon_mode=None, relative_epsilon=rel, error=error,
                seconds=time.perf_counter() - start, iterations=fit.n_iter,
                converged=fit.converged,
            ))
        if "tuned" in epsilon_modes and num_steps:
            # ε_end depends on y alone: tune once, as progot(epsilon="tuned") would each time.
            start = time.perf_counter()
            tuning = tune_end_epsilon(y, generator=torch.Generator().manual_seed(seed), **solver)
            eps_start = DEFAULT_RELATIVE_EPSILON * cost_scale(x, y)
            tuning_seconds = time.perf_counter() - start
        for k in num_steps:
            for alpha in alphas:
                for mode in epsilon_modes:
                    start = time.perf_counter()
                    epsilon, extra = None, 0.0
                    if mode == "tuned":
                        schedule = alpha_schedule(alpha, k)
                        epsilon = epsilon_schedule(eps_start, tuning.epsilon, schedule)
                        extra = tuning_seconds
                    fit = progot(x, y, num_steps=k, alpha=alpha, epsilon=epsilon, **solver)
                    error = map_error(fit.transport(x_test), truth)
                    scores.append(MapScore(
                        **common, method="progot", setting=f"K={k} {alpha} {mode}",
                        num_steps=k, alpha=alpha, epsilon_mode=mode, relative_epsilon=None,
                        error=error, seconds=time.perf_counter() - start + extra,
                        iterations=fit.total_iterations, converged=fit.converged,
                    ))
    return scores


def oracle_best(scores: Iterable[MapScore], method: str = "entropic") -> list[MapScore]:
    """Per (problem, dim, n, seed): the ``method``'s map (``"entropic"`` or ``"debiased"``) at
    its best grid ε (an oracle choice).

    Returned with ``setting="best rel_eps (oracle)"`` (``"debiased best rel_eps (oracle)"``);
    its ``relative_epsilon`` says which.
    """
    if method not in ("entropic", "debiased"):
        raise ValueError(f"method must be 'entropic' or 'debiased', got {method!r}")
    label = "best rel_eps (oracle)" if method == "entropic" else "debiased best rel_eps (oracle)"
    best: dict[tuple, MapScore] = {}
    for s in scores:
        if s.method != method:
            continue
        key = (s.problem, s.dim, s.n, s.seed)
        if key not in best or s.error < best[key].error:
            best[key] = s
    return [
        MapScore(**{**asdict(s), "setting": label}) for s in best.values()
    ]


def summarize_scores(scores: Iterable[MapScore]) -> list[dict]:
    """Mean and standard deviation of the error over seeds, per (problem, dim, n, method, setting).

    Rows are plain dicts (``problem, dim, n, method, setting, error_mean, error_std, seeds,
    seconds_mean, iterations_mean, converged``), ready for ``pandas.DataFrame``.
    """
    groups: dict[tuple, list[MapScore]] = {}
    for s in scores:
        groups.setdefault((s.problem, s.dim, s.n, s.method, s.setting), []).append(s)
    rows = []
    for (problem, dim, n, method, setting), group in groups.items():
        errors = torch.tensor([s.error for s in group], dtype=torch.float64)
        rows.append(dict(
            problem=problem, dim=dim, n=n, method=method, setting=setting,
            error_mean=errors.mean().item(),
            error_std=errors.std().item() if len(group) > 1 else 0.0,
            seeds=len(group),
            seconds_mean=sum(s.seconds for s in group) / len(group),
            iterations_mean=sum(s.iterations for s in group) / len(group),
            converged=all(s.converged for s in group),
        ))
    return rows

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
