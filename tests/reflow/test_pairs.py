"""Teacher pairs: the ODE run forward and backward, against scipy's solve_ivp and expm."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from otkit.flows.distributions import Sampler
from otkit.reflow.pairs import backward_pairs, forward_pairs, teacher_pairs

A = np.array([[-0.5, 1.0], [-1.0, -0.2]])
B = np.array([1.0, -2.0])


def field(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v(x, t) = A x + t b: linear in x, time-dependent (a wrong time reversal shows)."""
    a, b = torch.as_tensor(A, dtype=x.dtype), torch.as_tensor(B, dtype=x.dtype)
    return x @ a.T + t.unsqueeze(1) * b


def reference(x: np.ndarray, t0: float, t1: float) -> np.ndarray:
    out = [solve_ivp(lambda t, y: A @ y + t * B, (t0, t1), row, rtol=1e-11, atol=1e-12).y[:, -1]
           for row in x]
    return np.array(out)


@pytest.fixture
def points():
    return torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_backward_pairs_solve_the_ode_forward_in_time(points):
    z, x = backward_pairs(field, points, nfe=128, method="heun")
    assert torch.equal(z, points)
    np.testing.assert_allclose(x.numpy(), reference(points.numpy(), 0.0, 1.0), atol=1e-3)


def test_forward_pairs_solve_the_ode_backward_in_time(points):
    z, x = forward_pairs(field, points, nfe=128, method="midpoint")
    assert torch.equal(x, points)
    np.testing.assert_allclose(z.numpy(), reference(points.numpy(), 1.0, 0.0), atol=1e-3)
    # and the round trip: forward then backward is the identity (up to discretization)
    _, back = backward_pairs(field, z, nfe=128, method="midpoint")
    torch.testing.assert_close(back, points, atol=1e-3, rtol=0)


def test_time_independent_field_matches_expm(points):
    linear = lambda x, t: x @ torch.as_tensor(A).T  # noqa: E731
    _, x = backward_pairs(linear, points, nfe=256, method="heun")
    np.testing.assert_allclose(x.numpy(), points.numpy() @ expm(A).T, atol=1e-3)
    z, _ = forward_pairs(linear, points, nfe=256, method="heun")
    np.testing.assert_allclose(z.numpy(), points.numpy() @ expm(-A).T, atol=1e-3)


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_teacher_pairs_mix_the_two_kinds(fraction):
    source, target = Sampler("eight_gaussians"), Sampler("moons")
    pairs = teacher_pairs(field, source, target, 40, forward_fraction=fraction, nfe=8, seed=2)
    assert len(pairs) == 40 and pairs.source.shape == pairs.target.shape == (40, 2)
    assert int(pairs.forward.sum()) == round(40 * fraction)
    assert pairs.function_evaluations == 40 * 8
    # forward pairs end on real data: the moons sampler's own draws
    gen = torch.Generator().manual_seed(2)
    n_back = 40 - round(40 * fraction)
    if n_back:
        torch.testing.assert_close(pairs.source[:n_back], source(n_back, gen))
    if fraction:
        torch.testing.assert_close(pairs.target[n_back:], target(40 - n_back, gen))


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"num_pairs": 0}, "num_pairs"), ({"forward_fraction": 1.5}, "forward_fraction"),
    ({"nfe": 0}, "nfe"),
])
def test_teacher_pairs_reject_bad_input(kwargs, name):
    args = {"num_pairs": 8, **kwargs}
    with pytest.raises(ValueError, match=name):
        teacher_pairs(field, Sampler("gaussian"), Sampler("moons"), **args)


def test_pairs_reject_bad_points():
    with pytest.raises(ValueError, match="noise"):
        backward_pairs(field, torch.tensor([[math.nan, 0.0]]))
    with pytest.raises(ValueError, match="data"):
        forward_pairs(field, torch.zeros(3))
    with pytest.raises(TypeError, match="teacher"):
        backward_pairs(3, torch.zeros(3, 2))
