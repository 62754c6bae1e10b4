"""Sinkhorn on Gaussian samples against the closed forms of otkit.gaussian.

Entropic OT between empirical measures converges to the population value at rate n^{-1/2}
(Mena and Niles-Weed 2019; Genevay et al. 2019), so errors must shrink as n grows.
"""

import pytest
import torch

import otkit
from otkit import gaussian

EPS = 0.5
D = 2


def _problem(dtype=torch.float64):
    gen = torch.Generator().manual_seed(3)
    cov0 = gaussian.random_spd(D, generator=gen, condition=4.0, dtype=dtype)
    cov1 = gaussian.random_spd(D, generator=gen, condition=4.0, dtype=dtype)
    mean0 = torch.zeros(D, dtype=dtype)
    mean1 = torch.tensor([1.0, -0.5], dtype=dtype)
    return mean0, cov0, mean1, cov1


def _moment_matched(mean, cov, n, gen):
    """Samples whose empirical mean and covariance equal ``mean`` and ``cov`` exactly, so
    that what remains of the sampling error is the sample's departure from Gaussianity."""
    z = gaussian.sample_gaussian(torch.zeros_like(mean), torch.eye(len(mean), dtype=mean.dtype), n, gen)
    z = z - z.mean(0)
    whiten = gaussian.inv_sqrtm_psd(z.T @ z / n)
    return mean + z @ whiten @ gaussian.sqrtm_psd(cov)


def _errors(n: int, seeds=(0, 1, 2)):
    mean0, cov0, mean1, cov1 = _problem()
    truth = gaussian.entropic_ot(mean0, cov0, mean1, cov1, EPS)
    map_true = truth.map()
    obj, cross, maps = [], [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(seed)
        x = _moment_matched(mean0, cov0, n, gen)
        y = _moment_matched(mean1, cov1, n, gen)
        res = otkit.sinkhorn(x, y, epsilon=EPS, tol=1e-6)
        assert res.converged
        obj.append(abs(res.primal_objective().item() - truth.objective.item()))
        plan = res.coupling()
        cross_cov = (x - mean0).T @ plan @ (y - mean1)
        cross.append((cross_cov - truth.cross_covariance).abs().max().item())
        held_out = gaussian.sample_gaussian(mean0, cov0, 500, gen)
        maps.append(((res.transport(held_out) - map_true(held_out)) ** 2).sum(1).mean().item())
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    return mean(obj), mean(cross), mean(maps), truth


def test_entropic_ot_of_samples_approaches_the_gaussian_closed_form():
    small = _errors(100)
    large = _errors(2500)
    truth = large[3]
    # every error shrinks with n...
    assert large[0] < small[0]
    assert large[1] < small[1]
    assert large[2] < small[2]
    # ...and is small at n = 2500 (measured: 1.3e-4, 6.9e-4, 1.2e-3; about 1/n)
    assert large[0] < 1e-3 * truth.objective.item()
    assert large[1] < 5e-3
    assert large[2] < 5e-3


def test_entropic_map_tends_to_the_monge_map_at_small_epsilon():
    mean0, cov0, mean1, cov1 = _problem()
    monge = gaussian.monge_map(mean0, cov0, mean1, cov1)
    gen = torch.Generator().manual_seed(7)
    x = gaussian.sample_gaussian(mean0, cov0, 2000, gen)
    y = gaussian.sample_gaussian(mean1, cov1, 2000, gen)
    held_out = gaussian.sample_gaussian(mean0, cov0, 500, gen) * 0.7  # stay inside the support
    errs = []
    for rel in (0.3, 0.01):
        res = otkit.sinkhorn(x, y, relative_epsilon=rel, tol=1e-4, max_iter=5000)
        errs.append(((res.transport(held_out) - monge(held_out)) ** 2).sum(1).mean().item())
    assert errs[1] < errs[0]
    assert errs[1] < 0.03


@pytest.mark.parametrize("backend", ["torch", "pot", "geomloss"])
def test_every_backend_matches_the_closed_form_cost(backend):
    mean0, cov0, mean1, cov1 = _problem()
    truth = gaussian.entropic_ot(mean0, cov0, mean1, cov1, EPS)
    gen = torch.Generator().manual_seed(11)
    x = gaussian.sample_gaussian(mean0, cov0, 1500, gen)
    y = gaussian.sample_gaussian(mean1, cov1, 1500, gen)
    res = otkit.sinkhorn(x, y, epsilon=EPS, tol=1e-6, backend=backend)
    assert abs(res.primal_objective().item() - truth.objective.item()) < 0.05 * truth.objective.item()
