"""otkit.sinkhorn on a batch [B, n, d]: each problem as solved alone, and as POT solves it.

References: otkit.sinkhorn on each problem alone (same iteration, so the same potentials,
iterations and error history to float64 rounding), POT's log-domain Sinkhorn
(``ot.bregman.sinkhorn_log``, cost ½‖x − y‖², reg = ε) for the plans, and scipy's chi-square
test for the pairs drawn by ``sample_columns``.
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import pytest
import scipy.stats
import torch

import otkit
from otkit import ConvergenceWarning, SinkhornBatchResult

F64 = torch.float64
B, N, M, D = 5, 40, 30, 2


def batch(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """B problems of different spreads (so different ε and stopping times), weights [B, n]."""
    gen = torch.Generator().manual_seed(seed)
    scale = torch.linspace(0.5, 3.0, B, dtype=F64).view(B, 1, 1)
    x = scale * torch.randn(B, N, D, generator=gen, dtype=F64)
    y = torch.randn(B, M, D, generator=gen, dtype=F64) + torch.tensor([1.0, -0.5], dtype=F64)
    a = 0.2 + torch.rand(B, N, generator=gen, dtype=F64)
    b = 0.2 + torch.rand(B, M, generator=gen, dtype=F64)
    return x, y, a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)


@pytest.mark.parametrize(
    "options",
    [dict(relative_epsilon=0.05), dict(epsilon=0.3), dict(epsilon=0.3, tau_a=0.9, tau_b=0.8),
     dict(epsilon=0.3, rho_a=2.0), dict(cost="euclidean", epsilon=0.2)],
    ids=["relative", "absolute", "unbalanced", "rho", "euclidean"],
)
def test_each_problem_is_solved_as_alone(options):
    x, y, a, b = batch()
    res = otkit.sinkhorn(x, y, a, b, tol=1e-9, **options)
    assert isinstance(res, SinkhornBatchResult) and len(res) == B
    assert bool(res.converged.all())
    iterations = set()
    for k in range(B):
        alone = otkit.sinkhorn(x[k], y[k], a[k], b[k], tol=1e-9, backend="torch", mode="dense",
                               **options)
        got = res[k]
        assert got.epsilon == pytest.approx(alone.epsilon, rel=1e-12)
        assert got.n_iter == alone.n_iter and got.converged
        torch.testing.assert_close(got.f, alone.f, rtol=0, atol=1e-9)
        torch.testing.assert_close(got.g, alone.g, rtol=0, atol=1e-9)
        torch.testing.assert_close(got.errors, alone.errors, rtol=1e-6, atol=1e-14)
        assert (got.tau_a, got.tau_b) == (alone.tau_a, alone.tau_b)
        iterations.add(got.n_iter)
    assert len(iterations) > 1, "the problems should stop at different iterations"
    assert torch.isnan(res.errors).any()  # histories end when each problem stops


def test_plans_match_pot():
    x, y, a, b = batch(1)
    res = otkit.sinkhorn(x, y, a, b, epsilon=0.5, tol=1e-10)
    plans = res.coupling()
    for k in range(B):
        cost = 0.5 * ot.dist(x[k].numpy(), y[k].numpy())
        ref = ot.bregman.sinkhorn_log(a[k].numpy(), b[k].numpy(), cost, reg=0.5,
                                      numItermax=20_000, stopThr=1e-12)
        np.testing.assert_allclose(plans[k].numpy(), ref, atol=1e-9)
        assert res.ot_cost()[k].item() == pytest.approx(float((ref * cost).sum()), rel=1e-7)


def test_shared_weights_and_init():
    x, y, _, _ = batch(2)
    a = torch.full((N,), 1.0 / N, dtype=F64)
    res = otkit.sinkhorn(x, y, a, None, epsilon=0.3, tol=1e-9)
    uniform = otkit.sinkhorn(x, y, epsilon=0.3, tol=1e-9)
    torch.testing.assert_close(res.f, uniform.f)
    warm = otkit.sinkhorn(x, y, epsilon=0.25, tol=1e-9, init=(res.f, res.g))
    cold = otkit.sinkhorn(x, y, epsilon=0.25, tol=1e-9)
    assert (warm.n_iter <= cold.n_iter).all() and (warm.n_iter < cold.n_iter).any()
    torch.testing.assert_close(warm.coupling(), cold.coupling(), atol=1e-8, rtol=0)


def test_transport_is_each_problems_map():
    x, y, _, _ = batch(3)
    res = otkit.sinkhorn(x, y, epsilon=0.3, tol=1e-9)
    new = torch.randn(B, 7, D, dtype=F64, generator=torch.Generator().manual_seed(9))
    moved = res.transport(new)
    assert moved.shape == (B, 7, D)
    for k in range(B):
        torch.testing.assert_close(moved[k], res[k].transport(new[k]))


def test_sampled_columns_follow_each_row_of_the_plan():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 2, generator=gen, dtype=F64)
    y = torch.randn(2, 4, 2, generator=gen, dtype=F64)
    res = otkit.sinkhorn(x, y, epsilon=1.0, tol=1e-10)
    draws = 4000
    counts = torch.zeros(2, 3, 4)
    for _ in range(draws):
        j = res.sample_columns(gen)
        assert j.shape == (2, 3)
        counts.scatter_add_(2, j.unsqueeze(2), torch.ones(2, 3, 1))
    plans = res.coupling()
    conditional = plans / plans.sum(2, keepdim=True)
    for k in range(2):
        for i in range(3):
            _, p = scipy.stats.chisquare(counts[k, i].numpy(), draws * conditional[k, i].numpy())
            assert p > 1e-4, (k, i, p)


def test_a_problem_that_does_not_converge_warns_and_says_which():
    x, y, a, b = batch()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = otkit.sinkhorn(x, y, a, b, epsilon=0.01, max_iter=3)
    assert any(issubclass(w.category, ConvergenceWarning) and "of 5 problems" in str(w.message)
               for w in caught)
    assert not bool(res.converged.any()) and (res.n_iter == 3).all()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(y=torch.randn(4, M, D, dtype=F64)), ValueError, "same B and d"),
        (dict(a=torch.ones(B, N + 1, dtype=F64)), ValueError, r"a must have shape \[5, 40\]"),
        (dict(a=2 * torch.ones(N, dtype=F64) / N), ValueError, "equal total mass"),
        (dict(epsilon_scaling=0.5), ValueError, "epsilon_scaling"),
        (dict(backend="pot"), ValueError, "backend='torch' only"),
        (dict(mode="online"), ValueError, "dense"),
        (dict(rho_a=1.0), ValueError, "absolute epsilon"),
        (dict(epsilon=-1.0), ValueError, "epsilon"),
        (dict(init=(torch.zeros(N, dtype=F64), torch.zeros(M, dtype=F64))), ValueError,
         r"init\[0\] \(f\)"),
        (dict(x=torch.full((B, N, D), float("nan"), dtype=F64)), ValueError, "x contains NaN"),
    ],
)
def test_bad_input_names_the_argument(kwargs, error, match):
    x, y, _, _ = batch()
    args = {"x": x, "y": y, **kwargs}
    with pytest.raises(error, match=match):
        otkit.sinkhorn(args.pop("x"), args.pop("y"), **args)


def test_gradients_are_refused_clearly():
    x, y, _, _ = batch()
    with pytest.raises(ValueError, match="no gradients"):
        otkit.sinkhorn(x.requires_grad_(), y, epsilon=0.3)


@pytest.mark.parametrize("flag", ["0", "always"], ids=["eager", "compiled"])
@pytest.mark.parametrize("shift_kind", ["exact", "close", "cold", "far"])
def test_batched_lse_equals_logsumexp(monkeypatch, flag, shift_kind):
    from otkit import kernels

    monkeypatch.setenv("OTKIT_COMPILE", flag)
    gen = torch.Generator().manual_seed(5)
    cost = 3 * torch.rand(4, 9, 11, generator=gen, dtype=F64)
    h = torch.randn(4, 11, generator=gen, dtype=F64)
    inv_eps = torch.tensor([0.5, 2.0, 10.0, 40.0], dtype=F64).view(4, 1, 1)
    true = torch.logsumexp(h.unsqueeze(1) - cost * inv_eps, dim=2)
    shift = {"exact": true, "close": true + 0.3, "cold": torch.zeros_like(true),
             "far": true + 1000.0}[shift_kind]
    lse, ratio = kernels.batched_lse(cost, h, shift, inv_eps)
    torch.testing.assert_close(lse, true, rtol=0, atol=1e-11)
    torch.testing.assert_close(ratio, torch.exp((true - shift).clamp(max=80.0)), rtol=1e-9,
                               atol=1e-300)
    if flag == "always":
        assert kernels._compiled[("_batched_sum_pass", "cpu")] is not kernels._batched_sum_pass


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_batch_compiled_equals_eager(monkeypatch, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    x, y, a, b = (t.to(device) for t in batch(6))
    out = {}
    for flag in ("0", "always"):
        monkeypatch.setenv("OTKIT_COMPILE", flag)
        out[flag] = otkit.sinkhorn(x, y, a, b, epsilon=0.2, tol=1e-9)
    assert torch.equal(out["0"].n_iter, out["always"].n_iter)
    torch.testing.assert_close(out["always"].f, out["0"].f, rtol=0, atol=1e-9)
    assert out["0"].f.device.type == device
