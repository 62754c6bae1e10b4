"""GeomLoss backend: ``SamplesLoss("sinkhorn", potentials=True, debias=False)``.

GeomLoss's conventions: for ``p = 2`` the cost is ½‖x − y‖² (otkit's) and ε = blur²; for
``p = 1`` the cost is ‖x − y‖ and ε = blur; KL penalties ρ = reach^p. Its potentials F, G are
in cost units with P = a_i b_j exp((F_i + G_j − C_ij)/ε): otkit's convention exactly.

GeomLoss anneals ε geometrically (factor ``scaling``) and stops after one iteration at the
target ε, with no tolerance: its plans keep marginal errors of a few percent
(PERFORMANCE.md). otkit therefore continues from GeomLoss's potentials with GeomLoss's own
soft-min kernel (``softmin_tensorized``) until the requested tolerance is met, and counts
both phases in ``n_iter``.
"""

from __future__ import annotations

import math

import torch

from . import Potentials, SinkhornProblem, residual

#: GeomLoss's ε-scaling factor per iteration (its default is 0.5).
SCALING = 0.5

_P_OF_COST = {"sqeuclidean": 2, "euclidean": 1}


def _softmin():
    try:
        from geomloss._legacy.sinkhorn_samples import (
            softmin_tensorized,  # geomloss >= 0.3.1
        )
    except ImportError:  # pragma: no cover - older layout
        from geomloss.sinkhorn_samples import softmin_tensorized
    return softmin_tensorized


def solve(problem: SinkhornProblem) -> Potentials:
    from geomloss import SamplesLoss  # noqa: PLC0415 - optional heavy import

    geom = problem.geometry
    if geom.mode != "dense":
        raise ValueError("backend='geomloss' runs GeomLoss's tensorized mode: use mode='dense'")
    p = _P_OF_COST.get(geom.cost.name)
    if p is None:
        raise ValueError(
            f"backend='geomloss' supports cost='sqeuclidean' or 'euclidean', got {geom.cost.name!r}"
        )
    if problem.tau_a != problem.tau_b:
        raise ValueError("backend='geomloss' needs tau_a == tau_b (GeomLoss has one reach)")
    eps = problem.epsilon
    a, b = problem.a, problem.b
    softmin = _softmin()
    n_iter = 0
    annealing = _annealing_steps(geom, p, eps)
    if problem.init is None and annealing <= problem.max_iter:
        reach = None if problem.tau_a == 1.0 else problem.rho_a ** (1.0 / p)
        loss = SamplesLoss(
            "sinkhorn", p=p, blur=eps ** (1.0 / p), reach=reach, scaling=SCALING,
            debias=False, potentials=True, backend="tensorized",
        )
        f, g = loss(a, geom._cx, b, geom._cy)
        f, g = f.reshape(-1), g.reshape(-1)
        n_iter = annealing
    elif problem.init is not None:
        f, g = (t.clone() for t in problem.init)
    else:  # max_iter leaves no room for GeomLoss's schedule: iterate from zero instead
        f, g = torch.zeros_like(a), torch.zeros_like(b)
    log_a, log_b = problem.log_weights()
    cost = geom.dense().unsqueeze(0)
    cost_t = cost.transpose(1, 2).contiguous()
    errors: list[float] = []
    converged = False
    while True:
        lse_f = softmin(eps, cost, (log_b + g / eps).unsqueeze(0))[0]
        err = residual(a, f, problem.tau_a * lse_f, eps)
        errors.append(err)
        if err <= problem.tol:
            converged = True
            break
        if n_iter >= problem.max_iter or not math.isfinite(err):
            break
        f = problem.tau_a * lse_f
        g = problem.tau_b * softmin(eps, cost_t, (log_a + f / eps).unsqueeze(0))[0]
        n_iter += 1
    return Potentials(
        f=f, g=g, n_iter=n_iter, errors=torch.tensor(errors, dtype=torch.float64),
        converged=converged,
    )


def _annealing_steps(geom, p: int, eps: float) -> int:
    """Iterations of GeomLoss's ε-schedule (from its diameter^p down to ε, factor SCALING^p)."""
    x, y = geom._cx, geom._cy
    lo = torch.minimum(x.min(0).values, y.min(0).values)
    hi = torch.maximum(x.max(0).values, y.max(0).values)
    diameter = (hi - lo).norm().item()
    if diameter ** p <= eps:
        return 2
    return 2 + math.ceil(math.log(diameter ** p / eps) / (-p * math.log(SCALING)))
