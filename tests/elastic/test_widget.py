"""The elastic explorer without a browser: its state is the maps' own numbers."""

import pytest
import torch

import otkit
from widgets import ElasticExplorer, compute_elastic
from widgets.elastic import LAMS, SHOWN, D, _problem


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_lambda_zero_is_the_squared_euclidean_map():
    state = compute_elastic("l1", 0.0)
    x, y, x_test, _ = _problem(0)
    expected = otkit.sinkhorn(x, y, relative_epsilon=0.5).transport(x_test[:SHOWN]) - x_test[:SHOWN]
    assert torch.allclose(state.fit.displacements, expected, atol=1e-10)
    assert state.fit.moved == 1.0
    assert compute_elastic("stvs", 0.0).fit is state.fit  # one squared-Euclidean fit


def test_larger_lambda_gives_sparser_displacements_and_the_curves_follow():
    states = [compute_elastic("l1", lam) for lam in (0.0, 1.0, 2.0)]
    zeros = [int((s.fit.displacements == 0).sum()) for s in states]
    assert zeros[0] < zeros[1] < zeros[2]
    curve = states[-1].curves["l1"]
    assert [f.lam for f in curve] == list(LAMS)
    assert [f.moved for f in curve] == sorted((f.moved for f in curve), reverse=True)
    assert curve[-1].error < curve[0].error


def test_the_explorer_draws_its_state():
    explorer = ElasticExplorer(debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert meta["lam"] == 0.0 and meta["moved"] == 1.0
    explorer.set(lam=2.0, regularizer="stvs")
    meta = explorer.figure.layout.meta
    assert meta["regularizer"] == "stvs" and meta["lam"] == 2.0 and meta["moved"] < 0.5
    assert len(explorer.trace("displacements").z[0]) == D
    assert 'data-value="stvs"' in explorer.stats.value
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"lam": 0.3}, ValueError, "lam"), ({"regularizer": "l2"}, ValueError, "regularizer"),
    ({"lam": True}, TypeError, "lam"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_elastic(**kwargs)
    with pytest.raises(error, match=name):
        ElasticExplorer(**kwargs)
