"""Tests of otkit.nn.transformer.

References: Hugging Face's ``GPT2LMHeadModel`` run with the same weights (an implementation
nobody here wrote), exact causality (perturbing later tokens), and exact parameter accounting.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from otkit.nn.hooks import collect_activations, rewrite_outputs
from otkit.nn.transformer import (
    PARAM_GROUPS,
    Transformer,
    TransformerConfig,
    param_groups,
    residual_stream,
)

CFG = TransformerConfig(vocab_size=23, d_model=32, n_layers=3, n_heads=4, d_mlp=48, max_len=12)


def model(config: TransformerConfig = CFG, seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(config).eval()


def ids(b: int = 3, t: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randint(CFG.vocab_size, (b, t), generator=torch.Generator().manual_seed(seed))


def to_gpt2(m: Transformer) -> GPT2LMHeadModel:
    """GPT-2 with ``m``'s weights (GPT-2's Conv1D stores W transposed)."""
    c = m.config
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=c.vocab_size, n_positions=c.max_len,
                                    n_embd=c.d_model, n_layer=c.n_layers, n_head=c.n_heads,
                                    n_inner=c.d_mlp, activation_function="gelu_new",
                                    resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                    tie_word_embeddings=c.tied)).eval()
    t = hf.transformer
    with torch.no_grad():
        t.wte.weight.copy_(m.embedding.token.weight)
        t.wpe.weight.copy_(m.embedding.position.weight)
        for ours, theirs in zip(m.blocks, t.h):
            theirs.ln_1.load_state_dict(ours.ln1.state_dict())
            theirs.ln_2.load_state_dict(ours.ln2.state_dict())
            for a, b in ((ours.attn.qkv, theirs.attn.c_attn), (ours.attn.out, theirs.attn.c_proj),
                         (ours.mlp.fc, theirs.mlp.c_fc), (ours.mlp.proj, theirs.mlp.c_proj)):
                b.weight.copy_(a.weight.T)
                b.bias.copy_(a.bias)
        t.ln_f.load_state_dict(m.ln_f.state_dict())
        hf.lm_head.weight.copy_(m.unembed.weight)
    return hf


@pytest.mark.parametrize("tied", [True, False])
def test_logits_match_hugging_face_gpt2_with_the_same_weights(tied):
    m = model(TransformerConfig(**{**CFG.__dict__, "tied": tied}))
    with torch.no_grad():  # move the LayerNorms off (1, 0) so that they are checked too
        for p in m.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    x = ids()
    ours = m(x)
    theirs = to_gpt2(m)(x).logits
    assert ours.shape == (3, 10, CFG.vocab_size)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert (m.unembed.weight is m.embedding.token.weight) == tied


def test_causality_later_tokens_do_not_change_earlier_logits():
    m = model()
    x = ids(t=CFG.max_len)
    base = m(x)
    for t in (0, 4, CFG.max_len - 1):
        y = x.clone()
        y[:, t] = (y[:, t] + 1) % CFG.vocab_size
        out = m(y)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
        assert (out[:, t:] - base[:, t:]).abs().amax() > 1e-4  # the change is seen from t on


def test_residual_stream_shapes_and_its_last_layer_gives_the_logits():
    m = model()
    x = ids(b=2, t=7)
    stream, logits = residual_stream(m, x)
    assert stream.shape == (CFG.n_layers + 1, 2, 7, CFG.d_model)
    torch.testing.assert_close(logits, m(x))
    torch.testing.assert_close(m.unembed(m.ln_f(stream[-1])), logits)
    # each block maps the previous residual to the next one
    for layer in range(CFG.n_layers):
        torch.testing.assert_close(m.blocks[layer](stream[layer]), stream[layer + 1])
    torch.testing.assert_close(stream[0], m.embedding.token(x) + m.embedding.position.weight[:7])


def test_hooks_see_batch_seq_dmodel_on_every_block():
    m = model()
    shapes = {}

    def record(name: str, h: torch.Tensor) -> None:
        shapes[name] = tuple(h.shape)

    with rewrite_outputs(m, m.hook_names, record):
        m(ids(b=4, t=9))
    assert list(shapes) == ["embedding", "blocks.0", "blocks.1", "blocks.2"]
    assert all(s == (4, 9, CFG.d_model) for s in shapes.values())
    acts = collect_activations(m, r"blocks\.\d+", [ids(b=4, t=9)], pool="none")
    assert {k: tuple(v.shape) for k, v in acts.items()} == {
        f"blocks.{i}": (36, CFG.d_model) for i in range(3)}


@pytest.mark.parametrize("tied", [True, False])
def test_param_groups_partition_the_parameters_exactly(tied):
    m = model(TransformerConfig(**{**CFG.__dict__, "tied": tied}))
    groups = param_groups(m, lr=1e-3, weight_decay=0.1, overrides={"norms": {"weight_decay": 0.0},
                                                                     "mlp": {"lr": 5e-4}})
    names = [g["name"] for g in groups]
    assert names == [g for g in PARAM_GROUPS if tied is False or g != "unembedding"]
    listed = [id(p) for g in groups for p in g["params"]]
    assert len(listed) == len(set(listed))  # no parameter twice
    assert set(listed) == {id(p) for p in m.parameters()}  # none missing
    by_name = {g["name"]: g for g in groups}
    assert by_name["norms"]["weight_decay"] == 0.0 and by_name["attention"]["weight_decay"] == 0.1
    assert by_name["mlp"]["lr"] == 5e-4 and by_name["embeddings"]["lr"] == 1e-3
    count = {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}
    d, v, h, L = CFG.d_model, CFG.vocab_size, CFG.d_mlp, CFG.n_layers
    assert count["embeddings"] == v * d + CFG.max_len * d
    assert count["attention"] == L * (3 * d * d + 3 * d + d * d + d)
    assert count["mlp"] == L * (d * h + h + h * d + d)
    assert count["norms"] == (2 * L + 1) * 2 * d
    if not tied:
        assert count["unembedding"] == v * d
    torch.optim.AdamW(groups)  # torch accepts them


def test_same_seed_same_model_and_different_seed_different_model():
    a, b, c = model(seed=3), model(seed=3), model(seed=4)
    x = ids()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert not torch.allclose(a(x), c(x))


def test_dropout_is_off_in_eval_and_on_in_train():
    m = model(TransformerConfig(**{**CFG.__dict__, "dropout": 0.5}))
    x = ids()
    torch.testing.assert_close(m(x), m(x))
    m.train()
    assert not torch.allclose(m(x), m(x))


@pytest.mark.parametrize(
    "kwargs, word",
    [({"d_model": 30, "n_heads": 4}, "d_model"), ({"n_layers": 0}, "n_layers"),
     ({"dropout": 1.0}, "dropout"), ({"max_len": 0}, "max_len")],
)
def test_bad_configs_raise_naming_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        TransformerConfig(**{**CFG.__dict__, **kwargs})


def test_bad_ids_raise_naming_the_argument():
    m = model()
    with pytest.raises(ValueError, match="max_len"):
        m(ids(t=CFG.max_len + 1))
    with pytest.raises(ValueError, match="vocab_size"):
        m(torch.full((1, 3), CFG.vocab_size))
    with pytest.raises(ValueError, match="ids"):
        m(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="overrides"):
        param_groups(m, overrides={"attn": {"lr": 1.0}})


# --- parameterization options (residual and logit multipliers, attention scale, QK-norm) ---

def test_default_config_gives_the_stored_logits():
    """The stored logits were computed (hex floats) before the options existed: the default
    config must keep computing them (new options off = the same computation)."""
    ref = json.loads((Path(__file__).parent / "data" / "transformer_default_logits.json")
                     .read_text())
    x = torch.randint(ref["config"]["vocab_size"], tuple(ref["ids_shape"]),
                      generator=torch.Generator().manual_seed(ref["ids_seed"]))
    for tied in (True, False):
        torch.manual_seed(ref["model_seed"])
        m = Transformer(TransformerConfig(**ref["config"], tied=tied)).eval()
        with torch.no_grad():
            got = m(x).flatten()
        want = torch.tensor([float.fromhex(v) for v in ref[f"logits_{'tied' if tied else 'untied'}"]])
        # same machine: bit for bit; another CPU's kernels may round the last bit differently
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def _scaled_gpt2(m: Transformer, *, q_factor=1.0, residual=1.0, logits=1.0) -> GPT2LMHeadModel:
    """GPT-2 with ``m``'s weights where W_q, b_q are × q_factor, the residual projections
    (W_out, b_out, W_proj, b_proj) × residual and U × logits: the same function as ``m`` with
    the options (all three act linearly on what they scale)."""
    hf = to_gpt2(m)
    d = m.config.d_model
    with torch.no_grad():
        for block in hf.transformer.h:
            block.attn.c_attn.weight[:, :d] *= q_factor
            block.attn.c_attn.bias[:d] *= q_factor
            for lin in (block.attn.c_proj, block.mlp.c_proj):
                lin.weight *= residual
                lin.bias *= residual
        hf.lm_head.weight *= logits
    return hf


def test_options_match_gpt2_with_rescaled_weights():
    """1/d_head = 1/√d_head with W_q × 1/√d_head; r·F(h) = F with its output projection × r;
    c·logits = logits of U × c; checked against Hugging Face's GPT-2 with those weights."""
    c = TransformerConfig(**{**CFG.__dict__, "tied": False, "attention_scale": "1/d_head",
                             "residual_multiplier": 0.3, "logit_multiplier": 2.5})
    m = model(c)
    with torch.no_grad():  # large Q·K so that the scale matters
        for b in m.blocks:
            b.attn.qkv.weight.mul_(8.0)
    x = ids()
    hf = _scaled_gpt2(m, q_factor=c.d_head ** -0.5, residual=0.3, logits=2.5)
    torch.testing.assert_close(m(x), hf(x).logits, atol=1e-5, rtol=1e-4)
    # each option changes the output (the check can fail)
    plain = to_gpt2(m)(x).logits
    assert (m(x) - plain).abs().max() > 1e-2
    for key, value in (("attention_scale", "1/d_head"), ("residual_multiplier", 0.3),
                       ("logit_multiplier", 2.5)):
        one = Transformer(TransformerConfig(**{**CFG.__dict__, "tied": False, key: value}))
        one.load_state_dict(m.state_dict())
        assert (one.eval()(x) - plain).abs().max() > 1e-3, key


def test_qk_norm_is_a_per_head_layernorm_of_q_and_k():
    c = TransformerConfig(**{**CFG.__dict__, "qk_norm": True, "n_layers": 1})
    m = model(c)
    att = m.blocks[0].attn
    with torch.no_grad():
        for ln in (att.q_norm, att.k_norm):
            ln.weight.add_(0.3 * torch.randn_like(ln.weight))
            ln.bias.add_(0.3 * torch.randn_like(ln.bias))
    x = ids()
    h = m.blocks[0].ln1(m.embedding(x))
    b, t, d = h.shape
    nh, dh = c.n_heads, c.d_head

    def ln(z, mod):  # by hand: mean and biased variance over the head's channels
        mu = z.mean(-1, keepdim=True)
        var = ((z - mu) ** 2).mean(-1, keepdim=True)
        return (z - mu) / torch.sqrt(var + mod.eps) * mod.weight + mod.bias

    with torch.no_grad():
        q, k, v = att.qkv(h).split(d, dim=-1)
        q, k, v = (z.view(b, t, nh, dh) for z in (q, k, v))
        q, k = ln(q, att.q_norm), ln(k, att.k_norm)
        s = torch.einsum("bqhc,bkhc->bhqk", q, k) / dh ** 0.5
        s = s.masked_fill(torch.triu(torch.ones(t, t, dtype=torch.bool), 1), float("-inf"))
        y = torch.einsum("bhqk,bkhc->bqhc", s.softmax(-1), v).reshape(b, t, d)
        want = att.out(y)
        torch.testing.assert_close(att(h), want, atol=1e-6, rtol=1e-5)
    names = [n for n, _ in m.named_parameters() if "_norm" in n]
    assert names == ["blocks.0.attn.q_norm.weight", "blocks.0.attn.q_norm.bias",
                     "blocks.0.attn.k_norm.weight", "blocks.0.attn.k_norm.bias"]
    norms = {id(p) for g in param_groups(m) if g["name"] == "norms" for p in g["params"]}
    assert id(att.q_norm.weight) in norms and id(att.k_norm.bias) in norms


def test_set_multipliers_equals_building_with_them():
    a = model(TransformerConfig(**{**CFG.__dict__, "tied": False}))
    b = model(TransformerConfig(**{**CFG.__dict__, "tied": False, "residual_multiplier": 0.5,
                                   "logit_multiplier": 0.25}))
    a.set_multipliers(residual=0.5, logits=0.25)
    assert a.config == b.config
    torch.testing.assert_close(a(ids()), b(ids()), rtol=0, atol=0)
    with pytest.raises(ValueError, match="residual"):
        a.set_multipliers(residual=0.0)
    with pytest.raises(TypeError, match="logits"):
        a.set_multipliers(logits="1")


@pytest.mark.parametrize(
    "kwargs, error, word",
    [({"residual_multiplier": 0.0}, ValueError, "residual_multiplier"),
     ({"logit_multiplier": float("nan")}, ValueError, "logit_multiplier"),
     ({"attention_scale": "1/sqrt"}, ValueError, "attention_scale"),
     ({"qk_norm": 1}, TypeError, "qk_norm")],
)
def test_bad_options_raise_naming_the_argument(kwargs, error, word):
    with pytest.raises(error, match=word):
        TransformerConfig(**{**CFG.__dict__, **kwargs})
