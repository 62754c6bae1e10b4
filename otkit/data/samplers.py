"""Small, reproducible point-cloud samplers for examples, widgets and notebooks.

Every sampler draws on the CPU in float64 from one ``torch.Generator`` and only then casts to
``dtype`` (float32 by default) and moves to ``device``: the same seed gives the same cloud, up to
rounding, in every dtype and on every device.

Randomness: pass ``generator=`` (a ``torch.Generator``, or an ``int`` seed) or ``seed=`` (an
``int``). With neither, torch's global generator is used (seed it with ``torch.manual_seed``).

* :func:`gaussian_mixture` — isotropic Gaussians around given centres, any dimension;
* :func:`eight_gaussians` — eight Gaussians on a circle (mean ≈ 0);
* :func:`moons` — the two interleaved half circles (torch; no scikit-learn);
* :func:`checkerboard` — uniform on the dark squares of a checkerboard over [-2, 2]²;
* :func:`half_annulus` — uniform on a half annulus (the semidiscrete toy's targets);
* :func:`two_clouds` — a source/target pair ``(x, y)`` for transport demos;
* :func:`clouds_with_outliers`, :func:`tissue_slices` — pairs that only partly correspond,
  with the truth (:class:`PartialMatch`), for unbalanced OT;
* :func:`digits` — scikit-learn's bundled 8×8 handwritten digits as ``[n, 64]`` vectors in
  [-1, 1] (real data, no download; needs scikit-learn), with a seeded stratified split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..validation import check_choice, check_count, check_generator, check_nonnegative

__all__ = [
    "gaussian_mixture",
    "eight_gaussians",
    "moons",
    "checkerboard",
    "two_clouds",
    "TWO_CLOUD_KINDS",
    "PartialMatch",
    "clouds_with_outliers",
    "tissue_slices",
    "half_annulus",
    "digits",
    "DIGITS_SPLITS",
]

#: The ``kind`` values :func:`two_clouds` accepts.
TWO_CLOUD_KINDS = ("moons", "gaussians", "mixture", "eight_gaussians", "checkerboard")

#: The ``split`` values :func:`digits` accepts.
DIGITS_SPLITS = ("all", "train", "test")

_DEFAULT_CENTERS = ((-2.0, 0.0), (2.0, 0.0), (0.0, 2.0 * math.sqrt(3.0)))


def _out(points: torch.Tensor, dtype, device) -> torch.Tensor:
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    return points.to(dtype=dtype, device=device)


def _randn(shape, gen) -> torch.Tensor:
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def _rand(shape, gen) -> torch.Tensor:
    return torch.rand(shape, generator=gen, dtype=torch.float64)


def gaussian_mixture(
    n: int,
    centers: Sequence[Sequence[float]] | torch.Tensor | None = None,
    std: float | Sequence[float] = 0.5,
    weights: Sequence[float] | torch.Tensor | None = None,
    *,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` points from a mixture of isotropic Gaussians, shape ``[n, d]``.

    Args:
        n: number of points (≥ 1).
        centers: ``[k, d]`` component means (any dimension d); default: three centres on an
            equilateral triangle of side 4 in the plane.
        std: the standard deviation of every component, or one per component (``[k]``).
        weights: ``[k]`` component probabilities (normalized here); uniform by default.
        generator, seed: randomness (module docstring).
        dtype, device: of the returned tensor.

    Returns:
        ``[n, d]`` tensor. Each point picks a component from ``weights`` and adds
        ``N(0, std_k² I)`` noise.
    """
    n = check_count("n", n)
    gen = check_generator(generator, seed)
    c = torch.as_tensor(_DEFAULT_CENTERS if centers is None else centers, dtype=torch.float64)
    if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
        raise ValueError(f"centers must have shape [k, d] with k, d >= 1, got {tuple(c.shape)}")
    k, d = c.shape
    s = torch.as_tensor(std, dtype=torch.float64).cpu()
    if s.ndim == 0:
        s = s.expand(k)
    if s.shape != (k,) or not torch.isfinite(s).all() or (s < 0).any():
        raise ValueError(f"std must be a number >= 0 or {k} of them (one per centre), got {std!r}")
    if weights is None:
        w = torch.full((k,), 1.0 / k, dtype=torch.float64)
    else:
        w = torch.as_tensor(weights, dtype=torch.float64).cpu()
        if w.shape != (k,) or not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError(
                f"weights must be {k} non-negative numbers with a positive sum, got {weights!r}"
            )
    labels = torch.multinomial(w / w.sum(), n, replacement=True, generator=gen)
    points = c[labels] + s[labels].unsqueeze(1) * _randn((n, d), gen)
    return _out(points, dtype, device)


def eight_gaussians(
    n: int,
    radius: float = 2.0,
    std: float = 0.2,
    *,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` points from eight Gaussians centred on a circle of ``radius``, shape ``[n, 2]``.

    The centres sit at angles ``kπ/4``, k = 0..7, so the mixture has mean 0; each has
    standard deviation ``std``.
    """
    n = check_count("n", n)
    radius, std = check_nonnegative("radius", radius), check_nonnegative("std", std)
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return gaussian_mixture(
        n, centers, std, generator=generator, seed=seed, dtype=dtype, device=device
    )


def moons(
    n: int,
    noise: float = 0.05,
    *,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    return_labels: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles ("moons"), shape ``[n, 2]``, in shuffled order.

    ``n // 2`` points on the upper moon ``(cos t, sin t)`` and the rest on the lower one
    ``(1 − cos t, 0.5 − sin t)``, t ~ U[0, π], plus ``N(0, noise² I)``: without noise the cloud
    lies in ``[-1, 2] × [-0.5, 1]`` (the layout of scikit-learn's ``make_moons``, with random
    rather than evenly spaced t).

    With ``return_labels``, also returns ``[n]`` int64 labels (0: upper moon, 1: lower).
    """
    n = check_count("n", n)
    noise = check_nonnegative("noise", noise)
    gen = check_generator(generator, seed)
    labels = (torch.arange(n) >= n // 2).long()
    labels = labels[torch.randperm(n, generator=gen)]
    t = math.pi * _rand(n, gen)
    upper = torch.stack([t.cos(), t.sin()], dim=1)
    lower = torch.stack([1.0 - t.cos(), 0.5 - t.sin()], dim=1)
    points = torch.where(labels.unsqueeze(1) == 0, upper, lower)
    points = points + noise * _randn((n, 2), gen)
    points = _out(points, dtype, device)
    return (points, labels.to(device)) if return_labels else points


def checkerboard(
    n: int,
    squares: int = 4,
    *,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniform on the dark squares of a ``squares × squares`` board over ``[-2, 2]²``.

    A square (i, j) is dark when ``i + j`` is even; each point picks a dark square uniformly,
    then a uniform position inside it. Shape ``[n, 2]``.
    """
    n = check_count("n", n)
    if isinstance(squares, bool) or not isinstance(squares, int) or squares < 1:
        raise ValueError(f"squares must be a positive integer, got {squares!r}")
    gen = check_generator(generator, seed)
    grid = torch.cartesian_prod(torch.arange(squares), torch.arange(squares)).reshape(-1, 2)
    dark = grid[(grid.sum(1) % 2) == 0].to(torch.float64)
    pick = torch.randint(0, dark.shape[0], (n,), generator=gen)
    side = 4.0 / squares
    points = -2.0 + side * (dark[pick] + _rand((n, 2), gen))
    return _out(points, dtype, device)


def two_clouds(
    n: int,
    m: int | None = None,
    kind: str = "moons",
    *,
    d: int = 2,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A source cloud ``x: [n, d]`` and a target cloud ``y: [m, d]`` (``m = n`` by default).

    Kinds (:data:`TWO_CLOUD_KINDS`):

    * ``"moons"``: x is the upper moon, y the lower one (:func:`moons`, noise 0.05);
    * ``"gaussians"``: x ~ N((−1.5, 0, …), diag(0.6², 0.3², …)), y ~ N((1.5, 0, …), R Σ_y Rᵀ),
      an anisotropic Gaussian turned by 60° in the first two coordinates; any dimension ``d``;
    * ``"mixture"``: x and y from three-component mixtures with different centres;
    * ``"eight_gaussians"``: x ~ N(0, 0.5² I), y from :func:`eight_gaussians`;
    * ``"checkerboard"``: x ~ N(0, I), y from :func:`checkerboard`.

    Only ``"gaussians"`` accepts ``d != 2``. x is drawn before y from one generator.
    """
    n = check_count("n", n)
    m = n if m is None else check_count("m", m)
    check_choice("kind", kind, TWO_CLOUD_KINDS)
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    if d != 2 and kind != "gaussians":
        raise ValueError(f"kind={kind!r} is two-dimensional: d must be 2 (got {d}); "
                         "use kind='gaussians' for other dimensions")
    gen = check_generator(generator, seed)
    if gen is None:
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
    f64 = dict(generator=gen, dtype=torch.float64)
    if kind == "moons":
        x = _one_moon(n, 0, gen)
        y = _one_moon(m, 1, gen)
    elif kind == "gaussians":
        if d == 1:
            x = -1.5 + 0.6 * _randn((n, 1), gen)
            y = 1.5 + 0.3 * _randn((m, 1), gen)
        else:
            scale_x = torch.full((d,), 0.3, dtype=torch.float64)
            scale_x[0] = 0.6
            x = _randn((n, d), gen) * scale_x
            x[:, 0] -= 1.5
            scale_y = torch.full((d,), 0.5, dtype=torch.float64)
            scale_y[0], scale_y[1] = 0.8, 0.2
            y = _randn((m, d), gen) * scale_y
            theta = math.pi / 3
            rot = torch.tensor(
                [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]],
                dtype=torch.float64,
            )
            y[:, :2] = y[:, :2] @ rot.T
            y[:, 0] += 1.5
    elif kind == "mixture":
        x = gaussian_mixture(n, ((-2.0, -1.0), (-2.0, 1.5), (0.0, 0.0)), 0.35, **f64)
        y = gaussian_mixture(m, ((2.0, -1.5), (2.0, 1.0), (3.0, 0.0)), 0.35, **f64)
    elif kind == "eight_gaussians":
        x = 0.5 * _randn((n, 2), gen)
        y = eight_gaussians(m, **f64)
    else:  # checkerboard
        x = _randn((n, 2), gen)
        y = checkerboard(m, **f64)
    return _out(x, dtype, device), _out(y, dtype, device)


def _one_moon(n: int, which: int, gen: torch.Generator, noise: float = 0.05) -> torch.Tensor:
    t = math.pi * _rand(n, gen)
    if which == 0:
        points = torch.stack([t.cos(), t.sin()], dim=1)
    else:
        points = torch.stack([1.0 - t.cos(), 0.5 - t.sin()], dim=1)
    return points + noise * _randn((n, 2), gen)


@dataclass(frozen=True)
class PartialMatch:
    """Two clouds that only partly correspond, with the truth (for unbalanced OT demos).

    Attributes:
        x: source points ``[n, d]``; y: target points ``[m, d]``.
        x_unmatched: ``[n]`` bool, source points with no counterpart in y.
        y_unmatched: ``[m]`` bool, target points with no counterpart in x.
        x_labels, y_labels: ``[n]``, ``[m]`` integer classes (a cell type, a cluster);
            points only correspond within a class.
        truth: ``[n, d]`` the true image of each source point (NaN where unmatched).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_unmatched: torch.Tensor
    y_unmatched: torch.Tensor
    x_labels: torch.Tensor
    y_labels: torch.Tensor
    truth: torch.Tensor


def clouds_with_outliers(
    n: int,
    *,
    outlier_fraction: float = 0.1,
    outlier_distance: float = 8.0,
    noise: float = 0.1,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> PartialMatch:
    """A 2-D cloud, its image under a known map, and outlier clusters only the target has.

    x: ``n`` points from a three-component mixture (:func:`gaussian_mixture`); the inliers of
    y are T(x) + N(0, noise²), T a rotation by 30° followed by a shift of (1, 0.5) (a Monge map
    of ½‖·‖² only approximately: the truth is T(x), not the OT map); y also holds
    ``round(outlier_fraction · n)`` outliers in two tight clusters ``outlier_distance`` away.
    Labels: 0, 1, 2 the mixture components, 3 the outliers.
    """
    n = check_count("n", n)
    if not 0 <= outlier_fraction < 1:
        raise ValueError(f"outlier_fraction must lie in [0, 1), got {outlier_fraction}")
    check_nonnegative("outlier_distance", outlier_distance)
    check_nonnegative("noise", noise)
    gen = check_generator(generator, seed)
    centers = torch.tensor(_DEFAULT_CENTERS, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=gen)
    x = centers[labels] + 0.5 * _randn((n, 2), gen)
    angle = math.pi / 6
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)],
                             [math.sin(angle), math.cos(angle)]], dtype=torch.float64)
    truth = x @ rotation.T + torch.tensor([1.0, 0.5], dtype=torch.float64)
    inliers = truth + noise * _randn((n, 2), gen)
    k = round(outlier_fraction * n)
    side = torch.where(_rand((k,), gen) < 0.5, 1.0, -1.0).to(torch.float64)
    outliers = torch.stack([side * outlier_distance, torch.full((k,), outlier_distance)], dim=1)
    outliers = outliers + 0.3 * _randn((k, 2), gen)
    y = torch.cat([inliers, outliers])
    return PartialMatch(
        x=_out(x, dtype, device), y=_out(y, dtype, device),
        x_unmatched=torch.zeros(n, dtype=torch.bool, device=device),
        y_unmatched=(torch.arange(n + k) >= n).to(device),
        x_labels=labels.to(device), y_labels=torch.cat([labels, torch.full((k,), 3)]).to(device),
        truth=_out(truth, dtype, device),
    )


def tissue_slices(
    n: int,
    *,
    num_types: int = 5,
    genes: int = 20,
    missing_fraction: float = 0.25,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[PartialMatch, torch.Tensor, torch.Tensor]:
    """Two synthetic spatial-transcriptomics slices whose regions only partly overlap.

    Cells lie in the unit square; in the region both slices share, their type is set by
    their position (concentric bands around a centre, ``num_types`` of them). Slice A keeps
    the cells with first coordinate ≥ ``missing_fraction``, slice B (drawn afresh) those with
    first coordinate ≤ 1 − ``missing_fraction``: each has a strip the other lacks, made of a
    cell type of its own (type ``num_types`` in A, ``num_types + 1`` in B; a lesion, say).
    Expression, ``[genes]`` log-counts, is the type's profile plus noise. OT matches cells by
    expression (x, y are the expression matrices); the truth of a cell is its type's profile,
    and the cells of the exclusive strips are unmatched: balanced OT must pair them with
    cells of other types.

    Returns ``(match, positions_a, positions_b)``, the positions ``[n_a, 2]``, ``[n_b, 2]`` for
    plots. ``match.truth`` holds each cell's type profile (NaN where unmatched).
    """
    n = check_count("n", n)
    num_types = check_count("num_types", num_types)
    genes = check_count("genes", genes)
    if not 0 <= missing_fraction < 0.5:
        raise ValueError(f"missing_fraction must lie in [0, 0.5), got {missing_fraction}")
    gen = check_generator(generator, seed)
    profiles = 2.0 * _randn((num_types + 2, genes), gen)

    def slice_(keep, exclusive, own_type) -> tuple[torch.Tensor, ...]:
        pos = _rand((4 * n, 2), gen)
        pos = pos[keep(pos[:, 0])][:n]
        radius = (pos - torch.tensor([0.5, 0.5], dtype=torch.float64)).norm(dim=1)
        types = (radius / (0.5 * math.sqrt(2)) * num_types).long().clamp_max(num_types - 1)
        unmatched = exclusive(pos[:, 0])
        types = torch.where(unmatched, own_type, types)
        expression = profiles[types] + 0.5 * _randn((pos.shape[0], genes), gen)
        return pos, types, expression, unmatched

    pos_a, types_a, expr_a, unmatched_a = slice_(
        lambda u: u >= missing_fraction, lambda u: u > 1 - missing_fraction, num_types)
    pos_b, types_b, expr_b, unmatched_b = slice_(
        lambda u: u <= 1 - missing_fraction, lambda u: u < missing_fraction, num_types + 1)
    truth = profiles[types_a].clone()
    truth[unmatched_a] = math.nan
    match = PartialMatch(
        x=_out(expr_a, dtype, device), y=_out(expr_b, dtype, device),
        x_unmatched=unmatched_a.to(device), y_unmatched=unmatched_b.to(device),
        x_labels=types_a.to(device), y_labels=types_b.to(device),
        truth=_out(truth, dtype, device),
    )
    return match, _out(pos_a, dtype, device), _out(pos_b, dtype, device)


def digits(
    *,
    split: str = "all",
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    return_labels: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 handwritten 8×8 digits bundled with scikit-learn, as ``[n, 64]`` in [-1, 1].

    The data are the UCI "Optical Recognition of Handwritten Digits" test set as shipped
    inside scikit-learn (``sklearn.datasets.load_digits``): it is read from the installed
    package, never downloaded. Pixels are integers 0..16 (ink counts on a 4×4 grid of a
    32×32 bitmap), mapped to [-1, 1] by ``x / 8 − 1``; each image is flattened row by row, so
    ``x.view(-1, 1, 8, 8)`` gives images ``[n, 1, 8, 8]`` (channel first, for conv nets).

    Args:
        split: ``"all"`` (every digit, in scikit-learn's order), or ``"train"`` / ``"test"``:
            a stratified split in which each class sends ``round(test_fraction · n_c)`` of its
            ``n_c`` images, drawn with ``seed``, to the test part. The two parts are disjoint,
            cover the data set, and keep scikit-learn's order within each part.
        test_fraction: share of each class in the test part, in (0, 1); ignored for ``"all"``.
        seed: the split's seed (a CPU ``torch.Generator``); ignored for ``"all"``.
        dtype, device: of the returned tensors (a floating-point dtype).
        return_labels: also return the ``[n]`` int64 classes 0..9.

    Returns:
        ``x: [n, 64]`` (n = 1797 for ``"all"``), or ``(x, labels)`` with ``return_labels``.

    Raises:
        ImportError: scikit-learn is missing (it is an optional extra of otkit).
    """
    check_choice("split", split, DIGITS_SPLITS)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)):
        raise TypeError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    try:
        from sklearn.datasets import load_digits  # optional dependency: imported on use
    except ImportError as error:
        raise ImportError(
            "otkit.data.digits reads the 8×8 digits bundled with scikit-learn, which is "
            "not installed: pip install scikit-learn (or otkit[test] / otkit[notebooks])"
        ) from error
    bunch = load_digits()
    pixels = torch.as_tensor(bunch.data, dtype=torch.float64)  # [1797, 64], integers 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    points = pixels / 8.0 - 1.0
    if split != "all":
        gen = torch.Generator().manual_seed(seed)
        in_test = torch.zeros(labels.shape[0], dtype=torch.bool)
        for c in range(10):  # stratified: the same share of every class goes to the test part
            members = torch.nonzero(labels == c).flatten()
            count = round(test_fraction * members.numel())
            in_test[members[torch.randperm(members.numel(), generator=gen)[:count]]] = True
        keep = in_test if split == "test" else ~in_test
        points, labels = points[keep], labels[keep]
    points = _out(points, dtype, device)
    return (points, labels.to(device)) if return_labels else points


def half_annulus(
    n: int,
    inner: float = 1.0,
    outer: float = 2.0,
    *,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``n`` points uniform on the upper half annulus ``inner ≤ ‖z‖ ≤ outer, z₂ ≥ 0``: ``[n, 2]``.

    The target of the semidiscrete toy of Mousavi-Hosseini et al. (2025). Radii are drawn with
    density ∝ r (uniform in area), angles uniform on [0, π].
    """
    n = check_count("n", n)
    inner, outer = check_nonnegative("inner", inner), check_nonnegative("outer", outer)
    if not inner < outer:
        raise ValueError(f"inner must be smaller than outer, got {inner} and {outer}")
    gen = check_generator(generator, seed)
    radius = torch.sqrt(inner**2 + (outer**2 - inner**2) * _rand(n, gen))
    angle = math.pi * _rand(n, gen)
    points = radius.unsqueeze(1) * torch.stack([angle.cos(), angle.sin()], dim=1)
    return _out(points, dtype, device)
