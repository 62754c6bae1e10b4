"""otkit.steering.study: steering methods compared at matched cost, over seeds.

The interpolation is checked on closed-form curves (a wrong interpolation, in λ instead of in
the cost, or at the last crossing instead of the first, gives another number); the verdicts on
synthetic seeds whose answer is known; the studies on tiny tasks.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from otkit.steering import AffineMap, Intervention, linear_act, steer
from otkit.steering.study import (
    Method,
    amplify,
    digit_study,
    fit_method,
    matched_comparison,
    matched_rates,
    matched_summary,
    mean_curves,
    text_study,
    value_at_level,
)

# ------------------------------------------------------------------------------ interpolation


def test_value_at_level_interpolates_in_the_cost_on_a_closed_form_curve():
    # perplexity ratio p(λ) = 1 + λ², rate r = 0.1 + 0.4 (p − 1): linear in p, not in λ, so
    # interpolating in the cost is exact at any level and on any grid
    lams = [0.0, 0.3, 0.7, 1.2, 2.0]
    costs = [1 + lam**2 for lam in lams]
    rates = [0.1 + 0.4 * (c - 1) for c in costs]
    for level in (1.1, 1.25, 1.5, 2.0, 4.9):
        assert value_at_level(costs, rates, level) == pytest.approx(0.1 + 0.4 * (level - 1), abs=1e-12)
    # interpolating in λ instead (λ* from the bracketing λs) would give 0.2 + ... ≠ 0.2
    lam_lo, lam_hi = 0.3, 0.7
    lam_star = lam_lo + (1.25 - (1 + lam_lo**2)) / ((1 + lam_hi**2) - (1 + lam_lo**2)) * (lam_hi - lam_lo)
    assert 0.1 + 0.4 * lam_star**2 != pytest.approx(0.2, abs=1e-3)


def test_value_at_level_on_a_curved_curve_uses_the_two_bracketing_points():
    # rate = √(p − 1) along p = 1 + λ: between (1.25, 0.5) and (2, 1), level 1.5 gives
    # 0.5 + (0.25 / 0.75) · 0.5 = 2/3 (not √0.5, the curve's own value there)
    costs = [1.0, 1.25, 2.0, 3.0]
    rates = [math.sqrt(c - 1) for c in costs]
    assert value_at_level(costs, rates, 1.5) == pytest.approx(2 / 3, abs=1e-12)
    assert value_at_level(costs, rates, 1.25) == pytest.approx(0.5, abs=1e-12)


def test_value_at_level_takes_the_first_crossing_and_says_when_it_cannot():
    # the cost goes up to 2, down to 1.2, up to 3: level 1.5 is first crossed on the way up
    costs = [1.0, 2.0, 1.2, 3.0]
    rates = [0.0, 1.0, 0.2, 0.9]
    assert value_at_level(costs, rates, 1.5) == pytest.approx(0.5)
    assert math.isnan(value_at_level(costs, rates, 3.5))  # never reached
    assert value_at_level(costs, rates, 3.5, beyond="last") == 0.9
    assert math.isnan(value_at_level([1.2, 1.5], [0.1, 0.2], 1.1))  # starts above
    assert value_at_level([1.1, 1.5], [0.1, 0.2], 1.1) == 0.1  # starts at
    with pytest.raises(ValueError, match="one length"):
        value_at_level([1.0, 2.0], [0.1], 1.5)
    with pytest.raises(ValueError, match="finite"):
        value_at_level([1.0, math.nan], [0.1, 0.2], 1.5)
    with pytest.raises(ValueError, match="beyond"):
        value_at_level([1.0, 2.0], [0.1, 0.2], 1.5, beyond="clip")


def _rows(method, seed, costs, rates, mode="induce"):
    strengths = [0.0, 0.5, 1.0, 2.0][: len(costs)]
    return [{"seed": seed, "mode": mode, "method": method, "strength": s, "perplexity_ratio": c,
             "concept_rate": r} for s, c, r in zip(strengths, costs, rates)]


def test_mean_curves_average_over_seeds_per_mode_method_and_strength():
    rows = [{"mode": "induce", "method": "a", "strength": lam, "seed": s,
             "concept_rate": 0.1 * s + lam, "perplexity_ratio": 1.0 + lam * s}
            for s in (1, 2, 3) for lam in (0.0, 1.0)]
    rows.append({"method": "b", "strength": 0.0, "seed": 0, "concept_rate": 0.5,
                 "perplexity_ratio": 1.0})  # no mode: read as inducing
    curves = {(c["mode"], c["method"], c["strength"]): c for c in mean_curves(rows)}
    assert set(curves) == {("induce", "a", 0.0), ("induce", "a", 1.0), ("induce", "b", 0.0)}
    one = curves["induce", "a", 1.0]
    assert one["seeds"] == 3
    assert math.isclose(one["concept_rate"], 1.2)
    assert (one["concept_rate_min"], one["concept_rate_max"]) == (1.1, 1.3)
    assert math.isclose(one["perplexity_ratio"], 3.0)
    assert curves["induce", "b", 0.0]["seeds"] == 1


def test_matched_comparison_pairs_seeds_at_equal_cost():
    rows = []
    for seed, noise in enumerate((0.0, 0.01, -0.01, 0.02)):
        # rates linear in the cost: the baseline's slope 1, the method's 1.5, so at cost 1.25
        # the method has 0.475 against 0.35 (plus the seed's noise on both)
        base = [1.0, 1.1, 1.3, 1.8]
        mine = [1.0, 1.4, 2.0, 3.0]
        rows += _rows("base", seed, base, [0.1 + (c - 1) + noise * (c > 1) for c in base])
        rows += _rows("mine", seed, mine, [0.1 + 1.5 * (c - 1) + noise * (c > 1) for c in mine])
        rows += _rows("same", seed, base, [0.1 + (c - 1) + noise * (c > 1) for c in base])
    cmp = matched_comparison(rows, "mine", "base", [1.25])[0]
    assert cmp["seeds"] == 4 and cmp["verdict"] == "higher"
    assert cmp["low"] > 0 and cmp["rate"] > cmp["baseline_rate"]
    # mean noise 0.005, weighted 0.625 where the method's first step brackets the level
    assert cmp["rate"] == pytest.approx(0.475 + 0.625 * 0.005, abs=1e-9)
    assert cmp["baseline_rate"] == pytest.approx(0.35 + 0.005, abs=1e-9)
    assert matched_comparison(rows, "base", "mine", [1.25])[0]["verdict"] == "lower"
    tie = matched_comparison(rows, "same", "base", [1.25])[0]
    assert tie["verdict"] == "tie" and tie["difference"] == 0.0
    # 2.5 is past the baseline's last cost: no paired seed, no verdict
    far = matched_comparison(rows, "mine", "base", [2.5])[0]
    assert far["seeds"] == 0 and far["verdict"] is None and math.isnan(far["rate"])
    summary = {(s["method"], s["level"]): s for s in matched_summary(rows, [1.25, 2.5])}
    assert summary["mine", 2.5]["rated"] == summary["mine", 2.5]["reached"] == 4
    assert summary["base", 2.5]["rated"] == 0 and math.isnan(summary["base", 2.5]["rate"])
    assert summary["base", 1.25]["low"] < summary["base", 1.25]["rate"] < summary["base", 1.25]["high"]
    last = matched_summary(rows, [2.5], beyond="last")
    assert {s["method"]: s["rated"] for s in last} == {"base": 4, "mine": 4, "same": 4}
    assert len(matched_rates(rows, [1.1, 1.25])) == 3 * 4 * 2
    with pytest.raises(ValueError, match="baseline 'nobody'"):
        matched_comparison(rows, "mine", "nobody", [1.25])
    with pytest.raises(ValueError, match="mode 'remove'"):
        matched_comparison(rows, "mine", "base", [1.25], mode="remove")


# ------------------------------------------------------------------------------ extrapolation


def test_amplify_moves_activations_lambda_times_as_far_inside_the_support():
    g = torch.Generator().manual_seed(0)
    source, target = torch.randn(200, 3, generator=g), 2 + 0.5 * torch.randn(200, 3, generator=g)
    m = linear_act(source, target)
    iv = Intervention({"0": m})
    z = torch.cat([source[:5], torch.full((1, 3), 50.0)])  # the last row lies outside the support
    net = nn.Sequential(nn.Identity())
    for lam in (0.0, 0.4, 1.0):
        amp = amplify(iv, lam)
        assert amp.strength == lam and amp.maps["0"] is m
    amp = amplify(iv, 2.5)
    assert amp.strength == 1.0
    with steer(net, amp):
        out = net(z)
    moved = m.transport(z)
    torch.testing.assert_close(out, z + 2.5 * (moved - z))
    torch.testing.assert_close(out[-1], z[-1])  # identity outside the support
    with steer(net, iv, strength=1.0):
        torch.testing.assert_close(net(z), amplify(iv, 1.0).maps["0"](z))
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match="strength"):
            amplify(iv, bad)
    with pytest.raises(TypeError, match="strength"):
        amplify(iv, "2")
    # maps without a support (LinEAS) extrapolate everywhere
    free = Intervention({"0": AffineMap(torch.full((3,), 2.0), torch.ones(3))}, method="lineas")
    with steer(net, amplify(free, 3.0)):
        torch.testing.assert_close(net(z), z + 3.0 * (2 * z + 1 - z))


def test_method_checks_its_fields():
    assert Method("x").estimator == "linear_act"
    with pytest.raises(ValueError, match="estimator"):
        Method("x", "pca")
    with pytest.raises(TypeError, match="name"):
        Method("")
    with pytest.raises(TypeError, match="batches"):
        Method("x", batches=1.5)


# ------------------------------------------------------------------------------ the studies


@pytest.fixture(scope="module")
def text_tasks():
    from otkit.steering.text import text_steering_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {s: text_steering_task(seed=s, steps=60, n_fit=32, batch_size=16, prompts=24)
               for s in (0, 1)}
    finally:
        torch.set_num_threads(threads)


def test_text_study_rows_share_the_unsteered_model_per_seed(text_tasks):
    methods = [Method("few", "mean_shift", batches=1), "linear_act",
               Method("lin", "lineas", batches=1, options={"steps": 3})]
    rows = text_study(methods, [0.0, 1.0, 2.0], [0, 1], modes=("induce", "remove"),
                      task_factory=text_tasks.__getitem__)
    assert len(rows) == 2 * 2 * 3 * 3
    for seed in (0, 1):
        for mode in ("induce", "remove"):
            zero = [r for r in rows if (r["seed"], r["mode"], r["strength"]) == (seed, mode, 0.0)]
            assert len({(r["concept_rate"], r["perplexity"]) for r in zero}) == 1
            assert all(r["perplexity_ratio"] == 1.0 for r in zero)
    few = [r for r in rows if r["method"] == "few" and r["mode"] == "induce" and r["seed"] == 0]
    assert [r["strength"] for r in few] == [0.0, 1.0, 2.0]
    assert few[2]["perplexity"] != few[1]["perplexity"]  # λ = 2 is not λ = 1
    # fit on one batch: the same maps as mean_shift fitted on that batch alone
    task = text_tasks[0]
    iv = fit_method(task, Method("few", "mean_shift", batches=1))
    from otkit.steering import fit_act

    ref = fit_act(task.model, task.modules, task.source[:1], task.target[:1], method="mean_shift",
                  forward=task.forward, pool=task.pool)
    for name in iv.maps:
        torch.testing.assert_close(iv.maps[name].beta, ref.maps[name].beta)
    with pytest.raises(ValueError, match="strengths must start at 0"):
        text_study(["linear_act"], [0.5, 1.0], [0], task_factory=text_tasks.__getitem__)
    with pytest.raises(ValueError, match="distinct names"):
        text_study(["linear_act", "linear_act"], [0.0], [0], task_factory=text_tasks.__getitem__)
    with pytest.raises(ValueError, match="seeds"):
        text_study(["linear_act"], [0.0], [], task_factory=text_tasks.__getitem__)


@pytest.fixture(scope="module")
def digit_task():
    from otkit.steering.images import digit_steering_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield digit_steering_task(3, "induce", steps=300, classifier_epochs=3, nfe=10,
                                  samples=200, examples=64)
    finally:
        torch.set_num_threads(threads)


def test_digit_study_bounds_the_frechet_rise_beyond_the_class_mix(digit_task):
    rows = digit_study(["mean_shift"], [0.0, 0.5, 1.5], [0], tolerance=2.0,
                       task_factory=lambda seed: digit_task)
    assert len(rows) == 2 * 3
    floor = digit_task.frechet_floor
    for mode in ("induce", "remove"):
        curve = [r for r in rows if r["mode"] == mode]
        base = curve[0]
        assert base["off_manifold"] == 0.0 and base["on_manifold"]
        for r in curve:
            assert r["excess"] == pytest.approx(r["frechet"] - r["mix_frechet"])
            rise = r["excess"] - base["excess"]
            assert r["off_manifold"] == pytest.approx(rise / (2.0 * floor))
            assert r["on_manifold"] == (rise <= 2.0 * floor)
            # on the manifold exactly when the Fréchet distance stays under the bound
            assert r["bound"] == pytest.approx(r["mix_frechet"] + base["excess"] + 2.0 * floor)
            assert r["on_manifold"] == (r["frechet"] <= r["bound"] + 1e-9)
            assert r["frechet_over_floor"] == pytest.approx(r["frechet"] / floor)
            assert 0.0 <= r["confident_rate"] <= r["concept_rate"] <= 1.0
    induce = [r for r in rows if r["mode"] == "induce"]
    assert induce[-1]["concept_rate"] > induce[0]["concept_rate"]
    with pytest.raises(ValueError, match="tolerance"):
        digit_study(["mean_shift"], [0.0], [0], tolerance=0.0, task_factory=lambda seed: digit_task)


def test_mix_frechet_is_the_frechet_distance_of_real_digits_with_that_class_mix(digit_task):
    from otkit.data.samplers import digits
    from otkit.flows.digits import frechet_distance, mean_covariance

    x, _ = digits(split="train", seed=digit_task.seed, return_labels=True)
    with torch.no_grad():
        labels = digit_task.scorer.classifier(x).argmax(1)
    natural = torch.bincount(labels, minlength=10).double()
    feats = digit_task.scorer.features(x)
    # the natural mix is the training digits themselves (population covariance: tiny gap)
    direct = frechet_distance(*mean_covariance(feats), *digit_task._test_stats)
    assert digit_task.mix_frechet(natural) == pytest.approx(direct, rel=0.02)
    # a mix of only threes is the training threes
    only = torch.zeros(10)
    only[3] = 1.0
    threes = frechet_distance(*mean_covariance(feats[labels == 3]), *digit_task._test_stats)
    assert digit_task.mix_frechet(only) == pytest.approx(threes, rel=0.02)
    assert digit_task.mix_frechet(only) > 10 * digit_task.mix_frechet(natural)
    for bad in (torch.zeros(10), -torch.ones(10), torch.ones(9)):
        with pytest.raises(ValueError, match="frequencies"):
            digit_task.mix_frechet(bad)
    score = digit_task.score(digit_task.samples(None))
    assert {"confident_rate", "digit_share", "mix_frechet"} <= set(score)
    assert 0.5 < digit_task.confidence_floor < 1.0
