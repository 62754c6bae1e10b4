"""Batched RK4 against closed forms and scipy; sampling, noise and rejection."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from otkit.odes.generator import add_noise, generate, rk4, sample_times, vector_field
from otkit.odes.grammar import features


def _coef(**terms):
    c = torch.zeros(1, 7, dtype=torch.float64)
    for k, v in terms.items():
        c[0, int(k[1:])] = v
    return c


def test_rk4_decay_and_logistic_match_closed_forms():
    t = torch.linspace(0, 3, 31, dtype=torch.float64)[None].repeat(2, 1)
    c = torch.cat([_coef(k1=-1.0), _coef(k1=1.0, k2=-1.0)])  # ẏ = −y; ẏ = y − y²
    y0 = torch.tensor([1.5, 0.1], dtype=torch.float64)
    y = rk4(vector_field(c), y0, t, substeps=4)
    decay = 1.5 * torch.exp(-t[0])
    logistic = 1 / (1 + (1 / 0.1 - 1) * torch.exp(-t[1]))
    assert torch.allclose(y[0], decay, atol=1e-7)
    assert torch.allclose(y[1], logistic, atol=1e-7)
    # fourth order: halving the step divides the error by about 16
    e1 = (rk4(vector_field(c[:1]), y0[:1], t[:1, ::3], 1)[0] - decay[::3]).abs().max()
    e2 = (rk4(vector_field(c[:1]), y0[:1], t[:1, ::3], 2)[0] - decay[::3]).abs().max()
    assert 12 < float(e1 / e2) < 20


def test_rk4_matches_scipy_on_irregular_times():
    gen = torch.Generator().manual_seed(3)
    t = sample_times(3, 25, 4.0, 1.0, generator=gen)
    c = torch.cat([_coef(k4=1.3, k5=-0.4), _coef(k0=0.5, k6=-2.0, k3=-0.3),
                   _coef(k2=-0.8, k1=0.2)])
    y0 = torch.tensor([0.3, -1.0, 1.2], dtype=torch.float64)
    y = rk4(vector_field(c), y0, t, substeps=8)
    for b in range(3):
        cb = c[b].numpy()
        sol = solve_ivp(lambda _, v: features(torch.tensor(v)).numpy() @ cb, (0, 4.0),
                        [float(y0[b])], t_eval=t[b].numpy(), rtol=1e-10, atol=1e-12)
        assert np.allclose(y[b].numpy(), sol.y[0], atol=1e-6)


def test_sample_times_regular_and_irregular():
    regular = sample_times(2, 5, 2.0, 0.0, generator=0)
    assert torch.allclose(regular, torch.linspace(0, 2, 5, dtype=torch.float64).expand(2, 5))
    irregular = sample_times(50, 20, 2.0, 1.0, generator=0)
    gaps = irregular.diff(dim=1)
    assert bool((gaps >= 0).all()) and bool((irregular[:, [0, -1]] == torch.tensor([0.0, 2.0],
                                                                      dtype=torch.float64)).all())
    assert float(gaps.std()) > 0.05  # not a grid


def test_generate_rejects_blowups_and_flat_solutions_and_adds_noise():
    batch = generate(200, generator=1, noise=0.05, n_points=20)
    assert len(batch) == 200 and batch.y.shape == (200, 20)
    assert bool((batch.y_clean.abs() <= 10).all()) and bool(torch.isfinite(batch.y_clean).all())
    assert bool((batch.y_clean.std(1) >= 0.05).all())
    rms = batch.y_clean.pow(2).mean(1).sqrt()
    rel = ((batch.y - batch.y_clean) / rms[:, None]).std()
    assert 0.045 < float(rel) < 0.055
    # the solutions solve their own equations (RK4 again, finer)
    again = rk4(vector_field(batch.coefficients), batch.y0, batch.t, substeps=16)
    assert torch.allclose(again, batch.y_clean, atol=1e-4)
    # every term count appears; constants sit on the skeleton only
    assert {len(s) for s in batch.skeletons} == {1, 2, 3}
    for s, c in zip(batch.skeletons, batch.coefficients):
        assert set(torch.nonzero(c).flatten().tolist()) == set(s)


def test_a_tight_blowup_bound_rejects_more():
    with pytest.raises(RuntimeError, match="blowup"):
        generate(10, generator=0, blowup=0.01, max_tries=2)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"n": 0}, ValueError, "n"), ({"noise": -0.1}, ValueError, "noise"),
    ({"irregularity": 1.5}, ValueError, "irregularity"), ({"t_max": 0.0}, ValueError, "t_max"),
    ({"n_points": 1}, ValueError, "n_points"), ({"max_terms": 4}, ValueError, "max_terms"),
    ({"coef_range": (0.0, 1.0)}, ValueError, "coef_range"),
    ({"irregularity": "x"}, TypeError, "irregularity"),
])
def test_bad_generator_arguments_raise(kwargs, error, name):
    args = {"n": 4, "generator": 0} | kwargs
    with pytest.raises(error, match=name):
        generate(**args)


def test_bad_rk4_and_noise_inputs_raise():
    with pytest.raises(ValueError, match="t must be non-decreasing"):
        rk4(lambda y: -y, torch.ones(1), torch.tensor([[0.0, 1.0, 0.5]]))
    with pytest.raises(ValueError, match="y0"):
        rk4(lambda y: -y, torch.ones(1, 1), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="noise"):
        add_noise(torch.ones(2, 3), -1.0)
    assert math.isclose(float(add_noise(torch.ones(2, 3), 0.0).sum()), 6.0)
