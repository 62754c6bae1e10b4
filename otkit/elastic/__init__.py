"""Elastic costs: MBO's sparse Monge displacements and learned subspace costs.

* Cuturi, Klein and Ablin (2023), "Monge, Bregman and Occam: Interpretable Optimal Transport in
  High-Dimensions with Feature-Sparse Maps" (MBO): costs c(x, y) = h(x − y),
  h(z) = (ρ/2)‖z‖² + λ r(z), whose entropic maps T(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j)) move
  few coordinates for sparsity-inducing r;
* Klein, Pooladian, Ablin, Ndiaye, Niles-Weed and Cuturi (2024), "Learning Elastic Costs to
  Shape Monge Displacements": ground-truth h-optimal maps and a learned subspace cost.

Modules: :mod:`~otkit.elastic.costs` (regularizers with exact proxes, :class:`ElasticCost`,
its maps), :mod:`~otkit.elastic.ground_truth` (h-transform ground truths),
:mod:`~otkit.elastic.subspace` (learning A of the subspace cost), :mod:`~otkit.elastic.data`
(a gene-count-like perturbation) and :mod:`~otkit.elastic.study` (notebook 07's experiments).
"""

from .costs import (
    L1,
    STVS,
    ElasticCost,
    KOverlap,
    Regularizer,
    Subspace,
    displacement_sparsity,
    elastic_cost,
    elastic_inverse_map,
    elastic_map,
    sparse_shift_problem,
)
from .data import PerturbedExpression, perturbed_expression
from .ground_truth import (
    ConcavePotential,
    ElasticGroundTruth,
    concave_potential,
    elastic_ground_truth,
)

__all__ = [
    "Regularizer",
    "L1",
    "STVS",
    "KOverlap",
    "Subspace",
    "ElasticCost",
    "elastic_cost",
    "elastic_map",
    "elastic_inverse_map",
    "displacement_sparsity",
    "sparse_shift_problem",
    "PerturbedExpression",
    "perturbed_expression",
    "ConcavePotential",
    "ElasticGroundTruth",
    "concave_potential",
    "elastic_ground_truth",
]
