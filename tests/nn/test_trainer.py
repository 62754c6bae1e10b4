"""Tests of otkit.nn.trainer.

References: a copying toy whose loss can reach 0, the schedule's closed form, frozen
parameters under a zero learning rate, and exact reproducibility from the seed.
"""

from __future__ import annotations

import math

import pytest
import torch

from otkit.nn.trainer import IGNORE, TrainerConfig, train, warmup_cosine
from otkit.nn.transformer import Transformer, TransformerConfig, param_groups


def copying(n: int, length: int = 4, symbols: int = 8, seed: int = 0):
    """``x₁ … x_k = x₁ … x_k``: the second half is scored (a learnable toy: loss → 0)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(2, 2 + symbols, (n, length), generator=gen)
    ids = torch.cat([x, torch.ones(n, 1, dtype=torch.long), x], 1)
    inputs, targets = ids[:, :-1], ids[:, 1:].clone()
    targets[:, : length] = IGNORE
    return inputs, targets


def small(seed: int = 0, vocab: int = 10) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=vocab, d_model=32, n_layers=2, n_heads=4,
                                         d_mlp=64, max_len=16))


def test_trainer_learns_to_copy_to_near_zero_loss():
    x, y = copying(2048)
    ex, ey = copying(256, seed=1)
    config = TrainerConfig(steps=400, batch_size=64, lr=3e-3, warmup=20, eval_every=100)
    result = train(small(), x, y, config=config, eval_inputs=ex, eval_targets=ey, progress=False)
    assert result.losses[0] > 1.5  # about log(8) = 2.08 at the start
    assert result.final_loss < 0.05
    assert result.eval_steps == (100, 200, 300, 400)
    assert result.eval_losses[-1] < 0.05 and result.eval_losses[-1] < result.eval_losses[0]
    assert len(result.losses) == len(result.lrs) == len(result.grad_norms) == 400


def test_schedule_follows_the_warmup_cosine_closed_form():
    steps, warmup, floor = 50, 10, 0.1
    config = TrainerConfig(steps=steps, batch_size=8, warmup=warmup, min_lr_ratio=floor,
                           eval_every=50)
    x, y = copying(64)
    result = train(small(), x, y, config=config, progress=False)
    expected = [(s + 1) / warmup if s < warmup else
                floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup)))
                for s in range(steps)]
    assert result.lrs == pytest.approx(expected)
    assert result.lrs[warmup - 1] == 1.0 and result.lrs[warmup] == 1.0
    assert warmup_cosine(steps, steps, warmup, floor) == pytest.approx(floor)


def test_a_group_with_zero_learning_rate_does_not_move_and_others_do():
    m = small()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    groups = param_groups(m, lr=1e-2, overrides={"mlp": {"lr": 0.0, "weight_decay": 0.0}})
    x, y = copying(64)
    train(m, x, y, config=TrainerConfig(steps=5, batch_size=8, warmup=1, eval_every=5),
          groups=groups, progress=False)
    after = m.state_dict()
    for k in before:
        moved = not torch.equal(before[k], after[k])
        assert moved == (".mlp." not in k), k


def test_grad_clip_shrinks_the_step_and_norms_are_recorded_before_clipping():
    """AdamW's step m/(√v + ε) is scale-free unless the gradient is far below ε = 1e-8: clipped
    to a norm of 1e-12 the first step all but vanishes; unclipped it is about lr per entry."""
    x, y = copying(64)
    moves = {}
    for clip in (None, 1e-12):
        m = small()
        before = [p.clone() for p in m.parameters()]
        config = TrainerConfig(steps=1, batch_size=16, warmup=0, grad_clip=clip,
                               weight_decay=0.0, lr=1e-3, eval_every=1)
        result = train(m, x, y, config=config, progress=False)
        assert result.grad_norms[0] > 1e-3  # recorded before clipping
        moves[clip] = max((p - q).abs().max().item() for p, q in zip(m.parameters(), before))
    assert moves[None] == pytest.approx(1e-3, rel=0.01)
    assert moves[1e-12] < 1e-6


def test_same_seed_same_run_and_another_seed_another():
    x, y = copying(256)
    config = TrainerConfig(steps=20, batch_size=16, warmup=2, eval_every=20)
    a = train(small(), x, y, config=config, seed=5, progress=False)
    b = train(small(), x, y, config=config, seed=5, progress=False)
    c = train(small(), x, y, config=config, seed=6, progress=False)
    assert a.losses == b.losses
    assert a.losses != c.losses


def test_progress_flag_shows_or_hides_the_bar(capsys):
    x, y = copying(32)
    config = TrainerConfig(steps=3, batch_size=4, warmup=0, eval_every=3)
    train(small(), x, y, config=config, progress=False)
    assert capsys.readouterr().err == ""
    train(small(), x, y, config=config, progress=True)
    assert "train" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, word",
    [({"steps": 0}, "steps"), ({"warmup": 10, "steps": 10}, "warmup"), ({"lr": -1.0}, "lr"),
     ({"min_lr_ratio": 2.0}, "min_lr_ratio"), ({"grad_clip": 0.0}, "grad_clip")],
)
def test_bad_configs_raise_naming_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        TrainerConfig(**kwargs)


def test_bad_data_raise_naming_the_argument():
    x, y = copying(16)
    with pytest.raises(ValueError, match="targets"):
        train(small(), x, y[:, :-1], progress=False)
    with pytest.raises(ValueError, match="targets"):
        train(small(), x, torch.full_like(y, IGNORE), progress=False)
    with pytest.raises(ValueError, match="eval_inputs"):
        train(small(), x, y, eval_inputs=x.float(), eval_targets=y, progress=False)
