"""Nectar's regressors: per layer and head, a score network ẑ(q) ≈ log Z(q) and a target
network ô(q) ≈ o(q), fitted on queries of the context's question prompts.

Monteiro, Klein, Ablin, Cuturi (2026), "Nectar: neural estimation of cached-token attention via
regression". For a fixed context, layer l and head h, the pair (log Z, o) of
:mod:`otkit.nectar.attention` is a function of the query alone; Nectar fits

    min_θ  E_q [ (ẑ_θ(q) − log Z(q))² / σ_z² + ‖ô_θ(q) − o(q)‖² / σ_o² ]

over queries q from prompts about the context (σ the targets' standard deviations, so both terms
weigh alike), and answers every later query through eq. merge at a cost independent of n.

Both networks are one-hidden-layer MLPs x ↦ W₂ GELU(W₁ x̃ + b₁) + b₂ on the standardized query
x̃; :class:`HeadMLPs` holds G = L·H of them as batched tensors (one Adam loop fits all heads at
once) with a hidden width per group (a mask switches off the units beyond a group's width, so a
layer's capacity can differ from another's). Memory is counted as a cache is: a head's
parameters P ≙ P / (2 d_head) cached tokens (a token costs its key and value).

log Z is convex in q (a log-sum-exp of linear functions): :func:`fit_icnn_log_z` fits it with
the input-convex network :class:`otkit.nn.icnn.ICNN` instead (an affine standardization of q and
a positive scale of the output keep it convex).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.icnn import ICNN
from ..validation import check_count, check_positive

__all__ = ["HeadMLPs", "Nectar", "fit_nectar", "fit_icnn_log_z", "nectar_tokens",
           "width_for_tokens"]


def nectar_tokens(width: int, d_head: int) -> float:
    """Cached tokens per head that the two networks of hidden width ``width`` cost:
    (w(d + 1) + w + 1 + w(d + 1) + w d + d) / (2d)."""
    params = width * (d_head + 1) + width + 1 + width * (d_head + 1) + width * d_head + d_head
    return params / (2 * d_head)


def width_for_tokens(tokens: float, d_head: int) -> int:
    """The largest width whose networks cost at most ``tokens`` cached tokens (at least 1)."""
    per = (3 * d_head + 3) / (2 * d_head)
    return max(1, int(math.floor((tokens - (d_head + 1) / (2 * d_head)) / per)))


class HeadMLPs(nn.Module):
    """G one-hidden-layer MLPs ``[G, N, d_in] → [G, N, d_out]`` with widths ``widths[g]``."""

    def __init__(self, widths: Sequence[int], d_in: int, d_out: int, *,
                 generator: torch.Generator | None = None):
        super().__init__()
        widths = [check_count("widths", w) for w in widths]
        if not widths:
            raise ValueError("widths must name one width per group")
        g, w = len(widths), max(widths)
        self.w1 = nn.Parameter(torch.randn(g, d_in, w, generator=generator) / math.sqrt(d_in))
        self.b1 = nn.Parameter(torch.zeros(g, 1, w))
        self.w2 = nn.Parameter(torch.randn(g, w, d_out, generator=generator) / math.sqrt(w) * 0.1)
        self.b2 = nn.Parameter(torch.zeros(g, 1, d_out))
        mask = torch.arange(w).unsqueeze(0) < torch.tensor(widths).unsqueeze(1)
        self.register_buffer("mask", mask.float().unsqueeze(1))             # [G, 1, w]
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (F.gelu(x @ self.w1 + self.b1) * self.mask) @ self.w2 + self.b2


@dataclass(frozen=True, eq=False)
class Nectar:
    """Fitted score and target networks for every layer and head, as per-layer summaries.

    ``score`` maps standardized queries to standardized log Z, ``target`` to standardized o;
    the statistics are ``[G, 1, ·]`` tensors (G = L·H, layer-major)."""

    score: HeadMLPs
    target: HeadMLPs
    q_mean: torch.Tensor
    q_std: torch.Tensor
    z_mean: torch.Tensor
    z_std: torch.Tensor
    o_mean: torch.Tensor
    o_std: torch.Tensor
    n_layers: int
    n_heads: int
    d_head: int

    @torch.no_grad()
    def predict(self, layer: int, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ẑ [B, H, T], ô [B, H, T, d])`` for layer ``layer``'s queries ``[B, H, T, d]``."""
        b, h, t, d = q.shape
        sl = slice(layer * self.n_heads, (layer + 1) * self.n_heads)
        x = q.transpose(0, 1).reshape(h, b * t, d)
        z_all, o_all = self._raw(x, sl)
        return (z_all.reshape(h, b, t).transpose(0, 1),
                o_all.reshape(h, b, t, d).transpose(0, 1))

    def _raw(self, x: torch.Tensor, sl: slice) -> tuple[torch.Tensor, torch.Tensor]:
        xs = (x - self.q_mean[sl]) / self.q_std[sl]
        z = _slice_forward(self.score, xs, sl) * self.z_std[sl] + self.z_mean[sl]
        o = _slice_forward(self.target, xs, sl) * self.o_std[sl] + self.o_mean[sl]
        return z.squeeze(-1), o

    def summaries(self) -> list:
        """One :data:`otkit.nectar.attention.Summary` per layer."""
        return [lambda q, layer=layer: self.predict(layer, q) for layer in range(self.n_layers)]

    def widths(self) -> tuple[int, ...]:
        """The hidden width of each layer."""
        return tuple(self.score.widths[layer * self.n_heads] for layer in range(self.n_layers))

    def tokens(self) -> tuple[float, ...]:
        """Memory per head of each layer, in cached tokens (:func:`nectar_tokens`)."""
        return tuple(nectar_tokens(w, self.d_head) for w in self.widths())


def _slice_forward(net: HeadMLPs, x: torch.Tensor, sl: slice) -> torch.Tensor:
    h = F.gelu(x @ net.w1[sl] + net.b1[sl]) * net.mask[sl]
    return h @ net.w2[sl] + net.b2[sl]


def fit_nectar(
    queries: Sequence[torch.Tensor],
    log_z: Sequence[torch.Tensor],
    o: Sequence[torch.Tensor],
    widths: Sequence[int],
    *,
    steps: int = 400,
    lr: float = 1e-2,
    seed: int = 0,
) -> Nectar:
    """Fit Nectar's networks for every layer and head at once.

    Args:
        queries: per layer ``[H, N, d]`` training queries; log_z: per layer ``[H, N]``;
            o: per layer ``[H, N, d]`` (the exact targets of
            :func:`otkit.nectar.attention.cache_targets`).
        widths: the hidden width of each layer (both networks).
        steps, lr: full-batch Adam with a cosine decay to lr/10.
        seed: the initialization's.
    """
    n_layers = len(queries)
    if not (n_layers == len(log_z) == len(o) == len(widths)) or n_layers == 0:
        raise ValueError("queries, log_z, o and widths must each hold one entry per layer")
    steps = check_count("steps", steps)
    lr = check_positive("lr", lr)
    heads, _, d = queries[0].shape
    x = torch.cat([q.detach() for q in queries])                        # [G, N, d]
    z = torch.cat([t.detach() for t in log_z]).unsqueeze(-1)            # [G, N, 1]
    y = torch.cat([t.detach() for t in o])                              # [G, N, d]
    stats = []
    for t in (x, z, y):
        mean = t.mean(1, keepdim=True)
        std = t.std(1, keepdim=True) if t is x else (t - mean).pow(2).mean((1, 2), keepdim=True).sqrt()
        stats += [mean, std.clamp_min(1e-6)]
    q_mean, q_std, z_mean, z_std, o_mean, o_std = stats
    xs, zs, ys = (x - q_mean) / q_std, (z - z_mean) / z_std, (y - o_mean) / o_std
    g = torch.Generator().manual_seed(int(seed))
    per_group = [w for w in widths for _ in range(heads)]
    score, target = HeadMLPs(per_group, d, 1, generator=g), HeadMLPs(per_group, d, d, generator=g)
    params = list(score.parameters()) + list(target.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 10)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = ((score(xs) - zs) ** 2).mean() + ((target(xs) - ys) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step()
    for p in params:
        p.requires_grad_(False)
    return Nectar(score, target, q_mean, q_std, z_mean, z_std, o_mean, o_std, n_layers, heads, d)


def fit_icnn_log_z(q: torch.Tensor, log_z: torch.Tensor, *, hidden: Sequence[int] = (32,),
                   steps: int = 400, lr: float = 1e-2, seed: int = 0):
    """An :class:`~otkit.nn.icnn.ICNN` ẑ(q) ≈ log Z(q) for one head (``q: [N, d]``,
    ``log_z: [N]``); returns ``predict(q [M, d]) → [M]``, convex in q."""
    if q.ndim != 2 or log_z.shape != q.shape[:1]:
        raise ValueError(f"q must be [N, d] and log_z [N], got {tuple(q.shape)} and "
                         f"{tuple(log_z.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    net = ICNN(q.shape[1], hidden, generator=g)
    mean, std = q.mean(0), q.std(0).clamp_min(1e-6)
    z_mean, z_std = log_z.mean(), log_z.std().clamp_min(1e-6)
    xs, zs = (q - mean) / std, (log_z - z_mean) / z_std
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 10)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            ((net(xs) - zs) ** 2).mean().backward()
            opt.step()
            sched.step()

    @torch.no_grad()
    def predict(x: torch.Tensor) -> torch.Tensor:
        return net((x - mean) / std) * z_std + z_mean

    predict.net = net
    return predict
