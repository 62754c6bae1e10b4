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


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "map-error", timeout_ms=300_000,
                           lab_timeout_ms=400_000)
def test_raise_steps_then_move_step(w) -> None:
    before = w.plot("x")
    assert len(before["x"]["alpha"]) == 4 and before["meta"]["num_steps"] == 4
    iterations, computes = w.stat("iterations"), w.computes()

    # K: 4 → 6 with the keyboard (the debounce may fold both presses into one compute)
    w.press("num-steps", "ArrowRight", 2)
    w.wait_for(lambda: w.stat("steps") == "6", 300, "the stats for K = 6")
    w.wait_ready(300)
    w.wait_for(lambda: len(w.plot("x")["x"]["alpha"]) == 6, 30, "6 alpha bars")
    after = w.plot("x")
    assert w.computes() > computes, "raising K did not recompute"
    assert after["x"]["alpha"] == [1, 2, 3, 4, 5, 6], after["x"]["alpha"]
    assert len(after["x"]["epsilon"]) == 6 and len(after["x"]["progress"]) == 7
    assert after["meta"]["num_steps"] == 6 and after["meta"]["step"] == 6
    assert w.stat("iterations") != iterations, "the iteration count was not recomputed"
    assert int(w.stat("iterations")) == after["meta"]["total_iterations"]
    assert float(w.stat("map-error")) == pytest.approx(after["meta"]["map_error"])

    # the step slider followed K to its end; one step back shows x⁽⁵⁾: a redraw, no compute
    computes = w.computes()
    w.press("step", "ArrowLeft")
    w.wait_for(lambda: w.meta()["step"] == 5, 30, "the step-5 cloud")
    moved = w.plot("x")
    assert moved["x"]["cloud"] != after["x"]["cloud"], "the plotted cloud did not change"
    assert moved["x"]["alpha"] == after["x"]["alpha"]
    w.page.wait_for_timeout(500)  # a recompute, if any, would have been scheduled by now
    assert w.computes() == computes, "moving the step slider recomputed"
    assert w.count(".otkit-status-busy") == 0
