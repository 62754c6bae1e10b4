"""widgets.lowrank: the low-rank computation and its widget, without a browser.

The state must agree with otkit.lowrank called directly on the same toy; balanced OT must send
the outliers exactly their share outlier_fraction / (1 + outlier_fraction) of the mass, and
a KL penalty ρ = 9 almost none, with a smaller barycentric error; the widget is driven with ``set`` and
read back from its figure (the real-browser test is test_browser.py).
"""

from __future__ import annotations

import math
import warnings

import ipywidgets as ipw
import pytest
import torch

import otkit
from otkit.data import clouds_with_outliers
from widgets import InteractiveFigure, LowRankExplorer, LowRankState, compute_lowrank
from widgets.lowrank import N_OPTIONS, RHO_OPTIONS, TRACE_NAMES

N = 300  # small: one solve in about a second on one thread


pytestmark = pytest.mark.usefixtures("eager_one_thread")


@pytest.fixture(scope="module")
def states():
    """The balanced and the relaxed solve, rank 10, on one toy (computed once per module)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {rho: compute_lowrank(rank=10, rho=rho, n=N, seed=1) for rho in (math.inf, 9.0)}
    finally:
        torch.set_num_threads(threads)


# ----- compute_lowrank -----------------------------------------------------------------------


def test_state_matches_a_direct_lowrank_call():
    state = compute_lowrank(rank=5, rho=4.0, n=N, outlier_fraction=0.2, seed=3)
    assert isinstance(state, LowRankState)
    assert (state.rank, state.rho, state.n, state.outlier_fraction, state.seed) == (
        5, 4.0, N, 0.2, 3)

    data = clouds_with_outliers(N, outlier_fraction=0.2, seed=3, dtype=torch.float64)
    direct = otkit.lowrank(data.x, data.y, rank=5, rho_a=4.0, rho_b=4.0, generator=3)
    assert torch.equal(state.x, data.x) and torch.equal(state.y, data.y)
    assert torch.equal(state.truth, data.truth) and torch.equal(state.y_outlier, data.y_unmatched)
    assert state.m == N + 60 and state.x.dtype == torch.float64
    for mine, theirs in ((state.result.q, direct.q), (state.result.r, direct.r),
                         (state.result.g, direct.g)):
        torch.testing.assert_close(mine, theirs)
    assert state.result.rho_a == state.result.rho_b == 4.0
    sent, received = direct.marginals()
    torch.testing.assert_close(state.sent, sent)
    torch.testing.assert_close(state.received, received)
    torch.testing.assert_close(state.projection, direct.transport())
    assert state.cost == pytest.approx(direct.ot_cost().item())
    assert (state.converged, state.n_iter) == (direct.converged, direct.n_iter)
    assert state.outlier_mass == pytest.approx(
        (received[data.y_unmatched].sum() / received.sum()).item())
    assert state.error == pytest.approx(
        (direct.transport() - data.truth).norm(dim=1).mean().item())
    assert state.time_s > 0

    # the factor structure drawn by the widget
    assert torch.equal(state.dominant, direct.q.argmax(1))
    assert state.source_anchors.shape == state.target_anchors.shape == (5, 2)
    k = 2
    torch.testing.assert_close(state.source_anchors[k],
                               (direct.q[:, k, None] * data.x).sum(0) / direct.q[:, k].sum())
    torch.testing.assert_close(state.target_anchors[k],
                               (direct.r[:, k, None] * data.y).sum(0) / direct.r[:, k].sum())


def test_balanced_sends_the_outliers_their_share_and_rho_frees_them(states):
    balanced, relaxed = states[math.inf], states[9.0]
    assert balanced.converged and relaxed.converged
    # balanced: every target point receives 1/m, the outliers k/m = f/(1 + f) of the mass
    assert balanced.outlier_mass == pytest.approx(0.1 / 1.1, rel=1e-3)
    assert relaxed.outlier_mass < 0.01 < balanced.outlier_mass / 5
    # freed from the outliers, the projections land nearer the true images
    assert relaxed.error < 0.7 * balanced.error
    assert relaxed.cost < balanced.cost
    # the outliers are (almost) empty, the inliers are not
    outliers, inliers = relaxed.received[relaxed.y_outlier], relaxed.received[~relaxed.y_outlier]
    assert outliers.max() < 0.05 / relaxed.m < inliers.mean()


def test_marginals_sum_correctly(states):
    balanced, relaxed = states[math.inf], states[9.0]
    # balanced: the hard constraints hold point by point
    torch.testing.assert_close(balanced.sent, torch.full((N,), 1 / N, dtype=torch.float64),
                               rtol=1e-4, atol=1e-8)
    m = balanced.m
    torch.testing.assert_close(balanced.received, torch.full((m,), 1 / m, dtype=torch.float64),
                               rtol=1e-4, atol=1e-8)
    assert balanced.transported_mass == pytest.approx(1.0, abs=1e-6)
    # both sides of a coupling carry the same mass, the factors' g included
    for state in (balanced, relaxed):
        assert state.sent.sum().item() == pytest.approx(state.transported_mass, rel=1e-6)
        assert state.factor_mass.sum().item() == pytest.approx(state.transported_mass, rel=1e-4)
        assert (state.sent >= 0).all() and (state.received >= 0).all()
    # relaxed: some mass is destroyed instead of moved to the outliers
    assert 0.5 < relaxed.transported_mass < 1 - 0.5 * 0.1 / 1.1


def test_outlier_fraction_sets_the_balanced_share():
    state = compute_lowrank(rank=4, n=250, outlier_fraction=0.3, seed=0)
    assert state.y_outlier.sum() == 75
    assert state.outlier_mass == pytest.approx(75 / 325, rel=1e-3)
    none = compute_lowrank(rank=4, rho=math.inf, n=250, outlier_fraction=0.0, seed=0)
    assert none.m == 250 and none.outlier_mass == 0.0


def test_nonconvergence_is_recorded_not_raised():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes
        state = compute_lowrank(rank=3, rho=9.0, n=250, max_iter=5)
    assert not state.converged and state.n_iter == 5
    assert any("max_iter" in w for w in state.warnings)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rank": 0}, ValueError, "rank"),
        ({"rank": -2}, ValueError, "rank"),
        ({"rank": 251, "n": 250}, ValueError, "rank must be at most n = 250"),
        ({"rank": 2.5}, TypeError, "rank"),
        ({"rho": 0.0}, ValueError, "rho must be a number > 0"),
        ({"rho": -0.5}, ValueError, "rho must be a number > 0"),
        ({"rho": math.nan}, ValueError, "rho"),
        ({"rho": "1"}, TypeError, "rho"),
        ({"n": 1}, ValueError, "n must be"),
        ({"outlier_fraction": 1.0}, ValueError, "outlier_fraction"),
        ({"outlier_fraction": -0.1}, ValueError, "outlier_fraction"),
        ({"seed": -1}, ValueError, "seed"),
        ({"max_iter": 0}, ValueError, "max_iter"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, error, match):
    with pytest.raises(error, match=match):
        compute_lowrank(**{"n": 250, **kwargs})


# ----- the widget ----------------------------------------------------------------------------


def _meta(widget) -> dict:
    return dict(widget.figure.layout.meta)


def _stat(widget, name: str) -> str:
    """The data-value of the stat span ``.otkit-stat-<name>``."""
    html = widget.stats.value
    start = html.index(f"otkit-stat-{name}\"")
    start = html.index('data-value="', start) + len('data-value="')
    return html[start:html.index('"', start)]


def test_widget_draws_and_redraws_on_set():
    widget = LowRankExplorer(n=250, rank=6, debounce_ms=0)
    assert isinstance(widget, InteractiveFigure)
    assert widget.error is None and widget.n_computes == 1
    assert "otkit-lowrank" in widget.ui._dom_classes
    assert [t.name for t in widget.figure.data] == sorted(TRACE_NAMES, key=TRACE_NAMES.index)
    assert list(widget.controls) == ["rank", "rho", "alpha", "n", "outlier_fraction", "seed"]
    assert list(widget.controls["n"].options) == list(N_OPTIONS)
    # ρ = τ/(1 − τ) over the former τ slider's grid 0.50, 0.51, ..., 0.99, then ∞ = τ 1
    rho = widget.controls["rho"]
    assert isinstance(rho, ipw.SelectionSlider) and rho.description == "ρ (KL penalty)"
    assert "otkit-control-rho" in rho._dom_classes
    assert tuple(v for _, v in rho.options) == RHO_OPTIONS and len(RHO_OPTIONS) == 51
    for k, value in zip(range(50, 100), RHO_OPTIONS, strict=False):
        assert value == pytest.approx((k / 100) / (1 - k / 100), rel=1e-12)
    assert (RHO_OPTIONS[0], RHO_OPTIONS[40], RHO_OPTIONS[-2]) == (1.0, 9.0, 99.0)
    assert rho.value == math.inf and rho.label == "∞ (balanced)"

    meta = _meta(widget)
    assert (meta["rank"], meta["rho"], meta["n"], meta["m"]) == (6, None, 250, 275)
    assert meta["outlier_mass"] == pytest.approx(25 / 275, rel=1e-3)
    assert float(_stat(widget, "outlier-mass")) == pytest.approx(meta["outlier_mass"])
    assert float(_stat(widget, "error")) == pytest.approx(meta["error"])
    assert float(_stat(widget, "cost")) == pytest.approx(meta["cost"])
    assert float(_stat(widget, "time")) > 0
    target = widget.trace("target")
    sizes = list(target.marker.size)
    assert len(sizes) == len(target.x) == 275
    assert min(sizes) == pytest.approx(9.0, rel=1e-3)  # balanced: every y gets its share
    assert len(widget.trace("source").x) == len(widget.trace("projection").x) == 250
    assert max(widget.trace("source").marker.color) < 6
    assert len(widget.trace("anchors").x) == 3 * 6  # one segment per factor, None between

    # ρ: ∞ → 9, as a user would: the outliers empty, the stats change
    widget.set(rho=9.0)
    assert widget.error is None and widget.n_computes == 2
    relaxed = _meta(widget)
    assert relaxed["rho"] == 9.0 and not relaxed["cached"]
    assert widget.state.result.rho_a == 9.0 and "ρ = 9" in widget.figure.layout.title.text
    assert relaxed["outlier_mass"] < 0.01 and relaxed["error"] < meta["error"]
    assert float(_stat(widget, "outlier-mass")) == pytest.approx(relaxed["outlier_mass"])
    new_sizes = list(widget.trace("target").marker.size)
    assert new_sizes != sizes
    outlier = widget.state.y_outlier.numpy()
    assert max(s for s, o in zip(new_sizes, outlier, strict=True) if o) < 0.25 * 9.0

    # rank: 6 → 3: the factor colours and the anchors follow
    widget.set(rank=3)
    assert _meta(widget)["rank"] == 3 and widget.n_computes == 3
    assert max(widget.trace("source").marker.color) < 3
    assert len(widget.trace("anchors").x) == 3 * 3
    assert _stat(widget, "cost") != repr(relaxed["cost"])

    # back to an earlier setting: from the cache, no solve
    widget.set(rank=6)
    assert _meta(widget)["cached"] is True
    assert _meta(widget)["outlier_mass"] == relaxed["outlier_mass"]
    assert widget.cache.hits == 1 and widget.cache.misses == 3

    # the figure's synced model follows the drawn figure (for views made later)
    assert widget.figure._widget_layout["meta"]["rank"] == 6


def test_widget_shows_errors_and_keeps_the_last_figure():
    widget = LowRankExplorer(n=250, rank=4, rho=9.0, debounce_ms=0, max_iter=50)
    meta = _meta(widget)
    assert widget.error is None
    widget.compute_options["max_iter"] = 0  # a compute that fails
    widget.set(seed=1)
    assert isinstance(widget.error, ValueError) and "max_iter" in str(widget.error)
    assert "otkit-status-error" in widget.status.value
    assert _meta(widget) == meta  # the last good figure stays
    with pytest.raises(ValueError, match="unknown parameter"):
        widget.set(epsilon=0.1)


def test_alpha_solves_fused_gw_like_a_direct_call():
    """α > 0: the state is otkit.lowrank.gromov.lowrank_gw's on the same toy (features = the
    coordinates); α = 0 stays linear low-rank OT; the widget's α control redraws."""
    from otkit.lowrank.gromov import LowRankGWResult, lowrank_gw

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = compute_lowrank(rank=5, n=120, seed=2, alpha=0.5, max_iter=100)
        data = clouds_with_outliers(120, outlier_fraction=0.1, seed=2, dtype=torch.float64)
        direct = lowrank_gw(data.x, data.y, rank=5, features=(data.x, data.y), alpha=0.5,
                            max_iter=100, generator=2)
    assert isinstance(state.result, LowRankGWResult) and state.alpha == 0.5
    torch.testing.assert_close(state.result.q, direct.q)
    assert state.cost == pytest.approx(direct.ot_cost().item())
    assert state.outlier_mass == pytest.approx(12 / 132, rel=1e-3)  # balanced: their share
    with pytest.raises(ValueError, match="alpha"):
        compute_lowrank(n=50, alpha=1.5)
    widget = LowRankExplorer(n=250, rank=4, debounce_ms=0, max_iter=60)
    widget.set(alpha=0.5)
    assert widget.error is None and _meta(widget)["alpha"] == 0.5
    assert "FGW α = 0.5" in widget.figure.layout.title.text
