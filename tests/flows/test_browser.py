"""The tour notebook's sharpness widget in a real browser, served by Voilà and by JupyterLab.

A person opens the notebook, runs it, moves the epsilon slider down: the coupling must
sharpen, so the renormalized entropy shown on the page must fall and the plotted coupling
must change. Both are read from the page itself (the DOM and plotly's own data).
"""

import _browser

NOTEBOOK = "notebooks/00_ot_tour.ipynb"
WIDGET = ".otkit-sharpness"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "entropy", timeout_ms=300_000,
                           lab_timeout_ms=400_000, one_thread_kernels=False)
def test_move_epsilon_down(w) -> None:
    before_entropy, before_computes = float(w.stat("entropy")), w.computes()
    before_trace = w.plot("x")["x"]["coupling"]
    w.press("relative-epsilon", "ArrowLeft", 12)
    w.wait_for(lambda: w.computes() > before_computes, 120, "a recompute")
    w.wait_ready(120)
    after_entropy = float(w.stat("entropy"))
    assert w.computes() > before_computes, "moving the slider did not recompute"
    assert after_entropy < before_entropy - 0.05, (before_entropy, after_entropy)
    after = w.plot("x")
    assert after["x"]["coupling"] != before_trace, "the plotted coupling did not change"
    assert f"{after_entropy:.4f}"[:5] in after["title"], after["title"]


# ------------------------------------------------------------------ the tour as a Voilà app

import time

import pytest


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.usefixtures("one_thread_kernels")
def test_tour_app_shows_the_widget_first_and_a_metrics_table_last() -> None:
    """A Voilà visitor gets the widget in seconds (the studies are skipped, and the page says
    so); with ?studies=1 every cell runs, and the page ends with the metrics as a table (no raw
    dict) after the online solve's progress bar, closed as a success (full, green)."""
    _browser.require_browser()
    with _browser.server("voila", NOTEBOOK, timeout=90) as (url, _), \
            _browser.browser_page("voila-tour-app") as page:
        start = time.monotonic()
        page.goto(url + "/", timeout=120_000)
        page.wait_for_selector(f"{WIDGET} .otkit-stat-entropy", timeout=120_000)
        app_seconds = time.monotonic() - start
        assert page.locator(".otkit-app-note").count() == 1
        assert page.locator(".otkit-metrics").count() == 0  # the studies did not run
        outputs = page.locator(".jp-OutputArea-output")
        assert "otkit-app-note" in outputs.last.inner_html()

        page.goto(url + "/?studies=1", timeout=300_000)
        page.wait_for_selector(".otkit-metrics", timeout=300_000)
        page.wait_for_selector(f"{WIDGET} .otkit-stat-entropy", timeout=60_000)
        assert page.locator(".otkit-app-note").count() == 0
        last = page.locator(".jp-OutputArea-output").last
        assert last.locator("table.otkit-metrics").count() == 1, last.inner_html()[:500]
        text = last.inner_text()
        assert not text.lstrip().startswith("{") and "backend_max_plan_gap" in text, text[:300]
        assert "online_converged" in text
        # the online solve's bar: closed full and green, not red
        page.wait_for_selector(".progress-bar-success", timeout=30_000)
        assert page.locator(".progress-bar-danger").count() == 0
    print(f"the tour's app showed its widget after {app_seconds:.1f} s")
