"""Low-rank (fused, unbalanced) GW against autograd, POT and planted ground truth."""

import math
import warnings

import numpy as np
import ot
import pytest
import torch

from otkit.lowrank.gromov import entropic_gw, gw_cost, lowrank_gw
from otkit.lowrank.solver import factorize_cost

F64 = torch.float64


def _rotation(theta: float) -> torch.Tensor:
    return torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=F64)


def _clusters(seed: int, sizes=(14, 10, 9, 7), spread=0.15):
    """Four clusters of distinct sizes (no symmetry), and their rotated, shifted, permuted copy."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 2.0], [4.0, 3.0]], dtype=F64)
    labels = torch.cat([torch.full((s,), k) for k, s in enumerate(sizes)])
    x = centres[labels] + spread * torch.randn(len(labels), 2, generator=gen, dtype=F64)
    perm = torch.randperm(len(labels), generator=gen)
    y = (x @ _rotation(1.0).T + torch.tensor([5.0, -2.0], dtype=F64))[perm]
    return x, y, perm, labels


def _sq(z):
    return 0.5 * torch.cdist(z, z) ** 2


def _best(fits):
    return min(fits, key=lambda f: f.ot_cost().item())


def _solve(*args, seeds=(0, 1, 2), **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _best([lowrank_gw(*args, generator=s, **kwargs) for s in seeds])


def test_gradients_match_autograd():
    from otkit.lowrank.gromov import _gradients

    gen = torch.Generator().manual_seed(0)
    n, m, r, alpha = 12, 9, 3, 0.3
    x, y = torch.randn(n, 2, generator=gen, dtype=F64), torch.randn(m, 3, generator=gen, dtype=F64)
    ux, uy = torch.randn(n, 4, generator=gen, dtype=F64), torch.randn(m, 4, generator=gen, dtype=F64)
    fx, fy, fm = factorize_cost(x, x, "sqeuclidean"), factorize_cost(y, y, "sqeuclidean"), factorize_cost(ux, uy, "sqeuclidean")
    cx, cy, cm = _sq(x), _sq(y), 0.5 * torch.cdist(ux, uy) ** 2
    q = torch.rand(n, r, generator=gen, dtype=F64).requires_grad_()
    rr = torch.rand(m, r, generator=gen, dtype=F64).requires_grad_()
    g = torch.rand(r, generator=gen, dtype=F64).requires_grad_()
    plan = q / g @ rr.T
    p1, p2 = q.sum(1), rr.sum(1)  # the marginals as the factors carry them
    quad = p1 @ cx**2 @ p1 + p2 @ cy**2 @ p2 - 2 * (cx @ plan @ cy * plan).sum()
    (alpha * quad + (1 - alpha) * (cm * plan).sum()).backward()
    ours = _gradients(q.detach(), rr.detach(), g.detach(), fx, fy, fm, alpha, True)
    for mine, ref in zip(ours, (q.grad, rr.grad, g.grad)):
        torch.testing.assert_close(mine, ref, rtol=1e-9, atol=1e-9)


def test_costs_match_pot_losses():
    x, y, _, _ = _clusters(0)
    gen = torch.Generator().manual_seed(1)
    ux, uy = torch.randn(len(x), 3, generator=gen, dtype=F64), torch.randn(len(y), 3, generator=gen, dtype=F64)
    fit = _solve(x, y, rank=4, features=(ux, uy), alpha=0.4, seeds=(0,))
    plan = fit.coupling().numpy()
    cx, cy, m = _sq(x).numpy(), _sq(y).numpy(), (0.5 * torch.cdist(ux, uy) ** 2).numpy()
    p, q = plan.sum(1), plan.sum(0)
    const_c, hc1, hc2 = ot.gromov.init_matrix(cx, cy, p, q, "square_loss")
    ref = 0.4 * ot.gromov.gwloss(const_c, hc1, hc2, plan) + 0.6 * (m * plan).sum()
    assert fit.ot_cost().item() == pytest.approx(ref, rel=1e-8)
    assert fit.structure_cost().item() == pytest.approx(ot.gromov.gwloss(const_c, hc1, hc2, plan), rel=1e-8)
    # the factored products agree with the dense plan
    v = torch.randn(len(y), 2, generator=gen, dtype=F64)
    torch.testing.assert_close(fit.apply(v), fit.coupling() @ v)
    row, col = fit.marginals()
    torch.testing.assert_close(row, torch.full_like(row, 1 / len(x)), atol=1e-6, rtol=0)
    torch.testing.assert_close(col, torch.full_like(col, 1 / len(y)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("fused", [False, True])
def test_entropic_reference_matches_pot(fused):
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(20, 2, generator=gen, dtype=F64), torch.randn(18, 3, generator=gen, dtype=F64)
    ux, uy = torch.randn(20, 2, generator=gen, dtype=F64), torch.randn(18, 2, generator=gen, dtype=F64)
    cx, cy, m = _sq(x).numpy(), _sq(y).numpy(), (0.5 * torch.cdist(ux, uy) ** 2).numpy()
    a, b = np.full(20, 1 / 20), np.full(18, 1 / 18)
    eps = 0.5
    if fused:
        plan = ot.gromov.entropic_fused_gromov_wasserstein(
            m, cx, cy, a, b, "square_loss", epsilon=eps, alpha=0.5, max_iter=1000, tol=1e-10)
        ours = entropic_gw(x, y, epsilon=eps, features=(ux, uy), alpha=0.5)
        ref = gw_cost(torch.tensor(plan), _sq(x), _sq(y), torch.tensor(m), 0.5).item()
    else:
        plan = ot.gromov.entropic_gromov_wasserstein(cx, cy, a, b, "square_loss", epsilon=eps, max_iter=1000, tol=1e-10)
        ours = entropic_gw(x, y, epsilon=eps)
        ref = gw_cost(torch.tensor(plan), _sq(x), _sq(y)).item()
    assert ours.converged
    assert ours.cost == pytest.approx(ref, rel=0.02)
    np.testing.assert_allclose(ours.plan.numpy(), plan, atol=2e-3)


def test_no_worse_than_pot_lowrank_gw():
    """Same problem (rank-4 GW, squared Euclidean) as POT's low-rank GW: cost within 2%."""
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(60, 2, generator=gen, dtype=F64), torch.randn(50, 3, generator=gen, dtype=F64)
    q, r, g = ot.lowrank_gromov_wasserstein_samples(x.numpy(), y.numpy(), rank=4, seed_init=0)[:3]
    pot = gw_cost(torch.tensor(q / g @ r.T), _sq(x), _sq(y)).item()
    ours = _solve(x, y, rank=4, seeds=(0,)).ot_cost().item()  # one random start
    assert ours <= 1.02 * pot


def test_atomic_problem_reaches_exact_gw():
    """Clouds of 4 and 3 repeated atoms: the optimal plan has rank ≤ 3, so rank 3 can reach
    POT's exact (conditional-gradient) GW cost; entropic GW pays for its blur."""
    ax = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [3.0, 2.0]], dtype=F64)
    ay = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 1.0], [0.0, 2.5, 0.0]], dtype=F64)
    x = ax[torch.tensor([0] * 8 + [1] * 5 + [2] * 4 + [3] * 3)]
    y = ay[torch.tensor([0] * 9 + [1] * 6 + [2] * 5)]
    a, b = np.full(20, 1 / 20), np.full(20, 1 / 20)
    plan = ot.gromov.gromov_wasserstein(_sq(x).numpy(), _sq(y).numpy(), a, b, "square_loss")
    exact = gw_cost(torch.tensor(plan), _sq(x), _sq(y)).item()
    ours = _solve(x, y, rank=3, seeds=(0, 1, 2, 3)).ot_cost().item()
    assert ours <= 1.02 * exact + 1e-9


def test_recovers_planted_isometry():
    x, y, perm, labels = _clusters(4)
    truth = torch.argsort(perm)  # x_i ↦ y_truth[i]
    # full rank: the entropic reference's argmax per row is the permutation
    ref = entropic_gw(x, y, epsilon=0.1, tol=1e-5, sinkhorn_tol=1e-5)
    assert (ref.plan.argmax(1) == truth).float().mean() >= 0.95
    # low rank 4: each cluster goes to its image (mass on the right cluster pairs)
    fit = _solve(x, y, rank=4)
    same = labels[:, None] == labels[perm][None]
    assert (fit.coupling() * same).sum() >= 0.95
    assert (same[torch.arange(len(x)), fit.coupling().argmax(1)]).float().mean() >= 0.95
    # barycentric projection lands near the image of each point, relative to the cloud's size
    err = (fit.transport() - y[truth]).norm(dim=1).mean() / y.std(0).norm()
    assert err < 0.2


def test_unbalanced_ignores_outliers():
    x, y, perm, _ = _clusters(5)
    gen = torch.Generator().manual_seed(5)
    outliers = torch.tensor([12.0, 12.0], dtype=F64) + 0.3 * torch.randn(6, 2, generator=gen, dtype=F64)
    y_out = torch.cat([y, outliers])
    b = torch.full((len(y_out),), 1 / len(y_out), dtype=F64)
    a = torch.full((len(x),), 1 / len(x), dtype=F64)
    balanced = _solve(x, y_out, a, b, rank=4, seeds=(0,))
    unbalanced = _solve(x, y_out, a, b, rank=4, rho_a=50.0, rho_b=50.0)
    on_outliers = lambda fit: fit.r.sum(1)[len(y):].sum().item() / fit.r.sum().item()  # noqa: E731
    assert on_outliers(balanced) == pytest.approx(6 / 46, rel=1e-4)
    assert on_outliers(unbalanced) < 0.01
    # the inliers keep most of their mass (GW's quadratic cost also shrinks the total a little)
    assert unbalanced.r.sum(1)[: len(y)].sum() >= 0.7 * len(y) / len(y_out)


def test_fused_features_break_the_symmetry():
    """A square's GW cannot tell its reflections apart; features can (α < 1)."""
    corners = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], dtype=F64)
    x = corners.repeat_interleave(5, 0)
    y = x @ _rotation(0.3).T
    feats = torch.eye(4, dtype=F64).repeat_interleave(5, 0)
    fit = _solve(x, y, rank=4, features=(feats, feats), alpha=0.5)
    assert torch.trace(fit.coupling().reshape(4, 5, 4, 5).sum((1, 3))) >= 0.95


def test_linear_memory_at_large_n():
    gen = torch.Generator().manual_seed(6)
    n = 50_000  # a dense n × n cost would need 20 GB
    x, y = torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = lowrank_gw(x, y, rank=5, max_iter=3, generator=0)
    assert fit.q.shape == (n, 5) and math.isfinite(fit.ot_cost().item())
    torch.testing.assert_close(fit.marginals()[0], torch.full((n,), 1 / n), rtol=1e-3, atol=0)


def test_bad_inputs_name_the_argument():
    x, y = torch.randn(10, 2, dtype=F64), torch.randn(8, 3, dtype=F64)
    with pytest.raises(ValueError, match="rank"):
        lowrank_gw(x, y, rank=9)
    with pytest.raises(ValueError, match="alpha"):
        lowrank_gw(x, y, rank=2, alpha=0.5)
    with pytest.raises(ValueError, match="alpha"):
        lowrank_gw(x, y, rank=2, features=(x, torch.randn(8, 2, dtype=F64)), alpha=1.5)
    with pytest.raises(ValueError, match="features"):
        lowrank_gw(x, y, rank=2, features=(x, torch.randn(7, 2, dtype=F64)), alpha=0.5)
    with pytest.raises(ValueError, match="cost_x"):
        lowrank_gw(x, y, rank=2, cost_x=torch.randn(10, 10, dtype=F64))
    with pytest.raises(ValueError, match="mass"):
        lowrank_gw(x, y, torch.full((10,), 0.2, dtype=F64), rank=2)
    with pytest.raises(ValueError, match="epsilon"):
        entropic_gw(x, y, epsilon=0.0)
    with pytest.raises(ValueError, match="rho_a"):
        lowrank_gw(x, y, rank=2, rho_a=-1.0)


def test_rigid_fit_recovers_a_known_motion_and_labels_transfer():
    from otkit.lowrank.gromov import rigid_fit, transfer_labels

    gen = torch.Generator().manual_seed(7)
    src = torch.randn(30, 2, generator=gen, dtype=F64)
    rot, shift = _rotation(2.0), torch.tensor([3.0, -1.0], dtype=F64)
    est_rot, est_shift = rigid_fit(src, src @ rot.T + shift)
    torch.testing.assert_close(est_rot, rot)
    torch.testing.assert_close(est_shift, shift)
    # a reflection is not a rotation: the fit stays in SO(2)
    assert torch.linalg.det(rigid_fit(src, src * torch.tensor([1.0, -1.0], dtype=F64))[0]) > 0
    x, y, perm, labels = _clusters(4)
    fit = _solve(x, y, rank=4, seeds=(0,))
    assert (transfer_labels(fit, labels[perm]) == labels).float().mean() >= 0.95
