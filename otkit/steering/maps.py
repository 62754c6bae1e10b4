"""Per-neuron affine transport maps for activation steering (Linear-AcT and its siblings).

Rodriguez, Blaas, Klein, Zappella, Apostoloff, Cuturi, Suau (2024), "Controlling Language and
Diffusion Models by Transporting Activations" (AcT). Each neuron (channel) d is moved on its own
by a 1-D map T_d estimated from source activations s ~ μ_d (e.g. toxic prompts) and target
activations t ~ ν_d (non-toxic prompts). In one dimension optimal transport is monotone
rearrangement, T = F_ν⁻¹ ∘ F_μ: the k-th smallest source value goes to the k-th smallest target
value (quantile matching). Linear-AcT keeps the affine part of that map,

    (ω_d, β_d) = argmin_{ω, β} Σ_i (ω s_(i) + β − q_i)²,   q_i = F_ν⁻¹((i − ½)/N),

fitted by least squares on the sorted pairs (s_(i) sorted source, q_i the target's empirical
quantile at the same level; for N = M simply the sorted target). It acts only on the source
support [low_d, high_d] (the range of the source samples) and is the identity elsewhere. With a
strength λ ∈ [0, 1] the steered activation is

    z' = λ T(z) + (1 − λ) z.

Siblings: the Gaussian map T(z) = (σ_t / σ_s)(z − μ_s) + μ_t (exact OT between 1-D Gaussians)
and the mean shift T(z) = z − μ_s + μ_t.

Maps act along the last (channel) dimension of ``z: [..., D]`` and are cast to ``z``'s device
and dtype, so they never pull activations off the accelerator.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..validation import check_cloud

__all__ = [
    "AffineMap",
    "linear_act",
    "gaussian_map",
    "mean_shift",
    "ESTIMATORS",
    "check_strength",
]


def check_strength(value: object, name: str = "strength") -> float:
    """A steering strength λ: a finite number in [0, 1] (a Python number or 0-d tensor)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar in [0, 1], got shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1] (0 = no steering, 1 = full map), got {value}")
    return value


@dataclass(frozen=True, eq=False)
class AffineMap:
    """One affine map per neuron, T(z)_d = ω_d z_d + β_d, applied inside [low_d, high_d].

    Attributes:
        omega, beta: ``[D]`` slope and offset of each neuron's map.
        low, high: ``[D]`` the source support (T is the identity outside it), or ``None`` for a
            map that acts everywhere.
    """

    omega: torch.Tensor
    beta: torch.Tensor
    low: torch.Tensor | None = None
    high: torch.Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("omega", "beta", "low", "high"):
            value = getattr(self, name)
            if value is None and name in ("low", "high"):
                continue
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating point torch.Tensor of shape [D]")
            if value.ndim != 1 or value.shape != self.omega.shape:
                raise ValueError(
                    f"{name} must have shape [D] = {tuple(self.omega.shape)}, got "
                    f"{tuple(value.shape)}"
                )
        if (self.low is None) != (self.high is None):
            raise ValueError("low and high must both be given or both be None")

    @property
    def dim(self) -> int:
        """D, the number of neurons (channels) the map acts on."""
        return self.omega.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
           ) -> AffineMap:
        """The same map with its tensors on ``device`` in ``dtype``."""
        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        return AffineMap(cast(self.omega), cast(self.beta), cast(self.low), cast(self.high))

    def _check_input(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor) or not z.is_floating_point():
            raise TypeError("z must be a floating point torch.Tensor with channels last")
        if z.ndim == 0 or z.shape[-1] != self.dim:
            raise ValueError(
                f"z has {z.shape[-1] if z.ndim else 0} channels in its last dimension but the "
                f"map acts on D = {self.dim}"
            )

    def transport(self, z: torch.Tensor) -> torch.Tensor:
        """T(z) for ``z: [..., D]``: ω z + β inside the source support, z outside it."""
        self._check_input(z)
        m = self.to(z.device, z.dtype)
        moved = z * m.omega + m.beta
        if m.low is None:
            return moved
        inside = (z >= m.low) & (z <= m.high)
        return torch.where(inside, moved, z)

    def __call__(self, z: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """λ T(z) + (1 − λ) z for ``z: [..., D]``; λ = 0 returns ``z`` itself (bit-identical)."""
        lam = check_strength(strength)
        self._check_input(z)
        if lam == 0.0:
            return z
        moved = self.transport(z)
        if lam == 1.0:
            return moved
        return lam * moved + (1.0 - lam) * z

    def scaled(self, strength: float) -> AffineMap:
        """The map z ↦ λ T(z) + (1 − λ) z as an affine map (ω' = 1 − λ + λω, β' = λβ).

        Exact with the support too: outside it both are the identity."""
        lam = check_strength(strength)
        return AffineMap(1.0 - lam + lam * self.omega, lam * self.beta, self.low, self.high)

    def is_identity(self) -> torch.Tensor:
        """``[D]`` bool: neurons whose map is exactly the identity (ω = 1, β = 0)."""
        return (self.omega == 1) & (self.beta == 0)


def _check_pair(source: object, target: object) -> tuple[torch.Tensor, torch.Tensor]:
    source = check_cloud("source", source, allow_half=True)
    target = check_cloud("target", target, allow_half=True)
    if source.shape[1] != target.shape[1]:
        raise ValueError(
            f"source and target must have the same number of neurons D, got source: "
            f"{tuple(source.shape)} and target: {tuple(target.shape)}"
        )
    if source.device != target.device:
        raise ValueError(
            f"source is on {source.device} but target is on {target.device}: move both to one "
            "device"
        )
    return source, target


def target_quantiles(target_sorted: torch.Tensor, n: int) -> torch.Tensor:
    """The target's empirical quantile function at the source's levels (i + ½)/n.

    ``target_sorted: [M, D]`` sorted along dim 0; returns ``[n, D]``. Level u sits at the
    fractional index u·M − ½ of the sorted target (clamped to [0, M − 1]) and is interpolated
    linearly, so for n = M the result is the sorted target itself.
    """
    m = target_sorted.shape[0]
    levels = (torch.arange(n, device=target_sorted.device, dtype=torch.float64) + 0.5) / n
    pos = (levels * m - 0.5).clamp(0.0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=m - 1)
    w = (pos - lo).to(target_sorted.dtype).unsqueeze(1)
    return target_sorted[lo] * (1 - w) + target_sorted[hi] * w


def linear_act(source: torch.Tensor, target: torch.Tensor) -> AffineMap:
    """Linear-AcT: per neuron, the least-squares affine fit to the 1-D OT (sorting) map.

    Args:
        source: ``[N, D]`` activations to move (one row per pooled example).
        target: ``[M, D]`` activations of the desired behaviour (M may differ from N: the
            target's quantiles are interpolated at the source's levels).

    Returns:
        an :class:`AffineMap` with support [min, max] of each source neuron, in source's
        dtype. A constant source neuron (no spread) gets the mean shift ω = 1.
    """
    source, target = _check_pair(source, target)
    # Statistics in float64: sums of many activations lose digits in float32 and half.
    s = source.to(torch.float64).sort(dim=0).values
    q = target_quantiles(target.to(torch.float64).sort(dim=0).values, s.shape[0])
    s_mean, q_mean = s.mean(0), q.mean(0)
    ds = s - s_mean
    var = ds.pow(2).mean(0)
    cov = (ds * (q - q_mean)).mean(0)
    # A constant neuron's float64 variance is 0 up to the rounding of its mean.
    flat = var <= (1e-12 * s_mean.abs()) ** 2
    omega = torch.where(flat, torch.ones_like(var), cov / torch.where(flat, 1.0, var))
    beta = q_mean - omega * s_mean
    dtype = source.dtype
    return AffineMap(omega.to(dtype), beta.to(dtype), s[0].to(dtype), s[-1].to(dtype))


def gaussian_map(source: torch.Tensor, target: torch.Tensor) -> AffineMap:
    """Per neuron, OT between Gaussian fits: T(z) = (σ_t/σ_s)(z − μ_s) + μ_t, everywhere.

    ``source: [N, D]``, ``target: [M, D]``; a constant source neuron gets ω = 1."""
    source, target = _check_pair(source, target)
    s, t = source.to(torch.float64), target.to(torch.float64)
    mu_s, mu_t = s.mean(0), t.mean(0)
    sd_s, sd_t = s.std(0, correction=0), t.std(0, correction=0)
    flat = sd_s == 0
    omega = torch.where(flat, torch.ones_like(sd_s), sd_t / torch.where(flat, 1.0, sd_s))
    beta = mu_t - omega * mu_s
    return AffineMap(omega.to(source.dtype), beta.to(source.dtype))


def mean_shift(source: torch.Tensor, target: torch.Tensor) -> AffineMap:
    """Per neuron, T(z) = z − μ_s + μ_t, everywhere. ``source: [N, D]``, ``target: [M, D]``."""
    source, target = _check_pair(source, target)
    shift = target.to(torch.float64).mean(0) - source.to(torch.float64).mean(0)
    return AffineMap(torch.ones_like(source[0]), shift.to(source.dtype))


#: The map estimators by name, each ``(source [N, D], target [M, D]) -> AffineMap``.
ESTIMATORS: dict[str, Callable[[torch.Tensor, torch.Tensor], AffineMap]] = {
    "linear_act": linear_act,
    "gaussian": gaussian_map,
    "mean_shift": mean_shift,
}
