"""The study's measurements against references: a chain "model" whose losses are the exact
chain probabilities, brute-force cloze answers, the implicit filter recomputed by hand, budget
accounting across arms, the claims' verdicts on planted results, and bad inputs."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from otkit.dataquality.corpus import make_domains, mixture_log_prob
from otkit.dataquality.study import (
    ArmResult,
    ImplicitFilter,
    StudySetup,
    cloze_accuracy,
    implicit_filter,
    keep_fraction_grid,
    lm_loss,
    make_cloze,
    make_domain_arm,
    make_permutation_arm,
    mixture_loss,
    read_claims,
    run_seed,
    select,
)
from otkit.nn.trainer import TrainerConfig

SMALL = StudySetup(vocab_size=16, length=10, n_pool=400, n_hq=100, n_eval=60, d_model=16)


class ChainModel(nn.Module):
    """logits[t] = log A(x_t, ·): the exact next-token law of one chain."""

    def __init__(self, transition: np.ndarray):
        super().__init__()
        self.log_a = torch.as_tensor(np.log(transition))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.log_a[ids]


@pytest.fixture(scope="module")
def arm():
    return make_domain_arm(SMALL, seed=0)


def test_lm_loss_of_the_true_chain_is_its_entropy_rate(arm):
    docs = arm.domain_eval["news"]
    k = arm.domains.index("news")
    model = ChainModel(arm.domains.transition[k])
    exact = -arm.domains.log_prob(docs, first=False)[:, k].mean() / (docs.shape[1] - 1)
    assert lm_loss(model, docs) == pytest.approx(exact, rel=1e-6)


def test_cloze_accuracy_equals_brute_force(arm):
    domains = arm.domains
    task = make_cloze(domains, "science", 50, prompt=5, answer=3, seed=1)
    assert task.prompts.shape == (50, 5) and task.choices.shape == (50, 4, 3)
    k = domains.index("science")
    model = ChainModel(domains.transition[k])
    right = 0
    for p, choices in zip(task.prompts, task.choices):
        scores = [domains.log_prob(np.r_[p, c][None], first=False)[0, k] for c in choices]
        right += int(np.argmax(scores) == 0)  # the prompt part is common to every choice
    assert cloze_accuracy(model, task) == pytest.approx(right / 50)
    assert right / 50 > 0.5  # the true chain tells its own continuations apart


def test_mixture_loss_of_one_domain(arm):
    docs = arm.domain_eval["forum"]
    k = arm.domains.index("forum")
    exact = -arm.domains.log_prob(docs)[:, k].mean() / docs.shape[1]
    assert mixture_loss(arm.domains, docs, {"forum": 1.0}) == pytest.approx(exact)
    mixed = mixture_loss(arm.domains, docs, {"forum": 0.5, "junk": 0.5})
    direct = -mixture_log_prob(arm.domains, docs, {"forum": 1}, junk=1).mean() / docs.shape[1]
    assert mixed == pytest.approx(direct)


def test_implicit_filter_by_hand(arm):
    f = implicit_filter(arm)
    threshold = np.sort(arm.scores)[::-1][arm.k - 1]
    keep = arm.classifier.score(arm.hq_eval.docs) >= threshold
    assert f.kept == pytest.approx(keep.mean())
    sci = arm.hq_eval.domain == arm.domains.index("science")
    assert f.per_domain["science"] == pytest.approx(keep[sci].mean())
    assert 0.0 <= f.distortion <= 1.0


def test_keep_fraction_grid_matches_selections(arm):
    grid = keep_fraction_grid(arm, [0.05, 0.2], methods=("cqf", "random"), train=False)
    assert grid.fractions == (0.05, 0.2) and grid.composition.shape == (2, 2, 5)
    k = round(0.2 * len(arm.pool))
    top = np.argsort(-arm.scores, kind="stable")[:k]
    share = (arm.pool.domain[top] == arm.domains.index("science")).mean()
    cell = grid.at("cqf", 0.2)
    assert cell["composition"]["science"] == pytest.approx(share) and cell["k"] == k
    np.testing.assert_allclose(grid.composition.sum(-1), 1.0)
    assert np.isnan(grid.hq_loss).all() and np.isfinite(grid.mixture_hq_loss).all()
    assert grid.tokens.tolist() == [grid.k[0] * SMALL.length, k * SMALL.length]


def test_keep_fraction_grid_trains_each_cell(arm):
    trainer = TrainerConfig(steps=5, batch_size=8, warmup=1, eval_every=5)
    grid = keep_fraction_grid(arm, [0.1], methods=("cqf",), trainer=trainer)
    assert np.isfinite(grid.hq_loss).all() and 0.0 <= grid.cloze[0, 0] <= 1.0


def test_equal_budgets_across_methods_and_arms():
    trainer = TrainerConfig(steps=5, batch_size=8, warmup=1, eval_every=5)
    results, f, pf = run_seed(SMALL, seed=0, methods=("random", "cqf", "oracle", "crisp", "ot"),
                              trainer=trainer)
    tokens = {r.tokens for r in results}
    assert tokens == {SMALL.budget_tokens}
    assert [r.arm for r in results].count("permutation") == 2
    assert all(math.isfinite(r.hq_loss) for r in results)
    assert isinstance(f, ImplicitFilter) and isinstance(pf, ImplicitFilter)
    perm = make_permutation_arm(SMALL, seed=0)
    assert perm.k == make_domain_arm(SMALL, seed=0).k


def _result(arm, method, seed, hq, cloze):
    return ArmResult(arm, method, seed, hq, {"science": hq}, cloze, {}, 1)


def test_read_claims_verdicts():
    rows = []
    for s in range(3):
        rows += [_result("domain", "random", s, 3.0 + 0.01 * s, 0.1),
                 _result("domain", "cqf", s, 3.0 + 0.02 * s, 0.8 + 0.01 * s),
                 _result("permutation", "random", s, 3.0, math.nan),
                 _result("permutation", "cqf", s, 2.5 + 0.01 * s, math.nan)]
    filt = [ImplicitFilter(0.3 + 0.01 * s, {}, 0.5 + 0.01 * s) for s in range(3)]
    perm = [ImplicitFilter(0.9, {}, 0.01 * s) for s in range(3)]
    claims = read_claims(rows, filt, perm)
    assert claims["cqf_vs_random_cloze"].verdict == "higher" and claims["claim_downstream"]
    assert claims["cqf_vs_random_hq_loss"].verdict == "tie" and claims["claim_no_hq_gain"]
    assert claims["perm_cqf_vs_random_hq_loss"].verdict == "lower"
    assert claims["claim_filters_hq"] and claims["claim_permutation_differs"]
    flipped = [dataclasses.replace(r, hq_loss=r.hq_loss - 1) if r.method == "cqf" else r
               for r in rows]
    assert not read_claims(flipped, filt, perm)["claim_no_hq_gain"]


@pytest.mark.parametrize(("call", "name"), [
    (lambda a: StudySetup(benchmark="ads"), "benchmark"),
    (lambda a: StudySetup(keep_fraction=1.5), "keep_fraction"),
    (lambda a: select(a, "bogus"), "method"),
    (lambda a: select(make_permutation_arm(SMALL), "oracle"), "method"),
    (lambda a: keep_fraction_grid(a, [0.0], train=False), "fractions"),
    (lambda a: keep_fraction_grid(a, [0.1], ["crisp"], train=False), "methods"),
    (lambda a: make_cloze(make_domains(("x",), vocab_size=4), "x", 3), "two domains"),
    (lambda a: read_claims([], [], []), "results"),
])
def test_bad_inputs_raise(arm, call, name):
    with pytest.raises(ValueError, match=name):
        call(arm)
