"""The steering explorer without a browser: its state is the task's own numbers."""

import gc

import pytest
import torch

from otkit.steering import fit_act
from otkit.steering.text import text_steering_task
from widgets import SteeringExplorer, compute_steering, steering
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


def test_a_task_with_a_recycled_id_gets_its_own_fit(task, monkeypatch):
    """Python gives a freed object's id to a later one: the cache was keyed by ``id(task)``,
    so a task made after another was freed got the other's fit. Here ``id`` returns the same
    number for every object, the worst case of that reuse."""
    monkeypatch.setattr(steering, "id", lambda obj: 12345, raising=False)
    FIT_CACHE.clear()
    grid = (0.0, 1.0)
    induce = compute_steering(task, "mean_shift", 1.0, strengths=grid, count=2)
    remove = task.with_mode("remove")  # source and target swapped: the opposite shift
    assert remove is not task
    removed = compute_steering(remove, "mean_shift", 1.0, strengths=grid, count=2)
    assert not removed.cached, "served the fit of another task with the same id"
    assert removed.curves is not induce.curves
    shift = removed.curves.intervention
    again = compute_steering(task, "mean_shift", 0.0, strengths=grid, count=2)
    assert again.cached and again.curves is induce.curves  # a live task keeps its own fit

    # freed, its fits are dropped; a new task (same id here) is fitted afresh
    del remove
    gc.collect()
    successor = task.with_mode("remove")
    fresh = compute_steering(successor, "mean_shift", 1.0, strengths=grid, count=2)
    assert not fresh.cached and fresh.curves.intervention is not shift
    assert len(FIT_CACHE) == 2  # the task's and the successor's: the freed task's is gone


def test_text_tasks_have_no_empty_samples_panel(task):
    """The continuations are listed under the figure: two panels, no blank third one."""
    explorer = SteeringExplorer(task, method="mean_shift", debounce_ms=0)
    fig = explorer.figure
    assert [a.text for a in fig.layout.annotations] == ["concept rate", "held-out perplexity"]
    assert "xaxis3" not in fig.layout and "digits" not in [t.name for t in fig.data]
    assert "<li>" in explorer.stats.value


def test_image_tasks_show_their_samples_in_a_third_panel(monkeypatch):
    class Digits:  # what the explorer reads of a digits task: samples as images, no tokenizer
        def samples(self, intervention, strength, *, count=8):
            return torch.full((count, 8, 8), float(strength))

    def curves(task, method, grid):
        rows = tuple({"strength": s, "concept_rate": s / 2, "frechet": 10 - s} for s in grid)
        return steering.SteeringCurves(method, None, grid, rows, "frechet", 0.0, 0.0)

    monkeypatch.setattr(steering, "_curves", curves)
    explorer = SteeringExplorer(Digits(), method="mean_shift", strength=1.0, count=5,
                                debounce_ms=0)
    assert explorer.error is None
    fig = explorer.figure
    assert [a.text for a in fig.layout.annotations] == [
        "concept rate", "Fréchet to real digits", "samples at λ = 1.0"]
    z = explorer.trace("digits").z
    assert len(z) == 17 and len(z[0]) == 35  # 5 digits in rows of 4, blank pixels between
    assert z[0][0] == 1.0 and z[8][0] is None  # gaps as None: JSON has no NaN
    assert explorer.figure.layout.meta["modality"] == "images"
