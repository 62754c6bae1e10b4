"""otkit's native Sinkhorn: log-domain updates on fused, compiled log-sum-exp passes.

With potentials in cost units and P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε), one iteration is

    g_j ← τ_b · (−ε LSE_i(log a_i + (f_i − C_ij)/ε)),
    f_i ← τ_a · (−ε LSE_j(log b_j + (g_j − C_ij)/ε)),

with τ = ρ/(ρ + ε) for KL-relaxed marginals of strength ρ (τ = 1: balanced; Chizat et al.
2018, Séjourné et al. 2019). Each LSE is one pass of :mod:`otkit.kernels`, shifted by the
current potential so that the pass needs no max reduction and returns the marginal ratio,
hence the error, at no extra cost.

ε-scaling (Kosowsky and Yuille 1994; Schmitzer 2019): with ``epsilon_scaling = q`` the
iterations start at ε₀ = std(C) and use ε_k = max(ε, ε₀ q^k); convergence is only checked
once the target ε is reached.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from ..epsilon import annealed_epsilons
from ..geometry import PointCloud, default_block_size
from ..kernels import ShiftedLSE
from . import Potentials, SinkhornProblem, residual


def lse_operators(geometry: PointCloud) -> tuple[ShiftedLSE, ShiftedLSE]:
    """The two half-steps' log-sum-exp passes over the cost ``C: [n, m]`` of ``geometry``.

    Returns ``(rows, cols)``: ``rows(h, shift, 1/ε)`` is ``LSE_j(h_j − C_ij/ε)``, ``[n]``
    (the f-update), ``cols`` the same over ``Cᵀ``, ``[m]`` (the g-update); see
    :class:`otkit.kernels.ShiftedLSE`. ``mode="dense"`` stores C and a contiguous Cᵀ, so
    either half-step is a row reduction; online, bands are rebuilt on every pass, and for a
    cost that splits as ``C = r ⊕ s − x yᵀ`` (squared Euclidean, dot) only the matrix product
    is streamed, r and s being folded into the potentials. A shard of a sharded problem
    (:func:`otkit.distributed.sharded_sinkhorn`) is a ``geometry`` of its ``[n_r, m]`` rows.
    """
    n, m = geometry.shape
    if geometry.mode == "dense":
        cost = geometry.dense()
        cost_t = cost.T.contiguous()
        rows = ShiftedLSE(lambda: iter([(slice(0, n), cost)]), lambda idx: cost[idx])
        cols = ShiftedLSE(lambda: iter([(slice(0, m), cost_t)]), lambda idx: cost_t[idx])
    elif geometry.split() is not None:
        rows = ShiftedLSE(
            lambda: geometry.reduced_bands(),
            lambda idx: geometry.reduced_rows(idx),
            geometry.split(),
            band_cells=(geometry.block_size or default_block_size(m)) * m,
            factors=geometry.reduced_factors(),
        )
        cols = ShiftedLSE(
            lambda: geometry.reduced_bands(True),
            lambda idx: geometry.reduced_rows(idx, True),
            geometry.split(True),
            band_cells=(geometry.block_size or default_block_size(n)) * n,
            factors=geometry.reduced_factors(True),
        )
    else:
        rows = ShiftedLSE(lambda: geometry.bands(), lambda idx: geometry.rows(idx))
        cols = ShiftedLSE(lambda: geometry.bands(True), lambda idx: geometry.rows(idx, True))
    return rows, cols


class ConvergenceBar:
    """A tqdm bar over the decades of the marginal error, from its first value at the target ε
    down to ``tol``: it fills as the error falls (log scale) and ends full exactly when the
    solve converges.

    ``n`` and ``total`` are in hundredths of the way (``total = 100``); the postfix gives the
    iteration, the error against ``tol`` and ε. Closed after convergence the bar is full (in
    Jupyter: green); after ``max_iter`` without convergence it stays short of the end (red),
    its description saying so. While ε-scaling anneals ε the bar stays at 0.
    """

    TOTAL = 100

    def __init__(self, tol: float, max_iter: int, enabled: bool, name: str = "sinkhorn") -> None:
        self.tol, self.max_iter, self.enabled = float(tol), int(max_iter), bool(enabled)
        self.name = name
        self.start: float | None = None  # the first error at the target epsilon
        self.bar = None
        if self.enabled:
            self.bar = tqdm(total=self.TOTAL, desc=name, leave=True,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]")

    def _position(self, err: float) -> int:
        """Hundredths of the decades from ``start`` to ``tol`` covered by ``err``, below 100."""
        if not (math.isfinite(err) and err > 0):
            return 0
        span = math.log10(self.start / self.tol) if self.start > self.tol > 0 else 0.0
        if span <= 0:
            return self.TOTAL - 1
        done = math.log10(self.start / err) / span
        return int(min(self.TOTAL - 1, max(0, math.floor(self.TOTAL * done))))

    def step(self, n_iter: int, err: float, eps: float, at_target: bool) -> None:
        if self.bar is None:
            return
        if not at_target:
            self.bar.set_postfix_str(f"it {n_iter}, ε-scaling: ε {eps:.3g}", refresh=False)
            self.bar.update(0)
            return
        if self.start is None:
            self.start = max(err, self.tol)
        target = self._position(err)
        if target > self.bar.n:  # never backwards: the bar shows the best error so far
            self.bar.update(target - self.bar.n)
        self.bar.set_postfix_str(f"it {n_iter}, error {err:.2e} → tol {self.tol:.0e}, ε {eps:.3g}",
                                 refresh=False)
        self.bar.update(0)  # redraws at most every mininterval

    def close(self, n_iter: int, err: float | None, converged: bool) -> None:
        if self.bar is None:
            return
        last = "nan" if err is None else f"{err:.2e}"
        if converged:
            self.bar.update(self.TOTAL - self.bar.n)
            self.bar.set_description_str(f"{self.name} converged", refresh=False)
            self.bar.set_postfix_str(f"{n_iter} iterations, error {last} ≤ tol {self.tol:.0e}",
                                     refresh=False)
        else:
            self.bar.set_description_str(f"{self.name} NOT converged", refresh=False)
            self.bar.set_postfix_str(f"max_iter {self.max_iter} reached, error {last} > tol "
                                     f"{self.tol:.0e}", refresh=False)
        self.bar.refresh()
        self.bar.close()


def solve(problem: SinkhornProblem) -> Potentials:
    a, b = problem.a, problem.b
    n, m = problem.geometry.shape
    log_a, log_b = problem.log_weights()
    rows, cols = lse_operators(problem.geometry)
    if problem.init is not None:
        f, g = (t.clone() for t in problem.init)
    else:
        f, g = torch.zeros_like(a), torch.zeros_like(b)
    errors: list[float] = []
    converged = False
    bar = ConvergenceBar(problem.tol, problem.max_iter, enabled=problem.progress)
    n_iter = 0
    schedule = annealed_epsilons(problem.epsilon, problem.cost_scale, problem.epsilon_scaling)
    for eps, at_target in schedule:
        if n_iter >= problem.max_iter:
            break
        inv_eps = torch.tensor(1.0 / eps, dtype=a.dtype, device=a.device)
        lse, _ = cols(log_a + f * inv_eps, -g * inv_eps, inv_eps)
        g = -eps * problem.tau_b * lse
        lse, ratio = rows(log_b + g * inv_eps, -f * inv_eps, inv_eps)
        f_new = -eps * problem.tau_a * lse
        if problem.tau_a == 1.0:
            err = (a * (ratio - 1.0).abs()).sum().item()
        else:
            err = residual(a, f, f_new, eps)
        f = f_new
        n_iter += 1
        errors.append(err)
        if at_target and err <= problem.tol:
            converged = True
            break
        bar.step(n_iter, err, eps, at_target)
    bar.close(n_iter, errors[-1] if errors else None, converged)
    return Potentials(
        f=f, g=g, n_iter=n_iter, errors=torch.tensor(errors, dtype=torch.float64),
        converged=converged,
    )
