"""OTCP: multivariate conformal prediction with optimal transport, and its baselines.

Klein, Béthune, Ndiaye and Cuturi (2025), "Multivariate Conformal Prediction using Optimal
Transport". A residual is scored by its multivariate rank T(s̃), T the entropic map from the
fitting split's (whitened) residuals to a uniform reference on the unit ball: by the rank's
gauge in the reference's hull (bounded regions at every level) or the paper's ‖T(s̃)‖; the
threshold is the ⌈(n + 1)(1 − α)⌉-th smallest calibration score.

* :mod:`~otkit.conformal.predictors`: :class:`OTCP`, the ball, ellipsoid and rectangle
  baselines, prediction sets and their volumes;
* :mod:`~otkit.conformal.metrics`: coverage, worst-slab and conditional coverage;
* :mod:`~otkit.conformal.data`: toy generators (Dheur et al. 2025), bundled multi-output
  regression data sets, splits;
* :mod:`~otkit.conformal.study`: comparisons over random splits (notebook 04).
"""

from .predictors import (
    CONFORMAL_METHODS,
    OTCP,
    OTCP_RELATIVE_EPSILON,
    OTCP_SCORES,
    BallConformal,
    ConformalPredictor,
    EllipsoidConformal,
    PredictionSet,
    RectangleConformal,
    VolumeEstimate,
    ball_volume,
    conformal_rank,
    hull_facets,
    make_conformal,
    reference_ball,
    sphere_directions,
)

__all__ = [
    "ConformalPredictor",
    "OTCP",
    "OTCP_RELATIVE_EPSILON",
    "OTCP_SCORES",
    "BallConformal",
    "EllipsoidConformal",
    "RectangleConformal",
    "CONFORMAL_METHODS",
    "make_conformal",
    "PredictionSet",
    "VolumeEstimate",
    "conformal_rank",
    "reference_ball",
    "sphere_directions",
    "hull_facets",
    "ball_volume",
]
