r"""Class-conditional flows and classifier-free guidance (CFG).

Classifier-free guidance (J. Ho and T. Salimans, "Classifier-free diffusion guidance", NeurIPS
2021 workshop, arXiv:2207.12598) trains *one* network v_θ(x, t, y) both conditionally and
unconditionally: during training each label is replaced, with probability p (the label
dropout, 0.1–0.2 in the paper), by the null label ∅ (:data:`~otkit.nn.velocity.NULL_LABEL`).
At sampling time the two velocities are extrapolated with a guidance weight w (Ho and Salimans'
Eq. 6, written for flows):

.. math::
    \tilde v_w(x, t, y) = (1 + w)\, v_θ(x, t, y) - w\, v_θ(x, t, ∅)
                       = v_θ(x, t, y) + w\,\big(v_θ(x, t, y) - v_θ(x, t, ∅)\big),

so w = 0 is the conditional velocity, w = −1 the unconditional one and w > 0 pushes samples
towards their class (sharper, less diverse). The same field is often written
v_∅ + s (v_y − v_∅) with s = 1 + w (Simple ReFlow, Kim et al. 2025, use guidance in this
sense for their conditional ImageNet and CIFAR-10 results).

* :class:`LabeledEmpirical` — a finite labelled data set: a law ``(n, generator) -> [n, d]``
  that can also return the drawn labels (:meth:`LabeledEmpirical.labeled`);
* :func:`drop_labels` — the label dropout of training;
* :func:`guided_velocity` and :class:`GuidedVelocity` — ṽ_w, the latter as a field
  ``(x, t) -> [k, d]`` for :func:`otkit.flows.integrate` with fixed labels.

The networks of :mod:`otkit.nn.velocity` take ``num_classes=`` to become conditional;
:func:`otkit.flows.train_flow` (independent coupling) and
:func:`otkit.flows.paired.train_on_pairs` take ``label_dropout=`` (and ``labels=`` for the
pairs); :meth:`otkit.flows.FlowTrainingResult.sample` takes ``labels=`` and ``guidance=``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..nn.velocity import NULL_LABEL
from ..validation import check_cloud, check_count, check_probability

__all__ = [
    "NULL_LABEL", "LabeledEmpirical", "drop_labels", "guided_velocity", "GuidedVelocity",
    "check_labels",
]


def check_labels(name: str, labels: object, k: int | None = None, *, allow_null: bool = False) -> torch.Tensor:
    """``labels``: an integer tensor ``[k]`` (any k when ``None``) of classes ≥ 0 (or
    NULL_LABEL with ``allow_null``), returned as int64."""
    if not isinstance(labels, torch.Tensor) or labels.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer torch.Tensor of shape [k]")
    if labels.ndim != 1 or (k is not None and labels.shape[0] != k):
        raise ValueError(f"{name} must have shape [{k if k is not None else 'k'}], got {tuple(labels.shape)}")
    low = NULL_LABEL if allow_null else 0
    if labels.numel() and labels.min() < low:
        raise ValueError(f"{name} must be ≥ {low}, got {int(labels.min())}")
    return labels.long()


@dataclass(frozen=True)
class LabeledEmpirical:
    """The uniform law on the rows of ``data: [N, d]`` with their ``labels: [N]`` (int64).

    Called as a law, ``(n, generator) -> [n, d]``, it draws as
    :class:`otkit.flows.distributions.Empirical` does (random permutations, without
    replacement); :meth:`labeled` makes the same draw and returns the labels with it.
    """

    data: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        check_cloud("data", self.data)
        check_labels("labels", self.labels, self.data.shape[0])

    @property
    def dim(self) -> int:
        return self.data.shape[1]

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    def labeled(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(points: [n, d], labels: [n])``."""
        n = check_count("n", n)
        size = self.data.shape[0]
        index = torch.cat([torch.randperm(size, generator=generator) for _ in range(-(-n // size))])[:n]
        return self.data[index.to(self.data.device)], self.labels[index.to(self.labels.device)]

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.labeled(n, generator)[0]


def drop_labels(
    labels: torch.Tensor, p: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Replace each label by NULL_LABEL with probability ``p`` (independently; ``[k]`` → ``[k]``).

    Draws k uniforms on the CPU from ``generator`` (also when p = 0, so that a run's other
    draws do not depend on p)."""
    p = check_probability("label_dropout", p, closed=True)
    labels = check_labels("labels", labels, allow_null=True)
    drop = torch.rand(labels.shape[0], generator=generator) < p
    return torch.where(drop.to(labels.device), torch.full_like(labels, NULL_LABEL), labels)


def _check_guidance(guidance: object) -> float:
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)):
        raise TypeError(f"guidance must be a number, got {guidance!r}")
    if not math.isfinite(guidance):
        raise ValueError(f"guidance must be finite, got {guidance!r}")
    return float(guidance)


def guided_velocity(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, guidance: float = 0.0
) -> torch.Tensor:
    """ṽ_w = v(x, t, y) + w (v(x, t, y) − v(x, t, ∅)) for ``x: [k, d]``, ``t: [k]``,
    ``labels: [k]`` (module docstring). w = 0 costs one evaluation, otherwise one of 2k rows."""
    guidance = _check_guidance(guidance)
    k = x.shape[0]
    labels = check_labels("labels", labels, k, allow_null=True).to(x.device)
    if guidance == 0.0:
        return model(x, t, labels)
    both = model(torch.cat([x, x]), torch.cat([t, t]),
                 torch.cat([labels, torch.full_like(labels, NULL_LABEL)]))
    conditional, unconditional = both[:k], both[k:]
    return conditional + guidance * (conditional - unconditional)


class GuidedVelocity:
    """The field ``(x: [k, d], t: [k]) -> ṽ_w`` for fixed ``labels: [k]``, to integrate."""

    def __init__(self, model: nn.Module, labels: torch.Tensor, guidance: float = 0.0) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if getattr(model, "label_embed", None) is None:
            raise ValueError("model is not class-conditional: build it with num_classes=")
        self.model = model
        self.labels = check_labels("labels", labels, allow_null=True)
        self.guidance = _check_guidance(guidance)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.labels.shape[0]:
            raise ValueError(f"x has {x.shape[0]} rows but labels has {self.labels.shape[0]}")
        return guided_velocity(self.model, x, t, self.labels, self.guidance)
