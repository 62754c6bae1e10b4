"""The elastic-map studies of notebook 07, on small problems."""

import pytest
import torch

from otkit.elastic import perturbed_expression
from otkit.elastic.study import (
    ground_truth_study,
    normalized_mse,
    perturbation_study,
    sparse_shift_study,
)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_normalized_mse_is_zero_when_exact_and_one_when_not_moving():
    x = torch.randn(10, 3, dtype=torch.float64)
    t = x + 1.0
    assert normalized_mse(t, t, x) == 0.0
    assert normalized_mse(x, t, x) == pytest.approx(1.0)


def test_sparse_shift_study_l1_moves_fewer_coordinates_as_lambda_grows():
    rows = sparse_shift_study([20], n=150, lams=(0.0, 1.0, 4.0), regularizers=("l1",), n_test=50)
    assert [r["regularizer"] for r in rows] == ["identity", "mean", "sqeuclidean", "l1", "l1"]
    baselines, rows = rows[:2], rows[2:]
    assert baselines[0]["error"] == 1.0 and baselines[0]["moved"] == 0.0  # not moving at all
    # collapsing onto the target mean: E‖ȳ − x − δ‖² / ‖δ‖² ≈ d / ‖δ‖² = 20 / (5 · 2²) = 1
    assert baselines[1]["error"] == pytest.approx(1.0, abs=0.2) and baselines[1]["moved"] == 1.0
    moved = [r["moved"] for r in rows]
    assert moved[0] == 1.0 and moved[0] > moved[1] > moved[2]
    assert rows[2]["error"] < rows[0]["error"]  # sparser and closer to the translation
    assert all(0 <= r["recall"] <= 1 for r in rows)


def test_sparse_shift_study_holds_one_epsilon_scale_for_every_lambda():
    """Every method is tuned on the same absolute grid r × std of the squared-Euclidean cost:
    a grid of one value gives every method that same ε, whatever λ."""
    rows = sparse_shift_study([10], n=100, lams=(0.0, 4.0), regularizers=("l1",), n_test=30,
                              relative_epsilons=(0.3,))
    fitted = [r for r in rows if r["regularizer"] in ("sqeuclidean", "l1")]
    assert len(fitted) == 2 and fitted[0]["epsilon"] == fitted[1]["epsilon"] > 0


def test_ground_truth_study_reports_both_estimators():
    rows = ground_truth_study([3], [200], n_test=100)
    (row,) = rows
    assert row["cost"] == "l1" and row["d"] == 3 and row["n"] == 200
    assert 0 < row["nmse elastic"] < 1 and 0 < row["nmse sqeuclidean"] < 1
    assert row["moved sqeuclidean"] == 1.0 and row["true moved"] < 1.0


def test_perturbation_study_finds_the_perturbed_genes():
    data = perturbed_expression(120, 120, 200, 5, fold=3.0, seed=0)
    rows = perturbation_study(data, [0.0, 4.0])
    assert rows[0]["genes moved per cell"] == pytest.approx(1.0, abs=1e-3)
    assert rows[1]["genes moved per cell"] < 0.5
    assert rows[0]["top-5 precision"] == 1.0 and rows[1]["top-5 precision"] >= 0.8
    # cell by cell the perturbed genes are found far above chance (5 / 200)
    assert all(0.1 < r["cell top-5 precision"] <= 1 for r in rows)
