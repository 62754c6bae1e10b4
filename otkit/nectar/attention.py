"""Attention over a cache as two functions of the query, and its exact merge with live tokens.

Nectar (Monteiro, Klein, Ablin, Cuturi 2026, "Nectar: neural estimation of cached-token
attention via regression"). For one layer and head, a fixed context leaves a cache of keys and
values ``k: [n, d]``, ``v: [n, d]`` (d = d_head). A query ``q: [d]`` reads it through

    log Z(q) = log Σ_i w_i exp(⟨q, k_i⟩/√d)                       (the cache's log-partition)
    o(q)     = Σ_i w_i exp(⟨q, k_i⟩/√d − log Z(q)) v_i            (its attention output)

with log-weights log w_i = 0 for a plain cache (a compressed cache gives its entries weights:
log(n/m) for m random keys, log(count) for a k-means centroid). log Z is the entropic
c-transform of the cache (a smoothed support function of the keys, convex in q) and o its
barycentric projection of the values. Live tokens (the prompt's own, positions after the cache)
with scores s_j = ⟨q, k_j⟩/√d ≤ causal and values v_j merge exactly:

    Attn(q) = (e^{log Z(q)} o(q) + Σ_j e^{s_j} v_j) / (e^{log Z(q)} + Σ_j e^{s_j})     (eq. merge)

so any estimate (ẑ(q), ô(q)) of the pair replaces the cache at a cost per query independent of
n. :func:`cache_targets` computes the pair exactly in blocks of keys (a streaming log-sum-exp,
:func:`otkit.kernels.row_lse` per block); :func:`merge_attention` is eq. merge;
:func:`forward_live` runs a :class:`~otkit.nn.transformer.Transformer` on live tokens with each
layer's cache replaced by a *summary* ``(q: [B, H, T, d]) → (log Z [B, H, T], o [B, H, T, d])``;
:func:`context_cache` reads the per-layer, per-head keys and values of a context (recomputed from
each block's weights and input, the residual stream of :func:`~otkit.nn.transformer.residual_stream`);
:class:`WeightedCache` is a (compressed) cache as a summary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..kernels import row_lse
from ..nn.transformer import Transformer, TransformerBlock, residual_stream

__all__ = ["Summary", "head_qkv", "cache_targets", "merge_attention", "context_cache",
           "forward_live", "WeightedCache", "LayerCache"]

#: A layer's cache summary: queries ``[B, H, T, d]`` → ``(log Z [B, H, T], o [B, H, T, d])``.
Summary = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def head_qkv(block: TransformerBlock, h: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-head queries, keys and values of ``block`` for its input ``h: [B, T, d_model]``
    (the residual stream before the block): ``(q, k, v)``, each ``[B, H, T, d_head]``, as
    :class:`~otkit.nn.transformer.CausalSelfAttention` computes them from LN₁(h)."""
    if not isinstance(block, TransformerBlock):
        raise TypeError(f"block must be a TransformerBlock, got {type(block).__name__}")
    if h.ndim != 3:
        raise ValueError(f"h must be [B, T, d_model], got shape {tuple(h.shape)}")
    b, t, d = h.shape
    heads = block.attn.n_heads
    q, k, v = block.attn.qkv(block.ln1(h)).split(d, dim=-1)
    return tuple(z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))


def cache_targets(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_w: torch.Tensor | None = None,
    *,
    block: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact ``(log Z(q), o(q))`` of the module docstring over a cache, in blocks of keys.

    Args:
        q: ``[..., m, d]`` queries; k, v: ``[..., n, d]`` the cache (leading dims broadcast).
        log_w: ``[..., n]`` log-weights of the cache entries (None: all 0).
        block: keys per block; each block's log-sum-exp is :func:`otkit.kernels.row_lse` and
            the blocks are merged by a running maximum (memory ``[..., m, block]``, any n).

    Returns:
        ``(log_z [..., m], o [..., m, d])``.
    """
    if q.shape[-1] != k.shape[-1] or k.shape[:-1] != v.shape[:-1]:
        raise ValueError(f"q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} must "
                         "be [..., m, d], [..., n, d], [..., n, d_v]")
    if k.shape[-2] == 0:
        raise ValueError("k is an empty cache (n = 0)")
    if log_w is not None and log_w.shape != k.shape[:-1]:
        raise ValueError(f"log_w must have shape {tuple(k.shape[:-1])}, got {tuple(log_w.shape)}")
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    scale = 1.0 / math.sqrt(q.shape[-1])
    log_z = o = None
    for start in range(0, k.shape[-2], block):
        kb, vb = k[..., start:start + block, :], v[..., start:start + block, :]
        s = q @ kb.transpose(-1, -2)                                           # [..., m, b]
        if log_w is None:  # one row_lse pass over all rows of the block
            hb = torch.zeros(s.shape[-1], dtype=s.dtype, device=s.device)
            lse = row_lse(-s.reshape(-1, s.shape[-1]), hb, scale).reshape(s.shape[:-1])
        else:
            hb = log_w[..., start:start + block].unsqueeze(-2)
            lse = torch.logsumexp(s * scale + hb, dim=-1)
        ob = torch.softmax(s * scale + hb, dim=-1) @ vb                       # [..., m, d]
        if log_z is None:
            log_z, o = lse, ob
        else:
            new = torch.logaddexp(log_z, lse)
            o = torch.exp(log_z - new).unsqueeze(-1) * o + torch.exp(lse - new).unsqueeze(-1) * ob
            log_z = new
    return log_z, o


def merge_attention(log_z: torch.Tensor, o: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                    v: torch.Tensor) -> torch.Tensor:
    """Eq. merge: the cache's ``(log_z [B, H, T], o [B, H, T, d])`` with the live tokens'
    causal attention (``q, k, v: [B, H, T, d]``, position t reads live positions ≤ t).
    Returns ``[B, H, T, d]``."""
    t = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])                      # [B, H, T, T]
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    s = s.masked_fill(~mask, float("-inf"))
    scores = torch.cat([log_z.unsqueeze(-1), s], dim=-1)                        # [B, H, T, 1+T]
    p = torch.softmax(scores, dim=-1)
    return p[..., :1] * o + p[..., 1:] @ v


@dataclass(frozen=True)
class LayerCache:
    """One layer's exact cache of a context: ``k, v: [B, H, n, d_head]``."""

    k: torch.Tensor
    v: torch.Tensor

    @property
    def n(self) -> int:
        return self.k.shape[-2]


@torch.no_grad()
def context_cache(model: Transformer, context: torch.Tensor) -> list[LayerCache]:
    """The keys and values every layer and head caches for ``context: [B, n]`` token ids: one
    :class:`LayerCache` per block, recomputed by :func:`head_qkv` from the block's input in the
    residual stream (the model's own forward pass, hooks only; the model is not modified)."""
    stream, _ = residual_stream(model, context)
    out = []
    for layer, block in enumerate(model.blocks):
        _, k, v = head_qkv(block, stream[layer])
        out.append(LayerCache(k, v))
    return out


@dataclass(frozen=True)
class WeightedCache:
    """A cache with log-weights as a :data:`Summary` (exact over its entries).

    ``k, v: [B or 1, H, m, d]``, ``log_w: [B or 1, H, m]`` or None."""

    k: torch.Tensor
    v: torch.Tensor
    log_w: torch.Tensor | None = None

    def __call__(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cache_targets(q, self.k, self.v, self.log_w)

    @property
    def size(self) -> int:
        """m, the entries kept per head."""
        return self.k.shape[-2]


def forward_live(
    model: Transformer,
    live: torch.Tensor,
    start: int,
    summaries: Sequence[Summary],
    *,
    record: list | None = None,
) -> torch.Tensor:
    """Logits ``[B, T, V]`` of the live tokens ``live: [B, T]`` at positions start … start+T−1,
    each layer's cache replaced by ``summaries[layer]`` (eq. merge).

    With exact summaries (a :class:`WeightedCache` of :func:`context_cache`) this is the
    model's own forward pass on context + live tokens, restricted to the live positions.
    ``record``, if given, receives one ``(q, k, v, log_z, o)`` per layer (the live tokens'
    ``[B, H, T, d]`` queries, keys and values, and the summary's ``[B, H, T]`` and
    ``[B, H, T, d]``).
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a Transformer, got {type(model).__name__}")
    if len(summaries) != len(model.blocks):
        raise ValueError(f"summaries must hold one summary per layer ({len(model.blocks)}), "
                         f"got {len(summaries)}")
    live = model.check_ids(live)
    b, t = live.shape
    if start < 0 or start + t > model.config.max_len:
        raise ValueError(f"start={start} with {t} live tokens exceeds max_len="
                         f"{model.config.max_len}")
    positions = torch.arange(start, start + t, device=live.device)
    h = model.embedding.token(live) + model.embedding.position(positions)
    for block, summary in zip(model.blocks, summaries):
        q, k, v = head_qkv(block, h)
        log_z, o = summary(q)
        if record is not None:
            record.append((q, k, v, log_z, o))
        y = merge_attention(log_z, o, q, k, v).transpose(1, 2).reshape(b, t, -1)
        h = h + block.attn.out(y)
        h = h + block.mlp(block.ln2(h))
    return model.unembed(model.ln_f(h))
