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
