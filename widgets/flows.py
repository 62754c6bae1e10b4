"""The coupling sharpness explorer: how ε turns a diffuse entropic plan into a sharp one.

Two 2-D clouds (:func:`otkit.data.two_clouds`) are coupled by :func:`otkit.sinkhorn` at a
relative ε (ε = relative_epsilon × std of the cost matrix). As ε falls, the plan

    P_ij = a_i b_j exp((f_i + g_j − C_ij)/ε)

concentrates on few pairs; its renormalized entropy (Zhang et al. 2025; 0 for a permutation,
1 for the independent coupling a⊗b, see :meth:`otkit.SinkhornResult.renormalized_entropy`)
falls with it.

* :func:`compute_sharpness` — the computation, a plain function returning a frozen
  :class:`SharpnessState`; no browser or widget needed.
* :class:`SharpnessExplorer` — the widget: sliders for ε (log scale) and n, dropdowns for the
  backend and the kind of clouds, a seed; the clouds with the coupling drawn as segments
  (n ≤ 64) and the coupling matrix as a heatmap, rows and columns sorted along the clouds'
  principal axis.

Stable names for browser tests: traces ``"coupling"`` (segments of the heaviest pairs
carrying 90% of the mass, in one trace with ``None`` between segments; empty for n > 64),
``"source"``, ``"target"``, ``"coupling heatmap"`` (``z`` is log10 of P/(a⊗b), binned for
large n); ``layout.title.text`` contains
"renormalized entropy <value>"; ``layout.meta`` holds the numbers
(``renormalized_entropy``, ``marginal_error``, ``n_iter``, ``epsilon``, ...); the stats
line has spans ``.otkit-stat-entropy``, ``.otkit-stat-marginal-error``,
``.otkit-stat-iterations``, ``.otkit-stat-time``, ``.otkit-stat-epsilon``,
``.otkit-stat-backend``, ``.otkit-stat-converged``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

import otkit
from otkit.data import TWO_CLOUD_KINDS, two_clouds
from otkit.validation import check_choice

from .base import InteractiveFigure, _stat, figure_widget, fixed, seed_control

__all__ = [
    "SharpnessState", "compute_sharpness", "SharpnessExplorer", "BACKEND_CHOICES", "TRACE_NAMES",
    "segments", "heaviest_pairs",
]

BACKEND_CHOICES = ("auto", "torch", "pot", "geomloss")

#: Trace names, in figure order.
TRACE_NAMES = ("coupling", "source", "target", "coupling heatmap")

_HEATMAP_FLOOR = 1e-2  # the heatmap shows log10(P / a⊗b) clipped below at this ratio


@dataclass(frozen=True, eq=False)
class SharpnessState:
    """One solved coupling, ready to draw.

    Attributes:
        n, m, kind, seed: the clouds' sizes, kind and seed.
        x, y: the clouds, ``[n, 2]`` and ``[m, 2]`` (CPU, float32).
        coupling: the plan P ``[n, m]`` in the clouds' order when ``coupling_layout ==
            "dense"`` (n, m ≤ ``dense_limit``); else ``"binned"``: ``[B_r, B_c]`` block
            sums of P in projection order (rows/columns grouped along ``row_order`` /
            ``col_order``).
        coupling_layout: ``"dense"`` or ``"binned"``.
        heatmap: P / (a⊗b) in projection order, ``[r, c]`` with r ≤ ``heatmap_bins``
            (block sums over block weights when binned); 1 everywhere for the independent
            coupling.
        row_order, col_order: ``[n]``, ``[m]``: x and y sorted along the first principal axis of
            the two clouds together.
        pairs, pair_mass: ``[k, 2]`` index pairs (i, j) with P_ij > ``pair_threshold`` ×
            max P, at most ``max_pairs`` of them, heaviest first, and their masses ``[k]``
            (empty when the plan is binned).
        renormalized_entropy, marginal_error, n_iter, converged: from the solver's result.
        time_s: seconds the solve took.
        epsilon, relative_epsilon: the absolute ε used and the relative ε asked for.
        backend, mode: the backend and storage mode that solved it.
        warnings: messages of the warnings raised while solving (e.g. non-convergence).
    """

    n: int
    m: int
    kind: str
    seed: int
    x: torch.Tensor
    y: torch.Tensor
    coupling: torch.Tensor
    coupling_layout: str
    heatmap: torch.Tensor
    row_order: torch.Tensor
    col_order: torch.Tensor
    pairs: torch.Tensor
    pair_mass: torch.Tensor
    renormalized_entropy: float
    marginal_error: float
    n_iter: int
    converged: bool
    time_s: float
    epsilon: float
    relative_epsilon: float
    backend: str
    mode: str
    warnings: tuple[str, ...] = ()

    def effective_pairs(self) -> float:
        """exp of the entropy of the kept pair masses (≈ n for a permutation, ≈ n·m if diffuse)."""
        if self.pair_mass.numel() == 0:
            return float("nan")
        p = self.pair_mass.double() / self.pair_mass.double().sum()
        return math.exp(-torch.special.xlogy(p, p).sum().item())


def _principal_axis(points: torch.Tensor) -> torch.Tensor:
    centred = points - points.mean(0)
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    axis = vh[0]
    return axis if axis[axis.abs().argmax()] > 0 else -axis


def _bins(order: torch.Tensor, n_bins: int, dtype: torch.dtype) -> torch.Tensor:
    """One-hot ``[n, B]``: point ``order[r]`` goes to bin ``r·B // n``."""
    n = order.numel()
    onehot = torch.zeros(n, n_bins, dtype=dtype)
    onehot[order, torch.arange(n) * n_bins // n] = 1.0
    return onehot


def compute_sharpness(
    n: int = 64,
    relative_epsilon: float = 0.05,
    backend: str = "auto",
    kind: str = "moons",
    seed: int = 0,
    *,
    m: int | None = None,
    tol: float = 1e-3,
    max_iter: int = 1000,
    epsilon_scaling: float | None = 0.9,
    dense_limit: int = 256,
    heatmap_bins: int = 128,
    max_pairs: int = 2000,
    pair_threshold: float = 1e-3,
) -> SharpnessState:
    """Solve entropic OT between two clouds and summarize the plan's sharpness.

    Args:
        n, m: the clouds' sizes (``m = n`` by default).
        relative_epsilon: ε as a multiple of the cost matrix's std.
        backend: ``"auto"``, ``"torch"``, ``"pot"`` or ``"geomloss"``.
        kind: the clouds, one of :data:`otkit.data.TWO_CLOUD_KINDS`.
        seed: the clouds' seed.
        tol, max_iter, epsilon_scaling: passed to :func:`otkit.sinkhorn` (ε-scaling speeds up
            small ε; only the torch backend has it, so the others run without).
        dense_limit: keep the dense plan when n, m ≤ this; else only block sums.
        heatmap_bins: the heatmap's size at most (rows and columns).
        max_pairs, pair_threshold: which pairs :attr:`SharpnessState.pairs` keeps.

    Non-convergence does not raise: it is reported in ``converged`` and ``warnings``. Bad
    arguments raise ``ValueError`` from :mod:`otkit.data` or :func:`otkit.sinkhorn`.
    """
    check_choice("backend", backend, BACKEND_CHOICES)
    x, y = two_clouds(n, m, kind, seed=int(seed))
    n, m = x.shape[0], y.shape[0]
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", otkit.ConvergenceWarning)
        result = otkit.sinkhorn(
            x, y, relative_epsilon=float(relative_epsilon), backend=backend, tol=tol,
            max_iter=max_iter,
            epsilon_scaling=epsilon_scaling if backend in ("auto", "torch") else None,
        )
    time_s = time.perf_counter() - start
    for w in caught:  # anything but non-convergence (reported in the state) is passed on
        if not issubclass(w.category, otkit.ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    axis = _principal_axis(torch.cat([x, y]))
    row_order = torch.argsort(x.double() @ axis)
    col_order = torch.argsort(y.double() @ axis)
    a, b = result.a, result.b
    dense = n <= dense_limit and m <= dense_limit
    br, bc = min(heatmap_bins, n), min(heatmap_bins, m)
    if dense:
        plan = result.coupling()
        sorted_plan = plan[row_order][:, col_order]
        if (br, bc) == (n, m):
            heat = sorted_plan / (a[row_order].unsqueeze(1) * b[col_order].unsqueeze(0))
        else:
            rows_1h, cols_1h = _bins(row_order, br, plan.dtype), _bins(col_order, bc, plan.dtype)
            blocks = rows_1h.T @ plan @ cols_1h
            heat = blocks / ((rows_1h.T @ a).unsqueeze(1) * (cols_1h.T @ b).unsqueeze(0))
        coupling = plan
        flat = plan.flatten()
        keep = torch.nonzero(flat > pair_threshold * flat.max()).squeeze(1)
        if keep.numel() > max_pairs:
            keep = keep[torch.topk(flat[keep], max_pairs).indices]
        keep = keep[torch.argsort(flat[keep], descending=True)]
        pairs = torch.stack([keep // m, keep % m], dim=1)
        pair_mass = flat[keep]
    else:  # block sums Rᵀ P C without building P: P C = result.apply(C)
        rows_1h, cols_1h = _bins(row_order, br, a.dtype), _bins(col_order, bc, b.dtype)
        coupling = rows_1h.T @ result.apply(cols_1h)
        heat = coupling / ((rows_1h.T @ a).unsqueeze(1) * (cols_1h.T @ b).unsqueeze(0))
        pairs = torch.empty(0, 2, dtype=torch.long)
        pair_mass = torch.empty(0, dtype=a.dtype)

    return SharpnessState(
        n=n, m=m, kind=kind, seed=int(seed), x=x, y=y, coupling=coupling,
        coupling_layout="dense" if dense else "binned", heatmap=heat,
        row_order=row_order, col_order=col_order, pairs=pairs, pair_mass=pair_mass,
        renormalized_entropy=result.renormalized_entropy(),
        marginal_error=result.marginal_error(), n_iter=result.n_iter,
        converged=result.converged, time_s=time_s, epsilon=result.epsilon,
        relative_epsilon=float(relative_epsilon), backend=result.backend, mode=result.mode,
        warnings=tuple(str(w.message) for w in caught),
    )


def heaviest_pairs(state: SharpnessState, mass: float = 0.9) -> int:
    """How many of ``state.pairs`` (heaviest first) it takes to carry ``mass`` of the plan.

    ≈ n for a sharp plan, ≈ mass·n·m for a diffuse one (capped by the pairs kept).
    """
    if state.pair_mass.numel() == 0:
        return 0
    total = float(state.coupling.sum()) if state.coupling_layout == "dense" else 1.0
    cumulative = torch.cumsum(state.pair_mass.double(), 0)
    k = int(torch.searchsorted(cumulative, mass * total).item()) + 1
    return min(k, state.pair_mass.numel())


def segments(state: SharpnessState, k: int | None = None) -> tuple[list, list, list]:
    """The ``k`` heaviest pairs (all kept by default) as one polyline: ``(xs, ys, masses)``,
    with ``None`` between segments."""
    xs: list = []
    ys: list = []
    masses: list = []
    x, y = state.x.tolist(), state.y.tolist()
    pairs, pair_mass = state.pairs[:k].tolist(), state.pair_mass[:k].tolist()
    for (i, j), mass in zip(pairs, pair_mass):
        xs += [x[i][0], y[j][0], None]
        ys += [x[i][1], y[j][1], None]
        masses += [mass, mass, None]
    return xs, ys, masses


class SharpnessExplorer(InteractiveFigure):
    """The coupling sharpness widget (module docstring).

    Args:
        relative_epsilon, n, backend, kind, seed: initial control values.
        segment_max_n: draw the coupling as segments when n, m ≤ this.
        segment_mass: draw the heaviest pairs carrying this fraction of the plan's mass.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
        **compute_options: passed to :func:`compute_sharpness` (``tol``, ``max_iter``, ...).

    Show it with ``display(widget)``, ``widget.display()`` or by ending a cell with it; the
    ipywidgets tree is ``widget.ui``, the figure ``widget.figure``, the last result
    ``widget.state`` (a :class:`SharpnessState`).
    """

    css_class = "otkit-sharpness"

    def __init__(
        self,
        *,
        relative_epsilon: float = 0.05,
        n: int = 64,
        backend: str = "auto",
        kind: str = "moons",
        seed: int = 0,
        segment_max_n: int = 64,
        segment_mass: float = 0.9,
        debounce_ms: float = 150,
        disable_while_busy: bool = False,
        **compute_options,
    ):
        self.segment_max_n = segment_max_n
        self.segment_mass = segment_mass
        self.compute_options = compute_options
        super().__init__(
            debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
            relative_epsilon=relative_epsilon, n=n, backend=backend, kind=kind, seed=seed,
        )

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "relative_epsilon": ipw.FloatLogSlider(
                value=0.05, base=10, min=-3, max=0, step=0.05, description="ε (relative)",
                readout_format=".3g", continuous_update=True, style=style,
            ),
            "n": ipw.IntSlider(
                value=64, min=16, max=1024, step=16, description="n", continuous_update=True,
                style=style,
            ),
            "backend": ipw.Dropdown(
                options=list(BACKEND_CHOICES), value="auto", description="backend",
                layout=ipw.Layout(width="180px"), style=style,
            ),
            "kind": ipw.Dropdown(
                options=list(TWO_CLOUD_KINDS), value="moons", description="clouds",
                layout=ipw.Layout(width="220px"), style=style,
            ),
            "seed": seed_control(),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = make_subplots(
            rows=1, cols=2, column_widths=[0.55, 0.45], horizontal_spacing=0.1,
            subplot_titles=("clouds and coupling", "coupling matrix (sorted along main axis)"),
        )
        fig.add_trace(go.Scatter(
            name="coupling", mode="lines", x=[], y=[], line=dict(color="#333", width=1.2),
            opacity=0.5, hovertemplate="P = %{customdata:.3g}<extra>coupling</extra>",
        ), row=1, col=1)
        fig.add_trace(go.Scatter(
            name="source", mode="markers", x=[], y=[],
            marker=dict(color="#1f77b4", size=6, line=dict(width=0.5, color="white")),
        ), row=1, col=1)
        fig.add_trace(go.Scatter(
            name="target", mode="markers", x=[], y=[],
            marker=dict(color="#d62728", size=6, line=dict(width=0.5, color="white")),
        ), row=1, col=1)
        fig.add_trace(go.Heatmap(
            name="coupling heatmap", z=[[0.0]], colorscale="Viridis", showscale=True,
            zmin=math.log10(_HEATMAP_FLOOR), zmax=2.0,
            colorbar=dict(title=dict(text="P / (a⊗b)"), x=1.02, len=0.9,
                          tickvals=[-2, -1, 0, 1, 2], ticktext=["≤0.01", "0.1", "1", "10", "100"]),
            hovertemplate="source rank %{y}, target rank %{x}<br>log10 P/(a⊗b) = %{z:.2f}"
                          "<extra>coupling heatmap</extra>",
        ), row=1, col=2)
        fig.update_xaxes(title_text="x₁", row=1, col=1)
        fig.update_yaxes(title_text="x₂", scaleanchor="x", scaleratio=1, row=1, col=1)
        fig.update_xaxes(title_text="target, sorted", row=1, col=2)
        fig.update_yaxes(title_text="source, sorted", autorange="reversed", row=1, col=2)
        return figure_widget(fig, "renormalized entropy …", height=460,
                             margin={"l": 50, "b": 50}, legend="above")

    def compute(self, **params) -> SharpnessState:
        return compute_sharpness(**params, **self.compute_options)

    def draw(self, state: SharpnessState) -> None:
        fig = self.figure
        x, y = state.x.numpy(), state.y.numpy()
        source, target = self.trace("source"), self.trace("target")
        source.x, source.y = x[:, 0], x[:, 1]
        target.x, target.y = y[:, 0], y[:, 1]
        size = 6 if max(state.n, state.m) <= 256 else 4
        source.marker.size = target.marker.size = size

        lines = self.trace("coupling")
        show_lines = (
            state.n <= self.segment_max_n and state.m <= self.segment_max_n
            and state.pairs.shape[0] > 0
        )
        if show_lines:
            # One trace has one width and opacity: draw the heaviest pairs carrying
            # `segment_mass` of the plan (≈ n when sharp, ≈ n·m when diffuse), and fade the
            # trace as that number grows (≈ 0.9 for a permutation).
            k = heaviest_pairs(state, self.segment_mass)
            xs, ys, masses = segments(state, k)
            lines.x, lines.y, lines.customdata = xs, ys, masses
            lines.opacity = float(min(0.9, max(0.12, 1.2 * max(state.n, state.m) / k)))
            left_title = (
                f"clouds and coupling ({k} heaviest pairs, {self.segment_mass:.0%} of the mass)"
            )
        else:
            lines.x, lines.y, lines.customdata = [], [], []
            left_title = f"clouds (segments shown for n ≤ {self.segment_max_n})"

        heat = self.trace("coupling heatmap")
        ratio = state.heatmap.double().clamp_min(_HEATMAP_FLOOR)
        heat.z = ratio.log10().to(torch.float32).numpy()
        heat.zmax = max(1.0, math.log10(max(ratio.shape)))
        right = "coupling matrix"
        if state.heatmap.shape != (state.n, state.m):
            right += f" ({state.heatmap.shape[0]}×{state.heatmap.shape[1]} blocks)"
        fig.layout.annotations[0].text = left_title
        fig.layout.annotations[1].text = right + ", sorted along main axis"

        h = state.renormalized_entropy
        fig.layout.title.text = (
            f"renormalized entropy {fixed(h, 4)} · ε = {state.epsilon:.3g} "
            f"(relative {state.relative_epsilon:.3g}) · n = {state.n}"
        )
        fig.layout.meta = {
            "renormalized_entropy": h,
            "marginal_error": state.marginal_error,
            "n_iter": state.n_iter,
            "converged": state.converged,
            "epsilon": state.epsilon,
            "relative_epsilon": state.relative_epsilon,
            "backend": state.backend,
            "n": state.n,
            "m": state.m,
            "time_s": state.time_s,
        }
        self.stats.value = _stats_html(state)


def _stats_html(state: SharpnessState) -> str:
    conv = "yes" if state.converged else "no (max_iter reached)"
    parts = [
        _stat("entropy", "renormalized entropy", repr(state.renormalized_entropy),
              fixed(state.renormalized_entropy, 4)),
        _stat("marginal-error", "marginal error", repr(state.marginal_error),
              f"{state.marginal_error:.2e}"),
        _stat("iterations", "iterations", state.n_iter, str(state.n_iter)),
        _stat("time", "time", repr(state.time_s), f"{state.time_s:.3f} s"),
        _stat("epsilon", "ε", repr(state.epsilon), f"{state.epsilon:.3g}"),
        _stat("backend", "backend", state.backend, f"{state.backend} ({state.mode})"),
        _stat("converged", "converged", str(state.converged).lower(), conv,
              "; ".join(state.warnings)),
    ]
    style = "" if state.converged else ' style="color:#b36b00"'
    return f'<div class="otkit-stats-line"{style}>' + " · ".join(parts) + "</div>"
