"""The ODE explorer without a browser: its state is otkit.odes' own predictions."""

import numpy as np
import pytest
import torch

from otkit.odes.generator import rk4, vector_field
from otkit.odes.model import ODEModelConfig, train_model
from otkit.odes.sindy import sindy
from widgets.odes import EQUATIONS, NOISES, Y0S, ODEExplorer, compute_odes

SMALL = ODEModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, d_mlp=64)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


@pytest.fixture(scope="module")
def trained():
    return train_model(SMALL, n_train=200, steps=10, batch_size=16, seed=0)


def test_every_listed_trajectory_moves_and_stays_bounded():
    t = torch.linspace(0, 4, 64, dtype=torch.float64)
    for name, terms in EQUATIONS.items():
        c = torch.zeros(len(Y0S), 7, dtype=torch.float64)
        for k, v in terms.items():
            c[:, k] = v
        y = rk4(vector_field(c), torch.tensor(Y0S, dtype=torch.float64), t.expand(len(Y0S), -1), 8)
        assert bool(torch.isfinite(y).all()) and float(y.abs().max()) < 10, name
        assert float(y.std(1).min()) > 0.05, name


def test_the_state_is_the_methods_own_fit(trained):
    state = compute_odes("bistable: y - y^3", 0.5, 0.05, trained=trained)
    again = sindy(torch.tensor(state.t), torch.tensor(state.y))
    np.testing.assert_allclose(state.fits["sindy"].constants, again.constants)
    assert state.r2["enumeration"] > 0.9
    assert state.true_formula == "-y**3 + y"
    # noise moves the samples off the truth, not the truth
    clean = compute_odes("bistable: y - y^3", 0.5, 0.0, trained=trained)
    np.testing.assert_allclose(clean.truth, state.truth)
    assert np.abs(clean.y - state.y).max() > 0.01
    assert clean.r2["sindy"] > 0.99 > 0.9 > state.r2["sindy"]
    assert clean.correct["enumeration"] and clean.formulas["enumeration"] == "-y**3 + y"


def test_the_explorer_draws_and_moves(trained):
    explorer = ODEExplorer(trained=trained, debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert (meta["equation"], meta["y0"], meta["noise"]) == ("bistable: y - y^3", 0.5, 0.0)
    assert meta["enumeration_correct"] and meta["enumeration"] == "-y**3 + y"
    assert len(explorer.trace("samples").x) == 32 and len(explorer.trace("truth").x) == 120
    explorer.set(noise=0.05)
    after = explorer.figure.layout.meta
    assert after["noise"] == 0.05 and after["sindy_r2"] < 0.9
    assert 'data-value="0.05"' in explorer.stats.value
    explorer.set(equation="decay: -y", y0=2.0)
    assert explorer.figure.layout.meta["truth"] == "-y"
    assert explorer.error is None
    assert [v for _, v in explorer.controls["noise"].options] == list(NOISES)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"equation": "chaos"}, ValueError, "equation"), ({"y0": 0.3}, ValueError, "y0"),
    ({"noise": 0.5}, ValueError, "noise"), ({"sampling": "random"}, ValueError, "sampling"),
    ({"seed": "0"}, TypeError, "seed"), ({"trained": "model"}, TypeError, "trained"),
])
def test_bad_arguments_raise(kwargs, error, name, trained):
    args = {"trained": trained} | kwargs
    with pytest.raises(error, match=name):
        compute_odes(**args)
    with pytest.raises(error, match=name):
        ODEExplorer(**args)
