"""otkit.nn.ICNN: convexity by the midpoint inequality on random segments, homogeneity of the
bias-free ReLU form, the initialization's scale, parameter counts and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from otkit.nn import ICNN, icnn_parameter_count
from otkit.nn.icnn import lognormal_moments


def _scramble(net: ICNN, seed: int) -> ICNN:
    """Generic (non-initial) weights: every raw parameter redrawn from N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net.clip_()


def _midpoint_gaps(net: ICNN, n: int = 4000, seed: int = 0) -> torch.Tensor:
    """(f(a) + f(b))/2 − f((a + b)/2) on random segments: ≥ 0 for a convex f."""
    g = torch.Generator().manual_seed(seed)
    a = 3 * torch.randn(n, net.dim, generator=g, dtype=torch.float64)
    b = 3 * torch.randn(n, net.dim, generator=g, dtype=torch.float64)
    with torch.no_grad():
        return (net(a) + net(b)) / 2 - net((a + b) / 2)


@pytest.mark.parametrize("positivity", ["softplus", "clip"])
@pytest.mark.parametrize("activation", ["relu", "softplus"])
def test_midpoint_inequality(positivity, activation):
    net = _scramble(ICNN(5, (16, 16, 16), positivity=positivity, activation=activation).double(), 1)
    assert net.convex
    assert _midpoint_gaps(net).min() >= -1e-9


def test_unconstrained_twin_violates_convexity():
    """The check can fail: the same network with free weights breaks the inequality."""
    net = _scramble(ICNN(5, (16, 16, 16), positivity="none").double(), 1)
    assert not net.convex
    assert _midpoint_gaps(net).min() < -1e-3


def test_effective_weights_are_nonnegative():
    for positivity in ("softplus", "clip"):
        net = _scramble(ICNN(4, (8, 8, 8), positivity=positivity), 3)
        for i in range(len(net.weights)):
            assert (net.hidden_weight(i) >= 0).all()
    clip = _scramble(ICNN(4, (8, 8), positivity="clip"), 3)
    assert all((v >= 0).all() for v in clip.weights)  # clip_ projected the raw weights


def test_bias_free_relu_icnn_is_one_homogeneous():
    net = _scramble(ICNN(6, (12, 12), bias=False).double(), 2)
    x = torch.randn(50, 6, dtype=torch.float64)
    for lam in (0.0, 0.3, 2.5, 40.0):
        torch.testing.assert_close(net(lam * x), lam * net(x))
    assert not torch.allclose(_scramble(ICNN(6, (12, 12)).double(), 2)(3 * x), 3 * _scramble(ICNN(6, (12, 12)).double(), 2)(x))


def test_initialization_keeps_output_scale():
    """Non-negative lognormal weights with the mean-cancelling bias keep the output O(1) at
    widths 64-256."""
    x = torch.randn(4096, 32, generator=torch.Generator().manual_seed(0))
    for hidden in ((64,) * 4, (128,) * 3, (256, 256)):
        net = ICNN(32, hidden, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out = net(x)
        assert 0.3 < out.std().item() < 3.0
        assert abs(out.mean().item()) < 3.0


def test_lognormal_moments_against_sampling():
    mu, sigma = lognormal_moments(0.2, 0.01)
    w = torch.exp(mu + sigma * torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert abs(w.mean().item() - 0.2) < 1e-3
    assert abs(w.var().item() - 0.01) < 3e-4
    with pytest.raises(ValueError, match="mean"):
        lognormal_moments(0.0, 1.0)
    with pytest.raises(ValueError, match="var"):
        lognormal_moments(1.0, -1.0)


def test_parameter_count_matches_module():
    for hidden in ((7,), (5, 9), (4, 4, 4)):
        net = ICNN(3, hidden)
        assert icnn_parameter_count(3, hidden) == sum(p.numel() for p in net.parameters())


def test_gradient_is_piecewise_constant_with_relu():
    net = _scramble(ICNN(2, (8, 8)).double(), 4)
    x = torch.randn(1, 2, dtype=torch.float64, requires_grad=True)
    (g1,) = torch.autograd.grad(net(x).sum(), x)
    y = (x.detach() + 1e-7).requires_grad_(True)
    (g2,) = torch.autograd.grad(net(y).sum(), y)
    torch.testing.assert_close(g1, g2)
    assert math.isfinite(g1.norm().item())


def test_bad_inputs():
    with pytest.raises(ValueError, match="positivity"):
        ICNN(3, (4,), positivity="abs")
    with pytest.raises(ValueError, match="activation"):
        ICNN(3, (4,), activation="tanh")
    with pytest.raises(ValueError, match="hidden"):
        ICNN(3, ())
    with pytest.raises(ValueError, match="dim"):
        ICNN(0, (4,))
    with pytest.raises(ValueError, match="x must have shape"):
        ICNN(3, (4,))(torch.zeros(2, 4))
