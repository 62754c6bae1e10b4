"""The AIM explorer without a browser: its state is the study's own numbers."""

import pytest
import torch

from otkit.aim.model import patchify
from otkit.aim.study import reconstruct
from widgets.aim import (
    FIT_CACHE,
    MARKS,
    PREFIX,
    STEPS,
    WIDTHS,
    AIMExplorer,
    compute_aim,
)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_the_state_is_the_runs_checkpoint():
    state = compute_aim(32, STEPS, "attentive")
    run, _ = FIT_CACHE.get((32, 0), lambda: None)
    ckpt = run.checkpoints[-1]
    assert (state.loss, state.accuracy) == (ckpt.loss, ckpt.attentive)
    assert [p[0] for p in state.points[16]] == list(MARKS)
    assert set(state.points) == set(WIDTHS)
    from widgets.aim import _data
    x = _data(0)[1].patches[: state.originals.shape[0]]
    rec = reconstruct(run.model(), x, PREFIX)
    assert torch.allclose(torch.as_tensor(state.predictions), rec[:, 0])
    assert torch.equal(patchify(torch.as_tensor(state.originals)[:, None], 2), x)
    # training lowers the held-out loss, and the wider trunk ends lower
    assert state.points[32][-1][1] < state.points[32][0][1]
    assert state.points[32][-1][1] < state.points[16][-1][1]


def test_the_explorer_draws_its_state():
    explorer = AIMExplorer(debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert (meta["width"], meta["step"], meta["probe"]) == (32, STEPS, "attentive")
    assert list(explorer.trace("now").x) == [meta["loss"]]
    assert len(explorer.trace("w16").x) == len(MARKS) == len(explorer.trace("w32").y)
    explorer.set(width=16)
    assert explorer.figure.layout.meta["loss"] > meta["loss"]
    explorer.set(step=MARKS[0])
    assert explorer.figure.layout.meta["step"] == MARKS[0]
    explorer.set(probe="linear")
    assert explorer.figure.layout.meta["probe"] == "linear"
    assert f'data-value="{MARKS[0]}"' in explorer.stats.value
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"width": 64}, ValueError, "width"), ({"step": 7}, ValueError, "step"),
    ({"probe": "knn"}, ValueError, "probe"), ({"seed": "0"}, TypeError, "seed"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_aim(**kwargs)
    with pytest.raises(error, match=name):
        AIMExplorer(**kwargs)
