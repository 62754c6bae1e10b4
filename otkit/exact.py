"""Exact (unregularized) optimal transport through POT's network simplex, ``ot.emd``.

    min_{P ≥ 0, P1 = a, Pᵀ1 = b} ⟨P, C⟩

``ot.emd`` runs on the CPU in float64 (it calls float32 problems infeasible when their masses
differ in the last digit): otkit converts there and back, so this is a reference solver for
tests and small problems, not a hot path. The plan has at most n + m − 1 non-zeros.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .costs import Cost, get_cost
from .coupling import CouplingMethods, log_or_neg_inf
from .geometry import PointCloud
from .validation import check_clouds, check_weights

__all__ = ["emd", "EMDResult"]


@dataclass(frozen=True, repr=False)
class EMDResult(CouplingMethods):
    """An exact OT plan with the dual potentials of the linear program.

    Attributes:
        geometry: the clouds and cost.
        a, b: weights ``[n]``, ``[m]``, normalized to mass 1.
        plan: the optimal plan ``[n, m]`` (dense; at most n + m − 1 non-zeros).
        f, g: dual potentials ``[n]``, ``[m]`` with f_i + g_j ≤ C_ij, equality on the support.
        converged: whether the network simplex reported an optimal solution.
        message: POT's status message.
    """

    geometry: PointCloud
    a: torch.Tensor
    b: torch.Tensor
    plan: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    converged: bool
    message: str
    backend: str = "pot"

    def __repr__(self) -> str:
        n, m = self.shape
        return (
            f"EMDResult(n={n}, m={m}, cost={self.geometry.cost.name!r}, "
            f"converged={self.converged}, ot_cost={self.ot_cost().item():.6g})"
        )

    def _plan_bands(self) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        for rows, cost in self.geometry.bands():
            yield rows, self.plan[rows], cost

    def _log_plan_rows(self, index: torch.Tensor) -> torch.Tensor:
        return log_or_neg_inf(self.plan[index])

    def coupling(self) -> torch.Tensor:
        return self.plan

    def transport(self, x_new: torch.Tensor | None = None) -> torch.Tensor:
        """Barycentric projection of the training points, ``(P y) / (P 1)``: ``[n, d]``.

        Exact OT defines no map off the training points: pass nothing (or ``x`` itself).
        """
        if x_new is not None and not (
            x_new.shape == self.x.shape and torch.equal(x_new, self.x)
        ):
            raise ValueError(
                "exact OT has no out-of-sample map: call transport() for the training points, "
                "or use otkit.sinkhorn(...).transport(x_new) for the entropic map"
            )
        mass = self.plan.sum(1, keepdim=True)
        return (self.plan @ self.y) / mass.clamp_min(torch.finfo(mass.dtype).tiny)


def emd(
    x: torch.Tensor,
    y: torch.Tensor,
    a: torch.Tensor | None = None,
    b: torch.Tensor | None = None,
    *,
    cost: str | Cost = "sqeuclidean",
    max_iter: int = 1_000_000,
) -> EMDResult:
    """Exact OT between ``x: [n, d]`` and ``y: [m, d]`` with POT's ``ot.emd`` (float64, CPU).

    Weights are normalized to mass 1. Returns tensors on the input's device and dtype.
    """
    import ot  # noqa: PLC0415 - optional heavy import

    x, y = check_clouds(x, y)
    a = check_weights("a", a, x.shape[0], x, normalize=True)
    b = check_weights("b", b, y.shape[0], y, normalize=True)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    geometry = PointCloud(x, y, get_cost(cost), mode="dense")
    cost64 = geometry.dense().double().cpu()
    a64, b64 = a.double().cpu(), b.double().cpu()
    a64, b64 = a64 / a64.sum(), b64 / b64.sum()
    plan, log = ot.emd(a64, b64, cost64, numItermax=max_iter, log=True)
    like = dict(dtype=x.dtype, device=x.device)
    return EMDResult(
        geometry=geometry, a=a, b=b, plan=plan.to(**like), f=log["u"].to(**like),
        g=log["v"].to(**like), converged=log["result_code"] == 1, message=str(log["warning"]),
    )
