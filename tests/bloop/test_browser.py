"""The Bloop explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/bloop_explorer.ipynb (Bloop at λ = 1 with the paper's
EMA, ρ = 0.01, on the quadratic toy: its main loss far below mixed training's at the same
auxiliary loss), moves the ρ slider with the keyboard to its last stop (ρ = 1, no EMA): the
marker must jump onto mixed training's front (main loss up by more than 10×, the ratio to
mixed's near 1) and Bloop's whole front must be redrawn; then raises λ one stop: the marker
must move to a smaller auxiliary loss. Everything is read from the page (the stats'
data-value attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/bloop_explorer.ipynb"
WIDGET = ".otkit-bloop"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "ratio")
def test_drop_the_ema_then_raise_lambda(w) -> None:
    before = w.plot("x", "y")
    assert (before["meta"]["lam"], before["meta"]["rho"]) == (1.0, 0.01)
    assert float(w.stat("ratio")) > 10, "Bloop with its EMA should beat mixed training"
    assert len(before["x"]["mixed"]) == len(before["x"]["bloop"]) == 7
    assert before["y"]["now"] == [before["meta"]["main"]]

    w.press("rho", "ArrowRight", 2)
    w.wait_for(lambda: w.meta()["rho"] == 1.0, 90, "ρ = 1")
    w.wait_ready(90)
    after = w.plot("x", "y")
    assert float(w.stat("rho")) == 1.0
    assert after["meta"]["main"] > 10 * before["meta"]["main"]
    assert 0.8 < float(w.stat("ratio")) < 1.25, "without EMA Bloop should sit on mixed's front"
    assert after["y"]["bloop"] != before["y"]["bloop"], "Bloop's front was not redrawn"
    assert after["y"]["mixed"] == before["y"]["mixed"]

    w.press("lam", "ArrowRight", 1)
    w.wait_for(lambda: w.meta()["lam"] == 10.0, 60, "λ = 10")
    w.wait_ready()
    assert w.meta()["aux"] < after["meta"]["aux"]
    assert float(w.stat("aux")) == pytest.approx(w.meta()["aux"])
    assert w.count(".otkit-status-error") == 0
