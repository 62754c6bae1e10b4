"""Entropic maps: a Monge map estimated out of sample from an entropic OT solution.

Let g be the target potential of an entropic OT problem between ``(a, x)`` and ``(b, y)`` with
cost c and regularization ε (``otkit.sinkhorn``). A new point x is softly assigned to the
targets by the c-transform's weights

    p_j(x) = b_j exp((g_j − c(x, y_j))/ε) / Σ_l b_l exp((g_l − c(x, y_l))/ε),

and the gradient of the entropic potential f_ε(x) = −ε log Σ_j b_j exp((g_j − c(x, y_j))/ε) is
∇f_ε(x) = Σ_j p_j(x) ∇_x c(x, y_j).

* A translation-invariant cost c(x, y) = h(x − y) with h strictly convex
  (:class:`otkit.costs.TranslationInvariantCost`) has the Monge map T(x) = x − ∇h*(∇f(x))
  (Gangbo and McCann 1996). Plugging in ∇f_ε gives the entropic map (Pooladian and
  Niles-Weed 2021 for ½‖·‖²; Cuturi, Klein and Ablin 2023, Prop. 2, for any such h)

      T_ε(x) = x − ∇h*( Σ_j p_j(x) ∇h(x − y_j) ),   p_j(x) ∝ b_j exp((g_j − h(x − y_j))/ε).

  For h = ½‖·‖² (∇h = ∇h* = id) this is the barycentric projection Σ_j p_j(x) y_j; whenever
  ∇h is linear (``cost.linear_gradient``), Σ_j p_j ∇h(x − y_j) = ∇h(x − Σ_j p_j y_j) and only
  the barycentre is needed. :func:`entropic_map`.
* Any other cost: the barycentric projection T(x) = Σ_j p_j(x) y_j. :func:`barycentric_projection`.

The inverse maps (from y back to x) are the same estimators with the clouds' roles swapped,
weights ``a``, potential f and the transposed cost c(x_i, y): ``transpose=True``. For a
translation-invariant cost that is h̃(z) = h(−z), with ∇h̃(z) = −∇h(−z) and
∇h̃*(w) = −∇h*(−w) (h̃*(w) = h*(−w)); h̃ = h when h is even (``cost.symmetric``).

Memory stays bounded whatever the sizes: points are processed in bands and the targets in
blocks, with an online softmax (Milakov and Gimelshein 2018). For scores s_j it keeps a running
maximum M, sum S = Σ_j e^{s_j − M} and weighted sum A = Σ_j e^{s_j − M} v_j, and rescales S and
A by e^{M − M'} when a block raises the maximum to M'; the average is A/S. A non-linear ∇h
needs ``[band, block, d]`` differences (O(band · block · d) memory); linear ones and the
barycentric projection need only ``[band, block]`` scores.

Shapes: new points ``[k, d]``, the support (targets) ``[m, d]``, ``logits [m]`` =
log b_j + g_j/ε (``log a_i + f_i/ε`` for inverse maps).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .costs import Cost, TranslationInvariantCost
from .validation import check_count, check_positive

__all__ = ["transport", "entropic_map", "mean_gradient", "barycentric_projection"]

# Elements of the [band, block, d] differences (or [band, block] scores) held at once
# (32 MB in float64).
_BUDGET = 2**22

#: Scores ``[band, block]`` and, for a non-linear ∇h, per-pair gradients ``[band, block, d]``
#: of a band of points against the targets ``cols``.
_Terms = Callable[[torch.Tensor, slice], tuple[torch.Tensor, torch.Tensor | None]]


@dataclass(frozen=True)
class _Reflected(TranslationInvariantCost):
    """h̃(z) = h(−z): the transposed cost c̃(y, x) = c(x, y) of a translation-invariant cost."""

    cost: TranslationInvariantCost

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"reflected_{self.cost.name}"

    @property
    def linear_gradient(self) -> bool:  # type: ignore[override]
        return self.cost.linear_gradient

    def h(self, z: torch.Tensor) -> torch.Tensor:
        return self.cost.h(-z)

    def grad_h(self, z: torch.Tensor) -> torch.Tensor:
        return -self.cost.grad_h(-z)

    def grad_h_conjugate(self, w: torch.Tensor) -> torch.Tensor:
        return -self.cost.grad_h_conjugate(-w)

    def h_and_grad_h(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value, grad = self.cost.h_and_grad_h(-z)
        return value, -grad

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.cost.pairwise(y, x).T

    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        parts = self.cost.split(y, x)
        return None if parts is None else (parts[1], parts[0])


def _oriented(cost: TranslationInvariantCost, transpose: bool) -> TranslationInvariantCost:
    return _Reflected(cost) if transpose and not cost.symmetric else cost


def _check(
    points: torch.Tensor, support: torch.Tensor, logits: torch.Tensor, epsilon: float
) -> float:
    for name, t, ndim in (("points", points, 2), ("support", support, 2), ("logits", logits, 1)):
        if not isinstance(t, torch.Tensor) or t.ndim != ndim:
            raise ValueError(f"{name} must be a tensor with {ndim} dimensions")
    if points.shape[1] != support.shape[1]:
        raise ValueError(f"points [k, {points.shape[1]}] and support [m, {support.shape[1]}] "
                         "must have the same dimension")
    if logits.shape[0] != support.shape[0]:
        raise ValueError(f"logits must have shape [{support.shape[0]}], got {tuple(logits.shape)}")
    return check_positive("epsilon", epsilon)


def _sizes(
    m: int, width: int, block_size: int | None, band_size: int | None
) -> tuple[int, int]:
    """``(block, band)``: targets per block and points per band, so that a ``[band, block,
    width]`` tensor holds about ``_BUDGET`` elements (``width`` = d for per-pair gradients, 1
    for scores only)."""
    block = check_count("block_size", block_size) if block_size is not None else None
    band = check_count("band_size", band_size) if band_size is not None else None
    block = block or max(1, min(max(m, 1), _BUDGET // width))
    band = band or max(1, _BUDGET // (block * width))
    return block, band


def _score_terms(
    cost: Cost,
    points: torch.Tensor,
    support: torch.Tensor,
    logits: torch.Tensor,
    epsilon: float,
    transpose: bool,
) -> _Terms:
    """Scores ``logits_j − c(x, y_j)/ε`` (``c(y_j, x)`` when ``transpose``), up to a constant
    per point, which the softmax ignores."""
    parts = cost.split(support, points) if transpose else cost.split(points, support)
    if parts is not None:
        # C = r ⊕ s − x yᵀ: the point's own term drops out of the softmax, so a band of scores
        # is one matrix product onto the targets' term.
        column = logits - (parts[0] if transpose else parts[1]) / epsilon

        def terms(x: torch.Tensor, cols: slice) -> tuple[torch.Tensor, None]:
            return torch.addmm(column[cols], x, support[cols].T, alpha=1.0 / epsilon), None

        return terms

    def pair_cost(x: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        if transpose and not cost.symmetric:
            return cost.pairwise(ys, x).T
        return cost.pairwise(x, ys)

    def terms(x: torch.Tensor, cols: slice) -> tuple[torch.Tensor, None]:
        return torch.sub(logits[cols], pair_cost(x, support[cols]), alpha=1.0 / epsilon), None

    return terms


def _soft_mean(
    points: torch.Tensor,
    m: int,
    terms: _Terms,
    values: torch.Tensor | None,
    width: int,
    block: int,
    band: int,
) -> torch.Tensor:
    """``Σ_j p_j(x) v_j(x)`` for each point, ``p(x) = softmax_j(scores)``, ``[k, width]``.

    ``v_j(x)`` are the per-pair values ``terms`` returns, or the rows ``values[j]`` when it
    returns None. Bands of points, blocks of targets, an online softmax (module docstring).
    """
    k = points.shape[0]
    out = torch.empty(k, width, dtype=points.dtype, device=points.device)
    for start in range(0, k, band):
        x = points[start : start + band]
        run_max = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        run_sum = torch.zeros_like(run_max)
        acc = x.new_zeros(x.shape[0], width)
        for js in range(0, m, block):
            cols = slice(js, min(js + block, m))
            scores, pair = terms(x, cols)
            # The max only shifts the exponents (the softmax ignores it): detached, it stays
            # out of autograd, and the scores, ours, can become the weights in place.
            new_max = torch.maximum(run_max, scores.detach().amax(1))
            rescale = torch.exp(run_max - new_max)  # 0 on the first block (run_max = −inf)
            weights = scores.sub_(new_max[:, None]).exp_()
            run_sum = run_sum * rescale + weights.sum(1)
            if pair is None:
                step = weights @ values[cols]
            else:
                step = torch.einsum("bj,bjd->bd", weights, pair)
            acc = acc * rescale[:, None] + step
            run_max = new_max
        out[start : start + band] = acc / run_sum[:, None]
    return out


def mean_gradient(
    cost: TranslationInvariantCost,
    points: torch.Tensor,
    support: torch.Tensor,
    logits: torch.Tensor,
    epsilon: float,
    *,
    transpose: bool = False,
    block_size: int | None = None,
    band_size: int | None = None,
) -> torch.Tensor:
    """``∇f_ε(x) = Σ_j p_j(x) ∇h(x − y_j)``, ``p_j(x) ∝ exp(logits_j − h(x − y_j)/ε)``, ``[k, d]``.

    ``points: [k, d]``, ``support: [m, d]``, ``logits: [m]``. With ``transpose`` the cost is
    c(y_j, x) = h(y_j − x) (module docstring). When ∇h is linear only the barycentre
    ȳ(x) = Σ_j p_j(x) y_j is streamed and the result is ∇h(x − ȳ(x)); otherwise per-pair
    gradients of ``[band, block, d]`` differences are averaged. ``block_size`` targets per
    block (default: as many as keep the differences near 32 MB), ``band_size`` points per band.
    """
    if not isinstance(cost, TranslationInvariantCost):
        raise TypeError(f"cost must be an otkit.costs.TranslationInvariantCost, got {cost!r}")
    epsilon = _check(points, support, logits, epsilon)
    cost = _oriented(cost, transpose)
    m, d = support.shape
    if cost.linear_gradient:
        block, band = _sizes(m, 1, block_size, band_size)
        terms = _score_terms(cost, points, support, logits, epsilon, transpose=False)
        return cost.grad_h(points - _soft_mean(points, m, terms, support, d, block, band))

    def terms(x: torch.Tensor, cols: slice) -> tuple[torch.Tensor, torch.Tensor]:
        value, grad = cost.h_and_grad_h(x[:, None, :] - support[None, cols, :])
        return torch.sub(logits[cols], value, alpha=1.0 / epsilon), grad

    block, band = _sizes(m, d, block_size, band_size)
    return _soft_mean(points, m, terms, None, d, block, band)


def entropic_map(
    cost: TranslationInvariantCost,
    points: torch.Tensor,
    support: torch.Tensor,
    logits: torch.Tensor,
    epsilon: float,
    *,
    centre: Callable[[torch.Tensor], torch.Tensor] | None = None,
    transpose: bool = False,
    block_size: int | None = None,
    band_size: int | None = None,
) -> torch.Tensor:
    """The entropic map T_ε(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j)) at ``points: [k, d]``.

    Pooladian and Niles-Weed (2021); Cuturi, Klein and Ablin (2023), Prop. 2. ``support:
    [m, d]``, ``logits: [m]`` = log b_j + g_j/ε. ``centre`` moves both clouds by one
    translation before h is evaluated (e.g. ``PointCloud.centred``): h sees only differences,
    so the map is unchanged, but ½‖x‖² + ½‖y‖² − ⟨x, y⟩ stays accurate in float32 far from the
    origin. ``transpose``: the inverse map, cost c(y_j, x). Returns ``[k, d]``.
    """
    if not isinstance(cost, TranslationInvariantCost):
        raise TypeError(f"cost must be an otkit.costs.TranslationInvariantCost, got {cost!r}")
    shifted = (centre(points), centre(support)) if centre is not None else (points, support)
    w = mean_gradient(cost, *shifted, logits, epsilon, transpose=transpose,
                      block_size=block_size, band_size=band_size)
    return points - _oriented(cost, transpose).grad_h_conjugate(w)


def barycentric_projection(
    cost: Cost,
    points: torch.Tensor,
    support: torch.Tensor,
    logits: torch.Tensor,
    epsilon: float,
    *,
    values: torch.Tensor | None = None,
    centre: Callable[[torch.Tensor], torch.Tensor] | None = None,
    transpose: bool = False,
    block_size: int | None = None,
    band_size: int | None = None,
) -> torch.Tensor:
    """``Σ_j p_j(x) v_j`` with ``p_j(x) ∝ exp(logits_j − c(x, y_j)/ε)`` at ``points: [k, d]``.

    ``values: [m, e]`` default to the ``support: [m, d]`` itself (the barycentric projection
    T(x) = Σ_j p_j(x) y_j). ``centre`` moves both clouds before c is evaluated (only for a
    translation-invariant cost); ``transpose``: the cost c(y_j, x). Returns ``[k, e]``.
    """
    epsilon = _check(points, support, logits, epsilon)
    values = support if values is None else values
    if not isinstance(values, torch.Tensor) or values.ndim != 2 or len(values) != len(support):
        raise ValueError(f"values must be a tensor of shape [{support.shape[0]}, e]")
    if centre is not None:
        points, support = centre(points), centre(support)
    block, band = _sizes(support.shape[0], 1, block_size, band_size)
    terms = _score_terms(cost, points, support, logits, epsilon, transpose)
    return _soft_mean(points, support.shape[0], terms, values.to(points.dtype),
                      values.shape[1], block, band)


def transport(
    cost: Cost,
    points: torch.Tensor,
    support: torch.Tensor,
    logits: torch.Tensor,
    epsilon: float,
    *,
    centre: Callable[[torch.Tensor], torch.Tensor] | None = None,
    transpose: bool = False,
    block_size: int | None = None,
) -> torch.Tensor:
    """The entropic map of ``cost`` at ``points: [k, d]``: :func:`entropic_map` for a
    :class:`~otkit.costs.TranslationInvariantCost`, else :func:`barycentric_projection`."""
    if isinstance(cost, TranslationInvariantCost):
        return entropic_map(cost, points, support, logits, epsilon, centre=centre,
                            transpose=transpose, block_size=block_size)
    return barycentric_projection(cost, points, support, logits, epsilon, centre=centre,
                                  transpose=transpose, block_size=block_size)
