"""The elastic explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/elastic_explorer.ipynb (the squared-Euclidean map, λ = 0, on
a planted sparse translation: every coordinate moves), moves the λ slider with the keyboard to
its last stop (λ = 2) and switches the regularizer to STVS: the fraction of coordinates moved
must drop, the heatmap must gain exact zeros, and the marker must move along the trade-off
curve. Everything is read from the page (the stats' data-value attributes and plotly's
``layout.meta`` and ``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/elastic_explorer.ipynb"
WIDGET = ".otkit-elastic"
HANDLE = WIDGET + " .otkit-control-lam .noUi-handle"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("one_thread_kernels")]


def _plot(page) -> dict:
    return page.evaluate(
        """(sel) => {
            const plot = document.querySelector(sel + ' .js-plotly-plot');
            const byName = {};
            for (const t of plot._fullData) byName[t.name] = t;
            const z = Array.from(byName.displacements.z, (row) => Array.from(row));
            return {zeros: z.slice(2).flat().filter((v) => v === 0).length,
                    now: Array.from(byName.now.x), meta: plot.layout.meta};
        }""",
        WIDGET,
    )


def _raise_lambda_then_switch_to_stvs(page) -> None:
    before = _plot(page)
    assert (before["meta"]["lam"], before["meta"]["regularizer"]) == (0.0, "l1")
    assert before["zeros"] == 0 and float(_browser.stat(page, WIDGET, "moved")) == 1.0

    page.focus(HANDLE)
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["lam"] == 2.0, 60, "λ = 2")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    after = _plot(page)
    moved = float(_browser.stat(page, WIDGET, "moved"))
    assert moved == pytest.approx(after["meta"]["moved"]) and moved < 0.6
    assert after["zeros"] > 0, "no coordinate stopped moving"
    assert after["now"] != before["now"]

    page.click(f"{WIDGET} .otkit-control-regularizer button:has-text('STVS')")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["regularizer"] == "stvs", 60, "STVS")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    stvs = _plot(page)
    assert stvs["meta"]["lam"] == 2.0 and stvs["meta"]["moved"] != after["meta"]["moved"]
    assert _browser.stat(page, WIDGET, "regularizer") == "stvs"
    assert page.locator(f"{WIDGET} .otkit-status-error").count() == 0


def test_voila_elastic_explorer():
    with _browser.widget_in_voila(NOTEBOOK, WIDGET, "moved", "voila-elastic") as page:
        _raise_lambda_then_switch_to_stvs(page)


def test_jupyterlab_run_all_then_raise_lambda():
    with _browser.widget_in_lab(NOTEBOOK, WIDGET, "moved", "lab-elastic") as page:
        _raise_lambda_then_switch_to_stvs(page)
