"""Comparing conformal predictors over random splits: coverage, region size, conditionality.

The protocol of Dheur et al. (2025)'s multi-output conformal benchmark, which Klein et al.
(2025) use for OTCP: for each of ``num_splits`` random splits of a dataset into
train / fit / calibration / test parts (or a fresh draw of a toy), fit the regression model
on the train part, each conformal predictor's score on the fit part, calibrate, and measure
on the test part:

* marginal coverage (:func:`otkit.conformal.metrics.coverage`), which split conformal
  guarantees to be ≥ 1 − α in expectation over splits;
* the log volume of the regions (exact for the baselines, Monte Carlo for OTCP);
* worst-slab coverage and the binned conditional coverage error, which no method
  guarantees (:mod:`otkit.conformal.metrics`).

:func:`summarize_conformal` averages over splits; :func:`size_comparison` pairs every
baseline with OTCP split by split; :func:`otcp_level_study` and :func:`summarize_levels`
follow OTCP's level q̂ against the hull of its reference (when is a region bounded) and the
inflation of out-of-sample ranks. An unbounded region (an OTCP contour that leaves the
reference's hull under ``score="norm"``) has an infinite volume, and it is counted as such:
sizes are compared by medians and shares over *all* splits, never by averaging the
bounded ones only.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import scipy.stats
import torch
from tqdm.auto import tqdm

from ..validation import check_choice, check_count, check_probability
from .data import RegressionData, split_data
from .metrics import conditional_coverage_error, coverage, worst_slab_coverage
from .predictors import CONFORMAL_METHODS, OTCP, ConformalPredictor, make_conformal

__all__ = [
    "ConformalScore",
    "compare_conformal_methods",
    "evaluate_predictor",
    "otcp_level_study",
    "size_comparison",
    "summarize_levels",
    "summarize_conformal",
    "setting_label",
    "as_dicts",
]


@dataclass(frozen=True)
class ConformalScore:
    """One predictor on one split at one level α.

    Attributes:
        dataset, split, method, setting: what was run (``setting`` labels OTCP's options).
        alpha: the miscoverage level; d: output dimension.
        coverage: fraction of test points inside their region.
        log_volume, volume_stderr: log of the regions' volume and its standard error on the
            log scale (stderr / volume; 0 when exact).
        worst_slab_coverage, conditional_coverage_error: conditional diagnostics.
        seconds: time to fit and calibrate the predictor (not the regression model).
        n_fit, n_calibration, n_test: split sizes.
    """

    dataset: str
    split: int
    method: str
    setting: str
    alpha: float
    d: int
    coverage: float
    log_volume: float
    volume_stderr: float
    worst_slab_coverage: float
    conditional_coverage_error: float
    seconds: float
    n_fit: int
    n_calibration: int
    n_test: int


def setting_label(options: Mapping[str, Any]) -> str:
    """``"epsilon=0.05, reference_size=256"`` for OTCP options (``""`` for none)."""
    return ", ".join(f"{key}={value}" for key, value in sorted(options.items()))


def evaluate_predictor(
    predictor: ConformalPredictor,
    calibration: RegressionData,
    test: RegressionData,
    alphas: Sequence[float],
    *,
    split: int = 0,
    setting: str = "",
    n_fit: int = 0,
    fit_seconds: float = 0.0,
    volume_samples: int = 2**14,
    slab_directions: int = 20,
    generator: torch.Generator | None = None,
) -> list[ConformalScore]:
    """Calibrate a fitted ``predictor`` and score it on ``test`` at each α."""
    start = time.perf_counter()
    predictor.calibrate(calibration.x, calibration.y)
    seconds = fit_seconds + time.perf_counter() - start
    scores = []
    for alpha in alphas:
        region = predictor.predict_set(test.x, alpha)
        covered = region.contains(test.y)
        volume = region.volume(volume_samples, generator=generator)
        scores.append(ConformalScore(
            dataset=test.name, split=split, method=predictor.method, setting=setting,
            alpha=alpha, d=test.y.shape[1],
            coverage=coverage(covered), log_volume=volume.log_value,
            volume_stderr=volume.stderr / volume.value if volume.value > 0 else math.inf,
            worst_slab_coverage=worst_slab_coverage(
                test.x, covered, num_directions=slab_directions, generator=generator),
            conditional_coverage_error=conditional_coverage_error(test.x, covered, alpha),
            seconds=seconds, n_fit=n_fit, n_calibration=len(calibration), n_test=len(test),
        ))
    return scores


def compare_conformal_methods(
    data: RegressionData | Callable[[int], RegressionData],
    *,
    methods: Sequence[str] = tuple(CONFORMAL_METHODS),
    alphas: Sequence[float] = (0.1, 0.2),
    num_splits: int = 50,
    sizes: Sequence[float | int] | None = None,
    model: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
    otcp_settings: Sequence[Mapping[str, Any]] = ({},),
    seed: int = 0,
    volume_samples: int = 2**14,
    slab_directions: int = 20,
    progress: bool = False,
) -> list[ConformalScore]:
    """Score each method (and each OTCP setting) on ``num_splits`` random splits.

    Args:
        data: a dataset, split afresh for each split; or a function ``split → dataset``
            (e.g. a toy drawn with that seed), used whole.
        methods: names from :data:`otkit.conformal.CONFORMAL_METHODS`.
        alphas: miscoverage levels (one calibration serves them all).
        sizes: fractions (or counts) of the parts: ``(train, fit, calibration, test)`` with a
            ``model``, ``(fit, calibration, test)`` without. Defaults: (0.4, 0.2, 0.2, 0.2)
            and (0.25, 0.25, 0.5).
        model: ``(x_train, y_train) → fitted regressor`` (callable or ``.predict``). ``None``
            uses the data's exact ``conditional_mean`` (toys), so residuals are pure noise.
        otcp_settings: OTCP option dicts (epsilon, reference_size, ...), one row each.
        seed: base seed of the splits (split s uses seed + s) and of Monte Carlo volumes.
        volume_samples, slab_directions: Monte Carlo sizes of volumes and worst slabs.
    """
    num_splits = check_count("num_splits", num_splits)
    alphas = [check_probability("alpha", a) for a in alphas]
    for i, method in enumerate(methods):
        check_choice(f"methods[{i}]", method, CONFORMAL_METHODS)
    if sizes is None:
        sizes = (0.4, 0.2, 0.2, 0.2) if model is not None else (0.25, 0.25, 0.5)
    parts_needed = 4 if model is not None else 3
    if len(sizes) != parts_needed:
        raise ValueError(
            f"sizes must have {parts_needed} parts ({'train, ' if model else ''}fit, calibration, "
            f"test) {'with' if model else 'without'} a model, got {tuple(sizes)}"
        )
    runs = [(method, {}) for method in methods if method != "otcp"]
    if "otcp" in methods:
        runs = [("otcp", dict(options)) for options in otcp_settings] + runs
    generator = torch.Generator().manual_seed(seed)
    scores: list[ConformalScore] = []
    for split in tqdm(range(num_splits), disable=not progress, desc="splits"):
        dataset = data(seed + split) if callable(data) else data
        parts = split_data(dataset, sizes, seed=seed + split)
        if model is not None:
            train, fit, calibration, test = parts
            regressor = model(train.x, train.y)
        else:
            fit, calibration, test = parts
            if dataset.conditional_mean is None:
                raise ValueError(f"{dataset.name} has no conditional_mean: pass a model factory")
            regressor = dataset.conditional_mean
        for method, options in runs:
            start = time.perf_counter()
            predictor = make_conformal(method, regressor, **options).fit(fit.x, fit.y)
            scores += evaluate_predictor(
                predictor, calibration, test, alphas, split=split,
                setting=setting_label(options), n_fit=len(fit),
                fit_seconds=time.perf_counter() - start, volume_samples=volume_samples,
                slab_directions=slab_directions, generator=generator,
            )
    return scores


def _groups(scores: Iterable[ConformalScore], keys: Sequence[str]) -> dict[tuple, list]:
    groups: dict[tuple, list] = {}
    for score in scores:
        groups.setdefault(tuple(getattr(score, k) for k in keys), []).append(score)
    return groups


def summarize_conformal(scores: Iterable[ConformalScore]) -> list[dict]:
    """Per (dataset, d, method, setting, α): mean, std and standard error of coverage over
    splits, its gap to 1 − α, the fraction of splits below 1 − α, the fraction of splits
    whose region is unbounded, the mean (infinite when any split is unbounded) and median of
    the log volume, and the means of worst-slab coverage, conditional coverage error and
    seconds."""
    keys = ("dataset", "d", "method", "setting", "alpha")
    rows = []
    for key, group in _groups(scores, keys).items():
        cov = torch.tensor([s.coverage for s in group], dtype=torch.float64)
        log_volumes = [s.log_volume for s in group]

        def mean(field: str, group=group) -> float:
            return sum(getattr(s, field) for s in group) / len(group)

        rows.append({
            **dict(zip(keys, key)),
            "splits": len(group),
            "coverage": cov.mean().item(),
            "coverage_std": cov.std().item() if len(group) > 1 else 0.0,
            "coverage_se": cov.std().item() / math.sqrt(len(group)) if len(group) > 1 else math.nan,
            "below_level": (cov < 1 - key[-1]).double().mean().item(),
            "coverage_gap": cov.mean().item() - (1 - key[-1]),
            "unbounded": sum(v == math.inf for v in log_volumes) / len(group),
            "log_volume": mean("log_volume"),
            "log_volume_median": statistics.median(log_volumes),
            "worst_slab": mean("worst_slab_coverage"),
            "cond_error": mean("conditional_coverage_error"),
            "seconds": mean("seconds"),
        })
    return rows


def _log_ratio(reference: float, other: float) -> float:
    """log vol(other) − log vol(reference), with two unbounded regions counted as equal."""
    if reference == other == math.inf:
        return 0.0
    return other - reference


def size_comparison(scores: Iterable[ConformalScore], reference: str = "otcp") -> list[dict]:
    """Each other method against ``reference`` split by split, per (dataset, d, α, setting).

    Over *all* paired splits, an unbounded region counting as an infinite volume:

    * ``log_ratio``: the median of log vol(method) − log vol(reference), positive when the
      reference's regions are smaller on most splits (+inf or −inf when more than half the
      splits have one side unbounded; two unbounded regions count as equal);
    * ``reference_smaller``: the fraction of splits where the reference's region is strictly
      smaller (an unbounded reference region never is);
    * ``reference_unbounded``, ``method_unbounded``: the fractions of splits where each side's
      region is unbounded;
    * ``coverage_difference``: the mean of coverage(method) − coverage(reference).
    """
    scores = list(scores)
    by_split = {(s.dataset, s.d, s.alpha, s.split, s.method, s.setting): s for s in scores}
    rows = []
    settings = sorted({s.setting for s in scores if s.method == reference})
    for (dataset, d, alpha), group in _groups(scores, ("dataset", "d", "alpha")).items():
        for setting in settings:
            for method in sorted({s.method for s in group if s.method != reference}):
                pairs = [
                    (by_split[(dataset, d, alpha, s.split, reference, setting)], s)
                    for s in group
                    if s.method == method
                    and (dataset, d, alpha, s.split, reference, setting) in by_split
                ]
                if not pairs:
                    continue
                diffs = [_log_ratio(ref.log_volume, other.log_volume) for ref, other in pairs]
                rows.append({
                    "dataset": dataset, "d": d, "alpha": alpha, "setting": setting,
                    "method": method,
                    "splits": len(pairs),
                    "log_ratio": statistics.median(diffs),
                    "reference_smaller": sum(
                        other.log_volume > ref.log_volume for ref, other in pairs) / len(pairs),
                    "reference_unbounded": sum(
                        ref.log_volume == math.inf for ref, _ in pairs) / len(pairs),
                    "method_unbounded": sum(
                        other.log_volume == math.inf for _, other in pairs) / len(pairs),
                    "coverage_difference": sum(o.coverage - r.coverage for r, o in pairs) / len(pairs),
                })
    return rows


def otcp_level_study(
    data: Callable[[int], RegressionData],
    otcp_settings: Sequence[Mapping[str, Any]],
    *,
    alpha: float = 0.1,
    num_splits: int = 20,
    sizes: Sequence[float | int] = (0.25, 0.25, 0.5),
    seed: int = 0,
) -> list[dict]:
    """OTCP's level q̂ against its reference's hull, one row per (setting, split).

    For each split ``s`` the toy ``data(seed + s)`` (with its exact ``conditional_mean`` as
    the model) is cut into fit / calibration / test parts; each setting's :class:`OTCP` is
    fitted and calibrated, and the row holds: ``threshold`` (q̂ at ``alpha``), ``bounded``
    (exact: :meth:`OTCP.bounded`), ``inradius`` (of the reference's hull; None above d = 6),
    ``coverage`` on the test part, and the Kolmogorov-Smirnov distances to Uniform[0, 1] of
    the scores of the fitting residuals (``ks_fit``, in sample) and of the calibration ones
    (``ks_calibration``, out of sample), whose gap measures how much fresh residuals' ranks
    are inflated; ``calibration_above_fit`` is the fraction of calibration scores above the
    fitting scores' (1 − alpha)-quantile: about ``alpha`` if fresh residuals were ranked like
    the fitting ones, more when their ranks are inflated.
    """
    alpha = check_probability("alpha", alpha)
    num_splits = check_count("num_splits", num_splits)
    rows = []
    for split in range(num_splits):
        dataset = data(seed + split)
        fit, calibration, test = split_data(dataset, sizes, seed=seed + split)
        for options in otcp_settings:
            start = time.perf_counter()
            predictor = OTCP(dataset.conditional_mean, **options).fit(fit.x, fit.y)
            predictor.calibrate(calibration.x, calibration.y)
            seconds = time.perf_counter() - start
            q = predictor.threshold(alpha)
            fit_scores = predictor.score(fit.x, fit.y)
            cal_scores = predictor.calibration_scores[:, 0]
            in_sample_level = torch.quantile(fit_scores, 1 - alpha).item()
            rows.append({
                "dataset": dataset.name, "d": fit.y.shape[1], "setting": setting_label(options),
                "split": split, "alpha": alpha, "threshold": q.item(),
                "bounded": predictor.bounded(q.item()), "inradius": predictor.inradius,
                "score": predictor.score_rule,
                "coverage": predictor.predict_set(test.x, alpha).contains(test.y).double().mean().item(),
                "ks_fit": scipy.stats.kstest(fit_scores.cpu().numpy(), "uniform").statistic,
                "ks_calibration": scipy.stats.kstest(cal_scores.cpu().numpy(), "uniform").statistic,
                "calibration_above_fit": (cal_scores > in_sample_level).double().mean().item(),
                "seconds": seconds,
            })
    return rows


def summarize_levels(rows: Iterable[dict]) -> list[dict]:
    """:func:`otcp_level_study` rows per (dataset, d, setting): the fraction of bounded splits
    (unknown counts as not bounded), the median and range of q̂, the inradius, and the means
    of coverage, both KS distances, ``calibration_above_fit`` and seconds."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["d"], row["setting"]), []).append(row)
    summary = []
    for (dataset, d, setting), group in groups.items():
        levels = [r["threshold"] for r in group]

        def mean(field: str, group=group) -> float:
            return sum(r[field] for r in group) / len(group)

        summary.append({
            "dataset": dataset, "d": d, "setting": setting, "score": group[0]["score"],
            "splits": len(group),
            "bounded": sum(r["bounded"] is True for r in group) / len(group),
            "threshold_median": statistics.median(levels),
            "threshold_min": min(levels), "threshold_max": max(levels),
            "inradius": group[0]["inradius"],
            "coverage": mean("coverage"),
            "ks_fit": mean("ks_fit"), "ks_calibration": mean("ks_calibration"),
            "calibration_above_fit": mean("calibration_above_fit"),
            "seconds": mean("seconds"),
        })
    return summary


def as_dicts(scores: Iterable[ConformalScore]) -> list[dict]:
    """Scores as plain dicts (for tables and JSON)."""
    return [asdict(s) for s in scores]
