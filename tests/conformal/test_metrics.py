"""otkit.conformal.metrics against brute-force NumPy references and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from otkit.conformal.metrics import (
    BinnedCoverage,
    binned_coverage,
    conditional_coverage_error,
    coverage,
    worst_slab_coverage,
)


def brute_wsc(x: np.ndarray, covered: np.ndarray, directions: np.ndarray, delta: float) -> float:
    """Minimum coverage over every slab {a ≤ vᵀx ≤ b} (a ≤ b among the projected values) that
    holds at least delta·k points, by enumeration."""
    k = len(covered)
    best = math.inf
    for v in directions:
        z = x @ (v / np.linalg.norm(v))
        values = np.unique(z)
        for i, a in enumerate(values):
            for b in values[i:]:
                inside = (z >= a) & (z <= b)
                if inside.sum() >= delta * k - 1e-9:
                    best = min(best, covered[inside].mean())
    return best


# --------------------------------------------------------------------------------------------
# coverage
# --------------------------------------------------------------------------------------------


def test_coverage_inputs():
    assert coverage(torch.tensor([True, False, True, True])) == 0.75
    assert coverage(np.array([1, 0, 0, 0])) == 0.25
    assert coverage([1.0, 1.0]) == 1.0
    assert isinstance(coverage(torch.tensor([True])), float)


@pytest.mark.parametrize(
    "covered, error",
    [
        (torch.tensor([0, 2, 1]), ValueError),
        (torch.tensor([0.5, 1.0]), ValueError),
        (torch.ones(2, 2, dtype=torch.bool), ValueError),
        (torch.ones(0, dtype=torch.bool), ValueError),
        ("abc", TypeError),
    ],
)
def test_coverage_errors(covered, error):
    with pytest.raises(error):
        coverage(covered)


# --------------------------------------------------------------------------------------------
# worst-slab coverage
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("delta", [0.1, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("p", [1, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_wsc_equals_brute_force(delta, p, ties):
    rng = np.random.default_rng(int(100 * delta) + p + 7 * ties)
    k = 37
    x = rng.normal(size=(k, p))
    if ties:
        x = np.round(x, 0)  # many equal projections
    covered = rng.random(k) < 0.7
    directions = rng.normal(size=(4, p)) if p > 1 else np.ones((1, 1))
    expected = brute_wsc(x, covered.astype(float), directions, delta)
    got = worst_slab_coverage(
        torch.from_numpy(x),
        torch.from_numpy(covered),
        delta=delta,
        directions=torch.from_numpy(directions),
    )
    assert got == pytest.approx(expected, abs=1e-12)
    # NumPy inputs give the same answer; for p = 1 the default single direction is the same.
    kwargs = {} if p == 1 else {"directions": directions}
    assert worst_slab_coverage(x, covered, delta=delta, **kwargs) == pytest.approx(
        expected, abs=1e-12
    )


def test_wsc_grid_is_an_upper_bound_close_to_exact():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 2))
    covered = rng.random(120) < 0.8
    dirs = rng.normal(size=(6, 2))
    exact = worst_slab_coverage(x, covered, directions=dirs, delta=0.2)
    assert exact == pytest.approx(brute_wsc(x, covered.astype(float), dirs, 0.2), abs=1e-12)
    coarse = worst_slab_coverage(x, covered, directions=dirs, delta=0.2, max_ranks=40)
    assert exact <= coarse <= exact + 0.1
    # max_ranks ≥ k is the exact search.
    assert worst_slab_coverage(x, covered, directions=dirs, delta=0.2, max_ranks=120) == exact


def test_wsc_at_most_marginal_and_equal_at_delta_one():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(size=(300, 2)))
    covered = torch.from_numpy(rng.random(300) < 0.9)
    marginal = coverage(covered)
    for seed in range(3):
        assert worst_slab_coverage(x, covered, num_directions=20, seed=seed) <= marginal
    assert worst_slab_coverage(x, covered, delta=1.0, seed=0) == pytest.approx(marginal)


def test_wsc_finds_a_planted_uncovered_slab():
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(400, 2))
    band = (x[:, 0] > 0.35) & (x[:, 0] < 0.65)  # about 30% of the points, all uncovered
    covered = ~band
    assert coverage(covered) > 0.65
    assert worst_slab_coverage(x, covered, delta=0.2, directions=[[1.0, 0.0]]) == 0.0
    # Random directions still find a badly covered slab near the band.
    assert worst_slab_coverage(x, covered, delta=0.2, num_directions=100, seed=0) < 0.2
    # With the uncovered points spread at random instead, no slab is that bad.
    spread = rng.random(400) < 0.7
    assert worst_slab_coverage(x, spread, delta=0.2, num_directions=100, seed=0) > 0.4
    # p = 1: the band in the single feature.
    assert worst_slab_coverage(x[:, 0], covered, delta=0.2) == 0.0


def test_wsc_holdout():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(600, 2))
    band = (x[:, 0] > 0.4) & (x[:, 0] < 0.6)
    # All covered: every slab has coverage 1.
    assert worst_slab_coverage(x, np.ones(600, bool), holdout=0.5, seed=0) == 1.0
    # The slab found on one half is the band, and the other half's points in it are uncovered.
    got = worst_slab_coverage(x, ~band, delta=0.1, directions=[[1.0, 0.0]], holdout=0.5, seed=0)
    assert got == 0.0
    a = worst_slab_coverage(x, rng.random(600) < 0.9, holdout=0.5, num_directions=10, seed=4)
    b = worst_slab_coverage(x, rng.random(600) < 0.9, holdout=0.5, num_directions=10, seed=4)
    assert 0.0 <= a <= 1.0 and 0.0 <= b <= 1.0


def test_wsc_holdout_matches_manual_evaluation():
    # Reproduce the documented procedure: with explicit directions the holdout permutation is
    # the generator's first draw; the worst slab on the kept points (found here by brute force
    # over the single direction) is then scored on the held-out points.
    rng = np.random.default_rng(5)
    k = 60
    x = rng.normal(size=(k, 1))
    covered = rng.random(k) < 0.7
    got = worst_slab_coverage(x, covered, delta=0.2, holdout=0.5, seed=9)
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(9)).numpy()
    out, kept = perm[:30], perm[30:]
    z, c = x[kept, 0], covered[kept].astype(float)
    best = math.inf
    for a in np.unique(z):
        for b in np.unique(z):
            inside = (z >= a) & (z <= b)
            if b >= a and inside.sum() >= 0.2 * 30 - 1e-9 and c[inside].mean() < best - 1e-12:
                best = c[inside].mean()
    # Ties for the worst slab are possible: the result must be the held-out coverage of one of them.
    zo, co = x[out, 0], covered[out]
    candidates = set()
    for a in np.unique(z):
        for b in np.unique(z):
            inside = (z >= a) & (z <= b)
            if b >= a and inside.sum() >= 6 and abs(c[inside].mean() - best) < 1e-12:
                held = (zo >= a) & (zo <= b)
                if held.any():
                    candidates.add(round(float(co[held].mean()), 12))
    assert round(got, 12) in candidates
    assert len(candidates) >= 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"delta": 0.0}, ValueError, "delta"),
        ({"delta": 1.5}, ValueError, "delta"),
        ({"delta": True}, TypeError, "delta"),
        ({"num_directions": 0}, ValueError, "num_directions"),
        ({"num_directions": 2.0}, TypeError, "num_directions"),
        ({"max_ranks": 1}, ValueError, "max_ranks"),
        ({"holdout": 1.0}, ValueError, "holdout"),
        ({"holdout": 0.0}, ValueError, "holdout"),
        ({"directions": [[1.0, 0.0, 0.0]]}, ValueError, "directions"),
        ({"directions": [[0.0, 0.0]]}, ValueError, "non-zero"),
        ({"seed": 1, "generator": 2}, ValueError, "either generator or seed"),
    ],
)
def test_wsc_argument_errors(kwargs, error, match):
    x, covered = torch.rand(20, 2), torch.rand(20) < 0.5
    with pytest.raises(error, match=match):
        worst_slab_coverage(x, covered, **kwargs)


def test_wsc_input_errors():
    with pytest.raises(ValueError, match="rows"):
        worst_slab_coverage(torch.rand(10, 2), torch.ones(9, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        worst_slab_coverage(torch.full((3, 2), math.nan), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="0 or 1"):
        worst_slab_coverage(torch.rand(3, 2), torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match="x must have shape"):
        worst_slab_coverage(torch.rand(3, 2, 1), torch.ones(3, dtype=torch.bool))


# --------------------------------------------------------------------------------------------
# binned and conditional coverage
# --------------------------------------------------------------------------------------------


def test_binned_coverage_hand_example():
    # x = 0..9 in shuffled order, 5 bins of two points: {0,1}, {2,3}, ..., {8,9}.
    perm = [3, 7, 0, 9, 4, 1, 8, 2, 6, 5]
    covered_by_value = [1, 1, 1, 0, 0, 0, 1, 1, 1, 0]
    x = torch.tensor(perm, dtype=torch.float64)
    covered = torch.tensor([covered_by_value[v] for v in perm], dtype=torch.bool)
    b = binned_coverage(x, covered, num_bins=5)
    assert isinstance(b, BinnedCoverage)
    torch.testing.assert_close(
        b.coverage, torch.tensor([1.0, 0.5, 0.0, 1.0, 0.5], dtype=torch.float64)
    )
    torch.testing.assert_close(
        b.edges, torch.tensor([0.0, 1.5, 3.5, 5.5, 7.5, 9.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        b.centers, torch.tensor([0.5, 2.5, 4.5, 6.5, 8.5], dtype=torch.float64)
    )
    assert b.counts.tolist() == [2] * 5
    # |1 − 0.8| + |0.5 − 0.8| + |0 − 0.8| + |1 − 0.8| + |0.5 − 0.8| = 1.8, over 5 bins.
    assert conditional_coverage_error(x, covered, 0.2, num_bins=5) == pytest.approx(0.36)
    # One bin: the marginal gap |0.6 − 0.8|.
    assert conditional_coverage_error(x, covered, 0.2, num_bins=1) == pytest.approx(0.2)


def test_conditional_coverage_error_zero_when_every_bin_is_exact():
    rng = np.random.default_rng(0)
    k, bins, alpha = 200, 10, 0.1
    x = rng.uniform(size=k)
    covered = np.zeros(k, bool)
    order = np.argsort(x)
    for b in range(bins):  # exactly 18 of each bin's 20 points covered
        idx = order[20 * b : 20 * (b + 1)]
        covered[rng.choice(idx, 18, replace=False)] = True
    assert conditional_coverage_error(x, covered, alpha, num_bins=bins) == pytest.approx(
        0, abs=1e-12
    )
    # Moving one miss from bin 0 to bin 9 changes two bins by 1/20 each: error 2·0.05/10.
    miss0 = order[:20][~covered[order[:20]]][0]
    hit9 = order[180:][covered[order[180:]]][0]
    covered[miss0], covered[hit9] = True, False
    assert conditional_coverage_error(x, covered, alpha, num_bins=bins) == pytest.approx(0.01)


def test_binned_coverage_uneven_counts():
    x = torch.rand(23, dtype=torch.float64)
    b = binned_coverage(x, torch.ones(23, dtype=torch.bool), num_bins=5)
    assert b.counts.tolist() == [5, 5, 5, 4, 4]
    assert (b.edges[1:] >= b.edges[:-1]).all()
    assert ((b.centers >= b.edges[:-1]) & (b.centers <= b.edges[1:])).all()


def test_binned_coverage_uses_first_principal_direction():
    rng = np.random.default_rng(4)
    t = rng.uniform(-3, 3, size=150)
    # Points spread along (−0.6, 0.8), with a little noise across it.
    x = np.stack([-0.6 * t, 0.8 * t], 1) + 0.01 * rng.normal(size=(150, 2)) + [5.0, -2.0]
    covered = rng.random(150) < 0.85
    b = binned_coverage(x, covered, num_bins=6)
    # The sign rule makes the largest entry positive: +(−0.6, 0.8).
    torch.testing.assert_close(
        b.direction, torch.tensor([-0.6, 0.8], dtype=torch.float64), atol=1e-3, rtol=0
    )
    # Same bins as binning the 1-D coordinate t directly.
    ref = binned_coverage(t, covered, num_bins=6)
    torch.testing.assert_close(b.coverage, ref.coverage)
    assert conditional_coverage_error(x, covered, 0.1, num_bins=6) == pytest.approx(
        conditional_coverage_error(t, covered, 0.1, num_bins=6)
    )


@pytest.mark.parametrize(
    "alpha, num_bins, error, match",
    [
        (0.0, 5, ValueError, "alpha"),
        (1.0, 5, ValueError, "alpha"),
        ("0.1", 5, TypeError, "alpha"),
        (0.1, 0, ValueError, "num_bins"),
        (0.1, 21, ValueError, "num_bins"),
        (0.1, True, TypeError, "num_bins"),
    ],
)
def test_conditional_coverage_errors(alpha, num_bins, error, match):
    with pytest.raises(error, match=match):
        conditional_coverage_error(
            torch.rand(20), torch.ones(20, dtype=torch.bool), alpha, num_bins=num_bins
        )


def test_binned_coverage_shape_mismatch():
    with pytest.raises(ValueError, match="rows"):
        binned_coverage(torch.rand(20, 2), torch.ones(19, dtype=torch.bool), 4)
