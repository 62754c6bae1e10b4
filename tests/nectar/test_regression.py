"""Nectar's networks learn log Z and o of a cache; memory is counted as cached tokens."""

import pytest
import torch

from otkit.nectar.attention import cache_targets
from otkit.nectar.regression import (
    HeadMLPs,
    fit_icnn_log_z,
    fit_nectar,
    nectar_tokens,
    width_for_tokens,
)


def _problem(seed=0, heads=2, n=64, d=8, N=256):
    g = torch.Generator().manual_seed(seed)
    k, v = torch.randn(1, heads, n, d, generator=g), torch.randn(1, heads, n, d, generator=g)
    q = torch.randn(1, heads, N, d, generator=g) * 1.5
    log_z, o = cache_targets(q, k, v)
    return q[0], log_z[0], o[0], k, v


def test_token_count_is_the_parameter_count():
    net = HeadMLPs([12], 16, 1), HeadMLPs([12], 16, 16)
    params = sum(p.numel() for m in net for p in m.parameters())
    assert nectar_tokens(12, 16) == pytest.approx(params / 32)
    for tokens in (3.0, 13.3, 40.0):
        w = width_for_tokens(tokens, 16)
        assert nectar_tokens(w, 16) <= tokens < nectar_tokens(w + 1, 16)


def test_fit_beats_the_constant_and_wider_is_better():
    q, log_z, o, k, v = _problem()
    test_q, test_z, test_o, _, _ = _problem(seed=1)
    test_z, test_o = cache_targets(test_q.unsqueeze(0), k, v)
    errors = []
    for w in (2, 32):
        nectar = fit_nectar([q], [log_z], [o], [w], steps=300, seed=0)
        z_hat, o_hat = nectar.predict(0, test_q.unsqueeze(0))
        errors.append(((z_hat - test_z) ** 2).mean().sqrt().item())
    constant = (test_z - log_z.mean()).pow(2).mean().sqrt().item()
    assert errors[1] < errors[0] < constant
    assert errors[1] < 0.5 * constant


def test_layers_get_their_own_widths():
    q, log_z, o, _, _ = _problem(heads=2)
    nectar = fit_nectar([q, q], [log_z, log_z], [o, o], [3, 7], steps=5)
    assert nectar.widths() == (3, 7)
    assert nectar.tokens() == (nectar_tokens(3, 8), nectar_tokens(7, 8))
    z, out = nectar.summaries()[1](q.unsqueeze(0))
    assert z.shape == (1, 2, 256) and out.shape == (1, 2, 256, 8)
    with pytest.raises(ValueError, match="widths"):
        fit_nectar([q], [log_z], [o], [3, 7])


def test_icnn_log_z_is_convex_and_fits():
    q, log_z, _, _, _ = _problem(heads=1)
    predict = fit_icnn_log_z(q[0], log_z[0], steps=300)
    err = (predict(q[0]) - log_z[0]).pow(2).mean().sqrt()
    assert err < 0.3 * log_z[0].std()
    a, b = q[0, :50], q[0, 50:100]
    assert bool((predict((a + b) / 2) <= (predict(a) + predict(b)) / 2 + 1e-5).all())
