"""The truth-probe explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/truth_explorer.ipynb (the notebook-13 model, trained in
the kernel, probed at its last layer with C = 1): in-task AUROC well above chance, cross-task
near it. They move C to its smallest stop (strong L2): the heat-maps must be redrawn for the
new C; then the layer one stop down: the meta and stats must follow; then the sparsity to its
weakest stop: the L1 supports grow and their overlap stays a Jaccard index. Everything is read from
the page (the stats' data-value attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser

NOTEBOOK = "tests/fixtures/browser/truth_explorer.ipynb"
WIDGET = ".otkit-truth"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "cross_task", timeout_ms=300_000)
def test_regularize_then_change_layer(w) -> None:
    before = w.plot("z")
    assert (before["meta"]["layer"], before["meta"]["C"]) == (2, 1.0)
    assert float(w.stat("in_task")) > 0.6, "probes should work within a task"
    assert 0.35 < float(w.stat("cross_task")) < 0.65, "cross-task transfer should be near chance"

    w.press("C", "ArrowLeft", 3)
    w.wait_for(lambda: w.meta()["C"] == 0.001, 90, "C = 0.001")
    w.wait_ready(90)
    after = w.plot("z")
    assert float(w.stat("C")) == 0.001
    assert after["z"]["auroc"] != before["z"]["auroc"], "the AUROC heat-map was not redrawn"

    w.press("layer", "ArrowLeft", 1)
    w.wait_for(lambda: w.meta()["layer"] == 1, 90, "layer 1")
    w.wait_ready(90)
    assert int(w.stat("layer")) == 1

    sparse = float(w.stat("support_size"))
    w.press("l1-C", "ArrowRight", 3)
    w.wait_for(lambda: w.meta()["l1_C"] == 0.3, 90, "l1_C = 0.3")
    w.wait_ready(90)
    assert float(w.stat("support_size")) >= sparse, "a weaker L1 penalty should keep at least as many neurons"
    assert 0 <= float(w.stat("jaccard")) <= 1
    assert w.count(".otkit-status-error") == 0
