"""Velocity networks v_θ(x, t) for flow matching: an MLP for vectors, a small conv net for 8×8 images.

Both take points ``x: [k, d]`` and times ``t: [k]`` (or a scalar) in [0, 1] and return
velocities ``[k, d]``. Time enters through sinusoidal features (Vaswani et al. 2017; the
usual choice of diffusion and flow models), so that the network can resolve fast changes
of the field in t.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from ..validation import check_count

__all__ = ["TimeEmbedding", "VelocityMLP", "VelocityConvNet", "broadcast_times"]


class TimeEmbedding(nn.Module):
    """Sinusoidal features of t ∈ [0, 1]: ``[k] → [k, features]``.

    Frequencies grow geometrically from 1 to ``max_frequency`` (in cycles over [0, 1]):
    ``[sin(2π ω_l t), cos(2π ω_l t)]`` for ``features / 2`` values ω_l.
    """

    def __init__(self, features: int = 32, max_frequency: float = 100.0) -> None:
        super().__init__()
        features = check_count("features", features, minimum=2)
        if features % 2:
            raise ValueError(f"features must be even (sine and cosine pairs), got {features}")
        half = features // 2
        freqs = torch.exp(torch.linspace(0.0, math.log(max_frequency), half))
        self.register_buffer("frequencies", 2 * math.pi * freqs)
        self.features = features

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.unsqueeze(-1) * self.frequencies.to(t.dtype)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


def broadcast_times(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Broadcast ``t`` (a number, a 0-d or ``[k]`` tensor) to ``[k]`` on x's device and dtype."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t.expand(x.shape[0])
    if t.shape != (x.shape[0],):
        raise ValueError(f"t must be a number or a tensor of shape [{x.shape[0]}], got {tuple(t.shape)}")
    return t


class VelocityMLP(nn.Module):
    """``v_θ(x, t)`` for ``x: [k, dim]``: an MLP on ``[x, embed(t)]`` with SiLU activations.

    Args:
        dim: the data dimension d.
        hidden: width of the hidden layers.
        depth: number of hidden layers (≥ 1).
        time_features: size of the sinusoidal time embedding.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 3, time_features: int = 32) -> None:
        super().__init__()
        self.dim = check_count("dim", dim)
        hidden = check_count("hidden", hidden)
        depth = check_count("depth", depth)
        self.embed = TimeEmbedding(time_features)
        layers: list[nn.Module] = []
        width = dim + time_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [k, {self.dim}], got {tuple(x.shape)}")
        return self.net(torch.cat([x, self.embed(broadcast_times(t, x))], dim=1))


class _TimeConditionedBlock(nn.Module):
    """conv 3×3 → GroupNorm → + per-channel shift from the time features → SiLU."""

    def __init__(self, cin: int, cout: int, time_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, cout), cout)
        self.shift = nn.Linear(time_features, cout)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(self.norm(self.conv(h)) + self.shift(temb)[:, :, None, None])


class VelocityConvNet(nn.Module):
    """``v_θ(x, t)`` for square images, flattened ``[k, side²]`` or shaped ``[k, 1, side, side]``.

    Four time-conditioned 3×3 conv blocks at full resolution (8×8 needs no down-sampling: the
    receptive field of four 3×3 layers already spans 9 pixels) and a 1×1 output conv; the
    output has the input's shape. Made for scikit-learn's 8×8 digits.
    """

    def __init__(self, side: int = 8, channels: int = 32, depth: int = 4, time_features: int = 32) -> None:
        super().__init__()
        self.side = check_count("side", side)
        channels = check_count("channels", channels)
        depth = check_count("depth", depth)
        self.dim = side * side
        self.embed = nn.Sequential(
            TimeEmbedding(time_features), nn.Linear(time_features, time_features), nn.SiLU()
        )
        widths = [1] + [channels] * depth
        self.blocks = nn.ModuleList(
            _TimeConditionedBlock(cin, cout, time_features) for cin, cout in pairwise(widths)
        )
        self.out = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        shape = x.shape
        if x.ndim == 2 and x.shape[1] == self.dim:
            h = x.view(-1, 1, self.side, self.side)
        elif x.ndim == 4 and tuple(x.shape[1:]) == (1, self.side, self.side):
            h = x
        else:
            raise ValueError(
                f"x must have shape [k, {self.dim}] or [k, 1, {self.side}, {self.side}], "
                f"got {tuple(shape)}"
            )
        temb = self.embed(broadcast_times(t, h))
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h).reshape(shape)
