"""Gradient surgery for a main and an auxiliary loss, as a wrapper around any torch optimizer.

Hsieh, Thornton, Ndiaye, Klein, Cuturi and Ablin (2024), "Careful with that scalpel: improving
gradient surgery with an EMA" (ICML 2024, arXiv:2402.02998). The problem is the simple bilevel
one

    min_θ L_aux(θ)   subject to   θ ∈ argmin L_main(θ),

softened by a trade-off λ ≥ 0. At each step the mini-batch gradients g_m = ∇L_main and
g_a = ∇L_aux (each a list of tensors shaped like the parameters, read as one vector of
ℝ^p) are merged into one direction d, which the wrapped optimizer (SGD, Adam, ...) then
follows as if it were a gradient. Four merges (:data:`METHODS`):

* ``"bloop"`` (the paper's Eq. 5; Bloop = BiLevel Optimization with Orthogonal Projection):

      ĝ ← ĝ + ρ (g_m − ĝ)                                   (EMA of main gradients)
      d = g_m + λ (g_a − ⟨g_a, ĝ⟩ / (‖ĝ‖² + δ) · ĝ)

  The λ-part is orthogonal to ĝ (exactly, up to δ): when ĝ ≈ E[g_m], the step makes the same
  expected progress on L_main as SGD on L_main alone (the paper's Section 2.2), however large
  λ. Projecting on the mini-batch g_m instead (ρ = 1) is biased: in the noise-dominated limit
  E[π(g_a; g_m)] ≈ (1 − 1/p) g_a, the mixed direction again.
* ``"mixed"``: d = g_m + λ g_a, gradient descent on L_main + λ L_aux (no EMA).
* ``"dynamic_barrier"``: the Dynamic Barrier of Gong and Liu (2021) in the paper's stochastic
  form (Section 5.1): d = μ g_m + λ g_a, μ = max(1 − λ ⟨g_m, g_a⟩ / ‖g_m‖², 0). Written as
  Bloop with its coefficient clipped, d = g_m + λ (g_a − min(c, 1/λ) ĝ) with
  c = ⟨g_a, ĝ⟩ / (‖ĝ‖² + δ), which is that formula when ĝ = g_m (ρ = 1, δ = 0): the projection
  only removes the part of g_a that would slow L_main down, never adds to it.
* ``"pcgrad"``: PCGrad of Yu et al. (2020) with λ (the paper's Section 5.1), each gradient
  projected off the other's EMA only when they conflict (ĝ_m, ĝ_a the EMAs of g_m and g_a):

      d = (g_m − min(⟨g_m, ĝ_a⟩ / (‖ĝ_a‖² + δ), 0) ĝ_a) + λ (g_a − min(⟨g_a, ĝ_m⟩ / (‖ĝ_m‖² + δ), 0) ĝ_m)

  With ρ = 1 this is g_m + λ g_a when ⟨g_m, g_a⟩ ≥ 0, and π(g_m; g_a) + λ π(g_a; g_m) otherwise.

The EMAs are **initialized from the first gradients** (the public code's ``init="grad"``; one
of its examples builds the EMA from the *parameters*, which is a different vector with other
units) and **updated before use**, as the public code does (the paper's Algorithm 1 updates
after): with ρ = 1 the EMA is the current batch's gradient, and Bloop is per-batch projection.
ρ is the EMA's speed, in (0, 1]; the paper uses ρ = 0.01 and asks for ρ somewhat larger than
the step size (its Theorem 2: ρ ≃ η^{2/3}).

``rescale=True`` multiplies d by 1 / (1 + λ), so that the step stays of the size of a
gradient step as λ grows. (The public JAX code writes ``(1.0 / 1.0 + lbda)`` for Bloop and the
Dynamic Barrier, which Python reads as 1 + λ: it scales the step *up* by 1 + λ. Here it is
1 / (1 + λ) for every method.)

δ ≥ 0 keeps the projection defined when ĝ vanishes (δ = 0 and ĝ = 0 project nothing).

Usage::

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    surgery = GradientSurgery(model.parameters(), opt, method="bloop", lam=0.1, rho=0.01)
    for batch in data:
        surgery.zero_grad()
        surgery.step(main_loss(model, batch), aux_loss(model))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

import torch

__all__ = ["METHODS", "SurgeryConfig", "SurgeryStep", "GradientSurgery", "surgery_direction"]

#: The merges of a main and an auxiliary gradient (module docstring).
METHODS = ("bloop", "mixed", "dynamic_barrier", "pcgrad")


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be a number, got nan")
    return value


@dataclass(frozen=True)
class SurgeryConfig:
    """How two gradients are merged (module docstring for the equations).

    Args:
        method: one of :data:`METHODS`.
        lam: the trade-off λ ≥ 0 (0: train on L_main alone).
        rho: the EMA speed ρ ∈ (0, 1] (1: no averaging, the current batch's gradient);
            unused by ``"mixed"``.
        delta: δ ≥ 0 added to ‖ĝ‖² in the projections' denominators.
        rescale: multiply the direction by 1 / (1 + λ).

    Raises:
        ValueError: an unknown method, λ < 0 or not finite, ρ ∉ (0, 1], δ < 0 or not finite
            (the message names the argument).
    """

    method: str = "bloop"
    lam: float = 0.1
    rho: float = 0.01
    delta: float = 1e-12
    rescale: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ValueError(
                f"method must be one of {', '.join(map(repr, METHODS))}; got {self.method!r}")
        lam, rho, delta = (_number(n, getattr(self, n)) for n in ("lam", "rho", "delta"))
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be a finite number >= 0 (the trade-off λ), got {lam}")
        if not 0.0 < rho <= 1.0:
            raise ValueError(f"rho must lie in (0, 1] (the EMA speed; 1 = no EMA), got {rho}")
        if not (math.isfinite(delta) and delta >= 0):
            raise ValueError(f"delta must be a finite number >= 0, got {delta}")
        if not isinstance(self.rescale, bool):
            raise TypeError(f"rescale must be a bool, got {type(self.rescale).__name__}")
        object.__setattr__(self, "lam", lam)
        object.__setattr__(self, "rho", rho)
        object.__setattr__(self, "delta", delta)


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """⟨a, b⟩ of two lists of tensors read as one vector: a 0-d tensor (no host sync)."""
    return torch.stack([(x * y).sum() for x, y in zip(a, b)]).sum()


def _ema(ema: list[torch.Tensor] | None, grads: Sequence[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """ĝ ← ĝ + ρ (g − ĝ), or ĝ = g at the first call (``ema`` None)."""
    if ema is None:
        return [g.detach().clone() for g in grads]
    return [e.add_(g - e, alpha=rho) if rho < 1 else e.copy_(g) for e, g in zip(ema, grads)]


def _coefficient(grads: Sequence[torch.Tensor], ema: Sequence[torch.Tensor], delta: float) -> torch.Tensor:
    """⟨g, ĝ⟩ / (‖ĝ‖² + δ), 0 where the denominator is 0."""
    denominator = _dot(ema, ema) + delta
    return torch.where(denominator > 0, _dot(grads, ema) / torch.where(denominator > 0, denominator, 1.0),
                       torch.zeros_like(denominator))


def surgery_direction(
    config: SurgeryConfig,
    grads_main: Sequence[torch.Tensor],
    grads_aux: Sequence[torch.Tensor],
    main_ema: list[torch.Tensor] | None = None,
    aux_ema: list[torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None, list[torch.Tensor] | None]:
    """One merge: the direction d and the updated EMAs (module docstring).

    Args:
        config: the method and its knobs.
        grads_main, grads_aux: g_m and g_a, lists of tensors of the parameters' shapes.
        main_ema, aux_ema: ĝ_m and ĝ_a from the previous call (``None`` at the first; they are
            then initialized from these gradients). Updated in place and returned.

    Returns:
        ``(d, main_ema, aux_ema)``: d a list of tensors of the parameters' shapes; the EMAs
        that the method keeps (``None`` for those it does not: ``"mixed"`` keeps none, only
        ``"pcgrad"`` keeps ``aux_ema``).
    """
    lam, method = config.lam, config.method
    if method == "mixed":
        direction = [gm + lam * ga for gm, ga in zip(grads_main, grads_aux)]
    elif method in ("bloop", "dynamic_barrier"):
        main_ema = _ema(main_ema, grads_main, config.rho)
        c = _coefficient(grads_aux, main_ema, config.delta)
        if method == "dynamic_barrier":
            # μ = 1 − λ c ≥ 0: never subtract more than the whole of g_m's share
            c = torch.clamp(c, max=1.0 / lam) if lam > 0 else c
        direction = [gm + lam * (ga - c * e) for gm, ga, e in zip(grads_main, grads_aux, main_ema)]
    else:  # pcgrad
        main_ema = _ema(main_ema, grads_main, config.rho)
        aux_ema = _ema(aux_ema, grads_aux, config.rho)
        c_aux = torch.clamp(_coefficient(grads_aux, main_ema, config.delta), max=0.0)
        c_main = torch.clamp(_coefficient(grads_main, aux_ema, config.delta), max=0.0)
        direction = [(gm - c_main * ea) + lam * (ga - c_aux * em)
                     for gm, ga, em, ea in zip(grads_main, grads_aux, main_ema, aux_ema)]
    if config.rescale:
        direction = [d / (1.0 + lam) for d in direction]
    return direction, main_ema, (aux_ema if method == "pcgrad" else None)


@dataclass(frozen=True)
class SurgeryStep:
    """What :meth:`GradientSurgery.step` did: the two losses (detached 0-d tensors, on the
    parameters' device) and the direction d handed to the optimizer (a list of tensors shaped
    like the parameters)."""

    main_loss: torch.Tensor
    aux_loss: torch.Tensor
    direction: list[torch.Tensor]


class GradientSurgery:
    """A torch optimizer that follows a merge of two gradients (module docstring).

    Args:
        params: the parameters the two losses are differentiated with respect to (an iterable
            of tensors that require grad, e.g. ``model.parameters()``); every one must be in
            ``optimizer``.
        optimizer: a ``torch.optim.Optimizer`` over (at least) ``params``, or a callable that
            builds one from the list of parameters, e.g.
            ``functools.partial(torch.optim.Adam, lr=1e-3)``.
        config: a :class:`SurgeryConfig`; keyword arguments (``method``, ``lam``, ``rho``,
            ``delta``, ``rescale``) override its fields.

    Attributes:
        config, optimizer, params (a tuple), n_steps (merges done).
        main_ema, aux_ema: ĝ_m and ĝ_a (lists of tensors; ``None`` before the first step or
            for methods that keep none).

    Raises:
        ValueError: no parameters, a parameter that does not require grad or is not in the
            optimizer, or a bad config (see :class:`SurgeryConfig`).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        optimizer: torch.optim.Optimizer | Callable[[list[torch.Tensor]], torch.optim.Optimizer],
        config: SurgeryConfig | None = None,
        **overrides,
    ) -> None:
        if isinstance(params, torch.Tensor):
            params = [params]
        params = list(params)
        if not params:
            raise ValueError("params is empty: pass the parameters the two losses depend on")
        for i, p in enumerate(params):
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"params[{i}] must be a torch.Tensor, got {type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"params[{i}] does not require grad (shape {tuple(p.shape)})")
        if config is None:
            config = SurgeryConfig()
        elif not isinstance(config, SurgeryConfig):
            raise TypeError(f"config must be a SurgeryConfig, got {type(config).__name__}")
        self.config = replace(config, **overrides) if overrides else config
        if not isinstance(optimizer, torch.optim.Optimizer):
            if not callable(optimizer):
                raise TypeError("optimizer must be a torch.optim.Optimizer or a callable building "
                                f"one from the parameters, got {type(optimizer).__name__}")
            optimizer = optimizer(params)
            if not isinstance(optimizer, torch.optim.Optimizer):
                raise TypeError("optimizer(params) must return a torch.optim.Optimizer, got "
                                f"{type(optimizer).__name__}")
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [i for i, p in enumerate(params) if id(p) not in held]
        if missing:
            raise ValueError(f"params {missing} are not in the optimizer: build it over the same "
                             "parameters")
        self.params: tuple[torch.Tensor, ...] = tuple(params)
        self.optimizer = optimizer
        self.main_ema: list[torch.Tensor] | None = None
        self.aux_ema: list[torch.Tensor] | None = None
        self.n_steps = 0

    def __repr__(self) -> str:
        c = self.config
        return (f"GradientSurgery(method={c.method!r}, lam={c.lam:g}, rho={c.rho:g}, "
                f"delta={c.delta:g}, rescale={c.rescale}, optimizer={type(self.optimizer).__name__}, "
                f"params={len(self.params)}, steps={self.n_steps})")

    def _check(self, name: str, grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{name} has {len(grads)} tensors, expected one per parameter "
                             f"({len(self.params)})")
        out = []
        for i, (g, p) in enumerate(zip(grads, self.params)):
            if g is None:  # a parameter the loss does not use
                g = torch.zeros_like(p)
            elif g.shape != p.shape:
                raise ValueError(f"{name}[{i}] has shape {tuple(g.shape)}, its parameter "
                                 f"{tuple(p.shape)}")
            out.append(g.detach())
        return out

    def direction(self, grads_main: Sequence[torch.Tensor | None],
                  grads_aux: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Merge g_m and g_a (one tensor per parameter; ``None`` for an unused one) into d,
        advancing the EMAs. Touches neither the parameters nor the optimizer."""
        gm = self._check("grads_main", grads_main)
        ga = self._check("grads_aux", grads_aux)
        d, self.main_ema, self.aux_ema = surgery_direction(
            self.config, gm, ga, self.main_ema, self.aux_ema)
        self.n_steps += 1
        return d

    def apply(self, grads_main: Sequence[torch.Tensor | None],
              grads_aux: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Merge the two gradients, store d as the parameters' ``.grad`` and take one
        optimizer step. Returns d."""
        d = self.direction(grads_main, grads_aux)
        for p, g in zip(self.params, d):
            p.grad = g
        self.optimizer.step()
        return d

    def step(self, main_loss: torch.Tensor, aux_loss: torch.Tensor) -> SurgeryStep:
        """Differentiate both losses (0-d tensors) with respect to the parameters, merge and
        take one optimizer step. The graphs are freed afterwards."""
        for name, loss in (("main_loss", main_loss), ("aux_loss", aux_loss)):
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(f"{name} must be a one-element tensor (a loss), got "
                                 f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}")
        gm = torch.autograd.grad(main_loss.reshape(()), self.params, retain_graph=True,
                                 allow_unused=True)
        ga = torch.autograd.grad(aux_loss.reshape(()), self.params, allow_unused=True)
        d = self.apply(gm, ga)
        return SurgeryStep(main_loss.detach().reshape(()), aux_loss.detach().reshape(()), d)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """The optimizer's ``zero_grad``."""
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def reset(self) -> None:
        """Forget the EMAs (the next step initializes them from its gradients)."""
        self.main_ema = self.aux_ema = None

    def state_dict(self) -> dict:
        """The optimizer's state, the EMAs and the step count."""
        return {"optimizer": self.optimizer.state_dict(), "n_steps": self.n_steps,
                "main_ema": None if self.main_ema is None else [e.clone() for e in self.main_ema],
                "aux_ema": None if self.aux_ema is None else [e.clone() for e in self.aux_ema]}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.n_steps = int(state["n_steps"])
        for key in ("main_ema", "aux_ema"):
            value = state[key]
            if value is not None:
                value = self._check(key, value)
                value = [v.clone().to(p.device) for v, p in zip(value, self.params)]
            setattr(self, key, value)
