"""The ReFlow explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/reflow_explorer.ipynb (baseline ReFlow at NFE 1: the
student's W2 far below its teacher's), moves the NFE slider with the keyboard to its last stop
(NFE 16): the teacher's W2 must fall and the paths must be redrawn. Everything is read from the page (the stats' data-value
attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser

NOTEBOOK = "tests/fixtures/browser/reflow_explorer.ipynb"
WIDGET = ".otkit-reflow"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "ratio")
def test_raise_the_nfe(w) -> None:
    before = w.plot("x", "y")
    assert (before["meta"]["nfe"], before["meta"]["label"]) == (1, "baseline")
    assert float(w.stat("ratio")) < 0.7, "ReFlow should beat its teacher at one step"

    w.press("nfe", "ArrowRight", 3)
    w.wait_for(lambda: w.meta()["nfe"] == 16, 90, "NFE 16")
    w.wait_ready(90)
    after = w.plot("x", "y")
    assert float(w.stat("nfe")) == 16
    assert after["meta"]["w2_teacher"] < before["meta"]["w2_teacher"]
    assert after["x"]["paths"] != before["x"]["paths"], "the paths were not redrawn"
    assert w.count(".otkit-status-error") == 0
