"""The steering explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/steering_explorer.ipynb (a GPT-2 trained in the kernel on
the generated corpus, Linear-AcT inducing the topic "weather", λ = 0), moves the strength
slider with the keyboard to λ = 1 and switches the method to the mean shift: the concept rate
on the page must rise with λ, the continuations must change, and the curves must be redrawn
for the new method. Everything is read from the page itself (the stats' data-value
attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/steering_explorer.ipynb"
WIDGET = ".otkit-steering"
HANDLE = WIDGET + " .otkit-control-strength .noUi-handle"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("one_thread_kernels")]


def _plot(page) -> dict:
    return page.evaluate(
        """(sel) => {
            const plot = document.querySelector(sel + ' .js-plotly-plot');
            const byName = {};
            for (const t of plot._fullData) byName[t.name] = t;
            return {rates: Array.from(byName.rate.y), now: Array.from(byName['rate-now'].x),
                    meta: plot.layout.meta};
        }""",
        WIDGET,
    )


def _steer_to_full_strength_then_switch_method(page) -> None:
    before = _plot(page)
    meta = before["meta"]
    assert (meta["method"], meta["strength"], meta["modality"]) == ("linear_act", 0.0, "text")
    assert len(before["rates"]) == 11 and before["now"] == [0.0]
    assert _browser.stat(page, WIDGET, "strength") == "0.0"
    rate0 = float(_browser.stat(page, WIDGET, "concept-rate"))
    samples0 = _browser.stat(page, WIDGET, "samples")
    assert page.locator(f"{WIDGET} .otkit-steering-samples li").count() == 8

    page.focus(HANDLE)
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["strength"] == 1.0, 60, "λ = 1")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    after = _plot(page)
    assert after["now"] == [1.0] and after["meta"]["cached"] is True  # no refit for λ
    rate1 = float(_browser.stat(page, WIDGET, "concept-rate"))
    assert rate1 == pytest.approx(after["meta"]["rates"][-1])
    assert rate1 > rate0 + 0.1, "the concept rate did not rise with the strength"
    assert _browser.stat(page, WIDGET, "samples") != samples0, "the samples did not change"

    page.click(f"{WIDGET} .otkit-control-method button:has-text('mean shift')")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["method"] == "mean_shift", 90,
                      "the mean shift's curves")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    shifted = _plot(page)
    assert shifted["meta"]["strength"] == 1.0 and shifted["rates"] != after["rates"]
    assert _browser.stat(page, WIDGET, "method") == "mean_shift"
    assert page.locator(f"{WIDGET} .otkit-status-error").count() == 0


def test_voila_steering_explorer():
    with _browser.widget_in_voila(NOTEBOOK, WIDGET, "concept-rate", "voila-steering") as page:
        _steer_to_full_strength_then_switch_method(page)


def test_jupyterlab_run_all_then_steer():
    with _browser.widget_in_lab(NOTEBOOK, WIDGET, "concept-rate", "lab-steering") as page:
        _steer_to_full_strength_then_switch_method(page)
