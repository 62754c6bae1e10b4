"""otkit.flows: pairing from couplings, the flow matching trainer, ODE samplers, the study grid.

References nobody here wrote: scipy's linear_sum_assignment (exact matching), scipy's
chi-square test against the Sinkhorn plan's conditionals, closed-form ODE solutions.
"""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from scipy.stats import chisquare

from otkit.flows import (
    Empirical,
    ExactCoupling,
    IndependentCoupling,
    Sampler,
    SinkhornCoupling,
    StandardNormal,
    VelocityConvNet,
    VelocityMLP,
    flow_matching_loss,
    integrate,
    make_coupling,
    train_flow,
)
from otkit.flows.metrics import wasserstein2
from otkit.flows.study import (
    best_settings,
    flow_benchmark,
    mean_over_seeds,
    run_flow_study,
    seed_values,
    versus_independent,
    w2_noise_floor,
)

pytestmark = pytest.mark.usefixtures("eager_one_thread")


def _clouds(n, seed=0, d=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.rand(n, d, generator=g, dtype=torch.float64) * 3


def _assignment(x0, x1):
    cost = torch.cdist(x0, x1).pow(2).numpy()
    rows, cols = linear_sum_assignment(cost)
    return torch.as_tensor(cols[np.argsort(rows)])


# ----------------------------------------------------------------------------- pairing


def test_sinkhorn_pairs_follow_each_rows_conditional():
    x0, x1 = _clouds(6, seed=1)
    coupling = SinkhornCoupling(relative_epsilon=0.5, tol=1e-9, max_iter=10_000)
    plan = coupling.solve(x0, x1).coupling()
    conditional = plan / plan.sum(1, keepdim=True)
    draws = 4000
    result = coupling.solve(x0, x1)
    # pair() draws each row's partner with sample_columns: the same generator, the same pairs
    pairing = coupling.pair(x0, x1, generator=torch.Generator().manual_seed(7))
    assert torch.equal(pairing.source, x0)  # every source row used once, in order
    j_pair = torch.cdist(pairing.target, x1).argmin(1)
    j_cols = result.sample_columns(torch.arange(6), torch.Generator().manual_seed(7))
    assert torch.equal(j_pair, j_cols)
    j = result.sample_columns(torch.arange(6).repeat(draws), torch.Generator().manual_seed(0))
    counts = torch.zeros(6, 6)
    counts.index_put_((torch.arange(6).repeat(draws), j), torch.ones(6 * draws), accumulate=True)
    for i in range(6):
        expected = conditional[i].numpy() * draws
        assert chisquare(counts[i].numpy(), expected).pvalue > 1e-3
    # the pairs' target marginal is b (uniform), up to the solver's tolerance
    assert chisquare(counts.sum(0).numpy(), np.full(6, draws)).pvalue > 1e-3


def test_wrong_conditional_fails_the_chi_square():
    """The test above can fail: counts from the independent coupling do not fit the plan."""
    x0, x1 = _clouds(6, seed=1)
    plan = SinkhornCoupling(relative_epsilon=0.5, tol=1e-9).solve(x0, x1).coupling()
    conditional = plan / plan.sum(1, keepdim=True)
    uniform_counts = np.full(6, 4000 / 6)
    assert chisquare(uniform_counts, conditional[0].numpy() * 4000).pvalue < 1e-3


def test_sinkhorn_pairs_at_tiny_epsilon_are_the_exact_matching():
    x0, x1 = _clouds(16, seed=2)
    pairing = SinkhornCoupling(relative_epsilon=1e-4, tol=1e-4, max_iter=100_000).pair(
        x0, x1, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(pairing.target, x1[_assignment(x0, x1)])
    assert pairing.renormalized_entropy < 0.01
    assert pairing.n_iter > 0 and pairing.epsilon > 0


def test_exact_coupling_is_the_optimal_assignment():
    x0, x1 = _clouds(60, seed=3)
    pairing = ExactCoupling().pair(x0, x1)
    assert torch.equal(pairing.target, x1[_assignment(x0, x1)])
    assert pairing.renormalized_entropy == 0.0


def test_independent_coupling_keeps_the_draws():
    x0, x1 = _clouds(10)
    pairing = IndependentCoupling().pair(x0, x1)
    assert pairing.source is x0 and pairing.target is x1 and pairing.renormalized_entropy == 1.0


def test_sharpness_falls_with_epsilon():
    x0, x1 = _clouds(200, seed=4)
    entropies = [
        SinkhornCoupling(relative_epsilon=r).pair(x0, x1).renormalized_entropy
        for r in (1.0, 0.1, 0.01)
    ]
    assert 1 > entropies[0] > entropies[1] > entropies[2] > 0


def test_make_coupling():
    assert isinstance(make_coupling("independent"), IndependentCoupling)
    assert isinstance(make_coupling("exact"), ExactCoupling)
    assert make_coupling(0.05).relative_epsilon == 0.05
    assert make_coupling(SinkhornCoupling(epsilon=0.3)).epsilon == 0.3
    with pytest.raises(ValueError, match="coupling must be"):
        make_coupling("hungarian")


@pytest.mark.parametrize(
    "x0, x1, match",
    [
        (torch.zeros(5, 2), torch.zeros(4, 2), "same shape"),
        (torch.zeros(5), torch.zeros(5), r"shape \[n, d\]"),
        (torch.zeros(1, 2), torch.zeros(1, 2), "at least 2"),
        (torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2), "floating-point"),
    ],
)
def test_pair_rejects_bad_batches(x0, x1, match):
    with pytest.raises(ValueError, match=match):
        SinkhornCoupling().pair(x0, x1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"relative_epsilon": -1.0}, "relative_epsilon"),
        ({"relative_epsilon": None}, "relative_epsilon or epsilon"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"tol": 0.0}, "tol"),
    ],
)
def test_sinkhorn_coupling_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SinkhornCoupling(**kwargs)


def test_sample_columns_rejects_bad_rows():
    x0, x1 = _clouds(5)
    result = SinkhornCoupling().solve(x0, x1)
    with pytest.raises(ValueError, match="rows must lie"):
        result.sample_columns(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="1-D integer"):
        result.sample_columns(torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------- laws


def test_empirical_draws_without_replacement():
    data = torch.arange(10.0).unsqueeze(1)
    law = Empirical(data)
    gen = torch.Generator().manual_seed(0)
    assert law(10, gen).squeeze(1).sort().values.tolist() == list(range(10))
    counts = torch.bincount(law(25, gen).squeeze(1).long(), minlength=10)
    assert set(counts.tolist()) <= {2, 3}


def test_laws_are_reproducible_and_validated():
    for law in (StandardNormal(3), Sampler("moons"), Sampler("checkerboard"), Sampler("gaussian")):
        a = law(50, torch.Generator().manual_seed(1))
        b = law(50, torch.Generator().manual_seed(1))
        assert torch.equal(a, b) and a.shape == (50, law.dim)
    with pytest.raises(ValueError, match="name must be one of"):
        Sampler("spiral")
    with pytest.raises(ValueError, match="dim"):
        StandardNormal(0)


# ----------------------------------------------------------------------------- networks


def test_networks_return_velocities_of_the_input_shape():
    x = torch.randn(7, 3)
    assert VelocityMLP(3, hidden=16, depth=2)(x, torch.rand(7)).shape == (7, 3)
    assert VelocityMLP(3, hidden=16)(x, 0.5).shape == (7, 3)
    conv = VelocityConvNet(channels=8, depth=2)
    assert conv(torch.randn(5, 64), torch.rand(5)).shape == (5, 64)
    assert conv(torch.randn(5, 1, 8, 8), 0.3).shape == (5, 1, 8, 8)
    with pytest.raises(ValueError, match=r"shape \[k, 3\]"):
        VelocityMLP(3)(torch.randn(4, 2), 0.1)
    with pytest.raises(ValueError, match="t must be"):
        VelocityMLP(3)(x, torch.rand(6))
    with pytest.raises(ValueError, match=r"\[k, 64\]"):
        conv(torch.randn(5, 63), 0.1)


# ----------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("method", ["euler", "midpoint", "heun"])
def test_samplers_are_exact_on_constant_fields(method):
    x0 = torch.randn(20, 2, dtype=torch.float64)
    shift = torch.tensor([1.5, -2.0], dtype=torch.float64)
    x1, path = integrate(lambda x, t: shift.expand_as(x), x0, nfe=4, method=method, return_path=True)
    torch.testing.assert_close(x1, x0 + shift)
    assert path.shape == (4 // (1 if method == "euler" else 2) + 1, 20, 2)


@pytest.mark.parametrize("method", ["midpoint", "heun"])
def test_second_order_samplers_are_exact_on_fields_affine_in_time(method):
    x0 = torch.randn(10, 2, dtype=torch.float64)
    a, b = torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([-2.0, 3.0], dtype=torch.float64)
    field = lambda x, t: a + t.unsqueeze(1) * b
    torch.testing.assert_close(integrate(field, x0, nfe=2, method=method), x0 + a + b / 2)
    euler = integrate(field, x0, nfe=2, method="euler")  # first order: off by b/(2·steps)
    torch.testing.assert_close(euler, x0 + a + b / 2 - b / 4)


@pytest.mark.parametrize("method, order", [("euler", 1), ("midpoint", 2), ("heun", 2)])
def test_samplers_converge_at_their_order_on_a_linear_field(method, order):
    """dx/dt = A x has x(1) = exp(A) x(0); the error falls like NFE^-order."""
    A = torch.tensor([[0.0, -1.0], [1.0, -0.2]], dtype=torch.float64)
    x0 = torch.randn(5, 2, dtype=torch.float64)
    exact = x0 @ torch.linalg.matrix_exp(A).T
    errors = [
        (integrate(lambda x, t: x @ A.T, x0, nfe=nfe, method=method) - exact).norm().item()
        for nfe in (16, 32)
    ]
    assert errors[0] / errors[1] == pytest.approx(2**order, rel=0.15)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"nfe": 0}, "nfe must be an integer >= 1"),
        ({"nfe": 3, "method": "heun"}, "multiple of 2"),
        ({"nfe": 2, "method": "rk4"}, "method must be one of"),
    ],
)
def test_integrate_rejects_bad_budgets(kwargs, match):
    with pytest.raises(ValueError, match=match):
        integrate(lambda x, t: x, torch.zeros(3, 2), **kwargs)


# ----------------------------------------------------------------------------- training


def test_flow_matching_loss_is_zero_for_the_true_velocity():
    x0 = torch.randn(30, 2)
    x1 = x0 + torch.tensor([1.0, 2.0])  # a translation: the velocity is the constant shift
    field = lambda x, t: torch.tensor([1.0, 2.0]).expand_as(x)
    assert flow_matching_loss(field, x0, x1).item() == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(ValueError, match="same shape"):
        flow_matching_loss(field, x0, x1[:5])


def test_trainer_lowers_the_loss_and_is_reproducible():
    def fit():
        torch.manual_seed(0)
        return train_flow(
            VelocityMLP(2, hidden=32, depth=2), StandardNormal(2), Sampler("moons"),
            coupling=0.05, steps=120, batch_size=64, coupling_size=128, seed=3,
        )

    result = fit()
    assert result.losses[-20:].mean() < 0.6 * result.losses[:20].mean()
    assert result.renormalized_entropies.shape == (60,)  # 128 pairs serve 2 steps of 64
    assert 0 < result.renormalized_entropies.mean() < 1 and result.converged_fraction == 1.0
    torch.testing.assert_close(fit().losses, result.losses, rtol=0, atol=0)
    samples = result.sample(torch.randn(10, 2), nfe=4, method="midpoint")
    assert samples.shape == (10, 2) and torch.isfinite(samples).all()


def test_exact_pairs_straighten_the_flow():
    """Batch-OT pairs give a lower loss floor than independent pairs (crossing segments)."""
    losses = {}
    for coupling in ("independent", "exact"):
        torch.manual_seed(0)
        result = train_flow(
            VelocityMLP(2, hidden=32, depth=2), Sampler("eight_gaussians"), Sampler("moons"),
            coupling=coupling, steps=150, batch_size=128, seed=0,
        )
        losses[coupling] = result.losses[-50:].mean().item()
    assert losses["exact"] < 0.5 * losses["independent"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"coupling_size": 10}, "coupling_size must be at least batch_size"),
        ({"ema": 1.0}, "ema must lie in"),
        ({"steps": 0}, "steps"),
        ({"coupling": "sorted"}, "coupling must be"),
        ({"lr": -1.0}, "lr"),
    ],
)
def test_trainer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_flow(VelocityMLP(2, hidden=8, depth=1), StandardNormal(2), StandardNormal(2), batch_size=16, **kwargs)


def test_trainer_rejects_a_law_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"target\(n, generator\) must return"):
        train_flow(
            VelocityMLP(2, hidden=8, depth=1), StandardNormal(2), lambda n, g: torch.zeros(n),
            steps=1, batch_size=4,
        )
    with pytest.raises(TypeError, match="torch.nn.Module"):
        train_flow(lambda x, t: x, StandardNormal(2), StandardNormal(2))


# ----------------------------------------------------------------------------- study


def test_flow_study_rows_and_summaries():
    bench = flow_benchmark("moons", reference_size=200)
    rows = run_flow_study(
        bench, ["independent", 0.1, "exact"], [64, 128], nfes=(1, 4), steps=8, batch_size=64,
        num_samples=200,
    )
    assert len(rows) == (1 + 2 + 2) * 2
    assert {r["coupling"] for r in rows} == {"independent", "sinkhorn ε̃=0.1", "exact"}
    assert all(math.isfinite(r["w2"]) and r["w2"] > 0 for r in rows)
    assert [r["nfe"] for r in best_settings(rows, "w2")] == [1, 4]
    ratios = versus_independent(rows, "w2")
    assert len(ratios) == 8 and all(r["w2_ratio"] > 0 for r in ratios)
    with pytest.raises(ValueError, match="needs scorer"):
        run_flow_study(flow_benchmark("digits"), ["exact"], [256], steps=1)
    with pytest.raises(ValueError, match="name must be one of"):
        flow_benchmark("cifar")


def test_seed_summaries_pair_runs_by_seed_and_match_a_t_interval():
    from scipy import stats

    rows = [{"benchmark": "moons", "coupling": c, "n": 64, "nfe": 1, "seed": s, "w2": w,
             "renormalized_entropy": h}
            for c, h, ws in (("exact", 0.0, [0.3, 0.2, 0.25]), ("independent", 1.0, [0.5, 0.6, 0.4]))
            for s, w in zip([2, 0, 1], ws)]
    assert seed_values(rows, "w2", coupling="exact", nfe=1) == [0.2, 0.25, 0.3]  # seeds 0, 1, 2
    with pytest.raises(ValueError, match="several rows per seed"):
        seed_values(rows, "w2", nfe=1)
    with pytest.raises(ValueError, match="no row matches"):
        seed_values(rows, "w2", coupling="sinkhorn")
    (exact,) = [r for r in mean_over_seeds(rows, "w2") if r["coupling"] == "exact"]
    low, high = stats.t.interval(0.95, 2, loc=0.25, scale=stats.sem([0.3, 0.2, 0.25]))
    assert exact["w2"] == pytest.approx(0.25) and exact["seeds"] == 3
    assert (exact["w2_low"], exact["w2_high"]) == pytest.approx((low, high))


def test_noise_floor_is_a_perfect_samplers_score():
    bench = flow_benchmark("moons", reference_size=300)
    floor = w2_noise_floor(bench, 300, draws=3)
    assert len(floor) == 3 and len(set(floor)) == 3 and all(f > 0 for f in floor)
    # the source law (8 Gaussians) is far from moons; fresh moons are not
    source_w2 = wasserstein2(bench.source(300, torch.Generator().manual_seed(0)), bench.reference)
    assert max(floor) < 0.25 * source_w2
    # more points, closer to the reference's own sampling error (W2 falls with the sample size)
    assert np.mean(w2_noise_floor(bench, 1200, draws=3)) < np.mean(floor)
    with pytest.raises(ValueError, match="digits"):
        w2_noise_floor(flow_benchmark("digits"), 100)


# ----------------------------------------------------------------------------- SD-FM


def test_semidiscrete_coupling_pairs_noise_with_its_laguerre_cell():
    from otkit.flows import SemidiscreteCoupling
    from otkit.semidiscrete import semidiscrete

    y = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    fit = semidiscrete(StandardNormal(2), y, steps=300, batch_size=64, check_every=300)
    coupling = SemidiscreteCoupling(fit)
    x0 = torch.randn(50, 2)
    pairing = coupling.pair(x0, torch.zeros(50, 2))  # the drawn target batch is not used
    scores = fit.g - 0.5 * torch.cdist(x0, y) ** 2  # the Laguerre cell: argmax g_j − c(x, y_j)
    assert torch.equal(pairing.target, y[scores.argmax(1)])
    assert pairing.renormalized_entropy == 0.0 and coupling.name == "semidiscrete"
    with pytest.raises(ValueError, match="soft=True needs"):
        SemidiscreteCoupling(fit, soft=True)
    with pytest.raises(TypeError, match="fit must be"):
        SemidiscreteCoupling("fit")
    with pytest.raises(ValueError, match="x0 must have d = 2"):
        coupling.pair(torch.zeros(5, 3), torch.zeros(5, 3))


def test_semidiscrete_study_needs_a_finite_target():
    from otkit.flows.study import semidiscrete_coupling

    with pytest.raises(ValueError, match="train_size="):
        semidiscrete_coupling(flow_benchmark("moons"))
    bench = flow_benchmark("moons", train_size=64, reference_size=100)
    coupling = semidiscrete_coupling(bench, steps=50)
    with pytest.warns(DeprecationWarning, match="num_iterations"):
        old = semidiscrete_coupling(bench, num_iterations=50)
    assert torch.equal(old.fit.g, coupling.fit.g) and old.fit.n_iter == 50
    with pytest.raises(TypeError, match="both steps= and its old name num_iterations="):
        semidiscrete_coupling(bench, steps=50, num_iterations=50)
    rows = run_flow_study(bench, ["independent", coupling], [128], nfes=(1,), steps=4, batch_size=32, num_samples=100)
    assert [r["coupling"] for r in rows] == ["independent", "semidiscrete"]


def test_semidiscrete_coupling_trains_to_a_chi_square_tolerance():
    from otkit.flows.study import semidiscrete_coupling

    bench = flow_benchmark("moons", train_size=32, reference_size=100)
    coupling = semidiscrete_coupling(bench, steps=20_000, lr=0.05, ema=0.99, tol=0.1, chi2_batches=8)
    assert coupling.fit.converged and coupling.fit.n_iter < 20_000  # stopped at the tolerance
    fresh = coupling.fit.chi2_error(bench.source, num_batches=32, generator=torch.Generator().manual_seed(1))
    assert fresh < 0.2  # an independent estimate agrees that the cell masses are close to 1/N
    with pytest.raises(ValueError, match="ema"):
        semidiscrete_coupling(bench, steps=10, ema=1.0)


def test_default_sinkhorn_pairs_use_every_source_once_and_record_the_target_error():
    # Sinkhorn ends on an f-update: the plan's rows are exact and its columns carry the error,
    # so sources are used exactly once and the targets' weights are off by about tol.
    from otkit.data import moons
    from otkit.flows import SinkhornCoupling

    x0 = torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    x1 = moons(512, seed=1)
    coupling = SinkhornCoupling()
    result = coupling.solve(x0, x1)
    rows, cols = result.marginals()
    assert (rows - result.a).abs().sum().item() < 1e-4  # exact up to float32 rounding
    col_error = (cols - result.b).abs().sum().item()
    assert 0.1 * coupling.tol < col_error <= 1.5 * coupling.tol
    pairing = coupling.pair(x0, x1, generator=torch.Generator().manual_seed(2))
    assert pairing.target_error == pytest.approx(col_error, rel=1e-3)
    assert torch.equal(pairing.source, x0)  # every source once, in order
