"""Low-rank OT (otkit.lowrank) against POT's lowrank_sinkhorn, exact OT and closed forms.

Unbalanced problems are given by the KL penalties ``rho_a``, ``rho_b`` in cost units (the
meaning they have in otkit.sinkhorn); ``tau_a``, ``tau_b`` are deprecated here (ρ = τ/(1 − τ)).
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import ot
import pytest
import torch

import otkit
from otkit import emd
from otkit.lowrank import factorize_cost, lowrank
from otkit.sinkhorn import ConvergenceWarning

F64 = torch.float64


def clouds(n: int, m: int, seed: int = 0, d: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = torch.randn(m, d, generator=gen, dtype=F64) * 0.7 + 2.0
    return x, y


def half_sq(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.cdist(x, y) ** 2


def solve(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return lowrank(*args, **kwargs)


# ------------------------------------------------------------------ balanced


def test_balanced_factors_are_feasible():
    x, y = clouds(300, 200)
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(300, generator=gen, dtype=F64) + 0.1
    b = torch.rand(200, generator=gen, dtype=F64) + 0.1
    a, b = a / a.sum(), b / b.sum()
    res = solve(x, y, a, b, rank=7, generator=0)
    assert (res.q >= 0).all() and (res.r >= 0).all() and (res.g > 0).all()
    torch.testing.assert_close(res.q.sum(1), a, atol=1e-7, rtol=0)
    torch.testing.assert_close(res.r.sum(1), b, atol=1e-7, rtol=0)
    torch.testing.assert_close(res.q.sum(0), res.g, atol=1e-12, rtol=0)
    torch.testing.assert_close(res.r.sum(0), res.g, atol=1e-12, rtol=0)
    assert res.converged and res.rank == 7


def test_methods_agree_with_the_dense_plan():
    x, y = clouds(120, 90)
    res = solve(x, y, rank=5, generator=0)
    plan = res.q @ torch.diag(1 / res.g) @ res.r.T
    torch.testing.assert_close(res.coupling(), plan)
    v = torch.randn(90, 3, dtype=F64)
    torch.testing.assert_close(res.apply(v), plan @ v)
    torch.testing.assert_close(res.apply(torch.ones(120, dtype=F64), transpose=True), plan.sum(0))
    torch.testing.assert_close(res.ot_cost(), (plan * half_sq(x, y)).sum())
    torch.testing.assert_close(res.transport(), plan @ y / plan.sum(1, keepdim=True))


def test_rank_one_is_the_independent_coupling():
    x, y = clouds(80, 60)
    res = solve(x, y, rank=1, generator=0)
    expected = half_sq(x, y).mean()  # Σ a_i b_j C_ij with uniform weights
    torch.testing.assert_close(res.ot_cost(), expected, rtol=1e-7, atol=0)


@pytest.mark.parametrize("rank", [3, 10])
@pytest.mark.parametrize("seed", [0, 1])
def test_at_least_as_good_as_pot_lowrank_sinkhorn(rank, seed):
    x, y = clouds(400, 400, seed=seed)
    cost = half_sq(x, y)
    q, r, g = ot.lowrank_sinkhorn(x.numpy(), y.numpy(), rank=rank, reg=0, seed_init=seed)[:3]
    pot = float((q @ np.diag(1 / g) @ r.T * cost.numpy()).sum())
    ours = solve(x, y, rank=rank, generator=seed).ot_cost().item()
    exact = emd(x, y).ot_cost().item()
    assert exact <= ours <= 1.01 * pot, (exact, ours, pot)


def test_cost_decreases_toward_exact_ot_as_the_rank_grows():
    x, y = clouds(40, 40, seed=3)
    exact = emd(x, y).ot_cost().item()
    costs = [solve(x, y, rank=k, generator=0, max_iter=3000).ot_cost().item() for k in (1, 2, 5, 10, 40)]
    assert all(later <= earlier * 1.005 for earlier, later in itertools.pairwise(costs)), costs
    assert costs[0] > 1.2 * exact  # the independent coupling
    assert costs[-1] <= 1.03 * exact, (costs[-1], exact)


def test_kmeans_initialization_and_entropic_regularization():
    x, y = clouds(300, 300, seed=4)
    random = solve(x, y, rank=8, generator=0).ot_cost().item()
    kmeans = solve(x, y, rank=8, init="kmeans", generator=0).ot_cost().item()
    assert kmeans <= 1.05 * random
    smooth = solve(x, y, rank=8, epsilon=0.5, generator=0)
    assert smooth.marginal_error() < 1e-6
    assert smooth.ot_cost().item() >= 0.99 * random  # entropy trades cost for spread


def _separable_residual(m: torch.Tensor) -> float:
    """How far ``m: [n, r]`` is from u ⊕ v (0: exactly), relative to its spread."""
    residual = m - m.mean(1, keepdim=True) - m.mean(0, keepdim=True) + m.mean()
    return (residual.abs().max() / (m - m.mean()).abs().max()).item()


@pytest.mark.parametrize("epsilon", [0.05, 0.25])
def test_entropic_fixed_point_solves_the_problem_at_epsilon_not_two_epsilon(epsilon):
    # First-order conditions of min <C, Q diag(1/g) Rᵀ> − ε(H(Q) + H(R) + H(g)) under the
    # marginal constraints: ∇_Q + ε log Q = u ⊕ v (multipliers of the rows and of Qᵀ1 = g),
    # with ∇_Q = C R diag(1/g); likewise for R. A solver that also adds ε log Q to the
    # gradient of its proximal step converges to the conditions at 2ε.
    x, y = clouds(60, 50, seed=0)
    res = solve(x, y, rank=3, epsilon=epsilon, tol=1e-10, max_iter=5000, generator=0)
    c = half_sq(x, y)
    grad_q, grad_r = c @ res.r / res.g, c.T @ res.q / res.g
    assert _separable_residual(grad_q + epsilon * res.q.log()) < 1e-4
    assert _separable_residual(grad_r + epsilon * res.r.log()) < 1e-4
    assert _separable_residual(grad_q + 2 * epsilon * res.q.log()) > 1e-2


# ------------------------------------------------------------------ unbalanced


def test_unbalanced_marginals_approach_a_and_b_as_rho_grows():
    x, y = clouds(300, 250, seed=5)
    a = torch.full((300,), 1 / 300, dtype=F64)
    errors = []
    for rho in (1.0, 9.0, 99.0, 999.0):  # the former τ = 0.5, 0.9, 0.99, 0.999
        res = solve(x, y, rank=6, rho_a=rho, rho_b=rho, generator=0)
        errors.append((res.q.sum(1) - a).abs().sum().item())
    assert all(later < earlier for earlier, later in itertools.pairwise(errors)), errors
    assert errors[-1] < 5e-3


def test_translation_invariant_projection_is_not_worse():
    x, y = clouds(300, 250, seed=6)
    plain = solve(x, y, rank=6, rho_a=9.0, rho_b=4.0, translation_invariant=False, generator=0)
    ti = solve(x, y, rank=6, rho_a=9.0, rho_b=4.0, translation_invariant=True, generator=0)
    assert ti.objectives[-1].item() <= plain.objectives[-1].item() * (1 + 1e-6)


def test_unbalanced_coupling_leaves_outliers_alone():
    # 10% of the target mass sits in a far cluster absent from the source
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(450, 2, generator=gen, dtype=F64)
    inliers = torch.randn(405, 2, generator=gen, dtype=F64) + 0.5
    outliers = 0.3 * torch.randn(45, 2, generator=gen, dtype=F64) + torch.tensor([12.0, 12.0], dtype=F64)
    y = torch.cat([inliers, outliers])
    is_outlier = torch.arange(450) >= 405
    balanced = solve(x, y, rank=8, generator=0)
    relaxed = solve(x, y, rank=8, rho_a=19.0, rho_b=19.0, generator=0)
    mass_b = balanced.r.sum(1)[is_outlier].sum().item()
    mass_u = relaxed.r.sum(1)[is_outlier].sum().item()
    assert mass_b == pytest.approx(0.1, abs=1e-6)
    assert mass_u < 0.01, mass_u


# ------------------------------------------------------------------ costs


def test_cost_factorizations_are_exact():
    x, y = clouds(50, 40, seed=8, d=3)
    a_fac, b_fac = factorize_cost(x + 100.0, y + 100.0, "sqeuclidean")
    assert a_fac.shape == (50, 5)
    torch.testing.assert_close(a_fac @ b_fac.T, half_sq(x, y), atol=1e-9, rtol=0)
    a_fac, b_fac = factorize_cost(x, y, "dot")
    torch.testing.assert_close(a_fac @ b_fac.T, -x @ y.T)
    a_fac, b_fac = factorize_cost(x, y, "euclidean")
    torch.testing.assert_close(a_fac @ b_fac.T, torch.cdist(x, y))
    res = solve(x, y, rank=4, cost=(x, -y), generator=0)  # C = −⟨x, y⟩ given as factors
    torch.testing.assert_close(res.ot_cost(), (res.coupling() * (-x @ y.T)).sum())


def test_float32_runs():
    x, y = clouds(200, 200, seed=9)
    res = solve(x.float(), y.float(), rank=5, generator=0)
    assert res.q.dtype == torch.float32 and res.marginal_error() < 1e-4


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, y = clouds(500, 400, seed=10)
    cpu = solve(x, y, rank=6, generator=0)
    gpu = solve(x.cuda(), y.cuda(), rank=6, generator=0)
    assert gpu.q.is_cuda
    assert gpu.ot_cost().item() == pytest.approx(cpu.ot_cost().item(), rel=1e-6)


# ------------------------------------------------------------------ bad input


def test_bad_arguments_are_refused():
    x, y = clouds(20, 10)
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        lowrank(x, y, rank=0)
    with pytest.raises(ValueError, match=r"rank must be at most min\(n, m\) = 10"):
        lowrank(x, y, rank=11)
    with pytest.raises(TypeError, match="rank must be an integer"):
        lowrank(x, y, rank=2.5)
    for rho in (0.0, -1.0, math.nan, -math.inf):
        with pytest.raises(ValueError, match="rho_a must be a number > 0"):
            lowrank(x, y, rank=2, rho_a=rho)
    for rho in ("1", True, torch.tensor(1.0)):
        with pytest.raises(TypeError, match="rho_b must be a number > 0"):
            lowrank(x, y, rank=2, rho_b=rho)
    for tau in (0.0, 1.5, -0.1):  # deprecated, still checked
        with pytest.raises(ValueError, match=r"tau_a must lie in \(0, 1\]"):
            lowrank(x, y, rank=2, tau_a=tau)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= 0"):
        lowrank(x, y, rank=2, epsilon=-1.0)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0"):
        lowrank(x, y, rank=2, gamma=0.0)
    with pytest.raises(ValueError, match="init must be one of 'random', 'kmeans'"):
        lowrank(x, y, rank=2, init="svd")
    with pytest.raises(ValueError, match="equal total mass"):
        lowrank(x, y, torch.full((20,), 1.0, dtype=F64), rank=2)
    with pytest.raises(ValueError, match=r"cost factor B must have shape \[10, k\]"):
        lowrank(x, y, rank=2, cost=(x, x))
    with pytest.raises(ValueError, match="backend must be one of 'auto', 'torch'"):
        lowrank(x, y, rank=2, backend="pot")
    with pytest.raises(ValueError, match="x contains NaN"):
        lowrank(torch.full_like(x, math.nan), y, rank=2)


# ------------------------------------------------------------------ rho, and the deprecated tau


@pytest.mark.parametrize("rho", [1.0, 3.0, 0.25])
def test_rho_equals_the_deprecated_tau_bit_for_bit(rho):
    tau = rho / (1 + rho)
    assert tau / (1 - tau) == rho  # these ρ survive the round trip exactly
    x, y = clouds(60, 50, seed=11)
    new = solve(x, y, rank=4, rho_a=rho, rho_b=2 * rho, generator=0)
    with pytest.warns(DeprecationWarning, match=r"rho_a=tau/\(1-tau\)") as caught:
        old = solve(x, y, rank=4, tau_a=tau, rho_b=2 * rho, generator=0)
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller
    for mine, theirs in ((new.q, old.q), (new.r, old.r), (new.g, old.g),
                         (new.objectives, old.objectives)):
        assert torch.equal(mine, theirs)
    assert (new.rho_a, new.rho_b) == (old.rho_a, old.rho_b) == (rho, 2 * rho)
    with pytest.warns(DeprecationWarning, match="LowRankResult.tau_a is deprecated"):
        assert new.tau_a == tau


def test_rho_defaults_to_balanced_and_inf_is_balanced():
    x, y = clouds(60, 50, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        default = solve(x, y, rank=3, generator=0)
        explicit = solve(x, y, rank=3, rho_a=math.inf, rho_b=math.inf, generator=0)
    assert torch.equal(default.q, explicit.q) and torch.equal(default.r, explicit.r)
    assert default.rho_a == default.rho_b == math.inf
    with pytest.warns(DeprecationWarning):
        old = solve(x, y, rank=3, tau_a=1.0, tau_b=1.0, generator=0)
    assert torch.equal(default.q, old.q)
    with pytest.raises(ValueError, match="equal total mass"):
        lowrank(x, y, torch.full((60,), 1.0, dtype=F64), rank=2, rho_a=math.inf)


@pytest.mark.parametrize("side", ["a", "b"])
def test_tau_and_rho_together_are_refused(side):
    x, y = clouds(20, 10)
    with pytest.raises(ValueError, match=f"rho_{side}.*tau_{side}.*rho_{side}"):
        lowrank(x, y, rank=2, **{f"tau_{side}": 0.5, f"rho_{side}": 1.0})
    with pytest.raises(ValueError, match=f"tau_{side} or rho_{side}, not both"):
        otkit.sinkhorn(x, y, epsilon=0.1, **{f"tau_{side}": 0.5, f"rho_{side}": 1.0})


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Generalized KL(p | q) = Σ p log(p/q) − p + q."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q) - p + q).sum()


def test_one_rho_is_one_kl_penalty_in_lowrank_and_sinkhorn():
    # ρ KL(P1 | a) with the same ρ in both objectives, whatever ε (not 9ε in one and 9 in
    # the other, as one tau_a=0.9 meant before): both results report ρ, and each solver's
    # objective, recomputed from its plan with that ρ, is the one it reports
    x, y = clouds(50, 40, seed=13)
    rho_a, rho_b, eps = 9.0, 2.0, 0.25
    low = solve(x, y, rank=40, epsilon=eps, rho_a=rho_a, rho_b=rho_b, generator=0)
    sink = otkit.sinkhorn(x, y, epsilon=eps, rho_a=rho_a, rho_b=rho_b, tol=1e-10)
    assert (low.rho_a, low.rho_b) == (rho_a, rho_b)
    assert sink.rho_a == pytest.approx(rho_a, rel=1e-12)
    assert sink.rho_b == pytest.approx(rho_b, rel=1e-12)

    def entropy(p):
        return -torch.xlogy(p, p).sum() + p.sum()

    rows, cols = low.marginals()
    objective = (low.ot_cost() - eps * (entropy(low.q) + entropy(low.r) + entropy(low.g))
                 + rho_a * _kl(rows, low.a) + rho_b * _kl(cols, low.b))
    # objectives[-1] is before the last, tighter projection
    assert objective.item() == pytest.approx(low.objectives[-1].item(), rel=1e-6)

    plan = sink.coupling()
    rows, cols = plan.sum(1), plan.sum(0)
    objective = ((plan * half_sq(x, y)).sum() + eps * _kl(plan, sink.a[:, None] * sink.b)
                 + rho_a * _kl(rows, sink.a) + rho_b * _kl(cols, sink.b))
    assert objective.item() == pytest.approx(sink.primal_objective().item(), rel=1e-9)
