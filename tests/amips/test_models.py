"""otkit.amips.models: Homogenize's homogeneity (and its stated loss of convexity), SupportNet's
gradient and convexity, KeyNet's linear output, budgets, and the trained 2-D toy whose gradient
must be the argmax key."""

from __future__ import annotations

import math

import pytest
import torch

from otkit.amips import (
    Homogenize,
    KeyNet,
    SupportNet,
    fit,
    mips,
    parameter_count,
    width_for_budget,
)


class _Square(torch.nn.Module):
    def forward(self, x):
        return x[:, 0] ** 2


def test_homogenize_is_positively_homogeneous():
    torch.manual_seed(0)
    net = SupportNet(4, (8, 8), homogenize=True).double()
    key_net = KeyNet(4, (8, 8), homogenize=True).double()
    q = torch.randn(30, 4, dtype=torch.float64)
    for lam in (0.1, 1.0, 7.0):
        torch.testing.assert_close(net.score(lam * q), lam * net.score(q))
        torch.testing.assert_close(net.key(lam * q), net.key(q))  # ∇ of 1-homogeneous: 0-homogeneous
        torch.testing.assert_close(key_net.key(lam * q), key_net.key(q))
        torch.testing.assert_close(key_net.score(lam * q), lam * key_net.score(q))
    torch.testing.assert_close(net.score(torch.zeros(1, 4, dtype=torch.float64)), torch.zeros(1, dtype=torch.float64))
    # Euler's identity for the 1-homogeneous SupportNet: f(q) = ⟨q, ∇f(q)⟩
    torch.testing.assert_close(net.score(q), (q * net.key(q)).sum(1))


def test_homogenize_breaks_convexity_as_documented():
    """x₁² is convex; ‖x‖ (x₁/‖x‖)² = x₁²/‖x‖ is not: midpoint (1, 0) of (1, ±1)."""
    h = Homogenize(_Square(), 1)
    ends = h(torch.tensor([[1.0, -1.0], [1.0, 1.0]], dtype=torch.float64))
    mid = h(torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(ends, torch.full((2,), 1 / math.sqrt(2), dtype=torch.float64))
    assert mid.item() > ends.mean().item() + 0.25
    assert not SupportNet(3, (4,), homogenize=True).convex
    assert SupportNet(3, (4,)).convex and not SupportNet(3, (4,), positivity="none").convex


def test_supportnet_key_is_its_gradient_and_convex():
    torch.manual_seed(1)
    net = SupportNet(3, (16, 16)).double()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.5 * torch.randn_like(p))
    q = torch.randn(200, 3, dtype=torch.float64)
    eps = 1e-6
    for i in range(3):  # central differences on a smooth enough net: compare to autograd
        e = torch.zeros(3, dtype=torch.float64)
        e[i] = eps
        fd = (net.score(q + e) - net.score(q - e)) / (2 * eps)
        close = (fd - net.key(q)[:, i]).abs() < 1e-5
        assert close.float().mean() > 0.95  # kinks of ReLU may fall inside a few stencils
    a, b = 3 * torch.randn(2, 2000, 3, dtype=torch.float64)
    gap = (net.score(a) + net.score(b)) / 2 - net.score((a + b) / 2)
    assert gap.min() >= -1e-9


def test_keynet_output_is_linear():
    net = KeyNet(5, (8,))
    assert isinstance(net.mlp.net[-1], torch.nn.Linear)  # no activation after the last layer
    out = net.key(torch.randn(500, 5))
    assert (out < 0).any()  # a ReLU on the output could not give negative keys
    q = torch.randn(10, 5)
    torch.testing.assert_close(net.score(q), (q * net.key(q)).sum(1))


def test_budget_and_counts():
    for model, make in (("support", lambda h: SupportNet(32, h)), ("key", lambda h: KeyNet(32, h))):
        for depth in (1, 2, 3):
            w = width_for_budget(model, 32, 32_000, depth)
            assert parameter_count(model, 32, (w,) * depth) <= 32_000 < parameter_count(model, 32, (w + 1,) * depth)
            assert parameter_count(model, 32, (w,) * depth) == sum(p.numel() for p in make((w,) * depth).parameters())
    with pytest.raises(ValueError, match="budget"):
        width_for_budget("key", 32, 10)
    with pytest.raises(ValueError, match="model"):
        parameter_count("tree", 3, (4,))


def test_bad_queries():
    net = SupportNet(3, (4,))
    with pytest.raises(ValueError, match="q must be a tensor of shape"):
        net.score(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="finite"):
        net.key(torch.full((2, 3), math.nan))
    with pytest.raises(ValueError, match="q must be"):
        KeyNet(3, (4,)).key(torch.zeros(3))
    with pytest.raises(ValueError, match="degree"):
        Homogenize(net, 2)


def test_trained_supportnet_gradient_is_the_argmax_key():
    """Keys: the 8 vertices of a regular octagon of radius 2; h_K(q) = 2‖q‖ cos(angle to the
    nearest vertex direction). After training a bias-free ReLU ICNN (convex and 1-homogeneous
    by construction), ∇f(q) is the argmax key away from the cell boundaries and f is close to the
    closed-form support function."""
    torch.manual_seed(0)
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    keys = 2 * torch.stack([angles.cos(), angles.sin()], 1)
    net = SupportNet(2, (32, 32), bias=False, generator=torch.Generator().manual_seed(0)).double()
    fit(net, keys, lambda n, g: torch.randn(n, 2, generator=g, dtype=torch.float64), steps=1500,
        batch_size=256, lr=3e-2, generator=torch.Generator().manual_seed(1))
    q = torch.randn(4000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    theta = torch.atan2(q[:, 1], q[:, 0])
    offset = torch.remainder(theta, 2 * math.pi / 8)
    inside = (torch.minimum(offset, 2 * math.pi / 8 - offset) > 0.1) & (q.norm(dim=1) > 0.3)
    nearest = torch.remainder(torch.round(theta / (2 * math.pi / 8)), 8).long()
    assert torch.equal(nearest, mips(q, keys))  # closed form = brute force
    key = net.key(q)
    assert ((key - keys[nearest]).norm(dim=1)[inside] < 0.1).float().mean() > 0.9
    support = 2 * q.norm(dim=1) * torch.cos(theta - angles[nearest])
    assert (net.score(q) - support).abs().median() < 0.05


def test_soft_targets_are_the_smoothed_support_function():
    """h_ε(q) = ε LSE(⟨q, k⟩/ε) and its gradient (autograd of the closed form) = softmax keys;
    ε → 0 gives the hard targets."""
    from otkit.amips import targets

    g = torch.Generator().manual_seed(0)
    keys = torch.randn(50, 3, generator=g, dtype=torch.float64)
    q = torch.randn(20, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    score, key = targets(q.detach(), keys, 0.3)
    h = 0.3 * torch.logsumexp(q @ keys.T / 0.3, 1)
    (grad,) = torch.autograd.grad(h.sum(), q)
    torch.testing.assert_close(score, h.detach())
    torch.testing.assert_close(key, grad)
    hard_score, hard_key = targets(q.detach(), keys, 0.0)
    soft_score, soft_key = targets(q.detach(), keys, 1e-4)
    torch.testing.assert_close(soft_key, hard_key, atol=1e-3, rtol=0)
    torch.testing.assert_close(hard_score, (q.detach() @ keys.T).max(1).values)
    with pytest.raises(ValueError, match="epsilon"):
        targets(q.detach(), keys, -1.0)
