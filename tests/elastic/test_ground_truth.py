"""Ground-truth elastic maps (Klein et al. 2024, Prop. 1): optimality checked independently."""

import pytest
import torch
from scipy.optimize import linear_sum_assignment

from otkit.elastic import elastic_cost
from otkit.elastic.ground_truth import (
    ConcavePotential,
    ElasticGroundTruth,
    concave_potential,
    elastic_ground_truth,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("name", "params"),
    [("l1", {}), ("stvs", {"gamma": 0.5}), ("k_overlap", {"k": 2}), ("l1_rho2", {})],
)
def test_the_map_is_c_cyclically_monotone(name, params):
    # the optimal assignment between x_i and T(x_j) for the cost h(x − y) is the identity
    rho = 2.0 if name == "l1_rho2" else 1.0
    cost = elastic_cost(name.split("_rho")[0], rho=rho, lam=1.0, **params)
    gt = elastic_ground_truth(cost, 6, seed=1, curvature=2.0, ridge_scale=2.0)
    x = gt.sample_source(150, generator=_gen())
    rows, cols = linear_sum_assignment(cost.pairwise(x, gt.map(x)).numpy())
    assert (cols == rows).all()
    # and not for a perturbed map: the check can fail
    wrong = gt.map(x) + 0.5 * torch.randn(x.shape, generator=_gen(1), dtype=x.dtype)
    rows, cols = linear_sum_assignment(cost.pairwise(x, wrong).numpy())
    assert not (cols == rows).all()


def test_the_displacement_satisfies_the_optimality_condition():
    # z* minimizes h(z) − g(x − z): 0 ∈ ρz + ∇g(x − z) + λ∂r(z); as a prox fixed point
    cost = elastic_cost("l1", rho=1.5, lam=0.7)
    gt = elastic_ground_truth(cost, 8, seed=2)
    x = gt.sample_source(40, generator=_gen())
    z = gt.displacement(x)
    grad = cost.rho * z + gt.potential.gradient(x - z)
    on = z != 0
    assert torch.allclose(grad[on], -cost.lam * torch.sign(z[on]), atol=1e-7)
    assert (grad[~on].abs() <= cost.lam + 1e-7).all()
    # and it is a minimizer: random perturbations never lower the objective
    objective = cost.h(z) - gt.potential(x - z)
    for seed in range(5):
        dz = 1e-3 * torch.randn(z.shape, generator=_gen(seed), dtype=z.dtype)
        assert (cost.h(z + dz) - gt.potential(x - z - dz) >= objective - 1e-12).all()


def test_quadratic_case_has_the_closed_form_map():
    # ρ = 1, λ = 0, g(z) = −½ zᵀQz: z* = (I + Q)⁻¹Qx, so T(x) = (I + Q)⁻¹x
    d = 5
    B = torch.randn(d, d, generator=_gen(), dtype=torch.float64)
    Q = B.T @ B / d
    g = ConcavePotential(Q, torch.zeros(0, d, dtype=torch.float64),
                         torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64))
    gt = ElasticGroundTruth(elastic_cost("l1", lam=0.0), g)
    x = torch.randn(30, d, generator=_gen(1), dtype=torch.float64)
    expected = torch.linalg.solve(torch.eye(d, dtype=torch.float64) + Q, x.T).T
    assert torch.allclose(gt.map(x), expected, atol=1e-8)


def test_l1_displacements_are_sparse_and_grow_sparser_with_lambda():
    fractions = []
    for lam in (0.0, 0.5, 1.5):
        gt = elastic_ground_truth(elastic_cost("l1", lam=lam), 20, seed=0, curvature=2.0)
        z = gt.displacement(gt.sample_source(100, generator=_gen()))
        fractions.append((z != 0).double().mean().item())
    assert fractions[0] == 1.0 and fractions[0] > fractions[1] > fractions[2]


def test_potential_gradient_matches_autograd_and_g_is_concave():
    g = concave_potential(4, seed=3)
    z = torch.randn(10, 4, generator=_gen(), dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(g(z).sum(), z)
    assert torch.allclose(g.gradient(z.detach()), auto, atol=1e-12)
    a, b = torch.randn(2, 50, 4, generator=_gen(1), dtype=torch.float64)
    assert (g(0.5 * (a + b)) >= 0.5 * (g(a) + g(b)) - 1e-12).all()


def test_non_convergence_warns():
    gt = elastic_ground_truth(elastic_cost("l1", lam=1.0), 5, max_iter=2, curvature=3.0)
    with pytest.warns(UserWarning, match="max_iter"):
        gt.displacement(gt.sample_source(10, generator=_gen()))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"dim": 0}, "dim"), ({"source_scale": -1.0}, "source_scale"), ({"tol": 0.0}, "tol"),
     ({"max_iter": 0}, "max_iter"), ({"curvature": -1.0}, "curvature")],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    args = {"dim": 3, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        elastic_ground_truth(elastic_cost("l1"), **args)


def test_wrong_cost_and_wrong_points_raise():
    with pytest.raises(TypeError, match="cost"):
        elastic_ground_truth("sqeuclidean", 3)
    gt = elastic_ground_truth(elastic_cost("l1"), 3)
    with pytest.raises(ValueError, match="x"):
        gt.map(torch.zeros(4, 2, dtype=torch.float64))
