"""The low-rank explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/lowrank_explorer.ipynb (n = 500, rank 10, balanced) and
lowers the KL penalty ρ from ∞ to 9 (ten steps left on its slider) with the keyboard: the share of mass on the outliers
must drop from about 9 % to under 1 %, and the target markers (sized by the mass they receive)
must be redrawn, the outliers' shrunk; then raises the rank to 12: the stats must be
recomputed. Everything is read from the page itself (the stats' data-value attributes,
plotly's own ``_fullData`` and ``layout.meta``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/lowrank_explorer.ipynb"
WIDGET = ".otkit-lowrank"


def _plot(w) -> dict:
    """What plotly drew: the target markers' sizes, the source colours, and layout.meta."""
    plot = w.plot("marker.size", "marker.color")
    return {"sizes": plot["marker.size"]["target"], "colors": plot["marker.color"]["source"],
            "meta": plot["meta"]}


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "outlier-mass")
def test_lower_rho_then_raise_rank(w) -> None:
    before = _plot(w)
    meta = before["meta"]
    assert (meta["rank"], meta["rho"], meta["n"], meta["m"]) == (10, None, 500, 550)
    assert len(before["sizes"]) == 550
    mass = float(w.stat("outlier-mass"))
    assert mass == pytest.approx(0.1 / 1.1, rel=1e-3)  # balanced: the outliers' full share
    error, computes = float(w.stat("error")), w.computes()

    # ρ: ∞ → 9 with the keyboard (the debounce may fold the presses into one compute)
    w.press("rho", "ArrowLeft", 10)
    w.wait_for(lambda: w.meta()["rho"] == pytest.approx(9.0), 60, "the solve at rho = 9")
    w.wait_ready()
    relaxed = _plot(w)
    assert w.computes() > computes, "lowering rho did not recompute"
    assert float(w.stat("outlier-mass")) < 0.01 < mass / 5, "the outliers kept their mass"
    assert float(w.stat("outlier-mass")) == pytest.approx(relaxed["meta"]["outlier_mass"])
    assert float(w.stat("error")) < error
    assert relaxed["sizes"] != before["sizes"], "the target markers were not resized"
    outliers = relaxed["sizes"][500:]  # y = the 500 inliers, then the 50 outliers
    assert max(outliers) < 0.25 * min(before["sizes"]), "the outliers' markers did not shrink"

    # rank: 10 → 12; the stats are recomputed for the new rank
    cost, computes = w.stat("cost"), w.computes()
    w.press("rank", "ArrowRight", 2)
    w.wait_for(lambda: w.meta()["rank"] == 12, 60, "the solve at rank 12")
    w.wait_ready()
    ranked = _plot(w)
    assert w.computes() > computes, "raising the rank did not recompute"
    assert ranked["meta"]["rho"] == pytest.approx(9.0) and not ranked["meta"]["cached"]
    assert w.stat("cost") != cost, "the cost stat was not recomputed"
    assert float(w.stat("cost")) == pytest.approx(ranked["meta"]["cost"])
    assert float(w.stat("outlier-mass")) < 0.01
    assert max(ranked["colors"]) <= 11 and len(set(ranked["colors"])) > 1
    assert w.count(".otkit-status-error") == 0
