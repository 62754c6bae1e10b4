"""The text steering task: an exactly measured concept, a GPT-2 from a config, steering it."""

import itertools

import pytest
import torch

from otkit.steering import fit_act, fit_lineas, linear_act, support_coverage
from otkit.steering.intervention import Intervention
from otkit.steering.text import (
    TOPICS,
    WordTokenizer,
    concept_rate,
    generate,
    has_concept,
    make_corpus,
    text_steering_task,
    tiny_gpt2,
    train_language_model,
)
from otkit.steering.text import _vocabulary as vocabulary


def test_corpus_is_reproducible_and_its_topics_are_measured_exactly():
    a = make_corpus(300, generator=3)
    assert a == make_corpus(300, generator=3)
    assert a == make_corpus(300, generator=torch.Generator().manual_seed(3))
    assert a != make_corpus(300, generator=4)
    with pytest.warns(DeprecationWarning, match=r"make_corpus\(\.\.\., seed=\) is now"):
        assert make_corpus(300, seed=3) == a  # the old name of generator
    with pytest.raises(TypeError, match="both generator= and its old name seed="):
        make_corpus(300, generator=3, seed=3)
    for doc, (first, second) in zip(a.documents, a.topics):
        words = doc.split()
        assert len(words) == 12
        for sentence, topic in ((" ".join(words[:6]), first), (" ".join(words[6:]), second)):
            assert [t for t in TOPICS if has_concept(sentence, t)] == [topic]
    firsts = [t for t, _ in a.topics]
    assert 0.12 < firsts.count("weather") / 300 < 0.28  # concept_share 0.2
    stays = sum(t1 == t2 for t1, t2 in a.topics) / 300
    assert 0.65 < stays < 0.85  # stay 0.75


def test_concept_rate_counts_sentences_with_a_topic_word():
    assert concept_rate(["the cold rain falls now here", "a sweet cake rises early now"]) == 0.5
    assert concept_rate(["a loud band plays", "one fast team wins"], "music") == 0.5
    with pytest.raises(ValueError, match="concept"):
        has_concept("the rain", "politics")
    with pytest.raises(ValueError, match="sentences"):
        concept_rate([])


def test_tokenizer_round_trip_and_errors():
    tok = WordTokenizer(vocabulary())
    docs = make_corpus(5).documents
    ids = tok.encode(docs)
    assert ids.shape == (5, 14) and (ids[:, 0] == tok.bos_id).all() and (ids[:, -1] == tok.eos_id).all()
    assert tok.decode(ids) == list(docs)
    assert tok.encode(docs, eos=False).shape == (5, 13)
    with pytest.raises(ValueError, match="vocabulary"):
        tok.encode(["the purple rain"])
    with pytest.raises(ValueError, match="same number"):
        tok.encode(["the rain", "the cold rain"])


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(1)
    return text_steering_task(steps=200, n_fit=64, prompts=200, seed=0)


def test_training_lowers_the_loss_and_generation_is_seeded(task):
    tok = WordTokenizer(vocabulary())
    model = tiny_gpt2(len(tok), n_layer=1, n_embd=16, n_head=2, seed=1)
    losses = train_language_model(model, tok.encode(make_corpus(200).documents), steps=30)
    assert losses[-5:].mean() < losses[:5].mean() - 0.3
    prompts = task.prompts[:20]
    a = generate(task.model, task.tokenizer, prompts, 6, generator=5)
    assert a == generate(task.model, task.tokenizer, prompts, 6, generator=5)
    assert a != generate(task.model, task.tokenizer, prompts, 6, generator=6)
    with pytest.warns(DeprecationWarning, match=r"generate\(\.\.\., seed=\) is now"):
        assert generate(task.model, task.tokenizer, prompts, 6, seed=5) == a
    assert all(len(s.split()) == 6 for s in a)


def test_the_trained_model_carries_the_topic_across_sentences(task):
    # induce: prompts without the concept; the corpus switches to it with probability 1/4 · 1/3
    base = task.evaluate(None, [0.0])[0]
    assert 0.02 < base["concept_rate"] < 0.2
    assert base["perplexity"] < 8.0  # uniform guessing over 80 words would be ~80


def test_strength_zero_is_no_intervention_and_act_induces_the_concept(task):
    iv = fit_act(task.model, task.modules, task.source, task.target, forward=task.forward,
                 pool=task.pool)
    assert task.samples(iv, 0.0) == task.samples(None)
    assert task.perplexity(iv, 0.0) == task.perplexity(None)
    rows = task.evaluate(iv, [0.0, 0.5, 1.0])
    rates = [r["concept_rate"] for r in rows]
    assert rates[2] > rates[0] + 0.1, rates
    assert rates[0] <= rates[1] <= rates[2], rates
    assert rows[2]["perplexity"] < 1.5 * rows[0]["perplexity"]


def test_default_act_fits_the_tokens_it_steers(task):
    # fit_act with default arguments: the maps are fitted on token activations, the ones
    # they act on, so held-out tokens fall inside their supports and the concept rate moves.
    # (Fitted on sentence means, the old default, 85% of them fell outside, where Linear-AcT
    # is the identity, and the rate moved by 0.07.)
    iv = fit_act(task.model, task.modules, task.source, task.target, forward=task.forward)
    cover = support_coverage(task.model, iv, [task.held_out], forward=task.forward)
    assert min(cover.values()) > 0.9, cover
    rates = [r["concept_rate"] for r in task.evaluate(iv, [0.0, 1.0])]
    assert rates[1] > rates[0] + 0.2, rates
    means = fit_act(task.model, task.modules, task.source, task.target, forward=task.forward,
                    pool="mean")
    assert max(support_coverage(task.model, means, [task.held_out]).values()) < 0.5


@pytest.mark.slow
def test_sparse_lineas_path_has_no_collapse_on_the_text_task(task):
    # Default optimizer (proximal Adam): the share of steered neurons falls gradually as l1
    # grows, from nearly all to none, and the concept rate at λ = 1 with it. The Euclidean
    # prox after Adam kept > 80% of the neurons up to l1 = 0.8 and collapsed by l1 = 1.
    grid = [0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3]
    fits = [fit_lineas(task.model, task.modules, task.source, task.target, forward=task.forward,
                       pool=task.pool, steps=50, lr=0.05, l1=l1) for l1 in grid]
    kept = [f.fraction_kept for f in fits]
    assert kept[0] == 1.0 and kept[1] > 0.6 and kept[-1] < 0.02, kept
    assert all(b <= a + 0.02 for a, b in itertools.pairwise(kept)), kept
    assert max(a - b for a, b in itertools.pairwise(kept)) < 0.45, kept
    rates = [task.evaluate(f.intervention, [1.0])[0]["concept_rate"] for f in fits[::2]]
    assert rates[0] > rates[-1] + 0.2, rates


def test_remove_mode_swaps_source_and_target():
    induce = text_steering_task(steps=1, n_fit=8, prompts=8, seed=0)
    remove = text_steering_task(mode="remove", steps=1, n_fit=8, prompts=8, seed=0)
    assert torch.equal(induce.source[0], remove.target[0])
    assert torch.equal(induce.target[0], remove.source[0])
    decoded = remove.tokenizer.decode(remove.prompts)
    assert all(has_concept(s) for s in decoded)
    assert not any(has_concept(s) for s in induce.tokenizer.decode(induce.prompts))
    assert not any(has_concept(s) for s in induce.tokenizer.decode(induce.held_out))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"concept": "politics"}, "concept"),
        ({"mode": "amplify"}, "mode"),
        ({"pool": "max"}, "pool"),
        ({"n_fit": 0}, "n_fit"),
        ({"prompts": -1}, "prompts"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        text_steering_task(**kwargs)


def test_a_map_fitted_on_another_width_is_refused(task):
    bad = Intervention({"transformer.h.0": linear_act(torch.randn(20, 3), torch.randn(20, 3))})
    with pytest.raises(ValueError, match="transformer.h.0"):
        task.samples(bad, 1.0, count=2)


def test_with_mode_reuses_the_model_and_matches_a_fresh_remove_task():
    induce = text_steering_task(steps=1, n_fit=8, prompts=8, seed=0)
    remove = text_steering_task(mode="remove", steps=1, n_fit=8, prompts=8, seed=0)
    swapped = induce.with_mode("remove")
    assert swapped.model is induce.model and swapped.mode == "remove"
    assert torch.equal(swapped.prompts, remove.prompts)
    assert all(torch.equal(a, b) for a, b in zip(swapped.source, remove.source))
    assert induce.with_mode("induce") is induce
    with pytest.raises(ValueError, match="mode"):
        induce.with_mode("both")
