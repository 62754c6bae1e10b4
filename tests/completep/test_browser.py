"""The CompleteP explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/completep_explorer.ipynb (a small precomputed grid:
exact parabolas in log₂ η whose minima are known) at width 32, depth 2: SP's best rate has
drifted one octave down, CompleteP's not at all. They raise the depth one stop with the
keyboard (width 32 × depth 4 is outside the study's cross: the curves must empty and the title
say so), then lower the width one stop (16 × 4: SP's drift must read +0.5 octave, CompleteP's
0). Everything is read from the page (the stats' data-value attributes and plotly's
``layout.meta`` and ``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/completep_explorer.ipynb"
WIDGET = ".otkit-completep"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "drift-sp")
def test_deeper_then_narrower(w) -> None:
    before = w.plot("x", "y")
    assert (before["meta"]["width"], before["meta"]["depth"]) == (32, 2)
    assert float(w.stat("drift-sp")) == pytest.approx(-1.0)
    assert float(w.stat("drift-completep")) == pytest.approx(0.0, abs=1e-9)
    assert before["x"]["sp_best"] == pytest.approx([-6.0])
    assert len(before["y"]["sp"]) == len(before["y"]["completep"]) == 5

    w.press("depth", "ArrowRight", 1)
    w.wait_for(lambda: w.meta()["depth"] == 4, 60, "depth = 4")
    w.wait_ready()
    outside = w.plot("x", "y")
    assert outside["meta"]["available"] is False
    assert not outside["y"]["sp"] and "not in the grid" in outside["title"]

    w.press("width", "ArrowLeft", 1)
    w.wait_for(lambda: w.meta()["width"] == 16, 60, "width = 16")
    w.wait_ready()
    after = w.plot("x", "y")
    assert after["meta"]["available"] is True
    assert float(w.stat("drift-sp")) == pytest.approx(0.5)
    assert after["x"]["completep_best"] == pytest.approx([-5.0])
    assert w.count(".otkit-status-error") == 0
