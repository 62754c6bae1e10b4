"""otkit.distributed: Sinkhorn sharded over torch.distributed, checked against one process.

References: :func:`otkit.sinkhorn` on the whole problem (same ε, iterations and potentials to
float64 rounding), exact OT (:func:`otkit.emd`, POT's network simplex) for the pairs drawn at
small ε, and scipy's chi-square test for the pairs drawn at large ε.

Two gloo processes on this machine run every multi-rank case in one spawn (module fixture
``two_ranks``): starting processes and importing torch costs seconds each, the solves
milliseconds. Bad inputs run in the same processes, one after another: each must raise on
every rank and leave the group usable for the next. A one-process group is tested in this
process (a gloo group on a ``HashStore``, no network).

Tolerances: float64 solves at ``tol=1e-10``; the sharded and single-process solvers add the
same numbers in a different order, so potentials agree to ~1e-15, asked here to 1e-10.
"""

from __future__ import annotations

import math
import re
import warnings

import pytest
import scipy.stats
import torch
import torch.distributed as dist

import otkit
from otkit import ConvergenceWarning
from otkit.distributed import ShardedSinkhornResult, run_local, shard, sharded_sinkhorn
from otkit.distributed.__main__ import main as demo_main
from otkit.distributed.sharded import _all_logsumexp

F64 = torch.float64
N, M = 301, 200  # n odd: the two shards differ in size (151 and 150)
TOL = 1e-10
ATOL = 1e-10
# Cases of the main comparison: the solver's keyword arguments, and whether a and b are
# non-uniform (sharded by the test) or left to their uniform defaults.
CASES = {
    "absolute": (dict(epsilon=0.1), False),
    "relative": (dict(relative_epsilon=0.05), True),
    "default": (dict(block_size=16), False),  # default ε (0.05 × std), streamed in bands
    "dense": (dict(epsilon=0.1, mode="dense"), True),  # each rank stores its [n_r, m] block
    # ε-scaling from std(C) down to a small ε: the same schedule, so the same iterations
    "scaled": (dict(epsilon=0.01, epsilon_scaling=0.7), True),
    "scaled_relative": (dict(relative_epsilon=0.01, epsilon_scaling=0.5, mode="dense"), False),
}
WARM_EPS = 0.08  # the warm start: from the "absolute" case's potentials (ε = 0.1)
PAIR_DRAWS = 4000


# --------------------------------------------------------------------------- problems


def clouds(n: int, m: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """``x: [n, 2]``, ``y: [m, 2]`` and non-uniform weights ``a: [n]``, ``b: [m]`` (mass 1)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=F64)
    y = 0.7 * torch.randn(m, 2, generator=gen, dtype=F64) + torch.tensor([1.5, -0.5], dtype=F64)
    a = 0.2 + torch.rand(n, generator=gen, dtype=F64)
    b = 0.2 + torch.rand(m, generator=gen, dtype=F64)
    return x, y, a / a.sum(), b / b.sum()


def translated_grid() -> tuple[torch.Tensor, torch.Tensor]:
    """12 well-separated points and a shuffled, translated copy: exact OT is a permutation.

    For ½‖x − y‖² a translation is optimal; neighbours are ~1 apart and the shift is 0.3, so
    every other assignment costs at least ~0.2 more per point, ten times ε = 0.02.
    """
    gen = torch.Generator().manual_seed(3)
    grid = torch.arange(4, dtype=F64)
    x = torch.cartesian_prod(grid, grid[:3]) + 0.1 * torch.rand(12, 2, generator=gen, dtype=F64)
    y = x[torch.randperm(12, generator=gen)] + torch.tensor([0.25, -0.15], dtype=F64)
    return x, y


BIG_N, BIG_M = 2501, 2100  # above the 2048-point subsample of PointCloud.cost_std
PAIRS_N, PAIRS_M, PAIRS_EPS = 7, 5, 0.5
GRID_EPS = 0.02


# --------------------------------------------------------------------------- worker


def _errors_of(call) -> tuple[str, str] | None:
    try:
        call()
    except (ValueError, TypeError, RuntimeError) as err:
        return type(err).__name__, str(err)
    return None


def _bad_inputs(rank: int) -> dict[str, tuple[str, str] | None]:
    """Each bad input, on every rank, in turn: the error each raised (None: none raised)."""
    x, y, a, b = clouds(N, M)
    xr = shard(x)
    nan_x = xr.clone()
    nan_x[0, 0] = math.nan
    nan_on_rank_1 = nan_x if rank == 1 else xr
    other_y = y + 1.0 if rank == 1 else y
    cases = {
        "dimension": lambda: sharded_sinkhorn(xr, torch.cat([y, y[:, :1]], 1)),
        "nan": lambda: sharded_sinkhorn(nan_x, y),
        "nan_one_rank": lambda: sharded_sinkhorn(nan_on_rank_1, y),
        "epsilon": lambda: sharded_sinkhorn(xr, y, epsilon=0.0),
        "relative_epsilon": lambda: sharded_sinkhorn(xr, y, relative_epsilon=-1.0),
        "both_epsilons": lambda: sharded_sinkhorn(xr, y, epsilon=0.1, relative_epsilon=0.1),
        "a_shard_shape": lambda: sharded_sinkhorn(xr, y, shard(a)[:-1], b),
        "b_shape": lambda: sharded_sinkhorn(xr, y, shard(a), b[:-1]),
        "mass": lambda: sharded_sinkhorn(xr, y, 2.0 * shard(a), b),
        "y_differs": lambda: sharded_sinkhorn(xr, other_y),
        "empty_shard": lambda: sharded_sinkhorn(xr[:0] if rank == 1 else xr, y),
        "mode": lambda: sharded_sinkhorn(xr, y, mode="sparse"),
        "epsilon_scaling": lambda: sharded_sinkhorn(xr, y, epsilon_scaling=1.5),
        "init": lambda: sharded_sinkhorn(xr, y, init=(torch.zeros(3, dtype=F64), y[:, 0])),
    }
    return {name: _errors_of(call) for name, call in cases.items()}


def _two_rank_worker() -> dict:
    """Everything the multi-rank tests check, computed on one rank (module docstring)."""
    rank = dist.get_rank()
    out: dict = {"rank": rank, "world_size": dist.get_world_size()}
    out["bad"] = _bad_inputs(rank)  # first: the group must survive them

    x, y, a, b = clouds(N, M)
    for name, (options, weighted) in CASES.items():
        weights = (shard(a), b) if weighted else (None, None)
        res = sharded_sinkhorn(shard(x), y, *weights, tol=TOL, **options)
        out[name] = {
            "f": res.gather_f(), "f_shard": res.f_shard, "g": res.g, "epsilon": res.epsilon,
            "n_iter": res.n_iter, "errors": res.errors, "converged": res.converged,
            "sizes": res.shard_sizes, "offset": res.row_offset, "rank": res.rank,
            "world_size": res.world_size, "repr": repr(res),
            "is_result": isinstance(res, ShardedSinkhornResult),
        }

    # A warm start from the ε = 0.1 solve, at a nearby ε, each rank passing its part of f.
    start = out["absolute"]
    res = sharded_sinkhorn(shard(x), y, epsilon=WARM_EPS, tol=TOL,
                           init=(start["f_shard"], start["g"]))
    cold = sharded_sinkhorn(shard(x), y, epsilon=WARM_EPS, tol=TOL)
    out["warm"] = {"f": res.gather_f(), "g": res.g, "n_iter": res.n_iter,
                   "cold_n_iter": cold.n_iter, "converged": res.converged}

    # ε from the 2048-point subsample, and a solve stopped at max_iter.
    x, y, _, _ = clouds(BIG_N, BIG_M, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = sharded_sinkhorn(shard(x), y, relative_epsilon=0.05, max_iter=1)
    out["big"] = {
        "epsilon": res.epsilon, "converged": res.converged, "n_iter": res.n_iter,
        "warnings": [w.category.__name__ for w in caught], "f": res.gather_f(), "g": res.g,
    }

    # Pairs at large ε: many draws of one column per local row.
    x, y, _, _ = clouds(PAIRS_N, PAIRS_M, seed=2)
    res = sharded_sinkhorn(shard(x), y, epsilon=PAIRS_EPS, tol=TOL)
    gen = torch.Generator().manual_seed(100 + rank)
    counts = torch.zeros(res.n_shard, PAIRS_M, dtype=torch.long)
    for _ in range(PAIR_DRAWS):
        i, j = res.sample_pairs_shard(gen)
        counts[i, j] += 1
    out["pairs"] = {"counts": counts, "offset": res.row_offset}

    # Pairs at small ε: one draw, to compare with the exact OT permutation.
    x, y = translated_grid()
    res = sharded_sinkhorn(shard(x), y, epsilon=GRID_EPS, tol=1e-4)
    i, j = res.sample_pairs_shard(torch.Generator().manual_seed(rank))
    out["grid"] = {"i": i + res.row_offset, "j": j, "converged": res.converged}

    # The cross-rank log-sum-exp, with columns empty on one rank or on both.
    local = [
        torch.tensor([0.0, -math.inf, -math.inf, 1.0], dtype=F64),
        torch.tensor([-math.inf, 2.0, -math.inf, 1.0], dtype=F64),
    ][rank]
    out["lse"] = _all_logsumexp(local, None)

    # The demo, on this group, with its check against the single-process solver.
    out["main"] = demo_main(
        ["-n", "150", "-m", "120", "--relative-epsilon", "0.05", "--tol", "1e-8",
         "--dtype", "float64", "--cpu", "--check"]
    )
    return out


@pytest.fixture(scope="module")
def two_ranks() -> list[dict]:
    return run_local(_two_rank_worker, world_size=2, threads=1, env={"OTKIT_COMPILE": "0"})


# --------------------------------------------------------------------------- two ranks


@pytest.mark.parametrize("case", list(CASES))
def test_sharded_equals_single_process(two_ranks, case):
    options, weighted = CASES[case]
    x, y, a, b = clouds(N, M)
    options = {k: v for k, v in options.items() if k != "mode"}
    ref = otkit.sinkhorn(
        x, y, *((a, b) if weighted else (None, None)), tol=TOL, backend="torch", **options
    )
    assert ref.converged
    for out in two_ranks:
        got = out[case]
        assert got["is_result"] and got["converged"]
        assert got["rank"] == out["rank"] and got["world_size"] == 2
        assert got["sizes"] == (151, 150)
        assert got["epsilon"] == pytest.approx(ref.epsilon, rel=1e-12)
        assert got["n_iter"] == ref.n_iter
        torch.testing.assert_close(got["f"], ref.f, rtol=0, atol=ATOL)
        torch.testing.assert_close(got["g"], ref.g, rtol=0, atol=ATOL)
        torch.testing.assert_close(got["errors"], ref.errors, rtol=1e-6, atol=1e-14)
        lo = got["offset"]
        torch.testing.assert_close(got["f_shard"], ref.f[lo : lo + got["sizes"][got["rank"]]])
    assert two_ranks[1]["absolute"]["offset"] == 151
    assert "rank=1/2" in two_ranks[1]["absolute"]["repr"]


def test_warm_start_matches_single_process_and_saves_iterations(two_ranks):
    x, y, _, _ = clouds(N, M)
    start = otkit.sinkhorn(x, y, epsilon=0.1, tol=TOL, backend="torch")
    ref = otkit.sinkhorn(x, y, epsilon=WARM_EPS, tol=TOL, backend="torch",
                         init=(start.f, start.g))
    for out in two_ranks:
        got = out["warm"]
        assert got["converged"] and got["n_iter"] == ref.n_iter
        assert got["n_iter"] < got["cold_n_iter"]
        torch.testing.assert_close(got["f"], ref.f, rtol=0, atol=ATOL)
        torch.testing.assert_close(got["g"], ref.g, rtol=0, atol=ATOL)


def test_epsilon_scaling_saves_iterations_at_small_epsilon(two_ranks):
    """Annealed from std(C), the ε = 0.01 solve takes fewer iterations than a cold one."""
    x, y, a, b = clouds(N, M)
    cold = otkit.sinkhorn(x, y, a, b, epsilon=0.01, tol=TOL, backend="torch", max_iter=20_000)
    for out in two_ranks:
        assert out["scaled"]["n_iter"] < cold.n_iter


def test_relative_epsilon_matches_cost_std_subsample(two_ranks, monkeypatch):
    """Above 2048 points std(C) is otkit's fixed-seed subsample; the sharded ε is the same."""
    monkeypatch.setenv("OTKIT_COMPILE", "0")  # one iteration: not worth compiling for
    x, y, _, _ = clouds(BIG_N, BIG_M, seed=1)
    with pytest.warns(ConvergenceWarning):
        ref = otkit.sinkhorn(x, y, relative_epsilon=0.05, max_iter=1, backend="torch")
    for out in two_ranks:
        assert out["big"]["epsilon"] == pytest.approx(ref.epsilon, rel=1e-12)
        torch.testing.assert_close(out["big"]["f"], ref.f, rtol=0, atol=ATOL)
        torch.testing.assert_close(out["big"]["g"], ref.g, rtol=0, atol=ATOL)


def test_non_convergence_warns_on_rank_0_only(two_ranks):
    first, second = (out["big"] for out in two_ranks)
    assert not first["converged"] and not second["converged"]
    assert first["n_iter"] == second["n_iter"] == 1
    assert first["warnings"] == ["ConvergenceWarning"]
    assert second["warnings"] == []


def test_sampled_pairs_follow_the_coupling(two_ranks):
    """Per row, the drawn columns' frequencies pass a chi-square test against P_ij / Σ_j P_ij."""
    x, y, _, _ = clouds(PAIRS_N, PAIRS_M, seed=2)
    plan = otkit.sinkhorn(x, y, epsilon=PAIRS_EPS, tol=TOL, backend="torch").coupling()
    conditional = (plan / plan.sum(1, keepdim=True)).numpy()
    assert conditional.min() > 0.01  # every cell is expected ≥ 40 times: the test is valid
    counts = torch.zeros(PAIRS_N, PAIRS_M, dtype=torch.long)
    for out in two_ranks:
        local = out["pairs"]["counts"]
        counts[out["pairs"]["offset"] : out["pairs"]["offset"] + local.shape[0]] = local
    assert (counts.sum(1) == PAIR_DRAWS).all()  # every row drawn once per call, on one rank
    p_values = [
        scipy.stats.chisquare(counts[i].numpy(), PAIR_DRAWS * conditional[i]).pvalue
        for i in range(PAIRS_N)
    ]
    assert min(p_values) > 1e-3 / PAIRS_N, p_values  # Bonferroni over the rows


def test_small_epsilon_pairs_are_the_exact_ot_permutation(two_ranks):
    x, y = translated_grid()
    assert all(out["grid"]["converged"] for out in two_ranks)
    exact = otkit.emd(x, y).plan
    assert ((exact > 0).sum(1) == 1).all()  # the exact plan is a permutation
    i = torch.cat([out["grid"]["i"] for out in two_ranks])
    j = torch.cat([out["grid"]["j"] for out in two_ranks])
    assert torch.equal(i, torch.arange(12))
    assert torch.equal(j, exact.argmax(1))


def test_cross_rank_logsumexp_handles_minus_inf(two_ranks):
    expected = torch.tensor([0.0, 2.0, -math.inf, 1.0 + math.log(2.0)], dtype=F64)
    for out in two_ranks:
        assert not out["lse"].isnan().any()
        torch.testing.assert_close(out["lse"], expected)


def test_demo_main_checks_itself(two_ranks):
    report = two_ranks[0]["main"]
    assert report["converged"] == 1.0
    assert report["max_abs_diff_f"] < ATOL and report["max_abs_diff_g"] < ATOL
    assert report["reference_n_iter"] == report["n_iter"]
    assert "max_abs_diff_f" not in two_ranks[1]["main"]  # only rank 0 checks


# One entry per kind of bad input: (exception, pattern on rank 0, pattern on rank 1). A bad
# input on one rank only makes the others raise a ValueError that names it.
BAD = {
    "dimension": (ValueError, "x_shard and y must have the same dimension d", None),
    "nan": (ValueError, "x_shard contains NaN", None),
    "nan_one_rank": (ValueError, r"invalid input on rank\(s\) \[1\]", "x_shard contains NaN"),
    "epsilon": (ValueError, "epsilon must be a finite number > 0", None),
    "relative_epsilon": (ValueError, "relative_epsilon must be a finite number > 0", None),
    "both_epsilons": (ValueError, "either epsilon .* or relative_epsilon", None),
    "a_shard_shape": (ValueError, r"a_shard must have shape \[151\]", r"a_shard .* \[150\]"),
    "b_shape": (ValueError, r"b must have shape \[200\]", None),
    "mass": (ValueError, "equal total mass", None),
    "y_differs": (ValueError, r"y \(sum\).* differ between ranks", None),
    "empty_shard": (ValueError, r"invalid input on rank\(s\) \[1\]", "x_shard is empty"),
    "epsilon_scaling": (ValueError, r"epsilon_scaling must be a factor in \(0, 1\)", None),
    "init": (ValueError, r"init\[0\] \(f_shard\) must be a tensor of shape \[151\]",
             r"init\[0\] \(f_shard\) .*\[150\]"),
    "mode": (ValueError, "mode must be 'online' or 'dense'", None),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_raises_on_every_rank(two_ranks, kind):
    error, on_rank_0, on_rank_1 = BAD[kind]
    for out, pattern in zip(two_ranks, (on_rank_0, on_rank_1 or on_rank_0)):
        raised = out["bad"][kind]
        assert raised is not None, f"rank {out['rank']} raised nothing for {kind}"
        assert raised[0] == error.__name__, raised
        assert re.search(pattern, raised[1]), raised


# --------------------------------------------------------------------------- one process


@pytest.fixture
def one_rank_group():
    """A gloo process group of one, in this process (a HashStore: no network)."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_world_size_one(one_rank_group):
    x, y, a, b = clouds(N, M)
    res = sharded_sinkhorn(shard(x), y, a, b, relative_epsilon=0.05, tol=TOL)
    ref = otkit.sinkhorn(x, y, a, b, relative_epsilon=0.05, tol=TOL, backend="torch")
    assert (res.rank, res.world_size, res.shard_sizes, res.row_offset) == (0, 1, (N,), 0)
    assert res.epsilon == pytest.approx(ref.epsilon, rel=1e-12)
    assert res.n_iter == ref.n_iter and res.converged
    torch.testing.assert_close(res.gather_f(), ref.f, rtol=0, atol=ATOL)
    torch.testing.assert_close(res.g, ref.g, rtol=0, atol=ATOL)
    i, j = res.sample_pairs_shard(torch.Generator().manual_seed(0))
    assert torch.equal(i, torch.arange(N)) and j.shape == (N,) and 0 <= j.min() <= j.max() < M


def test_progress_bar_ends_green_or_red(one_rank_group, monkeypatch):
    """progress=True shows otkit.sinkhorn's bar: full and 'converged' at tol, short of full
    and 'NOT converged' when max_iter stops the loop (before: a bar of iterations, cut short)."""
    import io

    from tqdm import std

    from otkit.backends import torch_native

    bars = []

    class Recording(std.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, file=io.StringIO(), mininterval=0, **kwargs)
            bars.append(self)

    monkeypatch.setattr(torch_native, "tqdm", Recording)
    x, y, a, b = clouds(N, M)
    res = sharded_sinkhorn(shard(x), y, a, b, relative_epsilon=0.05, tol=TOL, progress=True)
    assert res.converged and len(bars) == 1
    assert bars[0].n == bars[0].total and bars[0].desc == "sharded sinkhorn converged"
    with pytest.warns(ConvergenceWarning):
        stopped = sharded_sinkhorn(shard(x), y, a, b, relative_epsilon=0.01, tol=1e-12,
                                   max_iter=5, progress=True)
    assert not stopped.converged and len(bars) == 2
    assert bars[1].n < bars[1].total and bars[1].desc == "sharded sinkhorn NOT converged"
    assert "max_iter 5 reached" in bars[1].postfix


def test_no_process_group_is_a_clear_error():
    if dist.is_initialized():
        pytest.skip("a process group is already initialized in this process")
    x, y, _, _ = clouds(10, 8)
    with pytest.raises(RuntimeError, match="group: sharded_sinkhorn needs an initialized"):
        sharded_sinkhorn(x, y)
    with pytest.raises(RuntimeError, match="shard needs rank and world_size"):
        shard(x)


def test_shard_is_tensor_split():
    t = torch.arange(10)
    parts = [shard(t, r, 3) for r in range(3)]
    assert [p.numel() for p in parts] == [4, 3, 3]
    assert torch.equal(torch.cat(parts), t)
    with pytest.raises(ValueError, match="rank must lie in"):
        shard(t, 3, 3)
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        shard(t, 0, 0)


def _fail_on_purpose(message: str) -> None:
    raise ValueError(message)


def test_run_local_reraises_the_worker_error():
    with pytest.raises(ValueError, match="raised in the worker"):
        run_local(_fail_on_purpose, "raised in the worker", world_size=1, threads=1)
    with pytest.raises(ValueError, match="world_size must be a positive integer"):
        run_local(_fail_on_purpose, "never run", world_size=0)

