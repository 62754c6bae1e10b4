"""SupportNet, KeyNet and the homogenization wrapper (Olausson, Monteiro, Klein, Cuturi 2026).

"Amortizing maximum inner product search with learned support functions". For keys
K = {k_1 .. k_m} ⊂ R^d the MIPS value is the support function of K,

    h_K(q) = max_j ⟨q, k_j⟩,                                              (support function)

convex (a maximum of linear functions), positively 1-homogeneous (h_K(λq) = λ h_K(q), λ ≥ 0),
and differentiable wherever the maximizer is unique, with ∇h_K(q) = k*(q), the optimal key.
Two amortized models of it:

* :class:`SupportNet`: a scalar network f_θ ≈ h_K, input-convex by default
  (:class:`otkit.nn.ICNN`); the predicted key is its gradient k̂(q) = ∇_q f_θ(q) (autodiff).
* :class:`KeyNet`: a vector network k̂_θ(q) ≈ k*(q) that regresses the key directly; its score
  is ⟨q, k̂_θ(q)⟩, which equals h_K(q) when k̂ = ∇h_K (Euler's identity for 1-homogeneous
  functions: h(q) = ⟨q, ∇h(q)⟩). Its last layer is linear, with no activation (keys take any
  sign; the public code applies the activation on the output layer too, which we do not).

:class:`Homogenize` makes any network positively homogeneous: f(q) = ‖q‖^p h(q/‖q‖), p = 1 for
a support function, p = 0 for a key map (∇ of a 1-homogeneous function is 0-homogeneous).
It does **not** preserve convexity: the convex h(x) = x₁² becomes x₁²/‖x‖, which is not convex
(on the line x₁ = 1 it is 1/√(1 + x₂²): at the midpoint (1, 0) of (1, −1) and (1, 1) it is 1,
above the mean 1/√2 of the ends). So a homogenized ICNN is 1-homogeneous but not guaranteed
convex (:attr:`SupportNet.convex` says so). A *bias-free* ReLU ICNN is both convex and 1-homogeneous without it.

Parameter budgets (the paper's 0.2·m·d) are met by :func:`width_for_budget`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..nn.icnn import ICNN, icnn_parameter_count
from ..validation import check_choice, check_count

__all__ = ["Homogenize", "SupportNet", "KeyNet", "width_for_budget", "parameter_count", "MODELS"]

#: The two model families.
MODELS = ("support", "key")


class Homogenize(nn.Module):
    """f(q) = ‖q‖^degree · h(q / ‖q‖) for ``h`` any module on ``[n, d]`` (output ``[n]`` or
    ``[n, k]``). Positively ``degree``-homogeneous; not convexity-preserving (module docstring).
    At q = 0 the direction is taken as 0 (h(0) is evaluated) and, for degree 1, the value is 0.
    """

    def __init__(self, net: nn.Module, degree: int = 1) -> None:
        super().__init__()
        if degree not in (0, 1):
            raise ValueError(f"degree must be 0 or 1, got {degree!r}")
        self.net = net
        self.degree = degree

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        norm = q.norm(dim=-1, keepdim=True)
        out = self.net(q / norm.clamp_min(torch.finfo(q.dtype).tiny))
        if self.degree == 0:
            return out
        scale = norm if out.ndim == q.ndim else norm.squeeze(-1)
        return scale * out


def _check_queries(q: torch.Tensor, dim: int) -> None:
    if not isinstance(q, torch.Tensor) or q.ndim != 2 or q.shape[1] != dim:
        shape = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
        raise ValueError(f"q must be a tensor of shape [n, {dim}], got {shape}")
    if not torch.isfinite(q).all():
        raise ValueError("q must be finite (no NaN or inf)")


class SupportNet(nn.Module):
    """f_θ(q) ≈ max_j ⟨q, k_j⟩, with the key k̂(q) = ∇_q f_θ(q).

    Args:
        dim: d. hidden: ICNN widths.
        positivity: ``"softplus"`` / ``"clip"`` (convex) or ``"none"`` (unconstrained).
        homogenize: wrap in :class:`Homogenize` (degree 1).
        activation, bias, generator: passed to :class:`otkit.nn.ICNN` (a bias-free ReLU ICNN
            is convex *and* 1-homogeneous, with no wrapper).
    """

    def __init__(
        self, dim: int, hidden: tuple[int, ...] = (128, 128), *, positivity: str = "softplus",
        homogenize: bool = False, activation: str = "relu", bias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_count("dim", dim)
        self.icnn = ICNN(dim, hidden, positivity=positivity, activation=activation, bias=bias, generator=generator)
        self.f: nn.Module = Homogenize(self.icnn, 1) if homogenize else self.icnn
        self.homogenize = bool(homogenize)

    @property
    def convex(self) -> bool:
        """Whether f is guaranteed convex: an ICNN, not homogenized."""
        return self.icnn.convex and not self.homogenize

    def score(self, q: torch.Tensor) -> torch.Tensor:
        """f_θ(q) ``[n]`` for ``q: [n, d]``."""
        _check_queries(q, self.dim)
        return self.f(q)

    def forward(self, q: torch.Tensor, create_graph: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_θ(q) ``[n]``, ∇f_θ(q) ``[n, d]``). ``create_graph`` (default: grad mode is on)
        keeps the graph of the gradient so a loss on the key can be trained."""
        _check_queries(q, self.dim)
        create_graph = torch.is_grad_enabled() if create_graph is None else create_graph
        with torch.enable_grad():
            x = q.detach().requires_grad_(True)
            value = self.f(x)
            (key,) = torch.autograd.grad(value.sum(), x, create_graph=create_graph)
        if not create_graph:
            value, key = value.detach(), key.detach()
        return value, key

    def key(self, q: torch.Tensor) -> torch.Tensor:
        """k̂(q) = ∇f_θ(q) ``[n, d]`` (no graph kept)."""
        return self.forward(q, create_graph=False)[1]

    def clip_(self) -> "SupportNet":
        self.icnn.clip_()
        return self


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: tuple[int, ...], out: int, generator: torch.Generator | None):
        super().__init__()
        widths = (dim, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], out))  # no activation on the output layer
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):
                    gain = math.sqrt(2.0) if layer is not layers[-1] else 1.0
                    layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * gain / math.sqrt(layer.in_features))
                    layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class KeyNet(nn.Module):
    """k̂_θ(q) ≈ k*(q), an MLP with ReLU hidden layers and a linear output; score ⟨q, k̂_θ(q)⟩.

    ``homogenize=True`` makes k̂ 0-homogeneous, k̂(q) = g(q/‖q‖), so the score is 1-homogeneous.
    """

    def __init__(
        self, dim: int, hidden: tuple[int, ...] = (128, 128), *, homogenize: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_count("dim", dim)
        for h in hidden:
            check_count("hidden", h)
        self.mlp = _MLP(dim, tuple(hidden), dim, generator)
        self.g: nn.Module = Homogenize(self.mlp, 0) if homogenize else self.mlp
        self.homogenize = bool(homogenize)
        self.convex = False

    def forward(self, q: torch.Tensor, create_graph: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(⟨q, k̂(q)⟩ ``[n]``, k̂(q) ``[n, d]``); ``create_graph`` is accepted for symmetry."""
        _check_queries(q, self.dim)
        key = self.g(q)
        return (q * key).sum(-1), key

    def key(self, q: torch.Tensor) -> torch.Tensor:
        return self.forward(q)[1]

    def score(self, q: torch.Tensor) -> torch.Tensor:
        return self.forward(q)[0]

    def clip_(self) -> "KeyNet":
        return self


def parameter_count(model: str, dim: int, hidden: tuple[int, ...]) -> int:
    """Scalars of a ``"support"`` (ICNN) or ``"key"`` (MLP d → hidden → d) model."""
    check_choice("model", model, MODELS)
    if model == "support":
        return icnn_parameter_count(dim, hidden)
    widths = (dim, *hidden, dim)
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def width_for_budget(model: str, dim: int, budget: int, depth: int = 2) -> int:
    """The largest width w with ``parameter_count(model, dim, (w,) * depth) <= budget``."""
    budget = check_count("budget", budget)
    depth = check_count("depth", depth)
    if parameter_count(model, dim, (1,) * depth) > budget:
        raise ValueError(f"budget {budget} is too small for a depth-{depth} {model} model in d = {dim}")
    lo, hi = 1, 1
    while parameter_count(model, dim, (hi,) * depth) <= budget:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if parameter_count(model, dim, (mid,) * depth) <= budget:
            lo = mid
        else:
            hi = mid
    return lo
