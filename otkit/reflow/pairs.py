r"""Training pairs simulated by a teacher flow: backward (noise → data) and forward (data → noise).

ReFlow (Liu, Gong and Liu 2023, "Flow straight and fast", ICLR 2023) retrains a flow on pairs
coupled by a teacher's ODE dx/dt = v(x, t): since the teacher's map is deterministic, the new
pairs do not cross and the retrained flow's paths are straighter, so fewer steps suffice.
Kim, Hsieh, Klein, Cuturi, Ye, Kawar and Thornton (2025, "Simple ReFlow", ICLR 2025,
Section 4.2) distinguish two ways to simulate them. Their time runs from data (τ = 0) to noise
(τ = 1), so generation runs *backward*; otkit's runs from noise (t = 0) to data (t = 1):

* **backward pairs** (:func:`backward_pairs`): draw noise z, integrate the teacher from t = 0
  to t = 1, pair (z, T(z)). The data end is the teacher's sample, with its errors;
* **forward pairs** (:func:`forward_pairs`): take *real* data x, integrate the teacher in
  reverse from t = 1 to t = 0, pair (T⁻¹(x), x). The data end is exact; the noise end is only
  approximately Gaussian. The paper trains on both kinds (:func:`teacher_pairs` mixes them,
  ``forward_fraction`` of the pairs forward; the fraction is ours to choose, 0.5 by default in
  :mod:`otkit.reflow.study`).

The reverse integration is :func:`otkit.flows.integrate` applied to the reversed field
u(y, s) = −v(y, 1 − s) (:func:`reverse_velocity`): y(s) = x(1 − s) solves dy/ds = u(y, s).
Both directions use the same sampler and NFE; the function evaluations they cost are recorded
(:attr:`TeacherPairs.function_evaluations`), the teacher's share of ReFlow's budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.ode import integrate
from ..validation import check_count, check_probability

__all__ = ["TeacherPairs", "reverse_velocity", "backward_pairs", "forward_pairs", "teacher_pairs"]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TeacherPairs:
    """N pairs simulated by a teacher.

    Attributes:
        source: ``[N, d]`` the noise ends (t = 0).
        target: ``[N, d]`` the data ends (t = 1).
        forward: ``[N]`` bool, True where the pair is forward (real data, inverted noise).
        nfe, method: the teacher's sampler.
        function_evaluations: teacher evaluations of one point spent making them, N · nfe.
        seconds: wall time.
    """

    source: torch.Tensor
    target: torch.Tensor
    forward: torch.Tensor
    nfe: int
    method: str
    function_evaluations: int
    seconds: float

    def __len__(self) -> int:
        return self.source.shape[0]


def reverse_velocity(velocity: Velocity) -> Velocity:
    """u(y, s) = −v(y, 1 − s): integrating u from s = 0 to 1 runs v from t = 1 back to t = 0."""

    def reversed_field(y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return -velocity(y, 1 - s)

    return reversed_field


def _as_velocity(teacher) -> Velocity:
    """A trained flow result (its EMA network), a module or a callable."""
    if hasattr(teacher, "ema_model"):
        return teacher.ema_model
    if callable(teacher):
        return teacher
    raise TypeError(f"teacher must be a FlowTrainingResult, a module or a callable, got {type(teacher).__name__}")


def _points(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor of shape [N, d]")
    if x.shape[0] == 0 or not torch.isfinite(x).all():
        raise ValueError(f"{name} must be non-empty and finite")
    return x


def _on_model(velocity: Velocity, x: torch.Tensor) -> torch.Tensor:
    if isinstance(velocity, nn.Module):
        param = next(velocity.parameters(), None)
        if param is not None:
            return x.to(device=param.device, dtype=param.dtype)
    return x


def backward_pairs(
    teacher, noise: torch.Tensor, *, nfe: int = 64, method: str = "midpoint"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noise, T(noise))``: the teacher's ODE from t = 0 to 1 on ``noise: [N, d]``."""
    velocity = _as_velocity(teacher)
    noise = _on_model(velocity, _points("noise", noise))
    return noise, integrate(velocity, noise, nfe=nfe, method=method)


def forward_pairs(
    teacher, data: torch.Tensor, *, nfe: int = 64, method: str = "midpoint"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T⁻¹(data), data)``: the teacher's ODE run from t = 1 back to 0 on ``data: [N, d]``."""
    velocity = _as_velocity(teacher)
    data = _on_model(velocity, _points("data", data))
    return integrate(reverse_velocity(velocity), data, nfe=nfe, method=method), data


def teacher_pairs(
    teacher,
    source,
    target,
    num_pairs: int,
    *,
    forward_fraction: float = 0.0,
    nfe: int = 64,
    method: str = "midpoint",
    seed: int = 0,
) -> TeacherPairs:
    """``num_pairs`` pairs, ⌊forward_fraction · num_pairs⌉ of them forward, the rest backward.

    Args:
        teacher: a :class:`~otkit.flows.FlowTrainingResult` (its EMA network is used), a
            velocity module or a callable ``(x: [k, d], t: [k]) -> [k, d]``.
        source, target: the laws (``(n, generator) -> [n, d]``): noise for backward pairs,
            real data for forward pairs.
        num_pairs: N.
        forward_fraction: share of forward pairs in [0, 1].
        nfe, method: the teacher's sampler (:func:`otkit.flows.integrate`).
        seed: the draws of noise and data.
    """
    num_pairs = check_count("num_pairs", num_pairs)
    forward_fraction = check_probability("forward_fraction", forward_fraction, closed=True)
    check_count("seed", seed, minimum=0)
    check_count("nfe", nfe)
    gen = torch.Generator().manual_seed(seed)
    n_forward = round(forward_fraction * num_pairs)
    n_backward = num_pairs - n_forward
    start = time.perf_counter()
    sources, targets = [], []
    if n_backward:
        z, x = backward_pairs(teacher, source(n_backward, gen), nfe=nfe, method=method)
        sources.append(z)
        targets.append(x)
    if n_forward:
        z, x = forward_pairs(teacher, target(n_forward, gen), nfe=nfe, method=method)
        sources.append(z)
        targets.append(x)
    forward = torch.cat([torch.zeros(n_backward, dtype=torch.bool), torch.ones(n_forward, dtype=torch.bool)])
    return TeacherPairs(
        source=torch.cat(sources), target=torch.cat(targets), forward=forward, nfe=nfe,
        method=method, function_evaluations=num_pairs * nfe,
        seconds=time.perf_counter() - start,
    )
