"""The Nectar explorer without a browser: its state is the study's own numbers."""

import pytest

from otkit.nectar.study import evaluate, fit_context
from widgets.nectar import (
    STEPS,
    WIDTHS,
    NectarExplorer,
    _setup,
    compute_nectar,
    tiny_model,
)


@pytest.fixture(autouse=True)
def _one_thread(eager_one_thread):
    yield


def test_the_state_is_the_studys_evaluation():
    state = compute_nectar((4, 2))
    model, spec = tiny_model(0)
    setup = _setup(model, spec, 64, 0)
    want = evaluate(model, setup, fit_context(setup, [4, 2], steps=STEPS, seed=0).summaries())
    assert state.result["accuracy_gap"] == pytest.approx(want["accuracy_gap"])
    assert state.result["attn_1"] == pytest.approx(want["attn_1"], rel=1e-5)
    assert len(state.front) == len(WIDTHS)


def test_starving_the_second_layer_opens_a_gap():
    explorer = NectarExplorer(debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert meta["widths"] == [4, 4] and meta["accuracy_gap"] < 0.05
    assert list(explorer.trace("now").y) == [meta["accuracy_gap"]]
    assert len(explorer.trace("uniform").x) == len(WIDTHS)
    explorer.set(width_1=1)
    after = explorer.figure.layout.meta
    assert after["widths"] == [4, 1] and after["accuracy_gap"] > 0.1
    assert after["attn"][1] > 3 * meta["attn"][1]
    assert 'data-value="4,1"' in explorer.stats.value
    assert explorer.error is None


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"widths": (3, 4)}, ValueError, "widths"), ({"widths": (4,)}, ValueError, "widths"),
    ({"seed": "0"}, TypeError, "seed"), ({"trained": (1, 2)}, TypeError, "trained"),
])
def test_bad_arguments_raise(kwargs, error, name):
    with pytest.raises(error, match=name):
        compute_nectar(**kwargs)
