"""The ReFlow explorer: Simple ReFlow's techniques and the sampler's NFE on 8 Gaussians → moons.

A teacher flow (independent flow matching, :func:`otkit.reflow.study.train_teacher`) and its
ReFlow students (:func:`otkit.reflow.study.train_student`, started from the teacher's weights
and fine-tuned on its pairs) with any combination of Simple ReFlow's techniques (Kim et al.
2025): loss normalization w = 1/sg[loss], the time law ∝ 10^(1 − t) towards the noise, and
forward pairs (half the pairs real data inverted by the teacher). The explorer shows:

* the controls: **NFE** (Euler steps, :data:`NFES`) and three toggles, one per technique;
* the student's Euler trajectories from a few noise points at that NFE (``"paths"``), its
  samples (``"student"``), the teacher's samples at the same NFE (``"teacher"``) and the
  held-out moons (``"reference"``);
* in the title and stats: W2 of student and teacher to the reference (exact, POT), their ratio,
  and the straightness of the student's paths (0: straight lines at constant speed).

Each flow is trained once (:data:`FIT_CACHE`; a student a few seconds on a CPU) at the sizes
:data:`TEACHER_STEPS`, :data:`STUDENT_STEPS`, :data:`NUM_PAIRS`, :data:`PAIR_NFE`.
:func:`compute_reflow` is the same computation without a browser.

Stable names for browser tests: traces ``"reference"``, ``"teacher"``, ``"student"`` and
``"paths"``; the outer box has the class ``otkit-reflow``; ``layout.meta`` holds ``nfe``,
``label``, ``w2_student``, ``w2_teacher``, ``ratio``, ``straightness`` and ``cached``; the
stats line has spans ``.otkit-stat-nfe``, ``.otkit-stat-w2_student``, ``.otkit-stat-w2_teacher``,
``.otkit-stat-ratio`` and ``.otkit-stat-straightness``, each with a ``data-value`` attribute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ipywidgets as ipw
import plotly.graph_objects as go
import torch

from otkit.flows import path_straightness, wasserstein2
from otkit.flows.study import flow_benchmark
from otkit.reflow.study import ReflowConfig, make_pairs, train_student, train_teacher
from otkit.validation import check_choice

from .base import FitCache, InteractiveFigure, _stat, figure_widget, torch_threads

__all__ = ["NFES", "FIT_CACHE", "ReflowState", "compute_reflow", "ReflowExplorer"]

#: The NFE control's stops (Euler steps).
NFES = (1, 2, 4, 16)
#: Training sizes: teacher and student SGD steps (batch 256, lr 2e-3), teacher pairs and the
#: NFE (midpoint) that simulates them; samples scored and paths drawn.
TEACHER_STEPS, STUDENT_STEPS, NUM_PAIRS, PAIR_NFE = 1000, 500, 4096, 32
NUM_SAMPLES, NUM_PATHS = 600, 40

FIT_CACHE = FitCache(32)


@dataclass(frozen=True, eq=False)
class ReflowState:
    """The explorer's state at one NFE and one :class:`ReflowConfig`.

    ``student``, ``teacher``: samples ``[NUM_SAMPLES, 2]``; ``paths``: the student's
    trajectories ``[nfe + 1, NUM_PATHS, 2]``; ``reference``: held-out moons ``[NUM_SAMPLES, 2]``.
    """

    nfe: int
    config: ReflowConfig
    student: torch.Tensor
    teacher: torch.Tensor
    paths: torch.Tensor
    reference: torch.Tensor
    w2_student: float
    w2_teacher: float
    straightness: float
    cached: bool

    @property
    def ratio(self) -> float:
        """W2 of the student over the teacher's (< 1: ReFlow wins at this NFE)."""
        return self.w2_student / self.w2_teacher


def _bench(seed: int):
    return FIT_CACHE.get(("bench", seed), lambda: flow_benchmark("moons", reference_size=NUM_SAMPLES, seed=seed))[0]


def _teacher(seed: int):
    return FIT_CACHE.get(("teacher", seed), lambda: train_teacher(_bench(seed), steps=TEACHER_STEPS, seed=seed))


def _student(config: ReflowConfig, seed: int):
    def fit():
        teacher = _teacher(seed)[0]
        pairs = FIT_CACHE.get(("pairs", config.forward, seed), lambda: make_pairs(
            teacher, _bench(seed), num_pairs=NUM_PAIRS, pair_nfe=PAIR_NFE, seed=seed,
            forward_fraction=0.5 if config.forward else 0.0))[0]
        return train_student(teacher, pairs, config, steps=STUDENT_STEPS, seed=seed)

    return FIT_CACHE.get(("student", config, seed), fit)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def compute_reflow(nfe: int = 1, normalization: bool = False, time: bool = False,
                   forward: bool = False, *, seed: int = 0) -> ReflowState:
    """The student with the given techniques and its teacher, sampled by Euler at ``nfe`` (one
    of :data:`NFES`) from the same noise, and scored against held-out moons."""
    check_choice("nfe", nfe, NFES)
    config = ReflowConfig(_flag("normalization", normalization), _flag("time", time),
                          _flag("forward", forward))
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    bench = _bench(seed)
    teacher, _ = _teacher(seed)
    student, cached = _student(config, seed)
    x0 = bench.source(NUM_SAMPLES, torch.Generator().manual_seed(20_000 + seed))
    x_student, path = student.sample(x0, nfe=nfe, return_path=True)
    x_teacher = teacher.sample(x0, nfe=nfe)
    return ReflowState(
        nfe=nfe, config=config, student=x_student, teacher=x_teacher,
        paths=path[:, :NUM_PATHS], reference=bench.reference,
        w2_student=wasserstein2(x_student, bench.reference),
        w2_teacher=wasserstein2(x_teacher, bench.reference),
        straightness=path_straightness(student.sample(x0, nfe=16, return_path=True)[1]),
        cached=cached,
    )


def _path_lines(paths: torch.Tensor) -> tuple[list, list]:
    """Trajectories ``[T+1, k, 2]`` as one line with None gaps between them."""
    xs, ys = [], []
    for k in range(paths.shape[1]):
        xs += paths[:, k, 0].tolist() + [None]
        ys += paths[:, k, 1].tolist() + [None]
    return xs, ys


class ReflowExplorer(InteractiveFigure):
    """The ReFlow explorer (module docstring).

    Args:
        nfe: one of :data:`NFES`; normalization, time, forward: the techniques; seed: the
            flows' and data's.
        debounce_ms, disable_while_busy: see :class:`widgets.base.InteractiveFigure`.
    """

    css_class = "otkit-reflow"

    def __init__(self, *, nfe: int = 1, normalization: bool = False, time: bool = False,
                 forward: bool = False, seed: int = 0, debounce_ms: float = 150,
                 disable_while_busy: bool = False):
        with torch_threads(self.compute_threads):
            compute_reflow(nfe, normalization, time, forward, seed=seed)  # validates, fills the cache
        self.seed = seed
        self.cached = False
        super().__init__(debounce_ms=debounce_ms, disable_while_busy=disable_while_busy,
                         nfe=nfe, normalization=normalization, time=time, forward=forward)

    def make_controls(self):
        style = {"description_width": "initial"}
        return {
            "nfe": ipw.SelectionSlider(options=[(str(v), v) for v in NFES], value=1,
                                       description="NFE (Euler steps)", continuous_update=True,
                                       style=style, layout=ipw.Layout(width="320px")),
            "normalization": ipw.Checkbox(value=False, description="loss normalization 1/sg[ℓ]",
                                          style=style, indent=False),
            "time": ipw.Checkbox(value=False, description="time law ∝ 10^(1−t)", style=style,
                                 indent=False),
            "forward": ipw.Checkbox(value=False, description="forward pairs", style=style,
                                    indent=False),
        }

    def make_figure(self) -> go.FigureWidget:
        fig = go.Figure()
        fig.add_trace(go.Scatter(name="reference", mode="markers", x=[], y=[],
                                 marker={"size": 3, "color": "#bbbbbb"}, hoverinfo="skip"))
        fig.add_trace(go.Scatter(name="teacher", mode="markers", x=[], y=[],
                                 marker={"size": 4, "color": "#1f77b4", "opacity": 0.6}))
        fig.add_trace(go.Scatter(name="student", mode="markers", x=[], y=[],
                                 marker={"size": 4, "color": "#d62728", "opacity": 0.7}))
        fig.add_trace(go.Scatter(name="paths", mode="lines+markers", x=[], y=[],
                                 line={"color": "#2ca02c", "width": 1}, marker={"size": 3},
                                 hoverinfo="skip"))
        fig.update_xaxes(title_text="x₁", range=[-6, 6])
        fig.update_yaxes(title_text="x₂", range=[-6, 6], scaleanchor="x")
        return figure_widget(fig, "ReFlow …", height=520, margin={"b": 50}, legend="below",
                             legend_y=-0.14)

    def compute(self, **params) -> ReflowState:
        state = compute_reflow(params["nfe"], params["normalization"], params["time"],
                               params["forward"], seed=self.seed)
        self.cached = state.cached
        return state

    def draw(self, state: ReflowState) -> None:
        self.trace("reference").update(x=state.reference[:, 0].tolist(), y=state.reference[:, 1].tolist())
        self.trace("teacher").update(x=state.teacher[:, 0].tolist(), y=state.teacher[:, 1].tolist())
        self.trace("student").update(x=state.student[:, 0].tolist(), y=state.student[:, 1].tolist())
        xs, ys = _path_lines(state.paths)
        self.trace("paths").update(x=xs, y=ys)
        label = state.config.label
        verdict = "ReFlow wins" if state.ratio < 1 else "the teacher wins"
        self.figure.layout.title.text = (
            f"ReFlow ({label}) at NFE {state.nfe}: W2 {state.w2_student:.3f} vs teacher "
            f"{state.w2_teacher:.3f} ({verdict}, ×{state.ratio:.2f})"
            f"<br><sup>8 Gaussians → moons; teacher I-FM {TEACHER_STEPS} steps, student "
            f"{STUDENT_STEPS} steps on {NUM_PAIRS} pairs; one seed: differences of a few % are noise</sup>")
        self.figure.layout.meta = {
            "nfe": state.nfe, "label": label, "w2_student": state.w2_student,
            "w2_teacher": state.w2_teacher, "ratio": state.ratio,
            "straightness": state.straightness, "cached": state.cached,
        }
        self.stats.value = '<div class="otkit-stats-line">' + " · ".join([
            _stat("nfe", "NFE", repr(state.nfe), str(state.nfe)),
            _stat("w2_student", "W2 student", repr(state.w2_student), f"{state.w2_student:.3f}"),
            _stat("w2_teacher", "W2 teacher", repr(state.w2_teacher), f"{state.w2_teacher:.3f}"),
            _stat("ratio", "student / teacher", repr(state.ratio), f"{state.ratio:.2f}×",
                  "W2 of the ReFlow student over its teacher's at this NFE"),
            _stat("straightness", "straightness", repr(state.straightness),
                  f"{state.straightness:.3g}", "Liu et al. (2023): 0 for straight paths"),
        ]) + "</div>"
        if not math.isfinite(state.ratio):  # pragma: no cover - W2 of a sample is > 0
            raise ValueError("W2 ratio is not finite")

