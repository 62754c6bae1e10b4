"""The steering explorer without a browser: its state is the task's own numbers."""

import pytest
import torch

from otkit.steering import fit_act
from otkit.steering.text import text_steering_task
from widgets import SteeringExplorer, compute_steering
from widgets.steering import FIT_CACHE, STRENGTHS, _mosaic


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    return text_steering_task(steps=150, n_fit=64, prompts=60, seed=0)


def test_strength_zero_shows_the_unsteered_samples(task):
    state = compute_steering(task, "mean_shift", 0.0, count=5)
    assert state.samples == task.samples(None, count=5)
    assert state.prompts == tuple(task.tokenizer.decode(task.prompts[:5]))
    assert state.row["strength"] == 0.0


def test_curves_are_the_tasks_evaluation_and_are_cached(task):
    FIT_CACHE.clear()
    first = compute_steering(task, "linear_act", 1.0)
    assert not first.cached
    iv = fit_act(task.model, task.modules, task.source, task.target, forward=task.forward,
                 pool=task.pool)
    expected = task.evaluate(iv, [0.0, 1.0])
    assert first.curves.at(0.0) == expected[0] and first.curves.at(1.0) == expected[1]
    again = compute_steering(task, "linear_act", 0.5)
    assert again.cached and again.curves is first.curves
    assert again.samples == task.samples(iv, 0.5, count=8)


def test_the_explorer_draws_the_state_and_follows_its_controls(task):
    explorer = SteeringExplorer(task, method="mean_shift", debounce_ms=0)
    meta = explorer.figure.layout.meta
    assert meta["method"] == "mean_shift" and meta["strength"] == 0.0
    assert meta["modality"] == "text" and meta["quality_name"] == "perplexity"
    assert list(explorer.trace("rate").y) == meta["rates"] and len(meta["rates"]) == len(STRENGTHS)
    before = meta["samples"]
    explorer.set(strength=1.0)
    meta = explorer.figure.layout.meta
    assert meta["strength"] == 1.0 and meta["concept_rate"] == meta["rates"][-1]
    assert meta["samples"] != before
    assert 'data-value="1.0"' in explorer.stats.value and "<li>" in explorer.stats.value
    explorer.set(method="linear_act")
    assert explorer.figure.layout.meta["method"] == "linear_act"
    assert explorer.error is None


def test_digit_mosaic_tiles_images():
    images = torch.arange(5 * 64, dtype=torch.float32).reshape(5, 8, 8)
    tiled = _mosaic(images, columns=4)
    assert tiled.shape == (17, 35)
    assert torch.equal(tiled[9:17, 0:8], images[4])
    assert torch.isnan(tiled[8]).all() and torch.isnan(tiled[9:, 9:]).all()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"method": "pca"}, "method"), ({"strength": 1.5}, "strength"),
     ({"strength": 0.25}, "strength")],
)
def test_bad_arguments_raise(task, kwargs, name):
    with pytest.raises(ValueError, match=name):
        compute_steering(task, **kwargs)
    with pytest.raises(ValueError, match=name):
        SteeringExplorer(task, **kwargs)
