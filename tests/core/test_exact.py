"""otkit.emd (exact OT) against POT's ot.emd2 / ot.emd and scipy's linear_sum_assignment,
called directly on M = ½‖x − y‖² (otkit's cost convention) built by scipy."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import scipy.optimize
import torch
from scipy.spatial.distance import cdist

import otkit

F64, F32 = torch.float64, torch.float32


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def half_sqeuclidean(x, y) -> np.ndarray:
    return 0.5 * cdist(np64(x), np64(y), "sqeuclidean")


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_emd_matches_pot(make_clouds, dtype):
    x, y, a, b = make_clouds(23, 17, dtype=dtype)
    res = otkit.emd(x, y, a, b)
    assert res.converged
    assert res.coupling().dtype == dtype and res.f.dtype == dtype and res.f.shape == (23,)
    # the reference: POT on float64 copies of the same (rounded) inputs, M by scipy
    a64, b64 = np64(a), np64(b)
    a64, b64 = a64 / a64.sum(), b64 / b64.sum()
    C = half_sqeuclidean(x, y)
    expected = ot.emd2(a64, b64, C)
    rel = 1e-12 if dtype == F64 else 1e-6
    assert res.ot_cost().item() == pytest.approx(expected, rel=rel)
    plan = np64(res.coupling())
    assert float((plan * C).sum()) == pytest.approx(expected, rel=rel)
    # marginals
    np.testing.assert_allclose(plan.sum(1), a64, atol=1e-6 if dtype == F32 else 1e-12)
    np.testing.assert_allclose(plan.sum(0), b64, atol=1e-6 if dtype == F32 else 1e-12)
    # a vertex of the transport polytope: at most n + m − 1 non-zeros
    assert (plan > 0).sum() <= 23 + 17 - 1


def test_emd_dual_certificate(make_clouds):
    """f_i + g_j ≤ C_ij everywhere, = on the support, and ⟨f, a⟩ + ⟨g, b⟩ = ⟨P, C⟩."""
    x, y, a, b = make_clouds(23, 17)
    res = otkit.emd(x, y, a, b)
    C = half_sqeuclidean(x, y)
    slack = C - np64(res.f)[:, None] - np64(res.g)[None, :]
    assert slack.min() >= -1e-8
    support = np64(res.coupling()) > 0
    np.testing.assert_allclose(slack[support], 0.0, atol=1e-8)
    dual = float(np64(res.f) @ np64(a) + np64(res.g) @ np64(b))
    assert dual == pytest.approx(res.ot_cost().item(), rel=1e-10)


def test_emd_normalizes_weights_and_matches_assignment(make_clouds):
    """Uniform equal sizes: exact OT is an assignment (scipy's Hungarian algorithm)."""
    x, y, _, _ = make_clouds(30, 30, weights=False)
    C = half_sqeuclidean(x, y)
    rows, cols = scipy.optimize.linear_sum_assignment(C)
    res = otkit.emd(x, y, torch.full((30,), 7.0, dtype=F64), torch.ones(30, dtype=F64))
    torch.testing.assert_close(res.a, torch.full((30,), 1 / 30, dtype=F64))
    assert res.ot_cost().item() == pytest.approx(C[rows, cols].mean(), rel=1e-12)
    plan = np64(res.coupling())
    expected = np.zeros((30, 30))
    expected[rows, cols] = 1 / 30
    np.testing.assert_allclose(plan, expected, atol=1e-12)
    assert res.renormalized_entropy() == pytest.approx(0.0, abs=1e-9)
    # barycentric projection at the training points is the assignment
    assert (rows == np.arange(30)).all()
    torch.testing.assert_close(res.transport(), y[torch.from_numpy(cols)])
    torch.testing.assert_close(res.transport(x), res.transport())


def test_emd_other_costs(make_clouds):
    x, y, a, b = make_clouds(15, 12)
    an, bn = np64(a) / np64(a).sum(), np64(b) / np64(b).sum()
    res = otkit.emd(x, y, a, b, cost="euclidean")
    assert res.ot_cost().item() == pytest.approx(ot.emd2(an, bn, cdist(np64(x), np64(y))),
                                                 rel=1e-12)
    res = otkit.emd(x, y, a, b, cost="dot")
    assert res.ot_cost().item() == pytest.approx(ot.emd2(an, bn, -np64(x) @ np64(y).T),
                                                 rel=1e-12)


def test_emd_float32_far_from_origin(make_clouds):
    """float32 input far from the origin: emd goes through float64 and centred clouds."""
    x, y, a, b = make_clouds(20, 16, dtype=F32, shift=1000.0)
    res = otkit.emd(x, y, a, b)
    a64, b64 = np64(a) / np64(a).sum(), np64(b) / np64(b).sum()
    expected = ot.emd2(a64, b64, half_sqeuclidean(x, y))
    assert res.converged
    assert res.ot_cost().item() == pytest.approx(expected, rel=1e-3)


def test_emd_transport_refuses_new_points(make_clouds):
    x, y, a, b = make_clouds(10, 8)
    res = otkit.emd(x, y, a, b)
    P = res.coupling()
    torch.testing.assert_close(res.transport(), (P @ y) / P.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="out-of-sample"):
        res.transport(x + 1.0)


def test_emd_coupling_methods(make_clouds, generator):
    x, y, a, b = make_clouds(10, 8)
    res = otkit.emd(x, y, a, b)
    P = res.coupling()
    v = torch.randn(8, 3, dtype=F64, generator=generator)
    torch.testing.assert_close(res.apply(v), P @ v)
    u = torch.randn(10, dtype=F64, generator=generator)
    torch.testing.assert_close(res.apply(u, transpose=True), P.T @ u)
    row, col = res.marginals()
    torch.testing.assert_close(row, a)
    torch.testing.assert_close(col, b)
    assert res.marginal_error() < 1e-12
