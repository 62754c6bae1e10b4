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


def test_the_now_marker_stays_on_the_axes_and_clear_of_the_legend():
    """The default λ = 0 puts the marker at the top right of the trade-off panel (every
    coordinate moved, the largest error): inside the error axis' range, and away from the
    legend, which stands in the lower right corner, where the rising curves never go."""
    explorer = ElasticExplorer(debounce_ms=0)
    layout = explorer.figure.layout
    assert (layout.legend.yanchor, layout.legend.y, layout.legend.xanchor) == ("bottom", 0, "right")
    for lam in LAMS:
        for regularizer in ("l1", "stvs"):
            explorer.set(lam=lam, regularizer=regularizer)
            (x,), (y,) = explorer.trace("now").x, explorer.trace("now").y
            (x0, x1), (y0, y1) = layout.xaxis2.range, layout.yaxis2.range
            fx, fy = (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
            assert 0.03 < fx < 0.97 and 0.03 < fy < 0.97, (lam, regularizer, fx, fy)
            assert not (fx > 0.6 and fy < 0.3), "the marker is under the legend"


def test_the_heatmap_sends_no_nan():
    """JSON has no NaN: the blank row between δ and the points is None (a gap)."""
    z = ElasticExplorer(debounce_ms=0).trace("displacements").z
    assert all(v is None for v in z[1]) and len(z[1]) == D
    assert all(isinstance(v, float) and v == v for row in z[:1] + z[2:] for v in row)


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"lam": 0.3}, ValueError, "lam"), ({"regularizer": "l2"}, ValueError, "regularizer"),
    ({"lam": True}, TypeError, "lam"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_elastic(**kwargs)
    with pytest.raises(error, match=name):
        ElasticExplorer(**kwargs)
