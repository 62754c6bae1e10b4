"""The Laguerre explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/laguerre_explorer.ipynb (32 targets, ε = 0, the snapshot at
SGD step 0, where g = 0 and the cells are the targets' Voronoi cells) and moves the step slider
with the keyboard to its last snapshot (step 4000): the χ² error and the largest cell-mass
error must drop, the cells' heatmap and the targets' markers must be redrawn, without a
retraining (the training is cached). Everything is read from the page itself (the stats'
data-value attributes, plotly's own ``_fullData`` and ``layout.meta``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/laguerre_explorer.ipynb"
WIDGET = ".otkit-laguerre"
HANDLE = WIDGET + " .otkit-control-{} .noUi-handle"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("one_thread_kernels")]


def _stat(page, name: str) -> str:
    return _browser.stat(page, WIDGET, name)


def _computes(page) -> int:
    return _browser.computes(page, WIDGET)


def _plot(page) -> dict:
    """What plotly drew: the cells' z, the targets' marker sizes, the bars, and layout.meta."""
    return page.evaluate(
        """(sel) => {
            const plot = document.querySelector(sel + ' .js-plotly-plot');
            const byName = {};
            for (const t of plot._fullData) byName[t.name] = t;
            return {
                z: Array.from(byName.cells.z, (row) => Array.from(row)),
                sizes: Array.from(byName.targets.marker.size),
                mass: Array.from(byName.mass.y),
                meta: plot.layout.meta,
            };
        }""",
        WIDGET,
    )


def _move_the_step_slider_to_the_end(page) -> None:
    before = _plot(page)
    meta = before["meta"]
    assert (meta["step"], meta["step_index"], meta["n_targets"], meta["epsilon"]) == (0, 0, 32, 0)
    steps = meta["steps"]
    assert steps[0] == 0 and steps[-1] == 4000
    assert len(before["z"]) == 93 and len(before["z"][0]) == 120
    assert len(before["sizes"]) == len(before["mass"]) == 32
    assert _stat(page, "step") == "0"
    chi2, error = float(_stat(page, "chi2")), float(_stat(page, "max-mass-error"))
    assert chi2 == pytest.approx(meta["chi2"]) and chi2 > 1.0  # g = 0: the Voronoi cells
    computes = _computes(page)

    # the step slider to its last snapshot with the keyboard (the debounce may fold the
    # presses into fewer computes; none of them trains)
    page.focus(HANDLE.format("step"))
    for _ in range(len(steps) - 1):
        page.keyboard.press("ArrowRight")
    last = len(steps) - 1
    _browser.wait_for(page, lambda: _plot(page)["meta"]["step_index"] == last, 60,
                      "the last snapshot")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    after = _plot(page)
    assert _computes(page) > computes, "moving the step slider did not redraw"
    assert after["meta"]["step"] == 4000 and after["meta"]["cached"] is True
    assert _stat(page, "step") == "4000"
    trained = float(_stat(page, "chi2"))
    assert trained == pytest.approx(after["meta"]["chi2"])
    assert trained < 0.05 * chi2, "the chi-square error did not drop with training"
    assert float(_stat(page, "max-mass-error")) < 0.25 * error
    assert after["z"] != before["z"], "the cells were not redrawn"
    assert after["sizes"] != before["sizes"], "the target markers were not resized"
    assert max(after["mass"]) < max(before["mass"])
    assert page.locator(f"{WIDGET} .otkit-status-error").count() == 0


def test_voila_laguerre_explorer():
    with _browser.widget_in_voila(NOTEBOOK, WIDGET, "chi2", "voila-laguerre") as page:
        _move_the_step_slider_to_the_end(page)


def test_jupyterlab_run_all_then_move_the_step():
    with _browser.widget_in_lab(NOTEBOOK, WIDGET, "chi2", "lab-laguerre") as page:
        _move_the_step_slider_to_the_end(page)
