"""Entropic optimal transport between point clouds: the Sinkhorn algorithm.

For clouds x ∈ R^{n×d}, y ∈ R^{m×d} with weights a, b and cost matrix C_ij = c(x_i, y_j),
otkit solves (Cuturi 2013; Peyré and Cuturi 2019, §4)

    OT_ε = min_{P ≥ 0} ⟨P, C⟩ + ε KL(P | a⊗b) + ρ_a KL(P1 | a) + ρ_b KL(Pᵀ1 | b),

balanced when ρ_a = ρ_b = ∞ (the default). Its dual is

    max_{f, g} −ρ_a⟨a, e^{−f/ρ_a} − 1⟩ − ρ_b⟨b, e^{−g/ρ_b} − 1⟩ − ε⟨a⊗b, e^{(f⊕g − C)/ε} − 1⟩

(the first two terms read ⟨f, a⟩ and ⟨g, b⟩ when balanced), and the optimal plan is

    P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε),

with potentials f, g in cost units, the convention of GeomLoss. The penalties are given as
``rho_a``, ``rho_b`` (ρ itself, in cost units, as in :func:`otkit.lowrank`) or as
``tau_a``, ``tau_b`` with ``tau = ρ/(ρ + ε)`` (OTT-JAX's Sinkhorn convention; 1 = balanced).
The entropic map (Pooladian and Niles-Weed 2021) sends a new point x to

    T(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j)),   p_j(x) ∝ b_j exp((g_j − c(x, y_j))/ε),

for a cost c(x, y) = h(x − y) (:mod:`otkit.maps`); for ½‖x − y‖² this is Σ_j p_j(x) y_j.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from . import maps
from .backends import BACKENDS, Potentials, SinkhornProblem, kl_penalty, log_weight
from .costs import Cost, get_cost
from .coupling import CouplingMethods
from .differentiation import (
    DIFFERENTIATION,
    differentiable_potentials,
    needs_gradients,
    soft_c_transform,
)
from .epsilon import (  # noqa: F401 (DEFAULT_RELATIVE_EPSILON re-exported)
    DEFAULT_RELATIVE_EPSILON,
    check_epsilon_arguments,
    cloud_epsilon,
)
from .geometry import PointCloud, default_mode
from .validation import (
    check_choice,
    check_clouds,
    check_epsilon_scaling,
    check_equal_mass,
    check_init,
    check_positive,
    check_rho,
    check_tau,
    check_weights,
)

if TYPE_CHECKING:
    from .batched import SinkhornBatchResult

__all__ = ["sinkhorn", "SinkhornResult", "ConvergenceWarning", "resolve_epsilon"]


class ConvergenceWarning(UserWarning):
    """A solver stopped at ``max_iter`` before reaching its tolerance."""


@dataclass(frozen=True, repr=False)
class SinkhornResult(CouplingMethods):
    """The solution of an entropic OT problem, as potentials; the plan is built on demand.

    Attributes:
        geometry: the clouds and cost (``geometry.x: [n, d]``, ``geometry.y: [m, d]``).
        a, b: weights ``[n]``, ``[m]``.
        f, g: dual potentials ``[n]``, ``[m]`` in cost units.
        epsilon: the (absolute) regularization ε used.
        tau_a, tau_b: marginal relaxations τ = ρ/(ρ + ε) (1 = balanced); the penalties ρ
            themselves are :attr:`rho_a`, :attr:`rho_b`.
        converged: whether the marginal error reached ``tol`` within ``max_iter``.
        n_iter: Sinkhorn iterations (pairs of half-steps) done.
        errors: ``[n_checks]`` float64 history of the L1 marginal error (the fixed-point
            residual when unbalanced).
        backend: the backend that solved it (``"torch"``, ``"geomloss"`` or ``"pot"``).
        tol: the requested tolerance.
    """

    geometry: PointCloud
    a: torch.Tensor
    b: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    epsilon: float
    tau_a: float
    tau_b: float
    converged: bool
    n_iter: int
    errors: torch.Tensor
    backend: str
    tol: float

    def __repr__(self) -> str:
        n, m = self.shape
        last = self.errors[-1].item() if self.errors.numel() else float("nan")
        relax = "" if self.tau_a == self.tau_b == 1.0 else f", tau=({self.tau_a}, {self.tau_b})"
        return (
            f"SinkhornResult(n={n}, m={m}, cost={self.cost.name!r}, epsilon={self.epsilon:.4g}"
            f"{relax}, converged={self.converged}, n_iter={self.n_iter}, error={last:.2e}, "
            f"backend={self.backend!r}, mode={self.mode!r}, dtype={self.f.dtype}, "
            f"device={self.f.device})"
        )

    @property
    def cost(self) -> Cost:
        return self.geometry.cost

    @property
    def mode(self) -> str:
        """``"dense"`` or ``"online"``: how the solver held the cost matrix."""
        return self.geometry.mode

    def _log_plan(self, rows: slice | torch.Tensor, cost: torch.Tensor) -> torch.Tensor:
        la, lb = log_weight(self.a[rows]), log_weight(self.b)
        return la.unsqueeze(1) + lb.unsqueeze(0) + (
            self.f[rows].unsqueeze(1) + self.g.unsqueeze(0) - cost
        ) / self.epsilon

    def _plan_bands(self) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        for rows, cost in self.geometry.bands():
            yield rows, torch.exp(self._log_plan(rows, cost)), cost

    def _log_plan_rows(self, index: torch.Tensor) -> torch.Tensor:
        return self._log_plan(index, self.geometry.rows(index))

    def transport(self, x_new: torch.Tensor, *, block_size: int | None = None) -> torch.Tensor:
        """The entropic map at new points ``x_new: [k, d]`` → ``[k, d]`` (:mod:`otkit.maps`).

        ``p_j(x) ∝ b_j exp((g_j − c(x, y_j))/ε)`` is the c-transform's soft assignment. For a
        cost c(x, y) = h(x − y) with h strictly convex (a
        :class:`~otkit.costs.TranslationInvariantCost`) the map is
        T(x) = x − ∇h*(Σ_j p_j(x) ∇h(x − y_j)) (Pooladian and Niles-Weed 2021; Cuturi, Klein
        and Ablin 2023, Prop. 2), which for ½‖x − y‖² is Σ_j p_j(x) y_j; for other costs it is
        the barycentric projection Σ_j p_j(x) y_j. Computed a band of points and a block of
        ``block_size`` targets at a time (default: blocks of about 32 MB).
        """
        x_new = self.check_points("x_new", x_new)
        logits = log_weight(self.b) + self.g / self.epsilon
        return maps.transport(self.cost, x_new, self.y, logits, self.epsilon,
                              centre=self.geometry.centred, block_size=block_size)

    def inverse_transport(
        self, y_new: torch.Tensor, *, block_size: int | None = None
    ) -> torch.Tensor:
        """The entropic map from ``y`` back to ``x`` at ``y_new: [k, d]`` → ``[k, d]``.

        ``p_i(y) ∝ a_i exp((f_i − c(x_i, y))/ε)``: the same estimator as :meth:`transport`
        with the roles of the clouds swapped (for c(x, y) = h(x − y), the cost h̃(z) = h(−z)).
        It is the entropic estimate of the inverse of the Monge map, not the exact inverse of
        :meth:`transport`; the two agree as ε → 0.
        """
        y_new = self.check_points("y_new", y_new)
        logits = log_weight(self.a) + self.f / self.epsilon
        return maps.transport(self.cost, y_new, self.x, logits, self.epsilon,
                              centre=self.geometry.centred, transpose=True,
                              block_size=block_size)

    @property
    def rho_a(self) -> float:
        """KL marginal penalty ρ_a = ε τ_a / (1 − τ_a) (inf when balanced)."""
        return kl_penalty(self.epsilon, self.tau_a)

    @property
    def rho_b(self) -> float:
        return kl_penalty(self.epsilon, self.tau_b)

    def dual_objective(self) -> torch.Tensor:
        """The dual objective at (f, g) (module docstring); equals OT_ε at the optimum."""
        mass = self.a.sum() * self.b.sum()
        # ΣP = Σ_i a_i exp((f_i − F_i)/ε) with F = −ε LSE_j(log b_j + (g_j − C_ij)/ε): one
        # checkpointed soft c-transform, so a gradient holds no n × m band
        soft = soft_c_transform(self.geometry, log_weight(self.b), self.g, self.epsilon)
        plan_mass = (self.a * torch.exp((self.f - soft) / self.epsilon)).sum()
        value = _dual_marginal_term(self.f, self.a, self.rho_a)
        value = value + _dual_marginal_term(self.g, self.b, self.rho_b)
        return value - self.epsilon * (plan_mass - mass)

    def primal_objective(self) -> torch.Tensor:
        """``⟨P, C⟩ + ε KL(P | a⊗b) + ρ_a KL(P1 | a) + ρ_b KL(Pᵀ1 | b)`` (generalized KL)."""
        value = self.ot_cost()
        for rows, band, cost in self._plan_bands():
            log_ratio = (self.f[rows].unsqueeze(1) + self.g.unsqueeze(0) - cost) / self.epsilon
            value = value + self.epsilon * (band * log_ratio).sum()  # ε Σ P log(P / a⊗b)
        row, col = self.marginals()
        value = value + self.epsilon * (self.a.sum() * self.b.sum() - row.sum())
        for marg, w, rho in ((row, self.a, self.rho_a), (col, self.b, self.rho_b)):
            if math.isfinite(rho):
                value = value + rho * _kl(marg, w)
        return value


def _dual_marginal_term(pot: torch.Tensor, w: torch.Tensor, rho: float) -> torch.Tensor:
    if math.isinf(rho):
        return (pot * w).sum()
    return -rho * (w * (torch.exp(-pot / rho) - 1.0)).sum()


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Generalized KL(p | q) = Σ p log(p/q) − p + q."""
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q) - p + q).sum()


def resolve_epsilon(
    geometry: PointCloud, epsilon: float | None, relative_epsilon: float | None
) -> tuple[float, float]:
    """Return ``(ε, unit)``: ε absolute, or ``relative_epsilon × std(C)`` (default
    :data:`~otkit.epsilon.DEFAULT_RELATIVE_EPSILON` = 0.05), and unit = std(C), where ε-scaling
    starts. The definition is :mod:`otkit.epsilon`'s (:func:`~otkit.epsilon.cloud_epsilon`),
    shared with the sharded and elastic solvers; a constant cost's unit falls back to |C|, or 1.
    """
    return cloud_epsilon(geometry, epsilon, relative_epsilon)


def _check_relaxation(side: str, tau: object, rho: object) -> tuple[float | None, float | None]:
    """One side's checked ``(tau, rho)``: ``(τ, None)`` (τ = 1 when neither is given) or
    ``(None, ρ)`` when ``rho_<side>`` is given (τ = ρ/(ρ + ε) needs ε, resolved later)."""
    if tau is not None and rho is not None:
        raise ValueError(
            f"give tau_{side} or rho_{side}, not both: they set one penalty "
            f"(tau_{side} = rho_{side} / (rho_{side} + epsilon))"
        )
    if rho is not None:
        rho = check_rho(f"rho_{side}", rho)
        return (1.0, None) if math.isinf(rho) else (None, rho)
    return (1.0 if tau is None else check_tau(f"tau_{side}", tau)), None


def _relaxation(tau: float | None, rho: float | None, epsilon: float) -> float:
    """τ = ρ/(ρ + ε) when ρ was given, else τ itself."""
    return tau if rho is None else rho / (rho + epsilon)


def _solver(backend: str):
    if backend == "torch":
        from .backends import torch_native

        return torch_native.solve
    if backend == "geomloss":
        from .backends import geomloss

        return geomloss.solve
    from .backends import pot

    return pot.solve


def _solve_batch(x, y, a, b, *, cost, epsilon, relative_epsilon, rho_a, rho_b, tau_a, tau_b,
                 tol, max_iter, init, epsilon_scaling, backend, mode):
    """:func:`sinkhorn` on clouds ``[B, n, d]``: :func:`otkit.batched.sinkhorn_batch`."""
    from .batched import sinkhorn_batch  # imports this module (the result types)

    if epsilon_scaling is not None:
        raise ValueError("epsilon_scaling is not available for a batch [B, n, d] of problems")
    if backend not in ("auto", "torch"):
        raise ValueError(f"a batch [B, n, d] of problems is solved by backend='torch' only, "
                         f"not {backend!r}")
    if mode == "online":
        raise ValueError("a batch [B, n, d] of problems is solved in mode='dense' only")
    if any(isinstance(t, torch.Tensor) and t.requires_grad for t in (x, y, a, b)):
        raise ValueError("a batch [B, n, d] of problems carries no gradients: detach the "
                         "inputs, or solve each problem with otkit.sinkhorn(x[k], y[k])")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    taus = []
    for side, tau, rho in (("a", tau_a, rho_a), ("b", tau_b, rho_b)):
        tau, rho = _check_relaxation(side, tau, rho)
        if rho is not None:
            if epsilon is None:
                raise ValueError(f"rho_{side} with a batch needs an absolute epsilon (each "
                                 f"problem's relative epsilon differs); give tau_{side}")
            tau = _relaxation(None, rho, check_positive("epsilon", epsilon))
        taus.append(tau)
    return sinkhorn_batch(
        x, y, a, b, cost=get_cost(cost), epsilon=epsilon, relative_epsilon=relative_epsilon,
        default_relative_epsilon=DEFAULT_RELATIVE_EPSILON, tau_a=taus[0], tau_b=taus[1],
        tol=tol, max_iter=max_iter, init=init,
    )


def choose_backend(n: int, m: int, dtype: torch.dtype, device: torch.device) -> tuple[str, str]:
    """``backend="auto"``: otkit's native torch solver, dense when C fits, else online.

    benchmarks/RESULTS.md (CPU, equal L1 accuracy 1e-3): the native solver was level with
    OTT-JAX at n = 1,000 on the same cores (0.82-1.03x, re-check of 2026-12-05), ahead of it at 5,000 and about 7× faster at 20,000; POT was 2-27×
    slower than OTT, and GeomLoss never reached the tolerance. No other backend won a case, so
    "auto" only chooses the storage mode.
    """
    return "torch", default_mode(n, m, dtype, device)


def sinkhorn(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    cost: str | Cost = "sqeuclidean",
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    rho_a: float | None = None,
    rho_b: float | None = None,
    tau_a: float | None = None,
    tau_b: float | None = None,
    tol: float = 1e-3,
    max_iter: int = 2000,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    epsilon_scaling: float | None = None,
    backend: str = "auto",
    mode: str = "auto",
    block_size: int | None = None,
    differentiation: str = "envelope",
    progress: bool = False,
) -> SinkhornResult | SinkhornBatchResult:
    """Solve entropic OT between ``x: [n, d]`` and ``y: [m, d]`` (module docstring).

    A batch of B problems, ``x: [B, n, d]`` and ``y: [B, m, d]`` (weights ``[B, n]``,
    ``[B, m]`` or shared ``[n]``, ``[m]``), is solved in one call by
    :func:`otkit.batched.sinkhorn_batch` (dense, torch backend, no ε-scaling nor gradients;
    each problem its own ε, iterations and stopping time): it returns a
    :class:`~otkit.batched.SinkhornBatchResult`, whose ``result[k]`` is the SinkhornResult of
    problem k.

    Args:
        x, y: source and target points, floating point, on one device.
        a, b: weights ``[n]``, ``[m]`` (uniform by default). Balanced problems need equal
            total masses.
        cost: ``"sqeuclidean"`` (½‖x − y‖², default), ``"euclidean"``, ``"dot"`` or a
            :class:`otkit.costs.Cost`.
        epsilon: absolute regularization ε > 0.
        relative_epsilon: ε as a multiple of the std of the cost matrix (default 0.05 when
            neither is given). Give one of the two at most.
        rho_a, rho_b: the KL marginal penalties ρ of ρ_a KL(P1 | a) and ρ_b KL(Pᵀ1 | b), in
            cost units, > 0; ``math.inf`` (the default) imposes the marginal exactly
            (balanced). The same ρ means the same penalty in :func:`otkit.lowrank`.
        tau_a, tau_b: the same penalties as relaxations τ = ρ/(ρ + ε) in (0, 1] (1 =
            balanced), an alternative to ``rho_a``, ``rho_b``: give one of the two per side.
        tol: stop when the L1 marginal error ‖P1 − a‖₁ falls to ``tol``.
        max_iter: iteration cap; reaching it warns (:class:`ConvergenceWarning`) and sets
            ``converged=False``.
        init: warm start ``(f, g)`` in cost units, e.g. a previous result's potentials.
        epsilon_scaling: a factor q in (0, 1): anneal ε from std(C) by q per iteration.
        backend: ``"auto"`` | ``"torch"`` | ``"geomloss"`` | ``"pot"``.
        mode: ``"auto"`` | ``"dense"`` (store C) | ``"online"`` (stream C in bands of
            ``block_size`` rows; memory O((n + m)·d)). GeomLoss and POT need ``"dense"``.
        differentiation: how gradients reach the inputs when any requires grad (the loop
            itself runs without autograd): ``"envelope"`` (default: exact for
            :meth:`SinkhornResult.dual_objective`, first order for the rest) or ``"implicit"``
            (exact for every output; a conjugate-gradient solve in backward). See
            :mod:`otkit.differentiation`.
        progress: show a tqdm bar.
    """
    if all(isinstance(t, torch.Tensor) and t.ndim == 3 for t in (x, y)):  # a batch [B, n, d]
        return _solve_batch(
            x, y, a, b, cost=cost, epsilon=epsilon, relative_epsilon=relative_epsilon,
            rho_a=rho_a, rho_b=rho_b, tau_a=tau_a, tau_b=tau_b, tol=tol, max_iter=max_iter,
            init=init, epsilon_scaling=epsilon_scaling, backend=backend, mode=mode,
        )
    x, y = check_clouds(x, y)
    n, m = x.shape[0], y.shape[0]
    a = check_weights("a", a, n, x)
    b = check_weights("b", b, m, y)
    tau_a, rho_a = _check_relaxation("a", tau_a, rho_a)
    tau_b, rho_b = _check_relaxation("b", tau_b, rho_b)
    balanced = tau_a == 1.0 and tau_b == 1.0  # a finite rho is relaxed (tau set below)
    if balanced:
        check_equal_mass(a, b)
    tol = check_positive("tol", tol)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    epsilon_scaling = check_epsilon_scaling(epsilon_scaling)
    check_choice("backend", backend, ("auto",) + BACKENDS)
    check_choice("mode", mode, ("auto", "dense", "online"))
    check_choice("differentiation", differentiation, DIFFERENTIATION)
    if block_size is not None and (not isinstance(block_size, int) or block_size < 1):
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    cost_fn = get_cost(cost)

    chosen_backend, chosen_mode = choose_backend(n, m, x.dtype, x.device)
    if backend != "auto":
        chosen_backend = backend
        if backend != "torch":
            chosen_mode = "dense"
    if mode != "auto":
        chosen_mode = mode
    if epsilon_scaling is not None and chosen_backend != "torch":
        raise ValueError(
            f"epsilon_scaling is implemented by backend='torch' only, not {chosen_backend!r}"
        )
    geometry = PointCloud(x, y, cost_fn, mode=chosen_mode, block_size=block_size)
    with torch.no_grad():  # the loop is never recorded: gradients come from the fixed point
        if epsilon is not None and epsilon_scaling is None:
            # std(C) costs a pass over C (a whole iteration in online mode) and nothing reads it
            eps, scale = check_epsilon_arguments(epsilon, relative_epsilon)[0], math.nan
        else:
            eps, scale = resolve_epsilon(geometry, epsilon, relative_epsilon)
        tau_a, tau_b = _relaxation(tau_a, rho_a, eps), _relaxation(tau_b, rho_b, eps)
        if not balanced and tau_a == 1.0 and tau_b == 1.0:  # ρ ≫ ε: τ rounded to 1
            check_equal_mass(a, b)
        problem = SinkhornProblem(
            geometry=geometry, a=a.detach(), b=b.detach(), epsilon=eps, tau_a=tau_a,
            tau_b=tau_b, tol=tol, max_iter=max_iter, init=check_init(init, n, m, x),
            epsilon_scaling=epsilon_scaling, cost_scale=scale, progress=progress,
        )
        out: Potentials = _solver(chosen_backend)(problem)
    if not (torch.isfinite(out.f).all() and torch.isfinite(out.g).all()):
        raise FloatingPointError(
            f"backend {chosen_backend!r} produced non-finite potentials at epsilon={eps:.3g}; "
            "try backend='torch' (log-domain) or a larger epsilon"
        )
    if not out.converged:
        last = out.errors[-1].item() if out.errors.numel() else float("nan")
        warnings.warn(
            f"Sinkhorn did not reach tol={tol:g} in {out.n_iter} iterations (error {last:.3g}, "
            f"epsilon={eps:.3g}): raise max_iter, raise epsilon, or use epsilon_scaling",
            ConvergenceWarning,
            stacklevel=2,
        )
    f, g = out.f, out.g
    if needs_gradients(geometry, a, b):
        f, g = differentiable_potentials(
            geometry, a, b, f, g, epsilon=eps, tau_a=tau_a, tau_b=tau_b,
            differentiation=differentiation,
        )
    return SinkhornResult(
        geometry=geometry, a=a, b=b, f=f, g=g, epsilon=eps, tau_a=tau_a, tau_b=tau_b,
        converged=out.converged, n_iter=out.n_iter, errors=out.errors, backend=chosen_backend,
        tol=tol,
    )
