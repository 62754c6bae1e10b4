"""The low-rank explorer in a real browser, served by Voilà and by JupyterLab.

A person opens tests/fixtures/browser/lowrank_explorer.ipynb (n = 500, rank 10, balanced) and
lowers τ from 1 to 0.9 with the keyboard on its slider: the share of mass on the outliers
must drop from about 9 % to under 1 %, and the target markers (sized by the mass they receive)
must be redrawn, the outliers' shrunk; then raises the rank to 12: the stats must be
recomputed. Everything is read from the page itself (the stats' data-value attributes,
plotly's own ``_fullData`` and ``layout.meta``).
"""

import _browser
import pytest

NOTEBOOK = "tests/fixtures/browser/lowrank_explorer.ipynb"
WIDGET = ".otkit-lowrank"
HANDLE = WIDGET + " .otkit-control-{} .noUi-handle"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.usefixtures("one_thread_kernels")]


def _stat(page, name: str) -> str:
    return _browser.stat(page, WIDGET, name)


def _computes(page) -> int:
    return _browser.computes(page, WIDGET)


def _plot(page) -> dict:
    """What plotly drew: the target markers' sizes, the source colours, and layout.meta."""
    return page.evaluate(
        """(sel) => {
            const plot = document.querySelector(sel + ' .js-plotly-plot');
            const byName = {};
            for (const t of plot._fullData) byName[t.name] = t;
            return {
                sizes: Array.from(byName.target.marker.size),
                colors: Array.from(byName.source.marker.color),
                meta: plot.layout.meta,
            };
        }""",
        WIDGET,
    )


def _lower_tau_then_raise_rank(page) -> None:
    before = _plot(page)
    meta = before["meta"]
    assert (meta["rank"], meta["tau"], meta["n"], meta["m"]) == (10, 1.0, 500, 550)
    assert len(before["sizes"]) == 550
    mass = float(_stat(page, "outlier-mass"))
    assert mass == pytest.approx(0.1 / 1.1, rel=1e-3)  # balanced: the outliers' full share
    error, computes = float(_stat(page, "error")), _computes(page)

    # τ: 1.00 → 0.90 with the keyboard (the debounce may fold the presses into one compute)
    page.focus(HANDLE.format("tau"))
    for _ in range(10):
        page.keyboard.press("ArrowLeft")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["tau"] == pytest.approx(0.9), 60,
              "the solve at tau = 0.9")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    relaxed = _plot(page)
    assert _computes(page) > computes, "lowering tau did not recompute"
    assert float(_stat(page, "outlier-mass")) < 0.01 < mass / 5, "the outliers kept their mass"
    assert float(_stat(page, "outlier-mass")) == pytest.approx(relaxed["meta"]["outlier_mass"])
    assert float(_stat(page, "error")) < error
    assert relaxed["sizes"] != before["sizes"], "the target markers were not resized"
    outliers = relaxed["sizes"][500:]  # y = the 500 inliers, then the 50 outliers
    assert max(outliers) < 0.25 * min(before["sizes"]), "the outliers' markers did not shrink"

    # rank: 10 → 12; the stats are recomputed for the new rank
    cost, computes = _stat(page, "cost"), _computes(page)
    page.focus(HANDLE.format("rank"))
    for _ in range(2):
        page.keyboard.press("ArrowRight")
    _browser.wait_for(page, lambda: _plot(page)["meta"]["rank"] == 12, 60, "the solve at rank 12")
    page.wait_for_selector(f"{WIDGET} .otkit-status-ready", timeout=60_000)
    ranked = _plot(page)
    assert _computes(page) > computes, "raising the rank did not recompute"
    assert ranked["meta"]["tau"] == pytest.approx(0.9) and not ranked["meta"]["cached"]
    assert _stat(page, "cost") != cost, "the cost stat was not recomputed"
    assert float(_stat(page, "cost")) == pytest.approx(ranked["meta"]["cost"])
    assert float(_stat(page, "outlier-mass")) < 0.01
    assert max(ranked["colors"]) <= 11 and len(set(ranked["colors"])) > 1
    assert page.locator(f"{WIDGET} .otkit-status-error").count() == 0


def test_voila_lowrank_explorer():
    with _browser.widget_in_voila(NOTEBOOK, WIDGET, "outlier-mass", "voila-lowrank") as page:
        _lower_tau_then_raise_rank(page)


def test_jupyterlab_run_all_then_move_tau():
    with _browser.widget_in_lab(NOTEBOOK, WIDGET, "outlier-mass", "lab-lowrank") as page:
        _lower_tau_then_raise_rank(page)
