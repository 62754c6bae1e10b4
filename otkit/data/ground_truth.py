r"""Ground-truth optimal transport maps, to test map estimators (ProgOT, entropic maps).

Cost: :math:`c(x, y) = \tfrac12\|x - y\|^2`. By Brenier's theorem (Brenier 1991; see
Villani, *Topics in Optimal Transportation*, 2003, Thm 2.12) the gradient :math:`T = \nabla\varphi`
of *any* convex :math:`\varphi` is the optimal map from an absolutely continuous :math:`\mu` to
:math:`\nu = T_\#\mu`. So we pick a source law and a convex potential, and get a pair
``(μ, ν)`` whose optimal map is known in closed form — the recipe of the map-estimation
benchmarks of Hütter and Rigollet (2021, "Minimax estimation of smooth optimal transport
maps", Ann. Statist.), Pooladian and Niles-Weed (2021, "Entropic estimation of optimal
transport maps", arXiv 2109.12004) and Kassraie et al. (ProgOT, NeurIPS 2024).

Kinds (:data:`GROUND_TRUTH_MAPS`, built by :func:`ground_truth_map`):

* ``"gaussian"`` (:func:`gaussian_map`): ``μ = N(m0, Σ0)``, ``ν = N(m1, Σ1)``; the map is the
  affine Monge map ``T(x) = m1 + A(x − m0)`` of :func:`otkit.gaussian.monge_map`, with
  ``φ(x) = ½(x − m0)ᵀA(x − m0) + m1ᵀx``.
* ``"softplus"`` (:func:`convex_potential_map`): ``μ = N(0, I)`` and
  ``φ(x) = ½xᵀAx + Σ_i β_i s·softplus((w_iᵀx + c_i)/s)``, so
  ``T(x) = Ax + Σ_i β_i σ((w_iᵀx + c_i)/s) w_i`` (σ the logistic function) and
  ``∇T = A + Σ_i (β_i/s) σ'(·) w_i w_iᵀ ≻ 0``: a smooth map made of ``M`` soft "steps" of
  height ``β_i`` across hyperplanes through the bulk of μ. ν has no closed form.

Every ``GroundTruthMap`` keeps its parameters in float64 on the CPU. Samplers follow
:mod:`otkit.data`: draw on the CPU in float64 from ``generator=`` / ``seed=`` (or torch's
global generator), push through the map in float64, then cast to ``dtype`` and move to
``device``. :meth:`GroundTruthMap.map` and :meth:`GroundTruthMap.potential` compute in the
dtype and on the device of their input. Score estimates with :func:`map_error`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..gaussian import monge_map, random_spd, sample_gaussian
from ..validation import check_choice, check_cloud, check_count, check_generator
from .samplers import _out, _rand, _randn

__all__ = [
    "GroundTruthMap",
    "gaussian_map",
    "convex_potential_map",
    "ground_truth_map",
    "map_error",
    "GROUND_TRUTH_MAPS",
]

#: The ``name`` values :func:`ground_truth_map` accepts.
GROUND_TRUTH_MAPS = ("gaussian", "softplus")

_F64 = torch.float64


@dataclass(frozen=True, eq=False)
class GroundTruthMap:
    r"""A source law μ and the optimal map ``T = ∇φ`` for ``½‖x − y‖²`` from μ to ``T_#μ``.

    ``φ(x) = ½(x − center)ᵀA(x − center) + bᵀx + Σ_i β_i s·softplus((w_iᵀx + c_i)/s)``
    (no ridges for the Gaussian kind). Build it with :func:`ground_truth_map`.

    Attributes:
        name: the kind, one of :data:`GROUND_TRUTH_MAPS`.
        dim: the dimension d.
        source_mean, source_cov: ``[d]``, ``[d, d]``: μ = N(source_mean, source_cov).
        target_mean, target_cov: ``[d]``, ``[d, d]`` of ν = T_#μ when ν is Gaussian, else None.
    """

    name: str
    dim: int
    source_mean: Tensor = field(repr=False)
    source_cov: Tensor = field(repr=False)
    target_mean: Tensor | None = field(repr=False)
    target_cov: Tensor | None = field(repr=False)
    _center: Tensor = field(repr=False)  # [d]
    _matrix: Tensor = field(repr=False)  # [d, d] A, symmetric positive definite
    _linear: Tensor = field(repr=False)  # [d] b
    _ridges: Tensor = field(repr=False)  # [M, d] unit vectors w_i (M may be 0)
    _shifts: Tensor = field(repr=False)  # [M] c_i
    _heights: Tensor = field(repr=False)  # [M] β_i > 0
    _temperature: float = field(repr=False, default=1.0)  # s > 0

    def _params(self, x: Tensor) -> tuple[Tensor, ...]:
        x = check_cloud("x", x)
        if x.shape[1] != self.dim:
            raise ValueError(
                f"x must have shape [n, {self.dim}] (this map acts on dimension {self.dim}), "
                f"got shape {tuple(x.shape)}"
            )
        cast = dict(dtype=x.dtype, device=x.device)
        return x, *(t.to(**cast) for t in (self._center, self._matrix, self._linear,
                                            self._ridges, self._shifts, self._heights))

    def potential(self, x: Tensor) -> Tensor:
        """The convex potential ``φ(x)`` of points ``x [n, d]``; returns ``[n]``."""
        x, c0, a, b, w, c, beta = self._params(x)
        s = self._temperature
        xc = x - c0
        quad = 0.5 * ((xc @ a) * xc).sum(1) + x @ b
        z = (x @ w.mT + c) / s  # [n, M]
        return quad + s * (torch.logaddexp(z, torch.zeros_like(z)) @ beta)

    def map(self, x: Tensor) -> Tensor:
        """The optimal map ``T(x) = ∇φ(x)`` (closed form) of ``x [n, d]``; returns ``[n, d]``."""
        x, c0, a, b, w, c, beta = self._params(x)
        z = (x @ w.mT + c) / self._temperature
        return (x - c0) @ a + b + (torch.sigmoid(z) * beta) @ w

    __call__ = map

    def sample_source(self, n: int, *, generator: torch.Generator | int | None = None,
                      seed: int | None = None, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
        """``n`` points ``[n, d]`` from the source μ."""
        n = check_count("n", n)
        return _out(self._draw(n, check_generator(generator, seed)), dtype, device)

    def sample_target(self, n: int, *, generator: torch.Generator | int | None = None,
                      seed: int | None = None, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
        """``n`` points ``[n, d]`` from the target ``ν = T_#μ``: ``T`` of fresh source draws."""
        n = check_count("n", n)
        return _out(self.map(self._draw(n, check_generator(generator, seed))), dtype, device)

    def sample_pair(self, n: int, m: int | None = None, *,
                    generator: torch.Generator | int | None = None, seed: int | None = None,
                    dtype: torch.dtype = torch.float32,
                    device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """Independent samples ``x [n, d] ~ μ`` and ``y [m, d] ~ ν`` (``m = n`` by default).

        ``y`` is ``T`` of *other* source draws than ``x`` (drawn after ``x`` from the same
        generator), as in the unpaired estimation problem; ``map(x)`` is the truth for ``x``.
        """
        n = check_count("n", n)
        m = n if m is None else check_count("m", m)
        gen = check_generator(generator, seed)
        x = self._draw(n, gen)
        y = self.map(self._draw(m, gen))
        return _out(x, dtype, device), _out(y, dtype, device)

    def _draw(self, n: int, gen: torch.Generator | None) -> Tensor:
        return sample_gaussian(self.source_mean, self.source_cov, n, gen)


def _check_dim(dim: object) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be a positive integer, got {dim!r}")
    if dim < 1:
        raise ValueError(f"dim must be at least 1 (the dimension of the space), got {dim}")
    return dim


def _seeded(seed: object) -> torch.Generator:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return torch.Generator().manual_seed(seed)


def _no_ridges(d: int) -> dict[str, Tensor]:
    return dict(_ridges=torch.zeros(0, d, dtype=_F64), _shifts=torch.zeros(0, dtype=_F64),
                _heights=torch.zeros(0, dtype=_F64))


def gaussian_map(dim: int, *, seed: int = 0) -> GroundTruthMap:
    """The Monge map between two random Gaussians ``N(m0, Σ0) → N(m1, Σ1)`` in dimension ``dim``.

    ``m0, m1 ~ N(0, ½I)`` and ``Σ0, Σ1 = random_spd(dim, condition=4)`` (eigenvalues
    log-uniform in [0.5, 2]); ``T(x) = m1 + A(x − m0)`` from :func:`otkit.gaussian.monge_map`.
    The mean shift (``E‖m1 − m0‖² = d``) and the change of shape move points by about the
    source spread: ``E‖T(x) − x‖² / tr Σ0`` is about 1 in every dimension (0.3–3 in d = 2).
    """
    d, gen = _check_dim(dim), _seeded(seed)
    m0, m1 = math.sqrt(0.5) * _randn(d, gen), math.sqrt(0.5) * _randn(d, gen)
    s0 = random_spd(d, gen, condition=4.0, dtype=_F64)
    s1 = random_spd(d, gen, condition=4.0, dtype=_F64)
    a = monge_map(m0, s0, m1, s1).matrix
    return GroundTruthMap("gaussian", d, m0, s0, m1, s1, _center=m0, _matrix=a, _linear=m1,
                          **_no_ridges(d))


def convex_potential_map(dim: int, *, kind: str = "softplus", seed: int = 0,
                         ridges: int | None = None, temperature: float = 0.25) -> GroundTruthMap:
    r"""A non-affine optimal map from ``N(0, I_dim)``: the gradient of a sum of soft ridges.

    ``φ(x) = ½xᵀAx + Σ_{i≤M} β_i s·softplus((w_iᵀx + c_i)/s)`` and
    ``T(x) = Ax + Σ_i β_i σ((w_iᵀx + c_i)/s) w_i`` with

    * ``A = ½ random_spd(dim, condition=4)``: eigenvalues log-uniform in [0.25, 1];
    * ``M = ridges`` (default ``max(4, dim)``) unit vectors ``w_i`` uniform on the sphere,
      ``c_i ~ N(0, 0.5²)`` (each hyperplane ``w_iᵀx = −c_i`` crosses the bulk of μ, since
      ``w_iᵀx ~ N(0, 1)``), heights ``β_i ~ U[1, 2]``, temperature ``s = temperature`` (0.25).

    Why these constants: a sigmoid of width ``s`` across a unit-variance direction is close to
    linear unless ``s`` is well below 1. With M ∝ d ridges the ridges' share of the target
    variance does not fade as d grows, and with ``A ≼ I`` the affine part does not drown it:
    for d ∈ {2, 8, 32, 64} the best affine fit of ``T`` leaves 4–7 % of ν's variance
    unexplained, and ``E‖T(x) − x‖² / d`` is 0.5–5. (With ``s = 0.5``, ``M = d/2`` and
    ``A ~ I`` the map is affine to within 1 %.) ``T`` is smooth and strongly monotone:
    ``¼I ≼ A ≼ ∇T(x) ≼ A + Σ_i β_i/(4s) w_i w_iᵀ``.

    Source law: N(0, I), rotation invariant, so every ridge direction is equally spread
    (``w_iᵀx ~ N(0, 1)``), and is absolutely continuous, as Brenier's theorem asks.
    """
    d, gen = _check_dim(dim), _seeded(seed)
    check_choice("kind", kind, ("softplus",))  # the only convex potential kind so far
    if ridges is None:
        ridges = max(4, d)
    elif isinstance(ridges, bool) or not isinstance(ridges, int) or ridges < 0:
        raise ValueError(f"ridges must be a non-negative integer, got {ridges!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    a = 0.5 * random_spd(d, gen, condition=4.0, dtype=_F64)
    w = _randn((ridges, d), gen)
    w = w / w.norm(dim=1, keepdim=True)
    c = 0.5 * _randn(ridges, gen)
    beta = 1.0 + _rand(ridges, gen)
    zero = torch.zeros(d, dtype=_F64)
    return GroundTruthMap("softplus", d, zero, torch.eye(d, dtype=_F64), None, None,
                          _center=zero, _matrix=a, _linear=zero, _ridges=w, _shifts=c,
                          _heights=beta, _temperature=float(temperature))


def ground_truth_map(name: str, dim: int, *, seed: int = 0) -> GroundTruthMap:
    """The ground-truth map ``name`` (one of :data:`GROUND_TRUTH_MAPS`) in dimension ``dim``."""
    if check_choice("name", name, GROUND_TRUTH_MAPS) == "gaussian":
        return gaussian_map(dim, seed=seed)
    return convex_potential_map(dim, kind="softplus", seed=seed)


def map_error(predicted: Tensor, truth: Tensor) -> float:
    r"""Normalized map error ``mean_i ‖p_i − t_i‖² / mean_i ‖t_i − t̄‖²`` (MSE / total variance).

    0 for a perfect estimate, about 1 for predicting the mean of the truth.

    Args:
        predicted: ``[k, d]`` estimated images ``T̂(x_i)`` of held-out points.
        truth: ``[k, d]`` true images ``T(x_i)``, not all equal.
    """
    predicted, truth = check_cloud("predicted", predicted), check_cloud("truth", truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"predicted and truth must have the same shape [k, d], got "
                         f"predicted: {tuple(predicted.shape)}, truth: {tuple(truth.shape)}")
    if predicted.device != truth.device:
        raise ValueError(f"predicted is on {predicted.device} but truth is on {truth.device}")
    p, t = predicted.to(_F64), truth.to(_F64)
    var = (t - t.mean(0)).square().sum(1).mean()
    if not bool(var > 0):
        raise ValueError("truth has zero variance (all points equal): the error is undefined")
    return float((p - t).square().sum(1).mean() / var)
