"""otkit.epsilon: one meaning of ``relative_epsilon`` (× std of the cost) for every solver.

The references are computed here from the cost matrix itself (``C.std()``, torch's sample
std, on the whole matrix: the clouds are below PointCloud.cost_std's 2048-point subsample),
never from otkit's own std. The clouds are chosen so that mean(C) and std(C) differ by more
than half, so a solver that scaled ε by the mean, as the elastic subspace learner once did,
fails the cross-solver test.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import otkit
from otkit import ConvergenceWarning
from otkit.distributed import run_local, shard, sharded_sinkhorn
from otkit.elastic.subspace import (
    DEFAULT_SUBSPACE_RELATIVE_EPSILON,
    learn_subspace,
    subspace_epsilon,
    subspace_map,
)
from otkit.epsilon import (
    DEFAULT_RELATIVE_EPSILON,
    check_epsilon_arguments,
    epsilon_unit,
    resolve_epsilon,
)
from otkit.sinkhorn import DEFAULT_RELATIVE_EPSILON as SINKHORN_DEFAULT
from otkit.sinkhorn import resolve_epsilon as sinkhorn_resolve_epsilon

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def paired_clouds(n: int = 120, d: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """``x: [n, d]`` and ``y: [n, d]``, y a noisy image of x moved by 4 along the first axis:
    C_ij = ½‖x_i − y_j‖² has mean ≈ 1.8 × its std."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    y = x + 0.3 * torch.randn(n, d, generator=gen, dtype=F64)
    y[:, 0] += 4.0
    return x, y


def cost_matrix(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """C_ij = ½‖x_i − y_j‖², ``[n, m]``, directly."""
    return 0.5 * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


# --------------------------------------------------------------------------- the definition


def test_default_is_ott_jax_0_05_and_sinkhorn_reexports_it():
    assert DEFAULT_RELATIVE_EPSILON == 0.05
    assert SINKHORN_DEFAULT is DEFAULT_RELATIVE_EPSILON  # still importable from there
    assert resolve_epsilon(2.0) == pytest.approx(0.1)
    assert resolve_epsilon(2.0, default=0.01) == pytest.approx(0.02)
    x, y = paired_clouds()
    res = otkit.sinkhorn(x, y, tol=1e-6)
    std = cost_matrix(x, y).std().item()
    assert res.epsilon == pytest.approx(0.05 * std, rel=1e-12)
    eps, unit = sinkhorn_resolve_epsilon(res.geometry, None, None)  # (ε, unit), as before
    assert (eps, unit) == (pytest.approx(0.05 * std, rel=1e-12), pytest.approx(std, rel=1e-12))


def test_relative_epsilon_multiplies_the_std():
    assert resolve_epsilon(3.0, relative_epsilon=0.2) == pytest.approx(0.6)
    x, y = paired_clouds()
    res = otkit.sinkhorn(x, y, relative_epsilon=0.2, tol=1e-6)
    assert res.epsilon == pytest.approx(0.2 * cost_matrix(x, y).std().item(), rel=1e-12)


def test_absolute_epsilon_is_taken_as_is_without_the_std():
    assert resolve_epsilon(None, epsilon=0.3) == 0.3  # the std is not needed, nor read
    assert resolve_epsilon(5.0, epsilon=torch.tensor(0.3)) == pytest.approx(0.3)
    x, y = paired_clouds()
    assert otkit.sinkhorn(x, y, epsilon=0.3, tol=1e-6).epsilon == 0.3
    assert subspace_epsilon(x, y, epsilon=0.3) == 0.3
    with pytest.raises(ValueError, match="std"):
        resolve_epsilon(None, relative_epsilon=0.1)  # a relative ε needs the std


def test_sinkhorn_computes_the_std_only_when_it_uses_it(monkeypatch):
    """std(C) is a pass over C (an iteration's worth in online mode): an absolute ε without
    ε-scaling never reads it; a relative ε, or ε-scaling (which starts from std(C)), does."""
    from otkit.geometry import PointCloud

    calls = []
    original = PointCloud.cost_std
    monkeypatch.setattr(PointCloud, "cost_std", lambda self: calls.append(1) or original(self))
    x, y = paired_clouds()
    plain = otkit.sinkhorn(x, y, epsilon=0.3, tol=1e-6)
    assert calls == []
    scaled = otkit.sinkhorn(x, y, epsilon=0.3, tol=1e-6, epsilon_scaling=0.5)
    assert len(calls) == 1
    otkit.sinkhorn(x, y, relative_epsilon=0.2, tol=1e-6)
    assert len(calls) == 2
    # the same plan either way (potentials are only defined up to (f + c, g − c))
    assert (plain.coupling() - scaled.coupling()).abs().sum() < 1e-4


@pytest.mark.parametrize(
    ("epsilon", "relative_epsilon"), [(0.1, 0.1), (0.1, 0.05), (torch.tensor(1.0), 2.0)]
)
def test_not_both_names_both_arguments(epsilon, relative_epsilon):
    pattern = r"either epsilon \(absolute\) or relative_epsilon .*not both"
    with pytest.raises(ValueError, match=pattern):
        check_epsilon_arguments(epsilon, relative_epsilon)
    with pytest.raises(ValueError, match=pattern):
        resolve_epsilon(1.0, epsilon, relative_epsilon)
    x, y = paired_clouds(20)
    with pytest.raises(ValueError, match=pattern):
        otkit.sinkhorn(x, y, epsilon=epsilon, relative_epsilon=relative_epsilon)
    with pytest.raises(ValueError, match=pattern):
        learn_subspace(x, y, 1, epsilon=epsilon, relative_epsilon=relative_epsilon, steps=1)
    A = torch.eye(1, 3, dtype=F64)
    with pytest.raises(ValueError, match=pattern):
        subspace_map(x, y, A, lam=1.0, epsilon=epsilon, relative_epsilon=relative_epsilon)


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_nonpositive_values_are_refused_by_name(value):
    with pytest.raises(ValueError, match=r"^epsilon must be a finite number > 0"):
        check_epsilon_arguments(value, None)
    with pytest.raises(ValueError, match=r"^relative_epsilon must be a finite number > 0"):
        check_epsilon_arguments(None, value)
    with pytest.raises(ValueError, match=r"^relative_epsilon must be a finite number > 0"):
        resolve_epsilon(1.0, relative_epsilon=value)
    with pytest.raises(ValueError, match=r"^default must be a finite number > 0"):
        resolve_epsilon(1.0, default=value)
    with pytest.raises(TypeError, match=r"^relative_epsilon must be a number"):
        check_epsilon_arguments(None, "0.1")
    x, y = paired_clouds(20)
    with pytest.raises(ValueError, match=r"^relative_epsilon must be a finite number > 0"):
        learn_subspace(x, y, 1, relative_epsilon=value, steps=1)
    with pytest.raises(ValueError, match=r"^epsilon must be a finite number > 0"):
        subspace_map(x, y, torch.eye(1, 3, dtype=F64), lam=1.0, epsilon=value)


def test_constant_cost_falls_back_to_its_value_or_one():
    assert epsilon_unit(2.5) == 2.5
    assert epsilon_unit(0.0, -4.0) == 4.0  # |c|
    assert epsilon_unit(0.0, 0.0) == 1.0 and epsilon_unit(0.0) == 1.0
    assert resolve_epsilon(0.0, relative_epsilon=0.1, constant_cost=-3.0) == pytest.approx(0.3)
    calls = []
    unit = epsilon_unit(2.0, lambda: calls.append(1) or 7.0)
    assert unit == 2.0 and not calls  # the fallback is computed only for a constant cost
    assert epsilon_unit(0.0, lambda: calls.append(1) or 7.0) == 7.0 and calls == [1]

    # Every x_i at (1, 1), every y_j at (3, 3): C = ½‖(2, 2)‖² = 4 everywhere.
    x = torch.ones(6, 2, dtype=F64)
    y = torch.full((5, 2), 3.0, dtype=F64)
    assert otkit.sinkhorn(x, y).epsilon == pytest.approx(0.05 * 4.0)
    assert otkit.sinkhorn(x, x).epsilon == pytest.approx(0.05)  # C = 0: unit 1
    assert subspace_epsilon(x, y, relative_epsilon=0.5) == pytest.approx(0.5 * 4.0)


# --------------------------------------------------------------------------- every solver


RELATIVE = [None, 0.2]  # the default, and one given


def _sharded_epsilons() -> list[float]:
    """On each of two ranks: the ε sharded_sinkhorn resolves for every value of RELATIVE."""
    x, y = paired_clouds()
    out = []
    for relative_epsilon in RELATIVE:
        kwargs = {} if relative_epsilon is None else {"relative_epsilon": relative_epsilon}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # ε is all that is looked at
            out.append(sharded_sinkhorn(shard(x), y, max_iter=1, **kwargs).epsilon)
    return out


@pytest.fixture(scope="module")
def sharded_epsilons() -> list[list[float]]:
    """Per rank, per value of RELATIVE: std(C) is merged across two gloo processes."""
    return run_local(_sharded_epsilons, world_size=2, threads=1, env={"OTKIT_COMPILE": "0"})


@pytest.mark.parametrize("case", range(len(RELATIVE)), ids=["default", "0.2"])
def test_every_solver_resolves_the_same_epsilon(sharded_epsilons, case):
    """sinkhorn, sharded_sinkhorn, learn_subspace and subspace_map on one problem: ε is
    relative_epsilon × std(C), never × mean(C) (the clouds make the two differ by 1.8×);
    sharded_sinkhorn on two ranks, which merge their parts of std(C)."""
    relative_epsilon = RELATIVE[case]
    x, y = paired_clouds()
    C = cost_matrix(x, y)
    std, mean = C.std().item(), C.mean().item()
    assert mean / std > 1.5  # a mean-based ε would be off by more than half

    rel = DEFAULT_RELATIVE_EPSILON if relative_epsilon is None else relative_epsilon
    expected = rel * std
    kwargs = {} if relative_epsilon is None else {"relative_epsilon": relative_epsilon}
    single = otkit.sinkhorn(x, y, tol=1e-6, **kwargs).epsilon
    assert single == pytest.approx(expected, rel=1e-12)
    for per_rank in sharded_epsilons:
        assert per_rank[case] == pytest.approx(expected, rel=1e-12)

    # The subspace learner keeps the unit, with its own default (0.4 × std).
    sub_rel = DEFAULT_SUBSPACE_RELATIVE_EPSILON if relative_epsilon is None else relative_epsilon
    learned = learn_subspace(x, y, 1, steps=1, batch_size=32, **kwargs).epsilon
    assert learned == pytest.approx(sub_rel * std, rel=1e-12)
    assert learned != pytest.approx(sub_rel * mean, rel=0.3)
    if relative_epsilon is not None:
        assert learned == pytest.approx(single, rel=1e-12)
    assert subspace_epsilon(x, y, **kwargs) == pytest.approx(sub_rel * std, rel=1e-12)

    # subspace_map resolves its ε from the clouds it is given, to the same value.
    A = torch.eye(1, 3, dtype=F64)
    by_relative = subspace_map(x, y, A, lam=1.0, **kwargs)
    by_absolute = subspace_map(x, y, A, lam=1.0, epsilon=sub_rel * std)
    torch.testing.assert_close(by_relative, by_absolute, rtol=1e-10, atol=1e-12)
