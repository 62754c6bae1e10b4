"""Each selector against a planted case or brute force, and the budget accounting."""

import itertools

import numpy as np
import pytest

from otkit.dataquality.corpus import make_corpus, make_domains, mixture_log_prob
from otkit.dataquality.selection import (
    _allocate,
    budget_count,
    fit_quality_classifier,
    received_mass,
    select_cqf,
    select_crisp,
    select_oracle,
    select_ot,
    select_random,
    select_top,
)


def test_budget_accounting():
    assert budget_count(1000, 24, 100) == 41
    sel = select_random(100, 41, seed=1)
    assert sel.tokens(24) == 41 * 24 <= 1000
    assert len(np.unique(sel.index)) == 41 and sel.index.max() < 100
    with pytest.raises(ValueError, match="budget_tokens"):
        budget_count(10, 24, 100)
    with pytest.raises(ValueError, match="budget_tokens"):
        budget_count(24 * 101, 24, 100)


def test_select_top_is_a_sort():
    scores = np.array([0.3, 2.0, -1.0, 2.0, 0.5])
    assert select_top(scores, 3).index.tolist() == [1, 3, 4]


def test_cqf_keeps_planted_hq_like_documents():
    domains = make_domains(vocab_size=30, seed=0)
    rng = np.random.default_rng(0)
    planted = domains.sample(0, 60, 20, rng)
    junk = rng.integers(30, size=(540, 20))
    pool = np.concatenate([junk[:270], planted, junk[270:]])
    hq = domains.sample(0, 200, 20, rng)
    sel = select_cqf(pool, hq, 60)
    assert np.isin(sel.index, np.arange(270, 330)).mean() >= 0.95


def test_classifier_score_tracks_the_exact_ratio():
    domains = make_domains(vocab_size=30, seed=1)
    pool_w, hq_w = {"science": 0.1, "news": 0.6}, {"science": 1.0, "news": 1.0}
    pool = make_corpus(domains, pool_w, 2000, 20, junk=0.3, seed=1).docs
    hq = make_corpus(domains, hq_w, 400, 20, seed=2).docs
    exact = mixture_log_prob(domains, pool, hq_w) - mixture_log_prob(domains, pool, pool_w,
                                                                       junk=0.3)
    score = fit_quality_classifier(pool, hq).score(pool)
    assert np.corrcoef(score, exact)[0, 1] > 0.7  # a noisy estimate, far from 0


def test_oracle_sampling_is_successive_sampling():
    w = np.array([1.0, 2.0, 3.0, 4.0])
    # brute force: P(i in a sample of 2 drawn without replacement, each draw ∝ w)
    inclusion = np.zeros(4)
    for i, j in itertools.permutations(range(4), 2):
        p = w[i] / w.sum() * w[j] / (w.sum() - w[i])
        inclusion[[i, j]] += p
    draws = np.zeros(4)
    n = 4000
    for s in range(n):
        draws[select_oracle(np.log(w), 2, seed=s).index] += 1
    se = np.sqrt(inclusion * (1 - inclusion) / n)
    assert np.all(np.abs(draws / n - inclusion) < 4 * se)
    assert select_oracle(np.log(w), 2, mode="top").index.tolist() == [2, 3]


def test_allocate_caps_and_redistributes():
    quota = _allocate(20, np.array([0.9, 0.1, 0.0]), np.array([5, 100, 100]))
    assert quota.tolist() == [5, 15, 0]


def _blobs(rng, sizes, centers):
    return np.concatenate([c + 0.05 * rng.standard_normal((n, 2)) for n, c in zip(sizes, centers)])


def test_crisp_follows_the_hq_histogram():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    pool = _blobs(rng, [100, 100, 100], centers)
    hq = _blobs(rng, [30, 10, 0], centers)
    sel = select_crisp(pool, hq, 40, n_clusters=3)
    counts = np.bincount(sel.index // 100, minlength=3)
    assert counts.tolist() == [30, 10, 0]


def test_ot_keeps_the_pool_documents_near_hq():
    rng = np.random.default_rng(0)
    hq = rng.standard_normal((30, 3))
    near = hq + 0.01 * rng.standard_normal((30, 3))
    far = 6.0 + rng.standard_normal((70, 3))
    pool = np.concatenate([far[:35], near, far[35:]])
    mass = received_mass(pool, hq)
    assert mass.sum() == pytest.approx(1.0, abs=1e-2)  # HQ side exact: all mass is received
    sel = select_ot(pool, hq, 30)
    assert sel.index.tolist() == list(range(35, 65))


def test_received_mass_solves_the_semi_relaxed_problem():
    """Against a direct minimization (scipy) of <P, C> + eps KL(P | a b^T) + rho KL(P1 | a)
    subject to P^T 1 = b, rho = eps tau / (1 - tau), on a 4 x 3 problem."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 2)), rng.standard_normal((3, 2))
    a, b = np.full(4, 0.25), np.full(3, 1 / 3)
    cost = 0.5 * ((x[:, None] - y[None]) ** 2).sum(-1)
    eps, tau = 0.3, 0.5
    rho = eps * tau / (1 - tau)

    def objective(z):
        p = np.exp(z).reshape(4, 3)
        row = p.sum(1)
        return ((p * cost).sum() + eps * (p * np.log(p / np.outer(a, b)) - p).sum()
                + rho * (row * np.log(row / a) - row).sum())

    cons = {"type": "eq", "fun": lambda z: np.exp(z).reshape(4, 3).sum(0) - b}
    z0 = np.log(np.outer(a, b)).ravel()
    best = minimize(objective, z0, constraints=[cons], method="SLSQP",
                    options={"ftol": 1e-14, "maxiter": 2000})
    assert best.success
    direct = np.exp(best.x).reshape(4, 3).sum(1)
    mass = received_mass(x, y, epsilon=eps, tau_a=tau, tol=1e-9, max_iter=100000)
    np.testing.assert_allclose(mass, direct, atol=1e-5)
    assert not np.allclose(direct, a, atol=1e-3)  # the pool side is really relaxed


@pytest.mark.parametrize(("call", "name"), [
    (lambda: select_random(5, 6), "k"),
    (lambda: select_oracle(np.zeros(5), 2, mode="bogus"), "mode"),
    (lambda: select_oracle(np.array([0.0, np.nan]), 1), "log_ratio"),
    (lambda: select_crisp(np.zeros((5, 2)), np.zeros((3, 3)), 2), "pool_emb"),
    (lambda: select_crisp(np.zeros((5, 2)), np.zeros((3, 2)), 2, n_clusters=9), "n_clusters"),
    (lambda: received_mass(np.zeros((5, 2)), np.zeros((3, 2)), tau_a=0.0), "tau_a"),
    (lambda: fit_quality_classifier(np.zeros((3, 4)), np.zeros((3, 4), dtype=int)), "pool"),
    (lambda: select_top(np.array([1.0, np.inf]), 1), "scores"),
])
def test_bad_inputs_raise(call, name):
    with pytest.raises(ValueError, match=name):
        call()
