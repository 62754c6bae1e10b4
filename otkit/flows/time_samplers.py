r"""Distributions of the training time t in flow matching.

The flow matching loss averages over t (:mod:`otkit.flows.training`); which t are drawn decides
where on the path the network's capacity goes. otkit's time runs from the source (noise) at
t = 0 to the target (data) at t = 1. Samplers are callables ``(k, generator, dtype) -> [k]``
drawing on the CPU from ``generator``:

* :class:`UniformTime` — t ~ U[0, 1], the usual choice (the default of
  :func:`~otkit.flows.train_flow`, drawing exactly as it always has);
* :class:`ExponentialTime` — a density that grows geometrically towards one end,

  .. math::
      p(u) = \frac{\ln b}{b - 1}\, b^{u}, \qquad u \in [0, 1],

  with u = 1 − t (``towards="source"``: denser towards the noise) or u = t
  (``towards="target"``). Kim, Hsieh, Klein, Cuturi, Ye, Kawar and Thornton (2025, "Simple
  ReFlow: improved techniques for fast flow models", ICLR 2025, Section 4.1) train ReFlow with
  a time distribution proportional to 10^τ in their time τ, which runs from data (τ = 0) to
  noise (τ = 1): that is ``ExponentialTime(base=10, towards="source")`` here (τ = 1 − t).
  The base 10 is the paper's; the form b^u is the one their text states ("10^t-proportional").
  Drawn by inverse transform: u = log_b(1 + U (b − 1)), U ~ U[0, 1].

:func:`make_time_sampler` turns ``"uniform"``, ``"noise"`` (the Simple ReFlow density) or a
sampler into a sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from ..validation import check_choice, check_count, check_positive

__all__ = [
    "TimeSampler", "UniformTime", "ExponentialTime", "make_time_sampler", "TIME_SAMPLERS",
]

#: Names :func:`make_time_sampler` accepts.
TIME_SAMPLERS = ("uniform", "noise")


class TimeSampler(Protocol):
    """``(k, generator, dtype) -> t: [k]`` in [0, 1], drawn on the CPU."""

    def __call__(
        self, k: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class UniformTime:
    """t ~ U[0, 1] (one ``torch.rand`` draw of k values)."""

    name = "uniform"

    def __call__(
        self, k: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        return torch.rand(check_count("k", k), generator=generator, dtype=dtype)

    def density(self, t: torch.Tensor) -> torch.Tensor:
        """p(t) on [0, 1] (``t: [k]`` -> ``[k]``)."""
        return torch.ones_like(t)

    def cdf(self, t: torch.Tensor) -> torch.Tensor:
        """P(T ≤ t)."""
        return t.clamp(0, 1)

    def __repr__(self) -> str:
        return "uniform"


@dataclass(frozen=True)
class ExponentialTime:
    """p ∝ base^u with u = 1 − t (``towards="source"``) or u = t (module docstring).

    Args:
        base: b > 0, b ≠ 1; the density at the favoured end over the density at the other.
            10 is Simple ReFlow's.
        towards: ``"source"`` (more draws near the noise, t = 0) or ``"target"``.
    """

    base: float = 10.0
    towards: str = "source"

    def __post_init__(self) -> None:
        check_positive("base", self.base)
        if self.base == 1.0:
            raise ValueError("base must differ from 1 (base = 1 is UniformTime)")
        check_choice("towards", self.towards, ("source", "target"))

    @property
    def name(self) -> str:
        return f"exponential(base={self.base:g}, towards={self.towards})"

    def _u(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - t if self.towards == "source" else t

    def density(self, t: torch.Tensor) -> torch.Tensor:
        """p(t) on [0, 1] (``t: [k]`` -> ``[k]``)."""
        b = self.base
        return math.log(b) / (b - 1) * torch.pow(torch.as_tensor(b, dtype=t.dtype), self._u(t))

    def cdf(self, t: torch.Tensor) -> torch.Tensor:
        """P(T ≤ t), from F_u(u) = (b^u − 1)/(b − 1)."""
        b = self.base
        t = t.clamp(0, 1)
        fu = (torch.pow(torch.as_tensor(b, dtype=t.dtype), self._u(t)) - 1) / (b - 1)
        return 1 - fu if self.towards == "source" else fu

    def __call__(
        self, k: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        uniform = torch.rand(check_count("k", k), generator=generator, dtype=torch.float64)
        u = torch.log1p(uniform * (self.base - 1)) / math.log(self.base)
        t = 1 - u if self.towards == "source" else u
        return t.clamp(0, 1).to(dtype)

    def __repr__(self) -> str:
        return self.name


def make_time_sampler(spec: str | TimeSampler | None) -> TimeSampler:
    """``None`` or ``"uniform"`` -> :class:`UniformTime`; ``"noise"`` -> Simple ReFlow's
    ``ExponentialTime(10, "source")``; a sampler (any callable) is returned as is."""
    if spec is None or spec == "uniform":
        return UniformTime()
    if spec == "noise":
        return ExponentialTime(10.0, "source")
    if callable(spec) and not isinstance(spec, str):
        return spec
    raise ValueError(f"time_sampler must be one of {TIME_SAMPLERS}, a TimeSampler or None, got {spec!r}")
