"""The study's pieces on a small untrained model: prompts, evaluation, allocation, claims."""

import math

import pytest
import torch

from otkit.nectar.attention import WeightedCache
from otkit.nectar.lookup import LookupSpec, lookup_model, make_lookup
from otkit.nectar.study import (
    METHODS,
    allocate,
    evaluate,
    fit_context,
    latency,
    mean_rows,
    nectar_study,
    prepare_context,
    question_prompts,
    read_claims,
)

SPEC = LookupSpec(n_keys=6, n_values=4, n_filler=5, n_records=4, n_questions=3)


@pytest.fixture(scope="module")
def model():
    m = lookup_model(SPEC, max_len=100, d_model=16, n_heads=2, d_mlp=32, seed=1)
    with torch.no_grad():
        for p in m.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn_like(p))
    return m


def test_prompts_ask_the_contexts_records():
    data = make_lookup(SPEC, 20, 1, seed=3)
    context = data.ids[0, :20]
    table = {}
    for t in context.tolist():
        if SPEC.record0 <= t < SPEC.question0:
            table[(t - SPEC.record0) // SPEC.n_values] = (t - SPEC.record0) % SPEC.n_values
    assert len(table) == SPEC.n_records
    prompts = question_prompts(SPEC, context, 5, seed=0)
    for row in prompts.tolist():
        for key, value in zip(row[0::2], row[1::2]):
            assert table[key - SPEC.question0] == value - SPEC.value0
    # the task's own answers follow the same table
    for key, value in zip(data.ids[0, 20::2].tolist(), data.ids[0, 21::2].tolist()):
        assert table[key - SPEC.question0] == value - SPEC.value0


def test_exact_summaries_have_no_gap_and_no_error(model):
    setup = prepare_context(model, SPEC, 30, seed=0, n_train=4, n_test=6)
    result = evaluate(model, setup, [WeightedCache(c.k, c.v) for c in setup.caches])
    assert result["accuracy_gap"] == 0 and abs(result["loss_gap"]) < 1e-5
    assert result["attn"] < 1e-5 and result["logz_0"] < 1e-5
    # the full cache's score is the model's own on context + prompt
    ids = torch.cat([make_lookup(SPEC, 30, 1, seed=0).ids[:, :30].expand(6, -1),
                     setup.test_live], 1)
    with torch.no_grad():
        logits = model(ids)[:, 30::2]
    want = (logits.argmax(-1) == setup.answers).float().mean()
    assert result["accuracy_full"] == pytest.approx(float(want))


def test_allocate_is_proportional_and_keeps_the_total():
    assert allocate([3.0, 1.0], 8) == (6, 2)
    assert allocate([1.0, 1.0], 8) == (4, 4)
    assert allocate([0.0, 5.0], 4) == (1, 3)
    with pytest.raises(ValueError, match="errors"):
        allocate([1.0, math.nan], 4)
    with pytest.raises(ValueError, match="total"):
        allocate([1.0, 1.0], 1)


def test_a_tiny_study_has_every_row_and_claim(model):
    study = nectar_study(model, SPEC, ns=(20, 40), widths=(2, 4), contexts=2, steps=20,
                         n_train=4, n_test=4)
    assert len(study.rows) == 2 * 2 * (2 * len(METHODS) + 2)
    assert {r["method"] for r in study.rows} == set(METHODS) | {"nectar_uniform",
                                                                "nectar_proportional"}
    assert len(mean_rows(study)) == 2 * 2 * len(METHODS) + 2 * 2
    setup = prepare_context(model, SPEC, 40, seed=1, n_train=4, n_test=4)
    timing = latency(setup.caches[0], fit_context(setup, [2, 2], steps=2), [40, 400], reps=3)
    claims = read_claims(study, timing)
    assert -1 <= claims["spearman_accuracy"] <= 1 or math.isnan(claims["spearman_accuracy"])
    assert claims["proportional_loss_gap_verdict"] in ("lower", "higher", "tie")
    assert claims["latency_full_ratio"] > 0 and claims["settings"] == 2 * 2 * len(METHODS)
