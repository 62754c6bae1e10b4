"""Forward hooks: read and rewrite the activations of named modules of any ``nn.Module``.

Activation steering (Rodriguez et al. 2024, AcT; 2025, LinEAS) replaces a module's output h by
a per-channel map of it. Here a module's output ``h`` (the first element when the module returns
a tuple, as Hugging Face transformer blocks may) is one of

* ``[B, D]`` — one vector per example;
* ``[B, T, D]`` — tokens, channels last;
* ``[B, C, H, W]`` — images, channels at dim 1.

:func:`pool` turns it into samples ``[N, D]`` (the mean over tokens/positions per example, or
every token/position as its own sample), honouring an attention mask: padded positions are
left out of the mean and dropped as samples; :func:`collect_activations` records those samples
(taking the mask from a batch's ``"attention_mask"`` when it carries one);
:func:`rewrite_outputs` replaces outputs for the length of a ``with`` block (steering's
:func:`otkit.steering.steer` is built on it). Hooks are always removed on exit, also when the
block raises.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
    "batch_mask",
    "masked_pool",
    "POOLS",
]

POOLS = ("mean", "none")

#: ``forward(model, batch)`` runs the model on one batch (its return value is ignored).
Forward = Callable[[nn.Module, Any], Any]

#: ``mask(batch)``: the attention mask of one batch (``[B, T]``, nonzero = real token), or
#: ``None`` for a batch without padding.
MaskFn = Callable[[Any], "torch.Tensor | None"]


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


def _keep_positions(h: torch.Tensor, mask: object, where: str) -> torch.Tensor:
    """``mask`` checked against ``h`` and turned into a bool tensor on ``h``'s device: ``[B, T]``
    for ``h: [B, T, D]``, ``[B, H, W]`` for ``h: [B, C, H, W]`` (True = a real position)."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{where}: mask must be a torch.Tensor, got {type(mask).__name__}")
    if h.ndim == 2:
        raise ValueError(
            f"{where}: a mask needs an output with tokens [B, T, D] or positions [B, C, H, W], "
            f"got shape {tuple(h.shape)}"
        )
    positions = tuple(h.shape[:2]) if h.ndim == 3 else (h.shape[0], *h.shape[2:])
    if tuple(mask.shape) != positions:
        raise ValueError(
            f"{where}: mask of shape {tuple(mask.shape)} does not match the output's "
            f"{'[B, T]' if h.ndim == 3 else '[B, H, W]'} = {positions} (output shape "
            f"{tuple(h.shape)})"
        )
    keep = mask.to(h.device) != 0
    return keep


def pool(h: torch.Tensor, how: str = "mean", mask: torch.Tensor | None = None) -> torch.Tensor:
    """Samples ``[N, D]`` from an activation ``h``.

    ``how="mean"``: one sample per example, the average over tokens (``[B, T, D]``) or spatial
    positions (``[B, C, H, W]``), N = B. ``how="none"``: every token/position is a sample,
    N = B·T or B·H·W. A ``[B, D]`` activation is returned as is.

    ``mask``: an attention mask, ``[B, T]`` for tokens (``[B, H, W]`` for positions), nonzero
    or True at real tokens and 0 at padding, as a Hugging Face tokenizer's
    ``"attention_mask"``. With it, ``"mean"`` averages over each example's real tokens only,
    and ``"none"`` keeps only the real tokens (N = their count, in (example, token) order): a
    padded batch gives the samples of the same texts unpadded. An example without any real
    token has no mean: a ValueError says so.
    """
    check_choice("pool", how, POOLS)
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"h must be a torch.Tensor, got {type(h).__name__}")
    _channel_dim(h, "h")
    if mask is not None:
        keep = _keep_positions(h, mask, "pool")
        if h.ndim == 4:
            h = h.movedim(1, -1)  # [B, H, W, C]: positions first, channels last
        if how == "none":
            return h[keep]
        flat = h.reshape(h.shape[0], -1, h.shape[-1])
        keep = keep.reshape(h.shape[0], -1)
        count = keep.sum(1)
        if bool((count == 0).any()):
            empty = (count == 0).nonzero().flatten().tolist()
            raise ValueError(
                f"pool: examples {empty[:5]} have no real token in mask (all padding): their "
                "mean is undefined"
            )
        total = torch.where(keep.unsqueeze(-1), flat, torch.zeros((), dtype=h.dtype,
                                                                  device=h.device)).sum(1)
        return total / count.unsqueeze(-1).to(h.dtype)
    if h.ndim == 2:
        return h
    if h.ndim == 3:
        return h.mean(1) if how == "mean" else h.reshape(-1, h.shape[-1])
    if how == "mean":
        return h.mean((2, 3))
    return h.movedim(1, -1).reshape(-1, h.shape[1])


def batch_mask(batch: Any) -> torch.Tensor | None:
    """The default ``mask(batch)``: a dict batch's ``"attention_mask"`` (as a Hugging Face
    tokenizer returns it), else ``None`` (no padding)."""
    if isinstance(batch, Mapping):
        mask = batch.get("attention_mask")
        return mask if isinstance(mask, torch.Tensor) else None
    return None


def _mask_source(mask: MaskFn | Sequence[Any] | None) -> Callable[[int, Any], Any]:
    """``(index, batch) -> mask or None`` from ``collect_activations``' ``mask`` argument."""
    if mask is None:
        return lambda i, batch: batch_mask(batch)
    if callable(mask):
        return lambda i, batch: mask(batch)
    if isinstance(mask, Sequence) and not isinstance(mask, (str, torch.Tensor)):
        masks = list(mask)

        def pick(i: int, batch: Any) -> Any:
            if i >= len(masks):
                raise ValueError(
                    f"mask holds {len(masks)} masks but batches has more: give one per batch"
                )
            return masks[i]

        pick.count = len(masks)  # type: ignore[attr-defined]
        return pick
    raise TypeError(
        "mask must be None (a dict batch's 'attention_mask'), a function batch -> mask, or a "
        f"sequence with one mask (or None) per batch, got {type(mask).__name__}"
    )


def masked_pool(h: torch.Tensor, how: str, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    """:func:`pool` of module ``name``'s output ``h`` under a batch's ``mask``: a mask applies
    to outputs with tokens or positions; a ``[B, D]`` output (one vector per example) has no
    padding to leave out and is returned as is. A shape mismatch names the module."""
    if mask is None or h.ndim == 2:
        return pool(h, how)
    _keep_positions(h, mask, f"module {name!r}")
    return pool(h, how, mask)


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
    mask: MaskFn | Sequence[Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Pooled outputs ``{module: [N, D]}`` of the selected modules over all ``batches``.

    Runs ``forward(model, batch)`` (default :func:`default_forward`) under ``torch.no_grad()``
    for every batch, inside ``context`` when given (e.g. :func:`otkit.steering.steer`: the
    recorded outputs are then the steered ones). Tensors stay on the activations' device and dtype.

    ``mask``: the attention mask of each batch, which :func:`pool` honours (padding is left
    out of the means and dropped as samples). ``None`` (default): a dict batch's
    ``"attention_mask"`` when it has one (:func:`batch_mask`), else no mask; a function
    ``batch -> mask or None``; or a sequence with one mask (or None) per batch. A mask applies
    to every module output with tokens ``[B, T, D]`` (or positions ``[B, C, H, W]`` for a mask
    ``[B, H, W]``) and must match its shape; ``[B, D]`` outputs are recorded as they are.
    """
    how = check_choice("pool", pool, POOLS)
    names = find_modules(model, modules)
    run = default_forward if forward is None else forward
    mask_of = _mask_source(mask)
    records: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    current: list[Any] = [None]

    def record(name: str, h: torch.Tensor) -> None:
        records[name].append(masked_pool(h.detach(), how, current[0], name))

    active = contextlib.nullcontext() if context is None else context
    count = 0
    with torch.no_grad(), active, rewrite_outputs(model, names, record):
        for batch in batches:
            current[0] = mask_of(count, batch)
            run(model, batch)
            count += 1
    if count == 0:
        raise ValueError("batches is empty: give at least one batch")
    expected = getattr(mask_of, "count", None)
    if expected is not None and expected != count:
        raise ValueError(f"mask holds {expected} masks for {count} batches: give one per batch")
    missing = [n for n, r in records.items() if not r]
    if missing:
        raise ValueError(f"modules {missing[:5]} never ran during forward: check modules/forward")
    return {n: torch.cat(r) for n, r in records.items()}
