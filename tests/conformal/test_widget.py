"""widgets.conformal: the conformal computation and its widget, without a browser.

The state must agree with otkit.conformal called directly on the same toy splits; coverage
must sit near 1 − α, volumes must match their closed forms, boundaries must trace the level
set {S = q̂}, and α or x must never refit. The widget is driven with ``set`` and read back from
its figure (the real-browser test is test_browser.py).
"""

from __future__ import annotations

import functools
import math

import ipywidgets as ipw
import plotly.graph_objects as go
import pytest
import torch

from otkit.conformal import (
    CONFORMAL_METHODS,
    OTCP,
    OTCP_RELATIVE_EPSILON,
    make_conformal,
)
from otkit.conformal.data import make_toy_regression, split_data
from widgets import (
    ConformalExplorer,
    ConformalState,
    InteractiveFigure,
    compute_conformal,
)
from widgets import conformal as conformal_widget
from widgets.conformal import (
    CALIBRATION,
    CENTER,
    COVERED,
    METHODS,
    MISSED,
    REGION,
    TRACE_NAMES,
    ConformalFit,
    FitCache,
    fit_conformal,
)

SMALL = {"n_fit": 200, "n_calibration": 300, "n_test": 400, "reference_size": 256}  # fast


pytestmark = pytest.mark.usefixtures("eager_one_thread")


@pytest.fixture(scope="module")
def cache():
    """One store of fits for the module: each (method, ε, toy, seed) is fitted once."""
    return FitCache(maxsize=64)


def _trace(widget, name):
    return next(t for t in widget.figure.data if t.name == name)


def _shoelace(points: torch.Tensor) -> float:
    """Area of the closed polygon through ``points: [k, 2]``, in order."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs((x * y.roll(-1) - x.roll(-1) * y).sum().item())


# ----- compute_conformal -------------------------------------------------------------------


def test_state_agrees_with_the_predictor_called_directly():
    state = compute_conformal(**SMALL, method="otcp", alpha=0.2, relative_epsilon=0.02,
                              kind="banana", seed=3, x_value=0.3)
    assert isinstance(state, ConformalState) and not state.cached
    assert (state.method, state.alpha, state.relative_epsilon) == ("otcp", 0.2, 0.02)
    assert (state.kind, state.seed, state.x_value) == ("banana", 3, 0.3)

    # the same toy and splits: one generator draws the data, then the split
    gen = torch.Generator().manual_seed(3)
    data = make_toy_regression("banana", 900, generator=gen)
    fit, cal, test = split_data(data, (200, 300, 400), generator=gen)
    for mine, theirs in ((state.fit.fit, fit), (state.fit.calibration, cal),
                         (state.fit.test, test)):
        assert torch.equal(mine.x, theirs.x) and torch.equal(mine.y, theirs.y)

    direct = make_conformal("otcp", data.conditional_mean, relative_epsilon=0.02,
                            reference_size=256, directions="grid", seed=3)
    direct.fit(fit.x, fit.y).calibrate(cal.x, cal.y)
    torch.testing.assert_close(state.predictor.calibration_scores, direct.calibration_scores)
    x = torch.tensor([[0.3]], dtype=torch.float64)
    region = direct.predict_set(x, 0.2)
    assert state.threshold == tuple(region.threshold.tolist())
    torch.testing.assert_close(state.center, region.centers[0])
    torch.testing.assert_close(state.boundary, region.boundary(256)[0])
    inside = direct.predict_set(test.x, 0.2).contains(test.y)
    assert state.coverage == pytest.approx(inside.double().mean().item())
    assert state.n_test == 400

    # the model is the exact conditional mean: ŷ(x) = E[y | x], residuals are the noise
    torch.testing.assert_close(state.center, data.conditional_mean(x)[0])
    torch.testing.assert_close(state.cloud, state.center + cal.y - data.conditional_mean(cal.x))

    # the 10 % of test points nearest to x, translated to ŷ(x): inside the region drawn at x
    # exactly when inside their own region (regions are translates)
    assert len(state.near_x) == 40
    distance = (test.x[:, 0] - 0.3).abs()
    assert (state.near_x - 0.3).abs().max() <= distance.sort().values[39] + 1e-12
    drawn = region.contains(state.near_points[None])[0]
    assert torch.equal(drawn, state.near_inside)
    assert state.near_coverage == pytest.approx(state.near_inside.double().mean().item())
    assert state.time_s >= state.fit.fit_time_s > 0


@pytest.mark.parametrize("kind", ["bimodal_heteroscedastic", "banana"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("alpha", [0.1, 0.3])
def test_coverage_is_near_one_minus_alpha(cache, method, kind, alpha):
    state = compute_conformal(method=method, kind=kind, alpha=alpha, seed=1, cache=cache)
    n_cal, n_test = 500, state.n_test
    # coverage given the calibration split is Beta-distributed around ≥ 1 − α (its mean is
    # at most 1 − α + 1/(n_cal + 1)); the test split adds binomial noise: four std's of both
    std = math.sqrt(alpha * (1 - alpha) * (1 / n_cal + 1 / n_test))
    assert 1 - alpha - 4 * std <= state.coverage <= 1 - alpha + 1 / (n_cal + 1) + 4 * std


def test_volumes_match_their_closed_forms(cache):
    states = {m: compute_conformal(method=m, alpha=0.1, cache=cache) for m in METHODS}
    q = {m: s.threshold for m, s in states.items()}
    assert states["ball"].volume.value == pytest.approx(math.pi * q["ball"][0] ** 2, rel=1e-12)
    chol = states["ellipsoid"].predictor.chol
    assert states["ellipsoid"].volume.value == pytest.approx(
        math.pi * q["ellipsoid"][0] ** 2 * torch.det(chol).item(), rel=1e-12)
    assert states["rectangle"].volume.value == pytest.approx(
        4 * q["rectangle"][0] * q["rectangle"][1], rel=1e-12)
    for m in ("ball", "ellipsoid", "rectangle"):
        assert states[m].volume.exact and states[m].volume.stderr == 0
        assert len(states[m].threshold) == (2 if m == "rectangle" else 1)
        # the drawn polygon has (nearly) the region's area
        assert _shoelace(states[m].boundary) == pytest.approx(states[m].volume.value, rel=2e-3)

    otcp = states["otcp"].volume
    assert not otcp.exact and otcp.num_samples == 2**14 and 0 < otcp.stderr < 0.05 * otcp.value
    assert _shoelace(states["otcp"].boundary) == pytest.approx(
        otcp.value, abs=4 * otcp.stderr + 0.01 * otcp.value)
    # two well separated modes: OTCP's contour follows them, a ball must span both
    assert otcp.value < 0.6 * states["ball"].volume.value
    assert otcp.value < states["rectangle"].volume.value < states["ball"].volume.value


def test_otcp_is_the_smallest_region_on_the_banana(cache):
    volumes = {m: compute_conformal(method=m, kind="banana", cache=cache).volume for m in METHODS}
    otcp = volumes.pop("otcp")
    assert otcp.value + 4 * otcp.stderr < min(v.value for v in volumes.values())


@pytest.mark.parametrize("method", METHODS)
def test_smaller_alpha_gives_a_larger_region(cache, method):
    wide = compute_conformal(method=method, alpha=0.1, cache=cache)
    narrow = compute_conformal(method=method, alpha=0.3, cache=cache)
    assert all(a > b for a, b in zip(wide.threshold, narrow.threshold))
    assert wide.volume.value > narrow.volume.value + 3 * (wide.volume.stderr
                                                          + narrow.volume.stderr)
    assert wide.coverage > narrow.coverage


@pytest.mark.parametrize("method", METHODS)
def test_boundary_traces_the_level_set(cache, method):
    state = compute_conformal(method=method, alpha=0.2, x_value=0.7, cache=cache)
    assert state.boundary.shape == (256, 2)
    # baselines: exact up to rounding; OTCP: the contour is inverted by Newton's method
    assert state.boundary_error < (1e-5 if method == "otcp" else 1e-12)
    # recomputed here from the public score, against q̂
    n = len(state.boundary)
    x = torch.full((n, 1), 0.7, dtype=torch.float64)
    scores = state.predictor.score(x, state.boundary).reshape(n, -1)
    ratio = (scores / torch.tensor(state.threshold, dtype=torch.float64)).max(dim=1).values
    assert (ratio - 1).abs().max().item() == pytest.approx(state.boundary_error, abs=1e-12)
    if method != "otcp":  # star-shaped about their centre: just in, just out
        centre = state.center + getattr(state.predictor, "mean", torch.zeros(2))
        region = state.predictor.predict_set(x, 0.2)
        assert region.contains(centre + 0.999 * (state.boundary - centre)).all()
        assert not region.contains(centre + 1.001 * (state.boundary - centre)).any()


def test_an_unbounded_otcp_region_is_reported_not_raised(monkeypatch):
    # 16 reference points: 4 directions, a square hull K. The default hull score keeps the
    # region T⁻¹(q̂ K) bounded however coarse K is ...
    coarse = {**SMALL, "reference_size": 16}
    w = ConformalExplorer(debounce_ms=0, alpha=0.1, relative_epsilon=0.01, **coarse)
    assert w.error is None and math.isfinite(w.state.volume.value) and not w.state.warnings
    # ... the paper's norm score does not: the square's inradius 0.71 < q̂ ≈ 0.9, so the
    # contour at level q̂ has no preimage in the square's diagonal directions
    monkeypatch.setitem(CONFORMAL_METHODS, "otcp", functools.partial(OTCP, score="norm", whiten=False))
    w = ConformalExplorer(debounce_ms=0, alpha=0.1, relative_epsilon=0.01, **coarse)
    assert w.error is None
    assert w.state.volume.value == math.inf
    assert any("unbounded" in message for message in w.state.warnings)
    assert w.state.boundary_error > 0.01  # the drawn contour is not the level set
    meta = w.figure.layout.meta
    assert meta["volume"] is None and meta["bounded"] is False and meta["warnings"]
    assert 'data-value="inf"' in w.stats.value and "∞ (unbounded)" in w.stats.value
    assert 'class="otkit-stats-warnings"' in w.stats.value
    # the view stays on the data, not on a contour running off to |y| ~ 100
    cloud = w.state.cloud
    span = (cloud.max(0).values - cloud.min(0).values).max().item()
    for axis_range in (w.figure.layout.xaxis.range, w.figure.layout.yaxis.range):
        assert all(math.isfinite(v) for v in axis_range)
        assert axis_range[1] - axis_range[0] < 3 * span
    assert w.state.boundary.abs().max() > 10 * span


def test_changing_alpha_or_x_reuses_the_fit(monkeypatch):
    fits = []
    real = conformal_widget.fit_conformal
    monkeypatch.setattr(conformal_widget, "fit_conformal",
                        lambda **kw: fits.append(kw) or real(**kw))
    cache = FitCache(maxsize=2)
    first = compute_conformal(**SMALL, alpha=0.1, cache=cache)
    assert len(fits) == 1 and not first.cached and (cache.misses, cache.hits) == (1, 0)

    scores = first.predictor.calibration_scores
    for change in ({"alpha": 0.3}, {"x_value": 0.9}, {"alpha": 0.45, "x_value": 0.0}):
        state = compute_conformal(**SMALL, cache=cache, **change)
        assert state.cached and state.fit is first.fit and state.predictor is first.predictor
        assert state.predictor.calibration_scores is scores  # not even recalibrated
    assert len(fits) == 1 and (cache.misses, cache.hits) == (1, 3)
    assert compute_conformal(**SMALL, alpha=0.3, cache=cache).threshold != first.threshold

    # ε, the toy and the seed do refit; the baselines have no ε: one fit for every value
    assert not compute_conformal(**SMALL, relative_epsilon=0.05, cache=cache).cached
    ball = compute_conformal(**SMALL, method="ball", relative_epsilon=0.05, cache=cache)
    assert not ball.cached and ball.relative_epsilon is None
    assert compute_conformal(**SMALL, method="ball", relative_epsilon=0.002, cache=cache).cached
    assert len(fits) == 3
    # least recently used first out: the default-ε fit is gone (maxsize 2)
    assert len(cache) == 2
    assert not compute_conformal(**SMALL, cache=cache).cached and len(fits) == 4
    # without a cache, every call fits
    assert not compute_conformal(**SMALL).cached and len(fits) == 5


def test_fit_conformal_is_reproducible_and_records_its_arguments():
    a = fit_conformal(method="ellipsoid", relative_epsilon=0.5, kind="mixture", seed=4, **SMALL)
    assert isinstance(a, ConformalFit) and a.relative_epsilon is None
    assert a.calibration_residuals.shape == (300, 2) and a.test_residuals.shape == (400, 2)
    b = fit_conformal(method="ellipsoid", kind="mixture", seed=4, **SMALL)
    assert torch.equal(a.test.y, b.test.y)
    torch.testing.assert_close(a.predictor.calibration_scores, b.predictor.calibration_scores)
    c = fit_conformal(method="ellipsoid", kind="mixture", seed=5, **SMALL)
    assert not torch.equal(a.test.y, c.test.y)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"alpha": 0.0}, ValueError, r"alpha must lie in \(0, 1\)"),
    ({"alpha": 1.0}, ValueError, r"alpha must lie in \(0, 1\)"),
    ({"alpha": -0.1}, ValueError, r"alpha must lie in \(0, 1\)"),
    ({"alpha": "0.1"}, TypeError, "alpha must be a number"),
    ({"method": "gaussian"}, ValueError, "method must be one of"),
    ({"kind": "spiral"}, ValueError, "kind must be one of"),
    ({"x_value": 1.5}, ValueError, r"x_value must lie in \[0, 1\]"),
    ({"relative_epsilon": 0.0}, ValueError, "relative_epsilon"),
    ({"relative_epsilon": float("nan")}, ValueError, "relative_epsilon"),
    ({"seed": -1}, ValueError, "seed"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"n_fit": 1}, ValueError, "n_fit"),
    ({"near_fraction": 0.0}, ValueError, "near_fraction"),
    ({"num_points": 2}, ValueError, "num_points"),
    ({"volume_samples": 8}, ValueError, "volume_samples"),
])
def test_compute_rejects_bad_arguments(monkeypatch, kwargs, error, match):
    def no_fit(**_):  # a bad argument must fail before the toy is even drawn
        raise AssertionError("fitted despite a bad argument")

    if not {"method", "kind", "seed", "n_fit"} & set(kwargs):  # those fail inside the fit
        monkeypatch.setattr(conformal_widget, "fit_conformal", no_fit)
    with pytest.raises(error, match=match):
        compute_conformal(**{**SMALL, **kwargs})


def test_too_few_calibration_points_for_alpha():
    with pytest.raises(ValueError, match="too few calibration points"):
        compute_conformal(**{**SMALL, "n_calibration": 8}, method="ball", alpha=0.05)
    # the rectangle calibrates each coordinate at α/2: it needs twice as many
    compute_conformal(**{**SMALL, "n_calibration": 18}, method="ball", alpha=0.1)
    with pytest.raises(ValueError, match="too few calibration points"):
        compute_conformal(**{**SMALL, "n_calibration": 18}, method="rectangle", alpha=0.1)


# ----- the widget --------------------------------------------------------------------------


def test_widget_builds():
    w = ConformalExplorer(debounce_ms=0, **SMALL)
    assert isinstance(w, InteractiveFigure) and isinstance(w.figure, go.FigureWidget)
    assert w.error is None and w.n_computes == 1 and isinstance(w.state, ConformalState)
    assert [t.name for t in w.figure.data] == list(TRACE_NAMES)
    assert set(w.controls) == {"method", "alpha", "relative_epsilon", "x_value", "kind", "seed"}
    assert isinstance(w.controls["method"], ipw.ToggleButtons)
    assert list(w.controls["method"].options) == ["otcp", "ball", "ellipsoid", "rectangle"]
    alpha = w.controls["alpha"]
    assert isinstance(alpha, ipw.FloatSlider) and (alpha.min, alpha.max) == (0.05, 0.5)
    eps = w.controls["relative_epsilon"]
    assert isinstance(eps, ipw.FloatLogSlider) and (eps.min, eps.max) == (-3, 0)
    assert eps.value == pytest.approx(OTCP_RELATIVE_EPSILON)  # the library's default
    assert not eps.disabled  # OTCP: ε matters
    assert "otkit-widget" in w.ui._dom_classes and "otkit-conformal" in w.ui._dom_classes
    assert "otkit-control-relative-epsilon" in eps._dom_classes

    state = w.state
    assert len(_trace(w, CALIBRATION).x) == 300
    assert len(_trace(w, COVERED).x) + len(_trace(w, MISSED).x) == 40
    region = _trace(w, REGION)
    assert len(region.x) == 257 and (region.x[0], region.y[0]) == (region.x[-1], region.y[-1])
    assert list(region.x[:-1]) == pytest.approx(state.boundary[:, 0].tolist())
    assert list(_trace(w, CENTER).y) == pytest.approx([state.center[1].item()])
    meta = w.figure.layout.meta
    assert meta["coverage"] == state.coverage and meta["method"] == "otcp"
    assert meta["volume"] == state.volume.value and meta["cached"] is False
    for name in ("coverage", "near-coverage", "volume", "threshold", "time", "fit"):
        assert f'class="otkit-stat otkit-stat-{name}"' in w.stats.value
    assert f'data-value="{state.coverage!r}"' in w.stats.value
    assert f'data-value="{state.volume.value!r}"' in w.stats.value
    assert "±" in w.stats.value  # OTCP's Monte Carlo volume has a standard error
    assert f"{state.coverage:.3f}" in w.figure.layout.title.text


def test_legend_reads_as_words():
    """The legend shows the trace names: words a visitor reads, not identifiers."""
    w = ConformalExplorer(debounce_ms=0, **SMALL)
    shown = [t.name for t in w.figure.data if t.showlegend is not False]
    assert shown == list(TRACE_NAMES)
    assert not any("_" in name for name in shown), shown
    assert REGION == "region"  # the name the browser test reads


def test_alpha_and_x_redraw_from_the_cached_fit():
    w = ConformalExplorer(debounce_ms=0, **SMALL)
    first = w.state
    region_x = list(_trace(w, REGION).x)

    w.set(alpha=0.3)
    assert w.n_computes == 2 and w.state.cached and w.state.predictor is first.predictor
    assert w.cache.misses == 1 and w.cache.hits == 1
    assert w.state.alpha == 0.3 and w.figure.layout.meta["alpha"] == 0.3
    assert list(_trace(w, REGION).x) != region_x
    assert w.state.coverage < first.coverage
    assert w.figure.layout.meta["coverage"] == w.state.coverage
    assert f'data-value="{w.state.coverage!r}"' in w.stats.value
    assert 'data-value="cached"' in w.stats.value

    # x translates the region by the move of ŷ(x): same shape, same volume
    before = w.state
    w.controls["x_value"].value = 0.9  # what the front end does
    assert w.n_computes == 3 and w.state.x_value == 0.9
    assert w.cache.misses == 1 and w.state.predictor is first.predictor
    shift = w.state.center - before.center
    assert shift.norm() > 0.1
    torch.testing.assert_close(w.state.boundary, before.boundary + shift)
    assert w.state.volume.value == pytest.approx(before.volume.value)
    assert list(_trace(w, CENTER).x) == pytest.approx([w.state.center[0].item()])
    # model state kept current for views made later (page reload, Voilà)
    center = next(t for t in w.figure._widget_data if t["name"] == CENTER)
    assert list(center["x"]) == pytest.approx([w.state.center[0].item()])


@pytest.mark.parametrize("disable_while_busy", [False, True])
def test_method_switch_disables_epsilon_for_the_baselines(disable_while_busy):
    w = ConformalExplorer(debounce_ms=0, disable_while_busy=disable_while_busy, **SMALL)
    otcp_volume = w.state.volume.value
    w.set(method="ball")
    assert w.controls["relative_epsilon"].disabled and not w.controls["alpha"].disabled
    assert w.state.method == "ball" and w.state.relative_epsilon is None
    assert w.figure.layout.meta["method"] == "ball"
    assert w.state.volume.value == pytest.approx(math.pi * w.state.threshold[0] ** 2)
    assert w.state.volume.value != otcp_volume
    assert f'data-value="{w.state.volume.value!r}"' in w.stats.value
    assert "±" not in w.stats.value  # exact
    w.set(relative_epsilon=0.05)  # e.g. from code: no refit for a baseline
    assert w.state.cached and w.cache.misses == 2

    w.set(method="rectangle")
    assert len(w.state.threshold) == 2 and w.controls["relative_epsilon"].disabled
    w.set(method="otcp", relative_epsilon=OTCP_RELATIVE_EPSILON)
    assert not w.controls["relative_epsilon"].disabled
    assert w.state.cached and w.state.volume.value == otcp_volume  # the first fit, reused


def test_initial_baseline_starts_with_epsilon_disabled():
    w = ConformalExplorer(debounce_ms=0, method="ellipsoid", kind="mixture", seed=2, **SMALL)
    assert w.controls["relative_epsilon"].disabled
    assert (w.state.method, w.state.kind, w.state.seed) == ("ellipsoid", "mixture", 2)
    with pytest.raises(ValueError, match="unknown parameter"):
        w.set(epsilon=0.1)


def test_toy_and_seed_controls_refit():
    w = ConformalExplorer(debounce_ms=0, method="ball", **SMALL)
    y = w.state.fit.test.y
    w.set(kind="banana")
    assert w.state.kind == "banana" and not w.state.cached
    w.set(seed=7)
    assert w.state.seed == 7 and not w.state.cached and not torch.equal(w.state.fit.test.y, y)
    assert w.cache.misses == 3


def test_error_is_shown_in_the_status():
    # 5 calibration points cannot certify 1 − α = 0.9
    w = ConformalExplorer(debounce_ms=0, method="ball", **{**SMALL, "n_calibration": 5})
    assert w.state is None and isinstance(w.error, ValueError)
    assert "otkit-status-error" in w.status.value and "too few calibration" in w.status.value
    w.set(alpha=0.45)  # ⌈6 · 0.55⌉ = 4 ≤ 5: fine
    assert w.error is None and w.state.alpha == 0.45
    assert w.cache.misses == 1  # the fit survived the failed α
