"""Semidiscrete optimal transport: a continuous source, N target points, a dual vector g ∈ R^N.

Mousavi-Hosseini, Zhang, Klein and Cuturi (2025), "Flow Matching with Semidiscrete
Couplings"; the stochastic semi-dual of Genevay, Cuturi, Peyré and Bach (2016). The source μ is
only sampled; the target is ν = Σ_j b_j δ_{y_j}. The dual problem

    max_g  E_{x~μ}[f_g(x)] + ⟨g, b⟩,
    f_g(x) = −ε log Σ_j b_j exp((g_j − c(x, y_j))/ε)     (ε > 0),
    f_g(x) = min_j c(x, y_j) − g_j                       (ε = 0),

is concave in g and smooth in expectation; on a minibatch x_1..x_B its loss
L(g) = −((1/B) Σ_i f_g(x_i) + ⟨g, b⟩) has the gradient

    ∂L/∂g_j = (1/B) Σ_i π_ij − b_j,

with π_i the softmax row ∝ b_j exp((g_j − c(x_i, y_j))/ε), or at ε = 0 the indicator of
the Laguerre cell of x_i: argmin_j c(x_i, y_j) − g_j. So SGD on g moves mass from
over-assigned targets to under-assigned ones, and the returned potential is an exponential
moving average of the iterates (0.99, as in the paper).

For costs that split as C = r ⊕ s − x yᵀ (½‖x − y‖², −⟨x, y⟩), the assignment at ε = 0 is a
maximum inner product search over N keys with biases: argmax_j ⟨x, y_j⟩ + g_j − s_j. otkit runs
it exactly and blockwise (a ``[queries, block]`` score matrix at a time, a running max), on CPU
or GPU, for any N; at ε > 0 a streaming Gumbel-max over the same blocks draws from the soft row.

Marginal error (an unbiased χ² estimate on a batch; M = B·π has rows summing to one):

    χ̂² = [Σ_j ((Σ_i M_ij)² − Σ_i M_ij²) / b_j] / (B(B − 1)) − 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..costs import Cost, get_cost
from ..sinkhorn import ConvergenceWarning
from ..validation import (
    check_choice,
    check_cloud,
    check_count,
    check_generator,
    check_positive,
    check_probability,
    check_weights,
    renamed_keyword,
)

__all__ = [
    "semidiscrete", "SemidiscreteResult", "semidiscrete_loss", "semidiscrete_gradient",
    "assign", "chi2_error",
]

Sampler = Callable[[int, torch.Generator], torch.Tensor]

#: Cells of the ``[queries, block]`` score matrix processed at once (~32 MB in float32).
_BLOCK_CELLS = 2**23


# ----------------------------------------------------------------------------- scores


def _scores(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, cost: Cost) -> torch.Tensor:
    """``bias_j − c(x_i, y_j)`` up to a per-row constant, ``[k, N_block]``.

    For split costs only the matrix product is formed (the per-row r_i drops out of every
    argmax and softmax over j); ``bias`` already holds ``g_j − s_j`` then.
    """
    if cost.split(x[:1], y[:1]) is not None:
        return torch.addmm(bias.unsqueeze(0), x, y.T)
    return bias.unsqueeze(0) - cost.pairwise(x, y)


def _bias(y: torch.Tensor, log_b: torch.Tensor, g: torch.Tensor, cost: Cost, epsilon: float) -> torch.Tensor:
    """The per-target bias: (g − s) at ε = 0, ε log b + g − s at ε > 0 (s = 0 if not split)."""
    split = cost.split(y[:1], y)
    bias = g - split[1] if split is not None else g.clone()
    if epsilon > 0:
        bias = bias + epsilon * log_b
    return bias


def _query_band(k: int, n_targets: int) -> tuple[int, int]:
    """(queries per band, targets per block) so a score block holds about _BLOCK_CELLS."""
    block = min(n_targets, max(1024, _BLOCK_CELLS // max(k, 1)))
    band = max(1, min(k, _BLOCK_CELLS // block))
    return band, block


def _row_offset(x: torch.Tensor, y: torch.Tensor, cost: Cost) -> torch.Tensor:
    """r_i of a split cost (C = r ⊕ s − x yᵀ), 0 otherwise: what :func:`_scores` leaves out."""
    split = cost.split(x, y[:1])
    return split[0] if split is not None else x.new_zeros(x.shape[0])


def _argmax_stream(
    x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, cost: Cost, temperature: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(argmax_j, max_j)`` of the scores of ``x: [k, d]`` (plus Gumbel noise × temperature
    when temperature > 0), streamed over target blocks with a running maximum."""
    k, n_targets = x.shape[0], y.shape[0]
    _, block = _query_band(k, n_targets)
    best = torch.full((k,), -math.inf, dtype=x.dtype, device=x.device)
    arg = torch.zeros(k, dtype=torch.long, device=x.device)
    for ts in range(0, n_targets, block):
        s = _scores(x, y[ts : ts + block], bias[ts : ts + block], cost)
        if temperature > 0:
            u = torch.rand(s.shape, dtype=s.dtype, device=s.device, generator=generator)
            s = s - temperature * torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
        value, index = s.max(1)
        better = value > best
        best = torch.where(better, value, best)
        arg = torch.where(better, index + ts, arg)
    return arg, best


def _soft_max_stream(
    x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, cost: Cost, epsilon: float
) -> torch.Tensor:
    """``ε LSE_j(score_ij / ε)`` ``[k]``, streamed over target blocks (an online log-sum-exp)."""
    _, block = _query_band(x.shape[0], y.shape[0])
    total = torch.full((x.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
    for ts in range(0, y.shape[0], block):
        s = _scores(x, y[ts : ts + block], bias[ts : ts + block], cost) / epsilon
        total = torch.logaddexp(total, torch.logsumexp(s, dim=1))
    return epsilon * total


def _soft_rows(
    x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, cost: Cost, epsilon: float, lse: torch.Tensor
):
    """Yield ``(ts, π[:, block])``: the softmax rows of x, a block of targets at a time."""
    _, block = _query_band(x.shape[0], y.shape[0])
    for ts in range(0, y.shape[0], block):
        s = _scores(x, y[ts : ts + block], bias[ts : ts + block], cost)
        yield ts, torch.exp((s - lse.unsqueeze(1)) / epsilon)


def assign(
    x: torch.Tensor,
    y: torch.Tensor,
    g: torch.Tensor,
    *,
    b: torch.Tensor | None = None,
    epsilon: float = 0.0,
    cost: str | Cost = "sqeuclidean",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The target of each query, ``x: [k, d]`` → ``[k]`` indices into ``y: [N, d]``.

    ε = 0: the Laguerre cell, argmax_j g_j − c(x_i, y_j) (an exact MIPS for split costs);
    ε > 0: a draw from the soft row ∝ b_j exp((g_j − c(x_i, y_j))/ε), by Gumbel-max. Both
    stream the targets in blocks with a running maximum and process the queries in bands, so
    memory is O(band · block), never k·N.
    """
    cost = get_cost(cost)
    log_b = torch.log(b) if b is not None else torch.full_like(g, -math.log(g.shape[0]))
    bias = _bias(y, log_b, g, cost, epsilon)
    band, _ = _query_band(x.shape[0], y.shape[0])
    out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    for qs in range(0, x.shape[0], band):
        out[qs : qs + band], _ = _argmax_stream(x[qs : qs + band], y, bias, cost, epsilon, generator)
    return out


def _batch_statistics(
    x: torch.Tensor, y: torch.Tensor, log_b: torch.Tensor, g: torch.Tensor, cost: Cost, epsilon: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For a batch ``x: [B, d]``: ``(Σ_i π_ij [N], Σ_i π_ij² [N], f_g(x_i) [B])``, streamed.

    The gradient is the first over B minus b; the χ² estimate needs the first two; the loss
    needs f. At ε = 0, π is one-hot: one MIPS pass. At ε > 0, two passes (the log-sum-exp,
    then the softmax column sums).
    """
    bias = _bias(y, log_b, g, cost, epsilon)
    r = _row_offset(x, y, cost)
    if epsilon == 0:
        arg, best = _argmax_stream(x, y, bias, cost, 0.0, None)
        col = torch.bincount(arg, minlength=y.shape[0]).to(x.dtype)
        return col, col, r - best
    lse = _soft_max_stream(x, y, bias, cost, epsilon)
    col = torch.zeros(y.shape[0], dtype=x.dtype, device=x.device)
    col_sq = torch.zeros_like(col)
    for ts, p in _soft_rows(x, y, bias, cost, epsilon, lse):
        col[ts : ts + p.shape[1]] = p.sum(0)
        col_sq[ts : ts + p.shape[1]] = (p * p).sum(0)
    return col, col_sq, r - lse


def _chi2(col: torch.Tensor, col_sq: torch.Tensor, b: torch.Tensor, batch: int) -> float:
    return ((col * col - col_sq) / b).sum().item() / (batch * (batch - 1)) - 1.0


def semidiscrete_loss(
    g: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    *,
    epsilon: float = 0.0,
    cost: str | Cost = "sqeuclidean",
) -> torch.Tensor:
    """The minibatch loss L(g) = −((1/B) Σ_i f_g(x_i) + ⟨g, b⟩) (module docstring), 0-d.

    Written with differentiable operations (``logsumexp``, ``min``), so autograd of it is
    the reference for :func:`semidiscrete_gradient`.
    """
    c = get_cost(cost).pairwise(x, y)
    if epsilon > 0:
        f = -epsilon * torch.logsumexp(torch.log(b) + (g - c) / epsilon, dim=1)
    else:
        f = (c - g).min(1).values
    return -(f.mean() + (g * b).sum())


def semidiscrete_gradient(
    g: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    b: torch.Tensor,
    *,
    epsilon: float = 0.0,
    cost: str | Cost = "sqeuclidean",
) -> torch.Tensor:
    """The gradient ``∂L/∂g_j = (1/B) Σ_i π_ij − b_j``, ``[N]``.

    The closed form of the module docstring, with no autograd graph, streamed over blocks of
    targets: a MIPS at ε = 0, two log-sum-exp passes at ε > 0.
    """
    cost = get_cost(cost)
    col, _, _ = _batch_statistics(x, y, torch.log(b), g, cost, epsilon)
    return col / x.shape[0] - b


def chi2_error(pi: torch.Tensor, b: torch.Tensor) -> float:
    """The unbiased χ² marginal error of a batch of rows ``pi: [B, N]`` (module docstring).

    ``pi`` rows are conditional assignments (each sums to 1, e.g. one-hot); the estimate is
    unbiased for χ²(π's target marginal ‖ b) and ≈ 0 when targets are hit in proportion b.
    """
    if pi.ndim != 2 or pi.shape[0] < 2 or pi.shape[1] != b.shape[0]:
        raise ValueError(f"pi must have shape [B >= 2, {b.shape[0]}], got {tuple(pi.shape)}")
    return _chi2(pi.sum(0), (pi * pi).sum(0), b, pi.shape[0])


# ----------------------------------------------------------------------------- the solver


@dataclass(frozen=True, repr=False)
class SemidiscreteResult:
    """A semidiscrete dual potential and its training record.

    Attributes:
        y: the targets ``[N, d]``; b: their weights ``[N]``.
        g: the dual potential ``[N]`` (the EMA of the SGD iterates), in cost units.
        g_last: the last iterate ``[N]``.
        epsilon: the entropic regularization (0: the unregularized Laguerre assignment).
        cost: the ground cost.
        losses: ``[steps]`` minibatch losses (fewer once ``tol`` is reached).
        chi2_steps, chi2: ``[checks]`` the step of each marginal-error check and its value
            (:func:`chi2_error` of the EMA potential, averaged over ``chi2_batches`` batches).
        converged: whether the last χ² check reached ``tol`` (False when no ``tol``).
        n_iter: SGD steps done.
    """

    y: torch.Tensor
    b: torch.Tensor
    g: torch.Tensor
    g_last: torch.Tensor
    epsilon: float
    cost: Cost
    losses: torch.Tensor
    chi2_steps: torch.Tensor
    chi2: torch.Tensor
    converged: bool
    n_iter: int

    def __repr__(self) -> str:
        last = self.chi2[-1].item() if self.chi2.numel() else float("nan")
        return (
            f"SemidiscreteResult(N={self.y.shape[0]}, d={self.y.shape[1]}, "
            f"epsilon={self.epsilon:g}, cost={self.cost.name!r}, n_iter={self.n_iter}, "
            f"chi2={last:.3g}, converged={self.converged})"
        )

    def _check_x(self, x: torch.Tensor) -> torch.Tensor:
        x = check_cloud("x", x)
        if x.shape[1] != self.y.shape[1]:
            raise ValueError(f"x must have shape [k, {self.y.shape[1]}], got {tuple(x.shape)}")
        return x.to(device=self.y.device, dtype=self.y.dtype)

    def assign(
        self, x: torch.Tensor, *, soft: bool | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Target indices ``[k]`` for ``x: [k, d]``: hard (MIPS) or sampled from the soft row.

        ``soft`` defaults to ``epsilon > 0``; a hard assignment at ε > 0 takes the row's mode.
        """
        soft = self.epsilon > 0 if soft is None else soft
        if soft and self.epsilon == 0:
            raise ValueError("soft assignment needs epsilon > 0; this potential was fit at 0")
        eps = self.epsilon if soft else 0.0
        g = self.g if eps > 0 or self.epsilon == 0 else self.g + self.epsilon * torch.log(self.b)
        return assign(self._check_x(x), self.y, g, b=self.b, epsilon=eps, cost=self.cost, generator=generator)

    def transport(self, x: torch.Tensor) -> torch.Tensor:
        """``T(x)``: at ε = 0 the target of x's Laguerre cell (the semidiscrete Monge map);
        at ε > 0 the entropic map Σ_j π_j(x) y_j. ``[k, d]``."""
        x = self._check_x(x)
        if self.epsilon == 0:
            return self.y[self.assign(x)]
        out = torch.zeros_like(x)
        bias = _bias(self.y, torch.log(self.b), self.g, self.cost, self.epsilon)
        band, _ = _query_band(x.shape[0], self.y.shape[0])
        for qs in range(0, x.shape[0], band):
            xq = x[qs : qs + band]
            lse = _soft_max_stream(xq, self.y, bias, self.cost, self.epsilon)
            for ts, p in _soft_rows(xq, self.y, bias, self.cost, self.epsilon, lse):
                out[qs : qs + band] += p @ self.y[ts : ts + p.shape[1]]
        return out

    def chi2_error(
        self, sampler: Sampler, *, num_batches: int = 10, batch_size: int = 1024,
        generator: torch.Generator | None = None,
    ) -> float:
        """The χ² marginal error of this potential, averaged over fresh source batches."""
        num_batches = check_count("num_batches", num_batches)
        batch_size = check_count("batch_size", batch_size, minimum=2)
        values = []
        for _ in range(num_batches):
            x = self._check_x(sampler(batch_size, generator))
            col, col_sq, _ = _batch_statistics(x, self.y, torch.log(self.b), self.g, self.cost, self.epsilon)
            values.append(_chi2(col, col_sq, self.b, batch_size))
        return sum(values) / len(values)


def semidiscrete(
    sampler: Sampler,
    y: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    epsilon: float = 0.0,
    cost: str | Cost = "sqeuclidean",
    steps: int = 10_000,
    batch_size: int = 128,
    optimizer: str = "sgd",
    lr: float = 0.02,
    ema: float = 0.99,
    tol: float | None = None,
    check_every: int = 1000,
    chi2_batches: int = 4,
    chi2_batch_size: int = 1024,
    init: torch.Tensor | None = None,
    generator: torch.Generator | int | None = 0,
    progress: bool = False,
    callback: Callable[[int, torch.Tensor], None] | None = None,
    num_iterations: int | None = None,
    seed: int | None = None,
) -> SemidiscreteResult:
    """Fit the semidiscrete dual potential g by stochastic gradient (module docstring).

    Args:
        sampler: the source, a callable ``(n, generator) -> [n, d]`` (drawn on the CPU from
            ``generator``; e.g. :class:`otkit.flows.StandardNormal`).
        y: the targets ``[N, d]``; b: their weights ``[N]`` (uniform by default; they must
            be positive and sum to 1).
        epsilon: entropic regularization ≥ 0 in cost units (0: the unregularized problem).
        cost: ``"sqeuclidean"`` (½‖x − y‖², default), ``"dot"`` or a :class:`otkit.costs.Cost`.
        steps: SGD steps; batch_size: source points per step.
        optimizer: ``"sgd"`` or ``"adam"``; lr: its learning rate.
        ema: decay of the moving average of g (0.99 in the paper), in [0, 1).
        tol: stop once the χ² error of the EMA potential falls to ``tol`` (checked every
            ``check_every`` steps on ``chi2_batches`` batches of ``chi2_batch_size``). Without
            ``tol`` all steps run and the χ² history is still recorded.
        init: a starting potential ``[N]`` (zeros by default).
        generator: the source draws' CPU ``torch.Generator``, or an int seed of a fresh one
            (the default, 0, makes a call reproducible); ``None`` draws from torch's global one.
        progress: a tqdm bar. callback: called as ``callback(step, g_ema)`` at every check
            (e.g. to keep snapshots for a widget).
        num_iterations, seed: the old names of ``steps`` and ``generator``, still accepted
            (keyword only) with a ``DeprecationWarning``.
    """
    steps = renamed_keyword(
        "semidiscrete", "num_iterations", num_iterations, "steps", steps, 10_000
    )
    generator = renamed_keyword("semidiscrete", "seed", seed, "generator", generator, 0)
    y = check_cloud("y", y)
    n_targets = y.shape[0]
    b = check_weights("b", b, n_targets, y)
    if (b <= 0).any():
        raise ValueError("b must be positive: every target needs mass (drop zero-weight targets)")
    if abs(b.sum().item() - 1.0) > 1e-5:
        raise ValueError(f"b must sum to 1 (a probability vector), got {b.sum().item():.6g}")
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    epsilon = float(epsilon)
    cost = get_cost(cost)
    steps = check_count("steps", steps)
    batch_size = check_count("batch_size", batch_size, minimum=2)
    check_choice("optimizer", optimizer, ("sgd", "adam"))
    lr = check_positive("lr", lr)
    ema = check_probability("ema", ema, closed=True)
    if ema == 1.0:
        raise ValueError("ema must lie in [0, 1): a decay of 1 never updates the average")
    if tol is not None:
        tol = check_positive("tol", tol)
    check_every = check_count("check_every", check_every)
    chi2_batches = check_count("chi2_batches", chi2_batches)
    chi2_batch_size = check_count("chi2_batch_size", chi2_batch_size, minimum=2)
    if init is not None and (
        not isinstance(init, torch.Tensor) or init.shape != (n_targets,) or not torch.isfinite(init).all()
    ):
        raise ValueError(f"init must be a finite tensor of shape [{n_targets}]")
    gen = check_generator(generator)

    def draw(n: int) -> torch.Tensor:
        x = sampler(n, gen)
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape != (n, y.shape[1]):
            raise ValueError(
                f"sampler(n, generator) must return a tensor [n, {y.shape[1]}] (d of y), got "
                f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}"
            )
        return x.to(device=y.device, dtype=y.dtype)

    g = (init.to(y) if init is not None else torch.zeros_like(b)).clone().requires_grad_(False)
    g_ema = g.clone()
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)([g], lr=lr)
    log_b = torch.log(b)
    losses = torch.empty(steps, dtype=torch.float64)
    chi2_steps, chi2_values = [], []
    converged = False
    step = 0
    for step in tqdm(range(1, steps + 1), disable=not progress, desc="semidiscrete"):
        x = draw(batch_size)
        col, _, f = _batch_statistics(x, y, log_b, g, cost, epsilon)
        g.grad = col / batch_size - b  # ∂L/∂g in closed form; no autograd graph
        losses[step - 1] = -(f.mean() + (g * b).sum()).item()
        opt.step()
        g_ema.mul_(ema).add_(g, alpha=1 - ema)
        if step % check_every == 0 or step == steps:
            value = 0.0
            for _ in range(chi2_batches):
                col, col_sq, _ = _batch_statistics(draw(chi2_batch_size), y, log_b, g_ema, cost, epsilon)
                value += _chi2(col, col_sq, b, chi2_batch_size) / chi2_batches
            chi2_steps.append(step)
            chi2_values.append(value)
            if callback is not None:
                callback(step, g_ema.clone())
            if tol is not None and value <= tol:
                converged = True
                break
    if tol is not None and not converged:
        warnings.warn(
            f"semidiscrete: the chi-square error {chi2_values[-1]:.3g} did not reach tol={tol:g} "
            f"in {steps} steps: raise steps or lr",
            ConvergenceWarning, stacklevel=2,
        )
    return SemidiscreteResult(
        y=y, b=b, g=g_ema, g_last=g.detach().clone(), epsilon=epsilon, cost=cost,
        losses=losses[:step], chi2_steps=torch.tensor(chi2_steps), chi2=torch.tensor(chi2_values, dtype=torch.float64),
        converged=converged, n_iter=step,
    )

