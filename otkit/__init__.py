"""otkit: optimal transport for machine-learning research, in PyTorch (CPU and CUDA).

The core: :func:`sinkhorn` (entropic OT with torch, GeomLoss and POT backends), :func:`emd`
(exact OT), costs in :mod:`otkit.costs` and Gaussian closed forms in :mod:`otkit.gaussian`.
Conventions: the squared Euclidean cost is ½‖x − y‖², potentials are in cost units and the
plan is P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε) (see the README).
"""

from . import costs, gaussian
from .conformal import OTCP
from .costs import Cost, Dot, Euclidean, SqEuclidean
from .exact import EMDResult, emd
from .lowrank import LowRankResult, lowrank
from .progot import ProgOTResult, progot
from .semidiscrete import SemidiscreteResult, semidiscrete
from .sinkhorn import ConvergenceWarning, SinkhornResult, sinkhorn

__version__ = "0.1.0"

__all__ = [
    "sinkhorn",
    "SinkhornResult",
    "ConvergenceWarning",
    "emd",
    "EMDResult",
    "progot",
    "ProgOTResult",
    "OTCP",
    "lowrank",
    "semidiscrete",
    "SemidiscreteResult",
    "LowRankResult",
    "costs",
    "gaussian",
    "Cost",
    "SqEuclidean",
    "Euclidean",
    "Dot",
]
