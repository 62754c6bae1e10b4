"""otkit.amips.study on a tiny problem: rows, budgets, claims read by otkit.stats, IVF curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otkit.amips.data import cluster_problem
from otkit.amips.study import (
    CLAIMS,
    VARIANTS,
    StudyConfig,
    amips_study,
    build_model,
    claim_comparisons,
    ivf_study,
    mean_by_variant,
    model_flops,
    recall_at_flops,
    train_variant,
)

TINY = StudyConfig(m=400, d=8, clusters=4, steps=60, batch_size=64, n_test=200)


def test_every_variant_meets_the_budget():
    for name, variant in VARIANTS.items():
        model = build_model(variant, TINY, 0)
        n = sum(p.numel() for p in model.parameters())
        assert n <= TINY.budget == int(0.2 * 400 * 8)
        assert n > 0.5 * TINY.budget


def test_study_rows_and_claims():
    rows = amips_study(TINY, seeds=(0, 1), variants=["convex", "unconstrained", "keynet", "keynet_no_score"])
    assert len(rows) == 8
    for r in rows:
        assert 0 <= r["match_rate"] <= r["recall_10"] <= r["recall_100"] <= 1
        assert r["match_rate"] <= r["mrr"] <= 1
        assert math.isfinite(r["final_loss"])
    claims = claim_comparisons(rows)
    assert [c.claim for c in claims] == ["convex >= unconstrained", "score term helps (KeyNet)"]
    for c in claims:
        a = [r["match_rate"] for r in rows if r["variant"] == c.a]
        assert c.mean_a == pytest.approx(np.mean(a))
        assert c.verdict == {"higher": "win", "lower": "loss", "tie": "tie"}[c.comparison.verdict]
    means = mean_by_variant(rows)
    assert set(means) == {"convex", "unconstrained", "keynet", "keynet_no_score"}


def test_claim_verdicts_follow_the_numbers():
    """Synthetic rows: A clearly above B on every seed is a win, below is a loss."""
    rows = [{"variant": v, "seed": s, "match_rate": base + 0.01 * s}
            for s in range(3) for v, base in (("convex", 0.9), ("unconstrained", 0.5), ("convex_no_score", 0.95))]
    by = {c.claim: c.verdict for c in claim_comparisons(rows)}
    assert by == {"convex >= unconstrained": "win", "score term helps (SupportNet)": "loss"}
    assert len(CLAIMS) == 6


def test_ivf_study_full_probe_is_exact_and_flops_grow():
    problem = cluster_problem(600, 8, clusters=4, seed=0)
    _, model = train_variant("keynet", TINY, 0, return_model=True)
    rows = ivf_study(model, problem, cells=8, nprobes=(1, 2, 8), n_test=300)
    assert {r["routing"] for r in rows} == {"query", "predicted_l2", "predicted_ip"}
    for routing in ("query", "predicted_l2", "predicted_ip"):
        curve = sorted((r["nprobe"], r["flops"], r["recall"]) for r in rows if r["routing"] == routing)
        assert [c[0] for c in curve] == [1, 2, 8]
        assert curve[-1][2] == 1.0  # every cell probed: exact MIPS
        assert curve[0][1] < curve[1][1] < curve[2][1]
    extra = [r["flops"] for r in rows if r["routing"] == "predicted_l2" and r["nprobe"] == 8][0]
    plain = [r["flops"] for r in rows if r["routing"] == "query" and r["nprobe"] == 8][0]
    assert extra - plain == pytest.approx(model_flops(model))
    assert math.isnan(recall_at_flops(rows, "query", 1.0))
    assert recall_at_flops(rows, "query", plain) == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="name"):
        train_variant("ridge", TINY, 0)
    with pytest.raises(ValueError, match="variants"):
        amips_study(TINY, seeds=(0,), variants=["ridge"])
    with pytest.raises(ValueError, match="seeds"):
        amips_study(TINY, seeds=())
    with pytest.raises(ValueError, match="routing"):
        recall_at_flops([], "query", 1.0)
    with pytest.raises(ValueError, match="m"):
        cluster_problem(0)
    with pytest.raises(ValueError, match="shift"):
        cluster_problem(10, shift=-1.0)
    with pytest.raises(ValueError, match="n"):
        cluster_problem(10, 4).queries(0)
    assert torch.isfinite(cluster_problem(50, 4).queries(5)).all()


def test_digits_problem_holds_the_training_digits_and_checks_its_sizes():
    from otkit.amips.data import digits_problem
    from otkit.amips.study import DIGITS
    from otkit.data.samplers import digits

    problem = DIGITS.problem(0)
    assert problem.keys.shape == (1438, 64) and DIGITS.budget == int(0.2 * 1438 * 64)
    assert torch.equal(problem.keys, digits(split="train", seed=0))
    assert torch.equal(digits_problem().query_centres, digits(split="test", seed=0))
    q = problem.queries(500, torch.Generator().manual_seed(0))
    # queries are held-out digits plus noise of spread 0.5: their nearest test digit is near
    gap = torch.cdist(q, problem.query_centres).min(1).values
    assert gap.median() < 0.5 * 8 * 1.5
    with pytest.raises(ValueError, match="m = 1438"):
        StudyConfig(data="digits")
    with pytest.raises(ValueError, match="data"):
        StudyConfig(data="faces")
