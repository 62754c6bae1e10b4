"""otkit: optimal transport for machine-learning research, in PyTorch (CPU and CUDA).

The engine, which knows no paper: :func:`sinkhorn` (entropic OT with torch, GeomLoss and POT
backends), :func:`emd` (exact OT), costs in :mod:`otkit.costs`, ε conventions in
:mod:`otkit.epsilon`, entropic maps in :mod:`otkit.maps`, the Sinkhorn divergence and its
debiased map in :mod:`otkit.divergence` and Gaussian closed forms in :mod:`otkit.gaussian`;
sharded Sinkhorn in :mod:`otkit.distributed`.
Shared building blocks: :mod:`otkit.nn` (networks, ODE integrators, hooks) and
:mod:`otkit.data` (toys, digits, ground-truth maps). One package per paper:
:mod:`otkit.progot`, :mod:`otkit.flows`, :mod:`otkit.semidiscrete`, :mod:`otkit.conformal`,
:mod:`otkit.steering`, :mod:`otkit.elastic`, :mod:`otkit.lowrank`, :mod:`otkit.amips`,
:mod:`otkit.reflow`, :mod:`otkit.bloop`, :mod:`otkit.truth`, :mod:`otkit.dataquality`,
:mod:`otkit.nectar`, :mod:`otkit.completep`, :mod:`otkit.aim`, :mod:`otkit.odes`; batch runs
in :mod:`otkit.runs`. The multiscale (coarse-to-fine, truncated) Sinkhorn for d ≤ 3 is
:mod:`otkit.multiscale`.

Conventions: the squared Euclidean cost is ½‖x − y‖², potentials are in cost units and the
plan is P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε) (see the README).
"""

from . import _moved, costs, gaussian
from .batched import SinkhornBatchResult
from .conformal import OTCP
from .costs import Cost, Dot, Euclidean, SqEuclidean, TranslationInvariantCost
from .divergence import SinkhornDivergenceResult, sinkhorn_divergence
from .exact import EMDResult, emd
from .lowrank import LowRankGWResult, LowRankResult, entropic_gw, lowrank, lowrank_gw
from .multiscale import MultiscaleResult, multiscale_sinkhorn
from .progot import ProgOTResult, progot
from .semidiscrete import SemidiscreteResult, semidiscrete
from .sinkhorn import ConvergenceWarning, SinkhornResult, sinkhorn

_moved.install()

__version__ = "0.1.0"

__all__ = [
    "sinkhorn",
    "SinkhornResult",
    "SinkhornBatchResult",
    "ConvergenceWarning",
    "sinkhorn_divergence",
    "SinkhornDivergenceResult",
    "emd",
    "EMDResult",
    "progot",
    "ProgOTResult",
    "OTCP",
    "lowrank",
    "semidiscrete",
    "SemidiscreteResult",
    "LowRankResult",
    "lowrank_gw",
    "entropic_gw",
    "LowRankGWResult",
    "multiscale_sinkhorn",
    "MultiscaleResult",
    "costs",
    "gaussian",
    "Cost",
    "TranslationInvariantCost",
    "SqEuclidean",
    "Euclidean",
    "Dot",
]
