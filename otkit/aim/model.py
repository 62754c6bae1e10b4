"""AIM's trunk: a ViT with prefix-causal attention over raster-ordered patches, and its pixel head.

El-Nouby, Klein, Zhai, Bautista, Toshev, Shankar, Susskind and Joulin (2024), "Scalable
pre-training of large autoregressive image models" (ICML 2024), Section 3. An image
``x: [B, C, H, W]`` is cut into N = (H/p)(W/p) non-overlapping p×p patches read in raster order
(row by row), ``patches: [B, N, C·p·p]`` (:func:`patchify`). The model factorizes
P(x) = Π_k P(x_k | x_<k) and, at position k, regresses the next patch x_{k+1}.

*Prefix attention* (their Section 3, following PrefixLM): a prefix length K is drawn per image,
uniformly in {1, …, N − 1} (:func:`sample_prefix`); the first K patches attend to one another
bidirectionally, every later patch attends causally:

    allowed[i, j] = (j ≤ i) or (j < K)                                    (:func:`prefix_causal_mask`)

and the loss is taken on the non-prefix patches only (:func:`otkit.aim.objective.aim_loss`).
K = 0 gives the plain causal mask (the ablation). Downstream, the trunk runs with full
bidirectional attention (``mask=None``), with no change to its weights: the reason for the prefix.

The trunk (:class:`PrefixCausalViT`) is a pre-LN ViT without class token: a linear patch
embedding plus fixed 2-D sine-cosine positions (:func:`sincos_positions`, MAE's), ``depth``
blocks h ← h + Attn(LN(h), mask), h ← h + MLP(LN(h)) (the MLP is the lab's
:class:`otkit.nn.transformer.MLP`), a final LayerNorm; then the paper's per-patch MLP head:
the positions are added again, ``head_blocks`` residual MLP blocks act on each patch
independently, and a linear layer outputs the C·p·p pixels of the next patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..nn.transformer import MLP, TransformerConfig
from ..validation import check_count

__all__ = [
    "AIMConfig", "PrefixCausalViT", "patchify", "unpatchify", "prefix_causal_mask",
    "sample_prefix", "sincos_positions",
]


@dataclass(frozen=True)
class AIMConfig:
    """Sizes of a :class:`PrefixCausalViT`.

    Attributes:
        image_size: H = W of the (square) images.
        patch_size: p, a divisor of ``image_size``.
        channels: C.
        width: d, the residual stream's width (a multiple of ``heads`` and even).
        depth: the number of trunk blocks.
        heads: attention heads per block.
        mlp_ratio: each MLP's hidden width is ``mlp_ratio · width`` (4 in the paper).
        head_blocks: residual MLP blocks of the per-patch pixel head.
    """

    image_size: int = 8
    patch_size: int = 2
    channels: int = 1
    width: int = 64
    depth: int = 2
    heads: int = 4
    mlp_ratio: int = 4
    head_blocks: int = 1

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "channels", "width", "depth", "heads",
                     "mlp_ratio"):
            check_count(name, getattr(self, name))
        check_count("head_blocks", self.head_blocks, minimum=0)
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size={self.patch_size} must divide "
                             f"image_size={self.image_size}")
        if self.num_patches < 2:
            raise ValueError(f"patch_size={self.patch_size} leaves {self.num_patches} patch; "
                             "autoregression needs at least 2: use smaller patches")
        if self.width % self.heads or self.width % 4:
            raise ValueError(f"width={self.width} must be a multiple of heads={self.heads} and "
                             "of 4 (2-D sine-cosine positions)")

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid ** 2

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size ** 2

    def mlp_config(self) -> TransformerConfig:
        """The lab transformer's config whose :class:`~otkit.nn.transformer.MLP` we reuse."""
        return TransformerConfig(vocab_size=1, d_model=self.width, n_heads=self.heads,
                                 d_mlp=self.mlp_ratio * self.width, max_len=self.num_patches)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, N, C·p·p]``: patches in raster order (row by row of the grid),
    each flattened channel first (c, row, column)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError("images must be a [B, C, H, W] tensor, got "
                         f"{getattr(images, 'shape', type(images).__name__)}")
    p = check_count("patch_size", patch_size)
    b, c, h, w = images.shape
    if h % p or w % p:
        raise ValueError(f"patch_size={p} must divide the image size {h}×{w}")
    x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int = 1) -> torch.Tensor:
    """The inverse of :func:`patchify` for square images: ``[B, N, C·p·p]`` → ``[B, C, H, W]``."""
    if not isinstance(patches, torch.Tensor) or patches.ndim != 3:
        raise ValueError("patches must be a [B, N, C·p·p] tensor, got "
                         f"{getattr(patches, 'shape', type(patches).__name__)}")
    p, c = check_count("patch_size", patch_size), check_count("channels", channels)
    b, n, d = patches.shape
    g = math.isqrt(n)
    if g * g != n or d != c * p * p:
        raise ValueError(f"patches of shape {tuple(patches.shape)} do not form a square grid of "
                         f"{c}×{p}×{p} patches")
    x = patches.reshape(b, g, g, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, g * p, g * p)


def prefix_causal_mask(n: int, prefix: torch.Tensor | int) -> torch.Tensor:
    """The prefix-causal attention mask, ``True`` where attention is allowed.

    allowed[b, i, j] = (j ≤ i) or (j < K_b): bidirectional inside the prefix of length K_b,
    causal after it. ``prefix`` is an int or ``[B]`` integers in [0, n] (0 = causal, n =
    bidirectional). Returns ``[B, n, n]`` bools (B = 1 for an int).
    """
    n = check_count("n", n)
    k = torch.as_tensor(prefix).reshape(-1)
    if k.dtype.is_floating_point or k.dtype == torch.bool:
        raise TypeError(f"prefix must hold integers, got dtype {k.dtype}")
    if k.numel() and (int(k.min()) < 0 or int(k.max()) > n):
        raise ValueError(f"prefix lengths must lie in [0, {n}], got [{int(k.min())}, "
                         f"{int(k.max())}]")
    idx = torch.arange(n, device=k.device)
    causal = idx[None, :] <= idx[:, None]                    # [n, n]: j ≤ i
    in_prefix = idx[None, None, :] < k[:, None, None]        # [B, 1, n]: j < K
    return causal[None] | in_prefix


def sample_prefix(batch: int, n: int, *, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Prefix lengths K ~ Uniform{1, …, n − 1}, one per image: ``[batch]`` int64 (the paper's
    sampling: at least one prefix patch, at least one patch to predict)."""
    batch, n = check_count("batch", batch), check_count("n", n, minimum=2)
    return torch.randint(1, n, (batch,), generator=generator).to(device)


def sincos_positions(grid: int, width: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine positions (MAE, used by AIM): ``[grid², width]``; half the channels
    encode the row, half the column, each as [sin(pos ω_k), cos(pos ω_k)], ω_k = 10000^(−k/(w/4))."""
    grid, width = check_count("grid", grid), check_count("width", width)
    if width % 4:
        raise ValueError(f"width must be a multiple of 4, got {width}")
    omega = 1.0 / 10000 ** (torch.arange(width // 4, dtype=torch.float64) / (width / 4))
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def embed(pos: torch.Tensor) -> torch.Tensor:
        angle = pos.reshape(-1, 1).double() * omega[None]
        return torch.cat([angle.sin(), angle.cos()], dim=1)

    return torch.cat([embed(rows), embed(cols)], dim=1).float()


class MaskedSelfAttention(nn.Module):
    """Multi-head self-attention with an optional boolean mask ``[B, N, N]`` (True = attend):
    softmax(QKᵀ/√d_head, masked) V, heads concatenated and projected. ``[B, N, d]`` → same."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (z.view(b, n, self.heads, d // self.heads).transpose(1, 2)
                   for z in self.qkv(x).split(d, dim=-1))
        attn_mask = None if mask is None else mask[:, None]  # [B, 1, N, N], shared by heads
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-LN block h ← h + Attn(LN₁(h), mask); h ← h + MLP(LN₂(h))."""

    def __init__(self, width: int, heads: int, mlp: TransformerConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = MaskedSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = MLP(mlp)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = h + self.attn(self.ln1(h), mask)
        return h + self.mlp(self.ln2(h))


class HeadBlock(nn.Module):
    """A residual per-patch MLP block of the pixel head: h ← h + MLP(LN(h))."""

    def __init__(self, width: int, mlp: TransformerConfig):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.mlp = MLP(mlp)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mlp(self.ln(h))


class PrefixCausalViT(nn.Module):
    """AIM's trunk and pixel head (module docstring).

    ``features(patches: [B, N, P], mask)`` → ``[B, N, d]`` (after the final LayerNorm; ``mask``
    ``[B, N, N]`` bools or ``None`` = bidirectional); ``forward(patches, prefix)`` →
    ``[B, N, P]`` where row k predicts patch k + 1 (row N − 1 predicts nothing and is ignored
    by the loss). ``prefix``: ``[B]`` lengths (0 = causal) or ``None`` = bidirectional.
    """

    def __init__(self, config: AIMConfig):
        super().__init__()
        if not isinstance(config, AIMConfig):
            raise TypeError(f"config must be an AIMConfig, got {type(config).__name__}")
        self.config = config
        mlp = config.mlp_config()
        self.embed = nn.Linear(config.patch_dim, config.width)
        self.register_buffer("positions", sincos_positions(config.grid, config.width),
                             persistent=False)
        self.blocks = nn.ModuleList(Block(config.width, config.heads, mlp)
                                    for _ in range(config.depth))
        self.ln_f = nn.LayerNorm(config.width)
        self.head = nn.Sequential(*(HeadBlock(config.width, mlp)
                                    for _ in range(config.head_blocks)))
        self.to_pixels = nn.Linear(config.width, config.patch_dim)

    def check_patches(self, patches: object) -> torch.Tensor:
        c = self.config
        if not isinstance(patches, torch.Tensor) or patches.ndim != 3 or tuple(
                patches.shape[1:]) != (c.num_patches, c.patch_dim):
            raise ValueError(f"patches must be [B, {c.num_patches}, {c.patch_dim}], got "
                             f"{getattr(patches, 'shape', type(patches).__name__)}")
        if patches.shape[0] == 0:
            raise ValueError("patches is empty (B = 0)")
        if not torch.isfinite(patches).all():
            raise ValueError("patches must be finite (no NaN or inf)")
        return patches

    def features(self, patches: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.embed(self.check_patches(patches)) + self.positions
        for block in self.blocks:
            h = block(h, mask)
        return self.ln_f(h)

    def mask(self, prefix: torch.Tensor | int | None, batch: int) -> torch.Tensor | None:
        if prefix is None:
            return None
        m = prefix_causal_mask(self.config.num_patches, prefix)
        if m.shape[0] not in (1, batch):
            raise ValueError(f"prefix has {m.shape[0]} lengths for a batch of {batch}")
        return m.expand(batch, -1, -1).to(self.positions.device)

    def predict_pixels(self, h: torch.Tensor) -> torch.Tensor:
        """The per-patch head: ``[B, N, d]`` features → ``[B, N, P]`` next-patch pixels."""
        return self.to_pixels(self.head(h + self.positions))

    def forward(self, patches: torch.Tensor, prefix: torch.Tensor | int | None) -> torch.Tensor:
        h = self.features(patches, self.mask(prefix, patches.shape[0]))
        return self.predict_pixels(h)
