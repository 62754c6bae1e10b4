"""Tests of otkit.steering.images: steering a flow model of the 8×8 digits.

One tiny task (a 300-step flow, a 3-epoch classifier: a few seconds) is built once per module;
nothing is cached on disk.
"""

from __future__ import annotations

import pytest
import torch

from otkit.flows import integrate
from otkit.steering import Intervention, fit_act
from otkit.steering.images import (
    MODULES,
    DigitSteeringTask,
    SteerableVelocityNet,
    digit_steering_task,
    ink,
)

CLASS = 3  # drawn by about 1 in 10 samples of the tiny flow: room to go up and down


@pytest.fixture(scope="module")
def task() -> DigitSteeringTask:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield digit_steering_task(
            CLASS, "induce", steps=300, classifier_epochs=3, nfe=10, samples=200, examples=64
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def induce(task) -> Intervention:
    return fit_act(task.model, task.modules, task.source, task.target, forward=task.forward)


def test_task_shapes_and_batches(task):
    assert task.concept == CLASS and task.mode == "induce" and task.neurons == "pixels"
    assert task.noise.shape == (200, 64)
    assert len(task.source) == len(task.target) == task.nfe == 10
    for step, ((xs, ts), (xt, tt)) in enumerate(zip(task.source, task.target)):
        assert xs.shape == xt.shape == (64, 64)
        # Both sides see the sampler's times and the same noise: at t = 0 they coincide.
        assert torch.equal(ts, tt) and torch.all(ts == step / 10)
    assert torch.equal(task.source[0][0], task.target[0][0])
    x, t = task.source[3]
    assert task.forward(task.model, (x, t)).shape == (64, 64)


def test_steerable_net_computes_the_flow_exactly(task, eager_one_thread):
    x, t = task.source[5]
    assert torch.equal(task.model(x, t), task.model.net(x, t))
    with pytest.raises(TypeError, match="net"):
        SteerableVelocityNet(torch.nn.Linear(2, 2))


def test_samples_are_reproducible_images(task, eager_one_thread):
    a = task.samples(None, 0.0)
    assert a.shape == (200, 8, 8) and torch.isfinite(a).all()
    assert torch.equal(a, task.samples(None, 1.0))  # no intervention: the strength is moot
    assert torch.equal(a, task.samples(None))
    expected = integrate(task.model.net, task.noise, nfe=task.nfe).reshape(-1, 8, 8)
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-6)
    # A smaller batch may round differently in the conv kernels: equal to float precision.
    torch.testing.assert_close(task.samples(None, 0.0, count=7), a[:7], rtol=0, atol=1e-5)


def test_strength_zero_is_no_intervention_bit_for_bit(task, induce, eager_one_thread):
    plain = task.samples(None, 0.0)
    assert torch.equal(task.samples(induce, 0.0), plain)
    assert not torch.equal(task.samples(induce, 0.5), plain)


def test_inducing_and_removing_a_class(task, induce, eager_one_thread):
    rows = task.evaluate(induce, [0.0, 1.0])
    assert [r["strength"] for r in rows] == [0.0, 1.0]
    assert set(rows[0]) == {"strength", "concept_rate", "confident_rate", "digit_share", "frechet",
                            "mix_frechet", "confidence", "ink"}
    base, steered = rows[0]["concept_rate"], rows[1]["concept_rate"]
    assert base > 0.05 and steered > base + 0.1 and steered > 2 * base
    assert all(r["frechet"] > 0 for r in rows)

    remover = task.with_concept(CLASS, "remove")
    removal = fit_act(
        remover.model, remover.modules, remover.source, remover.target,
        method="mean_shift", forward=remover.forward,
    )
    rates = [r["concept_rate"] for r in remover.evaluate(removal, [0.0, 1.0])]
    assert rates[0] == base  # same flow, same noise, same concept
    assert rates[1] < 0.5 * rates[0]


def test_channel_neurons_pool_over_positions(task):
    channels = task.with_concept(CLASS, neurons="channels")
    assert channels.modules == MODULES["channels"]
    iv = fit_act(channels.model, channels.modules, channels.source, channels.target,
                 method="mean_shift", forward=channels.forward)
    assert iv.modules == [f"net.blocks.{i}" for i in range(4)]
    assert all(m.dim == 16 for m in iv.maps.values())
    pixels = fit_act(task.model, task.modules, task.source[:2], task.target[:2],
                     method="mean_shift", forward=task.forward)
    assert all(m.dim == 16 * 64 for m in pixels.maps.values())


def test_ink_and_style_split(task):
    assert torch.equal(ink(torch.full((2, 64), -1.0)), torch.zeros(2))
    assert torch.equal(ink(torch.full((1, 8, 8), 3.0)), torch.ones(1))  # clipped at 1
    x, labels = task._train
    bounds = task._thresholds  # [10, 2]: thin below, thick above, per class
    thick, thin = task.with_concept("thick"), task.with_concept("thin")
    # Per class, a third of the digits (by ink, brute force) is thick and a third thin.
    for c in range(10):
        amount = ink(x[labels == c]).double()
        assert bounds[c, 0] <= bounds[c, 1]
        assert abs(float((amount > bounds[c, 1]).double().mean()) - 1 / 3) < 0.03
        assert abs(float((amount < bounds[c, 0]).double().mean()) - 1 / 3) < 0.03
    # Target (with the style) is inkier than source for "thick", and the reverse for "thin".
    last = -1  # t close to 1: the interpolants are nearly the digits
    assert ink(thick.target[last][0]).mean() > ink(thick.source[last][0]).mean()
    assert ink(thin.target[last][0]).mean() < ink(thin.source[last][0]).mean()
    assert thick.source[0][0].shape[0] == 64


def test_bad_arguments_raise(task, induce):
    with pytest.raises(ValueError, match="concept"):
        digit_steering_task(10)
    with pytest.raises(TypeError, match="concept"):
        digit_steering_task(True)
    with pytest.raises(ValueError, match="concept"):
        task.with_concept("bold")
    with pytest.raises(ValueError, match="mode"):
        digit_steering_task(3, "add")
    with pytest.raises(ValueError, match="neurons"):
        digit_steering_task(3, neurons="tokens")
    with pytest.raises(ValueError, match="samples"):
        digit_steering_task(3, samples=1)
    with pytest.raises(TypeError, match="quick"):
        digit_steering_task(3, quick="yes")
    with pytest.raises(ValueError, match="strength"):
        task.samples(induce, 1.5)
    with pytest.raises(TypeError, match="intervention"):
        task.samples("linear_act", 1.0)
    with pytest.raises(ValueError, match="count"):
        task.samples(None, 0.0, count=0)
    with pytest.raises(ValueError, match="strengths"):
        task.evaluate(induce, [])
    with pytest.raises(ValueError, match="strengths"):
        task.evaluate(induce, 0.5)
    with pytest.raises(ValueError, match="strengths"):
        task.evaluate(induce, [0.0, 2.0])
    with pytest.raises(ValueError, match="x"):
        task.model(torch.zeros(3, 63), 0.5)
