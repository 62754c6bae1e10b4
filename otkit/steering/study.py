r"""Steering methods compared at matched cost, over several seeds.

A steering method trades an effect (the concept rate) against a cost: the perplexity of
held-out text for a language model, the distance from the data for an image generator. Two
methods at the same strength λ spend different costs, so comparing them at λ = 1 can crown the
one that simply pushes harder. Here every method sweeps λ, each seed gives a curve of concept
rate against cost, and methods are compared **at matched cost**: each curve is read where its
cost first reaches a level (linear interpolation in the cost between the two strengths that
bracket the crossing), and the rates of two methods at that level are paired by seed
(:func:`otkit.stats.compare`: ``"higher"``, ``"lower"`` or ``"tie"``).

* Text (:func:`text_study`): the cost is the perplexity ratio, held-out perplexity over the
  unsteered model's (the same for every method of a seed), read at e.g. 1.1, 1.25, 1.5.
* Digits (:func:`digit_study`): the cost is ``off_manifold``, the rise of the samples'
  Fréchet distance beyond what their class mix explains, over the unsteered flow's, in units
  of a tolerance set from real digits (``tolerance`` × the real-against-real Fréchet
  distance, :attr:`~otkit.steering.images.DigitSteeringTask.frechet_floor`):

  .. math::
      \text{off\_manifold}(λ) = \frac{[F(λ) - F_{\text{mix}}(λ)] - [F(0) - F_{\text{mix}}(0)]}
                                     {\text{tolerance}\cdot F_{\text{real}}},

  with F the Fréchet distance of the samples to held-out digits and F_mix that of real digits
  with the samples' predicted class mix
  (:meth:`~otkit.steering.images.DigitSteeringTask.mix_frechet`). A strength is *on the
  manifold* when off_manifold ≤ 1, i.e. F(λ) ≤ F_mix(λ) + [F(0) − F_mix(0)] +
  tolerance · F_real (the row's ``bound``); a method's rate is read where off_manifold first
  reaches 1 (the most it steers before its samples leave the data), or at its last strength
  when the whole sweep stays on the manifold (``beyond="last"``).

  Why not a bound on F itself, k × F_real? Changing the class mix moves F as much as bad
  samples do (real training digits with half threes score about 100 against a floor of 2–5),
  and the quick flow's own samples already sit at 6–12 times F_real: such a bound rejects
  the unsteered model and every steered one alike (``frechet_over_floor`` records the
  ratio). Per sample, ``confident_rate`` counts only the concept's samples on which the
  classifier is as sure as on 90% of real digits.

Strengths above 1 extrapolate the maps, z' = z + λ (T(z) − z) (:func:`amplify`): Linear-AcT
and the mean shift at λ = 1 spend less perplexity than LinEAS, and a curve that stops short
of a level cannot be read there (NaN, "not reached").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..stats import compare, mean_interval
from ..validation import check_choice, check_count, check_positive
from .act import fit_act
from .intervention import Intervention
from .lineas import fit_lineas
from .maps import ESTIMATORS, AffineMap, check_strength

__all__ = [
    "Method",
    "amplify",
    "fit_method",
    "value_at_level",
    "matched_rates",
    "matched_summary",
    "matched_comparison",
    "mean_curves",
    "text_study",
    "digit_study",
    "PERPLEXITY_LEVELS",
]

#: Perplexity ratios (steered / unsteered held-out perplexity) the text methods are read at.
PERPLEXITY_LEVELS = (1.1, 1.25, 1.5)
_ESTIMATORS = (*ESTIMATORS, "lineas")


@dataclass(frozen=True)
class Method:
    """How to fit one intervention on a task.

    Attributes:
        name: its label in the rows.
        estimator: ``"linear_act"``, ``"gaussian"``, ``"mean_shift"`` (:func:`fit_act`) or
            ``"lineas"`` (:func:`fit_lineas`).
        batches: fit on the first ``batches`` source and target batches only (None: all).
        options: more keyword arguments of :func:`fit_act` or :func:`fit_lineas` (e.g.
            ``steps``, ``lr``; ``seed`` defaults to the task's).
    """

    name: str
    estimator: str = "linear_act"
    batches: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        check_choice("estimator", self.estimator, _ESTIMATORS)
        if self.batches is not None:
            check_count("batches", self.batches)


def _methods(methods: Sequence[Method | str]) -> list[Method]:
    if isinstance(methods, (str, Method)) or not methods:
        raise ValueError("methods must be a non-empty sequence of Method or estimator names")
    out = [m if isinstance(m, Method) else Method(m, m) for m in methods]
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValueError(f"methods must have distinct names, got {names}")
    return out


def fit_method(task: Any, method: Method | str) -> Intervention:
    """Fit ``method`` on a text or digits task (its model, modules, source, target, forward
    and, for text, pool)."""
    method = _methods([method])[0]
    k = method.batches
    source = task.source if k is None else task.source[:k]
    target = task.target if k is None else task.target[:k]
    options = dict(method.options)
    if hasattr(task, "pool"):
        options.setdefault("pool", task.pool)
    if method.estimator == "lineas":
        options.setdefault("seed", task.seed)
        return fit_lineas(task.model, task.modules, source, target, forward=task.forward,
                          **options).intervention
    return fit_act(task.model, task.modules, source, target, method=method.estimator,
                   forward=task.forward, **options)


def amplify(intervention: Intervention, strength: float) -> Intervention:
    """``intervention`` at strength λ ≥ 0, λ > 1 included: z' = z + λ (T(z) − z).

    For λ ≤ 1 this is ``intervention.with_strength(λ)``. For λ > 1 each map becomes the
    affine map ω' = 1 − λ + λω, β' = λβ at strength 1, with the same support (outside it
    T is the identity, and so is the extrapolation): it moves every activation λ times as far
    as the map does.
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise TypeError(f"strength must be a number >= 0, got {type(strength).__name__}")
    lam = float(strength)
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"strength must be a finite number >= 0, got {strength}")
    if lam <= 1.0:
        return intervention.with_strength(check_strength(lam))
    maps = {name: AffineMap(1.0 - lam + lam * m.omega, lam * m.beta, m.low, m.high)
            for name, m in intervention.maps.items()}
    return Intervention(maps, 1.0, intervention.method)


def _strengths(strengths: Sequence[float]) -> list[float]:
    if isinstance(strengths, (int, float)) or not strengths:
        raise ValueError("strengths must be a non-empty sequence of numbers >= 0")
    values = [float(s) for s in strengths]
    if any(not (math.isfinite(s) and s >= 0) for s in values):
        raise ValueError(f"strengths must be finite numbers >= 0, got {list(strengths)}")
    if values[0] != 0.0 or any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"strengths must start at 0 and increase, got {list(strengths)}")
    return values


def _seeds(seeds: Sequence[int]) -> list[int]:
    if isinstance(seeds, int) or not seeds:
        raise ValueError("seeds must be a non-empty sequence of ints")
    out = [check_count("seeds", s, minimum=0) for s in seeds]
    if len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct, got {list(seeds)}")
    return out


# ------------------------------------------------------------------------------ reading curves


def value_at_level(costs: Sequence[float], values: Sequence[float], level: float, *,
                   beyond: str = "nan") -> float:
    """The value of a curve where its cost first reaches ``level``.

    ``costs`` and ``values`` are the curve's points in order of increasing strength. The
    first index i with cost_i ≥ level is found and the value is interpolated linearly in the
    cost between points i − 1 and i (the strength at which the cost budget is spent). NaN
    when the curve starts above ``level`` (a cost the method cannot match); the first
    point's value when it sits exactly at ``level``. A curve that never reaches ``level``
    gives NaN (``beyond="nan"``: not comparable there) or its last value (``beyond="last"``:
    for a bound, the whole sweep stays within it and the last strength is the most the
    method does inside it).
    """
    check_choice("beyond", beyond, ("nan", "last"))
    c = np.asarray(costs, dtype=float)
    v = np.asarray(values, dtype=float)
    if c.ndim != 1 or c.shape != v.shape or c.size == 0:
        raise ValueError(f"costs and values must be 1-D of one length, got {c.shape}, {v.shape}")
    if not (np.all(np.isfinite(c)) and np.all(np.isfinite(v)) and math.isfinite(level)):
        raise ValueError("costs, values and level must be finite")
    above = np.nonzero(c >= level)[0]
    if above.size == 0:
        return float(v[-1]) if beyond == "last" else math.nan
    i = int(above[0])
    if i == 0:
        return float(v[0]) if c[0] == level else math.nan
    t = (level - c[i - 1]) / (c[i] - c[i - 1])
    return float(v[i - 1] + t * (v[i] - v[i - 1]))


def _curves(rows: Sequence[Mapping], cost: str, value: str) -> dict[tuple, tuple[list, list]]:
    """``{(mode, method, seed): (costs, values)}`` in order of strength."""
    groups: dict[tuple, list[Mapping]] = {}
    for r in rows:
        groups.setdefault((r.get("mode", "induce"), r["method"], r["seed"]), []).append(r)
    out = {}
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["strength"])
        out[key] = ([float(r[cost]) for r in rs], [float(r[value]) for r in rs])
    return out


def matched_rates(rows: Sequence[Mapping], levels: Sequence[float], *,
                  cost: str = "perplexity_ratio", value: str = "concept_rate",
                  beyond: str = "nan") -> list[dict]:
    """One row per (mode, method, seed, level): ``rate``, the curve's ``value`` where its
    ``cost`` first reaches the level (:func:`value_at_level`: NaN if never, or the last
    value with ``beyond="last"``), and ``reached`` (whether the cost got there)."""
    out = []
    for (mode, method, seed), (costs, values) in _curves(rows, cost, value).items():
        for level in levels:
            out.append({"mode": mode, "method": method, "seed": seed, "level": float(level),
                         "rate": value_at_level(costs, values, float(level), beyond=beyond),
                         "reached": max(costs) >= float(level)})
    return out


def _interval(values: Sequence[float], level: float) -> tuple[float, float, float]:
    if len(values) >= 2:
        i = mean_interval(values, level)
        return i.estimate, i.low, i.high
    if len(values) == 1:
        return float(values[0]), math.nan, math.nan
    return math.nan, math.nan, math.nan


def matched_summary(rows: Sequence[Mapping], levels: Sequence[float], *,
                    cost: str = "perplexity_ratio", value: str = "concept_rate",
                    beyond: str = "nan", confidence: float = 0.95) -> list[dict]:
    """Per (mode, method, level): the mean rate at matched cost over the seeds with a rate
    there (:func:`matched_rates`), its Student-t interval (``low``, ``high``; NaN with < 2
    seeds), ``rated`` (that count), ``reached`` (seeds whose cost reached the level) and
    ``seeds``."""
    matched = matched_rates(rows, levels, cost=cost, value=value, beyond=beyond)
    out = []
    keys = sorted({(m["mode"], m["method"]) for m in matched}, key=str)
    for mode, method in keys:
        for level in levels:
            mine = [m for m in matched
                    if (m["mode"], m["method"], m["level"]) == (mode, method, float(level))]
            rates = [m["rate"] for m in mine if math.isfinite(m["rate"])]
            est, low, high = _interval(rates, confidence)
            out.append({"mode": mode, "method": method, "level": float(level), "rate": est,
                        "low": low, "high": high, "rated": len(rates),
                        "reached": sum(m["reached"] for m in mine), "seeds": len(mine)})
    return out


def matched_comparison(rows: Sequence[Mapping], method: str, baseline: str,
                       levels: Sequence[float], *, mode: str = "induce",
                       cost: str = "perplexity_ratio", value: str = "concept_rate",
                       beyond: str = "nan", confidence: float = 0.95) -> list[dict]:
    """``method`` against ``baseline`` at matched cost, one row per level.

    Rates are paired by seed over the seeds where both curves reach the level: ``seeds``
    (that count), ``rate`` and ``baseline_rate`` (means), ``difference`` (mean of method −
    baseline) with its interval (``low``, ``high``) and ``verdict`` from
    :func:`otkit.stats.compare` (``"higher"``: ``method`` has the higher rate, ``"tie"``:
    the interval holds 0; ``None`` with fewer than 2 paired seeds).
    """
    matched = [m for m in matched_rates(rows, levels, cost=cost, value=value, beyond=beyond)
               if m["mode"] == mode]
    names = {m["method"] for m in matched}
    for name, label in ((method, "method"), (baseline, "baseline")):
        if name not in names:
            raise ValueError(f"{label} {name!r} has no rows in mode {mode!r}: {sorted(names)}")
    out = []
    for level in levels:
        at = {(m["method"], m["seed"]): m["rate"] for m in matched if m["level"] == float(level)}
        seeds = sorted(s for (name, s) in at if name == method
                       and math.isfinite(at[method, s]) and math.isfinite(at.get((baseline, s), math.nan)))
        a = [at[method, s] for s in seeds]
        b = [at[baseline, s] for s in seeds]
        row = {"mode": mode, "method": method, "baseline": baseline, "level": float(level),
               "seeds": len(seeds), "rate": float(np.mean(a)) if a else math.nan,
               "baseline_rate": float(np.mean(b)) if b else math.nan,
               "difference": float(np.mean(np.subtract(a, b))) if a else math.nan,
               "low": math.nan, "high": math.nan, "verdict": None}
        if len(seeds) >= 2:
            result = compare(a, b, level=confidence)
            row.update(low=result.difference.low, high=result.difference.high,
                       verdict=result.verdict)
        out.append(row)
    return out


def mean_curves(rows: Sequence[Mapping], keys: Sequence[str] = ("concept_rate", "perplexity_ratio")
                ) -> list[dict]:
    """Per (mode, method, strength): the mean of each of ``keys`` over seeds (and its min and
    max, ``<key>_min`` / ``<key>_max``), with ``seeds`` (the count)."""
    groups: dict[tuple, list[Mapping]] = {}
    for r in rows:
        groups.setdefault((r.get("mode", "induce"), r["method"], r["strength"]), []).append(r)
    out = []
    for (mode, method, strength), rs in groups.items():
        row = {"mode": mode, "method": method, "strength": strength, "seeds": len(rs)}
        for k in keys:
            values = [float(r[k]) for r in rs]
            row.update({k: float(np.mean(values)), f"{k}_min": min(values),
                        f"{k}_max": max(values)})
        out.append(row)
    return out


# ------------------------------------------------------------------------------ the studies


def _evaluate(task: Any, intervention: Intervention, strengths: list[float]) -> list[dict]:
    rows = []
    for lam in strengths:
        # evaluate's strength overrides the intervention's: pass λ itself up to 1, and the
        # extrapolated maps at strength 1 beyond
        row = (task.evaluate(intervention, [lam]) if lam <= 1.0
               else task.evaluate(amplify(intervention, lam), [1.0]))[0]
        rows.append({**row, "strength": lam})
    return rows


def text_study(
    methods: Sequence[Method | str] = ("linear_act", "gaussian", "mean_shift"),
    strengths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    modes: Sequence[str] = ("induce",),
    task_factory: Callable[[int], Any] | None = None,
    progress: Callable[[str], None] | None = None,
    **task_options: Any,
) -> list[dict]:
    """Concept rate and held-out perplexity of each method at each strength, for each seed.

    Each seed trains its own GPT-2 on its own corpus and draws its own fitting documents,
    prompts and held-out text (:func:`~otkit.steering.text.text_steering_task` with
    ``seed=seed`` and ``task_options``; or ``task_factory(seed)``). Strengths start at 0
    (the unsteered model) and may exceed 1 (:func:`amplify`).

    Returns rows ``{"seed", "mode", "method", "strength", "concept_rate", "perplexity",
    "perplexity_ratio"}``, the ratio over the seed's unsteered perplexity.
    """
    from .text import MODES, text_steering_task

    methods, strengths, seeds = _methods(methods), _strengths(strengths), _seeds(seeds)
    modes = [check_choice("modes", m, MODES) for m in modes]
    rows = []
    for seed in seeds:
        task = (task_factory(seed) if task_factory is not None
                else text_steering_task(mode=modes[0], seed=seed, **task_options))
        for mode in modes:
            t = task.with_mode(mode)
            for method in methods:
                curve = _evaluate(t, fit_method(t, method), strengths)
                base = curve[0]["perplexity"]
                for r in curve:
                    rows.append({"seed": seed, "mode": mode, "method": method.name, **r,
                                 "perplexity_ratio": r["perplexity"] / base})
                if progress is not None:
                    progress(f"seed {seed} {mode} {method.name}")
    return rows


def digit_study(
    methods: Sequence[Method | str] = ("linear_act", "mean_shift"),
    strengths: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    concept: int | str = 3,
    modes: Sequence[str] = ("induce", "remove"),
    tolerance: float = 2.0,
    task_factory: Callable[[int], Any] | None = None,
    progress: Callable[[str], None] | None = None,
    **task_options: Any,
) -> list[dict]:
    """Each method's samples at each strength, scored on and off the data manifold.

    Each seed trains its own flow and classifier
    (:func:`~otkit.steering.images.digit_steering_task` with ``seed=seed`` and
    ``task_options``; or ``task_factory(seed)``). Rows hold ``seed``, ``mode``, ``method``,
    ``strength``, the task's scores (``concept_rate``, ``confident_rate``, ``digit_share``,
    ``frechet``, ``mix_frechet``, ...) and:

    * ``excess``: frechet − mix_frechet, the distance the class mix does not explain;
    * ``off_manifold``: (excess − the unsteered flow's excess) / (``tolerance`` ×
      ``frechet_floor``) (module docstring); ``on_manifold``: off_manifold ≤ 1;
    * ``frechet_floor``, ``bound`` (the largest Fréchet distance on the manifold at that
      class mix: mix_frechet + unsteered excess + tolerance × frechet_floor) and
      ``frechet_over_floor`` (frechet / frechet_floor).
    """
    from .images import MODES, digit_steering_task

    methods, strengths, seeds = _methods(methods), _strengths(strengths), _seeds(seeds)
    modes = [check_choice("modes", m, MODES) for m in modes]
    tolerance = check_positive("tolerance", tolerance)
    rows = []
    for seed in seeds:
        task = (task_factory(seed) if task_factory is not None
                else digit_steering_task(concept, modes[0], seed=seed, **task_options))
        allowed = tolerance * task.frechet_floor
        for mode in modes:
            t = task.with_concept(task.concept, mode)
            for method in methods:
                curve = _evaluate(t, fit_method(t, method), strengths)
                base = curve[0]["frechet"] - curve[0]["mix_frechet"]
                for r in curve:
                    excess = r["frechet"] - r["mix_frechet"]
                    off = (excess - base) / allowed
                    rows.append({"seed": seed, "mode": mode, "method": method.name, **r,
                                 "excess": excess, "off_manifold": off, "on_manifold": off <= 1.0,
                                 "frechet_floor": task.frechet_floor,
                                 "bound": r["mix_frechet"] + base + allowed,
                                 "frechet_over_floor": r["frechet"] / task.frechet_floor})
                if progress is not None:
                    progress(f"seed {seed} {mode} {method.name}")
    return rows
