r"""Sample-quality and path metrics for generative flows.

Distances between a generated sample ``x: [n, d]`` and a reference sample ``y: [m, d]``
(the empirical measures :math:`\hat\mu = \frac1n\sum_i\delta_{x_i}`,
:math:`\hat\nu = \frac1m\sum_j\delta_{y_j}`):

* :func:`wasserstein2` — the exact 2-Wasserstein distance
  :math:`W_2(\hat\mu, \hat\nu) = \big(\min_{P \in \Pi(a, b)} \sum_{ij} P_{ij}
  \|x_i - y_j\|^2\big)^{1/2}` by POT's network simplex (``ot.emd2``). **Convention:** the
  full squared distance ``‖x − y‖²``, not otkit's ``½‖x − y‖²`` cost: the OT cost of
  :func:`otkit.exact.emd` with the default cost is ``½ W_2²``.
* :func:`energy_distance` — Székely's energy distance
  :math:`\mathcal E = 2\,\mathbb E\|X - Y\| - \mathbb E\|X - X'\| - \mathbb E\|Y - Y'\|`
  (G. J. Székely, M. L. Rizzo, "Energy statistics", J. Stat. Plann. Inference 2013), as the
  V-statistic: the value between the two empirical measures, which is ≥ 0 and 0 only for
  equal samples. (``scipy.stats.energy_distance`` returns its square root, in 1-D only.)
* :func:`mmd` — the unbiased estimate of the squared maximum mean discrepancy with a sum of
  Gaussian kernels (A. Gretton, K. Borgwardt, M. Rasch, B. Schölkopf, A. Smola, "A kernel
  two-sample test", JMLR 2012, Lemma 6), bandwidths relative to the median pairwise distance.

Straightness of the trajectories ``path: [T+1, k, d]`` of an ODE solver on the uniform grid
``t_s = s / T`` (``path[0]`` the start points, ``path[-1]`` the end points):

* :func:`path_straightness` — X. Liu, C. Gong, Q. Liu, "Flow straight and fast: learning to
  generate and transfer data with rectified flow", ICLR 2023 (arXiv 2209.03003), Eq. (5):
  :math:`S = \mathbb E_k \int_0^1 \|(x_1 - x_0) - \dot x_t\|^2\,dt`; 0 for straight paths
  run at constant speed.
* :func:`path_length_ratio` — arc length over chord, :math:`\mathbb E_k\,
  \sum_s \|x_{s+1} - x_s\| / \|x_T - x_0\|`; 1 for straight paths (at any speed).

Every function validates its input (floating-point tensors, equal dimension d, finite,
non-empty), computes in float64 and returns a Python ``float``: these are evaluation
metrics, not losses (no gradients).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

from ..validation import (
    check_clouds,
    check_count,
    check_positive,
    check_weights,
)

__all__ = [
    "wasserstein2",
    "energy_distance",
    "mmd",
    "path_straightness",
    "path_length_ratio",
    "MAX_EMD_ENTRIES",
]

#: The largest ``n · m`` :func:`wasserstein2` accepts: the float64 cost matrix then takes
#: 200 MB and the network simplex some minutes. Subsample beyond.
MAX_EMD_ENTRIES = 25_000_000

# Rows per band in the pairwise sums: a [band, m] float64 block stays below ~64 MB for m ≤ 8k.
_BAND = 1024


def _check_pair(x: object, y: object) -> tuple[Tensor, Tensor]:
    """Two clouds ``[n, d]``, ``[m, d]`` on one device, as float64 (dtypes may differ)."""
    x, y = check_clouds(x, y, same_dtype=False)
    return x.double(), y.double()


def _sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """``[n, m]`` squared distances ‖x_i − y_j‖² (float64, clamped at 0 against round-off)."""
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1) - 2.0 * (x @ y.T)
    return sq.clamp_min(0.0)


def _mean_distance(x: Tensor, y: Tensor) -> Tensor:
    """The mean of ‖x_i − y_j‖ over all n·m pairs, summed in row bands of ``_BAND``."""
    total = x.new_zeros(())
    for start in range(0, x.shape[0], _BAND):
        total = total + _sq_dists(x[start:start + _BAND], y).sqrt().sum()
    return total / (x.shape[0] * y.shape[0])


# --------------------------------------------------------------------------------------
# distances between samples
# --------------------------------------------------------------------------------------


def wasserstein2(
    x: Tensor,
    y: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    max_iter: int = 10_000_000,
) -> float:
    r"""Exact 2-Wasserstein distance between two weighted samples, by ``ot.emd2``.

    .. math::
        W_2 = \Big(\min_{P \ge 0,\ P\mathbf 1 = a,\ P^\top\mathbf 1 = b}
              \sum_{ij} P_{ij}\,\|x_i - y_j\|^2\Big)^{1/2}

    with the **full** squared Euclidean distance (not otkit's ``½‖x − y‖²`` cost convention),
    so that the distance between a cloud and its translate by v is exactly ‖v‖. Solved on the
    CPU in float64 by POT's network simplex: a reference metric for samples of up to a few
    thousand points, not a hot path.

    Args:
        x: ``[n, d]`` sample (e.g. generated points).
        y: ``[m, d]`` sample (e.g. held-out data).
        a, b: ``[n]``, ``[m]`` non-negative weights (normalized here); uniform by default.
        max_iter: network-simplex iterations (POT's ``numItermax``; its own default of 1e5
            is too small for n ≳ 1000).

    Returns:
        W_2 ≥ 0, in the units of the points.

    Raises:
        ValueError: bad input, or ``n · m > MAX_EMD_ENTRIES`` (2.5e7; subsample both clouds,
            e.g. to 5,000 points each).

    Warns:
        RuntimeWarning: the network simplex stopped before optimality (raise ``max_iter``).
    """
    import ot  # heavy import, only needed here

    x, y = _check_pair(x, y)
    a = check_weights("a", a, x.shape[0], x, normalize=True)
    b = check_weights("b", b, y.shape[0], y, normalize=True)
    max_iter = check_count("max_iter", max_iter)
    n, m = x.shape[0], y.shape[0]
    if n * m > MAX_EMD_ENTRIES:
        raise ValueError(
            f"wasserstein2 builds the dense {n} x {m} cost matrix ({n * m:.3g} entries, more "
            f"than {MAX_EMD_ENTRIES:.3g}): subsample x and y (e.g. 5,000 points each) first"
        )
    # Differences, not ‖x‖² + ‖y‖² − 2⟨x, y⟩: exact zeros between equal points, so that
    # W2(x, x) is 0 rather than √(round-off) ≈ 1e-8.
    cost = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist").square()
    cost = cost.cpu().numpy()
    a64, b64 = a.cpu().numpy(), b.cpu().numpy()
    value, log = ot.emd2(a64 / a64.sum(), b64 / b64.sum(), cost, numItermax=max_iter, log=True)
    if log["result_code"] != 1:
        warnings.warn(
            f"wasserstein2: the network simplex did not reach optimality ({log['warning']}); "
            f"raise max_iter (now {max_iter})",
            RuntimeWarning,
            stacklevel=2,
        )
    return float(max(float(value), 0.0) ** 0.5)


def energy_distance(x: Tensor, y: Tensor) -> float:
    r"""Székely's energy distance between two samples (the V-statistic).

    .. math::
        \mathcal E = \frac{2}{nm}\sum_{i,j}\|x_i - y_j\|
            - \frac{1}{n^2}\sum_{i,i'}\|x_i - x_{i'}\|
            - \frac{1}{m^2}\sum_{j,j'}\|y_j - y_{j'}\|

    (Székely and Rizzo 2013, Eq. (2.1) at the empirical measures). The V-statistic (the
    diagonal i = i' included) is the energy distance between the two empirical measures: it is
    ≥ 0 and 0 exactly when the samples are equal as multisets; it is biased upwards by
    O(1/n + 1/m). It is a *squared* distance: ``scipy.stats.energy_distance`` (1-D only)
    returns √ℰ. Pairwise distances are summed in row bands, so memory stays O(band · max(n, m)).

    Args:
        x: ``[n, d]`` sample.
        y: ``[m, d]`` sample.

    Returns:
        ℰ ≥ 0 (clamped at 0 against round-off), in the units of the points.
    """
    x, y = _check_pair(x, y)
    value = 2.0 * _mean_distance(x, y) - _mean_distance(x, x) - _mean_distance(y, y)
    return float(value.clamp_min(0.0))


def _median_distance(z: Tensor, max_points: int = 2000) -> float:
    """The median of ‖z_i − z_j‖ over pairs i < j, on at most ``max_points`` points.

    Larger samples are subsampled with a fixed seed, so the heuristic stays deterministic.
    """
    if z.shape[0] > max_points:
        pick = torch.randperm(z.shape[0], generator=torch.Generator().manual_seed(0))
        z = z[pick[:max_points].to(z.device)]
    i, j = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    return float(_sq_dists(z, z)[i, j].sqrt().median())


def _kernel_sum(x: Tensor, y: Tensor, scales: Tensor) -> Tensor:
    """``Σ_ij Σ_σ exp(−‖x_i − y_j‖² / (2σ²))`` with ``scales = 1 / (2σ²)``, in row bands."""
    total = x.new_zeros(())
    for start in range(0, x.shape[0], _BAND):
        sq = _sq_dists(x[start:start + _BAND], y)
        for scale in scales:
            total = total + torch.exp(-scale * sq).sum()
    return total


def mmd(
    x: Tensor,
    y: Tensor,
    bandwidths: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
    *,
    relative: bool = True,
) -> float:
    r"""Unbiased estimate of the squared MMD with a sum of Gaussian kernels.

    .. math::
        \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)}\sum_{i \ne i'} k(x_i, x_{i'})
            + \frac{1}{m(m-1)}\sum_{j \ne j'} k(y_j, y_{j'})
            - \frac{2}{nm}\sum_{i,j} k(x_i, y_j),
        \qquad k(u, v) = \sum_{\sigma} \exp\Big(-\frac{\|u - v\|^2}{2\sigma^2}\Big)

    (Gretton et al. 2012, Lemma 6). A sum of characteristic kernels is characteristic, and
    several bandwidths keep the test sensitive at several scales. The estimate is unbiased, so
    it fluctuates around 0 (and can be slightly negative) when x and y come from one law.

    Args:
        x: ``[n, d]`` sample, n ≥ 2.
        y: ``[m, d]`` sample, m ≥ 2.
        bandwidths: the σ's. With ``relative=True`` (default) they are multiples of the
            median heuristic: the median of the pairwise distances within the pooled sample
            ``[x; y]`` (on at most 2,000 of its points, drawn with a fixed seed); with
            ``relative=False`` they are absolute, in the units of the points.
        relative: see ``bandwidths``.

    Returns:
        the MMD² estimate (unitless: each kernel is 1 on the diagonal).
    """
    x, y = _check_pair(x, y)
    for name, z in (("x", x), ("y", y)):
        if z.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 points for the unbiased MMD estimate")
    if isinstance(bandwidths, (int, float)):
        bandwidths = (bandwidths,)
    sigmas = [check_positive("bandwidths", s) for s in bandwidths]
    if not sigmas:
        raise ValueError("bandwidths must hold at least one positive number")
    if relative:
        median = _median_distance(torch.cat([x, y]))
        if median == 0.0:
            raise ValueError(
                "the median pairwise distance of [x; y] is 0 (mostly repeated points): "
                "give absolute bandwidths with relative=False"
            )
        sigmas = [s * median for s in sigmas]
    scales = torch.tensor([0.5 / s**2 for s in sigmas], dtype=torch.float64)
    n, m, kernels = x.shape[0], y.shape[0], len(sigmas)
    # Each kernel is exactly 1 on the diagonal: remove those n (resp. m) terms per kernel.
    xx = (_kernel_sum(x, x, scales) - n * kernels) / (n * (n - 1))
    yy = (_kernel_sum(y, y, scales) - m * kernels) / (m * (m - 1))
    xy = _kernel_sum(x, y, scales) / (n * m)
    return float(xx + yy - 2.0 * xy)


# --------------------------------------------------------------------------------------
# straightness of trajectories
# --------------------------------------------------------------------------------------


def _check_path(path: object) -> Tensor:
    """A trajectory tensor ``[T+1, k, d]`` with T ≥ 1, as float64."""
    if not isinstance(path, Tensor):
        raise TypeError(
            f"path must be a torch.Tensor of shape [T+1, k, d], got {type(path).__name__}"
        )
    if not path.is_floating_point():
        raise TypeError(f"path has dtype {path.dtype}; pass floating point points")
    if path.ndim != 3:
        raise ValueError(
            f"path must have shape [T+1, k, d] (time steps, trajectories, dimension), got "
            f"{tuple(path.shape)}; for a single trajectory [T+1, d] use path.unsqueeze(1), "
            f"for images [T+1, k, c, h, w] use path.flatten(2)"
        )
    steps, k, d = path.shape
    if steps < 2:
        raise ValueError(f"path needs at least 2 time points (T ≥ 1), got {steps}")
    if k == 0 or d == 0:
        raise ValueError(f"path is empty: shape {tuple(path.shape)}")
    if not torch.isfinite(path).all():
        raise ValueError("path contains NaN or inf values")
    return path.double()


def path_straightness(path: Tensor) -> float:
    r"""Liu et al.'s straightness of trajectories on the uniform grid ``t_s = s / T``.

    .. math::
        S = \mathbb E_k \int_0^1 \|(x_1 - x_0) - \dot x_t\|^2\, dt
          \approx \frac1k \sum_k \frac1T \sum_{s=0}^{T-1}
          \big\|(x_T - x_0) - T (x_{s+1} - x_s)\big\|^2

    (Liu, Gong, Liu, ICLR 2023, Eq. (5)). The sum is the exact integral for the piecewise-
    linear interpolation of the path. S = 0 exactly when every trajectory is a straight line
    run at constant speed (the ideal of rectified flow: one Euler step is then exact); it
    equals ``E_k ∫‖ẋ_t‖² dt − ‖x_1 − x_0‖²``, the kinetic energy wasted on turns and speed
    changes.

    Args:
        path: ``[T+1, k, d]`` positions of k trajectories at T + 1 equally spaced times from 0
            to 1 (``path[0]``: start, ``path[-1]``: end), as an ODE solver returns them.

    Returns:
        S ≥ 0, in squared units of the points.
    """
    path = _check_path(path)
    steps = path.shape[0] - 1
    chord = path[-1] - path[0]  # [k, d]
    velocity = steps * (path[1:] - path[:-1])  # [T, k, d], finite-difference ẋ on each step
    return float((chord - velocity).square().sum(-1).mean())


def path_length_ratio(path: Tensor) -> float:
    r"""Mean ratio of arc length to chord length of trajectories ``[T+1, k, d]``.

    .. math::
        R = \frac1k \sum_k \frac{\sum_{s=0}^{T-1} \|x_{s+1} - x_s\|}{\|x_T - x_0\|} \;\ge 1

    R = 1 for straight (monotone) paths whatever their speed; a quarter circle gives
    π/(2√2) ≈ 1.11. Unlike :func:`path_straightness` it is scale-free and blind to speed
    changes along a straight line.

    Args:
        path: ``[T+1, k, d]`` positions of k trajectories (any time grid).

    Returns:
        R ≥ 1 (up to round-off).

    Raises:
        ValueError: a trajectory ends where it starts (the ratio is undefined).
    """
    path = _check_path(path)
    arc = (path[1:] - path[:-1]).norm(dim=-1).sum(0)  # [k]
    chord = (path[-1] - path[0]).norm(dim=-1)  # [k]
    closed = chord == 0
    if closed.any():
        raise ValueError(
            f"path: {int(closed.sum())} trajectories end where they start (x_1 = x_0), so "
            f"their length ratio is undefined; drop them, e.g. path[:, chord > 0]"
        )
    return float((arc / chord).mean())
