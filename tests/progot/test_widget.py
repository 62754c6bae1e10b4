"""widgets.progot: the ProgOT computation and its widget, without a browser.

The state must agree with :func:`otkit.progot` called directly on the same samples; the widget
is driven with ``set`` and read back from its figure (the real-browser test is
test_browser.py).
"""

from __future__ import annotations

import ipywidgets as ipw
import plotly.graph_objects as go
import pytest
import torch

import otkit
from otkit.costs import SqEuclidean
from otkit.data import ground_truth_map, map_error
from otkit.geometry import PointCloud
from otkit.progot import epsilon_schedule, progot
from otkit.sinkhorn import resolve_epsilon
from widgets import InteractiveFigure, ProgOTExplorer, ProgOTState, compute_progot
from widgets.progot import TRACE_NAMES, trajectories

SMALL = dict(n=64, n_test=64)  # fast, and enough points for meaningful errors


pytestmark = pytest.mark.usefixtures("eager_one_thread")


def _samples(kind: str, seed: int, n: int, n_test: int):
    truth_map = ground_truth_map(kind, 2, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x, y = truth_map.sample_pair(n, generator=gen)
    x_test = truth_map.sample_source(n_test, generator=gen)
    return x, y, x_test, truth_map.map(x_test)


def _trace(widget, name):
    return next(t for t in widget.figure.data if t.name == name)


# ----- compute_progot ----------------------------------------------------------------------


def test_state_agrees_with_progot_called_directly():
    state = compute_progot(**SMALL, num_steps=3, alpha="quad", kind="softplus", seed=1)
    assert isinstance(state, ProgOTState)
    x, y, x_test, truth = _samples("softplus", 1, 64, 64)
    assert torch.equal(state.x, x) and torch.equal(state.y, y)
    assert torch.equal(state.x_test, x_test) and torch.equal(state.truth, truth)

    direct = progot(x, y, num_steps=3, alpha="quad")
    assert len(state.xs) == 4 and state.num_steps == 3
    for mine, theirs in zip(state.xs, direct.xs):
        torch.testing.assert_close(mine, theirs)
    torch.testing.assert_close(state.alphas, direct.alphas)
    torch.testing.assert_close(state.epsilons, direct.epsilons)
    torch.testing.assert_close(state.progress, direct.progress)
    assert state.n_iters == direct.n_iters and state.converged == direct.converged
    assert state.total_iterations == direct.total_iterations
    torch.testing.assert_close(state.image, direct.transport(x_test))
    assert state.map_error == pytest.approx(map_error(direct.transport(x_test), truth))
    # step errors: after 0 steps the points have not moved; after K, the final error
    assert len(state.step_errors) == 4
    assert state.step_errors[0] == pytest.approx(map_error(x_test, truth))
    assert state.step_errors[-1] == state.map_error
    assert state.step_errors[1] == pytest.approx(
        map_error(direct.transport(x_test, num_steps=1), truth))

    entropic = otkit.sinkhorn(x, y)
    assert state.entropic_error == pytest.approx(map_error(entropic.transport(x_test), truth))
    # the default mode's first step is the reference problem: same ε
    assert state.entropic_epsilon == pytest.approx(state.epsilons[0].item())
    assert state.time_s > 0 and state.entropic_time_s > 0
    # both maps beat predicting the mean by far
    assert state.map_error < 0.2 and state.entropic_error < 0.2


def test_same_arguments_same_state():
    a = compute_progot(**SMALL, kind="gaussian", seed=2)
    b = compute_progot(**SMALL, kind="gaussian", seed=2)
    assert torch.equal(a.xs[-1], b.xs[-1]) and a.map_error == b.map_error
    c = compute_progot(**SMALL, kind="gaussian", seed=3)
    assert not torch.equal(a.x, c.x)


def test_manual_epsilons_follow_epsilon_schedule_relative_to_cost_std():
    state = compute_progot(**SMALL, num_steps=5, alpha="lin", epsilon_mode="manual",
                           epsilon_start=0.1, epsilon_end=0.01)
    cost_std = resolve_epsilon(PointCloud(state.x, state.y, SqEuclidean()), None, None)[1]
    assert state.cost_std == pytest.approx(cost_std)
    expected = epsilon_schedule(0.1 * cost_std, 0.01 * cost_std, state.alphas)
    torch.testing.assert_close(state.epsilons, expected)
    assert (state.epsilons[:-1] > state.epsilons[1:]).all()  # decreasing, start to end
    assert (state.epsilon_start, state.epsilon_end) == (0.1, 0.01)
    assert state.tuned_epsilon_end is None


def test_default_and_tuned_epsilons():
    default = compute_progot(**SMALL, num_steps=3)
    assert default.epsilons[0].item() == pytest.approx(0.05 * default.cost_std)
    tuned = compute_progot(**SMALL, num_steps=3, epsilon_mode="tuned")
    assert tuned.tuned_epsilon_end is not None and tuned.tuned_epsilon_end > 0
    expected = epsilon_schedule(0.05 * tuned.cost_std, tuned.tuned_epsilon_end, tuned.alphas)
    torch.testing.assert_close(tuned.epsilons, expected)


@pytest.mark.parametrize("alpha", ["lin", "quad"])
def test_lin_and_quad_progress_ends_at_one(alpha):
    state = compute_progot(**SMALL, num_steps=4, alpha=alpha)
    assert state.progress.shape == (5,) and state.progress[0].item() == 0.0
    assert state.progress[-1].item() == pytest.approx(1.0)
    assert (state.progress[1:] > state.progress[:-1]).all()


def test_exp_progress_stops_short():
    state = compute_progot(**SMALL, num_steps=4, alpha="exp")
    assert state.progress[-1].item() == pytest.approx(1 - (1 - 1 / torch.e) ** 4)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(alpha="cubic"), ValueError, "alpha must be one of"),
    (dict(epsilon_mode="auto"), ValueError, "epsilon_mode must be one of"),
    (dict(kind="spiral"), ValueError, "kind must be one of"),
    (dict(num_steps=0), ValueError, "num_steps must be at least 1"),
    (dict(num_steps=2.0), TypeError, "num_steps must be an integer"),
    (dict(n=2), ValueError, "n must be at least 3"),
    (dict(n_test=1), ValueError, "n_test must be at least 2"),
    (dict(seed=-1), ValueError, "seed must be at least 0"),
    (dict(seed=True), TypeError, "seed must be an integer"),
    (dict(epsilon_mode="manual", epsilon_start=0.0), ValueError, "epsilon_start"),
    (dict(epsilon_end=float("nan")), ValueError, "epsilon_end"),
    (dict(epsilon_end="small"), TypeError, "epsilon_end"),
])
def test_compute_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_progot(**{**SMALL, **kwargs})


def test_non_convergence_is_reported_not_raised():
    state = compute_progot(**SMALL, num_steps=2, max_iter=2, tol=1e-9)
    assert not state.converged and state.n_iters == (2, 2)
    assert state.converged_steps == (False, False)
    assert state.warnings and "did not reach tol" in state.warnings[0]


def test_trajectories_are_paths_with_separators():
    state = compute_progot(**SMALL, num_steps=3)
    xs, ys = trajectories(state, count=5)
    assert len(xs) == len(ys) == 5 * (3 + 2)  # K + 1 points and a None per path
    assert xs[4::5] == [None] * 5
    assert xs[:4] == pytest.approx([cloud[0, 0].item() for cloud in state.xs])
    assert ys[-2] == pytest.approx(state.xs[-1][-1, 1].item())  # the last point's end


# ----- the widget --------------------------------------------------------------------------


def test_widget_builds():
    w = ProgOTExplorer(debounce_ms=0, **SMALL)
    assert isinstance(w, InteractiveFigure) and isinstance(w.figure, go.FigureWidget)
    assert w.error is None and w.n_computes == 1 and isinstance(w.state, ProgOTState)
    assert [t.name for t in w.figure.data] == list(TRACE_NAMES)
    assert set(w.controls) == {"num_steps", "alpha", "epsilon_mode", "epsilon_start",
                               "epsilon_end", "kind", "seed"}
    assert isinstance(w.controls["num_steps"], ipw.IntSlider)
    assert (w.controls["num_steps"].min, w.controls["num_steps"].max) == (1, 10)
    assert isinstance(w.controls["epsilon_start"], ipw.FloatLogSlider)
    assert w.controls["epsilon_start"].disabled and w.controls["epsilon_end"].disabled
    assert "otkit-widget" in w.ui._dom_classes and "otkit-progot" in w.ui._dom_classes
    assert "otkit-control-step" in w.step_control._dom_classes
    rows = w.controls_box.children
    assert w.step_control in rows[-1].children and w.controls["seed"] in rows[0].children
    assert (w.step_control.min, w.step_control.max, w.step) == (0, 4, 4)

    assert len(_trace(w, "alpha").x) == 4 and len(_trace(w, "epsilon").y) == 4
    assert list(_trace(w, "alpha").y) == pytest.approx(w.state.alphas.tolist())
    assert list(_trace(w, "progress").y) == pytest.approx(w.state.progress.tolist())
    assert len(_trace(w, "source").x) == 64 and len(_trace(w, "target").x) == 64
    assert list(_trace(w, "cloud").x) == pytest.approx(w.state.xs[4][:, 0].tolist())
    meta = w.figure.layout.meta
    assert meta["map_error"] == w.state.map_error and meta["num_steps"] == 4
    assert meta["step"] == 4 and meta["total_iterations"] == w.state.total_iterations
    for name in ("map-error", "entropic-error", "iterations", "steps", "progress", "time",
                 "converged"):
        assert f'class="otkit-stat otkit-stat-{name}"' in w.stats.value
    assert f'data-value="{w.state.map_error!r}"' in w.stats.value
    assert f'data-value="{w.state.total_iterations}"' in w.stats.value
    assert f"{w.state.map_error:.4f}" in w.figure.layout.title.text


def test_num_steps_changes_the_bars():
    w = ProgOTExplorer(debounce_ms=0, **SMALL)
    w.set(num_steps=6)
    assert w.n_computes == 2 and w.state.num_steps == 6
    assert list(_trace(w, "alpha").x) == [1, 2, 3, 4, 5, 6]
    assert len(_trace(w, "epsilon").y) == 6 and len(_trace(w, "progress").x) == 7
    assert w.step_control.max == 6 and w.step == 6  # at its end, the step follows K
    w.set(num_steps=2)
    assert len(_trace(w, "alpha").y) == 2 and w.step == 2
    assert 'data-value="2"' in w.stats.value and w.figure.layout.meta["num_steps"] == 2


def test_step_slider_redraws_without_recomputing():
    w = ProgOTExplorer(debounce_ms=0, **SMALL)
    state, computes, status = w.state, w.n_computes, w.status.value
    calls = []
    compute = w.compute
    w.compute = lambda **p: calls.append(p) or compute(**p)

    w.set(step=1)
    assert calls == [] and w.n_computes == computes and w.state is state
    assert w.status.value == status
    assert list(_trace(w, "cloud").x) == pytest.approx(state.xs[1][:, 0].tolist())
    assert list(_trace(w, "current").y) == pytest.approx([state.progress[1].item()])
    assert w.figure.layout.meta["step"] == 1
    assert "x<sup>(1)</sup>" in w.figure.layout.annotations[1].text
    w.step_control.value = 0  # what the front end does
    assert calls == [] and list(_trace(w, "cloud").y) == pytest.approx(state.x[:, 1].tolist())
    # model state kept current for views made later (page reload, Voilà)
    cloud = next(t for t in w.figure._widget_data if t["name"] == "cloud")
    assert list(cloud["x"]) == pytest.approx(state.x[:, 0].tolist())

    # off its end, the step stays where it is when K changes (clamped when K falls below it)
    w.set(step=3)
    w.set(num_steps=6)
    assert len(calls) == 1 and w.step == 3
    assert list(_trace(w, "cloud").x) == pytest.approx(w.state.xs[3][:, 0].tolist())
    w.set(num_steps=2)
    assert w.step == 2
    w.set(step=99)  # clamped by the slider
    assert w.step == 2


def test_initial_step_and_unknown_parameters():
    w = ProgOTExplorer(debounce_ms=0, step=1, **SMALL)
    assert w.step == 1 and w.step_control.max == 4
    assert list(_trace(w, "cloud").x) == pytest.approx(w.state.xs[1][:, 0].tolist())
    with pytest.raises(ValueError, match="unknown parameter"):
        w.set(relative_epsilon=0.1)


@pytest.mark.parametrize("disable_while_busy", [False, True])
def test_manual_mode_enables_the_epsilon_sliders(disable_while_busy):
    w = ProgOTExplorer(debounce_ms=0, disable_while_busy=disable_while_busy, **SMALL)
    w.set(epsilon_mode="manual", epsilon_start=0.2, epsilon_end=0.005)
    assert not w.controls["epsilon_start"].disabled and not w.controls["epsilon_end"].disabled
    start, end = w.controls["epsilon_start"].value, w.controls["epsilon_end"].value
    assert start == pytest.approx(0.2, rel=0.15) and end == pytest.approx(0.005, rel=0.15)
    expected = epsilon_schedule(start * w.state.cost_std, end * w.state.cost_std, w.state.alphas)
    torch.testing.assert_close(w.state.epsilons, expected)
    assert list(_trace(w, "epsilon").y) == pytest.approx(expected.tolist())
    w.set(epsilon_mode="tuned")
    assert w.controls["epsilon_start"].disabled and w.controls["epsilon_end"].disabled
    assert w.state.tuned_epsilon_end is not None
    assert not w.controls["num_steps"].disabled


def test_error_is_shown_and_step_moves_stay_harmless():
    w = ProgOTExplorer(debounce_ms=0, n=2)
    assert w.state is None and isinstance(w.error, ValueError)
    assert "otkit-status-error" in w.status.value and "n must be at least 3" in w.status.value
    w.set(step=0)  # nothing drawn yet: no error, no compute
    assert w.n_computes == 1
