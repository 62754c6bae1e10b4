"""LinEAS: end-to-end learning of activation steering with a distributional loss.

Rodriguez, Klein, Gualdoni, Maiorca, Blaas, Zappella, Cuturi, Suau (2025), "LinEAS: End-to-end
Learning of Activation Steering with a Distributional Loss". Every steered module ℓ gets a
coordinate-wise affine map h ↦ ω_ℓ ⊙ h + β_ℓ, written as a deviation from the identity,

    θ_ℓ = (ω_ℓ − 1, β_ℓ) ∈ R^{2 × D_ℓ},   θ = 0 ⟺ no intervention.

All maps are trained jointly, end to end: the source activations at layer ℓ are recomputed
through the model with every upstream map active (so gradients reach θ_1 through layers
1..ℓ), while the target activations are fixed. The loss sums coordinate-wise 1-D squared
Wasserstein distances between pooled steered source and target activations,

    L(θ) = Σ_ℓ (1/D_ℓ) Σ_d W₂²(law of s'_{ℓ,d}, law of t_{ℓ,d}),

each computed exactly by sorting (:func:`wasserstein_1d`). Sparsity comes from proximal
gradient steps on the sparse group lasso, whose groups are the layers,

    R(θ) = l1 Σ_ℓ ‖θ_ℓ‖₁ + group Σ_ℓ ‖θ_ℓ‖₂,

with the closed-form prox (Friedman, Hastie, Tibshirani 2010; Simon et al. 2013): soft-threshold
every entry by l1·lr, then shrink each layer's whole block by group·lr,

    u = sign(v) max(|v| − a, 0),   prox(v) = max(0, 1 − b / ‖u‖₂) u.

A neuron with θ_{ℓ,:,d} = 0 is exactly the identity and a layer with θ_ℓ = 0 is not steered at
all: the support selects neurons and layers.

**Proximal Adam.** Adam's step θ − lr · m̂ / (√v̂ + ε) is a gradient step in the metric
H = diag(√v̂ + ε) / lr, so its proximal version takes the prox in that metric,

    θ⁺ = argmin_θ ½ Σ_i H_i (θ_i − v_i)² + R(θ),   v = Adam's step,

which soft-thresholds coordinate i at l1 · lr / (√v̂_i + ε), Adam's own step size for it, and
then shrinks the layer's block in the same metric (one monotone 1-D equation,
:func:`sparse_group_prox` with ``metric``). A coordinate at 0 then stays at 0 exactly when
|m̂_i| ≤ l1, the lasso's optimality condition, so l1 means the same for Adam as for SGD. The
naive pairing, an Adam step then the Euclidean prox at l1 · lr, zeroes a coordinate when its
*normalized* step |m̂_i| / (√v̂_i + ε), about 1 for any live coordinate, falls below l1: the
threshold is blind to the gradient's scale and the support collapses near l1 = 1 (on the
GPT-2 of :mod:`otkit.steering.text`, from 83% of the neurons at l1 = 0.8 to 10% at 1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..nn.hooks import (
    Forward,
    MaskFn,
    _mask_source,
    apply_channelwise,
    default_forward,
    masked_pool,
    rewrite_outputs,
)
from ..validation import check_choice, check_count, check_positive
from .hooks import _check_channels, check_fit_inputs, collect_activations
from .intervention import Intervention
from .maps import AffineMap

__all__ = ["fit_lineas", "LinEASResult", "wasserstein_1d", "sparse_group_prox"]


def wasserstein_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Coordinate-wise squared 2-Wasserstein distances ``[D]`` between ``a: [N, D]`` and ``b: [M, D]``.

    Each column is an empirical law with uniform weights. In 1-D, W₂² = ∫₀¹ (F_a⁻¹(u) − F_b⁻¹(u))² du
    and both quantile functions are step functions with breaks at i/N and j/M, so the integral
    is an exact finite sum over the merged breakpoints (for N = M: the mean squared difference
    of the sorted columns). Differentiable in ``a`` and ``b``.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must have shapes [N, D] and [M, D], got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError("a and b need at least one sample each")
    n, m = a.shape[0], b.shape[0]
    a_sorted, b_sorted = a.sort(dim=0).values, b.sort(dim=0).values
    if n == m:
        return (a_sorted - b_sorted).pow(2).mean(0)
    dev = a.device
    breaks = torch.cat([
        torch.arange(1, n + 1, device=dev, dtype=torch.float64) / n,
        torch.arange(1, m + 1, device=dev, dtype=torch.float64) / m,
    ]).unique()  # sorted, ends at 1
    left = torch.cat([breaks.new_zeros(1), breaks[:-1]])
    width = (breaks - left).to(a.dtype)
    mid = (breaks + left) / 2
    ia = (mid * n).floor().long().clamp(max=n - 1)
    ib = (mid * m).floor().long().clamp(max=m - 1)
    return ((a_sorted[ia] - b_sorted[ib]).pow(2) * width.unsqueeze(1)).sum(0)


def sparse_group_prox(
    v: torch.Tensor, l1: float, group: float, metric: torch.Tensor | None = None
) -> torch.Tensor:
    """The prox of θ ↦ l1‖θ‖₁ + group‖θ‖₂ at ``v`` (one group, any shape), in the Euclidean
    metric or in a diagonal one.

    Without ``metric``: argmin_θ ½‖θ − v‖² + l1‖θ‖₁ + group‖θ‖₂ = max(0, 1 − group/‖u‖₂) u
    with u the entry-wise soft threshold of v at l1.

    With ``metric`` H (positive, the shape of ``v``): argmin_θ ½ Σ_i H_i (θ_i − v_i)² +
    l1‖θ‖₁ + group‖θ‖₂. Its solution is u_i = sign(v_i) max(|v_i| − l1 / H_i, 0) (a
    per-coordinate threshold), then θ = 0 if ‖H ⊙ u‖₂ ≤ group, else θ_i = H_i u_i r / (H_i r +
    group) with r = ‖θ‖₂ > 0 the root of Σ_i (H_i u_i / (H_i r + group))² = 1 (a convex,
    decreasing function of r, solved by Newton's method from r = 0, which increases to the
    root monotonically). H constant = 1/s gives the Euclidean prox at (l1·s, group·s).
    """
    if metric is None:
        u = v.sign() * (v.abs() - l1).clamp(min=0)
        norm = torch.linalg.vector_norm(u)
        scale = (1 - group / norm.clamp(min=torch.finfo(u.dtype).tiny)).clamp(min=0)
        return u * scale
    if metric.shape != v.shape:
        raise ValueError(f"metric must have v's shape {tuple(v.shape)}, got {tuple(metric.shape)}")
    if not bool((metric > 0).all()):
        raise ValueError("metric must be positive")
    h = metric.to(v.dtype)
    u = v.sign() * (v.abs() - l1 / h).clamp(min=0)
    if group == 0:
        return u
    # The group step in float64: r solves a scalar equation whose terms may be tiny.
    hu = (h * u).double().flatten()
    hd = h.double().flatten()
    if float(torch.linalg.vector_norm(hu)) <= group:
        return torch.zeros_like(v)
    r = 0.0
    for _ in range(100):
        den = hd * r + group
        g = float((hu / den).pow(2).sum())  # decreasing and convex in r, > 1 left of the root
        dg = float((-2 * hu.pow(2) * hd / den.pow(3)).sum())
        step = (g - 1) / dg  # <= 0 while g >= 1
        r_new = r - step
        if not r_new > r or r_new - r <= 1e-15 * max(r_new, 1e-300):
            r = max(r, r_new)
            break
        r = r_new
    theta = (hu * r / (hd * r + group)).reshape(v.shape)
    return theta.to(v.dtype)


@dataclass(frozen=True, eq=False)
class LinEASResult:
    """A trained LinEAS intervention and the record of its training.

    Attributes:
        intervention: the maps of every module (identity where the prox zeroed them),
            strength 1, method "lineas".
        losses: ``[steps]`` float64 loss before each step.
        support: ``{module: [D] bool}`` neurons whose map is not the identity.
        fraction_kept: share of all neurons that are steered.
        layers_kept: names of the modules with at least one steered neuron, in model order.
    """

    intervention: Intervention
    losses: torch.Tensor
    support: dict[str, torch.Tensor]
    fraction_kept: float
    layers_kept: tuple[str, ...]

    def __repr__(self) -> str:
        return (
            f"LinEASResult(steps={self.losses.numel()}, loss {self.losses[0]:.4g} -> "
            f"{self.losses[-1]:.4g}, fraction_kept={self.fraction_kept:.3f}, "
            f"layers_kept={len(self.layers_kept)}/{len(self.support)})"
        )


def _adam_metric(opt: torch.optim.Adam, p: torch.Tensor) -> torch.Tensor:
    """H = (√v̂ + ε) / lr: the metric of the Adam step ``opt`` just took on ``p`` (the step
    was p − m̂ / H), with v̂ = v / (1 − β₂ᵗ) as in ``torch.optim.Adam``."""
    group = opt.param_groups[0]
    state = opt.state[p]
    if "exp_avg_sq" not in state:  # no gradient reached p: Adam did not move it
        return torch.full_like(p, 1.0 / group["lr"])
    step = float(state["step"])
    beta2, eps, lr = group["betas"][1], group["eps"], group["lr"]
    denom = state["exp_avg_sq"].sqrt() / math.sqrt(1 - beta2**step) + eps
    return denom / lr


def _check_nonnegative(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number >= 0, got {type(value).__name__}")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return float(value)


def fit_lineas(
    model: nn.Module,
    modules: str | Sequence[str],
    source: Iterable[Any],
    target: Iterable[Any],
    *,
    forward: Forward | None = None,
    pool: str = "mean",
    steps: int = 300,
    lr: float = 1e-2,
    l1: float = 0.0,
    group: float = 0.0,
    batch_size: int | None = None,
    seed: int = 0,
    optimizer: str = "adam",
    mask: MaskFn | None = None,
    progress: bool = False,
) -> LinEASResult:
    """Train coordinate-wise affine maps on all selected modules jointly (LinEAS).

    Args:
        model: any ``nn.Module`` in eval mode; its weights are frozen during training (their
            ``requires_grad`` flags are restored afterwards).
        modules: a regex or a list of module names.
        source, target: lists of batches fed to ``forward(model, batch)``. Target activations
            are computed once; source activations are recomputed every step with the maps on.
        forward: runs the model on one batch (default ``model(batch)``, ``model(**batch)``
            for a dict).
        pool: "mean" (one sample per example) or "none" (one per token/position).
        steps, lr: number of proximal gradient steps and the step size.
        l1, group: sparse group lasso weights (neurons and layers); 0 = no penalty. They are
            in the loss's units for both optimizers: a neuron is dropped where the loss's
            gradient stays below l1 (the lasso's optimality condition).
        batch_size: source batches per step, drawn without replacement (None = all).
        seed: seed of the batch draws.
        optimizer: "adam" (default) or "sgd"; the prox follows every optimizer step. With
            "sgd" it is the Euclidean prox at thresholds (l1·lr, group·lr), proximal SGD.
            With "adam" it is *proximal Adam*: the prox in the metric of Adam's diagonal
            preconditioner, each coordinate soft-thresholded at l1 · lr / (√v̂_i + ε), the
            step size Adam gave it (module docstring). Adam's normalized steps make one
            learning rate fit every layer, and its prox keeps l1's meaning; the Euclidean
            prox after an Adam step would compare l1 to Adam's normalized step instead and
            collapse the support near l1 = 1. SGD's steps scale with the gradients, which
            are small here (the loss averages over neurons): it needs a far larger ``lr``
            (e.g. 2 where Adam takes 0.05).
        mask: the attention mask of a batch, ``mask(batch) -> [B, T] or None``; default: a
            dict batch's ``"attention_mask"``. Padding is left out of the pooled activations
            (means over real tokens; pad tokens are not samples).
        progress: show a progress bar.
    """
    steps = check_count("steps", steps)
    lr = check_positive("lr", lr)
    l1 = _check_nonnegative("l1", l1)
    group = _check_nonnegative("group", group)
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    names, source, target = check_fit_inputs(model, modules, source, target, pool, mask)
    if batch_size is not None:
        batch_size = min(check_count("batch_size", batch_size), len(source))
    run = default_forward if forward is None else forward

    mask_of = _mask_source(mask)
    targets = collect_activations(model, names, target, forward=run, pool=pool, mask=mask)
    device = next(iter(targets.values())).device
    # θ = (ω − 1, β) per layer: zeros are the identity, exactly.
    theta = {
        n: torch.zeros(2, t.shape[1], device=device, dtype=torch.float32, requires_grad=True)
        for n, t in targets.items()
    }
    targets = {n: t.float() for n, t in targets.items()}
    params = list(theta.values())
    opt = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.SGD(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = torch.empty(steps, device=device, dtype=torch.float32)

    records: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    current: list[Any] = [None]

    def steer_and_record(name: str, h: torch.Tensor) -> torch.Tensor:
        _check_channels(name, h, theta[name].shape[1])
        t = theta[name].to(h.dtype)
        new = apply_channelwise(h, lambda z: z * (1 + t[0]) + t[1])
        records[name].append(masked_pool(new, pool, current[0], name).float())
        return new

    frozen = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in frozen:
            p.requires_grad_(False)
        for step in tqdm(range(steps), desc="LinEAS", disable=not progress):
            if batch_size is None:
                chosen = source
            else:
                chosen = [source[i] for i in torch.randperm(len(source), generator=gen)[:batch_size]]
            for r in records.values():
                r.clear()
            with torch.enable_grad(), rewrite_outputs(model, names, steer_and_record):
                for batch in chosen:
                    current[0] = mask_of(0, batch)
                    run(model, batch)
                missing = [n for n in names if not records[n]]
                if missing:
                    raise ValueError(
                        f"modules {missing[:5]} never ran during forward: check modules/forward"
                    )
                loss = sum(
                    wasserstein_1d(torch.cat(records[n]), targets[n]).mean() for n in names
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[step] = loss.detach()
            if l1 > 0 or group > 0:
                with torch.no_grad():
                    for p in params:
                        if optimizer == "adam":
                            # Proximal Adam: the prox in the metric of the step just taken.
                            p.copy_(sparse_group_prox(p, l1, group, _adam_metric(opt, p)))
                        else:
                            p.copy_(sparse_group_prox(p, l1 * lr, group * lr))
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        for r in records.values():
            r.clear()

    maps = {}
    support = {}
    for n in names:
        th = theta[n].detach()
        maps[n] = AffineMap(1 + th[0], th[1].clone())
        # From the map itself: a θ below float32 resolution of ω = 1 is the identity too.
        support[n] = ~maps[n].is_identity()
    kept = sum(int(s.sum()) for s in support.values())
    total = sum(s.numel() for s in support.values())
    return LinEASResult(
        intervention=Intervention(maps, 1.0, "lineas"),
        losses=losses.cpu().double(),
        support=support,
        fraction_kept=kept / total,
        layers_kept=tuple(n for n in names if bool(support[n].any())),
    )
