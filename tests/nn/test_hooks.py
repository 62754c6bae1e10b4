"""Tests of otkit.nn.hooks' attention masks: pooling and recording leave padding out.

References: hand computations (loops over examples and their real tokens) and the same texts
run unpadded, one at a time.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from otkit.nn.hooks import batch_mask, collect_activations, pool

BLOCKS = r"transformer\.h\.\d+"


def tiny_gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = GPT2Config(n_embd=16, n_layer=2, n_head=2, vocab_size=40, n_positions=16,
                        bos_token_id=0, eos_token_id=0, pad_token_id=0, initializer_range=0.5)
    return GPT2LMHeadModel(config).eval()


def padded(texts: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Right-padded ids and their attention mask, as a Hugging Face tokenizer returns them."""
    length = max(t.numel() for t in texts)
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.long)
    for i, t in enumerate(texts):
        ids[i, : t.numel()] = t
        mask[i, : t.numel()] = 1
    return {"input_ids": ids, "attention_mask": mask}


def test_masked_pool_matches_a_hand_computation():
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    lengths = [5, 2, 3]
    mask = torch.tensor([[1] * n + [0] * (5 - n) for n in lengths])
    h[1, 2:] = 1e6  # pad positions hold garbage: it must not leak into the results
    means = pool(h, "mean", mask)
    tokens = pool(h, "none", mask)
    hand_means = torch.stack([h[b, :n].sum(0) / n for b, n in enumerate(lengths)])
    hand_tokens = torch.cat([h[b, :n] for b, n in enumerate(lengths)])
    assert torch.allclose(means, hand_means, rtol=1e-12, atol=0)
    assert torch.equal(tokens, hand_tokens) and tokens.shape == (10, 4)
    # A full mask (bool or int) is the unmasked pooling.
    full = torch.ones(3, 5, dtype=torch.bool)
    assert torch.allclose(pool(h, "mean", full), pool(h, "mean"), rtol=1e-12, atol=0)
    assert torch.equal(pool(h, "none", full.long()), pool(h, "none"))


def test_masked_pool_over_image_positions():
    gen = torch.Generator().manual_seed(1)
    h = torch.randn(2, 3, 4, 4, generator=gen, dtype=torch.float64)  # [B, C, H, W]
    keep = torch.rand(2, 4, 4, generator=gen) < 0.5
    keep[:, 0, 0] = True
    means = pool(h, "mean", keep)
    for b in range(2):
        assert torch.allclose(means[b], h[b][:, keep[b]].mean(1), rtol=1e-12, atol=0)
    assert torch.equal(pool(h, "none", keep), h.movedim(1, -1)[keep])


def test_mask_errors_name_the_problem():
    h = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="does not match"):
        pool(h, "mean", torch.ones(2, 4))
    with pytest.raises(ValueError, match="tokens"):
        pool(torch.randn(2, 4), "mean", torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"examples \[1\] have no real token"):
        pool(h, "mean", torch.tensor([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(TypeError, match="mask"):
        pool(h, "mean", [[1, 1, 1], [1, 1, 1]])
    assert pool(h, "none", torch.tensor([[1, 0, 0], [0, 0, 0]])).shape == (1, 4)


def test_padded_batches_give_the_unpadded_activations():
    model = tiny_gpt2()
    gen = torch.Generator().manual_seed(2)
    texts = [torch.randint(1, 40, (n,), generator=gen) for n in (6, 3, 5, 1, 4)]
    batches = [padded(texts[:3]), padded(texts[3:])]
    alone = [t.unsqueeze(0) for t in texts]  # each text unpadded, in a batch of its own
    for how in ("mean", "none"):
        got = collect_activations(model, BLOCKS, batches, pool=how)
        ref = collect_activations(model, BLOCKS, alone, pool=how)
        for name in ref:
            assert got[name].shape == ref[name].shape
            assert torch.allclose(got[name], ref[name], atol=1e-5)
    # Without its mask the padded batch averages the pad tokens in and counts them as samples.
    ids_only = [b["input_ids"] for b in batches]
    assert collect_activations(model, BLOCKS, ids_only, pool="none")["transformer.h.0"].shape[0] == 3 * 6 + 2 * 4
    assert collect_activations(model, BLOCKS, batches, pool="none")["transformer.h.0"].shape[0] == 19
    # The mask can also be given explicitly: a function of the batch, or one per batch.
    forward = lambda model, batch: model(input_ids=batch[0], attention_mask=batch[1])
    pairs = [(b["input_ids"], b["attention_mask"]) for b in batches]
    ref = collect_activations(model, BLOCKS, alone, pool="mean")
    by_fn = collect_activations(model, BLOCKS, pairs, forward=forward, mask=lambda b: b[1])
    by_list = collect_activations(model, BLOCKS, pairs, forward=forward,
                                  mask=[b["attention_mask"] for b in batches])
    for name in ref:
        assert torch.allclose(by_fn[name], ref[name], atol=1e-5)
        assert torch.equal(by_list[name], by_fn[name])
    with pytest.raises(ValueError, match="one per batch"):
        collect_activations(model, BLOCKS, pairs, forward=forward, mask=[None])
    with pytest.raises(ValueError, match="transformer.h.0"):
        collect_activations(model, BLOCKS, pairs, forward=forward, mask=lambda b: b[1][:, :2])


def test_batch_mask_reads_a_tokenizer_output_only():
    mask = torch.ones(2, 3, dtype=torch.long)
    assert batch_mask({"input_ids": mask, "attention_mask": mask}) is mask
    assert batch_mask({"input_ids": mask}) is None
    assert batch_mask(mask) is None
