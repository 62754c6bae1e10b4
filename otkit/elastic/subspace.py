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
the loss is an out-of-sample one. Here the
inner problem is solved by a fixed number of log-domain Sinkhorn iterations that autograd
differentiates (unrolling), and the constraint A ∈ St(p, d) is handled by the parametrization
A = QR(U)ᵀ (the orthonormal factor of an unconstrained U ∈ R^{d×p}), so plain Adam on U stays
on the manifold. For a quadratic h the elastic map x − ∇h*(Σ_j p_j ∇h(x − y_j)) reduces to the
barycentric projection Σ_j p_j(x) y_j: the cost acts through the weights p_j.

ε is otkit's (:mod:`otkit.epsilon`): ``relative_epsilon`` multiplies std(C) of the
squared-Euclidean cost C_ij = ½‖x_i − y_j‖² between the two clouds, a scale that does not
depend on A, so ε stays fixed while A is learned; the default is
:data:`DEFAULT_SUBSPACE_RELATIVE_EPSILON` = 0.11.

Principal angles between subspaces (:func:`principal_angles`) measure recovery.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..costs import get_cost
from ..epsilon import cloud_epsilon, resolve_epsilon
from ..geometry import PointCloud
from ..validation import check_count, check_positive

__all__ = ["principal_angles", "planted_subspace_problem", "PlantedSubspace",
           "SubspaceLearningResult", "learn_subspace", "subspace_map",
           "subspace_epsilon", "DEFAULT_SUBSPACE_RELATIVE_EPSILON"]

DEFAULT_SUBSPACE_RELATIVE_EPSILON: float = 0.11
"""ε = 0.11 · std(C), C_ij = ½‖x_i − y_j‖², when neither ε nor a relative ε is given.

Larger than otkit's 0.05 (:data:`otkit.epsilon.DEFAULT_RELATIVE_EPSILON`) because this learner
was tuned with ε = 0.05 · mean(C), and it keeps that ε: on notebook 08's planted problem
(x ~ N(0, I_d), d = 10, p = 2) mean(C)/std(C) is 2.25, 2.23 and 2.28 at n = 300, 1,000 and
3,000 — about √(d/2) = 2.24, the ratio for independent Gaussian points, for which ½‖x − x'‖²
follows a χ²_d law (mean d, std √(2d)). 0.11 ≈ 0.05 × 2.24 gives the former ε to 2%, so
the notebook's recovery and prediction results stand. In another dimension the ratio, about
√(d/2), changes, and 0.11 · std(C) stands for another multiple of mean(C).
"""


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


def _cost(x: torch.Tensor, y: torch.Tensor, A: torch.Tensor, lam: float) -> torch.Tensor:
    """C_ij = ½‖x_i − y_j‖² + (λ/2)‖A^⊥(x_i − y_j)‖², ``[n, m]``, by matrix products."""
    def sq(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((u * u).sum(1)[:, None] + (v * v).sum(1)[None, :] - 2.0 * u @ v.T)

    def perp(u: torch.Tensor) -> torch.Tensor:
        return u - (u @ A.T) @ A

    return sq(x, y) + lam * sq(perp(x), perp(y))


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


def subspace_map(
    x: torch.Tensor, y: torch.Tensor, A: torch.Tensor, *, lam: float,
    epsilon: float | None = None, relative_epsilon: float | None = None,
    iterations: int = 100, x_new: torch.Tensor | None = None,
) -> torch.Tensor:
    """The entropic elastic map of h_A fitted on ``x: [n, d]``, ``y: [m, d]`` (uniform
    weights, ``iterations`` log-domain Sinkhorn steps, differentiable in A), at ``x_new``
    (default x): Σ_j p_j(x) y_j, ``[k, d]``. ε is ``epsilon``, or ``relative_epsilon``
    (default 0.11) × std of ½‖x_i − y_j‖² (:func:`subspace_epsilon`); give one at most."""
    epsilon = subspace_epsilon(x, y, epsilon, relative_epsilon)
    n, m = x.shape[0], y.shape[0]
    cost = _cost(x, y, A, lam) / epsilon
    log_a = torch.full((n,), -math.log(n), dtype=x.dtype)
    log_b = torch.full((m,), -math.log(m), dtype=x.dtype)
    f = torch.zeros(n, dtype=x.dtype)
    g = torch.zeros(m, dtype=x.dtype)
    for _ in range(iterations):
        g = -torch.logsumexp(f[:, None] + log_a[:, None] - cost, dim=0)
        f = -torch.logsumexp(g[None, :] + log_b[None, :] - cost, dim=1)
    points = x if x_new is None else x_new
    new_cost = cost if x_new is None else _cost(points, y, A, lam) / epsilon
    weights = torch.softmax(g[None, :] + log_b[None, :] - new_cost, dim=1)
    return weights @ y


@dataclass(frozen=True, eq=False)
class SubspaceLearningResult:
    """The learned subspace: ``A: [p, d]`` (orthonormal rows), the training ``losses
    [steps]``, the largest principal angle to ``true`` after each step (``angles [steps]``,
    empty without ``true``), ε and the seconds spent."""

    A: torch.Tensor
    losses: torch.Tensor
    angles: torch.Tensor
    epsilon: float
    seconds: float


def learn_subspace(
    x: torch.Tensor, y: torch.Tensor, p: int, *, lam: float = 10.0,
    relative_epsilon: float | None = None, epsilon: float | None = None, steps: int = 100,
    lr: float = 0.05, iterations: int = 50,
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
            :data:`DEFAULT_SUBSPACE_RELATIVE_EPSILON` = 0.11 (≈ the former 0.05 × mean(C)).
        epsilon: an absolute ε instead (give one of the two at most).
        steps, lr: Adam steps on the parametrization U (A = QR(U)ᵀ).
        iterations: unrolled Sinkhorn iterations per step.
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
    steps, iterations = check_count("steps", steps), check_count("iterations", iterations)
    lr = check_positive("lr", lr)
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
    losses, angles = torch.empty(steps), []
    start = time.perf_counter()
    for step in tqdm(range(steps), desc="subspace", disable=not progress):
        rows = torch.randperm(n, generator=gen)[:batch]
        fit, held = rows[: batch // 2], rows[batch // 2:]
        A = torch.linalg.qr(U)[0].T
        mapped = subspace_map(x[fit], y[fit], A, lam=lam, epsilon=epsilon,
                              iterations=iterations, x_new=x[held])
        loss = ((mapped - y[held]) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses[step] = loss.detach()
        if true is not None:
            with torch.no_grad():
                angles.append(principal_angles(torch.linalg.qr(U)[0].T, true).max().item())
    A = torch.linalg.qr(U.detach())[0].T
    return SubspaceLearningResult(A, losses.double(), torch.tensor(angles, dtype=torch.float64),
                                  epsilon, time.perf_counter() - start)
