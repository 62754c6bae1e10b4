"""The Bloop explorer without a browser: its state is the toy's own numbers."""

import math

import pytest

from otkit.bloop.study import main_at_aux, quadratic_toy, train_quadratic
from widgets import BloopExplorer, compute_bloop
from widgets.bloop import BASELINES, EPOCHS, LAMS, RHOS, N, P


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_the_point_is_the_studys_run():
    state = compute_bloop(1.0, 0.01)
    toy = quadratic_toy(P, N, seed=0)
    theta = train_quadratic(toy, "bloop", 1.0, 0.01, epochs=EPOCHS, seed=0)
    assert state.run.main == pytest.approx(toy.main_loss(theta), rel=1e-12)
    assert state.run.aux == pytest.approx(toy.aux_loss(theta), rel=1e-12)
    mixed = [(r.aux, r.main) for r in state.fronts["mixed"]]
    assert state.mixed_at_equal_aux == pytest.approx(main_at_aux(mixed, state.run.aux))
    assert [r.lam for r in state.front] == list(LAMS)
    assert set(state.fronts) == set(BASELINES)
    assert all(state.baselines_now[b].lam == 1.0 and state.baselines_now[b].rho == 1.0
               for b in BASELINES)


def test_the_ema_is_what_moves_bloop_off_the_mixed_front():
    """ρ = 0.01: Bloop's main loss is far below mixed training's at the same auxiliary loss;
    ρ = 1 (no EMA): its runs fall on mixed's front."""
    assert compute_bloop(1.0, 0.01).ratio > 10
    for lam in LAMS[1:]:
        ratio = compute_bloop(lam, 1.0).ratio
        assert math.isnan(ratio) or 0.8 < ratio < 1.25, (lam, ratio)


def test_the_explorer_draws_its_state():
    explorer = BloopExplorer(debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert (meta["lam"], meta["rho"]) == (1.0, 0.01) and meta["ratio"] > 10
    assert list(explorer.trace("now").y) == [meta["main"]]
    assert len(explorer.trace("bloop").x) == len(LAMS) == len(explorer.trace("mixed").x)
    assert len(explorer.trace("baselines_now").x) == len(BASELINES)
    explorer.set(rho=1.0)
    after = explorer.figure.layout.meta
    assert after["rho"] == 1.0 and after["main"] > 10 * meta["main"]
    explorer.set(lam=10.0)
    assert explorer.figure.layout.meta["aux"] < after["aux"]
    assert 'data-value="10.0"' in explorer.stats.value
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"lam": 0.5}, ValueError, "lam"), ({"rho": 0.05}, ValueError, "rho"),
    ({"lam": True}, TypeError, "lam"), ({"seed": "0"}, TypeError, "seed"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_bloop(**kwargs)
    with pytest.raises(error, match=name):
        BloopExplorer(**kwargs)


def test_the_sliders_offer_the_grids():
    explorer = BloopExplorer(debounce_ms=0)
    assert [v for _, v in explorer.controls["lam"].options] == list(LAMS)
    assert [v for _, v in explorer.controls["rho"].options] == list(RHOS)
