"""The seq2seq model: float encoding, teacher forcing shapes, beam search against brute force."""

import math

import pytest
import torch
import torch.nn.functional as F

from otkit.odes.generator import generate
from otkit.odes.grammar import SKELETONS, parse_tokens
from otkit.odes.model import (
    EOS,
    ODEModelConfig,
    ODETransformer,
    beam_search,
    encode_tokens,
    float_decode,
    float_encode,
    train_model,
)

SMALL = ODEModelConfig(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, d_mlp=64)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    return train_model(SMALL, n_train=300, steps=40, batch_size=32, lr=5e-3, seed=0)


def test_float_encoding_round_trips():
    x = torch.tensor([0.0, 1.0, -1.0, 3.14159, -0.00123, 12345.6, 9.999999, 1e-7],
                     dtype=torch.float64)
    code = float_encode(x)
    assert code.shape == (8, 4)
    assert torch.allclose(float_decode(code), x, rtol=1e-12, atol=0)
    assert bool((code[1:, 1] >= 0.1).all()) and bool((code[:, 1] < 1).all())
    assert code[3].tolist()[:3] == pytest.approx([1, 0.314159, 0.0])


def test_tokens_are_bos_prefix_eos_pad():
    ids = encode_tokens([(1, 3)], 12)
    from otkit.odes.grammar import TOKENS
    words = [TOKENS[i] for i in ids[0]]
    assert words[:9] == ["<bos>", "add", "mul", "C", "y", "mul", "C", "pow3", "y"]
    assert words[9] == "<eos>" and set(words[10:]) == {"<pad>"}
    longest = max(len(encode_tokens([s], 30)[0].nonzero()) for s in SKELETONS)
    assert longest + 1 <= ODEModelConfig().max_len
    with pytest.raises(ValueError, match="max_len"):
        encode_tokens([(4, 5, 6)], 10)


def test_training_lowers_the_loss(trained):
    losses = [loss for _, loss in trained.history]
    assert losses[-1] < 0.5 * losses[0]


def _sequence_logprob(model, t, y, skeleton):
    ids = encode_tokens([skeleton], model.config.max_len)
    n = int((ids[0] != 0).sum())
    ids = ids[:, :n]
    logp = F.log_softmax(model(t[None], y[None], ids[:, :-1]), -1)[0]
    return float(logp.gather(1, ids[0, 1:, None]).sum())


def test_beam_scores_are_sequence_logprobs_and_the_best_is_found(trained):
    batch = generate(3, generator=7, n_points=32)
    model = trained.model
    results = beam_search(model, batch.t, batch.y, beam=6)
    for i, found in enumerate(results):
        assert found and len({s for s, _ in found}) == len(found)
        scores = [sc for _, sc in found]
        assert scores == sorted(scores, reverse=True)
        with torch.no_grad():
            for skeleton, score in found:
                assert score == pytest.approx(_sequence_logprob(model, batch.t[i], batch.y[i],
                                                                skeleton), abs=1e-3)
            # brute force over all 63 canonical sequences: the beam's best is the best
            best = max(_sequence_logprob(model, batch.t[i], batch.y[i], s) for s in SKELETONS)
        assert found[0][1] >= best - 1e-3


def test_beam_search_only_writes_complete_expressions(trained):
    batch = generate(4, generator=2)
    for found in beam_search(trained.model, batch.t, batch.y, beam=3):
        for skeleton, score in found:
            assert skeleton in SKELETONS and math.isfinite(score)
    assert EOS == 2 and parse_tokens(["C"]) == (0,)


def test_bad_model_inputs_raise(trained):
    with pytest.raises(ValueError, match="beam"):
        beam_search(trained.model, torch.zeros(1, 5), torch.zeros(1, 5), beam=0)
    with pytest.raises(TypeError, match="model"):
        beam_search(object(), torch.zeros(1, 5), torch.zeros(1, 5))
    with pytest.raises(ValueError, match="t and y"):
        trained.model.encode(torch.zeros(1, 5), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="d_model"):
        ODEModelConfig(d_model=30, n_heads=4)
    with pytest.raises(TypeError, match="config"):
        ODETransformer("big")
    with pytest.raises(ValueError, match="noises"):
        train_model(SMALL, noises=(), steps=1)
