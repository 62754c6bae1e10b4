"""Interactive widgets for otkit: ipywidgets controls with plotly FigureWidgets.

* :class:`InteractiveFigure` (``widgets.base``): the base — controls, a ``FigureWidget``,
  a status line; debounced recomputes, busy and error states.
* :class:`SharpnessExplorer` (``widgets.flows``): coupling sharpness vs ε and n; its
  computation is :func:`compute_sharpness`, returning a :class:`SharpnessState`.
* :class:`ConformalExplorer` (``widgets.conformal``): conformal prediction regions
  (OTCP and its baselines) on 2-D toys; its computation is :func:`compute_conformal`,
  returning a :class:`ConformalState`.
* :class:`LowRankExplorer` (``widgets.lowrank``): low-rank (unbalanced) OT's rank and
  KL penalty ρ on a toy with outliers; its computation is :func:`compute_lowrank`, returning a
  :class:`LowRankState`.
* :class:`BloopExplorer` (``widgets.bloop``): λ and Bloop's EMA speed ρ on the fronts of the
  quadratic toy; its computation is :func:`compute_bloop`, returning a :class:`BloopState`.
* :class:`TruthExplorer` (``widgets.truth``): layer and L2 strength of truth probes → in/cross-task
  AUROC and cosine heat-maps; its computation is :func:`compute_truth`.
* :class:`ReflowExplorer` (``widgets.reflow``): NFE and Simple ReFlow's technique toggles on
  8 Gaussians → moons; its computation is :func:`compute_reflow`.
* :class:`DataQualityExplorer` (``widgets.dataquality``): keep fraction → each selector's
  composition and the HQ-loss / cloze trade-off over a precomputed grid; its computation is
  :func:`compute_dataquality`.
* :class:`CompletePExplorer` (``widgets.completep``): width and depth → held-out loss against the
  learning rate per parameterization (SP, μP, CompleteP); its computation is
  :func:`compute_completep`.
* :class:`AIMExplorer` (``widgets.aim``): trunk width and checkpoint → held-out pre-training
  loss against probe accuracy, and next-patch predictions; its computation is
  :func:`compute_aim`.
* :class:`NectarExplorer` (``widgets.nectar``): hidden width of each layer's Nectar networks →
  accuracy gap to the full cache; its computation is :func:`compute_nectar`.
* :class:`ODEExplorer` (``widgets.odes``): equation, initial condition, noise and sampling → the
  ODEs recovered by the pre-trained transformer, SINDy and enumeration, with their fits; its
  computation is :func:`compute_odes`.

Each widget's computation is a plain function that tests call without a browser.
"""

from .aim import AIMExplorer, AIMState, compute_aim
from .amips import AmipsExplorer, AmipsState, compute_amips
from .base import InteractiveFigure
from .bloop import BloopExplorer, BloopState, compute_bloop
from .completep import CompletePExplorer, CompletePState, compute_completep
from .conformal import ConformalExplorer, ConformalState, compute_conformal
from .dataquality import DataQualityExplorer, DataQualityState, compute_dataquality
from .elastic import ElasticExplorer, ElasticState, compute_elastic
from .flows import SharpnessExplorer, SharpnessState, compute_sharpness
from .lowrank import LowRankExplorer, LowRankState, compute_lowrank
from .nectar import NectarExplorer, NectarState, compute_nectar
from .odes import ODEExplorer, OdeState, compute_odes
from .progot import ProgOTExplorer, ProgOTState, compute_progot
from .reflow import ReflowExplorer, ReflowState, compute_reflow
from .semidiscrete import (
    LaguerreExplorer,
    LaguerreState,
    LaguerreTraining,
    compute_laguerre_training,
    laguerre_cells,
)
from .steering import SteeringExplorer, SteeringState, compute_steering
from .truth import TruthExplorer, TruthState, compute_truth

__all__ = [
    "InteractiveFigure", "SharpnessExplorer", "SharpnessState", "compute_sharpness",
    "ProgOTExplorer", "ProgOTState", "compute_progot",
    "ConformalExplorer", "ConformalState", "compute_conformal",
    "LowRankExplorer", "LowRankState", "compute_lowrank",
    "LaguerreExplorer", "LaguerreState", "LaguerreTraining", "compute_laguerre_training",
    "laguerre_cells",
    "SteeringExplorer", "SteeringState", "compute_steering",
    "ElasticExplorer", "ElasticState", "compute_elastic",
    "BloopExplorer", "BloopState", "compute_bloop",
    "AmipsExplorer", "AmipsState", "compute_amips",
    "TruthExplorer", "TruthState", "compute_truth",
    "ReflowExplorer", "ReflowState", "compute_reflow",
    "DataQualityExplorer", "DataQualityState", "compute_dataquality",
    "ODEExplorer", "OdeState", "compute_odes",
    "CompletePExplorer", "CompletePState", "compute_completep",
    "AIMExplorer", "AIMState", "compute_aim",
    "NectarExplorer", "NectarState", "compute_nectar",
]
