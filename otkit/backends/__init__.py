"""Sinkhorn backends behind one contract.

Each backend module exposes ``solve(problem: SinkhornProblem) -> Potentials`` and returns
potentials in otkit's convention (cost units, P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)),
whatever its library's own convention:

* ``torch_native``: otkit's log-domain loop on fused compiled passes, dense or online;
* ``geomloss``: GeomLoss's ``SamplesLoss`` ε-scaling solve, then GeomLoss's own soft-min
  kernel iterated to the requested tolerance (GeomLoss alone has no tolerance control);
* ``pot``: POT's ``ot.bregman.sinkhorn_log`` (balanced) or
  ``ot.unbalanced.sinkhorn_stabilized_unbalanced`` (unbalanced), restarted warm until otkit's
  L1 marginal error reaches the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..geometry import PointCloud

__all__ = ["SinkhornProblem", "Potentials", "residual", "kl_penalty", "log_weight", "BACKENDS"]

BACKENDS = ("torch", "geomloss", "pot")


@dataclass(frozen=True)
class SinkhornProblem:
    """Everything a backend needs; validated by :func:`otkit.sinkhorn` before it gets here."""

    geometry: PointCloud
    a: torch.Tensor  # [n]
    b: torch.Tensor  # [m]
    epsilon: float
    tau_a: float
    tau_b: float
    tol: float
    max_iter: int
    init: tuple[torch.Tensor, torch.Tensor] | None
    epsilon_scaling: float | None
    cost_scale: float  # the std of C, where epsilon scaling starts (NaN when not computed)
    progress: bool

    @property
    def rho_a(self) -> float:
        """KL marginal penalty ρ_a = ε τ_a / (1 − τ_a) (inf when balanced)."""
        return kl_penalty(self.epsilon, self.tau_a)

    @property
    def rho_b(self) -> float:
        return kl_penalty(self.epsilon, self.tau_b)

    def log_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``log a``, ``log b`` (see :func:`log_weight`)."""
        return log_weight(self.a), log_weight(self.b)


@dataclass(frozen=True)
class Potentials:
    """A backend's answer: potentials in cost units and its iteration record."""

    f: torch.Tensor  # [n]
    g: torch.Tensor  # [m]
    n_iter: int
    errors: torch.Tensor  # [k] float64 on the CPU: the residual at each check
    converged: bool


def kl_penalty(epsilon: float, tau: float) -> float:
    """The KL marginal penalty ρ = ε τ / (1 − τ) of a relaxation τ = ρ / (ρ + ε); inf at τ = 1."""
    return float("inf") if tau >= 1.0 else epsilon * tau / (1.0 - tau)


def log_weight(w: torch.Tensor) -> torch.Tensor:
    """``log w`` with zero weights at a large negative finite value, kept out of NaN arithmetic."""
    return w.log().clamp_min(-1e5 if w.dtype == torch.float64 else -1e4)


def residual(
    weights: torch.Tensor, potential: torch.Tensor, updated: torch.Tensor, epsilon: float
) -> float:
    """``Σ_i w_i |exp((p_i − p̂_i)/ε) − 1|`` between a potential and its Sinkhorn update.

    For a balanced half-step ``exp((f_i − f̂_i)/ε)`` is the ratio of the plan's i-th row mass
    to a_i, so this is the L1 marginal error ‖P 1 − a‖₁; with KL-relaxed marginals it is the
    same fixed-point residual, which vanishes at the solution.
    """
    ratio = torch.exp(((potential - updated) / epsilon).clamp(max=80.0))
    return (weights * (ratio - 1.0).abs()).sum().item()
