"""Constants by least squares for given skeletons, model selection, exhaustive enumeration.

Given one observed trajectory (t_i, y_i), i = 0 … P−1, and a skeleton S, the constants come
from the integral (weak) form of ẏ = Σ_{k∈S} c_k φ_k(y), which needs no derivative of the noisy
data:

    y_i ≈ y₀ + Σ_{k∈S} c_k Φ_k(t_i),    Φ_k(t_i) = ∫_{t_0}^{t_i} φ_k(y(s)) ds  (trapezoid rule on
                                                                            the observed y),

a linear least-squares problem in (y₀, c_S) (a tiny ridge, 1e-8 · mean diag, keeps it solvable
when columns are collinear). Each candidate is then integrated from its fitted y₀ with RK4
(:func:`otkit.odes.generator.rk4`, all candidates in one batch) and scored by the Bayesian
information criterion on the trajectory,

    BIC = P log(RSS / P) + (|S| + 1) log P,

lowest wins (non-finite trajectories score +inf). Optionally (``refine_steps`` > 0; off by
default: it costs ~15 trajectory integrations, more than the selection) the winner's (y₀, c_S)
are then refined by a few Levenberg–Marquardt steps on the trajectory residual Σ_i (ŷ(t_i) − y_i)² (Jacobian by
forward differences, each trial point and its perturbed trajectories in one RK4 batch; a step
is kept only if it lowers the residual), which removes the trapezoid rule's O(h²) bias. :func:`select` does this for a short list
(the transformer's beam: Becker et al. 2023 fit the constants of the decoded skeleton the same
way when they refine them), :func:`enumerate_fit` for every skeleton of the grammar (the
exhaustive baseline). :func:`r2_score` is the coefficient of determination of a trajectory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .generator import rk4, vector_field
from .grammar import N_TERMS, SKELETONS, check_skeleton, features

__all__ = ["Fit", "check_trajectory", "fit_constants", "refine", "select", "enumerate_fit", "simulate",
           "r2_score"]


@dataclass(frozen=True)
class Fit:
    """The chosen equation for one trajectory.

    Attributes:
        skeleton: sorted term indices.
        constants: ``[7]`` float64 (zero outside the skeleton).
        y0: the fitted initial value.
        bic: its score; ``candidates``: how many skeletons were fitted.
    """

    skeleton: tuple[int, ...]
    constants: np.ndarray
    y0: float
    bic: float
    candidates: int


def check_trajectory(t: object, y: object) -> tuple[torch.Tensor, torch.Tensor]:
    """``t, y: [P]`` finite float64 tensors, P ≥ 4, t strictly increasing."""
    tt = torch.as_tensor(t, dtype=torch.float64)
    yy = torch.as_tensor(y, dtype=torch.float64)
    if tt.ndim != 1 or tt.shape != yy.shape:
        raise ValueError(f"t and y must be [P] of the same length, got {tuple(tt.shape)} and "
                         f"{tuple(yy.shape)}")
    if tt.numel() < 4:
        raise ValueError(f"t must hold at least 4 samples, got {tt.numel()}")
    if not bool(torch.isfinite(tt).all()) or not bool(torch.isfinite(yy).all()):
        raise ValueError("t and y must be finite (drop NaN or inf samples)")
    if not bool((tt.diff() > 0).all()):
        raise ValueError("t must be strictly increasing")
    return tt, yy


def _masks(skeletons: Sequence[tuple[int, ...]]) -> torch.Tensor:
    mask = torch.zeros(len(skeletons), N_TERMS, dtype=torch.float64)
    for i, s in enumerate(skeletons):
        mask[i, list(s)] = 1
    return mask


def fit_constants(t, y, skeletons: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares constants of the integral form for each skeleton (module docstring).

    Args:
        t, y: ``[P]`` one observed trajectory.
        skeletons: S skeletons.
    Returns:
        ``(constants [S, 7], y0 [S])`` float64.
    """
    tt, yy = check_trajectory(t, y)
    sk = [check_skeleton(s, "skeletons") for s in skeletons]
    if not sk:
        raise ValueError("skeletons must not be empty")
    phi = features(yy)  # [P, 7]
    dt = tt.diff()[:, None]
    integral = torch.cat([torch.zeros(1, N_TERMS, dtype=torch.float64),
                          torch.cumsum(dt * (phi[1:] + phi[:-1]) / 2, dim=0)])  # [P, 7]
    mask = _masks(sk)  # [S, 7]
    design = torch.cat([torch.ones(len(sk), tt.numel(), 1, dtype=torch.float64),
                        integral[None] * mask[:, None, :]], dim=2)  # [S, P, 8]
    gram = design.transpose(1, 2) @ design
    scale = gram.diagonal(dim1=1, dim2=2).mean(1).clamp_min(1e-12)
    eye = torch.eye(N_TERMS + 1, dtype=torch.float64)
    gram = gram + (1e-8 * scale[:, None, None] + 1e-12) * eye
    rhs = design.transpose(1, 2) @ yy
    sol = torch.linalg.solve(gram, rhs)  # [S, 8]
    return sol[:, 1:] * mask, sol[:, 0]


def simulate(constants, y0, t, substeps: int = 2) -> torch.Tensor:
    """RK4 trajectories of ẏ = features(y) · c for ``constants: [S, 7]``, ``y0: [S]`` at the
    shared times ``t: [P]``: ``[S, P]`` (non-finite where a candidate blows up)."""
    c = torch.as_tensor(constants, dtype=torch.float64)
    c = c[None] if c.ndim == 1 else c
    y0 = torch.as_tensor(y0, dtype=torch.float64).reshape(-1)
    tt = torch.as_tensor(t, dtype=torch.float64)
    with torch.no_grad():
        out = rk4(lambda y: vector_field(c)(y.clamp(-1e6, 1e6)), y0,
                  tt.expand(c.shape[0], -1), substeps)
    return torch.where(out.abs() > 1e6, torch.full_like(out, math.nan), out)


def refine(t, y, skeleton: Sequence[int], constants, y0: float, steps: int = 6
           ) -> tuple[np.ndarray, float, float]:
    """Levenberg–Marquardt on the trajectory residual from (``constants [7]``, ``y0``).
    Returns (constants ``[7]``, y0, RSS)."""
    tt, yy = check_trajectory(t, y)
    s = list(check_skeleton(skeleton))
    theta = torch.cat([torch.tensor([float(y0)], dtype=torch.float64),
                       torch.as_tensor(constants, dtype=torch.float64)[s]])
    n = theta.numel()

    def unpack(th: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = torch.zeros(th.shape[0], N_TERMS, dtype=torch.float64)
        c[:, s] = th[:, 1:]
        return c, th[:, 0]

    def residuals(th: torch.Tensor) -> torch.Tensor:  # [R, n] -> [R, P]
        c, start = unpack(th)
        return simulate(c, start, tt) - yy

    def point_and_jacobian(th: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the point and its n forward-difference probes in one RK4 batch (rows are independent,
        # so this equals integrating them one by one)
        h = 1e-6 * (1 + th.abs())
        res = residuals(torch.cat([th[None], th[None] + torch.diag(h)]))
        return res[0], ((res[1:] - res[0]) / h[:, None]).T  # [P], [P, n]

    r, jac = point_and_jacobian(theta)
    rss = float(r.pow(2).sum())
    if not math.isfinite(rss):
        return np.asarray(torch.as_tensor(constants), dtype=float).copy(), float(y0), rss
    damping = 1e-3
    for _ in range(steps):
        if not bool(torch.isfinite(jac).all()):
            break
        jtj = jac.T @ jac
        step = torch.linalg.solve(jtj + damping * torch.diag(jtj.diagonal() + 1e-12),
                                  -jac.T @ r)
        candidate = theta + step
        # the candidate's Jacobian comes with its residual: one integration per step
        r_new, jac_new = point_and_jacobian(candidate)
        rss_new = float(r_new.pow(2).sum())
        if math.isfinite(rss_new) and rss_new < rss:
            theta, r, jac, rss, damping = candidate, r_new, jac_new, rss_new, damping / 10
        else:
            damping *= 10
    c, start = unpack(theta[None])
    assert n == len(s) + 1
    return c[0].numpy().copy(), float(start[0]), rss


def select(t, y, skeletons: Sequence[Sequence[int]], refine_steps: int = 0,
           constants=None) -> Fit:
    """Fit every skeleton (:func:`fit_constants`), integrate each, keep the lowest BIC, then
    refine its constants (:func:`refine`, ``refine_steps`` Levenberg–Marquardt steps; 0 =
    none).

    ``constants: [S, 7]`` given (e.g. the network's two-hot constants,
    :func:`otkit.odes.model.predict_constants`) are used as they are instead of the
    least-squares fit, each candidate integrated from the first observation y₀ = y[0] (nothing
    is fitted before the optional refinement, which then also fits y₀)."""
    tt, yy = check_trajectory(t, y)
    sk = [check_skeleton(s, "skeletons") for s in skeletons]
    if constants is None:
        constants, y0 = fit_constants(tt, yy, sk)
    else:
        constants = torch.as_tensor(constants, dtype=torch.float64)
        if constants.shape != (len(sk), N_TERMS) or not bool(torch.isfinite(constants).all()):
            raise ValueError(f"constants must be finite [{len(sk)}, {N_TERMS}] (one row per "
                             f"skeleton), got {tuple(constants.shape)}")
        constants = constants * _masks(sk)
        y0 = yy[0].expand(len(sk)).clone()
    traj = simulate(constants, y0, tt)
    rss = (traj - yy).pow(2).sum(1)
    p = tt.numel()
    sizes = torch.tensor([len(s) + 1 for s in sk], dtype=torch.float64)
    bic = p * torch.log(rss / p + 1e-300) + sizes * math.log(p)
    bic = torch.where(torch.isfinite(bic), bic, torch.full_like(bic, math.inf))
    best = int(torch.argmin(bic))
    c, start = constants[best].numpy().copy(), float(y0[best])
    if refine_steps and math.isfinite(float(bic[best])):
        c, start, _ = refine(tt, yy, sk[best], c, start, refine_steps)
    return Fit(sk[best], c, start, float(bic[best]), len(sk))


def enumerate_fit(t, y, max_terms: int = 3, refine_steps: int = 0) -> Fit:
    """The exhaustive baseline: :func:`select` over every skeleton with up to ``max_terms``
    terms (63 for three)."""
    if isinstance(max_terms, bool) or not isinstance(max_terms, int) or not 1 <= max_terms <= 3:
        raise ValueError(f"max_terms must be 1, 2 or 3, got {max_terms!r}")
    return select(t, y, [s for s in SKELETONS if len(s) <= max_terms], refine_steps)


def r2_score(truth, prediction) -> float:
    """R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² of a trajectory (``[P]`` each); −inf when the prediction
    is not finite."""
    a = torch.as_tensor(truth, dtype=torch.float64)
    b = torch.as_tensor(prediction, dtype=torch.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"truth and prediction must be [P] of the same length, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if not bool(torch.isfinite(b).all()):
        return -math.inf
    total = float((a - a.mean()).pow(2).sum())
    if total == 0:
        raise ValueError("truth is constant: R² is undefined")
    return 1.0 - float((a - b).pow(2).sum()) / total
