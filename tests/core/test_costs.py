"""Ground costs against scipy, and the properties solvers rely on (translation invariance,
centring in float32, Dot ≡ SqEuclidean on a sphere, h, ∇h and ∇h* of c(x, y) = h(x − y))."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from scipy.spatial.distance import cdist

import otkit
from otkit.costs import Dot, Euclidean, SqEuclidean, TranslationInvariantCost, get_cost

F64, F32 = torch.float64, torch.float32


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def rel_plan_error(p, q) -> float:
    p, q = np64(p), np64(q) if isinstance(q, torch.Tensor) else q
    return float(np.abs(p - q).max() / np.abs(q).max())


@pytest.mark.parametrize("dtype,rtol", [(F64, 1e-12), (F32, 1e-5)], ids=["float64", "float32"])
def test_pairwise_matches_scipy(make_clouds, dtype, rtol):
    x, y, _, _ = make_clouds(31, 19, d=3, dtype=dtype)
    X, Y = np64(x), np64(y)
    scale = 0.5 * cdist(X, Y, "sqeuclidean").max()
    C = SqEuclidean().pairwise(x, y)
    assert C.shape == (31, 19) and C.dtype == dtype
    np.testing.assert_allclose(np64(C), 0.5 * cdist(X, Y, "sqeuclidean"), rtol=rtol,
                               atol=rtol * scale)
    np.testing.assert_allclose(np64(Euclidean().pairwise(x, y)), cdist(X, Y, "euclidean"),
                               rtol=rtol, atol=rtol * np.sqrt(scale))
    np.testing.assert_allclose(np64(Dot().pairwise(x, y)), -X @ Y.T, rtol=rtol,
                               atol=rtol * scale)
    # calling a cost is pairwise; names resolve to the classes
    torch.testing.assert_close(SqEuclidean()(x, y), C)
    assert isinstance(get_cost("sqeuclidean"), SqEuclidean)
    assert isinstance(get_cost("euclidean"), Euclidean)
    assert isinstance(get_cost("dot"), Dot)
    cost = Euclidean()
    assert get_cost(cost) is cost


def test_sqeuclidean_is_nonnegative_and_zero_on_the_diagonal(make_clouds):
    x, _, _, _ = make_clouds(50, 1, d=4, dtype=F32)
    C = SqEuclidean().pairwise(x, x)
    assert (C >= 0).all()
    assert C.diagonal().abs().max() < 1e-4


def test_blocks_cover_the_matrix(make_clouds):
    x, y, _, _ = make_clouds(23, 17)
    cost = SqEuclidean()
    full = cost.pairwise(x, y)
    pieces = list(cost.blocks(x, y, 5))
    assert [r.start for r, _ in pieces] == [0, 5, 10, 15, 20]
    torch.testing.assert_close(torch.cat([blk for _, blk in pieces]), full)


def test_sqeuclidean_translation_invariance_float64(make_clouds):
    x, y, a, b = make_clouds(23, 17)
    res = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.1, tol=1e-10)
    far = otkit.sinkhorn(x + 1000, y + 1000, a, b, relative_epsilon=0.1, tol=1e-10)
    assert far.epsilon == pytest.approx(res.epsilon, rel=1e-9)
    assert rel_plan_error(far.coupling(), res.coupling()) <= 1e-8
    assert far.ot_cost().item() == pytest.approx(res.ot_cost().item(), rel=1e-9)
    torch.testing.assert_close(far.f - far.f.mean(), res.f - res.f.mean(), rtol=0, atol=1e-8)
    # the entropic map moves with the clouds
    xs = x[:5] + 0.1
    torch.testing.assert_close(far.transport(xs + 1000), res.transport(xs) + 1000, rtol=0,
                               atol=1e-8)
    exact, exact_far = otkit.emd(x, y, a, b), otkit.emd(x + 1000, y + 1000, a, b)
    assert exact_far.ot_cost().item() == pytest.approx(exact.ot_cost().item(), rel=1e-9)


@pytest.mark.parametrize("shift", [1000.0, -3000.0])
def test_float32_far_from_origin_stays_accurate(make_clouds, shift):
    """float32 clouds at |x| ~ 1000: the expansion ½‖x‖² + ½‖y‖² − ⟨x, y⟩ alone would lose
    every digit (½‖x‖² ~ 1e6, float32 ulp ~ 0.06); centring keeps the plan accurate.

    The reference is POT in float64 on the same float32 points (their rounding at 1000 is
    ~6e-5, so the problem itself is what float32 can represent)."""
    x, y, a, b = make_clouds(23, 17, dtype=F32, shift=shift)
    res = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.1, tol=1e-5)
    C = 0.5 * cdist(np64(x), np64(y), "sqeuclidean")
    # the cost matrix the solver sees
    np.testing.assert_allclose(np64(res.geometry.dense()), C, rtol=1e-4, atol=1e-4 * C.max())
    assert res.epsilon == pytest.approx(0.1 * C.std(ddof=1), rel=1e-4)
    a64, b64 = np64(a) / np64(a).sum(), np64(b) / np64(b).sum()  # exactly equal masses
    P = ot.bregman.sinkhorn_log(a64, b64, C, res.epsilon, stopThr=1e-13, numItermax=100_000)
    assert rel_plan_error(res.coupling(), P) <= 1e-3
    assert res.ot_cost().item() == pytest.approx(float((P * C).sum()), rel=1e-3)
    # the entropic map too
    out = res.transport(x[:4])
    P_rows = P[:4] / P[:4].sum(1, keepdims=True)
    np.testing.assert_allclose(np64(out), P_rows @ np64(y), rtol=0, atol=1e-2)


def test_dot_equals_sqeuclidean_on_a_sphere(make_clouds):
    """On the unit sphere ½‖x − y‖² = 1 − ⟨x, y⟩: the same plan at the same ε."""
    x, y, a, b = make_clouds(23, 17, d=3)
    x = x / x.norm(dim=1, keepdim=True)
    y = y / y.norm(dim=1, keepdim=True)
    sq = otkit.sinkhorn(x, y, a, b, cost="sqeuclidean", epsilon=0.05, tol=1e-10)
    dot = otkit.sinkhorn(x, y, a, b, cost="dot", epsilon=0.05, tol=1e-10)
    assert rel_plan_error(dot.coupling(), sq.coupling()) <= 1e-7
    # the dot plan against POT on −⟨x, y⟩
    P = ot.bregman.sinkhorn_log(np64(a), np64(b), -np64(x) @ np64(y).T, 0.05, stopThr=1e-14)
    assert rel_plan_error(dot.coupling(), P) <= 1e-7
    # relative ε: the two cost matrices have the same std, so the same ε
    assert otkit.sinkhorn(x, y, a, b, cost="dot").epsilon == pytest.approx(
        otkit.sinkhorn(x, y, a, b).epsilon, rel=1e-9
    )
    torch.testing.assert_close(dot.transport(x), sq.transport(x), rtol=1e-7, atol=1e-7)


def test_dot_and_sqeuclidean_differ_only_by_separable_terms(make_clouds):
    """Off the sphere ½‖x − y‖² = −⟨x, y⟩ + ½‖x‖² + ½‖y‖² still: at one absolute ε the plans
    agree (the potentials absorb ½‖x‖², ½‖y‖²), but the relative ε differs (std(C) does),
    and so does the plan at one relative ε: the sphere test above can fail."""
    x, y, a, b = make_clouds(23, 17, d=3)
    sq = otkit.sinkhorn(x, y, a, b, cost="sqeuclidean", epsilon=0.5, tol=1e-9)
    dot = otkit.sinkhorn(x, y, a, b, cost="dot", epsilon=0.5, tol=1e-9)
    assert rel_plan_error(dot.coupling(), sq.coupling()) <= 1e-7
    half_sq = 0.5 * (np64(x) ** 2).sum(1)
    np.testing.assert_allclose(np64(dot.f - dot.f.mean()),
                               np64(sq.f - sq.f.mean()) - (half_sq - half_sq.mean()), atol=1e-7)
    sq_rel = otkit.sinkhorn(x, y, a, b, cost="sqeuclidean", relative_epsilon=0.05, tol=1e-8)
    dot_rel = otkit.sinkhorn(x, y, a, b, cost="dot", relative_epsilon=0.05, tol=1e-8)
    assert dot_rel.epsilon != pytest.approx(sq_rel.epsilon, rel=1e-2)
    assert rel_plan_error(dot_rel.coupling(), sq_rel.coupling()) > 1e-2


@pytest.mark.parametrize("backend", ["torch", "geomloss", "pot"])
def test_euclidean_cost_sinkhorn_against_pot(make_clouds, backend):
    """cost='euclidean' (GeomLoss p=1): every backend matches POT on M = ‖x − y‖."""
    x, y, a, b = make_clouds(23, 17)
    res = otkit.sinkhorn(x, y, a, b, cost="euclidean", relative_epsilon=0.1, tol=1e-9,
                         backend=backend)
    assert res.converged
    P = ot.bregman.sinkhorn_log(np64(a), np64(b), cdist(np64(x), np64(y)), res.epsilon,
                                stopThr=1e-14, numItermax=100_000)
    assert rel_plan_error(res.coupling(), P) <= 1e-6


def test_sqeuclidean_is_translation_invariant_with_h_grad_h_and_conjugate(make_clouds):
    """½‖·‖² as h(x − y): h = ½‖z‖², ∇h = z, ∇h*(∇h(z)) = z, ∇h linear; Euclidean and Dot
    have no invertible ∇h and stay plain costs (barycentric maps)."""
    cost = SqEuclidean()
    assert isinstance(cost, TranslationInvariantCost) and cost.linear_gradient
    assert cost.symmetric and cost.translation_invariant
    assert not isinstance(Euclidean(), TranslationInvariantCost)
    assert Euclidean().translation_invariant  # its clouds may still be centred
    assert not isinstance(Dot(), TranslationInvariantCost)
    z = torch.randn(6, 5, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(cost.h(z), 0.5 * (z * z).sum(-1))
    torch.testing.assert_close(cost.grad_h(z), z)
    torch.testing.assert_close(cost.grad_h_conjugate(cost.grad_h(z)), z)
    value, grad = cost.h_and_grad_h(z)
    torch.testing.assert_close(value, cost.h(z))
    torch.testing.assert_close(grad, z)
    # the matrix-product pairwise is h on every difference
    x, y, _, _ = make_clouds(9, 7, d=3)
    torch.testing.assert_close(cost.pairwise(x, y), cost.h(x[:, None, :] - y[None, :, :]))


def test_translation_invariant_base_defaults():
    """A subclass giving only h, ∇h and ∇h*: pairwise is h on bands of differences (here
    h(z) = ¼‖z‖⁴, whose gradient ‖z‖²z is inverted by w/‖w‖^{2/3})."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Quartic(TranslationInvariantCost):
        def h(self, z):
            return 0.25 * (z * z).sum(-1) ** 2

        def grad_h(self, z):
            return (z * z).sum(-1, keepdim=True) * z

        def grad_h_conjugate(self, w):
            norm = w.norm(dim=-1, keepdim=True)
            return w / norm.clamp_min(1e-300) ** (2.0 / 3.0)

    cost = Quartic()
    assert not cost.linear_gradient and not cost.symmetric and cost.translation_invariant
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(11, 4, dtype=F64, generator=gen), torch.randn(6, 4, dtype=F64, generator=gen)
    torch.testing.assert_close(cost.pairwise(x, y), cost.h(x[:, None] - y[None]))
    z = torch.randn(8, 4, dtype=F64, generator=gen)
    torch.testing.assert_close(cost.grad_h_conjugate(cost.grad_h(z)), z)
    value, grad = cost.h_and_grad_h(z)
    torch.testing.assert_close(value, cost.h(z))
    torch.testing.assert_close(grad, cost.grad_h(z))
    with pytest.raises(NotImplementedError):
        TranslationInvariantCost().h(z)
