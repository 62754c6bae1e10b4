"""Training amortized MIPS models on exact targets.

Each step draws a fresh batch of queries q ~ the query distribution, computes the exact MIPS
targets j*(q) = argmax_j ⟨q, k_j⟩ blockwise (:func:`otkit.amips.search.mips`, i.e.
:func:`otkit.semidiscrete.assign` with the cost −⟨x, y⟩), k* = k_{j*} and h_K(q) = ⟨q, k*⟩, and
takes an Adam step on (Olausson et al. 2026)

    L(θ) = w_s · mean_i (s_θ(q_i) − ⟨q_i, k*_i⟩)² + w_k · mean_i ‖k̂_θ(q_i) − k*_i‖²,

where (s_θ, k̂_θ) = (f_θ, ∇f_θ) for a :class:`~otkit.amips.models.SupportNet` and
(⟨q, k̂_θ(q)⟩, k̂_θ) for a :class:`~otkit.amips.models.KeyNet` (the Euler score). The paper's
weights are w_s = 0.01, w_k = 1; w_s = 0 drops the score term. The learning rate follows a
cosine decay to 0; ``"clip"`` ICNN weights are projected after every step.

Soft targets (``epsilon`` > 0, the widget's sharpness knob): the smoothed support function
h_ε(q) = ε log Σ_j exp(⟨q, k_j⟩/ε) replaces h_K, and its gradient, the softmax average
Σ_j π_j(q) k_j with π ∝ exp(⟨q, k_j⟩/ε), replaces k*; ε → 0 gives the hard targets back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..validation import check_count, check_generator, check_positive
from .search import mips

__all__ = ["FitResult", "fit", "amips_loss", "targets"]

Sampler = Callable[[int, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class FitResult:
    """``losses: [steps]`` minibatch losses, ``seconds`` of training, ``steps`` done."""

    losses: torch.Tensor
    seconds: float
    steps: int


def targets(q: torch.Tensor, keys: torch.Tensor, epsilon: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(score ``[B]``, key ``[B, d]``) targets of ``q: [B, d]``: (⟨q, k*⟩, k*) at ε = 0 (exact
    blockwise MIPS), (h_ε(q), ∇h_ε(q)) at ε > 0 (dense softmax over the m keys)."""
    if epsilon < 0 or not math.isfinite(epsilon):
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if epsilon == 0:
        k_star = keys[mips(q, keys)]
        return (q * k_star).sum(1), k_star
    logits = q @ keys.T / epsilon
    return epsilon * torch.logsumexp(logits, 1), torch.softmax(logits, 1) @ keys


def amips_loss(
    model: nn.Module, q: torch.Tensor, score_target: torch.Tensor, key_target: torch.Tensor, *,
    w_s: float = 0.01, w_k: float = 1.0,
) -> torch.Tensor:
    """The loss above on one batch ``q: [B, d]`` with targets ``[B]`` and ``[B, d]``."""
    score, key = model(q, create_graph=True)
    loss = w_k * ((key - key_target) ** 2).sum(1).mean()
    if w_s > 0:
        loss = loss + w_s * ((score - score_target) ** 2).mean()
    return loss


def fit(
    model: nn.Module,
    keys: torch.Tensor,
    sampler: Sampler,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    w_s: float = 0.01,
    w_k: float = 1.0,
    epsilon: float = 0.0,
    generator: torch.Generator | None = None,
) -> FitResult:
    """Train ``model`` in place on queries from ``sampler(n, generator) -> [n, d]`` (hard
    targets, or soft ones at ``epsilon`` > 0)."""
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size)
    lr = check_positive("lr", lr)
    if w_s < 0 or not math.isfinite(w_s):
        raise ValueError(f"w_s must be >= 0, got {w_s}")
    w_k = check_positive("w_k", w_k)
    if epsilon < 0 or not math.isfinite(epsilon):
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    if keys.ndim != 2 or keys.shape[1] != model.dim:
        raise ValueError(f"keys must have shape [m, {model.dim}], got {tuple(keys.shape)}")
    generator = check_generator(generator) if generator is not None else torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    losses = torch.empty(steps)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        q = sampler(batch_size, generator).to(keys)
        with torch.no_grad():
            score_target, key_target = targets(q, keys, epsilon)
        loss = amips_loss(model, q, score_target, key_target, w_s=w_s, w_k=w_k)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        model.clip_()
        losses[step] = loss.detach()
    model.eval()
    return FitResult(losses, time.perf_counter() - start, steps)
