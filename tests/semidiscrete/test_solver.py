"""otkit.semidiscrete: the closed-form gradient, blockwise MIPS, marginals after training, and
agreement with discrete Sinkhorn on a large sample (references: autograd, a plain full argmax,
a chi-square test, otkit.sinkhorn's potential)."""

import importlib
import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import otkit
from otkit.data import half_annulus
from otkit.flows import StandardNormal

sd = importlib.import_module("otkit.semidiscrete.solver")

pytestmark = pytest.mark.usefixtures("eager_one_thread")


def _problem(n_targets=12, d=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(n_targets, d, generator=g, dtype=dtype) * 1.5
    b = torch.rand(n_targets, generator=g, dtype=dtype) + 0.5
    x = torch.randn(64, d, generator=g, dtype=dtype)
    pot = torch.randn(n_targets, generator=g, dtype=dtype) * 0.3
    return x, y, b / b.sum(), pot


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.5])
@pytest.mark.parametrize("cost", ["sqeuclidean", "dot", "euclidean"])
def test_closed_form_gradient_equals_autograd(epsilon, cost):
    x, y, b, g = _problem()
    g = g.clone().requires_grad_(True)
    sd.semidiscrete_loss(g, x, y, b, epsilon=epsilon, cost=cost).backward()
    ours = sd.semidiscrete_gradient(g.detach(), x, y, b, epsilon=epsilon, cost=cost)
    torch.testing.assert_close(ours, g.grad, atol=1e-10, rtol=1e-8)


def test_a_wrong_gradient_would_be_caught():
    x, y, b, g = _problem()
    g = g.clone().requires_grad_(True)
    sd.semidiscrete_loss(g, x, y, b, epsilon=0.1).backward()
    wrong = sd.semidiscrete_gradient(g.detach(), x, y, b, epsilon=0.1) + b  # forgot "− b"
    assert (wrong - g.grad).abs().max() > 1e-3


@pytest.mark.parametrize("cost", ["sqeuclidean", "dot", "euclidean"])
def test_blockwise_mips_equals_the_full_argmax(cost, monkeypatch):
    monkeypatch.setattr(sd, "_BLOCK_CELLS", 4096)  # force many target blocks and query bands
    gen = torch.Generator().manual_seed(1)
    y = torch.randn(5000, 8, generator=gen)
    x = torch.randn(300, 8, generator=gen)
    g = torch.randn(5000, generator=gen)
    full = (g - otkit.costs.get_cost(cost).pairwise(x, y)).argmax(1)
    torch.testing.assert_close(sd.assign(x, y, g, cost=cost), full, rtol=0, atol=0)


def test_soft_assignment_draws_from_the_softmax_row():
    x, y, b, g = _problem(n_targets=5)
    x0 = x[:1].expand(20_000, -1).contiguous()
    j = sd.assign(x0, y, g, b=b, epsilon=0.7, generator=torch.Generator().manual_seed(0))
    row = torch.softmax(torch.log(b) + (g - otkit.costs.get_cost("sqeuclidean")(x[:1], y)[0]) / 0.7, 0)
    counts = torch.bincount(j, minlength=5).double().numpy()
    assert chisquare(counts, row.numpy() * 20_000).pvalue > 1e-3


def test_chi2_estimator_is_unbiased():
    """E χ̂² = χ²(q ‖ b) when each row is one-hot with probabilities q."""
    gen = torch.Generator().manual_seed(0)
    b = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    q = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    values = []
    for _ in range(4000):
        idx = torch.multinomial(q, 8, replacement=True, generator=gen)
        values.append(sd.chi2_error(torch.nn.functional.one_hot(idx, 3).double(), b))
    assert np.mean(values) == pytest.approx(((q - b) ** 2 / b).sum().item(), abs=0.01)


@pytest.fixture(scope="module")
def annulus_fit():
    torch.set_num_threads(1)
    y = half_annulus(24, seed=0, dtype=torch.float64)
    return sd.semidiscrete(StandardNormal(2), y, steps=6000, batch_size=128, lr=0.05,
                           check_every=1000)


def test_assignment_proportions_match_b_after_training(annulus_fit):
    fit = annulus_fit
    x = StandardNormal(2)(5000, torch.Generator().manual_seed(5)).double()
    counts = torch.bincount(fit.assign(x), minlength=24).numpy()
    assert chisquare(counts, fit.b.numpy() * 5000).pvalue > 1e-3
    assert fit.chi2[-1] < 0.02 and fit.chi2[0] > fit.chi2[-1] - 0.01
    # before training (g = 0) the cells are far from balanced: the test can fail
    untrained = torch.bincount(sd.assign(x, fit.y, torch.zeros(24, dtype=torch.float64)), minlength=24)
    assert chisquare(untrained.numpy(), fit.b.numpy() * 5000).pvalue < 1e-6


def test_result_methods(annulus_fit):
    fit = annulus_fit
    x = torch.randn(50, 2, dtype=torch.float64)
    assert torch.equal(fit.transport(x), fit.y[fit.assign(x)])
    assert fit.chi2_error(StandardNormal(2), num_batches=2, generator=torch.Generator().manual_seed(0)) < 0.1
    assert fit.losses.shape == (6000,) and fit.chi2_steps.tolist() == list(range(1000, 6001, 1000))
    with pytest.raises(ValueError, match="soft assignment needs epsilon > 0"):
        fit.assign(x, soft=True)
    with pytest.raises(ValueError, match=r"x must have shape \[k, 2\]"):
        fit.assign(torch.randn(5, 3))


def test_potential_matches_discrete_sinkhorn_on_a_large_sample():
    """At ε > 0, g is the n → ∞ limit of the discrete dual potential of Sinkhorn between a
    sample of μ and the targets (same ε, same cost), up to an additive constant."""
    torch.set_num_threads(1)
    y = half_annulus(8, seed=1, dtype=torch.float64)
    eps = 0.5
    fit = sd.semidiscrete(StandardNormal(2), y, epsilon=eps, steps=4000, batch_size=1024,
                          optimizer="adam", lr=0.01, ema=0.999, check_every=4000, generator=2)
    x = StandardNormal(2)(40_000, torch.Generator().manual_seed(7)).double()
    ref = otkit.sinkhorn(x, y, epsilon=eps, tol=1e-6, max_iter=5000)
    ours, theirs = fit.g - fit.g.mean(), ref.g - ref.g.mean()
    assert (ours - theirs).abs().max() < 0.1 * (theirs.max() - theirs.min())
    # the soft transport agrees with Sinkhorn's entropic map
    xs = torch.randn(200, 2, dtype=torch.float64)
    assert (fit.transport(xs) - ref.transport(xs)).norm(dim=1).mean() < 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"b": torch.full((6,), 0.2, dtype=torch.float64)}, "b must sum to 1"),
        ({"b": torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)}, "b must be positive"),
        ({"b": torch.tensor([1.5, -0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)}, "b"),
        ({"epsilon": -0.1}, "epsilon must be a finite number >= 0"),
        ({"lr": 0.0}, "lr"),
        ({"optimizer": "lbfgs"}, "optimizer must be"),
        ({"ema": 1.0}, "ema must lie in"),
        ({"init": torch.zeros(5)}, r"init must be a finite tensor of shape \[6\]"),
    ],
)
def test_bad_inputs_raise(kwargs, match):
    y = torch.randn(6, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=match):
        sd.semidiscrete(StandardNormal(2), y, steps=2, **kwargs)


def test_old_keyword_names_still_work():
    """num_iterations= and seed= are the old names of steps= and generator=."""
    y = torch.randn(6, 2, dtype=torch.float64)
    new = sd.semidiscrete(StandardNormal(2), y, steps=20, generator=3, check_every=10)
    with pytest.warns(DeprecationWarning) as record:
        old = sd.semidiscrete(StandardNormal(2), y, num_iterations=20, seed=3, check_every=10)
    assert torch.equal(old.g, new.g) and old.n_iter == 20
    assert sorted(str(w.message).split(" is now")[0] for w in record) == [
        "semidiscrete(..., num_iterations=)", "semidiscrete(..., seed=)"]
    assert all(w.filename == __file__ for w in record)  # pointing at the caller
    with pytest.raises(TypeError, match="both steps= and its old name num_iterations="):
        sd.semidiscrete(StandardNormal(2), y, steps=5, num_iterations=5)
    gen = torch.Generator().manual_seed(3)  # a generator draws as its seed does
    assert torch.equal(sd.semidiscrete(StandardNormal(2), y, steps=20, generator=gen, check_every=10).g, new.g)


def test_mismatched_dimensions_raise():
    with pytest.raises(ValueError, match=r"sampler\(n, generator\) must return a tensor \[n, 3\]"):
        sd.semidiscrete(StandardNormal(2), torch.randn(6, 3), steps=2)
    with pytest.raises(ValueError, match="y"):
        sd.semidiscrete(StandardNormal(2), torch.full((6, 2), math.nan), steps=2)
