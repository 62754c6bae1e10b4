"""Flow matching on a fixed set of pairs (ReFlow, paired data).

:func:`~otkit.flows.train_flow` draws fresh source and target batches and pairs them with a
coupling. Some flows are instead fitted on pairs given once and for all, ``(x0, x1): [N, d]``
each, row k of both forming one pair: ReFlow's teacher-simulated pairs (Liu, Gong and Liu 2023;
:mod:`otkit.reflow`) or paired measurements. :func:`train_on_pairs` fits the same loss,

    x_t = (1 − t) x₀ + t x₁,    L(θ) = E ‖v_θ(x_t, t) − (x₁ − x₀)‖²,

over epochs of the N pairs, each shuffled and cut into ⌊N / batch_size⌋ SGD batches, with the
options of :func:`~otkit.flows.train_flow` (Adam, weight EMA with warm-up, the law of t, the
loss weighting). It returns a :class:`~otkit.flows.FlowTrainingResult` whose ``coupling`` is
``"fixed pairs"`` and whose ``coupling_size`` is N.
"""

from __future__ import annotations

import copy
import time

import torch
from torch import nn
from tqdm.auto import tqdm

from ..validation import check_choice, check_count, check_positive, check_probability
from .guidance import check_labels, drop_labels
from .hpf import make_distance
from .time_samplers import make_time_sampler
from .training import FlowTrainingResult, _ema_update
from .weighting import LOSS_WEIGHTINGS, weighted_flow_matching_loss

__all__ = ["train_on_pairs"]


def train_on_pairs(
    model: nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    *,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    ema: float = 0.999,
    seed: int = 0,
    time_sampler=None,
    loss_weighting: str = "none",
    progress: bool = False,
    loss_distance=None,
    labels: torch.Tensor | None = None,
    label_dropout: float = 0.0,
) -> FlowTrainingResult:
    """Fit ``model`` by flow matching on the pairs ``(x0[k], x1[k])`` (module docstring).

    Args:
        model: a velocity network ``(x: [k, d], t: [k]) -> [k, d]``, trained in place (start it
            from a teacher's weights to fine-tune, as ReFlow does).
        x0, x1: ``[N, d]`` the pairs' source (t = 0) and target (t = 1) ends, N ≥ batch_size.
        steps, batch_size, lr, ema, seed, progress: as in :func:`~otkit.flows.train_flow`.
        time_sampler: the law of t (:func:`~otkit.flows.time_samplers.make_time_sampler`).
        loss_weighting: ``"none"`` or ``"normalized"`` (:mod:`otkit.flows.weighting`).
        loss_distance: ``None``/``"l2"``, ``"hpf"`` (:mod:`otkit.flows.hpf`) or a callable
            ``(v: [k, d], u: [k, d]) -> [k]``.
        labels: ``[N]`` classes of the pairs, for a class-conditional ``model`` (built with
            ``num_classes=``); each is replaced by the null label with probability
            ``label_dropout`` at every use (classifier-free guidance,
            :mod:`otkit.flows.guidance`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for name, x in (("x0", x0), ("x1", x1)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.dtype.is_floating_point:
            raise ValueError(f"{name} must be a floating-point tensor of shape [N, d]")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf values")
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape [N, d], got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size)
    n = x0.shape[0]
    if n < batch_size:
        raise ValueError(f"x0 holds {n} pairs, fewer than batch_size={batch_size}")
    lr = check_positive("lr", lr)
    ema = check_probability("ema", ema, closed=True)
    if ema == 1.0:
        raise ValueError("ema must lie in [0, 1): a decay of 1 never updates the average")
    check_count("seed", seed, minimum=0)
    time_rule = make_time_sampler(time_sampler)
    check_choice("loss_weighting", loss_weighting, LOSS_WEIGHTINGS)
    distance = make_distance(loss_distance)
    label_dropout = check_probability("label_dropout", label_dropout, closed=True)
    if labels is not None:
        labels = check_labels("labels", labels, n)
        if getattr(model, "label_embed", None) is None:
            raise ValueError("labels need a class-conditional model (built with num_classes=)")
    elif label_dropout > 0:
        raise ValueError("label_dropout needs labels=")

    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    x0, x1 = x0.to(device=device, dtype=dtype), x1.to(device=device, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    per_epoch = n // batch_size
    losses = torch.empty(steps, dtype=torch.float64)
    start = time.perf_counter()
    order = torch.empty(0, dtype=torch.long)
    for step in tqdm(range(steps), disable=not progress, desc="flow [fixed pairs]"):
        k = step % per_epoch
        if k == 0:
            order = torch.randperm(n, generator=gen).to(device)
        index = order[k * batch_size : (k + 1) * batch_size]
        b0, b1 = x0[index], x1[index]
        t = time_rule(batch_size, gen, dtype).to(device)
        batch_labels = None
        if labels is not None:
            batch_labels = drop_labels(labels[index.cpu()], label_dropout, gen).to(device)
        loss = weighted_flow_matching_loss(model, b0, b1, t, weighting=loss_weighting,
                                           labels=batch_labels, distance=distance)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _ema_update(ema_model, model, min(ema, (1 + step) / (10 + step)))
        losses[step] = loss.item()
    model.eval()
    return FlowTrainingResult(
        model=model, ema_model=ema_model, losses=losses, coupling="fixed pairs",
        coupling_size=n, batch_size=batch_size, steps=steps,
        renormalized_entropies=torch.full((1,), float("nan"), dtype=torch.float64),
        pairing_seconds=0.0, training_seconds=time.perf_counter() - start,
        converged_fraction=1.0, seed=seed,
    )
