"""The generic flow-training options Simple ReFlow brought to otkit.flows: the law of t, the
normalized loss, training on fixed pairs. Checked against closed forms, scipy and autograd."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate as scipy_integrate
from scipy import stats

from otkit.flows import VelocityMLP, flow_matching_loss, train_flow
from otkit.flows.distributions import Sampler
from otkit.flows.paired import train_on_pairs
from otkit.flows.time_samplers import ExponentialTime, UniformTime, make_time_sampler
from otkit.flows.weighting import (
    normalize_loss,
    per_pair_flow_matching_loss,
    weighted_flow_matching_loss,
)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


@pytest.mark.parametrize("towards", ["source", "target"])
@pytest.mark.parametrize("base", [10.0, 0.2])
def test_exponential_time_follows_its_density(base, towards):
    sampler = ExponentialTime(base, towards)
    t = sampler(20_000, torch.Generator().manual_seed(0), torch.float64)
    assert t.min() >= 0 and t.max() <= 1
    cdf = lambda v: sampler.cdf(torch.as_tensor(v, dtype=torch.float64)).numpy()  # noqa: E731
    assert stats.kstest(t.numpy(), cdf).pvalue > 1e-3
    assert stats.kstest(t.numpy(), "uniform").pvalue < 1e-6  # the test can tell them apart
    mass, _ = scipy_integrate.quad(lambda v: float(sampler.density(torch.tensor(v, dtype=torch.float64))), 0, 1)
    assert mass == pytest.approx(1.0, rel=1e-9)


def test_simple_reflow_time_leans_towards_the_noise():
    """p(u) ∝ 10^u on u = 1 − t: E[u] = b/(b − 1) − 1/ln b (closed form), so E[t] ≈ 0.323."""
    sampler = make_time_sampler("noise")
    assert isinstance(sampler, ExponentialTime) and (sampler.base, sampler.towards) == (10.0, "source")
    t = sampler(200_000, torch.Generator().manual_seed(1), torch.float64)
    expected = 1 - (10 / 9 - 1 / math.log(10))
    assert t.mean().item() == pytest.approx(expected, abs=3e-3)
    assert sampler.density(torch.tensor(0.0)) / sampler.density(torch.tensor(1.0)) == pytest.approx(10.0)


def test_uniform_time_is_torch_rand():
    a = UniformTime()(7, torch.Generator().manual_seed(3), torch.float32)
    assert torch.equal(a, torch.rand(7, generator=torch.Generator().manual_seed(3)))
    assert isinstance(make_time_sampler(None), UniformTime)


@pytest.mark.parametrize(("kwargs", "name"), [({"base": 1.0}, "base"), ({"base": -2.0}, "base"),
                                              ({"towards": "data"}, "towards")])
def test_bad_time_samplers_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ExponentialTime(**kwargs)
    with pytest.raises(ValueError, match="time_sampler"):
        make_time_sampler("cosh")


def _toy(seed=0):
    torch.manual_seed(seed)
    model = VelocityMLP(2, hidden=16, depth=2).double()
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(32, 2, generator=gen, dtype=torch.float64)
    x1 = torch.randn(32, 2, generator=gen, dtype=torch.float64) + 3
    t = torch.rand(32, generator=gen, dtype=torch.float64)
    return model, x0, x1, t


def test_normalized_loss_is_the_gradient_of_the_mean_log_loss():
    """∇ mean ℓ/(sg[ℓ] + δ) = ∇ mean log(ℓ + δ) (autograd on both), and the value is
    mean ℓ/(ℓ + δ)."""
    model, x0, x1, t = _toy()
    delta = 1e-3
    loss = weighted_flow_matching_loss(model, x0, x1, t, weighting="normalized", delta=delta)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    per_pair = per_pair_flow_matching_loss(model, x0, x1, t)
    reference = torch.log(per_pair + delta).mean()
    ref_grads = torch.autograd.grad(reference, list(model.parameters()))
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        ell = per_pair_flow_matching_loss(model, x0, x1, t)
    assert loss.item() == pytest.approx((ell / (ell + delta)).mean().item(), rel=1e-12)


def test_unweighted_loss_is_the_flow_matching_loss():
    model, x0, x1, t = _toy(1)
    a = weighted_flow_matching_loss(model, x0, x1, t)
    assert a.item() == pytest.approx(flow_matching_loss(model, x0, x1, t).item(), rel=1e-12)
    with pytest.raises(ValueError, match="weighting"):
        weighted_flow_matching_loss(model, x0, x1, t, weighting="edm")
    with pytest.raises(ValueError, match="delta"):
        normalize_loss(torch.ones(3), delta=0.0)


def test_train_flow_options_change_only_what_they_toggle():
    source, target = Sampler("eight_gaussians"), Sampler("moons")
    run = lambda **kw: train_flow(  # noqa: E731
        VelocityMLP(2, hidden=16, depth=2), source, target, steps=20, batch_size=32, seed=0, **kw)
    torch.manual_seed(0)
    plain = run()
    torch.manual_seed(0)
    uniform = run(time_sampler="uniform")
    torch.testing.assert_close(plain.losses, uniform.losses, rtol=0, atol=0)
    torch.manual_seed(0)
    normalized = run(loss_weighting="normalized")
    assert 0 < normalized.losses.max() <= 1.0  # mean ℓ/(ℓ + δ) < 1
    torch.manual_seed(0)
    noisy = run(time_sampler="noise")
    assert not torch.equal(noisy.losses, plain.losses)
    with pytest.raises(ValueError, match="loss_weighting"):
        run(loss_weighting="l1")


def test_train_on_pairs_learns_a_constant_shift():
    """Pairs x₁ = x₀ + c: the optimal field is v ≡ c, and one Euler step is exact."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(1024, 2, generator=gen)
    shift = torch.tensor([2.0, -1.0])
    for weighting in ("none", "normalized"):
        torch.manual_seed(0)
        result = train_on_pairs(VelocityMLP(2, hidden=32, depth=2), x0, x0 + shift, steps=600,
                                batch_size=128, lr=3e-3, loss_weighting=weighting,
                                time_sampler="noise")
        test = torch.randn(256, 2, generator=gen)
        moved = result.sample(test, nfe=1)
        assert (moved - test - shift).norm(dim=1).mean() < 0.1, weighting
        assert result.coupling == "fixed pairs" and result.coupling_size == 1024


@pytest.mark.parametrize(("x0", "x1", "kwargs", "name"), [
    (torch.zeros(8, 2), torch.zeros(8, 3), {}, "same shape"),
    (torch.zeros(8, 2), torch.zeros(8, 2), {"batch_size": 16}, "batch_size"),
    (torch.full((8, 2), math.nan), torch.zeros(8, 2), {}, "x0"),
    (torch.zeros(8, 2), torch.zeros(8, 2), {"loss_weighting": "x"}, "loss_weighting"),
    (torch.zeros(8, 2), torch.zeros(8, 2), {"ema": 1.0}, "ema"),
])
def test_train_on_pairs_rejects_bad_input(x0, x1, kwargs, name):
    kwargs = {"batch_size": 4, "steps": 2, **kwargs}
    with pytest.raises(ValueError, match=name):
        train_on_pairs(VelocityMLP(2, hidden=8, depth=1), x0, x1, **kwargs)
