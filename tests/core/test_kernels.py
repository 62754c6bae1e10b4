"""otkit.kernels.ShiftedLSE against torch.logsumexp, eager (OTKIT_COMPILE=0) and compiled.

``ShiftedLSE`` replaces the max pass of a stable log-sum-exp by a guessed shift and redoes
the rows whose guess was bad; the answer must be that of ``torch.logsumexp`` whatever the
shift (including shifts off by ±1000), and good shifts must take the fast path.

The switch: ``otkit.kernels.compile_enabled()`` reads ``OTKIT_COMPILE`` at every call, so
``monkeypatch.setenv`` (undone after each test) selects the path for that test only.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import otkit
from otkit import kernels

F64, F32 = torch.float64, torch.float32


@pytest.fixture(params=["eager", "compiled"])
def path(request, monkeypatch):
    monkeypatch.setenv("OTKIT_COMPILE", "0" if request.param == "eager" else "1")
    # these problems are small: below the size where otkit compiles, so force it here
    monkeypatch.setattr(kernels, "_COMPILE_MIN_CELLS", 0)
    assert kernels.compile_enabled() is (request.param == "compiled")
    return request.param


def _operator(cost: torch.Tensor, block: int | None):
    """ShiftedLSE over ``cost`` in bands of ``block`` rows, recording the redone rows."""
    n = cost.shape[0]
    redone: list[torch.Tensor] = []

    def bands():
        size = block or n
        for start in range(0, n, size):
            rows = slice(start, min(start + size, n))
            yield rows, cost[rows]

    def rows_of(index):
        redone.append(index.clone())
        return cost[index]

    return kernels.ShiftedLSE(bands, rows_of), redone


def _problem(dtype, n=41, m=29, inv_eps=3.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cost = 5 * torch.rand(n, m, generator=gen, dtype=F64) ** 2
    h = torch.randn(m, generator=gen, dtype=F64)
    h[3] = -1e4  # a zero weight, as the solvers floor log 0
    inv = torch.tensor(inv_eps, dtype=F64)
    true = torch.logsumexp(h[None] - cost * inv, dim=1)  # float64 reference
    return cost.to(dtype), h.to(dtype), inv.to(dtype), true, gen


def _atol(dtype, true, inv_eps):
    # float32: each exponent h − C/ε carries ~6e-8 relative rounding of its magnitude
    return 1e-11 if dtype == F64 else 2e-6 * (5 * inv_eps + true.abs().max().item() + 1)


SHIFTS = {
    "exact": lambda t, g: t,
    "close": lambda t, g: t + 0.5 * torch.randn(t.shape, generator=g, dtype=F64),
    "plus1000": lambda t, g: t + 1000.0,
    "minus1000": lambda t, g: t - 1000.0,
    "edges": lambda t, g: t + torch.tensor([24.0, -24.0, 26.0, -26.0, 80.0, -80.0, 90.0, -90.0],
                                           dtype=F64).repeat(6)[: t.shape[0]],
    "mixed": lambda t, g: t + 1000.0 * torch.randint(-1, 2, t.shape, generator=g).to(F64),
    "cold": lambda t, g: torch.zeros_like(t),
}


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
@pytest.mark.parametrize("block", [None, 7], ids=["one-band", "bands-of-7"])
@pytest.mark.parametrize("shift_kind", list(SHIFTS))
def test_shifted_lse_equals_logsumexp(path, dtype, block, shift_kind):
    cost, h, inv, true, gen = _problem(dtype)
    shift = SHIFTS[shift_kind](true, gen)
    op, redone = _operator(cost, block)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lse, ratio = op(h, shift.to(dtype), inv)
    # a compile failure would warn and fall back to eager
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]
    assert lse.dtype == dtype and lse.shape == true.shape
    assert torch.isfinite(lse).all() and torch.isfinite(ratio).all()
    atol = _atol(dtype, true, 3.0)
    torch.testing.assert_close(lse.double(), true, rtol=0, atol=atol)
    # ratio = exp(lse − shift), clamped at e^80 where the guess was far too low
    gap = (true - shift.to(dtype).double()).clamp(max=80.0)
    normal = gap > -60
    torch.testing.assert_close(ratio.double()[normal], gap[normal].exp(), rtol=2 * atol + 1e-12,
                               atol=0)
    assert (ratio.double()[~normal] <= 1e-26).all()
    # good guesses take the fast path; off-range ones are redone, and only those
    redone_rows = torch.cat(redone) if redone else torch.empty(0, dtype=torch.long)
    off = (true - shift).abs() > 25.5
    assert set(redone_rows.tolist()) >= set(off.nonzero().squeeze(1).tolist())
    if shift_kind in ("exact", "close"):
        assert redone_rows.numel() == 0
    assert set(redone_rows.tolist()) <= set(((true - shift).abs() > 24.5).nonzero()
                                            .squeeze(1).tolist())
    if path == "compiled":
        assert kernels._compiled[("_sum_pass", "cpu")] is not kernels._sum_pass


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_shifted_lse_at_tiny_epsilon(path, dtype):
    """1/ε = 1e4: exponents span ~1e5 within a row, far beyond the ±80 clamp."""
    cost, h, inv, true, gen = _problem(dtype, inv_eps=1e4, seed=1)
    for shift in (true, true + 1000.0, true - 1000.0, torch.zeros_like(true)):
        op, _ = _operator(cost, 5)
        lse, _ = op(h, shift.to(dtype), inv)
        scale = true.abs().max().item()
        atol = 1e-11 * scale if dtype == F64 else 2e-6 * scale
        torch.testing.assert_close(lse.double(), true, rtol=0, atol=atol)


def test_row_lse_reference():
    cost, h, inv, true, _ = _problem(F64)
    torch.testing.assert_close(kernels.row_lse(cost, h, inv), true)
    torch.testing.assert_close(kernels.row_lse(cost, h, 3.0), true)


def test_eager_path_is_the_plain_function(monkeypatch):
    monkeypatch.setenv("OTKIT_COMPILE", "0")
    assert kernels._kernel(kernels._sum_pass, torch.device("cpu")) is kernels._sum_pass
    monkeypatch.setenv("OTKIT_COMPILE", "false")
    assert not kernels.compile_enabled()
    monkeypatch.delenv("OTKIT_COMPILE")
    assert kernels.compile_enabled()  # compiled by default


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


def _on(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    return torch.device(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("tau", [1.0, 0.6], ids=["balanced", "tau0.6"])
@pytest.mark.parametrize("mode", ["dense", "online"])
def test_sinkhorn_eager_equals_compiled(make_clouds, monkeypatch, tau, mode, device):
    """The compiled path (C++ on CPU, Triton on CUDA) is really taken: OTKIT_COMPILE=always
    compiles below the size threshold, and the kernel cache holds a compiled function."""
    x, y, a, b = (t.to(_on(device)) for t in make_clouds(23, 17))
    out = {}
    for flag in ("0", "always"):
        monkeypatch.setenv("OTKIT_COMPILE", flag)
        out[flag] = otkit.sinkhorn(x, y, a, b, tau_a=tau, tau_b=tau, tol=1e-7, mode=mode,
                                   block_size=6)
    assert kernels._compiled[("_sum_pass", x.device.type)] is not kernels._sum_pass
    if mode == "online":  # a band of −x yᵀ is built inside the compiled pass (d ≤ 8)
        fused = kernels._compiled[("_points_sum_pass", x.device.type)]
        assert fused is not kernels._points_sum_pass
    eager, compiled = out["0"], out["always"]
    assert eager.n_iter == compiled.n_iter
    torch.testing.assert_close(compiled.f, eager.f, rtol=0, atol=1e-10)
    torch.testing.assert_close(compiled.g, eager.g, rtol=0, atol=1e-10)


def test_compile_threshold_and_the_always_switch(monkeypatch):
    """Below 2^18 cells the default runs eagerly; ``always`` compiles; ``0`` never does."""
    calls = []
    cost, h = torch.rand(8, 5, dtype=F64), torch.zeros(5, dtype=F64)
    shift, inv = torch.zeros(8, dtype=F64), torch.tensor(1.0, dtype=F64)
    monkeypatch.setattr(kernels, "_kernel", lambda fn, device: calls.append(fn) or fn)
    for flag, compiled in (("1", False), ("always", True), ("0", False)):
        calls.clear()
        monkeypatch.setenv("OTKIT_COMPILE", flag)
        kernels._call(kernels._sum_pass, cost, h, shift, inv)
        assert bool(calls) is (compiled and kernels.compile_enabled()), flag


@pytest.mark.parametrize("dtype", [F64, F32], ids=["float64", "float32"])
def test_sinkhorn_small_epsilon_eager_and_compiled_finite(make_clouds, monkeypatch, dtype):
    """Cold start at relative ε 1e-3: the first passes are all off-range rows."""
    x, y, a, b = make_clouds(23, 17, dtype=dtype)
    for flag in ("0", "always"):
        monkeypatch.setenv("OTKIT_COMPILE", flag)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", otkit.ConvergenceWarning)
            res = otkit.sinkhorn(x, y, a, b, relative_epsilon=1e-3, max_iter=50)
        assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all()
        assert math.isfinite(res.errors[-1].item())
