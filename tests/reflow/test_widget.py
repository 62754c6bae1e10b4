"""The ReFlow explorer without a browser: its state is the study's own flows, scored anew."""

import pytest
import torch

from otkit.flows import wasserstein2
from widgets import ReflowExplorer, compute_reflow
from widgets.reflow import NFES, NUM_PATHS


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_the_state_is_scored_against_the_reference():
    state = compute_reflow(1)
    assert state.w2_student == pytest.approx(wasserstein2(state.student, state.reference))
    assert state.w2_teacher == pytest.approx(wasserstein2(state.teacher, state.reference))
    assert state.paths.shape == (2, NUM_PATHS, 2)
    torch.testing.assert_close(state.paths[-1], state.student[:NUM_PATHS])
    # one Euler step: ReFlow's student is far closer to the moons than its teacher
    assert state.ratio < 0.7
    # and its paths are nearly straight
    assert state.straightness < 0.1


def test_the_explorer_draws_its_state_and_toggles():
    explorer = ReflowExplorer(debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert (meta["nfe"], meta["label"]) == (1, "baseline") and meta["ratio"] < 0.7
    assert len(explorer.trace("student").x) == len(explorer.trace("teacher").x)
    explorer.set(nfe=16)
    after = explorer.figure.layout.meta
    assert after["nfe"] == 16 and after["w2_teacher"] < meta["w2_teacher"]
    explorer.set(time=True)
    assert explorer.figure.layout.meta["label"] == "+time"
    assert 'data-value="16"' in explorer.stats.value
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"nfe": 3}, ValueError, "nfe"), ({"time": 1}, TypeError, "time"),
    ({"forward": "yes"}, TypeError, "forward"), ({"seed": "0"}, TypeError, "seed"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_reflow(**kwargs)


def test_the_slider_offers_the_nfes():
    explorer = ReflowExplorer(debounce_ms=0)
    assert [v for _, v in explorer.controls["nfe"].options] == list(NFES)
