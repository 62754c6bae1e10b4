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


def test_the_epsilon_grid_shares_one_cost_matrix_and_solves_bit_for_bit_as_before(monkeypatch):
    from otkit.elastic.costs import ElasticCost, elastic_cost
    from otkit.elastic.study import _KeptMatrix
    from otkit.sinkhorn import sinkhorn

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(60, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(70, 8, generator=gen, dtype=torch.float64) + 1.0
    cost = elastic_cost("stvs", lam=1.0)
    plain = [sinkhorn(x, y, cost=cost, epsilon=e) for e in (0.5, 1.0, 2.0)]
    calls = []
    full = ElasticCost.pairwise
    monkeypatch.setattr(ElasticCost, "pairwise",
                        lambda self, a, b: calls.append(a.shape[0]) or full(self, a, b))
    kept = _KeptMatrix(cost)
    shared = [sinkhorn(x, y, cost=kept, epsilon=e) for e in (0.5, 1.0, 2.0)]
    assert calls.count(60) == 1  # the [n, m] matrix is built once for the three solves
    x_new = torch.randn(5, 8, generator=gen, dtype=torch.float64)
    for p, s in zip(plain, shared):
        assert torch.equal(p.g, s.g) and torch.equal(p.f, s.f)
        assert torch.equal(p.transport(x_new), s.transport(x_new))
    y2 = y.clone()
    y2[0, 0] += 1.0  # other clouds of the same shape: a new matrix
    assert torch.equal(kept.pairwise(x, y2), cost.pairwise(x, y2))


def _rows(seed: int, sq: float, l1: dict, *, d: int = 10) -> list[dict]:
    """Hand-made rows of one seed: ``l1`` maps λ to (test error, validation error, moved)."""
    base = {"seed": seed, "d": d, "epsilon": 1.0, "recall": 1.0, "seconds": 0.0}
    rows = [dict(base, regularizer="identity", lam=0.0, error=1.0, validation=1.0, moved=0.0),
            dict(base, regularizer="mean", lam=0.0, error=3.0, validation=3.0, moved=1.0),
            dict(base, regularizer="sqeuclidean", lam=0.0, error=sq, validation=sq, moved=1.0)]
    rows += [dict(base, regularizer="l1", lam=lam, error=e, validation=v, moved=m)
             for lam, (e, v, m) in l1.items()]
    return rows


def test_read_shift_study_reads_ratios_on_log_errors_with_student_t_intervals():
    import numpy as np
    from scipy import stats

    from otkit.elastic.study import read_shift_study

    sq = [2.0, 2.2, 1.9]
    best = [1.0, 1.2, 0.9]  # λ = 2 wins on validation; λ = 1 has the lower *test* error
    rows = []
    for s in range(3):
        rows += _rows(s, sq[s], {1.0: (0.5, 9.0, 0.6), 2.0: (best[s], best[s], 0.3)})
    (reading,) = read_shift_study(rows).values()
    assert reading["chosen_lam_l1"] == [2.0, 2.0, 2.0]  # chosen on validation, not on test
    logs = np.log(best) - np.log(sq)
    low, high = stats.t.interval(0.95, 2, loc=logs.mean(), scale=stats.sem(logs))
    ratio = reading["ratio_l1"]
    assert ratio.estimate == pytest.approx(np.exp(logs.mean()))
    assert (ratio.low, ratio.high) == pytest.approx((np.exp(low), np.exp(high)))
    assert reading["l1_vs_sqeuclidean"] == "lower" and reading["sqeuclidean_vs_identity"] == "higher"
    assert reading["sqeuclidean_vs_mean"] == "lower"
    assert reading["monotone_l1"] == 3 and reading["moved_l1"] == pytest.approx([0.6, 0.3])
    assert reading["error_identity"].estimate == 1.0

    # an elastic map better on one seed and worse on another: a tie, not a win
    tied = []
    for s, e in enumerate([0.5, 3.0, 1.0]):
        tied += _rows(s, 1.0, {1.0: (e, e, 0.5)})
    assert read_shift_study(tied)[10]["l1_vs_sqeuclidean"] == "tie"
    # one seed whose fraction moved grows with λ is counted
    bumpy = _rows(0, 1.0, {1.0: (0.5, 0.5, 0.3), 2.0: (0.5, 0.5, 0.4)})
    bumpy += _rows(1, 1.0, {1.0: (0.5, 0.5, 0.4), 2.0: (0.5, 0.5, 0.3)})
    assert read_shift_study(bumpy)[10]["monotone_l1"] == 1


def test_shift_study_readings_check_their_inputs():
    from otkit.elastic.study import read_shift_study

    with pytest.raises(ValueError, match="seeds"):
        read_shift_study(_rows(0, 1.0, {1.0: (0.5, 0.5, 0.5)}))
    with pytest.raises(ValueError, match="n_validation"):
        sparse_shift_study([5], n=20, n_test=10, n_validation=0)
    rows = sparse_shift_study([5], n=40, lams=(0.0, 1.0), regularizers=("l1",), n_test=20,
                              n_validation=10, relative_epsilons=(0.5, 1.0), seed=3)
    assert {r["seed"] for r in rows} == {3} and all("validation" in r for r in rows)
