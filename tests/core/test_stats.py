"""Intervals and paired verdicts for several seeds, checked against scipy and by simulation."""

import numpy as np
import pytest
from scipy import stats

from otkit.stats import compare, mean_interval, median_interval


def test_mean_interval_matches_scipy():
    x = np.array([1.0, 2.5, 2.0, 3.5, 1.5])
    ours = mean_interval(x, level=0.9)
    low, high = stats.t.interval(0.9, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert ours.estimate == pytest.approx(x.mean())
    assert (ours.low, ours.high) == pytest.approx((low, high))


def test_median_interval_covers_at_least_its_level():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 2000
    for _ in range(trials):
        x = rng.exponential(size=15)  # skewed: median ln 2
        interval = median_interval(x, 0.95)
        hits += interval.low <= np.log(2) <= interval.high
    assert interval.level >= 0.95
    assert hits / trials >= 0.94


def test_median_interval_of_few_values_is_the_range_with_its_true_coverage():
    interval = median_interval([3.0, 1.0, 2.0], 0.95)
    assert (interval.low, interval.high) == (1.0, 3.0)
    assert interval.level == pytest.approx(0.75)


def test_compare_calls_a_tie_inside_the_noise_and_a_win_outside_it():
    base = np.array([1.0, 2.0, 0.5, 1.5, 3.0])
    noise = np.array([0.3, -0.2, 0.1, -0.4, 0.25])
    tie = compare(base + noise, base)
    assert tie.verdict == "tie" and not tie.difference.excludes(0.0) and tie.wins == 2
    clear = compare(base - 1.0 + 0.01 * noise, base)
    assert clear.verdict == "lower" and clear.wins == 5 and clear.difference.excludes(0.0)
    assert compare(base + 1.0 + 0.01 * noise, base).verdict == "higher"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mean_interval([1.0]), "at least 2"),
        (lambda: mean_interval([1.0, np.nan]), "finite"),
        (lambda: mean_interval([1.0, 2.0], level=1.5), "level"),
        (lambda: compare([1.0, 2.0], [1.0, 2.0, 3.0]), "paired"),
        (lambda: compare([1.0, 2.0], [1.0, 2.0], interval="mode"), "interval"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()
