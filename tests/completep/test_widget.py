"""The CompleteP explorer without a browser: its state is the study's own numbers."""

import numpy as np
import pytest

from otkit.completep.study import QUICK, TransferGrid, TransferStudy, drift, read_claims
from widgets.completep import (
    BUNDLED,
    CompletePExplorer,
    bundled_study,
    compute_completep,
)

LRS = (-7.0, -6.0, -5.0, -4.0, -3.0)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def parabola_study(minima: dict) -> TransferStudy:
    """Losses 0.1 (log₂η − m)² + 2.3, m = minima[(scheme, width, depth)] (the fixture's grid)."""
    grid = TransferGrid(schemes=("sp", "completep"), widths=(16, 32), depths=(2, 4),
                        log2_lrs=LRS, seeds=(0,))
    x = np.asarray(LRS)
    losses = np.array([[0.1 * (x - minima[(s, w, d)]) ** 2 + 2.3 for (w, d) in grid.shapes]
                       for s in grid.schemes])[..., None]
    return TransferStudy(grid, losses)


MINIMA = {("sp", 16, 2): -5.0, ("sp", 32, 2): -6.0, ("sp", 16, 4): -4.5,
          ("completep", 16, 2): -5.0, ("completep", 32, 2): -5.0, ("completep", 16, 4): -5.0}


def test_the_state_is_the_studys_drift():
    study = parabola_study(MINIMA)
    state = compute_completep(study, 32, 2)
    assert state.available
    assert state.drift["sp"] == pytest.approx(-1.0) and state.drift["completep"] == pytest.approx(0.0)
    assert state.best["sp"] == pytest.approx((-6.0, 2.3))
    state = compute_completep(study, 16, 4)
    assert state.drift["sp"] == pytest.approx(0.5)
    assert not compute_completep(study, 32, 4).available  # outside the cross
    bundled = bundled_study()
    for (w, d) in bundled.grid.shapes:
        state = compute_completep(bundled, w, d)
        for s in bundled.grid.schemes:
            assert state.drift[s] == pytest.approx(drift(bundled, s, w, d).of_mean)


def test_the_bundled_grid_is_the_quick_grid():
    losses = np.asarray(BUNDLED)
    assert losses.shape == (len(QUICK.schemes), len(QUICK.shapes), len(QUICK.log2_lrs))
    claims = read_claims(bundled_study())  # what notebook 16 reads from the same sweep
    assert claims["drift_sp_width"] < -1.5 and claims["max_drift_completep"] <= 1.0


def test_the_explorer_draws_its_state():
    explorer = CompletePExplorer(parabola_study(MINIMA), debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert (meta["width"], meta["depth"], meta["available"]) == (32, 2, True)
    assert meta["drift"]["sp"] == pytest.approx(-1.0)
    assert list(explorer.trace("sp_best").x) == pytest.approx([-6.0])
    assert len(explorer.trace("completep").y) == len(LRS) == len(explorer.trace("base").y)
    explorer.set(depth=4)
    assert explorer.figure.layout.meta["available"] is False
    assert len(explorer.trace("sp").x) == 0 and "not in the grid" in explorer.figure.layout.title.text
    explorer.set(width=16)
    assert explorer.figure.layout.meta["drift"]["sp"] == pytest.approx(0.5)
    assert 'data-value="0.5"' in explorer.stats.value
    assert explorer.error is None
    assert [v for _, v in explorer.controls["width"].options] == [16, 32]


def test_bad_arguments_raise():
    study = parabola_study(MINIMA)
    with pytest.raises(ValueError, match="width"):
        compute_completep(study, 48, 2)
    with pytest.raises(ValueError, match="depth"):
        CompletePExplorer(study, depth=3)
    with pytest.raises(TypeError, match="study"):
        compute_completep("study", 16, 2)
