"""The recovery study of notebook 18: the transformer against SINDy and exhaustive enumeration.

Becker et al. (2023) claim that a pre-trained transformer (1) recovers a useful share of ODEs
from one noisy, irregularly sampled trajectory, (2) is more robust than SINDy to noise and
irregular sampling and (3) is orders of magnitude (≥ 100×) faster per problem than a search over
expressions. :func:`recovery_study` measures, on the same test problems at every setting
(noise σ ∈ ``noises`` × sampling irregularity ρ ∈ ``irregularities``), for each method:

- ``skeleton``: exact skeleton recovery (the predicted term set equals the true one);
- ``r2_obs``: R² of the predicted equation integrated from the true y(0), against the clean
  solution at the observed times; ``r2_new``: the same from a new initial condition (a fresh
  draw whose true solution neither blows up nor stays flat), on the regular grid of [0, T]. A
  problem is *recovered* at R² ≥ 0.9 (the paper's threshold);
- ``seconds``: CPU time per problem of the calling thread (:func:`time.thread_time`: on a busy
  machine wall time measures the neighbours; run torch on one thread; the transformer: encoder + beam
  search + least-squares fit of the beam's skeletons (the transformer methods of one study share
  one beam search per problem, the refined two-hot method starts from the two-hot fit, and each
  is charged the time of what it used); enumeration: the fit of all 63; SINDy:
  finite differences + STLSQ).

Methods: ``"transformer"`` (beam search, then :func:`otkit.odes.fitting.select` over the beam),
``"sindy"`` (:func:`otkit.odes.sindy.sindy`) and ``"enumeration"``
(:func:`otkit.odes.fitting.enumerate_fit`); and the transformer with the network's own two-hot
constants, alone (``"transformer_two_hot"``, the paper's way) or refined on the trajectory
(``"transformer_two_hot_refined"``) (:func:`predict`, :func:`read_constant_claims`); and
:func:`constant_accuracy` compares the constants alone, the true skeleton given. A study
with the same arguments and seed has the same problems whatever its methods, so
:func:`join_methods` can put two studies' methods side by side. Intervals and verdicts come from
:mod:`otkit.stats` over test problems (paired: the same problems for every method).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from otkit.stats import Interval, compare, mean_interval

from ..validation import check_count, check_generator
from .fitting import (
    Fit,
    enumerate_fit,
    fit_constants,
    r2_score,
    refine,
    select,
    simulate,
)
from .generator import add_noise, generate, rk4, sample_times, vector_field
from .grammar import SKELETONS
from .model import TrainedODEModel, beam_search, predict_constants
from .sindy import sindy

__all__ = ["METHODS", "TRANSFORMER_METHODS", "R2_THRESHOLD", "RecoveryStudy", "new_initial_conditions",
           "predict", "recovery_study", "merge_studies", "join_methods", "read_claims",
           "read_constant_claims", "ConstantAccuracy", "constant_accuracy"]

METHODS = ("transformer", "sindy", "enumeration")
#: The transformer with least-squares, two-hot, and refined two-hot constants (:func:`predict`).
TRANSFORMER_METHODS = ("transformer", "transformer_two_hot", "transformer_two_hot_refined")
#: A problem counts as recovered when R² ≥ this (Becker et al. 2023).
R2_THRESHOLD = 0.9


@dataclass(frozen=True, eq=False)
class RecoveryStudy:
    """Per-problem results. Arrays are ``[n_settings, n_methods, n_problems]``; setting s is
    ``settings[s] = (noise, irregularity)``, method m is ``methods[m]``."""

    settings: tuple[tuple[float, float], ...]
    methods: tuple[str, ...]
    skeleton: np.ndarray
    r2_obs: np.ndarray
    r2_new: np.ndarray
    seconds: np.ndarray
    truth: tuple[tuple[tuple[int, ...], ...], ...]
    predicted: tuple[tuple[tuple[tuple[int, ...], ...], ...], ...]
    beam: int

    def index(self, noise: float, irregularity: float) -> int:
        """The setting index of (noise, irregularity)."""
        for s, (n, r) in enumerate(self.settings):
            if math.isclose(n, noise) and math.isclose(r, irregularity):
                return s
        raise ValueError(f"(noise, irregularity) = ({noise}, {irregularity}) is not a setting "
                         f"of this study: {self.settings}")

    def only(self, methods: tuple[str, ...]) -> RecoveryStudy:
        """The same study restricted to ``methods`` (in that order)."""
        missing = [m for m in methods if m not in self.methods]
        if missing or not methods:
            raise ValueError(f"methods must be a non-empty selection of {self.methods}, got "
                             f"{methods!r}")
        j = [self.methods.index(m) for m in methods]
        return RecoveryStudy(self.settings, tuple(methods), self.skeleton[:, j], self.r2_obs[:, j],
                             self.r2_new[:, j], self.seconds[:, j], self.truth,
                             tuple(tuple(row[k] for k in j) for row in self.predicted), self.beam)

    def recovered(self, metric: str = "r2_new") -> np.ndarray:
        """``[S, M, N]`` bool: R² ≥ :data:`R2_THRESHOLD` (``metric`` "r2_obs" or "r2_new"), or
        the exact skeleton (``metric="skeleton"``)."""
        if metric == "skeleton":
            return self.skeleton.astype(bool)
        if metric not in ("r2_obs", "r2_new"):
            raise ValueError(f"metric must be 'skeleton', 'r2_obs' or 'r2_new', got {metric!r}")
        return getattr(self, metric) >= R2_THRESHOLD

    def rates(self, metric: str = "r2_new") -> dict:
        """``{(noise, irregularity): {method: Interval}}``: the recovery rate with its t
        interval over problems."""
        hit = self.recovered(metric).astype(float)
        return {setting: {m: _rate(hit[s, j]) for j, m in enumerate(self.methods)}
                for s, setting in enumerate(self.settings)}


def _rate(x: np.ndarray):
    if np.all(x == x[0]):  # a constant column: the t interval is the point
        return Interval(float(x[0]), float(x[0]), float(x[0]), x.size, 0.95)
    return mean_interval(x)


def new_initial_conditions(coefficients: torch.Tensor, t: torch.Tensor,
                           y0_range: tuple[float, float] = (-2.0, 2.0), *, tries: int = 16,
                           blowup: float = 10.0, min_std: float = 0.05,
                           generator: torch.Generator | int | None = None) -> torch.Tensor:
    """For each of B equations (``coefficients: [B, 7]``) a new y0 in ``y0_range`` whose true
    solution on ``t: [P]`` stays finite, within ±``blowup`` and has std ≥ ``min_std``:
    ``[B]`` (nan where none of ``tries`` draws qualifies)."""
    gen = check_generator(generator)
    b = coefficients.shape[0]
    y0 = y0_range[0] + (y0_range[1] - y0_range[0]) * torch.rand(b, tries, generator=gen,
                                                                dtype=torch.float64)
    with torch.no_grad():
        y = rk4(vector_field(coefficients.repeat_interleave(tries, 0)), y0.reshape(-1),
                t.expand(b * tries, -1), 8).reshape(b, tries, -1)
    ok = torch.isfinite(y).all(-1) & (y.abs() <= blowup).all(-1)
    ok &= torch.nan_to_num(y.std(-1), nan=0.0) >= min_std
    first = torch.where(ok.any(1), ok.float().argmax(1), -1)
    out = torch.full((b,), math.nan, dtype=torch.float64)
    has = first >= 0
    out[has] = y0[has, first[has]]
    return out


def predict(method: str, t: torch.Tensor, y: torch.Tensor, trained: TrainedODEModel | None = None,
            beam: int = 8, refine_steps: int = 4, found: list | None = None,
            two_hot: Fit | None = None) -> Fit:
    """One method on one trajectory (``t, y: [P]``).

    The transformer's three ways to its constants (the beam and the BIC ranking are the same):
    ``"transformer"`` least squares on the integral form (this study's default and the
    comparison with SINDy and enumeration, which fit the same way), ``"transformer_two_hot"``
    the network's own two-hot constants (:func:`otkit.odes.model.predict_constants`; the
    paper's way: NSODE reads its constants off the decoder, with no separate fit as far as the
    paper's summaries say; the beam's candidates are integrated from y₀ = y[0] and ranked by
    BIC), ``"transformer_two_hot_refined"`` those constants and y₀ then ``refine_steps``
    Levenberg–Marquardt steps on the trajectory (:func:`otkit.odes.fitting.refine`; our addition).
    ``found``: this trajectory's beam (:func:`otkit.odes.model.beam_search`'s list for it), when
    already searched; ``two_hot``: its ``"transformer_two_hot"`` fit, when already made (the
    refined method starts from it).
    """
    if method in TRANSFORMER_METHODS:
        if trained is None:
            raise ValueError(f"trained must be given for method {method!r}")
        if found is None:
            found = beam_search(trained.model, t[None], y[None], beam=beam)[0]
        skeletons = [s for s, _ in found] or [SKELETONS[0]]
        if method == "transformer":
            return select(t, y, skeletons)
        fit = two_hot if two_hot is not None else select(
            t, y, skeletons, constants=predict_constants(trained.model, t, y, skeletons))
        if method == "transformer_two_hot_refined" and math.isfinite(fit.bic):
            c, y0, _ = refine(t, y, fit.skeleton, fit.constants, fit.y0, refine_steps)
            fit = Fit(fit.skeleton, c, y0, fit.bic, fit.candidates)
        return fit
    if method == "sindy":
        return sindy(t, y)
    if method == "enumeration":
        return enumerate_fit(t, y)
    raise ValueError(f"method must be one of {METHODS + TRANSFORMER_METHODS[1:]}, got {method!r}")


def _r2(fit: Fit, y0: float, t: torch.Tensor, truth: torch.Tensor) -> float:
    if not fit.skeleton:  # SINDy thresholded every term away: f = 0, nothing recovered
        return -math.inf
    return r2_score(truth, simulate(fit.constants, torch.tensor([y0]), t)[0])


def recovery_study(trained: TrainedODEModel, *, n_problems: int = 30,
                   noises: tuple[float, ...] = (0.0, 0.01, 0.05),
                   irregularities: tuple[float, ...] = (0.0, 1.0), beam: int = 8,
                   methods: tuple[str, ...] = METHODS, seed: int = 1000) -> RecoveryStudy:
    """Every method on ``n_problems`` test problems at every (noise, irregularity) setting.

    The problems (equations, initial and new initial conditions) are the same at every
    setting; for each irregularity the times are drawn once and the noise is added to the same
    clean solution. The test problems use the training data's ``n_points`` and time span.
    """
    check_count("n_problems", n_problems)
    check_count("beam", beam)
    for m in methods:
        if m not in METHODS + TRANSFORMER_METHODS[1:]:
            raise ValueError(f"methods must be drawn from {METHODS + TRANSFORMER_METHODS[1:]}, "
                             f"got {m!r}")
    if any(not 0 <= r <= 1 for r in irregularities) or any(s < 0 for s in noises):
        raise ValueError("noises must be >= 0 and irregularities in [0, 1]")
    gen = torch.Generator().manual_seed(seed)
    data = trained.data
    n_points, t_max = data.t.shape[1], float(data.t[0, -1])
    # the equations and initial values, drawn once (the regular-grid run), with new ICs
    base = generate(2 * n_problems, n_points=n_points, t_max=t_max, generator=gen)
    grid = torch.linspace(0, t_max, n_points, dtype=torch.float64)
    y0_new = new_initial_conditions(base.coefficients, grid, generator=gen)
    keep = torch.nonzero(torch.isfinite(y0_new)).flatten()[:n_problems]
    if keep.numel() < n_problems:
        raise RuntimeError("too few test problems have a valid new initial condition")
    coef, y0, y0_new = base.coefficients[keep], base.y0[keep], y0_new[keep]
    truth = tuple(base.skeletons[int(i)] for i in keep)
    with torch.no_grad():
        y_new = rk4(vector_field(coef), y0_new, grid.expand(n_problems, -1), 8)
    settings = tuple((float(s), float(r)) for r in irregularities for s in noises)
    shape = (len(settings), len(methods), n_problems)
    skeleton = np.zeros(shape, dtype=bool)
    r2_obs, r2_new, seconds = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    predicted = []
    for r in irregularities:
        if r == 0:
            t = grid.expand(n_problems, -1).clone()
        else:
            t = sample_times(n_problems, n_points, t_max, r, generator=gen)
        with torch.no_grad():
            y_clean = rk4(vector_field(coef), y0, t, 8)
        for s_noise in noises:
            s = settings.index((float(s_noise), float(r)))
            y_obs = add_noise(y_clean, s_noise, generator=gen)
            row = []
            beams: dict[int, tuple[list, float]] = {}  # one beam search per problem
            two_hots: dict[int, tuple[Fit, float]] = {}
            for j, m in enumerate(methods):
                found = []
                for i in range(n_problems):
                    shared, searched, start_fit = None, 0.0, None
                    if m in TRANSFORMER_METHODS:
                        if i not in beams:
                            start = time.thread_time()
                            found_i = beam_search(trained.model, t[i][None], y_obs[i][None],
                                                  beam=beam)[0]
                            beams[i] = (found_i, time.thread_time() - start)
                        shared, searched = beams[i]
                        if m == "transformer_two_hot_refined" and i in two_hots:
                            start_fit, spent = two_hots[i]
                            searched += spent
                    start = time.thread_time()
                    fit = predict(m, t[i], y_obs[i], trained, beam, found=shared,
                                  two_hot=start_fit)
                    # every transformer method is charged the beam search (and the two-hot
                    # fit) it used
                    seconds[s, j, i] = time.thread_time() - start + searched
                    if m == "transformer_two_hot":
                        two_hots[i] = (fit, seconds[s, j, i] - beams[i][1])
                    skeleton[s, j, i] = fit.skeleton == truth[i]
                    r2_obs[s, j, i] = _r2(fit, float(y0[i]), t[i], y_clean[i])
                    r2_new[s, j, i] = _r2(fit, float(y0_new[i]), grid, y_new[i])
                    found.append(fit.skeleton)
                row.append(tuple(found))
            predicted.append((s, tuple(row)))
    predicted_sorted = tuple(p for _, p in sorted(predicted))
    return RecoveryStudy(settings, tuple(methods), skeleton, r2_obs, r2_new, seconds, truth,
                         predicted_sorted, beam)


def merge_studies(studies: list[RecoveryStudy]) -> RecoveryStudy:
    """Several studies (e.g. one per pre-trained model seed) as one, their problems side by
    side (same settings, methods and beam required)."""
    if not studies:
        raise ValueError("studies must not be empty")
    first = studies[0]
    for st in studies[1:]:
        if (st.settings, st.methods, st.beam) != (first.settings, first.methods, first.beam):
            raise ValueError("studies must share settings, methods and beam to be merged")
    cat = {k: np.concatenate([getattr(st, k) for st in studies], axis=2)
           for k in ("skeleton", "r2_obs", "r2_new", "seconds")}
    truth = tuple(t for st in studies for t in st.truth)
    predicted = tuple(tuple(tuple(p for st in studies for p in st.predicted[s][j])
                            for j in range(len(first.methods)))
                      for s in range(len(first.settings)))
    return RecoveryStudy(first.settings, first.methods, cat["skeleton"], cat["r2_obs"],
                         cat["r2_new"], cat["seconds"], truth, predicted, first.beam)


def join_methods(studies: list[RecoveryStudy]) -> RecoveryStudy:
    """Studies of the same problems (same settings, truth and beam; e.g. the same arguments and
    seed with other ``methods``) as one, their methods side by side."""
    if not studies:
        raise ValueError("studies must not be empty")
    first = studies[0]
    for st in studies[1:]:
        if (st.settings, st.truth, st.beam) != (first.settings, first.truth, first.beam):
            raise ValueError("studies must share settings, test problems and beam to be joined")
    methods = tuple(m for st in studies for m in st.methods)
    if len(set(methods)) != len(methods):
        raise ValueError(f"studies must have distinct methods to be joined, got {methods}")
    cat = {k: np.concatenate([getattr(st, k) for st in studies], axis=1)
           for k in ("skeleton", "r2_obs", "r2_new", "seconds")}
    predicted = tuple(tuple(p for st in studies for p in st.predicted[s])
                      for s in range(len(first.settings)))
    return RecoveryStudy(first.settings, methods, cat["skeleton"], cat["r2_obs"], cat["r2_new"],
                         cat["seconds"], first.truth, predicted, first.beam)


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[str, float, float, float]:
    """Verdict of a − b over paired problems, with the difference's estimate and interval."""
    if np.array_equal(a, b):
        return "tie", 0.0, 0.0, 0.0
    c = compare(a, b)
    d = c.difference
    return c.verdict, float(d.estimate), float(d.low), float(d.high)


def read_constant_claims(study: RecoveryStudy, metric: str = "r2_new") -> dict:
    """Least-squares against two-hot constants, in this study's numbers (it must hold the three
    :data:`TRANSFORMER_METHODS`; plain values, for the notebook).

    For each setting (key suffix ``s<noise>_r<irregularity>``) and pooled over settings
    (suffix ``all``: each problem's rate over the settings, intervals over problems): the
    recovery rates ``rate_<method>_…``
    and paired verdicts ``two_hot_vs_ls_…`` (two-hot alone − least squares),
    ``refined_vs_ls_…`` and ``refined_vs_two_hot_…`` ("higher" / "lower" / "tie", from
    :func:`otkit.stats.compare` over problems), with ``…_diff``, ``…_low``, ``…_high`` the
    difference's estimate and 95 % interval; ``seconds_<method>`` the median CPU s per problem.
    """
    for m in TRANSFORMER_METHODS:
        if m not in study.methods:
            raise ValueError(f"study must hold the methods {TRANSFORMER_METHODS}, got "
                             f"{study.methods}")
    hit = study.recovered(metric).astype(float)
    cols = {m: study.methods.index(m) for m in TRANSFORMER_METHODS}
    short = {"transformer": "ls", "transformer_two_hot": "two_hot",
             "transformer_two_hot_refined": "refined"}
    out: dict = {}
    groups = [(f"s{n:g}_r{r:g}", [s]) for s, (n, r) in enumerate(study.settings)]
    groups.append(("all", list(range(len(study.settings)))))
    for suffix, rows in groups:
        # pooled: each problem's rate over the settings, so problems stay the independent unit
        x = {short[m]: hit[rows][:, j].mean(0) for m, j in cols.items()}
        for name, v in x.items():
            iv = _rate(v)
            out[f"rate_{name}_{suffix}"] = iv.estimate
            out[f"rate_{name}_{suffix}_low"], out[f"rate_{name}_{suffix}_high"] = iv.low, iv.high
        for a, b in (("two_hot", "ls"), ("refined", "ls"), ("refined", "two_hot")):
            key = f"{a}_vs_{b}_{suffix}"
            out[key], out[f"{key}_diff"], out[f"{key}_low"], out[f"{key}_high"] = _paired(x[a], x[b])
    for m, j in cols.items():
        out[f"seconds_{short[m]}"] = float(np.median(study.seconds[:, j]))
    return out


@dataclass(frozen=True, eq=False)
class ConstantAccuracy:
    """Constants of the *true* skeleton, by the network (two-hot) and by least squares, on
    ``n`` fresh problems of one setting; arrays ``[n]``.

    Attributes:
        error_two_hot, error_ls: max_k |ĉ_k − c_k| over the skeleton's terms.
        r2_two_hot, r2_ls: R² of the equation with those constants integrated from the true y₀,
            against the clean solution at the observed times.
    """

    noise: float
    irregularity: float
    error_two_hot: np.ndarray
    error_ls: np.ndarray
    r2_two_hot: np.ndarray
    r2_ls: np.ndarray

    def summary(self) -> dict:
        """Median errors, R² ≥ :data:`R2_THRESHOLD` rates with intervals, and the paired
        verdict of that rate (two-hot − least squares) and of the error (over problems)."""
        hit_th = (self.r2_two_hot >= R2_THRESHOLD).astype(float)
        hit_ls = (self.r2_ls >= R2_THRESHOLD).astype(float)
        rate_th, rate_ls = _rate(hit_th), _rate(hit_ls)
        fit = _paired(hit_th, hit_ls)
        err = _paired(self.error_two_hot, self.error_ls)
        return {"error_two_hot": float(np.median(self.error_two_hot)),
                "error_ls": float(np.median(self.error_ls)),
                "error_verdict": err[0],
                "rate_two_hot": rate_th.estimate, "rate_two_hot_low": rate_th.low,
                "rate_two_hot_high": rate_th.high, "rate_ls": rate_ls.estimate,
                "rate_ls_low": rate_ls.low, "rate_ls_high": rate_ls.high,
                "rate_verdict": fit[0], "rate_diff": fit[1], "rate_diff_low": fit[2],
                "rate_diff_high": fit[3]}


def constant_accuracy(trained: TrainedODEModel | list[TrainedODEModel], *, n_problems: int = 30,
                      noise: float = 0.0, irregularity: float = 0.0, seed: int = 2000
                      ) -> ConstantAccuracy:
    """The constants alone: for ``n_problems`` fresh generated problems (the training data's
    ``n_points`` and span, ``noise``, ``irregularity``), the network's two-hot constants of the
    true skeleton (:func:`otkit.odes.model.predict_constants`) against least squares on the
    integral form (:func:`otkit.odes.fitting.fit_constants`), the skeleton given to both.
    A list of models: model k gets its own problems (seed + k), side by side."""
    if isinstance(trained, (list, tuple)):
        if not trained:
            raise ValueError("trained must not be an empty list")
        parts = [constant_accuracy(tm, n_problems=n_problems, noise=noise,
                                   irregularity=irregularity, seed=seed + k)
                 for k, tm in enumerate(trained)]
        return ConstantAccuracy(float(noise), float(irregularity), *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("error_two_hot", "error_ls", "r2_two_hot", "r2_ls")))
    check_count("n_problems", n_problems)
    data = trained.data
    batch = generate(n_problems, n_points=data.t.shape[1], t_max=float(data.t[0, -1]),
                     noise=noise, irregularity=irregularity, generator=seed)
    out = {k: np.zeros(n_problems) for k in ("e_th", "e_ls", "r_th", "r_ls")}
    for i, sk in enumerate(batch.skeletons):
        t, y, truth = batch.t[i], batch.y[i], batch.coefficients[i]
        th = predict_constants(trained.model, t, y, [sk])[0]
        ls = fit_constants(t, y, [sk])[0][0]
        y0 = batch.y_clean[i, :1]
        for c, e, r in ((th, "e_th", "r_th"), (ls, "e_ls", "r_ls")):
            out[e][i] = float((c - truth)[list(sk)].abs().max())
            out[r][i] = r2_score(batch.y_clean[i], simulate(c, y0, t)[0])
    return ConstantAccuracy(float(noise), float(irregularity), out["e_th"], out["e_ls"],
                            out["r_th"], out["r_ls"])


def read_claims(study: RecoveryStudy, metric: str = "r2_new") -> dict:
    """The paper's three claims in this study's numbers (plain values, for the notebook's
    metrics and its "Reading this run").

    - ``useful``: the transformer's recovery rate (``metric``) on clean, regular data: "useful"
      when its 95 % interval lies above 0.5, "partial" when the estimate is above 0.25, else
      "not useful".
    - ``vs_sindy_<setting>``: paired comparison of recovery (transformer − SINDy) over problems
      at the largest noise (regular sampling: ``noise``), irregular sampling without noise
      (``irregular``), irregular sampling at the smallest positive noise (``irregular_noisy``)
      and both at their largest (``both``): "higher" / "lower" / "tie"; ``drop_vs_sindy_<setting>``: the same on each method's drop from clean regular data
      (transformer's drop − SINDy's: "lower" means the transformer is more robust);
      ``vs_enumeration_<setting>``: recovery of the transformer against enumeration.
    - ``speedup``: median enumeration time / median transformer time per problem (claim ≥ 100);
      ``crossover_skeletons``: the grammar size at which enumeration, at this cost per skeleton,
      would be 100× slower than the transformer.
    """
    methods = list(study.methods)
    tf, sy, en = (methods.index(m) for m in ("transformer", "sindy", "enumeration"))
    hit = study.recovered(metric).astype(float)
    clean = study.index(0.0, 0.0)
    noisy = max(s for s, _ in study.settings)
    irregular = max(r for _, r in study.settings)
    low_noise = min((s for s, _ in study.settings if s > 0), default=noisy)
    out: dict = {}
    rate = _rate(hit[clean, tf])
    out.update(useful_rate=rate.estimate, useful_low=rate.low, useful_high=rate.high)
    out["useful"] = ("useful" if rate.low > 0.5 else "partial" if rate.estimate > 0.25
                     else "not useful")
    out["vs_enumeration_clean"] = ("tie" if np.array_equal(hit[clean, tf], hit[clean, en])
                                   else compare(hit[clean, tf], hit[clean, en]).verdict)
    for name, (sn, ir) in {"noise": (noisy, 0.0), "irregular": (0.0, irregular),
                           "irregular_noisy": (low_noise, irregular),
                           "both": (noisy, irregular)}.items():
        s = study.index(sn, ir)
        for label, a, b in (("vs_sindy", hit[s, tf], hit[s, sy]),
                            ("drop_vs_sindy", hit[clean, tf] - hit[s, tf],
                             hit[clean, sy] - hit[s, sy])):
            if np.array_equal(a, b):
                out[f"{label}_{name}"], diff = "tie", 0.0
            else:
                c = compare(a, b)
                out[f"{label}_{name}"], diff = c.verdict, c.difference.estimate
            out[f"{label}_{name}_diff"] = float(diff)
        if np.array_equal(hit[s, tf], hit[s, en]):
            out[f"vs_enumeration_{name}"] = "tie"
        else:
            out[f"vs_enumeration_{name}"] = compare(hit[s, tf], hit[s, en]).verdict
        out[f"transformer_{name}"] = float(hit[s, tf].mean())
        out[f"sindy_{name}"] = float(hit[s, sy].mean())
        out[f"enumeration_{name}"] = float(hit[s, en].mean())
    tf_time = float(np.median(study.seconds[:, tf]))
    en_time = float(np.median(study.seconds[:, en]))
    out["seconds_transformer"] = tf_time
    out["seconds_enumeration"] = en_time
    out["seconds_sindy"] = float(np.median(study.seconds[:, sy]))
    out["speedup"] = en_time / tf_time
    out["speedup_claim"] = "reproduced" if out["speedup"] >= 100 else "not reproduced"
    out["crossover_skeletons"] = 100 * tf_time / (en_time / len(SKELETONS))
    return out
