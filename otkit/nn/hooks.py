"""Forward hooks: read and rewrite the activations of named modules of any ``nn.Module``.

Activation steering (Rodriguez et al. 2024, AcT; 2025, LinEAS) replaces a module's output h by
a per-channel map of it. Here a module's output ``h`` (the first element when the module returns
a tuple, as Hugging Face transformer blocks may) is one of

* ``[B, D]`` — one vector per example;
* ``[B, T, D]`` — tokens, channels last;
* ``[B, C, H, W]`` — images, channels at dim 1.

:func:`pool` turns it into samples ``[N, D]`` (the mean over tokens/positions per example, or
every token/position as its own sample); :func:`collect_activations` records those samples;
:func:`rewrite_outputs` replaces outputs for the length of a ``with`` block (steering's
:func:`otkit.steering.steer` is built on it). Hooks are always removed on exit, also when the
block raises.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ..validation import check_choice

__all__ = [
    "find_modules",
    "pool",
    "collect_activations",
    "rewrite_outputs",
    "channel_size",
    "apply_channelwise",
    "default_forward",
    "POOLS",
]

POOLS = ("mean", "none")

#: ``forward(model, batch)`` runs the model on one batch (its return value is ignored).
Forward = Callable[[nn.Module, Any], Any]


def default_forward(model: nn.Module, batch: Any) -> Any:
    """``model(batch)``, or ``model(**batch)`` for a dict (e.g. a tokenizer's output)."""
    if isinstance(batch, dict):
        return model(**batch)
    return model(batch)


def find_modules(model: nn.Module, modules: str | Sequence[str]) -> list[str]:
    """Names of ``model``'s submodules selected by ``modules``, in the model's module order.

    Args:
        model: any ``nn.Module``.
        modules: a regular expression ``re.fullmatch``-ed against the names of
            ``model.named_modules()`` (the root, named "", is never matched), or a sequence of
            exact names.

    Raises:
        ValueError naming ``modules`` when nothing matches, a name is unknown or the regex is
        invalid.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = [name for name, _ in model.named_modules() if name]
    sample = ", ".join(repr(n) for n in names[:8]) + (", ..." if len(names) > 8 else "")
    if isinstance(modules, str):
        try:
            pattern = re.compile(modules)
        except re.error as err:
            raise ValueError(f"modules={modules!r} is not a valid regular expression: {err}") from None
        found = [n for n in names if pattern.fullmatch(n)]
        if not found:
            raise ValueError(
                f"modules={modules!r} matches no submodule (full match) of "
                f"{type(model).__name__}; available names include {sample}"
            )
        return found
    if isinstance(modules, Sequence) and modules and all(isinstance(m, str) for m in modules):
        known = set(names)
        unknown = [m for m in modules if m not in known]
        if unknown:
            raise ValueError(
                f"modules names unknown submodules {unknown[:5]} of {type(model).__name__}; "
                f"available names include {sample}"
            )
        wanted = set(modules)
        return [n for n in names if n in wanted]
    raise TypeError(
        f"modules must be a regex string or a non-empty sequence of module names, got {modules!r}"
    )


def _channel_dim(h: torch.Tensor, where: str) -> int:
    if h.ndim in (2, 3):
        return h.ndim - 1
    if h.ndim == 4:
        return 1
    raise ValueError(
        f"{where}: output of shape {tuple(h.shape)} is not [B, D], [B, T, D] or [B, C, H, W]"
    )


def channel_size(h: torch.Tensor) -> int:
    """D (or C): the channel count of an activation ``[B, D]``, ``[B, T, D]`` or ``[B, C, H, W]``."""
    return h.shape[_channel_dim(h, "h")]


def pool(h: torch.Tensor, how: str = "mean") -> torch.Tensor:
    """Samples ``[N, D]`` from an activation ``h``.

    ``how="mean"``: one sample per example, the average over tokens (``[B, T, D]``) or spatial
    positions (``[B, C, H, W]``), N = B. ``how="none"``: every token/position is a sample,
    N = B·T or B·H·W. A ``[B, D]`` activation is returned as is.
    """
    check_choice("pool", how, POOLS)
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"h must be a torch.Tensor, got {type(h).__name__}")
    _channel_dim(h, "h")
    if h.ndim == 2:
        return h
    if h.ndim == 3:
        return h.mean(1) if how == "mean" else h.reshape(-1, h.shape[-1])
    if how == "mean":
        return h.mean((2, 3))
    return h.movedim(1, -1).reshape(-1, h.shape[1])


# ``collect_activations`` takes an argument named ``pool``, which shadows the function.
_pool = pool


def apply_channelwise(
    h: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``fn`` (channels last) applied along ``h``'s channel dimension (dim 1 for 4-D)."""
    if h.ndim == 4:
        return fn(h.movedim(1, -1)).movedim(-1, 1)
    return fn(h)


def _split_output(output: Any, name: str) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """The activation in a module's output and a function rebuilding the output around a new one."""
    if isinstance(output, torch.Tensor):
        return output, lambda h: h
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        rest = output[1:]
        if isinstance(output, list):
            return output[0], lambda h: [h, *rest]
        return output[0], lambda h: (h, *rest)
    raise TypeError(
        f"module {name!r} returned {type(output).__name__}; hooks need a tensor or a tuple "
        "whose first element is a tensor"
    )


@contextlib.contextmanager
def rewrite_outputs(
    model: nn.Module,
    names: Sequence[str],
    fn: Callable[[str, torch.Tensor], torch.Tensor | None],
) -> Iterator[None]:
    """Install a forward hook on each named module calling ``fn(name, h)``; a tensor it returns
    replaces h in the output, ``None`` leaves the output untouched. Removed on exit."""
    lookup = dict(model.named_modules())
    handles = []

    def make(name: str):
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            h, rebuild = _split_output(output, name)
            new = fn(name, h)
            return None if new is None else rebuild(new)

        return hook

    try:
        for name in names:
            handles.append(lookup[name].register_forward_hook(make(name)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def collect_activations(
    model: nn.Module,
    modules: str | Sequence[str],
    batches: Iterable[Any],
    *,
    forward: Forward | None = None,
    pool: str = "mean",
    context: contextlib.AbstractContextManager | None = None,
) -> dict[str, torch.Tensor]:
    """Pooled outputs ``{module: [N, D]}`` of the selected modules over all ``batches``.

    Runs ``forward(model, batch)`` (default :func:`default_forward`) under ``torch.no_grad()``
    for every batch, inside ``context`` when given (e.g. :func:`otkit.steering.steer`: the
    recorded outputs are then the steered ones). Tensors stay on the activations' device and dtype.
    """
    how = check_choice("pool", pool, POOLS)
    names = find_modules(model, modules)
    run = default_forward if forward is None else forward
    records: dict[str, list[torch.Tensor]] = {n: [] for n in names}

    def record(name: str, h: torch.Tensor) -> None:
        records[name].append(_pool(h.detach(), how))

    active = contextlib.nullcontext() if context is None else context
    count = 0
    with torch.no_grad(), active, rewrite_outputs(model, names, record):
        for batch in batches:
            run(model, batch)
            count += 1
    if count == 0:
        raise ValueError("batches is empty: give at least one batch")
    missing = [n for n, r in records.items() if not r]
    if missing:
        raise ValueError(f"modules {missing[:5]} never ran during forward: check modules/forward")
    return {n: torch.cat(r) for n, r in records.items()}
