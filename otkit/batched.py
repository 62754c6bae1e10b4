"""Many small entropic OT problems in one call: clouds ``[B, n, d]`` and ``[B, m, d]``.

Minibatch OT flow matching pairs B batches of noise and data at every step, and a widget
redraws dozens of small couplings: one :func:`otkit.sinkhorn` call per problem pays Python's
and torch's per-call overhead B times per iteration. Here the B problems share every tensor
operation. Problem k is solved with the iteration of :mod:`otkit.backends.torch_native`,

    g_kj ← τ_b · (−ε_k LSE_i(log a_ki + (f_ki − C_kij)/ε_k)),
    f_ki ← τ_a · (−ε_k LSE_j(log b_kj + (g_kj − C_kij)/ε_k)),

with its own ε_k (an absolute ε, or relative_epsilon × std(C_k)), its own error
Σ_i a_ki |exp((f_ki − f̂_ki)/ε_k) − 1| (the L1 marginal error when balanced) and its own stopping
time: a problem that has reached ``tol`` is frozen while the others go on, so each ends with
the potentials, iteration count and error history that :func:`otkit.sinkhorn` returns on it
alone. ``result[k]`` is that :class:`~otkit.sinkhorn.SinkhornResult`, with all its methods.

The cost tensor ``[B, n, m]`` is held whole (dense mode): this path is for problems small
enough that per-call overhead, not the n·m work, dominates. Translation-invariant costs are
evaluated on clouds centred per problem, as :class:`~otkit.geometry.PointCloud` does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .backends import log_weight
from .costs import Cost
from .coupling import sample_rows
from .epsilon import check_epsilon_arguments, epsilon_unit
from .geometry import PointCloud
from .kernels import batched_lse
from .sinkhorn import ConvergenceWarning, SinkhornResult
from .validation import HALF_DTYPES, check_positive

__all__ = ["SinkhornBatchResult", "sinkhorn_batch"]


def _check_batch_cloud(name: str, x: object) -> torch.Tensor:
    """A batch of clouds: a finite floating-point tensor ``[B, n, d]`` with B, n, d ≥ 1."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [B, n, d], got {type(x).__name__}")
    if not x.is_floating_point() or x.dtype in HALF_DTYPES:
        raise TypeError(f"{name} has dtype {x.dtype}; pass float32 or float64 points")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name} must have shape [B, n, d] with B, n, d >= 1, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def _check_batch_weights(name: str, w: object, batch: int, size: int, like: torch.Tensor):
    """``None`` (uniform), ``[size]`` (shared by every problem) or ``[batch, size]``."""
    if w is None:
        return torch.full((batch, size), 1.0 / size, dtype=like.dtype, device=like.device)
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor [{batch}, {size}], [{size}] or None")
    if w.shape == (size,):
        w = w.expand(batch, size)
    if w.shape != (batch, size):
        raise ValueError(f"{name} must have shape [{batch}, {size}] or [{size}], got {tuple(w.shape)}")
    if w.device != like.device:
        raise ValueError(f"{name} is on {w.device} but the points are on {like.device}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must hold finite, non-negative weights")
    if (w.sum(1) <= 0).any():
        raise ValueError(f"{name} has a problem with zero total mass: give it a positive weight")
    return w.to(like.dtype)


def _batch_cost(x: torch.Tensor, y: torch.Tensor, cost: Cost) -> torch.Tensor:
    """``C: [B, n, m]``, ``C_kij = c(x_ki, y_kj)``, on clouds centred per problem."""
    if cost.translation_invariant:  # the centring of PointCloud, per problem
        offset = 0.5 * (x.mean(1, keepdim=True) + y.mean(1, keepdim=True))
        x, y = x - offset, y - offset
    split = cost.split(x, y)  # C = r ⊕ s − x yᵀ: one batched matrix product
    if split is not None:
        r, s = split
        c = torch.baddbmm(r.unsqueeze(2) + s.unsqueeze(1), x, y.transpose(1, 2), alpha=-1.0)
        return c.clamp_min_(0.0) if cost.is_sqeuclidean else c
    return torch.stack([cost.pairwise(x[k], y[k]) for k in range(x.shape[0])])


@dataclass(frozen=True, repr=False)
class SinkhornBatchResult:
    """B entropic OT problems solved together; ``result[k]`` is problem k's SinkhornResult.

    Attributes:
        x, y: the clouds ``[B, n, d]``, ``[B, m, d]``; a, b: weights ``[B, n]``, ``[B, m]``.
        f, g: potentials ``[B, n]``, ``[B, m]`` in cost units.
        epsilon: ε of each problem, ``[B]`` (float64).
        tau_a, tau_b: marginal relaxations (1 = balanced), shared by the problems.
        converged: ``[B]`` bool; n_iter: ``[B]`` int64 iterations of each problem.
        errors: ``[B, T]`` float64 error histories, NaN after a problem stopped
            (T = max n_iter).
        cost: the ground cost; tol: the requested tolerance.
    """

    x: torch.Tensor
    y: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    epsilon: torch.Tensor
    tau_a: float
    tau_b: float
    converged: torch.Tensor
    n_iter: torch.Tensor
    errors: torch.Tensor
    cost: Cost
    tol: float

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        batch, n, m = len(self), self.x.shape[1], self.y.shape[1]
        return (
            f"SinkhornBatchResult(B={batch}, n={n}, m={m}, cost={self.cost.name!r}, "
            f"converged={int(self.converged.sum())}/{batch}, n_iter max "
            f"{int(self.n_iter.max())}, dtype={self.f.dtype}, device={self.f.device})"
        )

    def __getitem__(self, k: int):
        """Problem k as a :class:`~otkit.sinkhorn.SinkhornResult` (dense geometry)."""
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"index must be an int, got {type(k).__name__}")
        if not -len(self) <= k < len(self):
            raise IndexError(f"problem {k} out of range for a batch of {len(self)}")
        k = k % len(self)
        steps = int(self.n_iter[k])
        return SinkhornResult(
            geometry=PointCloud(self.x[k], self.y[k], self.cost, mode="dense"),
            a=self.a[k], b=self.b[k], f=self.f[k], g=self.g[k],
            epsilon=float(self.epsilon[k]), tau_a=self.tau_a, tau_b=self.tau_b,
            converged=bool(self.converged[k]), n_iter=steps, errors=self.errors[k, :steps],
            backend="torch", tol=self.tol,
        )

    def __iter__(self) -> Iterator:
        return (self[k] for k in range(len(self)))

    def _log_plan(self) -> torch.Tensor:
        """``log P: [B, n, m]``."""
        eps = self.epsilon.to(self.f.dtype).view(-1, 1, 1)
        cost = _batch_cost(self.x, self.y, self.cost)
        return (
            log_weight(self.a).unsqueeze(2) + log_weight(self.b).unsqueeze(1)
            + (self.f.unsqueeze(2) + self.g.unsqueeze(1) - cost) / eps
        )

    def coupling(self) -> torch.Tensor:
        """The plans ``P: [B, n, m]``."""
        return self._log_plan().exp()

    def ot_cost(self) -> torch.Tensor:
        """⟨P_k, C_k⟩ for each problem, ``[B]``."""
        return (self.coupling() * _batch_cost(self.x, self.y, self.cost)).sum((1, 2))

    def transport(self, x_new: torch.Tensor) -> torch.Tensor:
        """Each problem's entropic map at its own new points ``x_new: [B, k, d]`` → ``[B, k, d]``."""
        x_new = _check_batch_cloud("x_new", x_new)
        if x_new.shape[0] != len(self) or x_new.shape[2] != self.x.shape[2]:
            raise ValueError(
                f"x_new must have shape [{len(self)}, k, {self.x.shape[2]}], got {tuple(x_new.shape)}"
            )
        return torch.stack([self[k].transport(x_new[k]) for k in range(len(self))])

    def sample_columns(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """For every source point of every problem one target ``j ~ P_k[i, :] / Σ_j P_k[i, j]``:
        ``[B, n]`` column indices (minibatch OT-FM's pairing: each x_ki meets y_k,j)."""
        log_plan = self._log_plan()
        batch, n, m = log_plan.shape
        return sample_rows(log_plan.reshape(batch * n, m), generator).reshape(batch, n)


def sinkhorn_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    cost: Cost,
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    default_relative_epsilon: float,
    tau_a: float = 1.0,
    tau_b: float = 1.0,
    tol: float = 1e-3,
    max_iter: int = 2000,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SinkhornBatchResult:
    """Solve B problems ``x: [B, n, d]`` → ``y: [B, m, d]`` together (module docstring).

    Called by :func:`otkit.sinkhorn` when its clouds are ``[B, n, d]``; the keywords mean what
    they mean there. ``a``, ``b``: ``[B, n]``, ``[B, m]``, or ``[n]``, ``[m]`` shared by every
    problem, or None (uniform). ``init``: ``(f [B, n], g [B, m])``.
    """
    x, y = _check_batch_cloud("x", x), _check_batch_cloud("y", y)
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"x [B, n, d] and y [B, m, d] need the same B and d, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    if x.dtype != y.dtype or x.device != y.device:
        raise ValueError("x and y must share dtype and device")
    batch, n, m = x.shape[0], x.shape[1], y.shape[1]
    a = _check_batch_weights("a", a, batch, n, x)
    b = _check_batch_weights("b", b, batch, m, x)
    if tau_a == 1.0 and tau_b == 1.0:
        mass_a, mass_b = a.sum(1), b.sum(1)
        if ((mass_a - mass_b).abs() > 1e-5 * torch.maximum(mass_a, mass_b)).any():
            raise ValueError(
                "balanced OT needs a and b of equal total mass in every problem: normalize "
                "them, or relax the marginals with finite rho_a/rho_b"
            )
    tol = check_positive("tol", tol)
    epsilon, relative_epsilon = check_epsilon_arguments(epsilon, relative_epsilon)
    if init is not None:
        if not (isinstance(init, (tuple, list)) and len(init) == 2):
            raise TypeError(f"init must be a pair (f [{batch}, {n}], g [{batch}, {m}])")
        for name, t, shape in (("init[0] (f)", init[0], (batch, n)),
                               ("init[1] (g)", init[1], (batch, m))):
            if not isinstance(t, torch.Tensor) or t.shape != shape or not torch.isfinite(t).all():
                raise ValueError(f"{name} must be a finite tensor of shape {list(shape)}")
    with torch.no_grad():
        cost_matrix = _batch_cost(x, y, cost)
        if epsilon is not None:
            eps = torch.full((batch,), epsilon, dtype=torch.float64, device=x.device)
        else:
            rel = default_relative_epsilon if relative_epsilon is None else relative_epsilon
            eps = rel * _batch_units(x, y, cost, cost_matrix)
        f, g = (
            (torch.zeros_like(a), torch.zeros_like(b)) if init is None
            else (init[0].to(a).clone(), init[1].to(a).clone())
        )
        return _iterate(x, y, a, b, cost_matrix, cost, eps, tau_a, tau_b, tol, max_iter, f, g)


def _batch_units(x: torch.Tensor, y: torch.Tensor, cost: Cost, matrix: torch.Tensor) -> torch.Tensor:
    """std(C_k) of each problem, ``[B]`` float64, as :meth:`PointCloud.cost_std` computes it
    (all of C_k up to 2048 × 2048, its fixed subsample beyond), with the constant-cost fallback."""
    batch, n, m = matrix.shape
    if n <= 2048 and m <= 2048:
        stds = matrix.double().flatten(1).std(1).tolist() if n * m > 1 else [0.0] * batch
    else:
        stds = [PointCloud(x[k], y[k], cost).cost_std() for k in range(batch)]
    if not all(math.isfinite(s) for s in stds):
        raise ValueError("the cost matrix has non-finite entries")
    units = [epsilon_unit(s, lambda k=k: matrix[k, 0].mean().item()) for k, s in enumerate(stds)]
    return torch.tensor(units, dtype=torch.float64, device=x.device)


def _iterate(x, y, a, b, cost_matrix, cost, eps, tau_a, tau_b, tol, max_iter, f, g):
    """The batched loop: every problem advances until its own error reaches ``tol``. Each
    half-step is one shifted pass of :func:`otkit.kernels.batched_lse` over C or Cᵀ (stored
    contiguous, so both are row reductions), shifted by the current potential."""
    batch = a.shape[0]
    log_a, log_b = log_weight(a), log_weight(b)
    cost_t = cost_matrix.transpose(1, 2).contiguous()
    inv_eps = (1.0 / eps).to(a.dtype).view(-1, 1, 1)
    eps_col = eps.to(a.dtype).view(-1, 1)
    active = torch.ones(batch, dtype=torch.bool, device=a.device)
    n_iter = torch.zeros(batch, dtype=torch.long, device=a.device)
    history: list[torch.Tensor] = []
    for _ in range(max_iter):
        lse, _ = batched_lse(cost_t, log_a + f / eps_col, -g / eps_col, inv_eps)
        g_new = -eps_col * tau_b * lse
        lse, ratio = batched_lse(cost_matrix, log_b + g_new / eps_col, -f / eps_col, inv_eps)
        f_new = -eps_col * tau_a * lse
        if tau_a != 1.0:  # the fixed-point residual (the ratio is the row mass when balanced)
            ratio = torch.exp(((f - f_new) / eps_col).clamp(max=80.0))
        err = (a * (ratio - 1.0).abs()).sum(1).double()
        keep = active.unsqueeze(1)
        f, g = torch.where(keep, f_new, f), torch.where(keep, g_new, g)
        history.append(torch.where(active, err, torch.full_like(err, math.nan)))
        n_iter += active.long()
        active = active & ~(err <= tol)
        if not bool(active.any()):
            break
    if not (torch.isfinite(f).all() and torch.isfinite(g).all()):
        raise FloatingPointError("batched Sinkhorn produced non-finite potentials: raise epsilon")
    converged = ~active
    if not bool(converged.all()):
        warnings.warn(
            f"Sinkhorn did not reach tol={tol:g} in {max_iter} iterations for "
            f"{int(active.sum())} of {batch} problems: raise max_iter or epsilon",
            ConvergenceWarning, stacklevel=3,
        )
    errors = torch.stack(history, 1) if history else torch.zeros(batch, 0, dtype=torch.float64)
    return SinkhornBatchResult(
        x=x, y=y, a=a, b=b, f=f, g=g, epsilon=eps, tau_a=tau_a, tau_b=tau_b,
        converged=converged, n_iter=n_iter, errors=errors, cost=cost, tol=tol,
    )

