"""SP / μP / depth-μP / CompleteP: the table's factors by hand, identity at the base size, the
multipliers in the forward pass, and μP's coordinate check (activations stay O(1) in width)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from otkit.nn.parameterization import (
    SCHEMES,
    multipliers,
    parameterize_mlp,
    parameterize_transformer,
    sde_scaling,
)
from otkit.nn.transformer import Transformer, TransformerConfig
from otkit.nn.velocity import VelocityMLP

V = 32


def _model(width: int, depth: int, *, tied: bool = False, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=V, d_model=width, n_layers=depth,
                                         n_heads=max(1, width // 16), d_mlp=4 * width,
                                         max_len=16, tied=tied))


def _setup(scheme: str, width: int, depth: int, *, lr: float = 1e-2, seed: int = 0, **kw):
    model = _model(width, depth)
    p = parameterize_transformer(model, scheme, base_width=32, base_depth=2, lr=lr,
                                 generator=torch.Generator().manual_seed(seed), **kw)
    return model, p


def test_multipliers_by_hand():
    # m_N = 128/32 = 4, m_L = 8/2 = 4
    c = multipliers("completep", width=128, base_width=32, depth=8, base_depth=2)
    assert (c.width_ratio, c.depth_ratio, c.alpha) == (4.0, 4.0, 1.0)
    assert c.residual == pytest.approx(0.25)        # 4^-1
    assert c.output == pytest.approx(0.25)          # 1/m_N
    assert c.hidden_init == pytest.approx(0.5)      # 4^-1/2
    assert c.hidden_lr == pytest.approx(0.25)       # 4^-1 * 4^0
    assert c.hidden_eps == pytest.approx(1 / 16)    # 4^-1 * 4^-1
    assert c.hidden_weight_decay == pytest.approx(4.0)
    assert c.vector_lr == pytest.approx(1.0)        # 4^0
    assert c.vector_eps == pytest.approx(0.25)
    d = multipliers("depth_mup", width=128, base_width=32, depth=8, base_depth=2)
    assert d.residual == pytest.approx(0.5)         # 4^-1/2
    assert d.hidden_lr == pytest.approx(1 / 8)      # 4^-1 * 4^-1/2
    assert d.hidden_eps == pytest.approx(1 / 8)
    assert d.vector_lr == pytest.approx(0.5)
    assert d.vector_eps == pytest.approx(0.5)
    u = multipliers("mup", width=128, base_width=32, depth=8, base_depth=2)
    assert (u.residual, u.vector_lr, u.vector_eps) == (1.0, 1.0, 1.0)
    assert (u.hidden_lr, u.hidden_eps, u.output) == (0.25, 0.25, 0.25)
    s = multipliers("sp", width=128, base_width=32, depth=8, base_depth=2)
    assert {getattr(s, k) for k in ("residual", "output", "hidden_init", "hidden_lr",
                                    "hidden_eps", "hidden_weight_decay", "vector_lr",
                                    "vector_eps")} == {1.0}


def test_groups_and_init_follow_the_table():
    lr, eps, wd = 1e-2, 1e-8, 0.1
    model, p = _setup("completep", 128, 8, lr=lr, eps=eps, weight_decay=wd)
    hidden = p.group("hidden")
    assert hidden["lr"] == pytest.approx(lr / 4)
    assert hidden["eps"] == pytest.approx(eps / 16)
    assert hidden["weight_decay"] == pytest.approx(wd * 4)
    assert p.group("block_vectors")["eps"] == pytest.approx(eps / 4)
    for name in ("embeddings", "final_norm", "unembedding"):
        assert (p.group(name)["lr"], p.group(name)["eps"]) == (lr, eps)
    # every trainable parameter in exactly one group
    ids = [id(q) for g in p.groups for q in g["params"]]
    assert sorted(ids) == sorted(id(q) for q in model.parameters())
    # empirical std of the drawn weights against σ·m_N^-1/2 (and σ/√(2·base_depth) for W_out)
    w = model.blocks[3].attn.qkv.weight
    assert w.std().item() == pytest.approx(0.02 / 2, rel=0.03)
    w = model.blocks[3].mlp.proj.weight
    assert w.std().item() == pytest.approx(0.02 / math.sqrt(2 * 2) / 2, rel=0.03)
    # SP keeps GPT-2's 1/√(2L) with the model's own L
    model, p = _setup("sp", 128, 8)
    assert model.blocks[3].mlp.proj.weight.std().item() == pytest.approx(
        0.02 / math.sqrt(16), rel=0.03)


def test_multipliers_act_in_the_forward_pass():
    model, p = _setup("completep", 64, 4)
    r, out = p.multipliers.residual, p.multipliers.output
    assert (r, out) == (0.5, 0.5)
    ids = torch.randint(V, (3, 10), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        h = model.embedding(ids)
        for b in model.blocks:  # Module.forward skips the hooks: apply the formula by hand
            h = h + r * b.attn.forward(b.ln1(h))
            h = h + r * b.mlp.forward(b.ln2(h))
        expected = out * model.unembed.forward(model.ln_f(h))
        got = model(ids)
    torch.testing.assert_close(got, expected)
    # and they change the output (the check can fail)
    assert (got - expected / out).abs().max() > 1e-3
    assert (model.config.residual_multiplier, model.config.logit_multiplier) == (r, out)


def test_completep_logits_are_those_stored_when_the_multipliers_were_hooks():
    """Logits stored (hex floats) when the multipliers were forward hooks: setting them in the
    transformer's config is the same computation."""
    ref = json.loads((Path(__file__).parent / "data" / "transformer_default_logits.json")
                     .read_text())
    c = ref["completep"]
    torch.manual_seed(ref["model_seed"])
    model = Transformer(TransformerConfig(**c["config"])).eval()
    parameterize_transformer(model, "completep", base_width=c["base_width"],
                             base_depth=c["base_depth"], lr=1e-2,
                             generator=torch.Generator().manual_seed(c["init_seed"]))
    x = torch.randint(ref["config"]["vocab_size"], tuple(ref["ids_shape"]),
                      generator=torch.Generator().manual_seed(ref["ids_seed"]))
    with torch.no_grad():
        got = model(x).flatten()
    want = torch.tensor([float.fromhex(v) for v in c["logits"]])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_base_config_multipliers_compose_and_qk_norm_is_a_block_vector():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=V, d_model=64, n_layers=4, n_heads=4,
                                          d_mlp=256, max_len=16, tied=False, qk_norm=True,
                                          residual_multiplier=0.5, logit_multiplier=2.0))
    p = parameterize_transformer(model, "completep", base_width=32, base_depth=2, lr=1e-2)
    assert model.config.residual_multiplier == pytest.approx(0.25)  # 0.5 · (4/2)^-1
    assert model.config.logit_multiplier == pytest.approx(1.0)      # 2 · (64/32)^-1
    vec = {id(q) for q in p.group("block_vectors")["params"]}
    att = model.blocks[1].attn
    assert {id(att.q_norm.weight), id(att.k_norm.bias)} <= vec
    assert torch.equal(att.q_norm.weight, torch.ones(16))
    assert id(att.q_norm.weight) not in {id(q) for q in p.group("hidden")["params"]}


def _train_losses(model, groups, steps=3):
    opt = torch.optim.AdamW(groups)
    x = torch.randint(V, (8, 12), generator=torch.Generator().manual_seed(5))
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x[:, :-1]).reshape(-1, V), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_every_scheme_is_sp_at_the_base_size():
    ref_model, ref = _setup("sp", 32, 2, weight_decay=0.1)
    ref_losses = _train_losses(ref_model, ref.groups)
    for scheme in SCHEMES[1:]:
        model, p = _setup(scheme, 32, 2, weight_decay=0.1)
        for g, h in zip(p.groups, ref.groups):
            assert (g["name"], g["lr"], g["eps"], g["weight_decay"]) == (
                h["name"], h["lr"], h["eps"], h["weight_decay"])
        assert _train_losses(model, p.groups) == ref_losses
    # away from the base the schemes differ
    model, p = _setup("completep", 32, 4)
    sp_model, sp = _setup("sp", 32, 4)
    assert _train_losses(model, p.groups) != _train_losses(sp_model, sp.groups)


def _logit_rms_after_training(scheme: str, width: int) -> float:
    model, p = _setup(scheme, width, 2, lr=1e-2)
    _train_losses(model, p.groups, steps=5)
    x = torch.randint(V, (8, 12), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return model(x).pow(2).mean().sqrt().item()


def test_mup_coordinate_check():
    """μP's logits stay O(1) from width 32 to 256 after a few Adam steps; SP's grow."""
    widths = (32, 256)
    mup = [_logit_rms_after_training("mup", w) for w in widths]
    sp = [_logit_rms_after_training("sp", w) for w in widths]
    assert mup[0] == pytest.approx(sp[0])  # same model at the base width
    assert 0.5 < mup[1] / mup[0] < 1.5
    assert sp[1] / sp[0] > 2.0


def test_velocity_mlp():
    def build(scheme, hidden, seed=0):
        torch.manual_seed(seed)
        model = VelocityMLP(2, hidden=hidden, depth=3, time_features=8)
        p = parameterize_mlp(model, scheme, base_width=32, lr=1e-2,
                             generator=torch.Generator().manual_seed(seed))
        return model, p

    x, t = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)), torch.rand(64)
    outputs = {}
    for scheme in SCHEMES:
        model, p = build(scheme, 32)
        assert [g["name"] for g in p.groups] == ["input", "hidden", "hidden_biases", "output"]
        outputs[scheme] = model(x, t)
    for scheme in SCHEMES[1:]:
        torch.testing.assert_close(outputs[scheme], outputs["sp"])
    model, p = build("mup", 128)
    assert p.group("hidden")["lr"] == pytest.approx(1e-2 / 4)
    assert p.group("output")["lr"] == pytest.approx(1e-2)
    assert model.net[2].weight.std().item() == pytest.approx(1 / math.sqrt(128), rel=0.05)
    # the output multiplier 1/m_N = 1/4 is in the forward pass
    with torch.no_grad():
        raw = model.net[-1].forward(model.net[:-1](torch.cat([x, model.embed(t)], 1)))
    torch.testing.assert_close(model(x, t), raw / 4)


def test_bad_input():
    with pytest.raises(ValueError, match="scheme"):
        multipliers("ntk", width=64, base_width=32)
    with pytest.raises(ValueError, match="base_width"):
        multipliers("mup", width=64, base_width=0)
    with pytest.raises(ValueError, match="tied"):
        parameterize_transformer(_model(32, 2, tied=True), "mup", base_width=32, base_depth=2,
                                 lr=1e-3)
    with pytest.raises(ValueError, match="lr"):
        parameterize_transformer(_model(32, 2), "mup", base_width=32, base_depth=2, lr=0.0)
    model, _ = _setup("mup", 32, 2)
    with pytest.raises(ValueError, match="model is already parameterized"):
        parameterize_transformer(model, "mup", base_width=32, base_depth=2, lr=1e-3)
    with pytest.raises(ValueError, match="name"):
        _setup("sp", 32, 2)[1].group("nope")


def test_sde_scaling_by_hand_and_its_invariants():
    """Malladi et al. (2022)'s square-root rule for a 4x batch: η·2, 1 − β by 4, ε/2; the
    duration half: η/√κ_D. Both keep the SDE time S·η² and AdamW's total decay S·η·λ."""
    r = sde_scaling(batch_size=128, base_batch_size=32)
    assert (r.batch_ratio, r.duration_ratio, r.steps_ratio) == (4.0, 1.0, 0.25)
    assert (r.lr, r.eps, r.weight_decay) == (2.0, 0.5, 2.0)
    assert r.betas((0.9, 0.98)) == pytest.approx((0.6, 0.92))
    d = sde_scaling(batch_size=32, base_batch_size=32, samples=6400, base_samples=1600)
    assert (d.steps_ratio, d.lr, d.eps, d.weight_decay) == (4.0, 0.5, 2.0, 0.5)
    assert d.betas((0.9, 0.98)) == pytest.approx((0.9, 0.98))
    both = sde_scaling(batch_size=16, base_batch_size=32, samples=3200, base_samples=800)
    for rule in (r, d, both):
        assert rule.steps_ratio * rule.lr ** 2 == pytest.approx(1.0)
        assert rule.steps_ratio * rule.lr * rule.weight_decay == pytest.approx(1.0)
    assert both.lr == pytest.approx(math.sqrt(0.5 / 4))
    groups = [{"name": "a", "params": [], "lr": 1e-2, "eps": 1e-8, "weight_decay": 0.1},
              {"name": "b", "params": [], "lr": 1e-3}]
    out = r.apply(groups, (0.9, 0.98))
    assert out[0]["lr"] == pytest.approx(2e-2) and out[0]["eps"] == pytest.approx(5e-9)
    assert out[0]["weight_decay"] == pytest.approx(0.2) and out[1]["eps"] == pytest.approx(5e-9)
    assert out[1]["betas"] == pytest.approx((0.6, 0.92))
    assert groups[0]["lr"] == 1e-2  # the input is left alone
    torch.optim.AdamW([{**g, "params": [torch.zeros(1, requires_grad=True)]} for g in out])


def test_sde_scaling_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        sde_scaling(batch_size=0, base_batch_size=32)
    with pytest.raises(ValueError, match="samples"):
        sde_scaling(batch_size=32, base_batch_size=32, samples=100)
    with pytest.raises(ValueError, match="betas"):  # 1 − 0.9 times 16 > 1
        sde_scaling(batch_size=512, base_batch_size=32).betas((0.9, 0.98))
    with pytest.raises(ValueError, match="betas"):
        sde_scaling(batch_size=64, base_batch_size=32).betas((1.0, 0.98))
    with pytest.raises(ValueError, match="lr"):
        sde_scaling(batch_size=64, base_batch_size=32).apply([{"params": []}], (0.9, 0.98))
