"""Steering hooks: :func:`steer` runs a model with an :class:`Intervention` active.

Built on the generic hooks of :mod:`otkit.nn.hooks` (module lookup, pooling, output rewriting).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..nn.hooks import (
    POOLS,
    Forward,
    _channel_dim,
    apply_channelwise,
    find_modules,
    rewrite_outputs,
)
from ..nn.hooks import collect_activations as _collect
from ..validation import check_choice
from .intervention import Intervention
from .maps import AffineMap, check_strength

__all__ = ["steer", "collect_activations", "check_fit_inputs"]


def _check_channels(name: str, h: torch.Tensor, dim: int) -> None:
    size = h.shape[_channel_dim(h, f"module {name!r}")]
    if size != dim:
        raise ValueError(
            f"module {name!r} outputs {size} channels (shape {tuple(h.shape)}) but its map has "
            f"D = {dim}"
        )


@contextlib.contextmanager
def steer(
    model: nn.Module, intervention: Intervention, *, strength: float | None = None
) -> Iterator[nn.Module]:
    """Run ``model`` with ``intervention`` active inside the ``with`` block.

    Each named module's output h becomes λ T(h) + (1 − λ) h along its channel dimension, with
    λ = ``strength`` (default: the intervention's own). The maps are cast once to the
    activation's device and dtype and cached. λ = 0 leaves every output untouched (the same
    tensors). Yields the model; removes every hook on exit, also on error.

    Raises:
        ValueError naming the module when a map's D differs from its channel count, or naming
        ``strength`` when λ is outside [0, 1].
    """
    if not isinstance(intervention, Intervention):
        raise TypeError(f"intervention must be an Intervention, got {type(intervention).__name__}")
    lam = intervention.strength if strength is None else check_strength(strength)
    names = find_modules(model, intervention.modules)
    cache: dict[tuple[str, torch.device, torch.dtype], AffineMap] = {}

    def fn(name: str, h: torch.Tensor) -> torch.Tensor | None:
        m = intervention.maps[name]
        _check_channels(name, h, m.dim)
        if lam == 0.0:
            return None
        key = (name, h.device, h.dtype)
        if key not in cache:
            cache[key] = m.to(h.device, h.dtype)
        return apply_channelwise(h, lambda z: cache[key](z, lam))

    with rewrite_outputs(model, names, fn):
        yield model


def check_fit_inputs(
    model: nn.Module, modules: str | Sequence[str], source: Iterable[Any], target: Iterable[Any],
    pool: str,
) -> tuple[list[str], list[Any], list[Any]]:
    """The module names and the source and target batches as lists, checked for a fit
    (``fit_act``, ``fit_lineas``): a known ``pool``, matching modules, no empty side."""
    check_choice("pool", pool, POOLS)
    names = find_modules(model, modules)
    source, target = list(source), list(target)
    if not source:
        raise ValueError("source is empty: give at least one batch")
    if not target:
        raise ValueError("target is empty: give at least one batch")
    return names, source, target


def collect_activations(
    model: nn.Module,
    modules: str | Sequence[str],
    batches: Iterable[Any],
    *,
    forward: Forward | None = None,
    pool: str = "mean",
    intervention: Intervention | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`otkit.nn.hooks.collect_activations` with ``intervention`` active when given (the
    recorded outputs are then the steered ones): pooled outputs ``{module: [N, D]}``."""
    context = None if intervention is None else steer(model, intervention)
    return _collect(model, modules, batches, forward=forward, pool=pool, context=context)
