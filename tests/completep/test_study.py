"""The learning-rate transfer study: the minimizer and the entropy rate against closed forms,
the drift on curves built with known minima, a tiny sweep end to end."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from otkit.completep.study import (
    AXES,
    BatchDurationStudy,
    TransferGrid,
    TransferStudy,
    batch_duration_sweep,
    best_log2_lr,
    bigram_table,
    drift,
    entropy_rate,
    lr_sweep,
    markov_text,
    read_claims,
    read_rule_claims,
    rule_drift,
    train_once,
)
from otkit.nn.parameterization import sde_scaling

LRS = (-9.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0)


def test_best_log2_lr_recovers_a_parabolas_vertex():
    x = np.asarray(LRS)
    for vertex in (-7.3, -6.0, -4.55):
        y = 0.7 * (x - vertex) ** 2 + 2.0
        best, interior = best_log2_lr(x, y)
        assert interior and best == pytest.approx(vertex, abs=1e-12)
    best, interior = best_log2_lr(x, (x + 20.0) ** 2)  # falls to the left edge
    assert (best, interior) == (-9.0, False)
    with pytest.raises(ValueError, match="losses"):
        best_log2_lr(x, np.r_[np.nan, x[1:]])


def test_entropy_rate_of_a_two_state_chain():
    a, b = 0.2, 0.6
    table = torch.tensor([[1 - a, a], [b, 1 - b]], dtype=torch.float64)
    pi = np.array([b, a]) / (a + b)
    expected = pi[0] * scipy_stats.entropy([1 - a, a]) + pi[1] * scipy_stats.entropy([b, 1 - b])
    assert entropy_rate(table) == pytest.approx(expected, rel=1e-10)


def test_markov_text_follows_its_table():
    table = bigram_table(6, 1.0, seed=3)
    x, y = markov_text(3000, table, length=12, seed=0)
    assert x.shape == y.shape == (3000, 12) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    counts = torch.zeros(6, 6)
    counts.index_put_((x.reshape(-1), y.reshape(-1)), torch.ones(x.numel()), accumulate=True)
    freq = counts / counts.sum(1, keepdim=True)
    assert (freq - table.float()).abs().max() < 0.03


def _grid(**kw):
    base = dict(schemes=("sp", "mup", "completep"), widths=(16, 32), depths=(2, 3),
                log2_lrs=LRS, seeds=(0, 1))
    base.update(kw)
    return TransferGrid(**base)


def _study_with_minima(minima: dict) -> TransferStudy:
    """Losses (x − m)² + 2 with m = minima[(scheme, shape)] (+ a seed offset of ±0.25)."""
    grid = _grid()
    x = np.asarray(LRS)
    losses = np.zeros((len(grid.schemes), len(grid.shapes), len(LRS), 2))
    for i, s in enumerate(grid.schemes):
        for j, shape in enumerate(grid.shapes):
            for k, off in enumerate((-0.25, 0.25)):
                losses[i, j, :, k] = (x - minima[(s, shape)] - off * j) ** 2 + 2.0
    return TransferStudy(grid, losses)


def test_drift_and_claims_on_known_minima():
    base, wide, deep = (16, 2), (32, 2), (16, 3)
    minima = {("sp", base): -5, ("sp", wide): -7.2, ("sp", deep): -5.5,
              ("mup", base): -5, ("mup", wide): -5.4, ("mup", deep): -5.5,
              ("completep", base): -5, ("completep", wide): -5.4, ("completep", deep): -4.6}
    study = _study_with_minima(minima)
    d = drift(study, "sp", *wide)
    assert d.of_mean == pytest.approx(-2.2) and not d.edge
    # the seeds' minima sit at −7.2 ∓ 0.25 against −5 (shape index 1): −2.45 and −1.95
    assert d.per_seed == pytest.approx((-2.45, -1.95))
    assert d.interval.estimate == pytest.approx(-2.2)
    claims = read_claims(study)
    assert claims["max_drift_sp"] == pytest.approx(2.2)
    assert claims["max_drift_completep"] == pytest.approx(0.4)
    assert claims["claim_reproduced"] is True
    minima[("completep", deep)] = -3.8  # CompleteP now drifts by 1.2 octaves in depth
    assert read_claims(_study_with_minima(minima))["claim_reproduced"] is False


def test_a_tiny_sweep_end_to_end():
    grid = _grid(log2_lrs=(-8.0, -6.0, -4.0), steps=6, n_train=64, n_eval=32, length=8)
    study = lr_sweep(grid)
    assert study.losses.shape == (3, 3, 3, 2)
    assert np.all(np.isfinite(study.losses)) and np.all(study.losses <= math.log(grid.vocab))
    # μP at the base width is SP, CompleteP at the base depth is μP: shared, not retrained
    assert study.shared[("mup", 16, 2)] == "sp" and study.shared[("completep", 32, 2)] == "mup"
    assert ("completep", 16, 3) not in study.shared
    assert study.runs == 5 * 3 * 2
    np.testing.assert_array_equal(study.curve("mup", 16, 3), study.curve("sp", 16, 3))
    assert not np.array_equal(study.curve("completep", 16, 3), study.curve("sp", 16, 3))
    # a single run reproduces its entry (the sweep is deterministic)
    one = train_once(grid, "completep", 16, 3, -6.0, 1)
    assert one == pytest.approx(study.curve("completep", 16, 3)[1, 1], abs=1e-6)
    # and the loss fell below ln V (the models learn)
    assert study.losses.min() < math.log(grid.vocab) - 0.05


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"widths": (32, 64)}, "widths"), ({"depths": (4,)}, "depths"),
    ({"log2_lrs": (-8.0, -7.0, -5.0)}, "log2_lrs"), ({"schemes": ("ntk",)}, "schemes"),
    ({"widths": (16, 24)}, "widths"), ({"steps": 0}, "steps"),
])
def test_bad_grids_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        _grid(**kwargs)
    with pytest.raises(ValueError, match="width, depth"):
        _study_with_minima({(s, sh): -5 for s in ("sp", "mup", "completep")
                            for sh in _grid().shapes}).curve("sp", 64, 2)


def _rule_study(base_min, arms):
    """A BatchDurationStudy whose curves are parabolas with minima base_min ∓ 0.25 (two seeds)
    and arms[(axis, rule)] ∓ 0.25."""
    g = _grid()
    x = np.asarray(g.log2_lrs)

    def curves(m):
        return np.stack([0.3 * (x - (m + o)) ** 2 + 2.0 for o in (-0.25, 0.25)], axis=1)

    losses = np.stack([np.stack([curves(arms[(a, r)]) for r in (False, True)])
                       for a in AXES])
    rules = {"batch": sde_scaling(batch_size=64, base_batch_size=16),
             "duration": sde_scaling(batch_size=16, base_batch_size=16, samples=1,
                                     base_samples=4)}
    return BatchDurationStudy(g, 4, 0.25, curves(base_min), losses, rules)


def test_rule_drift_and_claims_on_known_minima():
    study = _rule_study(-5.0, {("batch", False): -4.0, ("batch", True): -5.3,
                               ("duration", False): -5.5, ("duration", True): -6.5})
    d = rule_drift(study, "batch", False)
    assert d.of_mean == pytest.approx(1.0) and d.per_seed == pytest.approx((1.0, 1.0))
    c = read_rule_claims(study)
    assert c["drift_batch_rule"] == pytest.approx(-0.3)
    assert c["drift_duration_norule"] == pytest.approx(-0.5)
    assert c["predicted_batch"] == pytest.approx(1.0) and c["predicted_duration"] == 1.0
    assert c["rule_within_1_batch"] is True and c["rule_within_1_duration"] is False
    # identical per-seed drifts: a zero-width interval, so the verdicts are strict
    assert c["abs_drift_rule_vs_norule_batch"] == "lower"
    assert c["abs_drift_rule_vs_norule_duration"] == "higher"
    with pytest.raises(ValueError, match="axis"):
        rule_drift(study, "width", True)


def test_a_tiny_batch_duration_sweep_end_to_end():
    grid = _grid(log2_lrs=(-8.0, -7.0, -6.0, -5.0), steps=40, n_train=64, n_eval=32, length=8,
                 schemes=("sp",), widths=(16,), depths=(2,), batch_size=4)
    base = lr_sweep(grid)
    bd = batch_duration_sweep(grid, batch_ratio=2, duration_ratio=0.25, study=base)
    assert bd.losses.shape == (2, 2, 4, 2) and bd.runs == 2 * 2 * 4 * 2
    assert np.all(np.isfinite(bd.losses)) and np.all(bd.losses <= math.log(grid.vocab))
    np.testing.assert_array_equal(bd.base, base.curve("sp", 16, 2))
    # without the study the base curve is trained: the same numbers
    alone = batch_duration_sweep(grid, batch_ratio=2, duration_ratio=0.25)
    np.testing.assert_allclose(alone.base, bd.base, atol=1e-6)
    # at a fixed batch and a quarter of the steps the rule only doubles η (and halves ε,
    # negligible here):
    # its curve is the plain one moved one grid step left
    np.testing.assert_allclose(bd.losses[1, 1, :-1], bd.losses[1, 0, 1:], atol=1e-3)
    # the batch rule also changes β: a different computation
    assert not np.allclose(bd.losses[0, 1, :-1], bd.losses[0, 0, 1:], atol=1e-3)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"batch_ratio": 1}, "batch_ratio"), ({"batch_ratio": 3}, "batch_ratio"),
    ({"batch_ratio": 16}, "batch_ratio"), ({"duration_ratio": 1.0}, "duration_ratio"),
    ({"duration_ratio": 0.0}, "duration_ratio"), ({"duration_ratio": 0.05}, "duration_ratio"),
])
def test_batch_duration_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        batch_duration_sweep(_grid(steps=160), **kwargs)


def test_qk_norm_grid_trains_a_model_with_qk_norm():
    grid = _grid(steps=6, n_train=64, n_eval=32, length=8)
    plain = train_once(grid, "mup", 32, 2, -6.0, 0)
    normed = train_once(replace(grid, qk_norm=True), "mup", 32, 2, -6.0, 0)
    assert math.isfinite(normed) and normed != plain
    with pytest.raises(TypeError, match="qk_norm"):
        _grid(qk_norm=1)
