"""The low-rank explorer: the rank r and the KL marginal penalty ρ on a toy with outliers.

Low-rank OT (:func:`otkit.lowrank`) factors the coupling as P = Q diag(1/g) Rᵀ: r "anchors"
(the columns of Q and R, with masses g) carry all the mass, each source point sending its
mass through a few of them. With ρ = ∞ both marginals are hard constraints (balanced OT);
a finite ρ relaxes them to the penalty ρ KL(P1 | a) + ρ KL(Pᵀ1 | b) (ρ in cost units, the
``rho_a``, ``rho_b`` of :func:`otkit.lowrank` and :func:`otkit.sinkhorn`), so mass that
would have to travel far is destroyed rather than moved.

The data are :func:`otkit.data.clouds_with_outliers`: y holds T(x) + noise and, in two
tight clusters far away, ``outlier_fraction · n`` outliers that x has no counterpart for.
Balanced OT must send them a share outlier_fraction / (1 + outlier_fraction) of the mass,
which drags the barycentric projections P y / P1 towards them; ρ = 9 already leaves them
almost empty.

* :func:`compute_lowrank` — the computation, a plain function returning a frozen
  :class:`LowRankState`; no browser or widget needed.
* :class:`LowRankExplorer` — the widget. Controls: the rank, ρ (one value for both
  marginals, from :data:`RHO_OPTIONS`; ∞ = balanced), α (the weight of the structure in
  fused Gromov-Wasserstein, :func:`otkit.lowrank.gromov.lowrank_gw`: 0 is linear OT on the
  coordinates, 1 pure GW on the intra-cloud distances, blind to where y lies), n, the outlier fraction and a seed
  (data and initialization).
  States are kept in a small cache (:class:`widgets.base.FitCache`): returning
  to an earlier setting redraws without solving.

Stable names for browser tests: traces ``"source"`` (x, coloured by each point's dominant
factor, argmax of its row of Q), ``"target_support"`` (every y, small and hollow),
``"target"`` (y with marker size ∝ the mass it receives, R1; size 0 for no mass),
``"projection"`` (the barycentric projections P y / P1) and ``"anchors"`` (one segment per
factor, from its source centroid Qₖᵀx / Q1ₖ to its target centroid Rₖᵀy / R1ₖ; one trace with
``None`` between segments); the outer box has the class ``otkit-lowrank``; ``layout.meta``
holds the numbers (``outlier_mass``, ``error``, ``cost``, ``transported_mass``,
``converged``, ``n_iter``, ``time_s``, ``cached``, ``rank``, ``rho`` (``None`` when balanced:
JSON has no ∞), ...); the stats line has
spans ``.otkit-stat-outlier-mass``, ``.otkit-stat-error``, ``.otkit-stat-cost``,
``.otkit-stat-mass``, ``.otkit-stat-iterations``, ``.otkit-stat-time`` and
``.otkit-stat-converged``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import html
import math
import time
import warnings
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch

import otkit
from otkit.data import clouds_with_outliers
from otkit.lowrank.gromov import lowrank_gw
from otkit.validation import check_count, check_probability, check_rho

from .base import (
    FitCache,
    InteractiveFigure,
    _stat,
    figure_widget,
    recorded_warnings,
    seed_control,
)

__all__ = [
    "N_OPTIONS", "RHO_OPTIONS", "TRACE_NAMES", "LowRankExplorer", "LowRankState",
    "compute_lowrank",
]

#: Trace names, in figure order.
TRACE_NAMES = ("target_support", "target", "anchors", "source", "projection")

#: The sizes the widget's n dropdown offers.
N_OPTIONS = (250, 500, 1000, 2000)

#: The penalties the widget's ρ slider offers, increasing, then ∞ (balanced): ρ = τ/(1 − τ)
#: for τ = 0.50, 0.51, ..., 0.99, the grid of the former τ slider (1, 1.04, ..., 9, 19, 99).
RHO_OPTIONS = tuple(k / (100 - k) for k in range(50, 100)) + (math.inf,)

_MAX_RANK = 50  # the rank slider's end (compute_lowrank takes any 1 <= r <= n)
_TARGET_SIZE = 9.0  # marker size of a target point receiving its uniform share 1/m


@dataclass(frozen=True, eq=False)
class LowRankState:
    """One low-rank (unbalanced) OT solve on the outlier toy (module docstring).

    Attributes:
        rank, rho, n, outlier_fraction, seed, max_iter: the arguments (``rho`` is used for
            both marginals: ``rho_a = rho_b = rho``; ``math.inf`` = balanced).
        x: source points ``[n, 2]``; y: target points ``[m, 2]`` (m = n + outliers).
        y_outlier: ``[m]`` bool, the target points with no counterpart in x.
        truth: ``[n, 2]`` the true image T(x) of each source point.
        result: the :class:`otkit.LowRankResult`.
        sent: ``[n]`` the mass each source point sends (Q1; 1/n each when balanced).
        received: ``[m]`` the mass each target point receives (R1; 1/m each when balanced).
        projection: ``[n, 2]`` the barycentric projections P y / P1.
        dominant: ``[n]`` each source point's dominant factor (argmax of its row of Q).
        factor_mass: ``[rank]`` g, the mass each factor carries.
        source_anchors, target_anchors: ``[rank, 2]`` each factor's centroids Qₖᵀx / Q1ₖ and
            Rₖᵀy / R1ₖ (where its mass comes from and where it goes).
        outlier_mass: the share of the transported mass that lands on the outliers,
            R1[outliers].sum() / R1.sum() (outlier_fraction / (1 + outlier_fraction) when
            balanced).
        transported_mass: the total mass of P (1 when balanced, less when ρ < ∞).
        error: the mean distance ‖P y / P1 − T(x)‖ over the source points.
        cost: ⟨C, P⟩ with C = ½‖x − y‖² (the FGW_α cost when α > 0).
        converged, n_iter: the solver's.
        time_s: seconds of the whole compute (data and solve).
        warnings: messages of the recorded warnings (the solver's non-convergence).
        alpha: the structure weight of fused GW (0: linear low-rank OT).
    """

    rank: int
    rho: float
    n: int
    outlier_fraction: float
    seed: int
    max_iter: int
    x: torch.Tensor
    y: torch.Tensor
    y_outlier: torch.Tensor
    truth: torch.Tensor
    result: otkit.LowRankResult
    sent: torch.Tensor
    received: torch.Tensor
    projection: torch.Tensor
    dominant: torch.Tensor
    factor_mass: torch.Tensor
    source_anchors: torch.Tensor
    target_anchors: torch.Tensor
    outlier_mass: float
    transported_mass: float
    error: float
    cost: float
    converged: bool
    n_iter: int
    time_s: float
    warnings: tuple[str, ...] = ()
    alpha: float = 0.0

    @property
    def m(self) -> int:
        """The number of target points (inliers and outliers)."""
        return len(self.y)


def compute_lowrank(
    *,
    rank: int = 10,
    rho: float = math.inf,
    n: int = 1000,
    outlier_fraction: float = 0.1,
    seed: int = 0,
    max_iter: int = 1000,
    alpha: float = 0.0,
) -> LowRankState:
    """Solve low-rank OT of rank ``rank``, both marginals penalized by ``rho``, on the toy.

    The data are ``clouds_with_outliers(n, outlier_fraction=..., seed=seed)`` in float64,
    with uniform weights (1/n on x, 1/m on y, m = n + round(outlier_fraction · n)); the
    solve is ``otkit.lowrank(x, y, rank=rank, rho_a=rho, rho_b=rho, max_iter=max_iter,
    generator=seed)``. One thread, n = 1000: about 1 s at rank 10, 2–3 s at rank 50.

    Args:
        rank: the coupling's rank r, 1 ≤ r ≤ n.
        rho: the KL marginal penalty ρ of both sides, in cost units, > 0; ``math.inf`` (the
            default) is balanced.
        n: source points (≥ 2).
        outlier_fraction: outliers in y per source point, in [0, 1).
        seed: seeds the data and the factors' random initialization (≥ 0).
        max_iter: the solver's outer steps.
        alpha: in [0, 1]; > 0 solves fused GW instead, ``lowrank_gw(x, y, features=(x, y),
            alpha=alpha, ...)``: structure ½‖x − x'‖², ½‖y − y'‖² weighted α, the linear
            cost ½‖x − y‖² weighted 1 − α.

    Bad arguments raise ``ValueError`` (``TypeError`` for a wrong type), naming the argument,
    before any solve. Non-convergence does not raise: it is recorded in ``warnings``.
    """
    start = time.perf_counter()
    rank = check_count("rank", rank)
    rho = check_rho("rho", rho)
    n = check_count("n", n, minimum=2)
    if rank > n:
        raise ValueError(f"rank must be at most n = {n}, got {rank}")
    outlier_fraction = check_probability("outlier_fraction", outlier_fraction, closed=True)
    if outlier_fraction == 1.0:
        raise ValueError("outlier_fraction must lie in [0, 1), got 1.0")
    seed = check_count("seed", seed, minimum=0)
    max_iter = check_count("max_iter", max_iter)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    alpha = float(alpha)

    data = clouds_with_outliers(
        n, outlier_fraction=outlier_fraction, seed=seed, dtype=torch.float64
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if alpha == 0.0:
            result = otkit.lowrank(data.x, data.y, rank=rank, rho_a=rho, rho_b=rho,
                                   max_iter=max_iter, generator=seed)
        else:
            result = lowrank_gw(data.x, data.y, rank=rank, features=(data.x, data.y),
                                alpha=alpha, rho_a=rho, rho_b=rho, max_iter=max_iter,
                                generator=seed)
    sent, received = result.marginals()
    total = received.sum()
    q_mass = result.q.sum(0).clamp_min(1e-300)  # a factor may end with (almost) no mass
    r_mass = result.r.sum(0).clamp_min(1e-300)
    projection = result.transport()
    return LowRankState(
        rank=rank, rho=rho, n=n, outlier_fraction=outlier_fraction, seed=seed,
        max_iter=max_iter, x=data.x, y=data.y, y_outlier=data.y_unmatched, truth=data.truth,
        result=result, sent=sent, received=received, projection=projection,
        dominant=result.q.argmax(1), factor_mass=result.g,
        source_anchors=(result.q.T @ data.x) / q_mass[:, None],
        target_anchors=(result.r.T @ data.y) / r_mass[:, None],
        outlier_mass=(received[data.y_unmatched].sum() / total).item(),
        transported_mass=total.item(),
        error=(projection - data.truth).norm(dim=1).mean().item(),
        cost=result.ot_cost().item(), converged=result.converged, n_iter=result.n_iter,
        time_s=time.perf_counter() - start, warnings=recorded_warnings(caught), alpha=alpha,
    )


# ----- the widget --------------------------------------------------------------------------


class LowRankExplorer(InteractiveFigure):
    """The low-rank explorer (module docstring).

    Args:
        rank, rho, n, outlier_fraction, seed, alpha: initial control values (see
            :func:`compute_lowrank`; ``n`` one of :data:`N_OPTIONS`, ``rho`` one of
            :data:`RHO_OPTIONS`, ``rank`` ≤ 50).
        cache_size: states kept by the widget's cache (:attr:`cache`).
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
        **compute_options: passed to :func:`compute_lowrank` (``max_iter``).

    Attributes:
        cached: whether the last state drawn came from the cache.
    """

    css_class = "otkit-lowrank"

    def __init__(
        self,
        *,
        rank: int = 10,
        rho: float = math.inf,
        n: int = 1000,
        outlier_fraction: float = 0.1,
        seed: int = 0,
        alpha: float = 0.0,
        cache_size: int = 32,
        debounce_ms: float = 150,
        disable_while_busy: bool = False,
        **compute_options,
    ):
        self.cache = FitCache(cache_size)  # before the base's __init__, which computes once
        self.cached = False
        self.compute_options = compute_options
        super().__init__(
            debounce_ms=debounce_ms, disable_while_busy=disable_while_busy, rank=rank,
            rho=rho, n=n, outlier_fraction=outlier_fraction, seed=seed, alpha=alpha,
        )

    # ----- InteractiveFigure --------------------------------------------------------------
    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "rank": ipw.IntSlider(
                value=10, min=1, max=_MAX_RANK, step=1, description="rank r",
                continuous_update=True, style=style,
            ),
            "rho": ipw.SelectionSlider(
                options=[("∞ (balanced)" if math.isinf(v) else f"{v:.3g}", v)
                         for v in RHO_OPTIONS],
                value=math.inf, description="ρ (KL penalty)", continuous_update=True,
                style=style,
            ),
            "alpha": ipw.FloatSlider(
                value=0.0, min=0.0, max=1.0, step=0.1, readout_format=".1f",
                description="α (structure, FGW)", continuous_update=True, style=style,
            ),
            "n": ipw.Dropdown(
                options=list(N_OPTIONS), value=1000, description="n",
                layout=ipw.Layout(width="140px"), style=style,
            ),
            "outlier_fraction": ipw.FloatSlider(
                value=0.1, min=0.0, max=0.5, step=0.05, readout_format=".2f",
                description="outlier fraction", continuous_update=True, style=style,
            ),
            "seed": seed_control(),
        }

    def layout_controls(self, controls: list[ipw.Widget]) -> ipw.Box:
        """Two rows: the solver's knobs (rank, ρ, α), then the data (n, outliers, seed)."""
        return self.control_rows(["rank", "rho", "alpha"], ["n", "outlier_fraction", "seed"])

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Scatter(
            name="target_support", mode="markers", x=[], y=[],
            marker={"symbol": "circle-open", "size": 4, "color": "#bbbbbb"},
            hoverinfo="skip", showlegend=False,
        ))
        fig.add_trace(go.Scatter(
            name="target", mode="markers", x=[], y=[], opacity=0.6,
            marker={"color": "#d62728", "size": [], "sizemode": "diameter", "line": {"width": 0}},
            hovertemplate="y: received %{customdata:.3g} × its share 1/m<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            name="anchors", mode="lines+markers", x=[], y=[],
            line={"color": "rgba(0,0,0,0.45)", "width": 1.5},
            marker={"symbol": "diamond", "size": 7, "color": "black"},
            hoverinfo="skip",
        ))
        fig.add_trace(go.Scatter(
            name="source", mode="markers", x=[], y=[], opacity=0.75,
            marker={"size": 5, "color": [], "colorscale": "Turbo", "cmin": 0, "cmax": 1,
                    "showscale": False},
            hovertemplate="x: factor %{marker.color}<extra></extra>",
        ))
        fig.add_trace(go.Scatter(
            name="projection", mode="markers", x=[], y=[], opacity=0.6,
            marker={"symbol": "x-thin", "size": 5, "color": "#1f77b4", "line": {"width": 1}},
            hovertemplate="P y / P1<extra></extra>",
        ))
        fig.update_xaxes(title_text="first coordinate")
        fig.update_yaxes(title_text="second coordinate", scaleanchor="x", scaleratio=1)
        return figure_widget(fig, "low-rank OT …", height=600)

    def compute(self, **params) -> LowRankState:
        key = tuple(sorted({**params, **self.compute_options}.items()))
        state, self.cached = self.cache.get(
            key, lambda: compute_lowrank(**params, **self.compute_options))
        return state

    def draw(self, state: LowRankState) -> None:
        fig = self.figure
        y = state.y.numpy()
        self.trace("target_support").update(x=y[:, 0], y=y[:, 1])
        share = (state.received * state.m).numpy()  # 1 = the uniform share 1/m
        sizes = _TARGET_SIZE * share.clip(0, 4) ** 0.5  # area ∝ mass, capped at 4 shares
        self.trace("target").update(x=y[:, 0], y=y[:, 1], marker={"size": sizes},
                                    customdata=share)
        x = state.x.numpy()
        self.trace("source").update(
            x=x[:, 0], y=x[:, 1],
            marker={"color": state.dominant.numpy(), "cmin": 0, "cmax": max(state.rank - 1, 1)},
        )
        proj = state.projection.numpy()
        self.trace("projection").update(x=proj[:, 0], y=proj[:, 1])
        ax, ay = [], []
        for (x0, y0), (x1, y1) in zip(state.source_anchors.tolist(),
                                      state.target_anchors.tolist(), strict=True):
            ax += [x0, x1, None]
            ay += [y0, y1, None]
        self.trace("anchors").update(x=ax, y=ay)

        balanced = "balanced" if math.isinf(state.rho) else f"ρ = {state.rho:.3g}"
        note = "; ⚠ see the warnings under the plot" if state.warnings else ""
        fig.layout.title.text = (
            f"low-rank {'OT' if state.alpha == 0 else f'FGW α = {state.alpha:.1f}'}, rank {state.rank}, {balanced}: {100 * state.outlier_mass:.1f} % of "
            f"the mass lands on the outliers, mean error {state.error:.3f}"
            f"<br><sup>n = {state.n}, {int(state.y_outlier.sum())} outliers, seed "
            f"{state.seed}; x coloured by dominant factor, y sized by received mass, "
            f"✕ = P y / P1{note}</sup>"
        )
        # The whole dict: inside batch_update, reading layout.meta back gives the old one.
        fig.layout.meta = _meta(state, self.cached)
        self.stats.value = _stats_html(state, self.cached)

    # ----- public -------------------------------------------------------------------------

def _meta(state: LowRankState, cached: bool) -> dict:
    """The numbers for ``layout.meta``."""
    return {
        "rank": state.rank,
        "rho": None if math.isinf(state.rho) else state.rho,
        "alpha": state.alpha,
        "n": state.n,
        "m": state.m,
        "outlier_fraction": state.outlier_fraction,
        "n_outliers": int(state.y_outlier.sum()),
        "seed": state.seed,
        "outlier_mass": state.outlier_mass,
        "transported_mass": state.transported_mass,
        "error": state.error,
        "cost": state.cost,
        "converged": state.converged,
        "n_iter": state.n_iter,
        "factors_used": int(state.dominant.unique().numel()),
        "time_s": state.time_s,
        "cached": cached,
        "warnings": list(state.warnings),
    }


def _stats_html(state: LowRankState, cached: bool) -> str:
    conv = "yes" if state.converged else "no (max_iter reached)"
    time_text = f"{state.time_s:.2f} s" + (" (cached)" if cached else "")
    parts = [
        _stat("outlier-mass", "mass on outliers", repr(state.outlier_mass),
              f"{100 * state.outlier_mass:.2f} %",
              "share of the transported mass received by the outliers; balanced OT must "
              f"send them {100 * state.outlier_fraction / (1 + state.outlier_fraction):.1f} %"),
        _stat("error", "barycentric error", repr(state.error), f"{state.error:.3f}",
              "mean ‖P y / P1 − T(x)‖ over the source points, T the true map"),
        _stat("cost", "cost", repr(state.cost), f"{state.cost:.4g}",
              "⟨C, P⟩, C = ½‖x − y‖²" if state.alpha == 0 else "FGW_α(P), the structure weighted α"),
        _stat("mass", "mass moved", repr(state.transported_mass),
              f"{state.transported_mass:.3f}", "total mass of P (1 when balanced)"),
        _stat("iterations", "iterations", state.n_iter, str(state.n_iter)),
        _stat("time", "time", repr(state.time_s), time_text),
        _stat("converged", "converged", str(state.converged).lower(), conv,
              "; ".join(state.warnings)),
    ]
    style = "" if state.converged else ' style="color:#b36b00"'
    line = f'<div class="otkit-stats-line"{style}>' + " · ".join(parts) + "</div>"
    if not state.warnings:
        return line
    notes = "".join(f"<div>⚠ {html.escape(w)}</div>" for w in state.warnings)
    return line + f'<div class="otkit-stats-warnings" style="color:#b36b00">{notes}</div>'
