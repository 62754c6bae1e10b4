"""Metrics of multi-output conformal regression: marginal and conditional coverage.

Dheur et al. (2025), "A Unified Comparative Study with Generalized Conformity Scores for
Multi-Output Conformal Regression" (arXiv:2501.10533), compare conformal methods by marginal
coverage, region size and two measures of *conditional* coverage. Those two are here.

* :func:`coverage`: the fraction of test points whose y lies in its prediction region.
* :func:`worst_slab_coverage`: the smallest coverage over slabs ``{a ≤ vᵀx ≤ b}`` in feature
  space that hold at least a fraction δ of the points (Cauchois, Gupta, Duchi 2021, "Knowing what
  you know: valid and validated confidence sets in multiclass and multilabel prediction", JMLR 22).
  A method with good conditional coverage keeps it near 1 − α.
* :func:`binned_coverage` and :func:`conditional_coverage_error`: coverage in equal-count bins of
  x (or of its first principal component), and the mean gap between it and 1 − α.

Inputs: ``covered`` is a ``[k]`` boolean (or 0/1) vector, with ``covered[i]`` true when ``y_i``
is in its region. ``x`` is ``[k, p]`` (a ``[k]`` vector means p = 1). Torch tensors, NumPy arrays and
lists are all accepted. The computations run in float64 on the device of ``x`` when it is a tensor,
and on the CPU otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..validation import check_generator

__all__ = [
    "BinnedCoverage",
    "binned_coverage",
    "conditional_coverage_error",
    "coverage",
    "worst_slab_coverage",
]

# Bound on the [directions, ranks, ranks] block of slab coverages held at once (float64 entries).
_SLAB_BLOCK = 1 << 21


def _as_covered(covered) -> torch.Tensor:
    """``covered`` as a ``[k]`` bool tensor; 0/1 numbers are accepted."""
    if isinstance(covered, np.ndarray) or not isinstance(covered, torch.Tensor):
        try:
            covered = torch.as_tensor(np.asarray(covered))
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"covered must be a [k] boolean array, got {type(covered).__name__}"
            ) from err
    if covered.ndim != 1 or covered.shape[0] == 0:
        raise ValueError(f"covered must have shape [k] with k >= 1, got {tuple(covered.shape)}")
    if covered.dtype == torch.bool:
        return covered
    if covered.is_complex() or not ((covered == 0) | (covered == 1)).all():
        raise ValueError("covered must be boolean, or numbers that are all 0 or 1")
    return covered == 1


def _as_features(x, k: int, device: torch.device | None = None) -> torch.Tensor:
    """``x`` as a finite float64 ``[k, p]`` tensor (a ``[k]`` input becomes ``[k, 1]``)."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"x must be a [k, p] numeric array, got {type(x).__name__}") from err
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"x must be real numbers, got dtype {x.dtype}")
    x = x.to(torch.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x must have shape [k, p] (or [k]), got {tuple(x.shape)}")
    if x.shape[0] != k:
        raise ValueError(f"x has {x.shape[0]} rows but covered has {k} entries: they must match")
    if not torch.isfinite(x).all():
        raise ValueError("x contains NaN or inf values")
    return x if device is None else x.to(device)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _check_fraction(name: str, value, *, closed_right: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok = 0 < value <= 1 if closed_right else 0 < value < 1
    if not (math.isfinite(value) and ok):
        interval = "(0, 1]" if closed_right else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def coverage(covered) -> float:
    """Empirical coverage: the fraction of true entries of ``covered: [k]``."""
    covered = _as_covered(covered)
    return covered.double().mean().item()


# --------------------------------------------------------------------------------------------
# Worst-slab coverage
# --------------------------------------------------------------------------------------------


def _directions(directions, p: int, num_directions: int, gen, device) -> torch.Tensor:
    """Unit directions ``[m, p]``: the given ones, the one direction (1) if p = 1, else random."""
    if directions is not None:
        if not isinstance(directions, torch.Tensor):
            directions = torch.as_tensor(np.asarray(directions, dtype=np.float64))
        v = directions.to(device=device, dtype=torch.float64)
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] != p:
            raise ValueError(
                f"directions must have shape [m, {p}] (p = x's columns), got {tuple(v.shape)}"
            )
        norms = v.norm(dim=1, keepdim=True)
        if not torch.isfinite(v).all() or (norms == 0).any():
            raise ValueError("directions must be finite and non-zero")
        return v / norms
    if p == 1:
        # Every unit direction in R^1 is ±1, and both give the same slabs.
        return torch.ones(1, 1, dtype=torch.float64, device=device)
    v = torch.randn((num_directions, p), generator=gen, dtype=torch.float64)
    return (v / v.norm(dim=1, keepdim=True)).to(device)


def _worst_slab(
    z: torch.Tensor, covered: torch.Tensor, min_count: int, max_ranks: int
) -> tuple[float, int, float, float]:
    """Smallest slab coverage over projections ``z: [m, k]``: ``(value, direction, a, b)``.

    A slab ``[a, b]`` of a projection can always be shrunk to ``[z_(s), z_(e)]`` (its smallest and
    largest projected points) without losing a point. So the candidate slabs are the pairs of
    sorted points, with start rank s and end rank e. When there are ties, the slab from
    ``z_(s)`` to ``z_(e)`` holds the whole tie group of each end. It runs from
    ``lo[s] = #{z < z_(s)}`` to ``hi[e] = #{z ≤ z_(e)}`` in sorted order, so its count and its
    number of covered points are differences of cumulative sums.
    """
    m, k = z.shape
    zs, order = torch.sort(z, dim=1)
    cum = torch.zeros((m, k + 1), dtype=torch.float64, device=z.device)
    cum[:, 1:] = torch.cumsum(covered.to(torch.float64)[order], dim=1)
    lo = torch.searchsorted(zs, zs, right=False)
    hi = torch.searchsorted(zs, zs, right=True)
    if k <= max_ranks:
        ranks = torch.arange(k, device=z.device)
    else:
        ranks = torch.linspace(0, k - 1, max_ranks, device=z.device).round().long().unique()
    g = ranks.shape[0]
    best = (math.inf, 0, 0.0, 0.0)
    chunk = max(1, _SLAB_BLOCK // (g * g))
    for start in range(0, m, chunk):
        sl = slice(start, min(start + chunk, m))
        lo_r, hi_r = lo[sl][:, ranks], hi[sl][:, ranks]  # [c, g]
        counts = hi_r[:, None, :] - lo_r[:, :, None]  # [c, start rank, end rank]
        hits = cum[sl].gather(1, hi_r)[:, None, :] - cum[sl].gather(1, lo_r)[:, :, None]
        cov = torch.where(counts >= min_count, hits / counts.clamp(min=1), math.inf)
        flat = cov.reshape(cov.shape[0], -1).min(dim=1)
        i = int(flat.values.argmin())
        value = flat.values[i].item()
        if value < best[0]:
            s, e = divmod(int(flat.indices[i]), g)
            d = start + i
            best = (value, d, zs[d, ranks[s]].item(), zs[d, ranks[e]].item())
    return best


def worst_slab_coverage(
    x,
    covered,
    *,
    delta: float = 0.1,
    num_directions: int = 100,
    directions=None,
    max_ranks: int = 1000,
    holdout: float | None = None,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
) -> float:
    """Worst-slab coverage (Cauchois et al. 2021) of prediction regions.

    For unit directions v in feature space, a slab is ``S = {x : a ≤ vᵀx ≤ b}``. The metric is

        WSC = min over v, and over slabs S holding at least ⌈δk⌉ of the k points, of
              (covered points in S) / (points in S).

    Exact conditional coverage (``P(y ∈ C(x) | x) = 1 − α``) makes every slab's expected coverage
    1 − α. A WSC well below 1 − α shows a region of feature space that is under-covered. WSC ≤
    :func:`coverage`, with equality at ``delta = 1`` (one slab, all points).

    **Search.** For each direction the points are sorted by ``vᵀx``. Only slabs whose ends are data
    points matter (a slab can be shrunk to its extreme points without changing its contents). With
    ``k ≤ max_ranks`` points, **every** (start, end) pair of sorted points is tried, so the
    minimum is exact for the given directions, ties included. With more points, starts and
    ends run over ``max_ranks`` evenly spaced ranks (``round(linspace(0, k − 1, max_ranks))``).
    That is an upper bound on the exact minimum, and it misses only by less than ``k/max_ranks``
    points at each end. The work is ``O(num_directions · min(k, max_ranks)²)``, done in blocks
    of tensors.

    **Directions.** By default they are ``num_directions`` Gaussian vectors, normalized, drawn from
    ``generator``/``seed``. For p = 1 there is a single direction (v = 1), and ``num_directions`` is
    ignored. ``directions: [m, p]`` gives them explicitly (normalized here).

    **Holdout.** The minimum over many slabs is biased low on a finite sample. With
    ``holdout = h ∈ (0, 1)``, a random ``⌈h·k⌉`` of the points (drawn after the directions, from the
    same generator) are set aside. The worst slab (v, a, b) is searched on the other points, and the
    result is the coverage of the set-aside points that fall in it. This is the "unbiased" variant
    Dheur et al. use (after Romano et al. 2020). It returns NaN when no set-aside point falls in
    the slab.

    Args:
        x: ``[k, p]`` features of the test points (``[k]`` means p = 1).
        covered: ``[k]`` booleans (or 0/1): is ``y_i`` in its region.
        delta: the smallest fraction of points a slab must hold, in (0, 1].
        num_directions: number of random directions (≥ 1). Used for p > 1 without ``directions``.
        directions: optional ``[m, p]`` directions to use instead of random ones.
        max_ranks: above this many points, search slabs on a grid of this many ranks (≥ 2).
        holdout: optional fraction in (0, 1) of points set aside to evaluate the worst slab.
        generator, seed: randomness of the directions and of the holdout split.

    Returns:
        The worst-slab coverage as a float in [0, 1] (NaN only in the holdout case above).
    """
    covered = _as_covered(covered)
    k = covered.shape[0]
    device = x.device if isinstance(x, torch.Tensor) else None
    x = _as_features(x, k, device)
    covered = covered.to(x.device)
    delta = _check_fraction("delta", delta, closed_right=True)
    num_directions = _check_int("num_directions", num_directions, 1)
    max_ranks = _check_int("max_ranks", max_ranks, 2)
    if holdout is not None:
        holdout = _check_fraction("holdout", holdout, closed_right=False)
    gen = check_generator(generator, seed)  # one generator: directions first, then the holdout split
    v = _directions(directions, x.shape[1], num_directions, gen, x.device)
    if holdout is None:
        search_x, search_cov = x, covered
    else:
        n_out = math.ceil(holdout * k)
        if n_out >= k:
            raise ValueError(f"holdout={holdout} leaves no point to search the slab on (k = {k})")
        perm = torch.randperm(k, generator=gen).to(x.device)
        out_idx, in_idx = perm[:n_out], perm[n_out:]
        search_x, search_cov = x[in_idx], covered[in_idx]
    k_search = search_x.shape[0]
    # "At least a fraction delta": the smallest allowed count; the 1e-9 guards δk = integer.
    min_count = max(1, math.ceil(delta * k_search - 1e-9))
    value, d, a, b = _worst_slab(v @ search_x.T, search_cov, min_count, max_ranks)
    if holdout is None:
        return value
    z_out = x[out_idx] @ v[d]
    inside = (z_out >= a) & (z_out <= b)
    if not inside.any():
        return math.nan
    return covered[out_idx][inside].double().mean().item()


# --------------------------------------------------------------------------------------------
# Binned (conditional) coverage
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class BinnedCoverage:
    """Coverage in equal-count bins along one direction of feature space.

    Attributes:
        direction: ``[p]`` unit vector. The bins are along ``t = x @ direction``: x itself for
            p = 1, the first principal direction of x for p > 1.
        edges: ``[num_bins + 1]`` bin edges in t: the minimum, the midpoints between neighbouring
            bins, and the maximum.
        centers: ``[num_bins]`` mean of t in each bin.
        coverage: ``[num_bins]`` coverage in each bin.
        counts: ``[num_bins]`` points in each bin (equal up to one).
    """

    direction: torch.Tensor
    edges: torch.Tensor
    centers: torch.Tensor
    coverage: torch.Tensor
    counts: torch.Tensor


def _principal_direction(x: torch.Tensor) -> torch.Tensor:
    """The first principal direction of ``x: [k, p]``, signed so that its largest entry is > 0."""
    if x.shape[1] == 1:
        return torch.ones(1, dtype=x.dtype, device=x.device)
    centred = x - x.mean(dim=0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    v = vh[0]
    # SVD's sign is arbitrary; fix it so the same data always bins the same way.
    return v if v[v.abs().argmax()] > 0 else -v


def binned_coverage(x, covered, num_bins: int = 10) -> BinnedCoverage:
    """Coverage in ``num_bins`` equal-count bins of x.

    The points are projected on ``t = x @ direction``, where direction is 1 for p = 1 and the first
    principal direction of the centred x for p > 1. They are sorted by t (stable sort) and split by
    rank into ``num_bins`` consecutive groups. The sizes differ by at most one, and the first
    ``k mod num_bins`` bins hold the extra point. Points tied in t can fall on either side of an
    edge.

    Args:
        x: ``[k, p]`` features (``[k]`` means p = 1).
        covered: ``[k]`` booleans (or 0/1).
        num_bins: number of bins, from 1 to k.

    Returns:
        A :class:`BinnedCoverage` (tensors in float64, on x's device; counts in int64).
    """
    covered = _as_covered(covered)
    k = covered.shape[0]
    device = x.device if isinstance(x, torch.Tensor) else None
    x = _as_features(x, k, device)
    covered = covered.to(x.device)
    num_bins = _check_int("num_bins", num_bins, 1, k)
    direction = _principal_direction(x)
    t = x @ direction
    order = torch.sort(t, stable=True).indices
    bins = torch.tensor_split(order, num_bins)
    counts = torch.tensor([b.numel() for b in bins], device=x.device)
    cov = torch.stack([covered[b].double().mean() for b in bins])
    centers = torch.stack([t[b].mean() for b in bins])
    t_sorted = t[order]
    ends = torch.cumsum(counts, 0)  # exclusive end rank of each bin
    inner = (t_sorted[ends[:-1] - 1] + t_sorted[ends[:-1]]) / 2
    edges = torch.cat([t_sorted[:1], inner, t_sorted[-1:]])
    return BinnedCoverage(direction, edges, centers, cov, counts)


def conditional_coverage_error(x, covered, alpha: float, *, num_bins: int = 10) -> float:
    """Mean absolute gap between coverage in bins of x and the target 1 − α.

    ``(1/B) Σ_b |coverage_b − (1 − α)|`` over the ``B = num_bins`` equal-count bins of
    :func:`binned_coverage` (along x for p = 1, along its first principal direction for p > 1).
    It is 0 when every bin is covered at exactly 1 − α. Sampling noise alone makes it about
    ``sqrt(2α(1 − α)/(π k/B))`` for regions with exact conditional coverage, so compare methods at
    the same k and B.

    Args:
        x: ``[k, p]`` features (``[k]`` means p = 1).
        covered: ``[k]`` booleans (or 0/1).
        alpha: the miscoverage level the regions target, in (0, 1).
        num_bins: number of bins, from 1 to k.
    """
    alpha = _check_fraction("alpha", alpha, closed_right=False)
    binned = binned_coverage(x, covered, num_bins)
    return (binned.coverage - (1 - alpha)).abs().mean().item()
