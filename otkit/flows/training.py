"""The flow matching loss and a trainer that draws its pairs from a coupling.

Conditional flow matching (Lipman et al. 2023; Liu et al. 2022; Albergo and Vanden-Eijnden
2023) with straight interpolants: for pairs (x₀, x₁) ~ π and t ~ U[0, 1],

    x_t = (1 − t) x₀ + t x₁,    L(θ) = E ‖v_θ(x_t, t) − (x₁ − x₀)‖²,

whose minimizer is the velocity field of a flow carrying the source law onto the target.
How the pairs are drawn — independently, or from an entropic OT plan of a batch of n points —
is the coupling (:mod:`otkit.flows.couplings`).

Training at coupling size n (Zhang et al. 2025): draw n source and n target points, pair them
with the coupling, shuffle the n pairs and use them for ⌊n / batch_size⌋ SGD steps of
``batch_size`` pairs; then draw afresh. The number of steps and the SGD batch size fix the
training budget, so flows at different n and ε are compared at equal budget; n only changes
how good the pairs are (and what they cost to make).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ..nn.ode import integrate
from ..validation import check_choice, check_count, check_positive, check_probability
from .couplings import Coupling, IndependentCoupling, make_coupling
from .distributions import Distribution
from .guidance import GuidedVelocity, drop_labels
from .hpf import make_distance, squared_l2
from .time_samplers import make_time_sampler
from .weighting import LOSS_WEIGHTINGS, weighted_flow_matching_loss

__all__ = ["flow_matching_loss", "train_flow", "FlowTrainingResult"]


def flow_matching_loss(
    model: nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    t: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``mean_k ‖v_θ(x_t, t_k) − (x₁ − x₀)‖²`` over pairs ``x0, x1: [k, d]`` (a 0-d tensor).

    ``t: [k]`` defaults to fresh U[0, 1] draws from ``generator``. The squared norm is summed
    over coordinates and averaged over pairs.
    """
    if x0.shape != x1.shape or x0.ndim != 2:
        raise ValueError(
            f"x0 and x1 must have the same shape [k, d], got {tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    if t is None:
        t = torch.rand(x0.shape[0], generator=generator, device=x0.device, dtype=x0.dtype)
    elif t.shape != (x0.shape[0],):
        raise ValueError(f"t must have shape [{x0.shape[0]}], got {tuple(t.shape)}")
    tt = t.unsqueeze(1)
    xt = (1 - tt) * x0 + tt * x1
    return (model(xt, t) - (x1 - x0)).pow(2).sum(1).mean()


@dataclass(frozen=True, repr=False)
class FlowTrainingResult:
    """A trained flow and the record of its training.

    Attributes:
        model: the trained velocity network (last iterate), in eval mode.
        ema_model: the exponential moving average of its weights (what to sample from).
        losses: ``[steps]`` float64 training losses.
        coupling: the coupling's name, e.g. ``"sinkhorn(relative_epsilon=0.01)"``.
        coupling_size: n, the points per side of each coupled batch.
        batch_size, steps: the SGD batch size and number of steps (the training budget).
        renormalized_entropies: ``[rounds]`` sharpness of each coupled batch's plan.
        pairing_seconds: wall time spent pairing (solving and sampling couplings).
        training_seconds: total wall time, pairing included.
        converged_fraction: share of the coupled batches whose solver reached its tolerance.
        seed: the seed of the run.
    """

    model: nn.Module
    ema_model: nn.Module
    losses: torch.Tensor
    coupling: str
    coupling_size: int
    batch_size: int
    steps: int
    renormalized_entropies: torch.Tensor
    pairing_seconds: float
    training_seconds: float
    converged_fraction: float
    seed: int

    def __repr__(self) -> str:
        return (
            f"FlowTrainingResult(coupling={self.coupling!r}, n={self.coupling_size}, "
            f"batch_size={self.batch_size}, steps={self.steps}, "
            f"final_loss={self.losses[-100:].mean().item():.4g}, "
            f"renormalized_entropy={self.renormalized_entropies.mean().item():.3g}, "
            f"pairing={self.pairing_seconds:.1f}s, total={self.training_seconds:.1f}s)"
        )

    def sample(
        self,
        x0: torch.Tensor,
        *,
        nfe: int,
        method: str = "euler",
        ema: bool = True,
        return_path: bool = False,
        labels: torch.Tensor | None = None,
        guidance: float = 0.0,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Push source samples ``x0: [k, d]`` through the flow (:func:`~otkit.flows.integrate`).

        ``labels: [k]`` (a class-conditional flow): integrate the guided velocity
        v_y + w (v_y − v_∅) at ``guidance`` w (:mod:`otkit.flows.guidance`; w = 0 conditional,
        w = −1 unconditional)."""
        model = self.ema_model if ema else self.model
        param = next(model.parameters())
        x0 = x0.to(device=param.device, dtype=param.dtype)
        if labels is not None:
            if labels.shape != (x0.shape[0],):
                raise ValueError(f"labels must have shape [{x0.shape[0]}], got {tuple(labels.shape)}")
            field = GuidedVelocity(model, labels.to(param.device), guidance)
            return integrate(field, x0, nfe=nfe, method=method, return_path=return_path)
        if guidance != 0.0:
            raise ValueError("guidance needs labels= (the classes to guide towards)")
        return integrate(model, x0, nfe=nfe, method=method, return_path=return_path)


def _ema_update(ema_model: nn.Module, model: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for pe, p in zip(ema_model.parameters(), model.parameters()):
            pe.lerp_(p, 1.0 - decay)


def train_flow(
    model: nn.Module,
    source: Distribution,
    target: Distribution,
    *,
    coupling: str | float | Coupling = "independent",
    steps: int = 2000,
    batch_size: int = 256,
    coupling_size: int | None = None,
    lr: float = 1e-3,
    ema: float = 0.999,
    seed: int = 0,
    progress: bool = False,
    time_sampler=None,
    loss_weighting: str = "none",
    loss_distance=None,
    label_dropout: float | None = None,
) -> FlowTrainingResult:
    """Fit ``model`` by flow matching on pairs from ``coupling`` (module docstring).

    Args:
        model: a velocity network ``(x: [k, d], t: [k]) -> [k, d]``; trained in place on its
            own device and dtype.
        source, target: the laws, callables ``(n, generator) -> [n, d]``
            (:mod:`otkit.flows.distributions`).
        coupling: ``"independent"``, ``"exact"``, a relative ε, or a
            :class:`~otkit.flows.couplings.Coupling`.
        steps: SGD steps (Adam), the training budget.
        batch_size: pairs per SGD step.
        coupling_size: n ≥ batch_size, points per side of each coupled batch (default
            ``batch_size``); the n pairs serve ⌊n / batch_size⌋ steps.
        lr: Adam's learning rate.
        ema: decay of the exponential moving average of the weights, in [0, 1); step s
            uses ``min(ema, (1 + s) / (10 + s))`` so the initial weights wash out.
        seed: seeds the data draws, the pairing, the times t and the shuffles (not the
            model's initialization: seed torch before building the model).
        progress: show a tqdm bar.
        time_sampler: the law of t (:func:`otkit.flows.time_samplers.make_time_sampler`):
            ``None`` (U[0, 1], drawn as always), ``"uniform"``, ``"noise"`` (Simple ReFlow's
            density ∝ 10^(1 − t)) or a sampler.
        loss_weighting: ``"none"`` (the mean) or ``"normalized"`` (Simple ReFlow's
            w = 1/sg[loss]; :mod:`otkit.flows.weighting`).
        loss_distance: the per-pair distance of the loss: ``None``/``"l2"`` (‖·‖²), ``"hpf"``
            (Simple ReFlow's high-pass-filter distance for images, :mod:`otkit.flows.hpf`) or a
            callable ``(v: [k, d], u: [k, d]) -> [k]``.
        label_dropout: train a class-conditional ``model`` (built with ``num_classes=``) for
            classifier-free guidance: ``target`` must be a
            :class:`~otkit.flows.guidance.LabeledEmpirical`, the coupling independent, and each
            label is replaced by the null label with this probability
            (:mod:`otkit.flows.guidance`). ``None`` (default): unconditional.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pairing_rule = make_coupling(coupling)
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size)
    n = batch_size if coupling_size is None else check_count("coupling_size", coupling_size)
    if n < max(batch_size, 2):
        raise ValueError(
            f"coupling_size must be at least batch_size={batch_size} (and 2), got {n}: "
            "each coupled batch serves whole SGD batches"
        )
    steps_per_round = n // batch_size  # a ragged tail of the n pairs is dropped
    lr = check_positive("lr", lr)
    ema = check_probability("ema", ema, closed=True)
    if ema == 1.0:
        raise ValueError("ema must lie in [0, 1): a decay of 1 never updates the average")
    check_count("seed", seed, minimum=0)
    time_rule = make_time_sampler(time_sampler)
    check_choice("loss_weighting", loss_weighting, LOSS_WEIGHTINGS)
    distance = make_distance(loss_distance)
    conditional = label_dropout is not None
    if conditional:
        label_dropout = check_probability("label_dropout", label_dropout, closed=True)
        if not hasattr(target, "labeled"):
            raise TypeError("label_dropout needs a labelled target law (otkit.flows.guidance.LabeledEmpirical)")
        if not isinstance(pairing_rule, IndependentCoupling):
            raise ValueError("label_dropout (conditional training) needs coupling='independent': "
                             "other couplings reorder the targets and lose their labels")
        if getattr(model, "label_embed", None) is None:
            raise ValueError("label_dropout needs a class-conditional model (built with num_classes=)")

    param = next(model.parameters())
    device, dtype = param.device, param.dtype
    cpu_gen = torch.Generator().manual_seed(seed)
    device_gen = cpu_gen if device.type == "cpu" else torch.Generator(device).manual_seed(seed)
    ema_model = copy.deepcopy(model).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()

    losses = torch.empty(steps, dtype=torch.float64)
    entropies: list[float] = []
    converged: list[bool] = []
    pairing_seconds = 0.0
    start = time.perf_counter()
    pool_source = pool_target = pool_labels = torch.empty(0)
    for step in tqdm(range(steps), disable=not progress, desc=f"flow [{pairing_rule}]"):
        k = step % steps_per_round
        if k == 0:
            x0 = _draw(source, n, cpu_gen, "source", device, dtype)
            if conditional:
                x1, y1 = target.labeled(n, cpu_gen)
                x1 = _draw(lambda _n, _g, x=x1: x, n, cpu_gen, "target", device, dtype)
            else:
                x1 = _draw(target, n, cpu_gen, "target", device, dtype)
            pairing = pairing_rule.pair(x0, x1, generator=device_gen)
            pairing_seconds += pairing.seconds
            entropies.append(pairing.renormalized_entropy)
            converged.append(pairing.converged)
            order = torch.randperm(n, generator=cpu_gen).to(device)
            pool_source, pool_target = pairing.source[order], pairing.target[order]
            if conditional:  # independent pairs keep the targets' order
                pool_labels = y1.to(device)[order]
        b0 = pool_source[k * batch_size : (k + 1) * batch_size]
        b1 = pool_target[k * batch_size : (k + 1) * batch_size]
        t = time_rule(b0.shape[0], cpu_gen, dtype).to(device)
        labels = None
        if conditional:
            labels = drop_labels(pool_labels[k * batch_size : (k + 1) * batch_size], label_dropout, cpu_gen)
        if loss_weighting == "none" and labels is None and distance is squared_l2:
            loss = flow_matching_loss(model, b0, b1, t)
        else:
            loss = weighted_flow_matching_loss(model, b0, b1, t, weighting=loss_weighting,
                                               labels=labels, distance=distance)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # Warm-up (Tarvainen and Valpola 2017): early iterates would otherwise weigh
        # ema^steps in the average, 55% of it after 600 steps at 0.999.
        _ema_update(ema_model, model, min(ema, (1 + step) / (10 + step)))
        losses[step] = loss.item()
    model.eval()
    return FlowTrainingResult(
        model=model, ema_model=ema_model, losses=losses, coupling=str(pairing_rule),
        coupling_size=n, batch_size=batch_size, steps=steps,
        renormalized_entropies=torch.tensor(entropies, dtype=torch.float64),
        pairing_seconds=pairing_seconds, training_seconds=time.perf_counter() - start,
        converged_fraction=sum(converged) / len(converged), seed=seed,
    )


def _draw(law: Distribution, n: int, gen: torch.Generator, name: str, device, dtype) -> torch.Tensor:
    points = law(n, gen)
    if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[0] != n:
        raise ValueError(f"{name}(n, generator) must return a tensor of shape [n, d] with n={n}")
    if not torch.isfinite(points).all():
        raise ValueError(f"{name} returned NaN or inf values")
    return points.to(device=device, dtype=dtype)
