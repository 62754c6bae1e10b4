"""Multiscale Sinkhorn for low-dimensional clouds: ε-scaling on clusters, then on truncated blocks.

At a small ε the entropic plan P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε) (:mod:`otkit.sinkhorn`)
is concentrated near the Monge map: almost all of its n·m entries are below any tolerance. In
d ≤ 3 clusters of nearby points make this cheap to exploit (Schmitzer 2019, "Stabilized sparse
scaling algorithms for entropy regularized transport problems", SIAM J. Sci. Comput. 41,
§3–4; Feydy 2020, GeomLoss's multiscale mode), for the cost C_ij = ½‖x_i − y_j‖²:

1. **Clusters.** Each cloud is cut by a balanced k-d tree into leaves of at most ``leaf_size``
   points (the widest axis split at a multiple of ``leaf_size``); every leaf I has a centre
   c_I (its mean point) and a radius R_I = max_{i∈I} ‖x_i − c_I‖.
2. **Coarse solve.** Entropic OT between the leaves' barycentres (weights: the leaves'
   masses) with ε annealed down to ε_c = max(ε, D²), D the median leaf diameter: the scale
   at which the barycentres stand for their points. Dense :func:`otkit.sinkhorn` with
   ε-scaling, or this function itself when there are more than ``coarse_size`` leaves.
3. **Extrapolation.** Fine potentials are the coarse ones' soft c-transforms at the fine points
   (at ε_c), f_i = −ε_c log Σ_J B_J exp((G_J − ½‖x_i − c_J‖²)/ε_c), over the leaves J kept at
   the coarse level (and the same for g).
4. **Truncation** with the current potentials at every ε. Write f_i + g_j − C_ij =
   u_i + v_j + ⟨x_i, y_j⟩ with u_i = f_i − ½‖x_i‖², v_j = g_j − ½‖y_j‖². On a leaf u is nearly
   affine (∇u = −T, the map), so fit u_i ≈ α_I + ⟨β_I, x_i − c_I⟩ (least squares) and let
   r_I = max_{i∈I} (u_i − α_I − ⟨β_I, x_i − c_I⟩) be the fit's largest excess. Then for every
   i ∈ I, j ∈ J (Cauchy–Schwarz on each term)

       f_i + g_j − C_ij ≤ α_I + α_J + r_I + r_J + ⟨c_I, c_J⟩ + R_I ‖β_I + c_J‖
                          + R_J ‖β_J + c_I‖ + R_I R_J  =: S_IJ,

   and the leaf pair (I, J) is kept iff S_IJ ≥ −τ ε (``truncation`` = τ). Every dropped entry
   is below a_i b_j e^{−τ}, so the dropped mass is at most e^{−τ} Σa Σb (4.5·10⁻⁵ at the
   default τ = 10): this is Schmitzer's truncation criterion with a rigorous bound per block.
   It is much tighter than one from the potentials' maxima per leaf, max f + max g − min C:
   f varies across a leaf by about ‖x − T(x)‖·R_I, many ε at small ε, while
   ‖β_I + c_J‖ ≈ ‖c_J − T(c_I)‖ vanishes for the pairs the plan actually uses.
5. **Fine ε-scaling** on the kept blocks: one Sinkhorn iteration per ε from ε_c down to ε
   (factor ``epsilon_scaling``), re-truncating at every ε, then iterations at ε until the L1
   error of the target marginal is at most ``tol`` (over-relaxed with ``overrelaxation`` = ω > 1,
   then plain ones until the stopping rule holds again); at that point the truncation is
   checked again with the final potentials, and the iterations go on if a block was missing.

Each half-step is a batched log-sum-exp (:func:`otkit.kernels.batched_points_lse`) over
``[B, s, W·s]`` blocks: B leaves of s points against the W leaves kept for each, leaves sorted
by W so that chunks are padded little; the costs are computed inside the compiled pass from
the points (gathered once per truncation), never stored.

The result is an :class:`otkit.sinkhorn.SinkhornResult` (subclass :class:`MultiscaleResult`)
over the *whole* clouds in ``"online"`` mode: its plan, marginals, maps and objectives use all
n·m entries, the dropped ones included. ``errors`` and ``converged`` are those of the
truncated problem; the full plan's marginal error exceeds them by at most the dropped mass.

Limits (documented choices): the squared Euclidean cost ½‖x − y‖², balanced problems with
positive weights, d ≤ :data:`MAX_DIM` (larger d raises ValueError naming ``x``: the number of
neighbouring leaves grows like (1 + 2ρ/D)^d, so the truncation stops paying; use
:func:`otkit.sinkhorn`), no gradients (the potentials are detached).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import torch

from .costs import SqEuclidean
from .epsilon import cloud_epsilon
from .geometry import PointCloud
from .kernels import _call, batched_points_lse
from .sinkhorn import ConvergenceWarning, SinkhornResult, sinkhorn
from .validation import (
    check_clouds,
    check_count,
    check_equal_mass,
    check_positive,
    check_weights,
)

__all__ = ["MultiscaleResult", "multiscale_sinkhorn", "MAX_DIM"]

#: The largest dimension accepted (module docstring, "Limits").
MAX_DIM = 3
# Cells of one chunk of blocks ([B, s, W·s]) and of one chunk of leaf-pair scores.
_CHUNK_CELLS = 2**22
_SCORE_CELLS = 2**20
# Rounds of "converged, re-truncate, a block was missing, iterate again" before giving up.
_VERIFY_ROUNDS = 4


@dataclass(frozen=True)
class _Leaves:
    """A cloud cut into ``K`` leaves of ``s`` slots, stored leaf-major and flat.

    ``points [K·s + 1, d]``: slot k·s + t holds the t-th point of leaf k (a padded slot repeats
    the leaf's last point); the last slot is a dummy that padded neighbour lists point to.
    ``log_w [K·s + 1]``: log-weights, −inf on padded slots and the dummy. ``source [K·s]``: the
    cloud index of each slot. ``valid [K, s]``. ``centre [K, d]``, ``radius [K]``.
    """

    points: torch.Tensor
    log_w: torch.Tensor
    source: torch.Tensor
    valid: torch.Tensor
    centre: torch.Tensor
    radius: torch.Tensor

    @property
    def count(self) -> int:
        return self.valid.shape[0]

    @property
    def size(self) -> int:
        return self.valid.shape[1]

    @property
    def slots(self) -> torch.Tensor:
        """``[K, s]`` flat slot index of every leaf's points."""
        return torch.arange(self.count * self.size, device=self.points.device).view(self.count,
                                                                                   self.size)

    @property
    def mass(self) -> torch.Tensor:
        """``[K]`` total weight of each leaf."""
        return self.log_w[:-1].exp().view(self.count, self.size).sum(1)

    def barycentres(self) -> torch.Tensor:
        """``[K, d]`` weighted mean of each leaf."""
        w = self.log_w[:-1].exp().view(self.count, self.size, 1)
        pts = self.points[:-1].view(self.count, self.size, -1)
        return (w * pts).sum(1) / w.sum(1)

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """Per-slot ``values [K·s(+1)]`` back to the cloud's order ``[n]``."""
        out = values.new_empty(int(self.source.max()) + 1)
        keep = self.valid.flatten()
        out[self.source[keep]] = values[: keep.numel()][keep]
        return out


def _kd_leaves(points: torch.Tensor, weights: torch.Tensor, size: int) -> _Leaves:
    """Balanced k-d tree leaves of at most ``size`` points (module docstring, step 1).

    Level by level, every group longer than ``size`` is sorted along its widest axis (one
    global argsort on the key group + relative coordinate) and cut at a multiple of ``size``
    near its middle, so that all leaves but one are full.
    """
    n, d = points.shape
    dev = points.device
    order = torch.arange(n, device=dev)
    starts = torch.zeros(1, dtype=torch.long, device=dev)
    lengths = torch.full((1,), n, dtype=torch.long, device=dev)
    while bool((lengths > size).any()):
        groups = lengths.numel()
        gid = torch.repeat_interleave(torch.arange(groups, device=dev), lengths)
        pts = points[order].double()
        index = gid[:, None].expand(-1, d)
        low = torch.full((groups, d), math.inf, dtype=pts.dtype, device=dev)
        low = low.scatter_reduce(0, index, pts, "amin")
        high = torch.full((groups, d), -math.inf, dtype=pts.dtype, device=dev)
        high = high.scatter_reduce(0, index, pts, "amax")
        axis = (high - low).argmax(1)
        span = (high - low).gather(1, axis[:, None]).squeeze(1).clamp_min(1e-300)
        coord = pts.gather(1, axis[gid][:, None]).squeeze(1)
        rel = (coord - low.gather(1, axis[:, None]).squeeze(1)[gid]) / span[gid]
        key = gid.double() + 0.5 * rel  # in [gid, gid + ½]: groups stay in place
        order = order[torch.argsort(key, stable=True)]
        half = torch.clamp(torch.round(lengths / (2 * size)) * size, min=size).long()
        half = torch.where(lengths > size, half, lengths)
        new_starts = torch.stack([starts, starts + half], 1).flatten()
        new_lengths = torch.stack([half, lengths - half], 1).flatten()
        keep = new_lengths > 0
        starts, lengths = new_starts[keep], new_lengths[keep]
    t = torch.arange(size, device=dev)
    valid = t[None] < lengths[:, None]
    slot_of = starts[:, None] + torch.minimum(t[None], lengths[:, None] - 1)
    source = order[slot_of]  # [K, s]
    pts = points[source]
    log_w = torch.where(valid, torch.log(weights[source]),
                        torch.full_like(pts[..., 0], -math.inf))
    mask = valid[..., None].to(pts.dtype)
    centre = (pts * mask).sum(1) / mask.sum(1)
    radius = torch.where(valid, (pts - centre[:, None]).norm(dim=-1),
                         torch.zeros_like(log_w)).amax(1)
    dummy = torch.zeros(1, d, dtype=points.dtype, device=dev)
    neg = torch.full((1,), -math.inf, dtype=points.dtype, device=dev)
    return _Leaves(torch.cat([pts.reshape(-1, d), dummy]), torch.cat([log_w.flatten(), neg]),
                   source.flatten(), valid, centre, radius)


def _affine_fit(leaves: _Leaves, u: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per leaf, u_i ≈ α + ⟨β, x_i − c⟩ by least squares over the valid points, and the fit's
    largest excess r = max_i (u_i − α − ⟨β, x_i − c⟩) (module docstring, step 4). Float64;
    ``u [K·s]`` → ``α [K]``, ``β [K, d]``, ``r [K]``."""
    k, s = leaves.valid.shape
    pts = leaves.points[:-1].view(k, s, -1).double()
    delta = pts - leaves.centre.double()[:, None]
    mask = leaves.valid.double()[..., None]
    design = torch.cat([torch.ones_like(delta[..., :1]), delta], -1) * mask  # [K, s, d + 1]
    target = torch.where(leaves.valid, u.view(k, s).double(), torch.zeros_like(delta[..., 0]))
    gram = design.transpose(1, 2) @ design
    ridge = 1e-9 * (1.0 + gram.diagonal(dim1=1, dim2=2).sum(1))
    gram = gram + ridge[:, None, None] * torch.eye(gram.shape[-1], dtype=gram.dtype,
                                                    device=gram.device)
    theta = torch.linalg.solve(gram, (design.transpose(1, 2) @ target[..., None]))[..., 0]
    alpha, beta = theta[:, 0], theta[:, 1:]
    excess = target - alpha[:, None] - (delta * beta[:, None]).sum(-1)
    excess = torch.where(leaves.valid, excess, torch.full_like(excess, -math.inf)).amax(1)
    return alpha, beta, excess


def _kept_pairs(lx: _Leaves, ly: _Leaves, f: torch.Tensor, g: torch.Tensor, eps: float,
                tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Leaf pairs (I, J) with S_IJ ≥ −τε (module docstring, step 4), ``(rows [P], cols [P])``
    sorted by row; every leaf also keeps its best-scoring partner, so none is left empty."""
    half_x = 0.5 * (lx.points[:-1].double() ** 2).sum(1)
    half_y = 0.5 * (ly.points[:-1].double() ** 2).sum(1)
    ax, bx, rx = _affine_fit(lx, f[:-1].double() - half_x)
    ay, by, ry = _affine_fit(ly, g[:-1].double() - half_y)
    cx, cy = lx.centre.double(), ly.centre.double()
    radx, rady = lx.radius.double(), ly.radius.double()
    row_y = ay + ry
    threshold = -tau * eps
    step = max(1, _SCORE_CELLS // ly.count)
    rows, cols = [], []
    col_best = torch.full((ly.count,), -math.inf, dtype=torch.float64, device=cx.device)
    col_arg = torch.zeros(ly.count, dtype=torch.long, device=cx.device)
    for start in range(0, lx.count, step):
        sl = slice(start, min(start + step, lx.count))
        score = _call(_pair_scores, ax[sl] + rx[sl], bx[sl], cx[sl], radx[sl], row_y, by, cy,
                      rady, cells=(sl.stop - start) * ly.count)
        keep = score >= threshold
        keep[torch.arange(keep.shape[0], device=keep.device), score.argmax(1)] = True
        i, j = torch.nonzero(keep, as_tuple=True)  # sorted by row
        rows.append(i + start)
        cols.append(j)
        value, arg = score.max(0)
        better = value > col_best
        col_best = torch.where(better, value, col_best)
        col_arg = torch.where(better, arg + start, col_arg)
    pi, pj = torch.cat(rows), torch.cat(cols)
    # A column whose best score passes the threshold already has its best row; the others
    # (rare) get it added, and only then are the pairs sorted again.
    lonely = (col_best < threshold).nonzero().squeeze(1)
    if lonely.numel():
        code = torch.unique(torch.cat([pi * ly.count + pj, col_arg[lonely] * ly.count + lonely]))
        pi, pj = code // ly.count, code % ly.count
    return pi, pj


def _pair_scores(alpha_x: torch.Tensor, beta_x: torch.Tensor, cx: torch.Tensor,
                 rad_x: torch.Tensor, alpha_y: torch.Tensor, beta_y: torch.Tensor,
                 cy: torch.Tensor, rad_y: torch.Tensor) -> torch.Tensor:
    """The bound S_IJ (module docstring, step 4) for leaves ``[R]`` against ``[K]``, with
    ``alpha = α + r``: ``[R, K]``, one fused pass (compiled by :func:`otkit.kernels._call`;
    the loops over the d coordinates unroll at trace time)."""
    inner = alpha_x[:, None] + alpha_y[None]
    norm_x = torch.zeros_like(inner)
    norm_y = torch.zeros_like(inner)
    for k in range(cx.shape[1]):
        inner = inner + cx[:, k, None] * cy[None, :, k]
        norm_x = norm_x + (beta_x[:, k, None] + cy[None, :, k]) ** 2
        norm_y = norm_y + (beta_y[None, :, k] + cx[:, k, None]) ** 2
    return (inner + rad_x[:, None] * norm_x.sqrt() + rad_y[None] * norm_y.sqrt()
            + rad_x[:, None] * rad_y[None])


@dataclass(frozen=True)
class _Chunk:
    rows: torch.Tensor  # [B, s_r] flat slots of the rows
    neighbours: torch.Tensor  # [B, W] kept column leaves (K_c, a dummy leaf, on padding)
    row_points: torch.Tensor  # [B, s_r, d]
    col_points: torch.Tensor  # [d, B, W·s_c] (coordinate-major, for the compiled pass)


def _by_leaf(values: torch.Tensor, leaves: _Leaves, pad: float) -> torch.Tensor:
    """Per-slot ``values [K·s + 1, ...]`` as ``[K + 1, s, ...]`` (the last leaf: ``pad``), so
    that a leaf's slots are gathered as one contiguous run."""
    body = values[:-1].reshape(leaves.count, leaves.size, *values.shape[1:])
    return torch.cat([body, torch.full_like(body[:1], pad)])


def _blocks(rows: _Leaves, cols: _Leaves, pi: torch.Tensor, pj: torch.Tensor) -> list[_Chunk]:
    """The kept blocks of one half-step as chunks of ``[B, s_r]`` row and ``[B, W·s_c]``
    column points (the costs are built inside the compiled pass).

    Pairs ``(pi, pj)`` sorted by ``pi``. Leaves are sorted by their number W of kept
    partners, so a chunk's leaves are padded (with a dummy leaf of weight 0) to nearly the
    same W.
    """
    k, s = rows.valid.shape
    dev = pi.device
    counts = torch.bincount(pi, minlength=k)
    first = torch.cumsum(counts, 0) - counts
    rank = torch.arange(pi.numel(), device=dev) - first[pi]
    table = torch.full((k, int(counts.max())), cols.count, dtype=torch.long, device=dev)
    table[pi, rank] = pj
    by_count = torch.argsort(counts)
    sorted_counts = counts[by_count].tolist()
    s_c = cols.size
    chunks, start = [], 0
    row_slots = rows.slots
    leaf_points = _by_leaf(cols.points, cols, 0.0).permute(2, 0, 1).contiguous()  # [d, K+1, s]
    while start < k:
        stop = start + 1
        while stop < k and (stop + 1 - start) * s * sorted_counts[stop] * s_c <= _CHUNK_CELLS:
            stop += 1
        leaves = by_count[start:stop]
        neighbours = table[leaves, :sorted_counts[stop - 1]]  # [B, W]
        r = row_slots[leaves]
        chunks.append(_Chunk(r, neighbours, rows.points[r],
                             leaf_points[:, neighbours].flatten(2)))
        start = stop
    return chunks


def _half_step(chunks: list[_Chunk], pot_cols: torch.Tensor, cols: _Leaves,
               pot_rows: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One Sinkhorn half-step on the kept blocks: the rows' new potential
    −ε log Σ_j w_j exp((pot_j − C_ij)/ε) and the ratio (row mass of the plan before the
    update) / (row weight), both per slot (the dummy and untouched slots keep their values)."""
    h_leaf = _by_leaf(pot_cols / eps + cols.log_w, cols, -math.inf)  # [K_c + 1, s_c]
    new, ratio = pot_rows.clone(), torch.ones_like(pot_rows)
    for c in chunks:
        shift = -pot_rows[c.rows] / eps
        inv = torch.full((c.rows.shape[0], 1, 1), 1.0 / eps, dtype=shift.dtype,
                         device=shift.device)
        lse, r = batched_points_lse(c.row_points, c.col_points, h_leaf[c.neighbours].flatten(1),
                                    shift, inv)
        new[c.rows] = -eps * lse
        ratio[c.rows] = r
    return new, ratio


@dataclass(frozen=True, repr=False)
class MultiscaleResult(SinkhornResult):
    """A :class:`~otkit.sinkhorn.SinkhornResult` from :func:`multiscale_sinkhorn`
    (``backend="multiscale"``, ``mode="online"``), with the truncation's statistics.

    Attributes (beyond SinkhornResult's):
        kept_fraction: share of the n·m entries inside the kept blocks at the end (padding
            excluded from the count's denominator only).
        coarse_iterations: Sinkhorn iterations of the coarse solve(s).
        leaves: ``(K_x, K_y)``, the number of leaves of each cloud.
        seconds: wall time of the solve.
    """

    kept_fraction: float = math.nan
    coarse_iterations: int = 0
    leaves: tuple[int, int] = (0, 0)
    seconds: float = math.nan


def multiscale_sinkhorn(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    tol: float = 1e-3,
    max_iter: int = 2000,
    epsilon_scaling: float = 0.5,
    leaf_size: int = 8,
    truncation: float = 10.0,
    coarse_size: int = 1024,
    overrelaxation: float = 1.0,
) -> MultiscaleResult:
    """Balanced entropic OT between ``x: [n, d]`` and ``y: [m, d]``, d ≤ 3, for ½‖x − y‖²,
    by multiscale ε-scaling with kernel truncation (module docstring).

    Args:
        x, y: the clouds, floating point, on one device; d ≤ :data:`MAX_DIM`.
        a, b: positive weights ``[n]``, ``[m]`` of equal totals (uniform by default).
        epsilon, relative_epsilon: as in :func:`otkit.sinkhorn` (default 0.05 × std C).
        tol: stop when the L1 error of the target marginal of the truncated plan falls to
            ``tol`` (the sources' marginal is then exact).
        max_iter: cap on the iterations at the final ε; reaching it warns
            (:class:`~otkit.sinkhorn.ConvergenceWarning`) and sets ``converged=False``.
        epsilon_scaling: the ε factor q in (0, 1) per annealing iteration (coarse and fine).
        leaf_size: at most this many points per leaf of the k-d trees (≥ 2).
        truncation: τ > 0: blocks whose entries are all below a_i b_j e^{−τ} are dropped.
        overrelaxation: ω in [1, 2): the iterations at the final ε move each potential by ω
            times its Sinkhorn update, f ← f + ω (f̃ − f) (over-relaxed Sinkhorn: Thibault,
            Chizat, Dossal, Papadakis 2021, "Overrelaxed Sinkhorn–Knopp algorithm for
            regularized optimal transport", Algorithms 14(5), §3, in the log domain), until
            the target marginal is within ``tol``; plain iterations then finish, so the stopping
            rule (sources exact, target within ``tol``) is unchanged. 1 = plain Sinkhorn.
        coarse_size: more leaves than this and the coarse problem is itself solved by
            multiscale Sinkhorn (else by dense :func:`otkit.sinkhorn`).

    Returns:
        :class:`MultiscaleResult` with potentials in cost units, in the clouds' order.

    Raises:
        ValueError: d > 3 (naming ``x``), a bad argument (named), zero weights or unequal
            masses.
    """
    start_time = time.perf_counter()
    x, y = check_clouds(x, y)
    if x.shape[1] > MAX_DIM:
        raise ValueError(
            f"x has d = {x.shape[1]} columns: multiscale_sinkhorn is for d <= {MAX_DIM} (the "
            f"kernel truncation does not pay above); use otkit.sinkhorn(x, y, ...) instead")
    x, y = x.detach(), y.detach()
    a = check_weights("a", a, x.shape[0], x).detach()
    b = check_weights("b", b, y.shape[0], y).detach()
    for name, w in (("a", a), ("b", b)):
        if bool((w <= 0).any()):
            raise ValueError(f"{name} has zero weights: drop those points (multiscale_sinkhorn "
                             "needs positive weights)")
    check_equal_mass(a, b)
    tol = check_positive("tol", tol)
    max_iter = check_count("max_iter", max_iter)
    if isinstance(epsilon_scaling, bool) or not isinstance(epsilon_scaling, (int, float)) \
            or not 0 < epsilon_scaling < 1:
        raise ValueError(f"epsilon_scaling must be a number in (0, 1), got {epsilon_scaling!r}")
    leaf_size = check_count("leaf_size", leaf_size, minimum=2)
    truncation = check_positive("truncation", truncation)
    coarse_size = check_count("coarse_size", coarse_size, minimum=2)
    if isinstance(overrelaxation, bool) or not isinstance(overrelaxation, (int, float)) \
            or not 1 <= overrelaxation < 2:
        raise ValueError(f"overrelaxation must be a number in [1, 2), got {overrelaxation!r}")

    geometry = PointCloud(x, y, SqEuclidean(), mode="online")
    with torch.no_grad():
        eps, _ = cloud_epsilon(geometry, epsilon, relative_epsilon)
        out = _solve(geometry.centred(x), geometry.centred(y), a, b, eps, tol, max_iter,
                     float(epsilon_scaling), leaf_size, truncation, coarse_size,
                     float(overrelaxation))
    f, g, n_iter, errors, kept, coarse_iter, leaves = out
    converged = bool(errors.numel()) and errors[-1].item() <= tol
    if not converged:
        last = errors[-1].item() if errors.numel() else math.nan
        warnings.warn(
            f"multiscale_sinkhorn did not reach tol={tol:g} in {max_iter} iterations at "
            f"epsilon={eps:.3g} (error {last:.3g}): raise max_iter or epsilon",
            ConvergenceWarning, stacklevel=2)
    return MultiscaleResult(
        geometry=geometry, a=a, b=b, f=f, g=g, epsilon=eps, tau_a=1.0, tau_b=1.0,
        converged=converged, n_iter=n_iter, errors=errors, backend="multiscale", tol=tol,
        kept_fraction=kept, coarse_iterations=coarse_iter, leaves=leaves,
        seconds=time.perf_counter() - start_time,
    )


def _coarse(lx: _Leaves, ly: _Leaves, eps_c: float, tol: float, scaling: float, leaf_size: int,
            truncation: float, coarse_size: int,
            omega: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Potentials ``[K_x]``, ``[K_y]`` of the barycentres' problem at ε_c, and its iterations."""
    bx, by = lx.barycentres(), ly.barycentres()
    mass_x, mass_y = lx.mass, ly.mass
    mass_y = mass_y * (mass_x.sum() / mass_y.sum())  # equal totals to rounding
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if max(lx.count, ly.count) > coarse_size:
            f, g, n_iter, _, _, inner, _ = _solve(bx, by, mass_x, mass_y, eps_c, tol, 5000,
                                                  scaling, leaf_size, truncation, coarse_size,
                                                  omega)
            return f, g, n_iter + inner
        res = sinkhorn(bx, by, mass_x, mass_y, epsilon=eps_c, tol=tol, max_iter=5000,
                       epsilon_scaling=scaling, backend="torch", mode="dense")
    return res.f, res.g, res.n_iter


def _point_leaves(points: torch.Tensor, mass: torch.Tensor) -> _Leaves:
    """Every point its own leaf (the coarse level seen by the truncation bound)."""
    k, d = points.shape
    dev = points.device
    zero = torch.zeros(1, d, dtype=points.dtype, device=dev)
    neg = torch.full((1,), -math.inf, dtype=points.dtype, device=dev)
    return _Leaves(torch.cat([points, zero]), torch.cat([mass.log(), neg]),
                   torch.arange(k, device=dev), torch.ones(k, 1, dtype=torch.bool, device=dev),
                   points, torch.zeros(k, dtype=points.dtype, device=dev))


def _extrapolate(fine: _Leaves, coarse_rows: _Leaves, coarse_cols: _Leaves, f_c: torch.Tensor,
                 g_c: torch.Tensor, eps_c: float, tau: float) -> torch.Tensor:
    """The soft c-transform at ε_c of the coarse column potential at the fine row points,
    over the coarse pairs kept at ε_c (module docstring, step 3). → ``[K·s + 1]``."""
    pad = f_c.new_zeros(1)
    pi, pj = _kept_pairs(coarse_rows, coarse_cols, torch.cat([f_c, pad]),
                         torch.cat([g_c, pad]), eps_c, tau)
    chunks = _blocks(fine, coarse_cols, pi, pj)
    start = torch.cat([f_c.repeat_interleave(fine.size), pad])  # shift: the leaf's potential
    new, _ = _half_step(chunks, torch.cat([g_c, pad]), coarse_cols, start, eps_c)
    return new


def _solve(x, y, a, b, eps, tol, max_iter, scaling, leaf_size, truncation, coarse_size,
           omega):
    """The multiscale solve on centred clouds; potentials in the clouds' order."""
    lx, ly = _kd_leaves(x, a, leaf_size), _kd_leaves(y, b, leaf_size)
    diam = torch.cat([2 * lx.radius, 2 * ly.radius]).median().item()
    eps_c = max(eps, diam**2)
    f_c, g_c, coarse_iter = _coarse(lx, ly, eps_c, tol, scaling, leaf_size, truncation,
                                    coarse_size, omega)
    cx, cy = _point_leaves(lx.barycentres(), lx.mass), _point_leaves(ly.barycentres(), ly.mass)
    f = _extrapolate(lx, cx, cy, f_c, g_c, eps_c, truncation)
    g = _extrapolate(ly, cy, cx, g_c, f_c, eps_c, truncation)

    def build(current: float, pairs=None):
        pi, pj = _kept_pairs(lx, ly, f, g, current, truncation) if pairs is None else pairs
        rows = _blocks(lx, ly, pi, pj)
        order = torch.argsort(pj * lx.count + pi)
        cols = _blocks(ly, lx, pj[order], pi[order])
        return (pi, pj), rows, cols

    current = eps_c
    while current > eps * (1 + 1e-9):  # fine ε-scaling: one iteration per ε, re-truncating
        current = max(current * scaling, eps)
        _, rows, cols = build(current)
        f, _ = _half_step(rows, g, ly, f, current)
        g, _ = _half_step(cols, f, lx, g, current)
    pairs, rows, cols = build(eps)
    errors, n_iter = [], 0
    relaxed = omega != 1.0
    weights = ly.log_w.exp()
    for _ in range(_VERIFY_ROUNDS):
        while n_iter < max_iter:
            f_new, _ = _half_step(rows, g, ly, f, eps)
            f = f + omega * (f_new - f) if relaxed else f_new  # plain: rows exact
            g_new, ratio = _half_step(cols, f, lx, g, eps)
            n_iter += 1
            errors.append((weights * (ratio - 1).abs()).sum().item())
            if errors[-1] <= tol:
                if not relaxed:
                    break
                relaxed = False  # plain from here on: the stopping rule needs exact rows
            g = g + omega * (g_new - g) if relaxed else g_new
        if n_iter >= max_iter:
            break
        new = _kept_pairs(lx, ly, f, g, eps, truncation)
        kept = torch.zeros(lx.count, ly.count, dtype=torch.bool, device=f.device)
        kept[pairs] = True
        if bool(kept[new].all()):
            break
        kept[new] = True
        pairs, rows, cols = build(eps, torch.nonzero(kept, as_tuple=True))
    kept = pairs[0].numel() * leaf_size**2 / (x.shape[0] * y.shape[0])
    return (lx.scatter(f), ly.scatter(g), n_iter,
            torch.tensor(errors, dtype=torch.float64), min(kept, 1.0), coarse_iter,
            (lx.count, ly.count))
