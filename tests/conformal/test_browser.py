"""The conformal region explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/conformal_explorer.ipynb and raises α with the keyboard on
its slider: the region's boundary must shrink and the coverage stat must be recomputed, from
the cached fit (no refit); then switches the method to the ball: the ε slider must be
disabled (ε is OTCP's only) and the volume stat must change. Everything is read from the page
itself (the DOM's data-value and disabled attributes, plotly's own ``_fullData`` and
``layout.meta``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/conformal_explorer.ipynb"
WIDGET = ".otkit-conformal"
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


def _epsilon_disabled(page) -> bool:
    # ipywidgets marks a disabled slider's noUiSlider element with a `disabled` attribute
    return page.locator(
        f"{WIDGET} .otkit-control-relative-epsilon .noUi-target[disabled]").count() == 1


def _raise_alpha_then_switch_to_ball(page) -> None:
    before = _plot(page)
    assert before["meta"]["method"] == "otcp" and before["meta"]["alpha"] == pytest.approx(0.1)
    assert len(before["x"]["region"]) == 257  # a closed curve: 256 points and the first again
    assert not _epsilon_disabled(page)
    coverage, volume, computes = _stat(page, "coverage"), _stat(page, "volume"), _computes(page)

    # α: 0.10 → 0.15 with the keyboard (the debounce may fold the presses into one compute)
    page.focus(HANDLE.format("alpha"))
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["alpha"] == pytest.approx(0.15), 60,
              "the region at alpha = 0.15")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    after = _plot(page)
    assert _computes(page) > computes, "raising alpha did not recompute"
    assert after["x"]["region"] != before["x"]["region"], "the boundary was not redrawn"
    assert after["meta"]["cached"] is True, "raising alpha refitted the OT map"
    assert _stat(page, "fit") == "cached"
    assert _stat(page, "coverage") != coverage, "the coverage was not recomputed"
    assert float(_stat(page, "coverage")) == pytest.approx(after["meta"]["coverage"])
    assert after["meta"]["coverage"] < before["meta"]["coverage"]  # a smaller region
    assert after["meta"]["volume"] < before["meta"]["volume"]

    # method: OTCP → ball; ε has no meaning for the ball: its slider is disabled
    page.click(f"{WIDGET} .otkit-control-method button:text-is('ball')")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["method"] == "ball", 60, "the ball region")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    _browser.wait_for(page, lambda: _epsilon_disabled(page), 10, "the epsilon slider to be disabled")
    ball = _plot(page)
    assert ball["meta"]["alpha"] == pytest.approx(0.15)
    assert _stat(page, "volume") != volume, "the volume stat was not updated"
    assert float(_stat(page, "volume")) == pytest.approx(ball["meta"]["volume"])
    assert ball["meta"]["volume"] != pytest.approx(after["meta"]["volume"])
    assert ball["meta"]["volume_stderr"] == 0  # exact, πq̂²
    assert ball["x"]["region"] != after["x"]["region"]
    assert page.locator(f"{WIDGET} .otkit-status-error").count() == 0


def test_voila_conformal_explorer():
    with _browser.widget_in_voila(NOTEBOOK, WIDGET, "coverage", "voila-conformal") as page:
        _raise_alpha_then_switch_to_ball(page)


def test_jupyterlab_run_all_then_move_alpha():
    with _browser.widget_in_lab(NOTEBOOK, WIDGET, "coverage", "lab-conformal") as page:
        _raise_alpha_then_switch_to_ball(page)
