"""Bloop: gradient surgery with an EMA, and its Pareto fronts.

Hsieh, Thornton, Ndiaye, Klein, Cuturi and Ablin (2024), "Careful with that scalpel: improving
gradient surgery with an EMA" (ICML 2024). To minimize L_aux among the minimizers of L_main,
Bloop follows d = g_m + λ (g_a − ⟨g_a, ĝ⟩ / ‖ĝ‖² · ĝ), with ĝ ← ĝ + ρ (g_m − ĝ) an EMA of the
main gradients: the auxiliary part is orthogonal to the (averaged) main gradient, so it does
not slow the main loss down, however large λ.

The optimizer wrapper is a shared block, :class:`otkit.nn.GradientSurgery` (Bloop, mixed,
Dynamic Barrier, PCGrad), usable wherever otkit trains with two losses; this package holds the
paper's experiments: :mod:`~otkit.bloop.study` (the quadratic toy, a Lipschitz-regularized MLP
on the 8×8 digits, ρ sweeps and reading fronts at equal auxiliary loss; notebook 12).
"""

from ..nn.surgery import METHODS, GradientSurgery, SurgeryConfig, surgery_direction
from .study import (
    DIGITS_LAMS,
    PAPER_RHO,
    TOY_LAMS,
    QuadraticToy,
    digits_study,
    equal_aux_comparison,
    lipschitz_loss,
    lipschitz_mlp,
    main_at_aux,
    mean_front,
    pareto_front,
    quadratic_study,
    quadratic_toy,
    rho_sweep,
    summarize_comparison,
    train_digits,
    train_quadratic,
)

__all__ = [
    "METHODS", "GradientSurgery", "SurgeryConfig", "surgery_direction", "PAPER_RHO", "TOY_LAMS",
    "DIGITS_LAMS", "QuadraticToy", "quadratic_toy", "train_quadratic", "quadratic_study",
    "lipschitz_mlp", "lipschitz_loss", "train_digits", "digits_study", "rho_sweep",
    "pareto_front", "main_at_aux", "equal_aux_comparison", "summarize_comparison",
    "mean_front",
]
