r"""Learning the subspace of an elastic cost from paired samples (Klein et al. 2024).

Klein, Pooladian, Ablin, Ndiaye, Niles-Weed and Cuturi (2024), "Learning Elastic Costs to Shape
Monge Displacements". The subspace cost

    h_A(z) = ½‖z‖² + (λ/2)‖A^⊥ z‖²,   A ∈ R^{p×d}, A Aᵀ = I_p,   A^⊥ = I − AᵀA,

charges displacements outside span(Aᵀ) 1 + λ times more than inside it, so its Monge maps move
points along that p-dimensional subspace. When the subspace is unknown it can be *learned*:
given pairs (x_i, y_i) of a source point and its observed image, pick A so that the entropic
elastic map T_A of the cost h_A, estimated on the clouds x and y, sends x_i close to y_i,

    min_{A ∈ St(p, d)}  (1/n) Σ_i ‖T_A(x_i) − y_i‖²,

a bilevel problem: T_A depends on A through the Sinkhorn potentials of the cost h_A. On the
pairs that define the clouds the entropic map is nearly exact for *any* A (the pairing is easy
to find), so each step fits T_A on half of a batch of pairs and scores it on the other half:
the loss is an out-of-sample one. The inner problem is otkit's own solve,

    otkit.sinkhorn(x_fit, y_fit, cost=ElasticCost(Subspace(A), lam=λ), epsilon=ε, tol=tol,
                   differentiation="implicit").transport(x_held),

run to its tolerance (not a fixed number of iterations), so the map that is learned is the map
that is later evaluated, at the same ε; its gradient in A is the exact derivative of the fixed
point (implicit differentiation, :mod:`otkit.differentiation`), through the cost's matrices
and the potentials, with no loop recorded. The constraint A ∈ St(p, d) is handled by the
parametrization A = QR(U)ᵀ (the orthonormal factor of an unconstrained U ∈ R^{d×p}), so plain
Adam on U stays on the manifold. For a quadratic h the elastic map x − ∇h*(Σ_j p_j ∇h(x − y_j))
reduces to the barycentric projection Σ_j p_j(x) y_j: the cost acts through the weights p_j.

(Formerly the learner unrolled 50 log-domain iterations from zero potentials at
ε = 0.11 · std(C), far from converged there, and learned a map other than the converged one it
was evaluated with.)

ε is otkit's (:mod:`otkit.epsilon`): ``relative_epsilon`` multiplies std(C) of the
squared-Euclidean cost C_ij = ½‖x_i − y_j‖² between the two clouds, a scale that does not
depend on A, so ε stays fixed while A is learned; the default is
:data:`DEFAULT_SUBSPACE_RELATIVE_EPSILON` = 0.4.

Principal angles between subspaces (:func:`principal_angles`) measure recovery.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..costs import get_cost
from ..epsilon import cloud_epsilon, resolve_epsilon
from ..geometry import PointCloud
from ..sinkhorn import sinkhorn
from ..validation import check_count, check_positive
from .costs import ElasticCost, Subspace

__all__ = [
    "DEFAULT_SUBSPACE_RELATIVE_EPSILON",
    "DEFAULT_SUBSPACE_TOL",
    "PlantedSubspace",
    "SubspaceLearningResult",
    "learn_subspace",
    "planted_subspace_problem",
    "principal_angles",
    "subspace_epsilon",
    "subspace_map",
]

DEFAULT_SUBSPACE_RELATIVE_EPSILON: float = 0.4
"""ε = 0.4 · std(C), C_ij = ½‖x_i − y_j‖², when neither ε nor a relative ε is given.

Larger than otkit's 0.05 (:data:`otkit.epsilon.DEFAULT_RELATIVE_EPSILON`): the clouds are
paired, so at small ε a converged plan is nearly the pairing itself and the map, a weighted
mean of a few targets, predicts new points poorly, while Sinkhorn needs hundreds of iterations.
On notebook 08's planted problem (d = 10, p = 2, λ = 3, 150 steps, batches of min(n, 512)
pairs, seed 0), at n = 300 and 1,000, the learned map's normalized error on 300 held-out pairs
(evaluated at the learning ε) and the largest principal angle to the planted subspace were:

* 0.11 · std(C) (the former default, ≈ 0.05 · mean(C)): 1.04 and 0.91 (about as bad as not
  moving), 70° and 90° (no recovery), 385 and 733 Sinkhorn iterations per step;
* 0.2: 0.71, 43° (n = 300 only); 0.3: 0.61 and 0.51, 43° and 38°;
* 0.4: 0.58 and 0.51, 39° and 38°, 130 and 94 iterations per step;
* 0.5: 0.59 and 0.53, 41° and 39°; 0.6: 0.61 and 0.57, 43° and 41°.
"""

DEFAULT_SUBSPACE_TOL: float = 1e-3
"""The tolerance of each of the learner's Sinkhorn solves (L1 marginal error, otkit.sinkhorn's
default)."""


def _orthonormal_rows(name: str, A: torch.Tensor) -> torch.Tensor:
    if not isinstance(A, torch.Tensor) or A.ndim != 2 or A.shape[0] > A.shape[1] or A.shape[0] < 1:
        raise ValueError(f"{name} must be a [p, d] tensor with 1 <= p <= d")
    q, r = torch.linalg.qr(A.T.double())
    if r.diagonal().abs().min() <= 1e-10 * max(1.0, r.diagonal().abs().max().item()):
        raise ValueError(f"{name} must have full row rank")
    return q.T


def principal_angles(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Principal angles (radians, ascending) between span(Aᵀ) and span(Bᵀ), ``A: [p, d]``,
    ``B: [q, d]``: arccos of the singular values of Q_A Q_Bᵀ, ``[min(p, q)]``."""
    qa, qb = _orthonormal_rows("A", A), _orthonormal_rows("B", B)
    if qa.shape[1] != qb.shape[1]:
        raise ValueError(f"A and B must have the same d, got {qa.shape[1]} and {qb.shape[1]}")
    cosines = torch.linalg.svdvals(qa @ qb.T).clamp(-1.0, 1.0)
    return torch.arccos(cosines).flip(0)


@dataclass(frozen=True)
class PlantedSubspace:
    """Pairs whose displacements lie in span(A_trueᵀ): ``x, y: [n, d]``, ``A: [p, d]``."""

    x: torch.Tensor
    y: torch.Tensor
    A: torch.Tensor


def planted_subspace_problem(
    n: int, d: int, p: int, *, scale: float = 2.0, noise: float = 0.0, seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> PlantedSubspace:
    """x ~ N(0, I_d) and y = x + A_trueᵀ v(x) (+ N(0, noise²) if ``noise``), with A_true a
    random point of St(p, d) and v(x) = scale · tanh(G x + c) a nonlinear field in R^p."""
    n, d, p = check_count("n", n), check_count("d", d), check_count("p", p)
    if p >= d:
        raise ValueError(f"p must be < d = {d}, got {p}")
    gen = torch.Generator().manual_seed(seed)
    A = torch.linalg.qr(torch.randn(d, p, generator=gen, dtype=torch.float64))[0].T
    G = torch.randn(p, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    c = torch.randn(p, generator=gen, dtype=torch.float64)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = x + (scale * torch.tanh(x @ G.T + c)) @ A
    if noise:
        y = y + noise * torch.randn(n, d, generator=gen, dtype=torch.float64)
    return PlantedSubspace(x.to(dtype), y.to(dtype), A.to(dtype))


def subspace_epsilon(
    x: torch.Tensor, y: torch.Tensor, epsilon: float | None = None,
    relative_epsilon: float | None = None,
) -> float:
    """The absolute ε for the clouds ``x: [n, d]``, ``y: [m, d]``: ``epsilon``, or
    ``relative_epsilon`` (default :data:`DEFAULT_SUBSPACE_RELATIVE_EPSILON`) × std(C) of
    C_ij = ½‖x_i − y_j‖² (:func:`otkit.epsilon.cloud_epsilon`: the ε that
    ``otkit.sinkhorn(x, y, relative_epsilon=...)`` uses). C does not depend on A."""
    if epsilon is not None:  # absolute: std(C) is not needed (each learning step lands here)
        return resolve_epsilon(None, epsilon, relative_epsilon)
    geometry = PointCloud(x, y, get_cost("sqeuclidean"))
    return cloud_epsilon(geometry, None, relative_epsilon,
                         default=DEFAULT_SUBSPACE_RELATIVE_EPSILON)[0]


def _subspace_cost(A: torch.Tensor, lam: float) -> ElasticCost:
    """h_A(z) = ½‖z‖² + (λ/2)‖A^⊥z‖² as the engine's elastic cost (differentiable in A)."""
    return ElasticCost(Subspace(A), lam=lam)


def subspace_map(
    x: torch.Tensor, y: torch.Tensor, A: torch.Tensor, *, lam: float,
    epsilon: float | None = None, relative_epsilon: float | None = None,
    tol: float = DEFAULT_SUBSPACE_TOL, max_iter: int = 10_000,
    x_new: torch.Tensor | None = None, iterations: int | None = None,
) -> torch.Tensor:
    """The entropic elastic map of h_A fitted on ``x: [n, d]``, ``y: [m, d]`` (uniform
    weights), at ``x_new`` (default x): Σ_j p_j(x) y_j, ``[k, d]``.

    It is ``otkit.sinkhorn(x, y, cost=ElasticCost(Subspace(A), lam=lam), epsilon=ε, tol=tol,
    differentiation="implicit").transport(x_new)``: a converged solve, differentiable in A
    (and in x, y) at its fixed point. ε is ``epsilon``, or ``relative_epsilon`` (default 0.4)
    × std of ½‖x_i − y_j‖² (:func:`subspace_epsilon`); give one at most. ``iterations``, the
    former count of unrolled Sinkhorn iterations, is ignored (with a ``DeprecationWarning``).
    """
    if iterations is not None:
        warnings.warn(
            "subspace_map(..., iterations=) is ignored: the map is now a converged Sinkhorn "
            "solve (tol=, max_iter=); the keyword will go",
            DeprecationWarning,
            stacklevel=2,
        )
    epsilon = subspace_epsilon(x, y, epsilon, relative_epsilon)
    result = sinkhorn(x, y, cost=_subspace_cost(A, lam), epsilon=epsilon, tol=tol,
                      max_iter=max_iter, differentiation="implicit")
    return result.transport(x if x_new is None else x_new)


def _held_out_loss(
    x_fit: torch.Tensor, y_fit: torch.Tensor, x_held: torch.Tensor, y_held: torch.Tensor,
    A: torch.Tensor, *, lam: float, epsilon: float, tol: float, max_iter: int,
):
    """One step's loss (1/k) Σ_i ‖T_A(x_held_i) − y_held_i‖² of the map fitted on
    ``x_fit, y_fit: [n, d]`` and scored on ``x_held, y_held: [k, d]``, and the solve behind it:
    ``(loss [], SinkhornResult)``, the loss differentiable in A at the solve's fixed point."""
    result = sinkhorn(x_fit, y_fit, cost=_subspace_cost(A, lam), epsilon=epsilon, tol=tol,
                      max_iter=max_iter, differentiation="implicit")
    loss = ((result.transport(x_held) - y_held) ** 2).sum(1).mean()
    return loss, result


@dataclass(frozen=True, eq=False)
class SubspaceLearningResult:
    """The learned subspace: ``A: [p, d]`` (orthonormal rows), the training ``losses
    [steps]``, the largest principal angle to ``true`` after each step (``angles [steps]``,
    empty without ``true``), ε, the seconds spent and the Sinkhorn iterations of each step's
    solve (``sinkhorn_iterations [steps]``)."""

    A: torch.Tensor
    losses: torch.Tensor
    angles: torch.Tensor
    epsilon: float
    seconds: float
    sinkhorn_iterations: torch.Tensor


def learn_subspace(
    x: torch.Tensor, y: torch.Tensor, p: int, *, lam: float = 10.0,
    relative_epsilon: float | None = None, epsilon: float | None = None, steps: int = 100,
    lr: float = 0.05, tol: float = DEFAULT_SUBSPACE_TOL, max_iter: int = 10_000,
    batch_size: int | None = 256, init: torch.Tensor | None = None,
    true: torch.Tensor | None = None, seed: int = 0, progress: bool = False,
) -> SubspaceLearningResult:
    """Learn A ∈ St(p, d) so that the elastic map of h_A sends each ``x_i`` to ``y_i``
    (module docstring). ``x, y: [n, d]`` are paired row by row.

    Args:
        p: the subspace's dimension (1 <= p < d).
        lam: the cost's weight λ on the orthogonal complement.
        relative_epsilon: ε as a multiple of std(C), C_ij = ½‖x_i − y_j‖² over the clouds (a
            scale that does not depend on A; as :func:`otkit.sinkhorn`); default
            :data:`DEFAULT_SUBSPACE_RELATIVE_EPSILON` = 0.4.
        epsilon: an absolute ε instead (give one of the two at most).
        steps, lr: Adam steps on the parametrization U (A = QR(U)ᵀ).
        tol, max_iter: each step's Sinkhorn solve (L1 marginal error, iteration cap).
        batch_size: pairs per step, half to fit the map and half to score it (None: all).
        init: a starting ``[p, d]`` A (default: random, from ``seed``).
        true: a ``[p, d]`` subspace to report principal angles against.
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.ndim != 2 \
            or x.shape != y.shape:
        raise ValueError("x and y must be paired [n, d] tensors of the same shape")
    n, d = x.shape
    p = check_count("p", p)
    if p >= d:
        raise ValueError(f"p must be < d = {d}, got {p}")
    lam = check_positive("lam", lam)
    epsilon = subspace_epsilon(x, y, epsilon, relative_epsilon)  # before the cast: as sinkhorn
    steps = check_count("steps", steps)
    lr, tol = check_positive("lr", lr), check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter)
    batch = n if batch_size is None else min(check_count("batch_size", batch_size, minimum=2), n)
    gen = torch.Generator().manual_seed(seed)
    x, y = x.double(), y.double()
    if init is None:  # a stream of its own, apart from data drawn with the same seed
        gen.manual_seed(seed + 1_000_003)
        U0 = torch.randn(d, p, generator=gen, dtype=torch.float64)
        gen.manual_seed(seed)
    else:
        if init.shape != (p, d):
            raise ValueError(f"init must have shape [{p}, {d}], got {tuple(init.shape)}")
        U0 = _orthonormal_rows("init", init).T.clone()
    if true is not None and (true.ndim != 2 or true.shape[1] != d):
        raise ValueError(f"true must be a [q, {d}] tensor")
    U = U0.clone().requires_grad_(True)
    opt = torch.optim.Adam([U], lr=lr)
    losses, angles = torch.empty(steps, dtype=torch.float64), []
    solves = torch.empty(steps, dtype=torch.long)
    start = time.perf_counter()
    for step in tqdm(range(steps), desc="subspace", disable=not progress):
        rows = torch.randperm(n, generator=gen)[:batch]
        fit, held = rows[: batch // 2], rows[batch // 2:]
        A = torch.linalg.qr(U)[0].T  # [p, d], in the graph of U
        loss, result = _held_out_loss(x[fit], y[fit], x[held], y[held], A, lam=lam,
                                      epsilon=epsilon, tol=tol, max_iter=max_iter)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step], solves[step] = loss.detach(), result.n_iter
        if true is not None:
            with torch.no_grad():
                angles.append(principal_angles(torch.linalg.qr(U)[0].T, true).max().item())
    A = torch.linalg.qr(U.detach())[0].T
    return SubspaceLearningResult(A, losses, torch.tensor(angles, dtype=torch.float64),
                                  epsilon, time.perf_counter() - start, solves)
