"""The Sinkhorn divergence and its map, the debiased entropic map.

Entropic OT is biased: OT_ε(α, α) ≠ 0, and the entropic map T_ε pulls every point towards the
target's mean. The Sinkhorn divergence (Ramdas et al. 2017; Genevay, Peyré and Cuturi 2018;
Feydy et al. 2019) removes the self-transport terms,

    S_ε(α, β) = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β),

which is non-negative, zero only for α = β, and interpolates between OT (ε → 0) and MMD
(ε → ∞). Its gradient in the positions of α is the difference of two potentials,
∇_x S_ε = a_i (∇f_αβ − ∇f_αα)(x_i) with f_αα the symmetric potential of α against itself. For a
cost c(x, y) = h(x − y) the map that moves along that gradient is the *debiased* entropic map

    T̃_ε(x) = x − ∇h*(∇f_αβ(x) − ∇f_αα(x)),

for ½‖·‖²: T̃_ε(x) = x + T_αβ(x) − T_αα(x), the entropic map minus the self-map's shrinkage
(Pooladian, Cuturi and Niles-Weed 2022, "Debiaser beware: pitfalls of centering regularized
transport maps", show that this debiasing can *hurt* map estimation; OTT-JAX offers the same
map through its Sinkhorn divergence potentials). One ε serves the three problems: a relative ε
is resolved on the cost between α and β.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import maps
from .backends import log_weight
from .costs import TranslationInvariantCost
from .sinkhorn import SinkhornResult, sinkhorn

__all__ = ["SinkhornDivergenceResult", "sinkhorn_divergence"]


@dataclass(frozen=True)
class SinkhornDivergenceResult:
    """The three entropic problems of a Sinkhorn divergence, solved at one ε.

    Attributes:
        xy, xx, yy: the solves of α → β, α → α and β → β (:class:`~otkit.SinkhornResult`).
    """

    xy: SinkhornResult
    xx: SinkhornResult
    yy: SinkhornResult

    @property
    def epsilon(self) -> float:
        return self.xy.epsilon

    @property
    def converged(self) -> bool:
        return self.xy.converged and self.xx.converged and self.yy.converged

    @property
    def n_iter(self) -> int:
        """Sinkhorn iterations of the three solves together."""
        return self.xy.n_iter + self.xx.n_iter + self.yy.n_iter

    def value(self) -> torch.Tensor:
        """S_ε = OT_ε(α, β) − ½ OT_ε(α, α) − ½ OT_ε(β, β), from the dual objectives."""
        return (self.xy.dual_objective() - 0.5 * self.xx.dual_objective()
                - 0.5 * self.yy.dual_objective())

    def transport(self, x_new: torch.Tensor, *, block_size: int | None = None) -> torch.Tensor:
        """The debiased entropic map T̃_ε(x) = x − ∇h*(∇f_αβ(x) − ∇f_αα(x)) at
        ``x_new: [k, d]`` → ``[k, d]`` (module docstring)."""
        cost = self.xy.cost
        if not isinstance(cost, TranslationInvariantCost):
            raise TypeError(
                f"the debiased map needs a cost h(x − y) (a TranslationInvariantCost), got {cost!r}"
            )
        x_new = self.xy.check_points("x_new", x_new)
        gradient = self._mean_gradient(self.xy, x_new, block_size)
        gradient = gradient - self._mean_gradient(self.xx, x_new, block_size)
        return x_new - cost.grad_h_conjugate(gradient)

    @staticmethod
    def _mean_gradient(result: SinkhornResult, x_new: torch.Tensor, block_size: int | None) -> torch.Tensor:
        """∇f(x) = Σ_j p_j(x) ∇h(x − y_j) of one solve, both clouds centred alike (h sees
        differences only)."""
        centre = result.geometry.centred
        logits = log_weight(result.b) + result.g / result.epsilon
        return maps.mean_gradient(result.cost, centre(x_new), centre(result.y), logits,
                                  result.epsilon, block_size=block_size)


def sinkhorn_divergence(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    **solver,
) -> SinkhornDivergenceResult:
    """Solve the three problems of S_ε(α, β) between ``x: [n, d]`` (weights ``a: [n]``) and
    ``y: [m, d]`` (``b: [m]``) at one ε (module docstring).

    ``epsilon`` / ``relative_epsilon`` as in :func:`otkit.sinkhorn` (a relative ε is resolved
    on the cost between x and y, then used for all three); ``solver`` (``cost``, ``tol``,
    ``max_iter``, ``backend``, ...) goes to every call. Balanced problems only.
    """
    for name in ("rho_a", "rho_b", "tau_a", "tau_b"):
        if solver.get(name) is not None:
            raise ValueError(f"{name}: the Sinkhorn divergence here is balanced only")
    xy = sinkhorn(x, y, a, b, epsilon=epsilon, relative_epsilon=relative_epsilon, **solver)
    xx = sinkhorn(x, x, a, a, epsilon=xy.epsilon, **solver)
    yy = sinkhorn(y, y, b, b, epsilon=xy.epsilon, **solver)
    return SinkhornDivergenceResult(xy, xx, yy)
