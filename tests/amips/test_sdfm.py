"""Amortized SD-FM pairs: the coupling's pairs against the exact semidiscrete assignment
(brute force), and the study's rows."""

from __future__ import annotations

import pytest
import torch

from otkit.amips import KeyNet
from otkit.amips.sdfm import (
    AmortizedSemidiscreteCoupling,
    amortized_sdfm_study,
    fit_assigner,
)
from otkit.flows.study import flow_benchmark, semidiscrete_coupling


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    bench = flow_benchmark("moons", train_size=16, reference_size=200, seed=0)
    exact = semidiscrete_coupling(bench, steps=3000, lr=0.1, ema=0.99, tol=0.02, seed=0)
    return bench, exact, fit_assigner(exact, bench.source, hidden=64, steps=1500, seed=0)


def test_decoded_pairs_are_targets_and_mostly_the_exact_ones(fitted):
    bench, exact, model = fitted
    x = bench.source(2000, torch.Generator().manual_seed(5)).float()
    y = exact.fit.y.float()
    # brute force: argmax_j g_j - |x - y_j|^2 / 2
    scores = exact.fit.g.float()[None] - 0.5 * torch.cdist(x, y) ** 2
    truth = y[scores.argmax(1)]
    decoded = AmortizedSemidiscreteCoupling(exact.fit, model=model).pair(x, x).target
    gaps = ((decoded[:, None] - y[None]) ** 2).sum(-1).min(1).values
    assert gaps.max() == 0  # every target is a data point
    agreement = (decoded == truth).all(1).float().mean().item()
    assert agreement > 0.6, agreement  # 16 targets (chance 1/16): it learns most cells
    raw = AmortizedSemidiscreteCoupling(exact.fit, model=model, decode=False).pair(x, x).target
    assert raw.shape == x.shape
    assert ((raw - truth).norm(dim=1).median() < 0.5 * torch.cdist(y, y).max()).item()


def test_coupling_checks_its_model(fitted):
    bench, exact, model = fitted
    with pytest.raises(ValueError, match="model"):
        AmortizedSemidiscreteCoupling(exact.fit, model=KeyNet(5, (8,)))
    with pytest.raises(ValueError, match="model"):
        AmortizedSemidiscreteCoupling(exact.fit)
    with pytest.raises(ValueError, match="x0"):
        AmortizedSemidiscreteCoupling(exact.fit, model=model).pair(torch.zeros(4, 3), torch.zeros(4, 3))


def test_study_pairs_flows_by_seed():
    with pytest.raises(ValueError, match="seeds"):
        amortized_sdfm_study(seeds=[0])
    study = amortized_sdfm_study(seeds=(0, 1), train_size=16, sd_steps=2000, assigner_steps=300,
                                 flow_steps=50, nfes=(1,), num_samples=200)
    assert {r["coupling"] for r in study.rows} == {
        "semidiscrete", "amortized SD (decoded)", "amortized SD (raw)"}
    assert len(study.rows) == 2 * 3 and len(study.agreement) == len(study.chi2_amortized) == 2
    assert all(0 <= a <= 1 for a in study.agreement) and study.flops_ratio > 0
    assert {(c["coupling"], c["nfe"]) for c in study.comparisons} == {
        ("amortized SD (decoded)", 1), ("amortized SD (raw)", 1)}
    for c in study.comparisons:
        assert c["low"] <= c["difference"] <= c["high"]
        assert c["verdict"] in ("lower", "higher", "tie")
