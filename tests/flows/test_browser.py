"""The tour notebook's sharpness widget in a real browser, served by Voilà and by JupyterLab.

A person opens the notebook, runs it, moves the epsilon slider down: the coupling must
sharpen, so the renormalized entropy shown on the page must fall and the plotted coupling
must change. Both are read from the page itself (the DOM and plotly's own data).
"""

import time

import _browser
import pytest

NOTEBOOK = "notebooks/00_ot_tour.ipynb"
WIDGET = ".otkit-sharpness"
SLIDER_HANDLE = f"{WIDGET} .otkit-control-relative-epsilon .noUi-handle"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _entropy(page) -> float:
    return float(page.get_attribute(f"{WIDGET} .otkit-stat-entropy", "data-value"))


def _computes(page) -> int:
    return int(page.get_attribute(f"{WIDGET} .otkit-status [data-computes]", "data-computes"))


def _coupling_trace(page) -> list:
    return page.evaluate(
        """(sel) => {
            const plot = document.querySelector(sel + ' .js-plotly-plot');
            const trace = plot._fullData.find((t) => t.name === 'coupling');
            return Array.from(trace.x);
        }""",
        WIDGET,
    )


def _move_epsilon_down(page, presses: int = 12) -> None:
    before_entropy, before_computes = _entropy(page), _computes(page)
    before_trace = _coupling_trace(page)
    page.focus(SLIDER_HANDLE)
    for _ in range(presses):
        page.keyboard.press("ArrowLeft")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and _computes(page) == before_computes:
        page.wait_for_timeout(250)
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=120_000)
    after_entropy = _entropy(page)
    assert _computes(page) > before_computes, "moving the slider did not recompute"
    assert after_entropy < before_entropy - 0.05, (before_entropy, after_entropy)
    assert _coupling_trace(page) != before_trace, "the plotted coupling did not change"
    title = page.evaluate(
        "(sel) => document.querySelector(sel + ' .js-plotly-plot').layout.title.text", WIDGET
    )
    assert f"{after_entropy:.4f}"[:5] in title, title


def test_voila_dashboard_sharpness_widget():
    with _browser.widget_in_voila(
        NOTEBOOK, WIDGET, "entropy", "voila-sharpness", timeout_ms=300_000,
    ) as page:
        _move_epsilon_down(page)


def test_jupyterlab_run_all_then_move_epsilon():
    with _browser.widget_in_lab(
        NOTEBOOK, WIDGET, "entropy", "lab-sharpness", timeout_ms=400_000,
    ) as page:
        _move_epsilon_down(page)
