"""Class-conditional velocities and classifier-free guidance (otkit.flows.guidance)."""

from __future__ import annotations

import pytest
import torch

from otkit.flows import integrate, train_flow
from otkit.flows.distributions import StandardNormal
from otkit.flows.guidance import (
    NULL_LABEL,
    GuidedVelocity,
    LabeledEmpirical,
    drop_labels,
    guided_velocity,
)
from otkit.flows.paired import train_on_pairs
from otkit.nn.velocity import VelocityConvNet, VelocityMLP


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return VelocityMLP(2, hidden=16, depth=2, num_classes=3, **kw).eval()


def test_guidance_weights_by_definition():
    model = _model()
    x, t = torch.randn(7, 2), torch.rand(7)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    with torch.no_grad():
        vc, vu = model(x, t, y), model(x, t, torch.full_like(y, NULL_LABEL))
        torch.testing.assert_close(guided_velocity(model, x, t, y, 0.0), vc)
        torch.testing.assert_close(guided_velocity(model, x, t, y, -1.0), vu)
        torch.testing.assert_close(guided_velocity(model, x, t, y, 2.0), 3 * vc - 2 * vu)
        torch.testing.assert_close(model(x, t), vu)  # labels=None is the null label


def test_unguided_field_integrates_like_the_unconditional_net():
    model = _model(1)
    x0, y = torch.randn(5, 2), torch.arange(5) % 3
    uncond = integrate(lambda x, t: model(x, t), x0, nfe=4)
    torch.testing.assert_close(integrate(GuidedVelocity(model, y, -1.0), x0, nfe=4), uncond)


def test_unconditional_nets_are_unchanged_and_refuse_labels():
    torch.manual_seed(0)
    a = VelocityConvNet(channels=4, depth=1)
    torch.manual_seed(0)
    b = VelocityConvNet(channels=4, depth=1, num_classes=10)
    x, t = torch.randn(3, 64), torch.rand(3)
    assert a.label_embed is None
    # the class table is built last: the shared weights start equal
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError, match="num_classes"):
        a(x, t, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        b(x, t, torch.full((3,), 10))
    with pytest.raises(TypeError, match="labels"):
        b(x, t, torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        b(x, t, torch.zeros(2, dtype=torch.long))


def test_drop_labels():
    y = torch.arange(4000) % 3
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(drop_labels(y, 0.0, gen), y)
    assert (drop_labels(y, 1.0, gen) == NULL_LABEL).all()
    dropped = (drop_labels(y, 0.25, gen) == NULL_LABEL).double().mean().item()
    assert abs(dropped - 0.25) < 4 * (0.25 * 0.75 / 4000) ** 0.5
    with pytest.raises(ValueError, match="label_dropout"):
        drop_labels(y, 1.5)


def test_labeled_empirical_draws_labels_with_their_points():
    data = torch.arange(10, dtype=torch.float32)[:, None].repeat(1, 2)
    law = LabeledEmpirical(data, torch.arange(10) % 4)
    x, y = law.labeled(25, torch.Generator().manual_seed(0))
    assert torch.equal(y, x[:, 0].long() % 4)
    torch.testing.assert_close(law(25, torch.Generator().manual_seed(0)), x)
    with pytest.raises(ValueError, match="labels"):
        LabeledEmpirical(data, torch.arange(9))


def test_conditional_training_separates_classes_and_guidance_sharpens():
    # Two classes at (±3, 0): the conditional flow must send label c to its own blob; the
    # unconditional one (w = -1) to both.
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(2000) % 2
    centers = torch.tensor([[-3.0, 0.0], [3.0, 0.0]])
    data = centers[labels] + 0.3 * torch.randn(2000, 2, generator=gen)
    torch.manual_seed(0)
    model = VelocityMLP(2, hidden=64, depth=2, num_classes=2)
    result = train_flow(model, StandardNormal(2), LabeledEmpirical(data, labels), steps=600,
                        batch_size=128, lr=3e-3, seed=0, label_dropout=0.2)
    z = torch.randn(400, 2, generator=gen)
    y = torch.arange(400) % 2
    x = result.sample(z, nfe=32, labels=y)
    right = (torch.sign(x[:, 0]) == (2 * y - 1)).double().mean().item()
    assert right > 0.9
    uncond = result.sample(z, nfe=32, labels=y, guidance=-1.0)
    assert 0.3 < (uncond[:, 0] > 0).double().mean().item() < 0.7
    guided = result.sample(z, nfe=32, labels=y, guidance=2.0)
    assert (torch.sign(guided[:, 0]) == (2 * y - 1)).double().mean().item() >= right


def test_bad_training_inputs():
    data = LabeledEmpirical(torch.randn(64, 2), torch.arange(64) % 3)
    with pytest.raises(ValueError, match="independent"):
        train_flow(_model(), StandardNormal(2), data, coupling="exact", steps=1, batch_size=8,
                   label_dropout=0.1)
    with pytest.raises(TypeError, match="labelled"):
        train_flow(_model(), StandardNormal(2), StandardNormal(2), steps=1, batch_size=8, label_dropout=0.1)
    with pytest.raises(ValueError, match="num_classes"):
        train_flow(VelocityMLP(2, hidden=8, depth=1), StandardNormal(2), data, steps=1, batch_size=8,
                   label_dropout=0.1)
    with pytest.raises(ValueError, match="label_dropout"):
        train_flow(_model(), StandardNormal(2), data, steps=1, batch_size=8, label_dropout=2.0)
    x0, x1 = torch.randn(16, 2), torch.randn(16, 2)
    with pytest.raises(ValueError, match="num_classes"):
        train_on_pairs(VelocityMLP(2, hidden=8, depth=1), x0, x1, labels=torch.zeros(16, dtype=torch.long),
                       steps=1, batch_size=8)
    with pytest.raises(ValueError, match="labels"):
        train_on_pairs(_model(), x0, x1, label_dropout=0.1, steps=1, batch_size=8)
    with pytest.raises(ValueError, match="shape"):
        train_on_pairs(_model(), x0, x1, labels=torch.zeros(15, dtype=torch.long), steps=1, batch_size=8)
    result = train_on_pairs(_model(), x0, x1, labels=torch.arange(16) % 3, label_dropout=0.5,
                            steps=2, batch_size=8)
    with pytest.raises(ValueError, match="labels"):
        result.sample(x0, nfe=1, guidance=1.0)
    with pytest.raises(ValueError, match="not class-conditional"):
        GuidedVelocity(VelocityMLP(2, hidden=8, depth=1), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="guidance"):
        GuidedVelocity(_model(), torch.zeros(3, dtype=torch.long), guidance="2")
    with pytest.raises(ValueError, match="guidance"):
        GuidedVelocity(_model(), torch.zeros(3, dtype=torch.long), guidance=float("nan"))
