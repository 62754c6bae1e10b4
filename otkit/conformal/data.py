"""Multi-output regression data for conformal prediction: toy generators, real datasets, splits.

Every dataset is a :class:`RegressionData`: features ``x: [n, p]``, targets ``y: [n, d]`` with
d ≥ 2 outputs, and, for the toys, the exact conditional mean ``E[y | x]``.

* :func:`make_toy_regression`: four toy generators (:data:`TOY_KINDS`), in the spirit of the
  toy suite of Dheur et al. (2025), "A Unified Comparative Study with Generalized Conformity
  Scores for Multi-Output Conformal Regression" (arXiv:2501.10533). The feature is 1-D,
  ``x ~ U[0, 1]``, so coverage in bins of x (conditional coverage) can be measured. The noise
  law changes with x in scale, correlation, separation or curvature. Any output dimension
  ``dim ≥ 2`` is allowed. :func:`sample_toy_targets` draws y for given x (e.g. many y at one x).
* :func:`load_multioutput`: small real datasets from the Mulan multi-target regression
  collection, shipped with the package (:data:`MULTIOUTPUT_DATASETS`; provenance, citations and
  licences in ``otkit/data/multioutput/README.md``). Nothing is downloaded.
* :func:`split_data`: a random partition of the rows, e.g. train / fit / calibration / test.

Randomness works as in :mod:`otkit.data`: pass ``generator=`` (a CPU ``torch.Generator``
or an ``int`` seed) or ``seed=``. With neither, torch's global generator is used. Everything is
drawn on the CPU in float64 and cast to ``dtype`` only at the end, so one seed gives the same
data, up to rounding, in every dtype.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from ..validation import check_choice, check_count, check_generator

__all__ = [
    "MULTIOUTPUT_DATASETS",
    "TOY_KINDS",
    "RegressionData",
    "load_multioutput",
    "make_toy_regression",
    "sample_toy_targets",
    "split_data",
]

#: The ``kind`` values :func:`make_toy_regression` accepts.
TOY_KINDS = ("unimodal_heteroscedastic", "bimodal_heteroscedastic", "mixture", "banana")

#: The real datasets :func:`load_multioutput` can load, with their number of targets.
_N_TARGETS = {"enb": 2, "edm": 2, "slump": 3, "scpf": 3}
MULTIOUTPUT_DATASETS = tuple(_N_TARGETS)

_MAX_DIM = 64  # far above what the toys are meant for (d ≤ 8), but harmless

# Mixture kind: four components with fixed, unequal weights. Unequal weights give the noise a
# non-zero conditional mean, so conditional_mean really has to include it.
_MIXTURE_WEIGHTS = (0.4, 0.3, 0.2, 0.1)
_MIXTURE_RADIUS = 1.2


@dataclass(frozen=True, eq=False)
class RegressionData:
    """A multi-output regression dataset.

    Attributes:
        x: ``[n, p]`` features (floating point, finite).
        y: ``[n, d]`` targets (floating point, finite).
        name: the toy kind or the dataset name.
        conditional_mean: for toys, the exact ``E[y | x]``, a function ``[k, p] -> [k, d]``
            (it returns the dtype and device of its input). ``None`` for real data.
        feature_names: ``p`` column names, or ``()``.
        target_names: ``d`` column names, or ``()``.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str
    conditional_mean: Callable[[torch.Tensor], torch.Tensor] | None = None
    feature_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, t in (("x", self.x), ("y", self.y)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{label} must be a torch.Tensor, got {type(t).__name__}")
            if not t.is_floating_point():
                raise TypeError(f"{label} must be floating point, got dtype {t.dtype}")
            if t.ndim != 2 or t.shape[1] == 0:
                raise ValueError(f"{label} must have shape [n, columns], got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{label} contains NaN or inf values")
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(
                f"x and y must have the same number of rows, got x: {tuple(self.x.shape)}, "
                f"y: {tuple(self.y.shape)}"
            )
        if self.feature_names and len(self.feature_names) != self.x.shape[1]:
            raise ValueError(
                f"feature_names has {len(self.feature_names)} names for {self.x.shape[1]} features"
            )
        if self.target_names and len(self.target_names) != self.y.shape[1]:
            raise ValueError(
                f"target_names has {len(self.target_names)} names for {self.y.shape[1]} targets"
            )

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_features(self) -> int:
        """p, the number of feature columns."""
        return self.x.shape[1]

    @property
    def n_targets(self) -> int:
        """d, the output dimension."""
        return self.y.shape[1]

    def subset(self, index: torch.Tensor | Sequence[int]) -> RegressionData:
        """The rows ``index`` (a 1-D index or boolean mask), with the same metadata."""
        index = torch.as_tensor(index, device=self.x.device)
        return RegressionData(
            self.x[index],
            self.y[index],
            self.name,
            self.conditional_mean,
            self.feature_names,
            self.target_names,
        )

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> RegressionData:
        """A copy with x and y moved to ``device`` and/or cast to ``dtype``."""
        return RegressionData(
            self.x.to(device=device, dtype=dtype),
            self.y.to(device=device, dtype=dtype),
            self.name,
            self.conditional_mean,
            self.feature_names,
            self.target_names,
        )

    def __repr__(self) -> str:
        kind = "toy" if self.conditional_mean is not None else "real"
        return (
            f"RegressionData(name={self.name!r}, n={len(self)}, p={self.n_features}, "
            f"d={self.n_targets}, {kind}, dtype={self.x.dtype})"
        )


# --------------------------------------------------------------------------------------------
# Toy generators
# --------------------------------------------------------------------------------------------


def _check_kind(kind) -> str:
    return check_choice("kind", kind, TOY_KINDS)


def _check_dim(dim) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an integer (the output dimension d), got {dim!r}")
    if not 2 <= dim <= _MAX_DIM:
        raise ValueError(
            f"dim must be between 2 and {_MAX_DIM} (the output dimension d), got {dim}"
        )
    return dim


def _check_toy_x(x) -> torch.Tensor:
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        raise TypeError(f"x must be floating point, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x must have shape [k, p] with p >= 1, got {tuple(x.shape)}")
    return x


def _trend(t: torch.Tensor, dim: int) -> torch.Tensor:
    """m(t)_j = cos(2πt + πj/d), ``[k] -> [k, d]``: in 2-D the mean traces a unit circle."""
    phases = math.pi * torch.arange(dim, dtype=t.dtype, device=t.device) / dim
    return torch.cos(2 * math.pi * t[:, None] + phases)


def _mixture_centres(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Centres c_k(t)_j = R cos(θ_k(t) + πj/d), θ_k(t) = πk/2 + πt/2, shape ``[k, K, d]``.

    They turn by a quarter turn as t goes from 0 to 1. For d > 2 they lie in a 2-D plane of R^d.
    """
    comp = torch.arange(len(_MIXTURE_WEIGHTS), dtype=t.dtype, device=t.device)
    theta = math.pi / 2 * (comp[None, :] + t[:, None])  # [k, K]
    phases = math.pi * torch.arange(dim, dtype=t.dtype, device=t.device) / dim
    return _MIXTURE_RADIUS * torch.cos(theta[:, :, None] + phases)


def _toy_mean64(kind: str, t: torch.Tensor, dim: int) -> torch.Tensor:
    mean = _trend(t, dim)
    if kind == "mixture":
        # The only kind whose noise has a non-zero mean: Σ_k w_k c_k(t).
        w = torch.tensor(_MIXTURE_WEIGHTS, dtype=t.dtype, device=t.device)
        mean = mean + torch.einsum("c,kcd->kd", w, _mixture_centres(t, dim))
    return mean


@dataclass(frozen=True)
class _ToyMean:
    """The exact E[y | x] of a toy: ``[k, p] -> [k, d]``, in the dtype and device of x."""

    kind: str
    dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_toy_x(x)
        t = x[:, 0].to(torch.float64)
        return _toy_mean64(self.kind, t, self.dim).to(x.dtype)


def sample_toy_targets(
    kind: str,
    x: torch.Tensor,
    *,
    dim: int = 2,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Draw ``y ~ P(y | x)`` for a toy of :func:`make_toy_regression`, one draw per row of x.

    Args:
        kind: one of :data:`TOY_KINDS`.
        x: ``[k, p]`` features. Only the first column matters, and it is meant to be in [0, 1].
        dim: output dimension d ≥ 2.
        generator, seed: randomness (module docstring).

    Returns:
        ``[k, d]`` targets, in the dtype and on the device of x (drawn on the CPU in float64).
    """
    kind = _check_kind(kind)
    dim = _check_dim(dim)
    x = _check_toy_x(x)
    gen = check_generator(generator, seed)
    t = x[:, 0].detach().to("cpu", torch.float64)
    k = t.shape[0]
    z = torch.randn((k, dim), generator=gen, dtype=torch.float64)
    if kind == "unimodal_heteroscedastic":
        # Scale σ(t) = 0.1 + 0.9t; correlation ρ(t)^|i−j| between outputs i, j with
        # ρ(t) = 0.8(2t − 1), built as an AR(1) chain across the outputs (valid in any d).
        sigma, rho = 0.1 + 0.9 * t, 0.8 * (2 * t - 1)
        cols = [z[:, 0]]
        for j in range(1, dim):
            cols.append(rho * cols[-1] + torch.sqrt(1 - rho**2) * z[:, j])
        noise = sigma[:, None] * torch.stack(cols, dim=1)
    elif kind == "bimodal_heteroscedastic":
        # Two equally likely modes at ±(1, ..., 1). The scales move in opposite directions:
        # σ₊(t) = 0.05 + 0.4t, σ₋(t) = 0.45 − 0.4t.
        plus = torch.rand(k, generator=gen, dtype=torch.float64) < 0.5
        sign = torch.where(plus, 1.0, -1.0).to(torch.float64)
        sigma = torch.where(plus, 0.05 + 0.4 * t, 0.45 - 0.4 * t)
        noise = sign[:, None] + sigma[:, None] * z
    elif kind == "mixture":
        # Four Gaussian components with weights (0.4, 0.3, 0.2, 0.1) and turning centres
        # c_k(t) (_mixture_centres). The common isotropic scale is σ(t) = 0.1 + 0.2t.
        w = torch.tensor(_MIXTURE_WEIGHTS, dtype=torch.float64)
        comp = torch.multinomial(w, k, replacement=True, generator=gen)
        centres = _mixture_centres(t, dim)[torch.arange(k), comp]
        noise = centres + (0.1 + 0.2 * t)[:, None] * z
    else:  # banana
        # ε₀ = s(t) z₀, ε₁ = 0.3 s(t) z₁ + κ(t)(ε₀² − s(t)²): a parabola of curvature κ(t)
        # around a thin band. The mean is zero because E[ε₀²] = s(t)². s(t) = 0.2 + 0.3t and
        # κ(t) = 0.5 + t, so the cloud is nearly elliptic at t = 0 and a clear banana at t = 1.
        # Outputs j ≥ 2: plain Gaussian noise s(t) z_j.
        s, kappa = 0.2 + 0.3 * t, 0.5 + t
        noise = s[:, None] * z
        noise[:, 1] = 0.3 * s * z[:, 1] + kappa * (noise[:, 0] ** 2 - s**2)
    y = _trend(t, dim) + noise
    return y.to(device=x.device, dtype=x.dtype)


def make_toy_regression(
    kind: str,
    n: int,
    *,
    dim: int = 2,
    n_features: int = 1,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> RegressionData:
    """A toy multi-output regression dataset with a known conditional law.

    The features are ``x ~ U[0, 1]^p`` (p = ``n_features``, 1 by default). Only ``t = x[:, 0]``
    acts on y. Extra features are irrelevant noise, useful for testing slab metrics in p > 1.
    Targets are ``y = m(t) + ε(t)`` in R^d, with the trend ``m(t)_j = cos(2πt + πj/d)``
    (j = 0..d−1; in 2-D a unit circle) and, by ``kind`` (:data:`TOY_KINDS`):

    * ``"unimodal_heteroscedastic"``: ``ε ~ N(0, σ(t)² R(t))``, ``σ(t) = 0.1 + 0.9t`` and
      ``R(t)_ij = ρ(t)^|i−j|`` with ``ρ(t) = 0.8(2t − 1)``. The scale grows tenfold, and the
      correlation turns from −0.8 to +0.8.
    * ``"bimodal_heteroscedastic"``: ``ε = ±(1, ..., 1) + σ± (t) z``, each sign with probability ½,
      ``z ~ N(0, I)``, ``σ₊(t) = 0.05 + 0.4t``, ``σ₋(t) = 0.45 − 0.4t``. The modes are
      2√d ≥ 2.8 apart, more than 6 standard deviations.
    * ``"mixture"``: four Gaussian components with weights (0.4, 0.3, 0.2, 0.1), centres
      ``c_k(t)_j = 1.2 cos(πk/2 + πt/2 + πj/d)`` (a square turning by 90° over t ∈ [0, 1]; for d > 2
      it lies in a 2-D plane) and isotropic scale ``0.1 + 0.2t``. Its noise mean
      ``Σ_k w_k c_k(t)`` is not zero, and it is part of ``conditional_mean``.
    * ``"banana"``: ``ε₀ = s z₀``, ``ε₁ = 0.3 s z₁ + κ(ε₀² − s²)`` with ``s(t) = 0.2 + 0.3t``,
      ``κ(t) = 0.5 + t``: non-elliptic noise bent along a parabola. Outputs j ≥ 2 get plain
      Gaussian noise ``s(t) z_j``.

    Except for ``"mixture"``, ``E[ε | x] = 0``. ``conditional_mean`` is exact in every case.

    Args:
        kind: the toy (:data:`TOY_KINDS`).
        n: number of points (≥ 1).
        dim: output dimension d, from 2 to 64 (the toys are meant for d ≤ 8).
        n_features: p ≥ 1, the number of feature columns.
        generator, seed: randomness (module docstring). x is drawn before y.
        dtype: floating dtype of x and y.

    Returns:
        A :class:`RegressionData` with ``x: [n, p]``, ``y: [n, d]``, ``name = kind`` and the exact
        ``conditional_mean``.
    """
    kind = _check_kind(kind)
    n = check_count("n", n)
    dim = _check_dim(dim)
    if isinstance(n_features, bool) or not isinstance(n_features, int):
        raise TypeError(f"n_features must be a positive integer, got {n_features!r}")
    if n_features < 1:
        raise ValueError(f"n_features must be at least 1 (feature columns), got {n_features}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    gen = check_generator(generator, seed)
    x = torch.rand((n, n_features), generator=gen, dtype=torch.float64)
    y = sample_toy_targets(kind, x, dim=dim, generator=gen)
    return RegressionData(
        x.to(dtype),
        y.to(dtype),
        kind,
        _ToyMean(kind, dim),
        tuple(f"x{i}" for i in range(n_features)),
        tuple(f"y{j}" for j in range(dim)),
    )


# --------------------------------------------------------------------------------------------
# Real datasets
# --------------------------------------------------------------------------------------------


def _read_csv(name: str) -> tuple[list[str], np.ndarray]:
    path = resources.files("otkit").joinpath("data", "multioutput", f"{name}.csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    header, body = rows[0], rows[1:]
    # An empty field is a missing value (the ARFF's "?").
    values = np.array(
        [[float(v) if v.strip() else np.nan for v in row] for row in body], dtype=np.float64
    )
    if values.shape != (len(body), len(header)):
        raise RuntimeError(f"{name}.csv is ragged: expected {len(header)} fields per row")
    return header, values


def load_multioutput(name: str, *, dtype: torch.dtype = torch.float64) -> RegressionData:
    """A real multi-output regression dataset shipped with otkit (no download).

    Datasets (:data:`MULTIOUTPUT_DATASETS`; sources, citations and licences in
    ``otkit/data/multioutput/README.md``):

    ==========  ======  ========  =========  ===========================================
    name        n       p         d          targets
    ==========  ======  ========  =========  ===========================================
    ``enb``     768     8         2          heating and cooling load of buildings
    ``edm``     154     16        2          DFlow, DGap (discrete: values −1, 0, 1)
    ``slump``   103     7         3          slump, flow, compressive strength of concrete
    ``scpf``    1137    23        3          counts of views, votes, comments (heavy tails)
    ==========  ======  ========  =========  ===========================================

    The targets are the last d columns of each CSV. Features and targets are returned as
    stored: not standardized, with integer-coded categories kept as numbers, and no column
    dropped (none is constant). The only change is on ``scpf``: its empty feature cells (one-hot
    columns, whole groups missing in some rows) are filled with the median of the column's
    observed values (``numpy.nanmedian``). The medians are 1 for ``source=remote_api_created``
    (the most common source) and 0 for the other columns.

    Args:
        name: one of :data:`MULTIOUTPUT_DATASETS`.
        dtype: floating dtype of x and y.

    Returns:
        A :class:`RegressionData` with ``conditional_mean=None`` and the CSV's column names.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {MULTIOUTPUT_DATASETS}, got {name!r}")
    check_choice("name", name, MULTIOUTPUT_DATASETS)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch dtype, got {dtype!r}")
    header, values = _read_csv(name)
    d = _N_TARGETS[name]
    x, y = values[:, :-d], values[:, -d:]
    if np.isnan(y).any():
        raise RuntimeError(f"{name}.csv has missing targets; the packaged file is damaged")
    missing = np.isnan(x)
    if missing.any():
        medians = np.nanmedian(x, axis=0)
        x = np.where(missing, medians[None, :], x)
    return RegressionData(
        torch.from_numpy(x).to(dtype),
        torch.from_numpy(y).to(dtype),
        name,
        None,
        tuple(header[:-d]),
        tuple(header[-d:]),
    )


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


def _part_sizes(sizes, n: int) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) == 0:
        raise TypeError(f"sizes must be a non-empty sequence of fractions or counts, got {sizes!r}")
    is_int = [isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes]
    is_float = [isinstance(s, (float, np.floating)) for s in sizes]
    if all(is_int):
        counts = [int(s) for s in sizes]
        if min(counts) < 1:
            raise ValueError(f"sizes: every count must be at least 1, got {sizes!r}")
        if sum(counts) > n:
            raise ValueError(f"sizes: the counts sum to {sum(counts)}, more than the {n} rows")
        return counts
    if not all(is_float):
        raise TypeError(
            f"sizes must be all floats (fractions) or all ints (counts), not a mix, got {sizes!r}"
        )
    fracs = [float(s) for s in sizes]
    if not all(math.isfinite(f) and 0 < f <= 1 for f in fracs):
        raise ValueError(f"sizes: every fraction must be in (0, 1], got {sizes!r}")
    total = sum(fracs)
    if total > 1 + 1e-9:
        raise ValueError(f"sizes: the fractions sum to {total}, more than 1")
    counts = [math.floor(f * n + 1e-9) for f in fracs]
    if total > 1 - 1e-9:
        # Fractions that sum to 1 should use every row. Hand out the rows lost to flooring by
        # largest remainder (ties: earlier parts first).
        rest = n - sum(counts)
        order = sorted(range(len(fracs)), key=lambda i: -(fracs[i] * n - counts[i]))
        for i in order[:rest]:
            counts[i] += 1
    if min(counts) < 1:
        raise ValueError(
            f"sizes: {sizes!r} of {n} rows leaves an empty part (counts {counts}); "
            "use larger fractions or more data"
        )
    return counts


def split_data(
    data: RegressionData,
    sizes: Sequence[float] | Sequence[int],
    *,
    generator: torch.Generator | int | None = None,
    seed: int | None = None,
) -> tuple[RegressionData, ...]:
    """Randomly partition the rows of ``data`` into disjoint parts.

    Args:
        data: the dataset (n rows).
        sizes: either fractions in (0, 1] that sum to at most 1, e.g. ``(0.4, 0.2, 0.2, 0.2)``
            for train / fit / calibration / test, or integer counts ≥ 1 that sum to at most n.
            Fractions are turned into ``floor(f·n)`` rows. When the fractions sum to 1, the rows
            lost to flooring go to the parts with the largest remainders, so every row is used.
            When the sum is below 1 (or the counts below n), the leftover rows are dropped.
        generator, seed: randomness of the permutation (module docstring).

    Returns:
        One :class:`RegressionData` per entry of ``sizes``. Each keeps the name, the conditional
        mean and the column names, and its rows are in random order. Every part has at least one
        row.
    """
    if not isinstance(data, RegressionData):
        raise TypeError(f"data must be a RegressionData, got {type(data).__name__}")
    n = len(data)
    counts = _part_sizes(sizes, n)
    gen = check_generator(generator, seed)
    perm = torch.randperm(n, generator=gen)
    parts, start = [], 0
    for c in counts:
        parts.append(data.subset(perm[start : start + c]))
        start += c
    return tuple(parts)
