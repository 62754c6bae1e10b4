"""OTCP: multivariate conformal prediction with optimal transport, and its baselines.

Klein, Béthune, Ndiaye and Cuturi (2025), "Multivariate Conformal Prediction using Optimal
Transport". A residual is scored by its multivariate rank ‖T(s̃)‖, T the entropic map from
the fitting split's scores to a uniform reference on the unit ball; the threshold is the
⌈(n + 1)(1 − α)⌉-th smallest calibration score.

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
    BallConformal,
    ConformalPredictor,
    EllipsoidConformal,
    PredictionSet,
    RectangleConformal,
    VolumeEstimate,
    ball_volume,
    conformal_rank,
    make_conformal,
    reference_ball,
    sphere_directions,
)

__all__ = [
    "ConformalPredictor",
    "OTCP",
    "OTCP_RELATIVE_EPSILON",
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
    "ball_volume",
]
