"""Elastic costs (MBO, Cuturi, Klein and Ablin 2023; Klein et al. 2024): otkit.elastic.

References nobody here wrote: scipy.optimize brute-force minimization for every prox, the
closed form of the k-support norm of Argyriou, Foygel and Srebro (2012, Prop. 2.1), finite
differences, POT's log-domain Sinkhorn, and the planted translation of a sparse-shift problem.
The two OTT-JAX pitfalls of METHODS.md are pinned: ∇h*(∇h(z)) = z at ρ ≠ 1, and the STVS
prox at step τ ≠ 1 (v = 3, τ = 2: √5, not 5/3).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import approx_fprime, minimize, minimize_scalar

import otkit
from otkit.costs import TranslationInvariantCost
from otkit.elastic import (
    L1,
    STVS,
    ElasticCost,
    KOverlap,
    Regularizer,
    Subspace,
    displacement_sparsity,
    elastic_cost,
    elastic_inverse_map,
    elastic_map,
    sparse_shift_problem,
)
from otkit.sinkhorn import ConvergenceWarning

F64 = torch.float64


def _subspace_matrix(p: int = 2, d: int = 5, seed: int = 3) -> torch.Tensor:
    return torch.randn(p, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _regularizers(d: int = 5):
    return {
        "l1": L1(),
        "stvs": STVS(gamma=0.7),
        "k_overlap": KOverlap(k=2),
        "subspace": Subspace(_subspace_matrix(2, d)),
    }


def _away_from_zero(shape, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(shape, generator=gen, dtype=F64)
    return z + 0.3 * torch.sign(z)  # no coordinate within 0.3 of 0


# --------------------------------------------------------------------------- references


def ksupport_sq_reference(w: np.ndarray, k: int) -> float:
    """½‖w‖²_{(k)} by Argyriou, Foygel and Srebro (2012), Prop. 2.1 (search over r)."""
    z = np.sort(np.abs(w))[::-1]
    d = z.size
    if k >= d:
        return 0.5 * float(z @ z)
    for r in range(k):
        head = k - r - 1  # z_1..z_{k-r-1} kept as is
        tail = z[head:].sum() / (r + 1)
        left = np.inf if head == 0 else z[head - 1]
        if left > tail >= z[head] - 1e-12:
            return 0.5 * float(z[:head] @ z[:head] + (r + 1) * tail**2)
    raise AssertionError("no r satisfies Argyriou's condition")


def stvs_reference(z: np.ndarray, gamma: float) -> float:
    s = np.arcsinh(np.abs(z) / (2 * gamma))
    return float(gamma**2 * np.sum(s - 0.5 * np.exp(-2 * s) + 0.5))


def scalar_prox_brute(value_fn, v: float, step: float) -> float:
    """Global argmin_z ½(z − v)² + step·r(z) of a scalar r: a grid, then bounded Brent."""
    obj = lambda z: 0.5 * (z - v) ** 2 + step * value_fn(z)
    grid = np.linspace(-abs(v) - 1.0, abs(v) + 1.0, 4001)
    best = grid[np.argmin([obj(z) for z in grid])]
    h = grid[1] - grid[0]
    return minimize_scalar(obj, bounds=(best - h, best + h), method="bounded",
                           options={"xatol": 1e-12}).x


def vector_prox_brute(value_fn, v: np.ndarray, step: float) -> np.ndarray:
    obj = lambda z: 0.5 * np.sum((z - v) ** 2) + step * value_fn(z)
    best = None
    for start in (v, np.zeros_like(v), v / (1 + step)):
        res = minimize(obj, start, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14,
                                                             "maxiter": 40000})
        if best is None or res.fun < best.fun:
            best = res
    return best.x


# --------------------------------------------------------------------------- regularizers


@pytest.mark.parametrize("name", ["l1", "stvs", "k_overlap", "subspace"])
@pytest.mark.parametrize("rho", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("lam", [0.1, 1.0, 3.0])
def test_conjugate_gradient_inverts_gradient(name, rho, lam):
    """∇h*(∇h(z)) = z for all ρ, λ (OTT-JAX is off by up to 6.4 at ρ = 2)."""
    reg = _regularizers()[name]
    if name == "stvs" and lam > 2 * rho:
        with pytest.raises(ValueError, match="lam"):  # h would not be convex
            ElasticCost(reg, rho=rho, lam=lam)
        return
    cost = ElasticCost(reg, rho=rho, lam=lam)
    z = _away_from_zero((40, 5))
    z[0, :2] = 0.0  # exact zeros are fixed points too (subgradient 0 there)
    back = cost.grad_h_conjugate(cost.grad_h(z))
    torch.testing.assert_close(back, z, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("step", [0.0, 0.3, 1.0, 1.7, 2.0, 2.5, 4.0])
def test_scalar_prox_matches_brute_force(step):
    v = np.array([-3.1, -1.0, -0.6, -0.05, 0.0, 0.4, 0.69, 0.71, 1.3, 2.2, 5.0])
    stvs = STVS(gamma=0.7)
    got_stvs = stvs.prox(torch.tensor(v, dtype=F64), step).numpy()
    got_l1 = L1().prox(torch.tensor(v, dtype=F64), step).numpy()
    for i, vi in enumerate(v):
        ref = scalar_prox_brute(lambda z: stvs_reference(np.array([z]), 0.7), vi, step)
        assert got_stvs[i] == pytest.approx(ref, abs=1e-6), (vi, step)
        assert got_l1[i] == pytest.approx(scalar_prox_brute(abs, vi, step), abs=1e-6)


def test_stvs_prox_is_prox_of_tau_r_not_r_of_tau_gamma():
    """METHODS.md: at v = 3, τ = 2, γ = 1 the prox of τ·r_γ is √5; OTT-JAX returns 5/3."""
    got = STVS(gamma=1.0).prox(torch.tensor([3.0, -3.0], dtype=F64), 2.0)
    torch.testing.assert_close(got, torch.tensor([math.sqrt(5), -math.sqrt(5)], dtype=F64))
    # τ = 1 closed form: 0 where v² ≤ γ², v − γ²/v otherwise.
    v = torch.tensor([-2.0, -0.9, 0.5, 1.0, 1.5, 4.0], dtype=F64)
    expected = torch.where(v * v <= 1.0, 0.0, v - 1.0 / v)
    torch.testing.assert_close(STVS(gamma=1.0).prox(v, 1.0), expected)


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_k_overlap_value_matches_argyriou_closed_form(k):
    z = torch.randn(30, 6, generator=torch.Generator().manual_seed(k), dtype=F64)
    z[0] = torch.tensor([3.0, 3.0, 1.0, 1.0, 0.0, 0.0], dtype=F64)  # ties and zeros
    z[1] = 0.0
    got = KOverlap(k).value(z).numpy()
    ref = [ksupport_sq_reference(row, k) for row in z.numpy()]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    # k = 1 is ½‖z‖₁², k ≥ d is ½‖z‖₂².
    if k == 1:
        np.testing.assert_allclose(got, 0.5 * z.abs().sum(-1).numpy() ** 2, rtol=1e-12)
    if k == 6:
        np.testing.assert_allclose(got, 0.5 * (z * z).sum(-1).numpy(), rtol=1e-12)


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("step", [0.3, 1.0, 2.5])
def test_k_overlap_prox_matches_brute_force(k, step):
    gen = torch.Generator().manual_seed(10 * k + int(10 * step))
    v = 2.0 * torch.randn(3, 5, generator=gen, dtype=F64)
    got = KOverlap(k).prox(v, step).numpy()
    for row, out in zip(v.numpy(), got):
        ref = vector_prox_brute(lambda z: ksupport_sq_reference(z, k), row, step)
        obj = lambda z: 0.5 * np.sum((z - row) ** 2) + step * ksupport_sq_reference(z, k)  # noqa: B023
        assert obj(out) <= obj(ref) + 1e-10
        np.testing.assert_allclose(out, ref, atol=2e-4)


@pytest.mark.parametrize("step", [0.3, 1.0, 2.5])
def test_subspace_prox_matches_brute_force(step):
    A = _subspace_matrix(2, 5)
    reg = Subspace(A)
    proj = np.eye(5) - A.numpy().T @ np.linalg.solve(A.numpy() @ A.numpy().T, A.numpy())
    value = lambda z: 0.5 * float(np.sum((proj @ z) ** 2))
    v = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=F64)
    np.testing.assert_allclose(reg.value(v).numpy(), [value(r) for r in v.numpy()], rtol=1e-12)
    for row, out in zip(v.numpy(), reg.prox(v, step).numpy()):
        np.testing.assert_allclose(out, vector_prox_brute(value, row, step), atol=1e-6)


@pytest.mark.parametrize("name", ["l1", "stvs", "k_overlap", "subspace"])
def test_gradient_matches_finite_differences(name):
    reg = _regularizers()[name]
    z = _away_from_zero((4, 5), seed=2)
    got = reg.gradient(z).numpy()
    if name == "stvs":
        value = lambda u: stvs_reference(u, 0.7)
    elif name == "k_overlap":
        value = lambda u: ksupport_sq_reference(u, 2)
    else:
        value = lambda u: reg.value(torch.tensor(u)).item()
    for row, g in zip(z.numpy(), got):
        np.testing.assert_allclose(g, approx_fprime(row, value, 1e-7), atol=1e-5)


def test_prox_step_zero_is_identity_and_shapes_are_kept():
    v = torch.randn(2, 3, 5, dtype=F64)
    for reg in _regularizers().values():
        torch.testing.assert_close(reg.prox(v, 0.0), v)
        assert reg.prox(v, 1.0).shape == v.shape and reg.gradient(v).shape == v.shape
        assert reg.value(v).shape == (2, 3)


# --------------------------------------------------------------------------- costs


@pytest.mark.parametrize("name", ["l1", "stvs", "k_overlap", "subspace"])
def test_pairwise_is_h_of_differences(name):
    cost = ElasticCost(_regularizers()[name], rho=1.5, lam=0.8)
    x = torch.randn(7, 5, dtype=F64)
    y = torch.randn(9, 5, dtype=F64)
    naive = torch.stack([torch.stack([cost.h(xi - yj) for yj in y]) for xi in x])
    torch.testing.assert_close(cost.pairwise(x, y), naive, atol=1e-12, rtol=1e-12)
    # h of the definition: (ρ/2)‖z‖² + λ r(z), r from an independent reference.
    z = (x[0] - y[0]).numpy()
    refs = {"l1": np.abs(z).sum(), "stvs": stvs_reference(z, 0.7),
            "k_overlap": ksupport_sq_reference(z, 2)}
    if name in refs:
        assert cost.h(x[0] - y[0]).item() == pytest.approx(0.75 * z @ z + 0.8 * refs[name])


def test_elastic_cost_factory_and_errors():
    A = _subspace_matrix(2, 5)
    assert elastic_cost("l1", rho=2.0, lam=0.5) == ElasticCost(L1(), rho=2.0, lam=0.5)
    assert elastic_cost("stvs", gamma=0.5).regularizer == STVS(0.5)
    assert elastic_cost("k_overlap", k=3).regularizer == KOverlap(3)
    assert isinstance(elastic_cost("subspace", A=A).regularizer, Subspace)
    cases = [
        (lambda: ElasticCost(L1(), rho=0.0), "rho"),
        (lambda: ElasticCost(L1(), rho=-1.0), "rho"),
        (lambda: ElasticCost(L1(), lam=-0.1), "lam"),
        (lambda: ElasticCost(STVS(1.0), rho=1.0, lam=2.5), "lam"),
        (lambda: STVS(gamma=0.0), "gamma"),
        (lambda: STVS(gamma=-1.0), "gamma"),
        (lambda: KOverlap(k=0), "k"),
        (lambda: Subspace(torch.randn(5, 5, dtype=F64)), "A"),
        (lambda: Subspace(torch.randn(5, dtype=F64)), "A"),
        (lambda: Subspace(torch.ones(2, 5, dtype=F64)), "A"),  # rank 1
        (lambda: elastic_cost("l2"), "name"),
        (lambda: L1().prox(torch.zeros(3), -1.0), "step"),
    ]
    for make, arg in cases:
        with pytest.raises(ValueError, match=arg):
            make()
    with pytest.raises(TypeError, match="k"):
        KOverlap(k=1.5)
    with pytest.raises(TypeError, match="regularizer"):
        ElasticCost("l1")
    with pytest.raises(TypeError, match="gamma"):
        elastic_cost("l1", gamma=1.0)


# --------------------------------------------------------------------------- maps


def _dense_map(result, points, cost, inverse=False):
    """The elastic map straight from MBO's formula, with [k, m, d] tensors in memory and one
    softmax over the whole [k, m] matrix: h = (ρ/2)‖z‖² + λ r(z), ∇h = ρz + λ∇r(z) and
    ∇h*(w) = prox_{(λ/ρ) r}(w/ρ), written from the regularizer (not the cost's methods)."""
    reg, rho, lam = cost.regularizer, cost.rho, cost.lam
    support = result.x if inverse else result.y
    weights, pot = (result.a, result.f) if inverse else (result.b, result.g)
    diff = points[:, None, :] - support[None, :, :]
    h = 0.5 * rho * (diff * diff).sum(-1) + lam * reg.value(diff)
    p = torch.softmax(weights.log() + (pot - h) / result.epsilon, dim=1)
    mean_grad = (p[:, :, None] * (rho * diff + lam * reg.gradient(diff))).sum(1)
    return points - reg.prox(mean_grad / rho, lam / rho)


@pytest.mark.parametrize("name", ["l1", "stvs", "k_overlap", "subspace"])
def test_streamed_map_equals_dense_reference(name, make_clouds, eager_one_thread):
    x, y, a, b = make_clouds(30, 25, d=5)
    cost = ElasticCost(_regularizers()[name], rho=1.3, lam=0.6)
    res = otkit.sinkhorn(x, y, a, b, cost=cost, relative_epsilon=0.1, tol=1e-8)
    x_new = torch.randn(11, 5, dtype=F64)
    ref = _dense_map(res, x_new, cost)
    for block in (1, 7, None):
        torch.testing.assert_close(elastic_map(res, x_new, block_size=block), ref)
        # the engine's map (otkit.maps) is the elastic map, streamed or not
        torch.testing.assert_close(res.transport(x_new, block_size=block), ref)
    ref_inv = _dense_map(res, x_new, cost, inverse=True)
    torch.testing.assert_close(elastic_inverse_map(res, x_new, block_size=4), ref_inv)
    torch.testing.assert_close(res.inverse_transport(x_new), ref_inv)
    torch.testing.assert_close(res.inverse_transport(x_new, block_size=1), ref_inv)


@pytest.mark.parametrize("name", ["l1", "stvs", "k_overlap", "subspace"])
@pytest.mark.parametrize("lam", [0.0, 0.6])
def test_elastic_cost_is_a_translation_invariant_cost(name, lam):
    """ElasticCost is the engine's c(x, y) = h(x − y): h and ∇h of [band, block, d]
    differences together equal the separate ones, ∇h*(∇h(z)) = z, and ∇h is linear exactly
    when λ = 0 or r is quadratic (then the map needs only the barycentre)."""
    cost = ElasticCost(_regularizers()[name], rho=1.3, lam=lam)
    assert isinstance(cost, TranslationInvariantCost) and cost.symmetric
    assert cost.linear_gradient == (lam == 0.0 or name == "subspace")
    z = _away_from_zero((4, 6, 5), seed=2)
    before = z.clone()
    value, grad = cost.h_and_grad_h(z)
    torch.testing.assert_close(value, cost.h(z))
    torch.testing.assert_close(grad, cost.grad_h(z))
    torch.testing.assert_close(z, before, rtol=0, atol=0)  # the differences are not touched
    torch.testing.assert_close(cost.grad_h_conjugate(cost.grad_h(z)), z, atol=1e-10, rtol=0)
    x, y = z[0], z[1]
    torch.testing.assert_close(cost.pairwise(x, y), cost.h(x[:, None, :] - y[None, :, :]))


def test_h_and_grad_h_never_overwrites_a_gradient_it_does_not_own():
    """A regularizer whose ∇r is z itself (r = ½‖z‖²) or a broadcast constant: the fused ∇h
    must not write into z or into the constant."""

    @dataclass(frozen=True)
    class Ridge(Regularizer):
        is_quadratic = False  # so the map takes the per-pair path

        def value(self, z):
            return 0.5 * (z * z).sum(-1)

        def gradient(self, z):
            return z

        def prox(self, v, step):
            return v / (1.0 + step)

    @dataclass(frozen=True)
    class Tilt(Regularizer):
        def value(self, z):
            return z.sum(-1)

        def gradient(self, z):
            return torch.ones(z.shape[-1], dtype=z.dtype).expand(z.shape)

        def prox(self, v, step):
            return v - step

    z = _away_from_zero((3, 4, 5))
    before = z.clone()
    for reg, grad_r in ((Ridge(), before), (Tilt(), torch.ones_like(before))):
        cost = ElasticCost(reg, rho=0.7, lam=2.0)
        value, grad = cost.h_and_grad_h(z)
        torch.testing.assert_close(grad, 0.7 * before + 2.0 * grad_r)
        torch.testing.assert_close(value, cost.h(before))
        torch.testing.assert_close(z, before, rtol=0, atol=0)
    torch.testing.assert_close(ElasticCost(Ridge(), rho=0.7, lam=2.0).grad_h_conjugate(
        ElasticCost(Ridge(), rho=0.7, lam=2.0).grad_h(z)), z)


def test_lambda_zero_gives_squared_euclidean_entropic_map(make_clouds, eager_one_thread):
    x, y, a, b = make_clouds(40, 35, d=5)
    sq = otkit.sinkhorn(x, y, a, b, epsilon=0.3, tol=1e-9)
    x_new = torch.randn(13, 5, dtype=F64)
    expected = sq.transport(x_new)  # Σ_j p_j y_j, the Pooladian–Niles-Weed estimator
    for cost in (elastic_cost("subspace", lam=0.0, A=_subspace_matrix(2, 5)),
                 ElasticCost(L1(), rho=1.0, lam=0.0)):
        res = otkit.sinkhorn(x, y, a, b, cost=cost, epsilon=0.3, tol=1e-9)
        torch.testing.assert_close(res.transport(x_new), expected, atol=1e-7, rtol=1e-7)
    torch.testing.assert_close(elastic_map(sq, x_new, block_size=8), expected)


def test_quadratic_cost_map_is_barycentric_projection_of_its_plan(make_clouds, eager_one_thread):
    """For the subspace cost h is quadratic, so ∇h*(Σ p_j ∇h(x − y_j)) = x − Σ p_j y_j and the
    map at a source point x_i is the plan's row average (P y)_i / (P 1)_i."""
    x, y, a, b = make_clouds(30, 25, d=4)
    cost = elastic_cost("subspace", rho=0.5, lam=10.0, A=_subspace_matrix(2, 4))
    res = otkit.sinkhorn(x, y, a, b, cost=cost, epsilon=0.5, tol=1e-10, max_iter=20000)
    plan = res.coupling()
    torch.testing.assert_close(res.transport(x), (plan @ y) / plan.sum(1, keepdim=True))


def test_sinkhorn_with_l1_cost_matches_pot(make_clouds, eager_one_thread):
    x, y, a, b = make_clouds(25, 20, d=3)
    cost = ElasticCost(L1(), rho=0.7, lam=1.5)
    res = otkit.sinkhorn(x, y, a, b, cost=cost, epsilon=0.4, tol=1e-11, max_iter=20000)
    M = cost.pairwise(x, y).numpy()
    np.testing.assert_allclose(
        M, 0.35 * ot.dist(x.numpy(), y.numpy()) + 1.5 * ot.dist(x.numpy(), y.numpy(), "cityblock"),
        rtol=1e-12)
    plan, log = ot.sinkhorn(a.numpy(), b.numpy(), M, 0.4, method="sinkhorn_log",
                            numItermax=100000, stopThr=1e-13, log=True)
    np.testing.assert_allclose(res.coupling().numpy(), plan, atol=1e-10)
    # P = a b exp((f + g − C)/ε) = exp(log u + log v − C/ε): potentials up to a constant.
    f = 0.4 * (log["log_u"] - np.log(a.numpy()))
    g = 0.4 * (log["log_v"] - np.log(b.numpy()))
    shift = res.f.numpy().mean() - f.mean()
    np.testing.assert_allclose(res.f.numpy(), f + shift, atol=1e-8)
    np.testing.assert_allclose(res.g.numpy(), g - shift, atol=1e-8)


def test_l1_map_recovers_sparse_displacements(eager_one_thread):
    """y = x + δ, δ on 5 of 50 coordinates: at the same ε the L1 map moves exactly those
    coordinates (the others by exactly 0) and is far closer to δ than the ½‖·‖² map."""
    x, y, delta = sparse_shift_problem(120, 50, 5, shift=2.0)
    sq = otkit.sinkhorn(x, y, relative_epsilon=0.5, tol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = otkit.sinkhorn(x, y, cost=ElasticCost(L1(), lam=1.0), epsilon=sq.epsilon,
                             tol=1e-4, max_iter=500)
    moves, moves_sq = res.transport(x) - x, sq.transport(x) - x
    support = delta != 0
    assert (moves[:, ~support] == 0).all()
    assert (moves[:, support].abs() > 1.0).all()
    assert displacement_sparsity(moves) == pytest.approx(0.1)
    assert displacement_sparsity(moves_sq) > 0.9
    err = (moves - delta).norm(dim=1).mean().item()
    err_sq = (moves_sq - delta).norm(dim=1).mean().item()
    assert err < 0.1 * err_sq and err < 0.05


def test_sparse_shift_problem_and_sparsity_helper():
    x, y, delta = sparse_shift_problem(10, 8, 3, shift=1.5)
    assert x.shape == y.shape == (10, 8) and int((delta != 0).sum()) == 3
    torch.testing.assert_close(y - x, delta.expand(10, 8))
    assert displacement_sparsity(y - x) == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="k"):
        sparse_shift_problem(10, 3, 4)


def test_elastic_map_errors(make_clouds, eager_one_thread):
    x, y, _, _ = make_clouds(10, 10, d=2)
    res = otkit.sinkhorn(x, y, cost=ElasticCost(L1()), relative_epsilon=0.2)
    with pytest.raises(ValueError, match="x_new"):
        elastic_map(res, torch.zeros(3, 5, dtype=F64))
    with pytest.raises(ValueError, match="block_size"):
        elastic_map(res, x, block_size=0)
    with pytest.raises(TypeError, match="ElasticCost"):
        elastic_map(otkit.sinkhorn(x, y, cost="euclidean", relative_epsilon=0.2), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float32_and_all_regularizers_finite(dtype, make_clouds, eager_one_thread):
    x, y, a, b = make_clouds(20, 20, d=5, dtype=dtype)
    for name, reg in _regularizers().items():
        if name == "subspace":
            reg = Subspace(_subspace_matrix(2, 5).to(dtype))
        res = otkit.sinkhorn(x, y, a, b, cost=ElasticCost(reg, lam=0.5), relative_epsilon=0.1)
        out = res.transport(x)
        assert out.dtype == dtype and torch.isfinite(out).all()


def test_all_pairs_inverse_on_grid():
    """Exhaustive small grid: the k-overlap prox inverts its gradient map at every k."""
    z = torch.tensor(list(itertools.product([-2.0, -0.5, 0.0, 1.0, 3.0], repeat=3)), dtype=F64)
    for k in (1, 2, 3):
        cost = ElasticCost(KOverlap(k), rho=0.5, lam=3.0)
        torch.testing.assert_close(cost.grad_h_conjugate(cost.grad_h(z)), z, atol=1e-10, rtol=0)


def test_stvs_fused_value_and_gradient_match_separate_ones():
    z = 3.0 * torch.randn(6, 7, dtype=F64)
    value, grad = STVS(gamma=0.4).value_and_gradient(z)
    torch.testing.assert_close(value, STVS(gamma=0.4).value(z))
    torch.testing.assert_close(grad, STVS(gamma=0.4).gradient(z))
