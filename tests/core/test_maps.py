"""Entropic maps (otkit.maps) against dense references computed here from their definitions.

The references build the whole ``[k, m]`` score matrix and take one ``torch.softmax`` over it
(and the ``[k, m, d]`` differences for a non-linear ∇h), in float64. Two test costs of our own
have closed-form gradients and conjugates: h(z) = Σ cosh z_i − 1 (even, ∇h = sinh,
∇h* = asinh) and h(z) = Σ e^{z_i} − z_i − 1 (not even, ∇h = e^z − 1, ∇h* = log(1 + w)), so the
inverse map exercises the reflected cost h̃(z) = h(−z).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import otkit
from otkit import maps
from otkit.costs import Dot, Euclidean, SqEuclidean, TranslationInvariantCost

F64, F32 = torch.float64, torch.float32


@dataclass(frozen=True)
class Cosh(TranslationInvariantCost):
    """h(z) = Σ_i cosh(z_i) − 1: strictly convex, even, ∇h = sinh, ∇h* = asinh."""

    name = "cosh"
    symmetric = True

    def h(self, z):
        return (torch.cosh(z) - 1.0).sum(-1)

    def grad_h(self, z):
        return torch.sinh(z)

    def grad_h_conjugate(self, w):
        return torch.asinh(w)


@dataclass(frozen=True)
class ExpLinear(TranslationInvariantCost):
    """h(z) = Σ_i e^{z_i} − z_i − 1: strictly convex, not even; ∇h = e^z − 1, ∇h* = log(1 + w)."""

    name = "exp_linear"

    def h(self, z):
        return (torch.exp(z) - z - 1.0).sum(-1)

    def grad_h(self, z):
        return torch.expm1(z)

    def grad_h_conjugate(self, w):
        return torch.log1p(w)


def _solve(cost, make_clouds, n=30, m=25, d=3, **kw):
    x, y, a, b = make_clouds(n, m, d=d)
    x, y = 0.5 * x, 0.5 * y  # keeps e^{z} and cosh(z) of the test costs moderate
    return otkit.sinkhorn(x, y, a, b, cost=cost, relative_epsilon=0.1, tol=1e-10,
                          max_iter=20000, **kw)


def _dense_weights(res, points, inverse=False):
    """p_j(x) ∝ b_j exp((g_j − c(x, y_j))/ε) (p_i(y) ∝ a_i exp((f_i − c(x_i, y))/ε)), [k, m]."""
    if inverse:
        cost = res.cost.pairwise(res.x, points).T
        return torch.softmax(res.a.log() + (res.f - cost) / res.epsilon, dim=1)
    cost = res.cost.pairwise(points, res.y)
    return torch.softmax(res.b.log() + (res.g - cost) / res.epsilon, dim=1)


def _dense_map(res, points, inverse=False):
    """x − ∇h*(Σ_j p_j ∇h(x − y_j)); inverse: y + ∇h*(Σ_i p_i ∇h(x_i − y)) (module docstring
    of otkit.maps: ∇g_ε(y) = −Σ_i p_i ∇h(x_i − y) and x − y = ∇h*(−∇g(y)))."""
    cost, p = res.cost, _dense_weights(res, points, inverse)
    if inverse:
        diff = res.x[None, :, :] - points[:, None, :]
        return points + cost.grad_h_conjugate((p[:, :, None] * cost.grad_h(diff)).sum(1))
    diff = points[:, None, :] - res.y[None, :, :]
    return points - cost.grad_h_conjugate((p[:, :, None] * cost.grad_h(diff)).sum(1))


# --------------------------------------------------------------------------- ½‖·‖²


def test_sqeuclidean_map_is_the_barycentric_projection(make_clouds, eager_one_thread):
    """For h = ½‖·‖², x − ∇h*(Σ p_j ∇h(x − y_j)) = Σ p_j y_j, in float64 to rounding."""
    x, y, a, b = make_clouds(40, 35, d=4)
    res = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.05, tol=1e-10)
    x_new = torch.randn(17, 4, dtype=F64, generator=torch.Generator().manual_seed(1)) + 0.5
    expected = _dense_weights(res, x_new) @ y
    torch.testing.assert_close(res.transport(x_new), expected, rtol=1e-12, atol=1e-12)
    expected_inv = _dense_weights(res, x_new, inverse=True) @ x
    torch.testing.assert_close(res.inverse_transport(x_new), expected_inv, rtol=1e-12,
                               atol=1e-12)
    # the generic formula, straight from otkit.maps, without centring
    logits = res.b.log() + res.g / res.epsilon
    got = maps.entropic_map(SqEuclidean(), x_new, y, logits, res.epsilon)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    bary = maps.barycentric_projection(SqEuclidean(), x_new, y, logits, res.epsilon)
    torch.testing.assert_close(bary, expected, rtol=1e-12, atol=1e-12)


def test_sqeuclidean_mean_gradient_is_x_minus_barycentre(make_clouds):
    x, y, _, b = make_clouds(20, 30, d=3)
    g = torch.randn(30, dtype=F64, generator=torch.Generator().manual_seed(2))
    logits = b.log() + g / 0.3
    p = torch.softmax(logits - SqEuclidean().pairwise(x, y) / 0.3, dim=1)
    torch.testing.assert_close(maps.mean_gradient(SqEuclidean(), x, y, logits, 0.3), x - p @ y)


# --------------------------------------------------------------------------- other costs


@pytest.mark.parametrize("cost", [Cosh(), ExpLinear()], ids=["cosh", "exp_linear"])
def test_nonlinear_cost_map_equals_dense_reference(cost, make_clouds, eager_one_thread):
    res = _solve(cost, make_clouds)
    assert res.converged
    x_new = 0.5 * torch.randn(11, 3, dtype=F64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(res.transport(x_new), _dense_map(res, x_new))
    torch.testing.assert_close(res.inverse_transport(x_new), _dense_map(res, x_new, inverse=True))
    # the conjugate inverts the gradient, and the default pairwise is h on the differences
    z = torch.randn(7, 3, dtype=F64)
    torch.testing.assert_close(cost.grad_h_conjugate(cost.grad_h(z)), z)
    torch.testing.assert_close(cost.pairwise(res.x, res.y),
                               cost.h(res.x[:, None, :] - res.y[None, :, :]))


@pytest.mark.parametrize("cost", [Euclidean(), Dot()], ids=["euclidean", "dot"])
def test_other_costs_give_the_barycentric_projection(cost, make_clouds, eager_one_thread):
    """‖·‖ (no invertible gradient) and −⟨x, y⟩: transport is Σ_j p_j(x) y_j."""
    x, y, a, b = make_clouds(30, 25, d=3)
    res = otkit.sinkhorn(x, y, a, b, cost=cost, relative_epsilon=0.1, tol=1e-10)
    x_new = torch.randn(9, 3, dtype=F64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(res.transport(x_new), _dense_weights(res, x_new) @ y)
    torch.testing.assert_close(res.inverse_transport(x_new),
                               _dense_weights(res, x_new, inverse=True) @ x)
    for block in (1, 4):
        torch.testing.assert_close(res.transport(x_new, block_size=block),
                                   res.transport(x_new))


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("cost", [SqEuclidean(), Cosh(), ExpLinear(), Euclidean()],
                         ids=["sqeuclidean", "cosh", "exp_linear", "euclidean"])
def test_tiny_blocks_and_bands_equal_no_streaming(cost, make_clouds, eager_one_thread):
    """The online softmax over blocks of 1, 2, 7 targets and bands of 1, 3 points gives the
    one-block answer, forwards and backwards."""
    res = _solve(cost, make_clouds, n=23, m=19)
    x_new = 0.5 * torch.randn(10, 3, dtype=F64, generator=torch.Generator().manual_seed(5))
    logits = res.b.log() + res.g / res.epsilon
    whole = maps.transport(cost, x_new, res.y, logits, res.epsilon, block_size=10**6)
    torch.testing.assert_close(res.transport(x_new), whole)
    if isinstance(cost, TranslationInvariantCost):
        run = maps.entropic_map
    else:
        run = maps.barycentric_projection
    for block in (1, 2, 7):
        torch.testing.assert_close(res.transport(x_new, block_size=block), whole)
        for band in (1, 3):
            got = run(cost, x_new, res.y, logits, res.epsilon, block_size=block, band_size=band)
            torch.testing.assert_close(got, whole)
    inv = res.inverse_transport(x_new)
    for block in (1, 5):
        torch.testing.assert_close(res.inverse_transport(x_new, block_size=block), inv)


def test_streaming_survives_a_block_far_below_the_first():
    """A later block whose scores exceed the running maximum by ~1000 rescales the sums
    (e^{M − M'} underflows to 0) instead of overflowing."""
    points = torch.zeros(2, 1, dtype=F64)
    support = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=F64)
    logits = torch.tensor([0.0, 0.0, 1000.0, 1000.0], dtype=F64)
    got = maps.barycentric_projection(SqEuclidean(), points, support, logits, 1.0, block_size=1)
    ref = torch.softmax(logits - SqEuclidean().pairwise(points, support), dim=1) @ support
    torch.testing.assert_close(got, ref)
    assert torch.isfinite(got).all()


def test_float32_map_far_from_the_origin(make_clouds, eager_one_thread):
    """A float32 map at |x| ~ 1000 agrees with float64 on the same float32 points: h sees
    only differences (the ½‖·‖² expansion is tested in test_costs)."""
    x, y, a, b = make_clouds(30, 25, d=3)
    x, y, a, b = (t.float() for t in (0.5 * x + 1000.0, 0.5 * y + 1000.0, a, b))
    res = otkit.sinkhorn(x, y, a, b, cost=Cosh(), epsilon=0.5, tol=1e-5)
    a64, b64 = a.double() / a.double().sum(), b.double() / b.double().sum()  # equal masses
    res64 = otkit.sinkhorn(x.double(), y.double(), a64, b64, cost=Cosh(), epsilon=0.5,
                           tol=1e-10)
    assert res.converged and res64.converged
    x_new = x[:6] + 0.1
    torch.testing.assert_close(res.transport(x_new).double(), res64.transport(x_new.double()),
                               rtol=0, atol=2e-4)


@pytest.mark.parametrize("cost", [SqEuclidean(), Cosh(), Euclidean()],
                         ids=["sqeuclidean", "cosh", "euclidean"])
def test_maps_are_differentiable(cost, make_clouds):
    """Gradients through the streamed map (in the points, the support and the potential)
    equal those through the dense reference: the in-place steps and the running max keep
    autograd's graph intact."""
    x, y, _, b = make_clouds(9, 8, d=3)
    x, y = 0.5 * x, 0.5 * y
    g0 = 0.1 * torch.randn(8, dtype=F64, generator=torch.Generator().manual_seed(6))

    def grads(streamed):
        pts, sup = x.clone().requires_grad_(), y.clone().requires_grad_()
        g = g0.clone().requires_grad_()
        logits = b.log() + g / 0.7
        if streamed:
            out = maps.transport(cost, pts, sup, logits, 0.7, block_size=3)
        else:
            p = torch.softmax(logits - cost.pairwise(pts, sup) / 0.7, dim=1)
            if isinstance(cost, TranslationInvariantCost):
                diff = pts[:, None, :] - sup[None, :, :]
                out = pts - cost.grad_h_conjugate((p[:, :, None] * cost.grad_h(diff)).sum(1))
            else:
                out = p @ sup
        (out * torch.linspace(-1, 1, out.numel(), dtype=F64).view_as(out)).sum().backward()
        return pts.grad, sup.grad, g.grad

    for got, ref in zip(grads(True), grads(False)):
        torch.testing.assert_close(got, ref)


# --------------------------------------------------------------------------- errors


def test_errors(make_clouds, eager_one_thread):
    x, y, _, b = make_clouds(10, 12, d=2)
    logits = b.log()
    res = otkit.sinkhorn(x, y, relative_epsilon=0.2)
    with pytest.raises(ValueError, match="block_size"):
        res.transport(x, block_size=0)
    with pytest.raises(ValueError, match="x_new"):
        res.transport(torch.zeros(3, 5, dtype=F64))
    with pytest.raises(ValueError, match="y_new"):
        res.inverse_transport(torch.full((3, 2), float("nan"), dtype=F64))
    with pytest.raises(TypeError, match="TranslationInvariantCost"):
        maps.entropic_map(Euclidean(), x, y, logits, 0.1)
    with pytest.raises(TypeError, match="TranslationInvariantCost"):
        maps.mean_gradient(Dot(), x, y, logits, 0.1)
    with pytest.raises(ValueError, match="dimension"):
        maps.entropic_map(SqEuclidean(), x, y[:, :1], logits, 0.1)
    with pytest.raises(ValueError, match="logits"):
        maps.barycentric_projection(SqEuclidean(), x, y, logits[:5], 0.1)
    with pytest.raises(ValueError, match="epsilon"):
        maps.entropic_map(SqEuclidean(), x, y, logits, 0.0)
    with pytest.raises(ValueError, match="band_size"):
        maps.entropic_map(SqEuclidean(), x, y, logits, 0.1, band_size=0)
    with pytest.raises(ValueError, match="values"):
        maps.barycentric_projection(SqEuclidean(), x, y, logits, 0.1, values=x)
