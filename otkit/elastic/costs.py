"""Elastic costs and their entropic Monge maps (MBO and learned elastic costs).

Cuturi, Klein and Ablin (2023), "Monge, Bregman and Occam: Interpretable Optimal Transport in
High-Dimensions with Feature-Sparse Maps" (MBO); Klein, Pooladian, Ablin et al. (2024),
"Learning Elastic Costs to Shape Monge Displacements". An *elastic* cost is

    c(x, y) = h(x − y),   h(z) = (ρ/2) ‖z‖² + λ r(z),   ρ > 0, λ ≥ 0,

with a regularizer r that shapes the displacements x ↦ T(x) − x. For such costs the Monge
map is T(x) = x − ∇h*(∇f(x)) (Gangbo and McCann 1996), and its entropic estimator
(Pooladian and Niles-Weed 2021; MBO, Prop. 2) is

    T(x) = x − ∇h*( Σ_j p_j(x) ∇h(x − y_j) ),   p_j(x) ∝ b_j exp((g_j − h(x − y_j))/ε),

with g the target potential of an entropic OT solution (``otkit.sinkhorn(..., cost=...)``).
:class:`ElasticCost` is an ``otkit.costs.TranslationInvariantCost``, so the engine's
``otkit.maps.entropic_map`` computes this map (``result.transport``); :func:`elastic_map` is
that map, checked for an elastic cost.
The convex conjugate's gradient is a proximal step: h(z) − ⟨w, z⟩ = ρ[½‖z − w/ρ‖² + (λ/ρ) r(z)]
+ const, so

    ∇h*(w) = prox_{(λ/ρ) r}(w/ρ)   for every ρ > 0, λ ≥ 0.

(OTT-JAX applies prox_{λ r}(w), right only for ρ = 1.) Regularizers, each with its exact prox
at any step τ ≥ 0, prox_{τ r}(v) = argmin_z ½‖z − v‖² + τ r(z):

* :class:`L1`: r(z) = ‖z‖₁, prox = soft thresholding at τ.
* :class:`STVS` (soft thresholding with vanishing shrinkage, MBO §4): r_γ(z) = γ² Σ_i [σ_i −
  ½e^{−2σ_i} + ½], σ_i = asinh(|z_i|/(2γ)). Its derivative is r'(z) = sign(z)(√(γ² + z²/4) −
  |z|/2), so for |v| > τγ the prox solves (1 − τ/2)|z| + τ√(γ² + z²/4) = |v|, a quadratic
  (1 − τ)z² − (2 − τ)|v| z + v² − τ²γ² = 0 whose relevant root is

      |z| = 2(v² − τ²γ²) / [(2 − τ)|v| + τ √(v² + 4(1 − τ)γ²)]      (τ ≤ 2),

  and 0 for |v| ≤ τγ (τ = 1: v − γ²/v). It is the prox of τ·r_γ, not of r_{τγ} (OTT-JAX's
  choice, right only for τ = 1). r_γ is concave on each half-line with r'' ∈ (−½, 0), so
  h is convex only for λ ≤ 2ρ; :class:`ElasticCost` refuses λ > 2ρ. For τ > 2 the prox
  objective is non-convex and the prox is its global minimizer (the larger stationary point
  or 0, whichever is lower).
* :class:`KOverlap`: r(z) = ½‖z‖²_{(k)}, the squared k-overlap (k-support) norm of Argyriou,
  Foygel and Srebro (2012), ‖·‖_{(1)} = ‖·‖₁, ‖·‖_{(d)} = ‖·‖₂. We use its variational form
  ½‖z‖²_{(k)} = min_θ ½ Σ_i z_i²/θ_i over θ ∈ [0, 1]^d, Σθ_i ≤ k (McDonald, Pontil and Stamos
  2014). Minimizing ½‖z − v‖² + (τ/2) Σ z_i²/θ_i first in z gives z_i = v_i θ_i/(θ_i + τ),
  then θ_i = clip(s|v_i| − τ, 0, 1) with s > 0 such that Σθ_i = k: a monotone piecewise-linear
  equation in s solved exactly after sorting its 2d breakpoints. The value is
  ½ Σ_i max(z_i², |z_i|/s) with s solving Σ_i min(s|z_i|, 1) = k.
* :class:`Subspace` (Klein et al. 2024): r(z) = ½‖A^⊥ z‖², A^⊥ = I − Aᵀ(AAᵀ)⁻¹A, which favours
  displacements in span(Aᵀ); prox_{τ r}(v) = v − τ/(1 + τ) A^⊥ v.

Shapes: points ``[n, d]``; regularizer methods act on the last axis of ``[..., d]`` tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..costs import Cost, SqEuclidean, TranslationInvariantCost
from ..validation import check_count, check_positive

if TYPE_CHECKING:
    from ..sinkhorn import SinkhornResult

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
]


def _check_step(step: object) -> float:
    if isinstance(step, torch.Tensor) and step.numel() == 1:
        step = step.item()
    if isinstance(step, bool) or not isinstance(step, (int, float)):
        raise TypeError(f"step must be a number >= 0, got {type(step).__name__}")
    if not math.isfinite(step) or step < 0:
        raise ValueError(f"step must be a finite number >= 0, got {step}")
    return float(step)


@dataclass(frozen=True)
class Regularizer:
    """A regularizer r of the displacements, acting on the last axis of ``[..., d]`` tensors."""

    name = "regularizer"
    #: ∇r is linear (r quadratic): Σ_j p_j ∇r(x − y_j) = ∇r(x − Σ_j p_j y_j).
    is_quadratic = False

    def value(self, z: torch.Tensor) -> torch.Tensor:
        """r(z), ``[..., d]`` → ``[...]``."""
        raise NotImplementedError

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        """∇r(z) (a subgradient where r is not differentiable), ``[..., d]`` → ``[..., d]``."""
        raise NotImplementedError

    def prox(self, v: torch.Tensor, step: float) -> torch.Tensor:
        """prox_{step·r}(v) = argmin_z ½‖z − v‖² + step·r(z), ``[..., d]`` → ``[..., d]``."""
        raise NotImplementedError

    def value_and_gradient(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r(z) [...], ∇r(z) [..., d])``; subclasses share work between the two.

        :meth:`ElasticCost.h_and_grad_h` writes ∇h into a returned ∇r that has memory of its
        own (never into ``z``, a view of it or a broadcast constant).
        """
        return self.value(z), self.gradient(z)

    def pairwise_value(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """``r(x_i − y_j)`` as ``[n, m]`` without a ``[n, m, d]`` tensor, or None if unknown."""
        return None


@dataclass(frozen=True)
class L1(Regularizer):
    """r(z) = ‖z‖₁; prox_{τ r}(v) = sign(v) max(|v| − τ, 0) (soft thresholding)."""

    name = "l1"

    def value(self, z: torch.Tensor) -> torch.Tensor:
        return z.abs().sum(-1)

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sign(z)  # 0 ∈ ∂|·|(0)

    def prox(self, v: torch.Tensor, step: float) -> torch.Tensor:
        step = _check_step(step)
        return torch.sign(v) * (v.abs() - step).clamp_min(0.0)

    def pairwise_value(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, y, p=1.0)


@dataclass(frozen=True)
class STVS(Regularizer):
    """Soft thresholding with vanishing shrinkage (MBO): r_γ(z) = γ² Σ [σ − ½e^{−2σ} + ½].

    σ_i = asinh(|z_i|/(2γ)). Near 0 it behaves like γ‖z‖₁ (thresholds small coordinates);
    its derivative γe^{−σ} vanishes for large |z| (no shrinkage of large ones).
    """

    gamma: float = 1.0
    name = "stvs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", check_positive("gamma", self.gamma))

    def value(self, z: torch.Tensor) -> torch.Tensor:
        sigma = torch.asinh(z.abs() / (2.0 * self.gamma))
        return self.gamma**2 * (sigma - 0.5 * torch.exp(-2.0 * sigma) + 0.5).sum(-1)

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        # r'(z) = sign(z) γ e^{−σ} = sign(z) (√(γ² + z²/4) − |z|/2), written without cancellation.
        a = z.abs()
        root = torch.sqrt(self.gamma**2 + 0.25 * z * z)
        return torch.sign(z) * self.gamma**2 / (root + 0.5 * a)

    def value_and_gradient(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # With s = |z|/(2γ): e^{−σ} = 1/(√(1 + s²) + s), σ = −log e^{−σ}; one sqrt, one log.
        s = z.abs() / (2.0 * self.gamma)
        e = 1.0 / (torch.sqrt(1.0 + s * s) + s)
        value = self.gamma**2 * (0.5 - torch.log(e) - 0.5 * e * e).sum(-1)
        return value, torch.sign(z) * (self.gamma * e)

    def prox(self, v: torch.Tensor, step: float) -> torch.Tensor:
        tau = _check_step(step)
        gamma = self.gamma
        a = v.abs()
        if tau <= 2.0:
            # The root of the module docstring's quadratic, in its cancellation-free form.
            disc = (a * a + 4.0 * (1.0 - tau) * gamma**2).clamp_min(0.0)
            denom = (2.0 - tau) * a + tau * torch.sqrt(disc)
            numer = 2.0 * (a * a - (tau * gamma) ** 2)
            active = a > tau * gamma
            z = torch.where(active, numer / torch.where(active, denom, 1.0), 0.0)
            return torch.sign(v) * z
        # τ > 2: the objective is concave then convex on z ≥ 0; its global minimizer is 0 or
        # the larger stationary point z = [τ√Δ + (τ − 2)|v|] / (2(τ − 1)), Δ = v² + 4(1 − τ)γ².
        disc = a * a + 4.0 * (1.0 - tau) * gamma**2
        z = (tau * torch.sqrt(disc.clamp_min(0.0)) + (tau - 2.0) * a) / (2.0 * (tau - 1.0))
        gain = 0.5 * (z - a) ** 2 + tau * self._scalar_value(z) - 0.5 * a * a
        z = torch.where((disc > 0) & (gain < 0), z, 0.0)
        return torch.sign(v) * z

    def _scalar_value(self, a: torch.Tensor) -> torch.Tensor:
        sigma = torch.asinh(a / (2.0 * self.gamma))
        return self.gamma**2 * (sigma - 0.5 * torch.exp(-2.0 * sigma) + 0.5)


def _overlap_scale(a: torch.Tensor, tau: float, k: int) -> torch.Tensor:
    """The s > 0 solving Σ_i clip(s a_i − τ, 0, 1) = k for ``a = |v|: [..., d]`` → ``[...]``.

    +inf where fewer than k + 1 coordinates are non-zero (then every θ_i saturates at 1).
    Φ(s) = Σ_i clip(s a_i − τ, 0, 1) is piecewise linear and non-decreasing, with slope +a_i
    from s = τ/a_i and −a_i from s = (1 + τ)/a_i: sorting the 2d breakpoints and a cumulative
    sum give Φ at each of them, and s follows by linear interpolation on the crossing piece.
    """
    lead, d = a.shape[:-1], a.shape[-1]
    a = a.reshape(-1, d)
    top = a.amax(-1, keepdim=True)
    u = a / torch.where(top > 0, top, 1.0)  # scale-free: s for u is s·max|v|
    nonzero = u > 0
    huge = torch.finfo(a.dtype).max / (16.0 * (d + 1))
    inv = torch.where(nonzero, 1.0 / u.clamp_min(torch.finfo(a.dtype).tiny), 0.0)
    starts = (tau * inv).clamp_max(huge)
    ends = ((1.0 + tau) * inv).clamp_max(huge)
    points, order = torch.sort(torch.cat([starts, ends], -1), -1)
    slope_change = torch.cat([u, -u], -1).gather(-1, order)
    slope = torch.cumsum(slope_change, -1)
    phi = torch.cumsum(slope[:, :-1] * torch.diff(points, dim=-1), -1)
    phi = torch.cat([torch.zeros_like(phi[:, :1]), phi], -1)
    count = nonzero.sum(-1)
    level = torch.full((a.shape[0], 1), float(k), dtype=a.dtype, device=a.device)
    j = torch.searchsorted(phi.contiguous(), level).clamp(1, 2 * d - 1)
    p0, p1 = points.gather(-1, j - 1), points.gather(-1, j)
    f0, f1 = phi.gather(-1, j - 1), phi.gather(-1, j)
    rise = torch.where(f1 > f0, f1 - f0, 1.0)
    s = (p0 + (p1 - p0) * ((level - f0) / rise).clamp(0.0, 1.0)).squeeze(-1)
    s = torch.where(count > k, s / torch.where(top > 0, top, 1.0).squeeze(-1), math.inf)
    return s.reshape(lead)


@dataclass(frozen=True)
class KOverlap(Regularizer):
    """r(z) = ½‖z‖²_{(k)}, the squared k-overlap (k-support) norm (Argyriou et al. 2012).

    It selects at most about k coordinates per displacement: k = 1 gives ½‖z‖₁², k ≥ d gives
    ½‖z‖₂². Computations sort each vector: O(d log d).
    """

    k: int = 1
    name = "k_overlap"

    def __post_init__(self) -> None:
        object.__setattr__(self, "k", check_count("k", self.k))

    def value_and_gradient(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = z.abs()
        s = _overlap_scale(a, 0.0, self.k).unsqueeze(-1)
        # θ_i = min(s|z_i|, 1): z_i²/θ_i = max(z_i², |z_i|/s), ∂/∂z_i = sign(z_i) max(|z_i|, 1/s).
        value = 0.5 * torch.maximum(a * a, a / s).sum(-1)
        return value, torch.sign(z) * torch.maximum(a, 1.0 / s)

    def value(self, z: torch.Tensor) -> torch.Tensor:
        return self.value_and_gradient(z)[0]

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        return self.value_and_gradient(z)[1]

    def prox(self, v: torch.Tensor, step: float) -> torch.Tensor:
        tau = _check_step(step)
        if tau == 0.0:
            return v.clone()
        a = v.abs()
        s = _overlap_scale(a, tau, self.k).unsqueeze(-1)
        finite = torch.isfinite(s)
        theta = torch.where(finite, (torch.where(finite, s, 0.0) * a - tau).clamp(0.0, 1.0), 1.0)
        return v * theta / (theta + tau)


@dataclass(frozen=True, eq=False)
class Subspace(Regularizer):
    """r(z) = ½‖A^⊥ z‖², A^⊥ = I − Aᵀ(AAᵀ)⁻¹A: penalizes displacements outside span(Aᵀ).

    ``A: [p, d]`` of full row rank p < d. Kept differentiable in A (for learning it).
    """

    A: torch.Tensor
    name = "subspace"
    is_quadratic = True
    _basis: torch.Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        A = self.A
        if not isinstance(A, torch.Tensor):
            raise TypeError(f"A must be a torch.Tensor of shape [p, d], got {type(A).__name__}")
        if not A.is_floating_point() or A.ndim != 2 or not 1 <= A.shape[0] < A.shape[1]:
            raise ValueError(
                f"A must be a floating-point tensor [p, d] with 1 <= p < d, got "
                f"{A.dtype} of shape {tuple(A.shape)}"
            )
        if not torch.isfinite(A).all():
            raise ValueError("A contains NaN or inf values")
        sv = torch.linalg.svdvals(A.detach().double())
        if sv[-1] <= sv[0] * max(A.shape) * torch.finfo(A.dtype).eps * 10:
            raise ValueError(f"A must have full row rank {A.shape[0]}, its singular values are "
                             f"{sv.tolist()}")
        q, _ = torch.linalg.qr(A.T)  # [d, p], an orthonormal basis of span(Aᵀ)
        object.__setattr__(self, "_basis", q)

    def _complement(self, z: torch.Tensor) -> torch.Tensor:
        q = self._basis.to(z)
        return z - (z @ q) @ q.T

    def value(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (self._complement(z) ** 2).sum(-1)

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        return self._complement(z)

    def prox(self, v: torch.Tensor, step: float) -> torch.Tensor:
        tau = _check_step(step)
        return v - (tau / (1.0 + tau)) * self._complement(v)

    def pairwise_value(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # ½‖A^⊥(x − y)‖² = ½‖x − y‖² − ½‖Qᵀx − Qᵀy‖² (Q orthonormal): two matrix products.
        q = self._basis.to(x)
        sq = SqEuclidean()
        return (sq.pairwise(x, y) - sq.pairwise(x @ q, y @ q)).clamp_min(0.0)


def _owned(t: torch.Tensor, z: torch.Tensor) -> bool:
    """Whether ``t`` is a dense tensor shaped like ``z`` with its own memory (so it may be
    overwritten): not ``z``, a view of it or a broadcast constant."""
    return (
        t.shape == z.shape and t.dtype == z.dtype and t.is_contiguous()
        and t.untyped_storage().data_ptr() != z.untyped_storage().data_ptr()
    )


@dataclass(frozen=True)
class ElasticCost(TranslationInvariantCost):
    """c(x, y) = h(x − y), h(z) = (ρ/2)‖z‖² + λ r(z) (module docstring).

    Symmetric (every r here is even), with h, ∇h and ∇h* in closed form. Pass it to
    ``otkit.sinkhorn(x, y, cost=...)``; the result's ``transport`` is then the elastic map
    x − ∇h*(Σ_j p_j(x) ∇h(x − y_j)) (:func:`elastic_map`). ∇h is linear when λ = 0 or r is
    quadratic (:class:`Subspace`): the map then needs only the barycentre Σ_j p_j y_j.
    """

    regularizer: Regularizer
    rho: float = 1.0
    lam: float = 1.0
    symmetric = True
    translation_invariant = True

    def __post_init__(self) -> None:
        if not isinstance(self.regularizer, Regularizer):
            raise TypeError(
                "regularizer must be an otkit.elastic.Regularizer (L1(), STVS(gamma), "
                f"KOverlap(k), Subspace(A)), got {type(self.regularizer).__name__}"
            )
        object.__setattr__(self, "rho", check_positive("rho", self.rho))
        lam = self.lam
        if isinstance(lam, bool) or not isinstance(lam, (int, float)):
            raise TypeError(f"lam must be a number >= 0, got {type(lam).__name__}")
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam must be a finite number >= 0, got {lam}")
        if isinstance(self.regularizer, STVS) and lam > 2.0 * self.rho:
            raise ValueError(
                f"lam must be <= 2 rho for STVS (r'' > -1/2, so h is convex only then), got "
                f"lam={lam}, rho={self.rho}"
            )
        object.__setattr__(self, "lam", float(lam))

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"elastic_{self.regularizer.name}"

    @property
    def linear_gradient(self) -> bool:  # type: ignore[override]
        """∇h = ρ id + λ∇r is linear when λ = 0 or r is quadratic."""
        return not self.lam or self.regularizer.is_quadratic

    def h(self, z: torch.Tensor) -> torch.Tensor:
        """h(z) = (ρ/2)‖z‖² + λ r(z), ``[..., d]`` → ``[...]``."""
        value = 0.5 * self.rho * (z * z).sum(-1)
        return value + self.lam * self.regularizer.value(z) if self.lam else value

    def grad_h(self, z: torch.Tensor) -> torch.Tensor:
        """∇h(z) = ρz + λ∇r(z), ``[..., d]`` → ``[..., d]``."""
        grad = self.rho * z
        return grad + self.lam * self.regularizer.gradient(z) if self.lam else grad

    def grad_h_conjugate(self, w: torch.Tensor) -> torch.Tensor:
        """∇h*(w) = prox_{(λ/ρ) r}(w/ρ), ``[..., d]`` → ``[..., d]``; inverts :meth:`grad_h`."""
        v = w / self.rho
        return self.regularizer.prox(v, self.lam / self.rho) if self.lam else v

    def h_and_grad_h(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h(z) [...], ∇h(z) [..., d])`` with one pass of the regularizer over ``z``.

        The map streams these over ``[band, block, d]`` differences, where every pass and
        every new tensor of that size counts.
        """
        quad = (0.5 * self.rho) * torch.linalg.vector_norm(z, dim=-1).square()  # no z*z tensor
        if not self.lam:
            return quad, self.rho * z
        r_value, r_grad = self.regularizer.value_and_gradient(z)
        if _owned(r_grad, z):  # a new ∇r: ρz + λ∇r in its buffer (one pass when λ = 1)
            grad = (r_grad if self.lam == 1.0 else r_grad.mul_(self.lam)).add_(z, alpha=self.rho)
        else:
            grad = torch.add(self.rho * z, r_grad, alpha=self.lam)
        return quad + self.lam * r_value, grad

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``C[i, j] = h(x_i − y_j)``, ``[n, m]``, in bands so ``[band, m, d]`` stays small."""
        quad = self.rho * SqEuclidean().pairwise(x, y)
        if not self.lam:
            return quad
        fast = self.regularizer.pairwise_value(x, y)
        if fast is not None:
            return quad + self.lam * fast
        return super().pairwise(x, y)  # h on bands of [band, m, d] differences


def elastic_cost(name: str, *, rho: float = 1.0, lam: float = 1.0, **params) -> ElasticCost:
    """An :class:`ElasticCost` by regularizer name: ``"l1"``, ``"stvs"`` (``gamma``),
    ``"k_overlap"`` (``k``) or ``"subspace"`` (``A``)."""
    makers = {"l1": (L1, ()), "stvs": (STVS, ("gamma",)), "k_overlap": (KOverlap, ("k",)),
              "subspace": (Subspace, ("A",))}
    if name not in makers:
        raise ValueError(f"name must be one of {sorted(makers)}, got {name!r}")
    cls, allowed = makers[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"regularizer {name!r} takes parameters {list(allowed)}, got {unknown}")
    return ElasticCost(cls(**params), rho=rho, lam=lam)


def _check_elastic(cost: Cost) -> None:
    if not isinstance(cost, (ElasticCost, SqEuclidean)):  # ½‖z‖² is ρ = 1, λ = 0
        raise TypeError(
            f"elastic maps need an ElasticCost (or the squared Euclidean cost), got {cost.name!r}"
        )


def elastic_map(
    result: SinkhornResult, x_new: torch.Tensor, *, block_size: int | None = None
) -> torch.Tensor:
    """The entropic elastic map T(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j)) at ``x_new: [k, d]``.

    ``p_j(x) ∝ b_j exp((g_j − h(x − y_j))/ε)`` with ``result``'s target potential g (MBO,
    Prop. 2). It is ``result.transport(x_new, block_size=block_size)`` (``otkit.maps``), after
    checking that the cost is elastic or squared Euclidean (for which it is the barycentric
    projection). Streams over blocks of ``block_size`` target points (default: as many as fit
    a 32 MB ``[band, block, d]`` tensor), on the device of the result. Returns ``[k, d]``.
    """
    _check_elastic(result.cost)
    return result.transport(x_new, block_size=block_size)


def elastic_inverse_map(
    result: SinkhornResult, y_new: torch.Tensor, *, block_size: int | None = None
) -> torch.Tensor:
    """The entropic map from y back to x, y − ∇h*(Σ_i p_i(y) ∇h(y − x_i)), ``[k, d]``.

    ``p_i(y) ∝ a_i exp((f_i − h(x_i − y))/ε)``; h is even, so this is :func:`elastic_map`
    with the roles of the clouds swapped: ``result.inverse_transport``.
    """
    _check_elastic(result.cost)
    return result.inverse_transport(y_new, block_size=block_size)


def displacement_sparsity(displacements: torch.Tensor, tol: float = 1e-8) -> float:
    """Fraction of coordinates moved, ``mean(|T(x) − x| > tol)`` over ``[k, d]`` displacements.

    0 means nothing moved, 1 that every coordinate of every point moved.
    """
    if not isinstance(displacements, torch.Tensor) or displacements.ndim != 2:
        raise ValueError("displacements must be a tensor of shape [k, d]")
    tol = check_positive("tol", tol)
    return (displacements.abs() > tol).double().mean().item()


def sparse_shift_problem(
    n: int,
    d: int,
    k: int,
    *,
    shift: float = 2.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A planted feature-sparse displacement: x ~ N(0, I_d), y = x + δ (row by row).

    δ equals ``shift`` on k random coordinates and 0 elsewhere. The Monge map of every
    elastic cost with convex h is then the translation x ↦ x + δ (Jensen's inequality), so an
    estimated map's displacements T(x) − x can be compared with δ coordinate by coordinate.
    Returns ``(x [n, d], y [n, d], delta [d])``.
    """
    n, d, k = check_count("n", n), check_count("d", d), check_count("k", k)
    if k > d:
        raise ValueError(f"k must be <= d = {d}, got {k}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    delta = torch.zeros(d, dtype=torch.float64)
    delta[torch.randperm(d, generator=gen)[:k]] = float(shift)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x.to(dtype), (x + delta).to(dtype), delta.to(dtype)
