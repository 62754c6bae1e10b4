"""The amortized-MIPS explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/amips_explorer.ipynb (a SupportNet trained with hard
targets on 16 keys in 2-D: its decoded cells match the true ones on most of the grid), moves the
ε slider with the keyboard to its last stop (ε = 0.5): the match rate must fall by more than 0.3
and the predicted cells must be redrawn while the true cells stay; then raises the budget one
stop: the parameter count must grow. Everything is read from the page (the stats' data-value
attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser

NOTEBOOK = "tests/fixtures/browser/amips_explorer.ipynb"
WIDGET = ".otkit-amips"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "match")
def test_soften_the_targets_then_raise_the_budget(w) -> None:
    before = w.plot("z")
    assert (before["meta"]["budget"], before["meta"]["epsilon"]) == (320, 0.0)
    assert float(w.stat("match")) > 0.85

    w.press("epsilon", "ArrowRight", 4)
    w.wait_for(lambda: w.meta()["epsilon"] == 0.5, 90, "ε = 0.5")
    w.wait_ready(90)
    after = w.plot("z")
    assert float(w.stat("epsilon")) == 0.5
    assert after["meta"]["match_rate"] < before["meta"]["match_rate"] - 0.3
    assert after["z"]["predicted"] != before["z"]["predicted"], "the predicted cells were not redrawn"
    assert after["z"]["true"] == before["z"]["true"]

    w.press("budget", "ArrowRight", 1)
    w.wait_for(lambda: w.meta()["budget"] == 640, 90, "budget 640")
    w.wait_ready(90)
    assert w.meta()["params"] > after["meta"]["params"]
    assert w.count(".otkit-status-error") == 0
