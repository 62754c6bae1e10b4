"""Learning the subspace of an elastic cost (Klein et al. 2024): angles, the map, recovery."""

import numpy as np
import pytest
import scipy.linalg
import torch

from otkit.elastic.subspace import (
    learn_subspace,
    planted_subspace_problem,
    principal_angles,
    subspace_map,
)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_principal_angles_match_scipy():
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    B = torch.randn(2, 7, generator=gen, dtype=torch.float64)
    ours = principal_angles(A, B).numpy()
    ref = np.sort(scipy.linalg.subspace_angles(A.T.numpy(), B.T.numpy()))
    assert np.allclose(np.sort(ours), ref, atol=1e-10)
    assert principal_angles(A, 2.0 * A).abs().max() < 1e-6
    with pytest.raises(ValueError, match="rank"):
        principal_angles(torch.ones(2, 5, dtype=torch.float64), B[:, :5])
    with pytest.raises(ValueError, match="same d"):
        principal_angles(A, torch.randn(2, 6, dtype=torch.float64))


def test_planted_displacements_lie_in_the_subspace():
    prob = planted_subspace_problem(50, 8, 2, seed=1)
    assert torch.allclose(prob.A @ prob.A.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    disp = prob.y - prob.x
    assert torch.allclose(disp - (disp @ prob.A.T) @ prob.A, torch.zeros_like(disp), atol=1e-12)


def test_subspace_map_with_lambda_zero_is_the_barycentric_projection():
    import otkit

    prob = planted_subspace_problem(40, 5, 2, seed=2)
    eps = 0.5
    ours = subspace_map(prob.x, prob.y, prob.A, lam=0.0, epsilon=eps, iterations=2000)
    ref = otkit.sinkhorn(prob.x, prob.y, epsilon=eps, tol=1e-12, max_iter=20000).transport(prob.x)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_learning_shrinks_the_principal_angle_and_stays_orthonormal():
    prob = planted_subspace_problem(400, 6, 1, seed=0)
    # ε = 0.18 × std(C) here is 0.1 × mean(C), the ε this test was tuned at (mean/std ≈ 1.79)
    res = learn_subspace(prob.x, prob.y, 1, lam=3.0, relative_epsilon=0.18, steps=60, lr=0.1,
                         true=prob.A, batch_size=256, seed=3)
    assert torch.allclose(res.A @ res.A.T, torch.eye(1, dtype=torch.float64), atol=1e-10)
    assert res.angles.shape == (60,) and res.losses.shape == (60,)
    assert res.angles[-10:].mean() < res.angles[:3].mean() - 0.4, res.angles
    assert res.losses[-10:].mean() < res.losses[:5].mean()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"p": 6}, "p"), ({"p": 0}, "p"), ({"lam": -1.0}, "lam"), ({"steps": 0}, "steps"),
     ({"init": torch.zeros(3, 6, dtype=torch.float64)}, "init"), ({"relative_epsilon": 0.0}, "relative_epsilon")],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    prob = planted_subspace_problem(20, 6, 2, seed=0)
    args = {"p": 2, **kwargs}
    with pytest.raises((ValueError, TypeError), match=name):
        learn_subspace(prob.x, prob.y, **args)
    with pytest.raises(ValueError, match="paired"):
        learn_subspace(prob.x, prob.y[:10], 2)
