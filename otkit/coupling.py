"""What every coupling can do, computed band by band without storing the n×m plan.

A solver's result subclasses :class:`CouplingMethods` and says how to produce bands of its
plan (``_plan_bands``) and rows of its log-plan (``_log_plan_rows``); everything else —
applying the plan to vectors, its marginals, cost, entropy, sharpness and pair sampling —
is written once here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .geometry import PointCloud

__all__ = ["CouplingMethods", "sample_rows"]


def sample_rows(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row of ``softmax(logits)``, ``logits: [k, m]`` → ``[k]`` column indices.

    Inverse transform sampling: with p_ij = exp(logits_ij − max_j logits_ij) and the row's
    cumulative sums F_ij = Σ_{l ≤ j} p_il, the draw is the first j with F_ij > u_i F_im,
    u_i ~ U[0, 1): one uniform per row (the Gumbel-max trick needs one per cell, and two
    logarithms). ``logits`` may be off by a constant per row (an unnormalized log-plan) and
    hold −inf for impossible columns, which are never drawn.
    """
    weights = torch.exp(logits - logits.amax(1, keepdim=True))
    cdf = weights.cumsum(1)
    u = torch.rand(logits.shape[0], 1, dtype=cdf.dtype, device=cdf.device, generator=generator)
    j = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(1)
    # u · F_im may round up to F_im: step back to the last column with positive weight
    last = logits.shape[1] - 1 - (weights > 0).flip(1).to(torch.uint8).argmax(1)
    return torch.minimum(j, last)


class CouplingMethods:
    """Mixin for results holding a coupling P of shape ``[n, m]`` between ``x`` and ``y``.

    Subclasses provide ``geometry: PointCloud``, ``a: [n]``, ``b: [m]``, and implement
    ``_plan_bands`` and ``_log_plan_rows``.
    """

    geometry: PointCloud
    a: torch.Tensor
    b: torch.Tensor

    def _plan_bands(self) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """Yield ``(rows, P[rows], C[rows])``."""
        raise NotImplementedError

    def _log_plan_rows(self, index: torch.Tensor) -> torch.Tensor:
        """``log P[index]``, shape ``[k, m]`` (−inf where P is 0)."""
        raise NotImplementedError

    @property
    def x(self) -> torch.Tensor:
        """Source points ``[n, d]``."""
        return self.geometry.x

    @property
    def y(self) -> torch.Tensor:
        """Target points ``[m, d]``."""
        return self.geometry.y

    @property
    def shape(self) -> tuple[int, int]:
        return self.geometry.shape

    def coupling(self) -> torch.Tensor:
        """The dense plan P, ``[n, m]``. Only built when asked: prefer :meth:`apply`."""
        n, m = self.shape
        plan = torch.empty(n, m, dtype=self.a.dtype, device=self.a.device)
        for rows, band, _ in self._plan_bands():
            plan[rows] = band
        return plan

    def apply(self, v: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """``P @ v`` for ``v: [m]`` or ``[m, k]`` (``Pᵀ @ v`` for ``v: [n]`` or ``[n, k]``)."""
        n, m = self.shape
        v = self._check_vector(v, transpose)
        if transpose:
            out = torch.zeros((m,) + v.shape[1:], dtype=v.dtype, device=v.device)
            for rows, band, _ in self._plan_bands():
                out += band.T @ v[rows]
            return out
        out = torch.empty((n,) + v.shape[1:], dtype=v.dtype, device=v.device)
        for rows, band, _ in self._plan_bands():
            out[rows] = band @ v
        return out

    def marginals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P 1_m, Pᵀ 1_n)``: the row sums ``[n]`` and column sums ``[m]`` of the plan."""
        n, m = self.shape
        row = torch.empty(n, dtype=self.a.dtype, device=self.a.device)
        col = torch.zeros(m, dtype=self.a.dtype, device=self.a.device)
        for rows, band, _ in self._plan_bands():
            row[rows] = band.sum(1)
            col += band.sum(0)
        return row, col

    def marginal_error(self) -> float:
        """``‖P 1 − a‖₁ + ‖Pᵀ 1 − b‖₁``, both marginals summed.

        A Sinkhorn solve updates g then f: it stops when the row error ``‖P 1 − a‖₁`` of the
        plan after its g-update (whose columns are exact) reaches ``tol``, then updates f. The
        returned plan therefore has exact rows (up to rounding, float32: ~1e-6) and carries
        the error in its columns, ``‖Pᵀ 1 − b‖₁ ≈ tol``.
        """
        row, col = self.marginals()
        return ((row - self.a).abs().sum() + (col - self.b).abs().sum()).item()

    def ot_cost(self) -> torch.Tensor:
        """The transport cost ``⟨P, C⟩`` (a 0-d tensor)."""
        total = torch.zeros((), dtype=self.a.dtype, device=self.a.device)
        for _, band, cost in self._plan_bands():
            total += (band * cost).sum()
        return total

    def entropy(self) -> torch.Tensor:
        """``H(P) = −Σ_ij P_ij log P_ij`` (a 0-d tensor)."""
        total = torch.zeros((), dtype=self.a.dtype, device=self.a.device)
        for _, band, _ in self._plan_bands():
            total -= torch.special.xlogy(band, band).sum()
        return total

    def renormalized_entropy(self) -> float:
        """Sharpness of the coupling on a 0-to-1 scale (Zhang et al. 2025).

        For uniform weights and n = m this is ``H(P) / log n − 1``: 0 for a permutation, 1 for
        the independent coupling a⊗b. In general otkit uses
        ``(H(P) − max(H(a), H(b))) / min(H(a), H(b))``, which reduces to it and keeps both
        ends (a deterministic assignment gives 0, a⊗b gives 1).
        """
        h_a = -torch.special.xlogy(self.a, self.a).sum().item()
        h_b = -torch.special.xlogy(self.b, self.b).sum().item()
        low = min(h_a, h_b)
        if low <= 0:
            raise ValueError("renormalized entropy is undefined when a or b is a single atom")
        return (self.entropy().item() - max(h_a, h_b)) / low

    def sample_pairs(
        self, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``k`` index pairs ``(i, j) ~ P / |P|`` without building P.

        Rows are drawn from the row marginal, then a column from each row's conditional
        (:meth:`sample_columns`), a band of rows at a time. Returns two ``[k]``
        int64 tensors.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        row_mass, _ = self.marginals()
        i = torch.multinomial(row_mass, k, replacement=True, generator=generator)
        return i, self.sample_columns(i, generator=generator)

    def sample_columns(
        self, rows: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """For each row index ``rows: [k]``, one column ``j ~ P[i, :] / Σ_j P[i, j]``: ``[k]``.

        Inverse transform sampling on each row of the plan (:func:`sample_rows`: one uniform
        per row), a band of rows at a time, so no more than a ``[band, m]`` block is ever
        built. Passing every row once (``torch.arange(n)``)
        pairs each source point with one target: no source point is repeated or missed, as
        they are when a flattened plan is sampled with replacement.
        """
        n, m = self.shape
        if (
            not isinstance(rows, torch.Tensor) or rows.ndim != 1
            or rows.dtype not in (torch.int32, torch.int64)
        ):
            raise ValueError("rows must be a 1-D integer tensor of row indices")
        if rows.numel() and (rows.min() < 0 or rows.max() >= n):
            raise ValueError(f"rows must lie in [0, {n}), got values outside it")
        device = self.a.device
        rows = rows.to(device=device, dtype=torch.long)
        j = torch.empty(rows.shape[0], dtype=torch.long, device=device)
        band = max(1, 2**22 // m)
        for start in range(0, rows.shape[0], band):
            j[start : start + band] = sample_rows(self._log_plan_rows(rows[start : start + band]), generator)
        return j

    def _check_vector(self, v: torch.Tensor, transpose: bool) -> torch.Tensor:
        """``v`` of shape ``[m]`` or ``[m, k]`` (``[n]`` or ``[n, k]`` when ``transpose``)."""
        n, m = self.shape
        expected = n if transpose else m
        if not isinstance(v, torch.Tensor) or v.shape[:1] != (expected,) or v.ndim > 2:
            raise ValueError(
                f"v must have shape [{expected}] or [{expected}, k] "
                f"({'Pᵀ' if transpose else 'P'} @ v), got "
                f"{tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
            )
        return v.to(self.a.dtype)

    def check_points(self, name: str, points: torch.Tensor) -> torch.Tensor:
        """New points ``[k, d]`` for an out-of-sample map (``d`` of the fitted clouds), on the
        fit's device and without NaN or inf, cast to its dtype; ``name`` is the argument's,
        for the error message."""
        d = self.geometry.x.shape[1]
        if not isinstance(points, torch.Tensor) or points.ndim != 2 or points.shape[1] != d:
            got = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
            raise ValueError(f"{name} must have shape [k, {d}], got {got}")
        if points.device != self.geometry.x.device:
            raise ValueError(f"{name} is on {points.device}, the fit on {self.geometry.x.device}")
        if not torch.isfinite(points).all():
            raise ValueError(f"{name} contains NaN or inf values")
        return points.to(self.geometry.x.dtype)


def log_or_neg_inf(t: torch.Tensor) -> torch.Tensor:
    """``log t`` with ``−inf`` where ``t = 0`` (no warning, no NaN)."""
    return torch.where(t > 0, t.clamp_min(torch.finfo(t.dtype).tiny).log(), -math.inf)
