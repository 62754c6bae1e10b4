"""Studies of elastic Monge maps: sparsity, ground truth, perturbations (notebook 07).

Each function estimates maps with :func:`otkit.sinkhorn` and an :class:`~otkit.elastic.
ElasticCost` (the result's ``transport`` is the elastic map of MBO, Cuturi, Klein and Ablin
2023) next to the squared-Euclidean entropic map, and returns plain rows (dicts) of the numbers
the papers' claims are about:

* :func:`sparse_shift_study`: a planted feature-sparse translation (the h-optimal map of every
  convex h): the fraction of coordinates moved, the error to the true displacement and the
  recall of its support, against λ and the regularizer;
* :func:`ground_truth_study`: the h-transform ground truths of Klein et al. (2024, Prop. 1)
  (:mod:`otkit.elastic.ground_truth`), the normalized MSE of the maps estimated with the
  matching elastic cost and with the squared Euclidean one, over dimensions and sample sizes;
* :func:`perturbation_study`: a gene-count-like matrix with a few perturbed genes
  (:func:`otkit.elastic.perturbed_expression`): which genes the map moves.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from ..sinkhorn import sinkhorn
from .costs import elastic_cost, sparse_shift_problem
from .data import PerturbedExpression
from .ground_truth import elastic_ground_truth

__all__ = ["sparse_shift_study", "ground_truth_study", "perturbation_study", "normalized_mse"]

#: |displacement| above this counts as moved.
MOVED = 1e-6


def normalized_mse(predicted: torch.Tensor, truth: torch.Tensor, x: torch.Tensor) -> float:
    """Σ‖T̂(x) − T(x)‖² / Σ‖T(x) − x‖²: 0 is exact, 1 is as bad as not moving at all."""
    return (((predicted - truth) ** 2).sum() / ((truth - x) ** 2).sum()).item()


def _cost(regularizer: str, lam: float, gamma: float = 1.0):
    if lam == 0 or regularizer == "sqeuclidean":
        return "sqeuclidean"
    return elastic_cost(regularizer, lam=lam, **({"gamma": gamma} if regularizer == "stvs" else {}))


def sparse_shift_study(
    dims: Sequence[int], *, n: int = 500, k: int = 5, shift: float = 2.0,
    lams: Sequence[float] = (0.0, 0.5, 1.0, 2.0), regularizers: Sequence[str] = ("l1", "stvs"),
    relative_epsilons: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0), n_test: int = 300,
    seed: int = 0,
) -> list[dict]:
    """Planted sparse translation y = x' + δ (x, x' independent N(0, I_d)), δ = ``shift`` on
    ``k`` coordinates: one row per (d, method); λ = 0 is the squared-Euclidean map.

    Every map is fitted at each absolute ε = r × std(C₂) on the grid ``relative_epsilons``,
    C₂ the squared-Euclidean cost of the same clouds: one ε scale for every λ (the std of an
    elastic cost grows with λ, so ε relative to each cost's own std would smooth the larger-λ
    maps more). Each method keeps the ε with the smallest error on ``n_test`` validation points
    and is reported on as many fresh test points: each at its tuned best on the same grid. Two
    baselines need no fit: ``identity`` (T(x) = x, error 1) and ``mean`` (T(x) = mean of y).

    Row keys: ``d``, ``regularizer`` (``sqeuclidean``, ``l1``, ``stvs``, ``identity`` or
    ``mean``), ``lam``, ``epsilon`` (the chosen absolute ε), ``moved`` (fraction of
    coordinates moved on test points), ``error`` (mean ‖T̂(x) − x − δ‖² / ‖δ‖²), ``recall``
    (share of the support's coordinates moved), ``seconds`` (the fits of the whole grid). STVS
    rows stop at λ = 2 (h convex only for λ ≤ 2ρ)."""
    rows = []
    for d in dims:
        gen = torch.Generator().manual_seed(seed)
        x, _, delta = sparse_shift_problem(n, d, k, shift=shift, generator=gen)
        y = torch.randn(n, d, generator=gen, dtype=torch.float64) + delta
        x_val = torch.randn(n_test, d, generator=gen, dtype=torch.float64)
        x_test = torch.randn(n_test, d, generator=gen, dtype=torch.float64)
        unit = (0.5 * torch.cdist(x, y) ** 2).std().item()

        def error(disp: torch.Tensor) -> float:
            return (((disp - delta) ** 2).sum(1).mean() / (delta**2).sum()).item()

        def row(regularizer: str, lam: float, eps: float, disp: torch.Tensor, seconds: float):
            moved = disp.abs() > MOVED
            return {
                "d": d, "regularizer": regularizer, "lam": lam, "epsilon": eps,
                "moved": moved.double().mean().item(), "error": error(disp),
                "recall": moved[:, delta != 0].double().mean().item(), "seconds": seconds,
            }

        rows.append(row("identity", 0.0, 0.0, torch.zeros_like(x_test), 0.0))
        rows.append(row("mean", 0.0, 0.0, y.mean(0) - x_test, 0.0))
        for regularizer in regularizers:
            for lam in lams:
                if lam == 0 and regularizer != regularizers[0]:
                    continue  # one squared-Euclidean row per d
                if regularizer == "stvs" and lam > 2:
                    continue
                start = time.perf_counter()
                fits = [sinkhorn(x, y, cost=_cost(regularizer, lam), epsilon=r * unit)
                        for r in relative_epsilons]
                best = min(fits, key=lambda f: error(f.transport(x_val) - x_val))
                rows.append(row(regularizer if lam else "sqeuclidean", lam, best.epsilon,
                                best.transport(x_test) - x_test, time.perf_counter() - start))
    return rows


def ground_truth_study(
    dims: Sequence[int], sizes: Sequence[int], *, regularizer: str = "l1", lam: float = 1.0,
    relative_epsilon: float = 0.03, curvature: float = 2.0, ridge_scale: float = 2.0,
    n_test: int = 500, seed: int = 0,
) -> list[dict]:
    """Maps estimated from unpaired samples of an h-transform ground truth (cost ``regularizer``,
    λ = ``lam``, ρ = 1): one row per (d, n) (key ``cost``: the regularizer's name) with the
    normalized MSE (:func:`normalized_mse`)
    of the elastic map with the matching cost and of the squared-Euclidean map, and the
    fractions of coordinates they and the truth move."""
    cost = elastic_cost(regularizer, lam=lam)
    rows = []
    for d in dims:
        truth = elastic_ground_truth(cost, d, seed=seed, curvature=curvature,
                                     ridge_scale=ridge_scale)
        for n in sizes:
            gen = torch.Generator().manual_seed(seed + n)
            x, y = truth.sample_pair(n, generator=gen)
            x_test = truth.sample_source(n_test, generator=gen)
            t_test = truth.map(x_test)
            row = {"cost": regularizer, "d": d, "n": n, "true moved": ((t_test - x_test).abs() > MOVED).double().mean().item()}
            for name, c in (("elastic", cost), ("sqeuclidean", "sqeuclidean")):
                predicted = sinkhorn(x, y, cost=c, relative_epsilon=relative_epsilon).transport(x_test)
                row[f"nmse {name}"] = normalized_mse(predicted, t_test, x_test)
                row[f"moved {name}"] = ((predicted - x_test).abs() > MOVED).double().mean().item()
            rows.append(row)
    return rows


def perturbation_study(
    data: PerturbedExpression, lams: Sequence[float], *, relative_epsilon: float = 0.5,
    top: int | None = None,
) -> list[dict]:
    """Maps from control to perturbed cells: one row per λ (0: squared Euclidean) with the
    fraction of genes moved per cell, the precision and recall of the moved (cell, gene)
    entries against the perturbed genes, the precision of the ``top`` genes (default: as
    many as were perturbed) ranked by |mean displacement| (the population's answer), and the
    same precision cell by cell, averaged (``cell top-k precision``: each cell's ``top`` genes
    ranked by its own |displacement|; chance level is ``top`` / genes)."""
    x, y = data.control, data.perturbed
    d = x.shape[1]
    truth = torch.zeros(d, dtype=torch.bool)
    truth[data.genes] = True
    top = data.genes.numel() if top is None else top
    rows = []
    for lam in lams:
        start = time.perf_counter()
        result = sinkhorn(x, y, cost=_cost("l1", lam), relative_epsilon=relative_epsilon)
        disp = result.transport(x) - x
        moved = disp.abs() > MOVED
        ranked = disp.mean(0).abs().argsort(descending=True)[:top]
        per_cell = disp.abs().topk(top, dim=1).indices  # [cells, top]
        rows.append({
            "lam": lam,
            "genes moved per cell": moved.double().mean().item(),
            "precision": (moved & truth).sum().item() / max(1, moved.sum().item()),
            "recall": (moved & truth).sum().item() / (truth.sum().item() * x.shape[0]),
            f"top-{top} precision": truth[ranked].double().mean().item(),
            f"cell top-{top} precision": truth[per_cell].double().mean().item(),
            "seconds": time.perf_counter() - start,
        })
    return rows
