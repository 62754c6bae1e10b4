"""SINDy: sparse regression of finite-difference derivatives on the term library.

Brunton, Proctor, Kutz (2016), "Discovering governing equations from data by sparse
identification of nonlinear dynamical systems", PNAS. With Θ(y) = features(y) ``[P, 7]`` (the
grammar's library, :func:`otkit.odes.grammar.features`) and derivatives ẏ estimated by finite
differences, sequentially thresholded least squares (STLSQ) solves

    ξ ← argmin ‖ẏ − Θ ξ‖² + α‖ξ‖²,  then zero every |ξ_k| < λ and refit on the survivors,

until the support stops changing (at most ``max_iter`` rounds). The derivatives are
second-order central differences on the (possibly irregular) grid, one-sided at the ends
(:func:`numpy.gradient` with the sample times), as pysindy's default ``FiniteDifference``.
Written here from the paper (pysindy is not a dependency). Defaults: λ = 0.1 (pysindy's) and
α = 0, plain least squares as in the paper's ``sparsifyDynamics`` (pysindy's ridge α = 0.05
shrinks the coefficients of this strongly collinear library enough to keep spurious terms).
"""

from __future__ import annotations

import numpy as np

from .fitting import Fit, check_trajectory
from .grammar import N_TERMS, features

__all__ = ["stlsq", "finite_difference", "sindy"]


def stlsq(theta: np.ndarray, dy: np.ndarray, threshold: float = 0.1, alpha: float = 0.0,
          max_iter: int = 20) -> np.ndarray:
    """Sequentially thresholded (ridge) least squares: ``theta: [P, K]``, ``dy: [P]`` → ξ
    ``[K]`` with every nonzero |ξ_k| ≥ ``threshold``."""
    theta = np.asarray(theta, dtype=float)
    dy = np.asarray(dy, dtype=float)
    if theta.ndim != 2 or dy.shape != (theta.shape[0],):
        raise ValueError(f"theta must be [P, K] and dy [P], got {theta.shape} and {dy.shape}")
    if threshold < 0 or alpha < 0:
        raise ValueError(f"threshold and alpha must be >= 0, got {threshold} and {alpha}")
    k = theta.shape[1]
    support = np.ones(k, dtype=bool)
    xi = np.zeros(k)
    for _ in range(max_iter):
        xi = np.zeros(k)
        if support.any():
            a = theta[:, support]
            if alpha > 0:
                xi[support] = np.linalg.solve(a.T @ a + alpha * np.eye(a.shape[1]), a.T @ dy)
            else:
                xi[support] = np.linalg.lstsq(a, dy, rcond=None)[0]
        new = np.abs(xi) >= threshold
        if (new == support).all():
            break
        support = new
    xi[~support] = 0.0
    return xi


def finite_difference(t, y) -> np.ndarray:
    """ẏ at every sample: second-order differences on the grid ``t`` (``[P]`` each)."""
    tt, yy = check_trajectory(t, y)
    return np.gradient(yy.numpy(), tt.numpy(), edge_order=2)


def sindy(t, y, threshold: float = 0.1, alpha: float = 0.0) -> Fit:
    """SINDy on one trajectory (module docstring). The returned :class:`Fit` has the support of
    ξ as skeleton (empty when every coefficient was thresholded away), ξ as constants and y₀ =
    the first observation; ``bic`` is nan."""
    tt, yy = check_trajectory(t, y)
    theta = features(yy).numpy()
    xi = stlsq(theta, finite_difference(tt, yy), threshold, alpha)
    skeleton = tuple(int(k) for k in np.flatnonzero(xi))
    assert xi.shape == (N_TERMS,)
    return Fit(skeleton, xi, float(yy[0]), float("nan"), 1)
