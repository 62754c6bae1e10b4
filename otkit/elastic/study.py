"""Studies of elastic Monge maps: sparsity, ground truth, perturbations (notebook 07).

Each function estimates maps with :func:`otkit.sinkhorn` and an :class:`~otkit.elastic.
ElasticCost` (the result's ``transport`` is the elastic map of MBO, Cuturi, Klein and Ablin
2023) next to the squared-Euclidean entropic map, and returns plain rows (dicts) of the numbers
the papers' claims are about:

* :func:`sparse_shift_study`: a planted feature-sparse translation (the h-optimal map of every
  convex h): the fraction of coordinates moved, the error to the true displacement and the
  recall of its support, against λ and the regularizer; :func:`read_shift_study` reads its
  rows over several seeds (intervals and paired verdicts, :mod:`otkit.stats`);
* :func:`ground_truth_study`: the h-transform ground truths of Klein et al. (2024, Prop. 1)
  (:mod:`otkit.elastic.ground_truth`), the normalized MSE of the maps estimated with the
  matching elastic cost and with the squared Euclidean one, over dimensions and sample sizes;
* :func:`perturbation_study`: a gene-count-like matrix with a few perturbed genes
  (:func:`otkit.elastic.perturbed_expression`): which genes the map moves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..costs import TranslationInvariantCost
from ..sinkhorn import sinkhorn
from ..stats import Interval, compare, mean_interval
from ..validation import check_count
from .costs import elastic_cost, sparse_shift_problem
from .data import PerturbedExpression
from .ground_truth import elastic_ground_truth

__all__ = ["sparse_shift_study", "read_shift_study", "ground_truth_study", "perturbation_study",
           "normalized_mse"]

#: |displacement| above this counts as moved.
MOVED = 1e-6


def normalized_mse(predicted: torch.Tensor, truth: torch.Tensor, x: torch.Tensor) -> float:
    """Σ‖T̂(x) − T(x)‖² / Σ‖T(x) − x‖²: 0 is exact, 1 is as bad as not moving at all."""
    return (((predicted - truth) ** 2).sum() / ((truth - x) ** 2).sum()).item()


def _cost(regularizer: str, lam: float, gamma: float = 1.0):
    if lam == 0 or regularizer == "sqeuclidean":
        return "sqeuclidean"
    return elastic_cost(regularizer, lam=lam, **({"gamma": gamma} if regularizer == "stvs" else {}))


@dataclass(frozen=True, eq=False)
class _KeptMatrix(TranslationInvariantCost):
    """``cost`` that keeps the last cost matrix it computed for each shape of clouds and
    returns it again for the same clouds. The ε grid solves one pair of clouds with one cost several times, and an STVS
    matrix (h on each of the [n, m, d] differences) costs far more than the handful of
    Sinkhorn iterations each ε needs; everything else is ``cost``'s own."""

    cost: TranslationInvariantCost
    _kept: dict = field(default_factory=dict, repr=False)  # {(x shape, y shape): (x, y, C)}

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.cost.name

    @property
    def symmetric(self) -> bool:  # type: ignore[override]
        return self.cost.symmetric

    @property
    def linear_gradient(self) -> bool:  # type: ignore[override]
        return self.cost.linear_gradient

    def h(self, z: torch.Tensor) -> torch.Tensor:
        return self.cost.h(z)

    def grad_h(self, z: torch.Tensor) -> torch.Tensor:
        return self.cost.grad_h(z)

    def grad_h_conjugate(self, w: torch.Tensor) -> torch.Tensor:
        return self.cost.grad_h_conjugate(w)

    def h_and_grad_h(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cost.h_and_grad_h(z)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # one entry per shape: the solver also asks for a one-row matrix (a gradient check)
        key = (tuple(x.shape), tuple(y.shape))
        kept = self._kept.get(key)
        if kept is not None and torch.equal(kept[0], x) and torch.equal(kept[1], y):
            return kept[2]
        matrix = self.cost.pairwise(x, y)
        self._kept[key] = (x.clone(), y.clone(), matrix)
        return matrix


def sparse_shift_study(
    dims: Sequence[int], *, n: int = 500, k: int = 5, shift: float = 2.0,
    lams: Sequence[float] = (0.0, 0.5, 1.0, 2.0), regularizers: Sequence[str] = ("l1", "stvs"),
    relative_epsilons: Sequence[float] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0), n_test: int = 300,
    n_validation: int | None = None, seed: int = 0,
) -> list[dict]:
    """Planted sparse translation y = x' + δ (x, x' independent N(0, I_d)), δ = ``shift`` on
    ``k`` coordinates: one row per (d, method); λ = 0 is the squared-Euclidean map. ``seed``
    draws the clouds (several seeds: :func:`read_shift_study`).

    Every map is fitted at each absolute ε = r × std(C₂) on the grid ``relative_epsilons``,
    C₂ the squared-Euclidean cost of the same clouds: one ε scale for every λ (the std of an
    elastic cost grows with λ, so ε relative to each cost's own std would smooth the larger-λ
    maps more). Each method keeps the ε with the smallest error on ``n_validation`` validation
    points (default ``n_test``) and is reported on ``n_test`` fresh test points: each at its
    tuned best on the same grid. Two baselines need no fit: ``identity`` (T(x) = x, error 1)
    and ``mean`` (T(x) = mean of y).

    Row keys: ``seed``, ``d``, ``regularizer`` (``sqeuclidean``, ``l1``, ``stvs``,
    ``identity`` or ``mean``), ``lam``, ``epsilon`` (the chosen absolute ε), ``moved``
    (fraction of coordinates moved on test points), ``error`` (mean ‖T̂(x) − x − δ‖² / ‖δ‖²
    on the test points), ``validation`` (the same on the validation points, at the chosen ε),
    ``recall`` (share of the support's coordinates moved), ``seconds`` (the fits of the whole
    grid). STVS rows stop at λ = 2 (h convex only for λ ≤ 2ρ). The grid's solves share one
    cost matrix per (d, method): only ε changes between them."""
    n_test = check_count("n_test", n_test)
    n_validation = n_test if n_validation is None else check_count("n_validation", n_validation)
    rows = []
    for d in dims:
        gen = torch.Generator().manual_seed(seed)
        x, _, delta = sparse_shift_problem(n, d, k, shift=shift, generator=gen)
        y = torch.randn(n, d, generator=gen, dtype=torch.float64) + delta
        x_val = torch.randn(n_validation, d, generator=gen, dtype=torch.float64)
        x_test = torch.randn(n_test, d, generator=gen, dtype=torch.float64)
        unit = (0.5 * torch.cdist(x, y) ** 2).std().item()

        def error(disp: torch.Tensor) -> float:
            return (((disp - delta) ** 2).sum(1).mean() / (delta**2).sum()).item()

        def row(regularizer: str, lam: float, eps: float, disp: torch.Tensor, validation: float,
                seconds: float):
            moved = disp.abs() > MOVED
            return {
                "seed": seed, "d": d, "regularizer": regularizer, "lam": lam, "epsilon": eps,
                "moved": moved.double().mean().item(), "error": error(disp),
                "validation": validation,
                "recall": moved[:, delta != 0].double().mean().item(), "seconds": seconds,
            }

        rows.append(row("identity", 0.0, 0.0, torch.zeros_like(x_test), 1.0, 0.0))
        rows.append(row("mean", 0.0, 0.0, y.mean(0) - x_test, error(y.mean(0) - x_val), 0.0))
        for regularizer in regularizers:
            for lam in lams:
                if lam == 0 and regularizer != regularizers[0]:
                    continue  # one squared-Euclidean row per d
                if regularizer == "stvs" and lam > 2:
                    continue
                start = time.perf_counter()
                cost = _cost(regularizer, lam)
                cost = cost if isinstance(cost, str) else _KeptMatrix(cost)
                fits = [sinkhorn(x, y, cost=cost, epsilon=r * unit) for r in relative_epsilons]
                scored = [(error(f.transport(x_val) - x_val), f) for f in fits]
                validation, best = min(scored, key=lambda pair: pair[0])
                rows.append(row(regularizer if lam else "sqeuclidean", lam, best.epsilon,
                                best.transport(x_test) - x_test, validation,
                                time.perf_counter() - start))
    return rows


def _log_comparison(a: Sequence[float], b: Sequence[float], level: float):
    """Paired errors ``a`` against ``b`` on a log scale (errors are ratios to ‖δ‖² and span
    decades across d): the verdict of :func:`otkit.stats.compare` on log a − log b, and the
    geometric-mean ratio a / b with its interval, exp of that difference's interval."""
    comparison = compare(np.log(a), np.log(b), level)
    diff = comparison.difference
    ratio = Interval(math.exp(diff.estimate), math.exp(diff.low), math.exp(diff.high), diff.n,
                     diff.level)
    return comparison.verdict, ratio


def read_shift_study(rows: Sequence[dict], *, level: float = 0.95) -> dict[int, dict[str, object]]:
    """The findings of :func:`sparse_shift_study` over several seeds: ``{d: readings}``.

    ``rows``: the rows of one call per seed (at least 2 seeds, the same methods for each). Each
    regularizer's λ is chosen per seed on the validation points (the λ > 0 with the smallest
    ``validation`` error; its ε was already tuned there), so the test points only score. Readings
    per d, each over the seeds (Student-t intervals at ``level``, :mod:`otkit.stats`):

    * ``error_<method>``: mean test error of ``sqeuclidean``, ``l1`` and ``stvs`` (at the chosen
      λ), ``identity`` (1) and ``mean`` (the collapse onto the target mean);
    * ``ratio_<reg>``: the error of ``l1`` / ``stvs`` over the squared-Euclidean map's, as a
      geometric mean over seeds with its interval, and ``<reg>_vs_sqeuclidean`` the paired
      verdict on log errors ("lower": the elastic map is closer to the translation, "tie": the
      interval of the log-ratio contains 0);
    * ``<method>_vs_identity`` (``sqeuclidean``, ``l1``): the same verdict against not moving
      (error 1), and ``sqeuclidean_vs_mean`` against the collapse;
    * ``moved_sqeuclidean``: mean fraction of coordinates moved at λ = 0; per regularizer
      (``l1``, ``stvs``): ``lams_<reg>`` its λ > 0 grid, ``moved_<reg>``, ``errors_<reg>`` and
      ``recall_<reg>`` (``[λ]`` means over seeds of the fraction moved, the test error and the
      recall of the support), ``moved_<reg>_max_lam`` the interval of the fraction moved at the
      largest λ and ``monotone_<reg>`` the number of seeds on which the fraction moved never
      grows with λ (λ = 0 first);
    * ``chosen_lam_<reg>``: the λ chosen on each seed; ``seeds``: how many.
    """
    out: dict[int, dict[str, object]] = {}
    for d in sorted({r["d"] for r in rows}):
        at_d = [r for r in rows if r["d"] == d]
        seeds = sorted({r["seed"] for r in at_d})
        if len(seeds) < 2:
            raise ValueError(f"rows must hold at least 2 seeds at d = {d}, got {len(seeds)}")

        def of(seed: int, regularizer: str) -> list[dict]:
            return [r for r in at_d if r["seed"] == seed and r["regularizer"] == regularizer]

        errors: dict[str, list[float]] = {}
        reading: dict[str, object] = {"seeds": len(seeds)}
        for method in ("sqeuclidean", "identity", "mean", "l1", "stvs"):
            picked = [min(of(s, method), key=lambda r: r["validation"]) for s in seeds
                      if of(s, method)]
            if not picked:
                continue
            if len(picked) != len(seeds):
                raise ValueError(f"rows must hold {method} rows for every seed at d = {d}")
            errors[method] = [r["error"] for r in picked]
            reading[f"error_{method}"] = mean_interval(errors[method], level)
            if method in ("l1", "stvs"):
                reading[f"chosen_lam_{method}"] = [r["lam"] for r in picked]
        for reg in ("l1", "stvs"):
            if reg in errors:
                verdict, ratio = _log_comparison(errors[reg], errors["sqeuclidean"], level)
                reading[f"ratio_{reg}"], reading[f"{reg}_vs_sqeuclidean"] = ratio, verdict
        for method in ("sqeuclidean", "l1"):
            if method in errors and "identity" in errors:
                reading[f"{method}_vs_identity"] = _log_comparison(
                    errors[method], errors["identity"], level)[0]
        if "mean" in errors:
            reading["sqeuclidean_vs_mean"] = _log_comparison(
                errors["sqeuclidean"], errors["mean"], level)[0]
        reading["moved_sqeuclidean"] = float(np.mean([of(s, "sqeuclidean")[0]["moved"] for s in seeds]))
        for reg in ("l1", "stvs"):
            if reg not in errors:
                continue
            by_lam = [sorted(of(s, reg), key=lambda r: r["lam"]) for s in seeds]  # [seeds][λ]
            if len({tuple(r["lam"] for r in rows_s) for rows_s in by_lam}) != 1:
                raise ValueError(f"rows must hold the same λ grid for every seed ({reg}, d = {d})")
            moved = np.array([[of(s, "sqeuclidean")[0]["moved"]] + [r["moved"] for r in rows_s]
                              for s, rows_s in zip(seeds, by_lam)])  # [seeds, 1 + λ]
            reading[f"lams_{reg}"] = [r["lam"] for r in by_lam[0]]
            reading[f"moved_{reg}"] = moved[:, 1:].mean(0).tolist()
            reading[f"errors_{reg}"] = np.mean([[r["error"] for r in rows_s] for rows_s in by_lam],
                                               0).tolist()
            reading[f"recall_{reg}"] = np.mean([[r["recall"] for r in rows_s] for rows_s in by_lam],
                                               0).tolist()
            reading[f"moved_{reg}_max_lam"] = mean_interval(moved[:, -1], level)
            reading[f"monotone_{reg}"] = int(np.all(np.diff(moved, axis=1) <= 0, axis=1).sum())
        out[d] = reading
    return out


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
