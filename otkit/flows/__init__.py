"""Flow matching with optimal-transport couplings (Zhang, Mousavi-Hosseini, Klein, Cuturi 2025).

A flow model carries a source law onto a target law along a learned velocity field
v_θ(x, t), t ∈ [0, 1]. It is fitted by regressing v_θ on the segments between pairs
(x₀, x₁); the pairs come from a coupling, here anywhere on the entropic continuum from
independent pairs (ε = ∞) to the exact batch-OT matching (ε = 0):

* :mod:`~otkit.nn.velocity` — velocity networks (an MLP, a conv net for 8×8 images);
* :mod:`~otkit.flows.distributions` — the laws, as samplers ``(n, generator) -> [n, d]``;
* :mod:`~otkit.flows.couplings` — independent, Sinkhorn, exact and semidiscrete (SD-FM) pairings;
* :mod:`~otkit.flows.training` — the flow matching loss and trainer (EMA, seeds, progress);
* :mod:`~otkit.nn.ode` — Euler, midpoint and Heun samplers at a given NFE;
* :mod:`~otkit.flows.metrics` and :mod:`~otkit.flows.digits` — W2, energy distance, MMD,
  path straightness, and a Fréchet distance on a digits classifier's features.
"""

from ..nn.ode import SAMPLERS, integrate
from ..nn.velocity import TimeEmbedding, VelocityConvNet, VelocityMLP
from .couplings import (
    Coupling,
    ExactCoupling,
    IndependentCoupling,
    Pairing,
    SemidiscreteCoupling,
    SinkhornCoupling,
    make_coupling,
)
from .distributions import TOY_DISTRIBUTIONS, Empirical, Sampler, StandardNormal
from .metrics import (
    energy_distance,
    mmd,
    path_length_ratio,
    path_straightness,
    wasserstein2,
)
from .training import FlowTrainingResult, flow_matching_loss, train_flow

__all__ = [
    "Coupling", "IndependentCoupling", "SinkhornCoupling", "ExactCoupling",
    "SemidiscreteCoupling", "Pairing",
    "make_coupling", "StandardNormal", "Empirical", "Sampler", "TOY_DISTRIBUTIONS",
    "TimeEmbedding", "VelocityMLP", "VelocityConvNet", "SAMPLERS", "integrate",
    "FlowTrainingResult", "flow_matching_loss", "train_flow", "wasserstein2", "energy_distance",
    "mmd", "path_straightness", "path_length_ratio",
]
