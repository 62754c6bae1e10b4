"""Amortized maximum inner product search with learned support functions.

Olausson, Monteiro, Klein and Cuturi (2026), "Amortizing maximum inner product search with
learned support functions". The MIPS value over keys K, h_K(q) = max_j ⟨q, k_j⟩, is the
support function of K: convex, positively 1-homogeneous, with ∇h_K(q) = k*(q), the best key.
A network trained on exact targets predicts k*(q) in one forward pass:

* :mod:`~otkit.amips.models`: :class:`SupportNet` (an input-convex f_θ, k̂ = ∇f_θ),
  :class:`KeyNet` (k̂_θ(q) directly, score ⟨q, k̂⟩ by Euler's identity), :class:`Homogenize`
  (f(q) = ‖q‖ h(q/‖q‖); 1-homogeneous, not convexity-preserving), parameter budgets;
* :mod:`~otkit.amips.train`: the loss w_s (s − ⟨q, k*⟩)² + w_k ‖k̂ − k*‖² on exact blockwise
  targets (the MIPS of :func:`otkit.semidiscrete.assign`);
* :mod:`~otkit.amips.search`: exact MIPS, match rate / MRR / recall@k, a minimal IVF index
  (k-means cells, nprobe), and the semidiscrete assignment as a MIPS over augmented keys;
* :mod:`~otkit.amips.router`: the router variant, one network regressing the support function
  of every k-means cell (:class:`ClusterRouter`), the cells it ranks first are scanned;
* :mod:`~otkit.amips.data`: keys from anisotropic clusters, queries from a shifted law;
* :mod:`~otkit.amips.study`: the experiments of notebook 10 (variants over seeds, the claims
  read by :func:`otkit.stats.compare`, IVF recall against total FLOPs).

The input-convex network itself is a shared block, :class:`otkit.nn.ICNN`.
"""

from ..nn.icnn import ICNN
from .data import MipsProblem, cluster_problem
from .models import (
    MODELS,
    Homogenize,
    KeyNet,
    SupportNet,
    parameter_count,
    width_for_budget,
)
from .router import ClusterRouter, cell_support, fit_router
from .search import (
    IVFIndex,
    RetrievalMetrics,
    augmented_keys,
    augmented_queries,
    key_ranks,
    kmeans,
    mips,
    nearest_key,
    retrieval_metrics,
)
from .train import FitResult, amips_loss, fit, targets

__all__ = [
    "ICNN", "MipsProblem", "cluster_problem", "MODELS", "Homogenize", "KeyNet", "SupportNet",
    "parameter_count", "width_for_budget", "IVFIndex", "RetrievalMetrics", "augmented_keys",
    "augmented_queries", "key_ranks", "kmeans", "mips", "nearest_key", "retrieval_metrics",
    "FitResult", "amips_loss", "fit", "targets", "ClusterRouter", "cell_support", "fit_router",
]
