"""Shared neural-network building blocks, in plain PyTorch.

* :mod:`~otkit.nn.velocity`: velocity networks v_θ(x, t) (an MLP, a conv net for 8×8 images)
  with sinusoidal time features;
* :mod:`~otkit.nn.ode`: Euler, midpoint and Heun integrators at a given number of evaluations;
* :mod:`~otkit.nn.hooks`: forward hooks that find modules, pool and record their activations
  and rewrite their outputs;
* :mod:`~otkit.nn.surgery`: gradient surgery for a main and an auxiliary loss around any torch
  optimizer (Bloop, with an EMA of main gradients; mixed, Dynamic Barrier, PCGrad);
* :mod:`~otkit.nn.transformer`: a small decoder-only transformer (GPT-2's layout) with hooks
  on every block and per-module parameter groups;
* :mod:`~otkit.nn.trainer`: an AdamW trainer (warmup + cosine, gradient clipping, progress bar);
* :mod:`~otkit.nn.icnn`: input-convex networks (non-negative hidden weights, input re-injection);
* :mod:`~otkit.nn.parameterization`: SP, μP, depth-μP and CompleteP (per-group AdamW lr/ε/weight
  decay, init, residual and logit multipliers).

Import rule: ``otkit.nn`` imports only the engine (held by ``tests/project/test_layout.py``).
"""

from .hooks import (
    POOLS,
    apply_channelwise,
    channel_size,
    collect_activations,
    default_forward,
    find_modules,
    pool,
    rewrite_outputs,
)
from .icnn import ICNN, icnn_parameter_count
from .ode import EVALUATIONS_PER_STEP, SAMPLERS, integrate
from .parameterization import (
    Multipliers,
    Parameterized,
    multipliers,
    parameterize_mlp,
    parameterize_transformer,
)
from .surgery import (
    METHODS,
    GradientSurgery,
    SurgeryConfig,
    SurgeryStep,
    surgery_direction,
)
from .trainer import IGNORE, TrainerConfig, TrainResult, train, warmup_cosine
from .transformer import (
    PARAM_GROUPS,
    Transformer,
    TransformerConfig,
    param_groups,
    residual_stream,
)
from .velocity import TimeEmbedding, VelocityConvNet, VelocityMLP, broadcast_times

__all__ = [
    "TimeEmbedding",
    "VelocityMLP",
    "VelocityConvNet",
    "broadcast_times",
    "SAMPLERS",
    "EVALUATIONS_PER_STEP",
    "integrate",
    "POOLS",
    "find_modules",
    "pool",
    "channel_size",
    "apply_channelwise",
    "default_forward",
    "collect_activations",
    "rewrite_outputs",
    "METHODS",
    "SurgeryConfig",
    "SurgeryStep",
    "GradientSurgery",
    "surgery_direction",
    "TransformerConfig",
    "Transformer",
    "residual_stream",
    "param_groups",
    "PARAM_GROUPS",
    "TrainerConfig",
    "TrainResult",
    "train",
    "warmup_cosine",
    "IGNORE",
    "ICNN",
    "icnn_parameter_count",
    "Multipliers",
    "Parameterized",
    "multipliers",
    "parameterize_mlp",
    "parameterize_transformer",
]
