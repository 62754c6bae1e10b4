"""Ground costs between point clouds.

A cost c(x, y) is evaluated pairwise between a source cloud ``x`` of shape ``[n, d]`` and a
target cloud ``y`` of shape ``[m, d]``, giving a matrix ``C`` of shape ``[n, m]``. Large
problems never hold ``C`` whole: :meth:`Cost.blocks` yields it a band of rows at a time.

Conventions (see the README's table): the squared Euclidean cost is

    c(x, y) = ½ ‖x − y‖²,

as in GeomLoss and the elastic-cost papers (Cuturi, Klein and Ablin 2023), so its entropic
map is the barycentric projection and its Monge map between Gaussians is the usual affine
map. POT and OTT-JAX use ‖x − y‖²: their costs and epsilons are twice ours.

A :class:`TranslationInvariantCost` c(x, y) = h(x − y), h strictly convex, also exposes h, ∇h
and ∇h*: its Monge map is T(x) = x − ∇h*(∇f(x)) (Gangbo and McCann 1996), and
:mod:`otkit.maps` estimates it from an entropic solution. :class:`SqEuclidean` is one
(h = ½‖z‖², ∇h = ∇h* = identity); :class:`Euclidean` is translation invariant too (its clouds
may be centred) but ‖z‖ has no invertible gradient, so it stays a plain :class:`Cost`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

__all__ = ["Cost", "TranslationInvariantCost", "SqEuclidean", "Euclidean", "Dot", "get_cost"]

# Elements of a [band, m, d] difference tensor held at once (32 MB in float64).
_DIFF_BUDGET = 2**22


@dataclass(frozen=True)
class Cost:
    """Base class of ground costs c(x, y). Subclasses implement :meth:`pairwise`."""

    name = "cost"
    #: c(x, y) = c(y, x): the transposed cost is the cost with the clouds swapped.
    symmetric = False
    #: c(x + t, y + t) = c(x, y): clouds may be centred before evaluation.
    translation_invariant = False

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The cost matrix ``C[i, j] = c(x_i, y_j)``, shape ``[n, m]``."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.pairwise(x, y)

    def blocks(
        self, x: torch.Tensor, y: torch.Tensor, block_size: int
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Yield ``(rows, C[rows])`` bands of at most ``block_size`` rows, each ``[b, m]``."""
        for start in range(0, x.shape[0], block_size):
            rows = slice(start, min(start + block_size, x.shape[0]))
            yield rows, self.pairwise(x[rows], y)

    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(r [n], s [m])`` such that ``C = r ⊕ s − x yᵀ``, or None for other costs.

        Such a cost's bands need a single matrix product; solvers fold r and s into the
        potentials and stream only ``−x yᵀ``.
        """
        return None

    @property
    def is_sqeuclidean(self) -> bool:
        return False


@dataclass(frozen=True)
class TranslationInvariantCost(Cost):
    """c(x, y) = h(x − y) with h strictly convex and ∇h invertible, (∇h)⁻¹ = ∇h*.

    For such a cost the Monge map is T(x) = x − ∇h*(∇f(x)) (Gangbo and McCann 1996), and its
    entropic estimator (Pooladian and Niles-Weed 2021; Cuturi, Klein and Ablin 2023, Prop. 2)

        T(x) = x − ∇h*( Σ_j p_j(x) ∇h(x − y_j) ),   p_j(x) ∝ b_j exp((g_j − h(x − y_j))/ε),

    is :func:`otkit.maps.entropic_map`, which ``SinkhornResult.transport`` runs. Subclasses
    implement :meth:`h`, :meth:`grad_h` and :meth:`grad_h_conjugate` on the last axis of
    ``[..., d]`` tensors, and may override :meth:`h_and_grad_h` (shared work) and
    :meth:`pairwise` (a faster cost matrix than h on every difference). Set ``symmetric``
    when h is even.
    """

    name = "translation_invariant"
    translation_invariant = True
    #: ∇h is linear (h quadratic): Σ_j p_j ∇h(x − y_j) = ∇h(x − Σ_j p_j y_j), so the map needs
    #: only the barycentre Σ_j p_j y_j and never the [band, block, d] differences.
    linear_gradient = False

    def h(self, z: torch.Tensor) -> torch.Tensor:
        """h(z), ``[..., d]`` → ``[...]``."""
        raise NotImplementedError

    def grad_h(self, z: torch.Tensor) -> torch.Tensor:
        """∇h(z) (a subgradient where h is not differentiable), ``[..., d]`` → ``[..., d]``."""
        raise NotImplementedError

    def grad_h_conjugate(self, w: torch.Tensor) -> torch.Tensor:
        """∇h*(w), the inverse of :meth:`grad_h`, ``[..., d]`` → ``[..., d]``."""
        raise NotImplementedError

    def h_and_grad_h(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h(z) [...], ∇h(z) [..., d])`` together, for the map's ``[band, block, d]``
        differences; subclasses share work between the two."""
        return self.h(z), self.grad_h(z)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``C[i, j] = h(x_i − y_j)``, ``[n, m]``, in bands so ``[band, m, d]`` stays small."""
        out = torch.empty(x.shape[0], y.shape[0], dtype=x.dtype, device=x.device)
        band = max(1, _DIFF_BUDGET // max(1, y.shape[0] * x.shape[1]))
        for start in range(0, x.shape[0], band):
            out[start : start + band] = self.h(x[start : start + band, None, :] - y[None, :, :])
        return out


@dataclass(frozen=True)
class SqEuclidean(TranslationInvariantCost):
    """c(x, y) = ½ ‖x − y‖², computed as ½‖x‖² + ½‖y‖² − ⟨x, y⟩ (one matrix product).

    h(z) = ½‖z‖², ∇h(z) = z, ∇h*(w) = w: its entropic map x − ∇h*(Σ_j p_j ∇h(x − y_j)) is the
    barycentric projection Σ_j p_j y_j.
    """

    name = "sqeuclidean"
    symmetric = True
    linear_gradient = True

    def h(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (z * z).sum(-1)

    def grad_h(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def grad_h_conjugate(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # The expansion loses digits far from the origin; callers centre clouds first.
        sq_x = 0.5 * (x * x).sum(-1)
        sq_y = 0.5 * (y * y).sum(-1)
        cost = torch.addmm(sq_y.unsqueeze(0), x, y.T, alpha=-1.0)
        cost.add_(sq_x.unsqueeze(1))
        return cost.clamp_min_(0.0)

    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return 0.5 * (x * x).sum(-1), 0.5 * (y * y).sum(-1)

    @property
    def is_sqeuclidean(self) -> bool:
        return True


@dataclass(frozen=True)
class Euclidean(Cost):
    """c(x, y) = ‖x − y‖.

    Translation invariant, but ∇‖z‖ = z/‖z‖ is not invertible: not a
    :class:`TranslationInvariantCost`, and its ``transport`` is the barycentric projection.
    """

    name = "euclidean"
    symmetric = True
    translation_invariant = True

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, y)


@dataclass(frozen=True)
class Dot(Cost):
    """c(x, y) = −⟨x, y⟩, the cost of maximum inner product search (SD-FM, MIPS).

    On clouds of fixed norms it equals ½‖x − y‖² up to terms in x alone and y alone, which
    the dual potentials absorb, so it yields the same coupling as :class:`SqEuclidean`.
    """

    name = "dot"
    symmetric = True

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return -(x @ y.T)

    def split(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x.new_zeros(x.shape[0]), y.new_zeros(y.shape[0])


_COSTS: dict[str, type[Cost]] = {
    "sqeuclidean": SqEuclidean,
    "euclidean": Euclidean,
    "dot": Dot,
}


def get_cost(cost: str | Cost) -> Cost:
    """Resolve a cost given by name (``"sqeuclidean"``, ``"euclidean"``, ``"dot"``) or instance."""
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, str) and cost in _COSTS:
        return _COSTS[cost]()
    raise ValueError(
        f"cost must be one of {sorted(_COSTS)} or an otkit.costs.Cost instance, got {cost!r}"
    )
