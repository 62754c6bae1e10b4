"""AIM's objective: next-patch regression to per-patch normalized pixels, on non-prefix patches.

El-Nouby et al. (2024), Section 3 ("Training objective"): with the prediction x̂_k of patch k
made from the patches before it, the loss is the squared ℓ2 distance

    L = 1/|T| Σ_{k ∈ T} ‖x̂_k − x̃_k‖² / P,        T = {k : K ≤ k ≤ N − 1}   (0-indexed)

to the *normalized* target x̃_k = (x_k − mean(x_k)) / √(var(x_k) + ε) (each patch's own mean and
variance over its P = C·p·p pixels, as MAE's ``norm_pix_loss``: the unbiased variance,
ε = 10⁻⁶; the paper's Table "targets" ablation finds it better than raw pixels). Targets inside
the prefix (k < K) are not counted: the prefix is context, seen bidirectionally, so predicting
it would be copying. We average over the P pixels of a patch (the paper sums; a constant
factor) and over the counted targets of the batch. K = 0 is the causal ablation: every patch
but the first (which nothing precedes) is a target.
"""

from __future__ import annotations

import torch

__all__ = ["normalize_patches", "target_mask", "aim_loss"]


def normalize_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x̃ = (x − mean(x)) / √(var(x) + eps) over the last dimension (each patch's pixels; the
    unbiased variance, as MAE's ``norm_pix_loss``). ``[..., P]`` → ``[..., P]``, P ≥ 2."""
    if not isinstance(patches, torch.Tensor) or patches.ndim < 1 or patches.shape[-1] < 2:
        raise ValueError("patches must be a [..., P] tensor with P >= 2 pixels per patch, got "
                         f"{getattr(patches, 'shape', type(patches).__name__)}")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True, unbiased=True)
    return (patches - mean) / (var + eps).sqrt()


def target_mask(prefix: torch.Tensor, n: int) -> torch.Tensor:
    """Which next-patch predictions count: ``[B, N − 1]`` bools, entry (b, k − 1) for target
    patch k ∈ {1, …, N − 1}, True iff k ≥ K_b (k outside the prefix)."""
    prefix = torch.as_tensor(prefix).reshape(-1)
    k = torch.arange(1, n, device=prefix.device)
    return k[None, :] >= prefix[:, None]


def aim_loss(predictions: torch.Tensor, patches: torch.Tensor, prefix: torch.Tensor | int, *,
             normalize: bool = True) -> torch.Tensor:
    """The AIM loss (module docstring).

    Args:
        predictions: ``[B, N, P]``, row k the prediction of patch k + 1 (the model's output).
        patches: ``[B, N, P]`` the input patches (targets are patches 1 … N − 1).
        prefix: ``[B]`` prefix lengths in [0, N − 1] (or one int for all).
        normalize: per-patch normalized targets (the paper's) or raw pixels (the ablation).

    Returns:
        The mean squared error per pixel over the non-prefix targets, a scalar.
    """
    if not isinstance(predictions, torch.Tensor) or not isinstance(patches, torch.Tensor):
        raise TypeError("predictions and patches must be tensors")
    if patches.ndim != 3 or predictions.shape != patches.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and patches "
                         f"{tuple(patches.shape)} must both be [B, N, P]")
    b, n, _ = patches.shape
    prefix = torch.as_tensor(prefix, device=patches.device).reshape(-1)
    if prefix.dtype.is_floating_point or prefix.dtype == torch.bool:
        raise TypeError(f"prefix must hold integers, got dtype {prefix.dtype}")
    if prefix.numel() == 1:
        prefix = prefix.expand(b)
    if prefix.numel() != b:
        raise ValueError(f"prefix has {prefix.numel()} lengths for a batch of {b}")
    if int(prefix.min()) < 0 or int(prefix.max()) > n - 1:
        raise ValueError(f"prefix lengths must lie in [0, N − 1 = {n - 1}] (at least one "
                         f"target), got [{int(prefix.min())}, {int(prefix.max())}]")
    targets = patches[:, 1:]
    if normalize:
        targets = normalize_patches(targets)
    per_patch = ((predictions[:, :-1] - targets) ** 2).mean(dim=-1)   # [B, N − 1]
    counted = target_mask(prefix, n)
    return per_patch[counted].mean()
