"""Least-squares constants, enumeration and SINDy on problems with a known answer."""

import math

import numpy as np
import pytest
import torch

from otkit.odes.fitting import enumerate_fit, fit_constants, r2_score, select, simulate
from otkit.odes.generator import add_noise, rk4, sample_times, vector_field
from otkit.odes.sindy import finite_difference, sindy, stlsq


def _solve(terms: dict, y0: float, t: torch.Tensor) -> torch.Tensor:
    c = torch.zeros(1, 7, dtype=torch.float64)
    for k, v in terms.items():
        c[0, k] = v
    return rk4(vector_field(c), torch.tensor([y0], dtype=torch.float64), t[None], 4)[0]


def test_sindy_recovers_the_cubic_from_clean_data():
    t = torch.linspace(0, 5, 251, dtype=torch.float64)
    y = _solve({1: 1.0, 3: -1.0}, 0.1, t)  # ẏ = y − y³
    fit = sindy(t, y)
    assert fit.skeleton == (1, 3)
    assert np.allclose(fit.constants[[1, 3]], [1.0, -1.0], atol=1e-3)


def test_finite_differences_are_second_order_on_irregular_grids():
    t = sample_times(1, 400, 2.0, 0.5, generator=0)[0]
    err = np.abs(finite_difference(t, torch.sin(t)) - np.cos(t.numpy()))
    assert err.max() < 1e-3


def test_stlsq_thresholds_a_known_sparse_vector():
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(200, 5))
    xi = np.array([0.0, 2.0, 0.0, -0.5, 0.0])
    found = stlsq(theta, theta @ xi + 0.001 * rng.normal(size=200), threshold=0.1)
    assert np.array_equal(found != 0, xi != 0)
    with pytest.raises(ValueError, match="theta"):
        stlsq(theta, np.zeros(3))


def test_enumeration_finds_a_planted_skeleton_and_its_constants():
    t = torch.linspace(0, 4, 40, dtype=torch.float64)
    y = _solve({0: 0.5, 4: -1.2, 5: 0.8}, -1.0, t)
    rough = enumerate_fit(t, y)
    fit = enumerate_fit(t, y, refine_steps=6)
    assert fit.skeleton == rough.skeleton == (0, 4, 5) and fit.candidates == 63
    # the trapezoid rule's bias, then removed by Levenberg–Marquardt on the trajectory
    assert np.allclose(rough.constants[[0, 4, 5]], [0.5, -1.2, 0.8], atol=0.05)
    assert np.allclose(fit.constants[[0, 4, 5]], [0.5, -1.2, 0.8], atol=1e-4)
    assert math.isclose(fit.y0, -1.0, abs_tol=1e-4)
    # on the observed interval the refitted trajectory is the truth
    traj = simulate(fit.constants, torch.tensor([fit.y0]), t)[0]
    assert r2_score(y, traj) > 0.999


def test_fit_constants_is_numpys_lstsq_of_the_trapezoid_integrals():
    """y_i = y0 + Σ c_k Φ_k(t_i), Φ by the trapezoid rule written out here, solved by numpy."""
    t = sample_times(1, 30, 2.0, 1.0, generator=1)[0]
    y = add_noise(_solve({2: -0.8, 6: 1.1}, 1.2, t)[None], 0.02, generator=0)[0]
    yn, tn = y.numpy(), t.numpy()
    phi = {2: yn**2, 6: yn / (1 + yn**2)}
    cols = [np.concatenate([[0.0], np.cumsum(np.diff(tn) * (p[1:] + p[:-1]) / 2)])
            for p in phi.values()]
    ref = np.linalg.lstsq(np.column_stack([np.ones(30)] + cols), yn, rcond=None)[0]
    c, y0 = fit_constants(t, y, [(2, 6)])
    assert np.allclose([float(y0[0]), float(c[0, 2]), float(c[0, 6])], ref, atol=1e-6)
    assert float(c[0, [0, 1, 3, 4, 5]].abs().max()) == 0.0


def test_select_prefers_the_truth_over_a_superset_under_noise():
    t = torch.linspace(0, 4, 50, dtype=torch.float64)
    y = add_noise(_solve({1: 1.0, 2: -1.0}, 0.1, t)[None], 0.01, generator=0)[0]
    fit = select(t, y, [(1, 2), (0, 1, 2), (1, 2, 5)])
    assert fit.skeleton == (1, 2)


@pytest.mark.parametrize(("t", "y", "match"), [
    ([0, 1, 2], [0, 1, 2], "at least 4"), ([0, 1, 1, 2], [0, 1, 2, 3], "increasing"),
    ([0, 1, 2, 3], [0, 1, float("nan"), 3], "finite"), ([0, 1, 2, 3], [0, 1, 2], "same length"),
])
def test_bad_trajectories_raise(t, y, match):
    with pytest.raises(ValueError, match=match):
        enumerate_fit(t, y)
    with pytest.raises(ValueError, match=match):
        sindy(t, y)


def test_r2_and_bad_arguments():
    a = torch.tensor([0.0, 1.0, 2.0])
    assert r2_score(a, a) == 1.0 and r2_score(a, torch.ones(3)) == 0.0
    assert r2_score(a, torch.tensor([0.0, float("nan"), 1.0])) == -math.inf
    with pytest.raises(ValueError, match="constant"):
        r2_score(torch.ones(3), a)
    with pytest.raises(ValueError, match="max_terms"):
        enumerate_fit([0, 1, 2, 3], [0, 1, 2, 3], max_terms=4)
    with pytest.raises(ValueError, match="skeletons"):
        select([0, 1, 2, 3], [0, 1, 2, 3], [(0, 9)])
