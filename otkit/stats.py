"""Several seeds, one verdict: confidence intervals and paired comparisons for the notebooks' claims.

A finding such as "method A has lower error than B" is stated only when the interval of the
paired differences over seeds excludes zero; otherwise it is a tie. Two intervals:

- :func:`mean_interval`: Student's t interval for a mean, x̄ ± t_{1−(1−level)/2, n−1} · s/√n
  (s the sample standard deviation), for a handful of seeds.
- :func:`median_interval`: the distribution-free interval for a median from order statistics
  (the sign test): [x_(k), x_(n−k+1)] with k the largest index such that
  P(Binomial(n, ½) < k) ≤ (1 − level)/2. Its coverage is at least ``level``.

:func:`compare` turns paired scores of two methods into a :class:`Comparison` whose ``verdict``
is ``"lower"``, ``"higher"`` or ``"tie"`` for the first method's score against the second's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["Interval", "Comparison", "mean_interval", "median_interval", "compare"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval [low, high] at ``level`` over ``n`` values."""

    estimate: float
    low: float
    high: float
    n: int
    level: float

    def excludes(self, value: float = 0.0) -> bool:
        """Whether ``value`` lies outside [low, high]."""
        return value < self.low or value > self.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def _values(values: Sequence[float] | np.ndarray, name: str, minimum: int) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size < minimum:
        raise ValueError(f"{name} needs at least {minimum} values, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")


def mean_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Student's t interval for the mean of ``values`` ([n], n ≥ 2)."""
    _check_level(level)
    x = _values(values, "values", 2)
    n = x.size
    mean = float(x.mean())
    half = float(_scipy_stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, level)


def median_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Distribution-free interval for the median of ``values`` ([n]), from order statistics.

    With too few values for the level (n < 6 at 0.95) the interval is the whole range
    [min, max], whose coverage 1 − 2^(1−n) is then reported as ``level``.
    """
    _check_level(level)
    x = np.sort(_values(values, "values", 1))
    n = x.size
    # k = number of order statistics cut from each end; P(B < k) ≤ (1 − level)/2, B ~ Bin(n, ½)
    k = int(_scipy_stats.binom.ppf((1 - level) / 2, n, 0.5))
    while k > 0 and _scipy_stats.binom.cdf(k - 1, n, 0.5) > (1 - level) / 2:
        k -= 1
    k = max(k, 1)
    coverage = float(1 - 2 * _scipy_stats.binom.cdf(k - 1, n, 0.5))
    return Interval(float(np.median(x)), float(x[k - 1]), float(x[n - k]), n, min(coverage, 1.0))


@dataclass(frozen=True)
class Comparison:
    """Paired scores of method A against method B over seeds (or splits).

    ``difference`` is the interval of A − B; ``verdict`` says whether A's score is ``"lower"``,
    ``"higher"`` or a ``"tie"`` (the interval contains 0). ``wins`` counts pairs with A < B.
    """

    difference: Interval
    ratio: float
    wins: int
    n: int
    verdict: Literal["lower", "higher", "tie"]


def compare(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    level: float = 0.95,
    interval: Literal["mean", "median"] = "mean",
) -> Comparison:
    """Compare paired scores ``a`` and ``b`` ([n] each, same seeds in the same order).

    ``ratio`` is mean(a) / mean(b). ``interval="median"`` uses the sign-test interval of the
    paired differences (robust to a few wild seeds; needs n ≥ 6 to exclude 0 at 0.95).
    """
    x = _values(a, "a", 2)
    y = _values(b, "b", 2)
    if x.shape != y.shape:
        raise ValueError(f"a and b must be paired (same length), got {x.size} and {y.size}")
    if interval == "mean":
        difference = mean_interval(x - y, level)
    elif interval == "median":
        difference = median_interval(x - y, level)
    else:
        raise ValueError(f"interval must be 'mean' or 'median', got {interval!r}")
    if difference.high < 0:
        verdict = "lower"
    elif difference.low > 0:
        verdict = "higher"
    else:
        verdict = "tie"
    mean_b = float(y.mean())
    ratio = float(x.mean()) / mean_b if mean_b != 0 else math.inf
    return Comparison(difference, ratio, int(np.sum(x < y)), x.size, verdict)
