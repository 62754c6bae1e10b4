"""Velocity networks v_θ(x, t) for flow matching: an MLP for vectors, a small conv net for 8×8 images.

Both take points ``x: [k, d]`` and times ``t: [k]`` (or a scalar) in [0, 1] and return
velocities ``[k, d]``. Time enters through sinusoidal features (Vaswani et al. 2017; the
usual choice of diffusion and flow models), so that the network can resolve fast changes
of the field in t.

Class-conditional velocities v_θ(x, t, y) (for classifier-free guidance, Ho and Salimans
2022; :mod:`otkit.flows.guidance`): built with ``num_classes=C``, a network also takes
``labels: [k]`` int64 in {0, …, C − 1} or :data:`NULL_LABEL` (−1, "no label"), embedded by a
learned table of C + 1 rows (the last one for the null label) and added to the time
features; ``labels=None`` means all null, the unconditional velocity v_θ(x, t, ∅).
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch
from torch import nn

from ..validation import check_count

__all__ = [
    "TimeEmbedding", "VelocityMLP", "VelocityConvNet", "broadcast_times", "LabelEmbedding",
    "NULL_LABEL",
]

#: The label meaning "no class": the unconditional velocity of classifier-free guidance.
NULL_LABEL = -1


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


class LabelEmbedding(nn.Module):
    """A learned table ``[C + 1, features]``: labels ``[k]`` in {0, …, C − 1} or
    :data:`NULL_LABEL` (row C) → ``[k, features]``; ``None`` → the null row for all k."""

    def __init__(self, num_classes: int, features: int) -> None:
        super().__init__()
        self.num_classes = check_count("num_classes", num_classes)
        self.table = nn.Embedding(self.num_classes + 1, check_count("features", features))

    def forward(self, labels: torch.Tensor | None, k: int, device) -> torch.Tensor:
        if labels is None:
            index = torch.full((k,), self.num_classes, dtype=torch.long, device=device)
        else:
            if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
                raise TypeError("labels must be an integer tensor of shape [k]")
            if labels.shape != (k,):
                raise ValueError(f"labels must have shape [{k}], got {tuple(labels.shape)}")
            if labels.numel() and (labels.min() < NULL_LABEL or labels.max() >= self.num_classes):
                raise ValueError(
                    f"labels must lie in 0..{self.num_classes - 1} or be NULL_LABEL={NULL_LABEL}"
                )
            index = torch.where(labels == NULL_LABEL, self.num_classes, labels).to(device=device, dtype=torch.long)
        return self.table(index)


def _no_labels(labels: torch.Tensor | None) -> None:
    if labels is not None:
        raise ValueError("labels given to an unconditional network: build it with num_classes=")


class VelocityMLP(nn.Module):
    """``v_θ(x, t)`` for ``x: [k, dim]``: an MLP on ``[x, embed(t)]`` with SiLU activations.

    Args:
        dim: the data dimension d.
        hidden: width of the hidden layers.
        depth: number of hidden layers (≥ 1).
        time_features: size of the sinusoidal time embedding.
        num_classes: C for a class-conditional velocity (module docstring); ``None``: none.
    """

    def __init__(
        self, dim: int, hidden: int = 256, depth: int = 3, time_features: int = 32,
        num_classes: int | None = None,
    ) -> None:
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
        # built last, so that an unconditional net's seeded initialization is unchanged
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, time_features)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape [k, {self.dim}], got {tuple(x.shape)}")
        temb = self.embed(broadcast_times(t, x))
        if self.label_embed is None:
            _no_labels(labels)
        else:
            temb = temb + self.label_embed(labels, x.shape[0], x.device)
        return self.net(torch.cat([x, temb], dim=1))


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
    output has the input's shape. Made for scikit-learn's 8×8 digits. ``num_classes``: C for
    a class-conditional velocity (module docstring).
    """

    def __init__(
        self, side: int = 8, channels: int = 32, depth: int = 4, time_features: int = 32,
        num_classes: int | None = None,
    ) -> None:
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
        self.label_embed = None if num_classes is None else LabelEmbedding(num_classes, time_features)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor | float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
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
        if self.label_embed is None:
            _no_labels(labels)
        else:
            temb = temb + self.label_embed(labels, h.shape[0], h.device)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h).reshape(shape)
