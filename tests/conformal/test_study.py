"""The split-by-split comparison of conformal predictors (otkit.conformal.study)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otkit.conformal.data import load_multioutput, make_toy_regression
from otkit.conformal.study import (
    ConformalScore,
    compare_conformal_methods,
    setting_label,
    size_comparison,
    summarize_conformal,
)


def score(method: str, split: int, coverage: float, log_volume: float, *, setting: str = "",
          alpha: float = 0.1) -> ConformalScore:
    return ConformalScore(
        dataset="toy", split=split, method=method, setting=setting, alpha=alpha, d=2,
        coverage=coverage, log_volume=log_volume, volume_stderr=0.0, worst_slab_coverage=0.8,
        conditional_coverage_error=0.05, seconds=1.0, n_fit=10, n_calibration=10, n_test=10,
    )


def test_summary_and_size_comparison_by_hand():
    scores = [
        score("otcp", 0, 0.92, 1.0), score("otcp", 1, 0.88, 2.0),
        score("ball", 0, 0.90, 1.5), score("ball", 1, 0.91, 1.5),
    ]
    rows = {r["method"]: r for r in summarize_conformal(scores)}
    assert rows["otcp"]["coverage"] == pytest.approx(0.90)
    assert rows["otcp"]["coverage_std"] == pytest.approx(np.std([0.92, 0.88], ddof=1))
    assert rows["otcp"]["below_level"] == pytest.approx(0.5)
    assert rows["ball"]["log_volume"] == pytest.approx(1.5)
    (row,) = size_comparison(scores)
    assert row["method"] == "ball" and row["splits"] == 2
    assert row["log_ratio"] == pytest.approx(((1.5 - 1.0) + (1.5 - 2.0)) / 2)
    assert row["reference_smaller"] == pytest.approx(0.5)
    assert row["coverage_difference"] == pytest.approx(((0.90 - 0.92) + (0.91 - 0.88)) / 2)


def test_toy_comparison_covers_and_otcp_wins_on_the_banana():
    scores = compare_conformal_methods(
        lambda seed: make_toy_regression("banana", 800, seed=seed),
        num_splits=4, alphas=(0.1,), otcp_settings=({"reference_size": 512},),
        volume_samples=2**12, slab_directions=5,
    )
    assert len(scores) == 4 * 4
    rows = {r["method"]: r for r in summarize_conformal(scores)}
    for row in rows.values():
        # 4 splits of 400 test points: the mean coverage is within a few standard errors
        # (the Bonferroni rectangle over-covers by design)
        assert row["coverage"] > 0.86, row
        assert row["method"] == "rectangle" or row["coverage"] < 0.94, row
        assert 0.0 <= row["worst_slab"] <= row["coverage"] + 1e-12
    for row in size_comparison(scores):
        assert row["log_ratio"] > 0, row  # OTCP's regions are the smallest on curved noise
    assert rows["otcp"]["splits"] == 4 and rows["otcp"]["seconds"] > 0


def test_real_data_with_a_model_factory_and_otcp_settings():
    from sklearn.linear_model import Ridge

    settings = ({"reference_size": 128}, {"reference_size": 128, "relative_epsilon": 0.05})
    scores = compare_conformal_methods(
        load_multioutput("enb"), methods=("otcp", "ball"), alphas=(0.2,), num_splits=2,
        model=lambda x, y: Ridge().fit(x, y), otcp_settings=settings, volume_samples=2**12,
        slab_directions=3,
    )
    labels = {s.setting for s in scores if s.method == "otcp"}
    assert labels == {setting_label(o) for o in settings}
    assert all(math.isfinite(s.log_volume) for s in scores)
    # enb has 768 rows: the fit part is floor(0.2 · 768) = 153 plus one of the two rows lost to
    # flooring (largest remainder 0.6, earlier parts first), on every split
    assert {s.n_fit for s in scores} == {154}
    assert len(size_comparison(scores)) == 2  # ball against each OTCP setting


def test_bad_arguments_are_refused():
    toy = make_toy_regression("banana", 100, seed=0)
    with pytest.raises(ValueError, match=r"methods\[0\] must be one of"):
        compare_conformal_methods(toy, methods=("hexagon",))
    with pytest.raises(ValueError, match="sizes must have 3 parts"):
        compare_conformal_methods(toy, sizes=(0.4, 0.2, 0.2, 0.2))
    with pytest.raises(ValueError, match="alpha must lie in"):
        compare_conformal_methods(toy, alphas=(1.2,))
    with pytest.raises(ValueError, match="num_splits must be an integer >= 1"):
        compare_conformal_methods(toy, num_splits=0)
    real = load_multioutput("edm")
    with pytest.raises(ValueError, match="no conditional_mean: pass a model factory"):
        compare_conformal_methods(real, num_splits=1, methods=("ball",))
    assert torch.is_tensor(real.y)
