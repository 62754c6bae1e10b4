"""ProgOT: progressive entropic optimal transport.

Kassraie, Pooladian, Klein, Thornton, Niles-Weed and Cuturi (2024), "Progressive Entropic
Optimal Transport Solvers", NeurIPS. K entropic steps walk the source cloud to the target,

    x⁽ᵏ⁾ = (1 − α_k) x⁽ᵏ⁻¹⁾ + α_k T_k(x⁽ᵏ⁻¹⁾),

each T_k the entropic map of the current cloud to y at ε_k.

* :mod:`~otkit.progot.solver`: :func:`progot`, its result, the α and ε schedules;
* :mod:`~otkit.progot.study`: the experiments of notebook 01 (maps scored against ground
  truths, couplings at small ε against Sinkhorn with and without ε-scaling).
"""

from .solver import (
    ALPHA_SCHEDULES,
    DEFAULT_EPSILON_SCALES,
    EdgeOfGridWarning,
    EpsilonTuning,
    ProgOTResult,
    alpha_schedule,
    cost_scale,
    epsilon_schedule,
    progot,
    progress_schedule,
    tune_end_epsilon,
)

__all__ = [
    "progot",
    "ProgOTResult",
    "EpsilonTuning",
    "EdgeOfGridWarning",
    "alpha_schedule",
    "progress_schedule",
    "epsilon_schedule",
    "tune_end_epsilon",
    "cost_scale",
    "ALPHA_SCHEDULES",
    "DEFAULT_EPSILON_SCALES",
]
