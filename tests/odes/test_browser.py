"""The ODE explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/odes_explorer.ipynb (ẏ = y − y³ from y0 = 0.5, no noise,
a tiny model pre-trained in the kernel): enumeration finds the exact equation and SINDy's fit is
near perfect. They raise the noise slider three stops to σ = 0.05: the samples must move off
the unchanged truth, SINDy's R² must collapse below 0.9 while enumeration's stays above it.
Everything is read from the page (the stats' data-value attributes and plotly's
``layout.meta`` and ``_fullData``).
"""

import _browser

NOTEBOOK = "tests/fixtures/browser/odes_explorer.ipynb"
WIDGET = ".otkit-odes"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "enumeration")
def test_noise_breaks_sindy_not_the_integral_fit(w) -> None:
    before = w.plot("y")
    meta = before["meta"]
    assert (meta["equation"], meta["y0"], meta["noise"]) == ("bistable: y - y^3", 0.5, 0.0)
    assert meta["enumeration"] == "-y**3 + y" and meta["enumeration_correct"]
    assert float(w.stat("sindy")) > 0.99
    assert len(before["y"]["samples"]) == 32

    w.press("noise", "ArrowRight", 3)
    w.wait_for(lambda: w.meta()["noise"] == 0.05, 90, "noise 0.05")
    w.wait_ready(90)
    after = w.plot("y")
    assert float(w.stat("noise")) == 0.05
    assert after["y"]["truth"] == before["y"]["truth"]
    assert after["y"]["samples"] != before["y"]["samples"], "the samples were not redrawn"
    assert float(w.stat("sindy")) < 0.9, "SINDy should break at 5 % noise"
    assert float(w.stat("enumeration")) > 0.9
    assert w.count(".otkit-status-error") == 0
