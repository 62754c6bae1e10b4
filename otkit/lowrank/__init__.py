"""Low-rank optimal transport, balanced and unbalanced.

Scetbon, Cuturi and Peyré (2021), "Low-Rank Sinkhorn Factorization"; Scetbon, Klein, Palla and
Cuturi (2023), "Unbalanced Low-Rank Optimal Transport Solvers". The coupling is factored as
P = Q diag(1/g) Rᵀ and found by mirror descent with (unbalanced) Dykstra projections, in time
linear in n for costs given as low-rank factors.
"""

from .solver import LowRankResult, factorize_cost, lowrank

__all__ = ["LowRankResult", "lowrank", "factorize_cost"]
