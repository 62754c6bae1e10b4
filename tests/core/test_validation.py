"""Bad input fails at the door with an error naming the argument (DESIGN.md: ValueError or
TypeError naming the argument and the fix), and valid random input always works."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import otkit

F64, F32 = torch.float64, torch.float32
N, M, D = 7, 5, 2


@pytest.fixture
def clouds():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, D, generator=gen, dtype=F64)
    y = torch.randn(M, D, generator=gen, dtype=F64)
    a = torch.full((N,), 1 / N, dtype=F64)
    b = torch.full((M,), 1 / M, dtype=F64)
    return x, y, a, b


@pytest.fixture
def solved(clouds):
    x, y, a, b = clouds
    return otkit.sinkhorn(x, y, a, b, tol=1e-6)


def _with(t: torch.Tensor, index, value) -> torch.Tensor:
    t = t.clone()
    t[index] = value
    return t


BOTH = [pytest.param(otkit.sinkhorn, id="sinkhorn"), pytest.param(otkit.emd, id="emd")]


# ------------------------------------------------------------------ clouds


@pytest.mark.parametrize("solver", BOTH)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("which", ["x", "y"])
def test_non_finite_points(clouds, solver, bad, which):
    x, y, a, b = clouds
    args = {"x": x, "y": y}
    args[which] = _with(args[which], (2, 1), bad)
    with pytest.raises(ValueError, match=rf"^{which} contains NaN or inf"):
        solver(args["x"], args["y"], a, b)


@pytest.mark.parametrize("solver", BOTH)
def test_mismatched_dimensions(clouds, solver):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"x and y must have the same dimension d"):
        solver(x, torch.randn(M, 3, dtype=F64), a, b)


@pytest.mark.parametrize("solver", BOTH)
@pytest.mark.parametrize("shape", [(N,), (N, D, 1), ()])
def test_wrong_ndim(clouds, solver, shape):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^x must have shape \[n, d\]"):
        solver(torch.zeros(shape, dtype=F64), y, a, b)
    with pytest.raises(ValueError, match=r"^y must have shape \[n, d\]"):
        solver(x, torch.zeros(shape, dtype=F64), a, b)


@pytest.mark.parametrize("solver", BOTH)
def test_empty_clouds(clouds, solver):
    x, y, _, _ = clouds
    with pytest.raises(ValueError, match=r"^x is empty"):
        solver(torch.zeros(0, D, dtype=F64), y)
    with pytest.raises(ValueError, match=r"^y is empty"):
        solver(x, torch.zeros(0, D, dtype=F64))
    with pytest.raises(ValueError, match=r"^x has zero features"):
        solver(torch.zeros(N, 0, dtype=F64), torch.zeros(M, 0, dtype=F64))


@pytest.mark.parametrize("solver", BOTH)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_points(clouds, solver, dtype):
    x, y, a, b = clouds
    with pytest.raises(TypeError, match=rf"^x has dtype {dtype}.*floating point"):
        solver(x.to(dtype), y, a, b)
    with pytest.raises(TypeError, match=rf"^y has dtype {dtype}"):
        solver(x, y.to(dtype), a, b)


@pytest.mark.parametrize("solver", BOTH)
def test_not_a_tensor(clouds, solver):
    x, y, a, b = clouds
    with pytest.raises(TypeError, match=r"^x must be a torch.Tensor"):
        solver(x.numpy(), y, a, b)
    with pytest.raises(TypeError, match=r"^y must be a torch.Tensor"):
        solver(x, y.tolist(), a, b)
    with pytest.raises(TypeError, match=r"^a must be a torch.Tensor"):
        solver(x, y, a.numpy(), b)


@pytest.mark.parametrize("solver", BOTH)
def test_different_dtypes(clouds, solver):
    x, y, a, b = clouds
    with pytest.raises(TypeError, match=r"x has dtype torch.float32 but y has torch.float64"):
        solver(x.float(), y, a, b)


# ----------------------------------------------------------------- weights


@pytest.mark.parametrize("solver", BOTH)
@pytest.mark.parametrize("which", ["a", "b"])
def test_bad_weights(clouds, solver, which):
    x, y, a, b = clouds

    def call(w):
        return solver(x, y, w, b) if which == "a" else solver(x, y, a, w)

    good = a if which == "a" else b
    size = good.shape[0]
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match=rf"^{which} contains NaN or inf"):
            call(_with(good, 0, bad))
    with pytest.raises(ValueError, match=rf"^{which} has negative entries"):
        call(_with(good, 0, -0.01))
    with pytest.raises(ValueError, match=rf"^{which} has zero total mass"):
        call(torch.zeros(size, dtype=F64))
    with pytest.raises(ValueError, match=rf"^{which} must have shape \[{size}\]"):
        call(torch.full((size + 1,), 1 / (size + 1), dtype=F64))
    with pytest.raises(ValueError, match=rf"^{which} must have shape \[{size}\]"):
        call(good[None])
    with pytest.raises(TypeError, match=rf"^{which} has dtype torch.int64"):
        call(torch.ones(size, dtype=torch.int64))


def test_unequal_masses_when_balanced(clouds):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"equal total mass.*rho_a/rho_b"):
        otkit.sinkhorn(x, y, a, 2 * b)
    # relaxed, it is fine; emd normalizes
    otkit.sinkhorn(x, y, a, 2 * b, tau_a=0.9, tau_b=0.9)
    res = otkit.emd(x, y, a, 2 * b)
    assert res.b.sum().item() == pytest.approx(1.0)


def test_zero_weights_are_valid(clouds):
    x, y, a, b = clouds
    a = _with(a, 0, 0.0)
    a = a / a.sum()
    res = otkit.sinkhorn(x, y, a, b, tol=1e-8)
    assert res.converged and torch.isfinite(res.f).all()
    assert res.coupling()[0].abs().max().item() < 1e-300
    assert otkit.emd(x, y, a, b).coupling()[0].abs().max().item() == 0.0


# -------------------------------------------------------------- parameters


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_bad_epsilon(clouds, value):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^epsilon must be a finite number > 0"):
        otkit.sinkhorn(x, y, a, b, epsilon=value)
    with pytest.raises(ValueError, match=r"^relative_epsilon must be a finite number > 0"):
        otkit.sinkhorn(x, y, a, b, relative_epsilon=value)


def test_epsilon_types_and_both_given(clouds):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"either epsilon \(absolute\) or relative_epsilon"):
        otkit.sinkhorn(x, y, a, b, epsilon=0.1, relative_epsilon=0.1)
    with pytest.raises(TypeError, match=r"^epsilon must be a number"):
        otkit.sinkhorn(x, y, a, b, epsilon="0.1")
    with pytest.raises(ValueError, match=r"^epsilon must be a scalar"):
        otkit.sinkhorn(x, y, a, b, epsilon=torch.ones(2))
    res = otkit.sinkhorn(x, y, a, b, epsilon=torch.tensor(0.3))  # a 0-d tensor is fine
    assert res.epsilon == pytest.approx(0.3)


@pytest.mark.parametrize("name", ["tau_a", "tau_b"])
@pytest.mark.parametrize("value", [0.0, -0.5, 1.5, math.nan])
def test_bad_tau(clouds, name, value):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=rf"^{name} must lie in \(0, 1\]"):
        otkit.sinkhorn(x, y, a, b, **{name: value})


def test_tau_type(clouds):
    x, y, a, b = clouds
    with pytest.raises(TypeError, match=r"^tau_a must be a number"):
        otkit.sinkhorn(x, y, a, b, tau_a="0.5")


@pytest.mark.parametrize("value", [0.0, -1e-3, math.nan])
def test_bad_tol(clouds, value):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^tol must be a finite number > 0"):
        otkit.sinkhorn(x, y, a, b, tol=value)


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10"])
def test_bad_max_iter(clouds, value):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^max_iter must be a positive integer"):
        otkit.sinkhorn(x, y, a, b, max_iter=value)
    with pytest.raises(ValueError, match=r"^max_iter must be a positive integer"):
        otkit.emd(x, y, a, b, max_iter=value)


def test_bad_names(clouds):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^backend must be one of .*'pot'.*got 'keops'"):
        otkit.sinkhorn(x, y, a, b, backend="keops")
    with pytest.raises(ValueError, match=r"^mode must be one of 'auto', 'dense', 'online'; got 'spa"):
        otkit.sinkhorn(x, y, a, b, mode="sparse")
    for solver in (otkit.sinkhorn, otkit.emd):
        with pytest.raises(ValueError, match=r"^cost must be one of .*got 'cosine'"):
            solver(x, y, a, b, cost="cosine")
        with pytest.raises(ValueError, match=r"^cost must be one of"):
            solver(x, y, a, b, cost=None)


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.5])
def test_bad_epsilon_scaling(clouds, value):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^epsilon_scaling must be a factor in \(0, 1\)"):
        otkit.sinkhorn(x, y, a, b, epsilon_scaling=value)


@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_bad_block_size(clouds, value):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"^block_size must be a positive integer"):
        otkit.sinkhorn(x, y, a, b, mode="online", block_size=value)


@pytest.mark.parametrize("backend", ["pot", "geomloss"])
def test_dense_only_backends(clouds, backend):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=rf"backend='{backend}'.*mode='dense'"):
        otkit.sinkhorn(x, y, a, b, backend=backend, mode="online")


def test_geomloss_backend_limits(clouds):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"backend='geomloss' supports cost='sqeuclidean'"):
        otkit.sinkhorn(x, y, a, b, backend="geomloss", cost="dot")


# -------------------------------------------------------------------- init


def test_bad_init(clouds, solved):
    x, y, a, b = clouds
    f, g = solved.f, solved.g
    with pytest.raises(TypeError, match=r"^init must be a pair \(f, g\)"):
        otkit.sinkhorn(x, y, a, b, init=f)
    with pytest.raises(TypeError, match=r"^init must be a pair"):
        otkit.sinkhorn(x, y, a, b, init=(f, g, f))
    with pytest.raises(ValueError, match=rf"^init\[0\] \(f\) must be a tensor of shape \[{N}\]"):
        otkit.sinkhorn(x, y, a, b, init=(g, g))
    with pytest.raises(ValueError, match=rf"^init\[1\] \(g\) must be a tensor of shape \[{M}\]"):
        otkit.sinkhorn(x, y, a, b, init=(f, f))
    with pytest.raises(ValueError, match=r"^init\[1\] \(g\) must be a tensor of shape"):
        otkit.sinkhorn(x, y, a, b, init=(f, g[None]))
    with pytest.raises(ValueError, match=r"^init\[0\] \(f\) must be a tensor"):
        otkit.sinkhorn(x, y, a, b, init=(f.tolist(), g))
    with pytest.raises(ValueError, match=r"^init\[0\] \(f\) contains NaN or inf"):
        otkit.sinkhorn(x, y, a, b, init=(_with(f, 0, math.nan), g))


# ---------------------------------------------------------- result methods


def test_apply_wrong_shape(solved):
    with pytest.raises(ValueError, match=rf"^v must have shape \[{M}\] or \[{M}, k\]"):
        solved.apply(torch.ones(N, dtype=F64))
    with pytest.raises(ValueError, match=rf"^v must have shape \[{N}\] or \[{N}, k\].*Pᵀ"):
        solved.apply(torch.ones(M, dtype=F64), transpose=True)
    with pytest.raises(ValueError, match=r"^v must have shape"):
        solved.apply(torch.ones(M, 2, 2, dtype=F64))
    with pytest.raises(ValueError, match=r"^v must have shape"):
        solved.apply(torch.ones((), dtype=F64))
    with pytest.raises(ValueError, match=r"^v must have shape .* got list"):
        solved.apply([1.0] * M)


def test_transport_wrong_points(solved):
    with pytest.raises(ValueError, match=rf"^x_new must have shape \[k, {D}\], got \(4, 3\)"):
        solved.transport(torch.ones(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"^x_new must have shape"):
        solved.transport(torch.ones(D, dtype=F64))
    with pytest.raises(ValueError, match=r"^x_new contains NaN or inf"):
        solved.transport(torch.full((3, D), math.nan, dtype=F64))


@pytest.mark.parametrize("k", [0, -1, 2.0, True])
def test_sample_pairs_bad_k(solved, k):
    with pytest.raises(ValueError, match=r"^k must be a positive integer"):
        solved.sample_pairs(k)


def test_renormalized_entropy_single_atom():
    x = torch.zeros(1, 2, dtype=F64)
    y = torch.randn(4, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    res = otkit.sinkhorn(x, y)
    with pytest.raises(ValueError, match=r"single atom"):
        res.renormalized_entropy()


def test_emd_transport_new_points(clouds):
    x, y, a, b = clouds
    with pytest.raises(ValueError, match=r"out-of-sample"):
        otkit.emd(x, y, a, b).transport(x[:3])


# ----------------------------------------------------------- property test


@st.composite
def problems(draw):
    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 8))
    d = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from([F64, F32]))
    gen = torch.Generator().manual_seed(seed)
    x = draw(st.floats(0.1, 10.0)) * torch.randn(n, d, generator=gen, dtype=F64)
    y = torch.randn(m, d, generator=gen, dtype=F64) + draw(st.floats(-5.0, 5.0))
    a = torch.rand(n, generator=gen, dtype=F64) + draw(st.sampled_from([0.0, 0.01, 1.0]))
    b = torch.rand(m, generator=gen, dtype=F64) + draw(st.sampled_from([0.0, 0.01, 1.0]))
    a, b = a / a.sum(), b / b.sum()
    rel_eps = draw(st.floats(0.05, 5.0))
    tau = draw(st.sampled_from([1.0, 1.0, 0.9, 0.5]))
    mode = draw(st.sampled_from(["dense", "online"]))
    return tuple(t.to(dtype) for t in (x, y, a, b)), rel_eps, tau, mode


# derandomize: the same 25 examples on every run, so CI is reproducible
@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.data())
def test_random_valid_problems_solve_and_nan_is_refused(problem, data):
    (x, y, a, b), rel_eps, tau, mode = problem
    tol = 1e-6 if x.dtype == F64 else 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error", otkit.ConvergenceWarning)
        res = otkit.sinkhorn(x, y, a, b, relative_epsilon=rel_eps, tau_a=tau, tau_b=tau, tol=tol,
                             mode=mode, block_size=3, max_iter=20_000)
    assert res.converged
    for t in (res.f, res.g, res.coupling()):
        assert torch.isfinite(t).all()
    assert math.isfinite(res.ot_cost().item())
    if tau == 1.0:
        # both marginals within tol (the last half-step makes the rows exact: slack 2×)
        assert res.marginal_error() <= 2 * tol
    # NaN anywhere in the input is refused, naming the argument
    which = data.draw(st.sampled_from(["x", "y", "a", "b"]))
    args = dict(x=x, y=y, a=a, b=b)
    flat = args[which].clone().reshape(-1)
    flat[data.draw(st.integers(0, flat.numel() - 1))] = math.nan
    args[which] = flat.reshape(args[which].shape)
    with pytest.raises(ValueError, match=rf"^{which} contains NaN or inf"):
        otkit.sinkhorn(**args, relative_epsilon=rel_eps, tau_a=tau, tau_b=tau)
    with pytest.raises(ValueError, match=rf"^{which} contains NaN or inf"):
        otkit.emd(**args)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_is_refused_by_every_solver(dtype):
    # bfloat16 Sinkhorn used to be accepted and stall at 1.4e-2 marginal error
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 2, generator=gen), torch.randn(30, 2, generator=gen) + 1.0
    solvers = {
        "sinkhorn": lambda x, y: otkit.sinkhorn(x, y),
        "emd": lambda x, y: otkit.emd(x, y),
        "lowrank": lambda x, y: otkit.lowrank(x, y, rank=2),
        "progot": lambda x, y: otkit.progot(x, y, num_steps=2),
    }
    for name, solve in solvers.items():
        with pytest.raises(TypeError, match=rf"^x has dtype {dtype}: half precision"):
            solve(x.to(dtype), y)
        with pytest.raises(TypeError, match=rf"^y has dtype {dtype}: half precision"):
            solve(x, y.to(dtype))


def test_check_choice_names_the_argument_and_the_options():
    from otkit.validation import check_choice

    assert check_choice("mode", "dense", ("dense", "online")) == "dense"
    with pytest.raises(ValueError, match=r"^mode must be one of 'dense', 'online'; got 'x'"):
        check_choice("mode", "x", ("dense", "online"))
    with pytest.raises(ValueError, match="^mode must be one of"):
        check_choice("mode", ["unhashable"], {"dense", "online"})
    with pytest.raises(TypeError, match="^digit must be one of"):
        check_choice("digit", True, (0, 1, 2))  # True == 1, but a bool is no digit
    assert check_choice("flag", True, (True, False)) is True
