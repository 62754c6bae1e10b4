"""Couplings at equal ε and tol: the comparison harness of otkit.progot.study."""

import pytest
import torch

from otkit import emd
from otkit.progot.study import compare_coupling_solvers, progot_epsilons

F64 = torch.float64


def test_progot_epsilons_are_geometric_and_end_exactly():
    eps = progot_epsilons(1.0, 0.01, 3)
    torch.testing.assert_close(eps, torch.tensor([1.0, 0.1, 0.01], dtype=F64))
    assert progot_epsilons(1.0, 0.01, 1).tolist() == [0.01]
    with pytest.raises(ValueError, match="num_steps"):
        progot_epsilons(1.0, 0.1, 0)
    with pytest.raises(ValueError, match="end"):
        progot_epsilons(1.0, -0.1, 2)


def test_every_solver_ends_at_the_same_epsilon_and_near_exact_ot():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(150, 2, generator=gen, dtype=F64)
    y = 0.5 * torch.randn(150, 2, generator=gen, dtype=F64) + torch.tensor([3.0, 1.0], dtype=F64)
    exact = emd(x, y).ot_cost().item()
    scores = compare_coupling_solvers(x, y, relative_epsilon=0.01, num_steps=(2,), exact_cost=exact)
    assert [s.solver for s in scores] == ["sinkhorn", "sinkhorn-scaling", "progot"]
    assert len({s.epsilon for s in scores}) == 1
    for s in scores:
        assert s.converged and s.marginal_error < 2e-3
        # entropic plans cost a little more than exact OT, never less
        assert -1e-9 <= s.cost_gap < 0.05, s
    with pytest.raises(ValueError, match="relative_epsilon"):
        compare_coupling_solvers(x, y, relative_epsilon=0.0)


def test_map_study_scores_the_debiased_map_with_its_own_oracle():
    from otkit.data import ground_truth_map
    from otkit.progot.study import compare_map_estimators, oracle_best

    problem = ground_truth_map("gaussian", 2, seed=0)
    scores = compare_map_estimators(problem, 200, n_test=200, num_steps=(), epsilon_modes=(),
                                    entropic_grid=(0.05, 0.5), debiased_grid=(0.05, 0.5))
    assert [s.method for s in scores] == ["entropic"] * 2 + ["debiased"] * 2
    (best,) = oracle_best(scores, "debiased")
    assert best.setting == "debiased best rel_eps (oracle)"
    assert best.error == min(s.error for s in scores if s.method == "debiased")
    # a large ε shrinks the entropic map towards the target's mean; debiasing undoes most of it
    big = {s.method: s.error for s in scores if s.relative_epsilon == 0.5}
    assert big["debiased"] < big["entropic"]
    with pytest.raises(ValueError, match="method"):
        oracle_best(scores, "progot")
