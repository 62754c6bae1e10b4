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


def _plot(w) -> dict:
    """What plotly drew: the cells' z, the targets' marker sizes, the bars, and layout.meta."""
    plot = w.plot("z", "marker.size", "y")
    return {"z": plot["z"]["cells"], "sizes": plot["marker.size"]["targets"],
            "mass": plot["y"]["mass"], "meta": plot["meta"]}


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "chi2")
def test_move_the_step_slider_to_the_end(w) -> None:
    before = _plot(w)
    meta = before["meta"]
    assert (meta["step"], meta["step_index"], meta["n_targets"], meta["epsilon"]) == (0, 0, 32, 0)
    steps = meta["steps"]
    assert steps[0] == 0 and steps[-1] == 4000
    assert len(before["z"]) == 93 and len(before["z"][0]) == 120
    assert len(before["sizes"]) == len(before["mass"]) == 32
    assert w.stat("step") == "0"
    chi2, error = float(w.stat("chi2")), float(w.stat("max-mass-error"))
    assert chi2 == pytest.approx(meta["chi2"]) and chi2 > 1.0  # g = 0: the Voronoi cells
    computes = w.computes()

    # the step slider to its last snapshot with the keyboard (the debounce may fold the
    # presses into fewer computes; none of them trains)
    w.press("step", "ArrowRight", len(steps) - 1)
    last = len(steps) - 1
    w.wait_for(lambda: w.meta()["step_index"] == last, 60, "the last snapshot")
    w.wait_ready()
    after = _plot(w)
    assert w.computes() > computes, "moving the step slider did not redraw"
    assert after["meta"]["step"] == 4000 and after["meta"]["cached"] is True
    assert w.stat("step") == "4000"
    trained = float(w.stat("chi2"))
    assert trained == pytest.approx(after["meta"]["chi2"])
    assert trained < 0.05 * chi2, "the chi-square error did not drop with training"
    assert float(w.stat("max-mass-error")) < 0.25 * error
    assert after["z"] != before["z"], "the cells were not redrawn"
    assert after["sizes"] != before["sizes"], "the target markers were not resized"
    assert max(after["mass"]) < max(before["mass"])
    assert w.count(".otkit-status-error") == 0
