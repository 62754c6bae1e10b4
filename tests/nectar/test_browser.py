"""The Nectar explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/nectar_explorer.ipynb (Nectar on the tiny lookup model,
width 4 in both layers: no accuracy gap to the full cache), moves the second layer's width
slider with the keyboard down to 1: the marker must jump up (an accuracy gap above 10%) while the
uniform-width curve stays; everything is read from the page (the stats' data-value attributes
and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser

NOTEBOOK = "tests/fixtures/browser/nectar_explorer.ipynb"
WIDGET = ".otkit-nectar"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "gap")
def test_starve_the_second_layer(w) -> None:
    before = w.plot("x", "y")
    assert before["meta"]["widths"] == [4, 4]
    assert float(w.stat("gap")) < 0.05
    assert len(before["x"]["uniform"]) == 5
    assert before["y"]["now"] == [before["meta"]["accuracy_gap"]]

    w.press("width-1", "ArrowLeft", 2)
    w.wait_for(lambda: w.meta()["widths"] == [4, 1], 90, "widths 4 / 1")
    w.wait_ready(90)
    after = w.plot("x", "y")
    assert float(w.stat("gap")) > 0.1, "a width-1 second layer should lose answers"
    assert after["y"]["now"] == [after["meta"]["accuracy_gap"]]
    assert after["y"]["uniform"] == before["y"]["uniform"]
    assert w.stat("widths") == "4,1"
    assert w.count(".otkit-status-error") == 0
