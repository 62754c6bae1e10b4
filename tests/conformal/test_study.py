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
    otcp_level_study,
    setting_label,
    size_comparison,
    summarize_conformal,
    summarize_levels,
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
    assert row["log_ratio"] == pytest.approx(((1.5 - 1.0) + (1.5 - 2.0)) / 2)  # median of two
    assert row["reference_smaller"] == pytest.approx(0.5)
    assert row["reference_unbounded"] == row["method_unbounded"] == 0.0
    assert row["coverage_difference"] == pytest.approx(((0.90 - 0.92) + (0.91 - 0.88)) / 2)


def test_unbounded_regions_are_counted_not_dropped():
    # OTCP unbounded on 3 of 5 splits: those splits count as infinite volumes (OTCP larger),
    # not as missing ones; averaging the bounded splits only would call OTCP smaller
    inf = math.inf
    otcp = [1.0, 1.0, inf, inf, inf]
    ball = [2.0, 2.0, 1.5, 1.5, 1.5]
    scores = [score("otcp", i, 0.9, v) for i, v in enumerate(otcp)]
    scores += [score("ball", i, 0.9, v) for i, v in enumerate(ball)]
    (row,) = size_comparison(scores)
    assert row["log_ratio"] == -inf  # the median split has OTCP unbounded
    assert row["reference_smaller"] == pytest.approx(2 / 5)
    assert row["reference_unbounded"] == pytest.approx(3 / 5) and row["method_unbounded"] == 0.0
    rows = {r["method"]: r for r in summarize_conformal(scores)}
    assert rows["otcp"]["unbounded"] == pytest.approx(3 / 5) and rows["ball"]["unbounded"] == 0.0
    assert rows["otcp"]["log_volume"] == inf and rows["otcp"]["log_volume_median"] == inf
    assert rows["ball"]["log_volume_median"] == 1.5
    # bounded on 3 of 5: the median is a finite split; two unbounded regions tie
    scores = [score("otcp", i, 0.9, v) for i, v in enumerate([1.0, 1.0, 1.0, inf, inf])]
    scores += [score("ball", i, 0.9, v) for i, v in enumerate([2.0, 3.0, 0.5, inf, 1.0])]
    (row,) = size_comparison(scores)
    assert row["log_ratio"] == pytest.approx(0.0)  # sorted: -inf, -0.5, 0 (tie), 1, 2
    assert row["reference_smaller"] == pytest.approx(2 / 5)
    assert row["method_unbounded"] == pytest.approx(1 / 5)


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


def test_level_study_finds_the_paper_s_regions_unbounded_in_d3():
    paper = {"reference_size": 512, "score": "norm", "whiten": False, "relative_epsilon": 0.01,
             "directions": "sobol"}
    rows = otcp_level_study(
        lambda seed: make_toy_regression("banana", 1000, dim=3, seed=seed),
        (paper, {"reference_size": 512}), num_splits=3,
    )
    assert len(rows) == 6 and {r["split"] for r in rows} == {0, 1, 2}
    for row in rows:
        assert row["bounded"] is (row["threshold"] < (row["inradius"] if row["score"] == "norm"
                                                      else 1 - 1e-9))
        assert 0 <= row["ks_fit"] <= 1 and 0 <= row["calibration_above_fit"] <= 1
    summary = {r["score"]: r for r in summarize_levels(rows)}
    assert summary["hull"]["bounded"] == 1.0 and summary["norm"]["bounded"] < 0.5
    assert summary["norm"]["threshold_median"] > summary["norm"]["inradius"]
    # fresh residuals are ranked further out than the fitting ones under the sharp map
    assert summary["norm"]["calibration_above_fit"] > 0.1
    assert summary["norm"]["splits"] == 3 and summary["norm"]["d"] == 3
