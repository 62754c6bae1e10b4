"""POT backend: ``ot.bregman.sinkhorn_log`` and ``ot.unbalanced.sinkhorn_stabilized_unbalanced``.

POT's conventions: cost matrix M (otkit passes its own C, so the cost is otkit's), ``reg`` = ε,
plan P = exp(log u_i + log v_j − M_ij/reg) (balanced) or a_i b_j exp(log u_i + log v_j − M_ij/reg)
(unbalanced with ``reg_type="kl"``, whose entropy is KL to a⊗b as in otkit), ``reg_m`` = ρ.
Hence f = ε (log u − log a), g = ε (log v − log b) in the balanced case and f = ε log u,
g = ε log v in the unbalanced one.

POT stops on an L2 marginal error checked every 10 iterations; otkit wants its L1 error, so
it runs POT's balanced solver in warm-started chunks and checks its own error between them.
"""

from __future__ import annotations

import math
import warnings

import torch

from . import Potentials, SinkhornProblem, residual

_CHUNK = 10


def solve(problem: SinkhornProblem) -> Potentials:
    import ot  # noqa: PLC0415 - optional heavy import

    if problem.geometry.mode != "dense":
        raise ValueError("backend='pot' builds the full cost matrix: use mode='dense'")
    log_a, log_b = problem.log_weights()
    cost = problem.geometry.dense()
    balanced = problem.tau_a == 1.0 and problem.tau_b == 1.0
    if balanced:
        return _balanced(problem, ot, cost, log_a, log_b)
    return _unbalanced(problem, ot, cost, log_b)


def _balanced(problem: SinkhornProblem, ot, cost, log_a, log_b) -> Potentials:
    eps, b = problem.epsilon, problem.b
    warm = None
    if problem.init is not None:
        warm = (problem.init[0] / eps + log_a, problem.init[1] / eps + log_b)
    errors: list[float] = []
    n_iter, converged = 0, False
    while n_iter < problem.max_iter:
        chunk = min(_CHUNK, problem.max_iter - n_iter)
        _, log = ot.bregman.sinkhorn_log(
            problem.a, b, cost, eps, numItermax=chunk, stopThr=0.0, log=True, warn=False,
            warmstart=warm,
        )
        warm = (log["log_u"], log["log_v"])
        f, g = eps * (warm[0] - log_a), eps * (warm[1] - log_b)
        n_iter += chunk
        # POT updates u last: its rows are exact, so measure the columns.
        g_hat = -eps * torch.logsumexp((log_a + f / eps).unsqueeze(1) - cost / eps, dim=0)
        err = residual(b, g, g_hat, eps)
        errors.append(err)
        if err <= problem.tol or not math.isfinite(err):
            converged = err <= problem.tol
            break
    return Potentials(f, g, n_iter, torch.tensor(errors, dtype=torch.float64), converged)


def _unbalanced(problem: SinkhornProblem, ot, cost, log_b) -> Potentials:
    """POT's unbalanced solvers, run whole (their warm restarts drift to another fixed point).

    POT stops on the relative change of its scalings, not on otkit's residual: the
    log-stabilized solver runs with POT's threshold at ``tol``, then tighter. It can diverge
    at small ε (plans off by orders of magnitude), so POT's plain solver is tried last; the
    potentials with the smallest residual are kept. The attempts share ``max_iter``.
    """
    eps = problem.epsilon
    warm = None if problem.init is None else (problem.init[0] / eps, problem.init[1] / eps)
    errors: list[float] = []
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    n_iter = 0
    attempts = [("sinkhorn_stabilized", problem.tol)]
    while attempts:
        method, stop = attempts.pop(0)
        budget = problem.max_iter - n_iter
        if budget <= 0:
            break
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, log = ot.unbalanced.sinkhorn_unbalanced(
                problem.a, problem.b, cost, eps, (problem.rho_a, problem.rho_b),
                method=method, reg_type="kl", warmstart=warm, numItermax=budget,
                stopThr=stop, log=True,
            )
        n_iter += min(budget, 10 * max(len(log["err"]), 1))  # POT checks every 10 iterations
        f, g = eps * log["logu"], eps * log["logv"]
        if not (torch.isfinite(f).all() and torch.isfinite(g).all()):
            err = float("inf")
        else:
            lse = torch.logsumexp((log_b + g / eps).unsqueeze(0) - cost / eps, dim=1)
            err = residual(problem.a, f, -eps * problem.tau_a * lse, eps)
        errors.append(err)
        if math.isfinite(err) and (best is None or err < best[0]):
            best = (err, f, g)
        if err <= problem.tol:
            break
        if method == "sinkhorn_stabilized" and stop == problem.tol:
            tighter = [("sinkhorn_stabilized", problem.tol * 1e-3)] if err < 0.1 else []
            attempts = tighter + [("sinkhorn", problem.tol * 1e-3)]  # plain after a divergence
    if best is None:
        nan = torch.full_like(problem.a, float("nan"))
        return Potentials(nan, torch.full_like(problem.b, float("nan")), n_iter,
                          torch.tensor(errors, dtype=torch.float64), False)
    err, f, g = best
    return Potentials(f, g, n_iter, torch.tensor(errors, dtype=torch.float64),
                      err <= problem.tol)
