"""Sinkhorn sharded over ``torch.distributed``: one cost matrix larger than any one device.

Zhang, Mousavi-Hosseini, Klein and Cuturi (2025), "On Fitting Flow Models with Large Sinkhorn
Couplings", solve Sinkhorn between millions of noise and data points by sharding the source
cloud across GPUs. otkit does the same with any ``torch.distributed`` backend (gloo on CPU,
NCCL on GPUs).

Layout. With R processes ("ranks"), rank r holds

* a shard ``x_r: [n_r, d]`` of the source points, its weights ``a_r: [n_r]`` and its part
  ``f_r: [n_r]`` of the potential f (the shards, in rank order, make up x, a and f);
* the whole target ``y: [m, d]``, its weights ``b: [m]`` and the potential ``g: [m]``,
  replicated: identical on every rank.

Nothing of size n·m, or even n, is ever held by one rank: memory is O((n_r + m)·d) plus one
band of ``block_size`` rows of the cost, streamed as in :func:`otkit.sinkhorn`'s online mode
(``mode="dense"`` stores each rank's ``[n_r, m]`` block instead, when it fits).

Iteration. The conventions are :mod:`otkit.sinkhorn`'s (cost ½‖x − y‖², potentials in cost
units, P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)) and so is the balanced iteration

    g_j ← −ε LSE_i(log a_i + (f_i − C_ij)/ε),      (over all n rows: needs every rank)
    f_i ← −ε LSE_j(log b_j + (g_j − C_ij)/ε).      (over the m columns: local to i's rank)

The f-update is local: rank r updates f_r from its rows of C against all of y. The g-update
sums over every row, so it is a log-sum-exp across ranks. Each rank computes, for every
column j, the log-sum-exp over its own rows, ℓ_r,j = LSE_{i ∈ rank r}(...), an ``[m]``
vector, and the ranks combine them stably:

    M_j = max_r ℓ_r,j                     (all_reduce MAX)
    S_j = Σ_r exp(ℓ_r,j − M_j)            (all_reduce SUM)
    LSE_i(...) = M_j + log S_j,

with M_j replaced by 0 where it is −inf (no mass in column j on any rank), so that the
result is −inf rather than NaN. Each iteration thus moves 2·m numbers per rank, against
O(n_r·m) work.

Stopping rule (as :func:`otkit.sinkhorn`): after the g-update the columns are exact, and the
L1 row-marginal error ‖P1 − a‖₁ = Σ_r Σ_{i ∈ r} a_i |exp((f_i − f̂_i)/ε) − 1| is a sum of
per-rank terms (all_reduce SUM). Every rank sees the same error, so all stop together. The
f-update follows, so the returned plan has exact rows and carries the error in its columns.

ε. ``epsilon`` and ``relative_epsilon`` mean what :mod:`otkit.epsilon` defines (ε =
relative_epsilon × std(C), 0.05 × std(C) when neither is given), resolved by the same
:func:`otkit.epsilon.resolve_epsilon` from the same std(C) as the single-process solver: otkit's
:meth:`~otkit.geometry.PointCloud.cost_std` is the sample std (ddof = 1) of C restricted to
a fixed-seed subsample of at most 2048 rows and 2048 columns — all of C when n, m ≤ 2048.
Here every rank draws the same subsample, computes the cost entries of its own sampled rows,
and the per-rank (count, mean, squared deviations) are merged exactly (Chan et al. 1979), so
the sharded ε equals the single-process ε to rounding at every size.

ε-scaling and warm starts are :func:`otkit.sinkhorn`'s: ``epsilon_scaling = q`` runs the
iterations at ε_k = max(ε, std(C) q^k) (:func:`otkit.epsilon.annealed_epsilons`, the same
schedule, so the same iterations as one process), and ``init = (f_shard, g)`` starts from given
potentials, each rank its part of f.

Balanced OT only (``tau_a = tau_b = 1``): a and b must have equal total mass.

Usage (every process runs the same script; ``torchrun`` sets RANK, WORLD_SIZE, ...)::

    torch.distributed.init_process_group("gloo")        # or "nccl", one GPU per rank
    x_r = otkit.distributed.shard(x)                     # this rank's rows of x
    res = otkit.distributed.sharded_sinkhorn(x_r, y, relative_epsilon=0.01)
    i, j = res.sample_pairs_shard(generator)             # one target per local source
    f = res.gather_f()                                   # [n] on every rank (collective)

``python -m otkit.distributed`` (or ``torchrun ... -m otkit.distributed``) runs a demo; see
:func:`main`. :func:`run_local` starts R gloo processes on this machine, for tests.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from ..backends import log_weight
from ..backends.torch_native import ConvergenceBar, lse_operators
from ..costs import Cost, get_cost
from ..coupling import sample_rows
from ..epsilon import (
    annealed_epsilons,
    check_epsilon_arguments,
    epsilon_unit,
    resolve_epsilon,
)
from ..geometry import PointCloud
from ..sinkhorn import ConvergenceWarning
from ..validation import (
    check_cloud_pair,
    check_count,
    check_epsilon_scaling,
    check_equal_mass,
    check_init,
    check_nonnegative_weights,
    check_positive,
    check_weights,
)

__all__ = ["sharded_sinkhorn", "ShardedSinkhornResult", "shard"]

# The subsample on which otkit.geometry.PointCloud.cost_std estimates std(C) (its default).
_COST_STD_POINTS = 2048
# Rows per band when sampling pairs: a [band, m] block of about 2**22 cells (32 MB in float64).
_SAMPLE_BAND_CELLS = 2**22
_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------- result


@dataclass(frozen=True, repr=False)
class ShardedSinkhornResult:
    """One rank's part of the solution of a sharded Sinkhorn problem.

    Attributes:
        geometry: this rank's clouds and cost (``geometry.x``: the shard ``[n_r, d]``,
            ``geometry.y``: the whole target ``[m, d]``).
        a_shard: this rank's source weights ``[n_r]``.
        b: target weights ``[m]`` (replicated).
        f_shard: this rank's part of the potential f, ``[n_r]``, in cost units.
        g: the potential g, ``[m]``, identical on every rank.
        epsilon: the absolute ε used (the same on every rank).
        converged: whether the L1 row-marginal error reached ``tol`` within ``max_iter``.
        n_iter: iterations (pairs of half-steps) done.
        errors: ``[n_iter]`` float64 history of the global L1 row-marginal error ‖P1 − a‖₁.
        rank, world_size: this process's rank and the number of ranks in ``group``.
        shard_sizes: ``n_r`` of every rank, in rank order (they sum to n).
        tol: the requested tolerance.
        group: the process group the problem was solved on (None: the default group).
    """

    geometry: PointCloud
    a_shard: torch.Tensor
    b: torch.Tensor
    f_shard: torch.Tensor
    g: torch.Tensor
    epsilon: float
    converged: bool
    n_iter: int
    errors: torch.Tensor
    rank: int
    world_size: int
    shard_sizes: tuple[int, ...]
    tol: float
    group: Any = field(default=None, compare=False)

    def __repr__(self) -> str:
        last = self.errors[-1].item() if self.errors.numel() else float("nan")
        return (
            f"ShardedSinkhornResult(rank={self.rank}/{self.world_size}, n_shard={self.n_shard}, "
            f"n={self.n_total}, m={self.y.shape[0]}, cost={self.geometry.cost.name!r}, "
            f"epsilon={self.epsilon:.4g}, converged={self.converged}, n_iter={self.n_iter}, "
            f"error={last:.2e}, dtype={self.f_shard.dtype}, device={self.f_shard.device})"
        )

    @property
    def x_shard(self) -> torch.Tensor:
        """This rank's source points ``[n_r, d]``."""
        return self.geometry.x

    @property
    def y(self) -> torch.Tensor:
        """Target points ``[m, d]``."""
        return self.geometry.y

    @property
    def n_shard(self) -> int:
        """``n_r``: the number of source points on this rank."""
        return self.shard_sizes[self.rank]

    @property
    def n_total(self) -> int:
        """``n``: the number of source points over all ranks."""
        return sum(self.shard_sizes)

    @property
    def row_offset(self) -> int:
        """Global index of this rank's first row: local row i is global row ``row_offset + i``."""
        return sum(self.shard_sizes[: self.rank])

    def gather_f(self) -> torch.Tensor:
        """The whole potential f, ``[n]``, on every rank (shards in rank order).

        A collective call: every rank of the group must call it. Shards of unequal sizes are
        padded to the largest for the all_gather and trimmed afterwards.
        """
        return _all_gather_rows(self.f_shard, self.shard_sizes, self.group)

    def sample_pairs_shard(
        self, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For every local row i, draw one column ``j ~ P_ij / Σ_j P_ij``; local, no communication.

        This is the pairing a flow-matching step needs: each source point on this rank is
        matched to one target drawn from its conditional under the coupling, by inverse
        transform sampling on ``log P_ij = const_i + log b_j + (g_j − C_ij)/ε`` (the row
        constant cancels; :func:`otkit.coupling.sample_rows`). Rows are processed a band at a time, so no more than a ``[band, m]``
        block is ever built.

        Args:
            generator: a ``torch.Generator`` on the points' device (None: torch's global
                one). Seed it differently on each rank (e.g. ``seed + rank``) for draws
                independent across ranks.

        Returns:
            ``(i, j)``: ``i: [n_r]`` local row indices ``0 … n_r − 1`` (add
            :attr:`row_offset` for global ones) and ``j: [n_r]`` global column indices in
            ``[0, m)``, both int64.
        """
        n_r, m = self.geometry.shape
        device = self.f_shard.device
        logits = log_weight(self.b) + self.g / self.epsilon  # [m]: the row-independent part
        cols = torch.empty(n_r, dtype=torch.long, device=device)
        band = max(1, _SAMPLE_BAND_CELLS // m)
        for rows, cost in self.geometry.bands(block_size=band):
            # [band, m] log-plan up to row constants, which the argmax ignores
            cols[rows] = sample_rows(logits.unsqueeze(0) - cost / self.epsilon, generator)
        return torch.arange(n_r, device=device), cols


# --------------------------------------------------------------------------- sharding helpers


def shard(t: torch.Tensor, rank: int | None = None, world_size: int | None = None) -> torch.Tensor:
    """This rank's contiguous chunk of ``t`` along dim 0 (``torch.tensor_split`` semantics).

    ``t: [n, ...]`` → ``[n_r, ...]``, a view. The first ``n % world_size`` ranks get
    ``n // world_size + 1`` rows, the others ``n // world_size``, so calling ``shard`` with the
    same ``t`` in every process splits it without gaps or overlaps. ``rank`` and
    ``world_size`` default to those of the initialized default process group.
    """
    if not isinstance(t, torch.Tensor) or t.ndim == 0:
        raise ValueError("t must be a tensor with at least one dimension (rows to shard)")
    if rank is None or world_size is None:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "shard needs rank and world_size, or an initialized process group "
                "(torch.distributed.init_process_group, or launch with torchrun)"
            )
        rank = dist.get_rank() if rank is None else rank
        world_size = dist.get_world_size() if world_size is None else world_size
    for name, value in (("rank", rank), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    return torch.tensor_split(t, world_size, dim=0)[rank]


def _all_gather_rows(t: torch.Tensor, sizes: Sequence[int], group) -> torch.Tensor:
    """Concatenate every rank's ``t: [sizes[r], ...]`` in rank order: ``[Σ sizes, ...]``."""
    longest = max(sizes)
    padded = t.new_zeros((longest,) + t.shape[1:])
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


def _all_logsumexp(local: torch.Tensor, group) -> torch.Tensor:
    """Elementwise ``log Σ_r exp(local_r)`` across ranks: ``[m]`` → ``[m]``, equal on all ranks.

    ``local`` may hold −inf (a rank with no mass for that entry). Where every rank holds −inf
    the shift is 0 rather than −inf, so the result is −inf, not NaN.
    """
    peak = local.clone()
    dist.all_reduce(peak, op=dist.ReduceOp.MAX, group=group)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.exp(local - peak)
    dist.all_reduce(total, op=dist.ReduceOp.SUM, group=group)
    return peak + torch.log(total)


def _control_device(group) -> torch.device:
    """Where small bookkeeping tensors live: NCCL reduces only CUDA tensors."""
    backend = str(dist.get_backend(group))
    if "nccl" in backend and "gloo" not in backend:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _check_group(group) -> tuple[int, int]:
    """``(rank, world_size)`` of ``group``, or a clear error when there is no process group."""
    if not dist.is_available():
        raise RuntimeError("group: torch.distributed is not available in this build of torch")
    if not dist.is_initialized():
        raise RuntimeError(
            "group: sharded_sinkhorn needs an initialized process group: call "
            "torch.distributed.init_process_group('gloo' or 'nccl') in every process (torchrun "
            "sets the environment for it), or start local processes with "
            "otkit.distributed.run_local"
        )
    rank = dist.get_rank(group)
    if rank < 0:
        raise ValueError("group: this process is not a member of the given process group")
    return rank, dist.get_world_size(group)


# --------------------------------------------------------------------------- input checks


def _check_local_inputs(
    x_shard, y, a_shard, b, *, epsilon, relative_epsilon, tol, max_iter, block_size, group,
    epsilon_scaling=None, init=None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor, tuple | None]:
    """Checks that need no communication; raise ValueError/TypeError naming the argument."""
    if isinstance(x_shard, torch.Tensor) and x_shard.ndim == 2 and x_shard.shape[0] == 0:
        raise ValueError(
            "x_shard is empty on this rank: every rank needs at least one source point "
            "(n >= world_size)"
        )
    x_shard, y = check_cloud_pair("x_shard", x_shard, "y", y)
    if _control_device(group).type == "cuda" and x_shard.device.type != "cuda":
        raise ValueError(
            f"x_shard is on {x_shard.device} but the process group's backend is NCCL, which "
            "needs CUDA tensors: move the data to cuda:LOCAL_RANK, or use the gloo backend"
        )
    # A shard may carry zero mass, so a_shard is only non-negative here; the total over all
    # ranks must be positive (checked once the ranks have talked). b is whole: positive mass.
    if a_shard is not None:
        a_shard = check_nonnegative_weights("a_shard", a_shard, x_shard.shape[0], x_shard)
    if b is not None:
        b = check_weights("b", b, y.shape[0], y)
    check_epsilon_arguments(epsilon, relative_epsilon)
    check_positive("tol", tol)
    check_count("max_iter", max_iter)
    if block_size is not None:
        check_count("block_size", block_size)
    check_epsilon_scaling(epsilon_scaling)
    init = check_init(init, x_shard.shape[0], y.shape[0], y, names=("f_shard", "g"))
    return x_shard, y, a_shard, b, init


def _agree_on_validity(
    error: Exception | None, n_local: int, rank: int, world_size: int, group
) -> tuple[int, ...]:
    """All ranks learn whether any rank's input was bad, and every rank's shard size.

    If only one rank raised, the others would wait forever in the next collective; instead
    every rank raises: the bad rank its own error, the others a ValueError naming it.
    """
    info = torch.zeros(2, world_size, dtype=torch.float64, device=_control_device(group))
    info[0, rank] = float(error is not None)
    info[1, rank] = float(n_local)
    dist.all_reduce(info, op=dist.ReduceOp.SUM, group=group)
    bad = [r for r in range(world_size) if info[0, r].item() > 0]
    if error is not None:
        raise error
    if bad:
        raise ValueError(
            f"sharded_sinkhorn: invalid input on rank(s) {bad} (see the error raised there); "
            "every rank stopped"
        )
    return tuple(int(s) for s in info[1].tolist())


def _agree_on_arguments(values: dict[str, float], group) -> None:
    """Raise on every rank if the arguments that must be replicated differ between ranks."""
    names = list(values)
    vec = torch.tensor([values[k] for k in names], dtype=torch.float64)
    both = torch.cat([vec, -vec]).to(_control_device(group))
    dist.all_reduce(both, op=dist.ReduceOp.MAX, group=group)
    high, low = both[: len(names)].cpu(), -both[len(names) :].cpu()
    # Sizes and options must agree exactly; checksums of the data to rounding (summation
    # order may differ between devices).
    differs = [
        k for k, hi, lo in zip(names, high.tolist(), low.tolist())
        if abs(hi - lo) > (1e-9 * max(abs(hi), abs(lo)) if "(sum" in k else 0.0)
    ]
    if differs:
        raise ValueError(
            f"sharded_sinkhorn: {', '.join(differs)} differ between ranks; y, b, epsilon, "
            "relative_epsilon, tol, max_iter and whether a_shard is given must be the same on "
            "every rank (generate data from one seed, then shard x)"
        )


# --------------------------------------------------------------------------- epsilon


def _merge_moments(
    first: tuple[float, float, float], second: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Merge ``(count, mean, Σ(v − mean)²)`` of two samples (Chan, Golub and LeVeque 1979)."""
    n1, mean1, m2_1 = first
    n2, mean2, m2_2 = second
    count = n1 + n2
    if count == 0:
        return 0.0, 0.0, 0.0
    delta = mean2 - mean1
    return count, mean1 + delta * n2 / count, m2_1 + m2_2 + delta * delta * n1 * n2 / count


def _sharded_cost_std(
    x_shard: torch.Tensor,
    y: torch.Tensor,
    cost: Cost,
    offset: torch.Tensor,
    sizes: tuple[int, ...],
    rank: int,
    group,
    block_size: int | None,
) -> float:
    """std(C) exactly as :meth:`otkit.geometry.PointCloud.cost_std` computes it on all of x.

    The same fixed-seed subsample of rows and columns is drawn on every rank; each rank
    evaluates the cost between its own sampled rows (in bands) and the sampled columns, and
    the per-rank moments are merged. ``offset: [d]`` is the single-process centring.
    """
    n, m = sum(sizes), y.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(0)
    rows = torch.randperm(n, generator=gen)[:_COST_STD_POINTS]
    cols = torch.randperm(m, generator=gen)[:_COST_STD_POINTS].to(y.device)
    start = sum(sizes[:rank])
    mine = rows[(rows >= start) & (rows < start + sizes[rank])].to(x_shard.device) - start
    x_sub, y_sub = x_shard[mine] - offset, y[cols] - offset
    moments = (0.0, 0.0, 0.0)
    band = block_size or max(1, _SAMPLE_BAND_CELLS // max(y_sub.shape[0], 1))
    for lo in range(0, x_sub.shape[0], band):
        values = cost.pairwise(x_sub[lo : lo + band], y_sub).double()
        mean = values.mean()
        moments = _merge_moments(
            moments, (float(values.numel()), mean.item(), ((values - mean) ** 2).sum().item())
        )
    table = torch.zeros(len(sizes), 3, dtype=torch.float64, device=_control_device(group))
    table[rank] = torch.tensor(moments, dtype=torch.float64)
    dist.all_reduce(table, op=dist.ReduceOp.SUM, group=group)
    total = (0.0, 0.0, 0.0)
    for row in table.cpu().tolist():  # merged in rank order: identical on every rank
        total = _merge_moments(total, tuple(row))
    count, _, m2 = total
    std = math.sqrt(m2 / (count - 1)) if count > 1 else 0.0  # sample std, like Tensor.std()
    if not math.isfinite(std):
        raise ValueError("the cost matrix has non-finite entries")
    return std


def _first_row_mean(geometry: PointCloud, rank: int, group) -> float:
    """Mean of row 0 of the whole C (held by rank 0), on every rank: a constant cost's value,
    the fallback unit of ε (:func:`otkit.epsilon.epsilon_unit`). A collective call."""
    value = torch.zeros(1, dtype=torch.float64, device=_control_device(group))
    if rank == 0:
        value += geometry.rows(torch.arange(1, device=geometry.x.device)).mean().item()
    dist.all_reduce(value, op=dist.ReduceOp.SUM, group=group)
    return value.item()


# --------------------------------------------------------------------------- solver


def sharded_sinkhorn(
    x_shard: torch.Tensor,
    y: torch.Tensor,
    a_shard: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    cost: str | Cost = "sqeuclidean",
    epsilon: float | None = None,
    relative_epsilon: float | None = None,
    tol: float = 1e-3,
    max_iter: int = 2000,
    block_size: int | None = None,
    mode: str = "online",
    epsilon_scaling: float | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    group: dist.ProcessGroup | None = None,
    progress: bool = False,
) -> ShardedSinkhornResult:
    """Balanced entropic OT with the source cloud sharded over the ranks of ``group``.

    Every rank of ``group`` must call this with its own shard and the same everything else
    (module docstring). The result matches :func:`otkit.sinkhorn` on the concatenated shards
    to rounding: same ε, same iterations, same potentials.

    Args:
        x_shard: this rank's source points ``[n_r, d]`` (n_r ≥ 1), e.g. ``shard(x)``.
        y: target points ``[m, d]``, identical on every rank.
        a_shard: this rank's source weights ``[n_r]``; default uniform over the global n
            (``1/n`` each). A shard may carry zero mass, the total may not.
        b: target weights ``[m]`` (uniform by default), identical on every rank, with the
            same total mass as a.
        cost: ``"sqeuclidean"`` (½‖x − y‖², default), ``"euclidean"``, ``"dot"`` or a
            :class:`otkit.costs.Cost` (the same on every rank).
        epsilon: absolute regularization ε > 0.
        relative_epsilon: ε as a multiple of std(C), computed as the single-process solver
            does (default 0.05 when neither is given). Give one of the two at most.
        tol: stop when the global L1 row-marginal error ‖P1 − a‖₁ falls to ``tol``.
        max_iter: iteration cap; reaching it warns (:class:`otkit.ConvergenceWarning`, on
            rank 0) and sets ``converged=False``.
        block_size: rows per streamed band of the cost (default: about 4 M cells a band).
        mode: ``"online"`` (default: stream the cost in bands; memory O((n_r + m)·d) plus a
            band) or ``"dense"`` (store this rank's ``[n_r, m]`` cost and its transpose:
            faster when 2·n_r·m numbers fit in memory, as the matrix product that rebuilds
            each band is saved).
        epsilon_scaling: a factor q in (0, 1): anneal ε from std(C) by q per iteration, as
            :func:`otkit.sinkhorn` does (same schedule, same iterations); at small ε this
            divides the iteration count (benchmarks/RESULTS.md).
        init: a warm start ``(f_shard [n_r], g [m])``, e.g. the ``f_shard`` and ``g`` of a
            solve at a nearby ε or on nearby data; the single-process equivalent is
            ``init=(f, g)`` with f the concatenated shards. Default f = g = 0.
        group: the process group (None: the default group, initialized beforehand).
        progress: a tqdm bar on rank 0, the one otkit.sinkhorn shows (it fills as the error
            falls to tol and ends green when converged, red at max_iter).

    Raises:
        RuntimeError: no process group is initialized.
        ValueError, TypeError: bad input on any rank (all ranks raise, none hangs).
    """
    rank, world_size = _check_group(group)
    try:
        x_shard, y, a_shard, b, init = _check_local_inputs(
            x_shard, y, a_shard, b, epsilon=epsilon, relative_epsilon=relative_epsilon,
            tol=tol, max_iter=max_iter, block_size=block_size, group=group,
            epsilon_scaling=epsilon_scaling, init=init,
        )
        if mode not in ("dense", "online"):
            raise ValueError(f"mode must be 'online' or 'dense', got {mode!r}")
        cost_fn = get_cost(cost)
        error = None
    except (TypeError, ValueError) as err:
        error = err
    n_local = x_shard.shape[0] if error is None else 0
    sizes = _agree_on_validity(error, n_local, rank, world_size, group)
    n, m, d = sum(sizes), y.shape[0], y.shape[1]
    b = b if b is not None else torch.full((m,), 1.0 / m, dtype=y.dtype, device=y.device)
    y64, b64 = y.double(), b.double()
    b_moment = (b64 * torch.arange(m, dtype=torch.float64, device=b.device)).sum()
    _agree_on_arguments(
        {
            "d": d, "m": m, "dtype": _DTYPES.index(y.dtype) if y.dtype in _DTYPES else -1,
            # Checksums of the replicated data: catch a y or b drawn with another seed.
            "y (sum)": y64.sum().item(), "y (sum of squares)": (y64 * y64).sum().item(),
            "b (sum)": b64.sum().item(), "b (sum of j b_j)": b_moment.item(),
            "epsilon": -1.0 if epsilon is None else float(epsilon),  # -1: not given
            "relative_epsilon": -1.0 if relative_epsilon is None else float(relative_epsilon),
            "tol": float(tol), "max_iter": float(max_iter),
            "a_shard given": float(a_shard is not None),
            "epsilon_scaling": -1.0 if epsilon_scaling is None else float(epsilon_scaling),
            "init given": float(init is not None),
        },
        group,
    )
    if a_shard is None:
        a_shard = torch.full((x_shard.shape[0],), 1.0 / n, dtype=y.dtype, device=y.device)

    # One SUM gives the total source mass and Σ x (for the single-process centring offset).
    totals = torch.cat([a_shard.double().sum().reshape(1), x_shard.double().sum(0)])
    dist.all_reduce(totals, op=dist.ReduceOp.SUM, group=group)
    check_equal_mass(totals[:1], b)  # identical numbers on every rank: all raise or none
    if cost_fn.translation_invariant:
        offset = (0.5 * (totals[1:] / n + y64.mean(0))).to(y.dtype)
    else:
        offset = torch.zeros(d, dtype=y.dtype, device=y.device)

    geometry = PointCloud(x_shard, y, cost_fn, mode=mode, block_size=block_size)
    # Every rank agrees on the arguments, so all compute std(C) (collectives) or none: it is
    # needed for a relative ε, and by ε-scaling, which starts there.
    needs_std = epsilon is None or epsilon_scaling is not None
    unit = None  # std(C), or a constant cost's fallback (otkit.epsilon.epsilon_unit)
    if needs_std:
        std = _sharded_cost_std(x_shard, y, cost_fn, offset, sizes, rank, group, block_size)
        unit = epsilon_unit(std, lambda: _first_row_mean(geometry, rank, group))
    eps = resolve_epsilon(unit, epsilon, relative_epsilon)
    start = eps if unit is None else unit
    f, g, n_iter, errors, converged = _iterate(
        geometry, a_shard, b, annealed_epsilons(eps, start, epsilon_scaling), float(tol),
        max_iter, group, progress and rank == 0, init,
    )
    if not converged and rank == 0:
        warnings.warn(
            f"sharded Sinkhorn did not reach tol={tol:g} in {n_iter} iterations (error "
            f"{errors[-1]:.3g}, epsilon={eps:.3g}): raise max_iter or epsilon",
            ConvergenceWarning,
            stacklevel=2,
        )
    return ShardedSinkhornResult(
        geometry=geometry, a_shard=a_shard, b=b, f_shard=f, g=g, epsilon=eps,
        converged=converged, n_iter=n_iter, errors=torch.tensor(errors, dtype=torch.float64),
        rank=rank, world_size=world_size, shard_sizes=sizes, tol=float(tol), group=group,
    )


def _iterate(
    geometry: PointCloud,
    a_shard: torch.Tensor,
    b: torch.Tensor,
    schedule: Iterator[tuple[float, bool]],
    tol: float,
    max_iter: int,
    group,
    progress: bool,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int, list[float], bool]:
    """The balanced Sinkhorn loop (module docstring), from ``init`` or f = g = 0 as
    otkit.sinkhorn, at the ε of each iteration given by ``schedule``
    (:func:`otkit.epsilon.annealed_epsilons`); convergence is checked at the target ε only."""
    log_a, log_b = log_weight(a_shard), log_weight(b)
    rows, cols = lse_operators(geometry)  # the engine's passes, over this rank's rows
    if init is None:
        f, g = torch.zeros_like(a_shard), torch.zeros_like(b)
    else:
        f, g = (t.clone() for t in init)
    # The column pass's shift: this rank's previous local LSE, which the next one is close to
    # (−g/ε, the single-process shift, is the LSE over all rows; a rank holding a small part
    # of a column's mass would fall outside the fast pass's range there, column after column).
    local_lse, previous_eps = None, None
    errors: list[float] = []
    converged = False
    # the single-process solver's bar: it fills as the error falls and ends green or red
    bar = ConvergenceBar(tol, max_iter, enabled=progress, name="sharded sinkhorn")
    for eps, at_target in schedule:
        if len(errors) >= max_iter:
            break
        if local_lse is None:
            local_lse = -g / eps
        elif eps != previous_eps:  # ε·LSE moves little as ε changes: rescale the shift
            local_lse = local_lse * (previous_eps / eps)
        previous_eps = eps
        inv_eps = torch.tensor(1.0 / eps, dtype=a_shard.dtype, device=a_shard.device)
        # g-update: this rank's LSE over its rows, per column [m], then across ranks.
        local_lse, _ = cols(log_a + f * inv_eps, local_lse, inv_eps)
        g = -eps * _all_logsumexp(local_lse, group)
        # f-update: local. The ratio is this rank's row mass over a_i before the update.
        lse, ratio = rows(log_b + g * inv_eps, -f * inv_eps, inv_eps)
        f = -eps * lse
        err = (a_shard * (ratio - 1.0).abs()).sum().reshape(1)
        dist.all_reduce(err, op=dist.ReduceOp.SUM, group=group)
        errors.append(err.item())  # the same number on every rank: all stop together
        if not math.isfinite(errors[-1]):
            raise FloatingPointError(
                f"sharded Sinkhorn produced non-finite potentials at epsilon={eps:.3g} "
                f"(iteration {len(errors)}): check the inputs or raise epsilon"
            )
        if at_target and errors[-1] <= tol:
            converged = True
            break
        bar.step(len(errors), errors[-1], eps, at_target)
    bar.close(len(errors), errors[-1] if errors else None, converged)
    return f, g, len(errors), errors, converged
