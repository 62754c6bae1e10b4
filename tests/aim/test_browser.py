"""The AIM explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/aim_explorer.ipynb (the width-32 trunk's last
checkpoint), moves the width slider with the keyboard to 16: the marker must move to the
narrower trunk's last checkpoint (a higher held-out loss) and the predicted digits must be
redrawn; then moves the checkpoint slider to its first stop: the loss must rise again. Everything
is read from the page (the stats' data-value attributes and plotly's ``layout.meta`` and
``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/aim_explorer.ipynb"
WIDGET = ".otkit-aim"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "loss")
def test_narrower_trunk_then_earlier_checkpoint(w) -> None:
    before = w.plot("x", "y", "z")
    assert (before["meta"]["width"], before["meta"]["step"]) == (32, 80)
    assert len(before["x"]["w16"]) == len(before["x"]["w32"]) == 4
    assert before["x"]["now"] == [before["meta"]["loss"]]

    w.press("width", "ArrowLeft", 1)
    w.wait_for(lambda: w.meta()["width"] == 16, 60, "width 16")
    w.wait_ready(60)
    after = w.plot("x", "y", "z")
    assert float(w.stat("width")) == 16
    assert after["meta"]["loss"] > before["meta"]["loss"]
    assert after["z"]["digits"] != before["z"]["digits"], "the predictions were not redrawn"
    assert after["x"]["w32"] == before["x"]["w32"]

    w.press("step", "ArrowLeft", 3)
    w.wait_for(lambda: w.meta()["step"] == 20, 60, "step 20")
    w.wait_ready()
    assert w.meta()["loss"] > after["meta"]["loss"]
    assert float(w.stat("loss")) == pytest.approx(w.meta()["loss"])
    assert w.count(".otkit-status-error") == 0
