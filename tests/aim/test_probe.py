"""The probes: shapes, AIM's attentive pooling written out by hand, and learning a planted
label."""

import pytest
import torch
import torch.nn.functional as F

from otkit.aim.probe import AttentiveProbe, attentive_probe, linear_probe


def test_attentive_probe_shapes_and_pooling_by_hand():
    torch.manual_seed(0)
    probe = AttentiveProbe(8, 3, heads=2).eval()
    x = torch.randn(5, 7, 8)
    assert probe(x).shape == (5, 3) and probe.pool(x).shape == (5, 8)
    # by hand: eval-mode BN (running stats 0/1 → identity up to eps), per-head softmax pooling
    xb = x / (1 + 1e-6) ** 0.5
    k, v = xb @ probe.k.weight.T, xb @ probe.v.weight.T
    q = probe.query[0]
    z = []
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        w = F.softmax(k[..., s] @ q[s] / 2.0, dim=1)            # √d_head = 2
        z.append((w[..., None] * v[..., s]).sum(1))
    z = torch.cat(z, dim=1)
    assert torch.allclose(probe.pool(x), z, atol=1e-5)
    assert torch.allclose(probe(x), probe.linear(z), atol=1e-5)


def test_probes_learn_a_planted_label():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=gen)
    tokens = 0.5 * torch.randn(300, 6, 8, generator=gen)
    tokens[torch.arange(300), 2, y] += 3.0     # one token carries the class
    res = attentive_probe(tokens[:200], y[:200], tokens[200:], y[200:], steps=150)
    assert res.accuracy > 0.9
    lin = linear_probe(tokens[:200], y[:200], tokens[200:], y[200:])
    assert lin.accuracy > 0.9
    noise = torch.randn(300, 6, 8, generator=gen)
    assert linear_probe(noise[:200], y[:200], noise[200:], y[200:]).accuracy < 0.6


def test_bad_inputs_raise():
    x, y = torch.randn(10, 4, 8), torch.randint(0, 2, (10,))
    with pytest.raises(ValueError, match="train_features"):
        attentive_probe(x[:, 0], y, x, y)
    with pytest.raises(ValueError, match="test_labels"):
        attentive_probe(x, y, x, y[:5])
    with pytest.raises(ValueError, match="width"):
        AttentiveProbe(8, 2, heads=3)
    with pytest.raises(ValueError, match="tokens"):
        AttentiveProbe(8, 2)(torch.randn(3, 4, 6))
    with pytest.raises(ValueError, match="steps"):
        attentive_probe(x, y, x, y, steps=0)
    with pytest.raises(ValueError, match="train_labels"):
        linear_probe(x, y.float(), x, y)
