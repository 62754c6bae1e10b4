"""The steering explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/steering_explorer.ipynb (a GPT-2 trained in the kernel on
the generated corpus, Linear-AcT inducing the topic "weather", λ = 0), moves the strength
slider with the keyboard to λ = 1 and switches the method to the mean shift: the concept rate
on the page must rise with λ, the continuations must change, and the curves must be redrawn
for the new method. Everything is read from the page itself (the stats' data-value
attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/steering_explorer.ipynb"
WIDGET = ".otkit-steering"


def _plot(w) -> dict:
    plot = w.plot("x", "y")
    return {"rates": plot["y"]["rate"], "now": plot["x"]["rate-now"], "meta": plot["meta"]}


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "concept-rate")
def test_steer_to_full_strength_then_switch_method(w) -> None:
    before = _plot(w)
    meta = before["meta"]
    assert (meta["method"], meta["strength"], meta["modality"]) == ("linear_act", 0.0, "text")
    assert len(before["rates"]) == 11 and before["now"] == [0.0]
    assert w.stat("strength") == "0.0"
    rate0 = float(w.stat("concept-rate"))
    samples0 = w.stat("samples")
    assert w.count(".otkit-steering-samples li") == 8

    w.press("strength", "ArrowRight", 10)
    w.wait_for(lambda: w.meta()["strength"] == 1.0, 60, "λ = 1")
    w.wait_ready()
    after = _plot(w)
    assert after["now"] == [1.0] and after["meta"]["cached"] is True  # no refit for λ
    rate1 = float(w.stat("concept-rate"))
    assert rate1 == pytest.approx(after["meta"]["rates"][-1])
    assert rate1 > rate0 + 0.1, "the concept rate did not rise with the strength"
    assert w.stat("samples") != samples0, "the samples did not change"

    w.click(".otkit-control-method button:has-text('mean shift')")
    w.wait_for(lambda: w.meta()["method"] == "mean_shift", 90, "the mean shift's curves")
    w.wait_ready()
    shifted = _plot(w)
    assert shifted["meta"]["strength"] == 1.0 and shifted["rates"] != after["rates"]
    assert w.stat("method") == "mean_shift"
    assert w.count(".otkit-status-error") == 0
