r"""Per-pair weights of the flow matching loss.

The flow matching loss of :mod:`otkit.flows.training` averages the per-pair errors
ℓ_k = ‖v_θ(x_t, t_k) − (x₁ − x₀)‖² uniformly. Kim, Hsieh, Klein, Cuturi, Ye, Kawar and Thornton
(2025, "Simple ReFlow", ICLR 2025, Section 4.1) observe that ReFlow's errors differ by orders of
magnitude across t and x_t, so a few pairs dominate the gradient, and weight each term by the
inverse of its own (stopped-gradient) value, w(x_t, t) = 1 / sg[L(θ; x_t, t)]:

.. math::
    L_{\text{norm}}(θ) = \frac1k \sum_k \frac{ℓ_k(θ)}{\mathrm{sg}[ℓ_k(θ)] + δ},
    \qquad ∇_θ L_{\text{norm}} = \frac1k \sum_k \frac{∇_θ ℓ_k}{ℓ_k + δ}
    = ∇_θ \frac1k \sum_k \log(ℓ_k + δ).

Form used here: the paper's L(θ; x_t, t) is the expected error given (x_t, t); we use the
one-pair estimate ℓ_k (for ReFlow's near-deterministic pairs the two agree), and add δ
(default 1e-3, ours, not the paper's) so that pairs fitted exactly do not get infinite weight.
The loss value is then ≈ 1 whatever the scale; the decrease shows in ℓ, not in L_norm.

* :data:`LOSS_WEIGHTINGS` — ``"none"`` (the plain mean) and ``"normalized"`` (the above);
* :func:`per_pair_flow_matching_loss` — the ℓ_k, ``[k]``;
* :func:`weighted_flow_matching_loss` — the scalar loss under a weighting.

Both take ``distance=`` (ℓ_k = d(v_θ, x₁ − x₀) with a per-pair distance of
:mod:`otkit.flows.hpf`: ``"l2"``, the default, or Simple ReFlow's ``"hpf"``) and ``labels=``
(``[k]`` classes for a class-conditional network, :mod:`otkit.flows.guidance`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..validation import check_choice, check_positive
from .hpf import make_distance, squared_l2

__all__ = [
    "LOSS_WEIGHTINGS", "per_pair_flow_matching_loss", "normalize_loss",
    "weighted_flow_matching_loss",
]

LOSS_WEIGHTINGS = ("none", "normalized")


def per_pair_flow_matching_loss(
    model: nn.Module, x0: torch.Tensor, x1: torch.Tensor, t: torch.Tensor, *,
    labels: torch.Tensor | None = None, distance=None,
) -> torch.Tensor:
    """ℓ_k = ‖v_θ(x_t, t_k) − (x₁ − x₀)‖², x_t = (1 − t) x₀ + t x₁, for ``x0, x1: [k, d]``,
    ``t: [k]``; returns ``[k]`` (summed over coordinates). ``distance``: another per-pair
    distance d(v, u) (:func:`otkit.flows.hpf.make_distance`); ``labels``: ``[k]`` classes
    (NULL_LABEL for none) passed to a class-conditional ``model``."""
    if x0.shape != x1.shape or x0.ndim != 2:
        raise ValueError(
            f"x0 and x1 must have the same shape [k, d], got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    if t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape [{x0.shape[0]}], got {tuple(t.shape)}")
    tt = t.unsqueeze(1)
    xt = (1 - tt) * x0 + tt * x1
    prediction = model(xt, t) if labels is None else model(xt, t, labels)
    d = make_distance(distance)
    if d is squared_l2:
        return (prediction - (x1 - x0)).pow(2).sum(1)
    return d(prediction, x1 - x0)


def normalize_loss(per_pair: torch.Tensor, *, delta: float = 1e-3) -> torch.Tensor:
    """``mean_k ℓ_k / (sg[ℓ_k] + δ)`` for ``per_pair: [k]`` ≥ 0 (module docstring)."""
    if per_pair.ndim != 1 or per_pair.numel() == 0:
        raise ValueError(f"per_pair must be a non-empty [k] tensor, got shape {tuple(per_pair.shape)}")
    delta = check_positive("delta", delta)
    return (per_pair / (per_pair.detach() + delta)).mean()


def weighted_flow_matching_loss(
    model: nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor,
    *,
    weighting: str = "none",
    delta: float = 1e-3,
    labels: torch.Tensor | None = None,
    distance=None,
) -> torch.Tensor:
    """The flow matching loss over pairs ``x0, x1: [k, d]`` at times ``t: [k]`` (a 0-d tensor):
    ``"none"``: mean_k ℓ_k (= :func:`~otkit.flows.flow_matching_loss`); ``"normalized"``:
    :func:`normalize_loss`. ``labels``, ``distance``: as :func:`per_pair_flow_matching_loss`."""
    check_choice("weighting", weighting, LOSS_WEIGHTINGS)
    per_pair = per_pair_flow_matching_loss(model, x0, x1, t, labels=labels, distance=distance)
    if weighting == "none":
        return per_pair.mean()
    return normalize_loss(per_pair, delta=delta)
