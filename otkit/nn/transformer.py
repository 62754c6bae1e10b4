"""A small, readable decoder-only transformer (GPT-2's layout) to train from scratch in minutes.

The lab's model for papers that study language models when no pretrained one can be loaded
(Radford et al. 2019, "Language models are unsupervised multitask learners"; Vaswani et al.
2017 for attention). For token ids ``x: [B, T]``:

    h⁰ = E[x] + P[0..T−1]                                   (token + learned position embeddings)
    hˡ = hˡ⁻¹ + Attn(LN₁(hˡ⁻¹)),  hˡ ← hˡ + MLP(LN₂(hˡ))     (pre-LN block l = 1..L)
    logits = LN_f(hᴸ) Uᵀ                                     (U = E when tied)

Attention is causal multi-head self-attention, softmax(QKᵀ / √d_head + M) V with M = −∞ above
the diagonal (:func:`torch.nn.functional.scaled_dot_product_attention`), so position t only
reads positions ≤ t. The MLP is Linear(d_model, d_mlp) → GELU (tanh approximation, as GPT-2)
→ Linear(d_mlp, d_model). With these choices a :class:`Transformer` computes exactly what
Hugging Face's ``GPT2LMHeadModel`` computes with the same weights (the tests check this).

Hook points (module names, for :mod:`otkit.nn.hooks` and :mod:`otkit.steering`): ``"embedding"``
(h⁰) and ``"blocks.0"`` … ``"blocks.{L−1}"`` (h¹ … hᴸ), each returning the residual stream
``[B, T, d_model]``. :func:`residual_stream` records all L + 1 of them in one pass.
:func:`param_groups` splits the parameters into embeddings / attention / mlp / norms /
unembedding so that each can get its own learning rate and weight decay.

Options for width/depth parameterizations (:mod:`otkit.nn.parameterization`; their defaults
give GPT-2's model above, bit for bit, and no extra parameters):

* ``residual_multiplier`` r: hˡ = hˡ⁻¹ + r·Attn(LN₁(hˡ⁻¹)), hˡ ← hˡ + r·MLP(LN₂(hˡ)) (depth-μP
  r = L^(−½), CompleteP r = L^(−1): Bordelon et al. 2023; Dey et al. 2025).
* ``logit_multiplier`` c: logits = c · LN_f(hᴸ) Uᵀ (μP's 1/m_N on the readout: Yang et al. 2022).
* ``attention_scale``: softmax(QKᵀ·s) with s = 1/√d_head (``"1/sqrt(d_head)"``, Vaswani et al.)
  or s = 1/d_head (``"1/d_head"``, μP's, Yang et al. 2022, §J.2.1).
* ``qk_norm``: Q and K go through a LayerNorm over each head's d_head channels (learned gain and
  bias shared by the heads of a block) before the dot product, Q̂ = LN_q(Q), K̂ = LN_k(K)
  (Dehghani et al. 2023, "Scaling vision transformers to 22 billion parameters"; the QK-norm
  of Mlodozeniec et al. 2025).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_choice, check_count, check_positive
from .hooks import rewrite_outputs

__all__ = [
    "TransformerConfig",
    "Transformer",
    "CausalSelfAttention",
    "TransformerBlock",
    "residual_stream",
    "param_groups",
    "PARAM_GROUPS",
    "ATTENTION_SCALES",
]

#: The parameter groups of :func:`param_groups`, in order.
PARAM_GROUPS = ("embeddings", "attention", "mlp", "norms", "unembedding")
#: The attention logit scales s of ``softmax(QKᵀ·s)``: 1/√d_head (GPT-2) or 1/d_head (μP).
ATTENTION_SCALES = ("1/sqrt(d_head)", "1/d_head")


@dataclass(frozen=True)
class TransformerConfig:
    """Sizes of a :class:`Transformer`.

    Attributes:
        vocab_size: V, the number of token ids.
        d_model: width of the residual stream; a multiple of ``n_heads``.
        n_layers: L, the number of blocks.
        n_heads: attention heads per block (d_head = d_model / n_heads).
        d_mlp: hidden width of each MLP (4 · d_model in GPT-2).
        max_len: the longest sequence (number of learned positions).
        dropout: dropout rate on embeddings, attention weights and block outputs (0 = none).
        tied: unembedding U = token embedding E (GPT-2) or its own matrix.
        residual_multiplier: r > 0 on every residual branch, h ← h + r·F(h) (1: GPT-2).
        logit_multiplier: c > 0 on the logits, c · LN_f(hᴸ) Uᵀ (1: GPT-2).
        attention_scale: one of :data:`ATTENTION_SCALES` (``"1/sqrt(d_head)"``: GPT-2).
        qk_norm: LayerNorm Q and K over each head's channels before QKᵀ (False: GPT-2).
    """

    vocab_size: int
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_mlp: int = 256
    max_len: int = 32
    dropout: float = 0.0
    tied: bool = True
    residual_multiplier: float = 1.0
    logit_multiplier: float = 1.0
    attention_scale: str = "1/sqrt(d_head)"
    qk_norm: bool = False

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "d_mlp", "max_len"):
            check_count(name, getattr(self, name))
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: pick "
                "d_model a multiple of n_heads"
            )
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not (
            0.0 <= self.dropout < 1.0
        ):
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        if not isinstance(self.tied, bool):
            raise TypeError(f"tied must be a bool, got {self.tied!r}")
        for name in ("residual_multiplier", "logit_multiplier"):
            check_positive(name, getattr(self, name))
        check_choice("attention_scale", self.attention_scale, ATTENTION_SCALES)
        if not isinstance(self.qk_norm, bool):
            raise TypeError(f"qk_norm must be a bool, got {self.qk_norm!r}")

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


class Embedding(nn.Module):
    """h⁰ = E[x] + P[0..T−1]: ``[B, T]`` ids → ``[B, T, d_model]``."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Embedding(config.max_len, config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.drop(self.token(ids) + self.position(positions))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``[B, T, d_model]`` → ``[B, T, d_model]``.

    Q, K, V = x W_qkv (one Linear), split into n_heads heads of d_head channels; each head
    computes softmax(Q Kᵀ · s, causal) V (s = 1/√d_head, or 1/d_head by the config's
    ``attention_scale``; Q and K LayerNormed per head first with ``qk_norm``); the heads are
    concatenated and projected by ``out``.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.n_heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.out = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.dropout
        self.drop = nn.Dropout(config.dropout)
        # None is SDPA's own 1/√d_head: the default path stays GPT-2's computation exactly
        self.scale = 1.0 / config.d_head if config.attention_scale == "1/d_head" else None
        if config.qk_norm:
            self.q_norm = nn.LayerNorm(config.d_head)
            self.k_norm = nn.LayerNorm(config.d_head)
        else:
            self.q_norm = self.k_norm = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        # [B, T, D] -> [B, heads, T, d_head]
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0,
            scale=self.scale,
        )
        y = y.transpose(1, 2).reshape(b, t, d)
        return self.drop(self.out(y))


class MLP(nn.Module):
    """Linear(d_model, d_mlp) → GELU (tanh) → Linear(d_mlp, d_model), token by token."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_mlp)
        self.proj = nn.Linear(config.d_mlp, config.d_model)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class TransformerBlock(nn.Module):
    """One pre-LN block: h ← h + r·Attn(LN₁(h)); h ← h + r·MLP(LN₂(h)) (r: the config's
    ``residual_multiplier``). Returns the residual stream ``[B, T, d_model]`` (the hook point
    ``blocks.l``)."""

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)
        self.residual_multiplier = float(config.residual_multiplier)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = self.residual_multiplier
        if r == 1.0:  # GPT-2's block, without a multiply
            h = h + self.attn(self.ln1(h))
            return h + self.mlp(self.ln2(h))
        h = h + self.attn(self.ln1(h)) * r
        return h + self.mlp(self.ln2(h)) * r


class Transformer(nn.Module):
    """A decoder-only transformer: ``forward(ids: [B, T]) -> logits [B, T, V]``.

    Logits at position t depend on ids[:, :t + 1] only. Weights are initialized as GPT-2's:
    normal(0, 0.02), with the residual projections (``attn.out``, ``mlp.proj``) scaled by
    1/√(2L); biases 0, LayerNorms (1, 0).

    Raises:
        ValueError naming ``ids`` for a sequence longer than ``max_len``, ids outside
        [0, vocab_size) or a tensor that is not ``[B, T]`` integers.
    """

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if not isinstance(config, TransformerConfig):
            raise TypeError(f"config must be a TransformerConfig, got {type(config).__name__}")
        self.config = config
        self.embedding = Embedding(config)
        self.blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(config.d_model)
        self.unembed = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.apply(self._init)
        for block in self.blocks:
            for proj in (block.attn.out, block.mlp.proj):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * config.n_layers))
        if config.tied:
            self.unembed.weight = self.embedding.token.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def hook_names(self) -> list[str]:
        """``["embedding", "blocks.0", …]``: the L + 1 modules whose outputs are the residual
        stream h⁰ … hᴸ."""
        return ["embedding"] + [f"blocks.{i}" for i in range(len(self.blocks))]

    def check_ids(self, ids: object) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor):
            raise TypeError(f"ids must be a torch.Tensor of token ids, got {type(ids).__name__}")
        if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ValueError(
                f"ids must be integer token ids of shape [B, T], got dtype {ids.dtype} and "
                f"shape {tuple(ids.shape)}"
            )
        if ids.shape[1] > self.config.max_len:
            raise ValueError(
                f"ids has sequence length {ids.shape[1]} > max_len={self.config.max_len}: "
                "shorten the input or build the model with a larger max_len"
            )
        if ids.shape[1] == 0 or ids.shape[0] == 0:
            raise ValueError(f"ids is empty (shape {tuple(ids.shape)})")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size):
            raise ValueError(
                f"ids must lie in [0, vocab_size={self.config.vocab_size}), got values in "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )
        return ids.long()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embedding(self.check_ids(ids))
        for block in self.blocks:
            h = block(h)
        logits = self.unembed(self.ln_f(h))
        c = self.config.logit_multiplier
        return logits if c == 1.0 else logits * c

    def set_multipliers(self, *, residual: float | None = None, logits: float | None = None
                        ) -> None:
        """Set the residual-branch multiplier r and the logit multiplier c in place (``config``
        is replaced by a copy holding them), e.g. after building the model at a base config;
        ``None`` keeps the current value. ValueError naming ``residual``/``logits`` for a value
        that is not a positive number."""
        new = {}
        if residual is not None:
            new["residual_multiplier"] = check_positive("residual", residual)
        if logits is not None:
            new["logit_multiplier"] = check_positive("logits", logits)
        self.config = replace(self.config, **new)
        for block in self.blocks:
            block.residual_multiplier = float(self.config.residual_multiplier)


def residual_stream(model: Transformer, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The residual stream after the embedding and after every block, with the logits.

    Returns:
        ``(stream, logits)``: ``stream: [L + 1, B, T, d_model]`` (stream[0] = h⁰, stream[l] =
        the output of block l − 1) recorded by forward hooks on :attr:`Transformer.hook_names`
        (:func:`otkit.nn.hooks.rewrite_outputs`), and ``logits: [B, T, V]``. Runs under
        ``torch.no_grad()``; the model's train/eval mode is left as it is.
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a Transformer, got {type(model).__name__}")
    names = model.hook_names
    seen: dict[str, torch.Tensor] = {}

    def record(name: str, h: torch.Tensor) -> None:
        seen[name] = h.detach()

    with torch.no_grad(), rewrite_outputs(model, names, record):
        logits = model(ids)
    return torch.stack([seen[n] for n in names]), logits


def _group_of(name: str) -> str:
    if name.startswith("embedding."):
        return "embeddings"
    if name.startswith("unembed."):
        return "unembedding"
    if (".ln1." in name or ".ln2." in name or ".q_norm." in name or ".k_norm." in name
            or name.startswith("ln_f.")):
        return "norms"
    if ".attn." in name:
        return "attention"
    if ".mlp." in name:
        return "mlp"
    raise AssertionError(f"parameter {name!r} has no group")  # pragma: no cover


def param_groups(
    model: Transformer,
    *,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
) -> list[dict]:
    """The model's parameters split by module, as torch optimizer parameter groups.

    Groups (:data:`PARAM_GROUPS`): ``"embeddings"`` (token and position tables),
    ``"attention"`` (W_qkv, W_out and their biases in every block), ``"mlp"``, ``"norms"``
    (every LayerNorm, ``ln_f`` and QK-norm included) and ``"unembedding"`` (U; empty, and left out, when
    tied to the token embedding, which then counts once, in ``"embeddings"``). Every parameter
    is in exactly one group.

    Args:
        lr, weight_decay: each group's values unless ``overrides`` says otherwise.
        overrides: ``{group: {"lr": ..., "weight_decay": ...}}``, e.g.
            ``{"norms": {"weight_decay": 0.0}}``.

    Returns:
        ``[{"name": group, "params": [...], "lr": ..., "weight_decay": ...}, ...]``, for
        :class:`torch.optim.AdamW` and friends (they keep the extra ``"name"`` key).
    """
    if not isinstance(model, Transformer):
        raise TypeError(f"model must be a Transformer, got {type(model).__name__}")
    overrides = dict(overrides or {})
    unknown = [k for k in overrides if k not in PARAM_GROUPS]
    if unknown:
        raise ValueError(f"overrides names unknown groups {unknown}; groups are {PARAM_GROUPS}")
    groups: dict[str, list[nn.Parameter]] = {g: [] for g in PARAM_GROUPS}
    for name, p in model.named_parameters():  # shared (tied) tensors are listed once
        groups[_group_of(name)].append(p)
    out = []
    for g in PARAM_GROUPS:
        if not groups[g]:
            continue
        extra = dict(overrides.get(g, {}))
        bad = [k for k in extra if k not in ("lr", "weight_decay")]
        if bad:
            raise ValueError(f"overrides[{g!r}] has keys {bad}; allowed: 'lr', 'weight_decay'")
        out.append({"name": g, "params": groups[g], "lr": float(extra.get("lr", lr)),
                    "weight_decay": float(extra.get("weight_decay", weight_decay))})
    return out
