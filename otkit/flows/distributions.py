"""Distributions a flow is trained between: callables ``(n, generator) -> [n, d]``.

A flow model learns to carry a source law (noise, or one data set) onto a target law. Training
only ever asks each law for a fresh batch of n points, so a law is just a callable
``sample(n, generator) -> [n, d]``, drawing on the CPU from ``generator`` (a
``torch.Generator``) so that a seed fixes the whole run:

* :class:`StandardNormal` — N(0, I_d), the usual noise source;
* :class:`Empirical` — a finite data set (e.g. 8×8 digits), drawn without replacement;
* :class:`Sampler` — any of :mod:`otkit.data`'s samplers (``"moons"``, ...) by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..data import samplers as datasets
from ..validation import check_choice, check_cloud, check_count

__all__ = ["Distribution", "StandardNormal", "Empirical", "Sampler", "TOY_DISTRIBUTIONS"]

Distribution = Callable[[int, torch.Generator], torch.Tensor]

#: The 2-D laws of the flow benchmarks, by name (:mod:`otkit.data`).
TOY_DISTRIBUTIONS = ("gaussian", "eight_gaussians", "moons", "checkerboard")


@dataclass(frozen=True)
class StandardNormal:
    """N(0, I_dim), drawn in float32."""

    dim: int

    def __post_init__(self) -> None:
        check_count("dim", self.dim)

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(check_count("n", n), self.dim, generator=generator)


@dataclass(frozen=True)
class Empirical:
    """The uniform law on the rows of ``data: [N, d]``.

    Draws are without replacement: a batch of n ≤ N is a random subset, and larger batches
    concatenate random permutations, so every point appears ⌊n/N⌋ or ⌈n/N⌉ times.
    """

    data: torch.Tensor

    def __post_init__(self) -> None:
        check_cloud("data", self.data)

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = check_count("n", n)
        size = self.data.shape[0]
        rounds = -(-n // size)
        index = torch.cat([torch.randperm(size, generator=generator) for _ in range(rounds)])
        return self.data[index[:n].to(self.data.device)]


@dataclass(frozen=True)
class Sampler:
    """One of the 2-D laws of :data:`TOY_DISTRIBUTIONS`, drawn by :mod:`otkit.data`.

    ``"gaussian"`` is N(0, I₂); ``options`` go to the sampler (e.g. ``noise=`` for moons).
    """

    name: str
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("name", self.name, TOY_DISTRIBUTIONS)

    dim = 2

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        n = check_count("n", n)
        if self.name == "gaussian":
            return torch.randn(n, 2, generator=generator)
        draw = getattr(datasets, self.name)
        return draw(n, generator=generator, **self.options)
