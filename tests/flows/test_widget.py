"""widgets: the sharpness computation and the widget machinery, without a browser.

ipywidgets and plotly's FigureWidget work in plain Python without a front end: the tests build
the widgets, move their controls with ``set`` and read the figure's data back. The real-browser
tests (JupyterLab and Voilà) live elsewhere.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math

import ipywidgets as ipw
import plotly.graph_objects as go
import pytest
import torch

from widgets import (
    InteractiveFigure,
    SharpnessExplorer,
    SharpnessState,
    compute_sharpness,
)
from widgets.base import FollowWidthFigureWidget, fixed, torch_threads
from widgets.flows import TRACE_NAMES, heaviest_pairs, segments


@pytest.fixture(autouse=True)
def _eager_kernels(monkeypatch):
    """Run otkit's passes eagerly: compiling them costs seconds per process and is tested in
    test_kernels; these tests are about the widgets."""
    monkeypatch.setenv("OTKIT_COMPILE", "0")


def _entropy(**kw) -> float:
    return compute_sharpness(**kw).renormalized_entropy


# ----- compute_sharpness -------------------------------------------------------------------


def test_entropy_falls_with_epsilon():
    grid = [1.0, 0.3, 0.1, 0.03, 0.01, 0.003]
    values = [_entropy(n=24, relative_epsilon=eps, kind="mixture", seed=0) for eps in grid]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_entropy_limits():
    assert _entropy(n=16, relative_epsilon=1e-4, kind="mixture", max_iter=3000) < 0.05
    assert _entropy(n=16, relative_epsilon=10.0, kind="mixture") > 0.99


def test_state_fields_dense():
    state = compute_sharpness(n=32, relative_epsilon=0.05, kind="moons", seed=1)
    assert isinstance(state, SharpnessState)
    assert (state.n, state.m, state.kind, state.seed) == (32, 32, "moons", 1)
    assert state.x.shape == (32, 2) and state.y.shape == (32, 2)
    assert state.coupling_layout == "dense" and state.coupling.shape == (32, 32)
    assert abs(state.coupling.sum().item() - 1.0) < 1e-3
    assert state.heatmap.shape == (32, 32)
    assert sorted(state.row_order.tolist()) == list(range(32))
    assert state.converged and state.marginal_error < 2e-3 and state.n_iter > 0
    assert state.time_s > 0 and state.backend == "torch" and state.mode == "dense"
    assert state.epsilon > 0 and state.relative_epsilon == 0.05
    assert 0 < state.renormalized_entropy < 1
    masses = state.pair_mass
    assert state.pairs.shape == (masses.numel(), 2) and 0 < masses.numel() <= 2000
    assert (masses[:-1] >= masses[1:]).all()
    assert masses[0].item() == pytest.approx(state.coupling.max().item())
    i, j = state.pairs[0].tolist()
    assert state.coupling[i, j].item() == masses[0].item()
    # heatmap = P / (a⊗b) in projection order, a = b = 1/n
    sorted_plan = state.coupling[state.row_order][:, state.col_order]
    torch.testing.assert_close(state.heatmap, sorted_plan * 32 * 32)
    # same seed, same state
    again = compute_sharpness(n=32, relative_epsilon=0.05, kind="moons", seed=1)
    assert torch.equal(state.x, again.x) and torch.equal(state.coupling, again.coupling)


def test_pairs_are_capped_and_thresholded():
    state = compute_sharpness(n=48, relative_epsilon=1.0, max_pairs=100, pair_threshold=1e-3)
    assert state.pairs.shape == (100, 2)  # diffuse: every pair passes the threshold, capped
    sharp = compute_sharpness(n=48, relative_epsilon=0.01, pair_threshold=0.5)
    assert (sharp.pair_mass > 0.5 * sharp.coupling.max()).all()
    assert sharp.effective_pairs() < state.effective_pairs()


def test_binned_layout_matches_dense_block_sums():
    kw = dict(n=40, relative_epsilon=0.05, kind="gaussians", seed=2, heatmap_bins=8)
    dense = compute_sharpness(**kw)
    binned = compute_sharpness(**kw, dense_limit=32)
    assert dense.coupling_layout == "dense" and binned.coupling_layout == "binned"
    assert binned.coupling.shape == (8, 8) and binned.heatmap.shape == (8, 8)
    assert dense.heatmap.shape == (8, 8)  # dense plan, binned heatmap (n > heatmap_bins)
    torch.testing.assert_close(binned.heatmap, dense.heatmap, rtol=1e-4, atol=1e-4)
    # block sums of the dense plan in projection order: blocks of 5 rows / columns
    sorted_plan = dense.coupling[dense.row_order][:, dense.col_order]
    blocks = sorted_plan.reshape(8, 5, 8, 5).sum((1, 3))
    torch.testing.assert_close(binned.coupling, blocks, rtol=1e-4, atol=1e-6)
    assert binned.pairs.shape == (0, 2)
    assert math.isnan(binned.effective_pairs())


@pytest.mark.parametrize("backend", ["pot", "geomloss"])
def test_other_backends_agree(backend):
    pytest.importorskip("ot" if backend == "pot" else "geomloss")
    ref = compute_sharpness(n=24, relative_epsilon=0.1, kind="mixture", backend="torch")
    other = compute_sharpness(n=24, relative_epsilon=0.1, kind="mixture", backend=backend)
    assert other.backend == backend
    assert other.renormalized_entropy == pytest.approx(ref.renormalized_entropy, abs=0.02)


def test_compute_rejects_bad_arguments():
    with pytest.raises(ValueError, match="backend"):
        compute_sharpness(n=16, backend="jax")
    with pytest.raises(ValueError, match="kind"):
        compute_sharpness(n=16, kind="spirals")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        compute_sharpness(n=0)


def test_non_convergence_is_reported_not_raised():
    state = compute_sharpness(n=32, relative_epsilon=0.001, max_iter=3, epsilon_scaling=None)
    assert not state.converged and state.n_iter == 3
    assert state.warnings and "did not reach tol" in state.warnings[0]


# ----- the widget --------------------------------------------------------------------------


def _trace(widget, name):
    return next(t for t in widget.figure.data if t.name == name)


def test_widget_builds():
    w = SharpnessExplorer(n=16, debounce_ms=0)
    assert isinstance(w.ui, ipw.VBox) and isinstance(w.figure, go.FigureWidget)
    assert isinstance(w, InteractiveFigure)
    assert [t.name for t in w.figure.data] == list(TRACE_NAMES)
    assert isinstance(w.controls["relative_epsilon"], ipw.FloatLogSlider)
    assert w.controls["relative_epsilon"].value == pytest.approx(0.05, rel=0.01)
    assert isinstance(w.controls["n"], ipw.IntSlider)
    assert list(w.controls["backend"].options) == ["auto", "torch", "pot", "geomloss"]
    assert w.n_computes == 1 and isinstance(w.state, SharpnessState) and w.error is None
    assert "otkit-widget" in w.ui._dom_classes and "otkit-sharpness" in w.ui._dom_classes
    assert "otkit-control-relative-epsilon" in w.controls["relative_epsilon"]._dom_classes
    assert "otkit-status" in w.status._dom_classes and "otkit-stats" in w.stats._dom_classes
    assert "otkit-status-ready" in w.status.value and 'data-computes="1"' in w.status.value
    h = w.state.renormalized_entropy
    assert f"renormalized entropy {h:.4f}" in w.figure.layout.title.text
    assert w.figure.layout.meta["renormalized_entropy"] == h
    assert 'class="otkit-stat otkit-stat-entropy"' in w.stats.value
    assert f'data-value="{h!r}"' in w.stats.value
    assert len(_trace(w, "source").x) == 16 and len(_trace(w, "target").x) == 16
    assert len(_trace(w, "coupling").x) == 3 * heaviest_pairs(w.state, 0.9)
    bundle = w._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert not w.busy and "otkit-busy" not in w.ui._dom_classes


def test_set_recomputes_and_sharpens():
    w = SharpnessExplorer(n=32, relative_epsilon=0.3, debounce_ms=0)
    before = w.state
    lines_before = list(_trace(w, "coupling").x)
    opacity_before = _trace(w, "coupling").opacity
    heat_before = _trace(w, "coupling heatmap").z.max()
    w.set(relative_epsilon=0.005)
    assert w.n_computes == 2 and w.state is not before
    assert w.state.relative_epsilon == pytest.approx(0.005, rel=0.02)
    assert w.state.renormalized_entropy < before.renormalized_entropy - 0.2
    lines = list(_trace(w, "coupling").x)
    assert lines != lines_before and len(lines) < len(lines_before)  # fewer, heavier pairs
    assert _trace(w, "coupling").opacity > opacity_before
    assert _trace(w, "coupling heatmap").z.max() > heat_before  # mass concentrates
    assert f"{w.state.renormalized_entropy:.4f}" in w.figure.layout.title.text
    assert w.figure.layout.meta["relative_epsilon"] == pytest.approx(0.005, rel=0.02)
    # unchanged value: nothing to do
    w.set(relative_epsilon=0.005)
    assert w.n_computes == 2


def test_set_several_controls_computes_once():
    w = SharpnessExplorer(n=16, debounce_ms=0)
    w.set(n=32, seed=3, kind="gaussians")
    assert w.n_computes == 2
    assert (w.state.n, w.state.seed, w.state.kind) == (32, 3, "gaussians")
    with pytest.raises(ValueError, match="unknown parameter"):
        w.set(alpha=0.1)


def test_control_change_from_the_front_end_recomputes():
    w = SharpnessExplorer(n=16, debounce_ms=0)
    w.controls["n"].value = 48  # what a slider move does
    assert w.n_computes == 2 and w.state.n == 48 and len(_trace(w, "source").x) == 48


def test_set_snaps_to_the_slider_grid():
    """The browser snaps slider values and echoes them back: set() snaps first, so a page load
    or a programmatic set costs one compute, not two."""
    w = SharpnessExplorer(n=16, debounce_ms=0)
    assert w.controls["relative_epsilon"].value == 10**-1.3  # 0.05 is off the 0.05-step grid
    w.set(relative_epsilon=0.005, n=41)
    assert w.controls["relative_epsilon"].value == 10**-2.3 and w.state.n == 48
    w.set(relative_epsilon=5.0, n=5000)  # clamped to the ends
    assert w.state.relative_epsilon == 1.0 and w.state.n == 1024
    w.set(relative_epsilon=1e-3, n=10)
    assert w.state.relative_epsilon == 1e-3 and w.state.n == 16


def test_heatmap_path_for_larger_n():
    w = SharpnessExplorer(n=16, debounce_ms=0)
    assert len(_trace(w, "coupling").x) > 0
    w.set(n=96)
    assert w.state.n == 96 and len(_trace(w, "coupling").x) == 0
    z = _trace(w, "coupling heatmap").z
    assert z.shape == (96, 96)
    assert "segments shown for n ≤ 64" in w.figure.layout.annotations[0].text
    w2 = SharpnessExplorer(n=112, debounce_ms=0, heatmap_bins=50)
    assert _trace(w2, "coupling heatmap").z.shape == (50, 50)
    assert "50×50 blocks" in w2.figure.layout.annotations[1].text


def test_busy_state_toggles():
    w = SharpnessExplorer(n=16, debounce_ms=0, disable_while_busy=True)
    statuses: list[str] = []
    w.status.observe(lambda change: statuses.append(change["new"]), names="value")
    seen = {}
    compute = w.compute

    def spy(**params):
        seen["busy"] = w.busy
        seen["class"] = "otkit-busy" in w.ui._dom_classes
        seen["disabled"] = all(c.disabled for c in w.controls.values())
        seen["status"] = w.status.value
        return compute(**params)

    w.compute = spy
    w.set(relative_epsilon=0.02)
    assert seen == {"busy": True, "class": True, "disabled": True, "status": seen["status"]}
    assert "otkit-status-busy" in seen["status"] and "computing" in seen["status"]
    assert ["busy" in s for s in statuses] == [True, False]
    assert "otkit-status-ready" in statuses[-1] and 'data-computes="2"' in statuses[-1]
    assert not w.busy and "otkit-busy" not in w.ui._dom_classes
    assert not any(c.disabled for c in w.controls.values())


def test_error_is_shown_in_status_and_recovers():
    w = SharpnessExplorer(n=16, debounce_ms=0)
    good_state, good_title = w.state, w.figure.layout.title.text
    compute = w.compute

    def broken(**params):
        if params["seed"] == 13:
            raise RuntimeError("solver exploded <badly>")
        return compute(**params)

    w.compute = broken
    w.set(seed=13)
    assert isinstance(w.error, RuntimeError) and "solver exploded" in w.error_traceback
    assert "otkit-status-error" in w.status.value and "color:#c00" in w.status.value
    assert "RuntimeError: solver exploded &lt;badly&gt;" in w.status.value  # escaped
    assert w.state is good_state and w.figure.layout.title.text == good_title
    assert not w.busy and "otkit-busy" not in w.ui._dom_classes
    w.set(seed=14)
    assert w.error is None and "otkit-status-ready" in w.status.value and w.state.seed == 14


def test_error_in_first_compute_does_not_raise():
    w = SharpnessExplorer(n=16, debounce_ms=0, tol=-1.0)
    assert w.state is None and isinstance(w.error, ValueError)
    assert "otkit-status-error" in w.status.value and "tol" in w.status.value


def test_debounce_coalesces_rapid_changes():
    w = SharpnessExplorer(n=16, debounce_ms=40)
    assert w.n_computes == 1  # the first compute is synchronous
    calls = []
    compute = w.compute
    w.compute = lambda **p: calls.append(p["relative_epsilon"]) or compute(**p)

    async def drag():
        for eps in (0.04, 0.03, 0.02, 0.01, 0.008):
            w.set(relative_epsilon=eps)
            await asyncio.sleep(0.005)  # faster than the debounce window
        assert calls == [] and w.busy and "otkit-status-busy" in w.status.value
        await asyncio.sleep(0.4)

    asyncio.run(drag())
    assert calls == [pytest.approx(0.008, rel=0.02)]
    assert w.n_computes == 2 and w.state.relative_epsilon == pytest.approx(0.008, rel=0.02)
    assert not w.busy and "otkit-status-ready" in w.status.value


def test_flush_computes_a_pending_change_now():
    w = SharpnessExplorer(n=16, debounce_ms=10_000)

    async def main():
        w.set(relative_epsilon=0.01)
        assert w.n_computes == 1 and w.busy
        w.flush()
        assert w.n_computes == 2 and not w.busy

    asyncio.run(main())
    assert w.state.relative_epsilon == pytest.approx(0.01)


def test_without_a_loop_debounced_widget_is_synchronous():
    w = SharpnessExplorer(n=16, debounce_ms=150)
    w.set(relative_epsilon=0.01)
    assert w.n_computes == 2 and w.state.relative_epsilon == pytest.approx(0.01)


def test_heaviest_pairs_cover_the_mass():
    sharp = compute_sharpness(n=16, relative_epsilon=1e-4, kind="mixture", max_iter=3000)
    assert 14 <= heaviest_pairs(sharp, 0.9) <= 16  # a permutation: ⌈0.9 n⌉ = 15 pairs
    diffuse = compute_sharpness(n=16, relative_epsilon=10.0, kind="mixture")
    k = heaviest_pairs(diffuse, 0.9)
    assert 0.85 * 256 <= k <= 0.95 * 256
    assert diffuse.pair_mass[:k].sum() >= 0.9 * diffuse.coupling.sum() - 1e-6
    assert heaviest_pairs(diffuse, 1.0) == diffuse.pairs.shape[0]


def test_segments_have_none_separators():
    state = compute_sharpness(n=16, relative_epsilon=0.01)
    xs, ys, masses = segments(state)
    k = state.pairs.shape[0]
    assert len(xs) == len(ys) == len(masses) == 3 * k
    assert xs[2::3] == [None] * k and ys[2::3] == [None] * k
    i, j = state.pairs[0].tolist()
    assert xs[:2] == pytest.approx([state.x[i, 0].item(), state.y[j, 0].item()])


def test_bad_debounce():
    with pytest.raises(ValueError, match="debounce_ms"):
        SharpnessExplorer(n=16, debounce_ms=-1)


def test_callbacks_compute_on_one_torch_thread_and_restore_the_count():
    """Under background load a widget's small solves crawl on several threads: the compute
    and the draw run on one, and the count is restored after (also after an error)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        w = SharpnessExplorer(n=16, debounce_ms=0)
        seen = []
        compute, draw = w.compute, w.draw
        w.compute = lambda **p: seen.append(("compute", torch.get_num_threads())) or compute(**p)
        w.draw = lambda state: seen.append(("draw", torch.get_num_threads())) or draw(state)
        w.controls["relative_epsilon"].value = 0.02  # a change from the page: the callback
        assert seen == [("compute", 1), ("draw", 1)] and w.error is None
        assert torch.get_num_threads() == 2

        def broken(**params):
            seen.append(("broken", torch.get_num_threads()))
            raise RuntimeError("no")

        w.compute = broken
        w.set(seed=3)
        assert seen[-1] == ("broken", 1) and isinstance(w.error, RuntimeError)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_torch_threads_leaves_the_count_alone_for_none():
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_an_entropy_that_rounds_to_zero_is_never_negative():
    """The renormalized entropy of a sharp plan can come out as −1e-9: shown as 0.0000."""
    assert fixed(-1e-9, 4) == "0.0000" and fixed(-0.0, 3) == "0.000"
    assert fixed(-0.01, 3) == "-0.010" and fixed(0.12345, 4) == "0.1235"
    w = SharpnessExplorer(n=16, debounce_ms=0)
    w.draw(dataclasses.replace(w.state, renormalized_entropy=-1e-9))
    assert "renormalized entropy 0.0000 ·" in w.figure.layout.title.text
    assert "-0.0" not in w.stats.value and "<b>0.0000</b>" in w.stats.value


def test_the_seed_box_is_shared():
    w = SharpnessExplorer(n=16, debounce_ms=0)
    seed = w.controls["seed"]
    assert isinstance(seed, ipw.BoundedIntText)
    assert (seed.min, seed.max, seed.description, seed.layout.width) == (
        0, 2**31 - 1, "seed", "130px")
    assert "otkit-control-seed" in seed._dom_classes


def test_the_figure_fills_its_output_area():
    """The figure is plotly's FigureWidget with a front end that redraws it at its element's
    width (the browser tests measure it); no fixed width, plotly's responsive config on."""
    w = SharpnessExplorer(n=16, debounce_ms=0)
    assert isinstance(w.figure, FollowWidthFigureWidget) and w.figure.layout.width is None
    assert w.figure._config.get("responsive") is True
    esm = w.figure._esm
    assert "new ResizeObserver" in esm and "__otkitFigure as default" in esm
