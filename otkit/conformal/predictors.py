"""Multivariate conformal prediction with optimal transport (OTCP), and its baselines.

Split conformal prediction (Vovk et al. 2005; Lei et al. 2018) turns any fitted regression
model ŷ into prediction *sets* with a distribution-free guarantee: if the calibration pairs and
the test pair are exchangeable, the set C(x) built at level α satisfies

    P(y ∈ C(x)) ≥ 1 − α.

Everything rests on a *conformity score* S(x, y), smaller for more typical pairs. With the
scores S₁ ≤ … ≤ S_n of n calibration pairs sorted, the threshold is the finite-sample
corrected quantile

    q̂ = S_(k),  k = ⌈(n + 1)(1 − α)⌉,

and C(x) = {y : S(x, y) ≤ q̂}. When k > n the guarantee needs an infinite set: this module
refuses, naming how many calibration points the requested α needs. (OTT-JAX's ``OTCP``
thresholds with the plain empirical quantile ``quantile(S, 1 − α)`` instead, whose coverage
can fall below 1 − α; see ``../shared/METHODS.md``.)

**OTCP** (Klein, Béthune, Ndiaye and Cuturi, "Multivariate Conformal Prediction using Optimal
Transport", 2025) scores a residual r = y − ŷ(x) ∈ R^d by its *multivariate rank*, in the
sense of Chernozhukov et al. (2017) and Hallin et al. (2021):

1. on a fitting split, centre, whiten and scale the residuals into the unit ball,
   s̃ = L⁻¹(r − offset) / scale with offset the mean, LLᵀ the covariance and scale the
   largest norm (the paper centres and scales only: ``whiten=False``);
2. discretize the spherical uniform distribution on the unit ball (uniform radius, uniform
   direction; :func:`reference_ball`), whose convex hull K is what the ranks can reach;
3. fit the entropic OT map T from the fitting residuals to that reference
   (:meth:`otkit.SinkhornResult.transport`);
4. score a pair by how far out its rank lies, S(x, y) = γ_K(T(s̃)) ∈ [0, 1), the gauge of K
   (:func:`hull_facets`; ``score="hull"``), or by the paper's ‖T(s̃)‖ (``score="norm"``).

T maps R^d onto the interior of K, so the hull score's regions T⁻¹(q̂·K) are bounded at
every level, while the norm's are unbounded once q̂ exceeds K's inradius, which the
out-of-sample inflation of the ranks makes the rule in d ≥ 3 (see :class:`OTCP`).

Its regions are tested forward (is S ≤ q̂ for a candidate y?) and drawn backward through
the inverse of the forward map (:meth:`OTCP.quantiles`): a quantile contour that follows the
shape of the residuals (bimodal, curved) where a ball or an ellipsoid cannot.

Baselines behind the same interface: :class:`BallConformal` (S = ‖r‖),
:class:`EllipsoidConformal` (the Mahalanobis norm of r under the fitting residuals' mean and
covariance) and :class:`RectangleConformal` (one interval per coordinate, each calibrated at
α/d: a hyper-rectangle with Bonferroni's correction).

Regions are translates of one residual-space set, so their volume is the same for every x:
exact for the baselines, by Monte Carlo (with its standard error) for OTCP.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError
from scipy.special import ndtri
from scipy.stats import qmc

from ..backends import log_weight
from ..sinkhorn import SinkhornResult, sinkhorn
from ..validation import check_choice, check_count, check_probability

__all__ = [
    "ConformalPredictor",
    "OTCP",
    "OTCP_RELATIVE_EPSILON",
    "OTCP_SCORES",
    "BallConformal",
    "EllipsoidConformal",
    "RectangleConformal",
    "CONFORMAL_METHODS",
    "make_conformal",
    "PredictionSet",
    "VolumeEstimate",
    "conformal_rank",
    "reference_ball",
    "sphere_directions",
    "hull_facets",
    "ball_volume",
]


# ------------------------------------------------------------------ reference measures


def sphere_directions(
    num: int,
    dim: int,
    *,
    kind: str = "sobol",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """``num`` unit vectors in R^dim, ``[num, dim]``.

    ``kind="sobol"``: scrambled Sobol points pushed through the normal inverse CDF and
    normalized (a low-discrepancy cover of the sphere); ``"random"``: normalized Gaussians;
    ``"grid"``: evenly spaced angles, in order around the circle (``dim = 2`` only; what a
    boundary curve needs); ``"lloyd"``: Sobol directions moved by spherical Lloyd iterations
    toward a centroidal Voronoi tessellation of the sphere, i.e. spread evenly: the convex hull
    of 93 of them in R³ has inradius 0.956 against 0.920 for 93 Sobol directions (170 in R⁴:
    0.900 against 0.853). The same ``seed`` gives the same directions.
    """
    num = check_count("num", num)
    dim = check_count("dim", dim)
    check_choice("kind", kind, ("sobol", "random", "grid", "lloyd"))
    if kind == "grid":
        if dim != 2:
            raise ValueError(f"kind='grid' needs dim = 2, got dim = {dim}")
        angles = torch.arange(num, dtype=torch.float64) * (2 * math.pi / num)
        return torch.stack([angles.cos(), angles.sin()], dim=1).to(dtype)
    if kind == "lloyd":
        return torch.from_numpy(_lloyd_directions(num, dim, seed).copy()).to(dtype)
    if kind == "sobol":
        gauss = torch.from_numpy(_sobol_gaussians(num, dim, seed))
    else:
        gen = torch.Generator().manual_seed(seed)
        gauss = torch.randn(num, dim, generator=gen, dtype=torch.float64)
    return (gauss / gauss.norm(dim=1, keepdim=True).clamp_min(1e-300)).to(dtype)


def _sobol_gaussians(num: int, dim: int, seed: int) -> np.ndarray:
    """``num`` scrambled Sobol points through the normal inverse CDF, ``[num, dim]``."""
    sampler = qmc.Sobol(d=dim, scramble=True, seed=seed)
    uniform = sampler.random_base2(m=max(0, math.ceil(math.log2(num))))[:num]
    eps = np.finfo(np.float64).eps
    return ndtri(np.clip(uniform, eps, 1 - eps))


@lru_cache(maxsize=32)
def _lloyd_directions(num: int, dim: int, seed: int, iterations: int = 30) -> np.ndarray:
    """Spherical Lloyd (k-means on the sphere) over a pool of Sobol directions, ``[num, dim]``.

    Each iteration assigns every pool point to its nearest centre (largest cosine) and moves
    each centre to the normalized mean of its points; the centres start at the first ``num``
    pool points. Deterministic given the arguments (cached: fits reuse it).
    """
    pool_size = min(max(32 * num, 4096), 2**16)
    pool = torch.from_numpy(_sobol_gaussians(pool_size, dim, seed))
    pool = pool / pool.norm(dim=1, keepdim=True).clamp_min(1e-300)
    centres = pool[:num].clone()
    for _ in range(iterations):
        labels = torch.cat([
            (pool[i:i + 8192] @ centres.T).argmax(1) for i in range(0, pool_size, 8192)
        ])
        sums = torch.zeros_like(centres).index_add_(0, labels, pool)
        norms = sums.norm(dim=1, keepdim=True)
        empty = norms < 1e-12  # a centre that lost every point keeps its place
        centres = torch.where(empty, centres, sums / norms.clamp_min(1e-300))
    return centres.numpy()


def reference_ball(
    size: int,
    dim: int,
    *,
    num_radii: int | None = None,
    directions: str = "auto",
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A discrete spherical uniform measure on the unit ball: points ``[m, dim]``, weights ``[m]``.

    Hallin et al. (2021)'s grid: ``R = num_radii`` radii k/R (k = 1..R) times ``S = size // R``
    directions (:func:`sphere_directions`), each point of weight 1/size; the ``size − R·S``
    leftover units of mass sit at the origin. The radius of a draw is then (close to) uniform
    on [0, 1] and its direction uniform, so the rank ‖T(s̃)‖ of a typical residual is too.

    Defaults: ``num_radii = ⌈size^{1/dim}⌉``, the same resolution along the radius as along
    each of the dim − 1 angles (⌈√size⌉ in the plane, as OTT-JAX; fewer radii and more
    directions above). ``directions="auto"`` is ``"grid"`` in the plane, ``"lloyd"`` (evenly
    spread, :func:`sphere_directions`) above. Directions matter: the rank map only reaches
    the convex hull of the outer shell (:func:`hull_facets`), whose inradius they set.
    """
    size = check_count("size", size, minimum=2)
    dim = check_count("dim", dim)
    # the small slack keeps exact powers (size = r^dim) from rounding up one radius too many
    radii = math.ceil(size ** (1 / dim) - 1e-9) if num_radii is None else num_radii
    radii = check_count("num_radii", radii)
    if directions == "auto":
        directions = "grid" if dim == 2 else "lloyd"
    if radii > size:
        raise ValueError(f"num_radii must be at most size = {size}, got {radii}")
    num_dirs, leftover = divmod(size, radii)
    unit = sphere_directions(num_dirs, dim, kind=directions, seed=seed, dtype=torch.float64)
    grid = torch.arange(1, radii + 1, dtype=torch.float64) / radii
    points = (grid[:, None, None] * unit[None]).reshape(-1, dim)
    weights = torch.full((points.shape[0],), 1.0 / size, dtype=torch.float64)
    if leftover:
        points = torch.cat([points, torch.zeros(1, dim, dtype=torch.float64)])
        weights = torch.cat([weights, torch.tensor([leftover / size], dtype=torch.float64)])
    return points.to(dtype), weights.to(dtype)


def ball_volume(dim: int, radius: float = 1.0) -> float:
    """Volume of the Euclidean ball of ``radius`` in R^dim: π^{d/2} r^d / Γ(d/2 + 1)."""
    return math.exp(
        0.5 * dim * math.log(math.pi) - math.lgamma(0.5 * dim + 1) + dim * math.log(radius)
    ) if radius > 0 else 0.0


def hull_facets(points: torch.Tensor) -> torch.Tensor:
    """The convex hull of ``points: [m, d]`` as ``[F, d]`` rows a_f with hull = {v : ⟨a_f, v⟩ ≤ 1}.

    The hull must contain the origin in its interior (a reference ball does). Then its gauge
    (Minkowski functional) is γ(v) = inf{t ≥ 0 : v ∈ t·hull} = max(0, max_f ⟨a_f, v⟩), and its
    inradius (the distance from the origin to its boundary) is min_f 1/‖a_f‖. Facets come from
    Qhull (scipy.spatial.ConvexHull); their number grows quickly with d (about 1,600 for 170
    directions in R⁴, 25,000 for 256 in R⁶), so this is meant for d ≤ 6.
    """
    pts = points.detach().to("cpu", torch.float64).numpy()
    dim = pts.shape[1]
    if dim == 1:
        high, low = pts.max(), pts.min()
        if not (high > 0 > low):
            raise ValueError("the reference's hull must contain the origin in its interior")
        return torch.tensor([[1.0 / high], [1.0 / low]], dtype=torch.float64)
    try:
        equations = ConvexHull(pts).equations  # [F, d + 1]: ⟨n_f, v⟩ + c_f ≤ 0 inside, ‖n_f‖ = 1
    except QhullError as err:
        raise ValueError(
            f"the reference's {len(pts)} points do not span R^{dim}: no convex hull to rank in "
            "(a larger reference_size helps)"
        ) from err
    offsets = -equations[:, -1]
    if not (offsets > 1e-12).all():
        raise ValueError("the reference's hull must contain the origin in its interior")
    return torch.from_numpy(equations[:, :-1] / offsets[:, None])


def conformal_rank(num_calibration: int, alpha: float) -> int:
    """k = ⌈(n + 1)(1 − α)⌉: the threshold is the k-th smallest of n calibration scores.

    Raises when k > n: so few calibration points cannot certify level 1 − α with a
    bounded set (it needs n ≥ ⌈1/α⌉ − 1).
    """
    n = check_count("num_calibration", num_calibration)
    alpha = check_probability("alpha", alpha)
    # the small slack keeps (n + 1)(1 − α) = integer from rounding up one rank too far
    k = math.ceil((n + 1) * (1 - alpha) - 1e-9)
    if k > n:
        needed = math.ceil(1 / alpha - 1e-9) - 1
        raise ValueError(
            f"too few calibration points for alpha={alpha:g}: the threshold is the "
            f"⌈(n + 1)(1 − alpha)⌉ = {k}-th smallest score but only n = {n} were calibrated; "
            f"calibrate on at least {needed} points or raise alpha"
        )
    return max(k, 1)


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class VolumeEstimate:
    """The Lebesgue volume of a prediction region (the same for every x: regions are translates).

    Attributes:
        value: the volume (in the units of y, to the power d).
        stderr: its Monte Carlo standard error (0 when exact).
        num_samples: Monte Carlo draws used (0 when exact).
    """

    value: float
    stderr: float
    num_samples: int

    @property
    def exact(self) -> bool:
        return self.num_samples == 0

    @property
    def log_value(self) -> float:
        """log volume, the scale on which region sizes are compared (−inf for an empty set)."""
        return math.log(self.value) if self.value > 0 else -math.inf


@dataclass(frozen=True, repr=False)
class PredictionSet:
    """Conformal regions C(x_i) = ŷ(x_i) + R, one per input row, at level 1 − α.

    ``R`` is one residual-space set, owned by ``predictor``; each region is its translate by
    the prediction ``centers[i]``.

    Attributes:
        predictor: the calibrated :class:`ConformalPredictor` that made it.
        centers: ŷ(x), ``[k, d]``.
        alpha: the miscoverage level.
        threshold: q̂, ``[c]`` (one per score component; c = 1 except for the rectangle).
    """

    predictor: ConformalPredictor
    centers: torch.Tensor
    alpha: float
    threshold: torch.Tensor

    def __len__(self) -> int:
        return self.centers.shape[0]

    def __repr__(self) -> str:
        q = ", ".join(f"{v:.4g}" for v in self.threshold.tolist())
        return (
            f"PredictionSet(method={self.predictor.method!r}, k={len(self)}, "
            f"d={self.centers.shape[1]}, alpha={self.alpha:g}, threshold=[{q}])"
        )

    @property
    def method(self) -> str:
        return self.predictor.method

    def contains(self, y: object) -> torch.Tensor:
        """Forward membership: ``y: [k, d]`` → ``[k]`` bool, or candidates ``[k, c, d]`` → ``[k, c]``."""
        y = self.predictor._as_targets("y", y, self.centers)
        if y.ndim == 2:
            if y.shape[0] != len(self):
                raise ValueError(f"y must have {len(self)} rows, one per region, got {y.shape[0]}")
            residuals = y - self.centers
        elif y.ndim == 3 and y.shape[0] == len(self):
            residuals = y - self.centers[:, None]
        else:
            raise ValueError(
                f"y must have shape [{len(self)}, d] or [{len(self)}, c, d], got {tuple(y.shape)}"
            )
        flat = residuals.reshape(-1, residuals.shape[-1])
        scores = self.predictor._score_residuals(flat)
        inside = (scores <= self.threshold.to(scores.dtype)).all(dim=1)
        return inside.reshape(residuals.shape[:-1])

    def boundary(self, num_points: int = 256) -> torch.Tensor:
        """Points on each region's boundary, ``[k, num_points, d]``.

        In d = 2 they run in order around a closed curve (repeat the first to close a plot).
        OTCP draws it backward, through the inverse map.
        """
        num_points = check_count("num_points", num_points, minimum=3)
        shape = self.predictor._boundary(self.threshold, num_points)
        return self.centers[:, None] + shape[None].to(self.centers)

    def sample(
        self, num_samples: int, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``num_samples`` points inside each region, ``[k, num_samples, d]``.

        Baselines draw uniformly; OTCP pushes the spherical uniform restricted to radius ≤ q̂
        back through the inverse map, i.e. it draws residuals like those of the data.
        """
        num_samples = check_count("num_samples", num_samples)
        shape = self.predictor._sample(self.threshold, num_samples, generator)
        return self.centers[:, None] + shape[None].to(self.centers)

    def volume(
        self, num_samples: int = 2**15, *, generator: torch.Generator | None = None
    ) -> VolumeEstimate:
        """The regions' common volume: exact for the baselines, Monte Carlo for OTCP."""
        num_samples = check_count("num_samples", num_samples, minimum=16)
        return self.predictor._volume(self.threshold, num_samples, generator)


# ------------------------------------------------------------------ predictors


def _to_tensor(name: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        tensor = value
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from err
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    return tensor


class ConformalPredictor:
    """Split conformal prediction around a fitted regression model (module docstring).

    Usage: ``predictor.fit(x_fit, y_fit).calibrate(x_cal, y_cal).predict_set(x, alpha)``,
    on three disjoint splits, none of them used to train ``model``.

    Args:
        model: the fitted regression model: a scikit-learn-style estimator (``.predict``) or
            a callable ``x → ŷ``, returning ``[k, d]`` arrays or tensors.
    """

    method: ClassVar[str] = ""

    def __init__(self, model: Any) -> None:
        if not (callable(model) or callable(getattr(model, "predict", None))):
            raise TypeError(
                "model must be callable or have a .predict method (a fitted regressor), "
                f"got {type(model).__name__}"
            )
        self.model = model
        self.dim: int | None = None
        self.calibration_scores: torch.Tensor | None = None

    def __repr__(self) -> str:
        state = "calibrated" if self.calibration_scores is not None else (
            "fitted" if self.dim is not None else "unfitted")
        return f"{type(self).__name__}(d={self.dim}, {state})"

    # -------------------------------------------------------------- public interface

    def predict(self, x: object) -> torch.Tensor:
        """The model's predictions ŷ(x), ``[k, d]``, as a floating tensor."""
        predict = getattr(self.model, "predict", None)
        raw = predict(x) if callable(predict) else self.model(x)
        out = _to_tensor("model output", raw)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2:
            raise ValueError(f"the model must return [k, d] predictions, got shape {tuple(out.shape)}")
        return out

    def residuals(self, x: object, y: object) -> torch.Tensor:
        """r = y − ŷ(x), ``[k, d]``."""
        prediction = self.predict(x)
        y = self._as_targets("y", y, prediction)
        if y.ndim != 2 or y.shape != prediction.shape:
            raise ValueError(
                f"y must have the shape of the model's predictions {tuple(prediction.shape)}, "
                f"got {tuple(y.shape)}"
            )
        if not torch.isfinite(prediction).all():
            raise ValueError("the model returned NaN or inf predictions")
        return y - prediction

    def fit(self, x: object, y: object) -> ConformalPredictor:
        """Learn the score from the residuals of a fitting split; returns ``self``."""
        r = self.residuals(x, y)
        if r.shape[0] < 2:
            raise ValueError(f"fit needs at least 2 points, got {r.shape[0]}")
        self.dim = r.shape[1]
        self.calibration_scores = None
        self._fit_residuals(r)
        return self

    def calibrate(self, x: object, y: object) -> ConformalPredictor:
        """Score a calibration split (disjoint from the fitting one); returns ``self``."""
        self._require_fit("calibrate")
        scores = self.score(x, y)
        self.calibration_scores = scores.reshape(scores.shape[0], -1).sort(dim=0).values
        return self

    def score(self, x: object, y: object) -> torch.Tensor:
        """Conformity scores S(x, y), ``[k]`` (``[k, d]`` for the rectangle: one per coordinate)."""
        self._require_fit("score")
        scores = self._score_residuals(self.residuals(x, y))
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def threshold(self, alpha: float) -> torch.Tensor:
        """q̂ at level 1 − α, ``[c]``: the ⌈(n + 1)(1 − α/c)⌉-th smallest calibration score."""
        if self.calibration_scores is None:
            raise RuntimeError(f"{type(self).__name__}.calibrate(x, y) must run before predicting")
        n, components = self.calibration_scores.shape
        alpha = check_probability("alpha", alpha)
        k = conformal_rank(n, alpha / components)  # Bonferroni when c > 1
        return self.calibration_scores[k - 1]

    def predict_set(self, x: object, alpha: float) -> PredictionSet:
        """The conformal regions at the inputs ``x`` for miscoverage ``alpha`` ∈ (0, 1)."""
        alpha = check_probability("alpha", alpha)
        q = self.threshold(alpha)
        centers = self.predict(x)
        if centers.shape[1] != self.dim:
            raise ValueError(f"the model returned d = {centers.shape[1]}, fitted with d = {self.dim}")
        return PredictionSet(predictor=self, centers=centers, alpha=alpha, threshold=q)

    # -------------------------------------------------------------- to implement

    def _fit_residuals(self, r: torch.Tensor) -> None:
        raise NotImplementedError

    def _score_residuals(self, r: torch.Tensor) -> torch.Tensor:
        """Scores of residuals ``[k, d]`` → ``[k, c]``."""
        raise NotImplementedError

    def _boundary(self, q: torch.Tensor, num_points: int) -> torch.Tensor:
        raise NotImplementedError

    def _sample(self, q: torch.Tensor, num: int, generator: torch.Generator | None) -> torch.Tensor:
        raise NotImplementedError

    def _volume(self, q: torch.Tensor, num: int, generator: torch.Generator | None) -> VolumeEstimate:
        raise NotImplementedError

    # -------------------------------------------------------------- helpers

    def _require_fit(self, what: str) -> None:
        if self.dim is None:
            raise RuntimeError(f"{type(self).__name__}.fit(x, y) must run before {what}")

    def _as_targets(self, name: str, y: object, like: torch.Tensor) -> torch.Tensor:
        y = _to_tensor(name, y).to(dtype=like.dtype, device=like.device)
        if self.dim is not None and (y.ndim < 2 or y.shape[-1] != self.dim):
            raise ValueError(f"{name} must have d = {self.dim} columns, got shape {tuple(y.shape)}")
        if not torch.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or inf values")
        return y

    def _unit_directions(self, num: int, like: torch.Tensor) -> torch.Tensor:
        kind = "grid" if self.dim == 2 else "sobol"
        return sphere_directions(num, self.dim, kind=kind, dtype=like.dtype).to(like.device)

    def _uniform_ball(self, num: int, generator, like: torch.Tensor) -> torch.Tensor:
        """``num`` draws uniform in volume on the unit ball, ``[num, d]``."""
        gauss = torch.randn(num, self.dim, generator=generator, dtype=torch.float64)
        radius = torch.rand(num, 1, generator=generator, dtype=torch.float64) ** (1 / self.dim)
        return (radius * gauss / gauss.norm(dim=1, keepdim=True)).to(like)


class BallConformal(ConformalPredictor):
    """S = ‖y − ŷ(x)‖: regions are Euclidean balls around the prediction."""

    method = "ball"

    def _fit_residuals(self, r: torch.Tensor) -> None:
        self._like = r[:0]

    def _score_residuals(self, r: torch.Tensor) -> torch.Tensor:
        return r.norm(dim=1, keepdim=True)

    def _boundary(self, q, num_points):
        return q * self._unit_directions(num_points, self._like)

    def _sample(self, q, num, generator):
        return q * self._uniform_ball(num, generator, self._like)

    def _volume(self, q, num, generator):
        return VolumeEstimate(ball_volume(self.dim, q.item()), 0.0, 0)


class EllipsoidConformal(ConformalPredictor):
    """S = ‖L⁻¹(r − μ)‖ with μ, LLᵀ = Σ the fitting residuals' mean and covariance.

    The Mahalanobis score (Johnstone and Cox 2021; Messoudi et al. 2022): regions are
    ellipsoids μ + q̂ L B, of volume q̂^d |det L| vol(B).
    """

    method = "ellipsoid"

    def _fit_residuals(self, r: torch.Tensor) -> None:
        if r.shape[0] <= r.shape[1]:
            raise ValueError(
                f"the ellipsoid needs more fitting points than dimensions, got n = {r.shape[0]} "
                f"for d = {r.shape[1]}"
            )
        self.mean = r.mean(0)
        cov = torch.cov(r.T).reshape(r.shape[1], r.shape[1])
        chol, info = torch.linalg.cholesky_ex(cov)
        if info.item() != 0:
            raise ValueError("the fitting residuals' covariance is singular: no ellipsoid fits")
        self.chol = chol

    def _score_residuals(self, r):
        white = torch.linalg.solve_triangular(self.chol, (r - self.mean).T, upper=False)
        return white.norm(dim=0)[:, None]

    def _boundary(self, q, num_points):
        return self.mean + q * self._unit_directions(num_points, self.chol) @ self.chol.T

    def _sample(self, q, num, generator):
        return self.mean + q * self._uniform_ball(num, generator, self.chol) @ self.chol.T

    def _volume(self, q, num, generator):
        log_det = self.chol.diagonal().log().sum().item()
        return VolumeEstimate(ball_volume(self.dim, q.item()) * math.exp(log_det), 0.0, 0)


class RectangleConformal(ConformalPredictor):
    """One interval |r_k| ≤ q̂_k per coordinate, each calibrated at α/d (Bonferroni).

    By the union bound the hyper-rectangle covers with probability ≥ 1 − α; conservatively so
    when the coordinates of the residual are dependent.
    """

    method = "rectangle"

    def _fit_residuals(self, r):
        self._like = r[:0]

    def _score_residuals(self, r):
        return r.abs()

    def _boundary(self, q, num_points):
        u = self._unit_directions(num_points, self._like)
        return q * u / u.abs().max(dim=1, keepdim=True).values  # rays meet the box's faces

    def _sample(self, q, num, generator):
        u = torch.rand(num, self.dim, generator=generator, dtype=torch.float64)
        return q * (2 * u.to(self._like) - 1)

    def _volume(self, q, num, generator):
        return VolumeEstimate(math.prod(2 * v for v in q.tolist()), 0.0, 0)


def _invert_entropic_map(
    result: SinkhornResult,
    v: torch.Tensor,
    start: torch.Tensor,
    *,
    max_iter: int = 200,
    tol: float | None = None,
    max_step: float = 0.25,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points ``s: [k, d]`` with T(s) = v for the entropic map T of a squared-Euclidean fit.

    T = ∇φ with φ(s) = ε log Σ_j b_j exp((g_j − ½‖u_j‖² + ⟨s, u_j⟩)/ε), a log-sum-exp of affine
    functions: convex, with Hessian Cov_p(u)/ε. So s minimizes the convex φ(s) − ⟨v, s⟩; damped
    Newton with Armijo backtracking, started from ``start``. A v outside the interior of the
    convex hull of the u_j has no preimage: the iterates run off to infinity. Returns the
    points and a ``[k]`` mask of those solved to ``tol``.
    """
    # in float64 whatever the fit's dtype: near-flat Hessians are singular in float32
    dtype = start.dtype
    u, eps = result.y.double(), result.epsilon
    v, start = v.double(), start.double()
    tol = 1e-7 if tol is None else tol  # ‖T(s) − v‖ in units of the unit ball
    beta = log_weight(result.b.double()) + (result.g.double() - 0.5 * (u * u).sum(1)) / eps
    eye = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)

    def objective(points: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = beta + points @ u.T / eps
        value = eps * torch.logsumexp(logits, dim=1) - (targets * points).sum(1)
        return value, torch.softmax(logits, dim=1)

    s = start.clone()
    active = torch.arange(s.shape[0], device=s.device)  # points not yet solved
    for _ in range(max_iter):
        points, targets = s[active], v[active]
        value, p = objective(points, targets)
        mean = p @ u
        grad = mean - targets
        unsolved = grad.norm(dim=1) >= tol
        if not unsolved.any():
            active = active[:0]
            break
        active, points, targets = active[unsolved], points[unsolved], targets[unsolved]
        value, p, mean, grad = value[unsolved], p[unsolved], mean[unsolved], grad[unsolved]
        hessian = (torch.einsum("km,md,me->kde", p, u, u) - mean[:, :, None] * mean[:, None]) / eps
        ridge = 1e-10 * hessian.diagonal(dim1=1, dim2=2).sum(1).clamp_min(1e-12) + 1e-12
        step = -torch.linalg.solve(hessian + ridge[:, None, None] * eye, grad[..., None])[..., 0]
        # a trust region: where p sits on one reference point φ is nearly flat (Hessian ≈ 0)
        # and the raw Newton step is huge; the residuals live in the unit ball
        step = step * (max_step / step.norm(dim=1, keepdim=True)).clamp(max=1.0)
        slope = (grad * step).sum(1)
        t = torch.ones_like(value)
        todo = torch.arange(points.shape[0], device=s.device)  # Armijo not yet satisfied
        for _ in range(40):
            trial, _ = objective(points[todo] + t[todo, None] * step[todo], targets[todo])
            todo = todo[trial > value[todo] + 1e-4 * t[todo] * slope[todo]]
            if todo.numel() == 0:
                break
            t[todo] *= 0.5
        s[active] = points + t[:, None] * step
    solved = torch.ones(s.shape[0], dtype=torch.bool, device=s.device)
    solved[active] = False
    return s.to(dtype), solved


#: OTCP's default relative ε (see :class:`OTCP`).
OTCP_RELATIVE_EPSILON = 0.1

#: OTCP's scores: the gauge of the rank in the reference's hull, or its Euclidean norm.
OTCP_SCORES = ("auto", "hull", "norm")

#: Above this output dimension ``score="auto"`` is ``"norm"``: the hull has too many facets.
HULL_MAX_DIM = 6

#: A level this close to 1 counts as unbounded under the hull score: ranks of far-away
#: residuals reach the hull's boundary to float64 precision, and so does the region.
_HULL_LEVEL_LIMIT = 1 - 1e-9


class OTCP(ConformalPredictor):
    """Conformal prediction with OT multivariate ranks (Klein et al. 2025; module docstring).

    The rank map T is fitted on the fitting split only, so any score built from it is a fixed
    function on the calibration and test pairs and the split-conformal guarantee holds for
    every choice below; the choices move only the regions' shape and size.

    **Bounded regions.** The entropic map T sends R^d onto the *interior* of the convex hull
    K of the reference points, and T(s) reaches the boundary ∂K as ‖s‖ → ∞. The paper's score
    ‖T(s̃)‖ therefore has an unbounded region {‖T(s̃)‖ ≤ q̂} as soon as q̂ exceeds the
    inradius of K, which is below 1 for any finite reference (0.92 for the 93 Sobol
    directions of 1,024 points in R³, 0.85 in R⁴); and out-of-sample ranks are inflated
    (a fresh residual outside the fitting cloud is ranked near ∂K), which pushes q̂ to
    0.94–1.00 in d ≥ 3. Measured with the paper's construction (ε = 0.01 × std C, Sobol
    directions, no whitening) on the bimodal and banana toys: unbounded on 90–100% of splits
    at d = 3 and 4. Four changes, each a fixed function of the fitting split:

    * ``score="hull"`` (default for d ≤ 6): S = γ_K(T(s̃)), the gauge of the rank in K
      (:func:`hull_facets`): γ_K = 1 on ∂K and < 1 inside, so the region T⁻¹(q̂·K) is
      compact for *every* q̂ < 1, and every score of a finite point is < 1. It equals
      ‖T(s̃)‖ when K is the unit ball; for a polytope it measures the rank against the
      reachable set. ``score="norm"`` is the paper's ‖T(s̃)‖.
    * ``whiten=True``: residuals are whitened by the fitting residuals' covariance
      (s̃ = L⁻¹(r − mean)/scale, LLᵀ = Σ) before the map is fitted, so the map works on a
      round cloud, and scores do not depend on the units of the outputs. On a heavy-tailed
      real set (scpf, d = 3, k-NN model, α = 0.1) the bulk of raw residuals sits in a small
      corner of the unit ball: unwhitened, the regions were twice the ellipsoid's with the
      paper's construction (median log ratio −0.70 over 20 splits) and about 80 times with
      ε = 0.1 (−4.4 over 10 splits); whitened, 0.81 times (+0.21).
    * ε = 0.1 × std C (:data:`OTCP_RELATIVE_EPSILON`, was 0.01): a smoother map ranks fresh
      residuals less extremely (median q̂ at α = 0.1 on the bimodal and banana toys,
      n = 250 per split, 512 reference points: 0.82–0.92 against 0.97–1.00 at d = 3, 4), so
      the regions stop at the residual cloud rather than at the hull of the fitting points.
      Ranks are then not uniform even in sample (they shrink toward 0), which the
      calibration absorbs: coverage never depends on it.
    * ``directions="auto"`` spreads the reference's directions evenly in d ≥ 3
      (``"lloyd"``), raising the inradius of K (a rounder hull, smoother contours).

    Args:
        model: the fitted regression model (see :class:`ConformalPredictor`).
        epsilon: absolute entropic regularization of the map, in units of the rescaled
            residuals (they lie in the unit ball; the cost is ½‖s − u‖²).
        relative_epsilon: ε as a multiple of the std of the cost (see :func:`otkit.sinkhorn`);
            the default when neither is given is :data:`OTCP_RELATIVE_EPSILON` = 0.1.
        reference_size: points of the reference measure (:func:`reference_ball`).
        num_radii: radii of the reference grid (default ⌈reference_size^{1/d}⌉).
        directions: ``"auto"`` (evenly spaced angles in the plane, ``"lloyd"`` above),
            ``"lloyd"``, ``"sobol"``, ``"random"`` or (d = 2) ``"grid"`` directions of the
            reference (:func:`sphere_directions`).
        score: ``"auto"`` (``"hull"`` for d ≤ :data:`HULL_MAX_DIM`, ``"norm"`` above),
            ``"hull"`` or ``"norm"`` (above). Under ``"norm"`` a level above the hull's
            inradius leaves the region unbounded: :meth:`PredictionSet.volume` reports an
            infinite volume, with a warning.
        whiten: whiten the residuals by their covariance before fitting the map (above).
            Needs more fitting points than dimensions and a non-singular covariance.
        seed: seed of the reference's directions (the predictor is deterministic given it).
        backward: how regions are drawn and sampled: ``"invert"`` (the preimage of the
            forward map; exact) or ``"entropic"`` (the entropic inverse map; see
            :meth:`quantiles`).
        tol, max_iter, backend: passed to :func:`otkit.sinkhorn`.

    The paper's construction is ``OTCP(model, relative_epsilon=0.01, directions="sobol",
    score="norm", whiten=False)`` (in the plane, ``directions="grid"``).
    """

    method = "otcp"

    def __init__(
        self,
        model: Any,
        *,
        epsilon: float | None = None,
        relative_epsilon: float | None = None,
        reference_size: int = 1024,
        num_radii: int | None = None,
        directions: str = "auto",
        score: str = "auto",
        whiten: bool = True,
        seed: int = 0,
        backward: str = "invert",
        tol: float = 1e-4,
        max_iter: int = 10_000,
        backend: str = "auto",
    ) -> None:
        super().__init__(model)
        if epsilon is not None and relative_epsilon is not None:
            raise ValueError("give epsilon or relative_epsilon, not both")
        self.epsilon = epsilon
        self.relative_epsilon = (
            OTCP_RELATIVE_EPSILON if epsilon is None and relative_epsilon is None else relative_epsilon
        )
        self.reference_size = check_count("reference_size", reference_size, minimum=2)
        self.num_radii = num_radii
        self.directions = directions
        self.score_kind = check_choice("score", score, OTCP_SCORES)
        self.whiten = check_choice("whiten", whiten, (True, False))
        self.seed = seed
        self.backward = check_choice("backward", backward, ("invert", "entropic"))
        self.tol, self.max_iter, self.backend = tol, max_iter, backend
        self.transport_map: SinkhornResult | None = None
        self.facets: torch.Tensor | None = None
        self.inradius: float | None = None

    @property
    def score_rule(self) -> str:
        """The score in use: ``"hull"`` or ``"norm"`` (``score="auto"`` resolved by d)."""
        if self.score_kind != "auto":
            return self.score_kind
        return "hull" if self.dim is not None and self.dim <= HULL_MAX_DIM else "norm"

    def _fit_residuals(self, r: torch.Tensor) -> None:
        self.offset = r.mean(0)
        self.whitening = None
        if self.whiten:
            if r.shape[0] <= r.shape[1]:
                raise ValueError(
                    f"whitening needs more fitting points than dimensions, got n = {r.shape[0]} "
                    f"for d = {r.shape[1]}: fit on more points or pass whiten=False"
                )
            cov = torch.cov(r.T).reshape(r.shape[1], r.shape[1])
            chol, info = torch.linalg.cholesky_ex(cov)
            if info.item() != 0:
                raise ValueError(
                    "the fitting residuals' covariance is singular: no whitening (pass whiten=False)"
                )
            self.whitening = chol
        self.scale = torch.ones((), dtype=r.dtype, device=r.device)
        self.scale = self._normalize(r).norm(dim=1).max().clamp_min(torch.finfo(r.dtype).tiny)
        reference, weights = reference_ball(
            self.reference_size, self.dim, num_radii=self.num_radii,
            directions=self.directions, seed=self.seed, dtype=torch.float64,
        )
        self.facets, self.inradius = None, None
        if self.score_rule == "hull" or self.dim <= HULL_MAX_DIM:
            facets = hull_facets(reference)
            self.inradius = (1 / facets.norm(dim=1)).min().item()
            self.facets = facets.to(r)
        self.transport_map = sinkhorn(
            self._normalize(r), reference.to(r), b=weights.to(r),
            epsilon=self.epsilon, relative_epsilon=self.relative_epsilon,
            tol=self.tol, max_iter=self.max_iter, backend=self.backend,
        )

    def _normalize(self, r: torch.Tensor) -> torch.Tensor:
        """Residuals ``[k, d]`` to the rank map's input, s̃ = L⁻¹(r − offset)/scale."""
        centred = r - self.offset
        if self.whitening is not None:
            centred = torch.linalg.solve_triangular(self.whitening, centred.T, upper=False).T
        return centred / self.scale

    def _denormalize(self, s: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_normalize`: offset + scale · L s̃."""
        s = self.scale * s
        if self.whitening is not None:
            s = s @ self.whitening.T
        return self.offset + s

    def gauge(self, v: object) -> torch.Tensor:
        """γ_K(v) = inf{t ≥ 0 : v ∈ t·K} of points ``v: [k, d]`` for K the reference's hull, ``[k]``."""
        self._require_fit("gauge")
        if self.facets is None:
            raise RuntimeError(f"no hull facets above d = {HULL_MAX_DIM}: use score='norm'")
        v = self._as_targets("v", v, self.offset)
        block = max(1, 2**22 // self.facets.shape[0])  # about 32 MB of products at a time
        parts = [(v[i:i + block] @ self.facets.T).max(dim=1).values for i in range(0, len(v), block)]
        return torch.cat(parts).clamp_min(0) if parts else v.new_zeros(0)

    def ranks(self, residuals: object) -> torch.Tensor:
        """Multivariate ranks T(s̃) ∈ the reference's hull of residuals ``[k, d]`` (s̃: :meth:`_normalize`)."""
        self._require_fit("ranks")
        r = self._as_targets("residuals", residuals, self.offset)
        return self.transport_map.transport(self._normalize(r))

    def bounded(self, level: float) -> bool | None:
        """Whether the region {S ≤ level} is bounded (``None``: unknown, the norm score above d = 6).

        Exact, from the hull K of the reference: T maps R^d onto the interior of K and reaches
        ∂K only at infinity, so {γ_K(T) ≤ q} is compact iff q < 1 and {‖T‖ ≤ q} iff q is below
        K's inradius (above it, a facet of K has points of norm ≤ q, reached along its normal).
        """
        self._require_fit("bounded")
        level = float(level)
        if self.score_rule == "hull":
            return level < _HULL_LEVEL_LIMIT
        return None if self.inradius is None else level < self.inradius

    def quantiles(self, u: object) -> torch.Tensor:
        """Multivariate quantiles of points ``u: [k, d]`` of the reference's hull, ``[k, d]`` residuals.

        ``backward="invert"`` (default): the exact preimage r with T(s̃(r)) = u under the forward
        map, so a contour drawn at level q̂ is the boundary of the region that
        :meth:`PredictionSet.contains` tests. ``backward="entropic"``: the entropic map from
        the reference back to the residuals (the paper's backward map): it shrinks toward the
        mean, so its contours lie inside the region.
        """
        self._require_fit("quantiles")
        u = self._as_targets("u", u, self.offset)
        if self.backward == "entropic":
            return self._denormalize(self.transport_map.inverse_transport(u))
        residuals, solved = self._preimages(u)
        if not solved.all():
            warnings.warn(
                f"OTCP: {int((~solved).sum())} of {len(solved)} quantile points have no "
                "preimage under the rank map: they lie outside the interior of the reference's "
                "hull, so the contour is unbounded in their directions (score='hull' keeps "
                "every region bounded)",
                RuntimeWarning,
                stacklevel=2,
            )
        return residuals

    def _preimages(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Residuals r with T(s̃(r)) = u, ``[k, d]``, and a ``[k]`` mask of those that exist; the
        entropic inverse map gives the starting points."""
        start = self.transport_map.inverse_transport(u)
        s, solved = _invert_entropic_map(self.transport_map, u, start)
        return self._denormalize(s), solved

    def _score_residuals(self, r):
        ranks = self.ranks(r)
        if self.score_rule == "hull":
            return self.gauge(ranks)[:, None]
        return ranks.norm(dim=1, keepdim=True)

    def _level_points(self, q: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """Points of rank-space on the level set {score = q} along unit ``directions``."""
        if self.score_rule == "hull":
            return q * directions / self.gauge(directions)[:, None]
        return q * directions

    def _boundary(self, q, num_points):
        return self.quantiles(self._level_points(q, self._unit_directions(num_points, self.offset)))

    def _sample(self, q, num, generator):
        # uniform level in [0, q̂], uniform direction (the spherical uniform when K is the ball)
        gauss = torch.randn(num, self.dim, generator=generator, dtype=torch.float64).to(self.offset)
        level = torch.rand(num, 1, generator=generator, dtype=torch.float64).to(self.offset)
        return self.quantiles(level * self._level_points(q, gauss / gauss.norm(dim=1, keepdim=True)))

    def _volume(self, q, num, generator):
        # unbounded: infinite, from the hull when it is known
        if self.bounded(q.item()) is False:
            warnings.warn(
                f"OTCP: the region at level {q.item():.4g} is unbounded ("
                + ("it reaches the reference's hull"
                   if self.score_rule == "hull"
                   else f"above the inradius {self.inradius:.4g} of the reference's hull; "
                        "score='hull' keeps every region bounded")
                + "): its volume is infinite",
                RuntimeWarning,
                stacklevel=3,
            )
            return VolumeEstimate(math.inf, 0.0, 0)
        # Monte Carlo over a box around the region, grown until no hit lies near its faces
        directions = self._unit_directions(512 if self.dim > 2 else 256, self.offset)
        inside, solved = self._preimages(self._level_points(q, directions))
        if not solved.all():
            warnings.warn(
                "OTCP: the region is unbounded (some directions of its contour have no "
                "preimage under the rank map): its volume is infinite (score='hull' keeps "
                "every region bounded)",
                RuntimeWarning,
                stacklevel=3,
            )
            return VolumeEstimate(math.inf, 0.0, 0)
        low, high = inside.min(0).values, inside.max(0).values
        centre, half = 0.5 * (low + high), 0.75 * (high - low).clamp_min(1e-12 * self.scale)
        for _ in range(6):
            u = torch.rand(num, self.dim, generator=generator, dtype=torch.float64).to(self.offset)
            points = centre + half * (2 * u - 1)
            hits = (self._score_residuals(points) <= q).all(dim=1)
            near_face = (2 * u - 1).abs().max(dim=1).values > 0.9
            if not (hits & near_face).any():
                break
            half = 1.5 * half
        else:
            warnings.warn(
                "OTCP volume: the region still touches the Monte Carlo box after 6 enlargements; "
                "the estimate may be too small",
                RuntimeWarning,
                stacklevel=3,
            )
        box = math.prod((2 * half).tolist())
        p = hits.double().mean().item()
        return VolumeEstimate(box * p, box * math.sqrt(p * (1 - p) / num), num)


#: The predictors by method name, as the widget and the comparisons use them.
CONFORMAL_METHODS: dict[str, type[ConformalPredictor]] = {
    "otcp": OTCP,
    "ball": BallConformal,
    "ellipsoid": EllipsoidConformal,
    "rectangle": RectangleConformal,
}


def make_conformal(method: str, model: Any, **options: Any) -> ConformalPredictor:
    """A predictor by name (``"otcp"``, ``"ball"``, ``"ellipsoid"``, ``"rectangle"``).

    ``options`` go to :class:`OTCP` (epsilon, reference_size, ...); the baselines take none.
    """
    check_choice("method", method, CONFORMAL_METHODS)
    if options and method != "otcp":
        raise TypeError(f"the {method!r} predictor takes no options, got {sorted(options)}")
    return CONFORMAL_METHODS[method](model, **options)

