"""The conformal region explorer: OTCP's prediction regions against the baselines, live.

Split conformal prediction (:mod:`otkit.conformal`) calibrates one residual-space set R on
held-out residuals r_i = y_i − ŷ(x_i), and predicts the region C(x) = ŷ(x) + R, which holds the
true y with probability at least 1 − α. OTCP shapes R by the multivariate ranks of an entropic
OT map (a quantile contour of the residuals); the baselines use a ball, an ellipsoid or a
Bonferroni rectangle.

The data are a 2-D toy of :func:`otkit.conformal.data.make_toy_regression`, and the model ŷ
is the toy's *exact* conditional mean E[y | x]: the residuals are then exactly the noise, and
the explorer shows the conformal step alone, free of any regression error.

* :func:`fit_conformal`: the expensive part, a :class:`ConformalFit` (the toy's fit /
  calibration / test splits and a fitted, calibrated predictor). It depends on the method, ε
  (OTCP only), the toy and the seed, never on α or x.
* :class:`FitCache`: a small LRU of those fits. Changing α or x reuses the fit: α only picks
  another calibration quantile q̂, and x only translates the region.
* :func:`compute_conformal`: one view, a frozen :class:`ConformalState`: the calibration
  residuals around ŷ(x), the region's boundary at x, the test coverage, the volume, q̂ and the
  test points near x. A plain function that tests call without a browser.
* :class:`ConformalExplorer`: the widget. Controls: the method, α, ε (relative, OTCP only:
  disabled for the baselines), x, the toy and a seed.

Stable names for browser tests: traces (named for the legend, :data:`TRACE_NAMES`)
``"calibration ŷ(x) + rᵢ"`` (the cloud the region must cover), ``"test near x, covered"``
and ``"test near x, missed"`` (test points with x_j near x, translated the same way,
ŷ(x) + r_j, split by whether their own region holds them), ``"region"`` (the boundary, a
closed curve) and ``"ŷ(x)"``; the outer box has the class
``otkit-conformal``; ``layout.meta`` holds the numbers (``coverage``, ``near_coverage``,
``volume``, ``volume_stderr``, ``threshold``, ``cached``, ``fit_time_s``, ``time_s``,
``method``, ``alpha``, ...); the stats line has spans ``.otkit-stat-coverage``,
``.otkit-stat-near-coverage``, ``.otkit-stat-volume``, ``.otkit-stat-threshold``,
``.otkit-stat-time`` and ``.otkit-stat-fit`` (``"cached"`` or ``"fitted"``), each with a
``data-value`` attribute.
"""

from __future__ import annotations

import html
import math
import time
import warnings
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch

from otkit.conformal import (
    CONFORMAL_METHODS,
    OTCP_RELATIVE_EPSILON,
    ConformalPredictor,
    VolumeEstimate,
    make_conformal,
)
from otkit.conformal.data import (
    TOY_KINDS,
    RegressionData,
    make_toy_regression,
    split_data,
)
from otkit.validation import check_count, check_positive, check_probability

from .base import (
    FitCache,
    InteractiveFigure,
    _stat,
    figure_widget,
    recorded_warnings,
    seed_control,
    unique_messages,
)

__all__ = [
    "METHODS",
    "TRACE_NAMES",
    "ConformalExplorer",
    "ConformalFit",
    "ConformalState",
    "FitCache",
    "compute_conformal",
    "fit_conformal",
]

#: The methods, in the order of the widget's toggle.
METHODS = tuple(CONFORMAL_METHODS)

#: Trace names, in figure order: what the legend shows (:meth:`ConformalExplorer.trace` finds a
#: trace by it).
CALIBRATION, COVERED, MISSED, REGION, CENTER = TRACE_NAMES = (
    "calibration ŷ(x) + rᵢ", "test near x, covered", "test near x, missed", "region", "ŷ(x)",
)

# What a compute records rather than passes on: Sinkhorn's non-convergence and OTCP's
# RuntimeWarnings (a contour point without preimage, a Monte Carlo box too small).
# ----- the fit: everything that does not depend on alpha or x ----------------------------


@dataclass(frozen=True, eq=False)
class ConformalFit:
    """A predictor fitted and calibrated on a 2-D toy: the part of a view that α and x reuse.

    Attributes:
        method, relative_epsilon, kind, seed: the arguments (``relative_epsilon`` is
            ``None`` for the baselines, which have no ε).
        predictor: the fitted, calibrated predictor; its model is the toy's exact
            ``conditional_mean``.
        fit, calibration, test: the three disjoint splits of the toy (``x: [n, 1]`` in
            [0, 1], ``y: [n, 2]``).
        calibration_residuals: r_i = y_i − ŷ(x_i) of the calibration split, ``[n_cal, 2]``.
        test_residuals: the same for the test split, ``[n_test, 2]``.
        fit_time_s: seconds of ``fit`` + ``calibrate``.
        warnings: messages of the fit's recorded warnings (e.g. Sinkhorn's non-convergence).
    """

    method: str
    relative_epsilon: float | None
    kind: str
    seed: int
    predictor: ConformalPredictor
    fit: RegressionData
    calibration: RegressionData
    test: RegressionData
    calibration_residuals: torch.Tensor
    test_residuals: torch.Tensor
    fit_time_s: float
    warnings: tuple[str, ...] = ()


def fit_conformal(
    *,
    method: str = "otcp",
    relative_epsilon: float | None = OTCP_RELATIVE_EPSILON,
    kind: str = "bimodal_heteroscedastic",
    seed: int = 0,
    n_fit: int = 500,
    n_calibration: int = 500,
    n_test: int = 1000,
    reference_size: int = 512,
) -> ConformalFit:
    """Draw a 2-D toy, split it, and fit and calibrate one conformal predictor on it.

    One generator seeded with ``seed`` draws the toy (n_fit + n_calibration + n_test points)
    and then its split, so a seed fixes the data for every method and ε. The model is the
    toy's exact E[y | x], so the residuals are the noise itself.

    Args:
        method: one of :data:`METHODS`.
        relative_epsilon: OTCP's ε relative to the std of its cost (ignored by, and recorded
            as ``None`` for, the baselines).
        kind: the toy, one of :data:`otkit.conformal.data.TOY_KINDS`.
        seed: seeds the data and OTCP's reference measure.
        n_fit, n_calibration, n_test: the split sizes.
        reference_size: points of OTCP's reference measure on the unit ball.
    """
    seed = check_count("seed", seed, minimum=0)
    n_fit = check_count("n_fit", n_fit, minimum=2)
    n_calibration = check_count("n_calibration", n_calibration)
    n_test = check_count("n_test", n_test)
    options: dict[str, object] = {}
    if method == "otcp":
        relative_epsilon = check_positive("relative_epsilon", relative_epsilon)
        options = {
            "relative_epsilon": relative_epsilon, "reference_size": reference_size, "seed": seed,
        }
    else:
        relative_epsilon = None
    gen = torch.Generator().manual_seed(seed)
    data = make_toy_regression(kind, n_fit + n_calibration + n_test, dim=2, generator=gen)
    predictor = make_conformal(method, data.conditional_mean, **options)  # checks the method
    fit, calibration, test = split_data(data, (n_fit, n_calibration, n_test), generator=gen)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        predictor.fit(fit.x, fit.y).calibrate(calibration.x, calibration.y)
        fit_time_s = time.perf_counter() - start
    return ConformalFit(
        method=method, relative_epsilon=relative_epsilon, kind=kind, seed=seed,
        predictor=predictor, fit=fit, calibration=calibration, test=test,
        calibration_residuals=predictor.residuals(calibration.x, calibration.y),
        test_residuals=predictor.residuals(test.x, test.y),
        fit_time_s=fit_time_s, warnings=recorded_warnings(caught),
    )


# ----- one view: alpha and x on top of a fit -----------------------------------------------


@dataclass(frozen=True, eq=False)
class ConformalState:
    """One conformal region at x, with its coverage and volume (module docstring).

    Attributes:
        method, alpha, relative_epsilon, kind, seed, x_value: the arguments
            (``relative_epsilon`` is ``None`` for the baselines).
        fit: the :class:`ConformalFit` it was computed from (shared by every α and x).
        cached: whether ``fit`` came from the cache (no refit).
        center: ŷ(x_value), ``[2]``.
        cloud: ŷ(x_value) + r_i for the calibration residuals, ``[n_cal, 2]``: the cloud a
            fraction ≥ 1 − α of which the region covers (exactly the ranks ≤ q̂).
        boundary: the region's boundary at x_value, ``[num_points, 2]``, in order around a
            closed curve (OTCP: the preimage of the circle of radius q̂ under the rank map).
        boundary_error: max over the boundary points of |S(x, b)/q̂ − 1| (the largest ratio
            over the rectangle's coordinates): 0 up to rounding for the baselines, small for
            OTCP when its contour inversion converged.
        threshold: q̂, one value (two for the rectangle: one per coordinate).
        coverage: the fraction of the test split inside its own region C(x_j).
        n_test: the test split's size (the standard error of ``coverage`` is about
            √(α(1 − α)/n_test) around its mean, which is ≥ 1 − α).
        near_x: ``[k]`` the test points' x nearest to x_value (k = near_fraction · n_test).
        near_points: ``[k, 2]`` their ŷ(x_value) + r_j: plotted with the region at x_value,
            they are inside it exactly when y_j is inside C(x_j) (regions are translates).
        near_inside: ``[k]`` bool, whether each is covered.
        near_coverage: the mean of ``near_inside``: coverage *near x* (conditional coverage,
            which split conformal does not promise).
        volume: the region's area (exact for the baselines, Monte Carlo for OTCP; infinite,
            with a warning, when OTCP's contour has no preimage in some direction).
        time_s: seconds of the whole compute (the fit included when not cached).
        warnings: messages of the recorded warnings, the fit's first.
    """

    method: str
    alpha: float
    relative_epsilon: float | None
    kind: str
    seed: int
    x_value: float
    fit: ConformalFit
    cached: bool
    center: torch.Tensor
    cloud: torch.Tensor
    boundary: torch.Tensor
    boundary_error: float
    threshold: tuple[float, ...]
    coverage: float
    n_test: int
    near_x: torch.Tensor
    near_points: torch.Tensor
    near_inside: torch.Tensor
    near_coverage: float
    volume: VolumeEstimate
    time_s: float
    warnings: tuple[str, ...] = ()

    @property
    def predictor(self) -> ConformalPredictor:
        """The fitted, calibrated predictor (the same object for every α and x)."""
        return self.fit.predictor


def compute_conformal(
    *,
    method: str = "otcp",
    alpha: float = 0.1,
    relative_epsilon: float = OTCP_RELATIVE_EPSILON,
    kind: str = "bimodal_heteroscedastic",
    seed: int = 0,
    x_value: float = 0.5,
    n_fit: int = 500,
    n_calibration: int = 500,
    n_test: int = 1000,
    reference_size: int = 512,
    near_fraction: float = 0.1,
    num_points: int = 256,
    volume_samples: int = 2**14,
    cache: FitCache | None = None,
) -> ConformalState:
    """The conformal region of one method at level 1 − α and input x, on a 2-D toy.

    The model is the toy's exact conditional mean E[y | x], so the residuals are the noise.
    The fit (:func:`fit_conformal`) is taken from ``cache`` when it holds one for (method, ε,
    kind, seed, split sizes, reference_size); α, x and the plotting options never refit.

    Args:
        method: one of :data:`METHODS`.
        alpha: the miscoverage level, in (0, 1); the calibration split must be large enough
            for it (⌈(n_cal + 1)(1 − α)⌉ ≤ n_cal; α/2 for the rectangle).
        relative_epsilon: OTCP's ε relative to the std of its cost (validated for every
            method, used by OTCP only).
        kind: the toy, one of :data:`otkit.conformal.data.TOY_KINDS`.
        seed: seeds the data, OTCP's reference and the volume's Monte Carlo draws.
        x_value: the input x ∈ [0, 1] whose region is drawn.
        n_fit, n_calibration, n_test, reference_size: see :func:`fit_conformal`.
        near_fraction: the fraction of the test split, nearest to x_value, kept as
            ``near_*`` (in (0, 1)).
        num_points: points on the boundary curve (≥ 3).
        volume_samples: Monte Carlo draws of OTCP's volume (≥ 16).
        cache: a :class:`FitCache` to take the fit from and store it in; ``None`` fits anew.

    Bad arguments raise ``ValueError`` (``TypeError`` for a wrong type) before any fit.
    Sinkhorn's non-convergence and OTCP's RuntimeWarnings (e.g. a contour point without a
    preimage: the region is unbounded in that direction, which OTCP's default hull score
    rules out) do not raise: they are recorded in ``warnings``.
    """
    start = time.perf_counter()
    alpha = check_probability("alpha", alpha)
    relative_epsilon = check_positive("relative_epsilon", relative_epsilon)
    x_value = check_probability("x_value", x_value, closed=True)
    near_fraction = check_probability("near_fraction", near_fraction)
    num_points = check_count("num_points", num_points, minimum=3)
    volume_samples = check_count("volume_samples", volume_samples, minimum=16)

    # The baselines have no ε: one fit serves every slider position. An unknown method or
    # kind misses the cache and fails in fit_conformal, before anything expensive.
    fit_args = {
        "method": method, "relative_epsilon": relative_epsilon if method == "otcp" else None,
        "kind": kind, "seed": seed, "n_fit": n_fit, "n_calibration": n_calibration,
        "n_test": n_test, "reference_size": reference_size,
    }
    if cache is None:
        fit, cached = fit_conformal(**fit_args), False
    else:
        fit, cached = cache.get(tuple(fit_args.items()), lambda: fit_conformal(**fit_args))

    predictor = fit.predictor
    test = fit.test
    x = torch.tensor([[x_value]], dtype=test.x.dtype)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        region = predictor.predict_set(x, alpha)
        boundary = region.boundary(num_points)[0]
        inside = predictor.predict_set(test.x, alpha).contains(test.y)
        volume = region.volume(
            volume_samples, generator=torch.Generator().manual_seed(seed)
        )
        # the boundary's own scores: how exactly it traces the level set {S = q̂}
        ratios = predictor.score(x.expand(num_points, 1), boundary).reshape(num_points, -1)
        ratios = (ratios / region.threshold).max(dim=1).values
    center = region.centers[0]

    # the test points nearest to x (ties by index, for a deterministic choice)
    count = max(1, math.ceil(near_fraction * len(test)))
    near = (test.x[:, 0] - x_value).abs().argsort(stable=True)[:count]
    near_inside = inside[near]
    return ConformalState(
        method=method, alpha=alpha, relative_epsilon=fit.relative_epsilon, kind=kind,
        seed=fit.seed, x_value=x_value, fit=fit, cached=cached, center=center,
        cloud=center + fit.calibration_residuals, boundary=boundary,
        boundary_error=(ratios - 1).abs().max().item(),
        threshold=tuple(region.threshold.tolist()),
        coverage=inside.double().mean().item(), n_test=len(test),
        near_x=test.x[near, 0], near_points=center + fit.test_residuals[near],
        near_inside=near_inside, near_coverage=near_inside.double().mean().item(),
        volume=volume, time_s=time.perf_counter() - start,
        warnings=unique_messages(fit.warnings + recorded_warnings(caught)),
    )


# ----- the widget --------------------------------------------------------------------------


class ConformalExplorer(InteractiveFigure):
    """The conformal region explorer (module docstring).

    Args:
        method, alpha, relative_epsilon, kind, seed, x_value: initial control values (see
            :func:`compute_conformal`; the ε slider is enabled for OTCP only).
        cache_size: fits kept by the widget's :class:`FitCache` (:attr:`cache`).
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
        **compute_options: passed to :func:`compute_conformal` (``n_fit``,
            ``n_calibration``, ``n_test``, ``reference_size``, ``near_fraction``,
            ``num_points``, ``volume_samples``).

    Moving α or x reuses the cached fit: only the quantile q̂, the coverage, the boundary and
    (for OTCP) the Monte Carlo volume are recomputed (a few tenths of a second). So does
    returning to an earlier method, ε, toy or seed, while it is still among the last
    ``cache_size`` fits. A new OTCP fit (n_fit = 500, reference_size = 512, one thread) takes
    about 0.2 s at the default ε = 0.1 and 2 s at ε = 0.01 (Sinkhorn's iterations grow like
    1/ε); the baselines fit in milliseconds.
    """

    css_class = "otkit-conformal"

    def __init__(
        self,
        *,
        method: str = "otcp",
        alpha: float = 0.1,
        relative_epsilon: float = OTCP_RELATIVE_EPSILON,
        kind: str = "bimodal_heteroscedastic",
        seed: int = 0,
        x_value: float = 0.5,
        cache_size: int = 16,
        debounce_ms: float = 150,
        disable_while_busy: bool = False,
        **compute_options,
    ):
        self.cache = FitCache(cache_size)  # before the base's __init__, which computes once
        self.compute_options = compute_options
        super().__init__(
            debounce_ms=debounce_ms, disable_while_busy=disable_while_busy, method=method,
            alpha=alpha, relative_epsilon=relative_epsilon, kind=kind, seed=seed,
            x_value=x_value,
        )

    # ----- InteractiveFigure --------------------------------------------------------------
    def make_controls(self):
        style = {"description_width": "initial"}
        controls = {
            "method": ipw.ToggleButtons(
                options=list(METHODS), value="otcp", description="method",
                style={**style, "button_width": "80px"},
            ),
            "relative_epsilon": ipw.FloatLogSlider(
                value=OTCP_RELATIVE_EPSILON, base=10, min=-3, max=0, step=0.1, readout_format=".3g",
                description="ε (relative, OTCP)", continuous_update=True, style=style,
            ),
            "kind": ipw.Dropdown(
                options=list(TOY_KINDS), value="bimodal_heteroscedastic", description="toy",
                layout=ipw.Layout(width="290px"), style=style,
            ),
            "seed": seed_control(),
            "alpha": ipw.FloatSlider(
                value=0.1, min=0.05, max=0.5, step=0.01, readout_format=".2f",
                description="α (miscoverage)", continuous_update=True, style=style,
            ),
            "x_value": ipw.FloatSlider(
                value=0.5, min=0.0, max=1.0, step=0.01, readout_format=".2f",
                description="x", continuous_update=True, style=style,
            ),
        }
        controls["method"].observe(self._enable_epsilon_slider, names="value")
        return controls

    def layout_controls(self, controls: list[ipw.Widget]) -> ipw.Box:
        """Two rows: what is fitted (method, ε, toy, seed), then what only reads the fit."""
        return self.control_rows(["method", "relative_epsilon", "kind", "seed"],
                                 ["alpha", "x_value"])

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Scatter(
            name=CALIBRATION, mode="markers", x=[], y=[], opacity=0.35,
            marker={"color": "#7f7f7f", "size": 4},
            hovertemplate="ŷ(x) + rᵢ (calibration)<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            name=COVERED, mode="markers", x=[], y=[],
            marker={"color": "#2ca02c", "size": 7, "line": {"width": 0.5, "color": "white"}},
            hovertemplate="test point near x, covered<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            name=MISSED, mode="markers", x=[], y=[],
            marker={"color": "#d62728", "size": 8, "symbol": "x"},
            hovertemplate="test point near x, missed<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            name=REGION, mode="lines", x=[], y=[], fill="toself",
            fillcolor="rgba(31,119,180,0.12)", line={"color": "#1f77b4", "width": 2.5},
            hoverinfo="skip",
        ))
        fig.add_trace(go.Scatter(
            name=CENTER, mode="markers", x=[], y=[],
            marker={"color": "black", "size": 11, "symbol": "cross-thin", "line": {"width": 2.5}},
            hovertemplate="ŷ(x) = (%{x:.3f}, %{y:.3f})<extra></extra>",
        ))
        fig.update_xaxes(title_text="y₁")
        fig.update_yaxes(title_text="y₂", scaleanchor="x", scaleratio=1)
        return figure_widget(fig, "conformal region …", height=560)

    def compute(self, **params) -> ConformalState:
        return compute_conformal(**params, cache=self.cache, **self.compute_options)

    def draw(self, state: ConformalState) -> None:
        fig = self.figure
        cloud = state.cloud.numpy()
        self.trace(CALIBRATION).update(x=cloud[:, 0], y=cloud[:, 1])
        inside = state.near_inside
        for name, mask in ((COVERED, inside), (MISSED, ~inside)):
            points = state.near_points[mask].numpy()
            self.trace(name).update(x=points[:, 0], y=points[:, 1])
        curve = torch.cat([state.boundary, state.boundary[:1]]).numpy()  # closed
        self.trace(REGION).update(x=curve[:, 0], y=curve[:, 1])
        center = state.center.tolist()
        self.trace(CENTER).update(x=[center[0]], y=[center[1]])
        x_range, y_range = _view_ranges(state)
        fig.layout.xaxis.range = x_range
        fig.layout.yaxis.range = y_range

        eps = "" if state.relative_epsilon is None else f", ε = {state.relative_epsilon:.3g}"
        note = "; ⚠ see the warnings under the plot" if state.warnings else ""
        fig.layout.title.text = (
            f"{state.method} region at x = {state.x_value:.2f}: test coverage "
            f"{state.coverage:.3f} (target ≥ {1 - state.alpha:.2f}), "
            f"area {_volume_text(state.volume)}"
            f"<br><sup>{state.kind} toy, seed {state.seed}{eps}; model = exact E[y | x], "
            f"so the residuals are the noise{note}</sup>"
        )
        # The whole dict: inside batch_update, reading layout.meta back gives the old one.
        fig.layout.meta = _meta(state)
        self.stats.value = _stats_html(state)

    # ----- public -------------------------------------------------------------------------
    # ----- the OTCP-only ε slider ---------------------------------------------------------
    def _enable_epsilon_slider(self, change=None) -> None:
        self.controls["relative_epsilon"].disabled = self.controls["method"].value != "otcp"

    def _set_disabled(self, disabled: bool) -> None:
        super()._set_disabled(disabled)
        if not disabled:  # the base re-enables every control: keep ε off for the baselines
            self._enable_epsilon_slider()


def _view_ranges(state: ConformalState) -> tuple[list[float], list[float]]:
    """Axis ranges around the data, grown to show the region but not to follow a contour
    that runs off far away (an OTCP region unbounded in some direction)."""
    data = torch.cat([state.cloud, state.near_points, state.center[None]])
    low, high = data.min(0).values, data.max(0).values
    span = (high - low).clamp_min(1e-9)
    finite = state.boundary[torch.isfinite(state.boundary).all(dim=1)]
    if len(finite):
        low = torch.minimum(low, finite.min(0).values.clamp_min(low - 0.5 * span))
        high = torch.maximum(high, finite.max(0).values.clamp_max(high + 0.5 * span))
    pad = 0.05 * (high - low)
    return [(low[0] - pad[0]).item(), (high[0] + pad[0]).item()], [
        (low[1] - pad[1]).item(), (high[1] + pad[1]).item()]


def _volume_text(volume: VolumeEstimate) -> str:
    if math.isinf(volume.value):
        return "∞ (unbounded)"
    return f"{volume.value:.3g}" if volume.exact else f"{volume.value:.3g} ± {volume.stderr:.2g}"


def _volume_title(volume: VolumeEstimate) -> str:
    if math.isinf(volume.value):
        return "the contour has no preimage in some directions: see the warnings"
    if volume.exact:
        return "exact"
    return f"Monte Carlo, {volume.num_samples} draws (± one standard error)"


def _meta(state: ConformalState) -> dict:
    """The numbers for ``layout.meta``."""
    return {
        "method": state.method,
        "alpha": state.alpha,
        "relative_epsilon": state.relative_epsilon,
        "kind": state.kind,
        "seed": state.seed,
        "x_value": state.x_value,
        "coverage": state.coverage,
        "near_coverage": state.near_coverage,
        "n_test": state.n_test,
        "n_near": len(state.near_x),
        # inf is not JSON: an unbounded region's volume travels as None, with "bounded"
        "volume": state.volume.value if math.isfinite(state.volume.value) else None,
        "volume_stderr": state.volume.stderr,
        "bounded": math.isfinite(state.volume.value),
        "threshold": list(state.threshold),
        "boundary_error": state.boundary_error,
        "center": state.center.tolist(),
        "cached": state.cached,
        "fit_time_s": state.fit.fit_time_s,
        "time_s": state.time_s,
        "warnings": list(state.warnings),
    }


def _stats_html(state: ConformalState) -> str:
    q = ", ".join(f"{v:.4g}" for v in state.threshold)
    fit = "cached" if state.cached else "fitted"
    volume = _volume_text(state.volume) + (" ⚠" if state.warnings else "")
    parts = [
        _stat("coverage", "test coverage", repr(state.coverage), f"{state.coverage:.3f}",
              f"fraction of the {state.n_test} test points inside their own region; "
              f"split conformal promises ≥ {1 - state.alpha:.2f} on average"),
        _stat("near-coverage", "near x", repr(state.near_coverage),
              f"{state.near_coverage:.3f}",
              f"coverage of the {len(state.near_x)} test points with x nearest to "
              f"{state.x_value:.2f} (conditional coverage: not promised)"),
        _stat("volume", "area", repr(state.volume.value), volume, _volume_title(state.volume)),
        _stat("threshold", "q̂", ",".join(map(repr, state.threshold)), q,
              "the ⌈(n + 1)(1 − α)⌉-th smallest calibration score"
              + (" (per coordinate, at α/2)" if len(state.threshold) > 1 else "")),
        _stat("time", "time", repr(state.time_s), f"{state.time_s:.2f} s"),
        _stat("fit", "fit", fit,
              f"{fit} ({state.fit.fit_time_s:.2f} s)" if not state.cached else fit,
              f"fit + calibrate took {state.fit.fit_time_s:.2f} s"),
    ]
    line = '<div class="otkit-stats-line">' + " · ".join(parts) + "</div>"
    if not state.warnings:
        return line
    notes = "".join(f"<div>⚠ {html.escape(w)}</div>" for w in state.warnings)
    return line + f'<div class="otkit-stats-warnings" style="color:#b36b00">{notes}</div>'
