"""The ProgOT explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/progot_explorer.ipynb, raises the number of steps with the
keyboard on the slider: the schedule bars must grow to the new K and the stats must be
recomputed; then moves the step slider: the plotted cloud must change without a recompute.
Everything is read from the page itself (the DOM's data-value attributes and plotly's own
``_fullData`` and ``layout.meta``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/progot_explorer.ipynb"
WIDGET = ".otkit-progot"
HANDLE = WIDGET + " .otkit-control-{} .noUi-handle"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("one_thread_kernels")]


def _stat(page, name: str) -> str:
    return _browser.stat(page, WIDGET, name)


def _computes(page) -> int:
    return _browser.computes(page, WIDGET)


def _plot(page) -> dict:
    """What plotly drew: each trace's x by name, and layout.meta."""
    return page.evaluate(
        """(sel) => {
            const plot = document.querySelector(sel + ' .js-plotly-plot');
            const xs = {};
            for (const t of plot._fullData) xs[t.name] = Array.from(t.x || []);
            return {x: xs, meta: plot.layout.meta};
        }""",
        WIDGET,
    )


def _raise_steps_then_move_step(page) -> None:
    before = _plot(page)
    assert len(before["x"]["alpha"]) == 4 and before["meta"]["num_steps"] == 4
    iterations, computes = _stat(page, "iterations"), _computes(page)

    # K: 4 → 6 with the keyboard (the debounce may fold both presses into one compute)
    page.focus(HANDLE.format("num-steps"))
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    _browser.wait_for(page, lambda: _stat(page, "steps") == "6", 300, "the stats for K = 6")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=300_000)
    _browser.wait_for(page, lambda: len(_plot(page)["x"]["alpha"]) == 6, 30, "6 alpha bars")
    after = _plot(page)
    assert _computes(page) > computes, "raising K did not recompute"
    assert after["x"]["alpha"] == [1, 2, 3, 4, 5, 6], after["x"]["alpha"]
    assert len(after["x"]["epsilon"]) == 6 and len(after["x"]["progress"]) == 7
    assert after["meta"]["num_steps"] == 6 and after["meta"]["step"] == 6
    assert _stat(page, "iterations") != iterations, "the iteration count was not recomputed"
    assert int(_stat(page, "iterations")) == after["meta"]["total_iterations"]
    assert float(_stat(page, "map-error")) == pytest.approx(after["meta"]["map_error"])

    # the step slider followed K to its end; one step back shows x⁽⁵⁾: a redraw, no compute
    computes = _computes(page)
    page.focus(HANDLE.format("step"))
    page.keyboard.press("ArrowLeft")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["step"] == 5, 30, "the step-5 cloud")
    moved = _plot(page)
    assert moved["x"]["cloud"] != after["x"]["cloud"], "the plotted cloud did not change"
    assert moved["x"]["alpha"] == after["x"]["alpha"]
    page.wait_for_timeout(500)  # a recompute, if any, would have been scheduled by now
    assert _computes(page) == computes, "moving the step slider recomputed"
    assert page.locator(f"{WIDGET} .otkit-status-busy").count() == 0


def test_voila_progot_explorer():
    with _browser.widget_in_voila(
        NOTEBOOK, WIDGET, "map-error", "voila-progot", timeout_ms=300_000,
    ) as page:
        _raise_steps_then_move_step(page)


def test_jupyterlab_run_all_then_change_steps():
    with _browser.widget_in_lab(
        NOTEBOOK, WIDGET, "map-error", "lab-progot", timeout_ms=400_000,
    ) as page:
        _raise_steps_then_move_step(page)
