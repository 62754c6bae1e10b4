"""Fitting AcT interventions layer after layer (Rodriguez et al. 2024).

"Controlling Language and Diffusion Models by Transporting Activations". For modules
ℓ = 1, ..., L in model order, AcT estimates the per-neuron map T_ℓ from

    source activations  s_ℓ = h_ℓ(x_src)  with T_1, ..., T_{ℓ−1} already active,
    target activations  t_ℓ = h_ℓ(x_tgt)  of the unsteered model,

so each layer corrects what the layers before it left over (the source distribution at layer ℓ
is the one the steered model really sees). Activations are pooled per example (mean over
tokens, or over H, W for images) unless ``pool="none"``. The estimator is Linear-AcT (sorting
+ least squares, applied on the source support) or one of its siblings, see
:mod:`otkit.steering.maps`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from torch import nn
from tqdm.auto import tqdm

from ..nn.hooks import Forward
from ..validation import check_choice
from .hooks import check_fit_inputs, collect_activations
from .intervention import Intervention
from .maps import ESTIMATORS, AffineMap

__all__ = ["fit_act"]


def fit_act(
    model: nn.Module,
    modules: str | Sequence[str],
    source: Iterable[Any],
    target: Iterable[Any],
    *,
    method: str = "linear_act",
    forward: Forward | None = None,
    pool: str = "mean",
    progress: bool = False,
) -> Intervention:
    """Estimate an AcT intervention on the selected modules, one layer after another.

    Args:
        model: any ``nn.Module`` (put it in eval mode first: dropout would add noise).
        modules: a regex or a list of module names (see :func:`find_modules`).
        source, target: lists of batches, each fed to ``forward(model, batch)``; source holds
            the behaviour to move away from, target the one to move to. They are iterated once
            for the targets and once per layer for the sources, so pass lists, not generators.
        method: a key of :data:`~otkit.steering.maps.ESTIMATORS` ("linear_act", "gaussian",
            "mean_shift").
        forward: runs the model on one batch (default ``model(batch)``).
        pool: "mean" (one sample per example) or "none" (one per token/position).
        progress: show a progress bar over layers.

    Returns:
        an :class:`Intervention` at strength 1 with one map per module, in model order.
    """
    check_choice("method", method, ESTIMATORS)
    names, source, target = check_fit_inputs(model, modules, source, target, pool)
    estimate = ESTIMATORS[method]
    # Targets come from the unsteered model: one pass records every layer.
    targets = collect_activations(model, names, target, forward=forward, pool=pool)
    maps: dict[str, AffineMap] = {}
    for name in tqdm(names, desc="AcT layers", disable=not progress):
        steering = Intervention(dict(maps), 1.0, method) if maps else None
        src = collect_activations(
            model, [name], source, forward=forward, pool=pool, intervention=steering
        )[name]
        tgt = targets[name]
        if src.shape[1] != tgt.shape[1]:
            raise ValueError(
                f"module {name!r} gives {src.shape[1]} channels on source but {tgt.shape[1]} "
                "on target"
            )
        maps[name] = estimate(src, tgt)
    return Intervention(maps, 1.0, method)
