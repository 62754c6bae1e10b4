"""Tests for otkit.gaussian: Gaussian OT closed forms checked against independent references.

References used (none of them is the code under test): the optimality condition of the
entropic coupling (its precision matrix), POT's log-domain Sinkhorn on fine grids, scipy's
``sqrtm``, the published formulas of Janati et al. (2020) typed in here independently, the
1-D and commuting closed forms, the envelope theorem, and Monte Carlo sampling.
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import contextmanager

import numpy as np
import ot
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from otkit.gaussian import (
    AffineMap,
    EntropicGaussianOT,
    entropic_ot,
    inv_sqrtm_psd,
    monge_map,
    random_spd,
    sample_gaussian,
    sqrtm_psd,
    w2_squared,
)

F64 = torch.float64


def _problem(d: int, seed: int, dtype: torch.dtype = F64, condition: float = 10.0):
    """A random pair of Gaussians in dimension d (means [d], SPD covariances [d, d])."""
    g = torch.Generator().manual_seed(seed)
    cov0 = random_spd(d, g, condition=condition, dtype=dtype)
    cov1 = random_spd(d, g, condition=condition, dtype=dtype)
    mean0 = torch.randn(d, generator=g, dtype=F64).to(dtype)
    mean1 = torch.randn(d, generator=g, dtype=F64).to(dtype)
    return mean0, cov0, mean1, cov1


@contextmanager
def _one_thread():
    """Run POT's small dense loops on one torch thread: on a loaded 2-core machine torch's
    intra-op thread pool can be 10-50x slower on 150 x 150 kernels than a single thread."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().to("cpu", F64).numpy()


def _scipy_sqrtm(s: np.ndarray) -> np.ndarray:
    r = scipy.linalg.sqrtm(s)
    return np.real(r)


# ------------------------------------------------------------------------------------------
# matrix square roots, test matrices, sampling
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5])
def test_sqrtm_against_scipy(d):
    s = random_spd(d, torch.Generator().manual_seed(d), condition=50.0, dtype=F64)
    r = sqrtm_psd(s)
    ri = inv_sqrtm_psd(s)
    np.testing.assert_allclose(_np(r), _scipy_sqrtm(_np(s)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(ri), np.linalg.inv(_scipy_sqrtm(_np(s))), rtol=1e-9, atol=1e-11)
    torch.testing.assert_close(r @ r, s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ri @ s @ ri, torch.eye(d, dtype=F64), rtol=1e-10, atol=1e-10)


def test_sqrtm_clamps_tiny_negative_eigenvalues():
    # rank-1 PSD matrix whose computed eigenvalues include round-off negatives
    v = torch.tensor([[1.0], [2.0], [3.0]], dtype=F64) / 3.0
    s = v @ v.T
    r = sqrtm_psd(s)
    assert torch.isfinite(r).all()
    torch.testing.assert_close(r @ r, s, rtol=0, atol=1e-12)
    assert torch.isfinite(inv_sqrtm_psd(s)).all()


@pytest.mark.parametrize("d,condition", [(1, 1.0), (3, 10.0), (6, 100.0)])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_random_spd(d, condition, dtype):
    s = random_spd(d, torch.Generator().manual_seed(0), condition=condition, dtype=dtype)
    assert s.shape == (d, d) and s.dtype == dtype
    assert torch.equal(s, s.T)
    lam = torch.linalg.eigvalsh(s.to(F64))
    assert lam.min() > 0
    assert lam.max() / lam.min() == pytest.approx(condition, rel=1e-4 if dtype == torch.float32 else 1e-9)
    s2 = random_spd(d, torch.Generator().manual_seed(0), condition=condition, dtype=dtype)
    assert torch.equal(s, s2)
    if d > 1:
        s3 = random_spd(d, torch.Generator().manual_seed(1), condition=condition, dtype=dtype)
        assert not torch.equal(s, s3)


def test_random_spd_bad_input():
    with pytest.raises(ValueError, match="condition"):
        random_spd(3, condition=0.5)
    with pytest.raises(ValueError, match="d must"):
        random_spd(0)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_sample_gaussian_moments_and_reproducibility(dtype):
    mean, cov, _, _ = _problem(3, seed=11, dtype=dtype)
    n = 100_000
    x = sample_gaussian(mean, cov, n, torch.Generator().manual_seed(5))
    assert x.shape == (n, 3) and x.dtype == dtype
    x2 = sample_gaussian(mean, cov, n, torch.Generator().manual_seed(5))
    assert torch.equal(x, x2)
    xd = x.to(F64)
    # standard errors: sqrt(var/n) ~ 0.007 for the mean, ~0.01 for covariance entries
    torch.testing.assert_close(xd.mean(0), mean.to(F64), rtol=0, atol=0.03)
    torch.testing.assert_close(torch.cov(xd.T), cov.to(F64), rtol=0, atol=0.06)


def test_sample_gaussian_singular_covariance():
    v = torch.tensor([[1.0], [-2.0]], dtype=F64)
    cov = v @ v.T  # rank 1: Cholesky fails, the eigh fallback must be used
    x = sample_gaussian(torch.zeros(2, dtype=F64), cov, 50_000, torch.Generator().manual_seed(0))
    # all samples lie on the line spanned by v
    assert (x @ torch.tensor([2.0, 1.0], dtype=F64)).abs().max() < 1e-10
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0, atol=0.1)


# ------------------------------------------------------------------------------------------
# W2 and the Monge map
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5, 8])
def test_w2_squared_against_scipy(d):
    mean0, cov0, mean1, cov1 = _problem(d, seed=100 + d)
    a, b = _np(cov0), _np(cov1)
    ra = _scipy_sqrtm(a)
    ref = (
        np.sum((_np(mean0) - _np(mean1)) ** 2)
        + np.trace(a)
        + np.trace(b)
        - 2 * np.trace(_scipy_sqrtm(ra @ b @ ra))
    )
    val = w2_squared(mean0, cov0, mean1, cov1)
    assert val.shape == ()
    assert float(val) == pytest.approx(ref, rel=1e-10)
    # symmetric in its arguments even though the formula is not written symmetrically
    assert float(w2_squared(mean1, cov1, mean0, cov0)) == pytest.approx(ref, rel=1e-10)


def test_w2_squared_special_cases():
    mean0, cov0, mean1, cov1 = _problem(4, seed=3)
    assert float(w2_squared(mean0, cov0, mean0, cov0)) == pytest.approx(0.0, abs=1e-12)
    # pure translation: ‖m0 − m1‖² (the convention is ‖x − y‖², not ½‖x − y‖²)
    assert float(w2_squared(mean0, cov0, mean1, cov0)) == pytest.approx(
        float((mean0 - mean1).square().sum()), rel=1e-10
    )
    # 1-D: (m0 − m1)² + (s0 − s1)²
    m0, m1 = torch.tensor([0.5], dtype=F64), torch.tensor([-1.0], dtype=F64)
    c0, c1 = torch.tensor([[4.0]], dtype=F64), torch.tensor([[0.25]], dtype=F64)
    assert float(w2_squared(m0, c0, m1, c1)) == pytest.approx(1.5**2 + (2.0 - 0.5) ** 2, rel=1e-12)
    # commuting covariances: ‖Σ0^½ − Σ1^½‖_F²
    c0 = torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=F64))
    c1 = torch.diag(torch.tensor([4.0, 1.0, 0.0], dtype=F64))  # singular target is allowed
    z = torch.zeros(3, dtype=F64)
    assert float(w2_squared(z, c0, z, c1)) == pytest.approx(1.0 + 1.0 + 9.0, rel=1e-12)


def test_w2_squared_matches_exact_ot_on_samples():
    """½ W2² is the OT cost for ½‖x − y‖²: compare with ot.emd on large samples (loosely)."""
    mean0, cov0, mean1, cov1 = _problem(2, seed=8)
    g = torch.Generator().manual_seed(0)
    n = 1000
    x = sample_gaussian(mean0, cov0, n, g)
    y = sample_gaussian(mean1, cov1, n, g)
    M = 0.5 * torch.cdist(x, y).square()
    w = np.full(n, 1.0 / n)
    cost = float(ot.emd2(w, w, _np(M)))
    # plug-in estimates with the sample moments remove most of the sampling noise
    ref = 0.5 * float(w2_squared(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T)))
    assert cost == pytest.approx(ref, rel=0.1)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_monge_map_pushes_forward(d):
    mean0, cov0, mean1, cov1 = _problem(d, seed=200 + d)
    T = monge_map(mean0, cov0, mean1, cov1)
    assert isinstance(T, AffineMap)
    A = T.matrix
    assert A.shape == (d, d) and T.offset.shape == (d,)
    torch.testing.assert_close(A, A.T, rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(A).min() > 0
    torch.testing.assert_close(A @ cov0 @ A.T, cov1, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(T(mean0[None]), mean1[None], rtol=1e-12, atol=1e-12)
    # against the formula evaluated with scipy
    r = _scipy_sqrtm(_np(cov0))
    ri = np.linalg.inv(r)
    A_ref = ri @ _scipy_sqrtm(r @ _np(cov1) @ r) @ ri
    np.testing.assert_allclose(_np(A), A_ref, rtol=1e-9, atol=1e-10)
    # __call__ on a batch is x @ Aᵀ + offset
    x = torch.randn(7, d, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(T(x), mean1 + (x - mean0) @ A.T)


def test_monge_map_cost_equals_half_w2():
    """E‖X − T(X)‖² under the source equals W2² (Monte Carlo)."""
    mean0, cov0, mean1, cov1 = _problem(3, seed=9)
    T = monge_map(mean0, cov0, mean1, cov1)
    x = sample_gaussian(mean0, cov0, 400_000, torch.Generator().manual_seed(2))
    mc = float((0.5 * (x - T(x)).square().sum(1)).mean())
    assert mc == pytest.approx(0.5 * float(w2_squared(mean0, cov0, mean1, cov1)), rel=0.02)


# ------------------------------------------------------------------------------------------
# entropic OT: optimality, limits, published formula, brute force
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("epsilon", [0.01, 0.1, 1.0, 10.0])
def test_entropic_precision_off_diagonal_block(d, epsilon):
    """Optimal coupling density ∝ exp((f(x) + g(y) − ½‖x − y‖²)/ε): precision block Λ_xy = −I/ε."""
    mean0, cov0, mean1, cov1 = _problem(d, seed=10 * d)
    res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
    S = res.coupling_covariance()
    assert S.shape == (2 * d, 2 * d)
    torch.testing.assert_close(S[:d, :d], cov0)
    torch.testing.assert_close(S[d:, d:], cov1)
    torch.testing.assert_close(S[:d, d:], res.cross_covariance)
    torch.testing.assert_close(S[d:, :d], res.cross_covariance.T)
    assert torch.linalg.eigvalsh(S).min() > 0
    P = torch.linalg.inv(S)
    torch.testing.assert_close(epsilon * P[:d, d:], -torch.eye(d, dtype=F64), rtol=0, atol=1e-6)
    torch.testing.assert_close(epsilon * P[d:, :d], -torch.eye(d, dtype=F64), rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    d=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    log10_eps=st.floats(-2.0, 2.0),
    condition=st.floats(1.0, 100.0),
)
def test_entropic_precision_property(d, seed, log10_eps, condition):
    """Same optimality identity over random dimensions, conditionings and ε (hypothesis)."""
    epsilon = 10.0**log10_eps
    mean0, cov0, mean1, cov1 = _problem(d, seed=seed, condition=condition)
    res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
    P = torch.linalg.inv(res.coupling_covariance())
    torch.testing.assert_close(epsilon * P[:d, d:], -torch.eye(d, dtype=F64), rtol=0, atol=1e-6)
    T = res.map().matrix
    assert torch.linalg.eigvalsh(T).min() > 0
    assert 0 < float(res.kl) and float(res.transport_cost) >= 0.5 * float(w2_squared(mean0, cov0, mean1, cov1)) - 1e-10


def _objective_of(cross, mean0, cov0, mean1, cov1, epsilon):
    """E[½‖X − Y‖²] + ε·MI for the Gaussian coupling with cross covariance `cross` (test-side)."""
    d = cov0.shape[0]
    S = torch.cat([torch.cat([cov0, cross], 1), torch.cat([cross.T, cov1], 1)], 0)
    cost = 0.5 * ((mean0 - mean1).square().sum() + cov0.trace() + cov1.trace() - 2 * cross.trace())
    mi = 0.5 * (torch.logdet(cov0) + torch.logdet(cov1) - torch.logdet(S))
    assert S.shape == (2 * d, 2 * d)
    return cost, mi, cost + epsilon * mi


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("epsilon", [0.05, 0.5, 3.0])
def test_entropic_objective_parts_and_minimality(d, epsilon):
    mean0, cov0, mean1, cov1 = _problem(d, seed=30 + d)
    res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
    assert isinstance(res, EntropicGaussianOT)
    assert res.epsilon == epsilon
    cost, mi, obj = _objective_of(res.cross_covariance, mean0, cov0, mean1, cov1, epsilon)
    assert float(res.transport_cost) == pytest.approx(float(cost), rel=1e-10)
    assert float(res.kl) == pytest.approx(float(mi), rel=1e-8)
    assert float(res.objective) == pytest.approx(float(res.transport_cost + epsilon * res.kl), rel=1e-12)
    assert float(res.objective) == pytest.approx(float(obj), rel=1e-9)
    # any admissible perturbation of the cross covariance increases the objective
    # (perturbations that leave the PSD cone are not couplings: their objective is +inf)
    g = torch.Generator().manual_seed(d)
    feasible = 0
    for _ in range(20):
        delta = torch.randn(d, d, generator=g, dtype=F64)
        for t in (1e-2, 1e-3, 1e-4):
            _, mi, o = _objective_of(res.cross_covariance + t * delta, mean0, cov0, mean1, cov1, epsilon)
            if torch.isnan(mi):
                continue
            feasible += 1
            assert float(o) > float(res.objective)
    assert feasible >= 20


@pytest.mark.parametrize("d", [1, 3])
def test_entropic_matches_janati_et_al(d):
    """Janati et al. 2020, Thm 1 (balanced): cost ‖x − y‖², regularization 2σ² KL(π|μ⊗ν).

    otkit's problem (½‖x − y‖² + ε KL) is one half of theirs with σ² = ε: same coupling,
    half the value. Their formulas are typed in here with scipy.
    """
    mean0, cov0, mean1, cov1 = _problem(d, seed=40 + d)
    a, b = _np(cov0), _np(cov1)
    ra = _scipy_sqrtm(a)
    for epsilon in (0.02, 0.7, 5.0):
        s2 = epsilon  # σ²
        D = _scipy_sqrtm(4 * ra @ b @ ra + s2**2 * np.eye(d))
        C_ref = 0.5 * (ra @ D @ np.linalg.inv(ra) - s2 * np.eye(d))
        value_ref = (
            np.sum((_np(mean0) - _np(mean1)) ** 2)
            + np.trace(a)
            + np.trace(b)
            - np.trace(D)
            + d * s2 * (1 - math.log(2 * s2))
            + s2 * np.linalg.slogdet(D + s2 * np.eye(d))[1]
        )
        res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
        np.testing.assert_allclose(_np(res.cross_covariance), C_ref, rtol=1e-8, atol=1e-10)
        assert float(res.objective) == pytest.approx(0.5 * value_ref, rel=1e-9)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_entropic_small_epsilon_limit(d):
    mean0, cov0, mean1, cov1 = _problem(d, seed=50 + d)
    A = monge_map(mean0, cov0, mean1, cov1).matrix
    half_w2 = 0.5 * float(w2_squared(mean0, cov0, mean1, cov1))
    errs = []
    for epsilon in (1e-2, 1e-3, 1e-4, 1e-5):
        res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
        err = float((res.cross_covariance - cov0 @ A).abs().max())
        errs.append(err)
        assert err <= 5 * epsilon * d
        assert float(res.transport_cost) == pytest.approx(half_w2, abs=5 * epsilon * d)
        assert float(res.transport_cost) >= half_w2 - 1e-12  # no coupling beats the OT plan
        torch.testing.assert_close(res.map().matrix, A, rtol=0, atol=20 * epsilon * d)
    assert errs[-1] < errs[0] / 100  # converges at rate ~ε
    # the objective tends to ½W2² too (ε·KL ~ ε log(1/ε) → 0)
    assert float(entropic_ot(mean0, cov0, mean1, cov1, 1e-8).objective) == pytest.approx(half_w2, abs=1e-5)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_entropic_large_epsilon_limit(d):
    mean0, cov0, mean1, cov1 = _problem(d, seed=60 + d)
    for epsilon in (1e2, 1e4, 1e6):
        res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
        # C = Σ0Σ1/ε + O(ε⁻³): the coupling tends to the independent one
        torch.testing.assert_close(epsilon * res.cross_covariance, cov0 @ cov1, rtol=0, atol=200 / epsilon**2)
        assert 0 < float(res.kl) < 50 / epsilon**2
        indep = 0.5 * float((mean0 - mean1).square().sum() + cov0.trace() + cov1.trace())
        assert float(res.transport_cost) == pytest.approx(indep, rel=50 / epsilon)
    # at huge ε the stable formulas must not lose the small KL to cancellation
    res = entropic_ot(mean0, cov0, mean1, cov1, 1e8)
    m = torch.linalg.eigvalsh(sqrtm_psd(cov0) @ cov1 @ sqrtm_psd(cov0))
    assert float(res.kl) == pytest.approx(float(m.sum()) / 1e16, rel=1e-6)  # KL ≈ tr(Σ0Σ1)/ε²


@pytest.mark.parametrize("d", [1, 3])
def test_entropic_envelope_theorem(d):
    """∂OT_ε/∂ε = KL(π_ε|μ⊗ν) and ∂OT_ε/∂m0 = m0 − m1 (derivatives at the optimum)."""
    mean0, cov0, mean1, cov1 = _problem(d, seed=70 + d)
    for epsilon in (0.1, 1.0):
        h = 1e-5 * epsilon
        up = entropic_ot(mean0, cov0, mean1, cov1, epsilon + h).objective
        down = entropic_ot(mean0, cov0, mean1, cov1, epsilon - h).objective
        fd = float(up - down) / (2 * h)
        assert fd == pytest.approx(float(entropic_ot(mean0, cov0, mean1, cov1, epsilon).kl), rel=1e-6)
        m0 = mean0.clone().requires_grad_(True)
        entropic_ot(m0, cov0, mean1, cov1, epsilon).objective.backward()
        torch.testing.assert_close(m0.grad, mean0 - mean1)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_entropic_map_is_conditional_mean(d):
    mean0, cov0, mean1, cov1 = _problem(d, seed=80 + d)
    res = entropic_ot(mean0, cov0, mean1, cov1, 0.3)
    T = res.map()
    ref = torch.linalg.solve(cov0, res.cross_covariance).T  # Cᵀ Σ0⁻¹
    torch.testing.assert_close(T.matrix, ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(T.matrix, T.matrix.T, rtol=0, atol=1e-12)
    assert torch.linalg.eigvalsh(T.matrix).min() > 0
    torch.testing.assert_close(T(mean0[None])[0], mean1)
    x = torch.randn(4, d, dtype=F64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.transport(x), T(x))
    # Monte Carlo: regress Y on X over samples of the coupling
    xs, ys = res.sample_pairs(100_000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.cov(torch.cat([xs, ys], 1).T), res.coupling_covariance(), rtol=0, atol=0.08)
    xc, yc = xs - xs.mean(0), ys - ys.mean(0)
    B = torch.linalg.lstsq(xc, yc).solution.T
    torch.testing.assert_close(B, T.matrix, rtol=0, atol=0.05)


def _grid_1d(m: float, v: float, n: int, width: float = 6.0):
    x = torch.linspace(m - width * math.sqrt(v), m + width * math.sqrt(v), n, dtype=F64)
    w = torch.exp(-((x - m) ** 2) / (2 * v))
    return x, w / w.sum()


@pytest.mark.parametrize(
    "m0,v0,m1,v1,epsilon",
    [(0.3, 1.0, -0.5, 2.5, 0.1), (0.3, 1.0, -0.5, 2.5, 0.5), (0.0, 0.5, 1.0, 1.5, 2.0), (0.0, 2.0, 0.0, 0.3, 0.2)],
)
def test_entropic_1d_against_pot_sinkhorn(m0, v0, m1, v1, epsilon):
    """Brute force: POT's sinkhorn_log on grids, M = ½(x − y)², reg = ε (KL to a⊗b)."""
    x, a = _grid_1d(m0, v0, 150)
    y, b = _grid_1d(m1, v1, 150)
    M = 0.5 * (x[:, None] - y[None, :]) ** 2
    with _one_thread():
        P = ot.bregman.sinkhorn_log(a, b, M, epsilon, numItermax=20_000, stopThr=1e-12)
    assert float((P.sum(1) - a).abs().sum()) < 1e-9
    cost = float((P * M).sum())
    ex, ey = float(a @ x), float(b @ y)
    cross = float(((x - ex)[:, None] * (y - ey)[None, :] * P).sum())
    mask = P > 0
    kl = float((P[mask] * torch.log(P[mask] / (a[:, None] * b[None, :])[mask])).sum())
    res = entropic_ot(
        torch.tensor([m0], dtype=F64), torch.tensor([[v0]], dtype=F64),
        torch.tensor([m1], dtype=F64), torch.tensor([[v1]], dtype=F64), epsilon,
    )
    assert float(res.transport_cost) == pytest.approx(cost, rel=1e-5)
    assert float(res.cross_covariance[0, 0]) == pytest.approx(cross, rel=1e-5)
    assert float(res.kl) == pytest.approx(kl, rel=1e-5)
    assert float(res.objective) == pytest.approx(cost + epsilon * kl, rel=1e-5)
    # entropic map = barycentric projection of the discrete plan, away from the grid's ends
    central = (x - m0).abs() < 3 * math.sqrt(v0)
    bary = (P @ y) / P.sum(1)
    torch.testing.assert_close(res.transport(x[central, None])[:, 0], bary[central], rtol=0, atol=1e-5)


def test_entropic_2d_against_pot_sinkhorn():
    """Brute force in 2-D (non-commuting covariances, so C vs Cᵀ and product order matter)."""
    g = torch.Generator().manual_seed(3)
    cov0 = random_spd(2, g, condition=4.0, dtype=F64)
    cov1 = random_spd(2, g, condition=4.0, dtype=F64)
    assert float((cov0 @ cov1 - cov1 @ cov0).abs().max()) > 0.1
    mean0 = torch.tensor([0.2, -0.1], dtype=F64)
    mean1 = torch.tensor([-0.3, 0.4], dtype=F64)

    def grid(m, S, k=24, width=5.5):
        sd = S.diagonal().sqrt()
        axes = [torch.linspace(float(m[i] - width * sd[i]), float(m[i] + width * sd[i]), k, dtype=F64) for i in range(2)]
        X = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        z = X - m
        logp = -0.5 * (z @ torch.linalg.inv(S) * z).sum(1)
        w = torch.exp(logp - logp.max())
        return X, w / w.sum()

    x, a = grid(mean0, cov0)
    y, b = grid(mean1, cov1)
    M = 0.5 * torch.cdist(x, y).square()
    epsilon = 0.5
    with _one_thread():
        P = ot.bregman.sinkhorn_log(a, b, M, epsilon, numItermax=5_000, stopThr=1e-11)
    cost = float((P * M).sum())
    C = (x - a @ x).T @ P @ (y - b @ y)
    res = entropic_ot(mean0, cov0, mean1, cov1, epsilon)
    assert float(res.transport_cost) == pytest.approx(cost, rel=1e-5)
    torch.testing.assert_close(res.cross_covariance, C, rtol=0, atol=1e-5)
    # the transposed cross covariance would be visibly wrong here
    assert float((res.cross_covariance - res.cross_covariance.T).abs().max()) > 1e-2


# ------------------------------------------------------------------------------------------
# dtypes, devices, singular covariances
# ------------------------------------------------------------------------------------------


_DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")],
    ),
]


@pytest.mark.parametrize("device", _DEVICES)
def test_float32_matches_float64_and_keeps_dtype_device(device):
    mean0, cov0, mean1, cov1 = _problem(4, seed=90)
    args32 = [t.to(device, torch.float32) for t in (mean0, cov0, mean1, cov1)]
    res64 = entropic_ot(mean0, cov0, mean1, cov1, 0.2)
    res32 = entropic_ot(*args32, 0.2)
    for t in (res32.cross_covariance, res32.transport_cost, res32.kl, res32.objective, res32.map().matrix):
        assert t.dtype == torch.float32 and t.device.type == device
    torch.testing.assert_close(res32.cross_covariance.cpu().double(), res64.cross_covariance, rtol=0, atol=1e-4)
    assert float(res32.objective) == pytest.approx(float(res64.objective), rel=1e-4)
    w32 = w2_squared(*args32)
    assert w32.dtype == torch.float32 and w32.device.type == device
    assert float(w32) == pytest.approx(float(w2_squared(mean0, cov0, mean1, cov1)), rel=1e-4)
    T32 = monge_map(*args32)
    assert T32.matrix.dtype == torch.float32 and T32.offset.device.type == device
    torch.testing.assert_close(T32.matrix.cpu().double(), monge_map(mean0, cov0, mean1, cov1).matrix, rtol=0, atol=1e-4)
    x = sample_gaussian(args32[0], args32[1], 10)
    assert x.dtype == torch.float32 and x.device.type == device


def test_entropic_singular_target_covariance():
    """A degenerate target (PSD, not PD) is allowed; the result must stay finite and optimal."""
    mean0, cov0, _, _ = _problem(3, seed=12)
    v = torch.tensor([[1.0], [0.5], [-1.0]], dtype=F64)
    cov1 = v @ v.T
    mean1 = torch.zeros(3, dtype=F64)
    res = entropic_ot(mean0, cov0, mean1, cov1, 0.3)
    for t in (res.cross_covariance, res.kl, res.objective):
        assert torch.isfinite(t).all()
    # the coupling's covariance is PSD with the right marginals
    assert torch.linalg.eigvalsh(res.coupling_covariance()).min() > -1e-10
    # entropic map sends everything into the target's support (the span of v)
    T = res.map()
    ortho = torch.linalg.svd(torch.eye(3, dtype=F64) - v @ v.T / (v.T @ v)).U[:, :2]
    assert float((T.matrix.T @ ortho).abs().max()) < 1e-8


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------

_m, _c, _m1, _c1 = _problem(2, seed=1)


@pytest.mark.parametrize("fn", ["w2", "monge", "entropic"])
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(cov0=torch.ones(2, 3, dtype=F64)), ValueError, "cov0"),
        (dict(cov0=torch.eye(4, dtype=F64).reshape(2, 2, 4)), ValueError, "cov0"),
        (dict(cov1=torch.eye(3, dtype=F64)), ValueError, "cov1"),
        (dict(mean0=torch.zeros(3, dtype=F64)), ValueError, "mean0"),
        (dict(mean1=torch.zeros(1, dtype=F64)), ValueError, "mean1"),
        (dict(mean1=torch.zeros(2, 1, dtype=F64)), ValueError, "mean1"),
        (dict(cov0=torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64)), ValueError, "cov0 must be symmetric"),
        (dict(cov1=torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64)), ValueError, "cov1 must be positive semi-definite"),
        (dict(cov1=torch.tensor([[1.0, float("nan")], [float("nan"), 1.0]], dtype=F64)), ValueError, "cov1 contains NaN"),
        (dict(mean0=torch.tensor([0.0, float("inf")], dtype=F64)), ValueError, "mean0 contains NaN"),
        (dict(cov0=[[1.0, 0.0], [0.0, 1.0]]), TypeError, "cov0 must be a torch.Tensor"),
        (dict(cov1=torch.eye(2, dtype=torch.int64)), TypeError, "cov1"),
        (dict(mean1=torch.zeros(2, dtype=torch.float32)), TypeError, "mean1"),
    ],
)
def test_bad_gaussian_input(fn, kwargs, exc, match):
    args = dict(mean0=_m, cov0=_c, mean1=_m1, cov1=_c1)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        if fn == "w2":
            w2_squared(**args)
        elif fn == "monge":
            monge_map(**args)
        else:
            entropic_ot(**args, epsilon=0.1)


@pytest.mark.parametrize("epsilon", [0.0, -1.0, float("nan"), float("inf"), torch.tensor(-0.5)])
def test_bad_epsilon(epsilon):
    with pytest.raises(ValueError, match="epsilon"):
        entropic_ot(_m, _c, _m1, _c1, epsilon)


def test_epsilon_as_tensor_is_accepted():
    a = entropic_ot(_m, _c, _m1, _c1, torch.tensor(0.25))
    b = entropic_ot(_m, _c, _m1, _c1, 0.25)
    assert a.epsilon == 0.25 and torch.equal(a.objective, b.objective)


def test_singular_source_rejected_where_an_inverse_is_needed():
    cov0 = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=F64)
    with pytest.raises(ValueError, match="cov0 must be positive definite"):
        monge_map(_m, cov0, _m1, _c1)
    res = entropic_ot(_m, cov0, _m1, _c1, 0.1)  # fine without the map
    assert torch.isfinite(res.objective)
    with pytest.raises(ValueError, match="cov0 must be positive definite"):
        res.map()
    assert float(w2_squared(_m, cov0, _m1, _c1)) > 0


def test_results_are_frozen():
    res = entropic_ot(_m, _c, _m1, _c1, 0.1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.epsilon = 1.0  # type: ignore[misc]
    T = monge_map(_m, _c, _m1, _c1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        T.matrix = torch.eye(2)  # type: ignore[misc]
    with pytest.raises(ValueError, match="dimension"):
        T(torch.zeros(3, 3, dtype=F64))
