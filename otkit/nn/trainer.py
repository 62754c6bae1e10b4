"""A small AdamW trainer for next-token models: warmup + cosine schedule, gradient clipping.

Loshchilov and Hutter (2019), "Decoupled weight decay regularization" (AdamW); the schedule of
GPT-style training: the learning rate at step s (0-based) of S is

    η(s) = η_max · (s + 1) / W                                             s < W (linear warmup)
    η(s) = η_min + ½ (η_max − η_min) (1 + cos(π (s − W) / (S − W)))        s ≥ W (cosine decay)

with η_min = ``min_lr_ratio`` · η_max (:func:`warmup_cosine` gives η(s) / η_max). Gradients are
clipped to a global L2 norm ``grad_clip`` before each step.

The data are a tensor of token ids ``inputs: [N, T]`` and next-token ``targets: [N, T]`` (the
id to predict at each position, or ``IGNORE`` = −100 where nothing is scored, e.g. prompt
tokens); the loss is the mean cross-entropy over scored positions. Mini-batches are drawn with
replacement from a generator seeded by ``seed``: two runs with the same seed and the same
initial model give the same losses.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..validation import check_count, check_nonnegative, check_positive

__all__ = ["IGNORE", "TrainerConfig", "TrainResult", "warmup_cosine", "sequence_loss", "train",
           "snapshot"]

#: The target id of positions that are not scored.
IGNORE = -100


@dataclass(frozen=True)
class TrainerConfig:
    """Hyper-parameters of :func:`train`.

    Attributes:
        steps: S, optimizer steps.
        batch_size: sequences per step.
        lr: η_max (a :func:`otkit.nn.transformer.param_groups` group's own lr is scaled alike).
        weight_decay: AdamW's decoupled weight decay (a group's own value wins).
        warmup: W, warmup steps (0 = none).
        min_lr_ratio: η_min / η_max at the end of the cosine.
        grad_clip: max global gradient norm (None = no clipping).
        betas: AdamW's (β₁, β₂).
        eval_every: evaluate every this many steps (and at the last step).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    betas: tuple[float, float] = (0.9, 0.98)
    eval_every: int = 100

    def __post_init__(self) -> None:
        check_count("steps", self.steps)
        check_count("batch_size", self.batch_size)
        check_positive("lr", self.lr)
        check_nonnegative("weight_decay", self.weight_decay)
        check_count("warmup", self.warmup, minimum=0)
        if self.warmup >= self.steps:
            raise ValueError(f"warmup={self.warmup} must be < steps={self.steps}")
        if not (0.0 <= self.min_lr_ratio <= 1.0):
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.grad_clip is not None:
            check_positive("grad_clip", self.grad_clip)
        check_count("eval_every", self.eval_every)


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes:
        losses: training loss of each step's mini-batch (length S).
        lrs: the learning-rate multiplier η(s) / η_max of each step.
        grad_norms: global gradient norm of each step, before clipping.
        eval_steps: steps after which the eval loss was computed (1-based counts).
        eval_losses: eval loss at those steps (empty without eval data).
        seconds: wall-clock time.
    """

    losses: tuple[float, ...]
    lrs: tuple[float, ...]
    grad_norms: tuple[float, ...]
    eval_steps: tuple[int, ...]
    eval_losses: tuple[float, ...]
    seconds: float

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last 10% of the steps (at least one)."""
        k = max(1, len(self.losses) // 10)
        return sum(self.losses[-k:]) / k


def warmup_cosine(step: int, steps: int, warmup: int, min_lr_ratio: float) -> float:
    """η(step) / η_max: linear warmup over ``warmup`` steps, then cosine to ``min_lr_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return min_lr_ratio + 0.5 * (1.0 - min_lr_ratio) * (1.0 + math.cos(math.pi * progress))


def sequence_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of ``model(inputs): [B, T, V]`` at the scored targets."""
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=IGNORE)


def _check_data(name: str, inputs: object, targets: object) -> None:
    for what, t in ((f"{name}inputs", inputs), (f"{name}targets", targets)):
        if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.dtype != torch.long:
            raise ValueError(f"{what} must be a [N, T] tensor of int64 token ids")
    if inputs.shape != targets.shape:
        raise ValueError(
            f"{name}inputs {tuple(inputs.shape)} and {name}targets {tuple(targets.shape)} must "
            "have the same shape"
        )
    if inputs.shape[0] == 0:
        raise ValueError(f"{name}inputs is empty")
    if not bool((targets != IGNORE).any()):
        raise ValueError(f"{name}targets scores no position (all are IGNORE = {IGNORE})")


@torch.no_grad()
def _eval_loss(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batch: int) -> float:
    total, count = 0.0, 0
    for i in range(0, inputs.shape[0], batch):
        x, y = inputs[i:i + batch], targets[i:i + batch]
        n = int((y != IGNORE).sum())
        if n:
            total += float(sequence_loss(model, x, y)) * n
            count += n
    return total / count


def train(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    config: TrainerConfig | None = None,
    eval_inputs: torch.Tensor | None = None,
    eval_targets: torch.Tensor | None = None,
    groups: list[Mapping] | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place with AdamW on next-token cross-entropy.

    Args:
        model: maps ids ``[B, T]`` to logits ``[B, T, V]`` (e.g. :class:`Transformer`).
        inputs, targets: ``[N, T]`` int64; targets hold :data:`IGNORE` where not scored.
        config: :class:`TrainerConfig` (defaults when None).
        eval_inputs, eval_targets: held-out data, evaluated every ``eval_every`` steps.
        groups: optimizer parameter groups (e.g. :func:`param_groups`); each group's ``lr``
            (default ``config.lr``) is multiplied by the schedule. Default: all parameters.
        seed: seeds the mini-batch draws (and dropout).
        progress: show a tqdm bar (False disables it).
        callback: ``callback(step, model)`` after each evaluation (1-based step count), in
            eval mode; e.g. to keep checkpoints.

    Returns:
        :class:`TrainResult`. The model is left in eval mode.
    """
    config = TrainerConfig() if config is None else config
    if not isinstance(config, TrainerConfig):
        raise TypeError(f"config must be a TrainerConfig, got {type(config).__name__}")
    _check_data("", inputs, targets)
    has_eval = eval_inputs is not None or eval_targets is not None
    if has_eval:
        _check_data("eval_", eval_inputs, eval_targets)
    device = next(model.parameters()).device
    if groups is None:
        groups = [{"params": list(model.parameters())}]
    groups = [dict(g) for g in groups]
    for g in groups:
        g.setdefault("lr", config.lr)
        g.setdefault("weight_decay", config.weight_decay)
        g["base_lr"] = g["lr"]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas,
                                  weight_decay=config.weight_decay)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    gen = torch.Generator().manual_seed(int(seed))
    # dropout draws from torch's global generator: seed it without disturbing the caller's
    fork = torch.random.fork_rng(devices=[] if device.type == "cpu" else [device])
    losses, lrs, norms, eval_steps, eval_losses = [], [], [], [], []
    start = time.perf_counter()
    with fork:
        torch.manual_seed(int(seed))
        bar = tqdm(range(config.steps), disable=not progress, desc="train", leave=False)
        for step in bar:
            model.train()
            mult = warmup_cosine(step, config.steps, config.warmup, config.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * mult
            idx = torch.randint(inputs.shape[0], (config.batch_size,), generator=gen)
            x, y = inputs[idx].to(device), targets[idx].to(device)
            loss = sequence_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            clip = math.inf if config.grad_clip is None else config.grad_clip
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
            optimizer.step()
            losses.append(loss.item())
            lrs.append(mult)
            norms.append(float(norm))
            done = step + 1
            if done % config.eval_every == 0 or done == config.steps:
                model.eval()
                if has_eval:
                    eval_steps.append(done)
                    eval_losses.append(_eval_loss(model, eval_inputs.to(device),
                                                  eval_targets.to(device), 4 * config.batch_size))
                    bar.set_postfix(loss=f"{losses[-1]:.3f}", eval=f"{eval_losses[-1]:.3f}")
                if callback is not None:
                    callback(done, model)
    model.eval()
    return TrainResult(tuple(losses), tuple(lrs), tuple(norms), tuple(eval_steps),
                       tuple(eval_losses), time.perf_counter() - start)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model.state_dict()`` (for keeping checkpoints from ``callback``)."""
    return copy.deepcopy({k: v.detach().clone() for k, v in model.state_dict().items()})
