"""CompleteP (Dey et al. 2025): does the best learning rate transfer across width and depth?

* :mod:`otkit.completep.study`: learning-rate sweeps of the lab's transformer under SP, μP,
  depth-μP and CompleteP (:mod:`otkit.nn.parameterization`) on generated Markov text, the best
  rate per size and its drift in octaves with intervals over seeds; and the same drift across
  batch size and training duration with and without the batch/duration rule of
  :func:`otkit.nn.parameterization.sde_scaling` (Mlodozeniec et al. 2025, as read there).
"""

from .study import (
    FULL,
    QUICK,
    BatchDurationStudy,
    TransferGrid,
    TransferStudy,
    batch_duration_sweep,
    best_log2_lr,
    drift,
    lr_sweep,
    read_claims,
    read_rule_claims,
    rule_drift,
)

__all__ = ["FULL", "QUICK", "BatchDurationStudy", "TransferGrid", "TransferStudy",
           "batch_duration_sweep", "best_log2_lr", "drift", "lr_sweep", "read_claims",
           "read_rule_claims", "rule_drift"]
