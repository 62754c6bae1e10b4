"""The elastic explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/elastic_explorer.ipynb (the squared-Euclidean map, λ = 0, on
a planted sparse translation: every coordinate moves), moves the λ slider with the keyboard to
its last stop (λ = 2) and switches the regularizer to STVS: the fraction of coordinates moved
must drop, the heatmap must gain exact zeros, and the marker must move along the trade-off
curve. Everything is read from the page (the stats' data-value attributes and plotly's
``layout.meta`` and ``_fullData``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/elastic_explorer.ipynb"
WIDGET = ".otkit-elastic"


def _zeros(plot: dict) -> int:
    """The exact zeros of the displacements' heatmap, below its first two rows."""
    return sum(v == 0 for row in plot["z"]["displacements"][2:] for v in row)


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "moved")
def test_raise_lambda_then_switch_to_stvs(w) -> None:
    before = w.plot("z", "x")
    assert (before["meta"]["lam"], before["meta"]["regularizer"]) == (0.0, "l1")
    assert _zeros(before) == 0 and float(w.stat("moved")) == 1.0

    w.press("lam", "ArrowRight", 5)
    w.wait_for(lambda: w.meta()["lam"] == 2.0, 60, "λ = 2")
    w.wait_ready()
    after = w.plot("z", "x")
    moved = float(w.stat("moved"))
    assert moved == pytest.approx(after["meta"]["moved"]) and moved < 0.6
    assert _zeros(after) > 0, "no coordinate stopped moving"
    assert after["x"]["now"] != before["x"]["now"]

    w.click(".otkit-control-regularizer button:has-text('STVS')")
    w.wait_for(lambda: w.meta()["regularizer"] == "stvs", 60, "STVS")
    w.wait_ready()
    stvs = w.meta()
    assert stvs["lam"] == 2.0 and stvs["moved"] != after["meta"]["moved"]
    assert w.stat("regularizer") == "stvs"
    assert w.count(".otkit-status-error") == 0
