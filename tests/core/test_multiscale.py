"""otkit.multiscale.multiscale_sinkhorn against references nobody here wrote.

References: POT's log-domain Sinkhorn (``ot.bregman.sinkhorn_log``, cost ½‖x − y‖² from scipy's
``cdist``, reg = ε) solved densely to 1e-9, and brute force over all n·m entries for the
truncation bound and the k-d tree's partition.

Tolerances. The multiscale solve drops blocks whose entries are all below a_i b_j e^{−τ}
(τ = 10: at most 4.5e-5 of the mass) and stops at an L1 error ``tol`` of the truncated plan;
with tol = 1e-6 (float64) its plan should match POT's to about e^{−τ} in L1 and its potentials
to about ε·e^{−τ}·(mass ratio): we ask 1e-4 in L1 and 1e-3·ε on potentials — a factor-2
mistake in ε or the cost moves them by O(1), a dropped block that mattered by ≥ 1e-3.
Eager kernels (``OTKIT_COMPILE=0``): compiling costs seconds per process and is tested in
test_kernels.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import ot
import pytest
import torch
from scipy.spatial.distance import cdist

from otkit.multiscale import (
    MAX_DIM,
    MultiscaleResult,
    _kd_leaves,
    _kept_pairs,
    multiscale_sinkhorn,
)
from otkit.sinkhorn import ConvergenceWarning, SinkhornResult

F64 = torch.float64


@pytest.fixture(autouse=True)
def _eager(monkeypatch):
    monkeypatch.setenv("OTKIT_COMPILE", "0")


def pot_reference(x, y, a, b, eps, stop=1e-10):
    """POT's plan and potentials (f, g in cost units, mean-zero f) for ½‖x − y‖², reg = ε."""
    cost = 0.5 * cdist(x.numpy(), y.numpy(), "sqeuclidean")
    an, bn = a.numpy(), b.numpy()
    plan, log = ot.bregman.sinkhorn_log(an, bn, cost, eps, numItermax=20_000, stopThr=stop,
                                        log=True)
    f = eps * (log["log_u"] - np.log(an))
    g = eps * (log["log_v"] - np.log(bn))
    shift = f.mean()
    return plan, f - shift, g + shift


@pytest.mark.parametrize("case", [
    dict(n=300, m=200, d=2, relative_epsilon=0.03),
    dict(n=300, m=300, d=1, relative_epsilon=0.02),
    dict(n=250, m=200, d=3, relative_epsilon=0.005, coarse_size=8),  # recursive coarse solve
    dict(n=300, m=200, d=2, relative_epsilon=0.005, overrelaxation=1.6),
    dict(n=250, m=200, d=3, relative_epsilon=0.005, coarse_size=8, overrelaxation=1.8),
])
def test_matches_pot(make_clouds, case):
    n, m, d = case.pop("n"), case.pop("m"), case.pop("d")
    x, y, a, b = make_clouds(n, m, d)
    res = multiscale_sinkhorn(x, y, a, b, tol=1e-6, leaf_size=8, **case)
    assert isinstance(res, MultiscaleResult) and isinstance(res, SinkhornResult)
    assert res.converged and res.errors[-1] <= 1e-6
    assert res.kept_fraction < 1.0  # the truncation dropped something
    plan, f_ref, g_ref = pot_reference(x, y, a, b, res.epsilon, stop=1e-9)
    assert np.abs(res.coupling().numpy() - plan).sum() < 1e-4
    shift = res.f.mean().item()
    assert np.abs(res.f.numpy() - shift - f_ref).max() < 1e-3 * res.epsilon
    assert np.abs(res.g.numpy() + shift - g_ref).max() < 1e-3 * res.epsilon
    # the full plan's marginal error, dropped blocks included: the truncated error + e^-τ
    row, col = res.marginals()
    assert (row - a).abs().sum() + (col - b).abs().sum() < 1e-6 + math.exp(-10.0)
    assert res.ot_cost().item() == pytest.approx(float((plan * 0.5 * cdist(
        x.numpy(), y.numpy(), "sqeuclidean")).sum()), rel=1e-5)


def test_float32_default_tolerance(make_clouds):
    """float32 at the default tol 1e-3: the full plan's marginal error is measured, not assumed."""
    x, y, a, b = make_clouds(600, 500, 2, dtype=torch.float32, weights=False)
    res = multiscale_sinkhorn(x, y, relative_epsilon=0.02)
    assert res.converged and res.f.dtype == torch.float32
    row, col = res.marginals()
    assert (row.double() - a.double()).abs().sum() < 1e-4  # rows exact after the f-update
    assert (col.double() - b.double()).abs().sum() < 1e-3 + 1e-4
    plan, f_ref, _ = pot_reference(x.double(), y.double(), a.double(), b.double(), res.epsilon,
                                   stop=1e-6)
    assert np.abs(res.coupling().double().numpy() - plan).sum() < 5e-3
    # the entropic map, over every target, against POT's plan's barycentric projection
    bary = (plan @ y.double().numpy()) / plan.sum(1, keepdims=True)
    mapped = res.transport(x).double().numpy()
    assert np.abs(mapped - bary).mean() < 5e-3


def test_truncation_bound_is_rigorous(make_clouds):
    """Brute force: every entry with f_i + g_j − C_ij ≥ −τε lies in a kept leaf pair, for
    potentials far from optimal (random perturbations) as well as near it."""
    x, y, a, b = make_clouds(400, 300, 2)
    gen = torch.Generator().manual_seed(1)
    res = multiscale_sinkhorn(x, y, a, b, relative_epsilon=0.01, tol=1e-4, leaf_size=8)
    xc, yc = res.geometry.centred(x), res.geometry.centred(y)
    lx, ly = _kd_leaves(xc, a, 8), _kd_leaves(yc, b, 8)
    cost = 0.5 * torch.cdist(xc, yc) ** 2
    for noise in (0.0, 0.3):
        f = res.f + noise * torch.randn(400, generator=gen, dtype=F64)
        g = res.g + noise * torch.randn(300, generator=gen, dtype=F64)
        slot_f = torch.cat([f[lx.source], f.new_zeros(1)])
        slot_g = torch.cat([g[ly.source], g.new_zeros(1)])
        for tau in (3.0, 10.0):
            pi, pj = _kept_pairs(lx, ly, slot_f, slot_g, res.epsilon, tau)
            kept = torch.zeros(lx.count, ly.count, dtype=torch.bool)
            kept[pi, pj] = True
            leaf_x = torch.empty(400, dtype=torch.long)
            leaf_x[lx.source[lx.valid.flatten()]] = torch.nonzero(lx.valid)[:, 0]
            leaf_y = torch.empty(300, dtype=torch.long)
            leaf_y[ly.source[ly.valid.flatten()]] = torch.nonzero(ly.valid)[:, 0]
            big = (f[:, None] + g[None] - cost) >= -tau * res.epsilon
            i, j = torch.nonzero(big, as_tuple=True)
            assert i.numel() > 0
            assert kept[leaf_x[i], leaf_y[j]].all()
            assert kept.double().mean() < 1.0  # and it is a truncation


def test_kd_leaves_partition():
    gen = torch.Generator().manual_seed(2)
    pts = torch.randn(1003, 3, generator=gen, dtype=F64)
    leaves = _kd_leaves(pts, torch.full((1003,), 1 / 1003, dtype=F64), 10)
    assert leaves.valid.sum(1).max() <= 10
    assert leaves.count == math.ceil(1003 / 10)  # balanced: all leaves but one are full
    seen = leaves.source[leaves.valid.flatten()]
    assert torch.equal(torch.sort(seen).values, torch.arange(1003))
    pts_l = leaves.points[:-1].view(leaves.count, 10, 3)
    dist = (pts_l - leaves.centre[:, None]).norm(dim=-1)
    assert torch.allclose(torch.where(leaves.valid, dist, 0.0).amax(1), leaves.radius)
    # k-d leaves are compact: far smaller than the cloud
    assert leaves.radius.median() < 0.5 * (pts - pts.mean(0)).norm(dim=1).max()


def test_convergence_warning_and_bad_inputs(make_clouds):
    x, y, a, b = make_clouds(200, 150, 2)
    with pytest.warns(ConvergenceWarning):
        res = multiscale_sinkhorn(x, y, a, b, relative_epsilon=0.005, tol=1e-12, max_iter=3)
    assert not res.converged and res.n_iter == 3
    x4 = torch.randn(50, MAX_DIM + 1, dtype=F64)
    with pytest.raises(ValueError, match=r"x has d = 4.*otkit\.sinkhorn"):
        multiscale_sinkhorn(x4, x4)
    bad = [
        (dict(a=torch.cat([torch.zeros(1, dtype=F64), a[1:] / a[1:].sum()])), "a has zero"),
        (dict(b=2 * b), "equal total mass"),
        (dict(epsilon_scaling=1.0), "epsilon_scaling"),
        (dict(leaf_size=1), "leaf_size"),
        (dict(truncation=0.0), "truncation"),
        (dict(overrelaxation=2.0), "overrelaxation"),
        (dict(overrelaxation=0.5), "overrelaxation"),
        (dict(tol=-1.0), "tol"),
        (dict(epsilon=0.1, relative_epsilon=0.1), "relative_epsilon"),
    ]
    for kwargs, message in bad:
        args = dict(a=a, b=b) | kwargs
        with pytest.raises(ValueError, match=message), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            multiscale_sinkhorn(x, y, **args)


@pytest.mark.parametrize("flag", ["0", "always"], ids=["eager", "compiled"])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("shift_kind", ["close", "far"])
def test_batched_points_lse_equals_scipy(monkeypatch, flag, d, shift_kind):
    """The pass that builds ½‖x − y‖² inside itself against scipy's cdist and logsumexp."""
    from scipy.special import logsumexp

    from otkit import kernels

    monkeypatch.setenv("OTKIT_COMPILE", flag)
    gen = torch.Generator().manual_seed(11 + d)
    x = torch.randn(3, 5, d, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 7, d, generator=gen, dtype=torch.float64)
    h = torch.randn(3, 7, generator=gen, dtype=torch.float64)
    inv_eps = torch.tensor([0.5, 4.0, 30.0], dtype=torch.float64).view(3, 1, 1)
    true = torch.tensor(np.stack([
        logsumexp(h[k].numpy()[None] - 0.5 * cdist(x[k].numpy(), y[k].numpy(), "sqeuclidean")
                  * inv_eps[k].item(), axis=1) for k in range(3)]))
    shift = true + (0.4 if shift_kind == "close" else 500.0)
    lse, ratio = kernels.batched_points_lse(x, y.permute(2, 0, 1).contiguous(), h, shift,
                                            inv_eps)
    torch.testing.assert_close(lse, true, rtol=0, atol=1e-10)
    torch.testing.assert_close(ratio, torch.exp((true - shift).clamp(max=80.0)), rtol=1e-8,
                               atol=1e-300)
