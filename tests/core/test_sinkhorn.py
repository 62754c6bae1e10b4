"""otkit.sinkhorn against references nobody here wrote.

References: POT (``ot.bregman.sinkhorn_log``, ``ot.unbalanced.sinkhorn_stabilized_unbalanced``,
``ot.unbalanced.sinkhorn_unbalanced``, ``ot.emd2``), GeomLoss (through its backend), scipy
(``cdist``, ``chisquare``, ``sqrtm``, ``entropy``) and closed forms (Gaussian Monge map,
independent coupling).

Conventions checked along the way: otkit's squared Euclidean cost is ½‖x − y‖² and its ε is
POT's ``reg`` on that cost; potentials are in cost units with
P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε); τ = ρ/(ρ + ε).

Tolerances. float64 solves use ``tol=1e-8`` (L1 marginal error); the plan is then accurate to
about 1e-8 relative to its largest entry, and we ask 1e-6 of every comparison. float32 solves
use ``tol=1e-5``: float32 has 2^-24 ≈ 6e-8 resolution, exponents (f + g − C)/ε reach tens, so
each plan entry carries ~1e-6 relative rounding, and the solvers differ in summation order
and stopping point; we ask 5e-4 relative on the plan (potentials: 5e-4·ε) — loose enough for
rounding, and still 1000 times tighter than any convention mistake (a factor 2 on the cost or
ε changes the plan by O(1)).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import ot
import pytest
import scipy.linalg
import scipy.special
import scipy.stats
import torch
from scipy.spatial.distance import cdist

import otkit
from otkit import ConvergenceWarning

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

F64, F32 = torch.float64, torch.float32
DTYPES = [pytest.param(F64, id="float64"), pytest.param(F32, id="float32")]
TOL = {F64: 1e-8, F32: 1e-5}
RTOL = {F64: 1e-6, F32: 5e-4}
N, M = 23, 17  # uneven sizes everywhere


# --------------------------------------------------------------------------- helpers


def np64(t) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t.astype(np.float64)
    return t.detach().cpu().double().numpy()


def half_sqeuclidean(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The reference cost ½‖x − y‖², float64, by scipy."""
    return 0.5 * cdist(np64(x), np64(y), "sqeuclidean")


def rel_plan_error(p, q) -> float:
    """max |P − Q| / max |Q| (both as float64 numpy)."""
    p = np64(p) if isinstance(p, torch.Tensor) else p
    q = np64(q) if isinstance(q, torch.Tensor) else q
    return float(np.abs(p - q).max() / np.abs(q).max())


def rho(epsilon: float, tau: float) -> float:
    return epsilon * tau / (1.0 - tau)


def solve(*args, **kwargs):
    """otkit.sinkhorn that fails the test on a ConvergenceWarning unless told otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return otkit.sinkhorn(*args, **kwargs)


def assert_potentials_close(res, ref, atol: float, balanced: bool) -> None:
    """f, g equal up to the balanced problem's one free constant: (f + c, g − c)."""
    df = np64(res.f) - np64(ref.f)
    dg = np64(res.g) - np64(ref.g)
    shift = df.mean()
    assert np.abs(df - shift).max() <= atol
    assert np.abs(dg + shift).max() <= atol
    if not balanced:  # unbalanced potentials are unique
        assert abs(shift) <= atol


def pot_unbalanced_plan(a, b, C, epsilon, tau_a, tau_b):
    """POT's plain (scaling-domain) unbalanced Sinkhorn, iterated to machine precision."""
    reg_m = (
        rho(epsilon, tau_a) if tau_a < 1 else float("inf"),
        rho(epsilon, tau_b) if tau_b < 1 else float("inf"),
    )
    return ot.unbalanced.sinkhorn_unbalanced(
        np64(a), np64(b), C, epsilon, reg_m, reg_type="kl", method="sinkhorn",
        numItermax=200_000, stopThr=1e-15,
    )


def primal_reference(P, C, a, b, epsilon, rho_a, rho_b) -> float:
    """⟨P, C⟩ + ε KL(P | a⊗b) + ρ_a KL(P1 | a) + ρ_b KL(Pᵀ1 | b), generalized KL, numpy."""

    def kl(p, q):
        return float(np.sum(scipy.special.xlogy(p, p / q) - p + q))

    value = float((P * C).sum()) + epsilon * kl(P, np.outer(a, b))
    if math.isfinite(rho_a):
        value += rho_a * kl(P.sum(1), a)
    if math.isfinite(rho_b):
        value += rho_b * kl(P.sum(0), b)
    return value


# --------------------------------------------------------------------- 1. backends


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tau", [1.0, 0.9, 0.5], ids=["balanced", "tau0.9", "tau0.5"])
def test_backends_agree(make_clouds, dtype, tau):
    """torch, geomloss and pot backends: same plan, cost and potentials, and equal to POT
    called directly on M = ½‖x − y‖² with reg = result.epsilon."""
    x, y, a, b = make_clouds(N, M, dtype=dtype)
    results = {
        backend: solve(
            x, y, a, b, relative_epsilon=0.1, tau_a=tau, tau_b=tau, tol=TOL[dtype],
            backend=backend, max_iter=20_000,
        )
        for backend in ("torch", "geomloss", "pot")
    }
    ref = results["torch"]
    plan_ref = ref.coupling()
    for backend, res in results.items():
        assert res.backend == backend
        assert res.converged
        assert res.f.dtype == dtype and res.g.dtype == dtype and res.f.shape == (N,)
        assert res.epsilon == ref.epsilon
        assert rel_plan_error(res.coupling(), plan_ref) <= RTOL[dtype], backend
        assert res.ot_cost().item() == pytest.approx(ref.ot_cost().item(), rel=RTOL[dtype])
        assert_potentials_close(res, ref, RTOL[dtype] * ref.epsilon, balanced=tau == 1.0)

    # Independent references, in float64 on the (rounded) inputs.
    # (float32 weights summing to 1 ± 1e-8 are renormalized, or POT's balanced solver could
    # not converge: its masses must be equal.)
    C = half_sqeuclidean(x, y)
    eps = ref.epsilon
    a64, b64 = np64(a) / np64(a).sum(), np64(b) / np64(b).sum()
    if tau == 1.0:
        P = ot.bregman.sinkhorn_log(a64, b64, C, eps, numItermax=100_000, stopThr=1e-14)
    else:
        P = ot.unbalanced.sinkhorn_stabilized_unbalanced(
            a64, b64, C, eps, rho(eps, tau), reg_type="kl", numItermax=100_000, stopThr=1e-14,
        )
        assert rel_plan_error(pot_unbalanced_plan(a64, b64, C, eps, tau, tau), P) < 1e-9
    for backend, res in results.items():
        assert rel_plan_error(res.coupling(), P) <= RTOL[dtype], backend


@pytest.mark.parametrize("taus", [(1.0, 0.8), (0.6, 1.0), (0.9, 0.5)])
def test_torch_and_pot_agree_with_different_taus(make_clouds, taus):
    """tau_a ≠ tau_b (GeomLoss has one reach; POT and otkit take two), against POT's
    plain unbalanced solver."""
    x, y, a, b = make_clouds(N, M)
    tau_a, tau_b = taus
    res = solve(x, y, a, b, relative_epsilon=0.1, tau_a=tau_a, tau_b=tau_b, tol=1e-10)
    res_pot = solve(
        x, y, a, b, relative_epsilon=0.1, tau_a=tau_a, tau_b=tau_b, tol=1e-10, backend="pot"
    )
    P = pot_unbalanced_plan(a, b, half_sqeuclidean(x, y), res.epsilon, tau_a, tau_b)
    assert rel_plan_error(res.coupling(), P) <= 1e-6
    assert rel_plan_error(res_pot.coupling(), P) <= 1e-6
    with pytest.raises(ValueError, match="tau_a == tau_b"):
        otkit.sinkhorn(x, y, a, b, tau_a=tau_a, tau_b=tau_b, backend="geomloss")


def test_sinkhorn_log_reference_with_unnormalized_masses(make_clouds):
    """Balanced with both masses 3: otkit keeps the masses, as POT does."""
    x, y, a, b = make_clouds(N, M)
    res = solve(x, y, 3 * a, 3 * b, relative_epsilon=0.1, tol=1e-9)
    P = ot.bregman.sinkhorn_log(
        np64(3 * a), np64(3 * b), half_sqeuclidean(x, y), res.epsilon, stopThr=1e-14,
        numItermax=100_000,
    )
    assert rel_plan_error(res.coupling(), P) <= 1e-6
    row, col = res.marginals()
    torch.testing.assert_close(row, 3 * a, rtol=0, atol=1e-8)
    torch.testing.assert_close(col, 3 * b, rtol=0, atol=1e-8)


@pytest.mark.parametrize("tau", [0.9, 0.99])
def test_pot_backend_unbalanced_small_epsilon(make_clouds, tau):
    """backend='pot' at a small ε with weak relaxation must still give the unbalanced plan.

    POT's ``sinkhorn_stabilized_unbalanced`` (what the pot backend calls) breaks down here
    (its absorption step), returning a plan whose mass is off by orders of magnitude; otkit's
    torch backend and POT's plain ``sinkhorn_unbalanced`` agree with each other.
    """
    x, y, a, b = make_clouds(N, M)
    ref = solve(x, y, a, b, relative_epsilon=0.02, tau_a=tau, tau_b=tau, tol=1e-9)
    P = pot_unbalanced_plan(a, b, half_sqeuclidean(x, y), ref.epsilon, tau, tau)
    assert rel_plan_error(ref.coupling(), P) <= 1e-6  # otkit's torch backend is right
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = otkit.sinkhorn(
            x, y, a, b, relative_epsilon=0.02, tau_a=tau, tau_b=tau, tol=1e-6, backend="pot",
            max_iter=1000,
        )
    assert rel_plan_error(res.coupling(), P) <= 1e-4


@pytest.mark.parametrize("backend", ["torch", "pot", "geomloss"])
def test_n_iter_never_exceeds_max_iter(make_clouds, backend):
    """max_iter is an iteration cap ("iteration cap" in otkit.sinkhorn's docstring): n_iter
    never exceeds it, whatever the backend does internally."""
    x, y, a, b = make_clouds(N, M)
    for tau in (1.0, 0.5):
        with pytest.warns(ConvergenceWarning):
            res = otkit.sinkhorn(
                x, y, a, b, relative_epsilon=0.05, tau_a=tau, tau_b=tau, tol=1e-14,
                max_iter=3, backend=backend,
            )
        assert not res.converged
        assert 1 <= res.n_iter <= 3, (tau, res.n_iter)


# ----------------------------------------------------------------- 2. dense / online


@dataclass(frozen=True)
class Skewed(otkit.Cost):
    """A non-symmetric, non-translation-invariant cost: c(x, y) = ½‖x − 2y‖² + x₀."""

    name = "skewed"

    def pairwise(self, x, y):
        return 0.5 * torch.cdist(x, 2 * y) ** 2 + x[:, :1]


@pytest.mark.parametrize(
    "cost,dtype,tau",
    [
        pytest.param("sqeuclidean", F64, 1.0, id="sqeuclidean-float64-balanced"),
        pytest.param("sqeuclidean", F64, 0.7, id="sqeuclidean-float64-tau0.7"),
        pytest.param("sqeuclidean", F32, 1.0, id="sqeuclidean-float32-balanced"),
        pytest.param("sqeuclidean", F32, 0.7, id="sqeuclidean-float32-tau0.7"),
        pytest.param("euclidean", F64, 1.0, id="euclidean-float64-balanced"),
        pytest.param("dot", F64, 0.7, id="dot-float64-tau0.7"),
        pytest.param("skewed", F64, 1.0, id="skewed-float64-balanced"),
        pytest.param("skewed", F64, 0.7, id="skewed-float64-tau0.7"),
    ],
)
def test_dense_and_online_agree(make_clouds, dtype, tau, cost):
    x, y, a, b = make_clouds(30, 22, dtype=dtype)
    cost_fn = Skewed() if cost == "skewed" else cost
    kw = dict(relative_epsilon=0.1, tau_a=tau, tau_b=tau, tol=TOL[dtype], cost=cost_fn)
    dense = solve(x, y, a, b, mode="dense", **kw)
    online = solve(x, y, a, b, mode="online", block_size=7, **kw)  # 5 row bands, 4 column bands
    assert dense.mode == "dense" and online.mode == "online"
    assert dense.converged and online.converged
    assert dense.epsilon == pytest.approx(online.epsilon, rel=1e-12)
    rtol = 1e-9 if dtype == F64 else RTOL[F32]
    P = dense.coupling()
    assert rel_plan_error(online.coupling(), P) <= rtol
    assert_potentials_close(online, dense, rtol * dense.epsilon, balanced=tau == 1.0)
    assert online.ot_cost().item() == pytest.approx(dense.ot_cost().item(), rel=rtol)
    if cost == "skewed" and dtype == F64:  # the non-symmetric transpose path, against POT
        C = 0.5 * cdist(np64(x), 2 * np64(y), "sqeuclidean") + np64(x)[:, :1]
        if tau == 1.0:
            Q = ot.bregman.sinkhorn_log(np64(a), np64(b), C, dense.epsilon, stopThr=1e-14)
        else:
            Q = pot_unbalanced_plan(a, b, C, dense.epsilon, tau, tau)
        assert rel_plan_error(online.coupling(), Q) <= 1e-6


def test_online_coupling_methods_match_dense(make_clouds, generator):
    # any potentials will do: the methods, not the solve, are compared
    x, y, a, b = make_clouds(30, 22)
    dense = solve(x, y, a, b, relative_epsilon=0.2, mode="dense")
    online = solve(x, y, a, b, relative_epsilon=0.2, mode="online", block_size=5)
    torch.testing.assert_close(online.f, dense.f, rtol=1e-10, atol=1e-10)
    v = torch.randn(22, 3, dtype=F64, generator=generator)
    u = torch.randn(30, dtype=F64, generator=generator)
    torch.testing.assert_close(online.apply(v), dense.apply(v), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(
        online.apply(u, transpose=True), dense.apply(u, transpose=True), rtol=1e-9, atol=1e-12
    )
    for s, t in zip(online.marginals(), dense.marginals()):
        torch.testing.assert_close(s, t, rtol=1e-9, atol=1e-12)
    assert online.entropy().item() == pytest.approx(dense.entropy().item(), rel=1e-9)
    xs = torch.randn(11, 2, dtype=F64, generator=generator)
    torch.testing.assert_close(online.transport(xs), dense.transport(xs), rtol=1e-9, atol=1e-9)
    assert online.primal_objective().item() == pytest.approx(
        dense.primal_objective().item(), rel=1e-9
    )


def test_auto_backend_and_mode(make_clouds):
    x, y, a, b = make_clouds(N, M)
    res = otkit.sinkhorn(x, y, a, b)
    assert res.backend == "torch" and res.mode == "dense"
    res = otkit.sinkhorn(x, y, a, b, mode="online")
    assert res.backend == "torch" and res.mode == "online"
    # default ε: 0.05 × std of the cost matrix (½‖x − y‖²)
    assert res.epsilon == pytest.approx(0.05 * half_sqeuclidean(x, y).std(ddof=1), rel=1e-9)


# ------------------------------------------------------------ 3. primal and dual


@pytest.mark.parametrize("tau", [1.0, 0.8, 0.3], ids=["balanced", "tau0.8", "tau0.3"])
def test_primal_equals_dual_and_gap_shrinks(make_clouds, tau):
    x, y, a, b = make_clouds(N, M)
    gaps = []
    for tol in (1e-2, 1e-4, 1e-6, 1e-8, 1e-10):
        res = solve(x, y, a, b, relative_epsilon=0.05, tau_a=tau, tau_b=tau, tol=tol)
        primal, dual = res.primal_objective().item(), res.dual_objective().item()
        gaps.append(abs(primal - dual))
    scale = abs(primal)
    assert gaps[-1] <= 1e-9 * scale
    for loose, tight in zip(gaps, gaps[1:]):
        assert tight <= loose + 1e-12 * scale
    if tau == 1.0:  # unbalanced problems converge too fast for a meaningful ratio at 1e-2
        assert gaps[-1] < 1e-4 * gaps[0]
    # The primal value is that of POT's plan under the reference formula.
    C = half_sqeuclidean(x, y)
    if tau == 1.0:
        P = ot.bregman.sinkhorn_log(np64(a), np64(b), C, res.epsilon, stopThr=1e-14)
    else:
        P = pot_unbalanced_plan(a, b, C, res.epsilon, tau, tau)
    expected = primal_reference(P, C, np64(a), np64(b), res.epsilon, res.rho_a, res.rho_b)
    assert primal == pytest.approx(expected, rel=1e-8)
    assert res.rho_a == (math.inf if tau == 1.0 else pytest.approx(rho(res.epsilon, tau)))


# ------------------------------------------------------- 4. small ε → exact OT


@pytest.mark.slow
def test_small_epsilon_approaches_exact_ot(make_clouds):
    x, y, a, b = make_clouds(30, 25)
    exact = otkit.emd(x, y, a, b).ot_cost().item()
    assert exact == pytest.approx(ot.emd2(np64(a), np64(b), half_sqeuclidean(x, y)), rel=1e-12)
    costs = {}
    for rel_eps in (1e-1, 1e-2, 1e-3):
        res = solve(
            x, y, a, b, relative_epsilon=rel_eps, tol=1e-3, epsilon_scaling=0.7,
            max_iter=20_000,
        )
        costs[rel_eps] = res.ot_cost().item()
    values = list(costs.values())
    for big, small in zip(values, values[1:]):  # monotone, within the tolerance's wiggle
        assert small <= big + 1e-3 * exact
    assert all(v >= exact * (1 - 2e-3) for v in values)  # feasible plans (up to tol) cost more
    assert abs(costs[1e-1] - exact) > 1e-2 * exact  # the test can see a difference ...
    assert abs(costs[1e-3] - exact) <= 1e-2 * exact  # ... and the limit is exact OT
    assert abs(costs[1e-2] - exact) <= 1e-2 * exact


# --------------------------------------------------------- 5. entropy / sharpness


def test_renormalized_entropy_limits_and_monotonicity(make_clouds):
    x, y, a, b = make_clouds(20, 20, weights=False)
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(3))
    exact = otkit.emd(x, x[perm])
    plan = exact.coupling()
    support = torch.zeros(20, 20, dtype=torch.bool)
    support[perm, torch.arange(20)] = True  # y_j = x_perm[j]
    assert torch.equal(plan > 0, support)
    assert exact.renormalized_entropy() == pytest.approx(0.0, abs=1e-9)

    huge = solve(x, y, relative_epsilon=1e5, tol=1e-10)
    assert huge.renormalized_entropy() == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(huge.coupling(), torch.full((20, 20), 1 / 400, dtype=F64),
                               rtol=1e-4, atol=0)
    values = []
    for rel_eps in (10.0, 1.0, 0.3, 0.1, 0.03):
        res = solve(x, y, relative_epsilon=rel_eps, tol=1e-6, max_iter=20_000)
        r = res.renormalized_entropy()
        # scipy's entropy of the flattened plan, renormalized by log n (n = m, uniform)
        expected = scipy.stats.entropy(np64(res.coupling()).ravel()) / math.log(20) - 1
        assert r == pytest.approx(expected, abs=1e-8)
        assert res.entropy().item() == pytest.approx(
            scipy.stats.entropy(np64(res.coupling()).ravel()), rel=1e-9
        )
        values.append(r)
    assert all(s < t for s, t in zip(values[1:], values))
    assert 0.0 < values[-1] < values[0] < 1.0


def test_renormalized_entropy_non_uniform(make_clouds):
    """General weights: the independent coupling still scores 1."""
    x, y, a, b = make_clouds(N, M)
    res = solve(x, y, a, b, relative_epsilon=1e5, tol=1e-10)
    assert res.renormalized_entropy() == pytest.approx(1.0, abs=1e-4)
    h = scipy.stats.entropy(np64(a)) + scipy.stats.entropy(np64(b))
    assert res.entropy().item() == pytest.approx(h, rel=1e-6)


# ------------------------------------------------------------- 6. sampling


def _chisquare(i, j, plan: np.ndarray, min_cells: int = 10) -> float:
    """p-value of Pearson's test of the (i, j) counts against the plan; cells expecting fewer
    than 5 draws are pooled into one, so the chi-square approximation holds."""
    n, m = plan.shape
    counts = np.bincount(np64(i).astype(int) * m + np64(j).astype(int), minlength=n * m)
    probs = plan.ravel() / plan.sum()
    assert counts[probs == 0].sum() == 0  # nothing sampled outside the support
    expected = probs * counts.sum()
    big = expected >= 5
    obs = np.append(counts[big], counts[~big & (probs > 0)].sum())
    exp = np.append(expected[big], expected[~big & (probs > 0)].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    assert len(obs) >= min_cells  # enough cells for a meaningful test
    return scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


@pytest.mark.parametrize("tau", [1.0, 0.6], ids=["balanced", "tau0.6"])
@pytest.mark.parametrize("mode", ["dense", "online"])
def test_sample_pairs_follow_the_coupling(make_clouds, tau, mode):
    x, y, a, b = make_clouds(6, 5)
    res = solve(x, y, a, b, relative_epsilon=0.3, tau_a=tau, tau_b=tau, tol=1e-10,
                mode=mode, block_size=2)
    k = 200_000
    i, j = res.sample_pairs(k, generator=torch.Generator().manual_seed(1))
    assert i.shape == j.shape == (k,) and i.dtype == j.dtype == torch.int64
    assert _chisquare(i, j, np64(res.coupling())) > 1e-3
    # a wrong plan (the independent coupling) is rejected: the test has power
    wrong = np.outer(np64(a), np64(b))
    assert scipy.stats.chisquare(
        np.bincount(np64(i).astype(int) * 5 + np64(j).astype(int), minlength=30),
        wrong.ravel() / wrong.sum() * k,
    ).pvalue < 1e-10
    # reproducible with a seeded generator, different with another seed
    i2, j2 = res.sample_pairs(k, generator=torch.Generator().manual_seed(1))
    assert torch.equal(i, i2) and torch.equal(j, j2)
    i3, j3 = res.sample_pairs(k, generator=torch.Generator().manual_seed(2))
    assert not (torch.equal(i, i3) and torch.equal(j, j3))


def test_sample_pairs_from_exact_plan(make_clouds):
    x, y, a, b = make_clouds(6, 5)
    exact = otkit.emd(x, y, a, b)
    i, j = exact.sample_pairs(100_000, generator=torch.Generator().manual_seed(0))
    assert _chisquare(i, j, np64(exact.coupling()), min_cells=5) > 1e-3


# ---------------------------------------------------- 7. apply / marginals / cost


@pytest.mark.parametrize("mode", ["dense", "online"])
@pytest.mark.parametrize("tau", [1.0, 0.5], ids=["balanced", "tau0.5"])
def test_apply_marginals_cost(make_clouds, generator, mode, tau):
    x, y, a, b = make_clouds(13, 11)
    res = solve(x, y, a, b, tau_a=tau, tau_b=tau, tol=1e-8, mode=mode, block_size=4)
    P = res.coupling()
    assert P.shape == (13, 11) and P.dtype == F64
    for v in (torch.randn(11, dtype=F64, generator=generator),
              torch.randn(11, 3, dtype=F64, generator=generator)):
        torch.testing.assert_close(res.apply(v), P @ v, rtol=1e-12, atol=1e-15)
    for u in (torch.randn(13, dtype=F64, generator=generator),
              torch.randn(13, 4, dtype=F64, generator=generator)):
        torch.testing.assert_close(res.apply(u, transpose=True), P.T @ u, rtol=1e-12,
                                   atol=1e-15)
    row, col = res.marginals()
    torch.testing.assert_close(row, P.sum(1), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(col, P.sum(0), rtol=1e-12, atol=1e-15)
    C = torch.from_numpy(half_sqeuclidean(x, y))
    assert res.ot_cost().item() == pytest.approx((P * C).sum().item(), rel=1e-10)
    err = (row - a).abs().sum() + (col - b).abs().sum()
    assert res.marginal_error() == pytest.approx(err.item(), rel=1e-10, abs=1e-15)
    # the plan is the Gibbs form of the potentials
    Q = a[:, None] * b[None, :] * torch.exp((res.f[:, None] + res.g[None, :] - C) / res.epsilon)
    torch.testing.assert_close(P, Q, rtol=1e-9, atol=1e-15)
    # a float32 vector is applied in the plan's dtype
    assert res.apply(torch.ones(11)).dtype == F64


# ------------------------------------------------------------ 8. entropic map


@pytest.mark.parametrize("mode", ["dense", "online"])
@pytest.mark.parametrize("tau", [1.0, 0.7], ids=["balanced", "tau0.7"])
def test_transport_is_barycentric_projection(make_clouds, generator, mode, tau):
    x, y, a, b = make_clouds(N, M)
    res = solve(x, y, a, b, tau_a=tau, tau_b=tau, mode=mode, block_size=5)  # any potentials
    P = res.coupling()
    torch.testing.assert_close(res.transport(x), (P @ y) / P.sum(1, keepdim=True),
                               rtol=1e-9, atol=1e-10)
    # new points: softmax_j(log b_j + (g_j − ½‖x − y_j‖²)/ε), from scratch with scipy
    xs = 3 * torch.randn(40, 2, dtype=F64, generator=generator)
    logits = np.log(np64(b)) + (np64(res.g)[None] - half_sqeuclidean(xs, y)) / res.epsilon
    w = scipy.special.softmax(logits, axis=1)
    np.testing.assert_allclose(np64(res.transport(xs)), w @ np64(y), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", ["dense", "online"])
@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_inverse_transport_is_the_column_barycentric_projection(make_clouds, generator, mode, cost):
    x, y, a, b = make_clouds(N, M)
    x = x + 5.0  # a shift that the centring of translation-invariant costs must undo
    res = solve(x, y, a, b, cost=cost, mode=mode, block_size=5)
    P = res.coupling()
    torch.testing.assert_close(res.inverse_transport(y), (P.T @ x) / P.sum(0)[:, None],
                               rtol=1e-9, atol=1e-10)
    ys = 3 * torch.randn(40, 2, dtype=F64, generator=generator)
    c = half_sqeuclidean(x, ys) if cost == "sqeuclidean" else np.sqrt(2 * half_sqeuclidean(x, ys))
    logits = np.log(np64(a))[:, None] + (np64(res.f)[:, None] - c) / res.epsilon
    w = scipy.special.softmax(logits, axis=0)
    np.testing.assert_allclose(np64(res.inverse_transport(ys)), w.T @ np64(x), rtol=1e-9, atol=1e-9)
    with pytest.raises(ValueError, match="y_new"):
        res.inverse_transport(torch.zeros(3, 5, dtype=F64))


def _gaussian_monge(mean0, cov0, mean1, cov1):
    """T(x) = μ1 + A(x − μ0), A = Σ0^{-½}(Σ0^½ Σ1 Σ0^½)^½ Σ0^{-½}, by scipy."""
    s0 = np.real(scipy.linalg.sqrtm(cov0))
    s0_inv = np.linalg.inv(s0)
    A = s0_inv @ np.real(scipy.linalg.sqrtm(s0 @ cov1 @ s0)) @ s0_inv
    return lambda x: mean1 + (x - mean0) @ A.T


@pytest.mark.slow
def test_entropic_map_approaches_gaussian_monge_map():
    rng = np.random.default_rng(0)
    mean0, mean1 = np.zeros(2), np.array([1.0, -0.5])
    cov0 = np.array([[1.0, 0.4], [0.4, 0.6]])
    cov1 = np.array([[0.5, -0.2], [-0.2, 1.5]])
    monge = _gaussian_monge(mean0, cov0, mean1, cov1)
    held_out = rng.multivariate_normal(mean0, cov0, 1000)
    held_out = held_out[np.linalg.norm(held_out, axis=1) < 2.0]  # the bulk, where maps are fit
    errors = {}
    for n in (200, 2000):
        err = []
        for rep in range(2):
            x = torch.from_numpy(rng.multivariate_normal(mean0, cov0, n))
            y = torch.from_numpy(rng.multivariate_normal(mean1, cov1, n))
            res = solve(x, y, epsilon=0.02, tol=1e-4, max_iter=20_000)
            pred = np64(res.transport(torch.from_numpy(held_out)))
            err.append(np.mean(np.sum((pred - monge(held_out)) ** 2, axis=1)))
        errors[n] = float(np.mean(err))
    assert errors[2000] < 0.6 * errors[200]
    assert errors[2000] < 0.02


# ------------------------------------------------ 9. warm start, scaling, warnings


@pytest.mark.parametrize("tau", [1.0, 0.7], ids=["balanced", "tau0.7"])
@pytest.mark.parametrize("backend", ["torch", "geomloss", "pot"])
def test_warm_start(make_clouds, tau, backend):
    x, y, a, b = make_clouds(N, M)
    kw = dict(relative_epsilon=0.1, tau_a=tau, tau_b=tau, tol=1e-7, backend=backend)
    cold = solve(x, y, a, b, **kw)
    warm = solve(x, y, a, b, init=(cold.f, cold.g), **kw)
    assert warm.converged
    # the pot backend counts POT's chunks of 10 iterations
    assert warm.n_iter <= (2 if backend != "pot" else 10) and warm.n_iter < cold.n_iter
    assert rel_plan_error(warm.coupling(), cold.coupling()) <= 1e-5


def test_warm_start_from_float32_potentials(make_clouds):
    x, y, a, b = make_clouds(N, M)
    res32 = solve(x.float(), y.float(), a.float(), b.float(), tol=1e-5)
    res = solve(x, y, a, b, tol=1e-8, init=(res32.f, res32.g))  # cast to float64
    assert res.f.dtype == F64 and res.converged


@pytest.mark.parametrize(
    "mode,tau", [("dense", 1.0), ("dense", 0.7), ("online", 1.0)],
    ids=["dense-balanced", "dense-tau0.7", "online-balanced"],
)
def test_epsilon_scaling_reaches_the_cold_solution(make_clouds, tau, mode):
    x, y, a, b = make_clouds(N, M)
    kw = dict(relative_epsilon=0.03, tau_a=tau, tau_b=tau, tol=1e-8, mode=mode, max_iter=50_000)
    cold = solve(x, y, a, b, **kw)
    scaled = solve(x, y, a, b, epsilon_scaling=0.6, **kw)
    assert scaled.converged
    assert scaled.epsilon == cold.epsilon
    assert rel_plan_error(scaled.coupling(), cold.coupling()) <= 1e-6
    assert_potentials_close(scaled, cold, 1e-6 * cold.epsilon, balanced=tau == 1.0)


@pytest.mark.parametrize("backend", ["torch", "geomloss", "pot"])
def test_max_iter_warns_and_history(make_clouds, backend):
    x, y, a, b = make_clouds(N, M)
    with pytest.warns(ConvergenceWarning, match="did not reach tol"):
        res = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.01, tol=1e-12, max_iter=3,
                             backend=backend)
    assert res.converged is False
    assert res.errors.numel() >= 1 and res.errors[-1].item() > 1e-12
    ok = solve(x, y, a, b, tol=1e-6, backend=backend)
    assert ok.converged is True
    assert ok.errors.dtype == F64 and ok.errors.numel() >= 1
    assert ok.errors[-1].item() <= 1e-6
    assert torch.isfinite(ok.errors).all()
    # the final error is the plan's marginal error (up to the last half-step)
    assert ok.marginal_error() <= 2e-6


def test_max_iter_torch_counts(make_clouds):
    x, y, a, b = make_clouds(N, M)
    with pytest.warns(ConvergenceWarning):
        res = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.01, tol=1e-12, max_iter=3)
    assert res.n_iter == 3 and res.errors.numel() == 3
    errors = solve(x, y, a, b, tol=1e-8).errors
    assert errors[-1] < errors[0]


@pytest.mark.parametrize("scaling", [None, 0.8], ids=["cold", "eps-scaling"])
def test_progress_bar_shows_convergence(make_clouds, monkeypatch, scaling):
    """progress=True: the bar measures the error's way down to tol (not iterations against
    max_iter), ends full when the solve converges (green in Jupyter) and short of full, saying
    so, when max_iter stops it (red in Jupyter)."""
    import io

    from tqdm import std

    from otkit.backends import torch_native

    bars = []

    class Recording(std.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), mininterval=0, **kwargs)
            bars.append(self)

    monkeypatch.setattr(torch_native, "tqdm", Recording)
    x, y, a, b = make_clouds(N, M)
    res = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.05, mode="online", progress=True,
                         backend="torch", epsilon_scaling=scaling)
    assert res.converged and len(bars) == 1
    bar = bars[0]
    assert bar.total == 100 and bar.n == bar.total, (bar.n, bar.total)  # full: success
    assert bar.desc == "sinkhorn converged" and f"{res.n_iter} iterations" in bar.postfix
    text = bar.fp.getvalue()
    assert f"/{res.n_iter}" not in text and "/2000" not in text  # no iterations-of-max_iter count

    with pytest.warns(ConvergenceWarning):
        stopped = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.01, tol=1e-12, max_iter=5,
                                 progress=True, backend="torch", epsilon_scaling=scaling)
    bar = bars[-1]
    assert not stopped.converged and len(bars) == 2
    assert bar.n < bar.total and bar.desc == "sinkhorn NOT converged"
    assert "max_iter 5 reached" in bar.postfix

    otkit.sinkhorn(x, y, a, b, relative_epsilon=0.05, backend="torch")  # progress=False: no bar
    assert len(bars) == 2


# ------------------------------------------------------- 10. float32, small ε


@pytest.mark.parametrize("mode", ["dense", "online"])
@pytest.mark.parametrize("tau", [1.0, 0.9], ids=["balanced", "tau0.9"])
def test_float32_small_epsilon_is_finite(make_clouds, mode, tau):
    x, y, a, b = make_clouds(30, 25, dtype=F32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = otkit.sinkhorn(
            x, y, a, b, relative_epsilon=1e-3, tau_a=tau, tau_b=tau, mode=mode, block_size=8,
            max_iter=100,
        )
    assert res.f.dtype == F32
    assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
    P = res.coupling()
    assert torch.isfinite(P).all() and (P >= 0).all()
    assert math.isfinite(res.ot_cost().item()) and math.isfinite(res.entropy().item())
    assert torch.isfinite(res.transport(x)).all()
    if tau == 1.0:  # the rows are exact after the last half-step
        torch.testing.assert_close(P.sum(1), a, rtol=1e-3, atol=1e-6)


# ------------------------------------------------------------------- 14. CUDA


def _cuda_pair(make_clouds, dtype=F64):
    x, y, a, b = make_clouds(N, M, dtype=dtype)
    return (x, y, a, b), tuple(t.cuda() for t in (x, y, a, b))


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "backend,mode", [("torch", "dense"), ("torch", "online"), ("pot", "dense"),
                     ("geomloss", "dense")]
)
@pytest.mark.parametrize("tau", [1.0, 0.7], ids=["balanced", "tau0.7"])
def test_cuda_matches_cpu(make_clouds, dtype, backend, mode, tau):
    cpu, gpu = _cuda_pair(make_clouds, dtype)
    kw = dict(relative_epsilon=0.1, tau_a=tau, tau_b=tau, tol=TOL[dtype], backend=backend,
              mode=mode, block_size=7 if mode == "online" else None, max_iter=20_000)
    res_cpu = solve(*cpu, **kw)
    res_gpu = solve(*gpu, **kw)
    assert res_gpu.f.is_cuda and res_gpu.g.is_cuda and res_gpu.f.dtype == dtype
    P = res_gpu.coupling()
    assert P.is_cuda
    assert rel_plan_error(P, res_cpu.coupling()) <= RTOL[dtype]
    assert_potentials_close(res_gpu, res_cpu, RTOL[dtype] * res_cpu.epsilon, balanced=tau == 1.0)
    assert res_gpu.ot_cost().item() == pytest.approx(res_cpu.ot_cost().item(), rel=RTOL[dtype])
    v = torch.randn(M, 2, dtype=dtype)
    torch.testing.assert_close(res_gpu.apply(v.cuda()).cpu(), res_cpu.apply(v),
                               rtol=10 * RTOL[dtype], atol=1e-7)
    xs = cpu[0][:5]
    torch.testing.assert_close(res_gpu.transport(xs.cuda()).cpu(), res_cpu.transport(xs),
                               rtol=10 * RTOL[dtype], atol=10 * RTOL[dtype])


@cuda
@pytest.mark.cuda
def test_cuda_sampling_and_exact(make_clouds):
    cpu, gpu = _cuda_pair(make_clouds)
    res = solve(*gpu, relative_epsilon=0.3, tol=1e-10)
    gen = torch.Generator(device="cuda").manual_seed(0)
    i, j = res.sample_pairs(50_000, generator=gen)
    assert i.is_cuda and j.is_cuda
    assert _chisquare(i.cpu(), j.cpu(), np64(res.coupling())) > 1e-3
    exact_gpu, exact_cpu = otkit.emd(*gpu), otkit.emd(*cpu)
    assert exact_gpu.coupling().is_cuda
    torch.testing.assert_close(exact_gpu.coupling().cpu(), exact_cpu.coupling())
    with pytest.raises(ValueError, match="device"):
        otkit.sinkhorn(cpu[0], gpu[1])
    with pytest.raises(ValueError, match="^a is on cpu"):
        otkit.sinkhorn(gpu[0], gpu[1], cpu[2], gpu[3])
    with pytest.raises(ValueError, match="x_new is on"):
        res.transport(cpu[0])


@cuda
@pytest.mark.cuda
def test_cuda_float32_small_epsilon_online(make_clouds):
    _, gpu = _cuda_pair(make_clouds, F32)
    for mode in ("dense", "online"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = otkit.sinkhorn(*gpu, relative_epsilon=1e-3, mode=mode, block_size=7,
                                 max_iter=300)
        assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
        assert torch.isfinite(res.coupling()).all()


# --------------------------------------------------------------------------- rho and tau


@pytest.mark.parametrize(("rho_a", "rho_b", "epsilon"), [(9.0, 9.0, 0.5), (0.3, 2.0, 0.05)])
def test_rho_equals_tau_of_rho_over_rho_plus_epsilon_bit_for_bit(make_clouds, rho_a, rho_b,
                                                                  epsilon):
    x, y, a, b = make_clouds(N, M)
    by_rho = solve(x, y, a, b, epsilon=epsilon, rho_a=rho_a, rho_b=rho_b, tol=1e-9)
    by_tau = solve(x, y, a, b, epsilon=epsilon, tau_a=rho_a / (rho_a + epsilon),
                   tau_b=rho_b / (rho_b + epsilon), tol=1e-9)
    assert torch.equal(by_rho.f, by_tau.f) and torch.equal(by_rho.g, by_tau.g)
    assert torch.equal(by_rho.errors, by_tau.errors)
    assert (by_rho.tau_a, by_rho.tau_b) == (by_tau.tau_a, by_tau.tau_b)
    # the result reports the penalty given, in cost units
    assert by_rho.rho_a == pytest.approx(rho_a, rel=1e-12)
    assert by_rho.rho_b == pytest.approx(rho_b, rel=1e-12)


def test_rho_is_in_cost_units_whatever_epsilon(make_clouds):
    # one rho is one penalty at every epsilon (a fixed tau would scale it with epsilon);
    # relative_epsilon resolves epsilon first, then tau = rho / (rho + epsilon)
    x, y, a, b = make_clouds(N, M)
    for eps in (0.05, 0.5):
        res = solve(x, y, a, b, epsilon=eps, rho_a=4.0, tau_b=0.8, tol=1e-8)
        assert res.rho_a == pytest.approx(4.0, rel=1e-12) and res.tau_a == 4.0 / (4.0 + eps)
        assert res.rho_b == pytest.approx(4.0 * eps, rel=1e-12) and res.tau_b == 0.8
    rel = solve(x, y, a, b, relative_epsilon=0.1, rho_a=4.0, rho_b=4.0, tol=1e-8)
    assert rel.rho_a == pytest.approx(4.0, rel=1e-12)
    assert rel.tau_a == rel.tau_b == 4.0 / (4.0 + rel.epsilon)


def test_rho_inf_is_balanced_and_the_default(make_clouds):
    x, y, a, b = make_clouds(N, M)
    default = solve(x, y, a, b, epsilon=0.1, tol=1e-8)
    explicit = solve(x, y, a, b, epsilon=0.1, rho_a=math.inf, rho_b=math.inf, tol=1e-8)
    assert torch.equal(default.f, explicit.f) and torch.equal(default.g, explicit.g)
    assert explicit.tau_a == explicit.tau_b == 1.0 and explicit.rho_a == math.inf
    with pytest.raises(ValueError, match="equal total mass"):
        otkit.sinkhorn(x, y, a, 2 * b, epsilon=0.1, rho_a=math.inf, rho_b=math.inf)
    relaxed = solve(x, y, a, 2 * b, epsilon=0.1, rho_a=1.0, rho_b=1.0, tol=1e-8)
    assert relaxed.tau_a < 1.0


@pytest.mark.parametrize("side", ["a", "b"])
def test_tau_and_rho_for_one_side_raise(make_clouds, side):
    x, y, a, b = make_clouds(N, M)
    with pytest.raises(ValueError, match=f"tau_{side} or rho_{side}, not both"):
        otkit.sinkhorn(x, y, a, b, epsilon=0.1, **{f"tau_{side}": 0.9, f"rho_{side}": 1.0})
    with pytest.raises(ValueError, match=f"tau_{side} or rho_{side}, not both"):  # even balanced
        otkit.sinkhorn(x, y, a, b, epsilon=0.1, **{f"tau_{side}": 1.0, f"rho_{side}": math.inf})


@pytest.mark.parametrize(("value", "error"), [(0.0, ValueError), (-1.0, ValueError),
                                              (math.nan, ValueError), ("1", TypeError),
                                              (True, TypeError)])
def test_bad_rho(make_clouds, value, error):
    x, y, a, b = make_clouds(N, M)
    with pytest.raises(error, match="^rho_b must be a number > 0"):
        otkit.sinkhorn(x, y, a, b, epsilon=0.1, rho_b=value)
