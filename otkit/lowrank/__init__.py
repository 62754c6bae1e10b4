"""Low-rank optimal transport, balanced and unbalanced.

Scetbon, Cuturi and Peyré (2021), "Low-Rank Sinkhorn Factorization"; Scetbon, Klein, Palla and
Cuturi (2023), "Unbalanced Low-Rank Optimal Transport Solvers". The coupling is factored as
P = Q diag(1/g) Rᵀ and found by mirror descent with (unbalanced) Dykstra projections, in time
linear in n for costs given as low-rank factors. :mod:`otkit.lowrank.gromov` solves (fused,
unbalanced) Gromov-Wasserstein the same way (Scetbon, Peyré and Cuturi 2022).
"""

from .gromov import (
    EntropicGWResult,
    LowRankGWResult,
    entropic_gw,
    gw_cost,
    lowrank_gw,
    rigid_fit,
    transfer_labels,
)
from .solver import LowRankResult, factorize_cost, lowrank

__all__ = [
    "LowRankResult", "lowrank", "factorize_cost",
    "LowRankGWResult", "lowrank_gw", "EntropicGWResult", "entropic_gw", "gw_cost",
    "transfer_labels", "rigid_fit",
]
