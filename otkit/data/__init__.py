"""Shared data: reproducible point-cloud samplers, real digits, ground-truth OT maps.

Paper-specific data lives with its paper (``otkit.conformal.data``, ``otkit.elastic.data``);
the bundled multi-output regression CSVs sit in ``otkit/data/multioutput/``.

* :mod:`~otkit.data.samplers`: 2-D toys (moons, checkerboard, eight Gaussians, half annulus),
  Gaussian mixtures in any dimension, pairs with outliers or partial overlap, digits;
* :mod:`~otkit.data.ground_truth`: source laws with their exact Brenier maps;
* :mod:`~otkit.data.tasks`: generated multi-task token data (prompt → answer) for small
  language models.
"""

from .ground_truth import (
    GROUND_TRUTH_MAPS,
    GroundTruthMap,
    convex_potential_map,
    gaussian_map,
    ground_truth_map,
    map_error,
)
from .samplers import (
    DIGITS_SPLITS,
    TWO_CLOUD_KINDS,
    PartialMatch,
    checkerboard,
    clouds_with_outliers,
    digits,
    eight_gaussians,
    gaussian_mixture,
    half_annulus,
    moons,
    tissue_slices,
    two_clouds,
)
from .tasks import TASKS, TaskData, TaskSpec, Vocabulary, make_tasks

__all__ = [
    "gaussian_mixture",
    "eight_gaussians",
    "moons",
    "checkerboard",
    "two_clouds",
    "TWO_CLOUD_KINDS",
    "PartialMatch",
    "clouds_with_outliers",
    "tissue_slices",
    "half_annulus",
    "digits",
    "DIGITS_SPLITS",
    "GroundTruthMap",
    "gaussian_map",
    "convex_potential_map",
    "ground_truth_map",
    "map_error",
    "GROUND_TRUTH_MAPS",
    "TASKS",
    "TaskSpec",
    "TaskData",
    "Vocabulary",
    "make_tasks",
]
