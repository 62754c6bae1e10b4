"""Activation steering by optimal transport: AcT and LinEAS.

* Rodriguez, Blaas, Klein, Zappella, Apostoloff, Cuturi, Suau (2024), "Controlling Language
  and Diffusion Models by Transporting Activations" (AcT): per-neuron 1-D OT maps between
  source and target activations, z' = λ T(z) + (1 − λ) z, fitted layer after layer;
* Rodriguez, Klein, Gualdoni, Maiorca, Blaas, Zappella, Cuturi, Suau (2025), "LinEAS:
  End-to-end Learning of Activation Steering with a Distributional Loss": coordinate-wise
  affine maps on all layers trained jointly on a sum of 1-D Wasserstein losses, with a
  sparse group lasso selecting neurons and layers.

Modules: :mod:`~otkit.steering.hooks` (record and steer activations, on the generic hooks of
:mod:`otkit.nn.hooks`),
:mod:`~otkit.steering.maps` (per-neuron maps and their estimators),
:mod:`~otkit.steering.intervention` (maps + strength; save, load, compose),
:mod:`~otkit.steering.act` (``fit_act``) and :mod:`~otkit.steering.lineas` (``fit_lineas``).
The text and image tasks live in :mod:`otkit.steering.text` and :mod:`otkit.steering.images`
(imported on demand: they pull in heavier dependencies).
"""

from ..nn.hooks import POOLS, channel_size, find_modules, pool
from .act import fit_act
from .hooks import collect_activations, steer, support_coverage
from .intervention import Intervention, compose
from .lineas import LinEASResult, fit_lineas, sparse_group_prox, wasserstein_1d
from .maps import (
    ESTIMATORS,
    AffineMap,
    check_strength,
    gaussian_map,
    linear_act,
    mean_shift,
)

__all__ = [
    "find_modules", "pool", "POOLS", "collect_activations", "steer", "channel_size",
    "AffineMap", "linear_act", "gaussian_map", "mean_shift", "ESTIMATORS", "check_strength",
    "Intervention", "compose", "fit_act", "fit_lineas", "LinEASResult", "wasserstein_1d",
    "sparse_group_prox", "support_coverage",
]
