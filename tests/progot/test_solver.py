"""ProgOT (otkit.progot): the recursion, the schedules, the map and the coupling.

References nobody here wrote: the Gaussian closed-form Monge map (otkit.gaussian, itself tested
against scipy), exact OT (POT's ot.emd) and OTT-JAX's schedules when it is installed.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from otkit import gaussian, progot, sinkhorn
from otkit.progot import (
    ALPHA_SCHEDULES,
    ProgOTResult,
    alpha_schedule,
    epsilon_schedule,
    progress_schedule,
    tune_end_epsilon,
)
from otkit.sinkhorn import ConvergenceWarning

F64 = torch.float64
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def clouds(n=300, m=None, d=2, dtype=F64, seed=0):
    """A Gaussian source and a shifted, sheared, bent Gaussian target (float64, then cast).

    Unimodal on purpose: between well separated clusters Sinkhorn slows down at small ε
    whatever the solver (see notebooks/01_progot.ipynb), which is not what these tests test.
    """
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    z = torch.randn(m or n, d, generator=gen, dtype=F64)
    y = 2.0 + 0.6 * z + 0.4 * z.roll(1, dims=1)
    y[:, 0] += 0.3 * z[:, -1] ** 2
    return x.to(dtype), y.to(dtype)


def random_weights(n, generator):
    w = 0.1 + torch.rand(n, generator=generator, dtype=F64)
    return w / w.sum()


@pytest.fixture(scope="module")
def fitted() -> ProgOTResult:
    x, y = clouds()
    return progot(x, y, num_steps=4, alpha="quad", tol=1e-5)


# ----------------------------------------------------------------------------- recursion


def test_fit_follows_the_recursion_from_the_current_cloud(fitted):
    """x⁽ᵏ⁺¹⁾ = (1 − α_k) x⁽ᵏ⁾ + α_k T_k(x⁽ᵏ⁾), the CURRENT cloud (METHODS.md's pitfall)."""
    for k, step in enumerate(fitted.steps):
        alpha = fitted.alphas[k].item()
        expected = (1 - alpha) * fitted.xs[k] + alpha * step.transport(fitted.xs[k])
        torch.testing.assert_close(fitted.xs[k + 1], expected, rtol=0, atol=1e-12)
        torch.testing.assert_close(step.x, fitted.xs[k], rtol=0, atol=0)
    # The test can fail: displacing from the original x⁽⁰⁾ (OTT-JAX's fit loop) differs.
    alpha = fitted.alphas[1].item()
    wrong = (1 - alpha) * fitted.xs[0] + alpha * fitted.steps[1].transport(fitted.xs[1])
    assert (wrong - fitted.xs[2]).abs().max() > 0.1


def test_transport_path_on_training_points_equals_xs(fitted):
    path = fitted.transport(fitted.x, return_path=True)
    assert isinstance(path, list) and len(path) == fitted.num_steps + 1
    for z, x_k in zip(path, fitted.xs):
        torch.testing.assert_close(z, x_k, rtol=0, atol=0)
    torch.testing.assert_close(fitted.transport(fitted.x), fitted.xs[-1], rtol=0, atol=0)


def test_out_of_sample_transport_agrees_with_partial_steps(fitted):
    x_new = clouds(50, seed=1)[0]
    path = fitted.transport(x_new, return_path=True)
    for k in range(fitted.num_steps + 1):
        torch.testing.assert_close(fitted.transport(x_new, num_steps=k), path[k], rtol=0, atol=0)
    torch.testing.assert_close(path[0], x_new)


def test_one_full_step_is_the_plain_entropic_map():
    x, y = clouds()
    x_new = clouds(40, seed=3)[0]
    one = progot(x, y, num_steps=1, alpha="lin", tol=1e-6)
    assert one.alphas.tolist() == [1.0]
    plain = sinkhorn(x, y, tol=1e-6)
    assert one.epsilons[0].item() == pytest.approx(plain.epsilon)
    torch.testing.assert_close(one.transport(x_new), plain.transport(x_new), rtol=0, atol=1e-10)
    torch.testing.assert_close(one.coupling(), plain.coupling(), rtol=0, atol=1e-12)


def test_warm_start_is_the_scaled_previous_potentials(monkeypatch):
    """Step k + 1 starts from (1 − α_k)(f_k, g_k); without warm_start from nothing."""
    import sys

    module = sys.modules["otkit.progot.solver"]
    inits, results = [], []

    def spy(*args, init=None, **kwargs):
        inits.append(init)
        results.append(sinkhorn(*args, init=init, **kwargs))
        return results[-1]

    monkeypatch.setattr(module, "sinkhorn", spy)
    x, y = clouds(100)
    fit = progot(x, y, num_steps=3, alpha="quad")
    assert inits[0] is None
    for k in range(2):
        alpha = fit.alphas[k].item()
        torch.testing.assert_close(inits[k + 1][0], (1 - alpha) * results[k].f, rtol=0, atol=0)
        torch.testing.assert_close(inits[k + 1][1], (1 - alpha) * results[k].g, rtol=0, atol=0)
    inits.clear()
    progot(x, y, num_steps=3, warm_start=False)
    assert inits == [None, None, None]


def test_warm_start_reaches_the_same_solution():
    x, y = clouds(200)
    warm = progot(x, y, num_steps=3, tol=1e-6, warm_start=True)
    cold = progot(x, y, num_steps=3, tol=1e-6, warm_start=False)
    for a, b in zip(warm.xs, cold.xs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- schedules


def test_named_alpha_schedules_and_their_progress():
    K = 5
    k = torch.arange(1, K + 1, dtype=F64)
    t = progress_schedule(alpha_schedule("lin", K))
    torch.testing.assert_close(t[1:], k / K)
    t = progress_schedule(alpha_schedule("quad", K))
    torch.testing.assert_close(t[1:], k * (k + 2) / (K * (K + 2)))
    t = progress_schedule(alpha_schedule("exp", K))
    torch.testing.assert_close(t[1:], 1 - (1 - math.exp(-1)) ** k)
    assert t[-1] < 0.95  # exp never reaches the target
    for kind in ("lin", "quad"):
        assert progress_schedule(alpha_schedule(kind, K))[-1].item() == pytest.approx(1.0)
        assert alpha_schedule(kind, K)[-1].item() == pytest.approx(1.0)


def test_fitted_lin_and_quad_end_on_the_target_support(fitted):
    # α_K = 1: the last cloud is the last entropic map's image, inside the hull of y.
    assert fitted.progress[-1].item() == pytest.approx(1.0)
    y = fitted.y
    assert (fitted.xs[-1].min(0).values >= y.min(0).values - 1e-9).all()
    assert (fitted.xs[-1].max(0).values <= y.max(0).values + 1e-9).all()


def test_alpha_schedules_match_ott_jax():
    progot_ott = pytest.importorskip("ott.tools.progot")
    for kind in ALPHA_SCHEDULES:
        for K in (1, 2, 4, 8):
            ours = alpha_schedule(kind, K)
            theirs = torch.tensor(progot_ott.get_alpha_schedule(kind, num_steps=K).tolist(), dtype=F64)
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_epsilon_schedule_interpolates_on_the_previous_progress():
    alphas = alpha_schedule("lin", 4)
    eps = epsilon_schedule(1.0, 0.1, alphas)
    t = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=F64)
    torch.testing.assert_close(eps, (1 - t) * 1.0 + t * 0.1)


def test_tuned_epsilon_picks_the_best_scale_and_follows_the_schedule():
    x, y = clouds(300, d=8)
    gen = torch.Generator().manual_seed(0)
    fit = progot(x, y, num_steps=3, epsilon="tuned", generator=gen)
    tuning = fit.tuning
    assert tuning.errors.argmin().item() == tuning.best
    assert tuning.converged.all()
    # U-shaped: the chosen scale beats both ends of the grid (over- and under-smoothing).
    assert tuning.errors[tuning.best] < tuning.errors[0]
    assert tuning.errors[tuning.best] < tuning.errors[-1]
    with pytest.warns(ConvergenceWarning):
        start = sinkhorn(x, y, max_iter=1).epsilon
    expected = epsilon_schedule(start, tuning.epsilon, fit.alphas)
    torch.testing.assert_close(fit.epsilons, expected, rtol=1e-6, atol=0)


def test_tuning_with_given_held_out_points():
    _, y = clouds(300)
    y_eval = clouds(100, seed=5)[1]
    tuning = tune_end_epsilon(y, y_eval, scales=[0.01, 0.1, 1.0, 10.0])
    assert tuning.scales.tolist() == [0.01, 0.1, 1.0, 10.0]
    assert tuning.epsilons.shape == (4,)
    # Each error is the held-out reconstruction error of that scale's own map.
    for i, rel in ((3, 1e-9), (2, 1e-9)):
        fit = sinkhorn(y, y, epsilon=tuning.epsilons[i].item())
        expected = ((fit.transport(y_eval) - y_eval) ** 2).sum(1).mean().item()
        assert tuning.errors[i].item() == pytest.approx(expected, rel=rel)


def test_given_epsilons_are_used_as_is():
    x, y = clouds()
    fit = progot(x, y, epsilon=[0.5, 0.2, 0.1])
    assert fit.num_steps == 3
    assert fit.epsilons.tolist() == pytest.approx([0.5, 0.2, 0.1])
    assert [s.epsilon for s in fit.steps] == pytest.approx([0.5, 0.2, 0.1])
    constant = progot(x, y, num_steps=2, epsilon=0.3)
    assert constant.epsilons.tolist() == pytest.approx([0.3, 0.3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(alpha=[0.5, 0.0, 1.0]), "alpha values must lie in"),
        (dict(alpha=[0.5, 1.5]), "alpha values must lie in"),
        (dict(alpha=[-0.1, 1.0]), "alpha values must lie in"),
        (dict(alpha=[0.5, float("nan")]), "alpha contains NaN"),
        (dict(alpha=[0.5, 1.0], num_steps=3), "alpha has 2 values but num_steps is 3"),
        (dict(alpha="cosine"), "alpha must be one of"),
        (dict(num_steps=0), "num_steps must be a positive integer"),
        (dict(num_steps=2.5), "num_steps must be a positive integer"),
        (dict(epsilon=[0.1, 0.1], num_steps=3), "epsilon has 2 values but num_steps is 3"),
        (dict(epsilon=[0.1, 0.0]), "epsilon values must be positive"),
        (dict(epsilon=[0.1, -1.0]), "epsilon values must be positive"),
        (dict(epsilon=-0.1), "epsilon must be"),
        (dict(epsilon=0.0), "epsilon must be"),
        (dict(epsilon="default"), "epsilon must be None, 'tuned'"),
        (dict(epsilon=[]), "epsilon must be a non-empty"),
        (dict(relative_epsilon=0.0), "relative_epsilon"),
        (dict(epsilon="tuned", epsilon_scales=[0.1, -1.0]), "scales must be positive"),
        (dict(epsilon="tuned", start_epsilon_scale=0.0), "start_epsilon_scale"),
        (dict(start_epsilon_scale=2.0), "start_epsilon_scale only apply to epsilon='tuned'"),
        (dict(epsilon=0.1, epsilon_scales=[1.0]), "epsilon_scales only apply"),
        (dict(y_eval=torch.zeros(5, 2, dtype=F64)), "y_eval only apply"),
        (dict(a=torch.ones(7, dtype=F64)), "a must have shape"),
        (dict(b=-torch.ones(30, dtype=F64) / 30), "b"),
        (dict(epsilon="tuned", b=torch.ones(30, dtype=F64) / 30), "needs y_eval"),
    ],
)
def test_bad_schedules_raise_clear_errors(kwargs, match):
    x, y = clouds(30)
    with pytest.raises((ValueError, TypeError), match=match):
        progot(x, y, **kwargs)


def test_bad_inputs_raise_clear_errors(fitted):
    x, y = clouds(30)
    with pytest.raises(ValueError, match="y_eval"):
        progot(x, y, epsilon="tuned", y_eval=torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="x_new"):
        fitted.transport(torch.zeros(5, 3, dtype=F64))
    with pytest.raises(ValueError, match="num_steps"):
        fitted.transport(fitted.x, num_steps=5)
    with pytest.raises(ValueError, match="x and y must have the same dimension"):
        progot(x, y[:, :1])
    with pytest.raises(ValueError, match="y_eval must be like y"):
        progot(x, y, epsilon="tuned", y_eval=torch.zeros(5, 2, dtype=torch.float32))
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        tune_end_epsilon([[0.0, 1.0]] * 10)
    with pytest.raises(ValueError, match="b must have shape"):
        tune_end_epsilon(y, y[:5], torch.ones(3, dtype=F64))


def test_non_convergence_warns_once_and_is_reported():
    x, y = clouds(200)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = progot(x, y, num_steps=3, epsilon=1e-4, max_iter=3)
    messages = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(messages) == 1 and "steps [1, 2, 3] of 3" in str(messages[0].message)
    assert fit.converged is False and fit.n_iters == (3, 3, 3)


# ----------------------------------------------------------------------------- accuracy


def test_map_recovers_the_gaussian_monge_map():
    """Out-of-sample error against the closed-form affine Monge map."""
    gen = torch.Generator().manual_seed(0)
    d = 2
    mean0, mean1 = torch.zeros(d, dtype=F64), torch.tensor([2.0, -1.0], dtype=F64)
    cov0 = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    cov1 = torch.tensor([[0.4, -0.2], [-0.2, 1.2]], dtype=F64)
    x = gaussian.sample_gaussian(mean0, cov0, 2000, generator=gen)
    y = gaussian.sample_gaussian(mean1, cov1, 2000, generator=gen)
    x_test = gaussian.sample_gaussian(mean0, cov0, 500, generator=gen)
    truth = gaussian.monge_map(mean0, cov0, mean1, cov1)(x_test)
    variance = ((truth - truth.mean(0)) ** 2).sum(1).mean()
    for kind in ("lin", "quad"):
        fit = progot(x, y, num_steps=4, alpha=kind)
        error = ((fit.transport(x_test) - truth) ** 2).sum(1).mean() / variance
        assert error < 0.02, (kind, error)
    # A failing control: the identity is far from the map.
    assert ((x_test - truth) ** 2).sum(1).mean() / variance > 1.0


def test_coupling_is_a_valid_plan_and_its_cost_is_near_exact_ot():
    ot = pytest.importorskip("ot")
    x, y = clouds(200, 150)
    gen = torch.Generator().manual_seed(2)
    a, b = random_weights(200, generator=gen), random_weights(150, generator=gen)
    fit = progot(x, y, a, b, num_steps=4, relative_epsilon=0.02, tol=1e-5)
    plan = fit.coupling()
    assert plan.shape == (200, 150)
    assert fit.converged
    assert (plan.sum(1) - a).abs().sum() <= 1e-8 and (plan.sum(0) - b).abs().sum() <= 1e-5
    assert fit.marginal_error() < 2e-5
    cost = 0.5 * torch.cdist(x, y) ** 2
    assert fit.ot_cost().item() == pytest.approx((plan * cost).sum().item(), rel=1e-10)
    exact = (torch.from_numpy(ot.emd(a.numpy(), b.numpy(), cost.numpy())) * cost).sum().item()
    assert exact <= fit.ot_cost().item() <= 1.02 * exact


def test_float32_and_repr():
    x, y = clouds(200, dtype=torch.float32)
    fit = progot(x, y, num_steps=2)
    assert fit.xs[-1].dtype == torch.float32 and fit.converged
    text = repr(fit)
    assert text.startswith("ProgOTResult(num_steps=2") and "tensor(" not in text


@cuda
@pytest.mark.cuda
def test_cuda_matches_cpu():
    x, y = clouds(500)
    cpu = progot(x, y, num_steps=3, tol=1e-7)
    gpu = progot(x.cuda(), y.cuda(), num_steps=3, tol=1e-7)
    assert gpu.xs[-1].device.type == "cuda"
    torch.testing.assert_close(gpu.xs[-1].cpu(), cpu.xs[-1], rtol=0, atol=1e-6)


def test_two_steps_match_ott_jax_progot():
    """OTT-JAX's ProgOT agrees with otkit's for K = 2, where its fit-loop slip has no effect.

    (Its slip, displacing from x⁽⁰⁾ while fitting, first changes the cloud of step 3.) OTT's
    cost is ‖x − y‖², twice otkit's, so its ε is twice ours.
    """
    pytest.importorskip("ott.tools.progot")
    import jax.numpy as jnp
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.tools import progot as progot_ott

    x, y = clouds(200, d=3)
    x_test = clouds(50, d=3, seed=4)[0]
    epsilons = [0.4, 0.1]
    ours = progot(x, y, alpha="lin", epsilon=epsilons, tol=1e-5, max_iter=5000)
    geom = pointcloud.PointCloud(jnp.asarray(x.numpy()), jnp.asarray(y.numpy()))
    solver = progot_ott.ProgOT(
        alphas=progot_ott.get_alpha_schedule("lin", num_steps=2),
        epsilons=jnp.asarray([2 * e for e in epsilons]),
    )
    out = solver(linear_problem.LinearProblem(geom), warm_start=True, threshold=1e-5, max_iterations=5000)
    theirs, _ = out.transport(jnp.asarray(x_test.numpy()))
    torch.testing.assert_close(
        ours.transport(x_test), torch.tensor(theirs.tolist(), dtype=F64), rtol=0, atol=2e-3
    )


def test_tuning_at_the_edge_of_the_grid_warns():
    from otkit.progot import EdgeOfGridWarning

    _, y = clouds(200)
    with pytest.warns(EdgeOfGridWarning, match="smallest scale"):
        tuning = tune_end_epsilon(y, scales=[2.0, 4.0, 8.0], generator=torch.Generator().manual_seed(0))
    assert tuning.best == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", EdgeOfGridWarning)
        tune_end_epsilon(y, scales=[1e-3, 0.03, 8.0], generator=torch.Generator().manual_seed(0))
