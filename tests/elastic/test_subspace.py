"""Learning the subspace of an elastic cost (Klein et al. 2024): angles, the map, its gradient
in A, recovery.

References nobody here wrote: scipy's subspace angles, otkit.sinkhorn's squared-Euclidean
barycentric projection (λ = 0), and central finite differences of solves run to tol 1e-12.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

import otkit
from otkit.elastic.subspace import (
    _held_out_loss,
    learn_subspace,
    planted_subspace_problem,
    principal_angles,
    subspace_map,
)

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_principal_angles_match_scipy():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, 7, generator=gen, dtype=F64)
    B = torch.randn(2, 7, generator=gen, dtype=F64)
    ours = principal_angles(A, B).numpy()
    ref = np.sort(scipy.linalg.subspace_angles(A.T.numpy(), B.T.numpy()))
    assert np.allclose(np.sort(ours), ref, atol=1e-10)
    assert principal_angles(A, 2.0 * A).abs().max() < 1e-6
    with pytest.raises(ValueError, match="rank"):
        principal_angles(torch.ones(2, 5, dtype=F64), B[:, :5])
    with pytest.raises(ValueError, match="same d"):
        principal_angles(A, torch.randn(2, 6, dtype=F64))


def test_planted_displacements_lie_in_the_subspace():
    prob = planted_subspace_problem(50, 8, 2, seed=1)
    assert torch.allclose(prob.A @ prob.A.T, torch.eye(2, dtype=F64), atol=1e-12)
    disp = prob.y - prob.x
    assert torch.allclose(disp - (disp @ prob.A.T) @ prob.A, torch.zeros_like(disp), atol=1e-12)


def test_subspace_map_with_lambda_zero_is_the_barycentric_projection():
    prob = planted_subspace_problem(40, 5, 2, seed=2)
    eps = 2.0
    ours = subspace_map(prob.x, prob.y, prob.A, lam=0.0, epsilon=eps, tol=1e-10)
    ref = otkit.sinkhorn(prob.x, prob.y, epsilon=eps, tol=1e-10, max_iter=20000).transport(prob.x)
    torch.testing.assert_close(ours, ref, rtol=1e-8, atol=1e-8)


def test_iterations_keyword_of_subspace_map_is_deprecated_and_ignored():
    prob = planted_subspace_problem(30, 4, 1, seed=2)
    plain = subspace_map(prob.x, prob.y, prob.A, lam=1.0, epsilon=2.0)
    with pytest.warns(DeprecationWarning, match=r"iterations=\) is ignored"):
        old = subspace_map(prob.x, prob.y, prob.A, lam=1.0, epsilon=2.0, iterations=5)
    assert torch.equal(old, plain)


def _tiny_problem():
    prob = planted_subspace_problem(35, 5, 2, seed=4)
    fit, held = slice(0, 20), slice(20, 35)
    U = torch.randn(5, 2, generator=torch.Generator().manual_seed(5), dtype=F64)
    direction = torch.randn(5, 2, generator=torch.Generator().manual_seed(6), dtype=F64)
    return prob.x[fit], prob.y[fit], prob.x[held], prob.y[held], U, direction


def test_held_out_loss_gradient_in_the_parametrization_matches_finite_differences():
    """The learner's loss at a converged solve, differentiated through A = QR(U)ᵀ, the cost and
    the implicit fixed point, against central differences in U (h = 1e-5, float64)."""
    x, y, x_held, y_held, U, direction = _tiny_problem()

    def loss(u: torch.Tensor) -> torch.Tensor:
        A = torch.linalg.qr(u)[0].T
        return _held_out_loss(x, y, x_held, y_held, A, lam=3.0, epsilon=3.0, tol=1e-11,
                              max_iter=20_000)[0]

    h = 1e-5
    with torch.no_grad():
        exact = ((loss(U + h * direction) - loss(U - h * direction)) / (2 * h)).item()
    u = U.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(u), u)
    ours = (grad * direction).sum().item()
    assert abs(exact) > 1e-3  # a direction along which the loss moves
    assert ours == pytest.approx(exact, rel=1e-6, abs=1e-10)


def test_the_gradient_in_A_is_the_implicit_one_not_the_envelope():
    """The test can fail: the one-pass (envelope) gradient of the map is off; the learner's is
    the exact one, here directly in A (a [p, d] tensor, unconstrained)."""
    x, y, x_held, y_held, U, direction = _tiny_problem()
    A0 = torch.linalg.qr(U)[0].T.contiguous()
    dA = direction.T.contiguous()

    def loss(A: torch.Tensor, differentiation: str) -> torch.Tensor:
        cost = otkit.elastic.ElasticCost(otkit.elastic.Subspace(A), lam=3.0)
        res = otkit.sinkhorn(x, y, cost=cost, epsilon=3.0, tol=1e-11, max_iter=20_000,
                             differentiation=differentiation)
        return ((res.transport(x_held) - y_held) ** 2).sum(1).mean()

    h = 1e-5
    with torch.no_grad():
        exact = ((loss(A0 + h * dA, "implicit") - loss(A0 - h * dA, "implicit")) / (2 * h)).item()
    grads = {}
    for mode in ("implicit", "envelope"):
        a = A0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(a, mode), a)
        grads[mode] = (g * dA).sum().item()
    ours, _ = _held_out_loss(x, y, x_held, y_held, A0, lam=3.0, epsilon=3.0, tol=1e-11,
                             max_iter=20_000)
    assert ours.item() == pytest.approx(loss(A0, "implicit").item(), rel=1e-12)
    assert grads["implicit"] == pytest.approx(exact, rel=1e-6, abs=1e-10)
    assert abs(grads["envelope"] - exact) > 100 * abs(grads["implicit"] - exact)


def test_learning_recovers_a_planted_line_far_below_the_random_baseline():
    prob = planted_subspace_problem(200, 6, 1, seed=0)
    res = learn_subspace(prob.x, prob.y, 1, lam=3.0, relative_epsilon=0.4, steps=40, lr=0.1,
                         true=prob.A, batch_size=None, seed=3)
    assert torch.allclose(res.A @ res.A.T, torch.eye(1, dtype=F64), atol=1e-10)
    assert res.angles.shape == (40,) and res.losses.shape == (40,)
    assert res.sinkhorn_iterations.shape == (40,) and (res.sinkhorn_iterations >= 1).all()
    # the angle between span(A_true) and a random line of R^6: median about 66°
    gen = torch.Generator().manual_seed(11)
    baseline = torch.tensor([principal_angles(torch.randn(1, 6, generator=gen, dtype=F64),
                                              prob.A).max().item() for _ in range(400)])
    random_median = baseline.median().item()
    assert random_median > math.radians(55)
    learned = principal_angles(res.A, prob.A).max().item()
    assert learned < 0.4 * random_median, (math.degrees(learned), res.angles)
    assert res.angles[-5:].mean() < 0.4 * random_median
    assert res.losses[-10:].mean() < res.losses[:5].mean()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"p": 6}, "p"), ({"p": 0}, "p"), ({"lam": -1.0}, "lam"), ({"steps": 0}, "steps"),
     ({"init": torch.zeros(3, 6, dtype=F64)}, "init"), ({"relative_epsilon": 0.0}, "relative_epsilon"),
     ({"tol": 0.0}, "tol"), ({"max_iter": 0}, "max_iter"),
     ({"iterations": 50}, "iterations")],  # the unrolled loop's count is gone
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    prob = planted_subspace_problem(20, 6, 2, seed=0)
    args = {"p": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        learn_subspace(prob.x, prob.y, **args)
    with pytest.raises(ValueError, match="paired"):
        learn_subspace(prob.x, prob.y[:10], 2)
