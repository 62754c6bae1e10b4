"""Cache targets against a brute-force softmax; eq. merge against the model's own attention."""

import math

import pytest
import torch

from otkit.nectar.attention import (
    WeightedCache,
    cache_targets,
    context_cache,
    forward_live,
    head_qkv,
    merge_attention,
)
from otkit.nectar.compress import kmeans_cache, subsample, truncate
from otkit.nectar.lookup import LookupSpec, lookup_model, make_lookup
from otkit.nn.transformer import residual_stream


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    spec = LookupSpec()
    model = lookup_model(spec, max_len=300, seed=3)
    with torch.no_grad():  # a non-trivial (random, non-zero) position table too
        model.embedding.position.weight.normal_(0, 0.3)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return spec, model


@pytest.mark.parametrize("block", [1, 7, 1024])
def test_cache_targets_are_the_brute_force_softmax(block):
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, s, 8, generator=g, dtype=torch.float64) * 2 for s in (5, 41, 41))
    log_w = torch.randn(2, 3, 41, generator=g, dtype=torch.float64)
    for w in (None, log_w):
        log_z, o = cache_targets(q, k, v, w, block=block)
        s = (q @ k.transpose(-1, -2)).numpy() / math.sqrt(8)
        if w is not None:
            s = s + w.unsqueeze(-2).numpy()
        # brute force with numpy, written out: max-shifted sum of exponentials
        mx = s.max(-1, keepdims=True)
        e = torch.tensor(s - mx).exp()
        want_z = torch.tensor(mx[..., 0]) + e.sum(-1).log()
        want_o = (e / e.sum(-1, keepdim=True)) @ v
        torch.testing.assert_close(log_z, want_z, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(o, want_o, rtol=1e-12, atol=1e-12)


def test_head_qkv_reproduces_the_blocks_attention(setup):
    spec, model = setup
    ids = make_lookup(spec, 40, 2, seed=1).inputs
    stream, _ = residual_stream(model, ids)
    block = model.blocks[1]
    q, k, v = head_qkv(block, stream[1])
    y = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
                      + torch.full((ids.shape[1],) * 2, float("-inf")).triu(1), -1) @ v
    with torch.no_grad():
        want = block.attn(block.ln1(stream[1]))
        got = block.attn.out(y.transpose(1, 2).reshape(*ids.shape, -1))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_merge_with_exact_targets_and_no_live_token_is_the_cache_attention():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(1, 2, s, 4, generator=g) for s in (3, 9, 9))
    log_z, o = cache_targets(q, k, v)
    empty = torch.zeros(1, 2, 3, 4)
    # no live token reachable: pretend live scores are -inf by giving live keys a huge negative
    out = merge_attention(log_z, o, q, empty - 1e4 * q.sign(), empty)
    torch.testing.assert_close(out, o, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [17, 64])
def test_forward_live_with_exact_caches_is_the_model(setup, n):
    spec, model = setup
    data = make_lookup(spec, n, 3, seed=n)
    with torch.no_grad():
        full = model(data.inputs)
    caches = context_cache(model, data.ids[:, :n])
    record = []
    with torch.no_grad():
        out = forward_live(model, data.inputs[:, n:], n,
                           [WeightedCache(c.k, c.v) for c in caches], record=record)
    torch.testing.assert_close(out, full[:, n:], rtol=1e-5, atol=1e-5)
    assert len(record) == 2 and record[0][0].shape == (3, 4, 2 * spec.n_questions - 1, 16)


def test_baselines_keep_m_entries_and_the_right_weights(setup):
    spec, model = setup
    data = make_lookup(spec, 50, 1, seed=4)
    cache = context_cache(model, data.ids[:, :50])[0]
    t = truncate(cache, 10)
    torch.testing.assert_close(t.k, cache.k[..., -10:, :])
    s = subsample(cache, 10, generator=torch.Generator().manual_seed(0))
    assert s.size == 10 and torch.allclose(s.log_w, torch.full_like(s.log_w, math.log(5.0)))
    km = kmeans_cache(cache, 10, generator=torch.Generator().manual_seed(0))
    # counts sum to n per head; with m = n every token is its own cluster: exact attention
    assert torch.allclose(km.log_w.exp().sum(-1), torch.full((1, 4), 50.0))
    exact = kmeans_cache(cache, 50, generator=torch.Generator().manual_seed(0))
    q = torch.randn(1, 4, 6, 16)
    for got, want in zip(exact(q), cache_targets(q, cache.k, cache.v)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="m"):
        truncate(cache, 51)


def test_bad_arguments_name_themselves(setup):
    spec, model = setup
    with pytest.raises(ValueError, match="summaries"):
        forward_live(model, torch.zeros(1, 3, dtype=torch.long), 0, [])
    with pytest.raises(ValueError, match="log_w"):
        cache_targets(torch.zeros(2, 4), torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2))
    with pytest.raises(ValueError, match="n_records"):
        LookupSpec(n_keys=4, n_records=5)
