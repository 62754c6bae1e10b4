"""CompleteP (Dey et al. 2025): does the best learning rate transfer across width and depth?

* :mod:`otkit.completep.study`: learning-rate sweeps of the lab's transformer under SP, μP,
  depth-μP and CompleteP (:mod:`otkit.nn.parameterization`) on generated Markov text, the best
  rate per size and its drift in octaves with intervals over seeds.
"""

from .study import (
    FULL,
    QUICK,
    TransferGrid,
    TransferStudy,
    best_log2_lr,
    drift,
    lr_sweep,
    read_claims,
)

__all__ = ["FULL", "QUICK", "TransferGrid", "TransferStudy", "best_log2_lr", "drift", "lr_sweep",
           "read_claims"]
