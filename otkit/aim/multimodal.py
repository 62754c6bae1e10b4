"""AIMv2: a vision encoder pre-trained through a causal multimodal decoder (pixels, then text).

Fini, Shukor, Li, Dufter, Klein, Haldimann, Aitharaju, da Costa, Béthune, Gan, Toshev, Eichner,
Nabi, Yang, Susskind and El-Nouby (2024), "Multimodal autoregressive pre-training of large
vision encoders", Section 2. The encoder is AIM's prefix-causal ViT
(:class:`otkit.aim.model.PrefixCausalViT`, prefix K ~ U{1, …, N − 1}); its N patch tokens,
followed by the caption's token embeddings, go through a *causal* decoder, so the sequence
[img_0, …, img_{N−1}, <bos>, w_1, …, w_{L−1}] is modelled autoregressively across modalities:

    L = α · L_img + L_text,   α = 0.4                                     (their Eq. 2)

L_img is AIM's normalized-pixel regression of patch k + 1 from decoder position k (non-prefix
targets, :func:`otkit.aim.objective.aim_loss`); L_text the cross-entropy of token w_{t+1} from
position t of the text. The last image position is followed by <bos> (given, never predicted).
Here the pixel and text heads are linear layers on the decoder's last LayerNorm; the decoder
has learned positions.

The ablations of the study: ``pixel_weight = 0`` (caption only: the encoder learns from the
text loss alone) and ``text_weight = 0`` (pixels only: the decoder then sees the image tokens
alone, an AIM with a shallower trunk and a deeper head). After pre-training only the encoder
is kept and probed (bidirectional attention, :mod:`otkit.aim.probe`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..validation import check_count, check_nonnegative
from .model import AIMConfig, Block, PrefixCausalViT, prefix_causal_mask
from .objective import aim_loss

__all__ = ["AIMv2Config", "AIMv2", "PAPER_PIXEL_WEIGHT"]

#: α, the weight of the pixel loss against the text loss (AIMv2, Section 2).
PAPER_PIXEL_WEIGHT = 0.4


@dataclass(frozen=True)
class AIMv2Config:
    """An encoder (:class:`AIMConfig`), a causal decoder of ``decoder_depth`` blocks at the
    encoder's width, a caption vocabulary and length (<bos> included), the loss weights."""

    encoder: AIMConfig
    vocab_size: int
    caption_len: int
    decoder_depth: int = 1
    pixel_weight: float = PAPER_PIXEL_WEIGHT
    text_weight: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, AIMConfig):
            raise TypeError(f"encoder must be an AIMConfig, got {type(self.encoder).__name__}")
        check_count("vocab_size", self.vocab_size, minimum=2)
        check_count("caption_len", self.caption_len, minimum=2)
        check_count("decoder_depth", self.decoder_depth)
        check_nonnegative("pixel_weight", self.pixel_weight)
        check_nonnegative("text_weight", self.text_weight)
        if self.pixel_weight == 0 and self.text_weight == 0:
            raise ValueError("pixel_weight and text_weight are both 0: nothing to learn")


@dataclass(frozen=True)
class AIMv2Loss:
    """The total α L_img + L_text and its two parts (NaN for a part whose weight is 0)."""

    total: torch.Tensor
    pixel: float
    text: float


class AIMv2(nn.Module):
    """Encoder + causal multimodal decoder (module docstring).

    ``forward(patches: [B, N, P], captions: [B, L] | None, prefix: [B])`` returns the pixel
    predictions ``[B, N, P]`` (row k → patch k + 1) and the text logits ``[B, L, V]`` (row t →
    token t + 1; ``None`` without captions). :meth:`loss` combines them.
    """

    def __init__(self, config: AIMv2Config):
        super().__init__()
        if not isinstance(config, AIMv2Config):
            raise TypeError(f"config must be an AIMv2Config, got {type(config).__name__}")
        self.config = config
        enc = config.encoder
        self.encoder = PrefixCausalViT(AIMConfig(**{**enc.__dict__, "head_blocks": 0}))
        n, w = enc.num_patches, enc.width
        self.bridge = nn.Linear(w, w)
        self.token = nn.Embedding(config.vocab_size, w)
        self.position = nn.Parameter(0.02 * torch.randn(n + config.caption_len, w))
        mlp = enc.mlp_config()
        self.blocks = nn.ModuleList(Block(w, enc.heads, mlp) for _ in range(config.decoder_depth))
        self.ln_f = nn.LayerNorm(w)
        self.to_pixels = nn.Linear(w, enc.patch_dim)
        self.to_text = nn.Linear(w, config.vocab_size)

    def check_captions(self, captions: object, batch: int) -> torch.Tensor:
        c = self.config
        if not isinstance(captions, torch.Tensor) or captions.shape != (batch, c.caption_len) \
                or captions.dtype.is_floating_point:
            raise ValueError(f"captions must be [B = {batch}, {c.caption_len}] token ids, got "
                             f"{getattr(captions, 'shape', type(captions).__name__)}")
        if int(captions.min()) < 0 or int(captions.max()) >= c.vocab_size:
            raise ValueError(f"captions must lie in [0, vocab_size = {c.vocab_size})")
        return captions.long()

    def forward(self, patches: torch.Tensor, captions: torch.Tensor | None,
                prefix: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor | None]:
        b = patches.shape[0]
        n = self.config.encoder.num_patches
        image = self.bridge(self.encoder.features(patches, self.encoder.mask(prefix, b)))
        if captions is not None:
            text = self.token(self.check_captions(captions, b))
            h = torch.cat([image, text], dim=1)
        else:
            h = image
        t = h.shape[1]
        h = h + self.position[:t]
        mask = prefix_causal_mask(t, 0).to(h.device).expand(b, -1, -1)
        for block in self.blocks:
            h = block(h, mask)
        h = self.ln_f(h)
        pixels = self.to_pixels(h[:, :n])
        logits = self.to_text(h[:, n:]) if captions is not None else None
        return pixels, logits

    def loss(self, patches: torch.Tensor, captions: torch.Tensor | None,
             prefix: torch.Tensor | int, *, normalize: bool = True) -> AIMv2Loss:
        """α · L_img + w_text · L_text with the config's weights (a part whose weight is 0 is
        not computed; the captions are not fed at all when ``text_weight`` is 0)."""
        c = self.config
        use_text = c.text_weight > 0
        if use_text and captions is None:
            raise ValueError("captions are required when text_weight > 0")
        pixels, logits = self(patches, captions if use_text else None, prefix)
        total = patches.new_zeros(())
        pixel = text = float("nan")
        if c.pixel_weight > 0:
            lp = aim_loss(pixels, patches, prefix, normalize=normalize)
            total = total + c.pixel_weight * lp
            pixel = float(lp.detach())
        if use_text:
            lt = F.cross_entropy(logits[:, :-1].reshape(-1, c.vocab_size),
                                 captions[:, 1:].reshape(-1).long())
            total = total + c.text_weight * lt
            text = float(lt.detach())
        return AIMv2Loss(total, pixel, text)
