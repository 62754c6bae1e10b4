"""The tour notebook's sharpness widget in a real browser, served by Voilà and by JupyterLab.

A person opens the notebook, runs it, moves the epsilon slider down: the coupling must
sharpen, so the renormalized entropy shown on the page must fall and the plotted coupling
must change. Both are read from the page itself (the DOM and plotly's own data).
"""

import _browser

NOTEBOOK = "notebooks/00_ot_tour.ipynb"
WIDGET = ".otkit-sharpness"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "entropy", timeout_ms=300_000,
                           lab_timeout_ms=400_000, one_thread_kernels=False)
def test_move_epsilon_down(w) -> None:
    before_entropy, before_computes = float(w.stat("entropy")), w.computes()
    before_trace = w.plot("x")["x"]["coupling"]
    w.press("relative-epsilon", "ArrowLeft", 12)
    w.wait_for(lambda: w.computes() > before_computes, 120, "a recompute")
    w.wait_ready(120)
    after_entropy = float(w.stat("entropy"))
    assert w.computes() > before_computes, "moving the slider did not recompute"
    assert after_entropy < before_entropy - 0.05, (before_entropy, after_entropy)
    after = w.plot("x")
    assert after["x"]["coupling"] != before_trace, "the plotted coupling did not change"
    assert f"{after_entropy:.4f}"[:5] in after["title"], after["title"]
