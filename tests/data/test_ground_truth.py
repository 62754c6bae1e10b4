"""Tests for otkit.data: ground-truth OT maps for ½‖x − y‖².

References that are not the code under test: torch.autograd (map = ∇φ, Jacobian), POT's exact
solver ``ot.emd`` (the pairing (x_i, T(x_i)) must be the optimal discrete plan), Monte Carlo
moments and a least-squares affine fit.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import ot
import pytest
import torch

from otkit.data import (
    GROUND_TRUTH_MAPS,
    GroundTruthMap,
    convex_potential_map,
    gaussian_map,
    ground_truth_map,
    map_error,
)
from otkit.gaussian import monge_map

F64 = torch.float64
DIMS = (2, 8, 32, 64)


def _affine_fit_error(x: torch.Tensor, y: torch.Tensor) -> float:
    """map_error of the least-squares affine fit of y on x."""
    x1 = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    coef = torch.linalg.lstsq(x1, y).solution
    return map_error(x1 @ coef, y)


def _emd_plan(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    xn, yn = x.numpy(), y.numpy()
    n = len(xn)
    a = np.full(n, 1.0 / n)
    return ot.emd(a, a, ot.dist(xn, yn) / 2.0)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", GROUND_TRUTH_MAPS)
def test_map_is_gradient_of_potential(name, d):
    g = ground_truth_map(name, d, seed=1)
    x = g.sample_source(32, seed=2, dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(g.potential(x).sum(), x)
    t = g.map(x.detach())
    assert g.potential(x).shape == (32,)
    assert t.shape == (32, d) and t.dtype == F64
    torch.testing.assert_close(t, grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", GROUND_TRUTH_MAPS)
def test_jacobian_symmetric_positive_definite(name, d):
    g = ground_truth_map(name, d, seed=3)
    for x in g.sample_source(3, seed=4, dtype=F64):
        jac = torch.autograd.functional.jacobian(lambda v: g.map(v[None])[0], x)
        assert jac.shape == (d, d)
        torch.testing.assert_close(jac, jac.T, rtol=0, atol=1e-12)
        assert torch.linalg.eigvalsh(jac).min() > 0.1


@pytest.mark.parametrize("d", (2, 8, 64))
@pytest.mark.parametrize("name", GROUND_TRUTH_MAPS)
def test_pairing_is_optimal_for_pot_emd(name, d):
    g = ground_truth_map(name, d, seed=5)
    x = g.sample_source(200, seed=6, dtype=F64)
    y = g.map(x)
    plan = _emd_plan(x, y)
    np.testing.assert_allclose(plan, np.eye(200) / 200, atol=1e-9)
    # Negative control: a rotated map is not the gradient of a convex function, so the
    # identity pairing is far from optimal and the check above would fail.
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(7), dtype=F64))
    plan_rot = _emd_plan(x, y @ q.T)
    assert np.trace(plan_rot) < 0.5


def test_gaussian_moments_and_monge_map():
    g = gaussian_map(8, seed=0)
    y = g.sample_target(200_000, seed=1, dtype=F64)
    torch.testing.assert_close(y.mean(0), g.target_mean, rtol=0, atol=0.03)
    torch.testing.assert_close(torch.cov(y.T), g.target_cov, rtol=0, atol=0.05)
    x = g.sample_source(200_000, seed=2, dtype=F64)
    torch.testing.assert_close(x.mean(0), g.source_mean, rtol=0, atol=0.03)
    torch.testing.assert_close(torch.cov(x.T), g.source_cov, rtol=0, atol=0.05)
    ev = torch.linalg.eigvalsh(g.source_cov)
    assert ev.min() > 0.49 and ev.max() < 2.01
    ref = monge_map(g.source_mean, g.source_cov, g.target_mean, g.target_cov)
    pts = x[:100]
    torch.testing.assert_close(g.map(pts), ref(pts), rtol=1e-10, atol=1e-10)
    assert g.name == "gaussian" and g.dim == 8


@pytest.mark.parametrize("name", GROUND_TRUTH_MAPS)
def test_sample_pair_independent_and_reproducible(name):
    g = ground_truth_map(name, 4, seed=0)
    x, y = g.sample_pair(100, 60, seed=3, dtype=F64)
    assert x.shape == (100, 4) and y.shape == (60, 4)
    # y is T of the next 60 source draws from the same generator, not of x.
    gen = torch.Generator().manual_seed(3)
    x_ref = g.sample_source(100, generator=gen, dtype=F64)
    y_ref = g.map(g.sample_source(60, generator=gen, dtype=F64))
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    assert (g.map(x[:60]) - y).norm(dim=1).min() > 1e-3
    x2, y2 = g.sample_pair(100, 60, seed=3, dtype=F64)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, y3 = g.sample_pair(100, 60, seed=4, dtype=F64)
    assert not torch.allclose(x, x3) and not torch.allclose(y, y3)
    xs, ys = g.sample_pair(5, seed=9)
    assert xs.shape == ys.shape == (5, 4) and xs.dtype == ys.dtype == torch.float32
    torch.testing.assert_close(xs, g.sample_pair(5, seed=9, dtype=F64)[0].float())
    assert g.sample_pair(5, seed=9, device="meta")[0].device.type == "meta"
    assert g.sample_target(5, generator=1, device="meta").device.type == "meta"


@pytest.mark.parametrize("name", GROUND_TRUTH_MAPS)
def test_dtype_and_device(name):
    g = ground_truth_map(name, 8, seed=0)
    x64 = g.sample_source(50, seed=1, dtype=F64)
    x32 = g.sample_source(50, seed=1)
    assert x32.dtype == torch.float32
    torch.testing.assert_close(x32, x64.float())
    t32 = g.map(x32)
    assert t32.dtype == torch.float32
    torch.testing.assert_close(t32, g.map(x64).float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(g.sample_target(50, seed=1), g.map(x64).float())
    if torch.cuda.is_available():
        xc = g.sample_source(50, seed=1, device="cuda")
        assert xc.device.type == "cuda" and g.map(xc).device.type == "cuda"
        torch.testing.assert_close(g.map(xc).cpu(), t32, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("name", GROUND_TRUTH_MAPS)
def test_displacement_nontrivial_and_softplus_not_affine(name, d):
    for seed in (0, 1):
        g = ground_truth_map(name, d, seed=seed)
        x = g.sample_source(20_000, seed=seed + 10, dtype=F64)
        y = g.map(x)
        ratio = float((y - x).square().sum(1).mean() / (x - x.mean(0)).square().sum(1).mean())
        assert 0.1 < ratio < 10, ratio
        fit = _affine_fit_error(x, y)
        if name == "softplus":
            assert fit > 0.02, fit
        else:  # control: the fit detects an affine map
            assert fit < 1e-10, fit


def test_map_error():
    g = ground_truth_map("softplus", 8)
    t = g.map(g.sample_source(500, seed=0))
    assert map_error(t, t) == 0.0
    assert map_error(t.mean(0).expand_as(t), t) == pytest.approx(1.0, rel=1e-6)
    assert map_error(t + 1.0, t) > 0
    with pytest.raises(ValueError, match="predicted"):
        map_error(t[:10], t)
    with pytest.raises(ValueError, match="predicted"):
        map_error(t[:, :3], t)
    with pytest.raises(TypeError, match="truth"):
        map_error(t, t.numpy())
    bad = t.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="predicted"):
        map_error(bad, t)
    with pytest.raises(ValueError, match="truth"):
        map_error(t, t[:1].expand_as(t))


def test_bad_inputs():
    for dim in (0, -3):
        with pytest.raises(ValueError, match="dim"):
            ground_truth_map("gaussian", dim)
        with pytest.raises(ValueError, match="dim"):
            convex_potential_map(dim)
    for dim in (2.0, True, "2"):
        with pytest.raises(TypeError, match="dim"):
            gaussian_map(dim)
    with pytest.raises(ValueError, match="name"):
        ground_truth_map("banana", 2)
    with pytest.raises(ValueError, match="kind"):
        convex_potential_map(2, kind="relu")
    with pytest.raises(ValueError, match="ridges"):
        convex_potential_map(2, ridges=-1)
    with pytest.raises(ValueError, match="temperature"):
        convex_potential_map(2, temperature=0.0)
    with pytest.raises(TypeError, match="seed"):
        gaussian_map(2, seed=1.5)
    g = ground_truth_map("softplus", 3)
    with pytest.raises(ValueError, match="x"):
        g.map(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="x"):
        g.potential(torch.zeros(3))
    with pytest.raises(TypeError, match="x"):
        g.map(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="n"):
        g.sample_source(0)
    with pytest.raises(ValueError, match="m"):
        g.sample_pair(3, 0)
    with pytest.raises(ValueError, match="generator or seed"):
        g.sample_target(3, generator=1, seed=1)
    with pytest.raises(TypeError, match="dtype"):
        g.sample_source(3, dtype=torch.int64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.dim = 4
    assert isinstance(g, GroundTruthMap) and repr(g) == "GroundTruthMap(name='softplus', dim=3)"
