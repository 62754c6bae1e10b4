"""The data-quality explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/dataquality_explorer.ipynb (the explorer's small default
grid at a 2.5% keep fraction): CQF's selection is almost all science and its model wins the
science cloze far above random's. They move the keep-fraction slider two stops right (10%):
the bars must be redrawn with less science in CQF's selection, the meta and the stats must
follow, and the trade-off lines (all fractions) must stay as they were. Everything is read from
the page (the stats' data-value attributes and plotly's ``layout.meta`` and ``_fullData``).
"""

import _browser

NOTEBOOK = "tests/fixtures/browser/dataquality_explorer.ipynb"
WIDGET = ".otkit-dataquality"


@_browser.in_voila_and_lab(NOTEBOOK, WIDGET, "cqf_cloze")
def test_widen_the_keep_fraction(w) -> None:
    before = w.plot("y")
    assert before["meta"]["fraction"] == 0.025
    assert before["meta"]["cqf_benchmark_share"] > 0.8, "CQF should keep mostly science"
    assert float(w.stat("cqf_cloze")) > float(w.stat("random_cloze")) + 0.3

    w.press("fraction", "ArrowRight", 2)
    w.wait_for(lambda: w.meta()["fraction"] == 0.1, 60, "keep 10%")
    w.wait_ready(60)
    after = w.plot("y")
    assert float(w.stat("fraction")) == 0.1
    assert after["meta"]["cqf_benchmark_share"] < before["meta"]["cqf_benchmark_share"]
    assert after["y"]["share-science"] != before["y"]["share-science"], "bars not redrawn"
    assert after["y"]["tradeoff-cqf"] == before["y"]["tradeoff-cqf"]
    assert w.count(".otkit-status-error") == 0
