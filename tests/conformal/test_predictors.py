"""Conformal prediction with OT (otkit.conformal), checked against references nobody here wrote.

* the finite-sample guarantee: for i.i.d. continuous scores the split-conformal coverage has
  expectation exactly k/(n + 1), k = ⌈(n + 1)(1 − α)⌉ (Lei et al. 2018); the empirical
  quantile that OTT-JAX uses falls below 1 − α at small n;
* the OT rank of a standard Gaussian is radial with radius F_χ(‖r‖) (the OT map between two
  radially symmetric measures is the radial monotone rearrangement): scipy's χ CDF;
* volumes: closed forms against Monte Carlo, and OTCP's Monte Carlo against a grid count.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from otkit.conformal import (
    CONFORMAL_METHODS,
    OTCP,
    BallConformal,
    EllipsoidConformal,
    RectangleConformal,
    ball_volume,
    conformal_rank,
    make_conformal,
    reference_ball,
    sphere_directions,
)

F64 = torch.float64


def zero_model(x):
    """ŷ = 0 in d = 2: residuals are the targets themselves."""
    return torch.zeros(len(x), 2, dtype=F64)


def draw(n: int, gen: torch.Generator, kind: str = "gauss") -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``[n, 1]`` and targets ``[n, 2]`` whose residuals under :func:`zero_model` are noise."""
    x = torch.rand(n, 1, generator=gen, dtype=F64)
    z = torch.randn(n, 2, generator=gen, dtype=F64)
    if kind == "banana":  # curved, non-elliptic
        z = torch.stack([z[:, 0], 0.3 * z[:, 1] + 0.6 * z[:, 0] ** 2 - 0.6], dim=1)
    return x, z


@pytest.fixture(scope="module")
def fitted_otcp():
    gen = torch.Generator().manual_seed(1)
    return OTCP(zero_model, reference_size=1024).fit(*draw(1000, gen, "banana"))


# ------------------------------------------------------------------ the threshold


@pytest.mark.parametrize("n", [1, 2, 9, 19, 20, 99, 100, 1000])
@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2, 0.5])
def test_conformal_rank_is_the_smallest_rank_reaching_level(n, alpha):
    # reference: the smallest k with k/(n + 1) ≥ 1 − α, in exact rational arithmetic
    from fractions import Fraction

    level = 1 - Fraction(alpha).limit_denominator(1000)
    k = next((k for k in range(1, n + 2) if Fraction(k, n + 1) >= level), n + 1)
    if k > n:
        with pytest.raises(ValueError, match="too few calibration points for alpha"):
            conformal_rank(n, alpha)
    else:
        assert conformal_rank(n, alpha) == k


def test_coverage_has_expectation_k_over_n_plus_one_and_the_plain_quantile_undercovers():
    # Exchangeable data, n = 19 calibration points, α = 0.1: E[coverage] = ⌈20·0.9⌉/20 = 0.9
    gen = torch.Generator().manual_seed(0)
    reps, n_cal, n_test, alpha = 1500, 19, 50, 0.1
    covered, naive = [], []
    predictor = BallConformal(zero_model).fit(*draw(50, gen))
    for _ in range(reps):
        predictor.calibrate(*draw(n_cal, gen))
        x_test, y_test = draw(n_test, gen)
        covered.append(predictor.predict_set(x_test, alpha).contains(y_test).double().mean())
        q_naive = np.quantile(predictor.calibration_scores[:, 0].numpy(), 1 - alpha)
        naive.append((y_test.norm(dim=1) <= q_naive).double().mean())
    mean, se = torch.stack(covered).mean().item(), torch.stack(covered).std().item() / reps**0.5
    expected = conformal_rank(n_cal, alpha) / (n_cal + 1)
    assert expected == pytest.approx(0.9)
    assert abs(mean - expected) < 4 * se, (mean, expected, se)
    # the interpolated empirical quantile sits between the 17th and 18th scores: ≈ 0.875
    assert torch.stack(naive).mean().item() < 1 - alpha - 4 * se


def test_otcp_keeps_the_guarantee_on_exchangeable_data(fitted_otcp):
    # the OT score is fixed once fitted: calibration and test draws are exchangeable
    gen = torch.Generator().manual_seed(2)
    reps, n_cal, alpha = 200, 49, 0.2
    coverage = []
    for _ in range(reps):
        fitted_otcp.calibrate(*draw(n_cal, gen, "banana"))
        x_test, y_test = draw(100, gen, "banana")
        coverage.append(fitted_otcp.predict_set(x_test, alpha).contains(y_test).double().mean())
    coverage = torch.stack(coverage)
    se = coverage.std().item() / reps**0.5
    expected = conformal_rank(n_cal, alpha) / (n_cal + 1)  # 40/50 = 0.8
    assert abs(coverage.mean().item() - expected) < 4 * se


def test_rectangle_calibrates_each_coordinate_at_alpha_over_d():
    gen = torch.Generator().manual_seed(3)
    predictor = RectangleConformal(zero_model).fit(*draw(100, gen))
    x_cal, y_cal = draw(199, gen)
    predictor.calibrate(x_cal, y_cal)
    q = predictor.threshold(0.1)
    k = math.ceil(200 * (1 - 0.05))  # Bonferroni: α/d = 0.05 per coordinate
    expected = y_cal.abs().sort(dim=0).values[k - 1]
    torch.testing.assert_close(q, expected)
    # With independent coordinates each interval covers with expectation 190/200 = 0.95,
    # independently: the rectangle covers with expectation 0.95² = 0.9025 ≥ 1 − α.
    reps, coverage = 400, []
    for _ in range(reps):
        predictor.calibrate(*draw(199, gen))
        x_test, y_test = draw(200, gen)
        coverage.append(predictor.predict_set(x_test, 0.1).contains(y_test).double().mean())
    coverage = torch.stack(coverage)
    assert abs(coverage.mean().item() - 0.9025) < 4 * coverage.std().item() / reps**0.5


# ------------------------------------------------------------------ OT ranks


def test_reference_ball_is_a_spherical_uniform_grid():
    points, weights = reference_ball(1000, 3, num_radii=30, seed=4)
    assert points.shape == (33 * 30 + 1, 3) and weights.shape == (991,)
    assert weights.sum().item() == pytest.approx(1.0)
    assert weights[-1].item() == pytest.approx(10 / 1000)  # leftover mass at the origin
    torch.testing.assert_close(points[-1], torch.zeros(3, dtype=F64))
    radii = points[:-1].norm(dim=1)
    torch.testing.assert_close(radii.round(decimals=12).unique(), torch.arange(1, 31, dtype=F64) / 30)
    # the same seed gives the same measure; another seed rotates the directions
    torch.testing.assert_close(reference_ball(1000, 3, num_radii=30, seed=4)[0], points)
    assert not torch.allclose(reference_ball(1000, 3, num_radii=30, seed=5)[0], points)
    # defaults: ⌈size^{1/d}⌉ radii; evenly spaced angles in the plane
    assert reference_ball(1000, 3)[0].shape == (10 * 100, 3)
    plane, _ = reference_ball(256, 2)
    outer = plane[plane.norm(dim=1) > 0.999]
    torch.testing.assert_close(outer, sphere_directions(16, 2, kind="grid"))
    # Sobol directions cover the sphere: their mean is near 0 and their covariance near I/d
    unit = sphere_directions(4096, 3)
    assert unit.mean(0).norm().item() < 0.01
    torch.testing.assert_close(unit.T @ unit / 4096, torch.eye(3, dtype=F64) / 3, atol=0.01, rtol=0)


def test_ranks_of_a_gaussian_follow_the_chi_cdf():
    # For r ~ N(0, I₂) the OT map onto the spherical uniform is T(r) = F_χ₂(‖r‖) r/‖r‖.
    gen = torch.Generator().manual_seed(5)
    n = 2000
    x, y = draw(n, gen)
    predictor = OTCP(zero_model, reference_size=2048).fit(x, y)
    r = draw(500, gen)[1]
    ranks = predictor.ranks(r)
    exact = torch.from_numpy(scipy.stats.chi(df=2).cdf(r.norm(dim=1).numpy()))
    error = (ranks.norm(dim=1) - exact).abs()
    bulk = exact < 0.9  # entropic smoothing pulls in the outermost shell
    assert error[bulk].mean().item() < 0.03, error[bulk].mean()
    assert error[bulk].max().item() < 0.1
    cosine = torch.nn.functional.cosine_similarity(ranks, r, dim=1)
    assert cosine[exact > 0.2].min().item() > 0.95  # the map is radial
    # hence the ranks of fresh residuals are close to uniform on [0, 1]
    ks = scipy.stats.kstest(ranks.norm(dim=1).numpy(), "uniform")
    assert ks.statistic < 0.05


def test_forward_and_backward_regions_agree(fitted_otcp):
    gen = torch.Generator().manual_seed(6)
    fitted_otcp.calibrate(*draw(500, gen, "banana"))
    x0 = torch.zeros(1, 1, dtype=F64)
    region = fitted_otcp.predict_set(x0, 0.1)
    boundary = region.boundary(256)[0]
    scores = fitted_otcp._score_residuals(boundary)[:, 0]
    # drawn by inverting the forward map: the contour scores exactly q̂
    assert (scores - region.threshold).abs().max().item() < 1e-6
    assert region.contains(region.sample(2000, generator=gen)).all()
    # the paper's entropic backward map shrinks toward the mean: its contour lies inside
    try:
        fitted_otcp.backward = "entropic"
        region = fitted_otcp.predict_set(x0, 0.1)
        scores = fitted_otcp._score_residuals(region.boundary(256)[0])[:, 0]
        gap = region.threshold - scores
        assert (gap > 0).double().mean().item() > 0.9 and 0.01 < gap.mean().item() < 0.1, gap
    finally:
        fitted_otcp.backward = "invert"


def test_otcp_region_follows_a_curved_residual_cloud(fitted_otcp):
    # On banana noise the OT region is smaller than the ball and the ellipsoid at equal level
    gen = torch.Generator().manual_seed(7)
    x_fit, y_fit = draw(1000, gen, "banana")
    x_cal, y_cal = draw(1000, gen, "banana")
    x0 = torch.zeros(1, 1, dtype=F64)
    fitted_otcp.calibrate(x_cal, y_cal)
    otcp = fitted_otcp.predict_set(x0, 0.1).volume(generator=gen).value
    for cls in (BallConformal, EllipsoidConformal):
        other = cls(zero_model).fit(x_fit, y_fit).calibrate(x_cal, y_cal)
        assert otcp < 0.9 * other.predict_set(x0, 0.1).volume().value, cls


# ------------------------------------------------------------------ regions


@pytest.mark.parametrize("method", ["ball", "ellipsoid", "rectangle"])
def test_baseline_boundaries_score_exactly_the_threshold(method):
    gen = torch.Generator().manual_seed(8)
    predictor = make_conformal(method, zero_model).fit(*draw(300, gen, "banana"))
    predictor.calibrate(*draw(300, gen, "banana"))
    region = predictor.predict_set(torch.zeros(3, 1, dtype=F64), 0.2)
    boundary = region.boundary(64)
    assert boundary.shape == (3, 64, 2)
    scores = predictor._score_residuals(boundary[0])
    at_edge = (scores / region.threshold).max(dim=1).values  # the binding coordinate = q
    torch.testing.assert_close(at_edge, torch.ones(64, dtype=F64))
    assert region.contains(region.sample(500, generator=gen)).all()


@pytest.mark.parametrize("method", ["ball", "ellipsoid", "rectangle"])
def test_exact_volumes_match_monte_carlo(method):
    gen = torch.Generator().manual_seed(9)
    predictor = make_conformal(method, zero_model).fit(*draw(300, gen, "banana"))
    predictor.calibrate(*draw(300, gen, "banana"))
    region = predictor.predict_set(torch.zeros(1, 1, dtype=F64), 0.1)
    exact = region.volume()
    assert exact.exact and exact.stderr == 0.0
    box = 8.0
    u = box * (2 * torch.rand(200_000, 2, generator=gen, dtype=F64) - 1)
    hit = region.contains(u[None])[0].double().mean().item()
    mc, se = hit * (2 * box) ** 2, (2 * box) ** 2 * math.sqrt(hit * (1 - hit) / 200_000)
    assert abs(exact.value - mc) < 4 * se


def test_otcp_monte_carlo_volume_matches_a_grid_count(fitted_otcp):
    gen = torch.Generator().manual_seed(10)
    fitted_otcp.calibrate(*draw(500, gen, "banana"))
    region = fitted_otcp.predict_set(torch.zeros(1, 1, dtype=F64), 0.1)
    estimate = region.volume(2**15, generator=gen)
    assert estimate.num_samples == 2**15 and estimate.stderr > 0
    h = 0.03
    axis = torch.arange(-6, 6, h, dtype=F64) + h / 2
    grid = torch.cartesian_prod(axis, axis)
    area = region.contains(grid[None])[0].double().sum().item() * h * h
    assert abs(estimate.value - area) < 4 * estimate.stderr + 0.01 * area


def test_a_coarse_reference_leaves_the_region_unbounded():
    # 64 reference points: 8 radii × 8 Sobol directions, with angular gaps so wide that the
    # chord between neighbours passes inside radius q̂: T never reaches q̂ u there.
    gen = torch.Generator().manual_seed(19)
    predictor = OTCP(zero_model, reference_size=64, directions="sobol").fit(*draw(300, gen, "banana"))
    predictor.calibrate(*draw(300, gen, "banana"))
    region = predictor.predict_set(torch.zeros(1, 1, dtype=F64), 0.05)
    points, _ = reference_ball(64, 2, directions="sobol")
    outer = points[points.norm(dim=1) > 0.99]
    angles = torch.atan2(outer[:, 1], outer[:, 0]).sort().values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi]))
    inradius = torch.cos(gaps.max() / 2).item()  # of the outer shell's polygon
    assert region.threshold.item() > inradius
    with pytest.warns(RuntimeWarning, match="unbounded"):
        assert region.volume().value == math.inf
    with pytest.warns(RuntimeWarning, match="no preimage"):
        region.boundary(256)
    # an even grid of directions closes the gaps
    grid = OTCP(zero_model, reference_size=256, directions="grid").fit(*draw(300, gen, "banana"))
    grid.calibrate(*draw(300, gen, "banana"))
    assert math.isfinite(grid.predict_set(torch.zeros(1, 1, dtype=F64), 0.05).volume().value)


def test_ball_volume_closed_form():
    assert ball_volume(2, 2.0) == pytest.approx(4 * math.pi)
    assert ball_volume(3) == pytest.approx(4 / 3 * math.pi)
    assert ball_volume(4, 0.5) == pytest.approx(math.pi**2 / 2 / 16)


def test_contains_candidates_and_shapes(fitted_otcp):
    gen = torch.Generator().manual_seed(11)
    fitted_otcp.calibrate(*draw(100, gen, "banana"))
    region = fitted_otcp.predict_set(torch.rand(4, 1, dtype=F64), 0.1)
    candidates = torch.randn(4, 7, 2, dtype=F64)
    inside = region.contains(candidates)
    assert inside.shape == (4, 7) and inside.dtype == torch.bool
    torch.testing.assert_close(region.contains(candidates[:, 0]), inside[:, 0])
    assert "otcp" in repr(region) and len(region) == 4


# ------------------------------------------------------------------ models and dtypes


def test_scikit_learn_estimators_and_numpy_inputs():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(12)
    x = rng.uniform(size=(900, 3))
    y = x @ rng.normal(size=(3, 2)) + rng.normal(size=(900, 2)) * [1.0, 0.2]
    model = LinearRegression().fit(x[:300], y[:300])
    for method in CONFORMAL_METHODS:
        options = {"reference_size": 256} if method == "otcp" else {}
        predictor = make_conformal(method, model, **options).fit(x[300:500], y[300:500])
        predictor.calibrate(x[500:700], y[500:700])
        region = predictor.predict_set(x[700:], 0.2)
        coverage = region.contains(y[700:]).double().mean().item()
        assert 0.7 < coverage < 0.92, (method, coverage)
        assert region.centers.dtype == F64


def test_float32_targets_stay_float32():
    gen = torch.Generator().manual_seed(13)
    x, y = draw(400, gen, "banana")
    model = lambda v: torch.zeros(len(v), 2)
    predictor = OTCP(model, reference_size=512).fit(x[:200], y[:200].float())
    predictor.calibrate(x[200:], y[200:].float())
    region = predictor.predict_set(x[:5], 0.2)
    assert region.boundary(16).dtype == torch.float32
    assert predictor.transport_map.f.dtype == torch.float32


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_predictions_stay_on_the_device():
    gen = torch.Generator().manual_seed(14)
    x, y = draw(400, gen, "banana")
    model = lambda v: torch.zeros(len(v), 2, dtype=F64, device="cuda")
    predictor = OTCP(model, reference_size=256).fit(x[:200], y[:200].cuda())
    predictor.calibrate(x[200:], y[200:].cuda())
    region = predictor.predict_set(x[:5], 0.2)
    assert region.boundary(16).is_cuda and region.contains(y[:5].cuda()).is_cuda


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("alpha", [0, 1, -0.1, 1.5])
def test_alpha_outside_the_unit_interval_is_refused(alpha):
    gen = torch.Generator().manual_seed(15)
    predictor = BallConformal(zero_model).fit(*draw(50, gen)).calibrate(*draw(50, gen))
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\)"):
        predictor.predict_set(torch.zeros(1, 1), alpha)


def test_too_few_calibration_points_for_alpha_is_refused():
    gen = torch.Generator().manual_seed(16)
    predictor = BallConformal(zero_model).fit(*draw(50, gen)).calibrate(*draw(8, gen))
    with pytest.raises(ValueError, match="calibrate on at least 9 points"):
        predictor.predict_set(torch.zeros(1, 1), 0.1)
    # the rectangle's Bonferroni needs more: α/d = 0.05 → 19 points
    rect = RectangleConformal(zero_model).fit(*draw(50, gen)).calibrate(*draw(18, gen))
    with pytest.raises(ValueError, match="calibrate on at least 19 points"):
        rect.predict_set(torch.zeros(1, 1), 0.1)


def test_mismatched_shapes_and_bad_models_are_refused():
    gen = torch.Generator().manual_seed(17)
    x, y = draw(50, gen)
    with pytest.raises(ValueError, match="shape of the model's predictions"):
        BallConformal(zero_model).fit(x, y[:, :1])
    with pytest.raises(ValueError, match="shape of the model's predictions"):
        BallConformal(zero_model).fit(x, y[:40])
    with pytest.raises(TypeError, match="model must be callable"):
        BallConformal(42)
    with pytest.raises(ValueError, match="y contains NaN"):
        BallConformal(zero_model).fit(x, torch.full_like(y, math.nan))
    predictor = BallConformal(zero_model).fit(x, y)
    region = predictor.calibrate(x, y).predict_set(x[:3], 0.5)
    with pytest.raises(ValueError, match="y must have d = 2 columns"):
        region.contains(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="y must have 3 rows"):
        region.contains(torch.zeros(4, 2))


def test_lifecycle_errors_name_the_missing_step():
    gen = torch.Generator().manual_seed(18)
    with pytest.raises(RuntimeError, match=r"fit\(x, y\) must run before calibrate"):
        OTCP(zero_model).calibrate(*draw(20, gen))
    with pytest.raises(RuntimeError, match=r"calibrate\(x, y\) must run before predicting"):
        BallConformal(zero_model).fit(*draw(20, gen)).predict_set(torch.zeros(1, 1), 0.1)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        make_conformal("hexagon", zero_model)
    with pytest.raises(TypeError, match="takes no options"):
        make_conformal("ball", zero_model, epsilon=0.1)
    with pytest.raises(ValueError, match="epsilon or relative_epsilon, not both"):
        OTCP(zero_model, epsilon=0.1, relative_epsilon=0.1)
    with pytest.raises(ValueError, match="reference_size must be an integer >= 2"):
        OTCP(zero_model, reference_size=1)
    with pytest.raises(ValueError, match="num_radii must be at most size"):
        reference_ball(10, 2, num_radii=11)
    with pytest.raises(ValueError, match="kind must be one of 'sobol', 'random', 'grid'"):
        sphere_directions(8, 2, kind="halton")
    with pytest.raises(ValueError, match="backward must be one of 'invert', 'entropic'"):
        OTCP(zero_model, backward="forward")
    with pytest.raises(ValueError, match="needs dim = 2"):
        sphere_directions(8, 3, kind="grid")
    with pytest.raises(ValueError, match="epsilon must be"):
        OTCP(zero_model, epsilon=-1.0).fit(*draw(20, torch.Generator().manual_seed(0)))


# ------------------------------------------------------------------ OTT-JAX cross-check


def test_ranks_match_ott_jax_on_the_same_reference():
    """OTT-JAX's OTCP (a benchmark-only extra) on the same residuals, reference and ε.

    OTT's squared Euclidean cost is ‖x − y‖² (ours ½‖x − y‖²): its ε is twice ours. Scores
    agree up to both solvers' tolerances; the thresholds differ by design (OTT-JAX takes the
    interpolated empirical quantile, which sits below the corrected order statistic).
    """
    jax = pytest.importorskip("jax")
    conformal = pytest.importorskip("ott.tools.conformal")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    gen = torch.Generator().manual_seed(20)
    x_fit, y_fit = draw(400, gen, "banana")
    x_cal, y_cal = draw(49, gen, "banana")
    ours = OTCP(zero_model, reference_size=400, epsilon=0.005, tol=1e-6).fit(x_fit, y_fit)
    ours.calibrate(x_cal, y_cal)
    points, weights = reference_ball(400, 2)

    def sampler(rng, shape):
        return jnp.asarray(points.numpy()), jnp.asarray(weights.numpy())

    ott = conformal.OTCP(lambda x: jnp.zeros((x.shape[0], 2)), sampler=sampler)
    ott = ott.fit_transport(jnp.asarray(x_fit.numpy()), jnp.asarray(y_fit.numpy()), epsilon=0.01,
                            threshold=1e-6, max_iterations=20_000)
    ott = ott.calibrate(jnp.asarray(x_cal.numpy()), jnp.asarray(y_cal.numpy()))
    theirs = np.sort(np.asarray(ott.calibration_scores))
    np.testing.assert_allclose(ours.calibration_scores[:, 0].numpy(), theirs, atol=1e-5)
    # the pitfall: at n = 49, α = 0.1 the corrected rank is ⌈50·0.9⌉ = 45; OTT interpolates
    # between the 44th and 45th scores, below it
    assert ours.threshold(0.1).item() > float(np.quantile(theirs, 0.9))
