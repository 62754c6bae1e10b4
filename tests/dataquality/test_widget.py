"""The data-quality explorer without a browser: its state is the grid's own cells."""

import numpy as np
import pytest

from otkit.dataquality.study import StudySetup, keep_fraction_grid, make_domain_arm
from otkit.nn.trainer import TrainerConfig
from widgets.dataquality import DataQualityExplorer, compute_dataquality

SMALL = StudySetup(vocab_size=16, length=10, n_pool=400, n_hq=100, n_eval=60, d_model=16)


@pytest.fixture(scope="module")
def grid():
    trainer = TrainerConfig(steps=5, batch_size=8, warmup=1, eval_every=5)
    return keep_fraction_grid(make_domain_arm(SMALL), (0.05, 0.2), ("random", "cqf"),
                              trainer=trainer)


def test_the_state_is_the_grids(grid):
    state = compute_dataquality(0.2, grid=grid)
    assert state.cells["cqf"]["hq_loss"] == pytest.approx(grid.hq_loss[1, 1])
    assert state.cells["random"]["composition"]["junk"] == pytest.approx(
        grid.composition[0, 1, -1])


def test_the_explorer_draws_and_moves(grid):
    explorer = DataQualityExplorer(grid=grid, fraction=0.05, debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert meta["fraction"] == 0.05
    assert meta["cqf_hq_loss"] == pytest.approx(grid.hq_loss[1, 0])
    bars = explorer.trace("share-science").y
    assert list(bars) == pytest.approx(grid.composition[:, 0, 0].tolist())
    shares = sum(np.array(explorer.trace(f"share-{c}").y) for c in grid.components)
    np.testing.assert_allclose(shares, 1.0)
    explorer.set(fraction=0.2)
    assert explorer.figure.layout.meta["fraction"] == 0.2
    assert list(explorer.trace("share-science").y) == pytest.approx(
        grid.composition[:, 1, 0].tolist())
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "name"), [({"fraction": 0.3}, "fraction"),
                                              ({"benchmark": "nope"}, "benchmark")])
def test_bad_arguments_raise(grid, kwargs, name):
    with pytest.raises(ValueError, match=name):
        compute_dataquality(**{"fraction": 0.05, **kwargs}, grid=grid)
