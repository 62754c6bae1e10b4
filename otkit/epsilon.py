"""What ``relative_epsilon`` means: the single definition every solver resolves ε by.

An entropic solver takes its regularization either as an absolute ``epsilon`` (in cost units)
or as ``relative_epsilon``, a multiple of the spread of the cost matrix C ∈ R^{n×m}:

    ε = relative_epsilon · std(C),        std(C) = ( (1/(N − 1)) Σ_ij (C_ij − C̄)² )^{1/2},

the sample standard deviation of the entries of C (N = n·m), which
:meth:`otkit.geometry.PointCloud.cost_std` estimates on a fixed-seed subsample of at most
2048 rows and 2048 columns (all of C below that size). std(C) is invariant to adding a
constant to C and scales with it, so a relative ε means the same sharpness of the plan
whatever the units or the offset of the cost. When neither is given the default is

    ε = 0.05 · std(C)    (:data:`DEFAULT_RELATIVE_EPSILON`).

A constant cost (std(C) = 0) makes every coupling optimal and has no spread to measure;
its unit falls back to |c|, the absolute value of the constant, or to 1 when c = 0.

The solvers resolve ε here: :func:`otkit.sinkhorn` (and what builds on it) by
:func:`cloud_epsilon`, :func:`otkit.distributed.sharded_sinkhorn` by :func:`resolve_epsilon`
on std(C) merged across ranks, and the elastic subspace learner
(:func:`otkit.elastic.subspace.learn_subspace`, :func:`~otkit.elastic.subspace.subspace_map`).
A solver with another default keeps this unit: :class:`otkit.flows.SinkhornCoupling` asks
for 0.01 · std(C) (sharp couplings), the elastic subspace learner for 0.4 · std(C) (its
converged maps overfit the pairs at smaller ε; see
:data:`otkit.elastic.subspace.DEFAULT_SUBSPACE_RELATIVE_EPSILON`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from .geometry import PointCloud
from .validation import check_positive

__all__ = [
    "DEFAULT_RELATIVE_EPSILON",
    "annealed_epsilons",
    "check_epsilon_arguments",
    "cloud_epsilon",
    "epsilon_unit",
    "resolve_epsilon",
]

DEFAULT_RELATIVE_EPSILON: float = 0.05
"""ε = 0.05 · std(C) when neither ``epsilon`` nor ``relative_epsilon`` is given.

The reason is OTT-JAX's convention: its ``Geometry``, given neither, uses
``DEFAULT_EPSILON_SCALE · stddev(cost_matrix)`` with ``DEFAULT_EPSILON_SCALE = 0.05`` (OTT
takes the population std, ddof = 0; otkit the sample std, ddof = 1, which differs by a factor
(N/(N − 1))^{1/2}, under 0.1% for N ≥ 600 entries). The same default makes otkit's plans and
potentials directly comparable with OTT-JAX's, and std(C), unlike mean(C), does not move when
a constant is added to the cost.
"""


def check_epsilon_arguments(
    epsilon: float | None, relative_epsilon: float | None
) -> tuple[float | None, float | None]:
    """Validate the pair ``(epsilon, relative_epsilon)`` before anything is computed.

    At most one may be given; a given one must be a finite number > 0.

    Returns:
        ``(epsilon, relative_epsilon)`` as floats (``None`` where not given).

    Raises:
        ValueError: both are given (the message names both), or one is ≤ 0, NaN or inf.
        TypeError: one is not a number.
    """
    if epsilon is not None and relative_epsilon is not None:
        raise ValueError(
            f"give either epsilon (absolute) or relative_epsilon (x std of the cost), not "
            f"both; got epsilon={epsilon!r} and relative_epsilon={relative_epsilon!r}"
        )
    if epsilon is not None:
        return check_positive("epsilon", epsilon), None
    if relative_epsilon is not None:
        return None, check_positive("relative_epsilon", relative_epsilon)
    return None, None


def epsilon_unit(std: float, constant_cost: float | Callable[[], float] | None = None) -> float:
    """The unit of ``relative_epsilon``: std(C), or a fallback for a constant cost.

    Args:
        std: std(C) ≥ 0, already computed (on one process, or merged across ranks).
        constant_cost: the cost's value c (a number, or a function returning it, called only
            when ``std`` is 0); ``None`` for c unknown.

    Returns:
        ``std`` when > 0; otherwise |c|, or 1 when c is 0 or unknown.
    """
    if std > 0:
        return float(std)
    level = constant_cost() if callable(constant_cost) else constant_cost
    return abs(float(level)) if level else 1.0


def resolve_epsilon(
    std: float | None,
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    default: float = DEFAULT_RELATIVE_EPSILON,
    *,
    constant_cost: float | Callable[[], float] | None = None,
) -> float:
    """The absolute ε of a solve (module docstring):

        ε = epsilon                                    if ``epsilon`` is given,
        ε = relative_epsilon · unit                    if ``relative_epsilon`` is given,
        ε = default · unit                             otherwise,

    with unit = :func:`epsilon_unit` ``(std, constant_cost)``: std(C), or the constant
    cost's |c| (or 1) when std(C) = 0.

    Args:
        std: std(C) of the problem's cost matrix; not read when ``epsilon`` is given (pass
            ``None`` then to skip computing it). Sharded solvers pass the std merged across
            ranks, so every rank resolves the same ε as one process would.
        epsilon: absolute ε > 0.
        relative_epsilon: ε as a multiple of std(C), > 0.
        default: the relative ε used when neither is given (> 0).
        constant_cost: see :func:`epsilon_unit`.

    Returns:
        ε > 0, a Python float.

    Raises:
        ValueError, TypeError: as :func:`check_epsilon_arguments`; or ``std`` is ``None``
            while ε must be derived from it.
    """
    epsilon, relative_epsilon = check_epsilon_arguments(epsilon, relative_epsilon)
    if epsilon is not None:
        return epsilon
    rel = check_positive("default", default) if relative_epsilon is None else relative_epsilon
    if std is None:
        raise ValueError("std: the cost's std is needed to resolve a relative epsilon")
    return rel * epsilon_unit(std, constant_cost)


def cloud_epsilon(
    geometry: PointCloud,
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    default: float = DEFAULT_RELATIVE_EPSILON,
) -> tuple[float, float]:
    """:func:`resolve_epsilon` on the cost of a :class:`~otkit.geometry.PointCloud`.

    ``C: [n, m]`` is ``geometry``'s cost matrix; std(C) is
    :meth:`~otkit.geometry.PointCloud.cost_std` (computed even for an absolute ε, since
    ε-scaling starts from it; :func:`otkit.sinkhorn` skips the call when it has an absolute ε
    and no ε-scaling), and a constant cost's value c is the mean of C's first row.

    Returns:
        ``(ε, unit)``: the absolute ε and the unit of ``relative_epsilon`` (std(C), or its
        constant-cost fallback).
    """
    check_epsilon_arguments(epsilon, relative_epsilon)  # fail before computing std(C)
    x = geometry.x
    unit = epsilon_unit(
        geometry.cost_std(),
        lambda: geometry.rows(torch.arange(1, device=x.device)).mean().item(),
    )
    return resolve_epsilon(unit, epsilon, relative_epsilon, default), unit


def annealed_epsilons(
    epsilon: float, start: float, scaling: float | None
) -> Iterator[tuple[float, bool]]:
    """The ε of each Sinkhorn iteration, with ``at_target`` telling when ε has been reached.

    ε-scaling (Kosowsky and Yuille 1994; Schmitzer 2019): with ``scaling = q`` in (0, 1) the
    iterations use ε_k = ε₀ q^k from ε₀ = max(``start``, ε) (the solvers pass std(C)) while
    ε_k > ε, then ε for ever. Without scaling (``None``) every iteration is at ε. Solvers check
    convergence only once ``at_target`` is True.
    """
    if scaling is not None:
        current = max(start, epsilon)
        while current > epsilon:
            yield current, False
            current *= scaling
    while True:
        yield epsilon, True
