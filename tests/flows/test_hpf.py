"""The high-pass-filter distance of Simple ReFlow (otkit.flows.hpf), against scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otkit.flows.hpf import (
    HPFDistance,
    gaussian_blur,
    high_pass_filter,
    hpf_distance,
    make_distance,
    squared_l2,
)
from otkit.flows.weighting import per_pair_flow_matching_loss
from otkit.nn.velocity import VelocityConvNet

ndimage = pytest.importorskip("scipy.ndimage")


def _images(k=5, side=8, seed=0):
    return torch.randn(k, 1, side, side, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_blur_matches_scipy_mirror_gaussian_filter(sigma):
    x = _images()
    radius = math.ceil(3 * sigma)
    expected = np.stack([
        ndimage.gaussian_filter(img[0].numpy(), sigma, mode="mirror", truncate=radius / sigma)
        for img in x
    ])[:, None]
    np.testing.assert_allclose(gaussian_blur(x, sigma).numpy(), expected, atol=1e-12)


def test_zero_for_identical_images():
    x = _images().flatten(1)
    assert torch.equal(hpf_distance(x, x.clone()), torch.zeros(5, dtype=torch.float64))


def test_high_pass_kills_constants_and_the_distance_reduces_to_l2_on_constant_errors():
    x = _images()
    c = torch.full_like(x, 0.7)
    assert high_pass_filter(c).abs().max() < 1e-12
    torch.testing.assert_close(high_pass_filter(x + c), high_pass_filter(x), atol=1e-12, rtol=0)
    u = _images(seed=1).flatten(1)
    v = u + 0.3  # the error is a constant image: only the L2 part remains
    torch.testing.assert_close(hpf_distance(v, u, weight=5.0), torch.full((5,), 64 * 0.09, dtype=torch.float64))


def test_checkerboard_by_hand():
    # Whole-sample mirror padding continues (-1)^(i+j), an eigenimage of the separable blur
    # with eigenvalue ĝ(π)², ĝ(π) = Σ_j (-1)^j g_j: so ‖H x‖² = 64 (1 - ĝ(π)²)².
    i = torch.arange(8, dtype=torch.float64)
    board = ((-1.0) ** (i[:, None] + i[None, :])).reshape(1, 64)
    j = torch.arange(-3, 4, dtype=torch.float64)
    g = torch.exp(-0.5 * j**2)
    g_pi = float(((-1.0) ** j * g).sum() / g.sum())
    expected = 64 + 2.0 * 64 * (1 - g_pi**2) ** 2
    got = hpf_distance(board, torch.zeros_like(board), sigma=1.0, weight=2.0)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_weight_zero_is_squared_l2_and_shapes_agree():
    v, u = _images(seed=2), _images(seed=3)
    torch.testing.assert_close(hpf_distance(v, u, weight=0.0), squared_l2(v, u))
    torch.testing.assert_close(hpf_distance(v.flatten(1), u.flatten(1)), hpf_distance(v, u))
    assert (hpf_distance(v, u) >= squared_l2(v, u)).all()


def test_make_distance_and_flow_matching_loss_option():
    assert make_distance(None) is squared_l2 and make_distance("l2") is squared_l2
    assert isinstance(make_distance("hpf"), HPFDistance)
    torch.manual_seed(0)
    model = VelocityConvNet(channels=4, depth=1)
    x0, x1, t = torch.randn(6, 64), torch.randn(6, 64), torch.rand(6)
    plain = per_pair_flow_matching_loss(model, x0, x1, t)
    hpf = per_pair_flow_matching_loss(model, x0, x1, t, distance="hpf")
    tt = t[:, None]
    expected = hpf_distance(model((1 - tt) * x0 + tt * x1, t), x1 - x0)
    torch.testing.assert_close(hpf, expected)
    assert (hpf > plain).all()


def test_bad_inputs():
    x = _images().flatten(1)
    with pytest.raises(ValueError, match="sigma"):
        hpf_distance(x, x, sigma=0.0)
    with pytest.raises(ValueError, match="radius"):
        hpf_distance(x, x, sigma=3.0)
    with pytest.raises(ValueError, match="weight"):
        hpf_distance(x, x, weight=-1.0)
    with pytest.raises(TypeError, match="weight"):
        hpf_distance(x, x, weight="1")
    with pytest.raises(ValueError, match="same shape"):
        hpf_distance(x, x[:, :63])
    with pytest.raises(ValueError, match="square"):
        hpf_distance(x[:, :63], x[:, :63])
    with pytest.raises(ValueError, match="side"):
        hpf_distance(x, x, side=7)
    with pytest.raises(TypeError, match="images"):
        gaussian_blur(np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="loss_distance"):
        make_distance("lpips")


def test_minimizer_is_the_mean_as_for_l2():
    # d(v, u) = ‖A(v − u)‖² with A positive definite: E_u d(v, u) is stationary at v = E u only.
    u = _images(k=50, seed=4).flatten(1)
    v = u.mean(0, keepdim=True).requires_grad_(True)
    hpf_distance(v.expand_as(u), u, weight=3.0).mean().backward()
    assert v.grad.abs().max() < 1e-12
    w = (u.mean(0, keepdim=True) + 0.1).requires_grad_(True)
    hpf_distance(w.expand_as(u), u, weight=3.0).mean().backward()
    assert w.grad.abs().max() > 1e-3
