"""The amortized-MIPS explorer without a browser: its cells are the library's own numbers."""

import numpy as np
import pytest
import torch

from otkit.amips import mips
from widgets import AmipsExplorer, compute_amips
from widgets.amips import BUDGETS, GRID, SPAN, toy_keys


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_true_cells_are_brute_force_and_hard_training_matches_them():
    state = compute_amips(320, 0.0)
    keys = toy_keys(0).numpy()
    axis = np.linspace(-SPAN, SPAN, GRID)
    xx, yy = np.meshgrid(axis, axis)
    q = np.stack([xx.ravel(), yy.ravel()], 1)
    assert np.array_equal(state.true.ravel(), (q @ keys.T).argmax(1))
    assert np.array_equal(state.true.ravel(), mips(torch.tensor(q, dtype=torch.float32), toy_keys(0)).numpy())
    assert state.match_rate == pytest.approx(float((state.predicted == state.true).mean()))
    assert state.match_rate > 0.85
    assert state.params <= 320 and state.budget == 320
    # keys inside the hull own no true cell
    assert len(np.unique(state.true)) < len(keys)


def test_soft_targets_blur_the_cells():
    """At ε = 0.5 the gradient of the smoothed support function averages keys: far fewer grid
    queries decode to their true argmax than with hard targets."""
    assert compute_amips(320, 0.5).match_rate < compute_amips(320, 0.0).match_rate - 0.3


def test_the_explorer_draws_its_state():
    explorer = AmipsExplorer(debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert meta["budget"] == 320 and meta["epsilon"] == 0.0 and meta["match_rate"] > 0.85
    assert np.array(explorer.trace("true").z).shape == (GRID, GRID)
    assert len(explorer.trace("keys").x) == 16
    explorer.set(epsilon=0.5)
    assert explorer.figure.layout.meta["match_rate"] < meta["match_rate"] - 0.3
    explorer.set(budget=BUDGETS[-1])
    assert explorer.figure.layout.meta["params"] > meta["params"]
    assert 'data-value="0.5"' in explorer.stats.value
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"budget": 100}, ValueError, "budget"), ({"epsilon": 0.3}, ValueError, "epsilon"),
    ({"budget": True}, TypeError, "budget"), ({"seed": "0"}, TypeError, "seed"),
    ({"epsilon": "0"}, TypeError, "epsilon"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_amips(**kwargs)
