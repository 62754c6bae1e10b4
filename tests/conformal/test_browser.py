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


def _epsilon_disabled(w) -> bool:
    # ipywidgets marks a disabled slider's noUiSlider element with a `disabled` attribute
    return w.count(".otkit-control-relative-epsilon .noUi-target[disabled]") == 1


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "coverage")
def test_raise_alpha_then_switch_to_ball(w) -> None:
    before = w.plot("x")
    assert before["meta"]["method"] == "otcp" and before["meta"]["alpha"] == pytest.approx(0.1)
    assert len(before["x"]["region"]) == 257  # a closed curve: 256 points and the first again
    assert not _epsilon_disabled(w)
    coverage, volume, computes = w.stat("coverage"), w.stat("volume"), w.computes()

    # α: 0.10 → 0.15 with the keyboard (the debounce may fold the presses into one compute)
    w.press("alpha", "ArrowRight", 5)
    w.wait_for(lambda: w.meta()["alpha"] == pytest.approx(0.15), 60, "the region at alpha = 0.15")
    w.wait_ready()
    after = w.plot("x")
    assert w.computes() > computes, "raising alpha did not recompute"
    assert after["x"]["region"] != before["x"]["region"], "the boundary was not redrawn"
    assert after["meta"]["cached"] is True, "raising alpha refitted the OT map"
    assert w.stat("fit") == "cached"
    assert w.stat("coverage") != coverage, "the coverage was not recomputed"
    assert float(w.stat("coverage")) == pytest.approx(after["meta"]["coverage"])
    assert after["meta"]["coverage"] < before["meta"]["coverage"]  # a smaller region
    assert after["meta"]["volume"] < before["meta"]["volume"]

    # method: OTCP → ball; ε has no meaning for the ball: its slider is disabled
    w.click(".otkit-control-method button:text-is('ball')")
    w.wait_for(lambda: w.meta()["method"] == "ball", 60, "the ball region")
    w.wait_ready()
    w.wait_for(lambda: _epsilon_disabled(w), 10, "the epsilon slider to be disabled")
    ball = w.plot("x")
    assert ball["meta"]["alpha"] == pytest.approx(0.15)
    assert w.stat("volume") != volume, "the volume stat was not updated"
    assert float(w.stat("volume")) == pytest.approx(ball["meta"]["volume"])
    assert ball["meta"]["volume"] != pytest.approx(after["meta"]["volume"])
    assert ball["meta"]["volume_stderr"] == 0  # exact, πq̂²
    assert ball["x"]["region"] != after["x"]["region"]
    assert w.count(".otkit-status-error") == 0
