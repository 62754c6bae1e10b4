"""AIM and AIMv2: autoregressive pre-training of vision encoders, at laptop scale.

El-Nouby et al. (2024), "Scalable pre-training of large autoregressive image models" (AIM):
a ViT with prefix-causal attention over raster-ordered patches regresses the next patch's
normalized pixels (:mod:`~otkit.aim.model`, :mod:`~otkit.aim.objective`); frozen, it is read
by an attentive probe (:mod:`~otkit.aim.probe`). Fini et al. (2024), "Multimodal
autoregressive pre-training of large vision encoders" (AIMv2): the encoder feeds a causal
decoder over [image tokens; caption tokens] trained on pixels and text
(:mod:`~otkit.aim.multimodal`), here on generated shapes with captions
(:mod:`~otkit.aim.shapes`). :mod:`~otkit.aim.study` holds notebook 17's experiments.
"""

from .model import (
    AIMConfig,
    PrefixCausalViT,
    patchify,
    prefix_causal_mask,
    sample_prefix,
    sincos_positions,
    unpatchify,
)
from .multimodal import PAPER_PIXEL_WEIGHT, AIMv2, AIMv2Config
from .objective import aim_loss, normalize_patches, target_mask
from .probe import AttentiveProbe, ProbeResult, attentive_probe, linear_probe
from .shapes import VOCAB, ShapesCaptions, caption_text, shapes_with_captions

__all__ = [
    "AIMConfig", "PrefixCausalViT", "patchify", "unpatchify", "prefix_causal_mask",
    "sample_prefix", "sincos_positions", "aim_loss", "normalize_patches", "target_mask",
    "AttentiveProbe", "ProbeResult", "attentive_probe", "linear_probe", "AIMv2", "AIMv2Config",
    "PAPER_PIXEL_WEIGHT", "VOCAB", "ShapesCaptions", "shapes_with_captions", "caption_text",
]
