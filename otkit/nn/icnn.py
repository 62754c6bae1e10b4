"""Input-convex neural networks (ICNNs): scalar networks f(x) that are convex in x.

Amos, Xu and Kolter (2017), "Input Convex Neural Networks", the fully input-convex form with
input re-injection (skip connections from x to every layer):

    z_1     = σ(A_0 x + b_0),
    z_{l+1} = σ(W_l z_l + A_l x + b_l),          l = 1 .. L−1,
    f(x)    = w_L z_L + a_L x + b_L,

is convex in x when every W_l (and w_L) is entrywise non-negative and σ is convex and
non-decreasing: a non-negative sum of convex functions is convex, and a convex non-decreasing
function of a convex function is convex. The re-injection matrices A_l are free.

Non-negativity is kept one of two ways (``positivity``):

* ``"softplus"``: W = softplus(V) with V free (a reparametrization; gradients never vanish);
* ``"clip"``: W = max(V, 0) in the forward pass, and :meth:`ICNN.clip_` projects V onto the
  non-negative orthant after each optimizer step (the projected-gradient convention);
* ``"none"``: W = V, no constraint: the same architecture *without* a convexity guarantee, the
  unconstrained baseline of the experiments.

Initialization (Hoedt and Klambauer 2023, "Principled Weight Initialisation for Input-Convex
Neural Networks", NeurIPS): centred initializations are wrong for non-negative weights, whose
mean shifts every pre-activation. Following their recipe, W_l is drawn from a log-normal with a
chosen mean μ and variance s², and the bias b_l cancels the mean that the non-negative weights
add. The variance balance here is a simplification of theirs (stated, not theirs): the units of
z_l are ReLU outputs of unit-variance centred pre-activations, E[z] = 1/√(2π), E[z²] = ½,
Var[z] = ½ − 1/(2π), with a common correlation c = ½ between units (non-negative weights make
units positively correlated, the effect Hoedt and Klambauer track; ignoring it makes the output
variance grow with the width). With fan-in n, a coefficient of variation 1 (s = μ) and

    Var[Σ_i W_i z_i] = n s² E[z²] + n μ² Var[z] (1 + (n − 1) c) = 1,

μ² = 1 / (n(½ + Var[z](1 + (n − 1)c))), and b = −n μ E[z] centres the pre-activation. The
re-injection matrices use a centred N(0, 1/d) (LeCun) draw, as do the free weights of ``"none"``.

Shapes: x ``[n, d]`` → f(x) ``[n]``; with ``out`` = C > 1 outputs, ``[n, C]``: C convex
functions sharing the hidden layers (the last layer's w_L, a_L, b_L get C rows; each output is
a non-negative combination of the same convex units plus an affine term, so each is convex).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..validation import check_choice, check_count

__all__ = ["ICNN", "POSITIVITY", "ACTIVATIONS", "icnn_parameter_count", "lognormal_moments"]

#: How the hidden-to-hidden weights are kept non-negative.
POSITIVITY = ("softplus", "clip", "none")
#: Convex, non-decreasing activations.
ACTIVATIONS = ("relu", "softplus")
#: The correlation between hidden units assumed by the initialization's variance balance.
_CORRELATION = 0.5


def lognormal_moments(mean: float, var: float) -> tuple[float, float]:
    """(μ_log, σ_log) of a log-normal with the given ``mean`` > 0 and ``var`` ≥ 0:
    σ_log² = log(1 + var/mean²), μ_log = log(mean) − σ_log²/2."""
    if mean <= 0:
        raise ValueError(f"mean must be > 0, got {mean}")
    if var < 0:
        raise ValueError(f"var must be >= 0, got {var}")
    s2 = math.log1p(var / mean**2)
    return math.log(mean) - s2 / 2, math.sqrt(s2)


def _inverse_softplus(w: torch.Tensor) -> torch.Tensor:
    """V with softplus(V) = w, for w > 0 (stable for large w)."""
    return torch.where(w > 20, w, torch.log(torch.expm1(w.clamp_min(1e-12))))


def icnn_parameter_count(dim: int, hidden: Sequence[int], out: int = 1) -> int:
    """The number of scalars of ``ICNN(dim, hidden, out=out)`` (every A_l, W_l, bias and the output)."""
    out = check_count("out", out)
    dim = check_count("dim", dim)
    widths = [check_count("hidden", h) for h in hidden]
    if not widths:
        raise ValueError("hidden must hold at least one width")
    total = dim * widths[0] + widths[0]  # A_0, b_0
    for prev, width in zip(widths[:-1], widths[1:]):
        total += prev * width + dim * width + width  # W_l, A_l, b_l
    return total + out * (widths[-1] + dim + 1)  # w_L, a_L, b_L


class ICNN(nn.Module):
    """A fully input-convex network f: R^d → R (see the module docstring).

    Args:
        dim: input dimension d.
        hidden: widths of the hidden layers, e.g. ``(128, 128)``.
        positivity: ``"softplus"``, ``"clip"`` (convex) or ``"none"`` (unconstrained baseline).
        activation: ``"relu"`` (piecewise linear, so ∇f is piecewise constant, like the gradient
            of a support function) or ``"softplus"`` (smooth).
        bias: whether the layers have biases. A bias-free ReLU ICNN is positively 1-homogeneous,
            f(λx) = λ f(x) for λ ≥ 0, on top of convex.
        generator: randomness of the initialization.
        out: the number of convex outputs C (1: f(x) has shape ``[n]``; C > 1: ``[n, C]``).
    """

    def __init__(
        self,
        dim: int,
        hidden: Sequence[int] = (128, 128),
        *,
        positivity: str = "softplus",
        activation: str = "relu",
        bias: bool = True,
        generator: torch.Generator | None = None,
        out: int = 1,
    ) -> None:
        super().__init__()
        self.dim = check_count("dim", dim)
        self.out = check_count("out", out)
        self.hidden = tuple(check_count("hidden", h) for h in hidden)
        if not self.hidden:
            raise ValueError("hidden must hold at least one width, e.g. (128, 128)")
        self.positivity = check_choice("positivity", positivity, POSITIVITY)
        self.activation = check_choice("activation", activation, ACTIVATIONS)
        self.use_bias = bool(bias)
        widths = self.hidden
        self.inputs = nn.ParameterList(
            [nn.Parameter(torch.empty(w, self.dim)) for w in widths] + [nn.Parameter(torch.empty(self.out, self.dim))]
        )
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(w, p)) for p, w in zip(widths[:-1], widths[1:])]
            + [nn.Parameter(torch.empty(self.out, widths[-1]))]
        )
        self.biases = nn.ParameterList(
            [nn.Parameter(torch.zeros(w)) for w in widths] + [nn.Parameter(torch.zeros(self.out))]
        ) if self.use_bias else nn.ParameterList()
        self.reset_parameters(generator)

    # ------------------------------------------------------------------ initialization

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The Hoedt–Klambauer-style initialization of the module docstring."""
        for a in self.inputs:
            a.copy_(torch.randn(a.shape, generator=generator) / math.sqrt(self.dim))
        mean_z = 1.0 / math.sqrt(2 * math.pi)
        for index, w in enumerate(self.weights):
            fan_in = w.shape[1]
            if self.positivity == "none":
                w.copy_(torch.randn(w.shape, generator=generator) / math.sqrt(fan_in))
                continue
            var_z = 0.5 - 1.0 / (2 * math.pi)
            mu = 1.0 / math.sqrt(fan_in * (0.5 + var_z * (1 + (fan_in - 1) * _CORRELATION)))
            mu_log, sigma_log = lognormal_moments(mu, mu**2)
            value = torch.exp(mu_log + sigma_log * torch.randn(w.shape, generator=generator))
            w.copy_(_inverse_softplus(value) if self.positivity == "softplus" else value)
            if self.use_bias:  # cancel the mean the non-negative weights add
                self.biases[index + 1].fill_(-fan_in * mu * mean_z)

    # ------------------------------------------------------------------ weights

    def hidden_weight(self, index: int) -> torch.Tensor:
        """The effective (non-negative unless ``"none"``) weight W_index, ``[out, in]``."""
        v = self.weights[index]
        if self.positivity == "softplus":
            return F.softplus(v)
        if self.positivity == "clip":
            return v.clamp_min(0.0)
        return v

    @torch.no_grad()
    def clip_(self) -> "ICNN":
        """Project the ``"clip"`` weights onto W ≥ 0 in place (call after each optimizer step);
        a no-op for the other parametrizations."""
        if self.positivity == "clip":
            for v in self.weights:
                v.clamp_(min=0.0)
        return self

    @property
    def convex(self) -> bool:
        """Whether f is guaranteed convex in x (every parametrization but ``"none"``)."""
        return self.positivity != "none"

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(h) if self.activation == "relu" else F.softplus(h)

    # ------------------------------------------------------------------ forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) ``[n]`` (``[n, out]`` when out > 1) for ``x: [n, d]``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [n, {self.dim}], got {tuple(x.shape)}")
        def bias(i: int) -> torch.Tensor | None:
            return self.biases[i] if self.use_bias else None
        z = self._act(F.linear(x, self.inputs[0], bias(0)))
        for i in range(len(self.hidden) - 1):
            h = F.linear(z, self.hidden_weight(i)) + F.linear(x, self.inputs[i + 1], bias(i + 1))
            z = self._act(h)
        last = len(self.hidden)
        out = F.linear(z, self.hidden_weight(last - 1)) + F.linear(x, self.inputs[last], bias(last))
        return out.squeeze(1) if self.out == 1 else out
