"""Gradients of otkit.sinkhorn at the fixed point: envelope and implicit differentiation.

References nobody here wrote: central finite differences of a solve run to tol 1e-12 in float64
(scipy's numerical-derivative convention), and the closed form ∂OT_ε/∂x_i = Σ_j P_ij (x_i − y_j)
of the envelope theorem for ½‖x − y‖².
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import otkit

F64 = torch.float64
TIGHT = dict(tol=1e-12, max_iter=20_000)


def _clouds(n=30, m=25, d=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = torch.randn(m, d, generator=gen, dtype=F64) * 0.8 + 1.0
    return x, y


def _finite_difference(fn, x: torch.Tensor, direction: torch.Tensor, h: float = 1e-5) -> float:
    with torch.no_grad():
        return (fn(x + h * direction) - fn(x - h * direction)).item() / (2 * h)


def _directional(fn, x: torch.Tensor, direction: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(x), x)
    return (grad * direction).sum().item()


@pytest.mark.parametrize("differentiation", ["envelope", "implicit"])
def test_gradient_of_the_ot_value_matches_finite_differences(differentiation):
    x, y = _clouds()
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=F64)

    def value(points):
        res = otkit.sinkhorn(points, y, epsilon=0.3, differentiation=differentiation, **TIGHT)
        return res.dual_objective()

    exact = _finite_difference(value, x, direction)
    assert _directional(value, x, direction) == pytest.approx(exact, rel=1e-6, abs=1e-9)


def test_envelope_gradient_is_the_closed_form():
    x, y = _clouds()
    x = x.clone().requires_grad_(True)
    res = otkit.sinkhorn(x, y, epsilon=0.3, **TIGHT)
    (grad,) = torch.autograd.grad(res.dual_objective(), x)
    plan = res.coupling().detach()
    closed = plan.sum(1, keepdim=True) * x.detach() - plan @ y  # Σ_j P_ij (x_i − y_j)
    torch.testing.assert_close(grad, closed, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("tau", [1.0, 0.8])
@pytest.mark.parametrize("output", ["transport", "ot_cost", "potentials"])
def test_implicit_gradients_of_every_output_match_finite_differences(output, tau):
    x, y = _clouds()
    x_new = torch.randn(7, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    weights = torch.randn(7, 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    wf = torch.randn(30, generator=torch.Generator().manual_seed(4), dtype=F64)
    wg = torch.randn(25, generator=torch.Generator().manual_seed(5), dtype=F64)
    if tau == 1.0:  # balanced potentials are defined up to (f + t, g − t): a shift-free test
        wg = wg - wg.mean() + wf.mean() * 30 / 25

    def value(targets):
        res = otkit.sinkhorn(x, targets, epsilon=0.3, tau_a=tau, tau_b=tau,
                             differentiation="implicit", **TIGHT)
        if output == "transport":
            return (res.transport(x_new) * weights).sum()
        if output == "ot_cost":
            return res.ot_cost()
        return (res.f * wf).sum() + (res.g * wg).sum()

    direction = torch.randn(y.shape, generator=torch.Generator().manual_seed(6), dtype=F64)
    exact = _finite_difference(value, y, direction)
    assert _directional(value, y, direction) == pytest.approx(exact, rel=1e-5, abs=1e-8)


def test_envelope_is_only_first_order_for_the_map_and_implicit_is_exact():
    """The test can fail: the one-pass gradient of the map differs from the true one."""
    x, y = _clouds()
    x_new = torch.randn(7, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    direction = torch.randn(y.shape, generator=torch.Generator().manual_seed(6), dtype=F64)

    def make(differentiation):
        def value(targets):
            res = otkit.sinkhorn(x, targets, epsilon=0.3, differentiation=differentiation, **TIGHT)
            return res.transport(x_new).sum()
        return value

    exact = _finite_difference(make("implicit"), y, direction)
    implicit = _directional(make("implicit"), y, direction)
    envelope = _directional(make("envelope"), y, direction)
    assert abs(implicit - exact) < 1e-6 * abs(exact) + 1e-9
    assert abs(envelope - exact) > 100 * abs(implicit - exact)


def test_gradients_flow_to_weights_and_cost_parameters():
    x, y = _clouds()
    a = torch.full((30,), 1 / 30, dtype=F64, requires_grad=True)
    res = otkit.sinkhorn(x, y, a=a, epsilon=0.3, **TIGHT)
    (grad_a,) = torch.autograd.grad(res.dual_objective(), a)
    # ∂OT_ε/∂a = f (balanced, up to the shift common to all entries)
    torch.testing.assert_close(grad_a - grad_a.mean(), res.f.detach() - res.f.detach().mean())


def test_the_loop_is_not_recorded_and_values_do_not_change():
    x, y = _clouds()
    plain = otkit.sinkhorn(x, y, epsilon=0.3, **TIGHT)
    with_grad = otkit.sinkhorn(x.clone().requires_grad_(True), y, epsilon=0.3, **TIGHT)
    assert torch.equal(plain.f, with_grad.f.detach()) and torch.equal(plain.g, with_grad.g.detach())
    assert with_grad.f.requires_grad and not plain.f.requires_grad
    # the graph holds one soft c-transform, not n_iter of them
    assert with_grad.n_iter > 5
    depth, node, seen = 0, with_grad.f.grad_fn, set()
    stack = [(node, 0)]
    while stack:
        node, level = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        depth = max(depth, level)
        stack.extend((nxt, level + 1) for nxt, _ in node.next_functions)
    assert depth < 40


def test_online_mode_gradients_equal_dense_ones():
    x, y = _clouds(n=60, m=50)
    grads = {}
    for mode in ("dense", "online"):
        xx = x.clone().requires_grad_(True)
        res = otkit.sinkhorn(xx, y, epsilon=0.3, mode=mode, block_size=7,
                             differentiation="implicit", **TIGHT)
        (grads[mode],) = torch.autograd.grad(res.transport(x[:5]).sum(), xx)
    torch.testing.assert_close(grads["online"], grads["dense"], rtol=1e-7, atol=1e-10)


def test_bad_differentiation_is_refused():
    x, y = _clouds()
    with pytest.raises(ValueError, match="^differentiation must be one of"):
        otkit.sinkhorn(x, y, differentiation="unrolled")


_MEMORY = textwrap.dedent("""
    import sys, torch, otkit

    def status(field):  # KiB, from /proc/self/status
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])

    torch.manual_seed(0)
    n, grad = 5000, sys.argv[1] == "grad"
    x, y = torch.randn(n, 2), torch.randn(n, 2) + 1.0
    if grad:
        x.requires_grad_(True)
    # the peak (VmHWM) is inherited from the forking parent: reset it, count from here
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = status("VmRSS")
    res = otkit.sinkhorn(x, y, relative_epsilon=0.05, mode="dense")
    if grad:
        res.dual_objective().backward()
    print(status("VmHWM") - start)
""")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_gradient_memory_at_5000_points_is_within_3x_of_a_forward_solve():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OTKIT_COMPILE": "0"}
    extra = {}
    for kind in ("forward", "grad"):
        out = subprocess.run([sys.executable, "-c", _MEMORY, kind], env=env, capture_output=True,
                             text=True, check=True)
        extra[kind] = int(out.stdout.split()[-1])  # KiB above the start of the solve
    assert extra["forward"] > 50_000  # the dense solve holds C and Cᵀ: 2 × 100 MB
    assert extra["grad"] <= 3 * extra["forward"], extra
