"""Couplings that pair source and target points for flow matching.

Flow matching regresses a velocity on segments between pairs (x₀, x₁) drawn from a coupling
π of the source and target laws (Lipman et al. 2023; Tong et al. 2024; Pooladian et al.
2023). Zhang, Mousavi-Hosseini, Klein and Cuturi (2025, "On Fitting Flow Models with Large
Sinkhorn Couplings") view the usual choices as two ends of one entropic continuum: draw n
source and n target points, solve entropic OT between them at ε, and sample pairs from the
plan. ε → ∞ gives the independent coupling (I-FM); ε → 0 the exact batch-OT matching
(OT-FM). They find flows fit best with n orders of magnitude above 256 and a low ε, with the
plan's renormalized entropy H(P)/log n − 1 near 0.1.

Each coupling here turns a batch ``(x0: [n, d], x1: [n, d])`` into n pairs:

* :class:`IndependentCoupling` — the pairs as drawn (renormalized entropy 1);
* :class:`SinkhornCoupling` — the entropic plan at ``relative_epsilon`` (ε = relative_epsilon
  × std of the cost matrix; otkit's convention) or an absolute ``epsilon``;
* :class:`ExactCoupling` — the optimal assignment (ε → 0) by POT's network simplex;
* :class:`SemidiscreteCoupling` — SD-FM (Mousavi-Hosseini et al. 2025): each source point
  goes to the target of its Laguerre cell under a fitted semidiscrete potential
  (:func:`otkit.semidiscrete`), a maximum inner product search instead of an n × n solve.

Pairs come from the plan without building the n × n matrix: every source row i is used once,
and its partner is drawn from row i's conditional P_ij / Σ_j P_ij (inverse transform sampling) a
band of rows at a time (:meth:`otkit.coupling.CouplingMethods.sample_columns`). Sampling the
flattened plan with replacement would instead repeat some source points and miss others.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch

from ..exact import emd
from ..semidiscrete.solver import SemidiscreteResult
from ..sinkhorn import ConvergenceWarning, sinkhorn
from ..validation import check_count, check_positive

__all__ = [
    "Pairing", "Coupling", "IndependentCoupling", "SinkhornCoupling", "ExactCoupling",
    "SemidiscreteCoupling", "make_coupling",
]


@dataclass(frozen=True)
class Pairing:
    """n training pairs and what it cost to make them.

    Attributes:
        source, target: the paired points ``[n, d]``: row k of each forms one pair.
        renormalized_entropy: sharpness of the plan the pairs came from (0: a permutation,
            1: independent; NaN when not computed).
        epsilon: the absolute ε of the solve (``None`` for independent and exact couplings).
        n_iter: Sinkhorn iterations (0 when no solver ran).
        converged: whether the solver reached its tolerance.
        seconds: wall time to solve and sample.
        target_error: ``‖Pᵀ1 − b‖₁`` of the plan the pairs were drawn from: how far the
            targets' use in the pairs is from uniform (every source is used exactly once).
            0 for independent, exact and semidiscrete pairs (no plan error; SD-FM's own
            marginal error is its χ²); NaN when not computed.
    """

    source: torch.Tensor
    target: torch.Tensor
    renormalized_entropy: float
    epsilon: float | None
    n_iter: int
    converged: bool
    seconds: float
    target_error: float = 0.0


def _check_batch(x0: torch.Tensor, x1: torch.Tensor) -> None:
    for name, t in (("x0", x0), ("x1", x1)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or not t.dtype.is_floating_point:
            raise ValueError(f"{name} must be a floating-point tensor of shape [n, d]")
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape [n, d] (n pairs), got {tuple(x0.shape)} "
            f"and {tuple(x1.shape)}"
        )
    if x0.shape[0] < 2:
        raise ValueError(f"a coupling needs at least 2 points per side, got n={x0.shape[0]}")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Coupling:
    """Turns n source and n target points into n pairs; see the module docstring."""

    name: str = "coupling"

    def pair(
        self, x0: torch.Tensor, x1: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> Pairing:
        """Pair ``x0: [n, d]`` with ``x1: [n, d]``; ``generator`` on the points' device."""
        _check_batch(x0, x1)
        _sync(x0.device)
        start = time.perf_counter()
        pairing = self._pair(x0, x1, generator)
        _sync(x0.device)
        return Pairing(**pairing, seconds=time.perf_counter() - start)

    def _pair(self, x0, x1, generator) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


class IndependentCoupling(Coupling):
    """The independent coupling μ ⊗ ν: pairs are the points as drawn (I-FM)."""

    name = "independent"

    def _pair(self, x0, x1, generator) -> dict:
        return dict(
            source=x0, target=x1, renormalized_entropy=1.0, epsilon=None, n_iter=0,
            converged=True,
        )


@dataclass(frozen=True, repr=False)
class SinkhornCoupling(Coupling):
    """The entropic OT plan between the two batches, solved by :func:`otkit.sinkhorn`.

    Args:
        relative_epsilon: ε as a multiple of the std of the cost matrix (scale-free, so one
            value means the same sharpness at every n and for any data scale).
            Default 0.01, not otkit's 0.05: the paper's sharp plans (renormalized entropy ~0.1).
        epsilon: an absolute ε instead.
        tol, max_iter, mode: passed to :func:`otkit.sinkhorn` (``mode="online"`` streams the
            cost for n beyond memory). Sinkhorn's last half-step updates f, so the returned
            plan's rows are exact (P1 = a up to rounding) and its columns carry the error,
            ‖Pᵀ1 − b‖₁ ≈ ``tol``. Every source is used once and its partner drawn from its
            row, so the pairs follow P exactly; the targets are used with weights Pᵀ1, not b
            (recorded as :attr:`Pairing.target_error`). At the default 1e-2 (n = 256 to
            4,096, relative ε = 0.01) that is an L1 error of 0.0096–0.0098, each target's
            weight within −3.3% … +1.5% of 1/n, for 60–70 iterations; 1e-3 brings the
            weights within ±0.2% for 2.5–3.2× the iterations.
        epsilon_scaling: anneal ε from std(C) by this factor per iteration (``None``: plain
            Sinkhorn). It changes the path, not the plan reached: at relative ε ≤ 0.01 it cut
            the iterations 3-4× here (benchmarks/FLOWS.md).
        track_entropy: also compute the plan's renormalized entropy and its target marginal
            error (two more passes over it).
    """

    relative_epsilon: float | None = 0.01
    epsilon: float | None = None
    tol: float = 1e-2
    max_iter: int = 2000
    mode: str = "auto"
    epsilon_scaling: float | None = 0.7
    track_entropy: bool = True

    def __post_init__(self) -> None:
        if self.epsilon is not None:
            check_positive("epsilon", self.epsilon)
            object.__setattr__(self, "relative_epsilon", None)
        elif self.relative_epsilon is None:
            raise ValueError("give relative_epsilon or epsilon")
        else:
            check_positive("relative_epsilon", self.relative_epsilon)
        check_positive("tol", self.tol)
        check_count("max_iter", self.max_iter)

    @property
    def name(self) -> str:  # type: ignore[override]
        if self.epsilon is not None:
            return f"sinkhorn(epsilon={self.epsilon:g})"
        return f"sinkhorn(relative_epsilon={self.relative_epsilon:g})"

    def solve(self, x0: torch.Tensor, x1: torch.Tensor):
        """The :class:`otkit.SinkhornResult` between the batches (uniform weights)."""
        with warnings.catch_warnings():
            # Non-convergence is reported on the Pairing (converged=False), once per batch.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return sinkhorn(
                x0, x1, epsilon=self.epsilon, relative_epsilon=self.relative_epsilon,
                tol=self.tol, max_iter=self.max_iter, mode=self.mode, backend="torch",
                epsilon_scaling=self.epsilon_scaling,
            )

    def _pair(self, x0, x1, generator) -> dict:
        result = self.solve(x0, x1)
        j = result.sample_columns(torch.arange(x0.shape[0], device=x0.device), generator)
        entropy, target_error = math.nan, math.nan
        if self.track_entropy:
            entropy = result.renormalized_entropy()
            target_error = (result.marginals()[1] - result.b).abs().sum().item()
        return dict(
            source=x0, target=x1[j], renormalized_entropy=entropy, epsilon=result.epsilon,
            n_iter=result.n_iter, converged=result.converged, target_error=target_error,
        )


class ExactCoupling(Coupling):
    """The optimal assignment between the batches (batch OT-FM; the ε → 0 end).

    POT's network simplex (:func:`otkit.emd`) on the CPU in float64: O(n³) in the worst case
    and an n × n matrix, so meant for n up to a few thousand.
    """

    name = "exact"

    def _pair(self, x0, x1, generator) -> dict:
        result = emd(x0, x1)
        j = result.plan.argmax(1)  # uniform weights, n = m: the plan is a permutation / n
        return dict(
            source=x0, target=x1[j], renormalized_entropy=0.0, epsilon=None, n_iter=0,
            converged=result.converged,
        )


@dataclass(frozen=True, repr=False)
class SemidiscreteCoupling(Coupling):
    """SD-FM pairs: source points sent to targets by a semidiscrete dual potential.

    The target law is the finite set ``fit.y`` (weights ``fit.b``); the target batch ``x1``
    that the trainer draws is ignored: each x₀ gets ``fit.y[j]`` with j its Laguerre cell
    (``soft=False``; an exact blockwise MIPS) or a draw from its soft row (``soft=True``, for
    a fit at ε > 0). Pairing n points costs O(n·N·d), with no n × n problem to solve.
    """

    fit: SemidiscreteResult
    soft: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.fit, SemidiscreteResult):
            raise TypeError(f"fit must be an otkit.semidiscrete result, got {type(self.fit).__name__}")
        if self.soft and self.fit.epsilon == 0:
            raise ValueError("soft=True needs a semidiscrete fit at epsilon > 0")

    @property
    def name(self) -> str:  # type: ignore[override]
        return "semidiscrete (soft)" if self.soft else "semidiscrete"

    def _pair(self, x0, x1, generator) -> dict:
        if x0.shape[1] != self.fit.y.shape[1]:
            raise ValueError(f"x0 must have d = {self.fit.y.shape[1]} (the fit's targets), got {x0.shape[1]}")
        j = self.fit.assign(x0, soft=self.soft, generator=generator)
        return dict(
            source=x0, target=self.fit.y[j].to(x0.dtype),
            renormalized_entropy=math.nan if self.soft else 0.0, epsilon=self.fit.epsilon,
            n_iter=0, converged=True,
        )


def make_coupling(spec: str | float | Coupling) -> Coupling:
    """``"independent"``, ``"exact"``, a relative ε (a number) or a :class:`Coupling`."""
    if isinstance(spec, Coupling):
        return spec
    if spec == "independent":
        return IndependentCoupling()
    if spec == "exact":
        return ExactCoupling()
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return SinkhornCoupling(relative_epsilon=float(spec))
    raise ValueError(
        f"coupling must be 'independent', 'exact', a relative epsilon > 0 or a Coupling, "
        f"got {spec!r}"
    )
