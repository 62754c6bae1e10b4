"""widgets.semidiscrete: the semidiscrete training with snapshots, its cells, and its widget.

The training must be otkit.semidiscrete's (same potential, same χ² checks); training must
shrink the χ² error and the cells' mass error; at step 0 (g = 0) the cells are the Voronoi
cells of the targets; trainings are cached by argument; the widget is driven with ``set`` and
its step slider, and read back from its figure (the real-browser test is
test_browser.py).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from otkit.data import half_annulus
from otkit.flows.distributions import StandardNormal
from otkit.semidiscrete import assign, chi2_error, semidiscrete
from widgets import (
    InteractiveFigure,
    LaguerreExplorer,
    LaguerreState,
    LaguerreTraining,
    compute_laguerre_training,
    laguerre_cells,
)
from widgets import semidiscrete as laguerre_module
from widgets.semidiscrete import (
    N_EVAL,
    TRACE_NAMES,
    TRAINING_CACHE,
    chi2_text,
    grid_box,
    snapshot_steps,
)

pytestmark = pytest.mark.usefixtures("eager_one_thread")

# Small: one training in about a second on one thread; converged by its last snapshot.
SMALL = {"n_targets": 16, "num_iterations": 1500, "lr": 0.1, "snapshots": 3, "seed": 1}


@pytest.fixture(scope="module")
def trainings():
    """The ε = 0 and ε = 0.5 trainings of SMALL (computed once; kept in TRAINING_CACHE)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {eps: compute_laguerre_training(**SMALL, epsilon=eps) for eps in (0.0, 0.5)}
    finally:
        torch.set_num_threads(threads)


# ----- compute_laguerre_training ------------------------------------------------------------


def test_training_is_otkits_semidiscrete_with_snapshots(trainings):
    training = trainings[0.0]
    assert isinstance(training, LaguerreTraining)
    assert training.steps == (0, 500, 1000, 1500) == snapshot_steps(1500, 3)
    assert training.num_snapshots == 4
    y = half_annulus(16, 4.0, 6.0, seed=1, dtype=torch.float64)
    assert torch.equal(training.y, y)
    torch.testing.assert_close(training.b, torch.full((16,), 1 / 16, dtype=torch.float64))

    seen = []
    direct = semidiscrete(StandardNormal(2), y, epsilon=0.0, steps=1500, lr=0.1,
                          batch_size=128, check_every=500, generator=1,
                          callback=lambda step, g: seen.append((step, g)))
    assert training.potentials.shape == (4, 16)
    assert torch.equal(training.potentials[0], torch.zeros(16, dtype=torch.float64))
    for k, (step, g) in enumerate(seen, start=1):
        assert training.steps[k] == step
        torch.testing.assert_close(training.potentials[k], g)
    torch.testing.assert_close(training.result.g, direct.g)
    assert training.solver_chi2 == tuple(direct.chi2.tolist())

    # the masses and χ² are measured on one fixed evaluation sample
    assert training.masses.shape == (4, 16) and training.noise.shape == (300, 2)
    torch.testing.assert_close(training.masses.sum(1), torch.ones(4, dtype=torch.float64))
    gen = torch.Generator().manual_seed(1 + laguerre_module._EVAL_SEED_OFFSET)
    x = StandardNormal(2)(N_EVAL, gen).double()
    torch.testing.assert_close(training.noise, x[:300])
    index = assign(x, y, training.potentials[2])
    counts = torch.bincount(index, minlength=16).double()
    torch.testing.assert_close(training.masses[2], counts / N_EVAL)
    one_hot = torch.nn.functional.one_hot(index, 16).double()
    assert training.chi2[2] == pytest.approx(chi2_error(one_hot, training.b))
    assert training.mass_errors[2] == pytest.approx((counts / N_EVAL - 1 / 16).abs().max().item())
    assert training.time_s > 0


@pytest.mark.parametrize("epsilon", [0.0, 0.5])
def test_training_shrinks_chi2_and_the_mass_error(trainings, epsilon):
    training = trainings[epsilon]
    assert training.epsilon == epsilon
    chi2, errors = training.chi2, training.mass_errors
    assert chi2[-1] < 0.05 and chi2[0] > 1.0
    assert chi2[-1] < 0.02 * chi2[0]
    assert errors[-1] < 0.25 * errors[0]
    assert errors[-1] < 0.5 / 16  # every cell within half its share of b
    # the solver's own estimates agree that it converged
    assert training.solver_chi2[-1] < 0.05


def test_at_step_zero_the_outer_targets_starve(trainings):
    """With g = 0, N(0, I) noise goes to the nearest target: the inner ones."""
    training = trainings[0.0]
    radius = training.y.norm(dim=1)
    inner = radius.argsort()[:4]
    outer = radius.argsort()[-4:]
    assert training.masses[0, inner].sum() > 0.5
    assert training.masses[0, outer].sum() < 0.01
    assert training.masses[-1, outer].min() > 0.5 / 16


# ----- laguerre_cells -----------------------------------------------------------------------


def _grid_points(state: LaguerreState) -> torch.Tensor:
    return torch.stack(torch.meshgrid(state.grid_x, state.grid_y, indexing="xy"), -1).reshape(-1, 2)


@pytest.mark.parametrize("epsilon", [0.0, 0.5])
def test_step_zero_cells_are_the_voronoi_cells(trainings, epsilon):
    training = trainings[epsilon]
    state = laguerre_cells(training, 0)
    assert isinstance(state, LaguerreState)
    assert (state.step_index, state.step, state.solver_chi2) == (0, 0, None)
    assert state.chi2 == training.chi2[0] and state.mass_error == training.mass_errors[0]
    points = _grid_points(state)
    nearest = torch.cdist(points, training.y).argmin(1).reshape(state.cells.shape)
    assert torch.equal(state.cells, nearest)


def test_trained_cells_are_laguerre_cells_and_differ_from_voronoi(trainings):
    training = trainings[0.0]
    last = laguerre_cells(training, 3)
    assert last.step == 1500 and last.solver_chi2 == training.solver_chi2[-1]
    points = _grid_points(last)
    cost = 0.5 * torch.cdist(points, training.y) ** 2
    laguerre = (cost - training.potentials[3]).argmin(1).reshape(last.cells.shape)
    assert (last.cells == laguerre).float().mean() > 0.999  # up to exact ties
    nearest = torch.cdist(points, training.y).argmin(1).reshape(last.cells.shape)
    assert (last.cells != nearest).float().mean() > 0.2
    # every target owns some grid cells once trained
    assert last.cells.unique().numel() == 16


def test_soft_cells_are_the_mode_of_the_soft_row(trainings):
    training = trainings[0.5]
    state = laguerre_cells(training, 2, grid=40)
    points = _grid_points(state)
    g, b = training.potentials[2], training.b
    rows = torch.log(b) + (g - 0.5 * torch.cdist(points, training.y) ** 2) / 0.5
    assert (state.cells == rows.argmax(1).reshape(state.cells.shape)).float().mean() > 0.999
    # the masses are the soft coupling's column means, not the mode cells' shares
    torch.testing.assert_close(state.mass, training.masses[2])


def test_grid_covers_the_noise_and_the_targets(trainings):
    training = trainings[0.0]
    assert grid_box(training) == (-6.5, 6.5, -3.5, 6.5)
    state = laguerre_cells(training, 1)
    assert state.cells.shape == (93, 120)
    assert state.grid_x[0] == -6.5 and state.grid_x[-1] == 6.5
    assert state.grid_y[0] == -3.5 and state.grid_y[-1] == pytest.approx(6.5, abs=0.06)
    spacing = state.grid_x[1] - state.grid_x[0]
    torch.testing.assert_close(state.grid_y[1] - state.grid_y[0], spacing, rtol=0.02, atol=0)
    small = laguerre_cells(training, 1, grid=10)
    assert small.cells.shape[1] == 10


# ----- the cache ----------------------------------------------------------------------------


def test_same_arguments_return_the_cached_training(trainings, monkeypatch):
    first = trainings[0.0]
    hits = TRAINING_CACHE.hits

    def no_training(*args, **kwargs):
        raise AssertionError("retrained")

    monkeypatch.setattr(laguerre_module, "semidiscrete", no_training)
    again = compute_laguerre_training(**SMALL)
    assert again is first and TRAINING_CACHE.hits == hits + 1
    # the same values, spelled differently, are the same key
    same = compute_laguerre_training(**{**SMALL, "lr": 0.1, "epsilon": 0}, inner=4, outer=6.0)
    assert same is first
    # other arguments train (here: refused by the patched solver)
    with pytest.raises(AssertionError, match="retrained"):
        compute_laguerre_training(**{**SMALL, "seed": 2})


# ----- bad arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_targets": 1}, ValueError, "n_targets"),
        ({"n_targets": 2.5}, TypeError, "n_targets"),
        ({"inner": -1.0}, ValueError, "inner"),
        ({"inner": 6.0, "outer": 4.0}, ValueError, "inner must be smaller than outer"),
        ({"outer": float("inf")}, ValueError, "outer"),
        ({"epsilon": -0.1}, ValueError, "epsilon"),
        ({"epsilon": float("nan")}, ValueError, "epsilon"),
        ({"epsilon": "0"}, TypeError, "epsilon"),
        ({"num_iterations": 0}, ValueError, "num_iterations"),
        ({"lr": 0.0}, ValueError, "lr"),
        ({"batch_size": 1}, ValueError, "batch_size"),
        ({"snapshots": 0}, ValueError, "snapshots"),
        ({"snapshots": 11, "num_iterations": 10}, ValueError, "snapshots must be at most"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_training_arguments_raise_naming_them(kwargs, error, match, monkeypatch):
    monkeypatch.setattr(laguerre_module, "semidiscrete", None)  # no training is started
    with pytest.raises(error, match=match):
        compute_laguerre_training(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"step_index": 4}, ValueError, r"step_index must lie in \[0, 3\]"),
        ({"step_index": -1}, ValueError, "step_index"),
        ({"step_index": True}, TypeError, "step_index"),
        ({"step_index": 1, "grid": 1}, ValueError, "grid"),
    ],
)
def test_bad_cell_arguments_raise(trainings, kwargs, error, match):
    with pytest.raises(error, match=match):
        laguerre_cells(trainings[0.0], **kwargs)
    with pytest.raises(TypeError, match="LaguerreTraining"):
        laguerre_cells("training", 0)


def test_odd_snapshot_counts_end_at_the_last_step():
    assert snapshot_steps(4000, 8) == (0, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4000)
    assert snapshot_steps(10, 3) == (0, 3, 6, 9, 10)
    assert snapshot_steps(5, 5) == (0, 1, 2, 3, 4, 5)


# ----- the widget ---------------------------------------------------------------------------


def _meta(widget) -> dict:
    return dict(widget.figure.layout.meta)


def _stat(widget, name: str) -> str:
    """The data-value of the stat span ``.otkit-stat-<name>``."""
    html = widget.stats.value
    start = html.index(f"otkit-stat-{name}\"")
    start = html.index('data-value="', start) + len('data-value="')
    return html[start:html.index('"', start)]


def test_widget_draws_and_the_step_slider_redraws_without_training(trainings, monkeypatch):
    options = {k: v for k, v in SMALL.items() if k not in ("n_targets", "seed")}
    widget = LaguerreExplorer(n_targets=16, seed=1, debounce_ms=0, **options)
    assert isinstance(widget, InteractiveFigure)
    assert widget.error is None and widget.n_computes == 1
    assert "otkit-laguerre" in widget.ui._dom_classes
    assert [t.name for t in widget.figure.data] == list(TRACE_NAMES)
    assert list(widget.controls) == ["step", "epsilon", "n_targets", "seed"]
    slider = widget.controls["step"]
    assert [label for label, _ in slider.options] == ["0", "500", "1000", "1500"]
    assert widget.state.training is trainings[0.0]  # from the cache: no training

    meta = _meta(widget)
    assert (meta["step"], meta["step_index"], meta["n_targets"], meta["epsilon"]) == (0, 0, 16, 0.0)
    assert meta["cached"] is True and meta["steps"] == [0, 500, 1000, 1500]
    assert meta["chi2"] == trainings[0.0].chi2[0]
    assert _stat(widget, "step") == "0" and widget.step == 0
    assert float(_stat(widget, "chi2")) == pytest.approx(meta["chi2"])
    assert float(_stat(widget, "max-mass-error")) == pytest.approx(meta["max_mass_error"])
    cells = widget.trace("cells")
    z0 = [list(row) for row in cells.z]
    assert len(z0) == 93 and len(z0[0]) == 120 and max(max(r) for r in z0) == 15
    assert (cells.zmin, cells.zmax) == (-0.5, 15.5)
    assert len(widget.trace("targets").x) == len(widget.trace("mass").x) == 16
    assert len(widget.trace("noise").x) == 300
    sizes0 = list(widget.trace("targets").marker.size)

    # move the step slider as a user would: a redraw from the cache, no training
    monkeypatch.setattr(laguerre_module, "semidiscrete", None)
    slider.value = 3
    assert widget.error is None and widget.n_computes == 2
    last = _meta(widget)
    assert (last["step"], last["step_index"], last["cached"]) == (1500, 3, True)
    assert last["chi2"] < 0.05 * meta["chi2"]
    assert last["max_mass_error"] < meta["max_mass_error"]
    assert _stat(widget, "step") == "1500" and widget.step == 1500
    assert float(_stat(widget, "chi2")) == pytest.approx(last["chi2"])
    assert float(_stat(widget, "max-mass-error")) == pytest.approx(last["max_mass_error"])
    assert [list(row) for row in widget.trace("cells").z] != z0
    assert list(widget.trace("targets").marker.size) != sizes0
    torch.testing.assert_close(torch.tensor(widget.trace("mass").y).sum(),
                               torch.tensor(1.0, dtype=torch.float64))

    # ε: the soft training (also cached by the fixture); the step stays
    widget.set(epsilon=0.5)
    soft = _meta(widget)
    assert widget.error is None and (soft["epsilon"], soft["step_index"]) == (0.5, 3)
    assert soft["chi2"] == trainings[0.5].chi2[3]
    assert float(_stat(widget, "epsilon")) == 0.5

    # the figure's synced model follows the drawn figure (for views made later)
    assert widget.figure._widget_layout["meta"]["step_index"] == 3


def test_a_negative_chi2_estimate_reads_as_zero_and_keeps_its_value(trainings):
    """The χ² estimate is unbiased: matched marginals give values around 0, negative half of
    the time. The page says ≈ 0 and shows the estimate; it neither prints a bare negative χ²
    nor clips it to a small positive number."""
    options = {k: v for k, v in SMALL.items() if k not in ("n_targets", "seed")}
    widget = LaguerreExplorer(n_targets=16, seed=1, debounce_ms=0, step=3, **options)
    assert chi2_text(0.0123, 3) == "= 0.0123" and chi2_text(0.0, 3) == "= 0"
    assert chi2_text(-2.1e-5, 3) == "≈ 0 (estimate -2.1e-05)"
    widget.draw(dataclasses.replace(widget.state, chi2=-2.1e-5))
    assert "χ² ≈ 0 (estimate -2.1e-05)," in widget.figure.layout.title.text
    assert float(_stat(widget, "chi2")) == -2.1e-5  # the value itself, for scripts
    assert "<b>≈ 0 (estimate -2.1e-05)</b>" in widget.stats.value
    assert "below 0 by sampling noise" in widget.stats.value  # the hover text says why
    widget.draw(dataclasses.replace(widget.state, chi2=0.0123))
    assert "χ² = 0.0123," in widget.figure.layout.title.text
    assert "<b>0.0123</b>" in widget.stats.value


def test_widget_retrains_for_new_targets_and_shows_errors():
    widget = LaguerreExplorer(n_targets=8, seed=3, debounce_ms=0, num_iterations=300, lr=0.1,
                              snapshots=2, step=2)
    meta = _meta(widget)
    assert widget.error is None and meta["cached"] is False
    assert (meta["n_targets"], meta["step"], meta["steps"]) == (8, 300, [0, 150, 300])
    assert len(widget.trace("targets").x) == 8
    widget.set(n_targets=16)
    assert _meta(widget)["n_targets"] == 16 and len(widget.trace("mass").x) == 16
    assert _meta(widget)["step_index"] == 2
    widget.set(n_targets=8)
    assert _meta(widget)["cached"] is True and _meta(widget)["chi2"] == meta["chi2"]

    # a failing compute keeps the last figure and shows the error
    before = _meta(widget)
    widget.compute_options["lr"] = -1.0
    widget.set(seed=4)
    assert isinstance(widget.error, ValueError) and "lr" in str(widget.error)
    assert "otkit-status-error" in widget.status.value
    assert _meta(widget) == before
    with pytest.raises(ValueError, match="unknown parameter"):
        widget.set(tau=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cost": "dot"}, "unknown option"),
        ({"snapshots": 0}, "snapshots"),
        ({"grid": 1}, "grid"),
        ({"epsilon": 0.3}, "epsilon"),
    ],
)
def test_widget_bad_arguments_raise(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LaguerreExplorer(debounce_ms=0, **kwargs)
