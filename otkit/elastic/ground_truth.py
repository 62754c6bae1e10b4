r"""Ground-truth Monge maps for elastic costs, in any dimension (Klein et al. 2024, Prop. 1).

Klein, Pooladian, Ablin, Ndiaye, Niles-Weed and Cuturi (2024), "Learning Elastic Costs to Shape
Monge Displacements". For an elastic cost c(x, y) = h(x − y), h(z) = (ρ/2)‖z‖² + λ r(z)
(:mod:`otkit.elastic`), and a concave function g, the h-transform

    ḡ^h(x) = min_z  h(z) − g(x − z)

defines the map T(x) = x − ∇h*(∇ḡ^h(x)), which is the h-optimal (Monge) map from any source law
μ to T#μ. With z*(x) the minimizer, the envelope theorem gives ∇ḡ^h(x) = −∇g(x − z*), and
the first-order condition in z, ∇h(z*) + ∇g(x − z*) ∋ 0, says that this is ∇h(z*), so

    T(x) = x − ∇h*(∇h(z*(x))) = x − z*(x):

the displacement is the minimizer itself. With the L1 or STVS regularizer, z*(x) is sparse, so
these maps are the feature-sparse ground truths that MBO's estimators should recover.

The inner problem splits into a smooth part S(z) = (ρ/2)‖z‖² − g(x − z), with gradient
ρz + ∇g(x − z) and Lipschitz constant L = ρ + L_g, and the regularizer λ r, whose prox is
exact (:class:`otkit.elastic.Regularizer`); it is solved by accelerated proximal gradient
(FISTA, Beck and Teboulle 2009) for all points at once, until the prox-gradient residual
L‖z − prox_{λ r/L}(z − ∇S(z)/L)‖ is below ``tol`` at every point.

The concave g here (:class:`ConcavePotential`) is

    g(z) = −½ zᵀQz − Σ_k a_k softplus(w_kᵀz + c_k),   Q ⪰ 0, a_k ≥ 0,

a negated convex quadratic plus negated ridges, with closed-form gradient.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from ..validation import check_count, check_positive
from .costs import ElasticCost

__all__ = ["ConcavePotential", "ElasticGroundTruth", "elastic_ground_truth", "concave_potential"]


@dataclass(frozen=True, eq=False)
class ConcavePotential:
    """g(z) = −½ zᵀQz − Σ_k a_k softplus(w_kᵀz + c_k) (module docstring).

    Attributes: ``Q: [d, d]`` PSD, ``W: [K, d]``, ``c: [K]``, ``a: [K]`` ≥ 0.
    """

    Q: torch.Tensor
    W: torch.Tensor
    c: torch.Tensor
    a: torch.Tensor

    @property
    def dim(self) -> int:
        return self.Q.shape[0]

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """g(z), ``[..., d]`` → ``[...]``."""
        quad = 0.5 * ((z @ self.Q) * z).sum(-1)
        return -quad - (torch.nn.functional.softplus(z @ self.W.T + self.c) * self.a).sum(-1)

    def gradient(self, z: torch.Tensor) -> torch.Tensor:
        """∇g(z) = −Qz − Σ_k a_k σ(w_kᵀz + c_k) w_k, ``[..., d]``."""
        return -(z @ self.Q) - (torch.sigmoid(z @ self.W.T + self.c) * self.a) @ self.W

    def lipschitz(self) -> float:
        """An upper bound of the Lipschitz constant of ∇g: ‖Q‖ + Σ_k a_k ‖w_k‖² / 4."""
        spectral = torch.linalg.matrix_norm(self.Q, ord=2).item()
        return spectral + (self.a * (self.W * self.W).sum(1)).sum().item() / 4.0


def concave_potential(
    dim: int, *, ridges: int = 8, curvature: float = 0.5, ridge_scale: float = 1.0,
    seed: int = 0, dtype: torch.dtype = torch.float64,
) -> ConcavePotential:
    """A random concave g in ``dim`` dimensions: Q = curvature · BᵀB/dim with B Gaussian
    ``[dim, dim]``, and ``ridges`` softplus ridges with Gaussian directions of norm
    ``ridge_scale``, offsets N(0, 1) and weights a_k ~ U(0.5, 1.5)."""
    dim = check_count("dim", dim)
    ridges = check_count("ridges", ridges, minimum=0)
    curvature = float(curvature)
    if not math.isfinite(curvature) or curvature < 0:
        raise ValueError(f"curvature must be a finite number >= 0, got {curvature}")
    gen = torch.Generator().manual_seed(seed)
    B = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    W = torch.randn(ridges, dim, generator=gen, dtype=torch.float64)
    W = ridge_scale * W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    c = torch.randn(ridges, generator=gen, dtype=torch.float64)
    a = 0.5 + torch.rand(ridges, generator=gen, dtype=torch.float64)
    Q = curvature * (B.T @ B) / dim
    return ConcavePotential(Q.to(dtype), W.to(dtype), c.to(dtype), a.to(dtype))


@dataclass(frozen=True, eq=False)
class ElasticGroundTruth:
    """The h-optimal map T(x) = x − z*(x) of Prop. 1 (module docstring).

    Attributes:
        cost: the elastic cost h; potential: the concave g.
        source_scale: the source law is N(0, source_scale² I).
        tol, max_iter: the inner solver's stopping rule.
    """

    cost: ElasticCost
    potential: ConcavePotential
    source_scale: float = 1.0
    tol: float = 1e-9
    max_iter: int = 5000

    @property
    def dim(self) -> int:
        return self.potential.dim

    def displacement(self, x: torch.Tensor) -> torch.Tensor:
        """z*(x) = argmin_z h(z) − g(x − z) for ``x: [n, d]``, by FISTA; ``[n, d]``.

        Warns (and still returns) if some point has not reached ``tol`` in ``max_iter`` steps.
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must be a tensor of shape [n, {self.dim}]")
        cost, g = self.cost, self.potential
        x = x.to(g.Q.dtype)
        L = cost.rho + g.lipschitz()
        step = cost.lam / L

        def grad_smooth(z: torch.Tensor) -> torch.Tensor:
            return cost.rho * z + g.gradient(x - z)

        def prox(v: torch.Tensor) -> torch.Tensor:
            return cost.regularizer.prox(v, step) if cost.lam else v

        z = torch.zeros_like(x)
        y, t = z, 1.0
        for _ in range(self.max_iter):
            z_next = prox(y - grad_smooth(y) / L)
            t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))
            y = z_next + ((t - 1.0) / t_next) * (z_next - z)
            z, t = z_next, t_next
            residual = L * (z - prox(z - grad_smooth(z) / L)).norm(dim=1)
            if residual.max().item() <= self.tol:
                break
        else:
            warnings.warn(
                f"the h-transform's inner solver stopped at max_iter={self.max_iter} with "
                f"residual {residual.max().item():.3g} > tol={self.tol}", stacklevel=2,
            )
        return z

    def map(self, x: torch.Tensor) -> torch.Tensor:
        """T(x) = x − z*(x), ``[n, d]``."""
        return x.to(self.potential.Q.dtype) - self.displacement(x)

    def sample_source(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points of the source law N(0, source_scale² I), ``[n, d]``."""
        n = check_count("n", n)
        return self.source_scale * torch.randn(n, self.dim, generator=generator,
                                               dtype=self.potential.Q.dtype)

    def sample_pair(
        self, n: int, m: int | None = None, *, generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unpaired training data: ``x: [n, d]`` from the source and ``y: [m, d]`` = T(x')
        for an independent source sample x'."""
        x = self.sample_source(n, generator=generator)
        y = self.map(self.sample_source(n if m is None else m, generator=generator))
        return x, y


def elastic_ground_truth(
    cost: ElasticCost, dim: int, *, seed: int = 0, ridges: int = 8, curvature: float = 0.5,
    ridge_scale: float = 1.0, source_scale: float = 1.0, tol: float = 1e-9,
    max_iter: int = 5000,
) -> ElasticGroundTruth:
    """A ground-truth h-optimal map for ``cost`` in ``dim`` dimensions (see
    :func:`concave_potential` for the random concave g)."""
    if not isinstance(cost, ElasticCost):
        raise TypeError(f"cost must be an otkit.elastic.ElasticCost, got {type(cost).__name__}")
    potential = concave_potential(dim, ridges=ridges, curvature=curvature,
                                  ridge_scale=ridge_scale, seed=seed)
    return ElasticGroundTruth(cost, potential, check_positive("source_scale", source_scale),
                              check_positive("tol", tol), check_count("max_iter", max_iter))
