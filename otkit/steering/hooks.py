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
    MaskFn,
    _channel_dim,
    _mask_source,
    apply_channelwise,
    default_forward,
    find_modules,
    masked_pool,
    rewrite_outputs,
)
from ..nn.hooks import collect_activations as _collect
from ..validation import check_choice
from .intervention import Intervention
from .maps import AffineMap, check_strength

__all__ = ["steer", "collect_activations", "check_fit_inputs", "support_coverage"]


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
    pool: str, mask: object = None,
) -> tuple[list[str], list[Any], list[Any]]:
    """The module names and the source and target batches as lists, checked for a fit
    (``fit_act``, ``fit_lineas``): a known ``pool``, matching modules, no empty side, a
    ``mask`` that is None or a function of the batch (one function serves both sides)."""
    check_choice("pool", pool, POOLS)
    if mask is not None and not callable(mask):
        raise TypeError(
            "mask must be None (a dict batch's 'attention_mask') or a function batch -> mask, "
            f"got {type(mask).__name__}"
        )
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
    mask: MaskFn | Sequence[Any] | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`otkit.nn.hooks.collect_activations` with ``intervention`` active when given (the
    recorded outputs are then the steered ones): pooled outputs ``{module: [N, D]}``, padding
    left out by ``mask`` (default: a dict batch's ``"attention_mask"``)."""
    context = None if intervention is None else steer(model, intervention)
    return _collect(model, modules, batches, forward=forward, pool=pool, context=context,
                    mask=mask)


def support_coverage(
    model: nn.Module,
    intervention: Intervention,
    batches: Iterable[Any],
    *,
    forward: Forward | None = None,
    mask: MaskFn | Sequence[Any] | None = None,
) -> dict[str, float]:
    """``{module: share}``: the share of the activations each map meets at inference that lie
    inside its source support (where a Linear-AcT map acts; elsewhere it is the identity).

    The model runs on ``batches`` with ``intervention`` active, as when steering, so each map
    sees its input with every upstream map on; every real token (or position) of every
    channel counts once (padding left out by ``mask``, as in :func:`collect_activations`). A
    map without a support restriction acts everywhere: share 1. A low share means the map
    was fitted on activations unlike the ones it is applied to (e.g. fitted on sentence means,
    applied to tokens) and barely steers.
    """
    if not isinstance(intervention, Intervention):
        raise TypeError(f"intervention must be an Intervention, got {type(intervention).__name__}")
    names = find_modules(model, intervention.modules)
    run = default_forward if forward is None else forward
    mask_of = _mask_source(mask)
    counts = {n: [0, 0] for n in names}
    current: list[Any] = [None]

    def record(name: str, h: torch.Tensor) -> None:
        m = intervention.maps[name]
        _check_channels(name, h, m.dim)
        z = masked_pool(h.detach(), "none", current[0], name)
        if m.low is None:
            inside = z.numel()
        else:
            low, high = m.low.to(z.device, z.dtype), m.high.to(z.device, z.dtype)
            inside = int(((z >= low) & (z <= high)).sum())
        counts[name][0] += inside
        counts[name][1] += z.numel()

    number = 0
    # The recording hooks are installed first, so they run before the maps of steer: each
    # sees its module's output as the map receives it.
    with torch.no_grad(), rewrite_outputs(model, names, record), steer(model, intervention):
        for batch in batches:
            current[0] = mask_of(number, batch)
            run(model, batch)
            number += 1
    if number == 0:
        raise ValueError("batches is empty: give at least one batch")
    missing = [n for n, (_, total) in counts.items() if total == 0]
    if missing:
        raise ValueError(f"modules {missing[:5]} never ran during forward: check forward")
    return {n: inside / total for n, (inside, total) in counts.items()}
