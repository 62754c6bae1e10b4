"""Amortized SD-FM pairs: the coupling's pairs against the exact semidiscrete assignment
(brute force), and the study's rows."""

from __future__ import annotations

import pytest
import torch

from otkit.amips import IVFIndex, KeyNet
from otkit.amips.sdfm import (
    AmortizedSemidiscreteCoupling,
    amortized_sdfm_study,
    augmented_index,
    fit_assigner,
    ivf_decoding_benchmark,
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


def test_ivf_decoding_at_full_probing_is_the_full_scan(fitted):
    bench, exact, model = fitted
    x = bench.source(2000, torch.Generator().manual_seed(6)).float()
    full = AmortizedSemidiscreteCoupling(exact.fit, model=model)
    index = augmented_index(exact.fit, 4, generator=torch.Generator().manual_seed(0))
    every = AmortizedSemidiscreteCoupling(exact.fit, model=model, index=index, nprobe=4)
    assert torch.equal(every.assign(x), full.assign(x))
    # brute force: the augmented key nearest to the prediction
    keys = torch.cat([exact.fit.y, (exact.fit.g - 0.5 * (exact.fit.y**2).sum(1))[:, None]], 1).float()
    assert torch.equal(full.assign(x), torch.cdist(full.predict(x), keys).argmin(1))
    one = AmortizedSemidiscreteCoupling(exact.fit, model=model, index=index, nprobe=1)
    assert one.name == "amortized SD (IVF, nprobe 1)"
    assert (one.assign(x) == full.assign(x)).float().mean() > 0.5
    assert one.pair(x, x).target.shape == x.shape


def test_ivf_decoding_bad_inputs(fitted):
    bench, exact, model = fitted
    index = augmented_index(exact.fit, 4)
    with pytest.raises(ValueError, match="nprobe"):
        AmortizedSemidiscreteCoupling(exact.fit, model=model, index=index)
    with pytest.raises(ValueError, match="nprobe"):
        AmortizedSemidiscreteCoupling(exact.fit, model=model, index=index, nprobe=5)
    with pytest.raises(ValueError, match="nprobe needs an index"):
        AmortizedSemidiscreteCoupling(exact.fit, model=model, nprobe=1)
    with pytest.raises(ValueError, match="index must hold"):
        AmortizedSemidiscreteCoupling(exact.fit, model=model, index=IVFIndex.build(torch.randn(20, 3), 2), nprobe=1)
    with pytest.raises(TypeError, match="index"):
        AmortizedSemidiscreteCoupling(exact.fit, model=model, index="ivf", nprobe=1)
    with pytest.raises(ValueError, match="nprobes"):
        ivf_decoding_benchmark(targets=16, cells=4, nprobes=(8,))


def test_ivf_decoding_benchmark_rows():
    b = ivf_decoding_benchmark(targets=64, seeds=(0,), nprobes=(1, 8), sd_steps=200, assigner_steps=50,
                               points=256, repeats=1)
    assert b.cells == 8 and [r["method"] for r in b.rows] == ["exact", "full scan", "ivf nprobe 1", "ivf nprobe 8"]
    assert b.values("ivf nprobe 8", "full_scan_agreement") == [1.0]  # every cell: the full scan
    assert b.values("ivf nprobe 1", "scanned")[0] < 64
    assert all(r["seconds_per_point"] > 0 for r in b.rows)
