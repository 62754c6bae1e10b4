"""The generated corpus against brute force: chain probabilities by enumeration, the oracle
density ratio computed directly, sampling frequencies, exact counts, bad inputs."""

import itertools
import math

import numpy as np
import pytest

from otkit.dataquality.corpus import (
    JUNK,
    MarkovDomains,
    make_corpus,
    make_domains,
    mixture_log_prob,
)


def _direct(domains: MarkovDomains, k: int, seq) -> float:
    p = domains.initial[k, seq[0]]
    for s, t in zip(seq[:-1], seq[1:]):
        p *= domains.transition[k, s, t]
    return float(p)


@pytest.fixture(scope="module")
def small():
    return make_domains(("a", "b"), vocab_size=3, branching=2, smoothing=0.1, seed=3)


def test_chain_log_probs_equal_enumeration(small):
    seqs = np.array(list(itertools.product(range(3), repeat=3)))
    logp = small.log_prob(seqs)
    for k in range(2):
        direct = np.array([_direct(small, k, s) for s in seqs])
        np.testing.assert_allclose(np.exp(logp[:, k]), direct, rtol=1e-12)
        assert direct.sum() == pytest.approx(1.0)


def test_oracle_density_ratio_equals_direct_computation(small):
    pool_w, hq_w, junk = {"a": 0.2, "b": 0.5}, {"a": 1.0}, 0.3
    docs = make_corpus(small, pool_w, 40, 3, junk=junk, seed=1).docs
    ratio = np.exp(mixture_log_prob(small, docs, hq_w)
                   - mixture_log_prob(small, docs, pool_w, junk=junk))
    for x, r in zip(docs, ratio):
        pa, pb = _direct(small, 0, x), _direct(small, 1, x)
        p_pool = 0.2 * pa + 0.5 * pb + 0.3 * 3.0 ** -3
        assert r == pytest.approx(pa / p_pool, rel=1e-10)


def test_mixture_density_sums_to_one(small):
    seqs = np.array(list(itertools.product(range(3), repeat=4)))
    total = np.exp(mixture_log_prob(small, seqs, {"a": 1, "b": 2}, junk=0.5)).sum()
    assert total == pytest.approx(1.0)


def test_sampling_frequencies_match_probabilities():
    domains = make_domains(("a", "b"), vocab_size=2, branching=1, smoothing=0.3, seed=0)
    docs = domains.sample(1, 20000, 3, np.random.default_rng(0))
    seqs = list(itertools.product(range(2), repeat=3))
    for s in seqs:
        p = _direct(domains, 1, s)
        freq = np.all(docs == np.array(s), axis=1).mean()
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / 20000) + 1e-9


def test_corpus_counts_and_permutations():
    domains = make_domains(vocab_size=20, seed=0)
    corpus = make_corpus(domains, {"science": 1, "news": 3}, 100, 10, junk=1, permuted=0.5,
                         seed=0)
    assert (corpus.domain == 0).sum() == 20 and (corpus.domain == 1).sum() == 60
    assert (corpus.domain == JUNK).sum() == 20
    assert corpus.permuted.sum() == 40 and not corpus.permuted[corpus.domain == JUNK].any()
    comp = corpus.composition(domains.names)
    assert comp["permuted"] == pytest.approx(0.4) and comp["junk"] == pytest.approx(0.2)
    assert sum(comp.values()) == pytest.approx(1.0)
    assert corpus.tokens == 1000


def test_permuting_keeps_the_tokens():
    domains = make_domains(vocab_size=20, seed=0)
    plain = make_corpus(domains, {"news": 1}, 50, 12, seed=4)
    shuffled = make_corpus(domains, {"news": 1}, 50, 12, permuted=1.0, seed=4)
    np.testing.assert_array_equal(np.sort(plain.docs, 1), np.sort(shuffled.docs, 1))
    assert (plain.docs != shuffled.docs).any()


@pytest.mark.parametrize(("call", "name"), [
    (lambda d: make_domains(vocab_size=3, branching=4), "branching"),
    (lambda d: make_corpus(d, {"nope": 1}, 10, 5), "nope"),
    (lambda d: make_corpus(d, {"news": 1}, 10, 5, junk=-1), "junk"),
    (lambda d: make_corpus(d, {"news": 1}, 10, 5, permuted=2.0), "permuted"),
    (lambda d: d.log_prob(np.array([[0, 99]])), "docs"),
    (lambda d: mixture_log_prob(d, np.zeros((2, 3), dtype=int), {"news": -1}), "weights"),
])
def test_bad_inputs_raise(call, name):
    with pytest.raises(ValueError, match=name):
        call(make_domains(vocab_size=20, seed=0))
